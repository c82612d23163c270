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
            trailseal::store::DEFAULT_WAL_CHECKPOINT_PAGES.to_string(),
        )
        .pragma("temp_store", "memory")
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await
        .unwrap()
}

/// One column value as bound to the INSERT.
#[derive(Clone)]
enum Value {
    Text(Option<String>),
    Integer(i64),
    Blob(Vec<u8>),
}

/// Column values of one row, exactly as trailseal stores the entry, in the
/// order of [`insert_sql`]'s columns.
#[derive(Clone)]
pub struct Row {
    values: [Value; 18],
}

/// Where `seq` stands among the columns.
const SEQ_COLUMN: usize = 1;

impl Row {
    pub fn new(entry: &Entry) -> Self {
        let text = |value: &str| Value::Text(Some(value.to_owned()));
        let field = |name: &str| Value::Text(entry.value(name).map(str::to_owned));
        Self {
            values: [
                text(&entry.trail),
                Value::Integer(entry.seq as i64),
                Value::Integer(entry.epoch as i64),
                text(&entry.key_id),
                Value::Integer(entry.recorded_at.timestamp_micros()),
                text(entry.kind.as_str()),
                text(&serde_json::to_string(&entry.body).unwrap()),
                Value::Blob(entry.prev_mac.as_bytes().to_vec()),
                Value::Blob(entry.body_commitment.as_bytes().to_vec()),
                Value::Blob(entry.mac.as_bytes().to_vec()),
                field("action"),
                field("tenant"),
                field("actor.name"),
                field("target.type"),
                field("target.id"),
                field("context.ip"),
                field("outcome"),
                field("context.request_id"),
            ],
        }
    }

    fn bind(self, arguments: &mut SqliteArguments) {
        for value in self.values {
            match value {
                Value::Text(text) => arguments.add(text).unwrap(),
                Value::Integer(integer) => arguments.add(integer).unwrap(),
                Value::Blob(blob) => arguments.add(blob).unwrap(),
            }
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
                row.values[SEQ_COLUMN] = Value::Integer(self.next_seq);
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
