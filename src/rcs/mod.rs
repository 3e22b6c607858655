//! Consent channels: how a prompt reaches a person and how their answer
//! comes back.
//!
//! `channel` is the contract every provider implements (RCS Business
//! Messaging, an SMS aggregator, the built-in simulator); providers speak
//! their documented wire formats and verify their webhooks before anything
//! they carry is believed. `delivery` decides, per prompt, which channel to
//! use, when to retry and when to fall back to SMS. `simulator` is the built-in channel: simulated
//! handsets whose inbox and answers are driven through the API or by an
//! auto-reply policy, so slotgate runs end to end with no provider account.

pub mod channel;
pub mod delivery;
pub mod simulator;
