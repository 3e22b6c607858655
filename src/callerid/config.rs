//! The `[caller_id]` and `[stir_shaken]` sections: raw serde structs as
//! written in the file, and their validation into typed settings.
//!
//! Both sections default to doing nothing (no number rewritten, nothing
//! signed), so a file without them behaves as before. Numbers are checked
//! as E.164 and the signing key is read here, at start: a bad pool number
//! or an unreadable key must stop slotgate before it carries a call, and
//! every error names the key at fault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::passport::Attest;
use super::signer::Signer;
use crate::config::ConfigError;
use crate::consent::E164;

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `[caller_id]` as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCallerId {
    global_default: String,
    health_window: u32,
    health_min_calls: u32,
    min_answer_rate_percent: u32,
    flag_cool_down_secs: u64,
    enterprises: Vec<RawEnterprise>,
}

impl Default for RawCallerId {
    fn default() -> Self {
        RawCallerId {
            global_default: String::new(),
            health_window: 20,
            health_min_calls: 5,
            min_answer_rate_percent: 0,
            flag_cool_down_secs: 86_400,
            enterprises: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEnterprise {
    id: String,
    default_number: String,
    allow_pbx_number: bool,
    display_name: String,
    logo_url: String,
    // Sorted by name so that errors and explanations come out in one order.
    campaigns: BTreeMap<String, String>,
    pool: Vec<RawPoolNumber>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPoolNumber {
    number: String,
    attest: String,
    areas: Vec<String>,
}

/// `[stir_shaken]` as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStirShaken {
    enabled: bool,
    key_file: String,
    x5u: String,
    unknown_attest: String,
    rcd: String,
    call_reason: String,
}

impl Default for RawStirShaken {
    fn default() -> Self {
        RawStirShaken {
            enabled: false,
            key_file: String::new(),
            x5u: String::new(),
            unknown_attest: "B".into(),
            rcd: "off".into(),
            call_reason: String::new(),
        }
    }
}

/// One number of an enterprise's local-presence pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNumber {
    pub number: E164,
    pub attest: Attest,
    /// E.164 prefixes of the callees this number is local to (`+1212`,
    /// `+331`); a NANP number is always local to its own area code.
    pub areas: Vec<String>,
    /// Country calling code and region, worked out once: the numbering
    /// plan lookup is the dearest step of a call's selection.
    pub country: Country,
}

/// Where a number sits, for the same-country match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    pub code: u16,
    pub region: Option<crate::consent::Region>,
}

impl Country {
    pub fn of(number: &E164) -> Option<Country> {
        number.parts().map(|p| Country {
            code: p.country_code,
            region: p.region,
        })
    }
}

impl PoolNumber {
    pub fn new(number: E164, attest: Attest, areas: Vec<String>) -> PoolNumber {
        // A validated E.164 number always parses; code 0 matches nothing.
        let country = Country::of(&number).unwrap_or(Country {
            code: 0,
            region: None,
        });
        PoolNumber {
            number,
            attest,
            areas,
            country,
        }
    }
}

/// An enterprise's numbers and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseNumbers {
    pub id: String,
    pub default_number: Option<E164>,
    pub allow_pbx_number: bool,
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    pub campaigns: BTreeMap<String, E164>,
    pub pool: Vec<PoolNumber>,
    /// Region national numbers are read in: that of the default number,
    /// else of the first pool number.
    pub region: Option<crate::consent::Region>,
}

impl EnterpriseNumbers {
    /// The attestation the pool gives `number`, if the pool lists it.
    pub fn attest_of(&self, number: &E164) -> Option<Attest> {
        self.pool
            .iter()
            .find(|p| &p.number == number)
            .map(|p| p.attest)
    }
}

/// When a pool number counts as healthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Answer rate is measured over this many of the number's last calls.
    pub window: usize,
    /// Fewer calls than this say nothing about the number: it is healthy.
    pub min_calls: usize,
    /// Below this answer rate (0..=1) a number is unhealthy; 0 turns it off.
    pub min_answer_rate: f64,
    /// How long a flagged number is left out of local presence.
    pub flag_cool_down: Duration,
}

/// Validated `[caller_id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerIdConfig {
    pub global_default: Option<E164>,
    /// The global default's region, for callers of no enterprise.
    pub region: Option<crate::consent::Region>,
    pub health: HealthPolicy,
    pub enterprises: Vec<EnterpriseNumbers>,
}

