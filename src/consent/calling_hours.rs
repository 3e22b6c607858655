//! Legal calling hours: the part of each local day in which a person may be
//! called or asked.
//!
//! The rules that bind callers (telemarketing laws, an enterprise's own
//! charter) speak of the *callee's* wall clock: "not before 8 am, not after
//! 9 pm". So every question here takes a UTC instant and the callee's IANA
//! zone and answers in UTC; the server's own zone never matters. The prompt
//! options, the gate's `480 Retry-After` and the pacer all ask the same
//! type, so they can never disagree on what "inside hours" means.
//!
//! Daylight-saving changes make a local day 23 or 25 hours long and make
//! some wall-clock times happen never or twice. The rules, applied
//! everywhere below:
//!
//! - [`CallingHours::contains`] reads the instant's local wall-clock time:
//!   inside iff `start <= local < end` (half-open, like every window here).
//! - A local time that does not exist (skipped by a spring-forward change)
//!   resolves *forward* to the first instant after the gap: if hours start
//!   at 02:30 on a day whose clocks jump from 02:00 to 03:00, the window
//!   opens at 03:00. That is the earliest instant whose wall clock has
//!   reached the start, so nobody is called "early".
//! - A local time that happens twice (a fall-back change) resolves to its
//!   *first* occurrence for a window's start and its *last* occurrence for
//!   its end, so the window is the whole stretch of the local day between
//!   the two wall-clock times.
//!
//! Hours never span midnight: a window that did would belong to two local
//! dates, and no calling rule we know of needs it.

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Days [`CallingHours::next_allowed`] looks ahead. Real zones skip at most
/// one calendar day (Samoa, 2011), so a window always opens well within it.
const LOOKAHEAD_DAYS: u32 = 7;

/// The daily window, in the callee's local wall-clock time, in which calls
/// are allowed. Defaults to 08:00–21:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingHours {
    // Private so that `start < end` always holds: every method relies on
    // each local date having a non-empty window.
    start: NaiveTime,
    end: NaiveTime,
}

/// Why a pair of times cannot be calling hours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallingHoursError {
    #[error(
        "calling hours must end after they start (got {start}–{end}); hours cannot span midnight"
    )]
    EndNotAfterStart { start: NaiveTime, end: NaiveTime },
}

/// One day's calling window as UTC instants; half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl CallingWindow {
    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }
}

impl Default for CallingHours {
    fn default() -> CallingHours {
        CallingHours {
            start: hm(8, 0),
            end: hm(21, 0),
        }
    }
}

impl CallingHours {
    /// Hours from `start` (inclusive) to `end` (exclusive), local time.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<CallingHours, CallingHoursError> {
        if end <= start {
            return Err(CallingHoursError::EndNotAfterStart { start, end });
        }
        Ok(CallingHours { start, end })
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// Whether `instant` falls inside calling hours in `zone`.
    pub fn contains(&self, instant: DateTime<Utc>, zone: Tz) -> bool {
        let local = instant.with_timezone(&zone).time();
        self.start <= local && local < self.end
    }

    /// The window on the local `date` in `zone`, as UTC instants; `None`
    /// only when a clock change swallows the whole window that day.
    pub fn window_on(&self, date: NaiveDate, zone: Tz) -> Option<CallingWindow> {
        let start = first_at_or_after(date.and_time(self.start), zone);
        let end = last_occurrence(date.and_time(self.end), zone);
        (start < end).then_some(CallingWindow { start, end })
    }

    /// The window `instant` is in, if it is inside calling hours.
    pub fn window_at(&self, instant: DateTime<Utc>, zone: Tz) -> Option<CallingWindow> {
        if !self.contains(instant, zone) {
            return None;
        }
        let date = instant.with_timezone(&zone).date_naive();
        self.window_on(date, zone)
            .filter(|window| window.contains(instant))
    }

    /// The earliest instant at or after `instant` inside calling hours:
    /// `instant` itself when it is inside, otherwise the opening of the
    /// next window (resolved as the module documentation says).
    pub fn next_allowed(&self, instant: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        if self.contains(instant, zone) {
            return instant;
        }
        let today = instant.with_timezone(&zone).date_naive();
        let mut date = today;
        for _ in 0..=LOOKAHEAD_DAYS {
            if let Some(window) = self.window_on(date, zone) {
                if instant < window.end {
                    return window.start.max(instant);
                }
            }
            date = match date.succ_opt() {
                Some(next) => next,
                None => break,
            };
        }
        // Unreachable for any real zone (see LOOKAHEAD_DAYS); the opening
        // time a week on is still a conservative answer.
        first_at_or_after(date.and_time(self.start), zone)
    }

