//! The gate's decision: what an outbound INVITE may do, given what is known
//! of the callee.
//!
//! A pure function of the facts read from the store, the callee's zone
//! guess, the calling hours and the current time, so every combination is
//! tested without a socket or a clock. The B2BUA acts on the answer:
//! forward the call, refuse it with the SIP status the decision names, or
//! hold it while the person is asked.
//!
//! The checks run in an order chosen for the person's protection first:
//!
//! 1. an enterprise that is not trusted can do nothing (`403`);
//! 2. a do-not-call entry, or a latest answer of "no" or a revocation,
//!    refuses the call (`603`), even if an older grant would cover it;
//! 3. a consent covering this instant lets the call through: the person
//!    chose this time, and the times offered were inside calling hours;
//! 4. outside calling hours in every zone the callee may be in, the call
//!    waits (`480` with `Retry-After` at the next allowed instant);
//! 5. without an active subscription nothing may be sent to ask (`403`);
//! 6. otherwise the call is held and the person asked.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::consent::{
    CallingHours, Consent, ConsentStatus, Refusal, Subscription, TrustStatus, ZoneGuess,
};

/// What the store knows about (enterprise, callee) when the INVITE comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateFacts {
    pub trust: TrustStatus,
    /// The list the number is on: `Some(None)` the global one,
    /// `Some(Some(id))` the enterprise's.
    pub do_not_call: Option<Option<String>>,
    /// The enterprise's consents for the number, newest first.
    pub consents: Vec<Consent>,
    pub subscription: Option<Subscription>,
    pub zone: ZoneGuess,
}

/// Where the decision's calling hours come from (per campaign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatePolicy {
    pub calling_hours: CallingHours,
    /// The zone used for a number whose zone cannot be told.
    pub fallback_zone: Tz,
}

/// What the INVITE does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// A consent covers now: forward to the trunk at once.
    Forward { consent_id: String },
    /// `603 Decline`: do-not-call, or the person said no.
    Decline { refusal: Refusal },
    /// `480` with `Retry-After` pointing at `retry_at` (`None`: no instant
    /// in the next days is inside hours in every candidate zone).
    OutsideHours { retry_at: Option<DateTime<Utc>> },
    /// `403`: the enterprise may not ask, or the person is not subscribed.
    Forbidden { refusal: Refusal },
    /// Ask the person and hold the INVITE meanwhile.
    Hold,
}

impl GateDecision {
    /// The SIP status the PBX receives, when the decision is final.
    pub fn final_status(&self) -> Option<u16> {
        match self {
            GateDecision::Forward { .. } | GateDecision::Hold => None,
            GateDecision::Decline { .. } => Some(603),
            GateDecision::OutsideHours { .. } => Some(480),
            GateDecision::Forbidden { .. } => Some(403),
        }
    }
}

