//! The provider channels against local HTTP servers that speak the
//! providers' documented formats.
//!
//! Each fake runs on 127.0.0.1:0, records every request exactly as it
//! arrived and answers from a script, so the tests pin the bytes slotgate
//! puts on the wire (JSON for RBM, forms for Twilio and Google's token
//! endpoint) and how each answer is read. The fake token endpoint checks the
//! RS256 signature of the JWT grant with the public half of a test-only key,
//! as Google would. Webhook verifiers are pure functions and are fed the
//! bodies and headers the providers document.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ring::signature::{RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};

use slotgate::consent::{Choice, OfferedChoice, E164};
use slotgate::rcs::channel::{InboundError, InboundEvent, OutboundMessage, SendError, SendOutcome};
use slotgate::rcs::rbm::{
    self, MessageTrafficType, RbmClient, RbmSettings, ServiceAccount, RBM_SCOPE,
};
use slotgate::rcs::secret::Secret;
use slotgate::rcs::twilio::{self, Sender, TwilioClient, TwilioSettings};

/// Test-only key; see tests/fixtures/README.md.
const TEST_KEY: &str = include_str!("fixtures/TEST-ONLY-rbm-service-account-key.pem");
const EMAIL: &str = "slotgate@rbm-test.iam.gserviceaccount.com";
const AGENT: &str = "slotgate_agent";
const ANN: &str = "+33612345678";
const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";

/// Every test finishes in bounded time even if a server hangs.
async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .expect("test exceeded 30 s");
}

// ---------------------------------------------------------------------------
// The fake provider: records requests, answers from a script.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).expect("form body")
    }
}

#[derive(Default)]
struct Fake {
    requests: Mutex<Vec<Recorded>>,
    /// Answers to non-token requests, in order; 200 `{}` once empty.
    script: Mutex<VecDeque<(u16, String)>>,
    /// Delay before answering non-token requests.
    delay: Mutex<Option<Duration>>,
    tokens_issued: Mutex<u32>,
    /// What the token endpoint checks the JWT against.
    token_uri: Mutex<String>,
    public_key: Vec<u8>,
}

impl Fake {
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
    fn sends(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }
    fn grants(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/token")
            .collect()
    }
    fn answer(&self, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, body.to_string()));
    }

    /// Google's token endpoint: refuses anything but a correctly signed
    /// JWT bearer grant with the documented claims.
    fn token(&self, body: &[u8]) -> Response {
        let refuse = |why: &str| {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": why})),
            )
                .into_response()
        };
        let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(body) {
            Ok(form) => form,
            Err(_) => return refuse("not a form"),
        };
        let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        if field("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return refuse("grant_type");
        }
        let Some(jwt) = field("assertion") else {
            return refuse("no assertion");
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return refuse("not a JWT");
        }
        let Ok(signature) = URL_SAFE_NO_PAD.decode(parts[2]) else {
            return refuse("signature encoding");
        };
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key);
        let signed = format!("{}.{}", parts[0], parts[1]);
        if key.verify(signed.as_bytes(), &signature).is_err() {
            return refuse("bad signature");
        }
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap_or_default())
                .unwrap_or_default();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default();
        let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
        if header["alg"] != "RS256"
            || claims["iss"] != EMAIL
            || claims["scope"] != RBM_SCOPE
            || claims["aud"] != *self.token_uri.lock().unwrap()
            || !(1..=3600).contains(&lifetime)
        {
            return refuse("claims");
        }
        let mut issued = self.tokens_issued.lock().unwrap();
        *issued += 1;
        axum::Json(json!({
            "access_token": format!("ya29.token-{}", *issued),
            "expires_in": 3599,
            "token_type": "Bearer",
        }))
        .into_response()
    }
}

