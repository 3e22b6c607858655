//! The durable scheduler in the store: due callbacks are claimed under a
//! lease, nodes claiming at once take disjoint sets, an attempt is written
//! before dialling and only under a live claim, and a node that died
//! mid-dial leaves its callback `unknown` rather than dialled twice. Every
//! test runs on both engines; PostgreSQL is required.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use slotgate::consent::{
    ConsentPolicy, Identifier, NewConsentRequest, NewEnterprise, Scope, SlotOption,
    SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::holds::NewHold;
use slotgate::store::scheduler::{AfterAttempt, AttemptOutcome};
use slotgate::store::{ConsentStoreError, Store};
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    only_due_callbacks_are_claimed,
    a_leased_callback_is_claimed_again_only_once_its_lease_expires,
    concurrent_claimers_take_every_callback_exactly_once,
    an_attempt_needs_a_live_claim,
    a_second_attempt_is_refused_while_one_is_dialling,
    finishing_an_attempt_records_its_outcome_and_settles_the_callback,
    a_node_killed_mid_dial_leaves_the_callback_unknown,
    a_retried_callback_waits_for_its_retry_time,
    a_released_callback_is_deferred_or_dropped,
    renewing_keeps_a_claim_but_never_revives_a_lapsed_one,
    an_operator_resolves_an_unknown_callback,
    every_outcome_is_queued_for_the_crm,
);

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

const ANN: &str = "+33612345678";
const LEASE: TimeDelta = TimeDelta::seconds(60);

