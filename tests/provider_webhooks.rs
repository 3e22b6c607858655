//! The provider webhooks over real HTTP on loopback: RBM's handshake and
//! Pub/Sub pushes, Twilio's inbound SMS, each signed as the provider signs
//! it, through the API router into the store.
//!
//! Every world holds one consent request in state `sent` (put there through
//! the store, as the dispatcher would, without any provider) offering Now,
//! "In 15 min" and "Don't call". What was stored, or not, is read with
//! plain SQL on the SQLite file: the ledger (`inbound_messages`), the
//! consents and the request's state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::SqlitePool;

use slotgate::api::webhooks::{self, WebhookCounters};
use slotgate::api::{ApiState, Exchange};
use slotgate::config::{
    ApiConfig, ChannelsConfig, PromptConfig, RbmChannelConfig, SmsChannelConfig,
};
use slotgate::consent::{
    Answer, Choice, ConsentPolicy, Identifier, NewConsentRequest, NewEnterprise, OfferedChoice,
    RequestEvent, RequestState, Scope, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::rcs::channels::Channels;
use slotgate::rcs::delivery::{DeliveryPlan, Route};
use slotgate::rcs::inbound::Inbound;
use slotgate::rcs::rbm::{self, MessageTrafficType, RbmSettings, ServiceAccount};
use slotgate::rcs::secret::Secret;
use slotgate::rcs::twilio::{self, Sender, TwilioSettings};
use slotgate::store::prompts::SentPrompt;
use slotgate::store::Store;

/// Test-only key; see tests/fixtures/README.md.
const TEST_KEY: &str = include_str!("fixtures/TEST-ONLY-rbm-service-account-key.pem");
/// A New York number.
const ANN: &str = "+12125550142";
const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";
const AUTH_TOKEN: &str = "twilio-auth-token-0123456789abcdef";
/// The public URL Twilio is configured to post to; the test posts to the
/// loopback address, as a reverse proxy would forward it.
const SMS_HOOK: &str = "https://slotgate.example/webhooks/sms";
/// What the request's prompt carried, as the provider reported it.
const PROMPT_ID: &str = "phones/+12125550142/agentMessages/prompt-1";
/// Nothing listens here: anything the exchange sends back fails at once.
const NOWHERE: &str = "http://127.0.0.1:9";

struct World {
    base: String,
    client: Client,
    store: Store,
    db: SqlitePool,
    enterprise_id: String,
    request_id: String,
    exchange: Exchange,
    _dir: tempfile::TempDir,
}

/// Where the exchange sends (its answers back to the person) and how long
/// each provider call may take.
fn channels_config(provider: &str, timeout: Duration) -> ChannelsConfig {
    ChannelsConfig {
        plan: DeliveryPlan {
            primary: Route::Rcs,
            fallback: Some(Route::Sms),
            max_attempts: 2,
        },
        rbm: Some(RbmChannelConfig {
            settings: RbmSettings {
                base_url: provider.into(),
                agent_id: "slotgate_agent".into(),
                service_account: ServiceAccount {
                    client_email: "slotgate@rbm-test.iam.gserviceaccount.com".into(),
                    private_key_pem: Secret::new(TEST_KEY),
                    token_uri: format!("{provider}/token"),
                },
                traffic_type: MessageTrafficType::Transaction,
                timeout,
            },
            client_token: Secret::new(CLIENT_TOKEN),
        }),
        sms: Some(SmsChannelConfig {
            settings: TwilioSettings {
                base_url: provider.into(),
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: Secret::new(AUTH_TOKEN),
                from: Sender::Number(E164::from_e164("+14155550100").unwrap()),
                status_callback: None,
                timeout,
            },
            webhook_url: SMS_HOOK.into(),
        }),
        ..ChannelsConfig::default()
    }
}

fn offered() -> Vec<OfferedChoice> {
    let choice = |label: &str, postback: &str, choice| OfferedChoice {
        label: label.into(),
        postback: postback.into(),
        choice,
    };
    vec![
        choice("Call me now", "now", Choice::Now),
        choice(
            "In 15 min",
            "after-15",
            Choice::After(TimeDelta::minutes(15)),
        ),
        choice("Don't call", "decline", Choice::Decline),
    ]
}

impl World {
    async fn start() -> World {
        World::start_with(NOWHERE, Duration::from_secs(1)).await
    }

    /// A world whose provider calls go to `provider`.
    async fn start_with(provider: &str, timeout: Duration) -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let db = SqlitePool::connect(&url).await.unwrap();

        let enterprise = store
            .create_enterprise(
                &NewEnterprise {
                    name: "ACME Energy Inc.".into(),
                    display_name: "ACME Energy".into(),
                    services: vec!["Electricity".into()],
                    default_region: "US".into(),
                    crm_webhook_url: None,
                    crm_webhook_secret: None,
                    consent_policy: ConsentPolicy::PerCall,
                    status: TrustStatus::Trusted,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        let ann = E164::from_e164(ANN).unwrap();
        let person = store
            .create_person(&[Identifier::Phone(ann.clone())], Utc::now())
            .await
            .unwrap();
        store
            .set_subscription(
                &person.id,
                &enterprise.id,
                SubscriptionStatus::Active,
                Utc::now(),
            )
            .await
            .unwrap();

        // The request as the dispatcher leaves it after a send.
        let mut request = store
            .create_consent_request(
                NewConsentRequest {
                    enterprise_id: enterprise.id.clone(),
                    person_id: person.id.clone(),
                    number: ann,
                    scope: Scope::Purpose("your boiler service".into()),
                    options: Vec::new(),
                    hold_id: None,
                    expires_at: Utc::now() + TimeDelta::hours(1),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        store
            .save_offered_choices(&request.id, &offered())
            .await
            .unwrap();
        request
            .apply(
                RequestEvent::Sent {
                    provider_message_id: PROMPT_ID.into(),
                },
                Utc::now(),
            )
            .unwrap();
        store
            .mark_prompt_sent(&SentPrompt {
                request: request.clone(),
                channel: "rcs".into(),
            })
            .await
            .unwrap();

        let channels =
            Arc::new(Channels::from_config(&channels_config(provider, timeout)).unwrap());
        // Calling hours all day: the test must not depend on when it runs.
        let mut prompts = PromptConfig::default();
        prompts.options.calling_hours = slotgate::consent::CallingHours::new(
            chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
        )
        .unwrap();
        prompts.options.now_margin = TimeDelta::zero();
        let exchange = Exchange {
            inbound: Inbound::new(store.clone(), channels.clone(), prompts),
            channels,
        };
        let router =
            slotgate::api::router_with(store.clone(), &api_config(), Some(exchange.clone()));
        let base = serve(router).await;
        let world = World {
            base,
            client: Client::new(),
            store,
            db,
            enterprise_id: enterprise.id,
            request_id: request.id,
            exchange,
            _dir: dir,
        };
        assert_eq!(world.state().await, "sent");
        world.assert_nothing_stored().await;
        world
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, String, Option<String>) {
        post_to(&self.client, &format!("{}{path}", self.base), headers, body).await
    }

    async fn rbm(&self, signature: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
        let headers: Vec<(&str, &str)> = signature
            .map(|s| vec![(rbm::SIGNATURE_HEADER, s)])
            .unwrap_or_default();
        let (status, body, _) = self.post("/webhooks/rbm", &headers, body).await;
        (status, body)
    }

    async fn sms(
        &self,
        signature: Option<&str>,
        form: &[(String, String)],
    ) -> (StatusCode, String, Option<String>) {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(s) = signature {
            headers.push((twilio::SIGNATURE_HEADER, s));
        }
        let body = serde_urlencoded::to_string(form).unwrap().into_bytes();
        self.post("/webhooks/sms", &headers, body).await
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn state(&self) -> String {
        sqlx::query_scalar("SELECT state FROM consent_requests WHERE id = $1")
            .bind(&self.request_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn answer(&self) -> Answer {
        match self
            .store
            .consent_request(&self.request_id)
            .await
            .unwrap()
            .unwrap()
            .state
        {
            RequestState::Answered(answer) => answer,
            other => panic!("the request is {other}, not answered"),
        }
    }

    /// No ledger row, no consent, the request untouched.
    async fn assert_nothing_stored(&self) {
        assert_eq!(self.count("inbound_messages").await, 0, "ledger rows");
        assert_eq!(self.count("consents").await, 0, "consents");
        assert_eq!(self.state().await, "sent");
    }
}

fn api_config() -> ApiConfig {
    ApiConfig {
        listen: None,
        max_body_bytes: 65_536,
        admin_token: None,
        allow_private_webhook_urls: true,
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(slotgate::api::serve(
        listener,
        router,
        std::future::pending(),
    ));
    base
}

async fn post_to(
    client: &Client,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String, Option<String>) {
    let mut request = client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(Duration::from_secs(10), request.send())
        .await
        .expect("the webhook answered within 10 s")
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), content_type)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A Pub/Sub push envelope carrying `data` (the RBM event's JSON) as
/// Google posts it.
fn envelope(data: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "message": {
            "data": STANDARD.encode(data),
            "messageId": "2070443601311540",
            "publishTime": rfc3339(Utc::now()),
        },
        "subscription": "projects/rbm-slotgate/subscriptions/rbm-slotgate-sub",
    }))
    .unwrap()
}

/// The RBM event of Ann tapping the chip whose postback is `postback`.
fn chip_reply(message_id: &str, postback: &str) -> String {
    json!({
        "senderPhoneNumber": ANN,
        "messageId": message_id,
        "sendTime": rfc3339(Utc::now()),
        "agentId": "slotgate_agent",
        "suggestionResponse": {"postbackData": postback, "text": "Call me now", "type": "REPLY"},
    })
    .to_string()
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn inbound_sms(sid: &str, body: &str) -> Vec<(String, String)> {
    form(&[
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "+14155550100"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", ANN),
        ("ApiVersion", "2010-04-01"),
    ])
}

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

// ---------------------------------------------------------------------------
// RBM.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rbm_handshake_echoes_the_secret_for_our_token_only() {
    let world = World::start().await;
    let (status, body) = world
        .rbm(
            None,
            json!({"clientToken": CLIENT_TOKEN, "secret": "1234567890"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "1234567890");

    let (status, body) = world
        .rbm(
            None,
            json!({"clientToken": "ANOTHERTOKEN0000", "secret": "1234567890"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("1234567890"), "{body}");
    world.assert_nothing_stored().await;
}

#[tokio::test]
async fn rbm_chip_now_answers_the_request_once() {
    let world = World::start().await;
    let message_id = "MxkGq8xdFRTK2FZfDN-vwfcw";
    let data = chip_reply(message_id, "now");
    let signature = rbm::signature(CLIENT_TOKEN, data.as_bytes());
    let body = envelope(&data);

    let (status, text) = world.rbm(Some(&signature), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(world.state().await, "answered");
    assert_eq!(world.answer().await, Answer::Now);

    let consent: (String, String, Option<String>, Option<bool>, String) = sqlx::query_as(
        "SELECT status, channel, provider_message_id, signature_valid, number FROM consents",
    )
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert_eq!(
        consent,
        (
            "granted".to_string(),
            "rcs".to_string(),
            Some(message_id.to_string()),
            Some(true),
            ANN.to_string()
        )
    );
    let ledger: (String, String, Option<String>, bool, String) = sqlx::query_as(
        "SELECT provider, provider_message_id, request_id, signature_valid, outcome \
         FROM inbound_messages",
    )
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        (
            "rbm".to_string(),
            message_id.to_string(),
            Some(world.request_id.clone()),
            true,
            "answered".to_string()
        )
    );

    // Google redelivers the same push: acknowledged, no second effect.
    let (status, text) = world.rbm(Some(&signature), body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(world.count("consents").await, 1);
    assert_eq!(world.count("inbound_messages").await, 1);
    assert_eq!(world.answer().await, Answer::Now);
}

#[tokio::test]
async fn rbm_pushes_that_do_not_verify_are_refused_and_leave_nothing() {
    let world = World::start().await;
    let data = chip_reply("Mx-forged", "now");
    let body = envelope(&data);
    let good = rbm::signature(CLIENT_TOKEN, data.as_bytes());

    // A signature of something else.
    let other = rbm::signature(CLIENT_TOKEN, b"something else");
    let (status, _) = world.rbm(Some(&other), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "bad signature");
    // Junk in the header.
    let (status, _) = world.rbm(Some("not base64!"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "junk signature");
    // No header at all.
    let (status, _) = world.rbm(None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "missing signature");
    // Signed with another webhook's client token.
    let foreign = rbm::signature("ANOTHERTOKEN0000", data.as_bytes());
    let (status, _) = world.rbm(Some(&foreign), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "foreign token");
    // The decoded data re-spaced after signing: same JSON, other bytes.
    let respaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&data).unwrap()).unwrap();
    assert_ne!(respaced, data);
    let (status, _) = world.rbm(Some(&good), envelope(&respaced)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "re-spaced data");
    world.assert_nothing_stored().await;

    // Signed, but not a Pub/Sub push at all.
    let (status, _) = world.rbm(Some(&good), b"this is not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not JSON");
    world.assert_nothing_stored().await;

    // The original push still goes through: the refusals left no trace
    // that would make it a duplicate.
    let (status, _) = world.rbm(Some(&good), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.state().await, "answered");
}

#[tokio::test]
async fn rbm_refusals_are_counted() {
    // The counters live in the router's state; build one around the public
    // handlers to read them.
    let world = World::start().await;
    let counters = Arc::new(WebhookCounters::default());
    let router = axum::Router::new()
        .route("/webhooks/rbm", post(webhooks::rbm_webhook))
        .route("/webhooks/sms", post(webhooks::sms_webhook))
        .with_state(ApiState {
            store: world.store.clone(),
            admin_token: None,
            allow_private_webhook_urls: true,
            exchange: Some(world.exchange.clone()),
            webhooks: counters.clone(),
            gate: Arc::default(),
            caller_id: Arc::default(),
            dialler: Arc::default(),
        });
    let base = serve(router).await;
    let data = chip_reply("Mx-counted", "now");
    let bad = rbm::signature("ANOTHERTOKEN0000", data.as_bytes());
    for signature in [Some(bad.as_str()), None] {
        let headers: Vec<(&str, &str)> = signature
            .map(|s| vec![(rbm::SIGNATURE_HEADER, s)])
            .unwrap_or_default();
        let (status, _, _) = post_to(
            &world.client,
            &format!("{base}/webhooks/rbm"),
            &headers,
            envelope(&data),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let good = rbm::signature(CLIENT_TOKEN, b"x");
    let (status, _, _) = post_to(
        &world.client,
        &format!("{base}/webhooks/rbm"),
        &[(rbm::SIGNATURE_HEADER, good.as_str())],
        b"not json".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The handshake with a wrong token is a refusal too.
    let (status, _, _) = post_to(
        &world.client,
        &format!("{base}/webhooks/rbm"),
        &[],
        json!({"clientToken": "ANOTHERTOKEN0000", "secret": "s"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(counters.rbm_rejected.load(Ordering::Relaxed), 4);
    assert_eq!(counters.sms_rejected.load(Ordering::Relaxed), 0);

    let form = inbound_sms("SMcounted", "1");
    let body = serde_urlencoded::to_string(&form).unwrap().into_bytes();
    let (status, _, _) = post_to(
        &world.client,
        &format!("{base}/webhooks/sms"),
        &[(twilio::SIGNATURE_HEADER, "bm90IGl0")],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(counters.sms_rejected.load(Ordering::Relaxed), 1);
    world.assert_nothing_stored().await;
}

#[tokio::test]
async fn rbm_delivery_receipt_moves_the_request_to_delivered() {
    let world = World::start().await;
    let data = json!({
        "senderPhoneNumber": ANN,
        "eventType": "DELIVERED",
        "eventId": "ev-1",
        "messageId": PROMPT_ID,
        "sendTime": rfc3339(Utc::now()),
        "agentId": "slotgate_agent",
    })
    .to_string();
    let signature = rbm::signature(CLIENT_TOKEN, data.as_bytes());
    let (status, text) = world.rbm(Some(&signature), envelope(&data)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(world.state().await, "delivered");
    // A receipt is not a reply: nothing in the ledger, no consent.
    assert_eq!(world.count("inbound_messages").await, 0);
    assert_eq!(world.count("consents").await, 0);
    // And a repeat is harmless.
    let (status, _) = world.rbm(Some(&signature), envelope(&data)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.state().await, "delivered");
}

// ---------------------------------------------------------------------------
// Twilio.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sms_option_number_answers_with_the_offered_choice_once() {
    let world = World::start().await;
    // "2" is the second offered choice: "In 15 min".
    let offered = world
        .store
        .offered_choices(&world.request_id)
        .await
        .unwrap();
    assert_eq!(offered[1].choice, Choice::After(TimeDelta::minutes(15)));

    let form = inbound_sms("SM9f0e0d0c0b0a09080706050403020100", "2");
    let signature = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let before = Utc::now();
    let (status, body, content_type) = world.sms(Some(&signature), &form).await;
    let after = Utc::now();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type.as_deref(), Some("text/xml"));
    assert_eq!(body, EMPTY_TWIML);
    assert_eq!(world.state().await, "answered");
    // A delay the prompt offered but no fixed slot: the person's own range,
    // fifteen minutes after the reply.
    match world.answer().await {
        Answer::Range { start, end } => {
            let from = before - TimeDelta::milliseconds(1) + TimeDelta::minutes(15);
            let to = after + TimeDelta::milliseconds(1) + TimeDelta::minutes(15);
            assert!(from <= start && start <= to, "{start}");
            assert!(end > start);
        }
        other => panic!("answered {other:?}"),
    }
    let consent: (String, String, Option<String>, Option<bool>, Option<String>) = sqlx::query_as(
        "SELECT status, channel, provider_message_id, signature_valid, raw_reply FROM consents",
    )
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert_eq!(
        consent,
        (
            "granted".to_string(),
            "sms".to_string(),
            Some("SM9f0e0d0c0b0a09080706050403020100".to_string()),
            Some(true),
            Some("2".to_string())
        )
    );

    // Twilio retries: same answer, one effect.
    let (status, body, _) = world.sms(Some(&signature), &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, EMPTY_TWIML);
    assert_eq!(world.count("consents").await, 1);
    assert_eq!(world.count("inbound_messages").await, 1);
}

#[tokio::test]
async fn sms_undelivered_after_acceptance_fails_the_request_with_the_reason() {
    let world = World::start().await;
    let form = form(&[
        ("MessageSid", PROMPT_ID),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
        ("To", ANN),
    ]);
    let signature = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let (status, body, _) = world.sms(Some(&signature), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(world.state().await, "failed");
    let reason = world
        .store
        .consent_request(&world.request_id)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        reason,
        slotgate::consent::RequestState::Failed {
            reason: "sms undelivered (Twilio error 30003)".into()
        }
    );
    // A status callback is not a reply: no ledger row, no consent.
    assert_eq!(world.count("inbound_messages").await, 0);
    assert_eq!(world.count("consents").await, 0);
}

#[tokio::test]
async fn sms_with_a_bad_signature_is_refused_and_leaves_nothing() {
    let world = World::start().await;
    let form = inbound_sms("SMbad", "1");
    // Signed over the address it was posted to rather than the configured
    // public URL.
    let wrong_url = twilio::signature(&format!("{}/webhooks/sms", world.base), &form, AUTH_TOKEN);
    let wrong_token = twilio::signature(SMS_HOOK, &form, "another-auth-token");
    for signature in [
        Some(wrong_url.as_str()),
        Some(wrong_token.as_str()),
        Some("bm90IGl0"),
        None,
    ] {
        let (status, body, _) = world.sms(signature, &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}: {body}");
    }
    // Signed, then the body changed.
    let good = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let mut changed = form.clone();
    changed.iter_mut().find(|(n, _)| n == "Body").unwrap().1 = "3".into();
    let (status, _, _) = world.sms(Some(&good), &changed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    world.assert_nothing_stored().await;
}

#[tokio::test]
async fn sms_stop_declines_and_lists_the_number() {
    let world = World::start().await;
    let ann = E164::from_e164(ANN).unwrap();
    assert!(world
        .store
        .do_not_call(Some(&world.enterprise_id), &ann)
        .await
        .unwrap()
        .is_none());
    let form = inbound_sms("SMstop", "STOP");
    let signature = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let (status, body, content_type) = world.sms(Some(&signature), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type.as_deref(), Some("text/xml"));
    assert_eq!(body, EMPTY_TWIML);
    assert_eq!(world.answer().await, Answer::Decline);
    assert!(world
        .store
        .do_not_call(Some(&world.enterprise_id), &ann)
        .await
        .unwrap()
        .is_some());
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM inbound_messages")
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(outcome, "revoked");
}

// ---------------------------------------------------------------------------
// A slow provider.
// ---------------------------------------------------------------------------

/// A provider that accepts connections and never answers; returns its base
/// URL and how many connections it has taken.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn a_slow_provider_does_not_hold_up_the_webhook() {
    // Each provider call may take 5 s; Pub/Sub and Twilio give a webhook
    // about 10 and 15 s. The answer is committed before the 200, the
    // message back to the person is the provider's business afterwards.
    let (provider, accepted) = black_hole().await;
    let world = World::start_with(&provider, Duration::from_secs(5)).await;

    let data = chip_reply("Mx-slow", "now");
    let signature = rbm::signature(CLIENT_TOKEN, data.as_bytes());
    let started = std::time::Instant::now();
    let (status, _) = world.rbm(Some(&signature), envelope(&data)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the RBM webhook took {:?}",
        started.elapsed()
    );
    assert_eq!(world.answer().await, Answer::Now);

    let form = inbound_sms("SMslow", "STOP");
    let signature = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let started = std::time::Instant::now();
    let (status, body, _) = world.sms(Some(&signature), &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, EMPTY_TWIML);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the SMS webhook took {:?}",
        started.elapsed()
    );
    assert_eq!(world.count("inbound_messages").await, 2);

    // The confirmation and the revocation notice were still attempted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answers back were not attempted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Without the exchange.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn without_the_exchange_the_webhooks_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let base = serve(slotgate::api::router(store, &api_config())).await;
    let client = Client::new();

    let data = chip_reply("Mx1", "now");
    let signature = rbm::signature(CLIENT_TOKEN, data.as_bytes());
    let (status, _, _) = post_to(
        &client,
        &format!("{base}/webhooks/rbm"),
        &[(rbm::SIGNATURE_HEADER, signature.as_str())],
        envelope(&data),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = post_to(
        &client,
        &format!("{base}/webhooks/rbm"),
        &[],
        json!({"clientToken": CLIENT_TOKEN, "secret": "s"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let form = inbound_sms("SM1", "1");
    let signature = twilio::signature(SMS_HOOK, &form, AUTH_TOKEN);
    let (status, _, _) = post_to(
        &client,
        &format!("{base}/webhooks/sms"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (twilio::SIGNATURE_HEADER, signature.as_str()),
        ],
        serde_urlencoded::to_string(&form).unwrap().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
