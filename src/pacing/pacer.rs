//! The pacer: one campaign's dialling decisions as a state machine with
//! no I/O and no clock.
//!
//! Like `quinn-proto` and `str0m`, it is driven from outside: the caller
//! feeds it the current time, due contacts, agent changes and call
//! progress, and drains what it decided: calls to place
//! ([`Pacer::poll_dial`]), instructions and records ([`Pacer::poll_event`])
//! and when to wake it next ([`Pacer::poll_timeout`]). The same inputs give
//! the same outputs, so a simulation can run a day of a contact centre in
//! a blink and tests can assert every limit.
//!
//! Time is `DateTime<Utc>` throughout: calling hours and the legal abandon
//! windows are wall-clock rules, and one time type keeps them and the
//! timers from disagreeing.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use super::abandon::{AbandonCounts, AbandonLedger};
use super::campaign::{Campaign, DialMode};
use super::events::{
    AgentId, AgentState, CallId, CallProgress, Contact, ContactId, Dial, DropReason, PacerEvent,
    PreviewId,
};
use super::forecast::{CallOutcomes, HandleTimes};
use super::predictive::{plan_calls, Situation};
use super::throttle::AbandonThrottle;

/// Pause when the trunk refuses with `503` and no `Retry-After`.
pub const DEFAULT_TRUNK_BACKOFF: TimeDelta = TimeDelta::seconds(5);

/// How often the predictive plan is re-made while calls wait to be
/// placed: agents' chances of finishing grow by the second.
const REPLAN_EVERY: TimeDelta = TimeDelta::seconds(1);

/// History the forecast keeps: enough for stable hazards, recent enough
/// to follow a change of list or of time of day.
const OUTCOMES_KEPT: usize = 600;
const HANDLE_TIMES_KEPT: usize = 200;

/// Before this much history, predictive mode dials progressively.
const MIN_ATTEMPTS: usize = 60;
const MIN_PERSON_ANSWERS: usize = 15;
const MIN_HANDLE_TIMES: usize = 10;

/// A report about a call or preview the pacer does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacerError {
    #[error("no call {0:?} is in progress")]
    UnknownCall(CallId),
    #[error("no preview {0:?} is open")]
    UnknownPreview(PreviewId),
    #[error("call {0:?} has already been answered or given up")]
    CallAlreadyStarted(CallId),
}

/// What the pacer has done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacerStats {
    pub dialled: u64,
    pub answered_by_person: u64,
    pub answered_by_machine: u64,
    pub connected: u64,
    pub abandoned: u64,
    pub not_answered: u64,
    pub deferred: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Dialling,
    Ringing,
    WaitingForAgent,
    WithAgent,
    /// A machine, an abandon message or an agentless message plays.
    Closing,
}

#[derive(Debug, Clone)]
struct LiveCall {
    contact: ContactId,
    dialled_at: DateTime<Utc>,
    phase: Phase,
    ring_deadline: Option<DateTime<Utc>>,
    connect_deadline: Option<DateTime<Utc>>,
    /// Expected abandons charged to the budget while unresolved.
    expected_abandons: f64,
    /// The preview agent waiting for this call.
    agent: Option<AgentId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Preview(PreviewId),
    Call(CallId),
}

#[derive(Debug, Clone)]
struct AgentSlot {
    state: AgentState,
    busy_since: Option<DateTime<Utc>>,
    held_for: Option<Hold>,
}

#[derive(Debug, Clone)]
struct OpenPreview {
    agent: AgentId,
    contact: Contact,
    accepted: bool,
}

