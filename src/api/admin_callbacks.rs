//! Admin routes for scheduled callbacks whose outcome is unknown: a node
//! died while it was dialling them, so slotgate cannot tell whether the
//! person was called. It never dials them again by itself; an operator
//! looks (at the trunk's records, or with the customer) and decides here:
//! dial again at a time, or settle the callback as done.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use super::errors::{ApiError, ErrorBody};
use super::{ApiJson, ApiState};
use crate::store::holds::ScheduledCallback;
use crate::store::ConsentStoreError;

#[derive(Debug, Deserialize, IntoParams)]
pub struct UnknownQuery {
    /// At most this many, oldest slot first (default 100, at most 1000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackView {
    pub id: String,
    pub enterprise_id: String,
    pub campaign: String,
    pub callee: String,
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    pub status: String,
}

impl From<ScheduledCallback> for CallbackView {
    fn from(c: ScheduledCallback) -> CallbackView {
        CallbackView {
            id: c.id,
            enterprise_id: c.enterprise_id,
            campaign: c.campaign,
            callee: c.callee,
            slot_start: c.slot_start,
            slot_end: c.slot_end,
            status: c.status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackList {
    pub callbacks: Vec<CallbackView>,
}

/// What the operator decided.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// `redial` (dial again from `at`, default now) or `done`.
    pub action: String,
    pub at: Option<DateTime<Utc>>,
    /// Why, kept with the callback (e.g. "trunk CDRs show no call").
    pub note: String,
}

/// List callbacks whose outcome is unknown.
#[utoipa::path(get, path = "/admin/v1/callbacks/unknown", tag = "admin",
    params(UnknownQuery),
    responses(
        (status = 200, description = "The callbacks", body = CallbackList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_unknown_callbacks(
    State(state): State<ApiState>,
    _: Admin,
    query: Result<Query<UnknownQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CallbackList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let callbacks = state.store.unknown_callbacks(limit).await?;
    Ok(Json(CallbackList {
        callbacks: callbacks.into_iter().map(Into::into).collect(),
    }))
}

/// Settle a callback whose outcome is unknown: dial it again, or end it.
#[utoipa::path(post, path = "/admin/v1/callbacks/{id}/resolve", tag = "admin",
    params(("id" = String, Path, description = "Callback id")),
    request_body = Resolution,
    responses(
        (status = 204, description = "Resolved"),
        (status = 404, description = "No such callback", body = ErrorBody),
        (status = 409, description = "The callback's outcome is not unknown", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn resolve_callback(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Resolution>,
) -> Result<axum::http::StatusCode, ApiError> {
    let note = body.note.trim();
    if note.is_empty() || note.len() > 500 {
        return Err(ApiError::invalid(
            "note",
            "say why, in at most 500 characters",
        ));
    }
    let redial_at = match body.action.as_str() {
        "redial" => Some(body.at.unwrap_or_else(Utc::now)),
        "done" if body.at.is_none() => None,
        "done" => return Err(ApiError::invalid("at", "only with action redial")),
        _ => return Err(ApiError::invalid("action", "use redial or done")),
    };
    if state.store.scheduled_callback(&id).await?.is_none() {
        return Err(ConsentStoreError::NotFound {
            what: "scheduled callback",
            id,
        }
        .into());
    }
    match state
        .store
        .resolve_unknown_callback(&id, redial_at, note)
        .await
    {
        Ok(()) => Ok(axum::http::StatusCode::NO_CONTENT),
        Err(ConsentStoreError::NotClaimed { reason, .. }) => Err(ApiError::Conflict(reason)),
        Err(e) => Err(e.into()),
    }
}
