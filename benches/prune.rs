//! Pruning expired entries on SQLite and PostgreSQL: how long a retention
//! run takes, and what it does to the append latency of writers running at
//! the same time.
//!
//! A trail (`web`) is filled with N events spread over three days, all
//! older than seven days at the time of the run, so that
//! `enforce_retention_at(&MaxAge::days(7), now)` deletes every one of them
//! (in ranges of at most `MAX_PRUNED_RANGE` entries, split by the hourly
//! epoch seals). The trail is filled once per backend; each measured
//! iteration works on a fresh copy (a file copy for SQLite,
//! `CREATE DATABASE … TEMPLATE` for PostgreSQL), so only the run itself is
//! timed.
//!
//! During each iteration two writers record one event every
//! `PROBE_INTERVAL`, each waiting for its commit: one on the pruned trail,
//! one on another trail (`mail`) of the same store. Their latencies are
//! collected first for `BASELINE_WINDOW` without a run (the baseline, on
//! the same copy), then during the run. The closing summary prints the
//! run's duration and entries/s, and p50 / p99 / max of both writers with
//! and without a run.
//!
//! ```text
//! scripts/with-postgres cargo bench --bench prune
//! TRAILSEAL_PRUNE_ENTRIES=1000000 scripts/with-postgres cargo bench --bench prune -- --test
//! ```
//!
//! Without `TRAILSEAL_TEST_POSTGRES_URL` only SQLite is measured. Criterion
//! takes ten samples of each backend; for a single run of each (at 1 M
//! entries, say), add `-- --test`: the summary still prints its figures.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sqlx::{Connection, PgConnection};
use trailseal::retention::MaxAge;
use trailseal::{
    Actor, Event, ManualClock, PostgresStore, SealingKey, SqliteStore, Store, Trail,
    VerificationKey, Verifier,
};

/// Entries to fill and prune, unless `TRAILSEAL_PRUNE_ENTRIES` says otherwise.
const DEFAULT_ENTRIES: usize = 100_000;
const ENTRIES_VARIABLE: &str = "TRAILSEAL_PRUNE_ENTRIES";
const POSTGRES_VARIABLE: &str = "TRAILSEAL_TEST_POSTGRES_URL";

const TRAIL: &str = "web";
const OTHER_TRAIL: &str = "mail";
const EPOCH_SECONDS: u64 = 3600;
/// Events per `record_batch` call while filling.
const FILL_BATCH: usize = 1000;
/// The filled events span this many days.
const FILL_DAYS: i64 = 3;
/// The retention policy's age.
const MAX_AGE_DAYS: i64 = 7;

/// Each probing writer records one event this often.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// How long the writers are measured without a run, per iteration.
const BASELINE_WINDOW: Duration = Duration::from_secs(3);

/// Backend, writer and window (with or without a run) of a latency.
type Probe = (String, &'static str, &'static str);

/// Append latencies per probe, and run durations per backend, over all
/// iterations (warm-up included), for the summary.
static LATENCIES: Mutex<BTreeMap<Probe, Vec<Duration>>> = Mutex::new(BTreeMap::new());
static RUNS: Mutex<BTreeMap<String, Vec<Duration>>> = Mutex::new(BTreeMap::new());

fn entries() -> usize {
    match std::env::var(ENTRIES_VARIABLE) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{ENTRIES_VARIABLE} must be a number, not {value:?}")),
        Err(_) => DEFAULT_ENTRIES,
    }
}

fn first_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
}

/// The time of the run: an hour after the youngest filled event turned
/// seven days old.
fn run_at() -> DateTime<Utc> {
    first_day() + chrono::Duration::days(FILL_DAYS + MAX_AGE_DAYS) + chrono::Duration::hours(1)
}

fn event(i: usize) -> Event {
    Event::builder("web.request")
        .actor(Actor::customer(format!("user{}", i % 50)))
        .tenant(format!("kunde{}", i % 200))
        .target("domain", format!("shop{}.example.org", i % 200))
        .ip(IpAddr::from([198, 51, 100, (i % 250) as u8]))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        .request_id(format!("req-{i:08x}"))
        .meta("status", 200)
        .meta("bytes", (i * 7919 % 500_000) as i64)
        .build()
        .unwrap()
}

