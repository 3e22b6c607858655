//! Reading what a person replied to a consent prompt.
//!
//! Sans-I/O: the offered choices, the person's zone and the instant of the
//! reply come in, a [`Reading`] goes out; no clock, no store. Pass as `now`
//! the instant the person *sent* the reply (the channel's timestamp), not
//! when it reached us, so that a re-delivered reply reads exactly the same
//! and its second delivery has no further effect.
//!
//! A postback from an RCS chip is matched exactly ([`read_postback`]).
//! Free text ([`read_text`]) is read with a small grammar over words, and
//! anything it cannot read completely is [`Reading::Unclear`]: the person
//! gets one clarifying message rather than a call at a guessed time.
//!
//! # How free text is read
//!
//! * **Revocation** ([`Reading::Revoke`]): STOP, UNSUBSCRIBE, REVOKE,
//!   OPTOUT / OPT OUT / OPT-OUT, STOPALL, UNSUB at the start of the message,
//!   whatever follows ("STOP calling me", "Stop!! who is this"); END, QUIT
//!   and CANCEL, which also occur in ordinary sentences ("cancel the 5pm,
//!   6 is better"), only when alone or followed by words such as "calling",
//!   "texting", "me", "this", "now". Any case, any punctuation, a leading
//!   "please"/"just"/"ok". A keyword later in the message ("don't stop",
//!   "please don't stop calling") is not a revocation.
//! * **Don't call** ([`Answer::Decline`]): "no", "no thanks", "nope",
//!   "don't call", "do not call me", "not interested", "never", "leave me
//!   alone". A negation next to a time ("don't call before 5", "not today")
//!   is unclear; a plain "no"/"not now" before a time ("no, 5pm is
//!   better", "not now, tomorrow") answers with the time.
//! * **Option numbers**: "2", "#2", "2.", "option 2", "2nd", "the second
//!   one" pick `offered[1]`; a number outside the options is unclear. A
//!   bare number is an option when it is within the option count ("2" with
//!   four options); otherwise it is the minutes of an offered delay ("15"
//!   when "in 15 min" was offered), or a clock time when written with
//!   three or four digits ("1730"), and unclear otherwise ("5" with three
//!   options could be option 5 or 5 o'clock). A number with "at", a day or
//!   am/pm is always a time ("at 2").
//! * **Now** ([`Answer::Now`]): "now", "call me now", "right now", "asap".
//!   "yes", "ok", "sure", "call me", 👍 with nothing else mean *now* only
//!   when now is one of the offered choices, and are unclear otherwise.
//!   Words that say the person is busy ("busy", "driving", "can't talk",
//!   "later") cancel a "now" ("busy now, call at 5" is 5 pm).
//! * **Delays**: "15 min", "in 15", "in 15 minutes", "half an hour", "in an
//!   hour", "2 hrs", "an hour and a half", up to 24 hours: a slot starting
//!   that long after the reply.
//! * **Clock times**: "5pm", "5:30 pm", "17:30", "17.30", "1730", "at 5",
//!   "noon", "tonight at 8", "tomorrow 9am", "monday at 10". Times are
//!   resolved in the person's zone (see `calendar.rs`): a bare hour
//!   is read inside calling hours (`calling_hours`, 08:00–21:00 by
//!   default), a time already past today
//!   means tomorrow unless "today" was said (then it is unclear), "monday"
//!   said on a Monday after the time means next week.
//! * **Ranges** ([`Answer::Range`]): "after 6" (until calling hours end),
//!   "before 5" (from when they start, or now), "between 6 and 8 pm", "6-8pm", "from 2 to 4",
//!   parts of the day (morning 09–12, lunch 12–13, afternoon 12–17, evening
//!   and tonight 17 to the end of calling hours) and whole days
//!   ("tomorrow": the calling hours). A range already
//!   under way starts now.
//!
//! A time answer is a slot `slot_length` long. When the answer is exactly
//! one of the offered choices, `matched` names it and the offered slot is
//! returned as offered; otherwise `matched` is `None` and the answer is the
//! person's own (an explicit "now" or "no" is the answer even when now or
//! don't-call was not offered: whether it is allowed is the gate's call).
//!
//! Times said with am/pm or in 24-hour form are taken as said, even outside
//! calling hours ("5am"): holding a call until calling hours is the pacer's
//! job, not a reason to ask again. A range that would start at or after
//! the end of the calling day ("after 10pm") is unclear.
//!
//! Replies longer than [`MAX_REPLY_BYTES`] are unclear, except that their
//! first [`MAX_REPLY_BYTES`] are still checked for a revocation keyword.
//!
//! The reader only reads. Applying a [`Reading::Revoke`] or a don't-call
//! answer (revoking the person's consents for the enterprise, the
//! do-not-call entry, the CRM event, the one confirmation from
//! [`super::confirm`]) and making a duplicate delivery count once are the
//! caller's, against the store.

