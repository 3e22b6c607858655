//! The webhook signature: how a receiver knows a body came from slotgate,
//! unaltered, recently.
//!
//! Each delivery carries
//!
//! ```text
//! Slotgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! where `secret` is the enterprise's `crm_webhook_secret` and `body` the
//! exact bytes of the request body. Signing the timestamp with the body lets
//! a receiver refuse replays of an old delivery; several `v1=` entries may
//! appear (a receiver accepts the request if any matches), which leaves room
//! to rotate secrets. This is the scheme Stripe made familiar, so receivers
//! can reuse what they know. [`verify`] is the reference receiver-side check.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Slotgate-Signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed: expected t=<unix>,v1=<hex>")]
    Malformed,
    #[error("the signature timestamp is {age_secs} s away from now, beyond the tolerance")]
    Stale { age_secs: i64 },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`, in lower-case hex.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The full header value for a body sent at `timestamp`.
pub fn header_value(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a `Slotgate-Signature` header against `body`, as a receiver
/// should: the timestamp must be within `tolerance_secs` of `now_unix`
/// (either way, for clock skew), and one `v1` entry must equal the HMAC,
/// compared in constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            // Unknown schemes are skipped so a future v2 does not break v1 receivers.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_secs = now_unix.saturating_sub(timestamp);
    if age_secs.saturating_abs() > tolerance_secs {
        return Err(SignatureError::Stale { age_secs });
    }
    // verify_slice compares in constant time.
    if candidates
        .iter()
        .any(|c| mac(secret, timestamp, body).verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt","type":"consent.granted"}"#;

    #[test]
    fn a_signed_body_verifies() {
        let header = header_value(b"whsec_1", 1_700_000_000, BODY);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(b"whsec_1", &header, BODY, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn matches_an_independent_computation() {
        // printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1, b"{}"),
            "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn the_wrong_secret_is_rejected() {
        let header = header_value(b"whsec_other", 1_700_000_000, BODY);
        assert_eq!(
            verify(b"whsec_1", &header, BODY, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_body_is_rejected() {
        let header = header_value(b"whsec_1", 1_700_000_000, BODY);
        assert_eq!(
            verify(b"whsec_1", &header, b"{}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_or_future_timestamps_are_rejected() {
        let header = header_value(b"whsec_1", 1_700_000_000, BODY);
        assert_eq!(
            verify(b"whsec_1", &header, BODY, 1_700_000_301, 300),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert_eq!(
            verify(b"whsec_1", &header, BODY, 1_699_999_000, 300),
            Err(SignatureError::Stale { age_secs: -1000 })
        );
    }

    #[test]
    fn any_matching_v1_entry_is_enough() {
        let good = sign(b"whsec_1", 1_700_000_000, BODY);
        let header = format!("t=1700000000,v1={},v1={good},v0=zz", "ab".repeat(32));
        assert_eq!(
            verify(b"whsec_1", &header, BODY, 1_700_000_000, 300),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for header in ["", "t=1", "v1=abcd", "t=x,v1=abcd", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify(b"s", header, BODY, 1, 300),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
