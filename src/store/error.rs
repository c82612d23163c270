//! What a storage backend reports when it fails.

use std::path::PathBuf;

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
    /// The database is not a trailseal database (or not a database at all).
    #[error("{0}")]
    NotATrailStore(String),
    /// The file is not a database at all (or its header is destroyed).
    #[error(
        "{path} is not a database file (or it is damaged beyond recognition); check the path, or restore the file from a backup"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database file is damaged.
    #[error(
        "the database {path} is damaged ({detail}); restore it from a backup and verify the trail"
    )]
    DatabaseCorrupt {
        /// The file.
        path: PathBuf,
        /// What the database engine reported.
        detail: String,
    },
    /// The database cannot be written: the file, its folder or the file
    /// system is read-only.
    #[error(
        "the database {path} is read-only; make the file and its folder writable, or open it read-only to verify"
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// A database opened read-only has a write-ahead log next to it
    /// (`-wal`, which holds commits not yet folded into the file) that this
    /// process cannot read: the log's index (`-shm`) is missing and cannot
    /// be created in the folder, or the log or its index is not readable.
    /// Reading the file without its log could miss commits, so nothing was
    /// read, and nothing was written.
    #[error(
        "the database {path} has a write-ahead log ({path}-wal) that may hold commits not yet in the file, but its index ({path}-shm) is missing and cannot be created without write access to the folder, or one of the two files is not readable; have the owner fold the log into the file (the last writer to close does, and removes both files), or copy the file with its -wal into a folder you can write and open the copy"
    )]
    WalUnreadable {
        /// The database file.
        path: PathBuf,
    },
    /// Another connection held the database lock for longer than the busy
    /// timeout. Nothing was written.
    #[error(
        "the database {path} stayed locked by another connection for longer than the busy timeout; nothing was written"
    )]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// The database was created or upgraded by a newer trailseal: its schema
    /// has migrations this version does not know.
    #[error(
        "the database {path} has schema version {version}, newer than this trailseal supports; upgrade trailseal"
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The unknown schema version found.
        version: i64,
    },
    /// A database URL cannot be used by this store.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A query cannot be run as given (e.g. a malformed cursor).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The database driver failed.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
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
