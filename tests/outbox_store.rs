//! The CRM webhook outbox in the store, with the same bodies run on both
//! engines: every consent change queues its event in the same transaction,
//! and the deliverer's operations (claim in order per person, delivered,
//! failed, dead, re-drive) behave alike on SQLite and PostgreSQL.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use slotgate::consent::{
    Channel, ConsentPolicy, ConsentStatus, Evidence, Identifier, NewConsent, NewConsentRequest,
    NewEnterprise, RequestEvent, Scope, SlotOption, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::crm::{DeliveryState, FailedAttempt, OutboxEvent, OutboxFilter};
use slotgate::store::{ConsentStoreError, Store};
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    every_consent_change_queues_one_event_in_order,
    enterprises_without_a_webhook_url_queue_nothing,
    a_failed_change_leaves_no_event_and_a_failed_event_no_change,
    claims_take_the_oldest_pending_event_of_each_person,
    a_claim_is_a_lease,
    failures_back_off_then_die_and_dead_events_unblock_the_next,
    delivered_events_are_final,
    dead_events_are_listed_and_can_be_redriven,
    concurrent_changes_of_one_person_queue_each_event_once,
);

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

const ANN: &str = "+33612345678";
const BOB: &str = "+33698765432";
const MAX: u32 = 3;

fn number(text: &str) -> E164 {
    E164::parse(text, None).unwrap()
}

async fn enterprise(store: &Store, url: Option<&str>) -> String {
    store
        .create_enterprise(
            &NewEnterprise {
                name: "ACME Energy SAS".into(),
                display_name: "ACME Energy".into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: url.map(str::to_string),
                crm_webhook_secret: Some("whsec_test_0123456789".into()),
                consent_policy: ConsentPolicy::Days(30),
                status: TrustStatus::Trusted,
            },
            at(0),
        )
        .await
        .unwrap()
        .id
}

