//! What happens to a verified provider event: receipts move the request
//! along, replies answer it.
//!
//! Called by the webhook handlers (after the signature check) and by the
//! simulator's event pump, with the same events whatever the channel. The
//! effect of a reply and its ledger row commit together before the caller
//! answers the provider, so a provider retrying a webhook, or retrying
//! after a crash, has one effect. The message back (confirmation,
//! clarifying question, revocation notice) is sent after the commit: a
//! lost confirmation is a nuisance, a lost answer would be a broken promise.
//! Through a real provider it is sent in the background, so the webhook is
//! answered as soon as the answer is committed, however slow the provider.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::channel::{InboundEvent, OutboundMessage};
use super::channels::Channels;
use super::confirm::Locale;
use super::delivery::Route;
use super::dispatcher::zone_of;
use super::exchange::{decide_reply, ReplyInput};
use crate::config::PromptConfig;
use crate::consent::{new_id, Channel, ConsentRequest, RequestEvent, E164};
use crate::store::prompts::{InboundEffect, InboundOutcome, InboundRecord};
use crate::store::{ConsentStoreError, Store};

/// The channel that carried an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Rbm,
    Sms,
    Simulator,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Rbm => "rbm",
            Provider::Sms => "sms",
            Provider::Simulator => "simulator",
        }
    }

    fn channel(self) -> Channel {
        match self {
            Provider::Rbm => Channel::Rcs,
            Provider::Sms => Channel::Sms,
            Provider::Simulator => Channel::Simulator,
        }
    }

    fn route(self) -> Route {
        match self {
            Provider::Rbm => Route::Rcs,
            Provider::Sms => Route::Sms,
            Provider::Simulator => Route::Simulator,
        }
    }
}

/// What handling an event did, for the caller's logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A receipt moved the request (or was already reflected).
    Receipt,
    /// A reply was recorded with this outcome.
    Reply(InboundOutcome),
    /// Nothing slotgate sent matches it; kept in the ledger when a reply.
    Unmatched,
}

/// The inbound side of the consent exchange.
#[derive(Clone)]
pub struct Inbound {
    store: Store,
    channels: Arc<Channels>,
    prompts: Arc<PromptConfig>,
}

impl Inbound {
    pub fn new(store: Store, channels: Arc<Channels>, prompts: PromptConfig) -> Inbound {
        Inbound {
            store,
            channels,
            prompts: Arc::new(prompts),
        }
    }

