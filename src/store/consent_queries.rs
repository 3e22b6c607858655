//! The consent domain's SQL, written once for both engines.
//!
//! Both engines accept `$N` placeholders and the same statements; they
//! differ only in how an instant is stored (TEXT on SQLite, TIMESTAMPTZ on
//! PostgreSQL) and how a write transaction starts. Each engine module
//! (`consent_sqlite`, `consent_postgres`) defines those few items — `Db`,
//! `DbRow`, `t`, `time`, `opt_time`, `begin` — and expands
//! `consent_queries!()`, which refers to them by name (and brings `DateTime`
//! and `Utc` into the module for them).

macro_rules! consent_queries {
    () => {
        use std::str::FromStr;

        use chrono::{DateTime, Utc};
        use sqlx::{Pool, Row};

        use crate::consent::dnc::ParsedDncCsv;
        use crate::consent::{
            Answer, ApiKey, Channel, Consent, ConsentRequest, ConsentStatus, DncEntry,
            DncImportReport, DncRejection, DncRejectionReason, Enterprise, Evidence, Identifier,
            Person, RequestState, Scope, SlotOption, Subscription, SubscriptionStatus,
            TrustStatus, UnknownValue, Window, E164,
        };
        use crate::store::consent::ConsentStoreError;
        use crate::store::StoreError;

        type QueryResult<T> = Result<T, ConsentStoreError>;

        fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> ConsentStoreError {
            move |cause| ConsentStoreError::Store(StoreError::Query { context, cause })
        }

        /// A stored value this version cannot read, as a decode error that
        /// names the column.
        fn decode_error(column: &str, e: impl std::fmt::Display) -> sqlx::Error {
            sqlx::Error::ColumnDecode {
                index: column.to_string(),
                source: e.to_string().into(),
            }
        }

        fn parsed<T: FromStr<Err = UnknownValue>>(
            row: &DbRow,
            column: &str,
        ) -> Result<T, sqlx::Error> {
            let text: String = row.try_get(column)?;
            text.parse().map_err(|e| decode_error(column, e))
        }

        /// One row or none, selected by text parameters (`$1`, `$2` … in
        /// order), decoded by `map`.
        async fn fetch_optional<T>(
            pool: &Pool<Db>,
            sql: &str,
            params: &[&str],
            map: fn(&DbRow) -> Result<T, sqlx::Error>,
            context: &'static str,
        ) -> QueryResult<Option<T>> {
            let mut query = sqlx::query(sql);
            for param in params {
                query = query.bind(*param);
            }
            let row = query
                .fetch_optional(pool)
                .await
                .map_err(query_error(context))?;
            row.as_ref()
                .map(map)
                .transpose()
                .map_err(query_error(context))
        }

        fn number_column(row: &DbRow, column: &str) -> Result<E164, sqlx::Error> {
            let text: String = row.try_get(column)?;
            E164::from_e164(&text).map_err(|e| decode_error(column, e))
        }

        // ---- enterprises and API keys ----

        const ENTERPRISE_COLUMNS: &str = "id, name, display_name, services, default_region, \
             crm_webhook_url, crm_webhook_secret, consent_policy, status, created_at, updated_at";

        pub(crate) async fn insert_enterprise(pool: &Pool<Db>, e: &Enterprise) -> QueryResult<()> {
            let sql = format!(
                "INSERT INTO enterprises ({ENTERPRISE_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            );
            sqlx::query(&sql)
                .bind(&e.id)
                .bind(&e.name)
                .bind(&e.display_name)
                .bind(e.services.join("\n"))
                .bind(&e.default_region)
                .bind(&e.crm_webhook_url)
                .bind(&e.crm_webhook_secret)
                .bind(e.consent_policy.to_string())
                .bind(e.status.as_str())
                .bind(t(e.created_at))
                .bind(t(e.updated_at))
                .execute(pool)
                .await
                .map_err(query_error("inserting an enterprise"))?;
            Ok(())
        }

        pub(crate) async fn enterprise(pool: &Pool<Db>, id: &str) -> QueryResult<Option<Enterprise>> {
            const CONTEXT: &str = "reading an enterprise";
            let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE id = $1");
            fetch_optional(pool, &sql, &[id], enterprise_from_row, CONTEXT).await
        }

        fn enterprise_from_row(row: &DbRow) -> Result<Enterprise, sqlx::Error> {
            let services: String = row.try_get("services")?;
            Ok(Enterprise {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                display_name: row.try_get("display_name")?,
                services: services
                    .lines()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                default_region: row.try_get("default_region")?,
                crm_webhook_url: row.try_get("crm_webhook_url")?,
                crm_webhook_secret: row.try_get("crm_webhook_secret")?,
                consent_policy: parsed(row, "consent_policy")?,
                status: parsed(row, "status")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        pub(crate) async fn set_enterprise_status(
            pool: &Pool<Db>,
            id: &str,
            status: TrustStatus,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let done = sqlx::query("UPDATE enterprises SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(t(now))
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("changing an enterprise's status"))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn enterprises(pool: &Pool<Db>) -> QueryResult<Vec<Enterprise>> {
            const CONTEXT: &str = "listing enterprises";
            let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY created_at, id");
            let rows = sqlx::query(&sql)
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(enterprise_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }

        /// Writes every field of `e` over the stored row, if that row is
        /// still the version last updated at `read_version`.
        pub(crate) async fn replace_enterprise(
            pool: &Pool<Db>,
            e: &Enterprise,
            read_version: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let done = sqlx::query(
                "UPDATE enterprises SET name = $2, display_name = $3, services = $4, \
                 default_region = $5, crm_webhook_url = $6, crm_webhook_secret = $7, \
                 consent_policy = $8, status = $9, updated_at = $10 \
                 WHERE id = $1 AND updated_at = $11",
            )
            .bind(&e.id)
            .bind(&e.name)
            .bind(&e.display_name)
            .bind(e.services.join("\n"))
            .bind(&e.default_region)
            .bind(&e.crm_webhook_url)
            .bind(&e.crm_webhook_secret)
            .bind(e.consent_policy.to_string())
            .bind(e.status.as_str())
            .bind(t(e.updated_at))
            .bind(t(read_version))
            .execute(pool)
            .await
            .map_err(query_error("updating an enterprise"))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn delete_enterprise(
            pool: &Pool<Db>,
            id: &str,
        ) -> QueryResult<crate::store::consent::EnterpriseDeletion> {
            use crate::store::consent::EnterpriseDeletion;
            const CONTEXT: &str = "deleting an enterprise";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let exists = sqlx::query("SELECT 1 FROM enterprises WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?
                .is_some();
            if !exists {
                return Ok(EnterpriseDeletion::Missing);
            }
            let history = sqlx::query(
                "SELECT 1 FROM subscriptions WHERE enterprise_id = $1 \
                 UNION ALL SELECT 1 FROM consents WHERE enterprise_id = $1 \
                 UNION ALL SELECT 1 FROM consent_requests WHERE enterprise_id = $1 \
                 LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            if history.is_some() {
                return Ok(EnterpriseDeletion::HasHistory);
            }
            for sql in [
                "DELETE FROM api_keys WHERE enterprise_id = $1",
                "DELETE FROM do_not_call WHERE enterprise_id = $1",
                "DELETE FROM prompt_templates WHERE enterprise_id = $1",
                "DELETE FROM caller_id_overrides WHERE enterprise_id = $1",
                "DELETE FROM enterprises WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(EnterpriseDeletion::Deleted)
        }

        pub(crate) async fn insert_api_key(pool: &Pool<Db>, key: &ApiKey) -> QueryResult<()> {
            sqlx::query(
                "INSERT INTO api_keys (id, enterprise_id, hash, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&key.enterprise_id)
            .bind(&key.hash)
            .bind(t(key.created_at))
            .bind(key.revoked_at.map(t))
            .execute(pool)
            .await
            .map_err(query_error("storing an API key"))?;
            Ok(())
        }

        const API_KEY_COLUMNS: &str = "id, enterprise_id, hash, created_at, revoked_at";

        fn api_key_from_row(row: &DbRow) -> Result<ApiKey, sqlx::Error> {
            Ok(ApiKey {
                id: row.try_get("id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                hash: row.try_get("hash")?,
                created_at: time(row, "created_at")?,
                revoked_at: opt_time(row, "revoked_at")?,
            })
        }

        pub(crate) async fn api_key(pool: &Pool<Db>, id: &str) -> QueryResult<Option<ApiKey>> {
            const CONTEXT: &str = "reading an API key";
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
            fetch_optional(pool, &sql, &[id], api_key_from_row, CONTEXT).await
        }

        /// A key's hash and revocation with its enterprise, in one round
        /// trip: every API request starts here.
        pub(crate) async fn api_key_holder(
            pool: &Pool<Db>,
            id: &str,
        ) -> QueryResult<Option<(String, bool, Enterprise)>> {
            const CONTEXT: &str = "reading an API key's enterprise";
            // `e.*`: the enterprise's columns under their own names, as
            // `enterprise_from_row` reads them, with no text built per call.
            const SQL: &str = "SELECT k.hash AS key_hash, \
                 k.revoked_at IS NOT NULL AS key_revoked, e.* \
                 FROM api_keys k JOIN enterprises e ON e.id = k.enterprise_id WHERE k.id = $1";
            fetch_optional(
                pool,
                SQL,
                &[id],
                |row| {
                    Ok((
                        row.try_get("key_hash")?,
                        row.try_get("key_revoked")?,
                        enterprise_from_row(row)?,
                    ))
                },
                CONTEXT,
            )
            .await
        }

        pub(crate) async fn api_keys(pool: &Pool<Db>, enterprise_id: &str) -> QueryResult<Vec<ApiKey>> {
            const CONTEXT: &str = "listing API keys";
            let sql = format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE enterprise_id = $1 \
                 ORDER BY created_at, id"
            );
            let rows = sqlx::query(&sql)
                .bind(enterprise_id)
                .fetch_all(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            rows.iter()
                .map(api_key_from_row)
                .collect::<Result<_, _>>()
                .map_err(query_error(CONTEXT))
        }

        pub(crate) async fn revoke_api_key(
            pool: &Pool<Db>,
            id: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<()> {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(t(now))
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("revoking an API key"))?;
            Ok(())
        }

        // ---- people ----

        /// Who already holds `identifier`, if anyone.
        async fn identifier_owner(
            conn: &mut <Db as sqlx::Database>::Connection,
            identifier: &Identifier,
        ) -> QueryResult<Option<String>> {
            sqlx::query_scalar("SELECT person_id FROM person_identifiers WHERE kind = $1 AND value = $2")
                .bind(identifier.kind().as_str())
                .bind(identifier.value())
                .fetch_optional(conn)
                .await
                .map_err(query_error("looking up an identifier"))
        }

        async fn insert_identifier(
            conn: &mut <Db as sqlx::Database>::Connection,
            person_id: &str,
            identifier: &Identifier,
        ) -> QueryResult<()> {
            if let Some(owner) = identifier_owner(conn, identifier).await? {
                if owner == person_id {
                    return Ok(());
                }
                return Err(ConsentStoreError::IdentifierTaken {
                    identifier: identifier.to_string(),
                    person_id: owner,
                });
            }
            sqlx::query(
                "INSERT INTO person_identifiers (kind, value, person_id, position) \
                 SELECT $1, $2, $3, COALESCE(MAX(position), 0) + 1 \
                 FROM person_identifiers WHERE person_id = $3",
            )
            .bind(identifier.kind().as_str())
            .bind(identifier.value())
            .bind(person_id)
            .execute(conn)
            .await
            .map_err(|cause| taken_or(cause, identifier, "adding an identifier"))?;
            Ok(())
        }

        /// A unique-key violation here means another writer claimed the
        /// identifier between the check and the insert.
        fn taken_or(
            cause: sqlx::Error,
            identifier: &Identifier,
            context: &'static str,
        ) -> ConsentStoreError {
            match &cause {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    ConsentStoreError::IdentifierTaken {
                        identifier: identifier.to_string(),
                        person_id: "(another person)".to_string(),
                    }
                }
                _ => ConsentStoreError::Store(StoreError::Query { context, cause }),
            }
        }

        pub(crate) async fn insert_person(pool: &Pool<Db>, person: &Person) -> QueryResult<()> {
            const CONTEXT: &str = "creating a person";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            sqlx::query("INSERT INTO persons (id, created_at) VALUES ($1, $2)")
                .bind(&person.id)
                .bind(t(person.created_at))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            for identifier in &person.identifiers {
                insert_identifier(&mut tx, &person.id, identifier).await?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))
        }

        pub(crate) async fn add_identifier(
            pool: &Pool<Db>,
            person_id: &str,
            identifier: &Identifier,
        ) -> QueryResult<()> {
            const CONTEXT: &str = "adding an identifier";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM persons WHERE id = $1")
                .bind(person_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            if exists.is_none() {
                return Err(ConsentStoreError::NotFound {
                    what: "person",
                    id: person_id.to_string(),
                });
            }
            insert_identifier(&mut tx, person_id, identifier).await?;
            tx.commit().await.map_err(query_error(CONTEXT))
        }

        pub(crate) async fn person(pool: &Pool<Db>, id: &str) -> QueryResult<Option<Person>> {
            const CONTEXT: &str = "reading a person";
            let row = sqlx::query("SELECT id, created_at FROM persons WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let created_at = time(&row, "created_at").map_err(query_error(CONTEXT))?;
            let rows = sqlx::query(
                "SELECT kind, value FROM person_identifiers WHERE person_id = $1 ORDER BY position",
            )
            .bind(id)
            .fetch_all(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            let identifiers = rows
                .iter()
                .map(|r| {
                    let kind: String = r.try_get("kind")?;
                    let value: String = r.try_get("value")?;
                    Identifier::from_stored(&kind, &value).map_err(|e| decode_error("value", e))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(query_error(CONTEXT))?;
            Ok(Some(Person {
                id: id.to_string(),
                identifiers,
                created_at,
            }))
        }

        pub(crate) async fn person_id_by_identifier(
            pool: &Pool<Db>,
            identifier: &Identifier,
        ) -> QueryResult<Option<String>> {
            let mut conn = pool
                .acquire()
                .await
                .map_err(query_error("looking up an identifier"))?;
            identifier_owner(&mut conn, identifier).await
        }

        // ---- subscriptions ----

        fn subscription_from_row(row: &DbRow) -> Result<Subscription, sqlx::Error> {
            Ok(Subscription {
                person_id: row.try_get("person_id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                status: parsed(row, "status")?,
                since: time(row, "since")?,
                until: opt_time(row, "until")?,
            })
        }

        const SUBSCRIPTION_QUERY: &str = "SELECT person_id, enterprise_id, status, since, until \
             FROM subscriptions WHERE person_id = $1 AND enterprise_id = $2";

        pub(crate) async fn subscription(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
        ) -> QueryResult<Option<Subscription>> {
            const CONTEXT: &str = "reading a subscription";
            fetch_optional(
                pool,
                SUBSCRIPTION_QUERY,
                &[person_id, enterprise_id],
                subscription_from_row,
                CONTEXT,
            )
            .await
        }

        pub(crate) async fn set_subscription(
            pool: &Pool<Db>,
            person_id: &str,
            enterprise_id: &str,
            status: SubscriptionStatus,
            now: DateTime<Utc>,
        ) -> QueryResult<Subscription> {
            const CONTEXT: &str = "setting a subscription";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let row = sqlx::query(SUBSCRIPTION_QUERY)
                .bind(person_id)
                .bind(enterprise_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            let existing = row
                .as_ref()
                .map(subscription_from_row)
                .transpose()
                .map_err(query_error(CONTEXT))?;
            let next = match (&existing, status) {
                (Some(s), SubscriptionStatus::Active) if s.status == SubscriptionStatus::Active => {
                    s.clone()
                }
                (_, SubscriptionStatus::Active) => Subscription {
                    person_id: person_id.to_string(),
                    enterprise_id: enterprise_id.to_string(),
                    status,
                    since: now,
                    until: None,
                },
                (Some(s), SubscriptionStatus::Paused) => Subscription {
                    status,
                    ..s.clone()
                },
                (Some(s), SubscriptionStatus::Ended) => Subscription {
                    status,
                    until: Some(s.until.filter(|u| *u <= now).unwrap_or(now)),
                    ..s.clone()
                },
                (None, _) => Subscription {
                    person_id: person_id.to_string(),
                    enterprise_id: enterprise_id.to_string(),
                    status,
                    since: now,
                    until: (status == SubscriptionStatus::Ended).then_some(now),
                },
            };
            let sql = if existing.is_some() {
                "UPDATE subscriptions SET status = $3, since = $4, until = $5 \
                 WHERE person_id = $1 AND enterprise_id = $2"
            } else {
                "INSERT INTO subscriptions (person_id, enterprise_id, status, since, until) \
                 VALUES ($1, $2, $3, $4, $5)"
            };
            sqlx::query(sql)
                .bind(person_id)
                .bind(enterprise_id)
                .bind(next.status.as_str())
                .bind(t(next.since))
                .bind(next.until.map(t))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(next)
        }

        // ---- do-not-call ----

        async fn insert_do_not_call(
            conn: &mut <Db as sqlx::Database>::Connection,
            enterprise_id: &str,
            number: &E164,
            source: &str,
            now: DateTime<Utc>,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "INSERT INTO do_not_call (enterprise_id, number, source, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (enterprise_id, number) DO NOTHING",
            )
            .bind(enterprise_id)
            .bind(number.as_str())
            .bind(source)
            .bind(t(now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        /// `enterprise_id` is `""` for the global list.
        pub(crate) async fn add_do_not_call(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
            source: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            let mut conn = pool
                .acquire()
                .await
                .map_err(query_error("adding a do-not-call entry"))?;
            insert_do_not_call(&mut conn, enterprise_id, number, source, now)
                .await
                .map_err(query_error("adding a do-not-call entry"))
        }

        /// The global entry for `number`, else the enterprise's (`""`: only
        /// the global list is consulted).
        pub(crate) async fn do_not_call(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
        ) -> QueryResult<Option<DncEntry>> {
            const CONTEXT: &str = "checking the do-not-call lists";
            let row = sqlx::query(
                "SELECT enterprise_id, number, source, created_at FROM do_not_call \
                 WHERE number = $1 AND enterprise_id IN ('', $2) \
                 ORDER BY enterprise_id LIMIT 1",
            )
            .bind(number.as_str())
            .bind(enterprise_id)
            .fetch_optional(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            row.as_ref()
                .map(|row| {
                    let scope: String = row.try_get("enterprise_id")?;
                    Ok(DncEntry {
                        number: number_column(row, "number")?,
                        enterprise_id: (!scope.is_empty()).then_some(scope),
                        source: row.try_get("source")?,
                        created_at: time(row, "created_at")?,
                    })
                })
                .transpose()
                .map_err(query_error(CONTEXT))
        }

        /// Everything "may this enterprise ask this number?" needs, in one
        /// round trip: this runs for every consent request, and on SQLite
        /// each statement is a hop to the driver's thread and back.
        pub(crate) async fn ask_facts(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
        ) -> QueryResult<Option<crate::store::consent::AskFacts>> {
            const CONTEXT: &str = "checking whether an enterprise may ask a number";
            // The global list is stored under '' and so sorts first: it
            // binds everyone, and is reported first.
            let row = sqlx::query(
                "WITH owner AS (SELECT person_id FROM person_identifiers \
                                WHERE kind = 'phone' AND value = $2) \
                 SELECT e.status, \
                   (SELECT MIN(d.enterprise_id) FROM do_not_call d \
                     WHERE d.number = $2 AND d.enterprise_id IN ('', $1)) AS dnc_scope, \
                   (SELECT person_id FROM owner) AS person_id, \
                   (SELECT o.number FROM caller_id_overrides o \
                     WHERE o.enterprise_id = $1 \
                       AND o.person_id = (SELECT person_id FROM owner)) AS caller_id_override, \
                   s.status AS subscription_status, s.since, s.until \
                 FROM enterprises e \
                 LEFT JOIN subscriptions s \
                   ON s.enterprise_id = e.id AND s.person_id = (SELECT person_id FROM owner) \
                 WHERE e.id = $1",
            )
            .bind(enterprise_id)
            .bind(number.as_str())
            .fetch_optional(pool)
            .await
            .map_err(query_error(CONTEXT))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let facts = ask_facts_from_row(&row, enterprise_id).map_err(query_error(CONTEXT))?;
            Ok(Some(facts))
        }

        /// The facts in a row with the columns `status` (the enterprise's),
        /// `dnc_scope`, `person_id`, `subscription_status`, `since` and
        /// `until`, as [`ask_facts`] selects them.
        fn ask_facts_from_row(
            row: &DbRow,
            enterprise_id: &str,
        ) -> Result<crate::store::consent::AskFacts, sqlx::Error> {
            let person_id: Option<String> = row.try_get("person_id")?;
            let subscription = match row.try_get::<Option<String>, _>("subscription_status")? {
                Some(status) => Some(Subscription {
                    person_id: person_id.clone().unwrap_or_default(),
                    enterprise_id: enterprise_id.to_string(),
                    status: status.parse().map_err(|e| decode_error("status", e))?,
                    since: time(row, "since")?,
                    until: opt_time(row, "until")?,
                }),
                None => None,
            };
            Ok(crate::store::consent::AskFacts {
                trust: parsed(row, "status")?,
                do_not_call: row
                    .try_get::<Option<String>, _>("dnc_scope")?
                    .map(|scope| (!scope.is_empty()).then_some(scope)),
                person_id,
                subscription,
                caller_id_override: row
                    .try_get::<Option<String>, _>("caller_id_override")?
                    .map(|text| {
                        E164::from_e164(&text).map_err(|e| decode_error("caller_id_override", e))
                    })
                    .transpose()?,
            })
        }

        pub(crate) async fn remove_do_not_call(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
        ) -> QueryResult<bool> {
            let done = sqlx::query("DELETE FROM do_not_call WHERE enterprise_id = $1 AND number = $2")
                .bind(enterprise_id)
                .bind(number.as_str())
                .execute(pool)
                .await
                .map_err(query_error("removing a do-not-call entry"))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn import_do_not_call(
            pool: &Pool<Db>,
            enterprise_id: &str,
            parsed: ParsedDncCsv,
            now: DateTime<Utc>,
        ) -> QueryResult<DncImportReport> {
            const CONTEXT: &str = "importing do-not-call entries";
            let mut report = DncImportReport {
                accepted: Vec::new(),
                rejected: parsed.rejected,
            };
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            for (line, input, number) in parsed.numbers {
                if insert_do_not_call(&mut tx, enterprise_id, &number, "import", now)
                    .await
                    .map_err(query_error(CONTEXT))?
                {
                    report.accepted.push(number);
                } else {
                    report.rejected.push(DncRejection {
                        line,
                        input,
                        reason: DncRejectionReason::AlreadyListed,
                    });
                }
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            report.rejected.sort_by_key(|r| r.line);
            Ok(report)
        }

        // ---- consents ----

        const CONSENT_COLUMNS: &str = "id, person_id, enterprise_id, number, scope, status, \
             window_start, window_end, time_zone, expires_at, channel, provider_message_id, \
             raw_reply, signature_valid, replied_at, received_at, created_at, updated_at, \
             revoked_at";

        /// Stores the consent and queues its webhook event, together.
        pub(crate) async fn insert_consent(pool: &Pool<Db>, c: &Consent) -> QueryResult<()> {
            const CONTEXT: &str = "recording a consent";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            insert_consent_on(&mut tx, c)
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))
        }

        /// Writes `c` and its webhook event on `conn`, the caller's
        /// transaction.
        async fn insert_consent_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            c: &Consent,
        ) -> Result<(), sqlx::Error> {
            let sql = format!(
                "INSERT INTO consents ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
            );
            sqlx::query(&sql)
                .bind(&c.id)
                .bind(&c.person_id)
                .bind(&c.enterprise_id)
                .bind(c.number.as_str())
                .bind(c.scope.to_string())
                .bind(c.status.as_str())
                .bind(c.window.as_ref().map(|w| t(w.start)))
                .bind(c.window.as_ref().map(|w| t(w.end)))
                .bind(c.window.as_ref().map(|w| w.time_zone.name()))
                .bind(c.expires_at.map(t))
                .bind(c.channel.as_str())
                .bind(&c.evidence.provider_message_id)
                .bind(&c.evidence.raw_reply)
                .bind(c.evidence.signature_valid)
                .bind(c.evidence.replied_at.map(t))
                .bind(c.evidence.received_at.map(t))
                .bind(t(c.created_at))
                .bind(t(c.updated_at))
                .bind(c.revoked_at.map(t))
                .execute(&mut *conn)
                .await?;
            enqueue_webhook(conn, &Envelope::for_consent(c, c.created_at)).await?;
            Ok(())
        }

        fn consent_from_row(row: &DbRow) -> Result<Consent, sqlx::Error> {
            let window = match (
                opt_time(row, "window_start")?,
                opt_time(row, "window_end")?,
                row.try_get::<Option<String>, _>("time_zone")?,
            ) {
                (Some(start), Some(end), Some(zone)) => Some(
                    Window::new(start, end, &zone).map_err(|e| decode_error("time_zone", e))?,
                ),
                _ => None,
            };
            Ok(Consent {
                id: row.try_get("id")?,
                person_id: row.try_get("person_id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                number: number_column(row, "number")?,
                scope: parsed::<Scope>(row, "scope")?,
                status: parsed::<ConsentStatus>(row, "status")?,
                window,
                expires_at: opt_time(row, "expires_at")?,
                channel: parsed::<Channel>(row, "channel")?,
                evidence: Evidence {
                    provider_message_id: row.try_get("provider_message_id")?,
                    raw_reply: row.try_get("raw_reply")?,
                    signature_valid: row.try_get("signature_valid")?,
                    replied_at: opt_time(row, "replied_at")?,
                    received_at: opt_time(row, "received_at")?,
                },
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
                revoked_at: opt_time(row, "revoked_at")?,
            })
        }

        pub(crate) async fn consent(pool: &Pool<Db>, id: &str) -> QueryResult<Option<Consent>> {
            const CONTEXT: &str = "reading a consent";
            let sql = format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1");
            fetch_optional(pool, &sql, &[id], consent_from_row, CONTEXT).await
        }

        /// Returns false if there is no such consent.
        pub(crate) async fn revoke_consent(
            pool: &Pool<Db>,
            id: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            const CONTEXT: &str = "revoking a consent";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let sql = format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1");
            let row = sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
            let Some(row) = row else {
                return Ok(false);
            };
            let mut consent = consent_from_row(&row).map_err(query_error(CONTEXT))?;
            let revoked = sqlx::query(
                "UPDATE consents SET status = 'revoked', revoked_at = $1, updated_at = $1 \
                 WHERE id = $2 AND status <> 'revoked'",
            )
            .bind(t(now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            insert_do_not_call(&mut tx, &consent.enterprise_id, &consent.number, "revocation", now)
                .await
                .map_err(query_error(CONTEXT))?;
            // Revoking twice keeps the first revocation: one event only.
            if revoked.rows_affected() > 0 {
                consent.status = ConsentStatus::Revoked;
                consent.revoked_at = Some(now);
                consent.updated_at = now;
                enqueue_webhook(&mut tx, &Envelope::for_consent(&consent, now))
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(true)
        }

        pub(crate) async fn consent_covering(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
            at: DateTime<Utc>,
        ) -> QueryResult<Option<Consent>> {
            const CONTEXT: &str = "looking up a covering consent";
            let sql = format!(
                "SELECT {CONSENT_COLUMNS} FROM consents \
                 WHERE enterprise_id = $1 AND number = $2 AND status = 'granted' \
                   AND (expires_at IS NULL OR expires_at > $3) \
                   AND (window_start IS NULL OR (window_start <= $3 AND window_end > $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            );
            let row = sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(number.as_str())
                .bind(t(at))
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            row.as_ref()
                .map(consent_from_row)
                .transpose()
                .map_err(query_error(CONTEXT))
        }

        /// Expires what is due and queues one event per expired consent, in
        /// one transaction. RETURNING gives exactly the rows this statement
        /// changed, so two nodes expiring at once cannot both report one.
        pub(crate) async fn expire_consents(pool: &Pool<Db>, now: DateTime<Utc>) -> QueryResult<u64> {
            const CONTEXT: &str = "expiring consents";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            let sql = format!(
                "UPDATE consents SET status = 'expired', updated_at = $1 \
                 WHERE status = 'granted' AND expires_at IS NOT NULL AND expires_at <= $1 \
                 RETURNING {CONSENT_COLUMNS}"
            );
            let mut expired = sqlx::query(&sql)
                .bind(t(now))
                .fetch_all(&mut *tx)
                .await
                .and_then(|rows| rows.iter().map(consent_from_row).collect::<Result<Vec<_>, _>>())
                .map_err(query_error(CONTEXT))?;
            // RETURNING order is unspecified; events of one person must
            // queue in the order the consents were given.
            expired.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            // Queue locks in one global order, so two transactions that
            // expire consents of the same people cannot deadlock.
            let mut queues: Vec<(&str, &str)> = expired
                .iter()
                .map(|c| (c.enterprise_id.as_str(), c.person_id.as_str()))
                .collect();
            queues.sort_unstable();
            queues.dedup();
            for (enterprise_id, person_id) in queues {
                lock_event_queue(&mut tx, enterprise_id, person_id)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            for consent in &expired {
                enqueue_webhook(&mut tx, &Envelope::for_consent(consent, now))
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(expired.len() as u64)
        }

        // ---- consent requests ----

        const REQUEST_COLUMNS: &str = "id, enterprise_id, person_id, number, scope, hold_id, \
             state, answer_kind, answer_start, answer_end, failure_reason, provider_message_id, \
             created_at, updated_at, expires_at, version";

        /// The state as the columns `state, answer_kind, answer_start,
        /// answer_end, failure_reason`.
        type StateColumns<'a> = (
            &'static str,
            Option<&'static str>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<&'a str>,
        );

        fn state_columns(state: &RequestState) -> StateColumns<'_> {
            match state {
                RequestState::Answered(answer) => {
                    let bounds = answer.bounds();
                    (
                        state.name(),
                        Some(answer.kind()),
                        bounds.map(|b| b.0),
                        bounds.map(|b| b.1),
                        None,
                    )
                }
                RequestState::Failed { reason } => (state.name(), None, None, None, Some(reason)),
                _ => (state.name(), None, None, None, None),
            }
        }

        fn state_from_row(row: &DbRow) -> Result<RequestState, sqlx::Error> {
            let state: String = row.try_get("state")?;
            let bounds = || -> Result<(DateTime<Utc>, DateTime<Utc>), sqlx::Error> {
                match (opt_time(row, "answer_start")?, opt_time(row, "answer_end")?) {
                    (Some(s), Some(e)) => Ok((s, e)),
                    _ => Err(decode_error("answer_start", "a slot answer needs both bounds")),
                }
            };
            Ok(match state.as_str() {
                "created" => RequestState::Created,
                "sent" => RequestState::Sent,
                "delivered" => RequestState::Delivered,
                "expired" => RequestState::Expired,
                "failed" => RequestState::Failed {
                    reason: row
                        .try_get::<Option<String>, _>("failure_reason")?
                        .unwrap_or_default(),
                },
                "answered" => {
                    let kind: Option<String> = row.try_get("answer_kind")?;
                    RequestState::Answered(match kind.as_deref() {
                        Some("now") => Answer::Now,
                        Some("decline") => Answer::Decline,
                        Some("slot") => {
                            let (start, end) = bounds()?;
                            Answer::Slot(SlotOption { start, end })
                        }
                        Some("range") => {
                            let (start, end) = bounds()?;
                            Answer::Range { start, end }
                        }
                        other => {
                            return Err(decode_error(
                                "answer_kind",
                                format!("unknown answer kind {other:?}"),
                            ))
                        }
                    })
                }
                other => return Err(decode_error("state", format!("unknown state {other:?}"))),
            })
        }

        /// The request's row and its offered options, inside the caller's
        /// transaction.
        async fn insert_request_rows(
            conn: &mut <Db as sqlx::Database>::Connection,
            r: &ConsentRequest,
        ) -> Result<(), sqlx::Error> {
            let (state, kind, start, end, reason) = state_columns(&r.state);
            let sql = format!(
                "INSERT INTO consent_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            );
            sqlx::query(&sql)
                .bind(&r.id)
                .bind(&r.enterprise_id)
                .bind(&r.person_id)
                .bind(r.number.as_str())
                .bind(r.scope.to_string())
                .bind(&r.hold_id)
                .bind(state)
                .bind(kind)
                .bind(start.map(t))
                .bind(end.map(t))
                .bind(reason)
                .bind(&r.provider_message_id)
                .bind(t(r.created_at))
                .bind(t(r.updated_at))
                .bind(t(r.expires_at))
                .bind(r.version)
                .execute(&mut *conn)
                .await?;
            for (position, option) in (1_i32..).zip(&r.options) {
                sqlx::query(
                    "INSERT INTO consent_request_options (request_id, position, start_at, end_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&r.id)
                .bind(position)
                .bind(t(option.start))
                .bind(t(option.end))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// Inserts the request (and the API's details, if any) in one
        /// transaction. False: the details' idempotency key is already used
        /// by this enterprise, and nothing was written.
        pub(crate) async fn insert_request(
            pool: &Pool<Db>,
            r: &ConsentRequest,
            details: Option<&crate::store::api::RequestDetails>,
        ) -> QueryResult<bool> {
            const CONTEXT: &str = "creating a consent request";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            insert_request_rows(&mut tx, r)
                .await
                .map_err(query_error(CONTEXT))?;
            if let Some(d) = details {
                let inserted = sqlx::query(
                    "INSERT INTO api_consent_requests (request_id, enterprise_id, \
                       idempotency_key, body_digest, locale, personalisation, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(&r.id)
                .bind(&r.enterprise_id)
                .bind(&d.idempotency_key)
                .bind(&d.body_digest)
                .bind(&d.locale)
                .bind(&d.personalisation)
                .bind(t(r.created_at))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
                if inserted.rows_affected() == 0 {
                    // Dropping the transaction rolls the request back too.
                    return Ok(false);
                }
            }
            enqueue_webhook(&mut tx, &Envelope::for_request(r, r.created_at))
                .await
                .map_err(query_error(CONTEXT))?;
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(true)
        }

        pub(crate) async fn request_by_idempotency_key(
            pool: &Pool<Db>,
            enterprise_id: &str,
            key: &str,
        ) -> QueryResult<Option<String>> {
            sqlx::query(
                "SELECT request_id FROM api_consent_requests \
                 WHERE enterprise_id = $1 AND idempotency_key = $2",
            )
            .bind(enterprise_id)
            .bind(key)
            .fetch_optional(pool)
            .await
            .and_then(|row| row.map(|row| row.try_get("request_id")).transpose())
            .map_err(query_error("looking up an idempotency key"))
        }

        pub(crate) async fn request_details(
            pool: &Pool<Db>,
            request_id: &str,
        ) -> QueryResult<Option<crate::store::api::RequestDetails>> {
            sqlx::query(
                "SELECT idempotency_key, body_digest, locale, personalisation \
                 FROM api_consent_requests \
                 WHERE request_id = $1",
            )
            .bind(request_id)
            .fetch_optional(pool)
            .await
            .and_then(|row| {
                row.map(|row| {
                    Ok(crate::store::api::RequestDetails {
                        idempotency_key: row.try_get("idempotency_key")?,
                        body_digest: row.try_get("body_digest")?,
                        locale: row.try_get("locale")?,
                        personalisation: row.try_get("personalisation")?,
                    })
                })
                .transpose()
            })
            .map_err(query_error("reading a consent request's API details"))
        }

        /// Every consent the enterprise holds for the number, newest first.
        pub(crate) async fn consents_for_number(
            pool: &Pool<Db>,
            enterprise_id: &str,
            number: &E164,
        ) -> QueryResult<Vec<Consent>> {
            const CONTEXT: &str = "listing consents for a number";
            let sql = format!(
                "SELECT {CONSENT_COLUMNS} FROM consents \
                 WHERE enterprise_id = $1 AND number = $2 ORDER BY created_at DESC, id DESC"
            );
            sqlx::query(&sql)
                .bind(enterprise_id)
                .bind(number.as_str())
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(consent_from_row).collect())
                .map_err(query_error(CONTEXT))
        }

        pub(crate) async fn ping(pool: &Pool<Db>) -> QueryResult<()> {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(query_error("checking the database"))?;
            Ok(())
        }

        pub(crate) async fn consent_request(
            pool: &Pool<Db>,
            id: &str,
        ) -> QueryResult<Option<ConsentRequest>> {
            const CONTEXT: &str = "reading a consent request";
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM consent_requests WHERE id = $1");
            let row = sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let options = request_options(pool, id)
                .await
                .map_err(query_error(CONTEXT))?;
            let request = request_from_row(&row, options).map_err(query_error(CONTEXT))?;
            Ok(Some(request))
        }

        /// The slots the enterprise asked to offer, in their order.
        async fn request_options(pool: &Pool<Db>, id: &str) -> Result<Vec<SlotOption>, sqlx::Error> {
            sqlx::query(
                "SELECT start_at, end_at FROM consent_request_options \
                 WHERE request_id = $1 ORDER BY position",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|o| {
                Ok(SlotOption {
                    start: time(o, "start_at")?,
                    end: time(o, "end_at")?,
                })
            })
            .collect()
        }

        /// A request row (selected with `REQUEST_COLUMNS`) and its options.
        fn request_from_row(
            row: &DbRow,
            options: Vec<SlotOption>,
        ) -> Result<ConsentRequest, sqlx::Error> {
            Ok(ConsentRequest {
                id: row.try_get("id")?,
                enterprise_id: row.try_get("enterprise_id")?,
                person_id: row.try_get("person_id")?,
                number: number_column(row, "number")?,
                scope: parsed(row, "scope")?,
                options,
                hold_id: row.try_get("hold_id")?,
                state: state_from_row(row)?,
                provider_message_id: row.try_get("provider_message_id")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
                expires_at: time(row, "expires_at")?,
                version: row.try_get("version")?,
            })
        }

        /// Writes the mutable part of a request if the row is still at
        /// `r.version`, bumping the version. False: no row at that version.
        /// The transition and its webhook event commit together.
        pub(crate) async fn update_request(pool: &Pool<Db>, r: &ConsentRequest) -> QueryResult<bool> {
            const CONTEXT: &str = "updating a consent request";
            let mut tx = begin(pool).await.map_err(query_error(CONTEXT))?;
            if !update_request_on(&mut tx, r)
                .await
                .map_err(query_error(CONTEXT))?
            {
                return Ok(false);
            }
            tx.commit().await.map_err(query_error(CONTEXT))?;
            Ok(true)
        }

        /// Writes the mutable part of a request and its webhook event on
        /// `conn` if the row is still at `r.version`, bumping the version.
        /// False: no row at that version (nothing written).
        async fn update_request_on(
            conn: &mut <Db as sqlx::Database>::Connection,
            r: &ConsentRequest,
        ) -> Result<bool, sqlx::Error> {
            let (state, kind, start, end, reason) = state_columns(&r.state);
            let done = sqlx::query(
                "UPDATE consent_requests SET state = $1, answer_kind = $2, answer_start = $3, \
                   answer_end = $4, failure_reason = $5, provider_message_id = $6, \
                   updated_at = $7, version = version + 1 \
                 WHERE id = $8 AND version = $9",
            )
            .bind(state)
            .bind(kind)
            .bind(start.map(t))
            .bind(end.map(t))
            .bind(reason)
            .bind(&r.provider_message_id)
            .bind(t(r.updated_at))
            .bind(&r.id)
            .bind(r.version)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            let saved = ConsentRequest {
                version: r.version + 1,
                ..r.clone()
            };
            enqueue_webhook(conn, &Envelope::for_request(&saved, r.updated_at)).await?;
            Ok(true)
        }
    };
}
