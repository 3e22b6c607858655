//! Liveness and readiness probes for load balancers and orchestrators.
//!
//! `/healthz` only says the process answers HTTP; `/readyz` also asks the
//! store, so a node that lost its database is taken out of rotation rather
//! than restarted in a loop.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::ApiState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process is up and its store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "The store is unreachable", body = ErrorBody)))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            Err(ApiError::Unavailable)
        }
    }
}
