//! Following a log through real rotations: the `logrotate` binary rotates
//! the file (rename, copytruncate, compress, delaycompress, dateext, while
//! the follower runs or while it is stopped), the entries go to a real
//! SQLite file, and every line written is counted: sealed exactly once, in
//! order, with a `log.gap` entry exactly where lines cannot be recovered.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::TimeDelta;
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use trailseal::ingest::{Follower, GAP_ACTION, LogFormat, UNPARSED_ACTION};
use trailseal::{
    Entry, EntryKind, ManualClock, SealingKey, SqliteStore, Store, Trail, VerificationKey, Verifier,
};

use crate::support;

/// A log folder, a SQLite trail database and a writer of numbered lines.
struct Rig {
    dir: tempfile::TempDir,
    log: PathBuf,
    store: SqliteStore,
    key: Arc<SealingKey>,
    verification: VerificationKey,
    clock: ManualClock,
    /// The number of the next line written.
    next: usize,
    /// Byte length of everything written to the current file so far.
    written: u64,
}

/// An access log line whose byte count is its number.
fn line(number: usize) -> String {
    format!(
        "192.0.2.1 - - [10/Oct/2024:13:55:36 +0200] \"GET /page/{number} HTTP/1.1\" 200 {number} \"-\" \"t\"\n"
    )
}

fn metadata(entry: &Entry) -> Map<String, Value> {
    serde_json::from_str(entry.value("metadata").unwrap()).unwrap()
}

impl Rig {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/access.log");
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        let (key, verification) =
            SealingKey::generate("ingest", support::start_time(), support::EPOCH_SECONDS).unwrap();
        Self {
            dir,
            log,
            store,
            key: Arc::new(key),
            verification,
            clock: ManualClock::new(support::start_time()),
            next: 0,
            written: 0,
        }
    }

    /// Appends `count` numbered lines to the log (creating it, as a web
    /// server does after a rotation).
    fn write(&mut self, count: usize) {
        self.append(&(self.next..self.next + count).map(line).collect::<String>());
        self.next += count;
    }

    fn append(&mut self, text: &str) {
        if !self.log.exists() {
            self.written = 0;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
        self.written += text.len() as u64;
    }

    /// Runs the real logrotate once, forced, with `directives` for the log.
    fn logrotate(&mut self, directives: &str) {
        logrotate(self.dir.path(), &self.log, directives);
        if !self.log.exists() || directives.contains("copytruncate") {
            self.written = 0;
        }
    }

    async fn follower(&self) -> (Trail, Follower) {
        self.follower_of(&self.log).await
    }

    async fn follower_of(&self, path: &Path) -> (Trail, Follower) {
        let store: Arc<dyn Store> = Arc::new(self.store.clone());
        let trail = Trail::builder("web", store.clone(), self.key.clone())
            .clock(Arc::new(self.clock.clone()))
            .start()
            .await
            .unwrap();
        let follower = Follower::builder(trail.clone(), store, path, LogFormat::WebAccess)
            .batch_lines(64)
            .partial_line_after(TimeDelta::seconds(30))
            .start()
            .await
            .unwrap();
        (trail, follower)
    }

    async fn events(&self) -> Vec<Entry> {
        let entries: Vec<Entry> = self.store.scan("web", 0).try_collect().await.unwrap();
        entries
            .into_iter()
            .filter(|entry| entry.kind == EntryKind::Event)
            .collect()
    }

    /// The numbers of the lines sealed, in trail order, and the gap
    /// entries.
    async fn sealed(&self) -> (Vec<usize>, Vec<Map<String, Value>>) {
        let mut lines = Vec::new();
        let mut gaps = Vec::new();
        for entry in self.events().await {
            let fields = metadata(&entry);
            match entry.value("action") {
                Some(GAP_ACTION) => gaps.push(fields),
                Some("web.request") => lines.push(fields["bytes"].as_u64().unwrap() as usize),
                other => panic!("unexpected entry {other:?}: {fields:?}"),
            }
        }
        (lines, gaps)
    }

    /// Every line written sealed exactly once, in order, and `gaps` gap
    /// entries; the trail verifies.
    async fn assert_exactly_once(&self, gaps: usize) -> Vec<Map<String, Value>> {
        let (lines, found) = self.sealed().await;
        assert_eq!(lines, (0..self.next).collect::<Vec<_>>());
        assert_eq!(found.len(), gaps, "gap entries: {found:?}");
        self.assert_intact().await;
        found
    }

    async fn assert_intact(&self) {
        let report = Verifier::new(support::clone_key(&self.verification))
            .verify_trail(&self.store, "web")
            .await
            .unwrap();
        assert!(report.is_intact(), "{report}");
    }

    fn rotated(&self, name: &str) -> PathBuf {
        self.log.with_file_name(name)
    }
}

