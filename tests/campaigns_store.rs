//! Campaigns and call outcomes in the store: what an enterprise configures
//! round-trips, every write is validated and versioned, one enterprise
//! never sees another's campaigns, outcomes are counted inside their
//! windows (and rebuild the abandon ledger), and the statistics add up
//! from seeded callbacks, attempts and outcomes. Every test runs on both
//! engines; PostgreSQL is required.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use slotgate::consent::{
    ConsentPolicy, Identifier, NewConsentRequest, NewEnterprise, Scope, SlotOption,
    SubscriptionStatus, TrustStatus, E164,
};
use slotgate::pacing::{
    AbandonWindow, CallOutcome, CampaignSettings, DialMode, Outcome, Pass, PassChannel, Strategy,
};
use slotgate::store::campaigns::{
    AgentPresence, CampaignAgent, CampaignAgents, CampaignSpec, CampaignState, MachineAction,
    MachinePolicy,
};
use slotgate::store::holds::NewHold;
use slotgate::store::{CampaignStoreError, Store};
#[macro_use]
mod common;

use common::engines::{on_postgres, on_sqlite, TestDb};

on_both_engines!(
    a_campaign_round_trips_and_each_write_bumps_its_version,
    stale_versions_and_taken_ids_are_refused,
    invalid_configuration_is_refused_naming_the_field,
    enterprises_never_see_each_others_campaigns,
    a_campaign_with_open_callbacks_cannot_be_deleted,
    outcomes_are_counted_inside_their_window_only,
    the_abandon_ledger_is_rebuilt_from_recorded_outcomes,
    stats_add_up_from_callbacks_attempts_and_outcomes,
);

const ANN: &str = "+33612345678";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
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
                consent_policy: ConsentPolicy::Days(30),
                status: TrustStatus::Trusted,
            },
            at(0),
        )
        .await
        .unwrap()
        .id
}

fn spec() -> CampaignSpec {
    CampaignSpec {
        settings: CampaignSettings {
            mode: DialMode::Predictive,
            agents_target: 12,
            ..CampaignSettings::default()
        },
        agent_target: Some("sip:queue-7@pbx.example.com".into()),
        abandon_message: Some("sorry.wav".into()),
        machine_policy: MachinePolicy {
            action: MachineAction::LeaveMessage,
            message: Some("offers/winter.wav".into()),
        },
        state: CampaignState::Active,
    }
}

fn two_passes() -> Strategy {
    Strategy {
        passes: vec![
            Pass {
                channel: PassChannel::Voice,
                enter_on: vec![],
                delay_secs: 0,
                max_attempts: 2,
                retry_delay_secs: 300,
            },
            Pass {
                channel: PassChannel::Prompt,
                enter_on: vec![Outcome::NoAnswer, Outcome::Machine],
                delay_secs: 3600,
                max_attempts: 1,
                retry_delay_secs: 0,
            },
        ],
    }
}

