//! The options a consent prompt offers, built from the current time.
//!
//! A person may pick: call now (while calling hours last a little longer); call after a short delay; a slot today or
//! tomorrow; a named part of the day ("Evening 5–9 PM"); or don't call.
//! Every option that names a time lies inside the callee's calling hours in
//! the callee's zone, so whatever the person picks, the call it schedules is
//! one slotgate may place. "Don't call" is always offered, always last: a
//! person must always be able to say no, and in the same place every time.
//!
//! The list is built in a natural order (soonest first), then handed to a
//! ranker (see `crate::timing`) that may reorder it for this person. The
//! ranker only orders: whatever it returns, this module keeps exactly the
//! options it built (none added, none altered, none lost before the
//! `max_choices` cut) and puts "Don't call" last.
//!
//! Postbacks are readable and unique within a prompt (`now`, `after:15`,
//! `slot:2026-03-10T22:00:00Z`, `range:<start>/<end>`, `decline`). They are
//! never parsed back: the offered list is stored with the request and a
//! reply is matched against it exactly.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, LocalResult, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::calling_hours::first_at_or_after;
use super::{CallingHours, Choice, OfferedChoice, SlotOption, MAX_LABEL_CHARS};

/// Most suggestions an RBM message may carry.
pub const RBM_MAX_SUGGESTIONS: usize = 11;

/// A named part of the day offered as a range ("Evening 5–9 PM").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRange {
    /// Capitalised, as it starts a label ("Evening").
    pub name: String,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl NamedRange {
    pub fn new(name: &str, start: NaiveTime, end: NaiveTime) -> NamedRange {
        NamedRange {
            name: name.to_string(),
            start,
            end,
        }
    }
}

/// What a prompt may offer; the defaults suit a consumer prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionPolicy {
    /// "Call me now" is offered only if calling hours last at least this
    /// much longer: the reply takes a while, and a "yes, now" that lands
    /// after closing could not be honoured. Default 15 minutes.
    pub now_margin: TimeDelta,
    /// "Call me in …" delays, in whole minutes; default 15 and 30 minutes.
    pub delays: Vec<TimeDelta>,
    /// How long a slot (and a delayed call) lasts; default 30 minutes.
    pub slot_length: TimeDelta,
    /// Fixed slots offered, today and tomorrow; default 3.
    pub slots_per_prompt: usize,
    /// Least time between two offered slots, so that they cover the day
    /// instead of bunching in the next hour; default 3 hours.
    pub slot_spacing: TimeDelta,
    /// Least time between now and the start of a slot or range; the delays
    /// cover sooner. Default 1 hour.
    pub min_lead: TimeDelta,
    /// Parts of the day offered as ranges; default morning 09–12,
    /// afternoon 12–17, evening 17–21.
    pub ranges: Vec<NamedRange>,
    /// Most options in one prompt, "Don't call" included; at most
    /// [`RBM_MAX_SUGGESTIONS`]. Default 11.
    pub max_choices: usize,
    pub calling_hours: CallingHours,
}

impl Default for OptionPolicy {
    fn default() -> OptionPolicy {
        OptionPolicy {
            now_margin: TimeDelta::minutes(15),
            delays: vec![TimeDelta::minutes(15), TimeDelta::minutes(30)],
            slot_length: TimeDelta::minutes(30),
            slots_per_prompt: 3,
            slot_spacing: TimeDelta::hours(3),
            min_lead: TimeDelta::hours(1),
            ranges: vec![
                NamedRange::new("Morning", hm(9, 0), hm(12, 0)),
                NamedRange::new("Afternoon", hm(12, 0), hm(17, 0)),
                NamedRange::new("Evening", hm(17, 0), hm(21, 0)),
            ],
            max_choices: RBM_MAX_SUGGESTIONS,
            calling_hours: CallingHours::default(),
        }
    }
}

/// Why an option policy cannot be used; each names the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionPolicyError {
    #[error("max_choices must be between 2 and {RBM_MAX_SUGGESTIONS} (got {0})")]
    MaxChoices(usize),
    #[error("delays must be positive whole minutes (got {0})")]
    Delay(TimeDelta),
    #[error("slot_length must be positive (got {0})")]
    SlotLength(TimeDelta),
    #[error("range {0:?} must end after it starts")]
    Range(String),
}

