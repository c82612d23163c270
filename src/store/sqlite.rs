//! The SQLite backend: [`SqliteStore`], the embedded default.
//!
//! One database file holds every trail. The file runs in WAL mode, so
//! readers (queries, the verifier) never block the writer; appends take the
//! write lock up front (`BEGIN IMMEDIATE`), and the primary key on
//! `(trail, seq)` makes a fork impossible even when several processes write
//! to the same file.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::{BoxDynError, ErrorKind};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, ConnectOptions, Connection, Executor, Row, Sqlite, SqliteConnection};

use super::query::{COPIED_FIELDS, IndexedFields, StoredCopy};
use super::sql::rows::{StoredColumns, corrupt};
use super::sql::{
    self, Argument, ChunkReader, Dialect, ScanRow, SqlRow, SqlStore, Statements, body_json,
    decode_head, decode_rows, read_ahead_scan, scan_sql,
};
use super::{
    EntryStream, EpochSummary, Erasure, Page, PreviousAppend, Query, Store, StoredEntry,
    StoredEntryStream, check_batch, conflict_after,
};
use crate::StoreError;
use crate::model::Snapshot;
use crate::model::{Entry, Head};

/// The schema, one migration per version; applied when a store is opened.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(super::sql::schema::sqlite);

/// `PRAGMA application_id` of a trailseal database ("tsl1"): marks the
/// file as ours, so a store never writes into another application's data.
const APPLICATION_ID: i64 = 0x7473_6c31;

/// SQLite's limit on bound parameters per statement (the bundled SQLite's
/// `SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_BOUND_PARAMETERS: usize = 32_766;

/// The columns an insert binds, in order.
const INSERT_COLUMNS: [&str; 18] = [
    "trail",
    "seq",
    "epoch",
    "key_id",
    "recorded_at",
    "kind",
    "body",
    "prev_mac",
    "body_commitment",
    "mac",
    "action",
    "tenant",
    "actor",
    "target_type",
    "target_id",
    "ip",
    "outcome",
    "request_id",
];

/// The largest multi-row insert: a power of two, so that every batch splits
/// into at most a dozen statement shapes that stay prepared in the cache.
const MAX_INSERT_ROWS: usize = {
    let fit = MAX_BOUND_PARAMETERS / INSERT_COLUMNS.len();
    let mut rows = 1;
    while rows * 2 <= fit && rows * 2 <= 1024 {
        rows *= 2;
    }
    rows
};

/// Pages the write-ahead log grows by before a commit folds it back into the
/// database file (SQLite's `wal_autocheckpoint`, whose own default is
/// 1,000 pages).
///
/// Every commit writes each page it changed to the log, and a checkpoint
/// writes it again into the file and flushes. An index with random keys
/// (`ip`) changes a page per row, and the same pages again in the next
/// batches; a longer log lets them reach the file once per checkpoint
/// instead of once per batch. 16,384 pages of 4 KiB are 64 MiB of log.
pub const DEFAULT_WAL_CHECKPOINT_PAGES: u32 = 16_384;

/// How much an acknowledged event survives, as SQLite's `synchronous`
/// setting in WAL mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqliteSync {
    /// `synchronous = FULL`: every commit is flushed to stable storage
    /// before it is acknowledged, so an acknowledged event survives a crash
    /// of the process, of the operating system and a power loss. The
    /// default: an audit trail that loses acknowledged events loses its
    /// point.
    #[default]
    Full,
    /// `synchronous = NORMAL`: an acknowledged event survives a crash of
    /// the process, but the last commits before an operating system crash
    /// or a power loss may be lost (the trail stays consistent and
    /// verifiable, only shorter).
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteStoreOptions {
    path: PathBuf,
    create_if_missing: bool,
    read_only: bool,
    busy_timeout: Duration,
    sync: SqliteSync,
    max_connections: u32,
    wal_checkpoint_pages: u32,
}

