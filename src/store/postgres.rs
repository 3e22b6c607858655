//! The PostgreSQL engine: how several slotgate nodes share one database.
//!
//! Batches go in as one `INSERT … SELECT FROM UNNEST(arrays)`: a single
//! statement and a single round trip whatever the batch size, and one
//! prepared statement instead of one per batch length.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use super::{redact_url, storable_text, to_micros, CallRecord, StoreError, ACQUIRE_TIMEOUT};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const COLUMNS: &str = "id, a_call_id, b_call_id, source, from_uri, to_uri, request_uri, \
     started_at, answered_at, ended_at, final_status, reason, ended_by, gate_decision, \
     consent_request_id, caller_id_number, caller_id_rule, caller_id_why, identity_origid";

pub(super) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let connect_error = |cause| StoreError::Connect {
        target: redact_url(url),
        cause,
    };
    let mut options = PgConnectOptions::from_str(url).map_err(connect_error)?;
    if options.get_application_name().is_none() {
        // Lets a DBA tell slotgate's sessions apart in pg_stat_activity.
        options = options.application_name("slotgate");
    }
    PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(connect_error)
}

pub(super) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::Migrate)
}

pub(super) async fn insert_calls(pool: &PgPool, records: &[CallRecord]) -> Result<(), StoreError> {
    let text = |f: fn(&CallRecord) -> &str| -> Vec<String> {
        records
            .iter()
            .map(|r| storable_text(f(r)).into_owned())
            .collect()
    };
    let optional_text = |f: fn(&CallRecord) -> Option<&str>| -> Vec<Option<String>> {
        records
            .iter()
            .map(|r| f(r).map(|s| storable_text(s).into_owned()))
            .collect()
    };

    let sql = format!(
        "INSERT INTO calls ({COLUMNS}) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
           $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], \
           $11::int4[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], \
           $17::text[], $18::text[], $19::text[]) \
         ON CONFLICT (id) DO NOTHING"
    );
    // One statement is atomic on its own: the batch lands whole or not at all.
    sqlx::query(&sql)
        .bind(text(|r| r.id.as_str()))
        .bind(text(|r| r.a_call_id.as_str()))
        .bind(optional_text(|r| r.b_call_id.as_deref()))
        .bind(text(|r| r.source.as_str()))
        .bind(text(|r| r.from_uri.as_str()))
        .bind(text(|r| r.to_uri.as_str()))
        .bind(text(|r| r.request_uri.as_str()))
        .bind(
            records
                .iter()
                .map(|r| to_micros(r.started_at))
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.answered_at.map(to_micros))
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| to_micros(r.ended_at))
                .collect::<Vec<_>>(),
        )
        .bind(records.iter().map(|r| r.final_status).collect::<Vec<_>>())
        .bind(text(|r| r.reason.as_str()))
        .bind(optional_text(|r| r.ended_by.as_deref()))
        .bind(optional_text(|r| r.gate_decision.as_deref()))
        .bind(optional_text(|r| r.consent_request_id.as_deref()))
        .bind(optional_text(|r| r.caller_id_number.as_deref()))
        .bind(optional_text(|r| r.caller_id_rule.as_deref()))
        .bind(optional_text(|r| r.caller_id_why.as_deref()))
        .bind(optional_text(|r| r.identity_origid.as_deref()))
        .execute(pool)
        .await
        .map_err(StoreError::query("inserting call records"))?;
    Ok(())
}

pub(super) async fn call_by_a_call_id(
    pool: &PgPool,
    a_call_id: &str,
) -> Result<Option<CallRecord>, StoreError> {
    const CONTEXT: &str = "looking up a call record by a_call_id";
    let sql = format!(
        "SELECT {COLUMNS} FROM calls WHERE a_call_id = $1 \
         ORDER BY started_at DESC, id DESC LIMIT 1"
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

pub(super) async fn count_calls(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(pool)
        .await
        .map_err(StoreError::query("counting call records"))
}

pub(super) async fn recent_calls(pool: &PgPool, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
    const CONTEXT: &str = "listing recent call records";
    let sql = format!("SELECT {COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1");
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

fn record_from_row(row: &PgRow) -> Result<CallRecord, sqlx::Error> {
    Ok(CallRecord {
        id: row.try_get("id")?,
        a_call_id: row.try_get("a_call_id")?,
        b_call_id: row.try_get("b_call_id")?,
        source: row.try_get("source")?,
        from_uri: row.try_get("from_uri")?,
        to_uri: row.try_get("to_uri")?,
        request_uri: row.try_get("request_uri")?,
        started_at: row.try_get("started_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
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
