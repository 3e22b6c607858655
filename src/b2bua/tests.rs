//! Deterministic call-flow tests of the B2BUA core: messages in, messages
//! out, time passed by hand. A 32-second timeout takes microseconds here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Core;
use crate::config::Config;
use crate::sip::digest;
use crate::sip::headers;
use crate::sip::message::{Message, Name};
use crate::sip::parse;
use crate::sip::{Peer, Transport};

const PBX: &str = "127.0.0.1:5062";
const TRUNK: &str = "127.0.0.1:5080";

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

struct Net {
    core: Core,
    now: Instant,
}

impl Net {
    fn new(extra: &str) -> Net {
        Net::with_trunk("", extra)
    }

    fn with_trunk(trunk: &str, extra: &str) -> Net {
        let ping = if trunk.contains("options_interval_secs") {
            ""
        } else {
            "options_interval_secs = 0"
        };
        let text = format!(
            "[sip]\nudp_listen = \"127.0.0.1:5060\"\n[trunk]\naddress = \"{TRUNK}\"\n{ping}\n{trunk}\n{extra}"
        );
        let config = Config::from_toml_str(&text).unwrap();
        let now = Instant::now();
        Net {
            core: Core::new(&config, now, chrono::Utc::now()),
            now,
        }
    }

    fn send(&mut self, from: &str, text: &str) -> Vec<(SocketAddr, Message)> {
        self.core
            .handle_datagram(udp(from), text.as_bytes(), self.now);
        self.collect()
    }

    fn send_msg(&mut self, from: &str, msg: &Message) -> Vec<(SocketAddr, Message)> {
        self.core
            .handle_datagram(udp(from), &msg.to_bytes(), self.now);
        self.collect()
    }

    fn advance(&mut self, d: Duration) -> Vec<(SocketAddr, Message)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.core.poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.core.handle_timeout(self.now);
            out.extend(self.collect());
        }
        self.now = end;
        out
    }

    fn collect(&mut self) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| self.core.poll_transmit())
            .map(|t| (t.peer.addr, parse_wire(&t.bytes)))
            .collect()
    }
}

fn parse_wire(bytes: &Bytes) -> Message {
    let f = crate::sip::framing::frame_datagram(bytes, 65535).unwrap();
    match parse::parse(f.head, f.body) {
        Ok(m) => m,
        Err(_) => panic!(
            "slotgate sent an unparseable message:\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn to(list: &[(SocketAddr, Message)], addr: &str) -> Vec<Message> {
    let addr: SocketAddr = addr.parse().unwrap();
    list.iter()
        .filter(|(a, _)| *a == addr)
        .map(|(_, m)| m.clone())
        .collect()
}

fn invite(call_id: &str, extra: &str) -> String {
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:+15551230001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PBX};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Agent 7\" <sip:4007@127.0.0.1>;tag=pbxtag\r\n\
         To: <sip:+15551230001@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 10 INVITE\r\n\
         Contact: <sip:4007@{PBX}>\r\n\
         P-Asserted-Identity: <sip:+15550000001@pbx.example.com>\r\n\
         X-Slotgate-Campaign: spring\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The trunk's response to `req`, with its tag and Contact.
fn answer(req: &Message, code: u16, reason: &str) -> Message {
    let mut resp = crate::b2bua::build::response_to(req, code, reason, Some("trunktag"), "trunk");
    resp.push(Name::Contact, format!("<sip:gw@{TRUNK}>"));
    if code == 200 {
        resp.set_body(
            Some("application/sdp"),
            Bytes::from_static(b"v=0\r\ns=answer\r\n"),
        );
    }
    resp
}

fn status(m: &Message) -> u16 {
    m.status().unwrap_or(0)
}

/// Builds an in-dialog request from the PBX, using slotgate's To tag.
fn pbx_request(method: &str, call_id: &str, cseq: u32, a_to: &str, branch: &str) -> String {
    format!(
        "{method} sip:slotgate@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PBX};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Agent 7\" <sip:4007@127.0.0.1>;tag=pbxtag\r\n\
         To: {a_to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn answered_call_is_bridged_as_two_independent_dialogs() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-1", ""));
    let pbx = to(&out, PBX);
    assert_eq!(pbx.iter().map(status).collect::<Vec<_>>(), [100]);
    let trunk = to(&out, TRUNK);
    assert_eq!(trunk.len(), 1);
    let b = &trunk[0];
    assert_eq!(b.request_uri(), format!("sip:+15551230001@{TRUNK}"));
    assert_ne!(b.get(&Name::CallId), Some("call-1"), "new Call-ID");
    let from = headers::parse_name_addr(b.get(&Name::From).unwrap()).unwrap();
    assert_eq!(from.uri, "sip:4007@127.0.0.1");
    assert_ne!(from.tag(), Some("pbxtag"), "new From tag");
    assert_eq!(b.all(&Name::Via).count(), 1, "only slotgate's Via");
    assert!(!b.get(&Name::Via).unwrap().contains("z9hG4bK-call-1"));
    assert_eq!(b.get(&Name::MaxForwards), Some("69"));
    assert_eq!(
        b.get_named("P-Asserted-Identity"),
        Some("<sip:+15550000001@pbx.example.com>")
    );
    assert!(
        b.get_named("X-Slotgate-Campaign").is_none(),
        "internal headers stay inside"
    );
    assert!(b.body.starts_with(b"v=0"), "SDP passes unchanged");

    let out = net.send_msg(TRUNK, &answer(b, 180, "Ringing"));
    let ringing = &to(&out, PBX)[0];
    assert_eq!(status(ringing), 180);
    assert_eq!(ringing.get(&Name::CallId), Some("call-1"));
    let a_to = ringing.get(&Name::To).unwrap().to_string();
    assert!(headers::parse_name_addr(&a_to).unwrap().tag().is_some());

    let out = net.send_msg(TRUNK, &answer(b, 200, "OK"));
    let ok = &to(&out, PBX)[0];
    assert_eq!(status(ok), 200);
    assert_eq!(
        ok.get(&Name::To),
        Some(a_to.as_str()),
        "same A-leg tag as the 180"
    );
    assert_eq!(&ok.body[..], b"v=0\r\ns=answer\r\n");

    let out = net.send(PBX, &pbx_request("ACK", "call-1", 10, &a_to, "ack1"));
    let ack = &to(&out, TRUNK)[0];
    assert_eq!(ack.method().map(|m| m.as_str()), Some("ACK"));
    assert_eq!(
        ack.request_uri(),
        format!("sip:gw@{TRUNK}"),
        "ACK goes to the trunk's Contact"
    );
    assert_eq!(ack.get(&Name::CSeq), Some("1 ACK"));
    assert_eq!(ack.get(&Name::CallId), b.get(&Name::CallId));

    // The PBX hangs up.
    let out = net.send(PBX, &pbx_request("BYE", "call-1", 11, &a_to, "bye1"));
    let bye = &to(&out, TRUNK)[0];
    assert_eq!(bye.get(&Name::CSeq), Some("2 BYE"));
    assert!(
        to(&out, PBX).is_empty(),
        "BYE answered once the trunk answers"
    );
    assert_eq!(net.core.poll_record(), None);
    let out = net.send_msg(TRUNK, &answer(bye, 200, "OK"));
    assert_eq!(status(&to(&out, PBX)[0]), 200);
    let record = net.core.poll_record().expect("a call record");
    assert_eq!(record.a_call_id, "call-1");
    assert_eq!(record.final_status, 200);
    assert_eq!(record.reason, "BYE from pbx");
    assert!(record.answered_at.is_some());
    assert_eq!(net.core.active_calls(), 0);
}

#[test]
fn busy_is_relayed_with_its_reason_phrase_and_the_trunk_gets_its_ack() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-2", ""));
    let b = to(&out, TRUNK).remove(0);
    let out = net.send_msg(TRUNK, &answer(&b, 486, "Busy Here Right Now"));
    let acks = to(&out, TRUNK);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].get(&Name::Via),
        b.get(&Name::Via),
        "hop-by-hop ACK reuses the branch"
    );
    let busy = &to(&out, PBX)[0];
    assert_eq!(status(busy), 486);
    assert_eq!(busy.reason_phrase(), "Busy Here Right Now");
    let record = net.core.poll_record().unwrap();
    assert_eq!(record.final_status, 486);
    assert_eq!(record.ended_by.as_deref(), Some("trunk"));
}

