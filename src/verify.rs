//! The verifier: proves a trail intact or names each entry that was changed,
//! removed, reordered, duplicated, forged or backdated.
//!
//! Verification streams: entries are checked as they arrive, with a bounded
//! window for entries stored out of order, so memory does not grow with the
//! trail.

use std::collections::{BTreeMap, HashMap, VecDeque, btree_map};
use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::entry::{Entry, EntryKind};
use crate::retention::ledger::{Ledger, Outcome};
use crate::seal::{
    Digest, EpochKey, KeyDeriver, Mac, MacInput, VerificationKey, body_commitment,
    format_timestamp, genesis_fields, genesis_prev_mac, seal_fields,
};
use crate::store::{EpochSummary, Store, counts_in_epoch};
use crate::{KeyError, StoreError};

/// How many entries may arrive out of seq order before the gap is reported
/// as missing entries.
pub const DEFAULT_REORDER_WINDOW: usize = 4096;

/// How many entries are read before a suspected wrong key is reported.
const KEY_PROBE_ENTRIES: u64 = 16;

/// Entries checked in parallel at once.
const VERIFY_BATCH: usize = 4096;

/// How far from the expected seq a renumbered entry is searched for.
const RENUMBER_SEARCH: u64 = 8;

/// What is wrong, as data a caller can match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A stored field was changed: the entry no longer matches its MAC.
    Modified,
    /// Entries are absent from the trail.
    Missing,
    /// An entry is stored out of order or under another seq than it was
    /// sealed with.
    Reordered,
    /// The same entry is stored twice.
    Duplicated,
    /// An entry that no key sealed was inserted.
    Forged,
    /// Two different sealed entries claim the same seq, or an entry does not
    /// follow the entry before it: the trail was forked or spliced.
    Forked,
    /// An epoch ended without a valid seal.
    UnsealedEpoch,
    /// An epoch seal does not match the entries it closes.
    SealMismatch,
    /// A timestamp goes backwards or lies outside its epoch.
    Backdated,
    /// The entry names a key id no given verification key has.
    UnknownKey,
    /// Seq 0 is not a genesis entry for this trail.
    InvalidGenesis,
    /// The trail ends before a checkpoint's head: entries were cut off the
    /// tail.
    Truncated,
    /// The entry at a checkpoint's head is not the one the checkpoint names:
    /// the trail was rolled back to an older copy, or forked.
    CheckpointMismatch,
    /// A retention record explains a deletion it had no right to: entries
    /// younger than its cutoff or the minimum retention, or under a legal
    /// hold in force; or the record cannot be read.
    RetentionViolation,
    /// A personal field was erased, but no redaction record names it.
    UnrecordedRedaction,
    /// A projection snapshot differs from the digest its retention record
    /// states, or the newest one is gone.
    SnapshotMismatch,
}

impl FindingKind {
    /// The stable name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Modified => "modified",
            FindingKind::Missing => "missing",
            FindingKind::Reordered => "reordered",
            FindingKind::Duplicated => "duplicated",
            FindingKind::Forged => "forged",
            FindingKind::Forked => "forked",
            FindingKind::UnsealedEpoch => "unsealed_epoch",
            FindingKind::SealMismatch => "seal_mismatch",
            FindingKind::Backdated => "backdated",
            FindingKind::UnknownKey => "unknown_key",
            FindingKind::InvalidGenesis => "invalid_genesis",
            FindingKind::Truncated => "truncated",
            FindingKind::CheckpointMismatch => "checkpoint_mismatch",
            FindingKind::RetentionViolation => "retention_violation",
            FindingKind::UnrecordedRedaction => "unrecorded_redaction",
            FindingKind::SnapshotMismatch => "snapshot_mismatch",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the verifier found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The trail.
    pub trail: String,
    /// The seq concerned (the first of a range).
    pub seq: u64,
    /// The last seq of a range, for findings about several entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_end: Option<u64>,
    /// What is wrong.
    pub kind: FindingKind,
    /// A plain explanation.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq_end {
            Some(end) if end != self.seq => write!(f, "{}#{}..{}", self.trail, self.seq, end)?,
            _ => write!(f, "{}#{}", self.trail, self.seq)?,
        }
        write!(f, " {}: {}", self.kind, self.detail)
    }
}

/// The result of verifying one trail. Findings are data, not errors: a run
/// that finds tampering succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrailReport {
    /// The trail.
    pub trail: String,
    /// Entries read.
    pub entries: u64,
    /// Lowest and highest seq read.
    pub seq_range: Option<(u64, u64)>,
    /// Lowest and highest epoch read.
    pub epoch_range: Option<(u64, u64)>,
    /// Entries whose MAC verified.
    pub authentic: u64,
    /// Epoch seals that verified and matched their epoch.
    pub seals_verified: u64,
    /// Checkpoints whose head was found, authentic and unchanged.
    pub checkpoints_verified: u64,
    /// The newest entry of the chain, when its MAC verified: what a
    /// checkpoint of this trail states.
    pub head: Option<ReportHead>,
    /// Entries deleted by retention, as the trail's retention records
    /// prove: information, not findings.
    #[serde(skip_serializing_if = "is_zero")]
    pub pruned: u64,
    /// Erased personal fields (per entry and field) that redaction records
    /// name: information, not findings.
    #[serde(skip_serializing_if = "is_zero")]
    pub redacted: u64,
    /// Each range deleted by retention, with the record that explains it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned_ranges: Vec<PrunedNotice>,
    /// Projection snapshots that retention records commit to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotNotice>,
    /// Everything found wrong, in seq order.
    pub findings: Vec<Finding>,
}

/// A range of entries that retention deleted, and the record that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PrunedNotice {
    /// First deleted seq.
    pub first: u64,
    /// Last deleted seq.
    pub last: u64,
    /// Seq of the retention record.
    pub record: u64,
}

