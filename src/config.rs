//! Typed configuration: the TOML file, overridden by `SLOTGATE_SECTION__KEY`
//! environment variables, checked once at start.
//!
//! The raw serde structs mirror the file; `Config::load` turns them into
//! validated values (socket addresses, CIDR blocks, enums) so the rest of the
//! code never re-parses a string. Every error names the key and what it
//! accepts, because a misconfigured telecom element must refuse to start
//! rather than half-work on live traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{NaiveTime, TimeDelta};
use chrono_tz::Tz;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::consent::{CallingHours, OptionPolicy, OptionPolicyError, E164};
use crate::media::config::RawMedia;
use crate::media::MediaConfig;
use crate::rcs::delivery::{DeliveryPlan, Route};
use crate::rcs::rbm::oauth::Signer;
use crate::rcs::rbm::{MessageTrafficType, RbmSettings, ServiceAccount, RBM_BASE_URL};
use crate::rcs::secret::Secret;
use crate::rcs::simulator::{AutoReply, SimulatedAnswer};
use crate::rcs::twilio::{Sender, TwilioSettings, TWILIO_BASE_URL};
use crate::timing::RankingPolicy;

/// A configuration problem, always naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("config key `{key}`: {reason}")]
    Key { key: String, reason: String },
}

/// The backoff keys of `section`: a first wait of 1 ms to an hour, a
/// ceiling of up to `cap` seconds that is not shorter than the first wait.
fn check_backoff(
    section: &str,
    initial_ms: u64,
    max_secs: u64,
    (cap, cap_words): (u64, &str),
) -> Result<(), ConfigError> {
    if !(1..=3_600_000).contains(&initial_ms) {
        return Err(key_error(
            &format!("{section}.backoff_initial_ms"),
            "must be between 1 and 3600000",
        ));
    }
    if !(1..=cap).contains(&max_secs) {
        return Err(key_error(
            &format!("{section}.backoff_max_secs"),
            format!("must be between 1 and {cap} ({cap_words})"),
        ));
    }
    if max_secs.saturating_mul(1000) < initial_ms {
        return Err(key_error(
            &format!("{section}.backoff_max_secs"),
            format!("must not be shorter than {section}.backoff_initial_ms"),
        ));
    }
    Ok(())
}

pub(crate) fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
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
    pub channels: ChannelsConfig,
    pub prompts: PromptConfig,
    pub gate: crate::b2bua::gate_config::GateConfig,
    pub media: MediaConfig,
    /// `[pacing]`: re-originating scheduled callbacks (see `crate::pacing::dialer`).
    pub pacing: crate::pacing::dialer::PacingConfig,
    pub log_level: String,
    /// `[caller_id]` and `[stir_shaken]` (see `crate::callerid`).
    pub caller_id: crate::callerid::config::CallerIdSettings,
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

/// The consent channels: which one carries prompts, which one takes over
/// when the first cannot reach a number, and each provider's settings
/// (see `crate::rcs::channels`, which builds the clients from this).
#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    /// Primary route, fallback and tries per route.
    pub plan: DeliveryPlan,
    /// Ceiling of the wait after the first failed send; it doubles with
    /// each further failure, up to `backoff_max` (full jitter below it).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How the built-in simulator's handsets answer on their own.
    pub simulator: AutoReply,
    /// `None`: no `[channels.rbm]` table.
    pub rbm: Option<RbmChannelConfig>,
    /// `None`: no `[channels.sms]` table.
    pub sms: Option<SmsChannelConfig>,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        let raw = RawChannels::default();
        ChannelsConfig {
            plan: DeliveryPlan {
                primary: Route::Simulator,
                fallback: None,
                max_attempts: raw.max_attempts,
            },
            backoff_initial: Duration::from_millis(raw.backoff_initial_ms),
            backoff_max: Duration::from_secs(raw.backoff_max_secs),
            simulator: AutoReply::Off,
            rbm: None,
            sms: None,
        }
    }
}

/// One RBM agent, ready for `RbmClient::new`.
#[derive(Debug, Clone)]
pub struct RbmChannelConfig {
    pub settings: RbmSettings,
    /// The agent's webhook client token: Google answers the setup
    /// handshake with it and signs every push with it.
    pub client_token: Secret,
}

/// One Twilio account, ready for `TwilioClient::new`.
#[derive(Debug, Clone)]
pub struct SmsChannelConfig {
    pub settings: TwilioSettings,
    /// The public URL Twilio posts inbound SMS to, exactly as configured at
    /// Twilio: `X-Twilio-Signature` covers it, so the one a reverse proxy
    /// forwards to would not verify.
    pub webhook_url: String,
}

/// What a consent prompt offers and how often a person may be asked.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptConfig {
    pub options: OptionPolicy,
    pub ranking: RankingPolicy,
    /// How long a consent request waits for an answer.
    pub request_ttl: Duration,
    /// The zone used when a callee's cannot be told from the number.
    pub fallback_time_zone: Tz,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            options: OptionPolicy::default(),
            ranking: RankingPolicy::default(),
            request_ttl: Duration::from_secs(RawPrompts::default().request_ttl_secs),
            fallback_time_zone: Tz::UTC,
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
    channels: RawChannels,
    prompts: RawPrompts,
    gate: crate::b2bua::gate_config::RawGate,
    media: RawMedia,
    pacing: crate::pacing::dialer::config::RawPacing,
    log: RawLog,
    caller_id: crate::callerid::RawCallerId,
    stir_shaken: crate::callerid::RawStirShaken,
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
struct RawChannels {
    primary: String,
    fallback: String,
    max_attempts: u32,
    backoff_initial_ms: u64,
    backoff_max_secs: u64,
    simulator: RawSimulator,
    // Absent tables stay absent: a provider is configured by writing its
    // table, never by a default.
    #[serde(skip_serializing_if = "Option::is_none")]
    rbm: Option<RawRbm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<RawSms>,
}

