//! How far a follower falls behind a web server writing a steady 5,000
//! lines/s, into SQLite and into PostgreSQL: a measurement, not a
//! criterion benchmark.
//!
//! A writer thread appends web access log lines to a file, paced by the
//! wall clock: every 10 ms as many lines as bring it to 5,000 lines/s since
//! it started, for 10 s, without syncing (as a web server writes). Meanwhile
//! `Follower::follow` seals them, polling the file every 100 ms and, in a
//! second run, every 500 ms (the service's default). Every 100 ms a sampler
//! reads the trail's head from the store: the lines committed. Per run it
//! prints:
//!
//! - the lag in lines: lines written minus lines committed, at each sample
//!   while the writer runs (median, 99th percentile, maximum);
//! - the lag in time: how long the oldest line not yet committed at a
//!   sample had been written (0 when none is waiting);
//! - the trend of the lag in lines per second (least squares over the
//!   samples): a follower that keeps up has a lag that does not grow; here
//!   it keeps up when the trend is below 5 % of the writer's rate;
//! - how long after the writer's last line every line was committed.
//!
//! ```text
//! scripts/with-postgres cargo bench --bench ingest_lag
//! ```
//!
//! Without a PostgreSQL server only SQLite is measured.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod postgres_server;
mod web_log;

use chrono::TimeDelta;
use trailseal::ingest::{Follower, LogFormat};
use trailseal::store::PostgresStoreOptions;
use trailseal::{SqliteStore, Store};

/// The writer's rate, in lines per second.
const RATE: u64 = 5_000;
/// How often the writer writes.
const TICK: Duration = Duration::from_millis(10);
/// How long the writer writes.
const WRITING: Duration = Duration::from_secs(10);
/// How often the lag is sampled.
const SAMPLE: Duration = Duration::from_millis(100);
/// The follower's poll intervals measured, in milliseconds.
const POLL_INTERVALS_MS: [i64; 2] = [100, 500];
/// How long the follower may take to catch up after the writer stopped
/// before the run counts as failed.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// What the writer wrote: after each write, when (since the start) and how
/// many lines in all.
struct Written {
    at: Vec<(Duration, u64)>,
}

impl Written {
    /// When the line `line` (counted from 1) was written.
    fn time_of(&self, line: u64) -> Duration {
        let index = self.at.partition_point(|&(_, lines)| lines < line);
        self.at[index].0
    }

    fn lines(&self) -> u64 {
        self.at.last().map_or(0, |&(_, lines)| lines)
    }
}

/// Appends the lines of `log` (over and over) to the file at `path`,
/// `RATE` lines per second for `WRITING`, counting them in `written`.
fn write_steadily(path: &Path, log: &[u8], began: Instant, written: &AtomicU64) -> Written {
    let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut record = Written { at: Vec::new() };
    let mut total = 0_u64;
    let mut buffer = Vec::new();
    let ticks = WRITING.as_millis() / TICK.as_millis();
    for tick in 1..=ticks as u32 {
        let due = TICK * tick;
        if let Some(wait) = due.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
        // Paced by the clock: a late tick writes what the missed ones would
        // have.
        let target = RATE * due.as_millis() as u64 / 1000;
        buffer.clear();
        for line in total..target {
            buffer.extend_from_slice(lines[line as usize % lines.len()]);
        }
        file.write_all(&buffer).unwrap();
        total = target;
        // Timed before it is published, so that a sampler that sees the
        // lines finds them written no later than its own reading.
        record.at.push((began.elapsed(), total));
        written.store(total, Ordering::Release);
    }
    record
}

/// One sample: when (since the start), lines written, lines committed.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    written: u64,
    committed: u64,
}

/// What one run measured.
struct Run {
    store: &'static str,
    poll_ms: i64,
    written: u64,
    rate: f64,
    lag_lines: [u64; 3],
    lag_ms: [f64; 3],
    trend: f64,
    caught_up: Duration,
}

fn percentiles<T: Copy + PartialOrd>(mut values: Vec<T>) -> [T; 3] {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    [at(0.5), at(0.99), at(1.0)]
}

/// The slope of `y` over `x`, least squares.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    sxy / sxx
}

async fn committed(store: &dyn Store) -> u64 {
    // The genesis is seq 0; the n-th line, seq n.
    store
        .head(LogFormat::WebAccess.trail())
        .await
        .unwrap()
        .map_or(0, |head| head.seq)
}