impl SqliteStoreOptions {
    /// Options for the database file at `path`: created when missing,
    /// read-write, [`SqliteSync::Full`], a busy timeout of 5 seconds, a
    /// checkpoint every [`DEFAULT_WAL_CHECKPOINT_PAGES`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create_if_missing: true,
            read_only: false,
            busy_timeout: Duration::from_secs(5),
            sync: SqliteSync::Full,
            max_connections: 4,
            wal_checkpoint_pages: DEFAULT_WAL_CHECKPOINT_PAGES,
        }
    }

    /// Options for a database URL: `sqlite://path/to/file.db` (a relative
    /// path), `sqlite:///absolute/path.db`, `sqlite:path` or a plain path.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(StoreError::InvalidUrl(format!(
                "{url:?} is not an SQLite URL; use sqlite://path/to/file.db"
            )));
        } else {
            url
        };
        if path.is_empty() || path.contains('?') {
            return Err(StoreError::InvalidUrl(format!(
                "{url:?} names no file; use sqlite://path/to/file.db (options go in SqliteStoreOptions)"
            )));
        }
        Ok(Self::new(path))
    }

    /// Whether a missing file is created (default: yes).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Opens the file read-only, e.g. to verify or query an archived copy:
    /// nothing is ever written, appends fail with [`StoreError::ReadOnly`].
    ///
    /// How SQLite reads the file depends on whether a log (`-wal`) is next
    /// to it, since every connection keeps the log of a database in WAL mode
    /// open, creating it if it is missing, and the last one to close folds
    /// it back into the file and removes it:
    ///
    /// - Without a log the database is closed, and it is read as an
    ///   immutable file: nothing is created next to it (neither the log nor
    ///   its index, `-shm`), and neither the file's bytes nor its
    ///   modification time change, so a user who may only read the file and
    ///   its folder can open it. SQLite then takes no locks and does not
    ///   notice changes: the file must stay closed to writers while the
    ///   store is open, or reads may fail or return rows that are out of
    ///   date. Open a new store to read what a writer wrote since.
    /// - With a log (a writer has the database open, or did not close it),
    ///   it is read through the log and its index, with the usual locks, so
    ///   every commit is seen, also those a running writer makes later. An
    ///   index that exists is used even if it cannot be written; a missing
    ///   one is created, which takes write access to the folder. Without
    ///   it, opening fails with [`StoreError::WalUnreadable`], since the
    ///   file alone may lack the log's commits.
    ///
    /// A database in rollback-journal mode (a backup written by `VACUUM
    /// INTO` may be one) is read with the usual locks, which need nothing
    /// next to it.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// How long to wait for another connection's lock before failing with
    /// [`StoreError::Busy`] (default: 5 seconds).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// What an acknowledged event survives (default: [`SqliteSync::Full`]).
    pub fn sync(mut self, sync: SqliteSync) -> Self {
        self.sync = sync;
        self
    }

    /// Most connections kept open (default: 4). Writes take turns on the
    /// file's single write lock; more connections let reads run alongside.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How many pages the write-ahead log grows by before a commit folds it
    /// back into the database file (default:
    /// [`DEFAULT_WAL_CHECKPOINT_PAGES`], 64 MiB). A shorter log costs
    /// write throughput, a longer one disk space and recovery time after a
    /// crash; after a checkpoint the log file is cut back to this size.
    /// `0` is taken as 1.
    pub fn wal_checkpoint_pages(mut self, pages: u32) -> Self {
        self.wal_checkpoint_pages = pages.max(1);
        self
    }

    /// Opens the store: checks that the file is a trailseal database (or
    /// new), applies pending schema migrations and sets up WAL mode.
    ///
    /// A file that is a directory, not a database, damaged, another
    /// application's database, read-only (unless opened read-only) or from
    /// a newer trailseal is refused with a typed error, and nothing is
    /// written to it; so is a file opened read-only whose log cannot be
    /// read (see [`Self::read_only`]).
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        let exists = self.check_path()?;
        // Judged before any connection: SQLite creates the log of a closed
        // database as soon as it reads it.
        let closed = exists && self.is_closed_wal_database()?;
        let identity = if exists {
            self.probe(closed).await?
        } else {
            Identity::Fresh
        };
        if identity == Identity::Foreign {
            return Err(StoreError::NotATrailStore(format!(
                "{} is an SQLite database of another application (it has tables but no trailseal marker); refusing to use it",
                self.path.display()
            )));
        }
        let path = Arc::new(self.path.clone());
        let pool = SqlitePoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.busy_timeout + Duration::from_secs(5))
            // A connection to a file in this process does not go stale,
            // and sqlx already checks each one when it comes back: a check
            // on every acquire would cost another trip to the connection's
            // thread before each batch.
            .test_before_acquire(false)
            .connect_with(self.connect_options(closed))
            .await
            .map_err(|err| self.classify_opening(err))?;
        let mut store = SqliteStore {
            pool,
            path,
            restriction_column: true,
        };
        if self.read_only {
            store.check_schema_read_only(identity).await?;
        } else {
            store.migrate(identity).await?;
        }
        store.restriction_column = store.has_restriction_column().await?;
        Ok(store)
    }

    /// Refuses what is not a database file before SQLite touches it; tells
    /// whether the file exists.
    fn check_path(&self) -> Result<bool, StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.is_dir() => Err(io(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "this is a directory; give the path of a database file inside it",
            ))),
            // A file marked read-only was made so on purpose (an archived
            // trail); even a privileged process must not append to it.
            Ok(meta) if meta.permissions().readonly() && !self.read_only => {
                Err(StoreError::ReadOnly {
                    path: self.path.clone(),
                })
            }
            Ok(_) => Ok(true),
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound
                    && self.create_if_missing
                    && !self.read_only =>
            {
                Ok(false)
            }
            Err(err) => Err(io(err)),
        }
    }

    /// Whether the file is a WAL database that no connection has open: its
    /// header says WAL, and there is no log (`-wal`) next to it. Every
    /// connection to a WAL database keeps the log open, creating it if it is
    /// missing, for as long as it has the database open; the last one to
    /// close folds the log back into the file and removes it.
    fn is_closed_wal_database(&self) -> Result<bool, StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut header = Vec::with_capacity(20);
        std::fs::File::open(&self.path)
            .and_then(|file| file.take(20).read_to_end(&mut header))
            .map_err(io)?;
        // The magic string, then at offset 19 the version a reader needs:
        // 2 for a database in WAL mode.
        let wal_mode = header.len() == 20 && header.starts_with(SQLITE_MAGIC) && header[19] == 2;
        if !wal_mode {
            return Ok(false);
        }
        Ok(!sibling(&self.path, "-wal").try_exists().map_err(io)?)
    }

    /// Reads the file's marker through a read-only connection, so that
    /// nothing is written to a file that turns out not to be ours.
    async fn probe(&self, closed: bool) -> Result<Identity, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .immutable(closed)
            .busy_timeout(self.busy_timeout);
        let classify = |err| self.classify_opening(err);
        let mut connection = options.connect().await.map_err(classify)?;
        let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&mut connection)
            .await
            .map_err(classify)?;
        let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut connection)
            .await
            .map_err(classify)?;
        connection.close().await.map_err(classify)?;
        Ok(match (application_id, objects) {
            (APPLICATION_ID, _) => Identity::Ours,
            (0, 0) => Identity::Fresh,
            _ => Identity::Foreign,
        })
    }

    /// Classifies an error of opening the file. SQLite reads a database
    /// that has a log next to it through the log's index, creating the
    /// index if it is missing; when a read-only open can do neither, the
    /// driver says only "unable to open", and the caller needs to know why.
    fn classify_opening(&self, err: sqlx::Error) -> StoreError {
        let cannot_read_log = self.read_only
            && matches!(
                result_code(&err),
                Some(result_code::CANTOPEN | result_code::READONLY)
            )
            && sibling(&self.path, "-wal").exists();
        if cannot_read_log {
            return StoreError::WalUnreadable {
                path: self.path.clone(),
            };
        }
        classify(&self.path, err)
    }

    /// The connections' settings; `closed` as found by
    /// [`Self::is_closed_wal_database`].
    fn connect_options(&self, closed: bool) -> SqliteConnectOptions {
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(self.busy_timeout)
            .statement_cache_capacity(256)
            // Rows cross from SQLite's thread to the caller through this
            // buffer; a deep one lets a scan chunk arrive in a few wake-ups.
            .row_buffer_size(1024);
        if self.read_only {
            return options.read_only(true).immutable(closed);
        }
        options
            .create_if_missing(self.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match self.sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .pragma("wal_autocheckpoint", self.wal_checkpoint_pages.to_string())
            // Without a limit the log file keeps its largest size; with it,
            // the file is cut back after each checkpoint. In bytes, for
            // SQLite's default page size of 4 KiB.
            .pragma(
                "journal_size_limit",
                (u64::from(self.wal_checkpoint_pages) * 4096).to_string(),
            )
            // A multi-row insert inside a transaction keeps the pages it
            // changes in a statement journal, which SQLite moves to a
            // temporary file beyond 64 KiB; a batch with random `ip` keys
            // changes a thousand pages. In memory that costs a few MiB per
            // batch instead of writing them to a file. Migrations switch
            // back to files, since building an index sorts the whole table.
            .pragma("temp_store", "memory")
    }
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// The file SQLite keeps next to `database` under the name with `suffix`
/// appended (`-wal`, `-shm`).
fn sibling(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What a database file is, judged before anything is written to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    /// Missing or empty: ours to set up.
    Fresh,
    /// Marked as a trailseal database.
    Ours,
    /// Somebody else's data.
    Foreign,
}

/// A [`Store`] in one SQLite database file. Clones share the connections.
///
/// ```no_run
/// # async fn run() -> Result<(), trailseal::StoreError> {
/// use trailseal::SqliteStore;
///
/// let store = SqliteStore::open("trailseal-data/trail.db").await?;
/// # store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    pub(crate) path: Arc<PathBuf>,
    /// Whether `entries` has the restriction flag's column: a file opened
    /// read-only may predate it.
    restriction_column: bool,
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default
    /// [`SqliteStoreOptions`].
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        SqliteStoreOptions::new(path).open().await
    }

    /// Opens (or creates) the database a URL names; see
    /// [`SqliteStoreOptions::from_url`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        SqliteStoreOptions::from_url(url)?.open().await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection, after which SQLite folds the WAL back into
    /// the database file. Call it before the process exits.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self, identity: Identity) -> Result<(), StoreError> {
        if identity == Identity::Fresh {
            // The marker goes first: if the process dies during the
            // migrations, the next open still knows the file is ours.
            sqlx::query("PRAGMA application_id = 1953721393")
                .execute(&self.pool)
                .await
                .map_err(|err| self.classify(err))?;
        }
        if !self.pending_migrations().await? {
            return Ok(());
        }
        // On a connection of its own, returned to the pool before anything
        // else needs one (the pool may hold a single connection).
        let migrated = {
            let mut connection = self
                .pool
                .acquire()
                .await
                .map_err(|err| self.classify(err))?;
            sqlx::query("PRAGMA temp_store = FILE")
                .execute(&mut *connection)
                .await
                .map_err(|err| self.classify(err))?;
            let migrated = MIGRATOR.run(&mut *connection).await;
            // Back to the pool's setting, so that every connection behaves
            // alike.
            sqlx::query("PRAGMA temp_store = MEMORY")
                .execute(&mut *connection)
                .await
                .map_err(|err| self.classify(err))?;
            migrated
        };
        match migrated {
            Ok(()) => Ok(()),
            // Another process may have applied them at the same moment.
            Err(_) if !self.pending_migrations().await? => Ok(()),
            Err(err) => Err(self.migrate_error(err)),
        }
    }

    async fn check_schema_read_only(&self, identity: Identity) -> Result<(), StoreError> {
        // Scans and exports read only what the first schema version has, so
        // a file a writer has not upgraded yet can still be verified.
        if identity == Identity::Ours && self.has_base_schema().await? {
            return Ok(());
        }
        Err(StoreError::NotATrailStore(format!(
            "{} has no complete trailseal schema; open it read-write once to set it up",
            self.path.display()
        )))
    }

    /// Whether the first migration (the `entries` table) is applied; fails
    /// if the database has migrations this version does not know.
    async fn has_base_schema(&self) -> Result<bool, StoreError> {
        let pending = self.pending_migrations().await?;
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if !pending {
            return Ok(true);
        }
        if recorded == 0 {
            return Ok(false);
        }
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM _sqlx_migrations WHERE success AND version = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        Ok(applied == 1)
    }

    /// Whether migrations this version knows are missing; fails if the
    /// database has migrations this version does not know.
    async fn pending_migrations(&self) -> Result<bool, StoreError> {
        let table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if table == 0 {
            return Ok(true);
        }
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        if let Some(&unknown) = applied
            .iter()
            .find(|&&version| !MIGRATOR.version_exists(version))
        {
            return Err(StoreError::UnsupportedSchema {
                path: self.path.to_path_buf(),
                version: unknown,
            });
        }
        Ok(MIGRATOR
            .iter()
            .any(|migration| !applied.contains(&migration.version)))
    }

    fn migrate_error(&self, err: MigrateError) -> StoreError {
        match err {
            MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => {
                self.classify(err)
            }
            MigrateError::VersionMissing(version) => StoreError::UnsupportedSchema {
                path: self.path.to_path_buf(),
                version,
            },
            other => StoreError::Database(Box::new(other)),
        }
    }

    /// One chunk of a scan read row by row: every row decoded on its own, so
    /// a row that was damaged in storage is reported (by the verifier, as a
    /// finding) without hiding the rows after it.
    async fn read_chunk<T: ScanRow>(
        &self,
        sql: &'static str,
        trail: &str,
        from: i64,
    ) -> Result<FetchedChunk<T>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(trail)
            .bind(from)
            .bind(Sqlite::SCAN_CHUNK)
            .fetch_all(&self.pool)
            .await
            .map_err(|err| self.classify(err))?;
        let Some(last_seq) = rows.last().map(|row| row.integer(1)) else {
            return Ok(FetchedChunk::Empty);
        };
        Ok(FetchedChunk::Decoded {
            last_seq: last_seq.ok(),
            entries: decode_rows::<Sqlite, T>(trail, &rows),
        })
    }

    /// Whether `entries` has the restriction flag's column (schema version
    /// 2); a file a writer has not upgraded yet restricts nothing.
    async fn has_restriction_column(&self) -> Result<bool, StoreError> {
        let columns: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pragma_table_info('entries') WHERE name = 'restricted'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.classify(err))?;
        Ok(columns == 1)
    }

    /// The queries of a scan chunk that reads rows as `T`.
    fn scan_queries<T: ScanRow>(&self) -> &'static ScanQueries {
        static QUERIES: [OnceLock<ScanQueries>; 3] = [const { OnceLock::new() }; 3];
        let (index, beside) = match (T::BESIDE, self.restriction_column) {
            (false, _) => (0, None),
            (true, true) => (1, Some("restricted")),
            // Nothing is restricted before the column exists.
            (true, false) => (2, Some("0")),
        };
        QUERIES[index].get_or_init(|| ScanQueries::new(beside))
    }
}