impl Default for RawChannels {
    fn default() -> Self {
        RawChannels {
            primary: "simulator".into(),
            fallback: "none".into(),
            max_attempts: 5,
            backoff_initial_ms: 2_000,
            backoff_max_secs: 300,
            simulator: RawSimulator::default(),
            rbm: None,
            sms: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSimulator {
    auto_reply: String,
    auto_reply_delay_ms: u64,
    // Sorted by name, so that a seed draws the same answers whatever the
    // order the table was written in.
    mix: BTreeMap<String, u32>,
    seed: u64,
}

impl Default for RawSimulator {
    fn default() -> Self {
        RawSimulator {
            auto_reply: "off".into(),
            auto_reply_delay_ms: 2_000,
            mix: BTreeMap::new(),
            seed: 1,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRbm {
    base_url: String,
    agent_id: String,
    service_account_key_file: String,
    client_token: String,
    traffic_type: String,
    timeout_ms: u64,
}

impl Default for RawRbm {
    fn default() -> Self {
        RawRbm {
            base_url: RBM_BASE_URL.into(),
            agent_id: String::new(),
            service_account_key_file: String::new(),
            client_token: String::new(),
            traffic_type: "transaction".into(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSms {
    base_url: String,
    account_sid: String,
    auth_token: String,
    from: String,
    messaging_service_sid: String,
    status_callback_url: String,
    webhook_url: String,
    timeout_ms: u64,
}

impl Default for RawSms {
    fn default() -> Self {
        RawSms {
            base_url: TWILIO_BASE_URL.into(),
            account_sid: String::new(),
            auth_token: String::new(),
            from: String::new(),
            messaging_service_sid: String::new(),
            status_callback_url: String::new(),
            webhook_url: String::new(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPrompts {
    request_ttl_secs: u64,
    slot_length_mins: u32,
    delays_mins: Vec<u32>,
    calling_hours: String,
    max_choices: u32,
    history_days: u32,
    cool_down_days: u32,
    weekly_cap: u32,
    fallback_time_zone: String,
}

impl Default for RawPrompts {
    fn default() -> Self {
        RawPrompts {
            request_ttl_secs: 86_400,
            slot_length_mins: 30,
            delays_mins: vec![15, 30],
            calling_hours: "08:00-21:00".into(),
            max_choices: 11,
            history_days: 90,
            cool_down_days: 30,
            weekly_cap: 3,
            fallback_time_zone: "UTC".into(),
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
            // figment reads environment values like TOML, so a token or a
            // number made of digits arrives as a number; quoting keeps it
            // text, and saying so saves the operator a puzzle.
            let hint = match &e.kind {
                figment::error::Kind::InvalidType(_, expected) if expected.contains("string") => {
                    "; from the environment, quote a value that looks like a number \
                     (VAR='\"+14155550100\"')"
                }
                _ => "",
            };
            // A type error quotes the value it found; for a secret that
            // would print the secret.
            if SECRET_KEYS.contains(&key.as_str()) {
                return key_error(
                    &key,
                    format!("must be a string (the value is a secret: not shown){hint}"),
                );
            }
            key_error(&key, format!("{}{hint}", e.kind))
        })?;
        raw.validate()
    }
}

/// Keys whose values never appear in an error.
const SECRET_KEYS: [&str; 2] = ["channels.rbm.client_token", "channels.sms.auth_token"];

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

pub(crate) fn parse_source(key: &str, value: &str) -> Result<IpNet, ConfigError> {
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
        let channels = self.channels.validate()?;
        let prompts = self.prompts.validate()?;
        let gate = self.gate.validate()?;
        let caller_id = crate::callerid::config::validate(&self.caller_id, &self.stir_shaken)?;
        let media = self.media.validate()?;
        let pacing = self.pacing.validate()?;
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
            channels,
            prompts,
            gate,
            media,
            pacing,
            log_level: self.log.level,
            caller_id,
        })
    }
}

impl RawCrm {
    fn validate(&self) -> Result<CrmConfig, ConfigError> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(key_error("crm.max_attempts", "must be between 1 and 100"));
        }
        check_backoff(
            "crm",
            self.backoff_initial_ms,
            self.backoff_max_secs,
            (604_800, "a week"),
        )?;
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

/// An absolute `http(s)` URL with a host, as providers and webhooks need.
fn parse_http_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    url::Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .map(|_| value.to_string())
        .ok_or_else(|| {
            key_error(
                key,
                format!("`{value}` is not an absolute http(s) URL (e.g. https://example.com/path)"),
            )
        })
}

/// A Twilio SID: two letters naming its kind, then 32 hex digits.
fn is_twilio_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..].chars().all(|c| c.is_ascii_hexdigit())
}

fn check_timeout(key: &str, timeout_ms: u64) -> Result<Duration, ConfigError> {
    if !(100..=300_000).contains(&timeout_ms) {
        return Err(key_error(key, "must be between 100 and 300000"));
    }
    Ok(Duration::from_millis(timeout_ms))
}

impl RawChannels {
    fn validate(&self) -> Result<ChannelsConfig, ConfigError> {
        let primary = match self.primary.trim() {
            "simulator" => Route::Simulator,
            "rbm" => Route::Rcs,
            "sms" => Route::Sms,
            other => {
                return Err(key_error(
                    "channels.primary",
                    format!("`{other}` is not allowed: use \"simulator\", \"rbm\" or \"sms\""),
                ))
            }
        };
        let fallback = match self.fallback.trim() {
            "none" => None,
            "sms" => Some(Route::Sms),
            other => {
                return Err(key_error(
                    "channels.fallback",
                    format!("`{other}` is not allowed: use \"none\" or \"sms\""),
                ))
            }
        };
        if fallback == Some(primary) {
            return Err(key_error(
                "channels.fallback",
                "names the primary channel again: use \"none\", or another channels.primary",
            ));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(key_error(
                "channels.max_attempts",
                "must be between 1 and 100",
            ));
        }
        check_backoff(
            "channels",
            self.backoff_initial_ms,
            self.backoff_max_secs,
            (86_400, "a day"),
        )?;
        let simulator = self.simulator.validate()?;
        let rbm = self.rbm.as_ref().map(RawRbm::validate).transpose()?;
        let sms = self.sms.as_ref().map(RawSms::validate).transpose()?;
        if primary == Route::Rcs && rbm.is_none() {
            return Err(key_error(
                "channels.rbm",
                "channels.primary is \"rbm\" but there is no [channels.rbm] table",
            ));
        }
        if sms.is_none() {
            let wanted_by = if primary == Route::Sms {
                Some("channels.primary")
            } else if fallback == Some(Route::Sms) {
                Some("channels.fallback")
            } else {
                None
            };
            if let Some(by) = wanted_by {
                return Err(key_error(
                    "channels.sms",
                    format!("{by} is \"sms\" but there is no [channels.sms] table"),
                ));
            }
        }
        Ok(ChannelsConfig {
            plan: DeliveryPlan {
                primary,
                fallback,
                max_attempts: self.max_attempts,
            },
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            simulator,
            rbm,
            sms,
        })
    }
}

impl RawSimulator {
    fn validate(&self) -> Result<AutoReply, ConfigError> {
        const ANSWERS: &str = "now, after_15, after_30, slot, decline or none";
        // Names are checked even when the mix is not in use: a typo found
        // only on the day someone switches to "mix" is found too late.
        let weights = self
            .mix
            .iter()
            .map(|(name, weight)| match SimulatedAnswer::from_name(name) {
                Some(answer) => Ok((answer, *weight)),
                None => Err(key_error(
                    "channels.simulator.mix",
                    format!("`{name}` is not an answer: use {ANSWERS}"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.auto_reply_delay_ms > 86_400_000 {
            return Err(key_error(
                "channels.simulator.auto_reply_delay_ms",
                "must be at most 86400000 (a day)",
            ));
        }
        let after = TimeDelta::milliseconds(self.auto_reply_delay_ms as i64);
        match self.auto_reply.trim() {
            "off" => Ok(AutoReply::Off),
            "mix" => {
                if weights.iter().all(|(_, w)| *w == 0) {
                    return Err(key_error(
                        "channels.simulator.mix",
                        "channels.simulator.auto_reply is \"mix\": give answers and weights, \
                         at least one above 0 (e.g. { now = 3, decline = 1 })",
                    ));
                }
                Ok(AutoReply::Mix {
                    weights,
                    after,
                    seed: self.seed,
                })
            }
            name => match SimulatedAnswer::from_name(name) {
                Some(answer) => Ok(AutoReply::Fixed { answer, after }),
                None => Err(key_error(
                    "channels.simulator.auto_reply",
                    format!("`{name}` is not allowed: use off, mix, {ANSWERS}"),
                )),
            },
        }
    }
}

impl RawRbm {
    fn validate(&self) -> Result<RbmChannelConfig, ConfigError> {
        let base_url = parse_http_url("channels.rbm.base_url", &self.base_url)?;
        let agent_id = self.agent_id.trim();
        if agent_id.is_empty() || agent_id.contains(char::is_whitespace) {
            return Err(key_error(
                "channels.rbm.agent_id",
                "must be the RBM agent's id, without spaces",
            ));
        }
        let service_account = read_service_account(&self.service_account_key_file)?;
        if self.client_token.trim().is_empty() {
            return Err(key_error(
                "channels.rbm.client_token",
                "must be the agent's webhook client token (needed to verify RBM's pushes)",
            ));
        }
        let traffic_type = match self.traffic_type.trim() {
            "authentication" => MessageTrafficType::Authentication,
            "transaction" => MessageTrafficType::Transaction,
            "promotion" => MessageTrafficType::Promotion,
            "service_request" => MessageTrafficType::ServiceRequest,
            "acknowledgement" => MessageTrafficType::Acknowledgement,
            other => {
                return Err(key_error(
                    "channels.rbm.traffic_type",
                    format!(
                        "`{other}` is not allowed: use \"transaction\", \"authentication\", \
                         \"promotion\", \"service_request\" or \"acknowledgement\""
                    ),
                ))
            }
        };
        Ok(RbmChannelConfig {
            settings: RbmSettings {
                base_url,
                agent_id: agent_id.to_string(),
                service_account,
                traffic_type,
                timeout: check_timeout("channels.rbm.timeout_ms", self.timeout_ms)?,
            },
            client_token: Secret::new(self.client_token.trim()),
        })
    }
}

/// Reads and checks the service-account key file now, so that a wrong
/// path or a broken key stops the process instead of failing every send.
/// Errors name the file, never its contents.
fn read_service_account(path: &str) -> Result<ServiceAccount, ConfigError> {
    const KEY: &str = "channels.rbm.service_account_key_file";
    let path = path.trim();
    if path.is_empty() {
        return Err(key_error(
            KEY,
            "must be the path of the service account's JSON key file",
        ));
    }
    let json = std::fs::read_to_string(path)
        .map_err(|e| key_error(KEY, format!("cannot read `{path}`: {e}")))?;
    let account = ServiceAccount::from_key_file(&json)
        .map_err(|e| key_error(KEY, format!("`{path}`: {e}")))?;
    Signer::from_pem(&account.private_key_pem)
        .map_err(|e| key_error(KEY, format!("`{path}`: {e}")))?;
    Ok(account)
}

impl RawSms {
    fn validate(&self) -> Result<SmsChannelConfig, ConfigError> {
        let base_url = parse_http_url("channels.sms.base_url", &self.base_url)?;
        let account_sid = self.account_sid.trim();
        if !is_twilio_sid(account_sid, "AC") {
            return Err(key_error(
                "channels.sms.account_sid",
                "must be the Twilio Account SID: AC followed by 32 hex digits",
            ));
        }
        if self.auth_token.trim().is_empty() {
            return Err(key_error(
                "channels.sms.auth_token",
                "must be the Twilio account's auth token",
            ));
        }
        let from = match (self.from.trim(), self.messaging_service_sid.trim()) {
            ("", "") => {
                return Err(key_error(
                    "channels.sms.from",
                    "set channels.sms.from (an E.164 number) or \
                     channels.sms.messaging_service_sid",
                ))
            }
            (number, "") => Sender::Number(E164::from_e164(number).map_err(|e| {
                key_error(
                    "channels.sms.from",
                    format!("must be an E.164 number such as +14155550100: {e}"),
                )
            })?),
            ("", sid) if is_twilio_sid(sid, "MG") => Sender::MessagingService(sid.to_string()),
            ("", _) => {
                return Err(key_error(
                    "channels.sms.messaging_service_sid",
                    "must be a Messaging Service SID: MG followed by 32 hex digits",
                ))
            }
            (_, _) => {
                return Err(key_error(
                    "channels.sms.from",
                    "set channels.sms.from or channels.sms.messaging_service_sid, not both",
                ))
            }
        };
        let status_callback = if self.status_callback_url.trim().is_empty() {
            None
        } else {
            Some(parse_http_url(
                "channels.sms.status_callback_url",
                &self.status_callback_url,
            )?)
        };
        if self.webhook_url.trim().is_empty() {
            return Err(key_error(
                "channels.sms.webhook_url",
                "must be the public URL Twilio posts inbound SMS to (its signature covers it)",
            ));
        }
        let webhook_url = parse_http_url("channels.sms.webhook_url", &self.webhook_url)?;
        Ok(SmsChannelConfig {
            settings: TwilioSettings {
                base_url,
                account_sid: account_sid.to_string(),
                auth_token: Secret::new(self.auth_token.trim()),
                from,
                status_callback,
                timeout: check_timeout("channels.sms.timeout_ms", self.timeout_ms)?,
            },
            webhook_url,
        })
    }
}

/// `HH:MM-HH:MM` (an en dash is accepted too), local wall-clock times.
pub(crate) fn parse_calling_hours(key: &str, value: &str) -> Result<CallingHours, ConfigError> {
    let bad = || {
        key_error(
            key,
            format!("`{value}` is not written HH:MM-HH:MM (e.g. \"08:00-21:00\")"),
        )
    };
    let (start, end) = value
        .split_once('-')
        .or_else(|| value.split_once('–'))
        .ok_or_else(bad)?;
    let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
    CallingHours::new(time(start)?, time(end)?).map_err(|e| key_error(key, e.to_string()))
}

impl RawPrompts {
    fn validate(&self) -> Result<PromptConfig, ConfigError> {
        if !(60..=2_592_000).contains(&self.request_ttl_secs) {
            return Err(key_error(
                "prompts.request_ttl_secs",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if !(1..=1_440).contains(&self.slot_length_mins) {
            return Err(key_error(
                "prompts.slot_length_mins",
                "must be between 1 and 1440",
            ));
        }
        if let Some(bad) = self.delays_mins.iter().find(|m| !(1..=1_440).contains(*m)) {
            return Err(key_error(
                "prompts.delays_mins",
                format!("{bad} is not allowed: each delay is between 1 and 1440 minutes"),
            ));
        }
        let calling_hours = parse_calling_hours("prompts.calling_hours", &self.calling_hours)?;
        if !(1..=3_650).contains(&self.history_days) {
            return Err(key_error(
                "prompts.history_days",
                "must be between 1 and 3650",
            ));
        }
        // The cool-down is read from the history: a decline older than the
        // history is forgotten, and the cool-down with it.
        if self.cool_down_days > self.history_days {
            return Err(key_error(
                "prompts.cool_down_days",
                "must not be longer than prompts.history_days",
            ));
        }
        // 0 would forbid every prompt; turning prompting off is not this
        // key's job.
        if !(1..=100).contains(&self.weekly_cap) {
            return Err(key_error("prompts.weekly_cap", "must be between 1 and 100"));
        }
        let fallback_time_zone: Tz = self.fallback_time_zone.trim().parse().map_err(|_| {
            key_error(
                "prompts.fallback_time_zone",
                format!(
                    "`{}` is not an IANA time zone (e.g. \"UTC\", \"Europe/Paris\")",
                    self.fallback_time_zone
                ),
            )
        })?;
        let options = OptionPolicy {
            delays: self
                .delays_mins
                .iter()
                .map(|m| TimeDelta::minutes(i64::from(*m)))
                .collect(),
            slot_length: TimeDelta::minutes(i64::from(self.slot_length_mins)),
            max_choices: self.max_choices as usize,
            calling_hours,
            ..OptionPolicy::default()
        };
        options.validate().map_err(|e| {
            let key = match e {
                OptionPolicyError::MaxChoices(_) => "prompts.max_choices",
                OptionPolicyError::Delay(_) => "prompts.delays_mins",
                OptionPolicyError::SlotLength(_) => "prompts.slot_length_mins",
                OptionPolicyError::Range(_) => "prompts",
            };
            key_error(key, e.to_string())
        })?;
        Ok(PromptConfig {
            options,
            ranking: RankingPolicy {
                lookback: TimeDelta::days(i64::from(self.history_days)),
                cool_down: TimeDelta::days(i64::from(self.cool_down_days)),
                weekly_cap: self.weekly_cap as usize,
                ..RankingPolicy::default()
            },
            request_ttl: Duration::from_secs(self.request_ttl_secs),
            fallback_time_zone,
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
    fn the_pacing_defaults_match_the_shipped_file() {
        let shipped = Config::from_toml_str(include_str!("../config/slotgate.toml")).unwrap();
        let empty = Config::from_toml_str("").unwrap();
        assert_eq!(
            format!("{:?}", shipped.pacing.amd),
            format!("{:?}", empty.pacing.amd)
        );
        assert_eq!(
            format!("{:?}", shipped.pacing.default_settings),
            format!("{:?}", empty.pacing.default_settings)
        );
        assert_eq!(
            (
                shipped.pacing.enabled,
                shipped.pacing.lease,
                shipped.pacing.claim_batch
            ),
            (
                empty.pacing.enabled,
                empty.pacing.lease,
                empty.pacing.claim_batch
            )
        );
        assert!(!empty.pacing.enabled, "nobody is called unless asked for");
    }

    #[test]
    fn a_pacing_section_that_cannot_work_names_its_key() {
        for (text, key) in [
            ("[pacing]\nlease_secs = 2", "pacing.lease_secs"),
            ("[pacing]\nclaim_batch = 0", "pacing.claim_batch"),
            (
                "[pacing]\nagent_target = \"queue@pbx\"",
                "pacing.agent_target",
            ),
            ("[pacing]\nnode = \"two words\"", "pacing.node"),
            (
                "[pacing]\nabandon_message = \"/nonexistent.wav\"",
                "pacing.abandon_message",
            ),
            ("[pacing.amd]\ndecision_ms = 9000", "pacing.amd"),
            (
                "[pacing.defaults]\nmode = \"progressive\"\nagents_target = 0",
                "pacing.defaults.agents_target",
            ),
            (
                "[pacing.defaults.limits]\ncalls_per_second = -1.0",
                "pacing.defaults.limits.calls_per_second",
            ),
            (
                "[pacing.defaults.calling_hours]\ndefault = \"21:00-21:00\"",
                "pacing.defaults.calling_hours.default",
            ),
        ] {
            let err = Config::from_toml_str(text).expect_err(text);
            assert_eq!(key_of(err), key, "{text}");
        }
    }

    #[test]
    fn the_media_defaults_match_the_shipped_file() {
        let shipped = Config::from_toml_str(include_str!("../config/slotgate.toml")).unwrap();
        let empty = Config::from_toml_str("").unwrap();
        assert_eq!(format!("{:?}", shipped.media), format!("{:?}", empty.media));
        assert_eq!(
            format!("{:?}", empty.media),
            format!("{:?}", MediaConfig::default())
        );
        assert_eq!(empty.media.advertised_address, empty.media.bind_address);
        assert_eq!(
            (empty.media.port_min, empty.media.port_max),
            (20_000, 29_999)
        );
        assert!(empty.media.announcement_file.is_none());
    }

    #[test]
    fn a_media_announcement_file_is_read_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("hold.wav");
        let samples: Vec<u8> = (0..320i16).flat_map(|s| (s * 50).to_le_bytes()).collect();
        std::fs::write(
            &good,
            crate::media::wav::wav_bytes(1, 8_000, 1, 16, &samples),
        )
        .unwrap();
        let config = Config::from_toml_str(&format!(
            "[media]\nannouncement = \"{}\"\nbind_address = \"0.0.0.0\"\n\
             advertised_address = \"192.0.2.10\"",
            good.display()
        ))
        .unwrap();
        assert_eq!(config.media.announcement.pcmu().len(), 320);
        assert_eq!(config.media.advertised_address.to_string(), "192.0.2.10");

        let stereo = dir.path().join("stereo.wav");
        std::fs::write(
            &stereo,
            crate::media::wav::wav_bytes(1, 44_100, 2, 16, &[0; 8]),
        )
        .unwrap();
        for (path, words) in [
            (stereo, "44100 Hz"),
            (dir.path().join("missing.wav"), "cannot read"),
        ] {
            let err =
                Config::from_toml_str(&format!("[media]\nannouncement = \"{}\"", path.display()))
                    .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(words), "{message}");
            assert_eq!(key_of(err), "media.announcement");
        }
    }

    #[test]
    fn wrong_media_values_name_their_key() {
        let cases = [
            (
                "[media]\nbind_address = \"localhost\"",
                "media.bind_address",
            ),
            (
                "[media]\nbind_address = \"0.0.0.0\"",
                "media.advertised_address",
            ),
            ("[media]\nbind_address = \"::\"", "media.advertised_address"),
            (
                "[media]\nadvertised_address = \"media.example.com\"",
                "media.advertised_address",
            ),
            (
                "[media]\nadvertised_address = \"0.0.0.0\"",
                "media.advertised_address",
            ),
            ("[media]\nport_min = 20001", "media.port_min"),
            ("[media]\nport_min = 80", "media.port_min"),
            ("[media]\nport_min = 30000", "media.port_max"),
            ("[media]\nport_max = 70000", "media.port_max"),
            ("[media]\nport_max = \"high\"", "media.port_max"),
            ("[media]\nthreads = 65", "media.threads"),
            ("[media]\nvideo = true", "media.video"),
        ];
        for (text, key) in cases {
            let got = key_of(Config::from_toml_str(text).unwrap_err());
            assert_eq!(got, key, "{text}: got key {got}, want {key}");
        }
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

    const TEST_KEY: &str = include_str!("../tests/fixtures/TEST-ONLY-rbm-service-account-key.pem");
    const CLIENT_TOKEN: &str = "rbm-client-token-do-not-print";
    const AUTH_TOKEN: &str = "twilio-auth-token-do-not-print";
    const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

    /// A service-account key file as Google hands them out, in a temp dir
    /// that lives as long as the returned guard.
    fn key_file() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rbm.json");
        let json = serde_json::json!({
            "type": "service_account",
            "client_email": "slotgate@test.iam.gserviceaccount.com",
            "private_key": TEST_KEY,
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&path, json.to_string()).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    fn rbm_table(key_file: &str) -> String {
        format!(
            "[channels.rbm]\nagent_id = \"slotgate-agent\"\n\
             service_account_key_file = '{key_file}'\nclient_token = \"{CLIENT_TOKEN}\"\n"
        )
    }

    fn sms_table() -> String {
        format!(
            "[channels.sms]\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\n\
             from = \"+14155550100\"\nwebhook_url = \"https://slotgate.example.com/webhooks/twilio\"\n"
        )
    }

    #[test]
    fn the_channel_and_prompt_defaults_match_the_shipped_file() {
        let shipped = Config::from_toml_str(include_str!("../config/slotgate.toml")).unwrap();
        let empty = Config::from_toml_str("").unwrap();
        assert_eq!(
            format!("{:?}", shipped.channels),
            format!("{:?}", empty.channels)
        );
        assert_eq!(
            format!("{:?}", empty.channels),
            format!("{:?}", ChannelsConfig::default())
        );
        assert_eq!(shipped.prompts, empty.prompts);
        // The keys' defaults are the domain's own defaults.
        assert_eq!(empty.prompts, PromptConfig::default());
        assert_eq!(shipped.gate, empty.gate);
        let channels = &shipped.channels;
        assert_eq!(channels.plan.primary, Route::Simulator);
        assert_eq!(channels.plan.fallback, None);
        assert_eq!(channels.plan.max_attempts, 5);
        assert_eq!(channels.backoff_initial, Duration::from_secs(2));
        assert_eq!(channels.backoff_max, Duration::from_secs(300));
        assert_eq!(channels.simulator, AutoReply::Off);
        assert!(channels.rbm.is_none() && channels.sms.is_none());
        assert_eq!(shipped.prompts.request_ttl, Duration::from_secs(86_400));
        assert_eq!(shipped.prompts.fallback_time_zone, Tz::UTC);
    }

    #[test]
    fn rbm_as_primary_reads_the_key_file() {
        let (_dir, path) = key_file();
        let text = format!(
            "[channels]\nprimary = \"rbm\"\nfallback = \"sms\"\n{}{}",
            rbm_table(&path),
            sms_table()
        );
        let config = Config::from_toml_str(&text).unwrap();
        let channels = &config.channels;
        assert_eq!(channels.plan.primary, Route::Rcs);
        assert_eq!(channels.plan.fallback, Some(Route::Sms));
        let rbm = channels.rbm.as_ref().unwrap();
        assert_eq!(rbm.settings.base_url, RBM_BASE_URL);
        assert_eq!(rbm.settings.agent_id, "slotgate-agent");
        assert_eq!(
            rbm.settings.service_account.client_email,
            "slotgate@test.iam.gserviceaccount.com"
        );
        assert_eq!(rbm.settings.traffic_type, MessageTrafficType::Transaction);
        assert_eq!(rbm.settings.timeout, Duration::from_secs(10));
        assert_eq!(rbm.client_token.expose(), CLIENT_TOKEN);
        let sms = channels.sms.as_ref().unwrap();
        assert_eq!(sms.settings.base_url, TWILIO_BASE_URL);
        assert_eq!(
            sms.settings.from,
            Sender::Number(E164::from_e164("+14155550100").unwrap())
        );
        assert_eq!(sms.settings.status_callback, None);
        assert_eq!(sms.settings.auth_token.expose(), AUTH_TOKEN);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let (_dir, path) = key_file();
        let text = format!(
            "[channels]\nprimary = \"rbm\"\nfallback = \"sms\"\n{}{}",
            rbm_table(&path),
            sms_table()
        );
        let config = Config::from_toml_str(&text).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(CLIENT_TOKEN));
        assert!(!printed.contains(AUTH_TOKEN));
        assert!(!printed.contains("PRIVATE KEY"));
        // A secret of the wrong type is not quoted back either.
        let err = Config::from_toml_str("[channels.sms]\nauth_token = 8675309123\n").unwrap_err();
        assert!(!err.to_string().contains("8675309123"), "{err}");
        assert_eq!(key_of(err), "channels.sms.auth_token");
    }

    #[test]
    fn a_bad_key_file_is_named_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.json").display().to_string();
        let pem = dir.path().join("key.pem");
        std::fs::write(&pem, TEST_KEY).unwrap();
        let broken = dir.path().join("broken.json");
        std::fs::write(
            &broken,
            serde_json::json!({
                "client_email": "a@b.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            })
            .to_string(),
        )
        .unwrap();
        for path in [
            missing,
            pem.display().to_string(),
            broken.display().to_string(),
            String::new(),
        ] {
            let text = format!("[channels]\nprimary = \"rbm\"\n{}", rbm_table(&path));
            let err = Config::from_toml_str(&text).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("PRIVATE KEY"), "{message}");
            assert!(!message.contains(CLIENT_TOKEN), "{message}");
            assert_eq!(key_of(err), "channels.rbm.service_account_key_file");
        }
    }

    #[test]
    fn sms_senders_and_urls() {
        let service = format!(
            "[channels]\nprimary = \"sms\"\n[channels.sms]\naccount_sid = \"{ACCOUNT_SID}\"\n\
             auth_token = \"t\"\nmessaging_service_sid = \"MG0123456789abcdef0123456789abcdef\"\n\
             webhook_url = \"https://example.com/sms\"\n\
             status_callback_url = \"https://example.com/status\"\ntimeout_ms = 2500\n"
        );
        let config = Config::from_toml_str(&service).unwrap();
        let sms = config.channels.sms.unwrap();
        assert_eq!(
            sms.settings.from,
            Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into())
        );
        assert_eq!(
            sms.settings.status_callback.as_deref(),
            Some("https://example.com/status")
        );
        assert_eq!(sms.webhook_url, "https://example.com/sms");
        assert_eq!(sms.settings.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn the_simulator_answers_as_configured() {
        let fixed = Config::from_toml_str(
            "[channels.simulator]\nauto_reply = \"after_15\"\nauto_reply_delay_ms = 500",
        )
        .unwrap();
        assert_eq!(
            fixed.channels.simulator,
            AutoReply::Fixed {
                answer: SimulatedAnswer::In15Minutes,
                after: TimeDelta::milliseconds(500)
            }
        );
        let mix = Config::from_toml_str(
            "[channels.simulator]\nauto_reply = \"mix\"\nseed = 7\n\
             mix = { none = 2, now = 5, decline = 0 }",
        )
        .unwrap();
        assert_eq!(
            mix.channels.simulator,
            AutoReply::Mix {
                // In name order, whatever the order written.
                weights: vec![
                    (SimulatedAnswer::Decline, 0),
                    (SimulatedAnswer::NoReply, 2),
                    (SimulatedAnswer::Now, 5)
                ],
                after: TimeDelta::seconds(2),
                seed: 7
            }
        );
    }

    #[test]
    fn prompt_keys_override_the_policy_defaults() {
        let config = Config::from_toml_str(
            "[prompts]\nrequest_ttl_secs = 3600\nslot_length_mins = 60\ndelays_mins = [10]\n\
             calling_hours = \"09:30–20:00\"\nmax_choices = 6\nhistory_days = 60\n\
             cool_down_days = 14\nweekly_cap = 2\nfallback_time_zone = \"Europe/Paris\"",
        )
        .unwrap();
        let prompts = config.prompts;
        assert_eq!(prompts.request_ttl, Duration::from_secs(3600));
        assert_eq!(prompts.options.slot_length, TimeDelta::hours(1));
        assert_eq!(prompts.options.delays, vec![TimeDelta::minutes(10)]);
        assert_eq!(prompts.options.calling_hours.to_string(), "09:30–20:00");
        assert_eq!(prompts.options.max_choices, 6);
        // Keys not in the file keep the policy's defaults.
        assert_eq!(prompts.options.ranges, OptionPolicy::default().ranges);
        assert_eq!(prompts.ranking.lookback, TimeDelta::days(60));
        assert_eq!(prompts.ranking.cool_down, TimeDelta::days(14));
        assert_eq!(prompts.ranking.weekly_cap, 2);
        assert_eq!(prompts.ranking.cap_window, TimeDelta::days(7));
        assert_eq!(prompts.fallback_time_zone, chrono_tz::Europe::Paris);
    }

    #[test]
    fn channel_and_prompt_errors_name_their_key() {
        let sms = sms_table();
        let cases = [
            (
                "[channels]\nprimary = \"pigeon\"".to_string(),
                "channels.primary",
            ),
            ("[channels]\nprimary = \"rbm\"".into(), "channels.rbm"),
            ("[channels]\nprimary = \"sms\"".into(), "channels.sms"),
            ("[channels]\nfallback = \"sms\"".into(), "channels.sms"),
            ("[channels]\nfallback = \"rbm\"".into(), "channels.fallback"),
            (
                format!("[channels]\nprimary = \"sms\"\nfallback = \"sms\"\n{sms}"),
                "channels.fallback",
            ),
            (
                "[channels]\nmax_attempts = 0".into(),
                "channels.max_attempts",
            ),
            (
                "[channels]\nbackoff_initial_ms = 0".into(),
                "channels.backoff_initial_ms",
            ),
            (
                "[channels]\nbackoff_initial_ms = 9000\nbackoff_max_secs = 1".into(),
                "channels.backoff_max_secs",
            ),
            ("[channels]\nretries = 1".into(), "channels.retries"),
            (
                "[channels.simulator]\nauto_reply = \"maybe\"".into(),
                "channels.simulator.auto_reply",
            ),
            (
                "[channels.simulator]\nauto_reply = \"mix\"".into(),
                "channels.simulator.mix",
            ),
            (
                "[channels.simulator]\nauto_reply = \"mix\"\nmix = { now = 0 }".into(),
                "channels.simulator.mix",
            ),
            (
                "[channels.simulator]\nmix = { soon = 1 }".into(),
                "channels.simulator.mix",
            ),
            (
                "[channels.rbm]\nagent_id = \"a\"".into(),
                "channels.rbm.service_account_key_file",
            ),
            (
                "[channels.rbm]\nbase_url = \"ftp://x\"".into(),
                "channels.rbm.base_url",
            ),
            (
                "[channels.rbm]\nagent_id = \"\"".into(),
                "channels.rbm.agent_id",
            ),
            (
                sms.replace(ACCOUNT_SID, "AC123"),
                "channels.sms.account_sid",
            ),
            (
                sms.replace("+14155550100", "4155550100"),
                "channels.sms.from",
            ),
            (
                sms.replace("from = \"+14155550100\"", ""),
                "channels.sms.from",
            ),
            (
                format!("{sms}messaging_service_sid = \"MG0123456789abcdef0123456789abcdef\""),
                "channels.sms.from",
            ),
            (
                sms.replace("from = \"+14155550100\"", "messaging_service_sid = \"MG1\""),
                "channels.sms.messaging_service_sid",
            ),
            (
                sms.replace(
                    "webhook_url = \"https://slotgate.example.com/webhooks/twilio\"",
                    "",
                ),
                "channels.sms.webhook_url",
            ),
            (
                format!("{sms}status_callback_url = \"/status\""),
                "channels.sms.status_callback_url",
            ),
            (sms.replace(AUTH_TOKEN, ""), "channels.sms.auth_token"),
            (format!("{sms}timeout_ms = 1"), "channels.sms.timeout_ms"),
            (
                "[prompts]\nrequest_ttl_secs = 1".into(),
                "prompts.request_ttl_secs",
            ),
            (
                "[prompts]\nslot_length_mins = 0".into(),
                "prompts.slot_length_mins",
            ),
            (
                "[prompts]\ndelays_mins = [15, 0]".into(),
                "prompts.delays_mins",
            ),
            (
                "[prompts]\ncalling_hours = \"8am-9pm\"".into(),
                "prompts.calling_hours",
            ),
            (
                "[prompts]\ncalling_hours = \"21:00-08:00\"".into(),
                "prompts.calling_hours",
            ),
            ("[prompts]\nmax_choices = 12".into(), "prompts.max_choices"),
            ("[prompts]\nmax_choices = 1".into(), "prompts.max_choices"),
            ("[prompts]\nhistory_days = 0".into(), "prompts.history_days"),
            (
                "[prompts]\ncool_down_days = 120".into(),
                "prompts.cool_down_days",
            ),
            ("[prompts]\nweekly_cap = 0".into(), "prompts.weekly_cap"),
            (
                "[prompts]\nfallback_time_zone = \"Mars/Olympus\"".into(),
                "prompts.fallback_time_zone",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(&text).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains(AUTH_TOKEN), "{message}");
            let got = key_of(err);
            assert_eq!(got, key, "{text}: got key {got}, want {key}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn channel_keys_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("slotgate.toml", "")?;
            jail.set_env("SLOTGATE_CHANNELS__PRIMARY", "sms");
            let err = Config::load(Path::new("slotgate.toml")).unwrap_err();
            assert_eq!(key_of(err), "channels.sms");

            jail.create_file("slotgate.toml", &sms_table())?;
            // All digits: read from the environment as a number, refused
            // with the way out and without the value.
            jail.set_env("SLOTGATE_CHANNELS__SMS__AUTH_TOKEN", "0123456789");
            let err = Config::load(Path::new("slotgate.toml")).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("quote"), "{message}");
            assert!(!message.contains("123456789"), "{message}");
            assert_eq!(key_of(err), "channels.sms.auth_token");
            jail.set_env("SLOTGATE_CHANNELS__SMS__AUTH_TOKEN", "\"0123456789\"");
            jail.set_env("SLOTGATE_CHANNELS__SMS__FROM", "\"+33612345678\"");
            jail.set_env("SLOTGATE_CHANNELS__SIMULATOR__AUTO_REPLY", "now");
            jail.set_env("SLOTGATE_PROMPTS__FALLBACK_TIME_ZONE", "America/New_York");
            jail.set_env("SLOTGATE_PROMPTS__DELAYS_MINS", "[5, 10]");
            let config = Config::load(Path::new("slotgate.toml")).unwrap();
            assert_eq!(config.channels.plan.primary, Route::Sms);
            let sms = config.channels.sms.unwrap();
            assert_eq!(sms.settings.auth_token.expose(), "0123456789");
            assert_eq!(
                sms.settings.from,
                Sender::Number(E164::from_e164("+33612345678").unwrap())
            );
            assert!(matches!(
                config.channels.simulator,
                AutoReply::Fixed {
                    answer: SimulatedAnswer::Now,
                    ..
                }
            ));
            assert_eq!(
                config.prompts.fallback_time_zone,
                chrono_tz::America::New_York
            );
            assert_eq!(
                config.prompts.options.delays,
                vec![TimeDelta::minutes(5), TimeDelta::minutes(10)]
            );
            Ok(())
        });
    }
}
