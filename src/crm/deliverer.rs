//! The task that empties the outbox: posts each due event to its
//! enterprise's webhook URL and records the outcome.
//!
//! It wakes when this process commits a consent change (the store's
//! webhook signal), when a retry falls due, and at every poll interval
//! (which is how it finds events written by other nodes, or left behind by
//! a process that died before delivering them). Each claim leases the
//! events it takes, so several nodes can run a deliverer on one database
//! without posting the same event at the same time, and an event whose
//! deliverer died is simply claimed again when its lease runs out: delivery
//! is at least once. Only the oldest pending event of a person is ever
//! claimed, which keeps each person's events in order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use super::signature::{header_value, SIGNATURE_HEADER};
use super::{backoff, webhook_url, DeliveryState, FailedAttempt, OutboxEvent};
use crate::config::CrmConfig;
use crate::store::Store;

/// Events claimed (and posted concurrently) per round.
const BATCH: i64 = 32;

/// Header naming the event id, for receivers that de-duplicate before
/// parsing the body.
pub const EVENT_ID_HEADER: &str = "Slotgate-Event-Id";
/// Header naming the event type.
pub const EVENT_TYPE_HEADER: &str = "Slotgate-Event-Type";

/// Why the deliverer could not start.
#[derive(Debug, thiserror::Error)]
pub enum DelivererError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(reqwest::Error),
}

/// The running deliverer.
#[derive(Debug)]
pub struct DelivererHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DelivererHandle {
    /// Stops the deliverer. Posts in flight are abandoned: their events
    /// stay pending and are sent again after their lease, by this node's
    /// next start or by another node.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            if e.is_panic() {
                warn!("the webhook deliverer panicked");
            }
        }
    }
}

/// Starts delivering `store`'s outbox as `config` says.
pub fn spawn_deliverer(store: Store, config: CrmConfig) -> Result<DelivererHandle, DelivererError> {
    let client = http_client(&config)?;
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(
        Deliverer {
            store,
            client,
            config,
        },
        stopped,
    ));
    Ok(DelivererHandle { stop, task })
}

fn http_client(config: &CrmConfig) -> Result<reqwest::Client, DelivererError> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        // A redirect could lead anywhere, past the URL policy: a 3xx is a
        // failed attempt like any other non-2xx answer.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(DelivererError::Client)
}

struct Deliverer {
    store: Store,
    client: reqwest::Client,
    config: CrmConfig,
}

async fn run(deliverer: Deliverer, mut stopped: oneshot::Receiver<()>) {
    let signal = deliverer.store.webhook_signal();
    info!("webhook deliverer started");
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stopped => break,
            next = deliverer.round() => next,
        };
        let Some(wait) = next else {
            // Claimed a full or partial batch: there may be more due now.
            continue;
        };
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = signal.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    info!("webhook deliverer stopped");
}

impl Deliverer {
    /// Claims and posts one batch. `None`: go again at once; otherwise how
    /// long to wait (unless woken) before the next round.
    async fn round(&self) -> Option<Duration> {
        let now = Utc::now();
        // Long enough to cover one post (connect and answer), plus slack
        // for recording the outcome.
        let lease = self.config.request_timeout * 2 + Duration::from_secs(1);
        let lease_until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let events = match self
            .store
            .claim_webhook_events(now, lease_until, BATCH)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook outbox");
                return Some(self.config.poll_interval);
            }
        };
        if events.is_empty() {
            return Some(self.config.poll_interval);
        }
        let mut posts = JoinSet::new();
        for event in events {
            let (store, client, config) =
                (self.store.clone(), self.client.clone(), self.config.clone());
            posts.spawn(async move { deliver(&store, &client, &config, event).await });
        }
        let mut progressed = false;
        let mut earliest_retry: Option<DateTime<Utc>> = None;
        while let Some(outcome) = posts.join_next().await {
            match outcome {
                Ok(Some(retry_at)) => {
                    earliest_retry = Some(earliest_retry.map_or(retry_at, |t| t.min(retry_at)));
                }
                _ => progressed = true,
            }
        }
        if progressed {
            // Delivered (or dead) heads let their persons' next events
            // through: claim again at once.
            return None;
        }
        // Everything failed: wait for the first retry, precisely when it
        // comes before the next poll.
        let until_retry = earliest_retry
            .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(self.config.poll_interval);
        Some(until_retry.min(self.config.poll_interval))
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered(u16),
    Failed(FailedAttempt),
}

