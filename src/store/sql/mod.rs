//! What the SQL backends share: the `entries` statements, the decoding of
//! stored rows, chunked scans read ahead, queries, retention and snapshots,
//! written once for SQLite and PostgreSQL.
//!
//! What differs between the two is a [`Dialect`] (placeholders, column
//! types, how a write transaction begins, row locks), implemented on
//! sqlx's database types, and a [`SqlStore`] (the pool, how driver errors
//! are classified, and the head and the insert, which each backend guards
//! its own way). The backends keep what only they do: SQLite's joined scan
//! chunks and multi-row inserts, PostgreSQL's day partitions and its
//! compare-and-swap append.

pub(crate) mod query;
mod retention;
pub(crate) mod rows;
mod scan;
pub(crate) mod schema;
mod snapshots;
mod statements;

use std::borrow::Cow;

use async_trait::async_trait;
use sqlx::error::BoxDynError;
use sqlx::{Database, Executor, IntoArguments, Pool, Transaction};

pub(crate) use query::query;
pub(crate) use retention::{delete_events, erase_fields};
pub(crate) use rows::{ScanRow, SqlRow, decode_head, decode_rows, to_i64};
pub(crate) use scan::{ChunkReader, Chunks, scan, scan_sql};
pub(crate) use snapshots::{put_snapshot, snapshot};
pub(crate) use statements::{Statements, epoch_summary, key_entries};

use crate::StoreError;
use crate::model::{Entry, Head};

/// What differs in the SQL of one backend, implemented on sqlx's database
/// type ([`sqlx::Sqlite`], [`sqlx::Postgres`]).
pub(crate) trait Dialect: Database<Row: SqlRow, Arguments: IntoArguments<Self>> {
    /// Entries read per query while scanning.
    const SCAN_CHUNK: i64;

    /// The condition that an entry's processing is not restricted.
    const NOT_RESTRICTED: &'static str;

    /// What ends a select whose rows the transaction then changes, so that
    /// no other writer changes them meanwhile (empty where the transaction
    /// holds the whole database's write lock).
    const LOCK_ROWS: &'static str;

    /// The statement that begins a transaction that writes, unless the
    /// driver's own `BEGIN` does.
    const BEGIN_WRITE: Option<&'static str>;

    /// A statement written with `?` placeholders, in this dialect's.
    fn placeholders(template: &str) -> Cow<'_, str>;

    /// Adds a value to a statement's arguments, in the column type this
    /// backend stores it as.
    fn add(arguments: &mut Self::Arguments, value: Argument<'_>) -> Result<(), BoxDynError>;

    /// A body value as its query column (the copy kept for queries)
    /// stores it.
    fn copy_text(value: &str) -> Cow<'_, str>;

    /// Whether a query column's text is the stored form of a body value.
    fn is_copy_of(stored: &str, value: &str) -> bool;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// The pool, as what runs statements.
    fn on_pool(pool: &Pool<Self>) -> impl Executor<'_, Database = Self>;

    /// A connection (one in a transaction, say), as what runs statements.
    fn on_connection(connection: &mut Self::Connection) -> impl Executor<'_, Database = Self>;

    /// The statements every backend runs, in this dialect.
    fn statements() -> &'static Statements;
}

/// A value bound to a statement, by what it means; the [`Dialect`] picks
/// the column type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Argument<'a> {
    /// Text.
    Text(&'a str),
    /// Text, or NULL.
    OptionalText(Option<&'a str>),
    /// An integer.
    Integer(i64),
    /// An integer, or NULL.
    OptionalInteger(Option<i64>),
    /// A point in time, in microseconds since the Unix epoch (UTC).
    Micros(i64),
}

/// A statement's arguments, built from `values` in order. A value that
/// cannot be encoded fails as it would when bound to the statement.
pub(crate) fn arguments<S: SqlStore + ?Sized>(
    store: &S,
    values: &[Argument<'_>],
) -> Result<<S::Db as Database>::Arguments, StoreError> {
    let mut arguments = <S::Db as Database>::Arguments::default();
    for &value in values {
        S::Db::add(&mut arguments, value)
            .map_err(|err| store.classify(sqlx::Error::Encode(err)))?;
    }
    Ok(arguments)
}

/// A store in an SQL database: what the shared code needs of a backend.
#[async_trait]
pub(crate) trait SqlStore: Send + Sync + 'static {
    /// The backend's dialect.
    type Db: Dialect;

    /// The store's connections.
    fn pool(&self) -> &Pool<Self::Db>;

    /// The database, as errors name it: an SQLite file's path, or a
    /// PostgreSQL server's host, port and database name (never a
    /// password).
    fn database(&self) -> String;

    /// Turns a driver error into the store error a caller can act on.
    fn classify(&self, err: sqlx::Error) -> StoreError;

    /// Locks the trail's head until the transaction on `connection` ends,
    /// and reads it: no other writer moves the head before the transaction
    /// commits.
    async fn lock_head(
        &self,
        connection: &mut <Self::Db as Database>::Connection,
        trail: &str,
    ) -> Result<Option<Head>, StoreError>;

    /// Inserts entries continuing `after` inside the transaction on
    /// `connection`, whose head [`SqlStore::lock_head`] locked.
    async fn insert_locked(
        &self,
        connection: &mut <Self::Db as Database>::Connection,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError>;
}

/// Begins a transaction that writes.
pub(crate) async fn begin_write<S: SqlStore + ?Sized>(
    store: &S,
) -> Result<Transaction<'static, S::Db>, StoreError> {
    let begun = match S::Db::BEGIN_WRITE {
        Some(statement) => store.pool().begin_with(statement).await,
        None => store.pool().begin().await,
    };
    begun.map_err(|err| store.classify(err))
}

/// An entry's body as the JSON text the SQL backends store.
pub(crate) fn body_json(trail: &str, entry: &Entry) -> Result<String, StoreError> {
    // Sized for a typical body up front: growing from serde_json's small
    // default reallocates several times per entry.
    let mut json = Vec::with_capacity(64 + 96 * entry.body.len());
    serde_json::to_writer(&mut json, &entry.body)
        .map_err(|err| err.to_string())
        .and_then(|()| String::from_utf8(json).map_err(|err| err.to_string()))
        .map_err(|err| StoreError::InvalidBatch {
            trail: trail.to_owned(),
            reason: format!(
                "entry {} has a body that cannot be stored: {err}",
                entry.seq
            ),
        })
}
