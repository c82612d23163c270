//! Writing a trail: the [`Trail`] handle and its group-commit writer, and
//! recording inside a caller's own database transaction.

mod batch;
mod error;
mod sealer;
mod trail;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transaction;
mod writer;

pub(crate) use batch::{BatchChain, Committing, PreparedBatch};
pub use error::{Error, Result};
pub use trail::{
    DEFAULT_MAX_BATCH, DEFAULT_MAX_CONFLICTS, DEFAULT_QUEUE_CAPACITY, Receipt, Trail, TrailBuilder,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use transaction::TransactionRecorder;
