//! Caller ID in the store, on both engines: numbers set on people for an
//! enterprise (and how the gate's facts carry them), and flagged numbers.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use slotgate::consent::{ConsentPolicy, Identifier, NewEnterprise, TrustStatus, E164};
use slotgate::store::{ConsentStoreError, Store};
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    overrides_are_set_replaced_read_and_cleared,
    the_gates_facts_carry_the_override_of_that_enterprise_only,
    flags_are_stored_replaced_listed_and_lifted,
);

const ANN: &str = "+33612345678";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn n(text: &str) -> E164 {
    E164::from_e164(text).unwrap()
}

async fn enterprise(store: &Store, name: &str) -> String {
    store
        .create_enterprise(
            &NewEnterprise {
                name: name.into(),
                display_name: name.into(),
                services: vec!["Electricity".into()],
                default_region: "FR".into(),
                crm_webhook_url: None,
                crm_webhook_secret: None,
                consent_policy: ConsentPolicy::PerCall,
                status: TrustStatus::Trusted,
            },
            at(0),
        )
        .await
        .unwrap()
        .id
}

async fn ann(store: &Store) -> String {
    store
        .create_person(&[Identifier::Phone(n(ANN))], at(0))
        .await
        .unwrap()
        .id
}

fn not_found(result: Result<impl std::fmt::Debug, ConsentStoreError>) -> &'static str {
    match result {
        Err(ConsentStoreError::NotFound { what, .. }) => what,
        other => panic!("expected not found, got {other:?}"),
    }
}

async fn overrides_are_set_replaced_read_and_cleared(db: TestDb) {
    let store = db.store().await;
    let acme = enterprise(&store, "Acme").await;
    let person = ann(&store).await;
    assert_eq!(
        store.caller_id_override(&person, &acme).await.unwrap(),
        None
    );

    let set = store
        .set_caller_id_override(&person, &acme, &n("+33140000001"), at(1))
        .await
        .unwrap();
    assert_eq!(set.number, n("+33140000001"));
    assert_eq!(
        store.caller_id_override(&person, &acme).await.unwrap(),
        Some(set)
    );
    // Setting again replaces it.
    let replaced = store
        .set_caller_id_override(&person, &acme, &n("+33140000002"), at(2))
        .await
        .unwrap();
    let read = store
        .caller_id_override(&person, &acme)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, replaced);
    assert_eq!(read.number, n("+33140000002"));
    assert_eq!(read.updated_at, at(2));

    // Someone or something unknown is named, not failed on.
    assert_eq!(
        not_found(
            store
                .set_caller_id_override("nobody", &acme, &n("+33140000001"), at(3))
                .await
        ),
        "person"
    );
    assert_eq!(
        not_found(
            store
                .set_caller_id_override(&person, "missing", &n("+33140000001"), at(3))
                .await
        ),
        "enterprise"
    );

    assert!(store
        .clear_caller_id_override(&person, &acme)
        .await
        .unwrap());
    assert!(!store
        .clear_caller_id_override(&person, &acme)
        .await
        .unwrap());
    assert_eq!(
        store.caller_id_override(&person, &acme).await.unwrap(),
        None
    );

    // Deleting an enterprise takes its overrides with it.
    store
        .set_caller_id_override(&person, &acme, &n("+33140000001"), at(4))
        .await
        .unwrap();
    store.delete_enterprise(&acme).await.unwrap();
    assert_eq!(
        store.caller_id_override(&person, &acme).await.unwrap(),
        None
    );
}

async fn the_gates_facts_carry_the_override_of_that_enterprise_only(db: TestDb) {
    let store = db.store().await;
    let acme = enterprise(&store, "Acme").await;
    let beta = enterprise(&store, "Beta").await;
    let person = ann(&store).await;
    let facts = store.callee_facts(&acme, &n(ANN)).await.unwrap().unwrap();
    assert_eq!(facts.caller_id_override, None);

    store
        .set_caller_id_override(&person, &acme, &n("+33140000001"), at(1))
        .await
        .unwrap();
    let facts = store.callee_facts(&acme, &n(ANN)).await.unwrap().unwrap();
    assert_eq!(facts.person_id.as_deref(), Some(person.as_str()));
    assert_eq!(facts.caller_id_override, Some(n("+33140000001")));
    // Another enterprise calling the same person shows its own numbers.
    let facts = store.callee_facts(&beta, &n(ANN)).await.unwrap().unwrap();
    assert_eq!(facts.caller_id_override, None);
    // A number nobody owns has no person, hence no override.
    let facts = store
        .callee_facts(&acme, &n("+33698765432"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.caller_id_override, None);
}

async fn flags_are_stored_replaced_listed_and_lifted(db: TestDb) {
    let store = db.store().await;
    let wakes = store.caller_id_flag_wakes();
    assert!(store.caller_id_flags(at(0)).await.unwrap().is_empty());

    store
        .flag_caller_id(&n("+12125550122"), at(60), at(0))
        .await
        .unwrap();
    // The writer wakes this process's flag reader.
    tokio::time::timeout(Duration::from_secs(5), wakes.notified())
        .await
        .expect("a flag written wakes the reader");
    store
        .flag_caller_id(&n("+12125550123"), at(5), at(0))
        .await
        .unwrap();
    let flags = store.caller_id_flags(at(1)).await.unwrap();
    let listed: Vec<(&str, DateTime<Utc>)> = flags
        .iter()
        .map(|f| (f.number.as_str(), f.flagged_until))
        .collect();
    assert_eq!(listed, [("+12125550122", at(60)), ("+12125550123", at(5))]);
    // A flag past its cool-down flags nothing.
    let flags = store.caller_id_flags(at(5)).await.unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].number, n("+12125550122"));

    // Flagging again replaces the cool-down.
    store
        .flag_caller_id(&n("+12125550123"), at(120), at(6))
        .await
        .unwrap();
    let flags = store.caller_id_flags(at(10)).await.unwrap();
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[1].flagged_until, at(120));
    assert_eq!(flags[1].updated_at, at(6));

    assert!(store.unflag_caller_id(&n("+12125550123")).await.unwrap());
    assert!(!store.unflag_caller_id(&n("+12125550123")).await.unwrap());
    let flags = store.caller_id_flags(at(10)).await.unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].number, n("+12125550122"));
}
