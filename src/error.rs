//! Errors of recording, storage, keys and the stored format.

use std::path::PathBuf;
use std::sync::Arc;

use crate::ValidationError;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an event was not recorded. When a caller gets one of these, the event
/// is not in the trail.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event was refused by validation.
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// The trail's queue is full; try again later or raise its capacity.
    #[error(
        "the {trail} trail's queue is full ({capacity} events waiting); retry later or raise the queue capacity"
    )]
    Backpressure {
        /// The trail.
        trail: String,
        /// The queue capacity.
        capacity: usize,
    },
    /// The trail's writer has stopped (shut down or failed).
    #[error("the {trail} trail's writer has stopped; no further events are accepted")]
    Closed {
        /// The trail.
        trail: String,
    },
    /// The store failed; the event was not committed.
    #[error("storing the event failed: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The sealing key could not be used.
    #[error("sealing key: {0}")]
    Key(#[source] Arc<KeyError>),
    /// Other writers kept advancing the trail; the event was not committed.
    #[error("gave up on the {trail} trail after {attempts} conflicting appends")]
    Contention {
        /// The trail.
        trail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The trail name is not acceptable.
    #[error("invalid trail name {0:?}: use 1–64 of a-z, 0-9, '-' and '_'")]
    InvalidTrailName(String),
    /// A legal hold cannot be placed as given.
    #[error("invalid legal hold: {reason}")]
    InvalidHold {
        /// What is wrong with it.
        reason: String,
    },
    /// A projection snapshot is not what a retention record commits to.
    #[error(
        "the snapshot of {name} on the {trail} trail up to seq {upto_seq} cannot be trusted: {reason}"
    )]
    SnapshotMismatch {
        /// The trail.
        trail: String,
        /// The projection's name.
        name: String,
        /// The last seq the snapshot covers.
        upto_seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The trail's newest entry is dated further in the future than clocks
    /// may disagree: either this machine's clock is wrong, or someone who
    /// held the sealing key wrote entries dated ahead. Nothing was appended;
    /// check the clock, then verify the trail.
    #[error(
        "the {trail} trail's newest entry (seq {head_seq}) is dated {head_at}, after this machine's clock ({now}) by more than clocks may disagree; check the clock, then verify the trail: someone holding the sealing key may have written entries dated ahead"
    )]
    HeadInFuture {
        /// The trail.
        trail: String,
        /// The newest entry's seq.
        head_seq: u64,
        /// Its timestamp.
        head_at: chrono::DateTime<chrono::Utc>,
        /// This machine's time.
        now: chrono::DateTime<chrono::Utc>,
    },
    /// No hold with that id is in force on the trail.
    #[error("no legal hold {id:?} is in force on the {trail} trail")]
    UnknownHold {
        /// The trail.
        trail: String,
        /// The id asked for.
        id: String,
    },
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(Arc::new(err))
    }
}

impl From<KeyError> for Error {
    fn from(err: KeyError) -> Self {
        Error::Key(Arc::new(err))
    }
}

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

/// A key could not be created, read or used. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not in the expected format.
    #[error("key file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// A key file exists already; keys are never overwritten.
    #[error("{path} exists already; refusing to overwrite a key")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A key id must be 1–64 characters of `A-Z a-z 0-9 - _ .`.
    #[error("invalid key id: use 1–64 characters of A-Z, a-z, 0-9, '-', '_' and '.'")]
    InvalidKeyId,
    /// The epoch length must be at least one second.
    #[error("invalid epoch length of {0} seconds")]
    InvalidEpochLength(u64),
    /// An epoch's key was already destroyed by evolution.
    #[error("the key of epoch {requested} was destroyed (the sealing key is at epoch {held})")]
    EpochGone {
        /// The epoch asked for.
        requested: u64,
        /// The oldest epoch still held.
        held: u64,
    },
    /// The time is before the key's genesis.
    #[error("the time is before the key's genesis; check the clock or the key")]
    BeforeGenesis,
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// A sealing key file can be read or written by users other than its
    /// owner.
    #[error(
        "key file {path} can be read or written by other users (mode {mode:o}); restrict it to its owner (chmod 600)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The sealing key holds no key for a trail, and its own chain has
    /// moved past the epoch the trail's key would be derived from.
    #[error(
        "the sealing key holds no key for the {trail} trail, and cannot derive one: it would need epoch {needed}, but its own chain is at epoch {held}; use the sealing key file that has sealed this trail"
    )]
    NoTrailKey {
        /// The trail.
        trail: String,
        /// The epoch the trail's key would be derived from.
        needed: u64,
        /// The epoch the key's own chain is at.
        held: u64,
    },
}

/// Bytes or text that do not follow the trailseal format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Hexadecimal of the wrong length or with bad digits.
    #[error("{what} must be {expected_bytes} bytes of lower-case hexadecimal")]
    Hex {
        /// What was parsed.
        what: &'static str,
        /// Expected length in bytes.
        expected_bytes: usize,
    },
    /// A byte string of the wrong length.
    #[error("{what} must be {expected_bytes} bytes, found {actual_bytes}")]
    Length {
        /// What was parsed.
        what: &'static str,
        /// Expected length.
        expected_bytes: usize,
        /// Actual length.
        actual_bytes: usize,
    },
    /// An unknown entry kind code.
    #[error("unknown entry kind code {0}")]
    UnknownKind(u8),
    /// An unknown entry kind name.
    #[error("unknown entry kind {0:?}")]
    UnknownKindName(String),
}