mod calendar;
mod tokens;

#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use crate::consent::{Answer, CallingHours, Choice, OfferedChoice};

use calendar::{Calendar, Clock, DaySpec, Meridiem, PartOfDay, Phrase, When};
pub use tokens::MAX_REPLY_BYTES;
use tokens::{tokenize, Token};

/// What a reply is read against.
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext<'a> {
    /// The choices the prompt offered, in the order they were numbered.
    pub offered: &'a [OfferedChoice],
    /// The person's time zone: "5pm" is 5 pm there.
    pub zone: Tz,
    /// When the person sent the reply.
    pub now: DateTime<Utc>,
    /// How long a slot named by a time ("5pm", "in 15 min") lasts.
    pub slot_length: TimeDelta,
    /// The person's calling hours: a bare "5" is read inside them, and
    /// "tomorrow" or "after 6" end with them.
    pub calling_hours: CallingHours,
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// An answer; `matched` is the index of the offered choice it is, if it
    /// is one of them.
    Picked {
        answer: Answer,
        matched: Option<usize>,
    },
    /// Stop all contact from this enterprise.
    Revoke,
    /// Not understood: ask once more, guess nothing.
    Unclear,
}

/// Reads an RCS postback: an exact match on an offered choice's
/// `postback`, anything else is unclear.
pub fn read_postback(postback: &str, ctx: &ReplyContext<'_>) -> Reading {
    if postback.len() > MAX_REPLY_BYTES {
        return Reading::Unclear;
    }
    ctx.offered
        .iter()
        .enumerate()
        .find(|(_, o)| o.postback == postback)
        .map_or(Reading::Unclear, |(i, o)| Reading::Picked {
            answer: o.choice.answer(ctx.now, ctx.slot_length),
            matched: Some(i),
        })
}

/// Reads a free-text reply (see the module comment for the rules).
pub fn read_text(text: &str, ctx: &ReplyContext<'_>) -> Reading {
    if text.len() > MAX_REPLY_BYTES {
        // Too long to be an answer, but an opt-out must not be lost to a
        // pasted signature: its start is still checked for a keyword.
        let mut cut = MAX_REPLY_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let start = tokenize(text.get(..cut).unwrap_or_default());
        return if is_revocation(&start) {
            Reading::Revoke
        } else {
            Reading::Unclear
        };
    }
    let tokens = tokenize(text);
    if is_revocation(&tokens) {
        return Reading::Revoke;
    }
    match parse(&tokens) {
        Some(items) => interpret(&items, ctx),
        None => Reading::Unclear,
    }
}

/// Keywords that revoke whatever follows them.
#[rustfmt::skip]
const REVOKE_ALWAYS: &[&str] = &["stop", "stopall", "unsubscribe", "unsub", "revoke", "optout"];
/// Keywords that are also ordinary words: they revoke only alone or
/// followed by one of [`REVOKE_CONTINUATIONS`].
const REVOKE_ALONE: &[&str] = &["end", "quit", "cancel"];
#[rustfmt::skip]
const REVOKE_CONTINUATIONS: &[&str] = &[
    "calling", "calls", "call", "texting", "texts", "messaging", "messages", "contacting",
    "sending", "bothering", "me", "it", "this", "that", "all", "everything", "now", "please",
    "pls", "plz", "thanks", "thank", "immediately", "asap", "subscription",
];
const REVOKE_LEAD_INS: &[&str] = &["please", "pls", "plz", "just", "ok", "okay", "oh"];

