//! Appending to an SQLite store: batches as a few multi-row inserts, in a
//! transaction that holds the write lock and checks the head first; and
//! the same inside a caller's transaction.

use std::path::Path;
use std::sync::OnceLock;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

use super::SqliteStore;
use super::dialect::to_i64;
use super::errors::{classify, is_unique_violation};
use crate::StoreError;
use crate::model::{Entry, Head};
use crate::store::query::IndexedFields;
use crate::store::sql::{SqlStore, body_json, decode_head};
use crate::store::{check_batch, conflict_after};

/// SQLite's limit on bound parameters per statement (the bundled SQLite's
/// `SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_BOUND_PARAMETERS: usize = 32_766;

/// The columns an insert binds, in order.
const INSERT_COLUMNS: [&str; 18] = [
    "trail",
    "seq",
    "epoch",
    "key_id",
    "recorded_at",
    "kind",
    "body",
    "prev_mac",
    "body_commitment",
    "mac",
    "action",
    "tenant",
    "actor",
    "target_type",
    "target_id",
    "ip",
    "outcome",
    "request_id",
];

/// The largest multi-row insert: a power of two, so that every batch splits
/// into at most a dozen statement shapes that stay prepared in the cache.
const MAX_INSERT_ROWS: usize = {
    let fit = MAX_BOUND_PARAMETERS / INSERT_COLUMNS.len();
    let mut rows = 1;
    while rows * 2 <= fit && rows * 2 <= 1024 {
        rows *= 2;
    }
    rows
};

/// The head of a trail, read on `connection`.
pub(super) async fn head_on<'c>(
    connection: impl sqlx::SqliteExecutor<'c>,
    path: &Path,
    trail: &str,
) -> Result<Option<Head>, StoreError> {
    let row = sqlx::query(
        "SELECT seq, epoch, kind, recorded_at, mac FROM entries \
         WHERE trail = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(trail)
    .fetch_optional(connection)
    .await
    .map_err(|err| classify(path, err))?;
    row.map(|row| decode_head(trail, &row)).transpose()
}

/// Locks the trail's head for the transaction on `connection` and reads
/// it.
pub(super) async fn lock_head(
    store: &SqliteStore,
    connection: &mut SqliteConnection,
    trail: &str,
) -> Result<Option<Head>, StoreError> {
    // A write statement first: it takes the database's write lock (if
    // the transaction does not hold it yet) before the head is read, so
    // the head cannot go stale before the insert.
    sqlx::query("INSERT OR IGNORE INTO trails (name) VALUES (?)")
        .bind(trail)
        .execute(&mut *connection)
        .await
        .map_err(|err| store.classify(err))?;
    head_on(&mut *connection, &store.path, trail).await
}

/// Inserts a batch inside the transaction on `connection`, whose head
/// [`lock_head`] locked.
pub(super) async fn insert_locked(
    store: &SqliteStore,
    connection: &mut SqliteConnection,
    trail: &str,
    after: Option<u64>,
    entries: &[Entry],
) -> Result<(), StoreError> {
    let inserts = insert_statements(trail, after, entries)?;
    let conflict = || conflict_after(trail, after);
    insert_entries(connection, &store.path, inserts, conflict).await
}

impl SqliteStore {
    /// Runs a batch's inserts in one transaction, only if the trail's head
    /// is still `after`.
    pub(super) async fn insert_after(
        &self,
        trail: &str,
        after: Option<u64>,
        inserts: Vec<InsertQuery<'static>>,
    ) -> Result<(), StoreError> {
        let conflict = || conflict_after(trail, after);
        let expected = after.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
        // IMMEDIATE takes the write lock now: the head read below cannot
        // go stale before the insert, whichever process writes next.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|err| self.classify(err))?;
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM entries WHERE trail = ?")
            .bind(trail)
            .fetch_one(&mut *tx)
            .await
            .map_err(|err| self.classify(err))?;
        if head != expected {
            return Err(conflict());
        }
        if after.is_none() && !inserts.is_empty() {
            sqlx::query("INSERT OR IGNORE INTO trails (name) VALUES (?)")
                .bind(trail)
                .execute(&mut *tx)
                .await
                .map_err(|err| self.classify(err))?;
        }
        insert_entries(&mut tx, &self.path, inserts, conflict).await?;
        tx.commit().await.map_err(|err| self.classify(err))
    }
}

/// The insert statements of a batch that continues `after`, every value
/// bound: few statements of up to [`MAX_INSERT_ROWS`] rows each.
pub(super) fn insert_statements(
    trail: &str,
    after: Option<u64>,
    entries: &[Entry],
) -> Result<Vec<InsertQuery<'static>>, StoreError> {
    check_batch(trail, after, entries)?;
    let mut rest = entries.iter();
    let mut remaining = entries.len();
    let mut inserts = Vec::new();
    while remaining > 0 {
        let rows = chunk_rows(remaining);
        let mut insert = sqlx::query_with(insert_sql(rows), SqliteArguments::default());
        for entry in rest.by_ref().take(rows) {
            insert = bind_entry(insert, entry, encode_body(trail, entry)?);
        }
        remaining -= rows;
        inserts.push(insert);
    }
    Ok(inserts)
}

