//! stub
use super::relay::Side;
use super::*;
#[derive(Debug, Clone, PartialEq)]
pub struct MediaEvent {
    pub call: u64,
    pub kind: MediaEventKind,
}
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEventKind {
    Detected(super::amd::Detection),
    PlaybackEnded { side: Side },
}
pub struct BridgeMedia;
impl MediaEngine {
    pub fn open_bridge(
        &self,
        _call: u64,
        _e: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<BridgeMedia, MediaError> {
        Err(MediaError::Stopped)
    }
}
impl BridgeMedia {
    pub fn offer(&self, _s: Side) -> &str {
        ""
    }
    pub fn answered(&mut self, _s: Side, _a: &SessionDescription) -> Result<(), MediaError> {
        Ok(())
    }
    pub fn detect(&mut self, _s: super::amd::AmdSettings) -> Result<(), MediaError> {
        Ok(())
    }
    pub fn play(&mut self, _s: Side, _m: std::sync::Arc<Announcement>) -> Result<(), MediaError> {
        Ok(())
    }
    pub fn bridge(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
}
