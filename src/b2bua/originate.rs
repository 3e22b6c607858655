//! Calls slotgate places itself: the re-origination of the slot a person
//! chose, as third-party call control (RFC 3725) with slotgate's own media.
//!
//! slotgate is the UAC of both legs and offers each its own RTP ports, so
//! neither party learns the other's address and slotgate hears the
//! customer before anyone else does. That is what lets it tell a machine
//! from a person, play the abandon message and count the two-second
//! connect rule itself, instead of trusting a PBX to. Two orders:
//!
//! - **agent-first** (preview, progressive): the agent's phone rings with
//!   the customer's details in `X-Slotgate-*` headers (a screen pop); once
//!   the agent answers, the customer is called and the agent hears
//!   ringback; on the customer's answer both are bridged;
//! - **customer-first** (predictive, agentless): the customer is called;
//!   on answer, answering-machine detection listens; the shell, on the
//!   pacer's word, then connects an agent ([`Core::connect_agent`]) or has
//!   a message played and the call ended ([`Core::play_and_hang_up`]).
//!
//! Every INVITE carries the attempt's id in `X-Slotgate-Attempt`, committed
//! to the store before the call is placed, so the trunk's records and ours
//! can be matched. What happens comes out as [`PlacedEvent`]s, one
//! [`PlacedEventKind::Ended`] per call. This file is a child of `core`:
//! placed calls share its transactions, timers and sockets.

use std::sync::Arc;

use super::*;
use crate::media::amd::{AmdSettings, Verdict};
use crate::media::bridge::{MediaEvent, MediaEventKind};
use crate::media::relay::Side;
use crate::media::{Announcement, MediaError};

/// The header naming the attempt on both legs.
pub const ATTEMPT_HEADER: &str = "X-Slotgate-Attempt";

/// How long an INVITE may go without a provisional answer, on top of the
/// ring timeout, before it is given up: the ring timeout counts from the
/// first ring, but a silent far end must not hold a channel for ever.
const SETUP_ALLOWANCE: Duration = Duration::from_secs(8);

/// How long after a message should have ended the call is closed anyway
/// (the media thread's report was lost).
const PLAYBACK_GRACE: Duration = Duration::from_secs(5);

/// Which leg is called first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegOrder {
    AgentFirst,
    CustomerFirst,
}

/// A call for the core to place.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    /// The committed attempt's id, sent as `X-Slotgate-Attempt`.
    pub attempt_id: String,
    pub order: LegOrder,
    /// The agent leg's URI (`sip:user@ip:port`); required agent-first.
    pub agent_target: Option<String>,
    /// Headers for the agent's screen (customer, consent, slot).
    pub context: Vec<(String, String)>,
    pub customer: E164,
    /// The URI the original call came from: the customer leg's From before
    /// caller-ID selection.
    pub caller: String,
    pub enterprise_id: String,
    pub campaign: String,
    /// Ring at least this long (from the first ring) before giving up.
    pub ring_timeout: Duration,
    /// Customer-first: answering-machine detection; `None` takes every
    /// answer for a person.
    pub detection: Option<AmdSettings>,
}

/// Why a call could not be placed; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("no media engine: placed calls are anchored on slotgate's RTP ports")]
    NoMedia,
    #[error("cannot open media for the call: {0}")]
    Media(#[from] MediaError),
    #[error("agent target {0:?} is not a sip: URI with an IP address")]
    BadTarget(String),
    #[error("an agent-first call needs an agent target")]
    NoAgentTarget,
    #[error("slotgate is shutting down")]
    Draining,
    #[error("the trunk is down")]
    TrunkDown,
    #[error("no placed call {0}")]
    UnknownCall(u64),
    #[error("call {0} cannot take an agent now")]
    NotWaitingForAgent(u64),
}

/// How a placed call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacedOutcome {
    /// The customer was reached (and, with agents, connected).
    Answered,
    Busy,
    NoAnswer,
    /// Refused or unreachable; `retry_after` from a `503`.
    Failed {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// A machine answered; the campaign's machine policy was applied.
    Machine,
    /// A person answered and no agent took them in time; the abandon
    /// message was played.
    Abandoned,
    /// The agent leg failed, did not answer, or hung up before the
    /// customer answered: the customer was not reached by an agent.
    AgentUnavailable {
        code: u16,
    },
}

impl PlacedOutcome {
    /// Stable identifier for records, metrics and the CRM.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacedOutcome::Answered => "answered",
            PlacedOutcome::Busy => "busy",
            PlacedOutcome::NoAnswer => "no-answer",
            PlacedOutcome::Failed { .. } => "failed",
            PlacedOutcome::Machine => "machine",
            PlacedOutcome::Abandoned => "abandoned",
            PlacedOutcome::AgentUnavailable { .. } => "agent-unavailable",
        }
    }
}

