//! The B2BUA as a sans-I/O state machine: bytes and the current time in,
//! datagrams, timers and call records out.
//!
//! Each call is two independent dialogs: the A leg (the PBX's INVITE, which
//! slotgate answers as a UAS) and the B leg (a new INVITE slotgate places
//! toward the trunk as a UAC), joined by the rules in this file: responses,
//! CANCEL, BYE and in-dialog requests cross from one leg to the other, and
//! nothing of one leg's identity (Call-ID, tags, branch, Via) leaks into the
//! other. The async shell in `lib.rs` only moves bytes and sleeps until
//! `poll_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

// Keyed by network-chosen strings (branches, Call-IDs): a keyed hash that
// resists flooding, but much cheaper than SipHash on the per-message path.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use super::access::{AccessControl, Admission};
use super::anchor::{AnchoredCall, MediaAnchor};
use super::build::{self, Dialog};
use super::classify::{self, Classification};
use super::gate_config::{
    GateConfig, HoldSignal, NoReplyPolicy, StoreErrorPolicy, UnclassifiedPolicy,
};
use super::gate_metrics::GateMetrics;
use super::hold::{GateQuery, GateVerdict, HoldAnswer, HoldRequest};
use super::ids::Ids;
use super::trunk_health::TrunkHealth;
use crate::config::{Config, PbxConfig, TrunkConfig, UnknownSourcePolicy};
use crate::consent::E164;
use crate::media::SessionDescription;
use crate::sip::digest::{self, Algorithm, NonceCounter, NonceIssuer};
use crate::sip::framing;
use crate::sip::headers;
use crate::sip::message::{Message, Method, Name};
use crate::sip::parse::{self, Rejection};
use crate::sip::transaction::{
    Peer, RequestVerdict, ResponseVerdict, Transactions, Transmit, Transport, TxEvent, TxKey, T1,
    T2,
};
use crate::store::caller_ids::CallerIdFlag;
use crate::store::CallRecord;

#[path = "originate.rs"]
pub mod originate;

/// Methods slotgate handles, advertised in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// Headers always carried from the PBX's INVITE to the trunk's.
const CARRIED: [&str; 3] = ["P-Asserted-Identity", "Privacy", "Diversion"];

/// Headers that cross legs with in-dialog requests and their responses.
const RELAYED: [&str; 9] = [
    "Reason",
    "Warning",
    "Retry-After",
    "Content-Disposition",
    "Event",
    "Subscription-State",
    "Info-Package",
    "Refer-To",
    "Referred-By",
];

/// How long a CANCELled INVITE waits for the trunk's 487 before slotgate
/// answers the PBX itself (RFC 3261 §9.1: 64*T1).
const CANCEL_GIVE_UP: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    A,
    B,
}

impl Leg {
    fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    fn party(self) -> &'static str {
        match self {
            Leg::A => "pbx",
            Leg::B => "trunk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Early,
    Confirmed,
    Ending,
}

/// A 2xx to an INVITE that is retransmitted until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct Pending2xx {
    leg: Leg,
    cseq: u32,
    bytes: Bytes,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

#[derive(Debug)]
struct Call {
    record_id: String,
    started: Instant,
    answered: Option<Instant>,
    source: SocketAddr,
    from_uri: String,
    to_uri: String,
    request_uri: String,
    a_peer: Peer,
    a_invite: Message,
    a_tx: TxKey,
    a_tag: String,
    a: Dialog,
    b: Dialog,
    b_peer: Peer,
    b_invite: Message,
    b_tx: TxKey,
    auth_tries: u8,
    phase: Phase,
    /// The PBX cancelled; the trunk's final answer is awaited.
    cancelled: bool,
    cancel_sent: bool,
    b_answered: bool,
    pending_2xx: Option<Pending2xx>,
    /// An ACK from `leg` with CSeq `.1` is relayed with CSeq `.2`.
    ack_map: Vec<(Leg, u32, u32)>,
    /// The last ACK sent toward a leg, re-sent if that leg repeats its 2xx.
    last_ack: Option<(Leg, u32, Bytes)>,
    bye_from: Option<Leg>,
    /// The number shown on the trunk leg and why (see `crate::callerid`).
    caller_id: Option<crate::callerid::Applied>,
    /// What the gate decided, and the consent request it held the call for.
    gate_decision: Option<&'static str>,
    consent_request_id: Option<String>,
    /// Media anchored by slotgate (the call was held with early media):
    /// both legs see slotgate's SDP, never each other's.
    media: Option<Box<dyn AnchoredCall>>,
}

/// An INVITE from the PBX waiting on the gate: first for its decision,
/// then (once `request_id` is set) for the person's answer.
#[derive(Debug)]
struct Hold {
    id: String,
    peer: Peer,
    key: TxKey,
    invite: Message,
    max_forwards: u32,
    /// The To tag of our provisional responses, kept if the call goes on.
    a_tag: String,
    class: Classification,
    started: Instant,
    request_id: Option<String>,
    /// The number set on the person (caller ID rule 1), from the verdict.
    caller_id_override: Option<E164>,
    /// The PBX's offer, when the campaign holds with early media.
    early_offer: Option<SessionDescription>,
    media: Option<Box<dyn AnchoredCall>>,
}

/// How a call leaves the gate for the trunk.
struct Forwarding {
    a_tag: Option<String>,
    gate_decision: Option<&'static str>,
    consent_request_id: Option<String>,
    /// Who is calling whom, as the gate read it (for caller ID).
    class: Option<Classification>,
    /// The number set on the person, as the gate read it (caller ID rule 1).
    caller_id_override: Option<E164>,
    /// Anchored media and the offer it made for the trunk.
    media: Option<(Box<dyn AnchoredCall>, String)>,
}

impl Forwarding {
    const UNGATED: Forwarding = Forwarding {
        a_tag: None,
        gate_decision: None,
        consent_request_id: None,
        class: None,
        caller_id_override: None,
        media: None,
    };
}

impl Call {
    fn dialog(&mut self, leg: Leg) -> &mut Dialog {
        match leg {
            Leg::A => &mut self.a,
            Leg::B => &mut self.b,
        }
    }

    fn peer(&self, leg: Leg) -> Peer {
        match leg {
            Leg::A => self.a_peer,
            Leg::B => self.b_peer,
        }
    }
}

/// What a client transaction was started for.
#[derive(Debug)]
enum Role {
    /// The B leg's INVITE (or its authenticated retry).
    Invite {
        call: u64,
    },
    /// A request relayed from `from` to the other leg; its answer goes back
    /// through `server`.
    Relay {
        call: u64,
        server: TxKey,
        request: Box<Message>,
        sent: Box<Message>,
        from: Leg,
    },
    /// An INVITE of a call slotgate places (see `originate`).
    Placed {
        call: u64,
        side: crate::media::relay::Side,
    },
    /// Requests whose answer changes nothing (CANCEL, teardown BYE).
    Fire,
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CallTimer {
    Resend2xx,
    CancelGiveUp,
    /// The hold's window (its id shares the call id space).
    HoldWindow,
    /// A leg of a placed call rang (or stayed silent) too long.
    PlacedRing,
    /// A placed call's closing message should have ended by now.
    PlacedClose,
}

struct PbxAuth {
    issuer: NonceIssuer,
    counter: NonceCounter,
    users: HashMap<String, String>,
    algorithm: Algorithm,
}

/// The B2BUA core.
pub struct Core {
    advertised: String,
    server: String,
    max_message_size: usize,
    trunk: TrunkConfig,
    unknown_source: UnknownSourcePolicy,
    retry_after_secs: u32,
    access: AccessControl,
    pbx_auth: Option<PbxAuth>,
    health: TrunkHealth,
    txns: Transactions,
    ids: Ids,
    next_call: u64,
    calls: HashMap<u64, Call>,
    by_a_call_id: HashMap<String, u64>,
    by_b_call_id: HashMap<String, u64>,
    roles: HashMap<TxKey, Role>,
    timers: BinaryHeap<Reverse<(Instant, u64, CallTimer)>>,
    out: VecDeque<Transmit>,
    records: VecDeque<CallRecord>,
    draining: bool,
    epoch: (Instant, DateTime<Utc>),
    gate: GateConfig,
    gate_metrics: Arc<GateMetrics>,
    holds: HashMap<u64, Hold>,
    hold_by_id: HashMap<String, u64>,
    hold_by_tx: HashMap<TxKey, u64>,
    gate_queries: VecDeque<GateQuery>,
    /// Where early media and relays come from; `None`: campaigns that hold
    /// with 183 hold with 180 instead.
    media: Option<Box<dyn MediaAnchor>>,
    /// Caller ID selection and STIR/SHAKEN signing; `None` when not configured.
    caller_id: Option<crate::callerid::CallerId>,
    /// Calls slotgate places itself, by number.
    placed: HashMap<u64, originate::Placed>,
    by_placed_call_id: HashMap<String, (u64, crate::media::relay::Side)>,
    placed_events: VecDeque<originate::PlacedEvent>,
}

impl Core {
    /// `now` and `wall_now` anchor the conversion of instants to the UTC
    /// times written in call records.
    pub fn new(config: &Config, now: Instant, wall_now: DateTime<Utc>) -> Core {
        Core {
            advertised: config.sip.advertised_address.clone(),
            server: config.sip.user_agent.clone(),
            max_message_size: config.sip.max_message_size,
            trunk: config.trunk.clone(),
            unknown_source: config.pbx.on_unknown_source,
            retry_after_secs: config.shutdown.retry_after_secs,
            access: AccessControl::new(
                config.pbx.allowed_sources.clone(),
                config.pbx.rate_limit,
                config.pbx.rate_limit_burst,
            ),
            pbx_auth: pbx_auth(&config.pbx),
            health: TrunkHealth::new(config.trunk.options_interval, now),
            txns: Transactions::new(),
            ids: Ids::new(),
            next_call: 0,
            calls: HashMap::default(),
            by_a_call_id: HashMap::default(),
            by_b_call_id: HashMap::default(),
            roles: HashMap::default(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            records: VecDeque::new(),
            draining: false,
            epoch: (now, wall_now),
            gate: config.gate.clone(),
            gate_metrics: Arc::default(),
            holds: HashMap::default(),
            hold_by_id: HashMap::default(),
            hold_by_tx: HashMap::default(),
            gate_queries: VecDeque::new(),
            media: None,
            caller_id: crate::callerid::CallerId::from_config(&config.caller_id),
            placed: HashMap::default(),
            by_placed_call_id: HashMap::default(),
            placed_events: VecDeque::new(),
        }
    }

    /// Lets campaigns that hold with `183` anchor their media.
    pub fn set_media(&mut self, media: Box<dyn MediaAnchor>) {
        self.media = Some(media);
    }

    /// The counters the gate keeps (shared with `/metrics`).
    pub fn gate_metrics(&self) -> Arc<GateMetrics> {
        self.gate_metrics.clone()
    }

    /// Replaces the flags on caller ID pool numbers with `flags`, as the
    /// store holds them: the shell loads them on start and again whenever
    /// they change. Without caller ID, nothing.
    pub fn set_caller_id_flags(&mut self, flags: &[CallerIdFlag]) {
        if let Some(c) = self.caller_id.as_mut() {
            let flags: Vec<(E164, DateTime<Utc>)> = flags
                .iter()
                .map(|f| (f.number.clone(), f.flagged_until))
                .collect();
            c.set_flags(&flags);
        }
    }

    /// What the gate's store side must do next.
    pub fn poll_gate_query(&mut self) -> Option<GateQuery> {
        self.gate_queries.pop_front()
    }

    /// INVITEs held now (waiting for a decision or an answer).
    pub fn held_invites(&self) -> usize {
        self.holds.len()
    }

    /// The holds waiting for the person.
    pub fn held_ids(&self) -> Vec<String> {
        self.holds
            .values()
            .filter(|h| h.request_id.is_some())
            .map(|h| h.id.clone())
            .collect()
    }

    /// Whether the hold `hold_id` is still waiting for the person.
    pub fn is_holding(&self, hold_id: &str) -> bool {
        self.hold_by_id
            .get(hold_id)
            .and_then(|n| self.holds.get(n))
            .is_some_and(|h| h.request_id.is_some())
    }

    // ---- the shell's interface ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front().or_else(|| self.txns.poll_transmit())
    }

