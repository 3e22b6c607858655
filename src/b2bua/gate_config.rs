//! The `[gate]` section: how an INVITE from the PBX is tied to an
//! enterprise and a campaign, and how each campaign holds calls while the
//! person is asked.
//!
//! Holding is a per-campaign promise to the PBX (how long it waits, whether
//! it hears ringing or an announcement, what a "later" answer looks like),
//! so every hold setting has a section default and optional per-campaign
//! overrides; a campaign not listed uses the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{key_error, parse_calling_hours, parse_source, ConfigError};
use crate::consent::CallingHours;

/// What the PBX hears while its INVITE is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldSignal {
    /// `180 Ringing`; media stays end to end.
    Ringing,
    /// `183 Session Progress` with slotgate's announcement as early media;
    /// slotgate then stays in the media path.
    EarlyMedia,
}

/// What happens when the hold window passes without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReplyPolicy {
    /// `480`; the request stays open and a late answer schedules a callback.
    Reject,
    /// Forward the call anyway.
    Pass,
}

/// What an INVITE that cannot be tied to an enterprise gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnclassifiedPolicy {
    /// Forwarded unchanged, as a transparent B2BUA would.
    Pass,
    /// `403 Forbidden`.
    Reject,
}

/// What the gate does when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorPolicy {
    /// `503` with `Retry-After`: the PBX may try again.
    Reject,
    /// Forward unchecked (the call goes out without consent).
    Pass,
}

/// How one campaign holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignGate {
    pub hold_window: Duration,
    pub hold_with: HoldSignal,
    pub on_no_reply: NoReplyPolicy,
    /// The final status sent when the person picks a later time.
    pub later_status: u16,
    pub calling_hours: CallingHours,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    pub enabled: bool,
    pub enterprise_header: String,
    pub campaign_header: String,
    /// Source networks and the enterprise whose PBX sits there; first match.
    pub sources: Vec<(IpNet, String)>,
    /// PBX digest users and their enterprise.
    pub digest_users: BTreeMap<String, String>,
    pub default_enterprise: Option<String>,
    pub default_campaign: String,
    pub on_unclassified: UnclassifiedPolicy,
    pub on_store_error: StoreErrorPolicy,
    /// Text of the `Reason` header on a `603`.
    pub decline_reason: String,
    pub defaults: CampaignGate,
    pub campaigns: BTreeMap<String, CampaignGate>,
}

impl GateConfig {
    /// Whether any campaign holds with early media (so media is anchored).
    pub fn holds_with_early_media(&self) -> bool {
        std::iter::once(&self.defaults)
            .chain(self.campaigns.values())
            .any(|c| c.hold_with == HoldSignal::EarlyMedia)
    }

    /// The hold settings of `campaign` (the defaults when not listed).
    pub fn campaign(&self, campaign: &str) -> &CampaignGate {
        self.campaigns.get(campaign).unwrap_or(&self.defaults)
    }
}

