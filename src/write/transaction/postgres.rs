//! Recording inside a caller's PostgreSQL transaction.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row, Transaction};

use super::{LockedTrail, TransactionRecorder};
use crate::event::Event;
use crate::model::EpochSummary;
use crate::model::{Entry, EntryKind, Head};
use crate::store::postgres::{
    Columns, ENTRY_COLUMNS, PostgresStore, classify, decode_entry, decode_head, epoch_summary_on,
    insert_on, is_missing_partition, to_i64,
};
use crate::store::{Store, check_batch, conflict_after};
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
        // The row lock is what the group-commit append's compare and swap
        // waits for, so no other writer moves the head before we commit.
        let lock = "SELECT seq, epoch, kind, recorded_at, mac FROM trail_heads \
                    WHERE trail = $1 FOR UPDATE";
        let mut row = sqlx::query(lock)
            .bind(trail)
            .fetch_optional(&mut *self.connection)
            .await
            .map_err(classify)?;
        if row.is_none() {
            // A new trail: its head row, to lock (and to swap later).
            sqlx::query("INSERT INTO trail_heads (trail) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(trail)
                .execute(&mut *self.connection)
                .await
                .map_err(classify)?;
            row = sqlx::query(lock)
                .bind(trail)
                .fetch_optional(&mut *self.connection)
                .await
                .map_err(classify)?;
        }
        let corrupt = |reason: String| StoreError::Corrupt {
            trail: trail.to_owned(),
            seq: 0,
            reason,
        };
        let row = row.ok_or_else(|| corrupt("the trail's head row vanished".to_owned()))?;
        let seq: Option<i64> = row.try_get(0).map_err(|err| corrupt(err.to_string()))?;
        match seq {
            Some(_) => decode_head(trail, &row).map(Some),
            None => Ok(None),
        }
    }

    async fn committed_head(&mut self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.store.head(trail).await
    }

    async fn epoch_summary(&mut self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        epoch_summary_on(&mut *self.connection, trail, epoch).await
    }

    async fn key_entries(&mut self, trail: &str) -> Result<Vec<Entry>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE trail = $1 AND kind <> 'event' \
             AND kind IN ($2, $3) ORDER BY seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(trail)
            .bind(EntryKind::Genesis.as_str())
            .bind(EntryKind::KeyRotation.as_str())
            .fetch_all(&mut *self.connection)
            .await
            .map_err(classify)?;
        rows.iter().map(|row| decode_entry(trail, row)).collect()
    }

    async fn insert(
        &mut self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        check_batch(trail, after, entries)?;
        let conflict = || conflict_after(trail, after);
        let Some(columns) = Columns::of(trail, entries)? else {
            return Ok(());
        };
        for day in columns.days() {
            if !self.store.known_days().contains(&day) {
                // Created inside the caller's transaction, on its own
                // connection: through another connection the partition's
                // lock on `entries` would wait for this transaction, which
                // waits for it. Not remembered, since a rollback undoes it.
                sqlx::query("SELECT trailseal_ensure_day($1)")
                    .bind(day)
                    .execute(&mut *self.connection)
                    .await
                    .map_err(classify)?;
            }
        }
        let after = after.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
        match insert_on(&mut *self.connection, trail, after, &columns).await {
            Ok(0) => Err(conflict()),
            Ok(_) => Ok(()),
            Err(err) => {
                if is_missing_partition(&err) {
                    // Retention dropped a partition this process remembered;
                    // the caller's retry creates it.
                    self.store.known_days().clear();
                }
                Err(classify(err))
            }
        }
    }
}
