//! The SQLite backend: [`SqliteStore`], the embedded default.
//!
//! One database file holds every trail. The file runs in WAL mode, so
//! readers (queries, the verifier) never block the writer; appends take the
//! write lock up front (`BEGIN IMMEDIATE`), and the primary key on
//! `(trail, seq)` makes a fork impossible even when several processes write
//! to the same file.
//!
//! By concern: [`options`] opens the file (and refuses what is not ours),
//! [`schema`] migrates it, [`append`] writes batches, [`scan`] reads
//! trails, [`retention`] restricts processing, [`errors`] classifies what
//! SQLite reports, and [`dialect`] is what the shared SQL layer
//! ([`super::sql`]) needs to know of SQLite.

mod append;
mod dialect;
mod errors;
mod options;
mod retention;
mod scan;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

pub use options::{DEFAULT_WAL_CHECKPOINT_PAGES, SqliteStoreOptions, SqliteSync};

use super::sql::{self, SqlStore};
use super::{
    EntryStream, EpochSummary, Erasure, Page, PreviousAppend, Query, Store, StoredEntry,
    StoredEntryStream,
};
use crate::StoreError;
use crate::model::{Entry, Head, Snapshot};
use append::insert_statements;

/// A [`Store`] in one SQLite database file. Clones share the connections.
///
/// ```no_run
/// # async fn run() -> Result<(), trailseal::StoreError> {
/// use trailseal::SqliteStore;
///
/// let store = SqliteStore::open("trailseal-data/trail.db").await?;
/// # store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: Arc<PathBuf>,
    /// Whether `entries` has the restriction flag's column: a file opened
    /// read-only may predate it.
    restriction_column: bool,
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default
    /// [`SqliteStoreOptions`].
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        SqliteStoreOptions::new(path).open().await
    }

    /// Opens (or creates) the database a URL names; see
    /// [`SqliteStoreOptions::from_url`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        SqliteStoreOptions::from_url(url)?.open().await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection, after which SQLite folds the WAL back into
    /// the database file. Call it before the process exits.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        append::head_on(&self.pool, &self.path, trail).await
    }

    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let inserts = insert_statements(trail, after, entries)?;
        self.insert_after(trail, after, inserts).await
    }

    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        // Built while the append before holds the write lock, so that the
        // statements are ready the moment it commits.
        let inserts = insert_statements(trail, after, entries)?;
        previous
            .follow(self.insert_after(trail, after, inserts))
            .await
    }

    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        sql::epoch_summary(self, &self.pool, trail, epoch).await
    }

    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        // Keyset pagination: each chunk is one short query on the primary
        // key, so memory stays flat and no read holds a snapshot for the
        // whole scan of a huge trail.
        sql::scan::<_, Entry>(self, trail, from)
    }

    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        sql::scan::<_, StoredEntry>(self, trail, from)
    }

    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        scan::trails(self).await
    }

    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        sql::delete_events(self, trail, first, last).await
    }

    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError> {
        sql::erase_fields(self, trail, erasures).await
    }

    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError> {
        retention::restrict(self, trail, seqs, restricted).await
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sql::put_snapshot(self, snapshot).await
    }

    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        sql::snapshot(self, trail, name, upto_seq).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        sql::query(self, query).await
    }
}

#[async_trait]
impl SqlStore for SqliteStore {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn database(&self) -> String {
        self.path.display().to_string()
    }

    fn classify(&self, err: sqlx::Error) -> StoreError {
        errors::classify(&self.path, err)
    }

    async fn lock_head(
        &self,
        connection: &mut SqliteConnection,
        trail: &str,
    ) -> Result<Option<Head>, StoreError> {
        append::lock_head(self, connection, trail).await
    }

    async fn insert_locked(
        &self,
        connection: &mut SqliteConnection,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        append::insert_locked(self, connection, trail, after, entries).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sqlx::sqlite::SqliteArguments;
    use sqlx::{AssertSqlSafe, Row};

    use super::scan::TRAILS_SQL;
    use super::*;
    use crate::model::EntryKind;
    use crate::store::sql::Dialect;

    async fn plan(store: &SqliteStore, sql: &str, arguments: SqliteArguments) -> Vec<String> {
        sqlx::query_with(
            AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")),
            arguments,
        )
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(3))
        .collect()
    }

    /// A filter that falls back to reading the whole table, or to sorting
    /// every match, would make a query on a big trail slow.
    #[tokio::test]
    async fn every_query_is_an_index_range_in_query_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        let time = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 29, 8, 0, 0).unwrap();
        let cursor = "c1.1764403200000000.5.admin".parse().unwrap();
        let queries = [
            Query::new(),
            Query::new().newest_first(),
            Query::new().trail("admin"),
            Query::new().trail("admin").newest_first().after(cursor),
            Query::new().since(time).until(time),
            Query::new().tenant("kunde123"),
            Query::new().actor("kunde123").newest_first(),
            Query::new().action("mailbox.login"),
            Query::new().target("database", "abc456"),
            Query::new().target_type("database"),
            Query::new().ip("192.0.2.1".parse().unwrap()),
            Query::new().failed(),
            Query::new().request_id("req-1"),
            Query::new().trail("mailbox").tenant("kunde123").failed(),
        ];
        for query in queries {
            let (sql, arguments) = sql::query::query_sql::<Sqlite>(&query).unwrap();
            let plan = plan(&store, &sql, arguments).await;
            assert!(
                plan.iter().any(|step| step.contains("INDEX")),
                "{query:?}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{query:?} sorts its matches: {plan:?}"
            );
        }
        // Retention reads a trail's holds and records by kind on every run:
        // the partial index of records, not a walk over the events.
        for kind in [EntryKind::HoldPlaced, EntryKind::Retention] {
            let query = Query::new().trail("admin").kind(kind);
            let (sql, arguments) = sql::query::query_sql::<Sqlite>(&query).unwrap();
            let plan = plan(&store, &sql, arguments).await;
            assert!(
                plan.iter()
                    .any(|step| step.contains("INDEX entries_records")),
                "{query:?}: {plan:?}"
            );
        }
        // The summary of an epoch, read before each epoch seal.
        let mut arguments = SqliteArguments::default();
        sqlx::Arguments::add(&mut arguments, "event").unwrap();
        sqlx::Arguments::add(&mut arguments, "admin").unwrap();
        sqlx::Arguments::add(&mut arguments, 3_i64).unwrap();
        sqlx::Arguments::add(&mut arguments, "epoch_seal").unwrap();
        let plan = plan(&store, &Sqlite::statements().epoch_summary, arguments).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("COVERING INDEX entries_by_epoch")),
            "{plan:?}"
        );
    }

    /// Listing trails seeks from one trail's first key to the next: one
    /// index seek per trail, never a read of every entry.
    #[tokio::test]
    async fn listing_trails_seeks_the_primary_key_from_trail_to_trail() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        let plan = plan(&store, TRAILS_SQL, SqliteArguments::default()).await;
        let reads: Vec<&String> = plan
            .iter()
            .filter(|step| step.contains(" entries"))
            .collect();
        assert_eq!(reads.len(), 2, "{plan:?}");
        assert!(
            reads
                .iter()
                .all(|step| step.contains("USING COVERING INDEX sqlite_autoindex_entries_1")),
            "{plan:?}"
        );
        assert!(
            reads
                .iter()
                .any(|step| step.starts_with("SEARCH entries") && step.ends_with("(trail>?)")),
            "{plan:?}"
        );
    }
}
