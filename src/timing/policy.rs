//! The thresholds of ranking and admission, in one place so that an
//! operator tunes them together and tests can state them.

use chrono::TimeDelta;

/// How far history reaches and how much prompting a person tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankingPolicy {
    /// Only prompts sent within this long before now shape the ranking:
    /// habits change, and a person's choices from last year say little
    /// about this week. Default 90 days.
    pub lookback: TimeDelta,
    /// An option kind offered at least this many times within the lookback
    /// and never picked sinks to the end of the list (before "Don't call").
    /// Default 3.
    pub sink_after_offers: usize,
    /// After a person declines, no new prompt for this long: asking again
    /// soon after a "no" is what turns a consent tool into a nuisance.
    /// Default 30 days, a common telemarketing-charter period, and shorter
    /// than the lookback so that the decline is still visible when the
    /// cool-down ends. Applied to the whole history given, whatever the
    /// lookback.
    pub cool_down: TimeDelta,
    /// Most prompts per person within `cap_window`. Default 3.
    pub weekly_cap: usize,
    /// The rolling window of the cap. Default 7 days.
    pub cap_window: TimeDelta,
}

impl Default for RankingPolicy {
    fn default() -> RankingPolicy {
        RankingPolicy {
            lookback: TimeDelta::days(90),
            sink_after_offers: 3,
            cool_down: TimeDelta::days(30),
            weekly_cap: 3,
            cap_window: TimeDelta::days(7),
        }
    }
}