fn field_of<T: std::fmt::Debug>(result: Result<T, CampaignStoreError>) -> String {
    match result {
        Err(CampaignStoreError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

async fn a_campaign_round_trips_and_each_write_bumps_its_version(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let created = store
        .create_campaign(&e, "winter-offer", &spec(), None, at(1))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.strategy, None);
    assert_eq!(created.strategy(), Strategy::default());
    assert_eq!(
        created.agent_leg_target("sip:4001@pbx"),
        "sip:queue-7@pbx.example.com"
    );
    let read = store.campaign(&e, "winter-offer").await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(
        store.campaign_for(&e, "winter-offer").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.campaigns(&e).await.unwrap(), vec![created.clone()]);

    let mut changed = spec();
    changed.settings.agents_target = 20;
    changed.agent_target = None;
    changed.machine_policy = MachinePolicy::default();
    changed.state = CampaignState::Paused;
    let updated = store
        .update_campaign(&e, "winter-offer", &changed, Some(1), at(2))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.settings.agents_target, 20);
    assert_eq!(updated.agent_leg_target("sip:4001@pbx"), "sip:4001@pbx");
    assert_eq!(updated.state, CampaignState::Paused);
    assert_eq!((updated.created_at, updated.updated_at), (at(1), at(2)));

    let with_strategy = store
        .set_campaign_strategy(&e, "winter-offer", Some(&two_passes()), at(3))
        .await
        .unwrap();
    assert_eq!(with_strategy.version, 3);
    assert_eq!(with_strategy.strategy, Some(two_passes()));

    let agents = CampaignAgents {
        available: 2,
        agents: vec![CampaignAgent {
            id: "ann".into(),
            target: "sip:ann@pbx.example.com".into(),
            state: AgentPresence::WrapUp,
        }],
    };
    let staffed = store
        .set_campaign_agents(&e, "winter-offer", &agents, at(4))
        .await
        .unwrap();
    assert_eq!(staffed.version, 3, "agent reports are not configuration");
    assert_eq!(staffed.agents, agents);
    assert_eq!(staffed.agents_updated_at, Some(at(4)));
    assert_eq!(
        store.campaign(&e, "winter-offer").await.unwrap(),
        Some(staffed)
    );

    store.delete_campaign(&e, "winter-offer").await.unwrap();
    assert_eq!(store.campaign(&e, "winter-offer").await.unwrap(), None);
    assert!(matches!(
        store.delete_campaign(&e, "winter-offer").await,
        Err(CampaignStoreError::NotFound { .. })
    ));
}

async fn stale_versions_and_taken_ids_are_refused(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    store
        .create_campaign(&e, "c1", &spec(), None, at(1))
        .await
        .unwrap();
    assert!(matches!(
        store.create_campaign(&e, "c1", &spec(), None, at(2)).await,
        Err(CampaignStoreError::Exists { .. })
    ));
    store
        .update_campaign(&e, "c1", &spec(), Some(1), at(2))
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_campaign(&e, "c1", &spec(), Some(1), at(3))
            .await,
        Err(CampaignStoreError::Conflict { expected: 1, .. })
    ));
    // Without a version the write is last-writer-wins.
    let v3 = store
        .update_campaign(&e, "c1", &spec(), None, at(3))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert!(matches!(
        store
            .update_campaign(&e, "missing", &spec(), Some(1), at(3))
            .await,
        Err(CampaignStoreError::NotFound { .. })
    ));
}

async fn invalid_configuration_is_refused_naming_the_field(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let mut bad = spec();
    bad.settings.limits.trunk_channels = 0;
    assert_eq!(
        field_of(store.create_campaign(&e, "c1", &bad, None, at(1)).await),
        "settings.limits.trunk_channels"
    );
    assert_eq!(
        field_of(
            store
                .create_campaign(&e, "no way", &spec(), None, at(1))
                .await
        ),
        "id"
    );
    let mut strategy = two_passes();
    strategy.passes[0].max_attempts = 0;
    assert_eq!(
        field_of(
            store
                .create_campaign(&e, "c1", &spec(), Some(&strategy), at(1))
                .await
        ),
        "strategy.passes[0].max_attempts"
    );
    assert!(
        store.campaigns(&e).await.unwrap().is_empty(),
        "nothing stored"
    );

    store
        .create_campaign(&e, "c1", &spec(), None, at(1))
        .await
        .unwrap();
    let mut bad = spec();
    bad.settings.mode = DialMode::Progressive;
    bad.settings.agents_target = 0;
    assert_eq!(
        field_of(store.update_campaign(&e, "c1", &bad, None, at(2)).await),
        "settings.agents_target"
    );
    let mut strategy = two_passes();
    strategy.passes[1].enter_on.clear();
    assert_eq!(
        field_of(
            store
                .set_campaign_strategy(&e, "c1", Some(&strategy), at(2))
                .await
        ),
        "passes[1].enter_on"
    );
    let agents = CampaignAgents {
        available: 1,
        agents: vec![CampaignAgent {
            id: "ann".into(),
            target: "tel:+33612345678".into(),
            state: AgentPresence::Available,
        }],
    };
    assert_eq!(
        field_of(store.set_campaign_agents(&e, "c1", &agents, at(2)).await),
        "agents[0].target"
    );
    assert_eq!(
        store.campaign(&e, "c1").await.unwrap().unwrap().version,
        1,
        "refused writes change nothing"
    );
}

