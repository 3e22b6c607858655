//! Consent channels: how a prompt reaches a person and how their answer
//! comes back.
//!
//! `channel` is the contract every provider implements (RCS Business
//! Messaging, an SMS aggregator, the built-in simulator); providers speak
//! their documented wire formats and verify their webhooks before anything
//! they carry is believed.

pub mod channel;
