//! A million pending slots in the store: how late the durable scheduler
//! fires the ones that fall due at 500 calls/s, what it costs in memory
//! and on disk, on SQLite and on PostgreSQL.
//!
//! A slot is a time the person chose, so every millisecond between the
//! slot and the INVITE is ours. A busy deployment books callbacks weeks
//! ahead, and on every tick the scheduler must find the few that are due
//! among all of them: the claim has to stay an index range read whatever
//! the backlog, and the attempt's commit (which must land before the
//! INVITE leaves) has to keep up with the call rate.
//!
//! For each engine, a fresh database: SQLite in a temporary directory,
//! PostgreSQL in a schema of its own on `SLOTGATE_TEST_POSTGRES_URL`
//! (default postgres://postgres@127.0.0.1:5432/test), dropped at the end;
//! both migrated by the store. `SLOTS` pending callbacks are seeded with
//! bulk `INSERT … SELECT` (a recursive CTE on SQLite, `generate_series` on
//! PostgreSQL), each behind its own consent request and hold as the
//! foreign keys require. All but `RATE` × `SECONDS` of them start two days
//! ahead or later (one every 2 s), never due during the run; the rest, the
//! measured stream, fall due evenly at `RATE` per second for `SECONDS`,
//! from `LEAD_SECS` after seeding ends.
//!
//! Then a node, on a current-thread runtime as `slotgate run` uses: every
//! `TICK_MS` a loop calls `Store::claim_due_callbacks` (60 s lease, at most
//! `CLAIM_LIMIT`); `WORKERS` tasks take the claimed callbacks and call
//! `Store::begin_attempt`; each attempt is finished as answered by a task
//! of its own `HOLD_MS` later. A slot's firing lateness is the wall clock
//! when `begin_attempt` returned (its commit) minus `slot_start`. At the
//! end the database must hold exactly one answered attempt and one `done`
//! callback per fired slot, and nothing else may have fired.
//!
//! `cargo bench --bench pending_slots` prints one line per engine: slots
//! seeded, seeding time, fired/expected, lateness p50/p90/p99/max, calls/s
//! achieved (fired over the time from the first slot to the last commit),
//! claim time p50/p99 (the whole `claim_due_callbacks` transaction), the
//! process's resident memory (VmRSS) after migrating, after seeding and at
//! the end, its peak (VmHWM, reset per engine), and the database's size.
//! Before that, on stderr, the claim statement's plan at full size, in the
//! steady state (nothing due) and with a backlog (every slot due):
//! `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN ANALYZE` in a rolled-back
//! transaction on PostgreSQL (there also the generic plan a prepared
//! statement may switch to after five runs).
//! The resident memory is this process only: PostgreSQL's own memory is
//! the server's.
//!
//! Settings (environment): ENGINE (both; or sqlite, postgres), SLOTS
//! (1000000), RATE (500), SECONDS (60), LEAD_SECS (5), TICK_MS (50),
//! CLAIM_LIMIT (500), WORKERS (4), HOLD_MS (0), GRACE_SECS (30: how long
//! after the last slot the loop keeps going for stragglers).
//! A quick run: `SLOTS=100000 SECONDS=20 cargo bench --bench pending_slots`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use slotgate::consent::{
    ConsentPolicy, Identifier, NewEnterprise, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::holds::ScheduledCallback;
use slotgate::store::scheduler::AttemptOutcome;
use slotgate::store::Store;
use sqlx::{Connection, Executor, Row};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

// As in the binary: the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const NODE: &str = "bench-node";
/// Long enough that no claim runs out while the workers catch up.
const LEASE: TimeDelta = TimeDelta::seconds(60);
const CAMPAIGN: &str = "winter-offer";
/// Rows per seeding transaction: big enough that commits cost nothing,
/// small enough that SQLite's WAL is checkpointed as it goes.
const SEED_CHUNK: u64 = 100_000;
/// Far-future slots start this far ahead, one every `FAR_STEP_US`.
const FAR_AHEAD: TimeDelta = TimeDelta::days(2);
const FAR_STEP_US: i64 = 2_000_000;

struct Settings {
    engines: Vec<Kind>,
    slots: u64,
    rate: u64,
    seconds: u64,
    lead_secs: u64,
    tick_ms: u64,
    claim_limit: i64,
    workers: usize,
    hold_ms: u64,
    grace_secs: u64,
    postgres_url: String,
}

