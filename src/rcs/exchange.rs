//! The consent exchange's decisions, both ways, as pure functions.
//!
//! Out: what a prompt offers and says, given the person's history, zone
//! and calling hours. In: what a reply does to the request it answers, the
//! consent it records, and what goes back to the person. The async shells
//! (`dispatcher`, `inbound`) fetch the inputs, call these, and persist the
//! result; everything that can be decided is decided here, with the time
//! passed in, so it is tested without a database, a provider or a clock.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use super::confirm::{
    clarification, confirmation, french_time, french_weekday, revocation_confirmation, Locale,
};
use super::reply::{read_postback, read_text, Reading, ReplyContext};
use crate::consent::{
    build_options, sms_reply_line, Answer, Channel, Choice, Consent, ConsentRequest, ConsentStatus,
    Enterprise, Evidence, OfferedChoice, OptionPolicy, PromptTemplates, PromptValues, RequestEvent,
    RequestState, Scope, SlotOption, Transition, Window, MAX_LABEL_CHARS, PER_CALL_VALIDITY,
};
use crate::store::prompts::InboundEffect;
use crate::timing::{may_prompt, ContactHistory, OptionRanker, PromptRefusal, RankingPolicy};

/// A prompt ready to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub choices: Vec<OfferedChoice>,
    /// The text for a channel with suggestion chips (RCS, simulator).
    pub rich_text: String,
    /// The text for SMS: the same, followed by the numbered choices.
    pub sms_text: String,
}

/// What goes into a prompt.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    pub enterprise: &'a Enterprise,
    pub request: &'a ConsentRequest,
    /// The person's name as the enterprise gave it ("" when unknown).
    pub name: &'a str,
    pub locale: &'a str,
    pub zone: Tz,
    pub history: &'a ContactHistory,
    pub now: DateTime<Utc>,
}

/// Builds the prompt for `input.request`, or says why the person must not
/// be asked now (cool-down after a decline, weekly cap).
pub fn compose_prompt(
    input: PromptInput<'_>,
    options: &OptionPolicy,
    ranking: &RankingPolicy,
    ranker: &dyn OptionRanker,
    templates: &PromptTemplates,
) -> Result<Prompt, PromptRefusal> {
    may_prompt(input.history, input.now, ranking)?;
    let mut choices = build_options(options, input.zone, input.now, |candidates| {
        ranker.rank(input.history, candidates, input.zone, input.now)
    });
    // Slots the enterprise asked to offer come first: it knows its agents'
    // schedule.
    let preferred = preferred_choices(input.request, input.zone, input.now, options);
    if !preferred.is_empty() {
        choices.retain(|c| !preferred.iter().any(|p| p.postback == c.postback));
        let keep = options.max_choices.saturating_sub(preferred.len()).max(1);
        let decline = choices.pop();
        choices.truncate(keep.saturating_sub(1));
        choices.splice(0..0, preferred);
        choices.extend(decline);
    }
    let language = Locale::from_tag(input.locale);
    if language == Locale::French {
        for choice in &mut choices {
            choice.label = french_label(&choice.choice, input.zone, input.now);
        }
    }
    let purpose = match &input.request.scope {
        Scope::Campaign(c) => c.as_str(),
        Scope::Purpose(p) => p.as_str(),
    };
    let values = PromptValues {
        name: input.name,
        purpose,
        enterprise: &input.enterprise.display_name,
    };
    Ok(Prompt {
        rich_text: templates.render(input.locale, &values),
        sms_text: format!(
            "{}\n{}",
            templates.render(input.locale, &values),
            match language {
                Locale::English => sms_reply_line(&choices),
                Locale::French => french_reply_line(&choices),
            }
        ),
        choices,
    })
}

