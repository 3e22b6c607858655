//! The gate across two slotgate nodes sharing one PostgreSQL schema: SIPp
//! plays the PBX and the trunk of node A, which holds the INVITE and asks
//! the callee by SMS through a fake Twilio on loopback; the person's
//! signed reply (the option "Call me now") is posted to node B's Twilio
//! webhook, node B stores the answer, and node A — woken through
//! PostgreSQL's LISTEN/NOTIFY — forwards the held INVITE to its trunk.
//! Checks that the PBX hears 180 and no 200 while the INVITE is held, that
//! both SIPp sides then complete one call, that node B's trunk received
//! nothing, that the prompt went out once, and what the store says
//! afterwards: the call record (200, `held-now`, the consent request), the
//! request (answered "now") and the hold (`forwarded`).
//!
//! Needs SIPp (Debian's `sip-tester`) and PostgreSQL (see
//! `SLOTGATE_TEST_POSTGRES_URL` in tests/common/engines.rs); fails without
//! either.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use serde_json::json;

use slotgate::consent::{Answer, RequestState, E164};
use slotgate::rcs::twilio;
use slotgate::store::Store;

use common::engines::PgSchema;
use common::sipp::{
    call_counts, free_ports, port_taken, read_or_note, require_sipp, sipp_args, spawn_sipp, tail,
    Transport,
};
use common::{hours_including_now, Slotgate};

/// A Paris number: its zone is known exactly.
const CALLEE: &str = "+33142685302";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-0123456789abcdef";
/// The account's number the prompts come from.
const SENDER: &str = "+14155550100";
/// The public URL Twilio is configured to post inbound SMS to; the test
/// posts to node B's loopback address, as a load balancer would forward it.
const SMS_HOOK: &str = "https://slotgate.example/webhooks/sms";

const STEP_LIMIT: Duration = Duration::from_secs(10);
const PBX_LIMIT: Duration = Duration::from_secs(40);
const TRUNK_LIMIT: Duration = Duration::from_secs(15);

/// One SMS as the fake Twilio received it.
#[derive(Debug, Clone)]
struct SentSms {
    to: String,
    from: String,
    body: String,
}

/// Twilio's Messages API, as far as sending needs it: basic auth with the
/// account's SID and token, a form, `201 Created` with the message's JSON.
#[derive(Clone)]
struct FakeTwilio {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<SentSms>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl FakeTwilio {
    async fn start() -> FakeTwilio {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Twilio");
        let twilio = FakeTwilio {
            addr: listener.local_addr().expect("address"),
            sent: Arc::default(),
            refused: Arc::default(),
        };
        let router = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create_message),
            )
            .with_state(twilio.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        twilio
    }

    fn sent(&self) -> Vec<SentSms> {
        self.sent.lock().expect("lock").clone()
    }

    fn report(&self) -> String {
        format!(
            "sent: {:#?}\nrefused: {:#?}",
            self.sent(),
            self.refused.lock().expect("lock")
        )
    }
}

async fn create_message(
    State(twilio): State<FakeTwilio>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    if sid != ACCOUNT_SID || !authorized {
        twilio
            .refused
            .lock()
            .expect("lock")
            .push(format!("account {sid}, authorized: {authorized}"));
        let error = json!({
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401
        });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            twilio
                .refused
                .lock()
                .expect("lock")
                .push(format!("not a form: {e}"));
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let sms = SentSms {
        to: field("To"),
        from: field("From"),
        body: field("Body"),
    };
    let message_sid = format!("SM{:032x}", rand::random::<u128>());
    let now = Utc::now().to_rfc2822();
    let created = json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": sms.body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": sms.from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": message_sid,
        "status": "queued",
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media.json")
        },
        "to": sms.to,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}.json")
    });
    twilio.sent.lock().expect("lock").push(sms);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

/// One node's configuration; the store and the API address are given
/// when it starts.
fn node_config(enterprise: &str, trunk_port: u16, twilio: SocketAddr) -> String {
    let hours = hours_including_now();
    format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 5\n\
         [log]\nlevel = \"slotgate=debug,info\"\n\
         [channels]\nprimary = \"sms\"\nfallback = \"none\"\n\
         [channels.sms]\nbase_url = \"http://{twilio}\"\naccount_sid = \"{ACCOUNT_SID}\"\n\
         auth_token = \"{AUTH_TOKEN}\"\nfrom = \"{SENDER}\"\nwebhook_url = \"{SMS_HOOK}\"\n\
         timeout_ms = 5000\n\
         [prompts]\ncalling_hours = \"{hours}\"\n\
         [gate]\ndefault_enterprise = \"{enterprise}\"\ncalling_hours = \"{hours}\"\n\
         hold_window_secs = 20\n"
    )
}

