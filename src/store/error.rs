//! What a storage backend reports when it fails.
//!
//! Each failure is one variant whatever the backend: a newer schema is
//! [`StoreError::UnsupportedSchema`] in SQLite and in PostgreSQL alike.
//! What only one backend can tell (SQLite's result code, PostgreSQL's
//! SQLSTATE, which file next to the database is missing) is the error's
//! [source](std::error::Error::source): the driver's error, or the
//! backend's own account in words.

use std::error::Error;
#[cfg(feature = "sqlite")]
use std::fmt;
use std::path::PathBuf;

/// A backend's detail of a failure, as an error's source.
#[cfg(feature = "sqlite")]
type Detail = Box<dyn Error + Send + Sync>;

/// A storage backend's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer appended first: the head is no longer the one expected.
    #[error("conflict on the {trail} trail: seq {seq} was taken by another writer")]
    Conflict {
        /// The trail.
        trail: String,
        /// The seq that was taken.
        seq: u64,
    },
    /// The connection broke while an append was being committed, and the
    /// database could not be asked in time whether it was: the entries up to
    /// `seq` may or may not be stored. Read the trail's head once the
    /// database is reachable again.
    #[error(
        "the outcome of an append to the {trail} trail (up to seq {seq}) is unknown: the connection broke and the database did not answer in time; read the trail's head once it is reachable"
    )]
    OutcomeUnknown {
        /// The trail.
        trail: String,
        /// The last seq of the append.
        seq: u64,
    },
    /// A batch was not a contiguous continuation of the expected head.
    #[error("invalid batch for the {trail} trail: {reason}")]
    InvalidBatch {
        /// The trail.
        trail: String,
        /// What is wrong.
        reason: String,
    },
    /// Stored data could not be decoded.
    #[error("stored entry {trail}#{seq} cannot be decoded: {reason}")]
    Corrupt {
        /// The trail.
        trail: String,
        /// The seq.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A line of a JSON Lines export is not an entry.
    #[error("line {line} of the export: {reason}")]
    MalformedExport {
        /// The line number, from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// What the store was opened on is not a trailseal store: not a
    /// database at all (or one damaged beyond recognition), another
    /// application's database, or one whose trailseal schema is not set
    /// up. Nothing was written to it.
    #[error("{database} is not a trailseal store: {source}")]
    NotATrailStore {
        /// The database: an SQLite file's path, or a PostgreSQL server's
        /// host, port and database name.
        database: String,
        /// What it is instead.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The database was created or upgraded by a newer trailseal: its schema
    /// has migrations this version does not know.
    #[error(
        "the database {database} has schema version {version}, newer than this trailseal supports; upgrade trailseal"
    )]
    UnsupportedSchema {
        /// The database, named as in [`StoreError::NotATrailStore`].
        database: String,
        /// The unknown schema version found.
        version: i64,
    },
    /// The database is damaged.
    #[error(
        "the database {database} is damaged ({source}); restore it from a backup and verify the trail"
    )]
    DatabaseCorrupt {
        /// The database, named as in [`StoreError::NotATrailStore`].
        database: String,
        /// What the database engine reported.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The database cannot be written: an SQLite file, its folder or the
    /// file system is read-only, or PostgreSQL runs read-only transactions
    /// (a standby, say). Nothing was written.
    #[error("the database {database} is read-only: {source}")]
    ReadOnly {
        /// The database, named as in [`StoreError::NotATrailStore`].
        database: String,
        /// What makes it read-only, and what to do.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The database cannot be read with the access this process has, for
    /// reasons its source tells; for example, an SQLite file opened
    /// read-only has a write-ahead log (`-wal`, which holds commits not yet
    /// folded into the file) whose index (`-shm`) is missing and cannot be
    /// created without write access to the folder. Reading the file without
    /// its log could miss commits, so nothing was read, and nothing was
    /// written.
    #[error("the database {database} cannot be read: {source}")]
    Unreadable {
        /// The database, named as in [`StoreError::NotATrailStore`].
        database: String,
        /// Why not, and what to do.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// Another connection held a lock the store needs for longer than the
    /// store waits for it (SQLite's busy timeout). Nothing was written.
    #[error(
        "the database {database} stayed locked by another connection for longer than the store waits ({source}); nothing was written"
    )]
    Busy {
        /// The database, named as in [`StoreError::NotATrailStore`].
        database: String,
        /// What the database reported.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// A database URL cannot be used by this store.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A query cannot be run as given (e.g. a malformed cursor).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The database driver failed otherwise; the source is its error.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn Error + Send + Sync>),
    /// The store's work could not run on the Tokio runtime: it was called
    /// outside one, or a task it started there failed.
    #[error("the store's work cannot run on the Tokio runtime: {0}")]
    Runtime(#[source] Box<dyn Error + Send + Sync>),
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A backend's own account of a failure, where what the driver reported
/// (if anything) would not tell a caller what is wrong: the source of a
/// [`StoreError`], with the driver's error, if any, as its own source.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
pub(crate) struct Account {
    what: String,
    cause: Option<Detail>,
}

#[cfg(feature = "sqlite")]
impl Account {
    /// What is wrong, in words.
    pub(crate) fn boxed(what: impl Into<String>) -> Detail {
        Box::new(Self {
            what: what.into(),
            cause: None,
        })
    }

    /// What is wrong, in words, and the driver's error that told.
    pub(crate) fn with_cause(
        what: impl Into<String>,
        cause: impl Error + Send + Sync + 'static,
    ) -> Detail {
        Box::new(Self {
            what: what.into(),
            cause: Some(Box::new(cause)),
        })
    }
}

#[cfg(feature = "sqlite")]
impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

#[cfg(feature = "sqlite")]
impl Error for Account {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn Error + 'static))
    }
}
