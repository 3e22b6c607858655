//! Exactly once across crashes: a thousand due slots, the dialling node
//! killed with SIGKILL in the middle of the run, and the trunk-side SIPp
//! counting the `X-Slotgate-Attempt` of every INVITE it receives.
//!
//! What a user relies on, and what is asserted:
//! - no person is called twice for one slot: across all attempts of a
//!   callback, at most one INVITE reaches the trunk;
//! - nothing is lost: after the restart (or, with two PostgreSQL nodes,
//!   on the survivor once the dead node's leases run out) every callback
//!   is either `done`, having reached the trunk exactly once, or
//!   `unknown`: its node died while it was dialling, so whether the person
//!   was called is not known, and it waits for an operator instead of
//!   being dialled again blindly. There can be no more of those than calls
//!   were in progress at the kill.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::callbacks::{self, Slots};
use common::engines::PgSchema;
use common::seed::{block_on, enterprise, subscriber};
use common::sipp::{
    free_ports, port_taken, read_or_note, require_sipp, sipp_args, spawn_sipp, tail, Sipp,
    Transport,
};
use common::{free_port, hours_including_now, Slotgate};
use slotgate::consent::TrustStatus;

const CALLEE: &str = "+33142685302";
const SLOTS: usize = 1_000;
/// Calls in progress at most (trunk channels of the campaign).
const CHANNELS: usize = 100;
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";

fn node_config(trunk_port: u16, node: &str, media_base: u16) -> String {
    let hours = hours_including_now();
    format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 2\n\
         [api]\nadmin_token = \"{ADMIN_TOKEN}\"\n\
         [media]\nport_min = {media_base}\nport_max = {}\n\
         [log]\nlevel = \"slotgate=info\"\n\
         [pacing]\nenabled = true\nnode = \"{node}\"\nlease_secs = 10\nclaim_every_ms = 100\n\
         claim_batch = 300\n\
         [pacing.defaults]\nmode = \"agentless\"\nagents_target = 0\nring_timeout_secs = 15\n\
         [pacing.defaults.limits]\ntrunk_channels = {CHANNELS}\ncalls_per_second = 100.0\n\
         max_concurrent_calls = {CHANNELS}\n\
         [pacing.defaults.calling_hours]\ndefault = \"{hours}\"\n",
        media_base + 999
    )
}

/// A thousand callbacks due over the next few seconds at `url`.
fn seed(url: &str) {
    block_on(async {
        let store = slotgate::store::Store::connect(url).await.expect("store");
        store.migrate().await.expect("migrate");
        let e = enterprise(&store, "Acme Energy", TrustStatus::Trusted).await;
        let p = subscriber(&store, CALLEE, &[&e]).await;
        store.close().await;
        callbacks::seed(
            url,
            &Slots {
                enterprise: &e,
                person: &p,
                callee: CALLEE,
                campaign: "spring",
                pbx_target: "sip:4001@127.0.0.1:9",
                first: Utc::now() + TimeDelta::seconds(2),
                spacing: TimeDelta::milliseconds(5),
            },
            SLOTS,
        )
        .await;
    });
}