/// Runs the real logrotate once, forced, with `directives` for `log`; its
/// configuration and state live in `dir`.
fn logrotate(dir: &Path, log: &Path, directives: &str) {
    let config = dir.join("logrotate.conf");
    std::fs::write(
        &config,
        format!(
            "{} {{\n    rotate 9\n    missingok\n    {directives}\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    let status = Command::new(system_program("logrotate"))
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&config)
        .status()
        .expect("logrotate is installed (Debian package logrotate)");
    assert!(status.success(), "logrotate failed: {status}");
}

/// A program Debian installs in /usr/sbin, which a user's PATH may lack.
fn system_program(name: &str) -> PathBuf {
    let installed = Path::new("/usr/sbin").join(name);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(name)
    }
}

/// Stops a follower as a process exit does: its files are closed (their
/// inodes may be reused), its trail shut down.
async fn stop(trail: Trail, follower: Follower) {
    drop(follower);
    trail.shutdown().await.unwrap();
}

#[tokio::test]
async fn ingest_rename_rotation_while_following_loses_nothing() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    // Written before the rotation, read from the renamed file.
    rig.write(50);
    rig.logrotate("");
    assert!(rig.rotated("access.log.1").exists());
    // The writer has not reopened yet: nothing new to read.
    assert_eq!(follower.poll().await.unwrap(), 50);
    rig.write(50);
    assert_eq!(follower.poll().await.unwrap(), 50);
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_rename_rotation_waits_for_the_writer_to_reopen() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    // `create`: logrotate makes a new empty file at once, but the writer
    // appends to the renamed one until it reopens its log.
    rig.logrotate("create");
    let rotated = rig.rotated("access.log.1");
    assert_eq!(std::fs::metadata(&rig.log).unwrap().len(), 0);
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&rotated)
        .unwrap();
    old.write_all(line(10).as_bytes()).unwrap();
    assert_eq!(follower.poll().await.unwrap(), 1);
    old.write_all(line(11).as_bytes()).unwrap();
    rig.next = 12;
    rig.write(3);
    assert_eq!(follower.poll().await.unwrap(), 4);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_after_a_restart_the_renamed_file_is_followed_until_the_writer_reopens() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    stop(trail, follower).await;
    rig.write(10);
    rig.logrotate("create");
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    // The writer, still on the renamed file, appends a line.
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(rig.rotated("access.log.1"))
        .unwrap();
    old.write_all(line(20).as_bytes()).unwrap();
    assert_eq!(follower.poll().await.unwrap(), 1);
    rig.next = 21;
    rig.write(3);
    assert_eq!(follower.poll().await.unwrap(), 3);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_a_newer_rotated_file_ends_the_wait_for_the_writer() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    rig.logrotate("create");
    assert_eq!(follower.poll().await.unwrap(), 0);
    // The writer wrote the new file, which was rotated in turn before the
    // next poll: the log is empty again, but the follower moves on.
    rig.write(20);
    rig.logrotate("create");
    assert_eq!(std::fs::metadata(&rig.log).unwrap().len(), 0);
    assert_eq!(follower.poll().await.unwrap(), 20);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_two_rotations_while_stopped_read_the_middle_file() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    stop(trail, follower).await;
    rig.write(30);
    rig.logrotate("");
    rig.write(500);
    rig.logrotate("");
    rig.write(40);
    // access.log.2 (the committed file, 30 lines left), access.log.1 (the
    // middle file, 500 lines), then access.log.
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 570);
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_compress_without_delaycompress_loses_nothing() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    // While following: the file is renamed, gzipped and removed; the
    // follower still has it open and finishes it.
    rig.write(300);
    rig.logrotate("compress");
    assert!(rig.rotated("access.log.1.gz").exists());
    assert!(!rig.rotated("access.log.1").exists());
    rig.write(10);
    assert_eq!(follower.poll().await.unwrap(), 310);
    stop(trail, follower).await;
    // While stopped, twice: the committed file is found compressed by the
    // fingerprint of its content, then the middle one, then the log.
    rig.write(300);
    rig.logrotate("compress");
    rig.write(3200);
    rig.logrotate("compress");
    rig.write(20);
    assert!(rig.rotated("access.log.3.gz").exists());
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 3520);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_a_compressed_file_written_after_the_new_log_was_created_is_no_copy() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    rig.write(10);
    rig.logrotate("create\n    compress");
    // The writer wrote the renamed file after logrotate created the new
    // one: the compressed file keeps that later time.
    let compressed = std::fs::File::options()
        .write(true)
        .open(rig.rotated("access.log.1.gz"))
        .unwrap();
    let created = std::fs::metadata(&rig.log).unwrap().created().unwrap();
    compressed
        .set_modified(created + std::time::Duration::from_secs(1))
        .unwrap();
    rig.write(5);
    assert_eq!(follower.poll().await.unwrap(), 15);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_delaycompress_rotations_while_stopped_lose_nothing() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    stop(trail, follower).await;
    for count in [200, 300, 400] {
        rig.write(count);
        rig.logrotate("compress\n    delaycompress");
    }
    rig.write(5);
    // The committed file is now access.log.3.gz.
    assert!(rig.rotated("access.log.3.gz").exists());
    assert!(rig.rotated("access.log.1").exists());
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 905);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_dateext_rotation_while_stopped_loses_nothing() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    stop(trail, follower).await;
    rig.write(20);
    rig.logrotate("dateext\n    compress");
    rig.write(30);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 50);
    stop(trail, follower).await;
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_copytruncate_is_detected_after_the_file_grew_past_the_old_position() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    let old_offset = rig.written;
    // Lines written before the copy are read from the copy; the new
    // content grows well past the old read position before the next poll.
    rig.write(50);
    let copied = rig.written;
    rig.logrotate("copytruncate");
    rig.write(250);
    assert!(rig.written > copied);
    assert_eq!(follower.poll().await.unwrap(), 300);
    assert_eq!(follower.poll().await.unwrap(), 0);
    let position = follower.position().unwrap();
    assert_eq!(position.offset, rig.written);
    stop(trail, follower).await;
    // The window between the copy and the truncation is marked, once,
    // after the copy's last line.
    let gaps = rig.assert_exactly_once(1).await;
    assert!(old_offset < copied);
    assert_eq!(gaps[0]["reason"], "copytruncate");
    assert_eq!(gaps[0]["gap_offset"], copied);
    assert_eq!(gaps[0]["lost_bytes"], "unknown");
    let events = rig.events().await;
    assert_eq!(events[150].value("action"), Some(GAP_ACTION));
    // The truncated file kept its identity: the gap names it, and reading
    // resumed in it at 0.
    let last = metadata(events.last().unwrap());
    assert_eq!(gaps[0]["gap_file"], last["log_file"]);
    assert_eq!(gaps[0]["log_file"], last["log_file"]);
    assert_eq!(gaps[0]["log_offset"], 0);
}