impl OptionPolicy {
    /// Checks the settings; [`build_options`] tolerates bad ones (it skips
    /// what cannot be offered) but configuration should refuse them.
    pub fn validate(&self) -> Result<(), OptionPolicyError> {
        if !(2..=RBM_MAX_SUGGESTIONS).contains(&self.max_choices) {
            return Err(OptionPolicyError::MaxChoices(self.max_choices));
        }
        if let Some(bad) = self.delays.iter().find(|d| whole_minutes(**d).is_none()) {
            return Err(OptionPolicyError::Delay(*bad));
        }
        if self.slot_length <= TimeDelta::zero() {
            return Err(OptionPolicyError::SlotLength(self.slot_length));
        }
        if let Some(bad) = self.ranges.iter().find(|r| r.end <= r.start) {
            return Err(OptionPolicyError::Range(bad.name.clone()));
        }
        Ok(())
    }
}

/// The options to offer at `now` to a person in `zone`, ordered by `rank`,
/// cut to `max_choices`, "Don't call" last.
///
/// `rank` receives every candidate in natural order (the list
/// [`candidate_options`] returns) and returns them in the order this person
/// should see them; pass `|c| c` for the natural order. Options it drops
/// come back after the ones it kept, options it invents are ignored.
pub fn build_options(
    policy: &OptionPolicy,
    zone: Tz,
    now: DateTime<Utc>,
    rank: impl FnOnce(Vec<OfferedChoice>) -> Vec<OfferedChoice>,
) -> Vec<OfferedChoice> {
    let candidates = candidate_options(policy, zone, now);
    let by_postback: HashMap<&str, &OfferedChoice> = candidates
        .iter()
        .map(|c| (c.postback.as_str(), c))
        .collect();
    let ranked = rank(candidates.clone());

    let mut seen = HashSet::new();
    let mut ordered: Vec<OfferedChoice> = Vec::with_capacity(candidates.len());
    let returned = ranked.iter().map(|c| c.postback.as_str());
    let natural = candidates.iter().map(|c| c.postback.as_str());
    for postback in returned.chain(natural) {
        if let Some(candidate) = by_postback.get(postback) {
            if candidate.choice != Choice::Decline && seen.insert(postback) {
                ordered.push((*candidate).clone());
            }
        }
    }
    let limit = policy.max_choices.clamp(1, RBM_MAX_SUGGESTIONS);
    ordered.truncate(limit - 1);
    ordered.push(decline());
    ordered
}

/// Every option that may be offered at `now`, in natural order: now, the
/// delays (shortest first), the slots and the ranges (earliest first), and
/// "Don't call". Not ranked, not cut to `max_choices`.
pub fn candidate_options(
    policy: &OptionPolicy,
    zone: Tz,
    now: DateTime<Utc>,
) -> Vec<OfferedChoice> {
    let hours = &policy.calling_hours;
    let mut options = Vec::new();
    let margin = policy.now_margin.max(TimeDelta::zero());
    if hours
        .window_at(now, zone)
        .is_some_and(|window| now + margin < window.end)
    {
        options.push(OfferedChoice {
            label: "Call me now".into(),
            postback: "now".into(),
            choice: Choice::Now,
        });
    }
    options.extend(delay_options(policy, zone, now));
    options.extend(slot_options(policy, zone, now));
    options.extend(range_options(policy, zone, now));
    options.push(decline());
    options
}

fn decline() -> OfferedChoice {
    OfferedChoice {
        label: "Don't call".into(),
        postback: "decline".into(),
        choice: Choice::Decline,
    }
}

