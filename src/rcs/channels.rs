//! The configured consent channels, built once at start from
//! `[channels]`: one registry the dispatcher sends through and the webhook
//! handlers take their verification secrets from.
//!
//! [`Delivery`](super::delivery::Delivery) decides *which* route a prompt
//! takes; this module owns the clients behind the routes, so that decision
//! never meets a provider type, and a route that was not configured is a
//! refusal rather than a panic. Building the clients here (not on first
//! use) means a bad base URL or key stops the process at start.
//!
//! The simulator is shared: the dispatcher sends through it, the API reads
//! and answers its inbox, and an event pump polls its due events. It sits
//! behind a `std::sync::Mutex` because every use is short and synchronous;
//! the lock is never held across an `.await`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;

use super::channel::{OutboundMessage, SendError, SendOutcome};
use super::delivery::{DeliveryPlan, Route};
use super::rbm::{RbmClient, RbmSetupError};
use super::secret::Secret;
use super::simulator::Simulator;
use super::twilio::{TwilioClient, TwilioSetupError};
use crate::config::ChannelsConfig;
use crate::crm::backoff;

/// Why the channels could not be built; reported at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelSetupError {
    #[error("channels.rbm: {0}")]
    Rbm(#[from] RbmSetupError),
    #[error("channels.sms: {0}")]
    Twilio(#[from] TwilioSetupError),
    /// The plan names a route whose settings are absent. `Config::load`
    /// refuses such a file; this guards configs built in code.
    #[error("channels: the plan uses {0} but it is not configured")]
    NotConfigured(&'static str),
}

/// The SMS route: its client and what its webhook is verified with.
#[derive(Debug)]
struct Sms {
    client: TwilioClient,
    webhook_url: String,
    auth_token: Secret,
}

/// The RBM route: its client and its webhook client token.
#[derive(Debug)]
struct Rbm {
    client: RbmClient,
    client_token: Secret,
}

/// Every configured channel. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Channels {
    plan: DeliveryPlan,
    backoff_initial: Duration,
    backoff_max: Duration,
    simulator: Option<Arc<Mutex<Simulator>>>,
    rbm: Option<Rbm>,
    sms: Option<Sms>,
}

impl Channels {
    /// Builds the clients of every configured provider, and the simulator
    /// when it is the primary route (the only place it can serve).
    pub fn from_config(config: &ChannelsConfig) -> Result<Channels, ChannelSetupError> {
        let rbm = match &config.rbm {
            Some(rbm) => Some(Rbm {
                client: RbmClient::new(rbm.settings.clone())?,
                client_token: rbm.client_token.clone(),
            }),
            None => None,
        };
        let sms = match &config.sms {
            Some(sms) => Some(Sms {
                client: TwilioClient::new(sms.settings.clone())?,
                webhook_url: sms.webhook_url.clone(),
                auth_token: sms.settings.auth_token.clone(),
            }),
            None => None,
        };
        let plan = config.plan.clone();
        let simulator = (plan.primary == Route::Simulator)
            .then(|| Arc::new(Mutex::new(Simulator::new(config.simulator.clone()))));
        let channels = Channels {
            plan,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            simulator,
            rbm,
            sms,
        };
        for route in std::iter::once(channels.plan.primary).chain(channels.plan.fallback) {
            if !channels.has(route) {
                return Err(ChannelSetupError::NotConfigured(route.as_str()));
            }
        }
        Ok(channels)
    }

    /// The routes and patience every prompt's delivery starts from.
    pub fn plan(&self) -> DeliveryPlan {
        self.plan.clone()
    }

    fn has(&self, route: Route) -> bool {
        match route {
            Route::Rcs => self.rbm.is_some(),
            Route::Sms => self.sms.is_some(),
            Route::Simulator => self.simulator.is_some(),
        }
    }

    /// Sends `message` on `route`: one attempt; retrying is the caller's
    /// (see [`Delivery`](super::delivery::Delivery)).
    pub async fn send(
        &self,
        route: Route,
        message: &OutboundMessage,
        now: DateTime<Utc>,
    ) -> Result<SendOutcome, SendError> {
        let not_configured =
            || SendError::Rejected(format!("{} is not configured", route.as_str()));
        match route {
            Route::Rcs => match &self.rbm {
                Some(rbm) => rbm.client.send(message).await,
                None => Err(not_configured()),
            },
            Route::Sms => match &self.sms {
                Some(sms) => sms.client.send(message).await,
                None => Err(not_configured()),
            },
            Route::Simulator => {
                let simulator = self.simulator.as_ref().ok_or_else(not_configured)?;
                // A panic elsewhere while holding the lock leaves the
                // inbox as it was; sending on is better than refusing
                // every prompt from then on.
                let mut simulator = simulator.lock().unwrap_or_else(|p| p.into_inner());
                Ok(simulator.send(message, now))
            }
        }
    }

    /// Whether `route` can reach `to` (the channel contract's capability
    /// check): RBM asks the provider; SMS reaches every mobile number and
    /// the simulator every number, as far as can be told before sending.
    pub async fn can_reach(
        &self,
        route: Route,
        to: &crate::consent::E164,
        request_id: &str,
    ) -> Result<bool, SendError> {
        match route {
            Route::Rcs => match &self.rbm {
                Some(rbm) => rbm.client.is_rcs_capable(to, request_id).await,
                None => Ok(false),
            },
            Route::Sms => Ok(self.sms.is_some()),
            Route::Simulator => Ok(self.simulator.is_some()),
        }
    }

    /// The simulated handsets, when the simulator is the primary route.
    pub fn simulator(&self) -> Option<&Arc<Mutex<Simulator>>> {
        self.simulator.as_ref()
    }

    /// What RBM's webhook pushes are verified with, when RBM is configured.
    pub fn rbm_client_token(&self) -> Option<&Secret> {
        self.rbm.as_ref().map(|rbm| &rbm.client_token)
    }

    /// The public URL Twilio posts to and the auth token that signs its
    /// posts, when SMS is configured.
    pub fn sms_webhook(&self) -> Option<(&str, &Secret)> {
        self.sms
            .as_ref()
            .map(|sms| (sms.webhook_url.as_str(), &sms.auth_token))
    }

    /// The wait after the `attempt`-th failed send (1-based): full jitter
    /// below a doubling ceiling, the same rule as CRM webhooks.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> TimeDelta {
        let wait = backoff::delay(
            attempt,
            self.backoff_initial,
            self.backoff_max,
            rng.gen::<f64>(),
        );
        // The cap is at most a day, far inside TimeDelta's range.
        TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RbmChannelConfig, SmsChannelConfig};
    use crate::consent::{Choice, OfferedChoice, E164};
    use crate::rcs::channel::InboundEvent;
    use crate::rcs::rbm::{MessageTrafficType, RbmSettings, ServiceAccount};
    use crate::rcs::simulator::{AutoReply, SimulatedAnswer};
    use crate::rcs::twilio::{Sender, TwilioSettings};
    use chrono::TimeZone;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const TEST_KEY: &str =
        include_str!("../../tests/fixtures/TEST-ONLY-rbm-service-account-key.pem");

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap()
    }

    fn ann() -> E164 {
        E164::from_e164("+33612345678").unwrap()
    }

    fn rbm() -> RbmChannelConfig {
        RbmChannelConfig {
            settings: RbmSettings {
                base_url: "http://127.0.0.1:9".into(),
                agent_id: "agent".into(),
                service_account: ServiceAccount {
                    client_email: "a@b.iam.gserviceaccount.com".into(),
                    private_key_pem: Secret::new(TEST_KEY),
                    token_uri: "http://127.0.0.1:9/token".into(),
                },
                traffic_type: MessageTrafficType::Transaction,
                timeout: Duration::from_secs(1),
            },
            client_token: Secret::new("rbm-token"),
        }
    }

    fn sms() -> SmsChannelConfig {
        SmsChannelConfig {
            settings: TwilioSettings {
                base_url: "http://127.0.0.1:9".into(),
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: Secret::new("twilio-token"),
                from: Sender::Number(E164::from_e164("+14155550100").unwrap()),
                status_callback: None,
                timeout: Duration::from_secs(1),
            },
            webhook_url: "https://example.com/sms".into(),
        }
    }

    fn config(primary: Route, fallback: Option<Route>) -> ChannelsConfig {
        ChannelsConfig {
            plan: DeliveryPlan {
                primary,
                fallback,
                max_attempts: 4,
            },
            ..ChannelsConfig::default()
        }
    }

    fn prompt() -> OutboundMessage {
        OutboundMessage {
            message_id: "m1".into(),
            to: ann(),
            text: "When may we call you?".into(),
            choices: vec![OfferedChoice {
                label: "Call me now".into(),
                postback: "now".into(),
                choice: Choice::Now,
            }],
            ttl: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_simulator_is_the_default() {
        let channels = Channels::from_config(&ChannelsConfig::default()).unwrap();
        assert_eq!(channels.plan().primary, Route::Simulator);
        assert_eq!(channels.plan().fallback, None);
        assert!(channels.simulator().is_some());
        assert!(channels.rbm_client_token().is_none());
        assert!(channels.sms_webhook().is_none());
    }

    #[test]
    fn rbm_primary_with_sms_fallback() {
        let config = ChannelsConfig {
            rbm: Some(rbm()),
            sms: Some(sms()),
            ..config(Route::Rcs, Some(Route::Sms))
        };
        let channels = Channels::from_config(&config).unwrap();
        assert_eq!(
            channels.plan(),
            DeliveryPlan {
                primary: Route::Rcs,
                fallback: Some(Route::Sms),
                max_attempts: 4
            }
        );
        assert!(channels.simulator().is_none());
        assert_eq!(channels.rbm_client_token().unwrap().expose(), "rbm-token");
        let (url, token) = channels.sms_webhook().unwrap();
        assert_eq!(url, "https://example.com/sms");
        assert_eq!(token.expose(), "twilio-token");
        let printed = format!("{channels:?}");
        assert!(!printed.contains("rbm-token") && !printed.contains("twilio-token"));
    }

    #[test]
    fn sms_primary() {
        let config = ChannelsConfig {
            sms: Some(sms()),
            ..config(Route::Sms, None)
        };
        let channels = Channels::from_config(&config).unwrap();
        assert_eq!(channels.plan().primary, Route::Sms);
        assert!(channels.simulator().is_none());
        assert!(channels.rbm_client_token().is_none());
    }

    #[test]
    fn a_plan_naming_a_missing_channel_is_refused() {
        assert_eq!(
            Channels::from_config(&config(Route::Rcs, None)).unwrap_err(),
            ChannelSetupError::NotConfigured("rcs")
        );
        let config = ChannelsConfig {
            rbm: Some(rbm()),
            ..config(Route::Rcs, Some(Route::Sms))
        };
        assert_eq!(
            Channels::from_config(&config).unwrap_err(),
            ChannelSetupError::NotConfigured("sms")
        );
    }

    #[test]
    fn a_bad_provider_setting_is_refused_at_start() {
        let mut bad = rbm();
        bad.settings.service_account.private_key_pem = Secret::new("not a key");
        let config = ChannelsConfig {
            rbm: Some(bad),
            ..config(Route::Rcs, None)
        };
        assert!(matches!(
            Channels::from_config(&config),
            Err(ChannelSetupError::Rbm(RbmSetupError::Key(_)))
        ));
    }

    #[tokio::test]
    async fn a_prompt_round_trips_through_the_simulator() {
        let config = ChannelsConfig {
            simulator: AutoReply::Fixed {
                answer: SimulatedAnswer::Now,
                after: TimeDelta::seconds(2),
            },
            ..ChannelsConfig::default()
        };
        let channels = Channels::from_config(&config).unwrap();
        let outcome = channels
            .send(Route::Simulator, &prompt(), t0())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            SendOutcome::Accepted {
                provider_message_id: "sim-m1".into()
            }
        );
        let simulator = channels.simulator().unwrap();
        let mut simulator = simulator.lock().unwrap();
        assert_eq!(simulator.inbox(Some(&ann())).len(), 1);
        let events = simulator.poll(t0() + TimeDelta::seconds(2));
        assert!(matches!(
            events.as_slice(),
            [
                InboundEvent::Delivered { .. },
                InboundEvent::Reply { postback: Some(p), .. }
            ] if p == "now"
        ));
    }

    #[tokio::test]
    async fn an_unconfigured_route_is_refused() {
        let channels = Channels::from_config(&ChannelsConfig::default()).unwrap();
        for route in [Route::Rcs, Route::Sms] {
            assert_eq!(
                channels.send(route, &prompt(), t0()).await,
                Err(SendError::Rejected(format!(
                    "{} is not configured",
                    route.as_str()
                )))
            );
        }
        let config = ChannelsConfig {
            sms: Some(sms()),
            ..config(Route::Sms, None)
        };
        let channels = Channels::from_config(&config).unwrap();
        assert_eq!(
            channels.send(Route::Simulator, &prompt(), t0()).await,
            Err(SendError::Rejected("simulator is not configured".into()))
        );
    }

    #[test]
    fn the_backoff_doubles_under_its_cap() {
        let config = ChannelsConfig {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            ..ChannelsConfig::default()
        };
        let channels = Channels::from_config(&config).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 1..=6 {
            let ceiling = backoff::ceiling(attempt, config.backoff_initial, config.backoff_max);
            let wait = channels.backoff(attempt, &mut rng);
            assert!(wait >= TimeDelta::zero());
            assert!(
                wait.to_std().unwrap() <= ceiling,
                "attempt {attempt}: {wait}"
            );
        }
    }
}
