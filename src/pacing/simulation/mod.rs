//! A contact centre in virtual time, to measure what a dialling policy
//! achieves: how busy it keeps the agents and how many answered people it
//! abandons.
//!
//! Everything random comes from one seeded `StdRng`, and time is virtual,
//! so a run is exactly repeatable and eight hours take a fraction of a
//! second. The world plays the I/O shell's part (it places the calls the
//! policy asks for, routes answered people to free agents, plays the
//! abandon message) and keeps its own ground truth: a person counts as
//! abandoned when no agent took them within the connect window, whatever
//! the policy reported.
//!
//! The policies: the real [`Pacer`] in progressive and predictive mode,
//! and [`vicidial::VicidialAdaptive`], VICIdial's adaptive dial-level
//! rule, as the baseline to beat.

pub mod draw;
pub mod report;
pub mod vicidial;
pub mod world;

use chrono::{DateTime, Utc};

use super::campaign::{Campaign, CampaignError, CampaignSettings, DialMode};
use super::events::{AgentId, AgentState, CallId, CallProgress, Contact, Dial, PacerEvent};
use super::pacer::{Pacer, PacerError};

pub use report::{format_table, Report};
pub use vicidial::{AdaptMethod, VicidialAdaptive};
pub use world::World;

/// What the world needs of a dialling policy: the pacer's own interface.
pub trait Dialer {
    fn offer(&mut self, contact: Contact);
    fn contacts_queued(&self) -> usize;
    fn agent_changed(&mut self, now: DateTime<Utc>, agent: AgentId, state: AgentState);
    fn call_progress(
        &mut self,
        now: DateTime<Utc>,
        call: CallId,
        progress: CallProgress,
    ) -> Result<(), PacerError>;
    fn handle_timeout(&mut self, now: DateTime<Utc>);
    fn poll_dial(&mut self, now: DateTime<Utc>) -> Option<Dial>;
    fn poll_event(&mut self) -> Option<PacerEvent>;
    fn poll_timeout(&self) -> Option<DateTime<Utc>>;
}

impl Dialer for Pacer {
    fn offer(&mut self, contact: Contact) {
        Pacer::offer(self, contact)
    }
    fn contacts_queued(&self) -> usize {
        Pacer::contacts_queued(self)
    }
    fn agent_changed(&mut self, now: DateTime<Utc>, agent: AgentId, state: AgentState) {
        Pacer::agent_changed(self, now, agent, state)
    }
    fn call_progress(
        &mut self,
        now: DateTime<Utc>,
        call: CallId,
        progress: CallProgress,
    ) -> Result<(), PacerError> {
        Pacer::call_progress(self, now, call, progress)
    }
    fn handle_timeout(&mut self, now: DateTime<Utc>) {
        Pacer::handle_timeout(self, now)
    }
    fn poll_dial(&mut self, now: DateTime<Utc>) -> Option<Dial> {
        Pacer::poll_dial(self, now)
    }
    fn poll_event(&mut self) -> Option<PacerEvent> {
        Pacer::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        Pacer::poll_timeout(self)
    }
}

/// The contact centre and the list it calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub agents: u32,
    /// Length of the shift.
    pub hours: f64,
    /// Share of calls a person answers.
    pub person_rate: f64,
    /// Share of calls a machine answers (detected a few seconds in).
    pub machine_rate: f64,
    /// Share busy or failed; the rest ring out.
    pub busy_rate: f64,
    /// Mean time to answer, when someone answers.
    pub mean_ring_secs: f64,
    pub mean_talk_secs: f64,
    pub mean_wrap_up_secs: f64,
    pub abandon_limit_percent: f64,
    pub trunk_channels: i64,
    pub calls_per_second: f64,
    pub ring_timeout_secs: f64,
}

impl Scenario {
    /// A typical outbound floor: 30 % people, 20 % machines, three-minute
    /// calls plus wrap-up, 3 % abandon limit.
    pub fn contact_centre(agents: u32, person_rate: f64, machine_rate: f64) -> Scenario {
        Scenario {
            name: format!(
                "{agents} agents, {:.0} % people, {:.0} % machines",
                person_rate * 100.0,
                machine_rate * 100.0
            ),
            agents,
            hours: 8.0,
            person_rate,
            machine_rate,
            busy_rate: 0.07,
            mean_ring_secs: 7.0,
            mean_talk_secs: 180.0,
            mean_wrap_up_secs: 20.0,
            abandon_limit_percent: 3.0,
            trunk_channels: i64::from(agents) * 4,
            calls_per_second: 5.0,
            ring_timeout_secs: 20.0,
        }
    }

    /// The campaign the scenario's pacer runs.
    pub fn campaign(&self, mode: DialMode) -> Result<Campaign, CampaignError> {
        let mut settings = CampaignSettings {
            mode,
            agents_target: i64::from(self.agents),
            ring_timeout_secs: self.ring_timeout_secs,
            ..CampaignSettings::default()
        };
        settings.limits.trunk_channels = self.trunk_channels;
        settings.limits.max_concurrent_calls = self.trunk_channels;
        settings.limits.calls_per_second = self.calls_per_second;
        settings.abandon.limit_percent = self.abandon_limit_percent;
        settings.validate()
    }
}

/// The policies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Progressive,
    Predictive,
    Vicidial(AdaptMethod),
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Progressive => "progressive",
            Policy::Predictive => "predictive",
            Policy::Vicidial(AdaptMethod::HardLimit) => "VICIdial ADAPT_HARD_LIMIT",
            Policy::Vicidial(AdaptMethod::Average) => "VICIdial ADAPT_AVERAGE",
        }
    }
}

/// Runs `scenario` under `policy` with `seed`.
pub fn run(scenario: &Scenario, policy: Policy, seed: u64) -> Result<Report, CampaignError> {
    let report = match policy {
        Policy::Progressive => {
            let pacer = Pacer::new(scenario.campaign(DialMode::Progressive)?);
            World::new(scenario, pacer, seed).run()
        }
        Policy::Predictive => {
            let pacer = Pacer::new(scenario.campaign(DialMode::Predictive)?);
            World::new(scenario, pacer, seed).run()
        }
        Policy::Vicidial(method) => {
            let campaign = scenario.campaign(DialMode::Predictive)?;
            let baseline = VicidialAdaptive::new(campaign, method);
            World::new(scenario, baseline, seed).run()
        }
    };
    Ok(Report {
        policy: policy.name(),
        ..report
    })
}
