//! Group commit of the enterprise API's consent-request creations on SQLite.
//!
//! SQLite has one writer and slotgate one connection to it, and every
//! statement is a round trip to the driver's thread: creating one request
//! alone took a read of the may-ask facts, then a transaction of six or
//! more statements with a WAL append of its own. Under load the creations
//! therefore queue here, and one writer decides and stores whatever has
//! queued in a single transaction: one statement reads the facts of every
//! creation, one checks their Idempotency-Keys, and one multi-row statement
//! per table writes them (`consent_sqlite::write_api_requests`); then it
//! answers each caller. Nothing waits for a batch to fill: a creation that
//! finds the writer idle is written at once, alone; only those that arrive
//! while a transaction is running share the next one.
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

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use tokio::sync::oneshot;

use super::api::RequestDetails;
use super::{ConsentStoreError, StoreError};
use crate::consent::{ConsentRequest, NewConsentRequest};

/// Most creations in one transaction. Under the API's load the queue holds
/// about as many as there are concurrent clients; the cap only bounds the
/// statements' size and how long one transaction keeps the others waiting.
pub(crate) const MAX_BATCH: usize = 64;

/// One API creation, as the caller asked for it: the rules are checked
/// by the writer, in the transaction that stores it.
#[derive(Debug)]
pub(crate) struct Creation {
    pub new: NewConsentRequest,
    pub now: DateTime<Utc>,
    pub details: RequestDetails,
}

/// What became of one creation.
#[derive(Debug)]
pub(crate) enum Written {
    /// Stored as this request.
    Stored(Box<ConsentRequest>),
    /// Nothing stored: the enterprise had already used the Idempotency-Key.
    KeyTaken,
    /// Nothing stored: the rules, or the request's own fields, refuse it
    /// (or its facts could not be read).
    Refused(ConsentStoreError),
}

type Outcome = Result<Written, ConsentStoreError>;

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

    /// Decides and stores `creation` with the others queued at the same
    /// time. Must be called within a Tokio runtime.
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
    let creations: Vec<&Creation> = batch.iter().map(|w| &w.creation).collect();
    match super::consent_sqlite::write_api_requests(pool, &creations).await {
        Ok(outcomes) => {
            for (waiting, outcome) in batch.into_iter().zip(outcomes) {
                // A caller that went away still had its request stored: a
                // retry with its key finds it.
                let _ = waiting.reply.send(Ok(outcome));
            }
            return;
        }
        Err(e) => tracing::warn!(
            error = %e,
            creations = batch.len(),
            "a batch of consent-request creations failed; storing them one by one"
        ),
    }
    for waiting in batch {
        let outcome = alone(pool, &waiting.creation).await;
        let _ = waiting.reply.send(outcome);
    }
}

