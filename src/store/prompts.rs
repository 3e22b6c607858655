//! Persistence of the consent exchange: what each prompt offered, which
//! requests wait to be sent, and the ledger of what came back.
//!
//! The rules it keeps are the ones that need the database: a prompt's
//! choices are durable before it is sent; a request is sent by one
//! dispatcher at a time (leases); a provider message acts once, and its
//! effect (an answer and its consent, or a revocation with its do-not-call
//! entry) commits with its ledger row or not at all.

use chrono::{DateTime, TimeDelta, Utc};

use super::consent::ConsentStoreError;
use super::{Engine, Store};
use crate::consent::{
    Answer, Choice, Consent, ConsentRequest, OfferedChoice, PromptTemplates, E164,
};
use crate::timing::{ContactHistory, PastPrompt};

/// A request the dispatcher has sent: its new state (`sent`, with the
/// provider's message id) and the channel that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPrompt {
    pub request: ConsentRequest,
    pub channel: String,
}

/// The ledger entry of one provider message: the key that makes a repeat
/// harmless and the evidence of what was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    /// `rbm`, `sms` or `simulator`.
    pub provider: String,
    pub provider_message_id: String,
    pub request_id: Option<String>,
    pub from: Option<E164>,
    /// Hex SHA-256 of the payload as received.
    pub payload_sha256: String,
    pub signature_valid: bool,
    /// When the person sent it, by the provider's clock.
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

/// What an inbound message does, decided by the consent exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEffect {
    /// The request takes its answer (its version is the one read) and the
    /// consent the answer gives, if any.
    Answer {
        request: ConsentRequest,
        consent: Option<Box<Consent>>,
    },
    /// Every consent the person gave the enterprise is revoked and the
    /// number goes on the enterprise's do-not-call list; the open request,
    /// if any, takes the answer "decline" and `consent` records it.
    Revoke {
        enterprise_id: String,
        person_id: String,
        number: E164,
        request: Option<ConsentRequest>,
        consent: Option<Box<Consent>>,
    },
    /// Unreadable: the person gets one clarifying question per request.
    Clarify { request_id: String },
    /// Kept in the ledger only (e.g. a reply to nothing slotgate sent).
    Ignore,
}

impl InboundEffect {
    /// The ledger's word for it.
    pub fn outcome(&self) -> &'static str {
        match self {
            InboundEffect::Answer { .. } => "answered",
            InboundEffect::Revoke { .. } => "revoked",
            InboundEffect::Clarify { .. } => "unclear",
            InboundEffect::Ignore => "ignored",
        }
    }
}

/// What recording an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    /// The same provider message was recorded before: nothing changed.
    Duplicate,
    /// The effect is committed; `revoked` consents were in force.
    Applied { revoked: u64 },
    /// Recorded; `first` is whether this is the request's first unclear
    /// reply (only the first gets a clarifying question).
    Clarify { first: bool },
}

