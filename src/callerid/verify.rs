//! Checking an Identity header against a certificate file: the signature
//! (ES256 with the certificate's P-256 public key), and that the header,
//! the token and its parameters agree (RFC 8224 §6.2, RFC 8225 §5).
//!
//! This is the operator's tool (`slotgate identity verify`) for proving
//! what the trunk receives; fetching `x5u` and walking the certificate
//! chain to an STI trust anchor are a verification service's job, not
//! done here.

use std::path::Path;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde_json::Value;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, DecodePem};
use x509_cert::Certificate;

use super::identity::{self, IdentityError};
use super::passport::{Jws, JwsError};

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why an Identity header did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("the certificate's key is not a P-256 (ES256) public key")]
    NotP256,
    #[error(transparent)]
    Header(#[from] IdentityError),
    #[error(transparent)]
    Token(#[from] JwsError),
    #[error("the PASSporT header says {field} = {found}, expected {expected}")]
    Field {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("the signature does not verify with the certificate's key")]
    Signature,
}

/// A verified PASSporT.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
    /// The `info` parameter of the Identity header.
    pub info: Option<String>,
}

/// The uncompressed P-256 point of a certificate (PEM or DER).
pub fn public_key_from_certificate(path: &Path) -> Result<Vec<u8>, VerifyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| VerifyError::Certificate {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let cert = Certificate::from_pem(&bytes)
        .or_else(|_| Certificate::from_der(&bytes))
        .map_err(|e| VerifyError::Certificate {
            path: shown,
            reason: e.to_string(),
        })?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(PRIME256V1) {
        return Err(VerifyError::NotP256);
    }
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or(VerifyError::NotP256)
}

fn expect(header: &Value, field: &'static str, expected: &str) -> Result<(), VerifyError> {
    match header.get(field).and_then(Value::as_str) {
        Some(found) if found == expected => Ok(()),
        found => Err(VerifyError::Field {
            field,
            found: found.map_or_else(|| "nothing".to_string(), str::to_string),
            expected: expected.to_string(),
        }),
    }
}

/// Verifies one Identity header value with `public_key` (uncompressed
/// P-256 point).
pub fn verify_header(value: &str, public_key: &[u8]) -> Result<Verified, VerifyError> {
    let parsed = identity::parse(value)?;
    let jws = Jws::parse(&parsed.jws)?;
    expect(&jws.header, "alg", "ES256")?;
    expect(&jws.header, "typ", "passport")?;
    if let Some(alg) = &parsed.alg {
        if alg != "ES256" {
            return Err(VerifyError::Field {
                field: "alg",
                found: alg.clone(),
                expected: "ES256 (the header's alg parameter)".into(),
            });
        }
    }
    // The parameters outside the token must say what the signed header says.
    if let Some(ppt) = &parsed.ppt {
        expect(&jws.header, "ppt", ppt)?;
    }
    if let Some(info) = &parsed.info {
        expect(&jws.header, "x5u", info)?;
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(jws.signing_input.as_bytes(), &jws.signature)
        .map_err(|_| VerifyError::Signature)?;
    Ok(Verified {
        header: jws.header,
        claims: jws.claims,
        info: parsed.info,
    })
}

/// Verifies one Identity header value against a certificate file.
pub fn verify_with_certificate(value: &str, certificate: &Path) -> Result<Verified, VerifyError> {
    let key = public_key_from_certificate(certificate)?;
    verify_header(value, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callerid::identity::build;
    use crate::callerid::passport::{compact, header, signing_input, Attest, Claims, Ppt};
    use crate::callerid::signer::Signer;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn signed(x5u: &str) -> String {
        let signer = Signer::from_pem_file(&fixture("TEST-ONLY-stir-key-sec1.pem")).unwrap();
        let claims = Claims {
            attest: Some(Attest::B),
            orig: "12125550100".into(),
            dest: "12125550143".into(),
            iat: 1_700_000_000,
            origid: Some("0b8f3c1e-7d2a-4c4e-9a57-2f0e6c1d9b11".into()),
            rcd: None,
            crn: None,
        };
        let input = signing_input(&header(Ppt::Shaken, x5u), &claims.to_value());
        let sig = signer.sign(input.as_bytes()).unwrap();
        build(&compact(&input, &sig), x5u, Ppt::Shaken)
    }

    #[test]
    fn a_signed_header_verifies_against_its_certificate() {
        let value = signed("https://cert.example.org/sg.pem");
        let verified =
            verify_with_certificate(&value, &fixture("TEST-ONLY-stir-cert.pem")).unwrap();
        assert_eq!(verified.claims["attest"], "B");
        assert_eq!(verified.claims["orig"]["tn"], "12125550100");
        assert_eq!(verified.header["ppt"], "shaken");
    }

    #[test]
    fn tampering_anywhere_is_caught() {
        let value = signed("https://cert.example.org/sg.pem");
        let cert = fixture("TEST-ONLY-stir-cert.pem");
        let key = public_key_from_certificate(&cert).unwrap();
        // Another orig number in the payload, signature kept.
        let (jws, params) = value.split_once(';').unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        let claims = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
                .unwrap(),
        )
        .unwrap()
        .replace("12125550100", "12125550199");
        let forged = format!(
            "{}.{}.{};{params}",
            parts[0],
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims),
            parts[2]
        );
        assert!(matches!(
            verify_header(&forged, &key),
            Err(VerifyError::Signature)
        ));
        // A flipped signature bit.
        let mut sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
                .unwrap();
        sig[10] ^= 1;
        let flipped = format!(
            "{}.{}.{};{params}",
            parts[0],
            parts[1],
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
        );
        assert!(matches!(
            verify_header(&flipped, &key),
            Err(VerifyError::Signature)
        ));
        // An info parameter pointing elsewhere than the signed x5u.
        let moved = value.replace(
            "info=<https://cert.example.org/sg.pem>",
            "info=<https://evil.example/c.pem>",
        );
        assert!(matches!(
            verify_header(&moved, &key),
            Err(VerifyError::Field { field: "x5u", .. })
        ));
        // Another key.
        let other = Signer::generate().unwrap();
        assert!(matches!(
            verify_header(&value, other.public_key()),
            Err(VerifyError::Signature)
        ));
    }

    #[test]
    fn certificates_that_are_not_p256_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            public_key_from_certificate(&junk),
            Err(VerifyError::Certificate { .. })
        ));
        assert!(matches!(
            public_key_from_certificate(&dir.path().join("absent.pem")),
            Err(VerifyError::Certificate { .. })
        ));
    }
}
