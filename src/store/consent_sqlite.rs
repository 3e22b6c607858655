//! The consent domain's queries compiled for SQLite (see `consent_queries`).

use sqlx::sqlite::SqliteRow;

use super::sqlite::{decode_time, encode_time};

type Db = sqlx::Sqlite;
type DbRow = SqliteRow;

fn t(v: DateTime<Utc>) -> String {
    encode_time(v)
}

fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    decode_time(column, &sqlx::Row::try_get::<String, _>(row, column)?)
}

fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::Row::try_get::<Option<String>, _>(row, column)?
        .map(|text| decode_time(column, &text))
        .transpose()
}

/// IMMEDIATE takes the write lock up front, where the busy timeout applies,
/// instead of failing on a read-to-write upgrade halfway through.
async fn begin(pool: &sqlx::SqlitePool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Nothing to do: every write transaction starts IMMEDIATE, so writers
/// (and their outbox rows) are already serialised in commit order.
async fn lock_event_queue(
    _conn: &mut sqlx::SqliteConnection,
    _enterprise_id: &str,
    _person_id: &str,
) -> Result<(), sqlx::Error> {
    Ok(())
}

consent_queries!();
/// How a claim passes over rows another node is claiming; SQLite has one
/// writer at a time, so there is nothing to skip.
const SKIP_LOCKED: &str = "";

outbox_queries!();
prompt_queries!();

/// SQLite has one writer at a time: a write transaction already excludes
/// every other writer of the row.
const FOR_UPDATE: &str = "";

/// Nothing to do: an SQLite database has one node, woken in-process.
async fn notify_hold(
    _conn: &mut sqlx::SqliteConnection,
    _hold_id: &str,
) -> Result<(), sqlx::Error> {
    Ok(())
}

hold_queries!();
caller_id_queries!();
