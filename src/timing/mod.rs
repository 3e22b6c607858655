//! When to reach a person: the contact-time model and option ranking.
//!
//! A prompt's options are built by `crate::consent` (what may be offered,
//! inside calling hours); this module decides, from what the person did
//! before, in which order to show them ([`OptionRanker`]) and whether to
//! ask at all ([`may_prompt`]). Everything is sans-I/O: the history and the
//! current time come in as arguments, the store gathers the history.
//!
//! Ranking sits behind one trait so that the rule-based
//! [`HistoryRanker`] can later be replaced by a learned contact-time model
//! without touching the callers.

pub mod admission;
pub mod history;
pub mod policy;
pub mod ranking;

pub use admission::{may_prompt, PromptRefusal};
pub use history::{ContactHistory, OptionKey, PartOfDay, PastPrompt};
pub use policy::RankingPolicy;
pub use ranking::{HistoryRanker, OptionRanker};
