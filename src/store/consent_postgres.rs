//! The consent domain's queries compiled for PostgreSQL (see
//! `consent_queries`).

use sqlx::postgres::PgRow;

use super::to_micros;

type Db = sqlx::Postgres;
type DbRow = PgRow;

/// PostgreSQL keeps microseconds; truncating here makes what is written
/// equal what is read back, as on SQLite.
fn t(v: DateTime<Utc>) -> DateTime<Utc> {
    to_micros(v)
}

fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::Row::try_get(row, column)
}

fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::Row::try_get(row, column)
}

async fn begin(pool: &sqlx::PgPool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

consent_queries!();
outbox_queries!();
