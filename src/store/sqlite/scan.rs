//! Reading an SQLite store: scans in chunks that SQLite joins into one
//! value each (rows read one by one where it cannot), and the list of
//! trails.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sqlx::{Row, Sqlite};

use super::SqliteStore;
use super::dialect::decode_time;
use crate::StoreError;
use crate::model::Entry;
use crate::store::StoredEntry;
use crate::store::error::Account;
use crate::store::query::{COPIED_FIELDS, StoredCopy};
use crate::store::sql::rows::{Beside, StoredColumns, corrupt};
use crate::store::sql::{
    ChunkReader, Chunks, Dialect, ScanRow, SqlRow, SqlStore, decode_rows, scan_sql,
};

impl SqliteStore {
    /// One chunk of a scan read row by row: every row decoded on its own, so
    /// a row that was damaged in storage is reported (by the verifier, as a
    /// finding) without hiding the rows after it.
    async fn read_chunk<T: ScanRow>(
        &self,
        sql: &'static str,
        trail: &str,
        from: i64,
    ) -> Result<FetchedChunk<T>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(trail)
            .bind(from)
            .bind(Sqlite::SCAN_CHUNK)
            .fetch_all(&self.pool)
            .await
            .map_err(|err| self.classify(err))?;
        let Some(last_seq) = rows.last().map(|row| row.integer(1)) else {
            return Ok(FetchedChunk::Empty);
        };
        Ok(FetchedChunk::Decoded {
            last_seq: last_seq.ok(),
            entries: decode_rows::<Sqlite, T>(trail, &rows),
        })
    }

    /// The queries of a scan chunk that reads rows as `T`.
    fn scan_queries<T: ScanRow>(&self) -> &'static ScanQueries {
        static QUERIES: [OnceLock<ScanQueries>; 3] = [const { OnceLock::new() }; 3];
        let (index, beside) = match (T::BESIDE, self.restriction_column) {
            (false, _) => (0, None),
            (true, true) => (1, Some("restricted")),
            // Nothing is restricted before the column exists.
            (true, false) => (2, Some("0")),
        };
        QUERIES[index].get_or_init(|| ScanQueries::new(beside))
    }
}

