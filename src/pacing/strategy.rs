//! A campaign's multi-pass strategy: which channel reaches a contact next,
//! and when, given what the earlier passes gave.
//!
//! A campaign is a list of passes. A contact starts in the first; a pass
//! that ends without a person answering hands the contact to the next pass
//! only when its outcome is one the next pass `enter_on`s, after that
//! pass's `delay_secs`. Within a voice pass a busy line, no answer or a
//! missing agent is tried again after `retry_delay_secs`, up to
//! `max_attempts` calls. A prompt pass sends one RCS/SMS "we missed you,
//! pick another time" message instead of calling.
//!
//! This is pure: [`next_step`] takes the strategy, the contact's history
//! and the time, so the dialler can re-read the strategy for every
//! decision (an operator may replace it while the campaign runs) and tests
//! can walk a contact through days of passes in microseconds.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Most passes a strategy may hold: more is a mistake, not a plan.
pub const MAX_PASSES: usize = 10;
/// Most calls within one voice pass.
pub const MAX_ATTEMPTS_PER_PASS: i64 = 20;
/// Longest wait a strategy may ask for between two steps (30 days).
pub const MAX_DELAY_SECS: i64 = 30 * 24 * 3600;

/// How a pass reaches the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassChannel {
    /// A call, placed by the dialler.
    Voice,
    /// An RCS message (SMS fallback) offering the contact another time.
    Prompt,
}

/// What one step of a pass gave: a call's outcome, or a prompt's.
///
/// The call outcomes are the ones the dialler records in the store
/// (`call_outcomes.outcome`); their strings are the stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A person answered and was connected to an agent (or the message).
    Answered,
    Busy,
    NoAnswer,
    /// The call could not be placed (rejected, unreachable).
    Failed,
    /// An answering machine picked up.
    Machine,
    /// A person answered but no agent took the call in time.
    Abandoned,
    /// No agent could take the call, so the contact was not rung.
    AgentUnavailable,
    /// The call was cut before it ended normally (trunk or node failure).
    Dropped,
    /// A prompt pass's message was sent.
    Prompted,
    /// A prompt pass's message could not be sent.
    PromptFailed,
}

impl Outcome {
    /// Every outcome, for listing and parsing.
    pub const ALL: [Outcome; 10] = [
        Outcome::Answered,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Failed,
        Outcome::Machine,
        Outcome::Abandoned,
        Outcome::AgentUnavailable,
        Outcome::Dropped,
        Outcome::Prompted,
        Outcome::PromptFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no-answer",
            Outcome::Failed => "failed",
            Outcome::Machine => "machine",
            Outcome::Abandoned => "abandoned",
            Outcome::AgentUnavailable => "agent-unavailable",
            Outcome::Dropped => "dropped",
            Outcome::Prompted => "prompted",
            Outcome::PromptFailed => "prompt-failed",
        }
    }

    /// Which channel's steps end with this outcome.
    pub fn channel(self) -> PassChannel {
        match self {
            Outcome::Prompted | Outcome::PromptFailed => PassChannel::Prompt,
            _ => PassChannel::Voice,
        }
    }

    /// Whether a voice pass tries the contact again while it has attempts
    /// left: the line was busy, nobody picked up, or the contact was never
    /// rung for want of an agent.
    pub fn retried_within_pass(self) -> bool {
        matches!(
            self,
            Outcome::Busy | Outcome::NoAnswer | Outcome::AgentUnavailable
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(text: &str) -> Result<Outcome, UnknownOutcome> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| UnknownOutcome(text.to_string()))
    }
}

/// What one call gave: the outcomes the dialler records in the store
/// (`call_outcomes.outcome`, see `Store::record_call_outcome`), a subset
/// of [`Outcome`] with the same strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Machine,
    Abandoned,
    AgentUnavailable,
    Dropped,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 8] = [
        CallOutcome::Answered,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Failed,
        CallOutcome::Machine,
        CallOutcome::Abandoned,
        CallOutcome::AgentUnavailable,
        CallOutcome::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        Outcome::from(self).as_str()
    }
}

