//! The SQL of caller ID: numbers set on people for an enterprise, and pool
//! numbers flagged by the operator, written once for both engines.
//!
//! Expanded by `consent_sqlite` and `consent_postgres` after
//! `consent_queries!`, whose helpers (`query_error`, `number_column`,
//! `time`, `t`, `begin`) it uses.

macro_rules! caller_id_queries {
    () => {
        use crate::store::caller_ids::{CallerIdFlag, CallerIdOverride};

        fn override_from_row(row: &DbRow) -> Result<CallerIdOverride, sqlx::Error> {
            Ok(CallerIdOverride {
                person_id: row.try_get("person_id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                number: number_column(row, "number")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        fn flag_from_row(row: &DbRow) -> Result<CallerIdFlag, sqlx::Error> {
            Ok(CallerIdFlag {
                number: number_column(row, "number")?,
                flagged_until: time(row, "flagged_until")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        /// Sets (or replaces) the number `person_id` is called from for
        /// `enterprise_id`. Both must exist: a missing one is `NotFound`,
        /// not a foreign-key failure the caller cannot tell apart.
        pub(crate) async fn set_caller_id_override(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
            number: &E164,
            at: DateTime<Utc>,
        ) -> QueryResult<CallerIdOverride> {
            const CONTEXT: &str = "setting a caller ID override";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            for (what, sql, id) in [
                (
                    "enterprise",
                    "SELECT 1 FROM enterprises WHERE id = $1",
                    enterprise_id,
                ),
                ("person", "SELECT 1 FROM persons WHERE id = $1", person_id),
            ] {
                let found = sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query_error(CONTEXT))?;
                if found.is_none() {
                    return Err(ConsentStoreError::NotFound {
                        what,
                        id: id.to_string(),
                    });
                }
            }
            sqlx::query(
                "INSERT INTO caller_id_overrides (person_id, enterprise_id, number, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (person_id, enterprise_id) \
                 DO UPDATE SET number = excluded.number, updated_at = excluded.updated_at",
            )
            .bind(person_id)
            .bind(enterprise_id)
            .bind(number.as_str())
            .bind(t(at))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(CallerIdOverride {
                person_id: person_id.to_string(),
                enterprise_id: enterprise_id.to_string(),
                number: number.clone(),
                updated_at: crate::store::to_micros(at),
            })
        }

        /// False when no number was set.
        pub(crate) async fn clear_caller_id_override(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
        ) -> QueryResult<bool> {
            let done = sqlx::query(
                "DELETE FROM caller_id_overrides WHERE person_id = $1 AND enterprise_id = $2",
            )
            .bind(person_id)
            .bind(enterprise_id)
            .execute(pool)
            .await
            .map_err(query_error("clearing a caller ID override"))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn caller_id_override(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
        ) -> QueryResult<Option<CallerIdOverride>> {
            const CONTEXT: &str = "reading a caller ID override";
            fetch_optional(
                pool,
                "SELECT person_id, enterprise_id, number, updated_at FROM caller_id_overrides \
                 WHERE person_id = $1 AND enterprise_id = $2",
                &[person_id, enterprise_id],
                override_from_row,
                CONTEXT,
            )
            .await
        }

        /// Flags `number` until `until` (a flag already there is replaced).
        pub(crate) async fn flag_caller_id(
            pool: &Pool<Db>,
            number: &E164,
            until: DateTime<Utc>,
            at: DateTime<Utc>,
        ) -> QueryResult<CallerIdFlag> {
            sqlx::query(
                "INSERT INTO caller_id_flags (number, flagged_until, updated_at) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (number) \
                 DO UPDATE SET flagged_until = excluded.flagged_until, \
                   updated_at = excluded.updated_at",
            )
            .bind(number.as_str())
            .bind(t(until))
            .bind(t(at))
            .execute(pool)
            .await
            .map_err(query_error("flagging a caller ID number"))?;
            Ok(CallerIdFlag {
                number: number.clone(),
                flagged_until: crate::store::to_micros(until),
                updated_at: crate::store::to_micros(at),
            })
        }

        /// False when the number was not flagged.
        pub(crate) async fn unflag_caller_id(pool: &Pool<Db>, number: &E164) -> QueryResult<bool> {
            let done = sqlx::query("DELETE FROM caller_id_flags WHERE number = $1")
                .bind(number.as_str())
                .execute(pool)
                .await
                .map_err(query_error("unflagging a caller ID number"))?;
            Ok(done.rows_affected() > 0)
        }

        /// Flags still resting after `now`, by number.
        pub(crate) async fn caller_id_flags(
            pool: &Pool<Db>,
            now: DateTime<Utc>,
        ) -> QueryResult<Vec<CallerIdFlag>> {
            const CONTEXT: &str = "listing flagged caller ID numbers";
            let rows = sqlx::query(
                "SELECT number, flagged_until, updated_at FROM caller_id_flags \
                 WHERE flagged_until > $1 ORDER BY number",
            )
            .bind(t(now))
            .fetch_all(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(flag_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }
    };
}