/// Runs a batch's insert statements on `connection`, inside the
/// transaction that checked the head.
async fn insert_entries(
    connection: &mut SqliteConnection,
    path: &Path,
    inserts: Vec<InsertQuery<'static>>,
    conflict: impl Fn() -> StoreError,
) -> Result<(), StoreError> {
    for insert in inserts {
        insert.execute(&mut *connection).await.map_err(|err| {
            // The head check makes this unreachable for writers that
            // follow the protocol; the key still stops a fork.
            if is_unique_violation(&err) {
                conflict()
            } else {
                classify(path, err)
            }
        })?;
    }
    Ok(())
}

/// Rows in the next insert statement of a batch with `remaining` rows: the
/// largest power of two that fits, so statement shapes repeat.
fn chunk_rows(remaining: usize) -> usize {
    let mut rows = MAX_INSERT_ROWS;
    while rows > remaining {
        rows /= 2;
    }
    rows
}

/// The multi-row insert for `rows` rows (a power of two up to
/// [`MAX_INSERT_ROWS`]), built once per shape.
fn insert_sql(rows: usize) -> &'static str {
    const SHAPES: usize = MAX_INSERT_ROWS.trailing_zeros() as usize + 1;
    static SQL: [OnceLock<String>; SHAPES] = [const { OnceLock::new() }; SHAPES];
    let shape = rows.trailing_zeros() as usize;
    SQL[shape.min(SHAPES - 1)].get_or_init(|| {
        let placeholders = format!("({})", vec!["?"; INSERT_COLUMNS.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO entries ({}) VALUES ",
            INSERT_COLUMNS.join(", ")
        );
        let values = vec![placeholders.as_str(); 1 << shape.min(SHAPES - 1)];
        sql.push_str(&values.join(", "));
        sql
    })
}

type InsertQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Binds one entry's columns, in [`INSERT_COLUMNS`] order.
fn bind_entry<'q>(insert: InsertQuery<'q>, entry: &Entry, body: String) -> InsertQuery<'q> {
    let fields = IndexedFields::of(entry);
    let owned = |value: Option<&str>| value.map(str::to_owned);
    // `check_batch` and `encode_body` have checked that seq and epoch fit.
    insert
        .bind(entry.trail.clone())
        .bind(entry.seq as i64)
        .bind(entry.epoch as i64)
        .bind(entry.key_id.clone())
        .bind(entry.recorded_at.timestamp_micros())
        .bind(entry.kind.as_str())
        .bind(body)
        .bind(entry.prev_mac.as_bytes().to_vec())
        .bind(entry.body_commitment.as_bytes().to_vec())
        .bind(entry.mac.as_bytes().to_vec())
        .bind(owned(fields.action))
        .bind(owned(fields.tenant))
        .bind(owned(fields.actor))
        .bind(owned(fields.target_type))
        .bind(owned(fields.target_id))
        .bind(owned(fields.ip))
        .bind(owned(fields.outcome))
        .bind(owned(fields.request_id))
}

/// The stored text of an entry's body; also checks the integer columns.
fn encode_body(trail: &str, entry: &Entry) -> Result<String, StoreError> {
    to_i64(trail, "seq", entry.seq)?;
    to_i64(trail, "epoch", entry.epoch)?;
    body_json(trail, entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_few_statement_shapes() {
        assert_eq!(MAX_INSERT_ROWS, 1024);
        assert!(MAX_INSERT_ROWS * INSERT_COLUMNS.len() <= MAX_BOUND_PARAMETERS);
        let mut shapes = std::collections::BTreeSet::new();
        for batch in 1..=3000 {
            let mut remaining = batch;
            while remaining > 0 {
                let rows = chunk_rows(remaining);
                assert!(rows.is_power_of_two() && rows <= remaining);
                shapes.insert(rows);
                remaining -= rows;
            }
        }
        assert_eq!(shapes.len(), 11);
        let sql = insert_sql(4);
        assert_eq!(sql.matches('?').count(), 4 * INSERT_COLUMNS.len());
    }
}
