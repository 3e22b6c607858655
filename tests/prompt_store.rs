//! The consent exchange in the store — what a prompt offered, who may send
//! it (leases), what came back (the inbound ledger and its effects) and the
//! contact history built from it — with the same bodies run on both
//! engines.
//!
//! Like `tests/consent_store.rs`, every test expands into a `sqlite` case
//! and a `postgres` case; PostgreSQL is required.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use slotgate::consent::{
    new_id, Answer, Channel, Choice, Consent, ConsentPolicy, ConsentRequest, ConsentStatus,
    Evidence, Identifier, NewConsent, NewConsentRequest, NewEnterprise, OfferedChoice,
    RequestEvent, RequestState, Scope, SlotOption, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::crm::{OutboxEvent, OutboxFilter};
use slotgate::store::holds::NewHold;
use slotgate::store::prompts::{InboundEffect, InboundOutcome, InboundRecord, SentPrompt};
use slotgate::store::{ConsentStoreError, Store};
use sqlx::Connection;
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    offered_choices_round_trip_in_order_and_are_replaced,
    claims_lease_the_oldest_unsent_requests,
    a_sent_prompt_is_saved_with_its_message_id_and_event,
    the_latest_request_to_a_number_is_the_newest_sent_one,
    an_answer_commits_with_its_consent_and_acts_once,
    a_stale_answer_writes_nothing_and_can_be_retried,
    a_revocation_revokes_the_enterprise_consents_and_bars_the_number,
    only_the_first_unclear_reply_of_a_request_gets_a_question,
    ignored_messages_are_kept_in_the_ledger_once,
    contact_history_lists_sent_prompts_with_what_was_picked,
    requests_due_to_expire_are_open_and_past_their_deadline,
    concurrent_dispatchers_claim_disjoint_requests,
    a_message_delivered_concurrently_acts_once,
    racing_replies_to_one_request_answer_it_once,
    a_later_answer_to_a_held_request_schedules_its_callback_and_wakes_the_hold,
    a_now_answer_schedules_only_once_the_hold_has_ended,
    a_hold_ended_after_an_unacted_now_schedules_the_callback,
    a_hold_is_refused_with_nothing_stored_when_the_person_may_not_be_asked,
);

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn secs(seconds: i64) -> TimeDelta {
    TimeDelta::seconds(seconds)
}

const ANN: &str = "+33612345678";
const BOB: &str = "+33698765432";
const LEASE: i64 = 30;

fn number(text: &str) -> E164 {
    E164::parse(text, None).unwrap()
}

