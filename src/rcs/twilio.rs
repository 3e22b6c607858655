//! The SMS fallback through an aggregator speaking Twilio's Messages API.
//!
//! Sending is one form-encoded `POST /2010-04-01/Accounts/{AccountSid}/
//! Messages.json` with HTTP basic auth (Account SID : Auth Token); the
//! answer's `sid` identifies the message in later status callbacks. SMS has
//! no chips, so the prompt's text already lists numbered options and the
//! choices are not sent separately.
//!
//! Twilio signs its webhooks (inbound SMS and status callbacks) with
//! `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + every POST
//! parameter as name+value, sorted by name)). [`verify_webhook`] checks that
//! before reading anything, as a pure function of the request the handler
//! received; the handler must pass the URL exactly as Twilio called it (the
//! public `https://` address, not the one a reverse proxy forwarded to).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde::Deserialize;
use sha1::Sha1;

use crate::consent::E164;
use crate::rcs::channel::{InboundError, InboundEvent, OutboundMessage, SendError, SendOutcome};
use crate::rcs::http::{shorten, status_error, transport_error};
use crate::rcs::secret::Secret;

/// Where Twilio's REST API lives in production.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";
/// The header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// Twilio's range for `ValidityPeriod`, in seconds.
const MAX_VALIDITY_SECS: u64 = 36_000;
/// Twilio's error code for a `To` that cannot receive SMS (a landline).
const NOT_A_MOBILE_NUMBER: u32 = 21614;

type HmacSha1 = Hmac<Sha1>;

/// Who the SMS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// One of the account's numbers (`From`).
    Number(E164),
    /// A Messaging Service (`MessagingServiceSid`, `MG…`), which picks the
    /// number itself.
    MessagingService(String),
}

#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// [`TWILIO_BASE_URL`], or a local server in tests.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: Sender,
    /// Where Twilio posts delivery status; `None` keeps the number's or the
    /// service's configured callback.
    pub status_callback: Option<String>,
    /// Per request; past it the send is `Transient`.
    pub timeout: Duration,
}

/// Why a Twilio client could not be built; reported at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioSetupError {
    #[error("Twilio base URL {0:?} is not an absolute http(s) URL")]
    BaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Sends prompts as SMS through one Twilio account.
pub struct TwilioClient {
    http: reqwest::Client,
    endpoint: Url,
    settings: TwilioSettings,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

/// The form fields of one send, in the order they are encoded.
pub fn message_form(
    message: &OutboundMessage,
    settings: &TwilioSettings,
) -> Vec<(&'static str, String)> {
    let mut form = vec![("To", message.to.as_str().to_string())];
    match &settings.from {
        Sender::Number(number) => form.push(("From", number.as_str().to_string())),
        Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.clone())),
    }
    form.push(("Body", message.text.clone()));
    if let Some(callback) = &settings.status_callback {
        form.push(("StatusCallback", callback.clone()));
    }
    // A consent prompt is useless once its hold window has passed; Twilio
    // drops a queued SMS older than this instead of delivering it late.
    if !message.ttl.is_zero() {
        let secs = message.ttl.as_secs().clamp(1, MAX_VALIDITY_SECS);
        form.push(("ValidityPeriod", secs.to_string()));
    }
    form
}

impl TwilioClient {
    pub fn new(settings: TwilioSettings) -> Result<TwilioClient, TwilioSetupError> {
        let bad_url = || TwilioSetupError::BaseUrl(settings.base_url.clone());
        let mut endpoint = Url::parse(&settings.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(bad_url)?;
        endpoint
            .path_segments_mut()
            .map_err(|_| bad_url())?
            .pop_if_empty()
            .extend([
                "2010-04-01",
                "Accounts",
                &settings.account_sid,
                "Messages.json",
            ]);
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| TwilioSetupError::Http(e.to_string()))?;
        Ok(TwilioClient {
            http,
            endpoint,
            settings,
        })
    }

    /// Sends `message` as one SMS. Twilio takes no idempotency key, so a
    /// retried send after a timeout may deliver twice; the dispatcher
    /// limits that by retrying only `Transient` failures.
    pub async fn send(&self, message: &OutboundMessage) -> Result<SendOutcome, SendError> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .basic_auth(
                &self.settings.account_sid,
                Some(self.settings.auth_token.expose()),
            )
            .form(&message_form(message, &self.settings))
            .send()
            .await
            .map_err(|e| transport_error("Twilio", e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| transport_error("Twilio", e))?;
        if status.is_success() {
            #[derive(Deserialize)]
            struct Created {
                sid: String,
            }
            // The SMS is already queued; retrying would send it twice, so
            // an unreadable answer is a refusal, not a transient failure.
            let created: Created = serde_json::from_str(&body).map_err(|e| {
                SendError::Rejected(format!(
                    "Twilio: accepted, but the answer is unreadable: {e}"
                ))
            })?;
            tracing::debug!(message_id = %message.message_id, sid = %created.sid, "Twilio accepted the SMS");
            return Ok(SendOutcome::Accepted {
                provider_message_id: created.sid,
            });
        }
        #[derive(Deserialize)]
        struct TwilioError {
            code: Option<u32>,
            message: Option<String>,
        }
        let error = serde_json::from_str::<TwilioError>(&body).ok();
        if error.as_ref().and_then(|e| e.code) == Some(NOT_A_MOBILE_NUMBER) {
            return Ok(SendOutcome::Unreachable);
        }
        let detail = match error {
            Some(TwilioError {
                code,
                message: Some(text),
            }) => shorten(&format!("{} {text}", code.unwrap_or_default())),
            _ => shorten(&body),
        };
        Err(status_error("Twilio", status, &detail))
    }
}

