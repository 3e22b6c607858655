//! Campaigns as data: what an enterprise configures for the dialler to
//! place its scheduled callbacks, and the outcomes of the calls placed.
//!
//! A campaign's id is the campaign name the gate writes on each scheduled
//! callback, so the dialler finds a callback's campaign with
//! [`Store::campaign_for`]`(enterprise_id, callback.campaign)`. Every write
//! validates what it stores (the pacing settings with
//! [`CampaignSettings::validate`], the strategy with [`Strategy::validate`])
//! so a reader never meets a configuration that cannot run. The store
//! leans on `pacing` only for those pure types and their checks.
//!
//! Call outcomes are kept per call so that the legal abandon rate, which
//! spans 30 days in the US, survives restarts: the dialler seeds its
//! ledger with [`Store::abandon_ledger`] at start and records each call
//! with [`Store::record_call_outcome`] as it ends. The SQL lives in
//! `campaign_queries`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::campaign_queries;
use super::{to_micros, Engine, Store, StoreError};
use crate::pacing::{
    AbandonLedger, AbandonWindow, CallOutcome, CampaignError, CampaignSettings, Strategy,
    StrategyError,
};

/// Longest campaign id; ids are `[A-Za-z0-9_-]{1,64}`.
pub const MAX_CAMPAIGN_ID: usize = 64;
/// Longest SIP URI or message name the store keeps.
const MAX_TEXT: usize = 256;
/// Most agents one report may list.
pub const MAX_AGENTS: usize = 10_000;

/// Runs the engine's copy of a campaign query (see `campaign_queries`).
macro_rules! on_campaign_engine {
    ($store:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$store.engine {
            Engine::Sqlite(pool) => campaign_queries::sqlite::$f(pool, $($arg),*).await,
            Engine::Postgres(pool) => campaign_queries::postgres::$f(pool, $($arg),*).await,
        }
    };
}

/// Whether the dialler places the campaign's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignState {
    #[default]
    Active,
    /// Nothing is dialled; callbacks wait.
    Paused,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Active => "active",
            CampaignState::Paused => "paused",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<CampaignState> {
        match text {
            "active" => Some(CampaignState::Active),
            "paused" => Some(CampaignState::Paused),
            _ => None,
        }
    }
}

/// What to do when an answering machine picks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MachineAction {
    #[default]
    HangUp,
    LeaveMessage,
}

/// The answering-machine policy: hang up, or leave a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MachinePolicy {
    pub action: MachineAction,
    /// The recording to leave (`leave-message` only); without one the
    /// dialler plays its default.
    #[serde(default)]
    pub message: Option<String>,
}

/// What an ACD last reported of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentPresence {
    Available,
    Busy,
    WrapUp,
    Away,
}

/// One agent the ACD reported, with where to INVITE them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignAgent {
    pub id: String,
    /// `sip:` or `sips:` URI of the agent's phone.
    pub target: String,
    pub state: AgentPresence,
}

/// The agents of a campaign, as the ACD last reported them: a count, and
/// optionally who they are. Replaced whole by every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CampaignAgents {
    /// Agents free to take a call now.
    pub available: u32,
    #[serde(default)]
    pub agents: Vec<CampaignAgent>,
}

/// What an operator writes for a campaign (create, or full replace).
/// The strategy and the agents have their own writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CampaignSpec {
    pub settings: CampaignSettings,
    /// SIP URI the agent leg is INVITEd at (a callback queue or extension
    /// on the PBX); `None`: the callback's own `pbx_target`.
    pub agent_target: Option<String>,
    /// Path or name of the recording played to an abandoned call.
    pub abandon_message: Option<String>,
    pub machine_policy: MachinePolicy,
    pub state: CampaignState,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRecord {
    pub enterprise_id: String,
    /// The campaign name on scheduled callbacks.
    pub id: String,
    pub settings: CampaignSettings,
    pub agent_target: Option<String>,
    pub abandon_message: Option<String>,
    pub machine_policy: MachinePolicy,
    /// `None`: the default strategy (see [`CampaignRecord::strategy`]).
    pub strategy: Option<Strategy>,
    pub agents: CampaignAgents,
    pub agents_updated_at: Option<DateTime<Utc>>,
    pub state: CampaignState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every configuration write (not by agent reports).
    pub version: i64,
}