/// Decodes a row of [`ScanQueries::joined`].
fn from_framed<T: ScanRow>(row: FramedRow<'_>, trail: String) -> Result<T, StoreError> {
    let beside = row.beside;
    let entry = row.into_entry(trail)?;
    let beside = beside
        .as_ref()
        .map(|beside| (&beside.copies, beside.restricted));
    Ok(T::assemble::<Sqlite>(entry, beside))
}

/// Reads a trail in chunks of rows decoded as `T`, for [`read_ahead_scan`].
pub(crate) struct Chunks<T> {
    store: SqliteStore,
    rows: std::marker::PhantomData<fn() -> T>,
}

impl<T> Chunks<T> {
    fn of(store: &SqliteStore) -> Self {
        Self {
            store: store.clone(),
            rows: std::marker::PhantomData,
        }
    }
}

#[async_trait]
impl<T: ScanRow> ChunkReader for Chunks<T> {
    type Chunk = FetchedChunk<T>;
    type Item = T;

    /// One chunk of a scan, undecoded. SQLite joins the rows into one
    /// value, since the driver hands each result row from its thread to the
    /// caller on its own, which costs several times what SQLite's read does.
    /// Rows whose columns do not have the stored types (only a file whose
    /// schema was tampered with has them) are read row by row instead.
    async fn fetch_chunk(&self, trail: &str, from: i64) -> Result<FetchedChunk<T>, StoreError> {
        let store = &self.store;
        let queries = store.scan_queries::<T>();
        let fetched = sqlx::query_as::<_, (Option<Vec<u8>>, i64, Option<i64>, Option<bool>)>(
            queries.joined.as_str(),
        )
        .bind(trail)
        .bind(from)
        .bind(Sqlite::SCAN_CHUNK)
        .fetch_one(&store.pool)
        .await;
        match fetched {
            Ok((Some(rows_joined), rows, Some(last_seq), Some(true))) => Ok(FetchedChunk::Joined {
                rows_joined,
                rows,
                last_seq,
                path: Arc::clone(&store.path),
            }),
            Ok((None, 0, ..)) => Ok(FetchedChunk::Empty),
            // Mistyped columns, or a database not in UTF-8: the row-by-row
            // read reports each damaged row on its own.
            _ => store.read_chunk(queries.rows.as_str(), trail, from).await,
        }
    }

