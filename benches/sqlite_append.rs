//! Sealed appends through `Trail` into SQLite, against a plain insert of the
//! same rows through the same driver into the same schema, in the same run.
//!
//! Two modes:
//! - batched: 1,000 events per transaction; the plain insert is one
//!   1,000-row INSERT statement per transaction. The sealed side runs in
//!   bursts (1,000 callers at once, all waiting before the next burst) and
//!   under steady load (1,000 callers recording one event after another),
//!   and the store's share alone is measured on entries sealed beforehand.
//! - one event per transaction with concurrent callers: the plain insert is
//!   one transaction per row from each caller; the trail's callers each wait
//!   for their event, and its writer commits whatever queued up together.
//!
//! The closing summary prints rows/s of both and the ratio. Keep runs short:
//! `cargo bench --bench sqlite_append`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Arguments, AssertSqlSafe, sqlite::SqliteArguments};
use trailseal::{
    Actor, Entry, Event, ManualClock, MemoryStore, SealingKey, Source, SqliteStore, Store, Trail,
};

/// Events per transaction in the batched mode.
const BATCH: usize = 1000;
/// Batches per measured iteration in the batched mode.
const BATCHES_PER_ITERATION: usize = 5;
/// Concurrent callers in the one-event-per-transaction mode.
const CALLERS: usize = 16;
/// Events each caller records per measured iteration.
const EVENTS_PER_CALLER: usize = 25;

/// Rows and time measured per benchmark, for the closing summary.
static TALLY: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn tally(name: &str, rows: u64, elapsed: Duration) {
    let mut tally = TALLY.lock().unwrap();
    let entry = tally.entry(name.to_owned()).or_default();
    entry.0 += rows;
    entry.1 += elapsed;
}

fn event(i: usize) -> Event {
    Event::builder("mailbox.login")
        .actor(Actor::customer(format!(
            "info{}@baeckerei-mueller.de",
            i % 50
        )))
        .tenant(format!("kunde{}", i % 200))
        .target("mailbox", format!("info{}@baeckerei-mueller.de", i % 50))
        .ip(std::net::IpAddr::from([198, 51, 100, (i % 250) as u8]))
        .user_agent("Thunderbird/128.3.0")
        .request_id(format!("req-{i:08x}"))
        .source(Source::System)
        .meta("protocol", "imap")
        .meta("bytes", (i * 7919 % 5_000_000) as i64)
        .build()
        .unwrap()
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

/// A fresh trailseal database in a temporary folder.
async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    (store, dir)
}

async fn start_trail(store: Arc<dyn Store>) -> Trail {
    let (key, _) = SealingKey::generate("bench", start(), 900).unwrap();
    Trail::builder("mailbox", store, Arc::new(key))
        .clock(Arc::new(ManualClock::new(start())))
        .start()
        .await
        .unwrap()
}

/// The plain baseline: the same database, opened the way `SqliteStore`
/// opens it (WAL, synchronous = FULL, the same checkpoint interval),
/// without trailseal in between.
async fn plain_pool(store: &SqliteStore) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(store.path())
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .pragma(
            "wal_autocheckpoint",
            trailseal::DEFAULT_WAL_CHECKPOINT_PAGES.to_string(),
        )
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(CALLERS as u32)
        .connect_with(options)
        .await
        .unwrap()
}

/// Column values of one row, exactly as trailseal stores the entry.
#[derive(Clone)]
struct Row {
    text: [Option<String>; 12],
    integers: [i64; 3],
    blobs: [Vec<u8>; 3],
}

fn row(entry: &Entry) -> Row {
    let value = |name: &str| entry.value(name).map(str::to_owned);
    Row {
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

fn insert_sql(rows: usize) -> String {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
         body_commitment, mac, action, tenant, actor, target_type, target_id, ip, outcome, \
         request_id) VALUES {}",
        vec![one; rows].join(", ")
    )
}

fn bind(arguments: &mut SqliteArguments, row: Row) {
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
    ] = row.text;
    let [seq, epoch, recorded_at] = row.integers;
    let [prev_mac, commitment, mac] = row.blobs;
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

/// Rows of real sealed entries, renumbered per call so they never collide.
struct RowSource {
    template: Vec<Row>,
    next_seq: i64,
}

