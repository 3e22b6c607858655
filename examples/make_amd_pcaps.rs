//! Turns the answering-machine fixtures (8 kHz mono WAV) into the pcap
//! captures SIPp's `play_pcap_audio` replays, so the end-to-end tests can
//! have a SIPp trunk answer with a real greeting.
//!
//! SIPp reads a capture with libpcap, keeps each UDP payload (the whole RTP
//! packet) with its capture time, and resends the payloads with the same
//! spacing from its media port to the port in slotgate's SDP. So the
//! capture is Ethernet / IPv4 / UDP / RTP, PCMU (payload type 0), one
//! 20 ms packet per record, every record on the same ports, with sequence
//! numbers and timestamps increasing. Everything is fixed (SSRC, start
//! time), so regenerating gives the same bytes.
//!
//! ```text
//! cargo run --example make_amd_pcaps                 # both fixtures
//! cargo run --example make_amd_pcaps -- IN.wav OUT.pcap
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use slotgate::media::Announcement;

/// Samples (and µ-law bytes) in one 20 ms packet.
const PACKET_SAMPLES: usize = 160;
/// The capture's first packet: 2024-01-01T00:00:00Z.
const START_SECONDS: u32 = 1_704_067_200;
const SSRC: u32 = 0x5107_A3D0;
const FIRST_SEQUENCE: u16 = 1_000;
const FIRST_TIMESTAMP: u32 = 8_000;
/// Documentation addresses (RFC 5737) and ports; SIPp replaces them.
const SOURCE: [u8; 4] = [192, 0, 2, 10];
const DESTINATION: [u8; 4] = [192, 0, 2, 20];
const SOURCE_PORT: u16 = 6_000;
const DESTINATION_PORT: u16 = 7_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let jobs: Vec<(PathBuf, PathBuf)> = match args.as_slice() {
        [] => ["machine_greeting", "hello"]
            .iter()
            .map(|name| {
                (
                    root.join("tests/fixtures/amd").join(format!("{name}.wav")),
                    root.join("sip-scenarios/pcap").join(format!("{name}.pcap")),
                )
            })
            .collect(),
        [input, output] => vec![(input.into(), output.into())],
        _ => bail!("usage: make_amd_pcaps [IN.wav OUT.pcap]"),
    };
    for (input, output) in jobs {
        let packets = convert(&input, &output)?;
        println!(
            "{} -> {}: {packets} packets",
            input.display(),
            output.display()
        );
    }
    Ok(())
}

fn convert(input: &Path, output: &Path) -> anyhow::Result<usize> {
    let audio = Announcement::from_wav_file(input)
        .with_context(|| format!("reading {}", input.display()))?;
    // Padded to whole packets by the reader.
    let ulaw = audio.pcmu();
    let mut pcap = pcap_header();
    for (i, payload) in ulaw.chunks(PACKET_SAMPLES).enumerate() {
        let index = u32::try_from(i).context("too long")?;
        let rtp = rtp_packet(index, payload);
        let frame = ethernet_frame(&rtp);
        let micros = u64::from(index) * 20_000;
        let seconds = START_SECONDS + u32::try_from(micros / 1_000_000)?;
        let frame_len = u32::try_from(frame.len())?;
        pcap.extend_from_slice(&seconds.to_le_bytes());
        pcap.extend_from_slice(&u32::try_from(micros % 1_000_000)?.to_le_bytes());
        pcap.extend_from_slice(&frame_len.to_le_bytes());
        pcap.extend_from_slice(&frame_len.to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(output, pcap).with_context(|| format!("writing {}", output.display()))?;
    Ok(ulaw.len() / PACKET_SAMPLES)
}

/// The classic libpcap file header: microsecond times, Ethernet links.
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes()); // UTC
    h.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
    h.extend_from_slice(&65_535u32.to_le_bytes()); // snap length
    h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    h
}

/// RTP, RFC 3550 §5.1: version 2, PCMU, the marker on the first packet.
fn rtp_packet(index: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(if index == 0 { 0x80 } else { 0x00 });
    // Wrapping on purpose: sequence numbers and timestamps are modular.
    let sequence = FIRST_SEQUENCE.wrapping_add(index as u16);
    let timestamp = FIRST_TIMESTAMP.wrapping_add(index.wrapping_mul(PACKET_SAMPLES as u32));
    p.extend_from_slice(&sequence.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ethernet_frame(rtp: &[u8]) -> Vec<u8> {
    let udp_len = (8 + rtp.len()) as u16;
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + usize::from(ip_len));
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x20]); // destination MAC (local)
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x10]); // source MAC (local)
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
    ip.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum below
    ip.extend_from_slice(&SOURCE);
    ip.extend_from_slice(&DESTINATION);
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&SOURCE_PORT.to_be_bytes());
    udp.extend_from_slice(&DESTINATION_PORT.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(rtp);
    // The pseudo-header: addresses, protocol, length.
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&SOURCE);
    pseudo.extend_from_slice(&DESTINATION);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let partial = sum_words(&pseudo, 0);
    let mut sum = checksum(&udp, partial);
    if sum == 0 {
        sum = 0xFFFF;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

fn sum_words(bytes: &[u8], mut sum: u32) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    sum
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8], start: u32) -> u16 {
    let mut sum = sum_words(bytes, start);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}
