//! Verification throughput against the plain read of the same entries and
//! the bare HMAC-SHA256 over the same bytes, in one run, with 1 and 2
//! threads.
//!
//! - `verify/sqlite_rows`: the plain read of every stored column through
//!   sqlx, row by row (the driver's floor).
//! - `verify/sqlite_scan`: `SqliteStore::scan`, read and decoded into
//!   entries (what exports, replays and queries read).
//! - `verify/sqlite_scan_stored`: `SqliteStore::scan_stored`, the same with
//!   the query columns and the restriction flag, the copies compared with
//!   the bodies (what verification reads).
//! - `verify/sqlite_{1,2}_threads`: read, decode and verify from SQLite.
//! - `verify/jsonl_read`: read and decode the JSON Lines export.
//! - `verify/jsonl_parse_floor`: read the export and let serde_json check
//!   every line without building anything (`IgnoredAny`): the floor of any
//!   decoding of the export with this parser.
//! - `verify/jsonl_{1,2}_threads`: read, decode and verify the export.
//! - `verify/memory_{1,2}_threads`: verify from a `MemoryStore`.
//! - `verify/bare_hmac`: HMAC-SHA256 over every entry's MAC input.
//!
//! `verify_bytes` repeats the SQLite and JSONL runs with the input size as
//! throughput: the JSONL file, and the stored columns for SQLite.
//!
//! Thread counts limit the rayon pool the verifier runs on; SQLite rows
//! are still read on the driver's own thread.

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use sqlx::Row;
use trailseal::{
    Actor, Event, ManualClock, MemoryStore, SealingKey, SqliteStore, Store, Trail, VerificationKey,
    Verifier,
    read::JsonLinesReader,
    store::{SqliteStoreOptions, SqliteSync},
};

const ENTRIES: usize = 50_000;

struct Fixture {
    _dir: tempfile::TempDir,
    memory: MemoryStore,
    sqlite: SqliteStore,
    sqlite_pool: sqlx::SqlitePool,
    sqlite_bytes: u64,
    verification: VerificationKey,
    jsonl: std::path::PathBuf,
    jsonl_bytes: u64,
}

fn fixture(runtime: &tokio::runtime::Runtime) -> Fixture {
    runtime.block_on(async {
        let start = Utc
            .with_ymd_and_hms(2026, 11, 29, 8, 0, 0)
            .single()
            .expect("valid time");
        let clock = ManualClock::new(start);
        let (sealing, verification) = SealingKey::generate("bench", start, 900).expect("key");
        let memory = MemoryStore::new();
        let trail = Trail::builder("admin", Arc::new(memory.clone()), Arc::new(sealing))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .expect("trail");
        for batch in 0..ENTRIES / 100 {
            let events = (batch * 100..(batch + 1) * 100)
                .map(|i| {
                    Event::builder("database.create")
                        .actor(Actor::customer(format!("kunde{}", i % 100)))
                        .tenant(format!("kunde{}", i % 100))
                        .target("database", format!("db{i}"))
                        .ip([192, 0, 2, (i % 250) as u8].into())
                        .user_agent(
                            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                        )
                        .meta("size_mb", 100)
                        .build()
                        .expect("valid event")
                })
                .collect();
            trail.record_batch(events).await.expect("recorded");
            clock.advance(TimeDelta::seconds(5));
        }
        trail.seal_finished_epochs().await.expect("sealed");
        trail.shutdown().await.expect("shut down");

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("trail.db");
        let sqlite = SqliteStoreOptions::new(&path)
            .sync(SqliteSync::Normal)
            .open()
            .await
            .expect("sqlite");
        let entries = memory.dump("admin");
        let mut after = None;
        for chunk in entries.chunks(1000) {
            sqlite.append("admin", after, chunk).await.expect("copied");
            after = chunk.last().map(|entry| entry.seq);
        }
        let sqlite_pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
            .await
            .expect("pool");
        let sqlite_bytes: i64 = sqlx::query_scalar(
            "SELECT sum(length(trail) + length(key_id) + length(kind) + length(body) \
             + length(prev_mac) + length(body_commitment) + length(mac) + 24) FROM entries",
        )
        .fetch_one(&sqlite_pool)
        .await
        .expect("size");

        let jsonl = dir.path().join("trail.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&jsonl).expect("create"));
        trailseal::read::export_json_lines(&memory, &[], &mut out)
            .await
            .expect("exported");
        drop(out);
        let jsonl_bytes = std::fs::metadata(&jsonl).expect("metadata").len();
        Fixture {
            _dir: dir,
            memory,
            sqlite,
            sqlite_pool,
            sqlite_bytes: sqlite_bytes as u64,
            verification,
            jsonl,
            jsonl_bytes,
        }
    })
}

fn key_copy(key: &VerificationKey) -> VerificationKey {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("verification.key");
    key.save(&path).expect("saved");
    VerificationKey::load(&path).expect("loaded")
}

struct Runs<'a> {
    runtime: &'a tokio::runtime::Runtime,
    fixture: &'a Fixture,
    verifier: Verifier,
    entries: usize,
    pools: Vec<(usize, rayon::ThreadPool)>,
}

