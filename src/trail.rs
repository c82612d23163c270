//! The [`Trail`] handle and its background writer (group commit).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};

use crate::clock::{Clock, SystemClock};
use crate::entry::{Body, Entry, EntryKind, Head};
use crate::event::Event;
use crate::seal::{
    Digest, EntryDraft, EpochKey, FORMAT_V1, FORMAT_V2, KeyLine, Mac, Registration, SealingKey,
    body_commitment, format_timestamp, genesis_fields, genesis_prev_mac, rotation_fields,
    seal_body, truncate_to_micros, with_salts,
};
use crate::store::{EpochSummary, PreviousAppend, Store};
use crate::{Error, KeyError, Result, StoreError};

/// Default number of events that may wait for the writer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Default largest batch sealed and appended at once.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default number of conflicting appends before a batch is given up.
pub const DEFAULT_MAX_CONFLICTS: u32 = 64;
/// How often the writer yields to callers still sending before it commits
/// a batch of concurrently arriving events.
const GATHER_YIELDS: u32 = 16;
/// Longest trail name, in bytes.
pub const MAX_TRAIL_NAME_LEN: usize = 64;

/// Where a recorded event was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Checks a trail name: 1–64 of `a-z 0-9 - _`.
pub fn validate_trail_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TRAIL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidTrailName(
            crate::event::escape_text(name).into_owned(),
        ))
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

/// A body to seal as the next entry, with its commitment computed by the
/// caller (off the writer task).
pub(crate) struct Sealable {
    kind: EntryKind,
    body: Body,
    commitment: Digest,
}

impl Sealable {
    pub(crate) fn event(body: Body, commitment: Digest) -> Self {
        Self {
            kind: EntryKind::Event,
            body,
            commitment,
        }
    }
}

/// Events validated and turned into bodies with their commitments: the
/// part of sealing that needs no chain position, done by the caller.
pub(crate) struct PreparedBatch {
    items: Vec<Sealable>,
}

impl PreparedBatch {
    pub(crate) fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Self> {
        let items = with_salts(|salts| {
            events
                .into_iter()
                .map(|event| {
                    let body = event.to_checked_body(&mut &mut *salts)?;
                    let commitment = body_commitment(&body);
                    Ok(Sealable::event(body, commitment))
                })
                .collect::<Result<Vec<_>>>()
        })??;
        Ok(Self { items })
    }
}

/// Batches handed to the writer one after another that must commit in that
/// order, each only if the one before it did. Once one fails, every later
/// batch of the chain fails with the same error without being appended, so
/// a caller may send the next batch before the previous one is committed.
#[derive(Clone, Default)]
pub(crate) struct BatchChain {
    failure: Arc<std::sync::Mutex<Option<Error>>>,
}

impl BatchChain {
    fn fail(&self, err: &Error) {
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failure.get_or_insert_with(|| err.clone());
    }