/// One campaign's pacer.
#[derive(Debug)]
pub struct Pacer {
    campaign: Campaign,
    queue: VecDeque<Contact>,
    agents: BTreeMap<AgentId, AgentSlot>,
    calls: BTreeMap<CallId, LiveCall>,
    previews: BTreeMap<PreviewId, OpenPreview>,
    accepted_previews: VecDeque<PreviewId>,
    ledger: AbandonLedger,
    throttle: AbandonThrottle,
    outcomes: CallOutcomes,
    handle_times: HandleTimes,
    events: VecDeque<PacerEvent>,
    next_dial_at: Option<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
    next_call: u64,
    next_preview: u64,
    /// Predictive calls planned at `planned_at`, expected abandons each.
    plan: VecDeque<f64>,
    planned_at: Option<DateTime<Utc>>,
    state_changed: bool,
    /// The latest time passed in: wake-ups already past are not asked
    /// for again, or an idle shell would spin on them.
    latest: Option<DateTime<Utc>>,
    stats: PacerStats,
}

impl Pacer {
    pub fn new(campaign: Campaign) -> Pacer {
        Pacer {
            ledger: AbandonLedger::for_window(campaign.abandon_window()),
            throttle: AbandonThrottle::new(campaign.abandon_limit()),
            campaign,
            queue: VecDeque::new(),
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            previews: BTreeMap::new(),
            accepted_previews: VecDeque::new(),
            outcomes: CallOutcomes::new(OUTCOMES_KEPT),
            handle_times: HandleTimes::new(HANDLE_TIMES_KEPT),
            events: VecDeque::new(),
            next_dial_at: None,
            paused_until: None,
            next_call: 1,
            next_preview: 1,
            plan: VecDeque::new(),
            planned_at: None,
            state_changed: true,
            latest: None,
            stats: PacerStats::default(),
        }
    }

    /// A pacer that goes on counting abandons from `ledger` (read back
    /// from the store), so the legal rate survives a restart.
    pub fn with_ledger(campaign: Campaign, ledger: AbandonLedger) -> Pacer {
        let mut pacer = Pacer::new(campaign);
        pacer.ledger = ledger;
        pacer
    }

    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// The abandon counts of the legal window ending at `now`.
    pub fn abandon_counts(&mut self, now: DateTime<Utc>) -> AbandonCounts {
        self.ledger.counts(now)
    }

    /// Calls holding a channel.
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    /// Handle times the forecast has learned from.
    pub fn learned_handle_times(&self) -> usize {
        self.handle_times.len()
    }

    /// Contacts offered and not yet dialled, previewed or given back.
    pub fn contacts_queued(&self) -> usize {
        self.queue.len()
    }

    // ---- inputs ----

    /// A contact due now; dialled in the order offered.
    pub fn offer(&mut self, contact: Contact) {
        self.queue.push_back(contact);
    }

    /// Takes back a contact not dialled yet (queued or in an unaccepted
    /// preview); `false` if the pacer does not hold it.
    pub fn withdraw(&mut self, contact: &ContactId, reason: DropReason) -> bool {
        if let Some(at) = self.queue.iter().position(|c| &c.id == contact) {
            self.queue.remove(at);
            self.drop_contact(contact.clone(), reason);
            return true;
        }
        let preview = self
            .previews
            .iter()
            .find(|(_, p)| !p.accepted && &p.contact.id == contact)
            .map(|(id, _)| *id);
        match preview {
            Some(id) => {
                self.close_preview(id);
                self.drop_contact(contact.clone(), reason);
                true
            }
            None => false,
        }
    }

    /// The caller's check at dial time refused the call it was just given:
    /// it was never placed. The contact is dropped with `reason`.
    pub fn refuse_dial(&mut self, call: CallId, reason: DropReason) -> Result<(), PacerError> {
        let live = self.calls.get(&call).ok_or(PacerError::UnknownCall(call))?;
        if live.phase != Phase::Dialling {
            return Err(PacerError::CallAlreadyStarted(call));
        }
        let contact = live.contact.clone();
        self.stats.dialled = self.stats.dialled.saturating_sub(1);
        self.end_call(call);
        self.drop_contact(contact, reason);
        Ok(())
    }

