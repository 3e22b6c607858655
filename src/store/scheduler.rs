//! The store side of the durable scheduler: how the pacing engine takes the
//! callbacks that are due and records each call it places, so that every
//! callback is placed exactly once across nodes and crashes.
//!
//! The cycle, for one node:
//! 1. [`Store::claim_due_callbacks`] leases due callbacks to the node;
//! 2. [`Store::begin_attempt`] commits a `dialling` attempt before the
//!    INVITE leaves (its id goes out as `X-Slotgate-Attempt`);
//! 3. [`Store::finish_attempt`] records what the call gave and settles the
//!    callback: `done`, or `pending` again for a busy line or no answer.
//!
//! A node that dies after step 1 loses nothing: its lease runs out and
//! another node claims the callback. A node that dies during step 2–3 may
//! have called the person: the next claim marks the attempt
//! `outcome-unknown` and the callback `unknown`, and nobody dials it again
//! until an operator or a policy decides. The lease is the only clock that
//! matters, so it must outlast the longest call setup.

use chrono::{DateTime, TimeDelta, Utc};

use super::consent::ConsentStoreError;
use super::holds::ScheduledCallback;
use super::{to_micros, Engine, Store};

/// The state of an attempt whose INVITE may be on the wire.
pub const ATTEMPT_DIALLING: &str = "dialling";

/// The state recovery gives an attempt whose node died while it was
/// dialling: the call may or may not have reached the person.
pub const ATTEMPT_OUTCOME_UNKNOWN: &str = "outcome-unknown";

/// What becomes of a callback once an attempt has ended, as the
/// campaign's strategy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Nothing more: the callback is `done`.
    Done,
    /// Call again from then.
    DialAt(DateTime<Utc>),
    /// Ask the person for another time from then (a prompt pass).
    PromptAt(DateTime<Utc>),
}

/// One try at placing a scheduled callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Fresh per attempt; sent as `X-Slotgate-Attempt` so that the trunk's
    /// records can be matched with ours.
    pub id: String,
    pub callback_id: String,
    /// The node that placed the call.
    pub node: String,
    /// `dialling`, an [`AttemptOutcome`], or `outcome-unknown`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a placed call gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The person picked up: the callback is done.
    Answered,
    /// The line was busy: worth another try.
    Busy,
    /// Nobody picked up: worth another try.
    NoAnswer,
    /// The call could not be placed (rejected, unreachable): retrying
    /// would fail the same way, so the callback is done.
    Failed,
    /// An answering machine took the call.
    Machine,
    /// The person answered and no agent took them in time.
    Abandoned,
    /// No agent took the call before the customer was reached.
    AgentUnavailable,
    /// Committed but never sent (slotgate was stopping, no media ports):
    /// nobody was called, so the callback is due again.
    NotPlaced,
}

impl AttemptOutcome {
    /// The attempt's stored state.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Answered => "answered",
            AttemptOutcome::Busy => "busy",
            AttemptOutcome::NoAnswer => "no-answer",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Machine => "machine",
            AttemptOutcome::Abandoned => "abandoned",
            AttemptOutcome::AgentUnavailable => "agent-unavailable",
            AttemptOutcome::NotPlaced => "not-placed",
        }
    }

    /// Whether the callback goes back to `pending` (true) or is `done`.
    /// When to try again is the pacing engine's choice: the store only
    /// makes it claimable.
    pub fn retriable(self) -> bool {
        matches!(
            self,
            AttemptOutcome::Busy
                | AttemptOutcome::NoAnswer
                | AttemptOutcome::AgentUnavailable
                | AttemptOutcome::NotPlaced
        )
    }
}

