//! One campaign as the dialler runs it: its pacer, the agent seats calls
//! are routed to, the people waiting for an agent, and the record the API
//! keeps (re-read every few seconds, so agents, pause and strategy changes
//! reach running calls without a restart).
//!
//! Seats are the dialler's side of the agents the pacer counts: the pacer
//! decides *how many* calls, a seat decides *which* agent's phone rings.
//! A seat is taken when its phone is about to ring and given back when the
//! call ends; the pacer hears `Busy` only once the agent talks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::config::PacingConfig;
use crate::media::Announcement;
use crate::pacing::{AgentId, AgentState, CallId, DialMode, Pacer, Strategy};
use crate::store::campaigns::{
    AgentPresence, CampaignRecord, CampaignState, CampaignStoreError, MachineAction,
};
use crate::store::holds::ScheduledCallback;
use crate::store::Store;

/// (enterprise id, campaign name), as on scheduled callbacks.
pub(super) type CampaignKey = (String, String);

/// A seat handed to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seat {
    pub agent: AgentId,
    target: Option<String>,
}

#[derive(Debug)]
struct SeatState {
    target: Option<String>,
    present: bool,
    taken_by: Option<CallId>,
}

pub(super) struct CampaignRun {
    pub pacer: Pacer,
    record: Option<CampaignRecord>,
    mode: DialMode,
    ring_timeout: Duration,
    seats: Vec<SeatState>,
    /// Attempts whose person waits for an agent, longest first.
    pub waiting: Vec<String>,
    messages: HashMap<String, Arc<Announcement>>,
}

impl CampaignRun {
    /// The campaign as stored (or the configured defaults), with its
    /// abandon history read back for the legal window.
    pub async fn load(
        store: &Store,
        config: &PacingConfig,
        key: &CampaignKey,
        now: DateTime<Utc>,
    ) -> Result<CampaignRun, CampaignStoreError> {
        let record = store.campaign_for(&key.0, &key.1).await?;
        let campaign = match record.as_ref().map(|r| r.settings.validate()) {
            Some(Ok(campaign)) => campaign,
            Some(Err(e)) => {
                warn!(campaign = %key.1, error = %e, "stored settings unusable; using [pacing.defaults]");
                config.defaults.clone()
            }
            None => config.defaults.clone(),
        };
        let ledger = store
            .abandon_ledger(&key.0, &key.1, campaign.abandon_window(), now)
            .await?;
        let mode = campaign.mode();
        let ring_timeout = campaign
            .ring_timeout()
            .to_std()
            .unwrap_or(Duration::from_secs(20));
        let mut run = CampaignRun {
            pacer: Pacer::with_ledger(campaign, ledger),
            record: None,
            mode,
            ring_timeout,
            seats: Vec::new(),
            waiting: Vec::new(),
            messages: HashMap::new(),
        };
        info!(enterprise = %key.0, campaign = %key.1, mode = mode.as_str(), "campaign started");
        run.refresh(record, config, now);
        Ok(run)
    }

    /// Takes a newer record: agents present, their phones, pause.
    pub fn refresh(
        &mut self,
        record: Option<CampaignRecord>,
        config: &PacingConfig,
        now: DateTime<Utc>,
    ) {
        let wanted: Vec<(Option<String>, bool)> = match &record {
            Some(r) if !r.agents.agents.is_empty() => r
                .agents
                .agents
                .iter()
                .map(|a| (Some(a.target.clone()), a.state == AgentPresence::Available))
                .collect(),
            Some(r) if r.agents_updated_at.is_some() => {
                (0..r.agents.available).map(|_| (None, true)).collect()
            }
            _ => (0..config.agents).map(|_| (None, true)).collect(),
        };
        if !self.mode.uses_agents() {
            self.record = record;
            return;
        }
        for (i, (target, present)) in wanted.iter().enumerate() {
            match self.seats.get_mut(i) {
                Some(seat) => {
                    seat.target.clone_from(target);
                    if seat.present != *present {
                        seat.present = *present;
                        if seat.taken_by.is_none() {
                            self.pacer
                                .agent_changed(now, AgentId(i as u64), presence(*present));
                        }
                    }
                }
                None => {
                    self.seats.push(SeatState {
                        target: target.clone(),
                        present: *present,
                        taken_by: None,
                    });
                    self.pacer
                        .agent_changed(now, AgentId(i as u64), presence(*present));
                }
            }
        }
        for (i, seat) in self.seats.iter_mut().enumerate().skip(wanted.len()) {
            if seat.present {
                seat.present = false;
                if seat.taken_by.is_none() {
                    self.pacer
                        .agent_changed(now, AgentId(i as u64), AgentState::Away);
                }
            }
        }
        self.record = record;
    }