impl CampaignRecord {
    /// The strategy the dialler follows: the one set, or the default.
    pub fn strategy(&self) -> Strategy {
        self.strategy.clone().unwrap_or_default()
    }

    /// Where the agent leg of `callback_pbx_target`'s call goes.
    pub fn agent_leg_target<'a>(&'a self, callback_pbx_target: &'a str) -> &'a str {
        self.agent_target.as_deref().unwrap_or(callback_pbx_target)
    }
}

/// Calls per outcome over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutcomeCounts {
    pub answered: u64,
    pub busy: u64,
    pub no_answer: u64,
    pub failed: u64,
    pub machine: u64,
    pub abandoned: u64,
    pub agent_unavailable: u64,
    pub dropped: u64,
}

impl OutcomeCounts {
    pub fn get(&self, outcome: CallOutcome) -> u64 {
        *self.slot(outcome)
    }

    pub(crate) fn add(&mut self, outcome: CallOutcome, count: u64) {
        *self.slot_mut(outcome) += count;
    }

    fn slot(&self, outcome: CallOutcome) -> &u64 {
        match outcome {
            CallOutcome::Answered => &self.answered,
            CallOutcome::Busy => &self.busy,
            CallOutcome::NoAnswer => &self.no_answer,
            CallOutcome::Failed => &self.failed,
            CallOutcome::Machine => &self.machine,
            CallOutcome::Abandoned => &self.abandoned,
            CallOutcome::AgentUnavailable => &self.agent_unavailable,
            CallOutcome::Dropped => &self.dropped,
        }
    }

    fn slot_mut(&mut self, outcome: CallOutcome) -> &mut u64 {
        match outcome {
            CallOutcome::Answered => &mut self.answered,
            CallOutcome::Busy => &mut self.busy,
            CallOutcome::NoAnswer => &mut self.no_answer,
            CallOutcome::Failed => &mut self.failed,
            CallOutcome::Machine => &mut self.machine,
            CallOutcome::Abandoned => &mut self.abandoned,
            CallOutcome::AgentUnavailable => &mut self.agent_unavailable,
            CallOutcome::Dropped => &mut self.dropped,
        }
    }

    /// Every call recorded.
    pub fn total(&self) -> u64 {
        CallOutcome::ALL.into_iter().map(|o| self.get(o)).sum()
    }

    /// Calls a person answered, abandoned ones included (the law's
    /// denominator of the abandon rate).
    pub fn person_answered(&self) -> u64 {
        self.answered + self.abandoned
    }

    /// Abandoned share of person-answered calls, in percent (0 before any).
    pub fn abandon_percent(&self) -> f64 {
        percent(self.abandoned, self.person_answered())
    }

    /// Answered share of every call recorded, in percent (0 before any).
    pub fn answer_percent(&self) -> f64 {
        percent(self.answered, self.total())
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// What an operator watches of a campaign, read from the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignStats {
    /// Pending callbacks whose slot has started.
    pub due_slots: u64,
    /// Pending callbacks, due or not.
    pub pending_slots: u64,
    /// Attempts begun in the last 60 seconds.
    pub dial_rate_per_min: u64,
    /// Person-answered calls connected, over the legal window.
    pub answered: u64,
    /// Person-answered calls abandoned, over the legal window.
    pub abandoned: u64,
    /// `abandoned / (answered + abandoned)` over the legal window, percent.
    pub abandon_percent: f64,
    /// Answered share of the calls ended in the last 24 hours, percent.
    pub answer_percent: f64,
    /// Agents available, as last reported.
    pub agents: u32,
    /// Attempts dialling now.
    pub in_flight: u64,
    /// Callbacks whose outcome is unknown and wait for an operator.
    pub unknown: u64,
}

/// The counts behind [`CampaignStats`] that come from the callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CallbackCounts {
    pub due: u64,
    pub pending: u64,
    pub begun_last_minute: u64,
    pub in_flight: u64,
    pub unknown: u64,
}

