//! One trail's verification in progress: MACs checked in parallel, then
//! links, order, time, epochs and seals checked in seq order.
//!
//! This file holds the state and the order of the steps: entries arrive
//! ([`TrailVerification::push`]), are authenticated, wait in the slot of
//! the seq they were sealed as, and are checked slot by slot. The checks
//! live beside it, one concern a file:
//!
//! - `authenticity`: MACs and body commitments, and which seq an entry was
//!   sealed as;
//! - `order`: slots, entries stored out of order or far from their place,
//!   duplicates, forks, forgeries and gaps;
//! - `chain`: the link to the entry before, the genesis, checkpoints;
//! - `time`: timestamps against the entry before, the epochs and the clocks;
//! - `seals`: epoch seal accounting;
//! - `copies`: what a store keeps beside an entry (copies of body values for
//!   queries, restriction flags);
//! - `key_findings`: findings that blame a key rather than entries.

mod authenticity;
mod chain;
mod copies;
mod key_findings;
mod order;
mod seals;
mod time;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::Checkpoint;
use super::key_lines::TrailKeys;
use super::ledger::{Ledger, Outcome};
use super::report::{FindingKind, PrunedNotice, ReportHead, SnapshotNotice, TrailReport};
use super::restriction::Restrictions;
use super::{Verifier, VerifyError};
use crate::model::{Entry, EntryKind, Mac, escape_text, format_timestamp};
use crate::seal::EpochSchedule;
use crate::store::{CopyMismatch, StoredEntry};
use authenticity::{Precheck, Status, precheck};
use key_findings::UnknownKeyRun;
use seals::EpochTracker;

pub(crate) use seals::SealClaims;

struct Item {
    entry: Entry,
    /// The store's copies of body values that disagree with the body.
    mismatched_copies: Vec<CopyMismatch>,
    /// The store's restriction flag, if it tells it.
    restricted: Option<bool>,
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

/// A verification in progress; feed it with [`TrailVerification::push`].
pub struct TrailVerification<'v> {
    verifier: &'v Verifier,
    trail: String,
    keys: TrailKeys<'v>,
    /// The epoch schedule time rules are checked against: the key's, or the
    /// one an authentic genesis states when the key's differs.
    schedule: Option<EpochSchedule>,
    report: TrailReport,
    /// An unauthentic genesis states another key check than the key's.
    genesis_names_other_key: bool,
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
    undecodable: BTreeSet<u64>,
    /// Gaps, erasures and seals waiting for the trail's retention records.
    ledger: Ledger,
    /// The restriction the trail's records seal, and the stored flags.
    restrictions: Restrictions,
    /// The last batch, MACs computed, waiting for its in-order checks.
    prechecked: Vec<(StoredEntry, Precheck)>,
    unknown_key: Option<UnknownKeyRun>,
    /// Entries that verified under no seq near where they are stored, by
    /// the MAC their `prev_mac` names: when that entry turns up, the orphan
    /// is tried as the seq after it (an entry moved far from its place),
    /// and its slot waits for that until the reorder window is full.
    orphans: HashMap<Mac, u64, foldhash::fast::RandomState>,
}

impl<'v> TrailVerification<'v> {
    pub(crate) fn new(verifier: &'v Verifier, trail: &str) -> Self {
        let keys = TrailKeys::new(trail, &verifier.keys, verifier.epoch_limit());
        Self {
            verifier,
            trail: trail.to_owned(),
            keys,
            schedule: None,
            report: TrailReport::of(trail),
            genesis_names_other_key: false,
            slots: BTreeMap::new(),
            buffered: 0,
            next_seq: 0,
            highest_arrived: None,
            known_macs: HashMap::default(),
            processed_macs: VecDeque::new(),
            previous: None,
            epochs: EpochTracker::default(),
            checkpoints: verifier
                .checkpoints
                .get(trail)
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            undecodable: BTreeSet::new(),
            ledger: Ledger::default(),
            restrictions: Restrictions::default(),
            prechecked: Vec::new(),
            unknown_key: None,
            orphans: HashMap::default(),
        }
    }

