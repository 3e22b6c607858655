//! Consent-domain store tests, with the same bodies run on both engines.
//!
//! Like `tests/store.rs`, every test expands into a `sqlite` case (a file in
//! a temporary directory) and a `postgres` case (a fresh schema, dropped at
//! the end). PostgreSQL is required: when it cannot be reached the postgres
//! cases fail, never skip.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use slotgate::consent::{
    Answer, Channel, ConsentPolicy, ConsentStatus, DncRejectionReason, EnterpriseChanges, Evidence,
    Identifier, NewConsent, NewConsentRequest, NewEnterprise, NumberError, Refusal, RequestEvent,
    RequestState, Scope, SlotOption, SubscriptionStatus, Transition, TransitionError, TrustStatus,
    Window, E164,
};
use slotgate::crm::OutboxFilter;
use slotgate::store::api::{Created, RequestDetails};
use slotgate::store::{ConsentStoreError, Store};
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    enterprises_round_trip_and_gate_on_trust,
    enterprises_are_listed_updated_and_deleted_only_without_history,
    api_keys_are_stored_as_hashes_verified_and_revocable,
    numbers_are_normalised_with_the_enterprise_region,
    people_are_found_by_every_identifier_kind,
    an_identifier_names_one_person_only,
    subscriptions_must_be_active_before_anything_is_sent,
    consents_round_trip_with_their_evidence,
    only_granted_unexpired_consents_cover_an_instant,
    revocation_is_immediate_and_adds_do_not_call,
    revocation_and_do_not_call_entry_land_together_or_not_at_all,
    consent_requests_walk_the_state_machine,
    repeated_events_change_nothing_and_illegal_ones_are_refused,
    concurrent_writers_of_a_request_conflict,
    requests_expire_only_after_their_deadline,
    api_requests_are_idempotent_per_enterprise_key,
    one_idempotency_key_sent_at_once_makes_one_request,
    a_creation_the_database_refuses_fails_alone,
    each_persons_events_keep_the_order_of_their_requests,
    do_not_call_lists_refuse_contact,
    dnc_csv_import_reports_each_row,
);

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn acme(policy: ConsentPolicy) -> NewEnterprise {
    NewEnterprise {
        name: "ACME Energy SAS".into(),
        display_name: "ACME Energy".into(),
        services: vec!["Electricity".into(), "Boiler maintenance".into()],
        default_region: "FR".into(),
        crm_webhook_url: Some("https://crm.acme.example/hooks/slotgate".into()),
        crm_webhook_secret: Some("whsec_0123456789".into()),
        consent_policy: policy,
        status: TrustStatus::Trusted,
    }
}

fn number(text: &str) -> E164 {
    E164::parse(text, None).unwrap()
}

const ANN: &str = "+33612345678";

/// A trusted enterprise and a subscribed person with the number `ANN`.
async fn enterprise_and_subscriber(store: &Store, policy: ConsentPolicy) -> (String, String) {
    let enterprise = store.create_enterprise(&acme(policy), at(0)).await.unwrap();
    let person = store
        .create_person(&[Identifier::Phone(number(ANN))], at(0))
        .await
        .unwrap();
    store
        .set_subscription(
            &person.id,
            &enterprise.id,
            SubscriptionStatus::Active,
            at(0),
        )
        .await
        .unwrap();
    (enterprise.id, person.id)
}

