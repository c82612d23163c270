//! The writer task behind a [`Trail`](super::Trail): seals batches, appends
//! them (the next one while the one before commits), seals epochs as they
//! end and closes the trail at shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use tokio::sync::oneshot;

use super::batch::{BatchChain, Replies};
use super::{Error, Receipt, Result};
use crate::model::{Clock, Entry, EntryKind, EpochSummary, Head, truncate_to_micros};
use crate::seal::{
    KeyLine, Plan, Registration, Sealable, SealingKey, first_unsealed_epoch, genesis_fields,
    next_position, plan_ahead, plan_append, rotation_fields, summary_epoch,
};
use crate::store::{PreviousAppend, Store, StoreError};

/// How often the writer yields to callers still sending before it commits
/// a batch of concurrently arriving events.
const GATHER_YIELDS: u32 = 16;

pub(super) struct Pending {
    pub(super) item: Sealable,
    pub(super) reply: oneshot::Sender<Result<Receipt>>,
}

/// Entries that must be committed together, in one append.
pub(super) struct PendingBatch {
    pub(super) items: Vec<Sealable>,
    pub(super) reply: oneshot::Sender<Result<Vec<Receipt>>>,
    pub(super) chain: Option<BatchChain>,
}

pub(super) enum Command {
    Record(Pending),
    RecordBatch(PendingBatch),
    SealFinishedEpochs(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
}

pub(super) struct Writer {
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
    /// A writer for trail `name`; an existing trail is registered with the
    /// key before anything else, so that its own key chain is at hand (a
    /// new trail is registered when its genesis is sealed).
    pub(super) async fn new(
        name: Arc<str>,
        store: Arc<dyn Store>,
        key: Arc<SealingKey>,
        clock: Arc<dyn Clock>,
        max_conflicts: u32,
        max_batch: usize,
    ) -> Result<Self> {
        let mut writer = Writer {
            name,
            store,
            key,
            clock,
            head: None,
            max_conflicts,
            max_batch,
            in_flight: None,
        };
        if let Some(head) = writer.read_head().await? {
            register_existing(writer.store.as_ref(), &writer.key, &writer.name, &head).await?;
        }
        Ok(writer)
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        seal_check_interval: Duration,
    ) {
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
                let plan = Plan::new(entries, None, next.item_count);
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
        Ok(plan_ahead(
            &self.name,
            &self.key,
            self.clock.now(),
            head,
            items,
        )?)
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
        let item_count = plan.item_count();
        let Plan { entries, after, .. } = plan;
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
        let plan = Plan::new(entries, None, item_count);
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
            .ok_or(crate::seal::KeyError::BeforeGenesis)?)
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
        plan.items()
            .iter()
            .map(|entry| Receipt::of(&self.name, entry))
            .collect()
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
        Ok(plan_append(
            &self.name, &self.key, next, head, items, &summary, close,
        )?)
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
        Some(head) if head.recorded_at > now + crate::model::MAX_CLOCK_SKEW => {
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
