//! The operator's caller ID routes: the number a person is called from for
//! one enterprise (rule 1 of the selection chain), and flags that rest a
//! local-presence pool number (reported as spam, say).
//!
//! Both are written to the store, which is what the SIP side reads: an
//! override with the gate's facts about the callee, flags by the SIP loop
//! of every node (woken at once in this process, on a timer elsewhere).
//! The pool itself comes from the config, so this file is told which
//! numbers it has, to list them with their state.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::Admin;
use super::errors::{ApiError, ErrorBody};
use super::{ApiJson, ApiState};
use crate::callerid::config::CallerIdConfig;
use crate::consent::E164;

/// The longest cool-down a flag may ask for (as in the config).
const MAX_COOL_DOWN_SECS: u64 = 365 * 86_400;

/// The local-presence pool as the config sets it, and the cool-down a flag
/// gets when the request names none.
#[derive(Debug, Clone)]
pub struct PoolNumbers {
    /// (enterprise id, number), in config order.
    pub numbers: Vec<(String, E164)>,
    pub default_cool_down: Duration,
}

impl Default for PoolNumbers {
    fn default() -> Self {
        PoolNumbers::from_config(&crate::callerid::config::CallerIdSettings::default().caller_id)
    }
}

impl PoolNumbers {
    pub fn from_config(config: &CallerIdConfig) -> PoolNumbers {
        PoolNumbers {
            numbers: config
                .enterprises
                .iter()
                .flat_map(|e| e.pool.iter().map(|p| (e.id.clone(), p.number.clone())))
                .collect(),
            default_cool_down: config.health.flag_cool_down,
        }
    }
}

