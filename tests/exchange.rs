//! The consent exchange's pure decisions: what a prompt offers and says,
//! and what a reply does to its request.
//!
//! Every instant is fixed: the prompt goes out on Tuesday 2026-03-10 at
//! 14:05 in New York (EDT since the 8th, so 18:05 UTC) and the person
//! answers seven minutes later. No clock, no store, no provider.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::America::New_York;
use chrono_tz::Tz;
use slotgate::consent::{
    build_options, Answer, Channel, Choice, Consent, ConsentPolicy, ConsentRequest, ConsentStatus,
    Enterprise, Evidence, NewConsentRequest, OfferedChoice, OptionPolicy, PromptTemplates,
    RequestEvent, RequestState, Scope, SlotOption, Transition, TrustStatus, Window, E164,
};
use slotgate::rcs::confirm::Locale;
use slotgate::rcs::exchange::{
    compose_prompt, decide_reply, is_open, Prompt, PromptInput, ReplyDecision, ReplyInput,
};
use slotgate::store::prompts::InboundEffect;
use slotgate::timing::{
    ContactHistory, HistoryRanker, OptionRanker, PastPrompt, PromptRefusal, RankingPolicy,
};

const ZONE: Tz = New_York;

/// `d` March 2026 at `h:m` on the New York wall clock.
fn ny(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    New_York
        .with_ymd_and_hms(2026, 3, d, h, m, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// When the prompt is composed and sent.
fn now() -> DateTime<Utc> {
    ny(10, 14, 5)
}

/// When the person sent the reply, by the provider's clock.
fn replied() -> DateTime<Utc> {
    ny(10, 14, 12)
}

/// When the reply reached slotgate.
fn received() -> DateTime<Utc> {
    replied() + TimeDelta::seconds(3)
}

fn deadline() -> DateTime<Utc> {
    now() + TimeDelta::hours(4)
}

fn enterprise(consent_policy: ConsentPolicy) -> Enterprise {
    Enterprise {
        id: "ent-1".into(),
        name: "ACME Energy Inc.".into(),
        display_name: "ACME Energy".into(),
        services: vec!["Boiler maintenance".into()],
        default_region: "US".into(),
        crm_webhook_url: None,
        crm_webhook_secret: None,
        consent_policy,
        status: TrustStatus::Trusted,
        created_at: ny(1, 9, 0),
        updated_at: ny(1, 9, 0),
    }
}

fn number() -> E164 {
    E164::from_e164("+12025550143").unwrap()
}

/// A request in state `created`, offering `options`.
fn request(options: Vec<SlotOption>) -> ConsentRequest {
    ConsentRequest::new(
        "req-1".into(),
        NewConsentRequest {
            enterprise_id: "ent-1".into(),
            person_id: "person-1".into(),
            number: number(),
            scope: Scope::Purpose("your boiler service".into()),
            options,
            hold_id: None,
            expires_at: deadline(),
        },
        now() - TimeDelta::minutes(1),
    )
}

fn slot(start: DateTime<Utc>, minutes: i64) -> SlotOption {
    SlotOption {
        start,
        end: start + TimeDelta::minutes(minutes),
    }
}

fn labels(choices: &[OfferedChoice]) -> Vec<&str> {
    choices.iter().map(|c| c.label.as_str()).collect()
}

fn postbacks(choices: &[OfferedChoice]) -> Vec<&str> {
    choices.iter().map(|c| c.postback.as_str()).collect()
}

// ---------------------------------------------------------------------
// Composing a prompt
// ---------------------------------------------------------------------

fn compose_with(
    request: &ConsentRequest,
    history: &ContactHistory,
    options: &OptionPolicy,
    ranker: &dyn OptionRanker,
) -> Result<Prompt, PromptRefusal> {
    let enterprise = enterprise(ConsentPolicy::PerCall);
    compose_prompt(
        PromptInput {
            enterprise: &enterprise,
            request,
            name: "Dana",
            locale: "en-US",
            zone: ZONE,
            history,
            now: now(),
        },
        options,
        &RankingPolicy::default(),
        ranker,
        &PromptTemplates::new(),
    )
}

fn compose(request: &ConsentRequest, history: &ContactHistory) -> Result<Prompt, PromptRefusal> {
    compose_with(
        request,
        history,
        &OptionPolicy::default(),
        &HistoryRanker::default(),
    )
}

const RICH_TEXT: &str =
    "Hi Dana, ACME Energy would like to call you about your boiler service. When suits you?";

/// What a person with no history is offered at 14:05 under the default
/// option policy, in natural order.
const FRESH_LABELS: [&str; 10] = [
    "Call me now",
    "In 15 minutes",
    "In 30 minutes",
    "Today 3:30 PM",
    "Today 6:30 PM",
    "Tomorrow 8:00 AM",
    "Afternoon 3:30–5 PM",
    "Evening 5–9 PM",
    "Tomorrow morning",
    "Don't call",
];

#[test]
fn a_fresh_person_gets_the_policy_options_and_the_builtin_text() {
    let prompt = compose(&request(vec![]), &ContactHistory::default()).unwrap();
    assert_eq!(labels(&prompt.choices), FRESH_LABELS);
    assert_eq!(
        postbacks(&prompt.choices),
        [
            "now",
            "after:15",
            "after:30",
            "slot:2026-03-10T19:30:00Z",
            "slot:2026-03-10T22:30:00Z",
            "slot:2026-03-11T12:00:00Z",
            "range:2026-03-10T19:30:00Z/2026-03-10T21:00:00Z",
            "range:2026-03-10T21:00:00Z/2026-03-11T01:00:00Z",
            "range:2026-03-11T13:00:00Z/2026-03-11T16:00:00Z",
            "decline",
        ]
    );
    let choices: Vec<&Choice> = prompt.choices.iter().map(|c| &c.choice).collect();
    assert_eq!(
        choices,
        [
            &Choice::Now,
            &Choice::After(TimeDelta::minutes(15)),
            &Choice::After(TimeDelta::minutes(30)),
            &Choice::Slot(slot(ny(10, 15, 30), 30)),
            &Choice::Slot(slot(ny(10, 18, 30), 30)),
            &Choice::Slot(slot(ny(11, 8, 0), 30)),
            &Choice::Range(SlotOption {
                start: ny(10, 15, 30),
                end: ny(10, 17, 0)
            }),
            &Choice::Range(SlotOption {
                start: ny(10, 17, 0),
                end: ny(10, 21, 0)
            }),
            &Choice::Range(SlotOption {
                start: ny(11, 9, 0),
                end: ny(11, 12, 0)
            }),
            &Choice::Decline,
        ]
    );
    // The same as the option builder gives in natural order: a person with
    // no history is not reordered.
    assert_eq!(
        prompt.choices,
        build_options(&OptionPolicy::default(), ZONE, now(), |c| c)
    );
    assert_eq!(prompt.rich_text, RICH_TEXT);
    assert_eq!(
        prompt.sms_text,
        format!(
            "{RICH_TEXT}\nReply 1 Call me now, 2 In 15 minutes, 3 In 30 minutes, \
             4 Today 3:30 PM, 5 Today 6:30 PM, 6 Tomorrow 8:00 AM, \
             7 Afternoon 3:30–5 PM, 8 Evening 5–9 PM, 9 Tomorrow morning, \
             10 Don't call, or STOP to opt out"
        )
    );
}

#[test]
fn a_campaign_scope_fills_the_purpose_and_an_unknown_name_stays_empty() {
    let mut request = request(vec![]);
    request.scope = Scope::Campaign("spring-tune-up".into());
    let enterprise = enterprise(ConsentPolicy::PerCall);
    let prompt = compose_prompt(
        PromptInput {
            enterprise: &enterprise,
            request: &request,
            name: "",
            locale: "fr-CA",
            zone: ZONE,
            history: &ContactHistory::default(),
            now: now(),
        },
        &OptionPolicy::default(),
        &RankingPolicy::default(),
        &HistoryRanker::default(),
        &PromptTemplates::new(),
    )
    .unwrap();
    assert_eq!(
        prompt.rich_text,
        "Hi, ACME Energy would like to call you about spring-tune-up. When suits you?"
    );
    // The enterprise has no French wording, but the chips are French.
    let labels: Vec<&str> = prompt.choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "Appelez-moi maintenant",
            "Dans 15 minutes",
            "Dans 30 minutes",
            "Aujourd'hui 15h30",
            "Aujourd'hui 18h30",
            "Demain 8h00",
            "Après-midi 15h30–17h",
            "Soir 17h–21h",
            "Demain matin 9h–12h",
            "Ne pas appeler",
        ]
    );
    assert!(
        prompt
            .sms_text
            .ends_with("Répondez 1 Appelez-moi maintenant, 2 Dans 15 minutes, 3 Dans 30 minutes, 4 Aujourd'hui 15h30, 5 Aujourd'hui 18h30, 6 Demain 8h00, 7 Après-midi 15h30–17h, 8 Soir 17h–21h, 9 Demain matin 9h–12h, 10 Ne pas appeler, ou STOP pour ne plus être contacté"),
        "{}",
        prompt.sms_text
    );
}

