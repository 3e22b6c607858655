//! What the predictive pacer expects of the next seconds, learned from the
//! campaign's own recent calls rather than from assumed distributions.
//!
//! Two questions matter: will a call that is ringing now be answered by a
//! person within `h` seconds, and will an agent busy for `e` seconds be
//! free within `h`? Both are answered from recent samples (the last few
//! hundred outcomes and handle times) read as empirical hazards: of the
//! past calls still undecided at this age, how many were answered by a
//! person in the next `h`. Real answer-time and handle-time distributions
//! are skewed and campaign-specific (a mortgage call is not a survey), and
//! an agent ten minutes into a call is closer to the end than one who just
//! started; a mean and a memoryless model miss both.
//!
//! [`chance_unserved`] then combines the per-agent and per-call chances
//! exactly (Poisson-binomial), because the tails it is asked about (2-3 %)
//! are where normal approximations of small counts are worst.

use std::collections::VecDeque;

/// Recent durations in milliseconds, oldest evicted first, with a sorted
/// copy for counting and quantiles.
#[derive(Debug, Clone)]
pub struct RecentDurations {
    capacity: usize,
    arrival: VecDeque<u32>,
    sorted: Vec<u32>,
}

impl RecentDurations {
    pub fn new(capacity: usize) -> RecentDurations {
        RecentDurations {
            capacity: capacity.max(1),
            arrival: VecDeque::new(),
            sorted: Vec::new(),
        }
    }

