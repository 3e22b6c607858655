//! The pacer's decisions, one rule at a time: limits, back-off, hours,
//! preview, agentless, abandons.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::campaign::{CampaignSettings, DialMode};
use super::*;
use crate::consent::{Refusal, ZoneGuess};

/// 14:00 UTC: inside 08:00–21:00 in London and Paris, 10:00 in New York.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 14, 0, 0).unwrap()
}

fn settings(mode: DialMode) -> CampaignSettings {
    CampaignSettings {
        mode,
        agents_target: if mode.uses_agents() { 10 } else { 0 },
        ..CampaignSettings::default()
    }
}

fn pacer(settings: CampaignSettings) -> Pacer {
    Pacer::new(settings.validate().unwrap())
}

fn contact(n: usize, zone: Tz) -> Contact {
    Contact {
        id: ContactId(format!("c{n}")),
        zone: ZoneGuess::Exact(zone),
        region: None,
    }
}

fn offer_many(pacer: &mut Pacer, count: usize) {
    for n in 0..count {
        pacer.offer(contact(n, chrono_tz::Europe::London));
    }
}

fn agents_available(pacer: &mut Pacer, now: DateTime<Utc>, count: u64) {
    for id in 0..count {
        pacer.agent_changed(now, AgentId(id), AgentState::Available);
    }
}

/// Drives the pacer for `span` in steps of `step`, placing every call it
/// asks for; returns each dial with its instant.
fn dial_for(
    pacer: &mut Pacer,
    start: DateTime<Utc>,
    span: TimeDelta,
    step: TimeDelta,
) -> Vec<(DateTime<Utc>, Dial)> {
    let mut dials = Vec::new();
    let mut now = start;
    while now < start + span {
        pacer.handle_timeout(now);
        while let Some(dial) = pacer.poll_dial(now) {
            dials.push((now, dial));
        }
        now += step;
    }
    dials
}

fn events(pacer: &mut Pacer) -> Vec<PacerEvent> {
    std::iter::from_fn(|| pacer.poll_event()).collect()
}

#[test]
fn never_more_calls_up_than_the_trunk_or_the_campaign_allows() {
    for (channels, concurrency) in [(4, 10), (10, 3)] {
        let mut s = settings(DialMode::Agentless);
        s.limits.trunk_channels = channels;
        s.limits.max_concurrent_calls = concurrency;
        s.limits.calls_per_second = 100.0;
        let mut pacer = pacer(s);
        offer_many(&mut pacer, 50);
        let dials = dial_for(
            &mut pacer,
            noon(),
            TimeDelta::seconds(5),
            TimeDelta::milliseconds(10),
        );
        let limit = channels.min(concurrency) as usize;
        assert_eq!(dials.len(), limit);
        assert_eq!(pacer.calls_in_progress(), limit);
        // A channel freed lets exactly one more call through.
        let first = dials[0].1.call;
        let later = noon() + TimeDelta::seconds(6);
        pacer
            .call_progress(later, first, CallProgress::Busy)
            .unwrap();
        assert!(pacer.poll_dial(later).is_some());
        assert!(pacer.poll_dial(later + TimeDelta::seconds(1)).is_none());
    }
}

#[test]
fn calls_per_second_is_respected_in_every_second() {
    let mut s = settings(DialMode::Agentless);
    s.limits.calls_per_second = 3.0;
    s.limits.trunk_channels = 500;
    s.limits.max_concurrent_calls = 500;
    let mut pacer = pacer(s);
    offer_many(&mut pacer, 200);
    let dials = dial_for(
        &mut pacer,
        noon(),
        TimeDelta::seconds(20),
        TimeDelta::milliseconds(7),
    );
    assert!(dials.len() >= 55, "{}", dials.len());
    for (i, (at, _)) in dials.iter().enumerate() {
        let in_next_second = dials[i..]
            .iter()
            .take_while(|(t, _)| *t < *at + TimeDelta::seconds(1))
            .count();
        assert!(
            in_next_second <= 3,
            "{in_next_second} calls within a second of {at}"
        );
    }
}

