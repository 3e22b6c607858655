//! Consent channels: how a prompt reaches a person and how their answer
//! comes back.
//!
//! `channel` is the contract every provider implements (RCS Business
//! Messaging, an SMS aggregator, the built-in simulator); providers speak
//! their documented wire formats and verify their webhooks before anything
//! they carry is believed.
//!
//! - `rbm`: Google RCS Business Messaging, the rich channel (suggestion
//!   chips, receipts); a `404` for a handset without RCS sends the prompt
//!   to the fallback.
//! - `twilio`: the SMS fallback through Twilio's Messages API (numbered
//!   options in plain text).
//! - `secret` masks credentials in every `Debug`; `http` is the shared
//!   reading of provider answers as retryable or not.

pub mod channel;
mod http;
pub mod rbm;
pub mod secret;
pub mod twilio;
