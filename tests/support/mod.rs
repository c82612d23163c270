//! Shared helpers for integration tests: a trail of realistic events written
//! through the real writer, with a manual clock.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use trailseal::{
    Actor, Entry, Event, FindingKind, ManualClock, MemoryStore, SealingKey, Trail, TrailReport,
    VerificationKey, Verifier,
};

pub const TRAIL: &str = "admin";
pub const EPOCH_SECONDS: u64 = 900;

/// The binary of the library's example `name`, built now if it is missing
/// or stale (a focused test run builds no examples).
pub fn example(name: &str) -> PathBuf {
    build(&["--package", "trailseal", "--example", name])
        .join("examples")
        .join(name)
}

/// The binary `name` of the workspace's package `package`, built now if it
/// is missing or stale: a package's tests get only its own binaries built.
pub fn binary(package: &str, name: &str) -> PathBuf {
    build(&["--package", package, "--bin", name]).join(name)
}

/// Builds with cargo in the test's own profile; returns the profile's
/// folder.
fn build(what: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile folder")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet"]).args(what);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(repository())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {what:?} failed");
    profile_dir
}

/// The repository's top folder (the workspace's), whichever package's
/// tests include this module.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|folder| folder.join("Cargo.lock").is_file())
        .expect("the tests run inside the repository")
        .to_path_buf()
}

/// The name the test harness gives test `name` of the module calling this,
/// for running that one test in a child process.
#[macro_export]
macro_rules! test_path {
    ($name:expr) => {
        match module_path!().split_once("::") {
            Some((_crate, module)) => format!("{module}::{}", $name),
            None => $name.to_string(),
        }
    };
}

/// How many lines (line breaks) a file holds.
pub fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .unwrap()
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
}

/// A database file and its folder as they are on disk: equal before and
/// after an operation proves that the operation wrote nothing, neither to
/// the file (its bytes and modification time) nor next to it (no `-wal`,
/// `-shm` or journal appeared or vanished).
#[derive(PartialEq, Eq)]
pub struct FolderState {
    pub bytes: Vec<u8>,
    pub modified: SystemTime,
    pub names: Vec<PathBuf>,
}

impl FolderState {
    pub fn of(database: &Path) -> Self {
        let mut names: Vec<PathBuf> = std::fs::read_dir(database.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        names.sort();
        Self {
            bytes: std::fs::read(database).unwrap(),
            modified: std::fs::metadata(database).unwrap().modified().unwrap(),
            names,
        }
    }
}

impl std::fmt::Debug for FolderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes themselves would bury a failed assertion.
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.bytes, &mut hasher);
        let bytes = format!(
            "{} bytes, hash {:016x}",
            self.bytes.len(),
            std::hash::Hasher::finish(&hasher)
        );
        f.debug_struct("FolderState")
            .field("bytes", &bytes)
            .field("modified", &self.modified)
            .field("names", &self.names)
            .finish()
    }
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

pub struct Fixture {
    pub store: MemoryStore,
    pub sealing: Arc<SealingKey>,
    pub verification: VerificationKey,
    pub clock: ManualClock,
    pub trail: Trail,
}

impl Fixture {
    pub async fn new() -> Self {
        let clock = ManualClock::new(start_time());
        let (sealing, verification) =
            SealingKey::generate("k1", start_time(), EPOCH_SECONDS).unwrap();
        let sealing = Arc::new(sealing);
        let store = MemoryStore::new();
        let trail = Trail::builder(TRAIL, Arc::new(store.clone()), sealing.clone())
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .unwrap();
        Self {
            store,
            sealing,
            verification,
            clock,
            trail,
        }
    }

    /// Records `count` events, `step` apart.
    pub async fn record(&self, count: usize, step: TimeDelta) {
        for i in 0..count {
            self.trail.record(sample_event(i)).await.unwrap();
            self.clock.advance(step);
        }
    }

    pub async fn seal(&self) {
        self.trail.seal_finished_epochs().await.unwrap();
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.store.dump(TRAIL)
    }

    pub fn restore(&self, entries: Vec<Entry>) {
        self.store.restore(TRAIL, entries);
    }

    pub async fn verify(&self) -> TrailReport {
        Verifier::new(clone_key(&self.verification))
            .verify_trail(&self.store, TRAIL)
            .await
            .unwrap()
    }
}

/// A standard trail: 40 events one minute apart (three sealed epochs and an
/// open one), all seals written.
pub async fn standard_trail() -> Fixture {
    let fixture = Fixture::new().await;
    fixture.record(40, TimeDelta::minutes(1)).await;
    fixture.seal().await;
    fixture
}

pub fn clone_key(key: &VerificationKey) -> VerificationKey {
    // Round-trip through a file, as an auditor would receive it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verification.key");
    key.save(&path).unwrap();
    VerificationKey::load(&path).unwrap()
}

pub fn sample_event(i: usize) -> Event {
    let actions = [
        "database.create",
        "mailbox.delete",
        "session.login",
        "domain.create",
    ];
    let mut builder = Event::builder(actions[i % actions.len()])
        .actor(Actor::customer(format!("kunde{}", i % 7)))
        .tenant(format!("kunde{}", i % 7))
        .target("database", format!("db{i}"))
        .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8)))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64)")
        .request_id(format!("req-{i}"))
        .meta("size_mb", i as i64 * 10);
    if i % 5 == 3 {
        builder = builder.failure("quota exceeded");
    }
    builder.build().unwrap()
}

/// The findings as `(kind, seq)` pairs, in report order.
pub fn findings(report: &TrailReport) -> Vec<(FindingKind, u64)> {
    report.findings.iter().map(|f| (f.kind, f.seq)).collect()
}

/// Index of the first entry of a kind after `from`.
pub fn position_of(entries: &[Entry], kind: trailseal::EntryKind, from: usize) -> usize {
    entries
        .iter()
        .skip(from)
        .position(|e| e.kind == kind)
        .unwrap()
        + from
}
