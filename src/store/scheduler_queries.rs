//! The SQL of the durable scheduler (claiming due callbacks, recording
//! each dialling attempt), written once for both engines.
//!
//! Expanded by `consent_sqlite` and `consent_postgres` after
//! `hold_queries!()`, whose callback row reader it uses, with the engine's
//! `SKIP_LOCKED` (two nodes claiming at once take disjoint rows) and
//! `FOR_UPDATE` (an attempt's checks and its insert see the same callback
//! row). Every step is one transaction, so a crash leaves either the step
//! or nothing: see `migrations/*/0009_scheduler.sql` for the state model.

macro_rules! scheduler_queries {
    () => {
        use crate::store::scheduler::{Attempt, AttemptOutcome, ATTEMPT_DIALLING};

        fn attempt_from_row(row: &DbRow) -> Result<Attempt, sqlx::Error> {
            Ok(Attempt {
                id: row.try_get("id")?,
                callback_id: row.try_get("callback_id")?,
                node: row.try_get("node")?,
                state: row.try_get("state")?,
                created_at: time(row, "created_at")?,
                finished_at: opt_time(row, "finished_at")?,
            })
        }

        fn refused(what: &'static str, id: &str, reason: String) -> ConsentStoreError {
            ConsentStoreError::NotClaimed {
                what,
                id: id.to_string(),
                reason,
            }
        }

        /// What makes a callback due besides its slot: its retry time has
        /// come and no attempt of it is dialling.
        const DUE: &str = "AND (c.retry_at IS NULL OR c.retry_at <= $3) \
             AND NOT EXISTS (SELECT 1 FROM callback_attempts a \
               WHERE a.callback_id = c.id AND a.state = 'dialling')";

        /// Recovers the callbacks of dead nodes, then claims up to `limit`
        /// due ones for `node` until `lease_until`, in one transaction.
        ///
        /// Recovery comes first so that a callback whose node died
        /// mid-dial is settled as `unknown` before the claim could see its
        /// expired lease; the claim also refuses any callback with an
        /// attempt still dialling, whatever its lease says.
        pub(crate) async fn claim_due_callbacks(
            pool: &Pool<Db>,
            node: &str,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
            limit: i64,
        ) -> QueryResult<Vec<ScheduledCallback>> {
            const CONTEXT: &str = "claiming due callbacks";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            // SKIP LOCKED here too: two claimers recovering the same rows
            // in different orders could otherwise deadlock; a row skipped is
            // being recovered by the other.
            let sql = format!(
                "UPDATE scheduled_callbacks SET status = 'unknown' WHERE id IN ( \
                   SELECT c.id FROM scheduled_callbacks c \
                   WHERE c.status = 'claimed' AND c.lease_until <= $1 \
                     AND EXISTS (SELECT 1 FROM callback_attempts a \
                       WHERE a.callback_id = c.id AND a.state = 'dialling'){SKIP_LOCKED}) \
                 RETURNING id"
            );
            let orphaned: Vec<String> = sqlx::query_scalar(&sql)
                .bind(t(now))
                .fetch_all(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            for callback_id in &orphaned {
                sqlx::query(
                    "UPDATE callback_attempts SET state = 'outcome-unknown', finished_at = $1 \
                     WHERE callback_id = $2 AND state = 'dialling'",
                )
                .bind(t(now))
                .bind(callback_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            }
            // One sorted, limited range per status, merged: an OR of the two
            // would read and sort every due row (a backlog after an outage)
            // on each claim instead of walking `scheduled_callbacks_due`.
            let sql = format!(
                "UPDATE scheduled_callbacks SET status = 'claimed', claimed_by = $1, \
                   lease_until = $2 \
                 WHERE id IN (SELECT id FROM ( \
                   SELECT id, slot_start FROM (SELECT c.id, c.slot_start \
                     FROM scheduled_callbacks c \
                     WHERE c.status = 'pending' AND c.slot_start <= $3 {DUE} \
                     ORDER BY c.slot_start, c.id LIMIT $4{SKIP_LOCKED}) AS p \
                   UNION ALL \
                   SELECT id, slot_start FROM (SELECT c.id, c.slot_start \
                     FROM scheduled_callbacks c \
                     WHERE c.status = 'claimed' AND c.slot_start <= $3 \
                       AND c.lease_until <= $3 {DUE} \
                     ORDER BY c.slot_start, c.id LIMIT $4{SKIP_LOCKED}) AS e \
                 ) AS due ORDER BY slot_start, id LIMIT $4) \
                 RETURNING {CALLBACK_COLUMNS}"
            );
            let rows = sqlx::query(&sql)
                .bind(node)
                .bind(t(lease_until))
                .bind(t(now))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            let mut claimed = rows
                .iter()
                .map(callback_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            for callback_id in &orphaned {
                tracing::warn!(
                    callback_id = %callback_id,
                    node,
                    "a callback's lease ran out while it was dialling: the call may have \
                     been placed, so it is left as unknown for an operator"
                );
            }
            // RETURNING gives rows in no promised order.
            claimed.sort_by(|a, b| (a.slot_start, &a.id).cmp(&(b.slot_start, &b.id)));
            Ok(claimed)
        }

        /// Writes the `dialling` attempt for a callback `node` holds with a
        /// live lease, unless one is already dialling.
        pub(crate) async fn begin_attempt(
            pool: &Pool<Db>,
            callback_id: &str,
            node: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<Attempt> {
            const CONTEXT: &str = "beginning a callback attempt";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let sql = format!(
                "SELECT status, claimed_by, lease_until FROM scheduled_callbacks \
                 WHERE id = $1{FOR_UPDATE}"
            );
            let Some(row) = sqlx::query(&sql)
                .bind(callback_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?
            else {
                return Err(ConsentStoreError::NotFound {
                    what: "scheduled callback",
                    id: callback_id.to_string(),
                });
            };
            let status: String = row.try_get("status").map_err(query_error(CONTEXT))?;
            let claimed_by: Option<String> =
                row.try_get("claimed_by").map_err(query_error(CONTEXT))?;
            let lease_until = opt_time(&row, "lease_until").map_err(query_error(CONTEXT))?;
            if status != "claimed" || claimed_by.as_deref() != Some(node) {
                return Err(refused(
                    "scheduled callback",
                    callback_id,
                    format!("not claimed by {node} (status {status})"),
                ));
            }
            if lease_until.is_none_or(|until| until <= now) {
                return Err(refused(
                    "scheduled callback",
                    callback_id,
                    format!("the lease of {node} has expired"),
                ));
            }
            let dialling: Option<String> = sqlx::query_scalar(
                "SELECT id FROM callback_attempts WHERE callback_id = $1 AND state = 'dialling'",
            )
            .bind(callback_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            if let Some(other) = dialling {
                return Err(refused(
                    "scheduled callback",
                    callback_id,
                    format!("attempt {other} is still dialling"),
                ));
            }
            let attempt = Attempt {
                id: crate::consent::new_id(),
                callback_id: callback_id.to_string(),
                node: node.to_string(),
                state: ATTEMPT_DIALLING.to_string(),
                created_at: now,
                finished_at: None,
            };
            sqlx::query(
                "INSERT INTO callback_attempts (id, callback_id, node, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&attempt.id)
            .bind(&attempt.callback_id)
            .bind(&attempt.node)
            .bind(&attempt.state)
            .bind(t(now))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(attempt)
        }

        /// Ends a `dialling` attempt with its outcome and settles its
        /// callback. An attempt already ended (including one recovery
        /// marked `outcome-unknown`) is refused and left as it is.
        pub(crate) async fn finish_attempt(
            pool: &Pool<Db>,
            attempt_id: &str,
            outcome: AttemptOutcome,
            retry_at: Option<DateTime<Utc>>,
            due_action: Option<&str>,
            now: DateTime<Utc>,
        ) -> QueryResult<Attempt> {
            const CONTEXT: &str = "finishing a callback attempt";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let sql = format!(
                "SELECT id, callback_id, node, state, created_at, finished_at \
                 FROM callback_attempts WHERE id = $1{FOR_UPDATE}"
            );
            let Some(row) = sqlx::query(&sql)
                .bind(attempt_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?
            else {
                return Err(ConsentStoreError::NotFound {
                    what: "callback attempt",
                    id: attempt_id.to_string(),
                });
            };
            let mut attempt = attempt_from_row(&row).map_err(query_error(CONTEXT))?;
            if attempt.state != ATTEMPT_DIALLING {
                return Err(refused(
                    "callback attempt",
                    attempt_id,
                    format!("already ended as {}", attempt.state),
                ));
            }
            sqlx::query("UPDATE callback_attempts SET state = $1, finished_at = $2 WHERE id = $3")
                .bind(outcome.as_str())
                .bind(t(now))
                .bind(attempt_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            // While the attempt was dialling nobody else could claim the
            // callback (see `claim_due_callbacks`), so it is still this
            // attempt's to settle.
            sqlx::query(
                "UPDATE scheduled_callbacks SET status = $1, claimed_by = NULL, \
                   lease_until = NULL, retry_at = $2, due_action = $4 \
                 WHERE id = $3 AND status = 'claimed'",
            )
            .bind(if retry_at.is_some() { "pending" } else { "done" })
            .bind(retry_at.map(t))
            .bind(&attempt.callback_id)
            .bind(due_action)
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            // The CRM hears of every call, in the same commit as the call's
            // record: an outcome is never stored without its event.
            let about = sqlx::query(
                "SELECT c.enterprise_id, c.campaign, c.callee, r.person_id \
                 FROM scheduled_callbacks c JOIN consent_requests r ON r.id = c.request_id \
                 WHERE c.id = $1",
            )
            .bind(&attempt.callback_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            if let Some(row) = about {
                let get = |name: &str| -> Result<String, sqlx::Error> { row.try_get(name) };
                let event = crate::crm::Envelope::for_call_outcome(
                    &get("enterprise_id").map_err(query_error(CONTEXT))?,
                    &get("person_id").map_err(query_error(CONTEXT))?,
                    &attempt.callback_id,
                    &attempt.id,
                    &get("campaign").map_err(query_error(CONTEXT))?,
                    &get("callee").map_err(query_error(CONTEXT))?,
                    outcome.as_str(),
                    retry_at,
                    now,
                );
                enqueue_webhook(&mut *tx, &event)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            attempt.state = outcome.as_str().to_string();
            attempt.finished_at = Some(now);
            Ok(attempt)
        }

        /// Extends `node`'s live claims on `callback_ids` to `lease_until`;
        /// how many it still held.
        pub(crate) async fn renew_leases(
            pool: &Pool<Db>,
            node: &str,
            callback_ids: &[String],
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
        ) -> QueryResult<u64> {
            const CONTEXT: &str = "renewing callback leases";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let mut renewed = 0;
            for id in callback_ids {
                let done = sqlx::query(
                    "UPDATE scheduled_callbacks SET lease_until = $1 \
                     WHERE id = $2 AND status = 'claimed' AND claimed_by = $3 AND lease_until > $4",
                )
                .bind(t(lease_until))
                .bind(id)
                .bind(node)
                .bind(t(now))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
                renewed += done.rows_affected();
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(renewed)
        }

        /// Gives back a callback `node` holds without dialling it: to be
        /// claimed again from `retry_at`, or settled as `dropped` with
        /// `reason` when `retry_at` is `None`.
        pub(crate) async fn release_callback(
            pool: &Pool<Db>,
            callback_id: &str,
            node: &str,
            retry_at: Option<DateTime<Utc>>,
            reason: Option<&str>,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "releasing a claimed callback";
            let done = sqlx::query(
                "UPDATE scheduled_callbacks SET status = $1, claimed_by = NULL, \
                   lease_until = NULL, retry_at = $2, settled_reason = COALESCE($3, settled_reason) \
                 WHERE id = $4 AND status = 'claimed' AND claimed_by = $5 \
                   AND NOT EXISTS (SELECT 1 FROM callback_attempts a \
                     WHERE a.callback_id = $4 AND a.state = 'dialling')",
            )
            .bind(if retry_at.is_some() { "pending" } else { "dropped" })
            .bind(retry_at.map(t))
            .bind(reason)
            .bind(callback_id)
            .bind(node)
            .execute(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            if done.rows_affected() == 0 {
                return Err(refused(
                    "scheduled callback",
                    callback_id,
                    format!("not claimed by {node}, or an attempt is dialling"),
                ));
            }
            Ok(())
        }

        /// An operator's verdict on an `unknown` callback: dial it again
        /// from `redial_at`, or settle it as `done`.
        pub(crate) async fn resolve_unknown_callback(
            pool: &Pool<Db>,
            callback_id: &str,
            redial_at: Option<DateTime<Utc>>,
            note: &str,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "resolving an unknown callback";
            let done = sqlx::query(
                "UPDATE scheduled_callbacks SET status = $1, retry_at = $2, \
                   settled_reason = $3, claimed_by = NULL, lease_until = NULL \
                 WHERE id = $4 AND status = 'unknown'",
            )
            .bind(if redial_at.is_some() { "pending" } else { "done" })
            .bind(redial_at.map(t))
            .bind(format!("operator: {note}"))
            .bind(callback_id)
            .execute(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            if done.rows_affected() == 0 {
                return Err(refused(
                    "scheduled callback",
                    callback_id,
                    "is not unknown".to_string(),
                ));
            }
            Ok(())
        }

        /// Every attempt at a callback, oldest first.
        pub(crate) async fn callback_attempts(
            pool: &Pool<Db>,
            callback_id: &str,
        ) -> QueryResult<Vec<Attempt>> {
            const CONTEXT: &str = "listing callback attempts";
            let rows = sqlx::query(
                "SELECT id, callback_id, node, state, created_at, finished_at \
                 FROM callback_attempts WHERE callback_id = $1 ORDER BY created_at, id",
            )
            .bind(callback_id)
            .fetch_all(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(attempt_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }

        /// A callback by id, whatever its status.
        pub(crate) async fn scheduled_callback(
            pool: &Pool<Db>,
            callback_id: &str,
        ) -> QueryResult<Option<ScheduledCallback>> {
            const CONTEXT: &str = "reading a scheduled callback";
            let sql = format!("SELECT {CALLBACK_COLUMNS} FROM scheduled_callbacks WHERE id = $1");
            let row = sqlx::query(&sql)
                .bind(callback_id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            row.as_ref()
                .map(callback_from_row)
                .transpose()
                .map_err(query_error(CONTEXT))
        }
    };
}
