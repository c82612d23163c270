//! Findings that blame a key rather than entries: runs of entries sealed
//! under a key id no verification key was given for, and a verification
//! key that seals nothing of the trail.

use super::{Item, TrailVerification};
use crate::model::{Digest, Entry, EntryKind, escape_text};
use crate::seal::genesis_fields;
use crate::verify::report::FindingKind;

/// A run of entries sealed under a key id no verification key was given
/// for, reported as one finding.
pub(super) struct UnknownKeyRun {
    first: u64,
    last: u64,
    key_id: String,
}

impl TrailVerification<'_> {
    /// Entries under a key id no key was given for: one finding per run of
    /// them, not one per entry.
    pub(super) fn unknown_key(&mut self, item: &Item) {
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

    pub(super) fn close_unknown_key_run(&mut self) {
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
    pub(super) fn note_unauthentic_genesis(&mut self, entry: &Entry) {
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

    /// When no entry verifies at all, the key is the likelier culprit than
    /// every entry: one finding says so instead of one per entry.
    pub(super) fn blame_the_key(&mut self) {
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
}
