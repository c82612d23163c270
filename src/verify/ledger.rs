//! The verifier's side of retention: which gaps in a trail its retention
//! records explain, which erased fields its redaction records cover, and
//! which holds were in force when.
//!
//! Records come after what they explain (a run deletes old entries, then
//! the trail goes on), so gaps, erased fields and the epoch seals that
//! count deleted entries wait here until a record settles them, or the
//! trail ends.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{FindingKind, SealClaims};
use crate::model::EpochSummary;
use crate::model::{Entry, EntryKind, Mac, SnapshotRef, format_timestamp};
use crate::retention::{HoldBook, PrunedRange, RedactedRange, RedactionRecord, RetentionRecord};
use crate::seal::EpochSchedule;

/// Something the ledger concluded, for the verifier to report.
#[derive(Debug)]
pub(crate) enum Outcome {
    Finding {
        seq: u64,
        seq_end: Option<u64>,
        kind: FindingKind,
        detail: String,
    },
    /// Entries `first..=last` were deleted by the retention record at `record`.
    Pruned { first: u64, last: u64, record: u64 },
    /// A deferred epoch seal turned out right.
    SealVerified,
}

/// Entries absent between two stored ones.
#[derive(Debug)]
struct Gap {
    last: u64,
    /// MAC of the entry before the gap, when it verified.
    before_mac: Option<Mac>,
    /// `prev_mac` of the authentic entry after the gap: the MAC of `last`.
    after_prev: Option<Mac>,
    /// Epoch of the entry after the gap: every deleted entry lies in it.
    after_epoch: Option<u64>,
    /// Ranges of retention records within the gap, with their record's seq.
    covered: Vec<(PrunedRange, u64)>,
}

/// Consecutive entries with the same erased fields, waiting for the
/// redaction record that names them.
#[derive(Debug)]
struct ErasedRun {
    range: RedactedRange,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
}

/// An epoch seal whose counts wait for gaps in its epoch to be explained.
#[derive(Debug)]
pub(crate) struct DeferredSeal {
    seq: u64,
    epoch: u64,
    /// What the seal states: entries, first and last timestamp.
    claimed: SealClaims,
    /// What was found of the epoch.
    seen: EpochSummary,
    /// Whether its link to the entry before it checked out.
    linked: bool,
    /// First seqs of the gaps in the epoch.
    gaps: Vec<u64>,
    /// What the explained gaps add to `seen`.
    pruned: EpochSummary,
}

#[derive(Default)]
pub(crate) struct Ledger {
    gaps: BTreeMap<u64, Gap>,
    /// Gaps opened since the last epoch seal.
    epoch_gaps: Vec<u64>,
    seals: Vec<DeferredSeal>,
    holds: HoldBook,
    /// Erased fields no redaction record has named yet, in seq order.
    unexplained_erasures: Vec<ErasedRun>,
    pub(crate) pruned: u64,
    pub(crate) redacted: u64,
    /// Snapshots the retention records commit to, with the record's seq.
    pub(crate) snapshots: Vec<(u64, SnapshotRef)>,
}

impl Ledger {
    /// Entries `first..=last` are absent; `before_mac` is the MAC of the
    /// entry before them, if it verified.
    pub(crate) fn open_gap(&mut self, first: u64, last: u64, before_mac: Option<Mac>) {
        self.gaps.insert(
            first,
            Gap {
                last,
                before_mac,
                after_prev: None,
                after_epoch: None,
                covered: Vec::new(),
            },
        );
        self.epoch_gaps.push(first);
    }

    /// The authentic entry at `seq` follows a gap: its `prev_mac` is the MAC
    /// of the gap's last entry.
    pub(crate) fn close_gap(&mut self, seq: u64, entry: &Entry) {
        if let Some((_, gap)) = self.gaps.range_mut(..seq).next_back()
            && gap.last + 1 == seq
        {
            gap.after_prev = Some(entry.prev_mac);
            gap.after_epoch = Some(entry.epoch);
        }
    }

