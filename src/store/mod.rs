//! Pluggable storage: the [`Store`] trait and its backends.

mod error;
mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod query;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

pub use error::StoreError;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreOptions};
pub use query::{
    CopyMismatch, Cursor, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Order, Page, Query, query_by_scan,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{DEFAULT_WAL_CHECKPOINT_PAGES, SqliteStore, SqliteStoreOptions, SqliteSync};

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use tokio::sync::oneshot;

use crate::model::EpochSummary;
use crate::model::{Entry, Head, Snapshot};

/// A stream of stored entries, in seq order as stored.
pub type EntryStream<'a> = BoxStream<'a, Result<Entry, StoreError>>;

/// A stream of stored entries with what the store keeps beside them, in seq
/// order as stored.
pub type StoredEntryStream<'a> = BoxStream<'a, Result<StoredEntry, StoreError>>;

/// An entry as a store reads it back, with what the store keeps beside it
/// and does not seal: what [`Store::scan_stored`] streams for the verifier,
/// which checks it against the sealed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEntry {
    /// The entry.
    pub entry: Entry,
    /// The copies of body values the store keeps for queries (indexed
    /// columns) that disagree with the entry's body.
    pub mismatched_copies: Vec<CopyMismatch>,
    /// Whether the store flags the entry's processing as restricted
    /// ([`Store::restrict`]); `None` when it does not tell.
    pub restricted: Option<bool>,
}

impl StoredEntry {
    /// An entry with nothing known of what is kept beside it.
    pub fn new(entry: Entry) -> Self {
        Self {
            entry,
            mismatched_copies: Vec::new(),
            restricted: None,
        }
    }

    /// With the restriction flag as stored.
    pub fn with_restricted(mut self, restricted: bool) -> Self {
        self.restricted = Some(restricted);
        self
    }

    /// With a copy that disagrees with the entry's body.
    pub fn with_mismatched_copy(mut self, mismatch: CopyMismatch) -> Self {
        self.mismatched_copies.push(mismatch);
        self
    }
}

/// Where sealed entries live.
///
/// Implementations must make [`Store::append`] atomic and conditional: the
/// whole batch is stored only if the trail's head is still `after`, so two
/// writers can never fork a trail.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The last entry of a trail, or `None` for an empty trail.
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError>;

    /// Appends `entries` (contiguous seqs following `after`, or starting at 0
    /// when `after` is `None`) in one atomic step, only if the trail's head
    /// is still `after`; otherwise fails with [`StoreError::Conflict`] and
    /// stores nothing.
    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError>;

    /// Appends like [`Store::append`] once the append before this batch,
    /// still running when it was handed over, has committed as planned;
    /// otherwise stores nothing and returns `Ok(false)`.
    ///
    /// The trail writer hands each batch over this way while the one before
    /// it commits, so that a backend can prepare it (encode rows, bind
    /// parameters: work that needs no lock) meanwhile, and the database
    /// need not wait for that work between two batches. The provided
    /// implementation waits for `previous`, then calls [`Store::append`].
    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        previous.follow(self.append(trail, after, entries)).await
    }

    /// Count and time span of the entries of one epoch that are not epoch
    /// seals, as the seal of that epoch states them.
    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError>;

    /// Streams a trail's entries from seq `from` on, in stored order.
    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a>;

    /// Streams a trail's entries like [`Store::scan`], each with what the
    /// store keeps beside it: the copies of body values it keeps for
    /// queries that disagree with the body, and the restriction flag. The
    /// verifier reads a store this way; nothing else needs to.
    ///
    /// The provided implementation wraps [`Store::scan`] and tells nothing
    /// beside the entries; a backend that keeps copies or flags tells them.
    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        use futures_util::TryStreamExt;
        Box::pin(self.scan(trail, from).map_ok(StoredEntry::new))
    }

    /// The names of all trails in the store.
    async fn trails(&self) -> Result<Vec<String>, StoreError>;

    /// Deletes the events with seqs `first..=last` of a trail in one atomic
    /// step and returns how many were deleted. Entries of other kinds
    /// (genesis, epoch seals, retention, redaction and hold records) are
    /// never deleted. Retention calls this after sealing a retention record
    /// that names the range.
    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError>;

    /// Erases personal fields in one atomic step: the named fields of each
    /// entry lose their value and salt and keep their commitment
    /// ([`Field::redacted`](crate::Field::redacted)), and any copy of them
    /// kept for queries is cleared too. Entries that are gone and fields
    /// that are absent or already erased are skipped. Returns how many
    /// entries changed.
    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError>;

    /// Restricts the processing of entries (`restricted = true`) or lifts
    /// the restriction: restricted entries stay stored and verified, but
    /// [`Store::query`] leaves them out unless [`Query::include_restricted`].
    /// The flag is kept beside the entries, not sealed:
    /// [`Trail::restrict_subject`](crate::Trail::restrict_subject) seals a
    /// restriction record naming the entries before it sets their flags,
    /// and the verifier reports a flag that the trail's restriction records
    /// do not state. Returns how many entries changed.
    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError>;

    /// Keeps a projection snapshot, replacing one with the same trail, name
    /// and `upto_seq`.
    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The newest snapshot of that name of a trail (highest `upto_seq`), or
    /// the one covering exactly `upto_seq` when given.
    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError>;

    /// One page of the entries that match a query, in the query's order
    /// (see [`Query`]); [`Page::next`] continues it.
    ///
    /// Every entry returned matches the query by its own fields
    /// ([`Query::matches`]). A backend that finds entries by copies of body
    /// values leaves out a row whose body does not match, so a page may
    /// hold fewer entries than its limit and still have a next page.
    ///
    /// The provided implementation scans the trails concerned
    /// ([`query_by_scan`]); backends with indexes answer it themselves.
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        query_by_scan(self, query).await
    }
}

