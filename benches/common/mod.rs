//! Drives the sans-I/O B2BUA core through answered calls without sockets,
//! timing only the core: the shared part of the benches that price a call
//! (`core_calls`, `identity`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slotgate::b2bua::build::response_to;
use slotgate::b2bua::Core;
use slotgate::config::Config;
use slotgate::sip::framing::frame_datagram;
use slotgate::sip::message::{Message, Name};
use slotgate::sip::parse::parse;
use slotgate::sip::{Peer, Transport};

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

/// The core's config for a bench: loopback addresses, no trunk pings,
/// then `extra`.
pub fn config(extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "[sip]\nudp_listen = \"127.0.0.1:5060\"\n[trunk]\naddress = \"127.0.0.1:5080\"\noptions_interval_secs = 0\n{extra}"
    ))
    .unwrap()
}

/// µs of core CPU per answered call (INVITE/180/200/ACK/BYE/200 on both
/// legs, 14 messages) over `calls` calls; call `i` dials `callee(i)` and
/// its INVITE carries `headers` (whole lines, CRLF-terminated).
pub fn answered_call_cost(
    config: &Config,
    calls: usize,
    callee: impl Fn(usize) -> String,
    headers: &str,
) -> f64 {
    let pbx = peer("127.0.0.1:5062");
    let trunk = peer("127.0.0.1:5080");
    let trunk_addr: SocketAddr = trunk.addr;
    let start = Instant::now();
    let mut core = Core::new(config, start, chrono::Utc::now());
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
    for i in 0..calls {
        now += Duration::from_micros(200);
        let callee = callee(i);
        let invite = format!(
            "INVITE sip:{callee}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{i}\r\n\
             Max-Forwards: 70\r\nFrom: \"bench\" <sip:4001@127.0.0.1:5062>;tag=f{i}\r\nTo: <sip:{callee}@127.0.0.1:5060>\r\n\
             Call-ID: {i}@bench\r\nCSeq: 1 INVITE\r\nContact: <sip:4001@127.0.0.1:5062>\r\n{headers}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
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
        let mut ringing = response_to(&b_invite, 180, "Ringing", Some("t"), "uas");
        ringing.push(Name::Contact, "<sip:gw@127.0.0.1:5080>");
        let mut ok = response_to(&b_invite, 200, "OK", Some("t"), "uas");
        ok.push(Name::Contact, "<sip:gw@127.0.0.1:5080>");
        ok.set_body(Some("application/sdp"), Bytes::from(sdp));
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
    in_core.as_secs_f64() * 1e6 / calls as f64
}
