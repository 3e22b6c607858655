//! Answering-machine detection on recorded speech, and the media of calls
//! slotgate places, over loopback sockets: one socket plays the agent, one
//! the customer. Every wait is bounded.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use slotgate::media::g711;
use slotgate::media::{
    AmdSettings, Announcement, BridgeMedia, Detection, Detector, MediaConfig, MediaEngine,
    MediaError, MediaEvent, MediaEventKind, SessionDescription, Side, Verdict,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(4);

fn fixture(name: &str) -> Announcement {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/amd")
        .join(name);
    Announcement::from_wav_file(&path).unwrap()
}

/// The recording as the detector hears it over PCMU.
fn heard(name: &str) -> Vec<i16> {
    fixture(name)
        .pcmu()
        .iter()
        .map(|b| g711::ulaw_to_linear(*b))
        .collect()
}

fn detect_offline(name: &str) -> Detection {
    let mut detector = Detector::new(AmdSettings::default());
    for packet in heard(name).chunks(160) {
        if let Some(detection) = detector.push(packet) {
            return detection;
        }
    }
    panic!("no verdict for {name}");
}

#[test]
fn the_recorded_greeting_is_a_machine_and_the_hello_a_person_within_two_seconds() {
    let machine = detect_offline("machine_greeting.wav");
    assert_eq!(machine.verdict, Verdict::Machine, "{machine:?}");
    assert!(machine.after_ms < 2_000, "{machine:?}");
    assert_ne!(machine.why, "not sure by decision_ms");
    let person = detect_offline("hello.wav");
    assert_eq!(person.verdict, Verdict::Person, "{person:?}");
    assert!(person.after_ms < 2_000, "{person:?}");
    assert_eq!(person.why, "short greeting, then silence");
}

fn engine(port_min: u16, port_max: u16) -> MediaEngine {
    let config = MediaConfig {
        port_min,
        port_max,
        threads: 1,
        ..MediaConfig::default()
    };
    MediaEngine::start(&config).unwrap()
}

fn answer(port: u16, formats: &str, maps: &str) -> SessionDescription {
    let text = format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n{maps}a=sendrecv\r\n"
    );
    SessionDescription::parse(text.as_bytes()).unwrap()
}

fn pcmu_answer(port: u16) -> SessionDescription {
    answer(
        port,
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
}

fn pcma_answer(port: u16) -> SessionDescription {
    answer(
        port,
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
}

fn rtp(payload_type: u8, ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(payload_type)
        .ssrc(ssrc)
        .sequence(Seq::from(seq))
        .timestamp(u32::from(seq).wrapping_mul(160))
        .payload(payload)
        .build()
        .unwrap()
}

async fn bind() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.unwrap()
}

async fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    let (len, from) = timeout(WAIT, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(len);
    Some((buf, from))
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<MediaEvent>) -> MediaEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the channel is open")
}

/// A placed call whose two legs answered from two test sockets.
struct Call {
    media: BridgeMedia,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    agent: UdpSocket,
    customer: UdpSocket,
    /// slotgate's ports for the agent and the customer.
    to_agent_side: SocketAddr,
    to_customer_side: SocketAddr,
}

async fn call(
    engine: &MediaEngine,
    id: u64,
    agent_answer: fn(u16) -> SessionDescription,
    customer_answer: fn(u16) -> SessionDescription,
) -> Call {
    let (tx, events) = mpsc::unbounded_channel();
    let mut media = engine.open_bridge(id, tx).unwrap();
    let mut ports = [0u16; 2];
    for (i, side) in [Side::Pbx, Side::Trunk].into_iter().enumerate() {
        let offer = SessionDescription::parse(media.offer(side).as_bytes()).unwrap();
        assert_eq!(media.offer(side), media.offer(side), "the same offer again");
        assert_eq!(offer.address, LOOPBACK);
        assert_eq!(
            offer.codecs.iter().map(|(_, pt)| *pt).collect::<Vec<_>>(),
            vec![0, 8]
        );
        assert_eq!(offer.telephone_event, Some(101));
        ports[i] = offer.port;
    }
    assert_ne!(ports[0], ports[1]);
    let agent = bind().await;
    let customer = bind().await;
    media
        .answered(Side::Pbx, &agent_answer(agent.local_addr().unwrap().port()))
        .unwrap();
    media
        .answered(
            Side::Trunk,
            &customer_answer(customer.local_addr().unwrap().port()),
        )
        .unwrap();
    Call {
        media,
        events,
        agent,
        customer,
        to_agent_side: SocketAddr::new(LOOPBACK, ports[0]),
        to_customer_side: SocketAddr::new(LOOPBACK, ports[1]),
    }
}

/// Sends a recording as the customer would: PCMU, one packet every 20 ms,
/// stopping after `limit` packets.
async fn speak(customer: &UdpSocket, to: SocketAddr, recording: &Announcement, limit: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, payload) in recording.pcmu().chunks(160).take(limit).enumerate() {
        tick.tick().await;
        let packet = rtp(0, 0xC0FFEE, 500 + i as u16, payload);
        customer.send_to(&packet, to).await.unwrap();
    }
}

