//! The verifier: proves a trail intact or names each entry that was changed,
//! removed, reordered, duplicated, forged, backdated or cut off.
//!
//! It trusts nothing it reads: not the list of trails (every trail a
//! checkpoint names is verified, and a store lists the trails its entries
//! belong to), not a key line a genesis or rotation states unless that
//! entry verifies on it, not an epoch beyond its clock, not a time after its
//! clock or after a checkpoint that counts the entry, not the copies of body
//! values a store keeps beside an entry for queries (each must agree with
//! the sealed body).
//!
//! Verification streams: entries are checked as they arrive, with a bounded
//! window for entries stored out of order, so memory does not grow with the
//! trail.

mod checkpoint;
mod key_lines;
mod ledger;
mod report;
mod restriction;
mod run;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use futures_util::{Stream, StreamExt};

pub use checkpoint::{Checkpoint, CheckpointError, MAX_CHECKPOINT_FILE};
pub use report::{Finding, FindingKind, PrunedNotice, ReportHead, SnapshotNotice, TrailReport};
pub(crate) use run::SealClaims;
pub use run::TrailVerification;

use crate::model::Entry;
use crate::seal::VerificationKey;
use crate::store::{Store, StoredEntry};
use crate::{KeyError, StoreError};

/// How many entries may arrive out of seq order before the gap is reported
/// as missing entries.
pub const DEFAULT_REORDER_WINDOW: usize = 4096;

/// Entries checked in parallel at once.
const VERIFY_BATCH: usize = 4096;

/// The youngest age at which a verifier accepts that retention deleted an
/// entry, unless told otherwise: the 7 days log data is kept.
pub const DEFAULT_MINIMUM_RETENTION_DAYS: i64 = 7;

/// Why a verification could not run at all (as opposed to findings).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The entries could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies trails with one or more verification keys (several after key
/// rotation).
#[derive(Debug)]
pub struct Verifier {
    // Looked up for every entry; a handful of keys, so a fast hash cannot
    // be made to collide at any cost worth noting.
    keys: HashMap<String, VerificationKey, foldhash::fast::RandomState>,
    checkpoints: BTreeMap<String, Vec<Checkpoint>>,
    reorder_window: usize,
    minimum_retention: Duration,
    trail_minimum_retention: HashMap<String, Duration>,
    now: DateTime<Utc>,
    clock_skew: Duration,
}

impl Verifier {
    /// A verifier with one key, checking times against the system clock.
    pub fn new(key: VerificationKey) -> Self {
        Self {
            keys: [(key.key_id().to_owned(), key)].into_iter().collect(),
            checkpoints: BTreeMap::new(),
            reorder_window: DEFAULT_REORDER_WINDOW,
            minimum_retention: Duration::days(DEFAULT_MINIMUM_RETENTION_DAYS),
            trail_minimum_retention: HashMap::new(),
            now: crate::model::truncate_to_micros(Utc::now()),
            clock_skew: crate::model::MAX_CLOCK_SKEW,
        }
    }

    /// The youngest age at which retention may delete entries of any trail
    /// (default [`DEFAULT_MINIMUM_RETENTION_DAYS`]): a retention record
    /// that deleted younger entries, counted from the record's own time or
    /// the verifier's clock, whichever is earlier, is a
    /// [`FindingKind::RetentionViolation`]. This is what stops a thief of
    /// the current key from passing off a fresh deletion as retention.
    pub fn minimum_retention(mut self, age: Duration) -> Self {
        self.minimum_retention = age;
        self
    }

    /// The minimum retention of one trail, overriding
    /// [`Verifier::minimum_retention`].
    pub fn trail_minimum_retention(mut self, trail: impl Into<String>, age: Duration) -> Self {
        self.trail_minimum_retention.insert(trail.into(), age);
        self
    }

    pub(crate) fn minimum_retention_of(&self, trail: &str) -> Duration {
        self.trail_minimum_retention
            .get(trail)
            .copied()
            .unwrap_or(self.minimum_retention)
    }

    /// Adds another key (e.g. the one before a rotation).
    pub fn with_key(mut self, key: VerificationKey) -> Self {
        self.keys.insert(key.key_id().to_owned(), key);
        self
    }

