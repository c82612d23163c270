//! The [`Trail`] handle and its background writer (group commit).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};

use crate::clock::{Clock, SystemClock};
use crate::entry::{Body, Entry, EntryKind, Head};
use crate::event::Event;
use crate::seal::{
    Digest, EntryDraft, EpochKey, FORMAT_VERSION, Mac, SealingKey, body_commitment,
    format_timestamp, genesis_fields, genesis_prev_mac, seal_body, truncate_to_micros, with_salts,
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
        // Register the trail with the key before anything else, so the key
        // does not evolve past an epoch this trail has yet to seal.
        let head = writer.read_head().await?;
        let first_unsealed = match head {
            Some(head) => first_unsealed_epoch(&head),
            None => writer.current_epoch()?,
        };
        writer.key.set_trail_floor(&name, first_unsealed)?;

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
    target_epoch: u64,
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
                    if let Err(err) = self.commit(Vec::new()).await {
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
                let _ = reply.send(self.commit(Vec::new()).await.map(drop));
                std::ops::ControlFlow::Continue(())
            }
            Command::Shutdown(reply) => {
                self.finish_in_flight().await;
                let _ = reply.send(Ok(()));
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
                    target_epoch: next.target_epoch,
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
        let NextPosition {
            time,
            epoch: target,
        } = next_position(&self.key, self.clock.now(), Some(*head))?;
        if target > first_unsealed_epoch(head) {
            return Ok(Err(items));
        }
        let keys = self.key.epoch_keys(target, target)?;
        let mut chain = ChainCursor::after(&self.name, self.key.key_id(), Some(*head), items.len());
        let Some(key) = keys.last() else {
            return Err(KeyError::EpochGone {
                requested: target,
                held: self.key.epoch(),
            }
            .into());
        };
        chain.push_all(key, time, items);
        Ok(Ok(chain.finish(Some(head.seq), target)))
    }

    async fn plan_on_stored_head(&mut self, items: Vec<Sealable>) -> Result<Option<Plan>> {
        let head = self.read_head().await?;
        self.plan(head, items).await
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
            target_epoch,
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
            target_epoch,
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
            target_epoch,
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
            target_epoch,
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
                    Ok(()) => self.commit_after_conflicts(plan.into_items(), 1).await,
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

    /// Seals finished epochs and the given items and appends them in one
    /// atomic batch, retrying on conflicts with other writers; waits for
    /// any append in flight first.
    async fn commit(&mut self, items: Vec<Sealable>) -> Result<Vec<Receipt>> {
        self.finish_in_flight().await;
        self.commit_after_conflicts(items, 0).await
    }

    async fn commit_after_conflicts(
        &mut self,
        mut items: Vec<Sealable>,
        mut conflicts: u32,
    ) -> Result<Vec<Receipt>> {
        loop {
            let head = self.read_head().await?;
            let Some(plan) = self.plan(head, items).await? else {
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
        if let Err(err) = self.key.set_trail_floor(&self.name, plan.target_epoch) {
            // The entries are committed; only the key's evolution on disk
            // lags, which weakens forward security until the next success.
            tracing::error!(trail = %self.name, error = %err, "could not evolve the sealing key");
        }
        plan.receipts(&self.name)
    }

    /// What to append after `head`; see [`plan_append`].
    async fn plan(&self, head: Option<Head>, items: Vec<Sealable>) -> Result<Option<Plan>> {
        let next = next_position(&self.key, self.clock.now(), head)?;
        let summary = match summary_epoch(&self.key, head, next.epoch) {
            Some(epoch) => self.store.epoch_summary(&self.name, epoch).await?,
            None => EpochSummary::default(),
        };
        plan_append(&self.name, &self.key, next, head, items, &summary)
    }
}

/// When the next entries after a trail's head are sealed, and in which epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NextPosition {
    pub(crate) time: DateTime<Utc>,
    /// The epoch the next entries are sealed in.
    pub(crate) epoch: u64,
}

/// The timestamp and epoch of entries appended after `head` at `now`.
pub(crate) fn next_position(
    key: &SealingKey,
    now: DateTime<Utc>,
    head: Option<Head>,
) -> Result<NextPosition> {
    let schedule = *key.schedule();
    let now = truncate_to_micros(now);
    // Timestamps never go backwards along a trail, whatever the clocks
    // of several writers say, and never before the oldest key we hold.
    let mut time = head.map_or(now, |head| now.max(head.recorded_at));
    time = time.max(schedule.start_of(key.epoch()));
    let epoch = schedule.epoch_of(time).ok_or(KeyError::BeforeGenesis)?;
    Ok(NextPosition { time, epoch })
}

/// The epoch whose [`EpochSummary`] the seal planned after `head` needs: the
/// head's own epoch when it has ended and is not sealed yet (earlier
/// unsealed epochs have no entries, so their summaries are empty).
pub(crate) fn summary_epoch(key: &SealingKey, head: Option<Head>, target: u64) -> Option<u64> {
    let head = head?;
    let needed = head.kind != EntryKind::EpochSeal && head.epoch < target;
    (needed && head.epoch >= key.epoch()).then_some(head.epoch)
}

/// What to append after `head`: a genesis entry for a new trail, seals for
/// every finished epoch, then the items (moved into the entries, not
/// copied). `None` if there is nothing to append. `summary` is that of
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
) -> Result<Option<Plan>> {
    let NextPosition {
        time,
        epoch: target,
    } = next;
    let first_unsealed = head.as_ref().map_or(target, first_unsealed_epoch);
    if items.is_empty() && (head.is_none() || first_unsealed >= target) {
        return Ok(None);
    }
    let held = key.epoch();
    if first_unsealed < held {
        tracing::error!(
            trail = %trail,
            epochs = ?(first_unsealed..held),
            "epochs cannot be sealed any more: their keys were destroyed; the verifier will report them"
        );
    }
    let keys = key.epoch_keys(first_unsealed.max(held).min(target), target)?;
    let Some((event_key, seal_keys)) = keys.split_last() else {
        return Err(KeyError::EpochGone {
            requested: target,
            held,
        }
        .into());
    };

    let mut chain = ChainCursor::after(trail, key.key_id(), head, items.len() + keys.len());
    if head.is_none() {
        let body = genesis_body(trail, key);
        chain.push(event_key, time, EntryKind::Genesis, body, None);
    }
    for epoch_key in seal_keys {
        let summary = match summary_epoch(key, head, target) {
            Some(epoch) if epoch == epoch_key.epoch() => *summary,
            _ => EpochSummary::default(),
        };
        let last_seq = chain.next_seq.saturating_sub(1);
        let body = seal_body(epoch_key.epoch(), &summary, last_seq, &chain.prev_mac);
        chain.push(epoch_key, time, EntryKind::EpochSeal, body, None);
    }
    chain.push_all(event_key, time, items);
    Ok(Some(chain.finish(head.map(|head| head.seq), target)))
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
    body.insert_public(genesis_fields::FORMAT, FORMAT_VERSION.to_string());
    body
}

/// Sealed entries ready to append: genesis and epoch seals, then the
/// callers' items.
pub(crate) struct Plan {
    pub(crate) entries: Vec<Entry>,
    pub(crate) target_epoch: u64,
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
        }
    }

    fn push(
        &mut self,
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
        let entry = draft.seal_with(key, commitment);
        self.next_seq += 1;
        self.prev_mac = entry.mac;
        self.entries.push(entry);
    }

    /// The callers' items, last in the plan.
    fn push_all(&mut self, key: &EpochKey, time: DateTime<Utc>, items: Vec<Sealable>) {
        self.item_count = items.len();
        for item in items {
            self.push(key, time, item.kind, item.body, Some(item.commitment));
        }
    }

    fn finish(self, after: Option<u64>, target_epoch: u64) -> Plan {
        Plan {
            entries: self.entries,
            target_epoch,
            after,
            item_count: self.item_count,
        }
    }
}
