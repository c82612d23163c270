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

mod plain;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use trailseal::{
    Actor, Event, ManualClock, MemoryStore, SealingKey, SqliteStore, Store, Trail, event::Source,
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

/// Rows of the sealed entries of one batch of events, for the plain
/// baseline.
async fn sealed_rows() -> plain::RowSource {
    let memory = MemoryStore::new();
    let trail = start_trail(Arc::new(memory.clone())).await;
    let pending: Vec<_> = (0..BATCH).map(|i| trail.record(event(i))).collect();
    futures_util::future::try_join_all(pending).await.unwrap();
    trail.shutdown().await.unwrap();
    plain::RowSource::new(&memory.dump("mailbox")[1..])
}

fn batched(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("sqlite_append/batched");
    configure(&mut group);
    let rows = (BATCH * BATCHES_PER_ITERATION) as u64;
    group.throughput(Throughput::Elements(rows));

    group.bench_function(BenchmarkId::new("plain_insert", BATCH), |b| {
        let (store, _dir) = runtime.block_on(fresh_store());
        let pool = runtime.block_on(plain::pool(&store, CALLERS as u32));
        let mut source = runtime.block_on(sealed_rows());
        let sql = plain::insert_sql(BATCH);
        b.to_async(runtime).iter_custom(|iters| {
            let batches: Vec<_> = (0..iters as usize * BATCHES_PER_ITERATION)
                .map(|_| source.rows(BATCH))
                .collect();
            let pool = pool.clone();
            let sql = sql.clone();
            async move {
                let elapsed = plain::insert_batches(&pool, &sql, batches).await;
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
        let pool = runtime.block_on(plain::pool(&store, CALLERS as u32));
        let mut source = runtime.block_on(sealed_rows());
        let sql = plain::insert_sql(1);
        b.to_async(runtime).iter_custom(|iters| {
            let callers: Vec<_> = (0..CALLERS)
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
                        // One row per transaction.
                        let batches = rows.into_iter().map(|row| vec![row]).collect();
                        tokio::spawn(
                            async move { plain::insert_batches(&pool, &sql, batches).await },
                        )
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
