//! `PostgresStore` under what several panel servers meet: many processes
//! writing one trail, connections killed mid-append, a server restart.
//! The process test runs its own test binary again as the writer
//! processes; `WRITER_ROLE` selects that role.

use crate::pg;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use futures_util::TryStreamExt;
use trailseal::{
    Actor, Entry, EntryKind, Event, PostgresStore, SealingKey, Store, Trail, VerificationKey,
    Verifier, model::Mac, store::PostgresStoreOptions,
};

/// Set in a child process: the test runs the writer role instead.
const WRITER_ROLE: &str = "TRAILSEAL_TEST_PG_WRITER";

/// Short epochs, so that several end while the writers run.
const EPOCH_SECONDS: u64 = 1;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A verification key and `copies` copies of its sealing key file: every
/// writer evolves its own copy, as every panel server would.
struct Keys {
    _dir: tempfile::TempDir,
    verification: VerificationKey,
    copies: Vec<PathBuf>,
}

fn keys(copies: usize) -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let genesis = Utc::now() - TimeDelta::seconds(2);
    let keys = dir.path().join("keys");
    let (_, verification) = SealingKey::create_files(&keys, "k1", genesis, EPOCH_SECONDS).unwrap();
    let copies = (0..copies)
        .map(|n| {
            let copy = dir.path().join(format!("sealing-{n}.key"));
            std::fs::copy(keys.join("sealing.key"), &copy).unwrap();
            copy
        })
        .collect();
    Keys {
        _dir: dir,
        verification,
        copies,
    }
}

async fn start_trail(store: &PostgresStore, key: &Path) -> Trail {
    let key = SealingKey::open(key).unwrap();
    Trail::builder("ftp", Arc::new(store.clone()), Arc::new(key))
        .max_conflicts(100_000)
        .seal_check_interval(chrono::TimeDelta::milliseconds(100))
        .start()
        .await
        .unwrap()
}

fn upload(id: &str) -> Event {
    Event::builder("ftp.upload")
        .actor(Actor::customer("alice"))
        .target("file", id)
        .build()
        .unwrap()
}

/// What one caller was told about one event.
#[derive(Debug)]
enum Told {
    Stored { seq: u64, mac: Mac },
    Failed,
}

/// Records events with ids `{prefix}-{n}` from `tasks` concurrent callers
/// until `stop` is set; returns what each caller was told.
async fn record_until(
    trail: &Trail,
    prefix: &str,
    tasks: u64,
    stop: Arc<AtomicBool>,
) -> HashMap<String, Told> {
    let mut callers = Vec::new();
    for task in 0..tasks {
        let trail = trail.clone();
        let stop = stop.clone();
        let prefix = prefix.to_owned();
        callers.push(tokio::spawn(async move {
            let mut told = Vec::new();
            let mut n = task;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("{prefix}-{n}");
                let outcome = match trail.record(upload(&id)).await {
                    Ok(receipt) => Told::Stored {
                        seq: receipt.seq,
                        mac: receipt.mac,
                    },
                    Err(_) => {
                        // Give a failing server a moment instead of spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Told::Failed
                    }
                };
                told.push((id, outcome));
                n += tasks;
            }
            told
        }));
    }
    let mut told = HashMap::new();
    for caller in callers {
        told.extend(caller.await.unwrap());
    }
    told
}

/// The stored events of the trail by target id, with their seq and MAC.
fn stored_events(entries: &[Entry]) -> HashMap<String, (u64, Mac)> {
    entries
        .iter()
        .filter(|entry| entry.kind == EntryKind::Event)
        .map(|entry| {
            let id = entry.body.value("target.id").unwrap().to_owned();
            (id, (entry.seq, entry.mac))
        })
        .collect()
}

async fn read_trail(store: &PostgresStore) -> Vec<Entry> {
    store.scan("ftp", 0).try_collect().await.unwrap()
}

/// Every event a caller was told is stored is stored under that seq and
/// MAC; every event a caller was told failed is absent; nothing else is
/// stored. Returns how many were stored.
fn assert_told_matches_stored(told: &HashMap<String, Told>, entries: &[Entry]) -> usize {
    let stored = stored_events(entries);
    let mut acknowledged = 0;
    for (id, outcome) in told {
        match outcome {
            Told::Stored { seq, mac } => {
                acknowledged += 1;
                assert_eq!(
                    stored.get(id),
                    Some(&(*seq, *mac)),
                    "{id} was acknowledged as #{seq} but is not stored so"
                );
            }
            Told::Failed => assert!(
                !stored.contains_key(id),
                "{id} was reported as failed but is stored"
            ),
        }
    }
    assert_eq!(
        stored.len(),
        acknowledged,
        "events stored that nobody was told of"
    );
    eprintln!(
        "{acknowledged} events acknowledged and stored, {} reported failed and absent",
        told.len() - acknowledged
    );
    acknowledged
}