#[test]
fn enterprise_slots_come_first_labelled_in_the_persons_zone_within_max_choices() {
    // Wednesday 10:00 and Thursday 16:00 in New York, given in UTC.
    let preferred = vec![
        slot(utc("2026-03-11T14:00:00Z"), 30),
        slot(utc("2026-03-12T20:00:00Z"), 60),
    ];
    let policy = OptionPolicy {
        max_choices: 5,
        ..OptionPolicy::default()
    };
    let prompt = compose_with(
        &request(preferred.clone()),
        &ContactHistory::default(),
        &policy,
        &HistoryRanker::default(),
    )
    .unwrap();
    assert_eq!(
        prompt.choices,
        [
            OfferedChoice {
                label: "Wed 11 Mar 10:00 AM".into(),
                postback: "slot:2026-03-11T14:00:00Z".into(),
                choice: Choice::Slot(preferred[0]),
            },
            OfferedChoice {
                label: "Thu 12 Mar 4:00 PM".into(),
                postback: "slot:2026-03-12T20:00:00Z".into(),
                choice: Choice::Slot(preferred[1]),
            },
            OfferedChoice {
                label: "Call me now".into(),
                postback: "now".into(),
                choice: Choice::Now,
            },
            OfferedChoice {
                label: "In 15 minutes".into(),
                postback: "after:15".into(),
                choice: Choice::After(TimeDelta::minutes(15)),
            },
            OfferedChoice {
                label: "Don't call".into(),
                postback: "decline".into(),
                choice: Choice::Decline,
            },
        ]
    );
    assert_eq!(
        prompt.sms_text,
        format!(
            "{RICH_TEXT}\nReply 1 Wed 11 Mar 10:00 AM, 2 Thu 12 Mar 4:00 PM, \
             3 Call me now, 4 In 15 minutes, 5 Don't call, or STOP to opt out"
        )
    );
}

