//! The PostgreSQL backend: [`PostgresStore`], for several panel servers
//! writing the same trails.
//!
//! Entries live in `entries`, partitioned by day on `recorded_at` so that
//! retention drops whole partitions. Every trail has a row in `trail_heads`
//! holding its head; an append is one statement that moves that head from
//! the value the writer saw to its last new entry (compare and swap under
//! the row lock) and inserts the entries, all of them or none. The layout
//! is described in docs/OPERATIONS.md.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Arguments, AssertSqlSafe, Row};

use super::query::{
    COPIED_FIELDS, IndexedFields, StoredCopy, mismatched_copies, page_from_fetched,
};
use super::{
    ChunkReader, EntryStream, EpochSummary, Erasure, Order, Page, PreviousAppend, Query, Store,
    StoredEntry, StoredEntryStream, body_json, check_batch, conflict_after, read_ahead_scan,
};
use crate::StoreError;
use crate::model::Snapshot;
use crate::model::{Body, Entry, EntryKind, Head};
use crate::model::{Digest, Mac};

/// The schema, one migration per version; applied when a store connects.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(super::migrations::postgres);

/// Entries read per query while scanning: large enough that the per-query
/// cost vanishes, small enough that memory stays flat on any trail. Each
/// query is planned across every day's partition: on a new connection,
/// planning a 1,000-row chunk took 4.1 ms against 2.1 ms of execution.
/// With 4,000 rows per query instead of 1,000, a 300,000-entry trail
/// verified in 1.68–1.84 s instead of 2.11–2.54 s, at 69–86 MB of peak
/// memory instead of 52–59 MB.
const SCAN_CHUNK: i64 = 4000;

/// Days of partitions created ahead when a store connects, counted from
/// today (UTC); later days are created when the first entry needs them.
const DAYS_AHEAD: i64 = 2;

/// The columns an entry is rebuilt from, in the order [`decode_entry`]
/// reads them.
pub(crate) const ENTRY_COLUMNS: &str =
    "trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, body_commitment, mac";

/// How many columns [`ENTRY_COLUMNS`] names.
const ENTRY_COLUMN_COUNT: usize = 10;

/// The append: one statement, so one round trip and an implicit
/// transaction.
///
/// Why a compare and swap on `trail_heads` and not the alternatives:
///
/// - A per-trail advisory lock needs an explicit transaction (lock, read
///   the head, insert, commit: four round trips instead of one) and holds
///   the lock across them. On a local server `benches/postgres_append.rs`
///   could not tell the two apart: two runs gave 6,100 against 5,500 and
///   5,800 against 6,400 rows/s with one writer, 8,700 against 10,900 and
///   12,200 against 12,000 with eight (1,000-entry batches), all within
///   the run-to-run noise. Between panel servers and a database on another
///   machine every round trip costs latency, and the advisory lock is held
///   for all four, so writers of one trail wait longer for each other; one
///   statement is also one implicit transaction, whose outcome is all
///   there is to learn when the connection breaks. So: the statement.
/// - A unique index on `(trail, seq)` cannot exist on `entries`: a unique
///   index on a partitioned table must contain the partition key, so it
///   would only stop duplicates at the same time. A separate unique table
///   of every `(trail, seq)` doubles the rows written.
///
/// The row lock on the trail's head row makes concurrent appends to one
/// trail take turns; the loser re-checks the `WHERE` against the winner's
/// committed head (READ COMMITTED), matches no row, inserts nothing and is
/// told of the conflict. Appends to different trails never wait for each
/// other.
const APPEND_SQL: &str = "\
WITH head AS (
    UPDATE trail_heads
    SET seq = $2, epoch = $3, kind = $4, recorded_at = $5, mac = $6
    WHERE trail = $1 AND seq IS NOT DISTINCT FROM $7::int8
    RETURNING trail
)
INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac,
    body_commitment, mac, action, tenant, actor, target_type, target_id, ip, outcome,
    request_id)
SELECT head.trail, rows.* FROM head CROSS JOIN UNNEST(
    $8::int8[], $9::int8[], $10::text[], $11::timestamptz[], $12::text[], $13::text[],
    $14::bytea[], $15::bytea[], $16::bytea[], $17::text[], $18::text[], $19::text[],
    $20::text[], $21::text[], $22::text[], $23::text[], $24::text[]
) AS rows";

