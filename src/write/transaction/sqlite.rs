//! Recording inside a caller's SQLite transaction.

use async_trait::async_trait;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::{LockedTrail, TransactionRecorder};
use crate::event::Event;
use crate::model::EpochSummary;
use crate::model::{Entry, Head};
use crate::store::Store;
use crate::store::sql::{self, SqlStore};
use crate::store::sqlite::SqliteStore;
use crate::write::Receipt;
use crate::{Result, StoreError};

impl SqliteStore {
    /// Records `event` inside the caller's transaction on this database
    /// file: the entry (and any epoch seal due) commits or rolls back with
    /// the caller's own changes.
    ///
    /// Begin the transaction with `BEGIN IMMEDIATE`
    /// (`pool.begin_with("BEGIN IMMEDIATE")`): SQLite then grants the write
    /// lock at once, instead of failing with [`StoreError::Busy`] when the
    /// transaction read first and another connection wrote meanwhile. The
    /// lock is held until the transaction ends, so keep it short.
    ///
    /// ```no_run
    /// # async fn run(store: trailseal::SqliteStore, panel: sqlx::SqlitePool,
    /// #     recorder: trailseal::write::TransactionRecorder, event: trailseal::Event)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = panel.begin_with("BEGIN IMMEDIATE").await?;
    /// sqlx::query("INSERT INTO databases (name) VALUES (?)")
    ///     .bind("shop_db")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.record_in(&mut tx, &recorder, &event).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn record_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        recorder: &TransactionRecorder,
        event: &Event,
    ) -> Result<Receipt> {
        let mut link = Link {
            store: self,
            connection: tx,
        };
        recorder.record(&mut link, event).await
    }
}

struct Link<'a> {
    store: &'a SqliteStore,
    connection: &'a mut SqliteConnection,
}

#[async_trait]
impl LockedTrail for Link<'_> {
    async fn lock_head(&mut self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.store.lock_head(self.connection, trail).await
    }

    async fn committed_head(&mut self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.store.head(trail).await
    }

    async fn epoch_summary(&mut self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        sql::epoch_summary(self.store, &mut *self.connection, trail, epoch).await
    }

    async fn key_entries(&mut self, trail: &str) -> Result<Vec<Entry>, StoreError> {
        sql::key_entries(self.store, &mut *self.connection, trail).await
    }

    async fn insert(
        &mut self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        self.store
            .insert_locked(self.connection, trail, after, entries)
            .await
    }
}
