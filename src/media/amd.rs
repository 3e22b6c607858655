//! Answering-machine detection: tells, from the first seconds of what the
//! called party says, whether a person or a machine answered.
//!
//! A predictive dialer must put a person through to an agent at once and
//! must not waste an agent on a voicemail greeting, so the verdict has to
//! come within about two seconds of the answer. The detector is sans-I/O:
//! it reads no clock and no socket. Time is the number of 8 kHz samples
//! pushed, so a recording gives the same verdict at the same sample every
//! time, and the media task around it only decodes RTP and keeps the
//! wall-clock deadline for when no audio arrives at all.
//!
//! The method is the energy and cadence of the greeting, as in Asterisk's
//! `AMD()` application, whose parameters these follow. Audio is cut into
//! 20 ms frames; a frame whose RMS energy reaches `silence_threshold` is
//! voiced, else silent. A *word* is a run of voiced frames of at least
//! `min_word_ms`; it ends after `between_words_silence_ms` of silence, and
//! the next voiced run of `min_word_ms` is another word. The *greeting*
//! starts with the first word; its length is the voiced time heard so far.
//! Frame by frame, the first rule that holds decides:
//!
//! - before any word, silence of `initial_silence_ms` → `on_initial_silence`
//!   (default *Machine*, Asterisk's convention: a person says something on
//!   picking up, while some voicemail systems wait before their greeting);
//! - a greeting followed by `after_greeting_silence_ms` of silence →
//!   *Person* (someone said "hello?" and is waiting for an answer);
//! - voiced time in the greeting reaching `greeting_ms` → *Machine*
//!   (a recorded greeting talks on);
//! - more than `max_words` words → *Machine*;
//! - `decision_ms` of audio heard with none of the above → `on_not_sure`
//!   (default *Person*: a person kept waiting while a dialer hesitates
//!   hangs up, whereas a machine put through costs an agent a few seconds).
//!
//! Asterisk analyses up to 5 s; here the decision comes by 2 s (at most
//! 5 s), so the defaults are shorter than Asterisk's: 1.5 s of initial
//! silence and a 1.2 s greeting, which still leaves room for a person's
//! "hello?" and the 0.8 s pause after it.

use serde::{Deserialize, Serialize};

/// Samples of one analysis frame: 20 ms at 8 kHz.
const FRAME_SAMPLES: usize = 160;
const FRAME_MS: u32 = 20;
const SAMPLES_PER_MS: u64 = 8;
/// The longest a caller may wait for a verdict.
pub const MAX_DECISION_MS: u32 = 5_000;

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    #[serde(alias = "Person", alias = "human")]
    Person,
    #[serde(alias = "Machine")]
    Machine,
}

/// A verdict, when it was reached (ms of audio heard) and which rule gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub verdict: Verdict,
    pub after_ms: u64,
    pub why: &'static str,
}

/// The detector's parameters; every duration is in milliseconds of audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdSettings {
    /// Silence before any word after which `on_initial_silence` is given.
    pub initial_silence_ms: u32,
    /// Voiced time of the greeting past which it is a machine's.
    pub greeting_ms: u32,
    /// Silence after a greeting that makes it a person's.
    pub after_greeting_silence_ms: u32,
    /// Shortest voiced run counted as a word (shorter ones are clicks).
    pub min_word_ms: u32,
    /// Silence that ends a word.
    pub between_words_silence_ms: u32,
    /// More words than this in the greeting is a machine.
    pub max_words: u32,
    /// The verdict is given by then, whatever was heard.
    pub decision_ms: u32,
    /// RMS energy of a 20 ms frame (16-bit linear samples) below which it
    /// is silence.
    pub silence_threshold: u16,
    pub on_initial_silence: Verdict,
    pub on_not_sure: Verdict,
}

