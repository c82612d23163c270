//! Rebuilding entries, heads and what is kept beside them from stored
//! rows. Stored data may have been tampered with, so every column is
//! checked, never trusted: a row that cannot be decoded is an error at its
//! seq, never a panic.

use chrono::{DateTime, Utc};

use super::Dialect;
use crate::StoreError;
use crate::model::{Body, Digest, Entry, EntryKind, Head, Mac};
use crate::store::StoredEntry;
use crate::store::query::{COPIED_FIELDS, StoredCopy, mismatched_copies};

/// The columns an entry is rebuilt from, in the order [`decode_entry`]
/// reads them.
pub(crate) const ENTRY_COLUMNS: &str =
    "trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, body_commitment, mac";

/// How many columns [`ENTRY_COLUMNS`] names.
pub(crate) const ENTRY_COLUMN_COUNT: usize = 10;

/// A stored row's columns, read as the backend stores them.
pub(crate) trait SqlRow: sqlx::Row {
    /// An integer column.
    fn integer(&self, index: usize) -> Result<i64, sqlx::Error>;

    /// A text column.
    fn text(&self, index: usize) -> Result<&str, sqlx::Error>;

    /// A text column that may be NULL.
    fn optional_text(&self, index: usize) -> Result<Option<&str>, sqlx::Error>;

    /// A byte string column.
    fn bytes(&self, index: usize) -> Result<&[u8], sqlx::Error>;

    /// A point in time: an error if the column cannot be read, or inside
    /// `Ok` the time, or why the stored value is none.
    fn time(&self, index: usize) -> Result<Result<DateTime<Utc>, String>, sqlx::Error>;

    /// A point in time that may be NULL, as [`SqlRow::time`].
    fn optional_time(
        &self,
        index: usize,
    ) -> Result<Option<Result<DateTime<Utc>, String>>, sqlx::Error>;

    /// The restriction flag. Queries show only rows whose flag reads as
    /// not restricted; anything else hides the entry from them, so it
    /// counts as restricted.
    fn restricted(&self, index: usize) -> bool;
}

/// A seq or epoch as the signed integer both databases store; fails for
/// values beyond it.
pub(crate) fn to_i64<D: Dialect>(trail: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidBatch {
        trail: trail.to_owned(),
        reason: format!("{what} {value} is beyond what {} can store", D::NAME),
    })
}

/// The error for a stored entry that cannot be decoded; a seq that is no
/// seq is reported as 0.
pub(crate) fn corrupt(trail: &str, seq: i64, reason: String) -> StoreError {
    StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: u64::try_from(seq).unwrap_or(0),
        reason,
    }
}

/// The stored columns of an entry, read but not yet checked.
pub(crate) struct StoredColumns<'r> {
    pub(crate) seq: i64,
    pub(crate) epoch: i64,
    pub(crate) key_id: &'r str,
    pub(crate) recorded_at: Result<DateTime<Utc>, String>,
    pub(crate) kind: &'r str,
    pub(crate) body: &'r str,
    /// The 32 bytes, or how many bytes were stored instead.
    pub(crate) prev_mac: Result<[u8; 32], usize>,
    pub(crate) body_commitment: Result<[u8; 32], usize>,
    pub(crate) mac: Result<[u8; 32], usize>,
}

impl StoredColumns<'_> {
    /// The entry, once every column is checked.
    pub(crate) fn into_entry(self, trail: String) -> Result<Entry, StoreError> {
        let corrupt = |reason: String| corrupt(&trail, self.seq, reason);
        let seq = self.seq;
        let epoch = self.epoch;
        let mac = |bytes: Result<[u8; 32], usize>, what: &str| {
            bytes.map_err(|len| corrupt(format!("{what} is {len} bytes, not 32")))
        };
        Ok(Entry {
            seq: u64::try_from(seq).map_err(|_| corrupt(format!("invalid seq {seq}")))?,
            epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("invalid epoch {epoch}")))?,
            key_id: self.key_id.to_owned(),
            recorded_at: self.recorded_at.map_err(corrupt)?,
            kind: EntryKind::from_name(self.kind).map_err(|err| corrupt(err.to_string()))?,
            body: serde_json::from_str::<Body>(self.body)
                .map_err(|err| corrupt(format!("the body is not valid: {err}")))?,
            prev_mac: Mac::from_bytes(mac(self.prev_mac, "prev_mac")?),
            body_commitment: Digest::from_bytes(mac(self.body_commitment, "body_commitment")?),
            mac: Mac::from_bytes(mac(self.mac, "mac")?),
            trail,
        })
    }
}

