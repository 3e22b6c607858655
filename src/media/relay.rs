//! Relays RTP and RTCP between the PBX's leg and the trunk's leg of a call,
//! deciding per datagram whether it is accepted, where it goes and how its
//! payload must change. No I/O: the caller reads a datagram, asks the relay,
//! and sends the rewritten bytes where it is told.
//!
//! Symmetric latching: a peer behind NAT sends from another port than its
//! SDP announced, so the first datagram from the announced IP fixes the
//! exact source, and replies go back there. Anything else after that is
//! dropped, so a stray or hostile source cannot inject audio into a call.
//! When the legs chose different laws, the payload is converted byte for
//! byte; telephone-event passes through with its payload type renumbered.

use std::net::{IpAddr, SocketAddr};

use rtp_rs::RtpReader;

use super::g711;
use super::sdp::Codec;

/// A leg of a call: the PBX's or the trunk's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Pbx,
    Trunk,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Pbx => Side::Trunk,
            Side::Trunk => Side::Pbx,
        }
    }
}

/// The source a leg's datagrams must come from: announced in SDP, then
/// fixed by the first datagram from the announced IP.
#[derive(Debug, Clone)]
pub struct Latch {
    announced: SocketAddr,
    latched: Option<SocketAddr>,
}

impl Latch {
    pub fn new(announced: SocketAddr) -> Latch {
        Latch {
            announced,
            latched: None,
        }
    }

    /// Whether a datagram from `from` belongs to this leg; latches on the
    /// first one from the announced IP. An unspecified announced address
    /// (`0.0.0.0`, an old-style hold) gives no IP to check, so the first
    /// source is taken.
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        match self.latched {
            Some(latched) => latched == from,
            None if same_ip(self.announced.ip(), from.ip())
                || self.announced.ip().is_unspecified() =>
            {
                self.latched = Some(from);
                true
            }
            None => false,
        }
    }

    /// Where to send toward this leg: the latched source, else the announced
    /// address.
    pub fn destination(&self) -> SocketAddr {
        self.latched.unwrap_or(self.announced)
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }
}

/// An IPv4 peer may reach an IPv6 socket as a mapped address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// What one leg negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegFormat {
    pub codec: Codec,
    /// The payload type the law travels under on this leg.
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
}

/// Counts for one direction (datagrams received from `Side`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    pub relayed: u64,
    /// Payloads converted between µ-law and A-law.
    pub converted: u64,
    /// From a source other than the leg's latched or announced one.
    pub dropped_source: u64,
    /// Not RTP, or a payload type the other leg cannot receive.
    pub dropped_invalid: u64,
    pub rtcp_relayed: u64,
    pub rtcp_dropped: u64,
}

/// Counts of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    pub from_pbx: DirectionCounters,
    pub from_trunk: DirectionCounters,
}

impl RelayCounters {
    fn of(&mut self, side: Side) -> &mut DirectionCounters {
        match side {
            Side::Pbx => &mut self.from_pbx,
            Side::Trunk => &mut self.from_trunk,
        }
    }
}

/// One leg's latches and format.
#[derive(Debug, Clone)]
pub struct Leg {
    pub rtp: Latch,
    pub rtcp: Latch,
    pub format: LegFormat,
}

impl Leg {
    /// A leg announced at `rtp` (RTCP on the next port, RFC 3550 §11).
    pub fn new(rtp: SocketAddr, format: LegFormat) -> Leg {
        let rtcp = SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1));
        Leg {
            rtp: Latch::new(rtp),
            rtcp: Latch::new(rtcp),
            format,
        }
    }

    /// The leg after a new answer from the same peer: the new format, and
    /// the latches kept unless the peer moved to another address (so a
    /// re-answer does not reopen the call to stray sources).
    pub fn replaced_by(self, new: Leg) -> Leg {
        if new.rtp.announced == self.rtp.announced {
            Leg {
                format: new.format,
                ..self
            }
        } else {
            new
        }
    }
}

/// The relay between the two legs of one call.
#[derive(Debug, Clone)]
pub struct Relay {
    pbx: Leg,
    trunk: Leg,
    counters: RelayCounters,
}

impl Relay {
    pub fn new(pbx: Leg, trunk: Leg) -> Relay {
        Relay {
            pbx,
            trunk,
            counters: RelayCounters::default(),
        }
    }