/// Fills the `web` trail of `store` with `count` events spread over
/// `FILL_DAYS`, in atomic batches of `FILL_BATCH`, and seals every epoch up
/// to the run's time, as a trail that was written to all along would be.
async fn fill(store: Arc<dyn Store>, key: Arc<SealingKey>, count: usize) {
    let clock = ManualClock::new(first_day());
    let trail = Trail::builder(TRAIL, store, key)
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let batches = count.div_ceil(FILL_BATCH);
    let step = chrono::Duration::days(FILL_DAYS) / batches as i32;
    let started = Instant::now();
    for batch in 0..batches {
        clock.set(first_day() + step * batch as i32);
        let first = batch * FILL_BATCH;
        let events = (first..count.min(first + FILL_BATCH)).map(event).collect();
        trail.record_batch(events).await.unwrap();
    }
    clock.set(run_at());
    trail.seal_finished_epochs().await.unwrap();
    trail.shutdown().await.unwrap();
    eprintln!(
        "prune: filled {count} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A filled trail, the key that sealed it, and fresh copies of it.
struct Template {
    origin: Origin,
    key: Arc<SealingKey>,
    verifier: Verifier,
}

/// Where the filled trail is kept.
enum Origin {
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        url: String,
        database: String,
    },
}

/// One copy of the filled trail, open.
enum Working {
    Sqlite(SqliteStore),
    Postgres {
        store: PostgresStore,
        url: String,
        database: String,
    },
}

/// A new sealing key for a trail filled from `first_day`. Each template
/// needs its own: filling evolves the key past the days it fills.
fn new_key() -> (Arc<SealingKey>, VerificationKey) {
    let (key, verification) = SealingKey::generate("bench", first_day(), EPOCH_SECONDS).unwrap();
    (Arc::new(key), verification)
}

impl Template {
    async fn sqlite(count: usize) -> Self {
        let (key, verification) = new_key();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.db");
        let store = SqliteStore::open(&path).await.unwrap();
        fill(Arc::new(store.clone()), key.clone(), count).await;
        // Closing folds the WAL into the file, so the file alone is the copy.
        store.close().await;
        Self {
            origin: Origin::Sqlite { dir, path },
            key,
            verifier: Verifier::new(verification),
        }
    }

    async fn postgres(url: &str, count: usize) -> Self {
        let (key, verification) = new_key();
        let database = format!("trailseal_prune_{}", uuid::Uuid::new_v4().simple());
        admin(url, &format!("CREATE DATABASE {database}")).await;
        let store = PostgresStore::connect(&with_database(url, &database))
            .await
            .unwrap();
        fill(Arc::new(store.clone()), key.clone(), count).await;
        // A template must have no connections while it is copied.
        store.close().await;
        Self {
            origin: Origin::Postgres {
                url: url.to_owned(),
                database,
            },
            key,
            verifier: Verifier::new(verification),
        }
    }

    fn backend(&self) -> &'static str {
        match self.origin {
            Origin::Sqlite { .. } => "sqlite",
            Origin::Postgres { .. } => "postgres",
        }
    }

    async fn copy(&self, n: usize) -> Working {
        match &self.origin {
            Origin::Sqlite { dir, path } => {
                let copy = dir.path().join(format!("copy-{n}.db"));
                std::fs::copy(path, &copy).unwrap();
                // On disk now, so that writing the copy back does not slow
                // down the baseline's appends.
                std::fs::File::open(&copy).unwrap().sync_all().unwrap();
                Working::Sqlite(SqliteStore::open(&copy).await.unwrap())
            }
            Origin::Postgres { url, database } => {
                let copy = format!("{database}_{n}");
                // FILE_COPY checkpoints before and after the copy, while
                // this setup waits, instead of writing the whole database
                // into the WAL for a checkpoint during the measured run.
                admin(
                    url,
                    &format!("CREATE DATABASE {copy} TEMPLATE {database} STRATEGY FILE_COPY"),
                )
                .await;
                let store = PostgresStore::connect(&with_database(url, &copy))
                    .await
                    .unwrap();
                Working::Postgres {
                    store,
                    url: url.clone(),
                    database: copy,
                }
            }
        }
    }

    async fn remove(self) {
        if let Origin::Postgres { url, database } = self.origin {
            admin(&url, &format!("DROP DATABASE {database}")).await;
        }
    }
}

impl Working {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Working::Sqlite(store) => Arc::new(store.clone()),
            Working::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    async fn remove(self) {
        match self {
            Working::Sqlite(store) => {
                store.close().await;
                let path = store.path().to_owned();
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(Path::new(&file));
                }
            }
            Working::Postgres {
                store,
                url,
                database,
            } => {
                store.close().await;
                admin(&url, &format!("DROP DATABASE {database}")).await;
            }
        }
    }
}

/// Runs one statement on the server's maintenance database. Only names made
/// here from UUIDs and counters go into it.
async fn admin(url: &str, sql: &str) {
    let mut connection = PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

/// Writers that record one event every `PROBE_INTERVAL` and note how long
/// each commit took.
struct Probes {
    stop: Arc<AtomicBool>,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<Vec<Duration>>)>,
}