/// The names of every trail that has entries, and of every trail with a
/// head in `trail_heads`.
///
/// The heads are only a list kept beside the entries for appends: a row
/// deleted from it must not hide a trail from the verifier. So the
/// entries' primary key is walked from one trail to the next (a recursive
/// query that seeks the first name after the one before, in every
/// partition's index), one seek per trail and partition instead of a read
/// of every entry.
const TRAILS_SQL: &str = "\
WITH RECURSIVE stored(name) AS (
    (SELECT trail FROM entries ORDER BY trail LIMIT 1)
    UNION ALL
    SELECT (SELECT trail FROM entries WHERE trail > stored.name ORDER BY trail LIMIT 1)
    FROM stored WHERE stored.name IS NOT NULL
)
SELECT name FROM stored WHERE name IS NOT NULL
UNION SELECT trail FROM trail_heads WHERE seq IS NOT NULL
ORDER BY 1";

/// SQLSTATE codes that callers handle differently
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
mod sqlstate {
    /// A row fits no partition: the day's partition is missing (dropped by
    /// retention while this process remembered it).
    pub(super) const CHECK_VIOLATION: &str = "23514";
}

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresStoreOptions {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    outcome_timeout: Duration,
}

impl PostgresStoreOptions {
    /// Options for a `postgres://user:password@host:port/database` URL: 8
    /// connections, 30 seconds to get one, 60 seconds to learn the outcome
    /// of an append whose connection broke.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(|err| {
            StoreError::InvalidUrl(format!(
                "not a PostgreSQL URL ({err}); use postgres://user:password@host:port/database"
            ))
        })?;
        Ok(Self {
            connect,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            outcome_timeout: Duration::from_secs(60),
        })
    }

    /// Most connections kept open (default: 8).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long to wait for a connection, e.g. while the server restarts,
    /// before failing (default: 30 seconds).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long to keep trying to learn whether an append whose connection
    /// broke was committed, before failing with
    /// [`StoreError::OutcomeUnknown`] (default: 60 seconds).
    pub fn outcome_timeout(mut self, timeout: Duration) -> Self {
        self.outcome_timeout = timeout;
        self
    }

    /// Connects, applies pending schema migrations and creates the
    /// partitions of the next days.
    pub async fn open(self) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(self.connect)
            .await
            .map_err(classify)?;
        let store = PostgresStore {
            pool,
            partitions: Arc::new(Mutex::new(HashSet::new())),
            outcome_timeout: self.outcome_timeout,
        };
        store.migrate().await?;
        let today = Utc::now().date_naive();
        for ahead in -1..=DAYS_AHEAD {
            if let Some(day) = today.checked_add_signed(chrono::TimeDelta::days(ahead)) {
                store.ensure_day(day).await?;
            }
        }
        Ok(store)
    }
}

/// A [`Store`] in a PostgreSQL database, shared by any number of processes
/// and machines. Clones share the connections.
///
/// ```no_run
/// # async fn run() -> Result<(), trailseal::StoreError> {
/// use trailseal::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://panel@db.example.net/audit").await?;
/// # store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Days whose partition is known to exist, so appends check only once.
    partitions: Arc<Mutex<HashSet<NaiveDate>>>,
    outcome_timeout: Duration,
}

