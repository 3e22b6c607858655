//! The built-in consent channel: handsets simulated inside slotgate.
//!
//! It lets slotgate run end to end with no provider account, and lets test
//! harnesses (SIPp runs, CI) decide what the "customer" answers. Prompts it
//! "sends" land in an inbox that people or scripts read over the API, and
//! are answered either by hand or by an [`AutoReply`] policy: a fixed answer
//! after a delay, or a seeded weighted mix so that load tests see realistic
//! and yet repeatable traffic.
//!
//! Like the real providers, it hands back [`InboundEvent`]s (a delivery
//! receipt, then the reply), so everything after the channel runs the same
//! code whichever channel is configured. The state machine here is sans-I/O:
//! the caller passes the time in and polls for due events.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::channel::{InboundEvent, OutboundMessage, SendOutcome};
use crate::consent::{Choice, OfferedChoice, E164};

/// How many prompts the inbox keeps; older ones are forgotten first, so a
/// long load test cannot grow memory without bound.
pub const INBOX_CAPACITY: usize = 10_000;

/// What a simulated person answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimulatedAnswer {
    Now,
    In15Minutes,
    In30Minutes,
    /// The first fixed slot offered.
    FirstSlot,
    Decline,
    /// Never answers: the request runs into its hold window and TTL.
    NoReply,
}

impl SimulatedAnswer {
    pub const ALL: [SimulatedAnswer; 6] = [
        SimulatedAnswer::Now,
        SimulatedAnswer::In15Minutes,
        SimulatedAnswer::In30Minutes,
        SimulatedAnswer::FirstSlot,
        SimulatedAnswer::Decline,
        SimulatedAnswer::NoReply,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            SimulatedAnswer::Now => "now",
            SimulatedAnswer::In15Minutes => "after_15",
            SimulatedAnswer::In30Minutes => "after_30",
            SimulatedAnswer::FirstSlot => "slot",
            SimulatedAnswer::Decline => "decline",
            SimulatedAnswer::NoReply => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<SimulatedAnswer> {
        SimulatedAnswer::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What the handset sends back for this answer to `offered`: the chip's
    /// postback when the answer was offered, else the words a person would
    /// type (which the reply reader must then understand).
    fn reply_to(self, offered: &[OfferedChoice]) -> Option<ReplyContent> {
        let wanted = |c: &Choice| match self {
            SimulatedAnswer::Now => *c == Choice::Now,
            SimulatedAnswer::In15Minutes => *c == Choice::After(TimeDelta::minutes(15)),
            SimulatedAnswer::In30Minutes => *c == Choice::After(TimeDelta::minutes(30)),
            SimulatedAnswer::FirstSlot => matches!(c, Choice::Slot(_)),
            SimulatedAnswer::Decline => *c == Choice::Decline,
            SimulatedAnswer::NoReply => false,
        };
        if self == SimulatedAnswer::NoReply {
            return None;
        }
        if let Some(choice) = offered.iter().find(|o| wanted(&o.choice)) {
            return Some(ReplyContent::Postback(choice.postback.clone()));
        }
        let words = match self {
            SimulatedAnswer::Now => "now",
            SimulatedAnswer::In15Minutes => "in 15 minutes",
            SimulatedAnswer::In30Minutes => "in 30 minutes",
            SimulatedAnswer::FirstSlot => "tomorrow 10am",
            SimulatedAnswer::Decline => "don't call",
            SimulatedAnswer::NoReply => return None,
        };
        Some(ReplyContent::Text(words.to_string()))
    }
}

/// How the simulated handsets answer on their own.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoReply {
    /// Only answers given through [`Simulator::reply`].
    Off,
    /// Every prompt gets the same answer after `after`.
    Fixed {
        answer: SimulatedAnswer,
        after: TimeDelta,
    },
    /// Each prompt draws its answer from `weights` (relative, not
    /// percentages) with a generator seeded by `seed`: the same seed and the
    /// same prompts give the same answers.
    Mix {
        weights: Vec<(SimulatedAnswer, u32)>,
        after: TimeDelta,
        seed: u64,
    },
}

/// A reply, as a chip press or as typed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyContent {
    Postback(String),
    Text(String),
}

/// A prompt as the simulated handset shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    pub provider_message_id: String,
    pub to: E164,
    pub text: String,
    pub choices: Vec<OfferedChoice>,
    pub sent_at: DateTime<Utc>,
}

/// Why a manual reply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulatorError {
    #[error("no prompt was sent to {0}; a simulated handset can only answer what it received")]
    NoPrompt(String),
    #[error("a reply needs either a postback or a text, not both and not neither")]
    EmptyReply,
}

/// The simulated handsets.
#[derive(Debug)]
pub struct Simulator {
    auto: AutoReply,
    rng: StdRng,
    inbox: VecDeque<InboxMessage>,
    /// Events waiting for their time, in order; the sequence number keeps
    /// events due at the same instant in the order they were made.
    due: BTreeMap<(DateTime<Utc>, u64), InboundEvent>,
    sequence: u64,
}