/// A trusted enterprise and a person subscribed to it.
async fn setup(store: &Store) -> (String, String) {
    let e = store
        .create_enterprise(
            &NewEnterprise {
                name: "ACME Energy SAS".into(),
                display_name: "ACME Energy".into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: None,
                crm_webhook_secret: None,
                consent_policy: ConsentPolicy::Days(30),
                status: TrustStatus::Trusted,
            },
            at(0),
        )
        .await
        .unwrap()
        .id;
    let person = store
        .create_person(&[Identifier::Phone(E164::parse(ANN, None).unwrap())], at(0))
        .await
        .unwrap()
        .id;
    store
        .set_subscription(&person, &e, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
    (e, person)
}

/// A pending callback whose slot starts at `start`, written behind a real
/// hold and request (as an answer would write it); its id is `cb-{name}`.
async fn callback(
    store: &Store,
    db: &TestDb,
    (e, person): &(String, String),
    name: &str,
    start: DateTime<Utc>,
) -> String {
    let hold_id = format!("hold-{name}");
    let new = NewConsentRequest {
        enterprise_id: e.clone(),
        person_id: person.clone(),
        number: E164::parse(ANN, None).unwrap(),
        scope: Scope::Campaign("winter-offer".into()),
        options: vec![SlotOption {
            start: at(600),
            end: at(630),
        }],
        hold_id: Some(hold_id.clone()),
        expires_at: at(1) + TimeDelta::days(1),
    };
    let hold = NewHold {
        id: hold_id.clone(),
        campaign: "winter-offer".into(),
        caller: "sip:4001@10.0.0.5".into(),
        pbx_target: "sip:4001@10.0.0.5:5060".into(),
    };
    store.open_hold(new, &hold, at(1)).await.unwrap();
    let instant = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let id = format!("cb-{name}");
    db.execute(&format!(
        "INSERT INTO scheduled_callbacks (id, request_id, hold_id, enterprise_id, campaign, \
           callee, caller, pbx_target, slot_start, slot_end, status, created_at) \
         SELECT '{id}', request_id, id, enterprise_id, campaign, callee, caller, pbx_target, \
           '{}', '{}', 'pending', '{}' FROM holds WHERE id = '{hold_id}'",
        instant(start),
        instant(start + TimeDelta::minutes(30)),
        instant(at(1)),
    ))
    .await;
    id
}

fn ids(claimed: &[slotgate::store::holds::ScheduledCallback]) -> Vec<&str> {
    claimed.iter().map(|c| c.id.as_str()).collect()
}

async fn status(store: &Store, id: &str) -> String {
    store.scheduled_callback(id).await.unwrap().unwrap().status
}

fn is_not_claimed(result: Result<impl std::fmt::Debug, ConsentStoreError>) -> bool {
    matches!(result, Err(ConsentStoreError::NotClaimed { .. }))
}

async fn only_due_callbacks_are_claimed(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let late = callback(&store, &db, &who, "late", at(20)).await;
    let early = callback(&store, &db, &who, "early", at(5)).await;
    let now = callback(&store, &db, &who, "now", at(10)).await;

    assert!(store
        .claim_due_callbacks("node-a", at(4), LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = store
        .claim_due_callbacks("node-a", at(10), TimeDelta::minutes(30), 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&claimed),
        [early.as_str(), now.as_str()],
        "earliest first"
    );
    assert!(claimed.iter().all(|c| c.status == "claimed"));
    assert_eq!(status(&store, &late).await, "pending");

    // Once its slot starts the last one is due too; the others are still
    // leased.
    let store2 = db.store().await;
    let claimed = store2
        .claim_due_callbacks("node-b", at(20), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [late.as_str()]);
}

async fn a_leased_callback_is_claimed_again_only_once_its_lease_expires(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "one", at(5)).await;
    let t0 = at(10);
    assert_eq!(
        ids(&store
            .claim_due_callbacks("node-a", t0, LEASE, 10)
            .await
            .unwrap()),
        [id.as_str()]
    );
    for (node, t) in [
        ("node-a", t0),
        ("node-b", t0 + LEASE - TimeDelta::seconds(1)),
    ] {
        assert!(
            store
                .claim_due_callbacks(node, t, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{node} claimed a leased callback"
        );
    }
    // node-a died before dialling: nothing was placed, so node-b takes it.
    assert_eq!(
        ids(&store
            .claim_due_callbacks("node-b", t0 + LEASE, LEASE, 10)
            .await
            .unwrap()),
        [id.as_str()]
    );
    assert!(is_not_claimed(
        store.begin_attempt(&id, "node-a", t0 + LEASE).await
    ));
    store
        .begin_attempt(&id, "node-b", t0 + LEASE)
        .await
        .unwrap();
}

async fn concurrent_claimers_take_every_callback_exactly_once(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let mut all = HashSet::new();
    for i in 0..40 {
        all.insert(callback(&store, &db, &who, &format!("c{i:02}"), at(i % 7)).await);
    }
    let mut tasks = Vec::new();
    for node in ["node-a", "node-b"] {
        let store = db.store().await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due_callbacks(node, at(10), LEASE, 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                for c in batch {
                    assert_eq!(c.status, "claimed");
                    mine.push(c.id);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for id in task.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(total, all.len());
    assert_eq!(seen, all);
}

async fn an_attempt_needs_a_live_claim(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "one", at(5)).await;
    let t0 = at(10);
    assert!(
        is_not_claimed(store.begin_attempt(&id, "node-a", t0).await),
        "pending"
    );
    assert!(matches!(
        store.begin_attempt("cb-missing", "node-a", t0).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
    store
        .claim_due_callbacks("node-a", t0, LEASE, 10)
        .await
        .unwrap();
    assert!(
        is_not_claimed(store.begin_attempt(&id, "node-b", t0).await),
        "other node"
    );
    assert!(
        is_not_claimed(store.begin_attempt(&id, "node-a", t0 + LEASE).await),
        "lease expired"
    );
    let attempt = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    assert_eq!(
        (
            attempt.callback_id.as_str(),
            attempt.node.as_str(),
            attempt.state.as_str()
        ),
        (id.as_str(), "node-a", "dialling")
    );
    assert_eq!(store.callback_attempts(&id).await.unwrap(), vec![attempt]);
}

async fn a_second_attempt_is_refused_while_one_is_dialling(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "one", at(5)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 10)
        .await
        .unwrap();
    let first = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    assert!(is_not_claimed(
        store
            .begin_attempt(&id, "node-a", t0 + TimeDelta::seconds(1))
            .await
    ));
    assert_eq!(store.callback_attempts(&id).await.unwrap(), vec![first]);
}

async fn finishing_an_attempt_records_its_outcome_and_settles_the_callback(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "one", at(5)).await;
    let t0 = at(10);

    // Busy: the attempt says so, and the callback may be claimed again.
    store
        .claim_due_callbacks("node-a", t0, LEASE, 10)
        .await
        .unwrap();
    let busy = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    let ended = store
        .finish_attempt(&busy.id, AttemptOutcome::Busy, t0 + TimeDelta::seconds(5))
        .await
        .unwrap();
    assert_eq!(ended.state, "busy");
    assert_eq!(ended.finished_at, Some(t0 + TimeDelta::seconds(5)));
    assert_eq!(status(&store, &id).await, "pending");
    assert!(is_not_claimed(
        store
            .finish_attempt(
                &busy.id,
                AttemptOutcome::Answered,
                t0 + TimeDelta::seconds(6)
            )
            .await
    ));

    // Answered: done, never claimed again.
    let t1 = at(20);
    let claimed = store
        .claim_due_callbacks("node-b", t1, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [id.as_str()]);
    let answered = store.begin_attempt(&id, "node-b", t1).await.unwrap();
    store
        .finish_attempt(
            &answered.id,
            AttemptOutcome::Answered,
            t1 + TimeDelta::seconds(9),
        )
        .await
        .unwrap();
    assert_eq!(status(&store, &id).await, "done");
    let states: Vec<String> = store
        .callback_attempts(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(states, ["busy", "answered"]);
    assert!(store
        .claim_due_callbacks("node-a", at(100), LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .finish_attempt("missing", AttemptOutcome::Failed, t1)
            .await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn a_node_killed_mid_dial_leaves_the_callback_unknown(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "one", at(5)).await;
    let other = callback(&store, &db, &who, "two", at(6)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 1)
        .await
        .unwrap();
    let attempt = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    // node-a dies here, its INVITE perhaps sent. Until its lease runs out
    // nothing changes.
    let node_b = db.store().await;
    let claimed = node_b
        .claim_due_callbacks("node-b", t0, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [other.as_str()]);
    assert_eq!(status(&store, &id).await, "claimed");

    let later = t0 + LEASE;
    assert!(node_b
        .claim_due_callbacks("node-b", later, LEASE, 10)
        .await
        .unwrap()
        .iter()
        .all(|c| c.id != id));
    let attempts = node_b.callback_attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].id, attempt.id);
    assert_eq!(attempts[0].state, "outcome-unknown");
    assert_eq!(attempts[0].finished_at, Some(later));
    assert_eq!(status(&node_b, &id).await, "unknown");

    // Never claimable again, and the dead node's late report changes
    // nothing.
    assert!(node_b
        .claim_due_callbacks("node-b", at(1000), LEASE, 10)
        .await
        .unwrap()
        .iter()
        .all(|c| c.id != id));
    assert!(is_not_claimed(
        store
            .finish_attempt(&attempt.id, AttemptOutcome::Answered, later)
            .await
    ));
    assert_eq!(status(&store, &id).await, "unknown");
    assert!(is_not_claimed(
        store.begin_attempt(&id, "node-a", later).await
    ));
}

async fn a_retried_callback_waits_for_its_retry_time(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "busy", at(5)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 5)
        .await
        .unwrap();
    let attempt = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    let retry = t0 + TimeDelta::minutes(10);
    store
        .settle_attempt(
            &attempt.id,
            AttemptOutcome::Busy,
            AfterAttempt::DialAt(retry),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(status(&store, &id).await, "pending");
    let early = store
        .claim_due_callbacks("node-a", retry - TimeDelta::seconds(1), LEASE, 5)
        .await
        .unwrap();
    assert!(early.is_empty(), "not before its retry time");
    let due = store
        .claim_due_callbacks("node-b", retry, LEASE, 5)
        .await
        .unwrap();
    assert_eq!(ids(&due), [id.as_str()]);
    // The strategy may also end it: no retry time settles it as done.
    let second = store.begin_attempt(&id, "node-b", retry).await.unwrap();
    store
        .settle_attempt(
            &second.id,
            AttemptOutcome::NoAnswer,
            AfterAttempt::Done,
            retry,
        )
        .await
        .unwrap();
    assert_eq!(status(&store, &id).await, "done");
}

async fn a_released_callback_is_deferred_or_dropped(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let later = callback(&store, &db, &who, "later", at(5)).await;
    let dropped = callback(&store, &db, &who, "dropped", at(6)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 5)
        .await
        .unwrap();
    // Only the holder may give a claim back.
    assert!(is_not_claimed(
        store
            .release_callback(&later, "node-b", None, Some("x"))
            .await
    ));
    let open = t0 + TimeDelta::hours(12);
    store
        .release_callback(&later, "node-a", Some(open), None)
        .await
        .unwrap();
    store
        .release_callback(&dropped, "node-a", None, Some("do_not_call_global"))
        .await
        .unwrap();
    assert_eq!(status(&store, &later).await, "pending");
    assert_eq!(status(&store, &dropped).await, "dropped");
    assert!(store
        .claim_due_callbacks("node-a", open - TimeDelta::minutes(1), LEASE, 5)
        .await
        .unwrap()
        .is_empty());
    let claimed = store
        .claim_due_callbacks("node-a", open, LEASE, 5)
        .await
        .unwrap();
    assert_eq!(
        ids(&claimed),
        [later.as_str()],
        "a dropped callback stays dropped"
    );
    // A callback being dialled cannot be given back.
    store.begin_attempt(&later, "node-a", open).await.unwrap();
    assert!(is_not_claimed(
        store
            .release_callback(&later, "node-a", None, Some("x"))
            .await
    ));
}

async fn renewing_keeps_a_claim_but_never_revives_a_lapsed_one(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let kept = callback(&store, &db, &who, "kept", at(5)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 1)
        .await
        .unwrap();
    let renewed = store
        .renew_leases(
            "node-a",
            std::slice::from_ref(&kept),
            t0 + TimeDelta::seconds(50),
            LEASE,
        )
        .await
        .unwrap();
    assert_eq!(renewed, 1);
    // Past the first lease, within the renewed one: still node-a's.
    let t1 = t0 + TimeDelta::seconds(70);
    assert!(store
        .claim_due_callbacks("node-b", t1, LEASE, 5)
        .await
        .unwrap()
        .is_empty());
    store.begin_attempt(&kept, "node-a", t1).await.unwrap();

    let lapsed = callback(&store, &db, &who, "lapsed", at(6)).await;
    store
        .claim_due_callbacks("node-a", t1, LEASE, 1)
        .await
        .unwrap();
    let too_late = t1 + LEASE + TimeDelta::seconds(1);
    assert_eq!(
        store
            .renew_leases("node-a", std::slice::from_ref(&lapsed), too_late, LEASE)
            .await
            .unwrap(),
        0,
        "another node may already hold it"
    );
    // Not renewed by someone else's name either.
    assert_eq!(
        store
            .renew_leases("node-b", std::slice::from_ref(&kept), t1, LEASE)
            .await
            .unwrap(),
        0
    );
}

async fn an_operator_resolves_an_unknown_callback(db: TestDb) {
    let store = db.store().await;
    let who = setup(&store).await;
    let id = callback(&store, &db, &who, "lost", at(5)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 1)
        .await
        .unwrap();
    store.begin_attempt(&id, "node-a", t0).await.unwrap();
    let later = t0 + LEASE;
    store
        .claim_due_callbacks("node-b", later, LEASE, 5)
        .await
        .unwrap();
    let unknown = store.unknown_callbacks(10).await.unwrap();
    assert_eq!(ids(&unknown), [id.as_str()]);
    // Not resolvable unless unknown.
    let other = callback(&store, &db, &who, "fine", at(6)).await;
    assert!(is_not_claimed(
        store
            .resolve_unknown_callback(&other, None, "checked")
            .await
    ));
    // The trunk's records say the person was never reached: dial again.
    let redial = later + TimeDelta::minutes(5);
    store
        .resolve_unknown_callback(&id, Some(redial), "trunk CDRs show no call")
        .await
        .unwrap();
    assert_eq!(status(&store, &id).await, "pending");
    assert!(store.unknown_callbacks(10).await.unwrap().is_empty());
    let claimed = store
        .claim_due_callbacks("node-b", redial, LEASE, 5)
        .await
        .unwrap();
    assert!(ids(&claimed).contains(&id.as_str()));
}

async fn every_outcome_is_queued_for_the_crm(db: TestDb) {
    let store = db.store().await;
    let (_, person) = setup(&store).await;
    let e = store
        .create_enterprise(
            &NewEnterprise {
                name: "Hooked SAS".into(),
                display_name: "Hooked".into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: Some("https://crm.example.com/slotgate".into()),
                crm_webhook_secret: Some("0123456789abcdef0123456789abcdef".into()),
                consent_policy: ConsentPolicy::Days(30),
                status: TrustStatus::Trusted,
            },
            at(0),
        )
        .await
        .unwrap()
        .id;
    store
        .set_subscription(&person, &e, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
    let id = callback(&store, &db, &(e.clone(), person), "hooked", at(5)).await;
    let t0 = at(10);
    store
        .claim_due_callbacks("node-a", t0, LEASE, 1)
        .await
        .unwrap();
    let attempt = store.begin_attempt(&id, "node-a", t0).await.unwrap();
    store
        .settle_attempt(&attempt.id, AttemptOutcome::Machine, AfterAttempt::Done, t0)
        .await
        .unwrap();
    let events = store
        .webhook_events(&slotgate::crm::OutboxFilter {
            state: None,
            enterprise_id: Some(e.clone()),
            limit: 100,
        })
        .await
        .unwrap();
    let call: Vec<_> = events
        .iter()
        .filter(|ev| ev.event_type.starts_with("call."))
        .collect();
    assert_eq!(call.len(), 1, "{events:?}");
    assert_eq!(call[0].event_type, "call.machine");
    assert!(call[0].payload.contains(&attempt.id));
    assert!(call[0].payload.contains(&id));
}

/// A second `slotgate run` on the same SQLite file must refuse to start:
/// two nodes there would claim the same callbacks.
#[tokio::test]
async fn a_sqlite_database_takes_a_single_node_lock() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slotgate.db");
    let url = format!("sqlite://{}", file.display());
    let first = Store::connect(&url).await.unwrap();
    let second = Store::connect(&url).await.unwrap();

    let held = first.lock_single_node().unwrap();
    let err = second.lock_single_node().unwrap_err();
    let lock_file = format!("{}.lock", file.display());
    assert!(
        matches!(&err, slotgate::store::StoreError::Locked { path, .. } if *path == lock_file),
        "{err}"
    );
    assert!(err.to_string().contains(&lock_file), "{err}");
    assert!(
        err.to_string().contains("another slotgate process"),
        "{err}"
    );

    // Released with its guard (and by the kernel when a process dies).
    drop(held);
    let _again = second.lock_single_node().unwrap();

    // Private in-memory databases need no lock.
    let memory = Store::connect("sqlite::memory:").await.unwrap();
    let _a = memory.lock_single_node().unwrap();
    let _b = memory.lock_single_node().unwrap();
}

/// PostgreSQL is how several nodes share a database: no lock.
#[tokio::test]
async fn postgres_takes_no_single_node_lock() {
    let schema = common::engines::PgSchema::create();
    let a = Store::connect(&schema.url).await.unwrap();
    let b = Store::connect(&schema.url).await.unwrap();
    let _a = a.lock_single_node().unwrap();
    let _b = b.lock_single_node().unwrap();
}
