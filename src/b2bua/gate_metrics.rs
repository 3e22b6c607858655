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
pub const DECISIONS: [&str; 15] = [
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
    "sdp-rejected",
];

/// Upper bounds (seconds) of the hold duration histogram's buckets.
const HOLD_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 300.0];

/// Upper bounds (seconds) of the answer-to-response histogram's buckets:
/// the gate promises the PBX its answer within 100 ms of the reply being
/// stored, so the buckets are fine around that.
const ANSWER_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Default)]
pub struct GateMetrics {
    decisions: [AtomicU64; DECISIONS.len()],
    held: AtomicI64,
    hold_buckets: [AtomicU64; HOLD_BUCKETS.len()],
    hold_count: AtomicU64,
    hold_micros: AtomicU64,
    answer_buckets: [AtomicU64; ANSWER_BUCKETS.len()],
    answer_count: AtomicU64,
    answer_micros: AtomicU64,
}

/// One histogram's figures, as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// (upper bound in seconds, cumulative count)
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
}

impl Histogram {
    /// The upper bound of the bucket holding quantile `q` (0..1): the
    /// figure is "at most this"; `None` without observations or past the
    /// last bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank)
            .map(|(bound, _)| *bound)
    }
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
        observe(
            &self.hold_buckets,
            &HOLD_BUCKETS,
            &self.hold_count,
            &self.hold_micros,
            lasted,
        );
    }

    /// Time from the person's answer being stored to the PBX's response.
    pub fn answer_acted_on(&self, after: Duration) {
        observe(
            &self.answer_buckets,
            &ANSWER_BUCKETS,
            &self.answer_count,
            &self.answer_micros,
            after,
        );
    }

    pub fn answer_latency(&self) -> Histogram {
        read(
            &self.answer_buckets,
            &ANSWER_BUCKETS,
            &self.answer_count,
            &self.answer_micros,
        )
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
        let holds = read(
            &self.hold_buckets,
            &HOLD_BUCKETS,
            &self.hold_count,
            &self.hold_micros,
        );
        render_histogram(&mut out, "slotgate_gate_hold_seconds", &holds);
        out.push_str(
            "# HELP slotgate_gate_answer_to_response_seconds From a held INVITE's answer being stored to the PBX's response.\n\
             # TYPE slotgate_gate_answer_to_response_seconds histogram\n",
        );
        render_histogram(
            &mut out,
            "slotgate_gate_answer_to_response_seconds",
            &self.answer_latency(),
        );
        out
    }
}

fn observe(
    buckets: &[AtomicU64],
    bounds: &[f64],
    count: &AtomicU64,
    micros: &AtomicU64,
    value: Duration,
) {
    let secs = value.as_secs_f64();
    for (bucket, bound) in buckets.iter().zip(bounds) {
        if secs <= *bound {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }
    count.fetch_add(1, Ordering::Relaxed);
    micros.fetch_add(
        u64::try_from(value.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

fn read(buckets: &[AtomicU64], bounds: &[f64], count: &AtomicU64, micros: &AtomicU64) -> Histogram {
    Histogram {
        buckets: bounds
            .iter()
            .zip(buckets)
            .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
            .collect(),
        count: count.load(Ordering::Relaxed),
        sum_secs: micros.load(Ordering::Relaxed) as f64 / 1e6,
    }
}

fn render_histogram(out: &mut String, name: &str, h: &Histogram) {
    for (bound, n) in &h.buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = write!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n",
        count = h.count,
        sum = h.sum_secs
    );
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

    #[test]
    fn answer_latency_quantiles_are_bucket_bounds() {
        let m = GateMetrics::default();
        assert_eq!(m.answer_latency().quantile_bound(0.5), None);
        for ms in [1, 3, 3, 4, 40, 40, 40, 40, 40, 150] {
            m.answer_acted_on(Duration::from_millis(ms));
        }
        let h = m.answer_latency();
        assert_eq!(h.count, 10);
        assert_eq!(h.quantile_bound(0.3), Some(0.005));
        assert_eq!(h.quantile_bound(0.5), Some(0.05));
        assert_eq!(h.quantile_bound(0.99), Some(0.2));
        assert!(m
            .render()
            .contains("slotgate_gate_answer_to_response_seconds_bucket{le=\"0.05\"} 9\n"));
    }
}
