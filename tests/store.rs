//! Store and call-recorder tests, with the same bodies run on both engines.
//!
//! "One store interface, two engines" only holds if every behaviour is
//! checked on both, so each shared test expands into a `sqlite` and a
//! `postgres` case. PostgreSQL is required: if it cannot be reached the
//! postgres cases fail (they never skip) and say how to point them at a
//! server. Each postgres case runs in a fresh schema of its own, dropped at
//! the end, so parallel tests and reruns never see each other's rows.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use slotgate::store::{spawn_recorder, CallRecord, Store, StoreError};
use sqlx::postgres::PgConnectOptions;
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, postgres_url, TestDb};
use sqlx::Connection;

on_both_engines!(
    migrate_is_idempotent,
    insert_and_read_back_every_field,
    reinserting_a_batch_keeps_the_first_rows,
    sub_microsecond_times_and_nul_are_stored_alike,
    large_batch_in_one_call,
    recorder_writes_everything_recorded,
    recorder_flushes_after_the_interval,
    recorder_keeps_records_while_the_store_fails,
    recorder_reports_unwritten_records_at_shutdown,
);

fn at(micros_after_2024: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 10, 11, 12).unwrap()
        + chrono::TimeDelta::microseconds(micros_after_2024)
}

fn sample(n: usize) -> CallRecord {
    CallRecord {
        id: format!("cdr-{n:06}"),
        a_call_id: format!("a-{n}@pbx.example"),
        b_call_id: Some(format!("b-{n}@slotgate")),
        source: "10.0.0.7:5060".into(),
        from_uri: "sip:+33123456789@pbx.example".into(),
        to_uri: "sip:+33987654321@pbx.example".into(),
        request_uri: "sip:+33987654321@trunk.example".into(),
        started_at: at(i64::try_from(n).unwrap() * 1_000),
        answered_at: Some(at(2_000_000)),
        ended_at: at(60_000_001),
        final_status: 200,
        reason: "BYE from pbx".into(),
        ended_by: Some("pbx".into()),
        gate_decision: None,
        consent_request_id: None,
        caller_id_number: Some("+12125550122".into()),
        caller_id_rule: Some("local_presence".into()),
        caller_id_why: Some(format!("no person override; call {n}")),
        identity_origid: Some(format!("00000000-0000-4000-8000-{n:012}")),
    }
}

async fn migrate_is_idempotent(db: TestDb) {
    let store = db.store().await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    // A second node (a second pool) migrating the same database is a no-op too.
    db.store().await;
    assert_eq!(store.count_calls().await.unwrap(), 0);
}

