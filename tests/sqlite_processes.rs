//! `SqliteStore` shared by real OS processes: concurrent writers and a
//! writer killed with SIGKILL. The tests run their own test binary again
//! as the writer processes; `WRITER_ROLE` selects that role.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use futures_util::TryStreamExt;
use trailseal::{
    Actor, Event, SealingKey, SqliteStore, Store, Trail, Verifier, model::Mac,
    store::SqliteStoreOptions,
};

/// Set in a child process: the test runs the writer role instead.
const WRITER_ROLE: &str = "TRAILSEAL_TEST_WRITER";

/// What a writer process is told to do.
struct WriterArgs {
    database: PathBuf,
    sealing_key: PathBuf,
    name: String,
    /// Events to record; 0 means until killed.
    events: usize,
}

/// Runs the writer role if this process is a child; returns whether it was.
/// Each acknowledged event is printed as `ack <seq> <mac>` as soon as its
/// future completes.
fn run_writer_role_if_child() -> bool {
    let Ok(role) = std::env::var(WRITER_ROLE) else {
        return false;
    };
    let mut parts = role.split('|');
    let mut next = || parts.next().unwrap().to_owned();
    let args = WriterArgs {
        database: next().into(),
        sealing_key: next().into(),
        name: next(),
        events: next().parse().unwrap(),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(writer(args));
    true
}

async fn writer(args: WriterArgs) {
    let store = SqliteStoreOptions::new(&args.database)
        .busy_timeout(TimeDelta::seconds(30))
        .open()
        .await
        .unwrap();
    let key = SealingKey::open(&args.sealing_key).unwrap();
    let trail = Trail::builder("ftp", Arc::new(store.clone()), Arc::new(key))
        .max_conflicts(10_000)
        .start()
        .await
        .unwrap();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<(u64, Mac)>();
    // Several callers at once, as a panel's request handlers would be, so
    // the writer forms batches of varying size.
    let callers = 8;
    for caller in 0..callers {
        let trail = trail.clone();
        let acks = acks.clone();
        let name = args.name.clone();
        let events = args.events;
        tokio::spawn(async move {
            let mut i = caller;
            while events == 0 || i < events {
                let event = Event::builder("ftp.upload")
                    .actor(Actor::customer(name.clone()))
                    .target("file", format!("/{name}/upload-{i}.txt"))
                    .build()
                    .unwrap();
                let receipt = trail.record(event).await.unwrap();
                acks.send((receipt.seq, receipt.mac)).unwrap();
                i += callers;
            }
        });
    }
    drop(acks);
    let mut stdout = std::io::stdout().lock();
    while let Some((seq, mac)) = acked.recv().await {
        writeln!(stdout, "ack {seq} {mac}").unwrap();
        stdout.flush().unwrap();
    }
    drop(stdout);
    trail.shutdown().await.unwrap();
    store.close().await;
}

fn spawn_writer(test: &str, args: &WriterArgs) -> Child {
    let role = format!(
        "{}|{}|{}|{}",
        args.database.display(),
        args.sealing_key.display(),
        args.name,
        args.events
    );
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::test_path!(test),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WRITER_ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn parse_ack(line: &str) -> Option<(u64, Mac)> {
    // The test harness may have printed the test's name on the same line.
    let rest = &line[line.find("ack ")? + 4..];
    let (seq, mac) = rest.split_once(' ')?;
    Some((seq.parse().ok()?, Mac::from_hex(mac.trim()).ok()?))
}

/// A database with its schema, a verification key and one copy of the
/// sealing key per writer (each process evolves its own copy).
struct Setup {
    _dir: tempfile::TempDir,
    database: PathBuf,
    verification: trailseal::VerificationKey,
    key_copies: Vec<PathBuf>,
}

async fn setup(writers: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("trail.db");
    SqliteStore::open(&database).await.unwrap().close().await;
    let genesis = Utc::now() - TimeDelta::minutes(1);
    let keys = dir.path().join("keys");
    let (_, verification) = SealingKey::create_files(&keys, "k1", genesis, 3600).unwrap();
    let key_copies = (0..writers)
        .map(|n| {
            let copy = dir.path().join(format!("sealing-{n}.key"));
            std::fs::copy(keys.join("sealing.key"), &copy).unwrap();
            copy
        })
        .collect();
    Setup {
        _dir: dir,
        database,
        verification,
        key_copies,
    }
}

/// Checks the trail: intact, and every acknowledged event stored under the
/// seq and MAC it was acknowledged with.
async fn check_trail(setup: Setup, acks: &[(u64, Mac)]) -> u64 {
    let store = SqliteStore::open(&setup.database).await.unwrap();
    let report = Verifier::new(setup.verification)
        .verify_trail(&store, "ftp")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    let stored: HashMap<u64, Mac> = store
        .scan("ftp", 0)
        .map_ok(|entry| (entry.seq, entry.mac))
        .try_collect()
        .await
        .unwrap();
    for (seq, mac) in acks {
        assert_eq!(
            stored.get(seq),
            Some(mac),
            "acknowledged ftp#{seq} is missing"
        );
    }
    store.close().await;
    report.entries
}

fn read_acks(child: &mut Child) -> Vec<(u64, Mac)> {
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| parse_ack(&line))
        .collect()
}

#[test]
fn two_processes_append_to_one_file_as_one_chain() {
    if run_writer_role_if_child() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = runtime.block_on(setup(2));
    let per_writer = 600;
    let mut children: Vec<Child> = ["alice", "bob"]
        .iter()
        .zip(&setup.key_copies)
        .map(|(name, key)| {
            spawn_writer(
                "two_processes_append_to_one_file_as_one_chain",
                &WriterArgs {
                    database: setup.database.clone(),
                    sealing_key: key.clone(),
                    name: name.to_string(),
                    events: per_writer,
                },
            )
        })
        .collect();
    let mut acks = Vec::new();
    for child in &mut children {
        acks.extend(read_acks(child));
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(acks.len(), 2 * per_writer);
    let mut seqs: Vec<u64> = acks.iter().map(|(seq, _)| *seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 2 * per_writer, "two events share a seq");
    let entries = runtime.block_on(check_trail(setup, &acks));
    // Genesis, every event, and the seal with which the first writer to
    // shut down closed the epoch (the second finds it closed); nothing else,
    // nothing lost.
    assert_eq!(entries, 2 * per_writer as u64 + 2);
}

#[test]
fn writer_killed_mid_batch_leaves_every_acknowledged_event() {
    if run_writer_role_if_child() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = runtime.block_on(setup(1));
    let mut child = spawn_writer(
        "writer_killed_mid_batch_leaves_every_acknowledged_event",
        &WriterArgs {
            database: setup.database.clone(),
            sealing_key: setup.key_copies[0].clone(),
            name: "carol".to_owned(),
            events: 0,
        },
    );
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = Vec::new();
    // Kill it while it is busy writing, without warning.
    while acks.len() < 2_000 {
        let line = lines.next().expect("the writer stopped early").unwrap();
        acks.extend(parse_ack(&line));
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    // Acknowledgements already in the pipe count too.
    acks.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|line| parse_ack(&line)),
    );
    let entries = runtime.block_on(check_trail(setup, &acks));
    assert!(entries > acks.len() as u64, "{entries} entries");
}