/// One creation in transactions of its own, as before batching: the facts
/// read, then the request written.
async fn alone(pool: &SqlitePool, c: &Creation) -> Outcome {
    use super::consent_sqlite::{ask_facts, insert_request};
    let decided = match ask_facts(pool, &c.new.enterprise_id, &c.new.number).await {
        Ok(facts) => super::consent::request_from_facts(facts, c.new.clone(), c.now),
        Err(e) => Err(e),
    };
    let request = match decided {
        Ok(request) => request,
        Err(refused) => return Ok(Written::Refused(refused)),
    };
    Ok(if insert_request(pool, &request, Some(&c.details)).await? {
        Written::Stored(Box::new(request))
    } else {
        Written::KeyTaken
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::consent::{
        ConsentPolicy, Identifier, NewConsentRequest, NewEnterprise, Refusal, Scope, SlotOption,
        SubscriptionStatus, TrustStatus, E164,
    };
    use crate::crm::OutboxFilter;
    use crate::store::{Engine, Store};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    type Person = (String, E164);

    /// A store on a file (WAL, as in production), one enterprise with a
    /// webhook URL (so every creation queues an event) and `people`
    /// subscribed people; gives the store, its pool, the enterprise and
    /// the people.
    async fn tenant(
        dir: &tempfile::TempDir,
        people: usize,
    ) -> (Store, SqlitePool, String, Vec<Person>) {
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

    fn creation(enterprise: &str, (person, number): &Person, key: Option<&str>) -> Creation {
        Creation {
            new: NewConsentRequest {
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
            now: at(1),
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

    /// The (person, request id) the outbox's events are about, in outbox
    /// order.
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

    /// The stored request's id, or what else became of the creation.
    fn summary(outcome: &Outcome) -> Result<String, String> {
        match outcome {
            Ok(Written::Stored(r)) => Ok(r.id.clone()),
            Ok(Written::KeyTaken) => Err("key taken".into()),
            Ok(Written::Refused(e)) => Err(format!("refused: {e}")),
            Err(e) => Err(format!("failed: {e}")),
        }
    }

    #[tokio::test]
    async fn a_key_used_twice_in_one_batch_stores_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 1).await;
        let ann = &people[0];
        let earlier = as_one_batch(&pool, vec![creation(&enterprise, ann, Some("k0"))]).await;
        assert!(summary(&earlier[0]).is_ok());

        let outcomes = as_one_batch(
            &pool,
            vec![
                creation(&enterprise, ann, Some("k1")),
                creation(&enterprise, ann, Some("k1")),
                creation(&enterprise, ann, None),
                creation(&enterprise, ann, None),
                // Used by the batch before this one.
                creation(&enterprise, ann, Some("k0")),
            ],
        )
        .await;
        let stored: Vec<bool> = outcomes.iter().map(|o| summary(o).is_ok()).collect();
        assert_eq!(stored, [true, false, true, true, false]);
        assert!(matches!(outcomes[1], Ok(Written::KeyTaken)));
        assert!(matches!(outcomes[4], Ok(Written::KeyTaken)));
        for outcome in &outcomes {
            if let Ok(id) = summary(outcome) {
                assert!(store.consent_request(&id).await.unwrap().is_some());
            }
        }
        // One event per stored request, none for a replay.
        assert_eq!(event_requests(&store, &enterprise).await.len(), 4);
    }

    #[tokio::test]
    async fn events_keep_the_order_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 3).await;
        // Interleaved people, so that an order by person would show.
        let batch: Vec<Creation> = (0..12)
            .map(|i| creation(&enterprise, &people[(i * 7) % 3], Some(&format!("k{i}"))))
            .collect();
        let persons: Vec<String> = batch.iter().map(|c| c.new.person_id.clone()).collect();
        let outcomes = as_one_batch(&pool, batch).await;
        let queued: Vec<(String, String)> = persons
            .into_iter()
            .zip(&outcomes)
            .map(|(person, o)| (person, summary(o).unwrap()))
            .collect();
        assert_eq!(event_requests(&store, &enterprise).await, queued);
    }

    /// The rules are read in the writer's transaction: a change committed
    /// before it counts, for the creations it concerns only.
    #[tokio::test]
    async fn refused_creations_are_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 3).await;
        store
            .add_do_not_call(None, &people[1].1, "test", at(0))
            .await
            .unwrap();
        store
            .set_subscription(&people[2].0, &enterprise, SubscriptionStatus::Paused, at(0))
            .await
            .unwrap();
        let mut wrong_person = creation(&enterprise, &people[0], Some("k3"));
        wrong_person.new.person_id = people[2].0.clone();
        let mut bad_slot = creation(&enterprise, &people[0], Some("k4"));
        bad_slot.new.options[0].end = at(10);
        let outcomes = as_one_batch(
            &pool,
            vec![
                creation(&enterprise, &people[0], Some("k0")),
                creation(&enterprise, &people[1], Some("k1")),
                creation(&enterprise, &people[2], Some("k2")),
                wrong_person,
                bad_slot,
                creation("no-such-enterprise", &people[0], Some("k5")),
                // A refused creation does not take its key.
                creation(&enterprise, &people[0], Some("k1")),
            ],
        )
        .await;
        assert!(summary(&outcomes[0]).is_ok());
        let refusal = |o: &Outcome| match o {
            Ok(Written::Refused(ConsentStoreError::Refused(r))) => Some(r.clone()),
            _ => None,
        };
        assert_eq!(refusal(&outcomes[1]), Some(Refusal::DoNotCallGlobal));
        assert_eq!(refusal(&outcomes[2]), Some(Refusal::SubscriptionPaused));
        assert!(matches!(
            outcomes[3],
            Ok(Written::Refused(ConsentStoreError::Invalid {
                field: "person_id",
                ..
            }))
        ));
        assert!(matches!(
            outcomes[4],
            Ok(Written::Refused(ConsentStoreError::Invalid {
                field: "options",
                ..
            }))
        ));
        assert!(matches!(
            outcomes[5],
            Ok(Written::Refused(ConsentStoreError::NotFound {
                what: "enterprise",
                ..
            }))
        ));
        assert!(summary(&outcomes[6]).is_ok());
        assert_eq!(event_requests(&store, &enterprise).await.len(), 2);
    }

    #[tokio::test]
    async fn a_failing_item_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, enterprise, people) = tenant(&dir, 2).await;
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON api_consent_requests \
             WHEN NEW.idempotency_key = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned key'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        let outcomes = as_one_batch(
            &pool,
            vec![
                creation(&enterprise, &people[0], Some("k1")),
                creation(&enterprise, &people[1], Some("poison")),
                creation(&enterprise, &people[1], Some("k3")),
                creation(&enterprise, &people[0], Some("k1")),
            ],
        )
        .await;
        let first = summary(&outcomes[0]).unwrap();
        assert!(matches!(
            outcomes[1],
            Err(ConsentStoreError::Store(StoreError::Query { .. }))
        ));
        let third = summary(&outcomes[2]).unwrap();
        // Still a replay when stored one by one.
        assert!(matches!(outcomes[3], Ok(Written::KeyTaken)));
        let in_outbox: Vec<String> = event_requests(&store, &enterprise)
            .await
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(in_outbox, [first, third]);
    }

    #[tokio::test]
    async fn creations_at_once_all_get_answers_and_the_writer_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _pool, enterprise, people) = tenant(&dir, 3).await;
        let mut waiting = Vec::new();
        for i in 0..40 {
            let creation = creation(&enterprise, &people[i % 3], None);
            let store = store.clone();
            waiting.push(tokio::spawn(async move {
                let Engine::Sqlite(pool) = &store.engine else {
                    unreachable!()
                };
                store.creations.insert(pool, creation).await
            }));
        }
        for task in waiting {
            let id = summary(&task.await.unwrap()).unwrap();
            assert!(store.consent_request(&id).await.unwrap().is_some());
        }
        assert_eq!(event_requests(&store, &enterprise).await.len(), 40);
        // The writer stopped once the queue was empty.
        let queue = store.creations.lock();
        assert!(queue.waiting.is_empty() && !queue.writing);
    }
}
