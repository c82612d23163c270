//! What can go wrong with keys.

use std::path::PathBuf;

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