#[test]
fn cancel_waits_for_a_provisional_then_crosses_and_487_comes_back() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-3", ""));
    let b = to(&out, TRUNK).remove(0);
    let cancel = "CANCEL sip:+15551230001@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-call-3\r\nMax-Forwards: 70\r\n\
        From: \"Agent 7\" <sip:4007@127.0.0.1>;tag=pbxtag\r\nTo: <sip:+15551230001@127.0.0.1>\r\n\
        Call-ID: call-3\r\nCSeq: 10 CANCEL\r\nContent-Length: 0\r\n\r\n";
    let out = net.send(PBX, cancel);
    assert_eq!(status(&to(&out, PBX)[0]), 200, "CANCEL answered at once");
    assert!(
        to(&out, TRUNK).is_empty(),
        "no CANCEL before a provisional response"
    );
    let out = net.send_msg(TRUNK, &answer(&b, 180, "Ringing"));
    assert!(to(&out, PBX).is_empty(), "no ringing relayed after CANCEL");
    let c = &to(&out, TRUNK)[0];
    assert_eq!(c.method().map(|m| m.as_str()), Some("CANCEL"));
    assert_eq!(c.get(&Name::Via), b.get(&Name::Via));
    let out = net.send_msg(TRUNK, &answer(&b, 487, "Request Terminated"));
    assert_eq!(status(&to(&out, PBX)[0]), 487);
    let record = net.core.poll_record().unwrap();
    assert_eq!(
        (record.final_status, record.reason.as_str()),
        (487, "CANCEL from pbx")
    );
}

#[test]
fn unacknowledged_2xx_is_retransmitted_then_the_call_is_torn_down() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-4", ""));
    let b = to(&out, TRUNK).remove(0);
    net.send_msg(TRUNK, &answer(&b, 200, "OK"));
    let out = net.advance(Duration::from_secs(40));
    let resent = to(&out, PBX).iter().filter(|m| status(m) == 200).count();
    // T1 doubling to T2: 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5 s.
    assert!((9..=11).contains(&resent), "resent {resent} times");
    let mut byes: Vec<&str> = out
        .iter()
        .filter(|(_, m)| m.method().map(|m| m.as_str()) == Some("BYE"))
        .filter_map(|(_, m)| m.get(&Name::CallId))
        .collect();
    byes.sort();
    byes.dedup();
    assert_eq!(byes.len(), 2, "BYE to both legs");
    let record = net.core.poll_record().unwrap();
    assert_eq!(record.reason, "no ACK from pbx");
}

#[test]
fn silent_trunk_gives_408_after_timer_b() {
    let mut net = Net::new("");
    net.send(PBX, &invite("call-5", ""));
    let out = net.advance(Duration::from_millis(31_600));
    assert_eq!(to(&out, TRUNK).len(), 6, "Timer A retransmissions");
    assert!(to(&out, PBX).is_empty());
    let out = net.advance(Duration::from_millis(500));
    assert_eq!(status(&to(&out, PBX)[0]), 408);
}

#[test]
fn sources_outside_the_pbx_list_get_403_and_never_reach_the_trunk() {
    let mut net = Net::new("[pbx]\nallowed_sources = [\"10.0.0.0/8\"]\n");
    let out = net.send(PBX, &invite("call-6", ""));
    assert!(to(&out, TRUNK).is_empty());
    assert_eq!(status(&to(&out, PBX)[0]), 403);
    assert_eq!(net.core.poll_record().unwrap().final_status, 403);

    let mut quiet =
        Net::new("[pbx]\nallowed_sources = [\"10.0.0.0/8\"]\non_unknown_source = \"ignore\"\n");
    assert!(quiet.send(PBX, &invite("call-6b", "")).is_empty());
}

