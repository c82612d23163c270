//! Web access log ingest into SQLite and into PostgreSQL, against the bare
//! parse rate of the same lines and a plain insert of the same rows through
//! the same driver into the same schema, in the same run.
//!
//! - `bare_parse`: the lines parsed into events, nothing sealed or stored.
//! - `parse_and_seal`: the lines parsed and sealed (validation, body with
//!   salts and commitments, MAC) with a `Sealer`, nothing stored: the CPU
//!   work sealing adds to the insert.
//! - `plain_insert`: the sealed entries of the same lines, inserted as
//!   1,024-row INSERT statements, one transaction each, like the store
//!   (see `benches/sqlite_append.rs`).
//! - `sealed_ingest`: a `Follower` reading a real log file that grows by
//!   the same lines each iteration, sealing them into a `SqliteStore`.
//! - `postgres/plain_insert` and `postgres/sealed_ingest`: the same two
//!   into a `PostgresStore`, each in a new database of its own; the plain
//!   insert is one 1,024-row `UNNEST` statement per batch (see
//!   `benches/postgres_append.rs`).
//!
//! The PostgreSQL part needs a server it may create databases on, and is
//! skipped without one:
//!
//! ```text
//! scripts/with-postgres cargo bench --bench ingest
//! ```
//!
//! The closing summary prints lines/s of each and the ratios. How far a
//! follower falls behind a steady writer is `benches/ingest_lag.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod plain;
mod plain_postgres;
mod postgres_server;
mod web_log;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use sqlx::postgres::PgPoolOptions;
use trailseal::ingest::{Follower, LineParser, LogFormat};
use trailseal::store::PostgresStoreOptions;
use trailseal::{Entry, MemoryStore, SealingKey, SqliteStore, Store};
use web_log::{options, start, start_trail};

/// Lines per measured iteration: whole batches.
const LINES: usize = 20 * BATCH;
/// Rows per INSERT statement and transaction in the plain baseline; also
/// the follower's lines per batch (its default).
const BATCH: usize = 1024;

/// Lines and time measured per benchmark, for the closing summary.
static TALLY: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn tally(name: &'static str, lines: u64, elapsed: Duration) {
    let mut tally = TALLY.lock().unwrap();
    let entry = tally.entry(name).or_default();
    entry.0 += lines;
    entry.1 += elapsed;
}

fn append(path: &Path, lines: &[u8], times: usize) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for _ in 0..times {
        file.write_all(lines).unwrap();
    }
    file.sync_all().unwrap();
}

/// The rows the follower writes for the log's lines: the lines sealed
/// once through a follower into memory (the trail's genesis before them
/// and what its shutdown seals after them left out).
async fn sealed_rows(log: &[u8]) -> Vec<Entry> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, log).unwrap();
    let memory = MemoryStore::new();
    let trail = start_trail(Arc::new(memory.clone())).await;
    let mut follower = Follower::builder(
        trail.clone(),
        Arc::new(memory.clone()),
        &path,
        LogFormat::WebAccess,
    )
    .options(options())
    .start()
    .await
    .unwrap();
    assert_eq!(follower.poll().await.unwrap(), LINES as u64);
    trail.shutdown().await.unwrap();
    memory.dump(LogFormat::WebAccess.trail())[1..=LINES].to_vec()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(LINES as u64));
}

/// `sealed_ingest`: a follower of the log file at `path` (empty at first)
/// sealing into `store`; each iteration the file grows by `log` `iters`
/// times and one poll seals it all.
fn sealed_ingest(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
    store: Arc<dyn Store>,
    path: &Path,
    log: &[u8],
) {
    let follower = runtime.block_on(async {
        let trail = start_trail(store.clone()).await;
        Follower::builder(trail, store, path, LogFormat::WebAccess)
            .options(options())
            .start()
            .await
            .unwrap()
    });
    let follower = Arc::new(tokio::sync::Mutex::new(follower));
    group.bench_function("sealed_ingest", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            // The servers wrote another `iters` times the lines.
            append(path, log, iters as usize);
            let follower = follower.clone();
            async move {
                let mut follower = follower.lock().await;
                let began = Instant::now();
                let sealed = follower.poll().await.unwrap();
                let elapsed = began.elapsed();
                assert_eq!(sealed, iters * LINES as u64, "one entry per line");
                tally(name, sealed, elapsed);
                elapsed
            }
        });
    });
}