async fn enterprises_never_see_each_others_campaigns(db: TestDb) {
    let store = db.store().await;
    let acme = enterprise(&store, "ACME").await;
    let other = enterprise(&store, "Other").await;
    store
        .create_campaign(&acme, "shared-name", &spec(), None, at(1))
        .await
        .unwrap();
    assert_eq!(store.campaign(&other, "shared-name").await.unwrap(), None);
    assert!(store.campaigns(&other).await.unwrap().is_empty());
    assert!(matches!(
        store
            .update_campaign(&other, "shared-name", &spec(), None, at(2))
            .await,
        Err(CampaignStoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .set_campaign_agents(&other, "shared-name", &CampaignAgents::default(), at(2))
            .await,
        Err(CampaignStoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_campaign(&other, "shared-name").await,
        Err(CampaignStoreError::NotFound { .. })
    ));
    // The same name is free in another enterprise.
    let mut paused = spec();
    paused.state = CampaignState::Paused;
    store
        .create_campaign(&other, "shared-name", &paused, None, at(2))
        .await
        .unwrap();
    store
        .create_campaign(&other, "second", &spec(), None, at(2))
        .await
        .unwrap();
    let active: Vec<(String, String)> = store
        .active_campaigns()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.enterprise_id, c.id))
        .collect();
    let mut expected = vec![
        (acme.clone(), "shared-name".to_string()),
        (other.clone(), "second".to_string()),
    ];
    expected.sort();
    assert_eq!(active, expected);
    assert_eq!(
        store
            .campaign(&acme, "shared-name")
            .await
            .unwrap()
            .unwrap()
            .state,
        CampaignState::Active
    );
}

/// A person subscribed to `e`.
async fn subscriber(store: &Store, e: &str) -> String {
    let number = Identifier::Phone(E164::parse(ANN, None).unwrap());
    let person = match store.person_by_identifier(&number).await.unwrap() {
        Some(p) => p.id,
        None => store.create_person(&[number], at(0)).await.unwrap().id,
    };
    store
        .set_subscription(&person, e, SubscriptionStatus::Active, at(0))
        .await
        .unwrap();
    person
}

