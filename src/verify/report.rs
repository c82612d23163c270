//! What a verification finds: findings and the report of one trail.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Checkpoint;
use crate::model::escape_text;
use crate::model::{Digest, Mac};

/// What is wrong, as data a caller can match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A stored field was changed: the entry no longer matches its MAC.
    Modified,
    /// Entries are absent from the trail (or the whole trail is).
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
    /// A timestamp lies after the verifier's clock, or after a checkpoint
    /// that covers the entry: it cannot have been sealed then.
    FutureDated,
    /// The entry names a key id no given verification key has.
    UnknownKey,
    /// The verification key does not fit the trail: no entry verifies with
    /// it, or its epoch schedule differs from the one the trail states.
    KeyMismatch,
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
    /// A copy a store keeps beside a sealed entry for queries (an indexed
    /// column, the restriction flag) disagrees with what is sealed.
    ColumnMismatch,
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
            FindingKind::FutureDated => "future_dated",
            FindingKind::UnknownKey => "unknown_key",
            FindingKind::KeyMismatch => "key_mismatch",
            FindingKind::InvalidGenesis => "invalid_genesis",
            FindingKind::Truncated => "truncated",
            FindingKind::CheckpointMismatch => "checkpoint_mismatch",
            FindingKind::RetentionViolation => "retention_violation",
            FindingKind::UnrecordedRedaction => "unrecorded_redaction",
            FindingKind::SnapshotMismatch => "snapshot_mismatch",
            FindingKind::ColumnMismatch => "column_mismatch",
        }
    }

    /// Whether the finding says the keys given do not fit the trail, rather
    /// than that the trail was tampered with.
    pub fn is_key_problem(self) -> bool {
        matches!(self, FindingKind::UnknownKey | FindingKind::KeyMismatch)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the verifier found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

impl Finding {
    /// A finding about `seq` (through `seq_end`, for a range).
    pub fn new(
        trail: impl Into<String>,
        seq: u64,
        seq_end: Option<u64>,
        kind: FindingKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            trail: trail.into(),
            seq,
            seq_end,
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Trail names and details quote stored data; escaping keeps them
        // from forging lines.
        let trail = escape_text(&self.trail);
        match self.seq_end {
            Some(end) if end != self.seq => write!(f, "{trail}#{}..{}", self.seq, end)?,
            _ => write!(f, "{trail}#{}", self.seq)?,
        }
        write!(f, " {}: {}", self.kind, escape_text(&self.detail))
    }
}

/// The result of verifying one trail. Findings are data, not errors: a run
/// that finds tampering succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TrailReport {
    /// The trail.
    pub trail: String,
    /// Entries read.
    pub entries: u64,
    /// Lowest and highest seq read.
    pub seq_range: Option<(u64, u64)>,
    /// Lowest and highest epoch read.
    pub epoch_range: Option<(u64, u64)>,
    /// The sealed format the trail's entries were checked in (its genesis
    /// states it; 2 after a rotation from 1).
    pub format: Option<u8>,
    /// Entries whose MAC verified.
    pub authentic: u64,
    /// Epoch seals that verified and matched their epoch.
    pub seals_verified: u64,
    /// Checkpoints whose head was found, authentic and unchanged.
    pub checkpoints_verified: u64,
    /// The newest entry of the chain whose MAC verified and that follows
    /// the entry before it: what a checkpoint of this trail states.
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct SnapshotNotice {
    /// Seq of the retention record.
    pub record: u64,
    /// The projection's name.
    pub name: String,
    /// The last seq the snapshot covers.
    pub upto_seq: u64,
    /// The digest the record states ([`crate::model::Snapshot::digest`]).
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
#[non_exhaustive]
pub struct ReportHead {
    /// Its seq.
    pub seq: u64,
    /// Its MAC.
    pub mac: Mac,
}

impl TrailReport {
    /// An empty report of `trail`, before anything was read.
    pub(crate) fn of(trail: &str) -> Self {
        Self {
            trail: trail.to_owned(),
            ..Self::default()
        }
    }

    /// A checkpoint of the verified head, to export off the machine.
    pub fn checkpoint(&self, time: DateTime<Utc>) -> Option<Checkpoint> {
        self.head.map(|head| Checkpoint {
            trail: self.trail.clone(),
            next_seq: head.seq + 1,
            head_mac: head.mac,
            time: crate::model::truncate_to_micros(time),
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

    pub(crate) fn push(
        &mut self,
        seq: u64,
        seq_end: Option<u64>,
        kind: FindingKind,
        detail: String,
    ) {
        self.findings
            .push(Finding::new(self.trail.clone(), seq, seq_end, kind, detail));
    }
}

impl fmt::Display for TrailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The name comes from storage: escaped like everything else.
        write!(
            f,
            "trail {}: {} entries",
            escape_text(&self.trail),
            self.entries
        )?;
        if let Some((first, last)) = self.seq_range {
            write!(f, ", seq {first}..={last}")?;
        }
        if let Some((first, last)) = self.epoch_range {
            write!(f, ", epochs {first}..={last}")?;
        }
        if let Some(format) = self.format {
            write!(f, ", format {format}")?;
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
            writeln!(f, "  {finding}")?;
        }
        Ok(())
    }
}