impl Settings {
    fn from_env() -> Settings {
        fn num(name: &str, default: u64) -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        }
        let engines = match std::env::var("ENGINE").as_deref() {
            Ok("sqlite") => vec![Kind::Sqlite],
            Ok("postgres") => vec![Kind::Postgres],
            Ok("both") | Err(_) => vec![Kind::Sqlite, Kind::Postgres],
            Ok(other) => panic!("ENGINE={other:?}: use sqlite, postgres or both"),
        };
        let rate = num("RATE", 500).max(1);
        let seconds = num("SECONDS", 60).max(1);
        Settings {
            engines,
            // The measured stream is part of the slots, so there must be
            // room for it.
            slots: num("SLOTS", 1_000_000).max(rate * seconds),
            rate,
            seconds,
            lead_secs: num("LEAD_SECS", 5).max(1),
            tick_ms: num("TICK_MS", 50).max(1),
            claim_limit: i64::try_from(num("CLAIM_LIMIT", 500).max(1)).unwrap_or(i64::MAX),
            workers: usize::try_from(num("WORKERS", 4).max(1)).unwrap_or(1),
            hold_ms: num("HOLD_MS", 0),
            grace_secs: num("GRACE_SECS", 30),
            postgres_url: std::env::var("SLOTGATE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into()),
        }
    }

    fn stream(&self) -> u64 {
        self.rate * self.seconds
    }

    fn command_line(&self) -> String {
        let engine = match self.engines.as_slice() {
            [Kind::Sqlite] => "sqlite",
            [Kind::Postgres] => "postgres",
            _ => "both",
        };
        format!(
            "ENGINE={engine} SLOTS={} RATE={} SECONDS={} LEAD_SECS={} TICK_MS={} CLAIM_LIMIT={} \
             WORKERS={} HOLD_MS={} GRACE_SECS={} cargo bench --bench pending_slots",
            self.slots,
            self.rate,
            self.seconds,
            self.lead_secs,
            self.tick_ms,
            self.claim_limit,
            self.workers,
            self.hold_ms,
            self.grace_secs
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// What one engine gave.
struct Figures {
    seeded: u64,
    seed_time: Duration,
    fired: u64,
    expected: u64,
    /// Refused or failed store calls, and slots fired that were not due.
    errors: Vec<String>,
    /// Microseconds, sorted.
    lateness: Vec<i64>,
    calls_per_sec: f64,
    /// Microseconds, sorted.
    claim_times: Vec<i64>,
    rss_migrated_kb: u64,
    rss_seeded_kb: u64,
    rss_end_kb: u64,
    hwm_kb: u64,
    db_bytes: u64,
    /// Whether the database agreed with the fired count afterwards.
    verified: Result<(), String>,
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    // One thread, as `slotgate run`: SQLite's work happens on sqlx's own
    // thread per connection, PostgreSQL's on the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Vec::new();
    for &kind in &settings.engines {
        eprintln!("== {}", kind.name());
        let outcome = runtime.block_on(run_engine(&settings, kind));
        if let Err(why) = &outcome {
            eprintln!("{}: FAILED: {why}", kind.name());
        }
        rows.push((kind, outcome));
    }
    print_table(&settings, &rows);
    let all_good = rows.iter().all(|(_, o)| {
        o.as_ref()
            .is_ok_and(|f| f.fired == f.expected && f.errors.is_empty() && f.verified.is_ok())
    });
    if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A field of /proc/self/status, in kB (0 when unreadable).
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS, so each engine's peak is its own.
fn reset_peak() {
    // Best effort: without it the peak covers the whole process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Where one engine's database lives, and how it is removed.
enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        file: std::path::PathBuf,
    },
    Postgres {
        base: String,
        schema: String,
    },
}

impl Place {
    async fn create(kind: Kind, settings: &Settings) -> Result<(Place, String), String> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
                let file = dir.path().join("slotgate.db");
                let url = format!("sqlite://{}", file.display());
                Ok((Place::Sqlite { _dir: dir, file }, url))
            }
            Kind::Postgres => {
                let base = settings.postgres_url.clone();
                let schema = format!("slotgate_bench_{:016x}", rand::random::<u64>());
                admin_sql(&base, &format!("CREATE SCHEMA {schema}"))
                    .await
                    .map_err(|e| format!("PostgreSQL at {base}: {e}"))?;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Ok((Place::Postgres { base, schema }, url))
            }
        }
    }

