//! Message boundaries: where one SIP message ends, decided on raw bytes before
//! any parsing.
//!
//! RFC 3261 §18.3: over a stream transport Content-Length is the only framing
//! there is, so a bad one makes the rest of the connection unreadable and the
//! connection must be closed; over UDP the datagram is the frame, octets past
//! Content-Length are ignored (RFC 4475 §3.1.1.8) and a Content-Length past the
//! end is an error (§3.1.2.2). This module never panics on any input and
//! never uses a received number as an index without checking it.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message too large")]
    TooLarge,
    #[error("no empty line ends the header section")]
    Unterminated,
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("more than one Content-Length")]
    MultipleContentLength,
    #[error("Content-Length is larger than the message body")]
    TruncatedBody,
}

/// A framed message: `head` is the start line and headers (without the empty
/// line), `body` exactly Content-Length octets.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed<'a> {
    pub head: &'a [u8],
    pub body: &'a [u8],
}

/// Result of looking at the front of a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// Keep-alive CRLFs to discard (RFC 5626 §3.5.1).
    KeepAlive(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// A whole message occupies the first `len` bytes.
    Message { len: usize },
}

/// Finds the end of the header section: the index of the empty line and the
/// index where the body starts. Bare-LF line ends are tolerated.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let next = buf.get(i + 1).copied();
            if next == Some(b'\n') {
                return Some((i, i + 2));
            }
            if next == Some(b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Reads Content-Length from a header section. `Ok(None)` when absent.
fn content_length(head: &[u8]) -> Result<Option<usize>, FramingError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let name = trim(&line[..colon]);
        let is_cl = name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l");
        if !is_cl {
            continue;
        }
        let value = trim(&line[colon + 1..]);
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let n = value
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        if found.is_some() {
            return Err(FramingError::MultipleContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &s[start..end.max(start)]
}

/// Frames one UDP datagram. On error the header section, when found, is
/// returned too so the caller can still answer `400` to a parseable Via.
pub fn frame_datagram(
    dgram: &[u8],
    max: usize,
) -> Result<Framed<'_>, (FramingError, Option<&[u8]>)> {
    if dgram.len() > max {
        return Err((FramingError::TooLarge, None));
    }
    let Some((head_end, body_start)) = header_end(dgram) else {
        return Err((FramingError::Unterminated, Some(dgram)));
    };
    let head = &dgram[..head_end];
    let rest = &dgram[body_start..];
    match content_length(head) {
        Err(e) => Err((e, Some(head))),
        Ok(None) => Ok(Framed { head, body: rest }),
        Ok(Some(n)) if n > rest.len() => Err((FramingError::TruncatedBody, Some(head))),
        Ok(Some(n)) => Ok(Framed {
            head,
            body: &rest[..n],
        }),
    }
}

/// Looks for one complete message at the front of a stream buffer.
pub fn frame_stream(buf: &[u8], max: usize) -> Result<StreamFrame, FramingError> {
    let crlfs = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if crlfs > 0 {
        return Ok(StreamFrame::KeepAlive(crlfs));
    }
    let Some((head_end, body_start)) = header_end(buf) else {
        return if buf.len() > max {
            Err(FramingError::TooLarge)
        } else {
            Ok(StreamFrame::Incomplete)
        };
    };
    // A stream message without Content-Length has no body (RFC 3261 §18.3
    // makes the header mandatory; treating it as zero keeps framing sane).
    let n = content_length(&buf[..head_end])?.unwrap_or(0);
    let len = body_start.saturating_add(n);
    if len > max {
        return Err(FramingError::TooLarge);
    }
    if buf.len() < len {
        return Ok(StreamFrame::Incomplete);
    }
    Ok(StreamFrame::Message { len })
}

/// Splits a stream-framed message into head and body.
pub fn split_stream_message(msg: &[u8]) -> Framed<'_> {
    match header_end(msg) {
        Some((head_end, body_start)) => Framed {
            head: &msg[..head_end],
            body: &msg[body_start..],
        },
        None => Framed {
            head: msg,
            body: &[],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 65535;

    #[test]
    fn trailing_octets_past_content_length_are_ignored() {
        let d = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabcINVITE junk";
        let f = frame_datagram(d, MAX).unwrap();
        assert_eq!(f.body, b"abc");
    }

    #[test]
    fn content_length_past_the_end_is_an_error() {
        let d = b"OPTIONS sip:a SIP/2.0\r\nl: 30\r\n\r\nabc";
        assert_eq!(
            frame_datagram(d, MAX).unwrap_err().0,
            FramingError::TruncatedBody
        );
    }

    #[test]
    fn negative_and_non_numeric_content_lengths_are_errors() {
        for v in ["-999", "abc", "", "1 2", "99999999999999999999"] {
            let d = format!("OPTIONS sip:a SIP/2.0\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(
                frame_datagram(d.as_bytes(), MAX).unwrap_err().0,
                FramingError::BadContentLength,
                "{v}"
            );
        }
    }

    #[test]
    fn two_content_lengths_are_an_error() {
        let d = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\nl: 1\r\n\r\nx";
        assert_eq!(
            frame_datagram(d, MAX).unwrap_err().0,
            FramingError::MultipleContentLength
        );
    }

    #[test]
    fn oversized_datagrams_are_refused() {
        let d = vec![b'a'; 2000];
        assert_eq!(
            frame_datagram(&d, 1500).unwrap_err().0,
            FramingError::TooLarge
        );
    }

    #[test]
    fn stream_waits_for_the_whole_body_then_frames_exactly() {
        let msg = b"BYE sip:a SIP/2.0\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(
            frame_stream(&msg[..20], MAX).unwrap(),
            StreamFrame::Incomplete
        );
        assert_eq!(
            frame_stream(&msg[..msg.len() - 1], MAX).unwrap(),
            StreamFrame::Incomplete
        );
        let mut two = msg.to_vec();
        two.extend_from_slice(msg);
        assert_eq!(
            frame_stream(&two, MAX).unwrap(),
            StreamFrame::Message { len: msg.len() }
        );
        assert_eq!(
            frame_stream(b"\r\n\r\nBYE", MAX).unwrap(),
            StreamFrame::KeepAlive(4)
        );
    }

    #[test]
    fn stream_without_end_of_headers_is_bounded() {
        let d = vec![b'a'; 3000];
        assert_eq!(frame_stream(&d, 2048).unwrap_err(), FramingError::TooLarge);
        assert_eq!(frame_stream(&d, 4096).unwrap(), StreamFrame::Incomplete);
    }

    #[test]
    fn no_input_panics() {
        for d in [&b""[..], b"\n", b"\r\n\r", b":", b"l:\n\n", b"\n\r\n"] {
            let _ = frame_datagram(d, MAX);
            let _ = frame_stream(d, MAX);
        }
    }
}
