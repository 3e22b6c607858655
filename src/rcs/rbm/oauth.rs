//! Google service-account OAuth for RBM: the JWT bearer grant.
//!
//! RBM accepts only OAuth access tokens. A service account proves itself by
//! signing a short JWT (RS256, `iss` = its e-mail, `scope` = RBM, `aud` =
//! the token endpoint, one hour at most) and trading it at `token_uri` for
//! an access token. The key is parsed once at start so a bad key stops the
//! process instead of failing every send; the JWT itself is built by a pure
//! function of the current time, so tests can pin it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;

use super::RbmSetupError;
use crate::rcs::channel::SendError;
use crate::rcs::http::{shorten, transport_error};
use crate::rcs::secret::Secret;

/// The only scope RBM needs.
pub const RBM_SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";
/// Google's token endpoint, as written in every service-account key file.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The grant type of RFC 7523, as Google expects it.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Google's maximum lifetime for the assertion.
const ASSERTION_LIFETIME: TimeDelta = TimeDelta::seconds(3600);
/// Refresh this long before the token expires, so a request started with a
/// token never reaches Google after it lapsed.
const REFRESH_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// The identity RBM calls are made with.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as in Google's key file.
    pub private_key_pem: Secret,
    pub token_uri: String,
}

impl ServiceAccount {
    /// Reads the JSON key file the Google Cloud console hands out.
    pub fn from_key_file(json: &str) -> Result<ServiceAccount, RbmSetupError> {
        #[derive(Deserialize)]
        struct KeyFile {
            client_email: String,
            private_key: String,
            token_uri: Option<String>,
        }
        // serde_json's syntax errors never quote the input, but a type
        // error quotes the offending value ("invalid type: string \"…\""):
        // a file that is one JSON string (a PEM pasted as JSON, say) would
        // put the key into the message. Only an object goes on to typing,
        // whose fields are all strings.
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| RbmSetupError::Key(format!("not a service-account key file: {e}")))?;
        if !value.is_object() {
            return Err(RbmSetupError::Key(
                "not a service-account key file: a JSON object is expected".into(),
            ));
        }
        let file: KeyFile = serde_json::from_value(value)
            .map_err(|e| RbmSetupError::Key(format!("not a service-account key file: {e}")))?;
        Ok(ServiceAccount {
            client_email: file.client_email,
            private_key_pem: Secret::new(file.private_key),
            token_uri: file
                .token_uri
                .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string()),
        })
    }
}

/// The service account's private key, ready to sign.
pub(crate) struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    pub(crate) fn from_pem(pem: &Secret) -> Result<Signer, RbmSetupError> {
        let der = pem_to_der(pem.expose())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| RbmSetupError::Key(format!("not an RSA PKCS#8 private key: {e}")))?;
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SendError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| SendError::Auth("cannot sign the token request".into()))?;
        Ok(signature)
    }
}

/// Extracts the DER bytes of a PEM private key. Keys pasted through
/// environment variables often carry literal `\n` sequences instead of
/// newlines; they are accepted too.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, RbmSetupError> {
    let pem = pem.replace("\\n", "\n");
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = pem
        .find(begin)
        .ok_or_else(|| RbmSetupError::Key(format!("no `{begin}` line (PKCS#8 PEM expected)")))?;
    let body = &pem[start + begin.len()..];
    let stop = body
        .find(end)
        .ok_or_else(|| RbmSetupError::Key(format!("no `{end}` line")))?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|_| RbmSetupError::Key("the PEM body is not base64".into()))
}

