//! Persistence for slotgate, behind one interface with two engines.
//!
//! SQLite is the default because it needs no setup; PostgreSQL is how several
//! slotgate nodes share one database. Everything above this module talks to
//! [`Store`] and never learns which engine is underneath, so the same code
//! and the same tests run on both. Engine-specific SQL lives in the `sqlite`
//! and `postgres` submodules; each engine has its own embedded migrations.

/// Runs the engine's copy of a query function (the consent, outbox and
/// prompt SQL is compiled once per engine, see `consent_queries`).
macro_rules! on_engine {
    ($store:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$store.engine {
            Engine::Sqlite(pool) => super::consent_sqlite::$f(pool, $($arg),*).await,
            Engine::Postgres(pool) => super::consent_postgres::$f(pool, $($arg),*).await,
        }
    };
}

#[macro_use]
mod consent_queries;
#[macro_use]
mod outbox_queries;
#[macro_use]
mod prompt_queries;
#[macro_use]
mod hold_queries;
#[macro_use]
mod caller_id_queries;
#[macro_use]
mod scheduler_queries;

pub mod api;
pub mod caller_ids;
mod campaign_queries;
pub mod campaigns;
mod consent;
mod consent_postgres;
mod consent_sqlite;
mod group_commit;
pub mod holds;
mod key_cache;
mod outbox;
mod postgres;
pub mod prompts;
mod recorder;
pub mod scheduler;
mod single_node;
mod sqlite;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

pub use campaigns::CampaignStoreError;
pub use consent::ConsentStoreError;
pub use recorder::{spawn_recorder, CallRecorder, RecorderHandle, DEFAULT_SHUTDOWN_GRACE};
pub use single_node::SingleNodeLock;

/// How long a SQLite connection waits for another writer before giving up.
/// Writers are short batched transactions, so a few seconds covers any real
/// contention while still surfacing a stuck lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a caller waits for a pooled connection before the operation
/// fails. Shorter than sqlx's 30 s default so that an unreachable PostgreSQL
/// shows up in the logs (and in the recorder's retries) quickly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One call through the B2BUA: a call detail record.
///
/// Times are kept to the microsecond (PostgreSQL's resolution); anything
/// finer is truncated on write, identically on both engines, so a record
/// read back equals the one written whenever its times are whole
/// microseconds. NUL characters in text fields are replaced with U+FFFD on
/// write because PostgreSQL cannot store them, and a record the database
/// refuses would block the recorder's retries.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Unique id chosen by the caller; writing the same id twice keeps the
    /// first row, which makes retried batches harmless.
    pub id: String,
    /// Call-ID of the leg from the PBX.
    pub a_call_id: String,
    /// Call-ID of the leg toward the trunk, if one was created.
    pub b_call_id: Option<String>,
    /// The PBX that sent the INVITE, as `ip:port`.
    pub source: String,
    pub from_uri: String,
    pub to_uri: String,
    pub request_uri: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// Final SIP status sent to the PBX (200, 486, 487, 403 …).
    pub final_status: i32,
    /// Human-readable cause, e.g. "BYE from pbx" or "486 Busy Here from trunk".
    pub reason: String,
    /// Which side ended the call: "pbx", "trunk" or "slotgate".
    pub ended_by: Option<String>,
    /// What the gate decided for the INVITE (`forwarded`, `held-now`,
    /// `declined` …); `None` when the gate did not look at it.
    pub gate_decision: Option<String>,
    /// The consent request the call was held for, if any.
    pub consent_request_id: Option<String>,
    /// The number the trunk leg showed, when the caller ID chain chose one.
    pub caller_id_number: Option<String>,
    /// The rule of the chain that decided (`person_override`,
    /// `local_presence` … `unchanged`); `None` without caller ID.
    pub caller_id_rule: Option<String>,
    /// Why: one clause per rule tried, so the record says why the earlier
    /// rules did not apply.
    pub caller_id_why: Option<String>,
    /// The `origid` of the PASSporT that signed the call, if one did.
    pub identity_origid: Option<String>,
}

