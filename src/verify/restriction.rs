//! The restriction of processing as a trail's sealed restriction records
//! state it, against the flags its store keeps.
//!
//! Records come after the entries they name, and a later record overrides
//! an earlier one, so the flags are compared once the trail has been read.
//! Memory holds the records' ranges, the runs of entries stored as
//! restricted, and the runs of entries whose flag was read (one run unless
//! entries are missing), never one item per entry.

use std::collections::BTreeMap;

use crate::retention::RestrictionRecord;

/// Seqs as disjoint runs `first..=last` in ascending order.
type Runs = Vec<(u64, u64)>;

/// What the trail seals and what the store flags.
#[derive(Debug, Default)]
pub(crate) struct Restrictions {
    /// Seqs the sealed records restrict: first to last, disjoint and not
    /// touching.
    sealed: BTreeMap<u64, u64>,
    /// Seqs whose stored flag was read, in the order read (ascending).
    read: Runs,
    /// Of those, the seqs stored as restricted.
    flagged: Runs,
}

/// Where a stored flag disagrees with the sealed restriction state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FlagMismatch {
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// Whether the entries are stored as restricted (and no record says
    /// so), or not (though a record restricts them).
    pub(crate) stored_restricted: bool,
}

impl Restrictions {
    /// The stored flag of the authentic entry at `seq`, if the store tells
    /// it; seqs come in ascending order.
    pub(crate) fn stored(&mut self, seq: u64, restricted: Option<bool>) {
        let Some(restricted) = restricted else {
            return;
        };
        push_seq(&mut self.read, seq);
        if restricted {
            push_seq(&mut self.flagged, seq);
        }
    }

    /// An authentic restriction record: its entries are restricted, or no
    /// longer, from here on.
    pub(crate) fn record(&mut self, record: &RestrictionRecord) {
        for range in &record.entries {
            self.remove(range.first, range.last);
            if record.restricted {
                self.insert(range.first, range.last);
            }
        }
    }

    /// Every run of read entries whose stored flag differs from what the
    /// records, all applied, state; in seq order.
    pub(crate) fn mismatches(&self) -> Vec<FlagMismatch> {
        let sealed: Runs = self
            .sealed
            .iter()
            .map(|(&first, &last)| (first, last))
            .collect();
        let unsealed = difference(&self.flagged, &sealed);
        let unflagged = difference(&intersection(&self.read, &sealed), &self.flagged);
        let mut mismatches: Vec<FlagMismatch> = unsealed
            .into_iter()
            .map(|run| (run, true))
            .chain(unflagged.into_iter().map(|run| (run, false)))
            .map(|((first, last), stored_restricted)| FlagMismatch {
                first,
                last,
                stored_restricted,
            })
            .collect();
        mismatches.sort_by_key(|mismatch| mismatch.first);
        mismatches
    }

    fn insert(&mut self, mut first: u64, mut last: u64) {
        // Merge with every run that overlaps or touches.
        let touching: Vec<(u64, u64)> = self
            .sealed
            .range(..=last.saturating_add(1))
            .rev()
            .take_while(|&(_, &end)| end.saturating_add(1) >= first)
            .map(|(&start, &end)| (start, end))
            .collect();
        for (start, end) in touching {
            self.sealed.remove(&start);
            first = first.min(start);
            last = last.max(end);
        }
        self.sealed.insert(first, last);
    }

    fn remove(&mut self, first: u64, last: u64) {
        let overlapping: Vec<(u64, u64)> = self
            .sealed
            .range(..=last)
            .rev()
            .take_while(|&(_, &end)| end >= first)
            .map(|(&start, &end)| (start, end))
            .collect();
        for (start, end) in overlapping {
            self.sealed.remove(&start);
            if start < first {
                self.sealed.insert(start, first - 1);
            }
            if end > last {
                self.sealed.insert(last + 1, end);
            }
        }
    }
}

/// Adds `seq`, higher than any before, to runs.
fn push_seq(runs: &mut Runs, seq: u64) {
    match runs.last_mut() {
        Some((_, last)) if last.checked_add(1) == Some(seq) => *last = seq,
        Some((_, last)) if *last >= seq => {}
        _ => runs.push((seq, seq)),
    }
}

