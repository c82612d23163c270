//! Every tamper class of the threat model, applied to real stored data: the
//! verifier must name the exact seq and kind.

use crate::support;

use chrono::TimeDelta;
use support::{findings, position_of, standard_trail};
use trailseal::{
    EntryKind, Field, FindingKind,
    model::{Digest, Mac, Salt},
    seal::EntryDraft,
};

#[tokio::test]
async fn untouched_trail_is_intact() {
    let fixture = standard_trail().await;
    let report = fixture.verify().await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.seals_verified, 2);
    assert_eq!(report.entries, fixture.entries().len() as u64);
}

/// Modifies entry 10 (an event inside a sealed epoch) with `mutate` and
/// returns the findings.
async fn findings_after(mutate: impl FnOnce(&mut trailseal::Entry)) -> Vec<(FindingKind, u64)> {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    assert_eq!(entries[10].kind, EntryKind::Event);
    mutate(&mut entries[10]);
    fixture.restore(entries);
    findings(&fixture.verify().await)
}

type Mutation = Box<dyn FnOnce(&mut trailseal::Entry)>;

#[tokio::test]
async fn every_stored_field_modified_is_detected_at_its_seq() {
    use FindingKind::*;
    let flip_mac = |mac: &Mac| {
        let mut bytes = *mac.as_bytes();
        bytes[0] ^= 1;
        Mac::from_bytes(bytes)
    };
    let cases: Vec<(&str, Mutation, FindingKind)> = vec![
        ("trail", Box::new(|e| e.trail = "web".into()), Modified),
        ("epoch", Box::new(|e| e.epoch += 1), Modified),
        ("key_id", Box::new(|e| e.key_id = "k2".into()), UnknownKey),
        (
            "recorded_at",
            Box::new(|e| e.recorded_at += TimeDelta::microseconds(1)),
            Modified,
        ),
        (
            "kind",
            Box::new(|e| e.kind = EntryKind::Retention),
            Modified,
        ),
        (
            "prev_mac",
            Box::new(move |e| e.prev_mac = flip_mac(&e.prev_mac)),
            Modified,
        ),
        ("mac", Box::new(move |e| e.mac = flip_mac(&e.mac)), Modified),
        (
            "body_commitment",
            Box::new(|e| e.body_commitment = Digest::from_bytes([7; 32])),
            Modified,
        ),
        (
            "public body field",
            Box::new(|e| e.body.insert_public("action", "database.delete")),
            Modified,
        ),
        (
            "personal body field",
            Box::new(|e| {
                let salt = match e.body.get("actor.name") {
                    Some(Field::Personal { salt, .. }) => *salt,
                    other => panic!("unexpected {other:?}"),
                };
                e.body.insert_personal("actor.name", "someone-else", salt);
            }),
            Modified,
        ),
        (
            "salt",
            Box::new(|e| {
                let value = e.body.value("actor.name").unwrap().to_owned();
                e.body
                    .insert_personal("actor.name", value, Salt::from_bytes([1; 16]));
            }),
            Modified,
        ),
        (
            "added body field",
            Box::new(|e| e.body.insert_public("note", "hello")),
            Modified,
        ),
        (
            "erased personal field",
            Box::new(|e| {
                let redacted = e.body.get("tenant").unwrap().redacted("tenant");
                e.body.insert("actor.name", redacted);
            }),
            Modified,
        ),
    ];
    for (name, mutate, kind) in cases {
        let found = findings_after(mutate).await;
        assert_eq!(found, vec![(kind, 10)], "modifying {name}");
    }
}

#[tokio::test]
async fn renumbered_entry_is_reported_as_reordered() {
    let found = findings_after(|e| e.seq += 1000).await;
    assert_eq!(found, vec![(FindingKind::Reordered, 10)]);
}

#[tokio::test]
async fn newest_entry_renumbered_below_its_predecessors_is_reordered() {
    // Stored last but numbered as an early entry: the scan must still end,
    // and the entry is found where it was sealed.
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    let newest = entries.last_mut().unwrap();
    let sealed_as = newest.seq;
    newest.seq = 3;
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![(FindingKind::Reordered, sealed_as)]
    );
}

