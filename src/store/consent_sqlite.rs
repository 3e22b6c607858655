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

/// Writes a batch of API creations (see `group_commit`) in one transaction,
/// with one statement per table instead of one per row: on SQLite every
/// statement is a round trip to the driver's thread, and every commit a
/// WAL append. Gives, for each item in order, whether it was stored (false:
/// its enterprise had already used its Idempotency-Key, in the database or
/// earlier in the batch, and nothing was written for it), exactly as
/// [`insert_request`] would have one by one. An error means nothing was
/// written: the caller then stores the items one by one, so that one bad
/// item cannot fail the others.
pub(crate) async fn insert_api_request_batch(
    pool: &sqlx::SqlitePool,
    items: &[&crate::store::group_commit::Creation],
) -> Result<Vec<bool>, sqlx::Error> {
    use sqlx::QueryBuilder;
    use std::collections::HashSet;

    fn key_of(c: &crate::store::group_commit::Creation) -> Option<(&str, &str)> {
        c.details
            .idempotency_key
            .as_deref()
            .map(|k| (c.request.enterprise_id.as_str(), k))
    }
    // Rows per statement are bounded by the batch (`MAX_BATCH` requests of
    // at most ten options): even the options insert binds a few thousand
    // parameters, far below SQLite's limit, so no statement is split.
    let mut tx = begin(pool).await?;

    // The write lock is held from BEGIN IMMEDIATE on, so the keys read here
    // cannot be taken by anyone else before this transaction commits.
    let keyed: Vec<(&str, &str)> = items.iter().filter_map(|c| key_of(c)).collect();
    let mut taken: HashSet<(String, String)> = HashSet::new();
    if !keyed.is_empty() {
        let mut q: QueryBuilder<Db> =
            QueryBuilder::new("SELECT a.enterprise_id, a.idempotency_key FROM (");
        q.push_values(&keyed, |mut row, (enterprise, key)| {
            row.push_bind(*enterprise).push_bind(*key);
        });
        q.push(
            ") AS v JOIN api_consent_requests a \
             ON a.enterprise_id = v.column1 AND a.idempotency_key = v.column2",
        );
        for row in q.build().fetch_all(&mut *tx).await? {
            taken.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }
    // The first use of a key in the batch wins, as the first of two
    // separate transactions would; later ones are reported as replays.
    let stored: Vec<bool> = items
        .iter()
        .map(|c| match key_of(c) {
            None => true,
            Some((e, k)) => taken.insert((e.to_string(), k.to_string())),
        })
        .collect();
    let fresh: Vec<&crate::store::group_commit::Creation> = items
        .iter()
        .zip(&stored)
        .filter(|(_, s)| **s)
        .map(|(c, _)| *c)
        .collect();
    if fresh.is_empty() {
        return Ok(stored);
    }

    let mut q: QueryBuilder<Db> =
        QueryBuilder::new(format!("INSERT INTO consent_requests ({REQUEST_COLUMNS}) "));
    q.push_values(&fresh, |mut row, c| {
        let r = &c.request;
        let (state, kind, start, end, reason) = state_columns(&r.state);
        row.push_bind(&r.id)
            .push_bind(&r.enterprise_id)
            .push_bind(&r.person_id)
            .push_bind(r.number.as_str())
            .push_bind(r.scope.to_string())
            .push_bind(&r.hold_id)
            .push_bind(state)
            .push_bind(kind)
            .push_bind(start.map(t))
            .push_bind(end.map(t))
            .push_bind(reason)
            .push_bind(&r.provider_message_id)
            .push_bind(t(r.created_at))
            .push_bind(t(r.updated_at))
            .push_bind(t(r.expires_at))
            .push_bind(r.version);
    });
    q.build().execute(&mut *tx).await?;

    let options: Vec<(&str, i32, &SlotOption)> = fresh
        .iter()
        .flat_map(|c| {
            (1_i32..)
                .zip(&c.request.options)
                .map(|(position, o)| (c.request.id.as_str(), position, o))
        })
        .collect();
    if !options.is_empty() {
        let mut q: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO consent_request_options (request_id, position, start_at, end_at) ",
        );
        q.push_values(&options, |mut row, (id, position, o)| {
            row.push_bind(*id)
                .push_bind(*position)
                .push_bind(t(o.start))
                .push_bind(t(o.end));
        });
        q.build().execute(&mut *tx).await?;
    }

    let mut q: QueryBuilder<Db> = QueryBuilder::new(
        "INSERT INTO api_consent_requests (request_id, enterprise_id, idempotency_key, \
         body_digest, locale, personalisation, created_at) ",
    );
    q.push_values(&fresh, |mut row, c| {
        let (r, d) = (&c.request, &c.details);
        row.push_bind(&r.id)
            .push_bind(&r.enterprise_id)
            .push_bind(&d.idempotency_key)
            .push_bind(&d.body_digest)
            .push_bind(&d.locale)
            .push_bind(&d.personalisation)
            .push_bind(t(r.created_at));
    });
    q.build().execute(&mut *tx).await?;

    // The events as `enqueue_webhook` writes them, one per request, kept
    // only for enterprises with a webhook URL. ORDER BY the position in the
    // batch: `seq` is given in insertion order, and the batch is in the
    // order the creations were queued, so a person's events keep the order
    // of their requests.
    let events: Vec<(i64, Envelope)> = (0_i64..)
        .zip(&fresh)
        .map(|(i, c)| (i, Envelope::for_request(&c.request, c.request.created_at)))
        .collect();
    let mut q: QueryBuilder<Db> = QueryBuilder::new(
        "INSERT INTO webhook_outbox (id, enterprise_id, person_id, event_type, payload, \
           created_at, state, attempts, next_attempt_at) \
         SELECT v.column2, e.id, v.column4, v.column5, v.column6, v.column7, 'pending', 0, \
           v.column7 FROM (",
    );
    q.push_values(&events, |mut row, (i, event)| {
        row.push_bind(*i)
            .push_bind(&event.id)
            .push_bind(&event.enterprise_id)
            .push_bind(&event.person_id)
            .push_bind(&event.event_type)
            .push_bind(event.to_body())
            .push_bind(t(event.occurred_at));
    });
    q.push(
        ") AS v JOIN enterprises e ON e.id = v.column3 \
         WHERE e.crm_webhook_url IS NOT NULL AND e.crm_webhook_url <> '' \
         ORDER BY v.column1",
    );
    q.build().execute(&mut *tx).await?;

    tx.commit().await?;
    Ok(stored)
}
