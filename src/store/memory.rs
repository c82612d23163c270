//! An in-memory store: for tests, examples and short-lived tools.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::query::PageCollector;
use super::{
    EntryStream, Erasure, Page, Query, Store, StoredEntry, StoredEntryStream, check_batch,
    conflict_after,
};
use crate::StoreError;
use crate::model::{Entry, EntryKind, EpochSummary, Head, Snapshot, counts_in_epoch};

/// Entries read per lock while scanning, so a scan never holds the lock long.
const SCAN_CHUNK: usize = 1024;

/// Trail, projection name and `upto_seq` of a kept snapshot.
type SnapshotKey = (String, String, u64);

/// A [`Store`] in memory. Clones share the same trails.
///
/// Nothing survives the process; use `SqliteStore` for a durable trail.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    trails: Arc<Mutex<HashMap<String, Vec<Entry>>>>,
    /// The seqs whose processing is restricted, by trail.
    restricted: Arc<Mutex<HashMap<String, HashSet<u64>>>>,
    snapshots: Arc<Mutex<BTreeMap<SnapshotKey, String>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        lock(&self.trails)
    }

    /// A copy of every stored entry of a trail, in stored order, like a
    /// database dump.
    pub fn dump(&self, trail: &str) -> Vec<Entry> {
        self.lock().get(trail).cloned().unwrap_or_default()
    }

    /// Streams a trail's entries from seq `from` on, chunk by chunk, each
    /// chunk turned into items by `items`.
    fn scan_with<'a, T: Send + 'a>(
        &'a self,
        trail: &'a str,
        from: u64,
        items: impl Fn(Vec<Entry>) -> Vec<T> + Send + 'a,
    ) -> futures_core::stream::BoxStream<'a, Result<T, StoreError>> {
        // Each chunk continues after the last seq read, not at a position,
        // so entries deleted by retention meanwhile shift nothing.
        let stream = futures_util::stream::unfold(Some(from), move |next| {
            let chunk = next.and_then(|from| {
                let chunk: Vec<Entry> = {
                    let trails = self.lock();
                    let entries = trails.get(trail).map(Vec::as_slice).unwrap_or_default();
                    let start = entries.partition_point(|entry| entry.seq < from);
                    entries[start..].iter().take(SCAN_CHUNK).cloned().collect()
                };
                // Restored entries may be out of order; continuing after
                // the highest seq read (and always past `from`) ends every
                // scan.
                let highest = chunk.iter().map(|entry| entry.seq).max()?.max(from);
                Some((chunk, highest.checked_add(1)))
            });
            let chunk = chunk.map(|(chunk, next)| {
                let items = items(chunk).into_iter().map(Ok);
                (futures_util::stream::iter(items), next)
            });
            async move { chunk }
        });
        Box::pin(futures_util::StreamExt::flatten(stream))
    }

    /// Replaces a trail's stored entries wholesale, without any check, like
    /// restoring a database dump. This is also how an attacker with write
    /// access to the storage would act, which is what the verifier exists
    /// to detect.
    pub fn restore(&self, trail: &str, entries: Vec<Entry>) {
        self.lock().insert(trail.to_owned(), entries);
    }
}

// Every mutation is a single push, replace or flag, so a poisoned lock
// still guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Store for MemoryStore {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        Ok(self
            .lock()
            .get(trail)
            .and_then(|entries| entries.last())
            .map(Entry::head))
    }

    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        check_batch(trail, after, entries)?;
        let mut trails = self.lock();
        let head = trails
            .get(trail)
            .and_then(|stored| stored.last())
            .map(|entry| entry.seq);
        if head != after {
            return Err(conflict_after(trail, after));
        }
        // A trail exists from its first stored entry on: a refused or empty
        // batch leaves no trace.
        if !entries.is_empty() {
            trails
                .entry(trail.to_owned())
                .or_default()
                .extend_from_slice(entries);
        }
        Ok(())
    }

    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        let trails = self.lock();
        let mut summary = EpochSummary::default();
        // Epochs never decrease along a trail, so walking back from the head
        // can stop at the first older epoch.
        for entry in trails.get(trail).into_iter().flatten().rev() {
            if entry.epoch < epoch {
                break;
            }
            if entry.epoch == epoch && counts_in_epoch(entry.kind) {
                summary.add(entry.kind, entry.recorded_at);
            }
        }
        Ok(summary)
    }

    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        self.scan_with(trail, from, |chunk| chunk)
    }

    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        self.scan_with(trail, from, move |chunk| {
            let flags = lock(&self.restricted);
            let restricted = flags.get(trail);
            chunk
                .into_iter()
                .map(|entry| {
                    let flag = restricted.is_some_and(|seqs| seqs.contains(&entry.seq));
                    StoredEntry::new(entry).with_restricted(flag)
                })
                .collect()
        })
    }

    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        let mut trails = self.lock();
        let Some(entries) = trails.get_mut(trail) else {
            return Ok(0);
        };
        let before = entries.len();
        entries.retain(|entry| {
            !(entry.kind == EntryKind::Event && (first..=last).contains(&entry.seq))
        });
        Ok((before - entries.len()) as u64)
    }

    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError> {
        let mut trails = self.lock();
        let Some(entries) = trails.get_mut(trail) else {
            return Ok(0);
        };
        let mut changed = 0;
        for erasure in erasures {
            let position = entries.partition_point(|entry| entry.seq < erasure.seq);
            if let Some(entry) = entries.get_mut(position).filter(|e| e.seq == erasure.seq)
                && entry.body.erase(&erasure.fields)
            {
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError> {
        let trails = self.lock();
        let stored = trails.get(trail).map(Vec::as_slice).unwrap_or_default();
        let mut flags = lock(&self.restricted);
        let flags = flags.entry(trail.to_owned()).or_default();
        let mut changed = 0;
        for &seq in seqs {
            if stored
                .binary_search_by_key(&seq, |entry| entry.seq)
                .is_err()
            {
                continue;
            }
            let flipped = if restricted {
                flags.insert(seq)
            } else {
                flags.remove(&seq)
            };
            changed += u64::from(flipped);
        }
        Ok(changed)
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let key = (
            snapshot.trail.clone(),
            snapshot.name.clone(),
            snapshot.upto_seq,
        );
        lock(&self.snapshots).insert(key, snapshot.state.clone());
        Ok(())
    }

    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let snapshots = lock(&self.snapshots);
        let low = (trail.to_owned(), name.to_owned(), upto_seq.unwrap_or(0));
        let high = (
            trail.to_owned(),
            name.to_owned(),
            upto_seq.unwrap_or(u64::MAX),
        );
        Ok(snapshots
            .range(low..=high)
            .next_back()
            .map(|((trail, name, upto_seq), state)| Snapshot {
                trail: trail.clone(),
                name: name.clone(),
                upto_seq: *upto_seq,
                state: state.clone(),
            }))
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let trails = self.lock();
        let restricted = lock(&self.restricted);
        let visible = |entry: &Entry| {
            query.include_restricted
                || !restricted
                    .get(&entry.trail)
                    .is_some_and(|seqs| seqs.contains(&entry.seq))
        };
        let mut collector = PageCollector::new(query);
        let selected = trails
            .iter()
            .filter(|(name, _)| query.trail.as_ref().is_none_or(|trail| trail == *name));
        for (_, entries) in selected {
            for entry in entries
                .iter()
                .filter(|entry| query.matches(entry) && visible(entry))
            {
                collector.offer(entry);
            }
        }
        Ok(collector.into_page())
    }
}