impl Runs<'_> {
    fn jsonl_file(&self) -> BufReader<std::fs::File> {
        BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(&self.fixture.jsonl).expect("open"),
        )
    }

    fn open_jsonl(&self) -> JsonLinesReader<BufReader<std::fs::File>> {
        JsonLinesReader::new(self.jsonl_file())
    }

    fn jsonl_parse_floor(&self) -> usize {
        let mut file = self.jsonl_file();
        let mut line = String::new();
        let mut count = 0;
        while file.read_line(&mut line).expect("read") > 0 {
            let checked: serde::de::IgnoredAny = serde_json::from_str(&line).expect("JSON");
            std::hint::black_box(checked);
            line.clear();
            count += 1;
        }
        count
    }

    fn sqlite_rows(&self) -> usize {
        self.runtime.block_on(async {
            let mut rows = sqlx::query(
                "SELECT trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
                 body_commitment, mac FROM entries WHERE trail = ? ORDER BY seq",
            )
            .bind("admin")
            .fetch(&self.fixture.sqlite_pool);
            let mut count = 0;
            while let Some(row) = rows.next().await {
                let row = row.expect("row");
                let body: &str = row.get(6);
                std::hint::black_box(body);
                count += 1;
            }
            count
        })
    }

    fn sqlite_scan(&self) -> usize {
        self.runtime.block_on(async {
            let mut entries = self.fixture.sqlite.scan("admin", 0);
            let mut count = 0;
            while let Some(entry) = entries.next().await {
                std::hint::black_box(entry.expect("entry"));
                count += 1;
            }
            count
        })
    }

    fn sqlite_scan_stored(&self) -> usize {
        self.runtime.block_on(async {
            let mut entries = self.fixture.sqlite.scan_stored("admin", 0);
            let mut count = 0;
            while let Some(stored) = entries.next().await {
                let stored = stored.expect("entry");
                assert!(stored.mismatched_copies.is_empty());
                std::hint::black_box(stored);
                count += 1;
            }
            count
        })
    }

    fn verify_sqlite(&self, pool: &rayon::ThreadPool) {
        pool.install(|| {
            let report = self
                .runtime
                .block_on(self.verifier.verify_trail(&self.fixture.sqlite, "admin"))
                .expect("verified");
            assert!(report.is_intact());
            assert_eq!(report.entries as usize, self.entries);
        })
    }

    fn verify_jsonl(&self, pool: &rayon::ThreadPool) {
        pool.install(|| {
            let reports = self
                .verifier
                .verify_entries(self.open_jsonl(), &[])
                .expect("verified");
            assert!(reports[0].is_intact());
            assert_eq!(reports[0].entries as usize, self.entries);
        })
    }

    fn sqlite_and_jsonl(&self, group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        group.bench_function("sqlite_rows", |b| b.iter(|| self.sqlite_rows()));
        group.bench_function("sqlite_scan", |b| b.iter(|| self.sqlite_scan()));
        group.bench_function("sqlite_scan_stored", |b| {
            b.iter(|| self.sqlite_scan_stored())
        });
        for (threads, pool) in &self.pools {
            group.bench_function(format!("sqlite_{threads}_threads"), |b| {
                b.iter(|| self.verify_sqlite(pool))
            });
        }
        group.bench_function("jsonl_read", |b| {
            b.iter(|| {
                self.open_jsonl().fold(0usize, |count, entry| {
                    std::hint::black_box(entry.expect("entry"));
                    count + 1
                })
            })
        });
        group.bench_function("jsonl_parse_floor", |b| b.iter(|| self.jsonl_parse_floor()));
        for (threads, pool) in &self.pools {
            group.bench_function(format!("jsonl_{threads}_threads"), |b| {
                b.iter(|| self.verify_jsonl(pool))
            });
        }
    }
}

fn bench_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = fixture(&runtime);
    let entries = fixture.memory.dump("admin");
    let runs = Runs {
        runtime: &runtime,
        fixture: &fixture,
        verifier: Verifier::new(key_copy(&fixture.verification)),
        entries: entries.len(),
        pools: [1, 2]
            .into_iter()
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool");
                (threads, pool)
            })
            .collect(),
    };

    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(entries.len() as u64));
    runs.sqlite_and_jsonl(&mut group);
    for (threads, pool) in &runs.pools {
        group.bench_function(format!("memory_{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let report = runtime
                        .block_on(runs.verifier.verify_trail(&fixture.memory, "admin"))
                        .expect("verified");
                    assert!(report.is_intact());
                })
            })
        });
    }
    let inputs: Vec<Vec<u8>> = entries
        .iter()
        .map(|entry| entry.mac_input(trailseal::model::FORMAT_VERSION).to_bytes())
        .collect();
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).expect("any key length");
    group.bench_function("bare_hmac", |b| {
        b.iter(|| {
            for input in &inputs {
                let mut mac = keyed.clone();
                mac.update(input);
                std::hint::black_box(mac.finalize());
            }
        })
    });
    group.finish();

    let mut bytes = c.benchmark_group("verify_bytes");
    bytes.sample_size(10);
    bytes.throughput(Throughput::Bytes(fixture.sqlite_bytes));
    bytes.bench_function("sqlite_2_threads", |b| {
        b.iter(|| runs.verify_sqlite(&runs.pools[1].1))
    });
    bytes.throughput(Throughput::Bytes(fixture.jsonl_bytes));
    bytes.bench_function("jsonl_2_threads", |b| {
        b.iter(|| runs.verify_jsonl(&runs.pools[1].1))
    });
    bytes.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
