//! Many INVITEs held at once: memory per held INVITE, and how fast the
//! gate answers the PBX once each person's reply is stored.
//!
//! Runs the built slotgate (release) on a fresh SQLite store seeded with
//! `HELD` subscribed people (Paris numbers, so calling hours are known),
//! the simulator as the channel, each simulated person answering "in 15
//! minutes" `REPLY_AFTER_SECS` after their prompt, and a hold window of
//! ten minutes. SIPp (the PBX) dials every person once at `RATE` calls/s
//! (`contrib/bench/held_uac.xml`): each INVITE is held until its answer,
//! then must end with 480 and Retry-After. The replies start only once
//! every INVITE has had time to be held, so the peak of
//! `slotgate_gate_held_invites` is the number held at once.
//!
//! `cargo bench --bench held_invites` prints: INVITEs held at the peak,
//! the process's resident memory before the calls and at its peak, their
//! difference per held INVITE, SIPp's successful and failed calls, and the
//! answer-to-response time (p50 and p99, as the upper bound of the
//! `/metrics` histogram bucket holding them).
//! Settings (environment): HELD (50000), RATE (400), REPLY_AFTER_SECS
//! (HELD / RATE + 90), ENGINE (sqlite, or postgres: a fresh schema on
//! SLOTGATE_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test,
//! dropped afterwards).

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use slotgate::consent::{
    ConsentPolicy, Identifier, NewEnterprise, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::Store;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The i-th person's number: Paris fixed lines +33 1 42 00 00 00 onwards.
fn number(i: u64) -> String {
    format!("+331420{i:05}")
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn seed(url: &str, people: u64) -> Result<String, String> {
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let now = Utc::now();
    let enterprise = store
        .create_enterprise(
            &NewEnterprise {
                name: "Bench Energie".into(),
                display_name: "Bench Energie".into(),
                services: vec!["Energy".into()],
                default_region: "FR".into(),
                crm_webhook_url: None,
                crm_webhook_secret: None,
                consent_policy: ConsentPolicy::PerCall,
                status: TrustStatus::Trusted,
            },
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..people {
        let n = E164::parse(&number(i), None).map_err(|e| format!("{}: {e}", number(i)))?;
        let person = store
            .create_person(&[Identifier::Phone(n)], now)
            .await
            .map_err(|e| e.to_string())?;
        store
            .set_subscription(&person.id, &enterprise.id, SubscriptionStatus::Active, now)
            .await
            .map_err(|e| e.to_string())?;
        if i > 0 && i % 10_000 == 0 {
            eprintln!("  seeded {i} people");
        }
    }
    store.close().await;
    Ok(enterprise.id)
}

/// `(held now, answer-to-response buckets)` read from `/metrics`.
async fn metrics(client: &reqwest::Client, base: &str) -> Option<(u64, Vec<(f64, u64)>)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut held = 0;
    let mut buckets = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("slotgate_gate_held_invites ") {
            held = v.trim().parse::<i64>().ok()?.max(0) as u64;
        }
        if let Some(rest) =
            line.strip_prefix("slotgate_gate_answer_to_response_seconds_bucket{le=\"")
        {
            let (bound, count) = rest.split_once("\"} ")?;
            if let (Ok(b), Ok(c)) = (bound.parse::<f64>(), count.trim().parse::<u64>()) {
                buckets.push((b, c));
            }
        }
    }
    Some((held, buckets))
}

fn quantile(buckets: &[(f64, u64)], total: u64, q: f64) -> String {
    if total == 0 {
        return "n/a".into();
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    match buckets.iter().find(|(_, n)| *n >= rank) {
        Some((bound, _)) if bound.is_finite() => format!("<= {:.0} ms", bound * 1000.0),
        _ => "> 5000 ms".into(),
    }
}

/// Successful and failed calls from the last line of a SIPp stat file.
fn sipp_counts(stat: &Path) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return (0, 0);
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let header: Vec<&str> = header.split(';').collect();
    let last: Vec<&str> = last.split(';').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (col("SuccessfulCall(C)"), col("FailedCall(C)"))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let held = setting("HELD", 50_000);
    let rate = setting("RATE", 400).max(1);
    let reply_after = setting("REPLY_AFTER_SECS", held / rate + 90);
    if reply_after + 30 > 600 {
        eprintln!("REPLY_AFTER_SECS must leave the replies inside the 600 s hold window");
        return ExitCode::FAILURE;
    }
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("cannot create a temporary directory");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let postgres = std::env::var("ENGINE").is_ok_and(|e| e == "postgres");
    let base_url = std::env::var("SLOTGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("slotgate_bench_{:08x}", rand::random::<u32>());
    let db = if postgres {
        if let Err(e) = runtime.block_on(schema_sql(&base_url, &format!("CREATE SCHEMA {schema}")))
        {
            eprintln!("PostgreSQL at {base_url}: {e}");
            return ExitCode::FAILURE;
        }
        let sep = if base_url.contains('?') { '&' } else { '?' };
        format!("{base_url}{sep}options=-c%20search_path%3D{schema}")
    } else {
        format!("sqlite://{}", dir.path().join("slotgate.db").display())
    };
    let passed = run(&runtime, dir.path(), &db, held, rate, reply_after);
    if postgres {
        let _ = runtime.block_on(schema_sql(
            &base_url,
            &format!("DROP SCHEMA {schema} CASCADE"),
        ));
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "not every call ended as expected; the run is kept in {}",
            dir.keep().display()
        );
        ExitCode::FAILURE
    }
}

/// Runs one statement on a connection of its own (schema set-up).
async fn schema_sql(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(sql).await?;
    conn.close().await
}

/// One run; true when every call ended with 480 and Retry-After.
fn run(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    db: &str,
    held: u64,
    rate: u64,
    reply_after: u64,
) -> bool {
    eprintln!("seeding {held} people");
    let enterprise = match runtime.block_on(seed(db, held)) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("seeding failed: {e}");
            return false;
        }
    };
    let (sip, api, trunk, uac) = (free_port(), free_port(), free_port(), free_port());
    let config = dir.join("slotgate.toml");
    let toml = format!(
        "[sip]\nudp_listen = \"127.0.0.1:{sip}\"\ntcp_listen = \"\"\n\
         [pbx]\nallowed_sources = [\"127.0.0.1/32\"]\nrate_limit = 100000\nrate_limit_burst = 100000\n\
         [trunk]\naddress = \"127.0.0.1:{trunk}\"\noptions_interval_secs = 0\n\
         [store]\nurl = \"{db}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
         [prompts]\ncalling_hours = \"00:00-23:59\"\nweekly_cap = 100\n\
         [channels.simulator]\nauto_reply = \"after_15\"\nauto_reply_delay_ms = {}\n\
         [gate]\ndefault_enterprise = \"{enterprise}\"\ncalling_hours = \"00:00-23:59\"\n\
         hold_window_secs = 600\n[log]\nlevel = \"warn\"\n",
        reply_after * 1000
    );
    let csv = dir.join("numbers.csv");
    let written = std::fs::write(&config, toml).and_then(|_| {
        let mut f = std::fs::File::create(&csv)?;
        writeln!(f, "SEQUENTIAL")?;
        for i in 0..held {
            writeln!(f, "{};", number(i))?;
        }
        Ok(())
    });
    if let Err(e) = written {
        eprintln!("cannot write the run's files: {e}");
        return false;
    }
    let log = match std::fs::File::create(dir.join("slotgate.log")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("log file: {e}");
            return false;
        }
    };
    let mut env_clean = Command::new(env!("CARGO_BIN_EXE_slotgate"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLOTGATE_")) {
        env_clean.env_remove(k);
    }
    let slotgate = match env_clean
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
        .stderr(Stdio::from(log))
        .spawn()
    {
        Ok(c) => Killed(c),
        Err(e) => {
            eprintln!("cannot start slotgate: {e}");
            return false;
        }
    };
    let pid = slotgate.0.id();
    let base = format!("http://127.0.0.1:{api}");
    let client = reqwest::Client::new();
    let ready = Instant::now() + Duration::from_secs(20);
    while runtime.block_on(metrics(&client, &base)).is_none() {
        if Instant::now() > ready {
            eprintln!("slotgate did not come up; see {}", dir.display());
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = status_kb(pid, "VmRSS:");

    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/bench/held_uac.xml");
    let stat = dir.join("uac_stat.csv");
    let sipp = Command::new("sipp")
        .arg(format!("127.0.0.1:{sip}"))
        .args(["-sf", &scenario.display().to_string()])
        .args(["-inf", &csv.display().to_string()])
        .args(["-i", "127.0.0.1", "-p", &uac.to_string()])
        .args(["-m", &held.to_string(), "-r", &rate.to_string()])
        .args(["-l", &(held + 10).to_string()])
        .args(["-recv_timeout", "700s", "-timeout", "1000s", "-nostdin"])
        .args(["-buff_size", "8388608", "-trace_stat", "-fd", "5"])
        .args(["-stf", &stat.display().to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut sipp = match sipp {
        Ok(c) => Killed(c),
        Err(e) => {
            eprintln!("cannot start sipp ({e}): apt-get install sip-tester");
            return false;
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(held / rate + reply_after + 300);
    let mut peak_held = 0;
    let mut last_print = Instant::now();
    let mut buckets = Vec::new();
    loop {
        if let Some((h, b)) = runtime.block_on(metrics(&client, &base)) {
            peak_held = peak_held.max(h);
            buckets = b;
            if last_print.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  {:>4} s: held {h}, RSS {} MiB",
                    started.elapsed().as_secs(),
                    status_kb(pid, "VmRSS:") / 1024
                );
                last_print = Instant::now();
            }
        }
        if let Ok(Some(_)) = sipp.0.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("deadline passed; stopping SIPp");
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(sipp);
    if let Some((_, b)) = runtime.block_on(metrics(&client, &base)) {
        buckets = b;
    }
    let rss_peak = status_kb(pid, "VmHWM:");
    let (ok, failed) = sipp_counts(&stat);
    // The +Inf bucket counts every answer.
    let answered = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let per_held = if peak_held > 0 {
        (rss_peak.saturating_sub(rss_before) * 1024) as f64 / peak_held as f64
    } else {
        0.0
    };
    println!("held INVITEs at peak        {peak_held} of {held} dialled at {rate}/s");
    println!("RSS before calls            {} MiB", rss_before / 1024);
    println!("peak RSS (VmHWM)            {} MiB", rss_peak / 1024);
    println!("peak RSS growth per held    {:.1} KiB", per_held / 1024.0);
    println!("SIPp calls                  {ok} successful (480 + Retry-After), {failed} failed");
    println!(
        "answer to SIP response      p50 {}, p99 {} (over {answered} answers)",
        quantile(&buckets, answered, 0.5),
        quantile(&buckets, answered, 0.99)
    );
    ok == held && failed == 0
}
