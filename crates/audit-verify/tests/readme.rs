//! The README's commands, run as written in a fresh folder: the quickstart,
//! then every `audit-verify` line of "Verifying a trail" (all but
//! `cargo install`, which would change this machine).

use crate::support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_audit-verify");

/// The shell blocks of the README section titled `title`, line by line.
fn shell_lines(title: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(support::repository().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with(title))
        .unwrap_or_else(|| panic!("the README has a section {title:?}"));
    let mut lines = Vec::new();
    let mut in_shell = false;
    for line in section.lines() {
        match line {
            "```sh" => in_shell = true,
            "```" => in_shell = false,
            _ if in_shell => lines.push(line.to_owned()),
            _ => {}
        }
    }
    lines
}

/// Runs a README line with `sh` in `folder`, the verifier being the one
/// cargo built for these tests.
fn run(folder: &Path, line: &str) {
    let command = match line.strip_prefix("audit-verify ") {
        Some(arguments) => format!("{BIN} {arguments}"),
        None => line.replace("cargo run --bin audit-verify --", BIN),
    };
    assert!(command.starts_with(BIN), "not a verifier command: {line}");
    let output = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(folder)
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "{line}\nexit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_verifying_commands_work_as_written_after_the_quickstart() {
    let folder = tempfile::tempdir().unwrap();
    let quickstart = Command::new(support::example("quickstart"))
        .current_dir(folder.path())
        .output()
        .expect("the quickstart runs");
    assert!(quickstart.status.success(), "{quickstart:?}");

    let lines: Vec<String> = shell_lines("Verifying a trail")
        .into_iter()
        .filter(|line| line.starts_with("cargo run --bin audit-verify -- "))
        .collect();
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        run(folder.path(), line);
    }
    let data = folder.path().join("trailseal-data");
    let checkpoint = std::fs::read_to_string(data.join("today.checkpoint")).unwrap();
    assert!(
        checkpoint.starts_with("trailseal checkpoint v1\n"),
        "{checkpoint}"
    );
    assert!(support::line_count(&data.join("trail.jsonl")) > 60);
}

#[test]
fn the_deployment_keygen_writes_under_the_ignored_data_folder() {
    let folder = tempfile::tempdir().unwrap();
    let lines: Vec<String> = shell_lines("Verifying a trail")
        .into_iter()
        .filter(|line| line.starts_with("audit-verify "))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    run(folder.path(), &lines[0]);
    let keys = folder.path().join("trailseal-data/keys-for-production");
    assert!(keys.join("sealing.key").is_file());
    assert!(keys.join("verification.key").is_file());
}
