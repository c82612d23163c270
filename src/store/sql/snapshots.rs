//! Projection snapshots, kept in the `snapshots` table.

use super::rows::{SqlRow, to_i64};
use super::{Argument, Dialect, SqlStore, arguments};
use crate::StoreError;
use crate::model::Snapshot;

/// Keeps a snapshot; see [`Store::put_snapshot`](crate::Store::put_snapshot).
pub(crate) async fn put_snapshot<S: SqlStore>(
    store: &S,
    snapshot: &Snapshot,
) -> Result<(), StoreError> {
    let upto_seq = to_i64::<S::Db>(&snapshot.trail, "seq", snapshot.upto_seq)?;
    let values = arguments(
        store,
        &[
            Argument::Text(&snapshot.trail),
            Argument::Text(&snapshot.name),
            Argument::Integer(upto_seq),
            Argument::Text(&snapshot.state),
        ],
    )?;
    sqlx::query_with(S::Db::statements().put_snapshot.as_str(), values)
        .execute(S::Db::on_pool(store.pool()))
        .await
        .map_err(|err| store.classify(err))?;
    Ok(())
}

/// The newest snapshot of a name, or the one at `upto_seq`; see
/// [`Store::snapshot`](crate::Store::snapshot).
pub(crate) async fn snapshot<S: SqlStore>(
    store: &S,
    trail: &str,
    name: &str,
    upto_seq: Option<u64>,
) -> Result<Option<Snapshot>, StoreError> {
    let upto = upto_seq
        .map(|seq| to_i64::<S::Db>(trail, "seq", seq))
        .transpose()?;
    let values = arguments(
        store,
        &[
            Argument::Text(trail),
            Argument::Text(name),
            Argument::OptionalInteger(upto),
            Argument::OptionalInteger(upto),
        ],
    )?;
    let row = sqlx::query_with(S::Db::statements().snapshot.as_str(), values)
        .fetch_optional(S::Db::on_pool(store.pool()))
        .await
        .map_err(|err| store.classify(err))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let column = |err: sqlx::Error| store.classify(err);
    let upto_seq = row.integer(0).map_err(column)?;
    let state = row.text(1).map_err(column)?.to_owned();
    Ok(Some(Snapshot {
        trail: trail.to_owned(),
        name: name.to_owned(),
        upto_seq: u64::try_from(upto_seq).unwrap_or_default(),
        state,
    }))
}