/// Delays whose call would start inside calling hours. The delayed call is
/// placed when the reply arrives plus the delay, usually a little later
/// than `now` plus the delay; the pacer checks the hours again then.
fn delay_options(policy: &OptionPolicy, zone: Tz, now: DateTime<Utc>) -> Vec<OfferedChoice> {
    let mut minutes: Vec<i64> = policy
        .delays
        .iter()
        .filter_map(|d| whole_minutes(*d))
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    minutes
        .into_iter()
        .filter(|m| {
            policy
                .calling_hours
                .contains(now + TimeDelta::minutes(*m), zone)
        })
        .map(|m| OfferedChoice {
            label: fit_label(&[delay_label(m)]),
            postback: format!("after:{m}"),
            choice: Choice::After(TimeDelta::minutes(m)),
        })
        .collect()
}

fn delay_label(minutes: i64) -> String {
    match minutes {
        1 => "In 1 minute".into(),
        60 => "In 1 hour".into(),
        m if m % 60 == 0 => format!("In {} hours", m / 60),
        m => format!("In {m} minutes"),
    }
}

/// Slots on the hour or half-hour (local time), today or tomorrow, wholly
/// inside one calling window, at least `min_lead` away and `slot_spacing`
/// apart.
fn slot_options(policy: &OptionPolicy, zone: Tz, now: DateTime<Utc>) -> Vec<OfferedChoice> {
    if policy.slot_length <= TimeDelta::zero() {
        return Vec::new();
    }
    let today = now.with_timezone(&zone).date_naive();
    let earliest = now + policy.min_lead;
    let mut slots: Vec<OfferedChoice> = Vec::new();
    let mut last: Option<DateTime<Utc>> = None;
    for date in today.iter_days().take(2) {
        let Some(window) = policy.calling_hours.window_on(date, zone) else {
            continue;
        };
        for local in half_hours() {
            if slots.len() >= policy.slots_per_prompt {
                return slots;
            }
            // A half-hour a clock change skips is simply not offered.
            let start = match zone.from_local_datetime(&date.and_time(local)) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                LocalResult::None => continue,
            };
            let end = start + policy.slot_length;
            let spaced = last.is_none_or(|prev| start >= prev + policy.slot_spacing);
            if start < earliest || !window.contains(start) || end > window.end || !spaced {
                continue;
            }
            last = Some(start);
            let day = if date == today { "Today" } else { "Tomorrow" };
            slots.push(OfferedChoice {
                label: fit_label(&[format!("{day} {}", clock(local))]),
                postback: format!("slot:{}", stamp(start)),
                choice: Choice::Slot(SlotOption { start, end }),
            });
        }
    }
    slots
}

/// Each named range at its next occurrence (today, else tomorrow), clipped
/// to calling hours and to `min_lead` from now, rounded up to the
/// half-hour; offered if at least one slot long after clipping.
fn range_options(policy: &OptionPolicy, zone: Tz, now: DateTime<Utc>) -> Vec<OfferedChoice> {
    let today = now.with_timezone(&zone).date_naive();
    let earliest = round_up_to_half_hour(now + policy.min_lead, zone);
    let min_length = policy.slot_length.max(TimeDelta::minutes(1));
    let mut ranges: Vec<OfferedChoice> = Vec::new();
    for range in policy.ranges.iter().filter(|r| r.start < r.end) {
        for date in today.iter_days().take(2) {
            let Some(window) = policy.calling_hours.window_on(date, zone) else {
                continue;
            };
            let start = first_at_or_after(date.and_time(range.start), zone)
                .max(window.start)
                .max(earliest);
            let end = first_at_or_after(date.and_time(range.end), zone).min(window.end);
            if end - start < min_length {
                continue;
            }
            ranges.push(OfferedChoice {
                label: range_label(range, date == today, start, end, zone),
                postback: format!("range:{}/{}", stamp(start), stamp(end)),
                choice: Choice::Range(SlotOption { start, end }),
            });
            break;
        }
    }
    ranges.sort_by_key(|r| match &r.choice {
        Choice::Range(span) => span.start,
        _ => DateTime::<Utc>::MIN_UTC,
    });
    ranges
}

fn range_label(
    range: &NamedRange,
    today: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    zone: Tz,
) -> String {
    let span = clock_span(
        start.with_timezone(&zone).time(),
        end.with_timezone(&zone).time(),
    );
    if today {
        fit_label(&[format!("{} {span}", range.name), range.name.clone()])
    } else {
        let name = lower_first(&range.name);
        fit_label(&[
            format!("Tomorrow {name} {span}"),
            format!("Tomorrow {name}"),
        ])
    }
}

