//! RBM's webhook, as pure functions: the one-time setup handshake and the
//! verification of every Pub/Sub push that follows.
//!
//! Google signs the *decoded* `message.data` of each push with
//! HMAC-SHA512 keyed by the webhook's `clientToken` and sends it base64 in
//! `X-Goog-Signature`. Nothing of a push is parsed as an event before that
//! signature checks out, so a forged body can only ever produce an error.
//! The HTTP handler built on these functions answers `401` for
//! [`InboundError::MissingSignature`] / [`InboundError::BadSignature`] and
//! `400` for [`InboundError::Malformed`], and stores nothing in either case.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha512;
use subtle::ConstantTimeEq;

use crate::consent::E164;
use crate::rcs::channel::{InboundError, InboundEvent};

/// The header carrying the push signature.
pub const SIGNATURE_HEADER: &str = "X-Goog-Signature";

type HmacSha512 = Hmac<Sha512>;

/// Answers the setup handshake: when RBM registers the webhook it posts
/// `{"clientToken": …, "secret": …}` and expects `200` with the bare secret
/// as the body. Returns that secret only if the token is ours (compared in
/// constant time); `None` means "not a handshake for us" and the caller
/// answers as for any unverified body.
pub fn handshake(body: &[u8], client_token: &str) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Handshake {
        client_token: String,
        secret: String,
    }
    let hello: Handshake = serde_json::from_slice(body).ok()?;
    let matches: bool = hello
        .client_token
        .as_bytes()
        .ct_eq(client_token.as_bytes())
        .into();
    matches.then_some(hello.secret)
}

/// `X-Goog-Signature` for `data` (the decoded `message.data`): what Google
/// sends, and what tests and the simulator use to sign their pushes.
pub fn signature(client_token: &str, data: &[u8]) -> String {
    STANDARD.encode(mac(client_token, data).finalize().into_bytes())
}