    /// Checks the next entry in stored order.
    pub fn push(&mut self, entry: Entry) -> Result<(), VerifyError> {
        self.push_stored(StoredEntry::new(entry))
    }

    /// Checks the next entry in stored order, with what its store keeps
    /// beside it ([`Store::scan_stored`](crate::Store::scan_stored)).
    pub fn push_stored(&mut self, stored: StoredEntry) -> Result<(), VerifyError> {
        self.settle_prechecked();
        let keys = self.keys.for_batch(std::slice::from_ref(&stored.entry));
        let precheck = precheck(&self.trail, &stored.entry, keys.choices[0], &keys);
        self.push_checked(stored, precheck);
        Ok(())
    }

    /// Checks the next entries in stored order. MACs and body commitments
    /// are computed in parallel on all cores; links, order and epochs are
    /// then checked in order.
    ///
    /// The in-order part of a batch runs while the next batch's MACs are
    /// computed, so a batch may still be pending when this returns;
    /// [`TrailVerification::finish`] settles it.
    pub fn push_batch(&mut self, entries: Vec<Entry>) -> Result<(), VerifyError> {
        self.push_stored_batch(entries.into_iter().map(StoredEntry::new).collect())
    }

    /// Checks the next entries in stored order, each with what its store
    /// keeps beside it ([`Store::scan_stored`](crate::Store::scan_stored)),
    /// like [`TrailVerification::push_batch`].
    pub fn push_stored_batch(&mut self, stored: Vec<StoredEntry>) -> Result<(), VerifyError> {
        use rayon::prelude::*;
        let keys = self
            .keys
            .for_batch_of(stored.iter().map(|stored| &stored.entry));
        let trail = self.trail.clone();
        let pending = std::mem::take(&mut self.prechecked);
        let (prechecks, ()) = rayon::join(
            || -> Vec<Precheck> {
                stored
                    .par_iter()
                    .zip(keys.choices.par_iter())
                    .with_min_len(64)
                    .map(|(stored, choice)| precheck(&trail, &stored.entry, *choice, &keys))
                    .collect()
            },
            || self.push_all_checked(pending),
        );
        self.prechecked = stored.into_iter().zip(prechecks).collect();
        Ok(())
    }

    /// Runs the in-order checks of the batch whose MACs are computed.
    fn settle_prechecked(&mut self) {
        let pending = std::mem::take(&mut self.prechecked);
        self.push_all_checked(pending);
    }

    fn push_all_checked(&mut self, checked: Vec<(StoredEntry, Precheck)>) {
        for (stored, precheck) in checked {
            self.push_checked(stored, precheck);
        }
    }

    fn push_checked(&mut self, stored: StoredEntry, precheck: Precheck) {
        let StoredEntry {
            entry,
            mismatched_copies,
            restricted,
            ..
        } = stored;
        self.count(&entry);
        let (status, identity) = self.authenticate(&entry, precheck);
        if status == Status::Unauthentic && identity >= self.next_seq {
            self.orphans.insert(entry.prev_mac, identity);
        }
        let sealed = status.is_sealed().then_some(entry.mac);
        self.place(Item {
            entry,
            mismatched_copies,
            restricted,
            status,
            identity,
        });
        if let Some(mac) = sealed {
            self.adopt_orphan(mac, identity);
        }
        self.drain(false);
    }

    /// Records that the stored entry at `seq` could not even be decoded
    /// (e.g. its kind or body was overwritten with garbage): a finding at
    /// that seq.
    pub fn push_undecodable(&mut self, seq: u64, reason: &str) -> Result<(), VerifyError> {
        self.settle_prechecked();
        self.report.entries += 1;
        self.undecodable.insert(seq);
        let detail = format!(
            "the stored entry cannot be decoded: {}",
            escape_text(reason)
        );
        self.finding(seq, None, FindingKind::Modified, detail);
        Ok(())
    }

    /// The seq a line of an export that could not be decoded most likely
    /// held: the one after the last entry read.
    pub(crate) fn next_expected_seq(&self) -> u64 {
        let last = self
            .prechecked
            .last()
            .map(|(stored, _)| stored.entry.seq)
            .or(self.report.seq_range.map(|(_, last)| last));
        last.map_or(0, |seq| seq + 1)
    }

