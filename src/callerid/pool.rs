//! Local presence: which of an enterprise's pool numbers to show a callee,
//! and the health of each number (answer rate, flags) that decides among
//! equally local ones.
//!
//! A callee answers a local number more readily, but a number that is
//! shown too often gets labelled as spam by carriers and stops being
//! answered. So among the numbers that match the callee equally well, one
//! that is answered is preferred, and use rotates (least recently used
//! first); a number flagged by the operator rests for a cool-down. Time
//! is passed in, so the choice is a plain function of state and input.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::config::{Country, HealthPolicy, PoolNumber};
use crate::consent::E164;

/// How well a pool number matches a callee; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// The callee's number starts with one of the number's areas; a longer
    /// (more precise) prefix ranks first, hence the reversed length.
    Area(std::cmp::Reverse<usize>),
    /// Same country (same region, or same country code when either has no
    /// region).
    Country,
}

/// The areas a pool number is local to: those configured, and for a NANP
/// number its own area code.
fn areas(entry: &PoolNumber) -> Vec<String> {
    let mut areas = entry.areas.clone();
    if let Some(npa) = nanp_area_code(&entry.number) {
        areas.push(format!("+1{npa}"));
    }
    areas
}

/// The area code (NPA) of a +1 number.
pub fn nanp_area_code(number: &E164) -> Option<&str> {
    let digits = number.as_str().strip_prefix("+1")?;
    (digits.len() == 10).then(|| &digits[..3])
}

/// How `entry` matches `callee` (whose country is `theirs`), if at all.
pub fn match_of(entry: &PoolNumber, callee: &E164, theirs: Option<Country>) -> Option<Match> {
    let area = areas(entry)
        .into_iter()
        .filter(|a| callee.as_str().starts_with(a.as_str()))
        .map(|a| a.len())
        .max();
    if let Some(len) = area {
        return Some(Match::Area(std::cmp::Reverse(len)));
    }
    let (ours, theirs) = (entry.country, theirs?);
    let same = match (ours.region, theirs.region) {
        (Some(a), Some(b)) => a == b,
        _ => ours.code == theirs.code,
    };
    same.then_some(Match::Country)
}

/// What is known of one number's recent use.
#[derive(Debug, Clone, Default)]
struct NumberState {
    /// Answered or not, most recent last, at most `HealthPolicy::window`.
    outcomes: VecDeque<bool>,
    flagged_until: Option<DateTime<Utc>>,
    /// Order of last use (0: never used).
    last_used: u64,
}

/// A number's health, as the tie-break sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Healthy,
    /// Answer rate below the policy's minimum.
    LowAnswerRate,
}

/// Order of candidates: match, health, last use, position in the pool.
type Rank = (Match, Health, u64, usize);

/// The state of every pool number, across enterprises.
#[derive(Debug, Clone, Default)]
pub struct PoolState {
    numbers: HashMap<E164, NumberState>,
    uses: u64,
}

/// A pool number chosen for a callee, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub number: E164,
    pub why: String,
}

impl PoolState {
    /// Answer rate over the window, when there are enough calls to say.
    pub fn answer_rate(&self, number: &E164, policy: &HealthPolicy) -> Option<f64> {
        let state = self.numbers.get(number)?;
        let n = state.outcomes.len();
        if n == 0 || n < policy.min_calls {
            return None;
        }
        let answered = state.outcomes.iter().filter(|a| **a).count();
        Some(answered as f64 / n as f64)
    }

    pub fn health(&self, number: &E164, policy: &HealthPolicy) -> Health {
        match self.answer_rate(number, policy) {
            Some(rate) if policy.min_answer_rate > 0.0 && rate < policy.min_answer_rate => {
                Health::LowAnswerRate
            }
            _ => Health::Healthy,
        }
    }

    /// Until when `number` rests, if it is flagged at `now`.
    pub fn flagged_until(&self, number: &E164, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.numbers
            .get(number)
            .and_then(|s| s.flagged_until)
            .filter(|until| *until > now)
    }