#[test]
fn rate_limit_answers_503_with_retry_after() {
    let mut net = Net::new("[pbx]\nrate_limit = 2\n");
    let mut codes = Vec::new();
    for i in 0..4 {
        let out = net.send(PBX, &invite(&format!("rl-{i}"), ""));
        codes.push(to(&out, PBX).iter().map(status).max().unwrap_or(0));
    }
    assert_eq!(codes, [100, 100, 503, 503]);
}

#[test]
fn max_forwards_zero_is_too_many_hops() {
    let mut net = Net::new("");
    let text = invite("call-7", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = net.send(PBX, &text);
    assert_eq!(status(&to(&out, PBX)[0]), 483);
    assert!(to(&out, TRUNK).is_empty());
}

#[test]
fn draining_refuses_new_calls_with_503_and_retry_after() {
    let mut net = Net::new("[shutdown]\nretry_after_secs = 45\n");
    net.core.start_draining();
    let out = net.send(PBX, &invite("call-8", ""));
    let resp = &to(&out, PBX)[0];
    assert_eq!(status(resp), 503);
    assert_eq!(resp.get(&Name::RetryAfter), Some("45"));
}

#[test]
fn trunk_challenge_is_answered_with_valid_digest_credentials() {
    let mut net = Net::with_trunk("username = \"acct\"\npassword = \"s3cret\"", "");
    let out = net.send(PBX, &invite("call-9", ""));
    let b = to(&out, TRUNK).remove(0);
    let issuer = digest::NonceIssuer::new("trunk.example.com", [7u8; 32]).unwrap();
    let unix = 1_700_000_000;
    let challenge = digest::challenge(&issuer, unix, digest::Algorithm::Md5, false);
    let mut resp = answer(&b, 407, "Proxy Authentication Required");
    resp.push(Name::ProxyAuthenticate, challenge.to_string());
    let out = net.send_msg(TRUNK, &resp);
    assert!(to(&out, PBX).is_empty(), "the PBX never sees the challenge");
    let trunk = to(&out, TRUNK);
    assert_eq!(trunk.len(), 2, "ACK for the 407, then the new INVITE");
    let retry = &trunk[1];
    assert_eq!(retry.get(&Name::CSeq), Some("2 INVITE"));
    assert_eq!(retry.get(&Name::CallId), b.get(&Name::CallId));
    let creds: digest::Credentials = retry
        .get(&Name::ProxyAuthorization)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(creds.uri, retry.request_uri());
    digest::verify(&creds, "INVITE", "s3cret", &retry.body, &issuer, unix, 60).unwrap();

    let out = net.send_msg(TRUNK, &answer(retry, 200, "OK"));
    let ok = &to(&out, PBX)[0];
    assert_eq!(status(ok), 200);
    let a_to = ok.get(&Name::To).unwrap().to_string();
    let out = net.send(PBX, &pbx_request("ACK", "call-9", 10, &a_to, "ack9"));
    assert_eq!(
        to(&out, TRUNK)[0].get(&Name::CSeq),
        Some("2 ACK"),
        "ACK matches the authenticated INVITE"
    );
}

#[test]
fn trunk_bye_and_reinvite_cross_to_the_pbx() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-10", ""));
    let b = to(&out, TRUNK).remove(0);
    let out = net.send_msg(TRUNK, &answer(&b, 200, "OK"));
    let a_to = to(&out, PBX)[0].get(&Name::To).unwrap().to_string();
    net.send(PBX, &pbx_request("ACK", "call-10", 10, &a_to, "ack10"));

    // re-INVITE from the PBX.
    let reinvite = pbx_request("INVITE", "call-10", 11, &a_to, "re10");
    let out = net.send(PBX, &reinvite);
    let re_b = &to(&out, TRUNK)[0];
    assert_eq!(re_b.get(&Name::CSeq), Some("2 INVITE"));
    let out = net.send_msg(TRUNK, &answer(re_b, 200, "OK"));
    assert_eq!(status(&to(&out, PBX)[0]), 200);
    let out = net.send(PBX, &pbx_request("ACK", "call-10", 11, &a_to, "ack11"));
    assert_eq!(to(&out, TRUNK)[0].get(&Name::CSeq), Some("2 ACK"));

    // BYE from the trunk.
    let b_call_id = b.get(&Name::CallId).unwrap();
    let bye = format!(
        "BYE sip:slotgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-tb\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15551230001@127.0.0.1>;tag=trunktag\r\nTo: {}\r\n\
         Call-ID: {b_call_id}\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
        b.get(&Name::From).unwrap()
    );
    let out = net.send(TRUNK, &bye);
    let a_bye = &to(&out, PBX)[0];
    assert_eq!(
        a_bye.request_uri(),
        format!("sip:4007@{PBX}"),
        "to the PBX's Contact"
    );
    assert_eq!(a_bye.get(&Name::CallId), Some("call-10"));
    assert_eq!(
        a_bye.get(&Name::From),
        Some(a_to.as_str()),
        "slotgate's A-leg identity"
    );
    let out = net.send_msg(PBX, &answer(a_bye, 200, "OK"));
    assert_eq!(status(&to(&out, TRUNK)[0]), 200);
    assert_eq!(net.core.poll_record().unwrap().reason, "BYE from trunk");
}

#[test]
fn unknown_methods_get_501_with_allow_and_options_get_200() {
    let mut net = Net::new("");
    let text = pbx_request("FROBNICATE", "x-1", 1, "<sip:a@b>", "fx");
    let out = net.send(PBX, &text);
    let resp = &to(&out, PBX)[0];
    assert_eq!(status(resp), 501);
    assert!(resp.get(&Name::Allow).unwrap().contains("INVITE"));
    let out = net.send(PBX, &pbx_request("OPTIONS", "x-2", 1, "<sip:a@b>", "ox"));
    assert_eq!(status(&to(&out, PBX)[0]), 200);
}