#[test]
fn more_enterprise_slots_than_fit_leave_room_for_dont_call_only() {
    let preferred: Vec<SlotOption> = (0..4).map(|i| slot(ny(11, 9 + i, 0), 30)).collect();
    let policy = OptionPolicy {
        max_choices: 3,
        ..OptionPolicy::default()
    };
    let prompt = compose_with(
        &request(preferred),
        &ContactHistory::default(),
        &policy,
        &HistoryRanker::default(),
    )
    .unwrap();
    assert_eq!(
        labels(&prompt.choices),
        ["Wed 11 Mar 9:00 AM", "Wed 11 Mar 10:00 AM", "Don't call"]
    );
}

#[test]
fn an_enterprise_slot_replaces_the_generated_slot_at_the_same_time() {
    // 18:30 today is also one of the generated slots: it is offered once,
    // as the enterprise's, and the list keeps its default length.
    let preferred = vec![slot(ny(10, 18, 30), 30)];
    let prompt = compose(&request(preferred.clone()), &ContactHistory::default()).unwrap();
    let mut expected: Vec<&str> = FRESH_LABELS.to_vec();
    expected.retain(|l| *l != "Today 6:30 PM");
    expected.insert(0, "Tue 10 Mar 6:30 PM");
    assert_eq!(labels(&prompt.choices), expected);
    let at_1830: Vec<&OfferedChoice> = prompt
        .choices
        .iter()
        .filter(|c| c.postback == "slot:2026-03-10T22:30:00Z")
        .collect();
    assert_eq!(at_1830.len(), 1);
    assert_eq!(at_1830[0].choice, Choice::Slot(preferred[0]));
}