    fn failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A batch handed to the writer; [`Committing::receipts`] waits for its
/// commit.
pub(crate) struct Committing {
    receipts: oneshot::Receiver<Result<Vec<Receipt>>>,
    trail: String,
}

impl Committing {
    /// The receipts once the batch is committed; any error means none of
    /// it is.
    pub(crate) async fn receipts(self) -> Result<Vec<Receipt>> {
        let trail = self.trail;
        self.receipts.await.map_err(|_| Error::Closed { trail })?
    }
}

struct Pending {
    item: Sealable,
    reply: oneshot::Sender<Result<Receipt>>,
}

/// Entries that must be committed together, in one append.
struct PendingBatch {
    items: Vec<Sealable>,
    reply: oneshot::Sender<Result<Vec<Receipt>>>,
    chain: Option<BatchChain>,
}

/// The callers waiting for one batch.
enum Replies {
    /// One caller per entry ([`Trail::record`]).
    Each(Vec<oneshot::Sender<Result<Receipt>>>),
    /// One caller for all entries ([`Trail::record_batch`]), and the chain
    /// the batch belongs to, if any.
    Together(oneshot::Sender<Result<Vec<Receipt>>>, Option<BatchChain>),
}

impl Replies {
    fn send(self, result: Result<Vec<Receipt>>) {
        // A caller that stopped waiting still has its entry stored.
        match (self, result) {
            (Replies::Each(replies), Ok(receipts)) => {
                for (reply, receipt) in replies.into_iter().zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            // Fail closed: nothing of the batch was committed, and every
            // caller learns it.
            (Replies::Each(replies), Err(err)) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
            (Replies::Together(reply, chain), result) => {
                if let (Some(chain), Err(err)) = (&chain, &result) {
                    chain.fail(err);
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Why the batch must not be appended: an earlier batch of its chain
    /// failed.
    fn chain_failure(&self) -> Option<Error> {
        match self {
            Replies::Together(_, Some(chain)) => chain.failure(),
            _ => None,
        }
    }
}

enum Command {
    Record(Pending),
    RecordBatch(PendingBatch),
    SealFinishedEpochs(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
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
    pub fn seal_check_interval(mut self, interval: Duration) -> Self {
        self.seal_check_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Starts the writer task on the current Tokio runtime.
    pub async fn start(self) -> Result<Trail> {
        validate_trail_name(&self.name)?;
        let name: Arc<str> = Arc::from(self.name.as_str());
        let mut writer = Writer {
            name: name.clone(),
            store: self.store,
            key: self.key,
            clock: self.clock,
            head: None,
            max_conflicts: self.max_conflicts,
            max_batch: self.max_batch,
            in_flight: None,
        };
        // Register an existing trail with the key before anything else, so
        // that its own key chain is at hand (a new trail is registered when
        // its genesis is sealed).
        if let Some(head) = writer.read_head().await? {
            register_existing(writer.store.as_ref(), &writer.key, &name, &head).await?;
        }

        let store = writer.store.clone();
        let clock = writer.clock.clone();
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

/// The oldest epoch of a trail that has no seal yet, judging by its head.
pub(crate) fn first_unsealed_epoch(head: &Head) -> u64 {
    if head.kind == EntryKind::EpochSeal {
        head.epoch + 1
    } else {
        head.epoch
    }
}

struct Writer {
    name: Arc<str>,
    store: Arc<dyn Store>,
    key: Arc<SealingKey>,
    clock: Arc<dyn Clock>,
    /// The committed head as of our last append or read; `None` means
    /// unknown. Never the head an append still in flight would leave.
    head: Option<Option<Head>>,
    max_conflicts: u32,
    max_batch: usize,
    /// The batch being appended while the next one is sealed.
    in_flight: Option<InFlight>,
}

/// What an append task hands back: the entries, and whether they are
/// committed (`Ok(false)`: not attempted, the append before them did not
/// commit as planned).
type Appended = (Vec<Entry>, std::result::Result<bool, StoreError>);

/// A batch whose append runs on its own task, so that the writer can seal
/// the next batch meanwhile (pipelining).
struct InFlight {
    append: JoinHandle<Appended>,
    item_count: usize,
    /// The head the append leaves if it commits.
    head: Head,
    replies: Replies,
}

/// What woke the writer up.
enum Wake {
    Command(Option<Command>),
    Appended(std::result::Result<Appended, JoinError>),
    Tick,
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, seal_check_interval: Duration) {
        let mut ticks = tokio::time::interval(seal_check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = match self.in_flight.as_mut() {
                // With an append running, a new command is sealed while it
                // runs; with none coming, its callers are answered as soon
                // as it is done.
                Some(in_flight) => tokio::select! {
                    biased;
                    command = commands.recv() => Wake::Command(command),
                    joined = &mut in_flight.append => Wake::Appended(joined),
                },
                None => tokio::select! {
                    biased;
                    command = commands.recv() => Wake::Command(command),
                    _ = ticks.tick() => Wake::Tick,
                },
            };
            match wake {
                Wake::Command(Some(command)) => {
                    if self.handle(command, &mut commands).await.is_break() {
                        break;
                    }
                }
                Wake::Command(None) => break,
                Wake::Appended(joined) => {
                    if let Some(in_flight) = self.in_flight.take() {
                        self.settle(in_flight, joined).await;
                    }
                }
                Wake::Tick => {
                    if let Err(err) = self.seal_finished_epochs().await {
                        tracing::warn!(trail = %self.name, error = %err, "sealing finished epochs failed; will retry");
                    }
                }
            }
        }
        // Every handle is gone or shutdown was asked: what was accepted is
        // still committed and answered.
        self.finish_in_flight().await;
    }

    async fn handle(
        &mut self,
        command: Command,
        commands: &mut mpsc::Receiver<Command>,
    ) -> std::ops::ControlFlow<()> {
        match command {
            Command::Record(first) => {
                let mut batch = vec![first];
                let mut control = None;
                let mut idle = 0;
                while batch.len() < self.max_batch {
                    match commands.try_recv() {
                        Ok(Command::Record(pending)) => {
                            batch.push(pending);
                            idle = 0;
                        }
                        Ok(other) => {
                            control = Some(other);
                            break;
                        }
                        // Group commit: while several callers are sending,
                        // give them a moment to join this batch, since each
                        // commit costs a flush to disk. A lone event is
                        // committed at once.
                        Err(mpsc::error::TryRecvError::Empty)
                            if batch.len() > 1 && idle < GATHER_YIELDS =>
                        {
                            idle += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .map(|pending| (pending.item, pending.reply))
                    .unzip();
                self.submit(items, Replies::Each(replies)).await;
                match control {
                    Some(command) => Box::pin(self.handle(command, commands)).await,
                    None => std::ops::ControlFlow::Continue(()),
                }
            }
            Command::RecordBatch(batch) => {
                self.submit(batch.items, Replies::Together(batch.reply, batch.chain))
                    .await;
                std::ops::ControlFlow::Continue(())
            }
            Command::SealFinishedEpochs(reply) => {
                let _ = reply.send(self.seal_finished_epochs().await);
                std::ops::ControlFlow::Continue(())
            }
            Command::Shutdown(reply) => {
                self.finish_in_flight().await;
                let _ = reply.send(self.close().await);
                std::ops::ControlFlow::Break(())
            }
        }
    }

    /// Seals `items` and starts their append; the callers are answered when
    /// it is done. While the previous batch is still being appended, `items`
    /// are sealed after the head it will leave and handed to the store at
    /// once, but appended only if the previous batch committed exactly as
    /// planned: after a failure or a conflict they are re-planned on the
    /// head actually stored, never appended after a head that does not
    /// exist.
    async fn submit(&mut self, items: Vec<Sealable>, replies: Replies) {
        let planned = match self.in_flight.take() {
            Some(in_flight) => match self.plan_ahead(&in_flight.head, items) {
                Ok(Ok(plan)) if !plan.entries.is_empty() => {
                    return self.pipeline(in_flight, plan, replies).await;
                }
                ahead => {
                    self.finish(in_flight).await;
                    match ahead {
                        Ok(Ok(empty)) => Ok(Some(empty)),
                        Ok(Err(items)) => self.plan_on_stored_head(items).await,
                        Err(err) => Err(err),
                    }
                }
            },
            None => self.plan_on_stored_head(items).await,
        };
        self.start(planned, replies);
    }

    /// Starts the append of a batch planned on the stored head.
    fn start(&mut self, planned: Result<Option<Plan>>, replies: Replies) {
        // Checked only now: the batch before it in its chain may have been
        // the one in flight, settled just before.
        if let Some(err) = replies.chain_failure() {
            replies.send(Err(err));
            return;
        }
        match planned {
            Ok(Some(plan)) => {
                let next = self.start_append(plan, PreviousAppend::settled(true), replies);
                self.in_flight = next;
            }
            Ok(None) => replies.send(Ok(Vec::new())),
            Err(err) => replies.send(Err(err)),
        }
    }

    /// Hands `plan`, sealed after the head that the append in flight
    /// leaves, to the store while that append runs, so that the store
    /// prepares it meanwhile; it follows only if that append committed as
    /// planned and its chain has not failed.
    async fn pipeline(&mut self, mut in_flight: InFlight, plan: Plan, replies: Replies) {
        let (outcome, previous) = PreviousAppend::pending();
        let next = self.start_append(plan, previous, replies);
        let joined = (&mut in_flight.append).await;
        // Told before the callers are answered: the next batch is ready
        // and the database waits for it.
        let committed = matches!(joined, Ok((_, Ok(true))));
        let follows = committed
            && next
                .as_ref()
                .is_some_and(|next| next.replies.chain_failure().is_none());
        outcome.settle(follows);
        self.settle(in_flight, joined).await;
        let Some(mut next) = next else {
            return;
        };
        if follows {
            self.in_flight = Some(next);
            return;
        }
        let joined = (&mut next.append).await;
        match joined {
            Ok((entries, Ok(false))) => {
                let plan = Plan {
                    entries,
                    after: None,
                    item_count: next.item_count,
                };
                let planned = self.plan_on_stored_head(plan.into_items()).await;
                self.start(planned, next.replies);
            }
            // Appended after all, failed before it waited, or panicked:
            // settled like any append.
            joined => {
                self.settle(next, joined).await;
            }
        }
    }

    /// Seals `items` after `head`, an append still in flight, if that needs
    /// nothing from the store: no epoch seal (whose body counts the stored
    /// entries of its epoch). Otherwise hands the items back.
    fn plan_ahead(
        &self,
        head: &Head,
        items: Vec<Sealable>,
    ) -> Result<std::result::Result<Plan, Vec<Sealable>>> {
        let line = self.key.trail_line(&self.name);
        let next = next_position(&self.key, self.clock.now(), Some(*head), line)?;
        // Seals need the store's count of their epoch; a rotation is
        // planned on the stored head too.
        if next.epoch > first_unsealed_epoch(head) || !matches!(line, Some(KeyLine::Branch { .. }))
        {
            return Ok(Err(items));
        }
        let (line, keys) = self.key.trail_keys(&self.name, next.epoch, next.epoch)?;
        let mut chain = ChainCursor::after(&self.name, self.key.key_id(), Some(*head), items.len());
        let Some(key) = keys.last() else {
            return Err(KeyError::EpochGone {
                requested: next.epoch,
                held: self.key.epoch(),
            }
            .into());
        };
        chain.push_all(line.format(), key, next.time, items);
        Ok(Ok(chain.finish(Some(head.seq))))
    }

    async fn plan_on_stored_head(&mut self, items: Vec<Sealable>) -> Result<Option<Plan>> {
        let head = self.read_head().await?;
        self.plan(head, items, false).await
    }

    /// Spawns the append of `plan` once `previous` committed; `None` (and
    /// the callers answered) if the plan holds no entries.
    fn start_append(
        &self,
        plan: Plan,
        previous: PreviousAppend,
        replies: Replies,
    ) -> Option<InFlight> {
        let Some(head) = plan.entries.last().map(Entry::head) else {
            replies.send(Ok(Vec::new()));
            return None;
        };
        let Plan {
            entries,
            after,
            item_count,
        } = plan;
        let (store, name) = (self.store.clone(), self.name.clone());
        let append = tokio::spawn(async move {
            let result = store
                .append_pipelined(&name, after, &entries, previous)
                .await;
            (entries, result)
        });
        Some(InFlight {
            append,
            item_count,
            head,
            replies,
        })
    }

    /// Waits for the append in flight, if any, and answers its callers.
    async fn finish_in_flight(&mut self) {
        if let Some(in_flight) = self.in_flight.take() {
            self.finish(in_flight).await;
        }
    }

    /// Waits for an append and answers its callers.
    async fn finish(&mut self, mut in_flight: InFlight) {
        let joined = (&mut in_flight.append).await;
        self.settle(in_flight, joined).await;
    }

    /// Answers the callers of a finished append; a conflicting one is
    /// re-planned on the stored head and retried first.
    async fn settle(
        &mut self,
        in_flight: InFlight,
        joined: std::result::Result<Appended, JoinError>,
    ) {
        let InFlight {
            item_count,
            replies,
            ..
        } = in_flight;
        let (entries, result) = match joined {
            Ok(appended) => appended,
            Err(err) => {
                self.head = None;
                if err.is_panic() {
                    // As if the store had panicked on the writer's task.
                    std::panic::resume_unwind(err.into_panic());
                }
                // Cancelled: the runtime is shutting down.
                replies.send(Err(Error::Closed {
                    trail: self.name.to_string(),
                }));
                return;
            }
        };
        let plan = Plan {
            entries,
            after: None,
            item_count,
        };
        match result {
            Ok(true) => {
                let receipts = self.committed(plan);
                replies.send(Ok(receipts));
            }
            // Not attempted although the append before it committed: only
            // a store that misreads its `PreviousAppend` says so. Nothing
            // was stored; retried like a conflict.
            Ok(false) | Err(StoreError::Conflict { .. }) => {
                let result = match self.conflicted(1) {
                    Ok(()) => {
                        self.commit_after_conflicts(plan.into_items(), 1, false)
                            .await
                    }
                    Err(err) => Err(err),
                };
                replies.send(result);
            }
            Err(err) => {
                self.head = None;
                replies.send(Err(err.into()));
            }
        }
    }

    async fn read_head(&mut self) -> Result<Option<Head>> {
        if let Some(head) = self.head {
            return Ok(head);
        }
        let head = self.store.head(&self.name).await?;
        self.head = Some(head);
        Ok(head)
    }

    fn current_epoch(&self) -> Result<u64> {
        Ok(self
            .key
            .schedule()
            .epoch_of(self.clock.now())
            .ok_or(KeyError::BeforeGenesis)?)
    }

    /// Seals every epoch that has ended, and moves the key's own chain on
    /// with the clock.
    async fn seal_finished_epochs(&mut self) -> Result<()> {
        self.finish_in_flight().await;
        self.commit_after_conflicts(Vec::new(), 0, false).await?;
        self.key.advance(self.current_epoch()?)?;
        Ok(())
    }

    /// Closes the trail: seals finished epochs and the current one, early,
    /// so that the trail's key moves past everything it sealed, and moves
    /// the key's own chain past the current epoch. A copy of the key file
    /// taken afterwards can forge nothing this trail holds.
    async fn close(&mut self) -> Result<()> {
        self.commit_after_conflicts(Vec::new(), 0, true).await?;
        self.key.advance(self.current_epoch()? + 1)?;
        Ok(())
    }

    async fn commit_after_conflicts(
        &mut self,
        mut items: Vec<Sealable>,
        mut conflicts: u32,
        close: bool,
    ) -> Result<Vec<Receipt>> {
        loop {
            let head = self.read_head().await?;
            let Some(plan) = self.plan(head, items, close).await? else {
                return Ok(Vec::new());
            };
            match self
                .store
                .append(&self.name, plan.after, &plan.entries)
                .await
            {
                Ok(()) => return Ok(self.committed(plan)),
                Err(StoreError::Conflict { .. }) => {
                    conflicts += 1;
                    self.conflicted(conflicts)?;
                    items = plan.into_items();
                    tokio::task::yield_now().await;
                }
                Err(err) => {
                    self.head = None;
                    return Err(err.into());
                }
            }
        }
    }

    /// Another writer advanced the trail: forget the head, and give up after
    /// too many conflicts in a row.
    fn conflicted(&mut self, conflicts: u32) -> Result<()> {
        self.head = None;
        if conflicts >= self.max_conflicts {
            return Err(Error::Contention {
                trail: self.name.to_string(),
                attempts: conflicts,
            });
        }
        Ok(())
    }

    fn committed(&mut self, plan: Plan) -> Vec<Receipt> {
        if let Some(last) = plan.entries.last() {
            self.head = Some(Some(last.head()));
        }
        if let Err(err) = plan.committed(&self.name, &self.key) {
            // The entries are committed; only the key's evolution on disk
            // lags, which weakens forward security until the next success.
            tracing::error!(trail = %self.name, error = %err, "could not evolve the sealing key");
        }
        plan.receipts(&self.name)
    }

    /// What to append after `head`; see [`plan_append`]. `close` also seals
    /// the current epoch, early, so that the trail's key can move past it.
    async fn plan(
        &self,
        head: Option<Head>,
        items: Vec<Sealable>,
        close: bool,
    ) -> Result<Option<Plan>> {
        let now = self.clock.now();
        refuse_future_head(&self.name, head, now)?;
        let line = self.key.trail_line(&self.name);
        let next = next_position(&self.key, now, head, line)?;
        let summary = match summary_epoch(&self.key, &self.name, head, next.epoch, close) {
            Some(epoch) => self.store.epoch_summary(&self.name, epoch).await?,
            None => EpochSummary::default(),
        };
        plan_append(&self.name, &self.key, next, head, items, &summary, close)
    }
}

/// Registers a trail that has entries with the key, on the key line its
/// genesis and its last rotation put it on.
pub(crate) async fn register_existing(
    store: &dyn Store,
    key: &SealingKey,
    trail: &str,
    head: &Head,
) -> Result<KeyLine> {
    let genesis = store.scan(trail, 0).next().await.transpose()?;
    let rotation = store
        .query(
            &crate::Query::new()
                .trail(trail)
                .kind(EntryKind::KeyRotation)
                .newest_first()
                .include_restricted()
                .limit(1),
        )
        .await?
        .entries
        .pop();
    let line = stored_key_line(trail, genesis.as_ref(), rotation.as_ref())?;
    let floor = first_unsealed_epoch(head);
    Ok(key.register(trail, Registration::Existing { line, floor })?)
}

/// The key line a trail's writer continues on, as its own store shows it:
/// the genesis's, or a branch at the last rotation to format 2.
pub(crate) fn stored_key_line(
    trail: &str,
    genesis: Option<&Entry>,
    rotation: Option<&Entry>,
) -> std::result::Result<KeyLine, StoreError> {
    if let Some(rotation) = rotation
        && rotation.value(rotation_fields::FORMAT) == Some("2")
    {
        return Ok(KeyLine::Branch {
            epoch: rotation.epoch,
        });
    }
    let corrupt = |reason: &str| StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: 0,
        reason: reason.to_owned(),
    };
    let genesis = genesis
        .filter(|entry| entry.seq == 0 && entry.kind == EntryKind::Genesis)
        .ok_or_else(|| corrupt("the trail has no genesis entry to continue from"))?;
    match genesis.value(genesis_fields::FORMAT) {
        Some("1") => Ok(KeyLine::Shared),
        Some("2") => Ok(KeyLine::Branch {
            epoch: genesis.epoch,
        }),
        _ => Err(corrupt("the genesis names no format this writer seals")),
    }
}

/// Refuses to append after a head dated further in the future than clocks
/// may disagree: a thief who sealed entries dated ahead would otherwise
/// have every later entry follow them, hiding that the trail was rewritten
/// (and the forged times would lift the retention limits).
pub(crate) fn refuse_future_head(
    trail: &str,
    head: Option<Head>,
    now: DateTime<Utc>,
) -> Result<()> {
    match head {
        Some(head) if head.recorded_at > now + crate::clock::MAX_CLOCK_SKEW => {
            Err(Error::HeadInFuture {
                trail: trail.to_owned(),
                head_seq: head.seq,
                head_at: head.recorded_at,
                now: truncate_to_micros(now),
            })
        }
        _ => Ok(()),
    }
}

/// When the next entries after a trail's head are sealed, and in which epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NextPosition {
    pub(crate) time: DateTime<Utc>,
    /// The epoch the next entries are sealed in.
    pub(crate) epoch: u64,
    /// The epoch their time falls into: `epoch`, or the one before when the
    /// trail closed that one early.
    pub(crate) time_epoch: u64,
}

/// The timestamp and epoch of entries appended after `head` at `now`, on
/// the trail's key `line` (`None`: the trail is new).
///
/// Timestamps never go backwards along a trail, whatever the clocks of
/// several writers say. The epoch is the one the time falls into, unless
/// the trail has sealed that epoch already (it was closed early, at a
/// shutdown): then the entries go into the next one. A new trail starts no
/// earlier than the key's own chain.
pub(crate) fn next_position(
    key: &SealingKey,
    now: DateTime<Utc>,
    head: Option<Head>,
    line: Option<KeyLine>,
) -> Result<NextPosition> {
    let schedule = *key.schedule();
    let mut time = truncate_to_micros(now);
    if let Some(head) = head {
        time = time.max(head.recorded_at);
    }
    let floor = match head {
        Some(head) => first_unsealed_epoch(&head),
        None => key.epoch(),
    };
    let time_epoch = schedule.epoch_of(time).ok_or(KeyError::BeforeGenesis)?;
    // Format 1 knows no early close: an entry lies in its epoch exactly.
    let ahead_allowed = if line == Some(KeyLine::Shared) { 0 } else { 1 };
    if floor > time_epoch + ahead_allowed {
        // Only a clock that went back gets here: move the time on rather
        // than seal an entry too far ahead of its own time.
        time = schedule.start_of(floor - ahead_allowed);
    }
    let time_epoch = schedule.epoch_of(time).ok_or(KeyError::BeforeGenesis)?;
    Ok(NextPosition {
        time,
        epoch: time_epoch.max(floor),
        time_epoch,
    })
}

/// The epoch whose [`EpochSummary`] the seals planned after `head` need: the
/// head's own epoch when a seal of it is planned (it ended, or the trail is
/// being closed in it) and it is not sealed yet. Earlier unsealed epochs
/// have no entries, so their summaries are empty.
pub(crate) fn summary_epoch(
    key: &SealingKey,
    trail: &str,
    head: Option<Head>,
    target: u64,
    close: bool,
) -> Option<u64> {
    let head = head?;
    let sealed_now = head.epoch < target || (close && head.epoch == target);
    let held = key.trail_epoch(trail).unwrap_or(u64::MAX);
    (head.kind != EntryKind::EpochSeal && sealed_now && head.epoch >= held).then_some(head.epoch)
}

/// What to append after `head`: a genesis entry for a new trail, seals for
/// every finished epoch, then the items (moved into the entries, not
/// copied), and with `close` a seal of the current epoch made early. A
/// format 1 trail is moved onto its own key chain on the way: its pending
/// seals are made in format 1, then a key rotation entry, then the rest in
/// format 2. `None` if there is nothing to append. `summary` is that of
/// [`summary_epoch`] (empty when it is `None`).
///
/// Shared by the group-commit writer and by recording inside a caller's
/// transaction, so both seal a trail the same way.
pub(crate) fn plan_append(
    trail: &str,
    key: &SealingKey,
    next: NextPosition,
    head: Option<Head>,
    items: Vec<Sealable>,
    summary: &EpochSummary,
    close: bool,
) -> Result<Option<Plan>> {
    let NextPosition {
        time,
        epoch: target,
        time_epoch,
    } = next;
    // A seal made within its own epoch closes it early; it cannot be made
    // before that epoch began.
    let close = close && items.is_empty() && target <= time_epoch;
    let mut chain = ChainCursor::after(trail, key.key_id(), head, items.len() + 2);
    let Some(head) = head else {
        if items.is_empty() {
            return Ok(None);
        }
        key.register(trail, Registration::New { epoch: target })?;
        let (line, keys) = key.trail_keys(trail, target, target)?;
        let event_key = keys.last().ok_or(KeyError::EpochGone {
            requested: target,
            held: key.epoch(),
        })?;
        chain.push(
            line.format(),
            event_key,
            time,
            EntryKind::Genesis,
            genesis_body(trail, key),
            None,
        );
        chain.push_all(line.format(), event_key, time, items);
        if close {
            chain.close(event_key, time, &EpochSummary::default());
        }
        return Ok(Some(chain.finish(None)));
    };
    let first_unsealed = first_unsealed_epoch(&head);
    let closing = close && first_unsealed <= target;
    if items.is_empty() && first_unsealed >= target && !closing {
        return Ok(None);
    }
    let line = key.trail_line(trail).ok_or_else(|| KeyError::NoTrailKey {
        trail: trail.to_owned(),
        needed: first_unsealed,
        held: key.epoch(),
    })?;
    let held = key.trail_epoch(trail).unwrap_or(target);
    if first_unsealed < held {
        tracing::error!(
            trail = %trail,
            epochs = ?(first_unsealed..held),
            "epochs cannot be sealed any more: their keys were destroyed; the verifier will report them"
        );
    }
    let from = first_unsealed.max(held).min(target);
    let (seal_format, seal_keys, event_key) = match line {
        KeyLine::Branch { .. } => {
            let (_, mut keys) = key.trail_keys(trail, from, target)?;
            let event_key = keys.pop().ok_or(KeyError::EpochGone {
                requested: target,
                held,
            })?;
            (FORMAT_V2, keys, event_key)
        }
        KeyLine::Shared => {
            let (mut keys, branch_key) = key.upgrade_keys(trail, from, target)?;
            let rotation_key = keys.pop().ok_or(KeyError::EpochGone {
                requested: target,
                held,
            })?;
            chain.seal_epochs(FORMAT_V1, &keys, time, head, summary);
            let body = rotation_body(key);
            chain.push(
                FORMAT_V1,
                &rotation_key,
                time,
                EntryKind::KeyRotation,
                body,
                None,
            );
            (FORMAT_V2, Vec::new(), branch_key)
        }
    };
    chain.seal_epochs(seal_format, &seal_keys, time, head, summary);
    chain.push_all(FORMAT_V2, &event_key, time, items);
    if closing {
        let stored = if head.epoch == target && head.kind != EntryKind::EpochSeal {
            *summary
        } else {
            EpochSummary::default()
        };
        chain.close(&event_key, time, &stored);
    }
    Ok(Some(chain.finish(Some(head.seq))))
}

fn genesis_body(trail: &str, key: &SealingKey) -> Body {
    let schedule = key.schedule();
    let mut body = Body::new();
    body.insert_public(genesis_fields::TRAIL, trail);
    body.insert_public(genesis_fields::KEY_CHECK, key.check_value().to_hex());
    body.insert_public(
        genesis_fields::KEY_GENESIS,
        format_timestamp(schedule.genesis()),
    );
    body.insert_public(
        genesis_fields::EPOCH_SECONDS,
        schedule.length_seconds().to_string(),
    );
    body.insert_public(genesis_fields::FORMAT, FORMAT_V2.to_string());
    body
}

/// The body of the rotation that moves a format 1 trail onto its own key
/// chain, branched off the same key at the rotation's epoch.
fn rotation_body(key: &SealingKey) -> Body {
    let mut body = Body::new();
    body.insert_public(rotation_fields::FORMAT, FORMAT_V2.to_string());
    body.insert_public(rotation_fields::KEY_ID, key.key_id());
    body.insert_public(rotation_fields::KEY_CHECK, key.check_value().to_hex());
    body
}

/// Sealed entries ready to append: genesis and epoch seals, then the
/// callers' items.
pub(crate) struct Plan {
    pub(crate) entries: Vec<Entry>,
    /// The seq of the head they were sealed after.
    pub(crate) after: Option<u64>,
    /// How many of the entries, at the end, are the callers' items.
    item_count: usize,
}

impl Plan {
    /// Receipts for the callers' items, the last entries.
    pub(crate) fn receipts(&self, trail: &Arc<str>) -> Vec<Receipt> {
        let first_item = self.entries.len().saturating_sub(self.item_count);
        self.entries[first_item..]
            .iter()
            .map(|entry| Receipt {
                trail: trail.clone(),
                seq: entry.seq,
                recorded_at: entry.recorded_at,
                mac: entry.mac,
            })
            .collect()
    }

    /// Moves the sealing key on once the plan is committed: onto the
    /// trail's own chain if it holds a rotation, past every epoch it
    /// sealed, and the key's own chain to the plan's epoch.
    pub(crate) fn committed(&self, trail: &str, key: &SealingKey) -> Result<(), KeyError> {
        let Some(last) = self.entries.last() else {
            return Ok(());
        };
        if let Some(rotation) = self
            .entries
            .iter()
            .find(|entry| entry.kind == EntryKind::KeyRotation)
        {
            key.upgraded(trail, rotation.epoch)?;
        }
        key.set_trail_floor(trail, first_unsealed_epoch(&last.head()))?;
        let time_epoch = key.schedule().epoch_of(last.recorded_at);
        key.advance(time_epoch.unwrap_or_default())
    }

    /// The callers' items back, to seal again on another head; their bodies
    /// and commitments are moved, not copied.
    fn into_items(mut self) -> Vec<Sealable> {
        let first_item = self.entries.len().saturating_sub(self.item_count);
        self.entries
            .drain(first_item..)
            .map(|entry| Sealable {
                kind: entry.kind,
                body: entry.body,
                commitment: entry.body_commitment,
            })
            .collect()
    }
}

/// Appends sealed entries one after another, linking each to the last.
struct ChainCursor<'a> {
    trail: &'a str,
    key_id: &'a str,
    next_seq: u64,
    prev_mac: Mac,
    entries: Vec<Entry>,
    item_count: usize,
    /// What was pushed into the newest epoch, for a seal that closes it.
    pushed: EpochSummary,
}

impl<'a> ChainCursor<'a> {
    fn after(trail: &'a str, key_id: &'a str, head: Option<Head>, capacity: usize) -> Self {
        Self {
            trail,
            key_id,
            next_seq: head.map_or(0, |head| head.seq + 1),
            prev_mac: head.map_or_else(|| genesis_prev_mac(trail), |head| head.mac),
            entries: Vec::with_capacity(capacity),
            item_count: 0,
            pushed: EpochSummary::default(),
        }
    }

    fn push(
        &mut self,
        version: u8,
        key: &EpochKey,
        time: DateTime<Utc>,
        kind: EntryKind,
        body: Body,
        commitment: Option<Digest>,
    ) {
        let commitment = commitment.unwrap_or_else(|| body_commitment(&body));
        let draft = EntryDraft {
            trail: self.trail.to_owned(),
            seq: self.next_seq,
            epoch: key.epoch(),
            key_id: self.key_id.to_owned(),
            recorded_at: time,
            kind,
            body,
            prev_mac: self.prev_mac,
        };
        let entry = draft.seal_with(version, key, commitment);
        self.next_seq += 1;
        self.prev_mac = entry.mac;
        if kind != EntryKind::EpochSeal {
            self.pushed.add(kind, time);
        }
        self.entries.push(entry);
    }

    /// Seals of the epochs of `keys`, each after the entries before it; the
    /// first counts what `summary` says of the head's epoch, when it is the
    /// head's epoch that it seals.
    fn seal_epochs(
        &mut self,
        version: u8,
        keys: &[EpochKey],
        time: DateTime<Utc>,
        head: Head,
        summary: &EpochSummary,
    ) {
        for epoch_key in keys {
            let sealed = if head.kind != EntryKind::EpochSeal && head.epoch == epoch_key.epoch() {
                *summary
            } else {
                EpochSummary::default()
            };
            let last_seq = self.next_seq.saturating_sub(1);
            let body = seal_body(
                version,
                epoch_key.epoch(),
                &sealed,
                last_seq,
                &self.prev_mac,
            );
            self.push(version, epoch_key, time, EntryKind::EpochSeal, body, None);
        }
        self.pushed = EpochSummary::default();
    }

    /// The seal of the current epoch, made before it ends: `stored` is what
    /// the store holds of the epoch, to which what this plan pushed adds.
    fn close(&mut self, key: &EpochKey, time: DateTime<Utc>, stored: &EpochSummary) {
        let mut summary = *stored;
        summary.merge(&self.pushed);
        let last_seq = self.next_seq.saturating_sub(1);
        let body = seal_body(FORMAT_V2, key.epoch(), &summary, last_seq, &self.prev_mac);
        self.push(FORMAT_V2, key, time, EntryKind::EpochSeal, body, None);
    }

    /// The callers' items, last in the plan but for a closing seal.
    fn push_all(&mut self, version: u8, key: &EpochKey, time: DateTime<Utc>, items: Vec<Sealable>) {
        self.item_count = items.len();
        for item in items {
            self.push(
                version,
                key,
                time,
                item.kind,
                item.body,
                Some(item.commitment),
            );
        }
    }

    fn finish(self, after: Option<u64>) -> Plan {
        Plan {
            entries: self.entries,
            after,
            item_count: self.item_count,
        }
    }
}
