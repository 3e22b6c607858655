//! Whether the trunk is reachable, judged by periodic OPTIONS pings.
//!
//! Any answer to an OPTIONS (even 404 or 405) proves the trunk is alive;
//! only silence marks it down. While it is down new calls are refused at
//! once with 503, so the PBX can fail over instead of waiting 32 s for a
//! transaction timeout on every call.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TrunkHealth {
    interval: Option<Duration>,
    next: Option<Instant>,
    outstanding: bool,
    up: bool,
}

impl TrunkHealth {
    /// `interval` None disables pinging (the trunk is then always "up").
    pub fn new(interval: Option<Duration>, now: Instant) -> TrunkHealth {
        TrunkHealth {
            interval,
            next: interval.map(|_| now),
            outstanding: false,
            up: true,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn next_ping(&self) -> Option<Instant> {
        if self.outstanding {
            None
        } else {
            self.next
        }
    }

    pub fn ping_due(&self, now: Instant) -> bool {
        !self.outstanding && self.next.is_some_and(|at| at <= now)
    }

    pub fn ping_sent(&mut self, now: Instant) {
        self.outstanding = true;
        self.next = self.interval.map(|i| now + i);
    }

    /// Returns true when this answer brings the trunk back up.
    pub fn on_answer(&mut self, _code: u16) -> bool {
        self.outstanding = false;
        let changed = !self.up;
        self.up = true;
        changed
    }

    /// Returns true when this timeout takes the trunk down.
    pub fn on_timeout(&mut self) -> bool {
        self.outstanding = false;
        let changed = self.up;
        self.up = false;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_marks_down_and_any_answer_marks_up() {
        let now = Instant::now();
        let mut h = TrunkHealth::new(Some(Duration::from_secs(30)), now);
        assert!(h.ping_due(now));
        h.ping_sent(now);
        assert!(
            !h.ping_due(now + Duration::from_secs(60)),
            "one ping at a time"
        );
        assert!(h.on_timeout());
        assert!(!h.is_up());
        assert_eq!(h.next_ping(), Some(now + Duration::from_secs(30)));
        h.ping_sent(now + Duration::from_secs(30));
        assert!(h.on_answer(405));
        assert!(h.is_up());
    }

    #[test]
    fn disabled_pinging_never_pings_and_stays_up() {
        let now = Instant::now();
        let h = TrunkHealth::new(None, now);
        assert!(!h.ping_due(now + Duration::from_secs(3600)));
        assert!(h.is_up());
    }
}
