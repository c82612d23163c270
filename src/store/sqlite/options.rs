//! Opening an SQLite database file: [`SqliteStoreOptions`], and the checks
//! that refuse, before anything is written, what is not a trailseal
//! database.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqliteStore;
use super::errors::{classify, result_code};
use super::schema::{APPLICATION_ID, Identity};
use crate::StoreError;
use crate::model::timer_interval;
use crate::store::error::Account;

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
    ///   it, opening fails with [`StoreError::Unreadable`], since the
    ///   file alone may lack the log's commits.
    ///
    /// A database in rollback-journal mode (a backup written by `VACUUM
    /// INTO` may be one) is read with the usual locks, which need nothing
    /// next to it.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// How long to wait for another connection's lock (or another
    /// process's, while it opens the file) before failing with
    /// [`StoreError::Busy`] (default: 5 seconds; a negative span counts as
    /// zero).
    pub fn busy_timeout(mut self, timeout: TimeDelta) -> Self {
        self.busy_timeout = timer_interval(timeout, Duration::ZERO);
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
    /// new), applies pending schema migrations and sets up WAL mode. A new
    /// file is created readable and writable by its owner only (0600 on
    /// Unix); an existing one keeps its mode.
    ///
    /// A file that is a directory, not a database, damaged, another
    /// application's database, read-only (unless opened read-only) or from
    /// a newer trailseal is refused with a typed error, and nothing is
    /// written to it; so is a file opened read-only whose log cannot be
    /// read (see [`Self::read_only`]).
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        let exists = self.check_path()?;
        if !exists {
            self.create_private_file()?;
        }
        // Held until the store is set up, so that processes opening one file
        // at once judge and set it up one after the other.
        let _opening = if self.read_only {
            None
        } else {
            Some(self.lock_while_opening().await?)
        };
        // Judged before any connection: SQLite creates the log of a closed
        // database as soon as it reads it.
        let closed = exists && self.is_closed_wal_database()?;
        let identity = self.probe(closed).await?;
        if identity == Identity::Foreign {
            return Err(StoreError::NotATrailStore {
                database: self.path.display().to_string(),
                source: Account::boxed(
                    "it is an SQLite database of another application (it has tables but no trailseal marker); refusing to use it",
                ),
            });
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
                    database: self.path.display().to_string(),
                    source: Account::boxed(
                        "its permissions forbid writing; make the file and its folder writable, or open it read-only to verify",
                    ),
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

    /// Creates the missing database file readable and writable by its owner
    /// only (0600 on Unix), before SQLite would create it with the umask's
    /// mode, usually 0644: a trail holds customer names and client
    /// addresses. SQLite gives its log and index (`-wal`, `-shm`) the
    /// database file's mode. An empty file is a new database to SQLite; one
    /// another process created meanwhile is left as it is.
    fn create_private_file(&self) -> Result<(), StoreError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&self.path) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Waits for (at most the busy timeout), and holds until dropped, an
    /// advisory lock on the database file. Setting up a file takes several
    /// transactions (its marker, then one per migration) and a process
    /// judging it in between would take it for another application's, or
    /// apply a migration twice (`duplicate column name`), or find it locked. SQLite's own locks on Unix are
    /// `fcntl` locks, which this `flock` lock does not touch (so the file
    /// must be on a local file system, as SQLite asks anyway). Elsewhere
    /// SQLite locks byte ranges that a whole-file lock would collide with,
    /// so none is taken there.
    async fn lock_while_opening(&self) -> Result<Option<std::fs::File>, StoreError> {
        if !cfg!(unix) {
            return Ok(None);
        }
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        // Anyone who can read the file can take this lock: waiting for it
        // without end would let them stop the store from opening.
        let deadline = tokio::time::Instant::now() + self.busy_timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Busy {
                        database: self.path.display().to_string(),
                        source: Account::boxed(
                            "another process held the lock taken while a store opens the file (flock on the database file)",
                        ),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
            }
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
        // One statement, so both come from one snapshot: read one after
        // the other, another process setting up the file in between would
        // make it look like tables without a marker (another application's).
        let (application_id, objects): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT application_id FROM pragma_application_id()), \
                    (SELECT count(*) FROM sqlite_schema)",
        )
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
            let path = self.path.display();
            return StoreError::Unreadable {
                database: path.to_string(),
                source: Account::with_cause(
                    format!(
                        "it has a write-ahead log ({path}-wal) that may hold commits not yet in the file, but its index ({path}-shm) is missing and cannot be created without write access to the folder, or one of the two files is not readable; have the owner fold the log into the file (the last writer to close does, and removes both files), or copy the file with its -wal into a folder you can write and open the copy"
                    ),
                    err,
                ),
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