#[test]
fn a_trunk_backoff_pauses_dialling_until_it_ends() {
    let mut pacer = pacer(settings(DialMode::Agentless));
    offer_many(&mut pacer, 10);
    let now = noon();
    pacer.trunk_backoff(now, Some(TimeDelta::seconds(30)));
    let during = dial_for(
        &mut pacer,
        now,
        TimeDelta::seconds(30),
        TimeDelta::milliseconds(250),
    );
    assert!(during.is_empty());
    assert_eq!(pacer.poll_timeout(), Some(now + TimeDelta::seconds(30)));
    assert!(pacer.poll_dial(now + TimeDelta::seconds(30)).is_some());
    // Without Retry-After, the default pause; a shorter later back-off
    // does not cut a longer one short.
    let later = now + TimeDelta::seconds(40);
    pacer.trunk_backoff(later, None);
    pacer.trunk_backoff(later, Some(TimeDelta::seconds(1)));
    assert!(pacer.poll_dial(later + TimeDelta::seconds(2)).is_none());
    assert!(pacer.poll_dial(later + DEFAULT_TRUNK_BACKOFF).is_some());
}

#[test]
fn agentless_dials_without_any_agent_and_never_abandons() {
    let mut pacer = pacer(settings(DialMode::Agentless));
    offer_many(&mut pacer, 3);
    let now = noon();
    let dials = dial_for(
        &mut pacer,
        now,
        TimeDelta::seconds(2),
        TimeDelta::milliseconds(100),
    );
    assert_eq!(dials.len(), 3);
    let call = dials[0].1.call;
    let answered = now + TimeDelta::seconds(5);
    pacer
        .call_progress(answered, call, CallProgress::AnsweredByPerson)
        .unwrap();
    pacer.handle_timeout(answered + TimeDelta::seconds(10));
    assert!(events(&mut pacer)
        .iter()
        .all(|e| !matches!(e, PacerEvent::Abandon { .. })));
    assert_eq!(pacer.stats().abandoned, 0);
}

#[test]
fn progressive_places_one_call_per_free_agent() {
    let mut pacer = pacer(settings(DialMode::Progressive));
    offer_many(&mut pacer, 20);
    let now = noon();
    assert!(pacer.poll_dial(now).is_none(), "no agent, no call");
    agents_available(&mut pacer, now, 3);
    let dials = dial_for(
        &mut pacer,
        now,
        TimeDelta::seconds(5),
        TimeDelta::milliseconds(100),
    );
    assert_eq!(dials.len(), 3);
    // One answers and reaches an agent: that agent is busy, the other two
    // remain promised to the calls still ringing.
    let t = now + TimeDelta::seconds(8);
    pacer
        .call_progress(t, dials[0].1.call, CallProgress::AnsweredByPerson)
        .unwrap();
    pacer.agent_changed(t, AgentId(0), AgentState::Busy);
    pacer
        .call_progress(
            t,
            dials[0].1.call,
            CallProgress::ConnectedToAgent { agent: AgentId(0) },
        )
        .unwrap();
    assert!(pacer.poll_dial(t).is_none());
    // One goes unanswered: its agent is free for the next contact.
    pacer
        .call_progress(t, dials[1].1.call, CallProgress::NoAnswer)
        .unwrap();
    assert!(pacer.poll_dial(t).is_some());
    assert!(pacer.poll_dial(t + TimeDelta::seconds(1)).is_none());
}

#[test]
fn predictive_starts_progressive_until_it_has_history() {
    let mut pacer = pacer(settings(DialMode::Predictive));
    offer_many(&mut pacer, 50);
    let now = noon();
    agents_available(&mut pacer, now, 4);
    let dials = dial_for(
        &mut pacer,
        now,
        TimeDelta::seconds(5),
        TimeDelta::milliseconds(100),
    );
    assert_eq!(dials.len(), 4);
}

