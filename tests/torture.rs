//! Replays the SIP torture corpus (RFC 4475 and the RFC 5118 IPv6 messages)
//! at a running slotgate, over UDP and over TCP, and proves that:
//!
//! 1. no message crashes or wedges it: after every message the process is
//!    still alive and still answers OPTIONS with 200;
//! 2. every malformed message gets one of the answers the corpus index allows
//!    for it (400, 505, 501 ...), or silence / a closed connection where the
//!    index allows that, and never a 1xx or 2xx that would mean it was
//!    processed;
//! 3. valid messages parse: any answer is a well-formed response echoing the
//!    request, carrying the code an endpoint owes where the index names one
//!    (416, 420 with Unsupported, 415, 406, 200/483, 501 with Allow, and a
//!    rejection of every REGISTER since slotgate is no registrar), and the
//!    responses in the corpus are silently discarded;
//! 4. nothing malformed reaches the trunk: a fake trunk records every request
//!    slotgate sends it (answering INVITEs with 486), no malformed message
//!    produces one, and whatever does arrive there is itself well-formed.
//!
//! It prints what came back for every file and transport, and fails with the
//! complete list of deviations, each with what came back and what was allowed.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{options_ping, Slotgate};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/sip-torture"
);

/// The folders replayed; every file in them must have an expectation below.
/// (`rfc5118/{valid,invalid}` hold LF-only archive copies, `wire/` the
/// on-wire ones; `rfc4475/unreferenced/test.dat` is not a test.)
const CORPUS_DIRS: [&str; 4] = [
    "rfc4475/invalid",
    "rfc5118/wire/invalid",
    "rfc4475/valid",
    "rfc5118/wire/valid",
];

/// Most corpus Vias carry no rport and no port, so a compliant element
/// answers to source-IP:5060: the test sends from, and listens on, this port.
const PEER_PORT: u16 = 5060;
/// Other ports named by corpus Vias (quotbal 5050, the TLS default 5061,
/// mult-ip-in-header 6050, ipv4-mapped-ipv6 19823): listened on when free, to
/// catch answers sent there.
const SIDE_PORTS: [u16; 4] = [5050, 5061, 6050, 19823];

/// How long to wait over UDP for an answer when none has come.
const UDP_WINDOW: Duration = Duration::from_millis(300);
/// How long to wait for a final answer once a provisional one has come.
const PROVISIONAL_WINDOW: Duration = Duration::from_millis(1000);
/// How long to keep listening after a final answer (duplicates, conflicts).
const FINAL_GRACE: Duration = Duration::from_millis(60);
/// How long a TCP connection is read before giving up.
const TCP_WINDOW: Duration = Duration::from_millis(1000);
/// A final answer slower than this is flagged in the summary (a sign of,
/// say, a DNS lookup on the request path).
const SLOW_ANSWER: Duration = Duration::from_millis(100);
/// How long each OPTIONS liveness ping waits (two are tried).
const PING_WAIT: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// Expectations, from the corpus INDEX.md

/// The final answers a message may get.
#[derive(Clone, Copy)]
enum Codes {
    /// Any well-formed response.
    Any,
    /// Any well-formed response except 400: the message is valid and must parse.
    Parsed,
    /// One of these codes.
    Only(&'static [u16]),
    /// A code in this inclusive range.
    Range(u16, u16),
    /// No answer at all: the message is a response, or must be discarded.
    Nothing,
}

impl Codes {
    fn allows(self, code: u16) -> bool {
        match self {
            Codes::Any => true,
            Codes::Parsed => code != 400,
            Codes::Only(codes) => codes.contains(&code),
            Codes::Range(lo, hi) => (lo..=hi).contains(&code),
            Codes::Nothing => false,
        }
    }

    fn requires_final(self) -> bool {
        matches!(self, Codes::Only(_) | Codes::Range(..))
    }
}

#[derive(Clone, Copy)]
struct Rule {
    codes: Codes,
    /// No answer within the window is acceptable (dropped).
    silence: bool,
    /// Over TCP: a connection closed without an answer is acceptable.
    close: bool,
    /// Over TCP: the connection must end up closed (its framing is lost).
    must_close: bool,
}

impl Rule {
    fn describe(&self, transport: Transport) -> String {
        let tcp = transport == Transport::Tcp;
        let mut parts = Vec::new();
        match self.codes {
            Codes::Any => parts.push("any well-formed response".to_string()),
            Codes::Parsed => parts.push("any well-formed response except 400".to_string()),
            Codes::Only(codes) => parts.push(
                codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
            Codes::Range(lo, hi) => parts.push(format!("{lo}-{hi}")),
            Codes::Nothing => {}
        }
        if self.silence {
            parts.push("silence".to_string());
        }
        if tcp && self.close {
            parts.push("closed connection".to_string());
        }
        let mut text = parts.join(" | ");
        if tcp && self.must_close {
            text.push_str(" (and the connection closed)");
        }
        text
    }
}

/// Exactly one of `codes`.
const fn answer(codes: &'static [u16]) -> Rule {
    Rule {
        codes: Codes::Only(codes),
        silence: false,
        close: false,
        must_close: false,
    }
}

/// One of `codes`, or dropped (silence; over TCP also a closed connection).
const fn answer_or_drop(codes: &'static [u16]) -> Rule {
    Rule {
        codes: Codes::Only(codes),
        silence: true,
        close: true,
        must_close: false,
    }
}

/// TCP, framing unrecoverable: one of `codes` or nothing, and the
/// connection closed.
const fn answer_then_close(codes: &'static [u16]) -> Rule {
    Rule {
        codes: Codes::Only(codes),
        silence: false,
        close: true,
        must_close: true,
    }
}

/// TCP, message incomplete: wait for the rest (silence) or close.
const WAIT_OR_CLOSE: Rule = Rule {
    codes: Codes::Nothing,
    silence: true,
    close: true,
    must_close: false,
};

/// An invalid response: dropped (a stream may be closed).
const DROP: Rule = Rule {
    codes: Codes::Nothing,
    silence: true,
    close: true,
    must_close: false,
};

/// A valid response matching no transaction: discarded, silently.
const DISCARD: Rule = Rule {
    codes: Codes::Nothing,
    silence: false,
    close: false,
    must_close: false,
};

/// A valid request: any answer (or none), but not 400.
const PARSED: Rule = Rule {
    codes: Codes::Parsed,
    silence: true,
    close: false,
    must_close: false,
};

/// Any well-formed answer, or none.
const ANY: Rule = Rule {
    codes: Codes::Any,
    silence: true,
    close: false,
    must_close: false,
};

/// A REGISTER: slotgate is not a registrar, so some 4xx-6xx.
const NOT_REGISTRAR: Rule = Rule {
    codes: Codes::Range(400, 699),
    silence: false,
    close: false,
    must_close: false,
};

/// A header the final answer must carry.
#[derive(Clone, Copy)]
enum Check {
    None,
    /// A 420 must list these option tags in Unsupported.
    Unsupported(&'static [&'static str]),
    /// A 405 or 501 must carry Allow.
    Allow,
}

#[derive(Clone, Copy)]
struct Case {
    /// Relative to the corpus root.
    path: &'static str,
    udp: Rule,
    tcp: Rule,
    check: Check,
    /// Call-ID of a request following the first one in the same bytes: noise
    /// in a UDP datagram, a second request on a TCP stream.
    noise: Option<&'static str>,
    /// The expectation, in the index's words.
    note: &'static str,
}

const fn case(path: &'static str, rule: Rule, note: &'static str) -> Case {
    Case {
        path,
        udp: rule,
        tcp: rule,
        check: Check::None,
        noise: None,
        note,
    }
}

impl Case {
    const fn over_tcp(self, tcp: Rule) -> Case {
        Case { tcp, ..self }
    }