    /// The database's size on disk: the SQLite file and its WAL, or every
    /// table of the schema with its indexes and TOAST.
    async fn size(&self, side: &mut Side) -> Result<u64, String> {
        match (self, side) {
            (Place::Sqlite { file, .. }, _) => {
                let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = file.clone().into_os_string();
                wal.push("-wal");
                Ok(len(file) + len(std::path::Path::new(&wal)))
            }
            (Place::Postgres { schema, .. }, Side::Postgres(conn)) => {
                let bytes: Option<i64> = sqlx::query_scalar(
                    "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind = 'r'",
                )
                .bind(schema)
                .fetch_one(conn)
                .await
                .map_err(|e| format!("database size: {e}"))?;
                Ok(u64::try_from(bytes.unwrap_or(0)).unwrap_or(0))
            }
            (Place::Postgres { .. }, Side::Sqlite(_)) => Err("mismatched connection".into()),
        }
    }

    async fn drop_it(self) {
        if let Place::Postgres { base, schema } = self {
            if let Err(e) = admin_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await {
                eprintln!("could not drop schema {schema}: {e}");
            }
        }
    }
}

/// Runs one statement on a connection of its own (schema set-up).
async fn admin_sql(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(sql).await?;
    conn.close().await
}

/// A connection outside the store, for seeding, checking and plans: what
/// an operator's psql or sqlite3 would do, never what a node does.
enum Side {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Side {
    async fn open(kind: Kind, url: &str) -> Result<Side, sqlx::Error> {
        Ok(match kind {
            Kind::Sqlite => Side::Sqlite(sqlx::SqliteConnection::connect(url).await?),
            Kind::Postgres => Side::Postgres(sqlx::PgConnection::connect(url).await?),
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<u64, String> {
        let done = match self {
            Side::Sqlite(c) => c.execute(sql).await.map(|r| r.rows_affected()),
            Side::Postgres(c) => c.execute(sql).await.map(|r| r.rows_affected()),
        };
        done.map_err(|e| format!("{e}\n  in: {sql}"))
    }

    async fn count(&mut self, sql: &str) -> Result<i64, String> {
        let n = match self {
            Side::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Side::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        };
        n.map_err(|e| format!("{e}\n  in: {sql}"))
    }

    async fn close(self) {
        let _ = match self {
            Side::Sqlite(c) => c.close().await,
            Side::Postgres(c) => c.close().await,
        };
    }
}

/// The engine's SQL for an instant given as microseconds since the epoch
/// (an SQL expression): SQLite stores fixed-width RFC 3339 text with six
/// fractional digits (see `store::sqlite`), PostgreSQL a timestamptz.
fn instant_sql(kind: Kind, us: &str) -> String {
    match kind {
        Kind::Sqlite => format!(
            "(strftime('%Y-%m-%dT%H:%M:%S', ({us}) / 1000000, 'unixepoch') \
             || printf('.%06dZ', ({us}) % 1000000))"
        ),
        Kind::Postgres => format!("(timestamptz 'epoch' + ({us}) * interval '1 microsecond')"),
    }
}

/// A literal instant, for the plan checks.
fn instant_literal(kind: Kind, t: DateTime<Utc>) -> String {
    match kind {
        Kind::Sqlite => format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        Kind::Postgres => format!("timestamptz '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
    }
}

/// Writes slots `lo..hi` in one transaction: for each, a consent request
/// answered with the slot, its ended hold, and the pending callback.
/// `slot_us` is the slot's start in microseconds as an SQL expression of
/// the row number `i`. Ids are random hex like `consent::new_id`'s, so the
/// indexes grow as they do in production rather than in key order.
async fn seed_range(
    side: &mut Side,
    kind: Kind,
    (enterprise, person): (&str, &str),
    lo: u64,
    hi: u64,
    slot_us: &str,
    created_us: i64,
) -> Result<(), String> {
    let (series, random_id, number) = match kind {
        Kind::Sqlite => (
            format!(
                "WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s \
                 WHERE i + 1 < {hi}) SELECT i"
            ),
            "lower(hex(randomblob(16)))",
            "'+3361' || printf('%07d', i % 10000000)",
        ),
        Kind::Postgres => (
            format!(
                "WITH s(i) AS (SELECT generate_series({lo}::bigint, {hi}::bigint - 1)) SELECT i"
            ),
            "md5(random()::text || i::text)",
            "'+3361' || lpad((i % 10000000)::text, 7, '0')",
        ),
    };
    let ts = |us: &str| instant_sql(kind, us);
    let created = ts(&created_us.to_string());
    let slot = ts("slot");
    let slot_end = ts("slot + 1800000000");
    let expires = ts(&(created_us + 86_400_000_000).to_string());
    side.exec("BEGIN").await?;
    side.exec("DELETE FROM bench_seed").await?;
    side.exec(&format!(
        "INSERT INTO bench_seed (i, rq, hd, cb, slot, number) \
         {series}, {random_id}, {random_id}, {random_id}, {slot_us}, {number} FROM s"
    ))
    .await?;
    side.exec(&format!(
        "INSERT INTO consent_requests (id, enterprise_id, person_id, number, scope, hold_id, \
           state, answer_kind, answer_start, answer_end, created_at, updated_at, expires_at, \
           version) \
         SELECT rq, '{enterprise}', '{person}', number, 'campaign:{CAMPAIGN}', hd, 'answered', \
           'slot', {slot}, {slot_end}, {created}, {created}, {expires}, 2 FROM bench_seed"
    ))
    .await?;
    side.exec(&format!(
        "INSERT INTO holds (id, request_id, enterprise_id, campaign, callee, caller, \
           pbx_target, state, created_at, ended_at) \
         SELECT hd, rq, '{enterprise}', '{CAMPAIGN}', number, 'sip:4001@10.0.0.5', \
           'sip:4001@10.0.0.5:5060', 'ended', {created}, {created} FROM bench_seed"
    ))
    .await?;
    side.exec(&format!(
        "INSERT INTO scheduled_callbacks (id, request_id, hold_id, enterprise_id, campaign, \
           callee, caller, pbx_target, slot_start, slot_end, status, created_at) \
         SELECT cb, rq, hd, '{enterprise}', '{CAMPAIGN}', number, 'sip:4001@10.0.0.5', \
           'sip:4001@10.0.0.5:5060', {slot}, {slot_end}, 'pending', {created} FROM bench_seed"
    ))
    .await?;
    side.exec("COMMIT").await?;
    Ok(())
}

/// A trusted enterprise and one subscribed person: the parents every
/// request points at, written through the store like any other.
async fn parents(store: &Store, now: DateTime<Utc>) -> Result<(String, String), String> {
    let e = store
        .create_enterprise(
            &NewEnterprise {
                name: "Bench Energie SAS".into(),
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
    let number = E164::parse("+33612345678", None).map_err(|e| e.to_string())?;
    let person = store
        .create_person(&[Identifier::Phone(number)], now)
        .await
        .map_err(|e| e.to_string())?;
    store
        .set_subscription(&person.id, &e.id, SubscriptionStatus::Active, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok((e.id, person.id))
}

async fn run_engine(settings: &Settings, kind: Kind) -> Result<Figures, String> {
    let (place, url) = Place::create(kind, settings).await?;
    let outcome = measure(settings, kind, &place, &url).await;
    place.drop_it().await;
    outcome
}

async fn measure(
    settings: &Settings,
    kind: Kind,
    place: &Place,
    url: &str,
) -> Result<Figures, String> {
    reset_peak();
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let now = Utc::now();
    let who = parents(&store, now).await?;
    let rss_migrated_kb = status_kb("VmRSS:");

    // Seeding.
    let mut side = Side::open(kind, url).await.map_err(|e| e.to_string())?;
    let seed_table = match kind {
        Kind::Sqlite => {
            "CREATE TEMP TABLE bench_seed (i INTEGER PRIMARY KEY, rq TEXT, hd TEXT, cb TEXT, \
             slot INTEGER, number TEXT)"
        }
        // Setup only: losing the seed to a crash costs nothing.
        Kind::Postgres => {
            "SET synchronous_commit = off; \
             CREATE TEMP TABLE bench_seed (i BIGINT PRIMARY KEY, rq TEXT, hd TEXT, cb TEXT, \
             slot BIGINT, number TEXT)"
        }
    };
    side.exec(seed_table).await?;
    let stream = settings.stream();
    let far = settings.slots - stream;
    let seed_start = Instant::now();
    let created_us = micros(now);
    let far_from = micros(now + FAR_AHEAD);
    let mut lo = 0;
    while lo < far {
        let hi = (lo + SEED_CHUNK).min(far);
        let slot_us = format!("{far_from} + i * {FAR_STEP_US}");
        seed_range(
            &mut side,
            kind,
            (&who.0, &who.1),
            lo,
            hi,
            &slot_us,
            created_us,
        )
        .await?;
        lo = hi;
        eprintln!(
            "  seeded {hi} far slots ({:.1} s)",
            seed_start.elapsed().as_secs_f64()
        );
    }
    // The stream goes last so that its times can start just after seeding.
    let stream_start = Utc::now() + TimeDelta::seconds(settings.lead_secs as i64);
    let stream_from = micros(stream_start);
    let rate = settings.rate;
    let slot_us = format!("{stream_from} + ((i - {far}) * 1000000) / {rate}");
    seed_range(
        &mut side,
        kind,
        (&who.0, &who.1),
        far,
        settings.slots,
        &slot_us,
        created_us,
    )
    .await?;
    side.exec("DROP TABLE bench_seed").await?;
    let seed_time = seed_start.elapsed();
    let pending = side
        .count("SELECT count(*) FROM scheduled_callbacks WHERE status = 'pending'")
        .await?;
    eprintln!(
        "  seeded {pending} pending callbacks in {:.1} s; the stream starts in {:.1} s",
        seed_time.as_secs_f64(),
        (stream_start - Utc::now()).as_seconds_f64()
    );
    if Utc::now() >= stream_start {
        eprintln!(
            "  warning: seeding the stream took longer than LEAD_SECS: its first slots start late"
        );
    }
    let rss_seeded_kb = status_kb("VmRSS:");

    // The node.
    let run = scheduler(settings, &store, stream_start).await;

    let mut errors = run.errors;
    let far_edge = stream_start + TimeDelta::seconds(settings.seconds as i64);
    let early = run.fired_slots.iter().filter(|s| **s >= far_edge).count();
    if early > 0 {
        errors.push(format!("{early} slots fired that were not due"));
    }
    let fired = run.lateness.len() as u64;
    let mut lateness = run.lateness;
    lateness.sort_unstable();
    let mut claim_times = run.claim_times;
    let claims = claim_times.len() as u64;
    claim_times.sort_unstable();
    let calls_per_sec = match run.last_commit {
        Some(last) if last > stream_start => fired as f64 / (last - stream_start).as_seconds_f64(),
        _ => 0.0,
    };
    eprintln!("  {claims} claims, {fired} fired, {} errors", errors.len());
    let rss_end_kb = status_kb("VmRSS:");
    let hwm_kb = status_kb("VmHWM:");

    let verified = verify(&mut side, settings, fired).await;
    print_plans(&mut side, kind, settings).await;
    store.close().await;
    let db_bytes = place.size(&mut side).await?;
    side.close().await;
    Ok(Figures {
        seeded: u64::try_from(pending).unwrap_or(0),
        seed_time,
        fired,
        expected: stream,
        errors,
        lateness,
        calls_per_sec,
        claim_times,
        rss_migrated_kb,
        rss_seeded_kb,
        rss_end_kb,
        hwm_kb,
        db_bytes,
        verified,
    })
}

/// What the node saw.
struct Run {
    /// Microseconds from slot start to `begin_attempt`'s commit.
    lateness: Vec<i64>,
    fired_slots: Vec<DateTime<Utc>>,
    last_commit: Option<DateTime<Utc>>,
    /// Microseconds per `claim_due_callbacks`.
    claim_times: Vec<i64>,
    errors: Vec<String>,
}

/// What one begin-attempt worker saw, and the finishing tasks it started.
#[derive(Default)]
struct WorkerLog {
    lateness: Vec<i64>,
    fired_slots: Vec<DateTime<Utc>>,
    last_commit: Option<DateTime<Utc>>,
    errors: Vec<String>,
    finishing: Vec<JoinHandle<Result<(), String>>>,
}

/// The scheduler as a node runs it, until every slot of the stream has
/// fired or `GRACE_SECS` after the last one is due.
async fn scheduler(settings: &Settings, store: &Store, stream_start: DateTime<Utc>) -> Run {
    let expected = settings.stream();
    let fired = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::unbounded_channel::<ScheduledCallback>();
    // The workers share one queue: whichever is free takes the next
    // callback, as a pool of dialling tasks would.
    let rx = Arc::new(Mutex::new(rx));
    let hold = Duration::from_millis(settings.hold_ms);
    let mut workers = Vec::new();
    for _ in 0..settings.workers {
        let rx = rx.clone();
        let store = store.clone();
        let fired = fired.clone();
        workers.push(tokio::spawn(async move {
            let mut log = WorkerLog::default();
            loop {
                let next = rx.lock().await.recv().await;
                let Some(callback) = next else { break };
                match store.begin_attempt(&callback.id, NODE, Utc::now()).await {
                    Ok(attempt) => {
                        // The INVITE would leave now.
                        let committed = Utc::now();
                        log.lateness.push(
                            (committed - callback.slot_start)
                                .num_microseconds()
                                .unwrap_or(i64::MAX),
                        );
                        log.fired_slots.push(callback.slot_start);
                        log.last_commit = Some(committed);
                        fired.fetch_add(1, Ordering::Relaxed);
                        let store = store.clone();
                        log.finishing.push(tokio::spawn(async move {
                            tokio::time::sleep(hold).await;
                            store
                                .finish_attempt(&attempt.id, AttemptOutcome::Answered, Utc::now())
                                .await
                                .map(|_| ())
                                .map_err(|e| format!("finish_attempt: {e}"))
                        }));
                    }
                    Err(e) => log
                        .errors
                        .push(format!("begin_attempt {}: {e}", callback.id)),
                }
            }
            log
        }));
    }

    let mut claim_times = Vec::new();
    let mut errors = Vec::new();
    let end = stream_start + TimeDelta::seconds((settings.seconds + settings.grace_secs) as i64);
    let mut tick = tokio::time::interval(Duration::from_millis(settings.tick_ms));
    // A slow claim delays the next tick instead of bunching the missed ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while fired.load(Ordering::Relaxed) < expected && Utc::now() < end {
        tick.tick().await;
        let t0 = Instant::now();
        match store
            .claim_due_callbacks(NODE, Utc::now(), LEASE, settings.claim_limit)
            .await
        {
            Ok(claimed) => {
                claim_times.push(i64::try_from(t0.elapsed().as_micros()).unwrap_or(i64::MAX));
                for callback in claimed {
                    // Receivers live until the sender is dropped below.
                    let _ = tx.send(callback);
                }
            }
            Err(e) => errors.push(format!("claim_due_callbacks: {e}")),
        }
    }
    drop(tx);

    let mut run = Run {
        lateness: Vec::new(),
        fired_slots: Vec::new(),
        last_commit: None,
        claim_times,
        errors,
    };
    for worker in workers {
        let log = match worker.await {
            Ok(log) => log,
            Err(e) => {
                run.errors.push(format!("worker: {e}"));
                continue;
            }
        };
        run.lateness.extend(log.lateness);
        run.fired_slots.extend(log.fired_slots);
        run.last_commit = run.last_commit.max(log.last_commit);
        run.errors.extend(log.errors);
        for finishing in log.finishing {
            match finishing.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => run.errors.push(e),
                Err(e) => run.errors.push(format!("finishing task: {e}")),
            }
        }
    }
    run
}

/// The database must agree with what the node saw: one answered attempt
/// and one `done` callback per fired slot, and every other slot pending.
async fn verify(side: &mut Side, settings: &Settings, fired: u64) -> Result<(), String> {
    let fired = i64::try_from(fired).unwrap_or(i64::MAX);
    let slots = i64::try_from(settings.slots).unwrap_or(i64::MAX);
    let done = side
        .count("SELECT count(*) FROM scheduled_callbacks WHERE status = 'done'")
        .await?;
    let answered = side
        .count("SELECT count(*) FROM callback_attempts WHERE state = 'answered'")
        .await?;
    let attempts = side.count("SELECT count(*) FROM callback_attempts").await?;
    let pending = side
        .count("SELECT count(*) FROM scheduled_callbacks WHERE status = 'pending'")
        .await?;
    if done == fired && answered == fired && attempts == fired && pending == slots - fired {
        Ok(())
    } else {
        Err(format!(
            "fired {fired}, but the database has {done} done, {answered} answered of \
             {attempts} attempts, {pending} pending of {slots}"
        ))
    }
}

/// The claim statement of `claim_due_callbacks`, with literals for its
/// parameters. A copy of the SQL in `store/scheduler_queries.rs`: keep
/// the two in step. Each status is read on its own as a range of
/// `scheduled_callbacks_due` in index order, limited, and only the two
/// short lists are merged: one range per status OR-ed together cannot be
/// read in `slot_start` order, so a backlog would cost every claim a read
/// and sort of every due row.
fn claim_sql(kind: Kind, now: &str, until: &str, limit: &str) -> String {
    let skip_locked = skip_locked(kind);
    let due = format!(
        "AND (c.retry_at IS NULL OR c.retry_at <= {now}) \
         AND NOT EXISTS (SELECT 1 FROM callback_attempts a \
           WHERE a.callback_id = c.id AND a.state = 'dialling')"
    );
    format!(
        "UPDATE scheduled_callbacks SET status = 'claimed', claimed_by = '{NODE}', \
           lease_until = {until} \
         WHERE id IN ( \
           SELECT id FROM ( \
             SELECT id, slot_start FROM ( \
               SELECT c.id, c.slot_start FROM scheduled_callbacks c \
               WHERE c.status = 'pending' AND c.slot_start <= {now} {due} \
               ORDER BY c.slot_start, c.id LIMIT {limit}{skip_locked}) AS p \
             UNION ALL \
             SELECT id, slot_start FROM ( \
               SELECT c.id, c.slot_start FROM scheduled_callbacks c \
               WHERE c.status = 'claimed' AND c.slot_start <= {now} \
                 AND c.lease_until <= {now} {due} \
               ORDER BY c.slot_start, c.id LIMIT {limit}{skip_locked}) AS e \
           ) AS due ORDER BY slot_start, id LIMIT {limit}) \
         RETURNING id"
    )
}

/// The recovery statement that precedes the claim in the same
/// transaction (also a copy).
fn recovery_sql(kind: Kind, now: &str) -> String {
    format!(
        "UPDATE scheduled_callbacks SET status = 'unknown' WHERE id IN ( \
           SELECT c.id FROM scheduled_callbacks c \
           WHERE c.status = 'claimed' AND c.lease_until <= {now} \
             AND EXISTS (SELECT 1 FROM callback_attempts a \
               WHERE a.callback_id = c.id AND a.state = 'dialling'){}) \
         RETURNING id",
        skip_locked(kind)
    )
}

fn skip_locked(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => "",
        Kind::Postgres => " FOR UPDATE SKIP LOCKED",
    }
}

/// Prints the plans of the claim transaction's statements at full size,
/// in the steady state (now: nothing due) and with a backlog (every slot
/// due, as after an outage). Nothing is kept: every statement runs in a
/// transaction that is rolled back.
async fn print_plans(side: &mut Side, kind: Kind, settings: &Settings) {
    let now = Utc::now();
    let backlog = now + FAR_AHEAD + TimeDelta::days(60);
    let limit = settings.claim_limit.to_string();
    let at = |t: DateTime<Utc>| (instant_literal(kind, t), instant_literal(kind, t + LEASE));
    // PostgreSQL plans by its statistics, which a table this fresh may
    // not have yet: the plans as the run saw them, then as they will be
    // once autovacuum has analysed the table (ANALYZE is rolled back too).
    let stats: &[bool] = match kind {
        Kind::Sqlite => &[false],
        Kind::Postgres => &[false, true],
    };
    for &analyze in stats {
        let suffix = if analyze { ", after ANALYZE" } else { "" };
        for (label, t) in [("steady state", now), ("backlog", backlog)] {
            let (now, until) = at(t);
            for (what, sql) in [
                ("recovery", recovery_sql(kind, &now)),
                ("claim", claim_sql(kind, &now, &until, &limit)),
            ] {
                let plan = in_rolled_back(side, |side| {
                    Box::pin(async move {
                        if analyze {
                            side.exec("ANALYZE scheduled_callbacks, callback_attempts")
                                .await?;
                        }
                        explain(side, kind, sql).await
                    })
                })
                .await;
                print_plan(&format!("{what}, {label}{suffix}"), plan);
            }
        }
    }
    if kind == Kind::Postgres {
        // What a prepared statement may switch to after five executions:
        // one plan for every `now`, chosen without knowing it.
        let sql = claim_sql(kind, "$1", "$2", "$3");
        let prepare = format!("PREPARE bench_claim (timestamptz, timestamptz, bigint) AS {sql}");
        let (now, until) = at(now);
        let execute = format!("EXPLAIN (ANALYZE) EXECUTE bench_claim ({now}, {until}, {limit})");
        let plan = in_rolled_back(side, |side| {
            Box::pin(async move {
                side.exec("SET LOCAL plan_cache_mode = force_generic_plan")
                    .await?;
                side.exec(&prepare).await?;
                let plan = plan_lines(side, &execute).await;
                // Prepared statements belong to the session, not the
                // transaction.
                side.exec("DEALLOCATE bench_claim").await?;
                plan
            })
        })
        .await;
        print_plan("claim, steady state, generic plan", plan);
    }
}

fn print_plan(what: &str, plan: Result<String, String>) {
    match plan {
        Ok(plan) => eprintln!("  plan, {what}:\n{plan}"),
        Err(e) => eprintln!("  plan, {what}: {e}"),
    }
}

/// The statement's plan and what it took when run: `EXPLAIN QUERY PLAN`
/// and a timed run on SQLite, `EXPLAIN ANALYZE` on PostgreSQL. Call it
/// inside a transaction that is rolled back.
async fn explain(side: &mut Side, kind: Kind, sql: String) -> Result<String, String> {
    match kind {
        Kind::Sqlite => {
            let mut plan = plan_lines(side, &format!("EXPLAIN QUERY PLAN {sql}")).await?;
            let t0 = Instant::now();
            let rows = side.exec(&sql).await?;
            plan.push_str(&format!(
                "    ran in {:.2} ms, {rows} rows\n",
                t0.elapsed().as_secs_f64() * 1000.0
            ));
            Ok(plan)
        }
        Kind::Postgres => plan_lines(side, &format!("EXPLAIN (ANALYZE) {sql}")).await,
    }
}

/// Runs `body` in a transaction that is rolled back whatever happens, so
/// that what it writes never lands and a failed statement does not leave
/// the connection in an aborted transaction.
async fn in_rolled_back<T>(
    side: &mut Side,
    body: impl for<'a> FnOnce(
        &'a mut Side,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, String>> + 'a>,
    >,
) -> Result<T, String> {
    side.exec("BEGIN").await?;
    let outcome = body(side).await;
    side.exec("ROLLBACK").await?;
    outcome
}

/// The plan as indented text: SQLite's rows (id, parent, detail) as a
/// tree, PostgreSQL's lines as they come.
async fn plan_lines(side: &mut Side, sql: &str) -> Result<String, String> {
    let mut out = String::new();
    match side {
        Side::Sqlite(c) => {
            let rows = sqlx::query(sql)
                .fetch_all(c)
                .await
                .map_err(|e| e.to_string())?;
            let mut depth: Vec<(i64, usize)> = Vec::new();
            for row in rows {
                let id: i64 = row.try_get(0).map_err(|e| e.to_string())?;
                let parent: i64 = row.try_get(1).map_err(|e| e.to_string())?;
                let detail: String = row.try_get(3).map_err(|e| e.to_string())?;
                let level = depth
                    .iter()
                    .find(|(i, _)| *i == parent)
                    .map_or(0, |(_, d)| d + 1);
                depth.push((id, level));
                out.push_str(&format!("    {}{detail}\n", "  ".repeat(level)));
            }
        }
        Side::Postgres(c) => {
            let rows = sqlx::query(sql)
                .fetch_all(c)
                .await
                .map_err(|e| e.to_string())?;
            for row in rows {
                let line: String = row.try_get(0).map_err(|e| e.to_string())?;
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    Ok(out)
}

fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn print_table(settings: &Settings, rows: &[(Kind, Result<Figures, String>)]) {
    println!();
    println!("command: {}", settings.command_line());
    println!(
        "{:<9} {:>8} {:>7} {:>13} {:>21} {:>8} {:>13} {:>7} {:>20} {:>7} {:>7}  checks",
        "engine",
        "slots",
        "seed s",
        "fired/expect",
        "late p50/p90/p99 ms",
        "max ms",
        "claim p50/99",
        "calls/s",
        "rss MB mig/seed/end",
        "peak MB",
        "db MB"
    );
    for (kind, outcome) in rows {
        match outcome {
            Ok(f) => {
                let checks = match (&f.verified, f.errors.as_slice()) {
                    (Ok(()), []) => "ok".to_string(),
                    (verified, errors) => {
                        let mut why: Vec<String> = errors.iter().take(3).cloned().collect();
                        if errors.len() > 3 {
                            why.push(format!("… {} errors in all", errors.len()));
                        }
                        if let Err(e) = verified {
                            why.push(e.clone());
                        }
                        why.join("; ")
                    }
                };
                println!(
                    "{:<9} {:>8} {:>7.1} {:>13} {:>21} {:>8.1} {:>13} {:>7.0} {:>20} {:>7.0} {:>7.0}  {}",
                    kind.name(),
                    f.seeded,
                    f.seed_time.as_secs_f64(),
                    format!("{}/{}", f.fired, f.expected),
                    format!(
                        "{:.1}/{:.1}/{:.1}",
                        percentile_ms(&f.lateness, 0.50),
                        percentile_ms(&f.lateness, 0.90),
                        percentile_ms(&f.lateness, 0.99)
                    ),
                    percentile_ms(&f.lateness, 1.0),
                    format!(
                        "{:.2}/{:.2}",
                        percentile_ms(&f.claim_times, 0.50),
                        percentile_ms(&f.claim_times, 0.99)
                    ),
                    f.calls_per_sec,
                    format!(
                        "{:.0}/{:.0}/{:.0}",
                        mb(f.rss_migrated_kb),
                        mb(f.rss_seeded_kb),
                        mb(f.rss_end_kb)
                    ),
                    mb(f.hwm_kb),
                    f.db_bytes as f64 / 1e6,
                    checks
                );
            }
            Err(why) => println!("{:<9} FAILED: {why}", kind.name()),
        }
    }
}
