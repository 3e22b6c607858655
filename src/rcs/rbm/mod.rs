//! Google RCS Business Messaging (RBM): the rich channel, with suggestion
//! chips the person taps to answer.
//!
//! - [`oauth`]: the service-account JWT grant that yields access tokens;
//! - [`message`]: the `agentMessages.create` body (pure);
//! - [`webhook`]: the setup handshake and push verification (pure);
//! - this file: [`RbmClient`], the HTTP shell that sends, caching the
//!   access token and reading RBM's answers as [`SendOutcome`] /
//!   [`SendError`]. A `404` is RBM saying "this handset has no RCS", which
//!   is [`SendOutcome::Unreachable`] and sends the prompt down the SMS
//!   fallback instead.
//!
//! `messageId` must be a UUID, as RBM documents; RBM ignores a repeat of
//! an id it has seen, which makes a retried send idempotent (a `409` for
//! the repeat is read as accepted), so the dispatcher may retry freely.
//!
//! Retrying is the dispatcher's job; the client makes one attempt, except
//! that a `401` with a cached token drops the token and tries once more,
//! because Google may revoke tokens before their announced expiry.

pub mod message;
pub mod oauth;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

pub use message::{chip_label, DialAction, MessageTrafficType, MAX_SUGGESTIONS};
pub use oauth::{ServiceAccount, GOOGLE_TOKEN_URI, RBM_SCOPE};
pub use webhook::{handshake, signature, verify_push, SIGNATURE_HEADER};

use self::oauth::{CachedToken, Signer};
use super::channel::{OutboundMessage, SendError, SendOutcome};
use super::http::{shorten, status_error, transport_error};
use crate::consent::E164;

/// Where RBM lives in production.
pub const RBM_BASE_URL: &str = "https://rcsbusinessmessaging.googleapis.com";

/// Everything needed to send as one RBM agent.
#[derive(Debug, Clone)]
pub struct RbmSettings {
    /// [`RBM_BASE_URL`], or a local server in tests.
    pub base_url: String,
    pub agent_id: String,
    pub service_account: ServiceAccount,
    pub traffic_type: MessageTrafficType,
    /// Per request (token grant or send); past it the send is `Transient`.
    pub timeout: Duration,
}

/// Why an RBM client could not be built; reported at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbmSetupError {
    #[error("RBM service account key: {0}")]
    Key(String),
    #[error("RBM base URL {0:?} is not an absolute http(s) URL")]
    BaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Where the time comes from; tests substitute a clock they can move.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Sends prompts as one RBM agent. Cheap to share behind an `Arc`; the
/// token cache serialises refreshes so concurrent sends trigger one grant.
pub struct RbmClient {
    http: reqwest::Client,
    base: Url,
    settings: RbmSettings,
    signer: Signer,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    clock: Clock,
}

impl std::fmt::Debug for RbmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RbmClient")
            .field("base", &self.base.as_str())
            .field("agent_id", &self.settings.agent_id)
            .finish_non_exhaustive()
    }
}

/// What one attempt at `agentMessages.create` gave.
enum Attempt {
    Done(Result<SendOutcome, SendError>),
    /// `401`: the token was refused.
    Unauthorized(String),
}

impl RbmClient {
    pub fn new(settings: RbmSettings) -> Result<RbmClient, RbmSetupError> {
        RbmClient::with_clock(settings, Arc::new(Utc::now))
    }

