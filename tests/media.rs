//! The media engine over loopback sockets: one socket plays the PBX, one
//! the trunk. Every wait is bounded.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use slotgate::media::g711;
use slotgate::media::{
    Announcement, CallMedia, MediaConfig, MediaEngine, MediaError, SessionDescription,
};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);

/// Ten packets' worth of a ramp: each packet's payload differs.
fn announcement() -> Announcement {
    let samples: Vec<i16> = (0..1_600).map(|i| (i * 20 - 16_000) as i16).collect();
    Announcement::from_linear(&samples).unwrap()
}

fn engine(port_min: u16, port_max: u16) -> MediaEngine {
    let config = MediaConfig {
        port_min,
        port_max,
        announcement: Arc::new(announcement()),
        threads: 1,
        ..MediaConfig::default()
    };
    MediaEngine::start(&config).unwrap()
}

fn offer(port: u16, formats: &str, maps: &str) -> SessionDescription {
    let text = format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n{maps}a=sendrecv\r\n"
    );
    SessionDescription::parse(text.as_bytes()).unwrap()
}

fn rtp(payload_type: u8, ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(payload_type)
        .ssrc(ssrc)
        .sequence(Seq::from(seq))
        .timestamp(u32::from(seq) * 160)
        .payload(payload)
        .build()
        .unwrap()
}

async fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr, Instant)> {
    let mut buf = vec![0u8; 2048];
    let (len, from) = timeout(WAIT, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(len);
    Some((buf, from, Instant::now()))
}

/// The next packet on `socket` whose SSRC is `ssrc`.
async fn receive_from_stream(socket: &UdpSocket, ssrc: u32) -> Vec<u8> {
    for _ in 0..200 {
        let (packet, _, _) = receive(socket).await.expect("a packet in time");
        if RtpReader::new(&packet).map(|r| r.ssrc()).ok() == Some(ssrc) {
            return packet;
        }
    }
    panic!("no packet of stream {ssrc:#x}");
}

async fn bind() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.unwrap()
}

