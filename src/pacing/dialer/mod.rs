//! The dialler: the async shell that turns due callbacks into placed calls.
//!
//! It claims due callbacks from the store (leased to this node), offers
//! them to each campaign's [`Pacer`], and for every dial the pacer asks
//! for: re-checks consent and do-not-call, commits the attempt, and only
//! then asks the SIP loop to place the call with the attempt's id in
//! `X-Slotgate-Attempt`. What the call does comes back as
//! [`PlacedEvent`]s, which it turns into pacer progress, agent seats,
//! the attempt's outcome (settled with the campaign's strategy deciding
//! whether and when to try again) and the campaign's outcome history,
//! from which the legal abandon rate is read back after a restart.
//!
//! The pacer and the core are sans-I/O; everything here that waits on the
//! store runs on tasks of its own, so a slow commit delays one call, not
//! the loop. The callback is settled as soon as its outcome is known (at
//! connect for an answered call), so a lease only has to outlast ringing.

mod campaign_run;
pub mod config;
pub mod metrics;
mod outcome;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::b2bua::core::originate::{
    LegOrder, PlaceCall, PlaceError, PlacedEvent, PlacedEventKind, PlacedOutcome,
};
use crate::consent::{Refusal, E164};
use crate::media::amd::Verdict;
use crate::media::Announcement;
use crate::pacing::dial_check::may_dial;
use crate::pacing::{CallId, CallProgress, Contact, ContactId, DropReason, PacerEvent};
use crate::store::holds::ScheduledCallback;
use crate::store::scheduler::{AfterAttempt, Attempt, AttemptOutcome};
use crate::store::Store;
use campaign_run::{CampaignKey, CampaignRun};
pub use config::{OrderPolicy, PacingConfig};
pub use metrics::DialMetrics;

/// What the dialler asks of the SIP loop, which owns the core.
#[derive(Debug)]
pub enum DialCommand {
    Place {
        request: PlaceCall,
        reply: oneshot::Sender<Result<u64, PlaceError>>,
    },
    ConnectAgent {
        call: u64,
        target: String,
        context: Vec<(String, String)>,
    },
    PlayAndHangUp {
        call: u64,
        outcome: PlacedOutcome,
        message: Option<Arc<Announcement>>,
    },
    HangUp {
        call: u64,
        outcome: PlacedOutcome,
    },
}

/// How long a prompt pass's question stays open.
const PROMPT_TTL: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// How often campaign records (agents, strategy, pause) are read again.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// What the store tasks report back to the loop.
enum Internal {
    /// The attempt is committed: the call may be placed.
    Committed {
        key: CampaignKey,
        call: CallId,
        callback: ScheduledCallback,
        attempt: Attempt,
        seat: Option<campaign_run::Seat>,
    },
    /// Not dialled: refused at dial time, or the claim was lost.
    NotDialled {
        key: CampaignKey,
        call: CallId,
        callback: ScheduledCallback,
        refusal: Option<Refusal>,
        seat: Option<campaign_run::Seat>,
    },
}

/// A call whose attempt is committed.
struct Live {
    key: CampaignKey,
    call: CallId,
    callback: ScheduledCallback,
    core_call: Option<u64>,
    seat: Option<campaign_run::Seat>,
    /// The attempt's outcome is in the store.
    settled: bool,
    connected: bool,
}

/// Starts the dialler. When `stop` turns true it places no more calls and
/// gives back what it claimed; it records the outcomes of calls still in
/// progress until `events` closes (the SIP loop has ended).
pub fn spawn(
    store: Store,
    config: PacingConfig,
    sip: mpsc::UnboundedSender<DialCommand>,
    events: mpsc::UnboundedReceiver<PlacedEvent>,
    stop: watch::Receiver<bool>,
    metrics: Arc<DialMetrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let mut dialer = Dialer {
            store,
            config,
            sip,
            internal: internal_tx,
            runs: HashMap::new(),
            claimed: HashMap::new(),
            live: HashMap::new(),
            by_core_call: HashMap::new(),
            by_pacer_call: HashMap::new(),
            in_commit: 0,
            metrics,
        };
        dialer.run(events, internal_rx, stop).await;
    })
}