fn is_revocation(tokens: &[Token]) -> bool {
    let mut rest = tokens;
    while let Some((first, tail)) = rest.split_first() {
        let lead_in = match first {
            Token::Word(w) => REVOKE_LEAD_INS.contains(&w.as_str()),
            // "- STOP", "#stop"
            Token::Colon | Token::Dash | Token::Hash => true,
            Token::Number { .. } => false,
        };
        if lead_in {
            rest = tail;
        } else {
            break;
        }
    }
    let (always, after) = match rest {
        [Token::Word(opt), Token::Word(out), tail @ ..] if opt == "opt" && out == "out" => {
            (true, tail)
        }
        [Token::Word(opt), Token::Dash, Token::Word(out), tail @ ..]
            if opt == "opt" && out == "out" =>
        {
            (true, tail)
        }
        [Token::Word(w), tail @ ..] if REVOKE_ALWAYS.contains(&w.as_str()) => (true, tail),
        [Token::Word(w), tail @ ..] if REVOKE_ALONE.contains(&w.as_str()) => (false, tail),
        _ => return false,
    };
    always
        || after.first().is_none_or(|t| {
            t.word().is_some_and(|w| {
                REVOKE_CONTINUATIONS.contains(&w)
                    || REVOKE_ALWAYS.contains(&w)
                    || REVOKE_ALONE.contains(&w)
            })
        })
}

/// One recognised piece of a reply.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Now,
    Delay(TimeDelta),
    Day(DaySpec),
    Part(PartOfDay),
    Time(When),
    /// An explicit option number ("option 2", "#2", "2nd").
    Pick(u32),
    /// A number on its own: an option, a delay or a time (see the module
    /// comment).
    Bare {
        value: u32,
        clock: Option<Clock>,
    },
    /// "no", "nope".
    No,
    /// "not now".
    NotNow,
    /// "don't", "do not", "not".
    Negation,
    /// "not interested", "never".
    Decline,
    /// "yes", "ok", "call me".
    Affirm,
    /// "busy", "driving", "later": whatever "now" was said is not meant.
    Busy,
    /// Politeness and glue: "please", "thanks", "me", "the".
    Filler,
}

/// Splits the tokens into items; `None` when some word is not understood.
fn parse(tokens: &[Token]) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = tokens;
    while !rest.is_empty() {
        let used = recognise(rest, &mut items)?;
        rest = rest.get(used..)?;
    }
    Some(items)
}