impl PostgresStore {
    /// Connects with the default [`PostgresStoreOptions`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStoreOptions::from_url(url)?.open().await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx takes an advisory lock around the migrations, so several
        // processes starting at once apply them exactly once.
        MIGRATOR.run(&self.pool).await.map_err(|err| match err {
            MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => classify(err),
            MigrateError::VersionMissing(version) => StoreError::NotATrailStore(format!(
                "the database has trailseal schema version {version}, newer than this trailseal supports; upgrade trailseal"
            )),
            other => StoreError::Database(Box::new(other)),
        })
    }

    /// Creates the partition of `day` unless this process knows it exists.
    async fn ensure_day(&self, day: NaiveDate) -> Result<(), StoreError> {
        if self.known_days().contains(&day) {
            return Ok(());
        }
        sqlx::query("SELECT trailseal_ensure_day($1)")
            .bind(day)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        self.known_days().insert(day);
        Ok(())
    }

    pub(crate) fn known_days(&self) -> std::sync::MutexGuard<'_, HashSet<NaiveDate>> {
        // The set is only a cache: a poisoned one is still a valid set.
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After an append failed without a clear answer (the connection broke,
    /// the server restarted), finds out whether it was committed: telling a
    /// caller "failed" for an event that is stored, or "stored" for one that
    /// is not, would make the trail lie.
    ///
    /// Taking the head row's lock waits until no append to the trail is in
    /// progress, ours included, so what is read afterwards is final.
    async fn was_committed(&self, trail: &str, last: &LastEntry) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + self.outcome_timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.check_committed(trail, last)).await {
                Ok(Ok(committed)) => return Ok(committed),
                Ok(Err(err)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(trail, error = %err, "cannot yet learn whether an append was committed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => {
                    return Err(StoreError::OutcomeUnknown {
                        trail: trail.to_owned(),
                        seq: u64::try_from(last.seq).unwrap_or(0),
                    });
                }
            }
        }
    }

    async fn check_committed(&self, trail: &str, last: &LastEntry) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM trail_heads WHERE trail = $1 FOR SHARE")
            .bind(trail)
            .execute(&mut *tx)
            .await?;
        // READ COMMITTED: this statement's snapshot is taken after the lock
        // was granted, so it sees the outcome of the append we waited for.
        let mac: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT mac FROM entries WHERE trail = $1 AND seq = $2 AND recorded_at = $3",
        )
        .bind(trail)
        .bind(last.seq)
        .bind(last.recorded_at)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(mac.as_deref() == Some(last.mac.as_slice()))
    }
}

/// What a scan of a PostgreSQL store yields per row: the entry alone, or
/// the entry with what is stored beside it.
pub(crate) trait ScanRow: Sized + Send + 'static {
    /// Whether rows carry the query columns and the restriction flag.
    const BESIDE: bool;

    /// Decodes a row of the scan's chunk query.
    fn from_row(trail: &str, row: &PgRow) -> Result<Self, StoreError>;
}

impl ScanRow for Entry {
    const BESIDE: bool = false;

    fn from_row(trail: &str, row: &PgRow) -> Result<Self, StoreError> {
        decode_entry(trail, row)
    }
}

impl ScanRow for StoredEntry {
    const BESIDE: bool = true;

    fn from_row(trail: &str, row: &PgRow) -> Result<Self, StoreError> {
        let entry = decode_entry(trail, row)?;
        let first = ENTRY_COLUMN_COUNT;
        let copies: [StoredCopy<'_>; COPIED_FIELDS.len()] =
            std::array::from_fn(|i| match row.try_get::<Option<&str>, _>(first + i) {
                Ok(None) => StoredCopy::Null,
                Ok(Some(text)) => StoredCopy::Text(text),
                Err(_) => StoredCopy::Unreadable,
            });
        let mismatched = mismatched_copies(&entry, &copies, is_index_text_of);
        // The column is typed; a flag that cannot be read hides nothing
        // only if it is false, so anything else counts as restricted.
        let restricted = row
            .try_get::<bool, _>(first + COPIED_FIELDS.len())
            .unwrap_or(true);
        let mut stored = StoredEntry::new(entry).with_restricted(restricted);
        stored.mismatched_copies = mismatched;
        Ok(stored)
    }
}

/// Reads a trail in chunks of rows decoded as `T`, for [`read_ahead_scan`].
pub(crate) struct Chunks<T> {
    store: PostgresStore,
    rows: std::marker::PhantomData<fn() -> T>,
}

impl<T> Chunks<T> {
    fn of(store: &PostgresStore) -> Self {
        Self {
            store: store.clone(),
            rows: std::marker::PhantomData,
        }
    }
}

#[async_trait]
impl<T: ScanRow> ChunkReader for Chunks<T> {
    type Chunk = Vec<PgRow>;
    type Item = T;

