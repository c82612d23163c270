//! The verdict: every way the verifier was seen to say "intact" on a trail
//! that was not, tried again on real SQLite files and exports with the
//! real binary. Each test names what must never pass.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

/// A trail database written by the quickstart example (four trails, the
/// last hour up to now), its keys, and what the tests make of it.
struct Quickstart {
    dir: tempfile::TempDir,
}

impl Quickstart {
    fn new(events: u32) -> Self {
        let quickstart = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let output = Command::new(support::example("quickstart"))
            .args(["--database", &quickstart.url(), "--keys"])
            .arg(quickstart.dir.path().join("keys"))
            .args(["--events", &events.to_string()])
            .output()
            .expect("quickstart runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        quickstart
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> PathBuf {
        self.path("trail.db")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }

    fn key(&self) -> PathBuf {
        self.path("keys/verification.key")
    }

    fn sealing_key(&self) -> PathBuf {
        self.path("keys/sealing.key")
    }

    async fn sql(&self, statements: &[&str]) {
        let mut connection = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("plain connection");
        for &statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut connection)
                .await
                .unwrap_or_else(|err| panic!("{statement}: {err}"));
        }
        connection.close().await.expect("closed");
    }

    async fn seqs(&self, sql: &str) -> Vec<i64> {
        let mut connection = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("plain connection");
        let seqs = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut connection)
            .await
            .expect(sql);
        connection.close().await.expect("closed");
        seqs
    }

    /// A checkpoint of every trail, taken now, in a file.
    fn checkpoint(&self) -> PathBuf {
        let output = run(&[
            "checkpoint",
            "--key",
            self.key().to_str().unwrap(),
            &self.url(),
        ]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let path = self.path("all.checkpoint");
        std::fs::write(&path, &output.stdout).expect("written");
        path
    }

    /// The database exported as JSON Lines.
    fn export(&self) -> PathBuf {
        let output = run(&["export", &self.url()]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let path = self.path("trail.jsonl");
        std::fs::write(&path, &output.stdout).expect("written");
        path
    }

    fn verify(&self, source: &str, extra: &[&str]) -> Verdict {
        let key = self.key();
        let mut args = vec!["verify", "--json", "--key", key.to_str().unwrap(), source];
        args.extend_from_slice(extra);
        Verdict::of(run(&args))
    }
}

/// What `audit-verify verify --json` said.
struct Verdict {
    code: i32,
    /// `(trail, kind, seq)` of every finding.
    findings: Vec<(String, String, u64)>,
    report: Value,
    stderr: String,
}

impl Verdict {
    fn of(output: Output) -> Self {
        let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let findings = report["trails"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|trail| trail["findings"].as_array().cloned().unwrap_or_default())
            .map(|f| {
                (
                    f["trail"].as_str().unwrap_or_default().to_owned(),
                    f["kind"].as_str().unwrap_or_default().to_owned(),
                    f["seq"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        Self {
            code: code(&output),
            findings,
            report,
            stderr: stderr(&output),
        }
    }

    fn kinds(&self, trail: &str) -> Vec<String> {
        self.findings
            .iter()
            .filter(|(t, _, _)| t == trail)
            .map(|(_, kind, _)| kind.clone())
            .collect()
    }

    fn trail(&self, name: &str) -> &Value {
        self.report["trails"]
            .as_array()
            .and_then(|trails| trails.iter().find(|trail| trail["trail"] == name))
            .unwrap_or(&Value::Null)
    }
}

fn run(args: &[&str]) -> Output {
    run_with_limit(Command::new(BIN).args(args))
}

/// Runs a command to its end, failing the test if it is still running
/// after a minute: the cases here take well under a second, and a hang is
/// the bug some of them guard against.
fn run_with_limit(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id().to_string();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("{command:?} was still running after a minute");
        }
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn finding(trail: &str, kind: &str, seq: u64) -> (String, String, u64) {
    (trail.to_owned(), kind.to_owned(), seq)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("readable")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).expect("written");
}

// 1. A trail that is not there is reported, never skipped.

#[tokio::test]
async fn a_trail_deleted_whole_is_reported_against_its_checkpoint() {
    let quickstart = Quickstart::new(120);
    let checkpoint = quickstart.checkpoint();
    let checkpoint = checkpoint.to_str().unwrap();
    quickstart
        .sql(&[
            "DELETE FROM entries WHERE trail = 'admin'",
            "DELETE FROM trails WHERE name = 'admin'",
        ])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &["--checkpoint", checkpoint]);
    assert_eq!(verdict.code, 1, "{}", verdict.stderr);
    assert_eq!(verdict.kinds("admin"), ["truncated"]);
    assert_eq!(verdict.trail("admin")["entries"], 0);
    // The other trails are verified as before.
    assert!(verdict.kinds("mailbox").is_empty());
}

#[tokio::test]
async fn an_empty_store_is_nothing_to_verify_and_missing_against_a_checkpoint() {
    let quickstart = Quickstart::new(60);
    let checkpoint = quickstart.checkpoint();
    quickstart
        .sql(&["DELETE FROM entries", "DELETE FROM trails"])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.code, 2);
    assert!(
        verdict.stderr.contains("nothing to verify"),
        "{}",
        verdict.stderr
    );
    let verdict = quickstart.verify(
        &quickstart.url(),
        &["--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert_eq!(verdict.code, 1);
    for trail in ["admin", "ftp", "mailbox", "php-mail"] {
        assert_eq!(verdict.kinds(trail), ["truncated"], "{trail}");
    }
}

#[tokio::test]
async fn an_empty_or_blank_export_is_nothing_to_verify_and_missing_against_a_checkpoint() {
    let quickstart = Quickstart::new(60);
    let checkpoint = quickstart.checkpoint();
    let export = quickstart.export();
    for content in ["", "\n", "  \n\t\n"] {
        std::fs::write(&export, content).unwrap();
        let verdict = quickstart.verify(export.to_str().unwrap(), &[]);
        assert_eq!(verdict.code, 2, "{content:?}");
        let verdict = quickstart.verify(
            export.to_str().unwrap(),
            &["--checkpoint", checkpoint.to_str().unwrap()],
        );
        assert_eq!(verdict.code, 1, "{content:?}");
        assert_eq!(verdict.kinds("admin"), ["truncated"], "{content:?}");
    }
}

#[tokio::test]
async fn an_export_without_one_trail_is_caught_by_its_checkpoint() {
    let quickstart = Quickstart::new(120);
    let checkpoint = quickstart.checkpoint();
    let export = quickstart.export();
    let without_ftp: Vec<String> = lines(&export)
        .into_iter()
        .filter(|line| !line.contains("\"trail\":\"ftp\""))
        .collect();
    write_lines(&export, &without_ftp);
    let verdict = quickstart.verify(
        export.to_str().unwrap(),
        &["--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert_eq!(verdict.code, 1);
    assert_eq!(verdict.kinds("ftp"), ["truncated"]);
    assert!(verdict.kinds("admin").is_empty());
}

#[tokio::test]
async fn a_checkpoint_of_no_entries_and_an_unknown_trail_name_are_errors() {
    let quickstart = Quickstart::new(60);
    let export = quickstart.export();
    let zero = quickstart.path("zero.checkpoint");
    std::fs::write(
        &zero,
        "trailseal checkpoint v1\ntrail admin\nnext-seq 0\nhead-mac 0000000000000000000000000000000000000000000000000000000000000000\ntime 2026-12-01T00:00:00.000000Z\n",
    )
    .unwrap();
    let verdict = quickstart.verify(&quickstart.url(), &["--checkpoint", zero.to_str().unwrap()]);
    assert_eq!(verdict.code, 2);
    assert!(
        verdict.stderr.contains("next-seq is 0"),
        "{}",
        verdict.stderr
    );
    for source in [quickstart.url(), export.display().to_string()] {
        let verdict = quickstart.verify(&source, &["--trail", "nosuch"]);
        assert_eq!(verdict.code, 2, "{source}");
        assert!(
            verdict.stderr.contains("no trail named"),
            "{}",
            verdict.stderr
        );
    }
}

// 2. A thief of the current key cannot date entries ahead.

#[tokio::test]
async fn the_writer_refuses_to_continue_after_a_head_dated_ahead() {
    use std::sync::Arc;
    use trailseal::{Error, ManualClock, SealingKey, SqliteStore, Trail};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let (key, _) = SealingKey::generate("k1", support::start_time(), 900).unwrap();
    let key = Arc::new(key);
    let ahead = ManualClock::new(support::start_time() + chrono::TimeDelta::days(8));
    let thief = Trail::builder("admin", store.clone(), key.clone())
        .clock(Arc::new(ahead))
        .start()
        .await
        .unwrap();
    thief.record(support::sample_event(0)).await.unwrap();
    thief.shutdown().await.unwrap();
    let honest = Trail::builder("admin", store, key)
        .clock(Arc::new(ManualClock::new(support::start_time())))
        .start()
        .await
        .unwrap();
    let err = honest.record(support::sample_event(1)).await.unwrap_err();
    assert!(matches!(err, Error::HeadInFuture { .. }), "{err}");
}

// 5. Nothing stored can forge a line of a report.

#[tokio::test]
async fn trail_names_from_storage_cannot_forge_report_lines() {
    let quickstart = Quickstart::new(60);
    // A copy of a row under a name no writer makes: ESC, CR, LF and a
    // right-to-left override, which would print a forged "INTACT" line.
    quickstart
        .sql(&[
            "INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, body_commitment, mac) \
             SELECT 'x' || char(27) || '[2K' || char(13) || 'INTACT' || char(10) || char(8238), seq, epoch, key_id, recorded_at, kind, body, prev_mac, body_commitment, mac \
             FROM entries WHERE trail = 'admin' AND seq = 0",
            "INSERT INTO trails (name) SELECT trail FROM entries WHERE trail LIKE 'x%'",
        ])
        .await;
    for command in ["verify", "checkpoint"] {
        let output = run(&[
            command,
            "--key",
            quickstart.key().to_str().unwrap(),
            &quickstart.url(),
        ]);
        assert_eq!(code(&output), 1, "{command}");
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.contains(['\u{1b}', '\r', '\u{202e}']),
                "{command}: {text:?}"
            );
            assert!(
                !text.lines().any(|line| line.starts_with("INTACT")),
                "{command}: {text}"
            );
        }
        if command == "verify" {
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                text.contains("x\\u{001B}[2K\\rINTACT\\n\\u{202E}#0 forged"),
                "{text}"
            );
        }
    }
}

// 6. No stored epoch makes verification slow.

#[tokio::test]
async fn absurd_epochs_cost_nothing_and_are_future_dated() {
    let quickstart = Quickstart::new(600);
    let interior = quickstart
        .seqs("SELECT seq FROM entries WHERE trail = 'admin' AND kind = 'event' ORDER BY seq LIMIT 120")
        .await;
    let (first, second) = (interior[2], interior[3]);
    quickstart
        .sql(&[
            &format!("UPDATE entries SET epoch = 10000000 WHERE trail = 'admin' AND seq = {first}"),
            &format!(
                "UPDATE entries SET epoch = 4611686018427387904 WHERE trail = 'admin' AND seq = {second}"
            ),
        ])
        .await;
    // And many rows whose epochs jump back and forth far ahead.
    let many: Vec<String> = interior[10..125.min(interior.len())]
        .iter()
        .enumerate()
        .map(|(i, seq)| {
            let epoch = if i % 2 == 0 { 200_000 } else { 199_999 };
            format!("UPDATE entries SET epoch = {epoch} WHERE trail = 'admin' AND seq = {seq}")
        })
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    quickstart.sql(&many).await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.code, 1);
    for seq in [first, second] {
        assert!(
            verdict
                .findings
                .contains(&finding("admin", "future_dated", seq as u64)),
            "{:?}",
            verdict.findings
        );
    }
}

// 9. One stored form per entry, and bounded inputs.

#[tokio::test]
async fn every_second_form_of_an_exported_entry_is_a_finding_at_its_seq() {
    let quickstart = Quickstart::new(120);
    let export = quickstart.export();
    let original = lines(&export);
    // An admin event between two admin events, so that what is wrong with
    // it cannot touch a seal or another trail.
    let admin_event =
        |line: &String| line.contains("\"trail\":\"admin\"") && line.contains("\"kind\":\"event\"");
    let at = (1..original.len() - 1)
        .find(|&at| original[at - 1..=at + 1].iter().all(admin_event))
        .expect("three admin events in a row");
    let entry: Value = serde_json::from_str(&original[at]).unwrap();
    let seq = entry["seq"].as_u64().unwrap();
    let action = entry["body"]["action"].to_string();
    let recorded_at = entry["recorded_at"].as_str().unwrap().to_owned();
    let nanosecond = match recorded_at.split_once('.') {
        Some((whole, fraction)) => {
            let digits = fraction.trim_end_matches('Z');
            format!("{whole}.{digits:0<6}001Z")
        }
        None => recorded_at.replace('Z', ".000000001Z"),
    };
    let mac = entry["mac"].as_str().unwrap().to_owned();
    let variants: Vec<(&str, String)> = vec![
        (
            "a body field named twice",
            original[at].replacen("\"body\":{", &format!("\"body\":{{\"action\":{action},"), 1),
        ),
        (
            "an unknown field",
            original[at].replacen("\"seq\":", "\"note\":\"x\",\"seq\":", 1),
        ),
        (
            "a nanosecond",
            original[at].replacen(&recorded_at, &nanosecond, 1),
        ),
        (
            "upper-case hex",
            original[at].replacen(&mac, &mac.to_uppercase(), 1),
        ),
    ];
    for (what, line) in variants {
        assert_ne!(line, original[at], "{what}");
        let mut edited = original.clone();
        edited[at] = line;
        write_lines(&export, &edited);
        let verdict = quickstart.verify(export.to_str().unwrap(), &[]);
        assert_eq!(verdict.code, 1, "{what}");
        let around: Vec<String> = original[at.saturating_sub(3)..(at + 3).min(original.len())]
            .iter()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap();
                format!(
                    "{} {} {} {}",
                    value["seq"], value["epoch"], value["kind"], value["recorded_at"]
                )
            })
            .collect();
        assert_eq!(
            verdict.findings,
            [finding("admin", "modified", seq)],
            "{what}: only the entry itself is blamed; around it: {around:#?}"
        );
    }
}