/// Recognises the item(s) at the start of `t`, pushes them and returns how
/// many tokens they took; `None` when nothing there makes sense.
fn recognise(t: &[Token], items: &mut Vec<Item>) -> Option<usize> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let phrase = match (w(0), w(1), w(2)) {
        (Some("leave"), Some("me"), Some("alone")) => Some((Item::Decline, 3)),
        (Some("not"), Some("interested"), _) | (Some("no"), Some("interest"), _) => {
            Some((Item::Decline, 2))
        }
        (Some("never" | "uninterested"), _, _) => Some((Item::Decline, 1)),
        (Some("not"), Some("now"), _) => Some((Item::NotNow, 2)),
        (Some("do"), Some("not"), _) => Some((Item::Negation, 2)),
        (Some("don't" | "dont" | "not" | "won't"), _, _) => Some((Item::Negation, 1)),
        (Some("no" | "nope" | "nah" | "n"), _, _) => Some((Item::No, 1)),
        (Some("right" | "straight"), Some("now" | "away"), _) => Some((Item::Now, 2)),
        (Some("now" | "asap" | "immediately" | "rn"), _, _) => Some((Item::Now, 1)),
        _ => None,
    };
    let found = phrase
        .or_else(|| delay(t).map(|(d, used)| (Item::Delay(d), used)))
        .or_else(|| range(t).map(|(when, used)| (Item::Time(when), used)));
    if let Some((item, used)) = found {
        items.push(item);
        return Some(used);
    }
    if let Some((found, used)) = day(t) {
        items.extend(found);
        return Some(used);
    }
    let found = part_of_day(t)
        .map(|(part, used)| (Item::Part(part), used))
        .or_else(|| pick(t).map(|(n, used)| (Item::Pick(n), used)))
        .or_else(|| {
            if !matches!(w(0), Some("at" | "around" | "about" | "abt" | "approx")) {
                return None;
            }
            let (clock, used) = clock(t.get(1..)?, true)?;
            Some((Item::Time(When::At(clock)), used + 1))
        })
        .or_else(|| clock(t, false).map(|(c, used)| (Item::Time(When::At(c)), used)))
        .or_else(|| {
            let (value, used) = bare_number(t)?;
            let clock = clock(t, true).map(|(c, _)| c);
            Some((Item::Bare { value, clock }, used))
        })
        .or_else(|| {
            let item = match t.first()? {
                // Stray punctuation, emoticons ":-)" and the like.
                Token::Colon | Token::Dash | Token::Hash => Item::Filler,
                Token::Number { .. } => return None,
                Token::Word(word) => {
                    let word = word.as_str();
                    if AFFIRM.contains(&word) {
                        Item::Affirm
                    } else if BUSY.contains(&word) {
                        Item::Busy
                    } else if FILLER.contains(&word) {
                        Item::Filler
                    } else {
                        return None;
                    }
                }
            };
            Some((item, 1))
        });
    let (item, used) = found?;
    items.push(item);
    Some(used)
}

#[rustfmt::skip]
const AFFIRM: &[&str] = &[
    "yes", "yeah", "yep", "yup", "ya", "yea", "yess", "yesss", "y", "ok", "okay", "okey", "k",
    "kk", "sure", "fine", "alright", "absolutely", "definitely", "certainly", "go", "ahead",
    "anytime", "whenever", "call", "ring", "phone",
];

#[rustfmt::skip]
const BUSY: &[&str] = &[
    "busy", "driving", "meeting", "sorry", "can't", "cant", "cannot", "talk", "later", "work",
    "working", "occupied",
];

#[rustfmt::skip]
const FILLER: &[&str] = &[
    "please", "pls", "plz", "thanks", "thank", "thankyou", "thx", "ty", "tks", "cheers", "much",
    "me", "us", "you", "u", "i", "i'm", "im", "i'd", "i'll", "we", "it", "that", "this", "is",
    "be", "would", "will", "can", "could", "should", "let", "say", "how", "what", "works",
    "good", "great", "perfect", "better", "best", "free", "available", "then", "so", "for",
    "and", "the", "a", "an", "in", "at", "on", "of", "to", "hi", "hello", "hey", "lol", "um",
    "uh", "oh", "well", "just", "maybe", "probably", "try", "give", "back", "o'clock", "oclock",
    "ish", "time", "any", "again", "there", "here", "sir", "dear", "like", "want", "called",
    "sounds", "do", "am", "are", "about", "around", "if", "yall", "calls", "sometime",
];

fn number_word(w: &str) -> Option<u32> {
    Some(match w {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "ninety" => 90,
        _ => return None,
    })
}

fn number_at(t: &[Token]) -> Option<(u32, usize)> {
    match t.first()? {
        Token::Number { value, .. } => Some(((*value)?, 1)),
        Token::Word(w) => {
            let n = number_word(w)?;
            // "forty five"
            if n >= 20 && n % 10 == 0 {
                if let Some(units) = t.get(1).and_then(Token::word).and_then(number_word) {
                    if units < 10 {
                        return Some((n + units, 2));
                    }
                }
            }
            Some((n, 1))
        }
        _ => None,
    }
}

