//! CRM webhooks end to end on loopback: a real HTTP receiver on
//! 127.0.0.1:0 verifies every signature with the documented scheme
//! (`slotgate::crm::signature::verify`) and records what it accepted,
//! while a deliverer empties a SQLite store's outbox toward it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use serde_json::{json, Value};
use slotgate::config::{ApiConfig, CrmConfig};
use slotgate::consent::{
    Channel, ConsentPolicy, ConsentStatus, Evidence, Identifier, NewConsent, NewEnterprise, Scope,
    SubscriptionStatus, TrustStatus, E164,
};
use slotgate::crm::signature::{verify, SIGNATURE_HEADER};
use slotgate::crm::{spawn_deliverer, DeliveryState, OutboxEvent, OutboxFilter};
use slotgate::store::Store;

const SECRET: &str = "whsec_loopback_0123456789";
const ANN: &str = "+33612345678";
const BOB: &str = "+33698765432";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";
/// Every wait in this file gives up after this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answers in time (the deliverer's timeout or stop cuts it).
    Hang,
}

#[derive(Debug, Default)]
struct Log {
    /// (event id, status answered) for every request, in arrival order.
    attempts: Vec<(String, u16)>,
    /// Bodies answered 2xx, in arrival order.
    accepted: Vec<Value>,
    /// Requests whose signature did not verify.
    bad_signatures: usize,
}

struct Receiver {
    script: Mutex<VecDeque<Reply>>,
    /// Status once the script is used up.
    otherwise: AtomicU16,
    log: Mutex<Log>,
}