#[tokio::test]
async fn a_key_file_with_another_schedule_is_one_key_mismatch_per_trail() {
    let quickstart = Quickstart::new(120);
    let text = std::fs::read_to_string(quickstart.key()).unwrap();
    let wrong = quickstart.path("wrong-schedule.key");
    std::fs::write(
        &wrong,
        text.replace("\"epoch_seconds\": 900", "\"epoch_seconds\": 899"),
    )
    .unwrap();
    let output = run(&[
        "verify",
        "--json",
        "--key",
        wrong.to_str().unwrap(),
        &quickstart.url(),
    ]);
    let verdict = Verdict::of(output);
    assert_eq!(verdict.code, 1, "{}", verdict.stderr);
    for trail in ["admin", "ftp", "mailbox", "php-mail"] {
        assert_eq!(verdict.kinds(trail), ["key_mismatch"], "{trail}");
    }
}

#[tokio::test]
async fn inputs_are_read_to_a_bound_and_exposed_keys_are_named() {
    let quickstart = Quickstart::new(60);
    let zero = "/dev/zero";
    let key = quickstart.key();
    for args in [
        vec!["verify", "--key", zero, quickstart.url().as_str()],
        vec![
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--checkpoint",
            zero,
            quickstart.url().as_str(),
        ],
    ] {
        let output = run(&args);
        assert_eq!(code(&output), 2, "{args:?}");
    }
    // A verification key others can read is named; a sealing key others
    // can read is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.code, 0);
    assert!(
        verdict.stderr.contains("can be read by other users"),
        "{}",
        verdict.stderr
    );
    std::fs::set_permissions(
        quickstart.sealing_key(),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let err = trailseal::SealingKey::open(quickstart.sealing_key()).unwrap_err();
    assert!(matches!(err, trailseal::KeyError::Exposed { .. }), "{err}");
    assert!(trailseal::SealingKey::open_exposed(quickstart.sealing_key()).is_ok());
}

// 10. One trail's problem does not hide another's.

#[tokio::test]
async fn an_unknown_key_on_one_trail_leaves_the_others_reported() {
    let quickstart = Quickstart::new(120);
    let seq = quickstart
        .seqs("SELECT seq FROM entries WHERE trail = 'admin' AND kind = 'event' ORDER BY seq LIMIT 1 OFFSET 5")
        .await[0];
    quickstart
        .sql(&[
            "UPDATE entries SET key_id = 'someone-else' WHERE trail = 'ftp'",
            &format!("UPDATE entries SET mac = zeroblob(32) WHERE trail = 'admin' AND seq = {seq}"),
        ])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.code, 1);
    assert_eq!(
        verdict.kinds("ftp"),
        ["unknown_key"],
        "one finding for the trail's run"
    );
    assert!(
        verdict
            .findings
            .contains(&finding("admin", "modified", seq as u64)),
        "{:?}",
        verdict.findings
    );
    assert!(verdict.kinds("mailbox").is_empty());
}