    const fn check(self, check: Check) -> Case {
        Case { check, ..self }
    }

    const fn noise(self, call_id: &'static str) -> Case {
        Case {
            noise: Some(call_id),
            ..self
        }
    }

    fn invalid(&self) -> bool {
        self.path.contains("/invalid/")
    }

    fn rule(&self, transport: Transport) -> Rule {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
        }
    }
}

/// Every referenced message with the answers allowed for it. Malformed ones
/// come first so that no transaction left by a valid message (several share
/// a branch or a Call-ID) can answer for them.
const CASES: &[Case] = &[
    // RFC 4475 §3.1.2, §3.3: malformed and invalid messages.
    case(
        "rfc4475/invalid/badinv01.dat",
        answer_or_drop(&[400]),
        "stray ; and , in Via and Contact: 400 (or dropped: the Via itself is broken)",
    ),
    case(
        "rfc4475/invalid/clerr.dat",
        answer(&[400]),
        "Content-Length larger than the message: UDP 400; TCP waits for more, then closes",
    )
    .over_tcp(WAIT_OR_CLOSE),
    case(
        "rfc4475/invalid/ncl.dat",
        answer_or_drop(&[400]),
        "negative Content-Length: 400 or dropped; TCP framing lost, close",
    )
    .over_tcp(answer_then_close(&[400])),
    case(
        "rfc4475/invalid/scalar02.dat",
        answer(&[400]),
        "CSeq above 2^32-1: 400",
    ),
    case(
        "rfc4475/invalid/scalarlg.dat",
        DROP,
        "response with overlarge scalars: discard",
    ),
    case(
        "rfc4475/invalid/quotbal.dat",
        answer(&[400]),
        "unterminated quoted display name: 400",
    ),
    case(
        "rfc4475/invalid/ltgtruri.dat",
        answer(&[400]),
        "<> around the Request-URI: 400",
    ),
    case(
        "rfc4475/invalid/lwsruri.dat",
        answer(&[400]),
        "LWS inside the Request-URI: 400",
    ),
    case(
        "rfc4475/invalid/lwsstart.dat",
        answer(&[400]),
        "several SP between request-line elements: 400",
    ),
    case(
        "rfc4475/invalid/trws.dat",
        answer(&[400]),
        "SP at the end of the request line: 400",
    ),
    case(
        "rfc4475/invalid/escruri.dat",
        answer(&[400]),
        "escaped headers in the Request-URI: 400",
    ),
    case(
        "rfc4475/invalid/baddate.dat",
        answer(&[400]),
        "Date not in GMT: 400",
    ),
    case(
        "rfc4475/invalid/regbadct.dat",
        answer(&[400]),
        "Contact with an escaped header outside <>: 400",
    ),
    case(
        "rfc4475/invalid/badaspec.dat",
        answer(&[400]),
        "spaces within addr-spec: 400",
    ),
    case(
        "rfc4475/invalid/baddn.dat",
        answer_or_drop(&[400]),
        "non-token display name, header section never ends: UDP 400 or dropped; TCP waits",
    )
    .over_tcp(WAIT_OR_CLOSE),
    case(
        "rfc4475/invalid/badvers.dat",
        answer(&[505]),
        "SIP/7.0: 505 Version Not Supported",
    ),
    case(
        "rfc4475/invalid/mismatch01.dat",
        answer(&[400]),
        "CSeq method differs from the request method: 400",
    ),
    case(
        "rfc4475/invalid/mismatch02.dat",
        answer(&[501, 400]),
        "unknown method, CSeq says INVITE: 501 (or 400)",
    ),
    case(
        "rfc4475/invalid/bigcode.dat",
        DROP,
        "response code above 699: drop",
    ),
    case(
        "rfc4475/invalid/insuf.dat",
        answer_or_drop(&[400]),
        "no Call-ID, From or To: 400 or dropped",
    ),
    case(
        "rfc4475/invalid/multi01.dat",
        answer(&[400]),
        "duplicate To/From/Call-ID/CSeq/Max-Forwards: 400",
    ),
    case(
        "rfc4475/invalid/mcl01.dat",
        answer_or_drop(&[400]),
        "two Content-Length values: 400 or dropped; TCP framing lost, close",
    )
    .over_tcp(answer_then_close(&[400])),
    // RFC 5118 §4.2.
    case(
        "rfc5118/wire/invalid/ipv6-bad.sip",
        answer(&[400]),
        "IPv6 Request-URI host without []: 400",
    ),
    // RFC 4475 §3.1.1, §3.2-3.4: valid messages.
    case(
        "rfc4475/valid/wsinv.dat",
        PARSED,
        "tortuous INVITE (folding, LWS, compact forms): must parse",
    ),
    case(
        "rfc4475/valid/intmeth.dat",
        answer(&[501, 405]),
        "unknown method at an endpoint: 501 with Allow",
    )
    .check(Check::Allow),
    case(
        "rfc4475/valid/esc01.dat",
        PARSED,
        "% escapes in URIs: must parse",
    ),
    case(
        "rfc4475/valid/escnull.dat",
        NOT_REGISTRAR,
        "REGISTER with %00 in URIs: must parse; not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/esc02.dat",
        answer(&[501, 405]),
        "method RE%47IST%45R is unknown: 501 with Allow",
    )
    .check(Check::Allow),
    case(
        "rfc4475/valid/lwsdisp.dat",
        PARSED,
        "no LWS between display name and <: must parse",
    ),
    case(
        "rfc4475/valid/longreq.dat",
        PARSED,
        "very long header values, many Vias: must parse",
    ),
    case(
        "rfc4475/valid/dblreq.dat",
        NOT_REGISTRAR,
        "REGISTER: 4xx-6xx; the INVITE after it is noise in a datagram, never processed",
    )
    .noise("dblreq.0ha0isnda977644900765@192.0.2.15"),
    case(
        "rfc4475/valid/semiuri.dat",
        PARSED,
        "; in the Request-URI user part: must parse",
    ),
    case(
        "rfc4475/valid/transports.dat",
        PARSED,
        "unknown Via transports: must parse",
    ),
    case(
        "rfc4475/valid/mpart01.dat",
        PARSED,
        "multipart body with NUL octets: must parse",
    ),
    case(
        "rfc4475/valid/unreason.dat",
        DISCARD,
        "response matching no transaction: discard",
    ),
    case(
        "rfc4475/valid/noreason.dat",
        DISCARD,
        "response matching no transaction: discard",
    ),
    case(
        "rfc4475/valid/badbranch.dat",
        ANY,
        "bare z9hG4bK branch: 400 or processed, never a crash",
    ),
    case(
        "rfc4475/valid/unkscm.dat",
        answer(&[416]),
        "unknown Request-URI scheme: 416",
    ),
    case(
        "rfc4475/valid/novelsc.dat",
        answer(&[416, 404]),
        "soap.beep Request-URI: 416 (or 404)",
    ),
    case(
        "rfc4475/valid/unksm2.dat",
        NOT_REGISTRAR,
        "REGISTER with non-SIP URIs in To/From/Contact: not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/bext01.dat",
        answer(&[420]),
        "unknown Require: 420 with Unsupported listing it",
    )
    .check(Check::Unsupported(&[
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ])),
    case(
        "rfc4475/valid/invut.dat",
        answer(&[415]),
        "unknown Content-Type at an endpoint: 415",
    ),
    case(
        "rfc4475/valid/regaut01.dat",
        NOT_REGISTRAR,
        "REGISTER with an unknown Authorization scheme: not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/bcast.dat",
        DISCARD,
        "response with a broadcast Via: drop",
    ),
    case(
        "rfc4475/valid/zeromf.dat",
        answer(&[200, 483]),
        "OPTIONS with Max-Forwards 0 at an endpoint: 200 (or 483)",
    ),
    case(
        "rfc4475/valid/cparam01.dat",
        NOT_REGISTRAR,
        "REGISTER with a contact-param: not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/cparam02.dat",
        NOT_REGISTRAR,
        "REGISTER with a url-parameter: not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/regescrt.dat",
        NOT_REGISTRAR,
        "REGISTER with an escaped header in Contact: not a registrar, 4xx-6xx",
    ),
    case(
        "rfc4475/valid/sdp01.dat",
        answer(&[406, 400]),
        "Accept without application/sdp: 406 (or 400)",
    ),
    case(
        "rfc4475/valid/inv2543.dat",
        ANY,
        "RFC 2543 INVITE: accept, or reject cleanly",
    ),
    // RFC 5118 §4.1, §4.3-4.10.
    case(
        "rfc5118/wire/valid/ipv6-good.sip",
        NOT_REGISTRAR,
        "REGISTER with IPv6 references: must parse; not a registrar, 4xx-6xx",
    ),
    case(
        "rfc5118/wire/valid/port-ambiguous.sip",
        NOT_REGISTRAR,
        "REGISTER sip:[2001:db8::10:5070]: must parse; not a registrar, 4xx-6xx",
    ),
    case(
        "rfc5118/wire/valid/port-unambiguous.sip",
        NOT_REGISTRAR,
        "REGISTER sip:[2001:db8::10]:5070: must parse; not a registrar, 4xx-6xx",
    ),
    case(
        "rfc5118/wire/valid/via-received-param-with-delim.sip",
        PARSED,
        "received=[IPv6] in Via: must parse",
    ),
    case(
        "rfc5118/wire/valid/via-received-param-no-delim.sip",
        PARSED,
        "received=IPv6 in Via: must parse",
    ),
    case(
        "rfc5118/wire/valid/ipv6-in-sdp.sip",
        PARSED,
        "IPv6 addresses in SDP: must parse",
    ),
    case(
        "rfc5118/wire/valid/mult-ip-in-header.sip",
        PARSED,
        "mixed IPv4/IPv6 Vias: must parse",
    ),
    case(
        "rfc5118/wire/valid/mult-ip-in-sdp.sip",
        PARSED,
        "IPv4 and IPv6 c= lines: must parse",
    ),
    case(
        "rfc5118/wire/valid/ipv4-mapped-ipv6.sip",
        PARSED,
        "IPv4-mapped IPv6 addresses: must parse",
    ),
    case(
        "rfc5118/wire/valid/ipv6-correct-abnf-2-colons.sip",
        PARSED,
        "[2001:db8::192.0.2.1]: must parse",
    ),
    case(
        "rfc5118/wire/valid/ipv6-bug-abnf-3-colons.sip",
        PARSED,
        "[2001:db8:::192.0.2.1]: must be tolerated",
    ),
];