/// A delay from now: "15 min", "in 15", "half an hour", "in an hour and a
/// half", "after 2 hours".
fn delay(t: &[Token]) -> Option<(TimeDelta, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let mut i = 0;
    let introduced = matches!(w(0), Some("in" | "within" | "after"));
    if introduced {
        i += 1;
    }
    let (minutes, used) = if w(i) == Some("half") {
        i += 1;
        if matches!(w(i), Some("an" | "a")) {
            i += 1;
        }
        if !matches!(w(i), Some(u) if unit_minutes(u) == Some(60)) {
            return None;
        }
        (30, i + 1)
    } else {
        let (amount, used) = match w(i) {
            Some("a" | "an") => (1, 1),
            Some("couple") => (2, if w(i + 1) == Some("of") { 2 } else { 1 }),
            _ => number_at(t.get(i..)?)?,
        };
        i += used;
        match w(i).and_then(unit_minutes) {
            Some(per) => {
                let mut minutes = amount.checked_mul(per)?;
                i += 1;
                if per == 60
                    && w(i) == Some("and")
                    && w(i + 1) == Some("a")
                    && w(i + 2) == Some("half")
                {
                    minutes = minutes.checked_add(30)?;
                    i += 3;
                }
                (minutes, i)
            }
            // "in 15": minutes, because "in 15 o'clock" is not said.
            None if introduced
                && w(0) != Some("after")
                && matches!(t.get(1), Some(Token::Number { .. })) =>
            {
                (amount, i)
            }
            None => return None,
        }
    };
    let mut used = used;
    if w(used) == Some("from") && w(used + 1) == Some("now") {
        used += 2;
    }
    if minutes == 0 || minutes > 24 * 60 {
        return None;
    }
    Some((TimeDelta::minutes(i64::from(minutes)), used))
}

fn unit_minutes(w: &str) -> Option<u32> {
    match w {
        "m" | "min" | "mins" | "minute" | "minutes" | "mn" | "mnt" | "mnts" | "minuts"
        | "minits" => Some(1),
        "h" | "hr" | "hrs" | "hour" | "hours" | "hour's" | "hrz" => Some(60),
        _ => None,
    }
}

fn meridiem(w: Option<&str>) -> Option<Meridiem> {
    match w? {
        "am" | "a" => Some(Meridiem::Am),
        "pm" | "p" => Some(Meridiem::Pm),
        _ => None,
    }
}

/// A clock time at the start of `t`. `loose` also accepts a bare hour
/// ("5", "five"), which is only a time where the context says so ("at 5",
/// "after 5", "tomorrow 5").
fn clock(t: &[Token], loose: bool) -> Option<(Clock, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let exact = |hour, minute| {
        Some((
            Clock {
                hour,
                minute,
                meridiem: None,
                exact: true,
            },
            1,
        ))
    };
    match w(0) {
        Some("noon" | "midday") => return exact(12, 0),
        Some("midnight") => return exact(0, 0),
        _ => {}
    }
    let (hour, mut minute, mut i, mut written_24h, digits) = match t.first()? {
        Token::Number {
            value,
            digits,
            leading_zero,
        } => {
            let v = (*value)?;
            match digits {
                1 | 2 => (v, 0, 1, *leading_zero, *digits),
                // "930", "1730"
                3 | 4 => (v / 100, v % 100, 1, *leading_zero, *digits),
                _ => return None,
            }
        }
        Token::Word(word) => match number_word(word) {
            Some(n) if (1..=12).contains(&n) => (n, 0, 1, false, 0),
            _ => return None,
        },
        _ => return None,
    };
    if digits <= 2 && t.get(1) == Some(&Token::Colon) {
        match t.get(2) {
            Some(Token::Number {
                value: Some(m),
                digits: 2,
                ..
            }) => {
                minute = *m;
                i = 3;
            }
            _ => return None,
        }
    } else if digits == 0 {
        // "five thirty"
        if let Some((m, used)) = t.get(1..).and_then(number_at) {
            if (10..60).contains(&m) && t.get(1).and_then(Token::word).is_some() {
                minute = m;
                i += used;
            }
        }
    }
    let said = meridiem(w(i));
    if said.is_some() {
        i += 1;
    } else if hour == 12 && w(i) == Some("noon") {
        i += 1;
        written_24h = true;
    }
    while matches!(w(i), Some("o'clock" | "oclock" | "ish" | "sharp")) {
        i += 1;
    }
    if minute > 59 {
        return None;
    }
    let clock = match said {
        Some(m) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            Clock {
                hour,
                minute,
                meridiem: Some(m),
                exact: false,
            }
        }
        None => {
            if hour > 23 {
                return None;
            }
            let exact = written_24h || hour == 0 || hour >= 13;
            let colon_or_digits = i > 1 || digits >= 3;
            if !loose && !colon_or_digits {
                return None;
            }
            Clock {
                hour,
                minute,
                meridiem: None,
                exact,
            }
        }
    };
    // "5 30" without a colon, or digits run into a word, is not a time.
    if !loose && digits >= 3 && said.is_none() {
        return None;
    }
    Some((clock, i))
}

