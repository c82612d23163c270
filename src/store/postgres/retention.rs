//! Restricting processing in a PostgreSQL store: one statement sets the
//! flags of every entry named. (Deleting events and erasing fields are the
//! shared SQL layer's.)

use super::PostgresStore;
use super::dialect::to_i64;
use crate::StoreError;
use crate::store::sql::SqlStore;

/// Sets or lifts the restriction flag of entries; see
/// [`Store::restrict`](crate::Store::restrict).
pub(super) async fn restrict(
    store: &PostgresStore,
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
    .execute(&store.pool)
    .await
    .map_err(|err| store.classify(err))?;
    Ok(done.rows_affected())
}
