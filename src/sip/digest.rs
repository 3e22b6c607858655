//! SIP Digest authentication (RFC 2617 and RFC 7616 as used by SIP per RFC 3261 and RFC 8760:
//! MD5, SHA-256 and their -sess variants), for both directions slotgate needs: answering a
//! trunk's 401/407 challenge, and challenging a PBX before relaying its calls.
//!
//! The module is sans-I/O so that it is deterministic and testable: callers hand in header
//! values, request data and the current time. Server nonces carry their issue time and a keyed
//! MAC, so any node holding the same secret can validate them without a shared nonce store.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Shorter secrets make the nonce MAC guessable offline from observed nonces.
pub const MIN_SECRET_LEN: usize = 16;

/// Truncated MAC length in bytes; 128 bits is ample against forgery and keeps nonces short.
const NONCE_MAC_LEN: usize = 16;
const NONCE_TS_HEX: usize = 16;
const NONCE_SALT_HEX: usize = 16;
const NONCE_LEN: usize = NONCE_TS_HEX + NONCE_SALT_HEX + 2 * NONCE_MAC_LEN;
/// Separates this MAC from any other use of the same secret.
const NONCE_MAC_CONTEXT: &[u8] = b"slotgate digest nonce v1\0";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    #[error("malformed Digest header at byte {at}: {reason}")]
    Malformed { at: usize, reason: &'static str },
    #[error("Digest header lacks the required {0:?} parameter")]
    MissingParam(&'static str),
    #[error("Digest header repeats the {0:?} parameter")]
    DuplicateParam(String),
    #[error("unsupported Digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported Digest qop {0:?}")]
    UnsupportedQop(String),
    #[error("invalid nonce count {0:?}: expected 8 hex digits, starting at 00000001")]
    InvalidNonceCount(String),
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        field: &'static str,
        reason: &'static str,
    },
    #[error("nonce secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    #[error("nonce was not issued by this server")]
    UnknownNonce,
    #[error("nonce is stale")]
    Stale,
    #[error("realm {got:?} does not match {expected:?}")]
    RealmMismatch { expected: String, got: String },
    #[error("inconsistent qop parameters: {0}")]
    QopMismatch(&'static str),
    #[error("digest response does not match")]
    ResponseMismatch,
    #[error("nonce count {0:08x} was already used with this nonce")]
    Replay(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// RFC 2617 makes MD5 the meaning of an absent `algorithm` parameter.
    #[default]
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lowercase hex of H(p1 ":" p2 ":" ...), fed piecewise to avoid building the joined string.
    fn h(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&[u8]]) -> String {
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(part);
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run(Md5::new(), parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run(Sha256::new(), parts),
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // "SHA256" is not RFC spelling, but some deployed UAs send it.
        match s.to_ascii_lowercase().as_str() {
            "md5" => Ok(Algorithm::Md5),
            "md5-sess" => Ok(Algorithm::Md5Sess),
            "sha-256" | "sha256" => Ok(Algorithm::Sha256),
            "sha-256-sess" | "sha256-sess" => Ok(Algorithm::Sha256Sess),
            _ => Err(DigestError::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

impl FromStr for Qop {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auth" => Ok(Qop::Auth),
            "auth-int" => Ok(Qop::AuthInt),
            _ => Err(DigestError::UnsupportedQop(s.to_owned())),
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Value of a WWW-Authenticate or Proxy-Authenticate header with the Digest scheme.
///
/// An unknown algorithm or a qop list with no supported entry fails to parse, because no
/// response we could build would be accepted; callers holding several challenges keep the ones
/// that parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `None` means the header had no `algorithm` parameter, which is MD5.
    pub algorithm: Option<Algorithm>,
    /// Empty means no qop was offered (RFC 2069 compatibility).
    pub qop: Vec<Qop>,
    pub stale: bool,
}

impl FromStr for Challenge {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;
        for (name, value) in parse_params(s)? {
            let slot = match name.as_str() {
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "opaque" => &mut opaque,
                "algorithm" => &mut algorithm,
                "qop" => &mut qop,
                "stale" => &mut stale,
                _ => continue,
            };
            set_once(slot, name, value)?;
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::MissingParam("realm"))?,
            nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
            opaque,
            algorithm: algorithm.map(|a| a.parse()).transpose()?,
            qop: qop
                .map(|q| parse_qop_list(&q))
                .transpose()?
                .unwrap_or_default(),
            stale: stale.is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}",
            Quoted(&self.realm),
            Quoted(&self.nonce)
        )?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(algorithm) = self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if !self.qop.is_empty() {
            f.write_str(", qop=\"")?;
            for (i, qop) in self.qop.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(qop.as_str())?;
            }
            f.write_str("\"")?;
        }
        if self.stale {
            f.write_str(", stale=TRUE")?;
        }
        Ok(())
    }
}

/// Value of an Authorization or Proxy-Authorization header with the Digest scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// `None` means the header had no `algorithm` parameter, which is MD5.
    pub algorithm: Option<Algorithm>,
    pub cnonce: Option<String>,
    pub nc: Option<u32>,
    pub qop: Option<Qop>,
    pub opaque: Option<String>,
}

impl FromStr for Credentials {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = None;
        let mut cnonce = None;
        let mut nc = None;
        let mut qop = None;
        let mut opaque = None;
        for (name, value) in parse_params(s)? {
            let slot = match name.as_str() {
                "username" => &mut username,
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "uri" => &mut uri,
                "response" => &mut response,
                "algorithm" => &mut algorithm,
                "cnonce" => &mut cnonce,
                "nc" => &mut nc,
                "qop" => &mut qop,
                "opaque" => &mut opaque,
                _ => continue,
            };
            set_once(slot, name, value)?;
        }
        Ok(Credentials {
            username: username.ok_or(DigestError::MissingParam("username"))?,
            realm: realm.ok_or(DigestError::MissingParam("realm"))?,
            nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
            uri: uri.ok_or(DigestError::MissingParam("uri"))?,
            response: response.ok_or(DigestError::MissingParam("response"))?,
            algorithm: algorithm.map(|a| a.parse()).transpose()?,
            cnonce,
            nc: nc.map(|n| parse_nc(&n)).transpose()?,
            qop: qop.map(|q| q.trim().parse()).transpose()?,
            opaque,
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response)
        )?;
        if let Some(algorithm) = self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        // RFC 2617 makes qop and nc tokens here, and some servers reject them quoted.
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

/// Builds the credentials answering `challenge` for one request.
///
/// `cnonce` must be unpredictable and `nc` must grow by one for every request made with the
/// same nonce; both are the caller's state so that this function stays pure. `body` only
/// matters when the challenge offers nothing but `auth-int`.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    body: &[u8],
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, DigestError> {
    // Display drops control characters, so the hash would no longer match what is sent.
    for (field, value) in [
        ("method", method),
        ("uri", uri),
        ("username", username),
        ("cnonce", cnonce),
    ] {
        if value.chars().any(is_forbidden_ctl) {
            return Err(DigestError::InvalidValue {
                field,
                reason: "contains control characters",
            });
        }
    }
    // auth is preferred: auth-int would force hashing bodies that proxies may rewrite.
    let qop = if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else if challenge.qop.contains(&Qop::AuthInt) {
        Some(Qop::AuthInt)
    } else {
        None
    };
    let algorithm = challenge.algorithm.unwrap_or_default();
    let needs_cnonce = qop.is_some() || algorithm.is_sess();
    if needs_cnonce && cnonce.is_empty() {
        return Err(DigestError::InvalidValue {
            field: "cnonce",
            reason: "must not be empty",
        });
    }
    if qop.is_some() && nc == 0 {
        return Err(DigestError::InvalidNonceCount(format!("{nc:08x}")));
    }
    let mut creds = Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response: String::new(),
        algorithm: challenge.algorithm,
        cnonce: needs_cnonce.then(|| cnonce.to_owned()),
        nc: qop.map(|_| nc),
        qop,
        opaque: challenge.opaque.clone(),
    };
    creds.response = compute_response(&creds, method, password, body)?;
    Ok(creds)
}

/// Issues and validates stateless server nonces for one realm.
///
/// A nonce is `hex(issue time) || hex(random salt) || hex(truncated HMAC-SHA256)`, the MAC
/// covering realm, time and salt. Verification therefore needs only the secret, which lets
/// every slotgate node check nonces issued by any other and tell stale ones from forged ones.
#[derive(Clone)]
pub struct NonceIssuer {
    realm: String,
    secret: Vec<u8>,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret must never reach logs.
        f.debug_struct("NonceIssuer")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    pub fn new(realm: impl Into<String>, secret: impl AsRef<[u8]>) -> Result<Self, DigestError> {
        let realm = realm.into();
        if realm.chars().any(is_forbidden_ctl) {
            return Err(DigestError::InvalidValue {
                field: "realm",
                reason: "contains control characters",
            });
        }
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(DigestError::WeakSecret);
        }
        Ok(NonceIssuer {
            realm,
            secret: secret.to_vec(),
        })
    }

    /// For a single node; a cluster must share a configured secret instead.
    pub fn with_random_secret(realm: impl Into<String>) -> Result<Self, DigestError> {
        Self::new(realm, rand::random::<[u8; 32]>())
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn issue(&self, now_unix_secs: u64) -> String {
        // Random rather than a counter, so that nodes need no coordination to stay unique.
        self.issue_with_salt(now_unix_secs, rand::random())
    }

    fn issue_with_salt(&self, now_unix_secs: u64, salt: [u8; 8]) -> String {
        let ts = format!("{now_unix_secs:016x}");
        let salt = hex::encode(salt);
        let mac = self.mac(&ts, &salt);
        format!("{ts}{salt}{}", hex::encode(&mac[..NONCE_MAC_LEN]))
    }

    fn mac(&self, ts_hex: &str, salt_hex: &str) -> [u8; 32] {
        hmac_sha256(
            &self.secret,
            &[
                NONCE_MAC_CONTEXT,
                self.realm.as_bytes(),
                b"\0",
                ts_hex.as_bytes(),
                salt_hex.as_bytes(),
            ],
        )
    }

    /// Returns the issue time of a nonce this issuer (or a peer with the same secret) made.
    fn issued_at(&self, nonce: &str) -> Result<u64, DigestError> {
        let well_formed = nonce.len() == NONCE_LEN
            && nonce
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(DigestError::UnknownNonce);
        }
        let (ts_hex, rest) = nonce.split_at(NONCE_TS_HEX);
        let (salt_hex, mac_hex) = rest.split_at(NONCE_SALT_HEX);
        let expected = hex::encode(&self.mac(ts_hex, salt_hex)[..NONCE_MAC_LEN]);
        if !ct_eq(expected.as_bytes(), mac_hex.as_bytes()) {
            return Err(DigestError::UnknownNonce);
        }
        u64::from_str_radix(ts_hex, 16).map_err(|_| DigestError::UnknownNonce)
    }
}

