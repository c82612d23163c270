//! One trail's verification in progress: MACs checked in parallel, then
//! links, order, time, epochs and seals checked in seq order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque, btree_map};

use chrono::{DateTime, Utc};

use super::Checkpoint;
use super::key_lines::{BatchKeys, KeyChoice, TrailKeys};
use super::ledger::{Ledger, Outcome};
use super::report::{FindingKind, PrunedNotice, ReportHead, SnapshotNotice, TrailReport};
use super::restriction::Restrictions;
use super::{Verifier, VerifyError};
use crate::model::escape_text;
use crate::model::{Digest, Mac, body_commitment, format_timestamp};
use crate::model::{Entry, EntryKind};
use crate::model::{EpochSummary, MacInput, counts_in_epoch, genesis_prev_mac};
use crate::retention::RestrictionRecord;
use crate::seal::{EpochSchedule, KeyLine, genesis_fields, seal_fields};
use crate::store::{CopyMismatch, StoredEntry};

/// How far from the expected seq a renumbered entry is searched for.
const RENUMBER_SEARCH: u64 = 8;

/// The order-independent part of checking an entry, done in parallel.
#[derive(Clone, Copy, Debug)]
enum Precheck {
    /// The entry names another trail.
    OtherTrail,
    /// No key with the entry's key id.
    UnknownKey,
    /// The entry claims an epoch no key can have been derived for yet.
    BeyondClock,
    /// MAC over the stored header, and body against its commitment.
    Checked { mac_ok: bool, body_ok: bool },
}

