//! The body of `phones.agentMessages.create`: an [`OutboundMessage`] as RBM
//! JSON.
//!
//! Kept pure so the exact wire format is tested without a server. RBM
//! refuses a whole message (`400`) if one chip breaks its limits, so limits
//! are enforced here rather than trusted to callers: labels are cut to
//! [`MAX_LABEL_CHARS`] characters, and at most [`MAX_SUGGESTIONS`] chips are
//! sent.

use std::time::Duration;

use serde_json::{json, Value};

use crate::consent::{E164, MAX_LABEL_CHARS};
use crate::rcs::channel::OutboundMessage;

/// RBM's limit on suggestions in one message.
pub const MAX_SUGGESTIONS: usize = 11;

/// What the message is for, as RBM classifies traffic (carriers bill and
/// filter by it). A consent prompt is usually `Transaction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageTrafficType {
    Authentication,
    #[default]
    Transaction,
    Promotion,
    ServiceRequest,
    Acknowledgement,
}

impl MessageTrafficType {
    /// The enum value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageTrafficType::Authentication => "AUTHENTICATION",
            MessageTrafficType::Transaction => "TRANSACTION",
            MessageTrafficType::Promotion => "PROMOTION",
            MessageTrafficType::ServiceRequest => "SERVICEREQUEST",
            MessageTrafficType::Acknowledgement => "ACKNOWLEDGEMENT",
        }
    }
}

/// A chip that opens the dialler on a number (e.g. the enterprise's line),
/// offered after the reply chips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialAction {
    pub label: String,
    pub phone_number: E164,
    pub postback: String,
}

/// Cuts `label` to RBM's chip limit on a character boundary (RBM counts
/// characters, not bytes; slicing bytes could split a character and panic).
pub fn chip_label(label: &str) -> String {
    label.chars().take(MAX_LABEL_CHARS).collect()
}

/// `google.protobuf.Duration` JSON: seconds with an `s` suffix.
fn duration(ttl: Duration) -> String {
    match ttl.subsec_nanos() {
        0 => format!("{}s", ttl.as_secs()),
        nanos => {
            let fraction = format!("{nanos:09}");
            format!("{}.{}s", ttl.as_secs(), fraction.trim_end_matches('0'))
        }
    }
}

/// The `AgentMessage` JSON for `message`.
pub fn agent_message(
    message: &OutboundMessage,
    traffic_type: MessageTrafficType,
    dial_action: Option<&DialAction>,
) -> Value {
    let reply_room = MAX_SUGGESTIONS - usize::from(dial_action.is_some());
    let mut suggestions: Vec<Value> = message
        .choices
        .iter()
        .take(reply_room)
        .map(|choice| {
            json!({"reply": {
                "text": chip_label(&choice.label),
                "postbackData": choice.postback,
            }})
        })
        .collect();
    if let Some(dial) = dial_action {
        suggestions.push(json!({"action": {
            "text": chip_label(&dial.label),
            "postbackData": dial.postback,
            "dialAction": {"phoneNumber": dial.phone_number.as_str()},
        }}));
    }
    let mut content = json!({"text": message.text});
    if !suggestions.is_empty() {
        content["suggestions"] = Value::Array(suggestions);
    }
    let mut body = json!({
        "contentMessage": content,
        "messageTrafficType": traffic_type.as_str(),
    });
    // A zero TTL would expire the message at once; leaving it out keeps
    // RBM's default (delivery attempts for 30 days).
    if !message.ttl.is_zero() {
        body["ttl"] = Value::String(duration(message.ttl));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Choice, OfferedChoice};

    fn choice(label: &str, postback: &str) -> OfferedChoice {
        OfferedChoice {
            label: label.into(),
            postback: postback.into(),
            choice: Choice::Now,
        }
    }

    fn message(choices: Vec<OfferedChoice>) -> OutboundMessage {
        OutboundMessage {
            message_id: "m1".into(),
            to: E164::from_e164("+33612345678").unwrap(),
            text: "When may we call?".into(),
            choices,
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn exact_json() {
        let body = agent_message(
            &message(vec![choice("Now", "now"), choice("In 1 hour", "h1")]),
            MessageTrafficType::Transaction,
            None,
        );
        assert_eq!(
            body,
            json!({
                "contentMessage": {
                    "text": "When may we call?",
                    "suggestions": [
                        {"reply": {"text": "Now", "postbackData": "now"}},
                        {"reply": {"text": "In 1 hour", "postbackData": "h1"}},
                    ],
                },
                "messageTrafficType": "TRANSACTION",
                "ttl": "3600s",
            })
        );
    }

    #[test]
    fn labels_cut_on_characters_and_at_most_eleven_chips() {
        let long = "é".repeat(30);
        let many: Vec<_> = (0..14).map(|i| choice(&long, &format!("p{i}"))).collect();
        let dial = DialAction {
            label: "Call us".into(),
            phone_number: E164::from_e164("+33140000000").unwrap(),
            postback: "dial".into(),
        };
        let body = agent_message(&message(many), MessageTrafficType::Promotion, Some(&dial));
        let chips = body["contentMessage"]["suggestions"].as_array().unwrap();
        assert_eq!(chips.len(), MAX_SUGGESTIONS);
        assert_eq!(chips[0]["reply"]["text"].as_str().unwrap(), "é".repeat(25));
        assert_eq!(
            chips[10],
            json!({"action": {
                "text": "Call us",
                "postbackData": "dial",
                "dialAction": {"phoneNumber": "+33140000000"},
            }})
        );
        assert_eq!(body["messageTrafficType"], "PROMOTION");
    }

    #[test]
    fn no_chips_and_durations() {
        let mut m = message(vec![]);
        m.ttl = Duration::from_millis(1500);
        let body = agent_message(&m, MessageTrafficType::Transaction, None);
        assert!(body["contentMessage"].get("suggestions").is_none());
        assert_eq!(body["ttl"], "1.5s");
        m.ttl = Duration::ZERO;
        let body = agent_message(&m, MessageTrafficType::Transaction, None);
        assert!(body.get("ttl").is_none());
    }
}