    fn is_empty(chunk: &FetchedChunk<T>) -> bool {
        matches!(chunk, FetchedChunk::Empty)
    }

    fn next_from(_trail: &str, chunk: &FetchedChunk<T>) -> Result<Option<i64>, StoreError> {
        Ok(chunk.next_from())
    }

    fn decode(trail: &str, chunk: FetchedChunk<T>) -> Vec<Result<T, StoreError>> {
        chunk.decode(trail)
    }
}

/// The two queries of a scan chunk.
pub(crate) struct ScanQueries {
    /// The rows joined into one value by SQLite.
    joined: String,
    /// The rows one by one, for chunks the joined query cannot frame.
    rows: String,
}

impl ScanQueries {
    /// The queries of a plain scan, or with `beside` (the restriction
    /// flag's column, or a constant for a file without it) of a scan that
    /// also reads the query columns and the flag.
    ///
    /// The joined query gives the rows framed as bytes, the row count, the
    /// last seq, and whether every column has its stored type and size
    /// (and the database stores text as UTF-8, so that text and blobs join
    /// unchanged). A row is `seq epoch recorded_at`, the byte lengths of
    /// key id, kind and body, then (with `beside`) the flag and the byte
    /// lengths of the query columns (`-1` for NULL), each followed by a
    /// space; then the three 32-byte blobs, key id and kind, the query
    /// columns, and the body, as stored. The lengths make any stored text
    /// safe to frame. (Hex or JSON would cost SQLite more than it takes to
    /// read the row.) The body comes last because every `||` copies what
    /// it appends to.
    fn new(beside: Option<&str>) -> Self {
        let mut numbers: Vec<String> = [
            "seq",
            "epoch",
            "recorded_at",
            "octet_length(key_id)",
            "octet_length(kind)",
            "octet_length(body)",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut texts: Vec<String> = vec!["key_id".into(), "kind".into()];
        let mut checks = "typeof(seq) = 'integer' AND typeof(epoch) = 'integer' \
             AND typeof(key_id) = 'text' AND typeof(recorded_at) = 'integer' \
             AND typeof(kind) = 'text' AND typeof(body) = 'text' \
             AND typeof(prev_mac) = 'blob' AND length(prev_mac) = 32 \
             AND typeof(body_commitment) = 'blob' AND length(body_commitment) = 32 \
             AND typeof(mac) = 'blob' AND length(mac) = 32"
            .to_owned();
        if let Some(flag) = beside {
            numbers.push(flag.to_owned());
            checks.push_str(&format!(" AND typeof({flag}) = 'integer'"));
            for (column, _) in COPIED_FIELDS {
                numbers.push(format!("ifnull(octet_length({column}), -1)"));
                texts.push(format!("ifnull({column}, '')"));
                checks.push_str(&format!(" AND typeof({column}) IN ('text', 'null')"));
            }
        }
        texts.push("body".into());
        let format = "%d ".repeat(numbers.len());
        let joined = format!(
            "SELECT CAST(group_concat(printf('{format}', {}) \
             || prev_mac || body_commitment || mac || {}, '') AS BLOB), \
             count(*), max(seq), min({checks}) \
             AND (SELECT encoding FROM pragma_encoding) = 'UTF-8' \
             FROM (SELECT * FROM entries WHERE trail = ? AND seq >= ? ORDER BY seq LIMIT ?)",
            numbers.join(", "),
            texts.join(" || "),
        );
        let rows = match beside {
            Some(flag) => scan_sql::<StoredEntry>(flag),
            None => scan_sql::<Entry>(""),
        };
        Self { joined, rows }
    }
}

/// The names of every trail that has entries, and of every trail the
/// `trails` table names.
///
/// The table is only a list kept beside the entries: a row deleted from it,
/// or a view in its place, must not hide a trail from the verifier. So the
/// entries' primary key is walked from one trail to the next (a recursive
/// query that seeks the first name after the one before), one index seek per
/// trail instead of a read of every entry.
const TRAILS_SQL: &str = "WITH RECURSIVE stored(name) AS ( \
     SELECT (SELECT trail FROM entries ORDER BY trail LIMIT 1) \
     UNION ALL \
     SELECT (SELECT trail FROM entries WHERE trail > stored.name ORDER BY trail LIMIT 1) \
     FROM stored WHERE stored.name IS NOT NULL) \
     SELECT name FROM stored WHERE name IS NOT NULL \
     UNION SELECT name FROM trails ORDER BY 1";

/// One chunk of a scan as read from the database.
pub(crate) enum FetchedChunk<T> {
    /// No rows: the scan is done.
    Empty,
    /// Rows joined by SQLite, not yet decoded.
    Joined {
        rows_joined: Vec<u8>,
        rows: i64,
        last_seq: i64,
        /// The database file, to name if SQLite framed the rows wrongly.
        path: Arc<PathBuf>,
    },
    /// Rows read and decoded one by one.
    Decoded {
        entries: Vec<Result<T, StoreError>>,
        last_seq: Option<i64>,
    },
}

impl<T: ScanRow> FetchedChunk<T> {
    /// Where the next chunk starts, unless this one was the last.
    fn next_from(&self) -> Option<i64> {
        let (rows, last_seq) = match self {
            FetchedChunk::Empty => return None,
            FetchedChunk::Joined { rows, last_seq, .. } => (*rows, Some(*last_seq)),
            FetchedChunk::Decoded { entries, last_seq } => (entries.len() as i64, *last_seq),
        };
        match last_seq {
            Some(last) if rows == Sqlite::SCAN_CHUNK => last.checked_add(1),
            _ => None,
        }
    }