/// A pending callback of `campaign` whose slot starts at `start`,
/// written behind a real hold and request as an answer would write it.
async fn callback(
    store: &Store,
    db: &TestDb,
    (e, person): (&str, &str),
    campaign: &str,
    name: &str,
    start: DateTime<Utc>,
) -> String {
    let hold_id = format!("hold-{name}");
    let new = NewConsentRequest {
        enterprise_id: e.to_string(),
        person_id: person.to_string(),
        number: E164::parse(ANN, None).unwrap(),
        scope: Scope::Campaign(campaign.into()),
        options: vec![SlotOption {
            start: at(600),
            end: at(630),
        }],
        hold_id: Some(hold_id.clone()),
        expires_at: at(1) + TimeDelta::days(1),
    };
    let hold = NewHold {
        id: hold_id.clone(),
        campaign: campaign.into(),
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

async fn a_campaign_with_open_callbacks_cannot_be_deleted(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let person = subscriber(&store, &e).await;
    store
        .create_campaign(&e, "winter-offer", &spec(), None, at(1))
        .await
        .unwrap();
    let cb = callback(&store, &db, (&e, &person), "winter-offer", "one", at(5)).await;
    match store.delete_campaign(&e, "winter-offer").await {
        Err(CampaignStoreError::InUse { open: 1, .. }) => {}
        other => panic!("expected InUse, got {other:?}"),
    }
    db.execute(&format!(
        "UPDATE scheduled_callbacks SET status = 'unknown' WHERE id = '{cb}'"
    ))
    .await;
    assert!(matches!(
        store.delete_campaign(&e, "winter-offer").await,
        Err(CampaignStoreError::InUse { .. })
    ));
    db.execute(&format!(
        "UPDATE scheduled_callbacks SET status = 'done' WHERE id = '{cb}'"
    ))
    .await;
    store.delete_campaign(&e, "winter-offer").await.unwrap();
}

async fn outcomes_are_counted_inside_their_window_only(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let day = 24 * 60;
    for (outcome, minute) in [
        (CallOutcome::Answered, -40 * day), // outside even the US window
        (CallOutcome::Abandoned, -29 * day),
        (CallOutcome::Answered, -2 * day),
        (CallOutcome::Answered, -10),
        (CallOutcome::Abandoned, -5),
        (CallOutcome::Busy, -5),
        (CallOutcome::NoAnswer, -4),
        (CallOutcome::Machine, -3),
        (CallOutcome::AgentUnavailable, -2),
        (CallOutcome::Dropped, -1),
        (CallOutcome::Failed, 0),
    ] {
        assert!(store
            .record_call_outcome(&e, "c1", None, outcome, at(minute))
            .await
            .unwrap());
    }
    // Another campaign and another enterprise do not count.
    store
        .record_call_outcome(&e, "c2", None, CallOutcome::Answered, at(0))
        .await
        .unwrap();
    let other = enterprise(&store, "Other").await;
    store
        .record_call_outcome(&other, "c1", None, CallOutcome::Answered, at(0))
        .await
        .unwrap();

    let day_counts = store.outcome_counts(&e, "c1", at(-24 * 60)).await.unwrap();
    assert_eq!(day_counts.answered, 1);
    assert_eq!(day_counts.abandoned, 1);
    for outcome in [
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Machine,
        CallOutcome::AgentUnavailable,
        CallOutcome::Dropped,
        CallOutcome::Failed,
    ] {
        assert_eq!(day_counts.get(outcome), 1, "{outcome}");
    }
    assert_eq!(day_counts.abandon_percent(), 50.0);
    let month = store.outcome_counts(&e, "c1", at(-30 * day)).await.unwrap();
    assert_eq!((month.answered, month.abandoned), (2, 2));
    assert_eq!(month.total(), 10);

    // One outcome per attempt: a retried write changes nothing.
    assert!(store
        .record_call_outcome(&e, "c1", Some("att-1"), CallOutcome::Answered, at(1))
        .await
        .unwrap());
    assert!(!store
        .record_call_outcome(&e, "c1", Some("att-1"), CallOutcome::Answered, at(1))
        .await
        .unwrap());
    assert_eq!(
        store
            .outcome_counts(&e, "c1", at(1))
            .await
            .unwrap()
            .answered,
        1
    );
}

async fn the_abandon_ledger_is_rebuilt_from_recorded_outcomes(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let now = at(0);
    let hour = 60;
    for (outcome, minute) in [
        (CallOutcome::Answered, -31 * 24 * hour), // gone from both windows
        (CallOutcome::Abandoned, -20 * 24 * hour), // US window only
        (CallOutcome::Answered, -20 * 24 * hour),
        (CallOutcome::Answered, -2 * hour),
        (CallOutcome::Answered, -90),
        (CallOutcome::Abandoned, -1),
        (CallOutcome::NoAnswer, -1), // not a person answer
        (CallOutcome::Machine, -1),
    ] {
        store
            .record_call_outcome(&e, "c1", None, outcome, at(minute))
            .await
            .unwrap();
    }
    let mut us = store
        .abandon_ledger(&e, "c1", AbandonWindow::Us30Days, now)
        .await
        .unwrap();
    let counts = us.counts(now);
    assert_eq!((counts.answered, counts.abandoned), (5, 2));
    let mut uk = store
        .abandon_ledger(&e, "c1", AbandonWindow::Uk24Hours, now)
        .await
        .unwrap();
    let counts = uk.counts(now);
    assert_eq!((counts.answered, counts.abandoned), (3, 1));
    // The seeded calls leave the window as time goes on, like live ones.
    let counts = uk.counts(now + TimeDelta::hours(23));
    assert_eq!((counts.answered, counts.abandoned), (1, 1));
    let counts = uk.counts(now + TimeDelta::hours(25));
    assert_eq!((counts.answered, counts.abandoned), (0, 0));
}

async fn stats_add_up_from_callbacks_attempts_and_outcomes(db: TestDb) {
    let store = db.store().await;
    let e = enterprise(&store, "ACME").await;
    let person = subscriber(&store, &e).await;
    let mut uk = spec();
    uk.settings.abandon.window = AbandonWindow::Uk24Hours;
    store
        .create_campaign(&e, "c1", &uk, None, at(0))
        .await
        .unwrap();
    let who = (e.as_str(), person.as_str());
    // Two due now, one later, one stuck unknown, one of another campaign.
    let first = callback(&store, &db, who, "c1", "a", at(5)).await;
    callback(&store, &db, who, "c1", "b", at(6)).await;
    callback(&store, &db, who, "c1", "c", at(60)).await;
    let stuck = callback(&store, &db, who, "c1", "d", at(7)).await;
    callback(&store, &db, who, "c2", "e", at(5)).await;
    db.execute(&format!(
        "UPDATE scheduled_callbacks SET status = 'unknown' WHERE id = '{stuck}'"
    ))
    .await;
    // One of the due ones is being dialled.
    let claimed = store
        .claim_due_callbacks("node-a", at(10), TimeDelta::minutes(5), 1)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, first);
    store.begin_attempt(&first, "node-a", at(10)).await.unwrap();
    store
        .set_campaign_agents(
            &e,
            "c1",
            &CampaignAgents {
                available: 4,
                agents: vec![],
            },
            at(10),
        )
        .await
        .unwrap();
    for (outcome, minute) in [
        (CallOutcome::Answered, -2 * 24 * 60), // outside the UK window
        (CallOutcome::Answered, 1),
        (CallOutcome::Answered, 2),
        (CallOutcome::Answered, 3),
        (CallOutcome::Abandoned, 4),
        (CallOutcome::NoAnswer, 4),
        (CallOutcome::Busy, 4),
        (CallOutcome::Machine, 4),
        (CallOutcome::Failed, 4),
    ] {
        store
            .record_call_outcome(&e, "c1", None, outcome, at(minute))
            .await
            .unwrap();
    }
    let record = store.campaign(&e, "c1").await.unwrap().unwrap();
    let stats = store
        .campaign_stats(&record, at(10) + TimeDelta::seconds(30))
        .await
        .unwrap();
    assert_eq!(stats.due_slots, 1, "b is due; a is claimed, c is later");
    assert_eq!(stats.pending_slots, 2);
    assert_eq!(stats.dial_rate_per_min, 1);
    assert_eq!(stats.in_flight, 1);
    assert_eq!(stats.unknown, 1);
    assert_eq!(stats.agents, 4);
    assert_eq!((stats.answered, stats.abandoned), (3, 1));
    assert_eq!(stats.abandon_percent, 25.0);
    assert_eq!(stats.answer_percent, 3.0 / 8.0 * 100.0);

    // A minute later the attempt no longer counts toward the dial rate.
    let later = store
        .campaign_stats(&record, at(11) + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(later.dial_rate_per_min, 0);
    assert_eq!(later.in_flight, 1);
}