    /// The rows of one scan chunk, not yet decoded.
    async fn fetch_chunk(&self, trail: &str, from: i64) -> Result<Vec<PgRow>, StoreError> {
        static SQL: [std::sync::OnceLock<String>; 2] = [const { std::sync::OnceLock::new() }; 2];
        let sql = SQL[usize::from(T::BESIDE)].get_or_init(|| {
            let mut columns = ENTRY_COLUMNS.to_owned();
            if T::BESIDE {
                for (column, _) in COPIED_FIELDS {
                    columns.push_str(&format!(", {column}"));
                }
                columns.push_str(", restricted");
            }
            format!(
                "SELECT {columns} FROM entries WHERE trail = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
            )
        });
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(trail)
            .bind(from)
            .bind(SCAN_CHUNK)
            .fetch_all(&self.store.pool)
            .await
            .map_err(classify)
    }

    fn is_empty(rows: &Vec<PgRow>) -> bool {
        rows.is_empty()
    }

    /// After the last seq of a full chunk. The seq column is typed, so
    /// reading it fails only if the database does; that ends the scan with
    /// the error.
    fn next_from(trail: &str, rows: &Vec<PgRow>) -> Result<Option<i64>, StoreError> {
        if (rows.len() as i64) < SCAN_CHUNK {
            return Ok(None);
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let seq: i64 = last.try_get(1).map_err(|err| StoreError::Corrupt {
            trail: trail.to_owned(),
            seq: 0,
            reason: format!("a seq could not be read: {err}"),
        })?;
        Ok(seq.checked_add(1))
    }

    /// Each row on its own: a row damaged beyond decoding is a finding at
    /// its seq, and must not hide the rows around it.
    fn decode(trail: &str, rows: Vec<PgRow>) -> Vec<Result<T, StoreError>> {
        rows.iter().map(|row| T::from_row(trail, row)).collect()
    }
}

impl PostgresStore {
    /// Stores a checked batch's columns, only if the trail's head is still
    /// `after`.
    async fn insert_columns(
        &self,
        trail: &str,
        after: Option<u64>,
        columns: Option<Columns>,
    ) -> Result<(), StoreError> {
        let conflict = || conflict_after(trail, after);
        let Some(columns) = columns else {
            // Nothing to store, but the condition still holds: a writer
            // with a stale head learns of it.
            let head = self.head(trail).await?;
            return match head.map(|head| head.seq) == after {
                true => Ok(()),
                false => Err(conflict()),
            };
        };
        let after = after.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
        for day in columns.days() {
            self.ensure_day(day).await?;
        }
        if after.is_none() {
            // The head row the first append swaps; a trail is listed only
            // once it has entries.
            sqlx::query("INSERT INTO trail_heads (trail) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(trail)
                .execute(&self.pool)
                .await
                .map_err(classify)?;
        }
        let mut retried = false;
        loop {
            match insert_on(&self.pool, trail, after, &columns).await {
                Ok(0) => return Err(conflict()),
                Ok(_) => return Ok(()),
                Err(err) if is_missing_partition(&err) && !retried => {
                    // Retention dropped a partition this process still
                    // remembered; nothing was stored, so create it again.
                    retried = true;
                    self.known_days().clear();
                    for day in columns.days() {
                        self.ensure_day(day).await?;
                    }
                }
                Err(err) if is_definite(&err) => return Err(classify(err)),
                Err(err) => {
                    let last = columns.last.as_ref().ok_or_else(conflict)?;
                    return if self.was_committed(trail, last).await? {
                        Ok(())
                    } else {
                        Err(classify(err))
                    };
                }
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, epoch, kind, recorded_at, mac FROM trail_heads \
             WHERE trail = $1 AND seq IS NOT NULL",
        )
        .bind(trail)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| decode_head(trail, &row)).transpose()
    }

    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        check_batch(trail, after, entries)?;
        let columns = Columns::of(trail, entries)?;
        self.insert_columns(trail, after, columns).await
    }

    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        // Encoded while the append before it still runs, so that the rows
        // are ready the moment it commits.
        check_batch(trail, after, entries)?;
        let columns = Columns::of(trail, entries)?;
        previous
            .follow(self.insert_columns(trail, after, columns))
            .await
    }

    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        let first = to_i64(trail, "seq", first)?;
        let last = to_i64(trail, "seq", last)?;
        let done = sqlx::query(
            "DELETE FROM entries WHERE trail = $1 AND seq BETWEEN $2 AND $3 AND kind = $4",
        )
        .bind(trail)
        .bind(first)
        .bind(last)
        .bind(EntryKind::Event.as_str())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError> {
        static SELECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let select = SELECT.get_or_init(|| {
            format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE trail = $1 AND seq = $2 FOR UPDATE")
        });
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut changed = 0;
        for erasure in erasures {
            let seq = to_i64(trail, "seq", erasure.seq)?;
            let row = sqlx::query(AssertSqlSafe(select.as_str()))
                .bind(trail)
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
            let Some(row) = row else { continue };
            let mut entry = decode_entry(trail, &row)?;
            if !entry.body.erase(&erasure.fields) {
                continue;
            }
            let body = body_json(trail, &entry)?;
            let fields = IndexedFields::of(&entry);
            sqlx::query(
                "UPDATE entries SET body = $1, tenant = $2, actor = $3, target_id = $4, ip = $5 \
                 WHERE trail = $6 AND seq = $7",
            )
            .bind(body)
            .bind(fields.tenant.map(index_text))
            .bind(fields.actor.map(index_text))
            .bind(fields.target_id.map(index_text))
            .bind(fields.ip.map(index_text))
            .bind(trail)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            changed += 1;
        }
        tx.commit().await.map_err(classify)?;
        Ok(changed)
    }

    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError> {
        let seqs = seqs
            .iter()
            .map(|&seq| to_i64(trail, "seq", seq))
            .collect::<Result<Vec<_>, _>>()?;
        let done = sqlx::query(
            "UPDATE entries SET restricted = $1 \
             WHERE trail = $2 AND seq = ANY($3) AND restricted <> $1",
        )
        .bind(restricted)
        .bind(trail)
        .bind(seqs)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (trail, name, upto_seq, state) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (trail, name, upto_seq) DO UPDATE SET state = excluded.state",
        )
        .bind(&snapshot.trail)
        .bind(&snapshot.name)
        .bind(to_i64(&snapshot.trail, "seq", snapshot.upto_seq)?)
        .bind(&snapshot.state)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let upto = upto_seq.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT upto_seq, state FROM snapshots WHERE trail = $1 AND name = $2 \
             AND ($3::BIGINT IS NULL OR upto_seq = $3) ORDER BY upto_seq DESC LIMIT 1",
        )
        .bind(trail)
        .bind(name)
        .bind(upto)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(|(upto_seq, state)| Snapshot {
            trail: trail.to_owned(),
            name: name.to_owned(),
            upto_seq: u64::try_from(upto_seq).unwrap_or_default(),
            state,
        }))
    }

    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        epoch_summary_on(&self.pool, trail, epoch).await
    }

    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        // Keyset pagination: each chunk is one short query on the (trail,
        // seq) index of every partition, so memory stays flat and no read
        // holds a snapshot (and with it vacuum) for the scan of a huge trail.
        read_ahead_scan(Chunks::<Entry>::of(self), trail, from)
    }

    fn scan_stored<'a>(&'a self, trail: &'a str, from: u64) -> StoredEntryStream<'a> {
        read_ahead_scan(Chunks::<StoredEntry>::of(self), trail, from)
    }

    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(TRAILS_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let (sql, arguments) = query_sql(query)?;
        let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let entries = rows
            .iter()
            .map(|row| decode_entry("", row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_from_fetched(entries, query))
    }
}

