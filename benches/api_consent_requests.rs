//! Consent-request creations per second through the enterprise API, on
//! SQLite and on PostgreSQL, with the latency each client saw.
//!
//! For each engine the real router serves 127.0.0.1:0 the way `slotgate
//! run` serves it (one current-thread runtime; argon2 and SQLite work on
//! their own threads), over a fresh database: SQLite in a temporary
//! directory, PostgreSQL in a schema of its own, dropped at the end. One
//! trusted enterprise with one API key has `PEOPLE` subscribed people;
//! `CONCURRENCY` keep-alive clients then POST /v1/consent-requests for
//! `WARMUP_SECS` (not measured) and `SECS` (measured), each request with a
//! unique Idempotency-Key and for the next person in turn, so the load
//! spreads over many people like a dialer's. Afterwards the requests in the
//! database must number exactly the 202s the clients received.
//!
//! `cargo bench --bench api_consent_requests` prints one row per engine.
//! Settings (environment): CONCURRENCY (32), SECS (10), WARMUP_SECS (1),
//! PEOPLE (1000), ENGINES (sqlite,postgres), SERVER_THREADS (1: as in
//! production; more gives the server a multi-thread runtime), and
//! SLOTGATE_TEST_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test).
//! PostgreSQL is not optional: unreachable, its row says so and the bench
//! exits non-zero.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use reqwest::Client;
use serde_json::json;
use slotgate::config::ApiConfig;
use slotgate::consent::{
    ConsentPolicy, Identifier, NewEnterprise, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::Store;
use sqlx::{Connection, Executor};

// As in the binary: the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Settings {
    concurrency: usize,
    secs: u64,
    warmup_secs: u64,
    people: usize,
    engines: Vec<String>,
    server_threads: usize,
    postgres_url: String,
}

impl Settings {
    fn from_env() -> Settings {
        fn num(name: &str, default: u64) -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        }
        Settings {
            concurrency: num("CONCURRENCY", 32).max(1) as usize,
            secs: num("SECS", 10).max(1),
            warmup_secs: num("WARMUP_SECS", 1),
            people: num("PEOPLE", 1000).max(1) as usize,
            engines: std::env::var("ENGINES")
                .unwrap_or_else(|_| "sqlite,postgres".into())
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            server_threads: num("SERVER_THREADS", 1).max(1) as usize,
            postgres_url: std::env::var("SLOTGATE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into()),
        }
    }

    fn command_line(&self) -> String {
        format!(
            "CONCURRENCY={} SECS={} WARMUP_SECS={} PEOPLE={} SERVER_THREADS={} ENGINES={} \
             cargo bench --bench api_consent_requests",
            self.concurrency,
            self.secs,
            self.warmup_secs,
            self.people,
            self.server_threads,
            self.engines.join(",")
        )
    }
}

/// What the server side hands the clients once it is listening.
struct Ready {
    base: String,
    key: String,
    numbers: Vec<String>,
}

/// What the clients saw in one phase.
#[derive(Default)]
struct Tally {
    /// Microseconds per request, every request.
    latencies: Vec<u32>,
    accepted: u64,
    /// Anything but 202, by status ("io" when no response came).
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.accepted += other.accepted;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        f64::from(sorted[rank - 1]) / 1000.0
    }
}

