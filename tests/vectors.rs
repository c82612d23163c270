//! Golden test vectors of the sealed format (`tests/vectors/*.json`, quoted
//! in `docs/FORMAT.md`).
//!
//! Each vector is checked twice: against this crate's encoding functions,
//! and against an independent computation of the key evolution and MAC from
//! the document, with plain HMAC-SHA256. The chain of valid vectors must
//! also verify as a trail. `fail_*` vectors must be rejected.
//!
//! `TRAILSEAL_WRITE_VECTORS=1 cargo test --test vectors` rewrites the files
//! from the fixed inputs below; do so only for a new format version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use trailseal::{
    Body, Digest, Entry, EntryKind, EpochSchedule, Field, MemoryStore, Salt, Store,
    VerificationKey, Verifier, body_commitment, encode_body, field_commitment, genesis_prev_mac,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    description: String,
    key: KeyInput,
    entry: Entry,
    expected: Expected,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct KeyInput {
    k0: String,
    key_id: String,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Expected {
    /// `K_epoch`, hex.
    epoch_key: String,
    /// Commitments of the personal fields, by name.
    field_commitments: BTreeMap<String, Digest>,
    /// The canonical body encoding, hex.
    body_encoding: String,
    body_commitment: Digest,
    /// The MAC input, hex.
    mac_input: String,
    mac: trailseal::Mac,
    /// For seq 0: the genesis `prev_mac` of the trail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    genesis_prev_mac: Option<trailseal::Mac>,
}

fn k0() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn key_input() -> KeyInput {
    KeyInput {
        k0: hex::encode(k0()),
        key_id: "vector-key".into(),
        genesis: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        epoch_seconds: 900,
    }
}

/// `K_{e+1} = HMAC-SHA256(K_e, "trailseal/v1/evolve" ‖ u64be(e))`, as
/// FORMAT.md states it.
fn epoch_key(k0: &[u8; 32], epoch: u64) -> [u8; 32] {
    let mut key = *k0;
    for e in 0..epoch {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(b"trailseal/v1/evolve");
        mac.update(&e.to_be_bytes());
        key = mac.finalize().into_bytes().into();
    }
    key
}

fn mac_input(entry: &Entry) -> Vec<u8> {
    entry.mac_input(1).to_bytes()
}

fn compute(key: &KeyInput, entry: &Entry) -> Expected {
    let mut k0_bytes = [0u8; 32];
    hex::decode_to_slice(&key.k0, &mut k0_bytes).unwrap();
    let epoch_key = epoch_key(&k0_bytes, entry.epoch);
    let field_commitments = entry
        .body
        .iter()
        .filter_map(|(name, field)| match field {
            Field::Personal { value, salt } => {
                Some((name.to_owned(), field_commitment(salt, name, value)))
            }
            Field::Redacted { commitment } => Some((name.to_owned(), *commitment)),
            Field::Public(_) => None,
        })
        .collect();
    let input = mac_input(entry);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&epoch_key).unwrap();
    mac.update(&input);
    Expected {
        epoch_key: hex::encode(epoch_key),
        field_commitments,
        body_encoding: hex::encode(encode_body(&entry.body)),
        body_commitment: body_commitment(&entry.body),
        mac_input: hex::encode(input),
        mac: trailseal::Mac::from_bytes(mac.finalize().into_bytes().into()),
        genesis_prev_mac: (entry.seq == 0).then(|| genesis_prev_mac(&entry.trail)),
    }
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The fixed inputs the vector files were made from.
fn build_vectors() -> Vec<(String, Vector)> {
    let key = key_input();
    let t = |h, m, s, micros| {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap() + chrono::TimeDelta::microseconds(micros)
    };
    let salt = |b: u8| Salt::from_bytes([b; 16]);
    let mut chain: Vec<(String, String, Entry)> = Vec::new();
    let push = |chain: &mut Vec<(String, String, Entry)>,
                name: &str,
                description: &str,
                seq: u64,
                epoch: u64,
                time,
                kind,
                body: Body| {
        let prev_mac = chain
            .last()
            .map_or_else(|| genesis_prev_mac("admin"), |(_, _, e)| e.mac);
        let mut entry = Entry {
            trail: "admin".into(),
            seq,
            epoch,
            key_id: key.key_id.clone(),
            recorded_at: time,
            kind,
            body_commitment: body_commitment(&body),
            body,
            prev_mac,
            mac: trailseal::Mac::from_bytes([0; 32]),
        };
        entry.mac = compute(&key, &entry).mac;
        chain.push((name.into(), description.into(), entry));
    };

    let schedule = EpochSchedule::new(key.genesis, key.epoch_seconds).unwrap();
    let vk = VerificationKey::from_parts(&key.key_id, schedule, k0()).unwrap();
    let mut genesis = Body::new();
    genesis.insert_public("genesis.epoch_seconds", "900");
    genesis.insert_public("genesis.format_version", "1");
    genesis.insert_public("genesis.key_check", vk.check_value().to_hex());
    genesis.insert_public("genesis.key_genesis", "2026-01-01T00:00:00.000000Z");
    genesis.insert_public("genesis.trail", "admin");
    push(
        &mut chain,
        "1_genesis",
        "seq 0: the genesis entry of trail admin, epoch 0",
        0,
        0,
        t(0, 5, 0, 1),
        EntryKind::Genesis,
        genesis,
    );

    let genesis_mac = chain[0].2.mac;
    let mut seal = Body::new();
    seal.insert_public("seal.entries", "1");
    seal.insert_public("seal.epoch", "0");
    seal.insert_public("seal.first_at", "2026-01-01T00:05:00.000001Z");
    seal.insert_public("seal.last_at", "2026-01-01T00:05:00.000001Z");
    seal.insert_public("seal.last_mac", genesis_mac.to_hex());
    seal.insert_public("seal.last_seq", "0");
    push(
        &mut chain,
        "2_epoch_seal",
        "seq 1: the seal of epoch 0, made in epoch 1 with K_0",
        1,
        0,
        t(0, 20, 0, 0),
        EntryKind::EpochSeal,
        seal,
    );

    let mut event = Body::new();
    event.insert_public("action", "database.create");
    event.insert_public("actor.kind", "customer");
    event.insert_personal("actor.name", "kunde123", salt(0x11));
    event.insert_personal("tenant", "kunde123", salt(0x22));
    event.insert_public("target.type", "database");
    event.insert_personal("target.id", "abc456", salt(0x33));
    event.insert_public("outcome", "success");
    event.insert_personal("context.ip", "2001:db8::7", salt(0x44));
    event.insert_personal(
        "context.user_agent",
        "Mozilla/5.0 (Ünïcödé; \\n)",
        salt(0x55),
    );
    event.insert_personal("metadata", r#"{"plan":"basic","size_mb":100}"#, salt(0x66));
    push(
        &mut chain,
        "3_event",
        "seq 2: an event with personal fields, epoch 1 (K_1)",
        2,
        1,
        t(0, 20, 0, 123456),
        EntryKind::Event,
        event,
    );

    let mut redacted = Body::new();
    redacted.insert_public("action", "session.login");
    redacted.insert_public("actor.kind", "customer");
    let erased = Field::Personal {
        value: "kunde123".into(),
        salt: salt(0x77),
    }
    .redacted("actor.name");
    redacted.insert("actor.name", erased);
    redacted.insert_public("outcome", "failure");
    redacted.insert_personal("outcome.reason", "wrong password", salt(0x88));
    redacted.insert_personal("context.ip", "192.0.2.10", salt(0x99));
    push(
        &mut chain,
        "4_redacted_event",
        "seq 3: an event whose actor.name was erased; only its commitment is left",
        3,
        1,
        t(0, 29, 59, 999999),
        EntryKind::Event,
        redacted,
    );

    let mut redaction = Body::new();
    redaction.insert_public(
        "redaction.entries",
        r#"[{"first":3,"last":3,"fields":["actor.name"]}]"#,
    );
    redaction.insert_public("redaction.reason", "erasure request");
    redaction.insert_public("redaction.request", "ticket-42");
    push(
        &mut chain,
        "5_redaction_record",
        "seq 4: the redaction record that names the erasure of seq 3's actor.name",
        4,
        1,
        t(0, 29, 59, 999999),
        EntryKind::Redaction,
        redaction,
    );

    let mut vectors: Vec<(String, Vector)> = chain
        .into_iter()
        .map(|(name, description, entry)| {
            let expected = compute(&key, &entry);
            (
                name,
                Vector {
                    description,
                    key: key_input(),
                    entry,
                    expected,
                },
            )
        })
        .collect();

    // Must be rejected: the event with one byte of a personal value changed.
    let mut changed = vectors[2].1.entry.clone();
    let salt = match changed.body.get("target.id") {
        Some(Field::Personal { salt, .. }) => *salt,
        _ => unreachable!(),
    };
    changed.body.insert_personal("target.id", "abc457", salt);
    let mut expected = vectors[2].1.expected.clone_for_fail();
    expected.field_commitments.insert(
        "target.id".into(),
        field_commitment(&salt, "target.id", "abc457"),
    );
    expected.body_encoding = hex::encode(encode_body(&changed.body));
    expected.body_commitment = body_commitment(&changed.body);
    vectors.push((
        "fail_changed_value".into(),
        Vector {
            description: "seq 2 with target.id changed to abc457: the body commitment no longer matches the stored one, so the entry must be rejected".into(),
            key: key_input(),
            entry: changed,
            expected,
        },
    ));
    vectors
}

trait CloneForFail {
    fn clone_for_fail(&self) -> Expected;
}

impl CloneForFail for Expected {
    fn clone_for_fail(&self) -> Expected {
        serde_json::from_value(serde_json::to_value(self).unwrap()).unwrap()
    }
}

fn read_vectors() -> Vec<(String, Vector)> {
    let mut files: Vec<_> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let vector = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (name, vector)
        })
        .collect()
}

