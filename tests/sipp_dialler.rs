//! The dialler end to end: scheduled callbacks in the store, the built
//! binary, SIPp on both sides (the agent's phone behind the PBX, the
//! customer behind the trunk) and RTP from the test's own sockets.
//!
//! A slot a few seconds ahead fires, both legs connect, audio crosses
//! slotgate both ways (µ-law from the agent arrives as A-law at the
//! customer, and back), a BYE from either side ends both, busy and
//! no-answer are recorded, and answering-machine detection tells a
//! recorded greeting from a recorded "hello?" played by SIPp.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::callbacks::{self, Slots};
use common::seed::{block_on, enterprise, subscriber};
use common::sipp::{
    free_ports, port_taken, read_or_note, require_sipp, sipp_args, spawn_sipp, tail, Sipp,
    Transport,
};
use common::{hours_including_now, Slotgate};
use slotgate::consent::TrustStatus;
use slotgate::media::g711;

const CALLEE: &str = "+33142685302";

/// A store with a trusted enterprise and the callee subscribed; the
/// enterprise's and the person's ids.
fn people(url: &str) -> (String, String) {
    block_on(async {
        let store = slotgate::store::Store::connect(url).await.expect("store");
        store.migrate().await.expect("migrate");
        let e = enterprise(&store, "Acme Energy", TrustStatus::Trusted).await;
        let p = subscriber(&store, CALLEE, &[&e]).await;
        store.close().await;
        (e, p)
    })
}

/// `count` callbacks for the callee in campaign "spring", the first due
/// `in_secs` from now, their agent leg toward the SIPp at `agent_port`.
fn seed_slots(
    url: &str,
    (enterprise, person): (&str, &str),
    agent_port: u16,
    in_secs: i64,
    spacing: TimeDelta,
    count: usize,
) {
    let target = format!("sip:4001@127.0.0.1:{agent_port}");
    block_on(callbacks::seed(
        url,
        &Slots {
            enterprise,
            person,
            callee: CALLEE,
            campaign: "spring",
            pbx_target: &target,
            first: Utc::now() + TimeDelta::seconds(in_secs),
            spacing,
        },
        count,
    ));
}

/// Campaign "spring" as an operator stores it through the API.
fn store_campaign(
    url: &str,
    enterprise: &str,
    settings: slotgate::pacing::CampaignSettings,
    strategy: Option<slotgate::pacing::Strategy>,
) {
    block_on(async {
        let store = slotgate::store::Store::connect(url).await.expect("store");
        let spec = slotgate::store::campaigns::CampaignSpec {
            settings,
            ..Default::default()
        };
        store
            .create_campaign(enterprise, "spring", &spec, strategy.as_ref(), Utc::now())
            .await
            .expect("campaign");
        store.close().await;
    });
}

/// The config of a dialling node: `mode` for every campaign, one agent.
fn config(trunk_port: u16, mode: &str, node: &str, extra: &str) -> String {
    let hours = hours_including_now();
    let media_base = 32_000 + (std::process::id() % 400) as u16 * 8;
    format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 5\n\
         [media]\nport_min = {media_base}\nport_max = {}\n\
         [log]\nlevel = \"slotgate=debug,info\"\n\
         [pacing]\nenabled = true\nnode = \"{node}\"\nlease_secs = 10\nclaim_every_ms = 100\n\
         agents = 1\n{extra}\n\
         [pacing.defaults]\nmode = \"{mode}\"\nagents_target = 1\nring_timeout_secs = 15\n\
         [pacing.defaults.calling_hours]\ndefault = \"{hours}\"\n",
        media_base + 7_999
    )
}

