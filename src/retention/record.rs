//! The bodies of the trail's retention, redaction and restriction records.
//!
//! All are sealed chain entries whose fields are public. Lists (deleted
//! ranges, redacted or restricted entries) are stored as one compact JSON
//! field each, so that a record stays one entry however many ranges it
//! names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Body, Entry, EntryKind, Mac, SnapshotRef, format_timestamp};

/// Body field names of a retention record.
pub(crate) mod retention_fields {
    pub(crate) const POLICY: &str = "retention.policy";
    pub(crate) const RUN_AT: &str = "retention.run_at";
    pub(crate) const CUTOFF: &str = "retention.cutoff";
    pub(crate) const DELETED: &str = "retention.deleted";
    pub(crate) const RANGES: &str = "retention.ranges";
    pub(crate) const SNAPSHOTS: &str = "retention.snapshots";
}

/// Body field names of a redaction record.
pub(crate) mod redaction_fields {
    pub(crate) const REASON: &str = "redaction.reason";
    pub(crate) const REQUEST: &str = "redaction.request";
    pub(crate) const ENTRIES: &str = "redaction.entries";
}

/// Body field names of a restriction record.
pub(crate) mod restriction_fields {
    pub(crate) const RESTRICTED: &str = "restriction.restricted";
    pub(crate) const ENTRIES: &str = "restriction.entries";
}

/// One contiguous run of entries deleted by retention.
///
/// The boundary MACs tie the range to the entries that remain: `before_mac`
/// is the MAC of the entry before `first` (the `prev_mac` of `first`), and
/// `last_mac` the MAC of `last` (the `prev_mac` of the entry after it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct PrunedRange {
    /// First deleted seq.
    pub first: u64,
    /// Last deleted seq.
    pub last: u64,
    /// MAC of the entry before `first`.
    pub before_mac: Mac,
    /// MAC of the entry `last`.
    pub last_mac: Mac,
    /// Timestamp of the entry `first`.
    pub first_at: DateTime<Utc>,
    /// Timestamp of the entry `last`.
    pub last_at: DateTime<Utc>,
}

impl PrunedRange {
    /// Number of entries in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Whether the range is empty (never true for a well-formed range).
    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }
}

/// What one retention run deleted, as sealed into the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct RetentionRecord {
    /// The policy's name.
    pub policy: String,
    /// The time the run was made for.
    pub run_at: DateTime<Utc>,
    /// No deleted entry was recorded after this time.
    pub cutoff: DateTime<Utc>,
    /// Every deleted range, in seq order.
    pub ranges: Vec<PrunedRange>,
    /// The projection snapshots kept before the deletion.
    pub snapshots: Vec<SnapshotRef>,
}

impl RetentionRecord {
    /// Number of deleted entries.
    pub fn deleted(&self) -> u64 {
        self.ranges.iter().map(PrunedRange::len).sum()
    }

    pub(crate) fn to_body(&self) -> Body {
        use retention_fields::*;
        let mut body = Body::new();
        body.insert_public(POLICY, self.policy.as_str());
        body.insert_public(RUN_AT, format_timestamp(self.run_at));
        body.insert_public(CUTOFF, format_timestamp(self.cutoff));
        body.insert_public(DELETED, self.deleted().to_string());
        body.insert_public(RANGES, to_json(&self.ranges));
        if !self.snapshots.is_empty() {
            body.insert_public(SNAPSHOTS, to_json(&self.snapshots));
        }
        body
    }

    /// Reads a retention record back from its entry; `None` if the entry is
    /// not a well-formed retention record.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        use retention_fields::*;
        if entry.kind != EntryKind::Retention {
            return None;
        }
        let record = Self {
            policy: entry.value(POLICY)?.to_owned(),
            run_at: parse_time(entry.value(RUN_AT)?)?,
            cutoff: parse_time(entry.value(CUTOFF)?)?,
            ranges: serde_json::from_str(entry.value(RANGES)?).ok()?,
            snapshots: match entry.value(SNAPSHOTS) {
                Some(json) => serde_json::from_str(json).ok()?,
                None => Vec::new(),
            },
        };
        let well_formed = record.ranges.iter().all(|range| !range.is_empty())
            && entry.value(DELETED) == Some(record.deleted().to_string().as_str());
        well_formed.then_some(record)
    }
}

/// Personal fields erased from a run of consecutive entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct RedactedRange {
    /// First entry.
    pub first: u64,
    /// Last entry.
    pub last: u64,
    /// The erased fields, in name order.
    pub fields: Vec<String>,
}