#[test]
fn latin1_display_name_is_relayed_not_dropped() {
    let mut net = Net::new("");
    let mut bytes = invite("call-11", "").into_bytes();
    let pos = bytes.windows(5).position(|w| w == b"Agent").unwrap();
    bytes[pos] = 0xC5; // Latin-1 'Å'
    net.core.handle_datagram(udp(PBX), &bytes, net.now);
    let out = net.collect();
    assert_eq!(to(&out, PBX).iter().map(status).collect::<Vec<_>>(), [100]);
    assert!(to(&out, TRUNK)[0]
        .get(&Name::From)
        .unwrap()
        .contains("Ågent"));
}

#[test]
fn retransmitted_invite_is_absorbed_and_reanswered() {
    let mut net = Net::new("");
    net.send(PBX, &invite("call-12", ""));
    let out = net.send(PBX, &invite("call-12", ""));
    assert!(to(&out, TRUNK).is_empty(), "no second B leg");
    assert_eq!(to(&out, PBX).iter().map(status).collect::<Vec<_>>(), [100]);
    assert_eq!(net.core.active_calls(), 1);
}

#[test]
fn bad_content_length_over_udp_gets_400() {
    let mut net = Net::new("");
    let text = invite("call-13", "").replace("Content-Length: 8", "Content-Length: 999");
    let text = text.replacen("Content-Length: ", "Content-Length: 9", 1);
    let out = net.send(PBX, &text);
    assert_eq!(status(&to(&out, PBX)[0]), 400);
    assert!(to(&out, TRUNK).is_empty());
}

#[test]
fn unanswered_options_pings_take_the_trunk_down_and_any_answer_brings_it_back() {
    let mut net = Net::with_trunk("options_interval_secs = 10", "");
    let out = net.advance(Duration::from_millis(1));
    let ping = to(&out, TRUNK).remove(0);
    assert_eq!(ping.method().map(|m| m.as_str()), Some("OPTIONS"));
    // Nobody answers: after Timer F the trunk is down and calls are refused at once.
    net.advance(Duration::from_secs(33));
    assert!(!net.core.trunk_up());
    let out = net.send(PBX, &invite("call-h1", ""));
    assert_eq!(status(&to(&out, PBX)[0]), 503);
    assert!(to(&out, TRUNK).is_empty());
    // The next ping is answered (even 405 proves the trunk is alive).
    let out = net.advance(Duration::from_secs(10));
    let ping = to(&out, TRUNK)
        .into_iter()
        .find(|m| m.method().map(|m| m.as_str()) == Some("OPTIONS"))
        .expect("a second ping");
    net.send_msg(TRUNK, &answer(&ping, 405, "Method Not Allowed"));
    assert!(net.core.trunk_up());
    let out = net.send(PBX, &invite("call-h2", ""));
    assert_eq!(to(&out, TRUNK).len(), 1);
}

#[test]
fn outbound_proxy_gets_the_request_and_a_loose_route() {
    let mut net = Net::with_trunk(
        "outbound_proxy = \"127.0.0.1:5090\"\ndomain = \"carrier.example.com\"",
        "",
    );
    let out = net.send(PBX, &invite("call-p1", ""));
    let sent = to(&out, "127.0.0.1:5090");
    assert_eq!(sent.len(), 1, "sent to the proxy");
    assert_eq!(
        sent[0].request_uri(),
        "sip:+15551230001@carrier.example.com"
    );
    assert_eq!(sent[0].get(&Name::Route), Some("<sip:127.0.0.1:5090;lr>"));
}

#[test]
fn pbx_digest_authentication_is_demanded_when_enabled() {
    let mut net = Net::new("[pbx]\nauth_enabled = true\nauth_users = [\"pbx:hunter2\"]\n");
    let out = net.send(PBX, &invite("call-a1", ""));
    let challenge_resp = &to(&out, PBX)[0];
    assert_eq!(status(challenge_resp), 407);
    assert!(to(&out, TRUNK).is_empty());
    let challenge: digest::Challenge = challenge_resp
        .get(&Name::ProxyAuthenticate)
        .unwrap()
        .parse()
        .unwrap();
    let uri = "sip:+15551230001@127.0.0.1:5060";
    let wrong = digest::answer(&challenge, "INVITE", uri, "pbx", "wrong", b"", "c1", 1).unwrap();
    let text = invite("call-a2", &format!("Proxy-Authorization: {wrong}\r\n"));
    let out = net.send(PBX, &text);
    assert_eq!(
        status(&to(&out, PBX)[0]),
        407,
        "wrong password is challenged again"
    );

    let body_len_invite = invite("call-a3", "");
    let body = body_len_invite.split("\r\n\r\n").nth(1).unwrap();
    let creds = digest::answer(
        &challenge,
        "INVITE",
        uri,
        "pbx",
        "hunter2",
        body.as_bytes(),
        "c2",
        1,
    )
    .unwrap();
    let out = net.send(
        PBX,
        &invite("call-a3", &format!("Proxy-Authorization: {creds}\r\n")),
    );
    assert_eq!(to(&out, PBX).iter().map(status).collect::<Vec<_>>(), [100]);
    let b = &to(&out, TRUNK)[0];
    assert!(
        b.get(&Name::ProxyAuthorization).is_none(),
        "the PBX's credentials stay on its leg"
    );
}