// 12. Findings blame the entry that is wrong, and only it.

#[tokio::test]
async fn entries_swapped_far_apart_are_only_reordered() {
    let quickstart = Quickstart::new(300);
    let events = quickstart
        .seqs("SELECT seq FROM entries WHERE trail = 'admin' AND kind = 'event' ORDER BY seq")
        .await;
    let (a, b) = (events[3], events[events.len() - 10]);
    quickstart
        .sql(&[
            &format!("UPDATE entries SET seq = 1000000 WHERE trail = 'admin' AND seq = {a}"),
            &format!("UPDATE entries SET seq = {a} WHERE trail = 'admin' AND seq = {b}"),
            &format!("UPDATE entries SET seq = {b} WHERE trail = 'admin' AND seq = 1000000"),
        ])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(
        verdict.findings,
        [
            finding("admin", "reordered", a as u64),
            finding("admin", "reordered", b as u64)
        ]
    );
}

#[tokio::test]
async fn a_genesis_that_fails_adds_nothing_but_its_own_finding() {
    let quickstart = Quickstart::new(120);
    quickstart
        .sql(&["UPDATE entries SET mac = zeroblob(32) WHERE trail = 'admin' AND seq = 0"])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.code, 1);
    assert_eq!(verdict.findings, [finding("admin", "modified", 0)]);
}

