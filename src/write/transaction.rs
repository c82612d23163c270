//! Recording inside the caller's own database transaction:
//! [`TransactionRecorder`].
//!
//! A panel that changes its own tables and records the audit entry of that
//! change in the same transaction gets both or neither: a rollback leaves no
//! entry behind, a commit leaves no change unaudited. The backends'
//! `record_in` methods (`SqliteStore::record_in`, `PostgresStore::record_in`)
//! lead here; this module seals, exactly as the group-commit
//! [`Trail`](crate::Trail) writer does (genesis, epoch seals, events), and
//! the shared SQL layer reads and writes inside the transaction, each
//! backend locking the head and inserting its own way.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::{Database, Transaction};

use crate::event::Event;
use crate::model::EpochSummary;
use crate::model::body_commitment;
use crate::model::validate_trail_name;
use crate::model::{Clock, SystemClock};
use crate::model::{Entry, EntryKind, Head};
use crate::seal::{KeyLine, Registration, SealingKey, with_salts};
use crate::seal::{Sealable, first_unsealed_epoch, next_position, plan_append, summary_epoch};
use crate::store::Store;
#[cfg(feature = "postgres")]
use crate::store::postgres::PostgresStore;
use crate::store::sql::{self, Dialect, SqlStore};
#[cfg(feature = "sqlite")]
use crate::store::sqlite::SqliteStore;
use crate::write::Receipt;
use crate::write::writer::{refuse_future_head, stored_key_line};
use crate::{Result, StoreError};

/// Seals events of one trail into a caller's database transaction.
///
/// Create one per trail and share it; it is cheap to clone. Each
/// `record_in` call locks the trail's head for the rest of the caller's
/// transaction (that is what makes it atomic with the caller's change, and
/// what makes it slower than the group-commit writer: writers of the trail
/// take turns, one transaction at a time).
///
/// A trail written this way may also have a [`Trail`](crate::Trail) writer:
/// every append is conditional on the head it read, so the two can never
/// fork the trail; the writer retries when it loses, and a `record_in` that
/// loses fails with [`StoreError::Conflict`] (the caller retries its
/// transaction). Giving each trail one writing mode avoids that.
#[derive(Clone)]
pub struct TransactionRecorder {
    trail: Arc<str>,
    key: Arc<SealingKey>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TransactionRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionRecorder")
            .field("trail", &self.trail)
            .finish_non_exhaustive()
    }
}

impl TransactionRecorder {
    /// A recorder for `trail`, sealing with `key` (the same key the
    /// process's other trails use) and timestamping with the system clock.
    pub fn new(trail: impl Into<String>, key: Arc<SealingKey>) -> Result<Self> {
        let trail = trail.into();
        validate_trail_name(&trail)?;
        Ok(Self {
            trail: Arc::from(trail),
            key,
            clock: Arc::new(SystemClock),
        })
    }

    /// The clock that timestamps entries (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The trail's name.
    pub fn trail(&self) -> &str {
        &self.trail
    }

