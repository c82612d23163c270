//! Forward security: an attacker who steals the sealing key at time T holds
//! only `K_e` of the current epoch. Whatever they do to entries of earlier
//! epochs, the verifier catches it.

use crate::support;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use support::{EPOCH_SECONDS, TRAIL, sample_event, start_time};
use trailseal::{
    Clock, Entry, EntryKind, KeyError, ManualClock, MemoryStore, SealingKey, Trail, TrailReport,
    Verifier, seal::EntryDraft,
};

struct Stolen {
    store: MemoryStore,
    verifier: Verifier,
    /// The key as a thief finds it on disk at the end.
    thief: SealingKey,
    now: DateTime<Utc>,
}

/// Four epochs of events written with the key persisted to a file; then the
/// thief opens that file.
async fn stolen_key() -> Stolen {
    let dir = tempfile::tempdir().unwrap();
    let (sealing, verification) =
        SealingKey::create_files(dir.path(), "k1", start_time(), EPOCH_SECONDS).unwrap();
    let clock = ManualClock::new(start_time());
    let store = MemoryStore::new();
    let trail = Trail::builder(TRAIL, Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    for i in 0..50 {
        trail.record(sample_event(i)).await.unwrap();
        clock.advance(TimeDelta::seconds(75));
    }
    trail.seal_finished_epochs().await.unwrap();
    trail.shutdown().await.unwrap();
    let thief = SealingKey::open(dir.path().join("sealing.key")).unwrap();
    let current = verification.schedule().epoch_of(clock.now()).unwrap();
    // The shutdown closed the current epoch: the file holds no key that
    // seals anything the trail holds.
    assert_eq!(
        thief.trail_epoch(TRAIL),
        Some(current + 1),
        "the trail's key on disk has moved past the epoch the shutdown closed"
    );
    assert_eq!(thief.epoch(), current + 1, "so has the key's own chain");
    assert!(current >= 4);
    Stolen {
        store,
        verifier: Verifier::new(verification),
        thief,
        now: clock.now(),
    }
}

fn reseal(
    thief: &SealingKey,
    entry: &Entry,
    epoch: u64,
    recorded_at: DateTime<Utc>,
) -> Result<Entry, KeyError> {
    thief.seal_entry(EntryDraft {
        trail: entry.trail.clone(),
        seq: entry.seq,
        epoch,
        key_id: entry.key_id.clone(),
        recorded_at,
        kind: entry.kind,
        body: entry.body.clone(),
        prev_mac: entry.prev_mac,
    })
}

async fn verify(stolen: &Stolen, entries: Vec<Entry>) -> TrailReport {
    stolen.store.restore(TRAIL, entries);
    stolen
        .verifier
        .verify_trail(&stolen.store, TRAIL)
        .await
        .unwrap()
}

fn names(report: &TrailReport, seq: u64) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.seq == seq || f.seq_end.is_some_and(|end| f.seq <= seq && seq <= end))
}

/// An event of epoch 1, well before the theft.
fn victim(entries: &[Entry]) -> usize {
    entries
        .iter()
        .position(|e| e.kind == EntryKind::Event && e.epoch == 1)
        .unwrap()
}