async fn record(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.requests.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.clone(),
    });
    if uri.path() == "/token" {
        return fake.token(&body);
    }
    let delay = *fake.delay.lock().unwrap();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = fake
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, "{}".into()));
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// Starts a fake on loopback; returns its base URL.
async fn start_fake() -> (String, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        public_key: test_public_key(),
        token_uri: Mutex::new(format!("{base}/token")),
        ..Fake::default()
    });
    let app = Router::new().fallback(record).with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, fake)
}

fn test_public_key() -> Vec<u8> {
    let body: String = TEST_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
    use ring::signature::KeyPair as _;
    pair.public_key().as_ref().to_vec()
}

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

fn offered(label: &str, postback: &str, choice: Choice) -> OfferedChoice {
    OfferedChoice {
        label: label.into(),
        postback: postback.into(),
        choice,
    }
}

fn prompt(id: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: id.into(),
        to: E164::from_e164(ANN).unwrap(),
        text: "Acme would like to call you about your order. When suits you?".into(),
        choices: vec![
            offered("Now", "now", Choice::Now),
            offered("In 1 hour", "after-60", Choice::After(TimeDelta::hours(1))),
            offered(
                "Tomorrow between 18:00 and 20:00",
                "range-1",
                Choice::Decline,
            ),
            offered("Don't call me", "decline", Choice::Decline),
        ],
        ttl: Duration::from_secs(3600),
    }
}

type TestClock = Arc<Mutex<DateTime<Utc>>>;

fn rbm_client(base: &str, timeout: Duration) -> (RbmClient, TestClock) {
    let now: TestClock = Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
    ));
    let clock = now.clone();
    let settings = RbmSettings {
        base_url: base.into(),
        agent_id: AGENT.into(),
        service_account: ServiceAccount {
            client_email: EMAIL.into(),
            private_key_pem: Secret::new(TEST_KEY),
            token_uri: format!("{base}/token"),
        },
        traffic_type: MessageTrafficType::Transaction,
        timeout,
    };
    let client =
        RbmClient::with_clock(settings, Arc::new(move || *clock.lock().unwrap())).expect("client");
    (client, now)
}

// ---------------------------------------------------------------------------
// RBM: sending.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rbm_sends_the_documented_json_with_a_bearer_token() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        fake.answer(
            200,
            &json!({"name": format!("phones/{ANN}/agentMessages/m-1"), "sendTime": "2026-03-01T12:00:00Z"})
                .to_string(),
        );

        let outcome = client.send(&prompt("m-1")).await.unwrap();
        assert_eq!(
            outcome,
            SendOutcome::Accepted {
                provider_message_id: "m-1".into()
            }
        );

        let grants = fake.grants();
        assert_eq!(grants.len(), 1);
        assert_eq!(
            grants[0].header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let sends = fake.sends();
        assert_eq!(sends.len(), 1);
        let send = &sends[0];
        assert_eq!(send.method, Method::POST);
        assert_eq!(send.path, "/v1/phones/+33612345678/agentMessages");
        assert_eq!(
            send.query.as_deref(),
            Some("messageId=m-1&agentId=slotgate_agent")
        );
        assert_eq!(send.header("authorization"), Some("Bearer ya29.token-1"));
        assert_eq!(send.header("content-type"), Some("application/json"));
        assert_eq!(
            send.json(),
            json!({
                "contentMessage": {
                    "text": "Acme would like to call you about your order. When suits you?",
                    "suggestions": [
                        {"reply": {"text": "Now", "postbackData": "now"}},
                        {"reply": {"text": "In 1 hour", "postbackData": "after-60"}},
                        // Cut to RBM's 25-character limit.
                        {"reply": {"text": "Tomorrow between 18:00 an", "postbackData": "range-1"}},
                        {"reply": {"text": "Don't call me", "postbackData": "decline"}},
                    ],
                },
                "messageTrafficType": "TRANSACTION",
                "ttl": "3600s",
            })
        );
    })
    .await;
}

