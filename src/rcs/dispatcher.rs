//! Sends the prompts of new consent requests, and expires the ones nobody
//! answered.
//!
//! A thin async shell: it claims requests from the store (a lease, so that
//! two nodes never send the same prompt), gathers what `exchange` needs
//! (the enterprise, the person's history and zone, the wording hints), lets
//! `exchange` compose the prompt and `delivery` pick the route, and writes
//! each step back. The choices are stored before the prompt leaves, so a
//! reply can always be read against what the person saw. Retries of a
//! provider that is down happen inside the lease; a node that dies
//! mid-send leaves the request to be claimed again when the lease ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rand::SeedableRng;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::channel::{OutboundMessage, SendError};
use super::channels::Channels;
use super::delivery::{Delivery, Route, Step};
use super::exchange::{compose_prompt, PromptInput};
use crate::config::PromptConfig;
use crate::consent::{callee_zone, ConsentRequest, RequestEvent, E164};
use crate::store::prompts::SentPrompt;
use crate::store::{ConsentStoreError, Store};
use crate::timing::{may_prompt, ContactHistory, HistoryRanker, PastPrompt};

/// Requests claimed per round.
const BATCH: u32 = 32;
/// How long a claimed request is ours: enough for every retry of a send.
const LEASE: TimeDelta = TimeDelta::minutes(10);
/// How often the store is scanned when nothing wakes the dispatcher.
const POLL: Duration = Duration::from_millis(500);

/// The prompt sender.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    channels: Arc<Channels>,
    prompts: Arc<PromptConfig>,
}

impl Dispatcher {
    pub fn new(store: Store, channels: Arc<Channels>, prompts: PromptConfig) -> Dispatcher {
        Dispatcher {
            store,
            channels,
            prompts: Arc::new(prompts),
        }
    }

