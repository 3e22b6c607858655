//! The built-in simulator's handsets, over HTTP: read the prompts they
//! received, answer as the person would.
//!
//! Mounted only when the simulator is the primary channel. It stands in for
//! people's phones, so anyone who can reach it can answer for them: it is
//! for test harnesses and demonstrations, never for production traffic.
//! A reply goes through exactly the path a provider's webhook takes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::errors::{ApiError, ErrorBody};
use super::{ApiJson, ApiState};
use crate::consent::E164;
use crate::rcs::inbound::{Handled, Provider};
use crate::rcs::simulator::{ReplyContent, SimulatorError};
use crate::store::prompts::InboundOutcome;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only the prompts sent to this E.164 number.
    pub number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxChoice {
    pub label: String,
    pub postback: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxMessage {
    pub provider_message_id: String,
    pub to: String,
    pub text: String,
    pub choices: Vec<InboxChoice>,
    pub sent_at: DateTime<Utc>,
}

fn simulator(
    state: &ApiState,
) -> Result<&std::sync::Arc<std::sync::Mutex<crate::rcs::simulator::Simulator>>, ApiError> {
    state
        .exchange
        .as_ref()
        .and_then(|e| e.channels.simulator())
        .ok_or(ApiError::NoRoute)
}

fn number(text: &str) -> Result<E164, ApiError> {
    E164::parse(text, None).map_err(|e| ApiError::invalid("number", e.to_string()))
}

/// The prompts the simulated handsets received, newest first.
#[utoipa::path(get, path = "/v1/simulator/inbox", tag = "simulator",
    params(InboxQuery),
    responses(
        (status = 200, description = "Prompts, newest first", body = [InboxMessage]),
        (status = 404, description = "The simulator is not the configured channel", body = ErrorBody)))]
pub async fn inbox(
    State(state): State<ApiState>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Json<Vec<InboxMessage>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let simulator = simulator(&state)?;
    let to = query.number.as_deref().map(number).transpose()?;
    let messages = simulator
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .inbox(to.as_ref());
    Ok(Json(
        messages
            .into_iter()
            .map(|m| InboxMessage {
                provider_message_id: m.provider_message_id,
                to: m.to.as_str().to_string(),
                text: m.text,
                choices: m
                    .choices
                    .into_iter()
                    .map(|c| InboxChoice {
                        label: c.label,
                        postback: c.postback,
                    })
                    .collect(),
                sent_at: m.sent_at,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedReply {
    /// The handset answering (E.164).
    pub number: String,
    /// A chip's postback, as RCS sends it…
    pub postback: Option<String>,
    /// …or the person's own words, as SMS carries them.
    pub text: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyOutcome {
    /// `answered`, `duplicate`, `unclear` or `unmatched`.
    pub outcome: &'static str,
}

/// Answer a prompt as the person would.
#[utoipa::path(post, path = "/v1/simulator/reply", tag = "simulator",
    request_body = SimulatedReply,
    responses(
        (status = 200, description = "Applied", body = ReplyOutcome),
        (status = 404, description = "The simulator is not the configured channel", body = ErrorBody),
        (status = 422, description = "Invalid field, or no prompt was sent to that number", body = ErrorBody)))]
pub async fn reply(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<SimulatedReply>,
) -> Result<Json<ReplyOutcome>, ApiError> {
    let simulator = simulator(&state)?;
    let from = number(&body.number)?;
    let content = match (body.postback.clone(), body.text.clone()) {
        (Some(p), None) => ReplyContent::Postback(p),
        (None, Some(t)) => ReplyContent::Text(t),
        _ => return Err(ApiError::invalid("text", "give either postback or text")),
    };
    let now = Utc::now();
    let event = simulator
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reply(&from, content, now)
        .map_err(|e| match e {
            SimulatorError::NoPrompt(_) => ApiError::invalid("number", e.to_string()),
            SimulatorError::EmptyReply => ApiError::invalid("text", e.to_string()),
        })?;
    let exchange = state.exchange.as_ref().ok_or(ApiError::NoRoute)?;
    let payload = serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?;
    let handled = exchange
        .inbound
        .handle(Provider::Simulator, event, &payload, now)
        .await?;
    Ok(Json(ReplyOutcome {
        outcome: match handled {
            Handled::Reply(InboundOutcome::Duplicate) => "duplicate",
            Handled::Reply(InboundOutcome::Clarify { .. }) => "unclear",
            Handled::Reply(InboundOutcome::Applied { .. }) | Handled::Receipt => "answered",
            Handled::Unmatched => "unmatched",
        },
    }))
}
