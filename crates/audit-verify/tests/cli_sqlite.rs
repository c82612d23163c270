//! `audit-verify` on a real SQLite trail made by the quickstart example,
//! tampered with plain SQL: exit codes and JSON findings.

use crate::support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

struct Trail {
    dir: tempfile::TempDir,
}

impl Trail {
    fn db(&self) -> PathBuf {
        self.dir.path().join("trail.db")
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
    fn key(&self) -> String {
        self.dir
            .path()
            .join("keys/verification.key")
            .display()
            .to_string()
    }
    fn record(&self, events: u32) {
        let output = Command::new(support::example("quickstart"))
            .args(["--database", &self.url(), "--keys"])
            .arg(self.dir.path().join("keys"))
            .args(["--events", &events.to_string()])
            .output()
            .expect("quickstart runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    async fn sql(&self, statements: &[&'static str]) {
        let mut connection =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.db().display()))
                .await
                .expect("plain connection");
        for &statement in statements {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .expect(statement);
        }
        connection.close().await.expect("closed");
    }
    /// Events inside an epoch of the admin trail (their neighbours are
    /// events of the same epoch), so tampering with one affects only it.
    /// Their neighbours are strictly earlier and later: events written in
    /// one batch can share a timestamp, and moving such an event by a
    /// microsecond would also change its epoch's first or last timestamp,
    /// which the epoch's seal states.
    async fn interior_events(&self) -> Vec<i64> {
        let mut connection = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("connection");
        let seqs = sqlx::query_scalar(
            "SELECT e.seq FROM entries e \
             JOIN entries p ON p.trail = e.trail AND p.seq = e.seq - 1 \
             JOIN entries n ON n.trail = e.trail AND n.seq = e.seq + 1 \
             WHERE e.trail = 'admin' AND e.kind = 'event' AND p.kind = 'event' AND n.kind = 'event' \
             AND p.epoch = e.epoch AND n.epoch = e.epoch \
             AND p.recorded_at < e.recorded_at AND e.recorded_at < n.recorded_at \
             ORDER BY e.seq LIMIT 4",
        )
        .fetch_all(&mut connection)
        .await
        .expect("query");
        connection.close().await.expect("closed");
        seqs
    }

    /// The first and the last of [`Self::interior_events`], with events
    /// between them.
    async fn two_separate_interior_events(&self) -> (i64, i64) {
        let interior = self.interior_events().await;
        let (first, last) = (interior[0], interior[interior.len() - 1]);
        assert!(
            last > first + 1,
            "two separate interior events: {interior:?}"
        );
        (first, last)
    }

    async fn sql_at(&self, statement: &'static str, seq: i64) {
        self.sql_made_at(statement.to_owned(), seq).await;
    }

    /// Runs a statement made by the test (from a fixed list of column
    /// names), bound to `seq`.
    async fn sql_made_at(&self, statement: String, seq: i64) {
        let mut connection = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("connection");
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(seq)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
        connection.close().await.expect("closed");
    }

    /// A copy of the closed database and its keys in a new folder.
    fn copy(&self) -> Trail {
        let copy = Trail {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::copy(self.db(), copy.db()).expect("database copied");
        let keys = copy.dir.path().join("keys");
        std::fs::create_dir(&keys).expect("keys folder");
        for file in ["verification.key", "sealing.key"] {
            std::fs::copy(self.dir.path().join("keys").join(file), keys.join(file))
                .expect("key copied");
        }
        copy
    }

    fn verify(&self, extra: &[&str]) -> (i32, Vec<(String, String, u64)>) {
        let output = self.verify_output(extra);
        (code(&output), findings(&output))
    }

    /// `audit-verify verify --json` of the database.
    fn verify_output(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify".to_owned(),
            "--json".into(),
            "--key".into(),
            self.key(),
            self.url(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        Command::new(BIN)
            .args(&args)
            .output()
            .expect("audit-verify runs")
    }

    /// The trail's folder and files made read-only for an auditor, who
    /// runs [`Self::as_auditor`]. Permissions do not bind root, so when the
    /// tests run as root the auditor is `nobody`, and the folder stays
    /// root's with mode 0755 and the files 0644; otherwise the folder
    /// becomes 0555 and the database 0444. The folder is writable again
    /// when the guard is dropped, so that it can be removed.
    fn hand_to_auditor(&self) -> WritableOnDrop<'_> {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: PathBuf, mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        };
        let keys = self.dir.path().join("keys");
        mode(keys.join("verification.key"), 0o644);
        mode(keys, 0o755);
        let root = self.runs_as_root();
        mode(self.db(), if root { 0o644 } else { 0o444 });
        // The store creates the database owner-only (0600), and SQLite
        // gives a running writer's log and index the same mode: the
        // operator lets another user (`nobody`) read them too.
        for suffix in ["-wal", "-shm"] {
            let mut path = self.db().into_os_string();
            path.push(suffix);
            let path = PathBuf::from(path);
            if root && path.exists() {
                mode(path, 0o644);
            }
        }
        mode(self.dir.path().to_owned(), if root { 0o755 } else { 0o555 });
        WritableOnDrop(self.dir.path())
    }

    fn runs_as_root(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.dir.path())
            .expect("trail folder")
            .uid()
            == 0
    }

