//! `/v1/campaigns` over real HTTP on loopback, as an enterprise's CRM or
//! ACD would use it: the router runs in process on 127.0.0.1:0 over a
//! store on each engine (PostgreSQL is required), and a plain HTTP client
//! creates, reads, replaces and deletes campaigns, reports agents, sets
//! strategies and reads the statistics.

use chrono::{TimeDelta, Utc};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use slotgate::config::ApiConfig;
use slotgate::consent::{ConsentPolicy, NewEnterprise, TrustStatus};
use slotgate::pacing::CallOutcome;
use slotgate::store::Store;
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    a_campaign_is_created_read_listed_replaced_and_deleted,
    configurations_that_cannot_work_are_422_naming_the_field,
    keys_and_enterprises_are_checked,
    agents_and_strategy_are_replaced,
    stats_report_the_stored_figures,
);

struct Api {
    base: String,
    store: Store,
    client: Client,
}

impl Api {
    async fn start(db: &TestDb) -> Api {
        let store = db.store().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = ApiConfig {
            listen: None,
            max_body_bytes: 65_536,
            admin_token: None,
            allow_private_webhook_urls: false,
        };
        let router = slotgate::api::router(store.clone(), &config);
        tokio::spawn(slotgate::api::serve(
            listener,
            router,
            std::future::pending(),
        ));
        Api {
            base,
            store,
            client: Client::new(),
        }
    }

    /// A trusted enterprise and one of its API keys: (id, key).
    async fn tenant(&self, name: &str) -> (String, String) {
        let now = Utc::now();
        let enterprise = self
            .store
            .create_enterprise(
                &NewEnterprise {
                    name: name.into(),
                    display_name: name.into(),
                    services: vec!["Electricity".into()],
                    default_region: "FR".into(),
                    crm_webhook_url: None,
                    crm_webhook_secret: None,
                    consent_policy: ConsentPolicy::Days(30),
                    status: TrustStatus::Trusted,
                },
                now,
            )
            .await
            .unwrap();
        let key = self
            .store
            .create_api_key(&enterprise.id, now)
            .await
            .unwrap();
        (enterprise.id, key.key)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, headers)
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self
            .send(reqwest::Method::POST, key, path, Some(body))
            .await;
        (s, b)
    }

    async fn put(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self.send(reqwest::Method::PUT, key, path, Some(body)).await;
        (s, b)
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let (s, b, _) = self.send(reqwest::Method::GET, key, path, None).await;
        (s, b)
    }

    async fn delete(&self, key: &str, path: &str) -> StatusCode {
        self.send(reqwest::Method::DELETE, key, path, None).await.0
    }
}

fn winter_offer() -> Value {
    json!({
        "id": "winter-offer",
        "settings": {"mode": "predictive", "agents_target": 12,
                     "abandon": {"window": "uk_24_hours"}},
        "agent_target": "sip:queue-7@pbx.example.com",
        "abandon_message": "sorry.wav",
        "machine_policy": {"action": "leave-message", "message": "winter.wav"}
    })
}

fn error_field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

