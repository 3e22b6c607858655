//! `GET /v1/consents?number=…` and `POST /v1/consents/{id}/revoke`: what a
//! person agreed to, and withdrawing it.
//!
//! Numbers are read in the enterprise's default region, as its CRM writes
//! them. A revocation also puts the number on the enterprise's do-not-call
//! list, in the same store transaction, so that no later call slips through
//! between the two.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::consent_requests::{parse_number, ScopeView};
use super::errors::{ApiError, ErrorBody};
use super::ApiState;
use crate::consent::Consent;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsentsQuery {
    /// The person's number in any notation; national numbers are read in
    /// the enterprise's default region.
    pub number: Option<String>,
}

/// The slot a consent is limited to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The person's IANA time zone.
    pub time_zone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: String,
    pub person_id: String,
    pub number: String,
    pub scope: ScopeView,
    /// `granted`, `declined`, `revoked` or `expired`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// `rcs`, `sms`, `api`, `manual` or `simulator`.
    pub channel: &'static str,
    /// Whether a call placed now would be allowed by this consent.
    pub covers_now: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ConsentView {
    fn new(c: &Consent, now: DateTime<Utc>) -> ConsentView {
        ConsentView {
            id: c.id.clone(),
            person_id: c.person_id.clone(),
            number: c.number.as_str().to_string(),
            scope: ScopeView::from(&c.scope),
            status: c.status.as_str(),
            window: c.window.as_ref().map(|w| WindowView {
                start: w.start,
                end: w.end,
                time_zone: w.time_zone.name().to_string(),
            }),
            expires_at: c.expires_at,
            channel: c.channel.as_str(),
            covers_now: c.covers(now),
            created_at: c.created_at,
            updated_at: c.updated_at,
            revoked_at: c.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentList {
    /// The number as normalised (E.164).
    pub number: String,
    /// Newest first.
    pub consents: Vec<ConsentView>,
}

/// The consents this enterprise holds for a number.
#[utoipa::path(get, path = "/v1/consents", tag = "consents", params(ConsentsQuery),
    responses(
        (status = 200, description = "The consents, newest first", body = ConsentList),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 422, description = "Missing or invalid number", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_consents(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    query: Result<Query<ConsentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsentList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let input = query
        .number
        .ok_or_else(|| ApiError::invalid("number", "the query parameter is required"))?;
    let number = parse_number(&enterprise, &input)?;
    let consents = state
        .store
        .consents_for_number(&enterprise.id, &number)
        .await?;
    let now = Utc::now();
    Ok(Json(ConsentList {
        number: number.as_str().to_string(),
        consents: consents.iter().map(|c| ConsentView::new(c, now)).collect(),
    }))
}

/// Revoke a consent; its number goes on the enterprise's do-not-call list.
#[utoipa::path(post, path = "/v1/consents/{id}/revoke", tag = "consents",
    params(("id" = String, Path, description = "Consent id")),
    responses(
        (status = 200, description = "Revoked (revoking again changes nothing)", body = ConsentView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such consent for this enterprise", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke_consent(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConsentView>, ApiError> {
    // Check ownership before writing: another enterprise's consent is
    // reported as missing and left alone.
    state
        .store
        .consent(&id)
        .await?
        .filter(|c| c.enterprise_id == enterprise.id)
        .ok_or_else(|| ApiError::not_found("consent", &id))?;
    let now = Utc::now();
    let revoked = state.store.revoke_consent(&id, now).await?;
    Ok(Json(ConsentView::new(&revoked, now)))
}