impl Simulator {
    pub fn new(auto: AutoReply) -> Simulator {
        let seed = match &auto {
            AutoReply::Mix { seed, .. } => *seed,
            _ => 0,
        };
        Simulator {
            auto,
            rng: StdRng::seed_from_u64(seed),
            inbox: VecDeque::new(),
            due: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// "Sends" a prompt: it is delivered at once and, under an auto-reply
    /// policy, answered later.
    pub fn send(&mut self, message: &OutboundMessage, now: DateTime<Utc>) -> SendOutcome {
        let provider_message_id = format!("sim-{}", message.message_id);
        self.schedule(
            now,
            InboundEvent::Delivered {
                provider_message_id: provider_message_id.clone(),
                at: now,
            },
        );
        // Only prompts are answered: a confirmation or a clarifying
        // question offers nothing to pick.
        let answerable = !message.choices.is_empty();
        if let Some((answer, after)) = self.draw().filter(|_| answerable) {
            if let Some(content) = answer.reply_to(&message.choices) {
                let at = now + after;
                let event = self.reply_event(&message.to, content, at);
                self.schedule(at, event);
            }
        }
        if self.inbox.len() == INBOX_CAPACITY {
            self.inbox.pop_front();
        }
        self.inbox.push_back(InboxMessage {
            provider_message_id: provider_message_id.clone(),
            to: message.to.clone(),
            text: message.text.clone(),
            choices: message.choices.clone(),
            sent_at: now,
        });
        SendOutcome::Accepted {
            provider_message_id,
        }
    }

    /// A person's own answer, given through the API.
    pub fn reply(
        &mut self,
        from: &E164,
        content: ReplyContent,
        now: DateTime<Utc>,
    ) -> Result<InboundEvent, SimulatorError> {
        if !self.inbox.iter().any(|m| &m.to == from) {
            return Err(SimulatorError::NoPrompt(from.as_str().to_string()));
        }
        let empty = match &content {
            ReplyContent::Postback(p) => p.is_empty(),
            ReplyContent::Text(t) => t.trim().is_empty(),
        };
        if empty {
            return Err(SimulatorError::EmptyReply);
        }
        Ok(self.reply_event(from, content, now))
    }

    /// Events whose time has come, oldest first.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<InboundEvent> {
        let later = self.due.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.due, later)
            .into_values()
            .collect()
    }

    /// When [`poll`](Simulator::poll) next has something to return.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    /// The prompts received, newest first, optionally only those to `to`.
    pub fn inbox(&self, to: Option<&E164>) -> Vec<InboxMessage> {
        self.inbox
            .iter()
            .rev()
            .filter(|m| to.is_none_or(|to| &m.to == to))
            .cloned()
            .collect()
    }

    fn draw(&mut self) -> Option<(SimulatedAnswer, TimeDelta)> {
        match &self.auto {
            AutoReply::Off => None,
            AutoReply::Fixed { answer, after } => Some((*answer, *after)),
            AutoReply::Mix { weights, after, .. } => {
                let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
                if total == 0 {
                    return None;
                }
                let mut pick = self.rng.gen_range(0..total);
                for (answer, weight) in weights {
                    let weight = u64::from(*weight);
                    if pick < weight {
                        return Some((*answer, *after));
                    }
                    pick -= weight;
                }
                None
            }
        }
    }

    fn reply_event(
        &mut self,
        from: &E164,
        content: ReplyContent,
        at: DateTime<Utc>,
    ) -> InboundEvent {
        self.sequence += 1;
        let (postback, text) = match content {
            ReplyContent::Postback(p) => (Some(p), None),
            ReplyContent::Text(t) => (None, Some(t)),
        };
        InboundEvent::Reply {
            from: from.clone(),
            provider_message_id: format!("sim-reply-{}", self.sequence),
            postback,
            text,
            at,
        }
    }