/// "after 6", "before 5", "by 5", "between 6 and 8 pm", "from 2 to 4",
/// "6-8pm", "5:30 to 7".
fn range(t: &[Token]) -> Option<(When, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    match w(0) {
        Some("after" | "past") => {
            let (c, used) = clock(t.get(1..)?, true)?;
            return Some((When::After(c), used + 1));
        }
        Some("before" | "by" | "until" | "till" | "til") => {
            let (c, used) = clock(t.get(1..)?, true)?;
            return Some((When::Before(c), used + 1));
        }
        _ => {}
    }
    let start = usize::from(matches!(w(0), Some("between" | "from" | "btw" | "btwn")));
    let (from, used) = clock(t.get(start..)?, true)?;
    let mut i = start + used;
    let joined = match t.get(i)? {
        Token::Dash => true,
        Token::Word(j) => match j.as_str() {
            "and" => start == 1 && w(0) != Some("from"),
            "to" | "till" | "til" | "until" | "thru" | "through" => true,
            _ => false,
        },
        _ => false,
    };
    if !joined {
        return None;
    }
    i += 1;
    let (to, used) = clock(t.get(i..)?, true)?;
    Some((When::Between(from, to), i + used))
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" | "weds" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// "today", "tomorrow", "tonight", "this evening", "monday", "next friday".
fn day(t: &[Token]) -> Option<(Vec<Item>, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let items = match w(0)? {
        "today" | "tday" | "tdy" => vec![Item::Day(DaySpec::Today)],
        "tomorrow" | "tomorow" | "tommorow" | "tommorrow" | "tmrw" | "tmr" | "tmrow" | "tmw"
        | "tomo" => vec![Item::Day(DaySpec::Tomorrow)],
        "tonight" | "tonite" | "tonyt" => {
            vec![Item::Day(DaySpec::Today), Item::Part(PartOfDay::Evening)]
        }
        "this" | "next" | "on" | "coming" => {
            let skip_today = w(0) == Some("next");
            if let Some(day) = w(1).and_then(weekday) {
                return Some((vec![Item::Day(DaySpec::Weekday { day, skip_today })], 2));
            }
            if w(0) == Some("this") {
                let (part, used) = part_of_day(t.get(1..)?)?;
                return Some((vec![Item::Day(DaySpec::Today), Item::Part(part)], 1 + used));
            }
            return None;
        }
        other => vec![Item::Day(DaySpec::Weekday {
            day: weekday(other)?,
            skip_today: false,
        })],
    };
    Some((items, 1))
}

/// "morning", "in the afternoon", "at lunch", "this evening" (the "this"
/// is read by [`day`]).
fn part_of_day(t: &[Token]) -> Option<(PartOfDay, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let mut i = 0;
    if matches!(w(i), Some("in" | "at" | "during" | "around")) {
        i += 1;
    }
    if w(i) == Some("the") {
        i += 1;
    }
    let part = match w(i)? {
        "morning" | "mornin" | "morn" => PartOfDay::Morning,
        "afternoon" | "arvo" | "aft" => PartOfDay::Afternoon,
        "evening" | "eve" | "evenin" | "night" | "nite" => PartOfDay::Evening,
        "lunch" | "lunchtime" => {
            if w(i + 1) == Some("time") {
                i += 1;
            }
            PartOfDay::Lunch
        }
        _ => return None,
    };
    Some((part, i + 1))
}

/// "option 2", "#2", "2nd", "the second one".
fn pick(t: &[Token]) -> Option<(u32, usize)> {
    let w = |i: usize| t.get(i).and_then(Token::word);
    let ordinal = |w: &str| match w {
        "first" => Some(1),
        "second" => Some(2),
        "third" => Some(3),
        "fourth" => Some(4),
        "fifth" => Some(5),
        _ => None,
    };
    if let Some(n) = w(0).and_then(ordinal) {
        let used = if matches!(w(1), Some("one" | "option" | "choice")) {
            2
        } else {
            1
        };
        return Some((n, used));
    }
    let mut i = 0;
    if matches!(
        w(0),
        Some("option" | "opt" | "choice" | "number" | "num" | "nr")
    ) {
        i += 1;
    }
    if t.get(i) == Some(&Token::Hash) {
        i += 1;
    }
    // "option two": a number word is an option only after such a keyword.
    if i > 0 {
        if let Some(n) = w(i).and_then(number_word).filter(|n| *n <= 12) {
            return Some((n, i + 1));
        }
    }
    let Some(Token::Number {
        value: Some(n),
        digits: 1 | 2,
        ..
    }) = t.get(i)
    else {
        return None;
    };
    i += 1;
    if matches!(w(i), Some("st" | "nd" | "rd" | "th")) {
        i += 1;
    } else if i == 1 {
        // Just a number: a bare number, not an explicit pick.
        return None;
    }
    if matches!(w(i), Some("one" | "option" | "choice")) {
        i += 1;
    }
    Some((*n, i))
}

fn bare_number(t: &[Token]) -> Option<(u32, usize)> {
    match t.first()? {
        Token::Number {
            value: Some(n),
            digits: 1..=4,
            ..
        } => Some((*n, 1)),
        Token::Word(w) => number_word(w).filter(|n| *n <= 12).map(|n| (n, 1)),
        _ => None,
    }
}

/// What was said, gathered from the items.
#[derive(Default)]
struct Said {
    now: bool,
    delay: Option<TimeDelta>,
    day: Option<DaySpec>,
    part: Option<PartOfDay>,
    time: Option<When>,
    pick: Option<u32>,
    bare: Option<(u32, Option<Clock>)>,
    no: bool,
    not_now: bool,
    negation: bool,
    decline: bool,
    affirm: bool,
    busy: bool,
}

/// Sets `slot` once; a second value for the same slot ("5 or 6") makes the
/// reply unclear.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

fn gather(items: &[Item]) -> Option<Said> {
    let mut s = Said::default();
    for item in items {
        match *item {
            Item::Now => s.now = true,
            Item::Delay(d) => once(&mut s.delay, d)?,
            Item::Day(d) => once(&mut s.day, d)?,
            Item::Part(p) => once(&mut s.part, p)?,
            Item::Time(w) => once(&mut s.time, w)?,
            Item::Pick(n) => once(&mut s.pick, n)?,
            Item::Bare { value, clock } => once(&mut s.bare, (value, clock))?,
            Item::No => s.no = true,
            Item::NotNow => s.not_now = true,
            Item::Negation => s.negation = true,
            Item::Decline => s.decline = true,
            Item::Affirm => s.affirm = true,
            Item::Busy => s.busy = true,
            Item::Filler => {}
        }
    }
    Some(s)
}

fn interpret(items: &[Item], ctx: &ReplyContext<'_>) -> Reading {
    let Some(mut s) = gather(items) else {
        return Reading::Unclear;
    };
    if s.busy {
        s.now = false;
    }
    // A number said with a day or part of the day is its hour.
    if s.bare.is_some() && (s.day.is_some() || s.part.is_some()) && s.time.is_none() {
        match s.bare.take().and_then(|(_, clock)| clock) {
            Some(clock) => s.time = Some(When::At(clock)),
            None => return Reading::Unclear,
        }
    }
    let calendar = s.day.is_some() || s.part.is_some() || s.time.is_some();
    let said = [
        s.now,
        s.delay.is_some(),
        calendar,
        s.pick.is_some(),
        s.bare.is_some(),
    ]
    .into_iter()
    .filter(|x| *x)
    .count();
    if s.negation || s.decline {
        return if said == 0 {
            decline(ctx)
        } else {
            Reading::Unclear
        };
    }
    if said == 0 {
        if s.no {
            return decline(ctx);
        }
        if s.affirm && !s.busy && !s.not_now {
            return match position(ctx, |c| *c == Choice::Now) {
                Some(i) => picked(Answer::Now, Some(i)),
                None => Reading::Unclear,
            };
        }
        return Reading::Unclear;
    }
    if said > 1 || (s.now && (s.no || s.not_now)) {
        return Reading::Unclear;
    }
    if s.now {
        return picked(Answer::Now, position(ctx, |c| *c == Choice::Now));
    }
    if let Some(d) = s.delay {
        return delayed(d, ctx);
    }
    if let Some(n) = s.pick {
        return option(n, ctx);
    }
    if let Some((value, clock)) = s.bare {
        return bare(value, clock, ctx);
    }
    let phrase = Phrase {
        day: s.day.unwrap_or(DaySpec::Unsaid),
        part: s.part,
        when: s.time.unwrap_or(When::Whole),
    };
    resolved(&phrase, ctx)
}

fn picked(answer: Answer, matched: Option<usize>) -> Reading {
    Reading::Picked { answer, matched }
}

fn position(ctx: &ReplyContext<'_>, f: impl Fn(&Choice) -> bool) -> Option<usize> {
    ctx.offered.iter().position(|o| f(&o.choice))
}

fn decline(ctx: &ReplyContext<'_>) -> Reading {
    picked(Answer::Decline, position(ctx, |c| *c == Choice::Decline))
}

/// The `n`th offered choice, counting from 1.
fn option(n: u32, ctx: &ReplyContext<'_>) -> Reading {
    let offered = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| ctx.offered.get(i).map(|o| (i, o)));
    match offered {
        Some((i, o)) => picked(o.choice.answer(ctx.now, ctx.slot_length), Some(i)),
        None => Reading::Unclear,
    }
}

