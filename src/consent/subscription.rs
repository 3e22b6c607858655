//! Subscriptions: the standing relationship between a person and an
//! enterprise.
//!
//! A consent answers "may we call now?"; a subscription answers "is this
//! person a customer of ours at all?". Nothing is sent to a person whose
//! subscription with the enterprise is not active.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{Refusal, UnknownValue};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub person_id: String,
    pub enterprise_id: String,
    pub status: SubscriptionStatus,
    /// When the subscription (last) became active.
    pub since: DateTime<Utc>,
    /// When it ended, or when it is due to end.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Ended,
}

impl SubscriptionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Ended => "ended",
        }
    }
}

impl FromStr for SubscriptionStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "active" => Ok(SubscriptionStatus::Active),
            "paused" => Ok(SubscriptionStatus::Paused),
            "ended" => Ok(SubscriptionStatus::Ended),
            _ => Err(UnknownValue::new("subscription status", s)),
        }
    }
}

impl Subscription {
    /// Whether the person may be contacted under this subscription at `now`.
    /// An active subscription whose `until` has passed counts as ended even
    /// before anyone updates the row.
    pub fn ensure_active(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        match self.status {
            SubscriptionStatus::Active if self.until.is_some_and(|u| u <= now) => {
                Err(Refusal::SubscriptionEnded)
            }
            SubscriptionStatus::Active if self.since > now => Err(Refusal::NotSubscribed),
            SubscriptionStatus::Active => Ok(()),
            SubscriptionStatus::Paused => Err(Refusal::SubscriptionPaused),
            SubscriptionStatus::Ended => Err(Refusal::SubscriptionEnded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    #[test]
    fn only_active_current_subscriptions_allow_contact() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap();
        let mut s = Subscription {
            person_id: "p".into(),
            enterprise_id: "e".into(),
            status: SubscriptionStatus::Active,
            since: now - TimeDelta::days(1),
            until: None,
        };
        assert_eq!(s.ensure_active(now), Ok(()));
        s.until = Some(now);
        assert_eq!(s.ensure_active(now), Err(Refusal::SubscriptionEnded));
        s.until = None;
        s.status = SubscriptionStatus::Paused;
        assert_eq!(s.ensure_active(now), Err(Refusal::SubscriptionPaused));
    }
}
