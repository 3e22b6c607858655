//! Media for calls slotgate holds: the announcement a PBX hears while the
//! consent gate decides, then the audio between the PBX and the trunk.

pub mod g711;
pub mod sdp;
pub mod wav;

pub use sdp::{Codec, SdpError, SessionDescription};
pub use wav::{Announcement, WavError};
