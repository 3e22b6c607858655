//! Identifiers slotgate mints: tags, branches, Call-IDs, call record ids.
//!
//! They must be unique across restarts and nodes and cheap to make on the
//! hot path, so they are a random per-process prefix plus a counter rather
//! than a fresh random number each time.

use rand::Rng;

#[derive(Debug)]
pub struct Ids {
    prefix: u64,
    counter: u64,
}

impl Ids {
    pub fn new() -> Ids {
        Ids {
            prefix: rand::thread_rng().gen(),
            counter: 0,
        }
    }

    fn next(&mut self) -> String {
        self.counter += 1;
        format!("{:x}{:x}", self.prefix, self.counter)
    }

    pub fn tag(&mut self) -> String {
        self.next()
    }

    /// An RFC 3261 branch (magic cookie first).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.next())
    }

    pub fn call_id(&mut self) -> String {
        format!("{}@slotgate", self.next())
    }

    pub fn record_id(&mut self) -> String {
        self.next()
    }

    pub fn cnonce(&mut self) -> String {
        self.next()
    }
}

impl Default for Ids {
    fn default() -> Self {
        Ids::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_do_not_repeat_and_branches_carry_the_cookie() {
        let mut ids = Ids::new();
        let a = ids.branch();
        let b = ids.branch();
        assert_ne!(a, b);
        assert!(a.starts_with("z9hG4bK") && a.len() > 7);
        assert_ne!(Ids::new().tag(), Ids::new().tag());
    }
}