impl Default for GateConfig {
    fn default() -> Self {
        // Constant input, checked by `defaults_hold_25_seconds…` below.
        #[allow(clippy::expect_used)]
        RawGate::default()
            .validate()
            .expect("the [gate] defaults are valid")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    cidr: String,
    enterprise: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCampaignGate {
    hold_window_secs: Option<u64>,
    hold_with: Option<String>,
    on_no_reply: Option<String>,
    later_status: Option<u16>,
    calling_hours: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGate {
    enabled: bool,
    enterprise_header: String,
    campaign_header: String,
    sources: Vec<RawSource>,
    digest_users: BTreeMap<String, String>,
    default_enterprise: String,
    default_campaign: String,
    on_unclassified: String,
    on_store_error: String,
    decline_reason: String,
    hold_window_secs: u64,
    hold_with: String,
    on_no_reply: String,
    later_status: u16,
    calling_hours: String,
    campaigns: BTreeMap<String, RawCampaignGate>,
}

impl Default for RawGate {
    fn default() -> Self {
        RawGate {
            enabled: true,
            enterprise_header: "X-Slotgate-Enterprise".into(),
            campaign_header: "X-Slotgate-Campaign".into(),
            sources: Vec::new(),
            digest_users: BTreeMap::new(),
            default_enterprise: String::new(),
            default_campaign: "default".into(),
            on_unclassified: "pass".into(),
            on_store_error: "reject".into(),
            decline_reason: "Declined by callee".into(),
            hold_window_secs: 25,
            hold_with: "180".into(),
            on_no_reply: "reject".into(),
            later_status: 480,
            calling_hours: "08:00-21:00".into(),
            campaigns: BTreeMap::new(),
        }
    }
}

fn header_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(key_error(
            key,
            format!("`{value}` is not a SIP header name"),
        ));
    }
    Ok(value.to_string())
}

fn hold_window(key: &str, secs: u64) -> Result<Duration, ConfigError> {
    // A PBX gives up on a ringing call after a few minutes at most; a hold
    // beyond that is a call nobody is waiting for.
    if !(1..=600).contains(&secs) {
        return Err(key_error(key, "must be between 1 and 600 seconds"));
    }
    Ok(Duration::from_secs(secs))
}

fn hold_signal(key: &str, value: &str) -> Result<HoldSignal, ConfigError> {
    match value.trim() {
        "180" => Ok(HoldSignal::Ringing),
        "183" => Ok(HoldSignal::EarlyMedia),
        other => Err(key_error(
            key,
            format!("`{other}` is not allowed: use \"180\" (ringing) or \"183\" (early media)"),
        )),
    }
}

fn no_reply(key: &str, value: &str) -> Result<NoReplyPolicy, ConfigError> {
    match value.trim() {
        "reject" => Ok(NoReplyPolicy::Reject),
        "pass" => Ok(NoReplyPolicy::Pass),
        other => Err(key_error(
            key,
            format!("`{other}` is not allowed: use \"reject\" or \"pass\""),
        )),
    }
}

fn later_status(key: &str, code: u16) -> Result<u16, ConfigError> {
    // Final failure responses a PBX treats as "not now" or "no": a 2xx or
    // 3xx would connect or redirect the call.
    if !(400..=699).contains(&code) || code == 401 || code == 407 {
        return Err(key_error(
            key,
            format!("{code} is not allowed: use a 4xx–6xx final status such as 480, 486 or 603"),
        ));
    }
    Ok(code)
}

impl RawGate {
    pub(crate) fn validate(&self) -> Result<GateConfig, ConfigError> {
        let sources = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let net = parse_source(&format!("gate.sources[{i}].cidr"), &s.cidr)?;
                let enterprise = s.enterprise.trim();
                if enterprise.is_empty() {
                    return Err(key_error(
                        &format!("gate.sources[{i}].enterprise"),
                        "must name an enterprise id",
                    ));
                }
                Ok((net, enterprise.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((user, _)) = self.digest_users.iter().find(|(_, e)| e.trim().is_empty()) {
            return Err(key_error(
                &format!("gate.digest_users.{user}"),
                "must name an enterprise id",
            ));
        }
        let default_campaign = self.default_campaign.trim();
        if default_campaign.is_empty() {
            return Err(key_error("gate.default_campaign", "must not be empty"));
        }
        let on_unclassified = match self.on_unclassified.trim() {
            "pass" => UnclassifiedPolicy::Pass,
            "reject" => UnclassifiedPolicy::Reject,
            other => {
                return Err(key_error(
                    "gate.on_unclassified",
                    format!("`{other}` is not allowed: use \"pass\" or \"reject\""),
                ))
            }
        };
        let on_store_error = match self.on_store_error.trim() {
            "reject" => StoreErrorPolicy::Reject,
            "pass" => StoreErrorPolicy::Pass,
            other => {
                return Err(key_error(
                    "gate.on_store_error",
                    format!("`{other}` is not allowed: use \"reject\" or \"pass\""),
                ))
            }
        };
        if self.decline_reason.contains(['"', '\\', '\r', '\n']) {
            return Err(key_error(
                "gate.decline_reason",
                "must be one line without quotes or backslashes",
            ));
        }
        let defaults = CampaignGate {
            hold_window: hold_window("gate.hold_window_secs", self.hold_window_secs)?,
            hold_with: hold_signal("gate.hold_with", &self.hold_with)?,
            on_no_reply: no_reply("gate.on_no_reply", &self.on_no_reply)?,
            later_status: later_status("gate.later_status", self.later_status)?,
            calling_hours: parse_calling_hours("gate.calling_hours", &self.calling_hours)?,
        };
        let mut campaigns = BTreeMap::new();
        for (name, raw) in &self.campaigns {
            let key = |k: &str| format!("gate.campaigns.{name}.{k}");
            let c = CampaignGate {
                hold_window: match raw.hold_window_secs {
                    Some(s) => hold_window(&key("hold_window_secs"), s)?,
                    None => defaults.hold_window,
                },
                hold_with: match &raw.hold_with {
                    Some(v) => hold_signal(&key("hold_with"), v)?,
                    None => defaults.hold_with,
                },
                on_no_reply: match &raw.on_no_reply {
                    Some(v) => no_reply(&key("on_no_reply"), v)?,
                    None => defaults.on_no_reply,
                },
                later_status: match raw.later_status {
                    Some(v) => later_status(&key("later_status"), v)?,
                    None => defaults.later_status,
                },
                calling_hours: match &raw.calling_hours {
                    Some(v) => parse_calling_hours(&key("calling_hours"), v)?,
                    None => defaults.calling_hours,
                },
            };
            campaigns.insert(name.clone(), c);
        }
        let default_enterprise = Some(self.default_enterprise.trim())
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        Ok(GateConfig {
            enabled: self.enabled,
            enterprise_header: header_name("gate.enterprise_header", &self.enterprise_header)?,
            campaign_header: header_name("gate.campaign_header", &self.campaign_header)?,
            sources,
            digest_users: self
                .digest_users
                .iter()
                .map(|(u, e)| (u.clone(), e.trim().to_string()))
                .collect(),
            default_enterprise,
            default_campaign: default_campaign.to_string(),
            on_unclassified,
            on_store_error,
            decline_reason: self.decline_reason.trim().to_string(),
            defaults,
            campaigns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<GateConfig, ConfigError> {
        let raw: RawGate = figment::Figment::new()
            .merge(figment::providers::Serialized::defaults(RawGate::default()))
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
            .extract()
            .map_err(|e| key_error("parse", e.to_string()))?;
        raw.validate()
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn defaults_hold_25_seconds_with_ringing_and_reject_after() {
        let g = load("").expect("defaults are valid");
        assert!(g.enabled);
        assert_eq!(g.defaults.hold_window, Duration::from_secs(25));
        assert_eq!(g.defaults.hold_with, HoldSignal::Ringing);
        assert_eq!(g.defaults.on_no_reply, NoReplyPolicy::Reject);
        assert_eq!(g.defaults.later_status, 480);
        assert_eq!(g.on_unclassified, UnclassifiedPolicy::Pass);
        assert_eq!(g, GateConfig::default());
    }

    #[test]
    fn a_campaign_overrides_only_what_it_names() {
        let g = load(
            "[campaigns.spring]\nhold_window_secs = 40\nhold_with = \"183\"\n\
             later_status = 486\n",
        )
        .expect("valid");
        let spring = g.campaign("spring");
        assert_eq!(spring.hold_window, Duration::from_secs(40));
        assert_eq!(spring.hold_with, HoldSignal::EarlyMedia);
        assert_eq!(spring.later_status, 486);
        assert_eq!(spring.on_no_reply, NoReplyPolicy::Reject);
        assert_eq!(g.campaign("other"), &g.defaults);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("hold_window_secs = 0", "gate.hold_window_secs"),
            ("hold_with = \"200\"", "gate.hold_with"),
            ("on_no_reply = \"maybe\"", "gate.on_no_reply"),
            ("later_status = 200", "gate.later_status"),
            ("calling_hours = \"21:00-08:00\"", "gate.calling_hours"),
            ("on_unclassified = \"drop\"", "gate.on_unclassified"),
            ("on_store_error = \"ignore\"", "gate.on_store_error"),
            ("enterprise_header = \"X Bad\"", "gate.enterprise_header"),
            ("default_campaign = \" \"", "gate.default_campaign"),
            (
                "[[sources]]\ncidr = \"10.0.0.300\"\nenterprise = \"e\"",
                "gate.sources[0].cidr",
            ),
            (
                "[[sources]]\ncidr = \"10.0.0.0/8\"\nenterprise = \"\"",
                "gate.sources[0].enterprise",
            ),
            ("[digest_users]\nalice = \"\"", "gate.digest_users.alice"),
            (
                "[campaigns.x]\nhold_window_secs = 9999",
                "gate.campaigns.x.hold_window_secs",
            ),
            (
                "[campaigns.x]\ncalling_hours = \"9-5\"",
                "gate.campaigns.x.calling_hours",
            ),
        ] {
            let err = load(toml).expect_err(toml);
            assert_eq!(key_of(err), key, "{toml}");
        }
    }
}