#[tokio::test]
async fn ingest_copytruncate_is_marked_when_the_follower_is_still_on_an_older_file() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    // Renamed with `create`; the new file stays empty at the next poll, so
    // the follower stays on the renamed one.
    rig.logrotate("create");
    assert_eq!(follower.poll().await.unwrap(), 0);
    // Then the new file is written and rotated by copytruncate.
    rig.write(20);
    rig.logrotate("copytruncate");
    rig.write(30);
    // The renamed file, the copy (access.log.1), its gap, the log.
    assert_eq!(follower.poll().await.unwrap(), 50);
    stop(trail, follower).await;
    let gaps = rig.assert_exactly_once(1).await;
    assert_eq!(gaps[0]["reason"], "copytruncate");
    assert_eq!(rig.events().await[30].value("action"), Some(GAP_ACTION));
}

#[tokio::test]
async fn ingest_copytruncate_with_compress_while_stopped_reads_the_compressed_copy() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    stop(trail, follower).await;
    rig.write(300);
    rig.logrotate("copytruncate\n    compress");
    assert!(rig.rotated("access.log.1.gz").exists());
    rig.write(200);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 500);
    assert_eq!(follower.stats().gaps, 1);
    stop(trail, follower).await;
    let gaps = rig.assert_exactly_once(1).await;
    assert_eq!(gaps[0]["reason"], "copytruncate");
    // A compressed copy is as young as its compression: its gap is sealed
    // when the truncation is seen, before the copy's remaining lines.
    assert_eq!(rig.events().await[100].value("action"), Some(GAP_ACTION));
}