async fn detection_of(engine: &MediaEngine, id: u64, name: &str) -> Detection {
    let mut c = call(engine, id, pcmu_answer, pcmu_answer).await;
    c.media.detect(AmdSettings::default()).unwrap();
    assert!(matches!(
        c.media.detect(AmdSettings::default()),
        Err(MediaError::DetectionStarted)
    ));
    let recording = fixture(name);
    let started = Instant::now();
    // Three seconds of it: the verdict is due within two.
    let (_, (event, elapsed)) = tokio::join!(
        speak(&c.customer, c.to_customer_side, &recording, 150),
        async { (next_event(&mut c.events).await, started.elapsed()) }
    );
    assert_eq!(event.call, id);
    let MediaEventKind::Detected(detection) = event.kind else {
        panic!("{event:?}");
    };
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
    // Only one verdict, though the recording went on.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(c.events.try_recv().is_err());
    let stats = c.media.stats().await.unwrap();
    assert!(stats.detector_packets > 50, "{stats:?}");
    assert_eq!(stats.relay.from_trunk.relayed, 0, "not bridged");
    detection
}

#[tokio::test]
async fn the_engine_hears_a_machine_and_a_person_over_rtp() {
    let engine = engine(32_000, 32_099);
    let (machine, person) = tokio::join!(
        detection_of(&engine, 1, "machine_greeting.wav"),
        detection_of(&engine, 2, "hello.wav"),
    );
    assert_eq!(machine.verdict, Verdict::Machine, "{machine:?}");
    assert!(machine.after_ms < 2_000, "{machine:?}");
    assert_eq!(person.verdict, Verdict::Person, "{person:?}");
    assert!(person.after_ms < 2_000, "{person:?}");
}

#[tokio::test]
async fn without_audio_the_verdict_comes_at_the_deadline() {
    let engine = engine(32_100, 32_199);
    let mut silent = call(&engine, 3, pcmu_answer, pcmu_answer).await;
    let settings = AmdSettings {
        decision_ms: 300,
        on_not_sure: Verdict::Machine,
        ..AmdSettings::default()
    };
    let started = Instant::now();
    silent.media.detect(settings).unwrap();
    let event = next_event(&mut silent.events).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    let MediaEventKind::Detected(d) = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!((d.verdict, d.after_ms), (Verdict::Machine, 300));

    // A sender that stops sending after "hello" (silence suppression):
    // the quiet time counts as silence when the deadline comes.
    let mut quiet = call(&engine, 4, pcmu_answer, pcmu_answer).await;
    quiet.media.detect(AmdSettings::default()).unwrap();
    speak(
        &quiet.customer,
        quiet.to_customer_side,
        &fixture("hello.wav"),
        45,
    )
    .await;
    let event = next_event(&mut quiet.events).await;
    let MediaEventKind::Detected(d) = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(d.verdict, Verdict::Person);
    assert_eq!(d.why, "short greeting, then silence");
}