/// An international number from the path or the body, or the API's 422
/// naming `field`. Caller ID is shown to callees anywhere, so no region
/// is assumed.
fn e164(field: &str, text: &str) -> Result<E164, ApiError> {
    E164::from_e164(text.trim()).map_err(|e| ApiError::invalid(field, e.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCallerId {
    /// E.164, e.g. `+12125550100`.
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallerIdView {
    pub enterprise_id: String,
    pub person_id: String,
    pub number: String,
    pub updated_at: DateTime<Utc>,
}

impl From<crate::store::caller_ids::CallerIdOverride> for CallerIdView {
    fn from(o: crate::store::caller_ids::CallerIdOverride) -> CallerIdView {
        CallerIdView {
            enterprise_id: o.enterprise_id,
            person_id: o.person_id,
            number: o.number.as_str().to_string(),
            updated_at: o.updated_at,
        }
    }
}

/// Set the number a person is called from for an enterprise.
#[utoipa::path(put, path = "/admin/v1/enterprises/{id}/people/{person_id}/caller-id",
    tag = "admin",
    params(("id" = String, Path, description = "Enterprise id"),
           ("person_id" = String, Path, description = "Person id")),
    request_body = SetCallerId,
    responses(
        (status = 200, description = "Set: the person's calls from this enterprise show it", body = CallerIdView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such enterprise or person", body = ErrorBody),
        (status = 422, description = "The number is not E.164", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn set_caller_id(
    State(state): State<ApiState>,
    _: Admin,
    Path((id, person_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetCallerId>,
) -> Result<Json<CallerIdView>, ApiError> {
    let number = e164("number", &body.number)?;
    let set = state
        .store
        .set_caller_id_override(&person_id, &id, &number, Utc::now())
        .await?;
    tracing::info!(enterprise = %id, person = %person_id, number = %number, "caller ID override set");
    Ok(Json(set.into()))
}

/// Read the number a person is called from for an enterprise.
#[utoipa::path(get, path = "/admin/v1/enterprises/{id}/people/{person_id}/caller-id",
    tag = "admin",
    params(("id" = String, Path, description = "Enterprise id"),
           ("person_id" = String, Path, description = "Person id")),
    responses(
        (status = 200, description = "The number set", body = CallerIdView),
        (status = 404, description = "None set", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_caller_id(
    State(state): State<ApiState>,
    _: Admin,
    Path((id, person_id)): Path<(String, String)>,
) -> Result<Json<CallerIdView>, ApiError> {
    state
        .store
        .caller_id_override(&person_id, &id)
        .await?
        .map(|o| Json(o.into()))
        .ok_or_else(|| ApiError::not_found("caller ID override for person", &person_id))
}

/// Remove the number set on a person: the chain's other rules apply again.
#[utoipa::path(delete, path = "/admin/v1/enterprises/{id}/people/{person_id}/caller-id",
    tag = "admin",
    params(("id" = String, Path, description = "Enterprise id"),
           ("person_id" = String, Path, description = "Person id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "None was set", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn clear_caller_id(
    State(state): State<ApiState>,
    _: Admin,
    Path((id, person_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state
        .store
        .clear_caller_id_override(&person_id, &id)
        .await?
    {
        return Err(ApiError::not_found(
            "caller ID override for person",
            &person_id,
        ));
    }
    tracing::info!(enterprise = %id, person = %person_id, "caller ID override removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagNumber {
    /// How long the number rests, in seconds (1 to one year); default the
    /// config's `caller_id.flag_cool_down_secs`.
    pub cool_down_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlagView {
    pub number: String,
    /// Local presence skips the number until then.
    pub flagged_until: DateTime<Utc>,
}

/// Flag a pool number: local presence leaves it out for the cool-down.
#[utoipa::path(post, path = "/admin/v1/caller-id/numbers/{number}/flag", tag = "admin",
    params(("number" = String, Path, description = "E.164 number (`+` may be sent as `%2B`)")),
    request_body(content = FlagNumber, description = "Optional"),
    responses(
        (status = 200, description = "Flagged (a flag already there is replaced)", body = FlagView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "Invalid number or cool_down_secs", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn flag_number(
    State(state): State<ApiState>,
    _: Admin,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Json<FlagView>, ApiError> {
    let number = e164("number", &number)?;
    // The body is optional: an empty one takes the configured cool-down.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        FlagNumber::default()
    } else {
        axum::Json::<FlagNumber>::from_bytes(&body)?.0
    };
    let cool_down = match body.cool_down_secs {
        None => state.caller_id.default_cool_down,
        Some(secs) if (1..=MAX_COOL_DOWN_SECS).contains(&secs) => Duration::from_secs(secs),
        Some(_) => {
            return Err(ApiError::invalid(
                "cool_down_secs",
                format!("must be 1 to {MAX_COOL_DOWN_SECS} seconds"),
            ))
        }
    };
    let now = Utc::now();
    let until = chrono::Duration::from_std(cool_down)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| ApiError::invalid("cool_down_secs", "too long"))?;
    let flag = state.store.flag_caller_id(&number, until, now).await?;
    tracing::info!(number = %number, until = %flag.flagged_until, "caller ID number flagged");
    Ok(Json(FlagView {
        number: flag.number.as_str().to_string(),
        flagged_until: flag.flagged_until,
    }))
}

/// Lift a number's flag: local presence may choose it again.
#[utoipa::path(delete, path = "/admin/v1/caller-id/numbers/{number}/flag", tag = "admin",
    params(("number" = String, Path, description = "E.164 number")),
    responses(
        (status = 204, description = "Unflagged"),
        (status = 404, description = "The number was not flagged", body = ErrorBody),
        (status = 422, description = "Invalid number", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn unflag_number(
    State(state): State<ApiState>,
    _: Admin,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    let number = e164("number", &number)?;
    if !state.store.unflag_caller_id(&number).await? {
        return Err(ApiError::not_found("flag on number", number.as_str()));
    }
    tracing::info!(number = %number, "caller ID number unflagged");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberView {
    pub number: String,
    /// The enterprise whose pool lists it; absent for a flagged number no
    /// pool lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    pub flagged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged_until: Option<DateTime<Utc>>,
}

/// List the pool numbers and every flagged number, with their flags.
#[utoipa::path(get, path = "/admin/v1/caller-id/numbers", tag = "admin",
    responses(
        (status = 200, description = "Pool numbers in config order, then other flagged numbers", body = [NumberView]),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_numbers(
    State(state): State<ApiState>,
    _: Admin,
) -> Result<Json<Vec<NumberView>>, ApiError> {
    let flags = state.store.caller_id_flags(Utc::now()).await?;
    let until = |number: &E164| {
        flags
            .iter()
            .find(|f| &f.number == number)
            .map(|f| f.flagged_until)
    };
    let mut views: Vec<NumberView> = state
        .caller_id
        .numbers
        .iter()
        .map(|(enterprise, number)| NumberView {
            number: number.as_str().to_string(),
            enterprise_id: Some(enterprise.clone()),
            flagged: until(number).is_some(),
            flagged_until: until(number),
        })
        .collect();
    views.extend(
        flags
            .iter()
            .filter(|f| !state.caller_id.numbers.iter().any(|(_, n)| n == &f.number))
            .map(|f| NumberView {
                number: f.number.as_str().to_string(),
                enterprise_id: None,
                flagged: true,
                flagged_until: Some(f.flagged_until),
            }),
    );
    Ok(Json(views))
}
