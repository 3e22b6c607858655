//! `POST /v1/consent-requests` and `GET /v1/consent-requests/{id}`: an
//! enterprise asks a person, ahead of a call, when they may be called.
//!
//! Creating a request only records it (state `created`) once the consent
//! rules allow the enterprise to ask; the channels that send the prompt
//! pick it up from the store. A retried POST with the same
//! `Idempotency-Key` gets the same request back, because a CRM that timed
//! out must be able to retry without the person being asked twice.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::{ApiJson, ApiState};
use crate::consent::{
    Answer, ConsentRequest, Enterprise, Identifier, NewConsentRequest, Refusal, Region,
    RequestState, Scope, SlotOption, E164,
};
use crate::store::api::{Created, RequestDetails};

/// How long a request stays open when the caller names no deadline.
const DEFAULT_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// Longest an enterprise may keep a question open.
const MAX_LIFETIME: TimeDelta = TimeDelta::days(30);
const MAX_OPTIONS: usize = 10;
const MAX_PERSONALISATION_FIELDS: usize = 32;
const MAX_PERSONALISATION_KEY: usize = 64;
const MAX_PERSONALISATION_VALUE: usize = 512;
const MAX_IDEMPOTENCY_KEY: usize = 255;
const MAX_SCOPE: usize = 200;

/// A request to ask a person for consent.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConsentRequest {
    /// The person's number in any notation; national numbers are read in
    /// the enterprise's default region. Give this or `person_id`.
    pub number: Option<String>,
    /// The person, when the enterprise knows slotgate's id for them; the
    /// prompt goes to their first number unless `number` names another.
    pub person_id: Option<String>,
    /// What the call is for. Give this or `campaign`.
    pub purpose: Option<String>,
    pub campaign: Option<String>,
    /// Slots the enterprise would like to offer, best first.
    #[serde(default)]
    pub preferred_options: Vec<SlotBody>,
    /// BCP 47 language tag for the prompt (e.g. `fr-FR`).
    pub locale: Option<String>,
    /// Fields the prompt's template may use (e.g. `first_name`).
    #[serde(default)]
    pub personalisation: BTreeMap<String, String>,
    /// After this instant no answer is accepted (default: 24 hours).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotBody {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the request is for: exactly one of the two.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

impl From<&Scope> for ScopeView {
    fn from(scope: &Scope) -> ScopeView {
        match scope {
            Scope::Purpose(p) => ScopeView {
                purpose: Some(p.clone()),
                campaign: None,
            },
            Scope::Campaign(c) => ScopeView {
                purpose: None,
                campaign: Some(c.clone()),
            },
        }
    }
}

/// The person's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerView {
    /// `now`, `slot`, `range` or `decline`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
}

impl From<&Answer> for AnswerView {
    fn from(answer: &Answer) -> AnswerView {
        let bounds = answer.bounds();
        AnswerView {
            kind: answer.kind(),
            start: bounds.map(|b| b.0),
            end: bounds.map(|b| b.1),
        }
    }
}

