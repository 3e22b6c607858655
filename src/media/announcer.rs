//! Streams a G.711 payload as RTP, one 20 ms packet at a time, looping
//! until stopped (the announcement to a held PBX) or played once (a message
//! to one leg of a call slotgate placed).
//!
//! It does no I/O and reads no clock: the caller passes `now` and sleeps
//! until `next_deadline()`, so pacing is tested with exact instants and one
//! thread can drive many announcers. Deadlines advance by exactly 20 ms from
//! the start, so timer lateness does not accumulate into drift.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, Seq};

use super::wav::SAMPLES_PER_PACKET;

/// Time covered by one packet.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// After a stall longer than this, missed packets are skipped rather than
/// sent in a burst the far end's jitter buffer would discard anyway.
const MAX_CATCH_UP: u32 = 5;

/// The RTP identity of a stream: random at start (RFC 3550 §5.1) so that a
/// restart is not mistaken for the same stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
}

impl StreamIds {
    pub fn random() -> StreamIds {
        StreamIds {
            ssrc: rand::random(),
            sequence: rand::random(),
            timestamp: rand::random(),
        }
    }
}

/// One looping announcement stream.
pub struct Announcer {
    payload: Arc<[u8]>,
    payload_type: u8,
    ids: StreamIds,
    offset: usize,
    due: Instant,
    first: bool,
    /// Stops at the end of the payload instead of looping.
    once: bool,
    finished: bool,
}

impl Announcer {
    /// An announcer whose first packet is due at `start`.
    pub fn new(payload: Arc<[u8]>, payload_type: u8, ids: StreamIds, start: Instant) -> Announcer {
        Announcer {
            payload,
            payload_type,
            ids,
            offset: 0,
            due: start,
            first: true,
            once: false,
            finished: false,
        }
    }

    /// An announcer that plays the payload once, first packet at `start`.
    pub fn once(payload: Arc<[u8]>, payload_type: u8, ids: StreamIds, start: Instant) -> Announcer {
        Announcer {
            once: true,
            ..Announcer::new(payload, payload_type, ids, start)
        }
    }

    /// Whether a play-once announcer has sent its last packet.
    pub fn finished(&self) -> bool {
        self.finished || self.payload.is_empty()
    }

    pub fn ssrc(&self) -> u32 {
        self.ids.ssrc
    }

    /// When the next packet is due.
    pub fn next_deadline(&self) -> Instant {
        self.due
    }

