//! What SQLite reports, as the store errors a caller can act on.

use std::path::Path;
use std::str::FromStr;

use sqlx::error::ErrorKind;

use crate::StoreError;
use crate::store::error::Account;

pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// SQLite's primary result codes that callers handle differently
/// (<https://www.sqlite.org/rescode.html>).
pub(super) mod result_code {
    pub(in crate::store::sqlite) const BUSY: i32 = 5;
    pub(in crate::store::sqlite) const LOCKED: i32 = 6;
    pub(in crate::store::sqlite) const READONLY: i32 = 8;
    pub(in crate::store::sqlite) const CORRUPT: i32 = 11;
    pub(in crate::store::sqlite) const CANTOPEN: i32 = 14;
    pub(in crate::store::sqlite) const NOTADB: i32 = 26;
}

/// SQLite's primary result code of a driver error, if it has one.
pub(super) fn result_code(err: &sqlx::Error) -> Option<i32> {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| i32::from_str(&code).ok())
            .map(|extended| extended & 0xff),
        _ => None,
    }
}

/// Turns a driver error into the store error a caller can act on, by the
/// result code SQLite reports (never by message text).
pub(super) fn classify(path: &Path, err: sqlx::Error) -> StoreError {
    let database = || path.display().to_string();
    match result_code(&err) {
        Some(result_code::BUSY | result_code::LOCKED) => StoreError::Busy {
            database: database(),
            source: Box::new(err),
        },
        Some(result_code::READONLY) => StoreError::ReadOnly {
            database: database(),
            source: Account::with_cause(
                "the file, its folder or its file system cannot be written; make the file and its folder writable, or open it read-only to verify",
                err,
            ),
        },
        Some(result_code::NOTADB) => StoreError::NotATrailStore {
            database: database(),
            source: Account::with_cause(
                "it is not a database file (or it is damaged beyond recognition); check the path, or restore the file from a backup",
                err,
            ),
        },
        Some(result_code::CORRUPT) => StoreError::DatabaseCorrupt {
            database: database(),
            source: Box::new(err),
        },
        Some(result_code::CANTOPEN) => StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(err.to_string()),
        },
        _ => StoreError::Database(Box::new(err)),
    }
}
