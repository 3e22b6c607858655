//! PASSporT (RFC 8225) tokens: the SHAKEN (RFC 8588) and rich call data
//! (RFC 9795) claims, their canonical JSON, and the compact JWS form.
//!
//! RFC 8225 §9 asks for the JSON of header and claims in one exact form
//! (keys in lexicographic order, no whitespace) so that a verifier that
//! rebuilds the token from SIP headers gets the same bytes; the form is
//! produced here by an explicit writer rather than left to a map type's
//! iteration order.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// SHAKEN attestation level (RFC 8588 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attest {
    /// Full: the customer is known and may use the number.
    A,
    /// Partial: the customer is known, the number is not vouched for.
    B,
    /// Gateway: only where the call entered is known.
    C,
}

impl Attest {
    pub fn parse(text: &str) -> Option<Attest> {
        match text {
            "A" | "a" => Some(Attest::A),
            "B" | "b" => Some(Attest::B),
            "C" | "c" => Some(Attest::C),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Attest::A => "A",
            Attest::B => "B",
            Attest::C => "C",
        }
    }
}

/// The `ppt` of a PASSporT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ppt {
    Shaken,
    Rcd,
}

impl Ppt {
    pub fn as_str(self) -> &'static str {
        match self {
            Ppt::Shaken => "shaken",
            Ppt::Rcd => "rcd",
        }
    }
}

/// Rich call data (RFC 9795 §6): what the callee's handset may show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rcd {
    /// `nam`: the caller's display name.
    pub nam: Option<String>,
    /// `icn`: a URL of the caller's logo.
    pub icn: Option<String>,
}

impl Rcd {
    pub fn is_empty(&self) -> bool {
        self.nam.is_none() && self.icn.is_none()
    }
}

/// The claims of one PASSporT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// SHAKEN only.
    pub attest: Option<Attest>,
    /// Canonical telephone number (RFC 8224 §8.3: digits only).
    pub orig: String,
    pub dest: String,
    pub iat: i64,
    /// SHAKEN only: a UUID identifying where the call was signed.
    pub origid: Option<String>,
    pub rcd: Option<Rcd>,
    pub crn: Option<String>,
}

/// RFC 8224 §8.3: a telephone number as signed, only its digits (no `+`,
/// no visual separators). `None` when the text is not a telephone number.
pub fn canonical_tn(user: &str) -> Option<String> {
    let user = user.split(';').next().unwrap_or(user);
    let mut digits = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' | '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some(digits)
}

/// Writes `value` in RFC 8225 §9 form: object keys sorted by their bytes,
/// no whitespace. Strings are escaped as JSON requires (serde_json's
/// escaping, which leaves `/` alone).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        // Scalars have one compact form already.
        other => out.push_str(&other.to_string()),
    }
}

/// The JOSE header of a PASSporT (RFC 8225 §4).
pub fn header(ppt: Ppt, x5u: &str) -> Value {
    serde_json::json!({
        "alg": "ES256",
        "ppt": ppt.as_str(),
        "typ": "passport",
        "x5u": x5u,
    })
}

impl Claims {
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let Some(a) = self.attest {
            map.insert("attest".into(), a.as_str().into());
        }
        map.insert("dest".into(), serde_json::json!({ "tn": [self.dest] }));
        map.insert("iat".into(), self.iat.into());
        map.insert("orig".into(), serde_json::json!({ "tn": self.orig }));
        if let Some(id) = &self.origid {
            map.insert("origid".into(), id.clone().into());
        }
        if let Some(rcd) = self.rcd.as_ref().filter(|r| !r.is_empty()) {
            let mut r = serde_json::Map::new();
            if let Some(nam) = &rcd.nam {
                r.insert("nam".into(), nam.clone().into());
            }
            if let Some(icn) = &rcd.icn {
                r.insert("icn".into(), icn.clone().into());
            }
            map.insert("rcd".into(), Value::Object(r));
        }
        if let Some(crn) = &self.crn {
            map.insert("crn".into(), crn.clone().into());
        }
        Value::Object(map)
    }
}

/// `BASE64URL(header) . BASE64URL(claims)`: the bytes the signature covers.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(canonical_json(header)),
        URL_SAFE_NO_PAD.encode(canonical_json(claims))
    )
}

/// A compact JWS split into its parts and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Jws {
    /// `header.payload` exactly as received.
    pub signing_input: String,
    pub header: Value,
    pub claims: Value,
    pub signature: Vec<u8>,
}

