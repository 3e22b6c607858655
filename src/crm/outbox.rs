//! An event as the outbox keeps it: the body to post plus its delivery
//! bookkeeping (attempts, next try, last failure, state).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::consent::UnknownValue;

/// Where an event is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet accepted by the CRM; tried again at `next_attempt_at`.
    Pending,
    /// The CRM answered 2xx.
    Delivered,
    /// Given up after the configured number of attempts; an operator can
    /// re-drive it.
    Dead,
}

impl DeliveryState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(UnknownValue::new("delivery state", other)),
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event id receivers de-duplicate on (also inside `payload`).
    pub id: String,
    /// Position in the outbox; orders the events of one person.
    pub seq: i64,
    pub enterprise_id: String,
    pub person_id: String,
    pub event_type: String,
    /// The exact body that is posted and signed.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub state: DeliveryState,
    /// Attempts made so far (a re-drive starts again from zero).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// HTTP status of the last answer, if the CRM answered at all.
    pub last_status: Option<i32>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    pub state: Option<DeliveryState>,
    pub enterprise_id: Option<String>,
    /// At most this many, oldest first.
    pub limit: i64,
}

/// Why an attempt failed, as recorded on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub error: String,
    /// The CRM's status code, when it answered.
    pub status: Option<i32>,
}