/// The SQL and arguments of one page of a query. Every value is a bound
/// parameter; only fixed fragments of this function go into the text.
fn query_sql(query: &Query) -> Result<(String, PgArguments), StoreError> {
    let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE true");
    if !query.include_restricted {
        sql.push_str(" AND NOT restricted");
    }
    if query.kind.is_some_and(|kind| kind != EntryKind::Event) {
        // Lets the planner use the partial index of the trail's records.
        sql.push_str(" AND kind <> 'event'");
    }
    let mut arguments = PgArguments::default();
    let mut add = |sql: &mut String, condition: &str, value: Argument| -> Result<(), StoreError> {
        let added = match value {
            Argument::Text(text) => arguments.add(text),
            Argument::Integer(integer) => arguments.add(integer),
            Argument::Time(time) => arguments.add(time),
        };
        added.map_err(|err| StoreError::InvalidQuery(err.to_string()))?;
        sql.push_str(&condition.replace('?', &format!("${}", arguments.len())));
        Ok(())
    };
    let text = |value: &Option<String>| value.as_deref().map(|v| Argument::Text(index_text(v)));
    let time = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .map(Argument::Time)
            .ok_or_else(|| StoreError::InvalidQuery(format!("time {micros} µs is out of range")))
    };
    let filters = [
        (" AND trail = ?", text(&query.trail)),
        (
            " AND kind = ?",
            query
                .kind
                .map(|kind| Argument::Text(kind.as_str().to_owned())),
        ),
        (
            " AND recorded_at >= ?",
            query
                .since
                .map(|t| time(t.timestamp_micros()))
                .transpose()?,
        ),
        (
            " AND recorded_at < ?",
            query
                .until
                .map(|t| time(t.timestamp_micros()))
                .transpose()?,
        ),
        (" AND action = ?", text(&query.action)),
        (" AND tenant = ?", text(&query.tenant)),
        (" AND actor = ?", text(&query.actor)),
        (" AND target_type = ?", text(&query.target_type)),
        (" AND target_id = ?", text(&query.target_id)),
        (" AND outcome = ?", text(&query.outcome)),
        (
            " AND ip = ?",
            query
                .ip
                .map(|ip| Argument::Text(index_text(&ip.to_string()))),
        ),
        (" AND request_id = ?", text(&query.request_id)),
    ];
    for (condition, value) in filters {
        if let Some(value) = value {
            add(&mut sql, condition, value)?;
        }
    }
    let (comparison, direction) = match query.order {
        Order::OldestFirst => (">", "ASC"),
        Order::NewestFirst => ("<", "DESC"),
    };
    if let Some(cursor) = &query.after {
        let seq = i64::try_from(cursor.seq())
            .map_err(|_| StoreError::InvalidQuery("cursor seq out of range".to_owned()))?;
        add(
            &mut sql,
            &format!(" AND (recorded_at, trail, seq) {comparison} (?"),
            time(cursor.recorded_at_micros())?,
        )?;
        add(&mut sql, ", ?", Argument::Text(cursor.trail().to_owned()))?;
        add(&mut sql, ", ?)", Argument::Integer(seq))?;
    }
    // One more than the page, to learn whether a next page exists.
    let fetch = i64::try_from(query.limit + 1).unwrap_or(i64::MAX);
    add(
        &mut sql,
        &format!(" ORDER BY recorded_at {direction}, trail {direction}, seq {direction} LIMIT ?"),
        Argument::Integer(fetch),
    )?;
    Ok((sql, arguments))
}