#[test]
fn bye_overtaking_the_ack_acknowledges_the_trunk_first() {
    let mut net = Net::new("");
    let out = net.send(PBX, &invite("call-b1", ""));
    let b = to(&out, TRUNK).remove(0);
    let out = net.send_msg(TRUNK, &answer(&b, 200, "OK"));
    let a_to = to(&out, PBX)[0].get(&Name::To).unwrap().to_string();
    // The PBX's ACK is lost; its BYE arrives.
    let out = net.send(PBX, &pbx_request("BYE", "call-b1", 11, &a_to, "bye-b1"));
    let methods: Vec<_> = to(&out, TRUNK)
        .iter()
        .map(|m| {
            m.method()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(methods, ["ACK", "BYE"]);
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_messages_never_panic_the_core() {
    let mut net = Net::new("");
    let mut seeds: Vec<Vec<u8>> = vec![
        invite("fuzz-1", "Require: timer\r\nAccept: application/sdp\r\n").into_bytes(),
        pbx_request(
            "BYE",
            "fuzz-1",
            2,
            "<sip:+15551230001@127.0.0.1>;tag=x",
            "fz",
        )
        .into_bytes(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport\r\n\
          From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x@slotgate\r\nCSeq: 1 INVITE\r\n\
          Contact: <sip:gw@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    ];
    // The torture corpus makes the best seeds: every message is already odd.
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/sip-torture"
    );
    for dir in [
        "rfc4475/valid",
        "rfc4475/invalid",
        "rfc5118/wire/valid",
        "rfc5118/wire/invalid",
    ] {
        let entries = std::fs::read_dir(format!("{corpus}/{dir}")).expect("the torture corpus");
        for entry in entries {
            seeds.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    assert!(seeds.len() > 60);
    let tokens: [&[u8]; 10] = [
        b"\r\n",
        b" ",
        b";",
        b",",
        b"\"",
        b"<",
        b">",
        b":",
        b"\xff",
        b"Content-Length: 99999\r\n",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..30_000 {
        let mut msg = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            if msg.is_empty() {
                break;
            }
            let at = rng.below(msg.len());
            match rng.below(4) {
                0 => msg[at] = rng.next() as u8,
                1 => msg.truncate(at),
                2 => {
                    let t = tokens[rng.below(tokens.len())];
                    msg.splice(at..at, t.iter().copied());
                }
                _ => {
                    let end = (at + rng.below(12)).min(msg.len());
                    msg.drain(at..end);
                }
            }
        }
        let from = if rng.below(2) == 0 { PBX } else { TRUNK };
        net.core.handle_datagram(udp(from), &msg, net.now);
        while net.core.poll_transmit().is_some() {}
        while net.core.poll_record().is_some() {}
    }
    // Still a working element afterwards.
    net.advance(Duration::from_secs(120));
    let out = net.send(
        PBX,
        &pbx_request("OPTIONS", "after-fuzz", 1, "<sip:a@b>", "af"),
    );
    assert_eq!(status(&to(&out, PBX)[0]), 200);
}

// ---- the gate: holding an INVITE ----

mod holding {
    use super::*;
    use crate::b2bua::hold::{GateQuery, GateVerdict, HoldAnswer};

    const GATED: &str = "[gate]\ndefault_enterprise = \"ent-1\"\nhold_window_secs = 25\n";

    /// Sends the INVITE and returns the hold id the core asked about.
    fn held_invite(net: &mut Net, call_id: &str) -> (String, Vec<(SocketAddr, Message)>) {
        let out = net.send(PBX, &invite(call_id, ""));
        match net.core.poll_gate_query() {
            Some(GateQuery::Decide(req)) => {
                assert_eq!(req.classification.enterprise_id, "ent-1");
                assert_eq!(req.classification.campaign, "spring");
                assert_eq!(req.classification.callee, "+15551230001");
                assert_eq!(req.caller, "sip:4007@127.0.0.1");
                assert_eq!(req.pbx_target, format!("sip:4007@{PBX}"));
                (req.hold_id, out)
            }
            other => panic!("expected a decision query, got {other:?}"),
        }
    }

    fn hold(net: &mut Net, id: &str) -> Vec<(SocketAddr, Message)> {
        net.core.handle_gate_verdict(
            id,
            GateVerdict::Hold {
                request_id: "req-1".into(),
                caller_id_override: None,
            },
            net.now,
        );
        net.collect()
    }

    #[test]
    fn a_held_invite_gets_100_then_180_and_nothing_reaches_the_trunk() {
        let mut net = Net::new(GATED);
        let (id, out) = held_invite(&mut net, "h1");
        assert_eq!(to(&out, PBX).iter().map(status).collect::<Vec<_>>(), [100]);
        assert!(to(&out, TRUNK).is_empty());
        let out = hold(&mut net, &id);
        let ringing = to(&out, PBX);
        assert_eq!(ringing.iter().map(status).collect::<Vec<_>>(), [180]);
        assert!(net.core.is_holding(&id));
        assert_eq!(net.core.held_invites(), 1);
        assert_eq!(net.core.gate_metrics().held(), 1);
        // A retransmitted INVITE is absorbed: the 180 is repeated, no new hold.
        let again = net.send(PBX, &invite("h1", ""));
        assert_eq!(
            to(&again, PBX).iter().map(status).collect::<Vec<_>>(),
            [180]
        );
        assert!(net.core.poll_gate_query().is_none());
    }

    #[test]
    fn an_answer_now_forwards_with_the_tag_the_pbx_already_has() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h2");
        let ringing = to(&hold(&mut net, &id), PBX).remove(0);
        let tag = headers::parse_name_addr(ringing.get(&Name::To).unwrap())
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap();
        assert!(net
            .core
            .handle_hold_answer(&id, HoldAnswer::Now, chrono::Utc::now(), net.now));
        let out = net.collect();
        let b_invite = to(&out, TRUNK).remove(0);
        assert_eq!(
            b_invite.method(),
            Some(&crate::sip::message::Method::Invite)
        );
        assert!(to(&out, PBX).is_empty(), "no second 100 toward the PBX");
        let ok = answer(&b_invite, 200, "OK");
        let out = net.send_msg(TRUNK, &ok);
        let a_ok = to(&out, PBX).remove(0);
        assert_eq!(status(&a_ok), 200);
        let a_tag = headers::parse_name_addr(a_ok.get(&Name::To).unwrap())
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap();
        assert_eq!(a_tag, tag, "the 200 keeps the 180's To tag");
        assert!(!net.core.is_holding(&id));
        assert_eq!(net.core.gate_metrics().decisions("held-now"), 1);
        assert_eq!(net.core.gate_metrics().answer_latency().count, 1);
    }

    #[test]
    fn a_later_answer_gets_480_with_retry_after_and_the_slot() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h3");
        hold(&mut net, &id);
        let at = chrono::Utc::now() + chrono::Duration::minutes(30);
        assert!(net.core.handle_hold_answer(
            &id,
            HoldAnswer::Later { at },
            chrono::Utc::now(),
            net.now
        ));
        let resp = to(&net.collect(), PBX).remove(0);
        assert_eq!(status(&resp), 480);
        let retry: i64 = resp.get(&Name::RetryAfter).unwrap().parse().unwrap();
        assert!((1790..=1800).contains(&retry), "{retry}");
        let reason = resp.get(&Name::Reason).unwrap();
        assert!(
            reason.starts_with("SIP;cause=480;text=\"scheduled "),
            "{reason}"
        );
        let record = net.core.poll_record().unwrap();
        assert_eq!(record.gate_decision.as_deref(), Some("held-later"));
        assert_eq!(record.consent_request_id.as_deref(), Some("req-1"));
        // A second answer for the same hold changes nothing.
        assert!(!net
            .core
            .handle_hold_answer(&id, HoldAnswer::Now, chrono::Utc::now(), net.now));
        assert!(net.collect().is_empty());
    }

    #[test]
    fn the_window_passing_rejects_and_tells_the_store_side() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h4");
        hold(&mut net, &id);
        let out = net.advance(Duration::from_secs(24));
        assert!(to(&out, PBX).iter().all(|m| status(m) != 480));
        let out = net.advance(Duration::from_secs(2));
        // The 480 and its retransmissions (no ACK in this test).
        let finals: Vec<u16> = to(&out, PBX)
            .iter()
            .map(status)
            .filter(|s| *s >= 300)
            .collect();
        assert!(
            !finals.is_empty() && finals.iter().all(|s| *s == 480),
            "{finals:?}"
        );
        assert_eq!(
            net.core.poll_gate_query(),
            Some(GateQuery::Ended {
                hold_id: id.clone(),
                forwarded: false
            })
        );
        assert_eq!(net.core.gate_metrics().held(), 0);
        assert!(!net
            .core
            .handle_hold_answer(&id, HoldAnswer::Now, chrono::Utc::now(), net.now));
    }

    #[test]
    fn cancel_while_held_gets_487_and_ends_the_hold() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h5");
        hold(&mut net, &id);
        let cancel = "CANCEL sip:+15551230001@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-h5\r\n\
             Max-Forwards: 70\r\n\
             From: \"Agent 7\" <sip:4007@127.0.0.1>;tag=pbxtag\r\n\
             To: <sip:+15551230001@127.0.0.1>\r\n\
             Call-ID: h5\r\nCSeq: 10 CANCEL\r\nContent-Length: 0\r\n\r\n";
        let out = net.send(PBX, cancel);
        let codes: Vec<u16> = to(&out, PBX).iter().map(status).collect();
        assert!(codes.contains(&200) && codes.contains(&487), "{codes:?}");
        assert!(to(&out, TRUNK).is_empty());
        assert_eq!(
            net.core.poll_gate_query(),
            Some(GateQuery::Ended {
                hold_id: id,
                forwarded: false
            })
        );
    }

    #[test]
    fn a_decision_that_never_comes_fails_safe_with_503() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h6");
        let out = net.advance(Duration::from_secs(26));
        let resp: Vec<Message> = to(&out, PBX)
            .into_iter()
            .filter(|m| status(m) >= 300)
            .collect();
        assert!(!resp.is_empty() && resp.iter().all(|m| status(m) == 503));
        assert!(resp[0].get(&Name::RetryAfter).is_some());
        assert_eq!(net.core.gate_metrics().decisions("store-error-rejected"), 1);
        // The verdict arriving late changes nothing on the wire; a hold it
        // opened in the store is ended there.
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Hold {
                request_id: "late".into(),
                caller_id_override: None,
            },
            net.now,
        );
        assert!(net.collect().is_empty());
        assert!(matches!(
            net.core.poll_gate_query(),
            Some(GateQuery::Ended {
                forwarded: false,
                ..
            })
        ));
    }

    #[test]
    fn refusals_carry_status_reason_and_retry_after() {
        let mut net = Net::new(GATED);
        let (id, _) = held_invite(&mut net, "h7");
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Refuse {
                decision: "outside-hours",
                status: 480,
                reason: "SIP;cause=480;text=\"outside calling hours\"".into(),
                retry_after_secs: Some(3600),
            },
            net.now,
        );
        let resp = to(&net.collect(), PBX).remove(0);
        assert_eq!(status(&resp), 480);
        assert_eq!(resp.get(&Name::RetryAfter), Some("3600"));
        assert_eq!(
            resp.get(&Name::Reason),
            Some("SIP;cause=480;text=\"outside calling hours\"")
        );
        assert_eq!(
            net.core.poll_record().and_then(|r| r.gate_decision),
            Some("outside-hours".into())
        );
    }

    #[test]
    fn unclassified_invites_follow_the_policy() {
        let mut pass = Net::new("[gate]\non_unclassified = \"pass\"\n");
        let out = pass.send(PBX, &invite("u1", ""));
        assert_eq!(to(&out, TRUNK).len(), 1, "passed straight through");
        assert!(pass.core.poll_gate_query().is_none());
        let mut reject = Net::new("[gate]\non_unclassified = \"reject\"\n");
        let out = reject.send(PBX, &invite("u2", ""));
        let codes: Vec<u16> = to(&out, PBX).iter().map(status).collect();
        assert_eq!(codes, [403]);
        assert!(to(&out, TRUNK).is_empty());
    }
}

