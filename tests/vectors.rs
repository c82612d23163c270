//! Golden test vectors of the sealed format (`tests/vectors/format1/*.json`
//! and `tests/vectors/format2/*.json`, quoted in `docs/FORMAT.md`).
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
    Body, Entry, EntryKind, Field, MemoryStore, Store, VerificationKey, Verifier,
    model::{Digest, Salt, body_commitment, encode_body, field_commitment, genesis_prev_mac},
    seal::EpochSchedule,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    description: String,
    key: KeyInput,
    key_line: Line,
    entry: Entry,
    expected: Expected,
}

/// Which chain seals the entry (`docs/FORMAT.md` §6): format 1 the key's
/// own chain, format 2 the trail's branch at `branch`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
struct Line {
    format: u8,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    branch: Option<u64>,
}

const SHARED: Line = Line {
    format: 1,
    branch: None,
};

const fn branch(at: u64) -> Line {
    Line {
        format: 2,
        branch: Some(at),
    }
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
    mac: trailseal::model::Mac,
    /// For seq 0: the genesis `prev_mac` of the trail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    genesis_prev_mac: Option<trailseal::model::Mac>,
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

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `K_{e+1} = HMAC-SHA256(K_e, "trailseal/v1/evolve" ‖ u64be(e))` from
/// `key` at `from` to `to`, as FORMAT.md states it.
fn evolve(mut key: [u8; 32], from: u64, to: u64) -> [u8; 32] {
    for e in from..to {
        key = hmac(&key, &[b"trailseal/v1/evolve", &e.to_be_bytes()]);
    }
    key
}

/// The key of `epoch` on `line` for `trail`: `K_e`, or the trail's branch
/// `T_g = HMAC(K_g, "trailseal/v2/trail-key" ‖ lp(trail))` evolved to `e`.
fn epoch_key(k0: &[u8; 32], trail: &str, line: Line, epoch: u64) -> [u8; 32] {
    match line.branch {
        None => evolve(*k0, 0, epoch),
        Some(at) => {
            let root = evolve(*k0, 0, at);
            let length = (trail.len() as u32).to_be_bytes();
            let start = hmac(
                &root,
                &[b"trailseal/v2/trail-key", &length, trail.as_bytes()],
            );
            evolve(start, at, epoch)
        }
    }
}

fn compute(key: &KeyInput, line: Line, entry: &Entry) -> Expected {
    let mut k0_bytes = [0u8; 32];
    hex::decode_to_slice(&key.k0, &mut k0_bytes).unwrap();
    let epoch_key = epoch_key(&k0_bytes, &entry.trail, line, entry.epoch);
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
    let input = entry.mac_input(line.format).to_bytes();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&epoch_key).unwrap();
    mac.update(&input);
    Expected {
        epoch_key: hex::encode(epoch_key),
        field_commitments,
        body_encoding: hex::encode(encode_body(&entry.body)),
        body_commitment: body_commitment(&entry.body),
        mac_input: hex::encode(input),
        mac: trailseal::model::Mac::from_bytes(mac.finalize().into_bytes().into()),
        genesis_prev_mac: (entry.seq == 0).then(|| genesis_prev_mac(&entry.trail)),
    }
}

fn vectors_dir(format: u8) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/vectors/format{format}"))
}

/// A chain of vectors being built: each entry linked to the one before
/// in its trail, sealed on its line.
struct Chain {
    key: KeyInput,
    vectors: Vec<(String, Vector)>,
}

