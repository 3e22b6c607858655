//! What a simulated shift achieved, and the table that compares policies.

use std::fmt::Write;

/// One policy's shift, counted by the world (not by the policy).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub policy: &'static str,
    pub dialled: u64,
    pub answered_by_person: u64,
    pub answered_by_machine: u64,
    pub connected: u64,
    /// People not with an agent within the connect window.
    pub abandoned: u64,
    /// Of those, people an agent took too late (the policy failed to drop
    /// them in time); zero for a correct policy.
    pub late_connections: u64,
    /// Reports the policy refused (unknown calls): zero for a correct run.
    pub protocol_errors: u64,
    /// Most calls up at once.
    pub max_calls_up: u64,
    /// Share of logged-in agent time spent talking or wrapping up.
    pub occupancy: f64,
    /// People connected per agent per hour.
    pub calls_per_agent_hour: f64,
}

impl Report {
    /// Abandoned share of person-answered calls.
    pub fn abandon_rate(&self) -> f64 {
        if self.answered_by_person == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.answered_by_person as f64
        }
    }
}

/// A plain-text table, one row per report.
pub fn format_table(title: &str, reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "{:<26} {:>8} {:>9} {:>9} {:>9} {:>11} {:>14}",
        "mode", "dialled", "answered", "abandoned", "abandon %", "occupancy %", "calls/agent-h"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<26} {:>8} {:>9} {:>9} {:>9.2} {:>11.1} {:>14.2}",
            r.policy,
            r.dialled,
            r.answered_by_person,
            r.abandoned,
            r.abandon_rate() * 100.0,
            r.occupancy * 100.0,
            r.calls_per_agent_hour
        );
    }
    out
}