    /// Whether `record` paces differently from the settings this run's
    /// pacer was built with.
    pub fn settings_changed(&self, record: Option<&CampaignRecord>) -> bool {
        self.record.as_ref().map(|r| &r.settings) != record.map(|r| &r.settings)
    }

    pub fn paused(&self) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| r.state == CampaignState::Paused)
    }

    pub fn uses_agents(&self) -> bool {
        self.mode.uses_agents()
    }

    pub fn agent_first(&self, config: &PacingConfig) -> bool {
        config.order.agent_first(self.mode)
    }

    pub fn ring_timeout(&self) -> Duration {
        self.ring_timeout
    }

    pub fn strategy(&self) -> Strategy {
        self.record
            .as_ref()
            .map(CampaignRecord::strategy)
            .unwrap_or_default()
    }

    /// A free seat for `call`, the one free longest first.
    pub fn take_seat(&mut self, call: CallId) -> Option<Seat> {
        let (i, seat) = self
            .seats
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.present && s.taken_by.is_none())?;
        seat.taken_by = Some(call);
        Some(Seat {
            agent: AgentId(i as u64),
            target: seat.target.clone(),
        })
    }

    /// The agent now talks to the customer.
    pub fn seat_busy(&mut self, seat: &Seat, now: DateTime<Utc>) {
        self.pacer.agent_changed(now, seat.agent, AgentState::Busy);
    }

    /// The seat's call is over (or never reached the agent).
    pub fn free_seat(&mut self, seat: Seat, now: DateTime<Utc>) {
        let Some(state) = usize::try_from(seat.agent.0)
            .ok()
            .and_then(|i| self.seats.get_mut(i))
        else {
            return;
        };
        state.taken_by = None;
        self.pacer
            .agent_changed(now, seat.agent, presence(state.present));
    }

    /// Where the seat's phone is: the agent's own, the campaign's queue,
    /// the configured default, or the extension that made the first call.
    pub fn seat_target(
        &self,
        seat: &Seat,
        callback: &ScheduledCallback,
        config: &PacingConfig,
    ) -> String {
        seat.target
            .clone()
            .or_else(|| self.record.as_ref().and_then(|r| r.agent_target.clone()))
            .or_else(|| config.agent_target.clone())
            .unwrap_or_else(|| callback.pbx_target.clone())
    }

    /// The identification and opt-out message for abandoned calls (and
    /// the message of an agentless campaign).
    pub fn abandon_message(&mut self, config: &PacingConfig) -> Arc<Announcement> {
        let path = self.record.as_ref().and_then(|r| r.abandon_message.clone());
        path.and_then(|p| self.message_file(&p))
            .unwrap_or_else(|| config.abandon_message.clone())
    }

    /// What a machine hears, if the campaign leaves a message.
    pub fn machine_message(&self, config: &PacingConfig) -> Option<Arc<Announcement>> {
        let policy = self.record.as_ref().map(|r| &r.machine_policy)?;
        if policy.action != MachineAction::LeaveMessage {
            return None;
        }
        policy
            .message
            .as_deref()
            .and_then(|p| self.messages.get(p).cloned().or_else(|| read_message(p)))
            .or_else(|| config.machine_message.clone())
            .or_else(|| Some(config.abandon_message.clone()))
    }

    fn message_file(&mut self, path: &str) -> Option<Arc<Announcement>> {
        if let Some(message) = self.messages.get(path) {
            return Some(message.clone());
        }
        let message = read_message(path)?;
        self.messages.insert(path.to_string(), message.clone());
        Some(message)
    }
}

fn read_message(path: &str) -> Option<Arc<Announcement>> {
    match Announcement::from_wav_file(Path::new(path)) {
        Ok(message) => Some(Arc::new(message)),
        Err(e) => {
            warn!(path, error = %e, "campaign message unplayable; using the default");
            None
        }
    }
}

fn presence(present: bool) -> AgentState {
    if present {
        AgentState::Available
    } else {
        AgentState::Away
    }
}
