//! Wall-clock phrases ("tomorrow 9am", "after 6", "this evening") as
//! instants, in the person's time zone.
//!
//! Everything here works on the local calendar of the zone and converts to
//! UTC only at the end, with the same rule as [`CallingHours`], so that a
//! reply and the gate agree on what a wall-clock time means across
//! daylight-saving changes: a local time that does not exist (the spring
//! gap) is the first instant after the gap, so 02:30 on a spring-forward
//! night is 03:00; a local time that happens twice (the autumn overlap) is
//! the first of the two. Neither case fails.
//!
//! Hours said without am/pm are read inside the person's calling hours
//! (08:00–21:00 by default): "5" is 17:00 because nobody is called at
//! 05:00, while "8" could be either and is the next of 08:00 and 20:00
//! still ahead; if narrow hours leave neither inside, both are considered
//! and the next one ahead wins. Whole days ("tomorrow"), "before 5" and
//! "after 6" are bounded by the calling hours too.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use crate::consent::calling_hours::first_at_or_after;
use crate::consent::{Answer, CallingHours, SlotOption};

const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(t) => t,
        None => NaiveTime::MIN,
    }
}

/// A part of the day, named instead of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartOfDay {
    /// 09:00–12:00.
    Morning,
    /// 12:00–13:00.
    Lunch,
    /// 12:00–17:00.
    Afternoon,
    /// 17:00 until calling hours end, 21:00 by default ("tonight", "this
    /// evening").
    Evening,
}

impl PartOfDay {
    fn range(self, hours: &CallingHours) -> (NaiveTime, NaiveTime) {
        match self {
            PartOfDay::Morning => (hm(9, 0), hm(12, 0)),
            PartOfDay::Lunch => (hm(12, 0), hm(13, 0)),
            PartOfDay::Afternoon => (hm(12, 0), hm(17, 0)),
            PartOfDay::Evening => (hm(17, 0), hours.end()),
        }
    }

