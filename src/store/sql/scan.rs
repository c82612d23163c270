//! Scans read chunk by chunk (keyset pagination on `(trail, seq)`): each
//! chunk is one short query, so memory stays flat on any trail and no read
//! holds a snapshot for the whole scan; the next chunk is read while the
//! one before is decoded and consumed.

use std::marker::PhantomData;

use async_trait::async_trait;
use futures_core::stream::BoxStream;

use super::rows::{ENTRY_COLUMNS, ScanRow};
use crate::StoreError;
use crate::store::query::COPIED_FIELDS;

/// The statement that reads one chunk of a trail's rows from a seq on
/// (`trail`, `from`, how many), with `?` placeholders: the entry's columns,
/// and for rows decoded as `T` that carry what is stored beside the entry,
/// the query columns and `flag` (the restriction flag's column, or a
/// constant where the column does not exist yet).
pub(crate) fn scan_sql<T: ScanRow>(flag: &str) -> String {
    let mut columns = ENTRY_COLUMNS.to_owned();
    if T::BESIDE {
        for (column, _) in COPIED_FIELDS {
            columns.push_str(&format!(", {column}"));
        }
        columns.push_str(&format!(", {flag}"));
    }
    format!("SELECT {columns} FROM entries WHERE trail = ? AND seq >= ? ORDER BY seq LIMIT ?")
}

/// Reads a trail of a store in chunks of rows decoded as `T`; each backend
/// implements [`ChunkReader`] for its store's chunks.
pub(crate) struct Chunks<S, T> {
    pub(crate) store: S,
    rows: PhantomData<fn() -> T>,
}

/// Streams a trail's rows decoded as `T`, from seq `from` on, chunk by
/// chunk read ahead.
pub(crate) fn scan<'a, S, T>(
    store: &S,
    trail: &str,
    from: u64,
) -> BoxStream<'a, Result<T, StoreError>>
where
    S: Clone,
    T: 'static,
    Chunks<S, T>: ChunkReader<Item = T>,
{
    let chunks = Chunks {
        store: store.clone(),
        rows: PhantomData,
    };
    read_ahead_scan(chunks, trail, from)
}

/// One chunk of a scan as a backend reads it: each item on its own (a row
/// damaged beyond decoding is an error at its seq, and the scan goes on),
/// or an error that ends the scan.
type ScanChunk<T> = Result<Vec<Result<T, StoreError>>, StoreError>;

/// How many decoded chunks a scan holds ahead of its consumer.
const READ_AHEAD_CHUNKS: usize = 2;

/// How a SQL backend reads a trail in chunks, for [`read_ahead_scan`].
#[async_trait]
pub(crate) trait ChunkReader: Send + Sync + 'static {
    /// A chunk as read from the database, not yet decoded.
    type Chunk: Send + 'static;

    /// What a row decodes to: an [`Entry`], or a [`StoredEntry`].
    type Item: Send + 'static;

    /// Reads the chunk of `trail` that starts at seq `from`.
    async fn fetch_chunk(&self, trail: &str, from: i64) -> Result<Self::Chunk, StoreError>;

    /// Whether the chunk holds no rows: the scan is done.
    fn is_empty(chunk: &Self::Chunk) -> bool;

    /// Where the next chunk starts, or `None` after the last one.
    fn next_from(trail: &str, chunk: &Self::Chunk) -> Result<Option<i64>, StoreError>;

    /// The chunk's rows, each decoded on its own.
    fn decode(trail: &str, chunk: Self::Chunk) -> Vec<Result<Self::Item, StoreError>>;
}

