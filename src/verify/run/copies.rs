//! What a store keeps beside a sealed entry must agree with the trail: the
//! copies of body values it filters queries on, and the restriction flag
//! the trail's sealed restriction records set.

use super::{Item, TrailVerification};
use crate::model::Entry;
use crate::retention::RestrictionRecord;
use crate::store::CopyMismatch;
use crate::verify::report::FindingKind;

impl TrailVerification<'_> {
    /// The copies a store keeps of a sealed entry's body values for queries
    /// must agree with the body: queries, tenant-confined reads and subject
    /// exports filter on them.
    pub(super) fn check_copies(&mut self, seq: u64, item: &Item) {
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
    pub(super) fn restriction_record(&mut self, entry: &Entry, seq: u64) {
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
    pub(super) fn check_restriction_flags(&mut self) {
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