enum Outcome {
    Measured {
        tally: Tally,
        stored: i64,
        expected: u64,
    },
    Failed(String),
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let mut rows = Vec::new();
    for engine in &settings.engines {
        let outcome = run_engine(&settings, engine, &clients);
        if let Outcome::Failed(why) = &outcome {
            eprintln!("{engine}: FAILED: {why}");
        }
        rows.push((engine.clone(), outcome));
    }
    print_table(&settings, &rows);
    // A count that disagrees with the 202s means the figure is not real.
    let all_good = rows.iter().all(|(_, o)| match o {
        Outcome::Measured {
            stored, expected, ..
        } => u64::try_from(*stored).ok() == Some(*expected),
        Outcome::Failed(_) => false,
    });
    if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One engine: the server on a thread of its own (its runtime, its
/// database), the clients on `clients`.
fn run_engine(settings: &Settings, engine: &str, clients: &tokio::runtime::Runtime) -> Outcome {
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (engine_name, people, threads, pg) = (
        engine.to_string(),
        settings.people,
        settings.server_threads,
        settings.postgres_url.clone(),
    );
    let server = std::thread::spawn(move || -> Result<i64, String> {
        let runtime = if threads > 1 {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .map_err(|e| format!("server runtime: {e}"))?;
        runtime.block_on(server(&engine_name, &pg, people, ready_tx, stop_rx))
    });
    let Ok(ready) = ready_rx.recv() else {
        // The server thread ended before it was ready: it says why.
        return match server.join() {
            Ok(Err(why)) => Outcome::Failed(why),
            Ok(Ok(_)) => Outcome::Failed("the server stopped before it was ready".into()),
            Err(_) => Outcome::Failed("the server thread panicked".into()),
        };
    };
    let warmup = clients.block_on(drive(
        settings,
        &ready,
        engine,
        "warmup",
        Duration::from_secs(settings.warmup_secs),
    ));
    let tally = clients.block_on(drive(
        settings,
        &ready,
        engine,
        "run",
        Duration::from_secs(settings.secs),
    ));
    let _ = stop_tx.send(());
    match server.join() {
        Ok(Ok(stored)) => Outcome::Measured {
            expected: warmup.accepted + tally.accepted,
            tally,
            stored,
        },
        Ok(Err(why)) => Outcome::Failed(why),
        Err(_) => Outcome::Failed("the server thread panicked".into()),
    }
}

/// Sets up the database and the tenant, serves until stopped, then counts
/// the stored requests and removes the database.
async fn server(
    engine: &str,
    postgres_url: &str,
    people: usize,
    ready: mpsc::Sender<Ready>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<i64, String> {
    match engine {
        "sqlite" => {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
            serve_on(&url, people, ready, stop).await
        }
        "postgres" => {
            let mut admin = sqlx::PgConnection::connect(postgres_url)
                .await
                .map_err(|e| {
                    format!(
                        "PostgreSQL is not reachable at {postgres_url}: {e} (start it there, \
                         or set SLOTGATE_TEST_POSTGRES_URL)"
                    )
                })?;
            let schema = format!("slotgate_bench_{:016x}", rand::random::<u64>());
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .map_err(|e| format!("creating schema {schema}: {e}"))?;
            let separator = if postgres_url.contains('?') { '&' } else { '?' };
            let url = format!("{postgres_url}{separator}options=-c%20search_path%3D{schema}");
            let outcome = serve_on(&url, people, ready, stop).await;
            let dropped = admin
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await;
            let _ = admin.close().await;
            let stored = outcome?;
            dropped.map_err(|e| format!("dropping schema {schema}: {e}"))?;
            Ok(stored)
        }
        other => Err(format!("unknown engine {other:?} (sqlite or postgres)")),
    }
}

async fn serve_on(
    url: &str,
    people: usize,
    ready: mpsc::Sender<Ready>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<i64, String> {
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let (key, numbers) = tenant(&store, people)
        .await
        .map_err(|e| format!("setting up the tenant: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the API: {e}"))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let config = ApiConfig {
        listen: None,
        max_body_bytes: 65_536,
        admin_token: None,
        allow_private_webhook_urls: false,
    };
    let router = slotgate::api::router(store.clone(), &config);
    let served = tokio::spawn(slotgate::api::serve(listener, router, async move {
        let _ = stop.await;
    }));
    ready
        .send(Ready { base, key, numbers })
        .map_err(|_| "the clients went away".to_string())?;
    served
        .await
        .map_err(|e| format!("API task: {e}"))?
        .map_err(|e| format!("API server: {e}"))?;
    let stored = count_requests(url).await;
    store.close().await;
    stored
}

/// A trusted enterprise, its key, and `people` people subscribed to it;
/// gives the key and the people's numbers.
async fn tenant(
    store: &Store,
    people: usize,
) -> Result<(String, Vec<String>), slotgate::store::ConsentStoreError> {
    let now = Utc::now();
    let enterprise = store
        .create_enterprise(
            &NewEnterprise {
                name: "Bench Energy".into(),
                display_name: "Bench Energy".into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: None,
                crm_webhook_secret: None,
                consent_policy: ConsentPolicy::Days(30),
                status: TrustStatus::Trusted,
            },
            now,
        )
        .await?;
    let key = store.create_api_key(&enterprise.id, now).await?;
    let mut numbers = Vec::with_capacity(people);
    for i in 0..people {
        let number = format!("+3361{i:07}");
        let phone = Identifier::Phone(E164::parse(&number, None)?);
        let person = store.create_person(&[phone], now).await?;
        store
            .set_subscription(&person.id, &enterprise.id, SubscriptionStatus::Active, now)
            .await?;
        numbers.push(number);
    }
    Ok((key.key, numbers))
}

/// Requests in the database, counted with SQL of its own rather than
/// through the API: the figure must not depend on what is measured.
async fn count_requests(url: &str) -> Result<i64, String> {
    const SQL: &str = "SELECT COUNT(*) FROM consent_requests";
    let counted = if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let n = sqlx::query_scalar::<_, i64>(SQL).fetch_one(&mut conn).await;
        let _ = conn.close().await;
        n
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let n = sqlx::query_scalar::<_, i64>(SQL).fetch_one(&mut conn).await;
        let _ = conn.close().await;
        n
    };
    counted.map_err(|e| format!("counting consent requests: {e}"))
}

/// `CONCURRENCY` clients, each on a keep-alive connection of its own,
/// POSTing back to back for `length`.
async fn drive(
    settings: &Settings,
    ready: &Ready,
    engine: &str,
    phase: &str,
    length: Duration,
) -> Tally {
    let start = Instant::now();
    let deadline = start + length;
    let url = format!("{}/v1/consent-requests", ready.base);
    let mut workers = Vec::with_capacity(settings.concurrency);
    for worker in 0..settings.concurrency {
        let client = Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("HTTP client");
        let (url, key, numbers) = (url.clone(), ready.key.clone(), ready.numbers.clone());
        let prefix = format!("bench-{engine}-{phase}-{worker}");
        let stride = settings.concurrency;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = worker;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let slot = Utc::now() + TimeDelta::days(1);
                let body = json!({
                    "number": numbers[i % numbers.len()],
                    "campaign": "winter-offer",
                    "preferred_options": [
                        {"start": slot, "end": slot + TimeDelta::minutes(30)},
                        {"start": slot + TimeDelta::hours(2), "end": slot + TimeDelta::hours(3)},
                    ],
                    "locale": "fr-FR",
                    "personalisation": {"first_name": "Ann", "contract": format!("C-{i:08}")},
                });
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("Idempotency-Key", format!("{prefix}-{seq}"))
                    .json(&body)
                    .send()
                    .await;
                // The body is read too: a client has not got its answer
                // until it has.
                let status = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(_) => status.to_string(),
                            Err(_) => "io".to_string(),
                        }
                    }
                    Err(_) => "io".to_string(),
                };
                let micros = sent.elapsed().as_micros();
                tally
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                if status == "202" {
                    tally.accepted += 1;
                } else {
                    *tally.errors.entry(status).or_default() += 1;
                }
                i += stride;
                seq += 1;
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await.expect("client task"));
    }
    total.elapsed = start.elapsed();
    total
}