/// Something that happened to a placed call.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedEvent {
    pub call: u64,
    pub attempt_id: String,
    pub kind: PlacedEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlacedEventKind {
    AgentAnswered,
    /// Customer-first: the agent leg failed while the customer waits.
    AgentFailed {
        code: u16,
    },
    CustomerRinging,
    CustomerAnswered,
    /// Customer-first: who answered.
    Detected(Verdict),
    /// Both legs talk to each other.
    Connected,
    /// The call is over for the dialler (legs may still be closing).
    Ended {
        outcome: PlacedOutcome,
        ended_by: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    Inviting,
    Ringing,
    Answered,
    /// CANCEL sent (or to send at the first provisional answer).
    Cancelling,
    Gone,
}

#[derive(Debug)]
pub(super) struct PlacedLeg {
    dialog: Dialog,
    peer: Peer,
    pub(super) invite: Message,
    tx: TxKey,
    state: LegState,
    ring_deadline: Instant,
    auth_tries: u8,
    ack: Option<Bytes>,
    /// The far end has answered something, if only `100 Trying`.
    heard: bool,
}

#[derive(Debug)]
pub(super) struct Placed {
    attempt_id: String,
    order: LegOrder,
    request: PlaceCall,
    agent: Option<PlacedLeg>,
    customer: Option<PlacedLeg>,
    media: Box<dyn crate::b2bua::anchor::BridgedCall>,
    started: Instant,
    answered: Option<Instant>,
    connected: bool,
    detected: Option<Verdict>,
    /// A message plays to the customer; the call ends with this after it.
    closing: Option<PlacedOutcome>,
    ended: bool,
    ringback_played: bool,
    caller_id: Option<crate::callerid::Applied>,
}

impl std::fmt::Debug for dyn crate::b2bua::anchor::BridgedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BridgedCall")
    }
}

impl Placed {
    fn leg(&self, side: Side) -> Option<&PlacedLeg> {
        match side {
            Side::Pbx => self.agent.as_ref(),
            Side::Trunk => self.customer.as_ref(),
        }
    }

    fn leg_mut(&mut self, side: Side) -> Option<&mut PlacedLeg> {
        match side {
            Side::Pbx => self.agent.as_mut(),
            Side::Trunk => self.customer.as_mut(),
        }
    }
}

impl Placed {
    pub(super) fn leg_invite(&self, side: Side) -> Option<&Message> {
        self.leg(side).map(|l| &l.invite)
    }
}

fn party(side: Side) -> &'static str {
    match side {
        Side::Pbx => "agent",
        Side::Trunk => "customer",
    }
}

/// A `sip:` URI with an IP literal (and port) as the peer to send to; no
/// DNS lookups on the signalling path.
fn target_peer(uri: &str) -> Option<Peer> {
    let (_, host, port, params) = headers::sip_uri_parts(uri)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    let transport =
        if headers::param(params, "transport").is_some_and(|t| t.eq_ignore_ascii_case("tcp")) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port.unwrap_or(5060)),
    })
}