impl Probes {
    fn start(writers: &[(&'static str, Trail)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = writers
            .iter()
            .map(|(name, trail)| {
                let (trail, stop) = (trail.clone(), stop.clone());
                let task = tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    for i in 0.. {
                        ticks.tick().await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let started = Instant::now();
                        trail.record(event(i)).await.unwrap();
                        latencies.push(started.elapsed());
                    }
                    latencies
                });
                (*name, task)
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self, backend: &str, window: &'static str) {
        self.stop.store(true, Ordering::Relaxed);
        for (writer, task) in self.tasks {
            let latencies = task.await.unwrap();
            LATENCIES
                .lock()
                .unwrap()
                .entry((backend.to_owned(), writer, window))
                .or_default()
                .extend(latencies);
        }
    }
}

/// One iteration on a fresh copy: the writers' baseline, then the run with
/// the writers going. Returns the run's duration.
async fn iteration(template: &Template, n: usize, count: usize) -> Duration {
    let backend = template.backend();
    let copy = template.copy(n).await;
    let store = copy.store();
    let clock = Arc::new(ManualClock::new(run_at()));
    let web = Trail::builder(TRAIL, store.clone(), template.key.clone())
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let (other_key, _) = SealingKey::generate("other", run_at(), EPOCH_SECONDS).unwrap();
    let mail = Trail::builder(OTHER_TRAIL, store.clone(), Arc::new(other_key))
        .clock(clock)
        .start()
        .await
        .unwrap();
    let writers = [("same trail", web.clone()), ("other trail", mail.clone())];

    let probes = Probes::start(&writers);
    tokio::time::sleep(BASELINE_WINDOW).await;
    probes.stop(backend, "idle").await;

    let probes = Probes::start(&writers);
    let started = Instant::now();
    let run = web
        .enforce_retention_at(&MaxAge::days(MAX_AGE_DAYS), run_at())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    probes.stop(backend, "pruning").await;

    assert_eq!(run.deleted, count as u64, "every filled event expired");
    let report = template
        .verifier
        .verify_trail(store.as_ref(), TRAIL)
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.pruned, count as u64);

    web.shutdown().await.unwrap();
    mail.shutdown().await.unwrap();
    drop(store);
    copy.remove().await;
    RUNS.lock()
        .unwrap()
        .entry(backend.to_owned())
        .or_default()
        .push(elapsed);
    elapsed
}

fn bench_backend(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    template: &Template,
    count: usize,
) {
    let mut group = c.benchmark_group("prune");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(count as u64));
    let mut copies = 0;
    group.bench_function(BenchmarkId::new(template.backend(), count), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let first = copies;
            copies += iters as usize;
            async move {
                let mut total = Duration::ZERO;
                for n in first..first + iters as usize {
                    total += iteration(template, n, count).await;
                }
                total
            }
        });
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let count = entries();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let template = runtime.block_on(Template::sqlite(count));
    bench_backend(c, &runtime, &template, count);
    runtime.block_on(template.remove());

    match std::env::var(POSTGRES_VARIABLE) {
        Ok(url) if !url.is_empty() => {
            let template = runtime.block_on(Template::postgres(&url, count));
            bench_backend(c, &runtime, &template, count);
            runtime.block_on(template.remove());
        }
        _ => eprintln!(
            "prune: {POSTGRES_VARIABLE} is not set, so PostgreSQL is not measured; \
             run `scripts/with-postgres cargo bench --bench prune`"
        ),
    }
    summary(count);
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn summary(count: usize) {
    println!("\nretention run, N = {count} expired entries (all iterations, warm-up included):");
    println!(
        "  {:<9} {:>5} {:>12} {:>14}",
        "backend", "runs", "mean run s", "entries/s"
    );
    for (backend, runs) in RUNS.lock().unwrap().iter() {
        let mean = runs.iter().sum::<Duration>() / runs.len() as u32;
        println!(
            "  {backend:<9} {:>5} {:>12.2} {:>14.0}",
            runs.len(),
            mean.as_secs_f64(),
            count as f64 / mean.as_secs_f64()
        );
    }
    println!(
        "\nappend latency of a writer recording one event every {} ms (ms):",
        PROBE_INTERVAL.as_millis()
    );
    println!(
        "  {:<9} {:<12} {:<8} {:>7} {:>8} {:>8} {:>8}",
        "backend", "writer", "window", "events", "p50", "p99", "max"
    );
    for ((backend, writer, window), latencies) in LATENCIES.lock().unwrap().iter_mut() {
        if latencies.is_empty() {
            continue;
        }
        latencies.sort();
        println!(
            "  {backend:<9} {writer:<12} {window:<8} {:>7} {:>8.2} {:>8.2} {:>8.2}",
            latencies.len(),
            millis(percentile(latencies, 0.50)),
            millis(percentile(latencies, 0.99)),
            millis(*latencies.last().unwrap()),
        );
    }
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