/// Everything worth reading when the test fails.
fn report(a: &Slotgate, b: &Slotgate, run_dir: &Path, twilio: &FakeTwilio) -> String {
    let file = |name: &str| read_or_note(&run_dir.join(name));
    format!(
        "=== node A log ===\n{}\n=== node B log ===\n{}\n=== fake Twilio ===\n{}\n\
         === pbx screen ===\n{}\n=== pbx messages ===\n{}\n=== trunk screen ===\n{}",
        tail(&a.log(), 80),
        tail(&b.log(), 60),
        twilio.report(),
        tail(&file("pbx_screen.txt"), 30),
        tail(&file("pbx_messages.log"), 80),
        tail(&file("trunk_screen.txt"), 30),
    )
}

/// Calls `check` until it gives a value or `limit` passes.
fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number an SMS prompt ("Reply 1 Call me now, 2 In 15 minutes, …")
/// gives the option labelled `label`.
fn option_number(prompt: &str, label: &str) -> Option<String> {
    let before = &prompt[..prompt.find(&format!(" {label}"))?];
    let digits: String = before
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// An inbound SMS from `from` as Twilio posts it, and its signature.
fn inbound_sms(from: &str, body: &str) -> (Vec<(String, String)>, String) {
    let sid = format!("SM{:032x}", rand::random::<u128>());
    let params: Vec<(String, String)> = [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("SmsSid", sid.as_str()),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", SENDER),
        ("NumSegments", "1"),
        ("MessageSid", sid.as_str()),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("FromCountry", "FR"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let signature = twilio::signature(SMS_HOOK, &params, AUTH_TOKEN);
    (params, signature)
}

#[test]
fn an_invite_held_on_one_node_is_forwarded_when_the_answer_reaches_the_other() {
    require_sipp();
    let started = Instant::now();
    // Declared first, dropped last: after both nodes are gone.
    let schema = PgSchema::create();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let enterprise = rt.block_on(common::seed::trusted_with_subscriber(&schema.url, CALLEE));
    let twilio = rt.block_on(FakeTwilio::start());
    let store = rt.block_on(Store::connect(&schema.url)).expect("store");

    let [sip_a, sip_b, api_a, api_b, trunk_a, trunk_b, pbx_port] = free_ports::<7>();
    // Node B's trunk must hear nothing: the call is node A's.
    let trunk_b_socket = UdpSocket::bind(("127.0.0.1", trunk_b)).expect("node B's trunk");
    let a = Slotgate::start_on_store(
        sip_a,
        &schema.url,
        SocketAddr::from(([127, 0, 0, 1], api_a)),
        &node_config(&enterprise, trunk_a, twilio.addr),
    );
    let b = Slotgate::start_on_store(
        sip_b,
        &schema.url,
        SocketAddr::from(([127, 0, 0, 1], api_b)),
        &node_config(&enterprise, trunk_b, twilio.addr),
    );
    let run_dir = tempfile::tempdir().expect("run dir");
    let dir = run_dir.path();
    let fail = |what: &str| -> ! {
        panic!("{what}\n{}", report(&a, &b, dir, &twilio));
    };

    let trunk_args = sipp_args(
        "trunk",
        "trunk_answer.xml",
        "127.0.0.1",
        trunk_a,
        Transport::Udp,
        dir,
        1,
        None,
    );
    let mut trunk = spawn_sipp("trunk", trunk_args, dir);
    if poll(STEP_LIMIT, || {
        port_taken(trunk_a, Transport::Udp).then_some(())
    })
    .is_none()
    {
        fail("the trunk's SIPp did not bind its port");
    }
    let mut pbx_args = sipp_args(
        "pbx",
        "pbx_call_bye.xml",
        "127.0.0.1",
        pbx_port,
        Transport::Udp,
        dir,
        1,
        Some(CALLEE),
    );
    pbx_args.insert(0, a.addr().to_string());
    let mut pbx = spawn_sipp("pbx", pbx_args, dir);

    // Node A holds the INVITE; one node's dispatcher sends the prompt.
    let Some(prompt) = poll(STEP_LIMIT, || {
        twilio.sent().into_iter().find(|sms| sms.to == CALLEE)
    }) else {
        fail("no prompt reached the fake Twilio");
    };
    if prompt.from != SENDER {
        fail(&format!(
            "the prompt is not from the account's number: {prompt:#?}"
        ));
    }
    // A reply answers a prompt once its send is recorded.
    let number = E164::parse(CALLEE, None).expect("number");
    let Some(request) = poll(STEP_LIMIT, || {
        rt.block_on(store.latest_request_to(&number))
            .expect("read the request")
            .filter(|r| matches!(r.state, RequestState::Sent | RequestState::Delivered))
    }) else {
        fail("the prompt's request was not recorded as sent");
    };
    let Some(hold_id) = request.hold_id.clone() else {
        fail(&format!("the request is not a held INVITE's: {request:#?}"));
    };
    match rt.block_on(store.hold(&hold_id)).expect("read the hold") {
        Some(hold) if hold.state == "held" && hold.request_id == request.id => {}
        other => fail(&format!("the INVITE is not held: {other:?}")),
    }

    // Meanwhile the PBX hears ringing.
    if poll(STEP_LIMIT, || {
        read_or_note(&pbx.message_file())
            .contains("SIP/2.0 180 ")
            .then_some(())
    })
    .is_none()
    {
        fail("the PBX heard no 180 while the INVITE was held");
    }
    if let Some(ok) = read_or_note(&pbx.message_file()).find("SIP/2.0 200 ") {
        fail(&format!(
            "the PBX got a 200 before the person answered (at {ok})"
        ));
    }

    // The person replies with the number of "Call me now" (node B reads
    // it against the choices stored with the prompt); Twilio posts it to
    // node B.
    let Some(now_choice) = option_number(&prompt.body, "Call me now") else {
        fail(&format!(
            "no \"Call me now\" option in the prompt {prompt:#?}"
        ));
    };
    let (params, signature) = inbound_sms(CALLEE, &now_choice);
    let posted = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{api_b}/webhooks/sms"))
            .header(twilio::SIGNATURE_HEADER, &signature)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(serde_urlencoded::to_string(&params).expect("form"))
            .timeout(STEP_LIMIT)
            .send()
            .await
    });
    match posted {
        Ok(response) if response.status() == reqwest::StatusCode::OK => {}
        Ok(response) => fail(&format!(
            "node B answered the webhook {}",
            response.status()
        )),
        Err(e) => fail(&format!("cannot post the webhook to node B: {e}")),
    }

    // Node A forwards the call; both SIPp sides complete it.
    match pbx.wait(PBX_LIMIT) {
        Some(s) if s.success() => {}
        other => fail(&format!("the PBX's SIPp ended with {other:?}")),
    }
    match trunk.wait(TRUNK_LIMIT) {
        Some(s) if s.success() => {}
        other => fail(&format!("the trunk's SIPp ended with {other:?}")),
    }
    for side in [&pbx, &trunk] {
        match call_counts(&side.stat_file()) {
            Ok((1, 0)) => {}
            other => fail(&format!(
                "{} call counts {other:?}, expected 1 successful",
                side.role
            )),
        }
    }
    let messages = read_or_note(&pbx.message_file());
    match (messages.find("SIP/2.0 180 "), messages.find("SIP/2.0 200 ")) {
        (Some(ringing), Some(ok)) if ringing < ok => {}
        other => fail(&format!(
            "the PBX did not hear 180 before 200 (positions {other:?})"
        )),
    }
    trunk_b_socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    if let Ok((n, _)) = trunk_b_socket.recv_from(&mut buf) {
        fail(&format!(
            "node B's trunk received:\n{}",
            String::from_utf8_lossy(&buf[..n])
        ));
    }

    // Both nodes stop cleanly, every call record written.
    let (mut a, mut b) = (a, b);
    let stopped = [
        ("A", a.stop(Duration::from_secs(15))),
        ("B", b.stop(Duration::from_secs(15))),
    ];
    let fail = |what: &str| -> ! {
        panic!("{what}\n{}", report(&a, &b, dir, &twilio));
    };
    for (name, status) in stopped {
        match status {
            Some(s) if s.success() => {}
            other => fail(&format!("node {name} exited with {other:?}")),
        }
    }

    let (rows, hold, request) = rt.block_on(async {
        let rows = store.recent_calls(10).await.expect("calls");
        let hold = store.hold(&hold_id).await.expect("hold");
        let request = store.consent_request(&request.id).await.expect("request");
        (rows, hold, request)
    });
    let [row] = rows.as_slice() else {
        fail(&format!("one call record expected: {rows:#?}"));
    };
    if row.final_status != 200
        || row.gate_decision.as_deref() != Some("held-now")
        || row.b_call_id.is_none()
    {
        fail(&format!(
            "the call record is not a held call answered now and forwarded: {row:#?}"
        ));
    }
    let Some(request) = request else {
        fail("the consent request is gone");
    };
    if row.consent_request_id.as_deref() != Some(request.id.as_str()) {
        fail(&format!(
            "the call was not held for the request the reply answered: {row:#?}\n{request:#?}"
        ));
    }
    if request.state != RequestState::Answered(Answer::Now) {
        fail(&format!("the request is not answered now: {request:#?}"));
    }
    if hold.as_ref().map(|h| h.state.as_str()) != Some("forwarded") {
        fail(&format!("the hold did not end forwarded: {hold:?}"));
    }
    let prompts = twilio
        .sent()
        .into_iter()
        .filter(|sms| sms.body == prompt.body)
        .count();
    if prompts != 1 {
        fail("the prompt did not go out exactly once");
    }
    rt.block_on(store.close());
    eprintln!("two nodes, one held call: {:?}", started.elapsed());
}
