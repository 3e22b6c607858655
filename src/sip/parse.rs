//! From framed bytes to a validated `Message`, or to the answer a malformed
//! one deserves.
//!
//! Validation happens here, once, at the edge: everything after this point
//! may assume a request has one From, To, Call-ID and CSeq, parseable Vias,
//! and a CSeq method matching the request line. What is malformed is turned
//! into a status code (400, 416, 501, 505) while enough of the message is
//! known to answer it, or into "drop" when no answer can be addressed.
//!
//! Header bytes that are not UTF-8 (a Latin-1 display name from an older PBX
//! is the usual case) are read as Latin-1 rather than refused: every byte maps
//! to one character, nothing is lost, and the call goes through.

use bytes::Bytes;

use super::headers::{self, UriCheck};
use super::message::{Header, Message, Method, Name, StartLine};

/// Why a message was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// A request that deserves an error response; `partial` holds what could
    /// be read, enough to address the answer.
    Answer {
        code: u16,
        reason: &'static str,
        partial: Box<Message>,
    },
    /// Nothing sensible can be sent back (a response, or no Via at all).
    Drop(&'static str),
}

fn decode_head(head: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(head) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(head.iter().map(|&b| b as char).collect()),
    }
}

/// Parses and validates one framed message.
pub fn parse(head: &[u8], body: &[u8]) -> Result<Message, Rejection> {
    let text = decode_head(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("");

    // Headers first, so even a bad start line can be answered.
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut bad_header_line = false;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(last) => {
                    last.value.push(' ');
                    last.value.push_str(line.trim());
                }
                None => bad_header_line = true,
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bad_header_line = true;
            continue;
        };
        let name = name.trim_end();
        if !headers::is_token(name) {
            bad_header_line = true;
            continue;
        }
        headers.push(Header {
            name: Name::parse(name),
            value: value.trim().to_string(),
        });
    }
    // Comma-joined values of list headers are split (after unfolding, so a
    // list folded across lines splits too) so each hop's Via and each route
    // entry is its own element.
    if headers.iter().any(|h| {
        matches!(h.name, Name::Via | Name::Route | Name::RecordRoute) && h.value.contains(',')
    }) {
        headers = headers
            .into_iter()
            .flat_map(|h| {
                if matches!(h.name, Name::Via | Name::Route | Name::RecordRoute) {
                    headers::split_commas(&h.value)
                        .into_iter()
                        .map(|v| Header {
                            name: h.name.clone(),
                            value: v.to_string(),
                        })
                        .collect::<Vec<_>>()
                } else {
                    vec![h]
                }
            })
            .collect();
    }

    if start_line.starts_with("SIP/") {
        return parse_response(start_line, headers, body);
    }

    let mut partial = Message {
        start: StartLine::Request {
            method: Method::Other(String::new()),
            uri: String::new(),
        },
        headers,
        body: Bytes::copy_from_slice(body),
    };
    if partial.get(&Name::Via).is_none() {
        return Err(Rejection::Drop("request without Via"));
    }
    let reject = |code, reason, partial: Message| Rejection::Answer {
        code,
        reason,
        partial: Box::new(partial),
    };

    let parts: Vec<&str> = start_line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(reject(400, "Malformed Request-Line", partial));
    };
    if !headers::is_token(method) || uri.is_empty() {
        return Err(reject(400, "Malformed Request-Line", partial));
    }
    let method = Method::parse(method);
    partial.start = StartLine::Request {
        method: method.clone(),
        uri: uri.to_string(),
    };
    if version != "SIP/2.0" {
        let looks_like_version = version.strip_prefix("SIP/").is_some_and(|v| {
            v.split_once('.')
                .is_some_and(|(a, b)| is_digits(a) && is_digits(b))
        });
        return Err(if looks_like_version {
            reject(505, "Version Not Supported", partial)
        } else {
            reject(400, "Malformed Request-Line", partial)
        });
    }
    if bad_header_line {
        return Err(reject(400, "Malformed Header Line", partial));
    }
    if let Some(reason) = check_request_headers(&partial, &method) {
        let code = match (&method, reason) {
            (Method::Other(_), "CSeq Method Mismatch") => 501,
            _ => 400,
        };
        let reason = if code == 501 {
            "Not Implemented"
        } else {
            reason
        };
        return Err(reject(code, reason, partial));
    }
    match headers::check_request_uri(uri) {
        UriCheck::Sip | UriCheck::Tel => Ok(partial),
        UriCheck::Malformed => Err(reject(400, "Malformed Request-URI", partial)),
        UriCheck::UnsupportedScheme => Err(reject(416, "Unsupported URI Scheme", partial)),
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// The first problem with a request's headers, as a reason phrase.
fn check_request_headers(msg: &Message, method: &Method) -> Option<&'static str> {
    for (name, missing, duplicate) in [
        (Name::From, "Missing From", "Duplicate From"),
        (Name::To, "Missing To", "Duplicate To"),
        (Name::CallId, "Missing Call-ID", "Duplicate Call-ID"),
        (Name::CSeq, "Missing CSeq", "Duplicate CSeq"),
    ] {
        match msg.all(&name).count() {
            0 => return Some(missing),
            1 => {}
            _ => return Some(duplicate),
        }
    }
    for name in [Name::MaxForwards, Name::ContentType] {
        if msg.all(&name).count() > 1 {
            return Some("Duplicate Header");
        }
    }
    if msg
        .get(&Name::CallId)
        .is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace))
    {
        return Some("Malformed Call-ID");
    }
    let cseq = msg.get(&Name::CSeq).and_then(headers::parse_cseq);
    let Some((_, cseq_method)) = cseq else {
        return Some("Malformed CSeq");
    };
    if cseq_method != method.as_str() {
        return Some("CSeq Method Mismatch");
    }
    for via in msg.all(&Name::Via) {
        match headers::parse_via(via) {
            None => return Some("Malformed Via"),
            Some(v) if v.branch == Some("z9hG4bK") => {
                return Some("Missing Transaction Identifier")
            }
            Some(_) => {}
        }
    }
    for name in [Name::From, Name::To] {
        if msg.get(&name).and_then(headers::parse_name_addr).is_none() {
            return Some(if name == Name::From {
                "Malformed From"
            } else {
                "Malformed To"
            });
        }
    }
    for contact in msg.all(&Name::Contact) {
        if contact.trim() == "*" {
            continue;
        }
        if headers::split_commas(contact)
            .iter()
            .any(|c| headers::parse_name_addr(c).is_none())
        {
            return Some("Malformed Contact");
        }
    }
    if let Some(mf) = msg.get(&Name::MaxForwards) {
        if !is_digits(mf.trim()) || mf.trim().parse::<u32>().is_err() {
            return Some("Malformed Max-Forwards");
        }
    }
    // RFC 3261 §20.17: SIP dates are always GMT.
    if let Some(date) = msg.get(&Name::Date) {
        if !date.trim_end().ends_with("GMT") {
            return Some("Malformed Date");
        }
    }
    None
}

