//! The ingest tool on real log files, into a real SQLite file and a real
//! PostgreSQL database: every line sealed, a rerun seals only what was
//! appended since, and `audit-verify` finds the trails intact.

#[path = "../../../tests/pg/mod.rs"]
mod pg;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The verifier, from its own package.
fn audit_verify() -> std::path::PathBuf {
    support::binary("audit-verify", "audit-verify")
}

/// A web access log and a Postfix log, copied from the fixtures.
struct Logs {
    dir: tempfile::TempDir,
}

impl Logs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = support::repository().join("tests/fixtures/ingest");
        for name in ["web-access.log", "postfix.log"] {
            std::fs::copy(fixtures.join(name), dir.path().join(name)).unwrap();
        }
        Self { dir }
    }

    fn web(&self) -> PathBuf {
        self.dir.path().join("web-access.log")
    }

    fn mail(&self) -> PathBuf {
        self.dir.path().join("postfix.log")
    }

    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Runs the tool on both logs; returns what it printed.
    fn ingest(&self, database: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_trailseal-ingest"))
            .args(["--database", database, "--keys"])
            .arg(self.keys())
            .arg(self.web())
            .arg(self.mail())
            .output()
            .expect("the ingest tool runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `audit-verify --json` on the database: exit code and entries per
    /// trail.
    fn verify(&self, database: &str) -> (i32, Vec<(String, u64)>) {
        let output = Command::new(audit_verify())
            .args(["verify", "--json", "--quiet", "--key"])
            .arg(self.keys().join("verification.key"))
            .arg(database)
            .output()
            .expect("audit-verify runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let trails = report["trails"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|trail| {
                (
                    trail["trail"].as_str().unwrap_or_default().to_owned(),
                    trail["entries"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        (output.status.code().expect("exited normally"), trails)
    }
}

/// What the tool reports for one file: `NAME: N lines as FORMAT, …`.
fn lines_reported(stdout: &str, path: &Path) -> Option<usize> {
    let prefix = format!("{}: ", path.display());
    stdout.lines().find_map(|line| {
        let (lines, _) = line.strip_prefix(&prefix)?.split_once(" lines as ")?;
        lines.parse().ok()
    })
}

fn seals_resumes_and_verifies(database: &str) {
    let logs = Logs::new();
    let stdout = logs.ingest(database);
    assert_eq!(
        lines_reported(&stdout, &logs.web()),
        Some(support::line_count(&logs.web()))
    );
    assert_eq!(
        lines_reported(&stdout, &logs.mail()),
        Some(support::line_count(&logs.mail()))
    );
    assert!(
        stdout.contains("Every trail written is intact."),
        "{stdout}"
    );

    let (code, trails) = logs.verify(database);
    assert_eq!(code, 0, "{trails:?}");
    let trail_names: Vec<&str> = trails.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(trail_names, ["mail", "web"]);

    // Two more lines in the web log: a rerun seals those two and nothing
    // else, and each trail grows by exactly what it sealed.
    let copy = std::fs::read_to_string(logs.web()).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.web())
        .unwrap();
    for line in copy.lines().take(2) {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let stdout = logs.ingest(database);
    assert_eq!(lines_reported(&stdout, &logs.web()), Some(2));
    assert_eq!(lines_reported(&stdout, &logs.mail()), Some(0));

    let (code, after) = logs.verify(database);
    assert_eq!(code, 0, "{after:?}");
    assert_eq!(after[0], trails[0], "the mail trail must not change");
    assert_eq!(
        after[1].1,
        trails[1].1 + 2,
        "the web trail grows by two lines"
    );
}

#[test]
fn ingest_tool_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("trail.db").display());
    seals_resumes_and_verifies(&url);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_tool_into_postgres() {
    let url = pg::fresh_database().await;
    tokio::task::spawn_blocking(move || seals_resumes_and_verifies(&url))
        .await
        .unwrap();
}
