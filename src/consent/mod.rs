//! The consent domain: who may ask whom, and what the person answered.
//!
//! Enterprises (trusted entities with API keys and a consent policy), the
//! people they call and those people's identifiers, subscriptions between
//! the two, consents with their evidence, consent requests (a sans-I/O state
//! machine), do-not-call lists, and what a prompt puts to the person: the
//! options offered inside the callee's calling hours and the enterprise's
//! wording of the question. These types hold the rules; the store
//! (`crate::store`) persists them and runs the checks that need data. Nothing
//! here knows about SIP, HTTP or a clock: the current time is always passed in.

pub mod calling_hours;
pub mod choice;
// One file per concept, and the consent record is one of them: the domain
// and its central type share a name on purpose.
#[allow(clippy::module_inception)]
pub mod consent;
pub mod dnc;
pub mod enterprise;
pub mod number;
pub mod person;
pub mod prompt_options;
pub mod request;
pub mod subscription;
pub mod template;
pub mod zone;

use std::fmt;

pub use calling_hours::{CallingHours, CallingHoursError, CallingWindow};
pub use choice::{Choice, OfferedChoice, MAX_LABEL_CHARS};
pub use consent::{Channel, Consent, ConsentStatus, Evidence, NewConsent, Scope, Window};
pub use dnc::{DncEntry, DncImportReport, DncRejection, DncRejectionReason, ParsedDncCsv};
pub use enterprise::{
    ApiKey, ConsentPolicy, Enterprise, EnterpriseChanges, IssuedApiKey, NewEnterprise, TrustStatus,
    PER_CALL_VALIDITY,
};
pub use number::{NumberError, NumberParts, Region, E164};
pub use person::{Identifier, IdentifierKind, Person};
pub use prompt_options::{
    build_options, candidate_options, NamedRange, OptionPolicy, OptionPolicyError,
    RBM_MAX_SUGGESTIONS,
};
pub use request::{
    Answer, ConsentRequest, NewConsentRequest, RequestEvent, RequestState, SlotOption, Transition,
    TransitionError,
};
pub use subscription::{Subscription, SubscriptionStatus};
pub use template::{
    sms_reply_line, Placeholder, PromptTemplate, PromptTemplates, PromptValues, TemplateError,
    DEFAULT_TEMPLATE, FALLBACK_LOCALE,
};
pub use zone::{callee_zone, ZoneGuess};

/// Why slotgate will not contact a person on an enterprise's behalf.
///
/// Every refusal has a stable machine-readable [`code`](Refusal::code) for
/// APIs, SIP `Reason` headers and metrics, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The enterprise is marked untrusted: it may not ask anything.
    EnterpriseUntrusted,
    /// The enterprise is suspended until an operator reinstates it.
    EnterpriseSuspended,
    /// The person has never subscribed to this enterprise.
    NotSubscribed,
    /// The subscription exists but is paused.
    SubscriptionPaused,
    /// The subscription has ended.
    SubscriptionEnded,
    /// The number is on the global do-not-call list.
    DoNotCallGlobal,
    /// The number is on this enterprise's do-not-call list.
    DoNotCallEnterprise,
    /// The person's latest answer to this enterprise is "no", or they
    /// revoked their consent.
    Declined,
}

impl Refusal {
    /// Stable identifier, safe to match on in clients.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::EnterpriseUntrusted => "enterprise_untrusted",
            Refusal::EnterpriseSuspended => "enterprise_suspended",
            Refusal::NotSubscribed => "not_subscribed",
            Refusal::SubscriptionPaused => "subscription_paused",
            Refusal::SubscriptionEnded => "subscription_ended",
            Refusal::DoNotCallGlobal => "do_not_call_global",
            Refusal::DoNotCallEnterprise => "do_not_call_enterprise",
            Refusal::Declined => "declined",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Refusal::EnterpriseUntrusted => "the enterprise is not trusted",
            Refusal::EnterpriseSuspended => "the enterprise is suspended",
            Refusal::NotSubscribed => "the person has no subscription with this enterprise",
            Refusal::SubscriptionPaused => "the person's subscription is paused",
            Refusal::SubscriptionEnded => "the person's subscription has ended",
            Refusal::DoNotCallGlobal => "the number is on the global do-not-call list",
            Refusal::DoNotCallEnterprise => "the number is on this enterprise's do-not-call list",
            Refusal::Declined => "the person declined or revoked their consent",
        };
        write!(f, "{text} ({})", self.code())
    }
}

/// A new random identifier: 128 bits in hex, unguessable so that ids can
/// appear in URLs and webhooks without leaking how many rows exist.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A stored enum value that this version does not know (a newer node wrote
/// it, or someone edited the row by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub(crate) fn new(what: &'static str, value: &str) -> UnknownValue {
        UnknownValue {
            what,
            value: value.to_string(),
        }
    }
}
