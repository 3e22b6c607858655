//! A campaign's pacing settings, as an operator writes them, and the
//! checked form the pacer runs on.
//!
//! The settings arrive as JSON through the API, so every field has a
//! default and counts are read as signed numbers: a `-1` must be refused
//! with the field's name rather than fail deep inside a deserialiser.
//! [`CampaignSettings::validate`] is the only way to a [`Campaign`], so the
//! pacer never sees a configuration that cannot work.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::consent::{CallingHours, Region};

/// Shortest ring before a call may be given up as "no answer": shorter
/// rings reach voicemail-less people before they can pick up, and the
/// US telemarketing rule asks for 15 seconds.
pub const MIN_RING_TIMEOUT_SECS: f64 = 15.0;

/// Longest time an answered person may wait for an agent before the call
/// counts as abandoned (US and UK rules: two seconds).
pub const MAX_CONNECT_WITHIN_MS: i64 = 2_000;

/// How the campaign turns agents into calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DialMode {
    /// An agent sees the customer first and dials by accepting the preview.
    Preview,
    /// One call per free agent; never abandons while agents stay logged in.
    #[default]
    Progressive,
    /// Dials ahead of agents becoming free, from measured answer rates and
    /// handle times, within the abandon limit.
    Predictive,
    /// A recorded message only; no agents.
    Agentless,
}

impl DialMode {
    /// Whether calls of this mode end with an agent.
    pub fn uses_agents(self) -> bool {
        !matches!(self, DialMode::Agentless)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DialMode::Preview => "preview",
            DialMode::Progressive => "progressive",
            DialMode::Predictive => "predictive",
            DialMode::Agentless => "agentless",
        }
    }
}

/// Over which rolling window the abandon rate is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AbandonWindow {
    /// The US Telemarketing Sales Rule: per campaign over 30 days.
    #[default]
    #[serde(rename = "us_30_days")]
    Us30Days,
    /// Ofcom's persistent-misuse policy: per campaign over 24 hours.
    #[serde(rename = "uk_24_hours")]
    Uk24Hours,
}

impl AbandonWindow {
    pub fn length(self) -> TimeDelta {
        match self {
            AbandonWindow::Us30Days => TimeDelta::days(30),
            AbandonWindow::Uk24Hours => TimeDelta::hours(24),
        }
    }
}