#[tokio::test]
async fn rbm_reuses_its_token_and_refreshes_it_before_expiry() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, now) = rbm_client(&base, Duration::from_secs(5));

        client.send(&prompt("m-1")).await.unwrap();
        client.send(&prompt("m-2")).await.unwrap();
        assert_eq!(fake.grants().len(), 1, "the second send reuses the token");

        // The token lasts 3599 s; a minute before that it is renewed.
        *now.lock().unwrap() += TimeDelta::seconds(3599 - 59);
        client.send(&prompt("m-3")).await.unwrap();
        assert_eq!(fake.grants().len(), 2);
        let auth: Vec<_> = fake
            .sends()
            .iter()
            .map(|r| r.header("authorization").unwrap_or("").to_string())
            .collect();
        assert_eq!(
            auth,
            [
                "Bearer ya29.token-1",
                "Bearer ya29.token-1",
                "Bearer ya29.token-2"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn rbm_404_means_no_rcs_and_falls_back() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        fake.answer(
            404,
            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#,
        );
        assert_eq!(
            client.send(&prompt("m-1")).await,
            Ok(SendOutcome::Unreachable)
        );
    })
    .await;
}

#[tokio::test]
async fn rbm_capability_check_asks_for_the_handset() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        let to = E164::parse("+33612345678", None).unwrap();
        fake.answer(200, r#"{"features":["RICHCARD_STANDALONE","ACTION_DIAL"]}"#);
        fake.answer(
            404,
            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#,
        );
        fake.answer(503, r#"{"error":{"code":503,"status":"UNAVAILABLE"}}"#);
        assert_eq!(client.is_rcs_capable(&to, "cap-1").await, Ok(true));
        assert_eq!(client.is_rcs_capable(&to, "cap-2").await, Ok(false));
        assert!(matches!(
            client.is_rcs_capable(&to, "cap-3").await,
            Err(SendError::Transient(_))
        ));
        let sends = fake.sends();
        assert_eq!(sends.len(), 3);
        assert_eq!(sends[0].method, Method::GET);
        assert_eq!(sends[0].path, "/v1/phones/+33612345678/capabilities");
        assert_eq!(
            sends[0].query.as_deref(),
            Some(format!("requestId=cap-1&agentId={AGENT}").as_str())
        );
        assert!(sends[0]
            .header("authorization")
            .is_some_and(|h| h.starts_with("Bearer ")));
        // One grant served all three checks.
        assert_eq!(fake.grants().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn rbm_repeat_of_a_sent_message_counts_as_accepted() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        // The first attempt reached RBM but its answer was lost; the retry
        // under the same id is refused as a duplicate.
        fake.answer(
            409,
            r#"{"error":{"code":409,"message":"Message already exists","status":"ALREADY_EXISTS"}}"#,
        );
        assert_eq!(
            client.send(&prompt("m-1")).await,
            Ok(SendOutcome::Accepted {
                provider_message_id: "m-1".into()
            })
        );
    })
    .await;
}