enum Argument {
    Text(String),
    Integer(i64),
    Time(DateTime<Utc>),
}

/// The head an append moves the trail to.
struct LastEntry {
    seq: i64,
    epoch: i64,
    kind: &'static str,
    recorded_at: DateTime<Utc>,
    mac: Vec<u8>,
}

/// The append statement for a batch's columns; returns the rows inserted
/// (none when the head was not `after`).
pub(crate) async fn insert_on<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    trail: &str,
    after: Option<i64>,
    columns: &Columns,
) -> Result<u64, sqlx::Error> {
    let Some(last) = columns.last.as_ref() else {
        return Ok(0);
    };
    let result = sqlx::query(APPEND_SQL)
        .bind(trail)
        .bind(last.seq)
        .bind(last.epoch)
        .bind(last.kind)
        .bind(last.recorded_at)
        .bind(last.mac.clone())
        .bind(after)
        .bind(&columns.seq)
        .bind(&columns.epoch)
        .bind(&columns.key_id)
        .bind(&columns.recorded_at)
        .bind(&columns.kind)
        .bind(&columns.body)
        .bind(&columns.prev_mac)
        .bind(&columns.body_commitment)
        .bind(&columns.mac)
        .bind(&columns.action)
        .bind(&columns.tenant)
        .bind(&columns.actor)
        .bind(&columns.target_type)
        .bind(&columns.target_id)
        .bind(&columns.ip)
        .bind(&columns.outcome)
        .bind(&columns.request_id)
        .execute(executor)
        .await?;
    Ok(result.rows_affected())
}