#[tokio::test]
async fn ingest_two_copytruncate_rotations_while_stopped_seal_a_gap_after_each_copy() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    stop(trail, follower).await;
    rig.write(20);
    rig.logrotate("copytruncate");
    rig.write(30);
    rig.logrotate("copytruncate");
    rig.write(40);
    // The first copy (access.log.2) from the committed offset, the second
    // (access.log.1) whole, then the log; each copy's window is marked.
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 90);
    stop(trail, follower).await;
    let gaps = rig.assert_exactly_once(2).await;
    assert!(gaps.iter().all(|gap| gap["reason"] == "copytruncate"));
    let events = rig.events().await;
    assert_eq!(events[120].value("action"), Some(GAP_ACTION));
    assert_eq!(events[151].value("action"), Some(GAP_ACTION));
}

#[tokio::test]
async fn ingest_a_file_removed_while_stopped_leaves_a_gap_entry() {
    let mut rig = Rig::new().await;
    rig.write(100);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    let sealed_to = follower.position().unwrap().offset;
    stop(trail, follower).await;
    // Lines 100..120 are removed with their file before they are read.
    rig.write(20);
    rig.logrotate("rotate 0");
    assert!(!rig.log.exists());
    let lost = 100..120;
    rig.write(30);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 30);
    stop(trail, follower).await;
    let (lines, gaps) = rig.sealed().await;
    let expected: Vec<usize> = (0..rig.next).filter(|n| !lost.contains(n)).collect();
    assert_eq!(lines, expected);
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0]["reason"], "file not found");
    assert_eq!(gaps[0]["gap_offset"], sealed_to);
    assert_eq!(gaps[0]["lost_bytes"], "unknown");
    // The gap sits where the lines are missing.
    let events = rig.events().await;
    assert_eq!(events[100].value("action"), Some(GAP_ACTION));
    rig.assert_intact().await;
}

#[tokio::test]
async fn ingest_the_same_file_under_another_name_is_one_source() {
    let mut rig = Rig::new().await;
    rig.write(40);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 40);
    let source = follower.source().to_owned();
    stop(trail, follower).await;
    let link = rig.dir.path().join("access-link.log");
    std::os::unix::fs::symlink(&rig.log, &link).unwrap();
    let dotted = rig.dir.path().join("logs/../logs/./access.log");
    for (path, new_lines) in [(link, 5), (dotted, 7)] {
        rig.write(new_lines);
        let (trail, mut follower) = rig.follower_of(&path).await;
        assert_eq!(follower.source(), source, "{}", path.display());
        assert_eq!(follower.poll().await.unwrap(), new_lines as u64);
        stop(trail, follower).await;
    }
    assert_eq!(Path::new(&source), std::fs::canonicalize(&rig.log).unwrap());
    rig.assert_exactly_once(0).await;
}

