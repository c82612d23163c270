//! `audit-verify` on a real PostgreSQL trail: intact, then tampered with
//! plain SQL.

use crate::pg;
use crate::support;

use std::process::Command;
use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::Value;
use sqlx::Connection;
use trailseal::{ManualClock, PostgresStore, SealingKey, Trail};

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

/// Runs one statement on the server, as someone with database access would.
async fn execute(url: &str, statement: &'static str) {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(statement)
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

fn verify(key: &str, url: &str) -> (i32, Vec<(String, u64)>) {
    let output = Command::new(BIN)
        .args(["verify", "--json", "--quiet", "--key", key, url])
        .output()
        .expect("audit-verify runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let findings = report["trails"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|trail| trail["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or_default().to_owned(),
                f["seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    (output.status.code().expect("exited normally"), findings)
}

/// A trail of 30 events, one a minute, written through the library into a
/// fresh database; its URL and the verification key file.
struct Recorded {
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

async fn recorded() -> Recorded {
    let (recorded, trail, store) = recorded_by_a_running_writer().await;
    trail.seal_finished_epochs().await.unwrap();
    trail.shutdown().await.unwrap();
    store.close().await;
    recorded
}

/// [`recorded`], its writer still running.
async fn recorded_by_a_running_writer() -> (Recorded, Trail, PostgresStore) {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sealing, _) = SealingKey::create_files(
        dir.path(),
        "k1",
        support::start_time(),
        support::EPOCH_SECONDS,
    )
    .unwrap();
    let clock = ManualClock::new(support::start_time());
    let trail = Trail::builder(support::TRAIL, Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    for i in 0..30 {
        trail.record(support::sample_event(i)).await.unwrap();
        clock.advance(TimeDelta::minutes(1));
    }
    let key = dir.path().join("verification.key").display().to_string();
    let recorded = Recorded {
        url,
        key,
        _dir: dir,
    };
    (recorded, trail, store)
}

#[tokio::test]
async fn postgres_trail_verifies_and_tampering_is_named() {
    let Recorded { url, key, _dir } = recorded().await;
    assert_eq!(verify(&key, &url), (0, vec![]));

    execute(
        &url,
        "UPDATE entries SET prev_mac = decode(repeat('00', 32), 'hex') WHERE trail = 'admin' AND seq = 5",
    )
    .await;
    assert_eq!(verify(&key, &url), (1, vec![("modified".to_owned(), 5)]));
    let entries = entries_read(&key, &url);

    // A row that cannot be decoded is one more finding; the rows after it
    // in its chunk and in later chunks are still read and verified.
    execute(
        &url,
        "UPDATE entries SET body = '{not json' WHERE trail = 'admin' AND seq = 9",
    )
    .await;
    assert_eq!(
        verify(&key, &url),
        (
            1,
            vec![("modified".to_owned(), 5), ("modified".to_owned(), 9)]
        )
    );
    assert_eq!(entries_read(&key, &url), entries);
}

/// How many entries the report says it read.
fn entries_read(key: &str, url: &str) -> u64 {
    let output = Command::new(BIN)
        .args(["verify", "--json", "--quiet", "--key", key, url])
        .output()
        .expect("audit-verify runs");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    report["trails"][0]["entries"]
        .as_u64()
        .expect("an entry count")
}

#[tokio::test]
async fn a_trail_without_its_head_row_is_still_verified() {
    let Recorded { url, key, _dir } = recorded().await;
    let entries = entries_read(&key, &url);
    execute(&url, "DELETE FROM trail_heads WHERE trail = 'admin'").await;
    assert_eq!(verify(&key, &url), (0, vec![]));
    assert_eq!(entries_read(&key, &url), entries);
    execute(
        &url,
        "UPDATE entries SET prev_mac = decode(repeat('00', 32), 'hex') WHERE trail = 'admin' AND seq = 5",
    )
    .await;
    assert_eq!(verify(&key, &url), (1, vec![("modified".to_owned(), 5)]));
}

#[tokio::test]
async fn a_changed_query_column_is_a_column_mismatch_at_its_seq() {
    let Recorded { url, key, _dir } = recorded().await;
    execute(
        &url,
        "UPDATE entries SET tenant = 'kunde456' WHERE trail = 'admin' AND seq = 7",
    )
    .await;
    execute(
        &url,
        "UPDATE entries SET ip = '203.0.113.9' WHERE trail = 'admin' AND seq = 12",
    )
    .await;
    execute(
        &url,
        "UPDATE entries SET outcome = NULL WHERE trail = 'admin' AND seq = 20",
    )
    .await;
    assert_eq!(
        verify(&key, &url),
        (
            1,
            vec![
                ("column_mismatch".to_owned(), 7),
                ("column_mismatch".to_owned(), 12),
                ("column_mismatch".to_owned(), 20)
            ]
        )
    );
}

#[tokio::test]
async fn a_sealed_restriction_verifies_and_its_flags_are_checked() {
    let (Recorded { url, key, _dir }, trail, store) = recorded_by_a_running_writer().await;
    let kunde1 = trailseal::Subject::new().tenant("kunde1");
    // sample_event gives every seventh event to kunde1: seqs 2, 9, 17, 24
    // and 31 (the seal of epoch 0 is seq 16).
    assert_eq!(trail.restrict_subject(&kunde1, true).await.unwrap(), 5);
    assert_eq!(verify(&key, &url), (0, vec![]));

    execute(
        &url,
        "UPDATE entries SET restricted = false WHERE trail = 'admin' AND seq = 9",
    )
    .await;
    execute(
        &url,
        "UPDATE entries SET restricted = true WHERE trail = 'admin' AND seq = 12",
    )
    .await;
    assert_eq!(
        verify(&key, &url),
        (
            1,
            vec![
                ("column_mismatch".to_owned(), 9),
                ("column_mismatch".to_owned(), 12)
            ]
        )
    );
    execute(
        &url,
        "UPDATE entries SET restricted = (seq = 9) WHERE trail = 'admin' AND seq IN (9, 12)",
    )
    .await;
    assert_eq!(verify(&key, &url), (0, vec![]));

    trail.restrict_subject(&kunde1, false).await.unwrap();
    assert_eq!(verify(&key, &url), (0, vec![]));
    trail.shutdown().await.unwrap();
    store.close().await;
}