/// Why a store operation failed.
///
/// Each message carries its cause inline (it is not also exposed through
/// `source()`), so a single log line or `{:#}` chain shows it exactly once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached. `target` is the URL with
    /// any password masked, so the message is safe to log.
    #[error("cannot open the database at {target}: {cause}")]
    Connect { target: String, cause: sqlx::Error },
    /// Applying the embedded schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// A statement failed; `context` says what the store was doing.
    #[error("database error while {context}: {cause}")]
    Query {
        context: &'static str,
        cause: sqlx::Error,
    },
    /// The task that writes batched creations ended (its runtime shut
    /// down) before it answered; whether the write landed is unknown.
    #[error("the batched writer stopped before answering")]
    WriterStopped,
    /// The URL names no engine slotgate supports.
    /// Another process holds the single-node lock of the SQLite
    /// database; `path` names the lock file.
    #[error("cannot take the single-node lock {path}: {cause}")]
    Locked { path: String, cause: String },
    #[error(
        "unsupported database URL scheme {scheme:?}: use sqlite://PATH (created on first run) \
         or postgres://USER@HOST:PORT/DB (postgresql:// also works)"
    )]
    UnsupportedUrl { scheme: String },
}

impl StoreError {
    fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |cause| StoreError::Query { context, cause }
    }
}

/// Handle to the database; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    engine: Engine,
    /// Shared by the clones, so a key verified on one request is known to
    /// the next (see `key_cache`).
    verified_keys: Arc<key_cache::VerifiedKeys>,
    /// Wakes the webhook deliverer after a consent change (see `outbox`).
    webhooks: Arc<tokio::sync::Notify>,
    /// Wakes the prompt dispatcher after a consent request is created (see
    /// `prompts`).
    prompts: Arc<tokio::sync::Notify>,
    /// Carries the id of a hold whose answer was stored in this process
    /// (and, on PostgreSQL, on any node: see `holds`).
    holds: tokio::sync::broadcast::Sender<String>,
    /// Wakes the SIP loop's flag reader after a caller ID flag is written
    /// (see `caller_ids`).
    caller_id_flags: Arc<tokio::sync::Notify>,
    /// API consent-request creations waiting to be written together (SQLite
    /// only, see `group_commit`).
    creations: Arc<group_commit::GroupCommit>,
    /// The SQLite database file, for its single-node lock; `None` on
    /// PostgreSQL and in memory.
    sqlite_file: Option<Arc<std::path::PathBuf>>,
}

