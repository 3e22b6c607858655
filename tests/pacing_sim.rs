//! Eight simulated hours of a contact centre per policy and seed: the
//! predictive pacer must keep abandons under the limit and agents busier
//! than progressive dialling and than VICIdial's adaptive rule.
//!
//! `cargo test --test pacing_sim -- --nocapture` prints the tables.

use slotgate::pacing::simulation::{format_table, run, AdaptMethod, Policy, Report, Scenario};

const SEEDS: [u64; 3] = [11, 12, 13];

fn shift(scenario: &Scenario, seed: u64) -> [Report; 4] {
    let run = |policy| match run(scenario, policy, seed) {
        Ok(report) => report,
        Err(e) => panic!("{}: {e}", scenario.name),
    };
    [
        run(Policy::Progressive),
        run(Policy::Predictive),
        run(Policy::Vicidial(AdaptMethod::HardLimit)),
        run(Policy::Vicidial(AdaptMethod::Average)),
    ]
}

fn check(scenario: &Scenario) {
    let limit = scenario.abandon_limit_percent / 100.0;
    for seed in SEEDS {
        let reports = shift(scenario, seed);
        let title = format!("{} — 8 h, seed {seed}", scenario.name);
        println!("{}", format_table(&title, &reports));
        let [progressive, predictive, hard_limit, average] = &reports;
        for r in &reports {
            assert_eq!(r.protocol_errors, 0, "{}: reports refused", r.policy);
            assert_eq!(
                r.late_connections, 0,
                "{}: a person connected late",
                r.policy
            );
            assert!(
                r.max_calls_up <= scenario.trunk_channels as u64,
                "{}: {} calls up on {} channels",
                r.policy,
                r.max_calls_up,
                scenario.trunk_channels
            );
        }
        for r in [progressive, predictive] {
            assert!(
                r.abandon_rate() <= limit,
                "{} abandoned {:.2} % (limit {:.2} %), seed {seed}",
                r.policy,
                r.abandon_rate() * 100.0,
                limit * 100.0
            );
            assert!(r.answered_by_person > 500, "{}: too few answers", r.policy);
        }
        assert!(
            predictive.occupancy > progressive.occupancy + 0.03,
            "predictive {:.3} vs progressive {:.3}, seed {seed}",
            predictive.occupancy,
            progressive.occupancy
        );
        for baseline in [hard_limit, average] {
            if baseline.abandon_rate() > limit {
                println!(
                    "note: {} exceeded the {:.0} % limit itself ({:.2} %); predictive stayed under it",
                    baseline.policy,
                    limit * 100.0,
                    baseline.abandon_rate() * 100.0
                );
            }
            assert!(
                predictive.occupancy > baseline.occupancy,
                "predictive {:.3} vs {} {:.3}, seed {seed}",
                predictive.occupancy,
                baseline.policy,
                baseline.occupancy
            );
        }
    }
}

#[test]
fn twenty_agents_thirty_percent_people_twenty_percent_machines() {
    check(&Scenario::contact_centre(20, 0.30, 0.20));
}

#[test]
fn ten_agents_on_a_hard_list() {
    check(&Scenario::contact_centre(10, 0.15, 0.25));
}

#[test]
fn a_run_is_the_same_for_the_same_seed_and_differs_for_another() {
    let scenario = Scenario::contact_centre(8, 0.30, 0.20);
    let scenario = Scenario {
        hours: 1.0,
        ..scenario
    };
    let first = run(&scenario, Policy::Predictive, 5).unwrap();
    let again = run(&scenario, Policy::Predictive, 5).unwrap();
    let other = run(&scenario, Policy::Predictive, 6).unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
}
