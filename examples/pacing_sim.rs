//! Prints how progressive, predictive and VICIdial's adaptive dialling
//! compare on a few simulated contact centres (eight virtual hours each):
//!
//! ```sh
//! cargo run --release --example pacing_sim
//! ```

use slotgate::pacing::simulation::{format_table, run, AdaptMethod, Policy, Scenario};

fn main() {
    let scenarios = [
        Scenario::contact_centre(20, 0.30, 0.20),
        Scenario::contact_centre(10, 0.30, 0.20),
        Scenario::contact_centre(50, 0.30, 0.20),
        Scenario::contact_centre(20, 0.15, 0.25),
        Scenario::contact_centre(20, 0.50, 0.10),
    ];
    let policies = [
        Policy::Progressive,
        Policy::Predictive,
        Policy::Vicidial(AdaptMethod::HardLimit),
        Policy::Vicidial(AdaptMethod::Average),
    ];
    let seeds = [1_u64, 2, 3];
    for scenario in &scenarios {
        for seed in seeds {
            let mut reports = Vec::new();
            for policy in policies {
                match run(scenario, policy, seed) {
                    Ok(report) => reports.push(report),
                    Err(e) => {
                        eprintln!("{}: {e}", scenario.name);
                        std::process::exit(2);
                    }
                }
            }
            let title = format!("{} — 8 h, seed {seed}, abandon limit 3 %", scenario.name);
            println!("{}", format_table(&title, &reports));
        }
    }
}