fn sipp_on(
    role: &'static str,
    scenario: &str,
    port: u16,
    work: &Path,
    calls: u32,
    keys: &[(&str, u16)],
) -> Sipp {
    let mut args = sipp_args(
        role,
        scenario,
        "127.0.0.1",
        port,
        Transport::Udp,
        work,
        calls,
        None,
    );
    args.extend(["-timeout".into(), "60s".into()]);
    for (key, value) in keys {
        args.extend(["-key".into(), key.to_string(), value.to_string()]);
    }
    let sipp = spawn_sipp(role, args, work);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_taken(port, Transport::Udp) {
        assert!(Instant::now() < deadline, "{role} sipp did not bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    sipp
}

/// The port slotgate offered a leg, once SIPp has logged it.
fn offered_port(sipp: &Sipp, label: &str, limit: Duration) -> Option<u16> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let log = read_or_note(&sipp.log_file());
        if let Some(port) = log
            .lines()
            .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim().to_string()))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        {
            return Some(port);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One RTP packet: version 2, no extension.
fn rtp(payload_type: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, payload_type, (seq >> 8) as u8, seq as u8];
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends from `from` to slotgate's `to` until `expected` (payload type,
/// payload) reaches `at`; what arrived last otherwise. Earlier packets
/// (the ringback the agent heard) are skipped.
fn relay_once(
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    pt: u8,
    payload: &[u8],
    expected: (u8, Vec<u8>),
) -> Option<(u8, Vec<u8>)> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seq = 1u16;
    let mut last = None;
    while Instant::now() < deadline {
        let _ = from.send_to(&rtp(pt, seq, 0x5157_0001 + u32::from(pt), payload), to);
        seq += 1;
        while let Ok((n, _)) = at.recv_from(&mut buf) {
            if n > 12 {
                let got = (buf[1] & 0x7f, buf[12..n].to_vec());
                if got == expected {
                    return Some(got);
                }
                last = Some(got);
            }
        }
    }
    last
}

fn finished(sipp: &mut Sipp, limit: Duration) -> bool {
    sipp.wait(limit).is_some_and(|s| s.success())
}

fn state_of(url: &str, callback: &str) -> (String, Vec<String>) {
    block_on(async {
        let status = callbacks::statuses(url)
            .await
            .into_iter()
            .find(|(id, _)| id == callback)
            .map(|(_, s)| s)
            .unwrap_or_default();
        let attempts = callbacks::attempts(url)
            .await
            .into_iter()
            .filter(|(_, cb, _)| cb == callback)
            .map(|(_, _, state)| state)
            .collect();
        (status, attempts)
    })
}

