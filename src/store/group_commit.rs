//! Group commit of the enterprise API's consent-request creations on SQLite.
//!
//! SQLite has one writer and slotgate one connection to it, and every
//! statement is a round trip to the driver's thread: storing one request
//! alone took a transaction of six or more statements and a WAL append of
//! its own. Under load the creations therefore queue here, and one writer
//! stores whatever has queued in a single transaction with one multi-row
//! statement per table (`consent_sqlite::insert_api_request_batch`), then
//! answers each caller. Nothing waits for a batch to fill: a creation that
//! finds the writer idle is written at once, alone, exactly as before; only
//! those that arrive while a transaction is running share the next one.
//!
//! Every caller still gets the answer it would have had alone: a batch
//! that fails is rolled back and its items are stored one by one, so one
//! bad item fails only itself. The writer is a task spawned when work
//! arrives and ended when the queue is empty, so it needs no shutdown and
//! a caller that goes away does not cancel the others' transaction.
//!
//! PostgreSQL takes concurrent writers on several connections, and a
//! creation there is not batched.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sqlx::SqlitePool;
use tokio::sync::oneshot;

use super::api::RequestDetails;
use super::{ConsentStoreError, StoreError};
use crate::consent::ConsentRequest;

/// Most creations in one transaction. Under the API's load the queue holds
/// about as many as there are concurrent clients; the cap only bounds the
/// statements' size and how long one transaction keeps the others waiting.
pub(crate) const MAX_BATCH: usize = 64;

/// One API creation: a checked request and the API's details of it.
#[derive(Debug)]
pub(crate) struct Creation {
    pub request: ConsentRequest,
    pub details: RequestDetails,
}

/// Whether the request was stored (false: its Idempotency-Key was taken).
type Outcome = Result<bool, ConsentStoreError>;

struct Waiting {
    creation: Creation,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A writer task is running and will take what is queued.
    writing: bool,
}

/// The queue of creations waiting for the writer; shared by a store's
/// clones.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("GroupCommit")
            .field("waiting", &queue.waiting.len())
            .field("writing", &queue.writing)
            .finish()
    }
}

impl GroupCommit {
    /// The queue; a panic while it was held cannot have left it half
    /// changed (every change is one push, drain or flag), so a poisoned
    /// lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `creation` with the others queued at the same time; true when
    /// stored, false when its enterprise had already used its key (nothing
    /// was written for it). Must be called within a Tokio runtime.
    pub(crate) async fn insert(self: &Arc<Self>, pool: &SqlitePool, creation: Creation) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let start_writer = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting { creation, reply });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            tokio::spawn(write(Arc::clone(self), pool.clone()));
        }
        answer
            .await
            .map_err(|_| ConsentStoreError::Store(StoreError::WriterStopped))?
    }
}

/// Marks the writer gone if its task ends early (its runtime shut down, or
/// it panicked): the creations it held are answered with an error by the
/// dropping of their senders, and the next creation starts a new writer
/// instead of waiting for this one.
struct Running {
    group: Arc<GroupCommit>,
    /// Set when the writer ends because the queue is empty.
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.group.lock();
            queue.writing = false;
            queue.waiting.clear();
        }
    }
}

/// The writer: takes what has queued, stores it, answers, until the queue
/// is empty.
async fn write(group: Arc<GroupCommit>, pool: SqlitePool) {
    let mut running = Running {
        group,
        finished: false,
    };
    loop {
        let batch: Vec<Waiting> = {
            let mut queue = running.group.lock();
            if queue.waiting.is_empty() {
                // Under the lock: a creation queued after this sees the
                // flag down and starts the next writer.
                queue.writing = false;
                drop(queue);
                running.finished = true;
                return;
            }
            let n = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..n).collect()
        };
        store(&pool, batch).await;
    }
}