#[tokio::test]
async fn rbm_errors_map_to_retry_policy() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        for (status, expect) in [
            (500, "transient"),
            (503, "transient"),
            (429, "transient"),
            (400, "rejected"),
            (403, "auth"),
        ] {
            fake.answer(
                status,
                r#"{"error":{"code":0,"message":"scripted","status":"X"}}"#,
            );
            let got = client.send(&prompt("m")).await;
            let kind = match &got {
                Err(SendError::Transient(_)) => "transient",
                Err(SendError::Rejected(_)) => "rejected",
                Err(SendError::Auth(_)) => "auth",
                Ok(_) => "ok",
            };
            assert_eq!(kind, expect, "HTTP {status}: {got:?}");
        }
        // Errors name the provider's reason for the operator.
        fake.answer(
            400,
            r#"{"error":{"code":400,"message":"bad suggestion","status":"INVALID_ARGUMENT"}}"#,
        );
        let Err(SendError::Rejected(text)) = client.send(&prompt("m")).await else {
            panic!("expected Rejected");
        };
        assert!(text.contains("INVALID_ARGUMENT: bad suggestion"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn rbm_401_drops_the_token_and_retries_once() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        fake.answer(401, r#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#);
        fake.answer(200, "{}");
        assert!(matches!(
            client.send(&prompt("m-1")).await,
            Ok(SendOutcome::Accepted { .. })
        ));
        assert_eq!(fake.grants().len(), 2);
        let auth: Vec<_> = fake
            .sends()
            .iter()
            .map(|r| r.header("authorization").unwrap_or("").to_string())
            .collect();
        assert_eq!(auth, ["Bearer ya29.token-1", "Bearer ya29.token-2"]);

        // Refused twice: the credentials are wrong, no endless loop.
        fake.answer(401, "{}");
        fake.answer(401, "{}");
        assert!(matches!(
            client.send(&prompt("m-2")).await,
            Err(SendError::Auth(_))
        ));
        assert_eq!(fake.sends().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn rbm_refused_grant_is_an_auth_error_and_nothing_is_sent() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_secs(5));
        // The endpoint expects another audience, as if the key file named
        // another token endpoint.
        *fake.token_uri.lock().unwrap() = "https://oauth2.googleapis.com/token".into();
        let got = client.send(&prompt("m-1")).await;
        let Err(SendError::Auth(text)) = got else {
            panic!("expected Auth, got {got:?}");
        };
        assert!(text.contains("invalid_grant"), "{text}");
        assert!(fake.sends().is_empty());
    })
    .await;
}

#[tokio::test]
async fn rbm_timeouts_and_dead_servers_are_transient() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let (client, _) = rbm_client(&base, Duration::from_millis(300));
        *fake.delay.lock().unwrap() = Some(Duration::from_secs(3));
        let got = client.send(&prompt("m-1")).await;
        assert!(
            matches!(&got, Err(SendError::Transient(t)) if t.contains("timed out")),
            "{got:?}"
        );

        // Nothing listens on a port just released.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (client, _) = rbm_client(&dead, Duration::from_secs(2));
        assert!(matches!(
            client.send(&prompt("m-1")).await,
            Err(SendError::Transient(_))
        ));
    })
    .await;
}

#[test]
fn rbm_settings_never_show_the_key() {
    let account = ServiceAccount {
        client_email: EMAIL.into(),
        private_key_pem: Secret::new(TEST_KEY),
        token_uri: "https://oauth2.googleapis.com/token".into(),
    };
    let text = format!("{account:?}");
    assert!(text.contains(EMAIL));
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let (client, _) = rbm_client("http://127.0.0.1:9", Duration::from_secs(1));
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
}

// ---------------------------------------------------------------------------
// RBM: the webhook.
// ---------------------------------------------------------------------------

/// A Pub/Sub push carrying `event`, as Google posts it, and its signature.
fn rbm_push(event: &str) -> (Vec<u8>, String) {
    let body = json!({
        "message": {
            "data": STANDARD.encode(event),
            "messageId": "2070443601311540",
            "message_id": "2070443601311540",
            "publishTime": "2026-03-01T12:00:01.234Z",
            "publish_time": "2026-03-01T12:00:01.234Z",
        },
        "subscription": "projects/rbm-slotgate/subscriptions/rbm-slotgate-sub",
    });
    (
        serde_json::to_vec_pretty(&body).unwrap(),
        rbm::signature(CLIENT_TOKEN, event.as_bytes()),
    )
}

const CHIP_REPLY: &str = r#"{"senderPhoneNumber":"+33612345678","messageId":"MxkGq8xdFRTK2FZfDN-vwfcw","sendTime":"2026-03-01T12:00:00.123456Z","agentId":"slotgate_agent","suggestionResponse":{"postbackData":"after-60","text":"In 1 hour","type":"REPLY"}}"#;

