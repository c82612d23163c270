//! What retention and erasure change in stored entries: deleting events
//! and erasing personal fields. (Restricting processing is a backend's
//! own: it sets many rows' flags the way its database does best.)

use super::rows::{decode_entry, to_i64};
use super::{Argument, Dialect, SqlStore, arguments, begin_write, body_json};
use crate::StoreError;
use crate::model::EntryKind;
use crate::store::Erasure;
use crate::store::query::IndexedFields;

/// Deletes the events with seqs `first..=last` of a trail; see
/// [`Store::delete_events`](crate::Store::delete_events).
pub(crate) async fn delete_events<S: SqlStore>(
    store: &S,
    trail: &str,
    first: u64,
    last: u64,
) -> Result<u64, StoreError> {
    let first = to_i64::<S::Db>(trail, "seq", first)?;
    let last = to_i64::<S::Db>(trail, "seq", last)?;
    let values = arguments(
        store,
        &[
            Argument::Text(trail),
            Argument::Integer(first),
            Argument::Integer(last),
            Argument::Text(EntryKind::Event.as_str()),
        ],
    )?;
    let done = sqlx::query_with(S::Db::statements().delete_events.as_str(), values)
        .execute(S::Db::on_pool(store.pool()))
        .await
        .map_err(|err| store.classify(err))?;
    Ok(S::Db::rows_affected(&done))
}

/// Erases personal fields in one transaction; see
/// [`Store::erase_fields`](crate::Store::erase_fields).
pub(crate) async fn erase_fields<S: SqlStore>(
    store: &S,
    trail: &str,
    erasures: &[Erasure],
) -> Result<u64, StoreError> {
    let statements = S::Db::statements();
    let classify = |err| store.classify(err);
    let mut tx = begin_write(store).await?;
    let mut changed = 0;
    for erasure in erasures {
        let seq = to_i64::<S::Db>(trail, "seq", erasure.seq)?;
        let values = arguments(store, &[Argument::Text(trail), Argument::Integer(seq)])?;
        let row = sqlx::query_with(statements.entry_for_update.as_str(), values)
            .fetch_optional(S::Db::on_connection(&mut tx))
            .await
            .map_err(classify)?;
        let Some(row) = row else { continue };
        let mut entry = decode_entry(trail, &row)?;
        if !entry.body.erase(&erasure.fields) {
            continue;
        }
        let body = body_json(trail, &entry)?;
        let fields = IndexedFields::of(&entry);
        let (tenant, actor, target_id, ip) = (
            fields.tenant.map(S::Db::copy_text),
            fields.actor.map(S::Db::copy_text),
            fields.target_id.map(S::Db::copy_text),
            fields.ip.map(S::Db::copy_text),
        );
        let values = arguments(
            store,
            &[
                Argument::Text(&body),
                Argument::OptionalText(tenant.as_deref()),
                Argument::OptionalText(actor.as_deref()),
                Argument::OptionalText(target_id.as_deref()),
                Argument::OptionalText(ip.as_deref()),
                Argument::Text(trail),
                Argument::Integer(seq),
            ],
        )?;
        sqlx::query_with(statements.update_erased.as_str(), values)
            .execute(S::Db::on_connection(&mut tx))
            .await
            .map_err(classify)?;
        changed += 1;
    }
    tx.commit().await.map_err(classify)?;
    Ok(changed)
}
