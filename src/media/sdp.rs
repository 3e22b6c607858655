//! The part of SDP (RFC 4566, offer/answer per RFC 3264) slotgate needs to
//! carry audio: where the peer wants RTP, which G.711 law it speaks, which
//! payload type carries DTMF (RFC 4733), and the descriptions we send.
//!
//! The reader is strict about the lines it uses and ignores the rest, so an
//! offer it cannot honour is refused (the SIP layer answers 488) instead of
//! producing a call with no audio. It never resolves host names: an address
//! that is not an IP literal is an error.

use std::fmt::Write;
use std::net::IpAddr;

/// The audio codecs slotgate relays and converts between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// The payload type slotgate offers for telephone-event.
pub const OFFERED_TELEPHONE_EVENT: u8 = 101;

/// Which way media flows, as the description's author sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes toward this offer's direction.
    pub fn answered(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }
}

/// Why a description cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the body is not UTF-8")]
    NotText,
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("no `v=0` line")]
    NoVersion,
    #[error("no active audio stream")]
    NoAudio,
    #[error("the audio stream has no connection address")]
    NoConnection,
    #[error("the audio stream offers neither PCMU nor PCMA")]
    NoCommonCodec,
}

/// An offer or answer as far as audio goes: the first active `m=audio`
/// stream over RTP/AVP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// Where the peer wants RTP (RTCP goes to `port + 1`).
    pub address: IpAddr,
    pub port: u16,
    /// The G.711 laws offered, in the offer's order of preference, with the
    /// payload type each one uses.
    pub codecs: Vec<(Codec, u8)>,
    /// The payload type of telephone-event/8000, if offered.
    pub telephone_event: Option<u8>,
    pub direction: Direction,
}

impl SessionDescription {
    /// Reads an SDP body.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        parse_text(text)
    }

    /// The law to use toward this peer: the first of PCMU/PCMA it listed.
    pub fn preferred_codec(&self) -> Option<(Codec, u8)> {
        self.codecs.first().copied()
    }
}

/// One media section while it is read.
struct MediaSection {
    audio: bool,
    port: u16,
    rtp_avp: bool,
    formats: Vec<u8>,
    rtpmaps: Vec<(u8, String)>,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
}

fn parse_text(text: &str) -> Result<SessionDescription, SdpError> {
    let mut seen_version = false;
    let mut session_connection = None;
    let mut session_direction = None;
    let mut sections: Vec<MediaSection> = Vec::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason: &str| SdpError::Malformed {
            line: number,
            reason: reason.to_string(),
        };
        let (kind, value) = line
            .split_once('=')
            .filter(|(k, _)| k.len() == 1)
            .ok_or_else(|| malformed("not written `x=value`"))?;
        if !seen_version {
            if kind != "v" || value.trim() != "0" {
                return Err(SdpError::NoVersion);
            }
            seen_version = true;
            continue;
        }
        match kind {
            "c" => {
                let address = parse_connection(value).map_err(&malformed)?;
                match sections.last_mut() {
                    Some(section) => section.connection = Some(address),
                    None => session_connection = Some(address),
                }
            }
            "m" => sections.push(parse_media(value).map_err(&malformed)?),
            "a" => {
                let direction = match value.trim() {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (sections.last_mut(), direction) {
                    (Some(section), Some(d)) => section.direction = Some(d),
                    (None, Some(d)) => session_direction = Some(d),
                    (Some(section), None) => {
                        if let Some(map) = value.strip_prefix("rtpmap:") {
                            section.rtpmaps.push(parse_rtpmap(map).map_err(&malformed)?);
                        }
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::NoVersion);
    }
    let section = sections
        .into_iter()
        .find(|s| s.audio && s.port != 0 && s.rtp_avp)
        .ok_or(SdpError::NoAudio)?;
    let address = section
        .connection
        .or(session_connection)
        .ok_or(SdpError::NoConnection)?;
    let mut codecs = Vec::new();
    let mut telephone_event = None;
    for pt in &section.formats {
        let mapped = section.rtpmaps.iter().find(|(p, _)| p == pt);
        let name = mapped.map(|(_, n)| n.to_ascii_uppercase());
        let codec = match (pt, name.as_deref()) {
            (_, Some("PCMU/8000" | "PCMU/8000/1")) | (0, None) => Some(Codec::Pcmu),
            (_, Some("PCMA/8000" | "PCMA/8000/1")) | (8, None) => Some(Codec::Pcma),
            (_, Some("TELEPHONE-EVENT/8000")) => {
                telephone_event.get_or_insert(*pt);
                None
            }
            _ => None,
        };
        if let Some(codec) = codec {
            if !codecs.iter().any(|(c, _)| *c == codec) {
                codecs.push((codec, *pt));
            }
        }
    }
    if codecs.is_empty() {
        return Err(SdpError::NoCommonCodec);
    }
    Ok(SessionDescription {
        address,
        port: section.port,
        codecs,
        telephone_event,
        direction: section
            .direction
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
    })
}

/// `IN IP4 192.0.2.1` (a multicast `/ttl` suffix is dropped).
fn parse_connection(value: &str) -> Result<IpAddr, &'static str> {
    let mut parts = value.split_whitespace();
    let (Some("IN"), Some(kind), Some(address), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("connection must be `IN IP4|IP6 address`");
    };
    let address = address.split('/').next().unwrap_or(address);
    let ip: IpAddr = address
        .parse()
        .map_err(|_| "connection address is not an IP address")?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err("connection address does not match its address type"),
    }
}

/// `audio 49170[/2] RTP/AVP 0 8 101`.
fn parse_media(value: &str) -> Result<MediaSection, &'static str> {
    let mut parts = value.split_whitespace();
    let media = parts.next().ok_or("empty media line")?;
    let port = parts.next().ok_or("media line without a port")?;
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port.parse().map_err(|_| "media port is not a number")?;
    let proto = parts.next().ok_or("media line without a protocol")?;
    let audio = media == "audio";
    let rtp_avp = proto == "RTP/AVP";
    let mut formats = Vec::new();
    for format in parts {
        if !rtp_avp {
            break;
        }
        let pt: u8 = format.parse().map_err(|_| "payload type is not a number")?;
        if pt > 127 {
            return Err("payload type above 127");
        }
        formats.push(pt);
    }
    if audio && rtp_avp && formats.is_empty() {
        return Err("media line lists no payload type");
    }
    Ok(MediaSection {
        audio,
        port,
        rtp_avp,
        formats,
        rtpmaps: Vec::new(),
        connection: None,
        direction: None,
    })
}

