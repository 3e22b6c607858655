//! The consent exchange's background tasks, started and stopped together:
//! the prompt dispatcher, and the pump that hands the simulator's due
//! events (delivery receipts, auto-replies) to the inbound side as if a
//! provider had posted them.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::warn;

use super::channels::Channels;
use super::dispatcher::Dispatcher;
use super::inbound::{Inbound, Provider};
use crate::config::PromptConfig;
use crate::store::Store;

/// How often the simulator is asked for due events; its replies are meant
/// to arrive seconds after a prompt, so this is fine-grained enough.
const SIMULATOR_TICK: Duration = Duration::from_millis(50);

/// The running tasks.
pub struct RunningExchange {
    stop: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningExchange {
    /// Stops the tasks; a prompt in the middle of its send is left to its
    /// lease and sent again by the next start.
    pub async fn stop(self) {
        self.stop.notify_waiters();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Starts the dispatcher and, when the simulator is the channel, its pump.
pub fn spawn_exchange(
    store: Store,
    channels: Arc<Channels>,
    inbound: Inbound,
    prompts: PromptConfig,
) -> RunningExchange {
    let stop = Arc::new(Notify::new());
    let dispatcher = Dispatcher::new(store.clone(), channels.clone(), prompts);
    let mut tasks = vec![tokio::spawn(
        dispatcher.run(store.prompt_signal(), stop.clone()),
    )];
    if channels.simulator().is_some() {
        tasks.push(tokio::spawn(pump_simulator(channels, inbound)));
    }
    RunningExchange { stop, tasks }
}

async fn pump_simulator(channels: Arc<Channels>, inbound: Inbound) {
    let Some(simulator) = channels.simulator() else {
        return;
    };
    let mut tick = tokio::time::interval(SIMULATOR_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Utc::now();
        let events = simulator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poll(now);
        for event in events {
            let payload = format!("{event:?}");
            if let Err(e) = inbound
                .handle(Provider::Simulator, event, payload.as_bytes(), now)
                .await
            {
                warn!(error = %e, "a simulated event was not applied");
            }
        }
    }
}