/// The signed JWT that the grant trades for an access token, issued `now`.
pub(crate) fn assertion(
    account: &ServiceAccount,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<String, SendError> {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": account.client_email,
        "scope": RBM_SCOPE,
        "aud": account.token_uri,
        "iat": now.timestamp(),
        "exp": (now + ASSERTION_LIFETIME).timestamp(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// An access token and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedToken {
    pub(crate) token: Secret,
    pub(crate) expires_at: DateTime<Utc>,
}

impl CachedToken {
    pub(crate) fn usable_at(&self, now: DateTime<Utc>) -> bool {
        now + REFRESH_MARGIN < self.expires_at
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
}

/// Runs the JWT bearer grant against the account's token endpoint.
///
/// Any refusal by the endpoint is an `Auth` error: Google answers `400
/// invalid_grant` for a revoked key or a clock too far off, which no retry
/// fixes. Only an unavailable endpoint is `Transient`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    account: &ServiceAccount,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<CachedToken, SendError> {
    let jwt = assertion(account, signer, now)?;
    let response = http
        .post(&account.token_uri)
        .form(&[
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", jwt.as_str()),
        ])
        .send()
        .await
        .map_err(|e| transport_error("token endpoint", e))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| transport_error("token endpoint", e))?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(SendError::Transient(format!(
            "token endpoint: HTTP {}: {}",
            status.as_u16(),
            shorten(&body)
        )));
    }
    if !status.is_success() {
        // Google's error body names the reason (`invalid_grant`, …) and
        // never echoes the assertion.
        return Err(SendError::Auth(format!(
            "token endpoint: HTTP {}: {}",
            status.as_u16(),
            shorten(&body)
        )));
    }
    let parsed: TokenResponse = serde_json::from_str(&body)
        .map_err(|e| SendError::Auth(format!("token endpoint: unreadable token response: {e}")))?;
    if parsed.expires_in <= 0 {
        return Err(SendError::Auth(
            "token endpoint: token already expired".into(),
        ));
    }
    Ok(CachedToken {
        token: Secret::new(parsed.access_token),
        expires_at: now + TimeDelta::seconds(parsed.expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const TEST_KEY: &str =
        include_str!("../../../tests/fixtures/TEST-ONLY-rbm-service-account-key.pem");

    fn account() -> ServiceAccount {
        ServiceAccount {
            client_email: "agent@project.iam.gserviceaccount.com".into(),
            private_key_pem: Secret::new(TEST_KEY),
            token_uri: GOOGLE_TOKEN_URI.into(),
        }
    }

    #[test]
    fn assertion_carries_the_documented_claims_and_verifies() {
        let account = account();
        let signer = Signer::from_pem(&account.private_key_pem).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let jwt = assertion(&account, &signer, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "agent@project.iam.gserviceaccount.com",
                "scope": RBM_SCOPE,
                "aud": GOOGLE_TOKEN_URI,
                "iat": now.timestamp(),
                "exp": now.timestamp() + 3600,
            })
        );
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            signer.key.public().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn keys_from_env_vars_and_key_files() {
        let escaped = TEST_KEY.replace('\n', "\\n");
        assert!(Signer::from_pem(&Secret::new(escaped)).is_ok());
        let file = serde_json::json!({
            "type": "service_account",
            "client_email": "a@b.iam.gserviceaccount.com",
            "private_key": TEST_KEY,
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string();
        let account = ServiceAccount::from_key_file(&file).unwrap();
        assert_eq!(account.client_email, "a@b.iam.gserviceaccount.com");
        assert!(!format!("{account:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_key_file_that_is_not_an_object_is_not_echoed() {
        let pasted = serde_json::Value::String(TEST_KEY.into()).to_string();
        let err = ServiceAccount::from_key_file(&pasted).unwrap_err();
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
        let err = ServiceAccount::from_key_file(TEST_KEY).unwrap_err();
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let err = Signer::from_pem(&Secret::new("not a key")).unwrap_err();
        assert!(!err.to_string().contains("not a key"));
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(Signer::from_pem(&Secret::new(garbage)).is_err());
    }

    #[test]
    fn tokens_are_refreshed_a_minute_early() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let token = CachedToken {
            token: Secret::new("t"),
            expires_at: now + TimeDelta::seconds(3600),
        };
        assert!(token.usable_at(now));
        assert!(token.usable_at(now + TimeDelta::seconds(3539)));
        assert!(!token.usable_at(now + TimeDelta::seconds(3540)));
    }
}