/// The names of every trail, [`TRAILS_SQL`].
pub(super) async fn trails(store: &SqliteStore) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(TRAILS_SQL)
        .fetch_all(&store.pool)
        .await
        .map_err(|err| store.classify(err))?;
    // SQLite stores text that is not UTF-8 as it is given. Such a name
    // is no trail name, and the verifier reports entries stored under
    // it; failing to list the others would hide them all.
    let mut names: Vec<String> = rows
        .iter()
        .map(|row| {
            row.try_get::<String, _>(0).unwrap_or_else(|_| {
                let bytes: Vec<u8> = row.try_get_unchecked(0).unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            })
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Decodes a row of [`ScanQueries::joined`].
fn from_framed<T: ScanRow>(row: FramedRow<'_>, trail: String) -> Result<T, StoreError> {
    let beside = row.beside;
    let entry = row.into_entry(trail)?;
    Ok(T::assemble::<Sqlite>(entry, beside.as_ref()))
}

#[async_trait]
impl<T: ScanRow> ChunkReader for Chunks<SqliteStore, T> {
    type Chunk = FetchedChunk<T>;
    type Item = T;

    /// One chunk of a scan, undecoded. SQLite joins the rows into one
    /// value, since the driver hands each result row from its thread to the
    /// caller on its own, which costs several times what SQLite's read does.
    /// Rows whose columns do not have the stored types (only a file whose
    /// schema was tampered with has them) are read row by row instead.
    async fn fetch_chunk(&self, trail: &str, from: i64) -> Result<FetchedChunk<T>, StoreError> {
        let store = &self.store;
        let queries = store.scan_queries::<T>();
        let fetched = sqlx::query_as::<_, (Option<Vec<u8>>, i64, Option<i64>, Option<bool>)>(
            queries.joined.as_str(),
        )
        .bind(trail)
        .bind(from)
        .bind(Sqlite::SCAN_CHUNK)
        .fetch_one(&store.pool)
        .await;
        match fetched {
            Ok((Some(rows_joined), rows, Some(last_seq), Some(true))) => Ok(FetchedChunk::Joined {
                rows_joined,
                rows,
                last_seq,
                path: Arc::clone(&store.path),
            }),
            Ok((None, 0, ..)) => Ok(FetchedChunk::Empty),
            // Mistyped columns, or a database not in UTF-8: the row-by-row
            // read reports each damaged row on its own.
            _ => store.read_chunk(queries.rows.as_str(), trail, from).await,
        }
    }

    fn is_empty(chunk: &FetchedChunk<T>) -> bool {
        matches!(chunk, FetchedChunk::Empty)
    }

    fn next_from(_trail: &str, chunk: &FetchedChunk<T>) -> Result<Option<i64>, StoreError> {
        Ok(chunk.next_from())
    }

    fn decode(trail: &str, chunk: FetchedChunk<T>) -> Vec<Result<T, StoreError>> {
        chunk.decode(trail)
    }
}

/// The two queries of a scan chunk.
struct ScanQueries {
    /// The rows joined into one value by SQLite.
    joined: String,
    /// The rows one by one, for chunks the joined query cannot frame.
    rows: String,
}

impl ScanQueries {
    /// The queries of a plain scan, or with `beside` (the restriction
    /// flag's column, or a constant for a file without it) of a scan that
    /// also reads the query columns and the flag.
    ///
    /// The joined query gives the rows framed as bytes, the row count, the
    /// last seq, and whether every column has its stored type and size
    /// (and the database stores text as UTF-8, so that text and blobs join
    /// unchanged). A row is `seq epoch recorded_at`, the byte lengths of
    /// key id, kind and body, then (with `beside`) the flag and the byte
    /// lengths of the query columns (`-1` for NULL), each followed by a
    /// space; then the three 32-byte blobs, key id and kind, the query
    /// columns, and the body, as stored. The lengths make any stored text
    /// safe to frame. (Hex or JSON would cost SQLite more than it takes to
    /// read the row.) The body comes last because every `||` copies what
    /// it appends to.
    fn new(beside: Option<&str>) -> Self {
        let mut numbers: Vec<String> = [
            "seq",
            "epoch",
            "recorded_at",
            "octet_length(key_id)",
            "octet_length(kind)",
            "octet_length(body)",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut texts: Vec<String> = vec!["key_id".into(), "kind".into()];
        let mut checks = "typeof(seq) = 'integer' AND typeof(epoch) = 'integer' \
             AND typeof(key_id) = 'text' AND typeof(recorded_at) = 'integer' \
             AND typeof(kind) = 'text' AND typeof(body) = 'text' \
             AND typeof(prev_mac) = 'blob' AND length(prev_mac) = 32 \
             AND typeof(body_commitment) = 'blob' AND length(body_commitment) = 32 \
             AND typeof(mac) = 'blob' AND length(mac) = 32"
            .to_owned();
        if let Some(flag) = beside {
            numbers.push(flag.to_owned());
            checks.push_str(&format!(" AND typeof({flag}) = 'integer'"));
            for (column, _) in COPIED_FIELDS {
                numbers.push(format!("ifnull(octet_length({column}), -1)"));
                texts.push(format!("ifnull({column}, '')"));
                checks.push_str(&format!(" AND typeof({column}) IN ('text', 'null')"));
            }
        }
        texts.push("body".into());
        let format = "%d ".repeat(numbers.len());
        let joined = format!(
            "SELECT CAST(group_concat(printf('{format}', {}) \
             || prev_mac || body_commitment || mac || {}, '') AS BLOB), \
             count(*), max(seq), min({checks}) \
             AND (SELECT encoding FROM pragma_encoding) = 'UTF-8' \
             FROM (SELECT * FROM entries WHERE trail = ? AND seq >= ? ORDER BY seq LIMIT ?)",
            numbers.join(", "),
            texts.join(" || "),
        );
        let rows = match beside {
            Some(flag) => scan_sql::<StoredEntry>(flag),
            None => scan_sql::<Entry>(""),
        };
        Self { joined, rows }
    }
}

/// The names of every trail that has entries, and of every trail the
/// `trails` table names.
///
/// The table is only a list kept beside the entries: a row deleted from it,
/// or a view in its place, must not hide a trail from the verifier. So the
/// entries' primary key is walked from one trail to the next (a recursive
/// query that seeks the first name after the one before), one index seek per
/// trail instead of a read of every entry.
pub(super) const TRAILS_SQL: &str = "WITH RECURSIVE stored(name) AS ( \
     SELECT (SELECT trail FROM entries ORDER BY trail LIMIT 1) \
     UNION ALL \
     SELECT (SELECT trail FROM entries WHERE trail > stored.name ORDER BY trail LIMIT 1) \
     FROM stored WHERE stored.name IS NOT NULL) \
     SELECT name FROM stored WHERE name IS NOT NULL \
     UNION SELECT name FROM trails ORDER BY 1";

/// One chunk of a scan as read from the database.
pub(crate) enum FetchedChunk<T> {
    /// No rows: the scan is done.
    Empty,
    /// Rows joined by SQLite, not yet decoded.
    Joined {
        rows_joined: Vec<u8>,
        rows: i64,
        last_seq: i64,
        /// The database file, to name if SQLite framed the rows wrongly.
        path: Arc<PathBuf>,
    },
    /// Rows read and decoded one by one.
    Decoded {
        entries: Vec<Result<T, StoreError>>,
        last_seq: Option<i64>,
    },
}

impl<T: ScanRow> FetchedChunk<T> {
    /// Where the next chunk starts, unless this one was the last.
    fn next_from(&self) -> Option<i64> {
        let (rows, last_seq) = match self {
            FetchedChunk::Empty => return None,
            FetchedChunk::Joined { rows, last_seq, .. } => (*rows, Some(*last_seq)),
            FetchedChunk::Decoded { entries, last_seq } => (entries.len() as i64, *last_seq),
        };
        match last_seq {
            Some(last) if rows == Sqlite::SCAN_CHUNK => last.checked_add(1),
            _ => None,
        }
    }

    fn decode(self, trail: &str) -> Vec<Result<T, StoreError>> {
        match self {
            FetchedChunk::Empty => Vec::new(),
            FetchedChunk::Joined {
                rows_joined,
                rows,
                path,
                ..
            } => decode_joined(trail, &rows_joined, rows).unwrap_or_else(|detail| {
                vec![Err(StoreError::DatabaseCorrupt {
                    database: path.display().to_string(),
                    source: Account::boxed(detail),
                })]
            }),
            FetchedChunk::Decoded { entries, .. } => entries,
        }
    }
}

/// Decodes the rows of a joined chunk ([`ScanQueries::joined`]), in seq
/// order; fails if the value is not framed as the query frames it.
fn decode_joined<T: ScanRow>(
    trail: &str,
    mut joined: &[u8],
    rows: i64,
) -> Result<Vec<Result<T, StoreError>>, String> {
    let mut framed = Vec::with_capacity(usize::try_from(rows).unwrap_or(0));
    while !joined.is_empty() {
        // SQLite framed these bytes; they are malformed only if SQLite is,
        // which is a damaged database to report, not a finding at a seq.
        let (row, rest) = split_framed_row(joined, T::BESIDE)
            .ok_or_else(|| format!("a scan chunk of trail {trail} is not framed as queried"))?;
        framed.push(row);
        joined = rest;
    }
    if i64::try_from(framed.len()) != Ok(rows) {
        return Err(format!(
            "a scan chunk of trail {trail} holds {} rows, not the {rows} counted",
            framed.len()
        ));
    }
    // group_concat keeps the subquery's order in practice, but SQLite does
    // not promise it.
    if !framed.is_sorted_by_key(|row| row.seq) {
        framed.sort_by_key(|row| row.seq);
    }
    Ok(framed
        .into_iter()
        .map(|row| from_framed(row, trail.to_owned()))
        .collect())
}

/// Splits the first framed row off the bytes; `beside` as the chunk was
/// queried.
fn split_framed_row(joined: &[u8], beside: bool) -> Option<(FramedRow<'_>, &[u8])> {
    let mut rest = joined;
    let mut number = || -> Option<i64> {
        let (digits, after) = rest.split_at(rest.iter().position(|&byte| byte == b' ')?);
        rest = &after[1..];
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let seq = number()?;
    let epoch = number()?;
    let recorded_at = number()?;
    let lengths = [number()?, number()?, number()?];
    let flag_and_copies = if beside {
        let flag = number()?;
        let mut copy_lengths = [0; COPIED_FIELDS.len()];
        for length in &mut copy_lengths {
            *length = number()?;
        }
        Some((flag, copy_lengths))
    } else {
        None
    };
    let mut take = |len: i64| -> Option<&[u8]> {
        let (taken, after) = rest.split_at_checked(usize::try_from(len).ok()?)?;
        rest = after;
        Some(taken)
    };
    let mut take_mac = || -> Option<[u8; 32]> { take(32)?.try_into().ok() };
    let (prev_mac, body_commitment, mac) = (take_mac()?, take_mac()?, take_mac()?);
    let (key_id, kind) = (take(lengths[0])?, take(lengths[1])?);
    let beside = match flag_and_copies {
        Some((flag, copy_lengths)) => {
            let mut copies = [StoredCopy::Null; COPIED_FIELDS.len()];
            for (copy, len) in copies.iter_mut().zip(copy_lengths) {
                if len >= 0 {
                    // Text that is not UTF-8 is no value a writer stores.
                    *copy =
                        text("copy", take(len)?).map_or(StoredCopy::Unreadable, StoredCopy::Text);
                }
            }
            Some(Beside {
                restricted: flag != 0,
                copies,
            })
        }
        None => None,
    };
    let body = take(lengths[2])?;
    let columns = text("key_id", key_id).and_then(|key_id| {
        Ok(StoredColumns {
            seq,
            epoch,
            key_id,
            recorded_at: decode_time(recorded_at),
            kind: text("kind", kind)?,
            body: text("body", body)?,
            prev_mac: Ok(prev_mac),
            body_commitment: Ok(body_commitment),
            mac: Ok(mac),
        })
    });
    Some((
        FramedRow {
            seq,
            columns,
            beside,
        },
        rest,
    ))
}

/// Stored text, which SQLite does not check to be UTF-8.
fn text<'r>(column: &str, bytes: &'r [u8]) -> Result<&'r str, String> {
    std::str::from_utf8(bytes)
        .map_err(|err| format!("the {column} is not UTF-8 (byte {})", err.valid_up_to() + 1))
}

/// A row of a joined chunk: its columns, or why they cannot be read.
struct FramedRow<'r> {
    seq: i64,
    columns: Result<StoredColumns<'r>, String>,
    /// What is stored beside the entry, when the chunk was queried with it.
    beside: Option<Beside<'r>>,
}

impl FramedRow<'_> {
    fn into_entry(self, trail: String) -> Result<Entry, StoreError> {
        match self.columns {
            Ok(columns) => columns.into_entry(trail),
            Err(reason) => Err(corrupt(&trail, self.seq, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EntryKind;

    fn joined_chunk<T: ScanRow>(rows_joined: Vec<u8>, rows: i64) -> FetchedChunk<T> {
        FetchedChunk::Joined {
            rows_joined,
            rows,
            last_seq: 0,
            path: Arc::new(PathBuf::from("trail.db")),
        }
    }

    #[test]
    fn a_joined_chunk_decodes_its_rows_or_names_the_damaged_database() {
        let mut row = b"7 2 1000000 3 5 2 ".to_vec();
        row.extend([1u8; 32].iter().chain(&[2u8; 32]).chain(&[0u8; 32]));
        row.extend(b"k 1event{}");
        let decoded = joined_chunk::<Entry>(row.clone(), 1).decode("admin");
        let [Ok(entry)] = decoded.as_slice() else {
            panic!("one entry: {decoded:?}");
        };
        assert_eq!(
            (entry.seq, entry.epoch, entry.kind),
            (7, 2, EntryKind::Event)
        );
        assert_eq!(entry.key_id, "k 1");
        assert_eq!(entry.recorded_at.timestamp_micros(), 1_000_000);
        assert_eq!(entry.prev_mac.as_bytes(), &[1u8; 32]);
        assert_eq!(entry.body_commitment.as_bytes(), &[2u8; 32]);
        assert_eq!(entry.mac.as_bytes(), &[0u8; 32]);
        assert!(entry.body.is_empty());

        let cut_short = row[..row.len() - 1].to_vec();
        for (chunk, rows, detail) in [
            (cut_short, 1, "is not framed as queried"),
            (row, 2, "holds 1 rows, not the 2 counted"),
        ] {
            let decoded = joined_chunk::<Entry>(chunk, rows).decode("admin");
            assert!(
                matches!(
                    decoded.as_slice(),
                    [Err(StoreError::DatabaseCorrupt { database, source })]
                        if database == "trail.db" && source.to_string().ends_with(detail)
                ),
                "{decoded:?}"
            );
        }
    }

    #[test]
    fn a_joined_chunk_with_the_query_columns_decodes_them_beside_the_entry() {
        // The flag and the lengths of the eight query columns (NULL is -1).
        let body = br#"{"tenant":{"public":"kunde123"}}"#;
        let mut row =
            format!("7 2 1000000 3 5 {} 1 -1 8 -1 -1 -1 -1 -1 -1 ", body.len()).into_bytes();
        row.extend([1u8; 32].iter().chain(&[2u8; 32]).chain(&[0u8; 32]));
        row.extend(b"k 1eventkunde456");
        row.extend(body);
        let decoded = joined_chunk::<StoredEntry>(row.clone(), 1).decode("admin");
        let [Ok(stored)] = decoded.as_slice() else {
            panic!("one entry: {decoded:?}");
        };
        assert_eq!(stored.entry.seq, 7);
        assert_eq!(stored.restricted, Some(true));
        assert_eq!(
            stored.mismatched_copies,
            [crate::store::CopyMismatch::new("tenant", "tenant", false)]
        );
        // The plain scan's framing does not fit these rows.
        let decoded = joined_chunk::<Entry>(row, 1).decode("admin");
        assert!(
            matches!(
                decoded.as_slice(),
                [Err(StoreError::DatabaseCorrupt { .. })]
            ),
            "{decoded:?}"
        );
    }
}
