//! The PostgreSQL backend: [`PostgresStore`], for several panel servers
//! writing the same trails.
//!
//! Entries live in `entries`, partitioned by day on `recorded_at` so that
//! retention drops whole partitions. Every trail has a row in `trail_heads`
//! holding its head; an append is one statement that moves that head from
//! the value the writer saw to its last new entry (compare and swap under
//! the row lock) and inserts the entries, all of them or none. The layout
//! is described in docs/OPERATIONS.md.
//!
//! By concern: [`options`] connects, [`schema`] migrates and creates the
//! day partitions, [`append`] writes batches (and learns the outcome of
//! one whose connection broke), [`scan`] reads trails, [`retention`]
//! restricts processing, [`errors`] classifies what PostgreSQL reports,
//! and [`dialect`] is what the shared SQL layer ([`super::sql`]) needs to
//! know of PostgreSQL.

mod append;
mod dialect;
mod errors;
mod options;
mod retention;
mod scan;
mod schema;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::Postgres;
use sqlx::postgres::{PgConnection, PgPool};

pub use options::PostgresStoreOptions;

use super::sql::{self, SqlStore};
use super::{
    EntryStream, EpochSummary, Erasure, Page, PreviousAppend, Query, Store, StoredEntry,
    StoredEntryStream, check_batch,
};
use crate::StoreError;
use crate::model::{Entry, Head, Snapshot};
use append::Columns;

/// A [`Store`] in a PostgreSQL database, shared by any number of processes
/// and machines. Clones share the connections.
///
/// ```no_run
/// # async fn run() -> Result<(), trailseal::StoreError> {
/// use trailseal::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://panel@db.example.net/audit").await?;
/// # store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Days whose partition is known to exist, so appends check only once.
    partitions: Arc<Mutex<HashSet<NaiveDate>>>,
    outcome_timeout: Duration,
    /// The database, as errors name it.
    database: Arc<str>,
}

impl PostgresStore {
    /// Connects with the default [`PostgresStoreOptions`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStoreOptions::from_url(url)?.open().await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The days whose partition this process knows to exist.
    fn known_days(&self) -> std::sync::MutexGuard<'_, HashSet<NaiveDate>> {
        // The set is only a cache: a poisoned one is still a valid set.
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        append::head(self, trail).await
    }

    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        check_batch(trail, after, entries)?;
        let columns = Columns::of(trail, entries)?;
        self.insert_columns(trail, after, columns).await
    }

    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        // Encoded while the append before it still runs, so that the rows
        // are ready the moment it commits.
        check_batch(trail, after, entries)?;
        let columns = Columns::of(trail, entries)?;
        previous
            .follow(self.insert_columns(trail, after, columns))
            .await
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

    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        sql::epoch_summary(self, &self.pool, trail, epoch).await
    }

    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        // Keyset pagination: each chunk is one short query on the (trail,
        // seq) index of every partition, so memory stays flat and no read
        // holds a snapshot (and with it vacuum) for the scan of a huge trail.
        sql::scan::<_, Entry>(self, trail, from)
    }

    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        sql::scan::<_, StoredEntry>(self, trail, from)
    }

    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        scan::trails(self).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        sql::query(self, query).await
    }
}

#[async_trait]
impl SqlStore for PostgresStore {
    type Db = Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn database(&self) -> String {
        self.database.to_string()
    }

    fn classify(&self, err: sqlx::Error) -> StoreError {
        errors::classify(&self.database, err)
    }

    async fn lock_head(
        &self,
        connection: &mut PgConnection,
        trail: &str,
    ) -> Result<Option<Head>, StoreError> {
        append::lock_head(self, connection, trail).await
    }

    async fn insert_locked(
        &self,
        connection: &mut PgConnection,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        append::insert_locked(self, connection, trail, after, entries).await
    }
}