    /// The next packet if it is due at `now`, else `None`.
    pub fn poll_packet(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.due || self.finished() {
            return None;
        }
        self.skip_missed(now);
        if self.finished {
            return None;
        }
        let chunk = self.next_chunk();
        let packet = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ids.ssrc)
            .sequence(Seq::from(self.ids.sequence))
            .timestamp(self.ids.timestamp)
            .marked(self.first)
            .payload(&chunk)
            .build()
            .ok()?;
        self.first = false;
        self.ids.sequence = self.ids.sequence.wrapping_add(1);
        self.ids.timestamp = self.ids.timestamp.wrapping_add(SAMPLES_PER_PACKET as u32);
        self.due += PACKET_INTERVAL;
        // The payload is whole packets, so the end is exactly offset 0.
        if self.once && self.offset == 0 {
            self.finished = true;
        }
        Some(packet)
    }

    /// Jumps over the packets of a long stall: the timestamp still moves
    /// with the clock, the sequence does not (nothing was lost on the wire).
    fn skip_missed(&mut self, now: Instant) {
        let late = now.saturating_duration_since(self.due);
        let missed = (late.as_micros() / PACKET_INTERVAL.as_micros()) as u32;
        if missed > MAX_CATCH_UP {
            self.due += PACKET_INTERVAL * missed;
            self.ids.timestamp = self
                .ids
                .timestamp
                .wrapping_add(missed.wrapping_mul(SAMPLES_PER_PACKET as u32));
            let len = self.payload.len();
            let skipped = self.offset + missed as usize * SAMPLES_PER_PACKET;
            if self.once && skipped >= len {
                self.finished = true;
            }
            self.offset = skipped % len;
        }
    }

    /// 160 bytes from the payload, wrapping at its end.
    fn next_chunk(&mut self) -> [u8; SAMPLES_PER_PACKET] {
        let mut chunk = [0u8; SAMPLES_PER_PACKET];
        let len = self.payload.len();
        for byte in chunk.iter_mut() {
            *byte = self.payload[self.offset];
            self.offset = (self.offset + 1) % len;
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    fn announcer(start: Instant) -> Announcer {
        let payload: Vec<u8> = (0..320).map(|i| (i % 251) as u8).collect();
        Announcer::new(
            payload.into(),
            8,
            StreamIds {
                ssrc: 0xDEAD_BEEF,
                sequence: u16::MAX,
                timestamp: u32::MAX - 100,
            },
            start,
        )
    }

    #[test]
    fn packets_follow_each_other_every_20_ms() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        assert_eq!(a.next_deadline(), t0);
        let mut packets = Vec::new();
        for i in 0..4u32 {
            let at = t0 + PACKET_INTERVAL * i;
            if i > 0 {
                assert!(a.poll_packet(at - Duration::from_millis(1)).is_none());
            }
            packets.push(a.poll_packet(at).unwrap());
            assert!(a.poll_packet(at).is_none(), "one packet per slot");
            assert_eq!(a.next_deadline(), at + PACKET_INTERVAL);
        }
        let read: Vec<RtpReader> = packets.iter().map(|p| RtpReader::new(p).unwrap()).collect();
        assert!(read[0].mark());
        assert!(read[1..].iter().all(|r| !r.mark()));
        assert!(read.iter().all(|r| r.ssrc() == 0xDEAD_BEEF));
        assert!(read.iter().all(|r| r.payload_type() == 8));
        let seqs: Vec<u16> = read.iter().map(|r| r.sequence_number().into()).collect();
        assert_eq!(seqs, vec![u16::MAX, 0, 1, 2]);
        let ts: Vec<u32> = read.iter().map(|r| r.timestamp()).collect();
        assert_eq!(
            ts,
            vec![u32::MAX - 100, 59, 219, 379],
            "timestamps advance by 160 and wrap"
        );
        assert!(read.iter().all(|r| r.payload().len() == 160));
    }

    #[test]
    fn the_payload_loops() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let first = a.poll_packet(t0).unwrap();
        let _second = a.poll_packet(t0 + PACKET_INTERVAL).unwrap();
        let third = a.poll_packet(t0 + PACKET_INTERVAL * 2).unwrap();
        let p1 = RtpReader::new(&first).unwrap().payload().to_vec();
        let p3 = RtpReader::new(&third).unwrap().payload().to_vec();
        assert_eq!(p1, p3);
    }

    #[test]
    fn a_short_delay_is_caught_up_and_a_long_stall_is_skipped() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        a.poll_packet(t0).unwrap();
        // 60 ms late: the three due packets go out back to back.
        let late = t0 + Duration::from_millis(80);
        let burst: Vec<_> = std::iter::from_fn(|| a.poll_packet(late)).collect();
        assert_eq!(burst.len(), 4);
        // A one-second stall: no burst, the timestamp follows the clock.
        let stalled = t0 + Duration::from_millis(1_100);
        let after = a.poll_packet(stalled).unwrap();
        let r = RtpReader::new(&after).unwrap();
        assert_eq!(u16::from(r.sequence_number()), 4);
        let slots = 1_100 / 20;
        assert_eq!(r.timestamp(), (u32::MAX - 100).wrapping_add(slots * 160),);
        assert!(a.poll_packet(stalled).is_none());
    }

    #[test]
    fn a_message_played_once_ends_after_its_last_packet() {
        let t0 = Instant::now();
        let payload: Vec<u8> = (0..480).map(|i| (i % 251) as u8).collect();
        let mut a = Announcer::once(payload.clone().into(), 0, StreamIds::random(), t0);
        let mut sent = Vec::new();
        for i in 0..5u32 {
            if let Some(p) = a.poll_packet(t0 + PACKET_INTERVAL * i) {
                sent.push(RtpReader::new(&p).unwrap().payload().to_vec());
            }
        }
        assert_eq!(sent.concat(), payload, "three packets, then nothing");
        assert!(a.finished());
        // A stall past the end finishes it without a burst.
        let mut a = Announcer::once(payload.into(), 0, StreamIds::random(), t0);
        a.poll_packet(t0).unwrap();
        assert!(!a.finished());
        assert!(a.poll_packet(t0 + Duration::from_secs(1)).is_none());
        assert!(a.finished());
    }

    #[test]
    fn random_ids_differ_between_streams() {
        let a = StreamIds::random();
        let b = StreamIds::random();
        assert_ne!(a, b);
    }
}
