//! `/v1/campaigns`: an enterprise describes the campaigns whose scheduled
//! callbacks slotgate places (pacing settings, where the agent leg goes,
//! what to play, the passes of its strategy), reports its agents, and
//! reads how each campaign is doing.
//!
//! A campaign's id is the campaign name its callbacks carry, chosen by the
//! enterprise. Another enterprise's campaign is reported as missing, so
//! ids cannot be probed. A configuration the dialler could not follow is
//! refused with `422` naming the field as a path in the body
//! (`settings.limits.trunk_channels`, `passes[1].enter_on`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::{ApiJson, ApiState};
use crate::pacing::{CampaignSettings, Strategy};
use crate::store::campaigns::{
    AgentPresence, CampaignAgent, CampaignAgents, CampaignRecord, CampaignSpec, CampaignState,
    CampaignStoreError, MachinePolicy,
};

impl From<CampaignStoreError> for ApiError {
    fn from(e: CampaignStoreError) -> ApiError {
        match e {
            CampaignStoreError::NotFound { id } => ApiError::not_found("campaign", &id),
            CampaignStoreError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            e @ (CampaignStoreError::Exists { .. }
            | CampaignStoreError::Conflict { .. }
            | CampaignStoreError::InUse { .. }) => ApiError::Conflict(e.to_string()),
            e @ CampaignStoreError::Store(_) => {
                tracing::error!(error = %e, "campaign request failed in the store");
                ApiError::Internal
            }
        }
    }
}

/// A new campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// The campaign name its callbacks carry: 1 to 64 of `A-Z a-z 0-9 _ -`.
    pub id: String,
    /// Pacing settings (mode, agents_target, limits, abandon, calling_hours,
    /// ring_timeout_secs, predictive); omitted keys take their defaults.
    #[schema(value_type = Object)]
    pub settings: CampaignSettings,
    /// SIP URI the agent leg is INVITEd at; default: the callback's PBX target.
    pub agent_target: Option<String>,
    /// Recording played to an abandoned call.
    pub abandon_message: Option<String>,
    /// `{"action": "hang-up"}` (default) or
    /// `{"action": "leave-message", "message": "…"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub machine_policy: MachinePolicy,
    /// `active` (default) or `paused`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// The passes; default: one voice pass of 3 calls, 10 minutes apart.
    #[schema(value_type = Option<Object>)]
    pub strategy: Option<Strategy>,
}

/// A campaign's configuration, replaced whole (strategy and agents have
/// their own endpoints and are kept).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    #[schema(value_type = Object)]
    pub settings: CampaignSettings,
    pub agent_target: Option<String>,
    pub abandon_message: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub machine_policy: MachinePolicy,
    #[serde(default)]
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// The version read; when given, the write is refused (`409`) if the
    /// campaign changed since.
    pub version: Option<i64>,
}

