//! The back-to-back user agent: every call is two dialogs, one with the PBX
//! and one with the trunk, joined by slotgate.
//!
//! `core` is the sans-I/O state machine; `build` spells the messages it
//! sends; `gate` decides what an outbound INVITE may do given the callee's
//! consents, do-not-call lists and calling hours (not yet wired into
//! `core`); `access` decides who may call and how fast; `trunk_health`
//! tracks whether the trunk answers; `ids` mints tags, branches and
//! Call-IDs.

pub mod access;
pub mod build;
pub mod core;
pub mod gate;
pub mod ids;
pub mod trunk_health;

pub use self::core::Core;

#[cfg(test)]
mod tests;
