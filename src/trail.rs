//! The [`Trail`] handle and its background writer (group commit).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::entry::{Body, Entry, EntryKind, Head};
use crate::event::Event;
use crate::seal::{
    Digest, EntryDraft, EpochKey, FORMAT_VERSION, Mac, SealingKey, body_commitment,
    format_timestamp, genesis_fields, genesis_prev_mac, seal_body, truncate_to_micros, with_salts,
};
use crate::store::{EpochSummary, Store};
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

struct Pending {
    item: Sealable,
    reply: oneshot::Sender<Result<Receipt>>,
}

/// Entries that must be committed together, in one append.
struct PendingBatch {
    items: Vec<Sealable>,
    reply: oneshot::Sender<Result<Vec<Receipt>>>,
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
        event.validate()?;
        let body = with_salts(|salts| event.to_body(&mut &mut *salts))?;
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
        let events = with_salts(|salts| {
            events
                .iter()
                .map(|event| {
                    event.validate()?;
                    let body = event.to_body(&mut &mut *salts);
                    let commitment = body_commitment(&body);
                    Ok(Sealable::event(body, commitment))
                })
                .collect::<Result<Vec<_>>>()
        })??;
        self.commit_together(events).await
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
        let (reply, receipts) = oneshot::channel();
        self.shared
            .commands
            .send(Command::RecordBatch(PendingBatch { items, reply }))
            .await
            .map_err(|_| self.closed())?;
        receipts.await.map_err(|_| self.closed())?
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
    /// The head as of our last append or read; `None` means unknown.
    head: Option<Option<Head>>,
    max_conflicts: u32,
    max_batch: usize,
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, seal_check_interval: Duration) {
        let mut ticks = tokio::time::interval(seal_check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    if self.handle(command, &mut commands).await.is_break() {
                        break;
                    }
                }
                _ = ticks.tick() => {
                    if let Err(err) = self.commit(Vec::new()).await {
                        tracing::warn!(trail = %self.name, error = %err, "sealing finished epochs failed; will retry");
                    }
                }
            }
        }
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
                self.commit_batch(batch).await;
                match control {
                    Some(command) => Box::pin(self.handle(command, commands)).await,
                    None => std::ops::ControlFlow::Continue(()),
                }
            }
            Command::RecordBatch(batch) => {
                let _ = batch.reply.send(self.commit(batch.items).await);
                std::ops::ControlFlow::Continue(())
            }
            Command::SealFinishedEpochs(reply) => {
                let _ = reply.send(self.commit(Vec::new()).await.map(drop));
                std::ops::ControlFlow::Continue(())
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(Ok(()));
                std::ops::ControlFlow::Break(())
            }
        }
    }

    async fn commit_batch(&mut self, batch: Vec<Pending>) {
        let (items, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.item, pending.reply))
            .unzip();
        match self.commit(items).await {
            Ok(receipts) => {
                for (reply, receipt) in replies.into_iter().zip(receipts) {
                    // A caller that stopped waiting still has its event stored.
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(err) => {
                // Fail closed: nothing of this batch was committed, and every
                // caller learns it.
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
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

    /// Seals finished epochs and the given events and appends them in one
    /// atomic batch, retrying on conflicts with other writers.
    async fn commit(&mut self, events: Vec<Sealable>) -> Result<Vec<Receipt>> {
        let mut conflicts = 0;
        loop {
            let head = self.read_head().await?;
            let Some(plan) = self.plan(head, &events).await? else {
                return Ok(Vec::new());
            };
            let after = head.map(|head| head.seq);
            match self.store.append(&self.name, after, &plan.entries).await {
                Ok(()) => return Ok(self.committed(plan, events.len())),
                Err(StoreError::Conflict { .. }) => {
                    conflicts += 1;
                    self.head = None;
                    if conflicts >= self.max_conflicts {
                        return Err(Error::Contention {
                            trail: self.name.to_string(),
                            attempts: conflicts,
                        });
                    }
                    tokio::task::yield_now().await;
                }
                Err(err) => {
                    self.head = None;
                    return Err(err.into());
                }
            }
        }
    }

    fn committed(&mut self, plan: Plan, event_count: usize) -> Vec<Receipt> {
        if let Some(last) = plan.entries.last() {
            self.head = Some(Some(last.head()));
        }
        if let Err(err) = self.key.set_trail_floor(&self.name, plan.target_epoch) {
            // The entries are committed; only the key's evolution on disk
            // lags, which weakens forward security until the next success.
            tracing::error!(trail = %self.name, error = %err, "could not evolve the sealing key");
        }
        plan.receipts(&self.name, event_count)
    }

    /// What to append after `head`; see [`plan_append`].
    async fn plan(&self, head: Option<Head>, events: &[Sealable]) -> Result<Option<Plan>> {
        let next = next_position(&self.key, self.clock.now(), head)?;
        let summary = match summary_epoch(&self.key, head, next.epoch) {
            Some(epoch) => self.store.epoch_summary(&self.name, epoch).await?,
            None => EpochSummary::default(),
        };
        plan_append(&self.name, &self.key, next, head, events, &summary)
    }
}

/// When the next entries after a trail's head are sealed, and in which epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NextPosition {
    time: DateTime<Utc>,
    epoch: u64,
}

impl NextPosition {
    /// The epoch the next entries are sealed in.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
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
/// every finished epoch, then the events. `None` if there is nothing to
/// append. `summary` is that of [`summary_epoch`] (empty when it is `None`).
///
/// Shared by the group-commit writer and by recording inside a caller's
/// transaction, so both seal a trail the same way.
pub(crate) fn plan_append(
    trail: &str,
    key: &SealingKey,
    next: NextPosition,
    head: Option<Head>,
    events: &[Sealable],
    summary: &EpochSummary,
) -> Result<Option<Plan>> {
    let NextPosition {
        time,
        epoch: target,
    } = next;
    let first_unsealed = head.as_ref().map_or(target, first_unsealed_epoch);
    if events.is_empty() && (head.is_none() || first_unsealed >= target) {
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

    let mut chain = ChainCursor {
        trail,
        key_id: key.key_id(),
        next_seq: head.map_or(0, |head| head.seq + 1),
        prev_mac: head.map_or_else(|| genesis_prev_mac(trail), |head| head.mac),
        entries: Vec::with_capacity(events.len() + keys.len() + 1),
    };
    if head.is_none() {
        chain.push(
            &keys[keys.len() - 1],
            time,
            EntryKind::Genesis,
            genesis_body(trail, key),
            None,
        );
    }
    for epoch_key in &keys[..keys.len() - 1] {
        let summary = match summary_epoch(key, head, target) {
            Some(epoch) if epoch == epoch_key.epoch() => *summary,
            _ => EpochSummary::default(),
        };
        let last_seq = chain.next_seq.saturating_sub(1);
        let body = seal_body(epoch_key.epoch(), &summary, last_seq, &chain.prev_mac);
        chain.push(epoch_key, time, EntryKind::EpochSeal, body, None);
    }
    let event_key = &keys[keys.len() - 1];
    for item in events {
        chain.push(
            event_key,
            time,
            item.kind,
            item.body.clone(),
            Some(item.commitment),
        );
    }
    Ok(Some(Plan {
        entries: chain.entries,
        target_epoch: target,
    }))
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

pub(crate) struct Plan {
    pub(crate) entries: Vec<Entry>,
    pub(crate) target_epoch: u64,
}

impl Plan {
    /// Receipts for the last `event_count` entries: the events.
    pub(crate) fn receipts(&self, trail: &Arc<str>, event_count: usize) -> Vec<Receipt> {
        let first_event = self.entries.len().saturating_sub(event_count);
        self.entries[first_event..]
            .iter()
            .map(|entry| Receipt {
                trail: trail.clone(),
                seq: entry.seq,
                recorded_at: entry.recorded_at,
                mac: entry.mac,
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
}

impl ChainCursor<'_> {
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
}