/// A choice's label in French, as short as a suggestion chip needs.
fn french_label(choice: &Choice, zone: Tz, now: DateTime<Utc>) -> String {
    let today = now.with_timezone(&zone).date_naive();
    let day = |at: DateTime<Utc>| {
        let local = at.with_timezone(&zone);
        match local.date_naive().signed_duration_since(today).num_days() {
            0 => "Aujourd'hui".to_string(),
            1 => "Demain".to_string(),
            _ => {
                let weekday = french_weekday(local.weekday());
                let mut name = weekday[..1].to_uppercase();
                name.push_str(&weekday[1..]);
                format!("{name} {}/{:02}", local.day(), local.month())
            }
        }
    };
    let clock = |at: DateTime<Utc>| {
        let local = at.with_timezone(&zone);
        french_time(local.hour(), local.minute())
    };
    let label = match choice {
        Choice::Now => "Appelez-moi maintenant".to_string(),
        Choice::After(delay) => format!("Dans {} minutes", delay.num_minutes()),
        Choice::Slot(slot) => format!("{} {}", day(slot.start), clock(slot.start)),
        Choice::Range(range) => {
            let hour = range.start.with_timezone(&zone).hour();
            let part = match hour {
                0..=11 => "matin",
                12..=16 => "après-midi",
                _ => "soir",
            };
            let when = match day(range.start).as_str() {
                "Aujourd'hui" => {
                    let mut p = part[..1].to_uppercase();
                    p.push_str(&part[1..]);
                    p
                }
                other => format!("{other} {part}"),
            };
            let hours = format!(
                "{when} {}–{}",
                clock(range.start).replace("h00", "h"),
                clock(range.end).replace("h00", "h")
            );
            if hours.chars().count() <= MAX_LABEL_CHARS {
                hours
            } else {
                when
            }
        }
        Choice::Decline => "Ne pas appeler".to_string(),
    };
    label.chars().take(MAX_LABEL_CHARS).collect()
}

/// `Répondez 1 Appelez-moi maintenant, 2 …, ou STOP pour ne plus être
/// contacté`: the SMS line of a French prompt.
fn french_reply_line(choices: &[OfferedChoice]) -> String {
    let mut line = String::from("Répondez ");
    for (i, choice) in choices.iter().enumerate() {
        line.push_str(&format!("{} {}, ", i + 1, choice.label));
    }
    line.push_str("ou STOP pour ne plus être contacté");
    line
}

/// The enterprise's preferred slots as choices, labelled in the person's
/// zone. A slot is offered only while it is still ahead by the policy's
/// lead and starts inside calling hours: a prompt sent late (after a
/// cool-down, a provider outage) must not offer a time already gone, and
/// the enterprise's wish does not override the callee's hours.
fn preferred_choices(
    request: &ConsentRequest,
    zone: Tz,
    now: DateTime<Utc>,
    options: &OptionPolicy,
) -> Vec<OfferedChoice> {
    request
        .options
        .iter()
        .filter(|slot| {
            slot.start >= now + options.min_lead && options.calling_hours.contains(slot.start, zone)
        })
        .take(
            options
                .max_choices
                .min(crate::consent::RBM_MAX_SUGGESTIONS)
                .saturating_sub(1),
        )
        .map(|slot| {
            let local = slot.start.with_timezone(&zone);
            OfferedChoice {
                label: local.format("%a %-d %b %-I:%M %p").to_string(),
                postback: format!("slot:{}", slot.start.format("%Y-%m-%dT%H:%M:%SZ")),
                choice: crate::consent::Choice::Slot(*slot),
            }
        })
        .collect()
}

/// A reply as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct ReplyInput<'a> {
    /// The request the reply answers: the latest prompt to that number.
    pub request: &'a ConsentRequest,
    pub offered: &'a [OfferedChoice],
    pub enterprise: &'a Enterprise,
    pub zone: Tz,
    pub postback: Option<&'a str>,
    pub text: Option<&'a str>,
    pub channel: Channel,
    pub provider_message_id: &'a str,
    pub signature_valid: bool,
    /// When the person sent it (provider clock); replies are read as of
    /// then, so a redelivery days later reads the same.
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// What a reply does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyDecision {
    pub effect: InboundEffect,
    /// The message back to the person, if any: a confirmation, the
    /// clarifying question (sent only on the first unclear reply), or the
    /// revocation notice.
    pub message: Option<String>,
}

