//! Calls slotgate places itself, message by message: the agent-first and
//! customer-first orders, the outcomes a dialler records, and teardown
//! from either leg.

use std::sync::{Arc, Mutex};

use super::*;
use crate::b2bua::anchor::{AnchoredCall, BridgedCall, MediaAnchor};
use crate::b2bua::core::originate::{
    LegOrder, PlaceCall, PlacedEvent, PlacedEventKind, PlacedOutcome, ATTEMPT_HEADER,
};
use crate::consent::E164;
use crate::media::amd::{AmdSettings, Detection, Verdict};
use crate::media::bridge::{MediaEvent, MediaEventKind};
use crate::media::relay::Side;
use crate::media::{Announcement, MediaError, SessionDescription};

const AGENT: &str = "127.0.0.1:5070";

/// What the core asked of a placed call's media.
#[derive(Default, Debug)]
struct Asked {
    answered: Vec<Side>,
    detect: usize,
    plays: Vec<Side>,
    bridged: usize,
    dropped: usize,
}

struct FakeAnchor(Arc<Mutex<Asked>>);
struct FakeBridge(Arc<Mutex<Asked>>);

impl MediaAnchor for FakeAnchor {
    fn open(&mut self, _: &SessionDescription) -> Result<Box<dyn AnchoredCall>, MediaError> {
        Err(MediaError::Stopped)
    }
    fn open_bridge(&mut self, _call: u64) -> Result<Box<dyn BridgedCall>, MediaError> {
        Ok(Box::new(FakeBridge(self.0.clone())))
    }
}

impl BridgedCall for FakeBridge {
    fn offer(&self, side: Side) -> String {
        let port = if side == Side::Pbx { 30000 } else { 30002 };
        format!(
            "v=0\r\no=slotgate 1 1 IN IP4 127.0.0.1\r\ns=slotgate\r\nc=IN IP4 127.0.0.1\r\n\
             t=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\n"
        )
    }
    fn answered(&mut self, side: Side, _: &SessionDescription) -> Result<(), MediaError> {
        self.0.lock().unwrap().answered.push(side);
        Ok(())
    }
    fn detect(&mut self, _: AmdSettings) -> Result<(), MediaError> {
        self.0.lock().unwrap().detect += 1;
        Ok(())
    }
    fn play(&mut self, side: Side, _: Arc<Announcement>) -> Result<(), MediaError> {
        self.0.lock().unwrap().plays.push(side);
        Ok(())
    }
    fn bridge(&mut self) -> Result<(), MediaError> {
        self.0.lock().unwrap().bridged += 1;
        Ok(())
    }
}

impl Drop for FakeBridge {
    fn drop(&mut self) {
        if let Ok(mut asked) = self.0.lock() {
            asked.dropped += 1;
        }
    }
}

fn net() -> (Net, Arc<Mutex<Asked>>) {
    let mut net = Net::new("");
    let asked = Arc::new(Mutex::new(Asked::default()));
    net.core.set_media(Box::new(FakeAnchor(asked.clone())));
    (net, asked)
}

fn request(order: LegOrder) -> PlaceCall {
    PlaceCall {
        attempt_id: "att-1".into(),
        order,
        agent_target: (order == LegOrder::AgentFirst).then(|| format!("sip:4007@{AGENT}")),
        context: vec![
            ("X-Slotgate-Customer".into(), "+14155552671".into()),
            ("X-Slotgate-Consent".into(), "cons-9".into()),
        ],
        customer: E164::parse("+14155552671", None).unwrap(),
        caller: "sip:4007@127.0.0.1".into(),
        enterprise_id: "ent-1".into(),
        campaign: "spring".into(),
        ring_timeout: Duration::from_secs(20),
        detection: (order == LegOrder::CustomerFirst).then(AmdSettings::default),
    }
}

/// A UAS's answer to `req`, with SDP on a 2xx.
fn reply(req: &Message, code: u16, reason: &str, from: &str) -> Message {
    let mut resp = crate::b2bua::build::response_to(req, code, reason, Some("fartag"), "uas");
    resp.push(Name::Contact, format!("<sip:uas@{from}>"));
    if code == 200 {
        resp.set_body(
            Some("application/sdp"),
            Bytes::from_static(
                b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n",
            ),
        );
    }
    resp
}

/// A BYE from a far end inside the dialog `invite` opened.
fn bye_from(invite: &Message, from: &str) -> String {
    let to_us = invite.get(&Name::From).unwrap();
    let them = crate::b2bua::build::with_tag(invite.get(&Name::To).unwrap(), "fartag");
    format!(
        "BYE sip:slotgate@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-farbye\r\n\
         Max-Forwards: 70\r\nFrom: {them}\r\nTo: {to_us}\r\n\
         Call-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.get(&Name::CallId).unwrap()
    )
}