    fn decode(self, trail: &str) -> Vec<Result<T, StoreError>> {
        match self {
            FetchedChunk::Empty => Vec::new(),
            FetchedChunk::Joined {
                rows_joined,
                rows,
                path,
                ..
            } => decode_joined(trail, &rows_joined, rows).unwrap_or_else(|detail| {
                vec![Err(StoreError::DatabaseCorrupt {
                    path: path.to_path_buf(),
                    detail,
                })]
            }),
            FetchedChunk::Decoded { entries, .. } => entries,
        }
    }
}

/// Decodes the rows of a joined chunk ([`ScanQueries::joined`]), in seq
/// order; fails if the value is not framed as the query frames it.
fn decode_joined<T: ScanRow>(
    trail: &str,
    mut joined: &[u8],
    rows: i64,
) -> Result<Vec<Result<T, StoreError>>, String> {
    let mut framed = Vec::with_capacity(usize::try_from(rows).unwrap_or(0));
    while !joined.is_empty() {
        // SQLite framed these bytes; they are malformed only if SQLite is,
        // which is a damaged database to report, not a finding at a seq.
        let (row, rest) = split_framed_row(joined, T::BESIDE)
            .ok_or_else(|| format!("a scan chunk of trail {trail} is not framed as queried"))?;
        framed.push(row);
        joined = rest;
    }
    if i64::try_from(framed.len()) != Ok(rows) {
        return Err(format!(
            "a scan chunk of trail {trail} holds {} rows, not the {rows} counted",
            framed.len()
        ));
    }
    // group_concat keeps the subquery's order in practice, but SQLite does
    // not promise it.
    if !framed.is_sorted_by_key(|row| row.seq) {
        framed.sort_by_key(|row| row.seq);
    }
    Ok(framed
        .into_iter()
        .map(|row| from_framed(row, trail.to_owned()))
        .collect())
}

/// Splits the first framed row off the bytes; `beside` as the chunk was
/// queried.
fn split_framed_row(joined: &[u8], beside: bool) -> Option<(FramedRow<'_>, &[u8])> {
    let mut rest = joined;
    let mut number = || -> Option<i64> {
        let (digits, after) = rest.split_at(rest.iter().position(|&byte| byte == b' ')?);
        rest = &after[1..];
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let seq = number()?;
    let epoch = number()?;
    let recorded_at = number()?;
    let lengths = [number()?, number()?, number()?];
    let flag_and_copies = if beside {
        let flag = number()?;
        let mut copy_lengths = [0; COPIED_FIELDS.len()];
        for length in &mut copy_lengths {
            *length = number()?;
        }
        Some((flag, copy_lengths))
    } else {
        None
    };
    let mut take = |len: i64| -> Option<&[u8]> {
        let (taken, after) = rest.split_at_checked(usize::try_from(len).ok()?)?;
        rest = after;
        Some(taken)
    };
    let mut take_mac = || -> Option<[u8; 32]> { take(32)?.try_into().ok() };
    let (prev_mac, body_commitment, mac) = (take_mac()?, take_mac()?, take_mac()?);
    let (key_id, kind) = (take(lengths[0])?, take(lengths[1])?);
    let beside = match flag_and_copies {
        Some((flag, copy_lengths)) => {
            let mut copies = [StoredCopy::Null; COPIED_FIELDS.len()];
            for (copy, len) in copies.iter_mut().zip(copy_lengths) {
                if len >= 0 {
                    // Text that is not UTF-8 is no value a writer stores.
                    *copy =
                        text("copy", take(len)?).map_or(StoredCopy::Unreadable, StoredCopy::Text);
                }
            }
            Some(Beside {
                restricted: flag != 0,
                copies,
            })
        }
        None => None,
    };
    let body = take(lengths[2])?;
    let columns = text("key_id", key_id).and_then(|key_id| {
        Ok(StoredColumns {
            seq,
            epoch,
            key_id,
            recorded_at: decode_time(recorded_at),
            kind: text("kind", kind)?,
            body: text("body", body)?,
            prev_mac: Ok(prev_mac),
            body_commitment: Ok(body_commitment),
            mac: Ok(mac),
        })
    });
    Some((
        FramedRow {
            seq,
            columns,
            beside,
        },
        rest,
    ))
}

/// Stored text, which SQLite does not check to be UTF-8.
fn text<'r>(column: &str, bytes: &'r [u8]) -> Result<&'r str, String> {
    std::str::from_utf8(bytes)
        .map_err(|err| format!("the {column} is not UTF-8 (byte {})", err.valid_up_to() + 1))
}

/// A row of a joined chunk: its columns, or why they cannot be read.
pub(crate) struct FramedRow<'r> {
    seq: i64,
    columns: Result<StoredColumns<'r>, String>,
    /// What is stored beside the entry, when the chunk was queried with it.
    beside: Option<Beside<'r>>,
}

/// The query columns and restriction flag of a framed row.
#[derive(Clone, Copy)]
struct Beside<'r> {
    restricted: bool,
    copies: [StoredCopy<'r>; COPIED_FIELDS.len()],
}

