//! The `[media]` section: where media sockets are bound, the address
//! written into SDP, the port range, and the announcement played to a held
//! PBX. The announcement is read and checked here, at start, so a missing
//! or unplayable file stops slotgate before the first call rather than
//! leaving callers in silence.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::wav::Announcement;
use crate::config::{key_error, ConfigError};

/// Checked `[media]` settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bind_address: IpAddr,
    /// Written in the `c=` and `o=` lines of slotgate's SDP.
    pub advertised_address: IpAddr,
    /// Even; RTP uses even ports of `port_min..=port_max`, RTCP the next.
    pub port_min: u16,
    pub port_max: u16,
    /// The configured file, or the built-in ringback when `None`.
    pub announcement_file: Option<PathBuf>,
    pub announcement: Arc<Announcement>,
    /// Media worker threads; 0: one per CPU core.
    pub threads: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        RawMedia::default()
            .validate()
            .unwrap_or_else(|_| MediaConfig {
                bind_address: IpAddr::from([127, 0, 0, 1]),
                advertised_address: IpAddr::from([127, 0, 0, 1]),
                port_min: 20_000,
                port_max: 29_999,
                announcement_file: None,
                announcement: Arc::new(Announcement::ringback()),
                threads: 0,
            })
    }
}

/// `[media]` as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMedia {
    bind_address: String,
    advertised_address: String,
    port_min: u32,
    port_max: u32,
    announcement: String,
    threads: u32,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            bind_address: "127.0.0.1".into(),
            advertised_address: String::new(),
            port_min: 20_000,
            port_max: 29_999,
            announcement: String::new(),
            threads: 0,
        }
    }
}

fn parse_ip(key: &str, value: &str) -> Result<IpAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        key_error(
            key,
            format!("`{value}` is not an IP address (e.g. 192.0.2.10 or 2001:db8::10)"),
        )
    })
}

impl RawMedia {
    pub(crate) fn validate(&self) -> Result<MediaConfig, ConfigError> {
        let bind_address = parse_ip("media.bind_address", &self.bind_address)?;
        let advertised_address = if self.advertised_address.trim().is_empty() {
            if bind_address.is_unspecified() {
                return Err(key_error(
                    "media.advertised_address",
                    format!(
                        "required when media.bind_address is {bind_address}: \
                         the address PBX and trunk send RTP to"
                    ),
                ));
            }
            bind_address
        } else {
            let ip = parse_ip("media.advertised_address", &self.advertised_address)?;
            if ip.is_unspecified() {
                return Err(key_error(
                    "media.advertised_address",
                    "must be an address peers can reach, not an unspecified one",
                ));
            }
            ip
        };
        if !(1024..=65_534).contains(&self.port_min) || self.port_min % 2 != 0 {
            return Err(key_error(
                "media.port_min",
                "must be an even port between 1024 and 65534 (RTP is even, RTCP the next port)",
            ));
        }
        if self.port_max > 65_535 || self.port_max <= self.port_min {
            return Err(key_error(
                "media.port_max",
                "must be above media.port_min and at most 65535",
            ));
        }
        if self.threads > 64 {
            return Err(key_error("media.threads", "must be between 0 and 64"));
        }
        let (announcement_file, announcement) = if self.announcement.trim().is_empty() {
            (None, Announcement::ringback())
        } else {
            let path = Path::new(self.announcement.trim());
            let announcement = Announcement::from_wav_file(path).map_err(|e| {
                key_error(
                    "media.announcement",
                    format!("{} cannot be played: {e}", path.display()),
                )
            })?;
            (Some(path.to_path_buf()), announcement)
        };
        Ok(MediaConfig {
            bind_address,
            advertised_address,
            port_min: self.port_min as u16,
            port_max: self.port_max as u16,
            announcement_file,
            announcement: Arc::new(announcement),
            threads: self.threads as usize,
        })
    }
}