// ---------------------------------------------------------------------------
// A small SIP reader, independent of slotgate's parser

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

struct Message {
    start: String,
    /// (canonical lower-case name, unfolded value), in order.
    headers: Vec<(String, String)>,
    problems: Vec<String>,
}

fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let long = match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "l" => "content-length",
        "m" => "contact",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        _ => return lower,
    };
    long.to_string()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a message into start line and headers and checks its framing.
/// `stream`: it came over TCP, where Content-Length is mandatory.
fn parse_message(bytes: &[u8], stream: bool) -> Message {
    let mut problems = Vec::new();
    let (head, body) = match find(bytes, b"\r\n\r\n") {
        Some(i) => (&bytes[..i], &bytes[i + 4..]),
        None => {
            problems.push("no empty line ends the header section".to_string());
            (bytes, &[][..])
        }
    };
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.to_string(),
        Err(_) => {
            problems.push("header section is not UTF-8".to_string());
            String::from_utf8_lossy(head).into_owned()
        }
    };
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(last) => {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                None => problems.push("continuation line before any header".to_string()),
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => headers.push((canonical(name), value.trim().to_string())),
            None => problems.push(format!("header line without a colon: {line:?}")),
        }
    }
    match header(&headers, "content-length") {
        Some(value) => match value.parse::<usize>() {
            Ok(n) if n == body.len() => {}
            Ok(n) => problems.push(format!("Content-Length {n} but {} body octets", body.len())),
            Err(_) => problems.push(format!("Content-Length {value:?} is not a number")),
        },
        None if stream => problems.push("no Content-Length over TCP".to_string()),
        None => {}
    }
    Message {
        start,
        headers,
        problems,
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn headers_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The status code of a Status-Line `SIP/2.0 SP 3DIGIT SP Reason-Phrase`.
fn status_of(start: &str) -> Result<u16, String> {
    let rest = start
        .strip_prefix("SIP/2.0 ")
        .ok_or_else(|| format!("not a SIP/2.0 status line: {start:?}"))?;
    let (code, _reason) = rest
        .split_once(' ')
        .ok_or_else(|| format!("no SP after the status code: {start:?}"))?;
    let valid = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    match code.parse::<u16>() {
        Ok(n) if valid && (100..=699).contains(&n) => Ok(n),
        _ => Err(format!("bad status code in {start:?}")),
    }
}

fn has_tag(value: &str) -> bool {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact.contains(";tag=")
}

/// Takes one complete message off the front of a stream buffer.
fn take_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    buf.drain(..blank);
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (canonical(name) == "content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    Some(buf.drain(..end + len).collect())
}

/// What identifies a server transaction besides the method (RFC 3261
/// §17.2.3): the top Via's sent-by and branch.
#[derive(PartialEq, Eq)]
struct ViaKey {
    sent_by: String,
    branch: Option<String>,
}

fn via_key(via: &str) -> ViaKey {
    let first = via.split(',').next().unwrap_or("");
    let mut parts = first.split(';');
    let sent_by = parts
        .next()
        .unwrap_or("")
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_ascii_lowercase();
    let branch = parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim().to_string())
    });
    ViaKey { sent_by, branch }
}