async fn insert_and_read_back_every_field(db: TestDb) {
    let store = db.store().await;
    let answered = CallRecord {
        id: "cdr-answered".into(),
        a_call_id: "3848276298220188511@pbx.example".into(),
        b_call_id: Some("slotgate-b-1".into()),
        source: "192.0.2.10:5060".into(),
        from_uri: "\"Ünïcode 'quoted'\" <sip:+33123456789@pbx.example>;tag=1928301774".into(),
        to_uri: "<sip:+33987654321@pbx.example>".into(),
        request_uri: "sip:+33987654321@trunk.example;user=phone".into(),
        started_at: at(123_456),
        answered_at: Some(at(4_000_001)),
        ended_at: at(95_999_999),
        final_status: 200,
        reason: "BYE from pbx".into(),
        ended_by: Some("pbx".into()),
        gate_decision: None,
        consent_request_id: None,
        caller_id_number: Some("+12125550100".into()),
        caller_id_rule: Some("person_override".into()),
        caller_id_why: Some("person override +12125550100 \u{2014} set by the operator".into()),
        identity_origid: Some("5e1c2a4d-8f0b-4c1e-9a7d-3b2f6e8c0d11".into()),
    };
    // Every optional field empty, and times before 2000 (negative offsets
    // from PostgreSQL's epoch) down to the last microsecond.
    let rejected = CallRecord {
        id: "cdr-rejected".into(),
        a_call_id: "a-rejected".into(),
        b_call_id: None,
        source: "[2001:db8::1]:5060".into(),
        from_uri: "sip:agent@pbx.example".into(),
        to_uri: "sip:+15555550100@pbx.example".into(),
        request_uri: "sip:+15555550100@slotgate".into(),
        started_at: Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()
            + chrono::TimeDelta::microseconds(999_999),
        answered_at: None,
        ended_at: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
            + chrono::TimeDelta::microseconds(1),
        final_status: 403,
        reason: String::new(),
        ended_by: None,
        gate_decision: None,
        consent_request_id: None,
        caller_id_number: None,
        caller_id_rule: None,
        caller_id_why: None,
        identity_origid: None,
    };
    let busy = CallRecord {
        id: "cdr-busy".into(),
        a_call_id: "a-busy".into(),
        final_status: 486,
        reason: "486 Busy Here from trunk".into(),
        ended_by: Some("trunk".into()),
        gate_decision: None,
        consent_request_id: None,
        started_at: at(7),
        answered_at: None,
        ..answered.clone()
    };
    let records = vec![answered.clone(), rejected.clone(), busy.clone()];
    store.insert_calls(&records).await.unwrap();
    store.insert_calls(&[]).await.unwrap();

    assert_eq!(store.count_calls().await.unwrap(), 3);
    for record in &records {
        let found = store.call_by_a_call_id(&record.a_call_id).await.unwrap();
        assert_eq!(found.as_ref(), Some(record));
    }
    assert_eq!(store.call_by_a_call_id("no-such-call").await.unwrap(), None);

    // A fresh pool reads the same thing: nothing came from a cache.
    let reopened = db.store().await;
    assert_eq!(
        reopened.recent_calls(10).await.unwrap(),
        vec![answered.clone(), busy.clone(), rejected.clone()]
    );
    assert_eq!(
        reopened.recent_calls(2).await.unwrap(),
        vec![answered, busy]
    );
    assert!(reopened.recent_calls(0).await.unwrap().is_empty());
    assert!(reopened.recent_calls(-1).await.unwrap().is_empty());
}

async fn reinserting_a_batch_keeps_the_first_rows(db: TestDb) {
    let store = db.store().await;
    let first: Vec<_> = (0..3).map(sample).collect();
    store.insert_calls(&first).await.unwrap();

    // A retried batch (commit landed, reply lost) must not fail on the
    // duplicate ids, and must not overwrite what is stored.
    let mut retried = first.clone();
    retried[1].reason = "changed".into();
    retried.push(sample(3));
    store.insert_calls(&retried).await.unwrap();

    assert_eq!(store.count_calls().await.unwrap(), 4);
    let kept = store.call_by_a_call_id(&first[1].a_call_id).await.unwrap();
    assert_eq!(kept.as_ref(), Some(&first[1]));
}

async fn sub_microsecond_times_and_nul_are_stored_alike(db: TestDb) {
    let store = db.store().await;
    let mut record = sample(1);
    record.started_at = at(0) + chrono::TimeDelta::nanoseconds(123_456_789);
    record.answered_at = Some(
        Utc.with_ymd_and_hms(1999, 6, 1, 0, 0, 0).unwrap() - chrono::TimeDelta::nanoseconds(1),
    );
    record.reason = "bad\0header".into();
    record.caller_id_why = Some("PBX number: \0".into());
    store.insert_calls(&[record.clone()]).await.unwrap();

    let found = store
        .call_by_a_call_id(&record.a_call_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.started_at,
        at(0) + chrono::TimeDelta::microseconds(123_456)
    );
    // Truncated toward the past, before PostgreSQL's epoch as after it.
    assert_eq!(
        found.answered_at,
        Some(
            Utc.with_ymd_and_hms(1999, 6, 1, 0, 0, 0).unwrap() - chrono::TimeDelta::microseconds(1)
        )
    );
    assert_eq!(found.reason, "bad\u{FFFD}header");
    assert_eq!(found.caller_id_why.as_deref(), Some("PBX number: \u{FFFD}"));
}

async fn large_batch_in_one_call(db: TestDb) {
    let store = db.store().await;
    let records: Vec<_> = (0..500).map(sample).collect();
    store.insert_calls(&records).await.unwrap();
    assert_eq!(store.count_calls().await.unwrap(), 500);
    let newest = store.recent_calls(1).await.unwrap();
    assert_eq!(newest, vec![records[499].clone()]);
}