/// A scan read chunk by chunk on a task of its own: the next chunk is read
/// while this one is decoded on a blocking thread, and both while the
/// consumer works on the chunk before, at most [`READ_AHEAD_CHUNKS`] ahead.
/// The task is started on the first poll, inside the caller's runtime, and
/// ends when the stream is dropped (its next send fails).
pub(crate) fn read_ahead_scan<'a, R: ChunkReader>(
    reader: R,
    trail: &str,
    from: u64,
) -> BoxStream<'a, Result<R::Item, StoreError>> {
    use futures_util::{StreamExt, TryStreamExt};

    let Ok(from) = i64::try_from(from) else {
        return Box::pin(futures_util::stream::empty());
    };
    let trail = trail.to_owned();
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD_CHUNKS);
    let chunks = futures_util::stream::unfold(
        (Some((reader, trail, sender)), receiver),
        move |(start, mut receiver)| async move {
            if let Some((reader, trail, sender)) = start {
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn(read_ahead(reader, trail, from, sender))),
                    Err(err) => {
                        let err = StoreError::Runtime(Box::new(err));
                        return Some((Err(err), (None, receiver)));
                    }
                }
            }
            let chunk = receiver.recv().await?;
            Some((chunk, (None, receiver)))
        },
    );
    Box::pin(
        chunks
            .map_ok(|entries| futures_util::stream::iter(entries.into_iter().map(Ok)))
            .try_flatten()
            .map(|item| item.and_then(|entry| entry)),
    )
}

/// The task behind [`read_ahead_scan`].
async fn read_ahead<R: ChunkReader>(
    reader: R,
    trail: String,
    from: i64,
    sender: tokio::sync::mpsc::Sender<ScanChunk<R::Item>>,
) {
    let mut fetched = reader.fetch_chunk(&trail, from).await;
    loop {
        let chunk = match fetched {
            Ok(chunk) if R::is_empty(&chunk) => return,
            Ok(chunk) => chunk,
            Err(err) => {
                let _ = sender.send(Err(err)).await;
                return;
            }
        };
        let next = R::next_from(&trail, &chunk);
        let name = trail.clone();
        let decoding = tokio::task::spawn_blocking(move || R::decode(&name, chunk));
        let (decoded, following) = match next {
            Ok(Some(next)) => {
                let (decoded, following) =
                    futures_util::future::join(decoding, reader.fetch_chunk(&trail, next)).await;
                (decoded, Some(following))
            }
            Ok(None) => (decoding.await, None),
            // The chunk read still counts; the error ends the scan after it.
            Err(err) => (decoding.await, Some(Err(err))),
        };
        let decoded = decoded.map_err(|err| StoreError::Runtime(Box::new(err)));
        if sender.send(decoded).await.is_err() {
            // The scan was dropped.
            return;
        }
        match following {
            Some(following) => fetched = following,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use futures_core::Stream;

    use super::*;

    /// A trail of one chunk of seqs, read without a database.
    struct Seqs;

    #[async_trait]
    impl ChunkReader for Seqs {
        type Chunk = Vec<i64>;
        type Item = i64;

        async fn fetch_chunk(&self, _: &str, from: i64) -> Result<Vec<i64>, StoreError> {
            Ok((from..3).collect())
        }

        fn is_empty(chunk: &Vec<i64>) -> bool {
            chunk.is_empty()
        }

        fn next_from(_: &str, _: &Vec<i64>) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }

        fn decode(_: &str, chunk: Vec<i64>) -> Vec<Result<i64, StoreError>> {
            chunk.into_iter().map(Ok).collect()
        }
    }

    #[test]
    fn a_scan_outside_a_tokio_runtime_fails_as_a_runtime_error() {
        let mut scan = read_ahead_scan(Seqs, "admin", 0);
        let mut context = Context::from_waker(Waker::noop());
        match Pin::new(&mut scan).poll_next(&mut context) {
            Poll::Ready(Some(Err(StoreError::Runtime(_)))) => {}
            other => panic!("expected a runtime error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_scan_inside_a_runtime_reads_its_chunks() {
        use futures_util::TryStreamExt;
        let seqs: Vec<i64> = read_ahead_scan(Seqs, "admin", 1)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(seqs, [1, 2]);
    }
}
