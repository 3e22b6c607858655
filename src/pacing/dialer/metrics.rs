//! What the dialler counts for `/metrics`: calls placed by outcome,
//! callbacks dropped at dial time, and the calls and claims it holds now.
//! Supervisors watch the answer and abandon shares from these; the legal
//! abandon rate per campaign is in `GET /v1/campaigns/{id}/stats`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const OUTCOMES: [&str; 9] = [
    "answered",
    "busy",
    "no-answer",
    "failed",
    "machine",
    "abandoned",
    "agent-unavailable",
    "not-placed",
    "dropped",
];

#[derive(Debug, Default)]
pub struct DialMetrics {
    outcomes: [AtomicU64; 9],
    in_progress: AtomicI64,
    claimed: AtomicI64,
}

impl DialMetrics {
    /// One call (or callback, for `dropped`) ended with `outcome`.
    pub fn ended(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn outcome(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.outcomes[i].load(Ordering::Relaxed))
    }

    pub fn set_in_progress(&self, calls: usize, claimed: usize) {
        self.in_progress
            .store(i64::try_from(calls).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.claimed.store(
            i64::try_from(claimed).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text for these counters.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP slotgate_placed_calls_total Calls slotgate placed for scheduled callbacks, by outcome (dropped: not dialled at all).\n\
             # TYPE slotgate_placed_calls_total counter\n",
        );
        for (name, count) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "slotgate_placed_calls_total{{outcome=\"{name}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP slotgate_placed_calls_in_progress Calls whose attempt is committed and not settled.\n\
             # TYPE slotgate_placed_calls_in_progress gauge\n\
             slotgate_placed_calls_in_progress {}\n\
             # HELP slotgate_callbacks_claimed Due callbacks this node has claimed and not dialled yet.\n\
             # TYPE slotgate_callbacks_claimed gauge\n\
             slotgate_callbacks_claimed {}\n",
            self.in_progress.load(Ordering::Relaxed),
            self.claimed.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_name_and_rendered() {
        let m = DialMetrics::default();
        m.ended("answered");
        m.ended("answered");
        m.ended("abandoned");
        m.ended("not-an-outcome");
        m.set_in_progress(3, 40);
        assert_eq!(m.outcome("answered"), 2);
        let text = m.render();
        assert!(text.contains("slotgate_placed_calls_total{outcome=\"answered\"} 2"));
        assert!(text.contains("slotgate_placed_calls_total{outcome=\"abandoned\"} 1"));
        assert!(text.contains("slotgate_placed_calls_in_progress 3"));
        assert!(text.contains("slotgate_callbacks_claimed 40"));
    }
}
