//! The predictive decision: how many more calls to start now, and the
//! abandon risk each one carries.
//!
//! A call dialled now, if a person answers it, is answered after a delay
//! `d` drawn from the campaign's recent person-answer delays. It is served
//! if, by `d` plus the connect window, more agents are free than calls
//! ahead of it in the queue: the calls waiting now, the calls ringing now
//! that a person answers before `d`, and the other new calls that do.
//! Agents come from those free now and those busy ones whose handle time,
//! given how long they have been at it, ends in time. Each agent and each
//! call is an independent chance, so the risk is exact for the model
//! (see [`super::forecast`]); it is averaged over a few quantiles of `d`.
//!
//! Calls are added one at a time while the next one's risk stays within
//! the allowance the [`super::throttle`] grants; each call's expected
//! abandons are charged to the budget before the next is considered.
//! Unlike a dial *level* adjusted every few seconds (VICIdial's adaptive
//! method), this reacts at once to each agent freeing and each answer, and
//! dials exactly where the next call is cheap in risk.

use super::forecast::{CallOutcomes, HandleTimes, Surplus};

/// Quantiles of the person-answer delay the risk is averaged over.
const DELAY_QUANTILES: [f64; 3] = [0.2, 0.5, 0.8];

/// What the pacer knows right now, as the planner needs it.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    /// Agents free and not held for anything.
    pub free_agents: u32,
    /// How long each busy agent (talking or wrapping up) has been busy.
    pub busy_elapsed_ms: Vec<u32>,
    /// Answered persons waiting for an agent.
    pub waiting_calls: u32,
    /// Age of each call not answered yet.
    pub ringing_age_ms: Vec<u32>,
    /// The connect window.
    pub connect_within_ms: u32,
}

/// One further call the planner would place, and its risk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedCall {
    /// Chance that this call, answered by a person, finds no agent.
    pub risk: f64,
    /// Expected abandons it brings (risk × person-answer rate).
    pub expected_abandons: f64,
}