/// The summary of one epoch, read through `executor` (inside a
/// transaction it sees the transaction's own entries).
pub(crate) async fn epoch_summary_on<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    trail: &str,
    epoch: u64,
) -> Result<EpochSummary, StoreError> {
    let epoch = to_i64(trail, "epoch", epoch)?;
    let row = sqlx::query(
        "SELECT count(*), min(recorded_at), max(recorded_at), \
         count(*) FILTER (WHERE kind <> $4) FROM entries \
         WHERE trail = $1 AND epoch = $2 AND kind <> $3",
    )
    .bind(trail)
    .bind(epoch)
    .bind(EntryKind::EpochSeal.as_str())
    .bind(EntryKind::Event.as_str())
    .fetch_one(executor)
    .await
    .map_err(classify)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: 0,
        reason,
    };
    let count: i64 = row.try_get(0).map_err(|err| corrupt(err.to_string()))?;
    let records: i64 = row.try_get(3).map_err(|err| corrupt(err.to_string()))?;
    Ok(EpochSummary {
        count: u64::try_from(count).map_err(|err| corrupt(err.to_string()))?,
        records: u64::try_from(records).map_err(|err| corrupt(err.to_string()))?,
        first_at: row.try_get(1).map_err(|err| corrupt(err.to_string()))?,
        last_at: row.try_get(2).map_err(|err| corrupt(err.to_string()))?,
    })
}

/// A batch as column arrays, for one `UNNEST` insert: a single statement
/// whatever the batch size, with a fixed shape that stays prepared.
#[derive(Default)]
pub(crate) struct Columns {
    seq: Vec<i64>,
    epoch: Vec<i64>,
    key_id: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    kind: Vec<&'static str>,
    body: Vec<String>,
    prev_mac: Vec<Vec<u8>>,
    body_commitment: Vec<Vec<u8>>,
    mac: Vec<Vec<u8>>,
    action: Vec<Option<String>>,
    tenant: Vec<Option<String>>,
    actor: Vec<Option<String>>,
    target_type: Vec<Option<String>>,
    target_id: Vec<Option<String>>,
    ip: Vec<Option<String>>,
    outcome: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    last: Option<LastEntry>,
}

impl Columns {
    /// The batch's columns, or `None` for an empty batch.
    pub(crate) fn of(trail: &str, entries: &[Entry]) -> Result<Option<Self>, StoreError> {
        let Some(last) = entries.last() else {
            return Ok(None);
        };
        let mut columns = Columns::default();
        for entry in entries {
            let fields = IndexedFields::of(entry);
            let owned = |value: Option<&str>| value.map(index_text);
            columns.seq.push(to_i64(trail, "seq", entry.seq)?);
            columns.epoch.push(to_i64(trail, "epoch", entry.epoch)?);
            columns.key_id.push(entry.key_id.clone());
            columns.recorded_at.push(entry.recorded_at);
            columns.kind.push(entry.kind.as_str());
            columns.body.push(body_json(trail, entry)?);
            columns.prev_mac.push(entry.prev_mac.as_bytes().to_vec());
            columns
                .body_commitment
                .push(entry.body_commitment.as_bytes().to_vec());
            columns.mac.push(entry.mac.as_bytes().to_vec());
            columns.action.push(owned(fields.action));
            columns.tenant.push(owned(fields.tenant));
            columns.actor.push(owned(fields.actor));
            columns.target_type.push(owned(fields.target_type));
            columns.target_id.push(owned(fields.target_id));
            columns.ip.push(owned(fields.ip));
            columns.outcome.push(owned(fields.outcome));
            columns.request_id.push(owned(fields.request_id));
        }
        columns.last = Some(LastEntry {
            seq: to_i64(trail, "seq", last.seq)?,
            epoch: to_i64(trail, "epoch", last.epoch)?,
            kind: last.kind.as_str(),
            recorded_at: last.recorded_at,
            mac: last.mac.as_bytes().to_vec(),
        });
        Ok(Some(columns))
    }

    /// The UTC days the batch falls on, each once.
    pub(crate) fn days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self.recorded_at.iter().map(|t| t.date_naive()).collect();
        days.dedup();
        days
    }
}

/// A body value as its query column stores it. PostgreSQL text cannot hold
/// NUL, which a body value may contain, so the copy escapes it (and the
/// escape character), one-to-one: equal values still compare equal, and
/// query values are escaped the same way. The body column keeps the value
/// itself (JSON escapes NUL).
fn index_text(value: &str) -> String {
    if !value.contains(['\\', '\0']) {
        return value.to_owned();
    }
    value.replace('\\', "\\\\").replace('\0', "\\0")
}

