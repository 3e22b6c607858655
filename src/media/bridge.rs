//! Media of the calls slotgate places itself (third-party call control):
//! it calls an agent (the PBX side) and a customer (the trunk side), offers
//! each its own RTP ports, and only later joins them.
//!
//! Between the answers and the join, slotgate itself is the far end of
//! both legs: it listens to the customer to tell a person from an
//! answering machine ([`super::amd`]), and may play a message to either
//! leg (a notice to a customer no agent is free for, a whisper to the
//! agent). Then it relays audio both ways like an anchored call, with the
//! same latching, law conversion and RTCP handling ([`super::relay`]).
//!
//! The SIP side holds a [`BridgeMedia`] and never waits on it: every call
//! is a message to the call's task on the media threads, and what the task
//! hears or finishes comes back as [`MediaEvent`]s on a channel the SIP
//! side owns, tagged with the call it gave.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;
use tokio::sync::{mpsc, oneshot};

use super::amd::{samples_in, AmdSettings, Detection, Detector};
use super::announcer::{Announcer, StreamIds};
use super::engine::{
    drain, send_now, sleep_until, CallSockets, MediaEngine, MediaError, MediaStats, DATAGRAM_BUFFER,
};
use super::g711;
use super::ports::{bind_pair, SocketPair};
use super::relay::{Leg, LegFormat, Relay, RelayCounters, Side};
use super::sdp::{Codec, LocalDescription, SdpError, SessionDescription};
use super::wav::Announcement;

/// Added to the decision time before the wall clock decides for a silent
/// stream, so that audio arriving with ordinary jitter is still what
/// decides.
const DEADLINE_GRACE: Duration = Duration::from_millis(300);

/// Something a placed call's media has to tell the SIP side.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaEvent {
    pub call: u64,
    pub kind: MediaEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEventKind {
    /// The verdict of answering-machine detection (exactly one per
    /// [`BridgeMedia::detect`]).
    Detected(Detection),
    /// A message started by [`BridgeMedia::play`] has been played out.
    PlaybackEnded { side: Side },
}

