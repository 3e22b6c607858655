//! The media engine: binds each call's UDP sockets and runs the call's
//! announcement and relay on a runtime of its own. Calls slotgate places
//! itself use the same engine through [`super::bridge`].
//!
//! The SIP core is a single-threaded loop; a burst of RTP on that loop
//! would delay signalling. So media has its own worker threads, and what the
//! SIP side calls is cheap and never waits: binding a socket pair is one
//! system call each, and everything else is a message to the call's task.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};

use super::amd::AmdError;
use super::announcer::{Announcer, StreamIds};
use super::config::MediaConfig;
use super::ports::{bind_pair, PortError, PortLease, PortPool, SharedPool, SocketPair};
use super::relay::{Leg, LegFormat, Relay, RelayCounters, Side};
use super::sdp::{Codec, Direction, LocalDescription, SdpError, SessionDescription};

/// Largest datagram relayed; RTP of G.711 is 172 bytes, RTCP a few hundred.
pub(super) const DATAGRAM_BUFFER: usize = 2048;

/// Why media for a call could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("unusable SDP: {0}")]
    Sdp(#[from] SdpError),
    #[error("cannot start the media threads: {0}")]
    Runtime(std::io::Error),
    #[error("the trunk was answered before slotgate offered it media")]
    NoTrunkOffer,
    #[error("the media engine has stopped")]
    Stopped,
    #[error("the {0:?} leg has not answered: its SDP answer is needed first")]
    NotAnswered(Side),
    #[error("answering-machine detection was already started for this call")]
    DetectionStarted,
    #[error("the legs are bridged: nothing can be played to one of them now")]
    Bridged,
    #[error(transparent)]
    Amd(#[from] AmdError),
}

/// What a call's media has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets of the announcement played to a held PBX.
    pub announcement_packets: u64,
    /// Packets of messages played to a leg of a placed call.
    pub played_packets: u64,
    /// Audio packets from the customer that answering-machine detection read.
    pub detector_packets: u64,
    pub relay: RelayCounters,
}

/// Owns the media threads and the port pool.
pub struct MediaEngine {
    pub(super) shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

/// What every call needs from the engine.
pub(super) struct Shared {
    pub(super) bind: IpAddr,
    pub(super) advertised: IpAddr,
    pub(super) pool: SharedPool,
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
    pub(super) handle: Handle,
}

impl MediaEngine {
    /// Starts the media threads (`config.threads`, or one per core).
    pub fn start(config: &MediaConfig) -> Result<MediaEngine, MediaError> {
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("media")
            .enable_io()
            .enable_time()
            .build()
            .map_err(MediaError::Runtime)?;
        let shared = Shared {
            bind: config.bind_address,
            advertised: config.advertised_address,
            pool: Arc::new(Mutex::new(PortPool::new(config.port_min, config.port_max))),
            pcmu: config.announcement.pcmu().into(),
            pcma: config.announcement.pcma().into(),
            handle: runtime.handle().clone(),
        };
        Ok(MediaEngine {
            shared: Arc::new(shared),
            runtime: Some(runtime),
        })
    }

    /// Answers the PBX's offer: binds the PBX-side ports and starts the
    /// announcement toward the PBX in the law it prefers. The SDP answer
    /// (`CallMedia::answer`) goes in the 183 and, unchanged, in the 200.
    pub fn open_early_media(
        &self,
        pbx_offer: &SessionDescription,
    ) -> Result<CallMedia, MediaError> {
        let (codec, payload_type) = pbx_offer.preferred_codec().ok_or(SdpError::NoCommonCodec)?;
        let pair = bind_pair(&self.shared.pool, self.shared.bind)?;
        let port = pair.lease.port();
        let answer = LocalDescription {
            session_id: u64::from(rand::random::<u32>()),
            version: 1,
            address: self.shared.advertised,
            port,
        }
        .answer(pbx_offer)?;
        let payload = match codec {
            Codec::Pcmu => self.shared.pcmu.clone(),
            Codec::Pcma => self.shared.pcma.clone(),
        };
        // The PBX said it would not listen (on hold, or inactive): nothing
        // to play, but its audio may still come and be relayed later.
        let announcer = matches!(
            pbx_offer.direction,
            Direction::SendRecv | Direction::RecvOnly
        )
        .then(|| Announcer::new(payload, payload_type, StreamIds::random(), Instant::now()));
        let pbx = Leg::new(
            SocketAddr::new(pbx_offer.address, pbx_offer.port),
            LegFormat {
                codec,
                payload_type,
                telephone_event: pbx_offer.telephone_event,
            },
        );
        let (commands, receiver) = mpsc::unbounded_channel();
        self.shared
            .handle
            .spawn(run_call(pair, pbx, announcer, receiver));
        Ok(CallMedia {
            answer,
            pbx_port: port,
            trunk_offer: None,
            commands,
            shared: self.shared.clone(),
        })
    }