#[test]
fn an_answered_person_without_an_agent_is_abandoned_after_two_seconds() {
    let mut pacer = pacer(settings(DialMode::Progressive));
    offer_many(&mut pacer, 5);
    let now = noon();
    agents_available(&mut pacer, now, 1);
    let dial = pacer.poll_dial(now).unwrap();
    // The agent leaves while the call rings.
    pacer.agent_changed(now, AgentId(0), AgentState::Away);
    let answered = now + TimeDelta::seconds(6);
    pacer
        .call_progress(answered, dial.call, CallProgress::AnsweredByPerson)
        .unwrap();
    assert_eq!(pacer.poll_timeout(), Some(answered + TimeDelta::seconds(2)));
    pacer.handle_timeout(answered + TimeDelta::milliseconds(1_999));
    assert!(events(&mut pacer).is_empty());
    pacer.handle_timeout(answered + TimeDelta::seconds(2));
    assert_eq!(
        events(&mut pacer),
        vec![PacerEvent::Abandon {
            call: dial.call,
            contact: ContactId("c0".into())
        }]
    );
    let counts = pacer.abandon_counts(answered + TimeDelta::seconds(3));
    assert_eq!((counts.answered, counts.abandoned), (1, 1));
    // A connection reported too late does not undo the abandon.
    pacer
        .call_progress(
            answered + TimeDelta::seconds(3),
            dial.call,
            CallProgress::ConnectedToAgent { agent: AgentId(0) },
        )
        .unwrap();
    assert_eq!(pacer.stats().abandoned, 1);
    assert_eq!(pacer.stats().connected, 0);
}

#[test]
fn machines_are_never_abandons() {
    let mut pacer = pacer(settings(DialMode::Progressive));
    offer_many(&mut pacer, 1);
    let now = noon();
    agents_available(&mut pacer, now, 1);
    let dial = pacer.poll_dial(now).unwrap();
    pacer
        .call_progress(now, dial.call, CallProgress::AnsweredByMachine)
        .unwrap();
    pacer.handle_timeout(now + TimeDelta::seconds(30));
    assert_eq!(pacer.stats().abandoned, 0);
    assert_eq!(pacer.abandon_counts(now).answered, 0);
}

#[test]
fn ringing_gets_the_full_ring_timeout_from_the_first_ring() {
    let mut s = settings(DialMode::Agentless);
    s.ring_timeout_secs = 15.0;
    let mut pacer = pacer(s);
    offer_many(&mut pacer, 1);
    let now = noon();
    let dial = pacer.poll_dial(now).unwrap();
    assert_eq!(dial.ring_timeout, TimeDelta::seconds(15));
    let ringing = now + TimeDelta::seconds(3);
    pacer
        .call_progress(ringing, dial.call, CallProgress::Ringing)
        .unwrap();
    pacer.handle_timeout(now + TimeDelta::seconds(15));
    assert!(events(&mut pacer).is_empty());
    assert_eq!(pacer.poll_timeout(), Some(ringing + TimeDelta::seconds(15)));
    pacer.handle_timeout(ringing + TimeDelta::seconds(15));
    assert_eq!(
        events(&mut pacer),
        vec![PacerEvent::RingTimeout { call: dial.call }]
    );
}

#[test]
fn preview_dials_only_what_an_agent_accepted() {
    let mut pacer = pacer(settings(DialMode::Preview));
    offer_many(&mut pacer, 5);
    let now = noon();
    agents_available(&mut pacer, now, 2);
    assert!(pacer.poll_dial(now).is_none());
    let offered: Vec<(PreviewId, AgentId, ContactId)> = events(&mut pacer)
        .into_iter()
        .filter_map(|e| match e {
            PacerEvent::PreviewOffered {
                preview,
                agent,
                contact,
            } => Some((preview, agent, contact.id)),
            _ => None,
        })
        .collect();
    assert_eq!(offered.len(), 2, "one preview per free agent");
    assert!(pacer.poll_dial(now + TimeDelta::seconds(10)).is_none());

    pacer.preview_accepted(offered[0].0).unwrap();
    let dial = pacer.poll_dial(now + TimeDelta::seconds(11)).unwrap();
    assert_eq!(dial.agent, Some(offered[0].1));
    assert_eq!(dial.contact.id, offered[0].2);

    pacer.preview_skipped(offered[1].0).unwrap();
    let after_skip = events(&mut pacer);
    assert!(after_skip.contains(&PacerEvent::ContactDropped {
        contact: offered[1].2.clone(),
        reason: DropReason::SkippedInPreview,
    }));
    // The skipping agent gets the next contact; the other still waits on
    // its call.
    assert!(pacer.poll_dial(now + TimeDelta::seconds(12)).is_none());
    let next: Vec<_> = events(&mut pacer);
    assert!(matches!(
        next.as_slice(),
        [PacerEvent::PreviewOffered { agent, .. }] if *agent == offered[1].1
    ));
    assert_eq!(
        pacer.preview_accepted(PreviewId(999)),
        Err(PacerError::UnknownPreview(PreviewId(999)))
    );
}