impl MediaEngine {
    /// Binds both sides' RTP/RTCP ports (agent side = [`Side::Pbx`],
    /// customer side = [`Side::Trunk`]); no audio flows yet. Events of the
    /// call go to `events`, tagged with `call`.
    pub fn open_bridge(
        &self,
        call: u64,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<BridgeMedia, MediaError> {
        let shared = &self.shared;
        let pbx = bind_pair(&shared.pool, shared.bind)?;
        // A failure here drops the PBX pair, which gives its port back.
        let trunk = bind_pair(&shared.pool, shared.bind)?;
        let ports = [pbx.lease.port(), trunk.lease.port()];
        let offers = ports.map(|port| {
            LocalDescription {
                session_id: u64::from(rand::random::<u32>()),
                version: 1,
                address: shared.advertised,
                port,
            }
            .offer()
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        shared
            .handle
            .spawn(run_bridge(call, [pbx, trunk], receiver, events));
        Ok(BridgeMedia {
            call,
            offers,
            ports,
            answered: [None, None],
            detecting: false,
            bridged: false,
            commands,
        })
    }
}

/// The media of one placed call. Dropping it ends the media and frees the
/// ports (shortly after, on the media threads).
pub struct BridgeMedia {
    call: u64,
    offers: [String; 2],
    ports: [u16; 2],
    answered: [Option<LegFormat>; 2],
    detecting: bool,
    bridged: bool,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Answered(Side, Leg),
    Detect(AmdSettings),
    Play(Side, Arc<Announcement>),
    Bridge,
    Stats(oneshot::Sender<MediaStats>),
}

fn index(side: Side) -> usize {
    match side {
        Side::Pbx => 0,
        Side::Trunk => 1,
    }
}

impl BridgeMedia {
    pub fn call(&self) -> u64 {
        self.call
    }

    /// slotgate's SDP offer for that leg (PCMU, PCMA, telephone-event,
    /// sendrecv); the same text every time it is asked (an INVITE resent
    /// after a challenge carries the same offer).
    pub fn offer(&self, side: Side) -> &str {
        &self.offers[index(side)]
    }

    /// The local RTP port of that leg (RTCP is the next one).
    pub fn port(&self, side: Side) -> u16 {
        self.ports[index(side)]
    }

    /// That leg's SDP answer: where to send and which law. May be called
    /// again (a 200 after a 183, a re-INVITE): the new answer replaces the
    /// old one, keeping the latched source if the address is unchanged.
    pub fn answered(&mut self, side: Side, answer: &SessionDescription) -> Result<(), MediaError> {
        let (codec, payload_type) = answer.preferred_codec().ok_or(SdpError::NoCommonCodec)?;
        let format = LegFormat {
            codec,
            payload_type,
            telephone_event: answer.telephone_event,
        };
        let leg = Leg::new(SocketAddr::new(answer.address, answer.port), format);
        self.send(Command::Answered(side, leg))?;
        self.answered[index(side)] = Some(format);
        Ok(())
    }

    /// Starts answering-machine detection on the customer's audio
    /// (decoded in the law the trunk side answered). Exactly one
    /// [`MediaEventKind::Detected`] follows, also when no audio arrives at
    /// all: the decision time then runs on the media threads' clock.
    pub fn detect(&mut self, settings: AmdSettings) -> Result<(), MediaError> {
        settings.validate()?;
        if self.detecting {
            return Err(MediaError::DetectionStarted);
        }
        self.require_answered(Side::Trunk)?;
        self.send(Command::Detect(settings))?;
        self.detecting = true;
        Ok(())
    }

    /// Plays `message` once toward `side`, in that side's law, then sends
    /// [`MediaEventKind::PlaybackEnded`]. A second message to the same side
    /// replaces the first, which then sends no event.
    pub fn play(&mut self, side: Side, message: Arc<Announcement>) -> Result<(), MediaError> {
        if self.bridged {
            return Err(MediaError::Bridged);
        }
        self.require_answered(side)?;
        self.send(Command::Play(side, message))
    }

    /// Relays audio both ways from now on (laws converted if they differ,
    /// RTCP too, telephone-event passed). Any playback stops, without a
    /// `PlaybackEnded`: the caller chose to stop it. Detection still under
    /// way goes on and still reports.
    pub fn bridge(&mut self) -> Result<(), MediaError> {
        self.require_answered(Side::Pbx)?;
        self.require_answered(Side::Trunk)?;
        if self.bridged {
            return Ok(());
        }
        self.send(Command::Bridge)?;
        self.bridged = true;
        Ok(())
    }

    /// The call's counters; `None` once its media has stopped.
    pub async fn stats(&self) -> Option<MediaStats> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Stats(reply)).ok()?;
        answer.await.ok()
    }

    /// Ends the call's media; dropping does the same.
    pub fn close(self) {}

    fn require_answered(&self, side: Side) -> Result<(), MediaError> {
        match self.answered[index(side)] {
            Some(_) => Ok(()),
            None => Err(MediaError::NotAnswered(side)),
        }
    }

    fn send(&self, command: Command) -> Result<(), MediaError> {
        self.commands.send(command).map_err(|_| MediaError::Stopped)
    }
}

impl std::fmt::Debug for BridgeMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeMedia")
            .field("call", &self.call)
            .field("ports", &self.ports)
            .field("bridged", &self.bridged)
            .finish()
    }
}

/// The legs before and after they are joined.
enum Legs {
    /// Each leg talks to slotgate only; `None` until it has answered.
    Apart([Option<Leg>; 2]),
    Joined(Relay),
}

impl Legs {
    fn format(&self, side: Side) -> Option<LegFormat> {
        match self {
            Legs::Apart(legs) => legs[index(side)].as_ref().map(|l| l.format),
            Legs::Joined(relay) => Some(match side {
                Side::Pbx => relay.pbx().format,
                Side::Trunk => relay.trunk().format,
            }),
        }
    }
}

/// Answering-machine detection under way: the detector and what is needed
/// to turn the RTP stream into a continuous signal.
struct Listening {
    detector: Detector,
    started: Instant,
    first_audio: Option<Instant>,
    last_audio: Option<Instant>,
    /// SSRC and timestamp the next packet should carry, to hear a gap (a
    /// sender that stops sending in silence) as the silence it is.
    expected: Option<(u32, u32)>,
    packets: u64,
}

impl Listening {
    fn new(settings: AmdSettings, now: Instant) -> Listening {
        Listening {
            detector: Detector::new(settings),
            started: now,
            first_audio: None,
            last_audio: None,
            expected: None,
            packets: 0,
        }
    }

    /// When the wall clock decides: the decision time after the first
    /// audio, or after the start when there is none.
    fn deadline(&self) -> Instant {
        let decision = Duration::from_millis(u64::from(self.detector.settings().decision_ms));
        self.first_audio.unwrap_or(self.started) + decision + DEADLINE_GRACE
    }

