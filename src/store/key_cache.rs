//! API keys that recently passed argon2 verification.
//!
//! argon2 is deliberately slow (tens of milliseconds of CPU), and every
//! API request presents its key: paying the hash per request capped a node
//! at a few dozen requests per second. A key that verified within the last
//! [`TTL`] is therefore accepted without hashing again, provided the same
//! secret is presented for the same stored hash.
//!
//! Only the argon2 step is skipped. The key's row is still read on every
//! request (one primary-key lookup), so a revocation takes effect on the
//! very next request on every node, cached or not. Only successes are
//! remembered: a wrong secret is hashed and refused every time. What is
//! kept is the SHA-256 of the secret, not the secret; the secret is 192
//! random bits, so the digest cannot be turned back into a usable key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a verification is trusted before argon2 runs again. Bounds how
/// long a key lives on in memory after its last use.
pub(super) const TTL: Duration = Duration::from_secs(60);

/// Most keys remembered at once. One entry per key id, and only keys that
/// verified get one, so this is only reached by a fleet of live keys; past
/// it, keys are verified the slow way rather than anything evicted early.
pub(super) const CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct VerifiedKeys {
    /// Key id → the verification of that key.
    entries: Mutex<HashMap<String, Verified>>,
}

struct Verified {
    secret_digest: [u8; 32],
    /// The stored hash the secret was checked against: should the row's
    /// hash ever differ, the old verification says nothing about it.
    hash: String,
    at: Instant,
}

impl VerifiedKeys {
    /// Whether `secret` verified against `hash` for key `id` less than
    /// [`TTL`] before `now`.
    pub(super) fn contains(&self, id: &str, secret: &str, hash: &str, now: Instant) -> bool {
        let entries = self.lock();
        entries.get(id).is_some_and(|v| {
            now.saturating_duration_since(v.at) < TTL
                && v.hash == hash
                && same(&v.secret_digest, &digest(secret))
        })
    }

    /// Remembers that `secret` verified against `hash` for key `id`.
    pub(super) fn insert(&self, id: &str, secret: &str, hash: &str, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(id) {
            entries.retain(|_, v| now.saturating_duration_since(v.at) < TTL);
            if entries.len() >= CAPACITY {
                return;
            }
        }
        entries.insert(
            id.to_string(),
            Verified {
                secret_digest: digest(secret),
                hash: hash.to_string(),
                at: now,
            },
        );
    }

    /// Forgets key `id` (it was revoked).
    pub(super) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        // The map is consistent after any panic (each operation is one map
        // call), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedKeys")
            .field("entries", &self.len())
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares in time independent of where the digests differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_secret_for_its_hash_until_the_ttl() {
        let keys = VerifiedKeys::default();
        let t = Instant::now();
        assert!(!keys.contains("k1", "aa", "h1", t));
        keys.insert("k1", "aa", "h1", t);
        assert!(keys.contains("k1", "aa", "h1", t + TTL - Duration::from_secs(1)));
        assert!(!keys.contains("k1", "ab", "h1", t), "another secret");
        assert!(!keys.contains("k1", "aa", "h2", t), "another hash");
        assert!(!keys.contains("k2", "aa", "h1", t), "another key");
        assert!(!keys.contains("k1", "aa", "h1", t + TTL), "expired");
        keys.forget("k1");
        assert!(!keys.contains("k1", "aa", "h1", t));
    }

    #[test]
    fn is_bounded() {
        let keys = VerifiedKeys::default();
        let t = Instant::now();
        for i in 0..CAPACITY {
            keys.insert(&format!("k{i}"), "aa", "h", t);
        }
        keys.insert("late", "aa", "h", t);
        assert_eq!(keys.len(), CAPACITY);
        assert!(!keys.contains("late", "aa", "h", t));
        // Once the old entries have expired they make room.
        keys.insert("late", "aa", "h", t + TTL);
        assert!(keys.contains("late", "aa", "h", t + TTL));
        assert_eq!(keys.len(), 1);
    }
}
