//! Consent requests: one question put to one person, as a state machine.
//!
//! ```text
//! created ─▶ sent ─▶ delivered ─▶ answered(now | slot | range | decline)
//!    │         │         │
//!    └─────────┴─────────┴──▶ expired | failed
//! ```
//!
//! The machine is pure (sans-I/O): events and the current time go in, the
//! new state comes out, and the store persists it with a version check so
//! that two nodes cannot both apply conflicting events. Channels deliver
//! receipts and replies at least once, so applying the same event again is
//! a no-op ([`Transition::Unchanged`]); an event that contradicts what
//! already happened is refused with a [`TransitionError`].

use std::fmt;

use chrono::{DateTime, Utc};

use super::{Scope, E164};

/// A slot offered to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotOption {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the person answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Call me now.
    Now,
    /// One of the offered slots.
    Slot(SlotOption),
    /// A range of the person's own choosing.
    Range {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Don't call.
    Decline,
}

impl Answer {
    /// Stored name of the answer's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Now => "now",
            Answer::Slot(_) => "slot",
            Answer::Range { .. } => "range",
            Answer::Decline => "decline",
        }
    }

    /// The instants the answer names, if any.
    pub fn bounds(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self {
            Answer::Slot(s) => Some((s.start, s.end)),
            Answer::Range { start, end } => Some((*start, *end)),
            Answer::Now | Answer::Decline => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    Created,
    Sent,
    Delivered,
    Answered(Answer),
    Expired,
    Failed { reason: String },
}

impl RequestState {
    /// Stored name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            RequestState::Created => "created",
            RequestState::Sent => "sent",
            RequestState::Delivered => "delivered",
            RequestState::Answered(_) => "answered",
            RequestState::Expired => "expired",
            RequestState::Failed { .. } => "failed",
        }
    }

    /// No event moves a request out of a final state.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RequestState::Answered(_) | RequestState::Expired | RequestState::Failed { .. }
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestState::Answered(a) => write!(f, "answered({})", a.kind()),
            other => f.write_str(other.name()),
        }
    }
}

/// Something that happened to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// The channel accepted the message.
    Sent {
        provider_message_id: String,
    },
    /// The handset received it.
    Delivered,
    Answered(Answer),
    /// The request's deadline passed without an answer.
    Expire,
    Failed {
        reason: String,
    },
}

impl RequestEvent {
    fn name(&self) -> &'static str {
        match self {
            RequestEvent::Sent { .. } => "sent",
            RequestEvent::Delivered => "delivered",
            RequestEvent::Answered(_) => "answered",
            RequestEvent::Expire => "expire",
            RequestEvent::Failed { .. } => "failed",
        }
    }
}

/// The outcome of a successful [`ConsentRequest::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The state changed; it must be persisted.
    Applied,
    /// The event had already been applied: nothing to do.
    Unchanged,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cannot apply `{event}` to a consent request that is {from}")]
    Illegal { from: String, event: &'static str },
    #[error("the request expired at {deadline}; an answer at {at} comes too late")]
    TooLate {
        deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("the request does not expire before {deadline} (now {at})")]
    NotYetExpired {
        deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("the answered slot {start}..{end} is not one of the options offered")]
    NotOffered {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error("the answered range ends before it starts")]
    EmptyRange,
    #[error("already sent with provider message id {existing:?}, not {presented:?}")]
    OtherMessage { existing: String, presented: String },
}

/// What is needed to open a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsentRequest {
    pub enterprise_id: String,
    pub person_id: String,
    pub number: E164,
    pub scope: Scope,
    pub options: Vec<SlotOption>,
    /// The held INVITE this request answers, if any.
    pub hold_id: Option<String>,
    /// After this instant no answer is accepted and the request may expire.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub id: String,
    pub enterprise_id: String,
    pub person_id: String,
    pub number: E164,
    pub scope: Scope,
    pub options: Vec<SlotOption>,
    pub hold_id: Option<String>,
    pub state: RequestState,
    pub provider_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Incremented by the store on every write; a write that expects an
    /// older version is refused, which is how two nodes are kept from
    /// applying conflicting events.
    pub version: i64,
}

impl ConsentRequest {
    /// A request in state `created`, at version 0 (not yet stored).
    pub fn new(id: String, new: NewConsentRequest, now: DateTime<Utc>) -> ConsentRequest {
        ConsentRequest {
            id,
            enterprise_id: new.enterprise_id,
            person_id: new.person_id,
            number: new.number,
            scope: new.scope,
            options: new.options,
            hold_id: new.hold_id,
            state: RequestState::Created,
            provider_message_id: None,
            created_at: now,
            updated_at: now,
            expires_at: new.expires_at,
            version: 0,
        }
    }

