//! The operator's view of CRM webhook delivery: list outbox events (dead
//! ones above all) and re-drive a dead event once its CRM is fixed; also
//! the webhook URL check the enterprise routes apply.
//!
//! Kept apart from `admin` because it concerns the outbox, not the
//! enterprises themselves; it uses the same admin token.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use super::errors::{ApiError, ErrorBody};
use super::ApiState;
use crate::crm::{webhook_url, DeliveryState, OutboxEvent, OutboxFilter};

/// Most events one listing returns.
const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;

/// Refuses a webhook URL the policy forbids, naming `crm_webhook_url`.
pub fn check_webhook_url(state: &ApiState, url: Option<&str>) -> Result<(), ApiError> {
    match url {
        Some(url) => webhook_url::check(url, state.allow_private_webhook_urls)
            .map(|_| ())
            .map_err(|e| ApiError::invalid("crm_webhook_url", e.to_string())),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// `pending`, `delivered` or `dead`; absent: all.
    pub state: Option<String>,
    pub enterprise_id: Option<String>,
    /// At most this many, oldest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventView {
    pub id: String,
    pub enterprise_id: String,
    pub person_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `dead`.
    pub state: &'static str,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// HTTP status of the CRM's last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body as it is posted.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<OutboxEvent> for WebhookEventView {
    fn from(e: OutboxEvent) -> WebhookEventView {
        WebhookEventView {
            payload: serde_json::from_str(&e.payload)
                .unwrap_or(serde_json::Value::String(e.payload.clone())),
            id: e.id,
            enterprise_id: e.enterprise_id,
            person_id: e.person_id,
            event_type: e.event_type,
            state: e.state.as_str(),
            attempts: e.attempts,
            created_at: e.created_at,
            next_attempt_at: e.next_attempt_at,
            last_error: e.last_error,
            last_status: e.last_status,
            delivered_at: e.delivered_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventList {
    pub events: Vec<WebhookEventView>,
}

/// List CRM webhook events, oldest first.
#[utoipa::path(get, path = "/admin/v1/webhook-events", tag = "admin",
    params(EventQuery),
    responses(
        (status = 200, description = "The events", body = WebhookEventList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_webhook_events(
    State(state): State<ApiState>,
    _: Admin,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookEventList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let delivery_state = query
        .state
        .as_deref()
        .map(|s| {
            s.parse::<DeliveryState>()
                .map_err(|_| ApiError::invalid("state", "use pending, delivered or dead"))
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let events = state
        .store
        .webhook_events(&OutboxFilter {
            state: delivery_state,
            enterprise_id: query.enterprise_id,
            limit,
        })
        .await?;
    Ok(Json(WebhookEventList {
        events: events.into_iter().map(Into::into).collect(),
    }))
}

/// Send a dead webhook event again, with a fresh attempt count.
#[utoipa::path(post, path = "/admin/v1/webhook-events/{id}/redrive", tag = "admin",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "Pending again", body = WebhookEventView),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 409, description = "The event is not dead", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn redrive_webhook_event(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventView>, ApiError> {
    match state.store.redrive_webhook_event(&id, Utc::now()).await {
        Ok(event) => Ok(Json(event.into())),
        // Re-driving a pending or delivered event is a state conflict, not
        // a bad field.
        Err(crate::store::ConsentStoreError::Invalid { reason, .. }) => {
            Err(ApiError::Conflict(reason))
        }
        Err(e) => Err(e.into()),
    }
}
