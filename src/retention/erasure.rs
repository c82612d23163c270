//! A data subject's requests on a [`Trail`]: erasure of their personal
//! fields, and restriction of processing; and the sealed redaction that
//! erasure and retention both go through.

use std::collections::BTreeMap;

use super::hold::LegalHold;
use super::read_all;
use super::record::{RedactionRecord, RestrictionRecord, redacted_ranges};
use crate::model::{Entry, EntryKind, Field};
use crate::store::Erasure;
use crate::write::Trail;
use crate::{Result, Subject};

/// Entries erased per store call.
const ERASURE_BATCH: usize = 1_000;

/// What one erasure request did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErasureRun {
    /// Seq of the sealed redaction record, if anything was erased.
    pub redaction_seq: Option<u64>,
    /// Entries whose personal fields were erased.
    pub erased: u64,
    /// Entries about the subject left as they are because a legal hold
    /// covers them.
    pub held: Vec<u64>,
}

impl Trail {
    /// Erases the personal fields of every entry about `subject` (a data
    /// subject's erasure request, `request` being its reference), except
    /// entries a legal hold in force covers, which are reported. One sealed
    /// redaction record names the entries and fields; the chain still
    /// verifies.
    pub async fn erase_subject(&self, subject: &Subject, request: &str) -> Result<ErasureRun> {
        let now = self.clock().now();
        let book = self.holds().await?;
        let holds: Vec<&LegalHold> = book.active(u64::MAX, now).collect();
        let mut held = Vec::new();
        let mut erasures = Vec::new();
        for entry in self.entries_about(subject).await?.into_values() {
            if holds.iter().any(|hold| hold.holds(&entry)) {
                held.push(entry.seq);
            } else {
                let fields = personal_fields(&entry);
                if !fields.is_empty() {
                    erasures.push((entry.seq, fields));
                }
            }
        }
        let mut run = ErasureRun {
            held,
            ..ErasureRun::default()
        };
        if !erasures.is_empty() {
            let record = RedactionRecord {
                reason: "erasure request".into(),
                request: Some(crate::model::escape_text(request).into_owned()),
                entries: redacted_ranges(erasures),
            };
            let (seq, erased) = self.redact(&record).await?;
            run.redaction_seq = Some(seq);
            run.erased = erased;
        }
        Ok(run)
    }

    /// Restricts the processing of every entry about `subject` (GDPR
    /// Art. 18), or lifts the restriction with `restricted = false`.
    /// Restricted entries stay stored and verified but are left out of
    /// queries unless they ask for them
    /// ([`Query::include_restricted`](crate::store::Query::include_restricted)).
    ///
    /// One sealed `restriction` record names the entries first, then their
    /// flags are set; the verifier reports a flag that the trail's
    /// restriction records do not state. Nothing is recorded when no entry
    /// is about the subject. Returns how many entries changed.
    pub async fn restrict_subject(&self, subject: &Subject, restricted: bool) -> Result<u64> {
        let seqs: Vec<u64> = self.entries_about(subject).await?.into_keys().collect();
        if seqs.is_empty() {
            return Ok(0);
        }
        let record = RestrictionRecord::of(restricted, seqs.iter().copied());
        self.append_record(EntryKind::Restriction, record.to_body())
            .await?;
        let mut changed = 0;
        for chunk in seqs.chunks(ERASURE_BATCH) {
            changed += self
                .store()
                .restrict(self.name(), chunk, restricted)
                .await?;
        }
        Ok(changed)
    }

    /// The events of this trail any facet of the subject selects
    /// (restricted ones included), by seq.
    async fn entries_about(&self, subject: &Subject) -> Result<BTreeMap<u64, Entry>> {
        let mut entries = BTreeMap::new();
        for query in subject.event_queries(self.name()) {
            read_all(self.store().as_ref(), query, |entry| {
                entries.insert(entry.seq, entry);
            })
            .await?;
        }
        Ok(entries)
    }

    /// Seals the redaction record, then erases what it names.
    pub(super) async fn redact(&self, record: &RedactionRecord) -> Result<(u64, u64)> {
        let receipt = self
            .append_record(EntryKind::Redaction, record.to_body())
            .await?;
        let mut erased = 0;
        let mut batch = Vec::with_capacity(ERASURE_BATCH);
        for range in &record.entries {
            for seq in range.first..=range.last {
                batch.push(Erasure {
                    seq,
                    fields: range.fields.clone(),
                });
                if batch.len() == ERASURE_BATCH {
                    erased += self.store().erase_fields(self.name(), &batch).await?;
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() {
            erased += self.store().erase_fields(self.name(), &batch).await?;
        }
        Ok((receipt.seq, erased))
    }
}

/// The names of the personal fields of an entry that still hold a value.
fn personal_fields(entry: &Entry) -> Vec<String> {
    entry
        .body
        .iter()
        .filter(|(_, field)| matches!(field, Field::Personal { .. }))
        .map(|(name, _)| name.to_owned())
        .collect()
}
