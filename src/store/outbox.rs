//! The CRM webhook outbox on both engines: what the deliverer
//! (`crate::crm::deliverer`) and the admin API need.
//!
//! Events are written by the consent operations themselves, inside their
//! transactions (see `outbox_queries`); this file only reads and moves
//! them along. Every consent change also wakes the deliverer through
//! [`Store::webhook_signal`], so an event normally leaves within
//! milliseconds of its commit instead of at the next poll.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{Engine, Store};
use crate::crm::{DeliveryState, FailedAttempt, OutboxEvent, OutboxFilter};
use crate::store::ConsentStoreError;

impl Store {
    /// Notified after every consent change that may have queued an event;
    /// shared by every clone of this store (not across processes: other
    /// nodes find the events by polling).
    pub fn webhook_signal(&self) -> Arc<Notify> {
        self.webhooks.clone()
    }

    pub(super) fn wake_webhooks(&self) {
        // notify_one keeps a permit if the deliverer is busy, so a commit
        // that lands mid-delivery is not missed.
        self.webhooks.notify_one();
    }

    /// Claims up to `limit` due events, at most one per person (the
    /// oldest pending one), until `lease_until`; see the deliverer.
    pub async fn claim_webhook_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, ConsentStoreError> {
        on_engine!(
            self,
            claim_webhook_events(
                super::to_micros(now),
                super::to_micros(lease_until),
                limit.max(0)
            )
        )
    }

    /// Records that the CRM accepted the event. False: it was no longer
    /// pending.
    pub async fn mark_webhook_delivered(
        &self,
        id: &str,
        status: u16,
        now: DateTime<Utc>,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(
            self,
            mark_webhook_delivered(id, i32::from(status), super::to_micros(now))
        )
    }

    /// Records a failed attempt; the event is tried again at `retry_at`,
    /// or becomes dead when this was attempt number `max_attempts`.
    /// Gives the new state, `None` if the event was no longer pending.
    pub async fn mark_webhook_failed(
        &self,
        id: &str,
        failure: &FailedAttempt,
        retry_at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<Option<DeliveryState>, ConsentStoreError> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        on_engine!(
            self,
            mark_webhook_failed(id, failure, super::to_micros(retry_at), max_attempts)
        )
    }

    pub async fn webhook_event(&self, id: &str) -> Result<Option<OutboxEvent>, ConsentStoreError> {
        on_engine!(self, webhook_event(id))
    }

    /// Events matching `filter`, oldest first.
    pub async fn webhook_events(
        &self,
        filter: &OutboxFilter,
    ) -> Result<Vec<OutboxEvent>, ConsentStoreError> {
        on_engine!(self, webhook_events(filter))
    }

    /// Sends a dead event again: pending, attempts back to zero, due now.
    /// An event that is not dead is [`ConsentStoreError::Invalid`]
    /// (`state`); an unknown id is [`ConsentStoreError::NotFound`].
    ///
    /// The person's later events may already have been delivered: a
    /// re-driven event arrives after them, and receivers order by
    /// `occurred_at`. Until it is delivered or dead again, it holds back
    /// the person's newer pending events, as any older pending event does.
    pub async fn redrive_webhook_event(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<OutboxEvent, ConsentStoreError> {
        let redriven = on_engine!(self, redrive_webhook_event(id, super::to_micros(now)))?;
        let event = self
            .webhook_event(id)
            .await?
            .ok_or_else(|| ConsentStoreError::NotFound {
                what: "webhook event",
                id: id.to_string(),
            })?;
        if !redriven {
            return Err(ConsentStoreError::Invalid {
                field: "state",
                reason: format!(
                    "only dead events can be re-driven; this one is {}",
                    event.state
                ),
            });
        }
        self.wake_webhooks();
        Ok(event)
    }
}