/// A projection snapshot a retention record commits to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotNotice {
    /// Seq of the retention record.
    pub record: u64,
    /// The projection's name.
    pub name: String,
    /// The last seq the snapshot covers.
    pub upto_seq: u64,
    /// The digest the record states ([`crate::retention::Snapshot::digest`]).
    pub digest: Digest,
    /// Whether the stored snapshot was found and matched the record
    /// (`None`: not checked, e.g. when verifying an export, or a snapshot
    /// superseded by a newer one and no longer stored).
    pub matches: Option<bool>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The newest authentic entry of a verified trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ReportHead {
    /// Its seq.
    pub seq: u64,
    /// Its MAC.
    pub mac: Mac,
}

impl TrailReport {
    /// A checkpoint of the verified head, to export off the machine.
    pub fn checkpoint(&self, time: DateTime<Utc>) -> Option<Checkpoint> {
        self.head.map(|head| Checkpoint {
            trail: self.trail.clone(),
            next_seq: head.seq + 1,
            head_mac: head.mac,
            time: crate::seal::truncate_to_micros(time),
        })
    }

    /// Whether nothing was found wrong.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// Findings of one kind.
    pub fn findings_of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |finding| finding.kind == kind)
    }

    /// Number of findings per kind.
    pub fn counts(&self) -> BTreeMap<FindingKind, usize> {
        let mut counts = BTreeMap::new();
        for finding in &self.findings {
            *counts.entry(finding.kind).or_default() += 1;
        }
        counts
    }
}

impl fmt::Display for TrailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trail {}: {} entries", self.trail, self.entries)?;
        if let Some((first, last)) = self.seq_range {
            write!(f, ", seq {first}..={last}")?;
        }
        if let Some((first, last)) = self.epoch_range {
            write!(f, ", epochs {first}..={last}")?;
        }
        writeln!(
            f,
            ", {} MACs and {} epoch seals verified",
            self.authentic, self.seals_verified
        )?;
        if self.pruned > 0 || self.redacted > 0 {
            writeln!(
                f,
                "  retention: {} entries deleted in {} ranges and {} erased fields, each named by a sealed record",
                self.pruned,
                self.pruned_ranges.len(),
                self.redacted
            )?;
        }
        if self.findings.is_empty() {
            writeln!(f, "  intact")?;
        }
        for finding in &self.findings {
            // Details quote stored data; escaping keeps it from forging lines.
            writeln!(f, "  {}", crate::event::escape_text(&finding.to_string()))?;
        }
        Ok(())
    }
}

/// Why a verification could not run at all (as opposed to findings).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The key does not fit the trail.
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
    checkpoints: HashMap<String, Vec<Checkpoint>>,
    reorder_window: usize,
    minimum_retention: chrono::Duration,
    trail_minimum_retention: HashMap<String, chrono::Duration>,
}

/// The youngest age at which a verifier accepts that retention deleted an
/// entry, unless told otherwise: the 7 days log data is kept.
pub const DEFAULT_MINIMUM_RETENTION_DAYS: i64 = 7;

impl Verifier {
    /// A verifier with one key.
    pub fn new(key: VerificationKey) -> Self {
        Self {
            keys: [(key.key_id().to_owned(), key)].into_iter().collect(),
            checkpoints: HashMap::new(),
            reorder_window: DEFAULT_REORDER_WINDOW,
            minimum_retention: chrono::Duration::days(DEFAULT_MINIMUM_RETENTION_DAYS),
            trail_minimum_retention: HashMap::new(),
        }
    }

    /// The youngest age at which retention may delete entries of any trail
    /// (default [`DEFAULT_MINIMUM_RETENTION_DAYS`]): a retention record
    /// that deleted younger entries, counted from the record's own time, is
    /// a [`FindingKind::RetentionViolation`]. This is what stops a thief of
    /// the current key from passing off a fresh deletion as retention.
    pub fn minimum_retention(mut self, age: chrono::Duration) -> Self {
        self.minimum_retention = age;
        self
    }

    /// The minimum retention of one trail, overriding
    /// [`Verifier::minimum_retention`].
    pub fn trail_minimum_retention(
        mut self,
        trail: impl Into<String>,
        age: chrono::Duration,
    ) -> Self {
        self.trail_minimum_retention.insert(trail.into(), age);
        self
    }

    /// Adds another key (e.g. the one before a rotation).
    pub fn with_key(mut self, key: VerificationKey) -> Self {
        self.keys.insert(key.key_id().to_owned(), key);
        self
    }

