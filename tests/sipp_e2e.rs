//! End-to-end calls through the built slotgate binary, driven by SIPp on
//! both sides: a PBX-side UAC sends calls to slotgate, a trunk-side UAS plays
//! the outbound trunk. Each test proves one call flow of the B2BUA contract
//! (answer and BYE from either side, busy, CANCEL, 503, trunk digest
//! challenges, re-INVITE, refused source, TCP) by checking that both SIPp
//! instances exit 0 with every call successful, and then reads slotgate's
//! call records.
//!
//! The scenarios live in `sip-scenarios/`; each file says what it proves.
//! SIPp is Debian's `sip-tester` package: these tests fail without it.

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::sipp::{
    call_counts, free_ports, port_taken, read_or_note, require_sipp, spawn_sipp, tail, Sipp,
    Transport,
};
use common::Slotgate;

/// The command line of one side of a case: every call of the case, the
/// PBX dialling [`CALLEE`] at 10 calls/s.
fn sipp_args(
    role: &str,
    scenario_file: &str,
    ip: &str,
    port: u16,
    transport: Transport,
    dir: &Path,
) -> Vec<String> {
    let service = (role == "pbx").then_some(CALLEE);
    common::sipp::sipp_args(
        role,
        scenario_file,
        ip,
        port,
        transport,
        dir,
        CALLS,
        service,
    )
}

/// Calls each SIPp instance makes or accepts.
const CALLS: u32 = 4;
/// The number the PBX dials (SIPp's `[service]`).
const CALLEE: &str = "15550100001";
/// Trunk credentials, as written in the trunk_challenge_*.xml scenarios.
const TRUNK_USER: &str = "trunkuser";
const TRUNK_PASSWORD: &str = "trunk-secret";
const TRUNK_REALM: &str = "trunk.example";

/// Upper bound for the PBX-side SIPp (its own `-timeout` is 20 s).
const PBX_LIMIT: Duration = Duration::from_secs(40);
/// Upper bound for the trunk-side SIPp once the PBX side has finished.
const TRUNK_LIMIT: Duration = Duration::from_secs(15);

/// A running case: slotgate, the trunk side (SIPp or nothing) and the
/// PBX side, with everything needed to explain a failure.
struct Run {
    name: &'static str,
    slotgate: Slotgate,
    trunk: Option<Sipp>,
    pbx: Option<Sipp>,
}

impl Run {
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "=== slotgate log ({}) ===\n{}",
            self.name,
            self.slotgate.log()
        );
        for sipp in [&self.pbx, &self.trunk].into_iter().flatten() {
            let role = sipp.role;
            let _ = writeln!(
                out,
                "=== {role} sipp errors ===\n{}",
                read_or_note(&sipp.error_file())
            );
            let _ = writeln!(
                out,
                "=== {role} sipp screen (tail) ===\n{}",
                tail(&read_or_note(&sipp.screen_file()), 30)
            );
            let _ = writeln!(
                out,
                "=== {role} sipp messages (tail) ===\n{}",
                tail(&read_or_note(&sipp.message_file()), 120)
            );
        }
        out
    }

    fn fail(&self, what: &str) -> ! {
        panic!("[{}] {what}\n{}", self.name, self.diagnostics());
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(&what());
        }
    }
}

/// How one case is set up and what its call records must show.
struct Case {
    name: &'static str,
    pbx_scenario: &'static str,
    /// None: the trunk is a bare UDP socket that must receive nothing.
    trunk_scenario: Option<&'static str>,
    transport: Transport,
    pbx_ip: &'static str,
    trunk_auth: bool,
    expect: Expect,
}

struct Expect {
    final_status: i64,
    ended_by: Option<&'static str>,
    /// Whether a B-leg exists (an INVITE reached the trunk).
    b_leg: bool,
}