    /// Applies `event` observed at `now`. On error the request is left
    /// exactly as it was.
    pub fn apply(
        &mut self,
        event: RequestEvent,
        now: DateTime<Utc>,
    ) -> Result<Transition, TransitionError> {
        use RequestState as S;
        let illegal = |from: &RequestState| TransitionError::Illegal {
            from: from.to_string(),
            event: event.name(),
        };
        let next = match (&self.state, &event) {
            // Repeats of what already happened: at-least-once delivery from
            // channels and retried API calls must be harmless.
            (
                S::Sent,
                RequestEvent::Sent {
                    provider_message_id,
                },
            )
            | (
                S::Delivered,
                RequestEvent::Sent {
                    provider_message_id,
                },
            ) => {
                return self.same_message(provider_message_id);
            }
            (S::Delivered, RequestEvent::Delivered) | (S::Expired, RequestEvent::Expire) => {
                return Ok(Transition::Unchanged)
            }
            (S::Answered(given), RequestEvent::Answered(answer)) if given == answer => {
                return Ok(Transition::Unchanged)
            }
            (S::Failed { reason: had }, RequestEvent::Failed { reason }) if had == reason => {
                return Ok(Transition::Unchanged)
            }

            (S::Created, RequestEvent::Sent { .. }) => S::Sent,
            (S::Sent, RequestEvent::Delivered) => S::Delivered,
            (S::Sent | S::Delivered, RequestEvent::Answered(answer)) => {
                if now >= self.expires_at {
                    return Err(TransitionError::TooLate {
                        deadline: self.expires_at,
                        at: now,
                    });
                }
                self.check_answer(answer)?;
                S::Answered(answer.clone())
            }
            (S::Created | S::Sent | S::Delivered, RequestEvent::Expire) => {
                if now < self.expires_at {
                    return Err(TransitionError::NotYetExpired {
                        deadline: self.expires_at,
                        at: now,
                    });
                }
                S::Expired
            }
            (S::Created | S::Sent | S::Delivered, RequestEvent::Failed { reason }) => S::Failed {
                reason: reason.clone(),
            },
            (from, _) => return Err(illegal(from)),
        };
        if let RequestEvent::Sent {
            provider_message_id,
        } = event
        {
            self.provider_message_id = Some(provider_message_id);
        }
        self.state = next;
        self.updated_at = now;
        Ok(Transition::Applied)
    }

    fn same_message(&self, presented: &str) -> Result<Transition, TransitionError> {
        match &self.provider_message_id {
            Some(existing) if existing != presented => Err(TransitionError::OtherMessage {
                existing: existing.clone(),
                presented: presented.to_string(),
            }),
            _ => Ok(Transition::Unchanged),
        }
    }

