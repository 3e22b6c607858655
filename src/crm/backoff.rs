//! When to try a failed delivery again: exponential backoff with full
//! jitter, capped.
//!
//! Doubling the wait gives a struggling CRM room to recover; drawing the
//! actual wait uniformly below that ceiling ("full jitter") spreads the
//! retries of many events that failed together, so a CRM coming back up is
//! not hit by all of them at the same instant. The random draw is an
//! argument, which keeps this a pure function that tests can pin down.

use std::time::Duration;

/// The ceiling of the wait after the `attempt`-th failed attempt (1-based):
/// `initial · 2^(attempt-1)`, at most `max`.
pub fn ceiling(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    initial
        .checked_mul(1u32 << doublings)
        .map_or(max, |d| d.min(max))
}

/// The wait after the `attempt`-th failed attempt, given `random` drawn
/// uniformly from `[0, 1)`: a uniform share of the ceiling. Out-of-range
/// draws are clamped, so a bad random source cannot exceed the cap.
pub fn delay(attempt: u32, initial: Duration, max: Duration, random: f64) -> Duration {
    let share = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ceiling(attempt, initial, max).mul_f64(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let ceilings: Vec<u64> = (1..=8).map(|a| ceiling(a, S, max).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(ceiling(0, S, max), S);
        assert_eq!(ceiling(u32::MAX, S, max), max);
    }

    #[test]
    fn the_delay_is_a_share_of_the_ceiling() {
        let max = Duration::from_secs(60);
        assert_eq!(delay(3, S, max, 0.0), Duration::ZERO);
        assert_eq!(delay(3, S, max, 0.5), Duration::from_secs(2));
        assert_eq!(delay(10, S, max, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn bad_draws_stay_within_the_cap() {
        let max = Duration::from_secs(60);
        assert_eq!(delay(10, S, max, 7.0), max);
        assert_eq!(delay(10, S, max, -1.0), Duration::ZERO);
        assert_eq!(delay(10, S, max, f64::NAN), Duration::ZERO);
    }
}
