//! The plain baseline of the SQLite benchmarks: the rows trailseal stores
//! for sealed entries, inserted through the same driver into the same
//! database, with nothing of trailseal in between.

use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Arguments, AssertSqlSafe, sqlite::SqliteArguments};
use trailseal::{Entry, SqliteStore};

/// The store's database, opened the way `SqliteStore` opens it (WAL,
/// synchronous = FULL, the same checkpoint interval, statement journals in
/// memory).
pub async fn pool(store: &SqliteStore, connections: u32) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(store.path())
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .pragma(
            "wal_autocheckpoint",
            trailseal::DEFAULT_WAL_CHECKPOINT_PAGES.to_string(),
        )
        .pragma("temp_store", "memory")
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await
        .unwrap()
}

/// Column values of one row, exactly as trailseal stores the entry.
#[derive(Clone)]
pub struct Row {
    text: [Option<String>; 12],
    integers: [i64; 3],
    blobs: [Vec<u8>; 3],
}

impl Row {
    pub fn new(entry: &Entry) -> Self {
        let value = |name: &str| entry.value(name).map(str::to_owned);
        Self {
            text: [
                Some(entry.trail.clone()),
                Some(entry.key_id.clone()),
                Some(entry.kind.as_str().to_owned()),
                Some(serde_json::to_string(&entry.body).unwrap()),
                value("action"),
                value("tenant"),
                value("actor.name"),
                value("target.type"),
                value("target.id"),
                value("context.ip"),
                value("outcome"),
                value("context.request_id"),
            ],
            integers: [
                entry.seq as i64,
                entry.epoch as i64,
                entry.recorded_at.timestamp_micros(),
            ],
            blobs: [
                entry.prev_mac.as_bytes().to_vec(),
                entry.body_commitment.as_bytes().to_vec(),
                entry.mac.as_bytes().to_vec(),
            ],
        }
    }

    fn bind(self, arguments: &mut SqliteArguments) {
        let [
            trail,
            key_id,
            kind,
            body,
            action,
            tenant,
            actor,
            target_type,
            target_id,
            ip,
            outcome,
            request_id,
        ] = self.text;
        let [seq, epoch, recorded_at] = self.integers;
        let [prev_mac, commitment, mac] = self.blobs;
        arguments.add(trail).unwrap();
        arguments.add(seq).unwrap();
        arguments.add(epoch).unwrap();
        arguments.add(key_id).unwrap();
        arguments.add(recorded_at).unwrap();
        arguments.add(kind).unwrap();
        arguments.add(body).unwrap();
        arguments.add(prev_mac).unwrap();
        arguments.add(commitment).unwrap();
        arguments.add(mac).unwrap();
        for value in [
            action,
            tenant,
            actor,
            target_type,
            target_id,
            ip,
            outcome,
            request_id,
        ] {
            arguments.add(value).unwrap();
        }
    }
}

/// Rows of real sealed entries, renumbered per call so they never collide.
pub struct RowSource {
    template: Vec<Row>,
    next_seq: i64,
}

impl RowSource {
    pub fn new(entries: &[Entry]) -> Self {
        Self {
            template: entries.iter().map(Row::new).collect(),
            next_seq: 0,
        }
    }

    pub fn rows(&mut self, count: usize) -> Vec<Row> {
        (0..count)
            .map(|i| {
                let mut row = self.template[i % self.template.len()].clone();
                row.integers[0] = self.next_seq;
                self.next_seq += 1;
                row
            })
            .collect()
    }
}

/// An INSERT of `rows` rows, as one statement.
pub fn insert_sql(rows: usize) -> String {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
         body_commitment, mac, action, tenant, actor, target_type, target_id, ip, outcome, \
         request_id) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Inserts each batch with one statement of `sql` (made by [`insert_sql`]
/// for the batch's size) in a transaction of its own, like the store;
/// returns the time it took.
pub async fn insert_batches(pool: &SqlitePool, sql: &str, batches: Vec<Vec<Row>>) -> Duration {
    let began = Instant::now();
    for batch in batches {
        let mut arguments = SqliteArguments::default();
        for row in batch {
            row.bind(&mut arguments);
        }
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    began.elapsed()
}
