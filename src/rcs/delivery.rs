//! Getting one prompt out: which channel to use, when to retry, when to
//! fall back to SMS and when to give up.
//!
//! Sans-I/O: the dispatcher tells [`Delivery`] what the provider answered
//! and the time, and is told what to do next. Keeping the rules here makes
//! them testable without a provider: RCS first; a device without RCS falls
//! back to SMS, at most once per request; a provider that is down is
//! retried with backoff; a provider that refuses the message is not asked
//! again; after the last try the request is failed with the reason.

use chrono::{DateTime, TimeDelta, Utc};

use super::channel::{SendError, SendOutcome};

/// A channel a prompt can go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Rcs,
    Sms,
    Simulator,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Rcs => "rcs",
            Route::Sms => "sms",
            Route::Simulator => "simulator",
        }
    }
}

/// The configured channels and patience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPlan {
    pub primary: Route,
    /// Used when the primary cannot reach the number at all.
    pub fallback: Option<Route>,
    /// Sends tried on one route before the request fails (at least 1).
    pub max_attempts: u32,
}

/// What the dispatcher does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send on this route now.
    Send(Route),
    /// Send on this route again at this time.
    RetryAt(DateTime<Utc>, Route),
    /// The provider took it: the request is `sent`.
    Sent {
        route: Route,
        provider_message_id: String,
    },
    /// No channel will carry it: the request is `failed` with this reason.
    Failed { reason: String },
}

/// One prompt's way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    plan: DeliveryPlan,
    route: Route,
    /// Sends tried on the current route.
    attempts: u32,
    fell_back: bool,
}

impl Delivery {
    /// Starts on the primary route; the first step is always a send.
    pub fn start(plan: DeliveryPlan) -> (Delivery, Step) {
        let route = plan.primary;
        (
            Delivery {
                plan,
                route,
                attempts: 0,
                fell_back: false,
            },
            Step::Send(route),
        )
    }

    pub fn route(&self) -> Route {
        self.route
    }

    /// Whether SMS was used because RCS could not reach the number.
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// Takes the provider's answer to the last send. `backoff(n)` is the
    /// wait after the `n`-th failed try (1-based).
    pub fn on_result(
        &mut self,
        result: Result<SendOutcome, SendError>,
        now: DateTime<Utc>,
        mut backoff: impl FnMut(u32) -> TimeDelta,
    ) -> Step {
        self.attempts += 1;
        match result {
            Ok(SendOutcome::Accepted {
                provider_message_id,
            }) => Step::Sent {
                route: self.route,
                provider_message_id,
            },
            Ok(SendOutcome::Unreachable) => match self.plan.fallback {
                Some(fallback) if !self.fell_back && fallback != self.route => {
                    self.fell_back = true;
                    self.route = fallback;
                    self.attempts = 0;
                    Step::Send(fallback)
                }
                _ => Step::Failed {
                    reason: format!("{} cannot reach this number", self.route.as_str()),
                },
            },
            Err(SendError::Rejected(why)) => Step::Failed {
                reason: format!("{} refused the message: {why}", self.route.as_str()),
            },
            // A wrong credential is an operator's fix away: worth the same
            // patience as an outage, and the reason says which it was.
            Err(e @ (SendError::Transient(_) | SendError::Auth(_))) => {
                if self.attempts >= self.plan.max_attempts.max(1) {
                    Step::Failed {
                        reason: format!(
                            "{} failed {} times; last: {e}",
                            self.route.as_str(),
                            self.attempts
                        ),
                    }
                } else {
                    Step::RetryAt(now + backoff(self.attempts), self.route)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap()
    }

    fn plan(fallback: Option<Route>) -> DeliveryPlan {
        DeliveryPlan {
            primary: Route::Rcs,
            fallback,
            max_attempts: 3,
        }
    }

    fn doubling(n: u32) -> TimeDelta {
        TimeDelta::seconds(1 << n)
    }

    fn accepted(id: &str) -> Result<SendOutcome, SendError> {
        Ok(SendOutcome::Accepted {
            provider_message_id: id.into(),
        })
    }

    #[test]
    fn accepted_at_once_is_sent() {
        let (mut d, first) = Delivery::start(plan(Some(Route::Sms)));
        assert_eq!(first, Step::Send(Route::Rcs));
        assert_eq!(
            d.on_result(accepted("m1"), t0(), doubling),
            Step::Sent {
                route: Route::Rcs,
                provider_message_id: "m1".into()
            }
        );
        assert!(!d.fell_back());
    }

    #[test]
    fn a_device_without_rcs_falls_back_to_sms_once() {
        let (mut d, _) = Delivery::start(plan(Some(Route::Sms)));
        assert_eq!(
            d.on_result(Ok(SendOutcome::Unreachable), t0(), doubling),
            Step::Send(Route::Sms)
        );
        assert!(d.fell_back());
        // SMS cannot reach it either: no second fallback, no loop.
        assert_eq!(
            d.on_result(Ok(SendOutcome::Unreachable), t0(), doubling),
            Step::Failed {
                reason: "sms cannot reach this number".into()
            }
        );
    }

    #[test]
    fn without_a_fallback_unreachable_fails() {
        let (mut d, _) = Delivery::start(plan(None));
        assert!(matches!(
            d.on_result(Ok(SendOutcome::Unreachable), t0(), doubling),
            Step::Failed { .. }
        ));
    }

    #[test]
    fn outages_are_retried_with_backoff_then_fail_with_the_reason() {
        let (mut d, _) = Delivery::start(plan(Some(Route::Sms)));
        let down = || Err(SendError::Transient("503 Service Unavailable".into()));
        assert_eq!(
            d.on_result(down(), t0(), doubling),
            Step::RetryAt(t0() + TimeDelta::seconds(2), Route::Rcs)
        );
        assert_eq!(
            d.on_result(down(), t0(), doubling),
            Step::RetryAt(t0() + TimeDelta::seconds(4), Route::Rcs)
        );
        assert_eq!(
            d.on_result(down(), t0(), doubling),
            Step::Failed {
                reason: "rcs failed 3 times; last: the provider is unavailable: \
                         503 Service Unavailable"
                    .into()
            }
        );
    }

    #[test]
    fn the_fallback_route_gets_its_own_tries() {
        let (mut d, _) = Delivery::start(plan(Some(Route::Sms)));
        d.on_result(Err(SendError::Transient("timeout".into())), t0(), doubling);
        assert_eq!(
            d.on_result(Ok(SendOutcome::Unreachable), t0(), doubling),
            Step::Send(Route::Sms)
        );
        assert_eq!(
            d.on_result(Err(SendError::Auth("401".into())), t0(), doubling),
            Step::RetryAt(t0() + TimeDelta::seconds(2), Route::Sms)
        );
        assert_eq!(
            d.on_result(accepted("SM1"), t0(), doubling),
            Step::Sent {
                route: Route::Sms,
                provider_message_id: "SM1".into()
            }
        );
    }

    #[test]
    fn a_refused_message_is_not_sent_again() {
        let (mut d, _) = Delivery::start(plan(Some(Route::Sms)));
        assert_eq!(
            d.on_result(
                Err(SendError::Rejected("400 invalid phone number".into())),
                t0(),
                doubling
            ),
            Step::Failed {
                reason: "rcs refused the message: 400 invalid phone number".into()
            }
        );
    }
}
