//! Typed configuration: the TOML file, overridden by `SLOTGATE_SECTION__KEY`
//! environment variables, checked once at start.
//!
//! The raw serde structs mirror the file; `Config::load` turns them into
//! validated values (socket addresses, CIDR blocks, enums) so the rest of the
//! code never re-parses a string. Every error names the key and what it
//! accepts, because a misconfigured telecom element must refuse to start
//! rather than half-work on live traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A configuration problem, always naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("config key `{key}`: {reason}")]
    Key { key: String, reason: String },
}

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What an INVITE from a source outside `pbx.allowed_sources` receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSourcePolicy {
    Reject,
    Ignore,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub sip: SipConfig,
    pub pbx: PbxConfig,
    pub trunk: TrunkConfig,
    pub store: StoreConfig,
    pub shutdown: ShutdownConfig,
    pub api: ApiConfig,
    pub crm: CrmConfig,
    pub log_level: String,
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    pub udp_listen: SocketAddr,
    pub tcp_listen: Option<SocketAddr>,
    /// host[:port] for Via and Contact.
    pub advertised_address: String,
    pub max_message_size: usize,
    pub user_agent: String,
}

#[derive(Debug, Clone)]
pub struct PbxUser {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct PbxConfig {
    pub allowed_sources: Vec<IpNet>,
    pub on_unknown_source: UnknownSourcePolicy,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    pub auth_enabled: bool,
    pub auth_realm: String,
    pub auth_sha256: bool,
    pub auth_users: Vec<PbxUser>,
}

#[derive(Debug, Clone)]
pub struct TrunkConfig {
    pub address: SocketAddr,
    pub transport: Transport,
    pub outbound_proxy: Option<SocketAddr>,
    pub domain: String,
    pub username: String,
    pub password: String,
    pub options_interval: Option<Duration>,
    pub carry_headers: Vec<String>,
}

impl TrunkConfig {
    /// Where requests toward the trunk are physically sent.
    pub fn next_hop(&self) -> SocketAddr {
        self.outbound_proxy.unwrap_or(self.address)
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

/// The enterprise HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `None`: the API is disabled.
    pub listen: Option<SocketAddr>,
    /// Largest request body accepted; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Bearer token of the admin routes; `None` disables them.
    pub admin_token: Option<String>,
    /// Copied from `crm.allow_private_webhook_urls`: the admin API checks
    /// webhook URLs when an enterprise is configured.
    pub allow_private_webhook_urls: bool,
}

/// Delivery of CRM webhooks (see `crate::crm`).
#[derive(Debug, Clone)]
pub struct CrmConfig {
    /// An event is parked as dead after this many failed attempts.
    pub max_attempts: u32,
    /// Ceiling of the wait after the first failure; it doubles with each
    /// further failure, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long one POST may take before it counts as failed.
    pub request_timeout: Duration,
    /// How often the outbox is scanned when nothing wakes the deliverer.
    pub poll_interval: Duration,
    /// Allow webhook URLs on loopback, link-local and private addresses.
    pub allow_private_webhook_urls: bool,
}

impl Default for CrmConfig {
    fn default() -> Self {
        let raw = RawCrm::default();
        CrmConfig {
            max_attempts: raw.max_attempts,
            backoff_initial: Duration::from_millis(raw.backoff_initial_ms),
            backoff_max: Duration::from_secs(raw.backoff_max_secs),
            request_timeout: Duration::from_millis(raw.request_timeout_ms),
            poll_interval: Duration::from_millis(raw.poll_interval_ms),
            allow_private_webhook_urls: raw.allow_private_webhook_urls,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShutdownConfig {
    pub retry_after_secs: u32,
    pub drain_timeout: Duration,
}

/// The file as written. Defaults here equal `config/slotgate.toml`, so a key
/// left out of a file means the documented default.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    sip: RawSip,
    pbx: RawPbx,
    trunk: RawTrunk,
    store: RawStore,
    shutdown: RawShutdown,
    api: RawApi,
    crm: RawCrm,
    log: RawLog,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSip {
    udp_listen: String,
    tcp_listen: String,
    advertised_address: String,
    max_message_size: u64,
    user_agent: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPbx {
    allowed_sources: Vec<String>,
    on_unknown_source: String,
    rate_limit: u32,
    rate_limit_burst: u32,
    auth_enabled: bool,
    auth_realm: String,
    auth_algorithm: String,
    auth_users: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTrunk {
    address: String,
    transport: String,
    outbound_proxy: String,
    domain: String,
    username: String,
    password: String,
    options_interval_secs: u64,
    carry_headers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    url: String,
    batch_size: u64,
    flush_interval_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawShutdown {
    retry_after_secs: u32,
    drain_timeout_secs: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    listen: String,
    max_body_bytes: u64,
    admin_token: String,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 65_536,
            admin_token: String::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCrm {
    max_attempts: u32,
    backoff_initial_ms: u64,
    backoff_max_secs: u64,
    request_timeout_ms: u64,
    poll_interval_ms: u64,
    allow_private_webhook_urls: bool,
}

impl Default for RawCrm {
    fn default() -> Self {
        RawCrm {
            max_attempts: 12,
            backoff_initial_ms: 5_000,
            backoff_max_secs: 3_600,
            request_timeout_ms: 10_000,
            poll_interval_ms: 1_000,
            allow_private_webhook_urls: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            udp_listen: "127.0.0.1:5060".into(),
            tcp_listen: "127.0.0.1:5060".into(),
            advertised_address: String::new(),
            max_message_size: 65535,
            user_agent: "slotgate".into(),
        }
    }
}

impl Default for RawPbx {
    fn default() -> Self {
        RawPbx {
            allowed_sources: vec!["127.0.0.0/8".into(), "::1/128".into()],
            on_unknown_source: "reject".into(),
            rate_limit: 0,
            rate_limit_burst: 0,
            auth_enabled: false,
            auth_realm: "slotgate".into(),
            auth_algorithm: "MD5".into(),
            auth_users: Vec::new(),
        }
    }
}

impl Default for RawTrunk {
    fn default() -> Self {
        RawTrunk {
            address: "127.0.0.1:5080".into(),
            transport: "udp".into(),
            outbound_proxy: String::new(),
            domain: String::new(),
            username: String::new(),
            password: String::new(),
            options_interval_secs: 30,
            carry_headers: Vec::new(),
        }
    }
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            url: "sqlite://slotgate.db".into(),
            batch_size: 200,
            flush_interval_ms: 200,
        }
    }
}

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown {
            retry_after_secs: 30,
            drain_timeout_secs: 30,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads `path`, applies `SLOTGATE_*` overrides and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let figment = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::file(path))
            .merge(
                // Only SECTION__KEY variables are configuration; others that
                // share the prefix (a test harness's, say) are not ours.
                Env::prefixed("SLOTGATE_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            );
        Self::from_figment(figment)
    }

    /// Parses a TOML document (no environment); used by tests and tools.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let figment =
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(text));
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                "(file)".to_string()
            } else {
                e.path.join(".")
            };
            key_error(&key, e.kind.to_string())
        })?;
        raw.validate()
    }
}

fn parse_socket(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        key_error(
            key,
            format!("`{value}` is not an IP:port address (e.g. 127.0.0.1:5060 or [::1]:5060)"),
        )
    })
}