/// The first candidate that fits on a chip, else the last one cut short:
/// a label that overflows is refused by RBM, so it must never be sent.
fn fit_label(candidates: &[String]) -> String {
    if let Some(fits) = candidates
        .iter()
        .find(|c| c.chars().count() <= MAX_LABEL_CHARS)
    {
        return fits.clone();
    }
    candidates
        .last()
        .map(|c| c.chars().take(MAX_LABEL_CHARS).collect())
        .unwrap_or_default()
}

fn whole_minutes(delay: TimeDelta) -> Option<i64> {
    (delay > TimeDelta::zero() && delay.num_seconds() % 60 == 0 && delay.subsec_nanos() == 0)
        .then(|| delay.num_minutes())
}

fn half_hours() -> impl Iterator<Item = NaiveTime> {
    (0..48u32).filter_map(|k| NaiveTime::from_hms_opt(k / 2, (k % 2) * 30, 0))
}

fn round_up_to_half_hour(t: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&zone);
    let past = TimeDelta::minutes(i64::from(local.minute() % 30))
        + TimeDelta::seconds(i64::from(local.second()))
        + TimeDelta::nanoseconds(i64::from(local.nanosecond()));
    if past.is_zero() {
        t
    } else {
        t - past + TimeDelta::minutes(30)
    }
}

/// `2026-03-10T22:00:00Z`: fixed width, readable in logs.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `5:00 PM`.
fn clock(t: NaiveTime) -> String {
    let (pm, hour) = t.hour12();
    format!("{hour}:{:02} {}", t.minute(), meridiem(pm))
}

/// `5–9 PM`, `6:30–9 PM`, `9 AM–12 PM`.
fn clock_span(start: NaiveTime, end: NaiveTime) -> String {
    let short = |t: NaiveTime| {
        let (_, hour) = t.hour12();
        match t.minute() {
            0 => hour.to_string(),
            m => format!("{hour}:{m:02}"),
        }
    };
    let (start_pm, _) = start.hour12();
    let (end_pm, _) = end.hour12();
    if start_pm == end_pm {
        format!("{}–{} {}", short(start), short(end), meridiem(end_pm))
    } else {
        format!(
            "{} {}–{} {}",
            short(start),
            meridiem(start_pm),
            short(end),
            meridiem(end_pm)
        )
    }
}

