//! Recording inside a caller's PostgreSQL transaction.

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, Transaction};

use super::{LockedTrail, TransactionRecorder};
use crate::event::Event;
use crate::model::EpochSummary;
use crate::model::{Entry, Head};
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sql::{self, SqlStore};
use crate::write::Receipt;
use crate::{Result, StoreError};

impl PostgresStore {
    /// Records `event` inside the caller's transaction on this database:
    /// the entry (and any epoch seal due) commits or rolls back with the
    /// caller's own changes.
    ///
    /// The trail's head row stays locked until the transaction ends: other
    /// writers of the trail wait for it, so keep the transaction short.
    ///
    /// ```no_run
    /// # async fn run(store: trailseal::PostgresStore, panel: sqlx::PgPool,
    /// #     recorder: trailseal::write::TransactionRecorder, event: trailseal::Event)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = panel.begin().await?;
    /// sqlx::query("INSERT INTO databases (name) VALUES ($1)")
    ///     .bind("shop_db")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.record_in(&mut tx, &recorder, &event).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn record_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
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
    store: &'a PostgresStore,
    connection: &'a mut PgConnection,
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