    /// Flags `number` (reported as spam, say): it is left out of local
    /// presence until `now` plus the cool-down.
    pub fn flag(&mut self, number: &E164, policy: &HealthPolicy, now: DateTime<Utc>) {
        let until = chrono::Duration::from_std(policy.flag_cool_down)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now);
        self.numbers
            .entry(number.clone())
            .or_default()
            .flagged_until = Some(until);
    }

    pub fn unflag(&mut self, number: &E164) {
        if let Some(state) = self.numbers.get_mut(number) {
            state.flagged_until = None;
        }
    }

    /// Replaces every flag with `flags` (number, resting until), keeping
    /// answer rates and rotation.
    pub fn set_flags(&mut self, flags: &[(E164, DateTime<Utc>)]) {
        for state in self.numbers.values_mut() {
            state.flagged_until = None;
        }
        for (number, until) in flags {
            self.numbers
                .entry(number.clone())
                .or_default()
                .flagged_until = Some(*until);
        }
    }

    /// Records how a call shown with `number` ended.
    pub fn record(&mut self, number: &E164, answered: bool, policy: &HealthPolicy) {
        let state = self.numbers.entry(number.clone()).or_default();
        state.outcomes.push_back(answered);
        while state.outcomes.len() > policy.window.max(1) {
            state.outcomes.pop_front();
        }
    }

    fn last_used(&self, number: &E164) -> u64 {
        self.numbers.get(number).map_or(0, |s| s.last_used)
    }

    /// The best pool number for `callee`: best match, then healthy before
    /// unhealthy, then least recently used (round-robin), then pool order.
    /// Flagged numbers in their cool-down are skipped. The chosen number is
    /// marked used.
    pub fn pick(
        &mut self,
        pool: &[PoolNumber],
        callee: &E164,
        policy: &HealthPolicy,
        now: DateTime<Utc>,
    ) -> Result<Pick, String> {
        if pool.is_empty() {
            return Err("the enterprise has no pool numbers".into());
        }
        let mut resting = Vec::new();
        let theirs = Country::of(callee);
        let mut best: Option<(Rank, &PoolNumber)> = None;
        for (i, entry) in pool.iter().enumerate() {
            let Some(m) = match_of(entry, callee, theirs) else {
                continue;
            };
            if let Some(until) = self.flagged_until(&entry.number, now) {
                resting.push(format!(
                    "{} flagged until {}",
                    entry.number,
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                ));
                continue;
            }
            let key = (
                m,
                self.health(&entry.number, policy),
                self.last_used(&entry.number),
                i,
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, entry));
            }
        }
        let resting = if resting.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", resting.join(", "))
        };
        let Some(((m, health, _, _), entry)) = best else {
            return Err(format!(
                "no pool number is local to or in the country of {callee}{resting}"
            ));
        };
        let how = match m {
            Match::Area(_) => "same area",
            Match::Country => "same country",
        };
        let health = match health {
            Health::Healthy => "healthy",
            Health::LowAnswerRate => "low answer rate, no healthier match",
        };
        self.uses += 1;
        let uses = self.uses;
        self.numbers
            .entry(entry.number.clone())
            .or_default()
            .last_used = uses;
        Ok(Pick {
            number: entry.number.clone(),
            why: format!("{} for {callee}: {how}, {health}{resting}", entry.number),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callerid::passport::Attest;
    use std::time::Duration;

    fn n(text: &str) -> E164 {
        E164::from_e164(text).unwrap()
    }

    fn entry(number: &str, areas: &[&str]) -> PoolNumber {
        PoolNumber::new(
            n(number),
            Attest::A,
            areas.iter().map(|a| a.to_string()).collect(),
        )
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            window: 10,
            min_calls: 4,
            min_answer_rate: 0.3,
            flag_cool_down: Duration::from_secs(3600),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn matches_rank_area_code_then_prefix_length_then_country() {
        let nyc = entry("+12125550100", &[]);
        let callee = n("+12125550143");
        assert_eq!(
            match_of(&nyc, &callee, Country::of(&callee)),
            Some(Match::Area(std::cmp::Reverse(5)))
        );
        // Another US area code: same country only.
        assert_eq!(
            match_of(&nyc, &n("+13125550143"), Country::of(&n("+13125550143"))),
            Some(Match::Country)
        );
        // Canada shares +1 but is another country.
        assert_eq!(
            match_of(&nyc, &n("+14165550143"), Country::of(&n("+14165550143"))),
            None
        );
        // Configured areas outside NANP, the longer prefix better.
        let paris = entry("+33140000000", &["+331"]);
        let paris_centre = entry("+33140000001", &["+33142"]);
        let callee = n("+33142685300");
        assert!(
            match_of(&paris_centre, &callee, Country::of(&callee))
                < match_of(&paris, &callee, Country::of(&callee))
        );
        assert_eq!(
            match_of(&paris, &n("+33612345678"), Country::of(&n("+33612345678"))),
            Some(Match::Country)
        );
        assert_eq!(
            match_of(
                &paris,
                &n("+442079460018"),
                Country::of(&n("+442079460018"))
            ),
            None
        );
    }

    #[test]
    fn pick_prefers_match_then_health_then_rotates() {
        let pool = vec![
            entry("+13125550100", &[]),
            entry("+12125550101", &[]),
            entry("+12125550102", &[]),
        ];
        let callee = n("+12125550143");
        let p = policy();
        let mut state = PoolState::default();
        // The two 212 numbers alternate; the 312 one is never chosen.
        let picks: Vec<String> = (0..4)
            .map(|_| {
                state
                    .pick(&pool, &callee, &p, now())
                    .unwrap()
                    .number
                    .to_string()
            })
            .collect();
        assert_eq!(
            picks,
            [
                "+12125550101",
                "+12125550102",
                "+12125550101",
                "+12125550102"
            ]
        );
        // 0101 is rarely answered: 0102 wins although it was used last.
        for answered in [false, false, false, true] {
            state.record(&n("+12125550101"), answered, &p);
        }
        assert_eq!(state.health(&n("+12125550101"), &p), Health::LowAnswerRate);
        let pick = state.pick(&pool, &callee, &p, now()).unwrap();
        assert_eq!(pick.number, n("+12125550102"));
        let pick = state.pick(&pool, &callee, &p, now()).unwrap();
        assert_eq!(pick.number, n("+12125550102"));
        // Too few calls say nothing: healthy.
        state.record(&n("+12125550102"), false, &p);
        assert_eq!(state.health(&n("+12125550102"), &p), Health::Healthy);
    }

    #[test]
    fn flagged_numbers_rest_for_the_cool_down() {
        let pool = vec![entry("+12125550101", &[]), entry("+13125550100", &[])];
        let callee = n("+12125550143");
        let p = policy();
        let mut state = PoolState::default();
        state.flag(&n("+12125550101"), &p, now());
        let pick = state.pick(&pool, &callee, &p, now()).unwrap();
        assert_eq!(pick.number, n("+13125550100"));
        assert!(pick.why.contains("same country"), "{}", pick.why);
        assert!(
            pick.why.contains("+12125550101 flagged until"),
            "{}",
            pick.why
        );
        // After the cool-down the local number is back.
        let later = now() + chrono::Duration::seconds(3601);
        let pick = state.pick(&pool, &callee, &p, later).unwrap();
        assert_eq!(pick.number, n("+12125550101"));
        // Only a flagged match: none.
        state.flag(&n("+12125550101"), &p, later);
        let err = state.pick(&pool[..1], &callee, &p, later).unwrap_err();
        assert!(err.contains("flagged"), "{err}");
    }

    #[test]
    fn the_window_forgets_old_calls() {
        let p = policy();
        let mut state = PoolState::default();
        let number = n("+12125550101");
        for _ in 0..10 {
            state.record(&number, false, &p);
        }
        for _ in 0..10 {
            state.record(&number, true, &p);
        }
        assert_eq!(state.answer_rate(&number, &p), Some(1.0));
        assert_eq!(
            state.pick(&[], &number, &p, now()).unwrap_err(),
            "the enterprise has no pool numbers"
        );
    }
}