/// `0 PCMU/8000`.
fn parse_rtpmap(value: &str) -> Result<(u8, String), &'static str> {
    let (pt, encoding) = value
        .trim()
        .split_once(' ')
        .ok_or("rtpmap must be `pt encoding/rate`")?;
    let pt: u8 = pt
        .parse()
        .map_err(|_| "rtpmap payload type is not a number")?;
    Ok((pt, encoding.trim().to_string()))
}

/// What slotgate writes in a description of its own.
#[derive(Debug, Clone)]
pub struct LocalDescription {
    pub session_id: u64,
    pub version: u64,
    /// Written in `o=` and `c=`: the address peers send RTP to.
    pub address: IpAddr,
    pub port: u16,
}

impl LocalDescription {
    /// The answer to `offer`: its preferred law and, if it offered one, its
    /// telephone-event payload type.
    pub fn answer(&self, offer: &SessionDescription) -> Result<String, SdpError> {
        let (codec, pt) = offer.preferred_codec().ok_or(SdpError::NoCommonCodec)?;
        let mut formats = vec![(pt, codec.encoding_name())];
        if let Some(event) = offer.telephone_event {
            formats.push((event, "telephone-event"));
        }
        Ok(self.render(&formats, offer.direction.answered()))
    }

    /// An offer of PCMU, PCMA and telephone-event.
    pub fn offer(&self) -> String {
        self.render(
            &[
                (0, "PCMU"),
                (8, "PCMA"),
                (OFFERED_TELEPHONE_EVENT, "telephone-event"),
            ],
            Direction::SendRecv,
        )
    }