fn precheck(trail: &str, entry: &Entry, choice: KeyChoice, keys: &BatchKeys) -> Precheck {
    // The MAC binds the trail name; an entry moved in from another trail
    // cannot verify here.
    if entry.trail != trail {
        return Precheck::OtherTrail;
    }
    let body_ok = || body_commitment(&entry.body) == entry.body_commitment;
    match choice {
        KeyChoice::UnknownKey => Precheck::UnknownKey,
        KeyChoice::BeyondClock => Precheck::BeyondClock,
        KeyChoice::BeforeLine => Precheck::Checked {
            mac_ok: false,
            body_ok: body_ok(),
        },
        KeyChoice::Key { version, index } => {
            let mac = keys.keys[index].mac(&MacInput {
                trail,
                ..entry.mac_input(version)
            });
            Precheck::Checked {
                mac_ok: mac == entry.mac,
                body_ok: body_ok(),
            }
        }
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
    /// It claims an epoch beyond the verifier's clock.
    BeyondClock,
}

impl Status {
    fn is_sealed(self) -> bool {
        matches!(self, Status::Authentic | Status::Renumbered { .. })
    }
}

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

#[derive(Default)]
struct EpochTracker {
    /// The oldest epoch without a seal so far (the genesis's epoch before
    /// the first seal).
    next_unsealed: Option<u64>,
    /// The epoch being counted and what was seen of it.
    counting: Option<u64>,
    seen: EpochSummary,
    /// Of those seen, entries that failed their MAC: counted as events,
    /// though any of them may be a record.
    uncertain: u64,
    /// Of those, entries that could not even be decoded: their times are
    /// unknown.
    untimed: u64,
}

/// A run of entries sealed under a key id no verification key was given
/// for, reported as one finding.
struct UnknownKeyRun {
    first: u64,
    last: u64,
    key_id: String,
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

    /// Puts an entry whose status is known into its slot (or reports it
    /// as late), with the findings its place calls for.
    fn place(&mut self, item: Item) {
        let Item {
            status, identity, ..
        } = item;
        if status.is_sealed() {
            self.known_macs.insert(item.entry.mac, identity);
        }
        if let Status::Renumbered { stored } = status {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!("the entry sealed as seq {identity} is stored as seq {stored}"),
            );
        } else if status.is_sealed()
            && let Some(highest) = self.highest_arrived.filter(|&highest| identity < highest)
        {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!("stored after seq {highest}, which follows it in the chain"),
            );
        }
        if status.is_sealed() {
            self.highest_arrived = Some(self.highest_arrived.map_or(identity, |h| h.max(identity)));
        }
        if identity < self.next_seq {
            self.late_arrival(item);
            return;
        }
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
    }

    /// The entry sealed as `seq` with MAC `mac` arrived: an orphan that
    /// names it as the entry before may be the entry sealed as `seq + 1`,
    /// stored far from its place.
    fn adopt_orphan(&mut self, mac: Mac, seq: u64) {
        let Some(stored_at) = self.orphans.remove(&mac) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&stored_at) else {
            return;
        };
        let is_orphan =
            |item: &Item| item.status == Status::Unauthentic && item.entry.prev_mac == mac;
        let candidate = if is_orphan(&slot.first) {
            Some(&slot.first)
        } else {
            slot.more.iter().find(|item| is_orphan(item))
        };
        let Some(entry) = candidate.map(|item| item.entry.clone()) else {
            return;
        };
        let identity = seq + 1;
        let Some(line) = self.keys.lines.line_at(identity) else {
            return;
        };
        if self.keys.mac_on(&entry, identity, line) != Some(entry.mac)
            || body_commitment(&entry.body) != entry.body_commitment
        {
            return;
        }
        // It is: take it out of the slot it was stored in.
        let Some(mut slot) = self.slots.remove(&stored_at) else {
            return;
        };
        let item = if is_orphan(&slot.first) {
            let first = slot.first;
            if !slot.more.is_empty() {
                slot.first = slot.more.remove(0);
                self.slots.insert(stored_at, slot);
            }
            first
        } else {
            let at = slot.more.iter().position(is_orphan).unwrap_or(0);
            let item = slot.more.remove(at);
            self.slots.insert(stored_at, slot);
            item
        };
        self.buffered -= 1;
        self.report.authentic += 1;
        self.place(Item {
            status: Status::Renumbered {
                stored: item.entry.seq,
            },
            identity,
            entry: item.entry,
            mismatched_copies: item.mismatched_copies,
            restricted: item.restricted,
        });
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

    /// When no entry verifies at all, the key is the likelier culprit than
    /// every entry: one finding says so instead of one per entry.
    fn blame_the_key(&mut self) {
        let report = &mut self.report;
        if report.authentic > 0 || report.entries == 0 {
            return;
        }
        let unknown_key = report.findings_of(FindingKind::UnknownKey).count();
        let other = report
            .findings
            .iter()
            .filter(|finding| {
                !matches!(
                    finding.kind,
                    FindingKind::UnknownKey | FindingKind::Truncated | FindingKind::Missing
                )
            })
            .count();
        if unknown_key > 0 && other == 0 {
            return;
        }
        let detail = if self.genesis_names_other_key {
            "no entry of the trail verifies with the verification key given, and the genesis states another key check: this is not the verification key of this trail"
        } else {
            "no entry of the trail verifies with the verification key given: it is not the key that sealed this trail, or every entry was changed"
        };
        let keep: Vec<_> = report
            .findings
            .drain(..)
            .filter(|finding| {
                matches!(
                    finding.kind,
                    FindingKind::UnknownKey | FindingKind::Truncated
                )
            })
            .collect();
        report.findings = keep;
        report.push(0, None, FindingKind::KeyMismatch, detail.into());
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

    /// Decides whether the entry is what some key sealed, and as which seq.
    fn authenticate(&mut self, entry: &Entry, precheck: Precheck) -> (Status, u64) {
        match precheck {
            Precheck::OtherTrail => return (Status::Unauthentic, entry.seq),
            Precheck::UnknownKey => return (Status::UnknownKey, entry.seq),
            Precheck::BeyondClock => return (Status::BeyondClock, entry.seq),
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
        let around = self
            .next_seq
            .max(entry.seq.min(self.next_seq + RENUMBER_SEARCH));
        let window = around.saturating_sub(RENUMBER_SEARCH)..=around + RENUMBER_SEARCH;
        for candidate in linked.into_iter().chain(window) {
            if candidate == entry.seq {
                continue;
            }
            let Some(line) = self.keys.lines.line_at(candidate) else {
                continue;
            };
            if self.keys.mac_on(entry, candidate, line) == Some(entry.mac)
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
                    epochs.uncertain += 1;
                    epochs.untimed += 1;
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
            // An orphan's slot waits for the entry it names as the one
            // before, which may show it moved, while the window allows.
            let waits = !finished
                && self.buffered < self.verifier.reorder_window
                && self.orphans.values().any(|&stored_at| stored_at == lowest);
            if waits {
                return;
            }
            let Some(slot) = self.slots.remove(&lowest) else {
                return;
            };
            self.orphans.retain(|_, stored_at| *stored_at != lowest);
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
        self.processed_macs
            .push_back((seq, owner_sealed.then_some(owner.entry.mac)));
        if !self.checkpoints.is_empty() {
            self.check_checkpoints(seq, owner_sealed.then_some(owner.entry.mac));
        }
        self.forget_old(seq);
        self.previous = Some(Previous {
            seq,
            mac: owner_sealed.then_some(owner.entry.mac),
            recorded_at: owner.entry.recorded_at,
            epoch: owner.entry.epoch,
        });
    }

    /// The copies a store keeps of a sealed entry's body values for queries
    /// must agree with the body: queries, tenant-confined reads and subject
    /// exports filter on them.
    fn check_copies(&mut self, seq: u64, item: &Item) {
        if item.mismatched_copies.is_empty() {
            return;
        }
        let problems: Vec<String> = item
            .mismatched_copies
            .iter()
            .map(|mismatch| describe_copy(mismatch, &item.entry))
            .collect();
        self.finding(
            seq,
            None,
            FindingKind::ColumnMismatch,
            format!(
                "a copy kept beside the entry for queries disagrees with the sealed entry: {}",
                problems.join("; ")
            ),
        );
    }

    /// An authentic restriction record at `seq`: the entries it names are
    /// restricted, or no longer, from here on.
    fn restriction_record(&mut self, entry: &Entry, seq: u64) {
        match RestrictionRecord::from_entry(entry) {
            Some(record) => self.restrictions.record(&record),
            None => self.finding(
                seq,
                None,
                FindingKind::ColumnMismatch,
                "the restriction record cannot be read: the restriction flags of the entries it was meant to name cannot be checked".into(),
            ),
        }
    }

    /// Once the whole trail is read: every entry's stored restriction flag
    /// must be what the trail's restriction records, applied in seq order,
    /// state. Queries leave restricted entries out.
    fn check_restriction_flags(&mut self) {
        for mismatch in self.restrictions.mismatches() {
            let one = mismatch.first == mismatch.last;
            let detail = match (mismatch.stored_restricted, one) {
                (true, true) => {
                    "the entry is stored as restricted (queries leave it out), but no sealed restriction record says so"
                }
                (true, false) => {
                    "the entries are stored as restricted (queries leave them out), but no sealed restriction record says so"
                }
                (false, true) => {
                    "a sealed restriction record restricts the entry, but it is stored as not restricted (queries show it)"
                }
                (false, false) => {
                    "a sealed restriction record restricts the entries, but they are stored as not restricted (queries show them)"
                }
            };
            self.finding(
                mismatch.first,
                (!one).then_some(mismatch.last),
                FindingKind::ColumnMismatch,
                detail.into(),
            );
        }
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

    /// Entries under a key id no key was given for: one finding per run of
    /// them, not one per entry.
    fn unknown_key(&mut self, item: &Item) {
        let seq = item.identity;
        match &mut self.unknown_key {
            Some(run) if run.key_id == item.entry.key_id && run.last + 1 == seq => run.last = seq,
            _ => {
                self.close_unknown_key_run();
                self.unknown_key = Some(UnknownKeyRun {
                    first: seq,
                    last: seq,
                    key_id: item.entry.key_id.clone(),
                });
            }
        }
    }

    fn close_unknown_key_run(&mut self) {
        if let Some(run) = self.unknown_key.take() {
            let detail = format!(
                "sealed with key {:?}, for which no verification key was given",
                escape_text(&run.key_id)
            );
            let end = (run.last != run.first).then_some(run.last);
            self.finding(run.first, end, FindingKind::UnknownKey, detail);
        }
    }

    /// An unauthentic genesis still tells whether it names another key: if
    /// nothing of the trail verifies either, the key is what is wrong.
    fn note_unauthentic_genesis(&mut self, entry: &Entry) {
        let Some(key) = self.verifier.keys.get(&entry.key_id) else {
            return;
        };
        let stated = entry
            .value(genesis_fields::KEY_CHECK)
            .and_then(|hex| Digest::from_hex(hex).ok());
        if entry.kind == EntryKind::Genesis && stated.is_some_and(|c| c != key.check_value()) {
            self.genesis_names_other_key = true;
        }
    }

    /// Link, genesis and time checks of a sealed entry against the one
    /// before; whether it follows the entry before it.
    fn check_chain(&mut self, item: &Item) -> bool {
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
        let linked = expected_prev.is_none_or(|mac| mac == entry.prev_mac);
        if !linked {
            self.finding(
                seq,
                None,
                FindingKind::Forked,
                "the entry does not follow the entry before it (its prev_mac names another entry)"
                    .into(),
            );
        }
        self.check_time(entry, seq);
        linked
    }

    /// Time checks: order along the trail, the epoch the time puts the
    /// entry in, and no time after the verifier's clock or a checkpoint
    /// that covers the entry.
    fn check_time(&mut self, entry: &Entry, seq: u64) {
        let mut problems = Vec::new();
        if let Some(previous) = self
            .previous
            .filter(|p| p.mac.is_some() && p.seq + 1 == seq)
        {
            if entry.recorded_at < previous.recorded_at {
                problems.push(format!(
                    "is before the entry before it ({})",
                    format_timestamp(previous.recorded_at)
                ));
            }
            if entry.epoch < previous.epoch {
                problems.push(format!(
                    "was sealed in epoch {}, before the entry before it (epoch {})",
                    entry.epoch, previous.epoch
                ));
            }
        }
        if let Some(schedule) = self.schedule_of(entry)
            && let Some(problem) = self.epoch_problem(&schedule, entry, seq)
        {
            problems.push(problem);
        }
        if !problems.is_empty() {
            self.finding(
                seq,
                None,
                FindingKind::Backdated,
                format!(
                    "the timestamp {} {}",
                    format_timestamp(entry.recorded_at),
                    problems.join(" and ")
                ),
            );
        }
        let skew = self.verifier.clock_skew;
        let mut future = Vec::new();
        if entry.recorded_at > self.verifier.now + skew {
            future.push(format!(
                "after the verifier's clock ({})",
                format_timestamp(self.verifier.now)
            ));
        }
        if let Some(checkpoint) = self
            .checkpoints
            .iter()
            .filter(|checkpoint| seq < checkpoint.next_seq)
            .find(|checkpoint| entry.recorded_at > checkpoint.time + skew)
        {
            future.push(format!(
                "after the checkpoint of {}, which already counts this entry",
                format_timestamp(checkpoint.time)
            ));
        }
        if !future.is_empty() {
            self.finding(
                seq,
                None,
                FindingKind::FutureDated,
                format!(
                    "the timestamp {} lies {}",
                    format_timestamp(entry.recorded_at),
                    future.join(" and ")
                ),
            );
        }
    }

    /// The schedule the entry's time is checked against.
    fn schedule_of(&self, entry: &Entry) -> Option<EpochSchedule> {
        self.schedule.or_else(|| {
            self.verifier
                .keys
                .get(&entry.key_id)
                .map(|key| *key.schedule())
        })
    }

    /// Whether the entry's epoch is the one its time and the trail's seals
    /// put it in (docs/FORMAT.md §8.1), and if not, why.
    fn epoch_problem(&self, schedule: &EpochSchedule, entry: &Entry, seq: u64) -> Option<String> {
        let time_epoch = schedule.epoch_of(entry.recorded_at);
        let format = self.keys.lines.line_at(seq).map_or(2, KeyLine::format);
        let in_place = match (format, entry.kind, time_epoch) {
            (_, _, None) => false,
            // Format 1: a seal after its epoch ended, anything else in its
            // epoch exactly.
            (1, EntryKind::EpochSeal, Some(t)) => t > entry.epoch,
            (1, _, Some(t)) => t == entry.epoch,
            // Format 2: a seal in or after its epoch (in it: the trail was
            // closed early); a genesis in its time's epoch or, after a
            // close, the next; anything else in its time's epoch, or in the
            // first unsealed one when a close sealed that.
            (_, EntryKind::EpochSeal, Some(t)) => t >= entry.epoch,
            (_, EntryKind::Genesis, Some(t)) => entry.epoch == t || entry.epoch == t + 1,
            (_, _, Some(t)) => entry.epoch == t.max(self.epochs.next_unsealed.unwrap_or(t)),
        };
        (!in_place).then(|| {
            format!(
                "lies outside epoch {} ({} to {})",
                entry.epoch,
                format_timestamp(schedule.start_of(entry.epoch)),
                format_timestamp(schedule.end_of(entry.epoch))
            )
        })
    }

    /// An authentic seq 0 must be this trail's genesis, stating the key,
    /// schedule and format it was sealed with.
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
            return;
        }
        let Some(key) = self.verifier.keys.get(&entry.key_id) else {
            return;
        };
        let mut problems = Vec::new();
        let line = self.keys.lines.line_at(0);
        let format_ok = match (entry.value(genesis_fields::FORMAT), line) {
            (Some("1"), Some(KeyLine::Shared)) => true,
            (Some("2"), Some(KeyLine::Branch { epoch })) => epoch == entry.epoch,
            _ => false,
        };
        if !format_ok {
            problems.push("does not state the format it is sealed in".to_owned());
        }
        match entry.value(genesis_fields::KEY_CHECK).map(Digest::from_hex) {
            Some(Ok(check)) if check == key.check_value() => {}
            Some(Ok(_)) => problems.push("states another key check than its key's".into()),
            _ => problems.push("states no key check".into()),
        }
        let stated = stated_schedule(entry);
        match stated {
            None => problems.push("states no valid key schedule".into()),
            Some(stated) if stated != *key.schedule() => {
                let describe = |schedule: &EpochSchedule| {
                    format!(
                        "genesis {}, epochs of {} s",
                        format_timestamp(schedule.genesis()),
                        schedule.length_seconds()
                    )
                };
                let detail = format!(
                    "the verification key {} states the schedule {}, but the trail was sealed with {}: the key file's schedule is wrong; times are checked against the trail's",
                    escape_text(key.key_id()),
                    describe(key.schedule()),
                    describe(&stated)
                );
                self.finding(0, None, FindingKind::KeyMismatch, detail);
                self.schedule = Some(stated);
            }
            Some(_) => {}
        }
        if !problems.is_empty() {
            self.finding(
                0,
                None,
                FindingKind::InvalidGenesis,
                format!("the genesis {}", problems.join(", ")),
            );
        }
        self.report.format = line.map(KeyLine::format);
    }

    /// Epoch seal accounting: every epoch from the genesis's to the one
    /// before the newest must be closed by exactly one seal that states its
    /// entries correctly.
    fn track_epoch(&mut self, item: &Item, sealed: bool) {
        let entry = &item.entry;
        let seq = item.identity;
        if let Some(line) = self.keys.lines.line_at(seq) {
            self.report.format = Some(self.report.format.unwrap_or(0).max(line.format()));
        }
        if !sealed {
            // An entry that fails its MAC may carry a changed epoch; count it
            // where it stands instead of trusting its epoch field: in the
            // epoch being counted, or else the next one to seal (the
            // first entry's own, for a genesis that fails).
            let tracker = &mut self.epochs;
            let start = *tracker.next_unsealed.get_or_insert(entry.epoch);
            if tracker.counting.is_none() {
                tracker.counting = Some(start);
                tracker.seen = EpochSummary::default();
                tracker.uncertain = 0;
                tracker.untimed = 0;
            }
            // Its kind is as untrusted as its epoch.
            tracker.seen.add(EntryKind::Event, entry.recorded_at);
            tracker.uncertain += 1;
            return;
        }
        let next_unsealed = *self.epochs.next_unsealed.get_or_insert(entry.epoch);
        if entry.kind == EntryKind::EpochSeal {
            self.track_seal(entry, seq, next_unsealed);
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
                tracker.uncertain = 0;
                tracker.untimed = 0;
            }
            tracker.seen.add(entry.kind, entry.recorded_at);
        }
    }

    fn track_seal(&mut self, entry: &Entry, seq: u64, next_unsealed: u64) {
        let claimed_epoch = entry
            .value(seal_fields::EPOCH)
            .and_then(|v| v.parse::<u64>().ok());
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
        let (seen, uncertain, untimed) = if self.epochs.counting == Some(entry.epoch) {
            let epochs = &self.epochs;
            (epochs.seen, epochs.uncertain, epochs.untimed)
        } else {
            (EpochSummary::default(), 0, 0)
        };
        let format = self.keys.lines.line_at(seq).map_or(2, KeyLine::format);
        let mut claimed = SealClaims::of(entry, format);
        claimed.untimed = untimed;
        let mut problems = Vec::new();
        if claimed_epoch != Some(entry.epoch) {
            problems.push("names another epoch than it was sealed in".to_owned());
        }
        problems.extend(seal_link_problems(entry, seq));
        // Retention never deletes records, so their count must match
        // whatever retention deleted.
        problems.extend(claimed.record_problem(&seen, uncertain));
        let deferred = self.ledger.epoch_has_gaps();
        if deferred {
            // Deleted entries count in the seal: check the counts once the
            // gaps are explained.
            let checked = problems.is_empty();
            self.ledger
                .defer_seal(seq, entry.epoch, claimed, seen, checked);
        } else {
            self.ledger.epoch_sealed();
            problems.extend(claimed.count_problems(&seen));
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
        self.epochs.uncertain = 0;
        self.epochs.untimed = 0;
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
        self.report.push(seq, seq_end, kind, detail);
    }
}

/// How a query column disagrees with the sealed body, without its value
/// (which may be personal data).
fn describe_copy(mismatch: &CopyMismatch, entry: &Entry) -> String {
    let (column, field) = (mismatch.column, mismatch.field);
    if mismatch.stored_empty {
        return format!("the column {column} is empty, but the sealed field {field} has a value");
    }
    match entry.body.get(field) {
        None => format!("the column {column} holds a value, but the sealed body has no {field}"),
        Some(sealed) if sealed.value().is_none() => {
            format!("the column {column} holds a value, but the sealed field {field} was erased")
        }
        Some(_) => format!("the column {column} holds another value than the sealed field {field}"),
    }
}

/// The key schedule a genesis states, if it states one in its one stored
/// form: the key's genesis as a body timestamp, the epoch length in plain
/// decimal.
fn stated_schedule(genesis: &Entry) -> Option<EpochSchedule> {
    let time_text = genesis.value(genesis_fields::KEY_GENESIS)?;
    let time = DateTime::parse_from_rfc3339(time_text)
        .ok()?
        .with_timezone(&Utc);
    let seconds_text = genesis.value(genesis_fields::EPOCH_SECONDS)?;
    let seconds: u64 = seconds_text.parse().ok()?;
    let canonical = format_timestamp(time) == time_text && seconds.to_string() == seconds_text;
    canonical
        .then(|| EpochSchedule::new(time, seconds).ok())
        .flatten()
}

/// What an epoch seal states about its epoch, as stored.
#[derive(Clone, Debug)]
pub(crate) struct SealClaims {
    entries: String,
    /// Format 2 seals also state the records.
    records: Option<String>,
    first_at: String,
    last_at: String,
    /// Entries of the epoch whose times are unknown (they could not be
    /// decoded): the stated span need only contain the times found.
    untimed: u64,
}

impl SealClaims {
    fn of(seal: &Entry, format: u8) -> Self {
        let claimed = |name| seal.value(name).unwrap_or("").to_owned();
        Self {
            entries: claimed(seal_fields::ENTRIES),
            records: (format >= 2).then(|| claimed(seal_fields::RECORDS)),
            first_at: claimed(seal_fields::FIRST_AT),
            last_at: claimed(seal_fields::LAST_AT),
            untimed: 0,
        }
    }

    /// How the stated records differ from those found: a record gone from
    /// a sealed epoch was deleted, which retention never does. `uncertain`
    /// entries failed their MAC, so each may or may not be a record.
    fn record_problem(&self, found: &EpochSummary, uncertain: u64) -> Option<String> {
        let text = self.records.as_ref()?;
        let stated = text.parse::<u64>().ok().filter(|n| n.to_string() == *text);
        let possible = found.records..=found.records + uncertain;
        if stated.is_some_and(|stated| possible.contains(&stated)) {
            return None;
        }
        Some(format!(
            "states {} records (genesis, retention, redaction, hold, rotation or restriction entries), {} were found: a record was removed, which retention never does",
            escape_text(text),
            found.records
        ))
    }

    /// How the stated counts differ from what was found of the epoch.
    pub(crate) fn count_problems(&self, found: &EpochSummary) -> Vec<String> {
        let mut problems = Vec::new();
        if self.entries != found.count.to_string() {
            problems.push(format!(
                "states {} entries, {} were found",
                self.entries, found.count
            ));
        }
        let time = |t: Option<DateTime<Utc>>| t.map(format_timestamp).unwrap_or_default();
        let span_ok = if self.untimed == 0 {
            self.first_at == time(found.first_at) && self.last_at == time(found.last_at)
        } else {
            // Fixed-width UTC timestamps order as text.
            let contains = |first: &str, last: &str| {
                (self.first_at.is_empty() || self.first_at.as_str() <= first)
                    && (self.last_at.is_empty() || last <= self.last_at.as_str())
            };
            match (found.first_at, found.last_at) {
                (Some(first), Some(last)) => contains(&time(Some(first)), &time(Some(last))),
                _ => true,
            }
        };
        if !span_ok {
            problems.push("states other first/last timestamps than were found".into());
        }
        problems
    }
}

/// How a seal's link to the entry before it differs from what it states.
fn seal_link_problems(seal: &Entry, seq: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let claimed = |name| seal.value(name).unwrap_or("");
    if claimed(seal_fields::LAST_SEQ) != seq.saturating_sub(1).to_string() {
        problems.push(format!(
            "closes after seq {}, but is seq {seq}",
            escape_text(claimed(seal_fields::LAST_SEQ))
        ));
    }
    if claimed(seal_fields::LAST_MAC) != seal.prev_mac.to_hex() {
        problems.push("names another last MAC than the entry before it".into());
    }
    problems
}
