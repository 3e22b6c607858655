//! Caller ID in the store: the number a person is called from for one
//! enterprise (rule 1 of the selection chain), and pool numbers the
//! operator flagged.
//!
//! An override reaches calls through the gate's facts about the callee
//! (`callee_facts`), read with the same statement. Flags live in the pool
//! state of each node's SIP loop; the store is their source of truth, so a
//! flag survives a restart and reaches every node: the loop loads them on
//! start, reloads them when this process writes one (the wake below), and
//! on a timer for flags written by other nodes.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::consent::ConsentStoreError;
// `Engine` is named by `on_engine!`.
use super::{Engine, Store};
use crate::consent::E164;

/// A number set on a person for one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdOverride {
    pub person_id: String,
    pub enterprise_id: String,
    pub number: E164,
    pub updated_at: DateTime<Utc>,
}

/// A number resting until `flagged_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdFlag {
    pub number: E164,
    pub flagged_until: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Sets the number `person_id` is shown calls from by `enterprise_id`.
    pub async fn set_caller_id_override(
        &self,
        person_id: &str,
        enterprise_id: &str,
        number: &E164,
        now: DateTime<Utc>,
    ) -> Result<CallerIdOverride, ConsentStoreError> {
        on_engine!(
            self,
            set_caller_id_override(person_id, enterprise_id, number, now)
        )
    }

    /// Removes the person's number; false when none was set.
    pub async fn clear_caller_id_override(
        &self,
        person_id: &str,
        enterprise_id: &str,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(self, clear_caller_id_override(person_id, enterprise_id))
    }

    pub async fn caller_id_override(
        &self,
        person_id: &str,
        enterprise_id: &str,
    ) -> Result<Option<CallerIdOverride>, ConsentStoreError> {
        on_engine!(self, caller_id_override(person_id, enterprise_id))
    }

    /// Flags `number` until `until` and wakes this process's SIP loop.
    pub async fn flag_caller_id(
        &self,
        number: &E164,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CallerIdFlag, ConsentStoreError> {
        let flag = on_engine!(self, flag_caller_id(number, until, now))?;
        self.caller_id_flags.notify_one();
        Ok(flag)
    }

    /// Lifts the flag on `number`; false when it had none.
    pub async fn unflag_caller_id(&self, number: &E164) -> Result<bool, ConsentStoreError> {
        let done = on_engine!(self, unflag_caller_id(number))?;
        self.caller_id_flags.notify_one();
        Ok(done)
    }

    /// The flags still in force at `now`, by number.
    pub async fn caller_id_flags(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CallerIdFlag>, ConsentStoreError> {
        on_engine!(self, caller_id_flags(now))
    }

    /// Notified whenever this process writes a flag (one waiter: the SIP
    /// loop's flag reader).
    pub fn caller_id_flag_wakes(&self) -> Arc<tokio::sync::Notify> {
        self.caller_id_flags.clone()
    }
}
