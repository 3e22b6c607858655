//! RFC 3261 §17 transactions (with the RFC 6026 "Accepted" states), as a
//! sans-I/O state machine.
//!
//! The layer absorbs what a transaction user must never see: retransmitted
//! requests (answered again from the stored response), the ACK to a non-2xx
//! final response, retransmitted final responses. It retransmits over UDP on
//! its own timers and reports timeouts. It never reads a clock or touches a
//! socket: callers pass `now` in and collect `Transmit`s out, so the timers of
//! thousands of calls can be driven in a test in microseconds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

// Keyed by network-chosen strings (branches, Call-IDs): a keyed hash that
// resists flooding, but much cheaper than SipHash on the per-message path.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The other end of a hop: where to send, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Peer {
    fn reliable(&self) -> bool {
        self.transport == Transport::Tcp
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// Identifies a transaction (RFC 3261 §17.2.3): the branch, the method it
/// belongs to (ACK belongs to INVITE; CANCEL is its own transaction on the
/// same branch) and, for server transactions, the top Via's sent-by, since
/// two clients may pick the same branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey(
    // "METHOD sent-by branch" in one allocation: thousands of lingering
    // transactions each keep two copies of their key.
    Box<str>,
);

impl TxKey {
    /// A client transaction's key: slotgate chose the branch, so it is unique.
    pub fn new(branch: &str, method: &str) -> TxKey {
        TxKey::server(branch, method, "")
    }

    pub fn server(branch: &str, method: &str, sent_by: &str) -> TxKey {
        let method = if method == "ACK" { "INVITE" } else { method };
        let mut key = String::with_capacity(method.len() + sent_by.len() + branch.len() + 2);
        key.push_str(method);
        key.push(' ');
        key.push_str(sent_by);
        key.push(' ');
        key.push_str(branch);
        TxKey(key.into_boxed_str())
    }

    fn parts(&self) -> (&str, &str, &str) {
        let mut it = self.0.splitn(3, ' ');
        let method = it.next().unwrap_or("");
        let sent_by = it.next().unwrap_or("");
        (method, sent_by, it.next().unwrap_or(""))
    }

    pub fn method(&self) -> &str {
        self.parts().0
    }

    pub fn branch(&self) -> &str {
        self.parts().2
    }

    /// The key of the transaction with the same branch and sent-by for
    /// another method (a CANCEL's INVITE).
    pub fn for_method(&self, method: &str) -> TxKey {
        let (_, sent_by, branch) = self.parts();
        TxKey::server(branch, method, sent_by)
    }
}

/// What to do with an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// A new transaction: hand the request to the transaction user.
    New,
    /// A retransmission, answered from the stored response if there is one.
    Retransmission,
    /// An ACK for a non-2xx final response: consumed here.
    AckAbsorbed,
    /// An ACK outside any transaction (the ACK for a 2xx): for the dialog.
    AckForDialog,
}

/// What to do with an incoming response.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    Deliver,
    Absorbed,
    /// No transaction sent the request it answers: discard it.
    Stray,
}

/// Reported by `handle_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A client transaction got no final response (Timer B or F).
    ClientTimeout(TxKey),
    /// A non-2xx final response sent by a server INVITE transaction was
    /// never acknowledged (Timer H).
    AckMissing(TxKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client: Calling / Trying. Server: Proceeding before any final.
    Initial,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Retransmit (A, E, G).
    Retransmit,
    /// Give up waiting for a final response (B, F) or for the ACK (H).
    Timeout,
    /// Linger to absorb retransmissions, then forget (D, I, J, K, L, M).
    Linger,
}

#[derive(Debug)]
struct Tx {
    key: TxKey,
    client: bool,
    invite: bool,
    state: State,
    peer: Peer,
    /// Client: the request. Server: the last response sent.
    stored: Option<Bytes>,
    /// Client INVITE: the ACK sent for a non-2xx final response.
    ack: Option<Bytes>,
    interval: Duration,
    generation: u32,
}

