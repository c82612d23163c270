//! The statements every SQL backend runs on `entries` and `snapshots`,
//! written once with `?` placeholders and rendered per [`Dialect`].

use sqlx::Executor;

use super::rows::{ENTRY_COLUMNS, SqlRow, decode_entry, to_i64};
use super::{Argument, Dialect, SqlStore, arguments};
use crate::StoreError;
use crate::model::{Entry, EntryKind, EpochSummary};

/// The shared statements in one dialect, rendered once per backend
/// ([`Dialect::statements`]).
pub(crate) struct Statements {
    /// One epoch's entries that are not epoch seals: count, first and last
    /// time, and how many are records.
    pub(crate) epoch_summary: String,
    /// A trail's genesis and key rotations, in seq order.
    pub(crate) key_entries: String,
    /// One entry, locked for the transaction where rows need locking.
    pub(crate) entry_for_update: String,
    /// An erased entry's body and personal query columns.
    pub(crate) update_erased: String,
    /// The events of a seq range.
    pub(crate) delete_events: String,
    /// A snapshot, replacing one with the same trail, name and seq.
    pub(crate) put_snapshot: String,
    /// The newest snapshot of a name, or the one at a given seq.
    pub(crate) snapshot: String,
}

impl Statements {
    /// The statements in dialect `D`.
    pub(crate) fn new<D: Dialect>() -> Self {
        let sql = |template: &str| D::placeholders(template).into_owned();
        Self {
            epoch_summary: sql("SELECT count(*), min(recorded_at), max(recorded_at), \
                 count(CASE WHEN kind <> ? THEN 1 END) FROM entries \
                 WHERE trail = ? AND epoch = ? AND kind <> ?"),
            key_entries: sql(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE trail = ? AND kind <> 'event' \
                 AND kind IN (?, ?) ORDER BY seq"
            )),
            entry_for_update: sql(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE trail = ? AND seq = ?{}",
                D::LOCK_ROWS
            )),
            update_erased: sql(
                "UPDATE entries SET body = ?, tenant = ?, actor = ?, target_id = ?, ip = ? \
                 WHERE trail = ? AND seq = ?",
            ),
            delete_events: sql(
                "DELETE FROM entries WHERE trail = ? AND seq BETWEEN ? AND ? AND kind = ?",
            ),
            put_snapshot: sql(
                "INSERT INTO snapshots (trail, name, upto_seq, state) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (trail, name, upto_seq) DO UPDATE SET state = excluded.state",
            ),
            snapshot: sql(
                "SELECT upto_seq, state FROM snapshots WHERE trail = ? AND name = ? \
                 AND (? IS NULL OR upto_seq = ?) ORDER BY upto_seq DESC LIMIT 1",
            ),
        }
    }
}

/// The summary of one epoch, read through `executor` (inside a
/// transaction it sees the transaction's own entries).
pub(crate) async fn epoch_summary<'c, S: SqlStore>(
    store: &S,
    executor: impl Executor<'c, Database = S::Db>,
    trail: &str,
    epoch: u64,
) -> Result<EpochSummary, StoreError> {
    let epoch = to_i64::<S::Db>(trail, "epoch", epoch)?;
    let values = arguments(
        store,
        &[
            Argument::Text(EntryKind::Event.as_str()),
            Argument::Text(trail),
            Argument::Integer(epoch),
            Argument::Text(EntryKind::EpochSeal.as_str()),
        ],
    )?;
    let row = sqlx::query_with(S::Db::statements().epoch_summary.as_str(), values)
        .fetch_one(executor)
        .await
        .map_err(|err| store.classify(err))?;
    let corrupt = |reason: String| StoreError::Corrupt {
        trail: trail.to_owned(),
        seq: 0,
        reason,
    };
    let time = |index| {
        row.optional_time(index)
            .map_err(|err| corrupt(err.to_string()))?
            .map(|time| time.map_err(corrupt))
            .transpose()
    };
    let count = row.integer(0).map_err(|err| corrupt(err.to_string()))?;
    let records = row.integer(3).map_err(|err| corrupt(err.to_string()))?;
    Ok(EpochSummary {
        count: u64::try_from(count).map_err(|err| corrupt(err.to_string()))?,
        records: u64::try_from(records).map_err(|err| corrupt(err.to_string()))?,
        first_at: time(1)?,
        last_at: time(2)?,
    })
}

/// The trail's genesis and key rotation entries, in seq order, read
/// through `executor`: which key line the trail continues on.
pub(crate) async fn key_entries<'c, S: SqlStore>(
    store: &S,
    executor: impl Executor<'c, Database = S::Db>,
    trail: &str,
) -> Result<Vec<Entry>, StoreError> {
    let values = arguments(
        store,
        &[
            Argument::Text(trail),
            Argument::Text(EntryKind::Genesis.as_str()),
            Argument::Text(EntryKind::KeyRotation.as_str()),
        ],
    )?;
    let rows = sqlx::query_with(S::Db::statements().key_entries.as_str(), values)
        .fetch_all(executor)
        .await
        .map_err(|err| store.classify(err))?;
    rows.iter().map(|row| decode_entry(trail, row)).collect()
}