/// `X-Twilio-Signature` for a POST to `url` with `params`.
pub fn signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    STANDARD.encode(mac(url, params, auth_token).finalize().into_bytes())
}

fn mac(url: &str, params: &[(String, String)], auth_token: &str) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Stable: repeated names keep the order they were posted in.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut mac = <HmacSha1 as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Verifies a Twilio webhook (inbound SMS or status callback) and reads it.
///
/// `params` are the decoded form fields as posted; `now` stamps replies,
/// because Twilio's inbound webhook carries no send time. `delivered`,
/// `read`, `failed` and `undelivered` statuses become events; one that
/// slotgate does not act on (`queued`, `sent`, …) verifies to no event.
pub fn verify_webhook(
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
    auth_token: &str,
    now: DateTime<Utc>,
) -> Result<Vec<InboundEvent>, InboundError> {
    let header = signature.ok_or(InboundError::MissingSignature)?;
    let claimed = STANDARD
        .decode(header.as_bytes())
        .map_err(|_| InboundError::BadSignature)?;
    mac(url, params, auth_token)
        .verify_slice(&claimed)
        .map_err(|_| InboundError::BadSignature)?;

    let sid = param(params, "MessageSid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InboundError::Malformed("MessageSid is missing".into()))?
        .to_string();
    match param(params, "MessageStatus") {
        Some("delivered") => {
            return Ok(vec![InboundEvent::Delivered {
                provider_message_id: sid,
                at: now,
            }])
        }
        Some("read") => {
            return Ok(vec![InboundEvent::Read {
                provider_message_id: sid,
                at: now,
            }])
        }
        Some(status @ ("failed" | "undelivered")) => {
            let reason = match param(params, "ErrorCode").filter(|c| !c.is_empty()) {
                Some(code) => format!("sms {status} (Twilio error {code})"),
                None => format!("sms {status}"),
            };
            return Ok(vec![InboundEvent::Undelivered {
                provider_message_id: sid,
                reason,
                at: now,
            }]);
        }
        Some("received") | None => {}
        Some(_) => return Ok(Vec::new()),
    }
    let body = param(params, "Body")
        .ok_or_else(|| InboundError::Malformed("neither MessageStatus nor Body".into()))?;
    let from =
        param(params, "From").ok_or_else(|| InboundError::Malformed("From is missing".into()))?;
    let from = E164::from_e164(from).map_err(|e| InboundError::Malformed(format!("From: {e}")))?;
    Ok(vec![InboundEvent::Reply {
        from,
        provider_message_id: sid,
        postback: None,
        text: Some(body.to_string()),
        at: now,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn signature_matches_twilio_documented_example() {
        // The worked example of Twilio's security documentation (auth
        // token `12345`), posted out of order: sorting is part of the rule.
        // Cross-checked with `openssl dgst -sha1 -hmac 12345`.
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let params = owned(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(
            signature(url, &params, "12345"),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
    }

    #[test]
    fn inbound_sms_and_statuses() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let url = "https://slotgate.example/webhooks/twilio";
        let sms = owned(&[
            ("MessageSid", "SM1"),
            ("From", "+33612345678"),
            ("To", "+33140000000"),
            ("Body", "2"),
        ]);
        let sig = signature(url, &sms, "tok");
        assert_eq!(
            verify_webhook(url, &sms, Some(&sig), "tok", now).unwrap(),
            vec![InboundEvent::Reply {
                from: E164::from_e164("+33612345678").unwrap(),
                provider_message_id: "SM1".into(),
                postback: None,
                text: Some("2".into()),
                at: now,
            }]
        );
        let failed = owned(&[
            ("MessageSid", "SM3"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        let sig = signature(url, &failed, "tok");
        assert_eq!(
            verify_webhook(url, &failed, Some(&sig), "tok", now).unwrap(),
            vec![InboundEvent::Undelivered {
                provider_message_id: "SM3".into(),
                reason: "sms undelivered (Twilio error 30003)".into(),
                at: now,
            }]
        );
        let sent = owned(&[("MessageSid", "SM2"), ("MessageStatus", "sent")]);
        let sig = signature(url, &sent, "tok");
        assert_eq!(
            verify_webhook(url, &sent, Some(&sig), "tok", now).unwrap(),
            vec![]
        );
        assert_eq!(
            verify_webhook(url, &sent, None, "tok", now),
            Err(InboundError::MissingSignature)
        );
        assert_eq!(
            verify_webhook(url, &sent, Some(&sig), "other", now),
            Err(InboundError::BadSignature)
        );
    }
}