/// `Retry-After` in seconds, when a `503` carries one.
fn retry_after(msg: &Message) -> Option<Duration> {
    msg.get(&Name::RetryAfter)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// What a final failure of the customer leg means for the callback.
fn customer_failure(code: u16, msg: &Message) -> PlacedOutcome {
    match code {
        486 | 600 => PlacedOutcome::Busy,
        408 | 480 | 487 => PlacedOutcome::NoAnswer,
        _ => PlacedOutcome::Failed {
            code,
            retry_after: retry_after(msg),
        },
    }
}

impl Core {
    /// Places a call: commits nothing (the attempt is the caller's), sends
    /// the first leg's INVITE and returns the call's number.
    pub fn place_call(&mut self, request: PlaceCall, now: Instant) -> Result<u64, PlaceError> {
        if self.draining {
            return Err(PlaceError::Draining);
        }
        let agent_peer = match (&request.agent_target, request.order) {
            (Some(target), _) => {
                Some(target_peer(target).ok_or_else(|| PlaceError::BadTarget(target.clone()))?)
            }
            (None, LegOrder::AgentFirst) => return Err(PlaceError::NoAgentTarget),
            (None, LegOrder::CustomerFirst) => None,
        };
        if request.order == LegOrder::CustomerFirst && !self.health.is_up() {
            return Err(PlaceError::TrunkDown);
        }
        let anchor = self.media.as_mut().ok_or(PlaceError::NoMedia)?;
        self.next_call += 1;
        let n = self.next_call;
        let media = anchor.open_bridge(n)?;
        let order = request.order;
        let placed = Placed {
            attempt_id: request.attempt_id.clone(),
            order: request.order,
            request,
            agent: None,
            customer: None,
            media,
            started: now,
            answered: None,
            connected: false,
            detected: None,
            closing: None,
            ended: false,
            ringback_played: false,
            caller_id: None,
        };
        self.placed.insert(n, placed);
        match (order, agent_peer) {
            (LegOrder::AgentFirst, Some(peer)) => self.invite_agent(n, peer, now),
            _ => self.invite_customer(n, now),
        }
        Ok(n)
    }

    /// Customer-first: the person is waiting; call the agent at `target`
    /// and bridge them when the agent answers.
    pub fn connect_agent(
        &mut self,
        call: u64,
        target: &str,
        context: Vec<(String, String)>,
        now: Instant,
    ) -> Result<(), PlaceError> {
        let placed = self
            .placed
            .get_mut(&call)
            .ok_or(PlaceError::UnknownCall(call))?;
        let waiting = placed.answered.is_some()
            && !placed.ended
            && placed.closing.is_none()
            && placed
                .agent
                .as_ref()
                .is_none_or(|l| l.state == LegState::Gone);
        if !waiting {
            return Err(PlaceError::NotWaitingForAgent(call));
        }
        let peer = target_peer(target).ok_or_else(|| PlaceError::BadTarget(target.to_string()))?;
        placed.request.agent_target = Some(target.to_string());
        placed.request.context = context;
        self.invite_agent(call, peer, now);
        Ok(())
    }

    /// Ends a call with `outcome`: the customer hears `message` first when
    /// one is given (the abandon message, a machine's message), then both
    /// legs are hung up.
    pub fn play_and_hang_up(
        &mut self,
        call: u64,
        outcome: PlacedOutcome,
        message: Option<Arc<Announcement>>,
        now: Instant,
    ) {
        let Some(placed) = self.placed.get_mut(&call) else {
            return;
        };
        if placed.ended || placed.closing.is_some() {
            return;
        }
        let customer_up = placed
            .customer
            .as_ref()
            .is_some_and(|l| l.state == LegState::Answered);
        let Some(message) = message.filter(|_| customer_up) else {
            return self.end_placed(call, outcome, "slotgate", now);
        };
        let length = Duration::from_millis(message.duration_ms());
        if let Err(e) = placed.media.play(Side::Trunk, message) {
            warn!(error = %e, "cannot play the message; hanging up");
            return self.end_placed(call, outcome, "slotgate", now);
        }
        placed.closing = Some(outcome);
        // The agent leg has no part in a message to the customer.
        self.drop_leg(call, Side::Pbx, now);
        self.timers.push(Reverse((
            now + length + PLAYBACK_GRACE,
            call,
            CallTimer::PlacedClose,
        )));
    }

    /// Ends a call at once (ring timeout reported by the pacer, shutdown).
    pub fn hang_up(&mut self, call: u64, outcome: PlacedOutcome, now: Instant) {
        self.end_placed(call, outcome, "slotgate", now);
    }

    /// What placed calls did, oldest first.
    pub fn poll_placed_event(&mut self) -> Option<PlacedEvent> {
        self.placed_events.pop_front()
    }

    /// Placed calls not yet over for the dialler.
    pub fn placed_calls(&self) -> usize {
        self.placed.values().filter(|p| !p.ended).count()
    }

    /// What the media of a placed call heard or finished playing.
    pub fn handle_media_event(&mut self, event: MediaEvent, now: Instant) {
        let call = event.call;
        let Some(placed) = self.placed.get_mut(&call) else {
            return;
        };
        match event.kind {
            MediaEventKind::Detected(detection) => {
                if placed.ended || placed.detected.is_some() || placed.answered.is_none() {
                    return;
                }
                debug!(call, verdict = ?detection.verdict, after_ms = detection.after_ms, why = detection.why, "answer classified");
                placed.detected = Some(detection.verdict);
                self.emit(call, PlacedEventKind::Detected(detection.verdict));
            }
            MediaEventKind::PlaybackEnded { side: Side::Trunk } => {
                if let Some(outcome) = placed.closing {
                    self.end_placed(call, outcome, "slotgate", now);
                }
            }
            MediaEventKind::PlaybackEnded { side: Side::Pbx } => {}
        }
    }

    // ---- legs ----

    fn emit(&mut self, call: u64, kind: PlacedEventKind) {
        let Some(placed) = self.placed.get(&call) else {
            return;
        };
        self.placed_events.push_back(PlacedEvent {
            call,
            attempt_id: placed.attempt_id.clone(),
            kind,
        });
    }

    fn invite_agent(&mut self, n: u64, peer: Peer, now: Instant) {
        let via = self.via(peer.transport);
        let contact = self.contact(peer.transport);
        let tag = self.ids.tag();
        let call_id = self.ids.call_id();
        let advertised = self.advertised.clone();
        let server = self.server.clone();
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        let target = placed.request.agent_target.clone().unwrap_or_default();
        let customer = placed.request.customer.as_str().to_string();
        // The agent's phone shows who it is about to talk to.
        let mut dialog = Dialog {
            call_id: call_id.clone(),
            local: format!("\"{customer}\" <sip:{customer}@{advertised}>;tag={tag}"),
            remote: format!("<{target}>"),
            remote_target: target,
            route_set: Vec::new(),
            local_cseq: 0,
        };
        let mut invite = build::in_dialog_request(&mut dialog, Method::Invite, via, &contact, 70);
        invite.push(
            Name::Other(ATTEMPT_HEADER.into()),
            placed.attempt_id.clone(),
        );
        for (name, value) in &placed.request.context {
            invite.push(Name::Other(name.clone()), value.clone());
        }
        invite.push(Name::Allow, ALLOW);
        invite.push(Name::UserAgent, server);
        invite.set_body(
            Some("application/sdp"),
            Bytes::from(placed.media.offer(Side::Pbx)),
        );
        let ring = placed.request.ring_timeout;
        let tx = self.send_request(
            peer,
            &invite,
            Role::Placed {
                call: n,
                side: Side::Pbx,
            },
            now,
        );
        let deadline = now + ring + SETUP_ALLOWANCE;
        if let Some(placed) = self.placed.get_mut(&n) {
            placed.agent = Some(PlacedLeg {
                dialog,
                peer,
                invite,
                tx,
                state: LegState::Inviting,
                ring_deadline: deadline,
                auth_tries: 0,
                ack: None,
                heard: false,
            });
        }
        self.by_placed_call_id.insert(call_id, (n, Side::Pbx));
        self.timers
            .push(Reverse((deadline, n, CallTimer::PlacedRing)));
    }

    fn invite_customer(&mut self, n: u64, now: Instant) {
        let peer = self.trunk_peer();
        let via = self.via(peer.transport);
        let contact = self.contact(peer.transport);
        let tag = self.ids.tag();
        let call_id = self.ids.call_id();
        let server = self.server.clone();
        let wall = self.wall(now);
        let Some(placed) = self.placed.get(&n) else {
            return;
        };
        let number = placed.request.customer.as_str().to_string();
        let request_uri = self.trunk_request_uri(&format!("sip:{number}@trunk;user=phone"));
        let caller = placed.request.caller.clone();
        let from = if caller.starts_with('<') || caller.contains('<') {
            caller.clone()
        } else {
            format!("<{caller}>")
        };
        let mut dialog = Dialog {
            call_id: call_id.clone(),
            local: build::with_tag(&from, &tag),
            remote: format!("<{request_uri}>"),
            remote_target: request_uri,
            route_set: self
                .trunk
                .outbound_proxy
                .map(|p| vec![format!("<sip:{p};lr>")])
                .unwrap_or_default(),
            local_cseq: 0,
        };
        let mut invite = build::in_dialog_request(&mut dialog, Method::Invite, via, &contact, 70);
        invite.push(
            Name::Other(ATTEMPT_HEADER.into()),
            placed.attempt_id.clone(),
        );
        let ctx = crate::callerid::CallContext {
            enterprise: Some(placed.request.enterprise_id.clone()),
            campaign: Some(placed.request.campaign.clone()),
            callee: number,
            pbx_from: crate::callerid::user_part(&from),
            pbx_pai: None,
            pbx_identity: Vec::new(),
            person_override: None,
        };
        let caller_id = self
            .caller_id
            .as_mut()
            .map(|c| c.apply_to_trunk_invite(&ctx, &mut invite, &mut dialog.local, wall));
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        invite.push(Name::Allow, ALLOW);
        invite.push(Name::UserAgent, server);
        invite.set_body(
            Some("application/sdp"),
            Bytes::from(placed.media.offer(Side::Trunk)),
        );
        placed.caller_id = caller_id;
        let ring = placed.request.ring_timeout;
        let tx = self.send_request(
            peer,
            &invite,
            Role::Placed {
                call: n,
                side: Side::Trunk,
            },
            now,
        );
        let deadline = now + ring + SETUP_ALLOWANCE;
        if let Some(placed) = self.placed.get_mut(&n) {
            placed.customer = Some(PlacedLeg {
                dialog,
                peer,
                invite,
                tx,
                state: LegState::Inviting,
                ring_deadline: deadline,
                auth_tries: 0,
                ack: None,
                heard: false,
            });
        }
        self.by_placed_call_id.insert(call_id, (n, Side::Trunk));
        self.timers
            .push(Reverse((deadline, n, CallTimer::PlacedRing)));
    }

    /// A response to one of the INVITEs of a placed call.
    pub(super) fn on_placed_response(
        &mut self,
        n: u64,
        side: Side,
        key: TxKey,
        msg: Message,
        now: Instant,
    ) {
        let Some(code) = msg.status() else { return };
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        let Some(leg) = placed.leg_mut(side) else {
            return;
        };
        if leg.tx != key {
            return;
        }
        leg.heard = true;
        if code == 100 {
            return;
        }
        if code < 300 {
            if let Some(to) = msg.get(&Name::To) {
                if headers::parse_name_addr(to).is_some_and(|na| na.tag().is_some()) {
                    leg.dialog.remote = to.to_string();
                }
            }
            if let Some(target) = msg.get(&Name::Contact).and_then(build::uri_of) {
                leg.dialog.remote_target = target;
            }
        }
        if code < 200 {
            return self.on_placed_provisional(n, side, now);
        }
        if code < 300 {
            return self.on_placed_answer(n, side, msg, now);
        }
        if matches!(code, 401 | 407)
            && side == Side::Trunk
            && self.placed_retry_with_auth(n, &key, &msg, now)
        {
            return;
        }
        self.roles.remove(&key);
        self.on_placed_failure(n, side, code, &msg, now);
    }

    fn on_placed_provisional(&mut self, n: u64, side: Side, now: Instant) {
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        let ring = placed.request.ring_timeout;
        let agent_first = placed.order == LegOrder::AgentFirst;
        let Some(leg) = placed.leg_mut(side) else {
            return;
        };
        match leg.state {
            LegState::Inviting => {
                leg.state = LegState::Ringing;
                // The person gets the whole ring time from the first ring.
                leg.ring_deadline = now + ring;
                self.timers
                    .push(Reverse((now + ring, n, CallTimer::PlacedRing)));
                if side == Side::Trunk {
                    if agent_first && !placed.ringback_played {
                        placed.ringback_played = true;
                        let tone = Arc::new(Announcement::ringback());
                        if let Err(e) = placed.media.play(Side::Pbx, tone) {
                            debug!(error = %e, "no ringback for the agent");
                        }
                    }
                    self.emit(n, PlacedEventKind::CustomerRinging);
                }
            }
            LegState::Cancelling => self.send_placed_cancel(n, side, now),
            LegState::Ringing | LegState::Answered | LegState::Gone => {}
        }
    }

    fn on_placed_answer(&mut self, n: u64, side: Side, msg: Message, now: Instant) {
        let via_transport = self
            .placed
            .get(&n)
            .and_then(|p| p.leg(side))
            .map(|l| l.peer.transport)
            .unwrap_or(Transport::Udp);
        let via = self.via(via_transport);
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        let Some(leg) = placed.leg_mut(side) else {
            return;
        };
        if let Some(ack) = &leg.ack {
            // A repeated 2xx: its ACK was lost.
            let transmit = Transmit {
                peer: leg.peer,
                bytes: ack.clone(),
            };
            self.out.push_back(transmit);
            return;
        }
        let mut routes: Vec<String> = msg.all(&Name::RecordRoute).map(str::to_owned).collect();
        routes.reverse();
        if !routes.is_empty() {
            leg.dialog.route_set = routes;
        }
        let cseq = leg.dialog.local_cseq;
        let ack = build::ack_for_2xx(&leg.dialog, cseq, via, None).to_bytes();
        leg.ack = Some(ack.clone());
        let peer = leg.peer;
        let was = leg.state;
        leg.state = LegState::Answered;
        self.out.push_back(Transmit { peer, bytes: ack });
        let tx = leg.tx.clone();
        self.roles.remove(&tx);
        if was == LegState::Cancelling || placed.ended || placed.closing.is_some() {
            // Answered as we gave up on it: hang up at once.
            return self.drop_leg(n, side, now);
        }
        let answer = SessionDescription::parse(&msg.body)
            .map_err(MediaError::from)
            .and_then(|sdp| placed.media.answered(side, &sdp));
        if let Err(e) = answer {
            warn!(party = party(side), error = %e, "answer without usable SDP");
            let outcome = match side {
                Side::Pbx if placed.answered.is_none() => {
                    PlacedOutcome::AgentUnavailable { code: 488 }
                }
                Side::Pbx => PlacedOutcome::Abandoned,
                Side::Trunk => PlacedOutcome::Failed {
                    code: 488,
                    retry_after: None,
                },
            };
            return self.end_placed(n, outcome, "slotgate", now);
        }
        match (side, placed.order) {
            (Side::Pbx, LegOrder::AgentFirst) => {
                self.emit(n, PlacedEventKind::AgentAnswered);
                self.invite_customer(n, now);
            }
            (Side::Pbx, LegOrder::CustomerFirst) => {
                self.bridge_placed(n);
                self.emit(n, PlacedEventKind::AgentAnswered);
                self.emit(n, PlacedEventKind::Connected);
            }
            (Side::Trunk, LegOrder::AgentFirst) => {
                placed.answered = Some(now);
                self.bridge_placed(n);
                self.emit(n, PlacedEventKind::CustomerAnswered);
                self.emit(n, PlacedEventKind::Connected);
            }
            (Side::Trunk, LegOrder::CustomerFirst) => {
                placed.answered = Some(now);
                let detection = placed.request.detection.clone();
                let started = match detection {
                    Some(settings) => placed.media.detect(settings).map(|_| true),
                    None => Ok(false),
                };
                self.emit(n, PlacedEventKind::CustomerAnswered);
                match started {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Some(placed) = self.placed.get_mut(&n) {
                            placed.detected = Some(Verdict::Person);
                        }
                        self.emit(n, PlacedEventKind::Detected(Verdict::Person));
                    }
                    Err(e) => {
                        // Without detection, treat the answer as a person:
                        // hanging up on one would be worse.
                        warn!(error = %e, "answering-machine detection did not start");
                        if let Some(placed) = self.placed.get_mut(&n) {
                            placed.detected = Some(Verdict::Person);
                        }
                        self.emit(n, PlacedEventKind::Detected(Verdict::Person));
                    }
                }
            }
        }
    }

    fn bridge_placed(&mut self, n: u64) {
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        if let Err(e) = placed.media.bridge() {
            warn!(error = %e, "cannot bridge the legs' media");
        }
        placed.connected = true;
    }

    fn on_placed_failure(&mut self, n: u64, side: Side, code: u16, msg: &Message, now: Instant) {
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        let Some(leg) = placed.leg_mut(side) else {
            return;
        };
        let was = leg.state;
        leg.state = LegState::Gone;
        if was == LegState::Cancelling || placed.ended {
            return self.forget_if_settled(n);
        }
        debug!(call = n, party = party(side), code, "leg refused");
        match (side, placed.order) {
            (Side::Pbx, LegOrder::AgentFirst) => {
                self.end_placed(n, PlacedOutcome::AgentUnavailable { code }, "agent", now)
            }
            (Side::Pbx, LegOrder::CustomerFirst) => {
                // The person still waits: the dialler decides (another
                // agent, or the abandon message when time is up).
                self.emit(n, PlacedEventKind::AgentFailed { code });
            }
            (Side::Trunk, _) => {
                let outcome = customer_failure(code, msg);
                self.end_placed(n, outcome, "trunk", now)
            }
        }
    }

    fn placed_retry_with_auth(&mut self, n: u64, key: &TxKey, msg: &Message, now: Instant) -> bool {
        if self.trunk.username.is_empty() {
            return false;
        }
        let (header, auth_name) = if msg.status() == Some(407) {
            (Name::ProxyAuthenticate, Name::ProxyAuthorization)
        } else {
            (Name::WwwAuthenticate, Name::Authorization)
        };
        let Some(challenge) = msg
            .all(&header)
            .find_map(|v| v.parse::<digest::Challenge>().ok())
        else {
            return false;
        };
        let cnonce = self.ids.cnonce();
        let Some(transport) = self
            .placed
            .get(&n)
            .and_then(|p| p.customer.as_ref())
            .filter(|l| {
                l.auth_tries < 2 && matches!(l.state, LegState::Inviting | LegState::Ringing)
            })
            .map(|l| l.peer.transport)
        else {
            return false;
        };
        let via = self.via(transport);
        let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.customer.as_mut()) else {
            return false;
        };
        if leg.auth_tries >= 2 {
            return false;
        }
        let mut invite = leg.invite.clone();
        let uri = invite.request_uri().to_string();
        let Ok(creds) = digest::answer(
            &challenge,
            "INVITE",
            &uri,
            &self.trunk.username,
            &self.trunk.password,
            &invite.body,
            &cnonce,
            1,
        ) else {
            return false;
        };
        leg.auth_tries += 1;
        leg.dialog.local_cseq += 1;
        invite.set(Name::Via, via);
        invite.set(Name::CSeq, format!("{} INVITE", leg.dialog.local_cseq));
        invite.set(auth_name, creds.to_string());
        leg.invite = invite.clone();
        let peer = leg.peer;
        self.roles.remove(key);
        let new_key = self.send_request(
            peer,
            &invite,
            Role::Placed {
                call: n,
                side: Side::Trunk,
            },
            now,
        );
        if let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.customer.as_mut()) {
            leg.tx = new_key;
        }
        true
    }

    /// An INVITE of a placed call went unanswered (RFC 3261 Timer B). A
    /// trunk that says nothing at all is failing, not a customer who does
    /// not pick up: the dialler backs off instead of counting a no-answer.
    pub(super) fn on_placed_timeout(&mut self, n: u64, side: Side, now: Instant) {
        let waiting = self
            .placed
            .get(&n)
            .and_then(|p| p.leg(side))
            .is_some_and(|l| l.state == LegState::Inviting);
        if side == Side::Trunk && waiting {
            if let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.leg_mut(side)) {
                leg.state = LegState::Gone;
            }
            let silent = PlacedOutcome::Failed {
                code: 408,
                retry_after: None,
            };
            return self.end_placed(n, silent, "slotgate", now);
        }
        let timeout = Message::response(408, "Request Timeout");
        self.on_placed_failure(n, side, 408, &timeout, now);
    }

    /// A leg rang past its deadline: give up on it.
    pub(super) fn placed_ring_timer(&mut self, n: u64, now: Instant) {
        let Some(placed) = self.placed.get(&n) else {
            return;
        };
        let overdue = |leg: Option<&PlacedLeg>| {
            leg.is_some_and(|l| {
                matches!(l.state, LegState::Inviting | LegState::Ringing) && l.ring_deadline <= now
            })
        };
        if overdue(placed.leg(Side::Trunk)) {
            // Not even a `100 Trying`: the trunk is failing, not the
            // customer absent.
            let silent = placed.leg(Side::Trunk).is_some_and(|l| !l.heard);
            let outcome = if silent {
                PlacedOutcome::Failed {
                    code: 408,
                    retry_after: None,
                }
            } else {
                PlacedOutcome::NoAnswer
            };
            return self.end_placed(n, outcome, "slotgate", now);
        }
        if overdue(placed.leg(Side::Pbx)) {
            match placed.order {
                LegOrder::AgentFirst => self.end_placed(
                    n,
                    PlacedOutcome::AgentUnavailable { code: 408 },
                    "slotgate",
                    now,
                ),
                LegOrder::CustomerFirst => {
                    self.drop_leg(n, Side::Pbx, now);
                    self.emit(n, PlacedEventKind::AgentFailed { code: 408 });
                }
            }
        }
    }

    /// The message never reported its end: close the call anyway.
    pub(super) fn placed_close_timer(&mut self, n: u64, now: Instant) {
        let Some(outcome) = self.placed.get(&n).and_then(|p| p.closing) else {
            return;
        };
        self.end_placed(n, outcome, "slotgate", now);
    }

    /// A request inside one of a placed call's dialogs.
    pub(super) fn placed_in_dialog(
        &mut self,
        n: u64,
        side: Side,
        key: TxKey,
        msg: Message,
        now: Instant,
    ) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        match method {
            Method::Bye => {
                self.reply(&key, &msg, 200, "OK", now);
                if let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.leg_mut(side)) {
                    leg.state = LegState::Gone;
                }
                let Some(placed) = self.placed.get(&n) else {
                    return;
                };
                if placed.ended {
                    return self.forget_if_settled(n);
                }
                let outcome = match (side, placed.closing) {
                    (_, Some(outcome)) => outcome,
                    (Side::Trunk, None) if placed.detected == Some(Verdict::Machine) => {
                        PlacedOutcome::Machine
                    }
                    (Side::Trunk, None) => PlacedOutcome::Answered,
                    (Side::Pbx, None) if placed.answered.is_some() => PlacedOutcome::Answered,
                    (Side::Pbx, None) => PlacedOutcome::AgentUnavailable { code: 487 },
                };
                if side == Side::Pbx && placed.order == LegOrder::CustomerFirst && !placed.connected
                {
                    // The agent hung up before the bridge: the person still
                    // waits and the dialler decides.
                    self.emit(n, PlacedEventKind::AgentFailed { code: 487 });
                    return;
                }
                self.end_placed(n, outcome, party(side), now);
            }
            Method::Invite | Method::Update => {
                // A session refresh: slotgate's ports do not change.
                let Some(placed) = self.placed.get(&n) else {
                    return;
                };
                let sdp = placed.media.offer(side);
                let transport = placed
                    .leg(side)
                    .map_or(Transport::Udp, |l| l.peer.transport);
                let mut resp = build::response_to(&msg, 200, "OK", None, &self.server);
                resp.push(Name::Contact, self.contact(transport));
                resp.set_body(Some("application/sdp"), Bytes::from(sdp));
                self.txns.respond(&key, 200, resp.to_bytes(), now);
            }
            Method::Info | Method::Options | Method::Notify => {
                self.reply(&key, &msg, 200, "OK", now)
            }
            _ => self.reply(&key, &msg, 501, "Not Implemented", now),
        }
    }

    /// Hangs up one leg (BYE if answered, CANCEL if ringing).
    fn drop_leg(&mut self, n: u64, side: Side, now: Instant) {
        let Some(leg) = self.placed.get(&n).and_then(|p| p.leg(side)) else {
            return;
        };
        match leg.state {
            LegState::Answered => {
                let peer = leg.peer;
                let via = self.via(peer.transport);
                let contact = self.contact(peer.transport);
                let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.leg_mut(side)) else {
                    return;
                };
                let mut bye =
                    build::in_dialog_request(&mut leg.dialog, Method::Bye, via, &contact, 70);
                bye.push(
                    Name::Other("Reason".into()),
                    "SIP;cause=200;text=\"Call ended by slotgate\"",
                );
                leg.state = LegState::Gone;
                self.send_request(peer, &bye, Role::Fire, now);
            }
            LegState::Inviting | LegState::Ringing => {
                if let Some(leg) = self.placed.get_mut(&n).and_then(|p| p.leg_mut(side)) {
                    leg.state = LegState::Cancelling;
                }
                self.send_placed_cancel(n, side, now);
            }
            LegState::Cancelling | LegState::Gone => {}
        }
    }

    /// CANCEL once the INVITE is proceeding (RFC 3261 §9.1); before that
    /// it goes out with the first provisional answer.
    fn send_placed_cancel(&mut self, n: u64, side: Side, now: Instant) {
        let Some(leg) = self.placed.get(&n).and_then(|p| p.leg(side)) else {
            return;
        };
        if leg.state != LegState::Cancelling || !self.txns.client_proceeding(&leg.tx) {
            return;
        }
        let cancel = build::cancel_for(&leg.invite);
        let peer = leg.peer;
        self.send_request(peer, &cancel, Role::Fire, now);
    }

    /// Reports the outcome once, hangs up what is still up and records the
    /// call; the entry stays until every leg has settled.
    fn end_placed(&mut self, n: u64, outcome: PlacedOutcome, ended_by: &'static str, now: Instant) {
        let Some(placed) = self.placed.get_mut(&n) else {
            return;
        };
        if placed.ended {
            return;
        }
        placed.ended = true;
        placed.closing = None;
        self.drop_leg(n, Side::Trunk, now);
        self.drop_leg(n, Side::Pbx, now);
        self.emit(n, PlacedEventKind::Ended { outcome, ended_by });
        self.record_placed(n, outcome, ended_by, now);
        self.forget_if_settled(n);
    }

    fn forget_if_settled(&mut self, n: u64) {
        let Some(placed) = self.placed.get(&n) else {
            return;
        };
        let done = placed.ended
            && [&placed.agent, &placed.customer]
                .into_iter()
                .flatten()
                .all(|l| l.state == LegState::Gone);
        if !done {
            return;
        }
        if let Some(placed) = self.placed.remove(&n) {
            for leg in [placed.agent, placed.customer].into_iter().flatten() {
                self.by_placed_call_id.remove(&leg.dialog.call_id);
                self.roles.remove(&leg.tx);
            }
        }
    }

    fn record_placed(&mut self, n: u64, outcome: PlacedOutcome, ended_by: &str, now: Instant) {
        let Some(placed) = self.placed.get(&n) else {
            return;
        };
        if let (Some(c), Some(applied)) = (self.caller_id.as_mut(), &placed.caller_id) {
            c.record_outcome(applied, placed.answered.is_some());
        }
        let agent_call_id = placed.agent.as_ref().map(|l| l.dialog.call_id.clone());
        let customer_call_id = placed.customer.as_ref().map(|l| l.dialog.call_id.clone());
        let status = match outcome {
            PlacedOutcome::Answered | PlacedOutcome::Machine | PlacedOutcome::Abandoned => 200,
            PlacedOutcome::Busy => 486,
            PlacedOutcome::NoAnswer => 480,
            PlacedOutcome::Failed { code, .. } | PlacedOutcome::AgentUnavailable { code } => code,
        };
        let applied = placed.caller_id.as_ref();
        let record = CallRecord {
            id: self.ids.record_id(),
            a_call_id: agent_call_id
                .or_else(|| customer_call_id.clone())
                .unwrap_or_default(),
            b_call_id: customer_call_id,
            source: "slotgate".to_string(),
            from_uri: placed.request.caller.clone(),
            to_uri: placed.request.customer.as_str().to_string(),
            request_uri: placed.request.agent_target.clone().unwrap_or_default(),
            started_at: self.wall(placed.started),
            answered_at: placed.answered.map(|t| self.wall(t)),
            ended_at: self.wall(now),
            final_status: i32::from(status),
            reason: format!("attempt {}: {}", placed.attempt_id, outcome.as_str()),
            ended_by: Some(ended_by.to_string()),
            gate_decision: Some("placed".to_string()),
            consent_request_id: None,
            caller_id_number: applied
                .and_then(|a| a.selection.number.as_ref())
                .map(|n| n.as_str().to_string()),
            caller_id_rule: applied.map(|a| a.selection.rule.as_str().to_string()),
            caller_id_why: applied.map(|a| a.selection.why.clone()),
            identity_origid: applied.and_then(|a| a.origid.clone()),
        };
        self.records.push_back(record);
    }

    /// Ends every placed call (shutdown): what was reached is answered,
    /// the rest failed with 503.
    pub(super) fn terminate_placed(&mut self, now: Instant) {
        let calls: Vec<u64> = self.placed.keys().copied().collect();
        for n in calls {
            let answered = self.placed.get(&n).is_some_and(|p| p.answered.is_some());
            let outcome = if answered {
                PlacedOutcome::Answered
            } else {
                PlacedOutcome::Failed {
                    code: 503,
                    retry_after: None,
                }
            };
            self.end_placed(n, outcome, "slotgate", now);
        }
    }

    /// A 2xx repeated by a leg already acknowledged: its ACK was lost.
    pub(super) fn resend_placed_ack(&mut self, n: u64, side: Side) -> bool {
        let Some(leg) = self.placed.get(&n).and_then(|p| p.leg(side)) else {
            return false;
        };
        let Some(ack) = leg.ack.clone() else {
            return false;
        };
        let peer = leg.peer;
        self.out.push_back(Transmit { peer, bytes: ack });
        true
    }

    /// The placed call and leg a Call-ID belongs to.
    pub(super) fn find_placed(&self, call_id: &str) -> Option<(u64, Side)> {
        self.by_placed_call_id.get(call_id).copied()
    }
}