/// Whether the append before a pipelined batch committed as planned; see
/// [`Store::append_pipelined`].
#[derive(Debug)]
pub struct PreviousAppend(oneshot::Receiver<bool>);

impl PreviousAppend {
    /// An append that is already over: `committed` says whether as planned.
    pub fn settled(committed: bool) -> Self {
        let (outcome, previous) = Self::pending();
        outcome.settle(committed);
        previous
    }

    /// An append still running, and the handle that tells its outcome.
    pub fn pending() -> (PreviousOutcome, Self) {
        let (sender, receiver) = oneshot::channel();
        (PreviousOutcome(sender), Self(receiver))
    }

    /// Waits for the append; true if it committed as planned, so that the
    /// batch after it may follow. An outcome never told counts as failed.
    pub async fn committed(self) -> bool {
        self.0.await.unwrap_or(false)
    }

    /// Runs `append` once the append before committed as planned and
    /// returns `Ok(true)` when it succeeds; otherwise `Ok(false)` without
    /// running it. What [`Store::append_pipelined`] returns.
    pub async fn follow(
        self,
        append: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<bool, StoreError> {
        if !self.committed().await {
            return Ok(false);
        }
        append.await.map(|()| true)
    }
}

/// Tells a [`PreviousAppend`] how the append went.
#[derive(Debug)]
pub struct PreviousOutcome(oneshot::Sender<bool>);

impl PreviousOutcome {
    /// Tells whether the append committed as planned. Dropping the
    /// outcome untold counts as `false`.
    pub fn settle(self, committed: bool) {
        // The batch after it may be gone already; then nobody waits.
        let _ = self.0.send(committed);
    }
}

/// Personal fields to erase from one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "store implementations receive and test it"
)]
pub struct Erasure {
    /// The entry.
    pub seq: u64,
    /// The fields, by name.
    pub fields: Vec<String>,
}

/// The conflict of a batch meant to follow `after` when the trail's head is
/// elsewhere: another writer got there first.
pub(crate) fn conflict_after(trail: &str, after: Option<u64>) -> StoreError {
    StoreError::Conflict {
        trail: trail.to_owned(),
        seq: after.map_or(0, |seq| seq + 1),
    }
}

/// Checks that a batch continues `after` contiguously and belongs to `trail`;
/// shared by every backend so they refuse the same malformed batches.
pub fn check_batch(trail: &str, after: Option<u64>, entries: &[Entry]) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidBatch {
        trail: trail.to_owned(),
        reason,
    };
    let first = match after {
        Some(seq) => seq
            .checked_add(1)
            .ok_or_else(|| invalid(format!("seq {seq} is the last possible seq")))?,
        None => 0,
    };
    for (expected, entry) in (first..).zip(entries) {
        if entry.trail != trail {
            return Err(invalid(format!(
                "entry {} belongs to trail {:?}",
                entry.seq, entry.trail
            )));
        }
        if entry.seq != expected {
            return Err(invalid(format!(
                "expected seq {expected}, got {}",
                entry.seq
            )));
        }
    }
    Ok(())
}
