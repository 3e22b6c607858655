//! Ordering a prompt's options for one person.
//!
//! [`OptionRanker`] is the one interface callers use; [`HistoryRanker`] is
//! the rule-based ranker that serves until a learned contact-time model
//! replaces it. Its rules, over the prompts within the lookback:
//!
//! 1. Options the person has stopped seeing sink: an option kind
//!    ([`OptionKey`]) offered at least `sink_after_offers` times and never
//!    picked goes after all the others. It stays in the list (habits
//!    change), it just stops taking the best places.
//! 2. Among the rest, an option whose time falls in a part of the day
//!    ([`PartOfDay`], the person's local clock) the person picked before
//!    comes first; more picks rank higher. "Now" and delays count by the
//!    time they would call at.
//! 3. Otherwise the order given is kept (the sort is stable), and
//!    "Don't call" always ends the list.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::history::choice_instant;
use super::{ContactHistory, OptionKey, PartOfDay, RankingPolicy};
use crate::consent::{Choice, OfferedChoice};

/// Orders a prompt's candidate options for one person.
pub trait OptionRanker {
    /// `candidates` in the order this person should see them. A ranker
    /// reorders; it should neither add nor drop options (the prompt builder
    /// restores any it drops and ignores any it adds).
    fn rank(
        &self,
        history: &ContactHistory,
        candidates: Vec<OfferedChoice>,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Vec<OfferedChoice>;
}

/// The rule-based ranker described in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRanker {
    pub policy: RankingPolicy,
}

impl HistoryRanker {
    pub fn new(policy: RankingPolicy) -> HistoryRanker {
        HistoryRanker { policy }
    }
}

/// What the history says about option kinds and parts of the day.
#[derive(Default)]
struct Habits {
    picks_by_part: HashMap<PartOfDay, usize>,
    offered_by_key: HashMap<OptionKey, usize>,
    picked_keys: HashSet<OptionKey>,
}

impl Habits {
    fn learn(
        history: &ContactHistory,
        zone: Tz,
        now: DateTime<Utc>,
        policy: &RankingPolicy,
    ) -> Habits {
        let mut habits = Habits::default();
        for prompt in history.within(now, policy.lookback) {
            // Once per prompt: three morning slots in one prompt are one
            // chance to pick a morning slot, not three.
            let offered: HashSet<OptionKey> = prompt
                .offered
                .iter()
                .map(|o| OptionKey::of(&o.choice, zone))
                .collect();
            for key in offered {
                *habits.offered_by_key.entry(key).or_default() += 1;
            }
            let Some(picked) = &prompt.picked else {
                continue;
            };
            habits.picked_keys.insert(OptionKey::of(picked, zone));
            if let Some(instant) = prompt.picked_instant() {
                *habits
                    .picks_by_part
                    .entry(PartOfDay::of(instant, zone))
                    .or_default() += 1;
            }
        }
        habits
    }

    fn sunk(&self, key: OptionKey, policy: &RankingPolicy) -> bool {
        let offered = self.offered_by_key.get(&key).copied().unwrap_or(0);
        offered >= policy.sink_after_offers.max(1) && !self.picked_keys.contains(&key)
    }

    fn score(&self, choice: &Choice, zone: Tz, now: DateTime<Utc>) -> usize {
        choice_instant(choice, now)
            .and_then(|instant| self.picks_by_part.get(&PartOfDay::of(instant, zone)))
            .copied()
            .unwrap_or(0)
    }
}