    /// The trunk refused with `503` (or similar): no new call until
    /// `retry_after` has passed (a default pause without one).
    pub fn trunk_backoff(&mut self, now: DateTime<Utc>, retry_after: Option<TimeDelta>) {
        self.saw(now);
        let until = now
            + retry_after
                .unwrap_or(DEFAULT_TRUNK_BACKOFF)
                .max(TimeDelta::zero());
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    pub fn agent_changed(&mut self, now: DateTime<Utc>, agent: AgentId, state: AgentState) {
        self.saw(now);
        self.state_changed = true;
        let slot = self.agents.entry(agent).or_insert(AgentSlot {
            state: AgentState::Away,
            busy_since: None,
            held_for: None,
        });
        let was = slot.state;
        slot.state = state;
        match state {
            AgentState::Busy | AgentState::WrapUp => {
                if slot.busy_since.is_none() {
                    slot.busy_since = Some(now);
                }
            }
            AgentState::Available => {
                if let Some(since) = slot.busy_since.take() {
                    if matches!(was, AgentState::Busy | AgentState::WrapUp) {
                        self.handle_times.record(millis(now - since));
                    }
                }
            }
            AgentState::Away => {
                slot.busy_since = None;
                if let Some(Hold::Preview(preview)) = slot.held_for {
                    // The agent left before deciding: the contact goes back
                    // to the front, it was due first.
                    if let Some(open) = self.previews.remove(&preview) {
                        self.accepted_previews.retain(|p| *p != preview);
                        self.queue.push_front(open.contact);
                    }
                    slot.held_for = None;
                }
            }
        }
    }

    /// The agent accepted the preview: the call is placed as soon as the
    /// limits allow.
    pub fn preview_accepted(&mut self, preview: PreviewId) -> Result<(), PacerError> {
        let open = self
            .previews
            .get_mut(&preview)
            .ok_or(PacerError::UnknownPreview(preview))?;
        if !open.accepted {
            open.accepted = true;
            self.accepted_previews.push_back(preview);
        }
        Ok(())
    }

    /// The agent skipped the contact: it is dropped and the agent is free
    /// for the next preview.
    pub fn preview_skipped(&mut self, preview: PreviewId) -> Result<(), PacerError> {
        let open = self
            .previews
            .get(&preview)
            .ok_or(PacerError::UnknownPreview(preview))?;
        let contact = open.contact.id.clone();
        self.close_preview(preview);
        self.drop_contact(contact, DropReason::SkippedInPreview);
        Ok(())
    }

    pub fn call_progress(
        &mut self,
        now: DateTime<Utc>,
        call: CallId,
        progress: CallProgress,
    ) -> Result<(), PacerError> {
        self.saw(now);
        let live = self
            .calls
            .get_mut(&call)
            .ok_or(PacerError::UnknownCall(call))?;
        self.state_changed = true;
        let unanswered = matches!(live.phase, Phase::Dialling | Phase::Ringing);
        let delay = millis(now - live.dialled_at);
        match progress {
            CallProgress::Ringing => {
                if live.phase == Phase::Dialling {
                    live.phase = Phase::Ringing;
                    // The ring timeout counts from the first ring: the
                    // person gets the full time to reach the phone.
                    live.ring_deadline = Some(now + self.campaign.ring_timeout());
                }
            }
            CallProgress::AnsweredByPerson if unanswered => {
                live.ring_deadline = None;
                if self.campaign.mode().uses_agents() {
                    live.phase = Phase::WaitingForAgent;
                    live.connect_deadline = Some(now + self.campaign.connect_within());
                } else {
                    live.phase = Phase::Closing;
                    live.expected_abandons = 0.0;
                }
                self.outcomes.record(delay, true);
                self.ledger.record_answered(now);
                self.stats.answered_by_person += 1;
            }
            CallProgress::AnsweredByMachine if unanswered => {
                live.phase = Phase::Closing;
                live.ring_deadline = None;
                live.expected_abandons = 0.0;
                self.outcomes.record(delay, false);
                self.stats.answered_by_machine += 1;
            }
            CallProgress::ConnectedToAgent { .. } => {
                if matches!(
                    live.phase,
                    Phase::WaitingForAgent | Phase::Dialling | Phase::Ringing
                ) {
                    live.phase = Phase::WithAgent;
                    live.connect_deadline = None;
                    live.ring_deadline = None;
                    live.expected_abandons = 0.0;
                    self.stats.connected += 1;
                    if self.campaign.mode() == DialMode::Predictive {
                        self.throttle.person_served();
                    }
                }
                self.release_agent_held_by(call);
            }
            CallProgress::NoAnswer | CallProgress::Busy | CallProgress::Failed => {
                if unanswered {
                    self.outcomes.record(delay, false);
                    self.stats.not_answered += 1;
                }
                self.end_call(call);
            }
            CallProgress::Ended => {
                if unanswered {
                    self.outcomes.record(delay, false);
                    self.stats.not_answered += 1;
                }
                self.end_call(call);
            }
            // An answer reported twice, or after the call was given up.
            CallProgress::AnsweredByPerson | CallProgress::AnsweredByMachine => {}
        }
        Ok(())
    }

    /// Fires the deadlines due at `now`: ring timeouts and abandons.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        self.saw(now);
        let mut abandoned = Vec::new();
        for (&id, live) in &mut self.calls {
            if live.ring_deadline.is_some_and(|d| d <= now) {
                live.ring_deadline = None;
                self.events.push_back(PacerEvent::RingTimeout { call: id });
            }
            if live.phase == Phase::WaitingForAgent
                && live.connect_deadline.is_some_and(|d| d <= now)
            {
                live.phase = Phase::Closing;
                live.connect_deadline = None;
                live.expected_abandons = 0.0;
                abandoned.push((id, live.contact.clone()));
            }
        }
        for (call, contact) in abandoned {
            self.state_changed = true;
            self.ledger.record_abandoned(now);
            self.stats.abandoned += 1;
            if self.campaign.mode() == DialMode::Predictive {
                self.throttle.person_abandoned();
            }
            self.release_agent_held_by(call);
            self.events.push_back(PacerEvent::Abandon { call, contact });
        }
    }

