//! The SQLite engine: slotgate's zero-setup default.
//!
//! SQLite has no timestamp type, so instants are stored as fixed-width
//! RFC 3339 text (see the migration for why that format); this module is the
//! only place that knows it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{redact_url, storable_text, to_micros, CallRecord, StoreError};
use super::{ACQUIRE_TIMEOUT, SQLITE_BUSY_TIMEOUT};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Six fractional digits always, so text order is time order.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

const COLUMNS: &str = "id, a_call_id, b_call_id, source, from_uri, to_uri, request_uri, \
     started_at, answered_at, ended_at, final_status, reason, ended_by, gate_decision, \
     consent_request_id, caller_id_number, caller_id_rule, caller_id_why, identity_origid";

/// `rest` is what follows `sqlite:` in the URL (`//PATH`, `PATH`, `:memory:`).
/// Gives the pool and, for a database in a file, the file's path.
pub(super) async fn connect(
    rest: &str,
) -> Result<(SqlitePool, Option<std::path::PathBuf>), StoreError> {
    let spec = rest.strip_prefix("//").unwrap_or(rest);
    let target = redact_url(&format!("sqlite://{spec}"));
    let connect_error = |cause| StoreError::Connect {
        target: target.clone(),
        cause,
    };

    let (database, params) = spec.split_once('?').unwrap_or((spec, ""));
    if database.is_empty() && !params.contains("mode=memory") {
        // An empty name makes SQLite open a throwaway temporary database,
        // which would silently lose every record.
        return Err(connect_error(sqlx::Error::Configuration(
            "the URL names no database file; use sqlite://PATH".into(),
        )));
    }
    let in_memory = database == ":memory:" || params.contains("mode=memory");

    let options = SqliteConnectOptions::from_str(&format!("sqlite:{spec}"))
        .map_err(connect_error)?
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    let options = if in_memory {
        // The database lives only as long as one connection to it does, and
        // shared-cache locks ignore the busy timeout: keep exactly one
        // connection, forever.
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        options
    } else {
        // WAL lets other processes (`slotgate dnc import`, an operator's
        // sqlite3) read while slotgate writes; with WAL, NORMAL sync is
        // crash-safe and only risks the last transactions on power loss, a
        // fair price for call records.
        // One connection: SQLite has one writer at a time anyway, and with
        // several connections a writer that finds the lock taken sleeps in
        // SQLite's busy handler (1, 2, 5 … 100 ms steps) instead of queueing.
        // Measured with the API bench: 1,600 creations/s and p99 67 ms with
        // one connection, under 1,100/s and p99 > 120 ms with ten.
        pool = pool.max_connections(1);
        options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
    };
    let file = (!in_memory).then(|| std::path::PathBuf::from(database));
    Ok((
        pool.connect_with(options).await.map_err(connect_error)?,
        file,
    ))
}

pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::Migrate)
}

pub(super) async fn insert_calls(
    pool: &SqlitePool,
    records: &[CallRecord],
) -> Result<(), StoreError> {
    const CONTEXT: &str = "inserting call records";
    // One multi-row statement per chunk: every statement is a round trip to
    // the SQLite worker thread (a futex wake on each side), which under load
    // cost more than the insert itself. 256 rows x 19 columns stays far
    // below SQLite's bound-parameter limit.
    const ROWS_PER_STATEMENT: usize = 256;
    // IMMEDIATE takes the write lock up front, where the busy timeout
    // applies, instead of failing on a read-to-write upgrade mid-batch.
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(StoreError::query(CONTEXT))?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut insert: sqlx::QueryBuilder<sqlx::Sqlite> =
            sqlx::QueryBuilder::new(format!("INSERT INTO calls ({COLUMNS}) "));
        insert.push_values(chunk, |mut row, r| {
            row.push_bind(storable_text(&r.id))
                .push_bind(storable_text(&r.a_call_id))
                .push_bind(r.b_call_id.as_deref().map(storable_text))
                .push_bind(storable_text(&r.source))
                .push_bind(storable_text(&r.from_uri))
                .push_bind(storable_text(&r.to_uri))
                .push_bind(storable_text(&r.request_uri))
                .push_bind(encode_time(r.started_at))
                .push_bind(r.answered_at.map(encode_time))
                .push_bind(encode_time(r.ended_at))
                .push_bind(r.final_status)
                .push_bind(storable_text(&r.reason))
                .push_bind(r.ended_by.as_deref().map(storable_text))
                .push_bind(r.gate_decision.as_deref().map(storable_text))
                .push_bind(r.consent_request_id.as_deref().map(storable_text))
                .push_bind(r.caller_id_number.as_deref().map(storable_text))
                .push_bind(r.caller_id_rule.as_deref().map(storable_text))
                .push_bind(r.caller_id_why.as_deref().map(storable_text))
                .push_bind(r.identity_origid.as_deref().map(storable_text));
        });
        insert.push(" ON CONFLICT (id) DO NOTHING");
        insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(CONTEXT))?;
    }
    tx.commit().await.map_err(StoreError::query(CONTEXT))
}