    fn render(&self, formats: &[(u8, &str)], direction: Direction) -> String {
        let ip_kind = match self.address {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let mut sdp = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = write!(
            sdp,
            "v=0\r\no=slotgate {} {} IN {ip_kind} {}\r\ns=slotgate\r\nc=IN {ip_kind} {}\r\nt=0 0\r\nm=audio {} RTP/AVP",
            self.session_id, self.version, self.address, self.address, self.port
        );
        for (pt, _) in formats {
            let _ = write!(sdp, " {pt}");
        }
        sdp.push_str("\r\n");
        for (pt, name) in formats {
            let _ = write!(sdp, "a=rtpmap:{pt} {name}/8000\r\n");
            if *name == "telephone-event" {
                let _ = write!(sdp, "a=fmtp:{pt} 0-16\r\n");
            }
        }
        let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", direction.attribute());
        sdp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        o=pbx 123 456 IN IP4 192.0.2.10\r\n\
        s=call\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 40000 RTP/AVP 8 0 96 18\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\n\
        a=fmtp:96 0-15\r\n\
        a=sendrecv\r\n";

    #[test]
    fn an_offer_gives_address_port_codecs_in_order_and_dtmf() {
        let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.address, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!(sdp.port, 40000);
        assert_eq!(sdp.codecs, vec![(Codec::Pcma, 8), (Codec::Pcmu, 0)]);
        assert_eq!(sdp.telephone_event, Some(96));
        assert_eq!(sdp.direction, Direction::SendRecv);
        assert_eq!(sdp.preferred_codec(), Some((Codec::Pcma, 8)));
    }

    #[test]
    fn media_level_connection_and_direction_win_and_bare_lf_is_read() {
        let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=sendrecv\n\
                    m=video 5000 RTP/AVP 96\nm=audio 0 RTP/AVP 0\nm=audio 6000 RTP/AVP 18 0\n\
                    c=IN IP6 2001:db8::5\na=recvonly\n";
        let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.address, "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(sdp.port, 6000);
        assert_eq!(sdp.codecs, vec![(Codec::Pcmu, 0)]);
        assert_eq!(sdp.telephone_event, None);
        assert_eq!(sdp.direction, Direction::RecvOnly);
    }

    #[test]
    fn unusable_descriptions_are_refused() {
        let cases: [(&str, SdpError); 6] = [
            ("", SdpError::NoVersion),
            ("o=x\r\nv=0\r\n", SdpError::NoVersion),
            (
                "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 9\r\n",
                SdpError::NoCommonCodec,
            ),
            (
                "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n",
                SdpError::NoAudio,
            ),
            ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", SdpError::NoConnection),
            (
                "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n",
                SdpError::NoAudio,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                SessionDescription::parse(text.as_bytes()),
                Err(want),
                "{text:?}"
            );
        }
        let malformed = [
            "v=0\r\nc=IN IP4 pbx.example.com\r\nm=audio 4000 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP6 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 99999 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP zero\r\n",
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 200\r\n",
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP\r\n",
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
            "v=0\r\nnot a line\r\n",
        ];
        for text in malformed {
            assert!(
                matches!(
                    SessionDescription::parse(text.as_bytes()),
                    Err(SdpError::Malformed { .. })
                ),
                "{text:?}"
            );
        }
        assert_eq!(
            SessionDescription::parse(&[b'v', b'=', 0xff]),
            Err(SdpError::NotText)
        );
    }

    #[test]
    fn a_remapped_static_number_is_read_by_its_rtpmap() {
        let text = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0 97\r\n\
                    a=rtpmap:0 opus/48000/2\r\na=rtpmap:97 PCMA/8000\r\n";
        let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.codecs, vec![(Codec::Pcma, 97)]);
    }

    fn local() -> LocalDescription {
        LocalDescription {
            session_id: 42,
            version: 1,
            address: "198.51.100.7".parse().unwrap(),
            port: 20000,
        }
    }

    #[test]
    fn the_answer_takes_the_offers_first_law_and_dtmf_number() {
        let offer = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let answer = local().answer(&offer).unwrap();
        assert_eq!(
            answer,
            "v=0\r\no=slotgate 42 1 IN IP4 198.51.100.7\r\ns=slotgate\r\n\
             c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 20000 RTP/AVP 8 96\r\n\
             a=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n\
             a=ptime:20\r\na=sendrecv\r\n"
        );
        let reread = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(reread.codecs, vec![(Codec::Pcma, 8)]);
        assert_eq!(reread.telephone_event, Some(96));
    }

    #[test]
    fn the_offer_lists_both_laws_and_dtmf_and_reads_back() {
        let mut description = local();
        description.address = "2001:db8::1".parse().unwrap();
        let offer = description.offer();
        assert!(offer.contains("c=IN IP6 2001:db8::1\r\n"), "{offer}");
        assert!(
            offer.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"),
            "{offer}"
        );
        let reread = SessionDescription::parse(offer.as_bytes()).unwrap();
        assert_eq!(reread.codecs, vec![(Codec::Pcmu, 0), (Codec::Pcma, 8)]);
        assert_eq!(reread.telephone_event, Some(101));
        assert_eq!(reread.port, 20000);
    }
}