/// Why a compact JWS could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("a PASSporT has three base64url parts separated by dots")]
    Shape,
    #[error("the {0} is not base64url")]
    Base64(&'static str),
    #[error("the {0} is not a JSON object")]
    Json(&'static str),
}

impl Jws {
    pub fn parse(compact: &str) -> Result<Jws, JwsError> {
        let mut parts = compact.trim().split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Shape);
        };
        let decode = |part: &str, what: &'static str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwsError::Base64(what))
        };
        let object = |bytes: Vec<u8>, what: &'static str| {
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
                .ok_or(JwsError::Json(what))
        };
        Ok(Jws {
            signing_input: format!("{h}.{p}"),
            header: object(decode(h, "header")?, "header")?,
            claims: object(decode(p, "payload")?, "payload")?,
            signature: decode(s, "signature")?,
        })
    }
}

/// Joins a signing input and its signature into the compact form.
pub fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaken() -> Claims {
        Claims {
            attest: Some(Attest::A),
            orig: "12155551212".into(),
            dest: "12155551213".into(),
            iat: 1_443_208_345,
            origid: Some("123e4567-e89b-12d3-a456-426655440000".into()),
            rcd: None,
            crn: None,
        }
    }

    #[test]
    fn claims_match_the_rfc_8588_example_byte_for_byte() {
        // RFC 8588 §6's example claims and header, in their canonical form.
        assert_eq!(
            canonical_json(&shaken().to_value()),
            "{\"attest\":\"A\",\"dest\":{\"tn\":[\"12155551213\"]},\"iat\":1443208345,\
             \"orig\":{\"tn\":\"12155551212\"},\"origid\":\"123e4567-e89b-12d3-a456-426655440000\"}"
        );
        let input = signing_input(
            &header(Ppt::Shaken, "https://cert.example.org/passport.cer"),
            &shaken().to_value(),
        );
        assert_eq!(
            input,
            "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9.\
             eyJhdHRlc3QiOiJBIiwiZGVzdCI6eyJ0biI6WyIxMjE1NTU1MTIxMyJdfSwiaWF0IjoxNDQzMjA4MzQ1LCJvcmlnIjp7InRuIjoiMTIxNTU1NTEyMTIifSwib3JpZ2lkIjoiMTIzZTQ1NjctZTg5Yi0xMmQzLWE0NTYtNDI2NjU1NDQwMDAwIn0"
        );
    }

    #[test]
    fn nested_keys_are_sorted_and_strings_escaped() {
        let mut claims = shaken();
        claims.rcd = Some(Rcd {
            nam: Some("Acme \"Best\" Care".into()),
            icn: Some("https://cdn.example.com/logo.png".into()),
        });
        claims.crn = Some("Your scheduled callback".into());
        let text = canonical_json(&claims.to_value());
        assert!(!text.contains(' ') || text.contains("Acme \\\"Best\\\" Care"));
        assert!(text.contains(
            "\"rcd\":{\"icn\":\"https://cdn.example.com/logo.png\",\"nam\":\"Acme \\\"Best\\\" Care\"}"
        ));
        let keys: Vec<&str> = ["attest", "crn", "dest", "iat", "orig", "origid", "rcd"].to_vec();
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        // Reading it back gives the same value.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, claims.to_value());
    }

    #[test]
    fn telephone_numbers_are_signed_as_digits() {
        assert_eq!(
            canonical_tn("+1 (215) 555-1212").as_deref(),
            Some("12155551212")
        );
        assert_eq!(
            canonical_tn("+12155551212;npdi").as_deref(),
            Some("12155551212")
        );
        assert_eq!(canonical_tn("alice"), None);
        assert_eq!(canonical_tn(""), None);
    }

    #[test]
    fn compact_tokens_split_back_into_their_parts() {
        let input = signing_input(
            &header(Ppt::Rcd, "https://x.example/c.pem"),
            &shaken().to_value(),
        );
        let token = compact(&input, &[1, 2, 3]);
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.signing_input, input);
        assert_eq!(jws.signature, vec![1, 2, 3]);
        assert_eq!(jws.header["ppt"], "rcd");
        assert_eq!(Jws::parse("a.b"), Err(JwsError::Shape));
        assert_eq!(Jws::parse("a.b.c.d"), Err(JwsError::Shape));
        assert_eq!(Jws::parse("!!.e30.AA"), Err(JwsError::Base64("header")));
        assert_eq!(Jws::parse("e30.WzFd.AA"), Err(JwsError::Json("payload")));
    }
}
