//! The abandon ledger: how many calls a person answered and how many of
//! those were abandoned, over a rolling window (30 days in the US, 24
//! hours in the UK).
//!
//! The law measures the rate over the window, so the ledger must forget
//! old calls exactly as the window slides, yet a campaign may answer
//! millions of calls a month. Counts are therefore kept in fixed buckets
//! (one per window/720 for the US, window/1440 for the UK): memory stays
//! bounded, and a call leaves the count at most one bucket late. Time is
//! passed in; the ledger never reads a clock.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

use super::campaign::AbandonWindow;

/// Counts over the window as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AbandonCounts {
    /// Calls answered by a person (machines excluded).
    pub answered: u64,
    /// Of those, calls not connected to an agent in time.
    pub abandoned: u64,
}

impl AbandonCounts {
    /// Abandoned share of person-answered calls (0 before any answer).
    pub fn rate(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.answered as f64
        }
    }

    /// How many more abandons the window can take before its rate passes
    /// `limit` (a fraction); negative once it has.
    pub fn abandons_left(&self, limit: f64) -> f64 {
        limit * self.answered as f64 - self.abandoned as f64
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i64,
    answered: u64,
    abandoned: u64,
}

/// Rolling counts of person answers and abandons.
#[derive(Debug, Clone)]
pub struct AbandonLedger {
    bucket_ms: i64,
    bucket_count: i64,
    /// Oldest first; only buckets that saw a call.
    buckets: VecDeque<Bucket>,
    totals: AbandonCounts,
}

impl AbandonLedger {
    /// A ledger for the legal window of `window`.
    pub fn for_window(window: AbandonWindow) -> AbandonLedger {
        match window {
            AbandonWindow::Us30Days => AbandonLedger::new(window.length(), 720),
            AbandonWindow::Uk24Hours => AbandonLedger::new(window.length(), 1440),
        }
    }

    /// A window of `length` kept in `buckets` slices (at least one, each at
    /// least a millisecond).
    pub fn new(length: TimeDelta, buckets: u32) -> AbandonLedger {
        let buckets = i64::from(buckets.max(1));
        let bucket_ms = (length.num_milliseconds() / buckets).max(1);
        AbandonLedger {
            bucket_ms,
            bucket_count: buckets,
            buckets: VecDeque::new(),
            totals: AbandonCounts::default(),
        }
    }

    pub fn record_answered(&mut self, now: DateTime<Utc>) {
        self.bucket_at(now).answered += 1;
        self.totals.answered += 1;
    }

    pub fn record_abandoned(&mut self, now: DateTime<Utc>) {
        self.bucket_at(now).abandoned += 1;
        self.totals.abandoned += 1;
    }

    /// The counts of the window ending at `now`.
    pub fn counts(&mut self, now: DateTime<Utc>) -> AbandonCounts {
        self.forget_before(now);
        self.totals
    }

    /// Buckets held (for tests of the memory bound).
    pub fn buckets_held(&self) -> usize {
        self.buckets.len()
    }

    fn index_of(&self, instant: DateTime<Utc>) -> i64 {
        instant.timestamp_millis().div_euclid(self.bucket_ms)
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let oldest_kept = self.index_of(now) - self.bucket_count + 1;
        while let Some(front) = self.buckets.front() {
            if front.index >= oldest_kept {
                break;
            }
            self.totals.answered -= front.answered;
            self.totals.abandoned -= front.abandoned;
            self.buckets.pop_front();
        }
    }

    fn bucket_at(&mut self, now: DateTime<Utc>) -> &mut Bucket {
        self.forget_before(now);
        let index = self.index_of(now);
        // Time passed in may step back a little (clock adjustments); such
        // a call is counted in the newest bucket rather than reordering.
        let newest = self.buckets.back().map(|b| b.index);
        if newest.is_none_or(|newest| newest < index) {
            self.buckets.push_back(Bucket {
                index,
                answered: 0,
                abandoned: 0,
            });
        }
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
    }

    #[test]
    fn counts_answers_and_abandons_and_their_rate() {
        let mut ledger = AbandonLedger::for_window(AbandonWindow::Us30Days);
        let t = start();
        for i in 0..100 {
            ledger.record_answered(t + TimeDelta::seconds(i));
        }
        ledger.record_abandoned(t + TimeDelta::seconds(50));
        ledger.record_abandoned(t + TimeDelta::seconds(60));
        let counts = ledger.counts(t + TimeDelta::minutes(5));
        assert_eq!(counts.answered, 100);
        assert_eq!(counts.abandoned, 2);
        assert!((counts.rate() - 0.02).abs() < 1e-12);
        assert!((counts.abandons_left(0.03) - 1.0).abs() < 1e-9);
        assert_eq!(AbandonCounts::default().rate(), 0.0);
    }

    #[test]
    fn the_uk_window_forgets_after_a_day_the_us_one_after_thirty() {
        let t = start();
        let mut uk = AbandonLedger::for_window(AbandonWindow::Uk24Hours);
        let mut us = AbandonLedger::for_window(AbandonWindow::Us30Days);
        for ledger in [&mut uk, &mut us] {
            ledger.record_answered(t);
            ledger.record_abandoned(t);
        }
        let later = t + TimeDelta::hours(23);
        assert_eq!(uk.counts(later).abandoned, 1);
        let next_day = t + TimeDelta::hours(24) + TimeDelta::minutes(2);
        assert_eq!(uk.counts(next_day), AbandonCounts::default());
        assert_eq!(us.counts(next_day).abandoned, 1);
        assert_eq!(us.counts(t + TimeDelta::days(29)).answered, 1);
        assert_eq!(
            us.counts(t + TimeDelta::days(30) + TimeDelta::hours(2))
                .answered,
            0
        );
    }

    #[test]
    fn a_call_leaves_the_window_at_most_one_bucket_late() {
        let t = start();
        let mut ledger = AbandonLedger::new(TimeDelta::minutes(10), 10);
        ledger.record_answered(t);
        assert_eq!(ledger.counts(t + TimeDelta::seconds(539)).answered, 1);
        assert_eq!(ledger.counts(t + TimeDelta::minutes(11)).answered, 0);
    }

    #[test]
    fn memory_stays_bounded_over_a_long_run() {
        let mut ledger = AbandonLedger::for_window(AbandonWindow::Uk24Hours);
        let t = start();
        // A call every 10 s for a week.
        for i in 0..(7 * 24 * 360) {
            let now = t + TimeDelta::seconds(10 * i);
            ledger.record_answered(now);
            if i % 40 == 0 {
                ledger.record_abandoned(now);
            }
        }
        assert!(ledger.buckets_held() <= 1440, "{}", ledger.buckets_held());
        let counts = ledger.counts(t + TimeDelta::seconds(10 * 7 * 24 * 360));
        // One day of calls: 8 640, give or take the bucket at the edge.
        assert!((8_600..=8_640).contains(&counts.answered), "{counts:?}");
        assert!((215..=217).contains(&counts.abandoned), "{counts:?}");
    }

    #[test]
    fn a_clock_stepping_back_is_counted_not_lost() {
        let t = start();
        let mut ledger = AbandonLedger::for_window(AbandonWindow::Uk24Hours);
        ledger.record_answered(t);
        ledger.record_answered(t - TimeDelta::minutes(5));
        assert_eq!(ledger.counts(t).answered, 2);
    }
}
