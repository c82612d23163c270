//! The schema of an SQLite store: migrations applied on opening, and what
//! a file opened read-only must already have.

use std::sync::LazyLock;

use sqlx::migrate::Migrator;

use super::SqliteStore;
use crate::StoreError;
use crate::store::error::Account;
use crate::store::sql::SqlStore;
use crate::store::sql::schema::migrate_error;

/// The schema, one migration per version; applied when a store is opened.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(crate::store::sql::schema::sqlite);

/// `PRAGMA application_id` of a trailseal database ("tsl1"): marks the
/// file as ours, so a store never writes into another application's data.
pub(super) const APPLICATION_ID: i64 = 0x7473_6c31;

impl SqliteStore {
    /// Marks a fresh file as ours and applies the migrations it lacks.
    pub(super) async fn migrate(&self, identity: Identity) -> Result<(), StoreError> {
        if identity == Identity::Fresh {
            // The marker goes first: if the process dies during the
            // migrations, the next open still knows the file is ours.
            sqlx::query("PRAGMA application_id = 1953721393")
                .execute(&self.pool)
                .await
                .map_err(|err| self.classify(err))?;
        }
        if !self.pending_migrations().await? {
            return Ok(());
        }
        // On a connection of its own, returned to the pool before anything
        // else needs one (the pool may hold a single connection).
        let migrated = {
            let mut connection = self
                .pool
                .acquire()
                .await
                .map_err(|err| self.classify(err))?;
            sqlx::query("PRAGMA temp_store = FILE")
                .execute(&mut *connection)
                .await
                .map_err(|err| self.classify(err))?;
            // `run_direct` rather than `run`: awaited here, `run`'s bound
            // (`Acquire<'a>` for one lifetime) keeps the future of
            // `SqliteStoreOptions::open` from being `Send`, and a caller
            // could not open a store inside `tokio::spawn`.
            let migrated = MIGRATOR.run_direct(None, &mut *connection, false).await;
            // Back to the pool's setting, so that every connection behaves
            // alike.
            sqlx::query("PRAGMA temp_store = MEMORY")
                .execute(&mut *connection)
                .await
                .map_err(|err| self.classify(err))?;
            migrated
        };
        match migrated {
            Ok(()) => Ok(()),
            // Another process may have applied them at the same moment.
            Err(_) if !self.pending_migrations().await? => Ok(()),
            Err(err) => Err(migrate_error(self, err)),
        }
    }

    /// Checks that a file opened read-only has the schema a scan reads.
    pub(super) async fn check_schema_read_only(
        &self,
        identity: Identity,
    ) -> Result<(), StoreError> {
        // Scans and exports read only what the first schema version has, so
        // a file a writer has not upgraded yet can still be verified.
        if identity == Identity::Ours && self.has_base_schema().await? {
            return Ok(());
        }
        Err(StoreError::NotATrailStore {
            database: self.database(),
            source: Account::boxed(
                "it has no complete trailseal schema; open it read-write once to set it up",
            ),
        })
    }

    /// Whether the first migration (the `entries` table) is applied; fails
    /// if the database has migrations this version does not know.
    async fn has_base_schema(&self) -> Result<bool, StoreError> {
        let pending = self.pending_migrations().await?;
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if !pending {
            return Ok(true);
        }
        if recorded == 0 {
            return Ok(false);
        }
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM _sqlx_migrations WHERE success AND version = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        Ok(applied == 1)
    }

    /// Whether migrations this version knows are missing; fails if the
    /// database has migrations this version does not know.
    async fn pending_migrations(&self) -> Result<bool, StoreError> {
        let table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if table == 0 {
            return Ok(true);
        }
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if let Some(&unknown) = applied
            .iter()
            .find(|&&version| !MIGRATOR.version_exists(version))
        {
            return Err(StoreError::UnsupportedSchema {
                database: self.database(),
                version: unknown,
            });
        }
        Ok(MIGRATOR
            .iter()
            .any(|migration| !applied.contains(&migration.version)))
    }

    /// Whether `entries` has the restriction flag's column (schema version
    /// 2); a file a writer has not upgraded yet restricts nothing.
    pub(super) async fn has_restriction_column(&self) -> Result<bool, StoreError> {
        let columns: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pragma_table_info('entries') WHERE name = 'restricted'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        Ok(columns == 1)
    }
}

/// What a database file is, judged before anything is written to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Identity {
    /// Missing or empty: ours to set up.
    Fresh,
    /// Marked as a trailseal database.
    Ours,
    /// Somebody else's data.
    Foreign,
}
