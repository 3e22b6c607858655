//! What a placed call's outcome means for the store: the attempt's state,
//! the campaign's outcome history, and whether the campaign's strategy
//! calls the person again (and when).

use chrono::{DateTime, Utc};

use crate::b2bua::core::originate::PlacedOutcome;
pub(super) use crate::pacing::strategy::CallOutcome;
pub(super) use crate::pacing::strategy::NextStep;
use crate::pacing::strategy::{next_step, Outcome, PassOutcome, Strategy};
use crate::store::scheduler::{Attempt, AttemptOutcome};

pub(super) fn attempt_outcome(placed: PlacedOutcome) -> AttemptOutcome {
    match placed {
        PlacedOutcome::Answered => AttemptOutcome::Answered,
        PlacedOutcome::Busy => AttemptOutcome::Busy,
        PlacedOutcome::NoAnswer => AttemptOutcome::NoAnswer,
        PlacedOutcome::Failed { .. } => AttemptOutcome::Failed,
        PlacedOutcome::Machine => AttemptOutcome::Machine,
        PlacedOutcome::Abandoned => AttemptOutcome::Abandoned,
        PlacedOutcome::AgentUnavailable { .. } => AttemptOutcome::AgentUnavailable,
    }
}

pub(super) fn call_outcome(placed: PlacedOutcome) -> CallOutcome {
    match placed {
        PlacedOutcome::Answered => CallOutcome::Answered,
        PlacedOutcome::Busy => CallOutcome::Busy,
        PlacedOutcome::NoAnswer => CallOutcome::NoAnswer,
        PlacedOutcome::Failed { .. } => CallOutcome::Failed,
        PlacedOutcome::Machine => CallOutcome::Machine,
        PlacedOutcome::Abandoned => CallOutcome::Abandoned,
        PlacedOutcome::AgentUnavailable { .. } => CallOutcome::AgentUnavailable,
    }
}

/// When the callback is to be dialled again, if ever, after attempt
/// `current` ended with `outcome` (see [`next`]).
#[cfg(test)]
pub(super) fn retry_at(
    strategy: &Strategy,
    attempts: &[Attempt],
    current: &str,
    outcome: AttemptOutcome,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match next(strategy, attempts, current, outcome, now) {
        NextStep::Voice { at, .. } => Some(at),
        NextStep::Prompt { .. } | NextStep::Done { .. } => None,
    }
}

/// The strategy's next step for the callback after attempt `current`
/// ended with `outcome`. The passes of earlier attempts are not stored:
/// they are replayed through the strategy, which gives the same passes as
/// long as it is unchanged, and the current strategy's reading when an
/// operator replaced it (it applies to contacts not yet dialled).
pub(super) fn next(
    strategy: &Strategy,
    attempts: &[Attempt],
    current: &str,
    outcome: AttemptOutcome,
    now: DateTime<Utc>,
) -> NextStep {
    let mut history: Vec<PassOutcome> = Vec::new();
    let earlier = attempts.iter().filter(|a| a.id != current).filter_map(|a| {
        let outcome = a.state.parse::<Outcome>().ok()?;
        Some((outcome, a.finished_at.unwrap_or(a.created_at)))
    });
    let this = std::iter::once((
        outcome
            .as_str()
            .parse::<Outcome>()
            .unwrap_or(Outcome::Failed),
        now,
    ));
    for (outcome, at) in earlier.chain(this) {
        let pass = match next_step(strategy, &history, at) {
            NextStep::Voice { pass, .. } | NextStep::Prompt { pass, .. } => pass,
            NextStep::Done { .. } => history.last().map_or(0, |h| h.pass),
        };
        history.push(PassOutcome { pass, outcome, at });
    }
    next_step(strategy, &history, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn attempt(id: &str, state: &str, at: DateTime<Utc>) -> Attempt {
        Attempt {
            id: id.into(),
            callback_id: "cb".into(),
            node: "n".into(),
            state: state.into(),
            created_at: at,
            finished_at: Some(at),
        }
    }

    #[test]
    fn the_default_strategy_retries_a_busy_line_then_gives_up_after_three_tries() {
        let strategy = Strategy::default();
        let now = Utc::now();
        let first = retry_at(&strategy, &[], "a1", AttemptOutcome::Busy, now);
        assert!(
            first.is_some_and(|at| at > now),
            "retried later, not at once"
        );
        let two = [attempt("a1", "busy", now - TimeDelta::minutes(20))];
        assert!(retry_at(&strategy, &two, "a2", AttemptOutcome::NoAnswer, now).is_some());
        let three = [
            attempt("a1", "busy", now - TimeDelta::minutes(40)),
            attempt("a2", "no-answer", now - TimeDelta::minutes(20)),
        ];
        assert_eq!(
            retry_at(&strategy, &three, "a3", AttemptOutcome::NoAnswer, now),
            None,
            "attempts spent"
        );
    }

    #[test]
    fn an_answer_or_a_failure_ends_the_callback() {
        let strategy = Strategy::default();
        let now = Utc::now();
        assert_eq!(
            retry_at(&strategy, &[], "a1", AttemptOutcome::Answered, now),
            None
        );
        assert_eq!(
            retry_at(&strategy, &[], "a1", AttemptOutcome::Failed, now),
            None
        );
    }

    #[test]
    fn every_placed_outcome_has_a_stored_twin() {
        for placed in [
            PlacedOutcome::Answered,
            PlacedOutcome::Busy,
            PlacedOutcome::NoAnswer,
            PlacedOutcome::Failed {
                code: 503,
                retry_after: None,
            },
            PlacedOutcome::Machine,
            PlacedOutcome::Abandoned,
            PlacedOutcome::AgentUnavailable { code: 486 },
        ] {
            assert_eq!(attempt_outcome(placed).as_str(), placed.as_str());
            assert_eq!(call_outcome(placed).as_str(), placed.as_str());
        }
    }
}