/// The agents the ACD reports: a count, and optionally who they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentsBody {
    /// Agents free to take a call; default: those listed as `available`.
    pub available: Option<i64>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub agents: Option<Vec<CampaignAgent>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsView {
    pub available: u32,
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<CampaignAgent>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A campaign as the enterprise sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    /// `active` or `paused`.
    pub state: &'static str,
    #[schema(value_type = Object)]
    pub settings: CampaignSettings,
    pub agent_target: Option<String>,
    pub abandon_message: Option<String>,
    #[schema(value_type = Object)]
    pub machine_policy: MachinePolicy,
    /// The strategy followed (the default when none was set).
    #[schema(value_type = Object)]
    pub strategy: Strategy,
    pub strategy_is_default: bool,
    pub agents: AgentsView,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CampaignRecord> for CampaignView {
    fn from(r: CampaignRecord) -> CampaignView {
        CampaignView {
            state: r.state.as_str(),
            strategy: r.strategy(),
            strategy_is_default: r.strategy.is_none(),
            agents: AgentsView {
                available: r.agents.available,
                agents: r.agents.agents,
                updated_at: r.agents_updated_at,
            },
            id: r.id,
            settings: r.settings,
            agent_target: r.agent_target,
            abandon_message: r.abandon_message,
            machine_policy: r.machine_policy,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

/// How a campaign is doing now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignStatsView {
    pub campaign: String,
    pub at: DateTime<Utc>,
    /// Pending callbacks whose slot has started.
    pub due_slots: u64,
    /// Pending callbacks, due or not.
    pub pending_slots: u64,
    /// Attempts begun in the last 60 seconds.
    pub dial_rate_per_min: u64,
    /// Person-answered calls connected, over the legal window.
    pub answered: u64,
    /// Person-answered calls not connected in time, over the legal window.
    pub abandoned: u64,
    /// `abandoned / (answered + abandoned)`, percent, over the legal window.
    pub abandon_percent: f64,
    /// `us_30_days` or `uk_24_hours`, from the settings.
    pub abandon_window: &'static str,
    /// Answered share of the calls ended in the last 24 hours, percent.
    pub answer_percent: f64,
    /// Agents available, as last reported.
    pub agents: u32,
    /// Attempts dialling now.
    pub in_flight: u64,
    /// Callbacks whose outcome is unknown, waiting for an operator.
    pub unknown: u64,
}

fn spec(
    settings: CampaignSettings,
    agent_target: Option<String>,
    abandon_message: Option<String>,
    machine_policy: MachinePolicy,
    state: CampaignState,
) -> CampaignSpec {
    CampaignSpec {
        settings,
        agent_target,
        abandon_message,
        machine_policy,
        state,
    }
}

/// Create a campaign.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns",
    request_body = CreateCampaign,
    responses(
        (status = 201, description = "Created; `Location` names it", body = CampaignView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_campaign(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    ApiJson(body): ApiJson<CreateCampaign>,
) -> Result<Response, ApiError> {
    let spec = spec(
        body.settings,
        body.agent_target,
        body.abandon_message,
        body.machine_policy,
        body.state,
    );
    let record = state
        .store
        .create_campaign(
            &enterprise.id,
            &body.id,
            &spec,
            body.strategy.as_ref(),
            Utc::now(),
        )
        .await?;
    // The id is URL-safe by construction (checked by the store).
    let location = HeaderValue::from_str(&format!("/v1/campaigns/{}", record.id))
        .map_err(|_| ApiError::Internal)?;
    let mut response = (StatusCode::CREATED, Json(CampaignView::from(record))).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// The enterprise's campaigns.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    responses(
        (status = 200, description = "Every campaign, by id", body = CampaignList),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_campaigns(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
) -> Result<Json<CampaignList>, ApiError> {
    let campaigns = state.store.campaigns(&enterprise.id).await?;
    Ok(Json(CampaignList {
        campaigns: campaigns.into_iter().map(CampaignView::from).collect(),
    }))
}

/// Read a campaign.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_campaign(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let record = owned(&state, &enterprise.id, &id).await?;
    Ok(Json(CampaignView::from(record)))
}

/// Replace a campaign's settings, targets, policies and state.
#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body = UpdateCampaign,
    responses(
        (status = 200, description = "Replaced; the version is bumped", body = CampaignView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody),
        (status = 409, description = "Changed since the version given", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn update_campaign(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateCampaign>,
) -> Result<Json<CampaignView>, ApiError> {
    let spec = spec(
        body.settings,
        body.agent_target,
        body.abandon_message,
        body.machine_policy,
        body.state,
    );
    let record = state
        .store
        .update_campaign(&enterprise.id, &id, &spec, body.version, Utc::now())
        .await?;
    Ok(Json(CampaignView::from(record)))
}

/// Delete a campaign that has no open callbacks.
#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody),
        (status = 409, description = "Callbacks are pending, claimed or unknown: pause it instead", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_campaign(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_campaign(&enterprise.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Report the campaign's agents (replaces the last report).
#[utoipa::path(put, path = "/v1/campaigns/{id}/agents", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body = AgentsBody,
    responses(
        (status = 200, description = "Stored", body = CampaignView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_agents(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentsBody>,
) -> Result<Json<CampaignView>, ApiError> {
    let agents = body.agents.unwrap_or_default();
    let available = match body.available {
        Some(n) => u32::try_from(n)
            .map_err(|_| ApiError::invalid("available", "must be a count from 0"))?,
        None if agents.is_empty() => {
            return Err(ApiError::invalid(
                "available",
                "give `available`, `agents`, or both",
            ))
        }
        None => {
            let free = agents
                .iter()
                .filter(|a| a.state == AgentPresence::Available)
                .count();
            u32::try_from(free).map_err(|_| ApiError::invalid("agents", "too many agents"))?
        }
    };
    let record = state
        .store
        .set_campaign_agents(
            &enterprise.id,
            &id,
            &CampaignAgents { available, agents },
            Utc::now(),
        )
        .await?;
    Ok(Json(CampaignView::from(record)))
}

/// Replace the campaign's strategy; it applies to every contact's next
/// step, not to steps already taken.
#[utoipa::path(put, path = "/v1/campaigns/{id}/strategy", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content = Object, description = "`{\"passes\": [{\"channel\": \"voice\"|\"prompt\", \"enter_on\": [outcomes], \"delay_secs\", \"max_attempts\", \"retry_delay_secs\"}]}`"),
    responses(
        (status = 200, description = "Stored; the version is bumped", body = CampaignView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_strategy(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
    ApiJson(strategy): ApiJson<Strategy>,
) -> Result<Json<CampaignView>, ApiError> {
    let record = state
        .store
        .set_campaign_strategy(&enterprise.id, &id, Some(&strategy), Utc::now())
        .await?;
    Ok(Json(CampaignView::from(record)))
}

/// How the campaign is doing now.
#[utoipa::path(get, path = "/v1/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The figures", body = CampaignStatsView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such campaign for this enterprise", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn campaign_stats(
    State(state): State<ApiState>,
    Caller(enterprise): Caller,
    Path(id): Path<String>,
) -> Result<Json<CampaignStatsView>, ApiError> {
    let record = owned(&state, &enterprise.id, &id).await?;
    let now = Utc::now();
    let stats = state.store.campaign_stats(&record, now).await?;
    Ok(Json(CampaignStatsView {
        campaign: record.id,
        at: now,
        due_slots: stats.due_slots,
        pending_slots: stats.pending_slots,
        dial_rate_per_min: stats.dial_rate_per_min,
        answered: stats.answered,
        abandoned: stats.abandoned,
        abandon_percent: stats.abandon_percent,
        abandon_window: window_name(record.settings.abandon.window),
        answer_percent: stats.answer_percent,
        agents: stats.agents,
        in_flight: stats.in_flight,
        unknown: stats.unknown,
    }))
}

fn window_name(window: crate::pacing::AbandonWindow) -> &'static str {
    match window {
        crate::pacing::AbandonWindow::Us30Days => "us_30_days",
        crate::pacing::AbandonWindow::Uk24Hours => "uk_24_hours",
    }
}

/// The enterprise's campaign, or 404.
async fn owned(
    state: &ApiState,
    enterprise_id: &str,
    id: &str,
) -> Result<CampaignRecord, ApiError> {
    state
        .store
        .campaign(enterprise_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign", id))
}
