//! Epoch seal accounting: every epoch from the genesis's to the one before
//! the newest is closed by exactly one seal that states its entries.

use chrono::{DateTime, Utc};

use super::{Item, TrailVerification};
use crate::model::{
    Entry, EntryKind, EpochSummary, counts_in_epoch, escape_text, format_timestamp,
};
use crate::seal::{KeyLine, seal_fields};
use crate::verify::report::FindingKind;

/// What the seal accounting has seen of the epochs so far.
#[derive(Default)]
pub(super) struct EpochTracker {
    /// The oldest epoch without a seal so far (the genesis's epoch before
    /// the first seal).
    pub(super) next_unsealed: Option<u64>,
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

impl EpochTracker {
    /// Counts an entry that could not be decoded where it stands, like any
    /// entry that fails its MAC: in the epoch being counted, or else the
    /// next one to seal.
    pub(super) fn count_undecodable(&mut self) {
        if self.counting.is_none() {
            self.counting = self.next_unsealed;
        }
        if self.counting.is_some() {
            self.seen.count += 1;
            self.uncertain += 1;
            self.untimed += 1;
        }
    }
}

impl TrailVerification<'_> {
    /// Epoch seal accounting: every epoch from the genesis's to the one
    /// before the newest must be closed by exactly one seal that states its
    /// entries correctly.
    pub(super) fn track_epoch(&mut self, item: &Item, sealed: bool) {
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