    /// Whether a clock time said together with this part of the day fits
    /// it ("tonight at 8" is 20:00, "tomorrow morning at 9pm" is nonsense).
    /// Wider than [`range`](Self::range): "tonight at 10" is 22:00.
    fn admits(self, t: NaiveTime) -> bool {
        match self {
            PartOfDay::Morning => t < hm(12, 0),
            PartOfDay::Lunch | PartOfDay::Afternoon => t >= hm(11, 0) && t < hm(18, 0),
            PartOfDay::Evening => t >= hm(16, 0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meridiem {
    Am,
    Pm,
}

/// A time of day as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
    pub hour: u32,
    pub minute: u32,
    pub meridiem: Option<Meridiem>,
    /// Written so that it can only be one time: "17:30", "08:00", "noon".
    pub exact: bool,
}

impl Clock {
    /// The times of day this clock may mean, earliest first.
    fn candidates(self, part: Option<PartOfDay>, hours: &CallingHours) -> Vec<NaiveTime> {
        let Clock {
            hour,
            minute,
            meridiem,
            exact,
        } = self;
        let all: Vec<NaiveTime> = if exact {
            NaiveTime::from_hms_opt(hour, minute, 0)
                .into_iter()
                .collect()
        } else {
            let h12 = hour % 12;
            let am = NaiveTime::from_hms_opt(h12, minute, 0);
            let pm = NaiveTime::from_hms_opt(h12 + 12, minute, 0);
            match meridiem {
                Some(Meridiem::Am) => am.into_iter().collect(),
                Some(Meridiem::Pm) => pm.into_iter().collect(),
                // A bare "12" is noon, never midnight.
                None if hour == 12 => pm.into_iter().collect(),
                None => am.into_iter().chain(pm).collect(),
            }
        };
        match part {
            Some(part) => all.into_iter().filter(|t| part.admits(*t)).collect(),
            None if meridiem.is_none() && !exact => {
                let in_hours: Vec<NaiveTime> = all
                    .iter()
                    .copied()
                    .filter(|t| *t >= hours.start() && *t < hours.end())
                    .collect();
                if in_hours.is_empty() {
                    all
                } else {
                    in_hours
                }
            }
            None => all,
        }
    }

    fn with_meridiem(self, meridiem: Meridiem) -> Clock {
        Clock {
            meridiem: Some(meridiem),
            ..self
        }
    }
}

/// Which day a phrase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DaySpec {
    /// No day said: today if the time is still ahead, else tomorrow.
    Unsaid,
    Today,
    Tomorrow,
    /// "monday": the next Monday, today included if the time is still
    /// ahead; "next monday" (`skip_today`) never means today.
    Weekday {
        day: Weekday,
        skip_today: bool,
    },
}

/// What a phrase asks for on its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    At(Clock),
    After(Clock),
    Before(Clock),
    Between(Clock, Clock),
    /// Only a day and/or a part of the day: all of it.
    Whole,
}

/// A time phrase, resolved against the reply's instant.
pub(crate) struct Phrase {
    pub day: DaySpec,
    pub part: Option<PartOfDay>,
    pub when: When,
}

/// The person's calendar at the moment of the reply.
pub(crate) struct Calendar {
    pub zone: Tz,
    pub now: DateTime<Utc>,
    pub slot_length: TimeDelta,
    pub hours: CallingHours,
}

impl Calendar {
    fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.zone).date_naive()
    }

    /// The instant `phrase` names, or `None` when it names nothing still
    /// ahead ("today at 9am" said at 2pm) or nothing at all.
    pub(crate) fn resolve(&self, phrase: &Phrase) -> Option<Answer> {
        let today = self.today();
        let days: Vec<NaiveDate> = match phrase.day {
            DaySpec::Unsaid => [Some(today), today.checked_add_days(Days::new(1))]
                .into_iter()
                .flatten()
                .collect(),
            DaySpec::Today => vec![today],
            DaySpec::Tomorrow => today.checked_add_days(Days::new(1)).into_iter().collect(),
            DaySpec::Weekday { day, skip_today } => {
                let ahead =
                    (7 + day.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
                let ahead = if ahead == 0 && skip_today { 7 } else { ahead };
                let first = today.checked_add_days(Days::new(u64::from(ahead)));
                // "monday" said on a Monday after the time passed is next week.
                let week_later = first.and_then(|d| {
                    (ahead == 0)
                        .then(|| d.checked_add_days(Days::new(7)))
                        .flatten()
                });
                first.into_iter().chain(week_later).collect()
            }
        };
        let readings = self.readings(phrase);
        if readings.is_empty() {
            return None;
        }
        for day in days {
            let mut instants = Vec::with_capacity(readings.len());
            for (start, end) in &readings {
                let start_at = first_at_or_after(day.and_time(*start), self.zone);
                let end_at = end.map(|end| first_at_or_after(day.and_time(end), self.zone));
                instants.push((start_at, end_at));
            }
            // First pass: something wholly ahead ("after 8" at 2pm is 8pm,
            // not "8am until 9pm, starting now").
            for (start, end) in &instants {
                if *start < self.now {
                    continue;
                }
                return Some(match end {
                    None => Answer::Slot(SlotOption {
                        start: *start,
                        end: start.checked_add_signed(self.slot_length)?,
                    }),
                    Some(end) => Answer::Range {
                        start: *start,
                        end: *end,
                    },
                });
            }
            // Second pass: a range already under way counts from now.
            for (_, end) in &instants {
                if let Some(end) = end {
                    if *end > self.now {
                        return Some(Answer::Range {
                            start: self.now,
                            end: *end,
                        });
                    }
                }
            }
        }
        None
    }

    /// The local (start, end) pairs the phrase may mean on any day, in the
    /// order they are preferred; `end` is `None` for a point in time.
    fn readings(&self, phrase: &Phrase) -> Vec<(NaiveTime, Option<NaiveTime>)> {
        let part = phrase.part;
        let hours = &self.hours;
        let (day_start, day_end) = part.map_or((hours.start(), hours.end()), |p| p.range(hours));
        match phrase.when {
            When::At(clock) => clock
                .candidates(part, hours)
                .into_iter()
                .map(|t| (t, None))
                .collect(),
            When::After(clock) => clock
                .candidates(part, hours)
                .into_iter()
                .filter(|t| *t < day_end)
                .map(|t| (t, Some(day_end)))
                .collect(),
            When::Before(clock) => clock
                .candidates(part, hours)
                .into_iter()
                .filter(|t| *t > day_start)
                .map(|t| (day_start, Some(t)))
                .collect(),
            When::Between(from, to) => {
                let froms = match (from.meridiem, to.meridiem, from.exact) {
                    // "6-8pm": the am/pm said once covers both ends, unless
                    // that would put the start after the end ("11-1pm").
                    (None, Some(m), false) => {
                        let other = match m {
                            Meridiem::Am => Meridiem::Pm,
                            Meridiem::Pm => Meridiem::Am,
                        };
                        let mut c = from.with_meridiem(m).candidates(part, hours);
                        c.extend(from.with_meridiem(other).candidates(part, hours));
                        c
                    }
                    _ => from.candidates(part, hours),
                };
                let tos = to.candidates(part, hours);
                let mut pairs = Vec::new();
                for f in &froms {
                    if let Some(t) = tos.iter().find(|t| *t > f) {
                        pairs.push((*f, Some(*t)));
                    }
                }
                pairs
            }
            When::Whole => vec![(day_start, Some(day_end))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_hour_is_read_inside_calling_hours() {
        let bare = |hour| Clock {
            hour,
            minute: 0,
            meridiem: None,
            exact: false,
        };
        assert_eq!(
            bare(5).candidates(None, &CallingHours::default()),
            vec![hm(17, 0)]
        );
        assert_eq!(
            bare(8).candidates(None, &CallingHours::default()),
            vec![hm(8, 0), hm(20, 0)]
        );
        assert_eq!(
            bare(9).candidates(None, &CallingHours::default()),
            vec![hm(9, 0)]
        );
        assert_eq!(
            bare(12).candidates(None, &CallingHours::default()),
            vec![hm(12, 0)]
        );
        assert_eq!(
            bare(10).candidates(Some(PartOfDay::Evening), &CallingHours::default()),
            vec![hm(22, 0)]
        );
    }
}
