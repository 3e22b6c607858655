//! What goes into the pacer and what comes out of it: contacts, agent and
//! call events in; dials and instructions out.
//!
//! Identifiers of agents and contacts belong to the caller (its ACD and its
//! contact list); call and preview identifiers are handed out by the pacer,
//! so a late event for a call it has forgotten can be told apart from one
//! it never made.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::consent::{callee_zone, Refusal, ZoneGuess, E164};

/// The caller's identifier of a contact (a lead, a CRM record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(pub String);

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller's identifier of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u64);

/// A call the pacer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A contact shown to an agent in preview mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PreviewId(pub u64);

/// A person due to be called, with what decides when they may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    /// The zones the callee may be in; calling hours must hold in each.
    pub zone: ZoneGuess,
    /// The region of the number (ISO alpha-2), for per-region hours.
    pub region: Option<String>,
}

impl Contact {
    /// A contact whose zone and region are read from its number.
    pub fn for_number(id: ContactId, number: &E164) -> Contact {
        Contact {
            id,
            zone: callee_zone(number),
            region: number.region().map(|r| r.as_str().to_string()),
        }
    }
}

/// Where an agent stands, as the ACD reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Logged in and waiting for a call.
    Available,
    /// On a call.
    Busy,
    /// Finishing the last call's notes; counts as handling it.
    WrapUp,
    /// Paused or logged out: neither free nor expected back soon.
    Away,
}

/// What happened to a call the pacer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallProgress {
    /// The far end rings (`180`/`183`).
    Ringing,
    /// Answered, and answering-machine detection heard a person: the
    /// connect deadline starts now.
    AnsweredByPerson,
    /// Answered by a machine (never an abandon).
    AnsweredByMachine,
    /// Given up after ringing (the caller acted on a ring timeout).
    NoAnswer,
    Busy,
    /// Refused by the network or the trunk before answer.
    Failed,
    /// The answered person is talking to this agent.
    ConnectedToAgent {
        agent: AgentId,
    },
    /// The call is over and its channel free.
    Ended,
}

/// A call to place now.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub call: CallId,
    pub contact: Contact,
    /// In preview mode, the agent who accepted the contact and waits for
    /// the answer.
    pub agent: Option<AgentId>,
    /// Ring at least this long before giving up (the pacer also sends
    /// [`PacerEvent::RingTimeout`] then).
    pub ring_timeout: TimeDelta,
}

/// Why a contact leaves the pacer without a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The caller's check at dial time refused it (do-not-call, a "no").
    Refused(Refusal),
    /// No instant in the coming week is inside calling hours in every
    /// zone the callee may be in.
    NoCallingWindow,
    /// The agent skipped it in preview.
    SkippedInPreview,
    /// The caller took it back for a reason of its own.
    Withdrawn(String),
}

impl DropReason {
    /// Stable identifier for records and metrics.
    pub fn code(&self) -> &str {
        match self {
            DropReason::Refused(refusal) => refusal.code(),
            DropReason::NoCallingWindow => "no_calling_window",
            DropReason::SkippedInPreview => "skipped_in_preview",
            DropReason::Withdrawn(_) => "withdrawn",
        }
    }
}

/// Something the caller must do or record.
#[derive(Debug, Clone, PartialEq)]
pub enum PacerEvent {
    /// No agent took the answered person in time: play the identification
    /// and opt-out message, then hang up. Already counted in the ledger.
    Abandon { call: CallId, contact: ContactId },
    /// The call rang for the ring timeout: cancel it and report
    /// [`CallProgress::NoAnswer`].
    RingTimeout { call: CallId },
    /// Show `contact` to `agent`; answer with
    /// [`Pacer::preview_accepted`](super::Pacer::preview_accepted) or
    /// [`Pacer::preview_skipped`](super::Pacer::preview_skipped).
    PreviewOffered {
        preview: PreviewId,
        agent: AgentId,
        contact: Contact,
    },
    /// Outside calling hours now: offer it again at `until`.
    ContactDeferred {
        contact: Contact,
        until: DateTime<Utc>,
    },
    /// The contact will not be called; record why.
    ContactDropped {
        contact: ContactId,
        reason: DropReason,
    },
}
