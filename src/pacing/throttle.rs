//! How much abandon risk the predictive pacer may take on its next call.
//!
//! The pacer dials a further call only while the chance that this call,
//! if a person answers, finds no agent stays below an allowance. The
//! allowance comes from three things, from hard to soft:
//!
//! 1. **The window's budget.** The law allows `limit × answered` abandons
//!    in the window. Once the abandons already counted plus those expected
//!    from calls still ringing leave less than one, no risk is taken at
//!    all and the pacer falls back to one call per free agent. This is
//!    what keeps the measured rate under the limit whatever the forecast
//!    got wrong, and why a new campaign starts progressive: it has
//!    answered too few calls to afford its first abandon.
//! 2. **Headroom.** As the window's measured rate climbs from the aim
//!    (a share of the limit) to the limit, the allowance shrinks to zero,
//!    and it shrinks too as the abandons left run down to a few.
//! 3. **Calibration.** The forecast's risks are estimates; a gain learned
//!    from what actually happens (stochastic approximation: every served
//!    person nudges it up a little, every abandon down a lot) moves the
//!    realised rate to the aim whatever the forecast's bias.

use super::abandon::AbandonCounts;

/// The realised rate aimed at, as a share of the limit: the margin absorbs
/// the randomness of a day's few thousand answers.
const AIM_SHARE_OF_LIMIT: f64 = 0.85;

/// Step of the calibration, in log-gain per outcome.
const LEARNING_RATE: f64 = 0.04;

const MIN_GAIN: f64 = 0.25;
const MAX_GAIN: f64 = 4.0;

/// Abandons left below which the allowance starts to shrink.
const COMFORTABLE_ABANDONS_LEFT: f64 = 4.0;

/// The budget must leave at least this many abandons to take any risk.
const MIN_ABANDONS_LEFT: f64 = 1.0;

/// No call is worth a coin toss of abandoning a person.
const MAX_RISK: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct AbandonThrottle {
    limit: f64,
    gain: f64,
}

impl AbandonThrottle {
    /// A throttle for `limit`, a fraction (0.03 for 3 %).
    pub fn new(limit: f64) -> AbandonThrottle {
        AbandonThrottle { limit, gain: 1.0 }
    }

    fn aim(&self) -> f64 {
        self.limit * AIM_SHARE_OF_LIMIT
    }

    /// A person answered and reached an agent in time.
    pub fn person_served(&mut self) {
        self.nudge(self.aim());
    }

    /// A person answered and was abandoned.
    pub fn person_abandoned(&mut self) {
        self.nudge(self.aim() - 1.0);
    }

    fn nudge(&mut self, by: f64) {
        self.gain = (self.gain * (LEARNING_RATE * by).exp()).clamp(MIN_GAIN, MAX_GAIN);
    }

    pub fn gain(&self) -> f64 {
        self.gain
    }

    /// The highest chance of abandoning its person a new call may carry,
    /// given the window's counts and the abandons expected from calls
    /// already ringing (`committed`). Zero means: take no risk.
    pub fn allowed_risk(&self, counts: AbandonCounts, committed: f64) -> f64 {
        if self.limit <= 0.0 {
            return 0.0;
        }
        let left = counts.abandons_left(self.limit) - committed;
        if left < MIN_ABANDONS_LEFT {
            return 0.0;
        }
        let aim = self.aim();
        let measured = counts.rate();
        let headroom = if measured <= aim {
            1.0
        } else {
            ((self.limit - measured) / (self.limit - aim)).clamp(0.0, 1.0)
        };
        let comfort = (left / COMFORTABLE_ABANDONS_LEFT).min(1.0);
        (aim * self.gain * headroom * comfort).min(MAX_RISK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(answered: u64, abandoned: u64) -> AbandonCounts {
        AbandonCounts {
            answered,
            abandoned,
        }
    }

    #[test]
    fn no_risk_until_the_window_can_afford_an_abandon() {
        let throttle = AbandonThrottle::new(0.03);
        assert_eq!(throttle.allowed_risk(counts(0, 0), 0.0), 0.0);
        assert_eq!(throttle.allowed_risk(counts(30, 0), 0.0), 0.0);
        assert!(throttle.allowed_risk(counts(200, 0), 0.0) > 0.0);
        // Risk already ringing counts against the budget.
        assert_eq!(throttle.allowed_risk(counts(200, 0), 5.5), 0.0);
    }

    #[test]
    fn the_allowance_shrinks_as_the_rate_nears_the_limit() {
        let throttle = AbandonThrottle::new(0.03);
        let relaxed = throttle.allowed_risk(counts(1000, 10), 0.0);
        let close = throttle.allowed_risk(counts(1000, 27), 0.0);
        let over = throttle.allowed_risk(counts(1000, 31), 0.0);
        assert!(relaxed > close && close > 0.0, "{relaxed} {close}");
        assert_eq!(over, 0.0);
        assert!((relaxed - 0.03 * AIM_SHARE_OF_LIMIT).abs() < 1e-12);
    }

    #[test]
    fn abandons_teach_caution_and_service_teaches_confidence() {
        let mut throttle = AbandonThrottle::new(0.03);
        let before = throttle.allowed_risk(counts(1000, 5), 0.0);
        throttle.person_abandoned();
        let after_abandon = throttle.allowed_risk(counts(1000, 5), 0.0);
        assert!(after_abandon < before);
        for _ in 0..200 {
            throttle.person_served();
        }
        assert!(throttle.allowed_risk(counts(1000, 5), 0.0) > after_abandon);
        // At the aim, the nudges cancel out on average.
        let mut balanced = AbandonThrottle::new(0.03);
        for i in 0..100_000 {
            // 2.55 % of outcomes, spread evenly.
            if (i * 51) % 2000 < 51 {
                balanced.person_abandoned();
            } else {
                balanced.person_served();
            }
        }
        assert!((balanced.gain() - 1.0).abs() < 0.3, "{}", balanced.gain());
    }

    #[test]
    fn a_zero_limit_never_allows_risk() {
        let throttle = AbandonThrottle::new(0.0);
        assert_eq!(throttle.allowed_risk(counts(100_000, 0), 0.0), 0.0);
    }
}