impl From<CallOutcome> for Outcome {
    fn from(outcome: CallOutcome) -> Outcome {
        match outcome {
            CallOutcome::Answered => Outcome::Answered,
            CallOutcome::Busy => Outcome::Busy,
            CallOutcome::NoAnswer => Outcome::NoAnswer,
            CallOutcome::Failed => Outcome::Failed,
            CallOutcome::Machine => Outcome::Machine,
            CallOutcome::Abandoned => Outcome::Abandoned,
            CallOutcome::AgentUnavailable => Outcome::AgentUnavailable,
            CallOutcome::Dropped => Outcome::Dropped,
        }
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CallOutcome {
    type Err = UnknownOutcome;

    fn from_str(text: &str) -> Result<CallOutcome, UnknownOutcome> {
        CallOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| UnknownOutcome(text.to_string()))
    }
}

/// A string that names no [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an outcome")]
pub struct UnknownOutcome(pub String);

/// One pass of a strategy, as written.
///
/// Counts and delays are read signed so that `-1` is refused naming the
/// field rather than failing inside the deserialiser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pass {
    pub channel: PassChannel,
    /// Outcomes of the previous pass that let a contact into this one;
    /// empty (and only empty) for the first pass.
    #[serde(default)]
    pub enter_on: Vec<Outcome>,
    /// Wait after the previous pass's last outcome; 0 for the first pass,
    /// which starts when the contact is due.
    #[serde(default)]
    pub delay_secs: i64,
    /// Calls within a voice pass (1 for a prompt pass, which sends once).
    #[serde(default = "one")]
    pub max_attempts: i64,
    /// Wait between two calls of a voice pass.
    #[serde(default)]
    pub retry_delay_secs: i64,
}

fn one() -> i64 {
    1
}

/// A campaign's passes, first to last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    pub passes: Vec<Pass>,
}

impl Default for Strategy {
    /// What a campaign without a strategy does: one voice pass of up to
    /// three calls, ten minutes apart.
    fn default() -> Strategy {
        Strategy {
            passes: vec![Pass {
                channel: PassChannel::Voice,
                enter_on: Vec::new(),
                delay_secs: 0,
                max_attempts: 3,
                retry_delay_secs: 600,
            }],
        }
    }
}

/// Why a strategy cannot run; `field` is its path in the JSON
/// (`passes[1].enter_on`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct StrategyError {
    pub field: String,
    pub reason: String,
}

