//! What the B2BUA core asks of the media engine when it anchors a call's
//! media: slotgate's own SDP toward the PBX (for early media), an offer
//! toward the trunk, and the trunk's answer.
//!
//! A port of the core, so the core stays free of sockets: the engine
//! implements it in production, and the core's tests use a stand-in that
//! records what was asked.

use crate::media::{CallMedia, MediaEngine, MediaError, SessionDescription};

/// Opens anchored media for calls.
pub trait MediaAnchor: Send {
    /// Answers the PBX's offer with slotgate's SDP and starts the
    /// announcement toward the PBX.
    fn open(&mut self, pbx_offer: &SessionDescription)
        -> Result<Box<dyn AnchoredCall>, MediaError>;
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

impl MediaAnchor for MediaEngine {
    fn open(
        &mut self,
        pbx_offer: &SessionDescription,
    ) -> Result<Box<dyn AnchoredCall>, MediaError> {
        Ok(Box::new(self.open_early_media(pbx_offer)?))
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