#[test]
fn rbm_handshake_echoes_the_secret_only_for_our_token() {
    let body = br#"{"clientToken":"SJENCPGJESMGUFPY","secret":"1234567890"}"#;
    assert_eq!(
        rbm::handshake(body, CLIENT_TOKEN).as_deref(),
        Some("1234567890")
    );
    assert_eq!(rbm::handshake(body, "ANOTHERTOKEN0000"), None);
    assert_eq!(
        rbm::handshake(br#"{"clientToken":"SJENCPGJESMGUFPY"}"#, CLIENT_TOKEN),
        None
    );
    assert_eq!(rbm::handshake(b"\x00garbage", CLIENT_TOKEN), None);
}

#[test]
fn rbm_push_with_a_good_signature_yields_the_reply() {
    let (body, sig) = rbm_push(CHIP_REPLY);
    let events = rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN).unwrap();
    assert_eq!(
        events,
        vec![InboundEvent::Reply {
            from: E164::from_e164(ANN).unwrap(),
            provider_message_id: "MxkGq8xdFRTK2FZfDN-vwfcw".into(),
            postback: Some("after-60".into()),
            text: Some("In 1 hour".into()),
            at: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
                + TimeDelta::microseconds(123_456),
        }]
    );

    let (body, sig) = rbm_push(
        r#"{"senderPhoneNumber":"+33612345678","messageId":"Mx2","sendTime":"2026-03-01T12:00:00Z","agentId":"slotgate_agent","text":"call me at 6"}"#,
    );
    assert!(matches!(
        rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN).unwrap().as_slice(),
        [InboundEvent::Reply { postback: None, text: Some(t), .. }] if t == "call me at 6"
    ));

    let (body, sig) = rbm_push(
        r#"{"senderPhoneNumber":"+33612345678","eventType":"DELIVERED","eventId":"ev1","messageId":"m-1","sendTime":"2026-03-01T12:00:00Z","agentId":"slotgate_agent"}"#,
    );
    assert!(matches!(
        rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN).unwrap().as_slice(),
        [InboundEvent::Delivered { provider_message_id, .. }] if provider_message_id == "m-1"
    ));
}

#[test]
fn rbm_push_signature_failures() {
    let (body, sig) = rbm_push(CHIP_REPLY);
    // Missing.
    assert_eq!(
        rbm::verify_push(None, &body, CLIENT_TOKEN),
        Err(InboundError::MissingSignature)
    );
    // Bad: a valid-looking signature of something else, and junk.
    let other = rbm::signature(CLIENT_TOKEN, b"something else");
    assert_eq!(
        rbm::verify_push(Some(&other), &body, CLIENT_TOKEN),
        Err(InboundError::BadSignature)
    );
    assert_eq!(
        rbm::verify_push(Some("not base64!"), &body, CLIENT_TOKEN),
        Err(InboundError::BadSignature)
    );
    assert_eq!(
        rbm::verify_push(Some(""), &body, CLIENT_TOKEN),
        Err(InboundError::BadSignature)
    );
    // Signed with another webhook's token.
    let foreign = rbm::signature("ANOTHERTOKEN0000", CHIP_REPLY.as_bytes());
    assert_eq!(
        rbm::verify_push(Some(&foreign), &body, CLIENT_TOKEN),
        Err(InboundError::BadSignature)
    );
    // The event re-serialised with different whitespace: same meaning,
    // different bytes, so the original signature no longer holds.
    let respaced = CHIP_REPLY.replace("\":\"", "\": \"");
    let (tampered, _) = rbm_push(&respaced);
    assert_eq!(
        rbm::verify_push(Some(&sig), &tampered, CLIENT_TOKEN),
        Err(InboundError::BadSignature)
    );
    // The signature covers the decoded data, not the envelope: a proxy
    // re-indenting the envelope does not break it.
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    let compact = serde_json::to_vec(&envelope).unwrap();
    assert!(rbm::verify_push(Some(&sig), &compact, CLIENT_TOKEN).is_ok());
}