/// Decides what an INVITE to this callee may do at `now`.
pub fn decide(facts: &GateFacts, policy: &GatePolicy, now: DateTime<Utc>) -> GateDecision {
    if let Err(refusal) = facts.trust.ensure_may_ask() {
        return GateDecision::Forbidden { refusal };
    }
    if let Some(list) = &facts.do_not_call {
        let refusal = match list {
            Some(_) => Refusal::DoNotCallEnterprise,
            None => Refusal::DoNotCallGlobal,
        };
        return GateDecision::Decline { refusal };
    }
    // The newest answer speaks for the person: a later "no" or revocation
    // outranks an earlier grant, and an expired grant says nothing.
    let latest = facts
        .consents
        .iter()
        .find(|c| c.status != ConsentStatus::Expired);
    match latest {
        Some(c) if matches!(c.status, ConsentStatus::Declined | ConsentStatus::Revoked) => {
            return GateDecision::Decline {
                refusal: Refusal::Declined,
            };
        }
        Some(c) if c.covers(now) => {
            return GateDecision::Forward {
                consent_id: c.id.clone(),
            };
        }
        _ => {}
    }
    if !facts
        .zone
        .within_hours(&policy.calling_hours, now, policy.fallback_zone)
    {
        return GateDecision::OutsideHours {
            retry_at: facts
                .zone
                .next_allowed(&policy.calling_hours, now, policy.fallback_zone),
        };
    }
    let subscribed = facts
        .subscription
        .as_ref()
        .ok_or(Refusal::NotSubscribed)
        .and_then(|s| s.ensure_active(now));
    if let Err(refusal) = subscribed {
        return GateDecision::Forbidden { refusal };
    }
    GateDecision::Hold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Channel, Evidence, Scope, SubscriptionStatus, Window, E164};
    use chrono::{NaiveTime, TimeDelta, TimeZone};
    use chrono_tz::America::{Los_Angeles, New_York};

    /// 2026-03-10 14:05 in New York.
    fn now() -> DateTime<Utc> {
        New_York
            .with_ymd_and_hms(2026, 3, 10, 14, 5, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn policy() -> GatePolicy {
        GatePolicy {
            calling_hours: CallingHours::default(),
            fallback_zone: Tz::UTC,
        }
    }

    fn consent(
        status: ConsentStatus,
        created: DateTime<Utc>,
        window: Option<(i64, i64)>,
    ) -> Consent {
        Consent {
            id: format!("c-{}-{}", status.as_str(), created.timestamp()),
            person_id: "p".into(),
            enterprise_id: "e".into(),
            number: E164::parse("+12125550142", None).unwrap(),
            scope: Scope::Purpose("service".into()),
            status,
            window: window.map(|(from, to)| {
                Window::new(
                    now() + TimeDelta::minutes(from),
                    now() + TimeDelta::minutes(to),
                    "America/New_York",
                )
                .unwrap()
            }),
            expires_at: None,
            channel: Channel::Rcs,
            evidence: Evidence::default(),
            created_at: created,
            updated_at: created,
            revoked_at: None,
        }
    }

    fn facts() -> GateFacts {
        GateFacts {
            trust: TrustStatus::Trusted,
            do_not_call: None,
            consents: Vec::new(),
            subscription: Some(Subscription {
                person_id: "p".into(),
                enterprise_id: "e".into(),
                status: SubscriptionStatus::Active,
                since: now() - TimeDelta::days(30),
                until: None,
            }),
            zone: ZoneGuess::Exact(New_York),
        }
    }

    #[test]
    fn a_consent_covering_now_forwards() {
        let mut f = facts();
        f.consents = vec![consent(ConsentStatus::Granted, now(), Some((-5, 10)))];
        assert!(matches!(
            decide(&f, &policy(), now()),
            GateDecision::Forward { .. }
        ));
        // The same consent a quarter of an hour later no longer covers.
        assert_eq!(
            decide(&f, &policy(), now() + TimeDelta::minutes(15)),
            GateDecision::Hold
        );
    }

    #[test]
    fn no_and_revocations_outrank_older_grants() {
        for status in [ConsentStatus::Declined, ConsentStatus::Revoked] {
            let mut f = facts();
            f.consents = vec![
                consent(status, now() - TimeDelta::minutes(1), None),
                consent(ConsentStatus::Granted, now() - TimeDelta::hours(1), None),
            ];
            let decision = decide(&f, &policy(), now());
            assert_eq!(
                decision,
                GateDecision::Decline {
                    refusal: Refusal::Declined
                }
            );
            assert_eq!(decision.final_status(), Some(603));
        }
        // A grant given after the "no" counts.
        let mut f = facts();
        f.consents = vec![
            consent(ConsentStatus::Granted, now(), None),
            consent(ConsentStatus::Declined, now() - TimeDelta::days(2), None),
        ];
        assert!(matches!(
            decide(&f, &policy(), now()),
            GateDecision::Forward { .. }
        ));
    }

    #[test]
    fn do_not_call_declines_even_with_a_grant() {
        let mut f = facts();
        f.consents = vec![consent(ConsentStatus::Granted, now(), None)];
        f.do_not_call = Some(None);
        assert_eq!(
            decide(&f, &policy(), now()),
            GateDecision::Decline {
                refusal: Refusal::DoNotCallGlobal
            }
        );
        f.do_not_call = Some(Some("e".into()));
        assert_eq!(
            decide(&f, &policy(), now()),
            GateDecision::Decline {
                refusal: Refusal::DoNotCallEnterprise
            }
        );
    }

    #[test]
    fn an_untrusted_enterprise_is_forbidden_first() {
        let mut f = facts();
        f.trust = TrustStatus::Suspended;
        f.do_not_call = Some(None);
        let decision = decide(&f, &policy(), now());
        assert_eq!(
            decision,
            GateDecision::Forbidden {
                refusal: Refusal::EnterpriseSuspended
            }
        );
        assert_eq!(decision.final_status(), Some(403));
    }

    #[test]
    fn outside_hours_waits_for_the_next_allowed_instant_in_every_zone() {
        let late = New_York
            .with_ymd_and_hms(2026, 3, 10, 21, 30, 0)
            .unwrap()
            .with_timezone(&Utc);
        let decision = decide(&facts(), &policy(), late);
        let next_morning = New_York
            .with_ymd_and_hms(2026, 3, 11, 8, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            decision,
            GateDecision::OutsideHours {
                retry_at: Some(next_morning)
            }
        );
        assert_eq!(decision.final_status(), Some(480));
        // A number that may be in New York or Los Angeles: 08:30 in New
        // York is 05:30 in Los Angeles, so it waits for 08:00 there.
        let mut f = facts();
        f.zone = ZoneGuess::Ambiguous {
            zones: vec![New_York, Los_Angeles],
        };
        let early = next_morning + TimeDelta::minutes(30);
        let la_morning = Los_Angeles
            .with_ymd_and_hms(2026, 3, 11, 8, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            decide(&f, &policy(), early),
            GateDecision::OutsideHours {
                retry_at: Some(la_morning)
            }
        );
    }

    #[test]
    fn without_an_active_subscription_nothing_is_asked() {
        let mut f = facts();
        f.subscription = None;
        assert_eq!(
            decide(&f, &policy(), now()),
            GateDecision::Forbidden {
                refusal: Refusal::NotSubscribed
            }
        );
        let mut f = facts();
        if let Some(s) = f.subscription.as_mut() {
            s.status = SubscriptionStatus::Paused;
        }
        assert_eq!(
            decide(&f, &policy(), now()),
            GateDecision::Forbidden {
                refusal: Refusal::SubscriptionPaused
            }
        );
    }

    #[test]
    fn otherwise_the_call_is_held_and_the_person_asked() {
        let mut f = facts();
        f.consents = vec![consent(
            ConsentStatus::Expired,
            now() - TimeDelta::days(1),
            None,
        )];
        let decision = decide(&f, &policy(), now());
        assert_eq!(decision, GateDecision::Hold);
        assert_eq!(decision.final_status(), None);
        // Custom hours per campaign.
        let evening_only = GatePolicy {
            calling_hours: CallingHours::new(
                NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
                NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            )
            .unwrap(),
            ..policy()
        };
        assert!(matches!(
            decide(&f, &evening_only, now()),
            GateDecision::OutsideHours { .. }
        ));
    }

    /// Every combination of trust × do-not-call × the callee's consents ×
    /// calling hours × subscription × campaign hours, against the rules
    /// written out once more as an independent oracle.
    #[test]
    fn every_combination_follows_the_documented_order() {
        #[derive(Clone, Copy, Debug)]
        enum Consents {
            None,
            CoversNow,
            LaterWindow,
            Expired,
            Declined,
            Revoked,
            DeclinedAfterGrant,
            GrantAfterRevocation,
        }
        let trusts = [
            TrustStatus::Trusted,
            TrustStatus::Suspended,
            TrustStatus::Untrusted,
        ];
        let lists: [Option<Option<String>>; 3] = [None, Some(None), Some(Some("e".into()))];
        let consents = [
            Consents::None,
            Consents::CoversNow,
            Consents::LaterWindow,
            Consents::Expired,
            Consents::Declined,
            Consents::Revoked,
            Consents::DeclinedAfterGrant,
            Consents::GrantAfterRevocation,
        ];
        let subscriptions = [
            None,
            Some(SubscriptionStatus::Active),
            Some(SubscriptionStatus::Paused),
            Some(SubscriptionStatus::Ended),
        ];
        // 14:05 and 22:30 in New York, under the default hours and under
        // campaign hours of 15:00–20:00 (so 14:05 is outside them too).
        let instants = [
            now(),
            New_York
                .with_ymd_and_hms(2026, 3, 10, 22, 30, 0)
                .unwrap()
                .with_timezone(&Utc),
        ];
        let hours = [
            CallingHours::default(),
            CallingHours::new(
                NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
                NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            )
            .unwrap(),
        ];
        let mut checked = 0;
        for trust in trusts {
            for list in &lists {
                for c in consents {
                    for sub in subscriptions {
                        for at in instants {
                            for h in hours {
                                let earlier = now() - TimeDelta::hours(2);
                                let latest = now() - TimeDelta::hours(1);
                                let (list_of, covers) = match c {
                                    Consents::None => (vec![], false),
                                    Consents::CoversNow => (
                                        vec![consent(
                                            ConsentStatus::Granted,
                                            latest,
                                            Some((-60, 600)),
                                        )],
                                        true,
                                    ),
                                    Consents::LaterWindow => (
                                        vec![consent(
                                            ConsentStatus::Granted,
                                            latest,
                                            Some((900, 960)),
                                        )],
                                        false,
                                    ),
                                    Consents::Expired => {
                                        (vec![consent(ConsentStatus::Expired, latest, None)], false)
                                    }
                                    Consents::Declined => (
                                        vec![consent(ConsentStatus::Declined, latest, None)],
                                        false,
                                    ),
                                    Consents::Revoked => {
                                        (vec![consent(ConsentStatus::Revoked, latest, None)], false)
                                    }
                                    Consents::DeclinedAfterGrant => (
                                        vec![
                                            consent(ConsentStatus::Declined, latest, None),
                                            consent(
                                                ConsentStatus::Granted,
                                                earlier,
                                                Some((-60, 600)),
                                            ),
                                        ],
                                        false,
                                    ),
                                    Consents::GrantAfterRevocation => (
                                        vec![
                                            consent(
                                                ConsentStatus::Granted,
                                                latest,
                                                Some((-60, 600)),
                                            ),
                                            consent(ConsentStatus::Revoked, earlier, None),
                                        ],
                                        true,
                                    ),
                                };
                                let f = GateFacts {
                                    trust,
                                    do_not_call: list.clone(),
                                    consents: list_of.clone(),
                                    subscription: sub.map(|status| Subscription {
                                        person_id: "p".into(),
                                        enterprise_id: "e".into(),
                                        status,
                                        since: now() - TimeDelta::days(30),
                                        until: None,
                                    }),
                                    zone: ZoneGuess::Exact(New_York),
                                };
                                let p = GatePolicy {
                                    calling_hours: h,
                                    fallback_zone: Tz::UTC,
                                };
                                let got = decide(&f, &p, at);
                                let local = at.with_timezone(&New_York).time();
                                let inside = h.start() <= local && local < h.end();
                                // A window or expiry is judged at `at`.
                                let covers_at = covers
                                    && list_of
                                        .iter()
                                        .find(|k| k.status != ConsentStatus::Expired)
                                        .is_some_and(|k| k.covers(at));
                                let said_no = matches!(
                                    c,
                                    Consents::Declined
                                        | Consents::Revoked
                                        | Consents::DeclinedAfterGrant
                                );
                                let expected = if trust != TrustStatus::Trusted {
                                    403
                                } else if list.is_some() || said_no {
                                    603
                                } else if covers_at {
                                    200
                                } else if !inside {
                                    480
                                } else if sub != Some(SubscriptionStatus::Active) {
                                    403
                                } else {
                                    0
                                };
                                let status = match &got {
                                    GateDecision::Forward { .. } => 200,
                                    GateDecision::Hold => 0,
                                    other => other.final_status().unwrap_or(1),
                                };
                                assert_eq!(
                                    status, expected,
                                    "{trust:?} {list:?} {c:?} {sub:?} {at} {h}: {got:?}"
                                );
                                if let GateDecision::OutsideHours { retry_at: Some(r) } = got {
                                    assert!(r > at, "retry in the future");
                                    let local = r.with_timezone(&New_York).time();
                                    assert_eq!(
                                        local,
                                        h.start(),
                                        "retry at the window's start: {r}"
                                    );
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 3 * 8 * 4 * 2 * 2);
    }

    #[test]
    fn calling_hours_follow_daylight_saving_changes_in_the_callee_zone() {
        let at = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        // 2026-03-08: New York moves from UTC-5 to UTC-4 at 02:00.
        // 12:30 UTC is 07:30 the day before (EST) but 08:30 on the day (EDT).
        assert!(matches!(
            decide(&facts(), &policy(), at(2026, 3, 7, 12, 30)),
            GateDecision::OutsideHours { .. }
        ));
        assert_eq!(
            decide(&facts(), &policy(), at(2026, 3, 8, 12, 30)),
            GateDecision::Hold
        );
        // Waiting across the change: from 00:00 EST the next allowed
        // instant is 08:00 EDT, 12:00 UTC, not 13:00.
        assert_eq!(
            decide(&facts(), &policy(), at(2026, 3, 8, 5, 0)),
            GateDecision::OutsideHours {
                retry_at: Some(at(2026, 3, 8, 12, 0))
            }
        );
        // 2026-11-01: back to UTC-5 at 02:00 EDT. From 01:00 EDT (05:00
        // UTC) the next allowed instant is 08:00 EST, 13:00 UTC.
        assert_eq!(
            decide(&facts(), &policy(), at(2026, 11, 1, 5, 0)),
            GateDecision::OutsideHours {
                retry_at: Some(at(2026, 11, 1, 13, 0))
            }
        );
        // 20:59 EST on that day is still inside; 21:00 is not.
        assert_eq!(
            decide(&facts(), &policy(), at(2026, 11, 2, 1, 59)),
            GateDecision::Hold
        );
        assert!(matches!(
            decide(&facts(), &policy(), at(2026, 11, 2, 2, 0)),
            GateDecision::OutsideHours { .. }
        ));
    }
}
