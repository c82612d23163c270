//! Sealing real log files: every fixture line becomes one entry, the trail
//! verifies, rotation and restarts lose and duplicate nothing.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use trailseal::ingest::{Follower, LogFormat, ParseOptions, UNPARSED_ACTION};
use trailseal::{
    Entry, MemoryStore, SealingKey, Store, Trail, Verifier,
    read::{Language, render},
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ingest")
        .join(name)
}

fn options() -> ParseOptions {
    ParseOptions::default().year_reference(Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap())
}

struct Setup {
    store: MemoryStore,
    key: Arc<SealingKey>,
    verifier: Verifier,
}

impl Setup {
    fn new() -> Self {
        let (key, verification) = SealingKey::generate("ingest", Utc::now(), 900).unwrap();
        Self {
            store: MemoryStore::new(),
            key: Arc::new(key),
            verifier: Verifier::new(verification),
        }
    }

    async fn follower(&self, path: &Path, format: LogFormat) -> (Trail, Follower) {
        let trail = Trail::open(
            format.trail(),
            Arc::new(self.store.clone()),
            self.key.clone(),
        )
        .await
        .unwrap();
        let follower = Follower::builder(trail.clone(), Arc::new(self.store.clone()), path, format)
            .source("test-source")
            .options(options())
            .batch_lines(4)
            .start()
            .await
            .unwrap();
        (trail, follower)
    }

    async fn events(&self, trail: &str) -> Vec<Entry> {
        let entries: Vec<Entry> = self.store.scan(trail, 0).try_collect().await.unwrap();
        entries
            .into_iter()
            .filter(|e| e.kind == trailseal::EntryKind::Event)
            .collect()
    }

    async fn assert_intact(&self, trail: &str) {
        let report = self
            .verifier
            .verify_trail(&self.store, trail)
            .await
            .unwrap();
        assert!(report.is_intact(), "{report}");
    }
}

fn metadata(entry: &Entry) -> Map<String, Value> {
    serde_json::from_str(entry.value("metadata").unwrap()).unwrap()
}

/// Seals a fixture and checks entries == lines, returning the events.
async fn seal_fixture(name: &str, format: LogFormat, unparsed: u64) -> (Setup, Vec<Entry>) {
    let setup = Setup::new();
    let path = fixture(name);
    let (_trail, mut follower) = setup.follower(&path, format).await;
    let sealed = follower.poll().await.unwrap();
    let lines = support::line_count(&path);
    assert_eq!(sealed as usize, lines, "{name}: one entry per line");
    let stats = follower.stats();
    assert_eq!(stats.lines as usize, lines);
    assert_eq!(stats.unparsed, unparsed, "{name}: unparsed lines");
    assert_eq!(stats.parsed + stats.unparsed, stats.lines);
    let events = setup.events(format.trail()).await;
    assert_eq!(events.len(), lines);
    let unparsed_entries = events
        .iter()
        .filter(|e| e.value("action") == Some(UNPARSED_ACTION))
        .count();
    assert_eq!(unparsed_entries as u64, unparsed);
    setup.assert_intact(format.trail()).await;
    (setup, events)
}

#[tokio::test]
async fn web_access_log_is_sealed_line_for_line() {
    let (_setup, events) = seal_fixture("web-access.log", LogFormat::WebAccess, 1).await;
    let first = metadata(&events[0]);
    assert_eq!(events[0].value("action"), Some("web.request"));
    assert_eq!(events[0].value("context.ip"), Some("203.0.113.5"));
    assert_eq!(first["request"], "/shop/?id=7");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 2326);
    assert_eq!(first["referrer"], "https://example.org/");
    assert_eq!(
        events[0].value("occurred_at"),
        Some("2024-10-10T11:55:36.000000Z")
    );
    assert_eq!(events[1].value("context.htaccess_user"), Some("alice"));
    assert_eq!(events[2].value("context.ip"), Some("2001:db8::17"));
    // SQL in the path is data, kept verbatim.
    assert!(
        metadata(&events[4])["request"]
            .as_str()
            .unwrap()
            .contains("' OR '1'='1")
    );
    // The escaped newline stays an escape: no second line is forged.
    let agent = events[5].value("context.user_agent").unwrap();
    assert!(!agent.contains('\n'));
    assert!(agent.contains("evil\\nFAKE"));
    // A password in a query string is masked.
    let login = metadata(&events[8]);
    assert!(!login["request"].as_str().unwrap().contains("hunter2"));
    let unparsed = metadata(&events[9]);
    assert_eq!(unparsed["line"], "this is not an access log line");
    assert_eq!(unparsed["line_len"], 30);
    // Common Log Format without referrer and agent; "-" bytes are 0.
    assert_eq!(metadata(&events[10])["bytes"], 0);
}

