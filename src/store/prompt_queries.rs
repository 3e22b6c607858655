//! The SQL of sending prompts and reading replies, written once for both
//! engines.
//!
//! Expanded by `consent_sqlite` and `consent_postgres` after
//! `consent_queries!()` and `outbox_queries!()`, whose helpers it uses, with
//! the engine's `SKIP_LOCKED` (how a claim skips rows another node holds).
//! Every effect of an inbound message is written in one transaction with
//! its ledger row, so a webhook delivered twice, or retried after a crash,
//! has exactly one effect.

macro_rules! prompt_queries {
    () => {
        use crate::consent::{Choice, OfferedChoice};
        use crate::store::prompts::{InboundEffect, InboundOutcome, InboundRecord, SentPrompt};

        fn choice_columns(
            choice: &Choice,
        ) -> (&'static str, Option<i64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
            match choice {
                Choice::Now => ("now", None, None, None),
                Choice::After(delay) => ("after", Some(delay.num_seconds()), None, None),
                Choice::Slot(s) => ("slot", None, Some(s.start), Some(s.end)),
                Choice::Range(r) => ("range", None, Some(r.start), Some(r.end)),
                Choice::Decline => ("decline", None, None, None),
            }
        }

        fn choice_from_row(row: &DbRow) -> Result<OfferedChoice, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let slot = || -> Result<SlotOption, sqlx::Error> {
                match (opt_time(row, "start_at")?, opt_time(row, "end_at")?) {
                    (Some(start), Some(end)) => Ok(SlotOption { start, end }),
                    _ => Err(decode_error("start_at", "a slot or range without its bounds")),
                }
            };
            let choice = match kind.as_str() {
                "now" => Choice::Now,
                "after" => {
                    let seconds: Option<i64> = row.try_get("delay_seconds")?;
                    let seconds =
                        seconds.ok_or_else(|| decode_error("delay_seconds", "missing"))?;
                    Choice::After(chrono::TimeDelta::seconds(seconds))
                }
                "slot" => Choice::Slot(slot()?),
                "range" => Choice::Range(slot()?),
                "decline" => Choice::Decline,
                other => return Err(decode_error("kind", format!("unknown choice {other:?}"))),
            };
            Ok(OfferedChoice {
                label: row.try_get("label")?,
                postback: row.try_get("postback")?,
                choice,
            })
        }

        /// Replaces what the request offers, and its options with the slots
        /// among them; written before the prompt leaves, so a reply can
        /// always be read against it.
        pub(crate) async fn save_choices(
            pool: &Pool<Db>,
            request_id: &str,
            choices: &[OfferedChoice],
        ) -> QueryResult<()> {
            const CONTEXT: &str = "saving the choices a prompt offers";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            sqlx::query("DELETE FROM consent_request_choices WHERE request_id = $1")
                .bind(request_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            for (position, offered) in (1_i32..).zip(choices) {
                let (kind, delay, start, end) = choice_columns(&offered.choice);
                sqlx::query(
                    "INSERT INTO consent_request_choices (request_id, position, label, postback, \
                       kind, delay_seconds, start_at, end_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(request_id)
                .bind(position)
                .bind(&offered.label)
                .bind(&offered.postback)
                .bind(kind)
                .bind(delay)
                .bind(start.map(t))
                .bind(end.map(t))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            }
            // The request's options become the slots actually offered:
            // an answer naming one of them is a slot, anything else the
            // person's own time.
            sqlx::query("DELETE FROM consent_request_options WHERE request_id = $1")
                .bind(request_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            let slots = choices.iter().filter_map(|c| match &c.choice {
                Choice::Slot(slot) => Some(slot),
                _ => None,
            });
            for (position, slot) in (1_i32..).zip(slots) {
                sqlx::query(
                    "INSERT INTO consent_request_options (request_id, position, start_at, end_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(request_id)
                .bind(position)
                .bind(t(slot.start))
                .bind(t(slot.end))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))
        }

        pub(crate) async fn choices(
            pool: &Pool<Db>,
            request_id: &str,
        ) -> QueryResult<Vec<OfferedChoice>> {
            const CONTEXT: &str = "reading the choices a prompt offered";
            sqlx::query(
                "SELECT label, postback, kind, delay_seconds, start_at, end_at \
                 FROM consent_request_choices WHERE request_id = $1 ORDER BY position",
            )
            .bind(request_id)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(choice_from_row).collect())
            .map_err(query_error(CONTEXT))
        }

        /// Takes up to `limit` requests waiting to be sent, oldest first, and
        /// leases them until `lease_until`: another dispatcher (this node's
        /// next round, or another node) skips them meanwhile, and picks them
        /// up again if this one dies before sending.
        pub(crate) async fn claim_to_send(
            pool: &Pool<Db>,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
            limit: i64,
        ) -> QueryResult<Vec<String>> {
            const CONTEXT: &str = "claiming consent requests to send";
            let sql = format!(
                "UPDATE consent_requests SET dispatch_after = $1 WHERE id IN ( \
                   SELECT id FROM consent_requests WHERE state = 'created' \
                     AND (dispatch_after IS NULL OR dispatch_after <= $2) \
                   ORDER BY created_at, id LIMIT $3{SKIP_LOCKED}) \
                 RETURNING id"
            );
            sqlx::query(&sql)
                .bind(t(lease_until))
                .bind(t(now))
                .bind(limit)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
                .map_err(query_error(CONTEXT))
        }

        /// Puts a claimed request back for a later try (a provider outage).
        pub(crate) async fn defer_send(
            pool: &Pool<Db>,
            request_id: &str,
            at: DateTime<Utc>,
        ) -> QueryResult<()> {
            sqlx::query("UPDATE consent_requests SET dispatch_after = $1 WHERE id = $2")
                .bind(t(at))
                .bind(request_id)
                .execute(pool)
                .await
                .map_err(query_error("deferring a prompt"))?;
            Ok(())
        }

        /// Marks a request sent on `channel`, with its webhook event.
        pub(crate) async fn mark_sent(pool: &Pool<Db>, sent: &SentPrompt) -> QueryResult<bool> {
            const CONTEXT: &str = "marking a prompt sent";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            if !update_request_on(&mut tx, &sent.request)
                .await
                .map_err(query_error(CONTEXT))?
            {
                return Ok(false);
            }
            sqlx::query("UPDATE consent_requests SET channel = $1 WHERE id = $2")
                .bind(&sent.channel)
                .bind(&sent.request.id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(true)
        }

        /// The request a provider message id names (receipts refer to it).
        pub(crate) async fn request_id_by_provider_message(
            pool: &Pool<Db>,
            provider_message_id: &str,
        ) -> QueryResult<Option<String>> {
            const CONTEXT: &str = "finding a request by its message id";
            fetch_optional(
                pool,
                "SELECT id FROM consent_requests WHERE provider_message_id = $1 \
                 ORDER BY created_at DESC LIMIT 1",
                &[provider_message_id],
                |row| row.try_get("id"),
                CONTEXT,
            )
            .await
        }

        /// The latest request that reached `number`: a reply from that number
        /// answers it. Requests never sent cannot have been answered.
        pub(crate) async fn latest_request_to(
            pool: &Pool<Db>,
            number: &E164,
        ) -> QueryResult<Option<String>> {
            const CONTEXT: &str = "finding the latest prompt to a number";
            fetch_optional(
                pool,
                "SELECT id FROM consent_requests WHERE number = $1 AND state <> 'created' \
                   AND provider_message_id IS NOT NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 1",
                &[number.as_str()],
                |row| row.try_get("id"),
                CONTEXT,
            )
            .await
        }

        /// Writes the ledger row and, if it is new, the effect; all or
        /// nothing.
        pub(crate) async fn record_inbound(
            pool: &Pool<Db>,
            record: &InboundRecord,
            effect: &InboundEffect,
        ) -> QueryResult<(InboundOutcome, Option<String>)> {
            const CONTEXT: &str = "recording an inbound message";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let fresh = sqlx::query(
                "INSERT INTO inbound_messages (provider, provider_message_id, request_id, \
                   from_number, payload_sha256, signature_valid, sent_at, received_at, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(&record.provider)
            .bind(&record.provider_message_id)
            .bind(&record.request_id)
            .bind(record.from.as_ref().map(|n| n.as_str()))
            .bind(&record.payload_sha256)
            .bind(record.signature_valid)
            .bind(record.sent_at.map(t))
            .bind(t(record.received_at))
            .bind(effect.outcome())
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            if fresh.rows_affected() == 0 {
                return Ok((InboundOutcome::Duplicate, None));
            }
            let mut woken_hold = None;
            let outcome = match effect {
                InboundEffect::Answer { request, consent } => {
                    if !update_request_on(&mut tx, request)
                        .await
                        .map_err(query_error(CONTEXT))?
                    {
                        return Err(ConsentStoreError::Conflict {
                            what: "consent request",
                            id: request.id.clone(),
                            expected: request.version,
                        });
                    }
                    if let Some(consent) = consent {
                        insert_consent_on(&mut tx, consent)
                            .await
                            .map_err(query_error(CONTEXT))?;
                    }
                    woken_hold = settle_answer_on(
                        &mut tx,
                        request,
                        consent.as_ref().map(|c| c.id.as_str()),
                        record.received_at,
                    )
                    .await
                    .map_err(query_error(CONTEXT))?;
                    InboundOutcome::Applied { revoked: 0 }
                }
                InboundEffect::Revoke {
                    enterprise_id,
                    person_id,
                    number,
                    request,
                    consent,
                } => {
                    if let Some(request) = request {
                        if !update_request_on(&mut tx, request)
                            .await
                            .map_err(query_error(CONTEXT))?
                        {
                            return Err(ConsentStoreError::Conflict {
                                what: "consent request",
                                id: request.id.clone(),
                                expected: request.version,
                            });
                        }
                    }
                    let revoked =
                        revoke_all_on(&mut tx, enterprise_id, person_id, record.received_at)
                            .await
                            .map_err(query_error(CONTEXT))?;
                    insert_do_not_call(
                        &mut tx,
                        enterprise_id,
                        number,
                        "revocation",
                        record.received_at,
                    )
                    .await
                    .map_err(query_error(CONTEXT))?;
                    // After the revocation, so the answer's own record is
                    // not revoked with the rest.
                    if let Some(consent) = consent {
                        insert_consent_on(&mut tx, consent)
                            .await
                            .map_err(query_error(CONTEXT))?;
                    }
                    if let Some(request) = request {
                        woken_hold = settle_answer_on(
                            &mut tx,
                            request,
                            consent.as_ref().map(|c| c.id.as_str()),
                            record.received_at,
                        )
                        .await
                        .map_err(query_error(CONTEXT))?;
                    }
                    InboundOutcome::Applied { revoked }
                }
                InboundEffect::Clarify { request_id } => {
                    let first = sqlx::query(
                        "UPDATE consent_requests SET clarified_at = $1 \
                         WHERE id = $2 AND clarified_at IS NULL",
                    )
                    .bind(t(record.received_at))
                    .bind(request_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error(CONTEXT))?;
                    InboundOutcome::Clarify {
                        first: first.rows_affected() > 0,
                    }
                }
                InboundEffect::Ignore => InboundOutcome::Applied { revoked: 0 },
            };
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok((outcome, woken_hold))
        }

        /// Revokes every consent the person gave the enterprise, each with
        /// its webhook event; returns how many were in force.
        async fn revoke_all_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            enterprise_id: &str,
            person_id: &str,
            now: DateTime<Utc>,
        ) -> Result<u64, sqlx::Error> {
            let sql = format!(
                "UPDATE consents SET status = 'revoked', revoked_at = $1, updated_at = $1 \
                 WHERE enterprise_id = $2 AND person_id = $3 AND status = 'granted' \
                 RETURNING {CONSENT_COLUMNS}"
            );
            let rows = sqlx::query(&sql)
                .bind(t(now))
                .bind(enterprise_id)
                .bind(person_id)
                .fetch_all(&mut *conn)
                .await?;
            for row in &rows {
                let consent = consent_from_row(row)?;
                enqueue_webhook(&mut *conn, &Envelope::for_consent(&consent, now)).await?;
            }
            Ok(rows.len() as u64)
        }

        /// The person's prompts from this enterprise since `since`, with
        /// what each offered, oldest first.
        pub(crate) async fn prompts_since(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
            since: DateTime<Utc>,
        ) -> QueryResult<Vec<(ConsentRequest, Vec<OfferedChoice>)>> {
            const CONTEXT: &str = "reading a person's prompt history";
            let sql = format!(
                "SELECT {REQUEST_COLUMNS} FROM consent_requests \
                 WHERE person_id = $1 AND enterprise_id = $2 AND created_at >= $3 \
                   AND provider_message_id IS NOT NULL \
                 ORDER BY created_at, id"
            );
            let rows = sqlx::query(&sql)
                .bind(person_id)
                .bind(enterprise_id)
                .bind(t(since))
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            let mut history = Vec::with_capacity(rows.len());
            for row in &rows {
                let request = request_from_row(row, Vec::new()).map_err(query_error(CONTEXT))?;
                let offered = choices(pool, &request.id).await?;
                history.push((request, offered));
            }
            Ok(history)
        }

        /// Replaces the enterprise's templates with `templates`.
        pub(crate) async fn replace_templates(
            pool: &Pool<Db>,
            enterprise_id: &str,
            templates: &crate::consent::PromptTemplates,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "saving prompt templates";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            sqlx::query("DELETE FROM prompt_templates WHERE enterprise_id = $1")
                .bind(enterprise_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            for (locale, template) in templates.entries() {
                sqlx::query(
                    "INSERT INTO prompt_templates (enterprise_id, locale, template) \
                     VALUES ($1, $2, $3)",
                )
                .bind(enterprise_id)
                .bind(locale)
                .bind(template)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))
        }

        pub(crate) async fn templates(
            pool: &Pool<Db>,
            enterprise_id: &str,
        ) -> QueryResult<Vec<(String, String)>> {
            sqlx::query(
                "SELECT locale, template FROM prompt_templates WHERE enterprise_id = $1 \
                 ORDER BY locale",
            )
            .bind(enterprise_id)
            .fetch_all(pool)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get("locale")?, r.try_get("template")?)))
                    .collect()
            })
            .map_err(query_error("reading prompt templates"))
        }

        /// When each prompt to the person was sent since `since`, from any
        /// enterprise.
        pub(crate) async fn prompt_times(
            pool: &Pool<Db>,
            person_id: &str,
            since: DateTime<Utc>,
        ) -> QueryResult<Vec<DateTime<Utc>>> {
            sqlx::query(
                "SELECT created_at FROM consent_requests \
                 WHERE person_id = $1 AND created_at >= $2 AND provider_message_id IS NOT NULL \
                 ORDER BY created_at",
            )
            .bind(person_id)
            .bind(t(since))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(|r| time(r, "created_at")).collect())
            .map_err(query_error("reading when a person was prompted"))
        }

        /// Requests still waiting for an answer after their deadline.
        pub(crate) async fn due_expiries(
            pool: &Pool<Db>,
            now: DateTime<Utc>,
            limit: i64,
        ) -> QueryResult<Vec<String>> {
            sqlx::query(
                "SELECT id FROM consent_requests \
                 WHERE state IN ('created', 'sent', 'delivered') AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2",
            )
            .bind(t(now))
            .bind(limit)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
            .map_err(query_error("finding requests past their deadline"))
        }
    };
}
