//! Consent channels: how a prompt reaches a person and how their answer
//! comes back.
//!
//! `channel` is the contract every provider implements; providers speak
//! their documented wire formats and verify their webhooks before anything
//! they carry is believed:
//!
//! - `rbm`: Google RCS Business Messaging, the rich channel (suggestion
//!   chips, receipts); a `404` for a handset without RCS sends the prompt
//!   to the fallback.
//! - `twilio`: the SMS fallback through Twilio's Messages API (numbered
//!   options in plain text).
//! - `simulator`: the built-in channel, simulated handsets whose inbox and
//!   answers are driven through the API or by an auto-reply policy, so
//!   slotgate runs end to end with no provider account.
//!
//! `delivery` decides, per prompt, which channel to use, when to retry and
//! when to fall back to SMS; `channels` holds the configured providers'
//! clients (built once from `[channels]`) and sends on the route chosen.
//! `secret` masks credentials in every `Debug`; `http` is the shared
//! reading of provider answers as retryable or not.
//!
//! Whatever the channel, the answer is read the same way: `reply` reads a
//! postback or free text against the choices offered, in the person's
//! zone, and `confirm` writes what goes back (the confirmation, the one
//! clarifying question, the revocation notice). Both are pure functions of
//! their inputs, the time included.

pub mod channel;
pub mod channels;
pub mod confirm;
pub mod delivery;
pub mod dispatcher;
pub mod exchange;
mod http;
pub mod inbound;
pub mod rbm;
pub mod reply;
pub mod secret;
pub mod service;
pub mod simulator;
pub mod twilio;
