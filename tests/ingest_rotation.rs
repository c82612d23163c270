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
        let config = self.dir.path().join("logrotate.conf");
        std::fs::write(
            &config,
            format!(
                "{} {{\n    rotate 9\n    missingok\n    {directives}\n}}\n",
                self.log.display()
            ),
        )
        .unwrap();
        let status = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(self.dir.path().join("logrotate.state"))
            .arg(&config)
            .status()
            .expect("logrotate is installed (Debian package logrotate)");
        assert!(status.success(), "logrotate failed: {status}");
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
    let old_offset = rig.written;
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 100);
    // Lines written before the copy are read from the copy; the new
    // content grows well past the old read position before the next poll.
    rig.write(50);
    rig.logrotate("copytruncate");
    rig.write(250);
    assert!(rig.written > old_offset + 50 * line(100).len() as u64);
    assert_eq!(follower.poll().await.unwrap(), 300);
    assert_eq!(follower.poll().await.unwrap(), 0);
    let position = follower.position().unwrap();
    assert_eq!(position.offset, rig.written);
    stop(trail, follower).await;
    // The window between the copy and the truncation is marked, once.
    let gaps = rig.assert_exactly_once(1).await;
    assert_eq!(gaps[0]["reason"], "copytruncate");
    assert_eq!(gaps[0]["gap_offset"], old_offset);
    assert_eq!(gaps[0]["lost_bytes"], "unknown");
    // The truncated file kept its identity: the lines after the gap name
    // it; the gap entry itself names the copy, where reading resumed.
    let events = rig.events().await;
    assert_eq!(events[100].value("action"), Some(GAP_ACTION));
    let last = metadata(events.last().unwrap());
    assert_eq!(gaps[0]["gap_file"], last["log_file"]);
    assert_ne!(gaps[0]["log_file"], last["log_file"]);
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
}

#[tokio::test]
async fn ingest_two_copytruncate_rotations_while_stopped_seal_one_gap() {
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
    // (access.log.1) whole, then the log.
    let (trail, mut follower) = rig.follower().await;
    assert_eq!(follower.poll().await.unwrap(), 90);
    stop(trail, follower).await;
    let gaps = rig.assert_exactly_once(1).await;
    assert_eq!(gaps[0]["reason"], "copytruncate");
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