    pub fn poll_record(&mut self) -> Option<CallRecord> {
        self.records.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.txns.poll_timeout(),
            self.timers.peek().map(|Reverse((at, ..))| *at),
            self.health.next_ping(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len() + self.holds.len() + self.placed_calls()
    }

    pub fn trunk_up(&self) -> bool {
        self.health.is_up()
    }

    /// From now on new INVITEs are refused with 503; calls in progress go on.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// One UDP datagram.
    pub fn handle_datagram(&mut self, peer: Peer, data: &[u8], now: Instant) {
        match framing::frame_datagram(data, self.max_message_size) {
            Ok(f) => self.handle_framed(peer, f.head, f.body, now),
            Err((err, head)) => {
                debug!(%err, from = %peer.addr, "unframeable datagram");
                let Some(head) = head else { return };
                // Answer 400 when the headers are readable enough to address it.
                let partial = match parse::parse(head, b"") {
                    Ok(msg) => msg,
                    Err(Rejection::Answer { partial, .. }) => *partial,
                    Err(Rejection::Drop(_)) => return,
                };
                if partial.status().is_none() {
                    let reason = match err {
                        framing::FramingError::TruncatedBody => "Content-Length Exceeds Body",
                        framing::FramingError::MultipleContentLength => "Multiple Content-Length",
                        _ => "Bad Content-Length",
                    };
                    self.reply_stateless(peer, &partial, 400, reason);
                }
            }
        }
    }

    /// One complete message from a stream connection (framed by the shell).
    pub fn handle_stream_message(&mut self, peer: Peer, msg: &[u8], now: Instant) {
        let f = framing::split_stream_message(msg);
        self.handle_framed(peer, f.head, f.body, now);
    }

    fn handle_framed(&mut self, peer: Peer, head: &[u8], body: &[u8], now: Instant) {
        match parse::parse(head, body) {
            Ok(msg) => self.handle_message(peer, msg, now),
            Err(Rejection::Answer {
                code,
                reason,
                partial,
            }) => {
                debug!(code, reason, from = %peer.addr, "rejecting malformed request");
                if partial.method() != Some(&Method::Ack) {
                    self.reply_stateless(peer, &partial, code, reason);
                }
            }
            Err(Rejection::Drop(why)) => debug!(why, from = %peer.addr, "dropping message"),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.txns.handle_timeout(now);
        while let Some(event) = self.txns.poll_event() {
            match event {
                TxEvent::ClientTimeout(key) => self.on_client_timeout(key, now),
                TxEvent::AckMissing(key) => {
                    debug!(branch = %key.branch(), "final response never acknowledged")
                }
            }
        }
        while let Some(Reverse((at, call, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                CallTimer::Resend2xx => self.resend_2xx(call, now),
                CallTimer::CancelGiveUp => self.cancel_give_up(call, now),
                CallTimer::HoldWindow => self.hold_window_passed(call, now),
                CallTimer::PlacedRing => self.placed_ring_timer(call, now),
                CallTimer::PlacedClose => self.placed_close_timer(call, now),
            }
        }
        if self.health.ping_due(now) {
            self.send_ping(now);
        }
    }

    /// Ends every call: BYE on answered ones, CANCEL and 503 on ringing ones.
    pub fn terminate_all(&mut self, now: Instant) {
        self.terminate_placed(now);
        let held: Vec<u64> = self.holds.keys().copied().collect();
        for n in held {
            if let Some(hold) = self.take_hold(n, now) {
                self.answer_hold(&hold, 503, "Service Unavailable", None, Some(1), now);
                self.record_hold(&hold, 503, "slotgate shutting down", None, now);
                self.end_stored_hold(&hold, false);
            }
        }
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            if call.phase == Phase::Early {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.cancelled = true;
                }
                self.send_cancel_b(id, now);
                self.answer_a(id, 503, "Service Unavailable", now);
                self.end_call(id, 503, "slotgate shutting down", "slotgate", now);
            } else {
                self.send_bye(id, Leg::A, now);
                self.send_bye(id, Leg::B, now);
                self.end_call(id, 200, "slotgate shutting down", "slotgate", now);
            }
        }
    }

    // ---- helpers ----

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let (base, wall) = self.epoch;
        let delta = at.saturating_duration_since(base);
        chrono::Duration::from_std(delta)
            .ok()
            .and_then(|d| wall.checked_add_signed(d))
            .unwrap_or(wall)
    }

    fn via(&mut self, transport: Transport) -> String {
        let t = match transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        format!(
            "SIP/2.0/{t} {};branch={};rport",
            self.advertised,
            self.ids.branch()
        )
    }

    fn contact(&self, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("<sip:slotgate@{}>", self.advertised),
            Transport::Tcp => format!("<sip:slotgate@{};transport=tcp>", self.advertised),
        }
    }

    fn trunk_peer(&self) -> Peer {
        let transport = match self.trunk.transport {
            crate::config::Transport::Udp => Transport::Udp,
            crate::config::Transport::Tcp => Transport::Tcp,
        };
        Peer {
            transport,
            addr: self.trunk.next_hop(),
        }
    }

    /// Where responses to `req` go: over a stream, back on the connection;
    /// over UDP, to the source address and the Via port (or the source port
    /// with `rport`). Never a DNS lookup.
    fn response_peer(peer: Peer, req: &Message) -> Peer {
        if peer.transport == Transport::Tcp {
            return peer;
        }
        match req.get(&Name::Via).and_then(headers::parse_via) {
            Some(via) if !via.rport => Peer {
                transport: peer.transport,
                addr: SocketAddr::new(peer.addr.ip(), via.port.unwrap_or(5060)),
            },
            _ => peer,
        }
    }

    /// Answers a request outside any transaction (it was malformed).
    fn reply_stateless(&mut self, peer: Peer, req: &Message, code: u16, reason: &str) {
        if req.get(&Name::Via).is_none() {
            return;
        }
        let tag = self.ids.tag();
        let mut resp = build::response_to(req, code, reason, Some(&tag), &self.server);
        decorate_error(&mut resp, code, req);
        self.out.push_back(Transmit {
            peer: Self::response_peer(peer, req),
            bytes: resp.to_bytes(),
        });
    }