fn ingest(c: &mut Criterion, runtime: &tokio::runtime::Runtime, log: &[u8], rows: &[Entry]) {
    let mut group = c.benchmark_group("ingest/web_access");
    configure(&mut group);

    group.bench_function("bare_parse", |b| {
        let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
        b.iter_custom(|iters| {
            let mut parser = LineParser::new(LogFormat::WebAccess, options());
            let began = Instant::now();
            for _ in 0..iters {
                for line in &lines {
                    let line = line.strip_suffix(b"\n").unwrap_or(line);
                    std::hint::black_box(parser.parse(line));
                }
            }
            let elapsed = began.elapsed();
            tally("bare_parse", iters * LINES as u64, elapsed);
            elapsed
        });
    });

    // The CPU work sealing adds to each line, without storing: parse,
    // validate, build the body with its salts and commitments, MAC.
    group.bench_function("parse_and_seal", |b| {
        let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
        let (key, _) = SealingKey::generate("bench", start(), 900).unwrap();
        b.iter_custom(|iters| {
            let mut parser = LineParser::new(LogFormat::WebAccess, options());
            let mut sealer = key.sealer(LogFormat::WebAccess.trail(), 0, None).unwrap();
            let began = Instant::now();
            for _ in 0..iters {
                for line in &lines {
                    let line = line.strip_suffix(b"\n").unwrap_or(line);
                    let event = parser.parse(line).event;
                    std::hint::black_box(sealer.seal_event(&event, start()).unwrap());
                }
            }
            let elapsed = began.elapsed();
            tally("parse_and_seal", iters * LINES as u64, elapsed);
            elapsed
        });
    });

    group.bench_function("plain_insert", |b| {
        let (_log, dir) = web_log::empty_log();
        let store = runtime
            .block_on(SqliteStore::open(dir.path().join("trail.db")))
            .unwrap();
        let pool = runtime.block_on(plain::pool(&store, 1));
        let mut source = plain::RowSource::new(rows);
        let sql = plain::insert_sql(BATCH);
        b.to_async(runtime).iter_custom(|iters| {
            let batches: Vec<_> = (0..iters as usize * LINES / BATCH)
                .map(|_| source.rows(BATCH))
                .collect();
            let pool = pool.clone();
            let sql = sql.clone();
            async move {
                let elapsed = plain::insert_batches(&pool, &sql, batches).await;
                tally("plain_insert", iters * LINES as u64, elapsed);
                elapsed
            }
        });
    });

    let (path, dir) = web_log::empty_log();
    let store = runtime
        .block_on(SqliteStore::open(dir.path().join("trail.db")))
        .unwrap();
    sealed_ingest(
        &mut group,
        runtime,
        "sealed_ingest",
        Arc::new(store),
        &path,
        log,
    );
    group.finish();
}

/// The same rows and lines into PostgreSQL, each side in a new database.
fn ingest_postgres(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    log: &[u8],
    rows: &[Entry],
) {
    let Some(url) = postgres_server::server_url("ingest") else {
        return;
    };
    let mut group = c.benchmark_group("ingest/web_access_postgres");
    configure(&mut group);

    group.bench_function("plain_insert", |b| {
        let (pool, _store) = runtime.block_on(async {
            let url = postgres_server::fresh_database(&url).await;
            // The store creates the schema.
            let store = PostgresStoreOptions::from_url(&url)
                .unwrap()
                .open()
                .await
                .unwrap();
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            // The entries' partition of the rows' day, as the store's
            // append creates it.
            sqlx::query("SELECT trailseal_ensure_day($1)")
                .bind(start().date_naive())
                .execute(&pool)
                .await
                .unwrap();
            (pool, store)
        });
        let mut run = 0_u64;
        b.to_async(runtime).iter_custom(|iters| {
            // The same rows once per iteration, each time in a trail of
            // their own.
            let trails: Vec<Vec<Entry>> = (0..iters)
                .map(|_| {
                    run += 1;
                    plain_postgres::renamed(rows, &format!("plain-{run}"))
                })
                .collect();
            let pool = pool.clone();
            async move {
                let mut elapsed = Duration::ZERO;
                for rows in &trails {
                    elapsed += plain_postgres::insert(&pool, rows, BATCH).await;
                }
                tally("postgres/plain_insert", iters * LINES as u64, elapsed);
                elapsed
            }
        });
    });

    let (path, _dir) = web_log::empty_log();
    let store = runtime.block_on(async {
        let url = postgres_server::fresh_database(&url).await;
        PostgresStoreOptions::from_url(&url)
            .unwrap()
            .open()
            .await
            .unwrap()
    });
    sealed_ingest(
        &mut group,
        runtime,
        "postgres/sealed_ingest",
        Arc::new(store),
        &path,
        log,
    );
    group.finish();
}

fn summary() {
    let tally = TALLY.lock().unwrap();
    let rate = |name: &str| {
        tally
            .get(name)
            .map(|(lines, elapsed)| *lines as f64 / elapsed.as_secs_f64())
    };
    println!("\nsummary (all measured iterations, warm-up included):");
    for name in [
        "bare_parse",
        "parse_and_seal",
        "plain_insert",
        "sealed_ingest",
        "postgres/plain_insert",
        "postgres/sealed_ingest",
    ] {
        if let Some(rate) = rate(name) {
            println!("  {name:<22} {rate:>10.0} lines/s");
        }
    }
    if let (Some(parse), Some(plain), Some(sealed)) = (
        rate("bare_parse"),
        rate("plain_insert"),
        rate("sealed_ingest"),
    ) {
        println!(
            "  sealed ingest / plain insert {:>5.1} %   sealed ingest / bare parse {:>5.1} %",
            100.0 * sealed / plain,
            100.0 * sealed / parse
        );
    }
    if let (Some(plain), Some(sealed)) = (
        rate("postgres/plain_insert"),
        rate("postgres/sealed_ingest"),
    ) {
        println!(
            "  PostgreSQL: sealed ingest / plain insert {:>5.1} %",
            100.0 * sealed / plain
        );
    }
    // Without a spare core, sealing cannot overlap the insert: the rate
    // both cost one after the other.
    if let (Some(seal), Some(plain)) = (rate("parse_and_seal"), rate("plain_insert")) {
        let serial = 1.0 / (1.0 / seal + 1.0 / plain);
        println!(
            "  parse and seal, then insert, one after the other: {serial:>7.0} lines/s ({:>5.1} % of plain insert)",
            100.0 * serial / plain
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = web_log::access_log(LINES);
    let rows = runtime.block_on(sealed_rows(&log));
    let mut criterion = Criterion::default().configure_from_args();
    ingest(&mut criterion, &runtime, &log, &rows);
    ingest_postgres(&mut criterion, &runtime, &log, &rows);
    criterion.final_summary();
    summary();
}