    fn leg(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::Pbx => &mut self.pbx,
            Side::Trunk => &mut self.trunk,
        }
    }

    /// An RTP datagram arrived on `side`'s socket from `from`. Rewrites it
    /// in place for the other leg and returns where to send it, or `None`
    /// when it is dropped.
    pub fn on_rtp(
        &mut self,
        side: Side,
        from: SocketAddr,
        packet: &mut [u8],
    ) -> Option<SocketAddr> {
        if !self.leg(side).rtp.accept(from) {
            self.counters.of(side).dropped_source += 1;
            return None;
        }
        let source = self.leg(side).format;
        let target = self.leg(side.other()).format;
        let Some(action) = rewrite(packet, source, target) else {
            self.counters.of(side).dropped_invalid += 1;
            return None;
        };
        let counters = self.counters.of(side);
        counters.relayed += 1;
        if action == Rewrite::Converted {
            counters.converted += 1;
        }
        Some(self.leg(side.other()).rtp.destination())
    }

    /// An RTCP datagram arrived on `side`'s RTCP socket: relayed unchanged
    /// (reports describe the stream, not its law).
    pub fn on_rtcp(&mut self, side: Side, from: SocketAddr, packet: &[u8]) -> Option<SocketAddr> {
        // Version 2 and at least a header: anything else is not RTCP.
        if !self.leg(side).rtcp.accept(from) {
            self.counters.of(side).rtcp_dropped += 1;
            return None;
        }
        if packet.len() < 8 || packet[0] >> 6 != 2 {
            self.counters.of(side).rtcp_dropped += 1;
            return None;
        }
        self.counters.of(side).rtcp_relayed += 1;
        Some(self.leg(side.other()).rtcp.destination())
    }

    /// The trunk answered again (a 200 after a 183): its format changes;
    /// its latches are kept unless it moved to another address.
    pub fn with_trunk(self, trunk: Leg) -> Relay {
        self.with_leg(Side::Trunk, trunk)
    }

    /// `side` answered again, as [`Relay::with_trunk`] for either leg.
    pub fn with_leg(mut self, side: Side, new: Leg) -> Relay {
        self.replace_leg(side, new);
        self
    }

    /// In place, as [`Relay::with_leg`].
    pub fn replace_leg(&mut self, side: Side, new: Leg) {
        let leg = self.leg(side).clone();
        *self.leg(side) = leg.replaced_by(new);
    }

    pub fn counters(&self) -> RelayCounters {
        self.counters
    }

    pub fn pbx(&self) -> &Leg {
        &self.pbx
    }

    pub fn trunk(&self) -> &Leg {
        &self.trunk
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    Unchanged,
    Renumbered,
    Converted,
}