/// Epoch seals per epoch: exactly one for every finished epoch of the
/// trail, never two for any.
fn assert_one_seal_per_finished_epoch(entries: &[Entry]) -> u64 {
    let mut seals: BTreeMap<u64, usize> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.kind == EntryKind::EpochSeal) {
        *seals.entry(entry.epoch).or_default() += 1;
    }
    for (epoch, count) in &seals {
        assert_eq!(*count, 1, "epoch {epoch} has {count} seals");
    }
    let first = entries.first().unwrap().epoch;
    let last_event = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Event)
        .map(|e| e.epoch)
        .max()
        .unwrap();
    for epoch in first..last_event {
        assert_eq!(
            seals.get(&epoch),
            Some(&1),
            "finished epoch {epoch} has no seal"
        );
    }
    last_event - first
}

async fn assert_intact(store: &PostgresStore, verification: VerificationKey) {
    let report = Verifier::new(verification)
        .verify_trail(store, "ftp")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
}

// ---------------------------------------------------------------------
// Four processes of eight tasks each.

/// The child's part: eight tasks record for `seconds`; every answer is
/// printed as `told <id> <seq> <mac>` or `told <id> failed`.
fn run_writer_role_if_child() -> bool {
    let Ok(role) = std::env::var(WRITER_ROLE) else {
        return false;
    };
    let mut parts = role.split('|');
    let mut next = || parts.next().unwrap().to_owned();
    let (url, key, name, millis) = (next(), next(), next(), next());
    let millis: u64 = millis.parse().unwrap();
    runtime().block_on(async move {
        let store = PostgresStore::connect(&url).await.unwrap();
        let trail = start_trail(&store, Path::new(&key)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let timer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let told = record_until(&trail, &name, 8, stop).await;
        timer.await.unwrap();
        let mut stdout = std::io::stdout().lock();
        for (id, outcome) in told {
            match outcome {
                Told::Stored { seq, mac } => writeln!(stdout, "told {id} {seq} {mac}"),
                Told::Failed => writeln!(stdout, "told {id} failed"),
            }
            .unwrap();
        }
        stdout.flush().unwrap();
        drop(stdout);
        trail.shutdown().await.unwrap();
        store.close().await;
    });
    true
}

fn spawn_writer(test: &str, url: &str, key: &Path, name: &str, millis: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::test_path!(test),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            WRITER_ROLE,
            format!("{url}|{}|{name}|{millis}", key.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn parse_told(line: &str) -> Option<(String, Told)> {
    // The test harness may have printed the test's name on the same line.
    let rest = &line[line.find("told ")? + 5..];
    let mut parts = rest.split_whitespace();
    let id = parts.next()?.to_owned();
    match parts.next()? {
        "failed" => Some((id, Told::Failed)),
        seq => Some((
            id,
            Told::Stored {
                seq: seq.parse().ok()?,
                mac: Mac::from_hex(parts.next()?).ok()?,
            },
        )),
    }
}

#[test]
fn four_processes_make_one_chain_with_one_seal_per_finished_epoch() {
    if run_writer_role_if_child() {
        return;
    }
    let runtime = runtime();
    let url = runtime.block_on(pg::fresh_database());
    // Created once here, so the writers do not race to set up the schema.
    let store = runtime.block_on(PostgresStore::connect(&url)).unwrap();
    let keys = keys(4);
    let mut children: Vec<Child> = ["alice", "bob", "carol", "dave"]
        .iter()
        .zip(&keys.copies)
        .map(|(name, key)| {
            spawn_writer(
                "four_processes_make_one_chain_with_one_seal_per_finished_epoch",
                &url,
                key,
                name,
                4_000,
            )
        })
        .collect();
    let mut told = HashMap::new();
    for child in &mut children {
        let stdout = child.stdout.take().unwrap();
        told.extend(
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| parse_told(&line)),
        );
        assert!(child.wait().unwrap().success());
    }
    let failed = told.values().filter(|t| matches!(t, Told::Failed)).count();
    assert_eq!(failed, 0, "writers failed under contention");
    runtime.block_on(async {
        let entries = read_trail(&store).await;
        let acknowledged = assert_told_matches_stored(&told, &entries);
        assert!(acknowledged > 100, "only {acknowledged} events recorded");
        let epochs = assert_one_seal_per_finished_epoch(&entries);
        assert!(epochs >= 2, "only {epochs} epochs ended while writing");
        for (seq, entry) in entries.iter().enumerate() {
            assert_eq!(entry.seq, seq as u64, "the chain has a gap");
        }
        assert_intact(&store, keys.verification).await;
    });
}

// ---------------------------------------------------------------------
// Connections killed mid-append.

#[test]
fn killed_connections_tell_every_caller_what_is_stored() {
    let runtime = runtime();
    runtime.block_on(async {
        let url = pg::fresh_database().await;
        let writer_url = format!("{url}?application_name=trailseal_writer");
        let store = PostgresStoreOptions::from_url(&writer_url)
            .unwrap()
            .max_connections(4)
            .open()
            .await
            .unwrap();
        let killer_pool = sqlx::PgPool::connect(&url).await.unwrap();
        let keys = keys(1);
        let trail = start_trail(&store, &keys.copies[0]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicU64::new(0));
        let killing = {
            let stop = stop.clone();
            let kills = kills.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(3) {
                    // Only backends in the middle of an append statement.
                    let killed: i64 = sqlx::query_scalar(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                         FROM pg_stat_activity \
                         WHERE application_name = 'trailseal_writer' AND state = 'active' \
                         AND query LIKE 'WITH head AS%'",
                    )
                    .fetch_one(&killer_pool)
                    .await
                    .unwrap();
                    kills.fetch_add(killed as u64, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                stop.store(true, Ordering::Relaxed);
            })
        };
        let told = record_until(&trail, "kill", 8, stop).await;
        killing.await.unwrap();
        let kills = kills.load(Ordering::Relaxed);
        eprintln!("{kills} writer connections terminated mid-append");
        assert!(kills > 0, "no append was interrupted");
        // The trail keeps working once the connections are left alone.
        let receipt = trail.record(upload("after")).await.unwrap();
        trail.shutdown().await.unwrap();
        let mut told = told;
        told.insert(
            "after".to_owned(),
            Told::Stored {
                seq: receipt.seq,
                mac: receipt.mac,
            },
        );
        let entries = read_trail(&store).await;
        let acknowledged = assert_told_matches_stored(&told, &entries);
        assert!(acknowledged > 0);
        assert_intact(&store, keys.verification).await;
    });
}

// ---------------------------------------------------------------------
// A server restart while writers run.

#[test]
fn writers_recover_after_a_server_restart() {
    let url = std::env::var("TRAILSEAL_TEST_POSTGRES_RESTARTABLE_URL");
    let restart = std::env::var("TRAILSEAL_TEST_POSTGRES_RESTART");
    let (Ok(url), Ok(restart)) = (url, restart) else {
        // Same rule as every PostgreSQL test: never pass by skipping in CI.
        assert!(
            !pg::under_ci(),
            "TRAILSEAL_TEST_POSTGRES_RESTARTABLE_URL and TRAILSEAL_TEST_POSTGRES_RESTART are not set; run the tests through scripts/with-postgres"
        );
        eprintln!(
            "NOTICE: no restartable PostgreSQL server: skipping the restart test; run scripts/test to run it"
        );
        return;
    };
    let runtime = runtime();
    runtime.block_on(async {
        let url = pg::fresh_database_on(&url).await;
        let store = PostgresStoreOptions::from_url(&url)
            .unwrap()
            .acquire_timeout(TimeDelta::seconds(5))
            .open()
            .await
            .unwrap();
        let keys = keys(1);
        let trail = start_trail(&store, &keys.copies[0]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let restarted_at = Arc::new(std::sync::Mutex::new(None));
        let restarting = {
            let stop = stop.clone();
            let restarted_at = restarted_at.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let status = tokio::process::Command::new(&restart)
                    .status()
                    .await
                    .unwrap();
                assert!(status.success(), "the server did not restart");
                *restarted_at.lock().unwrap() = Some(Instant::now());
                tokio::time::sleep(Duration::from_secs(2)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let told = record_until(&trail, "restart", 8, stop).await;
        restarting.await.unwrap();
        assert!(restarted_at.lock().unwrap().is_some());
        // Writers recovered: an event recorded now is stored.
        let receipt = trail.record(upload("after")).await.unwrap();
        trail.shutdown().await.unwrap();
        let entries = read_trail(&store).await;
        // The event recorded last, then the seal of the shutdown's close.
        let last = entries.len() - 1;
        assert_eq!(entries[last].kind, trailseal::EntryKind::EpochSeal);
        assert_eq!(entries[last - 1].seq, receipt.seq);
        let mut told = told;
        told.insert(
            "after".to_owned(),
            Told::Stored {
                seq: receipt.seq,
                mac: receipt.mac,
            },
        );
        assert_told_matches_stored(&told, &entries);
        assert_intact(&store, keys.verification).await;
        store.close().await;
    });
}