    /// One audio packet of the customer.
    fn hear(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        samples: &[i16],
        now: Instant,
    ) -> Option<Detection> {
        self.first_audio.get_or_insert(now);
        self.last_audio = Some(now);
        self.packets += 1;
        let cap = samples_in(self.detector.settings().decision_ms);
        if let Some((expected_ssrc, expected_ts)) = self.expected {
            if expected_ssrc == ssrc {
                // Serial-number arithmetic: a negative gap is a late or
                // repeated packet, already accounted for.
                let gap = timestamp.wrapping_sub(expected_ts) as i32;
                if gap < 0 {
                    return None;
                }
                if gap > 0 {
                    let silence = (gap as usize).min(cap);
                    if let Some(d) = self.detector.push_silence(silence) {
                        return Some(d);
                    }
                }
            }
        }
        self.expected = Some((ssrc, timestamp.wrapping_add(samples.len() as u32)));
        self.detector.push(samples)
    }

    /// The wall-clock deadline: the time since the last packet was silence
    /// on the line; if that does not decide, the detector's fallback does.
    fn expire(&mut self, now: Instant) -> Detection {
        if let Some(last) = self.last_audio {
            let quiet = now
                .saturating_duration_since(last)
                .saturating_sub(Duration::from_millis(20));
            let ms = u32::try_from(quiet.as_millis()).unwrap_or(u32::MAX);
            let samples = samples_in(ms.min(self.detector.settings().decision_ms));
            if let Some(d) = self.detector.push_silence(samples) {
                return d;
            }
        }
        self.detector.deadline_passed()
    }
}

/// Decodes a G.711 payload to linear samples.
fn decode(codec: Codec, payload: &[u8], into: &mut Vec<i16>) {
    into.clear();
    match codec {
        Codec::Pcmu => into.extend(payload.iter().map(|b| g711::ulaw_to_linear(*b))),
        Codec::Pcma => into.extend(payload.iter().map(|b| g711::alaw_to_linear(*b))),
    }
}

/// One audio packet of the customer as the detector needs it, or `None`
/// for anything that is not the answered law (DTMF, comfort noise, junk).
fn customer_audio(format: LegFormat, packet: &[u8], into: &mut Vec<i16>) -> Option<(u32, u32)> {
    let reader = RtpReader::new(packet).ok()?;
    if reader.payload_type() != format.payload_type {
        return None;
    }
    decode(format.codec, reader.payload(), into);
    Some((reader.ssrc(), reader.timestamp()))
}

/// The state of one placed call's media on the media threads.
struct BridgeTask {
    call: u64,
    events: mpsc::UnboundedSender<MediaEvent>,
    legs: Legs,
    players: [Option<Announcer>; 2],
    listening: Option<Listening>,
    played_packets: u64,
    detector_packets: u64,
    samples: Vec<i16>,
}

impl BridgeTask {
    fn emit(&self, kind: MediaEventKind) {
        // The SIP side gone means the call is ending; nothing to tell.
        let _ = self.events.send(MediaEvent {
            call: self.call,
            kind,
        });
    }