#[tokio::test]
async fn virtual_host_first_names_the_domain() {
    let (_setup, events) = seal_fixture("web-vhost.log", LogFormat::WebAccess, 0).await;
    let domains: Vec<_> = events.iter().map(|e| e.value("target.id")).collect();
    assert_eq!(
        domains,
        [
            Some("example.org"),
            Some("shop.example.net"),
            Some("blog.example.com")
        ]
    );
    assert_eq!(events[1].value("actor.name"), Some("kunde123"));
}

#[tokio::test]
async fn hostile_lines_are_escaped_cut_and_counted() {
    let (_setup, events) = seal_fixture("web-hostile.log", LogFormat::WebAccess, 2).await;
    let agent = events[0].value("context.user_agent").unwrap();
    assert!(
        !agent.contains('\u{1b}') && !agent.contains('\u{7}'),
        "{agent}"
    );
    let lossy = metadata(&events[1]);
    assert_eq!(lossy["invalid_utf8"], true);
    assert!(lossy["request"].as_str().unwrap().contains('\u{FFFD}'));
    // The 64 KiB request parses; its request is cut with the length kept.
    let long = metadata(&events[2]);
    assert_eq!(events[2].value("action"), Some("web.request"));
    assert_eq!(long["request_len"], 65537);
    assert!(long["request"].as_str().unwrap().len() <= trailseal::ingest::MAX_FIELD_LEN);
    let garbage = metadata(&events[3]);
    assert_eq!(garbage["invalid_utf8"], true);
    assert!(!garbage["line"].as_str().unwrap().contains('\u{1b}'));
    let huge = metadata(&events[4]);
    assert_eq!(huge["line_len"], 70000);
    assert!(huge["line"].as_str().unwrap().len() <= trailseal::ingest::MAX_UNPARSED_LEN);
    assert_eq!(events[5].value("action"), Some("web.request"));
}

#[tokio::test]
async fn postfix_lines_are_correlated_by_queue_id() {
    let (_setup, events) = seal_fixture("postfix.log", LogFormat::Postfix, 0).await;
    let sent = &events[3];
    assert_eq!(sent.value("action"), Some("mail.delivery"));
    assert_eq!(sent.value("target.id"), Some("20241010.abc@example.org"));
    assert_eq!(sent.value("context.ip"), Some("203.0.113.9"));
    let m = metadata(sent);
    assert_eq!(m["sender"], "alice@example.org");
    assert_eq!(m["recipient"], "bob@example.net");
    assert_eq!(m["size"], 2345);
    assert_eq!(m["peer_host"], "mx.example.net");
    assert_eq!(m["status"], "sent");
    let bounced = &events[4];
    assert_eq!(bounced.value("outcome"), Some("failure"));
    assert!(
        bounced
            .value("outcome.reason")
            .unwrap()
            .contains("User unknown")
    );
    let reject = &events[7];
    assert_eq!(reject.value("outcome"), Some("failure"));
    assert_eq!(metadata(reject)["recipient"], "spam@example.org");
    // "connect from" has no queue id: a session line with its peer.
    let connect = &events[8];
    assert_eq!(connect.value("action"), Some("mail.session"));
    assert_eq!(connect.value("target.id"), Some("192.0.2.99"));
    assert_eq!(connect.value("context.ip"), Some("192.0.2.99"));
    assert_eq!(metadata(connect)["peer_host"], "unknown");
    assert_eq!(
        metadata(connect)["text"],
        "connect from unknown[192.0.2.99]"
    );
    assert_eq!(
        render(connect, Language::English),
        "postfix talked to unknown (192.0.2.99): connect from unknown[192.0.2.99]"
    );
    // After "removed" the queue id is forgotten; a local delivery of
    // another message still parses.
    assert_eq!(metadata(&events[9])["peer_host"], "local");
    // The other lines of a queued message read as sentences of their own.
    assert_eq!(
        render(&events[6], Language::English),
        "postfix handled queued mail 4BkQ3x0ZzFz9sWQ: removed"
    );
    assert_eq!(
        render(&events[0], Language::German),
        "postfix hat die E-Mail 4BkQ3x0ZzFz9sWQ in der Warteschlange bearbeitet: \
         client=mail.example.org[198.51.100.7]"
    );
}

