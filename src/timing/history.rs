//! A person's contact history, as ranking and admission read it.
//!
//! Only what the rules need: when each prompt went out, what it offered,
//! what the person picked and whether they declined. Options are compared
//! across prompts by their [`OptionKey`], not their postback: "Today
//! 6:00 PM" on Monday and "Tomorrow 7:00 PM" on Friday are different
//! postbacks but the same habit, an evening slot.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use crate::consent::{Choice, OfferedChoice};

/// One prompt sent to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastPrompt {
    pub sent_at: DateTime<Utc>,
    /// The options, as offered.
    pub offered: Vec<OfferedChoice>,
    /// The option the person picked, if they answered with one.
    pub picked: Option<Choice>,
    /// When the answer arrived; "now" and delays are counted from it.
    pub answered_at: Option<DateTime<Utc>>,
    /// The person said no: picked "Don't call", replied STOP, or declined
    /// through another channel.
    pub declined: bool,
}

impl PastPrompt {
    /// When the person declined, if they did; a decline with no recorded
    /// answer time counts from the prompt itself.
    pub fn declined_at(&self) -> Option<DateTime<Utc>> {
        let declined = self.declined || self.picked == Some(Choice::Decline);
        declined.then(|| self.answered_at.unwrap_or(self.sent_at))
    }

    /// The instant the picked option named (none for a decline).
    pub fn picked_instant(&self) -> Option<DateTime<Utc>> {
        let reference = self.answered_at.unwrap_or(self.sent_at);
        self.picked
            .as_ref()
            .and_then(|choice| choice_instant(choice, reference))
    }
}

/// Everything known about prompts to one person, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactHistory {
    pub prompts: Vec<PastPrompt>,
}

impl ContactHistory {
    pub fn new(prompts: Vec<PastPrompt>) -> ContactHistory {
        ContactHistory { prompts }
    }

    /// Prompts sent less than `lookback` before `now`. Prompts stamped
    /// after `now` (another node's clock running ahead) are kept: ignoring
    /// them would let a person be asked twice.
    pub fn within(
        &self,
        now: DateTime<Utc>,
        lookback: TimeDelta,
    ) -> impl Iterator<Item = &PastPrompt> {
        let since = now - lookback;
        self.prompts.iter().filter(move |p| p.sent_at > since)
    }
}

/// A coarse part of the local day, the unit in which habits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartOfDay {
    /// 22:00–05:00.
    Night,
    /// 05:00–12:00.
    Morning,
    /// 12:00–17:00.
    Afternoon,
    /// 17:00–22:00.
    Evening,
}

impl PartOfDay {
    /// The part of the day `instant` falls in, on the wall clock in `zone`.
    pub fn of(instant: DateTime<Utc>, zone: Tz) -> PartOfDay {
        match instant.with_timezone(&zone).hour() {
            5..=11 => PartOfDay::Morning,
            12..=16 => PartOfDay::Afternoon,
            17..=21 => PartOfDay::Evening,
            _ => PartOfDay::Night,
        }
    }
}

/// What an option is, across prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKey {
    Now,
    After(TimeDelta),
    Slot(PartOfDay),
    Range(PartOfDay),
    Decline,
}

impl OptionKey {
    /// The key of `choice` for a person in `zone`; a delay is its own key
    /// whatever the hour, since "in 15 minutes" is a habit of its own.
    pub fn of(choice: &Choice, zone: Tz) -> OptionKey {
        match choice {
            Choice::Now => OptionKey::Now,
            Choice::After(delay) => OptionKey::After(*delay),
            Choice::Slot(slot) => OptionKey::Slot(PartOfDay::of(slot.start, zone)),
            Choice::Range(range) => {
                OptionKey::Range(PartOfDay::of(midpoint(range.start, range.end), zone))
            }
            Choice::Decline => OptionKey::Decline,
        }
    }
}

/// The instant a choice names when made at `reference`: a range counts by
/// its middle, so "Evening 5–9 PM" is an evening and "12–5 PM" an
/// afternoon even when clipped at one end.
pub fn choice_instant(choice: &Choice, reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match choice {
        Choice::Now => Some(reference),
        Choice::After(delay) => Some(reference + *delay),
        Choice::Slot(slot) => Some(slot.start),
        Choice::Range(range) => Some(midpoint(range.start, range.end)),
        Choice::Decline => None,
    }
}

fn midpoint(start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
    start + (end - start) / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::SlotOption;
    use chrono::TimeZone;
    use chrono_tz::Europe::Paris;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Paris
            .with_ymd_and_hms(2026, 6, d, h, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parts_of_day_follow_the_local_clock() {
        assert_eq!(PartOfDay::of(at(1, 4), Paris), PartOfDay::Night);
        assert_eq!(PartOfDay::of(at(1, 5), Paris), PartOfDay::Morning);
        assert_eq!(PartOfDay::of(at(1, 12), Paris), PartOfDay::Afternoon);
        assert_eq!(PartOfDay::of(at(1, 17), Paris), PartOfDay::Evening);
        assert_eq!(PartOfDay::of(at(1, 22), Paris), PartOfDay::Night);
        // 17:00 UTC is 19:00 in Paris but 13:00 in New York.
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 17, 0, 0).unwrap();
        assert_eq!(PartOfDay::of(t, Paris), PartOfDay::Evening);
        assert_eq!(
            PartOfDay::of(t, chrono_tz::America::New_York),
            PartOfDay::Afternoon
        );
    }

    #[test]
    fn keys_and_instants() {
        let range = Choice::Range(SlotOption {
            start: at(1, 15),
            end: at(1, 21),
        });
        assert_eq!(
            OptionKey::of(&range, Paris),
            OptionKey::Range(PartOfDay::Evening)
        );
        assert_eq!(choice_instant(&range, at(1, 9)), Some(at(1, 18)));
        let later = Choice::After(TimeDelta::hours(2));
        assert_eq!(choice_instant(&later, at(1, 9)), Some(at(1, 11)));
        assert_eq!(choice_instant(&Choice::Decline, at(1, 9)), None);
    }

    #[test]
    fn a_decline_counts_from_the_answer_or_else_the_prompt() {
        let mut p = PastPrompt {
            sent_at: at(1, 9),
            offered: vec![],
            picked: Some(Choice::Decline),
            answered_at: Some(at(1, 10)),
            declined: false,
        };
        assert_eq!(p.declined_at(), Some(at(1, 10)));
        p.picked = None;
        p.answered_at = None;
        assert_eq!(p.declined_at(), None);
        p.declined = true;
        assert_eq!(p.declined_at(), Some(at(1, 9)));
    }

    #[test]
    fn within_keeps_the_lookback_and_the_future() {
        let prompt = |sent_at| PastPrompt {
            sent_at,
            offered: vec![],
            picked: None,
            answered_at: None,
            declined: false,
        };
        let now = at(30, 12);
        let history = ContactHistory::new(vec![
            prompt(now - TimeDelta::days(91)),
            prompt(now - TimeDelta::days(90)),
            prompt(now - TimeDelta::days(89)),
            prompt(now + TimeDelta::minutes(1)),
        ]);
        assert_eq!(history.within(now, TimeDelta::days(90)).count(), 2);
    }
}