impl FramedRow<'_> {
    fn into_entry(self, trail: String) -> Result<Entry, StoreError> {
        match self.columns {
            Ok(columns) => columns.into_entry(trail),
            Err(reason) => Err(corrupt(&trail, self.seq, reason)),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        head_on(&self.pool, &self.path, trail).await
    }

    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let inserts = insert_statements(trail, after, entries)?;
        self.insert_after(trail, after, inserts).await
    }

    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        // Built while the append before holds the write lock, so that the
        // statements are ready the moment it commits.
        let inserts = insert_statements(trail, after, entries)?;
        previous
            .follow(self.insert_after(trail, after, inserts))
            .await
    }

    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        sql::epoch_summary(self, &self.pool, trail, epoch).await
    }

    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        // Keyset pagination: each chunk is one short query on the primary
        // key, so memory stays flat and no read holds a snapshot for the
        // whole scan of a huge trail.
        read_ahead_scan(Chunks::<Entry>::of(self), trail, from)
    }

    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        read_ahead_scan(Chunks::<StoredEntry>::of(self), trail, from)
    }

    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(TRAILS_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(|err| self.classify(err))?;
        // SQLite stores text that is not UTF-8 as it is given. Such a name
        // is no trail name, and the verifier reports entries stored under
        // it; failing to list the others would hide them all.
        let mut names: Vec<String> = rows
            .iter()
            .map(|row| {
                row.try_get::<String, _>(0).unwrap_or_else(|_| {
                    let bytes: Vec<u8> = row.try_get_unchecked(0).unwrap_or_default();
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        sql::delete_events(self, trail, first, last).await
    }

    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError> {
        sql::erase_fields(self, trail, erasures).await
    }

    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|err| self.classify(err))?;
        let mut changed = 0;
        for &seq in seqs {
            let done = sqlx::query(
                "UPDATE entries SET restricted = ? WHERE trail = ? AND seq = ? AND restricted <> ?",
            )
            .bind(i64::from(restricted))
            .bind(trail)
            .bind(to_i64(trail, "seq", seq)?)
            .bind(i64::from(restricted))
            .execute(&mut *tx)
            .await
            .map_err(|err| self.classify(err))?;
            changed += done.rows_affected();
        }
        tx.commit().await.map_err(|err| self.classify(err))?;
        Ok(changed)
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sql::put_snapshot(self, snapshot).await
    }

    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        sql::snapshot(self, trail, name, upto_seq).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        sql::query(self, query).await
    }
}

/// The head of a trail, read on `connection`.
pub(crate) async fn head_on<'c>(
    connection: impl sqlx::SqliteExecutor<'c>,
    path: &Path,
    trail: &str,
) -> Result<Option<Head>, StoreError> {
    let row = sqlx::query(
        "SELECT seq, epoch, kind, recorded_at, mac FROM entries \
         WHERE trail = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(trail)
    .fetch_optional(connection)
    .await
    .map_err(|err| classify(path, err))?;
    row.map(|row| decode_head(trail, &row)).transpose()
}

impl SqliteStore {
    /// Runs a batch's inserts in one transaction, only if the trail's head
    /// is still `after`.
    async fn insert_after(
        &self,
        trail: &str,
        after: Option<u64>,
        inserts: Vec<InsertQuery<'static>>,
    ) -> Result<(), StoreError> {
        let conflict = || conflict_after(trail, after);
        let expected = after.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
        // IMMEDIATE takes the write lock now: the head read below cannot
        // go stale before the insert, whichever process writes next.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|err| self.classify(err))?;
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM entries WHERE trail = ?")
            .bind(trail)
            .fetch_one(&mut *tx)
            .await
            .map_err(|err| self.classify(err))?;
        if head != expected {
            return Err(conflict());
        }
        if after.is_none() && !inserts.is_empty() {
            sqlx::query("INSERT OR IGNORE INTO trails (name) VALUES (?)")
                .bind(trail)
                .execute(&mut *tx)
                .await
                .map_err(|err| self.classify(err))?;
        }
        insert_entries(&mut tx, &self.path, inserts, conflict).await?;
        tx.commit().await.map_err(|err| self.classify(err))
    }
}

/// The insert statements of a batch that continues `after`, every value
/// bound: few statements of up to [`MAX_INSERT_ROWS`] rows each.
pub(crate) fn insert_statements(
    trail: &str,
    after: Option<u64>,
    entries: &[Entry],
) -> Result<Vec<InsertQuery<'static>>, StoreError> {
    check_batch(trail, after, entries)?;
    let mut rest = entries.iter();
    let mut remaining = entries.len();
    let mut inserts = Vec::new();
    while remaining > 0 {
        let rows = chunk_rows(remaining);
        let mut insert = sqlx::query_with(insert_sql(rows), SqliteArguments::default());
        for entry in rest.by_ref().take(rows) {
            insert = bind_entry(insert, entry, encode_body(trail, entry)?);
        }
        remaining -= rows;
        inserts.push(insert);
    }
    Ok(inserts)
}

/// Runs a batch's insert statements on `connection`, inside the
/// transaction that checked the head.
pub(crate) async fn insert_entries(
    connection: &mut SqliteConnection,
    path: &Path,
    inserts: Vec<InsertQuery<'static>>,
    conflict: impl Fn() -> StoreError,
) -> Result<(), StoreError> {
    for insert in inserts {
        insert.execute(&mut *connection).await.map_err(|err| {
            // The head check makes this unreachable for writers that
            // follow the protocol; the key still stops a fork.
            if is_unique_violation(&err) {
                conflict()
            } else {
                classify(path, err)
            }
        })?;
    }
    Ok(())
}

/// Rows in the next insert statement of a batch with `remaining` rows: the
/// largest power of two that fits, so statement shapes repeat.
fn chunk_rows(remaining: usize) -> usize {
    let mut rows = MAX_INSERT_ROWS;
    while rows > remaining {
        rows /= 2;
    }
    rows
}

/// The multi-row insert for `rows` rows (a power of two up to
/// [`MAX_INSERT_ROWS`]), built once per shape.
fn insert_sql(rows: usize) -> &'static str {
    const SHAPES: usize = MAX_INSERT_ROWS.trailing_zeros() as usize + 1;
    static SQL: [OnceLock<String>; SHAPES] = [const { OnceLock::new() }; SHAPES];
    let shape = rows.trailing_zeros() as usize;
    SQL[shape.min(SHAPES - 1)].get_or_init(|| {
        let placeholders = format!("({})", vec!["?"; INSERT_COLUMNS.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO entries ({}) VALUES ",
            INSERT_COLUMNS.join(", ")
        );
        let values = vec![placeholders.as_str(); 1 << shape.min(SHAPES - 1)];
        sql.push_str(&values.join(", "));
        sql
    })
}

type InsertQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Binds one entry's columns, in [`INSERT_COLUMNS`] order.
fn bind_entry<'q>(insert: InsertQuery<'q>, entry: &Entry, body: String) -> InsertQuery<'q> {
    let fields = IndexedFields::of(entry);
    let owned = |value: Option<&str>| value.map(str::to_owned);
    // `check_batch` and `encode_body` have checked that seq and epoch fit.
    insert
        .bind(entry.trail.clone())
        .bind(entry.seq as i64)
        .bind(entry.epoch as i64)
        .bind(entry.key_id.clone())
        .bind(entry.recorded_at.timestamp_micros())
        .bind(entry.kind.as_str())
        .bind(body)
        .bind(entry.prev_mac.as_bytes().to_vec())
        .bind(entry.body_commitment.as_bytes().to_vec())
        .bind(entry.mac.as_bytes().to_vec())
        .bind(owned(fields.action))
        .bind(owned(fields.tenant))
        .bind(owned(fields.actor))
        .bind(owned(fields.target_type))
        .bind(owned(fields.target_id))
        .bind(owned(fields.ip))
        .bind(owned(fields.outcome))
        .bind(owned(fields.request_id))
}

