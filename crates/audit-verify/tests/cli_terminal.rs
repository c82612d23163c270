//! `audit-verify` with a person watching: a progress display on a
//! terminal, nothing of it with `--quiet` or when the output is piped.
//!
//! The terminal is a pseudo-terminal made by util-linux `script`, so the
//! binary sees stdout and stderr as a terminal, exactly as in a shell.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TRAIL, standard_trail};
use trailseal::{SqliteStore, Store};

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

/// The standard trail in a SQLite file and as an export, with its key.
struct Sources {
    dir: tempfile::TempDir,
}

impl Sources {
    async fn new() -> Self {
        let fixture = standard_trail().await;
        let dir = tempfile::tempdir().unwrap();
        fixture
            .verification
            .save(dir.path().join("verification.key"))
            .unwrap();
        let store = SqliteStore::open(dir.path().join("trail.db"))
            .await
            .unwrap();
        store.append(TRAIL, None, &fixture.entries()).await.unwrap();
        store.close().await;
        let mut export = std::fs::File::create(dir.path().join("trail.jsonl")).unwrap();
        trailseal::read::export_json_lines(&fixture.store, &[], &mut export)
            .await
            .unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path("trail.db").display())
    }
}

/// Quotes for `sh`: inside single quotes nothing is special but the quote.
fn shell_quoted(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Runs the binary on a pseudo-terminal; returns its exit code and all it
/// wrote to the terminal, stdout and stderr together.
fn on_terminal(args: &[&str]) -> (i32, String) {
    on_terminal_with_stdout(args, None)
}

/// As [`on_terminal`], with stdout redirected to a file, as in
/// `audit-verify … > report.txt` typed in a terminal.
fn on_terminal_with_stdout(args: &[&str], stdout: Option<&Path>) -> (i32, String) {
    let mut command = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(shell_quoted)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(file) = stdout {
        command = format!("{command} > {}", shell_quoted(&text(file)));
    }
    // -q: no start and end lines, -e: the command's exit code, -f: flush as
    // written; the typescript file is not needed.
    let output = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs");
    let code = output.status.code().expect("exited normally");
    (code, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn key(sources: &Sources) -> String {
    sources.path("verification.key").display().to_string()
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn progress_is_shown_on_a_terminal_for_a_database() {
    let sources = Sources::new().await;
    let (code, shown) = on_terminal(&["verify", "--key", &key(&sources), &sources.sqlite_url()]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("verifying trail {TRAIL} [")),
        "a progress bar per trail: {shown:?}"
    );
    assert!(
        shown.contains(" entries, "),
        "counted in entries: {shown:?}"
    );
    assert!(
        shown.contains("INTACT: 1 trail"),
        "then the report: {shown:?}"
    );
}

#[tokio::test]
async fn progress_is_shown_on_a_terminal_for_an_export() {
    let sources = Sources::new().await;
    let export = text(&sources.path("trail.jsonl"));
    let (code, shown) = on_terminal(&["verify", "--key", &key(&sources), &export]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("verifying {export} [")),
        "a progress bar over the file: {shown:?}"
    );
    assert!(shown.contains(" KiB, "), "counted in bytes: {shown:?}");
    assert!(
        shown.contains("INTACT: 1 trail"),
        "then the report: {shown:?}"
    );
}

#[tokio::test]
async fn quiet_shows_no_progress_on_a_terminal() {
    let sources = Sources::new().await;
    let export = text(&sources.path("trail.jsonl"));
    for source in [sources.sqlite_url(), export] {
        let (code, shown) = on_terminal(&["verify", "--quiet", "--key", &key(&sources), &source]);
        assert_eq!(code, 0, "{shown}");
        assert!(!shown.contains("verifying"), "no progress: {shown:?}");
        assert!(
            shown.contains("INTACT: 1 trail"),
            "only the report: {shown:?}"
        );
    }
}

#[tokio::test]
async fn a_report_written_to_a_file_gets_progress_only_with_json() {
    // A human report redirected to a file is likely read later, or
    // followed by another command: the terminal stays quiet. A JSON report
    // for a program is not read on the terminal, so progress is shown.
    let sources = Sources::new().await;
    let report = sources.path("report.txt");
    let args = ["verify", "--key", &key(&sources), &sources.sqlite_url()];
    let (code, shown) = on_terminal_with_stdout(&args, Some(&report));
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("verifying"), "no progress: {shown:?}");
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(written.contains("INTACT: 1 trail"), "{written:?}");
    assert!(!written.contains("verifying"), "{written:?}");

    let args = [
        "verify",
        "--json",
        "--key",
        &key(&sources),
        &sources.sqlite_url(),
    ];
    let (code, shown) = on_terminal_with_stdout(&args, Some(&report));
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("verifying trail {TRAIL} [")),
        "progress beside a JSON report: {shown:?}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written["intact"], true);
}

#[tokio::test]
async fn piped_output_gets_no_progress() {
    let sources = Sources::new().await;
    let export = text(&sources.path("trail.jsonl"));
    for source in [sources.sqlite_url(), export] {
        let output = Command::new(BIN)
            .args(["verify", "--key", &key(&sources), &source])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(0));
        assert!(
            output.stderr.is_empty(),
            "nothing on stderr: {:?}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = String::from_utf8(output.stdout).unwrap();
        assert!(!report.contains("verifying"), "no progress: {report:?}");
        assert!(report.contains("INTACT: 1 trail"), "{report:?}");
    }
}