/// A trusted enterprise; with a webhook URL, so its events are queued.
async fn enterprise(store: &Store, name: &str) -> String {
    store
        .create_enterprise(
            &NewEnterprise {
                name: format!("{name} SAS"),
                display_name: name.into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: Some("https://crm.example.com/hooks".into()),
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

async fn subscribe(store: &Store, person_id: &str, enterprise_id: &str) {
    store
        .set_subscription(person_id, enterprise_id, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
}

async fn person(store: &Store, phone: &str) -> String {
    store
        .create_person(&[Identifier::Phone(number(phone))], at(0))
        .await
        .unwrap()
        .id
}

/// ACME and Ann, subscribed to it.
async fn acme_and_ann(store: &Store) -> (String, String) {
    let e = enterprise(store, "ACME Energy").await;
    let ann = person(store, ANN).await;
    subscribe(store, &ann, &e).await;
    (e, ann)
}

/// An evening slot (18:00–18:30 UTC on the test day).
fn evening() -> SlotOption {
    SlotOption {
        start: at(600),
        end: at(630),
    }
}

fn new_request(e: &str, person_id: &str, phone: &str, expires: DateTime<Utc>) -> NewConsentRequest {
    NewConsentRequest {
        enterprise_id: e.into(),
        person_id: person_id.into(),
        number: number(phone),
        scope: Scope::Campaign("winter-offer".into()),
        options: vec![evening()],
        hold_id: None,
        expires_at: expires,
    }
}

/// A request created at `created`, expiring a day later.
async fn request(
    store: &Store,
    e: &str,
    person_id: &str,
    created: DateTime<Utc>,
) -> ConsentRequest {
    store
        .create_consent_request(
            new_request(e, person_id, ANN, created + TimeDelta::days(1)),
            created,
        )
        .await
        .unwrap()
}

async fn send(store: &Store, id: &str, message: &str, now: DateTime<Utc>) -> ConsentRequest {
    store
        .apply_consent_request_event(
            id,
            RequestEvent::Sent {
                provider_message_id: message.into(),
            },
            now,
        )
        .await
        .unwrap()
        .0
}

async fn read(store: &Store, id: &str) -> ConsentRequest {
    store.consent_request(id).await.unwrap().unwrap()
}

/// `request` as read, with `answer` applied at `now` (not saved).
fn answered(request: &ConsentRequest, answer: Answer, now: DateTime<Utc>) -> ConsentRequest {
    let mut request = request.clone();
    request.apply(RequestEvent::Answered(answer), now).unwrap();
    request
}

fn ids(requests: &[ConsentRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.id.as_str()).collect()
}

fn every_kind() -> Vec<OfferedChoice> {
    let offered = |label: &str, postback: &str, choice| OfferedChoice {
        label: label.into(),
        postback: postback.into(),
        choice,
    };
    vec![
        offered("Call me now", "now", Choice::Now),
        offered(
            "In 15 min",
            "after-15",
            Choice::After(TimeDelta::minutes(15)),
        ),
        offered("Today 18:00", "slot-1", Choice::Slot(evening())),
        offered(
            "Tomorrow 9-12",
            "range-1",
            Choice::Range(SlotOption {
                start: at(25 * 60),
                end: at(28 * 60),
            }),
        ),
        offered("Don't call", "decline", Choice::Decline),
    ]
}

fn inbound(message_id: &str, request_id: Option<&str>, received: DateTime<Utc>) -> InboundRecord {
    InboundRecord {
        provider: "rbm".into(),
        provider_message_id: message_id.into(),
        request_id: request_id.map(str::to_string),
        from: Some(number(ANN)),
        payload_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        signature_valid: true,
        sent_at: Some(received - secs(2)),
        received_at: received,
    }
}

/// The consent an answer "now" gives, with the reply as its evidence.
fn consent_for(request: &ConsentRequest, record: &InboundRecord) -> Consent {
    Consent {
        id: new_id(),
        person_id: request.person_id.clone(),
        enterprise_id: request.enterprise_id.clone(),
        number: request.number.clone(),
        scope: request.scope.clone(),
        status: ConsentStatus::Granted,
        window: None,
        expires_at: Some(record.received_at + TimeDelta::hours(2)),
        channel: Channel::Rcs,
        evidence: Evidence {
            provider_message_id: Some(record.provider_message_id.clone()),
            raw_reply: Some("Call me now".into()),
            signature_valid: Some(record.signature_valid),
            replied_at: record.sent_at,
            received_at: Some(record.received_at),
        },
        created_at: record.received_at,
        updated_at: record.received_at,
        revoked_at: None,
    }
}

fn granted(e: &str, person_id: &str) -> NewConsent {
    NewConsent {
        person_id: person_id.into(),
        enterprise_id: e.into(),
        number: number(ANN),
        scope: Scope::Purpose("contract renewal".into()),
        status: ConsentStatus::Granted,
        window: None,
        expires_at: None,
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

/// An integer the database computes, read outside the store.
async fn count(db: &TestDb, sql: &str) -> i64 {
    if db.url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }
}

/// A text column the store keeps no reader for, read outside it.
async fn text(db: &TestDb, sql: &str) -> Option<String> {
    if db.url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let v = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        v
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let v = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        v
    }
}

async fn ledger(db: &TestDb) -> Vec<String> {
    let n = count(db, "SELECT COUNT(*) FROM inbound_messages").await;
    let mut outcomes = Vec::new();
    for offset in 0..n {
        outcomes.push(
            text(
                db,
                &format!(
                    "SELECT outcome FROM inbound_messages \
                     ORDER BY received_at, provider_message_id LIMIT 1 OFFSET {offset}"
                ),
            )
            .await
            .unwrap(),
        );
    }
    outcomes
}

async fn offered_choices_round_trip_in_order_and_are_replaced(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let first = request(&store, &e, &ann, at(1)).await;
    let other = request(&store, &e, &ann, at(2)).await;

    assert_eq!(store.offered_choices(&first.id).await.unwrap(), []);
    store
        .save_offered_choices(&first.id, &every_kind())
        .await
        .unwrap();
    assert_eq!(
        store.offered_choices(&first.id).await.unwrap(),
        every_kind()
    );
    assert_eq!(store.offered_choices(&other.id).await.unwrap(), []);

    // Saving again replaces the whole list, positions included.
    let again = vec![
        every_kind()[4].clone(),
        OfferedChoice {
            label: "In 1 hour".into(),
            postback: "after-60".into(),
            choice: Choice::After(TimeDelta::hours(1)),
        },
    ];
    store.save_offered_choices(&first.id, &again).await.unwrap();
    assert_eq!(store.offered_choices(&first.id).await.unwrap(), again);
    store.save_offered_choices(&first.id, &[]).await.unwrap();
    assert_eq!(store.offered_choices(&first.id).await.unwrap(), []);

    // Instants finer than the store's microseconds read back truncated.
    let fine = OfferedChoice {
        label: "Today 18:00".into(),
        postback: "slot-1".into(),
        choice: Choice::Slot(SlotOption {
            start: at(600) + TimeDelta::nanoseconds(1_234_567),
            end: at(630) + TimeDelta::nanoseconds(999),
        }),
    };
    store
        .save_offered_choices(&other.id, std::slice::from_ref(&fine))
        .await
        .unwrap();
    let read_back = store.offered_choices(&other.id).await.unwrap();
    assert_eq!(
        read_back[0].choice,
        Choice::Slot(SlotOption {
            start: at(600) + TimeDelta::microseconds(1_234),
            end: at(630),
        })
    );
}

async fn claims_lease_the_oldest_unsent_requests(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r1 = request(&store, &e, &ann, at(1)).await;
    let r2 = request(&store, &e, &ann, at(2)).await;
    let r3 = request(&store, &e, &ann, at(3)).await;
    let now = at(10);
    let lease = secs(LEASE);

    let first = store.claim_requests_to_send(now, lease, 2).await.unwrap();
    assert_eq!(ids(&first), [r1.id.as_str(), r2.id.as_str()]);
    assert_eq!(first[0], r1, "claimed requests are returned as stored");
    let second = store.claim_requests_to_send(now, lease, 2).await.unwrap();
    assert_eq!(ids(&second), [r3.id.as_str()]);
    assert_eq!(
        store.claim_requests_to_send(now, lease, 2).await.unwrap(),
        []
    );

    // r1 goes out; r2's provider is down: it waits until at(20).
    send(&store, &r1.id, "rbm-1", now + secs(1)).await;
    store.defer_prompt(&r2.id, at(20)).await.unwrap();

    // Within the lease nothing is claimable; after it, r3 (unsent) is.
    assert_eq!(
        store
            .claim_requests_to_send(now + secs(LEASE - 1), lease, 10)
            .await
            .unwrap(),
        []
    );
    let after_lease = store
        .claim_requests_to_send(now + secs(LEASE + 1), lease, 10)
        .await
        .unwrap();
    assert_eq!(ids(&after_lease), [r3.id.as_str()]);
    let deferred = store
        .claim_requests_to_send(at(20) - secs(1), lease, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&deferred),
        [r3.id.as_str()],
        "r2 stays deferred until its time"
    );
    let later = store
        .claim_requests_to_send(at(20), lease, 10)
        .await
        .unwrap();
    assert_eq!(ids(&later), [r2.id.as_str()]);
    let much_later = store
        .claim_requests_to_send(at(60), lease, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&much_later),
        [r2.id.as_str(), r3.id.as_str()],
        "a sent request is never claimed"
    );
    assert_eq!(read(&store, &r1.id).await.state, RequestState::Sent);
}

async fn a_sent_prompt_is_saved_with_its_message_id_and_event(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r1 = request(&store, &e, &ann, at(1)).await;
    let r2 = request(&store, &e, &ann, at(2)).await;
    let claimed = store
        .claim_requests_to_send(at(5), secs(LEASE), 1)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [r1.id.as_str()]);
    assert!(store
        .request_for_provider_message("rbm-msg-1")
        .await
        .unwrap()
        .is_none());

    let mut sent = claimed[0].clone();
    sent.apply(
        RequestEvent::Sent {
            provider_message_id: "rbm-msg-1".into(),
        },
        at(5) + secs(1),
    )
    .unwrap();
    store
        .mark_prompt_sent(&SentPrompt {
            request: sent.clone(),
            channel: "rbm".into(),
        })
        .await
        .unwrap();
    let stored = read(&store, &r1.id).await;
    assert_eq!(stored.state, RequestState::Sent);
    assert_eq!(stored.provider_message_id.as_deref(), Some("rbm-msg-1"));
    assert_eq!(stored.version, r1.version + 1);
    assert_eq!(stored.updated_at, at(5) + secs(1));
    assert_eq!(
        store
            .request_for_provider_message("rbm-msg-1")
            .await
            .unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        text(
            &db,
            &format!(
                "SELECT channel FROM consent_requests WHERE id = '{}'",
                r1.id
            )
        )
        .await
        .as_deref(),
        Some("rbm")
    );
    let events = all_events(&store).await;
    assert_eq!(
        types(&events),
        [
            "consent_request.created",
            "consent_request.created",
            "consent_request.sent"
        ]
    );
    assert!(events[2].payload.contains(&r1.id));

    // r2 is changed by another writer (it failed) after being read: the
    // stale write is a conflict and changes nothing.
    let stale = read(&store, &r2.id).await;
    store
        .apply_consent_request_event(
            &r2.id,
            RequestEvent::Failed {
                reason: "number unreachable".into(),
            },
            at(6),
        )
        .await
        .unwrap();
    let failed = read(&store, &r2.id).await;
    let mut sent = stale.clone();
    sent.apply(
        RequestEvent::Sent {
            provider_message_id: "rbm-msg-2".into(),
        },
        at(7),
    )
    .unwrap();
    let err = store
        .mark_prompt_sent(&SentPrompt {
            request: sent,
            channel: "rbm".into(),
        })
        .await
        .unwrap_err();
    match err {
        ConsentStoreError::Conflict { id, expected, .. } => {
            assert_eq!(id, r2.id);
            assert_eq!(expected, stale.version);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(read(&store, &r2.id).await, failed);
    assert!(store
        .request_for_provider_message("rbm-msg-2")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        text(
            &db,
            &format!(
                "SELECT channel FROM consent_requests WHERE id = '{}'",
                r2.id
            )
        )
        .await,
        None
    );
    assert_eq!(
        types(&all_events(&store).await),
        [
            "consent_request.created",
            "consent_request.created",
            "consent_request.sent",
            "consent_request.failed"
        ]
    );
}

async fn the_latest_request_to_a_number_is_the_newest_sent_one(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let bob = person(&store, BOB).await;
    subscribe(&store, &bob, &e).await;

    let r1 = request(&store, &e, &ann, at(1)).await;
    assert!(store
        .latest_request_to(&number(ANN))
        .await
        .unwrap()
        .is_none());
    let r2 = request(&store, &e, &ann, at(2)).await;
    let r1 = send(&store, &r1.id, "rbm-1", at(3)).await;
    assert_eq!(
        store.latest_request_to(&number(ANN)).await.unwrap(),
        Some(r1.clone()),
        "r2 was never sent"
    );
    let r2 = send(&store, &r2.id, "rbm-2", at(4)).await;
    // A newer one not sent yet does not hide it.
    request(&store, &e, &ann, at(5)).await;
    assert_eq!(
        store.latest_request_to(&number(ANN)).await.unwrap(),
        Some(r2.clone())
    );

    assert!(store
        .latest_request_to(&number(BOB))
        .await
        .unwrap()
        .is_none());
    let to_bob = store
        .create_consent_request(new_request(&e, &bob, BOB, at(24 * 60)), at(6))
        .await
        .unwrap();
    let to_bob = send(&store, &to_bob.id, "rbm-3", at(7)).await;
    assert_eq!(
        store.latest_request_to(&number(BOB)).await.unwrap(),
        Some(to_bob)
    );
    assert_eq!(
        store.latest_request_to(&number(ANN)).await.unwrap(),
        Some(r2)
    );
    assert!(store
        .latest_request_to(&number("+33611111111"))
        .await
        .unwrap()
        .is_none());
}

async fn an_answer_commits_with_its_consent_and_acts_once(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r = request(&store, &e, &ann, at(1)).await;
    let r = send(&store, &r.id, "rbm-out-1", at(2)).await;
    let before = all_events(&store).await.len();

    let record = inbound("rbm-in-1", Some(&r.id), at(5));
    let consent = consent_for(&r, &record);
    let effect = InboundEffect::Answer {
        request: answered(&r, Answer::Now, at(5)),
        consent: Some(Box::new(consent.clone())),
    };
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    let stored = read(&store, &r.id).await;
    assert_eq!(stored.state, RequestState::Answered(Answer::Now));
    assert_eq!(stored.version, r.version + 1);
    assert_eq!(stored.updated_at, at(5));
    let read_consent = store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(read_consent, consent);
    assert_eq!(
        read_consent.evidence.provider_message_id.as_deref(),
        Some("rbm-in-1")
    );
    assert_eq!(read_consent.evidence.signature_valid, Some(true));
    assert_eq!(read_consent.evidence.replied_at, Some(at(5) - secs(2)));
    let events = all_events(&store).await;
    let mut new_types = types(&events[before..]).to_vec();
    new_types.sort_unstable();
    assert_eq!(new_types, ["consent.granted", "consent_request.answered"]);
    assert_eq!(ledger(&db).await, ["answered"]);

    // The provider delivers the same message again: nothing happens.
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Duplicate
    );
    assert_eq!(read(&store, &r.id).await, stored);
    assert_eq!(
        store
            .consents_for_number(&e, &number(ANN))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM consents").await, 1);
    assert_eq!(all_events(&store).await.len(), events.len());
    assert_eq!(ledger(&db).await, ["answered"]);
}

async fn a_stale_answer_writes_nothing_and_can_be_retried(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r = request(&store, &e, &ann, at(1)).await;
    let stale = send(&store, &r.id, "rbm-out-1", at(2)).await;
    // A delivery receipt lands between the read and the write.
    let (fresh, _) = store
        .apply_consent_request_event(&r.id, RequestEvent::Delivered, at(3))
        .await
        .unwrap();
    let events = all_events(&store).await.len();

    let record = inbound("rbm-in-1", Some(&r.id), at(5));
    let consent = consent_for(&r, &record);
    let effect = InboundEffect::Answer {
        request: answered(&stale, Answer::Now, at(5)),
        consent: Some(Box::new(consent.clone())),
    };
    match store.record_inbound(&record, &effect).await {
        Err(ConsentStoreError::Conflict { id, expected, .. }) => {
            assert_eq!(id, r.id);
            assert_eq!(expected, stale.version);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(read(&store, &r.id).await, fresh);
    assert!(store.consent(&consent.id).await.unwrap().is_none());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM consents").await, 0);
    assert_eq!(ledger(&db).await, Vec::<String>::new(), "no ledger row");
    assert_eq!(all_events(&store).await.len(), events);

    // The same message, read again against the current version, applies.
    let effect = InboundEffect::Answer {
        request: answered(&fresh, Answer::Now, at(5)),
        consent: Some(Box::new(consent.clone())),
    };
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    assert_eq!(
        read(&store, &r.id).await.state,
        RequestState::Answered(Answer::Now)
    );
    assert_eq!(store.consent(&consent.id).await.unwrap(), Some(consent));
    assert_eq!(ledger(&db).await, ["answered"]);
    assert_eq!(all_events(&store).await.len(), events + 2);
}

async fn a_revocation_revokes_the_enterprise_consents_and_bars_the_number(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let other = enterprise(&store, "Other Telecom").await;
    subscribe(&store, &ann, &other).await;
    let c1 = store
        .record_consent(&granted(&e, &ann), at(1))
        .await
        .unwrap();
    let c2 = store
        .record_consent(&granted(&e, &ann), at(2))
        .await
        .unwrap();
    let theirs = store
        .record_consent(&granted(&other, &ann), at(2))
        .await
        .unwrap();
    let r = request(&store, &e, &ann, at(3)).await;
    let stale = send(&store, &r.id, "rbm-out-1", at(3)).await;
    let (r, _) = store
        .apply_consent_request_event(&r.id, RequestEvent::Delivered, at(4))
        .await
        .unwrap();
    let events = all_events(&store).await.len();

    // Read against a stale request, the whole revocation is refused: no
    // consent revoked, no do-not-call entry, no ledger row.
    let record = inbound("rbm-in-stop", Some(&r.id), at(5));
    let effect = InboundEffect::Revoke {
        enterprise_id: e.clone(),
        person_id: ann.clone(),
        number: number(ANN),
        request: Some(answered(&stale, Answer::Decline, at(5))),
        consent: None,
    };
    assert!(matches!(
        store.record_inbound(&record, &effect).await,
        Err(ConsentStoreError::Conflict { .. })
    ));
    assert_eq!(store.consent(&c1.id).await.unwrap(), Some(c1.clone()));
    assert_eq!(store.consent(&c2.id).await.unwrap(), Some(c2.clone()));
    assert!(store
        .do_not_call(Some(&e), &number(ANN))
        .await
        .unwrap()
        .is_none());
    assert_eq!(ledger(&db).await, Vec::<String>::new());
    assert_eq!(all_events(&store).await.len(), events);
    assert_eq!(read(&store, &r.id).await, r);

    let effect = InboundEffect::Revoke {
        enterprise_id: e.clone(),
        person_id: ann.clone(),
        number: number(ANN),
        request: Some(answered(&r, Answer::Decline, at(5))),
        consent: None,
    };
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Applied { revoked: 2 }
    );
    for id in [&c1.id, &c2.id] {
        let c = store.consent(id).await.unwrap().unwrap();
        assert_eq!(c.status, ConsentStatus::Revoked);
        assert_eq!(c.revoked_at, Some(at(5)));
        assert_eq!(c.updated_at, at(5));
    }
    assert_eq!(store.consent(&theirs.id).await.unwrap(), Some(theirs));
    let entry = store
        .do_not_call(Some(&e), &number(ANN))
        .await
        .unwrap()
        .expect("the number is on the enterprise's list");
    assert_eq!(entry.enterprise_id.as_deref(), Some(e.as_str()));
    assert_eq!(entry.source, "revocation");
    assert_eq!(entry.created_at, at(5));
    assert!(store
        .do_not_call(Some(&other), &number(ANN))
        .await
        .unwrap()
        .is_none());
    let stored = read(&store, &r.id).await;
    assert_eq!(stored.state, RequestState::Answered(Answer::Decline));
    let all = all_events(&store).await;
    let mut new_types = types(&all[events..]).to_vec();
    new_types.sort_unstable();
    assert_eq!(
        new_types,
        [
            "consent.revoked",
            "consent.revoked",
            "consent_request.answered"
        ]
    );
    assert_eq!(ledger(&db).await, ["revoked"]);

    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Duplicate
    );
    assert_eq!(read(&store, &r.id).await, stored);
    assert_eq!(all_events(&store).await.len(), all.len());
    assert_eq!(ledger(&db).await, ["revoked"]);

    // STOP with nothing open and nothing left to revoke still bars the
    // number (already listed: the entry is kept as it was).
    let record = inbound("rbm-in-stop-2", None, at(9));
    let effect = InboundEffect::Revoke {
        enterprise_id: e.clone(),
        person_id: ann.clone(),
        number: number(ANN),
        request: None,
        consent: None,
    };
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    assert_eq!(
        store.do_not_call(Some(&e), &number(ANN)).await.unwrap(),
        Some(entry)
    );
}

async fn only_the_first_unclear_reply_of_a_request_gets_a_question(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r = request(&store, &e, &ann, at(1)).await;
    let r = send(&store, &r.id, "rbm-out-1", at(2)).await;
    let other = request(&store, &e, &ann, at(3)).await;
    let other = send(&store, &other.id, "rbm-out-2", at(3)).await;
    let events = all_events(&store).await.len();

    let clarify = InboundEffect::Clarify {
        request_id: r.id.clone(),
    };
    let first = inbound("rbm-in-1", Some(&r.id), at(4));
    assert_eq!(
        store.record_inbound(&first, &clarify).await.unwrap(),
        InboundOutcome::Clarify { first: true }
    );
    assert_eq!(
        store
            .record_inbound(&inbound("rbm-in-2", Some(&r.id), at(5)), &clarify)
            .await
            .unwrap(),
        InboundOutcome::Clarify { first: false }
    );
    assert_eq!(
        store.record_inbound(&first, &clarify).await.unwrap(),
        InboundOutcome::Duplicate
    );
    // Another request has its own first question.
    assert_eq!(
        store
            .record_inbound(
                &inbound("rbm-in-3", Some(&other.id), at(6)),
                &InboundEffect::Clarify {
                    request_id: other.id.clone(),
                },
            )
            .await
            .unwrap(),
        InboundOutcome::Clarify { first: true }
    );
    assert_eq!(ledger(&db).await, ["unclear", "unclear", "unclear"]);
    // An unclear reply leaves the request as it was.
    assert_eq!(read(&store, &r.id).await, r);
    assert_eq!(all_events(&store).await.len(), events);
}

async fn ignored_messages_are_kept_in_the_ledger_once(db: TestDb) {
    let store = db.store().await;
    let record = inbound("sms-in-1", None, at(4));
    assert_eq!(
        store
            .record_inbound(&record, &InboundEffect::Ignore)
            .await
            .unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    assert_eq!(ledger(&db).await, ["ignored"]);
    assert_eq!(
        text(
            &db,
            "SELECT payload_sha256 FROM inbound_messages WHERE provider_message_id = 'sms-in-1'"
        )
        .await,
        Some(record.payload_sha256.clone())
    );
    assert_eq!(
        store
            .record_inbound(&record, &InboundEffect::Ignore)
            .await
            .unwrap(),
        InboundOutcome::Duplicate
    );
    // The key is the provider and its id: another provider's id is new.
    let mut sms = record.clone();
    sms.provider = "sms".into();
    assert_eq!(
        store
            .record_inbound(&sms, &InboundEffect::Ignore)
            .await
            .unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    assert_eq!(ledger(&db).await, ["ignored", "ignored"]);
}

async fn contact_history_lists_sent_prompts_with_what_was_picked(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let other = enterprise(&store, "Other Telecom").await;
    subscribe(&store, &ann, &other).await;

    let r1 = request(&store, &e, &ann, at(1)).await;
    store
        .save_offered_choices(&r1.id, &every_kind())
        .await
        .unwrap();
    send(&store, &r1.id, "rbm-1", at(1)).await;
    store
        .apply_consent_request_event(
            &r1.id,
            RequestEvent::Answered(Answer::Slot(evening())),
            at(3),
        )
        .await
        .unwrap();

    let r2 = request(&store, &e, &ann, at(10)).await;
    let short = every_kind()[..2].to_vec();
    store.save_offered_choices(&r2.id, &short).await.unwrap();
    send(&store, &r2.id, "rbm-2", at(10)).await;
    store
        .apply_consent_request_event(&r2.id, RequestEvent::Answered(Answer::Decline), at(12))
        .await
        .unwrap();

    // Never sent, and another enterprise's prompt: neither counts.
    let r3 = request(&store, &e, &ann, at(20)).await;
    store.save_offered_choices(&r3.id, &short).await.unwrap();
    let theirs = store
        .create_consent_request(new_request(&other, &ann, ANN, at(24 * 60)), at(21))
        .await
        .unwrap();
    send(&store, &theirs.id, "rbm-3", at(21)).await;

    let history = store.contact_history(&ann, &e, at(0)).await.unwrap();
    assert_eq!(history.prompts.len(), 2);
    let (p1, p2) = (&history.prompts[0], &history.prompts[1]);
    assert_eq!(p1.sent_at, at(1));
    assert_eq!(p1.offered, every_kind());
    assert_eq!(p1.picked, Some(Choice::Slot(evening())));
    assert_eq!(p1.answered_at, Some(at(3)));
    assert!(!p1.declined);
    assert_eq!(p2.sent_at, at(10));
    assert_eq!(p2.offered, short);
    assert_eq!(p2.picked, Some(Choice::Decline));
    assert_eq!(p2.answered_at, Some(at(12)));
    assert!(p2.declined);

    let recent = store.contact_history(&ann, &e, at(5)).await.unwrap();
    assert_eq!(recent.prompts, std::slice::from_ref(p2));
    assert_eq!(
        store
            .contact_history(&ann, &e, at(30))
            .await
            .unwrap()
            .prompts,
        []
    );
    let theirs = store.contact_history(&ann, &other, at(0)).await.unwrap();
    assert_eq!(theirs.prompts.len(), 1);
    assert_eq!(theirs.prompts[0].picked, None);
    assert_eq!(theirs.prompts[0].offered, []);
    assert!(!theirs.prompts[0].declined);

    // The weekly cap counts every enterprise's prompts that went out.
    assert_eq!(
        store.prompts_to_person_since(&ann, at(0)).await.unwrap(),
        [at(1), at(10), at(21)]
    );
    assert_eq!(
        store.prompts_to_person_since(&ann, at(11)).await.unwrap(),
        [at(21)]
    );
}

async fn requests_due_to_expire_are_open_and_past_their_deadline(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let create = |created: i64, expires: i64| {
        let store = store.clone();
        let (e, ann) = (e.clone(), ann.clone());
        async move {
            store
                .create_consent_request(new_request(&e, &ann, ANN, at(expires)), at(created))
                .await
                .unwrap()
        }
    };
    let late = create(1, 30).await; // created, past its deadline
    let later = create(2, 20).await; // sent, past an earlier deadline
    send(&store, &later.id, "rbm-1", at(3)).await;
    let delivered = create(3, 40).await;
    send(&store, &delivered.id, "rbm-2", at(4)).await;
    store
        .apply_consent_request_event(&delivered.id, RequestEvent::Delivered, at(5))
        .await
        .unwrap();
    let done = create(4, 25).await;
    send(&store, &done.id, "rbm-3", at(5)).await;
    store
        .apply_consent_request_event(&done.id, RequestEvent::Answered(Answer::Now), at(6))
        .await
        .unwrap();
    let failed = create(5, 26).await;
    store
        .apply_consent_request_event(
            &failed.id,
            RequestEvent::Failed {
                reason: "no channel".into(),
            },
            at(6),
        )
        .await
        .unwrap();
    let future = create(6, 500).await;

    assert_eq!(
        store.requests_due_to_expire(at(10), 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.requests_due_to_expire(at(100), 10).await.unwrap(),
        [later.id.clone(), late.id.clone(), delivered.id.clone()]
    );
    assert_eq!(
        store.requests_due_to_expire(at(100), 2).await.unwrap(),
        [later.id.clone(), late.id.clone()]
    );
    // The deadline itself is due.
    assert_eq!(
        store.requests_due_to_expire(at(20), 10).await.unwrap(),
        std::slice::from_ref(&later.id)
    );
    // Once expired, a request is no longer due.
    store
        .apply_consent_request_event(&later.id, RequestEvent::Expire, at(100))
        .await
        .unwrap();
    assert_eq!(
        store.requests_due_to_expire(at(100), 10).await.unwrap(),
        [late.id.clone(), delivered.id.clone()]
    );
    assert_eq!(
        store.requests_due_to_expire(at(600), 10).await.unwrap(),
        [late.id, delivered.id, future.id]
    );
}

async fn concurrent_dispatchers_claim_disjoint_requests(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let mut all = Vec::new();
    for minute in 1..=8 {
        all.push(request(&store, &e, &ann, at(minute)).await.id);
    }
    let claims: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_requests_to_send(at(10), secs(LEASE), 3)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        let batch = claim.await.unwrap();
        assert!(batch.len() <= 3);
        claimed.extend(batch.into_iter().map(|r| r.id));
    }
    claimed.sort_unstable();
    all.sort_unstable();
    assert_eq!(claimed, all, "every request claimed exactly once");
}

async fn a_message_delivered_concurrently_acts_once(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r = request(&store, &e, &ann, at(1)).await;
    let r = send(&store, &r.id, "rbm-out-1", at(2)).await;
    let events = all_events(&store).await.len();
    let record = inbound("rbm-in-1", Some(&r.id), at(5));
    let effect = InboundEffect::Answer {
        request: answered(&r, Answer::Now, at(5)),
        consent: Some(Box::new(consent_for(&r, &record))),
    };
    let deliveries: Vec<_> = (0..4)
        .map(|_| {
            let (store, record, effect) = (store.clone(), record.clone(), effect.clone());
            tokio::spawn(async move { store.record_inbound(&record, &effect).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        outcomes.push(delivery.await.unwrap());
    }
    let applied = outcomes
        .iter()
        .filter(|o| **o == InboundOutcome::Applied { revoked: 0 })
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == InboundOutcome::Duplicate)
        .count();
    assert_eq!((applied, duplicates), (1, 3), "{outcomes:?}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM consents").await, 1);
    assert_eq!(ledger(&db).await, ["answered"]);
    assert_eq!(all_events(&store).await.len(), events + 2);
}

async fn racing_replies_to_one_request_answer_it_once(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    let r = request(&store, &e, &ann, at(1)).await;
    let r = send(&store, &r.id, "rbm-out-1", at(2)).await;
    // Two different replies ("1" and "2"), both read the request at the
    // same version.
    let replies: Vec<_> = [
        ("rbm-in-1", Answer::Now),
        ("rbm-in-2", Answer::Slot(evening())),
    ]
    .into_iter()
    .map(|(id, answer)| {
        let store = store.clone();
        let record = inbound(id, Some(&r.id), at(5));
        let effect = InboundEffect::Answer {
            request: answered(&r, answer, at(5)),
            consent: Some(Box::new(consent_for(&r, &record))),
        };
        tokio::spawn(async move { store.record_inbound(&record, &effect).await })
    })
    .collect();
    let mut applied = 0;
    let mut conflicts = 0;
    for reply in replies {
        match reply.await.unwrap() {
            Ok(InboundOutcome::Applied { revoked: 0 }) => applied += 1,
            Err(ConsentStoreError::Conflict { .. }) => conflicts += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((applied, conflicts), (1, 1));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM consents").await, 1);
    assert_eq!(ledger(&db).await, ["answered"], "the loser left no row");
    assert_eq!(read(&store, &r.id).await.version, r.version + 1);
}

/// A request for a held INVITE, opened with its hold at `at(1)` and sent.
async fn held(store: &Store, e: &str, person_id: &str, hold_id: &str) -> ConsentRequest {
    let mut new = new_request(e, person_id, ANN, at(1) + TimeDelta::days(1));
    new.hold_id = Some(hold_id.into());
    let hold = NewHold {
        id: hold_id.into(),
        campaign: "winter-offer".into(),
        caller: "sip:4001@10.0.0.5".into(),
        pbx_target: "sip:4001@10.0.0.5:5060".into(),
    };
    let r = store.open_hold(new, &hold, at(1)).await.unwrap();
    send(store, &r.id, &format!("out-{hold_id}"), at(2)).await
}

/// Records `answer` for the request as a reply received at `received`.
async fn reply(
    store: &Store,
    r: &ConsentRequest,
    message: &str,
    answer: Answer,
    received: DateTime<Utc>,
) -> Consent {
    let record = inbound(message, Some(&r.id), received);
    let consent = consent_for(r, &record);
    let effect = InboundEffect::Answer {
        request: answered(&read(store, &r.id).await, answer, received),
        consent: Some(Box::new(consent.clone())),
    };
    assert_eq!(
        store.record_inbound(&record, &effect).await.unwrap(),
        InboundOutcome::Applied { revoked: 0 }
    );
    consent
}

async fn a_later_answer_to_a_held_request_schedules_its_callback_and_wakes_the_hold(db: TestDb) {
    let store = db.store().await;
    let mut wakes = store.hold_wakes().await.unwrap();
    let (e, ann) = acme_and_ann(&store).await;
    let r = held(&store, &e, &ann, "hold-1").await;
    assert_eq!(r.hold_id.as_deref(), Some("hold-1"));
    let status = store.hold("hold-1").await.unwrap().unwrap();
    assert_eq!(
        (status.state.as_str(), status.request_id.as_str()),
        ("held", r.id.as_str())
    );

    let consent = reply(&store, &r, "rbm-in-1", Answer::Slot(evening()), at(5)).await;
    let woken = tokio::time::timeout(std::time::Duration::from_secs(5), wakes.next())
        .await
        .expect("woken within 5 s");
    assert_eq!(woken, Some(Some("hold-1".to_string())));
    let callback = store.callback_for_request(&r.id).await.unwrap().unwrap();
    assert_eq!(callback.hold_id, "hold-1");
    assert_eq!(callback.enterprise_id, e);
    assert_eq!(callback.campaign, "winter-offer");
    assert_eq!(callback.callee, ANN);
    assert_eq!(callback.caller, "sip:4001@10.0.0.5");
    assert_eq!(callback.pbx_target, "sip:4001@10.0.0.5:5060");
    assert_eq!(callback.consent_id.as_deref(), Some(consent.id.as_str()));
    assert_eq!(
        (callback.slot_start, callback.slot_end),
        (evening().start, evening().end)
    );
    assert_eq!(callback.status, "pending");
    assert_eq!(store.pending_callbacks(10).await.unwrap(), vec![callback]);

    // The holding node ends the hold once; a second end changes nothing.
    assert!(store.end_hold("hold-1", false, at(6)).await.unwrap());
    assert!(!store.end_hold("hold-1", false, at(6)).await.unwrap());
    assert_eq!(store.hold("hold-1").await.unwrap().unwrap().state, "ended");
    assert_eq!(store.pending_callbacks(10).await.unwrap().len(), 1);
}

async fn a_now_answer_schedules_only_once_the_hold_has_ended(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    // Still held: the holding node forwards the INVITE, no callback.
    let live = held(&store, &e, &ann, "hold-live").await;
    reply(&store, &live, "rbm-in-1", Answer::Now, at(5)).await;
    assert!(store
        .callback_for_request(&live.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.end_hold("hold-live", true, at(5)).await.unwrap());
    assert_eq!(
        store.hold("hold-live").await.unwrap().unwrap().state,
        "forwarded"
    );

    // The window passed first: the late "now" becomes a callback.
    let late = held(&store, &e, &ann, "hold-late").await;
    assert!(store.end_hold("hold-late", false, at(3)).await.unwrap());
    let consent = reply(&store, &late, "rbm-in-2", Answer::Now, at(7)).await;
    let callback = store.callback_for_request(&late.id).await.unwrap().unwrap();
    assert_eq!(callback.slot_start, at(7));
    assert_eq!(callback.slot_end, at(7) + TimeDelta::minutes(15));
    assert_eq!(callback.consent_id.as_deref(), Some(consent.id.as_str()));
}

async fn a_hold_ended_after_an_unacted_now_schedules_the_callback(db: TestDb) {
    let store = db.store().await;
    let (e, ann) = acme_and_ann(&store).await;
    // The answer is stored while held, then the window ends the hold
    // before the holding node acted on it.
    let r = held(&store, &e, &ann, "hold-crossed").await;
    let consent = reply(&store, &r, "rbm-in-1", Answer::Now, at(5)).await;
    assert!(store.end_hold("hold-crossed", false, at(6)).await.unwrap());
    let callback = store.callback_for_request(&r.id).await.unwrap().unwrap();
    assert_eq!(callback.slot_start, at(6));
    assert_eq!(callback.consent_id.as_deref(), Some(consent.id.as_str()));

    // Recorded as forwarded, but the PBX had been refused already.
    let missed = held(&store, &e, &ann, "hold-missed").await;
    reply(&store, &missed, "rbm-in-2", Answer::Now, at(5)).await;
    assert!(store.end_hold("hold-missed", true, at(5)).await.unwrap());
    assert!(store
        .callback_for_request(&missed.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .reopen_missed_hold("hold-missed", at(6))
        .await
        .unwrap());
    assert!(store
        .callback_for_request(&missed.id)
        .await
        .unwrap()
        .is_some());
    assert!(!store
        .reopen_missed_hold("hold-missed", at(6))
        .await
        .unwrap());
}

async fn a_hold_is_refused_with_nothing_stored_when_the_person_may_not_be_asked(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME Energy").await;
    let ann = person(&store, ANN).await;
    // No subscription.
    let mut new = new_request(&e, &ann, ANN, at(1) + TimeDelta::days(1));
    new.hold_id = Some("hold-x".into());
    let hold = NewHold {
        id: "hold-x".into(),
        campaign: "c".into(),
        caller: "sip:4001@pbx".into(),
        pbx_target: "sip:4001@10.0.0.5:5060".into(),
    };
    match store.open_hold(new, &hold, at(1)).await {
        Err(ConsentStoreError::Refused(r)) => assert_eq!(r.code(), "not_subscribed"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(store.hold("hold-x").await.unwrap().is_none());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM consent_requests").await, 0);
}

/// Two nodes on one PostgreSQL database: the answer stored through one
/// wakes the hold listening on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_on_one_node_wakes_the_hold_on_another() {
    on_postgres(|db| async move {
        let node_a = db.store().await;
        let node_b = db.store().await;
        let mut wakes = node_a.hold_wakes().await.unwrap();
        let (e, ann) = acme_and_ann(&node_a).await;
        let r = held(&node_a, &e, &ann, "hold-two-nodes").await;
        reply(&node_b, &r, "rbm-in-1", Answer::Now, at(5)).await;
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), wakes.next())
            .await
            .expect("node A woken within 5 s");
        assert_eq!(woken, Some(Some("hold-two-nodes".to_string())));
    })
    .await;
}
