//! Inbound provider webhooks: RBM pushes and Twilio SMS posts.
//!
//! Nothing a webhook carries is believed before its signature checks out:
//! an unverifiable request is answered `401` and leaves no trace but a
//! counter and a log line; a verified but malformed one gets `400`. A
//! verified event is applied (and committed) before the `200`, so a
//! provider that does not hear back retries, and the ledger makes the
//! retry harmless. A store failure answers `503`: the provider keeps the
//! message and tries again.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::warn;

use super::ApiState;
use crate::rcs::channel::{InboundError, InboundEvent};
use crate::rcs::inbound::Provider;
use crate::rcs::{rbm, twilio};

/// Webhooks refused for their signature or shape, by provider.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    pub rbm_rejected: AtomicU64,
    pub sms_rejected: AtomicU64,
}

/// RBM: the verification handshake, then Pub/Sub pushes.
pub async fn rbm_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(exchange) = &state.exchange else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(token) = exchange.channels.rbm_client_token() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(secret) = rbm::handshake(&body, token.expose()) {
        return (StatusCode::OK, secret).into_response();
    }
    let signature = headers
        .get(rbm::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    match rbm::verify_push(signature, &body, token.expose()) {
        Ok(events) => apply(&state, Provider::Rbm, events, &body).await,
        Err(e) => refuse(&state.webhooks.rbm_rejected, "rbm", e),
    }
}

/// Twilio: inbound SMS and status callbacks, form-encoded.
pub async fn sms_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(exchange) = &state.exchange else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some((url, auth_token)) = exchange.channels.sms_webhook() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let signature = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(params) => params,
        // Unreadable as a form: it cannot have been signed as one either.
        Err(_) => {
            return refuse(
                &state.webhooks.sms_rejected,
                "sms",
                InboundError::Malformed("not a form".into()),
            )
        }
    };
    match twilio::verify_webhook(url, &params, signature, auth_token.expose(), Utc::now()) {
        Ok(events) => {
            let response = apply(&state, Provider::Sms, events, &body).await;
            if response.status() != StatusCode::OK {
                return response;
            }
            // An empty TwiML document: nothing for Twilio to send back
            // itself; slotgate answers through the API.
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/xml")],
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
            )
                .into_response()
        }
        Err(e) => refuse(&state.webhooks.sms_rejected, "sms", e),
    }
}

async fn apply(
    state: &ApiState,
    provider: Provider,
    events: Vec<InboundEvent>,
    body: &[u8],
) -> Response {
    let Some(exchange) = &state.exchange else {
        return StatusCode::NOT_FOUND.into_response();
    };
    for event in events {
        if let Err(e) = exchange
            .inbound
            .handle(provider, event, body, Utc::now())
            .await
        {
            warn!(provider = provider.as_str(), error = %e, "webhook event not applied; the provider will retry");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    StatusCode::OK.into_response()
}

fn refuse(counter: &AtomicU64, provider: &'static str, error: InboundError) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    warn!(provider, %error, "webhook refused");
    let status = match error {
        InboundError::Malformed(_) => StatusCode::BAD_REQUEST,
        InboundError::MissingSignature | InboundError::BadSignature => StatusCode::UNAUTHORIZED,
    };
    status.into_response()
}
