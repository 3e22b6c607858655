//! The gate's store side: turns the core's questions about held INVITEs
//! into store reads and writes, and the answers into verdicts.
//!
//! The core asks ([`GateQuery`]); this module reads the callee's facts,
//! runs the pure [`decide`](super::gate::decide), opens the consent request
//! and the hold when the person must be asked, and, when a stored answer
//! wakes a hold, ends the hold in the store *before* the core answers the
//! PBX, so the store never disagrees with what the PBX was told (a
//! "later" answer's callback is already written by then).

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::gate::{decide, GateDecision, GateFacts, GatePolicy};
use super::gate_config::{GateConfig, StoreErrorPolicy, UnclassifiedPolicy};
use super::hold::{GateVerdict, HoldAnswer, HoldRequest};
use crate::config::PromptConfig;
use crate::consent::{
    callee_zone, Answer, NewConsentRequest, Refusal, Region, RequestState, Scope, E164,
};
use crate::store::holds::NewHold;
use crate::store::{ConsentStoreError, Store};

/// How long a `480` outside calling hours asks the PBX to wait when no
/// allowed instant is found in the days searched.
const RETRY_WITHOUT_WINDOW_SECS: u64 = 3_600;

#[derive(Clone)]
pub struct Gatekeeper {
    store: Store,
    gate: GateConfig,
    prompts: PromptConfig,
}

impl Gatekeeper {
    pub fn new(store: Store, gate: GateConfig, prompts: PromptConfig) -> Gatekeeper {
        Gatekeeper {
            store,
            gate,
            prompts,
        }
    }

    /// The verdict for a new INVITE. Never fails: a store error becomes
    /// the configured fail-safe verdict.
    pub async fn decide(&self, req: &HoldRequest) -> GateVerdict {
        match self.try_decide(req).await {
            Ok(verdict) => verdict,
            Err(e) => {
                warn!(hold = %req.hold_id, error = %e, "gate cannot read the store");
                self.store_error()
            }
        }
    }

    fn store_error(&self) -> GateVerdict {
        match self.gate.on_store_error {
            StoreErrorPolicy::Reject => GateVerdict::Refuse {
                decision: "store-error-rejected",
                status: 503,
                reason: "SIP;cause=503;text=\"consent store unavailable\"".into(),
                retry_after_secs: Some(5),
            },
            StoreErrorPolicy::Pass => GateVerdict::Forward {
                decision: "store-error-passed",
                consent_id: None,
                caller_id_override: None,
            },
        }
    }

    fn unclassified(&self, why: &str) -> GateVerdict {
        debug!(why, "INVITE not tied to a known enterprise and number");
        match self.gate.on_unclassified {
            UnclassifiedPolicy::Pass => GateVerdict::Forward {
                decision: "unclassified-passed",
                consent_id: None,
                caller_id_override: None,
            },
            UnclassifiedPolicy::Reject => GateVerdict::Refuse {
                decision: "unclassified-rejected",
                status: 403,
                reason: format!("SIP;cause=403;text=\"{why}\""),
                retry_after_secs: None,
            },
        }
    }