impl RowSource {
    async fn new() -> Self {
        let memory = MemoryStore::new();
        let trail = start_trail(Arc::new(memory.clone())).await;
        let pending: Vec<_> = (0..BATCH).map(|i| trail.record(event(i))).collect();
        futures_util::future::try_join_all(pending).await.unwrap();
        trail.shutdown().await.unwrap();
        let template = memory.dump("mailbox")[1..].iter().map(row).collect();
        Self {
            template,
            next_seq: 0,
        }
    }

    fn rows(&mut self, count: usize) -> Vec<Row> {
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

fn batched(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("sqlite_append/batched");
    configure(&mut group);
    let rows = (BATCH * BATCHES_PER_ITERATION) as u64;
    group.throughput(Throughput::Elements(rows));

    group.bench_function(BenchmarkId::new("plain_insert", BATCH), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let pool = runtime.block_on(plain_pool(&store));
        let mut source = runtime.block_on(RowSource::new());
        let sql = insert_sql(BATCH);
        b.to_async(runtime).iter_custom(|iters| {
            let batches: Vec<Vec<Row>> = (0..iters as usize * BATCHES_PER_ITERATION)
                .map(|_| source.rows(BATCH))
                .collect();
            let pool = pool.clone();
            let sql = sql.clone();
            async move {
                let began = Instant::now();
                for batch in batches {
                    let mut arguments = SqliteArguments::default();
                    for row in batch {
                        bind(&mut arguments, row);
                    }
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    sqlx::query_with(AssertSqlSafe(sql.as_str()), arguments)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
                let elapsed = began.elapsed();
                tally("batched/plain_insert", iters * rows, elapsed);
                elapsed
            }
        });
    });

    // The store's share alone: entries sealed beforehand, appended through
    // `SqliteStore::append` (head check, encoding, multi-row inserts).
    group.bench_function(BenchmarkId::new("store_append", BATCH), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let memory = MemoryStore::new();
        let trail = runtime.block_on(start_trail(Arc::new(memory.clone())));
        b.to_async(runtime).iter_custom(|iters| {
            let count = iters as usize * BATCHES_PER_ITERATION * BATCH;
            let (store, memory, trail) = (store.clone(), memory.clone(), trail.clone());
            async move {
                let pending: Vec<_> = (0..count).map(|i| trail.record(event(i))).collect();
                futures_util::future::try_join_all(pending).await.unwrap();
                let sealed = memory.dump("mailbox");
                let first = match store.head("mailbox").await.unwrap() {
                    Some(head) => head.seq as usize + 1,
                    None => 0,
                };
                let began = Instant::now();
                for batch in sealed[first..].chunks(BATCH) {
                    let after = batch[0].seq.checked_sub(1);
                    store.append("mailbox", after, batch).await.unwrap();
                }
                let elapsed = began.elapsed();
                tally(
                    "batched/store_append",
                    (sealed.len() - first) as u64,
                    elapsed,
                );
                elapsed
            }
        });
    });

    group.bench_function(BenchmarkId::new("sealed_append", BATCH), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let trail = runtime.block_on(start_trail(Arc::new(store.clone())));
        b.to_async(runtime).iter_custom(|iters| {
            let batches: Vec<Vec<Event>> = (0..iters as usize * BATCHES_PER_ITERATION)
                .map(|_| (0..BATCH).map(event).collect())
                .collect();
            let trail = trail.clone();
            async move {
                let began = Instant::now();
                for batch in batches {
                    // A thousand callers at once: the writer seals and
                    // commits them together.
                    let pending: Vec<_> = batch.into_iter().map(|e| trail.record(e)).collect();
                    futures_util::future::try_join_all(pending).await.unwrap();
                }
                let elapsed = began.elapsed();
                tally("batched/sealed_append", iters * rows, elapsed);
                elapsed
            }
        });
    });
    // Steady load: a thousand callers each record event after event, so
    // the writer commits up to 1,000 per transaction while the callers
    // already seal their next events.
    group.bench_function(BenchmarkId::new("sealed_append_steady", BATCH), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let trail = runtime.block_on(start_trail(Arc::new(store.clone())));
        b.to_async(runtime).iter_custom(|iters| {
            let callers: Vec<Vec<Event>> = (0..BATCH)
                .map(|caller| {
                    (0..iters as usize * BATCHES_PER_ITERATION)
                        .map(|i| event(caller + i * BATCH))
                        .collect()
                })
                .collect();
            let trail = trail.clone();
            async move {
                let began = Instant::now();
                let tasks: Vec<_> = callers
                    .into_iter()
                    .map(|events| {
                        let trail = trail.clone();
                        tokio::spawn(async move {
                            for event in events {
                                trail.record(event).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let elapsed = began.elapsed();
                tally("batched/sealed_append_steady", iters * rows, elapsed);
                elapsed
            }
        });
    });
    group.finish();
}

fn one_per_transaction(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("sqlite_append/one_event_per_transaction");
    configure(&mut group);
    let rows = (CALLERS * EVENTS_PER_CALLER) as u64;
    group.throughput(Throughput::Elements(rows));

    group.bench_function(BenchmarkId::new("plain_insert", CALLERS), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let pool = runtime.block_on(plain_pool(&store));
        let mut source = runtime.block_on(RowSource::new());
        let sql = insert_sql(1);
        b.to_async(runtime).iter_custom(|iters| {
            let callers: Vec<Vec<Row>> = (0..CALLERS)
                .map(|_| source.rows(iters as usize * EVENTS_PER_CALLER))
                .collect();
            let pool = pool.clone();
            let sql = sql.clone();
            async move {
                let began = Instant::now();
                let tasks: Vec<_> = callers
                    .into_iter()
                    .map(|rows| {
                        let pool = pool.clone();
                        let sql = sql.clone();
                        tokio::spawn(async move {
                            for row in rows {
                                let mut arguments = SqliteArguments::default();
                                bind(&mut arguments, row);
                                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                                sqlx::query_with(AssertSqlSafe(sql.as_str()), arguments)
                                    .execute(&mut *tx)
                                    .await
                                    .unwrap();
                                tx.commit().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let elapsed = began.elapsed();
                tally("one_per_transaction/plain_insert", iters * rows, elapsed);
                elapsed
            }
        });
    });

    group.bench_function(BenchmarkId::new("sealed_append", CALLERS), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let trail = runtime.block_on(start_trail(Arc::new(store.clone())));
        b.to_async(runtime).iter_custom(|iters| {
            let callers: Vec<Vec<Event>> = (0..CALLERS)
                .map(|caller| {
                    (0..iters as usize * EVENTS_PER_CALLER)
                        .map(|i| event(caller * 1000 + i))
                        .collect()
                })
                .collect();
            let trail = trail.clone();
            async move {
                let began = Instant::now();
                let tasks: Vec<_> = callers
                    .into_iter()
                    .map(|events| {
                        let trail = trail.clone();
                        tokio::spawn(async move {
                            // Each caller waits for its event's commit
                            // before recording the next, like a request
                            // handler.
                            for event in events {
                                trail.record(event).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let elapsed = began.elapsed();
                tally("one_per_transaction/sealed_append", iters * rows, elapsed);
                elapsed
            }
        });
    });
    group.finish();
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
}

fn summary() {
    let tally = TALLY.lock().unwrap();
    let rate = |name: &str| {
        tally
            .get(name)
            .map(|(rows, elapsed)| *rows as f64 / elapsed.as_secs_f64())
    };
    println!("\nsummary (all measured iterations, warm-up included):");
    for mode in ["batched", "one_per_transaction"] {
        let plain = rate(&format!("{mode}/plain_insert"));
        let sealed = rate(&format!("{mode}/sealed_append"));
        if let (Some(plain), Some(sealed)) = (plain, sealed) {
            println!(
                "  {mode:<20} plain insert {plain:>9.0} rows/s   sealed append {sealed:>9.0} rows/s   ratio {:>5.1} %",
                100.0 * sealed / plain
            );
        }
        for (variant, what) in [
            ("sealed_append_steady", "sealed append, steady callers"),
            ("store_append", "store append of pre-sealed entries"),
        ] {
            if let (Some(plain), Some(rate)) = (plain, rate(&format!("{mode}/{variant}"))) {
                println!(
                    "  {mode:<20} {what:<36} {rate:>9.0} rows/s   ratio {:>5.1} %",
                    100.0 * rate / plain
                );
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    batched(&mut criterion, &runtime);
    one_per_transaction(&mut criterion, &runtime);
    criterion.final_summary();
    summary();
}