    /// Checks the trail against an exported checkpoint: the entry the
    /// checkpoint names must be present and unchanged, and the trail must
    /// not end before it.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoints
            .entry(checkpoint.trail.clone())
            .or_default()
            .push(checkpoint);
        self
    }

    /// How many entries may arrive out of order before a gap counts as
    /// missing entries.
    pub fn reorder_window(mut self, window: usize) -> Self {
        self.reorder_window = window.max(1);
        self
    }

    /// Verifies every trail of a store.
    pub async fn verify_store(&self, store: &dyn Store) -> Result<Vec<TrailReport>, VerifyError> {
        let mut reports = Vec::new();
        for trail in store.trails().await? {
            reports.push(self.verify_trail(store, &trail).await?);
        }
        Ok(reports)
    }

    /// Verifies the entries of an export (e.g. [`crate::JsonLinesReader`]),
    /// trail by trail, whatever order the trails come in; only the named
    /// trails when `trails` is not empty. Reports come in trail name order.
    pub fn verify_entries(
        &self,
        entries: impl Iterator<Item = Result<Entry, StoreError>>,
        trails: &[String],
    ) -> Result<Vec<TrailReport>, VerifyError> {
        let mut runs: BTreeMap<String, (TrailVerification<'_>, Vec<Entry>)> = BTreeMap::new();
        let mut previous_trail: Option<String> = None;
        for entry in entries {
            let entry = entry?;
            if !trails.is_empty() && !trails.contains(&entry.trail) {
                continue;
            }
            // An export holds its trails one after the other: checking a
            // trail's partial batch when the next trail begins keeps one
            // batch waiting, not one per trail.
            if previous_trail.as_deref() != Some(entry.trail.as_str()) {
                if let Some((run, batch)) = previous_trail.and_then(|name| runs.get_mut(&name)) {
                    run.push_batch(std::mem::take(batch))?;
                }
                previous_trail = Some(entry.trail.clone());
            }
            let (run, batch) = match runs.get_mut(&entry.trail) {
                Some(run) => run,
                None => {
                    crate::validate_trail_name(&entry.trail).map_err(|_| StoreError::Corrupt {
                        trail: crate::escape_text(&entry.trail).into_owned(),
                        seq: entry.seq,
                        reason: "invalid trail name".into(),
                    })?;
                    runs.entry(entry.trail.clone())
                        .or_insert_with(|| (self.start(&entry.trail), Vec::new()))
                }
            };
            batch.push(entry);
            if batch.len() >= VERIFY_BATCH {
                run.push_batch(std::mem::take(batch))?;
            }
        }
        runs.into_values()
            .map(|(mut run, batch)| {
                run.push_batch(batch)?;
                run.finish()
            })
            .collect()
    }

    /// Verifies one trail of a store.
    pub async fn verify_trail(
        &self,
        store: &dyn Store,
        trail: &str,
    ) -> Result<TrailReport, VerifyError> {
        let mut report = self.verify_stream(trail, store.scan(trail, 0)).await?;
        self.check_snapshots(store, &mut report).await?;
        Ok(report)
    }

    /// Compares the projection snapshots stored next to a verified trail
    /// with the digests its retention records state (see
    /// [`TrailReport::snapshots`]): the newest snapshot of each projection
    /// must be stored and match; older ones are checked while still stored.
    /// [`Verifier::verify_trail`] does this itself; call it after
    /// [`Verifier::verify_stream`] on a store's scan.
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
            findings.push(Finding {
                trail: report.trail.clone(),
                seq: notice.record,
                seq_end: None,
                kind: FindingKind::SnapshotMismatch,
                detail: format!(
                    "the snapshot of projection {} up to seq {} {problem}",
                    crate::event::escape_text(&notice.name),
                    notice.upto_seq
                ),
            });
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
        let mut entries = std::pin::pin!(entries.ready_chunks(VERIFY_BATCH));
        let mut run = self.start(trail);
        while let Some(chunk) = entries.next().await {
            let mut batch = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(entry) => batch.push(entry),
                    // A row damaged beyond decoding is tampering to report,
                    // not a reason to stop reading.
                    Err(StoreError::Corrupt { seq, reason, .. }) => {
                        run.push_batch(std::mem::take(&mut batch))?;
                        run.push_undecodable(seq, &reason)?;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            run.push_batch(batch)?;
        }
        run.finish()
    }

    /// Starts a verification that is fed entries one by one.
    pub fn start(&self, trail: &str) -> TrailVerification<'_> {
        TrailVerification {
            verifier: self,
            trail: trail.to_owned(),
            derivers: HashMap::new(),
            report: TrailReport {
                trail: trail.to_owned(),
                ..TrailReport::default()
            },
            checked_key: false,
            key_suspicion: None,
            slots: BTreeMap::new(),
            buffered: 0,
            next_seq: 0,
            highest_arrived: None,
            known_macs: HashMap::default(),
            processed_macs: VecDeque::new(),
            previous: None,
            epochs: EpochTracker::default(),
            checkpoints: self
                .checkpoints
                .get(trail)
                .into_iter()
                .flatten()
                .filter(|checkpoint| checkpoint.next_seq > 0)
                .cloned()
                .collect(),
            undecodable: std::collections::BTreeSet::new(),
            ledger: Ledger::default(),
            prechecked: Vec::new(),
        }
    }
}

/// The order-independent part of checking an entry, done in parallel.
#[derive(Clone, Copy, Debug)]
enum Precheck {
    /// The entry names another trail.
    OtherTrail,
    /// No key with the entry's key id.
    UnknownKey,
    /// MAC over the stored header, and body against its commitment.
    Checked { mac_ok: bool, body_ok: bool },
}

/// The epoch keys a batch needs, by key id and epoch. A batch spans one or
/// two epochs, so a short list is searched faster than a map is hashed, and
/// without copying the key id of every entry.
type BatchKeys = Vec<(String, u64, EpochKey)>;

fn batch_key<'k>(keys: &'k BatchKeys, key_id: &str, epoch: u64) -> Option<&'k EpochKey> {
    keys.iter()
        .find(|(id, key_epoch, _)| *key_epoch == epoch && id == key_id)
        .map(|(_, _, key)| key)
}

fn precheck(trail: &str, entry: &Entry, keys: &BatchKeys) -> Precheck {
    // The MAC binds the trail name; an entry moved in from another trail
    // cannot verify here.
    if entry.trail != trail {
        return Precheck::OtherTrail;
    }
    let Some(key) = batch_key(keys, &entry.key_id, entry.epoch) else {
        return Precheck::UnknownKey;
    };
    let mac = key.mac(&MacInput {
        trail,
        ..entry.mac_input()
    });
    Precheck::Checked {
        mac_ok: mac == entry.mac,
        body_ok: body_commitment(&entry.body) == entry.body_commitment,
    }
}