/// Which personal fields were erased, and why, as sealed into the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct RedactionRecord {
    /// Why: a retention policy's name, or `erasure request`.
    pub reason: String,
    /// The request's reference, for a data subject's erasure request.
    pub request: Option<String>,
    /// The entries and fields, in seq order.
    pub entries: Vec<RedactedRange>,
}

impl RedactionRecord {
    pub(crate) fn to_body(&self) -> Body {
        use redaction_fields::*;
        let mut body = Body::new();
        body.insert_public(REASON, self.reason.as_str());
        if let Some(request) = &self.request {
            body.insert_public(REQUEST, request.as_str());
        }
        body.insert_public(ENTRIES, to_json(&self.entries));
        body
    }

    /// Reads a redaction record back from its entry; `None` if the entry is
    /// not a well-formed redaction record.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        use redaction_fields::*;
        if entry.kind != EntryKind::Redaction {
            return None;
        }
        let record = Self {
            reason: entry.value(REASON)?.to_owned(),
            request: entry.value(REQUEST).map(str::to_owned),
            entries: serde_json::from_str(entry.value(ENTRIES)?).ok()?,
        };
        record
            .entries
            .iter()
            .all(|range| range.first <= range.last)
            .then_some(record)
    }

    /// Number of entries named.
    pub fn entry_count(&self) -> u64 {
        self.entries
            .iter()
            .map(|range| range.last - range.first + 1)
            .sum()
    }
}

/// A run of consecutive entries a restriction record names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct RestrictedRange {
    /// First entry.
    pub first: u64,
    /// Last entry.
    pub last: u64,
}

/// Entries whose processing was restricted (GDPR Art. 18), or whose
/// restriction was lifted, as sealed into the trail. Records apply in seq
/// order: a later one overrides what an earlier one said of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct RestrictionRecord {
    /// Whether the entries are restricted from now on (`false`: lifted).
    pub restricted: bool,
    /// The entries, in seq order.
    pub entries: Vec<RestrictedRange>,
}

impl RestrictionRecord {
    /// The record for `seqs` (in ascending order), in runs of consecutive
    /// seqs.
    pub(crate) fn of(restricted: bool, seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut entries: Vec<RestrictedRange> = Vec::new();
        for seq in seqs {
            match entries.last_mut() {
                Some(last) if last.last.checked_add(1) == Some(seq) => last.last = seq,
                _ => entries.push(RestrictedRange {
                    first: seq,
                    last: seq,
                }),
            }
        }
        Self {
            restricted,
            entries,
        }
    }

    pub(crate) fn to_body(&self) -> Body {
        use restriction_fields::*;
        let mut body = Body::new();
        body.insert_public(RESTRICTED, if self.restricted { "true" } else { "false" });
        body.insert_public(ENTRIES, to_json(&self.entries));
        body
    }

    /// Reads a restriction record back from its entry; `None` if the entry
    /// is not a well-formed restriction record.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        use restriction_fields::*;
        if entry.kind != EntryKind::Restriction {
            return None;
        }
        let restricted = match entry.value(RESTRICTED)? {
            "true" => true,
            "false" => false,
            _ => return None,
        };
        let entries: Vec<RestrictedRange> = serde_json::from_str(entry.value(ENTRIES)?).ok()?;
        entries
            .iter()
            .all(|range| range.first <= range.last)
            .then_some(Self {
                restricted,
                entries,
            })
    }

    /// Number of entries named.
    pub fn entry_count(&self) -> u64 {
        self.entries
            .iter()
            .map(|range| range.last - range.first + 1)
            .sum()
    }
}

/// Compresses `(seq, fields)` pairs in seq order into runs of consecutive
/// seqs with the same fields.
pub(crate) fn redacted_ranges(
    erasures: impl IntoIterator<Item = (u64, Vec<String>)>,
) -> Vec<RedactedRange> {
    let mut ranges = Vec::new();
    for (seq, fields) in erasures {
        push_redacted(&mut ranges, seq, fields);
    }
    ranges
}

/// Adds one entry's erased fields, extending the last run when it can.
pub(crate) fn push_redacted(ranges: &mut Vec<RedactedRange>, seq: u64, fields: Vec<String>) {
    match ranges.last_mut() {
        Some(last) if last.last + 1 == seq && last.fields == fields => last.last = seq,
        _ => ranges.push(RedactedRange {
            first: seq,
            last: seq,
            fields,
        }),
    }
}

pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising plain structs of numbers, strings and MACs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}
