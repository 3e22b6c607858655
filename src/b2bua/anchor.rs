//! What the B2BUA core asks of the media engine when it anchors a call's
//! media: slotgate's own SDP toward the PBX (for early media), an offer
//! toward the trunk, and the trunk's answer; and, for calls slotgate places
//! itself, an offer toward each leg, detection of who answered, messages
//! played to one leg and the bridge between both.
//!
//! A port of the core, so the core stays free of sockets: the engine
//! implements it in production, and the core's tests use a stand-in that
//! records what was asked.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::media::amd::AmdSettings;
use crate::media::bridge::{BridgeMedia, MediaEvent};
use crate::media::relay::Side;
use crate::media::{Announcement, CallMedia, MediaEngine, MediaError, SessionDescription};

/// Opens anchored media for calls.
pub trait MediaAnchor: Send {
    /// Answers the PBX's offer with slotgate's SDP and starts the
    /// announcement toward the PBX.
    fn open(&mut self, pbx_offer: &SessionDescription)
        -> Result<Box<dyn AnchoredCall>, MediaError>;

    /// Binds the ports of a call slotgate places itself: the agent leg is
    /// [`Side::Pbx`], the customer leg [`Side::Trunk`]. What the media
    /// hears and plays comes back as [`MediaEvent`]s tagged with `call`.
    fn open_bridge(&mut self, call: u64) -> Result<Box<dyn BridgedCall>, MediaError>;
}

/// The media of a call slotgate places; dropping it ends the media.
pub trait BridgedCall: Send {
    /// slotgate's SDP offer for the INVITE of that leg.
    fn offer(&self, side: Side) -> String;
    /// That leg's SDP answer.
    fn answered(&mut self, side: Side, answer: &SessionDescription) -> Result<(), MediaError>;
    /// Listens to the customer: one [`MediaEvent`] with the verdict follows.
    fn detect(&mut self, settings: AmdSettings) -> Result<(), MediaError>;
    /// Plays `message` once to `side`; a [`MediaEvent`] says when it ended.
    fn play(&mut self, side: Side, message: Arc<Announcement>) -> Result<(), MediaError>;
    /// Relays audio between both legs from now on.
    fn bridge(&mut self) -> Result<(), MediaError>;
}

/// The media engine as the core's anchor: early media for held INVITEs,
/// bridges for placed calls, whose events go to `events`.
pub struct EngineAnchor {
    engine: MediaEngine,
    events: Option<UnboundedSender<MediaEvent>>,
}

impl EngineAnchor {
    /// Without `events`, calls cannot be placed (only early media).
    pub fn new(engine: MediaEngine, events: Option<UnboundedSender<MediaEvent>>) -> EngineAnchor {
        EngineAnchor { engine, events }
    }
}

/// One call's anchored media; dropping it ends the media.
pub trait AnchoredCall: Send {
    /// slotgate's SDP for the PBX (in the 183 and, unchanged, the 200).
    fn answer(&self) -> &str;
    /// The SDP offer for the INVITE to the trunk (the same one when asked
    /// again, e.g. for an INVITE resent after a challenge).
    fn offer_to_trunk(&mut self) -> Result<String, MediaError>;
    /// The trunk's SDP answer: the announcement stops, audio is relayed.
    fn trunk_answered(&mut self, answer: &SessionDescription) -> Result<(), MediaError>;
}

impl std::fmt::Debug for dyn AnchoredCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchoredCall")
            .field("answer", &self.answer())
            .finish()
    }
}

impl MediaAnchor for EngineAnchor {
    fn open(
        &mut self,
        pbx_offer: &SessionDescription,
    ) -> Result<Box<dyn AnchoredCall>, MediaError> {
        Ok(Box::new(self.engine.open_early_media(pbx_offer)?))
    }

    fn open_bridge(&mut self, call: u64) -> Result<Box<dyn BridgedCall>, MediaError> {
        let events = self.events.clone().ok_or(MediaError::Stopped)?;
        Ok(Box::new(self.engine.open_bridge(call, events)?))
    }
}

impl BridgedCall for BridgeMedia {
    fn offer(&self, side: Side) -> String {
        BridgeMedia::offer(self, side).to_string()
    }

    fn answered(&mut self, side: Side, answer: &SessionDescription) -> Result<(), MediaError> {
        BridgeMedia::answered(self, side, answer)
    }

    fn detect(&mut self, settings: AmdSettings) -> Result<(), MediaError> {
        BridgeMedia::detect(self, settings)
    }

    fn play(&mut self, side: Side, message: Arc<Announcement>) -> Result<(), MediaError> {
        BridgeMedia::play(self, side, message)
    }

    fn bridge(&mut self) -> Result<(), MediaError> {
        BridgeMedia::bridge(self)
    }
}

impl AnchoredCall for CallMedia {
    fn answer(&self) -> &str {
        CallMedia::answer(self)
    }

    fn offer_to_trunk(&mut self) -> Result<String, MediaError> {
        CallMedia::offer_to_trunk(self)
    }

    fn trunk_answered(&mut self, answer: &SessionDescription) -> Result<(), MediaError> {
        CallMedia::trunk_answered(self, answer)
    }
}