/// How an entry's MAC turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// MAC and body commitment verify.
    Authentic,
    /// Sealed as another seq than it is stored under.
    Renumbered { stored: u64 },
    /// The MAC verifies but the body does not match its commitment.
    BodyModified,
    /// The MAC does not verify under any candidate seq.
    Unauthentic,
    /// No key with the entry's key id.
    UnknownKey,
}

impl Status {
    fn is_sealed(self) -> bool {
        matches!(self, Status::Authentic | Status::Renumbered { .. })
    }
}

struct Item {
    entry: Entry,
    status: Status,
    /// The seq it was sealed as (its stored seq when that cannot be known).
    identity: u64,
}

/// The entries stored for one seq: usually one, more when rows were
/// duplicated, forked or forged.
struct Slot {
    first: Item,
    more: Vec<Item>,
}

/// What the chain check remembers of the entry before.
#[derive(Clone, Copy)]
struct Previous {
    seq: u64,
    /// `None` when that entry's MAC did not verify: its real MAC is unknown.
    mac: Option<Mac>,
    recorded_at: DateTime<Utc>,
    epoch: u64,
}

#[derive(Default)]
struct EpochTracker {
    /// The oldest epoch without a seal so far.
    next_unsealed: Option<u64>,
    /// The epoch being counted and what was seen of it.
    counting: Option<u64>,
    seen: EpochSummary,
}

/// A verification in progress; feed it with [`TrailVerification::push`].
pub struct TrailVerification<'v> {
    verifier: &'v Verifier,
    trail: String,
    derivers: HashMap<String, KeyDeriver<'v>>,
    report: TrailReport,
    checked_key: bool,
    key_suspicion: Option<KeyError>,
    /// Entries waiting for their turn, by the seq they were sealed as.
    slots: BTreeMap<u64, Slot>,
    buffered: usize,
    /// The next seq to check the chain at.
    next_seq: u64,
    highest_arrived: Option<u64>,
    /// MACs of sealed entries seen recently, to find renumbered entries.
    /// Only MACs that verified are keys, and no one without the key can
    /// choose those, so a fast hash is safe here.
    known_macs: HashMap<Mac, u64, foldhash::fast::RandomState>,
    /// MACs of recently checked slots in seq order, to tell duplicates from
    /// forks.
    processed_macs: VecDeque<(u64, Option<Mac>)>,
    previous: Option<Previous>,
    epochs: EpochTracker,
    /// Checkpoints not yet matched against the trail.
    checkpoints: Vec<Checkpoint>,
    /// Seqs whose stored entry could not be decoded.
    undecodable: std::collections::BTreeSet<u64>,
    /// Gaps, erasures and seals waiting for the trail's retention records.
    ledger: Ledger,
    /// The last batch, MACs computed, waiting for its in-order checks.
    prechecked: Vec<(Entry, Precheck)>,
}

