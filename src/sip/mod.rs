//! The SIP protocol layer: framing, parsing, transactions, digest
//! authentication and the socket shell.
//!
//! Everything here is about SIP itself and knows nothing of calls, consent
//! or trunks; `b2bua` builds on it. Parsing and transactions are sans-I/O so
//! they can be driven by tests with synthetic time; only `transport` touches
//! sockets.

pub mod digest;
pub mod framing;
pub mod headers;
pub mod message;
pub mod parse;
pub mod transaction;
pub mod transport;

pub use message::{Message, Method, Name};
pub use transaction::{Peer, Transmit, Transport};