#[tokio::test]
async fn dovecot_logins_never_store_a_password() {
    let (setup, events) = seal_fixture("dovecot.log", LogFormat::Dovecot, 1).await;
    assert_eq!(events[0].value("actor.name"), Some("alice@example.org"));
    assert_eq!(events[0].value("context.ip"), Some("198.51.100.23"));
    assert_eq!(metadata(&events[0])["protocol"], "imap");
    assert_eq!(events[1].value("outcome"), Some("failure"));
    assert!(
        events[1]
            .value("outcome.reason")
            .unwrap()
            .contains("auth failed")
    );
    assert_eq!(metadata(&events[2])["bytes"], 1024 + 53311);
    assert_eq!(events[3].value("outcome.reason"), Some("Password mismatch"));
    assert_eq!(metadata(&events[4])["bytes"], 48211);
    for entry in setup.events("mailbox").await {
        let text = format!("{:?}", entry.body);
        assert!(
            !text.contains("hunter2") && !text.contains("secret99"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn mailman_posts_members_and_bounces() {
    let (_setup, events) = seal_fixture("mailman.log", LogFormat::Mailman, 1).await;
    let actions: Vec<_> = events.iter().map(|e| e.value("action").unwrap()).collect();
    assert_eq!(
        actions,
        [
            "mailinglist.post",
            "mailinglist.post",
            "mailinglist.member.add",
            "mailinglist.member.remove",
            "mailinglist.bounce",
            "mailinglist.bounce",
            UNPARSED_ACTION
        ]
    );
    assert_eq!(metadata(&events[0])["message_id"], "20241010.x@example.org");
    assert_eq!(events[1].value("outcome"), Some("failure"));
    assert_eq!(metadata(&events[2])["address"], "bob@example.net");
    assert_eq!(metadata(&events[5])["address"], "dave@example.com");
}

#[tokio::test]
async fn php_mail_log_names_the_script() {
    let (_setup, events) = seal_fixture("php-mail.log", LogFormat::PhpMail, 1).await;
    assert_eq!(
        events[0].value("target.id"),
        Some("/var/www/example.org/htdocs/contact.php")
    );
    let m = metadata(&events[0]);
    assert_eq!(m["sender"], "shop@example.org");
    assert_eq!(m["message_id"], "c0ffee@example.org");
    assert_eq!(m["x_mailer"], "PHP/8.2.7");
    assert_eq!(m["line"], 42);
    assert_eq!(metadata(&events[1])["sender"], "service@paypa1.example");
    assert_eq!(events[2].value("occurred_at"), None);
}

#[tokio::test]
async fn ftp_logins_and_transfers() {
    let (_setup, events) = seal_fixture("pure-ftpd.log", LogFormat::PureFtpd, 0).await;
    let actions: Vec<_> = events.iter().map(|e| e.value("action").unwrap()).collect();
    assert_eq!(
        actions,
        [
            "ftp.session",
            "ftp.login",
            "ftp.upload",
            "ftp.download",
            "ftp.login",
            "ftp.session"
        ]
    );
    assert_eq!(metadata(&events[2])["bytes"], 1432);
    assert_eq!(events[4].value("outcome"), Some("failure"));
    assert_eq!(events[4].value("context.ip"), Some("198.51.100.66"));
    assert_eq!(
        render(&events[0], Language::English),
        "FTP session of unknown (203.0.113.5): New connection from 203.0.113.5"
    );
    assert_eq!(
        render(&events[5], Language::German),
        "FTP-Sitzung von web42 (203.0.113.5): Logout."
    );

    let (_setup, events) = seal_fixture("vsftpd.log", LogFormat::Vsftpd, 0).await;
    let actions: Vec<_> = events.iter().map(|e| e.value("action").unwrap()).collect();
    assert_eq!(
        actions,
        [
            "ftp.session",
            "ftp.login",
            "ftp.upload",
            "ftp.download",
            "ftp.login",
            "ftp.session"
        ]
    );
    assert_eq!(metadata(&events[3])["bytes"], 20480);
    assert_eq!(events[3].value("target.id"), Some("/htdocs/db.sql"));
    assert_eq!(events[4].value("outcome"), Some("failure"));
}

#[test]
fn formats_are_detected_from_their_lines() {
    for (name, format) in [
        ("web-access.log", LogFormat::WebAccess),
        ("postfix.log", LogFormat::Postfix),
        ("dovecot.log", LogFormat::Dovecot),
        ("mailman.log", LogFormat::Mailman),
        ("php-mail.log", LogFormat::PhpMail),
        ("pure-ftpd.log", LogFormat::PureFtpd),
        ("vsftpd.log", LogFormat::Vsftpd),
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let detected = LogFormat::detect(bytes.split(|&b| b == b'\n'));
        assert_eq!(detected, Some(format), "{name}");
    }
}

fn append(path: &Path, lines: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in lines {
        writeln!(
            file,
            "192.0.2.1 - - [10/Oct/2024:13:55:36 +0200] \"GET /page/{i} HTTP/1.1\" 200 {i} \"-\" \"t\""
        )
        .unwrap();
    }
}

/// The `bytes` of every web entry, which the test lines set to their number.
async fn numbers(setup: &Setup) -> Vec<u64> {
    setup
        .events("web")
        .await
        .iter()
        .filter(|e| e.value("action") != Some(trailseal::ingest::GAP_ACTION))
        .map(|e| metadata(e)["bytes"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn rename_rotation_and_copytruncate_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, 0..10);
    let setup = Setup::new();
    let (_trail, mut follower) = setup.follower(&path, LogFormat::WebAccess).await;
    assert_eq!(follower.poll().await.unwrap(), 10);

    // Lines written just before a rename rotation are read from the old file.
    append(&path, 10..15);
    std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
    append(&path, 15..20);
    assert_eq!(follower.poll().await.unwrap(), 10);

    // copytruncate: the file shrinks under the same identity; the copy
    // takes the newest rotated name, as logrotate names it.
    std::fs::rename(
        dir.path().join("access.log.1"),
        dir.path().join("access.log.2"),
    )
    .unwrap();
    std::fs::copy(&path, dir.path().join("access.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, 20..23);
    assert_eq!(follower.poll().await.unwrap(), 3);
    assert_eq!(numbers(&setup).await, (0..23).collect::<Vec<u64>>());
    // What was written between the copy and the truncation cannot be
    // known: the place is marked.
    let gaps = setup.events("web").await;
    let gaps: Vec<_> = gaps
        .iter()
        .filter(|e| e.value("action") == Some(trailseal::ingest::GAP_ACTION))
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(metadata(gaps[0])["reason"], "copytruncate");
    setup.assert_intact("web").await;
}

#[tokio::test]
async fn a_restart_resumes_exactly_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, 0..7);
    // Half a line: not sealed until its line break arrives.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"192.0.2.1 - - [10/Oct/2024:13:55:36 +0200] \"GET /page/7 HTTP/1.1\" 200 7")
        .unwrap();
    let setup = Setup::new();
    {
        let (trail, mut follower) = setup.follower(&path, LogFormat::WebAccess).await;
        assert_eq!(follower.poll().await.unwrap(), 7);
        trail.shutdown().await.unwrap();
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b" \"-\" \"t\"\n")
        .unwrap();
    append(&path, 8..12);
    {
        let (trail, mut follower) = setup.follower(&path, LogFormat::WebAccess).await;
        let position = follower.position().unwrap();
        assert!(position.offset > 0);
        assert_eq!(follower.poll().await.unwrap(), 5);
        trail.shutdown().await.unwrap();
    }
    // Restart after a rotation that happened while stopped: the rotated
    // file is finished first, found by its identity.
    append(&path, 12..14);
    std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
    append(&path, 14..16);
    let (_trail, mut follower) = setup.follower(&path, LogFormat::WebAccess).await;
    assert_eq!(follower.poll().await.unwrap(), 4);
    assert_eq!(follower.poll().await.unwrap(), 0);
    assert_eq!(numbers(&setup).await, (0..16).collect::<Vec<u64>>());
    setup.assert_intact("web").await;
}

/// A MemoryStore whose `fail_at`-th append fails.
#[derive(Clone)]
struct FailingAppend {
    inner: MemoryStore,
    appends: Arc<std::sync::atomic::AtomicUsize>,
    fail_at: usize,
}

#[async_trait::async_trait]
impl Store for FailingAppend {
    async fn head(
        &self,
        trail: &str,
    ) -> Result<Option<trailseal::model::Head>, trailseal::StoreError> {
        self.inner.head(trail).await
    }
    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), trailseal::StoreError> {
        let count = 1 + self
            .appends
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if count == self.fail_at {
            return Err(trailseal::StoreError::Database("disk full".into()));
        }
        self.inner.append(trail, after, entries).await
    }
    async fn epoch_summary(
        &self,
        trail: &str,
        epoch: u64,
    ) -> Result<trailseal::model::EpochSummary, trailseal::StoreError> {
        self.inner.epoch_summary(trail, epoch).await
    }
    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> trailseal::store::EntryStream<'a> {
        self.inner.scan(trail, from)
    }
    async fn trails(&self) -> Result<Vec<String>, trailseal::StoreError> {
        self.inner.trails().await
    }
    async fn delete_events(
        &self,
        trail: &str,
        first: u64,
        last: u64,
    ) -> Result<u64, trailseal::StoreError> {
        self.inner.delete_events(trail, first, last).await
    }
    async fn erase_fields(
        &self,
        trail: &str,
        erasures: &[trailseal::store::Erasure],
    ) -> Result<u64, trailseal::StoreError> {
        self.inner.erase_fields(trail, erasures).await
    }
    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, trailseal::StoreError> {
        self.inner.restrict(trail, seqs, restricted).await
    }
    async fn put_snapshot(
        &self,
        snapshot: &trailseal::retention::Snapshot,
    ) -> Result<(), trailseal::StoreError> {
        self.inner.put_snapshot(snapshot).await
    }
    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<trailseal::retention::Snapshot>, trailseal::StoreError> {
        self.inner.snapshot(trail, name, upto_seq).await
    }
}

#[tokio::test]
async fn a_failed_batch_stops_the_follower_at_the_last_committed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, 0..20);
    let setup = Setup::new();
    // Genesis with the first batch, the second batch, then the third fails
    // while the fourth is already read.
    let failing = FailingAppend {
        inner: setup.store.clone(),
        appends: Arc::default(),
        fail_at: 3,
    };
    let trail = Trail::open("web", Arc::new(failing), setup.key.clone())
        .await
        .unwrap();
    let mut follower = Follower::builder(
        trail.clone(),
        Arc::new(setup.store.clone()),
        &path,
        LogFormat::WebAccess,
    )
    .source("test-source")
    .options(options())
    .batch_lines(4)
    .start()
    .await
    .unwrap();

    let err = follower.poll().await.unwrap_err();
    assert!(
        matches!(err, trailseal::ingest::IngestError::Record { .. }),
        "{err}"
    );
    assert_eq!(numbers(&setup).await, (0..8).collect::<Vec<u64>>());
    assert_eq!(follower.stats().lines, 8, "counts follow the commits");
    let position = follower.position().unwrap();
    let eight_lines: u64 = std::fs::read(&path)
        .unwrap()
        .split_inclusive(|&b| b == b'\n')
        .take(8)
        .map(|line| line.len() as u64)
        .sum();
    assert_eq!(position.offset, eight_lines);

    // The next poll continues right after the last committed line.
    assert_eq!(follower.poll().await.unwrap(), 12);
    assert_eq!(numbers(&setup).await, (0..20).collect::<Vec<u64>>());
    setup.assert_intact("web").await;
}
