//! Sealing throughput against the bare hashing it is built on, in one run.
//!
//! - `seal/event`: validate an event, build its body with fresh salts,
//!   commit every personal field and the body, and MAC the entry.
//! - `seal/bare_hashes`: only the SHA-256 and HMAC-SHA256 computations over
//!   the very same bytes (precomputed), with a pre-keyed HMAC state: the
//!   floor sealing cannot go below.
//! - `seal/bare_hmac_256b`: one HMAC-SHA256 over 256 bytes, for reference.
//! - `trail/record_1000`: 1000 concurrent `Trail::record` calls through the
//!   group-commit writer into a `MemoryStore`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac as _};
use sha2::{Digest as _, Sha256};
use trailseal::{Actor, Event, Field, MemoryStore, SealingKey, Trail};

fn sample_event() -> Event {
    Event::builder("database.create")
        .actor(Actor::customer("kunde123"))
        .tenant("kunde123")
        .target("database", "abc456")
        .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 17)))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .request_id("req-6f1c2a")
        .meta("size_mb", 100)
        .build()
        .expect("valid event")
}

fn bench_seal(c: &mut Criterion) {
    let now = Utc::now();
    let (sealing, _) = SealingKey::generate("bench", now, 900).expect("key");
    let event = sample_event();
    let mut sealer = sealing.sealer("admin", 0, None).expect("sealer");
    let entry = sealer.seal_event(&event, now).expect("sealed");

    // The exact bytes sealing hashes, computed once.
    let field_inputs: Vec<Vec<u8>> = entry
        .body
        .iter()
        .filter_map(|(name, field)| match field {
            Field::Personal { value, salt } => {
                let mut input = b"trailseal/v1/field".to_vec();
                input.extend_from_slice(salt.as_bytes());
                input.extend_from_slice(&(name.len() as u32).to_be_bytes());
                input.extend_from_slice(name.as_bytes());
                input.extend_from_slice(&(value.len() as u32).to_be_bytes());
                input.extend_from_slice(value.as_bytes());
                Some(input)
            }
            _ => None,
        })
        .collect();
    let body_bytes = trailseal::model::encode_body(&entry.body);
    let mac_bytes = entry.mac_input(trailseal::model::FORMAT_VERSION).to_bytes();
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).expect("any key length");

    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event", |b| {
        b.iter(|| {
            sealer
                .seal_event(std::hint::black_box(&event), now)
                .expect("sealed")
        })
    });
    group.bench_function("bare_hashes", |b| {
        b.iter(|| {
            for input in &field_inputs {
                std::hint::black_box(Sha256::digest(input));
            }
            std::hint::black_box(Sha256::digest(&body_bytes));
            let mut mac = keyed.clone();
            mac.update(&mac_bytes);
            std::hint::black_box(mac.finalize())
        })
    });
    let block = [0x5au8; 256];
    group.bench_function("bare_hmac_256b", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(std::hint::black_box(&block));
            std::hint::black_box(mac.finalize())
        })
    });
    group.finish();
}

fn bench_trail(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let trail = runtime.block_on(async {
        let (sealing, _) = SealingKey::generate("bench", Utc::now(), 900).expect("key");
        Trail::open("admin", Arc::new(MemoryStore::new()), Arc::new(sealing))
            .await
            .expect("trail")
    });
    let event = sample_event();
    let mut group = c.benchmark_group("trail");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("record_1000", |b| {
        b.to_async(&runtime).iter(|| {
            let trail = trail.clone();
            let event = event.clone();
            async move {
                let calls = (0..1000).map(|_| {
                    let trail = trail.clone();
                    let event = event.clone();
                    tokio::spawn(async move { trail.record(event).await })
                });
                for call in futures_util::future::join_all(calls).await {
                    call.expect("task").expect("recorded");
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_seal, bench_trail);
criterion_main!(benches);