fn refusal(result: Result<impl std::fmt::Debug, ConsentStoreError>) -> Refusal {
    match result {
        Err(ConsentStoreError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn new_request(enterprise_id: &str, person_id: &str) -> NewConsentRequest {
    NewConsentRequest {
        enterprise_id: enterprise_id.into(),
        person_id: person_id.into(),
        number: number(ANN),
        scope: Scope::Campaign("winter-offer".into()),
        options: vec![
            SlotOption {
                start: at(60),
                end: at(90),
            },
            SlotOption {
                start: at(24 * 60),
                end: at(24 * 60 + 30),
            },
        ],
        hold_id: Some("hold-7f3a".into()),
        expires_at: at(30),
    }
}

fn sent(id: &str) -> RequestEvent {
    RequestEvent::Sent {
        provider_message_id: id.into(),
    }
}

async fn enterprises_round_trip_and_gate_on_trust(db: TestDb) {
    let store = db.store().await;
    let created = store
        .create_enterprise(&acme(ConsentPolicy::Days(30)), at(0))
        .await
        .unwrap();
    let read = store.enterprise(&created.id).await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(read.services, ["Electricity", "Boiler maintenance"]);
    assert_eq!(read.consent_policy, ConsentPolicy::Days(30));
    assert!(store.enterprise("missing").await.unwrap().is_none());

    let mut bad = acme(ConsentPolicy::PerCall);
    bad.default_region = "France".into();
    assert!(matches!(
        store.create_enterprise(&bad, at(0)).await,
        Err(ConsentStoreError::Number(NumberError::UnknownRegion(_)))
    ));
    let mut bad = acme(ConsentPolicy::PerCall);
    bad.crm_webhook_secret = None;
    assert!(matches!(
        store.create_enterprise(&bad, at(0)).await,
        Err(ConsentStoreError::Invalid {
            field: "crm_webhook_secret",
            ..
        })
    ));
    let mut bad = acme(ConsentPolicy::PerCall);
    bad.crm_webhook_url = Some("crm.acme.example".into());
    assert!(matches!(
        store.create_enterprise(&bad, at(0)).await,
        Err(ConsentStoreError::Invalid {
            field: "crm_webhook_url",
            ..
        })
    ));

    let person = store
        .create_person(&[Identifier::Phone(number(ANN))], at(0))
        .await
        .unwrap();
    store
        .set_subscription(&person.id, &created.id, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
    assert!(store
        .check_can_ask(&created.id, &number(ANN), at(1))
        .await
        .is_ok());

    let suspended = store
        .set_enterprise_status(&created.id, TrustStatus::Suspended, at(2))
        .await
        .unwrap();
    assert_eq!(suspended.status, TrustStatus::Suspended);
    assert_eq!(suspended.updated_at, at(2));
    let r = refusal(store.check_can_ask(&created.id, &number(ANN), at(3)).await);
    assert_eq!(r, Refusal::EnterpriseSuspended);
    assert_eq!(r.code(), "enterprise_suspended");
    let r = refusal(
        store
            .create_consent_request(new_request(&created.id, &person.id), at(3))
            .await,
    );
    assert_eq!(r, Refusal::EnterpriseSuspended);

    store
        .set_enterprise_status(&created.id, TrustStatus::Untrusted, at(4))
        .await
        .unwrap();
    let r = refusal(store.check_can_ask(&created.id, &number(ANN), at(5)).await);
    assert_eq!(r, Refusal::EnterpriseUntrusted);

    assert!(matches!(
        store
            .set_enterprise_status("missing", TrustStatus::Trusted, at(5))
            .await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn enterprises_are_listed_updated_and_deleted_only_without_history(db: TestDb) {
    let store = db.store().await;
    let acme = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    let mut second = acme_named("Beta Telecom");
    second.crm_webhook_url = None;
    let beta = store.create_enterprise(&second, at(1)).await.unwrap();
    let listed = store.enterprises().await.unwrap();
    assert_eq!(listed, [acme.clone(), beta.clone()]);

    // A partial update changes what it names, keeps the rest, and clears
    // the webhook when told to.
    let changes = EnterpriseChanges {
        display_name: Some(" ACME ".into()),
        consent_policy: Some(ConsentPolicy::Hours(4)),
        crm_webhook_url: Some(None),
        ..EnterpriseChanges::default()
    };
    let updated = store
        .update_enterprise(&acme.id, &changes, at(5))
        .await
        .unwrap();
    assert_eq!(updated.display_name, "ACME");
    assert_eq!(updated.consent_policy, ConsentPolicy::Hours(4));
    assert_eq!(updated.crm_webhook_url, None);
    assert_eq!(updated.crm_webhook_secret, acme.crm_webhook_secret);
    assert_eq!(updated.name, acme.name);
    assert_eq!(updated.created_at, acme.created_at);
    assert_eq!(updated.updated_at, at(5));
    assert_eq!(store.enterprise(&acme.id).await.unwrap(), Some(updated));

    // An update is checked as a creation is, and a refused one changes
    // nothing.
    let bad = EnterpriseChanges {
        name: Some("  ".into()),
        status: Some(TrustStatus::Suspended),
        ..EnterpriseChanges::default()
    };
    assert!(matches!(
        store.update_enterprise(&acme.id, &bad, at(6)).await,
        Err(ConsentStoreError::Invalid { field: "name", .. })
    ));
    let bad = EnterpriseChanges {
        default_region: Some("XX".into()),
        ..EnterpriseChanges::default()
    };
    assert!(matches!(
        store.update_enterprise(&acme.id, &bad, at(6)).await,
        Err(ConsentStoreError::Number(_))
    ));
    let stored = store.enterprise(&acme.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TrustStatus::Trusted);
    assert_eq!(stored.updated_at, at(5));
    assert!(matches!(
        store
            .update_enterprise("missing", &EnterpriseChanges::default(), at(6))
            .await,
        Err(ConsentStoreError::NotFound { .. })
    ));

    // Beta never asked anyone: it goes, with its keys and its list.
    store.create_api_key(&beta.id, at(2)).await.unwrap();
    store
        .add_do_not_call(Some(&beta.id), &number(ANN), "test", at(2))
        .await
        .unwrap();
    store.delete_enterprise(&beta.id).await.unwrap();
    assert!(store.enterprise(&beta.id).await.unwrap().is_none());
    assert!(store.api_keys(&beta.id).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_enterprise(&beta.id).await,
        Err(ConsentStoreError::NotFound { .. })
    ));

    // ACME has a subscriber: its history stays, and so does it.
    let person = store
        .create_person(&[Identifier::Phone(number(ANN))], at(7))
        .await
        .unwrap();
    store
        .set_subscription(&person.id, &acme.id, SubscriptionStatus::Active, at(7))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_enterprise(&acme.id).await,
        Err(ConsentStoreError::InUse { .. })
    ));
    assert!(store.enterprise(&acme.id).await.unwrap().is_some());
}

fn acme_named(name: &str) -> NewEnterprise {
    NewEnterprise {
        name: name.into(),
        display_name: name.into(),
        ..acme(ConsentPolicy::PerCall)
    }
}

async fn api_keys_are_stored_as_hashes_verified_and_revocable(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::UntilRevoked), at(0))
        .await
        .unwrap();
    let issued = store.create_api_key(&enterprise.id, at(1)).await.unwrap();
    let other = store.create_api_key(&enterprise.id, at(2)).await.unwrap();

    let keys = store.api_keys(&enterprise.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id, issued.id);
    let secret = issued.key.rsplit('_').next().unwrap();
    assert!(keys[0].hash.starts_with("$argon2"), "{}", keys[0].hash);
    assert!(!keys[0].hash.contains(secret));

    let found = store.verify_api_key(&issued.key).await.unwrap().unwrap();
    assert_eq!(found.id, enterprise.id);
    let wrong = format!("sg_{}_{}", issued.id, "ab".repeat(24));
    assert!(store.verify_api_key(&wrong).await.unwrap().is_none());
    assert!(store.verify_api_key("not a key").await.unwrap().is_none());
    assert!(store
        .verify_api_key("sg_0000000000000000_00")
        .await
        .unwrap()
        .is_none());

    store.revoke_api_key(&issued.id, at(3)).await.unwrap();
    assert!(store.verify_api_key(&issued.key).await.unwrap().is_none());
    // The other key still works, and revoking twice keeps the first time.
    assert!(store.verify_api_key(&other.key).await.unwrap().is_some());
    store.revoke_api_key(&issued.id, at(9)).await.unwrap();
    let keys = store.api_keys(&enterprise.id).await.unwrap();
    assert_eq!(keys[0].revoked_at, Some(at(3)));
    assert_eq!(keys[1].revoked_at, None);

    assert!(matches!(
        store.revoke_api_key("missing", at(4)).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.create_api_key("missing", at(4)).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn numbers_are_normalised_with_the_enterprise_region(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    let region = enterprise.default_region.parse().unwrap();
    let national = Identifier::phone("06 12 34 56 78", Some(region)).unwrap();
    let person = store.create_person(&[national], at(0)).await.unwrap();
    assert_eq!(person.numbers().next().unwrap().as_str(), ANN);

    // The same line written internationally, with 00, or as a tel: URI.
    for spelling in [
        "+33 6 12 34 56 78",
        "0033 6 12 34 56 78",
        "tel:+33612345678",
    ] {
        let id = Identifier::phone(spelling, Some(region)).unwrap();
        let found = store.person_by_identifier(&id).await.unwrap().unwrap();
        assert_eq!(found.id, person.id, "{spelling}");
    }
    // Other countries keep their own code whatever the default region.
    let us = Identifier::phone("+1 (202) 555-0143", Some(region)).unwrap();
    assert_eq!(us, Identifier::Phone(number("+12025550143")));

    assert!(Identifier::phone("06 12 34", Some(region)).is_err());
    assert!(Identifier::phone("call me", Some(region)).is_err());
    assert!(matches!(
        E164::parse("0612345678", None),
        Err(NumberError::Unparsable { .. })
    ));
    assert!(matches!(
        E164::parse("+1 123 456 7890", None),
        Err(NumberError::Invalid(_))
    ));
}

async fn people_are_found_by_every_identifier_kind(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    let identifiers = vec![
        Identifier::Phone(number(ANN)),
        Identifier::Phone(number("+447911123456")),
        Identifier::crm_id(&enterprise.id, "C-00042").unwrap(),
        Identifier::url("https://crm.acme.example/contacts/42").unwrap(),
        Identifier::email("Ann.Lee@Example.com").unwrap(),
    ];
    let person = store.create_person(&identifiers, at(0)).await.unwrap();
    let read = store.person(&person.id).await.unwrap().unwrap();
    assert_eq!(read, person);
    assert_eq!(read.identifiers, identifiers);
    assert_eq!(read.numbers().count(), 2);

    for identifier in &identifiers {
        let found = store.person_by_identifier(identifier).await.unwrap();
        assert_eq!(found.map(|p| p.id), Some(person.id.clone()), "{identifier}");
    }
    // E-mail lookups ignore case; CRM ids belong to one enterprise's CRM.
    let shouted = Identifier::email("ANN.LEE@EXAMPLE.COM").unwrap();
    assert!(store
        .person_by_identifier(&shouted)
        .await
        .unwrap()
        .is_some());
    let other_crm = Identifier::crm_id("another", "C-00042").unwrap();
    assert!(store
        .person_by_identifier(&other_crm)
        .await
        .unwrap()
        .is_none());
    let unknown = Identifier::Phone(number("+33699999999"));
    assert!(store
        .person_by_identifier(&unknown)
        .await
        .unwrap()
        .is_none());
    assert!(store.person("missing").await.unwrap().is_none());

    // Adding a number makes it findable; adding it again changes nothing.
    let extra = Identifier::Phone(number("+12025550143"));
    let updated = store.add_identifier(&person.id, &extra).await.unwrap();
    assert_eq!(updated.identifiers.last(), Some(&extra));
    let again = store.add_identifier(&person.id, &extra).await.unwrap();
    assert_eq!(again, updated);
    let found = store.person_by_identifier(&extra).await.unwrap().unwrap();
    assert_eq!(found.id, person.id);
    assert!(matches!(
        store.add_identifier("missing", &unknown).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn an_identifier_names_one_person_only(db: TestDb) {
    let store = db.store().await;
    let ann = store
        .create_person(&[Identifier::Phone(number(ANN))], at(0))
        .await
        .unwrap();
    let bob_mail = Identifier::email("bob@example.com").unwrap();
    let taken = store
        .create_person(&[bob_mail.clone(), Identifier::Phone(number(ANN))], at(1))
        .await;
    match taken {
        Err(ConsentStoreError::IdentifierTaken { person_id, .. }) => assert_eq!(person_id, ann.id),
        other => panic!("expected IdentifierTaken, got {other:?}"),
    }
    // All or nothing: Bob's e-mail was not left behind.
    assert!(store
        .person_by_identifier(&bob_mail)
        .await
        .unwrap()
        .is_none());

    let bob = store.create_person(&[bob_mail], at(2)).await.unwrap();
    assert!(matches!(
        store
            .add_identifier(&bob.id, &Identifier::Phone(number(ANN)))
            .await,
        Err(ConsentStoreError::IdentifierTaken { .. })
    ));
}

async fn subscriptions_must_be_active_before_anything_is_sent(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    let ann = number(ANN);

    // Unknown number, then a known person without a subscription.
    let r = refusal(store.check_can_ask(&enterprise.id, &ann, at(0)).await);
    assert_eq!(r, Refusal::NotSubscribed);
    let person = store
        .create_person(&[Identifier::Phone(ann.clone())], at(0))
        .await
        .unwrap();
    let r = refusal(store.check_can_ask(&enterprise.id, &ann, at(0)).await);
    assert_eq!(r.code(), "not_subscribed");
    assert!(store
        .subscription(&person.id, &enterprise.id)
        .await
        .unwrap()
        .is_none());

    let active = store
        .set_subscription(
            &person.id,
            &enterprise.id,
            SubscriptionStatus::Active,
            at(1),
        )
        .await
        .unwrap();
    assert_eq!((active.since, active.until), (at(1), None));
    assert_eq!(
        store
            .check_can_ask(&enterprise.id, &ann, at(2))
            .await
            .unwrap()
            .id,
        person.id
    );

    let paused = store
        .set_subscription(
            &person.id,
            &enterprise.id,
            SubscriptionStatus::Paused,
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(paused.since, at(1));
    let r = refusal(store.check_can_ask(&enterprise.id, &ann, at(4)).await);
    assert_eq!(r, Refusal::SubscriptionPaused);
    let r = refusal(
        store
            .create_consent_request(new_request(&enterprise.id, &person.id), at(4))
            .await,
    );
    assert_eq!(r.code(), "subscription_paused");

    let ended = store
        .set_subscription(&person.id, &enterprise.id, SubscriptionStatus::Ended, at(5))
        .await
        .unwrap();
    assert_eq!(ended.until, Some(at(5)));
    assert_eq!(
        store
            .subscription(&person.id, &enterprise.id)
            .await
            .unwrap(),
        Some(ended)
    );
    let r = refusal(store.check_can_ask(&enterprise.id, &ann, at(6)).await);
    assert_eq!(r, Refusal::SubscriptionEnded);

    let renewed = store
        .set_subscription(
            &person.id,
            &enterprise.id,
            SubscriptionStatus::Active,
            at(7),
        )
        .await
        .unwrap();
    assert_eq!((renewed.since, renewed.until), (at(7), None));
    assert!(store
        .check_can_ask(&enterprise.id, &ann, at(8))
        .await
        .is_ok());
}

fn granted(enterprise_id: &str, person_id: &str, expires_at: Option<DateTime<Utc>>) -> NewConsent {
    NewConsent {
        person_id: person_id.into(),
        enterprise_id: enterprise_id.into(),
        number: number(ANN),
        scope: Scope::Purpose("contract renewal".into()),
        status: ConsentStatus::Granted,
        window: None,
        expires_at,
        channel: Channel::Rcs,
        evidence: Evidence {
            provider_message_id: Some("rbm-msg-1".into()),
            raw_reply: Some("Oui, appelez-moi 🙂".into()),
            signature_valid: Some(true),
            replied_at: Some(at(1)),
            received_at: Some(at(1) + TimeDelta::microseconds(1_500)),
        },
    }
}

async fn consents_round_trip_with_their_evidence(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let mut new = granted(&enterprise, &person, Some(at(90)));
    new.window = Some(Window::new(at(60), at(90), "Europe/Paris").unwrap());
    let recorded = store.record_consent(&new, at(2)).await.unwrap();
    let read = store.consent(&recorded.id).await.unwrap().unwrap();
    assert_eq!(read, recorded);
    assert_eq!(
        read.window.as_ref().unwrap().time_zone,
        chrono_tz::Europe::Paris
    );
    assert_eq!(read.evidence, new.evidence);
    assert_eq!(read.status, ConsentStatus::Granted);

    // A declined consent without signature or window keeps its NULLs.
    let mut declined = granted(&enterprise, &person, None);
    declined.status = ConsentStatus::Declined;
    declined.channel = Channel::Api;
    declined.evidence = Evidence::default();
    let recorded = store.record_consent(&declined, at(3)).await.unwrap();
    assert_eq!(
        store.consent(&recorded.id).await.unwrap().unwrap(),
        recorded
    );

    let mut not_theirs = granted(&enterprise, &person, None);
    not_theirs.number = number("+12025550143");
    assert!(matches!(
        store.record_consent(&not_theirs, at(4)).await,
        Err(ConsentStoreError::Invalid {
            field: "number",
            ..
        })
    ));

    let mut revoked = granted(&enterprise, &person, None);
    revoked.status = ConsentStatus::Revoked;
    assert!(matches!(
        store.record_consent(&revoked, at(4)).await,
        Err(ConsentStoreError::Invalid {
            field: "status",
            ..
        })
    ));
    assert!(store.consent("missing").await.unwrap().is_none());
}

async fn only_granted_unexpired_consents_cover_an_instant(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::Hours(2)).await;
    let ann = number(ANN);
    assert!(store
        .consent_covering(&enterprise, &ann, at(1))
        .await
        .unwrap()
        .is_none());

    let policy = store
        .enterprise(&enterprise)
        .await
        .unwrap()
        .unwrap()
        .consent_policy;
    let expires = policy.expires_at(at(0), None);
    assert_eq!(expires, Some(at(120)));
    let consent = store
        .record_consent(&granted(&enterprise, &person, expires), at(0))
        .await
        .unwrap();
    let covering = |t| {
        let store = store.clone();
        let enterprise = enterprise.clone();
        let ann = ann.clone();
        async move {
            store
                .consent_covering(&enterprise, &ann, t)
                .await
                .unwrap()
                .map(|c| c.id)
        }
    };
    assert_eq!(covering(at(1)).await, Some(consent.id.clone()));
    assert_eq!(covering(at(119)).await, Some(consent.id.clone()));
    // Expired is never honoured, even before the sweep marks it.
    assert_eq!(covering(at(120)).await, None);
    assert_eq!(store.expire_consents(at(119)).await.unwrap(), 0);
    assert_eq!(store.expire_consents(at(121)).await.unwrap(), 1);
    let swept = store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(swept.status, ConsentStatus::Expired);
    assert_eq!(covering(at(1)).await, None);

    // A window limits the instants covered; a later decline covers nothing.
    let mut slot = granted(&enterprise, &person, Some(at(300)));
    slot.window = Some(Window::new(at(240), at(270), "America/New_York").unwrap());
    let slot = store.record_consent(&slot, at(130)).await.unwrap();
    assert_eq!(covering(at(239)).await, None);
    assert_eq!(covering(at(240)).await, Some(slot.id.clone()));
    assert_eq!(covering(at(270)).await, None);
    let mut declined = granted(&enterprise, &person, None);
    declined.status = ConsentStatus::Declined;
    store.record_consent(&declined, at(131)).await.unwrap();
    assert_eq!(covering(at(250)).await, Some(slot.id.clone()));
    // Another enterprise's consent does not count.
    let other = store
        .create_enterprise(&acme(ConsentPolicy::UntilRevoked), at(0))
        .await
        .unwrap();
    assert!(store
        .consent_covering(&other.id, &ann, at(250))
        .await
        .unwrap()
        .is_none());
}

async fn revocation_is_immediate_and_adds_do_not_call(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::UntilRevoked).await;
    let ann = number(ANN);
    let consent = store
        .record_consent(&granted(&enterprise, &person, None), at(0))
        .await
        .unwrap();
    assert!(store
        .consent_covering(&enterprise, &ann, at(10_000))
        .await
        .unwrap()
        .is_some());

    let revoked = store.revoke_consent(&consent.id, at(5)).await.unwrap();
    assert_eq!(revoked.status, ConsentStatus::Revoked);
    assert_eq!(revoked.revoked_at, Some(at(5)));
    assert!(store
        .consent_covering(&enterprise, &ann, at(5))
        .await
        .unwrap()
        .is_none());
    let entry = store
        .do_not_call(Some(&enterprise), &ann)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.enterprise_id.as_deref(), Some(enterprise.as_str()));
    assert_eq!(entry.source, "revocation");
    assert_eq!(entry.created_at, at(5));
    assert!(store.do_not_call(None, &ann).await.unwrap().is_none());
    let r = refusal(store.check_can_ask(&enterprise, &ann, at(6)).await);
    assert_eq!(r, Refusal::DoNotCallEnterprise);

    // Revoking again keeps the first revocation.
    let again = store.revoke_consent(&consent.id, at(9)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(5)));
    assert!(matches!(
        store.revoke_consent("missing", at(9)).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn revocation_and_do_not_call_entry_land_together_or_not_at_all(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::UntilRevoked).await;
    let consent = store
        .record_consent(&granted(&enterprise, &person, None), at(0))
        .await
        .unwrap();
    // With the do-not-call insert failing, the revocation must not land.
    db.execute("ALTER TABLE do_not_call RENAME TO do_not_call_away")
        .await;
    assert!(store.revoke_consent(&consent.id, at(5)).await.is_err());
    db.execute("ALTER TABLE do_not_call_away RENAME TO do_not_call")
        .await;
    let unchanged = store.consent(&consent.id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, ConsentStatus::Granted);
    assert!(store
        .consent_covering(&enterprise, &number(ANN), at(6))
        .await
        .unwrap()
        .is_some());
}

async fn consent_requests_walk_the_state_machine(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let request = store
        .create_consent_request(new_request(&enterprise, &person), at(1))
        .await
        .unwrap();
    assert_eq!(request.state, RequestState::Created);
    assert_eq!(request.version, 1);
    let read = store.consent_request(&request.id).await.unwrap().unwrap();
    assert_eq!(read, request);
    assert_eq!(read.options.len(), 2);
    assert_eq!(read.hold_id.as_deref(), Some("hold-7f3a"));

    let (after, transition) = store
        .apply_consent_request_event(&request.id, sent("rbm-1"), at(2))
        .await
        .unwrap();
    assert_eq!(transition, Transition::Applied);
    assert_eq!(after.version, 2);
    assert_eq!(after.provider_message_id.as_deref(), Some("rbm-1"));
    store
        .apply_consent_request_event(&request.id, RequestEvent::Delivered, at(3))
        .await
        .unwrap();
    let slot = request.options[0];
    let (answered, _) = store
        .apply_consent_request_event(
            &request.id,
            RequestEvent::Answered(Answer::Slot(slot)),
            at(4),
        )
        .await
        .unwrap();
    let read = store.consent_request(&request.id).await.unwrap().unwrap();
    assert_eq!(read, answered);
    assert_eq!(read.state, RequestState::Answered(Answer::Slot(slot)));
    assert_eq!(read.version, 4);
    assert_eq!(read.updated_at, at(4));

    // Every kind of answer and the failure reason survive the round trip.
    for (event, state) in [
        (
            RequestEvent::Answered(Answer::Range {
                start: at(600),
                end: at(660),
            }),
            RequestState::Answered(Answer::Range {
                start: at(600),
                end: at(660),
            }),
        ),
        (
            RequestEvent::Answered(Answer::Now),
            RequestState::Answered(Answer::Now),
        ),
        (
            RequestEvent::Answered(Answer::Decline),
            RequestState::Answered(Answer::Decline),
        ),
        (
            RequestEvent::Failed {
                reason: "RCS unreachable, SMS refused".into(),
            },
            RequestState::Failed {
                reason: "RCS unreachable, SMS refused".into(),
            },
        ),
    ] {
        let r = store
            .create_consent_request(new_request(&enterprise, &person), at(1))
            .await
            .unwrap();
        store
            .apply_consent_request_event(&r.id, sent("m"), at(2))
            .await
            .unwrap();
        store
            .apply_consent_request_event(&r.id, event, at(3))
            .await
            .unwrap();
        let read = store.consent_request(&r.id).await.unwrap().unwrap();
        assert_eq!(read.state, state);
    }
    assert!(store.consent_request("missing").await.unwrap().is_none());
    assert!(matches!(
        store
            .apply_consent_request_event("missing", RequestEvent::Delivered, at(3))
            .await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn repeated_events_change_nothing_and_illegal_ones_are_refused(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let request = store
        .create_consent_request(new_request(&enterprise, &person), at(1))
        .await
        .unwrap();

    // Delivered before sent: refused, nothing written.
    assert!(matches!(
        store
            .apply_consent_request_event(&request.id, RequestEvent::Delivered, at(2))
            .await,
        Err(ConsentStoreError::Transition(
            TransitionError::Illegal { .. }
        ))
    ));
    assert_eq!(
        store.consent_request(&request.id).await.unwrap().unwrap(),
        request
    );

    store
        .apply_consent_request_event(&request.id, sent("rbm-1"), at(2))
        .await
        .unwrap();
    let stored = store.consent_request(&request.id).await.unwrap().unwrap();
    let (same, transition) = store
        .apply_consent_request_event(&request.id, sent("rbm-1"), at(3))
        .await
        .unwrap();
    assert_eq!(transition, Transition::Unchanged);
    assert_eq!(same, stored);
    assert_eq!(
        store.consent_request(&request.id).await.unwrap().unwrap(),
        stored
    );

    let decline = RequestEvent::Answered(Answer::Decline);
    store
        .apply_consent_request_event(&request.id, decline.clone(), at(4))
        .await
        .unwrap();
    let answered = store.consent_request(&request.id).await.unwrap().unwrap();
    let (_, transition) = store
        .apply_consent_request_event(&request.id, decline, at(5))
        .await
        .unwrap();
    assert_eq!(transition, Transition::Unchanged);
    // A different answer afterwards is a contradiction, not an update.
    assert!(matches!(
        store
            .apply_consent_request_event(&request.id, RequestEvent::Answered(Answer::Now), at(5))
            .await,
        Err(ConsentStoreError::Transition(
            TransitionError::Illegal { .. }
        ))
    ));
    assert_eq!(
        store.consent_request(&request.id).await.unwrap().unwrap(),
        answered
    );
}

async fn concurrent_writers_of_a_request_conflict(db: TestDb) {
    let store = db.store().await;
    // A second pool stands for a second slotgate node.
    let other_node = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let request = store
        .create_consent_request(new_request(&enterprise, &person), at(1))
        .await
        .unwrap();
    store
        .apply_consent_request_event(&request.id, sent("rbm-1"), at(2))
        .await
        .unwrap();

    // Both nodes read version 2, then each applies a different answer.
    let mut here = store.consent_request(&request.id).await.unwrap().unwrap();
    let mut there = other_node
        .consent_request(&request.id)
        .await
        .unwrap()
        .unwrap();
    here.apply(RequestEvent::Answered(Answer::Now), at(3))
        .unwrap();
    there
        .apply(RequestEvent::Answered(Answer::Decline), at(3))
        .unwrap();
    let saved = store.save_consent_request(&here).await.unwrap();
    assert_eq!(saved.version, 3);
    match other_node.save_consent_request(&there).await {
        Err(ConsentStoreError::Conflict { expected, .. }) => assert_eq!(expected, 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stored = store.consent_request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Answered(Answer::Now));
    assert_eq!(stored, saved);

    // Reloading and re-applying is refused by the state machine instead.
    assert!(matches!(
        other_node
            .apply_consent_request_event(
                &request.id,
                RequestEvent::Answered(Answer::Decline),
                at(4)
            )
            .await,
        Err(ConsentStoreError::Transition(_))
    ));
    let mut ghost = saved.clone();
    ghost.id = "missing".into();
    assert!(matches!(
        store.save_consent_request(&ghost).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

async fn requests_expire_only_after_their_deadline(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let request = store
        .create_consent_request(new_request(&enterprise, &person), at(1))
        .await
        .unwrap();
    store
        .apply_consent_request_event(&request.id, sent("rbm-1"), at(2))
        .await
        .unwrap();
    assert!(matches!(
        store
            .apply_consent_request_event(&request.id, RequestEvent::Expire, at(29))
            .await,
        Err(ConsentStoreError::Transition(
            TransitionError::NotYetExpired { .. }
        ))
    ));
    assert!(matches!(
        store
            .apply_consent_request_event(&request.id, RequestEvent::Answered(Answer::Now), at(30))
            .await,
        Err(ConsentStoreError::Transition(
            TransitionError::TooLate { .. }
        ))
    ));
    let (expired, _) = store
        .apply_consent_request_event(&request.id, RequestEvent::Expire, at(30))
        .await
        .unwrap();
    assert_eq!(expired.state, RequestState::Expired);
    assert_eq!(
        store.consent_request(&request.id).await.unwrap().unwrap(),
        expired
    );

    // An offered slot that is empty is refused when the request is opened.
    let mut bad = new_request(&enterprise, &person);
    bad.options[0].end = bad.options[0].start;
    assert!(matches!(
        store.create_consent_request(bad, at(1)).await,
        Err(ConsentStoreError::Invalid {
            field: "options",
            ..
        })
    ));
}

async fn do_not_call_lists_refuse_contact(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::PerCall).await;
    let ann = number(ANN);
    let other = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    store
        .set_subscription(&person, &other.id, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();

    assert!(store
        .add_do_not_call(Some(&enterprise), &ann, "manual", at(1))
        .await
        .unwrap());
    assert!(!store
        .add_do_not_call(Some(&enterprise), &ann, "manual", at(2))
        .await
        .unwrap());
    let r = refusal(
        store
            .create_consent_request(new_request(&enterprise, &person), at(3))
            .await,
    );
    assert_eq!(r, Refusal::DoNotCallEnterprise);
    // Another enterprise's list does not bar this one.
    assert!(store.check_can_ask(&other.id, &ann, at(3)).await.is_ok());

    assert!(store
        .add_do_not_call(None, &ann, "manual", at(4))
        .await
        .unwrap());
    let r = refusal(store.check_can_ask(&other.id, &ann, at(5)).await);
    assert_eq!(r, Refusal::DoNotCallGlobal);
    assert_eq!(r.code(), "do_not_call_global");
    let entry = store
        .do_not_call(Some(&enterprise), &ann)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.enterprise_id, None);

    // Removing the global entry leaves the enterprise's own in force.
    assert!(store.remove_do_not_call(None, &ann).await.unwrap());
    assert!(!store.remove_do_not_call(None, &ann).await.unwrap());
    assert!(store.check_can_ask(&other.id, &ann, at(6)).await.is_ok());
    let r = refusal(store.check_can_ask(&enterprise, &ann, at(6)).await);
    assert_eq!(r, Refusal::DoNotCallEnterprise);
    assert!(store
        .remove_do_not_call(Some(&enterprise), &ann)
        .await
        .unwrap());
    assert!(store.check_can_ask(&enterprise, &ann, at(7)).await.is_ok());
}

async fn dnc_csv_import_reports_each_row(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::PerCall), at(0))
        .await
        .unwrap();
    store
        .add_do_not_call(
            Some(&enterprise.id),
            &number("+33699999999"),
            "manual",
            at(0),
        )
        .await
        .unwrap();
    let csv = "number,name\n\
               06 12 34 56 78,Ann\n\
               +1 202 555 0143,Bob\n\
               \"+33 6 12 34 56 78\",Ann again\n\
               06 99 99 99 99,Already listed\n\
               12,Too short\n\
               \n\
               07 81 23 45 67,Carl\n";
    let report = store
        .import_do_not_call(Some(&enterprise.id), csv, at(1))
        .await
        .unwrap();
    let accepted: Vec<&str> = report.accepted.iter().map(E164::as_str).collect();
    assert_eq!(accepted, ["+33612345678", "+12025550143", "+33781234567"]);
    let rejected: Vec<(usize, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.code()))
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "duplicate"),
            (5, "already_listed"),
            (6, "invalid_number")
        ]
    );
    assert_eq!(
        report.rejected[0].reason,
        DncRejectionReason::DuplicateInFile { first_line: 2 }
    );
    let text = report.to_string();
    assert!(text.starts_with("3 accepted, 3 rejected"), "{text}");
    for n in &report.accepted {
        let entry = store
            .do_not_call(Some(&enterprise.id), n)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.source, "import");
    }
    assert!(store
        .do_not_call(None, &number(ANN))
        .await
        .unwrap()
        .is_none());

    // Importing the same file again adds nothing.
    let again = store
        .import_do_not_call(Some(&enterprise.id), csv, at(2))
        .await
        .unwrap();
    assert!(again.accepted.is_empty());

    // The global list needs international numbers.
    let global = store
        .import_do_not_call(None, "0612345678\n+442079460018\n", at(3))
        .await
        .unwrap();
    assert_eq!(global.accepted, [number("+442079460018")]);
    assert_eq!(global.rejected[0].reason.code(), "invalid_number");
    assert!(store
        .do_not_call(Some(&enterprise.id), &number("+442079460018"))
        .await
        .unwrap()
        .is_some());

    assert!(matches!(
        store.import_do_not_call(Some("missing"), csv, at(4)).await,
        Err(ConsentStoreError::NotFound { .. })
    ));
}

fn details(key: Option<&str>) -> RequestDetails {
    RequestDetails {
        idempotency_key: key.map(str::to_string),
        body_digest: "d1".into(),
        locale: Some("fr-FR".into()),
        personalisation: r#"{"first_name":"Ann"}"#.into(),
    }
}

async fn api_requests_are_idempotent_per_enterprise_key(db: TestDb) {
    let store = db.store().await;
    store.ping().await.unwrap();
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::Days(1)).await;
    let first = store
        .create_api_consent_request(
            new_request(&enterprise, &person),
            details(Some("k1")),
            at(1),
        )
        .await
        .unwrap();
    let Created::New(first) = first else {
        panic!("the first use of a key creates a request");
    };
    assert_eq!(
        store.request_details(&first.id).await.unwrap(),
        Some(details(Some("k1")))
    );
    // A retry finds the first request, even once the rules would refuse.
    store
        .set_subscription(&person, &enterprise, SubscriptionStatus::Paused, at(2))
        .await
        .unwrap();
    let again = store
        .create_api_consent_request(
            new_request(&enterprise, &person),
            details(Some("k1")),
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(again, Created::Existing(first.clone()));
    let mut other_body = details(Some("k1"));
    other_body.body_digest = "d2".into();
    assert!(matches!(
        store
            .create_api_consent_request(new_request(&enterprise, &person), other_body, at(3))
            .await,
        Err(ConsentStoreError::Invalid {
            field: "Idempotency-Key",
            ..
        })
    ));
    // A new key is a new question, and is refused now; nothing is stored.
    assert_eq!(
        refusal(
            store
                .create_api_consent_request(
                    new_request(&enterprise, &person),
                    details(Some("k2")),
                    at(3)
                )
                .await
        ),
        Refusal::SubscriptionPaused
    );
    store
        .set_subscription(&person, &enterprise, SubscriptionStatus::Active, at(4))
        .await
        .unwrap();
    // Without a key every call is a new request.
    for _ in 0..2 {
        let created = store
            .create_api_consent_request(new_request(&enterprise, &person), details(None), at(5))
            .await
            .unwrap();
        assert!(matches!(created, Created::New(_)));
    }

    // Consents for a number, newest first, whatever their status.
    let older = store
        .record_consent(&granted(&enterprise, &person, None), at(1))
        .await
        .unwrap();
    let newer = store
        .record_consent(&granted(&enterprise, &person, None), at(2))
        .await
        .unwrap();
    store.revoke_consent(&older.id, at(3)).await.unwrap();
    let listed = store
        .consents_for_number(&enterprise, &number(ANN))
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [newer.id.as_str(), older.id.as_str()]);
    assert_eq!(listed[1].status, ConsentStatus::Revoked);
    assert!(store
        .consents_for_number("someone-else", &number(ANN))
        .await
        .unwrap()
        .is_empty());
}

/// Events of the enterprise, oldest first, as (person, request id).
async fn request_events(store: &Store, enterprise: &str) -> Vec<(String, String)> {
    let filter = OutboxFilter {
        state: None,
        enterprise_id: Some(enterprise.into()),
        limit: 10_000,
    };
    store
        .webhook_events(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            (
                e.person_id,
                body["data"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Many attempts with one key at once, as from a CRM that retries without
/// waiting: one request is made, the attempts with its body are answered
/// with it, those with another body are refused, and one event is queued.
async fn one_idempotency_key_sent_at_once_makes_one_request(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::Days(1)).await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..16 {
        let mut details = details(Some("same"));
        if i % 5 == 4 {
            details.body_digest = "d2".into();
        }
        let (store, new) = (store.clone(), new_request(&enterprise, &person));
        attempts.spawn(async move {
            let digest = details.body_digest.clone();
            (
                digest,
                store.create_api_consent_request(new, details, at(1)).await,
            )
        });
    }
    let (mut new, mut replayed, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for (digest, outcome) in attempts.join_all().await {
        match outcome {
            Ok(Created::New(r)) => new.push((digest, r)),
            Ok(Created::Existing(r)) => replayed.push((digest, r)),
            Err(ConsentStoreError::Invalid {
                field: "Idempotency-Key",
                ..
            }) => refused.push(digest),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(new.len(), 1);
    let (winner_digest, winner) = &new[0];
    for (digest, r) in &replayed {
        assert_eq!(digest, winner_digest);
        assert_eq!(r, winner);
    }
    assert!(refused.iter().all(|digest| digest != winner_digest));
    assert_eq!(replayed.len() + refused.len(), 15);
    assert_eq!(
        request_events(&store, &enterprise).await,
        [(person.clone(), winner.id.clone())]
    );
}

/// A creation the database refuses while others are written at the same
/// time (on SQLite, in the same transaction) fails alone.
async fn a_creation_the_database_refuses_fails_alone(db: TestDb) {
    let store = db.store().await;
    let (enterprise, person) = enterprise_and_subscriber(&store, ConsentPolicy::Days(1)).await;
    if db.url.starts_with("sqlite") {
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON api_consent_requests \
             WHEN NEW.idempotency_key = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned key'); END",
        )
        .await;
    } else {
        db.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.idempotency_key = 'poison' THEN RAISE EXCEPTION 'poisoned key'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER poison BEFORE INSERT ON api_consent_requests \
             FOR EACH ROW EXECUTE FUNCTION poison()",
        )
        .await;
    }
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..12 {
        let key = if i == 6 {
            "poison".to_string()
        } else {
            format!("k{i}")
        };
        let (store, new) = (store.clone(), new_request(&enterprise, &person));
        attempts.spawn(async move {
            let outcome = store
                .create_api_consent_request(new, details(Some(&key)), at(1))
                .await;
            (key, outcome)
        });
    }
    let mut created = Vec::new();
    for (key, outcome) in attempts.join_all().await {
        match outcome {
            Ok(Created::New(r)) if key != "poison" => created.push(r.id),
            Err(ConsentStoreError::Store(_)) if key == "poison" => {}
            other => panic!("{key}: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(created.len(), 11);
    for id in &created {
        assert!(store.consent_request(id).await.unwrap().is_some());
    }
    let mut in_outbox: Vec<String> = request_events(&store, &enterprise)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    in_outbox.sort();
    created.sort();
    assert_eq!(in_outbox, created);
}

/// People whose requests are made at the same time (on SQLite, written in
/// shared transactions) each see their events in the order of their own
/// requests: the deliverer sends a person's events in outbox order.
async fn each_persons_events_keep_the_order_of_their_requests(db: TestDb) {
    let store = db.store().await;
    let enterprise = store
        .create_enterprise(&acme(ConsentPolicy::Days(1)), at(0))
        .await
        .unwrap();
    let mut chains = tokio::task::JoinSet::new();
    for p in 0..6 {
        let phone = number(&format!("+3361234560{p}"));
        let person = store
            .create_person(&[Identifier::Phone(phone.clone())], at(0))
            .await
            .unwrap();
        store
            .set_subscription(
                &person.id,
                &enterprise.id,
                SubscriptionStatus::Active,
                at(0),
            )
            .await
            .unwrap();
        let (store, enterprise) = (store.clone(), enterprise.id.clone());
        chains.spawn(async move {
            let mut made = Vec::new();
            for i in 0..8 {
                let new = NewConsentRequest {
                    number: phone.clone(),
                    ..new_request(&enterprise, &person.id)
                };
                let key = format!("{}-{i}", person.id);
                let created = store
                    .create_api_consent_request(new, details(Some(&key)), at(1 + i))
                    .await
                    .unwrap();
                made.push((person.id.clone(), created.request().id.clone()));
            }
            made
        });
    }
    let chains = chains.join_all().await;
    let events = request_events(&store, &enterprise.id).await;
    assert_eq!(events.len(), 6 * 8);
    for chain in chains {
        let person = &chain[0].0;
        let theirs: Vec<(String, String)> = events
            .iter()
            .filter(|(p, _)| p == person)
            .cloned()
            .collect();
        assert_eq!(theirs, chain);
    }
}
