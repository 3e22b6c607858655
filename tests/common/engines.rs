//! Runs one store test body on both engines: SQLite in a temporary
//! directory and PostgreSQL in a fresh schema of its own, dropped at the end.
//! PostgreSQL is required: when it cannot be reached the postgres cases fail
//! (never skip) and say how to point them at a server. [`PgSchema`] gives a
//! test that is not one tokio task (several slotgate processes) a schema of
//! its own the same way.
#![allow(dead_code, unused_macros)]

use std::future::Future;

use slotgate::store::Store;
use sqlx::{Connection, Executor};
use tempfile::TempDir;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("SLOTGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// One isolated database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A fresh connection pool, migrated.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Runs `sql` on a connection of its own, outside the store, the way an
    /// operator (or an outage) would change the database under slotgate.
    pub async fn execute(&self, sql: &str) {
        if self.url.starts_with("sqlite") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.unwrap();
            conn.close().await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
    body(TestDb {
        url,
        _dir: Some(dir),
    })
    .await;
}

async fn admin_connection(base: &str) -> sqlx::PgConnection {
    match sqlx::PgConnection::connect(base).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {base}: {e}\n\
             The store tests need it: start PostgreSQL there, or set \
             SLOTGATE_TEST_POSTGRES_URL to a database this user may create schemas in."
        ),
    }
}

/// The database at `base`, with `schema` as the search path of every
/// connection.
fn schema_url(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let base = postgres_url();
    let mut admin = admin_connection(&base).await;
    let schema = format!("slotgate_test_{:016x}", rand::random::<u64>());
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let url = schema_url(&base, &schema);

    // The body runs as its own task so that a failed assertion still lets
    // the schema be dropped before the panic is passed on.
    let outcome = tokio::spawn(body(TestDb { url, _dir: None })).await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("test task did not finish: {e}"),
        }
    }
}

/// Expands one test body into a SQLite case and a PostgreSQL case.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::on_sqlite(super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::on_postgres(super::$name).await;
                }
            }
        )*
    };
}

/// A fresh PostgreSQL schema for a test that is not one tokio task (e.g.
/// several slotgate processes sharing it). Dropped with everything in it
/// when the guard goes, also when the test fails.
pub struct PgSchema {
    /// The database URL whose connections use the schema.
    pub url: String,
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates the schema; fails (never skips) when PostgreSQL is not
    /// reachable.
    pub fn create() -> PgSchema {
        let base = postgres_url();
        let name = format!("slotgate_test_{:016x}", rand::random::<u64>());
        let (b, n) = (base.clone(), name.clone());
        on_own_thread(async move {
            let mut admin = admin_connection(&b).await;
            admin
                .execute(format!("CREATE SCHEMA {n}").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
        });
        PgSchema {
            url: schema_url(&base, &name),
            base,
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        on_own_thread(async move {
            let Ok(mut admin) = sqlx::PgConnection::connect(&base).await else {
                eprintln!("cannot drop schema {name}: PostgreSQL is not reachable");
                return;
            };
            if let Err(e) = admin
                .execute(format!("DROP SCHEMA {name} CASCADE").as_str())
                .await
            {
                eprintln!("cannot drop schema {name}: {e}");
            }
            let _ = admin.close().await;
        });
    }
}

/// Runs `f` to completion on a runtime of its own, in a thread of its own
/// (so that it may be called from inside another runtime, or while
/// unwinding), and passes its panic on.
fn on_own_thread<F>(f: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let joined = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join();
    if let Err(payload) = joined {
        if !std::thread::panicking() {
            std::panic::resume_unwind(payload);
        }
    }
}