/// A fresh challenge for `issuer`'s realm, offering qop="auth".
///
/// The realm comes from the issuer so that the challenge and [`verify`] can never disagree.
pub fn challenge(
    issuer: &NonceIssuer,
    now_unix_secs: u64,
    algorithm: Algorithm,
    stale: bool,
) -> Challenge {
    Challenge {
        realm: issuer.realm.clone(),
        nonce: issuer.issue(now_unix_secs),
        opaque: None,
        algorithm: Some(algorithm),
        qop: vec![Qop::Auth],
        stale,
    }
}

/// Checks credentials against the expected password.
///
/// The response is checked before freshness, so [`DigestError::Stale`] (answer with a new
/// challenge carrying stale=TRUE) is only reported to a client that knows the password, as
/// RFC 7616 §3.3 asks. Replay protection needs state and lives in [`NonceCounter`]. The caller
/// remains responsible for matching `creds.uri` to the Request-URI and `creds.algorithm` to the
/// one it offered, as neither is known here.
pub fn verify(
    creds: &Credentials,
    method: &str,
    password: &str,
    body: &[u8],
    issuer: &NonceIssuer,
    now_unix_secs: u64,
    max_age_secs: u64,
) -> Result<(), DigestError> {
    let issued_at = issuer.issued_at(&creds.nonce)?;
    if creds.realm != issuer.realm {
        return Err(DigestError::RealmMismatch {
            expected: issuer.realm.clone(),
            got: creds.realm.clone(),
        });
    }
    match (creds.qop, creds.nc, &creds.cnonce) {
        (Some(_), None, _) => return Err(DigestError::MissingParam("nc")),
        (Some(_), _, None) => return Err(DigestError::MissingParam("cnonce")),
        (None, Some(_), _) => return Err(DigestError::QopMismatch("nc sent without qop")),
        (Some(_), Some(0), _) => {
            return Err(DigestError::InvalidNonceCount(format!("{:08x}", 0)));
        }
        _ => {}
    }
    let expected = compute_response(creds, method, password, body)?;
    let got = creds.response.to_ascii_lowercase();
    if !ct_eq(expected.as_bytes(), got.as_bytes()) {
        return Err(DigestError::ResponseMismatch);
    }
    // A nonce dated far in the future means a peer's clock is off; a fresh one repairs that.
    let too_old = now_unix_secs.saturating_sub(issued_at) > max_age_secs;
    let too_new = issued_at.saturating_sub(now_unix_secs) > max_age_secs;
    if too_old || too_new {
        return Err(DigestError::Stale);
    }
    Ok(())
}