impl Chain {
    fn new() -> Self {
        Self {
            key: key_input(),
            vectors: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        description: &str,
        trail: &str,
        line: Line,
        epoch: u64,
        time: DateTime<Utc>,
        kind: EntryKind,
        body: Body,
    ) -> Entry {
        let previous = self
            .vectors
            .iter()
            .rev()
            .find(|(_, vector)| vector.entry.trail == trail)
            .map(|(_, vector)| &vector.entry);
        let mut entry = Entry {
            trail: trail.into(),
            seq: previous.map_or(0, |entry| entry.seq + 1),
            epoch,
            key_id: self.key.key_id.clone(),
            recorded_at: time,
            kind,
            body_commitment: body_commitment(&body),
            body,
            prev_mac: previous.map_or_else(|| genesis_prev_mac(trail), |entry| entry.mac),
            mac: trailseal::model::Mac::from_bytes([0; 32]),
        };
        let expected = compute(&self.key, line, &entry);
        entry.mac = expected.mac;
        self.vectors.push((
            name.into(),
            Vector {
                description: description.into(),
                key: key_input(),
                key_line: line,
                entry: entry.clone(),
                expected,
            },
        ));
        entry
    }

    /// A `fail_` vector: `entry` as it must be rejected on `line`.
    fn push_fail(&mut self, name: &str, description: &str, line: Line, entry: Entry) {
        let expected = compute(&self.key, line, &entry);
        self.vectors.push((
            name.into(),
            Vector {
                description: description.into(),
                key: key_input(),
                key_line: line,
                entry,
                expected,
            },
        ));
    }
}

fn time(h: u32, m: u32, s: u32, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap() + chrono::TimeDelta::microseconds(micros)
}

fn salt(byte: u8) -> Salt {
    Salt::from_bytes([byte; 16])
}

fn verification_key() -> VerificationKey {
    let key = key_input();
    let schedule = EpochSchedule::new(key.genesis, key.epoch_seconds).unwrap();
    VerificationKey::from_parts(&key.key_id, schedule, k0()).unwrap()
}

fn genesis_body(trail: &str, format: &str) -> Body {
    let mut genesis = Body::new();
    genesis.insert_public("genesis.epoch_seconds", "900");
    genesis.insert_public("genesis.format_version", format);
    genesis.insert_public(
        "genesis.key_check",
        verification_key().check_value().to_hex(),
    );
    genesis.insert_public("genesis.key_genesis", "2026-01-01T00:00:00.000000Z");
    genesis.insert_public("genesis.trail", trail);
    genesis
}

fn seal_body(
    epoch: u64,
    entries: u64,
    records: Option<u64>,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    last: &Entry,
) -> Body {
    let mut seal = Body::new();
    seal.insert_public("seal.entries", entries.to_string());
    seal.insert_public("seal.epoch", epoch.to_string());
    if let Some(records) = records {
        seal.insert_public("seal.records", records.to_string());
    }
    if let Some((first, last_at)) = span {
        seal.insert_public("seal.first_at", trailseal::model::format_timestamp(first));
        seal.insert_public("seal.last_at", trailseal::model::format_timestamp(last_at));
    }
    seal.insert_public("seal.last_mac", last.mac.to_hex());
    seal.insert_public("seal.last_seq", last.seq.to_string());
    seal
}

fn event_body() -> Body {
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
    event
}

fn redacted_body() -> Body {
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
    redacted
}

/// The fixed inputs the format 1 vector files were made from.
fn format1_vectors() -> Vec<(String, Vector)> {
    let mut chain = Chain::new();
    let genesis = chain.push(
        "1_genesis",
        "seq 0: the genesis entry of trail admin, epoch 0",
        "admin",
        SHARED,
        0,
        time(0, 5, 0, 1),
        EntryKind::Genesis,
        genesis_body("admin", "1"),
    );
    let mut seal = Body::new();
    seal.insert_public("seal.entries", "1");
    seal.insert_public("seal.epoch", "0");
    seal.insert_public("seal.first_at", "2026-01-01T00:05:00.000001Z");
    seal.insert_public("seal.last_at", "2026-01-01T00:05:00.000001Z");
    seal.insert_public("seal.last_mac", genesis.mac.to_hex());
    seal.insert_public("seal.last_seq", "0");
    chain.push(
        "2_epoch_seal",
        "seq 1: the seal of epoch 0, made in epoch 1 with K_0",
        "admin",
        SHARED,
        0,
        time(0, 20, 0, 0),
        EntryKind::EpochSeal,
        seal,
    );
    let event = chain.push(
        "3_event",
        "seq 2: an event with personal fields, epoch 1 (K_1)",
        "admin",
        SHARED,
        1,
        time(0, 20, 0, 123456),
        EntryKind::Event,
        event_body(),
    );
    chain.push(
        "4_redacted_event",
        "seq 3: an event whose actor.name was erased; only its commitment is left",
        "admin",
        SHARED,
        1,
        time(0, 29, 59, 999999),
        EntryKind::Event,
        redacted_body(),
    );
    let mut redaction = Body::new();
    redaction.insert_public(
        "redaction.entries",
        r#"[{"first":3,"last":3,"fields":["actor.name"]}]"#,
    );
    redaction.insert_public("redaction.reason", "erasure request");
    redaction.insert_public("redaction.request", "ticket-42");
    chain.push(
        "5_redaction_record",
        "seq 4: the redaction record that names the erasure of seq 3's actor.name",
        "admin",
        SHARED,
        1,
        time(0, 29, 59, 999999),
        EntryKind::Redaction,
        redaction,
    );
    // Must be rejected: the event with one byte of a personal value changed.
    let mut changed = event.clone();
    changed
        .body
        .insert_personal("target.id", "abc457", salt(0x33));
    chain.push_fail(
        "fail_changed_value",
        "seq 2 with target.id changed to abc457: the body commitment no longer matches the stored one, so the entry must be rejected",
        SHARED,
        changed,
    );
    chain.vectors
}

/// The fixed inputs the format 2 vector files were made from.
fn format2_vectors() -> Vec<(String, Vector)> {
    let mut chain = Chain::new();
    let line = branch(0);
    let genesis = chain.push(
        "1_genesis",
        "admin seq 0: the genesis of a format 2 trail, epoch 0; the trail's own chain branches off here (T_0)",
        "admin",
        line,
        0,
        time(0, 5, 0, 1),
        EntryKind::Genesis,
        genesis_body("admin", "2"),
    );
    let event = chain.push(
        "2_event",
        "admin seq 1: an event with personal fields, epoch 0 (T_0)",
        "admin",
        line,
        0,
        time(0, 6, 0, 0),
        EntryKind::Event,
        event_body(),
    );
    chain.push(
        "3_closing_seal",
        "admin seq 2: the seal of epoch 0 made within it, as a shutdown closes the epoch: 2 entries, 1 record",
        "admin",
        line,
        0,
        time(0, 7, 0, 0),
        EntryKind::EpochSeal,
        seal_body(0, 2, Some(1), Some((genesis.recorded_at, event.recorded_at)), &event),
    );
    let after = chain.push(
        "4_event_after_close",
        "admin seq 3: an event at 00:08, in epoch 0's time, sealed in epoch 1 (T_1) since epoch 0 is closed",
        "admin",
        line,
        1,
        time(0, 8, 0, 0),
        EntryKind::Event,
        event_body(),
    );
    chain.push(
        "5_seal",
        "admin seq 4: the seal of epoch 1, made at 00:31 in epoch 2: 1 entry, no record",
        "admin",
        line,
        1,
        time(0, 31, 0, 0),
        EntryKind::EpochSeal,
        seal_body(
            1,
            1,
            Some(0),
            Some((after.recorded_at, after.recorded_at)),
            &after,
        ),
    );
    chain.push(
        "6_redacted_event",
        "admin seq 5: an event of epoch 2 (T_2) whose actor.name was erased",
        "admin",
        line,
        2,
        time(0, 31, 0, 500000),
        EntryKind::Event,
        redacted_body(),
    );
    let mut redaction = Body::new();
    redaction.insert_public(
        "redaction.entries",
        r#"[{"first":5,"last":5,"fields":["actor.name"]}]"#,
    );
    redaction.insert_public("redaction.reason", "erasure request");
    chain.push(
        "7_redaction_record",
        "admin seq 6: the redaction record that names the erasure of seq 5's actor.name, epoch 2 (T_2)",
        "admin",
        line,
        2,
        time(0, 31, 0, 500000),
        EntryKind::Redaction,
        redaction,
    );
    // Must be rejected: the event sealed with K_0, the key's own chain,
    // instead of the trail's branch.
    let mut shared = event.clone();
    shared.mac = compute(&chain.key, SHARED, &event).mac;
    chain.push_fail(
        "fail_shared_key",
        "admin seq 1 sealed with K_0 (format 1's shared chain): its MAC does not verify on the trail's branch",
        line,
        shared,
    );

    // A format 1 trail rotated onto its own chain.
    chain.push(
        "web_1_genesis",
        "web seq 0: the genesis of a format 1 trail, epoch 0 (K_0)",
        "web",
        SHARED,
        0,
        time(0, 1, 0, 0),
        EntryKind::Genesis,
        genesis_body("web", "1"),
    );
    let mut request = Body::new();
    request.insert_public("action", "web.request");
    request.insert_personal("context.ip", "192.0.2.77", salt(0xaa));
    let web_event = chain.push(
        "web_2_event",
        "web seq 1: a format 1 event, epoch 0 (K_0)",
        "web",
        SHARED,
        0,
        time(0, 2, 0, 0),
        EntryKind::Event,
        request.clone(),
    );
    chain.push(
        "web_3_seal",
        "web seq 2: the format 1 seal of epoch 0, made in epoch 1 (K_0)",
        "web",
        SHARED,
        0,
        time(0, 16, 0, 0),
        EntryKind::EpochSeal,
        seal_body(
            0,
            2,
            None,
            Some((time(0, 1, 0, 0), web_event.recorded_at)),
            &web_event,
        ),
    );
    let mut rotation = Body::new();
    rotation.insert_public("rotation.format_version", "2");
    rotation.insert_public(
        "rotation.key_check",
        verification_key().check_value().to_hex(),
    );
    rotation.insert_public("rotation.key_id", "vector-key");
    chain.push(
        "web_4_rotation",
        "web seq 3: the key rotation that moves the trail onto its own chain, sealed on the shared chain in epoch 1 (K_1)",
        "web",
        SHARED,
        1,
        time(0, 16, 0, 0),
        EntryKind::KeyRotation,
        rotation,
    );
    chain.push(
        "web_5_event_on_branch",
        "web seq 4: an event after the rotation, on the branch at epoch 1 (T_1 = HMAC(K_1, trail-key ‖ lp(web)))",
        "web",
        branch(1),
        1,
        time(0, 17, 0, 0),
        EntryKind::Event,
        request,
    );
    chain.vectors
}

fn build_vectors(format: u8) -> Vec<(String, Vector)> {
    match format {
        1 => format1_vectors(),
        _ => format2_vectors(),
    }
}

fn read_vectors(format: u8) -> Vec<(String, Vector)> {
    let mut files: Vec<_> = std::fs::read_dir(vectors_dir(format))
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
    for format in [1, 2] {
        let mut built = build_vectors(format);
        if std::env::var_os("TRAILSEAL_WRITE_VECTORS").is_some() {
            for (name, vector) in &built {
                let text = serde_json::to_string_pretty(vector).unwrap() + "\n";
                std::fs::write(vectors_dir(format).join(format!("{name}.json")), text).unwrap();
            }
        }
        let vectors = read_vectors(format);
        assert!(
            vectors.len() >= 4,
            "format {format}: valid and fail_ vectors"
        );
        for (name, vector) in &vectors {
            assert_eq!(
                compute(&vector.key, vector.key_line, &vector.entry),
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
        built.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(vectors, built, "format {format}: vector files are stale");
    }
}

#[tokio::test]
async fn valid_vectors_form_verifiable_trails_and_fail_vectors_do_not() {
    for format in [1, 2] {
        let vectors = read_vectors(format);
        let verifier = Verifier::new(verification_key()).at(time(12, 0, 0, 0));
        let store = MemoryStore::new();
        let mut trails: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for (_, vector) in vectors
            .iter()
            .filter(|(name, _)| !name.starts_with("fail_"))
        {
            trails
                .entry(vector.entry.trail.clone())
                .or_default()
                .push(vector.entry.clone());
        }
        for (trail, mut entries) in trails.clone() {
            entries.sort_by_key(|entry| entry.seq);
            store.append(&trail, None, &entries).await.unwrap();
            let report = verifier.verify_trail(&store, &trail).await.unwrap();
            assert!(report.is_intact(), "format {format}: {report}");
            assert!(report.seals_verified >= 1, "format {format}: {report}");
        }
        for (name, vector) in vectors.iter().filter(|(name, _)| name.starts_with("fail_")) {
            let trail = &vector.entry.trail;
            let mut entries = trails[trail].clone();
            entries.sort_by_key(|entry| entry.seq);
            let at = entries
                .iter()
                .position(|e| e.seq == vector.entry.seq)
                .unwrap();
            entries[at] = vector.entry.clone();
            store.restore(trail, entries);
            let report = verifier.verify_trail(&store, trail).await.unwrap();
            assert!(!report.is_intact(), "vector {name} must be rejected");
        }
    }
}