#[tokio::test]
async fn ingest_a_position_recorded_without_fingerprint_under_the_path_as_given_is_resumed() {
    use std::os::unix::fs::MetadataExt;
    let mut rig = Rig::new().await;
    rig.write(10);
    let sealed_to = (0..6).map(|n| line(n).len() as u64).sum::<u64>();
    // An entry as followers wrote them before fingerprints and resolved
    // paths: the source is the path as given, the file its inode.
    let given = rig.dir.path().join("logs/../logs/access.log");
    let file = std::fs::metadata(&rig.log).unwrap();
    let legacy = trailseal::Event::builder(UNPARSED_ACTION)
        .actor(trailseal::Actor::system("ingest"))
        .meta("log_source", given.to_string_lossy().into_owned())
        .meta("log_file", format!("{}:{}", file.dev(), file.ino()))
        .meta("log_offset", sealed_to)
        .build()
        .unwrap();
    let (trail, follower) = rig.follower().await;
    trail.record(legacy).await.unwrap();
    stop(trail, follower).await;
    let (trail, mut follower) = rig.follower_of(&given).await;
    let position = follower.position().unwrap();
    assert_eq!(position.offset, sealed_to);
    assert_eq!(position.fingerprint, None);
    assert_eq!(follower.poll().await.unwrap(), 4);
    // From now on under the resolved path, with fingerprints.
    assert_eq!(
        Path::new(follower.source()),
        std::fs::canonicalize(&rig.log).unwrap()
    );
    assert!(follower.position().unwrap().fingerprint.is_some());
    stop(trail, follower).await;
    let events = rig.events().await;
    assert_eq!(events.len(), 5);
    let numbers: Vec<u64> = events[1..]
        .iter()
        .map(|entry| metadata(entry)["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [6, 7, 8, 9]);
    rig.assert_intact().await;
}

/// The entries of lines sealed without their line break.
async fn unbroken(rig: &Rig) -> Vec<Map<String, Value>> {
    rig.events()
        .await
        .iter()
        .map(metadata)
        .filter(|fields| fields.get("line_break") == Some(&Value::Bool(false)))
        .collect()
}

#[tokio::test]
async fn ingest_a_last_line_without_break_is_sealed_after_the_quiet_period_once() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let full = line(10);
    let (head, tail) = full.split_at(40);
    rig.append(head);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    // Still being written: not sealed before the quiet period is over.
    rig.clock.advance(TimeDelta::seconds(29));
    assert_eq!(follower.poll().await.unwrap(), 0);
    rig.clock.advance(TimeDelta::seconds(1));
    assert_eq!(follower.poll().await.unwrap(), 1);
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    // What follows starts a new line, after a restart too.
    rig.append(tail);
    rig.next = 11;
    rig.write(5);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 6);
    rig.clock.advance(TimeDelta::minutes(5));
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    let events = rig.events().await;
    assert_eq!(events.len(), 17);
    let partial = metadata(&events[10]);
    assert_eq!(partial["line_break"], false);
    assert_eq!(partial["line_len"], 40);
    assert_eq!(events[10].value("action"), Some(UNPARSED_ACTION));
    assert_eq!(events[11].value("action"), Some(UNPARSED_ACTION));
    assert_eq!(metadata(&events[11])["line_len"], tail.len() - 1);
    assert_eq!(unbroken(&rig).await.len(), 1);
    rig.assert_intact().await;
}

#[tokio::test]
async fn ingest_a_last_line_without_break_is_sealed_when_rotated() {
    let mut rig = Rig::new().await;
    rig.write(10);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 10);
    // The writer's last line lacks its break; the file is rotated.
    let last = line(10);
    rig.append(last.trim_end());
    rig.next = 11;
    assert_eq!(follower.poll().await.unwrap(), 0);
    rig.logrotate("compress\n    delaycompress");
    rig.write(5);
    assert_eq!(follower.poll().await.unwrap(), 6);
    rig.clock.advance(TimeDelta::minutes(5));
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    // And never again after a restart.
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 0);
    stop(trail, follower).await;
    let partial = unbroken(&rig).await;
    assert_eq!(partial.len(), 1);
    assert_eq!(partial[0]["bytes"], 10);
    rig.assert_exactly_once(0).await;
}

/// A real nginx on 127.0.0.1, writing its access log into the rig's log
/// folder; stopped when dropped.
struct Nginx {
    child: std::process::Child,
    port: u16,
}