fn slotgate_config(trunk_port: u16, transport: Transport, trunk_auth: bool) -> String {
    let credentials = if trunk_auth {
        format!("username = \"{TRUNK_USER}\"\npassword = \"{TRUNK_PASSWORD}\"\n")
    } else {
        String::new()
    };
    format!(
        "[pbx]\n\
         allowed_sources = [\"127.0.0.1/32\"]\n\
         on_unknown_source = \"reject\"\n\
         [trunk]\n\
         address = \"127.0.0.1:{trunk_port}\"\n\
         transport = \"{}\"\n\
         options_interval_secs = 0\n\
         {credentials}\
         [shutdown]\n\
         drain_timeout_secs = 5\n\
         [log]\n\
         level = \"slotgate=debug,info\"\n",
        transport.toml()
    )
}

/// Runs one case to the end of the calls and checks both SIPp sides.
/// Returns the run (slotgate still up) and the PBX SIPp's process id
/// (part of every PBX Call-ID).
fn run_calls(case: &Case) -> (Run, u32) {
    require_sipp();
    let [sg_port, trunk_port, pbx_port] = free_ports::<3>();
    let slotgate = Slotgate::start(
        sg_port,
        &slotgate_config(trunk_port, case.transport, case.trunk_auth),
    );
    let dir = slotgate.dir.path().to_path_buf();
    let mut run = Run {
        name: case.name,
        slotgate,
        trunk: None,
        pbx: None,
    };

    // Trunk side first, and wait until it holds its port.
    let silent_trunk = match case.trunk_scenario {
        Some(file) => {
            let args = sipp_args("trunk", file, "127.0.0.1", trunk_port, case.transport, &dir);
            run.trunk = Some(spawn_sipp("trunk", args, &dir));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !port_taken(trunk_port, case.transport) {
                if let Some(status) = run
                    .trunk
                    .as_mut()
                    .and_then(|t| t.child.try_wait().ok().flatten())
                {
                    run.fail(&format!("trunk sipp exited before the calls ({status})"));
                }
                if Instant::now() >= deadline {
                    run.fail("trunk sipp did not bind its port within 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        }
        None => {
            Some(UdpSocket::bind(("127.0.0.1", trunk_port)).expect("bind the silent trunk socket"))
        }
    };

    // PBX side, to completion.
    let mut args = sipp_args(
        "pbx",
        case.pbx_scenario,
        case.pbx_ip,
        pbx_port,
        case.transport,
        &dir,
    );
    args.insert(0, run.slotgate.addr().to_string());
    run.pbx = Some(spawn_sipp("pbx", args, &dir));
    let pbx_pid = run.pbx.as_ref().map(|p| p.child.id()).unwrap_or_default();
    let pbx_status = run.pbx.as_mut().and_then(|p| p.wait(PBX_LIMIT));
    let trunk_status = run.trunk.as_mut().map(|t| t.wait(TRUNK_LIMIT));

    match pbx_status {
        None => run.fail(&format!(
            "PBX sipp still running after {PBX_LIMIT:?}; killed"
        )),
        Some(s) if !s.success() => run.fail(&format!("PBX sipp exited with {s}")),
        Some(_) => {}
    }
    match trunk_status {
        Some(None) => run.fail(&format!(
            "trunk sipp still running {TRUNK_LIMIT:?} after the PBX side ended; killed"
        )),
        Some(Some(s)) if !s.success() => run.fail(&format!("trunk sipp exited with {s}")),
        _ => {}
    }
    for sipp in [&run.pbx, &run.trunk].into_iter().flatten() {
        match call_counts(&sipp.stat_file()) {
            Ok((ok, failed)) => run.check(ok == u64::from(CALLS) && failed == 0, || {
                format!(
                    "{} sipp: {ok} successful and {failed} failed calls, expected {CALLS} and 0",
                    sipp.role
                )
            }),
            Err(e) => run.fail(&e),
        }
    }

    if let Some(sock) = silent_trunk {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                run.fail(&format!(
                    "the trunk received a datagram from {from} although the source is not allowed:\n{}",
                    String::from_utf8_lossy(&buf[..n])
                ));
            }
        }
    }
    (run, pbx_pid)
}

/// Stops slotgate (exit status 0 expected) and checks its call records.
fn stop_and_check_records(mut run: Run, case: &Case, pbx_pid: u32) {
    match run.slotgate.stop(Duration::from_secs(15)) {
        None => run.fail("slotgate did not exit within 15 s of SIGTERM"),
        Some(s) if !s.success() => run.fail(&format!("slotgate exited with {s} after SIGTERM")),
        Some(_) => {}
    }
    let rows = match read_call_records(&run.slotgate.db_path) {
        Ok(rows) => rows,
        Err(e) => run.fail(&format!("cannot read the calls table: {e}")),
    };
    run.check(rows.len() == CALLS as usize, || {
        format!("{} call records, expected {CALLS}: {rows:#?}", rows.len())
    });
    let a_suffix = format!("-{pbx_pid}@{}", case.pbx_ip);
    let mut a_ids = HashSet::new();
    for row in &rows {
        let exp = &case.expect;
        run.check(row.final_status == exp.final_status, || {
            format!(
                "final_status {} expected {}: {row:#?}",
                row.final_status, exp.final_status
            )
        });
        run.check(row.a_call_id.ends_with(&a_suffix), || {
            format!("a_call_id is not one of the PBX's Call-IDs (*{a_suffix}): {row:#?}")
        });
        a_ids.insert(row.a_call_id.clone());
        if let Some(by) = exp.ended_by {
            run.check(row.ended_by.as_deref() == Some(by), || {
                format!("ended_by expected {by:?}: {row:#?}")
            });
        }
        match (&row.b_call_id, exp.b_leg) {
            (Some(b), true) => run.check(b != &row.a_call_id && !b.contains(&a_suffix), || {
                format!("b_call_id reuses the PBX's Call-ID: {row:#?}")
            }),
            (None, true) => run.fail(&format!("b_call_id missing: {row:#?}")),
            (Some(_), false) => run.fail(&format!(
                "b_call_id set although no INVITE may reach the trunk: {row:#?}"
            )),
            (None, false) => {}
        }
        run.check(!row.reason.is_empty(), || format!("empty reason: {row:#?}"));
    }
    run.check(a_ids.len() == CALLS as usize, || {
        format!("call records do not cover {CALLS} distinct PBX calls: {rows:#?}")
    });
}

#[derive(Debug)]
struct CallRow {
    a_call_id: String,
    b_call_id: Option<String>,
    final_status: i64,
    reason: String,
    ended_by: Option<String>,
}

fn read_call_records(db: &Path) -> Result<Vec<CallRow>, String> {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .map_err(|e| format!("open {url}: {e}"))?;
        let rows =
            sqlx::query("SELECT a_call_id, b_call_id, final_status, reason, ended_by FROM calls")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(CallRow {
                    a_call_id: r.try_get("a_call_id")?,
                    b_call_id: r.try_get("b_call_id")?,
                    final_status: r.try_get("final_status")?,
                    reason: r.try_get("reason")?,
                    ended_by: r.try_get("ended_by")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(rows)
    })
}

fn run_case(case: Case) {
    let (run, pbx_pid) = run_calls(&case);
    stop_and_check_records(run, &case, pbx_pid);
}

fn answered(ended_by: &'static str) -> Expect {
    Expect {
        final_status: 200,
        ended_by: Some(ended_by),
        b_leg: true,
    }
}

#[test]
fn a_answered_call_bye_from_pbx() {
    let case = Case {
        name: "answered call, BYE from PBX",
        pbx_scenario: "pbx_call_bye.xml",
        trunk_scenario: Some("trunk_answer.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: answered("pbx"),
    };
    let (run, pbx_pid) = run_calls(&case);

    // The trunk saw slotgate's own dialogs: new Call-ID and From tag, one hop more.
    let trunk = run.trunk.as_ref().expect("trunk sipp");
    let log = read_or_note(&trunk.log_file());
    let invites: Vec<&str> = log.lines().filter(|l| l.starts_with("INVITE ")).collect();
    run.check(invites.len() == CALLS as usize, || {
        format!(
            "trunk logged {} INVITEs, expected {CALLS}:\n{log}",
            invites.len()
        )
    });
    let mut b_call_ids = HashSet::new();
    for line in invites {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        let call_id = field("call-id=");
        run.check(
            !call_id.is_empty() && !call_id.contains(&format!("-{pbx_pid}@")),
            || format!("the trunk's INVITE reuses the PBX's Call-ID: {line}"),
        );
        run.check(
            !field("from-tag=").contains(&format!("{pbx_pid}SIPpTag00")),
            || format!("the trunk's INVITE reuses the PBX's From tag: {line}"),
        );
        run.check(field("max-forwards=") == "69", || {
            format!("Max-Forwards not decremented from 70 to 69: {line}")
        });
        b_call_ids.insert(call_id);
    }
    run.check(b_call_ids.len() == CALLS as usize, || {
        format!("B-leg Call-IDs are not distinct:\n{log}")
    });
    stop_and_check_records(run, &case, pbx_pid);
}

#[test]
fn b_answered_call_bye_from_trunk() {
    run_case(Case {
        name: "answered call, BYE from trunk",
        pbx_scenario: "pbx_call_trunk_bye.xml",
        trunk_scenario: Some("trunk_answer_bye.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: answered("trunk"),
    });
}

#[test]
fn c_busy_486_relayed_with_reason_phrase() {
    run_case(Case {
        name: "busy: 486 relayed",
        pbx_scenario: "pbx_call_busy.xml",
        trunk_scenario: Some("trunk_busy.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: Expect {
            final_status: 486,
            ended_by: Some("trunk"),
            b_leg: true,
        },
    });
}

#[test]
fn d_ringing_then_cancel_from_pbx() {
    run_case(Case {
        name: "no answer, CANCEL from PBX",
        pbx_scenario: "pbx_call_cancel.xml",
        trunk_scenario: Some("trunk_ring_cancel.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: Expect {
            final_status: 487,
            ended_by: Some("pbx"),
            b_leg: true,
        },
    });
}

#[test]
fn e_trunk_503_relayed() {
    run_case(Case {
        name: "trunk 503 relayed",
        pbx_scenario: "pbx_call_unavailable.xml",
        trunk_scenario: Some("trunk_unavailable.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: Expect {
            final_status: 503,
            ended_by: Some("trunk"),
            b_leg: true,
        },
    });
}

#[test]
fn f_trunk_407_challenge_answered_by_slotgate() {
    let case = Case {
        name: "trunk 407 challenge",
        pbx_scenario: "pbx_call_bye.xml",
        trunk_scenario: Some("trunk_challenge_407.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: true,
        expect: answered("pbx"),
    };
    let (run, pbx_pid) = run_calls(&case);

    // SIPp's verifyauth reads only Authorization: check the Proxy-Authorization here.
    let trunk = run.trunk.as_ref().expect("trunk sipp");
    let log = read_or_note(&trunk.log_file());
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("AUTH ")).collect();
    run.check(lines.len() == CALLS as usize, || {
        format!(
            "trunk logged {} authenticated INVITEs, expected {CALLS}:\n{log}",
            lines.len()
        )
    });
    for line in lines {
        if let Err(e) = check_proxy_authorization(line) {
            run.fail(&format!("{e}\nline: {line}"));
        }
    }
    stop_and_check_records(run, &case, pbx_pid);
}

#[test]
fn f_trunk_401_challenge_answered_by_slotgate() {
    run_case(Case {
        name: "trunk 401 challenge",
        pbx_scenario: "pbx_call_bye.xml",
        trunk_scenario: Some("trunk_challenge_401.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: true,
        expect: answered("pbx"),
    });
}

#[test]
fn g_reinvite_from_pbx() {
    run_case(Case {
        name: "re-INVITE from PBX",
        pbx_scenario: "pbx_call_reinvite.xml",
        trunk_scenario: Some("trunk_reinvite.xml"),
        transport: Transport::Udp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: answered("pbx"),
    });
}

#[test]
fn h_invite_from_unknown_source_gets_403() {
    run_case(Case {
        name: "INVITE from a source not allowed",
        pbx_scenario: "pbx_call_forbidden.xml",
        trunk_scenario: None,
        transport: Transport::Udp,
        pbx_ip: "127.0.0.2",
        trunk_auth: false,
        expect: Expect {
            final_status: 403,
            ended_by: None,
            b_leg: false,
        },
    });
}

#[test]
fn i_tcp_answered_call_bye_from_pbx() {
    run_case(Case {
        name: "TCP both sides, answered call",
        pbx_scenario: "pbx_call_bye.xml",
        trunk_scenario: Some("trunk_answer.xml"),
        transport: Transport::Tcp,
        pbx_ip: "127.0.0.1",
        trunk_auth: false,
        expect: answered("pbx"),
    });
}

/// Checks one `AUTH ...` line logged by trunk_challenge_407.xml: the retried
/// INVITE has CSeq + 1, answers the nonce the trunk issued for that call,
/// and carries a correct RFC 2617 MD5 digest for the trunk credentials.
fn check_proxy_authorization(line: &str) -> Result<(), String> {
    let word = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .ok_or_else(|| format!("no {name} in the AUTH line"))
    };
    let method = word("method=")?;
    let issued_nonce = word("nonce=")?;
    let cseq1: u64 = word("cseq1=")?
        .parse()
        .map_err(|_| "bad cseq1".to_string())?;
    let cseq2: u64 = word("cseq2=")?
        .parse()
        .map_err(|_| "bad cseq2".to_string())?;
    if cseq2 != cseq1 + 1 {
        return Err(format!(
            "retried INVITE has CSeq {cseq2}, expected {}",
            cseq1 + 1
        ));
    }
    let header = line
        .split_once("header=")
        .map(|(_, h)| h.trim())
        .ok_or("no header in the AUTH line")?;
    let params = header
        .strip_prefix("Digest")
        .ok_or("Proxy-Authorization is not Digest")?;
    let params = digest_params(params);
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let need = |k: &str| get(k).ok_or_else(|| format!("Proxy-Authorization has no {k}"));
    if need("username")? != TRUNK_USER {
        return Err("wrong username".into());
    }
    if need("realm")? != TRUNK_REALM {
        return Err("wrong realm".into());
    }
    if need("nonce")? != issued_nonce {
        return Err(format!("nonce is not the one issued ({issued_nonce})"));
    }
    if let Some(algorithm) = get("algorithm") {
        if !algorithm.eq_ignore_ascii_case("MD5") {
            return Err(format!("algorithm {algorithm}, expected MD5"));
        }
    }
    let uri = need("uri")?;
    let md5_hex = |s: String| {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(s.as_bytes()))
    };
    let ha1 = md5_hex(format!("{TRUNK_USER}:{TRUNK_REALM}:{TRUNK_PASSWORD}"));
    let ha2 = md5_hex(format!("{method}:{uri}"));
    let expected = match get("qop") {
        Some(qop) => {
            if qop != "auth" {
                return Err(format!("qop {qop}, expected auth"));
            }
            let nc = need("nc")?;
            let cnonce = need("cnonce")?;
            md5_hex(format!("{ha1}:{issued_nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
        }
        None => md5_hex(format!("{ha1}:{issued_nonce}:{ha2}")),
    };
    let response = need("response")?;
    if !response.eq_ignore_ascii_case(&expected) {
        return Err(format!(
            "digest response {response} is wrong, expected {expected}"
        ));
    }
    Ok(())
}

/// `name=value` pairs of a Digest credential, quotes removed.
fn digest_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((name, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[test]
fn digest_check_accepts_a_sipp_credential() {
    // A Proxy-Authorization SIPp computed for trunkuser / trunk-secret.
    let line = "AUTH method=INVITE nonce=29556n1 cseq1=1 cseq2=2 header=Digest \
                username=\"trunkuser\",realm=\"trunk.example\",cnonce=\"6b8b4567\",nc=00000001,\
                qop=auth,uri=\"sip:127.0.0.1:24925\",nonce=\"29556n1\",\
                response=\"ce3720c42122c7e76482d4f6c9d00212\",algorithm=MD5";
    check_proxy_authorization(line).unwrap();
    let wrong = line.replace("ce3720c4", "ce3720c5");
    assert!(check_proxy_authorization(&wrong).is_err());
    let replayed = line.replace("nonce=29556n1 ", "nonce=29556n2 ");
    assert!(check_proxy_authorization(&replayed).is_err());
}