async fn recorder_writes_everything_recorded(db: TestDb) {
    let store = db.store().await;
    let (recorder, handle) = spawn_recorder(store.clone(), 64, Duration::from_millis(20));

    // Several producers at once, like concurrent calls ending.
    let mut producers = Vec::new();
    for producer in 0..4 {
        let recorder = recorder.clone();
        producers.push(tokio::spawn(async move {
            for n in 0..250 {
                recorder.record(sample(producer * 1_000 + n));
                if n % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }

    assert_eq!(handle.shutdown().await, 0);
    assert_eq!(recorder.pending(), 0);
    assert_eq!(recorder.failed_writes(), 0);
    assert_eq!(store.count_calls().await.unwrap(), 1_000);
}

async fn recorder_flushes_after_the_interval(db: TestDb) {
    let store = db.store().await;
    // A batch far bigger than the traffic: only the interval can flush it.
    let (recorder, handle) = spawn_recorder(store.clone(), 10_000, Duration::from_millis(50));
    for n in 0..3 {
        recorder.record(sample(n));
    }
    wait_for_count(&store, 3).await;
    // The counter drops just after the commit, so it may lag the count.
    wait_until("pending to reach 0", || recorder.pending() == 0).await;
    assert_eq!(handle.shutdown().await, 0);
}

async fn recorder_keeps_records_while_the_store_fails(db: TestDb) {
    let store = db.store().await;
    let (recorder, handle) = spawn_recorder(store.clone(), 8, Duration::from_millis(10));

    db.execute("ALTER TABLE calls RENAME TO calls_away").await;
    for n in 0..20 {
        recorder.record(sample(n));
    }
    wait_until("a failed write", || recorder.failed_writes() > 0).await;
    assert_eq!(
        recorder.pending(),
        20,
        "nothing may be dropped while failing"
    );

    db.execute("ALTER TABLE calls_away RENAME TO calls").await;
    wait_for_count(&store, 20).await;
    wait_until("pending to reach 0", || recorder.pending() == 0).await;
    assert_eq!(handle.shutdown().await, 0);
    assert_eq!(store.count_calls().await.unwrap(), 20);
}

async fn recorder_reports_unwritten_records_at_shutdown(db: TestDb) {
    let store = db.store().await;
    let (recorder, handle) = spawn_recorder(store.clone(), 4, Duration::from_millis(10));

    db.execute("ALTER TABLE calls RENAME TO calls_away").await;
    for n in 0..10 {
        recorder.record(sample(n));
    }
    wait_until("a failed write", || recorder.failed_writes() > 0).await;
    let unwritten = handle.shutdown_with_grace(Duration::from_millis(300)).await;
    assert_eq!(unwritten, 10);

    // Once shut down, the recorder refuses (and logs) instead of queueing.
    recorder.record(sample(99));
    assert_eq!(recorder.pending(), 10);

    db.execute("ALTER TABLE calls_away RENAME TO calls").await;
    assert_eq!(store.count_calls().await.unwrap(), 0);
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_count(store: &Store, expected: i64) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let count = store.count_calls().await.unwrap();
        if count == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {expected} call records, have {count}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Engine-specific behaviour.

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(!path.exists());

    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(
        path.exists(),
        "the database file is created on first connect"
    );

    // Journal mode is a property of the file: a plain connection sees it.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn sqlite_accepts_the_short_url_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.db");
    let store = Store::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.insert_calls(&[sample(1)]).await.unwrap();
    assert_eq!(store.count_calls().await.unwrap(), 1);
    assert!(path.exists());
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store.insert_calls(&[sample(1), sample(2)]).await.unwrap();
    assert_eq!(store.count_calls().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_without_a_path_is_refused() {
    let err = Store::connect("sqlite://").await.unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_the_valid_forms() {
    for url in ["mysql://root@localhost/slotgate", "slotgate.db", ""] {
        let err = Store::connect(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{url:?} gave {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("sqlite://") && message.contains("postgres://"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn postgres_connect_errors_do_not_show_the_password() {
    let server = PgConnectOptions::from_str(&postgres_url()).unwrap();
    let host = server.get_host();
    let port = server.get_port();
    // A role that does not exist: refused by the server at once, unlike an
    // unreachable host, which the pool retries until its acquire timeout.
    let url = format!("postgresql://slotgate_no_such_role:hunter2@{host}:{port}/slotgate");
    let err = Store::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("slotgate_no_such_role:***@"), "{message}");
}