fn invalid(field: &'static str, reason: &str) -> ConsentStoreError {
    ConsentStoreError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

impl Store {
    /// Leases to `node`, until `now + lease`, up to `limit` callbacks whose
    /// slot has started and that are `pending` (or claimed by a node whose
    /// lease ran out before it began dialling), earliest slot first.
    /// Nodes claiming at once get disjoint sets. The same transaction first
    /// settles, as `unknown`, every callback whose lease ran out while an
    /// attempt was dialling.
    pub async fn claim_due_callbacks(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        limit: i64,
    ) -> Result<Vec<ScheduledCallback>, ConsentStoreError> {
        if node.is_empty() {
            return Err(invalid("node", "must not be empty"));
        }
        if lease <= TimeDelta::zero() {
            return Err(invalid("lease", "must be positive"));
        }
        let now = to_micros(now);
        let Some(until) = now.checked_add_signed(lease) else {
            return Err(invalid("lease", "ends beyond the representable time"));
        };
        let limit = limit.max(0);
        on_engine!(
            self,
            claim_due_callbacks(node, now, to_micros(until), limit)
        )
    }

    /// Commits a `dialling` attempt for a callback `node` holds with a live
    /// lease; the call may be placed only once this returns. Refused
    /// ([`ConsentStoreError::NotClaimed`]) when the claim is not this
    /// node's, its lease has run out, or another attempt is dialling.
    pub async fn begin_attempt(
        &self,
        callback_id: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ConsentStoreError> {
        on_engine!(self, begin_attempt(callback_id, node, to_micros(now)))
    }

    /// Ends a dialling attempt with `outcome` and settles its callback
    /// (see [`AttemptOutcome::retriable`]). Refused when the attempt has
    /// already ended, e.g. marked `outcome-unknown` after its lease ran
    /// out: that verdict is left to the operator.
    pub async fn finish_attempt(
        &self,
        attempt_id: &str,
        outcome: AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ConsentStoreError> {
        let after = if outcome.retriable() {
            AfterAttempt::DialAt(now)
        } else {
            AfterAttempt::Done
        };
        self.settle_attempt(attempt_id, outcome, after, now).await
    }

    /// Ends a dialling attempt with `outcome`, in the same commit as its
    /// CRM event; the callback is `done`, or back to `pending` to be
    /// dialled or prompted from the time `after` gives.
    pub async fn settle_attempt(
        &self,
        attempt_id: &str,
        outcome: AttemptOutcome,
        after: AfterAttempt,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ConsentStoreError> {
        let (retry_at, due_action) = match after {
            AfterAttempt::Done => (None, None),
            AfterAttempt::DialAt(at) => (Some(to_micros(at)), None),
            AfterAttempt::PromptAt(at) => (Some(to_micros(at)), Some("prompt")),
        };
        on_engine!(
            self,
            finish_attempt(attempt_id, outcome, retry_at, due_action, to_micros(now))
        )
    }

    /// Extends this node's claims on `callback_ids` by `lease` from `now`
    /// (a call that rings, or waits in a pacer, outlives one lease). A
    /// claim already expired is not revived: another node may hold it.
    /// Returns how many claims were still this node's.
    pub async fn renew_leases(
        &self,
        node: &str,
        callback_ids: &[String],
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<u64, ConsentStoreError> {
        let Some(until) = now.checked_add_signed(lease) else {
            return Err(invalid("lease", "ends beyond the representable time"));
        };
        on_engine!(
            self,
            renew_leases(node, callback_ids, to_micros(now), to_micros(until))
        )
    }

    /// Gives back a claimed callback that was not dialled: claimable again
    /// from `retry_at` (calling hours closed), or, with `None`, settled as
    /// `dropped` for `reason` (do-not-call, consent revoked at dial time).
    /// Refused while an attempt is dialling.
    pub async fn release_callback(
        &self,
        callback_id: &str,
        node: &str,
        retry_at: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> Result<(), ConsentStoreError> {
        let retry_at = retry_at.map(to_micros);
        on_engine!(self, release_callback(callback_id, node, retry_at, reason))
    }

    /// An operator's verdict on a callback left `unknown` by a node that
    /// died mid-dial: dial again from `redial_at` (having checked with the
    /// person or the trunk's records), or settle it as `done`.
    pub async fn resolve_unknown_callback(
        &self,
        callback_id: &str,
        redial_at: Option<DateTime<Utc>>,
        note: &str,
    ) -> Result<(), ConsentStoreError> {
        let redial_at = redial_at.map(to_micros);
        on_engine!(self, resolve_unknown_callback(callback_id, redial_at, note))
    }

    /// Callbacks waiting for an operator's verdict, oldest slot first.
    pub async fn unknown_callbacks(
        &self,
        limit: i64,
    ) -> Result<Vec<ScheduledCallback>, ConsentStoreError> {
        on_engine!(self, callbacks_with_status("unknown", limit.max(0)))
    }

    /// Every attempt at a callback, oldest first.
    pub async fn callback_attempts(
        &self,
        callback_id: &str,
    ) -> Result<Vec<Attempt>, ConsentStoreError> {
        on_engine!(self, callback_attempts(callback_id))
    }

    /// A callback by id, whatever its status.
    pub async fn scheduled_callback(
        &self,
        callback_id: &str,
    ) -> Result<Option<ScheduledCallback>, ConsentStoreError> {
        on_engine!(self, scheduled_callback(callback_id))
    }
}