pub(super) async fn call_by_a_call_id(
    pool: &SqlitePool,
    a_call_id: &str,
) -> Result<Option<CallRecord>, StoreError> {
    const CONTEXT: &str = "looking up a call record by a_call_id";
    let sql = format!(
        "SELECT {COLUMNS} FROM calls WHERE a_call_id = ? ORDER BY started_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(a_call_id)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
    row.as_ref()
        .map(record_from_row)
        .transpose()
        .map_err(StoreError::query(CONTEXT))
}

pub(super) async fn count_calls(pool: &SqlitePool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(pool)
        .await
        .map_err(StoreError::query("counting call records"))
}

pub(super) async fn recent_calls(
    pool: &SqlitePool,
    limit: i64,
) -> Result<Vec<CallRecord>, StoreError> {
    const CONTEXT: &str = "listing recent call records";
    let sql = format!("SELECT {COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?");
    let rows = sqlx::query(&sql)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
    rows.iter()
        .map(record_from_row)
        .collect::<Result<_, _>>()
        .map_err(StoreError::query(CONTEXT))
}

fn record_from_row(row: &SqliteRow) -> Result<CallRecord, sqlx::Error> {
    let time = |column: &str| -> Result<DateTime<Utc>, sqlx::Error> {
        decode_time(column, &row.try_get::<String, _>(column)?)
    };
    let optional_time = |column: &str| -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        row.try_get::<Option<String>, _>(column)?
            .map(|text| decode_time(column, &text))
            .transpose()
    };
    Ok(CallRecord {
        id: row.try_get("id")?,
        a_call_id: row.try_get("a_call_id")?,
        b_call_id: row.try_get("b_call_id")?,
        source: row.try_get("source")?,
        from_uri: row.try_get("from_uri")?,
        to_uri: row.try_get("to_uri")?,
        request_uri: row.try_get("request_uri")?,
        started_at: time("started_at")?,
        answered_at: optional_time("answered_at")?,
        ended_at: time("ended_at")?,
        final_status: row.try_get("final_status")?,
        reason: row.try_get("reason")?,
        ended_by: row.try_get("ended_by")?,
        gate_decision: row.try_get("gate_decision")?,
        consent_request_id: row.try_get("consent_request_id")?,
        caller_id_number: row.try_get("caller_id_number")?,
        caller_id_rule: row.try_get("caller_id_rule")?,
        caller_id_why: row.try_get("caller_id_why")?,
        identity_origid: row.try_get("identity_origid")?,
    })
}

pub(super) fn encode_time(t: DateTime<Utc>) -> String {
    to_micros(t).format(TIME_FORMAT).to_string()
}

pub(super) fn decode_time(column: &str, text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: format!("{text:?} is not an RFC 3339 time: {e}").into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_text_is_fixed_width_and_round_trips() {
        let whole = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(encode_time(whole), "1999-12-31T23:59:59.000000Z");
        let fine = whole + chrono::TimeDelta::microseconds(999_999);
        assert_eq!(encode_time(fine), "1999-12-31T23:59:59.999999Z");
        assert_eq!(decode_time("t", &encode_time(fine)).unwrap(), fine);
    }

    #[test]
    fn bad_time_text_names_the_column() {
        let err = decode_time("started_at", "yesterday").unwrap_err();
        assert!(err.to_string().contains("started_at"), "{err}");
    }
}
