//! Why an event was not recorded.

use std::sync::Arc;

use crate::event::ValidationError;
use crate::model::FormatError;
use crate::seal::KeyError;
use crate::store::StoreError;

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
    /// A name or value does not follow the format, such as a trail name
    /// that is not 1–64 of `a-z 0-9 - _`.
    #[error(transparent)]
    Format(#[from] FormatError),
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