#[derive(Debug, Clone)]
enum Engine {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Store {
    /// Opens the database named by `url`.
    ///
    /// - `sqlite://PATH` or `sqlite:PATH`: the file is created if missing and
    ///   put in WAL mode, so readers never block the call recorder.
    ///   `sqlite::memory:` gives a private in-memory database (tests, demos).
    /// - `postgres://…` or `postgresql://…`: any libpq-style URL; a schema
    ///   other than `public` can be chosen with
    ///   `?options=-c%20search_path%3DNAME`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let (scheme, rest) = split_scheme(url);
        let mut sqlite_file = None;
        let engine = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let (pool, file) = sqlite::connect(rest).await?;
                sqlite_file = file.map(Arc::new);
                Engine::Sqlite(pool)
            }
            "postgres" | "postgresql" => Engine::Postgres(postgres::connect(url).await?),
            _ => {
                return Err(StoreError::UnsupportedUrl {
                    scheme: scheme.to_string(),
                })
            }
        };
        Ok(Store {
            engine,
            verified_keys: Arc::default(),
            webhooks: Arc::default(),
            prompts: Arc::default(),
            holds: tokio::sync::broadcast::channel(holds::WAKE_CAPACITY).0,
            caller_id_flags: Arc::default(),
            creations: Arc::default(),
            sqlite_file,
        })
    }

    /// Makes this process the only `slotgate run` on its SQLite database:
    /// the returned guard holds an exclusive lock on `<db>.lock` until it
    /// is dropped. Fails, naming the lock file, when another process holds
    /// it. PostgreSQL (several nodes by design) and in-memory databases
    /// need no lock.
    pub fn lock_single_node(&self) -> Result<SingleNodeLock, StoreError> {
        match &self.sqlite_file {
            Some(file) => single_node::lock(file),
            None => Ok(SingleNodeLock::unlocked()),
        }
    }

    /// Brings the schema up to date with the migrations embedded in the
    /// binary. Safe to run on every start and from several nodes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(pool) => sqlite::migrate(pool).await,
            Engine::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Writes `records` in one transaction: all of them or none.
    ///
    /// A record whose `id` is already stored is skipped, so a batch that is
    /// retried after an ambiguous failure (the commit landed but the reply
    /// was lost) does not fail forever on a duplicate key.
    pub async fn insert_calls(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        match &self.engine {
            Engine::Sqlite(pool) => sqlite::insert_calls(pool, records).await,
            Engine::Postgres(pool) => postgres::insert_calls(pool, records).await,
        }
    }

    /// The call whose PBX-side Call-ID is `a_call_id`; if a PBX reused a
    /// Call-ID, the most recently started call.
    pub async fn call_by_a_call_id(
        &self,
        a_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        match &self.engine {
            Engine::Sqlite(pool) => sqlite::call_by_a_call_id(pool, a_call_id).await,
            Engine::Postgres(pool) => postgres::call_by_a_call_id(pool, a_call_id).await,
        }
    }

    /// Number of stored call records.
    pub async fn count_calls(&self) -> Result<i64, StoreError> {
        match &self.engine {
            Engine::Sqlite(pool) => sqlite::count_calls(pool).await,
            Engine::Postgres(pool) => postgres::count_calls(pool).await,
        }
    }

    /// Up to `limit` call records, newest `started_at` first. A negative
    /// limit is treated as zero rather than as "no limit".
    pub async fn recent_calls(&self, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        let limit = limit.max(0);
        match &self.engine {
            Engine::Sqlite(pool) => sqlite::recent_calls(pool, limit).await,
            Engine::Postgres(pool) => postgres::recent_calls(pool, limit).await,
        }
    }

    /// Closes every pooled connection, waiting for those in use. Lets a
    /// shutdown end cleanly (SQLite checkpoints its WAL on last close).
    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(pool) => pool.close().await,
            Engine::Postgres(pool) => pool.close().await,
        }
    }
}

/// Splits `scheme:rest`; a URL without a colon has an empty scheme, which
/// then fails as unsupported with a message that lists the valid forms.
fn split_scheme(url: &str) -> (&str, &str) {
    match url.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (scheme, rest)
        }
        _ => ("", url),
    }
}

/// The URL with its password replaced by `***`, for error messages and logs.
fn redact_url(url: &str) -> String {
    let Some(authority_start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // The last '@' ends the user info: passwords may contain '@' unescaped.
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &authority[..colon],
        &url[authority_start + at..]
    )
}

/// Drops sub-microsecond precision so both engines store the same instant:
/// PostgreSQL keeps microseconds, and SQLite must round-trip identically.
fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// PostgreSQL rejects NUL in text; replacing it keeps a record with a stray
/// NUL (e.g. from a malformed SIP header) from blocking the recorder.
fn storable_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cr@t@db:5432/calls?sslmode=require"),
            "postgres://app:***@db:5432/calls?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/calls"),
            "postgres://app@db/calls"
        );
        assert_eq!(redact_url("postgres://db/calls"), "postgres://db/calls");
        assert_eq!(redact_url("sqlite://slotgate.db"), "sqlite://slotgate.db");
    }

    #[test]
    fn splits_schemes() {
        assert_eq!(split_scheme("sqlite://a.db"), ("sqlite", "//a.db"));
        assert_eq!(split_scheme("sqlite:a.db"), ("sqlite", "a.db"));
        assert_eq!(split_scheme("sqlite::memory:"), ("sqlite", ":memory:"));
        assert_eq!(split_scheme("slotgate.db"), ("", "slotgate.db"));
        assert_eq!(split_scheme("/var/lib/a:b.db"), ("", "/var/lib/a:b.db"));
    }

    #[test]
    fn truncates_to_microseconds() {
        let t = Utc.with_ymd_and_hms(2024, 3, 5, 10, 11, 12).unwrap()
            + chrono::TimeDelta::nanoseconds(123_456_789);
        assert_eq!(to_micros(t).nanosecond(), 123_456_000);
    }

    #[test]
    fn replaces_nul() {
        assert_eq!(storable_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(storable_text("ab"), Cow::Borrowed(_)));
    }
}