/// All transactions of one SIP element.
#[derive(Debug, Default)]
pub struct Transactions {
    next_id: u64,
    by_key_server: HashMap<TxKey, u64>,
    by_key_client: HashMap<TxKey, u64>,
    txs: HashMap<u64, Tx>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerKind, u32)>>,
    out: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
}

impl Transactions {
    pub fn new() -> Transactions {
        Transactions::default()
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The next instant `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    fn insert(&mut self, tx: Tx) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if tx.client {
            self.by_key_client.insert(tx.key.clone(), id);
        } else {
            self.by_key_server.insert(tx.key.clone(), id);
        }
        self.txs.insert(id, tx);
        id
    }

    fn remove(&mut self, id: u64) {
        if let Some(tx) = self.txs.remove(&id) {
            if tx.client {
                self.by_key_client.remove(&tx.key);
            } else {
                self.by_key_server.remove(&tx.key);
            }
        }
        self.prune();
    }

    /// Drops dead timers from the top of the heap so `poll_timeout` does not
    /// wake the caller for transactions that are gone.
    fn prune(&mut self) {
        while let Some(Reverse((_, id, _, generation))) = self.timers.peek() {
            match self.txs.get(id) {
                Some(tx) if tx.generation == *generation => break,
                _ => {
                    self.timers.pop();
                }
            }
        }
    }

    fn arm(&mut self, id: u64, at: Instant, kind: TimerKind) {
        if let Some(tx) = self.txs.get(&id) {
            self.timers.push(Reverse((at, id, kind, tx.generation)));
        }
    }

    /// Moves a transaction to a new state, invalidating its pending timers.
    fn enter(&mut self, id: u64, state: State) {
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.state = state;
            tx.generation = tx.generation.wrapping_add(1);
            // Lingering transactions only absorb retransmissions; what they no
            // longer resend is freed, since at thousands of calls per second
            // 32 s of lingering state is most of the process's memory.
            let keeps_message = match state {
                State::Completed => !tx.client,
                State::Accepted | State::Confirmed => false,
                State::Initial | State::Proceeding => true,
            };
            if !keeps_message {
                tx.stored = None;
            }
        }
    }

    /// Linger for `d` (zero on reliable transports removes at once).
    fn linger(&mut self, id: u64, now: Instant, d: Duration) {
        let reliable = self.txs.get(&id).is_some_and(|t| t.peer.reliable());
        if reliable || d.is_zero() {
            self.remove(id);
        } else {
            self.arm(id, now + d, TimerKind::Linger);
        }
    }

    // ---- server side ----

    /// Classifies an incoming request. `key` uses the request's top Via branch.
    pub fn on_request(
        &mut self,
        key: TxKey,
        is_ack: bool,
        peer: Peer,
        now: Instant,
    ) -> RequestVerdict {
        if is_ack {
            let Some(&id) = self.by_key_server.get(&key) else {
                return RequestVerdict::AckForDialog;
            };
            let state = self.txs.get(&id).map(|t| t.state);
            return match state {
                Some(State::Completed) => {
                    self.enter(id, State::Confirmed);
                    self.linger(id, now, T4);
                    RequestVerdict::AckAbsorbed
                }
                Some(State::Confirmed) => RequestVerdict::AckAbsorbed,
                _ => RequestVerdict::AckForDialog,
            };
        }
        if let Some(&id) = self.by_key_server.get(&key) {
            if let Some(tx) = self.txs.get(&id) {
                if let Some(resp) = tx.stored.clone() {
                    self.out.push_back(Transmit {
                        peer: tx.peer,
                        bytes: resp,
                    });
                }
            }
            return RequestVerdict::Retransmission;
        }
        let invite = key.method() == "INVITE";
        self.insert(Tx {
            key,
            client: false,
            invite,
            state: State::Initial,
            peer,
            stored: None,
            ack: None,
            interval: T1,
            generation: 0,
        });
        RequestVerdict::New
    }

    /// Whether a server transaction exists and has not sent a final response.
    pub fn server_pending(&self, key: &TxKey) -> bool {
        self.by_key_server
            .get(key)
            .and_then(|id| self.txs.get(id))
            .is_some_and(|t| matches!(t.state, State::Initial | State::Proceeding))
    }

    /// Sends a response within a server transaction. Returns false when the
    /// transaction is gone or already answered finally.
    pub fn respond(&mut self, key: &TxKey, code: u16, bytes: Bytes, now: Instant) -> bool {
        let Some(&id) = self.by_key_server.get(key) else {
            return false;
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return false;
        };
        if !matches!(tx.state, State::Initial | State::Proceeding) {
            return false;
        }
        tx.stored = Some(bytes.clone());
        let peer = tx.peer;
        let invite = tx.invite;
        self.out.push_back(Transmit { peer, bytes });
        if code < 200 {
            if let Some(tx) = self.txs.get_mut(&id) {
                tx.state = State::Proceeding;
            }
            return true;
        }
        if !invite {
            self.enter(id, State::Completed);
            self.linger(id, now, 64 * T1);
        } else if code < 300 {
            // RFC 6026: keep absorbing INVITE retransmissions; the 2xx itself
            // is retransmitted by the dialog layer until the end-to-end ACK.
            self.enter(id, State::Accepted);
            self.arm(id, now + 64 * T1, TimerKind::Linger);
        } else {
            self.enter(id, State::Completed);
            if !peer.reliable() {
                self.arm(id, now + T1, TimerKind::Retransmit);
            }
            self.arm(id, now + 64 * T1, TimerKind::Timeout);
        }
        true
    }

    // ---- client side ----

    /// Starts a client transaction and sends its request.
    pub fn send_request(&mut self, key: TxKey, peer: Peer, bytes: Bytes, now: Instant) {
        let invite = key.method() == "INVITE";
        if let Some(&old) = self.by_key_client.get(&key) {
            self.remove(old);
        }
        self.out.push_back(Transmit {
            peer,
            bytes: bytes.clone(),
        });
        let id = self.insert(Tx {
            key,
            client: true,
            invite,
            state: State::Initial,
            peer,
            stored: Some(bytes),
            ack: None,
            interval: T1,
            generation: 0,
        });
        if !peer.reliable() {
            self.arm(id, now + T1, TimerKind::Retransmit);
        }
        self.arm(id, now + 64 * T1, TimerKind::Timeout);
    }

    /// Whether a client INVITE transaction has received a provisional response.
    pub fn client_proceeding(&self, key: &TxKey) -> bool {
        self.by_key_client
            .get(key)
            .and_then(|id| self.txs.get(id))
            .is_some_and(|t| t.state == State::Proceeding)
    }

    /// Classifies a response. For a non-2xx final response to an INVITE,
    /// `make_ack` builds the hop-by-hop ACK, which is sent here.
    pub fn on_response(
        &mut self,
        key: &TxKey,
        code: u16,
        make_ack: impl FnOnce() -> Bytes,
        now: Instant,
    ) -> ResponseVerdict {
        let Some(&id) = self.by_key_client.get(key) else {
            return ResponseVerdict::Stray;
        };
        let Some(tx) = self.txs.get(&id) else {
            return ResponseVerdict::Stray;
        };
        let (state, invite, peer) = (tx.state, tx.invite, tx.peer);
        match (state, code) {
            (State::Initial | State::Proceeding, 100..=199) => {
                if state == State::Initial {
                    if invite {
                        // Timer B stops at the first provisional (RFC 3261 §17.1.1.2).
                        self.enter(id, State::Proceeding);
                    } else if let Some(tx) = self.txs.get_mut(&id) {
                        // Non-INVITE keeps Timer F and retransmits at T2.
                        tx.state = State::Proceeding;
                    }
                }
                ResponseVerdict::Deliver
            }
            (State::Initial | State::Proceeding, 200..=299) if invite => {
                self.enter(id, State::Accepted);
                self.arm(id, now + 64 * T1, TimerKind::Linger);
                ResponseVerdict::Deliver
            }
            (State::Initial | State::Proceeding, _) if invite => {
                let ack = make_ack();
                self.out.push_back(Transmit {
                    peer,
                    bytes: ack.clone(),
                });
                if let Some(tx) = self.txs.get_mut(&id) {
                    tx.ack = Some(ack);
                }
                self.enter(id, State::Completed);
                self.linger(id, now, 32 * T1 * 2);
                ResponseVerdict::Deliver
            }
            (State::Initial | State::Proceeding, _) => {
                self.enter(id, State::Completed);
                self.linger(id, now, T4);
                ResponseVerdict::Deliver
            }
            (State::Accepted, 200..=299) => ResponseVerdict::Deliver,
            (State::Completed, 300..=699) if invite => {
                if let Some(ack) = self.txs.get(&id).and_then(|t| t.ack.clone()) {
                    self.out.push_back(Transmit { peer, bytes: ack });
                }
                ResponseVerdict::Absorbed
            }
            _ => ResponseVerdict::Absorbed,
        }
    }

    /// Forgets a client transaction whose outcome no longer matters.
    pub fn abandon_client(&mut self, key: &TxKey) {
        if let Some(&id) = self.by_key_client.get(key) {
            self.remove(id);
        }
    }

    // ---- timers ----

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, kind, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.generation != generation {
                continue;
            }
            match kind {
                TimerKind::Retransmit => {
                    let resend = match (tx.client, tx.state) {
                        (true, State::Initial) => true,
                        (true, State::Proceeding) => !tx.invite,
                        (false, State::Completed) => true,
                        _ => false,
                    };
                    if !resend {
                        continue;
                    }
                    if let Some(bytes) = tx.stored.clone() {
                        self.out.push_back(Transmit {
                            peer: tx.peer,
                            bytes,
                        });
                    }
                    let cap = if tx.client && tx.invite {
                        Duration::MAX
                    } else {
                        T2
                    };
                    tx.interval = if tx.client && tx.state == State::Proceeding {
                        T2
                    } else {
                        (tx.interval * 2).min(cap)
                    };
                    let next = now + tx.interval;
                    self.timers.push(Reverse((next, id, kind, generation)));
                }
                TimerKind::Timeout => {
                    let key = tx.key.clone();
                    let event = if tx.client {
                        TxEvent::ClientTimeout(key)
                    } else {
                        TxEvent::AckMissing(key)
                    };
                    self.events.push_back(event);
                    self.remove(id);
                }
                TimerKind::Linger => self.remove(id),
            }
        }
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    fn drain(t: &mut Transactions) -> Vec<Bytes> {
        std::iter::from_fn(|| t.poll_transmit())
            .map(|x| x.bytes)
            .collect()
    }

    #[test]
    fn client_invite_retransmits_with_doubling_then_times_out() {
        let mut t = Transactions::new();
        let start = Instant::now();
        let key = TxKey::new("z9hG4bK1", "INVITE");
        t.send_request(key.clone(), udp(), Bytes::from_static(b"INVITE"), start);
        assert_eq!(drain(&mut t).len(), 1);
        let mut sends = Vec::new();
        let mut now = start;
        while let Some(at) = t.poll_timeout() {
            now = at;
            t.handle_timeout(now);
            if !drain(&mut t).is_empty() {
                sends.push((now - start).as_millis());
            }
        }
        // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s.
        assert_eq!(sends, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!((now - start), 64 * T1);
        assert_eq!(t.poll_event(), Some(TxEvent::ClientTimeout(key)));
        assert!(t.is_empty());
    }

    #[test]
    fn provisional_stops_invite_retransmission_and_timer_b() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let key = TxKey::new("z9hG4bK2", "INVITE");
        t.send_request(key.clone(), udp(), Bytes::from_static(b"INVITE"), now);
        drain(&mut t);
        assert_eq!(
            t.on_response(&key, 180, Bytes::new, now),
            ResponseVerdict::Deliver
        );
        t.handle_timeout(now + Duration::from_secs(120));
        assert!(drain(&mut t).is_empty());
        assert_eq!(t.poll_event(), None);
        assert!(t.client_proceeding(&key));
    }

    #[test]
    fn non_2xx_is_acked_once_and_retransmissions_reack() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let key = TxKey::new("z9hG4bK3", "INVITE");
        t.send_request(key.clone(), udp(), Bytes::from_static(b"INVITE"), now);
        drain(&mut t);
        let ack = || Bytes::from_static(b"ACK");
        assert_eq!(t.on_response(&key, 486, ack, now), ResponseVerdict::Deliver);
        assert_eq!(drain(&mut t), vec![Bytes::from_static(b"ACK")]);
        assert_eq!(
            t.on_response(&key, 486, ack, now),
            ResponseVerdict::Absorbed
        );
        assert_eq!(drain(&mut t), vec![Bytes::from_static(b"ACK")]);
        t.handle_timeout(now + Duration::from_secs(33));
        assert!(t.is_empty());
    }

    #[test]
    fn server_invite_resends_final_until_ack_then_absorbs_ack() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let key = TxKey::new("z9hG4bK4", "INVITE");
        assert_eq!(
            t.on_request(key.clone(), false, udp(), now),
            RequestVerdict::New
        );
        assert_eq!(
            t.on_request(key.clone(), false, udp(), now),
            RequestVerdict::Retransmission
        );
        assert!(t.respond(&key, 486, Bytes::from_static(b"486"), now));
        assert_eq!(drain(&mut t).len(), 1);
        t.handle_timeout(now + T1);
        assert_eq!(drain(&mut t).len(), 1, "Timer G resend");
        assert_eq!(
            t.on_request(key.clone(), false, udp(), now + T1),
            RequestVerdict::Retransmission
        );
        assert_eq!(drain(&mut t), vec![Bytes::from_static(b"486")]);
        assert_eq!(
            t.on_request(key.clone(), true, udp(), now + T1),
            RequestVerdict::AckAbsorbed
        );
        t.handle_timeout(now + Duration::from_secs(10));
        assert!(drain(&mut t).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn server_invite_without_ack_reports_it() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let key = TxKey::new("z9hG4bK5", "INVITE");
        t.on_request(key.clone(), false, udp(), now);
        t.respond(&key, 503, Bytes::from_static(b"503"), now);
        t.handle_timeout(now + 64 * T1);
        assert_eq!(t.poll_event(), Some(TxEvent::AckMissing(key)));
    }

    #[test]
    fn ack_for_2xx_goes_to_the_dialog() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let key = TxKey::new("z9hG4bK6", "INVITE");
        t.on_request(key.clone(), false, udp(), now);
        t.respond(&key, 200, Bytes::from_static(b"200"), now);
        assert_eq!(
            t.on_request(TxKey::new("z9hG4bK7", "ACK"), true, udp(), now),
            RequestVerdict::AckForDialog
        );
        // INVITE retransmissions after the 2xx are absorbed (RFC 6026).
        assert_eq!(
            t.on_request(key, false, udp(), now),
            RequestVerdict::Retransmission
        );
    }

    #[test]
    fn tcp_transactions_do_not_retransmit() {
        let mut t = Transactions::new();
        let now = Instant::now();
        let tcp = Peer {
            transport: Transport::Tcp,
            addr: "127.0.0.1:5060".parse().unwrap(),
        };
        let key = TxKey::new("z9hG4bK8", "BYE");
        t.send_request(key.clone(), tcp, Bytes::from_static(b"BYE"), now);
        drain(&mut t);
        t.handle_timeout(now + Duration::from_secs(10));
        assert!(drain(&mut t).is_empty());
        assert_eq!(
            t.on_response(&key, 200, Bytes::new, now),
            ResponseVerdict::Deliver
        );
        assert!(t.is_empty());
    }
}