/// A consent request as the enterprise sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentRequestView {
    pub id: String,
    /// `created`, `sent`, `delivered`, `answered`, `expired` or `failed`.
    pub state: &'static str,
    pub person_id: String,
    pub number: String,
    pub scope: ScopeView,
    pub options: Vec<SlotBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    pub personalisation: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl ConsentRequestView {
    fn new(r: &ConsentRequest, details: Option<RequestDetails>) -> ConsentRequestView {
        let (locale, personalisation) = match details {
            // Written by this module from a map, so it parses; a row edited
            // by hand shows as no fields rather than failing the read.
            Some(d) => (
                d.locale,
                serde_json::from_str(&d.personalisation).unwrap_or_default(),
            ),
            None => (None, BTreeMap::new()),
        };
        ConsentRequestView {
            id: r.id.clone(),
            state: r.state.name(),
            person_id: r.person_id.clone(),
            number: r.number.as_str().to_string(),
            scope: ScopeView::from(&r.scope),
            options: r
                .options
                .iter()
                .map(|o| SlotBody {
                    start: o.start,
                    end: o.end,
                })
                .collect(),
            answer: match &r.state {
                RequestState::Answered(a) => Some(AnswerView::from(a)),
                _ => None,
            },
            failure_reason: match &r.state {
                RequestState::Failed { reason } => Some(reason.clone()),
                _ => None,
            },
            locale,
            personalisation,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}

/// Ask a person for consent.
#[utoipa::path(post, path = "/v1/consent-requests", tag = "consent requests",
    request_body = CreateConsentRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key returns the same request")),
    responses(
        (status = 202, description = "Recorded; the prompt will be sent", body = ConsentRequestView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The enterprise is suspended or untrusted", body = ErrorBody),
        (status = 404, description = "Unknown person", body = ErrorBody),
        (status = 409, description = "Refused: no active subscription, or do-not-call", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_consent_request(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateConsentRequest>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let idempotency_key = idempotency_key(&headers)?;
    let scope = scope(&body)?;
    let options = options(&body.preferred_options, now)?;
    let locale = body.locale.as_deref().map(locale).transpose()?;
    check_personalisation(&body.personalisation)?;
    let expires_at = match body.expires_at {
        None => now + DEFAULT_LIFETIME,
        Some(t) if t <= now => return Err(ApiError::invalid("expires_at", "is in the past")),
        Some(t) if t > now + MAX_LIFETIME => {
            return Err(ApiError::invalid("expires_at", "is more than 30 days away"))
        }
        Some(t) => t,
    };
    let (person_id, number) = target(&state, &enterprise, &body).await?;
    let personalisation =
        serde_json::to_string(&body.personalisation).map_err(|_| ApiError::Internal)?;
    // The parsed body, re-serialised in field order, so that a retry that
    // only differs in whitespace or key order is still the same request.
    let canonical = serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?;
    let body_digest = hex::encode(Sha256::digest(&canonical));
    let details = RequestDetails {
        idempotency_key,
        body_digest,
        locale,
        personalisation,
    };
    let created = state
        .store
        .create_api_consent_request(
            NewConsentRequest {
                enterprise_id: enterprise.id.clone(),
                person_id,
                number,
                scope,
                options,
                hold_id: None,
                expires_at,
            },
            details.clone(),
            now,
        )
        .await?;
    // A new request's details are the ones just written; a replayed one's
    // are those of the first attempt.
    let details = match &created {
        Created::New(_) => Some(details),
        Created::Existing(r) => state.store.request_details(&r.id).await?,
    };
    let view = ConsentRequestView::new(created.request(), details);
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if matches!(created, Created::Existing(_)) {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Read a consent request and its answer.
#[utoipa::path(get, path = "/v1/consent-requests/{id}", tag = "consent requests",
    params(("id" = String, Path, description = "Consent request id")),
    responses(
        (status = 200, description = "The request", body = ConsentRequestView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such request for this enterprise", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_consent_request(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConsentRequestView>, ApiError> {
    // Another enterprise's request is reported as missing, not forbidden:
    // ids must not be probed.
    let request = state
        .store
        .consent_request(&id)
        .await?
        .filter(|r| r.enterprise_id == enterprise.id)
        .ok_or_else(|| ApiError::not_found("consent request", &id))?;
    let details = state.store.request_details(&id).await?;
    Ok(Json(ConsentRequestView::new(&request, details)))
}

/// The person and number to ask. A person id must name someone with a
/// subscription to this enterprise; otherwise it is reported as unknown,
/// so that one enterprise cannot learn about another's people.
async fn target(
    state: &ApiState,
    enterprise: &Enterprise,
    body: &CreateConsentRequest,
) -> Result<(String, E164), ApiError> {
    let number = body
        .number
        .as_deref()
        .map(|n| parse_number(enterprise, n))
        .transpose()?;
    match (&body.person_id, number) {
        (None, None) => Err(ApiError::invalid("number", "give `number` or `person_id`")),
        (None, Some(number)) => {
            // An unknown number is refused like an unsubscribed one; the
            // store checks the rest of the rules when it creates the request.
            let person_id = state
                .store
                .person_id_by_identifier(&Identifier::Phone(number.clone()))
                .await?
                .ok_or(ApiError::Refused(Refusal::NotSubscribed))?;
            Ok((person_id, number))
        }
        (Some(person_id), number) => {
            let person = state
                .store
                .person(person_id)
                .await?
                .ok_or_else(|| ApiError::not_found("person", person_id))?;
            if state
                .store
                .subscription(&person.id, &enterprise.id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found("person", person_id));
            }
            let number = match number {
                Some(n) if person.numbers().any(|m| *m == n) => n,
                Some(n) => {
                    return Err(ApiError::invalid(
                        "number",
                        format!("{n} is not a number of person {person_id}"),
                    ))
                }
                None => person.numbers().next().cloned().ok_or_else(|| {
                    ApiError::invalid("person_id", "the person has no telephone number")
                })?,
            };
            Ok((person.id, number))
        }
    }
}

/// Reads a number as the enterprise writes it: national numbers in its
/// default region.
pub(super) fn parse_number(enterprise: &Enterprise, input: &str) -> Result<E164, ApiError> {
    let region = enterprise.default_region.parse::<Region>().ok();
    E164::parse(input, region).map_err(|e| ApiError::invalid("number", e.to_string()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    const FIELD: &str = "Idempotency-Key";
    let Some(value) = headers.get(FIELD) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid(FIELD, "must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(FIELD, "must be 1 to 255 characters"));
    }
    Ok(Some(key.to_string()))
}

fn scope(body: &CreateConsentRequest) -> Result<Scope, ApiError> {
    let check = |field: &str, value: &str| -> Result<String, ApiError> {
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_SCOPE || value.contains(['\r', '\n']) {
            return Err(ApiError::invalid(
                field,
                "must be a single line of 1 to 200 characters",
            ));
        }
        Ok(value.to_string())
    };
    match (&body.purpose, &body.campaign) {
        (Some(p), None) => Ok(Scope::Purpose(check("purpose", p)?)),
        (None, Some(c)) => Ok(Scope::Campaign(check("campaign", c)?)),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "campaign",
            "give `purpose` or `campaign`, not both",
        )),
        (None, None) => Err(ApiError::invalid("purpose", "give `purpose` or `campaign`")),
    }
}

fn options(slots: &[SlotBody], now: DateTime<Utc>) -> Result<Vec<SlotOption>, ApiError> {
    const FIELD: &str = "preferred_options";
    if slots.len() > MAX_OPTIONS {
        return Err(ApiError::invalid(FIELD, "at most 10 options"));
    }
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.end <= s.start {
                return Err(ApiError::invalid(
                    &format!("{FIELD}[{i}]"),
                    "ends before it starts",
                ));
            }
            if s.end <= now {
                return Err(ApiError::invalid(
                    &format!("{FIELD}[{i}]"),
                    "is in the past",
                ));
            }
            Ok(SlotOption {
                start: s.start,
                end: s.end,
            })
        })
        .collect()
}

/// A BCP 47-shaped tag: letters, digits and hyphens, starting with a
/// letter. Full validation belongs to the template engine that uses it.
fn locale(tag: &str) -> Result<String, ApiError> {
    let ok = (2..=35).contains(&tag.len())
        && tag.starts_with(|c: char| c.is_ascii_alphabetic())
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(tag.to_string())
    } else {
        Err(ApiError::invalid(
            "locale",
            format!("{tag:?} is not a language tag such as fr-FR"),
        ))
    }
}

fn check_personalisation(fields: &BTreeMap<String, String>) -> Result<(), ApiError> {
    const FIELD: &str = "personalisation";
    if fields.len() > MAX_PERSONALISATION_FIELDS {
        return Err(ApiError::invalid(FIELD, "at most 32 fields"));
    }
    for (key, value) in fields {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_PERSONALISATION_KEY
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            return Err(ApiError::invalid(
                FIELD,
                format!("{key:?}: names are 1 to 64 letters, digits or underscores"),
            ));
        }
        if value.len() > MAX_PERSONALISATION_VALUE {
            return Err(ApiError::invalid(
                &format!("{FIELD}.{key}"),
                "at most 512 bytes",
            ));
        }
    }
    Ok(())
}