    /// Answers a request inside its server transaction.
    fn reply(&mut self, key: &TxKey, req: &Message, code: u16, reason: &str, now: Instant) {
        let tag = self.ids.tag();
        let mut resp = build::response_to(req, code, reason, Some(&tag), &self.server);
        decorate_error(&mut resp, code, req);
        self.txns.respond(key, code, resp.to_bytes(), now);
    }

    fn send_request(&mut self, peer: Peer, req: &Message, role: Role, now: Instant) -> TxKey {
        let branch = req
            .get(&Name::Via)
            .and_then(headers::parse_via)
            .and_then(|v| v.branch)
            .unwrap_or_default()
            .to_string();
        let key = TxKey::new(&branch, req.method().map_or("", Method::as_str));
        self.txns
            .send_request(key.clone(), peer, req.to_bytes(), now);
        self.roles.insert(key.clone(), role);
        key
    }

    // ---- requests ----

    fn handle_message(&mut self, peer: Peer, msg: Message, now: Instant) {
        if msg.status().is_some() {
            return self.handle_response(msg, now);
        }
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let Some(key) = server_key(&msg, &method) else {
            return;
        };
        let in_dialog = msg
            .get(&Name::To)
            .and_then(headers::parse_name_addr)
            .is_some_and(|to| to.tag().is_some());
        if method == Method::Invite
            && !in_dialog
            && !self.access.is_allowed(peer.addr.ip())
            && self.unknown_source == UnknownSourcePolicy::Ignore
        {
            debug!(from = %peer.addr, "ignoring INVITE from a source not allowed");
            return;
        }
        let resp_peer = Self::response_peer(peer, &msg);
        match self
            .txns
            .on_request(key.clone(), method == Method::Ack, resp_peer, now)
        {
            RequestVerdict::New => {}
            RequestVerdict::Retransmission | RequestVerdict::AckAbsorbed => return,
            RequestVerdict::AckForDialog => return self.handle_ack(msg),
        }
        if method == Method::Ack {
            return;
        }
        if method != Method::Cancel {
            if let Some(unsupported) = unsupported_requirements(&msg) {
                let tag = self.ids.tag();
                let mut resp =
                    build::response_to(&msg, 420, "Bad Extension", Some(&tag), &self.server);
                resp.push(Name::Unsupported, unsupported);
                self.txns.respond(&key, 420, resp.to_bytes(), now);
                return;
            }
        }
        match method {
            Method::Cancel => self.handle_cancel(key, &msg, now),
            _ if in_dialog => self.handle_in_dialog(peer, key, msg, now),
            Method::Invite => self.handle_new_invite(peer, key, msg, now),
            Method::Options => {
                let mut resp =
                    build::response_to(&msg, 200, "OK", Some(&self.ids.tag()), &self.server);
                resp.push(Name::Allow, ALLOW);
                resp.push(Name::Accept, "application/sdp");
                self.txns.respond(&key, 200, resp.to_bytes(), now);
            }
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.reply(&key, &msg, 481, "Call/Transaction Does Not Exist", now)
            }
            Method::Other(_) => self.reply(&key, &msg, 501, "Not Implemented", now),
            _ => self.reply(&key, &msg, 405, "Method Not Allowed", now),
        }
    }

    fn record_rejection(
        &mut self,
        peer: Peer,
        msg: &Message,
        code: u16,
        reason: &str,
        now: Instant,
    ) {
        let at = self.wall(now);
        self.records.push_back(CallRecord {
            id: self.ids.record_id(),
            a_call_id: msg.get(&Name::CallId).unwrap_or_default().to_string(),
            b_call_id: None,
            source: peer.addr.to_string(),
            from_uri: uri_of_header(msg, &Name::From),
            to_uri: uri_of_header(msg, &Name::To),
            request_uri: msg.request_uri().to_string(),
            started_at: at,
            answered_at: None,
            ended_at: at,
            final_status: i32::from(code),
            reason: format!("{code} {reason}"),
            ended_by: Some("slotgate".into()),
            gate_decision: None,
            consent_request_id: None,
            caller_id_number: None,
            caller_id_rule: None,
            caller_id_why: None,
            identity_origid: None,
        });
    }

    /// Answers a new INVITE with a final error and records the attempt.
    fn refuse(
        &mut self,
        peer: Peer,
        key: &TxKey,
        msg: &Message,
        code: u16,
        reason: &str,
        now: Instant,
    ) {
        let tag = self.ids.tag();
        let mut resp = build::response_to(msg, code, reason, Some(&tag), &self.server);
        decorate_error(&mut resp, code, msg);
        if code == 503 {
            let after = if self.draining {
                self.retry_after_secs
            } else {
                1
            };
            resp.push(Name::RetryAfter, after.to_string());
        }
        self.txns.respond(key, code, resp.to_bytes(), now);
        self.record_rejection(peer, msg, code, reason, now);
    }

    fn handle_new_invite(&mut self, peer: Peer, key: TxKey, msg: Message, now: Instant) {
        if peer.addr == self.trunk.next_hop() {
            return self.refuse(
                peer,
                &key,
                &msg,
                403,
                "Calls From The Trunk Are Not Handled",
                now,
            );
        }
        match self.access.admit(peer.addr.ip(), now) {
            Admission::Allowed => {}
            Admission::Forbidden => {
                info!(from = %peer.addr, "INVITE from a source not allowed");
                return self.refuse(peer, &key, &msg, 403, "Forbidden", now);
            }
            Admission::RateLimited => {
                return self.refuse(peer, &key, &msg, 503, "Rate Limit Exceeded", now);
            }
        }
        if self.draining {
            return self.refuse(peer, &key, &msg, 503, "Shutting Down", now);
        }
        if !self.health.is_up() {
            return self.refuse(peer, &key, &msg, 503, "Trunk Unavailable", now);
        }
        if !msg.body.is_empty() && !content_type_is_sdp(&msg) {
            return self.refuse(peer, &key, &msg, 415, "Unsupported Media Type", now);
        }
        if !accepts_sdp(&msg) {
            return self.refuse(peer, &key, &msg, 406, "Not Acceptable", now);
        }
        let max_forwards = msg
            .get(&Name::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70)
            .min(255);
        if max_forwards == 0 {
            return self.refuse(peer, &key, &msg, 483, "Too Many Hops", now);
        }
        if self.pbx_auth.is_some() && !self.pbx_authenticated(&msg, now) {
            let stale = self.pbx_auth_stale(&msg, now);
            let Some(auth) = &self.pbx_auth else { return };
            let unix = self.wall(now).timestamp().max(0) as u64;
            let challenge = digest::challenge(&auth.issuer, unix, auth.algorithm, stale);
            let tag = self.ids.tag();
            let mut resp = build::response_to(
                &msg,
                407,
                "Proxy Authentication Required",
                Some(&tag),
                &self.server,
            );
            resp.push(Name::ProxyAuthenticate, challenge.to_string());
            self.txns.respond(&key, 407, resp.to_bytes(), now);
            return;
        }
        if !self.gate.enabled {
            return self.start_call(peer, key, msg, max_forwards, Forwarding::UNGATED, now);
        }
        let digest_user = self.pbx_auth.as_ref().and_then(|_| {
            msg.get(&Name::ProxyAuthorization)
                .and_then(|v| v.parse::<digest::Credentials>().ok())
                .map(|c| c.username)
        });
        match classify::classify(&self.gate, &msg, peer.addr.ip(), digest_user.as_deref()) {
            Some(class) => self.begin_hold(peer, key, msg, max_forwards, class, now),
            None => match self.gate.on_unclassified {
                UnclassifiedPolicy::Pass => {
                    self.gate_metrics.decided("unclassified-passed");
                    let forwarding = Forwarding {
                        gate_decision: Some("unclassified-passed"),
                        ..Forwarding::UNGATED
                    };
                    self.start_call(peer, key, msg, max_forwards, forwarding, now)
                }
                UnclassifiedPolicy::Reject => {
                    self.gate_metrics.decided("unclassified-rejected");
                    self.refuse(peer, &key, &msg, 403, "Caller Not Classified", now);
                }
            },
        }
    }

    // ---- the gate ----

