//! `/metrics`: counters in the Prometheus text format, for the operator's
//! scraper: webhooks refused for their signature or shape (which leave no
//! other trace) and what the SIP gate decided.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let rbm = state.webhooks.rbm_rejected.load(Ordering::Relaxed);
    let sms = state.webhooks.sms_rejected.load(Ordering::Relaxed);
    let mut body = format!(
        "# HELP slotgate_webhooks_rejected_total Provider webhooks refused (bad or missing signature, malformed).\n\
         # TYPE slotgate_webhooks_rejected_total counter\n\
         slotgate_webhooks_rejected_total{{provider=\"rbm\"}} {rbm}\n\
         slotgate_webhooks_rejected_total{{provider=\"sms\"}} {sms}\n"
    );
    body.push_str(&state.gate.render());
    body.push_str(&state.dialler.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