/// Remembers the highest nc seen per nonce, to refuse replayed requests.
///
/// Bounded so that memory cannot grow without limit: beyond `capacity` nonces the oldest is
/// forgotten, after which that nonce could be replayed until it goes stale. Size it above the
/// number of nonces in use within the verify `max_age`. Call [`NonceCounter::check`] only after
/// [`verify`] succeeded, so that unauthenticated traffic cannot evict entries.
#[derive(Debug, Clone)]
pub struct NonceCounter {
    capacity: usize,
    last_nc: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl NonceCounter {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        NonceCounter {
            capacity,
            last_nc: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
        }
    }

    /// Accepts `creds` only if its nc is higher than any seen for its nonce, and records it.
    ///
    /// Credentials without qop carry no nc, so their nonce is accepted once only.
    pub fn check(&mut self, creds: &Credentials) -> Result<(), DigestError> {
        let nc = creds.nc.unwrap_or(0);
        if let Some(last) = self.last_nc.get_mut(&creds.nonce) {
            if nc <= *last {
                return Err(DigestError::Replay(nc));
            }
            *last = nc;
            return Ok(());
        }
        while self.last_nc.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.last_nc.remove(&oldest);
                }
                None => break,
            }
        }
        self.last_nc.insert(creds.nonce.clone(), nc);
        self.order.push_back(creds.nonce.clone());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.last_nc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_nc.is_empty()
    }
}

/// The request-digest of RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1, shared by both sides so that
/// they cannot drift apart.
fn compute_response(
    creds: &Credentials,
    method: &str,
    password: &str,
    body: &[u8],
) -> Result<String, DigestError> {
    let alg = creds.algorithm.unwrap_or_default();
    let mut ha1 = alg.h(&[
        creds.username.as_bytes(),
        creds.realm.as_bytes(),
        password.as_bytes(),
    ]);
    if alg.is_sess() {
        let cnonce = creds
            .cnonce
            .as_deref()
            .ok_or(DigestError::MissingParam("cnonce"))?;
        ha1 = alg.h(&[ha1.as_bytes(), creds.nonce.as_bytes(), cnonce.as_bytes()]);
    }
    let ha2 = match creds.qop {
        Some(Qop::AuthInt) => {
            let body_hash = alg.h(&[body]);
            alg.h(&[
                method.as_bytes(),
                creds.uri.as_bytes(),
                body_hash.as_bytes(),
            ])
        }
        _ => alg.h(&[method.as_bytes(), creds.uri.as_bytes()]),
    };
    let Some(qop) = creds.qop else {
        return Ok(alg.h(&[ha1.as_bytes(), creds.nonce.as_bytes(), ha2.as_bytes()]));
    };
    let nc = creds.nc.ok_or(DigestError::MissingParam("nc"))?;
    let cnonce = creds
        .cnonce
        .as_deref()
        .ok_or(DigestError::MissingParam("cnonce"))?;
    // The RFC grammar makes nc lowercase hex, so that is the form both sides hash.
    let nc = format!("{nc:08x}");
    Ok(alg.h(&[
        ha1.as_bytes(),
        creds.nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        qop.as_str().as_bytes(),
        ha2.as_bytes(),
    ]))
}

