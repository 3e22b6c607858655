//! What STIR/SHAKEN costs per call: one ES256 PASSporT signature alone,
//! and an answered call through the sans-I/O core (14 messages, as in
//! `core_calls`) with caller ID selection and signing off, selection only,
//! and selection plus signing, measured in one run so the figures compare.
//!
//! `cargo bench --bench identity` prints µs per signature and µs and
//! calls/s per call for each configuration (each the best of three runs).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slotgate::b2bua::build::response_to;
use slotgate::b2bua::Core;
use slotgate::callerid::passport::{self, Attest, Claims, Ppt};
use slotgate::callerid::signer::Signer;
use slotgate::callerid::{identity, uuid_v4};
use slotgate::config::Config;
use slotgate::sip::framing::frame_datagram;
use slotgate::sip::message::{Message, Name};
use slotgate::sip::parse::parse;
use slotgate::sip::{Peer, Transport};

const SIGNATURES: usize = 20_000;
const CALLS: usize = 20_000;
const X5U: &str = "https://cert.example.org/slotgate.pem";

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

fn wire(bytes: &Bytes) -> Message {
    let f = frame_datagram(bytes, 65535).unwrap();
    parse(f.head, f.body).unwrap()
}

fn key_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/TEST-ONLY-stir-key.pem")
        .display()
        .to_string()
}

/// µs per PASSporT: claims, canonical JSON, base64url, ES256, header.
fn signing_cost() -> f64 {
    let signer = Signer::from_pem_file(Path::new(&key_file())).unwrap();
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..SIGNATURES {
        let claims = Claims {
            attest: Some(Attest::A),
            orig: "12125550122".into(),
            dest: format!("1212555{:04}", i % 10_000),
            iat: 1_700_000_000 + i as i64,
            origid: Some(uuid_v4()),
            rcd: None,
            crn: None,
        };
        let input =
            passport::signing_input(&passport::header(Ppt::Shaken, X5U), &claims.to_value());
        let sig = signer.sign(input.as_bytes()).unwrap();
        bytes += identity::build(&passport::compact(&input, &sig), X5U, Ppt::Shaken).len();
    }
    assert!(bytes > 0);
    start.elapsed().as_secs_f64() * 1e6 / SIGNATURES as f64
}

/// µs of core CPU per answered call under `extra` config.
fn core_cost(extra: &str) -> f64 {
    let config = Config::from_toml_str(&format!(
        "[sip]\nudp_listen = \"127.0.0.1:5060\"\n[trunk]\naddress = \"127.0.0.1:5080\"\noptions_interval_secs = 0\n{extra}"
    ))
    .unwrap();
    let pbx = peer("127.0.0.1:5062");
    let trunk = peer("127.0.0.1:5080");
    let trunk_addr: SocketAddr = trunk.addr;
    let start = Instant::now();
    let mut core = Core::new(&config, start, chrono::Utc::now());
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let mut in_core = Duration::ZERO;
    let mut now = start;
    let mut timed = |core: &mut Core, f: &mut dyn FnMut(&mut Core)| {
        let t = Instant::now();
        f(core);
        let out: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
        while core.poll_record().is_some() {}
        in_core += t.elapsed();
        out
    };
    for i in 0..CALLS {
        now += Duration::from_micros(200);
        let invite = format!(
            "INVITE sip:+1212555{:04}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{i}\r\n\
             Max-Forwards: 70\r\nFrom: \"bench\" <sip:4001@127.0.0.1:5062>;tag=f{i}\r\nTo: <sip:+1212555{:04}@127.0.0.1:5060>\r\n\
             Call-ID: {i}@bench\r\nCSeq: 1 INVITE\r\nContact: <sip:4001@127.0.0.1:5062>\r\n\
             X-Slotgate-Enterprise: acme\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            i % 10_000,
            i % 10_000,
            sdp.len()
        );
        let out = timed(&mut core, &mut |c| {
            c.handle_datagram(pbx, invite.as_bytes(), now)
        });
        let b_invite = out
            .iter()
            .find(|t| t.peer.addr == trunk_addr)
            .map(|t| wire(&t.bytes))
            .expect("B-leg INVITE");
        let mut ok = response_to(&b_invite, 200, "OK", Some("t"), "uas");
        ok.push(Name::Contact, "<sip:gw@127.0.0.1:5080>");
        ok.set_body(Some("application/sdp"), Bytes::from(sdp));
        let mut ringing = response_to(&b_invite, 180, "Ringing", Some("t"), "uas");
        ringing.push(Name::Contact, "<sip:gw@127.0.0.1:5080>");
        let (ringing, ok) = (ringing.to_bytes(), ok.to_bytes());
        timed(&mut core, &mut |c| c.handle_datagram(trunk, &ringing, now));
        let out = timed(&mut core, &mut |c| c.handle_datagram(trunk, &ok, now));
        let a_ok = wire(&out[0].bytes);
        let to = a_ok.get(&Name::To).unwrap().to_string();
        let in_dialog = |method: &str, cseq: u32| {
            format!(
                "{method} sip:slotgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{method}-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: \"bench\" <sip:4001@127.0.0.1:5062>;tag=f{i}\r\nTo: {to}\r\n\
                 Call-ID: {i}@bench\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let ack = in_dialog("ACK", 1);
        timed(&mut core, &mut |c| {
            c.handle_datagram(pbx, ack.as_bytes(), now)
        });
        let bye = in_dialog("BYE", 2);
        let out = timed(&mut core, &mut |c| {
            c.handle_datagram(pbx, bye.as_bytes(), now)
        });
        let b_bye = wire(&out[0].bytes);
        let bye_ok = response_to(&b_bye, 200, "OK", None, "uas").to_bytes();
        timed(&mut core, &mut |c| c.handle_datagram(trunk, &bye_ok, now));
        if i % 1000 == 0 {
            timed(&mut core, &mut |c| c.handle_timeout(now));
        }
    }
    assert_eq!(core.active_calls(), 0, "every call completed");
    in_core.as_secs_f64() * 1e6 / CALLS as f64
}

fn main() {
    // The bench measures CPU, not the log line each call writes.
    let selection = "[caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"acme\"\ndefault_number = \"+12125550100\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550123\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+13125550133\"\nattest = \"B\"\n";
    let signing = format!(
        "{selection}[stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n",
        key_file()
    );
    let sign = (0..3).map(|_| signing_cost()).fold(f64::MAX, f64::min);
    println!("identity: ES256 PASSporT + Identity header: {sign:.1} µs per call ({SIGNATURES} signatures)");
    // Warm-up so the first configuration measured is not penalised.
    core_cost("");
    for (name, extra) in [
        ("caller ID off, signing off", ""),
        ("selection on, signing off", selection),
        ("selection on, signing on ", signing.as_str()),
    ] {
        // Best of three: the machine's other work only ever adds time.
        let per_call = (0..3).map(|_| core_cost(extra)).fold(f64::MAX, f64::min);
        println!(
            "core, {name}: {per_call:.1} µs CPU per answered call, {:.0} calls/s per core",
            1e6 / per_call
        );
    }
}
