//! The SQL of held INVITEs and the callbacks their answers schedule,
//! written once for both engines.
//!
//! Expanded by `consent_sqlite` and `consent_postgres` after the other
//! query macros, whose helpers it uses, with the engine's `FOR_UPDATE` (how
//! a hold's row is locked while its fate is decided) and `notify_hold` (how
//! other nodes learn that a held INVITE's answer is in).
//!
//! Two writers meet on a hold: the transaction storing the person's answer
//! (any node) and the holding node ending the hold (answer acted on, window
//! passed, CANCEL). Both lock the hold's row first, so whichever commits
//! second sees what the first did, and a late "now" always becomes a
//! callback instead of being lost between them.

macro_rules! hold_queries {
    () => {
        use crate::store::holds::{NewHold, ScheduledCallback, LATE_NOW_SLOT};

        const CALLBACK_COLUMNS: &str = "id, request_id, hold_id, enterprise_id, campaign, \
             callee, caller, pbx_target, consent_id, slot_start, slot_end, status, created_at, \
             due_action";

        fn callback_from_row(row: &DbRow) -> Result<ScheduledCallback, sqlx::Error> {
            Ok(ScheduledCallback {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                hold_id: row.try_get("hold_id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                campaign: row.try_get("campaign")?,
                callee: row.try_get("callee")?,
                caller: row.try_get("caller")?,
                pbx_target: row.try_get("pbx_target")?,
                consent_id: row.try_get("consent_id")?,
                slot_start: time(row, "slot_start")?,
                slot_end: time(row, "slot_end")?,
                status: row.try_get("status")?,
                created_at: time(row, "created_at")?,
                due_action: row.try_get("due_action")?,
            })
        }

        /// Stores the request asking the person and the hold waiting for
        /// the answer, with the request's webhook event, at once: an answer
        /// always finds its hold.
        pub(crate) async fn open_hold(
            pool: &Pool<Db>,
            r: &ConsentRequest,
            hold: &NewHold,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "holding an INVITE";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            insert_request_rows(&mut tx, r)
                .await
                .map_err(query_error(CONTEXT))?;
            sqlx::query(
                "INSERT INTO holds (id, request_id, enterprise_id, campaign, callee, caller, \
                   pbx_target, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'held', $8)",
            )
            .bind(&hold.id)
            .bind(&r.id)
            .bind(&r.enterprise_id)
            .bind(&hold.campaign)
            .bind(r.number.as_str())
            .bind(&hold.caller)
            .bind(&hold.pbx_target)
            .bind(t(r.created_at))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            enqueue_webhook(&mut tx, &Envelope::for_request(r, r.created_at))
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(())
        }

        /// Writes the callback for a hold (once per request: a second
        /// writer changes nothing).
        async fn insert_callback_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            hold_id: &str,
            consent_id: Option<&str>,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            at: DateTime<Utc>,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO scheduled_callbacks (id, request_id, hold_id, enterprise_id, \
                   campaign, callee, caller, pbx_target, consent_id, slot_start, slot_end, \
                   status, created_at) \
                 SELECT $1, request_id, id, enterprise_id, campaign, callee, caller, \
                   pbx_target, $2, $3, $4, 'pending', $5 FROM holds WHERE id = $6 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(crate::consent::new_id())
            .bind(consent_id)
            .bind(t(start))
            .bind(t(end))
            .bind(t(at))
            .bind(hold_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The hold's state, its row locked until the transaction ends.
        async fn lock_hold_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            hold_id: &str,
        ) -> Result<Option<String>, sqlx::Error> {
            let sql = format!("SELECT state FROM holds WHERE id = $1{FOR_UPDATE}");
            sqlx::query_scalar(&sql)
                .bind(hold_id)
                .fetch_optional(&mut *conn)
                .await
        }

        /// Inside the transaction storing an answer to a held INVITE's
        /// request: notes the consent on the request, schedules the
        /// callback the answer calls for, and wakes the holding node.
        /// A later time always schedules (unless the call already went
        /// through); "now" schedules only when the hold has ended, since a
        /// live hold forwards the INVITE itself. Returns the hold's id.
        async fn settle_answer_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            request: &ConsentRequest,
            consent_id: Option<&str>,
            at: DateTime<Utc>,
        ) -> Result<Option<String>, sqlx::Error> {
            let Some(hold_id) = request.hold_id.as_deref() else {
                return Ok(None);
            };
            if let Some(consent_id) = consent_id {
                sqlx::query("UPDATE consent_requests SET consent_id = $1 WHERE id = $2")
                    .bind(consent_id)
                    .bind(&request.id)
                    .execute(&mut *conn)
                    .await?;
            }
            let Some(state) = lock_hold_on(conn, hold_id).await? else {
                return Ok(None);
            };
            let slot = match &request.state {
                RequestState::Answered(Answer::Slot(s)) if state != "forwarded" => {
                    Some((s.start, s.end))
                }
                RequestState::Answered(Answer::Range { start, end }) if state != "forwarded" => {
                    Some((*start, *end))
                }
                RequestState::Answered(Answer::Now) if state == "ended" => {
                    Some((at, at + LATE_NOW_SLOT))
                }
                _ => None,
            };
            if let Some((start, end)) = slot {
                insert_callback_on(conn, hold_id, consent_id, start, end, at).await?;
            }
            notify_hold(conn, hold_id).await?;
            Ok(Some(hold_id.to_string()))
        }

        /// Ends a hold that is still `held`, as `forwarded` or `ended`.
        /// False when it had already ended. Ending it with an answer "now"
        /// already stored (the answer and the window's end crossed)
        /// schedules that answer as a callback.
        pub(crate) async fn end_hold(
            pool: &Pool<Db>,
            hold_id: &str,
            from: &str,
            forwarded: bool,
            at: DateTime<Utc>,
        ) -> QueryResult<bool> {
            const CONTEXT: &str = "ending a hold";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let state = lock_hold_on(&mut tx, hold_id)
                .await
                .map_err(query_error(CONTEXT))?;
            if state.as_deref() != Some(from) {
                return Ok(false);
            }
            sqlx::query("UPDATE holds SET state = $1, ended_at = $2 WHERE id = $3")
                .bind(if forwarded { "forwarded" } else { "ended" })
                .bind(t(at))
                .bind(hold_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            if !forwarded {
                let answered: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT r.answer_kind, r.consent_id FROM consent_requests r \
                     JOIN holds h ON h.request_id = r.id WHERE h.id = $1",
                )
                .bind(hold_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
                if let Some((Some(kind), consent_id)) = answered {
                    if kind == "now" {
                        insert_callback_on(
                            &mut tx,
                            hold_id,
                            consent_id.as_deref(),
                            at,
                            at + LATE_NOW_SLOT,
                            at,
                        )
                        .await
                        .map_err(query_error(CONTEXT))?;
                    }
                }
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(true)
        }

        /// The hold's state and the request it waits on.
        pub(crate) async fn hold(
            pool: &Pool<Db>,
            hold_id: &str,
        ) -> QueryResult<Option<(String, String)>> {
            sqlx::query_as("SELECT state, request_id FROM holds WHERE id = $1")
                .bind(hold_id)
                .fetch_optional(pool)
                .await
                .map_err(query_error("reading a hold"))
        }

        pub(crate) async fn callback_for_request(
            pool: &Pool<Db>,
            request_id: &str,
        ) -> QueryResult<Option<ScheduledCallback>> {
            const CONTEXT: &str = "reading a scheduled callback";
            let sql =
                format!("SELECT {CALLBACK_COLUMNS} FROM scheduled_callbacks WHERE request_id = $1");
            fetch_optional(pool, &sql, &[request_id], callback_from_row, CONTEXT).await
        }

        /// Callbacks in `status`, earliest slot first.
        pub(crate) async fn callbacks_with_status(
            pool: &Pool<Db>,
            status: &str,
            limit: i64,
        ) -> QueryResult<Vec<ScheduledCallback>> {
            const CONTEXT: &str = "listing scheduled callbacks";
            let sql = format!(
                "SELECT {CALLBACK_COLUMNS} FROM scheduled_callbacks WHERE status = $1 \
                 ORDER BY slot_start, id LIMIT $2"
            );
            let rows = sqlx::query(&sql)
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(callback_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }
    };
}
