//! The enterprise HTTP API (axum, JSON): the out-of-band path by which a
//! CRM or dialer asks for consent ahead of a call, reads the answer and
//! revokes.
//!
//! This file builds the router and runs it; each concern has its own file
//! (authentication, errors, one file per resource, health, the OpenAPI
//! document). Handlers stay thin: they check the input, call the store,
//! which enforces the consent rules, and shape the answer.

pub mod admin;
pub mod admin_callbacks;
pub mod admin_webhooks;
pub mod auth;
pub mod caller_id;
pub mod campaigns;
pub mod consent_requests;
pub mod consents;
pub mod errors;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod people;
pub mod simulator;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::config::ApiConfig;
use crate::rcs::channels::Channels;
use crate::rcs::inbound::Inbound;
use crate::store::Store;
use errors::ApiError;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Store,
    /// `None`: the admin routes are disabled.
    pub admin_token: Option<Arc<str>>,
    /// Whether enterprises may name private addresses as webhook URLs.
    pub allow_private_webhook_urls: bool,
    /// The consent exchange; `None`: no channel webhooks, no simulator.
    pub exchange: Option<Exchange>,
    pub webhooks: Arc<webhooks::WebhookCounters>,
    /// What the SIP side's gate counts, shown on `/metrics`.
    pub gate: Arc<crate::b2bua::gate_metrics::GateMetrics>,
    /// The caller ID pool the config sets, for the flag routes.
    pub caller_id: Arc<caller_id::PoolNumbers>,
    /// What the dialler counts, shown on `/metrics`.
    pub dialler: Arc<crate::pacing::dialer::DialMetrics>,
}

/// What the SIP side of the same process shares with the API.
#[derive(Debug, Clone, Default)]
pub struct SipSide {
    /// The gate's counters, shown on `/metrics`.
    pub gate: Arc<crate::b2bua::gate_metrics::GateMetrics>,
    /// The local-presence pool, listed with its flags.
    pub caller_id: Arc<caller_id::PoolNumbers>,
    /// The dialler's counters, shown on `/metrics`.
    pub dialler: Arc<crate::pacing::dialer::DialMetrics>,
}

/// What the provider webhooks and the simulator routes act on.
#[derive(Clone)]
pub struct Exchange {
    pub inbound: Inbound,
    pub channels: Arc<Channels>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

/// The API's routes over `store` as `config` sets them up (body limit,
/// admin token); `config.listen` is the caller's business. Without the
/// consent exchange, the provider webhooks and the simulator are absent.
pub fn router(store: Store, config: &ApiConfig) -> Router {
    router_with(store, config, None)
}

/// [`router`] with the consent exchange's routes: provider webhooks, and the
/// simulator's when it is the configured channel.
pub fn router_with(store: Store, config: &ApiConfig, exchange: Option<Exchange>) -> Router {
    router_with_gate(store, config, exchange, Arc::default())
}

/// [`router_with`], with `/metrics` also showing the SIP gate's counters.
pub fn router_with_gate(
    store: Store,
    config: &ApiConfig,
    exchange: Option<Exchange>,
    gate: Arc<crate::b2bua::gate_metrics::GateMetrics>,
) -> Router {
    router_with_sip(
        store,
        config,
        exchange,
        SipSide {
            gate,
            ..SipSide::default()
        },
    )
}

/// [`router_with`], with what the SIP side of this process shares: the
/// gate's counters and the caller ID pool.
pub fn router_with_sip(
    store: Store,
    config: &ApiConfig,
    exchange: Option<Exchange>,
    sip: SipSide,
) -> Router {
    Router::new()
        .route("/webhooks/rbm", post(webhooks::rbm_webhook))
        .route("/webhooks/sms", post(webhooks::sms_webhook))
        .route("/v1/simulator/inbox", get(simulator::inbox))
        .route("/v1/simulator/reply", post(simulator::reply))
        .route(
            "/v1/consent-requests",
            post(consent_requests::create_consent_request),
        )
        .route(
            "/v1/consent-requests/{id}",
            get(consent_requests::get_consent_request),
        )
        .route("/v1/consents", get(consents::list_consents))
        .route("/v1/consents/{id}/revoke", post(consents::revoke_consent))
        .route("/v1/people/{id}", get(people::get_person))
        .route(
            "/v1/campaigns",
            post(campaigns::create_campaign).get(campaigns::list_campaigns),
        )
        .route(
            "/v1/campaigns/{id}",
            get(campaigns::get_campaign)
                .put(campaigns::update_campaign)
                .delete(campaigns::delete_campaign),
        )
        .route("/v1/campaigns/{id}/agents", put(campaigns::set_agents))
        .route("/v1/campaigns/{id}/strategy", put(campaigns::set_strategy))
        .route("/v1/campaigns/{id}/stats", get(campaigns::campaign_stats))
        .route(
            "/admin/v1/enterprises",
            post(admin::create_enterprise).get(admin::list_enterprises),
        )
        .route(
            "/admin/v1/enterprises/{id}",
            get(admin::get_enterprise)
                .patch(admin::update_enterprise)
                .delete(admin::delete_enterprise),
        )
        .route(
            "/admin/v1/enterprises/{id}/status",
            put(admin::set_enterprise_status),
        )
        .route(
            "/admin/v1/enterprises/{id}/api-keys",
            post(admin::issue_api_key).get(admin::list_api_keys),
        )
        .route(
            "/admin/v1/enterprises/{id}/prompt-templates",
            put(admin::set_prompt_templates).get(admin::get_prompt_templates),
        )
        .route(
            "/admin/v1/api-keys/{id}/revoke",
            post(admin::revoke_api_key),
        )
        .route(
            "/admin/v1/enterprises/{id}/people/{person_id}/caller-id",
            put(caller_id::set_caller_id)
                .get(caller_id::get_caller_id)
                .delete(caller_id::clear_caller_id),
        )
        .route("/admin/v1/caller-id/numbers", get(caller_id::list_numbers))
        .route(
            "/admin/v1/caller-id/numbers/{number}/flag",
            post(caller_id::flag_number).delete(caller_id::unflag_number),
        )
        .route("/admin/v1/subscriptions", put(admin::set_subscription))
        .route(
            "/admin/v1/do-not-call",
            post(admin::add_do_not_call)
                .get(admin::get_do_not_call)
                .delete(admin::remove_do_not_call),
        )
        .route(
            "/admin/v1/webhook-events",
            get(admin_webhooks::list_webhook_events),
        )
        .route(
            "/admin/v1/webhook-events/{id}/redrive",
            post(admin_webhooks::redrive_webhook_event),
        )
        .route(
            "/admin/v1/callbacks/unknown",
            get(admin_callbacks::list_unknown_callbacks),
        )
        .route(
            "/admin/v1/callbacks/{id}/resolve",
            post(admin_callbacks::resolve_callback),
        )
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(ApiState {
            store,
            admin_token: config.admin_token.as_deref().map(Arc::from),
            allow_private_webhook_urls: config.allow_private_webhook_urls,
            exchange,
            webhooks: Arc::default(),
            gate: sip.gate,
            caller_id: sip.caller_id,
            dialler: sip.dialler,
        })
}

/// Serves `router` on `listener` until `shutdown` resolves; requests in
/// progress then finish before this returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON body whose rejections (malformed JSON, unknown or ill-typed
/// fields, oversize bodies) are answered in the API's error format.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}
