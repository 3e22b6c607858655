//! The SIP message model: a start line, an ordered header list and a body.
//!
//! Header values are kept as text, exactly as received (after unfolding), so a
//! B2BUA can copy what it does not understand without damaging it; the few
//! headers slotgate reasons about are read through typed accessors in
//! `headers.rs`. Names are normalised to one canonical spelling (compact forms
//! expanded) so lookups are a cheap comparison.

use bytes::Bytes;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Update,
    Info,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token: syntactically fine, not implemented.
    Other(String),
}

impl Method {
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// Header names slotgate reasons about; everything else is `Other` and is
/// carried verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Name {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    ContentLength,
    ContentType,
    RecordRoute,
    Route,
    Require,
    ProxyRequire,
    Supported,
    Accept,
    Allow,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Date,
    RetryAfter,
    Reason,
    Server,
    UserAgent,
    Unsupported,
    Other(String),
}

impl Name {
    /// Canonical name for a received header name (case-insensitive, compact
    /// forms expanded, RFC 3261 §7.3.3).
    pub fn parse(raw: &str) -> Name {
        let known = |s: &str| raw.eq_ignore_ascii_case(s);
        if raw.len() == 1 {
            return match raw.as_bytes()[0].to_ascii_lowercase() {
                b'v' => Name::Via,
                b'f' => Name::From,
                b't' => Name::To,
                b'i' => Name::CallId,
                b'm' => Name::Contact,
                b'l' => Name::ContentLength,
                b'c' => Name::ContentType,
                b'k' => Name::Supported,
                b'e' => Name::Other("Content-Encoding".into()),
                b's' => Name::Other("Subject".into()),
                b'o' => Name::Other("Event".into()),
                b'r' => Name::Other("Refer-To".into()),
                b'b' => Name::Other("Referred-By".into()),
                b'u' => Name::Other("Allow-Events".into()),
                _ => Name::Other(raw.to_string()),
            };
        }
        if known("Via") {
            Name::Via
        } else if known("From") {
            Name::From
        } else if known("To") {
            Name::To
        } else if known("Call-ID") {
            Name::CallId
        } else if known("CSeq") {
            Name::CSeq
        } else if known("Contact") {
            Name::Contact
        } else if known("Max-Forwards") {
            Name::MaxForwards
        } else if known("Content-Length") {
            Name::ContentLength
        } else if known("Content-Type") {
            Name::ContentType
        } else if known("Record-Route") {
            Name::RecordRoute
        } else if known("Route") {
            Name::Route
        } else if known("Require") {
            Name::Require
        } else if known("Proxy-Require") {
            Name::ProxyRequire
        } else if known("Supported") {
            Name::Supported
        } else if known("Accept") {
            Name::Accept
        } else if known("Allow") {
            Name::Allow
        } else if known("Authorization") {
            Name::Authorization
        } else if known("Proxy-Authorization") {
            Name::ProxyAuthorization
        } else if known("WWW-Authenticate") {
            Name::WwwAuthenticate
        } else if known("Proxy-Authenticate") {
            Name::ProxyAuthenticate
        } else if known("Date") {
            Name::Date
        } else if known("Retry-After") {
            Name::RetryAfter
        } else if known("Reason") {
            Name::Reason
        } else if known("Server") {
            Name::Server
        } else if known("User-Agent") {
            Name::UserAgent
        } else if known("Unsupported") {
            Name::Unsupported
        } else {
            Name::Other(raw.to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Name::Via => "Via",
            Name::From => "From",
            Name::To => "To",
            Name::CallId => "Call-ID",
            Name::CSeq => "CSeq",
            Name::Contact => "Contact",
            Name::MaxForwards => "Max-Forwards",
            Name::ContentLength => "Content-Length",
            Name::ContentType => "Content-Type",
            Name::RecordRoute => "Record-Route",
            Name::Route => "Route",
            Name::Require => "Require",
            Name::ProxyRequire => "Proxy-Require",
            Name::Supported => "Supported",
            Name::Accept => "Accept",
            Name::Allow => "Allow",
            Name::Authorization => "Authorization",
            Name::ProxyAuthorization => "Proxy-Authorization",
            Name::WwwAuthenticate => "WWW-Authenticate",
            Name::ProxyAuthenticate => "Proxy-Authenticate",
            Name::Date => "Date",
            Name::RetryAfter => "Retry-After",
            Name::Reason => "Reason",
            Name::Server => "Server",
            Name::UserAgent => "User-Agent",
            Name::Unsupported => "Unsupported",
            Name::Other(s) => s,
        }
    }

    /// Whether `other` names this header, for `Other` names compared without case.
    pub fn is(&self, other: &str) -> bool {
        self.as_str().eq_ignore_ascii_case(other)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Name,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Bytes,
}

impl Message {
    pub fn request(method: Method, uri: impl Into<String>) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    pub fn response(code: u16, reason: impl Into<String>) -> Message {
        Message {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason_phrase(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    pub fn request_uri(&self) -> &str {
        match &self.start {
            StartLine::Request { uri, .. } => uri,
            StartLine::Response { .. } => "",
        }
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &Name) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        self.get(&Name::CSeq).and_then(super::headers::parse_cseq)
    }

    /// The first value of a header known only by its text name.
    pub fn get_named(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.is(name))
            .map(|h| h.value.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    pub fn push(&mut self, name: Name, value: impl Into<String>) {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
    }

    pub fn remove(&mut self, name: &Name) {
        self.headers.retain(|h| &h.name != name);
    }

    /// Replaces every value of `name` by one value, keeping the position of the first.
    pub fn set(&mut self, name: Name, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.headers.iter().position(|h| h.name == name) {
            self.headers[pos].value = value;
            let mut seen = false;
            self.headers.retain(|h| {
                if h.name == name {
                    let keep = !seen;
                    seen = true;
                    keep
                } else {
                    true
                }
            });
        } else {
            self.push(name, value);
        }
    }

    /// Copies every value of `name` from `other`.
    pub fn copy_from(&mut self, other: &Message, name: &Name) {
        for v in other.all(name) {
            self.push(name.clone(), v);
        }
    }

    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) {
        self.remove(&Name::ContentType);
        if let Some(ct) = content_type {
            if !body.is_empty() {
                self.push(Name::ContentType, ct);
            }
        }
        self.body = body;
    }

    /// Wire form. Content-Length is always written from the body, never
    /// trusted from a header, so a relayed message cannot be mis-framed.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.headers.len() * 48);
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(out, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for h in &self.headers {
            if h.name == Name::ContentLength {
                continue;
            }
            out.push_str(h.name.as_str());
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        Bytes::from(bytes)
    }
}
