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

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::consent::{
        Channel, Consent, Evidence, Scope, Subscription, SubscriptionStatus, TrustStatus, E164,
    };

    fn facts() -> CalleeFacts {
        CalleeFacts {
            trust: TrustStatus::Trusted,
            do_not_call: None,
            person_id: Some("p".into()),
            subscription: Some(Subscription {
                person_id: "p".into(),
                enterprise_id: "e".into(),
                status: SubscriptionStatus::Active,
                since: Utc::now() - TimeDelta::days(30),
                until: None,
            }),
            consents: Vec::new(),
            caller_id_override: None,
        }
    }

    fn consent(status: ConsentStatus, age_days: i64) -> Consent {
        let at = Utc::now() - TimeDelta::days(age_days);
        Consent {
            id: format!("c-{age_days}"),
            person_id: "p".into(),
            enterprise_id: "e".into(),
            number: E164::parse("+33142685302", None).unwrap(),
            scope: Scope::Campaign("spring".into()),
            status,
            window: None,
            expires_at: None,
            channel: Channel::Rcs,
            evidence: Evidence::default(),
            created_at: at,
            updated_at: at,
            revoked_at: None,
        }
    }

    #[test]
    fn a_person_still_subscribed_and_not_listed_may_be_called() {
        assert_eq!(may_dial(Some(&facts()), Utc::now()), Ok(()));
        let mut granted = facts();
        granted.consents = vec![consent(ConsentStatus::Granted, 1)];
        assert_eq!(may_dial(Some(&granted), Utc::now()), Ok(()));
    }

    #[test]
    fn do_not_call_lists_refuse_at_dial_time() {
        let mut global = facts();
        global.do_not_call = Some(None);
        assert_eq!(
            may_dial(Some(&global), Utc::now()),
            Err(Refusal::DoNotCallGlobal)
        );
        let mut own = facts();
        own.do_not_call = Some(Some("e".into()));
        assert_eq!(
            may_dial(Some(&own), Utc::now()),
            Err(Refusal::DoNotCallEnterprise)
        );
    }

    #[test]
    fn a_revocation_after_scheduling_is_honoured() {
        let mut revoked = facts();
        // Newest first: the revocation came after the grant.
        revoked.consents = vec![
            consent(ConsentStatus::Revoked, 0),
            consent(ConsentStatus::Granted, 3),
        ];
        assert_eq!(may_dial(Some(&revoked), Utc::now()), Err(Refusal::Declined));
    }

    #[test]
    fn an_enterprise_suspended_or_gone_calls_nobody() {
        let mut suspended = facts();
        suspended.trust = TrustStatus::Suspended;
        assert_eq!(
            may_dial(Some(&suspended), Utc::now()),
            Err(Refusal::EnterpriseSuspended)
        );
        assert_eq!(
            may_dial(None, Utc::now()),
            Err(Refusal::EnterpriseUntrusted)
        );
    }

    #[test]
    fn an_ended_subscription_refuses() {
        let mut ended = facts();
        if let Some(s) = ended.subscription.as_mut() {
            s.status = SubscriptionStatus::Ended;
            s.until = Some(Utc::now() - TimeDelta::days(1));
        }
        assert!(may_dial(Some(&ended), Utc::now()).is_err());
    }
}
