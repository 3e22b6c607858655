//! The enterprise API over real HTTP on loopback: the router runs in
//! process on 127.0.0.1:0 over a SQLite store in a temporary directory, and
//! a plain HTTP client talks to it as a CRM would.

use chrono::{TimeDelta, Utc};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use slotgate::config::ApiConfig;
use slotgate::consent::{
    Channel, ConsentPolicy, ConsentStatus, Evidence, Identifier, NewConsent, NewEnterprise, Scope,
    SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::Store;

const ANN: &str = "+33612345678";
/// ANN as a French CRM writes it.
const ANN_NATIONAL: &str = "06 12 34 56 78";
const LIMIT: usize = 65_536;
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";

struct Api {
    base: String,
    store: Store,
    client: Client,
    _dir: tempfile::TempDir,
}

/// One enterprise with a key and one subscribed person.
struct Tenant {
    id: String,
    key: String,
    key_id: String,
    person_id: String,
}

impl Api {
    async fn start() -> Api {
        Api::start_with(Some(ADMIN_TOKEN)).await
    }

    async fn start_with(admin_token: Option<&str>) -> Api {
        Api::start_with_sip(admin_token, slotgate::api::SipSide::default()).await
    }

    /// With what the SIP side would share (the caller ID pool, say).
    async fn start_with_sip(admin_token: Option<&str>, sip: slotgate::api::SipSide) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = ApiConfig {
            listen: None,
            max_body_bytes: LIMIT,
            admin_token: admin_token.map(str::to_string),
            allow_private_webhook_urls: false,
        };
        let router = slotgate::api::router_with_sip(store.clone(), &config, None, sip);
        tokio::spawn(slotgate::api::serve(
            listener,
            router,
            std::future::pending(),
        ));
        Api {
            base,
            store,
            client: Client::new(),
            _dir: dir,
        }
    }

    /// A trusted enterprise in France, its key, and `number`'s owner
    /// subscribed to it (created if needed).
    async fn tenant(&self, name: &str, number: &str) -> Tenant {
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
        let phone = Identifier::Phone(E164::parse(number, None).unwrap());
        let person = match self.store.person_by_identifier(&phone).await.unwrap() {
            Some(p) => p,
            None => self.store.create_person(&[phone], now).await.unwrap(),
        };
        self.store
            .set_subscription(&person.id, &enterprise.id, SubscriptionStatus::Active, now)
            .await
            .unwrap();
        Tenant {
            id: enterprise.id,
            key: key.key.clone(),
            key_id: key.id.clone(),
            person_id: person.id,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// Runs `sql` on a connection of its own, outside the store.
    async fn execute(&self, sql: &str) {
        let url = format!(
            "sqlite://{}",
            self._dir.path().join("slotgate.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }

    async fn count(&self, table: &str) -> i64 {
        let url = format!(
            "sqlite://{}",
            self._dir.path().join("slotgate.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn ask(number: &str) -> Value {
    json!({"number": number, "purpose": "contract renewal"})
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn error_field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

#[tokio::test]
async fn keys_missing_wrong_or_revoked_are_401() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;

    let response = api
        .client
        .get(api.url("/v1/consents?number=%2B33612345678"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    let (_, body) = read(response).await;
    assert_eq!(error_code(&body), "unauthorized");

    let wrong = format!("sg_{}_{}", acme.key_id, "0".repeat(40));
    for key in [wrong.as_str(), "not-a-key", "sg_nope_nope"] {
        let (status, _) = api.get(key, "/v1/consents?number=%2B33612345678").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
    }

    let (status, _) = api
        .get(&acme.key, "/v1/consents?number=%2B33612345678")
        .await;
    assert_eq!(status, StatusCode::OK);
    api.store
        .revoke_api_key(&acme.key_id, Utc::now())
        .await
        .unwrap();
    let (status, body) = api
        .get(&acme.key, "/v1/consents?number=%2B33612345678")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");
}

/// Keys that verified are not hashed again for a while; that must never
/// let a wrong or revoked key through.
#[tokio::test]
async fn a_verified_key_is_remembered_but_revocation_is_immediate() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let path = "/v1/consents?number=%2B33612345678";
    for _ in 0..2 {
        let (status, _) = api.get(&acme.key, path).await;
        assert_eq!(status, StatusCode::OK);
    }

    // A wrong secret for the remembered key id is refused, every time, and
    // does not displace the right one.
    let wrong = format!("sg_{}_{}", acme.key_id, "0".repeat(48));
    for _ in 0..2 {
        let (status, _) = api.get(&wrong, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = api.get(&acme.key, path).await;
    assert_eq!(status, StatusCode::OK);

    // Revoked behind this node's back (as another node would), the
    // remembered key is refused on the very next request.
    api.execute(&format!(
        "UPDATE api_keys SET revoked_at = '2024-01-01T00:00:00.000000Z' WHERE id = '{}'",
        acme.key_id
    ))
    .await;
    let (status, body) = api.get(&acme.key, path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");

    // And through the admin API, on this node.
    let beta = api.tenant("Beta", "+33698765432").await;
    let (status, _) = api.get(&beta.key, "/v1/consents?number=0698765432").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .post(
            ADMIN_TOKEN,
            &format!("/admin/v1/api-keys/{}/revoke", beta.key_id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&beta.key, "/v1/consents?number=0698765432").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_request_is_created_read_back_and_stays_created() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let start = Utc::now() + TimeDelta::hours(2);
    let (status, body) = api
        .post(
            &acme.key,
            "/v1/consent-requests",
            json!({
                "number": ANN_NATIONAL,
                "campaign": "winter-offer",
                "preferred_options": [{"start": start, "end": start + TimeDelta::minutes(30)}],
                "locale": "fr-FR",
                "personalisation": {"first_name": "Ann"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["state"], "created");
    assert_eq!(body["number"], ANN);
    assert_eq!(body["person_id"], acme.person_id.as_str());

    let (status, body) = api
        .get(&acme.key, &format!("/v1/consent-requests/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "created");
    assert_eq!(body["scope"]["campaign"], "winter-offer");
    assert_eq!(body["locale"], "fr-FR");
    assert_eq!(body["personalisation"]["first_name"], "Ann");
    assert_eq!(body["options"].as_array().unwrap().len(), 1);

    // By person id: the prompt goes to the person's number.
    let (status, body) = api
        .post(
            &acme.key,
            "/v1/consent-requests",
            json!({"person_id": acme.person_id, "purpose": "renewal"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["number"], ANN);

    let (status, body) = api
        .get(&acme.key, &format!("/v1/people/{}", acme.person_id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["numbers"][0], ANN);
    assert_eq!(body["subscription"]["status"], "active");
}

#[tokio::test]
async fn another_enterprises_data_is_404() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let other = api.tenant("Other", "+33698765432").await;

    let (status, body) = api
        .post(&other.key, "/v1/consent-requests", ask("+33698765432"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let theirs = body["id"].as_str().unwrap().to_string();
    let consent = api
        .store
        .record_consent(
            &granted(&other.id, &other.person_id, "+33698765432"),
            Utc::now(),
        )
        .await
        .unwrap();

    let (status, body) = api
        .get(&acme.key, &format!("/v1/consent-requests/{theirs}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, _) = api
        .get(&acme.key, &format!("/v1/people/{}", other.person_id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            &acme.key,
            &format!("/v1/consents/{}/revoke", consent.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            &acme.key,
            "/v1/consent-requests",
            json!({"person_id": other.person_id, "purpose": "renewal"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Untouched, and listing by number shows only one's own consents.
    let stored = api.store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ConsentStatus::Granted);
    let (status, body) = api
        .get(&acme.key, "/v1/consents?number=%2B33698765432")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["consents"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;

    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask("12")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "number");

    let (status, body) = api.get(&acme.key, "/v1/consents?number=hello").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&body), "number");
    let (status, body) = api.get(&acme.key, "/v1/consents").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&body), "number");

    let (status, body) = api
        .post(&acme.key, "/v1/consent-requests", json!({"number": ANN}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&body), "purpose");

    let mut unknown = ask(ANN);
    unknown["colour"] = json!("blue");
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "colour");

    let (status, body) = api
        .post(
            &acme.key,
            "/v1/consent-requests",
            json!({"number": ANN, "purpose": "x", "locale": "!!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&body), "locale");

    let response = api
        .client
        .post(api.url("/v1/consent-requests"))
        .bearer_auth(&acme.key)
        .header("content-type", "application/json")
        .body("{\"number\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "bad_request");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());

    let mut big = ask(ANN);
    big["personalisation"] = json!({"blob": "x".repeat(LIMIT + 1)});
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "body_too_large");

    assert_eq!(api.count("consent_requests").await, 0);
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_request() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let other = api.tenant("Other", ANN).await;
    let mut ids = Vec::new();
    for key in [&acme.key, &acme.key, &other.key] {
        let response = api
            .client
            .post(api.url("/v1/consent-requests"))
            .bearer_auth(key)
            .header("Idempotency-Key", "crm-job-42")
            .json(&ask(ANN))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    // Keys belong to one enterprise: another's same key is another request.
    assert_ne!(ids[0], ids[2]);
    assert_eq!(api.count("consent_requests").await, 2);

    // The same key with another body is refused, not answered with the
    // first request.
    let response = api
        .client
        .post(api.url("/v1/consent-requests"))
        .bearer_auth(&acme.key)
        .header("Idempotency-Key", "crm-job-42")
        .json(&json!({"number": ANN, "purpose": "something else"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "Idempotency-Key");
    assert_eq!(api.count("consent_requests").await, 2);
}

/// A CRM that retries without waiting for its first attempt sends the
/// same key while the first is still being written: one request is made
/// and every attempt is answered with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_sent_at_once_gives_one_request() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = api
            .client
            .post(api.url("/v1/consent-requests"))
            .bearer_auth(&acme.key)
            .header("Idempotency-Key", "crm-job-7")
            .json(&ask(ANN));
        attempts.spawn(async move {
            let response = request.send().await.unwrap();
            let replayed = response.headers().contains_key("idempotent-replayed");
            let (status, body) = read(response).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            (body["id"].as_str().unwrap().to_string(), replayed)
        });
    }
    let answers = attempts.join_all().await;
    assert!(answers.iter().all(|(id, _)| *id == answers[0].0));
    assert_eq!(answers.iter().filter(|(_, replayed)| !replayed).count(), 1);
    assert_eq!(api.count("consent_requests").await, 1);
    assert_eq!(api.count("api_consent_requests").await, 1);
}

#[tokio::test]
async fn refusals_carry_their_code_and_store_nothing() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let now = Utc::now();

    api.store
        .set_subscription(&acme.person_id, &acme.id, SubscriptionStatus::Paused, now)
        .await
        .unwrap();
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "subscription_paused");

    let (status, body) = api
        .post(&acme.key, "/v1/consent-requests", ask("+33698765432"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "not_subscribed");

    api.store
        .set_subscription(&acme.person_id, &acme.id, SubscriptionStatus::Active, now)
        .await
        .unwrap();
    api.store
        .add_do_not_call(
            Some(&acme.id),
            &E164::parse(ANN, None).unwrap(),
            "test",
            now,
        )
        .await
        .unwrap();
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "do_not_call_enterprise");

    api.store
        .set_enterprise_status(&acme.id, TrustStatus::Suspended, now)
        .await
        .unwrap();
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "enterprise_suspended");

    assert_eq!(api.count("consent_requests").await, 0);
    assert_eq!(api.count("api_consent_requests").await, 0);
}

fn granted(enterprise_id: &str, person_id: &str, number: &str) -> NewConsent {
    NewConsent {
        person_id: person_id.into(),
        enterprise_id: enterprise_id.into(),
        number: E164::parse(number, None).unwrap(),
        scope: Scope::Purpose("contract renewal".into()),
        status: ConsentStatus::Granted,
        window: None,
        expires_at: None,
        channel: Channel::Rcs,
        evidence: Evidence::default(),
    }
}

#[tokio::test]
async fn revoking_a_consent_puts_the_number_on_do_not_call() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let consent = api
        .store
        .record_consent(&granted(&acme.id, &acme.person_id, ANN), Utc::now())
        .await
        .unwrap();

    let (status, body) = api
        .get(&acme.key, "/v1/consents?number=06%2012%2034%2056%2078")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], ANN);
    assert_eq!(body["consents"][0]["status"], "granted");
    assert_eq!(body["consents"][0]["covers_now"], true);

    let (status, body) = api
        .post(
            &acme.key,
            &format!("/v1/consents/{}/revoke", consent.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["covers_now"], false);

    let stored = api.store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ConsentStatus::Revoked);
    let dnc = api
        .store
        .do_not_call(Some(&acme.id), &E164::parse(ANN, None).unwrap())
        .await
        .unwrap();
    assert!(dnc.is_some());
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "do_not_call_enterprise");
}

#[tokio::test]
async fn probes_and_the_openapi_document() {
    let api = Api::start().await;
    for path in ["/healthz", "/readyz"] {
        let (status, _) = api.get("", path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, doc) = api.get("", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/consent-requests",
        "/v1/consent-requests/{id}",
        "/v1/consents",
        "/v1/consents/{id}/revoke",
        "/v1/people/{id}",
        "/healthz",
        "/readyz",
        "/admin/v1/enterprises",
        "/admin/v1/enterprises/{id}/people/{person_id}/caller-id",
        "/admin/v1/caller-id/numbers",
        "/admin/v1/caller-id/numbers/{number}/flag",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let (status, body) = api.get("", "/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn the_admin_api_sets_up_an_enterprise_end_to_end() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let new_enterprise = json!({
        "name": "Beta Telecom",
        "display_name": "Beta",
        "services": ["Fibre"],
        "default_region": "FR",
        "consent_policy": "days:7",
    });

    // Neither no token, a wrong one, nor an enterprise key opens it.
    for key in [
        "",
        "admin-token-wrong-0123456789abcdef012345",
        acme.key.as_str(),
    ] {
        let (status, _) = api
            .post(key, "/admin/v1/enterprises", new_enterprise.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
    }

    let (status, body) = api
        .post(ADMIN_TOKEN, "/admin/v1/enterprises", new_enterprise.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["consent_policy"], "days:7");
    assert_eq!(body["status"], "trusted");
    let beta = body["id"].as_str().unwrap().to_string();

    let mut bad = new_enterprise.clone();
    bad["default_region"] = json!("ZZ");
    let (status, body) = api.post(ADMIN_TOKEN, "/admin/v1/enterprises", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_field(&body), "default_region");

    let (status, body) = api
        .post(
            ADMIN_TOKEN,
            &format!("/admin/v1/enterprises/{beta}/api-keys"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    let key_id = body["id"].as_str().unwrap().to_string();

    let response = api
        .client
        .put(api.url("/admin/v1/subscriptions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"enterprise_id": beta, "number": "06 98 76 54 32", "status": "active"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subscription"]["status"], "active");

    let (status, body) = api
        .post(&key, "/v1/consent-requests", ask("+33698765432"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = api
        .post(
            ADMIN_TOKEN,
            "/admin/v1/do-not-call",
            json!({"enterprise_id": beta, "number": "0698765432"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added"], true);
    let (status, body) = api
        .post(&key, "/v1/consent-requests", ask("+33698765432"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "do_not_call_enterprise");

    let response = api
        .client
        .put(api.url(&format!("/admin/v1/enterprises/{beta}/status")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = api.get(&key, "/v1/consents?number=0698765432").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "enterprise_suspended");

    let (status, _) = api
        .post(
            ADMIN_TOKEN,
            &format!("/admin/v1/api-keys/{key_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&key, "/v1/consents?number=0698765432").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_api_reads_changes_and_removes_enterprises() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let (status, body) = api
        .post(
            ADMIN_TOKEN,
            "/admin/v1/enterprises",
            json!({"name": "Beta", "display_name": "Beta", "default_region": "FR",
                   "crm_webhook_url": "https://crm.beta.example/hook",
                   "crm_webhook_secret": "whsec_beta_0123456789"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let beta = body["id"].as_str().unwrap().to_string();

    let (status, body) = api.get(ADMIN_TOKEN, "/admin/v1/enterprises").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [acme.id.as_str(), beta.as_str()]);
    let (status, _) = api.get(&acme.key, "/admin/v1/enterprises").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = api
        .get(ADMIN_TOKEN, &format!("/admin/v1/enterprises/{beta}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["crm_webhook_url"], "https://crm.beta.example/hook");
    assert!(body.get("crm_webhook_secret").is_none(), "{body}");

    let patch = |body: Value| {
        api.client
            .patch(api.url(&format!("/admin/v1/enterprises/{beta}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let (status, body) = read(
        patch(json!({"display_name": "Beta Fibre", "crm_webhook_url": null}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Beta Fibre");
    assert_eq!(body["name"], "Beta");
    assert!(body.get("crm_webhook_url").is_none(), "{body}");
    for (bad, field) in [
        (json!({"consent_policy": "weeks:2"}), "consent_policy"),
        (json!({"status": "banned"}), "status"),
        (json!({"default_region": "ZZ"}), "default_region"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, body) = read(patch(bad).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_field(&body), field);
    }

    let (status, body) = api
        .post(
            ADMIN_TOKEN,
            &format!("/admin/v1/enterprises/{beta}/api-keys"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key_id = body["id"].as_str().unwrap().to_string();
    let (status, body) = api
        .get(
            ADMIN_TOKEN,
            &format!("/admin/v1/enterprises/{beta}/api-keys"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["id"], key_id.as_str());
    assert!(body[0].get("key").is_none() && body[0].get("hash").is_none());

    let delete = |id: String| {
        api.client
            .delete(api.url(&format!("/admin/v1/enterprises/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    // ACME has a subscriber, so its history keeps it in place.
    let (status, body) = read(delete(acme.id.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let response = delete(beta.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = api
        .get(ADMIN_TOKEN, &format!("/admin/v1/enterprises/{beta}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_admin_api_reads_and_removes_do_not_call_entries() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let dnc = |method: reqwest::Method, query: &str| {
        api.client
            .request(method, api.url(&format!("/admin/v1/do-not-call?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let on_acme = format!("enterprise_id={}&number=0612345678", acme.id);
    let (status, _) = read(dnc(reqwest::Method::GET, &on_acme).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for enterprise_id in [Some(acme.id.as_str()), None] {
        let (status, body) = api
            .post(
                ADMIN_TOKEN,
                "/admin/v1/do-not-call",
                json!({"enterprise_id": enterprise_id, "number": ANN, "source": "complaint"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The enterprise's view shows the global entry first: it binds everyone.
    let (status, body) = read(dnc(reqwest::Method::GET, &on_acme).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], ANN);
    assert!(body.get("enterprise_id").is_none(), "{body}");
    assert_eq!(body["source"], "complaint");

    let global = "number=%2B33612345678";
    let response = dnc(reqwest::Method::DELETE, global).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = read(dnc(reqwest::Method::DELETE, global).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The enterprise's own entry is still there and still refuses.
    let (status, body) = read(dnc(reqwest::Method::GET, &on_acme).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enterprise_id"], acme.id.as_str());
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let response = dnc(reqwest::Method::DELETE, &on_acme).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = api.post(&acme.key, "/v1/consent-requests", ask(ANN)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = read(dnc(reqwest::Method::GET, "number=12").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "number");
    let (status, _) = read(dnc(reqwest::Method::GET, "colour=red").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_admin_api_sets_prompt_templates_per_locale() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let path = format!("/admin/v1/enterprises/{}/prompt-templates", acme.id);
    let put = |body: Value| {
        api.client
            .put(api.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let (status, body) = read(
        put(json!({"templates": {
            "en": "Hi {name}, {enterprise} about {purpose}?",
            "fr-FR": "Bonjour {name}, {enterprise} souhaite vous appeler ({purpose}).",
        }}))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["templates"]["fr-fr"],
        "Bonjour {name}, {enterprise} souhaite vous appeler ({purpose})."
    );
    let (status, read_back) = api.get(ADMIN_TOKEN, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read_back, body);

    // A template naming what slotgate cannot fill is refused whole.
    let (status, body) = read(
        put(json!({"templates": {"en": "Hi {first_name}", "de": "Hallo {name}"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "templates.en");
    let (_, unchanged) = api.get(ADMIN_TOKEN, &path).await;
    assert_eq!(unchanged, read_back);

    let (status, _) = api
        .get(
            ADMIN_TOKEN,
            "/admin/v1/enterprises/missing/prompt-templates",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get(&acme.key, &path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_is_absent() {
    let api = Api::start_with(None).await;
    let (status, body) = api
        .post(ADMIN_TOKEN, "/admin/v1/enterprises", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn the_admin_api_sets_reads_and_clears_a_persons_caller_id() {
    let api = Api::start().await;
    let acme = api.tenant("ACME", ANN).await;
    let beta = api.tenant("Beta", ANN).await;
    let path = format!(
        "/admin/v1/enterprises/{}/people/{}/caller-id",
        acme.id, acme.person_id
    );
    let send = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut request = api.client.request(method, api.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let put =
        |path: &str, key: &str, body: Value| send(reqwest::Method::PUT, path, key, Some(body));

    // An enterprise key never reaches the admin routes.
    let (status, _) = read(
        put(&path, &acme.key, json!({"number": "+33140000001"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = read(
        put(&path, ADMIN_TOKEN, json!({"number": "+33140000001"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], "+33140000001");
    assert_eq!(body["person_id"], acme.person_id.as_str());
    assert_eq!(body["enterprise_id"], acme.id.as_str());
    let (status, body) = api.get(ADMIN_TOKEN, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], "+33140000001");

    // The gate's facts carry it, for this enterprise only.
    let ann = E164::from_e164(ANN).unwrap();
    let facts = api
        .store
        .callee_facts(&acme.id, &ann)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        facts.caller_id_override.as_ref().map(E164::as_str),
        Some("+33140000001")
    );
    let facts = api
        .store
        .callee_facts(&beta.id, &ann)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.caller_id_override, None);

    // Only an international number is a caller ID; the field is named.
    for bad in [json!({"number": "01 40 00 00 01"}), json!({"number": "+1"})] {
        let (status, body) = read(put(&path, ADMIN_TOKEN, bad).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_field(&body), "number", "{body}");
    }
    let (status, body) = read(
        put(
            &path,
            ADMIN_TOKEN,
            json!({"number": "+33140000001", "colour": "red"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_field(&body), "colour");
    for missing in [
        format!("/admin/v1/enterprises/{}/people/nobody/caller-id", acme.id),
        format!(
            "/admin/v1/enterprises/missing/people/{}/caller-id",
            acme.person_id
        ),
    ] {
        let (status, body) = read(
            put(&missing, ADMIN_TOKEN, json!({"number": "+33140000001"}))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
    }

    let response = send(reqwest::Method::DELETE, &path, ADMIN_TOKEN, None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = read(
        send(reqwest::Method::DELETE, &path, ADMIN_TOKEN, None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get(ADMIN_TOKEN, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let facts = api
        .store
        .callee_facts(&acme.id, &ann)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.caller_id_override, None);
}

#[tokio::test]
async fn the_admin_api_flags_lists_and_unflags_caller_id_numbers() {
    let number = |text: &str| E164::from_e164(text).unwrap();
    let pool = slotgate::api::caller_id::PoolNumbers {
        numbers: vec![
            ("acme".into(), number("+12125550122")),
            ("acme".into(), number("+12125550123")),
        ],
        default_cool_down: std::time::Duration::from_secs(3600),
    };
    let api = Api::start_with_sip(
        Some(ADMIN_TOKEN),
        slotgate::api::SipSide {
            caller_id: std::sync::Arc::new(pool),
            ..Default::default()
        },
    )
    .await;
    let flag_path = |n: &str| format!("/admin/v1/caller-id/numbers/{n}/flag");
    let flag = |n: &str, body: Option<Value>| {
        let mut request = api
            .client
            .post(api.url(&flag_path(n)))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let unflag = |n: &str| {
        api.client
            .delete(api.url(&flag_path(n)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };

    let (status, body) = api.get(ADMIN_TOKEN, "/admin/v1/caller-id/numbers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([
            {"number": "+12125550122", "enterprise_id": "acme", "flagged": false},
            {"number": "+12125550123", "enterprise_id": "acme", "flagged": false},
        ])
    );

    // No body: the configured cool-down. `+` escaped or not.
    let before = Utc::now();
    let (status, body) = read(flag("%2B12125550122", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], "+12125550122");
    let until: chrono::DateTime<Utc> = body["flagged_until"].as_str().unwrap().parse().unwrap();
    assert!(until >= before + TimeDelta::seconds(3599), "{until}");
    assert!(until <= Utc::now() + TimeDelta::seconds(3600), "{until}");
    // A number no pool lists may be flagged too (it may join one later).
    let (status, body) = read(
        flag("+13125550133", Some(json!({"cool_down_secs": 600})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Stored, where every node's SIP loop reads it.
    let stored = api.store.caller_id_flags(Utc::now()).await.unwrap();
    let stored: Vec<&str> = stored.iter().map(|f| f.number.as_str()).collect();
    assert_eq!(stored, ["+12125550122", "+13125550133"]);

    let (status, body) = api.get(ADMIN_TOKEN, "/admin/v1/caller-id/numbers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body.as_array().unwrap();
    assert_eq!(listed.len(), 3, "{body}");
    assert_eq!(listed[0]["flagged"], true);
    assert!(listed[0]["flagged_until"].is_string(), "{body}");
    assert_eq!(listed[1]["flagged"], false);
    assert_eq!(listed[2]["number"], "+13125550133");
    assert!(listed[2].get("enterprise_id").is_none(), "{body}");
    assert_eq!(listed[2]["flagged"], true);

    // Bad input names its field.
    for (n, body, field) in [
        ("2125550122", None, "number"),
        (
            "+12125550122",
            Some(json!({"cool_down_secs": 0})),
            "cool_down_secs",
        ),
        (
            "+12125550122",
            Some(json!({"cool_down_secs": 40_000_000})),
            "cool_down_secs",
        ),
        (
            "+12125550122",
            Some(json!({"cool_down_secs": "soon"})),
            "cool_down_secs",
        ),
        ("+12125550122", Some(json!({"until": 5})), "until"),
    ] {
        let (status, answer) = read(flag(n, body).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {answer}");
        assert_eq!(error_field(&answer), field, "{answer}");
    }
    let (status, _) = read(
        api.client
            .post(api.url(&flag_path("+12125550122")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = unflag("+12125550122").await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = read(unflag("+12125550122").await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = api.get(ADMIN_TOKEN, "/admin/v1/caller-id/numbers").await;
    assert_eq!(body[0]["flagged"], false, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");
}