impl Strategy {
    /// Refuses a strategy the dialler could not follow, naming the field.
    pub fn validate(&self) -> Result<(), StrategyError> {
        let refuse = |field: String, reason: &str| StrategyError {
            field,
            reason: reason.to_string(),
        };
        if self.passes.is_empty() {
            return Err(refuse("passes".into(), "must hold at least one pass"));
        }
        if self.passes.len() > MAX_PASSES {
            return Err(refuse("passes".into(), "must hold at most 10 passes"));
        }
        for (i, pass) in self.passes.iter().enumerate() {
            let field = |name: &str| format!("passes[{i}].{name}");
            match i.checked_sub(1).map(|p| &self.passes[p]) {
                None if !pass.enter_on.is_empty() => {
                    return Err(refuse(
                        field("enter_on"),
                        "the first pass is where every contact starts: it has no enter_on",
                    ))
                }
                None if pass.delay_secs != 0 => {
                    return Err(refuse(
                        field("delay_secs"),
                        "the first pass starts when the contact is due: its delay must be 0",
                    ))
                }
                None => {}
                Some(previous) => check_entry(pass, previous, &field("enter_on"))?,
            }
            for (name, value) in [
                ("delay_secs", pass.delay_secs),
                ("retry_delay_secs", pass.retry_delay_secs),
            ] {
                if !(0..=MAX_DELAY_SECS).contains(&value) {
                    return Err(refuse(
                        field(name),
                        &format!("must be between 0 and {MAX_DELAY_SECS} seconds (got {value})"),
                    ));
                }
            }
            let most = match pass.channel {
                PassChannel::Voice => MAX_ATTEMPTS_PER_PASS,
                PassChannel::Prompt => 1,
            };
            if !(1..=most).contains(&pass.max_attempts) {
                return Err(refuse(
                    field("max_attempts"),
                    &format!(
                        "must be between 1 and {most} for a {} pass (got {})",
                        channel_name(pass.channel),
                        pass.max_attempts
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A later pass must be enterable, and only by outcomes its previous pass
/// can give; an answer ends the contact, so it enters nothing.
fn check_entry(pass: &Pass, previous: &Pass, field: &str) -> Result<(), StrategyError> {
    let refuse = |reason: String| StrategyError {
        field: field.to_string(),
        reason,
    };
    if pass.enter_on.is_empty() {
        return Err(refuse(
            "must name at least one outcome of the previous pass, or no contact enters".into(),
        ));
    }
    for outcome in &pass.enter_on {
        if *outcome == Outcome::Answered {
            return Err(refuse(
                "`answered` ends the contact: no pass follows it".into(),
            ));
        }
        if outcome.channel() != previous.channel {
            return Err(refuse(format!(
                "`{outcome}` is not an outcome of the previous pass, a {} pass",
                channel_name(previous.channel)
            )));
        }
    }
    Ok(())
}

fn channel_name(channel: PassChannel) -> &'static str {
    match channel {
        PassChannel::Voice => "voice",
        PassChannel::Prompt => "prompt",
    }
}

/// One step a contact went through: which pass, what it gave, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassOutcome {
    /// Index into [`Strategy::passes`].
    pub pass: usize,
    pub outcome: Outcome,
    pub at: DateTime<Utc>,
}

/// What to do with a contact next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Call the contact at `at` (never before the `now` asked about).
    Voice { pass: usize, at: DateTime<Utc> },
    /// Send the contact the prompt at `at` (never before `now`).
    Prompt { pass: usize, at: DateTime<Utc> },
    /// Nothing more: the contact is finished.
    Done { reason: DoneReason },
}

/// Why a contact is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    /// A person answered.
    Answered,
    /// The last pass ended without an answer.
    PassesExhausted,
    /// The pass after `pass` does not take contacts whose pass ended with
    /// `outcome`.
    NotEntered { pass: usize, outcome: Outcome },
    /// The history names a pass the strategy no longer has (it was
    /// replaced by a shorter one).
    PassGone { pass: usize },
}

/// The contact's next step under `strategy`, given its `history` (oldest
/// first) and the time `now`.
///
/// A pass ends when its outcome is not retried within it or its attempts
/// are spent; the contact then enters the next pass only if that pass
/// names the outcome in `enter_on`. Because the strategy is read on every
/// call, replacing it affects every contact's next decision, while the
/// steps already taken stay as they were.
pub fn next_step(strategy: &Strategy, history: &[PassOutcome], now: DateTime<Utc>) -> NextStep {
    let Some(last) = history.last() else {
        return match strategy.passes.first() {
            Some(first) => step(first, 0, now, now),
            None => NextStep::Done {
                reason: DoneReason::PassesExhausted,
            },
        };
    };
    if last.outcome == Outcome::Answered {
        return NextStep::Done {
            reason: DoneReason::Answered,
        };
    }
    let Some(pass) = strategy.passes.get(last.pass) else {
        return NextStep::Done {
            reason: DoneReason::PassGone { pass: last.pass },
        };
    };
    let attempts = history.iter().filter(|h| h.pass == last.pass).count();
    let attempts = i64::try_from(attempts).unwrap_or(i64::MAX);
    if pass.channel == PassChannel::Voice
        && last.outcome.retried_within_pass()
        && attempts < pass.max_attempts
    {
        return step(pass, last.pass, after(last.at, pass.retry_delay_secs), now);
    }
    let following = last.pass + 1;
    match strategy.passes.get(following) {
        None => NextStep::Done {
            reason: DoneReason::PassesExhausted,
        },
        Some(next) if next.enter_on.contains(&last.outcome) => {
            step(next, following, after(last.at, next.delay_secs), now)
        }
        Some(_) => NextStep::Done {
            reason: DoneReason::NotEntered {
                pass: last.pass,
                outcome: last.outcome,
            },
        },
    }
}

fn step(pass: &Pass, index: usize, at: DateTime<Utc>, now: DateTime<Utc>) -> NextStep {
    let at = at.max(now);
    match pass.channel {
        PassChannel::Voice => NextStep::Voice { pass: index, at },
        PassChannel::Prompt => NextStep::Prompt { pass: index, at },
    }
}

/// `from` plus `secs`, saturating: a strategy that skipped validation
/// must not panic the dialler.
fn after(from: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    TimeDelta::try_seconds(secs.max(0))
        .and_then(|d| from.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, 9, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn voice(enter_on: &[Outcome], delay_secs: i64, max_attempts: i64) -> Pass {
        Pass {
            channel: PassChannel::Voice,
            enter_on: enter_on.to_vec(),
            delay_secs,
            max_attempts,
            retry_delay_secs: 300,
        }
    }

    fn prompt(enter_on: &[Outcome], delay_secs: i64) -> Pass {
        Pass {
            channel: PassChannel::Prompt,
            enter_on: enter_on.to_vec(),
            delay_secs,
            max_attempts: 1,
            retry_delay_secs: 0,
        }
    }

    /// Two calls, a prompt for those who never picked up, then one last
    /// call a day later for those the prompt reached.
    fn three_passes() -> Strategy {
        Strategy {
            passes: vec![
                voice(&[], 0, 2),
                prompt(&[Outcome::NoAnswer, Outcome::Machine], 3600),
                voice(&[Outcome::Prompted], 86_400, 1),
            ],
        }
    }

    fn h(pass: usize, outcome: Outcome, minutes: i64) -> PassOutcome {
        PassOutcome {
            pass,
            outcome,
            at: t(minutes),
        }
    }

    fn refusal(strategy: &Strategy) -> String {
        match strategy.validate() {
            Ok(()) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_default_is_one_voice_pass_of_three_calls_ten_minutes_apart() {
        let s = Strategy::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            next_step(&s, &[], t(0)),
            NextStep::Voice { pass: 0, at: t(0) }
        );
        let one = [h(0, Outcome::Busy, 1)];
        assert_eq!(
            next_step(&s, &one, t(2)),
            NextStep::Voice { pass: 0, at: t(11) }
        );
        let three = [
            h(0, Outcome::Busy, 1),
            h(0, Outcome::NoAnswer, 12),
            h(0, Outcome::NoAnswer, 23),
        ];
        assert_eq!(
            next_step(&s, &three, t(24)),
            NextStep::Done {
                reason: DoneReason::PassesExhausted
            }
        );
    }

    #[test]
    fn an_answer_ends_the_contact_whatever_passes_remain() {
        let s = three_passes();
        assert_eq!(
            next_step(&s, &[h(0, Outcome::Answered, 1)], t(2)),
            NextStep::Done {
                reason: DoneReason::Answered
            }
        );
    }

    #[test]
    fn a_contact_moves_through_the_passes_its_outcomes_enter() {
        let s = three_passes();
        let mut history = vec![h(0, Outcome::NoAnswer, 0)];
        assert_eq!(
            next_step(&s, &history, t(1)),
            NextStep::Voice { pass: 0, at: t(5) }
        );
        history.push(h(0, Outcome::NoAnswer, 5));
        assert_eq!(
            next_step(&s, &history, t(6)),
            NextStep::Prompt { pass: 1, at: t(65) }
        );
        history.push(h(1, Outcome::Prompted, 65));
        assert_eq!(
            next_step(&s, &history, t(66)),
            NextStep::Voice {
                pass: 2,
                at: t(65 + 24 * 60)
            }
        );
        history.push(h(2, Outcome::NoAnswer, 65 + 24 * 60));
        assert_eq!(
            next_step(&s, &history, t(2000)),
            NextStep::Done {
                reason: DoneReason::PassesExhausted
            }
        );
    }

    #[test]
    fn an_outcome_the_next_pass_does_not_take_ends_the_contact() {
        let s = three_passes();
        // Failed is not retried within the pass, and the prompt pass does
        // not take it.
        assert_eq!(
            next_step(&s, &[h(0, Outcome::Failed, 0)], t(1)),
            NextStep::Done {
                reason: DoneReason::NotEntered {
                    pass: 0,
                    outcome: Outcome::Failed
                }
            }
        );
        let unsent = [h(0, Outcome::Machine, 0), h(1, Outcome::PromptFailed, 60)];
        assert_eq!(
            next_step(&s, &unsent, t(61)),
            NextStep::Done {
                reason: DoneReason::NotEntered {
                    pass: 1,
                    outcome: Outcome::PromptFailed
                }
            }
        );
    }

    #[test]
    fn a_machine_leaves_the_pass_at_once_and_a_missing_agent_is_retried() {
        let s = three_passes();
        assert_eq!(
            next_step(&s, &[h(0, Outcome::Machine, 0)], t(1)),
            NextStep::Prompt { pass: 1, at: t(60) }
        );
        assert_eq!(
            next_step(&s, &[h(0, Outcome::AgentUnavailable, 0)], t(1)),
            NextStep::Voice { pass: 0, at: t(5) }
        );
    }

    #[test]
    fn a_step_already_due_is_due_now() {
        let s = three_passes();
        assert_eq!(
            next_step(&s, &[h(0, Outcome::Busy, 0)], t(90)),
            NextStep::Voice { pass: 0, at: t(90) }
        );
    }

    #[test]
    fn a_history_beyond_a_replaced_strategy_ends_the_contact() {
        let s = Strategy::default();
        assert_eq!(
            next_step(&s, &[h(2, Outcome::NoAnswer, 0)], t(1)),
            NextStep::Done {
                reason: DoneReason::PassGone { pass: 2 }
            }
        );
    }

    #[test]
    fn a_prompt_pass_may_come_last() {
        let s = Strategy {
            passes: vec![voice(&[], 0, 1), prompt(&[Outcome::NoAnswer], 0)],
        };
        assert_eq!(s.validate(), Ok(()));
        let history = [h(0, Outcome::NoAnswer, 0), h(1, Outcome::Prompted, 0)];
        assert_eq!(
            next_step(&s, &history, t(1)),
            NextStep::Done {
                reason: DoneReason::PassesExhausted
            }
        );
    }

    #[test]
    fn every_refusal_names_its_field() {
        type Edit = fn(&mut Strategy);
        let cases: Vec<(Edit, &str)> = vec![
            (|s| s.passes.clear(), "passes: must hold at least one"),
            (
                |s| s.passes = vec![voice(&[], 0, 1); 11],
                "passes: must hold at most 10",
            ),
            (
                |s| s.passes[0].enter_on = vec![Outcome::Busy],
                "passes[0].enter_on: the first pass",
            ),
            (
                |s| s.passes[0].delay_secs = 60,
                "passes[0].delay_secs: the first pass",
            ),
            (
                |s| s.passes[0].max_attempts = 0,
                "passes[0].max_attempts: must be between 1 and 20",
            ),
            (
                |s| s.passes[0].max_attempts = 21,
                "passes[0].max_attempts: must be between 1 and 20",
            ),
            (
                |s| s.passes[0].retry_delay_secs = -1,
                "passes[0].retry_delay_secs: must be between 0",
            ),
            (
                |s| s.passes[1].delay_secs = -5,
                "passes[1].delay_secs: must be between 0",
            ),
            (
                |s| s.passes[1].max_attempts = 2,
                "passes[1].max_attempts: must be between 1 and 1 for a prompt pass",
            ),
            (
                |s| s.passes[1].enter_on.clear(),
                "passes[1].enter_on: must name at least one",
            ),
            (
                |s| s.passes[1].enter_on.push(Outcome::Answered),
                "passes[1].enter_on: `answered` ends the contact",
            ),
            (
                |s| s.passes[1].enter_on = vec![Outcome::Prompted],
                "passes[1].enter_on: `prompted` is not an outcome of the previous pass, a voice",
            ),
            (
                |s| s.passes[2].enter_on = vec![Outcome::Busy],
                "passes[2].enter_on: `busy` is not an outcome of the previous pass, a prompt",
            ),
        ];
        for (edit, expected) in cases {
            let mut s = three_passes();
            edit(&mut s);
            let got = refusal(&s);
            assert!(
                got.starts_with(expected),
                "expected `{expected}`, got `{got}`"
            );
        }
        assert_eq!(three_passes().validate(), Ok(()));
    }

    #[test]
    fn reads_json_with_defaults_and_refuses_unknown_fields() {
        let json = r#"{"passes": [
            {"channel": "voice", "max_attempts": 3, "retry_delay_secs": 600},
            {"channel": "prompt", "enter_on": ["no-answer", "agent-unavailable"], "delay_secs": 1800}
        ]}"#;
        let s: Strategy = serde_json::from_str(json).unwrap();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.passes[1].max_attempts, 1);
        assert_eq!(
            s.passes[1].enter_on,
            vec![Outcome::NoAnswer, Outcome::AgentUnavailable]
        );
        assert!(serde_json::from_str::<Strategy>(r#"{"passes": [], "speed": 1}"#).is_err());
        assert!(serde_json::from_str::<Strategy>(
            r#"{"passes": [{"channel": "voice", "retries": 2}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Strategy>(r#"{"passes": [{"channel": "fax"}]}"#).is_err());
    }

    #[test]
    fn outcomes_read_back_from_their_strings() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
            assert_eq!(
                serde_json::to_string(&outcome).unwrap(),
                format!("\"{outcome}\"")
            );
        }
        assert!("hung-up".parse::<Outcome>().is_err());
        for outcome in CallOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<CallOutcome>(), Ok(outcome));
            assert_eq!(Outcome::from(outcome).channel(), PassChannel::Voice);
        }
        assert!("prompted".parse::<CallOutcome>().is_err());
    }
}