    fn detected(&mut self, detection: Detection) {
        if let Some(listening) = self.listening.take() {
            self.detector_packets = listening.packets;
        }
        self.emit(MediaEventKind::Detected(detection));
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Answered(side, leg) => match &mut self.legs {
                Legs::Apart(legs) => {
                    let slot = &mut legs[index(side)];
                    *slot = Some(match slot.take() {
                        Some(old) => old.replaced_by(leg),
                        None => leg,
                    });
                }
                Legs::Joined(relay) => relay.replace_leg(side, leg),
            },
            Command::Detect(settings) => {
                self.listening = Some(Listening::new(settings, Instant::now()));
            }
            Command::Play(side, message) => {
                if let Some(format) = self.legs.format(side) {
                    let payload: Arc<[u8]> = match format.codec {
                        Codec::Pcmu => message.pcmu().into(),
                        Codec::Pcma => message.pcma().into(),
                    };
                    self.players[index(side)] = Some(Announcer::once(
                        payload,
                        format.payload_type,
                        StreamIds::random(),
                        Instant::now(),
                    ));
                }
            }
            Command::Bridge => {
                if let Legs::Apart([Some(pbx), Some(trunk)]) = &self.legs {
                    self.legs = Legs::Joined(Relay::new(pbx.clone(), trunk.clone()));
                    self.players = [None, None];
                }
            }
            Command::Stats(reply) => {
                let relay = match &self.legs {
                    Legs::Joined(relay) => relay.counters(),
                    Legs::Apart(_) => RelayCounters::default(),
                };
                let detector_packets = self
                    .listening
                    .as_ref()
                    .map_or(self.detector_packets, |l| l.packets);
                let _ = reply.send(MediaStats {
                    played_packets: self.played_packets,
                    detector_packets,
                    relay,
                    ..MediaStats::default()
                });
            }
        }
    }

    fn next_play_deadline(&self) -> Option<tokio::time::Instant> {
        self.players
            .iter()
            .flatten()
            .map(Announcer::next_deadline)
            .min()
            .map(tokio::time::Instant::from_std)
    }

    fn play_due(&mut self, sockets: &[CallSockets; 2]) {
        let now = Instant::now();
        for side in [Side::Pbx, Side::Trunk] {
            let i = index(side);
            let Some(player) = &mut self.players[i] else {
                continue;
            };
            let to = match &self.legs {
                Legs::Apart(legs) => legs[i].as_ref().map(|l| l.rtp.destination()),
                Legs::Joined(_) => None,
            };
            while let Some(packet) = player.poll_packet(now) {
                if let Some(to) = to {
                    send_now(&sockets[i].rtp, &packet, to);
                    self.played_packets += 1;
                }
            }
            if player.finished() {
                self.players[i] = None;
                self.emit(MediaEventKind::PlaybackEnded { side });
            }
        }
    }

    fn on_rtp(
        &mut self,
        side: Side,
        from: SocketAddr,
        packet: &mut [u8],
        sockets: &[CallSockets; 2],
    ) {
        let now = Instant::now();
        // Decoded before the relay may convert the payload in place.
        let heard = match (side, &self.listening, self.legs.format(side)) {
            (Side::Trunk, Some(_), Some(format)) => {
                customer_audio(format, packet, &mut self.samples)
            }
            _ => None,
        };
        let accepted = match &mut self.legs {
            Legs::Apart(legs) => legs[index(side)]
                .as_mut()
                .is_some_and(|leg| leg.rtp.accept(from)),
            Legs::Joined(relay) => match relay.on_rtp(side, from, packet) {
                Some(to) => {
                    send_now(&sockets[index(side.other())].rtp, packet, to);
                    true
                }
                None => relay.trunk().rtp.latched() == Some(from) && side == Side::Trunk,
            },
        };
        if let (true, Some((ssrc, timestamp)), Some(listening)) =
            (accepted, heard, self.listening.as_mut())
        {
            if let Some(detection) = listening.hear(ssrc, timestamp, &self.samples, now) {
                self.detected(detection);
            }
        }
    }

    fn on_rtcp(&mut self, side: Side, from: SocketAddr, packet: &[u8], sockets: &[CallSockets; 2]) {
        match &mut self.legs {
            Legs::Apart(legs) => {
                if let Some(leg) = legs[index(side)].as_mut() {
                    leg.rtcp.accept(from);
                }
            }
            Legs::Joined(relay) => {
                if let Some(to) = relay.on_rtcp(side, from, packet) {
                    send_now(&sockets[index(side.other())].rtcp, packet, to);
                }
            }
        }
    }
}