    /// Answers 100, keeps the INVITE and asks the shell for the decision.
    /// The hold window runs from now: an INVITE whose decision never comes
    /// (store unreachable) is still answered at its end.
    fn begin_hold(
        &mut self,
        peer: Peer,
        key: TxKey,
        msg: Message,
        max_forwards: u32,
        class: Classification,
        now: Instant,
    ) {
        let early = self.media.is_some()
            && self.gate.campaign(&class.campaign).hold_with == HoldSignal::EarlyMedia;
        let early_offer = if early {
            match SessionDescription::parse(&msg.body) {
                Ok(offer) => Some(offer),
                Err(e) => {
                    debug!(error = %e, "PBX offer unusable for early media");
                    self.gate_metrics.decided("sdp-rejected");
                    return self.refuse(peer, &key, &msg, 488, "Not Acceptable Here", now);
                }
            }
        } else {
            None
        };
        let trying = build::response_to(&msg, 100, "Trying", None, &self.server);
        self.txns.respond(&key, 100, trying.to_bytes(), now);
        self.next_call += 1;
        let n = self.next_call;
        let id = self.ids.record_id();
        let window = self.gate.campaign(&class.campaign).hold_window;
        let caller = uri_of_header(&msg, &Name::From);
        let pbx_target = match headers::sip_uri_parts(&caller) {
            Some((Some(user), ..)) => format!("sip:{user}@{}", peer.addr),
            _ => format!("sip:{}", peer.addr),
        };
        self.gate_queries.push_back(GateQuery::Decide(HoldRequest {
            hold_id: id.clone(),
            classification: class.clone(),
            caller,
            pbx_target,
            at: self.wall(now),
        }));
        self.timers
            .push(Reverse((now + window, n, CallTimer::HoldWindow)));
        self.gate_metrics.hold_started();
        self.hold_by_id.insert(id.clone(), n);
        self.hold_by_tx.insert(key.clone(), n);
        self.holds.insert(
            n,
            Hold {
                id,
                peer,
                key,
                invite: msg,
                max_forwards,
                a_tag: self.ids.tag(),
                class,
                started: now,
                request_id: None,
                caller_id_override: None,
                early_offer,
                media: None,
            },
        );
    }

    /// The shell's decision for a hold.
    pub fn handle_gate_verdict(&mut self, hold_id: &str, verdict: GateVerdict, now: Instant) {
        let Some(&n) = self.hold_by_id.get(hold_id) else {
            // The INVITE ended first (CANCEL): a hold the store opened for
            // it must end there too, so a late answer schedules a callback.
            if matches!(verdict, GateVerdict::Hold { .. }) {
                self.gate_queries.push_back(GateQuery::Ended {
                    hold_id: hold_id.to_string(),
                    forwarded: false,
                });
            }
            return;
        };
        match verdict {
            GateVerdict::Hold {
                request_id,
                caller_id_override,
            } => {
                let Some(hold) = self.holds.get_mut(&n) else {
                    return;
                };
                if hold.request_id.is_some() {
                    return;
                }
                hold.request_id = Some(request_id);
                hold.caller_id_override = caller_id_override;
                let contact = match hold.peer.transport {
                    Transport::Udp => format!("<sip:slotgate@{}>", self.advertised),
                    Transport::Tcp => format!("<sip:slotgate@{};transport=tcp>", self.advertised),
                };
                if let (Some(offer), Some(media)) = (&hold.early_offer, self.media.as_mut()) {
                    match media.open(offer) {
                        Ok(call) => hold.media = Some(call),
                        // Ringing instead: the call still works end to end.
                        Err(e) => warn!(error = %e, "no early media for a held INVITE"),
                    }
                }
                let (code, phrase) = match hold.media {
                    Some(_) => (183, "Session Progress"),
                    None => (180, "Ringing"),
                };
                let mut ringing =
                    build::response_to(&hold.invite, code, phrase, Some(&hold.a_tag), &self.server);
                ringing.push(Name::Contact, contact);
                if let Some(media) = &hold.media {
                    ringing.set_body(
                        Some("application/sdp"),
                        Bytes::from(media.answer().to_string()),
                    );
                }
                let key = hold.key.clone();
                self.txns.respond(&key, code, ringing.to_bytes(), now);
            }
            GateVerdict::Forward {
                decision,
                consent_id: _,
                caller_id_override,
            } => {
                if let Some(mut hold) = self.take_hold(n, now) {
                    self.gate_metrics.decided(decision);
                    hold.caller_id_override = caller_id_override;
                    self.forward_hold(hold, decision, now);
                }
            }
            GateVerdict::Refuse {
                decision,
                status,
                reason,
                retry_after_secs,
            } => {
                if let Some(hold) = self.take_hold(n, now) {
                    self.refuse_hold(&hold, decision, status, &reason, retry_after_secs, now);
                }
            }
        }
    }

