//! Consents: what a person agreed to (or refused), with the evidence.
//!
//! A consent is the record the gate consults before a call goes through. It
//! is honoured only while granted and not past `expires_at`, and only for
//! instants inside its window when it names one; revoked, declined and
//! expired consents never cover anything. The evidence (provider message id,
//! raw reply, signature check) is kept so that a dispute can be answered.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{UnknownValue, E164};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    pub person_id: String,
    pub enterprise_id: String,
    /// The number the consent was given for.
    pub number: E164,
    pub scope: Scope,
    pub status: ConsentStatus,
    pub window: Option<Window>,
    /// `None`: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    pub channel: Channel,
    pub evidence: Evidence,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Consent {
    /// Whether this consent allows a call at `t`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.status == ConsentStatus::Granted
            && self.expires_at.is_none_or(|e| t < e)
            && self.window.as_ref().is_none_or(|w| w.contains(t))
    }
}

/// A consent to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    pub person_id: String,
    pub enterprise_id: String,
    pub number: E164,
    pub scope: Scope,
    /// `Granted` or `Declined`; `Revoked` and `Expired` are reached through
    /// the store's revoke and expire operations.
    pub status: ConsentStatus,
    pub window: Option<Window>,
    /// Computed by the caller from the enterprise's policy
    /// ([`ConsentPolicy::expires_at`](super::ConsentPolicy::expires_at)).
    pub expires_at: Option<DateTime<Utc>>,
    pub channel: Channel,
    pub evidence: Evidence,
}

/// What the consent is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Campaign(String),
    Purpose(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Campaign(c) => write!(f, "campaign:{c}"),
            Scope::Purpose(p) => write!(f, "purpose:{p}"),
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s.split_once(':') {
            Some(("campaign", c)) if !c.is_empty() => Ok(Scope::Campaign(c.to_string())),
            Some(("purpose", p)) if !p.is_empty() => Ok(Scope::Purpose(p.to_string())),
            _ => Err(UnknownValue::new("consent scope", s)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    Granted,
    Declined,
    Revoked,
    Expired,
}

impl ConsentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Declined => "declined",
            ConsentStatus::Revoked => "revoked",
            ConsentStatus::Expired => "expired",
        }
    }
}

impl FromStr for ConsentStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "granted" => Ok(ConsentStatus::Granted),
            "declined" => Ok(ConsentStatus::Declined),
            "revoked" => Ok(ConsentStatus::Revoked),
            "expired" => Ok(ConsentStatus::Expired),
            _ => Err(UnknownValue::new("consent status", s)),
        }
    }
}

/// The slot the person agreed to: UTC instants, plus the person's zone so
/// that messages and calling-hour rules speak the person's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
}

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("the window ends ({end}) before it starts ({start})")]
    Empty {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error("{0:?} is not an IANA time zone (e.g. Europe/Paris)")]
    UnknownZone(String),
}

impl Window {
    pub fn new(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        time_zone: &str,
    ) -> Result<Window, WindowError> {
        if end <= start {
            return Err(WindowError::Empty { start, end });
        }
        let time_zone = time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| WindowError::UnknownZone(time_zone.to_string()))?;
        Ok(Window {
            start,
            end,
            time_zone,
        })
    }

    /// Half-open: the end instant is outside the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// How the answer reached slotgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rcs,
    Sms,
    /// Recorded by the enterprise through the API (e.g. consent taken by an
    /// agent on a call).
    Api,
    /// Entered by an operator.
    Manual,
    /// The built-in simulator: test and demonstration traffic, never a
    /// real person's word.
    Simulator,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Rcs => "rcs",
            Channel::Sms => "sms",
            Channel::Api => "api",
            Channel::Manual => "manual",
            Channel::Simulator => "simulator",
        }
    }
}

impl FromStr for Channel {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "rcs" => Ok(Channel::Rcs),
            "simulator" => Ok(Channel::Simulator),
            "sms" => Ok(Channel::Sms),
            "api" => Ok(Channel::Api),
            "manual" => Ok(Channel::Manual),
            _ => Err(UnknownValue::new("channel", s)),
        }
    }
}

/// What proves the answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    pub provider_message_id: Option<String>,
    /// The reply exactly as received.
    pub raw_reply: Option<String>,
    /// Result of the provider's webhook signature check; `None` when the
    /// channel has no signature (API, manual).
    pub signature_valid: Option<bool>,
    /// When the person answered, by the provider's clock.
    pub replied_at: Option<DateTime<Utc>>,
    /// When slotgate received the answer.
    pub received_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn consent(now: DateTime<Utc>) -> Consent {
        Consent {
            id: "c".into(),
            person_id: "p".into(),
            enterprise_id: "e".into(),
            number: E164::from_e164("+33612345678").unwrap(),
            scope: Scope::Campaign("spring".into()),
            status: ConsentStatus::Granted,
            window: None,
            expires_at: Some(now + TimeDelta::hours(1)),
            channel: Channel::Rcs,
            evidence: Evidence::default(),
            created_at: now,
            updated_at: now,
            revoked_at: None,
        }
    }

    #[test]
    fn covers_only_granted_unexpired_and_inside_the_window() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap();
        let mut c = consent(now);
        assert!(c.covers(now));
        assert!(!c.covers(now + TimeDelta::hours(1)));
        c.window = Some(Window::new(now, now + TimeDelta::minutes(30), "Europe/Paris").unwrap());
        assert!(c.covers(now + TimeDelta::minutes(29)));
        assert!(!c.covers(now + TimeDelta::minutes(30)));
        for status in [
            ConsentStatus::Declined,
            ConsentStatus::Revoked,
            ConsentStatus::Expired,
        ] {
            c.status = status;
            assert!(!c.covers(now));
        }
    }

    #[test]
    fn windows_and_scopes_are_checked() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap();
        assert!(matches!(
            Window::new(now, now, "UTC"),
            Err(WindowError::Empty { .. })
        ));
        assert!(matches!(
            Window::new(now, now + TimeDelta::hours(1), "Mars/Olympus"),
            Err(WindowError::UnknownZone(_))
        ));
        assert_eq!(
            "campaign:x".parse::<Scope>().unwrap(),
            Scope::Campaign("x".into())
        );
        assert!("campaign:".parse::<Scope>().is_err());
    }
}