/// Adapts one RTP packet from `source`'s format to `target`'s. Payload
/// types neither leg negotiated as audio or DTMF (comfort noise, say) pass
/// untouched: both legs got them from the same static table.
fn rewrite(packet: &mut [u8], source: LegFormat, target: LegFormat) -> Option<Rewrite> {
    let (payload_type, start, end) = {
        let reader = RtpReader::new(packet).ok()?;
        let start = reader.payload_offset();
        (reader.payload_type(), start, start + reader.payload().len())
    };
    let (new_type, action) = if payload_type == source.payload_type {
        let action = if source.codec == target.codec {
            Rewrite::Renumbered
        } else {
            let payload = packet.get_mut(start..end)?;
            match source.codec {
                Codec::Pcmu => g711::transcode_ulaw_to_alaw(payload),
                Codec::Pcma => g711::transcode_alaw_to_ulaw(payload),
            }
            Rewrite::Converted
        };
        (target.payload_type, action)
    } else if Some(payload_type) == source.telephone_event {
        // The other leg never agreed to DTMF events: it could not read them.
        (target.telephone_event?, Rewrite::Renumbered)
    } else {
        return Some(Rewrite::Unchanged);
    };
    packet[1] = (packet[1] & 0x80) | (new_type & 0x7F);
    Some(
        if new_type == payload_type && action == Rewrite::Renumbered {
            Rewrite::Unchanged
        } else {
            action
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::{RtpPacketBuilder, Seq};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const PCMU: LegFormat = LegFormat {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
    };
    const PCMA: LegFormat = LegFormat {
        codec: Codec::Pcma,
        payload_type: 8,
        telephone_event: Some(96),
    };

    fn relay(pbx: LegFormat, trunk: LegFormat) -> Relay {
        Relay::new(
            Leg::new(addr("10.0.0.1:4000"), pbx),
            Leg::new(addr("192.0.2.9:6000"), trunk),
        )
    }

    fn packet(payload_type: u8, payload: &[u8]) -> Vec<u8> {
        RtpPacketBuilder::new()
            .payload_type(payload_type)
            .ssrc(7)
            .sequence(Seq::from(1))
            .timestamp(160)
            .marked(true)
            .payload(payload)
            .build()
            .unwrap()
    }

    #[test]
    fn the_first_packet_from_the_announced_ip_latches_its_port() {
        let mut r = relay(PCMU, PCMU);
        // Before anything arrives, audio goes where SDP said.
        let mut p = packet(0, &[1; 160]);
        assert_eq!(
            r.on_rtp(Side::Trunk, addr("192.0.2.9:6000"), &mut p),
            Some(addr("10.0.0.1:4000"))
        );
        // The PBX is behind NAT: it sends from another port.
        let mut p = packet(0, &[1; 160]);
        assert_eq!(
            r.on_rtp(Side::Pbx, addr("10.0.0.1:31337"), &mut p),
            Some(addr("192.0.2.9:6000"))
        );
        assert_eq!(r.pbx().rtp.latched(), Some(addr("10.0.0.1:31337")));
        let mut p = packet(0, &[1; 160]);
        assert_eq!(
            r.on_rtp(Side::Trunk, addr("192.0.2.9:6000"), &mut p),
            Some(addr("10.0.0.1:31337"))
        );
    }

    #[test]
    fn other_sources_are_dropped_and_counted() {
        let mut r = relay(PCMU, PCMU);
        let mut p = packet(0, &[1; 160]);
        // Another IP before latching.
        assert_eq!(r.on_rtp(Side::Pbx, addr("10.0.0.66:4000"), &mut p), None);
        assert!(r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p).is_some());
        // The announced IP but another port, after latching.
        assert_eq!(r.on_rtp(Side::Pbx, addr("10.0.0.1:4002"), &mut p), None);
        let c = r.counters().from_pbx;
        assert_eq!((c.relayed, c.dropped_source), (1, 2));
        assert_eq!(r.counters().from_trunk, DirectionCounters::default());
    }

    #[test]
    fn pcmu_becomes_pcma_and_back() {
        let mut r = relay(PCMU, PCMA);
        let ulaw: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let mut p = packet(0, &ulaw);
        r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p).unwrap();
        let read = RtpReader::new(&p).unwrap();
        assert_eq!(read.payload_type(), 8);
        assert!(read.mark(), "the marker bit survives the rewrite");
        assert_eq!(read.ssrc(), 7);
        let want: Vec<u8> = ulaw
            .iter()
            .map(|b| g711::ULAW_TO_ALAW[*b as usize])
            .collect();
        assert_eq!(read.payload(), &want[..]);

        let alaw = vec![0xD5u8; 160];
        let mut p = packet(8, &alaw);
        r.on_rtp(Side::Trunk, addr("192.0.2.9:6000"), &mut p)
            .unwrap();
        let read = RtpReader::new(&p).unwrap();
        assert_eq!(read.payload_type(), 0);
        assert_eq!(read.payload(), &[g711::ALAW_TO_ULAW[0xD5]; 160][..]);
        assert_eq!(r.counters().from_pbx.converted, 1);
        assert_eq!(r.counters().from_trunk.converted, 1);
    }

    #[test]
    fn telephone_events_are_renumbered_not_converted() {
        let mut r = relay(PCMU, PCMA);
        let event = [5u8, 0x8A, 0x03, 0x20];
        let mut p = packet(101, &event);
        r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p).unwrap();
        let read = RtpReader::new(&p).unwrap();
        assert_eq!(read.payload_type(), 96);
        assert_eq!(read.payload(), &event[..]);
        assert_eq!(r.counters().from_pbx.converted, 0);

        // A leg that never agreed to DTMF events gets none.
        let mut no_dtmf = PCMA;
        no_dtmf.telephone_event = None;
        let mut r = relay(PCMU, no_dtmf);
        let mut p = packet(101, &event);
        assert_eq!(r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p), None);
        assert_eq!(r.counters().from_pbx.dropped_invalid, 1);
    }

    #[test]
    fn same_law_different_numbers_is_renumbered_and_unknown_types_pass() {
        let mut dynamic_pcmu = PCMU;
        dynamic_pcmu.payload_type = 97;
        let mut r = relay(dynamic_pcmu, PCMU);
        let mut p = packet(97, &[9; 160]);
        r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p).unwrap();
        let read = RtpReader::new(&p).unwrap();
        assert_eq!(read.payload_type(), 0);
        assert_eq!(read.payload(), &[9u8; 160][..]);
        let mut comfort_noise = packet(13, &[40]);
        r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut comfort_noise)
            .unwrap();
        assert_eq!(RtpReader::new(&comfort_noise).unwrap().payload_type(), 13);
    }

    #[test]
    fn garbage_is_dropped_without_panicking() {
        let mut r = relay(PCMU, PCMA);
        for len in 0..20 {
            let mut junk = vec![0x80u8; len];
            let _ = r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut junk);
        }
        let mut wrong_version = packet(0, &[1; 10]);
        wrong_version[0] = 0x40;
        assert_eq!(
            r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut wrong_version),
            None
        );
        // Padding longer than the packet.
        let mut bad_padding = packet(0, &[1; 10]);
        bad_padding[0] |= 0x20;
        let last = bad_padding.len() - 1;
        bad_padding[last] = 200;
        assert_eq!(
            r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut bad_padding),
            None
        );
        assert!(r.counters().from_pbx.dropped_invalid >= 2);
    }

    #[test]
    fn rtcp_latches_on_its_own_port_and_passes_unchanged() {
        let mut r = relay(PCMU, PCMA);
        let report = [0x80u8, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4];
        assert_eq!(
            r.on_rtcp(Side::Pbx, addr("10.0.0.1:4001"), &report),
            Some(addr("192.0.2.9:6001"))
        );
        assert_eq!(
            r.on_rtcp(Side::Trunk, addr("192.0.2.9:6001"), &report),
            Some(addr("10.0.0.1:4001"))
        );
        assert_eq!(r.on_rtcp(Side::Pbx, addr("10.0.0.2:4001"), &report), None);
        assert_eq!(r.on_rtcp(Side::Pbx, addr("10.0.0.1:4001"), &[0x80]), None);
        assert_eq!(r.counters().from_pbx.rtcp_relayed, 1);
        assert_eq!(r.counters().from_pbx.rtcp_dropped, 2);
        assert_eq!(r.counters().from_trunk.rtcp_relayed, 1);
    }

    #[test]
    fn a_second_trunk_answer_keeps_the_latch_unless_the_trunk_moved() {
        let mut r = relay(PCMU, PCMU);
        let mut p = packet(0, &[1; 160]);
        r.on_rtp(Side::Trunk, addr("192.0.2.9:6010"), &mut p)
            .unwrap();
        // The 200 names the same address as the 183, now with A-law.
        let mut r = r.with_trunk(Leg::new(addr("192.0.2.9:6000"), PCMA));
        assert_eq!(r.trunk().rtp.latched(), Some(addr("192.0.2.9:6010")));
        let mut p = packet(0, &[0xFF; 160]);
        r.on_rtp(Side::Pbx, addr("10.0.0.1:4000"), &mut p).unwrap();
        assert_eq!(RtpReader::new(&p).unwrap().payload_type(), 8);
        // Another address: latching starts over.
        let r = r.with_trunk(Leg::new(addr("192.0.2.77:6000"), PCMA));
        assert_eq!(r.trunk().rtp.latched(), None);
        assert_eq!(r.counters().from_trunk.relayed, 1, "counts are kept");
    }

    #[test]
    fn a_mapped_ipv4_source_matches_its_ipv4_announcement() {
        let mut latch = Latch::new(addr("10.0.0.1:4000"));
        assert!(latch.accept(addr("[::ffff:10.0.0.1]:5000")));
        let mut held = Latch::new(addr("0.0.0.0:4000"));
        assert!(held.accept(addr("203.0.113.5:7000")));
        assert!(!held.accept(addr("203.0.113.6:7000")));
    }
}