    /// Applies one verified event. `payload` is the body as received (its
    /// digest is the evidence); errors are the store's, and the caller
    /// should let the provider retry.
    pub async fn handle(
        &self,
        provider: Provider,
        event: InboundEvent,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Handled, ConsentStoreError> {
        match event {
            InboundEvent::Delivered {
                provider_message_id,
                at,
            }
            | InboundEvent::Read {
                provider_message_id,
                at,
            } => self.receipt(&provider_message_id, at).await,
            InboundEvent::Undelivered {
                provider_message_id,
                reason,
                at,
            } => self.undelivered(&provider_message_id, reason, at).await,
            InboundEvent::Reply {
                from,
                provider_message_id,
                postback,
                text,
                at,
            } => {
                let reply = Reply {
                    provider,
                    from,
                    provider_message_id,
                    postback,
                    text,
                    sent_at: at.min(now),
                    received_at: now,
                    payload_sha256: hex::encode(Sha256::digest(payload)),
                };
                self.reply(reply).await
            }
        }
    }

    async fn receipt(
        &self,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Handled, ConsentStoreError> {
        let Some(request) = self
            .store
            .request_for_provider_message(provider_message_id)
            .await?
        else {
            return Ok(Handled::Unmatched);
        };
        // A receipt after the answer, or a repeat, changes nothing.
        match self
            .store
            .apply_consent_request_event(&request.id, RequestEvent::Delivered, at)
            .await
        {
            Ok(_) | Err(ConsentStoreError::Transition(_)) => Ok(Handled::Receipt),
            Err(e) => Err(e),
        }
    }

    /// A prompt the provider gave up on: the request fails with the
    /// provider's reason, unless the person answered meanwhile.
    async fn undelivered(
        &self,
        provider_message_id: &str,
        reason: String,
        at: DateTime<Utc>,
    ) -> Result<Handled, ConsentStoreError> {
        let Some(request) = self
            .store
            .request_for_provider_message(provider_message_id)
            .await?
        else {
            return Ok(Handled::Unmatched);
        };
        info!(request = %request.id, %reason, "the prompt was not delivered");
        match self
            .store
            .apply_consent_request_event(&request.id, RequestEvent::Failed { reason }, at)
            .await
        {
            Ok(_) | Err(ConsentStoreError::Transition(_)) => Ok(Handled::Receipt),
            Err(e) => Err(e),
        }
    }

    /// Applies a reply; when the request changed between reading and
    /// writing (a receipt or another reply landed meanwhile), reads it
    /// again and decides again, so a STOP is never lost to a race.
    async fn reply(&self, reply: Reply) -> Result<Handled, ConsentStoreError> {
        const TRIES: usize = 3;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.reply_once(&reply).await {
                Err(ConsentStoreError::Conflict { .. }) if tries < TRIES => continue,
                other => return other,
            }
        }
    }

    async fn reply_once(&self, reply: &Reply) -> Result<Handled, ConsentStoreError> {
        let record = |request: Option<&ConsentRequest>| InboundRecord {
            provider: reply.provider.as_str().to_string(),
            provider_message_id: reply.provider_message_id.clone(),
            request_id: request.map(|r| r.id.clone()),
            from: Some(reply.from.clone()),
            payload_sha256: reply.payload_sha256.clone(),
            signature_valid: true,
            sent_at: Some(reply.sent_at),
            received_at: reply.received_at,
        };
        let request = self.store.latest_request_to(&reply.from).await?;
        let enterprise = match &request {
            Some(r) => self.store.enterprise(&r.enterprise_id).await?,
            None => None,
        };
        let (Some(request), Some(enterprise)) = (request, enterprise) else {
            info!(
                provider = reply.provider.as_str(),
                "a reply to no prompt of ours"
            );
            self.store
                .record_inbound(&record(None), &InboundEffect::Ignore)
                .await?;
            return Ok(Handled::Unmatched);
        };
        let offered = self.store.offered_choices(&request.id).await?;
        // Answered in the language the prompt was asked in.
        let locale = self
            .store
            .request_details(&request.id)
            .await?
            .and_then(|d| d.locale)
            .map(|tag| Locale::from_tag(&tag))
            .unwrap_or_default();
        let zone = zone_of(&request.number, self.prompts.fallback_time_zone);
        let decision = decide_reply(
            ReplyInput {
                request: &request,
                offered: &offered,
                enterprise: &enterprise,
                zone,
                postback: reply.postback.as_deref(),
                text: reply.text.as_deref(),
                channel: reply.provider.channel(),
                provider_message_id: &reply.provider_message_id,
                signature_valid: true,
                sent_at: reply.sent_at,
                received_at: reply.received_at,
            },
            &self.prompts.options,
            locale,
        );
        let outcome = self
            .store
            .record_inbound(&record(Some(&request)), &decision.effect)
            .await?;
        let answer_back = match outcome {
            InboundOutcome::Duplicate => false,
            InboundOutcome::Clarify { first } => first,
            InboundOutcome::Applied { revoked } => {
                if matches!(decision.effect, InboundEffect::Revoke { .. }) {
                    info!(request = %request.id, revoked, "the person revoked their consent");
                }
                true
            }
        };
        debug!(request = %request.id, outcome = decision.effect.outcome(), ?outcome, "reply recorded");
        if let (true, Some(text)) = (answer_back, decision.message) {
            let route = reply.provider.route();
            if reply.provider == Provider::Simulator {
                // In memory: done at once, and in the inbox when the
                // caller looks.
                self.answer(route, &reply.from, text).await;
            } else {
                // A provider's send may take its whole timeout (after a
                // token fetch, for RBM); the webhook it answers must not
                // wait for it, or the provider times out and redelivers.
                let inbound = self.clone();
                let to = reply.from.clone();
                tokio::spawn(async move { inbound.answer(route, &to, text).await });
            }
        }
        Ok(Handled::Reply(outcome))
    }

    /// Sends a message back to the person, once, on the channel they used.
    async fn answer(&self, route: Route, to: &E164, text: String) {
        let message = OutboundMessage {
            message_id: new_id(),
            to: to.clone(),
            text,
            choices: Vec::new(),
            ttl: std::time::Duration::from_secs(3600),
        };
        if let Err(e) = self.channels.send(route, &message, Utc::now()).await {
            warn!(route = route.as_str(), error = %e, "the answer to a reply was not sent");
        }
    }
}

/// A reply as handed in, before it is matched to a request.
struct Reply {
    provider: Provider,
    from: E164,
    provider_message_id: String,
    postback: Option<String>,
    text: Option<String>,
    sent_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    payload_sha256: String,
}