struct Dialer {
    store: Store,
    config: PacingConfig,
    sip: mpsc::UnboundedSender<DialCommand>,
    internal: mpsc::UnboundedSender<Internal>,
    runs: HashMap<CampaignKey, CampaignRun>,
    /// Claimed and offered to a pacer, not dialled yet.
    claimed: HashMap<String, (CampaignKey, ScheduledCallback)>,
    /// By attempt id.
    live: HashMap<String, Live>,
    by_core_call: HashMap<u64, String>,
    by_pacer_call: HashMap<(CampaignKey, CallId), String>,
    /// Dials whose attempt is being committed.
    in_commit: usize,
    metrics: Arc<DialMetrics>,
}

impl Dialer {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<PlacedEvent>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
        mut stop: watch::Receiver<bool>,
    ) {
        info!(node = %self.config.node, "dialler started");
        let mut next_claim = tokio::time::Instant::now();
        let mut next_refresh = tokio::time::Instant::now() + REFRESH_EVERY;
        let mut stopping = false;
        // A third of the lease: two renewals may fail before a claim lapses.
        let renew_every = (self.config.lease / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(5));
        let mut next_renewal = tokio::time::Instant::now() + renew_every;
        loop {
            let pacer_wake = self
                .runs
                .values()
                .filter_map(|r| r.pacer.poll_timeout())
                .min()
                .map(|at| {
                    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::Instant::now() + wait
                });
            let wake = [
                Some(next_claim),
                Some(next_refresh),
                Some(next_renewal),
                pacer_wake,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_claim);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                event = events.recv() => match event {
                    Some(event) => self.on_placed(event).await,
                    None => break,
                },
                Some(done) = internal.recv() => self.on_internal(done).await,
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        self.give_back_claims().await;
                    }
                }
            }
            if stopping {
                continue;
            }
            let now = Utc::now();
            if tokio::time::Instant::now() >= next_refresh {
                self.refresh_campaigns(now).await;
                next_refresh = tokio::time::Instant::now() + REFRESH_EVERY;
            }
            if tokio::time::Instant::now() >= next_renewal {
                self.renew_leases(now).await;
                next_renewal = tokio::time::Instant::now() + renew_every;
            }
            if tokio::time::Instant::now() >= next_claim {
                self.claim(now).await;
                next_claim = tokio::time::Instant::now() + self.config.claim_every;
            }
            self.drive_pacers(now).await;
            self.metrics
                .set_in_progress(self.live.len() + self.in_commit, self.claimed.len());
        }
        info!("dialler stopped");
    }

    /// Claimed callbacks not dialled go back at once rather than after
    /// their lease: another node may take them now.
    async fn give_back_claims(&mut self) {
        let claimed: Vec<String> = self.claimed.drain().map(|(id, _)| id).collect();
        for id in claimed {
            self.release(&id, Some(Utc::now()), None).await;
        }
    }

    // ---- claiming ----

    async fn claim(&mut self, now: DateTime<Utc>) {
        let held = self.claimed.len() + self.in_commit;
        let room = self.config.claim_batch - held as i64;
        if room <= 0 {
            return;
        }
        let callbacks = match self
            .store
            .claim_due_callbacks(&self.config.node, now, self.config.lease, room)
            .await
        {
            Ok(callbacks) => callbacks,
            Err(e) => {
                warn!(error = %e, "cannot claim due callbacks");
                return;
            }
        };
        if !callbacks.is_empty() {
            debug!(claimed = callbacks.len(), "due callbacks claimed");
        }
        for callback in callbacks {
            let key = (callback.enterprise_id.clone(), callback.campaign.clone());
            if !self.runs.contains_key(&key) {
                match CampaignRun::load(&self.store, &self.config, &key, now).await {
                    Ok(run) => {
                        self.runs.insert(key.clone(), run);
                    }
                    Err(e) => {
                        warn!(error = %e, campaign = %key.1, "cannot read the campaign; callback left for later");
                        self.release(
                            &callback.id,
                            Some(now + chrono::TimeDelta::seconds(30)),
                            None,
                        )
                        .await;
                        continue;
                    }
                }
            }
            if callback.due_action.as_deref() == Some("prompt") {
                self.prompt_again(&callback, now).await;
                continue;
            }
            let Some(run) = self.runs.get_mut(&key) else {
                continue;
            };
            if run.paused() {
                let later = now + chrono::TimeDelta::seconds(60);
                self.release(&callback.id, Some(later), None).await;
                continue;
            }
            let number = match E164::parse(&callback.callee, None) {
                Ok(number) => number,
                Err(_) => {
                    warn!(callback = %callback.id, callee = %callback.callee, "callee is not a number; dropped");
                    self.release(&callback.id, None, Some("bad-number")).await;
                    continue;
                }
            };
            run.pacer
                .offer(Contact::for_number(ContactId(callback.id.clone()), &number));
            self.claimed.insert(callback.id.clone(), (key, callback));
        }
    }

    /// Keeps the claims of callbacks waiting in a pacer or being dialled.
    async fn renew_leases(&mut self, now: DateTime<Utc>) {
        let ids: Vec<String> = self
            .claimed
            .keys()
            .cloned()
            .chain(
                self.live
                    .values()
                    .filter(|l| !l.settled)
                    .map(|l| l.callback.id.clone()),
            )
            .collect();
        if ids.is_empty() {
            return;
        }
        match self
            .store
            .renew_leases(&self.config.node, &ids, now, self.config.lease)
            .await
        {
            Ok(kept) if kept < ids.len() as u64 => {
                warn!(
                    lost = ids.len() as u64 - kept,
                    "some claims had lapsed before renewal"
                )
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot renew leases"),
        }
    }

    async fn release(
        &self,
        callback_id: &str,
        retry_at: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) {
        if let Err(e) = self
            .store
            .release_callback(callback_id, &self.config.node, retry_at, reason)
            .await
        {
            warn!(callback = %callback_id, error = %e, "cannot give back a callback");
        }
    }

    async fn refresh_campaigns(&mut self, now: DateTime<Utc>) {
        let keys: Vec<CampaignKey> = self.runs.keys().cloned().collect();
        for key in keys {
            let record = match self.store.campaign_for(&key.0, &key.1).await {
                Ok(record) => record,
                Err(e) => {
                    debug!(error = %e, "cannot refresh a campaign");
                    continue;
                }
            };
            let Some(run) = self.runs.get_mut(&key) else {
                continue;
            };
            // New pacing settings (limits, mode, hours) need a new pacer;
            // it is built between calls, so no call loses its pacer.
            if run.settings_changed(record.as_ref()) && run.pacer.calls_in_progress() == 0 {
                match CampaignRun::load(&self.store, &self.config, &key, now).await {
                    Ok(mut fresh) => {
                        for (id, (k, callback)) in &self.claimed {
                            if k != &key {
                                continue;
                            }
                            if let Ok(number) = E164::parse(&callback.callee, None) {
                                fresh
                                    .pacer
                                    .offer(Contact::for_number(ContactId(id.clone()), &number));
                            }
                        }
                        info!(campaign = %key.1, "campaign settings changed: pacing anew");
                        self.runs.insert(key, fresh);
                    }
                    Err(e) => warn!(error = %e, "cannot reload a changed campaign"),
                }
                continue;
            }
            run.refresh(record, &self.config, now);
        }
    }

    // ---- the pacers ----

    async fn drive_pacers(&mut self, now: DateTime<Utc>) {
        let keys: Vec<CampaignKey> = self.runs.keys().cloned().collect();
        for key in keys {
            let mut events = Vec::new();
            let mut dials = Vec::new();
            if let Some(run) = self.runs.get_mut(&key) {
                run.pacer.handle_timeout(now);
                while let Some(event) = run.pacer.poll_event() {
                    events.push(event);
                }
                while let Some(dial) = run.pacer.poll_dial(now) {
                    dials.push(dial);
                }
            }
            for event in events {
                self.on_pacer_event(&key, event, now).await;
            }
            for dial in dials {
                self.dial(&key, dial.call, dial.contact.id, now);
            }
        }
    }

    /// Commits the attempt on a task of its own; the call is placed when
    /// the commit is reported back.
    fn dial(&mut self, key: &CampaignKey, call: CallId, contact: ContactId, now: DateTime<Utc>) {
        let Some((_, callback)) = self.claimed.remove(&contact.0) else {
            if let Some(run) = self.runs.get_mut(key) {
                let _ = run
                    .pacer
                    .refuse_dial(call, DropReason::Withdrawn("not claimed".into()));
            }
            return;
        };
        let seat = match self.runs.get_mut(key) {
            Some(run) if run.agent_first(&self.config) => match run.take_seat(call) {
                Some(seat) => Some(seat),
                None => {
                    // The pacer counted an agent the seats do not have
                    // (the count just dropped): try again shortly.
                    let _ = run
                        .pacer
                        .refuse_dial(call, DropReason::Withdrawn("no free agent".into()));
                    self.claimed.insert(contact.0, (key.clone(), callback));
                    return;
                }
            },
            _ => None,
        };
        self.in_commit += 1;
        let store = self.store.clone();
        let node = self.config.node.clone();
        let internal = self.internal.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let refusal = match E164::parse(&callback.callee, None) {
                Ok(number) => match store.callee_facts(&callback.enterprise_id, &number).await {
                    Ok(facts) => may_dial(facts.as_ref(), now).err(),
                    Err(e) => {
                        warn!(error = %e, "cannot re-check consent; not dialling now");
                        let _ = internal.send(Internal::NotDialled {
                            key,
                            call,
                            callback,
                            refusal: None,
                            seat,
                        });
                        return;
                    }
                },
                Err(_) => Some(Refusal::Declined),
            };
            if refusal.is_some() {
                let _ = internal.send(Internal::NotDialled {
                    key,
                    call,
                    callback,
                    refusal,
                    seat,
                });
                return;
            }
            match store.begin_attempt(&callback.id, &node, Utc::now()).await {
                Ok(attempt) => {
                    let _ = internal.send(Internal::Committed {
                        key,
                        call,
                        callback,
                        attempt,
                        seat,
                    });
                }
                Err(e) => {
                    debug!(callback = %callback.id, error = %e, "attempt not begun");
                    let _ = internal.send(Internal::NotDialled {
                        key,
                        call,
                        callback,
                        refusal: None,
                        seat,
                    });
                }
            }
        });
    }

    async fn on_internal(&mut self, done: Internal) {
        self.in_commit = self.in_commit.saturating_sub(1);
        match done {
            Internal::NotDialled {
                key,
                call,
                callback,
                refusal,
                seat,
            } => {
                let run = self.runs.get_mut(&key);
                if let (Some(run), Some(seat)) = (run, seat) {
                    run.free_seat(seat, Utc::now());
                }
                match refusal {
                    Some(refusal) => {
                        info!(callback = %callback.id, %refusal, "not dialled: refused at dial time");
                        if let Some(run) = self.runs.get_mut(&key) {
                            let _ = run
                                .pacer
                                .refuse_dial(call, DropReason::Refused(refusal.clone()));
                        }
                        self.release(&callback.id, None, Some(refusal.code())).await;
                        self.record(&key, None, outcome::CallOutcome::Dropped).await;
                    }
                    None => {
                        // The claim was lost (lease ran out) or the store
                        // failed: the pacer forgets the dial, the callback
                        // is claimed again when due.
                        if let Some(run) = self.runs.get_mut(&key) {
                            let _ = run
                                .pacer
                                .refuse_dial(call, DropReason::Withdrawn("claim lost".into()));
                        }
                    }
                }
            }
            Internal::Committed {
                key,
                call,
                callback,
                attempt,
                seat,
            } => self.place(key, call, callback, attempt, seat).await,
        }
    }

    async fn place(
        &mut self,
        key: CampaignKey,
        call: CallId,
        callback: ScheduledCallback,
        attempt: Attempt,
        seat: Option<campaign_run::Seat>,
    ) {
        let Some(run) = self.runs.get(&key) else {
            return;
        };
        let agent_first = run.agent_first(&self.config);
        let Ok(customer) = E164::parse(&callback.callee, None) else {
            return;
        };
        let target = seat
            .as_ref()
            .map(|s| run.seat_target(s, &callback, &self.config));
        let request = PlaceCall {
            attempt_id: attempt.id.clone(),
            order: if agent_first {
                LegOrder::AgentFirst
            } else {
                LegOrder::CustomerFirst
            },
            agent_target: target,
            context: context(&callback),
            customer,
            caller: callback.caller.clone(),
            enterprise_id: callback.enterprise_id.clone(),
            campaign: callback.campaign.clone(),
            ring_timeout: run.ring_timeout(),
            detection: (!agent_first).then(|| self.config.amd.clone()),
        };
        self.by_pacer_call
            .insert((key.clone(), call), attempt.id.clone());
        self.live.insert(
            attempt.id.clone(),
            Live {
                key,
                call,
                callback,
                core_call: None,
                seat,
                settled: false,
                connected: false,
            },
        );
        let (reply, answer) = oneshot::channel();
        let placed = match self.sip.send(DialCommand::Place { request, reply }) {
            Ok(()) => answer.await.unwrap_or(Err(PlaceError::Draining)),
            Err(_) => Err(PlaceError::Draining),
        };
        match placed {
            Ok(core_call) => {
                self.by_core_call.insert(core_call, attempt.id.clone());
                if let Some(live) = self.live.get_mut(&attempt.id) {
                    live.core_call = Some(core_call);
                }
            }
            // A target the core cannot reach without DNS is the
            // campaign's mistake: retrying would fail the same way.
            Err(e @ (PlaceError::BadTarget(_) | PlaceError::NoAgentTarget)) => {
                warn!(attempt = %attempt.id, error = %e, "call not placed");
                let failed = PlacedOutcome::Failed {
                    code: 400,
                    retry_after: None,
                };
                self.finish(&attempt.id, failed).await;
            }
            Err(e) => self.not_placed(&attempt.id, &e).await,
        }
    }

    /// The attempt is committed but nothing was sent: nobody was called,
    /// so the callback is due again shortly, on whichever node claims it.
    async fn not_placed(&mut self, attempt_id: &str, why: &PlaceError) {
        warn!(attempt = %attempt_id, error = %why, "call not placed");
        let now = Utc::now();
        let Some(mut live) = self.live.remove(attempt_id) else {
            return;
        };
        self.by_pacer_call.remove(&(live.key.clone(), live.call));
        self.progress(&live.key, live.call, CallProgress::Failed, now);
        if let (Some(run), Some(seat)) = (self.runs.get_mut(&live.key), live.seat.take()) {
            run.free_seat(seat, now);
        }
        self.metrics.ended("not-placed");
        let again = now + chrono::TimeDelta::seconds(5);
        if let Err(e) = self
            .store
            .settle_attempt(
                attempt_id,
                AttemptOutcome::NotPlaced,
                AfterAttempt::DialAt(again),
                now,
            )
            .await
        {
            warn!(attempt = %attempt_id, error = %e, "cannot record an attempt not placed");
        }
    }

    // ---- what calls do ----

    async fn on_placed(&mut self, event: PlacedEvent) {
        let now = Utc::now();
        let Some(live) = self.live.get_mut(&event.attempt_id) else {
            return;
        };
        live.core_call = Some(event.call);
        let (key, call, core_call) = (live.key.clone(), live.call, event.call);
        self.by_core_call
            .insert(core_call, event.attempt_id.clone());
        match event.kind {
            PlacedEventKind::AgentAnswered => {}
            PlacedEventKind::CustomerRinging => {
                self.progress(&key, call, CallProgress::Ringing, now)
            }
            PlacedEventKind::CustomerAnswered => {
                let agent_first = self
                    .runs
                    .get(&key)
                    .is_some_and(|r| r.agent_first(&self.config));
                if agent_first {
                    self.progress(&key, call, CallProgress::AnsweredByPerson, now);
                }
            }
            PlacedEventKind::Detected(Verdict::Person) => {
                self.progress(&key, call, CallProgress::AnsweredByPerson, now);
                self.connect_someone(&key, &event.attempt_id);
            }
            PlacedEventKind::Detected(Verdict::Machine) => {
                self.progress(&key, call, CallProgress::AnsweredByMachine, now);
                let message = self
                    .runs
                    .get(&key)
                    .and_then(|r| r.machine_message(&self.config));
                let _ = self.sip.send(DialCommand::PlayAndHangUp {
                    call: core_call,
                    outcome: PlacedOutcome::Machine,
                    message,
                });
            }
            PlacedEventKind::AgentFailed { .. } => {
                let seat = self
                    .live
                    .get_mut(&event.attempt_id)
                    .and_then(|l| l.seat.take());
                if let (Some(run), Some(seat)) = (self.runs.get_mut(&key), seat) {
                    run.free_seat(seat, now);
                }
                self.connect_someone(&key, &event.attempt_id);
            }
            PlacedEventKind::Connected => {
                let seat = self
                    .live
                    .get(&event.attempt_id)
                    .and_then(|l| l.seat.clone());
                if let (Some(run), Some(seat)) = (self.runs.get_mut(&key), seat) {
                    run.seat_busy(&seat, now);
                    self.progress(
                        &key,
                        call,
                        CallProgress::ConnectedToAgent { agent: seat.agent },
                        now,
                    );
                }
                if let Some(live) = self.live.get_mut(&event.attempt_id) {
                    live.connected = true;
                }
                // The person is with an agent: the callback is served, and
                // its lease no longer matters however long they talk.
                self.settle(&event.attempt_id, PlacedOutcome::Answered)
                    .await;
            }
            PlacedEventKind::Ended { outcome, .. } => {
                if let Some(run) = self.runs.get_mut(&key) {
                    run.waiting.retain(|a| a != &event.attempt_id);
                }
                self.finish(&event.attempt_id, outcome).await;
            }
        }
    }

    /// Customer-first: a person waits; give them a free agent, or let them
    /// wait for one until the pacer's connect deadline abandons the call.
    fn connect_someone(&mut self, key: &CampaignKey, attempt_id: &str) {
        let Some(live) = self.live.get(attempt_id) else {
            return;
        };
        let (call, callback, core_call) = (live.call, live.callback.clone(), live.core_call);
        let Some(core_call) = core_call else {
            return;
        };
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        if !run.uses_agents() {
            // Agentless: the campaign's message is the call.
            let message = Some(run.abandon_message(&self.config));
            let _ = self.sip.send(DialCommand::PlayAndHangUp {
                call: core_call,
                outcome: PlacedOutcome::Answered,
                message,
            });
            return;
        }
        match run.take_seat(call) {
            Some(seat) => {
                let target = run.seat_target(&seat, &callback, &self.config);
                let _ = self.sip.send(DialCommand::ConnectAgent {
                    call: core_call,
                    target,
                    context: context(&callback),
                });
                if let Some(live) = self.live.get_mut(attempt_id) {
                    live.seat = Some(seat);
                }
            }
            None => {
                if !run.waiting.iter().any(|a| a == attempt_id) {
                    run.waiting.push(attempt_id.to_string());
                }
            }
        }
    }

    fn progress(
        &mut self,
        key: &CampaignKey,
        call: CallId,
        progress: CallProgress,
        now: DateTime<Utc>,
    ) {
        if let Some(run) = self.runs.get_mut(key) {
            if let Err(e) = run.pacer.call_progress(now, call, progress) {
                debug!(error = %e, "progress for a call the pacer let go");
            }
        }
    }

    async fn on_pacer_event(&mut self, key: &CampaignKey, event: PacerEvent, now: DateTime<Utc>) {
        match event {
            PacerEvent::Abandon { call, .. } => {
                let Some(attempt_id) = self.by_pacer_call.get(&(key.clone(), call)).cloned() else {
                    return;
                };
                let core_call = self.live.get(&attempt_id).and_then(|l| l.core_call);
                if let Some(run) = self.runs.get_mut(key) {
                    run.waiting.retain(|a| a != &attempt_id);
                }
                let seat = self.live.get_mut(&attempt_id).and_then(|l| l.seat.take());
                let message = self.runs.get_mut(key).map(|run| {
                    if let Some(seat) = seat {
                        run.free_seat(seat, now);
                    }
                    run.abandon_message(&self.config)
                });
                if let Some(core_call) = core_call {
                    info!(attempt = %attempt_id, "abandoned: no agent within the connect limit");
                    let _ = self.sip.send(DialCommand::PlayAndHangUp {
                        call: core_call,
                        outcome: PlacedOutcome::Abandoned,
                        message,
                    });
                }
            }
            PacerEvent::RingTimeout { call } => {
                let core_call = self
                    .by_pacer_call
                    .get(&(key.clone(), call))
                    .and_then(|a| self.live.get(a))
                    .and_then(|l| l.core_call);
                if let Some(core_call) = core_call {
                    let _ = self.sip.send(DialCommand::HangUp {
                        call: core_call,
                        outcome: PlacedOutcome::NoAnswer,
                    });
                }
            }
            PacerEvent::PreviewOffered { preview, .. } => {
                // The agent's preview is the agent-first INVITE itself, with
                // the customer's details for the screen pop: accept here and
                // let the agent's answer (or refusal) decide.
                if let Some(run) = self.runs.get_mut(key) {
                    let _ = run.pacer.preview_accepted(preview);
                }
            }
            PacerEvent::ContactDeferred { contact, until } => {
                if self.claimed.remove(&contact.id.0).is_some() {
                    debug!(callback = %contact.id, %until, "outside calling hours: deferred");
                    self.release(&contact.id.0, Some(until), None).await;
                }
            }
            PacerEvent::ContactDropped { contact, reason } => {
                if self.claimed.remove(&contact.0).is_none() {
                    return;
                }
                if let DropReason::Withdrawn(why) = &reason {
                    // Taken back by the dialler itself (no free seat this
                    // moment): due again shortly, not dropped.
                    debug!(callback = %contact, why, "callback given back");
                    let soon = now + chrono::TimeDelta::seconds(5);
                    self.release(&contact.0, Some(soon), None).await;
                    return;
                }
                info!(callback = %contact, reason = reason.code(), "callback dropped");
                self.release(&contact.0, None, Some(reason.code())).await;
                self.record(key, None, outcome::CallOutcome::Dropped).await;
            }
        }
    }

    // ---- outcomes ----

    /// Settles the attempt (once) with the strategy's verdict on a retry.
    async fn settle(&mut self, attempt_id: &str, placed: PlacedOutcome) {
        let Some(live) = self.live.get_mut(attempt_id) else {
            return;
        };
        if live.settled {
            return;
        }
        live.settled = true;
        let (key, callback) = (live.key.clone(), live.callback.clone());
        let now = Utc::now();
        let strategy = self
            .runs
            .get(&key)
            .map(|r| r.strategy())
            .unwrap_or_default();
        let attempt_outcome = outcome::attempt_outcome(placed);
        let history = match self.store.callback_attempts(&callback.id).await {
            Ok(attempts) => attempts,
            Err(e) => {
                warn!(error = %e, "cannot read the callback's attempts; no retry");
                Vec::new()
            }
        };
        let after = match outcome::next(&strategy, &history, attempt_id, attempt_outcome, now) {
            outcome::NextStep::Voice { at, .. } => AfterAttempt::DialAt(at),
            outcome::NextStep::Prompt { at, .. } => AfterAttempt::PromptAt(at),
            outcome::NextStep::Done { .. } => AfterAttempt::Done,
        };
        if let Err(e) = self
            .store
            .settle_attempt(attempt_id, attempt_outcome, after, now)
            .await
        {
            warn!(attempt = %attempt_id, error = %e, "cannot record the attempt's outcome");
        }
        self.record(&key, Some(attempt_id), outcome::call_outcome(placed))
            .await;
    }

    /// A prompt pass fell due: "we missed you, pick another time", through
    /// the consent exchange. It is a consent request on a hold that has
    /// already ended, so the person's answer schedules a new callback
    /// exactly as a late answer to a held INVITE does; this callback is
    /// settled (`dropped`, reason `prompted`).
    async fn prompt_again(&self, callback: &ScheduledCallback, now: DateTime<Utc>) {
        let opened = async {
            let request = self
                .store
                .consent_request(&callback.request_id)
                .await?
                .ok_or_else(|| crate::store::ConsentStoreError::NotFound {
                    what: "consent request",
                    id: callback.request_id.clone(),
                })?;
            let hold_id = crate::consent::new_id();
            let new = crate::consent::NewConsentRequest {
                enterprise_id: callback.enterprise_id.clone(),
                person_id: request.person_id.clone(),
                number: request.number.clone(),
                scope: crate::consent::Scope::Campaign(callback.campaign.clone()),
                options: Vec::new(),
                hold_id: Some(hold_id.clone()),
                expires_at: now + PROMPT_TTL,
            };
            let hold = crate::store::holds::NewHold {
                id: hold_id.clone(),
                campaign: callback.campaign.clone(),
                caller: callback.caller.clone(),
                pbx_target: callback.pbx_target.clone(),
            };
            let opened = self.store.open_hold(new, &hold, now).await?;
            self.store.end_hold(&hold_id, false, now).await?;
            Ok::<_, crate::store::ConsentStoreError>(opened.id)
        };
        match opened.await {
            Ok(request) => {
                info!(callback = %callback.id, %request, "prompt pass: asking for another time");
                self.release(&callback.id, None, Some("prompted")).await;
            }
            Err(crate::store::ConsentStoreError::Refused(refusal)) => {
                info!(callback = %callback.id, %refusal, "prompt pass not sent: may not ask");
                self.release(&callback.id, None, Some(refusal.code())).await;
            }
            Err(e) => {
                // Tried again later: the person is owed the question.
                warn!(callback = %callback.id, error = %e, "cannot open the prompt pass's request");
                let later = now + chrono::TimeDelta::minutes(5);
                self.release(&callback.id, Some(later), None).await;
            }
        }
    }

    async fn record(
        &self,
        key: &CampaignKey,
        attempt_id: Option<&str>,
        outcome: outcome::CallOutcome,
    ) {
        self.metrics.ended(outcome.as_str());
        if let Err(e) = self
            .store
            .record_call_outcome(&key.0, &key.1, attempt_id, outcome, Utc::now())
            .await
        {
            warn!(error = %e, "cannot record a call outcome");
        }
    }

    /// The call is over: pacer, seat, store.
    async fn finish(&mut self, attempt_id: &str, placed: PlacedOutcome) {
        let now = Utc::now();
        let Some(live) = self.live.get(attempt_id) else {
            return;
        };
        let (key, call, connected) = (live.key.clone(), live.call, live.connected);
        let progress = match placed {
            PlacedOutcome::Busy => CallProgress::Busy,
            PlacedOutcome::NoAnswer => CallProgress::NoAnswer,
            PlacedOutcome::Failed { .. } | PlacedOutcome::AgentUnavailable { .. } => {
                CallProgress::Failed
            }
            _ => CallProgress::Ended,
        };
        self.progress(&key, call, progress, now);
        // A trunk that refuses (503) or says nothing (408 from slotgate's
        // own timer) is not hammered: the campaign pauses, for the
        // trunk's Retry-After when it gives one.
        if let PlacedOutcome::Failed {
            code: code @ (503 | 408),
            retry_after,
        } = placed
        {
            if let Some(run) = self.runs.get_mut(&key) {
                let pause = retry_after.and_then(|d| chrono::TimeDelta::from_std(d).ok());
                run.pacer.trunk_backoff(now, pause);
                warn!(
                    code,
                    ?retry_after,
                    "the trunk is refusing or silent: dialling paused"
                );
            }
        }
        let seat = self.live.get_mut(attempt_id).and_then(|l| l.seat.take());
        if let (Some(run), Some(seat)) = (self.runs.get_mut(&key), seat) {
            run.free_seat(seat, now);
        }
        // An answered call was settled at connect; its end is the agent's.
        let settle_as = if connected {
            PlacedOutcome::Answered
        } else {
            placed
        };
        self.settle(attempt_id, settle_as).await;
        if let Some(live) = self.live.remove(attempt_id) {
            if let Some(core_call) = live.core_call {
                self.by_core_call.remove(&core_call);
            }
            self.by_pacer_call.remove(&(live.key, live.call));
        }
        self.serve_waiting(&key);
    }

    /// A seat came free: the longest-waiting person gets it.
    fn serve_waiting(&mut self, key: &CampaignKey) {
        let next = self
            .runs
            .get_mut(key)
            .and_then(|r| (!r.waiting.is_empty()).then(|| r.waiting.remove(0)));
        if let Some(attempt_id) = next {
            self.connect_someone(key, &attempt_id);
        }
    }
}

/// The agent's screen pop: who, why, and which attempt.
fn context(callback: &ScheduledCallback) -> Vec<(String, String)> {
    let mut headers = vec![
        ("X-Slotgate-Customer".to_string(), callback.callee.clone()),
        (
            "X-Slotgate-Slot".to_string(),
            callback
                .slot_start
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("X-Slotgate-Campaign".to_string(), callback.campaign.clone()),
        ("X-Slotgate-Callback".to_string(), callback.id.clone()),
    ];
    if let Some(consent) = &callback.consent_id {
        headers.push(("X-Slotgate-Consent".to_string(), consent.clone()));
    }
    headers
}