/// Why a campaign operation failed; every input error names its field as
/// a path in the API's JSON (`settings.limits.trunk_channels`).
#[derive(Debug, thiserror::Error)]
pub enum CampaignStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no campaign with id {id:?}")]
    NotFound { id: String },
    #[error("a campaign with id {id:?} already exists")]
    Exists { id: String },
    /// Someone else wrote the campaign since it was read.
    #[error(
        "campaign {id:?} was changed concurrently (expected version {expected}); reload it and retry"
    )]
    Conflict { id: String, expected: i64 },
    /// Deleting would orphan callbacks the dialler or an operator still
    /// has to settle; pause the campaign instead.
    #[error(
        "campaign {id:?} cannot be deleted: {open} of its callbacks are pending, claimed or \
         unknown; pause it, and delete it once they are settled"
    )]
    InUse { id: String, open: u64 },
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl CampaignStoreError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CampaignStoreError {
        CampaignStoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A settings refusal, its field placed under `settings.`.
    pub fn from_settings(e: CampaignError) -> CampaignStoreError {
        let field = match &e {
            CampaignError::NotPositive { field }
            | CampaignError::NoAgents { field, .. }
            | CampaignError::NotAPercentage { field, .. }
            | CampaignError::OutOfRange { field, .. } => field.to_string(),
            CampaignError::Invalid { field, .. } => field.clone(),
        };
        let message = e.to_string();
        // The message starts with the field; say it once.
        let reason = message
            .strip_prefix(&field)
            .map(|r| r.trim_start_matches(':').trim())
            .unwrap_or(&message)
            .to_string();
        CampaignStoreError::invalid(format!("settings.{field}"), reason)
    }

    /// A strategy refusal, its field placed under `prefix` (empty when the
    /// strategy is the whole body).
    pub fn from_strategy(e: StrategyError, prefix: &str) -> CampaignStoreError {
        CampaignStoreError::invalid(format!("{prefix}{}", e.field), e.reason)
    }
}

/// `[A-Za-z0-9_-]{1,64}`: safe in a URL path and equal to the gate's
/// campaign names.
pub fn check_campaign_id(id: &str) -> Result<(), CampaignStoreError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CAMPAIGN_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CampaignStoreError::invalid(
            "id",
            "must be 1 to 64 letters, digits, `_` or `-`",
        ))
    }
}

fn check_sip_uri(field: &str, uri: &str) -> Result<(), CampaignStoreError> {
    let lower = uri.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("sips:")
        .or_else(|| lower.strip_prefix("sip:"));
    let ok = rest.is_some_and(|r| !r.is_empty())
        && uri.len() <= MAX_TEXT
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(CampaignStoreError::invalid(
            field,
            "must be a sip: or sips: URI of at most 256 characters, without spaces",
        ))
    }
}

/// A recording's path or name: one line, no way out of the media
/// directory.
fn check_message(field: &str, message: &str) -> Result<(), CampaignStoreError> {
    let ok = !message.trim().is_empty()
        && message.len() <= MAX_TEXT
        && !message.chars().any(char::is_control)
        && !message.split(['/', '\\']).any(|part| part == "..");
    if ok {
        Ok(())
    } else {
        Err(CampaignStoreError::invalid(
            field,
            "must be a file name or path of 1 to 256 characters, on one line, without `..`",
        ))
    }
}

impl CampaignSpec {
    /// Refuses what the dialler could not follow, naming the field.
    pub fn validate(&self) -> Result<(), CampaignStoreError> {
        self.settings
            .validate()
            .map_err(CampaignStoreError::from_settings)?;
        if let Some(uri) = &self.agent_target {
            check_sip_uri("agent_target", uri)?;
        }
        if let Some(message) = &self.abandon_message {
            check_message("abandon_message", message)?;
        }
        match (&self.machine_policy.action, &self.machine_policy.message) {
            (MachineAction::HangUp, Some(_)) => Err(CampaignStoreError::invalid(
                "machine_policy.message",
                "only a leave-message policy leaves a message",
            )),
            (MachineAction::LeaveMessage, Some(message)) => {
                check_message("machine_policy.message", message)
            }
            _ => Ok(()),
        }
    }
}