/// The stored text of an entry's body; also checks the integer columns.
fn encode_body(trail: &str, entry: &Entry) -> Result<String, StoreError> {
    to_i64(trail, "seq", entry.seq)?;
    to_i64(trail, "epoch", entry.epoch)?;
    body_json(trail, entry)
}

/// A seq or epoch as SQLite stores it.
fn to_i64(trail: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    sql::to_i64::<Sqlite>(trail, what, value)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// SQLite's primary result codes that callers handle differently
/// (<https://www.sqlite.org/rescode.html>).
mod result_code {
    pub(super) const BUSY: i32 = 5;
    pub(super) const LOCKED: i32 = 6;
    pub(super) const READONLY: i32 = 8;
    pub(super) const CORRUPT: i32 = 11;
    pub(super) const CANTOPEN: i32 = 14;
    pub(super) const NOTADB: i32 = 26;
}

/// SQLite's primary result code of a driver error, if it has one.
fn result_code(err: &sqlx::Error) -> Option<i32> {
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
fn classify(path: &Path, err: sqlx::Error) -> StoreError {
    let path = path.to_path_buf();
    match result_code(&err) {
        Some(result_code::BUSY | result_code::LOCKED) => StoreError::Busy { path },
        Some(result_code::READONLY) => StoreError::ReadOnly { path },
        Some(result_code::NOTADB) => StoreError::NotADatabase { path },
        Some(result_code::CORRUPT) => StoreError::DatabaseCorrupt {
            path,
            detail: err.to_string(),
        },
        Some(result_code::CANTOPEN) => StoreError::Io {
            path,
            source: std::io::Error::other(err.to_string()),
        },
        _ => StoreError::Database(Box::new(err)),
    }
}

/// A time as SQLite stores it: microseconds since the Unix epoch.
fn decode_time(micros: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("timestamp {micros} µs is out of range"))
}

impl Dialect for Sqlite {
    /// Large enough that the per-query cost vanishes, small enough that
    /// memory stays flat on any trail.
    const SCAN_CHUNK: i64 = 1000;
    const NOT_RESTRICTED: &'static str = "restricted = 0";
    /// None: a write transaction holds the database's write lock.
    const LOCK_ROWS: &'static str = "";
    /// IMMEDIATE takes the write lock at once: what the transaction reads
    /// cannot go stale before it writes, whichever process writes next.
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn placeholders(template: &str) -> Cow<'_, str> {
        Cow::Borrowed(template)
    }

    fn add(arguments: &mut SqliteArguments, value: Argument<'_>) -> Result<(), BoxDynError> {
        match value {
            Argument::Text(text) => arguments.add(text),
            Argument::OptionalText(text) => arguments.add(text),
            // Times are stored as microseconds.
            Argument::Integer(integer) | Argument::Micros(integer) => arguments.add(integer),
            Argument::OptionalInteger(integer) => arguments.add(integer),
        }
    }

    /// Body values as they are: SQLite text holds any of them.
    fn copy_text(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value)
    }

    fn is_copy_of(stored: &str, value: &str) -> bool {
        stored == value
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn on_pool(pool: &SqlitePool) -> impl Executor<'_, Database = Sqlite> {
        pool
    }

    fn on_connection(connection: &mut SqliteConnection) -> impl Executor<'_, Database = Sqlite> {
        connection
    }

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::new::<Sqlite>);
        &STATEMENTS
    }
}

impl SqlRow for SqliteRow {
    fn integer(&self, index: usize) -> Result<i64, sqlx::Error> {
        self.try_get(index)
    }

    fn text(&self, index: usize) -> Result<&str, sqlx::Error> {
        self.try_get(index)
    }

    fn optional_text(&self, index: usize) -> Result<Option<&str>, sqlx::Error> {
        self.try_get(index)
    }

    fn bytes(&self, index: usize) -> Result<&[u8], sqlx::Error> {
        self.try_get(index)
    }

    fn time(&self, index: usize) -> Result<Result<DateTime<Utc>, String>, sqlx::Error> {
        self.try_get(index).map(decode_time)
    }

    fn optional_time(
        &self,
        index: usize,
    ) -> Result<Option<Result<DateTime<Utc>, String>>, sqlx::Error> {
        let micros: Option<i64> = self.try_get(index)?;
        Ok(micros.map(decode_time))
    }

    /// The flag is an integer; only 0 shows the entry to queries.
    fn restricted(&self, index: usize) -> bool {
        !matches!(self.try_get::<i64, _>(index), Ok(0))
    }
}

#[async_trait]
impl SqlStore for SqliteStore {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn classify(&self, err: sqlx::Error) -> StoreError {
        classify(&self.path, err)
    }

    async fn lock_head(
        &self,
        connection: &mut SqliteConnection,
        trail: &str,
    ) -> Result<Option<Head>, StoreError> {
        // A write statement first: it takes the database's write lock (if
        // the transaction does not hold it yet) before the head is read, so
        // the head cannot go stale before the insert.
        sqlx::query("INSERT OR IGNORE INTO trails (name) VALUES (?)")
            .bind(trail)
            .execute(&mut *connection)
            .await
            .map_err(|err| self.classify(err))?;
        head_on(&mut *connection, &self.path, trail).await
    }

    async fn insert_locked(
        &self,
        connection: &mut SqliteConnection,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let inserts = insert_statements(trail, after, entries)?;
        let conflict = || conflict_after(trail, after);
        insert_entries(connection, &self.path, inserts, conflict).await
    }
}

#[cfg(test)]
mod tests {
    use sqlx::AssertSqlSafe;

    use super::*;
    use crate::model::EntryKind;

