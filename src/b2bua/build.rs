//! Building the messages a B2BUA sends: responses to a received request,
//! requests inside a leg's dialog, and the ACK and CANCEL that RFC 3261 ties
//! to an INVITE it sent.
//!
//! Each builder takes exactly the state it needs, so what a leg sends is
//! decided by the call and how it is spelled is decided here.

use bytes::Bytes;

use crate::sip::headers;
use crate::sip::message::{Message, Method, Name};

/// Our side of one dialog, enough to send requests inside it.
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    pub call_id: String,
    /// Our From/To value on this leg, with our tag.
    pub local: String,
    /// The peer's From/To value, with its tag once known.
    pub remote: String,
    /// Where requests go (the peer's Contact URI).
    pub remote_target: String,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
}

/// Replaces (or adds) the `tag` parameter of a name-addr header value.
pub fn with_tag(value: &str, tag: &str) -> String {
    match headers::parse_name_addr(value) {
        Some(na) => {
            let params: String = na
                .params
                .split(';')
                .skip(1)
                .filter(|p| !p.trim().to_ascii_lowercase().starts_with("tag"))
                .map(|p| format!(";{}", p.trim()))
                .collect();
            let display = if na.display.is_empty() {
                String::new()
            } else {
                format!("{} ", na.display)
            };
            format!("{display}<{}>{params};tag={tag}", na.uri)
        }
        None => format!("{value};tag={tag}"),
    }
}

/// The URI inside a name-addr value (Contact, Record-Route).
pub fn uri_of(value: &str) -> Option<String> {
    headers::parse_name_addr(value).map(|na| na.uri.to_string())
}

/// A response to `req` with the headers RFC 3261 §8.2.6 copies.
pub fn response_to(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    server: &str,
) -> Message {
    let mut resp = Message::response(code, reason);
    resp.copy_from(req, &Name::Via);
    resp.copy_from(req, &Name::From);
    if let Some(to) = req.get(&Name::To) {
        let has_tag = headers::parse_name_addr(to)
            .and_then(|n| n.tag().map(str::to_owned))
            .is_some();
        match to_tag {
            Some(tag) if !has_tag && code > 100 => resp.push(Name::To, with_tag(to, tag)),
            _ => resp.push(Name::To, to),
        }
    }
    resp.copy_from(req, &Name::CallId);
    resp.copy_from(req, &Name::CSeq);
    resp.push(Name::Server, server);
    resp
}

/// A request inside `dialog`, with a fresh Via and the next CSeq.
pub fn in_dialog_request(
    dialog: &mut Dialog,
    method: Method,
    via: String,
    contact: &str,
    max_forwards: u32,
) -> Message {
    if method != Method::Ack && method != Method::Cancel {
        dialog.local_cseq = dialog.local_cseq.wrapping_add(1).max(1);
    }
    let mut req = Message::request(method.clone(), dialog.remote_target.clone());
    req.push(Name::Via, via);
    req.push(Name::MaxForwards, max_forwards.to_string());
    for route in &dialog.route_set {
        req.push(Name::Route, route.clone());
    }
    req.push(Name::From, dialog.local.clone());
    req.push(Name::To, dialog.remote.clone());
    req.push(Name::CallId, dialog.call_id.clone());
    req.push(Name::CSeq, format!("{} {}", dialog.local_cseq, method));
    if matches!(method, Method::Invite | Method::Update) {
        req.push(Name::Contact, contact);
    }
    req
}

/// The ACK for a 2xx to the INVITE with CSeq `cseq` sent in `dialog`
/// (RFC 3261 §13.2.2.4: a new transaction, end to end).
pub fn ack_for_2xx(
    dialog: &Dialog,
    cseq: u32,
    via: String,
    body: Option<(&str, Bytes)>,
) -> Message {
    let mut ack = Message::request(Method::Ack, dialog.remote_target.clone());
    ack.push(Name::Via, via);
    ack.push(Name::MaxForwards, "70");
    for route in &dialog.route_set {
        ack.push(Name::Route, route.clone());
    }
    ack.push(Name::From, dialog.local.clone());
    ack.push(Name::To, dialog.remote.clone());
    ack.push(Name::CallId, dialog.call_id.clone());
    ack.push(Name::CSeq, format!("{cseq} ACK"));
    if let Some((ct, body)) = body {
        ack.set_body(Some(ct), body);
    }
    ack
}

/// The hop-by-hop ACK for a non-2xx final `resp` to `invite`
/// (RFC 3261 §17.1.1.3: same branch, To from the response).
pub fn ack_for_failure(invite: &Message, resp: &Message) -> Message {
    let mut ack = Message::request(Method::Ack, invite.request_uri().to_string());
    if let Some(via) = invite.get(&Name::Via) {
        ack.push(Name::Via, via);
    }
    ack.push(Name::MaxForwards, "70");
    ack.copy_from(invite, &Name::Route);
    ack.copy_from(invite, &Name::From);
    ack.copy_from(resp, &Name::To);
    ack.copy_from(invite, &Name::CallId);
    let num = invite.cseq().map_or(1, |(n, _)| n);
    ack.push(Name::CSeq, format!("{num} ACK"));
    ack
}

/// The CANCEL for `invite` (RFC 3261 §9.1: same Request-URI, Via, Route,
/// From, To, Call-ID and CSeq number).
pub fn cancel_for(invite: &Message) -> Message {
    let mut cancel = Message::request(Method::Cancel, invite.request_uri().to_string());
    if let Some(via) = invite.get(&Name::Via) {
        cancel.push(Name::Via, via);
    }
    cancel.push(Name::MaxForwards, "70");
    cancel.copy_from(invite, &Name::Route);
    cancel.copy_from(invite, &Name::From);
    cancel.copy_from(invite, &Name::To);
    cancel.copy_from(invite, &Name::CallId);
    let num = invite.cseq().map_or(1, |(n, _)| n);
    cancel.push(Name::CSeq, format!("{num} CANCEL"));
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_tag_replaces_only_the_tag() {
        assert_eq!(
            with_tag("\"Alice\" <sip:a@b>;tag=1;x=y", "99"),
            "\"Alice\" <sip:a@b>;x=y;tag=99"
        );
        assert_eq!(with_tag("sip:a@b", "7"), "<sip:a@b>;tag=7");
    }

    #[test]
    fn responses_copy_vias_in_order_and_add_a_to_tag() {
        let mut req = Message::request(Method::Invite, "sip:x@y");
        req.push(Name::Via, "SIP/2.0/UDP a;branch=z9hG4bK1");
        req.push(Name::Via, "SIP/2.0/UDP b;branch=z9hG4bK2");
        req.push(Name::From, "<sip:a@a>;tag=f");
        req.push(Name::To, "<sip:x@y>");
        req.push(Name::CallId, "c");
        req.push(Name::CSeq, "1 INVITE");
        let resp = response_to(&req, 180, "Ringing", Some("t1"), "slotgate");
        let vias: Vec<_> = resp.all(&Name::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP a;branch=z9hG4bK1",
                "SIP/2.0/UDP b;branch=z9hG4bK2"
            ]
        );
        assert_eq!(resp.get(&Name::To), Some("<sip:x@y>;tag=t1"));
        let trying = response_to(&req, 100, "Trying", Some("t1"), "slotgate");
        assert_eq!(trying.get(&Name::To), Some("<sip:x@y>"));
    }
}