fn events(net: &mut Net) -> Vec<PlacedEventKind> {
    std::iter::from_fn(|| net.core.poll_placed_event())
        .map(
            |PlacedEvent {
                 kind, attempt_id, ..
             }| {
                assert_eq!(attempt_id, "att-1");
                kind
            },
        )
        .collect()
}

fn methods(list: &[Message]) -> Vec<String> {
    list.iter()
        .map(|m| {
            m.method()
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| status(m).to_string())
        })
        .collect()
}

/// Requests once each: an unanswered request is retransmitted.
fn distinct(list: Vec<Message>) -> Vec<Message> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|m| {
            seen.insert((
                m.get(&Name::CallId).map(str::to_string),
                m.get(&Name::CSeq).map(str::to_string),
                m.status(),
            ))
        })
        .collect()
}

fn ended(outcome: PlacedOutcome, by: &'static str) -> PlacedEventKind {
    PlacedEventKind::Ended {
        outcome,
        ended_by: by,
    }
}

#[test]
fn agent_first_rings_the_agent_with_the_context_then_bridges_the_customer() {
    let (mut net, asked) = net();
    let call = net
        .core
        .place_call(request(LegOrder::AgentFirst), net.now)
        .unwrap();
    let out = net.collect();
    assert!(
        to(&out, TRUNK).is_empty(),
        "the customer waits for the agent"
    );
    let agent_invite = to(&out, AGENT).remove(0);
    assert_eq!(agent_invite.request_uri(), format!("sip:4007@{AGENT}"));
    assert_eq!(agent_invite.get_named(ATTEMPT_HEADER), Some("att-1"));
    assert_eq!(agent_invite.get_named("X-Slotgate-Consent"), Some("cons-9"));
    assert!(agent_invite
        .get(&Name::From)
        .unwrap()
        .contains("+14155552671"));
    assert!(std::str::from_utf8(&agent_invite.body)
        .unwrap()
        .contains("m=audio 30000"));

    net.send_msg(AGENT, &reply(&agent_invite, 180, "Ringing", AGENT));
    let out = net.send_msg(AGENT, &reply(&agent_invite, 200, "OK", AGENT));
    assert_eq!(methods(&to(&out, AGENT)), ["ACK"]);
    let customer_invite = to(&out, TRUNK).remove(0);
    assert_eq!(
        customer_invite.request_uri(),
        format!("sip:+14155552671@{TRUNK};user=phone")
    );
    assert_eq!(customer_invite.get_named(ATTEMPT_HEADER), Some("att-1"));
    assert!(
        customer_invite.get_named("X-Slotgate-Consent").is_none(),
        "the screen pop is for the agent only"
    );
    assert!(std::str::from_utf8(&customer_invite.body)
        .unwrap()
        .contains("m=audio 30002"));

    net.send_msg(TRUNK, &reply(&customer_invite, 180, "Ringing", TRUNK));
    assert_eq!(
        asked.lock().unwrap().plays,
        [Side::Pbx],
        "the agent hears ringback"
    );
    let out = net.send_msg(TRUNK, &reply(&customer_invite, 200, "OK", TRUNK));
    assert_eq!(methods(&to(&out, TRUNK)), ["ACK"]);
    assert_eq!(asked.lock().unwrap().bridged, 1);
    assert_eq!(asked.lock().unwrap().answered, [Side::Pbx, Side::Trunk]);
    assert_eq!(
        events(&mut net),
        [
            PlacedEventKind::AgentAnswered,
            PlacedEventKind::CustomerRinging,
            PlacedEventKind::CustomerAnswered,
            PlacedEventKind::Connected
        ]
    );

    // The customer hangs up: both legs end.
    let out = net.send(TRUNK, &bye_from(&customer_invite, TRUNK));
    assert_eq!(methods(&to(&out, TRUNK)), ["200"]);
    let agent_bye = to(&out, AGENT).remove(0);
    assert_eq!(methods(std::slice::from_ref(&agent_bye)), ["BYE"]);
    assert_eq!(
        events(&mut net),
        [ended(PlacedOutcome::Answered, "customer")]
    );
    let record = net.core.poll_record().unwrap();
    assert_eq!(record.reason, "attempt att-1: answered");
    assert!(record.answered_at.is_some());
    net.send_msg(AGENT, &reply(&agent_bye, 200, "OK", AGENT));
    assert_eq!(net.core.active_calls(), 0);
    assert_eq!(asked.lock().unwrap().dropped, 1, "media freed");
    let _ = call;
}

