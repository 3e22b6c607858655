//! Held INVITEs and the callbacks their answers schedule.
//!
//! The gate holds an INVITE on one node while the person's answer may be
//! stored by any node (the provider's webhook lands wherever the load
//! balancer sends it). The store is where they meet: the hold's row says
//! whether the INVITE is still waiting, the answer's transaction writes the
//! callback a later time calls for, and the holding node is woken in
//! process (broadcast channel) and, on PostgreSQL, through `LISTEN/NOTIFY`
//! on [`HOLDS_CHANNEL`].

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::broadcast;

use super::consent::ConsentStoreError;
use super::{Engine, Store};
use crate::consent::{Consent, ConsentRequest, NewConsentRequest, Subscription, TrustStatus, E164};

/// The PostgreSQL notification channel carrying hold ids.
pub const HOLDS_CHANNEL: &str = "slotgate_holds";

/// Wake-ups buffered per listener; a listener that falls further behind
/// re-reads its holds (see [`HoldWakes`]).
pub(crate) const WAKE_CAPACITY: usize = 4096;

/// The slot given to an answer "now" that arrived after its hold ended:
/// the person wants the call as soon as it can be placed.
pub(crate) const LATE_NOW_SLOT: TimeDelta = TimeDelta::minutes(15);

/// A held INVITE, as stored when its consent request is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub id: String,
    pub campaign: String,
    /// The PBX's From URI.
    pub caller: String,
    /// Where the PBX can be reached for the callback (the caller's URI at
    /// the PBX's address).
    pub pbx_target: String,
}

/// A call to place later, at the time the person chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledCallback {
    pub id: String,
    pub request_id: String,
    pub hold_id: String,
    pub enterprise_id: String,
    pub campaign: String,
    /// E.164.
    pub callee: String,
    pub caller: String,
    pub pbx_target: String,
    pub consent_id: Option<String>,
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// What to do when it is due: `None`, call; `Some("prompt")`, ask the
    /// person for another time (a campaign's prompt pass).
    pub due_action: Option<String>,
}

/// Where a hold stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldStatus {
    /// `held`, `forwarded` or `ended`.
    pub state: String,
    pub request_id: String,
}

/// What the gate needs to know about (enterprise, callee), read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalleeFacts {
    pub trust: TrustStatus,
    /// `Some(None)`: the global do-not-call list; `Some(Some(id))` the
    /// enterprise's.
    pub do_not_call: Option<Option<String>>,
    pub person_id: Option<String>,
    pub subscription: Option<Subscription>,
    /// The enterprise's consents for the number, newest first.
    pub consents: Vec<Consent>,
    /// The number the person is called from for this enterprise, if the
    /// operator set one (rule 1 of the caller ID chain).
    pub caller_id_override: Option<E164>,
}

/// Hold ids whose answers were stored, as they come.
pub struct HoldWakes {
    rx: broadcast::Receiver<String>,
}

impl HoldWakes {
    /// The next hold id; `None` once the store is gone. After falling
    /// behind, yields `Some(None)`: the caller should re-check every hold.
    pub async fn next(&mut self) -> Option<Option<String>> {
        match self.rx.recv().await {
            Ok(id) => Some(Some(id)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(None),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

fn listen_error(cause: sqlx::Error) -> ConsentStoreError {
    ConsentStoreError::Store(super::StoreError::Query {
        context: "listening for hold answers",
        cause,
    })
}

impl Store {
    /// Listens for stored answers to held INVITEs: this process's at once,
    /// and on PostgreSQL every node's through `LISTEN` (the listener task
    /// lives as long as the store).
    pub async fn hold_wakes(&self) -> Result<HoldWakes, ConsentStoreError> {
        let rx = self.holds.subscribe();
        if let Engine::Postgres(pool) = &self.engine {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool)
                .await
                .map_err(listen_error)?;
            listener.listen(HOLDS_CHANNEL).await.map_err(listen_error)?;
            let tx = self.holds.clone();
            tokio::spawn(async move {
                // PgListener reconnects by itself; a notification lost in
                // a reconnect is covered by the hold's window.
                loop {
                    match listener.recv().await {
                        Ok(n) => {
                            if tx.send(n.payload().to_string()).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "hold notifications interrupted");
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                    }
                }
            });
        }
        Ok(HoldWakes { rx })
    }

    pub(super) fn wake_hold(&self, hold_id: String) {
        // No listener (no gate in this process) is fine.
        let _ = self.holds.send(hold_id);
    }

    /// Trust, do-not-call, subscription, consents and caller ID override
    /// of the callee for the enterprise; `None` when the enterprise does not exist.
    pub async fn callee_facts(
        &self,
        enterprise_id: &str,
        number: &E164,
    ) -> Result<Option<CalleeFacts>, ConsentStoreError> {
        let Some(ask) = on_engine!(self, ask_facts(enterprise_id, number))? else {
            return Ok(None);
        };
        let consents = self.consents_for_number(enterprise_id, number).await?;
        Ok(Some(CalleeFacts {
            trust: ask.trust,
            do_not_call: ask.do_not_call,
            person_id: ask.person_id,
            subscription: ask.subscription,
            consents,
            caller_id_override: ask.caller_id_override,
        }))
    }

    /// Opens the consent request for a held INVITE and stores the hold,
    /// after the same checks as [`Store::create_consent_request`].
    pub async fn open_hold(
        &self,
        new: NewConsentRequest,
        hold: &NewHold,
        now: DateTime<Utc>,
    ) -> Result<ConsentRequest, ConsentStoreError> {
        let request = self.prepare_consent_request(new, now).await?;
        on_engine!(self, open_hold(&request, hold))?;
        self.wake_webhooks();
        self.wake_prompts();
        Ok(request)
    }

    /// Ends a hold still `held`: `forwarded` when the INVITE goes to the
    /// trunk, `ended` otherwise. False when it had already ended.
    pub async fn end_hold(
        &self,
        hold_id: &str,
        forwarded: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(
            self,
            end_hold(hold_id, "held", forwarded, super::to_micros(now))
        )
    }

    /// Ends a hold recorded as `forwarded` whose INVITE was refused after
    /// all (its answer "now" came too late): a stored "now" becomes a
    /// callback, as for any hold that ended unanswered.
    pub async fn reopen_missed_hold(
        &self,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(
            self,
            end_hold(hold_id, "forwarded", false, super::to_micros(now))
        )
    }

    pub async fn hold(&self, hold_id: &str) -> Result<Option<HoldStatus>, ConsentStoreError> {
        Ok(on_engine!(self, hold(hold_id))?
            .map(|(state, request_id)| HoldStatus { state, request_id }))
    }

    /// The callback a held INVITE's request scheduled, if any.
    pub async fn callback_for_request(
        &self,
        request_id: &str,
    ) -> Result<Option<ScheduledCallback>, ConsentStoreError> {
        on_engine!(self, callback_for_request(request_id))
    }

    /// Callbacks waiting to be placed, earliest first.
    pub async fn pending_callbacks(
        &self,
        limit: i64,
    ) -> Result<Vec<ScheduledCallback>, ConsentStoreError> {
        on_engine!(self, callbacks_with_status("pending", limit))
    }
}