fn meridiem(pm: bool) -> &'static str {
    if pm {
        "PM"
    } else {
        "AM"
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Paris;

    fn local(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn labels(options: &[OfferedChoice]) -> Vec<&str> {
        options.iter().map(|o| o.label.as_str()).collect()
    }

    fn natural(policy: &OptionPolicy, zone: Tz, now: DateTime<Utc>) -> Vec<OfferedChoice> {
        build_options(policy, zone, now, |c| c)
    }

    #[test]
    fn the_default_policy_is_valid() {
        assert_eq!(OptionPolicy::default().validate(), Ok(()));
        let bad = OptionPolicy {
            max_choices: 12,
            ..OptionPolicy::default()
        };
        assert_eq!(bad.validate(), Err(OptionPolicyError::MaxChoices(12)));
        let bad = OptionPolicy {
            delays: vec![TimeDelta::seconds(90)],
            ..OptionPolicy::default()
        };
        assert!(bad.validate().is_err());
        let bad = OptionPolicy {
            ranges: vec![NamedRange::new("Night", hm(22, 0), hm(6, 0))],
            ..OptionPolicy::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("Night"));
    }

    #[test]
    fn in_the_morning_everything_is_for_today() {
        let now = local(Paris, 2026, 6, 15, 9, 0);
        let options = natural(&OptionPolicy::default(), Paris, now);
        assert_eq!(
            labels(&options),
            [
                "Call me now",
                "In 15 minutes",
                "In 30 minutes",
                "Today 10:00 AM",
                "Today 1:00 PM",
                "Today 4:00 PM",
                "Morning 10 AM–12 PM",
                "Afternoon 12–5 PM",
                "Evening 5–9 PM",
                "Don't call",
            ]
        );
        let postbacks: Vec<&str> = options.iter().map(|o| o.postback.as_str()).collect();
        assert_eq!(postbacks[0], "now");
        assert_eq!(postbacks[1], "after:15");
        // 10:00 CEST is 08:00 UTC.
        assert_eq!(postbacks[3], "slot:2026-06-15T08:00:00Z");
        assert_eq!(
            postbacks[8],
            "range:2026-06-15T15:00:00Z/2026-06-15T19:00:00Z"
        );
        assert_eq!(postbacks[9], "decline");
        assert_eq!(
            options[3].choice,
            Choice::Slot(SlotOption {
                start: local(Paris, 2026, 6, 15, 10, 0),
                end: local(Paris, 2026, 6, 15, 10, 30),
            })
        );
    }

    #[test]
    fn late_evening_offers_tomorrow_and_drops_delays_past_closing() {
        let policy = OptionPolicy::default();
        let options = natural(&policy, Paris, local(Paris, 2026, 6, 15, 20, 40));
        // 20:55 is inside, 21:10 is not.
        assert_eq!(
            labels(&options)[..3],
            ["Call me now", "In 15 minutes", "Tomorrow 8:00 AM"]
        );

        // Ten minutes before closing: too late for "now" or any delay.

        let options = natural(&policy, Paris, local(Paris, 2026, 6, 15, 20, 50));
        assert_eq!(
            labels(&options),
            [
                "Tomorrow 8:00 AM",
                "Tomorrow 11:00 AM",
                "Tomorrow 2:00 PM",
                "Tomorrow morning",
                "Tomorrow afternoon",
                "Tomorrow evening 5–9 PM",
                "Don't call",
            ]
        );
    }

    #[test]
    fn tomorrow_slots_follow_the_clock_change() {
        // Paris springs forward overnight: 08:00 is 07:00 UTC on the 28th
        // and 06:00 UTC on the 29th.
        let now = local(Paris, 2026, 3, 28, 20, 50);
        let options = natural(&OptionPolicy::default(), Paris, now);
        assert_eq!(options[0].label, "Tomorrow 8:00 AM");
        assert_eq!(options[0].postback, "slot:2026-03-29T06:00:00Z");
        let evening = options
            .iter()
            .find(|o| o.label == "Tomorrow evening 5–9 PM")
            .unwrap();
        assert_eq!(
            evening.postback,
            "range:2026-03-29T15:00:00Z/2026-03-29T19:00:00Z"
        );
    }

    #[test]
    fn after_hours_only_tomorrow_is_offered() {
        let now = local(Paris, 2026, 6, 15, 23, 0);
        let options = natural(&OptionPolicy::default(), Paris, now);
        assert!(!options.iter().any(|o| o.choice == Choice::Now));
        assert!(!options.iter().any(|o| matches!(o.choice, Choice::After(_))));
        let tomorrow = local(Paris, 2026, 6, 16, 0, 0);
        for option in &options {
            if let Choice::Slot(span) | Choice::Range(span) = option.choice {
                assert!(span.start >= tomorrow, "{}", option.label);
            }
        }
        assert_eq!(options.len(), 7);
    }

    #[test]
    fn every_option_is_allowed_and_fits_on_a_chip() {
        let policy = OptionPolicy::default();
        let hours = policy.calling_hours;
        let starts = [
            (Paris, local(Paris, 2026, 3, 28, 0, 0)),
            (New_York, local(New_York, 2026, 3, 7, 0, 0)),
            (New_York, local(New_York, 2026, 10, 31, 0, 0)),
            (
                chrono_tz::Asia::Kathmandu,
                local(chrono_tz::UTC, 2026, 6, 1, 0, 0),
            ),
        ];
        for (zone, start) in starts {
            for step in 0..(3 * 24 * 6) {
                let now = start + TimeDelta::minutes(10 * step);
                let options = natural(&policy, zone, now);
                assert!(options.len() <= policy.max_choices);
                assert_eq!(options.last().map(|o| &o.choice), Some(&Choice::Decline));
                let unique: HashSet<&str> = options.iter().map(|o| o.postback.as_str()).collect();
                assert_eq!(unique.len(), options.len(), "{now}");
                for option in &options {
                    assert!(
                        option.label.chars().count() <= MAX_LABEL_CHARS,
                        "{:?}",
                        option.label
                    );
                    match option.choice {
                        Choice::Now => {
                            assert!(hours.contains(now + policy.now_margin, zone))
                        }
                        Choice::After(d) => assert!(hours.contains(now + d, zone)),
                        Choice::Slot(span) | Choice::Range(span) => {
                            assert!(span.start >= now + policy.min_lead, "{now} {option:?}");
                            assert!(hours.contains(span.start, zone), "{now} {option:?}");
                            let last = span.end - TimeDelta::seconds(1);
                            assert!(hours.contains(last, zone), "{now} {option:?}");
                            assert!(span.end > span.start);
                        }
                        Choice::Decline => {}
                    }
                }
            }
        }
    }

    #[test]
    fn slots_skip_a_half_hour_the_clock_skips() {
        let policy = OptionPolicy {
            calling_hours: CallingHours::new(hm(1, 0), hm(6, 0)).unwrap(),
            slot_spacing: TimeDelta::minutes(30),
            slots_per_prompt: 4,
            min_lead: TimeDelta::zero(),
            ..OptionPolicy::default()
        };
        let now = local(New_York, 2026, 3, 8, 1, 0);
        let slots: Vec<String> = natural(&policy, New_York, now)
            .into_iter()
            .filter(|o| matches!(o.choice, Choice::Slot(_)))
            .map(|o| o.label)
            .collect();
        assert_eq!(
            slots,
            [
                "Today 1:00 AM",
                "Today 1:30 AM",
                "Today 3:00 AM",
                "Today 3:30 AM"
            ]
        );
    }

    #[test]
    fn the_ranker_orders_but_cannot_add_drop_or_move_decline() {
        let policy = OptionPolicy::default();
        let now = local(Paris, 2026, 6, 15, 9, 0);
        let options = build_options(&policy, Paris, now, |mut c| {
            c.reverse();
            c.retain(|o| o.postback != "after:30");
            c.push(OfferedChoice {
                label: "Midnight".into(),
                postback: "slot:2026-06-15T22:00:00Z".into(),
                choice: Choice::Now,
            });
            c
        });
        let got = labels(&options);
        assert_eq!(got[0], "Evening 5–9 PM");
        assert_eq!(got[7], "Call me now");
        // Dropped: put back after the ranked ones.
        assert_eq!(got[8], "In 30 minutes");
        assert_eq!(got[9], "Don't call");
        assert!(!got.contains(&"Midnight"));
    }

    #[test]
    fn the_cut_to_max_choices_keeps_decline_last() {
        let policy = OptionPolicy {
            max_choices: 4,
            ..OptionPolicy::default()
        };
        let options = natural(&policy, Paris, local(Paris, 2026, 6, 15, 9, 0));
        assert_eq!(
            labels(&options),
            [
                "Call me now",
                "In 15 minutes",
                "In 30 minutes",
                "Don't call"
            ]
        );
    }

    #[test]
    fn a_range_already_begun_starts_after_the_lead() {
        let options = natural(
            &OptionPolicy::default(),
            Paris,
            local(Paris, 2026, 6, 15, 17, 40),
        );
        assert!(labels(&options).contains(&"Evening 7–9 PM"));
        assert!(labels(&options).contains(&"Tomorrow morning"));
    }

    #[test]
    fn label_formats() {
        assert_eq!(delay_label(15), "In 15 minutes");
        assert_eq!(delay_label(60), "In 1 hour");
        assert_eq!(delay_label(120), "In 2 hours");
        assert_eq!(delay_label(90), "In 90 minutes");
        assert_eq!(clock(hm(0, 30)), "12:30 AM");
        assert_eq!(clock_span(hm(18, 30), hm(21, 0)), "6:30–9 PM");
        assert_eq!(clock_span(hm(9, 0), hm(12, 0)), "9 AM–12 PM");
        let long = "x".repeat(40);
        assert_eq!(fit_label(&[long]).chars().count(), MAX_LABEL_CHARS);
    }
}
