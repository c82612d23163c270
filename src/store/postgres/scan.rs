//! Reading a PostgreSQL store: scans in chunks of rows, and the list of
//! trails.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Postgres, Row};

use super::PostgresStore;
use crate::StoreError;
use crate::store::sql::SqlStore;
use crate::store::sql::{ChunkReader, Chunks, Dialect, ScanRow, decode_rows, scan_sql};

/// The names of every trail that has entries, and of every trail with a
/// head in `trail_heads`.
///
/// The heads are only a list kept beside the entries for appends: a row
/// deleted from it must not hide a trail from the verifier. So the
/// entries' primary key is walked from one trail to the next (a recursive
/// query that seeks the first name after the one before, in every
/// partition's index), one seek per trail and partition instead of a read
/// of every entry.
const TRAILS_SQL: &str = "\
WITH RECURSIVE stored(name) AS (
    (SELECT trail FROM entries ORDER BY trail LIMIT 1)
    UNION ALL
    SELECT (SELECT trail FROM entries WHERE trail > stored.name ORDER BY trail LIMIT 1)
    FROM stored WHERE stored.name IS NOT NULL
)
SELECT name FROM stored WHERE name IS NOT NULL
UNION SELECT trail FROM trail_heads WHERE seq IS NOT NULL
ORDER BY 1";

/// The names of every trail, [`TRAILS_SQL`].
pub(super) async fn trails(store: &PostgresStore) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(TRAILS_SQL)
        .fetch_all(&store.pool)
        .await
        .map_err(|err| store.classify(err))
}

#[async_trait]
impl<T: ScanRow> ChunkReader for Chunks<PostgresStore, T> {
    type Chunk = Vec<PgRow>;
    type Item = T;

    /// The rows of one scan chunk, not yet decoded.
    async fn fetch_chunk(&self, trail: &str, from: i64) -> Result<Vec<PgRow>, StoreError> {
        // One statement per kind of row (a static in a generic function is
        // shared by every `T`).
        static SQL: [std::sync::OnceLock<String>; 2] = [const { std::sync::OnceLock::new() }; 2];
        let sql = SQL[usize::from(T::BESIDE)]
            .get_or_init(|| Postgres::placeholders(&scan_sql::<T>("restricted")).into_owned());
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(trail)
            .bind(from)
            .bind(Postgres::SCAN_CHUNK)
            .fetch_all(&self.store.pool)
            .await
            .map_err(|err| self.store.classify(err))
    }

    fn is_empty(rows: &Vec<PgRow>) -> bool {
        rows.is_empty()
    }

    /// After the last seq of a full chunk. The seq column is typed, so
    /// reading it fails only if the database does; that ends the scan with
    /// the error.
    fn next_from(trail: &str, rows: &Vec<PgRow>) -> Result<Option<i64>, StoreError> {
        if (rows.len() as i64) < Postgres::SCAN_CHUNK {
            return Ok(None);
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let seq: i64 = last.try_get(1).map_err(|err| StoreError::Corrupt {
            trail: trail.to_owned(),
            seq: 0,
            reason: format!("a seq could not be read: {err}"),
        })?;
        Ok(seq.checked_add(1))
    }

    /// Each row on its own: a row damaged beyond decoding is a finding at
    /// its seq, and must not hide the rows around it.
    fn decode(trail: &str, rows: Vec<PgRow>) -> Vec<Result<T, StoreError>> {
        decode_rows::<Postgres, T>(trail, &rows)
    }
}
