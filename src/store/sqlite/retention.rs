//! Restricting processing in an SQLite store: each entry's flag in one
//! write transaction. (Deleting events and erasing fields are the shared
//! SQL layer's.)

use super::SqliteStore;
use super::dialect::to_i64;
use crate::StoreError;
use crate::store::sql::{SqlStore, begin_write};

/// Sets or lifts the restriction flag of entries; see
/// [`Store::restrict`](crate::Store::restrict).
pub(super) async fn restrict(
    store: &SqliteStore,
    trail: &str,
    seqs: &[u64],
    restricted: bool,
) -> Result<u64, StoreError> {
    let mut tx = begin_write(store).await?;
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
        .map_err(|err| store.classify(err))?;
        changed += done.rows_affected();
    }
    tx.commit().await.map_err(|err| store.classify(err))?;
    Ok(changed)
}
