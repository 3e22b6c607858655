//! The baseline: VICIdial's adaptive predictive dialling, re-expressed from
//! the behaviour its `AST_VDadapt.pl` and `AST_VDauto_dial.pl` document, so
//! both policies meet the same simulated floor.
//!
//! VICIdial steers one number, the *dial level* (lines per agent):
//!
//! - every second it samples agents ready, answered calls waiting for an
//!   agent, and agents logged in, keeping the last 15 samples;
//! - every 15 seconds the differential (average ready minus average
//!   waiting) over the average logged-in agents moves the level:
//!   `level × (1 + differential / agents)`, scaled by the intensity
//!   setting (0 here, its default), capped at the maximum level (3.0) and
//!   floored at 1.0;
//! - once the day has more than 50 calls and its drop rate (drops over
//!   person answers) passes the target, ADAPT_HARD_LIMIT sets the level
//!   to 1.0 and ADAPT_AVERAGE halves it; more than 50 % drops in the last
//!   minute (over 20 calls) also halves it;
//! - every 2.5 seconds the dialler places `round(level × (ready + in-call
//!   agents))` minus the calls already up (ringing, waiting or with an
//!   agent).
//!
//! The drop timer is the same two seconds as the pacer's, and the same
//! trunk, rate and ring limits apply, so only the pacing rule differs.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use super::Dialer;
use crate::pacing::campaign::Campaign;
use crate::pacing::events::{
    AgentId, AgentState, CallId, CallProgress, Contact, ContactId, Dial, PacerEvent,
};
use crate::pacing::pacer::PacerError;

const SAMPLE_EVERY: TimeDelta = TimeDelta::seconds(1);
const SAMPLES_KEPT: usize = 15;
const ADAPT_EVERY: TimeDelta = TimeDelta::seconds(15);
const DIAL_LOOP_EVERY: TimeDelta = TimeDelta::milliseconds(2_500);
const MAXIMUM_LEVEL: f64 = 3.0;
const CALLS_BEFORE_DROP_RULE: u64 = 50;

/// What VICIdial does when the day's drop rate passes the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptMethod {
    /// Back to a level of 1.0.
    HardLimit,
    /// Halve the level.
    Average,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Waiting,
    WithAgent,
    Closing,
}

#[derive(Debug, Clone)]
struct BaselineCall {
    contact: ContactId,
    phase: Phase,
    ring_deadline: Option<DateTime<Utc>>,
    drop_deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    ready: u32,
    waiting: u32,
    logged_in: u32,
}

/// VICIdial's adaptive dial level, as a [`Dialer`].
pub struct VicidialAdaptive {
    campaign: Campaign,
    method: AdaptMethod,
    level: f64,
    queue: VecDeque<Contact>,
    agents: BTreeMap<AgentId, AgentState>,
    calls: BTreeMap<CallId, BaselineCall>,
    samples: VecDeque<Sample>,
    next_sample: Option<DateTime<Utc>>,
    next_adapt: Option<DateTime<Utc>>,
    next_loop: Option<DateTime<Utc>>,
    next_dial_at: Option<DateTime<Utc>>,
    to_place: u32,
    calls_today: u64,
    answers_today: u64,
    drops_today: u64,
    /// (instant, dialled or dropped) of the last minute.
    last_minute: VecDeque<(DateTime<Utc>, bool)>,
    events: VecDeque<PacerEvent>,
    next_call: u64,
}

impl VicidialAdaptive {
    pub fn new(campaign: Campaign, method: AdaptMethod) -> VicidialAdaptive {
        VicidialAdaptive {
            campaign,
            method,
            level: 1.0,
            queue: VecDeque::new(),
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            samples: VecDeque::new(),
            next_sample: None,
            next_adapt: None,
            next_loop: None,
            next_dial_at: None,
            to_place: 0,
            calls_today: 0,
            answers_today: 0,
            drops_today: 0,
            last_minute: VecDeque::new(),
            events: VecDeque::new(),
            next_call: 1,
        }
    }

    pub fn dial_level(&self) -> f64 {
        self.level
    }

    fn count_agents(&self, state: AgentState) -> u32 {
        self.agents.values().filter(|s| **s == state).count() as u32
    }