    /// Checks the trail against an exported checkpoint: the trail must
    /// exist, the entry the checkpoint names must be present and unchanged,
    /// the trail must not end before it, and no entry it counts may be
    /// dated after it.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoints
            .entry(checkpoint.trail.clone())
            .or_default()
            .push(checkpoint);
        self
    }

    /// The trails the checkpoints given name: each is verified, or reported
    /// missing, whatever a store lists.
    pub fn checkpoint_trails(&self) -> impl Iterator<Item = &str> {
        self.checkpoints.keys().map(String::as_str)
    }

    /// How many entries may arrive out of order before a gap counts as
    /// missing entries.
    pub fn reorder_window(mut self, window: usize) -> Self {
        self.reorder_window = window.max(1);
        self
    }

    /// Verifies as of `now` instead of the system clock's time when the
    /// verifier was made: entries dated after it (by more than
    /// [`Verifier::clock_skew`]) are [`FindingKind::FutureDated`].
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = crate::model::truncate_to_micros(now);
        self
    }

    /// How far the writers' clocks may be ahead of the verifier's (default
    /// [`MAX_CLOCK_SKEW`](crate::model::MAX_CLOCK_SKEW)).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew.max(Duration::zero());
        self
    }

    /// The time entries are checked against.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The key ids of the verification keys given.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The newest epoch any key may derive a key for: the one the clock
    /// (plus a day) is in, with a margin for a key file whose schedule is
    /// off. Nothing stored can make a verifier derive further.
    fn epoch_limit(&self) -> u64 {
        let horizon = self.now + self.clock_skew + Duration::days(1);
        self.keys
            .values()
            .filter_map(|key| key.schedule().epoch_of(horizon))
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// The trails to verify in a store: those it lists (a store lists the
    /// trails its entries belong to, not only those it has a row for) and
    /// those a checkpoint names, in name order.
    async fn trails_of(&self, store: &dyn Store) -> Result<Vec<String>, StoreError> {
        let mut names: BTreeSet<String> = store.trails().await?.into_iter().collect();
        names.extend(self.checkpoints.keys().cloned());
        Ok(names.into_iter().collect())
    }

    /// Verifies every trail of a store, and every trail a checkpoint names.
    pub async fn verify_store(&self, store: &dyn Store) -> Result<Vec<TrailReport>, VerifyError> {
        let mut reports = Vec::new();
        for trail in self.trails_of(store).await? {
            reports.push(self.verify_trail(store, &trail).await?);
        }
        Ok(reports)
    }

    /// Verifies the entries of an export (e.g. [`crate::read::JsonLinesReader`]),
    /// trail by trail, whatever order the trails come in; only the named
    /// trails when `trails` is not empty. Every trail a checkpoint names is
    /// reported too, missing or not. A line that cannot be decoded is a
    /// finding of the trail it belongs to (or the trail of the lines around
    /// it); only an export with no entry at all is an error. Reports come
    /// in trail name order.
    pub fn verify_entries(
        &self,
        entries: impl Iterator<Item = Result<Entry, StoreError>>,
        trails: &[String],
    ) -> Result<Vec<TrailReport>, VerifyError> {
        let mut runs: BTreeMap<String, (TrailVerification<'_>, Vec<Entry>)> = BTreeMap::new();
        let mut rejected: BTreeMap<String, TrailReport> = BTreeMap::new();
        let mut current: Option<String> = None;
        // Lines that could not be decoded before any trail was seen.
        let mut orphans: Vec<(u64, String)> = Vec::new();
        let wanted = |trail: &str| trails.is_empty() || trails.iter().any(|t| t == trail);
        for item in entries {
            let entry = match item {
                Ok(entry) => entry,
                Err(StoreError::Corrupt { trail, seq, reason })
                    if crate::model::validate_trail_name(&trail).is_ok() =>
                {
                    if wanted(&trail) {
                        let (run, batch) = self.run_of(&mut runs, &trail);
                        run.push_batch(std::mem::take(batch))?;
                        run.push_undecodable(seq, &reason)?;
                    }
                    continue;
                }
                Err(StoreError::MalformedExport { line, reason }) => {
                    match current.clone() {
                        Some(trail) => {
                            let (run, batch) = self.run_of(&mut runs, &trail);
                            run.push_batch(std::mem::take(batch))?;
                            let seq = run.next_expected_seq();
                            run.push_undecodable(seq, &export_line(line, &reason))?;
                        }
                        None => orphans.push((line, reason)),
                    }
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            if crate::model::validate_trail_name(&entry.trail).is_err() {
                let name = entry.trail.clone();
                rejected
                    .entry(name.clone())
                    .or_insert_with(|| invalid_trail_report(&name));
                continue;
            }
            if !wanted(&entry.trail) {
                continue;
            }
            // An export holds its trails one after the other: checking a
            // trail's partial batch when the next trail begins keeps one
            // batch waiting, not one per trail.
            if current.as_deref() != Some(entry.trail.as_str()) {
                if let Some((run, batch)) = current.as_ref().and_then(|name| runs.get_mut(name)) {
                    run.push_batch(std::mem::take(batch))?;
                }
                current = Some(entry.trail.clone());
                let (run, _) = self.run_of(&mut runs, &entry.trail);
                for (line, reason) in orphans.drain(..) {
                    run.push_undecodable(0, &export_line(line, &reason))?;
                }
            }
            let (run, batch) = self.run_of(&mut runs, &entry.trail);
            batch.push(entry);
            if batch.len() >= VERIFY_BATCH {
                run.push_batch(std::mem::take(batch))?;
            }
        }
        if runs.is_empty() && rejected.is_empty() && !orphans.is_empty() {
            let (line, reason) = &orphans[0];
            return Err(StoreError::MalformedExport {
                line: *line,
                reason: reason.clone(),
            }
            .into());
        }
        for trail in self.checkpoints.keys().filter(|trail| wanted(trail)) {
            self.run_of(&mut runs, trail);
        }
        let mut reports: BTreeMap<String, TrailReport> = rejected;
        for (name, (mut run, batch)) in runs {
            run.push_batch(batch)?;
            reports.insert(name, run.finish()?);
        }
        Ok(reports.into_values().collect())
    }

    fn run_of<'a, 'r>(
        &'a self,
        runs: &'r mut BTreeMap<String, (TrailVerification<'a>, Vec<Entry>)>,
        trail: &str,
    ) -> &'r mut (TrailVerification<'a>, Vec<Entry>) {
        runs.entry(trail.to_owned())
            .or_insert_with(|| (self.start(trail), Vec::new()))
    }

    /// Verifies one trail of a store, with the projection snapshots its
    /// retention records commit to.
    pub async fn verify_trail(
        &self,
        store: &dyn Store,
        trail: &str,
    ) -> Result<TrailReport, VerifyError> {
        if crate::model::validate_trail_name(trail).is_err() {
            return Ok(invalid_trail_report(trail));
        }
        let mut report = self
            .verify_stored_stream(trail, store.scan_stored(trail, 0))
            .await?;
        self.check_snapshots(store, &mut report).await?;
        Ok(report)
    }

    /// Compares the projection snapshots stored next to a verified trail
    /// with the digests its retention records state (see
    /// [`TrailReport::snapshots`]): the newest snapshot of each projection
    /// must be stored and match; older ones are checked while still stored.
    /// [`Verifier::verify_trail`] does this itself; call it after
    /// [`Verifier::verify_stored_stream`] on a store's scan.
    pub async fn check_snapshots(
        &self,
        store: &dyn Store,
        report: &mut TrailReport,
    ) -> Result<(), StoreError> {
        let mut newest: HashMap<String, u64> = HashMap::new();
        for notice in &report.snapshots {
            let seq = newest.entry(notice.name.clone()).or_default();
            *seq = (*seq).max(notice.upto_seq);
        }
        let mut findings = Vec::new();
        for notice in &mut report.snapshots {
            let stored = store
                .snapshot(&report.trail, &notice.name, Some(notice.upto_seq))
                .await?;
            let is_newest = newest.get(&notice.name) == Some(&notice.upto_seq);
            let problem = match stored {
                Some(snapshot) if snapshot.digest() == notice.digest => {
                    notice.matches = Some(true);
                    continue;
                }
                Some(_) => "differs from the digest its retention record states",
                None if is_newest => "is not stored, though its retention record commits to it",
                None => continue,
            };
            notice.matches = Some(false);
            findings.push(Finding::new(
                report.trail.clone(),
                notice.record,
                None,
                FindingKind::SnapshotMismatch,
                format!(
                    "the snapshot of projection {} up to seq {} {problem}",
                    crate::model::escape_text(&notice.name),
                    notice.upto_seq
                ),
            ));
        }
        report.findings.extend(findings);
        report.findings.sort_by_key(|finding| finding.seq);
        Ok(())
    }

    /// Verifies a stream of one trail's entries in stored order.
    pub async fn verify_stream<S>(
        &self,
        trail: &str,
        entries: S,
    ) -> Result<TrailReport, VerifyError>
    where
        S: Stream<Item = Result<Entry, StoreError>>,
    {
        self.verify_stored_stream(trail, entries.map(|item| item.map(StoredEntry::new)))
            .await
    }

    /// Verifies a stream of one trail's entries in stored order, each with
    /// what its store keeps beside it ([`Store::scan_stored`]): the copies
    /// of body values kept for queries must agree with the sealed body.
    pub async fn verify_stored_stream<S>(
        &self,
        trail: &str,
        entries: S,
    ) -> Result<TrailReport, VerifyError>
    where
        S: Stream<Item = Result<StoredEntry, StoreError>>,
    {
        if crate::model::validate_trail_name(trail).is_err() {
            return Ok(invalid_trail_report(trail));
        }
        let mut entries = std::pin::pin!(entries.ready_chunks(VERIFY_BATCH));
        let mut run = self.start(trail);
        while let Some(chunk) = entries.next().await {
            let mut batch = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(stored) => batch.push(stored),
                    // A row damaged beyond decoding is tampering to report,
                    // not a reason to stop reading.
                    Err(StoreError::Corrupt { seq, reason, .. }) => {
                        run.push_stored_batch(std::mem::take(&mut batch))?;
                        run.push_undecodable(seq, &reason)?;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            run.push_stored_batch(batch)?;
        }
        run.finish()
    }

    /// Starts a verification that is fed entries one by one.
    pub fn start(&self, trail: &str) -> TrailVerification<'_> {
        TrailVerification::new(self, trail)
    }
}

/// The report of a name a store or export holds entries under that is no
/// trail name: no writer makes such a trail, so its entries were put there.
fn invalid_trail_report(name: &str) -> TrailReport {
    let mut report = TrailReport::of(name);
    report.push(
        0,
        None,
        FindingKind::Forged,
        "entries are stored under this name, which is no valid trail name: no writer makes such a trail".into(),
    );
    report
}

/// A finding's message for a line of an export that could not be read.
fn export_line(line: u64, reason: &str) -> String {
    format!("line {line} of the export: {reason}")
}
