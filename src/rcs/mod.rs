//! The consent channels' room: how slotgate talks with the person it asks.
//!
//! The architecture places here the channels a consent prompt travels on
//! (RCS Business Messaging, an aggregator, SMS fallback, a built-in
//! simulator) and the verification of their inbound webhooks. What exists
//! so far is the channel-independent part every one of them needs:
//!
//! * [`reply`]: reading a person's reply (an RCS postback or free text)
//!   against the choices offered, in the person's time zone;
//! * [`confirm`]: the texts sent back: confirmations, the clarifying
//!   question, the revocation notice.
//!
//! Both are pure functions of their inputs (the time included), so the
//! async channel code that will sit around them stays thin.

pub mod confirm;
pub mod reply;