#[test]
fn rbm_malformed_pushes() {
    let sig = rbm::signature(CLIENT_TOKEN, b"");
    for body in [
        &b"{not json"[..],
        br#"{"message":{}}"#,
        br#"{"message":{"data":"***"}}"#,
        br#"[]"#,
    ] {
        assert!(
            matches!(
                rbm::verify_push(Some(&sig), body, CLIENT_TOKEN),
                Err(InboundError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Correctly signed, but not an RBM event.
    let (body, sig) = rbm_push("{\"senderPhoneNumber\": 12");
    assert!(matches!(
        rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN),
        Err(InboundError::Malformed(_))
    ));
}

#[test]
fn rbm_duplicate_push_is_recognisable() {
    // Google redelivers a push it thinks failed; both copies verify to the
    // same reply id, which is what the inbound handler de-duplicates on.
    let (body, sig) = rbm_push(CHIP_REPLY);
    let first = rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN).unwrap();
    let again = rbm::verify_push(Some(&sig), &body, CLIENT_TOKEN).unwrap();
    assert_eq!(first, again);
}

// ---------------------------------------------------------------------------
// Twilio: sending.
// ---------------------------------------------------------------------------

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-0123456789abcd";

fn twilio_settings(base: &str, from: Sender) -> TwilioSettings {
    TwilioSettings {
        base_url: base.into(),
        account_sid: ACCOUNT.into(),
        auth_token: Secret::new(AUTH_TOKEN),
        from,
        status_callback: None,
        timeout: Duration::from_secs(5),
    }
}

fn sms(id: &str) -> OutboundMessage {
    OutboundMessage {
        text: "Acme would like to call you. Reply 1 now, 2 in 1 hour, 3 never.".into(),
        choices: vec![],
        ..prompt(id)
    }
}

#[tokio::test]
async fn twilio_sends_the_documented_form_with_basic_auth() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let client = TwilioClient::new(twilio_settings(
            &base,
            Sender::Number(E164::from_e164("+33140000000").unwrap()),
        ))
        .unwrap();
        fake.answer(
            201,
            &json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}).to_string(),
        );

        let outcome = client.send(&sms("m-1")).await.unwrap();
        assert_eq!(
            outcome,
            SendOutcome::Accepted {
                provider_message_id: "SM0123456789abcdef0123456789abcdef".into()
            }
        );
        let sends = fake.sends();
        assert_eq!(sends.len(), 1);
        let send = &sends[0];
        assert_eq!(send.method, Method::POST);
        assert_eq!(
            send.path,
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
        );
        assert_eq!(
            send.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{ACCOUNT}:{AUTH_TOKEN}"))
        );
        assert_eq!(send.header("authorization"), Some(basic.as_str()));
        assert_eq!(
            std::str::from_utf8(&send.body).unwrap(),
            "To=%2B33612345678&From=%2B33140000000\
             &Body=Acme+would+like+to+call+you.+Reply+1+now%2C+2+in+1+hour%2C+3+never.\
             &ValidityPeriod=3600"
        );
    })
    .await;
}

#[tokio::test]
async fn twilio_messaging_service_and_status_callback() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let mut settings = twilio_settings(
            &base,
            Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into()),
        );
        settings.status_callback = Some("https://slotgate.example/webhooks/twilio".into());
        let client = TwilioClient::new(settings).unwrap();
        fake.answer(201, r#"{"sid":"SM1"}"#);
        client.send(&sms("m-1")).await.unwrap();
        let form = fake.sends()[0].form();
        let names: Vec<&str> = form.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "To",
                "MessagingServiceSid",
                "Body",
                "StatusCallback",
                "ValidityPeriod"
            ]
        );
        assert_eq!(form[1].1, "MG0123456789abcdef0123456789abcdef");
        assert_eq!(form[3].1, "https://slotgate.example/webhooks/twilio");
    })
    .await;
}