    /// Whether gaps were opened in the epoch a seal closes.
    pub(crate) fn epoch_has_gaps(&self) -> bool {
        !self.epoch_gaps.is_empty()
    }

    /// A seal closes an epoch with gaps: its counts are checked once the
    /// gaps are explained, or at the end.
    pub(crate) fn defer_seal(
        &mut self,
        seq: u64,
        epoch: u64,
        claimed: SealClaims,
        seen: EpochSummary,
        linked: bool,
    ) {
        self.seals.push(DeferredSeal {
            seq,
            epoch,
            claimed,
            seen,
            linked,
            gaps: std::mem::take(&mut self.epoch_gaps),
            pruned: EpochSummary::default(),
        });
    }

    /// A seal closed an epoch without gaps.
    pub(crate) fn epoch_sealed(&mut self) {
        self.epoch_gaps.clear();
    }

    /// An authentic entry with erased fields.
    pub(crate) fn erased(&mut self, entry: &Entry, seq: u64) {
        let fields: Vec<String> = entry.body.redacted_names().map(str::to_owned).collect();
        if fields.is_empty() {
            return;
        }
        let time = entry.recorded_at;
        match self.unexplained_erasures.last_mut() {
            Some(run) if run.range.last + 1 == seq && run.range.fields == fields => {
                run.range.last = seq;
                run.last_at = time;
            }
            _ => self.unexplained_erasures.push(ErasedRun {
                range: RedactedRange {
                    first: seq,
                    last: seq,
                    fields,
                },
                first_at: time,
                last_at: time,
            }),
        }
    }

