//! The SQL backends' schemas, embedded in the library: one migration per
//! version, applied when a store is opened.
//!
//! Built by hand rather than with `sqlx::migrate!`, which would pull in
//! sqlx's macro crates (and a second build of sqlx) for one line. A
//! migration's checksum is the SHA-384 of its text either way, so databases
//! migrated by either agree.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

use super::SqlStore;
use crate::StoreError;

/// One schema version: its number, its description and its SQL.
type Step = (i64, &'static str, &'static str);

/// A migrator that applies `steps` in order.
fn migrator(steps: &[Step]) -> Migrator {
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

/// A failed migration as the store error a caller can act on: a version
/// this trailseal does not know is a newer schema, on every backend.
pub(crate) fn migrate_error<S: SqlStore>(store: &S, err: MigrateError) -> StoreError {
    match err {
        MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => store.classify(err),
        MigrateError::VersionMissing(version) => StoreError::UnsupportedSchema {
            database: store.database(),
            version,
        },
        other => StoreError::Database(Box::new(other)),
    }
}

/// The SQLite schema.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite() -> Migrator {
    migrator(&[
        (
            1,
            "entries",
            include_str!("../../../migrations/sqlite/0001_entries.sql"),
        ),
        (
            2,
            "restricted",
            include_str!("../../../migrations/sqlite/0002_restricted.sql"),
        ),
        (
            3,
            "snapshots",
            include_str!("../../../migrations/sqlite/0003_snapshots.sql"),
        ),
        (
            4,
            "records index",
            include_str!("../../../migrations/sqlite/0004_records_index.sql"),
        ),
    ])
}

/// The PostgreSQL schema.
#[cfg(feature = "postgres")]
pub(crate) fn postgres() -> Migrator {
    migrator(&[
        (
            1,
            "entries",
            include_str!("../../../migrations/postgres/0001_entries.sql"),
        ),
        (
            2,
            "restricted",
            include_str!("../../../migrations/postgres/0002_restricted.sql"),
        ),
        (
            3,
            "snapshots",
            include_str!("../../../migrations/postgres/0003_snapshots.sql"),
        ),
        (
            4,
            "records index",
            include_str!("../../../migrations/postgres/0004_records_index.sql"),
        ),
        (
            5,
            "ensure day race",
            include_str!("../../../migrations/postgres/0005_ensure_day_race.sql"),
        ),
    ])
}