    fn check_answer(&self, answer: &Answer) -> Result<(), TransitionError> {
        match answer {
            Answer::Slot(slot) if !self.options.contains(slot) => {
                Err(TransitionError::NotOffered {
                    start: slot.start,
                    end: slot.end,
                })
            }
            Answer::Range { start, end } if end <= start => Err(TransitionError::EmptyRange),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn slot(from: i64) -> SlotOption {
        SlotOption {
            start: t(from),
            end: t(from + 30),
        }
    }

    fn request() -> ConsentRequest {
        ConsentRequest::new(
            "r1".into(),
            NewConsentRequest {
                enterprise_id: "e".into(),
                person_id: "p".into(),
                number: E164::from_e164("+33612345678").unwrap(),
                scope: Scope::Purpose("renewal".into()),
                options: vec![slot(60), slot(120)],
                hold_id: Some("hold-1".into()),
                expires_at: t(30),
            },
            t(0),
        )
    }

    fn sent() -> RequestEvent {
        RequestEvent::Sent {
            provider_message_id: "m1".into(),
        }
    }

    #[test]
    fn happy_path_to_each_answer() {
        for answer in [
            Answer::Now,
            Answer::Slot(slot(120)),
            Answer::Range {
                start: t(200),
                end: t(260),
            },
            Answer::Decline,
        ] {
            let mut r = request();
            assert_eq!(r.apply(sent(), t(1)), Ok(Transition::Applied));
            assert_eq!(r.provider_message_id.as_deref(), Some("m1"));
            assert_eq!(
                r.apply(RequestEvent::Delivered, t(2)),
                Ok(Transition::Applied)
            );
            let event = RequestEvent::Answered(answer.clone());
            assert_eq!(r.apply(event, t(3)), Ok(Transition::Applied));
            assert_eq!(r.state, RequestState::Answered(answer));
            assert_eq!(r.updated_at, t(3));
        }
    }

    #[test]
    fn a_delivery_receipt_after_the_answer_is_refused() {
        let mut r = request();
        r.apply(sent(), t(1)).unwrap();
        r.apply(RequestEvent::Answered(Answer::Now), t(2)).unwrap();
        assert!(matches!(
            r.apply(RequestEvent::Delivered, t(3)),
            Err(TransitionError::Illegal { .. })
        ));
    }

    #[test]
    fn repeated_events_change_nothing() {
        let mut r = request();
        r.apply(sent(), t(1)).unwrap();
        let before = r.clone();
        assert_eq!(r.apply(sent(), t(2)), Ok(Transition::Unchanged));
        assert_eq!(r, before);
        r.apply(RequestEvent::Delivered, t(3)).unwrap();
        assert_eq!(
            r.apply(RequestEvent::Delivered, t(4)),
            Ok(Transition::Unchanged)
        );
        assert_eq!(r.apply(sent(), t(4)), Ok(Transition::Unchanged));
        r.apply(RequestEvent::Answered(Answer::Decline), t(5))
            .unwrap();
        let answered = r.clone();
        assert_eq!(
            r.apply(RequestEvent::Answered(Answer::Decline), t(6)),
            Ok(Transition::Unchanged)
        );
        assert_eq!(r, answered);
    }

    #[test]
    fn illegal_transitions_are_refused_and_leave_the_request_alone() {
        let mut r = request();
        let fresh = r.clone();
        for event in [RequestEvent::Delivered, RequestEvent::Answered(Answer::Now)] {
            assert!(matches!(
                r.apply(event, t(1)),
                Err(TransitionError::Illegal { .. })
            ));
            assert_eq!(r, fresh);
        }
        r.apply(sent(), t(1)).unwrap();
        r.apply(RequestEvent::Answered(Answer::Now), t(2)).unwrap();
        let answered = r.clone();
        for event in [
            RequestEvent::Answered(Answer::Decline),
            RequestEvent::Expire,
            RequestEvent::Failed { reason: "x".into() },
        ] {
            assert!(matches!(
                r.apply(event, t(40)),
                Err(TransitionError::Illegal { .. })
            ));
        }
        assert_eq!(r, answered);
        assert!(matches!(
            r.apply(
                RequestEvent::Sent {
                    provider_message_id: "other".into()
                },
                t(3)
            ),
            Err(TransitionError::Illegal { .. })
        ));
    }

    #[test]
    fn a_second_send_with_another_message_id_is_refused() {
        let mut r = request();
        r.apply(sent(), t(1)).unwrap();
        let other = RequestEvent::Sent {
            provider_message_id: "m2".into(),
        };
        assert!(matches!(
            r.apply(other, t(2)),
            Err(TransitionError::OtherMessage { .. })
        ));
    }

    #[test]
    fn deadlines() {
        let mut r = request();
        r.apply(sent(), t(1)).unwrap();
        assert!(matches!(
            r.apply(RequestEvent::Expire, t(29)),
            Err(TransitionError::NotYetExpired { .. })
        ));
        assert!(matches!(
            r.apply(RequestEvent::Answered(Answer::Now), t(30)),
            Err(TransitionError::TooLate { .. })
        ));
        assert_eq!(
            r.apply(RequestEvent::Expire, t(30)),
            Ok(Transition::Applied)
        );
        assert_eq!(
            r.apply(RequestEvent::Expire, t(31)),
            Ok(Transition::Unchanged)
        );
        assert!(r.state.is_final());
        // A request never sent can expire too.
        let mut unsent = request();
        assert_eq!(
            unsent.apply(RequestEvent::Expire, t(30)),
            Ok(Transition::Applied)
        );
    }

    #[test]
    fn answers_are_checked_against_the_offer() {
        let mut r = request();
        r.apply(sent(), t(1)).unwrap();
        assert!(matches!(
            r.apply(RequestEvent::Answered(Answer::Slot(slot(90))), t(2)),
            Err(TransitionError::NotOffered { .. })
        ));
        let backwards = Answer::Range {
            start: t(100),
            end: t(100),
        };
        assert_eq!(
            r.apply(RequestEvent::Answered(backwards), t(2)),
            Err(TransitionError::EmptyRange)
        );
        assert_eq!(r.state, RequestState::Sent);
    }

    #[test]
    fn failures() {
        let mut r = request();
        let failed = RequestEvent::Failed {
            reason: "no RCS, SMS refused".into(),
        };
        assert_eq!(r.apply(failed.clone(), t(1)), Ok(Transition::Applied));
        assert_eq!(r.apply(failed, t(2)), Ok(Transition::Unchanged));
        assert!(matches!(
            r.apply(
                RequestEvent::Failed {
                    reason: "other".into()
                },
                t(3)
            ),
            Err(TransitionError::Illegal { .. })
        ));
        assert_eq!(r.state.name(), "failed");
    }
}
