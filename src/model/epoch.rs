//! What an epoch seal counts of its epoch.

use chrono::{DateTime, Utc};

use super::EntryKind;

/// What a store knows about one epoch of a trail, for its epoch seal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "store implementations build it")]
pub struct EpochSummary {
    /// Entries of the epoch, not counting epoch seals.
    pub count: u64,
    /// Of those, the records: entries that are neither events nor epoch
    /// seals (genesis, retention, redaction, hold, rotation and restriction
    /// records), which retention never deletes.
    pub records: u64,
    /// Timestamp of the first of them.
    pub first_at: Option<DateTime<Utc>>,
    /// Timestamp of the last of them.
    pub last_at: Option<DateTime<Utc>>,
}

impl EpochSummary {
    /// Adds one entry of `kind` (not an epoch seal) to the summary.
    pub fn add(&mut self, kind: EntryKind, recorded_at: DateTime<Utc>) {
        self.count += 1;
        if kind != EntryKind::Event {
            self.records += 1;
        }
        self.first_at = Some(self.first_at.map_or(recorded_at, |t| t.min(recorded_at)));
        self.last_at = Some(self.last_at.map_or(recorded_at, |t| t.max(recorded_at)));
    }

    /// Adds another summary's entries to this one.
    pub fn merge(&mut self, other: &EpochSummary) {
        self.count += other.count;
        self.records += other.records;
        self.first_at = self.first_at.into_iter().chain(other.first_at).min();
        // `None` orders before any time, so `max` keeps the later one.
        self.last_at = self.last_at.max(other.last_at);
    }
}

/// Whether an entry counts towards its epoch's seal.
pub fn counts_in_epoch(kind: EntryKind) -> bool {
    kind != EntryKind::EpochSeal
}