/// Whether `stored` is a body value's column form ([`index_text`]).
fn is_index_text_of(stored: &str, value: &str) -> bool {
    if value.contains(['\\', '\0']) {
        stored == index_text(value)
    } else {
        stored == value
    }
}

pub(crate) fn to_i64(trail: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidBatch {
        trail: trail.to_owned(),
        reason: format!("{what} {value} is beyond what PostgreSQL can store"),
    })
}

/// Rebuilds an entry from a row of [`ENTRY_COLUMNS`]. Stored data may have
/// been tampered with, so every column is checked, never trusted.
pub(crate) fn decode_entry(trail_hint: &str, row: &PgRow) -> Result<Entry, StoreError> {
    let trail: String = row.try_get(0).unwrap_or_else(|_| trail_hint.to_owned());
    let seq: i64 = row.try_get(1).unwrap_or(-1);
    let corrupt = |reason: String| StoreError::Corrupt {
        trail: trail.clone(),
        seq: u64::try_from(seq).unwrap_or(0),
        reason,
    };
    let column = |reason: sqlx::Error| corrupt(reason.to_string());
    let seq = u64::try_from(seq).map_err(|_| corrupt(format!("invalid seq {seq}")))?;
    let epoch: i64 = row.try_get(2).map_err(column)?;
    let kind: &str = row.try_get(5).map_err(column)?;
    let body: &str = row.try_get(6).map_err(column)?;
    let mac = |index: usize, what: &str| -> Result<[u8; 32], StoreError> {
        let bytes: &[u8] = row.try_get(index).map_err(column)?;
        <[u8; 32]>::try_from(bytes)
            .map_err(|_| corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
    };
    Ok(Entry {
        trail: trail.clone(),
        seq,
        epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("invalid epoch {epoch}")))?,
        key_id: row.try_get(3).map_err(column)?,
        recorded_at: row.try_get(4).map_err(column)?,
        kind: EntryKind::from_name(kind).map_err(|err| corrupt(err.to_string()))?,
        body: serde_json::from_str::<Body>(body)
            .map_err(|err| corrupt(format!("the body is not valid: {err}")))?,
        prev_mac: Mac::from_bytes(mac(7, "prev_mac")?),
        body_commitment: Digest::from_bytes(mac(8, "body_commitment")?),
        mac: Mac::from_bytes(mac(9, "mac")?),
    })
}

pub(crate) fn decode_head(trail: &str, row: &PgRow) -> Result<Head, StoreError> {
    let seq: i64 = row.try_get(0).unwrap_or(-1);
    let corrupt = |reason: String| StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: u64::try_from(seq).unwrap_or(0),
        reason,
    };
    let column = |err: sqlx::Error| corrupt(err.to_string());
    let epoch: i64 = row.try_get(1).map_err(column)?;
    let kind: &str = row.try_get(2).map_err(column)?;
    let mac: &[u8] = row.try_get(4).map_err(column)?;
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| corrupt(format!("invalid seq {seq}")))?,
        epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("invalid epoch {epoch}")))?,
        kind: EntryKind::from_name(kind).map_err(|err| corrupt(err.to_string()))?,
        recorded_at: row.try_get(3).map_err(column)?,
        mac: Mac::from_slice(mac).map_err(|err| corrupt(err.to_string()))?,
    })
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    }
}

pub(crate) fn is_missing_partition(err: &sqlx::Error) -> bool {
    sqlstate(err).as_deref() == Some(sqlstate::CHECK_VIOLATION)
}

/// Whether an append's error proves the statement was not committed: the
/// server refused it with an SQLSTATE of a class that is decided before
/// commit (data, constraint, syntax, privilege, transaction rollback), or
/// it was never sent. Anything else (the connection broke, the server shut
/// down) leaves the outcome open.
fn is_definite(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Configuration(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. } => true,
        sqlx::Error::Database(_) => sqlstate(err).is_some_and(|code| {
            ["22", "23", "40", "42"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Turns a driver error into the store error a caller can act on, by the
/// kind sqlx reports (never by message text).
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(err))
}