    fn schedule(&mut self, at: DateTime<Utc>, event: InboundEvent) {
        self.sequence += 1;
        self.due.insert((at, self.sequence), event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::SlotOption;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap()
    }

    fn ann() -> E164 {
        E164::parse("+33612345678", None).unwrap()
    }

    fn offered() -> Vec<OfferedChoice> {
        let slot = SlotOption {
            start: t0() + TimeDelta::hours(3),
            end: t0() + TimeDelta::hours(3) + TimeDelta::minutes(30),
        };
        [
            ("Call me now", "now", Choice::Now),
            (
                "In 15 minutes",
                "after:15",
                Choice::After(TimeDelta::minutes(15)),
            ),
            ("Today 6:00 PM", "slot:1", Choice::Slot(slot)),
            ("Don't call", "decline", Choice::Decline),
        ]
        .into_iter()
        .map(|(label, postback, choice)| OfferedChoice {
            label: label.into(),
            postback: postback.into(),
            choice,
        })
        .collect()
    }

    fn prompt(id: &str) -> OutboundMessage {
        OutboundMessage {
            message_id: id.into(),
            to: ann(),
            text: "When suits you?".into(),
            choices: offered(),
            ttl: std::time::Duration::from_secs(3600),
        }
    }

    fn replies(events: &[InboundEvent]) -> Vec<(Option<String>, Option<String>, DateTime<Utc>)> {
        events
            .iter()
            .filter_map(|e| match e {
                InboundEvent::Reply {
                    postback, text, at, ..
                } => Some((postback.clone(), text.clone(), *at)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_fixed_policy_delivers_then_answers_after_its_delay() {
        let mut sim = Simulator::new(AutoReply::Fixed {
            answer: SimulatedAnswer::In15Minutes,
            after: TimeDelta::seconds(2),
        });
        let outcome = sim.send(&prompt("r1"), t0());
        assert_eq!(
            outcome,
            SendOutcome::Accepted {
                provider_message_id: "sim-r1".into()
            }
        );
        assert_eq!(sim.inbox(Some(&ann())).len(), 1);
        let first = sim.poll(t0());
        assert_eq!(
            first,
            [InboundEvent::Delivered {
                provider_message_id: "sim-r1".into(),
                at: t0()
            }]
        );
        assert_eq!(sim.next_due(), Some(t0() + TimeDelta::seconds(2)));
        assert!(sim.poll(t0() + TimeDelta::milliseconds(1999)).is_empty());
        let later = sim.poll(t0() + TimeDelta::seconds(2));
        assert_eq!(
            replies(&later),
            [(
                Some("after:15".to_string()),
                None,
                t0() + TimeDelta::seconds(2)
            )]
        );
        assert_eq!(sim.next_due(), None);
    }

    #[test]
    fn messages_without_choices_are_not_answered() {
        let mut sim = Simulator::new(AutoReply::Fixed {
            answer: SimulatedAnswer::Now,
            after: TimeDelta::zero(),
        });
        let confirmation = OutboundMessage {
            choices: Vec::new(),
            text: "We'll call you now.".into(),
            ..prompt("c1")
        };
        sim.send(&confirmation, t0());
        assert!(replies(&sim.poll(t0())).is_empty());
        assert_eq!(sim.inbox(None).len(), 1);
    }

    #[test]
    fn an_answer_that_was_not_offered_is_typed_instead() {
        let mut sim = Simulator::new(AutoReply::Fixed {
            answer: SimulatedAnswer::In30Minutes,
            after: TimeDelta::zero(),
        });
        sim.send(&prompt("r1"), t0());
        let events = sim.poll(t0());
        assert_eq!(
            replies(&events),
            [(None, Some("in 30 minutes".to_string()), t0())]
        );
    }

    #[test]
    fn a_seeded_mix_is_repeatable_and_follows_its_weights() {
        let policy = AutoReply::Mix {
            weights: vec![
                (SimulatedAnswer::Now, 60),
                (SimulatedAnswer::Decline, 10),
                (SimulatedAnswer::NoReply, 30),
            ],
            after: TimeDelta::seconds(1),
            seed: 7,
        };
        let run = || {
            let mut sim = Simulator::new(policy.clone());
            for i in 0..1000 {
                sim.send(&prompt(&format!("r{i}")), t0());
            }
            replies(&sim.poll(t0() + TimeDelta::seconds(1)))
        };
        let first = run();
        assert_eq!(first, run());
        let now = first
            .iter()
            .filter(|r| r.0.as_deref() == Some("now"))
            .count();
        let decline = first
            .iter()
            .filter(|r| r.0.as_deref() == Some("decline"))
            .count();
        // 1000 draws: each share within a few points of its weight.
        assert!((550..=650).contains(&now), "{now}");
        assert!((70..=130).contains(&decline), "{decline}");
        assert_eq!(first.len(), now + decline);
    }

    #[test]
    fn manual_replies_need_a_prompt_and_content() {
        let mut sim = Simulator::new(AutoReply::Off);
        let bob = E164::parse("+33698765432", None).unwrap();
        assert_eq!(
            sim.reply(&ann(), ReplyContent::Text("now".into()), t0()),
            Err(SimulatorError::NoPrompt("+33612345678".into()))
        );
        sim.send(&prompt("r1"), t0());
        assert_eq!(sim.poll(t0()).len(), 1, "only the delivery receipt");
        assert_eq!(
            sim.reply(&ann(), ReplyContent::Text("  ".into()), t0()),
            Err(SimulatorError::EmptyReply)
        );
        assert!(sim
            .reply(&bob, ReplyContent::Postback("now".into()), t0())
            .is_err());
        let event = sim
            .reply(&ann(), ReplyContent::Postback("decline".into()), t0())
            .unwrap();
        assert!(matches!(
            event,
            InboundEvent::Reply { ref postback, .. } if postback.as_deref() == Some("decline")
        ));
    }

    #[test]
    fn the_inbox_is_bounded_and_newest_first() {
        let mut sim = Simulator::new(AutoReply::Off);
        for i in 0..INBOX_CAPACITY + 5 {
            sim.send(&prompt(&format!("r{i}")), t0());
        }
        let inbox = sim.inbox(None);
        assert_eq!(inbox.len(), INBOX_CAPACITY);
        assert_eq!(
            inbox[0].provider_message_id,
            format!("sim-r{}", INBOX_CAPACITY + 4)
        );
        assert_eq!(inbox[INBOX_CAPACITY - 1].provider_message_id, "sim-r5");
    }
}
