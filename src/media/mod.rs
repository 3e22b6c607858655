//! Media for calls slotgate holds: the announcement a PBX hears while the
//! consent gate decides, then the audio between the PBX and the trunk.
//!
//! The pure parts ([`g711`], [`wav`], [`sdp`], [`announcer`], [`relay`],
//! [`ports`]) do no I/O and are tested on their own; [`engine`] binds the
//! sockets and runs them on media threads of their own, apart from the SIP
//! loop. The SIP side only calls [`MediaEngine`], [`CallMedia`] (calls it
//! relays) and [`BridgeMedia`] (calls it places, with answering-machine
//! detection by the sans-I/O [`amd`] detector).

pub mod amd;
pub mod announcer;
pub mod bridge;
pub mod config;
pub mod engine;
pub mod g711;
pub mod ports;
pub mod relay;
pub mod sdp;
pub mod wav;

pub use amd::{AmdError, AmdSettings, Detection, Detector, Verdict};
pub use bridge::{BridgeMedia, MediaEvent, MediaEventKind};
pub use config::MediaConfig;
pub use engine::{CallMedia, MediaEngine, MediaError, MediaStats};
pub use relay::{DirectionCounters, RelayCounters, Side};
pub use sdp::{Codec, SdpError, SessionDescription};
pub use wav::{Announcement, WavError};
