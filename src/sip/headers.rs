//! Typed readings of the headers slotgate acts on: Via, name-addr headers
//! (From, To, Contact, Route), CSeq, and SIP URIs.
//!
//! These are validating parsers: they answer "is this well-formed enough to
//! act on" as well as "what does it say", because the torture tests of RFC
//! 4475/5118 expect a clean `400` for what is broken and tolerance for what is
//! merely unusual (LWS around Via slashes, no space before `<`, IPv6
//! references with three colons).

/// One Via header value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub branch: Option<&'a str>,
    pub rport: bool,
    pub params: &'a str,
}

pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Splits a header value on commas that are outside quotes and `<>`.
pub fn split_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out
}

/// Validates a host (hostname, IPv4, or bracketed IPv6 reference) with an
/// optional port, returning (host, port).
pub fn parse_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let inner = &rest[..close];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        // RFC 5118 §4.10: "2001:db8:::192.0.2.1" is tolerated, so no strict
        // address parse; a run of four colons is nonsense.
        if inner.contains("::::") || !inner.contains(':') {
            return None;
        }
        let after = &rest[close + 1..];
        let host = &s[..close + 2];
        if after.is_empty() {
            return Some((host, None));
        }
        let port = after.strip_prefix(':')?.parse().ok()?;
        return Some((host, Some(port)));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (s, None),
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with('.')
        && !host.starts_with('-');
    ok.then_some((host, port))
}

/// Parses one Via value. `None` when malformed.
pub fn parse_via(value: &str) -> Option<Via<'_>> {
    // Protocol: "SIP / 2.0 / UDP" with optional LWS around the slashes.
    let mut rest = value.trim_start();
    let mut parts = [""; 3];
    for (i, part) in parts.iter_mut().enumerate() {
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        *part = &rest[..end];
        rest = rest[end..].trim_start();
        if i < 2 {
            rest = rest.strip_prefix('/')?.trim_start();
        }
    }
    if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(parts[2]) {
        return None;
    }
    let (sent_by, params) = match rest.find(';') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = parse_hostport(sent_by)?;
    let mut branch = None;
    let mut rport = false;
    if !params.is_empty() {
        for p in params[1..].split(';') {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            };
            if !is_token(k) {
                return None;
            }
            if let Some(v) = v {
                let v_ok = !v.is_empty()
                    && v.chars()
                        .all(|c| is_token_char(c) || c == ':' || c == '[' || c == ']' || c == '"');
                if !v_ok {
                    return None;
                }
            }
            if k.eq_ignore_ascii_case("branch") {
                branch = v;
            } else if k.eq_ignore_ascii_case("rport") {
                rport = true;
            }
        }
    }
    Some(Via {
        transport: parts[2],
        host,
        port,
        branch,
        rport,
        params,
    })
}

/// A name-addr or addr-spec header value (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept), possibly empty.
    pub display: &'a str,
    pub uri: &'a str,
    /// Header parameters after the address, starting with ';' (or empty).
    pub params: &'a str,
}

impl NameAddr<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        param(self.params, name)
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }
}

/// Reads `;name=value` from a parameter string.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Parses a name-addr / addr-spec. Rejects unterminated quotes, non-token
/// display names and addr-specs with embedded spaces.
pub fn parse_name_addr(value: &str) -> Option<NameAddr<'_>> {
    let v = value.trim();
    let bytes = v.as_bytes();
    let display_end;
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        let mut escaped = false;
        loop {
            let c = *bytes.get(i)?;
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                break;
            }
            i += 1;
        }
        display_end = i + 1;
        let rest = v[display_end..].trim_start();
        if !rest.starts_with('<') {
            return None;
        }
        let offset = v.len() - rest.len();
        return angle_part(v, &v[..display_end], offset);
    }
    if let Some(lt) = v.find('<') {
        let display = v[..lt].trim();
        if !display.split_whitespace().all(is_token) {
            return None;
        }
        return angle_part(v, display, lt);
    }
    // addr-spec: the URI runs to the first ';' (header params follow).
    let (uri, params) = match v.find(';') {
        Some(p) => (v[..p].trim_end(), &v[p..]),
        None => (v, ""),
    };
    if uri.is_empty() || uri.contains(char::is_whitespace) || uri.contains(['?', ',']) {
        return None;
    }
    Some(NameAddr {
        display: "",
        uri,
        params,
    })
}

fn angle_part<'a>(v: &'a str, display: &'a str, lt: usize) -> Option<NameAddr<'a>> {
    let gt = lt + v[lt..].find('>')?;
    let uri = &v[lt + 1..gt];
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return None;
    }
    let params = v[gt + 1..].trim();
    if !params.is_empty() && !params.starts_with(';') {
        return None;
    }
    Some(NameAddr {
        display,
        uri,
        params,
    })
}