async fn subscriber(store: &Store, enterprise_id: &str, phone: &str) -> String {
    let person = store
        .create_person(&[Identifier::Phone(number(phone))], at(0))
        .await
        .unwrap();
    store
        .set_subscription(&person.id, enterprise_id, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
    person.id
}

fn granted(enterprise_id: &str, person_id: &str, phone: &str, expires: Option<i64>) -> NewConsent {
    NewConsent {
        person_id: person_id.into(),
        enterprise_id: enterprise_id.into(),
        number: number(phone),
        scope: Scope::Purpose("contract renewal".into()),
        status: ConsentStatus::Granted,
        window: None,
        expires_at: expires.map(at),
        channel: Channel::Api,
        evidence: Evidence::default(),
    }
}

async fn all_events(store: &Store) -> Vec<OutboxEvent> {
    store
        .webhook_events(&OutboxFilter {
            limit: 1000,
            ..OutboxFilter::default()
        })
        .await
        .unwrap()
}

fn types(events: &[OutboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn failure(status: i32) -> FailedAttempt {
    FailedAttempt {
        error: format!("the CRM answered {status}"),
        status: Some(status),
    }
}

/// One enterprise with a URL, Ann with three queued consent events, Bob
/// with one.
async fn queued(store: &Store) -> (String, String, String) {
    let e = enterprise(store, Some("https://crm.example.com/hooks")).await;
    let ann = subscriber(store, &e, ANN).await;
    let bob = subscriber(store, &e, BOB).await;
    for minute in 1..=3 {
        store
            .record_consent(&granted(&e, &ann, ANN, None), at(minute))
            .await
            .unwrap();
    }
    store
        .record_consent(&granted(&e, &bob, BOB, None), at(4))
        .await
        .unwrap();
    (e, ann, bob)
}

async fn every_consent_change_queues_one_event_in_order(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, Some("https://crm.example.com/hooks")).await;
    let ann = subscriber(&store, &e, ANN).await;

    let consent = store
        .record_consent(&granted(&e, &ann, ANN, None), at(1))
        .await
        .unwrap();
    let mut declined = granted(&e, &ann, ANN, None);
    declined.status = ConsentStatus::Declined;
    store.record_consent(&declined, at(2)).await.unwrap();
    let request = store
        .create_consent_request(
            NewConsentRequest {
                enterprise_id: e.clone(),
                person_id: ann.clone(),
                number: number(ANN),
                scope: Scope::Campaign("winter".into()),
                options: vec![SlotOption {
                    start: at(60),
                    end: at(90),
                }],
                hold_id: None,
                expires_at: at(30),
            },
            at(3),
        )
        .await
        .unwrap();
    let sent = RequestEvent::Sent {
        provider_message_id: "rbm-1".into(),
    };
    store
        .apply_consent_request_event(&request.id, sent.clone(), at(4))
        .await
        .unwrap();
    // A repeated event writes nothing, so it queues nothing either.
    store
        .apply_consent_request_event(&request.id, sent, at(5))
        .await
        .unwrap();
    store.revoke_consent(&consent.id, at(6)).await.unwrap();
    store.revoke_consent(&consent.id, at(7)).await.unwrap();
    let expiring = store
        .record_consent(&granted(&e, &ann, ANN, Some(20)), at(8))
        .await
        .unwrap();
    assert_eq!(store.expire_consents(at(21)).await.unwrap(), 1);
    assert_eq!(store.expire_consents(at(22)).await.unwrap(), 0);

    let events = all_events(&store).await;
    assert_eq!(
        types(&events),
        [
            "consent.granted",
            "consent.declined",
            "consent_request.created",
            "consent_request.sent",
            "consent.revoked",
            "consent.granted",
            "consent.expired",
        ]
    );
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    for event in &events {
        assert_eq!(event.state, DeliveryState::Pending);
        assert_eq!(event.attempts, 0);
        assert_eq!(event.enterprise_id, e);
        assert_eq!(event.person_id, ann);
        let body: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["type"], event.event_type.as_str());
        assert_eq!(body["enterprise_id"], e.as_str());
        assert_eq!(body["person_id"], ann.as_str());
    }
    let revoked: Value = serde_json::from_str(&events[4].payload).unwrap();
    assert_eq!(revoked["data"]["id"], consent.id.as_str());
    assert_eq!(revoked["data"]["status"], "revoked");
    assert_eq!(revoked["occurred_at"], "2025-06-02T08:06:00Z");
    let sent: Value = serde_json::from_str(&events[3].payload).unwrap();
    assert_eq!(sent["data"]["state"], "sent");
    assert_eq!(sent["data"]["version"], 2);
    let expired: Value = serde_json::from_str(&events[6].payload).unwrap();
    assert_eq!(expired["data"]["id"], expiring.id.as_str());
    assert_eq!(expired["data"]["status"], "expired");
}

async fn enterprises_without_a_webhook_url_queue_nothing(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, None).await;
    let ann = subscriber(&store, &e, ANN).await;
    let consent = store
        .record_consent(&granted(&e, &ann, ANN, None), at(1))
        .await
        .unwrap();
    store.revoke_consent(&consent.id, at(2)).await.unwrap();
    assert!(all_events(&store).await.is_empty());
}

