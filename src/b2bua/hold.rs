//! What the B2BUA core and the gate's store side tell each other about a
//! held INVITE.
//!
//! The core is sans-I/O and the consent facts live in the store, so a
//! held INVITE is a conversation: the core asks for a decision
//! ([`GateQuery::Decide`]), the shell answers with a [`GateVerdict`] once
//! it has read the store (and opened the consent request for a hold), and
//! later with a [`HoldAnswer`] when the person's answer is stored. Every
//! message carries the hold's id, so a late one for a hold that has ended
//! (CANCEL, window passed) is recognised and changes nothing.

use chrono::{DateTime, Utc};

use super::classify::Classification;
use crate::consent::E164;

/// A request from the core to the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateQuery {
    /// Decide what the INVITE may do; hold it if the person must be asked.
    Decide(HoldRequest),
    /// The hold ended without the person's answer acting on it (window
    /// passed, CANCEL, shutdown): record it, so a late answer schedules a
    /// callback. `forwarded`: the call went to the trunk anyway.
    Ended { hold_id: String, forwarded: bool },
}

/// An INVITE waiting for the gate's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub hold_id: String,
    pub classification: Classification,
    /// The PBX's From URI.
    pub caller: String,
    /// Where the caller can be reached back on the PBX.
    pub pbx_target: String,
    /// When the INVITE arrived.
    pub at: DateTime<Utc>,
}

/// The gate's decision for an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Send it to the trunk now.
    Forward {
        decision: &'static str,
        consent_id: Option<String>,
        /// The number set on the person for the enterprise (caller ID
        /// rule 1), read with the gate's facts.
        caller_id_override: Option<E164>,
    },
    /// Answer the PBX with a final failure.
    Refuse {
        decision: &'static str,
        status: u16,
        /// The `Reason` header's value.
        reason: String,
        retry_after_secs: Option<u64>,
    },
    /// The person is being asked (request `request_id`): keep holding.
    /// `caller_id_override` is kept for the call, should it go through.
    Hold {
        request_id: String,
        caller_id_override: Option<E164>,
    },
}

/// The person's answer to a held INVITE, once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldAnswer {
    Now,
    /// A later time; its callback is already stored.
    Later {
        at: DateTime<Utc>,
    },
    Decline,
}