    pub fn push(&mut self, ms: u32) {
        if self.arrival.len() == self.capacity {
            if let Some(old) = self.arrival.pop_front() {
                if let Ok(at) = self.sorted.binary_search(&old) {
                    self.sorted.remove(at);
                }
            }
        }
        self.arrival.push_back(ms);
        let at = self.sorted.partition_point(|&x| x <= ms);
        self.sorted.insert(at, ms);
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Samples strictly longer than `ms`.
    pub fn count_above(&self, ms: u32) -> usize {
        self.sorted.len() - self.sorted.partition_point(|&x| x <= ms)
    }

    /// The `share` quantile (0..=1), if any sample exists.
    pub fn quantile(&self, share: f64) -> Option<u32> {
        let last = self.sorted.len().checked_sub(1)?;
        let at = (share.clamp(0.0, 1.0) * last as f64).round() as usize;
        self.sorted.get(at.min(last)).copied()
    }

    pub fn mean(&self) -> Option<f64> {
        if self.sorted.is_empty() {
            return None;
        }
        let sum: u64 = self.sorted.iter().map(|&x| u64::from(x)).sum();
        Some(sum as f64 / self.sorted.len() as f64)
    }
}

/// How recent call attempts ended and after how long: the time from the
/// INVITE to the first decisive event (a person, a machine, no answer,
/// busy, failure).
#[derive(Debug, Clone)]
pub struct CallOutcomes {
    /// Every attempt's delay to its outcome.
    all: RecentDurations,
    /// The delays of attempts a person answered, evicted in step with
    /// `all` so both describe the same attempts.
    person: RecentDurations,
    arrival: VecDeque<bool>,
    capacity: usize,
}

impl CallOutcomes {
    pub fn new(capacity: usize) -> CallOutcomes {
        CallOutcomes {
            all: RecentDurations::new(capacity),
            // Never evicts on its own: eviction follows `arrival`.
            person: RecentDurations::new(usize::MAX),
            arrival: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn record(&mut self, delay_ms: u32, answered_by_person: bool) {
        if self.arrival.len() == self.capacity {
            let evicted_person = self.arrival.pop_front().unwrap_or(false);
            if evicted_person {
                // The oldest of `all` leaves with this push; find its value
                // before it goes.
                if let Some(&old) = self.all.arrival.front() {
                    if let Ok(at) = self.person.sorted.binary_search(&old) {
                        self.person.sorted.remove(at);
                    }
                }
            }
        }
        self.arrival.push_back(answered_by_person);
        self.all.push(delay_ms);
        if answered_by_person {
            let at = self.person.sorted.partition_point(|&x| x <= delay_ms);
            self.person.sorted.insert(at, delay_ms);
        }
    }

    pub fn attempts(&self) -> usize {
        self.all.len()
    }

    pub fn person_answers(&self) -> usize {
        self.person.len()
    }

    /// Share of attempts a person answered.
    pub fn person_rate(&self) -> f64 {
        if self.all.is_empty() {
            0.0
        } else {
            self.person.len() as f64 / self.all.len() as f64
        }
    }

    /// Chance that an attempt still undecided at `age_ms` is answered by
    /// a person within the next `within_ms`.
    pub fn person_within(&self, age_ms: u32, within_ms: u32) -> f64 {
        let undecided = self.all.count_above(age_ms);
        if undecided == 0 {
            return 0.0;
        }
        let later = age_ms.saturating_add(within_ms);
        let answered = self.person.count_above(age_ms) - self.person.count_above(later);
        answered as f64 / undecided as f64
    }

    /// The `share` quantile of the delay until a person answers.
    pub fn person_delay_quantile(&self, share: f64) -> Option<u32> {
        self.person.quantile(share)
    }
}

/// Recent handle times: from an agent taking a call to being free again
/// (talk and wrap-up).
#[derive(Debug, Clone)]
pub struct HandleTimes {
    samples: RecentDurations,
}

impl HandleTimes {
    pub fn new(capacity: usize) -> HandleTimes {
        HandleTimes {
            samples: RecentDurations::new(capacity),
        }
    }

    pub fn record(&mut self, ms: u32) {
        self.samples.push(ms);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Chance that an agent busy for `elapsed_ms` is free within the next
    /// `within_ms`.
    pub fn free_within(&self, elapsed_ms: u32, within_ms: u32) -> f64 {
        let still_busy = self.samples.count_above(elapsed_ms);
        if still_busy == 0 {
            // Longer than every recent call: nothing says when it ends.
            // A memoryless guess on the mean keeps a small, honest chance.
            let mean = self.samples.mean().unwrap_or(f64::INFINITY);
            return 1.0 - (-(f64::from(within_ms)) / mean).exp();
        }
        let later = elapsed_ms.saturating_add(within_ms);
        let ending = still_busy - self.samples.count_above(later);
        ending as f64 / still_busy as f64
    }
}

/// The distribution of "agents free minus calls wanting one", built one
/// independent chance at a time.
#[derive(Debug, Clone)]
pub struct Surplus {
    /// `odds[i]` is the chance the surplus is `lowest + i`.
    odds: Vec<f64>,
    lowest: i64,
}

/// Below this, a tail of the distribution is dropped: it cannot change a
/// decision made at percent level, and keeping it costs time on every
/// step.
const NEGLIGIBLE: f64 = 1e-12;

impl Surplus {
    /// A certain surplus of `value`.
    pub fn certain(value: i64) -> Surplus {
        Surplus {
            odds: vec![1.0],
            lowest: value,
        }
    }

    /// Adds one agent who is free with chance `p`.
    pub fn add_agent(&mut self, p: f64) {
        self.step(p.clamp(0.0, 1.0), 1);
    }

    /// Adds one call that wants an agent with chance `p`.
    pub fn add_call(&mut self, p: f64) {
        self.step(p.clamp(0.0, 1.0), -1);
    }

    /// Chance the surplus is zero or less: a call at the back of the
    /// queue finds no agent.
    pub fn chance_none_left(&self) -> f64 {
        let mut total = 0.0;
        for (i, p) in self.odds.iter().enumerate() {
            if self.lowest + i as i64 > 0 {
                break;
            }
            total += p;
        }
        total.min(1.0)
    }

    fn step(&mut self, p: f64, by: i64) {
        if p <= 0.0 {
            return;
        }
        if p >= 1.0 {
            self.lowest += by;
            return;
        }
        // An agent moves the surplus up one with chance p; a call moves it
        // down one with chance p, which is the same as re-basing one lower
        // and moving up with chance 1 - p.
        let up = if by > 0 {
            p
        } else {
            self.lowest -= 1;
            1.0 - p
        };
        self.odds.push(0.0);
        for i in (1..self.odds.len()).rev() {
            self.odds[i] = self.odds[i] * (1.0 - up) + self.odds[i - 1] * up;
        }
        self.odds[0] *= 1.0 - up;
        self.trim();
    }

    fn trim(&mut self) {
        let end = self.odds.len()
            - self
                .odds
                .iter()
                .rev()
                .take_while(|&&p| p < NEGLIGIBLE)
                .count();
        let start = self.odds[..end]
            .iter()
            .take_while(|&&p| p < NEGLIGIBLE)
            .count();
        if start >= end {
            return;
        }
        self.odds.truncate(end);
        if start > 0 {
            self.odds.drain(..start);
            self.lowest += start as i64;
        }
    }
}

/// Chance that a call joining the queue behind `calls` finds no agent among
/// `free` agents plus the busy ones that may finish: P(agents ≤ calls).
pub fn chance_unserved(free: u32, agents_finishing: &[f64], waiting: u32, calls: &[f64]) -> f64 {
    let mut surplus = Surplus::certain(i64::from(free) - i64::from(waiting));
    for &p in agents_finishing {
        surplus.add_agent(p);
    }
    for &p in calls {
        surplus.add_call(p);
    }
    surplus.chance_none_left()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_durations_evict_the_oldest_and_stay_sorted() {
        let mut d = RecentDurations::new(3);
        for ms in [500, 100, 300, 200] {
            d.push(ms);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.count_above(150), 2);
        assert_eq!(d.quantile(0.0), Some(100));
        assert_eq!(d.quantile(1.0), Some(300));
        assert_eq!(d.mean(), Some(200.0));
    }

    #[test]
    fn person_within_is_a_hazard_among_calls_still_undecided() {
        let mut outcomes = CallOutcomes::new(100);
        // Persons answer at 5 s and 10 s; two no-answers end at 20 s.
        outcomes.record(5_000, true);
        outcomes.record(10_000, true);
        outcomes.record(20_000, false);
        outcomes.record(20_000, false);
        assert_eq!(outcomes.person_rate(), 0.5);
        // From the start: two of four within 12 s.
        assert_eq!(outcomes.person_within(0, 12_000), 0.5);
        // Still ringing at 6 s: one of the three left answers by 12 s.
        assert!((outcomes.person_within(6_000, 6_000) - 1.0 / 3.0).abs() < 1e-12);
        // Past 10 s, nobody answers any more.
        assert_eq!(outcomes.person_within(11_000, 30_000), 0.0);
        assert_eq!(outcomes.person_delay_quantile(0.0), Some(5_000));
    }

    #[test]
    fn outcome_eviction_keeps_persons_in_step() {
        let mut outcomes = CallOutcomes::new(2);
        outcomes.record(1_000, true);
        outcomes.record(2_000, false);
        outcomes.record(3_000, false);
        assert_eq!(outcomes.attempts(), 2);
        assert_eq!(outcomes.person_answers(), 0);
        outcomes.record(4_000, true);
        assert_eq!(outcomes.person_answers(), 1);
        assert_eq!(outcomes.person_rate(), 0.5);
    }

    #[test]
    fn an_agent_long_on_a_call_is_closer_to_the_end() {
        let mut handle = HandleTimes::new(100);
        for s in [100, 150, 200, 250, 300] {
            handle.record(s * 1000);
        }
        let fresh = handle.free_within(0, 60_000);
        let old = handle.free_within(260_000, 60_000);
        assert_eq!(fresh, 0.0);
        assert_eq!(old, 1.0);
        assert!((handle.free_within(120_000, 100_000) - 0.5).abs() < 1e-12);
        let beyond = handle.free_within(400_000, 10_000);
        assert!(beyond > 0.0 && beyond < 0.1, "{beyond}");
    }

    #[test]
    fn chance_unserved_matches_hand_computation() {
        // One free agent; one call ahead with 50 %: unserved iff it comes.
        assert!((chance_unserved(1, &[], 0, &[0.5]) - 0.5).abs() < 1e-12);
        // No free agent; one finishing with 30 %: unserved 70 %.
        assert!((chance_unserved(0, &[0.3], 0, &[]) - 0.7).abs() < 1e-12);
        // Two free agents, a waiting call, two calls at 50 %: unserved
        // unless neither comes (75 %).
        assert!((chance_unserved(2, &[], 1, &[0.5, 0.5]) - 0.75).abs() < 1e-12);
        // Three free agents and the same: unserved only if both come.
        assert!((chance_unserved(3, &[], 1, &[0.5, 0.5]) - 0.25).abs() < 1e-12);
        // Plenty of agents: never unserved; none at all: always.
        assert_eq!(chance_unserved(5, &[], 0, &[0.9, 0.9]), 0.0);
        assert_eq!(chance_unserved(0, &[], 0, &[]), 1.0);
    }

    #[test]
    fn surplus_adds_up_to_one_after_many_steps() {
        let mut surplus = Surplus::certain(3);
        for i in 0..200 {
            surplus.add_agent(0.01 * (i % 7) as f64);
            surplus.add_call(0.02 * (i % 5) as f64);
        }
        let total: f64 = surplus.odds.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }
}
