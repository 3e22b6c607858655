//! Who may place calls through slotgate, and how fast.
//!
//! Source addresses are checked against the configured PBX networks; each
//! source then draws from its own token bucket so one misbehaving PBX (or a
//! scanner that got through a firewall) cannot starve the others. Time is an
//! argument, so the limiter is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Forbidden,
    RateLimited,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub struct AccessControl {
    allowed: Vec<IpNet>,
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

/// Buckets kept before idle ones are swept, bounding memory under a flood of
/// distinct sources.
const MAX_BUCKETS: usize = 10_000;

impl AccessControl {
    /// `rate` requests per second per source (0 = unlimited), `burst` extra.
    pub fn new(allowed: Vec<IpNet>, rate: u32, burst: u32) -> AccessControl {
        AccessControl {
            allowed,
            rate: f64::from(rate),
            burst: f64::from(rate.max(1)) + f64::from(burst),
            buckets: HashMap::new(),
        }
    }

    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Admits one new request from `ip` at `now`.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Admission {
        if !self.is_allowed(ip) {
            return Admission::Forbidden;
        }
        if self.rate <= 0.0 {
            return Admission::Allowed;
        }
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets
                .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let burst = self.burst;
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Admission::Allowed
        } else {
            Admission::RateLimited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_listed_networks_are_allowed() {
        let mut ac = AccessControl::new(nets(&["10.0.0.0/24", "::1/128"]), 0, 0);
        let now = Instant::now();
        assert_eq!(
            ac.admit("10.0.0.7".parse().unwrap(), now),
            Admission::Allowed
        );
        assert_eq!(
            ac.admit("10.0.1.7".parse().unwrap(), now),
            Admission::Forbidden
        );
        assert_eq!(ac.admit("::1".parse().unwrap(), now), Admission::Allowed);
        assert_eq!(
            ac.admit("::ffff:10.0.0.9".parse().unwrap(), now),
            Admission::Allowed
        );
    }

    #[test]
    fn rate_limit_is_per_source_and_refills_with_time() {
        let mut ac = AccessControl::new(nets(&["10.0.0.0/8"]), 10, 0);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let admitted = (0..25)
            .filter(|_| ac.admit(a, now) == Admission::Allowed)
            .count();
        assert_eq!(admitted, 10);
        assert_eq!(ac.admit(b, now), Admission::Allowed);
        assert_eq!(
            ac.admit(a, now + Duration::from_millis(100)),
            Admission::Allowed
        );
        assert_eq!(
            ac.admit(a, now + Duration::from_millis(100)),
            Admission::RateLimited
        );
    }
}
