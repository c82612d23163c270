//! Sealed appends into PostgreSQL against a plain multi-row insert of the
//! same rows through the same driver, in the same run, with 1 and 8
//! concurrent writers (each writer its own trail).
//!
//! - `plain_insert`: the rows of 1,000 sealed entries inserted with one
//!   `UNNEST` statement per batch into the same `entries` table, nothing
//!   else: the baseline.
//! - `store_append`: the same rows through `PostgresStore::append` (the
//!   head's compare and swap and the insert in one statement).
//! - `advisory_lock_append`: the same rows through the alternative the
//!   store does not use: a transaction that takes a per-trail advisory
//!   lock, reads the head, inserts and commits.
//! - `sealed_trail`: the same events recorded through `Trail` (sealing,
//!   group commit, the store's append), many callers per writer.
//!
//! It needs a PostgreSQL server it may create databases on:
//!
//! ```text
//! scripts/with-postgres cargo bench --bench postgres_append
//! # or, with a server of your own:
//! TRAILSEAL_TEST_POSTGRES_URL=postgres://user@host/postgres cargo bench --bench postgres_append
//! ```
//!
//! The closing summary prints rows/s of each and the ratio to the plain
//! insert.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod plain_postgres;
mod postgres_server;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions};
use trailseal::{
    Actor, Entry, Event, ManualClock, MemoryStore, PostgresStore, SealingKey, Store, Trail,
    event::Source, store::PostgresStoreOptions,
};

/// Entries per batch (per statement).
const BATCH: usize = 1000;
/// Batches each writer appends per measured iteration.
const BATCHES: usize = 5;
const ROWS_PER_WRITER: usize = BATCH * BATCHES;

