//! The `[pacing]` section: whether this node re-originates scheduled
//! callbacks, how it claims them, and what it does for campaigns the API
//! has not described (order of the legs, agents, messages, detection).
//!
//! Messages are read and checked at start, like the media announcement: a
//! missing abandon message must stop slotgate before the first abandoned
//! person hears silence instead of the identification the law requires.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::config::{key_error, ConfigError};
use crate::media::amd::AmdSettings;
use crate::media::Announcement;
use crate::pacing::{Campaign, CampaignError, CampaignSettings, DialMode};

/// Which leg a placed call rings first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OrderPolicy {
    /// Agent-first for preview and progressive, customer-first for
    /// predictive and agentless.
    #[default]
    Auto,
    AgentFirst,
    CustomerFirst,
}

impl OrderPolicy {
    /// Whether a call of a campaign in `mode` rings the agent first.
    pub fn agent_first(self, mode: DialMode) -> bool {
        match self {
            OrderPolicy::Auto => matches!(mode, DialMode::Preview | DialMode::Progressive),
            OrderPolicy::AgentFirst => mode.uses_agents(),
            OrderPolicy::CustomerFirst => false,
        }
    }
}

/// Checked `[pacing]` settings.
#[derive(Debug, Clone)]
pub struct PacingConfig {
    pub enabled: bool,
    /// This node's name in leases and attempts.
    pub node: String,
    /// How long a claim holds; it must outlast ringing plus setup.
    pub lease: TimeDelta,
    pub claim_every: Duration,
    /// Most callbacks a node holds claimed and not yet dialled.
    pub claim_batch: i64,
    pub order: OrderPolicy,
    /// Agents available to a campaign without a count from the API.
    pub agents: u32,
    /// The agent leg's URI when a campaign names none; `None`: the PBX
    /// extension that made the original call.
    pub agent_target: Option<String>,
    pub abandon_message: Arc<Announcement>,
    pub machine_message: Option<Arc<Announcement>>,
    pub amd: AmdSettings,
    /// Settings of campaigns without a record from the API.
    pub defaults: Campaign,
    pub default_settings: CampaignSettings,
}

/// `[pacing]` as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPacing {
    enabled: bool,
    node: String,
    lease_secs: u64,
    claim_every_ms: u64,
    claim_batch: u64,
    order: OrderPolicy,
    agents: u32,
    agent_target: String,
    abandon_message: String,
    machine_message: String,
    amd: AmdSettings,
    defaults: CampaignSettings,
}

impl Default for RawPacing {
    fn default() -> Self {
        RawPacing {
            enabled: false,
            node: String::new(),
            lease_secs: 120,
            claim_every_ms: 200,
            claim_batch: 200,
            order: OrderPolicy::Auto,
            agents: 1,
            agent_target: String::new(),
            abandon_message: String::new(),
            machine_message: String::new(),
            amd: AmdSettings::default(),
            defaults: CampaignSettings {
                agents_target: 1,
                ..CampaignSettings::default()
            },
        }
    }
}

fn message(key: &str, path: &str) -> Result<Option<Arc<Announcement>>, ConfigError> {
    let path = path.trim();
    if path.is_empty() {
        return Ok(None);
    }
    Announcement::from_wav_file(Path::new(path))
        .map(|a| Some(Arc::new(a)))
        .map_err(|e| key_error(key, format!("{path} cannot be played: {e}")))
}

/// Three short tones: the placeholder until an operator records the
/// identification and opt-out message the law asks for.
fn built_in_abandon_message() -> Announcement {
    let mut samples = Vec::with_capacity(8_000 * 2);
    for _ in 0..3 {
        samples.extend((0..2_400).map(|i| {
            let t = f64::from(i) / 8_000.0;
            ((t * 2.0 * std::f64::consts::PI * 660.0).sin() * 8_000.0) as i16
        }));
        samples.extend(std::iter::repeat_n(0i16, 1_600));
    }
    Announcement::from_linear(&samples).unwrap_or_else(|_| Announcement::ringback())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "slotgate".to_string())
}

impl RawPacing {
    pub(crate) fn validate(&self) -> Result<PacingConfig, ConfigError> {
        let node = if self.node.trim().is_empty() {
            host_name()
        } else {
            self.node.trim().to_string()
        };
        if node.len() > 64 || node.chars().any(char::is_whitespace) {
            return Err(key_error(
                "pacing.node",
                "must be at most 64 characters without spaces",
            ));
        }
        if !(10..=3_600).contains(&self.lease_secs) {
            return Err(key_error(
                "pacing.lease_secs",
                "must be between 10 and 3600: a claim must outlast ringing and call setup",
            ));
        }
        if !(10..=10_000).contains(&self.claim_every_ms) {
            return Err(key_error(
                "pacing.claim_every_ms",
                "must be between 10 and 10000",
            ));
        }
        if !(1..=10_000).contains(&self.claim_batch) {
            return Err(key_error(
                "pacing.claim_batch",
                "must be between 1 and 10000",
            ));
        }
        if self.agents > 10_000 {
            return Err(key_error("pacing.agents", "must be at most 10000"));
        }
        let agent_target = match self.agent_target.trim() {
            "" => None,
            t if t.starts_with("sip:") && !t.contains(char::is_whitespace) => Some(t.to_string()),
            _ => {
                return Err(key_error(
                    "pacing.agent_target",
                    "must be empty or a sip: URI with an IP address, e.g. sip:queue@192.0.2.5:5060",
                ))
            }
        };
        self.amd
            .validate()
            .map_err(|e| key_error("pacing.amd", e.to_string()))?;
        let defaults = self.defaults.validate().map_err(|e| {
            let field = match &e {
                CampaignError::NotPositive { field }
                | CampaignError::NoAgents { field, .. }
                | CampaignError::NotAPercentage { field, .. }
                | CampaignError::OutOfRange { field, .. } => field.to_string(),
                CampaignError::Invalid { field, .. } => field.clone(),
            };
            key_error(&format!("pacing.defaults.{field}"), e.to_string())
        })?;
        let abandon_message = message("pacing.abandon_message", &self.abandon_message)?
            .unwrap_or_else(|| Arc::new(built_in_abandon_message()));
        Ok(PacingConfig {
            enabled: self.enabled,
            node,
            lease: TimeDelta::seconds(self.lease_secs as i64),
            claim_every: Duration::from_millis(self.claim_every_ms),
            claim_batch: self.claim_batch as i64,
            order: self.order,
            agents: self.agents,
            agent_target,
            abandon_message,
            machine_message: message("pacing.machine_message", &self.machine_message)?,
            amd: self.amd.clone(),
            defaults,
            default_settings: self.defaults.clone(),
        })
    }
}

impl Default for PacingConfig {
    fn default() -> Self {
        match RawPacing::default().validate() {
            Ok(config) => config,
            Err(e) => unreachable!("the built-in [pacing] defaults are valid: {e}"),
        }
    }
}