/// CSeq: sequence number and method.
pub fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut it = value.split_whitespace();
    let num = it.next()?;
    let method = it.next()?;
    if it.next().is_some() || !num.chars().all(|c| c.is_ascii_digit()) || !is_token(method) {
        return None;
    }
    Some((num.parse::<u32>().ok()?, method))
}

/// Result of checking a Request-URI.
#[derive(Debug, PartialEq, Eq)]
pub enum UriCheck {
    Sip,
    Tel,
    /// Well-formed but not a scheme slotgate can route (416).
    UnsupportedScheme,
    Malformed,
}

/// Checks a Request-URI (RFC 3261 §19.1; escaped headers in a Request-URI
/// are refused, RFC 4475 §3.1.2.11).
pub fn check_request_uri(uri: &str) -> UriCheck {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return UriCheck::Malformed;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || uri.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
        return UriCheck::Malformed;
    }
    if scheme.eq_ignore_ascii_case("tel") {
        return if rest.is_empty() {
            UriCheck::Malformed
        } else {
            UriCheck::Tel
        };
    }
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return UriCheck::UnsupportedScheme;
    }
    // Escaped headers may follow the host part; a '?' in the user part is
    // just an odd (but legal) character.
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if host_part.contains('?') {
        return UriCheck::Malformed;
    }
    match sip_uri_parts(uri) {
        Some(_) => UriCheck::Sip,
        None => UriCheck::Malformed,
    }
}

/// The parts of a sip/sips URI: (user, host, port, params).
pub fn sip_uri_parts(uri: &str) -> Option<(Option<&str>, &str, Option<u16>, &str)> {
    let (_, rest) = uri.split_once(':')?;
    let (user, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let hostpart = hostpart.split('?').next().unwrap_or(hostpart);
    let (hostport, params) = if hostpart.starts_with('[') {
        let close = hostpart.find(']')?;
        match hostpart[close..].find(';') {
            Some(p) => (&hostpart[..close + p], &hostpart[close + p..]),
            None => (hostpart, ""),
        }
    } else {
        match hostpart.find(';') {
            Some(p) => (&hostpart[..p], &hostpart[p..]),
            None => (hostpart, ""),
        }
    };
    let (host, port) = parse_hostport(hostport)?;
    Some((user, host, port, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_tolerates_lws_and_reads_branch_and_rport() {
        let v = parse_via("SIP  /   2.0  /  UDP 192.0.2.2:5060;branch = z9hG4bK390skdjuw;rport")
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some("z9hG4bK390skdjuw"));
        assert!(v.rport);
        let v6 = parse_via(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3",
        )
        .unwrap();
        assert_eq!(v6.host, "[2001:db8::9:1]");
    }

    #[test]
    fn via_with_stray_separators_is_malformed() {
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;,;,,").is_none());
        assert!(parse_via("SIP/2.0/UDP host;branch=").is_none());
        assert!(parse_via("SIP/3.0/UDP host").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n =
            parse_name_addr("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>;tag=98asjd8")
                .unwrap();
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, "caller");
        let n = parse_name_addr("sip:user@example.com;tag=1").unwrap();
        assert_eq!(n.uri, "sip:user@example.com");
        assert_eq!(n.tag(), Some("1"));
        assert!(parse_name_addr("\"Mr. J. User <sip:j.user@example.com>").is_none());
        assert!(parse_name_addr("Bell, Alexander <sip:a.g.bell@bell-tel.com>").is_none());
        assert!(parse_name_addr("sip:user@example.com; tag=1 junk").is_some());
        assert!(parse_name_addr("sip: user@example.com").is_none());
    }

    #[test]
    fn request_uris() {
        assert_eq!(
            check_request_uri("sip:+15551234567@trunk.example.com;user=phone"),
            UriCheck::Sip
        );
        assert_eq!(check_request_uri("sip:[2001:db8::10:5070]"), UriCheck::Sip);
        assert_eq!(
            check_request_uri("sip:user@[2001:db8::10]:5070"),
            UriCheck::Sip
        );
        assert_eq!(
            check_request_uri("sip:user@2001:db8::10"),
            UriCheck::Malformed
        );
        assert_eq!(
            check_request_uri("sip:user@example.com?Route=%3Csip:example.com%3E"),
            UriCheck::Malformed
        );
        assert_eq!(
            check_request_uri("nobodyknowsthisscheme:totallyopaque"),
            UriCheck::UnsupportedScheme
        );
        assert_eq!(
            check_request_uri("<sip:user@example.com>"),
            UriCheck::Malformed
        );
        assert_eq!(check_request_uri("tel:+15551234567"), UriCheck::Tel);
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            parse_cseq("4294967295 INVITE"),
            Some((4294967295, "INVITE"))
        );
        assert_eq!(parse_cseq("36893488147419103232 INVITE"), None);
        assert_eq!(parse_cseq("1"), None);
    }

    #[test]
    fn commas_inside_quotes_and_angles_do_not_split() {
        let v = split_commas("\"a, b\" <sip:x@y;lr>, <sip:z@w,q>");
        assert_eq!(v.len(), 2);
    }
}