    /// The windows of `days` consecutive local dates starting with the
    /// local date of `from`, skipping none but those a clock change
    /// swallowed; the first may already have begun or ended.
    pub fn windows_from(&self, from: DateTime<Utc>, zone: Tz, days: u32) -> Vec<CallingWindow> {
        let first = from.with_timezone(&zone).date_naive();
        first
            .iter_days()
            .take(days as usize)
            .filter_map(|date| self.window_on(date, zone))
            .collect()
    }
}

impl fmt::Display for CallingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}–{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// The first instant whose local wall-clock time in `zone` is at or after
/// `local`: the first occurrence of a repeated time, the end of the gap for
/// a skipped one.
pub(crate) fn first_at_or_after(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => end_of_gap(local, zone),
    }
}

/// The last instant at which the local wall clock reads `local`, or the end
/// of the gap when it never does.
fn last_occurrence(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(_, last) => last.with_timezone(&Utc),
        LocalResult::None => end_of_gap(local, zone),
    }
}

/// The instant a spring-forward gap containing `local` ends. UTC offsets
/// stay within ±14 h, so the answer lies within 15 h of `local` read as UTC;
/// a binary search over seconds finds the first instant whose wall clock has
/// passed `local`.
fn end_of_gap(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    let reached = |secs: i64| match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => t.with_timezone(&zone).naive_local() >= local,
        None => true,
    };
    let as_utc = local.and_utc().timestamp();
    // Whole seconds: zone transitions fall on them, and the answer must be
    // the exact instant the clock changes.
    let (mut before, mut after) = (as_utc - 15 * 3600, as_utc + 15 * 3600);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if reached(mid) {
            after = mid;
        } else {
            before = mid;
        }
    }
    DateTime::<Utc>::from_timestamp(after, 0).unwrap_or(local.and_utc())
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Paris;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn local(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn defaults_are_eight_to_nine() {
        let hours = CallingHours::default();
        assert_eq!(hours.start(), hm(8, 0));
        assert_eq!(hours.end(), hm(21, 0));
        assert_eq!(hours.to_string(), "08:00–21:00");
    }

    #[test]
    fn hours_must_not_be_empty_or_span_midnight() {
        assert!(CallingHours::new(hm(9, 0), hm(9, 0)).is_err());
        let err = CallingHours::new(hm(22, 0), hm(6, 0)).unwrap_err();
        assert!(err.to_string().contains("cannot span midnight"));
        assert!(CallingHours::new(hm(9, 0), hm(9, 1)).is_ok());
    }

    #[test]
    fn edges_in_local_time() {
        let hours = CallingHours::default();
        let cases = [
            ((7, 59), false),
            ((8, 0), true),
            ((12, 0), true),
            ((20, 59), true),
            ((21, 0), false),
            ((23, 30), false),
            ((0, 0), false),
        ];
        for zone in [Paris, New_York, chrono_tz::Asia::Kolkata, chrono_tz::UTC] {
            for ((h, m), inside) in cases {
                let t = local(zone, 2026, 6, 15, h, m);
                assert_eq!(hours.contains(t, zone), inside, "{zone} {h}:{m}");
            }
        }
    }

    #[test]
    fn the_same_instant_differs_by_zone() {
        let hours = CallingHours::default();
        // 07:30 UTC in March: 08:30 in Paris, 03:30 in New York.
        let t = utc(2026, 3, 2, 7, 30);
        assert!(hours.contains(t, Paris));
        assert!(!hours.contains(t, New_York));
    }

    #[test]
    fn next_allowed_table() {
        let hours = CallingHours::default();
        let cases = [
            // Inside: the instant itself.
            (
                local(Paris, 2026, 6, 15, 8, 0),
                local(Paris, 2026, 6, 15, 8, 0),
            ),
            (
                local(Paris, 2026, 6, 15, 20, 59),
                local(Paris, 2026, 6, 15, 20, 59),
            ),
            // Early morning: opening the same local day.
            (
                local(Paris, 2026, 6, 15, 7, 59),
                local(Paris, 2026, 6, 15, 8, 0),
            ),
            (
                local(Paris, 2026, 6, 15, 0, 0),
                local(Paris, 2026, 6, 15, 8, 0),
            ),
            // Evening: next local day, across midnight.
            (
                local(Paris, 2026, 6, 15, 21, 0),
                local(Paris, 2026, 6, 16, 8, 0),
            ),
            (
                local(Paris, 2026, 6, 15, 23, 59),
                local(Paris, 2026, 6, 16, 8, 0),
            ),
            // Across a month and a year.
            (
                local(Paris, 2026, 12, 31, 22, 0),
                local(Paris, 2027, 1, 1, 8, 0),
            ),
        ];
        for (at, expected) in cases {
            assert_eq!(hours.next_allowed(at, Paris), expected, "from {at}");
        }
    }

    #[test]
    fn next_allowed_across_spring_forward() {
        let hours = CallingHours::default();
        // New York springs forward on 2026-03-08 (02:00 EST → 03:00 EDT):
        // 22:00 EST on the 7th is 03:00 UTC; 08:00 EDT on the 8th is 12:00 UTC,
        // only 9 real hours later instead of 10.
        let evening = local(New_York, 2026, 3, 7, 22, 0);
        assert_eq!(evening, utc(2026, 3, 8, 3, 0));
        assert_eq!(
            hours.next_allowed(evening, New_York),
            utc(2026, 3, 8, 12, 0)
        );
        // Paris springs forward on 2026-03-29 (02:00 CET → 03:00 CEST).
        let evening = local(Paris, 2026, 3, 28, 21, 30);
        assert_eq!(hours.next_allowed(evening, Paris), utc(2026, 3, 29, 6, 0));
        // The day before, 08:00 CET is 07:00 UTC.
        let early = local(Paris, 2026, 3, 28, 6, 0);
        assert_eq!(hours.next_allowed(early, Paris), utc(2026, 3, 28, 7, 0));
    }

    #[test]
    fn next_allowed_across_fall_back() {
        let hours = CallingHours::default();
        // New York falls back on 2026-11-01 (02:00 EDT → 01:00 EST).
        let evening = local(New_York, 2026, 10, 31, 21, 0);
        assert_eq!(
            hours.next_allowed(evening, New_York),
            utc(2026, 11, 1, 13, 0)
        );
        // Europe falls back on 2026-10-25 (03:00 CEST → 02:00 CET).
        let evening = local(Paris, 2026, 10, 24, 22, 0);
        assert_eq!(hours.next_allowed(evening, Paris), utc(2026, 10, 25, 7, 0));
    }

    #[test]
    fn a_skipped_start_resolves_forward_to_the_end_of_the_gap() {
        let hours = CallingHours::new(hm(2, 30), hm(9, 0)).unwrap();
        let before = local(New_York, 2026, 3, 8, 1, 0);
        // 02:30 does not exist that night; the clock reads 03:00 EDT at 07:00 UTC.
        assert_eq!(hours.next_allowed(before, New_York), utc(2026, 3, 8, 7, 0));
        let window = hours
            .window_on(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(), New_York)
            .unwrap();
        assert_eq!(window.start, utc(2026, 3, 8, 7, 0));
        assert_eq!(window.end, utc(2026, 3, 8, 13, 0));
        assert!(hours.contains(window.start, New_York));
        assert!(!hours.contains(window.start - TimeDelta::seconds(1), New_York));
    }

    #[test]
    fn a_repeated_time_opens_at_its_first_occurrence() {
        let hours = CallingHours::new(hm(1, 30), hm(9, 0)).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let window = hours.window_on(date, New_York).unwrap();
        // 01:30 EDT (05:30 UTC) comes before 01:30 EST (06:30 UTC).
        assert_eq!(window.start, utc(2026, 11, 1, 5, 30));
        assert_eq!(window.end, utc(2026, 11, 1, 14, 0));
    }

    #[test]
    fn a_window_swallowed_by_a_gap_is_skipped() {
        let hours = CallingHours::new(hm(2, 0), hm(2, 45)).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(hours.window_on(date, New_York), None);
        let before = local(New_York, 2026, 3, 7, 23, 0);
        assert_eq!(
            hours.next_allowed(before, New_York),
            local(New_York, 2026, 3, 9, 2, 0)
        );
    }

    #[test]
    fn windows_follow_the_local_day_length() {
        let hours = CallingHours::default();
        let windows = hours.windows_from(utc(2026, 3, 7, 12, 0), New_York, 3);
        assert_eq!(windows.len(), 3);
        // EST, EDT, EDT: the window is 13 hours every day, in local time.
        assert_eq!(windows[0].start, utc(2026, 3, 7, 13, 0));
        assert_eq!(windows[1].start, utc(2026, 3, 8, 12, 0));
        assert_eq!(windows[2].end, utc(2026, 3, 10, 1, 0));
        for w in &windows {
            assert_eq!(w.end - w.start, TimeDelta::hours(13));
        }
    }

    #[test]
    fn window_at_is_the_current_window() {
        let hours = CallingHours::default();
        let t = local(Paris, 2026, 6, 15, 10, 0);
        let w = hours.window_at(t, Paris).unwrap();
        assert_eq!(w.start, local(Paris, 2026, 6, 15, 8, 0));
        assert_eq!(w.end, local(Paris, 2026, 6, 15, 21, 0));
        assert_eq!(
            hours.window_at(local(Paris, 2026, 6, 15, 22, 0), Paris),
            None
        );
    }
}