async fn a_campaign_is_created_read_listed_replaced_and_deleted(db: TestDb) {
    let api = Api::start(&db).await;
    let (_, key) = api.tenant("ACME").await;

    let (status, created, headers) = api
        .send(
            reqwest::Method::POST,
            &key,
            "/v1/campaigns",
            Some(winter_offer()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers["location"], "/v1/campaigns/winter-offer");
    assert_eq!(created["id"], "winter-offer");
    assert_eq!(created["state"], "active");
    assert_eq!(created["version"], 1);
    assert_eq!(created["settings"]["agents_target"], 12);
    assert_eq!(created["settings"]["limits"]["trunk_channels"], 30);
    assert_eq!(created["machine_policy"]["action"], "leave-message");
    assert_eq!(created["strategy_is_default"], true);
    assert_eq!(created["strategy"]["passes"][0]["max_attempts"], 3);
    assert_eq!(created["agents"]["available"], 0);

    let (status, read) = api.get(&key, "/v1/campaigns/winter-offer").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
    let (status, list) = api.get(&key, "/v1/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["campaigns"], json!([created]));

    let replacement = json!({
        "settings": {"mode": "progressive", "agents_target": 4},
        "state": "paused",
        "version": 1
    });
    let (status, replaced) = api
        .put(&key, "/v1/campaigns/winter-offer", replacement.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["state"], "paused");
    assert_eq!(replaced["agent_target"], Value::Null, "a full replace");
    assert_eq!(replaced["machine_policy"]["action"], "hang-up");
    let (status, stale) = api
        .put(&key, "/v1/campaigns/winter-offer", replacement)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");

    assert_eq!(
        api.delete(&key, "/v1/campaigns/winter-offer").await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = api.get(&key, "/v1/campaigns/winter-offer").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        api.delete(&key, "/v1/campaigns/winter-offer").await,
        StatusCode::NOT_FOUND
    );

    let (status, doc) = api.get("", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/campaigns",
        "/v1/campaigns/{id}",
        "/v1/campaigns/{id}/agents",
        "/v1/campaigns/{id}/strategy",
        "/v1/campaigns/{id}/stats",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["paths"]["/v1/campaigns/{id}"]["delete"].is_object());
}

async fn configurations_that_cannot_work_are_422_naming_the_field(db: TestDb) {
    let api = Api::start(&db).await;
    let (_, key) = api.tenant("ACME").await;
    let with = |edit: fn(&mut Value)| {
        let mut body = winter_offer();
        edit(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(|b| b["settings"]["limits"] = json!({"trunk_channels": 0})),
            "settings.limits.trunk_channels",
        ),
        (
            with(|b| b["settings"]["agents_target"] = json!(0)),
            "settings.agents_target",
        ),
        (
            with(|b| b["settings"]["calling_hours"] = json!({"default": "21:00-08:00"})),
            "settings.calling_hours.default",
        ),
        (with(|b| b["id"] = json!("not/a/name")), "id"),
        (
            with(|b| b["agent_target"] = json!("queue-7@pbx")),
            "agent_target",
        ),
        (
            with(|b| b["machine_policy"] = json!({"action": "hang-up", "message": "x.wav"})),
            "machine_policy.message",
        ),
        (
            with(|b| b["strategy"] = json!({"passes": [{"channel": "voice", "max_attempts": 0}]})),
            "strategy.passes[0].max_attempts",
        ),
        (with(|b| b["colour"] = json!("blue")), "colour"),
        (with(|b| b["settings"]["speed"] = json!(3)), "speed"),
    ];
    for (body, field) in cases {
        let (status, answer) = api.post(&key, "/v1/campaigns", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_field");
        assert_eq!(error_field(&answer), field, "{answer}");
    }
    let (_, list) = api.get(&key, "/v1/campaigns").await;
    assert_eq!(list["campaigns"], json!([]), "nothing stored");

    let (status, _) = api.post(&key, "/v1/campaigns", winter_offer()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, taken) = api.post(&key, "/v1/campaigns", winter_offer()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    let (status, answer) = api
        .put(
            &key,
            "/v1/campaigns/winter-offer",
            json!({"settings": {"ring_timeout_secs": 5, "agents_target": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&answer), "settings.ring_timeout_secs");
}

async fn keys_and_enterprises_are_checked(db: TestDb) {
    let api = Api::start(&db).await;
    let (_, acme) = api.tenant("ACME").await;
    let (_, other) = api.tenant("Other").await;
    let (status, _) = api.post(&acme, "/v1/campaigns", winter_offer()).await;
    assert_eq!(status, StatusCode::CREATED);

    for bad in ["", "sg_nope_nope"] {
        let (status, body) = api.get(bad, "/v1/campaigns").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _) = api.post(bad, "/v1/campaigns", winter_offer()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let path = "/v1/campaigns/winter-offer";
    assert_eq!(api.get(&other, path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get(&other, &format!("{path}/stats")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.put(&other, path, json!({"settings": {"agents_target": 3}}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.put(&other, &format!("{path}/agents"), json!({"available": 3}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.put(
            &other,
            &format!("{path}/strategy"),
            json!({"passes": [{"channel": "voice"}]})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.delete(&other, path).await, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get(&other, "/v1/campaigns").await.1["campaigns"],
        json!([])
    );
    assert_eq!(api.get(&acme, path).await.0, StatusCode::OK, "still there");
}

async fn agents_and_strategy_are_replaced(db: TestDb) {
    let api = Api::start(&db).await;
    let (_, key) = api.tenant("ACME").await;
    api.post(&key, "/v1/campaigns", winter_offer()).await;
    let agents = "/v1/campaigns/winter-offer/agents";

    let (status, body) = api.put(&key, agents, json!({"available": 7})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agents"]["available"], 7);
    assert!(body["agents"]["updated_at"].is_string());
    assert_eq!(body["version"], 1, "agent reports are not configuration");

    let listed = json!({"agents": [
        {"id": "ann", "target": "sip:ann@pbx.example.com", "state": "available"},
        {"id": "bob", "target": "sip:bob@pbx.example.com", "state": "wrap-up"},
        {"id": "cat", "target": "sips:cat@pbx.example.com", "state": "available"}
    ]});
    let (status, body) = api.put(&key, agents, listed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agents"]["available"], 2, "counted from the list");
    assert_eq!(body["agents"]["agents"][1]["state"], "wrap-up");

    for (bad, field) in [
        (json!({"available": -1}), "available"),
        (json!({}), "available"),
        (
            json!({"agents": [{"id": "ann", "target": "sip:ann@pbx", "state": "asleep"}]}),
            "agents[0].state",
        ),
        (
            json!({"available": 1, "agents": [{"id": "ann", "target": "ann", "state": "busy"}]}),
            "agents[0].target",
        ),
    ] {
        let (status, body) = api.put(&key, agents, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error_field(&body).starts_with(field), "{field}: {body}");
    }

    let strategy = "/v1/campaigns/winter-offer/strategy";
    let two_passes = json!({"passes": [
        {"channel": "voice", "max_attempts": 2, "retry_delay_secs": 300},
        {"channel": "prompt", "enter_on": ["no-answer", "machine"], "delay_secs": 3600}
    ]});
    let (status, body) = api.put(&key, strategy, two_passes).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["strategy_is_default"], false);
    assert_eq!(body["strategy"]["passes"][1]["channel"], "prompt");
    assert_eq!(body["strategy"]["passes"][1]["enter_on"][1], "machine");

    for (bad, field) in [
        (json!({"passes": []}), "passes"),
        (
            json!({"passes": [{"channel": "voice", "enter_on": ["busy"]}]}),
            "passes[0].enter_on",
        ),
        (
            json!({"passes": [{"channel": "voice"}, {"channel": "voice", "enter_on": ["prompted"]}]}),
            "passes[1].enter_on",
        ),
        (
            json!({"passes": [{"channel": "voice", "retry_delay_secs": -1}]}),
            "passes[0].retry_delay_secs",
        ),
    ] {
        let (status, body) = api.put(&key, strategy, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let (_, body) = api.get(&key, "/v1/campaigns/winter-offer").await;
    assert_eq!(body["version"], 2, "refused strategies change nothing");
}

async fn stats_report_the_stored_figures(db: TestDb) {
    let api = Api::start(&db).await;
    let (e, key) = api.tenant("ACME").await;
    api.post(&key, "/v1/campaigns", winter_offer()).await;
    api.put(
        &key,
        "/v1/campaigns/winter-offer/agents",
        json!({"available": 5}),
    )
    .await;
    let now = Utc::now();
    for (outcome, ago) in [
        (CallOutcome::Answered, TimeDelta::days(2)), // outside the UK window
        (CallOutcome::Answered, TimeDelta::minutes(30)),
        (CallOutcome::Answered, TimeDelta::minutes(20)),
        (CallOutcome::Answered, TimeDelta::minutes(10)),
        (CallOutcome::Abandoned, TimeDelta::minutes(5)),
        (CallOutcome::NoAnswer, TimeDelta::minutes(5)),
        (CallOutcome::Busy, TimeDelta::minutes(5)),
        (CallOutcome::Machine, TimeDelta::minutes(5)),
        (CallOutcome::Failed, TimeDelta::minutes(5)),
    ] {
        api.store
            .record_call_outcome(&e, "winter-offer", None, outcome, now - ago)
            .await
            .unwrap();
    }
    let (status, stats) = api.get(&key, "/v1/campaigns/winter-offer/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["campaign"], "winter-offer");
    assert_eq!(stats["abandon_window"], "uk_24_hours");
    assert_eq!(stats["answered"], 3);
    assert_eq!(stats["abandoned"], 1);
    assert_eq!(stats["abandon_percent"], 25.0);
    assert_eq!(stats["answer_percent"], 37.5);
    assert_eq!(stats["agents"], 5);
    for zero in [
        "due_slots",
        "pending_slots",
        "dial_rate_per_min",
        "in_flight",
        "unknown",
    ] {
        assert_eq!(stats[zero], 0, "{zero}");
    }
}