/// Waits until the callback's attempts end in `wanted`.
fn wait_for_attempts(
    url: &str,
    callback: &str,
    wanted: &[&str],
    limit: Duration,
) -> (String, Vec<String>) {
    let deadline = Instant::now() + limit;
    loop {
        let now = state_of(url, callback);
        if now.1 == wanted || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Setup {
    slotgate: Slotgate,
    url: String,
    _run: tempfile::TempDir,
}

/// One callback due `in_secs` from now toward the agent SIPp at
/// `agent_port`, and a node running `mode`.
fn one_slot(mode: &str, in_secs: i64, agent_port: u16, trunk_port: u16, sg_port: u16) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Slotgate::db_in(dir.path());
    let (e, p) = people(&url);
    seed_slots(
        &url,
        (&e, &p),
        agent_port,
        in_secs,
        TimeDelta::seconds(1),
        1,
    );
    let slotgate = Slotgate::start_in(dir, sg_port, "", &config(trunk_port, mode, "node-a", ""));
    let run = tempfile::tempdir().expect("run dir");
    // SIPp reads the recorded greetings relative to its working directory.
    let pcaps = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios/pcap");
    std::os::unix::fs::symlink(pcaps, run.path().join("pcap")).expect("pcap link");
    Setup {
        slotgate,
        url,
        _run: run,
    }
}

#[test]
fn a_slot_fires_both_legs_connect_and_audio_crosses_slotgate_both_ways() {
    require_sipp();
    let [sg_port, trunk_port, agent_port] = free_ports::<3>();
    let agent_rtp = UdpSocket::bind("127.0.0.1:0").expect("agent rtp");
    let trunk_rtp = UdpSocket::bind("127.0.0.1:0").expect("trunk rtp");
    for s in [&agent_rtp, &trunk_rtp] {
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
    }
    let keys_agent = [("agent_rtp", agent_rtp.local_addr().expect("addr").port())];
    let keys_trunk = [("trunk_rtp", trunk_rtp.local_addr().expect("addr").port())];
    let set = one_slot("progressive", 2, agent_port, trunk_port, sg_port);
    let work = set._run.path();
    let mut agent = sipp_on(
        "agent",
        "agent_answer.xml",
        agent_port,
        work,
        1,
        &keys_agent,
    );
    let mut customer = sipp_on(
        "trunk",
        "customer_answer_hangs_up.xml",
        trunk_port,
        work,
        1,
        &keys_trunk,
    );
    let (agent_messages, customer_messages) = (agent.message_file(), customer.message_file());
    let explain = |what: &str| {
        format!(
            "{what}\n=== slotgate ===\n{}\n=== agent ===\n{}\n=== customer ===\n{}",
            tail(&set.slotgate.log(), 80),
            tail(&read_or_note(&agent_messages), 60),
            tail(&read_or_note(&customer_messages), 60)
        )
    };
    let agent_side = offered_port(&agent, "agent-side-port", Duration::from_secs(15));
    let customer_side = offered_port(&customer, "customer-side-port", Duration::from_secs(10));
    let (Some(agent_side), Some(customer_side)) = (agent_side, customer_side) else {
        panic!("{}", explain("slotgate did not call both legs"));
    };
    assert_eq!(
        block_on(callbacks::attempts_before_slot(&set.url)),
        0,
        "{}",
        explain("the slot fired before it was due")
    );
    let agent_side = SocketAddr::from(([127, 0, 0, 1], agent_side));
    let customer_side = SocketAddr::from(([127, 0, 0, 1], customer_side));
    // The agent speaks µ-law; the customer answered A-law.
    let spoken: Vec<u8> = (0..160u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut as_alaw = spoken.clone();
    g711::transcode_ulaw_to_alaw(&mut as_alaw);
    let heard = relay_once(
        &agent_rtp,
        agent_side,
        &trunk_rtp,
        0,
        &spoken,
        (8, as_alaw.clone()),
    );
    assert_eq!(heard, Some((8, as_alaw)), "{}", explain("agent → customer"));
    let answered: Vec<u8> = (0..160u32).map(|i| (i * 11 % 253) as u8).collect();
    let mut as_ulaw = answered.clone();
    g711::transcode_alaw_to_ulaw(&mut as_ulaw);
    let heard = relay_once(
        &trunk_rtp,
        customer_side,
        &agent_rtp,
        8,
        &answered,
        (0, as_ulaw.clone()),
    );
    assert_eq!(heard, Some((0, as_ulaw)), "{}", explain("customer → agent"));

    // The customer hangs up: the agent gets a BYE; both scenarios pass.
    assert!(
        finished(&mut customer, Duration::from_secs(20)),
        "{}",
        explain("customer side failed")
    );
    assert!(
        finished(&mut agent, Duration::from_secs(20)),
        "{}",
        explain("agent side failed")
    );
    let (status, attempts) =
        wait_for_attempts(&set.url, "cb-0", &["answered"], Duration::from_secs(5));
    assert_eq!(
        (status.as_str(), attempts),
        ("done", vec!["answered".to_string()])
    );
    let agent_log = read_or_note(&agent.log_file());
    let customer_log = read_or_note(&customer.log_file());
    let attempt_of = |log: &str| {
        log.lines()
            .find_map(|l| {
                l.split_once("attempt ")
                    .map(|(_, r)| r.split_whitespace().next().map(str::to_string))
            })
            .flatten()
    };
    assert_eq!(
        attempt_of(&agent_log),
        attempt_of(&customer_log),
        "both legs carry the same X-Slotgate-Attempt"
    );
}

/// One slot in `mode` with SIPp on both sides running `agent` and
/// `customer`; both scenarios must pass within `limit`, and the callback's
/// attempts must end as `wanted`. The setup (for more checks) and how long
/// the customer's side ran.
fn one_call(
    mode: &str,
    agent: &str,
    customer: &str,
    limit: Duration,
    wanted: &[&str],
) -> (Setup, Duration) {
    require_sipp();
    let [sg_port, trunk_port, agent_port] = free_ports::<3>();
    let set = one_slot(mode, 1, agent_port, trunk_port, sg_port);
    let work = set._run.path();
    let mut agent = sipp_on("agent", agent, agent_port, work, 1, &[("agent_rtp", 9)]);
    let mut customer = sipp_on("trunk", customer, trunk_port, work, 1, &[("trunk_rtp", 9)]);
    let started = Instant::now();
    let customer_ok = finished(&mut customer, limit);
    let ran = started.elapsed();
    let ok = customer_ok && finished(&mut agent, Duration::from_secs(10));
    assert!(
        ok,
        "{}\n=== agent ===\n{}\n=== customer ===\n{}",
        tail(&set.slotgate.log(), 80),
        tail(&read_or_note(&agent.message_file()), 40),
        tail(&read_or_note(&customer.message_file()), 40)
    );
    let (_, attempts) = wait_for_attempts(&set.url, "cb-0", wanted, Duration::from_secs(5));
    assert_eq!(attempts, wanted, "{}", tail(&set.slotgate.log(), 60));
    (set, ran)
}

#[test]
fn a_bye_from_the_agent_ends_the_customer_leg() {
    let (set, _) = one_call(
        "progressive",
        "agent_answer_hangs_up.xml",
        "customer_answer.xml",
        Duration::from_secs(30),
        &["answered"],
    );
    assert_eq!(state_of(&set.url, "cb-0").0, "done");
}

#[test]
fn a_busy_customer_is_recorded_and_tried_again_later() {
    // The agent's leg is hung up when the customer's line is busy.
    let (set, _) = one_call(
        "progressive",
        "agent_answer.xml",
        "customer_busy.xml",
        Duration::from_secs(30),
        &["busy"],
    );
    assert_eq!(
        state_of(&set.url, "cb-0").0,
        "pending",
        "the strategy tries a busy line again"
    );
    // ... but not at once: the default strategy waits ten minutes.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state_of(&set.url, "cb-0").1, ["busy"]);
}

#[test]
fn a_customer_who_never_answers_is_given_up_after_the_ring_timeout() {
    let (_, ran) = one_call(
        "progressive",
        "agent_answer.xml",
        "customer_no_answer.xml",
        Duration::from_secs(45),
        &["no-answer"],
    );
    assert!(
        ran >= Duration::from_secs(15),
        "rang at least the 15 s ring timeout ({ran:?})"
    );
}

#[test]
fn a_recorded_hello_is_a_person_and_is_put_through_to_the_agent() {
    one_call(
        "predictive",
        "agent_answer_hangs_up.xml",
        "trunk_answer_hello.xml",
        Duration::from_secs(30),
        &["answered"],
    );
}

#[test]
fn a_recorded_machine_greeting_is_detected_and_hung_up_on() {
    require_sipp();
    let [sg_port, trunk_port, agent_port] = free_ports::<3>();
    let set = one_slot("predictive", 1, agent_port, trunk_port, sg_port);
    let work = set._run.path();
    // Nothing answers on the agent's port; anything sent there is seen.
    let agent_probe = UdpSocket::bind(("127.0.0.1", agent_port)).expect("agent probe");
    agent_probe.set_nonblocking(true).expect("nonblocking");
    let mut customer = sipp_on(
        "trunk",
        "trunk_answer_machine.xml",
        trunk_port,
        work,
        1,
        &[],
    );
    assert!(
        finished(&mut customer, Duration::from_secs(30)),
        "{}\n{}",
        tail(&set.slotgate.log(), 80),
        tail(&read_or_note(&customer.message_file()), 40)
    );
    let (_, attempts) = wait_for_attempts(&set.url, "cb-0", &["machine"], Duration::from_secs(5));
    assert_eq!(attempts, ["machine"], "{}", tail(&set.slotgate.log(), 60));
    let mut buf = [0u8; 2048];
    assert!(
        agent_probe.recv_from(&mut buf).is_err(),
        "no agent is called for a machine"
    );
}

#[test]
fn a_busy_line_under_a_prompt_pass_asks_for_another_time_and_calls_again() {
    require_sipp();
    let [sg_port, trunk_port, agent_port] = free_ports::<3>();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Slotgate::db_in(dir.path());
    let (e, p) = people(&url);
    let hours = hours_including_now();
    let settings = serde_json::from_value(serde_json::json!({
        "mode": "progressive", "agents_target": 1, "ring_timeout_secs": 15,
        "calling_hours": {"default": hours}
    }))
    .expect("settings");
    // Voice once; on a busy line, the prompt; on its answer, voice again.
    let strategy = serde_json::from_value(serde_json::json!({"passes": [
        {"channel": "voice", "max_attempts": 1},
        {"channel": "prompt", "enter_on": ["busy", "no-answer"]},
        {"channel": "voice", "enter_on": ["prompted"], "max_attempts": 1}
    ]}))
    .expect("strategy");
    store_campaign(&url, &e, settings, Some(strategy));
    seed_slots(&url, (&e, &p), agent_port, 1, TimeDelta::seconds(1), 1);
    let extra = format!(
        "[prompts]\ncalling_hours = \"{hours}\"\n\
         [channels.simulator]\nauto_reply = \"now\"\nauto_reply_delay_ms = 300\n"
    );
    let slotgate = Slotgate::start_in(
        dir,
        sg_port,
        "",
        &format!("{}{extra}", config(trunk_port, "progressive", "node-a", "")),
    );
    let run = tempfile::tempdir().expect("run dir");
    let work = run.path();
    let mut agent = sipp_on(
        "agent",
        "agent_answer.xml",
        agent_port,
        work,
        2,
        &[("agent_rtp", 9)],
    );
    let mut customer = sipp_on("trunk", "customer_busy.xml", trunk_port, work, 2, &[]);
    let ok = finished(&mut customer, Duration::from_secs(40));
    let explain = format!(
        "{}\n=== trunk ===\n{}",
        tail(&slotgate.log(), 80),
        tail(&read_or_note(&customer.log_file()), 20)
    );
    assert!(ok, "two calls reached the trunk\n{explain}");
    let _ = agent.wait(Duration::from_secs(5));
    let statuses = block_on(callbacks::statuses(&url));
    let first = statuses
        .iter()
        .find(|(id, _)| id == "cb-0")
        .map(|(_, s)| s.as_str());
    assert_eq!(
        first,
        Some("dropped"),
        "the first callback became a prompt\n{explain}"
    );
    assert_eq!(
        statuses.len(),
        2,
        "the answer to the prompt scheduled a callback: {statuses:?}"
    );
    let attempts = block_on(callbacks::attempts(&url));
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts.iter().all(|(_, _, state)| state == "busy"),
        "{attempts:?}"
    );
}

#[test]
fn a_supervisor_raising_the_call_rate_is_heard_between_calls() {
    require_sipp();
    let [sg_port, trunk_port, agent_port] = free_ports::<3>();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Slotgate::db_in(dir.path());
    let (e, p) = people(&url);
    let hours = hours_including_now();
    let settings = |cps: f64| -> slotgate::pacing::CampaignSettings {
        serde_json::from_value(serde_json::json!({
            "mode": "progressive", "agents_target": 1, "ring_timeout_secs": 15,
            "limits": {"calls_per_second": cps},
            "calling_hours": {"default": hours}
        }))
        .expect("settings")
    };
    // One call per 30 s: the second callback would wait half a minute.
    store_campaign(&url, &e, settings(1.0 / 30.0), None);
    seed_slots(
        &url,
        (&e, &p),
        agent_port,
        1,
        TimeDelta::milliseconds(100),
        2,
    );
    let slotgate = Slotgate::start_in(
        dir,
        sg_port,
        "",
        &config(trunk_port, "progressive", "node-a", ""),
    );
    let run = tempfile::tempdir().expect("run dir");
    let work = run.path();
    let _agent = sipp_on(
        "agent",
        "agent_answer.xml",
        agent_port,
        work,
        2,
        &[("agent_rtp", 9)],
    );
    let mut customer = sipp_on("trunk", "customer_busy.xml", trunk_port, work, 2, &[]);
    let invites = |sipp: &Sipp| read_or_note(&sipp.log_file()).matches("attempt ").count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while invites(&customer) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(invites(&customer), 1, "{}", tail(&slotgate.log(), 60));
    // The first call is over (busy); the supervisor raises the rate.
    let raised = Instant::now();
    block_on(async {
        let store = slotgate::store::Store::connect(&url).await.expect("store");
        store
            .update_campaign(
                &e,
                "spring",
                &slotgate::store::campaigns::CampaignSpec {
                    settings: settings(5.0),
                    ..Default::default()
                },
                None,
                Utc::now(),
            )
            .await
            .expect("update");
        store.close().await;
    });
    assert!(
        finished(&mut customer, Duration::from_secs(20)),
        "{}",
        tail(&slotgate.log(), 60)
    );
    assert!(
        raised.elapsed() < Duration::from_secs(15),
        "the second call waited for the old rate ({:?})",
        raised.elapsed()
    );
}