impl Nginx {
    fn start(rig: &Rig) -> Self {
        let prefix = rig.dir.path().join("nginx");
        std::fs::create_dir_all(&prefix).unwrap();
        // A free port: taken from the kernel, released for nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let temp = |name: &str| prefix.join(name).display().to_string();
        let config = prefix.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "worker_processes 1;\n\
                 pid {pid};\n\
                 error_log {error} notice;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 client_body_temp_path {body};\n\
                 proxy_temp_path {proxy};\n\
                 fastcgi_temp_path {fastcgi};\n\
                 uwsgi_temp_path {uwsgi};\n\
                 scgi_temp_path {scgi};\n\
                 access_log {log} combined;\n\
                 server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n\
                 }}\n",
                pid = temp("nginx.pid"),
                error = temp("error.log"),
                body = temp("body"),
                proxy = temp("proxy"),
                fastcgi = temp("fastcgi"),
                uwsgi = temp("uwsgi"),
                scgi = temp("scgi"),
                log = rig.log.display(),
            ),
        )
        .unwrap();
        let child = Command::new(system_program("nginx"))
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config)
            .arg("-g")
            .arg("daemon off;")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx is installed (Debian package nginx-light)");
        let nginx = Self { child, port };
        wait_for("nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", nginx.port)).is_ok()
        });
        nginx
    }

    /// Requests `/n/<number>` for each number; one access log line each.
    fn request(&self, numbers: std::ops::Range<usize>) {
        use std::io::Read;
        for number in numbers {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
            write!(
                stream,
                "GET /n/{number} HTTP/1.0\r\nHost: localhost\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
    }

    /// The logrotate directive that makes nginx reopen its log.
    fn reopen(&self) -> String {
        format!(
            "postrotate\n        kill -USR1 {}\n    endscript",
            self.child.id()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so that the master stops its workers too.
        let stopped = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Waits for `condition`, checking often, failing after a generous limit:
/// how long it takes never decides the outcome.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < limit,
            "waited too long for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The lines in the log and all its rotated files, compressed or not.
fn lines_on_disk(log: &Path) -> usize {
    use std::io::Read;
    let name = log.file_name().unwrap().to_str().unwrap();
    let mut lines = 0;
    for entry in std::fs::read_dir(log.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_str().unwrap();
        if !file_name.starts_with(name) {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let mut content = Vec::new();
        let read = if file_name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(file).read_to_end(&mut content)
        } else {
            std::io::BufReader::new(file).read_to_end(&mut content)
        };
        if read.is_ok() {
            lines += content.iter().filter(|&&b| b == b'\n').count();
        }
    }
    lines
}

#[tokio::test]
async fn ingest_nginx_lines_survive_every_rotation_exactly_once() {
    let rig = Rig::new().await;
    let nginx = Nginx::start(&rig);
    let mut sent = 0;
    let mut send = |count: usize| {
        nginx.request(sent..sent + count);
        sent += count;
        let expected = sent;
        wait_for("nginx's lines on disk", || {
            lines_on_disk(&rig.log) == expected
        });
    };
    let rotate = |directives: &str| logrotate(rig.dir.path(), &rig.log, directives);
    send(200);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 200);
    // Rename with `create`, nginx reopening on USR1.
    send(100);
    rotate(&format!("create\n    {}", nginx.reopen()));
    send(100);
    assert_eq!(follower.poll().await.unwrap(), 200);
    // compress + delaycompress.
    rotate(&format!(
        "compress\n    delaycompress\n    {}",
        nginx.reopen()
    ));
    send(100);
    assert_eq!(follower.poll().await.unwrap(), 100);
    // copytruncate: nginx keeps its file, which starts over.
    send(50);
    rotate("copytruncate");
    send(150);
    assert_eq!(follower.poll().await.unwrap(), 200);
    stop(trail, follower).await;
    // Two rotations while stopped.
    send(100);
    rotate(&format!("create\n    {}", nginx.reopen()));
    send(100);
    rotate(&format!(
        "compress\n    delaycompress\n    {}",
        nginx.reopen()
    ));
    send(50);
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 250);
    stop(trail, follower).await;
    drop(nginx);

    let mut requests = Vec::new();
    let mut gaps = 0;
    for entry in rig.events().await {
        if entry.value("action") == Some(GAP_ACTION) {
            gaps += 1;
            continue;
        }
        assert_eq!(entry.value("action"), Some("web.request"));
        let request = metadata(&entry)["request"].as_str().unwrap().to_owned();
        requests.push(
            request
                .strip_prefix("/n/")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
        );
    }
    let mut counts = vec![0; sent];
    for &number in &requests {
        counts[number] += 1;
    }
    let wrong: Vec<_> = (0..sent).filter(|&n| counts[n] != 1).collect();
    assert!(wrong.is_empty(), "not sealed exactly once: {wrong:?}");
    assert_eq!(requests, (0..sent).collect::<Vec<_>>());
    assert_eq!(gaps, 1, "one copytruncate");
    rig.assert_intact().await;
}