/// Rows and time measured per benchmark, for the closing summary.
static TALLY: Mutex<BTreeMap<(usize, String), (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn tally(writers: usize, name: &str, rows: u64, elapsed: Duration) {
    let mut tally = TALLY.lock().unwrap();
    let entry = tally.entry((writers, name.to_owned())).or_default();
    entry.0 += rows;
    entry.1 += elapsed;
}

fn start() -> DateTime<Utc> {
    Utc::now()
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

async fn start_trail(name: &str, store: Arc<dyn Store>, at: DateTime<Utc>) -> Trail {
    let (key, _) = SealingKey::generate("bench", at, 3600).unwrap();
    Trail::builder(name, store, Arc::new(key))
        .clock(Arc::new(ManualClock::new(at)))
        .start()
        .await
        .unwrap()
}

/// Genesis and `ROWS_PER_WRITER - 1` events, sealed once in memory: the
/// rows the plain insert and the store-level appends write.
async fn sealed_rows(at: DateTime<Utc>) -> Vec<Entry> {
    let store = Arc::new(MemoryStore::new());
    let trail = start_trail("template", store.clone(), at).await;
    let receipts: Vec<_> = (1..ROWS_PER_WRITER)
        .map(|i| trail.record(event(i)))
        .collect();
    futures_util::future::try_join_all(receipts).await.unwrap();
    trail.shutdown().await.unwrap();
    let mut entries: Vec<Entry> = store.scan("template", 0).try_collect().await.unwrap();
    // What the shutdown sealed after the events is left out.
    assert!(entries.len() >= ROWS_PER_WRITER);
    entries.truncate(ROWS_PER_WRITER);
    entries
}

/// The alternative to the store's compare and swap: a per-trail advisory
/// lock held by a transaction that reads the head and inserts.
async fn advisory_lock_append(pool: &PgPool, rows: &[Entry]) {
    let mut after: Option<i64> = None;
    for batch in rows.chunks(BATCH) {
        let trail = &batch[0].trail;
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(trail)
            .execute(&mut *tx)
            .await
            .unwrap();
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM entries WHERE trail = $1")
            .bind(trail)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(head, after, "another writer appended");
        plain_postgres::insert_query(batch)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        after = Some(batch.last().unwrap().seq as i64);
    }
}

async fn store_append(store: &PostgresStore, rows: &[Entry]) {
    let mut after = None;
    for batch in rows.chunks(BATCH) {
        store.append(&batch[0].trail, after, batch).await.unwrap();
        after = Some(batch.last().unwrap().seq);
    }
}

async fn sealed_trail(store: Arc<PostgresStore>, trail: &str, at: DateTime<Utc>) -> Duration {
    let trail = start_trail(trail, store, at).await;
    let started = Instant::now();
    let receipts: Vec<_> = (1..ROWS_PER_WRITER)
        .map(|i| trail.record(event(i)))
        .collect();
    futures_util::future::try_join_all(receipts).await.unwrap();
    let elapsed = started.elapsed();
    trail.shutdown().await.unwrap();
    elapsed
}

struct Setup {
    store: Arc<PostgresStore>,
    pool: PgPool,
    rows: Vec<Entry>,
    at: DateTime<Utc>,
}

async fn setup(url: &str) -> Setup {
    let url = postgres_server::fresh_database(url).await;
    let store = PostgresStoreOptions::from_url(&url)
        .unwrap()
        .max_connections(16)
        .open()
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .unwrap();
    let at = start();
    Setup {
        store: Arc::new(store),
        pool,
        rows: sealed_rows(at).await,
        at,
    }
}

fn bench(c: &mut Criterion) {
    let Some(url) = postgres_server::server_url("postgres_append") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = Arc::new(runtime.block_on(setup(&url)));
    let run = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut group = c.benchmark_group("postgres_append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    for writers in [1usize, 8] {
        group.throughput(Throughput::Elements((writers * ROWS_PER_WRITER) as u64));
        let names = move |run: usize| -> Vec<String> {
            (0..writers).map(|w| format!("bench-{run}-{w}")).collect()
        };
        for method in [
            "plain_insert",
            "store_append",
            "advisory_lock_append",
            "sealed_trail",
        ] {
            let setup = setup.clone();
            let run = run.clone();
            group.bench_function(BenchmarkId::new(method, writers), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let setup = setup.clone();
                    let run = run.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let trails =
                                names(run.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                            let tasks: Vec<_> = trails
                                .into_iter()
                                .map(|trail| {
                                    let setup = setup.clone();
                                    tokio::spawn(async move {
                                        let rows = plain_postgres::renamed(&setup.rows, &trail);
                                        let started = Instant::now();
                                        match method {
                                            "plain_insert" => {
                                                plain_postgres::insert(&setup.pool, &rows, BATCH)
                                                    .await;
                                            }
                                            "store_append" => {
                                                store_append(&setup.store, &rows).await
                                            }
                                            "advisory_lock_append" => {
                                                advisory_lock_append(&setup.pool, &rows).await
                                            }
                                            _ => {
                                                return sealed_trail(
                                                    setup.store.clone(),
                                                    &trail,
                                                    setup.at,
                                                )
                                                .await;
                                            }
                                        }
                                        started.elapsed()
                                    })
                                })
                                .collect();
                            let started = Instant::now();
                            for task in tasks {
                                task.await.unwrap();
                            }
                            let elapsed = started.elapsed();
                            tally(writers, method, (writers * ROWS_PER_WRITER) as u64, elapsed);
                            total += elapsed;
                        }
                        total
                    }
                });
            });
        }
    }
    group.finish();
    summary();
}

fn summary() {
    let tally = TALLY.lock().unwrap();
    println!("\nrows/s (ratio to plain_insert with the same writers):");
    for ((writers, name), (rows, elapsed)) in tally.iter() {
        let rate = *rows as f64 / elapsed.as_secs_f64();
        let plain = tally
            .get(&(*writers, "plain_insert".to_owned()))
            .map(|(rows, elapsed)| *rows as f64 / elapsed.as_secs_f64());
        let ratio = plain.map_or(String::new(), |plain| {
            format!(" ({:.0} %)", 100.0 * rate / plain)
        });
        println!("  {writers} writer(s) {name:<22} {rate:>9.0}{ratio}");
    }
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
