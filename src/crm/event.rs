//! The JSON document a CRM receives for one consent change.
//!
//! ```json
//! {"id": "…", "type": "consent.granted", "occurred_at": "2025-06-02T08:00:00Z",
//!  "enterprise_id": "…", "person_id": "…", "data": {…}}
//! ```
//!
//! `id` is unique per event and stays the same across retries: delivery is
//! at least once, so receivers de-duplicate on it. `type` is
//! `consent.<granted|declined|revoked|expired>` or
//! `consent_request.<created|sent|delivered|answered|expired|failed>`;
//! `data` is the consent or the consent request after the change. The
//! document is built when the change is committed and stored as text, so
//! every retry sends the same bytes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::consent::{Answer, Consent, ConsentRequest, RequestState};

/// One event as it is posted.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub enterprise_id: String,
    pub person_id: String,
    pub data: Value,
}

impl Envelope {
    /// The event for a consent in its new status (recorded, revoked or
    /// expired at `occurred_at`).
    pub fn for_consent(consent: &Consent, occurred_at: DateTime<Utc>) -> Envelope {
        Envelope {
            id: crate::consent::new_id(),
            event_type: format!("consent.{}", consent.status.as_str()),
            occurred_at,
            enterprise_id: consent.enterprise_id.clone(),
            person_id: consent.person_id.clone(),
            data: json!({
                "id": consent.id,
                "number": consent.number.as_str(),
                "scope": consent.scope.to_string(),
                "status": consent.status.as_str(),
                "window": consent.window.as_ref().map(|w| json!({
                    "start": instant(w.start),
                    "end": instant(w.end),
                    "time_zone": w.time_zone.name(),
                })),
                "expires_at": consent.expires_at.map(instant),
                "channel": consent.channel.as_str(),
                "created_at": instant(consent.created_at),
                "revoked_at": consent.revoked_at.map(instant),
            }),
        }
    }

    /// The event for a consent request that reached its current state at
    /// `occurred_at`.
    pub fn for_request(request: &ConsentRequest, occurred_at: DateTime<Utc>) -> Envelope {
        let (answer, failure_reason) = match &request.state {
            RequestState::Answered(answer) => (Some(answer_json(answer)), None),
            RequestState::Failed { reason } => (None, Some(reason.as_str())),
            _ => (None, None),
        };
        Envelope {
            id: crate::consent::new_id(),
            event_type: format!("consent_request.{}", request.state.name()),
            occurred_at,
            enterprise_id: request.enterprise_id.clone(),
            person_id: request.person_id.clone(),
            data: json!({
                "id": request.id,
                "number": request.number.as_str(),
                "scope": request.scope.to_string(),
                "state": request.state.name(),
                "answer": answer,
                "failure_reason": failure_reason,
                "options": request.options.iter().map(|o| json!({
                    "start": instant(o.start),
                    "end": instant(o.end),
                })).collect::<Vec<_>>(),
                "expires_at": instant(request.expires_at),
                "version": request.version,
            }),
        }
    }

    /// The event for what a scheduled callback's call gave:
    /// `call.<outcome>` (answered, busy, no-answer, failed, machine,
    /// abandoned, agent-unavailable, not-placed), with whether and when the
    /// campaign tries again.
    #[allow(clippy::too_many_arguments)]
    pub fn for_call_outcome(
        enterprise_id: &str,
        person_id: &str,
        callback_id: &str,
        attempt_id: &str,
        campaign: &str,
        callee: &str,
        outcome: &str,
        retry_at: Option<DateTime<Utc>>,
        occurred_at: DateTime<Utc>,
    ) -> Envelope {
        Envelope {
            id: crate::consent::new_id(),
            event_type: format!("call.{outcome}"),
            occurred_at,
            enterprise_id: enterprise_id.to_string(),
            person_id: person_id.to_string(),
            data: json!({
                "callback_id": callback_id,
                "attempt_id": attempt_id,
                "campaign": campaign,
                "number": callee,
                "outcome": outcome,
                "retry_at": retry_at.map(instant),
            }),
        }
    }

    /// The body to post: compact JSON, keys in alphabetical order.
    pub fn to_body(&self) -> String {
        json!({
            "id": self.id,
            "type": self.event_type,
            "occurred_at": instant(self.occurred_at),
            "enterprise_id": self.enterprise_id,
            "person_id": self.person_id,
            "data": self.data,
        })
        .to_string()
    }
}

fn answer_json(answer: &Answer) -> Value {
    let bounds = answer.bounds();
    json!({
        "kind": answer.kind(),
        "start": bounds.map(|b| instant(b.0)),
        "end": bounds.map(|b| instant(b.1)),
    })
}

/// RFC 3339 in UTC with a `Z`, as the rest of the API writes instants.
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Channel, ConsentStatus, Evidence, Scope, E164};
    use chrono::TimeZone;

    #[test]
    fn a_consent_event_names_its_status_and_keeps_its_id() {
        let t = Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap();
        let consent = Consent {
            id: "c1".into(),
            person_id: "p1".into(),
            enterprise_id: "e1".into(),
            number: E164::parse("+33612345678", None).unwrap(),
            scope: Scope::Campaign("winter".into()),
            status: ConsentStatus::Revoked,
            window: None,
            expires_at: None,
            channel: Channel::Api,
            evidence: Evidence::default(),
            created_at: t,
            updated_at: t,
            revoked_at: Some(t),
        };
        let event = Envelope::for_consent(&consent, t);
        assert_eq!(event.event_type, "consent.revoked");
        let body: Value = serde_json::from_str(&event.to_body()).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["type"], "consent.revoked");
        assert_eq!(body["occurred_at"], "2025-06-02T08:00:00Z");
        assert_eq!(body["person_id"], "p1");
        assert_eq!(body["data"]["number"], "+33612345678");
        assert_eq!(body["data"]["revoked_at"], "2025-06-02T08:00:00Z");
        // Two events for the same change are still two events.
        assert_ne!(Envelope::for_consent(&consent, t).id, event.id);
    }
}