impl Default for AmdSettings {
    fn default() -> Self {
        AmdSettings {
            initial_silence_ms: 1_500,
            greeting_ms: 1_200,
            after_greeting_silence_ms: 800,
            min_word_ms: 100,
            between_words_silence_ms: 50,
            max_words: 3,
            decision_ms: 2_000,
            silence_threshold: 256,
            on_initial_silence: Verdict::Machine,
            on_not_sure: Verdict::Person,
        }
    }
}

/// Settings that cannot work; names the field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmdError {
    #[error("amd.{field} is {value}: it must be {rule}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        rule: &'static str,
    },
}

impl AmdSettings {
    /// Checks every field; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), AmdError> {
        let check = |field: &'static str, value: u32, ok: bool, rule: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(AmdError::OutOfRange {
                    field,
                    value: u64::from(value),
                    rule,
                })
            }
        };
        let d = self.decision_ms;
        check(
            "decision_ms",
            d,
            (FRAME_MS..=MAX_DECISION_MS).contains(&d),
            "between 20 and 5000 ms",
        )?;
        let within = |field, value: u32| {
            check(
                field,
                value,
                (1..=MAX_DECISION_MS).contains(&value),
                "between 1 and 5000 ms",
            )
        };
        within("initial_silence_ms", self.initial_silence_ms)?;
        within("greeting_ms", self.greeting_ms)?;
        within("after_greeting_silence_ms", self.after_greeting_silence_ms)?;
        within("min_word_ms", self.min_word_ms)?;
        check(
            "between_words_silence_ms",
            self.between_words_silence_ms,
            self.between_words_silence_ms <= MAX_DECISION_MS,
            "at most 5000 ms",
        )?;
        check(
            "max_words",
            self.max_words,
            (1..=100).contains(&self.max_words),
            "between 1 and 100",
        )?;
        check(
            "silence_threshold",
            u32::from(self.silence_threshold),
            self.silence_threshold > 0,
            "above 0 (RMS of 16-bit samples; 256 is usual)",
        )
    }
}

/// The detector of one call. Push decoded samples as they arrive; the
/// first verdict is returned once, later pushes return `None`.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: AmdSettings,
    /// A frame not yet complete.
    pending: Vec<i16>,
    heard_ms: u64,
    voiced_run_ms: u32,
    silence_run_ms: u32,
    greeting_voiced_ms: u32,
    words: u32,
    in_word: bool,
    in_greeting: bool,
    decided: Option<Detection>,
}

impl Detector {
    pub fn new(settings: AmdSettings) -> Detector {
        Detector {
            settings,
            pending: Vec::with_capacity(FRAME_SAMPLES),
            heard_ms: 0,
            voiced_run_ms: 0,
            silence_run_ms: 0,
            greeting_voiced_ms: 0,
            words: 0,
            in_word: false,
            in_greeting: false,
            decided: None,
        }
    }

    pub fn settings(&self) -> &AmdSettings {
        &self.settings
    }

    /// Milliseconds of audio analysed so far (whole frames).
    pub fn heard_ms(&self) -> u64 {
        self.heard_ms
    }

    /// The verdict, once reached.
    pub fn decided(&self) -> Option<&Detection> {
        self.decided.as_ref()
    }

    /// Feeds 8 kHz linear samples; returns the verdict when it is reached
    /// by these samples.
    pub fn push(&mut self, samples: &[i16]) -> Option<Detection> {
        if self.decided.is_some() {
            return None;
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME_SAMPLES {
                let voiced = self.frame_is_voiced();
                self.pending.clear();
                if let Some(detection) = self.on_frame(voiced) {
                    self.decided = Some(detection.clone());
                    return Some(detection);
                }
            }
        }
        None
    }

    /// Silence of `samples` length: what a gap in the stream (a sender that
    /// stops sending while nobody speaks) amounts to.
    pub fn push_silence(&mut self, samples: usize) -> Option<Detection> {
        let zeros = [0i16; FRAME_SAMPLES];
        let mut left = samples;
        while left > 0 {
            let n = left.min(FRAME_SAMPLES);
            if let Some(detection) = self.push(&zeros[..n]) {
                return Some(detection);
            }
            left -= n;
        }
        None
    }