impl CallerIdConfig {
    /// Whether any rule can choose a number (otherwise From is never touched).
    pub fn rewrites(&self) -> bool {
        self.global_default.is_some() || !self.enterprises.is_empty()
    }

    pub fn enterprise(&self, id: &str) -> Option<&EnterpriseNumbers> {
        self.enterprises.iter().find(|e| e.id == id)
    }
}

/// How rich call data is sent (RFC 9795).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcdMode {
    Off,
    /// A second Identity header with a `ppt=rcd` PASSporT.
    Separate,
    /// `rcd` and `crn` claims inside the SHAKEN PASSporT.
    Combined,
}

/// Validated `[stir_shaken]` with the signing key loaded.
#[derive(Debug, Clone)]
pub struct StirShakenConfig {
    pub signer: Arc<Signer>,
    pub key_file: PathBuf,
    pub x5u: String,
    pub unknown_attest: Attest,
    pub rcd: RcdMode,
    pub call_reason: Option<String>,
}

/// Both sections, as `Config::caller_id`.
#[derive(Debug, Clone)]
pub struct CallerIdSettings {
    pub caller_id: CallerIdConfig,
    /// `None`: signing is off.
    pub stir_shaken: Option<StirShakenConfig>,
}

impl Default for CallerIdSettings {
    fn default() -> Self {
        // The raw defaults name no file and enable nothing, so they validate.
        let health = health_policy(&RawCallerId::default());
        CallerIdSettings {
            caller_id: CallerIdConfig {
                global_default: None,
                region: None,
                health,
                enterprises: Vec::new(),
            },
            stir_shaken: None,
        }
    }
}

fn health_policy(raw: &RawCallerId) -> HealthPolicy {
    HealthPolicy {
        window: raw.health_window as usize,
        min_calls: raw.health_min_calls as usize,
        min_answer_rate: f64::from(raw.min_answer_rate_percent) / 100.0,
        flag_cool_down: Duration::from_secs(raw.flag_cool_down_secs),
    }
}

fn number(key: &str, value: &str) -> Result<E164, ConfigError> {
    E164::from_e164(value.trim()).map_err(|_| {
        key_error(
            key,
            format!("{value:?} is not a valid E.164 number (write it as +CC…, e.g. +12125550100)"),
        )
    })
}

fn optional_number(key: &str, value: &str) -> Result<Option<E164>, ConfigError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        number(key, value).map(Some)
    }
}

fn attest(key: &str, value: &str) -> Result<Attest, ConfigError> {
    Attest::parse(value.trim()).ok_or_else(|| {
        key_error(
            key,
            format!("{value:?} is not an attestation level: use \"A\", \"B\" or \"C\""),
        )
    })
}

/// A single line without characters that would break a JSON claim's
/// meaning on a handset (control characters).
fn text(key: &str, value: &str, max: usize) -> Result<Option<String>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(key_error(
            key,
            format!("must be one line of at most {max} characters"),
        ));
    }
    Ok(Some(value.to_string()))
}

fn https_url(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    // Written between angle brackets in the Identity header: it must not
    // be able to close them or start another parameter.
    let ok = url::Url::parse(value)
        .ok()
        .filter(|u| u.scheme() == "https" && u.has_host())
        .is_some()
        && !value.contains(['<', '>', ';', ' ', '"']);
    if !ok {
        return Err(key_error(
            key,
            format!(
                "`{value}` is not an absolute https URL (e.g. https://cert.example.com/sg.pem)"
            ),
        ));
    }
    Ok(Some(value.to_string()))
}