    pub fn with_clock(settings: RbmSettings, clock: Clock) -> Result<RbmClient, RbmSetupError> {
        let signer = Signer::from_pem(&settings.service_account.private_key_pem)?;
        let base = Url::parse(&settings.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| RbmSetupError::BaseUrl(settings.base_url.clone()))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| RbmSetupError::Http(e.to_string()))?;
        Ok(RbmClient {
            http,
            base,
            settings,
            signer,
            token: tokio::sync::Mutex::new(None),
            clock,
        })
    }

    /// Sends `message` with its choices as reply chips.
    pub async fn send(&self, message: &OutboundMessage) -> Result<SendOutcome, SendError> {
        self.send_with_dial_action(message, None).await
    }

    /// Sends `message`, adding a chip that dials `dial_action`'s number.
    pub async fn send_with_dial_action(
        &self,
        message: &OutboundMessage,
        dial_action: Option<&DialAction>,
    ) -> Result<SendOutcome, SendError> {
        let url = self.message_url(message)?;
        let body = message::agent_message(message, self.settings.traffic_type, dial_action);
        let token = self.token().await?;
        match self.attempt(&url, &body, &token, message).await {
            Attempt::Done(result) => result,
            Attempt::Unauthorized(first) => {
                tracing::info!(
                    message_id = %message.message_id,
                    "RBM refused the access token; fetching a new one"
                );
                self.forget(&token).await;
                let token = self.token().await?;
                match self.attempt(&url, &body, &token, message).await {
                    Attempt::Done(result) => result,
                    Attempt::Unauthorized(second) => Err(SendError::Auth(format!(
                        "RBM refused a fresh token: {second} (before: {first})"
                    ))),
                }
            }
        }
    }

    /// Whether the handset behind `to` can receive RCS from this agent:
    /// RBM's capability check (`GET /v1/phones/{E.164}/capabilities`),
    /// `404` meaning no. Sending answers the same question (a `404` there
    /// too), so the dispatcher does not call this before every prompt; it
    /// is for operators and for deciding a channel ahead of time.
    pub async fn is_rcs_capable(&self, to: &E164, request_id: &str) -> Result<bool, SendError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| SendError::Rejected("the RBM base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["v1", "phones", to.as_str(), "capabilities"]);
        url.query_pairs_mut()
            .append_pair("requestId", request_id)
            .append_pair("agentId", &self.settings.agent_id);
        let token = self.token().await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token.token.expose())
            .send()
            .await
            .map_err(|e| transport_error("RBM", e))?;
        let status = response.status();
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => {
                if status == StatusCode::UNAUTHORIZED {
                    self.forget(&token).await;
                }
                let detail = response
                    .text()
                    .await
                    .map(|t| google_error(&t))
                    .unwrap_or_default();
                Err(status_error("RBM", status, &detail))
            }
        }
    }

    /// `{base}/v1/phones/{E.164}/agentMessages?messageId=…&agentId=…`.
    fn message_url(&self, message: &OutboundMessage) -> Result<Url, SendError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| SendError::Rejected("the RBM base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["v1", "phones", message.to.as_str(), "agentMessages"]);
        url.query_pairs_mut()
            .append_pair("messageId", &message.message_id)
            .append_pair("agentId", &self.settings.agent_id);
        Ok(url)
    }

    async fn attempt(
        &self,
        url: &Url,
        body: &serde_json::Value,
        token: &CachedToken,
        message: &OutboundMessage,
    ) -> Attempt {
        let response = match self
            .http
            .post(url.clone())
            .bearer_auth(token.token.expose())
            .json(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return Attempt::Done(Err(transport_error("RBM", e))),
        };
        let status = response.status();
        if status.is_success() {
            // RBM keys the message by our id (it ignores a repeat of it),
            // and receipts name that id: it is the provider id too.
            tracing::debug!(message_id = %message.message_id, "RBM accepted the message");
            return Attempt::Done(Ok(SendOutcome::Accepted {
                provider_message_id: message.message_id.clone(),
            }));
        }
        let detail = match response.text().await {
            Ok(text) => google_error(&text),
            Err(e) => return Attempt::Done(Err(transport_error("RBM", e))),
        };
        match status {
            StatusCode::NOT_FOUND => {
                tracing::debug!(message_id = %message.message_id, "no RCS on this handset");
                Attempt::Done(Ok(SendOutcome::Unreachable))
            }
            // RBM keeps the first message sent under an id and refuses a
            // repeat: a retry after a lost answer finds its message there.
            StatusCode::CONFLICT => {
                tracing::debug!(message_id = %message.message_id, "RBM already has this message");
                Attempt::Done(Ok(SendOutcome::Accepted {
                    provider_message_id: message.message_id.clone(),
                }))
            }
            StatusCode::UNAUTHORIZED => Attempt::Unauthorized(detail),
            _ => Attempt::Done(Err(status_error("RBM", status, &detail))),
        }
    }

    /// A usable access token: the cached one, or a fresh grant.
    async fn token(&self) -> Result<CachedToken, SendError> {
        let mut cache = self.token.lock().await;
        let now = (self.clock)();
        if let Some(token) = cache.as_ref().filter(|t| t.usable_at(now)) {
            return Ok(token.clone());
        }
        let token = oauth::fetch_token(
            &self.http,
            &self.settings.service_account,
            &self.signer,
            now,
        )
        .await?;
        *cache = Some(token.clone());
        Ok(token)
    }

    /// Drops `refused` from the cache, unless a concurrent send already
    /// replaced it with a newer token.
    async fn forget(&self, refused: &CachedToken) {
        let mut cache = self.token.lock().await;
        if cache.as_ref() == Some(refused) {
            *cache = None;
        }
    }
}

/// Google's error body (`{"error": {"code", "message", "status"}}`) reduced
/// to `STATUS: message`, or the raw text shortened.
fn google_error(body: &str) -> String {
    #[derive(Deserialize)]
    struct Wrapper {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: Option<String>,
        status: Option<String>,
    }
    match serde_json::from_str::<Wrapper>(body) {
        Ok(Wrapper { error }) => shorten(&format!(
            "{}: {}",
            error.status.unwrap_or_default(),
            error.message.unwrap_or_default()
        )),
        Err(_) => shorten(body),
    }
}