    /// The caller's clock says the decision time has passed without enough
    /// audio: the verdict reached so far, else `on_not_sure`.
    pub fn deadline_passed(&mut self) -> Detection {
        if let Some(detection) = &self.decided {
            return detection.clone();
        }
        let detection = Detection {
            verdict: self.settings.on_not_sure,
            after_ms: u64::from(self.settings.decision_ms),
            why: "not sure: too little audio by the decision time",
        };
        self.decided = Some(detection.clone());
        detection
    }

    /// Mean square compared with the threshold squared: no square root, and
    /// exact on integers.
    fn frame_is_voiced(&self) -> bool {
        let energy: i64 = self.pending.iter().map(|s| i64::from(*s).pow(2)).sum();
        let threshold = i64::from(self.settings.silence_threshold);
        energy >= threshold * threshold * FRAME_SAMPLES as i64
    }

    fn on_frame(&mut self, voiced: bool) -> Option<Detection> {
        self.heard_ms += u64::from(FRAME_MS);
        let s = &self.settings;
        let verdict = if voiced {
            self.silence_run_ms = 0;
            self.voiced_run_ms += FRAME_MS;
            if self.in_greeting {
                self.greeting_voiced_ms += FRAME_MS;
            }
            if !self.in_word && self.voiced_run_ms >= s.min_word_ms {
                self.in_word = true;
                self.words += 1;
                if !self.in_greeting {
                    // The word's opening frames belong to the greeting too.
                    self.in_greeting = true;
                    self.greeting_voiced_ms = self.voiced_run_ms;
                }
            }
            if self.in_greeting && self.greeting_voiced_ms >= s.greeting_ms {
                Some((Verdict::Machine, "greeting longer than greeting_ms"))
            } else if self.words > s.max_words {
                Some((Verdict::Machine, "more words than max_words"))
            } else {
                None
            }
        } else {
            self.voiced_run_ms = 0;
            self.silence_run_ms += FRAME_MS;
            if self.silence_run_ms >= s.between_words_silence_ms {
                self.in_word = false;
            }
            if !self.in_greeting && self.silence_run_ms >= s.initial_silence_ms {
                Some((
                    s.on_initial_silence,
                    "silence longer than initial_silence_ms",
                ))
            } else if self.in_greeting && self.silence_run_ms >= s.after_greeting_silence_ms {
                Some((Verdict::Person, "short greeting, then silence"))
            } else {
                None
            }
        };
        let verdict = verdict.or_else(|| {
            (self.heard_ms >= u64::from(s.decision_ms))
                .then_some((s.on_not_sure, "not sure by decision_ms"))
        });
        verdict.map(|(verdict, why)| Detection {
            verdict,
            after_ms: self.heard_ms,
            why,
        })
    }
}