fn print_table(settings: &Settings, rows: &[(String, Outcome)]) {
    println!();
    println!("command: {}", settings.command_line());
    println!(
        "{:<9} {:>9} {:>7} {:>12} {:>8} {:>8} {:>8} {:>8} {:>9}  errors by status",
        "engine",
        "requests",
        "errors",
        "creations/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "stored ok"
    );
    for (engine, outcome) in rows {
        match outcome {
            Outcome::Measured {
                tally,
                stored,
                expected,
            } => {
                let mut sorted = tally.latencies.clone();
                sorted.sort_unstable();
                let errors: u64 = tally.errors.values().sum();
                let by_status = if tally.errors.is_empty() {
                    "-".to_string()
                } else {
                    tally
                        .errors
                        .iter()
                        .map(|(s, n)| format!("{s}×{n}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let verified = if u64::try_from(*stored).ok() == Some(*expected) {
                    "yes".to_string()
                } else {
                    format!("NO {stored}≠{expected}")
                };
                println!(
                    "{:<9} {:>9} {:>7} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}  {}",
                    engine,
                    sorted.len(),
                    errors,
                    tally.accepted as f64 / tally.elapsed.as_secs_f64(),
                    Tally::percentile_ms(&sorted, 0.50),
                    Tally::percentile_ms(&sorted, 0.90),
                    Tally::percentile_ms(&sorted, 0.99),
                    Tally::percentile_ms(&sorted, 1.0),
                    verified,
                    by_status
                );
            }
            Outcome::Failed(why) => println!("{engine:<9} FAILED: {why}"),
        }
    }
}
