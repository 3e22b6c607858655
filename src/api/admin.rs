//! The operator's admin API: registering, reading, changing and removing
//! enterprises, issuing and revoking their API keys, setting subscriptions,
//! adding do-not-call entries.
//!
//! It is guarded by one token from the config (`api.admin_token`), separate
//! from every enterprise key, and is absent when that key is empty: an
//! enterprise key can never reach these routes. The token is compared in
//! constant time so response timing does not leak its prefix.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::consent_requests::parse_number;
use super::errors::{ApiError, ErrorBody};
use super::people::SubscriptionView;
use super::{ApiJson, ApiState};
use crate::consent::{
    ConsentPolicy, Enterprise, EnterpriseChanges, Identifier, NewEnterprise, PromptTemplates,
    SubscriptionStatus, TrustStatus, E164,
};
use crate::store::ConsentStoreError;

/// Proof that the request carries the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Admin, ApiError> {
        // Without a configured token the routes answer as if absent.
        let expected = state.admin_token.as_deref().ok_or(ApiError::NoRoute)?;
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The enterprise `id` names, or the API's 404.
async fn existing_enterprise(state: &ApiState, id: &str) -> Result<Enterprise, ApiError> {
    state
        .store
        .enterprise(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enterprise", id))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnterprise {
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub services: Vec<String>,
    /// ISO 3166 alpha-2 region for national numbers (e.g. `FR`).
    pub default_region: String,
    pub crm_webhook_url: Option<String>,
    pub crm_webhook_secret: Option<String>,
    /// `per_call`, `hours:N`, `days:N` or `until_revoked` (default `per_call`).
    pub consent_policy: Option<String>,
    /// `trusted`, `suspended` or `untrusted` (default `trusted`).
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnterpriseView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub services: Vec<String>,
    pub default_region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_webhook_url: Option<String>,
    pub consent_policy: String,
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Enterprise> for EnterpriseView {
    // The webhook secret is write-only: it is never echoed back.
    fn from(e: Enterprise) -> EnterpriseView {
        EnterpriseView {
            id: e.id,
            name: e.name,
            display_name: e.display_name,
            services: e.services,
            default_region: e.default_region,
            crm_webhook_url: e.crm_webhook_url,
            consent_policy: e.consent_policy.to_string(),
            status: e.status.as_str(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// Register an enterprise.
#[utoipa::path(post, path = "/admin/v1/enterprises", tag = "admin",
    request_body = CreateEnterprise,
    responses(
        (status = 201, description = "Registered", body = EnterpriseView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "Invalid field (a private crm_webhook_url is one)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_enterprise(
    State(state): State<ApiState>,
    _: Admin,
    ApiJson(body): ApiJson<CreateEnterprise>,
) -> Result<(StatusCode, Json<EnterpriseView>), ApiError> {
    let consent_policy = match body.consent_policy.as_deref() {
        None => ConsentPolicy::PerCall,
        Some(p) => consent_policy(p)?,
    };
    let status = trust_status(body.status.as_deref().unwrap_or("trusted"))?;
    super::admin_webhooks::check_webhook_url(&state, body.crm_webhook_url.as_deref())?;
    let enterprise = state
        .store
        .create_enterprise(
            &NewEnterprise {
                name: body.name,
                display_name: body.display_name,
                services: body.services,
                default_region: body.default_region,
                crm_webhook_url: body.crm_webhook_url,
                crm_webhook_secret: body.crm_webhook_secret,
                consent_policy,
                status,
            },
            Utc::now(),
        )
        .await
        .map_err(region_error)?;
    Ok((StatusCode::CREATED, Json(enterprise.into())))
}

/// The only number-related input of an enterprise is its region.
fn region_error(e: ConsentStoreError) -> ApiError {
    match e {
        ConsentStoreError::Number(e) => ApiError::invalid("default_region", e.to_string()),
        other => other.into(),
    }
}

fn consent_policy(text: &str) -> Result<ConsentPolicy, ApiError> {
    text.parse()
        .map_err(|e| ApiError::invalid("consent_policy", format!("{e}")))
}

fn trust_status(text: &str) -> Result<TrustStatus, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid("status", "use trusted, suspended or untrusted"))
}

/// List every enterprise.
#[utoipa::path(get, path = "/admin/v1/enterprises", tag = "admin",
    responses(
        (status = 200, description = "All enterprises, oldest first", body = [EnterpriseView]),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_enterprises(
    State(state): State<ApiState>,
    _: Admin,
) -> Result<Json<Vec<EnterpriseView>>, ApiError> {
    let all = state.store.enterprises().await?;
    Ok(Json(all.into_iter().map(EnterpriseView::from).collect()))
}

/// Read one enterprise.
#[utoipa::path(get, path = "/admin/v1/enterprises/{id}", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    responses(
        (status = 200, description = "The enterprise", body = EnterpriseView),
        (status = 404, description = "No such enterprise", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_enterprise(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<EnterpriseView>, ApiError> {
    let enterprise = existing_enterprise(&state, &id).await?;
    Ok(Json(enterprise.into()))
}

/// A partial update: absent fields are left alone; `null` clears the
/// webhook URL or secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnterprise {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub services: Option<Vec<String>>,
    pub default_region: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub crm_webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub crm_webhook_secret: Option<Option<String>>,
    /// `per_call`, `hours:N`, `days:N` or `until_revoked`.
    pub consent_policy: Option<String>,
    /// `trusted`, `suspended` or `untrusted`.
    pub status: Option<String>,
}

/// A field that is in the body, possibly as `null`; serde only calls this
/// for fields that are present, so absence stays `None` by default.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Change an enterprise's settings.
#[utoipa::path(patch, path = "/admin/v1/enterprises/{id}", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    request_body = UpdateEnterprise,
    responses(
        (status = 200, description = "Updated", body = EnterpriseView),
        (status = 404, description = "No such enterprise", body = ErrorBody),
        (status = 409, description = "Changed concurrently; read it again", body = ErrorBody),
        (status = 422, description = "Invalid field (a private crm_webhook_url is one)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update_enterprise(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateEnterprise>,
) -> Result<Json<EnterpriseView>, ApiError> {
    super::admin_webhooks::check_webhook_url(
        &state,
        body.crm_webhook_url.clone().flatten().as_deref(),
    )?;
    let changes = EnterpriseChanges {
        name: body.name,
        display_name: body.display_name,
        services: body.services,
        default_region: body.default_region,
        crm_webhook_url: body.crm_webhook_url,
        crm_webhook_secret: body.crm_webhook_secret,
        consent_policy: body
            .consent_policy
            .as_deref()
            .map(consent_policy)
            .transpose()?,
        status: body.status.as_deref().map(trust_status).transpose()?,
    };
    let enterprise = state
        .store
        .update_enterprise(&id, &changes, Utc::now())
        .await
        .map_err(region_error)?;
    Ok(Json(enterprise.into()))
}

/// Remove an enterprise that has no history.
#[utoipa::path(delete, path = "/admin/v1/enterprises/{id}", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    responses(
        (status = 204, description = "Deleted, with its API keys and do-not-call entries"),
        (status = 404, description = "No such enterprise", body = ErrorBody),
        (status = 409, description = "It has subscriptions, consents or requests: suspend it instead", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete_enterprise(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_enterprise(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// List an enterprise's API keys (never the keys themselves).
#[utoipa::path(get, path = "/admin/v1/enterprises/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    responses(
        (status = 200, description = "Its keys, oldest first", body = [ApiKeyView]),
        (status = 404, description = "No such enterprise", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_api_keys(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    existing_enterprise(&state, &id).await?;
    let keys = state.store.api_keys(&id).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| ApiKeyView {
                id: k.id,
                created_at: k.created_at,
                revoked_at: k.revoked_at,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// `trusted`, `suspended` or `untrusted`.
    pub status: String,
}

/// Trust, suspend or distrust an enterprise.
#[utoipa::path(put, path = "/admin/v1/enterprises/{id}/status", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    request_body = SetStatus,
    responses(
        (status = 200, description = "Updated", body = EnterpriseView),
        (status = 404, description = "No such enterprise", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn set_enterprise_status(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetStatus>,
) -> Result<Json<EnterpriseView>, ApiError> {
    let status = trust_status(&body.status)?;
    let enterprise = state
        .store
        .set_enterprise_status(&id, status, Utc::now())
        .await?;
    Ok(Json(enterprise.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyView {
    pub id: String,
    /// The key itself, shown only in this answer.
    pub key: String,
}

/// Issue an API key for an enterprise.
#[utoipa::path(post, path = "/admin/v1/enterprises/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    responses(
        (status = 201, description = "Issued; the key is not shown again", body = IssuedKeyView),
        (status = 404, description = "No such enterprise", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn issue_api_key(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<IssuedKeyView>), ApiError> {
    let issued = state.store.create_api_key(&id, Utc::now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKeyView {
            id: issued.id.clone(),
            key: issued.key.clone(),
        }),
    ))
}

/// Revoke an API key at once.
#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/revoke", tag = "admin",
    params(("id" = String, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke_api_key(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_api_key(&id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSubscription {
    pub enterprise_id: String,
    /// The person's number; national numbers are read in the enterprise's
    /// region. A number nobody has yet creates the person.
    pub number: String,
    /// `active`, `paused` or `ended`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSet {
    pub person_id: String,
    pub enterprise_id: String,
    pub subscription: SubscriptionView,
}

/// Set a person's subscription to an enterprise.
#[utoipa::path(put, path = "/admin/v1/subscriptions", tag = "admin",
    request_body = SetSubscription,
    responses(
        (status = 200, description = "Set", body = SubscriptionSet),
        (status = 404, description = "No such enterprise", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn set_subscription(
    State(state): State<ApiState>,
    _: Admin,
    ApiJson(body): ApiJson<SetSubscription>,
) -> Result<Json<SubscriptionSet>, ApiError> {
    let status: SubscriptionStatus = body
        .status
        .parse()
        .map_err(|_| ApiError::invalid("status", "use active, paused or ended"))?;
    let enterprise = existing_enterprise(&state, &body.enterprise_id).await?;
    let number = parse_number(&enterprise, &body.number)?;
    let now = Utc::now();
    let phone = Identifier::Phone(number);
    let person = match state.store.person_by_identifier(&phone).await? {
        Some(p) => p,
        None => state.store.create_person(&[phone], now).await?,
    };
    let s = state
        .store
        .set_subscription(&person.id, &enterprise.id, status, now)
        .await?;
    Ok(Json(SubscriptionSet {
        person_id: person.id,
        enterprise_id: enterprise.id,
        subscription: SubscriptionView {
            status: s.status.as_str(),
            since: s.since,
            until: s.until,
        },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDoNotCall {
    /// The enterprise whose list it goes on; absent: the global list
    /// (which needs an international number).
    pub enterprise_id: Option<String>,
    pub number: String,
    /// Where the entry comes from (default `admin`).
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DoNotCallAdded {
    pub number: String,
    /// False when the number was already listed.
    pub added: bool,
}

/// Put a number on an enterprise's do-not-call list or the global one.
#[utoipa::path(post, path = "/admin/v1/do-not-call", tag = "admin",
    request_body = AddDoNotCall,
    responses(
        (status = 200, description = "Listed", body = DoNotCallAdded),
        (status = 404, description = "No such enterprise", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn add_do_not_call(
    State(state): State<ApiState>,
    _: Admin,
    ApiJson(body): ApiJson<AddDoNotCall>,
) -> Result<Json<DoNotCallAdded>, ApiError> {
    let number = listed_number(&state, body.enterprise_id.as_deref(), &body.number).await?;
    let source = body.source.as_deref().unwrap_or("admin");
    if source.trim().is_empty() || source.len() > 100 || source.contains(['\r', '\n']) {
        return Err(ApiError::invalid(
            "source",
            "must be a single line of 1 to 100 characters",
        ));
    }
    let added = state
        .store
        .add_do_not_call(body.enterprise_id.as_deref(), &number, source, Utc::now())
        .await?;
    Ok(Json(DoNotCallAdded {
        number: number.as_str().to_string(),
        added,
    }))
}

/// An enterprise's prompt wording, by locale (`en`, `fr`, `fr-CA` …);
/// placeholders `{name}`, `{purpose}` and `{enterprise}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplatesBody {
    pub templates: std::collections::BTreeMap<String, String>,
}

/// Replace an enterprise's prompt templates (all locales at once; an empty
/// map goes back to the built-in wording).
#[utoipa::path(put, path = "/admin/v1/enterprises/{id}/prompt-templates", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    request_body = PromptTemplatesBody,
    responses(
        (status = 200, description = "Stored, locales normalised", body = PromptTemplatesBody),
        (status = 404, description = "No such enterprise", body = ErrorBody),
        (status = 422, description = "A template or locale is invalid; the field names it", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn set_prompt_templates(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PromptTemplatesBody>,
) -> Result<Json<PromptTemplatesBody>, ApiError> {
    let mut templates = PromptTemplates::new();
    for (locale, text) in &body.templates {
        templates
            .insert(locale, text)
            .map_err(|e| ApiError::invalid(&format!("templates.{locale}"), e.to_string()))?;
    }
    state.store.set_prompt_templates(&id, &templates).await?;
    Ok(Json(templates_body(&templates)))
}

/// Read an enterprise's prompt templates.
#[utoipa::path(get, path = "/admin/v1/enterprises/{id}/prompt-templates", tag = "admin",
    params(("id" = String, Path, description = "Enterprise id")),
    responses(
        (status = 200, description = "Its templates (empty: the built-in wording)", body = PromptTemplatesBody),
        (status = 404, description = "No such enterprise", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_prompt_templates(
    State(state): State<ApiState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<PromptTemplatesBody>, ApiError> {
    existing_enterprise(&state, &id).await?;
    let templates = state.store.prompt_templates(&id).await?;
    Ok(Json(templates_body(&templates)))
}

fn templates_body(templates: &PromptTemplates) -> PromptTemplatesBody {
    PromptTemplatesBody {
        templates: templates
            .entries()
            .map(|(locale, text)| (locale.to_string(), text.to_string()))
            .collect(),
    }
}

/// Names one number on one list: an enterprise's, or the global one.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DoNotCallQuery {
    /// The enterprise whose list to look at; absent: the global list.
    pub enterprise_id: Option<String>,
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DoNotCallView {
    pub number: String,
    /// Absent for the global list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// The number a do-not-call route names, read in the enterprise's region.
async fn listed_number(
    state: &ApiState,
    enterprise_id: Option<&str>,
    number: &str,
) -> Result<E164, ApiError> {
    match enterprise_id {
        Some(id) => {
            let enterprise = existing_enterprise(state, id).await?;
            parse_number(&enterprise, number)
        }
        // The global list binds every enterprise: only an international
        // number is unambiguous there.
        None => E164::parse(number, None).map_err(|e| ApiError::invalid("number", e.to_string())),
    }
}

/// Whether a number may be called: the entry that forbids it, from the
/// enterprise's list or the global one.
#[utoipa::path(get, path = "/admin/v1/do-not-call", tag = "admin",
    params(DoNotCallQuery),
    responses(
        (status = 200, description = "The entry that forbids calling", body = DoNotCallView),
        (status = 404, description = "Not listed (or no such enterprise)", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_do_not_call(
    State(state): State<ApiState>,
    _: Admin,
    query: Result<Query<DoNotCallQuery>, QueryRejection>,
) -> Result<Json<DoNotCallView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let number = listed_number(&state, query.enterprise_id.as_deref(), &query.number).await?;
    let entry = state
        .store
        .do_not_call(query.enterprise_id.as_deref(), &number)
        .await?
        .ok_or_else(|| ApiError::not_found("do-not-call entry", number.as_str()))?;
    Ok(Json(DoNotCallView {
        number: entry.number.as_str().to_string(),
        enterprise_id: entry.enterprise_id,
        source: entry.source,
        created_at: entry.created_at,
    }))
}

/// Take a number off one list (an entry added by mistake); the other list
/// is not touched.
#[utoipa::path(delete, path = "/admin/v1/do-not-call", tag = "admin",
    params(DoNotCallQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "Not on that list (or no such enterprise)", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn remove_do_not_call(
    State(state): State<ApiState>,
    _: Admin,
    query: Result<Query<DoNotCallQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let number = listed_number(&state, query.enterprise_id.as_deref(), &query.number).await?;
    if !state
        .store
        .remove_do_not_call(query.enterprise_id.as_deref(), &number)
        .await?
    {
        return Err(ApiError::not_found("do-not-call entry", number.as_str()));
    }
    tracing::info!(number = %number.as_str(), enterprise = ?query.enterprise_id, "do-not-call entry removed by the operator");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