async fn a_failed_change_leaves_no_event_and_a_failed_event_no_change(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, Some("https://crm.example.com/hooks")).await;
    let ann = subscriber(&store, &e, ANN).await;
    let consent = store
        .record_consent(&granted(&e, &ann, ANN, None), at(1))
        .await
        .unwrap();
    assert_eq!(all_events(&store).await.len(), 1);

    // The revocation fails on its do-not-call insert: no event either.
    db.execute("ALTER TABLE do_not_call RENAME TO do_not_call_away")
        .await;
    assert!(store.revoke_consent(&consent.id, at(2)).await.is_err());
    db.execute("ALTER TABLE do_not_call_away RENAME TO do_not_call")
        .await;
    assert_eq!(types(&all_events(&store).await), ["consent.granted"]);

    // The outbox cannot be written: the consent change does not land.
    db.execute("ALTER TABLE webhook_outbox RENAME TO webhook_outbox_away")
        .await;
    assert!(store.revoke_consent(&consent.id, at(3)).await.is_err());
    assert!(store
        .record_consent(&granted(&e, &ann, ANN, None), at(3))
        .await
        .is_err());
    let mut expiring = granted(&e, &ann, ANN, None);
    expiring.expires_at = Some(at(0));
    db.execute("ALTER TABLE webhook_outbox_away RENAME TO webhook_outbox")
        .await;
    let expiring = store.record_consent(&expiring, at(4)).await.unwrap();
    db.execute("ALTER TABLE webhook_outbox RENAME TO webhook_outbox_away")
        .await;
    assert!(store.expire_consents(at(5)).await.is_err());
    db.execute("ALTER TABLE webhook_outbox_away RENAME TO webhook_outbox")
        .await;
    let unchanged = store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, ConsentStatus::Granted);
    assert_eq!(
        store.consent(&expiring.id).await.unwrap().unwrap().status,
        ConsentStatus::Granted
    );
    assert_eq!(
        store
            .consents_for_number(&e, &number(ANN))
            .await
            .unwrap()
            .len(),
        2,
        "the consent whose event failed was not recorded"
    );
    assert_eq!(
        types(&all_events(&store).await),
        ["consent.granted", "consent.granted"]
    );

    // A request update that loses a race writes neither state nor event.
    let request = store
        .create_consent_request(
            NewConsentRequest {
                enterprise_id: e.clone(),
                person_id: ann.clone(),
                number: number(ANN),
                scope: Scope::Campaign("winter".into()),
                options: vec![],
                hold_id: None,
                expires_at: at(30),
            },
            at(6),
        )
        .await
        .unwrap();
    let mut stale = request.clone();
    store
        .apply_consent_request_event(
            &request.id,
            RequestEvent::Sent {
                provider_message_id: "a".into(),
            },
            at(7),
        )
        .await
        .unwrap();
    stale
        .apply(
            RequestEvent::Sent {
                provider_message_id: "b".into(),
            },
            at(7),
        )
        .unwrap();
    assert!(matches!(
        store.save_consent_request(&stale).await,
        Err(ConsentStoreError::Conflict { .. })
    ));
    assert_eq!(
        types(&all_events(&store).await),
        [
            "consent.granted",
            "consent.granted",
            "consent_request.created",
            "consent_request.sent"
        ]
    );
}

async fn claims_take_the_oldest_pending_event_of_each_person(db: TestDb) {
    let store = db.store().await;
    let (_, ann, bob) = queued(&store).await;
    let now = Utc::now();
    let lease = now + TimeDelta::seconds(30);

    let first = store.claim_webhook_events(now, lease, 10).await.unwrap();
    let people: Vec<&str> = first.iter().map(|e| e.person_id.as_str()).collect();
    assert_eq!(people, [ann.as_str(), bob.as_str()], "one head per person");
    let all = all_events(&store).await;
    assert_eq!(first[0].id, all[0].id, "Ann's oldest event first");

    // Ann's head delivered: her second event is next, Bob has nothing new.
    assert!(store
        .mark_webhook_delivered(&first[0].id, 200, now)
        .await
        .unwrap());
    let second = store.claim_webhook_events(now, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, all[1].id);
    assert!(second[0].next_attempt_at <= lease && second[0].next_attempt_at > now);
}

async fn a_claim_is_a_lease(db: TestDb) {
    let store = db.store().await;
    let (_, ann, _) = queued(&store).await;
    let now = Utc::now();
    let claimed = store
        .claim_webhook_events(now, now + TimeDelta::seconds(30), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].person_id, ann);
    // Another node (another pool) sees Ann's head as taken, and her later
    // events as blocked behind it; only Bob's is free.
    let other = db.store().await;
    let taken = other
        .claim_webhook_events(now, now + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_ne!(taken[0].person_id, ann);
    // The deliverer died: once the lease is over the event is due again.
    let later = now + TimeDelta::seconds(31);
    let again = other
        .claim_webhook_events(later, later + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        [claimed[0].id.as_str(), taken[0].id.as_str()]
    );
}