#[test]
fn an_enterprise_slot_already_begun_is_not_offered() {
    let preferred = vec![slot(ny(10, 13, 0), 60), slot(ny(11, 10, 0), 30)];
    let prompt = compose(&request(preferred), &ContactHistory::default()).unwrap();
    assert_eq!(prompt.choices[0].label, "Wed 11 Mar 10:00 AM");
    assert!(!labels(&prompt.choices).contains(&"Tue 10 Mar 1:00 PM"));
}

fn sent_prompt(sent_at: DateTime<Utc>) -> PastPrompt {
    PastPrompt {
        sent_at,
        offered: build_options(&OptionPolicy::default(), ZONE, sent_at, |c| c),
        picked: None,
        answered_at: None,
        declined: false,
    }
}

#[test]
fn a_person_who_declined_three_days_ago_is_cooling_down() {
    let mut declined = sent_prompt(now() - TimeDelta::days(3));
    declined.picked = Some(Choice::Decline);
    declined.answered_at = Some(now() - TimeDelta::days(3) + TimeDelta::minutes(4));
    declined.declined = true;
    let refused = compose(&request(vec![]), &ContactHistory::new(vec![declined]));
    assert_eq!(
        refused,
        Err(PromptRefusal::CoolingDown {
            until: now() + TimeDelta::days(27) + TimeDelta::minutes(4)
        })
    );
}

#[test]
fn three_prompts_in_six_days_reach_the_weekly_cap() {
    let history = ContactHistory::new(vec![
        sent_prompt(now() - TimeDelta::days(1)),
        sent_prompt(now() - TimeDelta::days(6)),
        sent_prompt(now() - TimeDelta::days(3)),
    ]);
    let refused = compose(&request(vec![]), &history);
    assert_eq!(
        refused,
        Err(PromptRefusal::WeeklyCapReached {
            // The oldest leaves the rolling week tomorrow at the same time.
            next_allowed: now() + TimeDelta::days(1)
        })
    );
}

#[test]
fn a_person_who_picked_evenings_gets_evening_options_first() {
    let evening = |sent_at: DateTime<Utc>| {
        let mut prompt = sent_prompt(sent_at);
        let picked = prompt
            .offered
            .iter()
            .find(|o| o.label == "Evening 5–9 PM")
            .map(|o| o.choice.clone());
        assert!(picked.is_some());
        prompt.picked = picked;
        prompt.answered_at = Some(sent_at + TimeDelta::minutes(10));
        prompt
    };
    let history = ContactHistory::new(vec![evening(ny(2, 14, 5)), evening(ny(5, 14, 5))]);
    let prompt = compose(&request(vec![]), &history).unwrap();
    assert_eq!(
        labels(&prompt.choices),
        [
            "Today 6:30 PM",
            "Evening 5–9 PM",
            "Call me now",
            "In 15 minutes",
            "In 30 minutes",
            "Today 3:30 PM",
            "Tomorrow 8:00 AM",
            "Afternoon 3:30–5 PM",
            "Tomorrow morning",
            "Don't call",
        ]
    );
}

// ---------------------------------------------------------------------
// Deciding what a reply does
// ---------------------------------------------------------------------

/// The prompt a fresh person got at 14:05.
fn offered() -> Vec<OfferedChoice> {
    build_options(&OptionPolicy::default(), ZONE, now(), |c| c)
}