    /// RTP ports free for new calls (each call uses two: PBX and trunk).
    pub fn free_ports(&self) -> usize {
        self.shared
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free_count()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        // Never blocks, so it is safe inside the SIP side's runtime; the
        // calls' tasks are dropped, which closes their sockets.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The media of one call, from the PBX's offer to the hang-up. Dropping it
/// ends the call's media and frees its ports.
pub struct CallMedia {
    answer: String,
    pbx_port: u16,
    trunk_offer: Option<(u16, String)>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

enum Command {
    AttachTrunk(SocketPair),
    TrunkAnswered(Leg),
    Stats(oneshot::Sender<MediaStats>),
}

impl CallMedia {
    /// Our SDP answer to the PBX (for the 183 and the 200).
    pub fn answer(&self) -> &str {
        &self.answer
    }

    pub fn pbx_port(&self) -> u16 {
        self.pbx_port
    }

    pub fn trunk_port(&self) -> Option<u16> {
        self.trunk_offer.as_ref().map(|(port, _)| *port)
    }

    /// Binds the trunk-side ports and returns the SDP offer (PCMU, PCMA,
    /// telephone-event) for the INVITE to the trunk. A second call returns
    /// the same offer (an INVITE resent after a 401/407 challenge).
    pub fn offer_to_trunk(&mut self) -> Result<String, MediaError> {
        if let Some((_, offer)) = &self.trunk_offer {
            return Ok(offer.clone());
        }
        let pair = bind_pair(&self.shared.pool, self.shared.bind)?;
        let port = pair.lease.port();
        let offer = LocalDescription {
            session_id: u64::from(rand::random::<u32>()),
            version: 1,
            address: self.shared.advertised,
            port,
        }
        .offer();
        self.commands
            .send(Command::AttachTrunk(pair))
            .map_err(|_| MediaError::Stopped)?;
        self.trunk_offer = Some((port, offer.clone()));
        Ok(offer)
    }

    /// The trunk answered (183 or 200 with SDP): the announcement stops and
    /// audio is relayed between the PBX and the trunk, converted if their
    /// laws differ. A later answer (200 after 183) replaces the earlier one.
    pub fn trunk_answered(&mut self, trunk_answer: &SessionDescription) -> Result<(), MediaError> {
        if self.trunk_offer.is_none() {
            return Err(MediaError::NoTrunkOffer);
        }
        let (codec, payload_type) = trunk_answer
            .preferred_codec()
            .ok_or(SdpError::NoCommonCodec)?;
        let leg = Leg::new(
            SocketAddr::new(trunk_answer.address, trunk_answer.port),
            LegFormat {
                codec,
                payload_type,
                telephone_event: trunk_answer.telephone_event,
            },
        );
        self.commands
            .send(Command::TrunkAnswered(leg))
            .map_err(|_| MediaError::Stopped)
    }

    /// The call's counters; `None` once its media has stopped.
    pub async fn stats(&self) -> Option<MediaStats> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Stats(reply)).ok()?;
        answer.await.ok()
    }

    /// Ends the call's media: its sockets close and its ports go back to
    /// the pool (shortly after, on the media threads). Dropping does the same.
    pub fn close(self) {}
}

/// A bound socket pair moved onto the media runtime.
pub(super) struct CallSockets {
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    // Declared last: dropped after the sockets, so a port is only reused
    // once it is really closed.
    _lease: PortLease,
}

impl CallSockets {
    pub(super) fn adopt(pair: SocketPair) -> std::io::Result<CallSockets> {
        Ok(CallSockets {
            rtp: UdpSocket::from_std(pair.rtp)?,
            rtcp: UdpSocket::from_std(pair.rtcp)?,
            _lease: pair.lease,
        })
    }
}

/// Where the call's media is at.
enum Phase {
    /// Playing to the PBX; its latches are kept for the relay.
    Announcing {
        announcer: Option<Announcer>,
        pbx: Leg,
    },
    Relaying(Relay),
}

/// Waits until `socket` has a datagram; never, when there is no socket.
pub(super) async fn readable(socket: Option<&UdpSocket>) -> std::io::Result<()> {
    match socket {
        Some(socket) => socket.readable().await,
        None => std::future::pending().await,
    }
}

/// The task of one call: runs until the `CallMedia` is dropped or the
/// engine stops. Datagrams are handled to exhaustion on each wake-up.
async fn run_call(
    pbx_pair: SocketPair,
    pbx: Leg,
    announcer: Option<Announcer>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let Ok(pbx_sockets) = CallSockets::adopt(pbx_pair) else {
        return;
    };
    let mut trunk_sockets: Option<CallSockets> = None;
    let mut phase = Phase::Announcing { announcer, pbx };
    let mut announcement_packets = 0u64;
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        let deadline = match &phase {
            Phase::Announcing {
                announcer: Some(a), ..
            } => Some(tokio::time::Instant::from_std(a.next_deadline())),
            _ => None,
        };
        let trunk_rtp = trunk_sockets.as_ref().map(|s| &s.rtp);
        let trunk_rtcp = trunk_sockets.as_ref().map(|s| &s.rtcp);
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::AttachTrunk(pair)) => match CallSockets::adopt(pair) {
                    Ok(sockets) => trunk_sockets = Some(sockets),
                    Err(_) => break,
                },
                Some(Command::TrunkAnswered(trunk)) => {
                    phase = match phase {
                        Phase::Announcing { pbx, .. } => Phase::Relaying(Relay::new(pbx, trunk)),
                        Phase::Relaying(relay) => Phase::Relaying(relay.with_trunk(trunk)),
                    };
                }
                Some(Command::Stats(reply)) => {
                    let relay = match &phase {
                        Phase::Relaying(relay) => relay.counters(),
                        Phase::Announcing { .. } => RelayCounters::default(),
                    };
                    let _ = reply.send(MediaStats {
                        announcement_packets,
                        relay,
                        ..MediaStats::default()
                    });
                }
            },
            _ = sleep_until(deadline) => {
                if let Phase::Announcing { announcer: Some(announcer), pbx } = &mut phase {
                    let now = Instant::now();
                    let to = pbx.rtp.destination();
                    while let Some(packet) = announcer.poll_packet(now) {
                        send_now(&pbx_sockets.rtp, &packet, to);
                        announcement_packets += 1;
                    }
                }
            },
            Ok(()) = pbx_sockets.rtp.readable() => {
                drain(&pbx_sockets.rtp, &mut buf, |from, packet| {
                    on_rtp(&mut phase, Side::Pbx, from, packet, trunk_sockets.as_ref())
                });
            },
            Ok(()) = pbx_sockets.rtcp.readable() => {
                drain(&pbx_sockets.rtcp, &mut buf, |from, packet| {
                    on_rtcp(&mut phase, Side::Pbx, from, packet, trunk_sockets.as_ref())
                });
            },
            Ok(()) = readable(trunk_rtp) => {
                if let Some(trunk) = &trunk_sockets {
                    drain(&trunk.rtp, &mut buf, |from, packet| {
                        on_rtp(&mut phase, Side::Trunk, from, packet, Some(&pbx_sockets))
                    });
                }
            },
            Ok(()) = readable(trunk_rtcp) => {
                if let Some(trunk) = &trunk_sockets {
                    drain(&trunk.rtcp, &mut buf, |from, packet| {
                        on_rtcp(&mut phase, Side::Trunk, from, packet, Some(&pbx_sockets))
                    });
                }
            },
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends at once, without waiting. Tokio's `try_send_to` refuses to send
/// until the reactor has reported the socket writable once, which would
/// lose the first packets of a fresh call; the socket is non-blocking, so
/// the system call itself never waits. A full send buffer loses the packet,
/// which RTP tolerates better than delay.
pub(super) fn send_now(socket: &UdpSocket, packet: &[u8], to: SocketAddr) {
    let _ = socket2::SockRef::from(socket).send_to(packet, &socket2::SockAddr::from(to));
}

/// Reads every datagram waiting on `socket`.
pub(super) fn drain(
    socket: &UdpSocket,
    buf: &mut [u8],
    mut handle: impl FnMut(SocketAddr, &mut [u8]),
) {
    loop {
        match socket.try_recv_from(buf) {
            Ok((len, from)) => handle(from, &mut buf[..len]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // An ICMP error from an earlier send surfaces here; the socket
            // is still fine.
            Err(_) => continue,
        }
    }
}

/// An RTP datagram from `side`: relayed once the trunk has answered; while
/// announcing it only teaches the PBX latch where the PBX really is.
fn on_rtp(
    phase: &mut Phase,
    side: Side,
    from: SocketAddr,
    packet: &mut [u8],
    other: Option<&CallSockets>,
) {
    match phase {
        Phase::Announcing { pbx, .. } => {
            if side == Side::Pbx {
                pbx.rtp.accept(from);
            }
        }
        Phase::Relaying(relay) => {
            if let (Some(to), Some(other)) = (relay.on_rtp(side, from, packet), other) {
                send_now(&other.rtp, packet, to);
            }
        }
    }
}

fn on_rtcp(
    phase: &mut Phase,
    side: Side,
    from: SocketAddr,
    packet: &mut [u8],
    other: Option<&CallSockets>,
) {
    match phase {
        Phase::Announcing { pbx, .. } => {
            if side == Side::Pbx {
                pbx.rtcp.accept(from);
            }
        }
        Phase::Relaying(relay) => {
            if let (Some(to), Some(other)) = (relay.on_rtcp(side, from, packet), other) {
                send_now(&other.rtcp, packet, to);
            }
        }
    }
}

impl std::fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia")
            .field("pbx_port", &self.pbx_port)
            .field("trunk_port", &self.trunk_port())
            .finish()
    }
}