// ---- the gate: early media ----

mod early_media {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::b2bua::anchor::{AnchoredCall, MediaAnchor};
    use crate::b2bua::hold::{GateQuery, GateVerdict, HoldAnswer};
    use crate::media::{MediaError, SessionDescription};

    const OUR_ANSWER: &str = "v=0\r\no=slotgate 1 1 IN IP4 127.0.0.1\r\ns=slotgate\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\n";
    const OUR_OFFER: &str = "v=0\r\no=slotgate 2 1 IN IP4 127.0.0.1\r\ns=slotgate\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20002 RTP/AVP 0 8 101\r\n";

    /// What the core asked of the media engine.
    #[derive(Default)]
    struct Asked {
        opened: Vec<u16>,
        offers: usize,
        trunk_answers: Vec<u16>,
        dropped: usize,
    }

    struct FakeAnchor(Arc<Mutex<Asked>>);
    struct FakeCall(Arc<Mutex<Asked>>);

    impl MediaAnchor for FakeAnchor {
        fn open(
            &mut self,
            offer: &SessionDescription,
        ) -> Result<Box<dyn AnchoredCall>, MediaError> {
            self.0.lock().unwrap().opened.push(offer.port);
            Ok(Box::new(FakeCall(self.0.clone())))
        }

        fn open_bridge(
            &mut self,
            _call: u64,
        ) -> Result<Box<dyn crate::b2bua::anchor::BridgedCall>, MediaError> {
            Err(MediaError::Stopped)
        }
    }

