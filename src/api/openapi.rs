//! `/openapi.json`: the API described from the code itself (utoipa), so
//! the document cannot drift from the handlers and types it describes.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, admin_callbacks, admin_webhooks, caller_id, campaigns, consent_requests, consents,
    errors, health, people, simulator,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "slotgate enterprise API",
        description = "Ask people ahead of a call when they may be called, read their answers, revoke."
    ),
    paths(
        consent_requests::create_consent_request,
        consent_requests::get_consent_request,
        consents::list_consents,
        consents::revoke_consent,
        people::get_person,
        campaigns::create_campaign,
        campaigns::list_campaigns,
        campaigns::get_campaign,
        campaigns::update_campaign,
        campaigns::delete_campaign,
        campaigns::set_agents,
        campaigns::set_strategy,
        campaigns::campaign_stats,
        health::healthz,
        health::readyz,
        admin::create_enterprise,
        admin::list_enterprises,
        admin::get_enterprise,
        admin::update_enterprise,
        admin::delete_enterprise,
        admin::list_api_keys,
        admin::set_prompt_templates,
        admin::get_prompt_templates,
        admin::set_enterprise_status,
        admin::issue_api_key,
        admin::revoke_api_key,
        admin::set_subscription,
        admin::add_do_not_call,
        admin::get_do_not_call,
        admin::remove_do_not_call,
        admin_callbacks::list_unknown_callbacks,
        admin_callbacks::resolve_callback,
        admin_webhooks::list_webhook_events,
        admin_webhooks::redrive_webhook_event,
        caller_id::set_caller_id,
        caller_id::get_caller_id,
        caller_id::clear_caller_id,
        caller_id::flag_number,
        caller_id::unflag_number,
        caller_id::list_numbers,
        simulator::inbox,
        simulator::reply,
    ),
    components(schemas(
        simulator::InboxMessage,
        simulator::InboxChoice,
        simulator::SimulatedReply,
        simulator::ReplyOutcome,
        consent_requests::CreateConsentRequest,
        consent_requests::SlotBody,
        consent_requests::ScopeView,
        consent_requests::AnswerView,
        consent_requests::ConsentRequestView,
        consents::ConsentView,
        consents::WindowView,
        consents::ConsentList,
        people::PersonView,
        people::IdentifierView,
        people::SubscriptionView,
        campaigns::CreateCampaign,
        campaigns::UpdateCampaign,
        campaigns::AgentsBody,
        campaigns::AgentsView,
        campaigns::CampaignView,
        campaigns::CampaignList,
        campaigns::CampaignStatsView,
        errors::ErrorBody,
        errors::ErrorDetail,
        health::Health,
        admin::CreateEnterprise,
        admin::EnterpriseView,
        admin::UpdateEnterprise,
        admin::ApiKeyView,
        admin::PromptTemplatesBody,
        admin::SetStatus,
        admin::IssuedKeyView,
        admin::SetSubscription,
        admin::SubscriptionSet,
        admin::AddDoNotCall,
        admin::DoNotCallAdded,
        admin::DoNotCallView,
        admin_callbacks::CallbackView,
        admin_callbacks::CallbackList,
        admin_callbacks::Resolution,
        admin_webhooks::WebhookEventView,
        admin_webhooks::WebhookEventList,
        caller_id::SetCallerId,
        caller_id::CallerIdView,
        caller_id::FlagNumber,
        caller_id::FlagView,
        caller_id::NumberView,
    )),
    modifiers(&BearerKey)
)]
pub struct ApiDoc;

/// Declares the bearer schemes (`api_key`, `admin_token`) the paths refer to.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