/// The settings as written (JSON through the API, or a file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignSettings {
    pub mode: DialMode,
    /// Agents the campaign is staffed for; required in every mode with
    /// agents. Sizes the dial-ratio cap.
    pub agents_target: i64,
    pub limits: LimitSettings,
    pub abandon: AbandonSettings,
    pub calling_hours: HoursSettings,
    /// How long a call may ring before it is given up; at least 15 s.
    pub ring_timeout_secs: f64,
    pub predictive: PredictiveSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Channels of the trunk this campaign may hold at once.
    pub trunk_channels: i64,
    /// New calls per second toward the trunk (fractions allowed).
    pub calls_per_second: f64,
    /// Calls of this campaign at once, whatever the trunk allows.
    pub max_concurrent_calls: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbandonSettings {
    /// Highest abandoned share of person-answered calls, in percent.
    pub limit_percent: f64,
    pub window: AbandonWindow,
    /// An answered person not with an agent within this is abandoned.
    pub connect_within_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoursSettings {
    /// `HH:MM-HH:MM` in the callee's local time.
    pub default: String,
    /// Per region of the callee's number (ISO 3166 alpha-2, e.g. `GB`).
    pub overrides: BTreeMap<String, String>,
    /// The zone assumed when a number says nothing about its zone.
    pub fallback_zone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictiveSettings {
    /// Most calls in progress per staffed agent, whatever the forecast
    /// says: a bound on the damage of a wrong measurement.
    pub max_dial_ratio: f64,
}

impl Default for CampaignSettings {
    fn default() -> CampaignSettings {
        CampaignSettings {
            mode: DialMode::default(),
            agents_target: 0,
            limits: LimitSettings::default(),
            abandon: AbandonSettings::default(),
            calling_hours: HoursSettings::default(),
            ring_timeout_secs: 20.0,
            predictive: PredictiveSettings::default(),
        }
    }
}

impl Default for LimitSettings {
    fn default() -> LimitSettings {
        LimitSettings {
            trunk_channels: 30,
            calls_per_second: 5.0,
            max_concurrent_calls: 30,
        }
    }
}

impl Default for AbandonSettings {
    fn default() -> AbandonSettings {
        AbandonSettings {
            limit_percent: 3.0,
            window: AbandonWindow::default(),
            connect_within_ms: MAX_CONNECT_WITHIN_MS,
        }
    }
}

impl Default for HoursSettings {
    fn default() -> HoursSettings {
        HoursSettings {
            default: "08:00-21:00".to_string(),
            overrides: BTreeMap::new(),
            fallback_zone: "UTC".to_string(),
        }
    }
}

impl Default for PredictiveSettings {
    fn default() -> PredictiveSettings {
        PredictiveSettings {
            max_dial_ratio: 3.0,
        }
    }
}

/// Why settings cannot run; always names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CampaignError {
    #[error("{field} must be > 0")]
    NotPositive { field: &'static str },
    #[error("{field} must be > 0 in {mode} mode: its calls end with an agent")]
    NoAgents {
        field: &'static str,
        mode: &'static str,
    },
    #[error("{field} must be between 0 and 100 (got {value})")]
    NotAPercentage { field: &'static str, value: f64 },
    #[error("{field} must be between {min} and {max} (got {value})")]
    OutOfRange {
        field: &'static str,
        min: f64,
        max: f64,
        value: f64,
    },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// Checked settings: every limit positive, hours that open, the abandon
/// rules within the law.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    mode: DialMode,
    agents_target: u32,
    trunk_channels: u32,
    calls_per_second: f64,
    max_concurrent_calls: u32,
    abandon_limit: f64,
    abandon_window: AbandonWindow,
    connect_within: TimeDelta,
    ring_timeout: TimeDelta,
    hours: HoursPolicy,
    max_dial_ratio: f64,
}

/// Calling hours per region of the callee, with a default.
#[derive(Debug, Clone, PartialEq)]
pub struct HoursPolicy {
    pub default: CallingHours,
    /// Keyed by upper-case ISO 3166 alpha-2 code.
    pub overrides: BTreeMap<String, CallingHours>,
    pub fallback_zone: Tz,
}

impl HoursPolicy {
    /// The hours that apply to a callee in `region` (unknown: the default).
    pub fn for_region(&self, region: Option<&str>) -> &CallingHours {
        region
            .and_then(|code| self.overrides.get(code))
            .unwrap_or(&self.default)
    }
}

impl CampaignSettings {
    pub fn validate(&self) -> Result<Campaign, CampaignError> {
        let agents_target = non_negative_count("agents_target", self.agents_target)?;
        if self.mode.uses_agents() && agents_target == 0 {
            return Err(CampaignError::NoAgents {
                field: "agents_target",
                mode: self.mode.as_str(),
            });
        }
        let limits = &self.limits;
        let trunk_channels = positive_count("limits.trunk_channels", limits.trunk_channels)?;
        if !(limits.calls_per_second.is_finite() && limits.calls_per_second > 0.0) {
            return Err(CampaignError::NotPositive {
                field: "limits.calls_per_second",
            });
        }
        let max_concurrent_calls =
            positive_count("limits.max_concurrent_calls", limits.max_concurrent_calls)?;
        let limit = self.abandon.limit_percent;
        if !(limit.is_finite() && (0.0..=100.0).contains(&limit)) {
            return Err(CampaignError::NotAPercentage {
                field: "abandon.limit_percent",
                value: limit,
            });
        }
        let connect_ms = self.abandon.connect_within_ms;
        if !(1..=MAX_CONNECT_WITHIN_MS).contains(&connect_ms) {
            return Err(CampaignError::OutOfRange {
                field: "abandon.connect_within_ms",
                min: 1.0,
                max: MAX_CONNECT_WITHIN_MS as f64,
                value: connect_ms as f64,
            });
        }
        let ring = self.ring_timeout_secs;
        if !(ring.is_finite() && (MIN_RING_TIMEOUT_SECS..=300.0).contains(&ring)) {
            return Err(CampaignError::OutOfRange {
                field: "ring_timeout_secs",
                min: MIN_RING_TIMEOUT_SECS,
                max: 300.0,
                value: ring,
            });
        }
        let ratio = self.predictive.max_dial_ratio;
        if !(ratio.is_finite() && (1.0..=20.0).contains(&ratio)) {
            return Err(CampaignError::OutOfRange {
                field: "predictive.max_dial_ratio",
                min: 1.0,
                max: 20.0,
                value: ratio,
            });
        }
        Ok(Campaign {
            mode: self.mode,
            agents_target,
            trunk_channels,
            calls_per_second: limits.calls_per_second,
            max_concurrent_calls,
            abandon_limit: limit / 100.0,
            abandon_window: self.abandon.window,
            connect_within: TimeDelta::milliseconds(connect_ms),
            ring_timeout: TimeDelta::milliseconds((ring * 1000.0).round() as i64),
            hours: self.calling_hours.validate()?,
            max_dial_ratio: ratio,
        })
    }
}

impl HoursSettings {
    fn validate(&self) -> Result<HoursPolicy, CampaignError> {
        let default = parse_hours("calling_hours.default", &self.default)?;
        let mut overrides = BTreeMap::new();
        for (code, hours) in &self.overrides {
            let field = format!("calling_hours.overrides.{code}");
            let region = Region::from_str(code).map_err(|_| CampaignError::Invalid {
                field: field.clone(),
                reason: format!("`{code}` is not an ISO 3166 alpha-2 region"),
            })?;
            overrides.insert(region.as_str().to_string(), parse_hours(&field, hours)?);
        }
        let fallback_zone =
            Tz::from_str(self.fallback_zone.trim()).map_err(|_| CampaignError::Invalid {
                field: "calling_hours.fallback_zone".to_string(),
                reason: format!("`{}` is not an IANA time zone", self.fallback_zone),
            })?;
        Ok(HoursPolicy {
            default,
            overrides,
            fallback_zone,
        })
    }
}

/// `HH:MM-HH:MM`, an en dash accepted too; hours that never open (empty,
/// or spanning midnight) are refused.
fn parse_hours(field: &str, text: &str) -> Result<CallingHours, CampaignError> {
    let invalid = |reason: String| CampaignError::Invalid {
        field: field.to_string(),
        reason,
    };
    let (start, end) = text
        .split_once('-')
        .or_else(|| text.split_once('–'))
        .ok_or_else(|| invalid(format!("`{text}` is not written HH:MM-HH:MM")))?;
    let time = |t: &str| {
        NaiveTime::parse_from_str(t.trim(), "%H:%M")
            .map_err(|_| invalid(format!("`{text}` is not written HH:MM-HH:MM")))
    };
    CallingHours::new(time(start)?, time(end)?)
        .map_err(|e| invalid(format!("the hours never open: {e}")))
}

fn positive_count(field: &'static str, value: i64) -> Result<u32, CampaignError> {
    match u32::try_from(value) {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(CampaignError::NotPositive { field }),
    }
}

fn non_negative_count(field: &'static str, value: i64) -> Result<u32, CampaignError> {
    u32::try_from(value).map_err(|_| CampaignError::OutOfRange {
        field,
        min: 0.0,
        max: u32::MAX as f64,
        value: value as f64,
    })
}

impl Campaign {
    pub fn mode(&self) -> DialMode {
        self.mode
    }
    pub fn agents_target(&self) -> u32 {
        self.agents_target
    }
    pub fn trunk_channels(&self) -> u32 {
        self.trunk_channels
    }
    pub fn calls_per_second(&self) -> f64 {
        self.calls_per_second
    }
    pub fn max_concurrent_calls(&self) -> u32 {
        self.max_concurrent_calls
    }
    /// The abandon limit as a fraction (0.03 for 3 %).
    pub fn abandon_limit(&self) -> f64 {
        self.abandon_limit
    }
    pub fn abandon_window(&self) -> AbandonWindow {
        self.abandon_window
    }
    pub fn connect_within(&self) -> TimeDelta {
        self.connect_within
    }
    pub fn ring_timeout(&self) -> TimeDelta {
        self.ring_timeout
    }
    pub fn hours(&self) -> &HoursPolicy {
        &self.hours
    }
    pub fn max_dial_ratio(&self) -> f64 {
        self.max_dial_ratio
    }
    /// The calls that may be up at once: the lower of trunk and campaign.
    pub fn channel_limit(&self) -> u32 {
        self.trunk_channels.min(self.max_concurrent_calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictive() -> CampaignSettings {
        CampaignSettings {
            mode: DialMode::Predictive,
            agents_target: 20,
            ..CampaignSettings::default()
        }
    }

    fn refusal(settings: &CampaignSettings) -> String {
        match settings.validate() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_with_agents_are_valid() {
        let campaign = predictive().validate().unwrap();
        assert_eq!(campaign.abandon_limit(), 0.03);
        assert_eq!(campaign.connect_within(), TimeDelta::seconds(2));
        assert_eq!(campaign.ring_timeout(), TimeDelta::seconds(20));
        assert_eq!(campaign.abandon_window().length(), TimeDelta::days(30));
        assert_eq!(campaign.hours().default, CallingHours::default());
    }

    #[test]
    fn every_refusal_names_its_field() {
        type Edit = fn(&mut CampaignSettings);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |s| s.agents_target = 0,
                "agents_target must be > 0 in predictive mode",
            ),
            (|s| s.agents_target = -3, "agents_target must be between"),
            (
                |s| s.limits.trunk_channels = 0,
                "limits.trunk_channels must be > 0",
            ),
            (
                |s| s.limits.trunk_channels = -1,
                "limits.trunk_channels must be > 0",
            ),
            (
                |s| s.limits.calls_per_second = 0.0,
                "limits.calls_per_second must be > 0",
            ),
            (
                |s| s.limits.calls_per_second = f64::NAN,
                "limits.calls_per_second must be > 0",
            ),
            (
                |s| s.limits.max_concurrent_calls = -5,
                "limits.max_concurrent_calls must be > 0",
            ),
            (
                |s| s.abandon.limit_percent = -0.1,
                "abandon.limit_percent must be between 0 and 100",
            ),
            (
                |s| s.abandon.limit_percent = 100.5,
                "abandon.limit_percent must be between 0 and 100",
            ),
            (
                |s| s.abandon.connect_within_ms = 2_500,
                "abandon.connect_within_ms must be between",
            ),
            (
                |s| s.abandon.connect_within_ms = 0,
                "abandon.connect_within_ms must be between",
            ),
            (
                |s| s.ring_timeout_secs = 14.9,
                "ring_timeout_secs must be between 15",
            ),
            (
                |s| s.predictive.max_dial_ratio = 0.5,
                "predictive.max_dial_ratio must be between",
            ),
            (
                |s| s.calling_hours.default = "21:00-08:00".into(),
                "calling_hours.default: the hours never open",
            ),
            (
                |s| s.calling_hours.default = "09:00-09:00".into(),
                "calling_hours.default: the hours never open",
            ),
            (
                |s| s.calling_hours.default = "nine to five".into(),
                "calling_hours.default: `nine to five` is not written",
            ),
            (
                |s| {
                    s.calling_hours
                        .overrides
                        .insert("GB".into(), "10:00-10:00".into());
                },
                "calling_hours.overrides.GB: the hours never open",
            ),
            (
                |s| {
                    s.calling_hours
                        .overrides
                        .insert("XX1".into(), "09:00-20:00".into());
                },
                "calling_hours.overrides.XX1: `XX1` is not",
            ),
            (
                |s| s.calling_hours.fallback_zone = "Mars/Olympus".into(),
                "calling_hours.fallback_zone: `Mars/Olympus` is not",
            ),
        ];
        for (edit, expected) in cases {
            let mut settings = predictive();
            edit(&mut settings);
            let got = refusal(&settings);
            assert!(
                got.starts_with(expected),
                "expected `{expected}`, got `{got}`"
            );
        }
    }

    #[test]
    fn agentless_needs_no_agents_and_limits_at_the_edges_pass() {
        let settings = CampaignSettings {
            mode: DialMode::Agentless,
            ring_timeout_secs: 15.0,
            abandon: AbandonSettings {
                limit_percent: 0.0,
                ..AbandonSettings::default()
            },
            ..CampaignSettings::default()
        };
        let campaign = settings.validate().unwrap();
        assert_eq!(campaign.agents_target(), 0);
        assert_eq!(campaign.ring_timeout(), TimeDelta::seconds(15));
        let preview = CampaignSettings {
            mode: DialMode::Preview,
            ..CampaignSettings::default()
        };
        assert!(refusal(&preview).starts_with("agents_target must be > 0 in preview mode"));
    }

    #[test]
    fn reads_json_with_defaults_and_region_overrides() {
        let json = r#"{
            "mode": "predictive",
            "agents_target": 12,
            "limits": {"calls_per_second": 2.5},
            "abandon": {"window": "uk_24_hours", "limit_percent": 2},
            "calling_hours": {"overrides": {"gb": "09:00-20:00"}, "fallback_zone": "Europe/London"}
        }"#;
        let settings: CampaignSettings = serde_json::from_str(json).unwrap();
        let campaign = settings.validate().unwrap();
        assert_eq!(campaign.mode(), DialMode::Predictive);
        assert_eq!(campaign.calls_per_second(), 2.5);
        assert_eq!(campaign.trunk_channels(), 30);
        assert_eq!(campaign.abandon_window(), AbandonWindow::Uk24Hours);
        assert_eq!(campaign.abandon_limit(), 0.02);
        let gb = campaign.hours().for_region(Some("GB"));
        assert_eq!(gb.to_string(), "09:00–20:00");
        assert_eq!(
            campaign.hours().for_region(Some("FR")).to_string(),
            "08:00–21:00"
        );
        assert!(serde_json::from_str::<CampaignSettings>(r#"{"speed": 3}"#).is_err());
    }
}