    impl AnchoredCall for FakeCall {
        fn answer(&self) -> &str {
            OUR_ANSWER
        }
        fn offer_to_trunk(&mut self) -> Result<String, MediaError> {
            self.0.lock().unwrap().offers += 1;
            Ok(OUR_OFFER.into())
        }
        fn trunk_answered(&mut self, answer: &SessionDescription) -> Result<(), MediaError> {
            self.0.lock().unwrap().trunk_answers.push(answer.port);
            Ok(())
        }
    }

    impl Drop for FakeCall {
        fn drop(&mut self) {
            if let Ok(mut asked) = self.0.lock() {
                asked.dropped += 1;
            }
        }
    }

    fn net() -> (Net, Arc<Mutex<Asked>>) {
        let mut net = Net::new(
            "[gate]\ndefault_enterprise = \"ent-1\"\n[gate.campaigns.spring]\nhold_with = \"183\"\n",
        );
        let asked = Arc::new(Mutex::new(Asked::default()));
        net.core.set_media(Box::new(FakeAnchor(asked.clone())));
        (net, asked)
    }

    fn hold_id(net: &mut Net) -> String {
        match net.core.poll_gate_query() {
            Some(GateQuery::Decide(req)) => req.hold_id,
            other => panic!("expected a decision query, got {other:?}"),
        }
    }

    #[test]
    fn a_campaign_holding_with_183_anchors_the_media_through_to_the_bye() {
        let (mut net, asked) = net();
        net.send(PBX, &invite("em1", ""));
        let id = hold_id(&mut net);
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Hold {
                request_id: "req-em".into(),
                caller_id_override: None,
            },
            net.now,
        );
        let progress = to(&net.collect(), PBX).remove(0);
        assert_eq!(status(&progress), 183);
        assert_eq!(&progress.body[..], OUR_ANSWER.as_bytes());
        assert_eq!(
            asked.lock().unwrap().opened,
            [4000],
            "the PBX's offered port"
        );

        net.core
            .handle_hold_answer(&id, HoldAnswer::Now, chrono::Utc::now(), net.now);
        let b_invite = to(&net.collect(), TRUNK).remove(0);
        assert_eq!(
            &b_invite.body[..],
            OUR_OFFER.as_bytes(),
            "the trunk gets our offer"
        );
        let mut ok = answer(&b_invite, 200, "OK");
        ok.set_body(
            Some("application/sdp"),
            Bytes::from_static(
                b"v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\n",
            ),
        );
        let a_ok = to(&net.send_msg(TRUNK, &ok), PBX).remove(0);
        assert_eq!(status(&a_ok), 200);
        assert_eq!(
            &a_ok.body[..],
            OUR_ANSWER.as_bytes(),
            "the PBX keeps our SDP"
        );
        assert_eq!(asked.lock().unwrap().trunk_answers, [30000]);
        assert_eq!(
            asked.lock().unwrap().dropped,
            0,
            "media lives with the call"
        );

        let a_to = a_ok.get(&Name::To).unwrap().to_string();
        net.send(PBX, &pbx_request("ACK", "em1", 10, &a_to, "em1-ack"));
        let bye = pbx_request("BYE", "em1", 11, &a_to, "em1-bye");
        let out = net.send(PBX, &bye);
        let b_bye = to(&out, TRUNK).remove(0);
        net.send_msg(TRUNK, &answer(&b_bye, 200, "OK"));
        assert_eq!(asked.lock().unwrap().dropped, 1, "media ends with the call");
    }

    #[test]
    fn an_offer_early_media_cannot_use_gets_488() {
        let (mut net, asked) = net();
        let bad = invite("em2", "").replace("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 18");
        let out = net.send(PBX, &bad);
        assert_eq!(to(&out, PBX).iter().map(status).collect::<Vec<_>>(), [488]);
        assert!(net.core.poll_gate_query().is_none(), "nobody is asked");
        assert!(asked.lock().unwrap().opened.is_empty());
    }

    #[test]
    fn a_held_call_that_ends_without_forwarding_frees_its_media() {
        let (mut net, asked) = net();
        net.send(PBX, &invite("em3", ""));
        let id = hold_id(&mut net);
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Hold {
                request_id: "req-em3".into(),
                caller_id_override: None,
            },
            net.now,
        );
        net.collect();
        net.core
            .handle_hold_answer(&id, HoldAnswer::Decline, chrono::Utc::now(), net.now);
        assert_eq!(
            to(&net.collect(), PBX)
                .iter()
                .map(status)
                .collect::<Vec<_>>(),
            [603]
        );
        assert_eq!(asked.lock().unwrap().dropped, 1);
    }
}

