//! Batched call-record writer that keeps the database off the SIP path.
//!
//! A slow disk or a PostgreSQL failover must never delay a SIP response (the
//! PBX would retransmit, then give up on the call). So [`CallRecorder::record`]
//! only pushes onto an unbounded in-memory queue, and one background task
//! groups records into batches, writes each batch in one transaction, and
//! retries a failed batch with backoff for as long as it takes: during an
//! outage records wait in memory rather than being dropped.

use std::future::pending;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use super::{CallRecord, Store};

/// How long [`RecorderHandle::shutdown`] keeps retrying a failing store
/// before it gives up on the records still queued.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// First retry comes quickly (a dropped connection is usually replaced at
/// once); later ones back off so an outage costs one warning every few
/// seconds, not a tight loop.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Counters {
    pending: AtomicUsize,
    failed_writes: AtomicU64,
}

/// Handle the SIP side uses to hand over finished calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    queue: mpsc::UnboundedSender<CallRecord>,
    counters: Arc<Counters>,
}

impl CallRecorder {
    /// Queues `record` for writing. Never blocks and never waits on the
    /// database. Only a record arriving after [`RecorderHandle::shutdown`]
    /// has begun is refused, and that is logged.
    pub fn record(&self, record: CallRecord) {
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(record)) = self.queue.send(record) {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                id = %record.id,
                a_call_id = %record.a_call_id,
                "call record arrived after the recorder shut down; not written"
            );
        }
    }

    /// Records handed over but not yet committed (queued or being retried).
    /// Worth exporting as a gauge: it grows only while the store is failing.
    pub fn pending(&self) -> usize {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// Batch writes that failed and were (or will be) retried, since start.
    pub fn failed_writes(&self) -> u64 {
        self.counters.failed_writes.load(Ordering::Relaxed)
    }
}

/// Owner's handle on the background writer, used to stop it cleanly.
///
/// Dropping it without calling [`shutdown`](Self::shutdown) detaches the
/// writer: it keeps running until every [`CallRecorder`] is dropped, then
/// writes what is left and ends.
#[derive(Debug)]
pub struct RecorderHandle {
    stop: oneshot::Sender<Duration>,
    task: JoinHandle<usize>,
    counters: Arc<Counters>,
}

impl RecorderHandle {
    /// Writes everything queued and returns how many records could not be
    /// written (0 unless the store kept failing for
    /// [`DEFAULT_SHUTDOWN_GRACE`]). Call it after calls have drained: from
    /// this point `record` refuses new records.
    pub async fn shutdown(self) -> usize {
        self.shutdown_with_grace(DEFAULT_SHUTDOWN_GRACE).await
    }

    /// Like [`shutdown`](Self::shutdown), but gives up once `grace` passes
    /// without a successful write. The clock restarts after every batch
    /// written, so a long backlog on a healthy store is written in full.
    pub async fn shutdown_with_grace(self, grace: Duration) -> usize {
        // An Err means the writer has already ended (every CallRecorder was
        // dropped); its result below still tells what was left.
        let _ = self.stop.send(grace);
        match self.task.await {
            Ok(unwritten) => unwritten,
            Err(e) => {
                let unwritten = self.counters.pending.load(Ordering::Relaxed);
                tracing::error!(error = %e, unwritten, "call recorder task failed");
                unwritten
            }
        }
    }
}

/// Starts the background writer on the current Tokio runtime (so it must be
/// called from within one). A batch is written when it holds `batch_max`
/// records or when its first record has waited `flush_interval`, whichever
/// comes first.
pub fn spawn_recorder(
    store: Store,
    batch_max: usize,
    flush_interval: Duration,
) -> (CallRecorder, RecorderHandle) {
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let counters = Arc::new(Counters::default());
    let writer = Writer {
        store,
        queue: queue_rx,
        stop: StopSignal {
            request: Some(stop_rx),
            grace: None,
            deadline: None,
        },
        counters: Arc::clone(&counters),
        batch_max: batch_max.max(1),
        flush_interval,
    };
    let task = tokio::spawn(
        writer
            .run()
            .instrument(tracing::info_span!("call_recorder")),
    );
    let recorder = CallRecorder {
        queue: queue_tx,
        counters: Arc::clone(&counters),
    };
    let handle = RecorderHandle {
        stop: stop_tx,
        task,
        counters,
    };
    (recorder, handle)
}

/// Shutdown state as seen by the writer.
struct StopSignal {
    /// `None` once a request arrived or the handle was dropped.
    request: Option<oneshot::Receiver<Duration>>,
    grace: Option<Duration>,
    /// When a still-failing store is abandoned; moves on after each success.
    deadline: Option<Instant>,
}