#[tokio::test]
async fn keys_of_sealed_epochs_cannot_be_derived() {
    let stolen = stolen_key().await;
    let entries = stolen.store.dump(TRAIL);
    let target = &entries[victim(&entries)];
    let err = reseal(&stolen.thief, target, target.epoch, target.recorded_at).unwrap_err();
    assert!(
        matches!(err, KeyError::EpochGone { requested: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rewriting_an_old_entry_with_the_current_key_is_caught() {
    let stolen = stolen_key().await;
    let current = stolen.thief.trail_epoch(TRAIL).unwrap();
    let original = stolen.store.dump(TRAIL);
    let at = victim(&original);
    let seq = original[at].seq;

    // Every way of re-sealing the changed entry with the only key at hand.
    let times = [original[at].recorded_at, stolen.now];
    for recorded_at in times {
        let mut entries = original.clone();
        entries[at].body.insert_public("action", "database.delete");
        entries[at] = reseal(&stolen.thief, &entries[at], current, recorded_at).unwrap();
        let report = verify(&stolen, entries).await;
        assert!(names(&report, seq), "recorded_at {recorded_at}: {report}");
    }

    // Changing it without re-sealing.
    let mut entries = original.clone();
    entries[at].body.insert_public("action", "database.delete");
    let report = verify(&stolen, entries).await;
    assert!(names(&report, seq), "{report}");
}

#[tokio::test]
async fn removing_an_old_entry_and_resealing_the_rest_is_caught() {
    let stolen = stolen_key().await;
    let current = stolen.thief.trail_epoch(TRAIL).unwrap();
    let mut entries = stolen.store.dump(TRAIL);
    let at = victim(&entries);
    let seq = entries[at].seq;
    entries.remove(at);
    // Renumber and re-chain everything after the gap under the stolen key.
    let mut prev = entries[at - 1].mac;
    for entry in entries.iter_mut().skip(at) {
        entry.seq -= 1;
        entry.prev_mac = prev;
        *entry = reseal(&stolen.thief, entry, current, entry.recorded_at).unwrap();
        prev = entry.mac;
    }
    let report = verify(&stolen, entries).await;
    assert!(names(&report, seq), "{report}");
}

#[tokio::test]
async fn inserting_a_backdated_entry_is_caught() {
    let stolen = stolen_key().await;
    let current = stolen.thief.trail_epoch(TRAIL).unwrap();
    let mut entries = stolen.store.dump(TRAIL);
    let at = victim(&entries);
    let mut forged = entries[at].clone();
    forged.seq += 1;
    forged.prev_mac = entries[at].mac;
    forged.body.insert_public("action", "customer.delete");
    let forged = reseal(&stolen.thief, &forged, current, entries[at].recorded_at).unwrap();
    let seq = forged.seq;
    entries.insert(at + 1, forged);
    let mut prev = entries[at + 1].mac;
    for entry in entries.iter_mut().skip(at + 2) {
        entry.seq += 1;
        entry.prev_mac = prev;
        *entry = reseal(&stolen.thief, entry, current, entry.recorded_at).unwrap();
        prev = entry.mac;
    }
    let report = verify(&stolen, entries).await;
    assert!(names(&report, seq), "{report}");
}

#[tokio::test]
async fn truncating_sealed_epochs_and_writing_anew_is_caught() {
    let stolen = stolen_key().await;
    let current = stolen.thief.trail_epoch(TRAIL).unwrap();
    let mut entries = stolen.store.dump(TRAIL);
    let at = victim(&entries);
    let seq = entries[at].seq;
    entries.truncate(at);
    // Fresh entries in the current epoch, chained onto the cut.
    let mut prev = entries[at - 1].mac;
    for i in 0..3u64 {
        let mut entry = entries[at - 1].clone();
        entry.seq = seq + i;
        entry.kind = EntryKind::Event;
        entry.prev_mac = prev;
        let entry = reseal(&stolen.thief, &entry, current, stolen.now).unwrap();
        prev = entry.mac;
        entries.push(entry);
    }
    let report = verify(&stolen, entries).await;
    assert!(names(&report, seq), "{report}");
    assert!(
        report
            .findings_of(trailseal::FindingKind::UnsealedEpoch)
            .count()
            >= 1,
        "{report}"
    );
}

#[tokio::test]
async fn replacing_an_old_epoch_seal_is_caught() {
    let stolen = stolen_key().await;
    let current = stolen.thief.trail_epoch(TRAIL).unwrap();
    let mut entries = stolen.store.dump(TRAIL);
    let at = entries
        .iter()
        .position(|e| e.kind == EntryKind::EpochSeal)
        .unwrap();
    let seq = entries[at].seq;
    for epoch in [entries[at].epoch, current] {
        let mut seal = entries[at].clone();
        seal.body.insert_public("seal.entries", "1");
        match reseal(&stolen.thief, &seal, epoch, stolen.now) {
            Err(KeyError::EpochGone { .. }) => continue,
            Err(err) => panic!("{err}"),
            Ok(seal) => {
                entries[at] = seal;
                let report = verify(&stolen, entries.clone()).await;
                assert!(names(&report, seq), "{report}");
            }
        }
    }
}

/// A trail sealed in format 1 (one key chain for every trail), as an older
/// trailseal left it, is continued by today's writer: it is moved onto its
/// own chain by a key rotation, and verifies throughout.
#[tokio::test]
async fn a_format_1_trail_is_continued_on_its_own_chain() {
    use trailseal::{Body, FindingKind, Store, VerificationKey};
    let dir = tempfile::tempdir().unwrap();
    let k0 = [7u8; 32];
    let schedule = trailseal::seal::EpochSchedule::new(start_time(), EPOCH_SECONDS).unwrap();
    let verification = VerificationKey::from_parts("k1", schedule, k0).unwrap();
    // The sealing key file as version 1 wrote it: one key, held at the
    // oldest epoch a trail still had to seal.
    let sealing_path = dir.path().join("sealing.key");
    let v1_file = serde_json::json!({
        "format": "trailseal-sealing-key",
        "version": 1,
        "key_id": "k1",
        "genesis": start_time(),
        "epoch_seconds": EPOCH_SECONDS,
        "key_check": verification.check_value(),
        "epoch": 0,
        "key": hex::encode(k0),
        "trails": {"admin": 0},
    });
    std::fs::write(&sealing_path, v1_file.to_string()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sealing_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Format 1 entries, sealed entry by entry on the shared chain the file
    // holds: a genesis and two events in epoch 0.
    let mut genesis = Body::new();
    genesis.insert_public("genesis.epoch_seconds", EPOCH_SECONDS.to_string());
    genesis.insert_public("genesis.format_version", "1");
    genesis.insert_public("genesis.key_check", verification.check_value().to_hex());
    genesis.insert_public(
        "genesis.key_genesis",
        trailseal::model::format_timestamp(start_time()),
    );
    genesis.insert_public("genesis.trail", TRAIL);
    let legacy = SealingKey::open(&sealing_path).unwrap();
    let mut entries: Vec<Entry> = Vec::new();
    let mut push = |kind: EntryKind, body: Body, recorded_at: DateTime<Utc>| {
        let (seq, prev_mac) = entries.last().map_or(
            (0, trailseal::model::genesis_prev_mac(TRAIL)),
            |e: &Entry| (e.seq + 1, e.mac),
        );
        let entry = legacy
            .seal_entry(EntryDraft {
                trail: TRAIL.into(),
                seq,
                epoch: 0,
                key_id: "k1".into(),
                recorded_at,
                kind,
                body,
                prev_mac,
            })
            .unwrap();
        entries.push(entry);
    };
    push(
        EntryKind::Genesis,
        genesis,
        start_time() + TimeDelta::minutes(1),
    );
    for i in 0..2 {
        let mut body = Body::new();
        body.insert_public("action", "database.create");
        body.insert_personal(
            "actor.name",
            format!("kunde{i}"),
            trailseal::model::Salt::from_bytes([9; 16]),
        );
        push(
            EntryKind::Event,
            body,
            start_time() + TimeDelta::minutes(2 + i),
        );
    }
    let store = Arc::new(MemoryStore::new());
    store.append(TRAIL, None, &entries).await.unwrap();
    let verified = Verifier::new(VerificationKey::from_parts("k1", schedule, k0).unwrap())
        .at(start_time() + TimeDelta::hours(2))
        .verify_trail(store.as_ref(), TRAIL)
        .await
        .unwrap();
    assert!(verified.is_intact(), "{verified}");
    assert_eq!(verified.format, Some(1));

    // Today's writer continues it an epoch later.
    let clock = ManualClock::new(start_time() + TimeDelta::minutes(20));
    let key = Arc::new(SealingKey::open(&sealing_path).unwrap());
    let trail = Trail::builder(TRAIL, store.clone(), key.clone())
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    trail.record(sample_event(5)).await.unwrap();
    clock.advance(TimeDelta::minutes(30));
    trail.record(sample_event(6)).await.unwrap();
    trail.shutdown().await.unwrap();
    let stored = store.dump(TRAIL);
    let kinds: Vec<EntryKind> = stored.iter().map(|e| e.kind).collect();
    assert_eq!(
        &kinds[3..6],
        [
            EntryKind::EpochSeal,
            EntryKind::KeyRotation,
            EntryKind::Event
        ],
        "the pending format 1 seal, the rotation, then the event"
    );
    let report = Verifier::new(VerificationKey::from_parts("k1", schedule, k0).unwrap())
        .at(clock.now())
        .verify_trail(store.as_ref(), TRAIL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.format, Some(2));
    assert!(
        report
            .findings_of(FindingKind::KeyMismatch)
            .next()
            .is_none()
    );
    // The key file no longer holds any copy of the shared chain.
    let text = std::fs::read_to_string(&sealing_path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["version"], 2);
    assert_eq!(file["trails"][TRAIL]["format"], 2);
    assert_eq!(
        file["trails"][TRAIL]["branch"], stored[4].epoch,
        "the branch starts at the rotation"
    );
}
