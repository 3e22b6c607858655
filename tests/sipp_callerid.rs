//! Caller ID and STIR/SHAKEN end to end through the built slotgate binary:
//! a SIPp PBX places calls for enterprise `acme` to a New York number, a
//! SIPp trunk captures every INVITE it receives (sip-scenarios/
//! trunk_answer_callerid.xml logs From, To, P-Asserted-Identity, Privacy
//! and Identity), and the test checks the local-presence numbers, their
//! rotation, and each Identity signature with `openssl`.
//! SIPp is Debian's `sip-tester` package: this test fails without it.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::stir::{self, json_field, openssl_verifies, split};
use common::{free_port, Slotgate};
use slotgate::consent::E164;
use slotgate::store::{CallRecord, Store};

const CALLS: u32 = 4;
const CALLEE: &str = "+12125550143";
const X5U: &str = "https://cert.example.org/slotgate.pem";
/// The enterprise's pool numbers local to the callee's area code 212.
const LOCAL: [&str; 2] = ["+12125550122", "+12125550123"];

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip-scenarios")
        .join(name)
}

struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn sipp(role: &str, file: &str, port: u16, dir: &Path, extra: &[String]) -> Sipp {
    let path = |suffix: &str| dir.join(format!("{role}_{suffix}"));
    let screen = std::fs::File::create(path("screen.txt")).expect("screen file");
    let mut args: Vec<String> = extra.to_vec();
    args.extend(
        [
            "-sf",
            &scenario(file).display().to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "u1",
            "-m",
            &CALLS.to_string(),
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-recv_timeout",
            "8s",
            "-trace_err",
            "-error_file",
            &path("errors.log").display().to_string(),
            "-trace_msg",
            "-message_file",
            &path("messages.log").display().to_string(),
            "-trace_logs",
            "-log_file",
            &path("actions.log").display().to_string(),
        ]
        .map(String::from),
    );
    let child = Command::new("sipp")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(screen.try_clone().expect("screen clone"))
        .stderr(screen)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start sipp ({e}); install Debian's sip-tester (apt-get install -y sip-tester)")
        });
    Sipp(child)
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One INVITE as the trunk logged it.
#[derive(Debug, Default)]
struct Seen {
    from: String,
    to: String,
    pai: String,
    privacy: String,
    identity: String,
}

fn seen_invites(log: &str) -> Vec<Seen> {
    let mut all: Vec<Seen> = Vec::new();
    for line in log.lines() {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        let value = rest
            .trim()
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(rest)
            .trim()
            .to_string();
        match tag {
            "CALL" => all.push(Seen::default()),
            "FROM" | "TO" | "PAI" | "PRIVACY" | "IDENTITY" => {
                let Some(seen) = all.last_mut() else { continue };
                match tag {
                    "FROM" => seen.from = value,
                    "TO" => seen.to = value,
                    "PAI" => seen.pai = value,
                    "PRIVACY" => seen.privacy = value,
                    _ => seen.identity = value,
                }
            }
            _ => {}
        }
    }
    all
}

fn user_digits(value: &str) -> String {
    value
        .split_once("sip:")
        .map(|(_, rest)| rest.split('@').next().unwrap_or_default())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

fn ports() -> (u16, u16, u16) {
    loop {
        let ports = (free_port(), free_port(), free_port());
        if HashSet::from([ports.0, ports.1, ports.2]).len() == 3 {
            return ports;
        }
    }
}

fn require_sipp() {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `sipp` ({e}): apt-get install -y sip-tester"));
}

/// The config of the enterprise `acme`: two pool numbers local to the
/// callee, one elsewhere in the US, signing on.
fn config(trunk_port: u16) -> String {
    format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 5\n[log]\nlevel = \"slotgate=debug,info\"\n\
         [caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"acme\"\ndefault_number = \"+12125550100\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"{}\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"{}\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+13125550133\"\nattest = \"A\"\n\
         [stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n",
        LOCAL[0],
        LOCAL[1],
        stir::key().display()
    )
}

