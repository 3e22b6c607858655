//! The gate end to end: SIPp plays the PBX (and the trunk when a call may
//! go through), the built slotgate holds each INVITE on the callee's
//! consent, and the built-in simulator answers the prompt as configured.
//! One test per branch of the gate: consented → forwarded; held → "now" →
//! forwarded; held → later → 480 with Retry-After and the callback stored;
//! declined → 603; no reply → reject (480) or pass (forwarded); CANCEL
//! while held → 487; outside calling hours → 480; untrusted enterprise →
//! 403; do-not-call → 603. Each checks what the PBX received, that the
//! trunk saw nothing when the call must not go out, and the call record's
//! gate decision.
//!
//! SIPp is Debian's `sip-tester` package: these tests fail without it.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use slotgate::consent::{
    Channel, ConsentStatus, Evidence, NewConsent, Scope, TrustStatus, Window, E164,
};
use slotgate::store::Store;

use common::seed::{block_on, enterprise, subscriber};
use common::sipp::{
    call_counts, free_ports, port_taken, read_or_note, require_sipp, sipp_args, spawn_sipp, tail,
    Sipp, Transport,
};
use common::{hours_including_now, Slotgate};

/// Paris numbers: their zone is known exactly.
const CONSENTED: &str = "+33142685301";
const ASKED: &str = "+33142685302";
const BARRED: &str = "+33142685303";
const ZONE: chrono_tz::Tz = chrono_tz::Europe::Paris;

const PBX_LIMIT: Duration = Duration::from_secs(40);
const TRUNK_LIMIT: Duration = Duration::from_secs(15);

struct World {
    trusted: String,
    suspended: String,
}

/// A database with a trusted and a suspended enterprise, three subscribed
/// people, a consent covering now for one and a do-not-call entry for
/// another.
fn seed(dir: &std::path::Path) -> World {
    let url = Slotgate::db_in(dir);
    let (trusted, suspended) = block_on(async {
        let store = Store::connect(&url).await.expect("open the store");
        store.migrate().await.expect("migrate");
        let now = Utc::now();
        let trusted = enterprise(&store, "Paris Energie", TrustStatus::Trusted).await;
        let suspended = enterprise(&store, "Suspendu SA", TrustStatus::Suspended).await;
        for number in [CONSENTED, ASKED, BARRED] {
            let n = E164::parse(number, None).expect("number");
            let person_id = subscriber(&store, number, &[&trusted, &suspended]).await;
            if number == CONSENTED {
                store
                    .record_consent(
                        &NewConsent {
                            person_id: person_id.clone(),
                            enterprise_id: trusted.clone(),
                            number: n.clone(),
                            scope: Scope::Campaign("default".into()),
                            status: ConsentStatus::Granted,
                            window: Some(
                                Window::new(
                                    now - chrono::Duration::hours(1),
                                    now + chrono::Duration::hours(1),
                                    "Europe/Paris",
                                )
                                .expect("window"),
                            ),
                            expires_at: Some(now + chrono::Duration::hours(2)),
                            channel: Channel::Simulator,
                            evidence: Evidence::default(),
                        },
                        now,
                    )
                    .await
                    .expect("consent");
            }
            if number == BARRED {
                store
                    .add_do_not_call(Some(&trusted), &n, "test", now)
                    .await
                    .expect("do-not-call");
            }
        }
        store.close().await;
        (trusted, suspended)
    });
    World { trusted, suspended }
}

/// One-hour calling hours that exclude now in Paris.
fn hours_excluding_now() -> &'static str {
    if Utc::now().with_timezone(&ZONE).hour() < 12 {
        "20:00-21:00"
    } else {
        "03:00-04:00"
    }
}

struct Case {
    name: &'static str,
    callee: &'static str,
    enterprise: Enterprise,
    /// Lines added to the `[gate]` section.
    gate: String,
    /// `channels.simulator.auto_reply`.
    auto_reply: &'static str,
    pbx_scenario: &'static str,
    /// `None`: the trunk is a bare socket that must receive nothing.
    trunk_scenario: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Enterprise {
    Trusted,
    Suspended,
}

struct Outcome {
    slotgate: Slotgate,
    pbx: Sipp,
    _trunk: Option<Sipp>,
    _run_dir: tempfile::TempDir,
}

impl Outcome {
    fn pbx_messages(&self) -> String {
        read_or_note(&self.pbx.message_file())
    }