impl Receiver {
    async fn start(script: &[Reply]) -> (Arc<Receiver>, String) {
        let receiver = Arc::new(Receiver {
            script: Mutex::new(script.iter().copied().collect()),
            otherwise: AtomicU16::new(200),
            log: Mutex::new(Log::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks", post(hook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn accepted(&self) -> Vec<Value> {
        self.log.lock().unwrap().accepted.clone()
    }

    fn attempts(&self) -> Vec<(String, u16)> {
        self.log.lock().unwrap().attempts.clone()
    }
}

/// The receiver side as the README tells CRMs to write it.
async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
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
        receiver.log.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    let id = value["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers.get("slotgate-event-id").unwrap().to_str().unwrap(),
        id
    );
    let reply = receiver.script.lock().unwrap().pop_front();
    let status = match reply {
        Some(Reply::Hang) => {
            receiver.log.lock().unwrap().attempts.push((id, 0));
            tokio::time::sleep(Duration::from_secs(30)).await;
            return StatusCode::OK;
        }
        Some(Reply::Status(s)) => s,
        None => receiver.otherwise.load(Ordering::SeqCst),
    };
    let mut log = receiver.log.lock().unwrap();
    log.attempts.push((id, status));
    if (200..300).contains(&status) {
        log.accepted.push(value);
    }
    StatusCode::from_u16(status).unwrap()
}

fn crm_config(max_attempts: u32) -> CrmConfig {
    CrmConfig {
        max_attempts,
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        request_timeout: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        allow_private_webhook_urls: true,
    }
}

struct World {
    store: Store,
    url: String,
    enterprise: String,
    ann: String,
    bob: String,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(webhook_url: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let enterprise = store
            .create_enterprise(
                &NewEnterprise {
                    name: "ACME Energy SAS".into(),
                    display_name: "ACME Energy".into(),
                    services: vec!["Electricity".into()],
                    default_region: "FR".into(),
                    crm_webhook_url: Some(webhook_url.into()),
                    crm_webhook_secret: Some(SECRET.into()),
                    consent_policy: ConsentPolicy::Days(30),
                    status: TrustStatus::Trusted,
                },
                Utc::now(),
            )
            .await
            .unwrap()
            .id;
        let mut people = Vec::new();
        for phone in [ANN, BOB] {
            let person = store
                .create_person(
                    &[Identifier::Phone(E164::parse(phone, None).unwrap())],
                    Utc::now(),
                )
                .await
                .unwrap();
            store
                .set_subscription(
                    &person.id,
                    &enterprise,
                    SubscriptionStatus::Active,
                    Utc::now(),
                )
                .await
                .unwrap();
            people.push(person.id);
        }
        World {
            store,
            url,
            enterprise,
            bob: people.pop().unwrap(),
            ann: people.pop().unwrap(),
            _dir: dir,
        }
    }

    /// Records a granted consent for Ann (or Bob) and returns its id.
    async fn grant(&self, person: &str) -> String {
        let phone = if person == self.ann { ANN } else { BOB };
        self.store
            .record_consent(
                &NewConsent {
                    person_id: person.into(),
                    enterprise_id: self.enterprise.clone(),
                    number: E164::parse(phone, None).unwrap(),
                    scope: Scope::Purpose("contract renewal".into()),
                    status: ConsentStatus::Granted,
                    window: None,
                    expires_at: None,
                    channel: Channel::Api,
                    evidence: Evidence::default(),
                },
                Utc::now(),
            )
            .await
            .unwrap()
            .id
    }

    async fn events(&self) -> Vec<OutboxEvent> {
        self.store
            .webhook_events(&OutboxFilter {
                limit: 1000,
                ..OutboxFilter::default()
            })
            .await
            .unwrap()
    }

    async fn event(&self, id: &str) -> OutboxEvent {
        self.store.webhook_event(id).await.unwrap().unwrap()
    }

    /// Waits until the event reaches `state`.
    async fn wait_for(&self, id: &str, state: DeliveryState) -> OutboxEvent {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = self.event(id).await;
            if event.state == state {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "event still {:?} after {PATIENCE:?}: {event:?}",
                event.state
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_change_is_delivered_signed_with_its_event_id() {
    let (receiver, url) = Receiver::start(&[]).await;
    let world = World::new(&url).await;
    let deliverer = spawn_deliverer(world.store.clone(), crm_config(5)).unwrap();
    let consent = world.grant(&world.ann).await;
    let event = world.events().await.remove(0);
    let delivered = world.wait_for(&event.id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.last_status, Some(200));

    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    let body = &accepted[0];
    assert_eq!(body["id"], event.id.as_str());
    assert_eq!(body["type"], "consent.granted");
    assert_eq!(body["enterprise_id"], world.enterprise.as_str());
    assert_eq!(body["person_id"], world.ann.as_str());
    assert_eq!(body["data"]["id"], consent.as_str());
    assert_eq!(body["data"]["number"], ANN);
    assert_eq!(receiver.log.lock().unwrap().bad_signatures, 0);
    deliverer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_until_the_crm_accepts() {
    let (receiver, url) = Receiver::start(&[Reply::Status(500), Reply::Status(500)]).await;
    let world = World::new(&url).await;
    let deliverer = spawn_deliverer(world.store.clone(), crm_config(5)).unwrap();
    world.grant(&world.ann).await;
    let event = world.events().await.remove(0);
    let delivered = world.wait_for(&event.id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 3);
    assert_eq!(delivered.last_status, Some(200));
    assert_eq!(delivered.last_error, None);
    let attempts = receiver.attempts();
    assert_eq!(
        attempts,
        [
            (event.id.clone(), 500),
            (event.id.clone(), 500),
            (event.id.clone(), 200)
        ],
        "the same event id on every attempt"
    );
    deliverer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_persons_events_arrive_in_order_despite_failures() {
    let (receiver, url) =
        Receiver::start(&[Reply::Status(500), Reply::Status(503), Reply::Status(500)]).await;
    let world = World::new(&url).await;
    // Changes first, deliverer second: they all wait in the outbox.
    let first = world.grant(&world.ann).await;
    world
        .store
        .revoke_consent(&first, Utc::now())
        .await
        .unwrap();
    world.grant(&world.bob).await;
    let second = world.grant(&world.ann).await;
    world
        .store
        .revoke_consent(&second, Utc::now())
        .await
        .unwrap();
    world.grant(&world.ann).await;
    let queued = world.events().await;
    assert_eq!(queued.len(), 6);

    let deliverer = spawn_deliverer(world.store.clone(), crm_config(10)).unwrap();
    eventually("all six events accepted", || receiver.accepted().len() == 6).await;
    deliverer.stop().await;

    let accepted = receiver.accepted();
    for person in [&world.ann, &world.bob] {
        let sent: Vec<&str> = accepted
            .iter()
            .filter(|b| b["person_id"] == person.as_str())
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        let committed: Vec<&str> = queued
            .iter()
            .filter(|e| &e.person_id == person)
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(sent, committed, "commit order for {person}");
    }
    let ann_types: Vec<&str> = accepted
        .iter()
        .filter(|b| b["person_id"] == world.ann.as_str())
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        ann_types,
        [
            "consent.granted",
            "consent.revoked",
            "consent.granted",
            "consent.revoked",
            "consent.granted"
        ]
    );
    // A failed head was never overtaken by a later event of its person.
    let attempts = receiver.attempts();
    let ann_ids: Vec<&str> = queued
        .iter()
        .filter(|e| e.person_id == world.ann)
        .map(|e| e.id.as_str())
        .collect();
    let mut highest = 0;
    for (id, _) in &attempts {
        if let Some(position) = ann_ids.iter().position(|a| a == id) {
            assert!(position >= highest, "{id} sent after a later event");
            highest = position;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_event_is_visible_to_the_operator_and_can_be_redriven() {
    let (receiver, url) = Receiver::start(&[]).await;
    receiver.otherwise.store(503, Ordering::SeqCst);
    let world = World::new(&url).await;
    let deliverer = spawn_deliverer(world.store.clone(), crm_config(3)).unwrap();
    world.grant(&world.ann).await;
    let event = world.events().await.remove(0);
    let dead = world.wait_for(&event.id, DeliveryState::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_status, Some(503));
    assert_eq!(receiver.attempts().len(), 3);

    // The dead event does not hold back Ann's next one.
    receiver.otherwise.store(200, Ordering::SeqCst);
    world.grant(&world.ann).await;
    let next = world.events().await.remove(1);
    world.wait_for(&next.id, DeliveryState::Delivered).await;

    let api = start_api(&world.store, true).await;
    let client = reqwest::Client::new();
    let listing: Value = client
        .get(format!(
            "{api}/admin/v1/webhook-events?state=dead&enterprise_id={}",
            world.enterprise
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = listing["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{listing}");
    assert_eq!(events[0]["id"], event.id.as_str());
    assert_eq!(events[0]["state"], "dead");
    assert_eq!(events[0]["attempts"], 3);
    assert_eq!(events[0]["last_status"], 503);
    assert_eq!(events[0]["type"], "consent.granted");
    assert_eq!(events[0]["payload"]["id"], event.id.as_str());

    let response = client
        .post(format!(
            "{api}/admin/v1/webhook-events/{}/redrive",
            event.id
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let redriven = world.wait_for(&event.id, DeliveryState::Delivered).await;
    assert_eq!(redriven.attempts, 1, "a re-drive starts a fresh count");
    assert!(receiver
        .accepted()
        .iter()
        .any(|b| b["id"] == event.id.as_str()));

    // Only dead events can be re-driven; unknown ids are 404.
    let again = client
        .post(format!(
            "{api}/admin/v1/webhook-events/{}/redrive",
            event.id
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let unknown = client
        .post(format!("{api}/admin/v1/webhook-events/nope/redrive"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = client
        .get(format!("{api}/admin/v1/webhook-events?state=lost"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let anonymous = client
        .get(format!("{api}/admin/v1/webhook-events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    deliverer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_delivered_after_restart() {
    let (receiver, url) = Receiver::start(&[]).await;
    let world = World::new(&url).await;
    // The process commits a change and dies before any delivery: here its
    // runtime, store and all, is dropped on another thread.
    let db_url = world.url.clone();
    let (enterprise, ann) = (world.enterprise.clone(), world.ann.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Store::connect(&db_url).await.unwrap();
            store
                .record_consent(
                    &NewConsent {
                        person_id: ann,
                        enterprise_id: enterprise,
                        number: E164::parse(ANN, None).unwrap(),
                        scope: Scope::Purpose("contract renewal".into()),
                        status: ConsentStatus::Granted,
                        window: None,
                        expires_at: None,
                        channel: Channel::Api,
                        evidence: Evidence::default(),
                    },
                    Utc::now(),
                )
                .await
                .unwrap();
            // No close, no deliverer: the runtime just goes away.
        });
        drop(runtime);
    })
    .join()
    .unwrap();
    assert!(receiver.attempts().is_empty());

    // The restarted process: a fresh store on the same file and a deliverer.
    let restarted = Store::connect(&world.url).await.unwrap();
    restarted.migrate().await.unwrap();
    let event = world.events().await.remove(0);
    assert_eq!(event.state, DeliveryState::Pending);
    let deliverer = spawn_deliverer(restarted.clone(), crm_config(5)).unwrap();
    world.wait_for(&event.id, DeliveryState::Delivered).await;
    assert_eq!(receiver.accepted()[0]["id"], event.id.as_str());
    deliverer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_flight_when_the_deliverer_dies_is_sent_again() {
    // The first post never gets its answer: the deliverer is stopped with
    // the event claimed. Another deliverer takes it once the lease is over.
    let (receiver, url) = Receiver::start(&[Reply::Hang]).await;
    let world = World::new(&url).await;
    let mut config = crm_config(5);
    // A lease of 2 × 1 s + 1 s; stopped well before its own timeout.
    config.request_timeout = Duration::from_secs(1);
    let first = spawn_deliverer(world.store.clone(), config.clone()).unwrap();
    world.grant(&world.ann).await;
    let event = world.events().await.remove(0);
    eventually("the first post arrives", || receiver.attempts().len() == 1).await;
    first.stop().await;
    let claimed = world.event(&event.id).await;
    assert_eq!(claimed.state, DeliveryState::Pending);
    assert!(claimed.next_attempt_at > Utc::now(), "still leased");

    let second = spawn_deliverer(world.store.clone(), crm_config(5)).unwrap();
    let lease_end = claimed.next_attempt_at;
    let wait = (lease_end - Utc::now()).to_std().unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(3),
        "lease is request_timeout * 2 + 1 s"
    );
    world.wait_for(&event.id, DeliveryState::Delivered).await;
    assert!(Utc::now() >= lease_end, "not before the lease ran out");
    let ids: Vec<String> = receiver.attempts().into_iter().map(|a| a.0).collect();
    assert_eq!(
        ids,
        [event.id.clone(), event.id.clone()],
        "at least once, same id"
    );
    second.stop().await;
}

async fn start_api(store: &Store, allow_private: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = ApiConfig {
        listen: None,
        max_body_bytes: 65_536,
        admin_token: Some(ADMIN_TOKEN.into()),
        allow_private_webhook_urls: allow_private,
    };
    let router = slotgate::api::router(store.clone(), &config);
    tokio::spawn(slotgate::api::serve(
        listener,
        router,
        std::future::pending(),
    ));
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_urls_are_refused_unless_allowed() {
    let world = World::new("https://crm.example.com/hooks").await;
    let client = reqwest::Client::new();
    let body = |url: &str| {
        json!({
            "name": "Local CRM", "display_name": "Local", "default_region": "FR",
            "crm_webhook_url": url, "crm_webhook_secret": "whsec_x_0123456789abcdef"
        })
    };
    let strict = start_api(&world.store, false).await;
    for url in [
        "http://127.0.0.1:9000/hooks",
        "http://localhost/hooks",
        "http://10.0.0.7/hooks",
        "http://169.254.169.254/latest",
        "http://[::1]/hooks",
    ] {
        let response = client
            .post(format!("{strict}/admin/v1/enterprises"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body(url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{url}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], "crm_webhook_url", "{url}");
    }
    let public = client
        .post(format!("{strict}/admin/v1/enterprises"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body("https://crm.example.com/hooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 201);
    let created: Value = public.json().await.unwrap();
    let path = format!(
        "{strict}/admin/v1/enterprises/{}",
        created["id"].as_str().unwrap()
    );
    let patch = |url: Value| {
        client
            .patch(&path)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "crm_webhook_url": url }))
            .send()
    };
    let refused = patch(json!("http://192.168.0.10/hooks")).await.unwrap();
    assert_eq!(refused.status(), 422);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["field"], "crm_webhook_url");
    assert_eq!(
        patch(json!("https://crm2.example.com/h"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(patch(Value::Null).await.unwrap().status(), 200);

    let relaxed = start_api(&world.store, true).await;
    let local = client
        .post(format!("{relaxed}/admin/v1/enterprises"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body("http://127.0.0.1:9000/hooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 201);
}