#[tokio::test]
async fn head_is_the_newest_entry_that_verifies() {
    let quickstart = Quickstart::new(120);
    let intact = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(intact.code, 0);
    let head = intact.trail("admin")["head"]["seq"].as_u64().unwrap();
    quickstart
        .sql(&[&format!(
            "UPDATE entries SET mac = zeroblob(32) WHERE trail = 'admin' AND seq = {head}"
        )])
        .await;
    let verdict = quickstart.verify(&quickstart.url(), &[]);
    assert_eq!(verdict.findings, [finding("admin", "modified", head)]);
    assert_eq!(verdict.trail("admin")["head"]["seq"], head - 1);
}

#[tokio::test]
async fn an_authentic_seal_that_miscounts_is_a_mismatch_and_not_counted() {
    use trailseal::{Body, EntryKind, MemoryStore, SealingKey, Store, Verifier, seal::EntryDraft};
    let start = support::start_time();
    let (key, verification) = SealingKey::generate("k1", start, 900).unwrap();
    let mut sealer = key.sealer("admin", 0, None).unwrap();
    let genesis = {
        let mut body = Body::new();
        body.insert_public("genesis.epoch_seconds", "900");
        body.insert_public("genesis.format_version", "2");
        body.insert_public("genesis.key_check", key.check_value().to_hex());
        body.insert_public(
            "genesis.key_genesis",
            trailseal::model::format_timestamp(start),
        );
        body.insert_public("genesis.trail", "admin");
        sealer.seal_body(EntryKind::Genesis, body, start)
    };
    let event = sealer
        .seal_event(
            &support::sample_event(0),
            start + chrono::TimeDelta::minutes(1),
        )
        .unwrap();
    // The seal of epoch 0 states two entries; there are two (genesis and
    // event), but it claims three.
    let mut body = Body::new();
    for (name, value) in [
        ("seal.epoch", "0".to_owned()),
        ("seal.entries", "3".to_owned()),
        ("seal.records", "1".to_owned()),
        (
            "seal.first_at",
            trailseal::model::format_timestamp(genesis.recorded_at),
        ),
        (
            "seal.last_at",
            trailseal::model::format_timestamp(event.recorded_at),
        ),
        ("seal.last_seq", "1".to_owned()),
        ("seal.last_mac", event.mac.to_hex()),
    ] {
        body.insert_public(name, value);
    }
    let seal = key
        .seal_entry(EntryDraft {
            trail: "admin".into(),
            seq: 2,
            epoch: 0,
            key_id: "k1".into(),
            recorded_at: start + chrono::TimeDelta::minutes(16),
            kind: EntryKind::EpochSeal,
            body,
            prev_mac: event.mac,
        })
        .unwrap();
    let store = MemoryStore::new();
    store
        .append("admin", None, &[genesis, event, seal])
        .await
        .unwrap();
    let report = Verifier::new(verification)
        .at(start + chrono::TimeDelta::hours(1))
        .verify_trail(&store, "admin")
        .await
        .unwrap();
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| (f.kind, f.seq))
            .collect::<Vec<_>>(),
        [(trailseal::FindingKind::SealMismatch, 2)],
        "{report}"
    );
    assert_eq!(report.seals_verified, 0);
    assert_eq!(report.authentic, 3);
}