impl Store {
    /// Notified after a consent request is created in this process, so its
    /// prompt leaves at once; other nodes find it by polling.
    pub fn prompt_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.prompts.clone()
    }

    pub(super) fn wake_prompts(&self) {
        self.prompts.notify_one();
    }

    /// Records what a prompt offers; call before sending it.
    pub async fn save_offered_choices(
        &self,
        request_id: &str,
        choices: &[OfferedChoice],
    ) -> Result<(), ConsentStoreError> {
        let choices: Vec<OfferedChoice> = choices
            .iter()
            .map(|c| OfferedChoice {
                choice: micros(&c.choice),
                ..c.clone()
            })
            .collect();
        on_engine!(self, save_choices(request_id, &choices))
    }

    /// What the request's prompt offered, in order (empty before sending).
    pub async fn offered_choices(
        &self,
        request_id: &str,
    ) -> Result<Vec<OfferedChoice>, ConsentStoreError> {
        on_engine!(self, choices(request_id))
    }

    /// Leases up to `limit` requests waiting to be sent for `lease`,
    /// oldest first.
    pub async fn claim_requests_to_send(
        &self,
        now: DateTime<Utc>,
        lease: TimeDelta,
        limit: u32,
    ) -> Result<Vec<ConsentRequest>, ConsentStoreError> {
        let ids = on_engine!(
            self,
            claim_to_send(
                super::to_micros(now),
                super::to_micros(now + lease),
                i64::from(limit)
            )
        )?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(request) = self.consent_request(&id).await? {
                claimed.push(request);
            }
        }
        // RETURNING gives the claimed rows in no particular order (on
        // PostgreSQL it varies); the dispatcher sends in this order.
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    /// Leaves a claimed request for another try at `at`.
    pub async fn defer_prompt(
        &self,
        request_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ConsentStoreError> {
        on_engine!(self, defer_send(request_id, super::to_micros(at)))
    }

    /// Saves a request that went out: state `sent` and the channel, with
    /// its webhook event. A request changed meanwhile is a conflict.
    pub async fn mark_prompt_sent(&self, sent: &SentPrompt) -> Result<(), ConsentStoreError> {
        let mut sent = sent.clone();
        sent.request.updated_at = super::to_micros(sent.request.updated_at);
        if !on_engine!(self, mark_sent(&sent))? {
            return Err(ConsentStoreError::Conflict {
                what: "consent request",
                id: sent.request.id.clone(),
                expected: sent.request.version,
            });
        }
        self.wake_webhooks();
        Ok(())
    }

    /// The request whose prompt carries this provider message id.
    pub async fn request_for_provider_message(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<ConsentRequest>, ConsentStoreError> {
        match on_engine!(self, request_id_by_provider_message(provider_message_id))? {
            Some(id) => self.consent_request(&id).await,
            None => Ok(None),
        }
    }

    /// The latest request whose prompt reached `number`.
    pub async fn latest_request_to(
        &self,
        number: &E164,
    ) -> Result<Option<ConsentRequest>, ConsentStoreError> {
        match on_engine!(self, latest_request_to(number))? {
            Some(id) => self.consent_request(&id).await,
            None => Ok(None),
        }
    }

    /// Records an inbound message and its effect in one transaction; a
    /// message recorded before changes nothing.
    pub async fn record_inbound(
        &self,
        record: &InboundRecord,
        effect: &InboundEffect,
    ) -> Result<InboundOutcome, ConsentStoreError> {
        let mut record = record.clone();
        record.received_at = super::to_micros(record.received_at);
        record.sent_at = record.sent_at.map(super::to_micros);
        let (outcome, woken_hold) = on_engine!(self, record_inbound(&record, effect))?;
        if matches!(outcome, InboundOutcome::Applied { .. }) {
            self.wake_webhooks();
        }
        if let Some(hold_id) = woken_hold {
            self.wake_hold(hold_id);
        }
        Ok(outcome)
    }

    /// What the person was offered by this enterprise since `since` and
    /// what they picked: the input of option ranking and of the cool-down
    /// and weekly-cap rules.
    pub async fn contact_history(
        &self,
        person_id: &str,
        enterprise_id: &str,
        since: DateTime<Utc>,
    ) -> Result<ContactHistory, ConsentStoreError> {
        let rows = on_engine!(
            self,
            prompts_since(person_id, enterprise_id, super::to_micros(since))
        )?;
        let prompts = rows
            .into_iter()
            .map(|(request, offered)| {
                let answer = match &request.state {
                    crate::consent::RequestState::Answered(a) => Some(a.clone()),
                    _ => None,
                };
                PastPrompt {
                    // Requests are sent within moments of their creation;
                    // the row keeps no separate send time.
                    sent_at: request.created_at,
                    offered,
                    picked: answer.as_ref().map(picked_choice),
                    answered_at: answer.as_ref().map(|_| request.updated_at),
                    declined: answer == Some(Answer::Decline),
                }
            })
            .collect();
        Ok(ContactHistory::new(prompts))
    }

    /// Sets the enterprise's prompt templates (all locales at once).
    pub async fn set_prompt_templates(
        &self,
        enterprise_id: &str,
        templates: &PromptTemplates,
    ) -> Result<(), ConsentStoreError> {
        if self.enterprise(enterprise_id).await?.is_none() {
            return Err(ConsentStoreError::NotFound {
                what: "enterprise",
                id: enterprise_id.to_string(),
            });
        }
        on_engine!(self, replace_templates(enterprise_id, templates))
    }

    /// The enterprise's prompt templates (only the built-in one when it has
    /// none). A stored template this version cannot read falls back to the
    /// built-in for its locale rather than blocking the prompt.
    pub async fn prompt_templates(
        &self,
        enterprise_id: &str,
    ) -> Result<PromptTemplates, ConsentStoreError> {
        let mut templates = PromptTemplates::new();
        for (locale, text) in on_engine!(self, templates(enterprise_id))? {
            if let Err(e) = templates.insert(&locale, &text) {
                tracing::warn!(enterprise = enterprise_id, %locale, error = %e, "unreadable prompt template");
            }
        }
        Ok(templates)
    }

    /// When the person was prompted since `since`, by every enterprise:
    /// the weekly cap protects the person, not one enterprise's share.
    pub async fn prompts_to_person_since(
        &self,
        person_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, ConsentStoreError> {
        on_engine!(self, prompt_times(person_id, super::to_micros(since)))
    }

    /// Requests past their deadline that still wait for an answer.
    pub async fn requests_due_to_expire(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, ConsentStoreError> {
        on_engine!(self, due_expiries(super::to_micros(now), i64::from(limit)))
    }
}

/// The choice an answer corresponds to, as ranking counts it.
fn picked_choice(answer: &Answer) -> Choice {
    match answer {
        Answer::Now => Choice::Now,
        Answer::Slot(slot) => Choice::Slot(*slot),
        Answer::Range { start, end } => Choice::Range(crate::consent::SlotOption {
            start: *start,
            end: *end,
        }),
        Answer::Decline => Choice::Decline,
    }
}

/// `choice` with its instants at the store's resolution, so what is read
/// back equals what was written.
fn micros(choice: &Choice) -> Choice {
    let slot = |s: &crate::consent::SlotOption| crate::consent::SlotOption {
        start: super::to_micros(s.start),
        end: super::to_micros(s.end),
    };
    match choice {
        Choice::Slot(s) => Choice::Slot(slot(s)),
        Choice::Range(r) => Choice::Range(slot(r)),
        other => other.clone(),
    }
}