fn trunk(port: u16, work: &std::path::Path) -> Sipp {
    let mut args = sipp_args(
        "trunk",
        "customer_count.xml",
        "127.0.0.1",
        port,
        Transport::Udp,
        work,
        (SLOTS * 2) as u32,
        None,
    );
    args.extend([
        "-timeout".into(),
        "180s".into(),
        "-key".into(),
        "trunk_rtp".into(),
        "9".into(),
    ]);
    let sipp = spawn_sipp("trunk", args, work);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_taken(port, Transport::Udp) {
        assert!(Instant::now() < deadline, "trunk sipp did not bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    sipp
}

/// Attempt id → the distinct trunk Call-IDs it arrived with.
fn arrivals(trunk: &Sipp) -> HashMap<String, HashSet<String>> {
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    for line in read_or_note(&trunk.log_file()).lines() {
        let Some((_, rest)) = line.split_once("attempt ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(attempt), Some("call"), Some(call)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        seen.entry(attempt.to_string())
            .or_default()
            .insert(call.to_string());
    }
    seen
}

/// Waits until no callback is pending or claimed.
fn settle(url: &str, limit: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let statuses = block_on(callbacks::statuses(url));
        let open = statuses
            .iter()
            .filter(|(_, s)| s == "pending" || s == "claimed")
            .count();
        if open == 0 || Instant::now() > deadline {
            return statuses;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the trunk has seen `at_least` INVITEs.
fn wait_for_invites(trunk: &Sipp, at_least: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let n = arrivals(trunk).len();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The assertions of the module comment, with a summary line.
fn assert_exactly_once(url: &str, trunk: &Sipp, logs: &str) {
    let statuses = settle(url, Duration::from_secs(90));
    // The last BYEs and logs reach SIPp's files.
    std::thread::sleep(Duration::from_millis(500));
    let seen = arrivals(trunk);
    let attempts = block_on(callbacks::attempts(url));
    let mut by_callback: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (attempt, callback, state) in attempts {
        by_callback
            .entry(callback)
            .or_default()
            .push((attempt, state));
    }
    let explain = || {
        format!(
            "{}\n=== trunk ===\n{}",
            tail(logs, 60),
            tail(&read_or_note(&trunk.error_file()), 20)
        )
    };
    let (mut done, mut unknown, mut unknown_reached) = (0, 0, 0);
    for (callback, status) in &statuses {
        let tries = by_callback.get(callback).cloned().unwrap_or_default();
        let reached: usize = tries
            .iter()
            .map(|(attempt, _)| seen.get(attempt).map_or(0, HashSet::len))
            .sum();
        assert!(
            reached <= 1,
            "callback {callback} reached the trunk {reached} times: {tries:?}\n{}",
            explain()
        );
        match status.as_str() {
            "done" => {
                done += 1;
                assert_eq!(
                    reached, 1,
                    "done callback {callback} never reached the trunk: {tries:?}"
                );
            }
            "unknown" => {
                unknown += 1;
                unknown_reached += reached;
                assert!(
                    tries.iter().any(|(_, s)| s == "outcome-unknown"),
                    "unknown callback {callback} without an unknown attempt: {tries:?}"
                );
            }
            other => panic!("callback {callback} left {other}: {tries:?}\n{}", explain()),
        }
    }
    println!(
        "exactly once: {} slots, {done} done (each reached the trunk once), {unknown} unknown \
         ({unknown_reached} of them had reached the trunk), {} INVITEs at the trunk",
        statuses.len(),
        seen.len()
    );
    assert_eq!(statuses.len(), SLOTS);
    assert!(
        unknown <= CHANNELS,
        "more unknown than calls in progress: {unknown}"
    );
    assert!(done >= SLOTS - CHANNELS, "{done} done\n{}", explain());
}

/// The operator lists what is unknown over the admin API and settles one.
fn operator_settles_the_unknown(url: &str, api: SocketAddr) {
    let unknown: Vec<String> = block_on(callbacks::statuses(url))
        .into_iter()
        .filter(|(_, s)| s == "unknown")
        .map(|(id, _)| id)
        .collect();
    let base = format!("http://{api}");
    let client = reqwest::Client::new();
    let listed: serde_json::Value = block_on(async {
        client
            .get(format!("{base}/admin/v1/callbacks/unknown?limit=1000"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json")
    });
    let listed: Vec<&str> = listed["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        listed.len(),
        unknown.len(),
        "the admin API lists every unknown callback"
    );
    let Some(first) = unknown.first() else {
        return;
    };
    let resolve = |body: serde_json::Value| {
        block_on(async {
            client
                .post(format!("{base}/admin/v1/callbacks/{first}/resolve"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("resolve")
                .status()
                .as_u16()
        })
    };
    assert_eq!(
        resolve(serde_json::json!({"action": "maybe", "note": "x"})),
        422
    );
    assert_eq!(
        resolve(serde_json::json!({"action": "done", "note": "the trunk's records show the call"})),
        204
    );
    assert_eq!(
        resolve(serde_json::json!({"action": "done", "note": "again"})),
        409,
        "only an unknown callback is resolved"
    );
    let status = block_on(callbacks::statuses(url))
        .into_iter()
        .find(|(id, _)| id == first)
        .map(|(_, s)| s);
    assert_eq!(status.as_deref(), Some("done"));
}

#[test]
fn a_node_killed_mid_run_on_sqlite_dials_no_slot_twice_after_restart() {
    require_sipp();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Slotgate::db_in(dir.path());
    seed(&url);
    let [sg_port, trunk_port] = free_ports::<2>();
    let run = tempfile::tempdir().expect("run");
    let mut trunk = trunk(trunk_port, run.path());
    let media = 36_000 + (std::process::id() % 100) as u16 * 20;
    let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut first = Slotgate::start_on_store(
        sg_port,
        &url,
        api,
        &node_config(trunk_port, "node-a", media),
    );
    let reached = wait_for_invites(&trunk, 300, Duration::from_secs(30));
    assert!(
        reached >= 300,
        "only {reached} INVITEs before the kill\n{}",
        tail(&first.log(), 40)
    );
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let mut logs = first.log();
    let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut second = Slotgate::start_on_store(
        sg_port,
        &url,
        api,
        &node_config(trunk_port, "node-a", media),
    );
    settle(&url, Duration::from_secs(90));
    logs.push_str(&second.log());
    assert_exactly_once(&url, &trunk, &logs);
    operator_settles_the_unknown(&url, api);
    second.stop(Duration::from_secs(10));
    let _ = trunk.child.kill();
}

#[test]
fn a_node_killed_mid_run_on_postgres_dials_no_slot_twice_after_restart() {
    require_sipp();
    let schema = PgSchema::create();
    seed(&schema.url);
    let [sg_port, trunk_port] = free_ports::<2>();
    let run = tempfile::tempdir().expect("run");
    let mut trunk = trunk(trunk_port, run.path());
    let media = 38_000 + (std::process::id() % 100) as u16 * 20;
    let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = node_config(trunk_port, "node-a", media);
    let mut first = Slotgate::start_on_store(sg_port, &schema.url, api, &config);
    let reached = wait_for_invites(&trunk, 300, Duration::from_secs(30));
    assert!(
        reached >= 300,
        "only {reached} INVITEs before the kill\n{}",
        tail(&first.log(), 40)
    );
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let mut logs = first.log();
    let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut second = Slotgate::start_on_store(sg_port, &schema.url, api, &config);
    settle(&schema.url, Duration::from_secs(90));
    logs.push_str(&second.log());
    assert_exactly_once(&schema.url, &trunk, &logs);
    second.stop(Duration::from_secs(10));
    let _ = trunk.child.kill();
}

#[test]
fn two_postgres_nodes_one_killed_the_survivor_finishes_without_duplicates() {
    require_sipp();
    let schema = PgSchema::create();
    seed(&schema.url);
    let [a_port, b_port, trunk_port] = free_ports::<3>();
    let run = tempfile::tempdir().expect("run");
    let mut trunk = trunk(trunk_port, run.path());
    let media = 40_000 + (std::process::id() % 100) as u16 * 40;
    let api_a: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let api_b: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut a = Slotgate::start_on_store(
        a_port,
        &schema.url,
        api_a,
        &node_config(trunk_port, "node-a", media),
    );
    let mut b = Slotgate::start_on_store(
        b_port,
        &schema.url,
        api_b,
        &node_config(trunk_port, "node-b", media + 1_000),
    );
    let reached = wait_for_invites(&trunk, 300, Duration::from_secs(30));
    assert!(
        reached >= 300,
        "only {reached} INVITEs before the kill\n{}",
        tail(&a.log(), 40)
    );
    a.child.kill().expect("kill -9");
    let _ = a.child.wait();
    settle(&schema.url, Duration::from_secs(90));
    let logs = format!("=== node a ===\n{}\n=== node b ===\n{}", a.log(), b.log());
    assert_exactly_once(&schema.url, &trunk, &logs);
    // Both nodes dialled: the work was shared, then the survivor took over.
    let nodes = block_on(callbacks::attempt_nodes(&schema.url));
    assert_eq!(nodes.len(), 2, "attempts by {nodes:?}");
    b.stop(Duration::from_secs(10));
    let _ = trunk.child.kill();
}
