//! Whether a person may be prompted at all right now.
//!
//! Two rules protect people from being pestered, whatever the enterprise
//! wants: after a "no", a cool-down; and at most a few prompts per rolling
//! week. Each refusal says when asking becomes possible again, so that the
//! caller can schedule instead of retrying blindly. When both apply, the
//! cool-down is reported: it is the person's own wish, and it usually ends
//! later.

use chrono::{DateTime, Utc};

use super::{ContactHistory, RankingPolicy};

/// Why a person may not be prompted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PromptRefusal {
    #[error("the person declined recently; they may be asked again from {until}")]
    CoolingDown { until: DateTime<Utc> },
    #[error("the person has had the most prompts allowed this week; next from {next_allowed}")]
    WeeklyCapReached { next_allowed: DateTime<Utc> },
}

impl PromptRefusal {
    /// Stable identifier for APIs, metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            PromptRefusal::CoolingDown { .. } => "cooling_down",
            PromptRefusal::WeeklyCapReached { .. } => "weekly_cap_reached",
        }
    }

    /// The earliest instant a prompt may be sent.
    pub fn retry_at(&self) -> DateTime<Utc> {
        match self {
            PromptRefusal::CoolingDown { until } => *until,
            PromptRefusal::WeeklyCapReached { next_allowed } => *next_allowed,
        }
    }
}

/// Checks the cool-down and the weekly cap for a prompt sent at `now`.
///
/// - Cool-down: refused while `now` is before the latest decline plus
///   `cool_down`.
/// - Cap: the prompts sent within the rolling `cap_window` before `now`
///   (a prompt exactly `cap_window` old no longer counts) must number fewer
///   than `weekly_cap`; when they do not, the next prompt is allowed once
///   enough of the oldest have left the window. A cap of 0 forbids
///   prompting until the policy changes, reported as a week from now.
pub fn may_prompt(
    history: &ContactHistory,
    now: DateTime<Utc>,
    policy: &RankingPolicy,
) -> Result<(), PromptRefusal> {
    let last_decline = history.prompts.iter().filter_map(|p| p.declined_at()).max();
    if let Some(declined_at) = last_decline {
        let until = declined_at + policy.cool_down;
        if now < until {
            return Err(PromptRefusal::CoolingDown { until });
        }
    }

    let mut recent: Vec<DateTime<Utc>> = history
        .within(now, policy.cap_window)
        .map(|p| p.sent_at)
        .collect();
    if recent.len() < policy.weekly_cap {
        return Ok(());
    }
    recent.sort_unstable();
    // For one more prompt to fit, all but `weekly_cap - 1` must have left
    // the window; the last of those to leave decides.
    let must_leave = recent.len() + 1 - policy.weekly_cap;
    let next_allowed = match recent.get(must_leave - 1) {
        Some(sent_at) => *sent_at + policy.cap_window,
        None => now + policy.cap_window,
    };
    Err(PromptRefusal::WeeklyCapReached {
        next_allowed: next_allowed.max(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Choice;
    use crate::timing::PastPrompt;
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 30, 10, 0, 0).unwrap()
    }

    fn ago(days: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(days)
    }

    fn sent(at: DateTime<Utc>) -> PastPrompt {
        PastPrompt {
            sent_at: at,
            offered: vec![],
            picked: None,
            answered_at: None,
            declined: false,
        }
    }

    fn declined(at: DateTime<Utc>) -> PastPrompt {
        PastPrompt {
            picked: Some(Choice::Decline),
            answered_at: Some(at + TimeDelta::minutes(5)),
            declined: true,
            ..sent(at)
        }
    }

    fn check(prompts: Vec<PastPrompt>) -> Result<(), PromptRefusal> {
        may_prompt(
            &ContactHistory::new(prompts),
            now(),
            &RankingPolicy::default(),
        )
    }

    #[test]
    fn a_new_person_may_be_asked() {
        assert_eq!(check(vec![]), Ok(()));
    }

    #[test]
    fn the_cool_down_holds_after_a_decline() {
        let refused = check(vec![declined(ago(3))]);
        assert_eq!(
            refused,
            Err(PromptRefusal::CoolingDown {
                until: ago(3) + TimeDelta::minutes(5) + TimeDelta::days(30)
            })
        );
        assert_eq!(refused.unwrap_err().code(), "cooling_down");
        assert_eq!(check(vec![declined(ago(31))]), Ok(()));
        // A STOP recorded without an answer time counts from the prompt.
        let mut stop = sent(ago(29));
        stop.declined = true;
        assert_eq!(
            check(vec![stop]),
            Err(PromptRefusal::CoolingDown {
                until: ago(29) + TimeDelta::days(30)
            })
        );
    }

    #[test]
    fn the_latest_decline_decides() {
        let refused = check(vec![
            declined(ago(40)),
            declined(ago(10)),
            declined(ago(20)),
        ]);
        assert_eq!(
            refused.map_err(|r| r.retry_at()),
            Err(ago(10) + TimeDelta::minutes(5) + TimeDelta::days(30))
        );
    }

    #[test]
    fn the_weekly_cap_holds() {
        let refused = check(vec![sent(ago(1)), sent(ago(6)), sent(ago(3))]);
        assert_eq!(
            refused,
            Err(PromptRefusal::WeeklyCapReached {
                next_allowed: ago(6) + TimeDelta::days(7)
            })
        );
        // Two in the window and older ones outside: allowed.
        let prompts = vec![
            sent(ago(1)),
            sent(ago(6)),
            sent(ago(7)),
            sent(ago(8)),
            sent(ago(20)),
        ];
        assert_eq!(check(prompts), Ok(()));
    }

    #[test]
    fn the_cap_reopens_exactly_when_the_oldest_leaves() {
        let history = ContactHistory::new(vec![sent(ago(1)), sent(ago(6)), sent(ago(3))]);
        let policy = RankingPolicy::default();
        let reopen = ago(6) + TimeDelta::days(7);
        assert!(may_prompt(&history, reopen - TimeDelta::seconds(1), &policy).is_err());
        assert_eq!(may_prompt(&history, reopen, &policy), Ok(()));
    }

    #[test]
    fn over_the_cap_waits_for_enough_to_leave() {
        // Four in the window (the cap was lowered since): two must leave.
        let history =
            ContactHistory::new(vec![sent(ago(1)), sent(ago(2)), sent(ago(5)), sent(ago(6))]);
        let refused = may_prompt(&history, now(), &RankingPolicy::default());
        assert_eq!(
            refused,
            Err(PromptRefusal::WeeklyCapReached {
                next_allowed: ago(5) + TimeDelta::days(7)
            })
        );
        let none = RankingPolicy {
            weekly_cap: 0,
            ..RankingPolicy::default()
        };
        assert_eq!(
            may_prompt(&ContactHistory::default(), now(), &none),
            Err(PromptRefusal::WeeklyCapReached {
                next_allowed: now() + TimeDelta::days(7)
            })
        );
    }

    #[test]
    fn the_cool_down_wins_over_the_cap() {
        let refused = check(vec![declined(ago(1)), sent(ago(2)), sent(ago(3))]);
        assert!(matches!(refused, Err(PromptRefusal::CoolingDown { .. })));
    }
}
