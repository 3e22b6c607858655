//! The simulated floor: people who answer or not, agents who talk and wrap
//! up, and the shell that places calls and routes answered people, driven
//! by one event queue in virtual milliseconds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::draw::{between, lognormal_with_mean};
use super::report::Report;
use super::{Dialer, Scenario};
use crate::consent::ZoneGuess;
use crate::pacing::events::{
    AgentId, AgentState, CallId, CallProgress, Contact, ContactId, Dial, PacerEvent,
};

/// How long the identification and opt-out message of an abandoned call
/// holds its channel.
const ABANDON_MESSAGE_MS: i64 = 8_000;

/// The window the world judges abandons by, whatever the dialer does: the
/// legal two seconds.
const CONNECT_WINDOW_MS: i64 = 2_000;

/// How long a detected machine holds its channel before hang-up.
const MACHINE_HANG_UP_MS: i64 = 500;

/// The person's answer as AMD reports it, after this long of greeting.
const PERSON_DETECTION_MS: (f64, f64) = (800.0, 1_800.0);
const MACHINE_DETECTION_MS: (f64, f64) = (2_500.0, 4_000.0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Rings(CallId),
    PersonAnswers(CallId),
    MachineAnswers(CallId),
    LineBusy(CallId),
    HangsUp(CallId),
    TalkEnds(AgentId),
    WrapUpEnds(AgentId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Person,
    Machine,
    Busy,
    RingsOut,
}

#[derive(Debug, Clone)]
struct SimCall {
    answered_at: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct SimAgent {
    free: bool,
    busy_since: i64,
    free_since: i64,
    call: Option<CallId>,
}

/// One run of a scenario under a dialling policy.
pub struct World<'s, D: Dialer> {
    scenario: &'s Scenario,
    dialer: D,
    rng: StdRng,
    start: DateTime<Utc>,
    end_ms: i64,
    now_ms: i64,
    happenings: BinaryHeap<Reverse<(i64, u64, Happening)>>,
    sequence: u64,
    calls: BTreeMap<CallId, SimCall>,
    agents: BTreeMap<AgentId, SimAgent>,
    /// Answered people waiting for an agent, oldest first.
    waiting: VecDeque<CallId>,
    next_contact: u64,
    report: Report,
    busy_ms: i64,
}

impl<'s, D: Dialer> World<'s, D> {
    pub fn new(scenario: &'s Scenario, dialer: D, seed: u64) -> World<'s, D> {
        // A Monday at 09:00 UTC: the whole shift is inside 08:00–21:00 for
        // the callees (all in UTC here).
        let start = Utc
            .with_ymd_and_hms(2026, 6, 15, 9, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        World {
            scenario,
            dialer,
            rng: StdRng::seed_from_u64(seed),
            start,
            end_ms: (scenario.hours * 3_600_000.0) as i64,
            now_ms: 0,
            happenings: BinaryHeap::new(),
            sequence: 0,
            calls: BTreeMap::new(),
            agents: BTreeMap::new(),
            waiting: VecDeque::new(),
            next_contact: 0,
            report: Report::default(),
            busy_ms: 0,
        }
    }

    pub fn run(mut self) -> Report {
        let now = self.at(0);
        for id in 0..u64::from(self.scenario.agents) {
            self.agents.insert(
                AgentId(id),
                SimAgent {
                    free: true,
                    busy_since: 0,
                    free_since: 0,
                    call: None,
                },
            );
            self.dialer
                .agent_changed(now, AgentId(id), AgentState::Available);
        }
        loop {
            let next_world = self.happenings.peek().map(|Reverse((t, _, _))| *t);
            let next_dialer = self
                .dialer
                .poll_timeout()
                .map(|t| self.ms_of(t).max(self.now_ms + 1));
            let next = match (next_world, next_dialer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => self.now_ms + 1_000,
            };
            if next >= self.end_ms {
                break;
            }
            self.now_ms = next;
            while let Some(Reverse((t, _, happening))) = self.happenings.peek().copied() {
                if t > self.now_ms {
                    break;
                }
                self.happenings.pop();
                self.happen(happening);
            }
            let now = self.at(self.now_ms);
            self.dialer.handle_timeout(now);
            self.obey_dialer();
            self.top_up_contacts();
            while let Some(dial) = self.dialer.poll_dial(now) {
                self.place(dial);
            }
            self.obey_dialer();
        }
        self.finish()
    }

    fn at(&self, ms: i64) -> DateTime<Utc> {
        self.start + TimeDelta::milliseconds(ms)
    }

    /// Virtual milliseconds of an instant, rounded up: waking early would
    /// find nothing due.
    fn ms_of(&self, t: DateTime<Utc>) -> i64 {
        let micros = (t - self.start).num_microseconds().unwrap_or(i64::MAX);
        micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) > 0)
    }

    fn schedule(&mut self, after_ms: i64, happening: Happening) {
        self.sequence += 1;
        self.happenings.push(Reverse((
            self.now_ms + after_ms.max(0),
            self.sequence,
            happening,
        )));
    }

    fn progress(&mut self, call: CallId, progress: CallProgress) {
        let now = self.at(self.now_ms);
        if self.dialer.call_progress(now, call, progress).is_err() {
            self.report.protocol_errors += 1;
        }
    }

    fn top_up_contacts(&mut self) {
        let wanted = (self.scenario.agents as usize) * 3 + 20;
        while self.dialer.contacts_queued() < wanted {
            self.next_contact += 1;
            self.dialer.offer(Contact {
                id: ContactId(format!("lead-{}", self.next_contact)),
                zone: ZoneGuess::Exact(Tz::UTC),
                region: None,
            });
        }
    }

    fn place(&mut self, dial: Dial) {
        self.report.dialled += 1;
        self.report.max_calls_up = self.report.max_calls_up.max(self.live_calls() + 1);
        self.calls.insert(dial.call, SimCall { answered_at: None });
        let s = self.scenario;
        let roll: f64 = self.rng.gen();
        let fate = if roll < s.person_rate {
            Fate::Person
        } else if roll < s.person_rate + s.machine_rate {
            Fate::Machine
        } else if roll < s.person_rate + s.machine_rate + s.busy_rate {
            Fate::Busy
        } else {
            Fate::RingsOut
        };
        let first_ring = between(&mut self.rng, 500.0, 2_000.0) as i64;
        self.schedule(first_ring, Happening::Rings(dial.call));
        // Answers fall before the ring timeout: a later one would be a
        // no-answer anyway.
        let latest_answer = s.ring_timeout_secs * 1000.0 - 500.0;
        let ring = (first_ring as f64
            + lognormal_with_mean(&mut self.rng, s.mean_ring_secs * 1000.0, 0.45))
        .clamp(first_ring as f64 + 500.0, latest_answer) as i64;
        match fate {
            Fate::Person => {
                let detect = between(&mut self.rng, PERSON_DETECTION_MS.0, PERSON_DETECTION_MS.1);
                self.schedule(ring + detect as i64, Happening::PersonAnswers(dial.call));
            }
            Fate::Machine => {
                let detect = between(
                    &mut self.rng,
                    MACHINE_DETECTION_MS.0,
                    MACHINE_DETECTION_MS.1,
                );
                self.schedule(ring + detect as i64, Happening::MachineAnswers(dial.call));
            }
            Fate::Busy => {
                let after = between(&mut self.rng, 1_000.0, 4_000.0) as i64;
                self.schedule(after, Happening::LineBusy(dial.call));
            }
            // The dialer's ring timeout ends it.
            Fate::RingsOut => {}
        }
    }

    fn live_calls(&self) -> u64 {
        self.calls.len() as u64
    }

    fn is_live(&self, call: CallId) -> bool {
        self.calls.contains_key(&call)
    }

    fn happen(&mut self, happening: Happening) {
        match happening {
            Happening::Rings(call) => {
                if self.is_live(call) {
                    self.progress(call, CallProgress::Ringing);
                }
            }
            Happening::PersonAnswers(call) => {
                if !self.is_live(call) {
                    return;
                }
                self.report.answered_by_person += 1;
                if let Some(c) = self.calls.get_mut(&call) {
                    c.answered_at = Some(self.now_ms);
                }
                self.progress(call, CallProgress::AnsweredByPerson);
                self.waiting.push_back(call);
                self.route();
            }
            Happening::MachineAnswers(call) => {
                if self.is_live(call) {
                    self.report.answered_by_machine += 1;
                    self.progress(call, CallProgress::AnsweredByMachine);
                    self.schedule(MACHINE_HANG_UP_MS, Happening::HangsUp(call));
                }
            }
            Happening::LineBusy(call) => {
                if self.is_live(call) {
                    self.finish_call(call);
                    self.progress(call, CallProgress::Busy);
                }
            }
            Happening::HangsUp(call) => {
                if self.is_live(call) {
                    self.finish_call(call);
                    self.progress(call, CallProgress::Ended);
                }
            }
            Happening::TalkEnds(agent) => {
                let call = self.agents.get(&agent).and_then(|a| a.call);
                if let Some(call) = call {
                    self.finish_call(call);
                    self.progress(call, CallProgress::Ended);
                }
                let now = self.at(self.now_ms);
                self.dialer.agent_changed(now, agent, AgentState::WrapUp);
                let wrap = lognormal_with_mean(
                    &mut self.rng,
                    self.scenario.mean_wrap_up_secs * 1000.0,
                    0.5,
                ) as i64;
                self.schedule(wrap, Happening::WrapUpEnds(agent));
            }
            Happening::WrapUpEnds(agent) => {
                let now_ms = self.now_ms;
                if let Some(a) = self.agents.get_mut(&agent) {
                    self.busy_ms += now_ms - a.busy_since;
                    a.free = true;
                    a.free_since = now_ms;
                    a.call = None;
                }
                let now = self.at(now_ms);
                self.dialer.agent_changed(now, agent, AgentState::Available);
                self.route();
            }
        }
    }

    /// Gives waiting people to free agents, longest-idle agent first. A
    /// person who waited past the connect window is already abandoned (by
    /// the dialer, or else counted here).
    fn route(&mut self) {
        let window_ms = CONNECT_WINDOW_MS;
        while let Some(&call) = self.waiting.front() {
            let agent = self
                .agents
                .iter()
                .filter(|(_, a)| a.free)
                .min_by_key(|(id, a)| (a.free_since, **id))
                .map(|(id, _)| *id);
            let Some(agent) = agent else { return };
            self.waiting.pop_front();
            let answered_at = self.calls.get(&call).and_then(|c| c.answered_at);
            if answered_at.is_some_and(|t| self.now_ms - t > window_ms) {
                // Too late to count as connected: the law sees an abandon.
                self.report.abandoned += 1;
                self.report.late_connections += 1;
            }
            let now_ms = self.now_ms;
            if let Some(a) = self.agents.get_mut(&agent) {
                a.free = false;
                a.busy_since = now_ms;
                a.call = Some(call);
            }
            self.report.connected += 1;
            let now = self.at(now_ms);
            self.dialer.agent_changed(now, agent, AgentState::Busy);
            self.progress(call, CallProgress::ConnectedToAgent { agent });
            let talk =
                lognormal_with_mean(&mut self.rng, self.scenario.mean_talk_secs * 1000.0, 0.6)
                    as i64;
            self.schedule(talk, Happening::TalkEnds(agent));
        }
    }

    /// Acts on what the dialer asked: abandon messages and ring timeouts.
    fn obey_dialer(&mut self) {
        while let Some(event) = self.dialer.poll_event() {
            match event {
                PacerEvent::Abandon { call, .. } => {
                    if let Some(at) = self.waiting.iter().position(|c| *c == call) {
                        self.waiting.remove(at);
                        self.report.abandoned += 1;
                        self.schedule(ABANDON_MESSAGE_MS, Happening::HangsUp(call));
                    }
                }
                PacerEvent::RingTimeout { call } => {
                    let unanswered = self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.answered_at.is_none());
                    if unanswered {
                        self.finish_call(call);
                        self.progress(call, CallProgress::NoAnswer);
                    }
                }
                PacerEvent::ContactDeferred { .. }
                | PacerEvent::ContactDropped { .. }
                | PacerEvent::PreviewOffered { .. } => {}
            }
        }
    }

    /// Finished calls are forgotten so a long run stays small; events
    /// still scheduled for them find nothing and do nothing.
    fn finish_call(&mut self, call: CallId) {
        self.calls.remove(&call);
    }

    fn finish(mut self) -> Report {
        // Agents still on a call at the end count up to the end.
        for agent in self.agents.values() {
            if !agent.free {
                self.busy_ms += self.end_ms - agent.busy_since;
            }
        }
        let agent_ms = self.end_ms as f64 * f64::from(self.scenario.agents);
        self.report.occupancy = if agent_ms > 0.0 {
            self.busy_ms as f64 / agent_ms
        } else {
            0.0
        };
        let agent_hours = agent_ms / 3_600_000.0;
        self.report.calls_per_agent_hour = if agent_hours > 0.0 {
            self.report.connected as f64 / agent_hours
        } else {
            0.0
        };
        self.report
    }
}
