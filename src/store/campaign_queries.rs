//! The SQL of campaigns and call outcomes, written once for both engines.
//!
//! `campaign_queries!()` is expanded below in one module per engine, each
//! defining the few items the statements differ by (`Db`, `DbRow`, how an
//! instant is written and read, how a write transaction starts, how an
//! instant is cut to an abandon-ledger bucket). Keeping the expansion here
//! keeps the campaign SQL in one file. JSON columns are written from
//! validated values and read back with serde; a row that no longer parses
//! is a decode error naming its column, never a panic.

macro_rules! campaign_queries {
    () => {
        use sqlx::{Pool, Row};

        use crate::pacing::{AbandonWindow, CallOutcome, Strategy};
        use crate::store::campaigns::{
            CallbackCounts, CampaignAgents, CampaignRecord, CampaignSpec, CampaignState,
            CampaignStoreError, OutcomeCounts,
        };
        use crate::store::StoreError;

        type QueryResult<T> = Result<T, CampaignStoreError>;

        const COLUMNS: &str = "enterprise_id, id, settings, agent_target, abandon_message, \
             machine_policy, strategy, agents, agents_updated_at, state, created_at, \
             updated_at, version";

        fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> CampaignStoreError {
            move |cause| CampaignStoreError::Store(StoreError::Query { context, cause })
        }

        fn decode_error(column: &str, e: impl std::fmt::Display) -> sqlx::Error {
            sqlx::Error::ColumnDecode {
                index: column.to_string(),
                source: e.to_string().into(),
            }
        }

        fn json<T: serde::de::DeserializeOwned>(
            row: &DbRow,
            column: &str,
        ) -> Result<T, sqlx::Error> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| decode_error(column, e))
        }

        fn to_json<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
            serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
        }

        fn record_from_row(row: &DbRow) -> Result<CampaignRecord, sqlx::Error> {
            let state: String = row.try_get("state")?;
            let strategy: Option<String> = row.try_get("strategy")?;
            Ok(CampaignRecord {
                enterprise_id: row.try_get("enterprise_id")?,
                id: row.try_get("id")?,
                settings: json(row, "settings")?,
                agent_target: row.try_get("agent_target")?,
                abandon_message: row.try_get("abandon_message")?,
                machine_policy: json(row, "machine_policy")?,
                strategy: strategy
                    .map(|s| serde_json::from_str::<Strategy>(&s))
                    .transpose()
                    .map_err(|e| decode_error("strategy", e))?,
                agents: json(row, "agents")?,
                agents_updated_at: opt_time(row, "agents_updated_at")?,
                state: CampaignState::parse(&state).ok_or_else(|| {
                    decode_error("state", format!("`{state}` is not a campaign state"))
                })?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
                version: row.try_get("version")?,
            })
        }

        fn one(row: Option<DbRow>, context: &'static str) -> QueryResult<Option<CampaignRecord>> {
            row.as_ref()
                .map(record_from_row)
                .transpose()
                .map_err(query_error(context))
        }

        /// False when the id is taken in the enterprise.
        pub(crate) async fn insert_campaign(
            pool: &Pool<Db>,
            r: &CampaignRecord,
        ) -> QueryResult<bool> {
            const CONTEXT: &str = "creating a campaign";
            let strategy = r
                .strategy
                .as_ref()
                .map(to_json)
                .transpose()
                .map_err(query_error(CONTEXT))?;
            let sql = format!(
                "INSERT INTO campaigns ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT DO NOTHING"
            );
            let done = sqlx::query(&sql)
                .bind(&r.enterprise_id)
                .bind(&r.id)
                .bind(to_json(&r.settings).map_err(query_error(CONTEXT))?)
                .bind(&r.agent_target)
                .bind(&r.abandon_message)
                .bind(to_json(&r.machine_policy).map_err(query_error(CONTEXT))?)
                .bind(strategy)
                .bind(to_json(&r.agents).map_err(query_error(CONTEXT))?)
                .bind(r.agents_updated_at.map(t))
                .bind(r.state.as_str())
                .bind(t(r.created_at))
                .bind(t(r.updated_at))
                .bind(r.version)
                .execute(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn campaign(
            pool: &Pool<Db>,
            enterprise_id: &str,
            id: &str,
        ) -> QueryResult<Option<CampaignRecord>> {
            const CONTEXT: &str = "reading a campaign";
            let sql = format!(
                "SELECT {COLUMNS} FROM campaigns WHERE enterprise_id = $1 AND id = $2"
            );
            let row = sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            one(row, CONTEXT)
        }

        /// Campaigns of one enterprise, or of every one, in one state or
        /// any.
        pub(crate) async fn campaigns(
            pool: &Pool<Db>,
            enterprise_id: Option<&str>,
            state: Option<CampaignState>,
        ) -> QueryResult<Vec<CampaignRecord>> {
            const CONTEXT: &str = "listing campaigns";
            let sql = format!(
                "SELECT {COLUMNS} FROM campaigns \
                 WHERE ($1 IS NULL OR enterprise_id = $1) AND ($2 IS NULL OR state = $2) \
                 ORDER BY enterprise_id, id"
            );
            let rows = sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(state.map(CampaignState::as_str))
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(record_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }

        /// `None` when no row matched (missing, or not at the expected
        /// version).
        pub(crate) async fn update_campaign(
            pool: &Pool<Db>,
            enterprise_id: &str,
            id: &str,
            spec: &CampaignSpec,
            expected_version: Option<i64>,
            now: DateTime<Utc>,
        ) -> QueryResult<Option<CampaignRecord>> {
            const CONTEXT: &str = "updating a campaign";
            let sql = format!(
                "UPDATE campaigns SET settings = $1, agent_target = $2, abandon_message = $3, \
                   machine_policy = $4, state = $5, updated_at = $6, version = version + 1 \
                 WHERE enterprise_id = $7 AND id = $8 AND ($9 IS NULL OR version = $9) \
                 RETURNING {COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(to_json(&spec.settings).map_err(query_error(CONTEXT))?)
                .bind(&spec.agent_target)
                .bind(&spec.abandon_message)
                .bind(to_json(&spec.machine_policy).map_err(query_error(CONTEXT))?)
                .bind(spec.state.as_str())
                .bind(t(now))
                .bind(enterprise_id)
                .bind(id)
                .bind(expected_version)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            one(row, CONTEXT)
        }

        pub(crate) async fn set_strategy(
            pool: &Pool<Db>,
            enterprise_id: &str,
            id: &str,
            strategy: Option<&Strategy>,
            now: DateTime<Utc>,
        ) -> QueryResult<Option<CampaignRecord>> {
            const CONTEXT: &str = "setting a campaign's strategy";
            let strategy = strategy
                .map(to_json)
                .transpose()
                .map_err(query_error(CONTEXT))?;
            let sql = format!(
                "UPDATE campaigns SET strategy = $1, updated_at = $2, version = version + 1 \
                 WHERE enterprise_id = $3 AND id = $4 RETURNING {COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(strategy)
                .bind(t(now))
                .bind(enterprise_id)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            one(row, CONTEXT)
        }

        pub(crate) async fn set_agents(
            pool: &Pool<Db>,
            enterprise_id: &str,
            id: &str,
            agents: &CampaignAgents,
            now: DateTime<Utc>,
        ) -> QueryResult<Option<CampaignRecord>> {
            const CONTEXT: &str = "setting a campaign's agents";
            let sql = format!(
                "UPDATE campaigns SET agents = $1, agents_updated_at = $2 \
                 WHERE enterprise_id = $3 AND id = $4 RETURNING {COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(to_json(agents).map_err(query_error(CONTEXT))?)
                .bind(t(now))
                .bind(enterprise_id)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            one(row, CONTEXT)
        }

        /// Checks for open callbacks and deletes in one transaction, so a
        /// claim cannot slip between the two on SQLite; on PostgreSQL the
        /// campaign row is locked against a concurrent update.
        pub(crate) async fn delete_campaign(
            pool: &Pool<Db>,
            enterprise_id: &str,
            id: &str,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "deleting a campaign";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let sql = format!(
                "SELECT 1 FROM campaigns WHERE enterprise_id = $1 AND id = $2{FOR_UPDATE}"
            );
            let exists = sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?
                .is_some();
            if !exists {
                return Err(CampaignStoreError::NotFound { id: id.to_string() });
            }
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM scheduled_callbacks \
                 WHERE enterprise_id = $1 AND campaign = $2 \
                   AND status IN ('pending', 'claimed', 'unknown')",
            )
            .bind(enterprise_id)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            if open > 0 {
                return Err(CampaignStoreError::InUse {
                    id: id.to_string(),
                    open: u64::try_from(open).unwrap_or(0),
                });
            }
            sqlx::query("DELETE FROM campaigns WHERE enterprise_id = $1 AND id = $2")
                .bind(enterprise_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(())
        }

        /// False when the attempt already has an outcome.
        pub(crate) async fn insert_outcome(
            pool: &Pool<Db>,
            enterprise_id: &str,
            campaign: &str,
            attempt_id: Option<&str>,
            outcome: CallOutcome,
            at: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let done = sqlx::query(
                "INSERT INTO call_outcomes (id, enterprise_id, campaign, attempt_id, outcome, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(crate::consent::new_id())
            .bind(enterprise_id)
            .bind(campaign)
            .bind(attempt_id)
            .bind(outcome.as_str())
            .bind(t(at))
            .execute(pool)
            .await
            .map_err(query_error("recording a call outcome"))?;
            Ok(done.rows_affected() > 0)
        }

        /// A count read from the database, which never counts below zero.
        fn count(row: &DbRow, column: &str) -> Result<u64, sqlx::Error> {
            let n: i64 = row.try_get(column)?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub(crate) async fn outcome_counts(
            pool: &Pool<Db>,
            enterprise_id: &str,
            campaign: &str,
            since: DateTime<Utc>,
        ) -> QueryResult<OutcomeCounts> {
            const CONTEXT: &str = "counting call outcomes";
            let rows = sqlx::query(
                "SELECT outcome, COUNT(*) AS n FROM call_outcomes \
                 WHERE enterprise_id = $1 AND campaign = $2 AND at >= $3 GROUP BY outcome",
            )
            .bind(enterprise_id)
            .bind(campaign)
            .bind(t(since))
            .fetch_all(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            let mut counts = OutcomeCounts::default();
            for row in &rows {
                let outcome: String = row.try_get("outcome").map_err(query_error(CONTEXT))?;
                // An outcome a newer version wrote is not this version's to
                // count.
                if let Ok(outcome) = outcome.parse::<CallOutcome>() {
                    counts.add(outcome, count(row, "n").map_err(query_error(CONTEXT))?);
                }
            }
            Ok(counts)
        }

        /// Person answers and abandons in `(since, until]`, counted per
        /// ledger bucket of `window` (the start of each bucket): at most
        /// two rows per bucket, whatever the campaign's volume.
        pub(crate) async fn answer_buckets(
            pool: &Pool<Db>,
            enterprise_id: &str,
            campaign: &str,
            window: AbandonWindow,
            since: DateTime<Utc>,
            until: DateTime<Utc>,
        ) -> QueryResult<Vec<(DateTime<Utc>, CallOutcome, u64)>> {
            const CONTEXT: &str = "reading the abandon history";
            let bucket = match window {
                AbandonWindow::Us30Days => HOUR_BUCKET,
                AbandonWindow::Uk24Hours => MINUTE_BUCKET,
            };
            let sql = format!(
                "SELECT {bucket} AS bucket, outcome, COUNT(*) AS n FROM call_outcomes \
                 WHERE enterprise_id = $1 AND campaign = $2 AND at > $3 AND at <= $4 \
                   AND outcome IN ('answered', 'abandoned') \
                 GROUP BY bucket, outcome ORDER BY bucket"
            );
            let rows = sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(campaign)
                .bind(t(since))
                .bind(t(until))
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(|row| {
                    let outcome: String = row.try_get("outcome")?;
                    let outcome = outcome
                        .parse::<CallOutcome>()
                        .map_err(|e| decode_error("outcome", e))?;
                    Ok((time(row, "bucket")?, outcome, count(row, "n")?))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(query_error(CONTEXT))
        }

        pub(crate) async fn callback_counts(
            pool: &Pool<Db>,
            enterprise_id: &str,
            campaign: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<CallbackCounts> {
            const CONTEXT: &str = "counting a campaign's callbacks";
            let minute_ago = now - chrono::TimeDelta::seconds(60);
            let row = sqlx::query(
                "SELECT \
                   (SELECT COUNT(*) FROM scheduled_callbacks WHERE enterprise_id = $1 \
                      AND campaign = $2 AND status = 'pending' AND slot_start <= $3) AS due, \
                   (SELECT COUNT(*) FROM scheduled_callbacks WHERE enterprise_id = $1 \
                      AND campaign = $2 AND status = 'pending') AS pending, \
                   (SELECT COUNT(*) FROM scheduled_callbacks WHERE enterprise_id = $1 \
                      AND campaign = $2 AND status = 'unknown') AS unknown, \
                   (SELECT COUNT(*) FROM callback_attempts a JOIN scheduled_callbacks c \
                      ON c.id = a.callback_id WHERE c.enterprise_id = $1 AND c.campaign = $2 \
                      AND a.created_at > $4 AND a.created_at <= $3) AS begun, \
                   (SELECT COUNT(*) FROM callback_attempts a JOIN scheduled_callbacks c \
                      ON c.id = a.callback_id WHERE c.enterprise_id = $1 AND c.campaign = $2 \
                      AND a.state = 'dialling') AS in_flight",
            )
            .bind(enterprise_id)
            .bind(campaign)
            .bind(t(now))
            .bind(t(minute_ago))
            .fetch_one(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            let read = |column| count(&row, column).map_err(query_error(CONTEXT));
            Ok(CallbackCounts {
                due: read("due")?,
                pending: read("pending")?,
                begun_last_minute: read("begun")?,
                in_flight: read("in_flight")?,
                unknown: read("unknown")?,
            })
        }
    };
}

/// The campaign queries compiled for SQLite: instants are RFC 3339 text
/// of fixed width, so text order is time order and a bucket is a prefix.
pub(super) mod sqlite {
    use chrono::{DateTime, Utc};

    use super::super::sqlite::{decode_time, encode_time};

    type Db = sqlx::Sqlite;
    type DbRow = sqlx::sqlite::SqliteRow;

    const FOR_UPDATE: &str = "";
    const HOUR_BUCKET: &str = "substr(at, 1, 13) || ':00:00.000000Z'";
    const MINUTE_BUCKET: &str = "substr(at, 1, 16) || ':00.000000Z'";

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

    /// IMMEDIATE takes the write lock up front, where the busy timeout
    /// applies.
    async fn begin(pool: &sqlx::SqlitePool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    campaign_queries!();
}

/// The campaign queries compiled for PostgreSQL.
pub(super) mod postgres {
    use chrono::{DateTime, Utc};

    use super::super::to_micros;

    type Db = sqlx::Postgres;
    type DbRow = sqlx::postgres::PgRow;

    const FOR_UPDATE: &str = " FOR UPDATE";
    // Truncated in UTC: the session's zone must not move the buckets.
    const HOUR_BUCKET: &str = "date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";
    const MINUTE_BUCKET: &str = "date_trunc('minute', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

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

    campaign_queries!();
}
