//! Enterprises: the trusted entities on whose behalf slotgate asks.
//!
//! Only an enterprise an operator marked trusted may ask anything; its
//! consent policy decides how long a "yes" lasts. API keys are shown once,
//! when created, and stored only as argon2 hashes, so a copy of the
//! database does not hand out working keys.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, TimeDelta, Utc};

use super::{Refusal, UnknownValue};

/// An enterprise as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    /// How the enterprise is named in messages to people ("ACME Energy").
    pub display_name: String,
    /// Services it offers, as shown when asking for consent.
    pub services: Vec<String>,
    /// Region used to read numbers written without a country code (ISO 3166).
    pub default_region: String,
    pub crm_webhook_url: Option<String>,
    /// Secret used to sign webhook bodies; kept in clear because slotgate
    /// must sign with it, unlike API keys which it only verifies.
    pub crm_webhook_secret: Option<String>,
    pub consent_policy: ConsentPolicy,
    pub status: TrustStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Enterprise {
    /// Whether the enterprise may ask anyone anything right now.
    pub fn ensure_may_ask(&self) -> Result<(), Refusal> {
        self.status.ensure_may_ask()
    }
}

/// What is needed to register an enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnterprise {
    pub name: String,
    pub display_name: String,
    pub services: Vec<String>,
    pub default_region: String,
    pub crm_webhook_url: Option<String>,
    pub crm_webhook_secret: Option<String>,
    pub consent_policy: ConsentPolicy,
    pub status: TrustStatus,
}

/// Whether an operator trusts the enterprise.
/// A partial update of an enterprise: `None` leaves a field as it is. The
/// webhook fields are doubly optional so that an update can clear them
/// (`Some(None)`) as well as leave them alone (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnterpriseChanges {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub services: Option<Vec<String>>,
    pub default_region: Option<String>,
    pub crm_webhook_url: Option<Option<String>>,
    pub crm_webhook_secret: Option<Option<String>>,
    pub consent_policy: Option<ConsentPolicy>,
    pub status: Option<TrustStatus>,
}

impl EnterpriseChanges {
    /// `current` with these changes, as the fields of a new registration so
    /// that an update is checked by exactly the rules a creation is.
    pub fn applied_to(&self, current: &Enterprise) -> NewEnterprise {
        let pick = |change: &Option<String>, now: &String| change.clone().unwrap_or(now.clone());
        NewEnterprise {
            name: pick(&self.name, &current.name),
            display_name: pick(&self.display_name, &current.display_name),
            services: self
                .services
                .clone()
                .unwrap_or_else(|| current.services.clone()),
            default_region: pick(&self.default_region, &current.default_region),
            crm_webhook_url: self
                .crm_webhook_url
                .clone()
                .unwrap_or_else(|| current.crm_webhook_url.clone()),
            crm_webhook_secret: self
                .crm_webhook_secret
                .clone()
                .unwrap_or_else(|| current.crm_webhook_secret.clone()),
            consent_policy: self.consent_policy.unwrap_or(current.consent_policy),
            status: self.status.unwrap_or(current.status),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustStatus {
    Trusted,
    /// Temporarily barred (complaints, unpaid invoices); may be reinstated.
    Suspended,
    Untrusted,
}

impl TrustStatus {
    /// Only a trusted enterprise may ask anything.
    pub fn ensure_may_ask(self) -> Result<(), Refusal> {
        match self {
            TrustStatus::Trusted => Ok(()),
            TrustStatus::Suspended => Err(Refusal::EnterpriseSuspended),
            TrustStatus::Untrusted => Err(Refusal::EnterpriseUntrusted),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TrustStatus::Trusted => "trusted",
            TrustStatus::Suspended => "suspended",
            TrustStatus::Untrusted => "untrusted",
        }
    }
}

impl FromStr for TrustStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "trusted" => Ok(TrustStatus::Trusted),
            "suspended" => Ok(TrustStatus::Suspended),
            "untrusted" => Ok(TrustStatus::Untrusted),
            _ => Err(UnknownValue::new("trust status", s)),
        }
    }
}

/// How long a granted consent lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Good for the one call it was given for: it ends with the agreed
    /// window, or [`PER_CALL_VALIDITY`] after a "call me now".
    PerCall,
    Hours(u32),
    Days(u32),
    /// Until the person revokes it.
    UntilRevoked,
}

/// How long a per-call "now" stays usable: long enough for the held INVITE
/// or a prompt re-origination, short enough not to cover a later call.
pub const PER_CALL_VALIDITY: TimeDelta = TimeDelta::minutes(15);

