//! The webhook outbox's SQL, written once for both engines.
//!
//! Expanded by `consent_sqlite` and `consent_postgres` right after
//! `consent_queries!()`, whose helpers (`Db`, `t`, `time`, `query_error`,
//! `parsed` …) it uses together with the engine's `lock_event_queue`.
//! The consent writes call [`enqueue_webhook`] inside their own
//! transactions: that is what makes a consent change and its event commit
//! together.

macro_rules! outbox_queries {
    () => {
        use crate::crm::{DeliveryState, Envelope, FailedAttempt, OutboxEvent, OutboxFilter};

        /// Adds `event` to the outbox on `conn` (the caller's transaction),
        /// if the enterprise has a webhook URL; returns whether it did.
        ///
        /// Events are kept only for enterprises with a URL at the time of
        /// the change: an enterprise without one has asked for nothing, and
        /// an outbox filling with undeliverable rows would only grow. The
        /// URL is read in the same statement, so the decision and the
        /// change share one snapshot.
        async fn enqueue_webhook(
            conn: &mut <Db as sqlx::Database>::Connection,
            event: &Envelope,
        ) -> Result<bool, sqlx::Error> {
            lock_event_queue(&mut *conn, &event.enterprise_id, &event.person_id).await?;
            let done = sqlx::query(
                "INSERT INTO webhook_outbox (id, enterprise_id, person_id, event_type, payload, \
                   created_at, state, attempts, next_attempt_at) \
                 SELECT $1, id, $3, $4, $5, $6, 'pending', 0, $6 FROM enterprises \
                 WHERE id = $2 AND crm_webhook_url IS NOT NULL AND crm_webhook_url <> ''",
            )
            .bind(&event.id)
            .bind(&event.enterprise_id)
            .bind(&event.person_id)
            .bind(&event.event_type)
            .bind(event.to_body())
            .bind(t(event.occurred_at))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        const OUTBOX_COLUMNS: &str = "seq, id, enterprise_id, person_id, event_type, payload, \
             created_at, state, attempts, next_attempt_at, last_error, last_status, delivered_at";

        fn outbox_from_row(row: &DbRow) -> Result<OutboxEvent, sqlx::Error> {
            Ok(OutboxEvent {
                seq: row.try_get("seq")?,
                id: row.try_get("id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                person_id: row.try_get("person_id")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                created_at: time(row, "created_at")?,
                state: parsed::<DeliveryState>(row, "state")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: time(row, "next_attempt_at")?,
                last_error: row.try_get("last_error")?,
                last_status: row.try_get("last_status")?,
                delivered_at: opt_time(row, "delivered_at")?,
            })
        }

        /// Claims up to `limit` events that are due at `now` and head their
        /// person's queue, by moving their next attempt to `lease_until`:
        /// another deliverer (another node) will not take them before then,
        /// and if this one dies they become due again by themselves.
        ///
        /// An event heads its queue when no older event of the same
        /// (enterprise, person) is pending. Delivered and dead events do not
        /// hold the queue: a dead event is parked for an operator, and the
        /// person's later events go on without it.
        pub(crate) async fn claim_webhook_events(
            pool: &Pool<Db>,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
            limit: i64,
        ) -> QueryResult<Vec<OutboxEvent>> {
            const CONTEXT: &str = "claiming webhook events";
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox o \
                 WHERE o.state = 'pending' AND o.next_attempt_at <= $1 \
                   AND NOT EXISTS (SELECT 1 FROM webhook_outbox p \
                     WHERE p.state = 'pending' AND p.enterprise_id = o.enterprise_id \
                       AND p.person_id = o.person_id AND p.seq < o.seq) \
                 ORDER BY o.seq LIMIT $2"
            );
            let candidates = sqlx::query(&sql)
                .bind(t(now))
                .bind(limit)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(outbox_from_row).collect::<Result<Vec<_>, _>>())
                .map_err(query_error(CONTEXT))?;
            let mut claimed = Vec::with_capacity(candidates.len());
            for mut event in candidates {
                // Compare-and-set: of two deliverers that read the same row,
                // only the first moves it.
                let done = sqlx::query(
                    "UPDATE webhook_outbox SET next_attempt_at = $1 \
                     WHERE seq = $2 AND state = 'pending' AND next_attempt_at = $3",
                )
                .bind(t(lease_until))
                .bind(event.seq)
                .bind(t(event.next_attempt_at))
                .execute(pool)
                .await
                .map_err(query_error(CONTEXT))?;
                if done.rows_affected() == 1 {
                    event.next_attempt_at = lease_until;
                    claimed.push(event);
                }
            }
            Ok(claimed)
        }

        /// Records a 2xx answer. False: the event was not pending (it was
        /// re-driven or delivered by another node meanwhile).
        pub(crate) async fn mark_webhook_delivered(
            pool: &Pool<Db>,
            id: &str,
            status: i32,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let done = sqlx::query(
                "UPDATE webhook_outbox SET state = 'delivered', delivered_at = $1, \
                   attempts = attempts + 1, last_status = $2, last_error = NULL \
                 WHERE id = $3 AND state = 'pending'",
            )
            .bind(t(now))
            .bind(status)
            .bind(id)
            .execute(pool)
            .await
            .map_err(query_error("marking a webhook event delivered"))?;
            Ok(done.rows_affected() > 0)
        }

        /// Records a failed attempt: tried again at `retry_at`, or dead once
        /// `max_attempts` attempts have failed. `None`: the event was not
        /// pending.
        pub(crate) async fn mark_webhook_failed(
            pool: &Pool<Db>,
            id: &str,
            failure: &FailedAttempt,
            retry_at: DateTime<Utc>,
            max_attempts: i32,
        ) -> QueryResult<Option<DeliveryState>> {
            const CONTEXT: &str = "recording a failed webhook attempt";
            let row = sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, \
                   last_status = $2, next_attempt_at = $3, \
                   state = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END \
                 WHERE id = $5 AND state = 'pending' RETURNING state",
            )
            .bind(&failure.error)
            .bind(failure.status)
            .bind(t(retry_at))
            .bind(max_attempts)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            row.as_ref()
                .map(|row| parsed::<DeliveryState>(row, "state"))
                .transpose()
                .map_err(query_error(CONTEXT))
        }

        pub(crate) async fn webhook_event(
            pool: &Pool<Db>,
            id: &str,
        ) -> QueryResult<Option<OutboxEvent>> {
            let sql = format!("SELECT {OUTBOX_COLUMNS} FROM webhook_outbox WHERE id = $1");
            fetch_optional(pool, &sql, &[id], outbox_from_row, "reading a webhook event").await
        }

        pub(crate) async fn webhook_events(
            pool: &Pool<Db>,
            filter: &OutboxFilter,
        ) -> QueryResult<Vec<OutboxEvent>> {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox \
                 WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR enterprise_id = $2) \
                 ORDER BY seq LIMIT $3"
            );
            sqlx::query(&sql)
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.enterprise_id.as_deref())
                .bind(filter.limit.max(0))
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(outbox_from_row).collect())
                .map_err(query_error("listing webhook events"))
        }

        /// Puts a dead event back in the queue with a fresh attempt count,
        /// due at `now`. False: no dead event has that id.
        pub(crate) async fn redrive_webhook_event(
            pool: &Pool<Db>,
            id: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let done = sqlx::query(
                "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = $1 \
                 WHERE id = $2 AND state = 'dead'",
            )
            .bind(t(now))
            .bind(id)
            .execute(pool)
            .await
            .map_err(query_error("re-driving a webhook event"))?;
            Ok(done.rows_affected() > 0)
        }
    };
}
