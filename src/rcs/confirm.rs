//! The texts slotgate sends back after a reply.
//!
//! A reply is answered exactly once: with a confirmation of what was
//! understood ("We'll call you at 5:00 PM."), with one clarifying question
//! listing the numbered options, or with the revocation notice. Times are
//! written in the person's zone, relative to the day of the reply
//! ("tomorrow at 9:00 AM"), because that is how the person will check them.
//!
//! Only English exists; the [`Locale`] parameter is where other languages
//! will plug in, and every unknown tag falls back to English.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::consent::{Answer, OfferedChoice};

/// The language of the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    English,
}

impl Locale {
    /// The locale for a BCP 47 tag ("en-US"); anything not yet translated
    /// is English.
    pub fn from_tag(_tag: &str) -> Locale {
        Locale::English
    }
}

/// What the person is told once their answer is recorded; `now` is the
/// instant of the reply, which decides "today" and "tomorrow".
pub fn confirmation(answer: &Answer, zone: Tz, now: DateTime<Utc>, locale: Locale) -> String {
    let Locale::English = locale;
    let today = now.with_timezone(&zone).date_naive();
    match answer {
        Answer::Now => "We'll call you now.".to_string(),
        Answer::Decline => "We won't call you about this.".to_string(),
        Answer::Slot(slot) => {
            let (day, time) = local(slot.start, zone, today);
            format!("We'll call you {day}at {time}.")
        }
        Answer::Range { start, end } => {
            let (start_day, start_time) = local(*start, zone, today);
            let (end_day, end_time) = local(*end, zone, today);
            if start_day == end_day {
                format!("We'll call you {start_day}between {start_time} and {end_time}.")
            } else {
                format!("We'll call you between {start_day}{start_time} and {end_day}{end_time}.")
            }
        }
    }
}

/// The one reply to a revocation.
pub fn revocation_confirmation(display_name: &str, locale: Locale) -> String {
    let Locale::English = locale;
    format!("You won't receive further calls or messages from {display_name}.")
}

/// The one clarifying question for a reply that could not be read: the
/// options by number, and how to opt out.
pub fn clarification(offered: &[OfferedChoice], locale: Locale) -> String {
    let Locale::English = locale;
    let options: Vec<String> = offered
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{} for {}", i + 1, o.label))
        .collect();
    if options.is_empty() {
        return "Sorry, we didn't understand. Reply with a time that suits you, or STOP to opt out."
            .to_string();
    }
    format!(
        "Sorry, we didn't understand. Reply {}, or STOP to opt out.",
        options.join(", ")
    )
}

/// The day words ("", "tomorrow ", "on Friday ", "on March 20 ") and the
/// clock time of `at` in `zone`, seen from `today`.
fn local(at: DateTime<Utc>, zone: Tz, today: NaiveDate) -> (String, String) {
    let at = at.with_timezone(&zone);
    let date = at.date_naive();
    let days_ahead = date.signed_duration_since(today).num_days();
    let day = match days_ahead {
        0 => String::new(),
        1 => "tomorrow ".to_string(),
        2..=6 => format!("on {} ", at.format("%A")),
        _ => format!("on {} ", at.format("%B %-d")),
    };
    (day, at.format("%-I:%M %p").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Choice, SlotOption};
    use chrono::{TimeDelta, TimeZone};
    use chrono_tz::America::New_York;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        New_York
            .with_ymd_and_hms(2026, 3, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn confirm(answer: Answer) -> String {
        // Tuesday 2026-03-10, 14:05 in New York.
        confirmation(&answer, New_York, at(10, 14, 5), Locale::from_tag("fr-FR"))
    }

    fn slot(start: DateTime<Utc>) -> Answer {
        Answer::Slot(SlotOption {
            start,
            end: start + TimeDelta::minutes(30),
        })
    }

    #[test]
    fn confirmations_name_the_time_in_the_persons_zone() {
        assert_eq!(confirm(Answer::Now), "We'll call you now.");
        assert_eq!(confirm(Answer::Decline), "We won't call you about this.");
        assert_eq!(confirm(slot(at(10, 17, 0))), "We'll call you at 5:00 PM.");
        assert_eq!(
            confirm(slot(at(11, 9, 0))),
            "We'll call you tomorrow at 9:00 AM."
        );
        assert_eq!(
            confirm(slot(at(13, 12, 30))),
            "We'll call you on Friday at 12:30 PM."
        );
        assert_eq!(
            confirm(slot(at(20, 10, 0))),
            "We'll call you on March 20 at 10:00 AM."
        );
        assert_eq!(
            confirm(Answer::Range {
                start: at(10, 18, 0),
                end: at(10, 20, 0)
            }),
            "We'll call you between 6:00 PM and 8:00 PM."
        );
        assert_eq!(
            confirm(Answer::Range {
                start: at(11, 9, 0),
                end: at(11, 12, 0)
            }),
            "We'll call you tomorrow between 9:00 AM and 12:00 PM."
        );
        assert_eq!(
            confirm(Answer::Range {
                start: at(10, 20, 0),
                end: at(11, 9, 0)
            }),
            "We'll call you between 8:00 PM and tomorrow 9:00 AM."
        );
    }

    #[test]
    fn the_clarifying_question_lists_the_options_by_number() {
        let offered = [
            OfferedChoice {
                label: "Call now".to_string(),
                postback: "now".to_string(),
                choice: Choice::Now,
            },
            OfferedChoice {
                label: "In 15 min".to_string(),
                postback: "15".to_string(),
                choice: Choice::After(TimeDelta::minutes(15)),
            },
            OfferedChoice {
                label: "Don't call".to_string(),
                postback: "no".to_string(),
                choice: Choice::Decline,
            },
        ];
        assert_eq!(
            clarification(&offered, Locale::English),
            "Sorry, we didn't understand. Reply 1 for Call now, 2 for In 15 min, 3 for Don't call, or STOP to opt out."
        );
        assert_eq!(
            clarification(&[], Locale::English),
            "Sorry, we didn't understand. Reply with a time that suits you, or STOP to opt out."
        );
        assert_eq!(
            revocation_confirmation("Acme Bank", Locale::English),
            "You won't receive further calls or messages from Acme Bank."
        );
    }
}
