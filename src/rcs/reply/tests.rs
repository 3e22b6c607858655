//! The reply reader against real-world phrasings, each with the exact
//! reading expected at a fixed instant in a fixed zone.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::consent::SlotOption;

const SLOT: TimeDelta = TimeDelta::minutes(30);

fn local(zone: Tz, s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    zone.from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
}

fn offer(label: &str, postback: &str, choice: Choice) -> OfferedChoice {
    OfferedChoice {
        label: label.to_string(),
        postback: postback.to_string(),
        choice,
    }
}

/// The prompt every table below answers: now, in 15 minutes, 5 pm today,
/// don't call.
fn prompt(zone: Tz, five_pm: &str) -> Vec<OfferedChoice> {
    let start = local(zone, five_pm);
    vec![
        offer("Call now", "now", Choice::Now),
        offer(
            "In 15 min",
            "later-15",
            Choice::After(TimeDelta::minutes(15)),
        ),
        offer(
            "5:00 PM",
            "slot-1700",
            Choice::Slot(SlotOption {
                start,
                end: start + SLOT,
            }),
        ),
        offer("Don't call", "decline", Choice::Decline),
    ]
}

fn now(matched: Option<usize>) -> Reading {
    Reading::Picked {
        answer: Answer::Now,
        matched,
    }
}

fn decline() -> Reading {
    Reading::Picked {
        answer: Answer::Decline,
        matched: Some(3),
    }
}

fn slot_at(start: DateTime<Utc>, matched: Option<usize>) -> Reading {
    Reading::Picked {
        answer: Answer::Slot(SlotOption {
            start,
            end: start + SLOT,
        }),
        matched,
    }
}

fn range_at(start: DateTime<Utc>, end: DateTime<Utc>) -> Reading {
    Reading::Picked {
        answer: Answer::Range { start, end },
        matched: None,
    }
}