#[test]
fn vectors_match_the_format() {
    if std::env::var_os("TRAILSEAL_WRITE_VECTORS").is_some() {
        for (name, vector) in build_vectors() {
            let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
            std::fs::write(vectors_dir().join(format!("{name}.json")), text).unwrap();
        }
    }
    let vectors = read_vectors();
    assert!(
        vectors.len() >= 4,
        "at least three valid vectors and one fail_ vector"
    );
    for (name, vector) in &vectors {
        assert_eq!(
            compute(&vector.key, &vector.entry),
            vector.expected,
            "vector {name}"
        );
        let commitment_matches =
            body_commitment(&vector.entry.body) == vector.entry.body_commitment;
        let mac_matches = vector.expected.mac == vector.entry.mac;
        if name.starts_with("fail_") {
            assert!(
                !(commitment_matches && mac_matches),
                "vector {name} must be rejected"
            );
        } else {
            assert!(
                commitment_matches && mac_matches,
                "vector {name} must verify"
            );
        }
    }
    // The vector files are exactly what the fixed inputs produce.
    assert_eq!(vectors, build_vectors(), "vector files are stale");
}

#[tokio::test]
async fn valid_vectors_form_a_verifiable_trail_and_fail_vectors_do_not() {
    let vectors = read_vectors();
    let key = &vectors[0].1.key;
    let schedule = EpochSchedule::new(key.genesis, key.epoch_seconds).unwrap();
    let verifier = Verifier::new(VerificationKey::from_parts(&key.key_id, schedule, k0()).unwrap());
    let store = MemoryStore::new();
    let valid: Vec<Entry> = vectors
        .iter()
        .filter(|(name, _)| !name.starts_with("fail_"))
        .map(|(_, vector)| vector.entry.clone())
        .collect();
    store.append("admin", None, &valid).await.unwrap();
    let report = verifier.verify_trail(&store, "admin").await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.seals_verified, 1);

    for (name, vector) in vectors.iter().filter(|(name, _)| name.starts_with("fail_")) {
        let mut entries = valid.clone();
        let at = entries
            .iter()
            .position(|e| e.seq == vector.entry.seq)
            .unwrap();
        entries[at] = vector.entry.clone();
        store.restore("admin", entries);
        let report = verifier.verify_trail(&store, "admin").await.unwrap();
        assert!(!report.is_intact(), "vector {name} must be rejected");
    }
}
