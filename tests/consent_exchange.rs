//! The consent exchange end to end on loopback, through the simulator: a
//! CRM asks over the API, the dispatcher sends the prompt, the simulated
//! handset answers (by itself or through the API), the answer lands as a
//! consent, and the CRM hears every step on its signed webhook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{TimeDelta, Utc};
use reqwest::Client;
use serde_json::{json, Value};
use slotgate::api::Exchange;
use slotgate::config::{ApiConfig, ChannelsConfig, CrmConfig, PromptConfig};
use slotgate::consent::{
    ConsentPolicy, Identifier, NewEnterprise, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::crm::signature::{verify, SIGNATURE_HEADER};
use slotgate::crm::spawn_deliverer;
use slotgate::rcs::channels::Channels;
use slotgate::rcs::inbound::Inbound;
use slotgate::rcs::service::spawn_exchange;
use slotgate::rcs::simulator::{AutoReply, SimulatedAnswer};
use slotgate::store::Store;

const SECRET: &str = "whsec_exchange_0123456789";
/// A New York number: the prompt's slots are in its zone.
const ANN: &str = "+12125550142";
/// Every wait in this file gives up after this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// The CRM's webhook endpoint: verifies each signature, keeps event types.
#[derive(Default)]
struct Crm {
    events: Mutex<Vec<Value>>,
    bad_signatures: Mutex<usize>,
}

async fn hook(State(crm): State<Arc<Crm>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if verify(
        SECRET.as_bytes(),
        signature,
        &body,
        Utc::now().timestamp(),
        300,
    )
    .is_err()
    {
        *crm.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    crm.events
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::OK
}

struct World {
    base: String,
    key: String,
    client: Client,
    store: Store,
    crm: Arc<Crm>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start(auto: AutoReply) -> World {
        World::start_with(ChannelsConfig {
            simulator: auto,
            ..ChannelsConfig::default()
        })
        .await
    }

    async fn start_with(channels: ChannelsConfig) -> World {
        World::start_full(channels, PromptConfig::default()).await
    }

    async fn start_full(channels: ChannelsConfig, prompts: PromptConfig) -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();

        let crm = Arc::new(Crm::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks", post(hook))
            .with_state(crm.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let enterprise = store
            .create_enterprise(
                &NewEnterprise {
                    name: "ACME Energy Inc.".into(),
                    display_name: "ACME Energy".into(),
                    services: vec!["Electricity".into()],
                    default_region: "US".into(),
                    crm_webhook_url: Some(hook_url),
                    crm_webhook_secret: Some(SECRET.into()),
                    consent_policy: ConsentPolicy::PerCall,
                    status: TrustStatus::Trusted,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        let key = store
            .create_api_key(&enterprise.id, Utc::now())
            .await
            .unwrap()
            .key;
        let ann = E164::parse(ANN, None).unwrap();
        let person = store
            .create_person(&[Identifier::Phone(ann)], Utc::now())
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

        let channels = Arc::new(Channels::from_config(&channels).unwrap());
        // Calling hours all day: the test must not depend on when it runs.
        let mut prompts = prompts;
        prompts.options.calling_hours = slotgate::consent::CallingHours::new(
            chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
        )
        .unwrap();
        prompts.options.now_margin = TimeDelta::zero();
        let inbound = Inbound::new(store.clone(), channels.clone(), prompts.clone());
        let exchange = Exchange {
            inbound: inbound.clone(),
            channels: channels.clone(),
        };
        // Runs for the test's lifetime; the runtime's end stops it.
        std::mem::forget(spawn_exchange(store.clone(), channels, inbound, prompts));
        std::mem::forget(
            spawn_deliverer(
                store.clone(),
                CrmConfig {
                    backoff_initial: Duration::from_millis(5),
                    backoff_max: Duration::from_millis(20),
                    poll_interval: Duration::from_millis(50),
                    allow_private_webhook_urls: true,
                    ..CrmConfig::default()
                },
            )
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = ApiConfig {
            listen: None,
            max_body_bytes: 65_536,
            admin_token: None,
            allow_private_webhook_urls: true,
        };
        let router = slotgate::api::router_with(store.clone(), &config, Some(exchange));
        tokio::spawn(slotgate::api::serve(
            listener,
            router,
            std::future::pending(),
        ));
        World {
            base,
            key,
            client: Client::new(),
            store,
            crm,
            _dir: dir,
        }
    }

    async fn ask(&self) -> (StatusCode, Value) {
        self.ask_in("en").await
    }

    async fn ask_in(&self, locale: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/consent-requests", self.base))
            .bearer_auth(&self.key)
            .json(&json!({
                "number": ANN,
                "purpose": "your boiler service",
                "locale": locale,
                "personalisation": {"name": "Ann"},
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Asks through the API and waits until the simulated handset has the
    /// prompt; returns the request's id.
    async fn ask_and_await_prompt(&self) -> String {
        let (status, body) = self.ask().await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.until("the prompt is sent", || async {
            !self.inbox().await.is_empty()
        })
        .await;
        body["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn reply(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/simulator/reply", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls until `check` holds, or fails the test after PATIENCE.
    async fn until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn event_types(&self) -> Vec<String> {
        self.crm
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("").to_string())
            .collect()
    }

    async fn inbox(&self) -> Vec<Value> {
        self.get(&format!("/v1/simulator/inbox?number=%2B{}", &ANN[1..]))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn an_auto_reply_now_becomes_a_consent_and_the_crm_hears_each_step() {
    let world = World::start(AutoReply::Fixed {
        answer: SimulatedAnswer::Now,
        after: TimeDelta::milliseconds(100),
    })
    .await;
    let (status, body) = world.ask().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();

    world
        .until("the request is answered", || async {
            world.get(&format!("/v1/consent-requests/{id}")).await["state"] == "answered"
        })
        .await;
    let request = world.get(&format!("/v1/consent-requests/{id}")).await;
    assert_eq!(request["answer"]["kind"], "now", "{request}");

    // The handset got the prompt with its chips, then the confirmation.
    let inbox = world.inbox().await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let prompt = &inbox[1];
    assert!(
        prompt["text"].as_str().unwrap().contains("ACME Energy"),
        "{prompt}"
    );
    assert!(prompt["text"].as_str().unwrap().contains("Ann"), "{prompt}");
    let labels: Vec<&str> = prompt["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.first(), Some(&"Call me now"), "{labels:?}");
    assert_eq!(labels.last(), Some(&"Don't call"), "{labels:?}");
    assert_eq!(inbox[0]["text"], "We'll call you now.");

    let consents = world
        .get(&format!("/v1/consents?number=%2B{}", &ANN[1..]))
        .await;
    let consent = &consents["consents"][0];
    assert_eq!(consent["status"], "granted", "{consents}");
    assert_eq!(consent["channel"], "simulator", "{consents}");

    world
        .until("the CRM heard the consent", || async {
            world.event_types().contains(&"consent.granted".to_string())
        })
        .await;
    let types = world.event_types();
    let position = |t: &str| types.iter().position(|x| x == t);
    for (before, after) in [
        ("consent_request.created", "consent_request.sent"),
        ("consent_request.sent", "consent_request.answered"),
    ] {
        assert!(
            position(before).unwrap() < position(after).unwrap(),
            "{types:?}"
        );
    }
    assert_eq!(*world.crm.bad_signatures.lock().unwrap(), 0);
}

#[tokio::test]
async fn stop_revokes_puts_the_number_on_the_list_and_is_confirmed_once() {
    let world = World::start(AutoReply::Off).await;
    let id = world.ask_and_await_prompt().await;

    // The person first says something unreadable: one clarifying question.
    let (status, body) = world
        .reply(json!({"number": ANN, "text": "hmm who is this"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "unclear");
    let (_, body) = world.reply(json!({"number": ANN, "text": "???"})).await;
    assert_eq!(body["outcome"], "unclear");
    let inbox = world.inbox().await;
    let clarifications = inbox
        .iter()
        .filter(|m| m["text"].as_str().unwrap().starts_with("Sorry"))
        .count();
    assert_eq!(clarifications, 1, "{inbox:?}");

    let (status, body) = world.reply(json!({"number": ANN, "text": "STOP!"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "answered");
    let request = world.get(&format!("/v1/consent-requests/{id}")).await;
    assert_eq!(request["state"], "answered");
    assert_eq!(request["answer"]["kind"], "decline", "{request}");
    // The answer is on record, with its evidence, as a declined consent.
    let consents = world
        .get(&format!("/v1/consents?number=%2B{}", &ANN[1..]))
        .await;
    let statuses: Vec<&str> = consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["declined"], "{consents}");
    let notice = &world.inbox().await[0];
    assert!(
        notice["text"].as_str().unwrap().contains("ACME Energy"),
        "{notice}"
    );
    // The number is now on the enterprise's list: asking again is refused.
    let (status, body) = world.ask().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "do_not_call_enterprise", "{body}");
    let ann = E164::parse(ANN, None).unwrap();
    let enterprise = world.store.enterprises().await.unwrap()[0].id.clone();
    assert!(world
        .store
        .do_not_call(Some(&enterprise), &ann)
        .await
        .unwrap()
        .is_some());

    // A number that never got a prompt cannot answer.
    let (status, _) = world
        .reply(json!({"number": "+12125550199", "text": "now"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_typed_time_is_the_persons_own_range() {
    let world = World::start(AutoReply::Off).await;
    let id = world.ask_and_await_prompt().await;
    let (status, body) = world
        .reply(json!({"number": ANN, "text": "tomorrow at 9:15am"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "answered");
    let request = world.get(&format!("/v1/consent-requests/{id}")).await;
    assert_eq!(request["answer"]["kind"], "range", "{request}");
    let start: chrono::DateTime<Utc> = request["answer"]["start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = start.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.format("%H:%M").to_string(), "09:15");
    assert_eq!(
        local.date_naive(),
        Utc::now()
            .with_timezone(&chrono_tz::America::New_York)
            .date_naive()
            .succ_opt()
            .unwrap()
    );
}

#[tokio::test]
async fn the_prompt_speaks_the_enterprises_words_in_the_persons_locale() {
    let world = World::start(AutoReply::Off).await;
    let enterprise = world.store.enterprises().await.unwrap()[0].id.clone();
    let mut templates = slotgate::consent::PromptTemplates::new();
    templates
        .insert(
            "fr",
            "Bonjour {name}, {enterprise} voudrait vous appeler : {purpose}.",
        )
        .unwrap();
    world
        .store
        .set_prompt_templates(&enterprise, &templates)
        .await
        .unwrap();
    let (status, body) = world.ask_in("fr-CA").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    world
        .until("the prompt is sent", || async {
            !world.inbox().await.is_empty()
        })
        .await;
    let prompt = &world.inbox().await[0];
    assert_eq!(
        prompt["text"],
        "Bonjour Ann, ACME Energy voudrait vous appeler : your boiler service."
    );
    // The chips and the answer back speak French too.
    let labels: Vec<&str> = prompt["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels.first(),
        Some(&"Appelez-moi maintenant"),
        "{labels:?}"
    );
    assert_eq!(labels.last(), Some(&"Ne pas appeler"), "{labels:?}");
    assert!(labels.iter().all(|l| l.chars().count() <= 25), "{labels:?}");
    let (status, body) = world.reply(json!({"number": ANN, "postback": "now"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        world.inbox().await[0]["text"],
        "Nous vous appelons maintenant."
    );
}

/// A Twilio stand-in that answers every send with `status` and counts them.
async fn failing_twilio(status: u16) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let sends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sends.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(json!({"code": 20500, "message": "Service unavailable"})),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, sends)
}

#[tokio::test]
async fn a_provider_that_stays_down_fails_the_request_with_the_reason() {
    use slotgate::rcs::delivery::{DeliveryPlan, Route};

    let (base_url, sends) = failing_twilio(503).await;
    let world = World::start_with(ChannelsConfig {
        plan: DeliveryPlan {
            primary: Route::Sms,
            fallback: None,
            max_attempts: 3,
        },
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        sms: Some(twilio_at(base_url)),
        ..ChannelsConfig::default()
    })
    .await;
    let (status, body) = world.ask().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    world
        .until("the request fails", || async {
            world.get(&format!("/v1/consent-requests/{id}")).await["state"] == "failed"
        })
        .await;
    let request = world.get(&format!("/v1/consent-requests/{id}")).await;
    let reason = request["failure_reason"].as_str().unwrap();
    assert!(reason.starts_with("sms failed 3 times"), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(sends.load(std::sync::atomic::Ordering::SeqCst), 3);
    world
        .until("the CRM heard the failure", || async {
            world
                .event_types()
                .contains(&"consent_request.failed".to_string())
        })
        .await;
}

/// RBM and Twilio stand-ins on one server: RBM knows no RCS handset (404),
/// Twilio takes the SMS. Records each provider call as (path, body).
async fn rcs_less_providers() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = calls.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: Bytes| {
        let log = log.clone();
        async move {
            let path = uri.path().to_string();
            log.lock()
                .unwrap()
                .push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
            if path == "/token" {
                (
                    StatusCode::OK,
                    axum::Json(json!({"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"})),
                )
            } else if path.contains("/agentMessages") {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})),
                )
            } else {
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"})),
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, calls)
}

#[tokio::test]
async fn a_handset_without_rcs_gets_the_prompt_by_sms_once() {
    use slotgate::config::RbmChannelConfig;
    use slotgate::rcs::delivery::{DeliveryPlan, Route};
    use slotgate::rcs::rbm::{MessageTrafficType, RbmSettings, ServiceAccount};
    use slotgate::rcs::secret::Secret;
    const TEST_KEY: &str = include_str!("fixtures/TEST-ONLY-rbm-service-account-key.pem");

    let (base, calls) = rcs_less_providers().await;
    let world = World::start_with(ChannelsConfig {
        plan: DeliveryPlan {
            primary: Route::Rcs,
            fallback: Some(Route::Sms),
            max_attempts: 3,
        },
        rbm: Some(RbmChannelConfig {
            settings: RbmSettings {
                base_url: base.clone(),
                agent_id: "slotgate_agent".into(),
                service_account: ServiceAccount {
                    client_email: "slotgate@rbm-test.iam.gserviceaccount.com".into(),
                    private_key_pem: Secret::new(TEST_KEY),
                    token_uri: format!("{base}/token"),
                },
                traffic_type: MessageTrafficType::Transaction,
                timeout: Duration::from_secs(2),
            },
            client_token: Secret::new("rbm-client-token-0123456789"),
        }),
        sms: Some(twilio_at(base.clone())),
        ..ChannelsConfig::default()
    })
    .await;
    let (status, body) = world.ask().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    world
        .until("the prompt is sent", || async {
            world.get(&format!("/v1/consent-requests/{id}")).await["state"] == "sent"
        })
        .await;
    let calls = calls.lock().unwrap().clone();
    let rbm: Vec<_> = calls
        .iter()
        .filter(|(path, _)| path.contains("/agentMessages"))
        .collect();
    let sms: Vec<_> = calls
        .iter()
        .filter(|(path, _)| path.ends_with("/Messages.json"))
        .collect();
    assert_eq!(rbm.len(), 1, "{calls:?}");
    assert_eq!(sms.len(), 1, "{calls:?}");
    // The SMS carries the numbered choices RCS would have shown as chips.
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&sms[0].1).unwrap();
    let text = &form.iter().find(|(k, _)| k == "Body").unwrap().1;
    assert!(text.contains("Hi Ann"), "{text}");
    assert!(text.contains("Reply 1 "), "{text}");
    assert!(text.contains("STOP"), "{text}");
    let to = &form.iter().find(|(k, _)| k == "To").unwrap().1;
    assert_eq!(to, ANN);
}

#[tokio::test]
async fn an_unanswered_request_expires_at_its_deadline() {
    let world = World::start(AutoReply::Off).await;
    let expires_at = Utc::now() + TimeDelta::milliseconds(1500);
    let response = world
        .client
        .post(format!("{}/v1/consent-requests", world.base))
        .bearer_auth(&world.key)
        .json(&json!({
            "number": ANN,
            "purpose": "your boiler service",
            "expires_at": expires_at,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    world
        .until("the request expires", || async {
            world.get(&format!("/v1/consent-requests/{id}")).await["state"] == "expired"
        })
        .await;
    assert!(Utc::now() >= expires_at);
    // A reply after the deadline changes nothing.
    let (status, body) = world.reply(json!({"number": ANN, "text": "now"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = world.get(&format!("/v1/consent-requests/{id}")).await;
    assert_eq!(request["state"], "expired");
    world
        .until("the CRM heard the expiry", || async {
            world
                .event_types()
                .contains(&"consent_request.expired".to_string())
        })
        .await;
}

/// SMS through a Twilio stand-in at `base_url`.
fn twilio_at(base_url: String) -> slotgate::config::SmsChannelConfig {
    use slotgate::rcs::secret::Secret;
    use slotgate::rcs::twilio::{Sender, TwilioSettings};
    slotgate::config::SmsChannelConfig {
        settings: TwilioSettings {
            base_url,
            account_sid: format!("AC{}", "0".repeat(32)),
            auth_token: Secret::new("twilio-test-token-0123456789"),
            from: Sender::Number(E164::parse("+12125550100", None).unwrap()),
            status_callback: None,
            timeout: Duration::from_secs(2),
        },
        webhook_url: "https://slotgate.example/webhooks/sms".into(),
    }
}

#[tokio::test]
async fn the_weekly_cap_counts_every_enterprises_prompts() {
    let mut prompts = PromptConfig::default();
    prompts.ranking.weekly_cap = 1;
    let world = World::start_full(ChannelsConfig::default(), prompts).await;
    let (status, body) = world.ask().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let first = body["id"].as_str().unwrap().to_string();
    world
        .until("the first prompt is handled", || async {
            world.get(&format!("/v1/consent-requests/{first}")).await["state"] != "created"
        })
        .await;
    // Sent, and by now perhaps already delivered (the simulated handset
    // acknowledges at once).
    let request = world.get(&format!("/v1/consent-requests/{first}")).await;
    assert!(
        request["state"] == "sent" || request["state"] == "delivered",
        "{request}"
    );

    // Another enterprise asks the same person the same week.
    let other = world
        .store
        .create_enterprise(
            &NewEnterprise {
                name: "Beta Telecom".into(),
                display_name: "Beta".into(),
                services: vec![],
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
    let ann = E164::parse(ANN, None).unwrap();
    let person = world
        .store
        .person_by_identifier(&Identifier::Phone(ann.clone()))
        .await
        .unwrap()
        .unwrap();
    world
        .store
        .set_subscription(
            &person.id,
            &other.id,
            SubscriptionStatus::Active,
            Utc::now(),
        )
        .await
        .unwrap();
    let second = world
        .store
        .create_consent_request(
            slotgate::consent::NewConsentRequest {
                enterprise_id: other.id.clone(),
                person_id: person.id.clone(),
                number: ann,
                scope: slotgate::consent::Scope::Purpose("fibre".into()),
                options: vec![],
                hold_id: None,
                expires_at: Utc::now() + TimeDelta::hours(1),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    world
        .until("the second request is refused", || async {
            matches!(
                world
                    .store
                    .consent_request(&second.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .state,
                slotgate::consent::RequestState::Failed { .. }
            )
        })
        .await;
    assert_eq!(
        world
            .store
            .consent_request(&second.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        slotgate::consent::RequestState::Failed {
            reason: "weekly_cap_reached".into()
        }
    );
    assert_eq!(
        world.inbox().await.len(),
        1,
        "only the first prompt went out"
    );
}