/// The calls to place now, in order, at most `most`; `allowance(spent)`
/// gives the risk a call may carry once `spent` expected abandons are
/// charged by the calls before it.
pub fn plan_calls(
    situation: &Situation,
    outcomes: &CallOutcomes,
    handle_times: &HandleTimes,
    most: u32,
    allowance: impl Fn(f64) -> f64,
) -> Vec<PlannedCall> {
    let person_rate = outcomes.person_rate();
    let mut horizons: Vec<(f64, Surplus)> = Vec::with_capacity(DELAY_QUANTILES.len());
    for share in DELAY_QUANTILES {
        let Some(delay) = outcomes.person_delay_quantile(share) else {
            return Vec::new();
        };
        let agents_by = delay.saturating_add(situation.connect_within_ms);
        let mut surplus =
            Surplus::certain(i64::from(situation.free_agents) - i64::from(situation.waiting_calls));
        for &elapsed in &situation.busy_elapsed_ms {
            surplus.add_agent(handle_times.free_within(elapsed, agents_by));
        }
        for &age in &situation.ringing_age_ms {
            surplus.add_call(outcomes.person_within(age, delay));
        }
        horizons.push((share, surplus));
    }
    let mut planned = Vec::new();
    let mut spent = 0.0;
    while planned.len() < most as usize {
        let risk = horizons
            .iter()
            .map(|(_, surplus)| surplus.chance_none_left())
            .sum::<f64>()
            / horizons.len() as f64;
        if risk > allowance(spent) {
            break;
        }
        let expected_abandons = risk * person_rate;
        spent += expected_abandons;
        planned.push(PlannedCall {
            risk,
            expected_abandons,
        });
        // This call is ahead of the next one when a person answers it
        // sooner: at the `share` quantile, with chance `share`.
        for (share, surplus) in &mut horizons {
            surplus.add_call(person_rate * *share);
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Persons answer after 6–10 s in 30 % of attempts; the rest end
    /// unanswered at 20 s. Handle times spread over 100–300 s.
    fn history() -> (CallOutcomes, HandleTimes) {
        let mut outcomes = CallOutcomes::new(500);
        for i in 0..300u32 {
            if i % 10 < 3 {
                outcomes.record(6_000 + (i % 5) * 1_000, true);
            } else {
                outcomes.record(20_000, false);
            }
        }
        let mut handle = HandleTimes::new(200);
        for i in 0..200u32 {
            handle.record(100_000 + i * 1_000);
        }
        (outcomes, handle)
    }

    #[test]
    fn free_agents_are_worth_calls_without_risk() {
        let (outcomes, handle) = history();
        let situation = Situation {
            free_agents: 3,
            connect_within_ms: 2_000,
            ..Situation::default()
        };
        // With no risk allowed, calls are placed only while even all of
        // them answering leaves an agent each: exactly three.
        let plan = plan_calls(&situation, &outcomes, &handle, 50, |_| 0.0);
        assert_eq!(plan.len(), 3);
        assert!(plan.iter().all(|c| c.risk == 0.0));
        // Allowing risk adds more calls, each riskier than the one before.
        let plan = plan_calls(&situation, &outcomes, &handle, 50, |_| 0.03);
        assert!(plan.len() > 3, "{plan:?}");
        assert!(plan.windows(2).all(|w| w[0].risk <= w[1].risk));
        assert!(plan.iter().all(|c| c.risk <= 0.03));
    }

    #[test]
    fn agents_near_the_end_of_their_calls_justify_dialling() {
        let (outcomes, handle) = history();
        let fresh = Situation {
            busy_elapsed_ms: vec![1_000; 10],
            connect_within_ms: 2_000,
            ..Situation::default()
        };
        let finishing = Situation {
            busy_elapsed_ms: vec![295_000; 10],
            ..fresh.clone()
        };
        let for_fresh = plan_calls(&fresh, &outcomes, &handle, 50, |_| 0.05);
        let for_finishing = plan_calls(&finishing, &outcomes, &handle, 50, |_| 0.05);
        assert!(for_fresh.is_empty(), "{for_fresh:?}");
        assert!(for_finishing.len() >= 5, "{for_finishing:?}");
    }

    #[test]
    fn calls_already_ringing_and_waiting_take_agents_first() {
        let (outcomes, handle) = history();
        let idle = Situation {
            free_agents: 5,
            connect_within_ms: 2_000,
            ..Situation::default()
        };
        let crowded = Situation {
            waiting_calls: 2,
            ringing_age_ms: vec![0; 10],
            ..idle.clone()
        };
        let for_idle = plan_calls(&idle, &outcomes, &handle, 100, |_| 0.03);
        let for_crowded = plan_calls(&crowded, &outcomes, &handle, 100, |_| 0.03);
        assert!(for_crowded.len() < for_idle.len());
    }

    #[test]
    fn the_budget_spent_by_earlier_calls_stops_later_ones() {
        let (outcomes, handle) = history();
        let situation = Situation {
            free_agents: 2,
            connect_within_ms: 2_000,
            ..Situation::default()
        };
        let generous = plan_calls(&situation, &outcomes, &handle, 100, |_| 0.2);
        let budgeted = plan_calls(&situation, &outcomes, &handle, 100, |spent| {
            if spent < 0.01 {
                0.2
            } else {
                0.0
            }
        });
        assert!(budgeted.len() < generous.len());
        assert_eq!(
            plan_calls(&situation, &outcomes, &handle, 1, |_| 0.2).len(),
            1
        );
    }

    #[test]
    fn without_history_nothing_is_planned() {
        let situation = Situation {
            free_agents: 3,
            ..Situation::default()
        };
        let plan = plan_calls(
            &situation,
            &CallOutcomes::new(10),
            &HandleTimes::new(10),
            10,
            |_| 0.5,
        );
        assert!(plan.is_empty());
    }
}