/// Posts one event and records the outcome; gives the retry time when it
/// failed and will be tried again.
async fn deliver(
    store: &Store,
    client: &reqwest::Client,
    config: &CrmConfig,
    event: OutboxEvent,
) -> Option<DateTime<Utc>> {
    let outcome = attempt(store, client, config, &event).await;
    let now = Utc::now();
    match outcome {
        Outcome::Delivered(status) => {
            debug!(event = %event.id, kind = %event.event_type, status, "webhook delivered");
            if let Err(e) = store.mark_webhook_delivered(&event.id, status, now).await {
                // The lease runs out and the event goes again: at least once.
                warn!(event = %event.id, error = %e, "cannot record a webhook delivery");
            }
            None
        }
        Outcome::Failed(failure) => {
            let attempt = u32::try_from(event.attempts.saturating_add(1)).unwrap_or(1);
            let wait = backoff::delay(
                attempt,
                config.backoff_initial,
                config.backoff_max,
                rand::random::<f64>(),
            );
            let retry_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            match store
                .mark_webhook_failed(&event.id, &failure, retry_at, config.max_attempts)
                .await
            {
                Ok(Some(DeliveryState::Dead)) => {
                    warn!(event = %event.id, kind = %event.event_type, attempts = attempt,
                        error = %failure.error, "webhook event is dead after its last attempt");
                    None
                }
                Ok(Some(_)) => {
                    debug!(event = %event.id, attempt, error = %failure.error, ?wait,
                        "webhook attempt failed; will retry");
                    Some(retry_at)
                }
                Ok(None) => None,
                Err(e) => {
                    warn!(event = %event.id, error = %e, "cannot record a failed webhook attempt");
                    None
                }
            }
        }
    }
}

async fn attempt(
    store: &Store,
    client: &reqwest::Client,
    config: &CrmConfig,
    event: &OutboxEvent,
) -> Outcome {
    let failed =
        |error: String, status: Option<i32>| Outcome::Failed(FailedAttempt { error, status });
    let enterprise = match store.enterprise(&event.enterprise_id).await {
        Ok(Some(enterprise)) => enterprise,
        Ok(None) => return failed("the enterprise no longer exists".into(), None),
        Err(e) => return failed(format!("cannot read the enterprise: {e}"), None),
    };
    let Some(url) = enterprise.crm_webhook_url.filter(|u| !u.trim().is_empty()) else {
        return failed("the enterprise has no webhook URL any more".into(), None);
    };
    // Checked again here: the URL may predate the policy, or have been
    // written to the database directly.
    let url = match webhook_url::check(&url, config.allow_private_webhook_urls) {
        Ok(url) => url,
        Err(e) => return failed(format!("webhook URL refused: {e}"), None),
    };
    let body = event.payload.clone().into_bytes();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("slotgate-webhooks"));
    let ids = [
        (EVENT_ID_HEADER, event.id.as_str()),
        (EVENT_TYPE_HEADER, event.event_type.as_str()),
    ];
    for (name, value) in ids {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Some(secret) = enterprise.crm_webhook_secret.filter(|s| !s.is_empty()) {
        let signature = header_value(secret.as_bytes(), Utc::now().timestamp(), &body);
        match HeaderValue::from_str(&signature) {
            Ok(value) => {
                headers.insert(SIGNATURE_HEADER, value);
            }
            Err(e) => return failed(format!("cannot sign: {e}"), None),
        }
    }
    match client.post(url).headers(headers).body(body).send().await {
        Ok(response) if response.status().is_success() => {
            Outcome::Delivered(response.status().as_u16())
        }
        Ok(response) => {
            let status = response.status();
            failed(
                format!("the CRM answered {status}"),
                Some(i32::from(status.as_u16())),
            )
        }
        Err(e) if e.is_timeout() => failed(
            format!("no answer within {:?}", config.request_timeout),
            None,
        ),
        Err(e) => failed(format!("cannot post: {}", error_chain(&e)), None),
    }
}

/// reqwest's own message is terse ("error sending request"); the causes say
/// what happened (connection refused, DNS …).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_urls_are_supported() {
        // Nothing listens there: the attempt must fail to connect, not be
        // refused for its scheme (which a client without TLS would do).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = http_client(&CrmConfig::default()).unwrap();
        let err = client
            .post(format!("https://127.0.0.1:{port}/hooks"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{}", error_chain(&err));
    }
}