    fn sample(&mut self) {
        let waiting = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Waiting)
            .count() as u32;
        self.samples.push_back(Sample {
            ready: self.count_agents(AgentState::Available),
            waiting,
            logged_in: self
                .agents
                .values()
                .filter(|s| **s != AgentState::Away)
                .count() as u32,
        });
        if self.samples.len() > SAMPLES_KEPT {
            self.samples.pop_front();
        }
    }

    fn adapt(&mut self, now: DateTime<Utc>) {
        let n = self.samples.len().max(1) as f64;
        let ready = self.samples.iter().map(|s| f64::from(s.ready)).sum::<f64>() / n;
        let waiting = self
            .samples
            .iter()
            .map(|s| f64::from(s.waiting))
            .sum::<f64>()
            / n;
        let agents = self
            .samples
            .iter()
            .map(|s| f64::from(s.logged_in))
            .sum::<f64>()
            / n;
        let differential = ready - waiting;
        let multiplier = if agents > 0.0 {
            differential / agents
        } else {
            0.0
        };
        // Intensity 0: the differential is applied as it is.
        let mut level = (self.level * (1.0 + multiplier)).min(MAXIMUM_LEVEL);
        if level < 1.0 {
            level = 1.0;
        }
        while self
            .last_minute
            .front()
            .is_some_and(|(t, _)| *t <= now - TimeDelta::minutes(1))
        {
            self.last_minute.pop_front();
        }
        let minute_calls = self.last_minute.iter().filter(|(_, dial)| *dial).count();
        let minute_drops = self.last_minute.len() - minute_calls;
        if minute_calls > 20 && minute_drops * 2 > minute_calls {
            level /= 2.0;
        }
        let drop_rate = if self.answers_today > 0 {
            self.drops_today as f64 / self.answers_today as f64
        } else {
            0.0
        };
        if self.calls_today > CALLS_BEFORE_DROP_RULE && drop_rate > self.campaign.abandon_limit() {
            level = match self.method {
                AdaptMethod::HardLimit => 1.0,
                AdaptMethod::Average => level / 2.0,
            };
        }
        self.level = level.max(1.0);
    }

    fn dial_loop(&mut self) {
        let agents = self.count_agents(AgentState::Available) + self.count_agents(AgentState::Busy);
        let goal = (self.level * f64::from(agents)).round() as u32;
        let up = self
            .calls
            .values()
            .filter(|c| c.phase != Phase::Closing)
            .count() as u32;
        self.to_place = goal.saturating_sub(up);
    }

    fn tick(&mut self, now: DateTime<Utc>) {
        let due = |at: Option<DateTime<Utc>>| at.is_none_or(|t| t <= now);
        if due(self.next_sample) {
            self.sample();
            self.next_sample = Some(now + SAMPLE_EVERY);
        }
        if due(self.next_adapt) {
            if self.next_adapt.is_some() {
                self.adapt(now);
            }
            self.next_adapt = Some(now + ADAPT_EVERY);
        }
        if due(self.next_loop) {
            self.dial_loop();
            self.next_loop = Some(now + DIAL_LOOP_EVERY);
        }
    }
}

impl Dialer for VicidialAdaptive {
    fn offer(&mut self, contact: Contact) {
        self.queue.push_back(contact);
    }

    fn contacts_queued(&self) -> usize {
        self.queue.len()
    }

    fn agent_changed(&mut self, _now: DateTime<Utc>, agent: AgentId, state: AgentState) {
        self.agents.insert(agent, state);
    }

    fn call_progress(
        &mut self,
        now: DateTime<Utc>,
        call: CallId,
        progress: CallProgress,
    ) -> Result<(), PacerError> {
        let live = self
            .calls
            .get_mut(&call)
            .ok_or(PacerError::UnknownCall(call))?;
        match progress {
            CallProgress::Ringing => {
                if live.phase == Phase::Ringing {
                    live.ring_deadline = Some(now + self.campaign.ring_timeout());
                }
            }
            CallProgress::AnsweredByPerson => {
                live.phase = Phase::Waiting;
                live.ring_deadline = None;
                live.drop_deadline = Some(now + self.campaign.connect_within());
                self.answers_today += 1;
            }
            CallProgress::AnsweredByMachine => {
                live.phase = Phase::Closing;
                live.ring_deadline = None;
            }
            CallProgress::ConnectedToAgent { .. } => {
                if live.phase == Phase::Waiting {
                    live.phase = Phase::WithAgent;
                    live.drop_deadline = None;
                }
            }
            CallProgress::NoAnswer
            | CallProgress::Busy
            | CallProgress::Failed
            | CallProgress::Ended => {
                self.calls.remove(&call);
            }
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: DateTime<Utc>) {
        self.tick(now);
        for (&id, live) in &mut self.calls {
            if live.ring_deadline.is_some_and(|d| d <= now) {
                live.ring_deadline = None;
                self.events.push_back(PacerEvent::RingTimeout { call: id });
            }
            if live.phase == Phase::Waiting && live.drop_deadline.is_some_and(|d| d <= now) {
                live.phase = Phase::Closing;
                live.drop_deadline = None;
                self.drops_today += 1;
                self.last_minute.push_back((now, false));
                self.events.push_back(PacerEvent::Abandon {
                    call: id,
                    contact: live.contact.clone(),
                });
            }
        }
    }

    fn poll_dial(&mut self, now: DateTime<Utc>) -> Option<Dial> {
        self.tick(now);
        if self.to_place == 0 || self.next_dial_at.is_some_and(|t| now < t) {
            return None;
        }
        if self.calls.len() >= self.campaign.channel_limit() as usize {
            return None;
        }
        let contact = self.queue.pop_front()?;
        self.to_place -= 1;
        let call = CallId(self.next_call);
        self.next_call += 1;
        let spacing =
            TimeDelta::microseconds((1e6 / self.campaign.calls_per_second()).ceil() as i64);
        self.next_dial_at = Some(now + spacing);
        self.calls.insert(
            call,
            BaselineCall {
                contact: contact.id.clone(),
                phase: Phase::Ringing,
                ring_deadline: Some(now + self.campaign.ring_timeout()),
                drop_deadline: None,
            },
        );
        self.calls_today += 1;
        self.last_minute.push_back((now, true));
        Some(Dial {
            call,
            contact,
            agent: None,
            ring_timeout: self.campaign.ring_timeout(),
        })
    }

    fn poll_event(&mut self) -> Option<PacerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let deadlines = self
            .calls
            .values()
            .flat_map(|c| [c.ring_deadline, c.drop_deadline]);
        let mut wake = [self.next_sample, self.next_adapt, self.next_loop];
        if self.to_place > 0 {
            wake[2] = match (self.next_loop, self.next_dial_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        deadlines.chain(wake).flatten().min()
    }
}