    /// Validates and seals `event` onto the trail's head, locked in the
    /// transaction on `connection`, and appends it (after any epoch seals
    /// due) in that transaction.
    async fn record<S: SqlStore + Store>(
        &self,
        store: &S,
        connection: &mut <S::Db as Database>::Connection,
        event: &Event,
    ) -> Result<Receipt> {
        let link = &mut Link { store, connection };
        let body = with_salts(|salts| event.to_checked_body(&mut &mut *salts))??;
        let commitment = body_commitment(&body);
        let events = vec![Sealable::event(body, commitment)];
        let nothing_planned = || StoreError::InvalidBatch {
            trail: self.trail.to_string(),
            reason: "an event planned no entry".to_owned(),
        };

        let head = link.lock_head(&self.trail).await?;
        let now = self.clock.now();
        refuse_future_head(&self.trail, head, now)?;
        if let Some(head) = head
            && !matches!(
                self.key.trail_line(&self.trail),
                Some(KeyLine::Branch { .. })
            )
        {
            // Not registered yet, or still on the shared chain of format 1:
            // the committed rotation of an earlier transaction may have moved
            // the trail onto its own chain.
            self.register(link, &head).await?;
        }
        let line = self.key.trail_line(&self.trail);
        let next = next_position(&self.key, now, head, line)?;
        // The trail's key may only move past epochs whose seals are
        // committed; a rollback of this transaction would undo its seals.
        // So the key moves on only with the committed head, read outside
        // the transaction.
        let summary = match summary_epoch(&self.key, &self.trail, head, next.epoch, false) {
            Some(epoch) => link.epoch_summary(&self.trail, epoch).await?,
            None => EpochSummary::default(),
        };
        let plan = plan_append(&self.trail, &self.key, next, head, events, &summary, false)?
            .ok_or_else(nothing_planned)?;
        link.insert(&self.trail, head.map(|head| head.seq), &plan.entries)
            .await?;
        let receipt = plan
            .items()
            .last()
            .map(|entry| Receipt::of(&self.trail, entry))
            .ok_or_else(nothing_planned)?;
        // Only what an earlier transaction committed may move the key on:
        // the head read inside this transaction may hold seals a rollback
        // would undo.
        let held = self.key.trail_epoch(&self.trail).unwrap_or(u64::MAX);
        if head.is_some_and(|head| first_unsealed_epoch(&head) > held)
            && let Some(committed) = link.committed_head(&self.trail).await?
        {
            self.key
                .set_trail_floor(&self.trail, first_unsealed_epoch(&committed))?;
        }
        self.key.advance(next.time_epoch)?;
        Ok(receipt)
    }

    /// Registers the trail with the key on the key line its committed
    /// entries show.
    async fn register<S: SqlStore + Store>(
        &self,
        link: &mut Link<'_, S>,
        head: &Head,
    ) -> Result<()> {
        let key_entries = link.key_entries(&self.trail).await?;
        let genesis = key_entries.iter().find(|entry| entry.seq == 0);
        let rotation = key_entries
            .iter()
            .rev()
            .find(|entry| entry.kind == EntryKind::KeyRotation);
        let line = stored_key_line(&self.trail, genesis, rotation)?;
        match (self.key.trail_line(&self.trail), line) {
            (Some(KeyLine::Shared), KeyLine::Branch { epoch }) => {
                self.key.upgraded(&self.trail, epoch)?;
            }
            _ => {
                let floor = first_unsealed_epoch(head);
                self.key
                    .register(&self.trail, Registration::Existing { line, floor })?;
            }
        }
        Ok(())
    }
}

/// A store and a connection in the caller's transaction: what the
/// recorder reads and writes there.
struct Link<'a, S: SqlStore> {
    store: &'a S,
    connection: &'a mut <S::Db as Database>::Connection,
}

impl<S: SqlStore + Store> Link<'_, S> {
    /// Locks the trail's head until the transaction ends and reads it.
    async fn lock_head(&mut self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.store.lock_head(self.connection, trail).await
    }

    /// The head as committed, outside the transaction.
    async fn committed_head(&mut self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.store.head(trail).await
    }

    /// The summary of one epoch as the transaction sees it.
    async fn epoch_summary(&mut self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        let connection = S::Db::on_connection(self.connection);
        sql::epoch_summary(self.store, connection, trail, epoch).await
    }

    /// The trail's genesis and key rotation entries, in seq order, as the
    /// transaction sees them: which key line the trail continues on.
    async fn key_entries(&mut self, trail: &str) -> Result<Vec<Entry>, StoreError> {
        let connection = S::Db::on_connection(self.connection);
        sql::key_entries(self.store, connection, trail).await
    }

    /// Inserts entries continuing `after` inside the transaction.
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

#[cfg(feature = "sqlite")]
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
        recorder.record(self, tx, event).await
    }
}

#[cfg(feature = "postgres")]
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
        recorder.record(self, tx, event).await
    }
}
