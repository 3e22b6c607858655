//! The SIP `Identity` header (RFC 8224 §4.1): a compact PASSporT followed
//! by `info` (where the certificate is), `alg` and `ppt` parameters.
//!
//! Building and reading live together so that what slotgate writes is
//! exactly what `slotgate identity verify` and the tests read back.

use super::passport::Ppt;

/// `<jws>;info=<x5u>;alg=ES256;ppt=<ppt>`.
pub fn build(jws: &str, x5u: &str, ppt: Ppt) -> String {
    format!("{jws};info=<{x5u}>;alg=ES256;ppt={}", ppt.as_str())
}

/// An Identity header value taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    pub jws: String,
    /// The URL inside `info=<…>`.
    pub info: Option<String>,
    pub alg: Option<String>,
    pub ppt: Option<String>,
}

/// Why an Identity header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the Identity header is empty")]
    Empty,
    #[error("the info parameter must be a URI in angle brackets")]
    Info,
}

/// Reads one Identity header value (the header name, if pasted along, is
/// skipped).
pub fn parse(value: &str) -> Result<IdentityHeader, IdentityError> {
    let value = value.trim();
    let value = match value.split_once(':') {
        Some((name, rest)) if name.trim().eq_ignore_ascii_case("identity") => rest.trim(),
        _ => value,
    };
    let (jws, mut rest) = value.split_once(';').unwrap_or((value, ""));
    let jws = jws.trim();
    if jws.is_empty() {
        return Err(IdentityError::Empty);
    }
    let mut header = IdentityHeader {
        jws: jws.to_string(),
        info: None,
        alg: None,
        ppt: None,
    };
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').unwrap_or((rest, ""));
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        // The info URI may itself hold ';' and '=': it runs to the '>'.
        let (raw, next) = if name == "info" {
            let inner = after.strip_prefix('<').ok_or(IdentityError::Info)?;
            let end = inner.find('>').ok_or(IdentityError::Info)?;
            let tail = &inner[end + 1..];
            (&inner[..end], tail.split_once(';').map_or("", |(_, n)| n))
        } else {
            after.split_once(';').unwrap_or((after, ""))
        };
        let v = raw.trim().trim_matches('"').to_string();
        match name.as_str() {
            "info" => header.info = Some(v),
            "alg" => header.alg = Some(v),
            "ppt" => header.ppt = Some(v),
            _ => {}
        }
        rest = next;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_built_is_read_back() {
        let value = build(
            "aaa.bbb.ccc",
            "https://cert.example.org/a;b=c.pem",
            Ppt::Shaken,
        );
        assert_eq!(
            value,
            "aaa.bbb.ccc;info=<https://cert.example.org/a;b=c.pem>;alg=ES256;ppt=shaken"
        );
        let parsed = parse(&value).unwrap();
        assert_eq!(parsed.jws, "aaa.bbb.ccc");
        assert_eq!(
            parsed.info.as_deref(),
            Some("https://cert.example.org/a;b=c.pem")
        );
        assert_eq!(parsed.alg.as_deref(), Some("ES256"));
        assert_eq!(parsed.ppt.as_deref(), Some("shaken"));
    }

    #[test]
    fn quoted_ppt_header_name_and_missing_parameters() {
        let parsed =
            parse("Identity: x.y.z;info=<https://c.example/c>;ppt=\"rcd\";alg=ES256").unwrap();
        assert_eq!(parsed.jws, "x.y.z");
        assert_eq!(parsed.ppt.as_deref(), Some("rcd"));
        let bare = parse("x.y.z").unwrap();
        assert_eq!((bare.info, bare.alg, bare.ppt), (None, None, None));
        assert_eq!(parse("  "), Err(IdentityError::Empty));
        assert_eq!(parse("x.y.z;info=https://c"), Err(IdentityError::Info));
    }
}