#[test]
fn a_bye_from_the_agent_ends_the_customer_leg() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::AgentFirst), net.now)
        .unwrap();
    let agent_invite = to(&net.collect(), AGENT).remove(0);
    let out = net.send_msg(AGENT, &reply(&agent_invite, 200, "OK", AGENT));
    let customer_invite = to(&out, TRUNK).remove(0);
    net.send_msg(TRUNK, &reply(&customer_invite, 200, "OK", TRUNK));
    events(&mut net);
    let out = net.send(AGENT, &bye_from(&agent_invite, AGENT));
    assert_eq!(methods(&to(&out, AGENT)), ["200"]);
    assert_eq!(methods(&to(&out, TRUNK)), ["BYE"]);
    assert_eq!(events(&mut net), [ended(PlacedOutcome::Answered, "agent")]);
}

#[test]
fn a_busy_customer_ends_the_agent_leg_and_is_recorded_busy() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::AgentFirst), net.now)
        .unwrap();
    let agent_invite = to(&net.collect(), AGENT).remove(0);
    let out = net.send_msg(AGENT, &reply(&agent_invite, 200, "OK", AGENT));
    let customer_invite = to(&out, TRUNK).remove(0);
    let out = net.send_msg(TRUNK, &reply(&customer_invite, 486, "Busy Here", TRUNK));
    assert_eq!(methods(&to(&out, TRUNK)), ["ACK"]);
    assert_eq!(methods(&to(&out, AGENT)), ["BYE"]);
    let kinds = events(&mut net);
    assert_eq!(kinds.last(), Some(&ended(PlacedOutcome::Busy, "trunk")));
}

#[test]
fn a_customer_who_does_not_answer_is_cancelled_after_the_ring_timeout() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::AgentFirst), net.now)
        .unwrap();
    let agent_invite = to(&net.collect(), AGENT).remove(0);
    let out = net.send_msg(AGENT, &reply(&agent_invite, 200, "OK", AGENT));
    let customer_invite = to(&out, TRUNK).remove(0);
    net.advance(Duration::from_secs(5));
    net.send_msg(TRUNK, &reply(&customer_invite, 180, "Ringing", TRUNK));
    // The 20 s count from the first ring, not from the INVITE.
    let out = net.advance(Duration::from_secs(19));
    assert!(to(&out, TRUNK)
        .iter()
        .all(|m| m.method().is_none_or(|m| m.as_str() != "CANCEL")));
    let out = net.advance(Duration::from_secs(2));
    assert!(methods(&to(&out, TRUNK)).contains(&"CANCEL".to_string()));
    assert_eq!(methods(&distinct(to(&out, AGENT))), ["BYE"]);
    assert_eq!(
        events(&mut net).last(),
        Some(&ended(PlacedOutcome::NoAnswer, "slotgate"))
    );
    let out = net.send_msg(
        TRUNK,
        &reply(&customer_invite, 487, "Request Terminated", TRUNK),
    );
    assert_eq!(methods(&to(&out, TRUNK)), ["ACK"]);
    assert!(events(&mut net).is_empty(), "one outcome per call");
}

#[test]
fn an_agent_who_refuses_leaves_the_customer_uncalled() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::AgentFirst), net.now)
        .unwrap();
    let agent_invite = to(&net.collect(), AGENT).remove(0);
    let out = net.send_msg(AGENT, &reply(&agent_invite, 486, "Busy Here", AGENT));
    assert!(to(&out, TRUNK).is_empty());
    assert_eq!(
        events(&mut net),
        [ended(
            PlacedOutcome::AgentUnavailable { code: 486 },
            "agent"
        )]
    );
    assert_eq!(net.core.active_calls(), 0);
}

#[test]
fn a_trunk_503_is_a_failure_carrying_its_retry_after() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::CustomerFirst), net.now)
        .unwrap();
    let customer_invite = to(&net.collect(), TRUNK).remove(0);
    let mut busy = reply(&customer_invite, 503, "Service Unavailable", TRUNK);
    busy.push(Name::RetryAfter, "30");
    net.send_msg(TRUNK, &busy);
    assert_eq!(
        events(&mut net),
        [ended(
            PlacedOutcome::Failed {
                code: 503,
                retry_after: Some(Duration::from_secs(30))
            },
            "trunk"
        )]
    );
}

fn answered_customer_first(net: &mut Net) -> Message {
    net.core
        .place_call(request(LegOrder::CustomerFirst), net.now)
        .unwrap();
    let out = net.collect();
    assert!(to(&out, AGENT).is_empty());
    let customer_invite = to(&out, TRUNK).remove(0);
    net.send_msg(TRUNK, &reply(&customer_invite, 200, "OK", TRUNK));
    customer_invite
}

fn detected(net: &mut Net, verdict: Verdict) {
    net.core.handle_media_event(
        MediaEvent {
            call: 1,
            kind: MediaEventKind::Detected(Detection {
                verdict,
                after_ms: 900,
                why: "test",
            }),
        },
        net.now,
    );
}