/// Runs every case and reports all mismatches at once.
fn check(ctx: &ReplyContext<'_>, cases: &[(&str, Reading)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, expected)| {
            let got = read_text(text, ctx);
            (got != *expected)
                .then(|| format!("{text:?}\n    expected {expected:?}\n    got      {got:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} phrasings misread:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn english_phrasings_on_a_tuesday_afternoon_in_new_york() {
    use chrono_tz::America::New_York as NY;
    // Tuesday 2026-03-10, 14:05 EDT (daylight time began on the 8th).
    let reply_at = local(NY, "2026-03-10 14:05");
    let offered = prompt(NY, "2026-03-10 17:00");
    let ctx = ReplyContext {
        offered: &offered,
        zone: NY,
        now: reply_at,
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    let at = |s: &str| local(NY, s);
    let slot = |s: &str| slot_at(at(s), None);
    let range = |a: &str, b: &str| range_at(at(a), at(b));
    let five_pm = || slot_at(at("2026-03-10 17:00"), Some(2));
    let in_min = |m: i64| slot_at(reply_at + TimeDelta::minutes(m), None);
    let fifteen = || slot_at(reply_at + TimeDelta::minutes(15), Some(1));
    let unclear = || Reading::Unclear;

    let cases: Vec<(&str, Reading)> = vec![
        // Option numbers.
        ("1", now(Some(0))),
        ("2", fifteen()),
        ("#2", fifteen()),
        ("2.", fifteen()),
        (" 2 ", fifteen()),
        ("option 3", five_pm()),
        ("Option #4", decline()),
        ("4", decline()),
        ("the second one", fifteen()),
        ("option two", fifteen()),
        ("2nd option", fifteen()),
        ("3rd", five_pm()),
        ("2 please", fifteen()),
        ("5", unclear()),
        ("option 7", unclear()),
        ("0", unclear()),
        ("12", unclear()),
        // A bare number beyond the options: the offered delay.
        ("15", fifteen()),
        // Now.
        ("now", now(Some(0))),
        ("Now!", now(Some(0))),
        ("NOW", now(Some(0))),
        ("call now", now(Some(0))),
        ("yes call me now", now(Some(0))),
        ("Call me now please", now(Some(0))),
        ("right now", now(Some(0))),
        ("ASAP", now(Some(0))),
        ("now is good :)", now(Some(0))),
        ("yes", now(Some(0))),
        ("Yes.", now(Some(0))),
        ("ok", now(Some(0))),
        ("OK!", now(Some(0))),
        ("Sure \u{1f44d}", now(Some(0))),
        ("\u{1f44d}", now(Some(0))),
        ("Yeah sure", now(Some(0))),
        ("ok thanks", now(Some(0))),
        ("call me", now(Some(0))),
        ("go ahead", now(Some(0))),
        ("Y", now(Some(0))),
        ("K", now(Some(0))),
        ("whenever", now(Some(0))),
        ("Yes please", now(Some(0))),
        ("yes 2", fifteen()),
        ("No. 2", fifteen()),
        ("busy now", unclear()),
        ("can't talk right now", unclear()),
        ("not now", unclear()),
        ("later", unclear()),
        ("call me later", unclear()),
        // Delays.
        ("in 15 min", fifteen()),
        ("15 minutes", fifteen()),
        ("15min", fifteen()),
        ("in 15", fifteen()),
        ("give me 15 mins", fifteen()),
        ("In 15 mins pls", fifteen()),
        ("in 30 minutes", in_min(30)),
        ("half an hour", in_min(30)),
        ("in half an hour", in_min(30)),
        ("in an hour", in_min(60)),
        ("1 hour", in_min(60)),
        ("in 1h", in_min(60)),
        ("in 2 hours", in_min(120)),
        ("2 hrs", in_min(120)),
        ("an hour and a half", in_min(90)),
        ("in a couple of hours", in_min(120)),
        ("call me in 45 minutes", in_min(45)),
        ("in forty five minutes", in_min(45)),
        ("10 minutes from now", in_min(10)),
        ("after 20 minutes", in_min(20)),
        ("busy, call me in 20 min", in_min(20)),
        ("busy now, call at 5", five_pm()),
        ("in a meeting, try 5pm", five_pm()),
        ("driving, call in an hour", in_min(60)),
        ("in 5", in_min(5)),
        ("2 mins", in_min(2)),
        ("in 3 days", unclear()),
        ("5-10 minutes", unclear()),
        ("in 25 hours", unclear()),
        ("in a bit", unclear()),
        ("in a few minutes", unclear()),
        // Clock times; an offered time is the offered slot.
        ("5pm", five_pm()),
        ("5 pm", five_pm()),
        ("5PM", five_pm()),
        ("5:00 PM", five_pm()),
        ("5 p.m.", five_pm()),
        ("at 5", five_pm()),
        ("5 o'clock", five_pm()),
        ("17:00", five_pm()),
        ("yes, 5pm is fine", five_pm()),
        ("no, 5pm is better", five_pm()),
        ("5:30pm", slot("2026-03-10 17:30")),
        ("5.30pm", slot("2026-03-10 17:30")),
        ("17:30", slot("2026-03-10 17:30")),
        ("17.30", slot("2026-03-10 17:30")),
        ("1730", slot("2026-03-10 17:30")),
        ("at 1730", slot("2026-03-10 17:30")),
        ("6:45 p.m.", slot("2026-03-10 18:45")),
        ("how about 4:30?", slot("2026-03-10 16:30")),
        ("4:30 works for me", slot("2026-03-10 16:30")),
        ("2:30", slot("2026-03-10 14:30")),
        ("5:30", slot("2026-03-10 17:30")),
        ("around 5:30", slot("2026-03-10 17:30")),
        ("Can you call at 3:15?", slot("2026-03-10 15:15")),
        ("around 7ish", slot("2026-03-10 19:00")),
        ("at 8", slot("2026-03-10 20:00")),
        ("tonight at 8", slot("2026-03-10 20:00")),
        ("8 tonight", slot("2026-03-10 20:00")),
        ("8 in the evening", slot("2026-03-10 20:00")),
        ("tonight at 10", slot("2026-03-10 22:00")),
        ("tuesday at 3", slot("2026-03-10 15:00")),
        // Already past today: tomorrow.
        ("2pm", slot("2026-03-11 14:00")),
        ("at 9", slot("2026-03-11 09:00")),
        ("10am", slot("2026-03-11 10:00")),
        ("noon", slot("2026-03-11 12:00")),
        ("at 12", slot("2026-03-11 12:00")),
        ("5am", slot("2026-03-11 05:00")),
        ("today at 9am", unclear()),
        // Other days.
        ("tomorrow 9am", slot("2026-03-11 09:00")),
        ("tomorrow at 9", slot("2026-03-11 09:00")),
        ("9am tomorrow", slot("2026-03-11 09:00")),
        ("Tmrw 10:30am", slot("2026-03-11 10:30")),
        ("tomorrow at 9pm", slot("2026-03-11 21:00")),
        ("midday tomorrow", slot("2026-03-11 12:00")),
        ("tomorrow morning at 10", slot("2026-03-11 10:00")),
        ("tomorrow's fine, 11am", slot("2026-03-11 11:00")),
        ("monday at 10", slot("2026-03-16 10:00")),
        ("Monday 10am", slot("2026-03-16 10:00")),
        ("at 10 on thursday", slot("2026-03-12 10:00")),
        ("call me at 5 tomorrow", slot("2026-03-11 17:00")),
        ("5pm tmrw pls", slot("2026-03-11 17:00")),
        ("tomorrow morning at 9pm", unclear()),
        // Ranges and parts of the day.
        ("tonight", range("2026-03-10 17:00", "2026-03-10 21:00")),
        (
            "this evening",
            range("2026-03-10 17:00", "2026-03-10 21:00"),
        ),
        ("evening", range("2026-03-10 17:00", "2026-03-10 21:00")),
        ("this afternoon", range_at(reply_at, at("2026-03-10 17:00"))),
        ("morning", range("2026-03-11 09:00", "2026-03-11 12:00")),
        (
            "in the morning",
            range("2026-03-11 09:00", "2026-03-11 12:00"),
        ),
        (
            "Tomorrow morning",
            range("2026-03-11 09:00", "2026-03-11 12:00"),
        ),
        (
            "tomorrow afternoon please",
            range("2026-03-11 12:00", "2026-03-11 17:00"),
        ),
        ("at lunch", range("2026-03-11 12:00", "2026-03-11 13:00")),
        (
            "lunchtime tomorrow",
            range("2026-03-11 12:00", "2026-03-11 13:00"),
        ),
        (
            "friday afternoon",
            range("2026-03-13 12:00", "2026-03-13 17:00"),
        ),
        ("after 6", range("2026-03-10 18:00", "2026-03-10 21:00")),
        ("after 6pm", range("2026-03-10 18:00", "2026-03-10 21:00")),
        (
            "anytime after 6",
            range("2026-03-10 18:00", "2026-03-10 21:00"),
        ),
        ("after 8", range("2026-03-10 20:00", "2026-03-10 21:00")),
        ("before 5", range_at(reply_at, at("2026-03-10 17:00"))),
        (
            "between 6 and 8 pm",
            range("2026-03-10 18:00", "2026-03-10 20:00"),
        ),
        (
            "between 6 and 8",
            range("2026-03-10 18:00", "2026-03-10 20:00"),
        ),
        ("6-8pm", range("2026-03-10 18:00", "2026-03-10 20:00")),
        ("6 to 8 pm", range("2026-03-10 18:00", "2026-03-10 20:00")),
        ("from 2 to 4", range_at(reply_at, at("2026-03-10 16:00"))),
        ("11-1", range("2026-03-11 11:00", "2026-03-11 13:00")),
        ("11am-1pm", range("2026-03-11 11:00", "2026-03-11 13:00")),
        ("tomorrow", range("2026-03-11 08:00", "2026-03-11 21:00")),
        ("today", range_at(reply_at, at("2026-03-10 21:00"))),
        (
            "next tuesday",
            range("2026-03-17 08:00", "2026-03-17 21:00"),
        ),
        (
            "not now, tomorrow",
            range("2026-03-11 08:00", "2026-03-11 21:00"),
        ),
        (
            "tomorrow after 6",
            range("2026-03-11 18:00", "2026-03-11 21:00"),
        ),
        ("after 10pm", unclear()),
        (
            "I'm free after 6",
            range("2026-03-10 18:00", "2026-03-10 21:00"),
        ),
        (
            "I'm available between 2 and 4 tomorrow",
            range("2026-03-11 14:00", "2026-03-11 16:00"),
        ),
        (
            "any time tomorrow",
            range("2026-03-11 08:00", "2026-03-11 21:00"),
        ),
        (
            "sometime this afternoon",
            range_at(reply_at, at("2026-03-10 17:00")),
        ),
        ("Sat morning", range("2026-03-14 09:00", "2026-03-14 12:00")),
        ("not before 10", unclear()),
        ("after work", unclear()),
        // Don't call.
        ("no", decline()),
        ("No.", decline()),
        ("No thanks", decline()),
        ("no thank you", decline()),
        ("nope", decline()),
        ("N", decline()),
        ("don't call", decline()),
        ("Don\u{2019}t call me", decline()),
        ("do not call me", decline()),
        ("DO NOT CALL", decline()),
        ("dont call me please", decline()),
        ("not interested", decline()),
        ("Not interested, thanks.", decline()),
        ("no, not interested", decline()),
        ("never", decline()),
        ("no calls please", decline()),
        ("leave me alone", decline()),
        ("don't call before 5", unclear()),
        ("don't call me at 5", unclear()),
        ("not today", unclear()),
        ("no, now", unclear()),
        // Not understood: one clarifying question, no guess.
        ("", unclear()),
        ("   ", unclear()),
        ("\u{1f642}", unclear()),
        ("who is this?", unclear()),
        ("wrong number", unclear()),
        ("HELP", unclear()),
        ("maybe", unclear()),
        ("5 or 6", unclear()),
        ("at 25", unclear()),
        ("13pm", unclear()),
        ("5:75", unclear()),
        ("2 or 3", unclear()),
        ("now or at 5", unclear()),
        ("end of the day", unclear()),
        ("cancel the 5pm, 6 is better", unclear()),
        ("don't stop", unclear()),
        ("please don't stop", unclear()),
    ];
    assert!(cases.len() >= 60);
    check(&ctx, &cases);
}

#[test]
fn every_revocation_keyword_in_any_case_and_punctuation() {
    use chrono_tz::America::New_York as NY;
    let offered = prompt(NY, "2026-03-10 17:00");
    let ctx = ReplyContext {
        offered: &offered,
        zone: NY,
        now: local(NY, "2026-03-10 14:05"),
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    let phrasings = [
        "STOP",
        "stop",
        "Stop",
        "Stop.",
        " Stop. ",
        "stop!!",
        "STOP!!!",
        "\"STOP\"",
        "STOP \u{1f6d1}",
        "QUIT",
        "quit",
        "Quit!",
        "END",
        "end.",
        "End",
        "REVOKE",
        "revoke",
        "Revoke.",
        "OPT OUT",
        "opt out",
        "Opt-Out",
        "opt-out!",
        "OPTOUT",
        "optout",
        "CANCEL",
        "cancel",
        "Cancel!",
        "UNSUBSCRIBE",
        "unsubscribe",
        "Unsubscribe.",
        "STOPALL",
        "STOP calling me",
        "Stop texting me!!",
        "stop, who is this?",
        "please stop",
        "Just STOP",
        "cancel this",
        "end it",
        "quit calling me",
        "unsubscribe me please",
        "\tstop\n",
        "- STOP",
        "#stop",
    ];
    let misread: Vec<(&str, Reading)> = phrasings
        .iter()
        .map(|p| (*p, read_text(p, &ctx)))
        .filter(|(_, r)| *r != Reading::Revoke)
        .collect();
    assert!(misread.is_empty(), "not read as revocations: {misread:?}");
}

#[test]
fn around_the_spring_daylight_saving_change_in_new_york() {
    use chrono_tz::America::New_York as NY;
    // Saturday 2026-03-07 22:00 EST (03:00 UTC); at 02:00 on Sunday the
    // clocks jump to 03:00 EDT.
    let offered = prompt(NY, "2026-03-08 17:00");
    let saturday_night = utc("2026-03-08 03:00");
    let ctx = ReplyContext {
        offered: &offered,
        zone: NY,
        now: saturday_night,
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    let slot = |s: &str| slot_at(utc(s), None);
    let range = |a: &str, b: &str| range_at(utc(a), utc(b));
    check(
        &ctx,
        &[
            // 02:30 does not exist: the first instant after the gap, 03:00 EDT.
            ("tomorrow 2:30am", slot("2026-03-08 07:00")),
            ("tomorrow 3:30am", slot("2026-03-08 07:30")),
            ("tomorrow 1:30am", slot("2026-03-08 06:30")),
            // After the change, EDT (UTC-4).
            ("tomorrow 9am", slot("2026-03-08 13:00")),
            ("5pm", slot_at(utc("2026-03-08 21:00"), Some(2))),
            (
                "tomorrow morning",
                range("2026-03-08 13:00", "2026-03-08 16:00"),
            ),
            ("after 6", range("2026-03-08 22:00", "2026-03-09 01:00")),
            // Delays are counted in real time, not on the wall clock.
            ("in 5 hours", slot("2026-03-08 08:00")),
            ("in 15 min", slot_at(utc("2026-03-08 03:15"), Some(1))),
        ],
    );

    // Sunday 01:30 EST, half an hour before the jump.
    let ctx = ReplyContext {
        now: utc("2026-03-08 06:30"),
        ..ctx
    };
    check(
        &ctx,
        &[
            ("2:30am", slot("2026-03-08 07:00")),
            ("in an hour", slot("2026-03-08 07:30")),
            ("10am", slot("2026-03-08 14:00")),
            ("at 9", slot("2026-03-08 13:00")),
        ],
    );
}

#[test]
fn around_the_autumn_daylight_saving_change_in_new_york() {
    use chrono_tz::America::New_York as NY;
    // Saturday 2026-10-31 20:00 EDT; at 02:00 on Sunday the clocks go back
    // to 01:00, so 01:30 happens twice.
    let ctx = ReplyContext {
        offered: &[],
        zone: NY,
        now: utc("2026-11-01 00:00"),
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    check(
        &ctx,
        &[
            ("tomorrow 1:30am", slot_at(utc("2026-11-01 05:30"), None)),
            ("tomorrow 9am", slot_at(utc("2026-11-01 14:00"), None)),
            ("tonight at 8:30", slot_at(utc("2026-11-01 00:30"), None)),
            // Nothing offered: "yes" cannot mean an option.
            ("yes", Reading::Unclear),
            ("1", Reading::Unclear),
            ("now", now(None)),
            (
                "no",
                Reading::Picked {
                    answer: Answer::Decline,
                    matched: None,
                },
            ),
        ],
    );
}

#[test]
fn across_the_date_line_in_auckland_and_kolkata() {
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Pacific::Auckland;
    // 11:30 UTC on Tuesday the 10th is already 00:30 on Wednesday the 11th
    // in Auckland (NZDT, UTC+13): "today" and "tomorrow" are Auckland's.
    let offered = prompt(Auckland, "2026-03-11 17:00");
    let ctx = ReplyContext {
        offered: &offered,
        zone: Auckland,
        now: utc("2026-03-10 11:30"),
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    let slot = |s: &str| slot_at(utc(s), None);
    let range = |a: &str, b: &str| range_at(utc(a), utc(b));
    check(
        &ctx,
        &[
            ("9am", slot("2026-03-10 20:00")),
            ("tomorrow 9am", slot("2026-03-11 20:00")),
            ("5pm", slot_at(utc("2026-03-11 04:00"), Some(2))),
            ("tonight", range("2026-03-11 04:00", "2026-03-11 08:00")),
            ("wednesday at 10", slot("2026-03-10 21:00")),
            ("tuesday at 10", slot("2026-03-16 21:00")),
            ("in 15 min", slot_at(utc("2026-03-10 11:45"), Some(1))),
        ],
    );

    // Saturday 2026-04-04 20:00 NZDT; at 03:00 on Sunday the clocks go back
    // to 02:00 NZST, so 02:30 happens twice: the first (NZDT, UTC+13).
    let ctx = ReplyContext {
        offered: &[],
        now: utc("2026-04-04 07:00"),
        ..ctx
    };
    check(
        &ctx,
        &[
            ("tomorrow 2:30am", slot("2026-04-04 13:30")),
            ("tomorrow 9am", slot("2026-04-04 21:00")),
            ("tomorrow 8", slot("2026-04-04 20:00")),
        ],
    );

    // 20:00 UTC is 01:30 the next day in Kolkata (IST, UTC+5:30, no DST).
    let offered = prompt(Kolkata, "2026-03-11 17:00");
    let ctx = ReplyContext {
        offered: &offered,
        zone: Kolkata,
        now: utc("2026-03-10 20:00"),
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    check(
        &ctx,
        &[
            ("5pm", slot_at(utc("2026-03-11 11:30"), Some(2))),
            ("at 10", slot("2026-03-11 04:30")),
            ("tomorrow at 10", slot("2026-03-12 04:30")),
            ("after 6", range("2026-03-11 12:30", "2026-03-11 15:30")),
        ],
    );
}

#[test]
fn a_late_reply_still_names_a_slot_from_when_it_was_sent() {
    use chrono_tz::America::New_York as NY;
    let offered = prompt(NY, "2026-03-10 17:00");
    // Long after any hold window, and after the offered 5 pm.
    let late = local(NY, "2026-03-10 18:40");
    let ctx = ReplyContext {
        offered: &offered,
        zone: NY,
        now: late,
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    assert_eq!(
        read_text("2", &ctx),
        slot_at(late + TimeDelta::minutes(15), Some(1))
    );
    assert_eq!(
        read_text("5pm", &ctx),
        slot_at(local(NY, "2026-03-11 17:00"), None)
    );
    // The same reply delivered twice reads the same.
    assert_eq!(read_text("in 1 hour", &ctx), read_text("in 1 hour", &ctx));
}

#[test]
fn postbacks_match_exactly() {
    use chrono_tz::America::New_York as NY;
    let offered = prompt(NY, "2026-03-10 17:00");
    let reply_at = local(NY, "2026-03-10 14:05");
    let ctx = ReplyContext {
        offered: &offered,
        zone: NY,
        now: reply_at,
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    assert_eq!(read_postback("now", &ctx), now(Some(0)));
    assert_eq!(
        read_postback("later-15", &ctx),
        slot_at(reply_at + TimeDelta::minutes(15), Some(1))
    );
    assert_eq!(
        read_postback("slot-1700", &ctx),
        slot_at(local(NY, "2026-03-10 17:00"), Some(2))
    );
    assert_eq!(read_postback("decline", &ctx), decline());
    for other in ["", "NOW", " now", "now ", "slot-1800", "stop", "2"] {
        assert_eq!(read_postback(other, &ctx), Reading::Unclear, "{other:?}");
    }
    assert_eq!(read_postback(&"now".repeat(1000), &ctx), Reading::Unclear);
}

#[test]
fn input_longer_than_the_cap_is_unclear() {
    use chrono_tz::America::New_York as NY;
    let ctx = ReplyContext {
        offered: &[],
        zone: NY,
        now: utc("2026-03-10 18:05"),
        slot_length: SLOT,
        calling_hours: CallingHours::default(),
    };
    let long = format!("in 15 min {}", "a".repeat(MAX_REPLY_BYTES));
    assert_eq!(read_text(&long, &ctx), Reading::Unclear);
    // An opt-out at the start of a long message is still an opt-out.
    let long = format!("STOP! {}", "\u{e9}".repeat(MAX_REPLY_BYTES));
    assert_eq!(read_text(&long, &ctx), Reading::Revoke);
    let long = format!("{} stop", "a ".repeat(MAX_REPLY_BYTES));
    assert_eq!(read_text(&long, &ctx), Reading::Unclear);
    assert_eq!(read_text(&"9".repeat(5000), &ctx), Reading::Unclear);
}

/// Words the grammar knows, so that random replies reach deep into it.
const VOCABULARY: &[&str] = &[
    "now",
    "at",
    "5",
    "17",
    ":",
    "30",
    "pm",
    "am",
    "tomorrow",
    "tonight",
    "after",
    "before",
    "between",
    "and",
    "-",
    "to",
    "in",
    "15",
    "min",
    "hours",
    "half",
    "an",
    "hour",
    "monday",
    "next",
    "this",
    "morning",
    "evening",
    "lunch",
    "noon",
    "midnight",
    "option",
    "#",
    "2",
    "2nd",
    "no",
    "not",
    "don't",
    "call",
    "me",
    "stop",
    "opt",
    "out",
    "yes",
    "ok",
    "busy",
    "0",
    "00",
    "12",
    "24",
    "99",
    "1730",
    "0930",
    "999999999999",
    ".",
    "!",
    "\u{1f44d}",
    "\u{1f600}",
    "\u{0301}",
    "\u{200d}",
    "ß",
    "İ",
    "ǅ",
    "\u{feff}",
    "o'clock",
    "ish",
    "a",
    "from",
];

fn random_reply(rng: &mut StdRng) -> String {
    match rng.gen_range(0..4) {
        0 => {
            let len = rng.gen_range(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => {
            let len = rng.gen_range(0..32);
            (0..len)
                .map(|_| char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('\u{fffd}'))
                .collect()
        }
        2 => {
            let len = rng.gen_range(0..2000);
            (0..len)
                .map(|_| char::from(rng.gen_range(0x20u8..0x7f)))
                .collect()
        }
        _ => {
            let len = rng.gen_range(1..8);
            let words: Vec<&str> = (0..len)
                .map(|_| VOCABULARY[rng.gen_range(0..VOCABULARY.len())])
                .collect();
            let sep = if rng.gen_bool(0.5) { " " } else { "" };
            words.join(sep)
        }
    }
}

#[test]
fn random_replies_never_panic_and_never_name_the_past() {
    let zones = [
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Auckland,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Europe::London,
        chrono_tz::UTC,
    ];
    let offered = vec![
        offer("Call now", "now", Choice::Now),
        offer("In 15 min", "15", Choice::After(TimeDelta::minutes(15))),
        offer("Don't call", "no", Choice::Decline),
    ];
    let mut rng = StdRng::seed_from_u64(0x5107_6a7e);
    let base = utc("2026-01-01 00:00");
    for _ in 0..20_000 {
        let text = random_reply(&mut rng);
        let ctx = ReplyContext {
            offered: &offered,
            zone: zones[rng.gen_range(0..zones.len())],
            now: base + TimeDelta::minutes(rng.gen_range(0..60 * 24 * 365)),
            slot_length: SLOT,
            calling_hours: CallingHours::default(),
        };
        let reading = read_text(&text, &ctx);
        let _ = read_postback(&text, &ctx);
        if text.len() > MAX_REPLY_BYTES && reading != Reading::Revoke {
            assert_eq!(reading, Reading::Unclear, "{text:?}");
        }
        if let Reading::Picked { answer, .. } = reading {
            if let Some((start, end)) = answer.bounds() {
                assert!(start >= ctx.now, "{text:?} starts in the past: {answer:?}");
                assert!(end > start, "{text:?} is empty: {answer:?}");
            }
        }
    }
}

#[test]
fn bare_hours_days_and_open_ranges_follow_the_persons_calling_hours() {
    use chrono::NaiveTime;
    use chrono_tz::America::New_York as NY;
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let reply_at = local(NY, "2026-03-10 14:05");
    let ctx = ReplyContext {
        offered: &[],
        zone: NY,
        now: reply_at,
        slot_length: SLOT,
        calling_hours: CallingHours::new(hm(9, 30), hm(19, 30)).unwrap(),
    };
    let at = |s: &str| local(NY, s);
    check(
        &ctx,
        &[
            // 08:00 and 20:00 are both outside: read as said, next one ahead.
            ("at 8", slot_at(at("2026-03-10 20:00"), None)),
            // 07:00 is outside, 19:00 inside.
            ("at 7", slot_at(at("2026-03-10 19:00"), None)),
            ("at 9", slot_at(at("2026-03-10 21:00"), None)),
            (
                "tomorrow",
                range_at(at("2026-03-11 09:30"), at("2026-03-11 19:30")),
            ),
            (
                "after 6",
                range_at(at("2026-03-10 18:00"), at("2026-03-10 19:30")),
            ),
            (
                "tonight",
                range_at(at("2026-03-10 17:00"), at("2026-03-10 19:30")),
            ),
            ("after 8pm", Reading::Unclear),
        ],
    );
}
