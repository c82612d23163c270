//! Verification throughput against the plain read of the same entries and
//! the bare HMAC-SHA256 over the same bytes, in one run, with 1 and 2
//! threads.
//!
//! - `verify/jsonl_read`: read and decode the JSON Lines export (the floor
//!   for verifying it).
//! - `verify/jsonl_{1,2}_threads`: read, decode and verify the export.
//! - `verify/memory_{1,2}_threads`: verify from a `MemoryStore`.
//! - `verify/bare_hmac`: HMAC-SHA256 over every entry's MAC input.

use std::io::BufReader;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use trailseal::{
    Actor, Event, JsonLinesReader, ManualClock, MemoryStore, SealingKey, Trail, VerificationKey,
    Verifier,
};

const ENTRIES: usize = 50_000;

struct Fixture {
    store: MemoryStore,
    verification: VerificationKey,
    jsonl: tempfile::NamedTempFile,
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
        let store = MemoryStore::new();
        let trail = Trail::builder("admin", Arc::new(store.clone()), Arc::new(sealing))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .expect("trail");
        for i in 0..ENTRIES {
            let event = Event::builder("database.create")
                .actor(Actor::customer(format!("kunde{}", i % 100)))
                .tenant(format!("kunde{}", i % 100))
                .target("database", format!("db{i}"))
                .ip([192, 0, 2, (i % 250) as u8].into())
                .user_agent(
                    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                )
                .meta("size_mb", 100)
                .build()
                .expect("valid event");
            trail.record(event).await.expect("recorded");
            clock.advance(TimeDelta::milliseconds(50));
        }
        trail.seal_finished_epochs().await.expect("sealed");
        let mut jsonl = tempfile::NamedTempFile::new().expect("temp file");
        trailseal::export_json_lines(&store, &[], jsonl.as_file_mut())
            .await
            .expect("exported");
        let jsonl_bytes = jsonl.as_file().metadata().expect("metadata").len();
        Fixture {
            store,
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

fn bench_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = fixture(&runtime);
    let verifier = Verifier::new(key_copy(&fixture.verification));
    let entries = fixture.store.dump("admin");
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            (threads, pool)
        })
        .collect();

    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(entries.len() as u64));
    let open = || {
        BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(fixture.jsonl.path()).expect("open"),
        )
    };
    group.bench_function("jsonl_read", |b| {
        b.iter(|| {
            JsonLinesReader::new(open()).fold(0usize, |count, entry| {
                std::hint::black_box(entry.expect("entry"));
                count + 1
            })
        })
    });
    for (threads, pool) in &pools {
        group.bench_function(format!("jsonl_{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let reports = verifier
                        .verify_entries(JsonLinesReader::new(open()), &[])
                        .expect("verified");
                    assert!(reports[0].is_intact());
                })
            })
        });
        group.bench_function(format!("memory_{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let report = runtime
                        .block_on(verifier.verify_trail(&fixture.store, "admin"))
                        .expect("verified");
                    assert!(report.is_intact());
                })
            })
        });
    }
    let inputs: Vec<Vec<u8>> = entries
        .iter()
        .map(|entry| entry.mac_input().to_bytes())
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
    bytes.throughput(Throughput::Bytes(fixture.jsonl_bytes));
    bytes.bench_function("jsonl_2_threads", |b| {
        b.iter(|| {
            pools[1].1.install(|| {
                verifier
                    .verify_entries(JsonLinesReader::new(open()), &[])
                    .expect("verified")
            })
        })
    });
    bytes.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