/// The task of one placed call: runs until the `BridgeMedia` is dropped or
/// the engine stops.
async fn run_bridge(
    call: u64,
    pairs: [SocketPair; 2],
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let [pbx, trunk] = pairs;
    let (Ok(pbx), Ok(trunk)) = (CallSockets::adopt(pbx), CallSockets::adopt(trunk)) else {
        return;
    };
    let sockets = [pbx, trunk];
    let mut task = BridgeTask {
        call,
        events,
        legs: Legs::Apart([None, None]),
        players: [None, None],
        listening: None,
        played_packets: 0,
        detector_packets: 0,
        samples: Vec::with_capacity(DATAGRAM_BUFFER),
    };
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        let play_at = task.next_play_deadline();
        let decide_at = task
            .listening
            .as_ref()
            .map(|l| tokio::time::Instant::from_std(l.deadline()));
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(command) => task.command(command),
            },
            _ = sleep_until(play_at) => task.play_due(&sockets),
            _ = sleep_until(decide_at) => {
                if let Some(listening) = task.listening.as_mut() {
                    let detection = listening.expire(Instant::now());
                    task.detected(detection);
                }
            },
            Ok(()) = sockets[0].rtp.readable() => {
                drain(&sockets[0].rtp, &mut buf, |from, packet| {
                    task.on_rtp(Side::Pbx, from, packet, &sockets)
                });
            },
            Ok(()) = sockets[0].rtcp.readable() => {
                drain(&sockets[0].rtcp, &mut buf, |from, packet| {
                    task.on_rtcp(Side::Pbx, from, packet, &sockets)
                });
            },
            Ok(()) = sockets[1].rtp.readable() => {
                drain(&sockets[1].rtp, &mut buf, |from, packet| {
                    task.on_rtp(Side::Trunk, from, packet, &sockets)
                });
            },
            Ok(()) = sockets[1].rtcp.readable() => {
                drain(&sockets[1].rtcp, &mut buf, |from, packet| {
                    task.on_rtcp(Side::Trunk, from, packet, &sockets)
                });
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::amd::Verdict;

    fn voice(samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| if n % 16 < 8 { 5_000 } else { -5_000 })
            .collect()
    }

    #[test]
    fn a_gap_in_timestamps_is_heard_as_silence() {
        let t0 = Instant::now();
        let mut l = Listening::new(AmdSettings::default(), t0);
        let mut ts = 1_000u32;
        // 500 ms of voice in 20 ms packets.
        for _ in 0..25 {
            assert_eq!(l.hear(7, ts, &voice(160), t0), None);
            ts = ts.wrapping_add(160);
        }
        // The sender stopped for 900 ms: its next packet says so.
        let d = l.hear(7, ts.wrapping_add(7_200), &voice(160), t0).unwrap();
        assert_eq!((d.verdict, d.after_ms), (Verdict::Person, 1_300));
    }

    #[test]
    fn late_packets_are_skipped_and_a_new_stream_is_not_a_gap() {
        let t0 = Instant::now();
        let mut l = Listening::new(AmdSettings::default(), t0);
        assert_eq!(l.hear(7, u32::MAX - 159, &voice(160), t0), None);
        // Timestamps wrap: the next packet is at 0, no gap.
        assert_eq!(l.hear(7, 0, &voice(160), t0), None);
        assert_eq!(l.detector.heard_ms(), 40);
        // A repeat of the first packet is not heard twice.
        assert_eq!(l.hear(7, u32::MAX - 159, &voice(160), t0), None);
        assert_eq!(l.detector.heard_ms(), 40);
        // Another SSRC (the far end restarted its stream): no gap filled.
        assert_eq!(l.hear(8, 5_000_000, &voice(160), t0), None);
        assert_eq!(l.detector.heard_ms(), 60);
        assert_eq!(l.packets, 4);
    }

    #[test]
    fn the_deadline_runs_from_the_first_audio_and_counts_quiet_time() {
        let t0 = Instant::now();
        let mut l = Listening::new(AmdSettings::default(), t0);
        let grace = DEADLINE_GRACE;
        assert_eq!(l.deadline(), t0 + Duration::from_secs(2) + grace);
        let t1 = t0 + Duration::from_millis(700);
        l.hear(7, 0, &voice(160), t1);
        assert_eq!(l.deadline(), t1 + Duration::from_secs(2) + grace);
        for i in 1..25u32 {
            l.hear(7, i * 160, &voice(160), t1 + Duration::from_millis(20) * i);
        }
        // Nothing since; at the deadline the quiet counts as silence.
        let d = l.expire(l.deadline());
        assert_eq!(d.verdict, Verdict::Person);
        assert_eq!(d.why, "short greeting, then silence");
        // With no audio at all it is the fallback.
        let mut none = Listening::new(AmdSettings::default(), t0);
        let d = none.expire(none.deadline());
        assert_eq!(d.why, "not sure: too little audio by the decision time");
    }

    #[test]
    fn only_the_answered_law_reaches_the_detector() {
        let format = LegFormat {
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event: Some(101),
        };
        let packet = |pt: u8, payload: &[u8]| {
            rtp_rs::RtpPacketBuilder::new()
                .payload_type(pt)
                .ssrc(9)
                .sequence(rtp_rs::Seq::from(1))
                .timestamp(320)
                .payload(payload)
                .build()
                .unwrap()
        };
        let mut samples = Vec::new();
        let alaw = [g711::linear_to_alaw(1_000); 160];
        assert_eq!(
            customer_audio(format, &packet(8, &alaw), &mut samples),
            Some((9, 320))
        );
        assert_eq!(samples.len(), 160);
        assert!(samples.iter().all(|s| (*s - 1_000).abs() < 40));
        assert_eq!(
            customer_audio(format, &packet(101, &[1, 2, 3, 4]), &mut samples),
            None
        );
        assert_eq!(
            customer_audio(format, &packet(13, &[40]), &mut samples),
            None
        );
        assert_eq!(customer_audio(format, &[0x80, 8, 0], &mut samples), None);
    }
}