    async fn plan(store: &SqliteStore, sql: &str, arguments: SqliteArguments) -> Vec<String> {
        sqlx::query_with(
            AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")),
            arguments,
        )
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(3))
        .collect()
    }

    /// A filter that falls back to reading the whole table, or to sorting
    /// every match, would make a query on a big trail slow.
    #[tokio::test]
    async fn every_query_is_an_index_range_in_query_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        let time = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 29, 8, 0, 0).unwrap();
        let cursor = "c1.1764403200000000.5.admin".parse().unwrap();
        let queries = [
            Query::new(),
            Query::new().newest_first(),
            Query::new().trail("admin"),
            Query::new().trail("admin").newest_first().after(cursor),
            Query::new().since(time).until(time),
            Query::new().tenant("kunde123"),
            Query::new().actor("kunde123").newest_first(),
            Query::new().action("mailbox.login"),
            Query::new().target("database", "abc456"),
            Query::new().target_type("database"),
            Query::new().ip("192.0.2.1".parse().unwrap()),
            Query::new().failed(),
            Query::new().request_id("req-1"),
            Query::new().trail("mailbox").tenant("kunde123").failed(),
        ];
        for query in queries {
            let (sql, arguments) = sql::query::query_sql::<Sqlite>(&query).unwrap();
            let plan = plan(&store, &sql, arguments).await;
            assert!(
                plan.iter().any(|step| step.contains("INDEX")),
                "{query:?}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{query:?} sorts its matches: {plan:?}"
            );
        }
        // Retention reads a trail's holds and records by kind on every run:
        // the partial index of records, not a walk over the events.
        for kind in [EntryKind::HoldPlaced, EntryKind::Retention] {
            let query = Query::new().trail("admin").kind(kind);
            let (sql, arguments) = sql::query::query_sql::<Sqlite>(&query).unwrap();
            let plan = plan(&store, &sql, arguments).await;
            assert!(
                plan.iter()
                    .any(|step| step.contains("INDEX entries_records")),
                "{query:?}: {plan:?}"
            );
        }
        // The summary of an epoch, read before each epoch seal.
        let mut arguments = SqliteArguments::default();
        sqlx::Arguments::add(&mut arguments, "event").unwrap();
        sqlx::Arguments::add(&mut arguments, "admin").unwrap();
        sqlx::Arguments::add(&mut arguments, 3_i64).unwrap();
        sqlx::Arguments::add(&mut arguments, "epoch_seal").unwrap();
        let plan = plan(&store, &Sqlite::statements().epoch_summary, arguments).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("COVERING INDEX entries_by_epoch")),
            "{plan:?}"
        );
    }

    /// Listing trails seeks from one trail's first key to the next: one
    /// index seek per trail, never a read of every entry.
    #[tokio::test]
    async fn listing_trails_seeks_the_primary_key_from_trail_to_trail() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        let plan = plan(&store, TRAILS_SQL, SqliteArguments::default()).await;
        let reads: Vec<&String> = plan
            .iter()
            .filter(|step| step.contains(" entries"))
            .collect();
        assert_eq!(reads.len(), 2, "{plan:?}");
        assert!(
            reads
                .iter()
                .all(|step| step.contains("USING COVERING INDEX sqlite_autoindex_entries_1")),
            "{plan:?}"
        );
        assert!(
            reads
                .iter()
                .any(|step| step.starts_with("SEARCH entries") && step.ends_with("(trail>?)")),
            "{plan:?}"
        );
    }

    fn joined_chunk<T: ScanRow>(rows_joined: Vec<u8>, rows: i64) -> FetchedChunk<T> {
        FetchedChunk::Joined {
            rows_joined,
            rows,
            last_seq: 0,
            path: Arc::new(PathBuf::from("trail.db")),
        }
    }

    #[test]
    fn a_joined_chunk_decodes_its_rows_or_names_the_damaged_database() {
        let mut row = b"7 2 1000000 3 5 2 ".to_vec();
        row.extend([1u8; 32].iter().chain(&[2u8; 32]).chain(&[0u8; 32]));
        row.extend(b"k 1event{}");
        let decoded = joined_chunk::<Entry>(row.clone(), 1).decode("admin");
        let [Ok(entry)] = decoded.as_slice() else {
            panic!("one entry: {decoded:?}");
        };
        assert_eq!(
            (entry.seq, entry.epoch, entry.kind),
            (7, 2, EntryKind::Event)
        );
        assert_eq!(entry.key_id, "k 1");
        assert_eq!(entry.recorded_at.timestamp_micros(), 1_000_000);
        assert_eq!(entry.prev_mac.as_bytes(), &[1u8; 32]);
        assert_eq!(entry.body_commitment.as_bytes(), &[2u8; 32]);
        assert_eq!(entry.mac.as_bytes(), &[0u8; 32]);
        assert!(entry.body.is_empty());

        let cut_short = row[..row.len() - 1].to_vec();
        for (chunk, rows, detail) in [
            (cut_short, 1, "is not framed as queried"),
            (row, 2, "holds 1 rows, not the 2 counted"),
        ] {
            let decoded = joined_chunk::<Entry>(chunk, rows).decode("admin");
            assert!(
                matches!(
                    decoded.as_slice(),
                    [Err(StoreError::DatabaseCorrupt { path, detail: found })]
                        if path.as_path() == Path::new("trail.db") && found.ends_with(detail)
                ),
                "{decoded:?}"
            );
        }
    }

    #[test]
    fn a_joined_chunk_with_the_query_columns_decodes_them_beside_the_entry() {
        // The flag and the lengths of the eight query columns (NULL is -1).
        let body = br#"{"tenant":{"public":"kunde123"}}"#;
        let mut row =
            format!("7 2 1000000 3 5 {} 1 -1 8 -1 -1 -1 -1 -1 -1 ", body.len()).into_bytes();
        row.extend([1u8; 32].iter().chain(&[2u8; 32]).chain(&[0u8; 32]));
        row.extend(b"k 1eventkunde456");
        row.extend(body);
        let decoded = joined_chunk::<StoredEntry>(row.clone(), 1).decode("admin");
        let [Ok(stored)] = decoded.as_slice() else {
            panic!("one entry: {decoded:?}");
        };
        assert_eq!(stored.entry.seq, 7);
        assert_eq!(stored.restricted, Some(true));
        assert_eq!(
            stored.mismatched_copies,
            [super::super::CopyMismatch::new("tenant", "tenant", false)]
        );
        // The plain scan's framing does not fit these rows.
        let decoded = joined_chunk::<Entry>(row, 1).decode("admin");
        assert!(
            matches!(
                decoded.as_slice(),
                [Err(StoreError::DatabaseCorrupt { .. })]
            ),
            "{decoded:?}"
        );
    }

    #[test]
    fn batches_split_into_few_statement_shapes() {
        assert_eq!(MAX_INSERT_ROWS, 1024);
        assert!(MAX_INSERT_ROWS * INSERT_COLUMNS.len() <= MAX_BOUND_PARAMETERS);
        let mut shapes = std::collections::BTreeSet::new();
        for batch in 1..=3000 {
            let mut remaining = batch;
            while remaining > 0 {
                let rows = chunk_rows(remaining);
                assert!(rows.is_power_of_two() && rows <= remaining);
                shapes.insert(rows);
                remaining -= rows;
            }
        }
        assert_eq!(shapes.len(), 11);
        let sql = insert_sql(4);
        assert_eq!(sql.matches('?').count(), 4 * INSERT_COLUMNS.len());
    }
}