/// A peer address: `IP:port`, or `host:port` resolved once, here, at start.
/// The SIP path itself never waits on DNS.
fn resolve_peer(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.trim().parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let value = value.trim();
    if !is_host_port(value) || !value.contains(':') {
        return Err(key_error(
            key,
            format!("`{value}` is not host:port or IP:port (e.g. sbc.example.com:5060)"),
        ));
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| key_error(key, format!("`{value}` does not resolve to an address")))
}

fn resolve_optional_peer(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        resolve_peer(key, value).map(Some)
    }
}

fn parse_source(key: &str, value: &str) -> Result<IpNet, ConfigError> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    value
        .parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| {
            key_error(
                key,
                format!("`{value}` is not an IP address or CIDR block (e.g. 10.0.0.0/24)"),
            )
        })
}

/// A host[:port] token safe to write into Via and Contact.
fn is_host_port(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let udp_listen = parse_socket("sip.udp_listen", &self.sip.udp_listen)?;
        let tcp_listen = if self.sip.tcp_listen.trim().is_empty() {
            None
        } else {
            Some(parse_socket("sip.tcp_listen", &self.sip.tcp_listen)?)
        };
        let advertised_address = if self.sip.advertised_address.trim().is_empty() {
            match udp_listen {
                SocketAddr::V4(a) if a.ip().is_unspecified() => return Err(key_error(
                    "sip.advertised_address",
                    "required when sip.udp_listen is 0.0.0.0: the address peers reach slotgate on",
                )),
                SocketAddr::V6(a) if a.ip().is_unspecified() => {
                    return Err(key_error(
                        "sip.advertised_address",
                        "required when sip.udp_listen is [::]: the address peers reach slotgate on",
                    ))
                }
                addr => addr.to_string(),
            }
        } else {
            let value = self.sip.advertised_address.trim().to_string();
            if !is_host_port(&value) {
                return Err(key_error(
                    "sip.advertised_address",
                    format!("`{value}` is not a host or host:port"),
                ));
            }
            value
        };
        if !(1024..=1_048_576).contains(&self.sip.max_message_size) {
            return Err(key_error(
                "sip.max_message_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        if self.sip.user_agent.trim().is_empty() || self.sip.user_agent.contains(['\r', '\n']) {
            return Err(key_error(
                "sip.user_agent",
                "must be a non-empty single line",
            ));
        }

        let allowed_sources = self
            .pbx
            .allowed_sources
            .iter()
            .map(|s| parse_source("pbx.allowed_sources", s))
            .collect::<Result<Vec<_>, _>>()?;
        let on_unknown_source = match self.pbx.on_unknown_source.as_str() {
            "reject" => UnknownSourcePolicy::Reject,
            "ignore" => UnknownSourcePolicy::Ignore,
            other => {
                return Err(key_error(
                    "pbx.on_unknown_source",
                    format!("`{other}` is not allowed: use \"reject\" or \"ignore\""),
                ))
            }
        };
        let auth_sha256 = match self.pbx.auth_algorithm.to_ascii_uppercase().as_str() {
            "MD5" => false,
            "SHA-256" => true,
            other => {
                return Err(key_error(
                    "pbx.auth_algorithm",
                    format!("`{other}` is not allowed: use \"MD5\" or \"SHA-256\""),
                ))
            }
        };
        let auth_users = self
            .pbx
            .auth_users
            .iter()
            .map(|entry| match entry.split_once(':') {
                Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(PbxUser {
                    username: u.to_string(),
                    password: p.to_string(),
                }),
                _ => Err(key_error(
                    "pbx.auth_users",
                    format!("`{entry}` must be written \"username:password\""),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.pbx.auth_enabled && auth_users.is_empty() {
            return Err(key_error(
                "pbx.auth_users",
                "pbx.auth_enabled is true but no users are listed",
            ));
        }
        if self.pbx.auth_enabled && self.pbx.auth_realm.contains(['"', '\r', '\n']) {
            return Err(key_error(
                "pbx.auth_realm",
                "must not contain quotes or line breaks",
            ));
        }

        let address = resolve_peer("trunk.address", &self.trunk.address)?;
        let transport = match self.trunk.transport.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => {
                return Err(key_error(
                    "trunk.transport",
                    format!("`{other}` is not allowed: use \"udp\" or \"tcp\""),
                ))
            }
        };
        let outbound_proxy =
            resolve_optional_peer("trunk.outbound_proxy", &self.trunk.outbound_proxy)?;
        // The Request-URI names the trunk as configured (a host name stays a
        // host name), not the address it resolved to.
        let domain = if self.trunk.domain.trim().is_empty() {
            self.trunk.address.trim().to_string()
        } else if is_host_port(self.trunk.domain.trim()) {
            self.trunk.domain.trim().to_string()
        } else {
            return Err(key_error(
                "trunk.domain",
                format!("`{}` is not a host or host:port", self.trunk.domain),
            ));
        };
        if !self.trunk.username.is_empty() && self.trunk.password.is_empty() {
            return Err(key_error(
                "trunk.password",
                "trunk.username is set but the password is empty",
            ));
        }
        for name in &self.trunk.carry_headers {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(key_error(
                    "trunk.carry_headers",
                    format!("`{name}` is not a header name"),
                ));
            }
        }
        if transport == Transport::Tcp && tcp_listen.is_none() {
            return Err(key_error(
                "sip.tcp_listen",
                "trunk.transport is \"tcp\" but TCP is disabled",
            ));
        }

        let url = self.store.url.trim().to_string();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(key_error(
                "store.url",
                format!(
                    "`{url}` is not allowed: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
                ),
            ));
        }
        if !(1..=10_000).contains(&self.store.batch_size) {
            return Err(key_error("store.batch_size", "must be between 1 and 10000"));
        }
        if !(1..=60_000).contains(&self.store.flush_interval_ms) {
            return Err(key_error(
                "store.flush_interval_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.shutdown.drain_timeout_secs > 86_400 {
            return Err(key_error(
                "shutdown.drain_timeout_secs",
                "must be at most 86400",
            ));
        }
        let api_listen = if self.api.listen.trim().is_empty() {
            None
        } else {
            Some(parse_socket("api.listen", &self.api.listen)?)
        };
        if !(1024..=16_777_216).contains(&self.api.max_body_bytes) {
            return Err(key_error(
                "api.max_body_bytes",
                "must be between 1024 and 16777216 bytes",
            ));
        }
        let admin_token = self.api.admin_token.trim().to_string();
        // A short token could be guessed over the network; characters are
        // limited to what survives a header and a shell unquoted.
        let token_ok = admin_token.is_empty()
            || (admin_token.len() >= 32
                && admin_token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')));
        if !token_ok {
            return Err(key_error(
                "api.admin_token",
                "must be empty (admin API off) or at least 32 letters, digits, '-', '_', '.' or '~'",
            ));
        }
        let crm = self.crm.validate()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(key_error(
                "log.level",
                format!(
                    "`{}` is not a log filter: use error, warn, info, debug or trace",
                    self.log.level
                ),
            ));
        }

        Ok(Config {
            sip: SipConfig {
                udp_listen,
                tcp_listen,
                advertised_address,
                max_message_size: self.sip.max_message_size as usize,
                user_agent: self.sip.user_agent.trim().to_string(),
            },
            pbx: PbxConfig {
                allowed_sources,
                on_unknown_source,
                rate_limit: self.pbx.rate_limit,
                rate_limit_burst: self.pbx.rate_limit_burst,
                auth_enabled: self.pbx.auth_enabled,
                auth_realm: self.pbx.auth_realm,
                auth_sha256,
                auth_users,
            },
            trunk: TrunkConfig {
                address,
                transport,
                outbound_proxy,
                domain,
                username: self.trunk.username,
                password: self.trunk.password,
                options_interval: (self.trunk.options_interval_secs > 0)
                    .then(|| Duration::from_secs(self.trunk.options_interval_secs)),
                carry_headers: self.trunk.carry_headers,
            },
            store: StoreConfig {
                url,
                batch_size: self.store.batch_size as usize,
                flush_interval: Duration::from_millis(self.store.flush_interval_ms),
            },
            shutdown: ShutdownConfig {
                retry_after_secs: self.shutdown.retry_after_secs,
                drain_timeout: Duration::from_secs(self.shutdown.drain_timeout_secs),
            },
            api: ApiConfig {
                listen: api_listen,
                max_body_bytes: self.api.max_body_bytes as usize,
                admin_token: (!admin_token.is_empty()).then_some(admin_token),
                allow_private_webhook_urls: crm.allow_private_webhook_urls,
            },
            crm,
            log_level: self.log.level,
        })
    }
}

impl RawCrm {
    fn validate(&self) -> Result<CrmConfig, ConfigError> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(key_error("crm.max_attempts", "must be between 1 and 100"));
        }
        if !(1..=3_600_000).contains(&self.backoff_initial_ms) {
            return Err(key_error(
                "crm.backoff_initial_ms",
                "must be between 1 and 3600000",
            ));
        }
        if !(1..=604_800).contains(&self.backoff_max_secs) {
            return Err(key_error(
                "crm.backoff_max_secs",
                "must be between 1 and 604800 (a week)",
            ));
        }
        if self.backoff_max_secs.saturating_mul(1000) < self.backoff_initial_ms {
            return Err(key_error(
                "crm.backoff_max_secs",
                "must not be shorter than crm.backoff_initial_ms",
            ));
        }
        if !(100..=300_000).contains(&self.request_timeout_ms) {
            return Err(key_error(
                "crm.request_timeout_ms",
                "must be between 100 and 300000",
            ));
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            return Err(key_error(
                "crm.poll_interval_ms",
                "must be between 10 and 600000",
            ));
        }
        Ok(CrmConfig {
            max_attempts: self.max_attempts,
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            allow_private_webhook_urls: self.allow_private_webhook_urls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let text = include_str!("../config/slotgate.toml");
        let config = Config::from_toml_str(text).unwrap();
        assert_eq!(config.sip.udp_listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(config.store.url, "sqlite://slotgate.db");
        assert_eq!(config.trunk.transport, Transport::Udp);
        assert_eq!(config.api.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(config.api.max_body_bytes, 65_536);
        assert_eq!(config.crm.max_attempts, 12);
        assert_eq!(config.crm.backoff_initial, Duration::from_secs(5));
        assert_eq!(config.crm.backoff_max, Duration::from_secs(3600));
        assert_eq!(config.crm.request_timeout, Duration::from_secs(10));
        assert_eq!(config.crm.poll_interval, Duration::from_secs(1));
        assert!(!config.crm.allow_private_webhook_urls);
        assert!(!config.api.allow_private_webhook_urls);
    }

    #[test]
    fn the_crm_defaults_match_the_shipped_file() {
        let shipped = Config::from_toml_str(include_str!("../config/slotgate.toml")).unwrap();
        let empty = Config::from_toml_str("").unwrap();
        assert_eq!(format!("{:?}", shipped.crm), format!("{:?}", empty.crm));
        assert_eq!(
            format!("{:?}", empty.crm),
            format!("{:?}", CrmConfig::default())
        );
    }

    #[test]
    fn the_private_url_flag_reaches_the_api() {
        let config = Config::from_toml_str(
            "[crm]\nallow_private_webhook_urls = true\nmax_attempts = 3\nbackoff_initial_ms = 10",
        )
        .unwrap();
        assert!(config.crm.allow_private_webhook_urls);
        assert!(config.api.allow_private_webhook_urls);
        assert_eq!(config.crm.max_attempts, 3);
        assert_eq!(config.crm.backoff_initial, Duration::from_millis(10));
    }

    #[test]
    // figment's Jail fixes the closure's error type; it is not ours to box.
    #[allow(clippy::result_large_err)]
    fn crm_keys_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("slotgate.toml", "[crm]\nmax_attempts = 5\n")?;
            jail.set_env("SLOTGATE_CRM__MAX_ATTEMPTS", "7");
            jail.set_env("SLOTGATE_CRM__ALLOW_PRIVATE_WEBHOOK_URLS", "true");
            let config = Config::load(Path::new("slotgate.toml")).unwrap();
            assert_eq!(config.crm.max_attempts, 7);
            assert!(config.crm.allow_private_webhook_urls);
            Ok(())
        });
    }

    #[test]
    fn an_empty_api_listen_disables_the_api() {
        let config = Config::from_toml_str("[api]\nlisten = \"\"").unwrap();
        assert_eq!(config.api.listen, None);
    }

    #[test]
    fn wrong_values_name_their_key() {
        let cases = [
            ("[sip]\nudp_listen = \"nonsense\"", "sip.udp_listen"),
            ("[trunk]\ntransport = \"sctp\"", "trunk.transport"),
            ("[trunk]\naddress = \"no-port.example\"", "trunk.address"),
            ("[trunk]\naddress = \"bad host:5060\"", "trunk.address"),
            (
                "[pbx]\nallowed_sources = [\"10.0.0.0/33\"]",
                "pbx.allowed_sources",
            ),
            (
                "[pbx]\non_unknown_source = \"maybe\"",
                "pbx.on_unknown_source",
            ),
            ("[store]\nurl = \"mysql://x\"", "store.url"),
            ("[sip]\nmax_message_size = 10", "sip.max_message_size"),
            ("[pbx]\nauth_enabled = true", "pbx.auth_users"),
            ("[sip]\nmax_message_size = \"big\"", "sip.max_message_size"),
            ("[sip]\nno_such_key = 1", "sip"),
            ("[api]\nlisten = \"port 80\"", "api.listen"),
            ("[api]\nmax_body_bytes = 10", "api.max_body_bytes"),
            ("[api]\nadmin_token = \"short\"", "api.admin_token"),
            ("[crm]\nmax_attempts = 0", "crm.max_attempts"),
            ("[crm]\nbackoff_initial_ms = 0", "crm.backoff_initial_ms"),
            ("[crm]\nbackoff_max_secs = 0", "crm.backoff_max_secs"),
            (
                "[crm]\nbackoff_initial_ms = 60000\nbackoff_max_secs = 1",
                "crm.backoff_max_secs",
            ),
            ("[crm]\nrequest_timeout_ms = 5", "crm.request_timeout_ms"),
            ("[crm]\npoll_interval_ms = 0", "crm.poll_interval_ms"),
            ("[crm]\nwebhook = 1", "crm"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(text).unwrap_err();
            let got = key_of(err);
            assert!(got.starts_with(key), "{text}: got key {got}, want {key}");
        }
    }

    #[test]
    fn trunk_host_names_resolve_once_and_stay_in_the_request_uri() {
        let config = Config::from_toml_str("[trunk]\naddress = \"localhost:5080\"").unwrap();
        assert!(config.trunk.address.ip().is_loopback());
        assert_eq!(config.trunk.address.port(), 5080);
        assert_eq!(config.trunk.domain, "localhost:5080");
    }

    #[test]
    fn cidr_and_bare_addresses_are_sources() {
        let config =
            Config::from_toml_str("[pbx]\nallowed_sources = [\"10.1.2.3\", \"192.168.0.0/16\"]")
                .unwrap();
        assert_eq!(config.pbx.allowed_sources.len(), 2);
        assert!(config.pbx.allowed_sources[0]
            .contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()));
    }
}