/// Follows the empty log file at `path` into `store` while a writer fills
/// it, sampling the lag.
async fn measure(
    name: &'static str,
    store: Arc<dyn Store>,
    path: PathBuf,
    log: Arc<Vec<u8>>,
    poll_ms: i64,
) -> Run {
    let trail = web_log::start_trail(store.clone()).await;
    let mut follower = Follower::builder(trail.clone(), store.clone(), &path, LogFormat::WebAccess)
        .options(web_log::options())
        .start()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let following = tokio::spawn(async move {
        follower
            .follow(TimeDelta::milliseconds(poll_ms), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        follower
    });

    let written = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let writer = {
        let written = written.clone();
        std::thread::spawn(move || write_steadily(&path, &log, began, &written))
    };

    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(SAMPLE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let total = RATE * WRITING.as_millis() as u64 / 1000;
    let caught_up = loop {
        ticker.tick().await;
        let finished = writer.is_finished();
        let committed = committed(&*store).await;
        // Read after the head, so never fewer than committed.
        let written = written.load(Ordering::Acquire);
        let at = began.elapsed();
        if finished {
            if committed == total {
                break at;
            }
            assert!(
                at < WRITING + CATCH_UP_LIMIT,
                "{name}: the follower is stuck"
            );
        } else {
            samples.push(Sample {
                at,
                written,
                committed,
            });
        }
    };
    let record = writer.join().unwrap();
    let writer_done = record.at.last().unwrap().0;
    stop.send(()).unwrap();
    let follower = following.await.unwrap();
    assert_eq!(follower.stats().lines, record.lines(), "one entry per line");
    assert_eq!(committed(&*store).await, record.lines());
    trail.shutdown().await.unwrap();

    let lag_lines = samples.iter().map(|s| s.written - s.committed).collect();
    let lag_ms = samples
        .iter()
        .map(|s| {
            if s.committed < s.written {
                s.at.saturating_sub(record.time_of(s.committed + 1))
                    .as_secs_f64()
                    * 1e3
            } else {
                0.0
            }
        })
        .collect();
    let trend = slope(
        &samples
            .iter()
            .map(|s| (s.at.as_secs_f64(), (s.written - s.committed) as f64))
            .collect::<Vec<_>>(),
    );
    Run {
        store: name,
        poll_ms,
        written: record.lines(),
        rate: record.lines() as f64 / writer_done.as_secs_f64(),
        lag_lines: percentiles(lag_lines),
        lag_ms: percentiles(lag_ms),
        trend,
        caught_up: caught_up.saturating_sub(writer_done),
    }
}

fn print(runs: &[Run]) {
    println!(
        "\n{:<10} {:>5} {:>8} {:>8} {:>23} {:>23} {:>9} {:>10} {:>6}",
        "store",
        "poll",
        "written",
        "lines/s",
        "lag p50/p99/max, lines",
        "lag p50/p99/max, ms",
        "trend/s",
        "caught up",
        "keeps",
    );
    for run in runs {
        let [l50, l99, lmax] = run.lag_lines;
        let [m50, m99, mmax] = run.lag_ms;
        let keeps_up = run.trend < 0.05 * RATE as f64;
        println!(
            "{:<10} {:>3}ms {:>8} {:>8.0} {:>23} {:>23} {:>9.0} {:>8}ms {:>6}",
            run.store,
            run.poll_ms,
            run.written,
            run.rate,
            format!("{l50}/{l99}/{lmax}"),
            format!("{m50:.0}/{m99:.0}/{mmax:.0}"),
            run.trend,
            run.caught_up.as_millis(),
            if keeps_up { "yes" } else { "no" },
        );
    }
}

/// A new database of each kind measured, each with an empty log file in a
/// temporary folder.
async fn stores(
    postgres: Option<&str>,
) -> Vec<(&'static str, Arc<dyn Store>, PathBuf, tempfile::TempDir)> {
    let (path, dir) = web_log::empty_log();
    let sqlite = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    let mut stores: Vec<(&'static str, Arc<dyn Store>, PathBuf, tempfile::TempDir)> =
        vec![("SQLite", Arc::new(sqlite), path, dir)];
    if let Some(url) = postgres {
        let (path, dir) = web_log::empty_log();
        let url = postgres_server::fresh_database(url).await;
        let store = PostgresStoreOptions::from_url(&url)
            .unwrap()
            .open()
            .await
            .unwrap();
        stores.push(("PostgreSQL", Arc::new(store), path, dir));
    }
    stores
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(web_log::access_log(20 * 1024));
    let postgres = postgres_server::server_url("ingest_lag");
    let mut runs = Vec::new();
    for poll_ms in POLL_INTERVALS_MS {
        for (name, store, path, _dir) in runtime.block_on(stores(postgres.as_deref())) {
            runs.push(runtime.block_on(measure(name, store, path, log.clone(), poll_ms)));
        }
    }
    print(&runs);
}