async fn failures_back_off_then_die_and_dead_events_unblock_the_next(db: TestDb) {
    let store = db.store().await;
    let (_, ann, _) = queued(&store).await;
    let t0 = Utc::now();
    let head = store
        .claim_webhook_events(t0, t0, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.person_id == ann)
        .unwrap();
    for attempt in 1..=MAX {
        let retry_at = t0 + TimeDelta::seconds(i64::from(attempt) * 10);
        let state = store
            .mark_webhook_failed(&head.id, &failure(500), retry_at, MAX)
            .await
            .unwrap();
        let event = store.webhook_event(&head.id).await.unwrap().unwrap();
        assert_eq!(event.attempts, attempt as i32);
        assert_eq!(event.last_status, Some(500));
        assert_eq!(event.last_error.as_deref(), Some("the CRM answered 500"));
        if attempt < MAX {
            assert_eq!(state, Some(DeliveryState::Pending));
            // Not due before retry_at, and still holding Ann's queue.
            let claimed = store
                .claim_webhook_events(retry_at - TimeDelta::seconds(1), t0, 10)
                .await
                .unwrap();
            assert!(claimed.iter().all(|e| e.person_id != ann));
            let claimed = store.claim_webhook_events(retry_at, t0, 10).await.unwrap();
            assert!(claimed.iter().any(|e| e.id == head.id));
        } else {
            assert_eq!(state, Some(DeliveryState::Dead));
        }
    }
    // Failing a dead event changes nothing.
    assert_eq!(
        store
            .mark_webhook_failed(&head.id, &failure(500), t0, MAX)
            .await
            .unwrap(),
        None
    );
    // The dead head no longer holds Ann's queue: her next event goes.
    let far = t0 + TimeDelta::hours(1);
    let next = store.claim_webhook_events(far, far, 10).await.unwrap();
    let all = all_events(&store).await;
    assert!(next.iter().any(|e| e.id == all[1].id));
}

async fn delivered_events_are_final(db: TestDb) {
    let store = db.store().await;
    queued(&store).await;
    let now = Utc::now();
    let head = store
        .claim_webhook_events(now, now, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(store
        .mark_webhook_delivered(&head.id, 204, now)
        .await
        .unwrap());
    let event = store.webhook_event(&head.id).await.unwrap().unwrap();
    assert_eq!(event.state, DeliveryState::Delivered);
    assert_eq!(event.attempts, 1);
    assert_eq!(event.last_status, Some(204));
    assert!(event.delivered_at.is_some());
    // Delivered twice (a lease ran out mid-post): recorded once.
    assert!(!store
        .mark_webhook_delivered(&head.id, 200, now)
        .await
        .unwrap());
    assert_eq!(
        store
            .mark_webhook_failed(&head.id, &failure(500), now, MAX)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.redrive_webhook_event(&head.id, now).await,
        Err(ConsentStoreError::Invalid { field: "state", .. })
    ));
}

async fn dead_events_are_listed_and_can_be_redriven(db: TestDb) {
    let store = db.store().await;
    let (e, ann, _) = queued(&store).await;
    let now = Utc::now();
    let head = store
        .claim_webhook_events(now, now, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(head.person_id, ann);
    store
        .mark_webhook_failed(&head.id, &failure(410), now, 1)
        .await
        .unwrap();
    let dead = store
        .webhook_events(&OutboxFilter {
            state: Some(DeliveryState::Dead),
            enterprise_id: Some(e.clone()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, head.id);
    let other_enterprise = store
        .webhook_events(&OutboxFilter {
            state: Some(DeliveryState::Dead),
            enterprise_id: Some("someone-else".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(other_enterprise.is_empty());
    let pending = store
        .webhook_events(&OutboxFilter {
            state: Some(DeliveryState::Pending),
            enterprise_id: None,
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 2, "the limit applies");

    let redriven = store.redrive_webhook_event(&head.id, now).await.unwrap();
    assert_eq!(redriven.state, DeliveryState::Pending);
    assert_eq!(redriven.attempts, 0);
    // Pending again and older than Ann's other events: it goes first.
    let claimed = store.claim_webhook_events(now, now, 10).await.unwrap();
    assert!(claimed.iter().any(|e| e.id == head.id));
    assert!(matches!(
        store.redrive_webhook_event("no-such-event", now).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn concurrent_changes_of_one_person_queue_each_event_once(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, Some("https://crm.example.com/hooks")).await;
    let ann = subscriber(&store, &e, ANN).await;
    let mut writers = Vec::new();
    for minute in 0..8 {
        let (store, e, ann) = (store.clone(), e.clone(), ann.clone());
        writers.push(tokio::spawn(async move {
            store
                .record_consent(&granted(&e, &ann, ANN, Some(30)), at(minute))
                .await
                .unwrap()
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Two nodes expire at once: each consent expires, and is reported, once.
    let other = db.store().await;
    let (a, b) = tokio::join!(store.expire_consents(at(31)), other.expire_consents(at(31)));
    assert_eq!(a.unwrap() + b.unwrap(), 8);
    let events = all_events(&store).await;
    let expired = events
        .iter()
        .filter(|e| e.event_type == "consent.expired")
        .count();
    assert_eq!(expired, 8);
    assert_eq!(events.len(), 16);
}