// ---- caller ID: the person's number, flags, the record ----

mod caller_id {
    use super::*;
    use crate::b2bua::hold::{GateQuery, GateVerdict, HoldAnswer};
    use crate::consent::E164;
    use crate::store::caller_ids::CallerIdFlag;

    /// Two pool numbers local to the callee (area code 212), a default,
    /// and enterprise `ent-1` as the gate's default.
    const CALLER_ID: &str = "[caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"ent-1\"\ndefault_number = \"+12125550100\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550123\"\nattest = \"A\"\n";
    const CALLEE: &str = "+12125550143";

    fn n(text: &str) -> E164 {
        E164::from_e164(text).unwrap()
    }

    /// An INVITE to the New York callee.
    fn invite_ny(call_id: &str, extra: &str) -> String {
        invite(call_id, extra).replace("+15551230001", CALLEE)
    }

    /// The number the trunk INVITE shows in From.
    fn shown(b_invite: &Message) -> String {
        crate::callerid::user_part(b_invite.get(&Name::From).unwrap()).unwrap()
    }

    /// Sends a gated INVITE and returns its hold id.
    fn decide(net: &mut Net, call_id: &str) -> String {
        net.send(PBX, &invite_ny(call_id, ""));
        match net.core.poll_gate_query() {
            Some(GateQuery::Decide(req)) => req.hold_id,
            other => panic!("expected a decision query, got {other:?}"),
        }
    }

    /// The trunk refuses the call, which ends it: its record comes out.
    fn end(net: &mut Net, b_invite: &Message) -> crate::store::CallRecord {
        net.send_msg(TRUNK, &answer(b_invite, 486, "Busy Here"));
        net.core.poll_record().unwrap()
    }

    #[test]
    fn the_persons_number_wins_over_local_presence_and_is_recorded() {
        let gated = format!("[gate]\ndefault_enterprise = \"ent-1\"\n{CALLER_ID}");
        let mut net = Net::new(&gated);

        // Forwarded at once (a consent covers now).
        let id = decide(&mut net, "o1");
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Forward {
                decision: "consented",
                consent_id: Some("c-1".into()),
                caller_id_override: Some(n("+12125550199")),
            },
            net.now,
        );
        let b = to(&net.collect(), TRUNK).remove(0);
        assert_eq!(shown(&b), "+12125550199");
        let record = end(&mut net, &b);
        assert_eq!(record.caller_id_number.as_deref(), Some("+12125550199"));
        assert_eq!(record.caller_id_rule.as_deref(), Some("person_override"));
        assert_eq!(
            record.caller_id_why.as_deref(),
            Some("person override +12125550199")
        );
        assert_eq!(record.identity_origid, None, "signing is off");

        // Held first: the number read with the decision is kept for the
        // forward the answer "now" makes.
        let id = decide(&mut net, "o2");
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Hold {
                request_id: "req-o2".into(),
                caller_id_override: Some(n("+12125550198")),
            },
            net.now,
        );
        net.collect();
        assert!(net
            .core
            .handle_hold_answer(&id, HoldAnswer::Now, chrono::Utc::now(), net.now));
        let b = to(&net.collect(), TRUNK).remove(0);
        assert_eq!(shown(&b), "+12125550198");
        assert_eq!(
            end(&mut net, &b).caller_id_rule.as_deref(),
            Some("person_override")
        );

        // Without one, local presence chooses, and the record says why.
        let id = decide(&mut net, "o3");
        net.core.handle_gate_verdict(
            &id,
            GateVerdict::Forward {
                decision: "consented",
                consent_id: None,
                caller_id_override: None,
            },
            net.now,
        );
        let b = to(&net.collect(), TRUNK).remove(0);
        assert_eq!(shown(&b), "+12125550122");
        let record = end(&mut net, &b);
        assert_eq!(record.caller_id_rule.as_deref(), Some("local_presence"));
        let why = record.caller_id_why.unwrap_or_default();
        assert!(why.starts_with("no person override; "), "{why}");
    }

    #[test]
    fn a_flagged_pool_number_is_not_chosen_until_unflagged() {
        // Ungated: the enterprise comes from the PBX's header.
        let mut net = Net::new(&format!("[gate]\nenabled = false\n{CALLER_ID}"));
        let enterprise = "X-Slotgate-Enterprise: ent-1\r\n";
        let place = |net: &mut Net, call_id: &str| {
            let out = net.send(PBX, &invite_ny(call_id, enterprise));
            let Some(b) = to(&out, TRUNK).into_iter().next() else {
                panic!("nothing reached the trunk: {out:#?}");
            };
            let number = shown(&b);
            end(net, &b);
            number
        };
        // Unflagged, the two equally local numbers take turns.
        assert_eq!(place(&mut net, "f1"), "+12125550122");
        assert_eq!(place(&mut net, "f2"), "+12125550123");
        let now = chrono::Utc::now();
        net.core.set_caller_id_flags(&[CallerIdFlag {
            number: n("+12125550122"),
            flagged_until: now + chrono::TimeDelta::hours(1),
            updated_at: now,
        }]);
        // Flagged, the other is chosen every time.
        assert_eq!(place(&mut net, "f3"), "+12125550123");
        assert_eq!(place(&mut net, "f4"), "+12125550123");
        // The store's flags replace the core's: an empty set unflags.
        net.core.set_caller_id_flags(&[]);
        assert_eq!(place(&mut net, "f5"), "+12125550122");
    }
}

mod placed;