#[tokio::test]
async fn twilio_errors_map_to_retry_policy() {
    bounded(async {
        let (base, fake) = start_fake().await;
        let client = TwilioClient::new(twilio_settings(
            &base,
            Sender::Number(E164::from_e164("+33140000000").unwrap()),
        ))
        .unwrap();
        let error = |code: u32, status: u16| {
            json!({"code": code, "message": "scripted", "more_info": "https://www.twilio.com/docs/errors", "status": status})
                .to_string()
        };
        fake.answer(500, "upstream failure");
        assert!(matches!(
            client.send(&sms("m")).await,
            Err(SendError::Transient(_))
        ));
        fake.answer(429, &error(20429, 429));
        assert!(matches!(
            client.send(&sms("m")).await,
            Err(SendError::Transient(_))
        ));
        fake.answer(401, &error(20003, 401));
        assert!(matches!(
            client.send(&sms("m")).await,
            Err(SendError::Auth(_))
        ));
        fake.answer(400, &error(21211, 400));
        let got = client.send(&sms("m")).await;
        assert!(
            matches!(&got, Err(SendError::Rejected(t)) if t.contains("21211")),
            "{got:?}"
        );
        fake.answer(400, &error(21614, 400));
        assert_eq!(client.send(&sms("m")).await, Ok(SendOutcome::Unreachable));
        // Accepted, but no sid to track it by: not retried (it was sent).
        fake.answer(201, "<html>");
        assert!(matches!(
            client.send(&sms("m")).await,
            Err(SendError::Rejected(_))
        ));
        // Too slow.
        *fake.delay.lock().unwrap() = Some(Duration::from_secs(3));
        let mut slow = twilio_settings(&base, Sender::MessagingService("MG1".into()));
        slow.timeout = Duration::from_millis(300);
        let slow = TwilioClient::new(slow).unwrap();
        assert!(matches!(
            slow.send(&sms("m")).await,
            Err(SendError::Transient(_))
        ));
    })
    .await;
}

#[test]
fn twilio_settings_never_show_the_token() {
    let settings = twilio_settings(
        "https://api.twilio.com",
        Sender::MessagingService("MG1".into()),
    );
    let text = format!("{settings:?}");
    assert!(text.contains(ACCOUNT));
    assert!(!text.contains(AUTH_TOKEN), "{text}");
    let client = TwilioClient::new(settings).unwrap();
    assert!(!format!("{client:?}").contains(AUTH_TOKEN));
}

// ---------------------------------------------------------------------------
// Twilio: webhooks.
// ---------------------------------------------------------------------------

const HOOK: &str = "https://slotgate.example/webhooks/twilio/sms";

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn inbound_sms() -> Vec<(String, String)> {
    params(&[
        ("ToCountry", "FR"),
        ("SmsMessageSid", "SM9f0e0d0c0b0a09080706050403020100"),
        ("NumMedia", "0"),
        ("SmsSid", "SM9f0e0d0c0b0a09080706050403020100"),
        ("SmsStatus", "received"),
        ("Body", "2 "),
        ("To", "+33140000000"),
        ("NumSegments", "1"),
        ("MessageSid", "SM9f0e0d0c0b0a09080706050403020100"),
        ("AccountSid", ACCOUNT),
        ("From", ANN),
        ("ApiVersion", "2010-04-01"),
    ])
}

#[test]
fn twilio_inbound_sms_verifies_and_reads() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let form = inbound_sms();
    let sig = twilio::signature(HOOK, &form, AUTH_TOKEN);
    let events = twilio::verify_webhook(HOOK, &form, Some(&sig), AUTH_TOKEN, now).unwrap();
    assert_eq!(
        events,
        vec![InboundEvent::Reply {
            from: E164::from_e164(ANN).unwrap(),
            provider_message_id: "SM9f0e0d0c0b0a09080706050403020100".into(),
            postback: None,
            text: Some("2 ".into()),
            at: now,
        }]
    );
    // A redelivery verifies to the same reply id.
    let again = twilio::verify_webhook(HOOK, &form, Some(&sig), AUTH_TOKEN, now).unwrap();
    assert_eq!(events, again);
}