fn cseq_method(headers: &[(String, String)]) -> Option<&str> {
    header(headers, "cseq")?.split_whitespace().nth(1)
}

/// What the test needs to know about one corpus message.
struct Request {
    bytes: Vec<u8>,
    /// None when the message is a response.
    method: Option<String>,
    uri: String,
    call_id: Option<String>,
    cseq: Option<(String, String)>,
    via: Option<ViaKey>,
}

fn describe_request(bytes: Vec<u8>) -> Request {
    let msg = parse_message(&bytes, false);
    let mut parts = msg.start.split_whitespace();
    let first = parts.next().unwrap_or("");
    let method = (!first.starts_with("SIP/")).then(|| first.to_string());
    let uri = parts
        .next()
        .unwrap_or("sip:invalid")
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let call_id = header(&msg.headers, "call-id").map(str::to_string);
    let cseq = header(&msg.headers, "cseq").and_then(|v| {
        let mut it = v.split_whitespace();
        Some((it.next()?.to_string(), it.next()?.to_string()))
    });
    let via = header(&msg.headers, "via").map(via_key);
    Request {
        bytes,
        method,
        uri,
        call_id,
        cseq,
        via,
    }
}

/// An ACK for a final response to an INVITE, built from the response.
fn build_ack(msg: &Message, uri: &str) -> Option<Vec<u8>> {
    let h = &msg.headers;
    let via = header(h, "via")?.split(',').next()?.trim();
    let number = header(h, "cseq")?.split_whitespace().next()?;
    Some(
        format!(
            "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {number} ACK\r\nContent-Length: 0\r\n\r\n",
            header(h, "from")?,
            header(h, "to")?,
            header(h, "call-id")?,
        )
        .into_bytes(),
    )
}

fn is_final_to_invite(msg: &Message, code: Option<u16>) -> bool {
    code.is_some_and(|c| c >= 200) && cseq_method(&msg.headers) == Some("INVITE")
}

// ---------------------------------------------------------------------------
// The PBX side: the test's own SIP ports

struct Inbound {
    source: String,
    bytes: Vec<u8>,
    stream: bool,
}

struct Peer {
    udp: UdpSocket,
    inbox: Receiver<Inbound>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    listening: Vec<String>,
}

impl Peer {
    fn bind() -> Peer {
        let deadline = Instant::now() + Duration::from_secs(5);
        let udp = loop {
            match UdpSocket::bind(("127.0.0.1", PEER_PORT)) {
                Ok(sock) => break sock,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    panic!("cannot bind UDP 127.0.0.1:{PEER_PORT}, which the corpus Vias name: {e}")
                }
            }
        };
        let (tx, inbox) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut listening = vec![format!("udp:{PEER_PORT}")];
        let reader = udp.try_clone().expect("clone UDP socket");
        threads.push(spawn_udp_reader(
            reader,
            format!("udp:{PEER_PORT}"),
            tx.clone(),
            stop.clone(),
        ));
        for port in SIDE_PORTS {
            if let Ok(sock) = UdpSocket::bind(("127.0.0.1", port)) {
                threads.push(spawn_udp_reader(
                    sock,
                    format!("udp:{port}"),
                    tx.clone(),
                    stop.clone(),
                ));
                listening.push(format!("udp:{port}"));
            }
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", PEER_PORT)) {
            threads.push(spawn_tcp_listener(listener, tx, stop.clone()));
            listening.push(format!("tcp:{PEER_PORT}"));
        }
        Peer {
            udp,
            inbox,
            stop,
            threads,
            listening,
        }
    }

    fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn spawn_udp_reader(
    sock: UdpSocket,
    source: String,
    tx: Sender<Inbound>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let inbound = Inbound {
                    source: source.clone(),
                    bytes: buf[..n].to_vec(),
                    stream: false,
                };
                if tx.send(inbound).is_err() {
                    return;
                }
            }
        }
    })
}

/// Accepts connections slotgate opens back to 127.0.0.1:5060 (a Via naming
/// TCP, or a response after the test closed its own connection).
fn spawn_tcp_listener(
    listener: TcpListener,
    tx: Sender<Inbound>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let _ = listener.set_nonblocking(true);
        let mut children = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let tx = tx.clone();
                    let stop = stop.clone();
                    children.push(thread::spawn(move || read_back_stream(stream, tx, stop)));
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
        for child in children {
            let _ = child.join();
        }
    })
}

