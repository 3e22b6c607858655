//! Pacing: when to place each outbound call of a campaign, so that agents
//! stay busy without abandoning the people who answer.
//!
//! The [`Pacer`] is sans-I/O: the caller (the B2BUA's dialler shell) feeds
//! it time, contacts, agent and call events, and places the calls it asks
//! for. Its parts, each testable alone:
//!
//! - [`campaign`]: the settings an operator writes and their validation;
//! - [`abandon`]: the rolling legal window of answers and abandons;
//! - [`forecast`]: answer and handle-time chances learned from recent calls;
//! - [`predictive`]: how many calls to add now, and the risk of each;
//! - [`throttle`]: how much risk the abandon budget allows;
//! - [`strategy`]: a campaign's passes (voice calls, prompts) and which
//!   one reaches a contact next;
//! - [`simulation`]: a seeded contact centre in virtual time that drives
//!   the pacer (and a VICIdial-style baseline) to measure what it achieves.

pub mod abandon;
pub mod campaign;
pub mod dial_check;
pub mod dialer;
pub mod events;
pub mod forecast;
pub mod pacer;
pub mod predictive;
pub mod simulation;
pub mod strategy;
pub mod throttle;

#[cfg(test)]
mod tests;

pub use abandon::{AbandonCounts, AbandonLedger};
pub use campaign::{
    AbandonWindow, Campaign, CampaignError, CampaignSettings, DialMode, HoursPolicy,
};
pub use events::{
    AgentId, AgentState, CallId, CallProgress, Contact, ContactId, Dial, DropReason, PacerEvent,
    PreviewId,
};
pub use pacer::{Pacer, PacerError, PacerStats, DEFAULT_TRUNK_BACKOFF};
pub use strategy::{
    next_step, CallOutcome, DoneReason, NextStep, Outcome, Pass, PassChannel, PassOutcome,
    Strategy, StrategyError,
};