impl OptionRanker for HistoryRanker {
    fn rank(
        &self,
        history: &ContactHistory,
        candidates: Vec<OfferedChoice>,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Vec<OfferedChoice> {
        let habits = Habits::learn(history, zone, now, &self.policy);
        let (declines, options): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|c| c.choice == Choice::Decline);
        let mut keyed: Vec<(bool, Reverse<usize>, OfferedChoice)> = options
            .into_iter()
            .map(|option| {
                let sunk = habits.sunk(OptionKey::of(&option.choice, zone), &self.policy);
                let score = habits.score(&option.choice, zone, now);
                (sunk, Reverse(score), option)
            })
            .collect();
        // Stable: equal keys keep the order the candidates came in.
        keyed.sort_by_key(|(sunk, score, _)| (*sunk, *score));
        keyed
            .into_iter()
            .map(|(_, _, option)| option)
            .chain(declines)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{build_options, OptionPolicy};
    use crate::timing::PastPrompt;
    use chrono::{TimeDelta, TimeZone};
    use chrono_tz::Europe::Paris;

    /// 09:00 on a June day in Paris, `days_ago` days before the 30th.
    fn morning(days_ago: i64) -> DateTime<Utc> {
        Paris
            .with_ymd_and_hms(2026, 6, 30, 9, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
            - TimeDelta::days(days_ago)
    }

    fn offered_at(sent_at: DateTime<Utc>) -> Vec<OfferedChoice> {
        build_options(&OptionPolicy::default(), Paris, sent_at, |c| c)
    }

    /// A prompt sent at `sent_at` in which the person picked the option
    /// labelled `label`, ten minutes later.
    fn picked(sent_at: DateTime<Utc>, label: &str) -> PastPrompt {
        let offered = offered_at(sent_at);
        let choice = offered
            .iter()
            .find(|o| o.label == label)
            .map(|o| o.choice.clone())
            .unwrap();
        PastPrompt {
            sent_at,
            offered,
            picked: Some(choice),
            answered_at: Some(sent_at + TimeDelta::minutes(10)),
            declined: false,
        }
    }

    /// Like [`picked`], but the prompt offered only that option and
    /// "Don't call", so that nothing else counts as offered.
    fn picked_alone(sent_at: DateTime<Utc>, label: &str) -> PastPrompt {
        let mut prompt = picked(sent_at, label);
        prompt
            .offered
            .retain(|o| o.label == label || o.choice == Choice::Decline);
        prompt
    }

    fn unanswered(sent_at: DateTime<Utc>, offered: Vec<OfferedChoice>) -> PastPrompt {
        PastPrompt {
            sent_at,
            offered,
            picked: None,
            answered_at: None,
            declined: false,
        }
    }

    fn ranked_labels(history: &ContactHistory, now: DateTime<Utc>) -> Vec<String> {
        let ranker = HistoryRanker::default();
        build_options(&OptionPolicy::default(), Paris, now, |c| {
            ranker.rank(history, c, Paris, now)
        })
        .into_iter()
        .map(|o| o.label)
        .collect()
    }

    #[test]
    fn without_history_the_natural_order_stays() {
        let now = morning(0);
        let natural: Vec<String> = offered_at(now).into_iter().map(|o| o.label).collect();
        assert_eq!(ranked_labels(&ContactHistory::default(), now), natural);
    }

    #[test]
    fn a_person_who_chose_evenings_three_times_sees_evenings_first() {
        let history = ContactHistory::new(vec![
            picked(morning(20), "Evening 5–9 PM"),
            picked(morning(12), "Evening 5–9 PM"),
            picked(morning(5), "Evening 5–9 PM"),
        ]);
        // At 11:00 the slots are 12:00, 15:00 and 18:00: one is an evening.
        let now = morning(0) + TimeDelta::hours(2);
        assert_eq!(
            ranked_labels(&history, now),
            [
                "Today 6:00 PM",
                "Evening 5–9 PM",
                "Call me now",
                "In 15 minutes",
                "In 30 minutes",
                "Today 12:00 PM",
                "Today 3:00 PM",
                "Afternoon 12–5 PM",
                "Tomorrow morning",
                "Don't call",
            ]
        );
    }

    #[test]
    fn more_picks_rank_higher() {
        let history = ContactHistory::new(vec![
            picked_alone(morning(20), "Evening 5–9 PM"),
            picked_alone(morning(15), "Afternoon 12–5 PM"),
            picked_alone(morning(10), "Afternoon 12–5 PM"),
        ]);
        let labels = ranked_labels(&history, morning(0));
        assert_eq!(
            labels[..3],
            ["Today 1:00 PM", "Today 4:00 PM", "Afternoon 12–5 PM"]
        );
        assert_eq!(labels[3], "Evening 5–9 PM");
    }

    #[test]
    fn an_option_offered_often_and_never_picked_sinks() {
        // "Call me now" and "In 15 minutes" offered three times; the person
        // always took the delay.
        let now = morning(0);
        let history = ContactHistory::new(
            (1..=3)
                .map(|week| {
                    let sent_at = now - TimeDelta::days(7 * week);
                    let mut prompt = picked(sent_at, "In 15 minutes");
                    prompt.offered.retain(|o| {
                        matches!(o.choice, Choice::Now | Choice::After(_) | Choice::Decline)
                            && o.postback != "after:30"
                    });
                    prompt
                })
                .collect(),
        );
        assert_eq!(
            ranked_labels(&history, now),
            [
                // Morning picks lift what calls in the morning.
                "In 15 minutes",
                "In 30 minutes",
                "Today 10:00 AM",
                "Morning 10 AM–12 PM",
                "Today 1:00 PM",
                "Today 4:00 PM",
                "Afternoon 12–5 PM",
                "Evening 5–9 PM",
                // Offered three times, never taken: last before "Don't call".
                "Call me now",
                "Don't call",
            ]
        );
    }

    #[test]
    fn two_offers_are_not_enough_to_sink() {
        let now = morning(0);
        let history = ContactHistory::new(vec![
            unanswered(morning(10), offered_at(morning(10))),
            unanswered(morning(9), offered_at(morning(9))),
        ]);
        assert_eq!(ranked_labels(&history, now)[0], "Call me now");
        let history = ContactHistory::new(
            [10, 9, 8]
                .into_iter()
                .map(|d| unanswered(morning(d), offered_at(morning(d))))
                .collect(),
        );
        // Everything offered three times and never picked: all sink
        // together and keep their order.
        let natural: Vec<String> = offered_at(now).into_iter().map(|o| o.label).collect();
        assert_eq!(ranked_labels(&history, now), natural);
    }

    #[test]
    fn the_lookback_ignores_old_entries() {
        let history = ContactHistory::new(vec![
            picked(morning(120), "Evening 5–9 PM"),
            picked(morning(110), "Evening 5–9 PM"),
            picked(morning(91), "Evening 5–9 PM"),
        ]);
        let now = morning(0);
        let natural: Vec<String> = offered_at(now).into_iter().map(|o| o.label).collect();
        assert_eq!(ranked_labels(&history, now), natural);
        // The same picks inside 90 days do count.
        let recent = ContactHistory::new(vec![
            picked(morning(89), "Evening 5–9 PM"),
            picked(morning(60), "Evening 5–9 PM"),
            picked(morning(30), "Evening 5–9 PM"),
        ]);
        assert_eq!(ranked_labels(&recent, now)[0], "Evening 5–9 PM");
        // A shorter lookback forgets them.
        let ranker = HistoryRanker::new(RankingPolicy {
            lookback: TimeDelta::days(14),
            ..RankingPolicy::default()
        });
        let ranked = ranker.rank(&recent, offered_at(now), Paris, now);
        assert_eq!(ranked, offered_at(now));
    }

    #[test]
    fn decline_stays_last_even_if_the_person_always_declines() {
        let now = morning(0);
        let mut prompt = unanswered(morning(3), offered_at(morning(3)));
        prompt.picked = Some(Choice::Decline);
        prompt.declined = true;
        let history = ContactHistory::new(vec![prompt.clone(), prompt.clone(), prompt]);
        let ranker = HistoryRanker::default();
        let ranked = ranker.rank(&history, offered_at(now), Paris, now);
        assert_eq!(ranked.last().map(|o| &o.choice), Some(&Choice::Decline));
        assert_eq!(ranked.len(), offered_at(now).len());
    }
}