    /// An authentic record of the trail, at `seq`; `now` is the verifier's
    /// clock.
    pub(crate) fn record(
        &mut self,
        entry: &Entry,
        seq: u64,
        schedule: Option<&EpochSchedule>,
        minimum_retention: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Outcome> {
        match entry.kind {
            EntryKind::HoldPlaced | EntryKind::HoldReleased => {
                self.holds.apply(&Entry {
                    seq,
                    ..entry.clone()
                });
                Vec::new()
            }
            EntryKind::Redaction => self.redaction(entry, seq),
            EntryKind::Retention => self.retention(entry, seq, schedule, minimum_retention, now),
            _ => Vec::new(),
        }
    }

    fn redaction(&mut self, entry: &Entry, seq: u64) -> Vec<Outcome> {
        let Some(record) = RedactionRecord::from_entry(entry) else {
            return vec![malformed(seq, "redaction")];
        };
        // A hold keeps entries unredacted; one without filters holds every
        // entry of its time range, so erasing any of them broke it. (A
        // filtered hold cannot be checked here: its filter values may be
        // among what was erased.)
        let holds: Vec<_> = self
            .holds
            .active(seq, entry.recorded_at)
            .filter(|hold| !hold.is_filtered())
            .cloned()
            .collect();
        let mut outcomes = Vec::new();
        let mut remaining = Vec::new();
        for pending in std::mem::take(&mut self.unexplained_erasures) {
            let run = &pending.range;
            let mut explained_any = false;
            for field in &run.fields {
                let mut open = vec![(run.first, run.last)];
                for named in record.entries.iter().filter(|r| r.fields.contains(field)) {
                    open = subtract(open, named.first, named.last);
                }
                let explained: u64 =
                    (run.last - run.first + 1) - open.iter().map(|(a, b)| b - a + 1).sum::<u64>();
                self.redacted += explained;
                explained_any |= explained > 0;
                for (first, last) in open {
                    remaining.push(ErasedRun {
                        range: RedactedRange {
                            first,
                            last,
                            fields: vec![field.clone()],
                        },
                        first_at: pending.first_at,
                        last_at: pending.last_at,
                    });
                }
            }
            if explained_any
                && let Some(hold) = holds
                    .iter()
                    .find(|hold| hold.meets_span(pending.first_at, pending.last_at))
            {
                outcomes.push(Outcome::Finding {
                    seq: run.first,
                    seq_end: (run.last != run.first).then_some(run.last),
                    kind: FindingKind::RetentionViolation,
                    detail: format!(
                        "the redaction record at seq {seq} erased fields of entries under legal hold {:?}",
                        crate::model::escape_text(&hold.id)
                    ),
                });
            }
        }
        remaining.sort_by_key(|run| run.range.first);
        self.unexplained_erasures = remaining;
        outcomes
    }

    fn retention(
        &mut self,
        entry: &Entry,
        seq: u64,
        schedule: Option<&EpochSchedule>,
        minimum_retention: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Outcome> {
        let Some(record) = RetentionRecord::from_entry(entry) else {
            return vec![malformed(seq, "retention")];
        };
        self.snapshots.extend(
            record
                .snapshots
                .iter()
                .map(|snapshot| (seq, snapshot.clone())),
        );
        let mut outcomes = Vec::new();
        // Counted from the record's time or the verifier's clock, whichever
        // is earlier: a record dated ahead must not buy its deletions age.
        let latest_cutoff = entry.recorded_at.min(now) - minimum_retention;
        let active: Vec<_> = self.holds.active(seq, entry.recorded_at).cloned().collect();
        for range in &record.ranges {
            let violation = |detail: String| Outcome::Finding {
                seq: range.first,
                seq_end: Some(range.last),
                kind: FindingKind::RetentionViolation,
                detail,
            };
            let Some((&first, gap)) = self.gaps.range_mut(..=range.first).next_back() else {
                continue;
            };
            if range.last > gap.last || first > range.first {
                continue;
            }
            // Neither what the record states nor what the verifier was
            // told may be deleted, whichever is earlier.
            let cutoff = record.cutoff.min(latest_cutoff);
            if range.last_at > cutoff {
                outcomes.push(violation(format!(
                    "the retention record at seq {seq} deleted entries up to {}, but nothing recorded after {} may be deleted (its cutoff, and {} before the record)",
                    format_timestamp(range.last_at),
                    format_timestamp(cutoff),
                    describe(minimum_retention),
                )));
            } else if let (Some(schedule), Some(epoch)) = (schedule, gap.after_epoch)
                && schedule.start_of(epoch) > cutoff
            {
                outcomes.push(violation(format!(
                    "the retention record at seq {seq} deleted entries of epoch {epoch}, which began after {}",
                    format_timestamp(cutoff)
                )));
            }
            for hold in active
                .iter()
                .filter(|hold| hold.meets_span(range.first_at, range.last_at))
            {
                outcomes.push(violation(format!(
                    "the retention record at seq {seq} deleted entries under legal hold {:?}",
                    crate::model::escape_text(&hold.id)
                )));
            }
            if !gap.covered.iter().any(|(known, _)| known == range) {
                gap.covered.push((range.clone(), seq));
            }
            if gap_explained(first, gap) {
                outcomes.extend(self.settle(first));
            }
        }
        outcomes
    }

    /// A gap is fully explained: count it and finish the seals waiting for it.
    fn settle(&mut self, first: u64) -> Vec<Outcome> {
        let Some(gap) = self.gaps.remove(&first) else {
            return Vec::new();
        };
        let mut outcomes = Vec::new();
        let mut deleted = EpochSummary::default();
        for (range, record) in &gap.covered {
            self.pruned += range.len();
            deleted.merge(&EpochSummary {
                count: range.len(),
                records: 0,
                first_at: Some(range.first_at),
                last_at: Some(range.last_at),
            });
            outcomes.push(Outcome::Pruned {
                first: range.first,
                last: range.last,
                record: *record,
            });
        }
        if let Some(index) = self
            .seals
            .iter()
            .position(|seal| seal.gaps.contains(&first))
        {
            let seal = &mut self.seals[index];
            seal.gaps.retain(|gap| *gap != first);
            seal.pruned.merge(&deleted);
            if seal.gaps.is_empty() {
                let seal = self.seals.swap_remove(index);
                outcomes.extend(check_seal(&seal, true));
            }
        }
        outcomes
    }

    /// The trail ended: what is still unexplained is reported.
    pub(crate) fn finish(&mut self, trail_missing: impl Fn(u64, u64) -> String) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for (first, gap) in std::mem::take(&mut self.gaps) {
            outcomes.push(Outcome::Finding {
                seq: first,
                seq_end: Some(gap.last),
                kind: FindingKind::Missing,
                detail: trail_missing(first, gap.last),
            });
        }
        for seal in std::mem::take(&mut self.seals) {
            outcomes.extend(check_seal(&seal, false));
        }
        for ErasedRun { range, .. } in std::mem::take(&mut self.unexplained_erasures) {
            outcomes.push(Outcome::Finding {
                seq: range.first,
                seq_end: (range.last != range.first).then_some(range.last),
                kind: FindingKind::UnrecordedRedaction,
                detail: format!(
                    "the field {} was erased, but no redaction record names it",
                    crate::model::escape_text(&range.fields.join(", "))
                ),
            });
        }
        outcomes
    }
}

/// Whether the ranges tile the gap exactly and their boundary MACs chain
/// from the entry before it to the entry after it.
fn gap_explained(first: u64, gap: &mut Gap) -> bool {
    let (Some(before), Some(after)) = (gap.before_mac, gap.after_prev) else {
        return false;
    };
    gap.covered.sort_by_key(|(range, _)| range.first);
    let mut next = first;
    let mut link = before;
    for (range, _) in &gap.covered {
        if range.first != next || range.before_mac != link {
            return false;
        }
        next = range.last + 1;
        link = range.last_mac;
    }
    next == gap.last + 1 && link == after
}

/// Checks a deferred seal's counts; `explained` adds the deleted entries.
fn check_seal(seal: &DeferredSeal, explained: bool) -> Vec<Outcome> {
    let mut found = seal.seen;
    if explained {
        found.merge(&seal.pruned);
    }
    let problems = seal.claimed.count_problems(&found);
    if problems.is_empty() {
        if seal.linked {
            vec![Outcome::SealVerified]
        } else {
            Vec::new()
        }
    } else {
        vec![Outcome::Finding {
            seq: seal.seq,
            seq_end: None,
            kind: FindingKind::SealMismatch,
            detail: format!("the seal of epoch {} {}", seal.epoch, problems.join("; ")),
        }]
    }
}

fn malformed(seq: u64, what: &str) -> Outcome {
    Outcome::Finding {
        seq,
        seq_end: None,
        kind: FindingKind::RetentionViolation,
        detail: format!("the {what} record cannot be read; it explains nothing"),
    }
}

/// `open` minus `first..=last`.
fn subtract(open: Vec<(u64, u64)>, first: u64, last: u64) -> Vec<(u64, u64)> {
    let mut rest = Vec::with_capacity(open.len() + 1);
    for (a, b) in open {
        if last < a || first > b {
            rest.push((a, b));
            continue;
        }
        if a < first {
            rest.push((a, first - 1));
        }
        if last < b {
            rest.push((last + 1, b));
        }
    }
    rest
}

fn describe(age: Duration) -> String {
    if age.num_seconds() % 86_400 == 0 {
        format!("{} days", age.num_days())
    } else {
        format!("{} s", age.num_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::subtract;

    #[test]
    fn subtract_splits_and_trims() {
        assert_eq!(subtract(vec![(1, 10)], 3, 5), vec![(1, 2), (6, 10)]);
        assert_eq!(subtract(vec![(1, 10)], 0, 20), vec![]);
        assert_eq!(subtract(vec![(1, 10)], 10, 12), vec![(1, 9)]);
        assert_eq!(subtract(vec![(1, 3), (7, 9)], 4, 6), vec![(1, 3), (7, 9)]);
    }
}