/// What a failing case prints: slotgate's log and both SIPp sides' files.
fn diagnostics(slotgate: &Slotgate, what: &str) -> String {
    let dir = slotgate.dir.path();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!(
        "{what}\n=== slotgate log ===\n{}\n=== trunk errors ===\n{}\n=== pbx errors ===\n{}\n\
         === trunk actions ===\n{}\n=== trunk messages ===\n{}",
        slotgate.log(),
        read("trunk_errors.log"),
        read("pbx_errors.log"),
        read("trunk_actions.log"),
        read("trunk_messages.log"),
    )
}

/// Places `CALLS` calls from the SIPp PBX through `slotgate` to the SIPp
/// trunk and returns the INVITEs the trunk received.
fn place_calls(slotgate: &Slotgate, trunk_port: u16, pbx_port: u16) -> Vec<Seen> {
    let dir = slotgate.dir.path().to_path_buf();
    let mut trunk = sipp("trunk", "trunk_answer_callerid.xml", trunk_port, &dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.1", trunk_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{}",
            diagnostics(slotgate, "trunk sipp did not bind")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut pbx = sipp(
        "pbx",
        "pbx_call_callerid.xml",
        pbx_port,
        &dir,
        &[
            slotgate.addr().to_string(),
            "-s".into(),
            CALLEE.into(),
            "-r".into(),
            "10".into(),
        ],
    );
    let pbx_status = wait(&mut pbx.0, Duration::from_secs(40));
    let trunk_status = wait(&mut trunk.0, Duration::from_secs(15));
    assert!(
        pbx_status.is_some_and(|s| s.success()),
        "{}",
        diagnostics(slotgate, &format!("PBX sipp: {pbx_status:?}"))
    );
    assert!(
        trunk_status.is_some_and(|s| s.success()),
        "{}",
        diagnostics(slotgate, &format!("trunk sipp: {trunk_status:?}"))
    );
    let log = std::fs::read_to_string(dir.join("trunk_actions.log")).unwrap_or_default();
    let invites = seen_invites(&log);
    assert_eq!(
        invites.len(),
        CALLS as usize,
        "{}",
        diagnostics(slotgate, "INVITE count")
    );
    invites
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Stops slotgate (its records are all written by then) and reads them.
fn stored_calls(slotgate: &mut Slotgate) -> Vec<CallRecord> {
    let status = slotgate.stop(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        diagnostics(slotgate, &format!("slotgate stop: {status:?}"))
    );
    let url = Slotgate::db_in(slotgate.dir.path());
    block_on(async {
        let store = Store::connect(&url).await.expect("open the store");
        let calls = store.recent_calls(100).await.expect("read the calls");
        store.close().await;
        calls
    })
}

#[test]
fn trunk_receives_local_numbers_signed() {
    stir::require_openssl();
    require_sipp();
    let (sg_port, trunk_port, pbx_port) = ports();
    let mut slotgate = Slotgate::start(sg_port, &config(trunk_port));
    let invites = place_calls(&slotgate, trunk_port, pbx_port);
    let mut shown = Vec::new();
    let mut origids = HashSet::new();
    for seen in &invites {
        let number = format!("+{}", user_digits(&seen.from));
        assert!(
            LOCAL.contains(&number.as_str()),
            "{}",
            diagnostics(&slotgate, &format!("From {seen:?}"))
        );
        assert_eq!(user_digits(&seen.pai), user_digits(&seen.from), "{seen:?}");
        assert_eq!(seen.privacy, "id", "{seen:?}");
        assert_eq!(user_digits(&seen.to), CALLEE[1..], "{seen:?}");
        assert!(
            !seen.identity.contains("pbx.example"),
            "the PBX's Identity reached the trunk: {seen:?}"
        );
        assert!(
            openssl_verifies(&seen.identity, &stir::cert()),
            "{}",
            diagnostics(&slotgate, &format!("openssl rejects {seen:?}"))
        );
        let token = split(&seen.identity);
        assert_eq!(token.params, format!("info=<{X5U}>;alg=ES256;ppt=shaken"));
        let iat: i64 = json_field(&token.claims, "iat")
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let age = chrono::Utc::now().timestamp() - iat;
        assert!((0..120).contains(&age), "iat {iat} is {age} s old");
        let origid = json_field(&token.claims, "origid").unwrap_or_default();
        assert_eq!(
            token.claims,
            format!(
                "{{\"attest\":\"A\",\"dest\":{{\"tn\":[\"{}\"]}},\"iat\":{iat},\
                 \"orig\":{{\"tn\":\"{}\"}},\"origid\":\"{origid}\"}}",
                &CALLEE[1..],
                &number[1..]
            )
        );
        origids.insert((number.clone(), origid));
        shown.push(number);
    }
    assert_eq!(origids.len(), CALLS as usize, "one PASSporT per INVITE");
    // Round-robin between the two equally local, equally healthy numbers.
    for number in LOCAL {
        assert!(
            shown.iter().filter(|n| n.as_str() == number).count() == CALLS as usize / 2,
            "{shown:?}"
        );
    }
    assert!(
        slotgate.log().contains("rule=\"local_presence\""),
        "{}",
        diagnostics(&slotgate, "no caller id log line")
    );

    // Each call's row says what the trunk saw: the number, the rule, why,
    // and the origid of the PASSporT that signed that very INVITE.
    let calls = stored_calls(&mut slotgate);
    assert_eq!(calls.len(), CALLS as usize, "{calls:#?}");
    let mut stored = HashSet::new();
    for call in &calls {
        assert_eq!(
            call.caller_id_rule.as_deref(),
            Some("local_presence"),
            "{call:#?}"
        );
        let why = call.caller_id_why.as_deref().unwrap_or_default();
        assert!(why.starts_with("no person override; "), "{call:#?}");
        assert!(why.contains("; local presence +1212555012"), "{call:#?}");
        stored.insert((
            call.caller_id_number.clone().unwrap_or_default(),
            call.identity_origid.clone().unwrap_or_default(),
        ));
    }
    assert_eq!(stored, origids, "{calls:#?}");
}

#[test]
fn a_flag_stored_before_the_start_rests_the_number() {
    require_sipp();
    let (sg_port, trunk_port, pbx_port) = ports();
    // The flag is in the store before slotgate starts, as after a restart
    // or when another node (or the admin API) wrote it.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Slotgate::db_in(dir.path());
    block_on(async {
        let store = Store::connect(&url).await.expect("open the store");
        store.migrate().await.expect("migrate");
        let now = chrono::Utc::now();
        store
            .flag_caller_id(
                &E164::from_e164(LOCAL[0]).expect("number"),
                now + chrono::TimeDelta::hours(1),
                now,
            )
            .await
            .expect("flag");
        store.close().await;
    });
    let mut slotgate = Slotgate::start_in(dir, sg_port, "", &config(trunk_port));
    let invites = place_calls(&slotgate, trunk_port, pbx_port);
    for seen in &invites {
        assert_eq!(
            format!("+{}", user_digits(&seen.from)),
            LOCAL[1],
            "{}",
            diagnostics(
                &slotgate,
                &format!("the flagged number was shown: {seen:?}")
            )
        );
    }
    let calls = stored_calls(&mut slotgate);
    assert_eq!(calls.len(), CALLS as usize, "{calls:#?}");
    for call in &calls {
        assert_eq!(
            call.caller_id_number.as_deref(),
            Some(LOCAL[1]),
            "{call:#?}"
        );
        let why = call.caller_id_why.as_deref().unwrap_or_default();
        assert!(
            why.contains(&format!("skipped: {} flagged until", LOCAL[0])),
            "{call:#?}"
        );
    }
}