fn mac(client_token: &str, data: &[u8]) -> HmacSha512 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha512 as Mac>::new_from_slice(client_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    message: PubSubMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PubSubMessage {
    data: String,
    publish_time: Option<String>,
}

/// Verifies one Pub/Sub push and reads the events it carries.
///
/// Returns an empty list for verified pushes slotgate has no use for
/// (typing indicators, files, server events): they must still be
/// acknowledged with `200`, or Google retries them for a week.
pub fn verify_push(
    signature_header: Option<&str>,
    body: &[u8],
    client_token: &str,
) -> Result<Vec<InboundEvent>, InboundError> {
    let header = signature_header.ok_or(InboundError::MissingSignature)?;
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("not a Pub/Sub push: {e}")))?;
    let data = STANDARD
        .decode(envelope.message.data.as_bytes())
        .map_err(|_| InboundError::Malformed("message.data is not base64".into()))?;
    let claimed = STANDARD
        .decode(header.as_bytes())
        .map_err(|_| InboundError::BadSignature)?;
    mac(client_token, &data)
        .verify_slice(&claimed)
        .map_err(|_| InboundError::BadSignature)?;
    parse_event(&data, envelope.message.publish_time.as_deref())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserPayload {
    sender_phone_number: Option<String>,
    message_id: Option<String>,
    send_time: Option<String>,
    text: Option<String>,
    suggestion_response: Option<SuggestionResponse>,
    event_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuggestionResponse {
    postback_data: Option<String>,
    text: Option<String>,
}

fn parse_event(data: &[u8], publish_time: Option<&str>) -> Result<Vec<InboundEvent>, InboundError> {
    let payload: UserPayload = serde_json::from_slice(data)
        .map_err(|e| InboundError::Malformed(format!("message.data is not an RBM event: {e}")))?;
    let is_reply = payload.suggestion_response.is_some() || payload.text.is_some();
    let is_receipt = matches!(payload.event_type.as_deref(), Some("DELIVERED" | "READ"));
    if !is_reply && !is_receipt {
        return Ok(Vec::new());
    }
    let provider_message_id = payload
        .message_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| InboundError::Malformed("messageId is missing".into()))?;
    // Replies carry the handset's send time; a push without one falls back
    // to when Pub/Sub published it rather than to our clock, so a replayed
    // push yields the same event.
    let at_text = payload
        .send_time
        .as_deref()
        .or(publish_time)
        .ok_or_else(|| InboundError::Malformed("sendTime is missing".into()))?;
    let at = DateTime::parse_from_rfc3339(at_text)
        .map_err(|_| InboundError::Malformed(format!("sendTime {at_text:?} is not RFC 3339")))?
        .with_timezone(&Utc);
    let event = match payload.event_type.as_deref() {
        Some("DELIVERED") if !is_reply => InboundEvent::Delivered {
            provider_message_id,
            at,
        },
        Some("READ") if !is_reply => InboundEvent::Read {
            provider_message_id,
            at,
        },
        _ => {
            let sender = payload
                .sender_phone_number
                .ok_or_else(|| InboundError::Malformed("senderPhoneNumber is missing".into()))?;
            let from = E164::from_e164(&sender)
                .map_err(|e| InboundError::Malformed(format!("senderPhoneNumber: {e}")))?;
            let (postback, chip_text) = match payload.suggestion_response {
                Some(s) => (s.postback_data, s.text),
                None => (None, None),
            };
            InboundEvent::Reply {
                from,
                provider_message_id,
                postback,
                text: payload.text.or(chip_text),
                at,
            }
        }
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "SJENCPGJESMGUFPY";

    fn push(data: &serde_json::Value) -> (Vec<u8>, String) {
        let raw = data.to_string();
        let body = json!({
            "message": {
                "data": STANDARD.encode(&raw),
                "messageId": "2070443601311540",
                "publishTime": "2026-03-01T12:00:01.000Z",
            },
            "subscription": "projects/rbm-agent/subscriptions/rbm-agent-sub",
        });
        (
            body.to_string().into_bytes(),
            signature(TOKEN, raw.as_bytes()),
        )
    }

    #[test]
    fn handshake_answers_only_our_token() {
        let body = br#"{"clientToken":"SJENCPGJESMGUFPY","secret":"1234567890"}"#;
        assert_eq!(handshake(body, TOKEN).as_deref(), Some("1234567890"));
        assert_eq!(handshake(body, "OTHER"), None);
        assert_eq!(handshake(b"{}", TOKEN), None);
        assert_eq!(handshake(b"not json", TOKEN), None);
    }

    #[test]
    fn a_chip_reply() {
        let (body, sig) = push(&json!({
            "senderPhoneNumber": "+33612345678",
            "messageId": "MxkGq8xdFRTK2FZfDN-vwfcw",
            "sendTime": "2026-03-01T12:00:00.123456Z",
            "agentId": "slotgate_agent",
            "suggestionResponse": {"postbackData": "h1", "text": "In 1 hour", "type": "REPLY"},
        }));
        let events = verify_push(Some(&sig), &body, TOKEN).unwrap();
        assert_eq!(events.len(), 1);
        match &events[0] {
            InboundEvent::Reply {
                from,
                provider_message_id,
                postback,
                text,
                ..
            } => {
                assert_eq!(from.as_str(), "+33612345678");
                assert_eq!(provider_message_id, "MxkGq8xdFRTK2FZfDN-vwfcw");
                assert_eq!(postback.as_deref(), Some("h1"));
                assert_eq!(text.as_deref(), Some("In 1 hour"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn receipts_and_ignored_events() {
        let (body, sig) = push(&json!({
            "senderPhoneNumber": "+33612345678",
            "eventType": "READ",
            "eventId": "e1",
            "messageId": "our-id",
            "sendTime": "2026-03-01T12:00:00Z",
            "agentId": "a",
        }));
        assert!(matches!(
            verify_push(Some(&sig), &body, TOKEN).unwrap().as_slice(),
            [InboundEvent::Read { provider_message_id, .. }] if provider_message_id == "our-id"
        ));
        let (body, sig) = push(&json!({
            "senderPhoneNumber": "+33612345678",
            "eventType": "IS_TYPING",
            "eventId": "e2",
            "sendTime": "2026-03-01T12:00:00Z",
        }));
        assert_eq!(verify_push(Some(&sig), &body, TOKEN).unwrap(), vec![]);
    }

    #[test]
    fn signatures() {
        let (body, sig) = push(
            &json!({"senderPhoneNumber": "+33612345678", "messageId": "x", "text": "hi", "sendTime": "2026-03-01T12:00:00Z"}),
        );
        assert_eq!(
            verify_push(None, &body, TOKEN),
            Err(InboundError::MissingSignature)
        );
        assert_eq!(
            verify_push(Some(&sig), &body, "another token"),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_push(Some("%%%"), &body, TOKEN),
            Err(InboundError::BadSignature)
        );
        assert!(matches!(
            verify_push(Some(&sig), b"{\"message\": 1}", TOKEN),
            Err(InboundError::Malformed(_))
        ));
    }

    #[test]
    fn signed_garbage_is_malformed() {
        let raw = b"not json";
        let body = json!({"message": {"data": STANDARD.encode(raw)}}).to_string();
        assert!(matches!(
            verify_push(Some(&signature(TOKEN, raw)), body.as_bytes(), TOKEN),
            Err(InboundError::Malformed(_))
        ));
        let (body, sig) = push(
            &json!({"senderPhoneNumber": "0612345678", "messageId": "x", "text": "hi", "sendTime": "2026-03-01T12:00:00Z"}),
        );
        assert!(matches!(
            verify_push(Some(&sig), &body, TOKEN),
            Err(InboundError::Malformed(_))
        ));
    }
}
