//! The ES256 signing key of STIR/SHAKEN: read once from a PEM file, then
//! used for every PASSporT.
//!
//! Certificate authorities and `openssl` hand out P-256 keys either as
//! PKCS#8 (`PRIVATE KEY`) or as SEC1 (`EC PRIVATE KEY`); ring reads only
//! PKCS#8, so a SEC1 key is wrapped in the PKCS#8 envelope here (a fixed
//! algorithm identifier around the unchanged SEC1 bytes) rather than
//! pulling in a second elliptic-curve implementation.

use std::fmt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use x509_cert::der::pem;

/// Why the key could not be used. The file's contents are never quoted.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a PEM file")]
    NotPem { path: String },
    #[error("{path} holds a {label}, not a PRIVATE KEY or EC PRIVATE KEY")]
    Label { path: String, label: String },
    #[error("{path} is not a P-256 (ES256) private key: {reason}")]
    Rejected { path: String, reason: String },
}

/// Why signing failed (ring's signer fails only if the system's random
/// source does).
#[derive(Debug, thiserror::Error)]
#[error("ES256 signing failed: no randomness")]
pub struct SignError;

/// A P-256 private key.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs; the public half identifies it.
        f.debug_struct("Signer")
            .field("public_key_len", &self.key.public_key().as_ref().len())
            .finish()
    }
}

/// DER of `AlgorithmIdentifier { id-ecPublicKey, prime256v1 }`.
const EC_P256_ALGORITHM: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// PKCS#8 `PrivateKeyInfo` (version 0) around a SEC1 `ECPrivateKey`.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut octets = vec![0x04];
    der_length(sec1.len(), &mut octets);
    octets.extend_from_slice(sec1);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&EC_P256_ALGORITHM);
    body.extend(octets);
    let mut out = vec![0x30];
    der_length(body.len(), &mut out);
    out.extend(body);
    out
}

impl Signer {
    /// Reads a PEM file holding a P-256 key (PKCS#8 or SEC1).
    pub fn from_pem_file(path: &Path) -> Result<Signer, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| KeyError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Signer::from_pem(&bytes, &shown)
    }

    /// Reads PEM text; `name` only labels errors.
    pub fn from_pem(bytes: &[u8], name: &str) -> Result<Signer, KeyError> {
        let (label, der) = pem::decode_vec(bytes).map_err(|_| KeyError::NotPem {
            path: name.to_string(),
        })?;
        let pkcs8 = match label {
            "PRIVATE KEY" => der,
            "EC PRIVATE KEY" => sec1_to_pkcs8(&der),
            other => {
                return Err(KeyError::Label {
                    path: name.to_string(),
                    label: other.to_string(),
                })
            }
        };
        Signer::from_pkcs8(&pkcs8, name)
    }

    pub fn from_pkcs8(der: &[u8], name: &str) -> Result<Signer, KeyError> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(|e| {
                KeyError::Rejected {
                    path: name.to_string(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Signer { key, rng })
    }

    /// A fresh key, for tests and benchmarks.
    pub fn generate() -> Result<Signer, SignError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| SignError)?;
        Signer::from_pkcs8(doc.as_ref(), "generated").map_err(|_| SignError)
    }

    /// ES256 over `message`: the JWS form, `r || s`, 64 bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError)
    }

    /// The uncompressed public point (65 bytes, `04 || x || y`).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signatures_verify_with_the_public_key() {
        let signer = Signer::generate().unwrap();
        let sig = signer.sign(b"header.payload").unwrap();
        assert_eq!(sig.len(), 64);
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key());
        assert!(public.verify(b"header.payload", &sig).is_ok());
        assert!(public.verify(b"header.payloaD", &sig).is_err());
    }

    #[test]
    fn a_sec1_key_is_read_like_its_pkcs8_twin() {
        // The fixture pair was written by `openssl ecparam -genkey` and
        // `openssl pkcs8 -topk8 -nocrypt` from one key.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let sec1 = Signer::from_pem_file(&dir.join("TEST-ONLY-stir-key-sec1.pem")).unwrap();
        let pkcs8 = Signer::from_pem_file(&dir.join("TEST-ONLY-stir-key.pem")).unwrap();
        assert_eq!(sec1.public_key(), pkcs8.public_key());
    }

    #[test]
    fn bad_key_files_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        assert!(matches!(
            Signer::from_pem_file(&missing),
            Err(KeyError::Read { .. })
        ));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(matches!(
            Signer::from_pem_file(&garbage),
            Err(KeyError::NotPem { .. })
        ));
        let cert =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/TEST-ONLY-stir-cert.pem");
        assert!(matches!(
            Signer::from_pem_file(&cert),
            Err(KeyError::Label { .. })
        ));
        // An RSA key (the RBM fixture) is PKCS#8 but not P-256.
        let rsa = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/TEST-ONLY-rbm-service-account-key.pem");
        let err = Signer::from_pem_file(&rsa).unwrap_err();
        assert!(matches!(err, KeyError::Rejected { .. }), "{err}");
        assert!(!err.to_string().contains("BEGIN"));
    }
}