#[tokio::test]
async fn bridged_legs_hear_each_other_in_their_own_law() {
    let engine = engine(32_200, 32_299);
    let free = engine.free_ports();
    let mut c = call(&engine, 5, pcmu_answer, pcma_answer).await;
    assert!(matches!(
        c.media.detect(AmdSettings {
            decision_ms: 9_000,
            ..AmdSettings::default()
        }),
        Err(MediaError::Amd(_))
    ));
    c.media.bridge().unwrap();
    assert!(matches!(
        c.media.play(Side::Pbx, Arc::new(message())),
        Err(MediaError::Bridged)
    ));

    // Customer → agent: A-law becomes µ-law.
    let alaw: Vec<u8> = (0..160).map(|i| i as u8).collect();
    c.customer
        .send_to(&rtp(8, 0x7777, 1, &alaw), c.to_customer_side)
        .await
        .unwrap();
    let (got, from) = receive(&c.agent).await.expect("relayed to the agent");
    assert_eq!(from, c.to_agent_side, "sent from the agent-side port");
    let got = RtpReader::new(&got).unwrap();
    assert_eq!((got.payload_type(), got.ssrc()), (0, 0x7777));
    let want: Vec<u8> = alaw
        .iter()
        .map(|b| g711::ALAW_TO_ULAW[usize::from(*b)])
        .collect();
    assert_eq!(got.payload(), &want[..]);

    // Agent → customer: µ-law becomes A-law.
    let ulaw: Vec<u8> = (0..160).map(|i| (255 - i) as u8).collect();
    c.agent
        .send_to(&rtp(0, 0x1111, 9, &ulaw), c.to_agent_side)
        .await
        .unwrap();
    let (got, from) = receive(&c.customer).await.expect("relayed to the customer");
    assert_eq!(from, c.to_customer_side);
    let got = RtpReader::new(&got).unwrap();
    assert_eq!(
        (got.payload_type(), u16::from(got.sequence_number())),
        (8, 9)
    );
    let want: Vec<u8> = ulaw
        .iter()
        .map(|b| g711::ULAW_TO_ALAW[usize::from(*b)])
        .collect();
    assert_eq!(got.payload(), &want[..]);

    // A DTMF event passes unconverted.
    let event = [5u8, 0x8A, 0x03, 0x20];
    c.agent
        .send_to(&rtp(101, 0x1111, 10, &event), c.to_agent_side)
        .await
        .unwrap();
    let (got, _) = receive(&c.customer).await.expect("DTMF relayed");
    let got = RtpReader::new(&got).unwrap();
    assert_eq!((got.payload_type(), got.payload()), (101, &event[..]));

    // RTCP, customer's RTCP port first (it latches), then the agent's.
    let customer_rtcp = bind().await;
    let report = [0x80u8, 200, 0, 1, 0, 0, 0x77, 0x77];
    let agent_rtcp = bind().await;
    customer_rtcp
        .send_to(
            &report,
            SocketAddr::new(LOOPBACK, c.to_customer_side.port() + 1),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    agent_rtcp
        .send_to(
            &report,
            SocketAddr::new(LOOPBACK, c.to_agent_side.port() + 1),
        )
        .await
        .unwrap();
    let (got, from) = receive(&customer_rtcp).await.expect("RTCP relayed");
    assert_eq!(got, report);
    assert_eq!(from.port(), c.to_customer_side.port() + 1);

    let stats = c.media.stats().await.unwrap();
    assert_eq!(stats.relay.from_trunk.relayed, 1);
    assert_eq!(stats.relay.from_trunk.converted, 1);
    assert_eq!(stats.relay.from_pbx.relayed, 2);
    assert_eq!(stats.relay.from_pbx.converted, 1);
    assert_eq!(stats.relay.from_pbx.rtcp_relayed, 1);

    // A second answer from the customer, now in µ-law: no conversion.
    let port = c.customer.local_addr().unwrap().port();
    c.media.answered(Side::Trunk, &pcmu_answer(port)).unwrap();
    c.agent
        .send_to(&rtp(0, 0x1111, 11, &ulaw), c.to_agent_side)
        .await
        .unwrap();
    let (got, _) = receive(&c.customer).await.expect("relayed after re-answer");
    assert_eq!(RtpReader::new(&got).unwrap().payload(), &ulaw[..]);

    let ports = [c.to_agent_side.port(), c.to_customer_side.port()];
    c.media.close();
    let start = Instant::now();
    while engine.free_ports() != free {
        assert!(start.elapsed() < WAIT, "ports were not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for port in ports {
        std::net::UdpSocket::bind((LOOPBACK, port)).expect("the port is free again");
    }
}

/// Five packets of a ramp, each different.
fn message() -> Announcement {
    let samples: Vec<i16> = (0..800).map(|i| (i * 40 - 16_000) as i16).collect();
    Announcement::from_linear(&samples).unwrap()
}

#[tokio::test]
async fn a_message_is_played_once_to_one_side_then_reported() {
    let engine = engine(32_300, 32_399);
    let mut c = call(&engine, 6, pcmu_answer, pcma_answer).await;
    let (tx, _events) = mpsc::unbounded_channel();
    let mut unanswered = engine.open_bridge(7, tx).unwrap();
    assert!(matches!(
        unanswered.play(Side::Trunk, Arc::new(message())),
        Err(MediaError::NotAnswered(Side::Trunk))
    ));
    assert!(matches!(
        unanswered.detect(AmdSettings::default()),
        Err(MediaError::NotAnswered(Side::Trunk))
    ));
    assert!(matches!(
        unanswered.bridge(),
        Err(MediaError::NotAnswered(Side::Pbx))
    ));

    let message = Arc::new(message());
    c.media.play(Side::Trunk, message.clone()).unwrap();
    let mut payloads = Vec::new();
    let mut ssrc = None;
    for i in 0..5 {
        let (packet, from) = receive(&c.customer).await.expect("a message packet");
        assert_eq!(from, c.to_customer_side);
        let read = RtpReader::new(&packet).unwrap();
        assert_eq!(read.payload_type(), 8, "the customer answered A-law");
        assert_eq!(read.mark(), i == 0);
        assert_eq!(*ssrc.get_or_insert(read.ssrc()), read.ssrc());
        payloads.extend_from_slice(read.payload());
    }
    assert_eq!(payloads, message.pcma());
    let event = next_event(&mut c.events).await;
    assert_eq!(
        event,
        MediaEvent {
            call: 6,
            kind: MediaEventKind::PlaybackEnded { side: Side::Trunk }
        }
    );
    // Played once: nothing follows, and the agent heard none of it.
    let mut buf = [0u8; 256];
    assert!(
        timeout(Duration::from_millis(150), c.customer.recv_from(&mut buf))
            .await
            .is_err()
    );
    assert!(c.agent.try_recv_from(&mut buf).is_err());
    assert_eq!(c.media.stats().await.unwrap().played_packets, 5);
}