/// Checks both sections; the key file is read here.
pub fn validate(raw: &RawCallerId, stir: &RawStirShaken) -> Result<CallerIdSettings, ConfigError> {
    let global_default = optional_number("caller_id.global_default", &raw.global_default)?;
    if !(1..=10_000).contains(&raw.health_window) {
        return Err(key_error(
            "caller_id.health_window",
            "must be between 1 and 10000",
        ));
    }
    if raw.health_min_calls as usize > raw.health_window as usize {
        return Err(key_error(
            "caller_id.health_min_calls",
            "must not exceed caller_id.health_window",
        ));
    }
    if raw.min_answer_rate_percent > 100 {
        return Err(key_error(
            "caller_id.min_answer_rate_percent",
            "must be between 0 and 100",
        ));
    }
    if raw.flag_cool_down_secs > 365 * 86_400 {
        return Err(key_error(
            "caller_id.flag_cool_down_secs",
            "must be at most 31536000 (a year)",
        ));
    }
    let mut enterprises: Vec<EnterpriseNumbers> = Vec::with_capacity(raw.enterprises.len());
    for (i, e) in raw.enterprises.iter().enumerate() {
        let at = |key: &str| format!("caller_id.enterprises[{i}].{key}");
        let id = e.id.trim().to_string();
        if id.is_empty() || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(key_error(
                &at("id"),
                "must be the enterprise's id (no spaces)",
            ));
        }
        if enterprises.iter().any(|other| other.id == id) {
            return Err(key_error(
                &at("id"),
                format!("enterprise {id:?} is listed twice"),
            ));
        }
        let mut campaigns = BTreeMap::new();
        for (name, value) in &e.campaigns {
            campaigns.insert(
                name.clone(),
                number(&at(&format!("campaigns.{name}")), value)?,
            );
        }
        let mut pool: Vec<PoolNumber> = Vec::with_capacity(e.pool.len());
        for (j, p) in e.pool.iter().enumerate() {
            let key = |k: &str| at(&format!("pool[{j}].{k}"));
            let n = number(&key("number"), &p.number)?;
            if pool.iter().any(|q| q.number == n) {
                return Err(key_error(
                    &key("number"),
                    format!("{n} is listed twice in the pool"),
                ));
            }
            let level = attest(&key("attest"), &p.attest)?;
            let mut areas = Vec::with_capacity(p.areas.len());
            for area in &p.areas {
                let area = area.trim();
                let ok = area.len() >= 2
                    && area.starts_with('+')
                    && area[1..].chars().all(|c| c.is_ascii_digit());
                if !ok {
                    return Err(key_error(
                        &key("areas"),
                        format!("{area:?} is not an E.164 prefix (e.g. \"+1212\" or \"+331\")"),
                    ));
                }
                areas.push(area.to_string());
            }
            pool.push(PoolNumber::new(n, level, areas));
        }
        let default_number = optional_number(&at("default_number"), &e.default_number)?;
        let region = default_number
            .as_ref()
            .and_then(E164::region)
            .or_else(|| pool.first().and_then(|p| p.country.region));
        enterprises.push(EnterpriseNumbers {
            id,
            region,
            default_number,
            allow_pbx_number: e.allow_pbx_number,
            display_name: text(&at("display_name"), &e.display_name, 64)?,
            logo_url: https_url(&at("logo_url"), &e.logo_url)?,
            campaigns,
            pool,
        });
    }
    let caller_id = CallerIdConfig {
        region: global_default.as_ref().and_then(E164::region),
        global_default,
        health: health_policy(raw),
        enterprises,
    };

    let unknown_attest = attest("stir_shaken.unknown_attest", &stir.unknown_attest)?;
    let rcd = match stir.rcd.trim() {
        "off" => RcdMode::Off,
        "separate" => RcdMode::Separate,
        "combined" => RcdMode::Combined,
        other => {
            return Err(key_error(
                "stir_shaken.rcd",
                format!("`{other}` is not allowed: use \"off\", \"separate\" or \"combined\""),
            ))
        }
    };
    let call_reason = text("stir_shaken.call_reason", &stir.call_reason, 64)?;
    let stir_shaken = if stir.enabled {
        let key_file = stir.key_file.trim();
        if key_file.is_empty() {
            return Err(key_error(
                "stir_shaken.key_file",
                "stir_shaken.enabled is true but no key file is named",
            ));
        }
        let signer = Signer::from_pem_file(std::path::Path::new(key_file))
            .map_err(|e| key_error("stir_shaken.key_file", e.to_string()))?;
        let x5u = https_url("stir_shaken.x5u", &stir.x5u)?.ok_or_else(|| {
            key_error(
                "stir_shaken.x5u",
                "required when stir_shaken.enabled is true: the https URL of the certificate",
            )
        })?;
        Some(StirShakenConfig {
            signer: Arc::new(signer),
            key_file: PathBuf::from(key_file),
            x5u,
            unknown_attest,
            rcd,
            call_reason,
        })
    } else {
        None
    };
    Ok(CallerIdSettings {
        caller_id,
        stir_shaken,
    })
}