// 2. and 3. What a thief of the current sealing key can write cannot
// explain away what was sealed before the theft.

/// A thief who copied the quickstart's sealing key file after the run.
struct Thief {
    key: trailseal::SealingKey,
    store: trailseal::SqliteStore,
    entries: Vec<trailseal::Entry>,
}

impl Thief {
    async fn of(quickstart: &Quickstart, trail: &str) -> Self {
        use futures_util::TryStreamExt;
        use trailseal::Store;
        let copy = quickstart.path("stolen.key");
        std::fs::copy(quickstart.sealing_key(), &copy).unwrap();
        let key = trailseal::SealingKey::open(&copy).unwrap();
        let store = trailseal::SqliteStore::open(quickstart.db()).await.unwrap();
        let entries = store.scan(trail, 0).try_collect().await.unwrap();
        Self {
            key,
            store,
            entries,
        }
    }

    /// Three consecutive events of a sealed epoch, well before the theft.
    fn victims(&self) -> std::ops::RangeInclusive<usize> {
        use trailseal::EntryKind;
        let at = (1..self.entries.len() - 4)
            .find(|&at| {
                self.entries[at - 1].kind == EntryKind::EpochSeal
                    && self.entries[at..at + 4]
                        .iter()
                        .all(|entry| entry.kind == EntryKind::Event)
            })
            .expect("an epoch of events after a seal");
        at..=at + 2
    }

    /// Seals that close `epochs` more epochs after the head (the first
    /// `sealed` of them), each made at the end of its epoch, then a record
    /// of `kind` with `body` dated after the last: what the stolen key lets
    /// the thief append.
    fn append_ahead(
        &self,
        head: &trailseal::Entry,
        epochs: u64,
        sealed: u64,
        kind: trailseal::EntryKind,
        body: trailseal::Body,
    ) -> Vec<trailseal::Entry> {
        use trailseal::{Body, EntryKind, seal::EntryDraft};
        let schedule = *self.key.schedule();
        let first = self.key.trail_epoch(&head.trail).unwrap();
        let mut appended: Vec<trailseal::Entry> = Vec::new();
        let mut previous = head.clone();
        for epoch in first..first + sealed.min(epochs) {
            let mut seal = Body::new();
            for (name, value) in [
                ("seal.epoch", epoch.to_string()),
                ("seal.entries", "0".to_owned()),
                ("seal.records", "0".to_owned()),
                ("seal.last_seq", previous.seq.to_string()),
                ("seal.last_mac", previous.mac.to_hex()),
            ] {
                seal.insert_public(name, value);
            }
            let sealed = self
                .key
                .seal_entry(EntryDraft {
                    trail: head.trail.clone(),
                    seq: previous.seq + 1,
                    epoch,
                    key_id: head.key_id.clone(),
                    recorded_at: schedule.start_of(epoch + 1),
                    kind: EntryKind::EpochSeal,
                    body: seal,
                    prev_mac: previous.mac,
                })
                .unwrap();
            appended.push(sealed.clone());
            previous = sealed;
        }
        let epoch = first + epochs;
        let record = self
            .key
            .seal_entry(EntryDraft {
                trail: head.trail.clone(),
                seq: previous.seq + 1,
                epoch,
                key_id: head.key_id.clone(),
                recorded_at: schedule.start_of(epoch),
                kind,
                body,
                prev_mac: previous.mac,
            })
            .unwrap();
        appended.push(record);
        appended
    }
}