#[test]
fn contacts_outside_their_hours_are_deferred_to_the_opening() {
    let mut pacer = pacer(settings(DialMode::Agentless));
    // 14:00 UTC is 00:00 in Sydney (AEST): outside hours until 08:00.
    pacer.offer(contact(1, chrono_tz::Australia::Sydney));
    pacer.offer(contact(2, chrono_tz::Europe::London));
    let now = noon();
    let dial = pacer.poll_dial(now).unwrap();
    assert_eq!(dial.contact.id, ContactId("c2".into()));
    match events(&mut pacer).as_slice() {
        [PacerEvent::ContactDeferred { contact, until }] => {
            assert_eq!(contact.id, ContactId("c1".into()));
            assert_eq!(*until, now + TimeDelta::hours(8));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn per_region_hours_override_the_default() {
    let mut s = settings(DialMode::Agentless);
    // 14:00 UTC is 15:00 in London: closed for GB numbers under 09-15.
    s.calling_hours
        .overrides
        .insert("GB".into(), "09:00-15:00".into());
    let mut pacer = pacer(s);
    let mut gb = contact(1, chrono_tz::Europe::London);
    gb.region = Some("GB".into());
    pacer.offer(gb);
    assert!(pacer.poll_dial(noon()).is_none());
    assert!(matches!(
        events(&mut pacer).as_slice(),
        [PacerEvent::ContactDeferred { .. }]
    ));
}

#[test]
fn a_dial_refused_at_the_last_check_is_dropped_with_its_reason() {
    let mut pacer = pacer(settings(DialMode::Agentless));
    offer_many(&mut pacer, 2);
    let now = noon();
    let dial = pacer.poll_dial(now).unwrap();
    pacer
        .refuse_dial(dial.call, DropReason::Refused(Refusal::DoNotCallGlobal))
        .unwrap();
    assert_eq!(pacer.calls_in_progress(), 0);
    assert_eq!(
        events(&mut pacer),
        vec![PacerEvent::ContactDropped {
            contact: dial.contact.id.clone(),
            reason: DropReason::Refused(Refusal::DoNotCallGlobal),
        }]
    );
    assert_eq!(
        DropReason::Refused(Refusal::DoNotCallGlobal).code(),
        "do_not_call_global"
    );
    assert!(pacer.withdraw(
        &ContactId("c1".into()),
        DropReason::Withdrawn("list closed".into())
    ));
    assert!(!pacer.withdraw(
        &ContactId("c1".into()),
        DropReason::Withdrawn("again".into())
    ));
    assert_eq!(pacer.contacts_queued(), 0);
    assert_eq!(
        pacer.call_progress(now, CallId(77), CallProgress::Ringing),
        Err(PacerError::UnknownCall(CallId(77)))
    );
}

#[test]
fn handle_times_are_learned_from_busy_to_available() {
    let mut pacer = pacer(settings(DialMode::Progressive));
    let now = noon();
    pacer.agent_changed(now, AgentId(1), AgentState::Available);
    pacer.agent_changed(now, AgentId(1), AgentState::Busy);
    pacer.agent_changed(
        now + TimeDelta::seconds(100),
        AgentId(1),
        AgentState::WrapUp,
    );
    pacer.agent_changed(
        now + TimeDelta::seconds(130),
        AgentId(1),
        AgentState::Available,
    );
    // Away in the middle of a call does not count as a handle time.
    pacer.agent_changed(now + TimeDelta::seconds(140), AgentId(1), AgentState::Busy);
    pacer.agent_changed(now + TimeDelta::seconds(150), AgentId(1), AgentState::Away);
    pacer.agent_changed(
        now + TimeDelta::seconds(900),
        AgentId(1),
        AgentState::Available,
    );
    assert_eq!(pacer.learned_handle_times(), 1);
}
