//! CPU cost of one call inside the sans-I/O B2BUA core, without sockets:
//! parse, transaction and dialog work, and serialisation for the 14 messages
//! of an answered call (INVITE/180/200/ACK/BYE/200 on both legs).
//!
//! `cargo bench --bench core_calls` prints µs per call and the calls/s one
//! core would sustain if the core were the only cost.

mod common;

const CALLS: usize = 50_000;

fn main() {
    let config = common::config("");
    let per_call = common::answered_call_cost(&config, CALLS, |i| format!("+1555{i:07}"), "");
    println!("core: {CALLS} answered calls, {per_call:.1} µs CPU per call (14 messages), {:.0} calls/s per core", 1e6 / per_call);
}