/// The body of a retention record naming `ranges`, run at `run_at`.
fn retention_body(
    run_at: chrono::DateTime<chrono::Utc>,
    ranges: &[trailseal::retention::PrunedRange],
) -> trailseal::Body {
    let mut body = trailseal::Body::new();
    let cutoff = run_at - chrono::TimeDelta::days(7);
    let deleted: u64 = ranges.iter().map(|range| range.len()).sum();
    body.insert_public(
        "retention.cutoff",
        trailseal::model::format_timestamp(cutoff),
    );
    body.insert_public("retention.deleted", deleted.to_string());
    body.insert_public("retention.policy", "max_age:604800s");
    body.insert_public("retention.ranges", serde_json::to_string(ranges).unwrap());
    body.insert_public(
        "retention.run_at",
        trailseal::model::format_timestamp(run_at),
    );
    body
}

fn pruned_range(entries: &[trailseal::Entry]) -> trailseal::retention::PrunedRange {
    let (first, last) = (&entries[0], &entries[entries.len() - 1]);
    trailseal::retention::PrunedRange {
        first: first.seq,
        last: last.seq,
        before_mac: first.prev_mac,
        last_mac: last.mac,
        first_at: first.recorded_at,
        last_at: last.recorded_at,
    }
}

#[tokio::test]
async fn a_thief_cannot_pass_off_a_deletion_as_retention_dated_ahead() {
    use trailseal::{EntryKind, Store};
    // Eight days of seals, as a thief would make them; 31 days with the
    // record alone (the seals add nothing but time to the test).
    for (days, sealed, minimum) in [(8, 8 * 96, None), (31, 0, Some("30"))] {
        let quickstart = Quickstart::new(240);
        let thief = Thief::of(&quickstart, "admin").await;
        let victims = thief.victims();
        let range = pruned_range(&thief.entries[victims.clone()]);
        let head = thief.entries.last().unwrap().clone();
        // Epoch seals up to the day the record claims, so that the record
        // is as old as retention wants, by its own date.
        let epochs = days * 96;
        let run_at = thief
            .key
            .schedule()
            .start_of(thief.key.trail_epoch("admin").unwrap() + epochs);
        let forged = thief.append_ahead(
            &head,
            epochs,
            sealed,
            EntryKind::Retention,
            retention_body(run_at, std::slice::from_ref(&range)),
        );
        thief
            .store
            .append("admin", Some(head.seq), &forged)
            .await
            .unwrap();
        thief
            .store
            .delete_events("admin", range.first, range.last)
            .await
            .unwrap();
        thief.store.close().await;
        let mut extra = vec![];
        if let Some(minimum) = minimum {
            extra = vec!["--min-retention-days", minimum];
        }
        let verdict = quickstart.verify(&quickstart.url(), &extra);
        assert_eq!(verdict.code, 1, "{days} days: {}", verdict.stderr);
        // The record is beyond any key the verifier's clock allows: it
        // explains nothing, and the deleted entries are missing.
        let kinds = verdict.kinds("admin");
        assert!(
            verdict
                .findings
                .contains(&finding("admin", "missing", range.first)),
            "{days} days: {kinds:?}"
        );
        assert!(
            !kinds.contains(&"retention_violation".to_owned())
                || kinds.contains(&"missing".to_owned())
        );
        assert!(
            verdict.findings.contains(&finding(
                "admin",
                "future_dated",
                forged.last().unwrap().seq
            )),
            "{days} days: the record dated ahead"
        );
    }
}

#[tokio::test]
async fn a_thief_cannot_delete_a_legal_hold_with_the_entries_it_holds() {
    use trailseal::{EntryKind, Store};
    let quickstart = Quickstart::new(240);
    place_sealed_hold(&quickstart).await;
    let thief = Thief::of(&quickstart, "admin").await;
    let hold_at = thief
        .entries
        .iter()
        .position(|entry| entry.kind == EntryKind::HoldPlaced)
        .unwrap();
    let victims = thief.victims();
    // One record, two ranges: held events, and the hold itself.
    let ranges = [
        pruned_range(&thief.entries[victims.clone()]),
        pruned_range(&thief.entries[hold_at..=hold_at]),
    ];
    let head = thief.entries.last().unwrap().clone();
    let run_at = thief
        .key
        .schedule()
        .start_of(thief.key.trail_epoch("admin").unwrap() + 8 * 96);
    let forged = thief.append_ahead(
        &head,
        8 * 96,
        8 * 96,
        EntryKind::Retention,
        retention_body(run_at, &ranges),
    );
    thief
        .store
        .append("admin", Some(head.seq), &forged)
        .await
        .unwrap();
    thief
        .store
        .delete_events("admin", ranges[0].first, ranges[0].last)
        .await
        .unwrap();
    // The store keeps records from retention; the thief deletes by hand.
    quickstart
        .sql(&[&format!(
            "DELETE FROM entries WHERE trail = 'admin' AND seq = {}",
            ranges[1].first
        )])
        .await;
    thief.store.close().await;
    let verdict = quickstart.verify(
        &quickstart.url(),
        &[
            "--now",
            &trailseal::model::format_timestamp(run_at + chrono::TimeDelta::hours(1)),
        ],
    );
    assert_eq!(verdict.code, 1);
    let hold_epoch_seal = thief.entries[hold_at..]
        .iter()
        .find(|entry| entry.kind == EntryKind::EpochSeal)
        .unwrap()
        .seq;
    assert!(
        verdict
            .findings
            .contains(&finding("admin", "seal_mismatch", hold_epoch_seal)),
        "the seal of the hold's epoch counts the record: {:?}",
        verdict.findings
    );
}

