//! Web access log ingest into SQLite, against the bare parse rate of the
//! same lines and a plain insert of the same rows through the same driver
//! into the same schema, in the same run.
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
//!
//! The closing summary prints lines/s of all three and the ratios. Keep
//! runs short: `cargo bench --bench ingest`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod plain;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, SamplingMode, Throughput};
use trailseal::ingest::{Follower, LineParser, LogFormat, ParseOptions};
use trailseal::{ManualClock, MemoryStore, SealingKey, SqliteStore, Store, Trail};

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

/// `LINES` realistic Combined Log Format lines, reproducibly.
fn access_log() -> Vec<u8> {
    const PATHS: [&str; 8] = [
        "/",
        "/index.php",
        "/shop/cart.php?item=4711&qty=2",
        "/wp-login.php",
        "/wp-content/themes/astra/style.css?ver=4.6.1",
        "/images/logo.png",
        "/kontakt/",
        "/api/v1/orders?page=3&sort=-date",
    ];
    const AGENTS: [&str; 4] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
    ];
    const STATUS: [(u16, &str); 5] = [
        (200, "GET"),
        (200, "GET"),
        (304, "GET"),
        (302, "POST"),
        (404, "GET"),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut roll = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut log = Vec::with_capacity(LINES * 220);
    for i in 0..LINES {
        let ip = if roll(5) == 0 {
            format!("2001:db8::{:x}", roll(0xffff))
        } else {
            format!("198.51.{}.{}", roll(256), roll(254) + 1)
        };
        let user = if roll(20) == 0 { "redaktion" } else { "-" };
        let (status, method) = STATUS[roll(STATUS.len())];
        let bytes = if status == 200 { roll(90_000) + 200 } else { 0 };
        let (minute, second) = (i / 60 % 60, i % 60);
        let referrer = match roll(3) {
            0 => "-",
            1 => "https://baeckerei-mueller.de/",
            _ => "https://www.google.com/",
        };
        writeln!(
            log,
            "{ip} - {user} [29/Nov/2026:08:{minute:02}:{second:02} +0100] \"{method} {} HTTP/1.1\" \
             {status} {bytes} \"{referrer}\" \"{}\"",
            PATHS[roll(PATHS.len())],
            AGENTS[roll(AGENTS.len())],
        )
        .unwrap();
    }
    log
}

fn options() -> ParseOptions {
    ParseOptions::default().default_domain("baeckerei-mueller.de")
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

async fn start_trail(store: Arc<dyn Store>) -> Trail {
    let (key, _) = SealingKey::generate("bench", start(), 900).unwrap();
    Trail::builder(LogFormat::WebAccess.trail(), store, Arc::new(key))
        .clock(Arc::new(ManualClock::new(start())))
        .start()
        .await
        .unwrap()
}

/// A log file in a temporary folder, and a fresh trailseal database next
/// to it.
async fn fresh_setup() -> (SqliteStore, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, b"").unwrap();
    (store, log, dir)
}

fn append(path: &std::path::Path, lines: &[u8], times: usize) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for _ in 0..times {
        file.write_all(lines).unwrap();
    }
    file.sync_all().unwrap();
}

/// The rows the follower writes for the log's lines: the lines sealed
/// once through a follower into memory.
async fn sealed_rows(log: &[u8]) -> plain::RowSource {
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
    plain::RowSource::new(&memory.dump(LogFormat::WebAccess.trail())[1..])
}

fn ingest(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let log = access_log();
    let mut group = c.benchmark_group("ingest/web_access");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(LINES as u64));

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
        let (store, _log, _dir) = runtime.block_on(fresh_setup());
        let pool = runtime.block_on(plain::pool(&store, 1));
        let mut source = runtime.block_on(sealed_rows(&log));
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

    group.bench_function("sealed_ingest", |b| {
        let (store, path, _dir) = runtime.block_on(fresh_setup());
        let trail = runtime.block_on(start_trail(Arc::new(store.clone())));
        let follower = runtime.block_on(async {
            Follower::builder(trail, Arc::new(store.clone()), &path, LogFormat::WebAccess)
                .options(options())
                .start()
                .await
                .unwrap()
        });
        let follower = Arc::new(tokio::sync::Mutex::new(follower));
        b.to_async(runtime).iter_custom(|iters| {
            // The servers wrote another `iters` times the lines.
            append(&path, &log, iters as usize);
            let follower = follower.clone();
            async move {
                let mut follower = follower.lock().await;
                let began = Instant::now();
                let sealed = follower.poll().await.unwrap();
                let elapsed = began.elapsed();
                assert_eq!(sealed, iters * LINES as u64, "one entry per line");
                tally("sealed_ingest", sealed, elapsed);
                elapsed
            }
        });
    });
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
    ] {
        if let Some(rate) = rate(name) {
            println!("  {name:<14} {rate:>10.0} lines/s");
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
    let mut criterion = Criterion::default().configure_from_args();
    ingest(&mut criterion, &runtime);
    criterion.final_summary();
    summary();
}
