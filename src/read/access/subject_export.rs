//! A data subject's exports, for the rights of access and portability: all
//! of the subject's entries as JSON Lines or as CSV, recorded before the
//! first line is written.

use std::io::Write;

use serde_json::Value;

use super::subject::FacetMerge;
use super::{AccessError, AuditReader, Subject, describe};
use crate::StoreError;
use crate::event::HostingAction;
use crate::model::{Entry, EntryKind, Field};
use crate::read::write_entry_line;
use crate::store::Query;

impl AuditReader {
    /// Writes every entry about `subject` as JSON Lines: one entry per line,
    /// every stored field (as [`crate::read::export_json_lines`] writes them).
    /// Oldest first, each entry once; before the first entry of each trail,
    /// that trail's key entries (its genesis and key rotations, which hold
    /// no personal data), so that
    /// [`crate::VerificationKey::key_line_of`] and
    /// [`crate::VerificationKey::check_entry`] check every line with the
    /// export alone. Recorded as `audit_log.export` before the first line is
    /// written. Returns the number of lines written.
    pub async fn export_json_lines<W: Write>(
        &self,
        subject: &Subject,
        out: &mut W,
    ) -> Result<u64, AccessError> {
        self.export(subject, "jsonl", KeyEntries::Before, |entry| {
            write_entry_line(out, entry).map_err(AccessError::Write)
        })
        .await?
        .finish(|| out.flush())
    }

    /// Writes every entry about `subject` as CSV (RFC 4180 quoting), one
    /// row per entry under a header row of [`CSV_COLUMNS`]. Each row
    /// carries the trail, seq and MAC with the rest of the MAC input, so an
    /// auditor can match it to the sealed entry. Oldest first, each entry
    /// once. Recorded as `audit_log.export` before the first row.
    ///
    /// Spreadsheet formula injection is neutralised: a cell that starts
    /// with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
    /// apostrophe (`'`), which spreadsheets show as text. No sealed column
    /// (trail, seq, MACs, timestamps) can start with one of them, so the
    /// check columns are never changed.
    pub async fn export_csv<W: Write>(
        &self,
        subject: &Subject,
        out: &mut W,
    ) -> Result<u64, AccessError> {
        let mut csv = csv::Writer::from_writer(out);
        let csv_error = |err: csv::Error| AccessError::Write(err.into());
        // The header too waits until the export is recorded.
        let mut header = Some(CSV_COLUMNS);
        let done = self
            .export(subject, "csv", KeyEntries::Omitted, |entry| {
                if let Some(header) = header.take() {
                    csv.write_record(header).map_err(csv_error)?;
                }
                csv.write_record(csv_row(entry).map(neutralise))
                    .map_err(csv_error)
            })
            .await?;
        if let Some(header) = header {
            csv.write_record(header).map_err(csv_error)?;
        }
        done.finish(|| csv.flush())
    }

    /// Records the export, then streams the subject's entries to `write`,
    /// each trail's key entries before its first entry if asked to.
    async fn export(
        &self,
        subject: &Subject,
        format: &str,
        key_entries: KeyEntries,
        mut write: impl FnMut(&Entry) -> Result<(), AccessError>,
    ) -> Result<Exported, AccessError> {
        if subject.facets.is_empty() {
            return Err(AccessError::EmptySubject);
        }
        let facets = subject
            .facets
            .iter()
            .map(|facet| self.confine(facet))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = [
            ("format", Value::from(format)),
            (
                "subject",
                Value::from(facets.iter().map(describe).collect::<Vec<_>>().join(" | ")),
            ),
        ];
        self.record(HostingAction::AuditLogExport, None, &meta)
            .await?;
        let mut merge = FacetMerge::new(facets);
        let mut written = 0;
        let mut keyed = std::collections::BTreeSet::new();
        while let Some(entry) = merge.next(&*self.store).await? {
            if !self.is_own(&entry) {
                continue;
            }
            if key_entries == KeyEntries::Before && keyed.insert(entry.trail.clone()) {
                for key_entry in self.key_entries(&entry.trail).await? {
                    if key_entry.seq != entry.seq {
                        write(&key_entry)?;
                        written += 1;
                    }
                }
            }
            write(&entry)?;
            written += 1;
        }
        Ok(Exported(written))
    }

    /// A trail's genesis and key rotations: public records that say which
    /// key line its entries are sealed on. Read past the tenant filter, as
    /// they belong to no tenant.
    async fn key_entries(&self, trail: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for kind in [EntryKind::Genesis, EntryKind::KeyRotation] {
            let mut query = Query::new()
                .trail(trail)
                .kind(kind)
                .include_restricted()
                .limit(crate::store::MAX_PAGE_SIZE);
            loop {
                let page = self.store.query(&query).await?;
                entries.extend(page.entries);
                match page.next {
                    Some(cursor) => query = query.after(cursor),
                    None => break,
                }
            }
        }
        entries.sort_by_key(|entry| entry.seq);
        Ok(entries)
    }
}

/// Whether an export writes each trail's key entries before its first
/// entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyEntries {
    Before,
    Omitted,
}

/// The count of an export whose entries were written, before the output
/// is flushed.
struct Exported(u64);

impl Exported {
    fn finish(self, flush: impl FnOnce() -> std::io::Result<()>) -> Result<u64, AccessError> {
        flush().map_err(AccessError::Write)?;
        Ok(self.0)
    }
}

/// The columns of [`AuditReader::export_csv`], in order. `fields` holds
/// every body field still present as a JSON object (erased ones as
/// `null`); `prev_mac`, `body_commitment` and `mac` are lowercase hex, the
/// way [`crate::read::export_json_lines`] writes them.
pub const CSV_COLUMNS: [&str; 18] = [
    "trail",
    "seq",
    "epoch",
    "key_id",
    "recorded_at",
    "kind",
    "action",
    "outcome",
    "actor",
    "tenant",
    "target_type",
    "target_id",
    "ip",
    "request_id",
    "fields",
    "prev_mac",
    "body_commitment",
    "mac",
];

fn csv_row(entry: &Entry) -> [String; 18] {
    let value = |name: &str| entry.value(name).unwrap_or_default().to_owned();
    let fields: serde_json::Map<String, Value> = entry
        .body
        .iter()
        .map(|(name, field)| {
            let value = match field {
                Field::Redacted { .. } => Value::Null,
                other => Value::from(other.value().unwrap_or_default()),
            };
            (name.to_owned(), value)
        })
        .collect();
    [
        entry.trail.clone(),
        entry.seq.to_string(),
        entry.epoch.to_string(),
        entry.key_id.clone(),
        crate::model::format_timestamp(entry.recorded_at),
        entry.kind.as_str().to_owned(),
        value("action"),
        value("outcome"),
        value("actor.name"),
        value("tenant"),
        value("target.type"),
        value("target.id"),
        value("context.ip"),
        value("context.request_id"),
        Value::Object(fields).to_string(),
        entry.prev_mac.to_hex(),
        entry.body_commitment.to_hex(),
        entry.mac.to_hex(),
    ]
}

/// A cell a spreadsheet will not run as a formula (OWASP's advice on CSV
/// injection: prefix the characters that start one).
fn neutralise(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starters_get_an_apostrophe_and_nothing_else_changes() {
        for cell in ["=1+1", "+49 30", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell.to_owned()), format!("'{cell}"));
        }
        for cell in ["kunde123", "", "a=b", " =1", "'=1", "2026-11-29T08:00:00Z"] {
            assert_eq!(neutralise(cell.to_owned()), cell);
        }
    }
}
