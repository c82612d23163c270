//! A panel change with its audit entry, three ways, in the same run:
//!
//! - `panel_only`: the change alone (one transaction inserting one row):
//!   the baseline, what the panel pays without an audit trail;
//! - `group_commit`: the change's transaction, then `Trail::record` of the
//!   event through the group-commit writer (two commits, not atomic);
//! - `in_transaction`: the change and `record_in` of the event in one
//!   transaction (atomic; the trail's head is locked until the commit).
//!
//! With 1 and 8 concurrent callers, on SQLite (a file in a temporary
//! folder) and, when `TRAILSEAL_TEST_POSTGRES_URL` is set, on PostgreSQL:
//!
//! `scripts/with-postgres cargo bench --bench transaction -- --measurement-time 5 --warm-up-time 1`
//!
//! The closing summary prints changes/s and the ratio to `panel_only`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use trailseal::{
    Actor, Event, PostgresStore, SealingKey, SqliteStore, Store, Trail, write::TransactionRecorder,
};

/// Changes each caller makes per measured iteration.
const CHANGES_PER_CALLER: usize = 20;

/// Changes and time per (backend, callers, method), for the summary.
type Tally = BTreeMap<(String, usize, String), (u64, Duration)>;
static TALLY: Mutex<Tally> = Mutex::new(BTreeMap::new());
/// Makes every panel row unique across iterations.
static NEXT_ROW: AtomicU64 = AtomicU64::new(0);

enum Database {
    Sqlite(SqliteStore, SqlitePool),
    Postgres(PostgresStore, PgPool),
}

struct Setup {
    name: &'static str,
    database: Database,
    trail: Trail,
    recorder: TransactionRecorder,
}

fn event(row: u64) -> Event {
    Event::builder("database.create")
        .actor(Actor::customer(format!("kunde{}", row % 200)))
        .tenant(format!("kunde{}", row % 200))
        .target("database", format!("db_{row}"))
        .ip(std::net::IpAddr::from([198, 51, 100, (row % 250) as u8]))
        .request_id(format!("req-{row:08x}"))
        .build()
        .unwrap()
}

async fn setup(name: &'static str, database: Database) -> Setup {
    let (key, _) = SealingKey::generate("bench", Utc::now() - TimeDelta::minutes(1), 900).unwrap();
    let key = Arc::new(key);
    let store: Arc<dyn Store> = match &database {
        Database::Sqlite(store, _) => Arc::new(store.clone()),
        Database::Postgres(store, _) => Arc::new(store.clone()),
    };
    let trail = Trail::open("group-commit", store, key.clone())
        .await
        .unwrap();
    let recorder = TransactionRecorder::new("in-transaction", key).unwrap();
    Setup {
        name,
        database,
        trail,
        recorder,
    }
}

async fn sqlite() -> (Setup, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let panel = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .busy_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    sqlx::query("CREATE TABLE panel_databases (name TEXT PRIMARY KEY)")
        .execute(&panel)
        .await
        .unwrap();
    (setup("sqlite", Database::Sqlite(store, panel)).await, dir)
}

async fn postgres(url: &str) -> Setup {
    let store = PostgresStore::connect(url).await.unwrap();
    let panel = PgPool::connect(url).await.unwrap();
    sqlx::query("DROP TABLE IF EXISTS panel_databases")
        .execute(&panel)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE panel_databases (name TEXT PRIMARY KEY)")
        .execute(&panel)
        .await
        .unwrap();
    setup("postgres", Database::Postgres(store, panel)).await
}

/// One panel change the way `method` audits it.
async fn change(setup: &Setup, method: &str) {
    let row = NEXT_ROW.fetch_add(1, Ordering::Relaxed);
    let name = format!("db_{row}");
    match &setup.database {
        Database::Sqlite(store, panel) => {
            let mut tx = panel.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("INSERT INTO panel_databases (name) VALUES (?)")
                .bind(&name)
                .execute(&mut *tx)
                .await
                .unwrap();
            if method == "in_transaction" {
                store
                    .record_in(&mut tx, &setup.recorder, &event(row))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        Database::Postgres(store, panel) => {
            let mut tx = panel.begin().await.unwrap();
            sqlx::query("INSERT INTO panel_databases (name) VALUES ($1)")
                .bind(&name)
                .execute(&mut *tx)
                .await
                .unwrap();
            if method == "in_transaction" {
                store
                    .record_in(&mut tx, &setup.recorder, &event(row))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    if method == "group_commit" {
        setup.trail.record(event(row)).await.unwrap();
    }
}

fn bench_database(c: &mut Criterion, runtime: &tokio::runtime::Runtime, setup: Arc<Setup>) {
    let mut group = c.benchmark_group(format!("transaction_{}", setup.name));
    group.sample_size(10);
    for callers in [1usize, 8] {
        let changes = (callers * CHANGES_PER_CALLER) as u64;
        group.throughput(Throughput::Elements(changes));
        for method in ["panel_only", "group_commit", "in_transaction"] {
            let setup = setup.clone();
            group.bench_function(BenchmarkId::new(method, callers), |b| {
                b.to_async(runtime).iter_custom(|iters| {
                    let setup = setup.clone();
                    async move {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let tasks: Vec<_> = (0..callers)
                                .map(|_| {
                                    let setup = setup.clone();
                                    tokio::spawn(async move {
                                        for _ in 0..CHANGES_PER_CALLER {
                                            change(&setup, method).await;
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.unwrap();
                            }
                        }
                        let elapsed = started.elapsed();
                        let key = (setup.name.to_owned(), callers, method.to_owned());
                        let mut tally = TALLY.lock().unwrap();
                        let slot = tally.entry(key).or_default();
                        slot.0 += changes * iters;
                        slot.1 += elapsed;
                        elapsed
                    }
                });
            });
        }
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sqlite, _dir) = runtime.block_on(sqlite());
    bench_database(c, &runtime, Arc::new(sqlite));
    match std::env::var("TRAILSEAL_TEST_POSTGRES_URL") {
        Ok(url) => {
            let postgres = runtime.block_on(postgres(&url));
            bench_database(c, &runtime, Arc::new(postgres));
        }
        Err(_) => eprintln!(
            "no PostgreSQL: run under scripts/with-postgres (or set TRAILSEAL_TEST_POSTGRES_URL) to compare there too"
        ),
    }
    summary();
}

fn summary() {
    let tally = TALLY.lock().unwrap();
    println!("\nchanges/s (ratio to panel_only with the same callers; warm-up included):");
    for ((database, callers, method), (changes, elapsed)) in tally.iter() {
        let rate = *changes as f64 / elapsed.as_secs_f64();
        let baseline = tally
            .get(&(database.clone(), *callers, "panel_only".to_owned()))
            .map(|(changes, elapsed)| *changes as f64 / elapsed.as_secs_f64());
        let ratio = baseline.map_or(String::new(), |baseline| {
            format!(" ({:.0} %)", 100.0 * rate / baseline)
        });
        println!("  {database:<8} {callers} caller(s) {method:<15} {rate:>8.0}{ratio}");
    }
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
