//! The [`Trail`] handle and its background writer (group commit).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, oneshot};

use super::batch::{BatchChain, Committing, PreparedBatch};
use super::writer::{Command, Pending, PendingBatch, Writer};
use super::{Error, Result};
use crate::event::Event;
use crate::model::{
    Body, Clock, Entry, EntryKind, Mac, SystemClock, body_commitment, timer_interval,
    validate_trail_name,
};
use crate::seal::{Sealable, SealingKey, with_salts};
use crate::store::Store;

/// Default number of events that may wait for the writer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Default largest batch sealed and appended at once.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default number of conflicting appends before a batch is given up.
pub const DEFAULT_MAX_CONFLICTS: u32 = 64;

/// Where a recorded event was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The trail.
    pub trail: Arc<str>,
    /// The entry's seq.
    pub seq: u64,
    /// The entry's timestamp.
    pub recorded_at: DateTime<Utc>,
    /// The entry's MAC.
    pub mac: Mac,
}

impl Receipt {
    pub(crate) fn of(trail: &Arc<str>, entry: &Entry) -> Self {
        Receipt {
            trail: trail.clone(),
            seq: entry.seq,
            recorded_at: entry.recorded_at,
            mac: entry.mac,
        }
    }
}

/// A handle to one trail: cheap to clone, safe to share between tasks.
///
/// Events go through a bounded queue to a background writer that seals them
/// in batches, appends each batch in one store call and only then completes
/// the callers' futures: an `Ok` receipt means the entry is committed.
#[derive(Clone)]
pub struct Trail {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    capacity: usize,
    commands: mpsc::Sender<Command>,
}

impl fmt::Debug for Trail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trail")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Configures and starts a [`Trail`].
#[must_use = "a trail builder does nothing until started"]
pub struct TrailBuilder {
    name: String,
    store: Arc<dyn Store>,
    key: Arc<SealingKey>,
    clock: Arc<dyn Clock>,
    queue_capacity: usize,
    max_batch: usize,
    max_conflicts: u32,
    seal_check_interval: Duration,
}

impl TrailBuilder {
    /// The clock that timestamps entries (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many events may wait for the writer before [`Error::Backpressure`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The largest batch sealed and appended at once.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How many conflicting appends (other writers advancing the trail) to
    /// retry before failing a batch with [`Error::Contention`].
    pub fn max_conflicts(mut self, attempts: u32) -> Self {
        self.max_conflicts = attempts.max(1);
        self
    }

    /// How often an idle writer checks whether an epoch ended and needs its
    /// seal (default: every second).
    pub fn seal_check_interval(mut self, interval: TimeDelta) -> Self {
        self.seal_check_interval = timer_interval(interval, Duration::from_millis(1));
        self
    }

    /// Starts the writer task on the current Tokio runtime.
    pub async fn start(self) -> Result<Trail> {
        validate_trail_name(&self.name)?;
        let name: Arc<str> = Arc::from(self.name.as_str());
        let store = self.store.clone();
        let clock = self.clock.clone();
        let writer = Writer::new(
            name.clone(),
            self.store,
            self.key,
            self.clock,
            self.max_conflicts,
            self.max_batch,
        )
        .await?;
        let (commands, receiver) = mpsc::channel(self.queue_capacity);
        tokio::spawn(writer.run(receiver, self.seal_check_interval));
        Ok(Trail {
            shared: Arc::new(Shared {
                name,
                store,
                clock,
                capacity: self.queue_capacity,
                commands,
            }),
        })
    }
}

impl Trail {
    /// Configures a trail writing to `store`, sealed with `key`.
    pub fn builder(
        name: impl Into<String>,
        store: Arc<dyn Store>,
        key: Arc<SealingKey>,
    ) -> TrailBuilder {
        TrailBuilder {
            name: name.into(),
            store,
            key,
            clock: Arc::new(SystemClock),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            max_conflicts: DEFAULT_MAX_CONFLICTS,
            seal_check_interval: Duration::from_secs(1),
        }
    }