fn delayed(delay: TimeDelta, ctx: &ReplyContext<'_>) -> Reading {
    let matched = position(ctx, |c| *c == Choice::After(delay));
    picked(
        Choice::After(delay).answer(ctx.now, ctx.slot_length),
        matched,
    )
}

fn bare(value: u32, clock: Option<Clock>, ctx: &ReplyContext<'_>) -> Reading {
    let within = usize::try_from(value).is_ok_and(|v| (1..=ctx.offered.len()).contains(&v));
    if within {
        return option(value, ctx);
    }
    let delay = TimeDelta::minutes(i64::from(value));
    if position(ctx, |c| *c == Choice::After(delay)).is_some() {
        return delayed(delay, ctx);
    }
    match clock {
        Some(clock) if value >= 100 => resolved(
            &Phrase {
                day: DaySpec::Unsaid,
                part: None,
                when: When::At(clock),
            },
            ctx,
        ),
        _ => Reading::Unclear,
    }
}

fn resolved(phrase: &Phrase, ctx: &ReplyContext<'_>) -> Reading {
    let calendar = Calendar {
        zone: ctx.zone,
        now: ctx.now,
        slot_length: ctx.slot_length,
        hours: ctx.calling_hours,
    };
    let Some(answer) = calendar.resolve(phrase) else {
        return Reading::Unclear;
    };
    // The same instant as an offered choice is that choice, as offered.
    let matched = ctx
        .offered
        .iter()
        .enumerate()
        .find(|(_, o)| match (&o.choice, &answer) {
            (Choice::Slot(s), Answer::Slot(a)) => s.start == a.start,
            (Choice::Range(r), Answer::Range { start, end }) => r.start == *start && r.end == *end,
            _ => false,
        });
    match matched {
        Some((i, o)) => picked(o.choice.answer(ctx.now, ctx.slot_length), Some(i)),
        None => picked(answer, None),
    }
}