/// The offered fixed slots: what the dispatcher writes as the request's
/// options when it sends.
fn offered_slots(offered: &[OfferedChoice]) -> Vec<SlotOption> {
    offered
        .iter()
        .filter_map(|o| match o.choice {
            Choice::Slot(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The request, sent at 14:05 with the fresh prompt.
fn sent_request() -> ConsentRequest {
    let mut r = request(offered_slots(&offered()));
    assert_eq!(
        r.apply(
            RequestEvent::Sent {
                provider_message_id: "out-1".into()
            },
            now()
        ),
        Ok(Transition::Applied)
    );
    r
}

#[derive(Clone, Copy)]
struct Reply<'a> {
    postback: Option<&'a str>,
    text: Option<&'a str>,
    policy: ConsentPolicy,
    channel: Channel,
    sent_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
}

fn postback(p: &str) -> Reply<'_> {
    Reply {
        postback: Some(p),
        text: None,
        policy: ConsentPolicy::PerCall,
        channel: Channel::Rcs,
        sent_at: replied(),
        received_at: received(),
    }
}

fn text(t: &str) -> Reply<'_> {
    Reply {
        postback: None,
        text: Some(t),
        channel: Channel::Sms,
        ..postback("")
    }
}

fn decide_on(request: &ConsentRequest, reply: Reply<'_>) -> ReplyDecision {
    let offered = offered();
    let enterprise = enterprise(reply.policy);
    decide_reply(
        ReplyInput {
            request,
            offered: &offered,
            enterprise: &enterprise,
            zone: ZONE,
            postback: reply.postback,
            text: reply.text,
            channel: reply.channel,
            provider_message_id: "in-42",
            signature_valid: true,
            sent_at: reply.sent_at,
            received_at: reply.received_at,
        },
        &OptionPolicy::default(),
        Locale::English,
    )
}

fn decide(reply: Reply<'_>) -> ReplyDecision {
    decide_on(&sent_request(), reply)
}

/// The request as it should be once answered.
fn answered(answer: Answer) -> ConsentRequest {
    let mut r = sent_request();
    r.state = RequestState::Answered(answer);
    r.updated_at = received();
    r
}

/// The answer's effect, split into the request and its consent.
fn answer_of(decision: &ReplyDecision) -> (&ConsentRequest, &Consent) {
    match &decision.effect {
        InboundEffect::Answer {
            request,
            consent: Some(consent),
        } => (request, consent.as_ref()),
        other => panic!("expected an answer with a consent, got {other:?}"),
    }
}

/// The consent a reply should give, with the id it was given.
fn expected_consent(
    id: &str,
    status: ConsentStatus,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    expires_at: Option<DateTime<Utc>>,
    channel: Channel,
    raw_reply: &str,
) -> Consent {
    Consent {
        id: id.to_string(),
        person_id: "person-1".into(),
        enterprise_id: "ent-1".into(),
        number: number(),
        scope: Scope::Purpose("your boiler service".into()),
        status,
        window: window.map(|(start, end)| Window::new(start, end, "America/New_York").unwrap()),
        expires_at,
        channel,
        evidence: Evidence {
            provider_message_id: Some("in-42".into()),
            raw_reply: Some(raw_reply.into()),
            signature_valid: Some(true),
            replied_at: Some(replied()),
            received_at: Some(received()),
        },
        created_at: received(),
        updated_at: received(),
        revoked_at: None,
    }
}

fn assert_fresh_id(id: &str) {
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[test]
fn now_grants_a_per_call_consent_for_fifteen_minutes_from_the_reply() {
    let decision = decide(postback("now"));
    let (request, consent) = answer_of(&decision);
    assert_eq!(*request, answered(Answer::Now));
    assert_fresh_id(&consent.id);
    let window_end = replied() + TimeDelta::minutes(15);
    assert_eq!(
        *consent,
        expected_consent(
            &consent.id,
            ConsentStatus::Granted,
            Some((replied(), window_end)),
            Some(window_end),
            Channel::Rcs,
            "now",
        )
    );
    assert_eq!(consent.window.as_ref().unwrap().time_zone, New_York);
    assert_eq!(decision.message.as_deref(), Some("We'll call you now."));
}

#[test]
fn now_under_a_seven_day_policy_expires_a_week_after_receipt() {
    let decision = decide(Reply {
        policy: ConsentPolicy::Days(7),
        channel: Channel::Simulator,
        ..postback("now")
    });
    let (request, consent) = answer_of(&decision);
    assert_eq!(*request, answered(Answer::Now));
    assert_eq!(
        *consent,
        expected_consent(
            &consent.id,
            ConsentStatus::Granted,
            Some((replied(), replied() + TimeDelta::minutes(15))),
            Some(received() + TimeDelta::days(7)),
            Channel::Simulator,
            "now",
        )
    );
}

#[test]
fn the_postback_of_an_offered_slot_answers_that_slot() {
    let at_1830 = slot(ny(10, 18, 30), 30);
    let decision = decide(postback("slot:2026-03-10T22:30:00Z"));
    let (request, consent) = answer_of(&decision);
    assert_eq!(*request, answered(Answer::Slot(at_1830)));
    assert_eq!(
        *consent,
        expected_consent(
            &consent.id,
            ConsentStatus::Granted,
            Some((at_1830.start, at_1830.end)),
            Some(at_1830.end),
            Channel::Rcs,
            "slot:2026-03-10T22:30:00Z",
        )
    );
    assert_eq!(
        decision.message.as_deref(),
        Some("We'll call you at 6:30 PM.")
    );
}

#[test]
fn typing_the_time_of_an_offered_slot_answers_that_slot() {
    let decision = decide(text("6:30pm"));
    let (request, _) = answer_of(&decision);
    assert_eq!(*request, answered(Answer::Slot(slot(ny(10, 18, 30), 30))));
}

#[test]
fn the_postback_of_an_offered_range_answers_that_range() {
    let decision = decide(postback("range:2026-03-10T21:00:00Z/2026-03-10T23:00:00Z"));
    // That postback was not offered (the evening range ends at 01:00Z).
    assert_eq!(
        decision.effect,
        InboundEffect::Clarify {
            request_id: "req-1".into()
        }
    );
    let decision = decide(postback("range:2026-03-10T21:00:00Z/2026-03-11T01:00:00Z"));
    let (request, consent) = answer_of(&decision);
    assert_eq!(
        *request,
        answered(Answer::Range {
            start: ny(10, 17, 0),
            end: ny(10, 21, 0)
        })
    );
    assert_eq!(
        consent.window,
        Some(Window::new(ny(10, 17, 0), ny(10, 21, 0), "America/New_York").unwrap())
    );
    assert_eq!(
        decision.message.as_deref(),
        Some("We'll call you between 5:00 PM and 9:00 PM.")
    );
}

#[test]
fn a_time_of_the_persons_own_becomes_a_range() {
    let decision = decide(text("5:30pm"));
    let (request, consent) = answer_of(&decision);
    let (start, end) = (ny(10, 17, 30), ny(10, 18, 0));
    assert_eq!(*request, answered(Answer::Range { start, end }));
    assert_eq!(
        *consent,
        expected_consent(
            &consent.id,
            ConsentStatus::Granted,
            Some((start, end)),
            Some(end),
            Channel::Sms,
            "5:30pm",
        )
    );
    assert_eq!(
        decision.message.as_deref(),
        Some("We'll call you between 5:30 PM and 6:00 PM.")
    );
}

/// A delay names no instant until the reply: the slot it gives cannot be
/// among the request's options, so it is recorded as the person's own
/// range, starting that long after the reply and one slot long. That is
/// what the request's state machine can hold (an unoffered `Slot` is
/// refused), and the consent window is exactly the delayed slot.
#[test]
fn a_delay_typed_or_picked_is_a_range_from_the_reply() {
    let (start, end) = (ny(10, 14, 27), ny(10, 14, 57));
    for reply in [text("in 15 min"), postback("after:15"), text("15")] {
        let raw = reply.postback.or(reply.text).unwrap().to_string();
        let channel = reply.channel;
        let decision = decide(reply);
        let (request, consent) = answer_of(&decision);
        assert_eq!(*request, answered(Answer::Range { start, end }), "{raw}");
        assert_eq!(
            *consent,
            expected_consent(
                &consent.id,
                ConsentStatus::Granted,
                Some((start, end)),
                Some(end),
                channel,
                &raw,
            )
        );
        assert_eq!(
            decision.message.as_deref(),
            Some("We'll call you between 2:27 PM and 2:57 PM."),
            "{raw}"
        );
    }
}

#[test]
fn a_delay_counts_from_when_the_person_sent_it_not_when_it_arrived() {
    let late = Reply {
        received_at: replied() + TimeDelta::minutes(20),
        ..text("in 30 minutes")
    };
    let decision = decide(late);
    let (request, consent) = answer_of(&decision);
    assert_eq!(
        request.state,
        RequestState::Answered(Answer::Range {
            start: ny(10, 14, 42),
            end: ny(10, 15, 12)
        })
    );
    assert_eq!(consent.evidence.replied_at, Some(replied()));
    assert_eq!(
        consent.evidence.received_at,
        Some(replied() + TimeDelta::minutes(20))
    );
}

#[test]
fn no_thanks_and_dont_call_opt_out_with_a_declined_consent() {
    for (reply, raw) in [
        (text("no thanks"), "no thanks"),
        (text("don't call"), "don't call"),
        (postback("decline"), "decline"),
    ] {
        let channel = reply.channel;
        // Even under a policy that would give a grant an expiry.
        let decision = decide(Reply {
            policy: ConsentPolicy::Days(7),
            ..reply
        });
        let (request, consent) = revocation_of(&decision);
        assert_eq!(*request, answered(Answer::Decline), "{raw}");
        assert_eq!(
            *consent,
            expected_consent(
                &consent.id,
                ConsentStatus::Declined,
                None,
                None,
                channel,
                raw
            )
        );
        assert_eq!(decision.message.as_deref(), Some(REVOKED), "{raw}");
    }
}

/// The open request and the declined consent of a revocation.
fn revocation_of(decision: &ReplyDecision) -> (&ConsentRequest, &Consent) {
    match &decision.effect {
        InboundEffect::Revoke {
            request: Some(request),
            consent: Some(consent),
            ..
        } => (request, consent.as_ref()),
        other => panic!("expected a revocation of an open request, got {other:?}"),
    }
}

const REVOKED: &str = "You won't receive further calls or messages from ACME Energy.";

#[test]
fn stop_revokes_and_answers_the_open_request_decline() {
    for (reply, raw) in [
        (text("STOP"), "STOP"),
        (text("stop calling me"), "stop calling me"),
    ] {
        let channel = reply.channel;
        let decision = decide(reply);
        let (request, consent) = revocation_of(&decision);
        assert_eq!(*request, answered(Answer::Decline));
        assert_eq!(
            *consent,
            expected_consent(
                &consent.id,
                ConsentStatus::Declined,
                None,
                None,
                channel,
                raw
            )
        );
        match &decision.effect {
            InboundEffect::Revoke {
                enterprise_id,
                person_id,
                number: n,
                ..
            } => {
                assert_eq!(enterprise_id, "ent-1");
                assert_eq!(person_id, "person-1");
                assert_eq!(*n, number());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decision.message.as_deref(), Some(REVOKED));
    }
}

#[test]
fn stop_after_an_answer_revokes_without_touching_the_request() {
    let mut done = sent_request();
    done.apply(
        RequestEvent::Answered(Answer::Slot(slot(ny(10, 18, 30), 30))),
        ny(10, 14, 8),
    )
    .unwrap();
    for request in [done, expired_request()] {
        let decision = decide_on(&request, text("STOP"));
        assert_eq!(
            decision,
            ReplyDecision {
                effect: InboundEffect::Revoke {
                    enterprise_id: "ent-1".into(),
                    person_id: "person-1".into(),
                    number: number(),
                    request: None,
                    consent: None,
                },
                message: Some(REVOKED.into()),
            }
        );
    }
}

#[test]
fn gibberish_asks_once_with_the_options_listed() {
    for reply in [text("asdfgh"), text("12"), postback("range:bogus")] {
        let decision = decide(reply);
        assert_eq!(
            decision,
            ReplyDecision {
                effect: InboundEffect::Clarify {
                    request_id: "req-1".into()
                },
                message: Some(
                    "Sorry, we didn't understand. Reply 1 for Call me now, \
                     2 for In 15 minutes, 3 for In 30 minutes, 4 for Today 3:30 PM, \
                     5 for Today 6:30 PM, 6 for Tomorrow 8:00 AM, \
                     7 for Afternoon 3:30–5 PM, 8 for Evening 5–9 PM, \
                     9 for Tomorrow morning, 10 for Don't call, or STOP to opt out."
                        .into()
                ),
            }
        );
    }
}

/// The request, sent at 14:05 and expired at its deadline.
fn expired_request() -> ConsentRequest {
    let mut r = sent_request();
    assert_eq!(
        r.apply(RequestEvent::Expire, deadline()),
        Ok(Transition::Applied)
    );
    r
}

const IGNORED: ReplyDecision = ReplyDecision {
    effect: InboundEffect::Ignore,
    message: None,
};

#[test]
fn a_reply_to_an_expired_request_is_ignored() {
    let after = Reply {
        sent_at: deadline() + TimeDelta::minutes(10),
        received_at: deadline() + TimeDelta::minutes(10),
        ..postback("now")
    };
    assert_eq!(decide_on(&expired_request(), after), IGNORED);
    // Past the deadline but not yet marked expired: too late all the same.
    let late = Reply {
        sent_at: deadline() - TimeDelta::seconds(5),
        received_at: deadline(),
        ..text("5:30pm")
    };
    assert_eq!(decide_on(&sent_request(), late), IGNORED);
}

#[test]
fn the_same_answer_again_is_ignored() {
    for reply in [postback("now"), text("in 15 min"), text("no thanks")] {
        let first = decide(reply);
        let request = match &first.effect {
            InboundEffect::Answer { request, .. } => request,
            InboundEffect::Revoke {
                request: Some(request),
                ..
            } => request,
            other => panic!("{other:?}"),
        };
        let again = decide_on(
            request,
            Reply {
                received_at: received() + TimeDelta::minutes(30),
                ..reply
            },
        );
        assert_eq!(again, IGNORED);
    }
}

#[test]
fn another_answer_after_the_first_is_ignored() {
    let first = decide(postback("now"));
    let (request, _) = answer_of(&first);
    assert_eq!(decide_on(request, text("5:30pm")), IGNORED);
    assert_eq!(decide_on(request, text("no thanks")), IGNORED);
}

/// A "thanks!" after the confirmation, or a garbled reply to a prompt that
/// has expired, must not ask the person to pick from options that can no
/// longer be picked.
#[test]
fn an_unclear_reply_to_a_closed_request_is_ignored() {
    let first = decide(postback("now"));
    let (answered, _) = answer_of(&first);
    for request in [answered.clone(), expired_request()] {
        for reply in ["thanks!", "asdfgh"] {
            assert_eq!(decide_on(&request, text(reply)), IGNORED, "{reply}");
        }
    }
}

#[test]
fn a_request_is_open_only_while_sent_or_delivered() {
    let created = request(vec![]);
    assert!(!is_open(&created));
    let sent = sent_request();
    assert!(is_open(&sent));
    let mut delivered = sent.clone();
    delivered
        .apply(RequestEvent::Delivered, ny(10, 14, 6))
        .unwrap();
    assert!(is_open(&delivered));
    for answer in [
        Answer::Now,
        Answer::Slot(slot(ny(10, 18, 30), 30)),
        Answer::Range {
            start: ny(10, 17, 30),
            end: ny(10, 18, 0),
        },
        Answer::Decline,
    ] {
        let mut r = delivered.clone();
        r.apply(RequestEvent::Answered(answer), ny(10, 14, 10))
            .unwrap();
        assert!(!is_open(&r), "{}", r.state);
    }
    assert!(!is_open(&expired_request()));
    let mut failed = created.clone();
    failed
        .apply(
            RequestEvent::Failed {
                reason: "no RCS, SMS refused".into(),
            },
            now(),
        )
        .unwrap();
    assert!(!is_open(&failed));
}
