//! How an HTTP answer from any provider maps onto [`SendError`].
//!
//! Both providers share the same reading of transport failures and status
//! classes, and the dispatcher's retry policy depends on it being uniform:
//! only `Transient` is retried, so a mistake here either hammers a provider
//! with a request it will never take or drops a prompt that would have gone
//! through a minute later.

use reqwest::StatusCode;

use super::channel::SendError;

/// A failure before any status arrived (timeout, refused connection, reset).
/// All are worth retrying; the text never includes the URL's credentials
/// because reqwest strips them from errors.
pub(crate) fn transport_error(what: &str, err: reqwest::Error) -> SendError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "transport failure"
    };
    SendError::Transient(format!("{what}: {kind}: {}", err.without_url()))
}

/// The error for a non-success status. `detail` is the provider's own
/// explanation (already shortened), kept for the operator.
pub(crate) fn status_error(what: &str, status: StatusCode, detail: &str) -> SendError {
    let text = format!("{what}: HTTP {}: {detail}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        SendError::Transient(text)
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        SendError::Auth(text)
    } else {
        SendError::Rejected(text)
    }
}

/// Provider error bodies can be large HTML pages; the first few hundred
/// characters are enough to diagnose and keep logs readable.
pub(crate) fn shorten(body: &str) -> String {
    const MAX: usize = 300;
    let trimmed = body.trim();
    match trimmed.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_policy() {
        let t = |code: u16| status_error("x", StatusCode::from_u16(code).unwrap(), "");
        assert!(matches!(t(500), SendError::Transient(_)));
        assert!(matches!(t(503), SendError::Transient(_)));
        assert!(matches!(t(429), SendError::Transient(_)));
        assert!(matches!(t(401), SendError::Auth(_)));
        assert!(matches!(t(403), SendError::Auth(_)));
        assert!(matches!(t(400), SendError::Rejected(_)));
        assert!(matches!(t(422), SendError::Rejected(_)));
    }

    #[test]
    fn shorten_cuts_on_char_boundaries() {
        let long = "é".repeat(400);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 301);
    }
}