    async fn try_decide(&self, req: &HoldRequest) -> Result<GateVerdict, ConsentStoreError> {
        let class = &req.classification;
        let Some(enterprise) = self.store.enterprise(&class.enterprise_id).await? else {
            return Ok(self.unclassified("unknown enterprise"));
        };
        let region = enterprise.default_region.parse::<Region>().ok();
        let Ok(number) = E164::parse(&class.callee, region) else {
            return Ok(self.unclassified("callee is not a valid number"));
        };
        let Some(known) = self.store.callee_facts(&enterprise.id, &number).await? else {
            return Ok(self.unclassified("unknown enterprise"));
        };
        let person_id = known.person_id.clone();
        let caller_id_override = known.caller_id_override;
        let facts = GateFacts {
            trust: known.trust,
            do_not_call: known.do_not_call,
            consents: known.consents,
            subscription: known.subscription,
            zone: callee_zone(&number),
        };
        let campaign = self.gate.campaign(&class.campaign);
        let policy = GatePolicy {
            calling_hours: campaign.calling_hours,
            fallback_zone: self.prompts.fallback_time_zone,
        };
        let verdict = match decide(&facts, &policy, req.at) {
            GateDecision::Forward { consent_id } => GateVerdict::Forward {
                decision: "consented",
                consent_id: Some(consent_id),
                caller_id_override,
            },
            GateDecision::Decline { refusal } => {
                debug!(%refusal, "INVITE declined");
                self.declined()
            }
            GateDecision::OutsideHours { retry_at } => GateVerdict::Refuse {
                decision: "outside-hours",
                status: 480,
                reason: match retry_at {
                    Some(at) => format!(
                        "SIP;cause=480;text=\"outside calling hours until {}\"",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    None => "SIP;cause=480;text=\"outside calling hours\"".into(),
                },
                retry_after_secs: Some(match retry_at {
                    Some(at) => seconds_until(req.at, at),
                    None => RETRY_WITHOUT_WINDOW_SECS,
                }),
            },
            GateDecision::Forbidden { refusal } => forbidden(&refusal),
            GateDecision::Hold => {
                let Some(person_id) = person_id else {
                    return Ok(forbidden(&Refusal::NotSubscribed));
                };
                let new = NewConsentRequest {
                    enterprise_id: enterprise.id.clone(),
                    person_id,
                    number,
                    scope: Scope::Campaign(class.campaign.clone()),
                    options: Vec::new(),
                    hold_id: Some(req.hold_id.clone()),
                    expires_at: req.at
                        + chrono::Duration::from_std(self.prompts.request_ttl)
                            .unwrap_or(chrono::Duration::days(1)),
                };
                let hold = NewHold {
                    id: req.hold_id.clone(),
                    campaign: class.campaign.clone(),
                    caller: req.caller.clone(),
                    pbx_target: req.pbx_target.clone(),
                };
                match self.store.open_hold(new, &hold, req.at).await {
                    Ok(request) => GateVerdict::Hold {
                        request_id: request.id,
                        caller_id_override,
                    },
                    Err(ConsentStoreError::Refused(refusal)) => forbidden(&refusal),
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(verdict)
    }

    fn declined(&self) -> GateVerdict {
        GateVerdict::Refuse {
            decision: "declined",
            status: 603,
            reason: format!("SIP;cause=603;text=\"{}\"", self.gate.decline_reason),
            retry_after_secs: None,
        }
    }

    /// What a stored answer means for the hold, after ending the hold in
    /// the store. `None`: nothing for the core to do (no answer yet, or
    /// the hold had already ended).
    /// Also gives when the answer was stored.
    pub async fn answer(
        &self,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Option<(HoldAnswer, DateTime<Utc>)> {
        match self.try_answer(hold_id, now).await {
            Ok(answer) => answer,
            Err(e) => {
                // The hold's window still bounds the wait.
                warn!(hold = %hold_id, error = %e, "cannot read a held INVITE's answer");
                None
            }
        }
    }

    async fn try_answer(
        &self,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(HoldAnswer, DateTime<Utc>)>, ConsentStoreError> {
        let Some(hold) = self.store.hold(hold_id).await? else {
            debug!(hold = %hold_id, "answer for an unknown hold");
            return Ok(None);
        };
        let Some(request) = self.store.consent_request(&hold.request_id).await? else {
            return Ok(None);
        };
        let RequestState::Answered(answer) = &request.state else {
            return Ok(None);
        };
        let (answer, forwarded) = match answer {
            Answer::Now => (HoldAnswer::Now, true),
            Answer::Decline => (HoldAnswer::Decline, false),
            Answer::Slot(_) | Answer::Range { .. } => {
                let Some(callback) = self.store.callback_for_request(&request.id).await? else {
                    warn!(hold = %hold_id, "a later answer without its callback");
                    return Ok(None);
                };
                (
                    HoldAnswer::Later {
                        at: callback.slot_start,
                    },
                    false,
                )
            }
        };
        if !self.store.end_hold(hold_id, forwarded, now).await? {
            debug!(hold = %hold_id, "answer for a hold that has ended");
            return Ok(None);
        }
        Ok(Some((answer, request.updated_at)))
    }

    /// An answer "now" that reached the core after the hold had ended
    /// there: the store says `forwarded`, the PBX heard a refusal. The
    /// hold is ended for good and the answer becomes a callback.
    pub async fn missed_now(&self, hold_id: &str, now: DateTime<Utc>) {
        if let Err(e) = self.store.reopen_missed_hold(hold_id, now).await {
            warn!(hold = %hold_id, error = %e, "cannot schedule a missed answer");
        }
    }

    /// Records that the core ended a hold without the person's answer.
    pub async fn hold_ended(&self, hold_id: &str, forwarded: bool, now: DateTime<Utc>) {
        if let Err(e) = self.store.end_hold(hold_id, forwarded, now).await {
            warn!(hold = %hold_id, error = %e, "cannot record the end of a hold");
        }
    }
}

fn forbidden(refusal: &Refusal) -> GateVerdict {
    GateVerdict::Refuse {
        decision: "forbidden",
        status: 403,
        reason: format!("SIP;cause=403;text=\"{refusal}\""),
        retry_after_secs: None,
    }
}

fn seconds_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    u64::try_from((at - now).num_seconds()).unwrap_or(0).max(1)
}