#[test]
fn customer_first_detects_then_connects_an_agent() {
    let (mut net, asked) = net();
    answered_customer_first(&mut net);
    assert_eq!(asked.lock().unwrap().detect, 1);
    assert_eq!(asked.lock().unwrap().bridged, 0);
    detected(&mut net, Verdict::Person);
    assert_eq!(
        events(&mut net),
        [
            PlacedEventKind::CustomerAnswered,
            PlacedEventKind::Detected(Verdict::Person)
        ]
    );
    net.core
        .connect_agent(1, &format!("sip:4007@{AGENT}"), vec![], net.now)
        .unwrap();
    let agent_invite = to(&net.collect(), AGENT).remove(0);
    assert_eq!(agent_invite.get_named(ATTEMPT_HEADER), Some("att-1"));
    net.send_msg(AGENT, &reply(&agent_invite, 200, "OK", AGENT));
    assert_eq!(asked.lock().unwrap().bridged, 1);
    assert_eq!(
        events(&mut net),
        [PlacedEventKind::AgentAnswered, PlacedEventKind::Connected]
    );
}

#[test]
fn an_abandoned_person_hears_the_message_then_the_call_ends() {
    let (mut net, asked) = net();
    let customer_invite = answered_customer_first(&mut net);
    detected(&mut net, Verdict::Person);
    events(&mut net);
    let message = Arc::new(Announcement::ringback());
    net.core
        .play_and_hang_up(1, PlacedOutcome::Abandoned, Some(message), net.now);
    assert_eq!(asked.lock().unwrap().plays, [Side::Trunk]);
    assert!(
        to(&net.collect(), TRUNK).is_empty(),
        "no BYE during the message"
    );
    assert!(events(&mut net).is_empty());
    net.core.handle_media_event(
        MediaEvent {
            call: 1,
            kind: MediaEventKind::PlaybackEnded { side: Side::Trunk },
        },
        net.now,
    );
    let out = net.collect();
    let bye = to(&out, TRUNK).remove(0);
    assert_eq!(methods(std::slice::from_ref(&bye)), ["BYE"]);
    assert_eq!(bye.get(&Name::CallId), customer_invite.get(&Name::CallId));
    assert_eq!(
        events(&mut net),
        [ended(PlacedOutcome::Abandoned, "slotgate")]
    );
}

#[test]
fn a_message_whose_end_is_never_reported_still_ends_the_call() {
    let (mut net, _) = net();
    answered_customer_first(&mut net);
    detected(&mut net, Verdict::Machine);
    events(&mut net);
    let message = Arc::new(Announcement::ringback());
    net.core
        .play_and_hang_up(1, PlacedOutcome::Machine, Some(message), net.now);
    let out = net.advance(Duration::from_secs(30));
    assert_eq!(methods(&distinct(to(&out, TRUNK))), ["BYE"]);
    assert_eq!(
        events(&mut net),
        [ended(PlacedOutcome::Machine, "slotgate")]
    );
}

#[test]
fn a_machine_is_hung_up_without_a_message_when_the_policy_says_so() {
    let (mut net, _) = net();
    answered_customer_first(&mut net);
    detected(&mut net, Verdict::Machine);
    net.core
        .play_and_hang_up(1, PlacedOutcome::Machine, None, net.now);
    assert_eq!(methods(&to(&net.collect(), TRUNK)), ["BYE"]);
    assert_eq!(
        events(&mut net).last(),
        Some(&ended(PlacedOutcome::Machine, "slotgate"))
    );
}

#[test]
fn placing_needs_media_and_a_usable_agent_target() {
    let mut plain = Net::new("");
    assert!(plain
        .core
        .place_call(request(LegOrder::AgentFirst), plain.now)
        .is_err());
    let (mut net, _) = net();
    let mut bad = request(LegOrder::AgentFirst);
    bad.agent_target = Some("sip:queue@pbx.example.com".into());
    assert!(
        net.core.place_call(bad, net.now).is_err(),
        "no DNS on the call path"
    );
    assert!(net.collect().is_empty(), "nothing sent");
}

#[test]
fn a_trunk_that_never_answers_the_invite_is_a_failure_not_a_no_answer() {
    let (mut net, _) = net();
    net.core
        .place_call(request(LegOrder::CustomerFirst), net.now)
        .unwrap();
    net.collect();
    // No 100, no 180: Timer B (64*T1) ends the transaction.
    net.advance(Duration::from_secs(40));
    let kinds = events(&mut net);
    assert_eq!(
        kinds.last(),
        Some(&ended(
            PlacedOutcome::Failed {
                code: 408,
                retry_after: None
            },
            "slotgate"
        )),
        "{kinds:?}"
    );
    assert_eq!(net.core.active_calls(), 0);
}