#[test]
fn twilio_status_callbacks() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let delivered = params(&[
        ("SmsSid", "SM1"),
        ("SmsStatus", "delivered"),
        ("MessageStatus", "delivered"),
        ("To", ANN),
        ("MessageSid", "SM1"),
        ("AccountSid", ACCOUNT),
        ("From", "+33140000000"),
        ("ApiVersion", "2010-04-01"),
    ]);
    let sig = twilio::signature(HOOK, &delivered, AUTH_TOKEN);
    assert_eq!(
        twilio::verify_webhook(HOOK, &delivered, Some(&sig), AUTH_TOKEN, now),
        Ok(vec![InboundEvent::Delivered {
            provider_message_id: "SM1".into(),
            at: now
        }])
    );
    let sent = params(&[("MessageSid", "SM1"), ("MessageStatus", "sent")]);
    let sig = twilio::signature(HOOK, &sent, AUTH_TOKEN);
    assert_eq!(
        twilio::verify_webhook(HOOK, &sent, Some(&sig), AUTH_TOKEN, now),
        Ok(vec![])
    );
}

#[test]
fn twilio_signature_failures() {
    let now = Utc::now();
    let form = inbound_sms();
    let sig = twilio::signature(HOOK, &form, AUTH_TOKEN);
    let verify = |url: &str, form: &[(String, String)], sig: Option<&str>, token: &str| {
        twilio::verify_webhook(url, form, sig, token, now)
    };
    assert_eq!(
        verify(HOOK, &form, None, AUTH_TOKEN),
        Err(InboundError::MissingSignature)
    );
    assert_eq!(
        verify(HOOK, &form, Some("bm90IGl0"), AUTH_TOKEN),
        Err(InboundError::BadSignature)
    );
    assert_eq!(
        verify(HOOK, &form, Some("%%%"), AUTH_TOKEN),
        Err(InboundError::BadSignature)
    );
    // Another account's token.
    assert_eq!(
        verify(HOOK, &form, Some(&sig), "some-other-auth-token"),
        Err(InboundError::BadSignature)
    );
    // Whitespace changed in one value.
    let mut respaced = form.clone();
    for (name, value) in respaced.iter_mut() {
        if name == "Body" {
            *value = "2".into();
        }
    }
    assert_eq!(
        verify(HOOK, &respaced, Some(&sig), AUTH_TOKEN),
        Err(InboundError::BadSignature)
    );
    // The URL as a proxy rewrote it.
    assert_eq!(
        verify(
            "http://slotgate.example/webhooks/twilio/sms",
            &form,
            Some(&sig),
            AUTH_TOKEN
        ),
        Err(InboundError::BadSignature)
    );
    // An extra parameter.
    let mut extra = form.clone();
    extra.push(("Injected".into(), "1".into()));
    assert_eq!(
        verify(HOOK, &extra, Some(&sig), AUTH_TOKEN),
        Err(InboundError::BadSignature)
    );
}

#[test]
fn twilio_signed_but_malformed() {
    let now = Utc::now();
    for form in [
        params(&[("From", ANN), ("Body", "1")]),
        params(&[("MessageSid", "SM1"), ("From", ANN)]),
        params(&[("MessageSid", "SM1"), ("From", "ACME"), ("Body", "1")]),
    ] {
        let sig = twilio::signature(HOOK, &form, AUTH_TOKEN);
        assert!(
            matches!(
                twilio::verify_webhook(HOOK, &form, Some(&sig), AUTH_TOKEN, now),
                Err(InboundError::Malformed(_))
            ),
            "{form:?}"
        );
    }
}