fn parse_response(
    start_line: &str,
    headers: Vec<Header>,
    body: &[u8],
) -> Result<Message, Rejection> {
    let mut parts = start_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let reason = parts.next();
    if version != "SIP/2.0" || code.len() != 3 || !is_digits(code) || reason.is_none() {
        return Err(Rejection::Drop("malformed Status-Line"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| Rejection::Drop("malformed status code"))?;
    if !(100..=699).contains(&code) {
        return Err(Rejection::Drop("status code out of range"));
    }
    let msg = Message {
        start: StartLine::Response {
            code,
            reason: reason.unwrap_or("").to_string(),
        },
        headers,
        body: Bytes::copy_from_slice(body),
    };
    let single = |name: &Name| msg.all(name).count() == 1;
    if !(single(&Name::CallId) && single(&Name::CSeq) && single(&Name::From) && single(&Name::To)) {
        return Err(Rejection::Drop(
            "response without single From/To/Call-ID/CSeq",
        ));
    }
    if msg.get(&Name::CSeq).and_then(headers::parse_cseq).is_none() {
        return Err(Rejection::Drop("response with malformed CSeq"));
    }
    match msg.get(&Name::Via).map(headers::parse_via) {
        Some(Some(_)) => Ok(msg),
        _ => Err(Rejection::Drop("response without a valid Via")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Message, Rejection> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        parse(head.as_bytes(), body.as_bytes())
    }

    fn code_of(r: Result<Message, Rejection>) -> Option<u16> {
        match r {
            Ok(_) => Some(0),
            Err(Rejection::Answer { code, .. }) => Some(code),
            Err(Rejection::Drop(_)) => None,
        }
    }

    const GOOD: &str = "INVITE sip:+15551234567@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:+15551234567@example.com>\r\n\
        From: \"Alice\" <sip:alice@10.0.0.1>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@10.0.0.1>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn a_plain_invite_parses() {
        let m = req(GOOD).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.get(&Name::CallId), Some("a84b4c76e66710@pc33"));
        assert_eq!(&m.body[..], b"v=0\n");
    }

    #[test]
    fn latin1_display_names_are_read_not_refused() {
        let mut bytes = GOOD.as_bytes().to_vec();
        let pos = GOOD.find("Alice").unwrap();
        bytes[pos] = 0xC4; // 'Ä' in Latin-1, invalid alone in UTF-8
        let text_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let m = parse(&bytes[..text_end], b"").unwrap();
        assert!(m.get(&Name::From).unwrap().starts_with("\"Älice\""));
    }

    #[test]
    fn broken_requests_get_the_right_code() {
        let cases: [(&str, &str, Option<u16>); 9] = [
            ("INVITE sip:", "INVITE  sip:", Some(400)),
            (" SIP/2.0\r\nVia", " SIP/7.0\r\nVia", Some(505)),
            ("CSeq: 314159 INVITE", "CSeq: 314159 ACK", Some(400)),
            ("INVITE sip:+1", "<sip:+1", Some(400)),
            ("Call-ID: a84b4c76e66710@pc33\r\n", "", Some(400)),
            ("From: \"Alice\"", "From: \"Alice", Some(400)),
            ("sip:+15551234567@example.com SIP", "foo:bar SIP", Some(416)),
            (
                "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n",
                "",
                None,
            ),
            (
                "To: <sip:+15551234567@example.com>\r\n",
                "To: <sip:+15551234567@example.com>\r\nTo: <sip:x@y>\r\n",
                Some(400),
            ),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_eq!(code_of(req(&text)), want, "{from} -> {to}");
        }
    }

    #[test]
    fn unknown_method_with_mismatched_cseq_is_not_implemented() {
        let text = GOOD.replacen("INVITE sip:", "NEWMETHOD sip:", 1);
        assert_eq!(code_of(req(&text)), Some(501));
    }

    #[test]
    fn responses_out_of_range_are_dropped() {
        let resp = "SIP/2.0 4294967301 better not break the receiver\r\n\
            Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n\
            Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\n\
            CSeq: 353494 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n";
        assert!(matches!(req(resp), Err(Rejection::Drop(_))));
    }

    #[test]
    fn folded_lines_and_compact_forms() {
        let text = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx1\r\nf: <sip:a@b>\r\n ;tag=9\r\n\
            t: <sip:a@b>\r\ni: abc\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let m = req(text).unwrap();
        assert_eq!(m.get(&Name::From), Some("<sip:a@b> ;tag=9"));
    }
}