impl ConsentPolicy {
    /// When a consent granted at `granted_at` for a window ending at
    /// `window_end` (if any) stops being honoured; `None` means never.
    pub fn expires_at(
        &self,
        granted_at: DateTime<Utc>,
        window_end: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            ConsentPolicy::PerCall => Some(window_end.unwrap_or(granted_at + PER_CALL_VALIDITY)),
            ConsentPolicy::Hours(h) => Some(granted_at + TimeDelta::hours(i64::from(*h))),
            ConsentPolicy::Days(d) => Some(granted_at + TimeDelta::days(i64::from(*d))),
            ConsentPolicy::UntilRevoked => None,
        }
    }
}

impl fmt::Display for ConsentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsentPolicy::PerCall => f.write_str("per_call"),
            ConsentPolicy::Hours(h) => write!(f, "hours:{h}"),
            ConsentPolicy::Days(d) => write!(f, "days:{d}"),
            ConsentPolicy::UntilRevoked => f.write_str("until_revoked"),
        }
    }
}

impl FromStr for ConsentPolicy {
    type Err = UnknownValue;
    /// `per_call`, `hours:N`, `days:N` (N ≥ 1) or `until_revoked`.
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        let unknown = || UnknownValue::new("consent policy", s);
        let count = |n: &str| n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(unknown);
        match s.split_once(':') {
            None if s == "per_call" => Ok(ConsentPolicy::PerCall),
            None if s == "until_revoked" => Ok(ConsentPolicy::UntilRevoked),
            Some(("hours", n)) => Ok(ConsentPolicy::Hours(count(n)?)),
            Some(("days", n)) => Ok(ConsentPolicy::Days(count(n)?)),
            _ => Err(unknown()),
        }
    }
}

/// An API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub enterprise_id: String,
    /// argon2 PHC string of the secret part.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its full text exists outside the
/// enterprise's hands.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedApiKey {
    pub id: String,
    /// `sg_<id>_<secret>`: the id lets the store find the hash to check
    /// against without trying every key.
    pub key: String,
}

impl fmt::Debug for IssuedApiKey {
    // Keeps the key out of logs that print the value by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("id", &self.id)
            .field("key", &"***")
            .finish()
    }
}

/// Why an API key could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the API key: {0}")]
pub struct KeyHashError(pub(crate) String);

/// A fresh key and the hash to store for it.
pub fn generate_api_key() -> Result<(IssuedApiKey, String), KeyHashError> {
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret = hex::encode(rand::random::<[u8; 24]>());
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| KeyHashError(e.to_string()))?
        .to_string();
    let key = format!("sg_{id}_{secret}");
    Ok((IssuedApiKey { id, key }, hash))
}

/// Splits a presented key into its id and secret; `None` if it does not
/// have the shape of a slotgate key.
pub fn split_api_key(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("sg_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id) && hex(secret)).then_some((id, secret))
}

/// Whether `secret` matches the stored `hash` (constant-time inside argon2).
/// A hash that cannot be read matches nothing.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn policies_round_trip_and_compute_expiry() {
        for p in [
            ConsentPolicy::PerCall,
            ConsentPolicy::Hours(12),
            ConsentPolicy::Days(30),
            ConsentPolicy::UntilRevoked,
        ] {
            assert_eq!(p.to_string().parse::<ConsentPolicy>().unwrap(), p);
        }
        assert!("hours:0".parse::<ConsentPolicy>().is_err());
        assert!("weeks:2".parse::<ConsentPolicy>().is_err());
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap();
        assert_eq!(
            ConsentPolicy::Hours(2).expires_at(t, None),
            Some(t + TimeDelta::hours(2))
        );
        assert_eq!(ConsentPolicy::UntilRevoked.expires_at(t, None), None);
        let end = t + TimeDelta::hours(1);
        assert_eq!(ConsentPolicy::PerCall.expires_at(t, Some(end)), Some(end));
    }

    #[test]
    fn keys_verify_against_their_hash_only() {
        let (issued, hash) = generate_api_key().unwrap();
        let (id, secret) = split_api_key(&issued.key).unwrap();
        assert_eq!(id, issued.id);
        assert!(!hash.contains(secret));
        assert!(verify_secret(secret, &hash));
        assert!(!verify_secret("00", &hash));
        assert!(!verify_secret(secret, "not a hash"));
        assert!(split_api_key("sg_zz_00").is_none());
        assert!(split_api_key("bearer").is_none());
        assert!(!format!("{issued:?}").contains(secret));
    }
}