impl TrailVerification<'_> {
    /// Checks the next entry in stored order.
    pub fn push(&mut self, entry: Entry) -> Result<(), VerifyError> {
        self.settle_prechecked()?;
        let keys = self.epoch_keys_for(std::slice::from_ref(&entry));
        let precheck = precheck(&self.trail, &entry, &keys);
        self.push_checked(entry, precheck)
    }

    /// Checks the next entries in stored order. MACs and body commitments
    /// are computed in parallel on all cores; links, order and epochs are
    /// then checked in order.
    ///
    /// The in-order part of a batch runs while the next batch's MACs are
    /// computed, so a batch may still be pending when this returns;
    /// [`TrailVerification::finish`] settles it.
    pub fn push_batch(&mut self, entries: Vec<Entry>) -> Result<(), VerifyError> {
        use rayon::prelude::*;
        let keys = self.epoch_keys_for(&entries);
        let trail = self.trail.clone();
        let pending = std::mem::take(&mut self.prechecked);
        let (prechecks, settled) = rayon::join(
            || -> Vec<Precheck> {
                entries
                    .par_iter()
                    .with_min_len(64)
                    .map(|entry| precheck(&trail, entry, &keys))
                    .collect()
            },
            || self.push_all_checked(pending),
        );
        self.prechecked = entries.into_iter().zip(prechecks).collect();
        settled
    }

    /// Runs the in-order checks of the batch whose MACs are computed.
    fn settle_prechecked(&mut self) -> Result<(), VerifyError> {
        let pending = std::mem::take(&mut self.prechecked);
        self.push_all_checked(pending)
    }

    fn push_all_checked(&mut self, checked: Vec<(Entry, Precheck)>) -> Result<(), VerifyError> {
        for (entry, precheck) in checked {
            self.push_checked(entry, precheck)?;
        }
        Ok(())
    }

    /// The epoch keys a batch needs, derived in order (cheap: forward from
    /// the last derived one) so that the parallel checks only look them up.
    fn epoch_keys_for(&mut self, entries: &[Entry]) -> BatchKeys {
        let mut keys = BatchKeys::new();
        for entry in entries {
            if batch_key(&keys, &entry.key_id, entry.epoch).is_some() {
                continue;
            }
            if let Some(key) = self.verifier.keys.get(&entry.key_id) {
                let deriver = self
                    .derivers
                    .entry(entry.key_id.clone())
                    .or_insert_with(|| key.deriver());
                keys.push((
                    entry.key_id.clone(),
                    entry.epoch,
                    deriver.epoch_key(entry.epoch),
                ));
            }
        }
        keys
    }

    fn push_checked(&mut self, entry: Entry, precheck: Precheck) -> Result<(), VerifyError> {
        if !self.checked_key {
            self.suspect_key(&entry);
        }
        self.count(&entry);
        let (status, identity) = self.authenticate(&entry, precheck);
        if status.is_sealed() {
            self.known_macs.insert(entry.mac, identity);
        }
        if let Status::Renumbered { stored } = status {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!("the entry sealed as seq {identity} is stored as seq {stored}"),
            );
        } else if status.is_sealed()
            && self
                .highest_arrived
                .is_some_and(|highest| identity < highest)
        {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!(
                    "stored after seq {}, which follows it in the chain",
                    self.highest_arrived.unwrap_or_default()
                ),
            );
        }
        if status.is_sealed() {
            self.highest_arrived = Some(self.highest_arrived.map_or(identity, |h| h.max(identity)));
        }

        if identity < self.next_seq {
            self.late_arrival(Item {
                entry,
                status,
                identity,
            });
        } else {
            let item = Item {
                entry,
                status,
                identity,
            };
            match self.slots.entry(identity) {
                btree_map::Entry::Vacant(slot) => {
                    slot.insert(Slot {
                        first: item,
                        more: Vec::new(),
                    });
                }
                btree_map::Entry::Occupied(mut slot) => slot.get_mut().more.push(item),
            }
            self.buffered += 1;
            self.drain(false);
        }
        self.confirm_key(false)
    }

    /// Records that the stored entry at `seq` could not even be decoded
    /// (e.g. its kind or body was overwritten with garbage). Fails only as
    /// [`TrailVerification::push`] does, when the entries before it show
    /// that the verification key is wrong.
    pub fn push_undecodable(&mut self, seq: u64, reason: &str) -> Result<(), VerifyError> {
        self.settle_prechecked()?;
        self.report.entries += 1;
        self.undecodable.insert(seq);
        let detail = format!(
            "the stored entry cannot be decoded: {}",
            crate::event::escape_text(reason)
        );
        self.finding(seq, None, FindingKind::Modified, detail);
        Ok(())
    }

    /// Finishes the verification and returns the report.
    pub fn finish(mut self) -> Result<TrailReport, VerifyError> {
        self.settle_prechecked()?;
        self.confirm_key(true)?;
        self.drain(true);
        let outcomes = self.ledger.finish(|first, last| {
            if first == last {
                format!("entry {first} is missing")
            } else {
                format!("entries {first} to {last} are missing")
            }
        });
        self.apply(outcomes);
        self.report.pruned = self.ledger.pruned;
        self.report.redacted = self.ledger.redacted;
        self.report.snapshots = std::mem::take(&mut self.ledger.snapshots)
            .into_iter()
            .map(|(record, snapshot)| SnapshotNotice {
                record,
                name: snapshot.name,
                upto_seq: snapshot.upto_seq,
                digest: snapshot.digest,
                matches: None,
            })
            .collect();
        for checkpoint in std::mem::take(&mut self.checkpoints) {
            let detail = format!(
                "the trail ends before seq {}, but the checkpoint of {} says it had {} entries",
                checkpoint.next_seq - 1,
                format_timestamp(checkpoint.time),
                checkpoint.next_seq
            );
            self.finding(
                self.next_seq,
                Some(checkpoint.next_seq - 1),
                FindingKind::Truncated,
                detail,
            );
        }
        self.report.head = self.previous.and_then(|previous| {
            previous.mac.map(|mac| ReportHead {
                seq: previous.seq,
                mac,
            })
        });
        // Gaps and seals are settled late; report everything in seq order.
        self.report.findings.sort_by_key(|finding| finding.seq);
        Ok(self.report)
    }

    fn apply(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            match outcome {
                Outcome::Finding {
                    seq,
                    seq_end,
                    kind,
                    detail,
                } => self.finding(seq, seq_end, kind, detail),
                Outcome::Pruned {
                    first,
                    last,
                    record,
                } => self.report.pruned_ranges.push(PrunedNotice {
                    first,
                    last,
                    record,
                }),
                Outcome::SealVerified => self.report.seals_verified += 1,
            }
        }
    }

    /// Compares the entry checked at `seq` with the checkpoints naming it.
    fn check_checkpoints(&mut self, seq: u64, mac: Option<Mac>) {
        let (matching, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checkpoints)
            .into_iter()
            .partition(|checkpoint| checkpoint.next_seq - 1 <= seq);
        self.checkpoints = rest;
        for checkpoint in matching {
            if checkpoint.next_seq - 1 == seq && mac == Some(checkpoint.head_mac) {
                self.report.checkpoints_verified += 1;
                continue;
            }
            let detail = format!(
                "the checkpoint of {} names another entry at seq {}: the trail was rolled back to an older copy or forked",
                format_timestamp(checkpoint.time),
                checkpoint.next_seq - 1
            );
            self.finding(
                checkpoint.next_seq - 1,
                None,
                FindingKind::CheckpointMismatch,
                detail,
            );
        }
    }

    /// A wrong verification key is one clear error, not a finding on every
    /// entry. The first entry raises the suspicion (an unknown key id, or a
    /// genesis whose recorded key check differs from the key's); it becomes
    /// the error only if none of the first entries verifies either, so that
    /// tampering with the genesis alone is still reported as a finding.
    fn suspect_key(&mut self, entry: &Entry) {
        self.checked_key = true;
        let Some(key) = self.verifier.keys.get(&entry.key_id) else {
            self.key_suspicion = Some(KeyError::UnknownKey {
                trail: self.trail.clone(),
                key_id: crate::event::escape_text(&entry.key_id).into_owned(),
            });
            return;
        };
        let recorded_check = entry
            .value(genesis_fields::KEY_CHECK)
            .and_then(|hex| Digest::from_hex(hex).ok());
        if entry.kind == EntryKind::Genesis
            && recorded_check.is_some_and(|check| check != key.check_value())
        {
            self.key_suspicion = Some(KeyError::WrongKey {
                trail: self.trail.clone(),
                key_id: key.key_id().to_owned(),
            });
        }
    }

    fn confirm_key(&mut self, finished: bool) -> Result<(), VerifyError> {
        if self.report.authentic > 0 {
            self.key_suspicion = None;
        }
        if (finished || self.report.entries >= KEY_PROBE_ENTRIES)
            && let Some(err) = self.key_suspicion.take()
        {
            return Err(err.into());
        }
        Ok(())
    }

    fn count(&mut self, entry: &Entry) {
        let report = &mut self.report;
        report.entries += 1;
        report.seq_range = Some(report.seq_range.map_or((entry.seq, entry.seq), |(lo, hi)| {
            (lo.min(entry.seq), hi.max(entry.seq))
        }));
        report.epoch_range = Some(
            report
                .epoch_range
                .map_or((entry.epoch, entry.epoch), |(lo, hi)| {
                    (lo.min(entry.epoch), hi.max(entry.epoch))
                }),
        );
    }

    fn mac_of(&mut self, entry: &Entry, seq: u64) -> Option<Mac> {
        let key = self.verifier.keys.get(&entry.key_id)?;
        let deriver = self
            .derivers
            .entry(entry.key_id.clone())
            .or_insert_with(|| key.deriver());
        let epoch_key = deriver.epoch_key(entry.epoch);
        Some(epoch_key.mac(&MacInput {
            trail: &self.trail,
            seq,
            ..entry.mac_input()
        }))
    }

    /// Decides whether the entry is what some key sealed, and as which seq.
    fn authenticate(&mut self, entry: &Entry, precheck: Precheck) -> (Status, u64) {
        match precheck {
            Precheck::OtherTrail => return (Status::Unauthentic, entry.seq),
            Precheck::UnknownKey => return (Status::UnknownKey, entry.seq),
            Precheck::Checked {
                mac_ok: true,
                body_ok,
            } => {
                return if body_ok {
                    self.report.authentic += 1;
                    (Status::Authentic, entry.seq)
                } else {
                    (Status::BodyModified, entry.seq)
                };
            }
            Precheck::Checked { mac_ok: false, .. } => {}
        }
        // Maybe an authentic entry moved to another seq (rows swapped or
        // renumbered): try the seq its link names, then the neighbourhood.
        let linked = if entry.prev_mac == genesis_prev_mac(&self.trail) {
            Some(0)
        } else {
            self.known_macs.get(&entry.prev_mac).map(|seq| seq + 1)
        };
        let window =
            self.next_seq.saturating_sub(RENUMBER_SEARCH)..=self.next_seq + RENUMBER_SEARCH;
        for candidate in linked.into_iter().chain(window) {
            if candidate != entry.seq
                && self.mac_of(entry, candidate) == Some(entry.mac)
                && body_commitment(&entry.body) == entry.body_commitment
            {
                self.report.authentic += 1;
                return (Status::Renumbered { stored: entry.seq }, candidate);
            }
        }
        (Status::Unauthentic, entry.seq)
    }

    /// An entry for a seq whose turn has passed: a duplicate, a fork or an
    /// inserted entry.
    fn late_arrival(&mut self, item: Item) {
        let seq = item.identity;
        let earlier = self
            .processed_macs
            .binary_search_by_key(&seq, |(processed, _)| *processed)
            .ok()
            .and_then(|at| self.processed_macs[at].1);
        match item.status {
            status if status.is_sealed() && earlier == Some(item.entry.mac) => self.finding(
                seq,
                None,
                FindingKind::Duplicated,
                "the same entry is stored a second time".into(),
            ),
            status if status.is_sealed() => self.finding(
                seq,
                None,
                FindingKind::Forked,
                "a second, different sealed entry claims this seq".into(),
            ),
            Status::UnknownKey => self.unknown_key(&item),
            _ => self.finding(
                seq,
                None,
                FindingKind::Forged,
                "an entry that no key sealed is stored in addition to this seq".into(),
            ),
        }
    }

    /// Checks slots in seq order as far as it is safe to: a slot is checked
    /// once a later entry has arrived (so an inserted entry and the real one
    /// can be told apart), and a gap is declared missing once the reorder
    /// window is full or the stream ended.
    fn drain(&mut self, finished: bool) {
        loop {
            let Some((&lowest, _)) = self.slots.first_key_value() else {
                return;
            };
            let later_arrived = self.slots.len() > 1;
            // Undecodable entries were reported already; their seqs are not
            // missing.
            while lowest > self.next_seq && self.undecodable.remove(&self.next_seq) {
                // Counted where it stands, like any entry that fails its MAC:
                // in the epoch being counted, or else the next one to seal.
                let epochs = &mut self.epochs;
                if epochs.counting.is_none() {
                    epochs.counting = epochs.next_unsealed;
                }
                if epochs.counting.is_some() {
                    epochs.seen.count += 1;
                }
                self.next_seq += 1;
                self.previous = None;
            }
            if lowest > self.next_seq {
                if !finished && self.buffered < self.verifier.reorder_window {
                    return;
                }
                // Missing unless a retention record later in the trail
                // explains the gap.
                let before_mac = self
                    .previous
                    .filter(|previous| previous.seq + 1 == self.next_seq)
                    .and_then(|previous| previous.mac);
                self.ledger.open_gap(self.next_seq, lowest - 1, before_mac);
                self.next_seq = lowest;
                self.previous = None;
            }
            if !finished && !later_arrived && self.buffered < self.verifier.reorder_window {
                return;
            }
            let Some(slot) = self.slots.remove(&lowest) else {
                return;
            };
            self.buffered -= 1 + slot.more.len();
            self.check_slot(lowest, slot);
            self.next_seq = lowest + 1;
        }
    }

    fn check_slot(&mut self, seq: u64, slot: Slot) {
        let Slot {
            first: mut owner,
            more: mut items,
        } = slot;
        // The sealed entry (if any) owns the slot; every other is extra.
        if !owner.status.is_sealed()
            && let Some(sealed) = items.iter().position(|item| item.status.is_sealed())
        {
            std::mem::swap(&mut owner, &mut items[sealed]);
        }
        let owner_sealed = owner.status.is_sealed();
        for extra in items {
            match extra.status {
                s if s.is_sealed() && owner_sealed && extra.entry.mac == owner.entry.mac => self
                    .finding(
                        seq,
                        None,
                        FindingKind::Duplicated,
                        "the same entry is stored a second time".into(),
                    ),
                s if s.is_sealed() => self.finding(
                    seq,
                    None,
                    FindingKind::Forked,
                    "a second, different sealed entry claims this seq".into(),
                ),
                Status::UnknownKey => self.unknown_key(&extra),
                _ if owner_sealed => self.finding(
                    seq,
                    None,
                    FindingKind::Forged,
                    "an entry that no key sealed is stored beside the real one".into(),
                ),
                _ => self.finding(
                    seq,
                    None,
                    FindingKind::Forged,
                    "several unsealed entries claim this seq".into(),
                ),
            }
        }
        match owner.status {
            Status::BodyModified => self.finding(
                seq,
                None,
                FindingKind::Modified,
                "the body no longer matches its commitment: a field value or salt was changed"
                    .into(),
            ),
            Status::Unauthentic => self.finding(
                seq,
                None,
                FindingKind::Modified,
                "the entry does not match its MAC: a stored field (or the MAC) was changed".into(),
            ),
            Status::UnknownKey => self.unknown_key(&owner),
            Status::Authentic | Status::Renumbered { .. } => {}
        }
        let sealed = owner.status.is_sealed();
        if sealed {
            self.check_chain(&owner);
            self.ledger.erased(&owner.entry, seq);
            if !matches!(
                owner.entry.kind,
                EntryKind::Event | EntryKind::EpochSeal | EntryKind::Genesis
            ) {
                let key = self.verifier.keys.get(&owner.entry.key_id);
                let minimum = self
                    .verifier
                    .trail_minimum_retention
                    .get(&self.trail)
                    .copied()
                    .unwrap_or(self.verifier.minimum_retention);
                let outcomes = self.ledger.record(
                    &owner.entry,
                    seq,
                    key.map(VerificationKey::schedule),
                    minimum,
                );
                self.apply(outcomes);
            }
        }
        self.track_epoch(&owner, sealed);
        self.processed_macs
            .push_back((seq, sealed.then_some(owner.entry.mac)));
        if !self.checkpoints.is_empty() {
            self.check_checkpoints(seq, sealed.then_some(owner.entry.mac));
        }
        self.forget_old(seq);
        self.previous = Some(Previous {
            seq,
            mac: sealed.then_some(owner.entry.mac),
            recorded_at: owner.entry.recorded_at,
            epoch: owner.entry.epoch,
        });
    }

    fn forget_old(&mut self, seq: u64) {
        let window = self.verifier.reorder_window as u64;
        if let Some(cutoff) = seq.checked_sub(window) {
            while let Some(&(oldest, mac)) = self.processed_macs.front() {
                if oldest >= cutoff {
                    break;
                }
                self.processed_macs.pop_front();
                if let Some(mac) = mac {
                    self.known_macs.remove(&mac);
                }
            }
        }
    }

    fn unknown_key(&mut self, item: &Item) {
        let detail = format!(
            "sealed with key {:?}, for which no verification key was given",
            crate::event::escape_text(&item.entry.key_id)
        );
        self.finding(item.identity, None, FindingKind::UnknownKey, detail);
    }

    /// Link, genesis and time checks of a sealed entry against the one before.
    fn check_chain(&mut self, item: &Item) {
        let entry = &item.entry;
        let seq = item.identity;
        if seq == 0 {
            self.check_genesis(entry);
        }
        let expected_prev = match self.previous {
            _ if seq == 0 => Some(genesis_prev_mac(&self.trail)),
            Some(previous) if previous.seq + 1 == seq => previous.mac,
            _ => {
                self.ledger.close_gap(seq, entry);
                None
            }
        };
        if expected_prev.is_some_and(|mac| mac != entry.prev_mac) {
            self.finding(
                seq,
                None,
                FindingKind::Forked,
                "the entry does not follow the entry before it (its prev_mac names another entry)"
                    .into(),
            );
        }
        let mut time_problems = Vec::new();
        if let Some(previous) = self
            .previous
            .filter(|p| p.mac.is_some() && p.seq + 1 == seq)
        {
            if entry.recorded_at < previous.recorded_at {
                time_problems.push(format!(
                    "is before the entry before it ({})",
                    format_timestamp(previous.recorded_at)
                ));
            }
            if entry.epoch < previous.epoch {
                time_problems.push(format!(
                    "was sealed in epoch {}, before the entry before it (epoch {})",
                    entry.epoch, previous.epoch
                ));
            }
        }
        if let Some(key) = self.verifier.keys.get(&entry.key_id) {
            let schedule = key.schedule();
            let time_epoch = schedule.epoch_of(entry.recorded_at);
            let in_window = match entry.kind {
                // A seal is made after its epoch ended.
                EntryKind::EpochSeal => time_epoch.is_some_and(|e| e > entry.epoch),
                _ => time_epoch == Some(entry.epoch),
            };
            if !in_window {
                time_problems.push(format!(
                    "lies outside epoch {} ({} to {})",
                    entry.epoch,
                    format_timestamp(schedule.start_of(entry.epoch)),
                    format_timestamp(schedule.end_of(entry.epoch))
                ));
            }
        }
        if !time_problems.is_empty() {
            self.finding(
                seq,
                None,
                FindingKind::Backdated,
                format!(
                    "the timestamp {} {}",
                    format_timestamp(entry.recorded_at),
                    time_problems.join(" and ")
                ),
            );
        }
    }

    fn check_genesis(&mut self, entry: &Entry) {
        let names_trail = entry.value(genesis_fields::TRAIL) == Some(self.trail.as_str());
        if entry.kind != EntryKind::Genesis || !names_trail {
            self.finding(
                0,
                None,
                FindingKind::InvalidGenesis,
                format!(
                    "seq 0 is a {} entry, not the genesis of this trail",
                    entry.kind
                ),
            );
        }
    }

    /// Epoch seal accounting: every epoch before the newest must be closed by
    /// exactly one seal that states its entries correctly.
    fn track_epoch(&mut self, item: &Item, sealed: bool) {
        let entry = &item.entry;
        let seq = item.identity;
        let tracker = &mut self.epochs;
        if !sealed {
            // An entry that fails its MAC may carry a changed epoch; count it
            // where it stands instead of trusting its epoch field: in the
            // epoch being counted, or else the next one to seal.
            if tracker.counting.is_none() && tracker.next_unsealed.is_some() {
                tracker.counting = tracker.next_unsealed;
                tracker.seen = EpochSummary::default();
            }
            if tracker.counting.is_some() {
                tracker.seen.add(entry.recorded_at);
            }
            return;
        }
        let next_unsealed = *tracker.next_unsealed.get_or_insert(entry.epoch);
        if entry.kind == EntryKind::EpochSeal {
            let claimed_epoch = entry
                .value(seal_fields::EPOCH)
                .and_then(|v| v.parse::<u64>().ok());
            if claimed_epoch != Some(entry.epoch) {
                self.finding(
                    seq,
                    None,
                    FindingKind::SealMismatch,
                    "the seal names another epoch than it was sealed in".into(),
                );
            }
            if entry.epoch < next_unsealed {
                self.finding(
                    seq,
                    None,
                    FindingKind::SealMismatch,
                    format!("a second seal for epoch {}", entry.epoch),
                );
                return;
            }
            if entry.epoch > next_unsealed {
                self.unsealed(seq, next_unsealed, entry.epoch - 1);
            }
            let tracker = &self.epochs;
            let seen = if tracker.counting == Some(entry.epoch) {
                tracker.seen
            } else {
                EpochSummary::default()
            };
            let claimed = claimed_counts(entry);
            let mut problems = seal_link_problems(entry, seq);
            let deferred = self.ledger.epoch_has_gaps();
            if deferred {
                // Deleted entries count in the seal: check the counts once
                // the gaps are explained.
                let linked = problems.is_empty();
                self.ledger
                    .defer_seal(seq, entry.epoch, claimed, seen, linked);
            } else {
                self.ledger.epoch_sealed();
                problems.splice(0..0, seal_count_problems(&claimed, &seen));
            }
            if problems.is_empty() {
                if !deferred {
                    self.report.seals_verified += 1;
                }
            } else {
                self.finding(
                    seq,
                    None,
                    FindingKind::SealMismatch,
                    format!("the seal of epoch {} {}", entry.epoch, problems.join("; ")),
                );
            }
            self.epochs.next_unsealed = Some(entry.epoch + 1);
            self.epochs.counting = None;
            self.epochs.seen = EpochSummary::default();
            return;
        }
        if entry.epoch > next_unsealed {
            self.unsealed(seq, next_unsealed, entry.epoch - 1);
            self.epochs.next_unsealed = Some(entry.epoch);
        }
        if counts_in_epoch(entry.kind) {
            let tracker = &mut self.epochs;
            if tracker.counting != Some(entry.epoch) {
                tracker.counting = Some(entry.epoch);
                tracker.seen = EpochSummary::default();
            }
            tracker.seen.add(entry.recorded_at);
        }
    }

    fn unsealed(&mut self, seq: u64, first: u64, last: u64) {
        let detail = if first == last {
            format!("epoch {first} ended without a seal")
        } else {
            format!("epochs {first} to {last} ended without seals")
        };
        self.finding(seq, None, FindingKind::UnsealedEpoch, detail);
    }

    fn finding(&mut self, seq: u64, seq_end: Option<u64>, kind: FindingKind, detail: String) {
        self.report.findings.push(Finding {
            trail: self.trail.clone(),
            seq,
            seq_end,
            kind,
            detail,
        });
    }
}