    /// Runs until `stop` is notified: each round sends what is waiting and
    /// expires what is overdue, then sleeps until woken or the poll
    /// interval passes.
    pub async fn run(self, wake: Arc<Notify>, stop: Arc<Notify>) {
        loop {
            let round = async {
                self.expire_overdue().await;
                self.send_waiting().await
            };
            tokio::select! {
                _ = stop.notified() => return,
                sent = round => {
                    if sent > 0 {
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = stop.notified() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Claims and sends one batch, each prompt in its own task so a slow
    /// provider holds up only its own requests. Returns how many were
    /// claimed.
    pub async fn send_waiting(&self) -> usize {
        let claimed = match self
            .store
            .claim_requests_to_send(Utc::now(), LEASE, BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                warn!(error = %e, "cannot claim consent requests to send");
                return 0;
            }
        };
        let count = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for request in claimed {
            let this = self.clone();
            tasks.spawn(async move {
                let id = request.id.clone();
                if let Err(e) = this.send_prompt(request).await {
                    warn!(request = %id, error = %e, "prompt not sent; it will be retried");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        count
    }

    /// Expires requests whose deadline passed unanswered.
    pub async fn expire_overdue(&self) {
        let now = Utc::now();
        let due = match self.store.requests_due_to_expire(now, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "cannot look for overdue consent requests");
                return;
            }
        };
        for id in due {
            match self
                .store
                .apply_consent_request_event(&id, RequestEvent::Expire, now)
                .await
            {
                Ok(_) => debug!(request = %id, "consent request expired"),
                // Answered meanwhile, or another node got there first.
                Err(e) => debug!(request = %id, error = %e, "not expired"),
            }
        }
    }

    async fn send_prompt(&self, mut request: ConsentRequest) -> Result<(), ConsentStoreError> {
        let now = Utc::now();
        let Some(enterprise) = self.store.enterprise(&request.enterprise_id).await? else {
            return self.fail(request, "the enterprise no longer exists").await;
        };
        if let Err(refusal) = enterprise.ensure_may_ask() {
            return self.fail(request, refusal.code()).await;
        }
        let details = self.store.request_details(&request.id).await?;
        let locale = details
            .as_ref()
            .and_then(|d| d.locale.clone())
            .unwrap_or_else(|| "en".to_string());
        let name = details
            .as_ref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d.personalisation).ok())
            .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .unwrap_or_default();
        let zone = zone_of(&request.number, self.prompts.fallback_time_zone);
        let templates = self.store.prompt_templates(&enterprise.id).await?;
        let history = self
            .store
            .contact_history(
                &request.person_id,
                &request.enterprise_id,
                now - self
                    .prompts
                    .ranking
                    .lookback
                    .max(self.prompts.ranking.cool_down),
            )
            .await?;
        // The cap counts every enterprise's prompts: it is the person who
        // is protected from being asked too often.
        let prompted = self
            .store
            .prompts_to_person_since(&request.person_id, now - self.prompts.ranking.cap_window)
            .await?;
        let everyone = ContactHistory::new(
            prompted
                .into_iter()
                .map(|sent_at| PastPrompt {
                    sent_at,
                    offered: Vec::new(),
                    picked: None,
                    answered_at: None,
                    declined: false,
                })
                .collect(),
        );
        if let Err(refusal) = may_prompt(&everyone, now, &self.prompts.ranking) {
            return self.fail(request, refusal.code()).await;
        }
        let prompt = match compose_prompt(
            PromptInput {
                enterprise: &enterprise,
                request: &request,
                name: &name,
                locale: &locale,
                zone,
                history: &history,
                now,
            },
            &self.prompts.options,
            &self.prompts.ranking,
            &HistoryRanker::new(self.prompts.ranking),
            &templates,
        ) {
            Ok(prompt) => prompt,
            Err(refusal) => return self.fail(request, refusal.code()).await,
        };
        self.store
            .save_offered_choices(&request.id, &prompt.choices)
            .await?;
        request.options = prompt
            .choices
            .iter()
            .filter_map(|c| match &c.choice {
                crate::consent::Choice::Slot(s) => Some(*s),
                _ => None,
            })
            .collect();

        let ttl = (request.expires_at - now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let message = |route: Route| OutboundMessage {
            message_id: request.id.clone(),
            to: request.number.clone(),
            text: match route {
                Route::Sms => prompt.sms_text.clone(),
                Route::Rcs | Route::Simulator => prompt.rich_text.clone(),
            },
            choices: prompt.choices.clone(),
            ttl,
        };
        let (mut delivery, mut step) = Delivery::start(self.channels.plan());
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            step = match step {
                Step::Send(route) => {
                    let result = self.channels.send(route, &message(route), Utc::now()).await;
                    if let Err(SendError::Auth(why)) = &result {
                        warn!(route = route.as_str(), %why, "provider credentials refused");
                    }
                    delivery.on_result(result, Utc::now(), |n| self.channels.backoff(n, &mut rng))
                }
                Step::RetryAt(at, route) => {
                    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(wait).await;
                    Step::Send(route)
                }
                Step::Sent {
                    route,
                    provider_message_id,
                } => {
                    request
                        .apply(
                            RequestEvent::Sent {
                                provider_message_id,
                            },
                            Utc::now(),
                        )
                        .map_err(ConsentStoreError::Transition)?;
                    self.store
                        .mark_prompt_sent(&SentPrompt {
                            request,
                            channel: route.as_str().to_string(),
                        })
                        .await?;
                    info!(
                        route = route.as_str(),
                        fell_back = delivery.fell_back(),
                        "prompt sent"
                    );
                    return Ok(());
                }
                Step::Failed { reason } => return self.fail(request, &reason).await,
            };
        }
    }

    /// Ends the request as failed, with the reason the enterprise will see.
    async fn fail(
        &self,
        mut request: ConsentRequest,
        reason: &str,
    ) -> Result<(), ConsentStoreError> {
        info!(request = %request.id, reason, "consent request failed");
        request
            .apply(
                RequestEvent::Failed {
                    reason: reason.to_string(),
                },
                Utc::now(),
            )
            .map_err(ConsentStoreError::Transition)?;
        self.store.save_consent_request(&request).await?;
        Ok(())
    }
}

/// The zone slots and calling hours are computed in: the number's own when
/// it has one, else the configured fallback.
pub fn zone_of(number: &E164, fallback: chrono_tz::Tz) -> chrono_tz::Tz {
    callee_zone(number).zone_or(fallback)
}