/// The operator places a hold without filters on the admin trail (covering
/// every entry of the quickstart), in a later run that lasts until the
/// hold's epoch is sealed.
async fn place_sealed_hold(quickstart: &Quickstart) {
    use futures_util::StreamExt;
    use std::sync::Arc;
    use trailseal::Store;
    use trailseal::retention::LegalHold;
    let store = Arc::new(trailseal::SqliteStore::open(quickstart.db()).await.unwrap());
    let key = Arc::new(trailseal::SealingKey::open(quickstart.sealing_key()).unwrap());
    let head = store.head("admin").await.unwrap().unwrap();
    let clock = trailseal::ManualClock::new(head.recorded_at + chrono::TimeDelta::seconds(1));
    let trail = trailseal::Trail::builder("admin", store.clone(), key.clone())
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let since = head.recorded_at - chrono::TimeDelta::days(1);
    let placed = trail
        .place_hold(&LegalHold::new(
            "case-4711",
            "abuse",
            "police",
            ["admin"],
            since,
        ))
        .await
        .unwrap();
    let hold_epoch = store
        .scan("admin", placed.seq)
        .next()
        .await
        .unwrap()
        .unwrap()
        .epoch;
    clock.set(key.schedule().start_of(hold_epoch + 1) + chrono::TimeDelta::seconds(1));
    trail.seal_finished_epochs().await.unwrap();
    trail.shutdown().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_thief_cannot_erase_what_a_legal_hold_keeps() {
    use trailseal::{EntryKind, Store, store::Erasure};
    let quickstart = Quickstart::new(240);
    place_sealed_hold(&quickstart).await;
    let thief = Thief::of(&quickstart, "admin").await;
    let victims = thief.victims();
    let (first, last) = (
        thief.entries[*victims.start()].seq,
        thief.entries[*victims.end()].seq,
    );
    let head = thief.entries.last().unwrap().clone();
    let mut body = trailseal::Body::new();
    body.insert_public(
        "redaction.entries",
        format!(r#"[{{"first":{first},"last":{last},"fields":["actor.name"]}}]"#),
    );
    body.insert_public("redaction.reason", "erasure request");
    let forged = thief.append_ahead(&head, 0, 0, EntryKind::Redaction, body);
    let record_at = forged.last().unwrap().recorded_at;
    thief
        .store
        .append("admin", Some(head.seq), &forged)
        .await
        .unwrap();
    let erasures: Vec<Erasure> = (first..=last)
        .map(|seq| Erasure {
            seq,
            fields: vec!["actor.name".to_owned()],
        })
        .collect();
    assert_eq!(
        thief.store.erase_fields("admin", &erasures).await.unwrap(),
        3
    );
    thief.store.close().await;
    let now = trailseal::model::format_timestamp(record_at + chrono::TimeDelta::minutes(1));
    let verdict = quickstart.verify(&quickstart.url(), &["--now", &now]);
    assert_eq!(verdict.code, 1);
    assert_eq!(
        verdict.findings,
        [finding("admin", "retention_violation", first)],
        "the erasure broke the hold"
    );
}

// 7. No trail a run left idle holds the sealing key back.

#[tokio::test]
async fn a_key_file_taken_after_a_one_off_ingest_run_rewrites_nothing_of_it() {
    use futures_util::TryStreamExt;
    use trailseal::{KeyError, Store, seal::EntryDraft};
    let dir = tempfile::tempdir().unwrap();
    let fixtures = support::repository().join("tests/fixtures/ingest");
    for name in ["web-access.log", "postfix.log"] {
        std::fs::copy(fixtures.join(name), dir.path().join(name)).unwrap();
    }
    let database = format!("sqlite://{}", dir.path().join("logs.db").display());
    let config = dir.path().join("ingest.toml");
    let quoted = |name: &str| format!("{:?}", dir.path().join(name).display().to_string());
    std::fs::write(
        &config,
        format!(
            "database = {:?}\nsealing_key = {}\nverification_key = {}\n\
             [[source]]\npath = {}\n[[source]]\npath = {}\n",
            database,
            quoted("keys/sealing.key"),
            quoted("offline/verification.key"),
            quoted("web-access.log"),
            quoted("postfix.log"),
        ),
    )
    .unwrap();
    let ingest = support::binary("trailseal-ingest", "trailseal-ingest");
    for subcommand in ["keygen", "once"] {
        let output = Command::new(&ingest)
            .arg(subcommand)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("the ingest tool runs");
        assert!(output.status.success(), "{}", stderr(&output));
    }

    // Nothing runs for a day; then the key file is copied.
    let stolen = dir.path().join("stolen.key");
    std::fs::copy(dir.path().join("keys/sealing.key"), &stolen).unwrap();
    let thief = trailseal::SealingKey::open(&stolen).unwrap();
    let store = trailseal::SqliteStore::open(dir.path().join("logs.db"))
        .await
        .unwrap();
    let trails = store.trails().await.unwrap();
    assert!(trails.len() >= 2, "{trails:?}");
    for trail in &trails {
        let entries: Vec<trailseal::Entry> = store.scan(trail, 0).try_collect().await.unwrap();
        let newest = entries.last().unwrap();
        // Every epoch the run wrote is closed: its key is gone from the
        // file, for every trail, the idle ones included.
        assert!(
            thief.trail_epoch(trail).unwrap() > newest.epoch,
            "{trail}: the file still holds a key of the run"
        );
        let victim = entries
            .iter()
            .find(|entry| entry.kind == trailseal::EntryKind::Event)
            .unwrap();
        let mut body = victim.body.clone();
        body.insert_public("action", "web.forged");
        let resealed = thief.seal_entry(EntryDraft {
            trail: trail.clone(),
            seq: victim.seq,
            epoch: victim.epoch,
            key_id: victim.key_id.clone(),
            recorded_at: victim.recorded_at,
            kind: victim.kind,
            body,
            prev_mac: victim.prev_mac,
        });
        assert!(
            matches!(resealed, Err(KeyError::EpochGone { .. })),
            "{trail}: {resealed:?}"
        );
    }
    // Nor can a new trail be made to look as old as the run.
    assert!(thief.epoch() > store.head(&trails[0]).await.unwrap().unwrap().epoch);
    store.close().await;
}

// 12. An authentic genesis must state its key, schedule and format.

#[tokio::test]
async fn an_authentic_genesis_that_misstates_itself_is_invalid() {
    use trailseal::{Body, EntryKind, FindingKind, SealingKey, SqliteStore, Store, Verifier};
    let start = support::start_time();
    let genesis_body = |format: &str, key_check: String, key_genesis: String, seconds: &str| {
        let mut body = Body::new();
        for (name, value) in [
            ("genesis.epoch_seconds", seconds.to_owned()),
            ("genesis.format_version", format.to_owned()),
            ("genesis.key_check", key_check),
            ("genesis.key_genesis", key_genesis),
            ("genesis.trail", "admin".to_owned()),
        ] {
            if !value.is_empty() {
                body.insert_public(name, value);
            }
        }
        body
    };
    let right_genesis = trailseal::model::format_timestamp(start);
    // (what, format, key check: right, wrong or absent, key genesis, epoch length)
    let cases = [
        ("format 3", "3", Some(true), right_genesis.as_str(), "900"),
        (
            "format 1 on a branch",
            "1",
            Some(true),
            right_genesis.as_str(),
            "900",
        ),
        (
            "another key check",
            "2",
            Some(false),
            right_genesis.as_str(),
            "900",
        ),
        ("no key check", "2", None, right_genesis.as_str(), "900"),
        ("no schedule", "2", Some(true), "", ""),
        (
            "an epoch length with a leading zero",
            "2",
            Some(true),
            right_genesis.as_str(),
            "0900",
        ),
    ];
    for (what, format, check, key_genesis, seconds) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).await.unwrap();
        let (key, verification) = SealingKey::generate("k1", start, 900).unwrap();
        let check = match check {
            Some(true) => key.check_value().to_hex(),
            Some(false) => "00".repeat(32),
            None => String::new(),
        };
        let body = genesis_body(format, check, key_genesis.to_owned(), seconds);
        let mut sealer = key.sealer("admin", 0, None).unwrap();
        let genesis = sealer.seal_body(
            EntryKind::Genesis,
            body,
            start + chrono::TimeDelta::minutes(1),
        );
        let event = sealer
            .seal_event(
                &support::sample_event(0),
                start + chrono::TimeDelta::minutes(2),
            )
            .unwrap();
        store
            .append("admin", None, &[genesis, event])
            .await
            .unwrap();
        let report = Verifier::new(verification)
            .at(start + chrono::TimeDelta::minutes(5))
            .verify_trail(&store, "admin")
            .await
            .unwrap();
        assert_eq!(
            report
                .findings
                .iter()
                .map(|f| (f.kind, f.seq))
                .collect::<Vec<_>>(),
            [(FindingKind::InvalidGenesis, 0)],
            "{what}: {report}"
        );
        store.close().await;
    }
    // The key file, not the trail, has the wrong schedule: one key_mismatch,
    // and the trail's times are checked against the schedule it states.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).await.unwrap();
    let (key, verification) = SealingKey::generate("k1", start, 900).unwrap();
    let mut sealer = key.sealer("admin", 0, None).unwrap();
    let genesis = sealer.seal_body(
        EntryKind::Genesis,
        genesis_body(
            "2",
            key.check_value().to_hex(),
            right_genesis.clone(),
            "900",
        ),
        start + chrono::TimeDelta::minutes(1),
    );
    store.append("admin", None, &[genesis]).await.unwrap();
    let path = dir.path().join("v.key");
    verification.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let shifted = dir.path().join("shifted.key");
    std::fs::write(
        &shifted,
        text.replace(
            "\"genesis\": \"2026-11-29T08:00:00Z\"",
            "\"genesis\": \"2026-11-29T07:59:00Z\"",
        ),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&shifted).unwrap(), text);
    let report = Verifier::new(trailseal::VerificationKey::load(&shifted).unwrap())
        .at(start + chrono::TimeDelta::minutes(5))
        .verify_trail(&store, "admin")
        .await
        .unwrap();
    assert_eq!(
        report.findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FindingKind::KeyMismatch],
        "{report}"
    );
}
