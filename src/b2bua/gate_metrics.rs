//! Counters of what the gate decided, the number of INVITEs held now and
//! how long holds last, in the Prometheus text format.
//!
//! Supervisors watch these to see consent take effect (how many calls are
//! forwarded, scheduled, declined) and to size the hold window. Plain
//! atomics: the SIP engine bumps them on its own thread and the API reads
//! them without a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Every decision the gate names, in the order they are printed.
pub const DECISIONS: [&str; 14] = [
    "consented",
    "declined",
    "outside-hours",
    "forbidden",
    "held-now",
    "held-later",
    "held-declined",
    "no-reply-rejected",
    "no-reply-passed",
    "cancelled",
    "unclassified-passed",
    "unclassified-rejected",
    "store-error-rejected",
    "store-error-passed",
];

/// Upper bounds (seconds) of the hold duration histogram's buckets.
const HOLD_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 300.0];

#[derive(Debug, Default)]
pub struct GateMetrics {
    decisions: [AtomicU64; DECISIONS.len()],
    held: AtomicI64,
    hold_buckets: [AtomicU64; HOLD_BUCKETS.len()],
    hold_count: AtomicU64,
    hold_micros: AtomicU64,
}

impl GateMetrics {
    pub fn decided(&self, decision: &str) {
        if let Some(i) = DECISIONS.iter().position(|d| *d == decision) {
            self.decisions[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn decisions(&self, decision: &str) -> u64 {
        DECISIONS
            .iter()
            .position(|d| *d == decision)
            .map_or(0, |i| self.decisions[i].load(Ordering::Relaxed))
    }

    pub fn hold_started(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hold_ended(&self, lasted: Duration) {
        self.held.fetch_sub(1, Ordering::Relaxed);
        let secs = lasted.as_secs_f64();
        for (bucket, bound) in self.hold_buckets.iter().zip(HOLD_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.hold_count.fetch_add(1, Ordering::Relaxed);
        self.hold_micros.fetch_add(
            u64::try_from(lasted.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn held(&self) -> i64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP slotgate_gate_decisions_total What the gate did with INVITEs from the PBX.\n\
             # TYPE slotgate_gate_decisions_total counter\n",
        );
        for (d, n) in DECISIONS.iter().zip(&self.decisions) {
            let _ = writeln!(
                out,
                "slotgate_gate_decisions_total{{decision=\"{d}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP slotgate_gate_held_invites INVITEs held now while the callee is asked.\n\
             # TYPE slotgate_gate_held_invites gauge\n\
             slotgate_gate_held_invites {}\n\
             # HELP slotgate_gate_hold_seconds How long INVITEs were held.\n\
             # TYPE slotgate_gate_hold_seconds histogram\n",
            self.held()
        );
        for (bucket, bound) in self.hold_buckets.iter().zip(HOLD_BUCKETS) {
            let _ = writeln!(
                out,
                "slotgate_gate_hold_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.hold_count.load(Ordering::Relaxed);
        let sum = self.hold_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "slotgate_gate_hold_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             slotgate_gate_hold_seconds_sum {sum}\n\
             slotgate_gate_hold_seconds_count {count}\n"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_counted_into_cumulative_buckets() {
        let m = GateMetrics::default();
        m.decided("held-now");
        m.decided("held-now");
        m.decided("no-such-decision");
        m.hold_started();
        m.hold_started();
        m.hold_ended(Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("slotgate_gate_decisions_total{decision=\"held-now\"} 2\n"));
        assert!(text.contains("slotgate_gate_held_invites 1\n"));
        assert!(text.contains("slotgate_gate_hold_seconds_bucket{le=\"0.25\"} 0\n"));
        assert!(text.contains("slotgate_gate_hold_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("slotgate_gate_hold_seconds_bucket{le=\"300\"} 1\n"));
        assert!(text.contains("slotgate_gate_hold_seconds_count 1\n"));
    }
}
