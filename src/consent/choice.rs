//! The choices a consent prompt offers, as the person sees them.
//!
//! A prompt is a short list of [`OfferedChoice`]s: each has the label shown
//! on an RCS suggestion chip (or after a number in an SMS), the opaque
//! `postback` an RCS chip sends back, and what picking it means
//! ([`Choice`]). The same list is stored with the request so that a reply
//! ("2", a postback, "in 15 min") is read against exactly what was offered,
//! whenever it arrives.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Answer, SlotOption};

/// Longest label an RBM suggestion chip accepts.
pub const MAX_LABEL_CHARS: usize = 25;

/// What picking an option means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Call me now.
    Now,
    /// Call me after this delay (counted from when the reply arrives).
    After(TimeDelta),
    /// A slot at a fixed time.
    Slot(SlotOption),
    /// A range of time ("between 6 and 8 pm").
    Range(SlotOption),
    /// Don't call.
    Decline,
}

impl Choice {
    /// The answer this choice gives when picked at `replied_at`; a delay
    /// becomes a slot starting then, as long as `slot_length`.
    pub fn answer(&self, replied_at: DateTime<Utc>, slot_length: TimeDelta) -> Answer {
        match self {
            Choice::Now => Answer::Now,
            Choice::After(delay) => {
                let start = replied_at + *delay;
                Answer::Slot(SlotOption {
                    start,
                    end: start + slot_length,
                })
            }
            Choice::Slot(slot) => Answer::Slot(*slot),
            Choice::Range(range) => Answer::Range {
                start: range.start,
                end: range.end,
            },
            Choice::Decline => Answer::Decline,
        }
    }
}

/// One option in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedChoice {
    /// Shown to the person; at most [`MAX_LABEL_CHARS`] characters.
    pub label: String,
    /// Sent back by an RCS chip; unique within one prompt.
    pub postback: String,
    pub choice: Choice,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_delay_becomes_a_slot_from_the_reply_time() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 16, 0, 0).unwrap();
        let answer = Choice::After(TimeDelta::minutes(15)).answer(at, TimeDelta::minutes(10));
        assert_eq!(
            answer,
            Answer::Slot(SlotOption {
                start: at + TimeDelta::minutes(15),
                end: at + TimeDelta::minutes(25),
            })
        );
        assert_eq!(
            Choice::Decline.answer(at, TimeDelta::zero()),
            Answer::Decline
        );
    }
}