impl CampaignAgents {
    /// Refuses a report the dialler could not use, naming the field.
    pub fn validate(&self) -> Result<(), CampaignStoreError> {
        if self.agents.len() > MAX_AGENTS {
            return Err(CampaignStoreError::invalid(
                "agents",
                "at most 10000 agents per report",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let id_ok = !agent.id.is_empty()
                && agent.id.len() <= MAX_CAMPAIGN_ID
                && !agent.id.chars().any(char::is_control);
            if !id_ok {
                return Err(CampaignStoreError::invalid(
                    format!("agents[{i}].id"),
                    "must be 1 to 64 printable characters",
                ));
            }
            if !seen.insert(agent.id.as_str()) {
                return Err(CampaignStoreError::invalid(
                    format!("agents[{i}].id"),
                    format!("{:?} is listed twice", agent.id),
                ));
            }
            check_sip_uri(&format!("agents[{i}].target"), &agent.target)?;
        }
        Ok(())
    }
}

fn check_strategy(strategy: Option<&Strategy>, prefix: &str) -> Result<(), CampaignStoreError> {
    match strategy {
        Some(s) => s
            .validate()
            .map_err(|e| CampaignStoreError::from_strategy(e, prefix)),
        None => Ok(()),
    }
}

impl Store {
    /// Stores a new campaign of `enterprise_id`; refused when the id is
    /// taken or any part is invalid. `strategy` `None` is the default.
    pub async fn create_campaign(
        &self,
        enterprise_id: &str,
        id: &str,
        spec: &CampaignSpec,
        strategy: Option<&Strategy>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRecord, CampaignStoreError> {
        check_campaign_id(id)?;
        spec.validate()?;
        check_strategy(strategy, "strategy.")?;
        let now = to_micros(now);
        let record = CampaignRecord {
            enterprise_id: enterprise_id.to_string(),
            id: id.to_string(),
            settings: spec.settings.clone(),
            agent_target: spec.agent_target.clone(),
            abandon_message: spec.abandon_message.clone(),
            machine_policy: spec.machine_policy.clone(),
            strategy: strategy.cloned(),
            agents: CampaignAgents::default(),
            agents_updated_at: None,
            state: spec.state,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        if on_campaign_engine!(self, insert_campaign(&record))? {
            Ok(record)
        } else {
            Err(CampaignStoreError::Exists { id: id.to_string() })
        }
    }

    /// A campaign of the enterprise; another enterprise's is `None`.
    pub async fn campaign(
        &self,
        enterprise_id: &str,
        id: &str,
    ) -> Result<Option<CampaignRecord>, CampaignStoreError> {
        on_campaign_engine!(self, campaign(enterprise_id, id))
    }

    /// The campaign a scheduled callback belongs to: `campaign` is the
    /// callback's `campaign`. `None` when the enterprise configured none
    /// under that name.
    pub async fn campaign_for(
        &self,
        enterprise_id: &str,
        campaign: &str,
    ) -> Result<Option<CampaignRecord>, CampaignStoreError> {
        self.campaign(enterprise_id, campaign).await
    }

    /// The enterprise's campaigns, by id.
    pub async fn campaigns(
        &self,
        enterprise_id: &str,
    ) -> Result<Vec<CampaignRecord>, CampaignStoreError> {
        on_campaign_engine!(self, campaigns(Some(enterprise_id), None))
    }

    /// Every enterprise's active campaigns, by enterprise then id: what the
    /// dialler paces.
    pub async fn active_campaigns(&self) -> Result<Vec<CampaignRecord>, CampaignStoreError> {
        on_campaign_engine!(self, campaigns(None, Some(CampaignState::Active)))
    }

    /// Replaces a campaign's settings, targets, policies and state, and
    /// bumps its version. With `expected_version`, the write lands only on
    /// that version ([`CampaignStoreError::Conflict`] otherwise).
    pub async fn update_campaign(
        &self,
        enterprise_id: &str,
        id: &str,
        spec: &CampaignSpec,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRecord, CampaignStoreError> {
        spec.validate()?;
        let updated = on_campaign_engine!(
            self,
            update_campaign(enterprise_id, id, spec, expected_version, to_micros(now))
        )?;
        self.written(enterprise_id, id, updated, expected_version)
            .await
    }

    /// Replaces the strategy (`None`: back to the default) and bumps the
    /// version. The dialler reads the strategy at each contact's next
    /// decision, so it applies to every step not yet taken.
    pub async fn set_campaign_strategy(
        &self,
        enterprise_id: &str,
        id: &str,
        strategy: Option<&Strategy>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRecord, CampaignStoreError> {
        check_strategy(strategy, "")?;
        let updated = on_campaign_engine!(
            self,
            set_strategy(enterprise_id, id, strategy, to_micros(now))
        )?;
        self.written(enterprise_id, id, updated, None).await
    }

    /// Replaces the agents the ACD reports. The version stays: agent
    /// reports are frequent and must not make configuration writes fail.
    pub async fn set_campaign_agents(
        &self,
        enterprise_id: &str,
        id: &str,
        agents: &CampaignAgents,
        now: DateTime<Utc>,
    ) -> Result<CampaignRecord, CampaignStoreError> {
        agents.validate()?;
        let updated =
            on_campaign_engine!(self, set_agents(enterprise_id, id, agents, to_micros(now)))?;
        self.written(enterprise_id, id, updated, None).await
    }

    /// What a write returned: the row, or why there was none.
    async fn written(
        &self,
        enterprise_id: &str,
        id: &str,
        updated: Option<CampaignRecord>,
        expected_version: Option<i64>,
    ) -> Result<CampaignRecord, CampaignStoreError> {
        if let Some(record) = updated {
            return Ok(record);
        }
        let exists = self.campaign(enterprise_id, id).await?.is_some();
        match expected_version {
            Some(expected) if exists => Err(CampaignStoreError::Conflict {
                id: id.to_string(),
                expected,
            }),
            _ => Err(CampaignStoreError::NotFound { id: id.to_string() }),
        }
    }

    /// Deletes a campaign, refused ([`CampaignStoreError::InUse`]) while
    /// any of its callbacks is pending, claimed or unknown: those still
    /// need the campaign to be placed or settled. Its call outcomes stay,
    /// so the abandon rate of a campaign created again under the same name
    /// keeps its history.
    pub async fn delete_campaign(
        &self,
        enterprise_id: &str,
        id: &str,
    ) -> Result<(), CampaignStoreError> {
        on_campaign_engine!(self, delete_campaign(enterprise_id, id))
    }

    /// Records what one call of a campaign gave, at `at`. With an
    /// `attempt_id`, a second record for the same attempt is ignored, so a
    /// retried write is harmless; returns whether this one was stored.
    pub async fn record_call_outcome(
        &self,
        enterprise_id: &str,
        campaign: &str,
        attempt_id: Option<&str>,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool, CampaignStoreError> {
        on_campaign_engine!(
            self,
            insert_outcome(enterprise_id, campaign, attempt_id, outcome, to_micros(at))
        )
    }

    /// The campaign's calls per outcome recorded at or after `since`.
    pub async fn outcome_counts(
        &self,
        enterprise_id: &str,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<OutcomeCounts, CampaignStoreError> {
        on_campaign_engine!(
            self,
            outcome_counts(enterprise_id, campaign, to_micros(since))
        )
    }

    /// An abandon ledger for `window` holding the campaign's recorded
    /// person answers and abandons of the window ending at `now`, each in
    /// the ledger bucket it happened in: what the dialler starts from, so
    /// the legal rate spans restarts.
    pub async fn abandon_ledger(
        &self,
        enterprise_id: &str,
        campaign: &str,
        window: AbandonWindow,
        now: DateTime<Utc>,
    ) -> Result<AbandonLedger, CampaignStoreError> {
        let since = to_micros(now - window.length());
        let buckets = on_campaign_engine!(
            self,
            answer_buckets(enterprise_id, campaign, window, since, to_micros(now))
        )?;
        let mut ledger = AbandonLedger::for_window(window);
        for (at, outcome, count) in buckets {
            for _ in 0..count {
                // The law counts an abandoned call among the answered.
                ledger.record_answered(at);
                if outcome == CallOutcome::Abandoned {
                    ledger.record_abandoned(at);
                }
            }
        }
        Ok(ledger)
    }

    /// The campaign's figures at `now` (see [`CampaignStats`]); the abandon
    /// rate over the window its settings name.
    pub async fn campaign_stats(
        &self,
        record: &CampaignRecord,
        now: DateTime<Utc>,
    ) -> Result<CampaignStats, CampaignStoreError> {
        let (e, c) = (record.enterprise_id.as_str(), record.id.as_str());
        let now = to_micros(now);
        let callbacks = on_campaign_engine!(self, callback_counts(e, c, now))?;
        let legal = self
            .outcome_counts(e, c, now - record.settings.abandon.window.length())
            .await?;
        let day = self
            .outcome_counts(e, c, now - TimeDelta::hours(24))
            .await?;
        Ok(CampaignStats {
            due_slots: callbacks.due,
            pending_slots: callbacks.pending,
            dial_rate_per_min: callbacks.begun_last_minute,
            answered: legal.answered,
            abandoned: legal.abandoned,
            abandon_percent: legal.abandon_percent(),
            answer_percent: day.answer_percent(),
            agents: record.agents.available,
            in_flight: callbacks.in_flight,
            unknown: callbacks.unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_are_url_safe_names() {
        for ok in ["winter-offer", "A_1", &"x".repeat(64)] {
            assert!(check_campaign_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_campaign_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_refusals_are_named_under_settings() {
        let spec = CampaignSpec {
            settings: CampaignSettings {
                agents_target: 5,
                ring_timeout_secs: 3.0,
                ..CampaignSettings::default()
            },
            ..CampaignSpec::default()
        };
        match spec.validate() {
            Err(CampaignStoreError::Invalid { field, reason }) => {
                assert_eq!(field, "settings.ring_timeout_secs");
                assert!(reason.starts_with("must be between 15"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn targets_messages_and_policies_are_checked() {
        let base = CampaignSpec {
            settings: CampaignSettings {
                agents_target: 5,
                ..CampaignSettings::default()
            },
            ..CampaignSpec::default()
        };
        let field = |spec: CampaignSpec| match spec.validate() {
            Err(CampaignStoreError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert!(base.validate().is_ok());
        let with = |edit: fn(&mut CampaignSpec)| {
            let mut spec = base.clone();
            edit(&mut spec);
            spec
        };
        assert_eq!(
            field(with(|s| s.agent_target = Some("http://pbx".into()))),
            "agent_target"
        );
        assert_eq!(
            field(with(|s| s.abandon_message = Some("../etc/passwd".into()))),
            "abandon_message"
        );
        assert_eq!(
            field(with(|s| s.machine_policy.message = Some("hello.wav".into()))),
            "machine_policy.message"
        );
        let leave = with(|s| {
            s.agent_target = Some("sip:queue-7@pbx.example.com".into());
            s.machine_policy = MachinePolicy {
                action: MachineAction::LeaveMessage,
                message: Some("offers/winter.wav".into()),
            };
        });
        assert!(leave.validate().is_ok());
    }

    #[test]
    fn agent_reports_are_checked() {
        let agent = |id: &str, target: &str| CampaignAgent {
            id: id.into(),
            target: target.into(),
            state: AgentPresence::Available,
        };
        let report = |agents| CampaignAgents {
            available: 1,
            agents,
        };
        assert!(report(vec![agent("a1", "sip:a1@pbx")]).validate().is_ok());
        let field = |r: CampaignAgents| match r.validate() {
            Err(CampaignStoreError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert_eq!(
            field(report(vec![
                agent("a1", "sip:a1@pbx"),
                agent("a1", "sip:x@pbx")
            ])),
            "agents[1].id"
        );
        assert_eq!(
            field(report(vec![agent("a1", "a1@pbx")])),
            "agents[0].target"
        );
    }

    #[test]
    fn percentages_count_abandons_among_person_answers() {
        let mut counts = OutcomeCounts::default();
        assert_eq!(counts.abandon_percent(), 0.0);
        counts.add(CallOutcome::Answered, 97);
        counts.add(CallOutcome::Abandoned, 3);
        counts.add(CallOutcome::NoAnswer, 100);
        assert_eq!(counts.person_answered(), 100);
        assert_eq!(counts.abandon_percent(), 3.0);
        assert_eq!(counts.total(), 200);
        assert_eq!(counts.answer_percent(), 48.5);
    }
}