/// Samples in `ms` milliseconds.
pub fn samples_in(ms: u32) -> usize {
    (u64::from(ms) * SAMPLES_PER_MS) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for speech: a 150 Hz buzz with harmonics
    /// at `level` (peak), plus faint noise on every sample.
    fn voice(ms: u32, level: f64) -> Vec<i16> {
        (0..samples_in(ms))
            .map(|n| {
                let t = n as f64 / 8_000.0;
                let f = 2.0 * std::f64::consts::PI * 150.0 * t;
                let wave = f.sin() + 0.5 * (2.0 * f).sin() + 0.3 * (5.0 * f).sin();
                (wave / 1.8 * level) as i16
            })
            .collect()
    }

    /// Line noise well under the threshold, not digital zero.
    fn quiet(ms: u32) -> Vec<i16> {
        let mut state = 12_345u32;
        (0..samples_in(ms))
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((state >> 16) % 121) as i16 - 60
            })
            .collect()
    }

    fn signal(parts: &[(bool, u32)]) -> Vec<i16> {
        parts
            .iter()
            .flat_map(|(speech, ms)| {
                if *speech {
                    voice(*ms, 6_000.0)
                } else {
                    quiet(*ms)
                }
            })
            .collect()
    }

    fn run(settings: AmdSettings, samples: &[i16]) -> Option<Detection> {
        let mut d = Detector::new(settings);
        // Odd chunk sizes: framing must not depend on how audio arrives.
        for chunk in samples.chunks(73) {
            if let Some(detection) = d.push(chunk) {
                assert_eq!(d.push(chunk), None, "one verdict only");
                return Some(detection);
            }
        }
        None
    }

    #[test]
    fn hello_then_silence_is_a_person() {
        let s = signal(&[(false, 300), (true, 500), (false, 1_000)]);
        let d = run(AmdSettings::default(), &s).unwrap();
        assert_eq!(d.verdict, Verdict::Person);
        assert_eq!(d.why, "short greeting, then silence");
        assert_eq!(d.after_ms, 300 + 500 + 800);
    }

    #[test]
    fn a_long_greeting_is_a_machine() {
        // Three words with short pauses: not more than max_words, but the
        // voiced time passes greeting_ms.
        let s = signal(&[
            (false, 200),
            (true, 500),
            (false, 100),
            (true, 400),
            (false, 100),
            (true, 600),
            (false, 1_000),
        ]);
        let d = run(AmdSettings::default(), &s).unwrap();
        assert_eq!(d.verdict, Verdict::Machine);
        assert_eq!(d.why, "greeting longer than greeting_ms");
        // 1200 ms of voice: 500 + 400 + 300 of the third word.
        assert_eq!(d.after_ms, 200 + 500 + 100 + 400 + 100 + 300);
    }

    #[test]
    fn continuous_speech_is_a_machine() {
        let s = signal(&[(true, 3_000)]);
        let d = run(AmdSettings::default(), &s).unwrap();
        assert_eq!(d.verdict, Verdict::Machine);
        assert_eq!(d.after_ms, 1_200);
    }

    #[test]
    fn many_short_words_are_a_machine() {
        let mut parts = vec![(false, 100)];
        for _ in 0..6 {
            parts.extend([(true, 120), (false, 80)]);
        }
        let d = run(AmdSettings::default(), &signal(&parts)).unwrap();
        assert_eq!(d.verdict, Verdict::Machine);
        assert_eq!(d.why, "more words than max_words");
        // The fourth word is recognised 100 ms into it.
        assert_eq!(d.after_ms, 100 + 3 * 200 + 100);
    }

    #[test]
    fn clicks_and_short_pauses_do_not_make_words() {
        let settings = AmdSettings {
            max_words: 1,
            ..AmdSettings::default()
        };
        // Clicks shorter than min_word_ms before a single word, and a 20 ms
        // dip inside it (shorter than between_words_silence_ms).
        let s = signal(&[
            (true, 40),
            (false, 200),
            (true, 60),
            (false, 200),
            (true, 300),
            (false, 20),
            (true, 200),
            (false, 900),
        ]);
        let d = run(settings, &s).unwrap();
        assert_eq!(d.verdict, Verdict::Person);
    }

    #[test]
    fn initial_silence_gives_the_configured_verdict() {
        let s = signal(&[(false, 1_600)]);
        let d = run(AmdSettings::default(), &s).unwrap();
        assert_eq!((d.verdict, d.after_ms), (Verdict::Machine, 1_500), "{d:?}");
        let person = AmdSettings {
            on_initial_silence: Verdict::Person,
            ..AmdSettings::default()
        };
        assert_eq!(run(person, &s).unwrap().verdict, Verdict::Person);
    }

    #[test]
    fn no_clear_verdict_by_the_decision_time_is_not_sure() {
        // A 700 ms greeting and then only 600 ms of pause by 2 s.
        let s = signal(&[(false, 700), (true, 700), (false, 600), (true, 500)]);
        let d = run(AmdSettings::default(), &s).unwrap();
        assert_eq!(d.verdict, Verdict::Person);
        assert_eq!(d.why, "not sure by decision_ms");
        assert_eq!(d.after_ms, 2_000);
        let machine = AmdSettings {
            on_not_sure: Verdict::Machine,
            ..AmdSettings::default()
        };
        assert_eq!(run(machine, &s).unwrap().verdict, Verdict::Machine);
    }

    #[test]
    fn the_threshold_decides_what_is_voiced() {
        let quiet_voice: Vec<i16> = [quiet(200), voice(600, 300.0), quiet(1_000)].concat();
        // RMS of the buzz at peak 300 is about 150: silence at 256.
        let d = run(AmdSettings::default(), &quiet_voice).unwrap();
        assert_eq!(d.why, "silence longer than initial_silence_ms");
        let sensitive = AmdSettings {
            silence_threshold: 100,
            ..AmdSettings::default()
        };
        let d = run(sensitive, &quiet_voice).unwrap();
        assert_eq!(d.why, "short greeting, then silence");
    }

    #[test]
    fn the_deadline_without_audio_gives_on_not_sure_once() {
        let mut d = Detector::new(AmdSettings::default());
        assert_eq!(d.push(&quiet(300)), None);
        let first = d.deadline_passed();
        assert_eq!(first.verdict, Verdict::Person);
        assert_eq!(first.after_ms, 2_000);
        assert_eq!(d.deadline_passed(), first);
        assert_eq!(d.push(&voice(3_000, 6_000.0)), None, "already decided");
        // A verdict already reached is what the deadline reports.
        let mut d = Detector::new(AmdSettings::default());
        let machine = d.push(&voice(1_500, 6_000.0)).unwrap();
        assert_eq!(d.deadline_passed(), machine);
    }

    #[test]
    fn gaps_in_the_stream_count_as_silence() {
        let mut d = Detector::new(AmdSettings::default());
        assert_eq!(d.push(&voice(500, 6_000.0)), None);
        let d = d.push_silence(samples_in(900)).unwrap();
        assert_eq!((d.verdict, d.after_ms), (Verdict::Person, 1_300));
    }

    #[test]
    fn settings_are_validated_field_by_field() {
        assert_eq!(AmdSettings::default().validate(), Ok(()));
        let cases: [(&str, AmdSettings); 6] = [
            (
                "decision_ms",
                AmdSettings {
                    decision_ms: 5_001,
                    ..AmdSettings::default()
                },
            ),
            (
                "decision_ms",
                AmdSettings {
                    decision_ms: 0,
                    ..AmdSettings::default()
                },
            ),
            (
                "greeting_ms",
                AmdSettings {
                    greeting_ms: 0,
                    ..AmdSettings::default()
                },
            ),
            (
                "between_words_silence_ms",
                AmdSettings {
                    between_words_silence_ms: 9_000,
                    ..AmdSettings::default()
                },
            ),
            (
                "max_words",
                AmdSettings {
                    max_words: 0,
                    ..AmdSettings::default()
                },
            ),
            (
                "silence_threshold",
                AmdSettings {
                    silence_threshold: 0,
                    ..AmdSettings::default()
                },
            ),
        ];
        for (field, settings) in cases {
            let err = settings.validate().unwrap_err();
            let AmdError::OutOfRange { field: named, .. } = &err;
            assert_eq!(*named, field);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn settings_read_from_json_with_defaults_and_refuse_unknown_keys() {
        let s: AmdSettings =
            serde_json::from_str(r#"{"decision_ms": 3000, "on_not_sure": "machine"}"#).unwrap();
        assert_eq!(s.decision_ms, 3_000);
        assert_eq!(s.on_not_sure, Verdict::Machine);
        assert_eq!(s.greeting_ms, AmdSettings::default().greeting_ms);
        let s: AmdSettings = serde_json::from_str(r#"{"on_initial_silence": "Person"}"#).unwrap();
        assert_eq!(s.on_initial_silence, Verdict::Person);
        assert!(serde_json::from_str::<AmdSettings>(r#"{"greeting": 1}"#).is_err());
    }
}
