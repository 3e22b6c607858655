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

/// Holds, until the transaction ends, the lock on one person's webhook
/// queue. Outbox rows are numbered when inserted but become visible when
/// committed; two transactions adding events for the same person could
/// otherwise commit in the opposite order of their numbers, and the
/// deliverer could send the newer event before the older one exists.
async fn lock_event_queue(
    conn: &mut sqlx::PgConnection,
    enterprise_id: &str,
    person_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("slotgate-webhooks/{enterprise_id}/{person_id}"))
        .execute(conn)
        .await?;
    Ok(())
}

consent_queries!();
/// How a claim passes over rows another node is claiming: they are skipped,
/// not waited for, so nodes claim disjoint batches.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

outbox_queries!();
prompt_queries!();

const FOR_UPDATE: &str = " FOR UPDATE";

/// Tells every node listening on the holds channel, at commit, that the
/// hold's answer is in: the INVITE may be held by another node.
async fn notify_hold(conn: &mut sqlx::PgConnection, hold_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::store::holds::HOLDS_CHANNEL)
        .bind(hold_id)
        .execute(conn)
        .await?;
    Ok(())
}

hold_queries!();
caller_id_queries!();
scheduler_queries!();