#[tokio::test]
async fn deleted_entry_is_missing_and_its_seal_disagrees() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    entries.remove(5);
    let seal = position_of(&entries, EntryKind::EpochSeal, 0) as u64 + 1;
    fixture.restore(entries);
    let report = fixture.verify().await;
    assert_eq!(
        findings(&report),
        vec![(FindingKind::Missing, 5), (FindingKind::SealMismatch, seal)]
    );
}

#[tokio::test]
async fn deleted_entry_in_open_epoch_is_missing() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    let last_seal = entries
        .iter()
        .rposition(|e| e.kind == EntryKind::EpochSeal)
        .unwrap();
    let victim = entries[last_seal + 2].seq;
    entries.remove(last_seal + 2);
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![(FindingKind::Missing, victim)]
    );
}

#[tokio::test]
async fn swapped_entries_are_reordered() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    entries.swap(7, 8);
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![(FindingKind::Reordered, 7)]
    );
}

#[tokio::test]
async fn entries_that_swapped_seqs_are_reordered() {
    // What an SQL attacker does: `UPDATE … SET seq = …` on two rows.
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    entries[7].seq = 8;
    entries[8].seq = 7;
    entries.swap(7, 8);
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![(FindingKind::Reordered, 7), (FindingKind::Reordered, 8)]
    );
}

#[tokio::test]
async fn duplicated_entry_is_reported() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    let copy = entries[12].clone();
    entries.insert(13, copy);
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![(FindingKind::Duplicated, 12)]
    );
}

#[tokio::test]
async fn inserted_entry_with_forged_mac_is_reported() {
    for before_the_real_one in [true, false] {
        let fixture = standard_trail().await;
        let mut entries = fixture.entries();
        let mut forged = entries[12].clone();
        forged.body.insert_public("action", "database.delete");
        forged.body_commitment = trailseal::model::body_commitment(&forged.body);
        forged.mac = Mac::from_bytes([0xAB; 32]);
        entries.insert(if before_the_real_one { 12 } else { 13 }, forged);
        fixture.restore(entries);
        assert_eq!(
            findings(&fixture.verify().await),
            vec![(FindingKind::Forged, 12)],
            "inserted before the real entry: {before_the_real_one}"
        );
    }
}

#[tokio::test]
async fn removed_epoch_seal_is_reported() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    let seal = position_of(&entries, EntryKind::EpochSeal, 0);
    let seal_seq = entries[seal].seq;
    entries.remove(seal);
    fixture.restore(entries);
    assert_eq!(
        findings(&fixture.verify().await),
        vec![
            (FindingKind::Missing, seal_seq),
            (FindingKind::UnsealedEpoch, seal_seq + 1)
        ]
    );
}

#[tokio::test]
async fn stripping_every_seal_is_no_downgrade() {
    let fixture = standard_trail().await;
    let entries: Vec<_> = fixture
        .entries()
        .into_iter()
        .filter(|e| e.kind != EntryKind::EpochSeal)
        .collect();
    fixture.restore(entries);
    let report = fixture.verify().await;
    assert_eq!(
        report.findings_of(FindingKind::UnsealedEpoch).count(),
        2,
        "{report}"
    );
    assert_eq!(
        report.findings_of(FindingKind::Missing).count(),
        2,
        "{report}"
    );
}

/// An attacker holding the current sealing key re-seals the newest entry
/// with an earlier timestamp.
#[tokio::test]
async fn backdated_entry_is_reported() {
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    let last = entries.len() - 1;
    let previous_time = entries[last - 1].recorded_at;
    let epoch_start = fixture
        .verification
        .schedule()
        .start_of(entries[last].epoch);
    for (new_time, what) in [
        (
            previous_time - TimeDelta::seconds(1),
            "before the previous entry",
        ),
        (epoch_start - TimeDelta::seconds(1), "before its epoch"),
    ] {
        let original = entries[last].clone();
        let draft = EntryDraft {
            trail: original.trail.clone(),
            seq: original.seq,
            epoch: original.epoch,
            key_id: original.key_id.clone(),
            recorded_at: new_time,
            kind: original.kind,
            body: original.body.clone(),
            prev_mac: original.prev_mac,
        };
        entries[last] = fixture.sealing.seal_entry(draft).unwrap();
        fixture.restore(entries.clone());
        let report = fixture.verify().await;
        assert_eq!(
            findings(&report),
            vec![(FindingKind::Backdated, original.seq)],
            "{what}: {report}"
        );
        entries[last] = original;
    }
}

