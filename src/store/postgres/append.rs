//! Appending to a PostgreSQL store: a batch is one statement that swaps
//! the trail's head and inserts the rows, whose outcome is looked up when
//! the connection breaks; and the same inside a caller's transaction.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::PostgresStore;
use super::dialect::{index_text, to_i64};
use super::errors::{is_definite, is_missing_partition};
use crate::StoreError;
use crate::model::{Entry, Head};
use crate::store::query::IndexedFields;
use crate::store::sql::{SqlStore, body_json, decode_head};
use crate::store::{Store, check_batch, conflict_after};

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

/// The head of a trail, from its row in `trail_heads`.
pub(super) async fn head(store: &PostgresStore, trail: &str) -> Result<Option<Head>, StoreError> {
    let row = sqlx::query(
        "SELECT seq, epoch, kind, recorded_at, mac FROM trail_heads \
         WHERE trail = $1 AND seq IS NOT NULL",
    )
    .bind(trail)
    .fetch_optional(&store.pool)
    .await
    .map_err(|err| store.classify(err))?;
    row.map(|row| decode_head(trail, &row)).transpose()
}

/// Locks the trail's head row for the transaction on `connection` and
/// reads it.
pub(super) async fn lock_head(
    store: &PostgresStore,
    connection: &mut PgConnection,
    trail: &str,
) -> Result<Option<Head>, StoreError> {
    // The row lock is what the group-commit append's compare and swap
    // waits for, so no other writer moves the head before we commit.
    let lock = "SELECT seq, epoch, kind, recorded_at, mac FROM trail_heads \
                WHERE trail = $1 FOR UPDATE";
    let mut row = sqlx::query(lock)
        .bind(trail)
        .fetch_optional(&mut *connection)
        .await
        .map_err(|err| store.classify(err))?;
    if row.is_none() {
        // A new trail: its head row, to lock (and to swap later).
        sqlx::query("INSERT INTO trail_heads (trail) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(trail)
            .execute(&mut *connection)
            .await
            .map_err(|err| store.classify(err))?;
        row = sqlx::query(lock)
            .bind(trail)
            .fetch_optional(&mut *connection)
            .await
            .map_err(|err| store.classify(err))?;
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: 0,
        reason,
    };
    let row = row.ok_or_else(|| corrupt("the trail's head row vanished".to_owned()))?;
    let seq: Option<i64> = row.try_get(0).map_err(|err| corrupt(err.to_string()))?;
    match seq {
        Some(_) => decode_head(trail, &row).map(Some),
        None => Ok(None),
    }
}

/// Inserts a batch inside the transaction on `connection`, whose head row
/// [`lock_head`] locked.
pub(super) async fn insert_locked(
    store: &PostgresStore,
    connection: &mut PgConnection,
    trail: &str,
    after: Option<u64>,
    entries: &[Entry],
) -> Result<(), StoreError> {
    check_batch(trail, after, entries)?;
    let conflict = || conflict_after(trail, after);
    let Some(columns) = Columns::of(trail, entries)? else {
        return Ok(());
    };
    for day in columns.days() {
        if !store.known_days().contains(&day) {
            // Created inside the caller's transaction, on its own
            // connection: through another connection the partition's
            // lock on `entries` would wait for this transaction, which
            // waits for it. Not remembered, since a rollback undoes it.
            sqlx::query("SELECT trailseal_ensure_day($1)")
                .bind(day)
                .execute(&mut *connection)
                .await
                .map_err(|err| store.classify(err))?;
        }
    }
    let after = after.map(|seq| to_i64(trail, "seq", seq)).transpose()?;
    match insert_on(&mut *connection, trail, after, &columns).await {
        Ok(0) => Err(conflict()),
        Ok(_) => Ok(()),
        Err(err) => {
            if is_missing_partition(&err) {
                // Retention dropped a partition this process remembered;
                // the caller's retry creates it.
                store.known_days().clear();
            }
            Err(store.classify(err))
        }
    }
}

impl PostgresStore {
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

    /// Stores a checked batch's columns, only if the trail's head is still
    /// `after`.
    pub(super) async fn insert_columns(
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
                .map_err(|err| self.classify(err))?;
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
                Err(err) if is_definite(&err) => return Err(self.classify(err)),
                Err(err) => {
                    let last = columns.last.as_ref().ok_or_else(conflict)?;
                    return if self.was_committed(trail, last).await? {
                        Ok(())
                    } else {
                        Err(self.classify(err))
                    };
                }
            }
        }
    }
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
async fn insert_on<'c>(
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

/// A batch as column arrays, for one `UNNEST` insert: a single statement
/// whatever the batch size, with a fixed shape that stays prepared.
#[derive(Default)]
pub(super) struct Columns {
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
    pub(super) fn of(trail: &str, entries: &[Entry]) -> Result<Option<Self>, StoreError> {
        let Some(last) = entries.last() else {
            return Ok(None);
        };
        let mut columns = Columns::default();
        for entry in entries {
            let fields = IndexedFields::of(entry);
            let owned = |value: Option<&str>| value.map(|value| index_text(value).into_owned());
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
    fn days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self.recorded_at.iter().map(|t| t.date_naive()).collect();
        days.dedup();
        days
    }
}
