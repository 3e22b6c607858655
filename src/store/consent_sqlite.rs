//! The consent domain's queries compiled for SQLite (see `consent_queries`).

use sqlx::sqlite::SqliteRow;

use super::group_commit::{Creation, Written};
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
scheduler_queries!();

/// Decides and writes a batch of API creations (see `group_commit`) in one
/// transaction, with one statement per table instead of one per row: on
/// SQLite every statement is a round trip to the driver's thread, and every
/// commit a WAL append. Gives, for each item in order, what
/// `Store::prepare_consent_request` followed by [`insert_request`] would
/// have given it alone: refused, its key already
/// used (in the database or earlier in the batch; nothing written for it),
/// or stored. The may-ask facts are read inside the transaction, which
/// holds the write lock from BEGIN IMMEDIATE on: a revocation or a
/// do-not-call entry committed before it is seen, and none can land between
/// the check and the insert. An error means nothing was written: the
/// caller then stores the items one by one, so that one bad item cannot
/// fail the others.
pub(crate) async fn write_api_requests(
    pool: &sqlx::SqlitePool,
    items: &[&Creation],
) -> Result<Vec<Written>, sqlx::Error> {
    use sqlx::QueryBuilder;
    use std::collections::HashSet;

    // Rows per statement are bounded by the batch (`MAX_BATCH` requests of
    // at most ten options): even the options insert binds a few thousand
    // parameters, far below SQLite's limit, so no statement is split.
    let mut tx = begin(pool).await?;

    // The facts as `ask_facts` reads them, one row per item whose
    // enterprise exists, with whether that enterprise keeps events (as
    // `enqueue_webhook` decides it, in the same transaction).
    let mut q: QueryBuilder<Db> = QueryBuilder::new("WITH v(i, e, n) AS (");
    q.push_values((0_i64..).zip(items), |mut row, (i, c)| {
        row.push_bind(i)
            .push_bind(&c.new.enterprise_id)
            .push_bind(c.new.number.as_str());
    });
    q.push(
        ") SELECT v.i, en.status, \
           (en.crm_webhook_url IS NOT NULL AND en.crm_webhook_url <> '') AS keeps_events, \
           (SELECT MIN(d.enterprise_id) FROM do_not_call d \
             WHERE d.number = v.n AND d.enterprise_id IN ('', v.e)) AS dnc_scope, \
           o.person_id, s.status AS subscription_status, s.since, s.until, \
           NULL AS caller_id_override \
         FROM v JOIN enterprises en ON en.id = v.e \
         LEFT JOIN person_identifiers o ON o.kind = 'phone' AND o.value = v.n \
         LEFT JOIN subscriptions s ON s.enterprise_id = en.id AND s.person_id = o.person_id",
    );
    let mut facts: Vec<Option<(crate::store::consent::AskFacts, bool)>> = vec![None; items.len()];
    for row in q.build().fetch_all(&mut *tx).await? {
        let i: i64 = row.try_get("i")?;
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| facts.get_mut(i).map(|slot| (i, slot)));
        let Some((i, slot)) = slot else {
            return Err(decode_error("i", format!("no item {i} in the batch")));
        };
        *slot = Some((
            ask_facts_from_row(&row, &items[i].new.enterprise_id)?,
            row.try_get("keeps_events")?,
        ));
    }
    let mut outcomes: Vec<Written> = Vec::with_capacity(items.len());
    let mut keeps_events: Vec<bool> = Vec::with_capacity(items.len());
    for (c, facts) in items.iter().zip(facts) {
        let (facts, keeps) = match facts {
            Some((facts, keeps)) => (Some(facts), keeps),
            None => (None, false),
        };
        outcomes.push(
            match crate::store::consent::request_from_facts(facts, c.new.clone(), c.now) {
                Ok(request) => Written::Stored(Box::new(request)),
                Err(refused) => Written::Refused(refused),
            },
        );
        keeps_events.push(keeps);
    }

    // Keys already stored. The first use of a key in the batch wins, as
    // the first of two separate transactions would; later ones are
    // reported as taken.
    fn key_of<'a>(c: &'a Creation, outcome: &Written) -> Option<(&'a str, &'a str)> {
        match outcome {
            Written::Stored(_) => c
                .details
                .idempotency_key
                .as_deref()
                .map(|k| (c.new.enterprise_id.as_str(), k)),
            _ => None,
        }
    }
    let keyed: Vec<(&str, &str)> = items
        .iter()
        .zip(&outcomes)
        .filter_map(|(c, o)| key_of(c, o))
        .collect();
    let mut taken: HashSet<(String, String)> = HashSet::new();
    if !keyed.is_empty() {
        let mut q: QueryBuilder<Db> = QueryBuilder::new("WITH v(e, k) AS (");
        q.push_values(&keyed, |mut row, (enterprise, key)| {
            row.push_bind(*enterprise).push_bind(*key);
        });
        q.push(
            ") SELECT a.enterprise_id, a.idempotency_key FROM v JOIN api_consent_requests a \
             ON a.enterprise_id = v.e AND a.idempotency_key = v.k",
        );
        for row in q.build().fetch_all(&mut *tx).await? {
            taken.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }
    for (c, outcome) in items.iter().zip(outcomes.iter_mut()) {
        if let Some((e, k)) = key_of(c, outcome) {
            if !taken.insert((e.to_string(), k.to_string())) {
                *outcome = Written::KeyTaken;
            }
        }
    }

    // What is stored, in batch order.
    let fresh: Vec<(&ConsentRequest, &crate::store::api::RequestDetails, bool)> = items
        .iter()
        .zip(&outcomes)
        .zip(&keeps_events)
        .filter_map(|((c, o), keeps)| match o {
            Written::Stored(r) => Some((&**r, &c.details, *keeps)),
            _ => None,
        })
        .collect();
    if fresh.is_empty() {
        tx.commit().await?;
        return Ok(outcomes);
    }

    let mut q: QueryBuilder<Db> =
        QueryBuilder::new(format!("INSERT INTO consent_requests ({REQUEST_COLUMNS}) "));
    q.push_values(&fresh, |mut row, (r, _, _)| {
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
        .flat_map(|(r, _, _)| {
            (1_i32..)
                .zip(&r.options)
                .map(|(position, o)| (r.id.as_str(), position, o))
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
    q.push_values(&fresh, |mut row, (r, d, _)| {
        row.push_bind(&r.id)
            .push_bind(&r.enterprise_id)
            .push_bind(&d.idempotency_key)
            .push_bind(&d.body_digest)
            .push_bind(&d.locale)
            .push_bind(&d.personalisation)
            .push_bind(t(r.created_at));
    });
    q.build().execute(&mut *tx).await?;

    // The events as `enqueue_webhook` writes them, one per request whose
    // enterprise keeps events. `seq` is given in the order of the VALUES,
    // which is the batch's, which is the order the creations were queued:
    // a person's events keep the order of their requests.
    let events: Vec<Envelope> = fresh
        .iter()
        .filter(|(_, _, keeps)| *keeps)
        .map(|(r, _, _)| Envelope::for_request(r, r.created_at))
        .collect();
    if !events.is_empty() {
        let mut q: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO webhook_outbox (id, enterprise_id, person_id, event_type, payload, \
               created_at, state, attempts, next_attempt_at) ",
        );
        q.push_values(&events, |mut row, event| {
            let at = t(event.occurred_at);
            row.push_bind(&event.id)
                .push_bind(&event.enterprise_id)
                .push_bind(&event.person_id)
                .push_bind(&event.event_type)
                .push_bind(event.to_body())
                .push_bind(at.clone())
                .push_bind("pending")
                .push_bind(0_i32)
                .push_bind(at);
        });
        q.build().execute(&mut *tx).await?;
    }

    tx.commit().await?;
    Ok(outcomes)
}