fn set_once(slot: &mut Option<String>, name: String, value: String) -> Result<(), DigestError> {
    // Two differing values would let a proxy and this code authenticate different things.
    if slot.is_some() {
        return Err(DigestError::DuplicateParam(name));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_qop_list(raw: &str) -> Result<Vec<Qop>, DigestError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(|t| t.trim_matches(is_lws)) {
        // Unknown options such as auth-conf are skipped: we can still answer with another.
        if let Ok(qop) = item.parse::<Qop>() {
            if !out.contains(&qop) {
                out.push(qop);
            }
        }
    }
    if out.is_empty() {
        return Err(DigestError::UnsupportedQop(raw.to_owned()));
    }
    Ok(out)
}

fn parse_nc(raw: &str) -> Result<u32, DigestError> {
    let err = || DigestError::InvalidNonceCount(raw.to_owned());
    if raw.len() != 8 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err());
    }
    u32::from_str_radix(raw, 16).map_err(|_| err())
}

/// Splits `Digest name=value, ...` into lowercase names and unescaped values.
fn parse_params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
    let start = input.len() - input.trim_start_matches(is_lws).len();
    let rest = input.get(start..).unwrap_or("");
    let scheme_len = rest.find(is_lws).unwrap_or(rest.len());
    let scheme = rest.get(..scheme_len).unwrap_or("");
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest(scheme.to_owned()));
    }
    let mut p = Parser {
        s: input,
        pos: start + scheme_len,
    };
    let mut out = Vec::new();
    loop {
        // Empty list elements are legal in the #rule of RFC 7230 §7.
        p.take_while(|c| is_lws(c) || c == ',');
        if p.at_end() {
            break;
        }
        let name = p.take_while(is_tchar);
        if name.is_empty() {
            return Err(p.err("expected a parameter name"));
        }
        p.take_while(is_lws);
        if !p.eat('=') {
            return Err(p.err("expected '=' after a parameter name"));
        }
        p.take_while(is_lws);
        let value = if p.eat('"') {
            p.quoted()?
        } else {
            // Looser than RFC token on purpose: unquoted base64 nonces ("abc==") are common.
            let token =
                p.take_while(|c| !is_lws(c) && c != ',' && c != '"' && !is_forbidden_ctl(c));
            if token.is_empty() {
                return Err(p.err("expected a parameter value"));
            }
            token.to_owned()
        };
        out.push((name.to_ascii_lowercase(), value));
        p.take_while(is_lws);
        if !p.at_end() && !p.eat(',') {
            return Err(p.err("expected ',' between parameters"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        if self.peek() == Some(want) {
            self.pos += want.len_utf8();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !pred(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn err(&self, reason: &'static str) -> DigestError {
        DigestError::Malformed {
            at: self.pos,
            reason,
        }
    }

    /// Reads the rest of a quoted-string whose opening quote was consumed.
    fn quoted(&mut self) -> Result<String, DigestError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err("unterminated quoted string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) if !is_forbidden_ctl(c) => out.push(c),
                    _ => return Err(self.err("invalid escape in quoted string")),
                },
                Some(c) if is_forbidden_ctl(c) => {
                    return Err(self.err("control character in quoted string"));
                }
                Some(c) => out.push(c),
            }
        }
    }
}

/// Renders a quoted-string. Control characters are dropped because SIP's quoted-pair cannot
/// carry CR or LF, and emitting them raw would let a value inject header lines.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
                f.write_char(c)?;
            } else if !is_forbidden_ctl(c) {
                f.write_char(c)?;
            }
        }
        f.write_char('"')
    }
}