    /// The person's stored answer for a hold. False when the INVITE is no
    /// longer held here (it ended, or another node holds it).
    /// `stored_at`: when the answer was stored, for the answer-to-response
    /// figure.
    pub fn handle_hold_answer(
        &mut self,
        hold_id: &str,
        answer: HoldAnswer,
        stored_at: DateTime<Utc>,
        now: Instant,
    ) -> bool {
        let Some(&n) = self.hold_by_id.get(hold_id) else {
            return false;
        };
        if self.holds.get(&n).is_none_or(|h| h.request_id.is_none()) {
            return false;
        }
        let Some(hold) = self.take_hold(n, now) else {
            return false;
        };
        // Clocks of two nodes (or two reads of one) may disagree by a hair:
        // a negative delay counts as none.
        let after = (self.wall(now) - stored_at).to_std().unwrap_or_default();
        self.gate_metrics.answer_acted_on(after);
        match answer {
            HoldAnswer::Now => {
                self.gate_metrics.decided("held-now");
                self.forward_hold(hold, "held-now", now);
            }
            HoldAnswer::Later { at } => {
                let status = self.gate.campaign(&hold.class.campaign).later_status;
                let wait = (at - self.wall(now)).num_seconds().max(1) as u64;
                let reason = format!(
                    "SIP;cause={status};text=\"scheduled {}\"",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                self.refuse_hold(&hold, "held-later", status, &reason, Some(wait), now);
            }
            HoldAnswer::Decline => {
                let reason = format!("SIP;cause=603;text=\"{}\"", self.gate.decline_reason);
                self.refuse_hold(&hold, "held-declined", 603, &reason, None, now);
            }
        }
        true
    }

    fn hold_window_passed(&mut self, n: u64, now: Instant) {
        let Some(hold) = self.take_hold(n, now) else {
            return;
        };
        if hold.request_id.is_none() {
            // No decision in the whole window: the store did not answer.
            warn!(hold = %hold.id, "no gate decision within the hold window");
            return match self.gate.on_store_error {
                StoreErrorPolicy::Reject => {
                    let reason = "SIP;cause=503;text=\"consent store unavailable\"";
                    self.refuse_hold(&hold, "store-error-rejected", 503, reason, Some(5), now);
                }
                StoreErrorPolicy::Pass => {
                    self.gate_metrics.decided("store-error-passed");
                    self.forward_hold(hold, "store-error-passed", now);
                }
            };
        }
        match self.gate.campaign(&hold.class.campaign).on_no_reply {
            NoReplyPolicy::Reject => {
                let reason = "SIP;cause=480;text=\"no reply from the callee\"";
                self.refuse_hold(&hold, "no-reply-rejected", 480, reason, None, now);
                self.end_stored_hold(&hold, false);
            }
            NoReplyPolicy::Pass => {
                self.gate_metrics.decided("no-reply-passed");
                self.end_stored_hold(&hold, true);
                self.forward_hold(hold, "no-reply-passed", now);
            }
        }
    }

    /// Removes a hold from every index, counting how long it lasted.
    fn take_hold(&mut self, n: u64, now: Instant) -> Option<Hold> {
        let hold = self.holds.remove(&n)?;
        self.hold_by_id.remove(&hold.id);
        self.hold_by_tx.remove(&hold.key);
        self.gate_metrics
            .hold_ended(now.saturating_duration_since(hold.started));
        Some(hold)
    }

    /// Tells the store side a hold it opened has ended here.
    fn end_stored_hold(&mut self, hold: &Hold, forwarded: bool) {
        if hold.request_id.is_some() {
            self.gate_queries.push_back(GateQuery::Ended {
                hold_id: hold.id.clone(),
                forwarded,
            });
        }
    }

    fn forward_hold(&mut self, mut hold: Hold, decision: &'static str, now: Instant) {
        let media = match hold.media.take() {
            Some(mut media) => match media.offer_to_trunk() {
                Ok(offer) => Some((media, offer)),
                Err(e) => {
                    // The PBX already has slotgate's SDP: without a relay
                    // the call would have no audio.
                    warn!(error = %e, "no media toward the trunk for an anchored call");
                    let reason = "SIP;cause=503;text=\"no media ports\"";
                    // Counted already under `decision` by the caller.
                    self.answer_hold(&hold, 503, reason_phrase(503), Some(reason), Some(5), now);
                    return self.record_hold(&hold, 503, reason, Some(decision), now);
                }
            },
            None => None,
        };
        let forwarding = Forwarding {
            a_tag: Some(hold.a_tag),
            gate_decision: Some(decision),
            consent_request_id: hold.request_id,
            class: Some(hold.class),
            caller_id_override: hold.caller_id_override,
            media,
        };
        self.start_call(
            hold.peer,
            hold.key,
            hold.invite,
            hold.max_forwards,
            forwarding,
            now,
        );
    }

    /// Ends a held INVITE with a final failure: counted under `decision`,
    /// answered with `reason` as the Reason header, and recorded.
    fn refuse_hold(
        &mut self,
        hold: &Hold,
        decision: &'static str,
        status: u16,
        reason: &str,
        retry_after_secs: Option<u64>,
        now: Instant,
    ) {
        self.gate_metrics.decided(decision);
        let phrase = reason_phrase(status);
        self.answer_hold(hold, status, phrase, Some(reason), retry_after_secs, now);
        self.record_hold(hold, status, reason, Some(decision), now);
    }

    /// A final response to a held INVITE, with the tag of its provisional
    /// responses.
    fn answer_hold(
        &mut self,
        hold: &Hold,
        status: u16,
        phrase: &str,
        reason: Option<&str>,
        retry_after_secs: Option<u64>,
        now: Instant,
    ) {
        let mut resp = build::response_to(
            &hold.invite,
            status,
            phrase,
            Some(&hold.a_tag),
            &self.server,
        );
        if let Some(reason) = reason {
            resp.push(Name::Reason, reason);
        }
        if let Some(secs) = retry_after_secs {
            resp.push(Name::RetryAfter, secs.to_string());
        }
        self.txns.respond(&hold.key, status, resp.to_bytes(), now);
    }

    fn record_hold(
        &mut self,
        hold: &Hold,
        status: u16,
        reason: &str,
        decision: Option<&'static str>,
        now: Instant,
    ) {
        let at = self.wall(now);
        self.records.push_back(CallRecord {
            id: self.ids.record_id(),
            a_call_id: hold
                .invite
                .get(&Name::CallId)
                .unwrap_or_default()
                .to_string(),
            b_call_id: None,
            source: hold.peer.addr.to_string(),
            from_uri: uri_of_header(&hold.invite, &Name::From),
            to_uri: uri_of_header(&hold.invite, &Name::To),
            request_uri: hold.invite.request_uri().to_string(),
            started_at: self.wall(hold.started),
            answered_at: None,
            ended_at: at,
            final_status: i32::from(status),
            reason: reason.to_string(),
            ended_by: Some("slotgate".into()),
            gate_decision: decision.map(str::to_string),
            consent_request_id: hold.request_id.clone(),
            caller_id_number: None,
            caller_id_rule: None,
            caller_id_why: None,
            identity_origid: None,
        });
    }

    fn pbx_authenticated(&mut self, msg: &Message, now: Instant) -> bool {
        let unix = self.wall(now).timestamp().max(0) as u64;
        let Some(auth) = self.pbx_auth.as_mut() else {
            return true;
        };
        let Some(creds) = msg
            .get(&Name::ProxyAuthorization)
            .and_then(|v| v.parse::<digest::Credentials>().ok())
        else {
            return false;
        };
        let Some(password) = auth.users.get(&creds.username) else {
            return false;
        };
        digest::verify(
            &creds,
            "INVITE",
            password,
            &msg.body,
            &auth.issuer,
            unix,
            300,
        )
        .is_ok()
            && auth.counter.check(&creds).is_ok()
    }

    fn pbx_auth_stale(&self, msg: &Message, now: Instant) -> bool {
        let unix = self.wall(now).timestamp().max(0) as u64;
        let Some(auth) = &self.pbx_auth else {
            return false;
        };
        let Some(creds) = msg
            .get(&Name::ProxyAuthorization)
            .and_then(|v| v.parse::<digest::Credentials>().ok())
        else {
            return false;
        };
        let Some(password) = auth.users.get(&creds.username) else {
            return false;
        };
        matches!(
            digest::verify(
                &creds,
                "INVITE",
                password,
                &msg.body,
                &auth.issuer,
                unix,
                300
            ),
            Err(digest::DigestError::Stale)
        )
    }

    fn start_call(
        &mut self,
        peer: Peer,
        key: TxKey,
        msg: Message,
        max_forwards: u32,
        forwarding: Forwarding,
        now: Instant,
    ) {
        // A held INVITE had its 100 (and a tag) when the hold began.
        let a_tag = match forwarding.a_tag {
            Some(tag) => tag,
            None => {
                let trying = build::response_to(&msg, 100, "Trying", None, &self.server);
                self.txns.respond(&key, 100, trying.to_bytes(), now);
                self.ids.tag()
            }
        };
        let b_peer = self.trunk_peer();
        let from = msg.get(&Name::From).unwrap_or_default().to_string();
        let to = msg.get(&Name::To).unwrap_or_default().to_string();
        let a_call_id = msg.get(&Name::CallId).unwrap_or_default().to_string();
        let a_cseq = msg.cseq().map_or(1, |(n, _)| n);
        let a_contact = msg
            .get(&Name::Contact)
            .and_then(build::uri_of)
            .unwrap_or_else(|| uri_of_header(&msg, &Name::From));
        let a = Dialog {
            call_id: a_call_id.clone(),
            local: build::with_tag(&to, &a_tag),
            remote: from.clone(),
            remote_target: a_contact,
            route_set: msg.all(&Name::RecordRoute).map(str::to_owned).collect(),
            local_cseq: 0,
        };

        let b_tag = self.ids.tag();
        let b_call_id = self.ids.call_id();
        let request_uri = self.trunk_request_uri(msg.request_uri());
        let mut b = Dialog {
            call_id: b_call_id.clone(),
            local: build::with_tag(&from, &b_tag),
            remote: to.clone(),
            remote_target: request_uri.clone(),
            route_set: self
                .trunk
                .outbound_proxy
                .map(|p| vec![format!("<sip:{p};lr>")])
                .unwrap_or_default(),
            local_cseq: 0,
        };
        let via = self.via(b_peer.transport);
        let contact = self.contact(b_peer.transport);
        let mut invite =
            build::in_dialog_request(&mut b, Method::Invite, via, &contact, max_forwards - 1);
        for name in CARRIED
            .iter()
            .map(|s| s.to_string())
            .chain(self.trunk.carry_headers.iter().cloned())
        {
            if name.to_ascii_lowercase().starts_with("x-slotgate-") {
                continue;
            }
            for h in msg.headers.iter().filter(|h| h.name.is(&name)) {
                invite.headers.push(h.clone());
            }
        }
        // Caller ID (From, P-Asserted-Identity) and Identity for the trunk.
        let wall = self.wall(now);
        let caller_id = self.caller_id.as_mut().map(|c| {
            let mut ctx = crate::callerid::CallContext::from_pbx_invite(&msg);
            if let Some(class) = &forwarding.class {
                ctx.enterprise = Some(class.enterprise_id.clone());
                ctx.campaign = Some(class.campaign.clone());
            }
            ctx.person_override = forwarding.caller_id_override.clone();
            c.apply_to_trunk_invite(&ctx, &mut invite, &mut b.local, wall)
        });
        invite.push(Name::Allow, ALLOW);
        invite.push(Name::UserAgent, self.server.clone());
        let media = match forwarding.media {
            Some((media, offer)) => {
                invite.set_body(Some("application/sdp"), Bytes::from(offer));
                Some(media)
            }
            None => {
                invite.set_body(msg.get(&Name::ContentType), msg.body.clone());
                None
            }
        };

        self.next_call += 1;
        let id = self.next_call;
        let b_tx = self.send_request(b_peer, &invite, Role::Invite { call: id }, now);
        debug!(a_call_id = %a_call_id, b_call_id = %b_call_id, "call started");
        let call = Call {
            record_id: self.ids.record_id(),
            started: now,
            answered: None,
            source: peer.addr,
            from_uri: uri_of_header(&msg, &Name::From),
            to_uri: uri_of_header(&msg, &Name::To),
            request_uri: msg.request_uri().to_string(),
            a_peer: Self::response_peer(peer, &msg),
            a_invite: msg,
            a_tx: key,
            a_tag,
            a,
            b,
            b_peer,
            b_invite: invite,
            b_tx,
            auth_tries: 0,
            phase: Phase::Early,
            cancelled: false,
            cancel_sent: false,
            b_answered: false,
            pending_2xx: None,
            ack_map: vec![(Leg::A, a_cseq, 1)],
            last_ack: None,
            bye_from: None,
            gate_decision: forwarding.gate_decision,
            consent_request_id: forwarding.consent_request_id,
            media,
            caller_id,
        };
        self.by_a_call_id.insert(a_call_id, id);
        self.by_b_call_id.insert(b_call_id, id);
        self.calls.insert(id, call);
    }

    /// `sip:<user>@<trunk domain>`, keeping `user=phone`.
    fn trunk_request_uri(&self, original: &str) -> String {
        let (user, phone) = match headers::sip_uri_parts(original) {
            Some((user, _, _, params)) => (
                user.map(|u| u.split(';').next().unwrap_or(u).to_string()),
                headers::param(params, "user").is_some_and(|v| v.eq_ignore_ascii_case("phone")),
            ),
            // tel: URIs carry the number after the scheme.
            None => (
                original
                    .split_once(':')
                    .map(|(_, n)| n.split(';').next().unwrap_or(n).to_string()),
                true,
            ),
        };
        let phone = if phone { ";user=phone" } else { "" };
        let tcp = if self.trunk.transport == crate::config::Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        match user {
            Some(u) if !u.is_empty() => format!("sip:{u}@{}{phone}{tcp}", self.trunk.domain),
            _ => format!("sip:{}{tcp}", self.trunk.domain),
        }
    }

    fn handle_cancel(&mut self, key: TxKey, msg: &Message, now: Instant) {
        let invite_key = key.for_method("INVITE");
        if !self.txns.server_pending(&invite_key) {
            return self.reply(&key, msg, 481, "Call/Transaction Does Not Exist", now);
        }
        self.reply(&key, msg, 200, "OK", now);
        if let Some(&n) = self.hold_by_tx.get(&invite_key) {
            if let Some(hold) = self.take_hold(n, now) {
                self.gate_metrics.decided("cancelled");
                self.answer_hold(&hold, 487, "Request Terminated", None, None, now);
                self.record_hold(
                    &hold,
                    487,
                    "CANCEL from pbx while held",
                    Some("cancelled"),
                    now,
                );
                self.end_stored_hold(&hold, false);
            }
            return;
        }
        let call_id = msg.get(&Name::CallId).unwrap_or_default();
        let found = self
            .by_a_call_id
            .get(call_id)
            .copied()
            .filter(|id| self.calls.get(id).is_some_and(|c| c.a_tx == invite_key));
        let Some(id) = found else {
            // A relayed re-INVITE: it completes with the other leg's answer.
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.cancelled = true;
        }
        self.send_cancel_b(id, now);
        self.timers
            .push(Reverse((now + CANCEL_GIVE_UP, id, CallTimer::CancelGiveUp)));
    }

    /// Sends CANCEL for the B leg's INVITE once it is proceeding (RFC 3261
    /// §9.1: not before a provisional response arrived).
    fn send_cancel_b(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.cancelled
            || call.cancel_sent
            || call.b_answered
            || !self.txns.client_proceeding(&call.b_tx)
        {
            return;
        }
        let cancel = build::cancel_for(&call.b_invite);
        let peer = call.b_peer;
        if let Some(call) = self.calls.get_mut(&id) {
            call.cancel_sent = true;
        }
        self.send_request(peer, &cancel, Role::Fire, now);
    }

    fn cancel_give_up(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.phase != Phase::Early || !call.cancelled {
            return;
        }
        let b_tx = call.b_tx.clone();
        self.txns.abandon_client(&b_tx);
        self.answer_a(id, 487, "Request Terminated", now);
        self.end_call(
            id,
            487,
            "CANCEL from pbx (trunk did not confirm)",
            "pbx",
            now,
        );
    }

    fn handle_ack(&mut self, msg: Message) {
        let call_id = msg.get(&Name::CallId).unwrap_or_default();
        let Some((id, from)) = self.find_call(call_id) else {
            return;
        };
        let cseq = msg.cseq().map_or(0, |(n, _)| n);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call
            .pending_2xx
            .as_ref()
            .is_some_and(|p| p.leg == from && p.cseq == cseq)
        {
            call.pending_2xx = None;
        }
        let Some(pos) = call
            .ack_map
            .iter()
            .position(|(leg, c, _)| *leg == from && *c == cseq)
        else {
            return;
        };
        let (_, _, to_cseq) = call.ack_map.remove(pos);
        let to = from.other();
        let peer = call.peer(to);
        let via = self.via(peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let body = (!msg.body.is_empty()).then(|| {
            (
                msg.get(&Name::ContentType).unwrap_or("application/sdp"),
                msg.body.clone(),
            )
        });
        let ack = build::ack_for_2xx(call.dialog(to), to_cseq, via, body).to_bytes();
        call.last_ack = Some((to, to_cseq, ack.clone()));
        self.out.push_back(Transmit { peer, bytes: ack });
    }

    fn find_call(&self, call_id: &str) -> Option<(u64, Leg)> {
        if let Some(id) = self.by_b_call_id.get(call_id) {
            return Some((*id, Leg::B));
        }
        self.by_a_call_id.get(call_id).map(|id| (*id, Leg::A))
    }

    fn handle_in_dialog(&mut self, peer: Peer, key: TxKey, msg: Message, now: Instant) {
        let call_id = msg.get(&Name::CallId).unwrap_or_default();
        if let Some((n, side)) = self.find_placed(call_id) {
            return self.placed_in_dialog(n, side, key, msg, now);
        }
        let Some((id, from)) = self.find_call(call_id) else {
            return self.reply(&key, &msg, 481, "Call/Transaction Does Not Exist", now);
        };
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let to = from.other();
        let max_forwards = msg
            .get(&Name::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70)
            .min(255);
        if max_forwards == 0 {
            return self.reply(&key, &msg, 483, "Too Many Hops", now);
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.phase == Phase::Ending && method != Method::Bye {
            return self.reply(&key, &msg, 481, "Call/Transaction Does Not Exist", now);
        }
        let to_peer = call.peer(to);
        let via = self.via(to_peer.transport);
        let contact = self.contact(to_peer.transport);
        let ack_via = (method == Method::Bye).then(|| self.via(to_peer.transport));
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // A BYE overtaking the ACK for the other leg's 2xx (lost, or never
        // sent): acknowledge that 2xx first, so the BYE does not arrive
        // inside an unconfirmed dialog.
        if let Some(ack_via) = ack_via {
            if let Some(pos) = call.ack_map.iter().position(|(leg, ..)| *leg == from) {
                let (_, _, to_cseq) = call.ack_map.remove(pos);
                let ack = build::ack_for_2xx(call.dialog(to), to_cseq, ack_via, None).to_bytes();
                call.last_ack = Some((to, to_cseq, ack.clone()));
                self.out.push_back(Transmit {
                    peer: to_peer,
                    bytes: ack,
                });
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if from == Leg::A {
            call.a_peer = Self::response_peer(peer, &msg);
        }
        if matches!(method, Method::Invite | Method::Update) {
            if let Some(target) = msg.get(&Name::Contact).and_then(build::uri_of) {
                call.dialog(from).remote_target = target;
            }
        }
        if method == Method::Bye {
            call.phase = Phase::Ending;
            call.bye_from = Some(from);
            call.pending_2xx = None;
        }
        let mut out = build::in_dialog_request(
            call.dialog(to),
            method.clone(),
            via,
            &contact,
            max_forwards - 1,
        );
        for name in RELAYED {
            for h in msg.headers.iter().filter(|h| h.name.is(name)) {
                out.headers.push(h.clone());
            }
        }
        out.set_body(msg.get(&Name::ContentType), msg.body.clone());
        let role = Role::Relay {
            call: id,
            server: key,
            request: Box::new(msg),
            sent: Box::new(out.clone()),
            from,
        };
        self.send_request(to_peer, &out, role, now);
    }

    // ---- responses ----

    fn handle_response(&mut self, msg: Message, now: Instant) {
        let Some(code) = msg.status() else { return };
        let Some(branch) = msg
            .get(&Name::Via)
            .and_then(headers::parse_via)
            .and_then(|v| v.branch)
            .map(str::to_owned)
        else {
            return;
        };
        let Some((cseq, method)) = msg.cseq() else {
            return;
        };
        let key = TxKey::new(&branch, method);
        let sent_invite = match self.roles.get(&key) {
            Some(Role::Invite { call }) => self.calls.get(call).map(|c| &c.b_invite),
            Some(Role::Relay { sent, .. }) => Some(&**sent),
            Some(Role::Placed { call, side }) => {
                self.placed.get(call).and_then(|p| p.leg_invite(*side))
            }
            _ => None,
        };
        let ack = match (code, sent_invite) {
            (300.., Some(invite)) if method == "INVITE" => {
                build::ack_for_failure(invite, &msg).to_bytes()
            }
            _ => Bytes::new(),
        };
        match self.txns.on_response(&key, code, || ack, now) {
            ResponseVerdict::Deliver => {}
            ResponseVerdict::Absorbed => return,
            ResponseVerdict::Stray => {
                debug!(code, branch = %key.branch(), "response matches no transaction");
                return;
            }
        }
        if (200..300).contains(&code)
            && method == "INVITE"
            && self.resend_ack_for_repeated_2xx(&msg, cseq)
        {
            return;
        }
        match self.roles.get(&key) {
            Some(Role::Invite { call }) => {
                let call = *call;
                self.on_b_invite_response(call, key, msg, now);
            }
            Some(Role::Placed { call, side }) => {
                let (call, side) = (*call, *side);
                self.on_placed_response(call, side, key, msg, now);
            }
            Some(Role::Relay { .. }) => {
                if code >= 200 {
                    if let Some(role) = self.roles.remove(&key) {
                        self.on_relay_response(role, msg, now);
                    }
                } else if let Some(Role::Relay {
                    server,
                    request,
                    call,
                    from,
                    ..
                }) = self.roles.get(&key)
                {
                    if code > 100 && request.method() == Some(&Method::Invite) {
                        let transport = self.calls.get(call).map(|c| c.peer(*from).transport);
                        let resp = self.relayed_response(transport, request, &msg);
                        let server = server.clone();
                        self.txns.respond(&server, code, resp.to_bytes(), now);
                    }
                }
            }
            Some(Role::Ping) if code >= 200 => {
                self.roles.remove(&key);
                if self.health.on_answer(code) {
                    info!(code, "trunk is up");
                }
            }
            Some(Role::Fire) if code >= 200 => {
                self.roles.remove(&key);
            }
            Some(Role::Ping | Role::Fire) | None => {}
        }
    }

    /// A repeated 2xx from a leg already acknowledged gets the same ACK again.
    fn resend_ack_for_repeated_2xx(&mut self, msg: &Message, cseq: u32) -> bool {
        let call_id = msg.get(&Name::CallId).unwrap_or_default();
        if let Some((n, side)) = self.find_placed(call_id) {
            return self.resend_placed_ack(n, side);
        }
        let Some((id, leg)) = self.find_call(call_id) else {
            return false;
        };
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        match &call.last_ack {
            Some((to, c, bytes)) if *to == leg && *c == cseq => {
                let transmit = Transmit {
                    peer: call.peer(leg),
                    bytes: bytes.clone(),
                };
                self.out.push_back(transmit);
                true
            }
            _ => false,
        }
    }

    /// A response from one leg rewritten for the request it answers on the other.
    /// `transport` is the requester's, for the Contact slotgate puts in a 2xx.
    fn relayed_response(
        &self,
        transport: Option<Transport>,
        request: &Message,
        resp: &Message,
    ) -> Message {
        let mut out = build::response_to(
            request,
            resp.status().unwrap_or(500),
            resp.reason_phrase(),
            None,
            &self.server,
        );
        if resp.status().is_some_and(|c| c < 300)
            && matches!(request.method(), Some(Method::Invite | Method::Update))
        {
            out.push(
                Name::Contact,
                self.contact(transport.unwrap_or(Transport::Udp)),
            );
        }
        for name in RELAYED {
            for h in resp.headers.iter().filter(|h| h.name.is(name)) {
                out.headers.push(h.clone());
            }
        }
        out.set_body(resp.get(&Name::ContentType), resp.body.clone());
        out
    }

    fn on_b_invite_response(&mut self, id: u64, key: TxKey, msg: Message, now: Instant) {
        let Some(code) = msg.status() else { return };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if code == 100 {
            return;
        }
        if code < 300 && !msg.body.is_empty() {
            if let Some(media) = call.media.as_mut() {
                let answered = SessionDescription::parse(&msg.body)
                    .map_err(crate::media::MediaError::from)
                    .and_then(|sdp| media.trunk_answered(&sdp));
                if let Err(e) = answered {
                    warn!(error = %e, "the trunk's SDP answer cannot be relayed");
                }
            }
        }
        if let Some(to) = msg.get(&Name::To) {
            if headers::parse_name_addr(to).is_some_and(|n| n.tag().is_some()) {
                call.b.remote = to.to_string();
            }
        }
        if let Some(target) = msg.get(&Name::Contact).and_then(build::uri_of) {
            call.b.remote_target = target;
        }
        if code < 200 {
            if !call.cancelled {
                let resp = self.a_response(id, &msg);
                self.answer_a_with(id, code, resp, now);
            }
            return self.send_cancel_b(id, now);
        }
        if code < 300 {
            return self.on_b_answered(id, msg, now);
        }
        if matches!(code, 401 | 407) && self.retry_with_auth(id, &key, &msg, now) {
            return;
        }
        self.roles.remove(&key);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (reason, by) = if call.cancelled {
            ("CANCEL from pbx".to_string(), "pbx")
        } else {
            (
                format!("{code} {} from trunk", msg.reason_phrase()),
                "trunk",
            )
        };
        let (status, resp) = if matches!(code, 401 | 407) {
            // The PBX cannot answer a challenge meant for slotgate's trunk account.
            let tag = self
                .calls
                .get(&id)
                .map(|c| c.a_tag.clone())
                .unwrap_or_default();
            let req = &call.a_invite;
            let mut resp = build::response_to(
                req,
                403,
                "Trunk Authentication Failed",
                Some(&tag),
                &self.server,
            );
            resp.push(
                Name::Reason,
                format!("SIP;cause={code};text=\"trunk authentication failed\""),
            );
            (403, resp)
        } else {
            (code, self.a_response(id, &msg))
        };
        self.answer_a_with(id, status, resp, now);
        self.end_call(id, status, &reason, by, now);
    }

    fn retry_with_auth(&mut self, id: u64, key: &TxKey, msg: &Message, now: Instant) -> bool {
        if self.trunk.username.is_empty() {
            return false;
        }
        let header = if msg.status() == Some(407) {
            Name::ProxyAuthenticate
        } else {
            Name::WwwAuthenticate
        };
        let Some(challenge) = msg
            .all(&header)
            .find_map(|v| v.parse::<digest::Challenge>().ok())
        else {
            warn!("trunk challenge without a usable Digest offer");
            return false;
        };
        let cnonce = self.ids.cnonce();
        let via = {
            let Some(call) = self.calls.get(&id) else {
                return false;
            };
            if call.auth_tries >= 2 || call.cancelled {
                return false;
            }
            call.b_peer.transport
        };
        let via = self.via(via);
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let mut invite = call.b_invite.clone();
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
        call.auth_tries += 1;
        call.b.local_cseq += 1;
        invite.set(Name::Via, via);
        invite.set(Name::CSeq, format!("{} INVITE", call.b.local_cseq));
        let auth_name = if msg.status() == Some(407) {
            Name::ProxyAuthorization
        } else {
            Name::Authorization
        };
        invite.set(auth_name, creds.to_string());
        if let Some(entry) = call.ack_map.iter_mut().find(|(leg, ..)| *leg == Leg::A) {
            entry.2 = call.b.local_cseq;
        }
        call.b_invite = invite.clone();
        let peer = call.b_peer;
        self.roles.remove(key);
        let new_key = self.send_request(peer, &invite, Role::Invite { call: id }, now);
        if let Some(call) = self.calls.get_mut(&id) {
            call.b_tx = new_key;
        }
        true
    }

    fn on_b_answered(&mut self, id: u64, msg: Message, now: Instant) {
        let via = self.via(self.trunk_peer().transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.b_answered {
            return;
        }
        call.b_answered = true;
        let mut routes: Vec<String> = msg.all(&Name::RecordRoute).map(str::to_owned).collect();
        routes.reverse();
        call.b.route_set = routes;
        if call.b.route_set.is_empty() {
            if let Some(p) = self.trunk.outbound_proxy {
                call.b.route_set = vec![format!("<sip:{p};lr>")];
            }
        }
        if call.cancelled {
            // The trunk answered before it saw the CANCEL: accept and hang up.
            let cseq = call.b.local_cseq;
            let ack = build::ack_for_2xx(&call.b, cseq, via, None).to_bytes();
            let peer = call.b_peer;
            self.out.push_back(Transmit { peer, bytes: ack });
            self.send_bye(id, Leg::B, now);
            self.answer_a(id, 487, "Request Terminated", now);
            return self.end_call(id, 487, "CANCEL from pbx", "pbx", now);
        }
        call.phase = Phase::Confirmed;
        call.answered = Some(now);
        let resp = self.a_response(id, &msg).to_bytes();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let a_tx = call.a_tx.clone();
        let a_cseq = call.a_invite.cseq().map_or(1, |(n, _)| n);
        if call.a_peer.transport == Transport::Udp {
            call.pending_2xx = Some(Pending2xx {
                leg: Leg::A,
                cseq: a_cseq,
                bytes: resp.clone(),
                interval: T1,
                next: now + T1,
                give_up: now + 64 * T1,
            });
            self.timers
                .push(Reverse((now + T1, id, CallTimer::Resend2xx)));
        }
        self.txns.respond(&a_tx, 200, resp, now);
    }

    /// The trunk's response to the B-leg INVITE, rewritten for the PBX.
    fn a_response(&self, id: u64, resp: &Message) -> Message {
        let Some(call) = self.calls.get(&id) else {
            return Message::response(500, "Server Internal Error");
        };
        let code = resp.status().unwrap_or(500);
        let mut out = build::response_to(
            &call.a_invite,
            code,
            resp.reason_phrase(),
            Some(&call.a_tag),
            &self.server,
        );
        if code < 300 {
            out.push(Name::Contact, self.contact(call.a_peer.transport));
            out.push(Name::Allow, ALLOW);
        } else if code < 400 {
            out.copy_from(resp, &Name::Contact);
        }
        for name in CARRIED.iter().chain(RELAYED.iter()) {
            for h in resp.headers.iter().filter(|h| h.name.is(name)) {
                out.headers.push(h.clone());
            }
        }
        match &call.media {
            // The PBX keeps talking to slotgate's media address.
            Some(media) if !resp.body.is_empty() => out.set_body(
                Some("application/sdp"),
                Bytes::from(media.answer().to_string()),
            ),
            _ => out.set_body(resp.get(&Name::ContentType), resp.body.clone()),
        }
        out
    }

    fn answer_a_with(&mut self, id: u64, code: u16, resp: Message, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let a_tx = call.a_tx.clone();
        self.txns.respond(&a_tx, code, resp.to_bytes(), now);
    }

    fn answer_a(&mut self, id: u64, code: u16, reason: &str, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let resp = build::response_to(
            &call.a_invite,
            code,
            reason,
            Some(&call.a_tag),
            &self.server,
        );
        self.answer_a_with(id, code, resp, now);
    }

    fn on_relay_response(&mut self, role: Role, msg: Message, now: Instant) {
        let Role::Relay {
            call: id,
            server,
            request,
            sent,
            from,
        } = role
        else {
            return;
        };
        let Some(code) = msg.status() else { return };
        let transport = self.calls.get(&id).map(|c| c.peer(from).transport);
        let resp = self.relayed_response(transport, &request, &msg);
        let bytes = resp.to_bytes();
        let is_invite = request.method() == Some(&Method::Invite);
        let is_bye = request.method() == Some(&Method::Bye);
        if let Some(call) = self.calls.get_mut(&id) {
            if is_invite && (200..300).contains(&code) {
                let req_cseq = request.cseq().map_or(0, |(n, _)| n);
                let sent_cseq = sent.cseq().map_or(0, |(n, _)| n);
                if let Some(target) = msg.get(&Name::Contact).and_then(build::uri_of) {
                    call.dialog(from.other()).remote_target = target;
                }
                call.ack_map.retain(|(leg, ..)| *leg != from);
                call.ack_map.push((from, req_cseq, sent_cseq));
                if call.peer(from).transport == Transport::Udp {
                    call.pending_2xx = Some(Pending2xx {
                        leg: from,
                        cseq: req_cseq,
                        bytes: bytes.clone(),
                        interval: T1,
                        next: now + T1,
                        give_up: now + 64 * T1,
                    });
                    self.timers
                        .push(Reverse((now + T1, id, CallTimer::Resend2xx)));
                }
            }
        }
        self.txns.respond(&server, code, bytes, now);
        if is_bye {
            let reason = format!("BYE from {}", from.party());
            self.end_call(id, 200, &reason, from.party(), now);
        }
    }

    fn on_client_timeout(&mut self, key: TxKey, now: Instant) {
        match self.roles.remove(&key) {
            Some(Role::Invite { call }) => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.cancelled {
                    self.answer_a(call, 487, "Request Terminated", now);
                    return self.end_call(call, 487, "CANCEL from pbx", "pbx", now);
                }
                warn!("trunk did not answer an INVITE");
                self.answer_a(call, 408, "Request Timeout", now);
                self.end_call(call, 408, "no response from trunk", "slotgate", now);
            }
            Some(Role::Relay {
                call,
                server,
                request,
                from,
                ..
            }) => {
                let tag = self.ids.tag();
                let resp =
                    build::response_to(&request, 408, "Request Timeout", Some(&tag), &self.server);
                self.txns.respond(&server, 408, resp.to_bytes(), now);
                if request.method() == Some(&Method::Bye) {
                    let reason = format!("BYE from {} (unanswered)", from.party());
                    self.end_call(call, 200, &reason, from.party(), now);
                }
            }
            Some(Role::Placed { call, side }) => self.on_placed_timeout(call, side, now),
            Some(Role::Ping) => {
                if self.health.on_timeout() {
                    warn!(trunk = %self.trunk.address, "trunk is down: OPTIONS unanswered");
                }
            }
            Some(Role::Fire) | None => {}
        }
    }

    // ---- timers and teardown ----

    fn resend_2xx(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(p) = call.pending_2xx.as_mut() else {
            return;
        };
        if p.next > now {
            return;
        }
        if now >= p.give_up {
            let leg = p.leg;
            call.pending_2xx = None;
            warn!(
                party = leg.party(),
                "2xx never acknowledged; ending the call"
            );
            self.send_bye(id, Leg::A, now);
            self.send_bye(id, Leg::B, now);
            let reason = format!("no ACK from {}", leg.party());
            return self.end_call(id, 200, &reason, "slotgate", now);
        }
        p.interval = (p.interval * 2).min(T2);
        p.next = now + p.interval;
        let (leg, bytes, next) = (p.leg, p.bytes.clone(), p.next);
        let peer = call.peer(leg);
        self.out.push_back(Transmit { peer, bytes });
        self.timers.push(Reverse((next, id, CallTimer::Resend2xx)));
    }

    fn send_bye(&mut self, id: u64, leg: Leg, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer = call.peer(leg);
        let via = self.via(peer.transport);
        let contact = self.contact(peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut bye = build::in_dialog_request(call.dialog(leg), Method::Bye, via, &contact, 70);
        bye.push(
            Name::Other("Reason".into()),
            "SIP;cause=200;text=\"Call ended by slotgate\"",
        );
        self.send_request(peer, &bye, Role::Fire, now);
    }

    fn end_call(&mut self, id: u64, status: u16, reason: &str, ended_by: &str, now: Instant) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.by_a_call_id.remove(&call.a.call_id);
        self.by_b_call_id.remove(&call.b.call_id);
        if matches!(self.roles.get(&call.b_tx), Some(Role::Invite { .. })) {
            self.roles.remove(&call.b_tx);
        }
        debug!(a_call_id = %call.a.call_id, status, reason, "call ended");
        if let (Some(c), Some(applied)) = (self.caller_id.as_mut(), &call.caller_id) {
            c.record_outcome(applied, call.answered.is_some());
        }
        let applied = call.caller_id.as_ref();
        let record = CallRecord {
            id: call.record_id,
            a_call_id: call.a.call_id,
            b_call_id: Some(call.b.call_id),
            source: call.source.to_string(),
            from_uri: call.from_uri,
            to_uri: call.to_uri,
            request_uri: call.request_uri,
            started_at: self.wall(call.started),
            answered_at: call.answered.map(|t| self.wall(t)),
            ended_at: self.wall(now),
            final_status: i32::from(status),
            reason: reason.to_string(),
            ended_by: Some(ended_by.to_string()),
            gate_decision: call.gate_decision.map(str::to_string),
            consent_request_id: call.consent_request_id,
            caller_id_number: applied
                .and_then(|a| a.selection.number.as_ref())
                .map(|n| n.as_str().to_string()),
            caller_id_rule: applied.map(|a| a.selection.rule.as_str().to_string()),
            caller_id_why: applied.map(|a| a.selection.why.clone()),
            identity_origid: applied.and_then(|a| a.origid.clone()),
        };
        self.records.push_back(record);
    }

    fn send_ping(&mut self, now: Instant) {
        let peer = self.trunk_peer();
        let via = self.via(peer.transport);
        let tag = self.ids.tag();
        let call_id = self.ids.call_id();
        let target = format!("sip:{}", self.trunk.domain);
        let mut req = Message::request(Method::Options, target.clone());
        req.push(Name::Via, via);
        req.push(Name::MaxForwards, "70");
        if let Some(p) = self.trunk.outbound_proxy {
            req.push(Name::Route, format!("<sip:{p};lr>"));
        }
        req.push(
            Name::From,
            format!("<sip:slotgate@{}>;tag={tag}", self.advertised),
        );
        req.push(Name::To, format!("<{target}>"));
        req.push(Name::CallId, call_id);
        req.push(Name::CSeq, "1 OPTIONS");
        req.push(Name::UserAgent, self.server.clone());
        self.send_request(peer, &req, Role::Ping, now);
        self.health.ping_sent(now);
    }
}

/// The server transaction key of a request. Requests without an RFC 3261
/// branch (RFC 2543 peers) are matched on Call-ID, CSeq number and From tag,
/// which an RFC 2543 ACK or CANCEL repeats.
fn server_key(msg: &Message, method: &Method) -> Option<TxKey> {
    let via = msg.get(&Name::Via).and_then(headers::parse_via)?;
    let sent_by = match via.port {
        Some(port) => format!("{}:{port}", via.host),
        None => via.host.to_string(),
    };
    let branch = match via.branch {
        Some(b) if b.starts_with("z9hG4bK") => b.to_string(),
        other => {
            let cseq = msg.cseq().map_or(0, |(n, _)| n);
            let from_tag = msg
                .get(&Name::From)
                .and_then(headers::parse_name_addr)
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "2543;{};{};{cseq};{from_tag}",
                other.unwrap_or(""),
                msg.get(&Name::CallId).unwrap_or_default()
            )
        }
    };
    Some(TxKey::server(&branch, method.as_str(), &sent_by))
}

fn pbx_auth(config: &PbxConfig) -> Option<PbxAuth> {
    if !config.auth_enabled {
        return None;
    }
    let issuer = NonceIssuer::with_random_secret(config.auth_realm.clone()).ok()?;
    Some(PbxAuth {
        issuer,
        counter: NonceCounter::new(100_000),
        users: config
            .auth_users
            .iter()
            .map(|u| (u.username.clone(), u.password.clone()))
            .collect(),
        algorithm: if config.auth_sha256 {
            Algorithm::Sha256
        } else {
            Algorithm::Md5
        },
    })
}

/// Adds what RFC 3261 asks an error response to carry.
fn decorate_error(resp: &mut Message, code: u16, req: &Message) {
    match code {
        405 | 501 => resp.push(Name::Allow, ALLOW),
        415 | 406 => resp.push(Name::Accept, "application/sdp"),
        420 => {
            if let Some(list) = unsupported_requirements(req) {
                resp.push(Name::Unsupported, list);
            }
        }
        _ => {}
    }
}

/// Option tags in `Require` that slotgate does not support (it supports none
/// that must be required of it).
fn unsupported_requirements(req: &Message) -> Option<String> {
    let tags: Vec<&str> = req
        .all(&Name::Require)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    (!tags.is_empty()).then(|| tags.join(", "))
}

fn content_type_is_sdp(msg: &Message) -> bool {
    msg.get(&Name::ContentType).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

fn accepts_sdp(msg: &Message) -> bool {
    let mut values = msg.all(&Name::Accept).peekable();
    if values.peek().is_none() {
        return true;
    }
    values.flat_map(|v| v.split(',')).any(|t| {
        let t = t
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        t == "application/sdp" || t == "application/*" || t == "*/*"
    })
}

fn uri_of_header(msg: &Message, name: &Name) -> String {
    msg.get(name).and_then(build::uri_of).unwrap_or_default()
}

/// The reason phrase slotgate sends with a gate's final status.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Call Refused",
    }
}
