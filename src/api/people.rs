//! `GET /v1/people/{id}`: a person as one enterprise may see them.
//!
//! A person is shared by every enterprise that knows their number, so an
//! enterprise sees only people subscribed to it, and only identifiers that
//! are not another enterprise's (their CRM ids stay hidden).

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::ApiState;
use crate::consent::Identifier;

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifierView {
    /// `phone`, `crm`, `url` or `email`.
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `active`, `paused` or `ended`.
    pub status: &'static str,
    pub since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    pub id: String,
    /// E.164 numbers, in the order they were added.
    pub numbers: Vec<String>,
    pub identifiers: Vec<IdentifierView>,
    /// The person's subscription to the calling enterprise.
    pub subscription: SubscriptionView,
    pub created_at: DateTime<Utc>,
}

/// Read a person subscribed to this enterprise.
#[utoipa::path(get, path = "/v1/people/{id}", tag = "people",
    params(("id" = String, Path, description = "Person id")),
    responses(
        (status = 200, description = "The person", body = PersonView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such person for this enterprise", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_person(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<Json<PersonView>, ApiError> {
    let person = state
        .store
        .person(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("person", &id))?;
    let subscription = state
        .store
        .subscription(&person.id, &enterprise.id)
        .await?
        .ok_or_else(|| ApiError::not_found("person", &id))?;
    let identifiers = person
        .identifiers
        .iter()
        .filter(|i| match i {
            Identifier::CrmId { enterprise_id, .. } => *enterprise_id == enterprise.id,
            _ => true,
        })
        .map(|i| IdentifierView {
            kind: i.kind().as_str(),
            value: i.value(),
        })
        .collect();
    Ok(Json(PersonView {
        numbers: person.numbers().map(|n| n.as_str().to_string()).collect(),
        id: person.id,
        identifiers,
        subscription: SubscriptionView {
            status: subscription.status.as_str(),
            since: subscription.since,
            until: subscription.until,
        },
        created_at: person.created_at,
    }))
}