/// Rebuilds an entry from a row of [`ENTRY_COLUMNS`]; `trail_hint` names
/// the trail if the row's own name cannot be read.
pub(crate) fn decode_entry<R: SqlRow>(trail_hint: &str, row: &R) -> Result<Entry, StoreError> {
    let trail = row
        .text(0)
        .map_or_else(|_| trail_hint.to_owned(), str::to_owned);
    let seq = row.integer(1).unwrap_or(-1);
    let column = |reason: sqlx::Error| corrupt(&trail, seq, reason.to_string());
    let mac = |index: usize| -> Result<Result<[u8; 32], usize>, StoreError> {
        let bytes = row.bytes(index).map_err(column)?;
        Ok(<[u8; 32]>::try_from(bytes).map_err(|_| bytes.len()))
    };
    let columns = StoredColumns {
        seq,
        epoch: row.integer(2).map_err(column)?,
        key_id: row.text(3).map_err(column)?,
        recorded_at: row.time(4).map_err(column)?,
        kind: row.text(5).map_err(column)?,
        body: row.text(6).map_err(column)?,
        prev_mac: mac(7)?,
        body_commitment: mac(8)?,
        mac: mac(9)?,
    };
    columns.into_entry(trail)
}

/// Rebuilds a head from a row of `seq, epoch, kind, recorded_at, mac`.
pub(crate) fn decode_head<R: SqlRow>(trail: &str, row: &R) -> Result<Head, StoreError> {
    let seq = row.integer(0).unwrap_or(-1);
    let corrupt = |reason: String| corrupt(trail, seq, reason);
    let column = |err: sqlx::Error| corrupt(err.to_string());
    let epoch = row.integer(1).map_err(column)?;
    let kind = row.text(2).map_err(column)?;
    let mac = row.bytes(4).map_err(column)?;
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| corrupt(format!("invalid seq {seq}")))?,
        epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("invalid epoch {epoch}")))?,
        kind: EntryKind::from_name(kind).map_err(|err| corrupt(err.to_string()))?,
        recorded_at: row.time(3).map_err(column)?.map_err(corrupt)?,
        mac: Mac::from_slice(mac).map_err(|err| corrupt(err.to_string()))?,
    })
}

/// What is stored beside an entry: its query columns (in
/// [`COPIED_FIELDS`] order) and its restriction flag.
#[derive(Clone, Copy)]
pub(crate) struct Beside<'r> {
    pub(crate) copies: [StoredCopy<'r>; COPIED_FIELDS.len()],
    pub(crate) restricted: bool,
}

/// What a scan yields per row: the entry alone, or the entry with what is
/// stored beside it.
pub(crate) trait ScanRow: Sized + Send + 'static {
    /// Whether rows carry the query columns and the restriction flag.
    const BESIDE: bool;

    /// The item of an entry and, when the rows carry it, what is stored
    /// beside it.
    fn assemble<D: Dialect>(entry: Entry, beside: Option<&Beside<'_>>) -> Self;

    /// Decodes a row of [`super::scan_sql`].
    fn from_row<D: Dialect>(trail: &str, row: &D::Row) -> Result<Self, StoreError> {
        let entry = decode_entry(trail, row)?;
        if !Self::BESIDE {
            return Ok(Self::assemble::<D>(entry, None));
        }
        let first = ENTRY_COLUMN_COUNT;
        let copies = std::array::from_fn(|i| match row.optional_text(first + i) {
            Ok(None) => StoredCopy::Null,
            Ok(Some(text)) => StoredCopy::Text(text),
            // Not text: no writer stores that.
            Err(_) => StoredCopy::Unreadable,
        });
        let restricted = row.restricted(first + COPIED_FIELDS.len());
        Ok(Self::assemble::<D>(
            entry,
            Some(&Beside { copies, restricted }),
        ))
    }
}

impl ScanRow for Entry {
    const BESIDE: bool = false;

    fn assemble<D: Dialect>(entry: Entry, _: Option<&Beside<'_>>) -> Self {
        entry
    }
}

impl ScanRow for StoredEntry {
    const BESIDE: bool = true;

    fn assemble<D: Dialect>(entry: Entry, beside: Option<&Beside<'_>>) -> Self {
        let Some(beside) = beside else {
            return StoredEntry::new(entry);
        };
        let mismatched = mismatched_copies(&entry, &beside.copies, D::is_copy_of);
        let mut stored = StoredEntry::new(entry).with_restricted(beside.restricted);
        stored.mismatched_copies = mismatched;
        stored
    }
}

/// Each row decoded on its own: a row damaged beyond decoding is a
/// finding at its seq, and must not hide the rows around it.
pub(crate) fn decode_rows<D: Dialect, T: ScanRow>(
    trail: &str,
    rows: &[D::Row],
) -> Vec<Result<T, StoreError>> {
    rows.iter()
        .map(|row| T::from_row::<D>(trail, row))
        .collect()
}
