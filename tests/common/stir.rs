//! An independent check of Identity headers: the `openssl` command line
//! verifies the ES256 signature with the certificate's public key, so the
//! tests do not trust the signer's own library to judge its output.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The test certificate and its keys (PKCS#8 and SEC1).
pub fn cert() -> PathBuf {
    fixture("TEST-ONLY-stir-cert.pem")
}

pub fn key() -> PathBuf {
    fixture("TEST-ONLY-stir-key.pem")
}

pub fn sec1_key() -> PathBuf {
    fixture("TEST-ONLY-stir-key-sec1.pem")
}

/// Fails the test unless `openssl` can be run.
pub fn require_openssl() {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests verify signatures with the openssl command: apt-get install openssl"
    );
}

/// An Identity header value taken apart by hand: the token's three parts
/// decoded, and the header parameters as written.
#[derive(Debug)]
pub struct Token {
    pub signing_input: String,
    /// The JSON texts exactly as signed.
    pub header: String,
    pub claims: String,
    pub signature: Vec<u8>,
    pub params: String,
}

pub fn split(identity: &str) -> Token {
    let identity = identity.trim();
    let (jws, params) = identity.split_once(';').unwrap_or((identity, ""));
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {identity}");
    let text = |p: &str| {
        String::from_utf8(URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("utf-8 JSON")
    };
    Token {
        signing_input: format!("{}.{}", parts[0], parts[1]),
        header: text(parts[0]),
        claims: text(parts[1]),
        signature: URL_SAFE_NO_PAD
            .decode(parts[2])
            .expect("base64url signature"),
        params: params.to_string(),
    }
}

/// `r || s` (JWS) as the DER `ECDSA-Sig-Value` openssl expects.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    assert_eq!(raw.len(), 64, "an ES256 signature is 64 bytes");
    let integer = |bytes: &[u8]| {
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = integer(&raw[..32]);
    body.extend(integer(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// Whether `openssl dgst -sha256 -verify` accepts the header's signature
/// with the public key of `cert`.
pub fn openssl_verifies(identity: &str, cert: &Path) -> bool {
    let token = split(identity);
    let dir = tempfile::tempdir().expect("tempdir");
    let public = dir.path().join("public.pem");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl x509");
    assert!(out.status.success(), "openssl x509 failed");
    std::fs::write(&public, &out.stdout).expect("write public key");
    let input = dir.path().join("input");
    std::fs::write(&input, token.signing_input.as_bytes()).expect("write input");
    let sig = dir.path().join("sig.der");
    std::fs::write(&sig, der_signature(&token.signature)).expect("write signature");
    let status = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(&input)
        .output()
        .expect("run openssl dgst");
    status.status.success()
}

/// A value of the claims JSON as text, found by key (the tests check the
/// whole text against an exact expected form, so this only fills holes).
pub fn json_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// Replaces one character of the payload's JSON and re-encodes it, keeping
/// the signature: a forged header.
pub fn tamper(identity: &str, from: &str, to: &str) -> String {
    let token = split(identity);
    assert!(
        token.claims.contains(from),
        "{from} not in {}",
        token.claims
    );
    let claims = token.claims.replacen(from, to, 1);
    let header_b64 = token.signing_input.split('.').next().unwrap_or_default();
    format!(
        "{header_b64}.{}.{};{}",
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(&token.signature),
        token.params
    )
}