/// Waits until the engine has every port back, then checks the system
/// does too.
async fn assert_ports_freed(engine: &MediaEngine, free: usize, ports: &[u16]) {
    let start = Instant::now();
    while engine.free_ports() != free {
        assert!(start.elapsed() < WAIT, "ports were not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for port in ports {
        for p in [*port, *port + 1] {
            std::net::UdpSocket::bind((LOOPBACK, p)).expect("the port is free again");
        }
    }
}

#[tokio::test]
async fn announcement_then_converted_relay_then_clean_close() {
    let engine = engine(31_000, 31_099);
    let free = engine.free_ports();
    let pbx = bind().await;
    let pbx_addr = pbx.local_addr().unwrap();
    let pbx_offer = offer(
        pbx_addr.port(),
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let mut media: CallMedia = engine.open_early_media(&pbx_offer).unwrap();
    let answer = SessionDescription::parse(media.answer().as_bytes()).unwrap();
    assert_eq!(answer.port, media.pbx_port());
    assert_eq!(answer.address, LOOPBACK);
    assert_eq!(answer.codecs[0].1, 0);
    let engine_pbx = SocketAddr::new(LOOPBACK, answer.port);

    // The announcement: one stream, 20 ms apart, the file's µ-law, looping.
    let mut packets = Vec::new();
    for _ in 0..15 {
        let (packet, from, at) = receive(&pbx).await.expect("announcement packet");
        assert_eq!(from, engine_pbx, "sent from the port in the answer");
        packets.push((packet, at));
    }
    let read: Vec<RtpReader> = packets
        .iter()
        .map(|(p, _)| RtpReader::new(p).unwrap())
        .collect();
    let ssrc = read[0].ssrc();
    assert!(read[0].mark());
    let pcmu = announcement().pcmu().to_vec();
    for (i, r) in read.iter().enumerate() {
        assert_eq!(r.ssrc(), ssrc);
        assert_eq!(r.payload_type(), 0);
        assert_eq!(r.mark(), i == 0);
        let i16 = i as u16;
        let i32 = i as u32;
        assert_eq!(
            u16::from(r.sequence_number()),
            u16::from(read[0].sequence_number()).wrapping_add(i16)
        );
        assert_eq!(r.timestamp(), read[0].timestamp().wrapping_add(160 * i32));
        let at = (i % 10) * 160;
        assert_eq!(r.payload(), &pcmu[at..at + 160], "packet {i}");
    }
    let span = packets[14].1 - packets[0].1;
    assert!(
        span >= Duration::from_millis(200) && span <= Duration::from_millis(500),
        "14 intervals took {span:?}"
    );

    // The trunk is offered both laws and answers A-law.
    let trunk_offer = media.offer_to_trunk().unwrap();
    assert_eq!(
        media.offer_to_trunk().unwrap(),
        trunk_offer,
        "same offer again"
    );
    let offered = SessionDescription::parse(trunk_offer.as_bytes()).unwrap();
    assert_eq!(offered.telephone_event, Some(101));
    let engine_trunk = SocketAddr::new(LOOPBACK, offered.port);
    assert_eq!(Some(offered.port), media.trunk_port());
    let trunk = bind().await;
    let trunk_rtcp = bind().await;
    let trunk_answer = offer(
        trunk.local_addr().unwrap().port(),
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    media.trunk_answered(&trunk_answer).unwrap();

    // Trunk → PBX: A-law becomes µ-law. The trunk speaks first, which
    // also latches its source.
    let alaw: Vec<u8> = (0..160).map(|i| i as u8).collect();
    trunk
        .send_to(&rtp(8, 0x7777, 1, &alaw), engine_trunk)
        .await
        .unwrap();
    let got = receive_from_stream(&pbx, 0x7777).await;
    let got = RtpReader::new(&got).unwrap();
    assert_eq!(got.payload_type(), 0);
    let want: Vec<u8> = alaw
        .iter()
        .map(|b| g711::ALAW_TO_ULAW[*b as usize])
        .collect();
    assert_eq!(got.payload(), &want[..]);

    // PBX → trunk: µ-law becomes A-law.
    let ulaw: Vec<u8> = (0..160).map(|i| (255 - i) as u8).collect();
    pbx.send_to(&rtp(0, 0x1111, 9, &ulaw), engine_pbx)
        .await
        .unwrap();
    let got = receive_from_stream(&trunk, 0x1111).await;
    let got = RtpReader::new(&got).unwrap();
    assert_eq!(got.payload_type(), 8);
    assert_eq!(u16::from(got.sequence_number()), 9);
    let want: Vec<u8> = ulaw
        .iter()
        .map(|b| g711::ULAW_TO_ALAW[*b as usize])
        .collect();
    assert_eq!(got.payload(), &want[..]);

    // A stray source aimed at the PBX-side port goes nowhere.
    let stray = bind().await;
    stray
        .send_to(&rtp(0, 0x6666, 1, &ulaw), engine_pbx)
        .await
        .unwrap();
    // RTCP: the trunk's report latches its RTCP port, the PBX's reaches it
    // unchanged.
    let report = [0x80u8, 200, 0, 1, 0, 0, 0x11, 0x11];
    trunk_rtcp
        .send_to(&report, SocketAddr::new(LOOPBACK, offered.port + 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pbx_rtcp = bind().await;
    pbx_rtcp
        .send_to(&report, SocketAddr::new(LOOPBACK, answer.port + 1))
        .await
        .unwrap();
    let (got, from, _) = receive(&trunk_rtcp).await.expect("RTCP relayed");
    assert_eq!(got, report);
    assert_eq!(from.port(), offered.port + 1);
    // The trunk socket saw nothing of the stray.
    pbx.send_to(&rtp(0, 0x1111, 10, &ulaw), engine_pbx)
        .await
        .unwrap();
    let next = receive_from_stream(&trunk, 0x1111).await;
    assert_eq!(
        u16::from(RtpReader::new(&next).unwrap().sequence_number()),
        10
    );

    let stats = media.stats().await.unwrap();
    assert!(stats.announcement_packets >= 15);
    assert_eq!(stats.relay.from_pbx.relayed, 2);
    assert_eq!(stats.relay.from_pbx.converted, 2);
    assert_eq!(stats.relay.from_pbx.dropped_source, 1);
    assert_eq!(stats.relay.from_trunk.relayed, 1);
    assert_eq!(stats.relay.from_pbx.rtcp_relayed, 1);

    let ports = [answer.port, offered.port];
    media.close();
    assert_ports_freed(&engine, free, &ports).await;
}

#[tokio::test]
async fn exhausted_ports_and_early_answers_are_errors() {
    // Two RTP ports: one call's PBX and trunk sides.
    let engine = engine(31_200, 31_203);
    let pbx = bind().await;
    let pbx_offer = offer(pbx.local_addr().unwrap().port(), "8", "");
    let mut media = engine.open_early_media(&pbx_offer).unwrap();
    assert!(media.answer().contains("m=audio 31200 RTP/AVP 8\r\n"));
    let trunk_answer = offer(9, "0", "");
    assert!(matches!(
        media.trunk_answered(&trunk_answer),
        Err(MediaError::NoTrunkOffer)
    ));
    media.offer_to_trunk().unwrap();
    assert!(matches!(
        engine.open_early_media(&pbx_offer),
        Err(MediaError::Ports(_))
    ));
    // The A-law announcement reaches the PBX.
    let (packet, _, _) = receive(&pbx).await.unwrap();
    let read = RtpReader::new(&packet).unwrap();
    assert_eq!(read.payload_type(), 8);
    assert_eq!(read.payload(), &announcement().pcma()[..160]);
    drop(media);
    assert_ports_freed(&engine, 2, &[31_200, 31_202]).await;
    let again = engine.open_early_media(&pbx_offer).unwrap();
    drop(again);
}

#[test]
fn dropping_the_engine_outside_a_runtime_closes_every_call() {
    let engine = engine(31_300, 31_309);
    let offer = offer(40_000, "0", "");
    let calls: Vec<CallMedia> = (0..3)
        .map(|_| engine.open_early_media(&offer).unwrap())
        .collect();
    drop(engine);
    drop(calls);
    let start = Instant::now();
    // Shutting down in the background: the sockets close shortly after.
    while std::net::UdpSocket::bind((LOOPBACK, 31_300)).is_err() {
        assert!(start.elapsed() < WAIT, "sockets outlived the engine");
        std::thread::sleep(Duration::from_millis(10));
    }
}
