//! The plain baseline of the PostgreSQL benchmarks: the rows trailseal
//! stores for sealed entries, inserted through the same driver into the
//! same `entries` table with one `UNNEST` statement per batch, with nothing
//! of trailseal in between.

use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;
use trailseal::Entry;

/// The rows again, in another trail: the same rows can be inserted once
/// per trail.
pub fn renamed(rows: &[Entry], trail: &str) -> Vec<Entry> {
    rows.iter()
        .cloned()
        .map(|mut entry| {
            entry.trail = trail.to_owned();
            entry
        })
        .collect()
}

/// Inserts the rows with one statement of `batch` rows each (an implicit
/// transaction, like the store's append); returns the time it took.
pub async fn insert(pool: &PgPool, rows: &[Entry], batch: usize) -> Duration {
    let began = Instant::now();
    for batch in rows.chunks(batch) {
        insert_query(batch).execute(pool).await.unwrap();
    }
    began.elapsed()
}

/// An insert of the batch's rows, as one statement.
pub type InsertQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The plain insert of the batch: the same columns, one `UNNEST` statement.
pub fn insert_query(batch: &[Entry]) -> InsertQuery {
    let column = |f: &dyn Fn(&Entry) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(f).collect()
    };
    let value = |name: &'static str| move |e: &Entry| e.body.value(name).map(str::to_owned);
    sqlx::query(
        "INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
             body_commitment, mac, action, tenant, actor, target_type, target_id, ip, outcome, \
             request_id) SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], \
             $5::timestamptz[], $6::text[], $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], \
             $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], \
             $17::text[], $18::text[])",
    )
    .bind(column(&|e| Some(e.trail.clone())))
    .bind(batch.iter().map(|e| e.seq as i64).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.epoch as i64).collect::<Vec<_>>())
    .bind(column(&|e| Some(e.key_id.clone())))
    .bind(batch.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
    .bind(column(&|e| Some(e.kind.as_str().to_owned())))
    .bind(column(&|e| serde_json::to_string(&e.body).ok()))
    .bind(
        batch
            .iter()
            .map(|e| e.prev_mac.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|e| e.body_commitment.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|e| e.mac.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(column(&value("action")))
    .bind(column(&value("tenant")))
    .bind(column(&value("actor.name")))
    .bind(column(&value("target.type")))
    .bind(column(&value("target.id")))
    .bind(column(&value("context.ip")))
    .bind(column(&value("outcome")))
    .bind(column(&value("context.request_id")))
}
