//! What every consent channel does, whatever the provider: send a prompt,
//! say whether a number can take it (`Channels::can_reach`), and turn the
//! provider's signed callbacks into events.
//!
//! A channel is an HTTP client for one provider's documented API plus a
//! verifier for that provider's webhooks. Both halves speak these types, so
//! the dispatcher that sends prompts and the inbound handler that applies
//! replies never learn which provider carried a message, and the fallback
//! from RCS to SMS is a decision on [`SendOutcome`], not on a provider.

use chrono::{DateTime, Utc};

use crate::consent::{OfferedChoice, E164};

/// One prompt to one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Our id for the message. Providers that take a client-chosen id
    /// (RBM's `messageId`) get this one, so a send retried after a timeout
    /// cannot reach the handset twice.
    pub message_id: String,
    pub to: E164,
    /// The text shown. For SMS it already lists the numbered choices.
    pub text: String,
    /// Offered as suggestion chips where the channel has them.
    pub choices: Vec<OfferedChoice>,
    /// How long the provider should keep trying to deliver it.
    pub ttl: std::time::Duration,
}

/// What the provider said to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted for delivery under this id.
    Accepted { provider_message_id: String },
    /// This number cannot receive on this channel (RBM answers `404` for a
    /// device without RCS): use the fallback channel.
    Unreachable,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying with backoff: a timeout, a connection failure, `429`
    /// or a `5xx`.
    #[error("the provider is unavailable: {0}")]
    Transient(String),
    /// Retrying the same request cannot help: the provider refused it.
    #[error("the provider refused the message: {0}")]
    Rejected(String),
    /// The credentials are wrong or could not be exchanged for a token.
    #[error("cannot authenticate with the provider: {0}")]
    Auth(String),
}

/// Something a provider's webhook told us, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent {
    /// The handset received our message.
    Delivered {
        provider_message_id: String,
        at: DateTime<Utc>,
    },
    /// The person opened it.
    Read {
        provider_message_id: String,
        at: DateTime<Utc>,
    },
    /// The provider accepted the message but could not deliver it (an SMS
    /// `failed` or `undelivered` after it was queued).
    Undelivered {
        provider_message_id: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The person answered: with a chip (`postback`) or in their own words.
    Reply {
        from: E164,
        /// The provider's id of the reply itself; providers retry webhooks
        /// for days, and this is how a repeat is recognised.
        provider_message_id: String,
        postback: Option<String>,
        text: Option<String>,
        at: DateTime<Utc>,
    },
}

/// Why a webhook was refused. Every variant is answered `401` or `400`
/// and nothing of the body is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the webhook carries no signature")]
    MissingSignature,
    #[error("the webhook signature does not match")]
    BadSignature,
    #[error("the webhook body is malformed: {0}")]
    Malformed(String),
}