    /// Starts a trail with the default settings.
    pub async fn open(
        name: impl Into<String>,
        store: Arc<dyn Store>,
        key: Arc<SealingKey>,
    ) -> Result<Trail> {
        Self::builder(name, store, key).start().await
    }

    /// The trail's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The store the trail writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The clock that timestamps the trail's entries.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Records an event: validates it, seals it and waits until the batch it
    /// went into is committed. `Ok` means it is durable in the store; any
    /// error means it is not in the trail.
    pub async fn record(&self, event: Event) -> Result<Receipt> {
        let body = with_salts(|salts| event.to_checked_body(&mut &mut *salts))??;
        let commitment = body_commitment(&body);
        let (reply, receipt) = oneshot::channel();
        let pending = Pending {
            item: Sealable::event(body, commitment),
            reply,
        };
        self.shared
            .commands
            .try_send(Command::Record(pending))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => Error::Backpressure {
                    trail: self.name().to_owned(),
                    capacity: self.shared.capacity,
                },
                mpsc::error::TrySendError::Closed(_) => self.closed(),
            })?;
        receipt.await.map_err(|_| self.closed())?
    }

    /// Records several events atomically: they are sealed in the given
    /// order as consecutive entries and appended in one store call, so
    /// either all of them are committed or none is. Waits until committed.
    ///
    /// This is what lets a log follower commit a read position together
    /// with the lines read up to it: no later batch can be committed while
    /// an earlier one was lost.
    pub async fn record_batch(&self, events: Vec<Event>) -> Result<Vec<Receipt>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let batch = PreparedBatch::of(&events)?;
        self.send_batch(batch, None).await?.receipts().await
    }

    /// Hands a prepared batch to the writer without waiting for its commit,
    /// so that the caller can prepare the next one meanwhile. Batches are
    /// committed in the order they are sent, each all or nothing. One
    /// failing does not stop the next, unless both belong to `chain`.
    pub(crate) async fn send_batch(
        &self,
        batch: PreparedBatch,
        chain: Option<&BatchChain>,
    ) -> Result<Committing> {
        let (reply, receipts) = oneshot::channel();
        self.shared
            .commands
            .send(Command::RecordBatch(PendingBatch {
                items: batch.items,
                reply,
                chain: chain.cloned(),
            }))
            .await
            .map_err(|_| self.closed())?;
        Ok(Committing {
            receipts,
            trail: self.name().to_owned(),
        })
    }

    /// Appends one of the trail's own records (retention, redaction, legal
    /// hold) through the writer, so it is chained and sealed like an event.
    pub(crate) async fn append_record(&self, kind: EntryKind, body: Body) -> Result<Receipt> {
        let commitment = body_commitment(&body);
        let mut receipts = self
            .commit_together(vec![Sealable {
                kind,
                body,
                commitment,
            }])
            .await?;
        receipts.pop().ok_or_else(|| self.closed())
    }

    async fn commit_together(&self, items: Vec<Sealable>) -> Result<Vec<Receipt>> {
        self.send_batch(PreparedBatch { items }, None)
            .await?
            .receipts()
            .await
    }

    /// Seals every epoch that has ended, now rather than at the writer's
    /// next check. Useful before a verification and with a manual clock.
    pub async fn seal_finished_epochs(&self) -> Result<()> {
        self.request(Command::SealFinishedEpochs).await
    }

    /// Commits every event accepted so far, then stops the writer. Other
    /// handles to the trail get [`Error::Closed`] afterwards.
    pub async fn shutdown(&self) -> Result<()> {
        self.request(Command::Shutdown).await
    }

    async fn request(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<()>>) -> Command,
    ) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.shared
            .commands
            .send(command(reply))
            .await
            .map_err(|_| self.closed())?;
        done.await.map_err(|_| self.closed())?
    }

    fn closed(&self) -> Error {
        Error::Closed {
            trail: self.name().to_owned(),
        }
    }
}