async fn store(pool: &SqlitePool, batch: Vec<Waiting>) {
    if batch.len() > 1 {
        let creations: Vec<&Creation> = batch.iter().map(|w| &w.creation).collect();
        match super::consent_sqlite::insert_api_request_batch(pool, &creations).await {
            Ok(stored) => {
                for (waiting, stored) in batch.into_iter().zip(stored) {
                    // A caller that went away still had its request stored:
                    // a retry with its key finds it.
                    let _ = waiting.reply.send(Ok(stored));
                }
                return;
            }
            Err(e) => tracing::warn!(
                error = %e,
                creations = batch.len(),
                "a batch of consent-request creations failed; storing them one by one"
            ),
        }
    }
    for waiting in batch {
        let Creation { request, details } = &waiting.creation;
        let outcome = super::consent_sqlite::insert_request(pool, request, Some(details)).await;
        let _ = waiting.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::consent::{
        ConsentPolicy, Identifier, NewConsentRequest, NewEnterprise, Scope, SlotOption,
        SubscriptionStatus, TrustStatus, E164,
    };
    use crate::crm::OutboxFilter;
    use crate::store::{Engine, Store};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    /// A store on a file (WAL, as in production), one enterprise with a
    /// webhook URL (so every creation queues an event) and `people`
    /// subscribed people; gives the store, its pool, the enterprise and
    /// the people as (id, number).
    async fn tenant(
        dir: &tempfile::TempDir,
        people: usize,
    ) -> (Store, SqlitePool, String, Vec<(String, E164)>) {
        let url = format!("sqlite://{}", dir.path().join("slotgate.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let Engine::Sqlite(pool) = &store.engine else {
            panic!("a sqlite URL gives a SQLite store");
        };
        let pool = pool.clone();
        let enterprise = store
            .create_enterprise(
                &NewEnterprise {
                    name: "ACME Energy SAS".into(),
                    display_name: "ACME Energy".into(),
                    services: vec!["Electricity".into()],
                    default_region: "FR".into(),
                    crm_webhook_url: Some("https://crm.acme.example/hooks".into()),
                    crm_webhook_secret: Some("whsec_0123456789".into()),
                    consent_policy: ConsentPolicy::Days(30),
                    status: TrustStatus::Trusted,
                },
                at(0),
            )
            .await
            .unwrap();
        let mut subscribed = Vec::new();
        for i in 0..people {
            let number = E164::parse(&format!("+3361234567{i}"), None).unwrap();
            let person = store
                .create_person(&[Identifier::Phone(number.clone())], at(0))
                .await
                .unwrap();
            store
                .set_subscription(
                    &person.id,
                    &enterprise.id,
                    SubscriptionStatus::Active,
                    at(0),
                )
                .await
                .unwrap();
            subscribed.push((person.id, number));
        }
        (store, pool, enterprise.id, subscribed)
    }

    async fn creation(
        store: &Store,
        enterprise: &str,
        (person, number): &(String, E164),
        key: Option<&str>,
    ) -> Creation {
        let request = store
            .prepare_consent_request(
                NewConsentRequest {
                    enterprise_id: enterprise.into(),
                    person_id: person.clone(),
                    number: number.clone(),
                    scope: Scope::Campaign("winter-offer".into()),
                    options: vec![SlotOption {
                        start: at(60),
                        end: at(90),
                    }],
                    hold_id: None,
                    expires_at: at(24 * 60),
                },
                at(1),
            )
            .await
            .unwrap();
        Creation {
            request,
            details: RequestDetails {
                idempotency_key: key.map(str::to_string),
                body_digest: "d1".into(),
                locale: None,
                personalisation: "{}".into(),
            },
        }
    }

    /// Stores `creations` as one batch; gives each one's answer.
    async fn as_one_batch(pool: &SqlitePool, creations: Vec<Creation>) -> Vec<Outcome> {
        let mut answers = Vec::new();
        let batch = creations
            .into_iter()
            .map(|creation| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                Waiting { creation, reply }
            })
            .collect();
        store(pool, batch).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.unwrap());
        }
        outcomes
    }

    /// The request ids the outbox's events are about, in outbox order.
    async fn event_requests(store: &Store, enterprise: &str) -> Vec<(String, String)> {
        let filter = OutboxFilter {
            state: None,
            enterprise_id: Some(enterprise.into()),
            limit: 1000,
        };
        store
            .webhook_events(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
                (
                    e.person_id,
                    body["data"]["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn stored(outcomes: &[Outcome]) -> Vec<bool> {
        outcomes
            .iter()
            .map(|o| *o.as_ref().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[tokio::test]
    async fn a_key_used_twice_in_one_batch_stores_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 1).await;
        let ann = &people[0];
        let earlier = creation(&store, &enterprise, ann, Some("k0")).await;
        assert_eq!(stored(&as_one_batch(&pool, vec![earlier]).await), [true]);

        let batch = vec![
            creation(&store, &enterprise, ann, Some("k1")).await,
            creation(&store, &enterprise, ann, Some("k1")).await,
            creation(&store, &enterprise, ann, None).await,
            creation(&store, &enterprise, ann, None).await,
            // Used by the batch before this one.
            creation(&store, &enterprise, ann, Some("k0")).await,
        ];
        let ids: Vec<String> = batch.iter().map(|c| c.request.id.clone()).collect();
        let outcomes = as_one_batch(&pool, batch).await;
        assert_eq!(stored(&outcomes), [true, false, true, true, false]);
        for (id, stored) in ids.iter().zip(stored(&outcomes)) {
            assert_eq!(store.consent_request(id).await.unwrap().is_some(), stored);
        }
        // One event per stored request, none for a replay.
        assert_eq!(event_requests(&store, &enterprise).await.len(), 4);
    }

    #[tokio::test]
    async fn events_keep_the_order_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 3).await;
        let mut batch = Vec::new();
        // Interleaved people, so that an order by person or by insertion
        // of another table would show.
        for i in 0..12 {
            let key = format!("k{i}");
            batch.push(creation(&store, &enterprise, &people[(i * 7) % 3], Some(&key)).await);
        }
        let queued: Vec<(String, String)> = batch
            .iter()
            .map(|c| (c.request.person_id.clone(), c.request.id.clone()))
            .collect();
        let outcomes = as_one_batch(&pool, batch).await;
        assert!(stored(&outcomes).into_iter().all(|s| s));
        assert_eq!(event_requests(&store, &enterprise).await, queued);
    }

    #[tokio::test]
    async fn a_failing_item_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 2).await;
        let first = creation(&store, &enterprise, &people[0], Some("k0")).await;
        let taken_id = first.request.id.clone();
        assert_eq!(stored(&as_one_batch(&pool, vec![first]).await), [true]);

        // Its id is taken: the batch's insert fails on it.
        let mut bad = creation(&store, &enterprise, &people[1], Some("k2")).await;
        bad.request.id = taken_id;
        let batch = vec![
            creation(&store, &enterprise, &people[0], Some("k1")).await,
            bad,
            creation(&store, &enterprise, &people[1], Some("k3")).await,
            creation(&store, &enterprise, &people[0], Some("k1")).await,
        ];
        let ids: Vec<String> = batch.iter().map(|c| c.request.id.clone()).collect();
        let outcomes = as_one_batch(&pool, batch).await;
        assert!(matches!(outcomes[0], Ok(true)));
        assert!(matches!(
            outcomes[1],
            Err(ConsentStoreError::Store(StoreError::Query { .. }))
        ));
        assert!(matches!(outcomes[2], Ok(true)));
        // Still a replay when stored one by one.
        assert!(matches!(outcomes[3], Ok(false)));
        assert!(store.consent_request(&ids[0]).await.unwrap().is_some());
        assert!(store.consent_request(&ids[2]).await.unwrap().is_some());
        let events = event_requests(&store, &enterprise).await;
        let ids_in_outbox: Vec<&str> = events.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids_in_outbox[1..], [ids[0].as_str(), ids[2].as_str()]);
    }

    #[tokio::test]
    async fn creations_at_once_all_get_answers_and_the_writer_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _pool, enterprise, people) = tenant(&dir, 3).await;
        let mut waiting = Vec::new();
        for i in 0..40 {
            let creation = creation(&store, &enterprise, &people[i % 3], None).await;
            let id = creation.request.id.clone();
            let store = store.clone();
            waiting.push(tokio::spawn(async move {
                let Engine::Sqlite(pool) = &store.engine else {
                    unreachable!()
                };
                (id, store.creations.insert(pool, creation).await)
            }));
        }
        for task in waiting {
            let (id, outcome) = task.await.unwrap();
            assert!(matches!(outcome, Ok(true)));
            assert!(store.consent_request(&id).await.unwrap().is_some());
        }
        assert_eq!(event_requests(&store, &enterprise).await.len(), 40);
        // The writer stopped once the queue was empty.
        let queue = store.creations.lock();
        assert!(queue.waiting.is_empty() && !queue.writing);
    }
}