impl StopSignal {
    fn stopping(&self) -> bool {
        self.grace.is_some()
    }

    /// Resolves when the handle asks for shutdown or is dropped; after that,
    /// never again.
    async fn requested(&mut self) {
        let Some(request) = self.request.as_mut() else {
            return pending().await;
        };
        let outcome = request.await;
        self.request = None;
        if let Ok(grace) = outcome {
            self.grace = Some(grace);
            self.deadline = Some(Instant::now() + grace);
        }
    }

    fn made_progress(&mut self) {
        if let Some(grace) = self.grace {
            self.deadline = Some(Instant::now() + grace);
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

struct Writer {
    store: Store,
    queue: mpsc::UnboundedReceiver<CallRecord>,
    stop: StopSignal,
    counters: Arc<Counters>,
    batch_max: usize,
    flush_interval: Duration,
}

impl Writer {
    /// Returns the number of records that could not be written.
    async fn run(mut self) -> usize {
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            let more = self.collect(&mut batch).await;
            if !batch.is_empty() {
                if !self.write(&batch).await {
                    return self.give_up(batch.len());
                }
                batch.clear();
            }
            if !more {
                return 0;
            }
        }
    }

    /// Closing the queue at shutdown makes late `record` calls fail loudly
    /// instead of racing the writer's exit, while queued records can still
    /// be drained.
    fn close_queue_if_stopping(&mut self) {
        if self.stop.stopping() {
            self.queue.close();
        }
    }

    /// Fills `batch`; returns false once no record can arrive any more.
    async fn collect(&mut self, batch: &mut Vec<CallRecord>) -> bool {
        while batch.is_empty() && !self.stop.stopping() {
            tokio::select! {
                biased;
                n = self.queue.recv_many(batch, self.batch_max) => {
                    if n == 0 {
                        return false;
                    }
                }
                () = self.stop.requested() => self.close_queue_if_stopping(),
            }
        }
        let flush_at = Instant::now() + self.flush_interval;
        while batch.len() < self.batch_max {
            if self.stop.stopping() {
                // Nothing more is coming (the queue is closed), so there is
                // no point waiting out flush_interval.
                let room = self.batch_max - batch.len();
                return self.queue.recv_many(batch, room).await > 0;
            }
            let room = self.batch_max - batch.len();
            tokio::select! {
                biased;
                n = self.queue.recv_many(batch, room) => {
                    if n == 0 {
                        return false;
                    }
                }
                () = sleep_until(flush_at) => break,
                () = self.stop.requested() => self.close_queue_if_stopping(),
            }
        }
        true
    }

    /// Writes `batch`, retrying until it lands. False only when shutting
    /// down and the grace period ran out with the store still failing.
    async fn write(&mut self, batch: &[CallRecord]) -> bool {
        let mut backoff = RETRY_FIRST;
        let mut failures: u32 = 0;
        loop {
            let outcome = {
                let insert = self.store.insert_calls(batch);
                tokio::pin!(insert);
                loop {
                    let deadline = self.stop.deadline;
                    tokio::select! {
                        biased;
                        result = &mut insert => break Some(result),
                        // A hung connection must not hold shutdown forever.
                        () = sleep_until_some(deadline) => break None,
                        () = self.stop.requested() => {
                            if self.stop.stopping() {
                                self.queue.close();
                            }
                        }
                    }
                }
            };
            let error = match outcome {
                None => return false,
                Some(Ok(())) => {
                    self.counters
                        .pending
                        .fetch_sub(batch.len(), Ordering::Relaxed);
                    self.stop.made_progress();
                    if failures > 0 {
                        tracing::info!(
                            records = batch.len(),
                            failed_attempts = failures,
                            "call records written after the store recovered"
                        );
                    }
                    return true;
                }
                Some(Err(error)) => error,
            };

            failures += 1;
            self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                records = batch.len(),
                attempt = failures,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "could not write call records; keeping them and retrying"
            );
            let wake = Instant::now() + backoff;
            loop {
                let deadline = self.stop.deadline;
                tokio::select! {
                    biased;
                    () = sleep_until(wake) => break,
                    () = sleep_until_some(deadline) => return false,
                    () = self.stop.requested() => self.close_queue_if_stopping(),
                }
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    fn give_up(mut self, in_batch: usize) -> usize {
        self.queue.close();
        let mut unwritten = in_batch;
        while self.queue.try_recv().is_ok() {
            unwritten += 1;
        }
        tracing::error!(
            unwritten,
            "store still failing when the shutdown grace period ran out; call records not written"
        );
        unwritten
    }
}