/// The seqs in both `a` and `b`.
fn intersection(a: &[(u64, u64)], b: &[(u64, u64)]) -> Runs {
    let mut both = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a_first, a_last)), Some(&(b_first, b_last))) = (a.get(i), b.get(j)) {
        let (first, last) = (a_first.max(b_first), a_last.min(b_last));
        if first <= last {
            both.push((first, last));
        }
        if a_last < b_last {
            i += 1;
        } else {
            j += 1;
        }
    }
    both
}

/// The seqs in `a` but not in `b`.
fn difference(a: &[(u64, u64)], b: &[(u64, u64)]) -> Runs {
    let mut rest = Vec::new();
    let mut j = 0;
    for &(first, last) in a {
        // Runs of `b` wholly before this one cannot cut later ones either.
        while b.get(j).is_some_and(|&(_, b_last)| b_last < first) {
            j += 1;
        }
        // The next seq of this run that may not be in `b`; `None` past the
        // highest seq.
        let mut from = Some(first);
        for &(b_first, b_last) in b[j..].iter().take_while(|&&(b_first, _)| b_first <= last) {
            let Some(start) = from else { break };
            if b_first > start {
                rest.push((start, b_first - 1));
            }
            // Runs of `b` are ascending and disjoint, so `b_last` is at or
            // after `start`.
            from = b_last.checked_add(1);
        }
        if let Some(start) = from.filter(|&start| start <= last) {
            rest.push((start, last));
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::RestrictedRange;

    fn record(restricted: bool, ranges: &[(u64, u64)]) -> RestrictionRecord {
        RestrictionRecord {
            restricted,
            entries: ranges
                .iter()
                .map(|&(first, last)| RestrictedRange { first, last })
                .collect(),
        }
    }

    fn sealed(restrictions: &Restrictions) -> Runs {
        restrictions
            .sealed
            .iter()
            .map(|(&first, &last)| (first, last))
            .collect()
    }

    #[test]
    fn later_records_override_earlier_ones() {
        let mut restrictions = Restrictions::default();
        restrictions.record(&record(true, &[(2, 4), (10, 12)]));
        restrictions.record(&record(true, &[(5, 6), (20, 20)]));
        assert_eq!(sealed(&restrictions), [(2, 6), (10, 12), (20, 20)]);
        restrictions.record(&record(false, &[(3, 3), (11, 25)]));
        assert_eq!(sealed(&restrictions), [(2, 2), (4, 6), (10, 10)]);
        restrictions.record(&record(true, &[(0, 30)]));
        assert_eq!(sealed(&restrictions), [(0, 30)]);
        restrictions.record(&record(false, &[(0, 30)]));
        assert_eq!(sealed(&restrictions), []);
    }

    #[test]
    fn flags_are_compared_only_where_they_were_read() {
        let mut restrictions = Restrictions::default();
        for seq in (0..10).chain(15..30) {
            let flagged = matches!(seq, 3 | 4 | 5 | 21 | 22);
            restrictions.stored(seq, Some(flagged));
        }
        // Entries 10 to 14 were not read (deleted by retention).
        restrictions.record(&record(true, &[(3, 4), (8, 12), (22, 22)]));
        let mismatch = |first, last, stored_restricted| FlagMismatch {
            first,
            last,
            stored_restricted,
        };
        assert_eq!(
            restrictions.mismatches(),
            [
                mismatch(5, 5, true),
                mismatch(8, 9, false),
                mismatch(21, 21, true)
            ]
        );
    }

    #[test]
    fn a_store_that_tells_no_flags_is_not_compared() {
        let mut restrictions = Restrictions::default();
        for seq in 0..10 {
            restrictions.stored(seq, None);
        }
        restrictions.record(&record(true, &[(3, 4)]));
        assert_eq!(restrictions.mismatches(), []);
    }

    #[test]
    fn run_arithmetic_holds_at_the_ends_of_the_seq_range() {
        let max = u64::MAX;
        assert_eq!(difference(&[(0, max)], &[(5, 9)]), [(0, 4), (10, max)]);
        assert_eq!(difference(&[(0, max)], &[(0, max)]), []);
        assert_eq!(
            difference(&[(max - 1, max)], &[(max, max)]),
            [(max - 1, max - 1)]
        );
        assert_eq!(
            difference(&[(1, 3), (5, 9)], &[(0, 1), (3, 6), (9, 9)]),
            [(2, 2), (7, 8)]
        );
        assert_eq!(
            intersection(&[(0, 4), (6, 10)], &[(2, 7), (9, max)]),
            [(2, 4), (6, 7), (9, 10)]
        );
    }
}