/// Linear whitespace, including CR/LF so that folded header lines still parse.
fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_forbidden_ctl(c: char) -> bool {
    c.is_control() && c != '\t'
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`; small enough to carry here
/// rather than take another dependency.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;
    const MAX_AGE: u64 = 300;

    const RFC2617_CHALLENGE: &str = "Digest\r\n realm=\"testrealm@host.com\",\r\n \
        qop=\"auth,auth-int\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    const RFC2617_AUTHORIZATION: &str = "Digest username=\"Mufasa\", \
        realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
        uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
        response=\"6629fae49393a05397450978507c4ef1\", \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    fn rfc7616_challenge(algorithm: &str) -> Challenge {
        format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        )
        .parse()
        .unwrap()
    }

    fn rfc7616_answer(algorithm: &str) -> Credentials {
        answer(
            &rfc7616_challenge(algorithm),
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            b"",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        )
        .unwrap()
    }

    fn rfc2617_answer(challenge: &Challenge) -> Credentials {
        answer(
            challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            b"",
            "0a4f113b",
            1,
        )
        .unwrap()
    }

    fn issuer() -> NonceIssuer {
        NonceIssuer::new("slotgate.example", SECRET).unwrap()
    }

    /// A PBX answering our challenge for an INVITE.
    fn pbx_creds(issuer: &NonceIssuer, algorithm: Algorithm, nc: u32) -> Credentials {
        let ch = challenge(issuer, NOW, algorithm, false);
        answer(
            &ch,
            "INVITE",
            "sip:+15551234567@trunk.example",
            "pbx1",
            "s3cret",
            b"v=0\r\n",
            "c0ffee",
            nc,
        )
        .unwrap()
    }

    fn check(creds: &Credentials, password: &str, now: u64) -> Result<(), DigestError> {
        verify(
            creds,
            "INVITE",
            password,
            b"v=0\r\n",
            &issuer(),
            now,
            MAX_AGE,
        )
    }

    #[test]
    fn rfc2617_example() {
        let ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        assert_eq!(ch.realm, "testrealm@host.com");
        assert_eq!(ch.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(ch.algorithm, None);
        let creds = rfc2617_answer(&ch);
        assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(creds.qop, Some(Qop::Auth));
        assert_eq!(creds.nc, Some(1));
        let from_rfc: Credentials = RFC2617_AUTHORIZATION.parse().unwrap();
        assert_eq!(creds, from_rfc);
    }

    #[test]
    fn rfc7616_sha256_example() {
        let creds = rfc7616_answer("SHA-256");
        assert_eq!(
            creds.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let header = creds.to_string();
        assert!(header.contains("algorithm=SHA-256"), "{header}");
        assert!(header.contains(", qop=auth, nc=00000001"), "{header}");
        assert!(
            header.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""),
            "{header}"
        );
    }

    #[test]
    fn rfc7616_md5_example() {
        assert_eq!(
            rfc7616_answer("MD5").response,
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_authorization_header_recomputes() {
        let header = "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
            uri=\"/dir/index.html\", algorithm=SHA-256, \
            nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
            cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
            response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
            opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let creds: Credentials = header.parse().unwrap();
        let expected = compute_response(&creds, "GET", "Circle of Life", b"").unwrap();
        assert_eq!(expected, creds.response);
    }

    // Expected values below were computed independently from the RFC 2617 / 7616 formulas.
    #[test]
    fn sess_variants_match_independent_computation() {
        let mut ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        ch.algorithm = Some(Algorithm::Md5Sess);
        assert_eq!(
            rfc2617_answer(&ch).response,
            "8e3825c57e897f5a0dec6c2d4e5059d0"
        );
        assert_eq!(
            rfc7616_answer("SHA-256-sess").response,
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"
        );
    }

    #[test]
    fn auth_int_hashes_the_body() {
        let mut ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        ch.qop = vec![Qop::AuthInt];
        let answer_for = |body: &[u8]| {
            answer(
                &ch,
                "INVITE",
                "sip:bob@example.com",
                "Mufasa",
                "Circle Of Life",
                body,
                "0a4f113b",
                1,
            )
            .unwrap()
        };
        let creds = answer_for(b"v=0\r\n");
        assert_eq!(creds.qop, Some(Qop::AuthInt));
        assert_eq!(creds.response, "6a6e449f512a9f3e11597febd92718ea");
        assert_ne!(answer_for(b"v=1\r\n").response, creds.response);
    }

    #[test]
    fn no_qop_gives_rfc2069_response() {
        let mut ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        ch.qop.clear();
        let creds = rfc2617_answer(&ch);
        assert_eq!(creds.response, "670fd8c2df070c60b045671b8b24ff02");
        assert_eq!(
            (creds.qop, creds.nc, creds.cnonce.as_deref()),
            (None, None, None)
        );
        let header = creds.to_string();
        assert!(!header.contains("qop="), "{header}");
        assert!(!header.contains("nc="), "{header}");
        assert!(!header.contains("cnonce="), "{header}");
    }

    #[test]
    fn sess_without_qop_still_sends_cnonce() {
        let mut ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        ch.qop.clear();
        ch.algorithm = Some(Algorithm::Md5Sess);
        let creds = rfc2617_answer(&ch);
        assert_eq!(creds.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(creds.nc, None);
    }

    #[test]
    fn answer_rejects_bad_inputs() {
        let ch: Challenge = RFC2617_CHALLENGE.parse().unwrap();
        let run = |uri: &str, cnonce: &str, nc: u32| {
            answer(&ch, "GET", uri, "Mufasa", "pw", b"", cnonce, nc)
        };
        assert!(matches!(
            run("/x\r\nVia: evil", "abc", 1),
            Err(DigestError::InvalidValue { field: "uri", .. })
        ));
        assert!(matches!(
            run("/x", "", 1),
            Err(DigestError::InvalidValue {
                field: "cnonce",
                ..
            })
        ));
        assert!(matches!(
            run("/x", "abc", 0),
            Err(DigestError::InvalidNonceCount(_))
        ));
    }

    #[test]
    fn unsupported_algorithm_is_an_error() {
        let err = "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"
            .parse::<Challenge>()
            .unwrap_err();
        assert_eq!(
            err,
            DigestError::UnsupportedAlgorithm("SHA-512-256".to_owned())
        );
        assert!(err.to_string().contains("SHA-512-256"));
    }

    #[test]
    fn qop_lists_in_any_spacing() {
        let cases: &[(&str, &[Qop])] = &[
            ("qop=\"auth,auth-int\"", &[Qop::Auth, Qop::AuthInt]),
            ("qop=\"auth-int, auth\"", &[Qop::AuthInt, Qop::Auth]),
            ("qop=\"auth\"", &[Qop::Auth]),
            ("qop=auth", &[Qop::Auth]),
            ("qop=\"  auth ,\tauth-int  \"", &[Qop::Auth, Qop::AuthInt]),
            ("qop=\"AUTH-INT\"", &[Qop::AuthInt]),
            ("qop=\"auth-conf,auth\"", &[Qop::Auth]),
            ("qop=\"auth,,auth\"", &[Qop::Auth]),
        ];
        for (param, want) in cases {
            let ch: Challenge = format!("Digest realm=\"r\", {param}, nonce=\"n\"")
                .parse()
                .unwrap();
            assert_eq!(ch.qop, *want, "{param}");
        }
        assert!(matches!(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"".parse::<Challenge>(),
            Err(DigestError::UnsupportedQop(_))
        ));
    }

    #[test]
    fn algorithm_spellings() {
        let cases = [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("md5-SESS", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("sha-256", Algorithm::Sha256),
            ("SHA256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("SHA256-sess", Algorithm::Sha256Sess),
            ("\"SHA-256\"", Algorithm::Sha256),
        ];
        for (text, want) in cases {
            let ch: Challenge = format!("Digest realm=\"r\", nonce=\"n\", algorithm={text}")
                .parse()
                .unwrap();
            assert_eq!(ch.algorithm, Some(want), "{text}");
        }
        assert_eq!(Algorithm::Sha256Sess.to_string(), "SHA-256-sess");
    }

    #[test]
    fn lenient_syntax() {
        let ch: Challenge =
            "  dIgEsT   ReAlM = x ,NONCE=\"y\",, Stale=true , domain=\"sip:a sip:b\", foo=bar"
                .parse()
                .unwrap();
        assert_eq!(ch.realm, "x");
        assert_eq!(ch.nonce, "y");
        assert!(ch.stale);
        assert!(ch.qop.is_empty());
        let unquoted: Challenge = "Digest realm=r, nonce=abc/def==".parse().unwrap();
        assert_eq!(unquoted.nonce, "abc/def==");
        let not_stale: Challenge = "Digest realm=r, nonce=n, stale=FALSE".parse().unwrap();
        assert!(!not_stale.stale);
    }

    #[test]
    fn quoted_string_escapes() {
        let ch: Challenge = r#"Digest realm="a \"quoted\" \\ r\ealm, with comma", nonce="n\"1""#
            .parse()
            .unwrap();
        assert_eq!(ch.realm, r#"a "quoted" \ realm, with comma"#);
        assert_eq!(ch.nonce, "n\"1");
        let back: Challenge = ch.to_string().parse().unwrap();
        assert_eq!(back, ch);
    }

    #[test]
    fn display_formats() {
        let ch = Challenge {
            realm: "slotgate.example".into(),
            nonce: "abc".into(),
            opaque: Some("o".into()),
            algorithm: Some(Algorithm::Sha256Sess),
            qop: vec![Qop::Auth, Qop::AuthInt],
            stale: true,
        };
        assert_eq!(
            ch.to_string(),
            "Digest realm=\"slotgate.example\", nonce=\"abc\", opaque=\"o\", \
             algorithm=SHA-256-sess, qop=\"auth,auth-int\", stale=TRUE"
        );
        let creds: Credentials = RFC2617_AUTHORIZATION.parse().unwrap();
        assert_eq!(
            creds.to_string(),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn display_never_emits_raw_line_breaks() {
        let ch = Challenge {
            realm: "evil\r\nVia: x".into(),
            nonce: "n".into(),
            opaque: None,
            algorithm: None,
            qop: vec![],
            stale: false,
        };
        let header = ch.to_string();
        assert!(!header.contains('\r') && !header.contains('\n'), "{header}");
    }

    #[test]
    fn round_trips() {
        let challenges = [
            challenge(&issuer(), NOW, Algorithm::Sha256, true),
            rfc7616_challenge("SHA-256-sess"),
            RFC2617_CHALLENGE.parse().unwrap(),
        ];
        for ch in challenges {
            assert_eq!(ch.to_string().parse::<Challenge>().unwrap(), ch);
        }
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ] {
            let creds = pbx_creds(&issuer(), alg, 7);
            let back: Credentials = creds.to_string().parse().unwrap();
            assert_eq!(back, creds);
            check(&back, "s3cret", NOW).unwrap();
        }
    }

    #[test]
    fn credentials_parse_details() {
        let quoted_qop = RFC2617_AUTHORIZATION.replace("qop=auth", "qop=\"auth\"");
        assert_eq!(
            quoted_qop.parse::<Credentials>().unwrap().qop,
            Some(Qop::Auth)
        );
        let upper_nc = RFC2617_AUTHORIZATION.replace("nc=00000001", "NC=0000001A");
        assert_eq!(upper_nc.parse::<Credentials>().unwrap().nc, Some(0x1a));
        for bad in ["1", "0000000g", "000000001", "+0000001"] {
            let text = RFC2617_AUTHORIZATION.replace("00000001", bad);
            assert!(
                matches!(
                    text.parse::<Credentials>(),
                    Err(DigestError::InvalidNonceCount(_))
                ),
                "{bad}"
            );
        }
        let missing = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"/\"";
        assert_eq!(
            missing.parse::<Credentials>(),
            Err(DigestError::MissingParam("response"))
        );
        let twice = format!("{RFC2617_AUTHORIZATION}, Realm=\"other\"");
        assert_eq!(
            twice.parse::<Credentials>(),
            Err(DigestError::DuplicateParam("realm".to_owned()))
        );
    }

    #[test]
    fn non_digest_scheme_is_rejected() {
        assert_eq!(
            "Basic realm=\"x\"".parse::<Challenge>(),
            Err(DigestError::NotDigest("Basic".to_owned()))
        );
        assert_eq!(
            "".parse::<Credentials>(),
            Err(DigestError::NotDigest(String::new()))
        );
        assert_eq!(
            "Digest nonce=\"n\"".parse::<Challenge>(),
            Err(DigestError::MissingParam("realm"))
        );
    }

    #[test]
    fn sess_differs_from_plain_and_verifies() {
        let md5 = pbx_creds(&issuer(), Algorithm::Md5, 1);
        let md5_sess = pbx_creds(&issuer(), Algorithm::Md5Sess, 1);
        let sha = pbx_creds(&issuer(), Algorithm::Sha256, 1);
        let sha_sess = pbx_creds(&issuer(), Algorithm::Sha256Sess, 1);
        // Same nonce for both, so only the -sess HA1 can make the difference.
        let mut md5_same_nonce = md5.clone();
        md5_same_nonce.nonce = md5_sess.nonce.clone();
        md5_same_nonce.response =
            compute_response(&md5_same_nonce, "INVITE", "s3cret", b"").unwrap();
        assert_ne!(md5_same_nonce.response, md5_sess.response);
        assert_eq!(md5_sess.response.len(), 32);
        assert_eq!(sha_sess.response.len(), 64);
        for creds in [&md5, &md5_sess, &sha, &sha_sess] {
            check(creds, "s3cret", NOW).unwrap();
        }
        let mut no_cnonce = md5_sess.clone();
        no_cnonce.qop = None;
        no_cnonce.nc = None;
        no_cnonce.cnonce = None;
        assert_eq!(
            check(&no_cnonce, "s3cret", NOW),
            Err(DigestError::MissingParam("cnonce"))
        );
    }

    #[test]
    fn verify_accepts_until_max_age() {
        let creds = pbx_creds(&issuer(), Algorithm::Sha256, 1);
        assert_eq!(check(&creds, "s3cret", NOW + MAX_AGE), Ok(()));
        assert_eq!(
            check(&creds, "s3cret", NOW + MAX_AGE + 1),
            Err(DigestError::Stale)
        );
        assert_eq!(
            check(&creds, "s3cret", NOW - MAX_AGE - 1),
            Err(DigestError::Stale)
        );
    }

    #[test]
    fn verify_rejects_wrong_password() {
        let creds = pbx_creds(&issuer(), Algorithm::Md5, 1);
        assert_eq!(
            check(&creds, "guess", NOW),
            Err(DigestError::ResponseMismatch)
        );
        // Stale must not be reported unless the password was right.
        assert_eq!(
            check(&creds, "guess", NOW + 10 * MAX_AGE),
            Err(DigestError::ResponseMismatch)
        );
    }

    #[test]
    fn verify_rejects_wrong_realm() {
        let mut creds = pbx_creds(&issuer(), Algorithm::Md5, 1);
        creds.realm = "other.example".into();
        assert!(matches!(
            check(&creds, "s3cret", NOW),
            Err(DigestError::RealmMismatch { .. })
        ));
    }

    #[test]
    fn verify_rejects_tampering() {
        let creds = pbx_creds(&issuer(), Algorithm::Sha256, 1);
        let mut uri = creds.clone();
        uri.uri = "sip:+19005550000@trunk.example".into();
        assert_eq!(
            check(&uri, "s3cret", NOW),
            Err(DigestError::ResponseMismatch)
        );
        let mut nc = creds.clone();
        nc.nc = Some(2);
        assert_eq!(
            check(&nc, "s3cret", NOW),
            Err(DigestError::ResponseMismatch)
        );
        assert_eq!(
            verify(&creds, "BYE", "s3cret", b"", &issuer(), NOW, MAX_AGE),
            Err(DigestError::ResponseMismatch)
        );
        let mut upper = creds.clone();
        upper.response = creds.response.to_ascii_uppercase();
        assert_eq!(check(&upper, "s3cret", NOW), Ok(()));
    }

    #[test]
    fn verify_rejects_foreign_and_forged_nonces() {
        let foreign = NonceIssuer::new("slotgate.example", b"another secret, 16+ bytes").unwrap();
        let creds = pbx_creds(&foreign, Algorithm::Md5, 1);
        assert_eq!(check(&creds, "s3cret", NOW), Err(DigestError::UnknownNonce));
        let other_realm = NonceIssuer::new("elsewhere.example", SECRET).unwrap();
        let mut creds = pbx_creds(&other_realm, Algorithm::Md5, 1);
        creds.realm = "slotgate.example".into();
        assert_eq!(check(&creds, "s3cret", NOW), Err(DigestError::UnknownNonce));
        // Moving the timestamp forward must not revive a stale nonce.
        let nonce = issuer().issue(NOW);
        let mut forged = format!("{:016x}", NOW + 10 * MAX_AGE);
        forged.push_str(&nonce[NONCE_TS_HEX..]);
        for bad in [
            forged.as_str(),
            "",
            "xyz",
            &nonce.to_ascii_uppercase(),
            &nonce[1..],
        ] {
            assert_eq!(
                issuer().issued_at(bad),
                Err(DigestError::UnknownNonce),
                "{bad}"
            );
        }
        assert_eq!(issuer().issued_at(&nonce), Ok(NOW));
    }

    #[test]
    fn verify_checks_qop_consistency() {
        let creds = pbx_creds(&issuer(), Algorithm::Md5, 1);
        let mut no_cnonce = creds.clone();
        no_cnonce.cnonce = None;
        assert_eq!(
            check(&no_cnonce, "s3cret", NOW),
            Err(DigestError::MissingParam("cnonce"))
        );
        let mut no_nc = creds.clone();
        no_nc.nc = None;
        assert_eq!(
            check(&no_nc, "s3cret", NOW),
            Err(DigestError::MissingParam("nc"))
        );
        let mut nc_without_qop = creds.clone();
        nc_without_qop.qop = None;
        assert!(matches!(
            check(&nc_without_qop, "s3cret", NOW),
            Err(DigestError::QopMismatch(_))
        ));
        let mut zero = creds.clone();
        zero.nc = Some(0);
        assert!(matches!(
            check(&zero, "s3cret", NOW),
            Err(DigestError::InvalidNonceCount(_))
        ));
    }

    #[test]
    fn nonce_counter_rejects_replay() {
        let issuer = issuer();
        let ch = challenge(&issuer, NOW, Algorithm::Sha256, false);
        let creds_nc =
            |nc| answer(&ch, "INVITE", "sip:x@y", "pbx1", "s3cret", b"", "cn", nc).unwrap();
        let mut counter = NonceCounter::new(16);
        counter.check(&creds_nc(1)).unwrap();
        assert_eq!(counter.check(&creds_nc(1)), Err(DigestError::Replay(1)));
        counter.check(&creds_nc(3)).unwrap();
        assert_eq!(counter.check(&creds_nc(2)), Err(DigestError::Replay(2)));
        counter.check(&creds_nc(4)).unwrap();

        let mut legacy = creds_nc(1);
        legacy.nonce = issuer.issue(NOW);
        legacy.qop = None;
        legacy.nc = None;
        counter.check(&legacy).unwrap();
        assert_eq!(counter.check(&legacy), Err(DigestError::Replay(0)));
    }

    #[test]
    fn nonce_counter_is_bounded() {
        let mut counter = NonceCounter::new(2);
        let creds = |nonce: &str| {
            let mut c: Credentials = RFC2617_AUTHORIZATION.parse().unwrap();
            c.nonce = nonce.to_owned();
            c
        };
        for nonce in ["a", "b", "c"] {
            counter.check(&creds(nonce)).unwrap();
        }
        assert_eq!(counter.len(), 2);
        assert_eq!(counter.check(&creds("c")), Err(DigestError::Replay(1)));
        assert_eq!(counter.check(&creds("b")), Err(DigestError::Replay(1)));
        // "a" was the oldest and has been forgotten.
        counter.check(&creds("a")).unwrap();
        assert_eq!(counter.len(), 2);
    }

    #[test]
    fn issuer_guards() {
        assert_eq!(
            NonceIssuer::new("r", b"short").unwrap_err(),
            DigestError::WeakSecret
        );
        assert!(NonceIssuer::new("r\n", SECRET).is_err());
        let a = issuer().issue(NOW);
        let b = issuer().issue(NOW);
        assert_ne!(a, b);
        assert_eq!(a.len(), NONCE_LEN);
        assert!(!format!("{:?}", issuer()).contains("0123456789abcdef"));
        let ch = challenge(&issuer(), NOW, Algorithm::Md5, true);
        assert_eq!(ch.qop, vec![Qop::Auth]);
        assert!(ch.to_string().contains("stale=TRUE"));
        let random = NonceIssuer::with_random_secret("r").unwrap();
        assert_eq!(random.realm(), "r");
        assert_ne!(
            random.secret,
            NonceIssuer::with_random_secret("r").unwrap().secret
        );
    }

    #[test]
    fn hmac_matches_rfc4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mac = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn issued_nonce_is_deterministic_given_salt() {
        let nonce = issuer().issue_with_salt(NOW, [1; 8]);
        assert_eq!(&nonce[..NONCE_TS_HEX], format!("{NOW:016x}"));
        assert_eq!(
            &nonce[NONCE_TS_HEX..NONCE_TS_HEX + NONCE_SALT_HEX],
            "0101010101010101"
        );
        assert_eq!(nonce, issuer().issue_with_salt(NOW, [1; 8]));
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "",
            "Digest",
            "Digest ",
            "Digest =",
            "Digest realm",
            "Digest realm=",
            "Digest realm=\"",
            "Digest realm=\"abc\\",
            "Digest realm=\"a\"b\"",
            "Digest realm=\"\u{e9}\u{1F600}\", nonce=\u{e9}",
            "Digest realm=\"x\" nonce=\"y\"",
            "Digest ,,,,",
            "Digest realm=\"x\", nonce=\"y\", nc=ffffffff, qop=auth",
            "Digest \u{0}=\u{0}",
            "\u{1F600}",
            "Digest realm=x\u{7f}, nonce=y",
            "Digest realm=\"x\r\ny\", nonce=n",
        ];
        for s in samples {
            let _ = s.parse::<Challenge>();
            let _ = s.parse::<Credentials>();
        }
        // Cheap deterministic fuzzing: mutate valid headers so that many variants still parse.
        let alphabet: Vec<char> = "\"\\,= \t\r\nauth-intSHA256sess\u{e9}\u{1F600}\u{0}"
            .chars()
            .collect();
        let bases = [
            RFC2617_CHALLENGE.to_owned(),
            RFC2617_AUTHORIZATION.to_owned(),
            pbx_creds(&issuer(), Algorithm::Sha256Sess, 1).to_string(),
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % bound
        };
        let (mut challenges, mut credentials) = (0, 0);
        for i in 0..5000 {
            let mut chars: Vec<char> = bases[i % bases.len()].chars().collect();
            for _ in 0..=next(3) {
                let at = next(chars.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(3) {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = c,
                    _ => chars.push(c),
                }
            }
            let s: String = chars.into_iter().collect();
            if let Ok(ch) = s.parse::<Challenge>() {
                challenges += 1;
                assert_eq!(ch.to_string().parse::<Challenge>().unwrap(), ch, "{s:?}");
            }
            if let Ok(creds) = s.parse::<Credentials>() {
                credentials += 1;
                assert_eq!(
                    creds.to_string().parse::<Credentials>().unwrap(),
                    creds,
                    "{s:?}"
                );
                let _ = check(&creds, "s3cret", NOW);
            }
        }
        // Guards against the mutations becoming so destructive that nothing is exercised.
        assert!(
            challenges > 100 && credentials > 100,
            "{challenges} {credentials}"
        );
    }
}
