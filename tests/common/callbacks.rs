//! Scheduled callbacks put straight into a store, the way the gate leaves
//! them when people choose a later time: one consent request, hold and
//! callback per slot. Bulk SQL rather than the API, so a test can hold a
//! thousand due slots without a thousand consent exchanges.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use slotgate::consent::{NewConsentRequest, Scope, SlotOption, E164};
use slotgate::store::holds::NewHold;
use slotgate::store::Store;
use sqlx::{Connection, Executor};

/// Where the agent leg of each callback goes, what it is about.
pub struct Slots<'a> {
    pub enterprise: &'a str,
    pub person: &'a str,
    pub callee: &'a str,
    pub campaign: &'a str,
    pub pbx_target: &'a str,
    pub first: DateTime<Utc>,
    pub spacing: TimeDelta,
}

fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Stores `count` pending callbacks (slot `i` at `first + i * spacing`);
/// their ids, `cb-0`, `cb-1`, …
pub async fn seed(url: &str, slots: &Slots<'_>, count: usize) -> Vec<String> {
    let store = Store::connect(url).await.expect("store");
    store.migrate().await.expect("migrate");
    let now = Utc::now();
    let new = NewConsentRequest {
        enterprise_id: slots.enterprise.to_string(),
        person_id: slots.person.to_string(),
        number: E164::parse(slots.callee, None).expect("callee"),
        scope: Scope::Campaign(slots.campaign.to_string()),
        options: vec![SlotOption {
            start: now + TimeDelta::hours(1),
            end: now + TimeDelta::hours(2),
        }],
        hold_id: Some("hold-seed".into()),
        expires_at: now + TimeDelta::days(1),
    };
    let hold = NewHold {
        id: "hold-seed".into(),
        campaign: slots.campaign.to_string(),
        caller: "sip:4001@127.0.0.1".into(),
        pbx_target: slots.pbx_target.to_string(),
    };
    let request = store.open_hold(new, &hold, now).await.expect("hold");
    store.close().await;
    let mut sql = String::from("BEGIN;\n");
    let ids: Vec<String> = (0..count).map(|i| format!("cb-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let start = slots.first + slots.spacing * i as i32;
        sql.push_str(&format!(
            "INSERT INTO consent_requests (id, enterprise_id, person_id, number, scope, hold_id, \
               state, created_at, updated_at, expires_at, version) \
             SELECT 'req-{i}', enterprise_id, person_id, number, scope, 'hold-{i}', state, \
               created_at, updated_at, expires_at, version FROM consent_requests WHERE id = '{req}';\n\
             INSERT INTO holds (id, request_id, enterprise_id, campaign, callee, caller, \
               pbx_target, state, created_at) \
             SELECT 'hold-{i}', 'req-{i}', enterprise_id, campaign, callee, caller, pbx_target, \
               'ended', created_at FROM holds WHERE id = 'hold-seed';\n\
             INSERT INTO scheduled_callbacks (id, request_id, hold_id, enterprise_id, campaign, \
               callee, caller, pbx_target, slot_start, slot_end, status, created_at) \
             SELECT '{id}', 'req-{i}', 'hold-{i}', enterprise_id, campaign, callee, caller, \
               pbx_target, '{}', '{}', 'pending', created_at FROM holds WHERE id = 'hold-seed';\n",
            instant(start),
            instant(start + TimeDelta::minutes(30)),
            req = request.id,
        ));
    }
    // Nothing is left for the prompt dispatcher: these requests were
    // answered long ago, in the story the test tells.
    sql.push_str(
        "UPDATE consent_requests SET state = 'expired'; UPDATE holds SET state = 'ended';\nCOMMIT;\n",
    );
    execute(url, &sql).await;
    ids
}

/// Runs `$body` with `$conn` connected to `$url`, whichever the engine,
/// and closes the connection.
macro_rules! with_connection {
    ($url:expr, $conn:ident => $body:expr) => {
        if $url.starts_with("sqlite") {
            let mut $conn = sqlx::SqliteConnection::connect($url).await.expect("sqlite");
            let out = $body;
            let _ = $conn.close().await;
            out
        } else {
            let mut $conn = sqlx::PgConnection::connect($url).await.expect("postgres");
            let out = $body;
            let _ = $conn.close().await;
            out
        }
    };
}

/// Runs `sql` on a connection of its own.
pub async fn execute(url: &str, sql: &str) {
    with_connection!(url, conn => {
        conn.execute(sql).await.expect("sql");
    })
}

/// (callback id, status) of every callback.
pub async fn statuses(url: &str) -> Vec<(String, String)> {
    let sql = "SELECT id, status FROM scheduled_callbacks ORDER BY id";
    with_connection!(url, conn => sqlx::query_as(sql).fetch_all(&mut conn).await.expect("rows"))
}

/// (attempt id, callback id, state) of every attempt.
pub async fn attempts(url: &str) -> Vec<(String, String, String)> {
    let sql = "SELECT id, callback_id, state FROM callback_attempts ORDER BY created_at";
    with_connection!(url, conn => sqlx::query_as(sql).fetch_all(&mut conn).await.expect("rows"))
}

/// Attempts begun before their slot (instants compare in the stored
/// form: sortable text on SQLite, timestamps on PostgreSQL).
pub async fn attempts_before_slot(url: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM callback_attempts a JOIN scheduled_callbacks c \
         ON c.id = a.callback_id WHERE a.created_at < c.slot_start";
    with_connection!(url, conn => sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count"))
}

/// The nodes that made attempts.
pub async fn attempt_nodes(url: &str) -> Vec<String> {
    let sql = "SELECT DISTINCT node FROM callback_attempts ORDER BY node";
    with_connection!(url, conn => sqlx::query_scalar(sql).fetch_all(&mut conn).await.expect("rows"))
}
