//! Batches on their way to the writer: prepared off its task, chained so
//! that a later one commits only if the one before did, and answered when
//! committed.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Error, Receipt, Result};
use crate::event::Event;
use crate::model::body_commitment;
use crate::seal::{Sealable, with_salts};

/// Events validated and turned into bodies with their commitments: the
/// part of sealing that needs no chain position, done by the caller.
pub(crate) struct PreparedBatch {
    pub(super) items: Vec<Sealable>,
}

impl PreparedBatch {
    pub(crate) fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Self> {
        let items = with_salts(|salts| {
            events
                .into_iter()
                .map(|event| {
                    let body = event.to_checked_body(&mut &mut *salts)?;
                    let commitment = body_commitment(&body);
                    Ok(Sealable::event(body, commitment))
                })
                .collect::<Result<Vec<_>>>()
        })??;
        Ok(Self { items })
    }
}

/// Batches handed to the writer one after another that must commit in that
/// order, each only if the one before it did. Once one fails, every later
/// batch of the chain fails with the same error without being appended, so
/// a caller may send the next batch before the previous one is committed.
#[derive(Clone, Default)]
pub(crate) struct BatchChain {
    failure: Arc<std::sync::Mutex<Option<Error>>>,
}

impl BatchChain {
    pub(super) fn fail(&self, err: &Error) {
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failure.get_or_insert_with(|| err.clone());
    }

    pub(super) fn failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A batch handed to the writer; [`Committing::receipts`] waits for its
/// commit.
pub(crate) struct Committing {
    pub(super) receipts: oneshot::Receiver<Result<Vec<Receipt>>>,
    pub(super) trail: String,
}

impl Committing {
    /// The receipts once the batch is committed; any error means none of
    /// it is.
    pub(crate) async fn receipts(self) -> Result<Vec<Receipt>> {
        let trail = self.trail;
        self.receipts.await.map_err(|_| Error::Closed { trail })?
    }
}

/// The callers waiting for one batch.
pub(super) enum Replies {
    /// One caller per entry ([`Trail::record`]).
    Each(Vec<oneshot::Sender<Result<Receipt>>>),
    /// One caller for all entries ([`Trail::record_batch`]), and the chain
    /// the batch belongs to, if any.
    Together(oneshot::Sender<Result<Vec<Receipt>>>, Option<BatchChain>),
}

impl Replies {
    pub(super) fn send(self, result: Result<Vec<Receipt>>) {
        // A caller that stopped waiting still has its entry stored.
        match (self, result) {
            (Replies::Each(replies), Ok(receipts)) => {
                for (reply, receipt) in replies.into_iter().zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            // Fail closed: nothing of the batch was committed, and every
            // caller learns it.
            (Replies::Each(replies), Err(err)) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
            (Replies::Together(reply, chain), result) => {
                if let (Some(chain), Err(err)) = (&chain, &result) {
                    chain.fail(err);
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Why the batch must not be appended: an earlier batch of its chain
    /// failed.
    pub(super) fn chain_failure(&self) -> Option<Error> {
        match self {
            Replies::Together(_, Some(chain)) => chain.failure(),
            _ => None,
        }
    }
}