/// What an epoch seal states about its epoch: entries, first and last
/// timestamp, as stored.
fn claimed_counts(seal: &Entry) -> (String, String, String) {
    let claimed = |name| seal.value(name).unwrap_or("").to_owned();
    (
        claimed(seal_fields::ENTRIES),
        claimed(seal_fields::FIRST_AT),
        claimed(seal_fields::LAST_AT),
    )
}

/// How a seal's stated counts differ from what was found of its epoch.
pub(crate) fn seal_count_problems(
    claimed: &(String, String, String),
    found: &EpochSummary,
) -> Vec<String> {
    let mut problems = Vec::new();
    if claimed.0 != found.count.to_string() {
        problems.push(format!(
            "states {} entries, {} were found",
            claimed.0, found.count
        ));
    }
    let time = |t: Option<DateTime<Utc>>| t.map(format_timestamp).unwrap_or_default();
    if claimed.1 != time(found.first_at) || claimed.2 != time(found.last_at) {
        problems.push("states other first/last timestamps than were found".into());
    }
    problems
}

/// How a seal's link to the entry before it differs from what it states.
fn seal_link_problems(seal: &Entry, seq: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let claimed = |name| seal.value(name).unwrap_or("");
    if claimed(seal_fields::LAST_SEQ) != seq.saturating_sub(1).to_string() {
        problems.push(format!(
            "closes after seq {}, but is seq {seq}",
            claimed(seal_fields::LAST_SEQ)
        ));
    }
    if claimed(seal_fields::LAST_MAC) != seal.prev_mac.to_hex() {
        problems.push("names another last MAC than the entry before it".into());
    }
    problems
}