    fn fail(&self, name: &str, what: &str) -> ! {
        panic!(
            "[{name}] {what}\n=== slotgate log ===\n{}\n=== pbx screen ===\n{}\n=== pbx messages ===\n{}",
            tail(&self.slotgate.log(), 80),
            tail(&read_or_note(&self.pbx.screen_file()), 30),
            tail(&self.pbx_messages(), 80)
        )
    }
}

fn run(case: Case) -> (Outcome, World) {
    require_sipp();
    let slotgate_dir = tempfile::tempdir().expect("tempdir");
    let world = seed(slotgate_dir.path());
    let [sg_port, trunk_port, pbx_port] = free_ports::<3>();
    let enterprise = match case.enterprise {
        Enterprise::Trusted => &world.trusted,
        Enterprise::Suspended => &world.suspended,
    };
    let prompt_hours = hours_including_now();
    let config = format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 5\n\
         [prompts]\ncalling_hours = \"{prompt_hours}\"\n\
         [channels.simulator]\nauto_reply = \"{}\"\nauto_reply_delay_ms = 300\n\
         [log]\nlevel = \"slotgate=debug,info\"\n\
         [gate]\ndefault_enterprise = \"{enterprise}\"\n{}\n",
        case.auto_reply, case.gate
    );
    let run_dir = tempfile::tempdir().expect("run dir");
    // Slotgate runs in the directory of the seeded database.
    let slotgate = Slotgate::start_in(slotgate_dir, sg_port, "", &config);
    let dir = run_dir.path().to_path_buf();
    let mut trunk = None;
    let mut silent = None;
    match case.trunk_scenario {
        Some(file) => {
            let args = sipp_args(
                "trunk",
                file,
                "127.0.0.1",
                trunk_port,
                Transport::Udp,
                &dir,
                1,
                None,
            );
            trunk = Some(spawn_sipp("trunk", args, &dir));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !port_taken(trunk_port, Transport::Udp) {
                assert!(
                    Instant::now() < deadline,
                    "[{}] trunk sipp did not bind",
                    case.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => silent = Some(UdpSocket::bind(("127.0.0.1", trunk_port)).expect("silent trunk")),
    }
    let mut args = sipp_args(
        "pbx",
        case.pbx_scenario,
        "127.0.0.1",
        pbx_port,
        Transport::Udp,
        &dir,
        1,
        Some(case.callee),
    );
    args.insert(0, slotgate.addr().to_string());
    let mut pbx = spawn_sipp("pbx", args, &dir);
    let pbx_status = pbx.wait(PBX_LIMIT);
    let trunk_status = trunk.as_mut().map(|t| t.wait(TRUNK_LIMIT));
    let outcome = Outcome {
        slotgate,
        pbx,
        _trunk: trunk,
        _run_dir: run_dir,
    };
    match pbx_status {
        Some(s) if s.success() => {}
        other => outcome.fail(case.name, &format!("PBX sipp ended with {other:?}")),
    }
    if let Some(status) = trunk_status {
        match status {
            Some(s) if s.success() => {}
            other => outcome.fail(case.name, &format!("trunk sipp ended with {other:?}")),
        }
    }
    match call_counts(&outcome.pbx.stat_file()) {
        Ok((1, 0)) => {}
        other => outcome.fail(
            case.name,
            &format!("PBX call counts {other:?}, expected 1 ok"),
        ),
    }
    if let Some(sock) = silent {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                // Keep-alive pings are off; anything else is a leak.
                outcome.fail(case.name, &format!("the trunk received:\n{text}"));
            }
        }
    }
    (outcome, world)
}

/// The final response the PBX received (the status line and its headers).
fn final_response(messages: &str, status: u16) -> Option<String> {
    let marker = format!("SIP/2.0 {status} ");
    let start = messages.find(&marker)?;
    let rest = &messages[start..];
    let end = rest
        .find("\n\n")
        .or_else(|| rest.find("\r\n\r\n"))
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Stops slotgate and returns its call records.
fn records(outcome: &mut Outcome) -> Vec<slotgate::store::CallRecord> {
    match outcome.slotgate.stop(Duration::from_secs(15)) {
        Some(s) if s.success() => {}
        other => outcome.fail("stop", &format!("slotgate exit {other:?}")),
    }
    block_on(async {
        let store = Store::connect(&db_url(outcome)).await.expect("store");
        let rows = store.recent_calls(10).await.expect("calls");
        store.close().await;
        rows
    })
}

fn db_url(outcome: &Outcome) -> String {
    format!("sqlite://{}", outcome.slotgate.db_path.display())
}

fn gate(lines: &[&str]) -> String {
    let mut g = format!("calling_hours = \"{}\"\n", hours_including_now());
    for l in lines {
        g.push_str(l);
        g.push('\n');
    }
    g
}

/// Runs a case the gate must refuse with `status`; returns the response
/// the PBX received and the single call record.
fn refused(
    case: Case,
    status: u16,
    decision: &str,
) -> (String, slotgate::store::CallRecord, World, Outcome) {
    let name = case.name;
    let (mut outcome, world) = run(case);
    let messages = outcome.pbx_messages();
    let Some(response) = final_response(&messages, status) else {
        outcome.fail(name, &format!("the PBX did not receive {status}"));
    };
    let rows = records(&mut outcome);
    assert_eq!(rows.len(), 1, "[{name}] one call record: {rows:#?}");
    let row = rows.into_iter().next().expect("one row");
    assert_eq!(row.final_status, i32::from(status), "[{name}] {row:#?}");
    assert_eq!(
        row.gate_decision.as_deref(),
        Some(decision),
        "[{name}] {row:#?}"
    );
    assert!(
        row.b_call_id.is_none(),
        "[{name}] nothing went to the trunk"
    );
    (response, row, world, outcome)
}

/// Runs a case the gate must let through; returns the call record.
fn forwarded(case: Case, decision: &str) -> slotgate::store::CallRecord {
    let name = case.name;
    let (mut outcome, _) = run(case);
    let rows = records(&mut outcome);
    assert_eq!(rows.len(), 1, "[{name}] one call record: {rows:#?}");
    let row = rows.into_iter().next().expect("one row");
    assert_eq!(row.final_status, 200, "[{name}] {row:#?}");
    assert!(row.b_call_id.is_some(), "[{name}] the trunk leg exists");
    assert_eq!(
        row.gate_decision.as_deref(),
        Some(decision),
        "[{name}] {row:#?}"
    );
    row
}

#[test]
fn a_consent_covering_now_forwards_the_call_at_once() {
    let row = forwarded(
        Case {
            name: "consented",
            callee: CONSENTED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "decline",
            pbx_scenario: "pbx_call_bye.xml",
            trunk_scenario: Some("trunk_answer.xml"),
        },
        "consented",
    );
    assert!(row.consent_request_id.is_none(), "nobody was asked");
}

#[test]
fn a_held_call_answered_now_is_forwarded() {
    let row = forwarded(
        Case {
            name: "held, now",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "now",
            pbx_scenario: "pbx_call_bye.xml",
            trunk_scenario: Some("trunk_answer.xml"),
        },
        "held-now",
    );
    assert!(row.consent_request_id.is_some(), "the request is noted");
}

#[test]
fn a_held_call_answered_later_gets_480_and_a_scheduled_callback() {
    let before = Utc::now();
    let (response, row, world, outcome) = refused(
        Case {
            name: "held, later",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "after_15",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        480,
        "held-later",
    );
    let retry: u64 = header(&response, "Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in\n{response}"));
    assert!(
        (800..=905).contains(&retry),
        "about 15 minutes: {retry}\n{response}"
    );
    let reason = header(&response, "Reason").unwrap_or_else(|| panic!("Reason in\n{response}"));
    assert!(
        reason.starts_with("SIP;cause=480;text=\"scheduled 20"),
        "{reason}"
    );
    let callbacks = block_on(async {
        let store = Store::connect(&db_url(&outcome)).await.expect("store");
        let c = store.pending_callbacks(10).await.expect("callbacks");
        store.close().await;
        c
    });
    assert_eq!(callbacks.len(), 1, "{callbacks:#?}");
    let cb = &callbacks[0];
    assert_eq!(cb.callee, ASKED);
    assert_eq!(cb.enterprise_id, world.trusted);
    assert_eq!(cb.campaign, "default");
    assert_eq!(Some(&cb.request_id), row.consent_request_id.as_ref());
    assert!(cb.caller.starts_with("sip:4001@"), "{cb:#?}");
    assert!(cb.pbx_target.starts_with("sip:4001@127.0.0.1:"), "{cb:#?}");
    assert!(cb.consent_id.is_some(), "the consent is linked: {cb:#?}");
    let minutes = (cb.slot_start - before).num_minutes();
    assert!((13..=16).contains(&minutes), "slot in ~15 min: {cb:#?}");
    assert!(reason.contains(&cb.slot_start.format("%Y-%m-%dT%H:%M").to_string()));
}

#[test]
fn a_held_call_the_person_declines_gets_603() {
    let (response, ..) = refused(
        Case {
            name: "held, decline",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "decline",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        603,
        "held-declined",
    );
    assert_eq!(
        header(&response, "Reason"),
        Some("SIP;cause=603;text=\"Declined by callee\"")
    );
}

#[test]
fn no_reply_within_the_window_rejects_with_480_and_the_request_stays_open() {
    let (response, row, _, outcome) = refused(
        Case {
            name: "no reply, reject",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&["hold_window_secs = 2"]),
            auto_reply: "none",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        480,
        "no-reply-rejected",
    );
    assert!(header(&response, "Reason").is_some_and(|r| r.contains("no reply")));
    let request = row.consent_request_id.expect("request noted");
    let state = block_on(async {
        let store = Store::connect(&db_url(&outcome)).await.expect("store");
        let r = store.consent_request(&request).await.expect("read");
        let hold = store
            .hold(r.as_ref().and_then(|r| r.hold_id.as_deref()).unwrap_or(""))
            .await
            .expect("hold");
        store.close().await;
        (r.map(|r| r.state.name().to_string()), hold.map(|h| h.state))
    });
    assert!(
        matches!(state.0.as_deref(), Some("sent" | "delivered")),
        "the request stays open: {state:?}"
    );
    assert_eq!(state.1.as_deref(), Some("ended"), "the hold has ended");
}

#[test]
fn no_reply_within_the_window_passes_the_call_when_the_campaign_says_so() {
    forwarded(
        Case {
            name: "no reply, pass",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&["hold_window_secs = 3", "on_no_reply = \"pass\""]),
            auto_reply: "none",
            pbx_scenario: "pbx_call_bye.xml",
            trunk_scenario: Some("trunk_answer.xml"),
        },
        "no-reply-passed",
    );
}

#[test]
fn cancel_while_held_gets_487() {
    refused(
        Case {
            name: "cancel while held",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "none",
            pbx_scenario: "pbx_gate_cancel.xml",
            trunk_scenario: None,
        },
        487,
        "cancelled",
    );
}

#[test]
fn outside_calling_hours_gets_480_with_retry_after_the_next_window() {
    let (response, row, ..) = refused(
        Case {
            name: "outside hours",
            callee: ASKED,
            enterprise: Enterprise::Trusted,
            gate: format!("calling_hours = \"{}\"", hours_excluding_now()),
            auto_reply: "now",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        480,
        "outside-hours",
    );
    let retry: u64 = header(&response, "Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in\n{response}"));
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert!(row.consent_request_id.is_none(), "nobody was asked");
}

#[test]
fn an_enterprise_that_is_not_trusted_gets_403() {
    let (response, row, ..) = refused(
        Case {
            name: "untrusted",
            callee: ASKED,
            enterprise: Enterprise::Suspended,
            gate: gate(&[]),
            auto_reply: "now",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        403,
        "forbidden",
    );
    assert!(header(&response, "Reason").is_some_and(|r| r.starts_with("SIP;cause=403")));
    assert!(row.consent_request_id.is_none(), "nobody was asked");
}

#[test]
fn a_number_on_the_do_not_call_list_gets_603() {
    let (_, row, ..) = refused(
        Case {
            name: "do-not-call",
            callee: BARRED,
            enterprise: Enterprise::Trusted,
            gate: gate(&[]),
            auto_reply: "now",
            pbx_scenario: "pbx_gate_refused.xml",
            trunk_scenario: None,
        },
        603,
        "declined",
    );
    assert!(row.consent_request_id.is_none(), "nobody was asked");
}
