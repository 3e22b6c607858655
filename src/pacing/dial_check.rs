//! The last look before a scheduled callback is dialled: the person may
//! have revoked, or the number joined a do-not-call list, since they chose
//! the slot. Pure, so the rule is tested without a store; the dialler
//! reads the facts in the same moment it commits the attempt.

use chrono::{DateTime, Utc};

use crate::consent::{ConsentStatus, Refusal};
use crate::store::holds::CalleeFacts;

/// Whether the callee may be called now, and if not, why.
pub fn may_dial(facts: Option<&CalleeFacts>, now: DateTime<Utc>) -> Result<(), Refusal> {
    // The enterprise vanished from the store: nobody vouches for the call.
    let facts = facts.ok_or(Refusal::EnterpriseUntrusted)?;
    facts.trust.ensure_may_ask()?;
    if let Some(list) = &facts.do_not_call {
        return Err(match list {
            Some(_) => Refusal::DoNotCallEnterprise,
            None => Refusal::DoNotCallGlobal,
        });
    }
    let latest = facts
        .consents
        .iter()
        .find(|c| c.status != ConsentStatus::Expired);
    if latest.is_some_and(|c| matches!(c.status, ConsentStatus::Declined | ConsentStatus::Revoked))
    {
        return Err(Refusal::Declined);
    }
    if let Some(subscription) = &facts.subscription {
        subscription.ensure_active(now)?;
    }
    Ok(())
}