    /// `audit-verify` run by an auditor who may read the trail's folder but
    /// not write to it (see [`Self::hand_to_auditor`]).
    fn as_auditor(&self) -> Command {
        if !self.runs_as_root() {
            return Command::new(BIN);
        }
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
            BIN,
        ]);
        command
    }

    /// `audit-verify verify --json` of the database, run by the auditor.
    fn verified_by_auditor(&self) -> Output {
        self.as_auditor()
            .args(["verify", "--json", "--key", &self.key(), &self.url()])
            .output()
            .expect("audit-verify runs")
    }
}

/// Makes a folder writable for its owner again when dropped.
struct WritableOnDrop<'a>(&'a std::path::Path);

impl Drop for WritableOnDrop<'_> {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o755));
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn findings(output: &Output) -> Vec<(String, String, u64)> {
    let Ok(report) = serde_json::from_slice::<Value>(&output.stdout) else {
        return Vec::new();
    };
    report["trails"]
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
        .collect()
}

fn made_by_quickstart() -> Trail {
    let trail = Trail {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    trail.record(120);
    trail
}

/// A quickstart trail with the first of its admin trail's interior events
/// changed by `statement` (bound to its seq), and that seq.
async fn interior_event_changed_by(statement: &'static str) -> (Trail, i64) {
    let trail = made_by_quickstart();
    let seq = trail.interior_events().await[0];
    trail.sql_at(statement, seq).await;
    (trail, seq)
}

/// What `verify` finds when only the entry at `seq` was modified.
fn only_modified_at(seq: i64) -> (i32, Vec<(String, String, u64)>) {
    (1, vec![finding("admin", "modified", seq as u64)])
}

/// The details of a `--json` report's findings, in report order.
fn details(output: &Output) -> Vec<String> {
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    report["trails"]
        .as_array()
        .expect("trails")
        .iter()
        .flat_map(|trail| trail["findings"].as_array().cloned().unwrap_or_default())
        .map(|finding| finding["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn finding(trail: &str, kind: &str, seq: u64) -> (String, String, u64) {
    (trail.to_owned(), kind.to_owned(), seq)
}

#[tokio::test]
async fn quickstart_trail_verifies_intact() {
    let trail = made_by_quickstart();
    let (code, findings) = trail.verify(&[]);
    assert_eq!((code, findings), (0, vec![]));
}

#[tokio::test]
async fn updated_field_is_modified() {
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET recorded_at = recorded_at + 1 WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    assert_eq!(trail.verify(&[]), only_modified_at(seq));
}

#[tokio::test]
async fn deleted_row_is_missing() {
    let trail = made_by_quickstart();
    trail
        .sql(&["DELETE FROM entries WHERE trail = 'admin' AND seq = 3"])
        .await;
    let (code, findings) = trail.verify(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        findings.first(),
        Some(&finding("admin", "missing", 3)),
        "{findings:?}"
    );
}

#[tokio::test]
async fn swapped_seqs_are_reordered() {
    let trail = made_by_quickstart();
    trail
        .sql(&[
            "UPDATE entries SET seq = 1000000 WHERE trail = 'admin' AND seq = 7",
            "UPDATE entries SET seq = 7 WHERE trail = 'admin' AND seq = 8",
            "UPDATE entries SET seq = 8 WHERE trail = 'admin' AND seq = 1000000",
        ])
        .await;
    assert_eq!(
        trail.verify(&[]),
        (
            1,
            vec![
                finding("admin", "reordered", 7),
                finding("admin", "reordered", 8)
            ]
        )
    );
}

#[tokio::test]
async fn deleted_newest_rows_and_rollback_are_caught_by_a_checkpoint() {
    let trail = made_by_quickstart();
    let older_copy = trail.dir.path().join("older.db");
    std::fs::copy(trail.db(), &older_copy).expect("copy");
    trail.record(40);
    let output = Command::new(BIN)
        .args(["checkpoint", "--key", &trail.key(), &trail.url()])
        .output()
        .expect("checkpoint runs");
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checkpoints = trail.dir.path().join("checkpoints.txt");
    std::fs::write(&checkpoints, &output.stdout).expect("written");
    let with_checkpoints = ["--checkpoint", checkpoints.to_str().expect("UTF-8 path")];
    assert_eq!(trail.verify(&with_checkpoints), (0, vec![]));

    // The newest rows of the admin trail deleted.
    let backup = trail.dir.path().join("backup.db");
    std::fs::copy(trail.db(), &backup).expect("copy");
    trail
        .sql(&["DELETE FROM entries WHERE trail = 'admin' AND seq >= (SELECT max(seq) - 1 FROM entries WHERE trail = 'admin')"])
        .await;
    let (code, findings) = trail.verify(&with_checkpoints);
    assert_eq!(code, 1);
    assert!(
        findings
            .iter()
            .all(|(t, kind, _)| t == "admin" && kind == "truncated"),
        "{findings:?}"
    );
    assert_eq!(findings.len(), 1);

    // An older copy of the whole file restored.
    std::fs::copy(&older_copy, trail.db()).expect("restore");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", trail.db().display()));
    }
    let (code, findings) = trail.verify(&with_checkpoints);
    assert_eq!(code, 1);
    assert!(
        !findings.is_empty() && findings.iter().all(|(_, kind, _)| kind == "truncated"),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_trail_the_trails_table_does_not_list_is_still_verified() {
    let trail = made_by_quickstart();
    let intact = trail.verify_output(&[]);
    assert_eq!(code(&intact), 0);
    let listed = trails_verified(&intact);
    assert_eq!(listed.len(), 4, "{listed:?}");

    // Its row deleted.
    trail
        .sql(&["DELETE FROM trails WHERE name = 'admin'"])
        .await;
    let verified = trail.verify_output(&[]);
    assert_eq!(code(&verified), 0);
    assert_eq!(trails_verified(&verified), listed);

    // The table replaced by a view that leaves a trail out, and that trail
    // tampered with.
    trail
        .sql(&[
            "ALTER TABLE trails RENAME TO listed",
            "INSERT INTO listed (name) VALUES ('admin')",
            "CREATE VIEW trails AS SELECT name FROM listed WHERE name <> 'mailbox'",
            "DELETE FROM entries WHERE trail = 'mailbox' AND seq = 3",
        ])
        .await;
    let verified = trail.verify_output(&[]);
    assert_eq!(code(&verified), 1);
    let mailbox = listed
        .iter()
        .position(|(name, _)| name == "mailbox")
        .expect("a mailbox trail");
    let mut expected = listed.clone();
    expected[mailbox].1 -= 1;
    assert_eq!(trails_verified(&verified), expected);
    assert_eq!(
        findings(&verified).first(),
        Some(&finding("mailbox", "missing", 3))
    );
}

#[tokio::test]
async fn entries_stored_under_a_name_that_is_not_utf8_are_reported() {
    let trail = made_by_quickstart();
    let listed = trails_verified(&trail.verify_output(&[]));
    trail
        .sql(&[
            "INSERT INTO entries (trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
             body_commitment, mac) SELECT CAST(x'61ff' AS TEXT), seq, epoch, key_id, recorded_at, \
             kind, body, prev_mac, body_commitment, mac FROM entries \
             WHERE trail = 'admin' AND seq = 0",
        ])
        .await;
    let verified = trail.verify_output(&[]);
    assert_eq!(code(&verified), 1);
    assert_eq!(findings(&verified), [finding("a\u{FFFD}", "forged", 0)]);
    let mut expected = listed;
    expected.insert(1, ("a\u{FFFD}".to_owned(), 0));
    assert_eq!(trails_verified(&verified), expected);
}

#[tokio::test]
async fn export_verifies_like_the_database() {
    let trail = made_by_quickstart();
    trail
        .sql(&["UPDATE entries SET prev_mac = zeroblob(32) WHERE trail = 'admin' AND seq = 4"])
        .await;
    let from_database = trail.verify(&[]);
    let export = Command::new(BIN)
        .args(["export", &trail.url()])
        .output()
        .expect("export runs");
    assert_eq!(code(&export), 0);
    let jsonl = trail.dir.path().join("trail.jsonl");
    std::fs::write(&jsonl, &export.stdout).expect("written");
    let output = Command::new(BIN)
        .args([
            "verify",
            "--json",
            "--key",
            &trail.key(),
            jsonl.to_str().expect("UTF-8 path"),
        ])
        .output()
        .expect("audit-verify runs");
    assert_eq!((code(&output), findings(&output)), from_database);
    assert_eq!(from_database.0, 1);
}

#[tokio::test]
async fn rows_damaged_beyond_decoding_are_findings() {
    let trail = made_by_quickstart();
    let (first, second) = trail.two_separate_interior_events().await;
    trail
        .sql_at(
            "UPDATE entries SET kind = 'bogus' WHERE trail = 'admin' AND seq = ?",
            first,
        )
        .await;
    trail
        .sql_at(
            "UPDATE entries SET body = '{not json' WHERE trail = 'admin' AND seq = ?",
            second,
        )
        .await;
    assert_eq!(
        trail.verify(&[]),
        (
            1,
            vec![
                finding("admin", "modified", first as u64),
                finding("admin", "modified", second as u64)
            ]
        )
    );
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_finding_at_its_seq() {
    // SQLite stores text that is not UTF-8 as it is given; only the
    // damaged row is reported, not its chunk.
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET body = CAST(x'7b22ff227d' AS TEXT) WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    assert_eq!(trail.verify(&[]), only_modified_at(seq));
}

#[tokio::test]
async fn stored_text_with_separators_and_nul_is_read_exactly() {
    // Chunks are read as one framed text; a damaged row's text may hold
    // the characters the framing uses, and must still cost only that row.
    let trail = made_by_quickstart();
    let (first, second) = trail.two_separate_interior_events().await;
    trail
        .sql_at(
            "UPDATE entries SET body = replace(body, '\"action\"', \
             '\"act' || char(0) || ' ' || char(10) || '9 9 9 ion\"') \
             WHERE trail = 'admin' AND seq = ?",
            first,
        )
        .await;
    trail
        .sql_at(
            "UPDATE entries SET key_id = key_id || ' 1 2' || char(10) || char(0) \
             WHERE trail = 'admin' AND seq = ?",
            second,
        )
        .await;
    assert_eq!(
        trail.verify(&[]),
        (
            1,
            vec![
                finding("admin", "modified", first as u64),
                // Read with its separators: a key id no key has.
                finding("admin", "unknown_key", second as u64)
            ]
        )
    );
}

#[tokio::test]
async fn a_mac_cut_short_is_a_finding_at_its_seq() {
    // A blob of the wrong size cannot be framed with the others; its chunk
    // is read row by row, and only the damaged row is reported.
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET mac = substr(mac, 1, 31) WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    assert_eq!(trail.verify(&[]), only_modified_at(seq));
}

#[tokio::test]
async fn a_copy_stored_in_utf16_verifies_as_the_original() {
    // SQLite converts text for the reader, but not text joined with blobs:
    // a database in another encoding is read row by row.
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET recorded_at = recorded_at + 1 WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    let original = trail.verify(&[]);
    assert_eq!(original, only_modified_at(seq));

    // Attached databases must share the encoding, so the copy is made as
    // `.dump` would make it: the schema, then every row as an INSERT, and
    // the header's application id.
    let mut original_db = sqlx::SqliteConnection::connect(&trail.url())
        .await
        .expect("connection");
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index'",
    )
    .fetch_all(&mut original_db)
    .await
    .expect("schema");
    let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut original_db)
        .await
        .expect("application id");
    let mut statements = vec![format!("PRAGMA application_id = {application_id}")];
    statements.extend(objects.iter().map(|(_, _, sql)| sql.clone()));
    for (_, table, _) in objects.iter().filter(|(kind, ..)| kind == "table") {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&mut original_db)
            .await
            .expect("columns");
        let values = columns
            .iter()
            .map(|column| format!("quote(\"{column}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let dump =
            format!("SELECT 'INSERT INTO \"{table}\" VALUES(' || {values} || ')' FROM \"{table}\"");
        let inserts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(dump))
            .fetch_all(&mut original_db)
            .await
            .expect("rows");
        statements.extend(inserts);
    }
    original_db.close().await.expect("closed");

    let copy = trail.dir.path().join("utf16.db");
    let mut copy_db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", copy.display()))
            .await
            .expect("new database");
    sqlx::raw_sql("PRAGMA encoding = 'UTF-16le'")
        .execute(&mut copy_db)
        .await
        .expect("encoding set");
    let script = format!("BEGIN; {}; COMMIT;", statements.join(";\n"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut copy_db)
        .await
        .expect("copied");
    let encoding: String = sqlx::query_scalar("SELECT encoding FROM pragma_encoding")
        .fetch_one(&mut copy_db)
        .await
        .expect("encoding");
    assert_eq!(encoding, "UTF-16le");
    copy_db.close().await.expect("closed");

    std::fs::rename(&copy, trail.db()).expect("copy in place");
    for stale in ["trail.db-wal", "trail.db-shm"] {
        let _ = std::fs::remove_file(trail.dir.path().join(stale));
    }
    assert_eq!(trail.verify(&[]), original);
}

/// The query columns the SQLite store keeps beside each entry, copies of
/// body values.
const QUERY_COLUMNS: [&str; 8] = [
    "action",
    "tenant",
    "actor",
    "target_type",
    "target_id",
    "ip",
    "outcome",
    "request_id",
];

#[tokio::test]
async fn a_changed_query_column_is_a_column_mismatch_at_its_seq() {
    let original = made_by_quickstart();
    let seq = original.interior_events().await[0];
    for column in QUERY_COLUMNS {
        let trail = original.copy();
        assert_eq!(trail.verify(&[]), (0, vec![]), "{column}");
        // Another value, or a value where the body has none.
        trail
            .sql_made_at(
                format!(
                    "UPDATE entries SET {column} = 'x' || ifnull({column}, '') \
                     WHERE trail = 'admin' AND seq = ?"
                ),
                seq,
            )
            .await;
        assert_eq!(
            trail.verify(&[]),
            (1, vec![finding("admin", "column_mismatch", seq as u64)]),
            "{column}"
        );
    }
}

#[tokio::test]
async fn a_restriction_flag_set_with_sql_is_a_column_mismatch_at_its_seq() {
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET restricted = 1 WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    assert_eq!(
        trail.verify(&[]),
        (1, vec![finding("admin", "column_mismatch", seq as u64)])
    );
    assert!(details(&trail.verify_output(&[]))[0].contains("no sealed restriction record"));
}

#[tokio::test]
async fn an_emptied_query_column_is_a_column_mismatch_at_its_seq() {
    let (trail, seq) = interior_event_changed_by(
        "UPDATE entries SET tenant = NULL WHERE trail = 'admin' AND seq = ?",
    )
    .await;
    assert_eq!(
        trail.verify(&[]),
        (1, vec![finding("admin", "column_mismatch", seq as u64)])
    );
    let detail = &details(&trail.verify_output(&[]))[0];
    assert!(
        detail.contains("the column tenant is empty, but the sealed field tenant has a value"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_chunk_read_row_by_row_still_checks_the_query_columns() {
    // A MAC cut short makes its chunk be read row by row.
    let trail = made_by_quickstart();
    let (first, second) = trail.two_separate_interior_events().await;
    trail
        .sql_at(
            "UPDATE entries SET mac = substr(mac, 1, 31) WHERE trail = 'admin' AND seq = ?",
            first,
        )
        .await;
    trail
        .sql_at(
            "UPDATE entries SET ip = '203.0.113.9' WHERE trail = 'admin' AND seq = ?",
            second,
        )
        .await;
    assert_eq!(
        trail.verify(&[]),
        (
            1,
            vec![
                finding("admin", "modified", first as u64),
                finding("admin", "column_mismatch", second as u64)
            ]
        )
    );
}

/// A trail pruned by retention and with an erasure request, made through the
/// library on a real SQLite file, with its key files.
async fn pruned_by_retention() -> Trail {
    use chrono::{Duration, TimeZone, Utc};
    use std::sync::Arc;
    use trailseal::Subject;
    use trailseal::retention::MaxAge;

    let trail = Trail {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let (sealing, _) =
        trailseal::SealingKey::create_files(trail.dir.path().join("keys"), "k1", start, 3600)
            .expect("key files");
    let store = trailseal::SqliteStore::open(trail.db())
        .await
        .expect("store");
    let clock = trailseal::ManualClock::new(start);
    let writer = trailseal::Trail::builder("admin", Arc::new(store), Arc::new(sealing))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .expect("trail");
    for day in 0..10 {
        for n in 0..3 {
            clock.set(start + Duration::days(day) + Duration::hours(9) + Duration::minutes(n));
            let event = trailseal::Event::builder("session.login")
                .actor(trailseal::Actor::customer(format!("kunde{n}")))
                .tenant(format!("kunde{n}"))
                .build()
                .expect("event");
            writer.record(event).await.expect("recorded");
        }
    }
    clock.set(start + Duration::days(9) + Duration::hours(20));
    let run = writer
        .enforce_retention(&MaxAge::days(7))
        .await
        .expect("retention");
    assert_eq!(run.deleted, 9);
    writer
        .erase_subject(&Subject::new().tenant("kunde1"), "ticket-1")
        .await
        .expect("erasure");
    clock.set(start + Duration::days(9) + Duration::hours(22));
    writer.seal_finished_epochs().await.expect("sealed");
    writer.shutdown().await.expect("shut down");
    trail
}

#[tokio::test]
async fn a_trail_pruned_by_retention_verifies_and_counts_what_was_deleted() {
    let trail = pruned_by_retention().await;
    assert_eq!(trail.verify(&[]), (0, vec![]));

    let output = Command::new(BIN)
        .args(["verify", "--json", "--key", &trail.key(), &trail.url()])
        .output()
        .expect("audit-verify runs");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["trails"][0]["pruned"], 9);
    assert_eq!(
        report["trails"][0]["redacted"],
        7 * 2,
        "actor.name and tenant of kunde1's 7 entries that retention left"
    );

    let human = Command::new(BIN)
        .args(["verify", "--key", &trail.key(), &trail.url()])
        .output()
        .expect("audit-verify runs");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("retention: 9 entries deleted in 3 ranges and 14 erased fields"),
        "{text}"
    );
}

#[tokio::test]
async fn retention_younger_than_the_minimum_retention_is_a_violation() {
    let trail = pruned_by_retention().await;
    let (code, findings) = trail.verify(&["--min-retention-days", "30"]);
    assert_eq!(code, 1);
    let kinds: Vec<&str> = findings.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, vec!["retention_violation"; 3]);
}

#[tokio::test]
async fn a_query_column_restored_after_its_erasure_is_a_column_mismatch() {
    let trail = pruned_by_retention().await;
    let erased: Vec<i64> = {
        let mut connection = sqlx::SqliteConnection::connect(&trail.url())
            .await
            .expect("connection");
        let seqs = sqlx::query_scalar(
            "SELECT seq FROM entries WHERE trail = 'admin' AND kind = 'event' \
             AND tenant IS NULL AND json_extract(body, '$.tenant.redacted') IS NOT NULL \
             ORDER BY seq",
        )
        .fetch_all(&mut connection)
        .await
        .expect("query");
        connection.close().await.expect("closed");
        seqs
    };
    assert_eq!(erased.len(), 7, "kunde1's entries that retention left");
    trail
        .sql_at(
            "UPDATE entries SET tenant = 'kunde1' WHERE trail = 'admin' AND seq = ?",
            erased[2],
        )
        .await;
    assert_eq!(
        trail.verify(&[]),
        (
            1,
            vec![finding("admin", "column_mismatch", erased[2] as u64)]
        )
    );
    assert!(
        details(&trail.verify_output(&[]))[0]
            .contains("the column tenant holds a value, but the sealed field tenant was erased")
    );
}

#[tokio::test]
async fn a_sealed_restriction_verifies_and_its_flags_are_checked() {
    use trailseal::Subject;

    let (trail, writer, store) = running_writer(30).await;
    let kunde1 = Subject::new().tenant("kunde1");
    // sample_event gives every seventh event to kunde1.
    let restricted = writer
        .restrict_subject(&kunde1, true)
        .await
        .expect("restricted");
    assert_eq!(restricted, 5);
    assert_eq!(trail.verify(&[]), (0, vec![]));

    // The decision is sealed in the trail.
    let entries: Vec<trailseal::Entry> =
        futures_util::TryStreamExt::try_collect(trailseal::Store::scan(&store, "admin", 0))
            .await
            .expect("scanned");
    let records: Vec<&trailseal::Entry> = entries
        .iter()
        .filter(|entry| entry.kind == trailseal::EntryKind::Restriction)
        .collect();
    assert_eq!(records.len(), 1);
    let record = trailseal::retention::RestrictionRecord::from_entry(records[0]).expect("record");
    assert!(record.restricted);
    let of_kunde1: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.value("tenant") == Some("kunde1"))
        .map(|entry| entry.seq)
        .collect();
    let named: Vec<u64> = record
        .entries
        .iter()
        .flat_map(|range| range.first..=range.last)
        .collect();
    assert_eq!(named, of_kunde1);

    // A restricted entry made visible again, and an entry of kunde2 hidden.
    let kunde2 = entries
        .iter()
        .find(|entry| entry.value("tenant") == Some("kunde2"))
        .expect("an entry of kunde2")
        .seq as i64;
    for (statement, seq, undo) in [
        (
            "UPDATE entries SET restricted = 0 WHERE trail = 'admin' AND seq = ?",
            of_kunde1[1] as i64,
            "UPDATE entries SET restricted = 1 WHERE trail = 'admin' AND seq = ?",
        ),
        (
            "UPDATE entries SET restricted = 1 WHERE trail = 'admin' AND seq = ?",
            kunde2,
            "UPDATE entries SET restricted = 0 WHERE trail = 'admin' AND seq = ?",
        ),
    ] {
        trail.sql_at(statement, seq).await;
        assert_eq!(
            trail.verify(&[]),
            (1, vec![finding("admin", "column_mismatch", seq as u64)]),
            "{statement}"
        );
        trail.sql_at(undo, seq).await;
        assert_eq!(trail.verify(&[]), (0, vec![]));
    }

    // Lifted by a second record, which overrides the first.
    writer
        .restrict_subject(&kunde1, false)
        .await
        .expect("lifted");
    assert_eq!(trail.verify(&[]), (0, vec![]));
    let seq = of_kunde1[2] as i64;
    trail
        .sql_at(
            "UPDATE entries SET restricted = 1 WHERE trail = 'admin' AND seq = ?",
            seq,
        )
        .await;
    assert_eq!(
        trail.verify(&[]),
        (1, vec![finding("admin", "column_mismatch", seq as u64)])
    );
    writer.shutdown().await.expect("shut down");
    store.close().await;
}

#[tokio::test]
async fn deleting_a_row_of_a_pruned_trail_is_still_missing() {
    let trail = pruned_by_retention().await;
    let seq = trail.interior_events().await[0];
    trail
        .sql_at("DELETE FROM entries WHERE trail = 'admin' AND seq = ?", seq)
        .await;
    let (code, findings) = trail.verify(&[]);
    assert_eq!(code, 1);
    assert_eq!(findings[0], finding("admin", "missing", seq as u64));
}

/// A trail of `events` events written through the library into a new
/// folder with its key files, by a writer that is still running: its
/// commits are in the log (`trail.db-wal`), not yet in the file.
async fn running_writer(events: usize) -> (Trail, trailseal::Trail, trailseal::SqliteStore) {
    use std::sync::Arc;
    let trail = Trail {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let (sealing, _) = trailseal::SealingKey::create_files(
        trail.dir.path().join("keys"),
        "k1",
        support::start_time(),
        support::EPOCH_SECONDS,
    )
    .expect("key files");
    let store = trailseal::SqliteStore::open(trail.db())
        .await
        .expect("store");
    let writer = trailseal::Trail::builder("admin", Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(trailseal::ManualClock::new(support::start_time())))
        .start()
        .await
        .expect("trail");
    for i in 0..events {
        writer
            .record(support::sample_event(i))
            .await
            .expect("recorded");
    }
    (trail, writer, store)
}

/// A trail of `events` events written through the library, its writer
/// closed: the database is one file, without a log next to it.
async fn closed_by_its_writer(events: usize) -> Trail {
    let (trail, writer, store) = running_writer(events).await;
    writer.shutdown().await.expect("shut down");
    store.close().await;
    trail
}

/// The trail names and entry counts of a `--json` report.
fn trails_verified(output: &Output) -> Vec<(String, u64)> {
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    report["trails"]
        .as_array()
        .expect("trails")
        .iter()
        .map(|trail| {
            (
                trail["trail"].as_str().expect("name").to_owned(),
                trail["entries"].as_u64().expect("entries"),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_auditor_who_cannot_write_the_folder_verifies_and_exports_a_closed_database() {
    let trail = closed_by_its_writer(50).await;
    let _writable = trail.hand_to_auditor();
    let before = support::FolderState::of(&trail.db());
    assert_eq!(
        before.names,
        [trail.dir.path().join("keys"), trail.db()],
        "closed: no log, no index"
    );

    let verified = trail.verified_by_auditor();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert_eq!(code(&verified), 0, "{stderr}");
    // The genesis, 50 events and the seal that closed their epoch.
    assert_eq!(trails_verified(&verified), [("admin".to_owned(), 52)]);

    let exported = trail
        .as_auditor()
        .args(["export", &trail.url()])
        .output()
        .expect("audit-verify runs");
    let stderr = String::from_utf8_lossy(&exported.stderr);
    assert_eq!(code(&exported), 0, "{stderr}");
    let lines = exported
        .stdout
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count();
    assert_eq!(lines, 52);

    assert_eq!(support::FolderState::of(&trail.db()), before);
}

#[tokio::test]
async fn an_auditor_who_cannot_write_the_folder_reads_the_log_of_a_running_writer() {
    let (trail, writer, store) = running_writer(30).await;
    let _writable = trail.hand_to_auditor();
    let verified = trail.verified_by_auditor();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert_eq!(code(&verified), 0, "{stderr}");
    // Every commit, although the log holds them and not the file.
    assert_eq!(trails_verified(&verified), [("admin".to_owned(), 31)]);
    writer.shutdown().await.expect("shut down");
    store.close().await;
}

#[tokio::test]
async fn a_log_without_its_index_in_a_folder_the_auditor_cannot_write_is_refused() {
    // A copy of the database and its log, as a crash or a careless backup
    // leaves them: the log holds every commit, its index is missing.
    let (original, writer, store) = running_writer(30).await;
    let trail = Trail {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    std::fs::copy(original.db(), trail.db()).expect("copy");
    std::fs::copy(
        original.dir.path().join("trail.db-wal"),
        trail.dir.path().join("trail.db-wal"),
    )
    .expect("copy");
    writer.shutdown().await.expect("shut down");
    store.close().await;
    std::fs::rename(
        original.dir.path().join("keys"),
        trail.dir.path().join("keys"),
    )
    .expect("keys moved");

    let _writable = trail.hand_to_auditor();
    let before = support::FolderState::of(&trail.db());
    let refused = trail.verified_by_auditor();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(code(&refused), 2, "{stderr}");
    assert!(stderr.contains("trail.db-wal"), "{stderr}");
    assert!(stderr.contains("trail.db-shm"), "{stderr}");
    assert!(!stderr.contains("open it read-only"), "{stderr}");
    assert_eq!(support::FolderState::of(&trail.db()), before);
}
