//! The texts slotgate sends back after a reply.
//!
//! A reply is answered exactly once: with a confirmation of what was
//! understood ("We'll call you at 5:00 PM."), with one clarifying question
//! listing the numbered options, or with the revocation notice. Times are
//! written in the person's zone, relative to the day of the reply
//! ("tomorrow at 9:00 AM"), because that is how the person will check them.
//!
//! English and French exist; every other tag falls back to English.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::consent::{Answer, OfferedChoice};

/// The language of the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    English,
    French,
}

impl Locale {
    /// The locale for a BCP 47 tag ("en-US", "fr_CA"); anything not yet
    /// translated is English.
    pub fn from_tag(tag: &str) -> Locale {
        let language = tag.trim().split(['-', '_']).next().unwrap_or("");
        if language.eq_ignore_ascii_case("fr") {
            Locale::French
        } else {
            Locale::English
        }
    }
}

/// What the person is told once their answer is recorded; `now` is the
/// instant of the reply, which decides "today" and "tomorrow".
pub fn confirmation(answer: &Answer, zone: Tz, now: DateTime<Utc>, locale: Locale) -> String {
    let today = now.with_timezone(&zone).date_naive();
    let at = |instant| local(instant, zone, today, locale);
    match (locale, answer) {
        (Locale::English, Answer::Now) => "We'll call you now.".to_string(),
        (Locale::English, Answer::Decline) => "We won't call you about this.".to_string(),
        (Locale::English, Answer::Slot(slot)) => {
            let (day, time) = at(slot.start);
            format!("We'll call you {day}at {time}.")
        }
        (Locale::English, Answer::Range { start, end }) => {
            let ((start_day, start_time), (end_day, end_time)) = (at(*start), at(*end));
            if start_day == end_day {
                format!("We'll call you {start_day}between {start_time} and {end_time}.")
            } else {
                format!("We'll call you between {start_day}{start_time} and {end_day}{end_time}.")
            }
        }
        (Locale::French, Answer::Now) => "Nous vous appelons maintenant.".to_string(),
        (Locale::French, Answer::Decline) => "Nous ne vous appellerons pas à ce sujet.".to_string(),
        (Locale::French, Answer::Slot(slot)) => {
            let (day, time) = at(slot.start);
            format!("Nous vous appellerons {day}à {time}.")
        }
        (Locale::French, Answer::Range { start, end }) => {
            let ((start_day, start_time), (end_day, end_time)) = (at(*start), at(*end));
            if start_day == end_day {
                format!("Nous vous appellerons {start_day}entre {start_time} et {end_time}.")
            } else {
                format!(
                    "Nous vous appellerons entre {start_day}{start_time} et {end_day}{end_time}."
                )
            }
        }
    }
}

/// The one reply to a revocation.
pub fn revocation_confirmation(display_name: &str, locale: Locale) -> String {
    match locale {
        Locale::English => {
            format!("You won't receive further calls or messages from {display_name}.")
        }
        Locale::French => {
            format!("Vous ne recevrez plus d'appels ni de messages de {display_name}.")
        }
    }
}

/// The one clarifying question for a reply that could not be read: the
/// options by number, and how to opt out.
pub fn clarification(offered: &[OfferedChoice], locale: Locale) -> String {
    let (sorry, reply, pick, any_time, opt_out) = match locale {
        Locale::English => (
            "Sorry, we didn't understand.",
            "Reply",
            "for",
            "with a time that suits you",
            "or STOP to opt out",
        ),
        Locale::French => (
            "Désolé, nous n'avons pas compris.",
            "Répondez",
            "pour",
            "avec l'heure qui vous convient",
            "ou STOP pour ne plus être contacté",
        ),
    };
    let options: Vec<String> = offered
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{} {pick} {}", i + 1, o.label))
        .collect();
    if options.is_empty() {
        return format!("{sorry} {reply} {any_time}, {opt_out}.");
    }
    format!("{sorry} {reply} {}, {opt_out}.", options.join(", "))
}

/// The day words ("", "tomorrow ", "on Friday ", "on March 20 " — or
/// "demain ", "vendredi ", "le 20 mars ") and the clock time of `at` in
/// `zone`, seen from `today`.
fn local(at: DateTime<Utc>, zone: Tz, today: NaiveDate, locale: Locale) -> (String, String) {
    let at = at.with_timezone(&zone);
    let days_ahead = at.date_naive().signed_duration_since(today).num_days();
    match locale {
        Locale::English => {
            let day = match days_ahead {
                0 => String::new(),
                1 => "tomorrow ".to_string(),
                2..=6 => format!("on {} ", at.format("%A")),
                _ => format!("on {} ", at.format("%B %-d")),
            };
            (day, at.format("%-I:%M %p").to_string())
        }
        Locale::French => {
            let day = match days_ahead {
                0 => String::new(),
                1 => "demain ".to_string(),
                2..=6 => format!("{} ", french_weekday(at.weekday())),
                _ => format!("le {} {} ", at.day(), french_month(at.month())),
            };
            (day, french_time(at.hour(), at.minute()))
        }
    }
}

/// "17h00", as French clocks are written.
pub fn french_time(hour: u32, minute: u32) -> String {
    format!("{hour}h{minute:02}")
}

pub fn french_weekday(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "lundi",
        Weekday::Tue => "mardi",
        Weekday::Wed => "mercredi",
        Weekday::Thu => "jeudi",
        Weekday::Fri => "vendredi",
        Weekday::Sat => "samedi",
        Weekday::Sun => "dimanche",
    }
}

fn french_month(month: u32) -> &'static str {
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    month
        .checked_sub(1)
        .and_then(|i| MONTHS.get(i as usize))
        .copied()
        .unwrap_or("")
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
        confirmation(&answer, New_York, at(10, 14, 5), Locale::from_tag("en-US"))
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

    #[test]
    fn french_texts_use_french_days_and_clocks() {
        let fr = |answer: Answer| confirmation(&answer, New_York, at(10, 14, 5), Locale::French);
        assert_eq!(Locale::from_tag("fr_CA"), Locale::French);
        assert_eq!(Locale::from_tag("de-DE"), Locale::English);
        assert_eq!(fr(Answer::Now), "Nous vous appelons maintenant.");
        assert_eq!(fr(slot(at(10, 17, 0))), "Nous vous appellerons à 17h00.");
        assert_eq!(
            fr(slot(at(11, 9, 5))),
            "Nous vous appellerons demain à 9h05."
        );
        assert_eq!(
            fr(slot(at(13, 12, 30))),
            "Nous vous appellerons vendredi à 12h30."
        );
        assert_eq!(
            fr(slot(at(20, 10, 0))),
            "Nous vous appellerons le 20 mars à 10h00."
        );
        assert_eq!(
            fr(Answer::Range {
                start: at(10, 18, 0),
                end: at(10, 20, 0)
            }),
            "Nous vous appellerons entre 18h00 et 20h00."
        );
        assert_eq!(
            revocation_confirmation("Acme Banque", Locale::French),
            "Vous ne recevrez plus d'appels ni de messages de Acme Banque."
        );
        assert_eq!(
            clarification(&[], Locale::French),
            "Désolé, nous n'avons pas compris. Répondez avec l'heure qui vous convient, ou STOP pour ne plus être contacté."
        );
    }
}
