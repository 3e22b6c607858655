//! The back-to-back user agent: every call is two dialogs, one with the PBX
//! and one with the trunk, joined by slotgate.
//!
//! `core` is the sans-I/O state machine; `build` spells the messages it
//! sends; `classify` reads which enterprise, campaign and callee an INVITE
//! is for; `gate` decides what it may do given the callee's consents,
//! do-not-call lists and calling hours; `hold` is what the core and
//! `gatekeeper` (the gate's store side) tell each other while an INVITE is
//! held; `access` decides who may call and how fast; `trunk_health` tracks
//! whether the trunk answers; `ids` mints tags, branches and Call-IDs;
//! `anchor` is how the core asks the media engine for early media and a
//! relay.

pub mod access;
pub mod anchor;
pub mod build;
pub mod classify;
pub mod core;
pub mod gate;
pub mod gate_config;
pub mod gate_metrics;
pub mod gatekeeper;
pub mod hold;
pub mod ids;
pub mod trunk_health;

pub use self::core::Core;

#[cfg(test)]
mod tests;