    // ---- outputs ----

    pub fn poll_event(&mut self) -> Option<PacerEvent> {
        self.events.pop_front()
    }

    /// The earliest instant the pacer wants [`Pacer::handle_timeout`] and
    /// [`Pacer::poll_dial`] called again, if any.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let mut earliest: Option<DateTime<Utc>> = None;
        let mut consider = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        for live in self.calls.values() {
            consider(live.ring_deadline);
            consider(live.connect_deadline);
        }
        let waiting_to_dial = !self.queue.is_empty() || !self.accepted_previews.is_empty();
        if waiting_to_dial {
            let ahead = |t: Option<DateTime<Utc>>| t.filter(|t| self.latest.is_none_or(|n| *t > n));
            consider(ahead(self.paused_until));
            consider(ahead(self.next_dial_at));
            if self.campaign.mode() == DialMode::Predictive {
                consider(ahead(self.planned_at.map(|t| t + REPLAN_EVERY)));
            }
        }
        earliest
    }

    /// The next call to place now, if the limits and the mode allow one.
    /// Call until `None`; contacts found outside calling hours on the way
    /// come out of [`Pacer::poll_event`] as deferred.
    pub fn poll_dial(&mut self, now: DateTime<Utc>) -> Option<Dial> {
        self.saw(now);
        if self.campaign.mode() == DialMode::Preview {
            self.offer_previews(now);
        }
        if self.paused_until.is_some_and(|until| now < until) {
            return None;
        }
        if self.next_dial_at.is_some_and(|at| now < at) {
            return None;
        }
        if self.calls.len() >= self.campaign.channel_limit() as usize {
            return None;
        }
        let (contact, agent, expected_abandons) = match self.campaign.mode() {
            DialMode::Preview => {
                let preview = self.accepted_previews.pop_front()?;
                let open = self.previews.remove(&preview)?;
                (open.contact, Some(open.agent), 0.0)
            }
            DialMode::Agentless => (self.next_contact_in_hours(now)?, None, 0.0),
            DialMode::Progressive => {
                if self.progressive_room() == 0 {
                    return None;
                }
                (self.next_contact_in_hours(now)?, None, 0.0)
            }
            DialMode::Predictive => {
                let expected = self.next_predictive_call(now)?;
                let contact = self.next_contact_in_hours(now)?;
                self.plan.pop_front();
                (contact, None, expected)
            }
        };
        Some(self.place(now, contact, agent, expected_abandons))
    }

    // ---- internals ----

    fn saw(&mut self, now: DateTime<Utc>) {
        self.latest = Some(self.latest.map_or(now, |t| t.max(now)));
    }

    fn place(
        &mut self,
        now: DateTime<Utc>,
        contact: Contact,
        agent: Option<AgentId>,
        expected_abandons: f64,
    ) -> Dial {
        let call = CallId(self.next_call);
        self.next_call += 1;
        // Rounded up: rounding down would let one call too many into a
        // second.
        let spacing =
            TimeDelta::microseconds((1e6 / self.campaign.calls_per_second()).ceil() as i64);
        self.next_dial_at = Some(now + spacing);
        self.calls.insert(
            call,
            LiveCall {
                contact: contact.id.clone(),
                dialled_at: now,
                phase: Phase::Dialling,
                ring_deadline: Some(now + self.campaign.ring_timeout()),
                connect_deadline: None,
                expected_abandons,
                agent,
            },
        );
        if let Some(agent) = agent {
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.held_for = Some(Hold::Call(call));
            }
        }
        self.stats.dialled += 1;
        Dial {
            call,
            contact,
            agent,
            ring_timeout: self.campaign.ring_timeout(),
        }
    }

    /// Free agents not held by a preview or a preview's call.
    fn free_agents(&self) -> u32 {
        self.agents
            .values()
            .filter(|a| a.state == AgentState::Available && a.held_for.is_none())
            .count() as u32
    }

    fn count_phase(&self, wanted: impl Fn(Phase) -> bool) -> u32 {
        self.calls.values().filter(|c| wanted(c.phase)).count() as u32
    }

    /// Calls progressive dialling may add: one per free agent not already
    /// promised to a call that may still want one.
    fn progressive_room(&self) -> u32 {
        let promised = self.count_phase(|p| {
            matches!(p, Phase::Dialling | Phase::Ringing | Phase::WaitingForAgent)
        });
        self.free_agents().saturating_sub(promised)
    }

    /// The expected abandons of the next predictive call, if one may be
    /// placed now.
    fn next_predictive_call(&mut self, now: DateTime<Utc>) -> Option<f64> {
        if self.state_changed || self.planned_at != Some(now) {
            self.replan(now);
        }
        self.plan.front().copied()
    }

    fn replan(&mut self, now: DateTime<Utc>) {
        self.state_changed = false;
        self.planned_at = Some(now);
        self.plan.clear();
        let staffed = self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Away)
            .count() as u32;
        let counted = staffed.min(self.campaign.agents_target());
        let ratio_cap = (self.campaign.max_dial_ratio() * f64::from(counted)).floor() as u32;
        let up = self.count_phase(|p| p != Phase::Closing);
        let most = ratio_cap.saturating_sub(up);
        let progressive = self.progressive_room().min(most);
        let counts = self.ledger.counts(now);
        let committed: f64 = self.calls.values().map(|c| c.expected_abandons).sum();
        let warmed_up = self.outcomes.attempts() >= MIN_ATTEMPTS
            && self.outcomes.person_answers() >= MIN_PERSON_ANSWERS
            && self.handle_times.len() >= MIN_HANDLE_TIMES;
        let risky_allowed = warmed_up && self.throttle.allowed_risk(counts, committed) > 0.0;
        let planned = if risky_allowed {
            let situation = self.situation(now);
            let throttle = &self.throttle;
            plan_calls(
                &situation,
                &self.outcomes,
                &self.handle_times,
                most,
                |spent| throttle.allowed_risk(counts, committed + spent),
            )
        } else {
            Vec::new()
        };
        // Never fewer calls than progressive dialling would place: those
        // carry no risk whatever the forecast says.
        if planned.len() >= progressive as usize {
            self.plan
                .extend(planned.iter().map(|call| call.expected_abandons));
        } else {
            self.plan.extend((0..progressive).map(|_| 0.0));
        }
    }

    fn situation(&self, now: DateTime<Utc>) -> Situation {
        let busy_elapsed_ms = self
            .agents
            .values()
            .filter(|a| matches!(a.state, AgentState::Busy | AgentState::WrapUp))
            .filter_map(|a| a.busy_since.map(|since| millis(now - since)))
            .collect();
        let ringing_age_ms = self
            .calls
            .values()
            .filter(|c| matches!(c.phase, Phase::Dialling | Phase::Ringing))
            .map(|c| millis(now - c.dialled_at))
            .collect();
        Situation {
            free_agents: self.free_agents(),
            busy_elapsed_ms,
            waiting_calls: self.count_phase(|p| p == Phase::WaitingForAgent),
            ringing_age_ms,
            connect_within_ms: millis(self.campaign.connect_within()),
        }
    }

    /// The first queued contact inside its calling hours now; those
    /// outside are handed back deferred (or dropped when hours never come).
    fn next_contact_in_hours(&mut self, now: DateTime<Utc>) -> Option<Contact> {
        while let Some(contact) = self.queue.pop_front() {
            let policy = self.campaign.hours();
            let hours = policy.for_region(contact.region.as_deref());
            if contact.zone.within_hours(hours, now, policy.fallback_zone) {
                return Some(contact);
            }
            match contact.zone.next_allowed(hours, now, policy.fallback_zone) {
                Some(until) => {
                    self.stats.deferred += 1;
                    self.events
                        .push_back(PacerEvent::ContactDeferred { contact, until });
                }
                None => self.drop_contact(contact.id, DropReason::NoCallingWindow),
            }
        }
        None
    }

    fn offer_previews(&mut self, now: DateTime<Utc>) {
        loop {
            let agent = self
                .agents
                .iter()
                .find(|(_, a)| a.state == AgentState::Available && a.held_for.is_none())
                .map(|(id, _)| *id);
            let Some(agent) = agent else { return };
            let Some(contact) = self.next_contact_in_hours(now) else {
                return;
            };
            let preview = PreviewId(self.next_preview);
            self.next_preview += 1;
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.held_for = Some(Hold::Preview(preview));
            }
            self.previews.insert(
                preview,
                OpenPreview {
                    agent,
                    contact: contact.clone(),
                    accepted: false,
                },
            );
            self.events.push_back(PacerEvent::PreviewOffered {
                preview,
                agent,
                contact,
            });
        }
    }

    fn close_preview(&mut self, preview: PreviewId) {
        if let Some(open) = self.previews.remove(&preview) {
            if let Some(slot) = self.agents.get_mut(&open.agent) {
                slot.held_for = None;
            }
        }
        self.accepted_previews.retain(|p| *p != preview);
    }

    fn release_agent_held_by(&mut self, call: CallId) {
        let agent = self.calls.get(&call).and_then(|c| c.agent);
        if let Some(slot) = agent.and_then(|a| self.agents.get_mut(&a)) {
            if slot.held_for == Some(Hold::Call(call)) {
                slot.held_for = None;
            }
        }
    }

    fn end_call(&mut self, call: CallId) {
        self.release_agent_held_by(call);
        self.calls.remove(&call);
    }

    fn drop_contact(&mut self, contact: ContactId, reason: DropReason) {
        self.stats.dropped += 1;
        self.events
            .push_back(PacerEvent::ContactDropped { contact, reason });
    }
}

/// A non-negative span in whole milliseconds, saturating: a clock stepping
/// back reads as zero, a span beyond 49 days as the longest.
fn millis(span: TimeDelta) -> u32 {
    u32::try_from(span.num_milliseconds().max(0)).unwrap_or(u32::MAX)
}