#[tokio::test]
async fn wrong_verification_key_is_one_clear_finding() {
    let fixture = standard_trail().await;
    let (_, other) = trailseal::SealingKey::generate("k1", support::start_time(), 900).unwrap();
    let report = trailseal::Verifier::new(other)
        .verify_trail(&fixture.store, support::TRAIL)
        .await
        .unwrap();
    assert_eq!(
        findings(&report),
        vec![(FindingKind::KeyMismatch, 0)],
        "{report}"
    );
    assert!(
        report.findings[0].detail.contains("another key check"),
        "{report}"
    );
    let (_, unknown) = trailseal::SealingKey::generate("k9", support::start_time(), 900).unwrap();
    let report = trailseal::Verifier::new(unknown)
        .verify_trail(&fixture.store, support::TRAIL)
        .await
        .unwrap();
    let last = report.seq_range.unwrap().1;
    assert_eq!(report.findings.len(), 1, "{report}");
    let finding = &report.findings[0];
    assert_eq!(
        (finding.kind, finding.seq, finding.seq_end),
        (FindingKind::UnknownKey, 0, Some(last)),
        "one finding for the whole run of entries: {report}"
    );
}

#[tokio::test]
async fn truncated_tail_inside_open_epoch_verifies_without_a_checkpoint() {
    // Documented limit: without an exported checkpoint, dropping the newest
    // entries of the open epoch looks like a shorter trail.
    let fixture = standard_trail().await;
    let mut entries = fixture.entries();
    entries.truncate(entries.len() - 2);
    fixture.restore(entries);
    assert!(fixture.verify().await.is_intact());
}

async fn checkpoint_of(fixture: &support::Fixture) -> trailseal::Checkpoint {
    use trailseal::Store;
    let head = fixture.store.head(support::TRAIL).await.unwrap().unwrap();
    // Taken now, after everything it counts was recorded.
    trailseal::Checkpoint::of_head(support::TRAIL, &head, trailseal::Clock::now(&fixture.clock))
}

async fn verify_with(
    fixture: &support::Fixture,
    checkpoint: trailseal::Checkpoint,
) -> trailseal::TrailReport {
    // The checkpoint travels as text, as an operator exports it.
    let checkpoint: trailseal::Checkpoint = checkpoint.to_string().parse().unwrap();
    trailseal::Verifier::new(support::clone_key(&fixture.verification))
        .with_checkpoint(checkpoint)
        .verify_trail(&fixture.store, support::TRAIL)
        .await
        .unwrap()
}

#[tokio::test]
async fn checkpoint_matches_an_intact_trail_that_grew_since() {
    let fixture = standard_trail().await;
    let checkpoint = checkpoint_of(&fixture).await;
    fixture.record(5, TimeDelta::minutes(1)).await;
    let report = verify_with(&fixture, checkpoint).await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checkpoints_verified, 1);
}

#[tokio::test]
async fn truncated_tail_is_reported_against_a_checkpoint() {
    let fixture = standard_trail().await;
    let checkpoint = checkpoint_of(&fixture).await;
    let mut entries = fixture.entries();
    entries.truncate(entries.len() - 2);
    let first_cut = entries.len() as u64;
    fixture.restore(entries);
    let report = verify_with(&fixture, checkpoint).await;
    assert_eq!(findings(&report), vec![(FindingKind::Truncated, first_cut)]);
}

#[tokio::test]
async fn rollback_to_an_older_copy_is_reported_against_a_checkpoint() {
    let fixture = standard_trail().await;
    let older_copy = fixture.entries();
    fixture.record(3, TimeDelta::minutes(1)).await;
    let checkpoint = checkpoint_of(&fixture).await;
    // Restore the older copy; the writer then carries on from it.
    fixture.restore(older_copy);
    fixture.record(4, TimeDelta::minutes(1)).await;
    let report = verify_with(&fixture, checkpoint.clone()).await;
    assert_eq!(
        findings(&report),
        vec![(FindingKind::CheckpointMismatch, checkpoint.next_seq - 1)]
    );
}
