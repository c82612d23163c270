//! The `audit-verify` binary on real files: exit codes, JSON findings and
//! the human report.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::standard_trail;

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

/// The time reports are made as of, so that they read the same every day:
/// after the standard trail's last entry.
const NOW: &str = "2026-12-01T00:00:00Z";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// A standard trail exported as JSON Lines, with its verification key file.
struct Exported {
    _dir: tempfile::TempDir,
    jsonl: PathBuf,
    key: PathBuf,
}

async fn exported() -> Exported {
    let fixture = standard_trail().await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("trail.jsonl");
    let key = dir.path().join("verification.key");
    fixture.verification.save(&key).unwrap();
    let mut file = std::fs::File::create(&jsonl).unwrap();
    trailseal::read::export_json_lines(&fixture.store, &[], &mut file)
        .await
        .unwrap();
    Exported {
        _dir: dir,
        jsonl,
        key,
    }
}

/// Compares with a snapshot file; `TRAILSEAL_UPDATE_SNAPSHOTS=1` rewrites it.
fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("TRAILSEAL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "snapshot {name}");
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn json_findings(output: &Output) -> Vec<(String, u64)> {
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["format"], "trailseal-verify-report");
    report["trails"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|trail| trail["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn verify_json(exported: &Exported, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "--json",
        "--key",
        exported.key.to_str().unwrap(),
        exported.jsonl.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[tokio::test]
async fn intact_export_exits_zero_with_a_readable_report() {
    let exported = exported().await;
    let output = run(&[
        "--key",
        exported.key.to_str().unwrap(),
        "--now",
        NOW,
        exported.jsonl.to_str().unwrap(),
    ]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output).replace(exported.jsonl.to_str().unwrap(), "TRAIL.jsonl");
    assert_snapshot("verify_intact.txt", &text);

    let output = verify_json(&exported, &[]);
    assert_eq!(code(&output), 0);
    assert_eq!(json_findings(&output), vec![]);
}

#[tokio::test]
async fn edited_export_exits_one_naming_each_finding() {
    let exported = exported().await;
    let original = lines(&exported.jsonl);

    // A value changed by hand.
    let mut edited = original.clone();
    edited[10] = edited[10].replace("kunde", "kundx");
    write_lines(&exported.jsonl, &edited);
    let output = verify_json(&exported, &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(json_findings(&output), vec![("modified".to_owned(), 10)]);

    // Two lines swapped.
    let mut swapped = original.clone();
    swapped.swap(20, 21);
    write_lines(&exported.jsonl, &swapped);
    let output = verify_json(&exported, &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(json_findings(&output), vec![("reordered".to_owned(), 20)]);

    // A line deleted from the open epoch.
    let mut deleted = original.clone();
    deleted.remove(original.len() - 3);
    write_lines(&exported.jsonl, &deleted);
    let output = verify_json(&exported, &[]);
    assert_eq!(
        json_findings(&output),
        vec![("missing".to_owned(), original.len() as u64 - 3)]
    );

    let human = run(&[
        "verify",
        "--key",
        exported.key.to_str().unwrap(),
        "--now",
        NOW,
        exported.jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code(&human), 1);
    let text = stdout(&human).replace(exported.jsonl.to_str().unwrap(), "TRAIL.jsonl");
    assert_snapshot("verify_missing.txt", &text);
}

#[tokio::test]
async fn checkpoint_detects_truncation_of_the_export() {
    let exported = exported().await;
    let output = run(&[
        "checkpoint",
        "--key",
        exported.key.to_str().unwrap(),
        exported.jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0);
    let checkpoint: trailseal::Checkpoint = stdout(&output).parse().unwrap();
    let checkpoint_file = exported.jsonl.with_file_name("admin.checkpoint");
    std::fs::write(&checkpoint_file, checkpoint.to_string()).unwrap();

    let mut cut = lines(&exported.jsonl);
    cut.truncate(cut.len() - 2);
    write_lines(&exported.jsonl, &cut);
    let output = verify_json(
        &exported,
        &["--checkpoint", checkpoint_file.to_str().unwrap()],
    );
    assert_eq!(code(&output), 1);
    assert_eq!(
        json_findings(&output),
        vec![("truncated".to_owned(), cut.len() as u64)]
    );
}

#[tokio::test]
async fn a_wrong_key_and_a_broken_line_are_findings_of_their_trail() {
    let exported = exported().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, other) = trailseal::SealingKey::generate("k1", support::start_time(), 900).unwrap();
    let other_path = dir.path().join("other.key");
    other.save(&other_path).unwrap();
    let output = run(&[
        "verify",
        "--key",
        other_path.to_str().unwrap(),
        exported.jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 1);
    let text = stdout(&output);
    assert!(text.contains("admin#0 key_mismatch:"), "{text}");
    assert!(
        text.contains("NOT VERIFIED: the keys given do not fit"),
        "{text}"
    );

    // A line that is no entry at all: a finding where it stands, and the
    // rest of the trail is still checked.
    let mut broken = lines(&exported.jsonl);
    broken[3] = "{not json".into();
    write_lines(&exported.jsonl, &broken);
    let output = verify_json(&exported, &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(json_findings(&output), vec![("modified".to_owned(), 3)]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let detail = report["trails"][0]["findings"][0]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("line 4"), "{detail}");
}

#[tokio::test]
async fn errors_exit_two_with_a_clear_message() {
    let exported = exported().await;
    // Missing key file, unknown source, no key, unknown flag.
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            "/nonexistent/key",
            exported.jsonl.to_str().unwrap()
        ])),
        2
    );
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            exported.key.to_str().unwrap(),
            "nowhere"
        ])),
        2
    );
    assert_eq!(code(&run(&["verify", exported.jsonl.to_str().unwrap()])), 2);
    assert_eq!(code(&run(&["verify", "--bogus-flag"])), 2);
    // A file that holds no entry at all is no export.
    std::fs::write(&exported.jsonl, "{not json\n").unwrap();
    let output = verify_json(&exported, &[]);
    assert_eq!(code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1"));
}

#[test]
fn keygen_writes_private_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let output = run(&[
        "keygen",
        "--out",
        out.to_str().unwrap(),
        "--key-id",
        "panel-1",
    ]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    assert!(text.contains("verification.key  keep OFFLINE"), "{text}");
    assert!(
        text.contains("sealing.key  install on the panel server"),
        "{text}"
    );
    for name in ["verification.key", "sealing.key"] {
        let path = out.join(name);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert!(!std::fs::read_to_string(&path).unwrap().is_empty());
    }
    assert_eq!(
        trailseal::VerificationKey::load(out.join("verification.key"))
            .unwrap()
            .key_id(),
        "panel-1"
    );
    let before = std::fs::read(out.join("sealing.key")).unwrap();
    let again = run(&["keygen", "--out", out.to_str().unwrap()]);
    assert_eq!(code(&again), 2);
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(out.join("sealing.key")).unwrap(), before);
}
