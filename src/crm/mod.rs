//! Outbound CRM webhooks: every consent change reaches the enterprise's CRM.
//!
//! The store writes an event into an outbox in the same transaction as the
//! consent change it describes (see `store::outbox`), so a change can never
//! be committed without its event, whatever happens to the process next.
//! The [`deliverer`] then posts each event to the enterprise's webhook URL,
//! signed ([`signature`]), retried with exponential backoff and jitter
//! ([`backoff`]) and in order per person, until the CRM answers 2xx or the
//! event is parked as dead for an operator to re-drive. Delivery is at
//! least once: every event carries an id ([`event`]) so receivers can drop
//! repeats. Webhook URLs are checked when an enterprise is configured
//! ([`webhook_url`]) so slotgate cannot be pointed at its own network.

pub mod backoff;
pub mod deliverer;
pub mod event;
pub mod outbox;
pub mod signature;
pub mod webhook_url;

pub use deliverer::{spawn_deliverer, DelivererHandle};
pub use event::Envelope;
pub use outbox::{DeliveryState, FailedAttempt, OutboxEvent, OutboxFilter};