fn read_back_stream(mut stream: TcpStream, tx: Sender<Inbound>, stop: Arc<AtomicBool>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some(bytes) = take_message(&mut buf) {
                    let inbound = Inbound {
                        source: format!("tcp:{PEER_PORT}"),
                        bytes,
                        stream: true,
                    };
                    if tx.send(inbound).is_err() {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------
// The trunk: records what slotgate sends it, answers INVITE with 486

#[derive(Clone)]
struct TrunkRequest {
    method: String,
    call_id: String,
    at: Instant,
    problems: Vec<String>,
}

struct Trunk {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<TrunkRequest>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Trunk {
    fn start() -> Trunk {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind trunk socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("trunk read timeout");
        let addr = sock.local_addr().expect("trunk address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let log = log.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut seen = HashSet::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, src)) = sock.recv_from(&mut buf) {
                        trunk_answer(&sock, &buf[..n], src, &log, &mut seen);
                    }
                }
            })
        };
        Trunk {
            addr,
            log,
            stop,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn since(&self, mark: usize) -> Vec<TrunkRequest> {
        self.log.lock().unwrap()[mark..].to_vec()
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn trunk_answer(
    sock: &UdpSocket,
    bytes: &[u8],
    src: SocketAddr,
    log: &Mutex<Vec<TrunkRequest>>,
    seen: &mut HashSet<String>,
) {
    let msg = parse_message(bytes, false);
    let method = msg.start.split(' ').next().unwrap_or("").to_string();
    if method.starts_with("SIP/") || method == "ACK" {
        return;
    }
    let h = &msg.headers;
    let call_id = header(h, "call-id").unwrap_or("").to_string();
    let cseq = header(h, "cseq").unwrap_or("").to_string();
    let branch = header(h, "via").unwrap_or("").to_string();
    let key = format!("{method}|{call_id}|{cseq}|{branch}");
    if seen.insert(key.clone()) {
        let problems = if method == "INVITE" {
            invite_problems(&msg)
        } else {
            msg.problems.clone()
        };
        log.lock().unwrap().push(TrunkRequest {
            method: method.clone(),
            call_id: call_id.clone(),
            at: Instant::now(),
            problems,
        });
    }
    let (code, reason) = if method == "INVITE" {
        (486, "Busy Here")
    } else {
        (200, "OK")
    };
    let mut resp = format!("SIP/2.0 {code} {reason}\r\n");
    for via in headers_all(h, "via") {
        resp.push_str(&format!("Via: {via}\r\n"));
    }
    let to = header(h, "to").unwrap_or("");
    let tag = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |acc, b| {
        (acc ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let to = if has_tag(to) {
        to.to_string()
    } else {
        format!("{to};tag=trunk{tag:x}")
    };
    resp.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
        header(h, "from").unwrap_or("")
    ));
    let _ = sock.send_to(resp.as_bytes(), src);
}

/// What makes an INVITE arriving at the trunk malformed.
fn invite_problems(msg: &Message) -> Vec<String> {
    let mut problems = msg.problems.clone();
    let h = &msg.headers;
    let parts: Vec<&str> = msg.start.split(' ').collect();
    if parts.len() != 3 || parts[0] != "INVITE" || parts[2] != "SIP/2.0" {
        problems.push(format!(
            "request line {:?} is not `INVITE <uri> SIP/2.0` with single spaces",
            msg.start
        ));
    } else {
        let uri = parts[1];
        if !["sip:", "sips:", "tel:"].iter().any(|s| uri.starts_with(s)) {
            problems.push(format!("Request-URI {uri:?} is not sip/sips/tel"));
        }
        if uri.contains(['<', '>', '?']) {
            problems.push(format!(
                "Request-URI {uri:?} carries brackets or escaped headers"
            ));
        }
    }
    for name in [
        "via",
        "max-forwards",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
    ] {
        if header(h, name).is_none() {
            problems.push(format!("no {name} header"));
        }
    }
    if let Some(via) = header(h, "via") {
        if !via.to_ascii_lowercase().contains("branch=z9hg4bk") {
            problems.push(format!("top Via {via:?} has no RFC 3261 branch"));
        }
    }
    if let Some(from) = header(h, "from") {
        if !has_tag(from) {
            problems.push(format!("From {from:?} has no tag"));
        }
    }
    if let Some(cseq) = header(h, "cseq") {
        let mut it = cseq.split_whitespace();
        let number_ok = it
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 1 << 31);
        if !number_ok || it.next() != Some("INVITE") || it.next().is_some() {
            problems.push(format!("CSeq {cseq:?} is not `<number below 2^31> INVITE`"));
        }
    }
    if let Some(mf) = header(h, "max-forwards") {
        if mf.parse::<u8>().is_err() {
            problems.push(format!("Max-Forwards {mf:?} is not 0-255"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// One message out, its answers in

struct Answer {
    source: String,
    code: Option<u16>,
    msg: Message,
    /// The answer belongs to an earlier message of the same transaction
    /// (same branch, sent-by and method): a legitimate retransmission.
    replay_of: Option<String>,
}

impl Answer {
    fn label(&self, primary: &str) -> String {
        let mut label = self
            .code
            .map_or_else(|| "not-a-response".to_string(), |c| c.to_string());
        if let Some(owner) = &self.replay_of {
            label.push_str(&format!("(replay of {owner})"));
        }
        if self.source != primary {
            label.push_str(&format!("@{}", self.source));
        }
        label
    }
}

#[derive(Default)]
struct Exchange {
    answers: Vec<Answer>,
    noise: Vec<Answer>,
    strays: Vec<String>,
    /// Answers to another message taken for this one's transaction.
    misrouted: Vec<String>,
    closed: bool,
    leftover: usize,
    error: Option<String>,
    /// When the first final answer came, after the message was sent.
    final_after: Option<Duration>,
}

/// How to file an arriving message.
struct Attribution<'a> {
    file: &'a str,
    call_id: Option<&'a str>,
    noise: Option<&'a str>,
    /// Call-IDs of the corpus messages, with the files using them: an answer
    /// carrying another message's Call-ID is late, a replay, or misrouted.
    others: &'a HashMap<String, String>,
    method: Option<&'a str>,
    via: Option<&'a ViaKey>,
    uri: &'a str,
    /// Between messages: everything is late.
    draining: bool,
}

enum Filed {
    Answer(Option<u16>),
    Noise(Option<u16>),
    Stray,
}

/// Files one arriving message into `ex`; returns where it went and, for a
/// final response to an INVITE, the ACK to send.
fn file_inbound(inb: Inbound, at: &Attribution, ex: &mut Exchange) -> (Filed, Option<Vec<u8>>) {
    let mut msg = parse_message(&inb.bytes, inb.stream);
    let code = match status_of(&msg.start) {
        Ok(code) => Some(code),
        Err(e) => {
            msg.problems.push(e);
            None
        }
    };
    let ack = if is_final_to_invite(&msg, code) {
        build_ack(&msg, at.uri)
    } else {
        None
    };
    let cid = header(&msg.headers, "call-id").map(str::to_string);
    let owner = cid
        .as_deref()
        .filter(|c| Some(*c) != at.call_id)
        .and_then(|c| at.others.get(c))
        .cloned();
    // Same branch and method as the message in flight: the same transaction
    // if the sent-by matches too, a wrong match otherwise.
    let resp_via = header(&msg.headers, "via").map(via_key);
    let same_branch = match (&resp_via, at.via) {
        (Some(got), Some(sent)) => {
            got.branch.is_some()
                && got.branch == sent.branch
                && cseq_method(&msg.headers) == at.method
        }
        _ => false,
    };
    let same_sent_by =
        same_branch && resp_via.as_ref().map(|v| &v.sent_by) == at.via.map(|v| &v.sent_by);
    let mut answer = Answer {
        source: inb.source,
        code,
        msg,
        replay_of: None,
    };
    let is_noise = at.noise.is_some() && cid.as_deref() == at.noise;
    if is_noise && !at.draining {
        ex.noise.push(answer);
        return (Filed::Noise(code), ack);
    }
    if let (Some(owner), false) = (&owner, at.draining) {
        if same_sent_by {
            answer.replay_of = Some(owner.clone());
            ex.answers.push(answer);
            return (Filed::Answer(code), ack);
        }
        if same_branch {
            ex.misrouted
                .push(format!("{} of {owner}", answer.msg.start));
        }
    }
    if at.draining || owner.is_some() {
        ex.strays.push(format!(
            "{} {} from {}: {} (Call-ID {})",
            if at.draining { "before" } else { "during" },
            at.file,
            answer.source,
            answer.msg.start,
            owner.as_deref().or(cid.as_deref()).unwrap_or("none"),
        ));
        return (Filed::Stray, ack);
    }
    ex.answers.push(answer);
    (Filed::Answer(code), ack)
}

fn udp_exchange(peer: &Peer, target: SocketAddr, req: &Request, at: &Attribution) -> Exchange {
    let mut ex = Exchange::default();
    if let Err(e) = peer.udp.send_to(&req.bytes, target) {
        ex.error = Some(format!("send: {e}"));
        return ex;
    }
    let start = Instant::now();
    let mut deadline = start + UDP_WINDOW;
    let mut got_final = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let inb = match peer.inbox.recv_timeout(deadline - now) {
            Ok(inb) => inb,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        };
        let udp_source = inb.source.starts_with("udp");
        let (filed, ack) = file_inbound(inb, at, &mut ex);
        if let (Some(ack), true) = (ack, udp_source) {
            let _ = peer.udp.send_to(&ack, target);
        }
        if let Filed::Answer(Some(code)) = filed {
            if code >= 200 && !got_final {
                got_final = true;
                ex.final_after = Some(start.elapsed());
                deadline = Instant::now() + FINAL_GRACE;
            } else if code < 200 && !got_final {
                deadline = deadline.max(start + PROVISIONAL_WINDOW);
            }
        }
    }
    ex
}

fn tcp_exchange(
    peer: &Peer,
    target: SocketAddr,
    req: &Request,
    at: &Attribution,
    rule: Rule,
) -> Exchange {
    let mut ex = Exchange::default();
    let start = Instant::now();
    let deadline = start + TCP_WINDOW;
    let finals_wanted = match req.method {
        Some(_) => 1 + usize::from(at.noise.is_some()),
        None => 0,
    };
    let mut stream = match TcpStream::connect_timeout(&target, TCP_WINDOW) {
        Ok(stream) => stream,
        Err(e) => {
            ex.error = Some(format!("connect: {e}"));
            return ex;
        }
    };
    let _ = stream.set_nodelay(true);
    if stream.write_all(&req.bytes).is_err() {
        ex.closed = true;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut finals = 0;
    while !ex.closed && Instant::now() < deadline {
        let wait =
            (deadline - Instant::now()).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let _ = stream.set_read_timeout(Some(wait));
        match stream.read(&mut chunk) {
            Ok(0) => ex.closed = true,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some(bytes) = take_message(&mut buf) {
                    let inb = Inbound {
                        source: "tcp".to_string(),
                        bytes,
                        stream: true,
                    };
                    let (filed, ack) = file_inbound(inb, at, &mut ex);
                    if let Some(ack) = ack {
                        let _ = stream.write_all(&ack);
                    }
                    if let Filed::Answer(Some(c)) | Filed::Noise(Some(c)) = filed {
                        if c >= 200 {
                            finals += 1;
                            ex.final_after.get_or_insert_with(|| start.elapsed());
                        }
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => ex.closed = true,
        }
        while let Ok(inb) = peer.inbox.try_recv() {
            let udp_source = inb.source.starts_with("udp");
            let (_, ack) = file_inbound(inb, at, &mut ex);
            if let (Some(ack), true) = (ack, udp_source) {
                let _ = peer.udp.send_to(&ack, target);
            }
        }
        if finals_wanted > 0 && finals >= finals_wanted && !rule.must_close {
            break;
        }
    }
    ex.leftover = buf.len();
    ex
}

/// Whatever arrived between messages: late answers, recorded as such.
fn drain(peer: &Peer, target: SocketAddr, at: &Attribution) -> Vec<String> {
    let mut ex = Exchange::default();
    while let Ok(inb) = peer.inbox.try_recv() {
        let udp_source = inb.source.starts_with("udp");
        let (_, ack) = file_inbound(inb, at, &mut ex);
        if let (Some(ack), true) = (ack, udp_source) {
            let _ = peer.udp.send_to(&ack, target);
        }
    }
    ex.strays
}

// ---------------------------------------------------------------------------
// Judging one exchange

fn answer_text(ex: &Exchange, transport: Transport) -> String {
    let primary = match transport {
        Transport::Udp => format!("udp:{PEER_PORT}"),
        Transport::Tcp => "tcp".to_string(),
    };
    let mut parts: Vec<String> = ex.answers.iter().map(|a| a.label(&primary)).collect();
    parts.extend(
        ex.noise
            .iter()
            .map(|a| format!("{}(2nd request)", a.label(&primary))),
    );
    if let Some(after) = ex.final_after.filter(|d| *d >= SLOW_ANSWER) {
        parts.push(format!("(after {}ms)", after.as_millis()));
    }
    if ex.closed {
        parts.push("closed".to_string());
    }
    if ex.leftover > 0 {
        parts.push(format!("+{} partial octets", ex.leftover));
    }
    if let Some(e) = &ex.error {
        parts.push(format!("error: {e}"));
    }
    if parts.is_empty() {
        "silence".to_string()
    } else {
        parts.join(" ")
    }
}

/// Checks a response to a valid request echoes it as RFC 3261 §8.2.6 says.
fn echo_problems(answer: &Answer, req: &Request) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(code) = answer.code else {
        return problems;
    };
    let h = &answer.msg.headers;
    for name in ["via", "from", "to", "call-id", "cseq"] {
        if header(h, name).is_none() {
            problems.push(format!("{code} has no {name} header"));
        }
    }
    if let (Some(want), Some(got)) = (&req.call_id, header(h, "call-id")) {
        if got != want {
            problems.push(format!("{code} Call-ID {got:?} does not echo {want:?}"));
        }
    }
    if let (Some((number, method)), Some(got)) = (&req.cseq, header(h, "cseq")) {
        let mut it = got.split_whitespace();
        let same_number = match (it.next(), number.parse::<u64>()) {
            (Some(n), Ok(want)) => n.parse::<u64>() == Ok(want),
            (Some(n), Err(_)) => n == number,
            (None, _) => false,
        };
        if !same_number || it.next() != Some(method.as_str()) {
            problems.push(format!(
                "{code} CSeq {got:?} does not echo {:?}",
                format!("{number} {method}")
            ));
        }
    }
    if code > 100 && !header(h, "to").is_some_and(has_tag) {
        problems.push(format!("{code} has no To tag"));
    }
    problems
}

fn check_headers(case: &Case, answer: &Answer, code: u16) -> Vec<String> {
    let h = &answer.msg.headers;
    let mut problems = Vec::new();
    match case.check {
        Check::Unsupported(tags) if code == 420 => {
            let listed: Vec<String> = headers_all(h, "unsupported")
                .iter()
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_string())
                .collect();
            for tag in tags {
                if !listed.iter().any(|l| l == tag) {
                    problems.push(format!("420 Unsupported {listed:?} does not list {tag:?}"));
                }
            }
        }
        Check::Allow
            if (code == 405 || code == 501) && header(h, "allow").is_none_or(str::is_empty) =>
        {
            problems.push(format!("{code} has no Allow header"));
        }
        _ => {}
    }
    problems
}

fn evaluate(case: &Case, transport: Transport, req: &Request, ex: &Exchange) -> Vec<String> {
    let rule = case.rule(transport);
    let tcp = transport == Transport::Tcp;
    let invalid = case.invalid();
    let mut problems = Vec::new();
    if let Some(e) = &ex.error {
        problems.push(format!("could not deliver the message ({e})"));
    }
    for a in ex.answers.iter().chain(&ex.noise) {
        for p in &a.msg.problems {
            problems.push(format!("malformed answer: {p}"));
        }
        if tcp && a.source.starts_with("udp") {
            problems.push(format!(
                "answered over UDP ({}) to a request that came over TCP",
                a.source
            ));
        }
    }
    if !invalid && req.method.is_some() {
        for a in ex.answers.iter().filter(|a| a.replay_of.is_none()) {
            problems.extend(echo_problems(a, req));
        }
    }
    for m in &ex.misrouted {
        problems.push(format!(
            "answered with {m}: taken for that message's transaction though the top Via \
             sent-by differs (RFC 3261 §17.2.3 matches branch, sent-by and method)"
        ));
    }
    if ex.leftover > 0 {
        problems.push(format!(
            "{} octets of an incomplete message left on the connection",
            ex.leftover
        ));
    }
    if !tcp && !ex.noise.is_empty() {
        problems.push(
            "answered the octets after Content-Length (a second request in one datagram)"
                .to_string(),
        );
    }
    let codes: Vec<u16> = ex.answers.iter().filter_map(|a| a.code).collect();
    let finals: Vec<u16> = codes.iter().copied().filter(|c| *c >= 200).collect();
    let provisional = codes.iter().any(|c| *c < 200);
    let mut distinct = finals.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > 1 {
        problems.push(format!("conflicting final answers {distinct:?}"));
    }
    if invalid {
        if let Some(code) = codes.iter().find(|c| **c < 300) {
            problems.push(format!("{code} to a malformed message: it was processed"));
        }
    }
    if ex.closed && finals.is_empty() && !rule.close {
        problems.push("connection closed without an answer".to_string());
    }
    if tcp && rule.must_close && !ex.closed {
        problems.push("connection left open though its framing is lost".to_string());
    }
    match rule.codes {
        Codes::Nothing => {
            if !codes.is_empty() {
                problems.push("must be discarded, but was answered".to_string());
            }
        }
        _ => match finals.first() {
            Some(&code) => {
                if !rule.codes.allows(code) {
                    problems.push(format!("{code} is not an allowed answer"));
                }
                if let Some(a) = ex.answers.iter().find(|a| a.code == Some(code)) {
                    problems.extend(check_headers(case, a, code));
                }
            }
            None if ex.closed => {}
            None if provisional => {
                if rule.codes.requires_final() {
                    problems.push("only provisional answers, no final one".to_string());
                }
            }
            None => {
                if !rule.silence {
                    problems.push("no answer".to_string());
                }
            }
        },
    }
    problems
}

// ---------------------------------------------------------------------------
// The passes

struct Loaded {
    case: &'static Case,
    req: Request,
}

struct Row {
    file: &'static str,
    transport: Transport,
    answer: String,
    trunk: String,
    ok: bool,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    failures: Vec<String>,
    strays: Vec<String>,
}

fn exited(sg: &mut Slotgate) -> Option<std::process::ExitStatus> {
    sg.child.try_wait().ok().flatten()
}

/// Why slotgate stopped answering.
struct Death {
    what: String,
    /// It shut down cleanly on SIGINT/SIGTERM, which the test never sends
    /// while replaying: something outside the test stopped it.
    external: bool,
}

/// The process is alive and answers OPTIONS with 200.
fn liveness(sg: &mut Slotgate) -> Result<(), Death> {
    let mut last = None;
    if exited(sg).is_none() {
        for _ in 0..2 {
            last = options_ping(sg.addr(), PING_WAIT);
            if last == Some(200) {
                return Ok(());
            }
        }
    }
    if let Some(status) = exited(sg) {
        let external = status.success() && sg.log().contains("shutting down");
        let what = if external {
            format!("slotgate was stopped by a signal from outside the test ({status})")
        } else {
            format!("slotgate exited ({status})")
        };
        return Err(Death { what, external });
    }
    Err(Death {
        what: match last {
            Some(code) => format!("slotgate answered the OPTIONS check with {code}, not 200"),
            None => "slotgate no longer answers OPTIONS".to_string(),
        },
        external: false,
    })
}

fn log_tail(sg: &Slotgate, lines: usize) -> String {
    let log = sg.log();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

fn start_slotgate(trunk: &Trunk) -> Result<Slotgate, String> {
    let extra = format!(
        "[trunk]\naddress = \"{}\"\noptions_interval_secs = 0\n",
        trunk.addr
    );
    catch_unwind(AssertUnwindSafe(|| {
        Slotgate::start(common::free_port(), &extra)
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "slotgate did not start".to_string())
    })
}

/// What one message produced.
struct Replayed {
    /// Status line (and Warning) of each final answer.
    details: Vec<String>,
    row: Row,
    problems: Vec<String>,
    strays: Vec<String>,
    death: Option<Death>,
}

/// The context shared by every message of a pass.
struct Pass<'a> {
    transport: Transport,
    peer: &'a Peer,
    trunk: &'a Trunk,
    others: &'a HashMap<String, String>,
}

fn replay_one(pass: &Pass, l: &Loaded, sg: &mut Slotgate) -> Replayed {
    let (case, req, transport) = (l.case, &l.req, pass.transport);
    let at = Attribution {
        file: case.path,
        call_id: req.call_id.as_deref(),
        noise: case.noise,
        others: pass.others,
        method: req.method.as_deref(),
        via: req.via.as_ref(),
        uri: &req.uri,
        draining: false,
    };
    let draining = Attribution {
        draining: true,
        ..at
    };
    let mut strays = drain(pass.peer, sg.addr(), &draining);
    let mark = pass.trunk.count();
    let sent = Instant::now();
    let rule = case.rule(transport);
    let mut ex = match transport {
        Transport::Udp => udp_exchange(pass.peer, sg.addr(), req, &at),
        Transport::Tcp => tcp_exchange(pass.peer, sg.addr(), req, &at, rule),
    };
    let alive = liveness(sg);
    strays.append(&mut ex.strays);
    let mut problems = evaluate(case, transport, req, &ex);

    let reached = pass.trunk.since(mark);
    let invite_expected = !case.invalid()
        && (req.method.as_deref() == Some("INVITE")
            || (transport == Transport::Tcp && case.noise.is_some()));
    for r in &reached {
        for p in &r.problems {
            problems.push(format!("the trunk received a malformed {}: {p}", r.method));
        }
        if r.method == "OPTIONS" {
            continue;
        }
        if case.invalid() {
            problems.push(format!(
                "a malformed message reached the trunk as {} (Call-ID {})",
                r.method, r.call_id
            ));
        } else if r.method == "INVITE" && !invite_expected {
            problems.push(format!(
                "the trunk received an INVITE (Call-ID {}) for a message that is no INVITE",
                r.call_id
            ));
        }
    }
    let trunk_text = if reached.is_empty() {
        "-".to_string()
    } else {
        reached
            .iter()
            .map(|r| {
                format!(
                    "{} +{}ms",
                    r.method,
                    r.at.saturating_duration_since(sent).as_millis()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let details: Vec<String> = ex
        .answers
        .iter()
        .filter(|a| a.code.is_some_and(|c| c >= 200) || a.code.is_none())
        .map(|a| match header(&a.msg.headers, "warning") {
            Some(w) => format!("{:?} Warning: {w:?}", a.msg.start),
            None => format!("{:?}", a.msg.start),
        })
        .collect();
    let death = alive.err();
    if let Some(d) = &death {
        problems.push(format!(
            "{} after this message; log tail:\n    {}",
            d.what,
            log_tail(sg, 15)
        ));
    }
    Replayed {
        details,
        row: Row {
            file: case.path,
            transport,
            answer: answer_text(&ex, transport),
            trunk: trunk_text,
            ok: problems.is_empty(),
        },
        problems,
        strays,
        death,
    }
}

fn run_pass(transport: Transport, loaded: &[Loaded], peer: &Peer, report: &mut Report) {
    let trunk = Trunk::start();
    let mut sg = match start_slotgate(&trunk) {
        Ok(sg) => sg,
        Err(e) => {
            report.failures.push(format!(
                "[{}] slotgate did not start: {e}",
                transport.label()
            ));
            return;
        }
    };
    let mut users: HashMap<String, Vec<&str>> = HashMap::new();
    for l in loaded {
        let name = l.case.path.rsplit('/').next().unwrap_or(l.case.path);
        for cid in l.req.call_id.iter().map(String::as_str).chain(l.case.noise) {
            users.entry(cid.to_string()).or_default().push(name);
        }
    }
    let others: HashMap<String, String> = users
        .into_iter()
        .map(|(cid, names)| {
            let text = match names.as_slice() {
                [one] => one.to_string(),
                [first, rest @ ..] => {
                    format!("{first} (a Call-ID {} other files share)", rest.len())
                }
                [] => String::new(),
            };
            (cid, text)
        })
        .collect();
    let pass = Pass {
        transport,
        peer,
        trunk: &trunk,
        others: &others,
    };
    const ATTEMPTS: usize = 3;
    for l in loaded {
        for attempt in 1..=ATTEMPTS {
            let r = replay_one(&pass, l, &mut sg);
            report.strays.extend(r.strays);
            let external = r.death.as_ref().is_some_and(|d| d.external);
            let retry = external && attempt < ATTEMPTS;
            if retry {
                report.strays.push(format!(
                    "note: slotgate was stopped from outside the test during {} [{}]; \
                     replayed on a fresh instance",
                    l.case.path,
                    transport.label()
                ));
            } else {
                if !r.problems.is_empty() {
                    let details = if r.details.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", r.details.join(", "))
                    };
                    report.failures.push(format!(
                        "{} [{}]: got {}{details}; allowed {} — {}",
                        l.case.path,
                        transport.label(),
                        r.row.answer,
                        l.case.rule(transport).describe(transport),
                        r.problems.join("; ")
                    ));
                }
                report.rows.push(r.row);
            }
            if r.death.is_some() {
                sg = match start_slotgate(&trunk) {
                    Ok(new) => new,
                    Err(e) => {
                        report.failures.push(format!(
                            "[{}] slotgate could not be restarted after {}: {e}; \
                             rest of the pass skipped",
                            transport.label(),
                            l.case.path
                        ));
                        return;
                    }
                };
            }
            if !retry {
                break;
            }
        }
    }
    thread::sleep(FINAL_GRACE);
    let at = Attribution {
        file: "the end of the pass",
        call_id: None,
        noise: None,
        others: &others,
        method: None,
        via: None,
        uri: "sip:invalid",
        draining: true,
    };
    report.strays.extend(drain(peer, sg.addr(), &at));
}

/// Loads the table's files; fails if the corpus is missing or the table and
/// the corpus folders disagree.
fn load_corpus() -> Vec<Loaded> {
    let root = PathBuf::from(CORPUS);
    assert!(
        root.join("INDEX.md").is_file(),
        "SIP torture corpus not found at {} (INDEX.md missing)",
        root.display()
    );
    let mut on_disk = BTreeSet::new();
    for dir in CORPUS_DIRS {
        let entries = fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("corpus folder {dir} unreadable: {e}"));
        for entry in entries {
            let entry = entry.expect("corpus folder entry");
            if entry.path().is_file() {
                on_disk.insert(format!("{dir}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    let in_table: BTreeSet<String> = CASES.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(in_table.len(), CASES.len(), "a file appears twice in CASES");
    let untested: Vec<&String> = on_disk.difference(&in_table).collect();
    let absent: Vec<&String> = in_table.difference(&on_disk).collect();
    assert!(
        untested.is_empty() && absent.is_empty(),
        "corpus and expectation table disagree: files without an expectation {untested:?}, \
         expectations without a file {absent:?}"
    );
    assert_eq!(
        CASES.len(),
        61,
        "RFC 4475 has 49 referenced messages, RFC 5118 12"
    );
    CASES
        .iter()
        .map(|case| {
            let path: &Path = &root.join(case.path);
            let bytes =
                fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Loaded {
                case,
                req: describe_request(bytes),
            }
        })
        .collect()
}

fn print_report(report: &Report, peer_ports: &[String], elapsed: Duration) {
    println!(
        "\nSIP torture corpus: {} exchanges in {:.1}s (test listening on {})",
        report.rows.len(),
        elapsed.as_secs_f64(),
        peer_ports.join(", ")
    );
    println!(
        "{:<52} {:<4} {:<28} {:<16} verdict",
        "file", "via", "answer", "trunk"
    );
    for row in &report.rows {
        println!(
            "{:<52} {:<4} {:<28} {:<16} {}",
            row.file,
            row.transport.label(),
            row.answer,
            row.trunk,
            if row.ok { "ok" } else { "FAIL" }
        );
    }
    if !report.strays.is_empty() {
        println!("\nlate answers (not attributed to the message in flight):");
        for stray in &report.strays {
            println!("  {stray}");
        }
    }
    println!("\nexpectations:");
    for case in CASES {
        println!("  {:<52} {}", case.path, case.note);
    }
}

#[test]
fn torture_corpus_over_udp_and_tcp() {
    let loaded = load_corpus();
    let begun = Instant::now();
    let peer = Peer::bind();
    let mut report = Report::default();
    for transport in [Transport::Udp, Transport::Tcp] {
        run_pass(transport, &loaded, &peer, &mut report);
    }
    let listening = peer.listening.clone();
    peer.shutdown();
    print_report(&report, &listening, begun.elapsed());
    assert!(
        report.failures.is_empty(),
        "{} of {} exchanges deviate from the torture expectations:\n{}",
        report.failures.len(),
        report.rows.len(),
        report.failures.join("\n")
    );
}
