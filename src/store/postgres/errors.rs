//! What PostgreSQL reports, as the store errors a caller can act on.

use crate::StoreError;

/// SQLSTATE codes that callers handle differently
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
mod sqlstate {
    /// A row fits no partition: the day's partition is missing (dropped by
    /// retention while this process remembered it).
    pub(super) const CHECK_VIOLATION: &str = "23514";
    /// A write in a read-only transaction: the server is a standby, or
    /// the database or role makes transactions read-only.
    pub(super) const READ_ONLY_SQL_TRANSACTION: &str = "25006";
}

/// The SQLSTATE of a driver error, if the server sent one.
fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    }
}

/// Whether a statement failed because a day's partition is missing.
pub(super) fn is_missing_partition(err: &sqlx::Error) -> bool {
    sqlstate(err).as_deref() == Some(sqlstate::CHECK_VIOLATION)
}

/// Whether an append's error proves the statement was not committed: the
/// server refused it with an SQLSTATE of a class that is decided before
/// commit (data, constraint, syntax, privilege, transaction rollback), or
/// it was never sent. Anything else (the connection broke, the server shut
/// down) leaves the outcome open.
pub(super) fn is_definite(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Configuration(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. } => true,
        sqlx::Error::Database(_) => sqlstate(err).is_some_and(|code| {
            ["22", "23", "40", "42"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Turns a driver error into the store error a caller can act on, by the
/// SQLSTATE the server reports (never by message text); `database` names
/// the database.
pub(super) fn classify(database: &str, err: sqlx::Error) -> StoreError {
    match sqlstate(&err).as_deref() {
        Some(sqlstate::READ_ONLY_SQL_TRANSACTION) => StoreError::ReadOnly {
            database: database.to_owned(),
            source: Box::new(err),
        },
        _ => StoreError::Database(Box::new(err)),
    }
}
