//! Early media end to end: a campaign that holds with `183` plays
//! slotgate's announcement to the PBX while the person is asked, and once
//! the person says "now" and the trunk answers, audio flows between the PBX
//! and the trunk through slotgate, converted between the PBX's µ-law and
//! the trunk's A-law.
//!
//! SIPp plays the signalling of both sides (`pbx_gate_early_media.xml`,
//! `trunk_answer_media.xml`); their SDP points at two sockets of this test,
//! which check the RTP. SIPp is Debian's `sip-tester` package.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use slotgate::media::g711;

use common::seed::{block_on, trusted_with_subscriber};
use common::sipp::{
    call_counts, free_ports, port_taken, read_or_note, require_sipp, sipp_args, spawn_sipp, tail,
    Transport,
};
use common::{hours_including_now, Slotgate};

const CALLEE: &str = "+33142685302";

/// One RTP packet: version 2, no padding/extension/CSRC.
fn rtp(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, payload_type & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

struct Received {
    from: SocketAddr,
    marker: bool,
    payload_type: u8,
    seq: u16,
    ssrc: u32,
    payload: Vec<u8>,
}

fn receive(sock: &UdpSocket) -> Option<Received> {
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    if n < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    Some(Received {
        from,
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7f,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: buf[12..n].to_vec(),
    })
}

#[test]
fn a_call_held_with_early_media_hears_the_announcement_then_talks_through_slotgate() {
    require_sipp();
    let dir = tempfile::tempdir().expect("tempdir");
    let enterprise = block_on(trusted_with_subscriber(
        &Slotgate::db_in(dir.path()),
        CALLEE,
    ));
    let [sg_port, trunk_port, pbx_port] = free_ports::<3>();
    let pbx_rtp = UdpSocket::bind("127.0.0.1:0").expect("pbx rtp");
    let trunk_rtp = UdpSocket::bind("127.0.0.1:0").expect("trunk rtp");
    for s in [&pbx_rtp, &trunk_rtp] {
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
    }
    let pbx_rtp_port = pbx_rtp.local_addr().expect("addr").port();
    let trunk_rtp_port = trunk_rtp.local_addr().expect("addr").port();
    let hours = hours_including_now();
    let media_base = 31_000 + (std::process::id() % 500) as u16 * 4;
    let config = format!(
        "[pbx]\nallowed_sources = [\"127.0.0.1/32\"]\n\
         [trunk]\naddress = \"127.0.0.1:{trunk_port}\"\noptions_interval_secs = 0\n\
         [shutdown]\ndrain_timeout_secs = 5\n\
         [prompts]\ncalling_hours = \"{hours}\"\n\
         [channels.simulator]\nauto_reply = \"now\"\nauto_reply_delay_ms = 1500\n\
         [media]\nport_min = {media_base}\nport_max = {}\n\
         [log]\nlevel = \"slotgate=debug,info\"\n\
         [gate]\ndefault_enterprise = \"{enterprise}\"\ncalling_hours = \"{hours}\"\nhold_with = \"183\"\n",
        media_base + 99
    );
    let slotgate = Slotgate::start_in(dir, sg_port, "", &config);
    let run_dir = tempfile::tempdir().expect("run dir");
    let work = run_dir.path();

    let mut args = sipp_args(
        "trunk",
        "trunk_answer_media.xml",
        "127.0.0.1",
        trunk_port,
        Transport::Udp,
        work,
        1,
        None,
    );
    args.extend([
        "-key".into(),
        "trunk_rtp".into(),
        trunk_rtp_port.to_string(),
    ]);
    let mut trunk = spawn_sipp("trunk", args, work);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_taken(trunk_port, Transport::Udp) {
        assert!(Instant::now() < deadline, "trunk sipp did not bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut args = sipp_args(
        "pbx",
        "pbx_gate_early_media.xml",
        "127.0.0.1",
        pbx_port,
        Transport::Udp,
        work,
        1,
        Some(CALLEE),
    );
    args.insert(0, slotgate.addr().to_string());
    args.extend(["-key".into(), "pbx_rtp".into(), pbx_rtp_port.to_string()]);
    let mut pbx = spawn_sipp("pbx", args, work);
    let (pbx_messages, trunk_messages) = (pbx.message_file(), trunk.message_file());
    let explain = |what: &str| -> String {
        format!(
            "{what}\n=== slotgate log ===\n{}\n=== pbx messages ===\n{}\n=== trunk messages ===\n{}",
            tail(&slotgate.log(), 60),
            tail(&read_or_note(&pbx_messages), 60),
            tail(&read_or_note(&trunk_messages), 60)
        )
    };

    // While held: the announcement, in the PBX's law, from slotgate.
    let mut announcement: Vec<Received> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while announcement.len() < 25 && Instant::now() < deadline {
        if let Some(p) = receive(&pbx_rtp) {
            announcement.push(p);
        }
    }
    assert!(
        announcement.len() >= 25,
        "{}",
        explain(&format!("{} announcement packets", announcement.len()))
    );
    let first = &announcement[0];
    assert!(first.marker, "marker on the first packet");
    assert_eq!(first.payload_type, 0, "PCMU, as the PBX offered");
    let sg_pbx_side = first.from;
    for pair in announcement.windows(2) {
        assert_eq!(pair[1].ssrc, first.ssrc, "one SSRC");
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1), "consecutive");
        assert_eq!(pair[1].payload.len(), 160, "20 ms of G.711");
        assert_eq!(pair[1].from, sg_pbx_side);
    }

    // Once forwarded: the PBX's µ-law reaches the trunk as A-law...
    let spoken: Vec<u8> = (0..160u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut expected_at_trunk = spoken.clone();
    g711::transcode_ulaw_to_alaw(&mut expected_at_trunk);
    let mut sg_trunk_side = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 1000u16;
    while sg_trunk_side.is_none() && Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        let packet = rtp(0, seq, u32::from(seq) * 160, 0x5057_0001, &spoken);
        let _ = pbx_rtp.send_to(&packet, sg_pbx_side);
        if let Some(p) = receive(&trunk_rtp) {
            assert_eq!(p.payload_type, 8, "{}", explain("A-law toward the trunk"));
            assert_eq!(p.payload, expected_at_trunk, "converted µ-law → A-law");
            sg_trunk_side = Some(p.from);
        }
    }
    let Some(sg_trunk_side) = sg_trunk_side else {
        panic!("{}", explain("no RTP reached the trunk side"));
    };
    assert_ne!(sg_trunk_side.port(), sg_pbx_side.port(), "one port per leg");

    // ...and the trunk's A-law reaches the PBX as µ-law.
    let answered: Vec<u8> = (0..160u32).map(|i| (i * 13 % 241) as u8).collect();
    let mut expected_at_pbx = answered.clone();
    g711::transcode_alaw_to_ulaw(&mut expected_at_pbx);
    let mut relayed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 5000u16;
    while relayed < 10 && Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        let packet = rtp(8, seq, u32::from(seq) * 160, 0x7472_0001, &answered);
        let _ = trunk_rtp.send_to(&packet, sg_trunk_side);
        while let Some(p) = receive(&pbx_rtp) {
            if p.payload == expected_at_pbx {
                assert_eq!(p.payload_type, 0, "µ-law toward the PBX");
                assert_eq!(p.from, sg_pbx_side, "from the port the PBX was given");
                relayed += 1;
            }
        }
    }
    assert!(
        relayed >= 10,
        "{}",
        explain(&format!("{relayed} trunk packets reached the PBX"))
    );

    // The signalling ends cleanly on both sides.
    let pbx_status = pbx.wait(Duration::from_secs(30));
    let trunk_status = trunk.wait(Duration::from_secs(15));
    assert!(
        pbx_status.is_some_and(|s| s.success()),
        "{}",
        explain(&format!("PBX sipp {pbx_status:?}"))
    );
    assert!(
        trunk_status.is_some_and(|s| s.success()),
        "{}",
        explain(&format!("trunk sipp {trunk_status:?}"))
    );
    for sipp in [&pbx, &trunk] {
        assert_eq!(call_counts(&sipp.stat_file()), Ok((1, 0)), "{}", sipp.role);
    }
    // The 200 kept the 183's media address.
    let log = read_or_note(&pbx.log_file());
    let port_of = |label: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|p| p.trim().to_string())
    };
    assert_eq!(
        port_of("pbx-side-port "),
        Some(sg_pbx_side.port().to_string()),
        "{log}"
    );
    assert_eq!(port_of("pbx-200-port "), port_of("pbx-side-port "), "{log}");
    let trunk_log = read_or_note(&trunk.log_file());
    assert!(
        trunk_log.contains(&format!("trunk-side-port {}", sg_trunk_side.port())),
        "{trunk_log}"
    );
}