/// Decides what a reply does to its request.
pub fn decide_reply(
    input: ReplyInput<'_>,
    options: &OptionPolicy,
    locale: Locale,
) -> ReplyDecision {
    let ctx = ReplyContext {
        offered: input.offered,
        zone: input.zone,
        now: input.sent_at,
        slot_length: options.slot_length,
        calling_hours: options.calling_hours,
    };
    let reading = match (input.postback, input.text) {
        (Some(postback), _) => read_postback(postback, &ctx),
        (None, Some(text)) => read_text(text, &ctx),
        (None, None) => Reading::Unclear,
    };
    let request = input.request;
    match reading {
        Reading::Revoke => revocation(&input, locale),
        // Only an open request is worth a clarifying question: after the
        // answer ("thanks!") or the deadline, it would offer choices that
        // can no longer be picked.
        Reading::Unclear if !is_open(request) => ReplyDecision {
            effect: InboundEffect::Ignore,
            message: None,
        },
        Reading::Unclear => ReplyDecision {
            effect: InboundEffect::Clarify {
                request_id: request.id.clone(),
            },
            message: Some(clarification(input.offered, locale)),
        },
        Reading::Picked { answer, .. } => {
            let answer = own_time_as_range(answer, request);
            let mut answered = request.clone();
            match answered.apply(RequestEvent::Answered(answer.clone()), input.received_at) {
                // "Don't call" is an opt-out, as the law reads it: it
                // does what STOP does.
                Ok(Transition::Applied) if answer == Answer::Decline => revocation(&input, locale),
                Ok(Transition::Applied) => {
                    let consent = consent_for(&input, &answer);
                    ReplyDecision {
                        effect: InboundEffect::Answer {
                            request: answered,
                            consent: Some(Box::new(consent)),
                        },
                        message: Some(confirmation(&answer, input.zone, input.sent_at, locale)),
                    }
                }
                // Already answered this way, answered otherwise, expired or
                // failed: the request keeps what it has; the message is
                // kept in the ledger.
                Ok(Transition::Unchanged) | Err(_) => ReplyDecision {
                    effect: InboundEffect::Ignore,
                    message: None,
                },
            }
        }
    }
}

/// STOP, or "don't call": every consent the person gave the enterprise is
/// revoked and the number goes on its list; an open request takes the
/// answer "decline", recorded as a declined consent with its evidence.
fn revocation(input: &ReplyInput<'_>, locale: Locale) -> ReplyDecision {
    let request = input.request;
    let mut answered = request.clone();
    let open = answered
        .apply(RequestEvent::Answered(Answer::Decline), input.received_at)
        .is_ok_and(|t| t == Transition::Applied);
    ReplyDecision {
        effect: InboundEffect::Revoke {
            enterprise_id: request.enterprise_id.clone(),
            person_id: request.person_id.clone(),
            number: request.number.clone(),
            consent: open.then(|| Box::new(consent_for(input, &Answer::Decline))),
            request: open.then_some(answered),
        },
        message: Some(revocation_confirmation(
            &input.enterprise.display_name,
            locale,
        )),
    }
}

/// A slot the prompt did not offer (a typed "5:30pm", a delay counted from
/// the reply) is a time of the person's own choosing: the request records
/// it as a range, as its state machine defines. The offered slots are the
/// request's options (the dispatcher writes them when it sends).
fn own_time_as_range(answer: Answer, request: &ConsentRequest) -> Answer {
    match answer {
        Answer::Slot(slot) if !request.options.contains(&slot) => Answer::Range {
            start: slot.start,
            end: slot.end,
        },
        other => other,
    }
}

/// The consent an answer gives, with its evidence.
fn consent_for(input: &ReplyInput<'_>, answer: &Answer) -> Consent {
    let request = input.request;
    let (status, bounds) = match answer {
        Answer::Now => (
            ConsentStatus::Granted,
            Some((input.sent_at, input.sent_at + PER_CALL_VALIDITY)),
        ),
        Answer::Slot(SlotOption { start, end }) | Answer::Range { start, end } => {
            (ConsentStatus::Granted, Some((*start, *end)))
        }
        Answer::Decline => (ConsentStatus::Declined, None),
    };
    let window = bounds.and_then(|(start, end)| Window::new(start, end, input.zone.name()).ok());
    let expires_at = match status {
        ConsentStatus::Granted => input
            .enterprise
            .consent_policy
            .expires_at(input.received_at, window.as_ref().map(|w| w.end)),
        _ => None,
    };
    Consent {
        id: crate::consent::new_id(),
        person_id: request.person_id.clone(),
        enterprise_id: request.enterprise_id.clone(),
        number: request.number.clone(),
        scope: request.scope.clone(),
        status,
        window,
        expires_at,
        channel: input.channel,
        evidence: Evidence {
            provider_message_id: Some(input.provider_message_id.to_string()),
            raw_reply: input.postback.or(input.text).map(str::to_string),
            signature_valid: Some(input.signature_valid),
            replied_at: Some(input.sent_at),
            received_at: Some(input.received_at),
        },
        created_at: input.received_at,
        updated_at: input.received_at,
        revoked_at: None,
    }
}

/// Whether a request still waits for its answer.
pub fn is_open(request: &ConsentRequest) -> bool {
    matches!(request.state, RequestState::Sent | RequestState::Delivered)
}