    /// Finishes the verification and returns the report.
    pub fn finish(mut self) -> Result<TrailReport, VerifyError> {
        self.settle_prechecked();
        self.drain(true);
        self.close_unknown_key_run();
        let outcomes = self.ledger.finish(|first, last| {
            if first == last {
                format!("entry {first} is missing")
            } else {
                format!("entries {first} to {last} are missing")
            }
        });
        self.apply(outcomes);
        self.check_restriction_flags();
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
        let empty = self.report.entries == 0;
        for checkpoint in std::mem::take(&mut self.checkpoints) {
            let detail = if empty {
                format!(
                    "no entry of the trail is stored, but the checkpoint of {} says it had {} entries",
                    format_timestamp(checkpoint.time),
                    checkpoint.next_seq
                )
            } else {
                format!(
                    "the trail ends before seq {}, but the checkpoint of {} says it had {} entries",
                    checkpoint.next_seq - 1,
                    format_timestamp(checkpoint.time),
                    checkpoint.next_seq
                )
            };
            self.finding(
                self.next_seq,
                Some(checkpoint.next_seq - 1),
                FindingKind::Truncated,
                detail,
            );
        }
        if empty && self.report.findings.is_empty() {
            // A trail is listed, or was asked for, but nothing of it is
            // stored: not even its genesis, which nothing ever deletes.
            self.finding(
                0,
                None,
                FindingKind::Missing,
                "no entry of the trail is stored, not even its genesis".into(),
            );
        }
        self.blame_the_key();
        // Gaps and seals are settled late; report everything in seq order.
        self.report
            .findings
            .sort_by_key(|finding| (finding.seq, finding.kind));
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
        let owner_mac = owner_sealed.then_some(owner.entry.mac);
        let forged = if owner_sealed {
            "an entry that no key sealed is stored beside the real one"
        } else {
            "several unsealed entries claim this seq"
        };
        for extra in items {
            self.second_entry(seq, &extra, owner_mac, forged);
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
            Status::BeyondClock => {
                let detail = format!(
                    "the entry claims epoch {}, beyond the verifier's clock: no key can have sealed it yet",
                    owner.entry.epoch
                );
                self.finding(seq, None, FindingKind::FutureDated, detail);
            }
            Status::UnknownKey => self.unknown_key(&owner),
            Status::Authentic | Status::Renumbered { .. } => {}
        }
        if owner.status != Status::UnknownKey {
            self.close_unknown_key_run();
        }
        if seq == 0 && !owner_sealed {
            self.note_unauthentic_genesis(&owner.entry);
        }
        if owner_sealed {
            self.check_copies(seq, &owner);
            self.restrictions.stored(seq, owner.restricted);
            let linked = self.check_chain(&owner);
            self.ledger.erased(&owner.entry, seq);
            if owner.entry.kind == EntryKind::Restriction {
                self.restriction_record(&owner.entry, seq);
            }
            if !matches!(
                owner.entry.kind,
                EntryKind::Event | EntryKind::EpochSeal | EntryKind::Genesis
            ) {
                let outcomes = self.ledger.record(
                    &owner.entry,
                    seq,
                    self.schedule.as_ref(),
                    self.verifier.minimum_retention_of(&self.trail),
                    self.verifier.now,
                );
                self.apply(outcomes);
            }
            if linked {
                self.report.head = Some(ReportHead {
                    seq,
                    mac: owner.entry.mac,
                });
            }
        }
        self.track_epoch(&owner, owner_sealed);
        self.processed_macs.push_back((seq, owner_mac));
        if !self.checkpoints.is_empty() {
            self.check_checkpoints(seq, owner_mac);
        }
        self.forget_old(seq);
        self.previous = Some(Previous {
            seq,
            mac: owner_mac,
            recorded_at: owner.entry.recorded_at,
            epoch: owner.entry.epoch,
        });
    }

    fn finding(&mut self, seq: u64, seq_end: Option<u64>, kind: FindingKind, detail: String) {
        self.report.push(seq, seq_end, kind, detail);
    }
}
