//! Running the tool as an operator does: a configuration file, the keys
//! made by `keygen`, the binary started as a process; and reading back what
//! it sealed, line by line, from the real database.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::Value;
use trailseal::{EntryKind, Store, store::SqliteStoreOptions};

use crate::support;

/// Exit statuses, as docs/INGEST.md lists them.
pub const EXIT_SOURCE_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;
pub const EXIT_LOCKED: i32 = 3;
pub const EXIT_START: i32 = 4;

/// How long a test waits for the service to reach a state before failing:
/// long, since the machine may be busy; a passing test waits only as long as
/// the service takes.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A folder with log files, a configuration and keys.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub database: String,
}

impl Setup {
    /// The web and Postfix fixtures, sealed into `database`, or into a
    /// SQLite file in the setup's folder when `None`.
    pub fn new(database: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = support::repository().join("tests/fixtures/ingest");
        for name in ["web-access.log", "postfix.log"] {
            std::fs::copy(fixtures.join(name), dir.path().join(name)).unwrap();
        }
        let database = database.map_or_else(
            || format!("sqlite://{}", dir.path().join("data/trail.db").display()),
            str::to_owned,
        );
        let setup = Self { dir, database };
        setup.configure("");
        setup
    }

    /// A setup sealing into a SQLite file.
    pub fn sqlite() -> Self {
        Self::new(None)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn web(&self) -> PathBuf {
        self.path("web-access.log")
    }

    pub fn mail(&self) -> PathBuf {
        self.path("postfix.log")
    }

    pub fn config(&self) -> PathBuf {
        self.path("ingest.toml")
    }

    pub fn verification_key(&self) -> PathBuf {
        self.path("offline/verification.key")
    }

    /// Writes the configuration: the two fixtures (the web log's format
    /// detected, Postfix named), then `extra` TOML.
    pub fn configure(&self, extra: &str) {
        let mut text = String::new();
        writeln!(text, "database = {:?}", self.database).unwrap();
        writeln!(
            text,
            "sealing_key = {:?}",
            self.path("state/sealing.key").display().to_string()
        )
        .unwrap();
        writeln!(
            text,
            "verification_key = {:?}",
            self.verification_key().display().to_string()
        )
        .unwrap();
        writeln!(
            text,
            "lock_file = {:?}",
            self.path("ingest.lock").display().to_string()
        )
        .unwrap();
        writeln!(text, "poll_interval_ms = 20").unwrap();
        text.push_str(extra);
        writeln!(
            text,
            "\n[[source]]\npath = {:?}\n\n[[source]]\npath = {:?}\nformat = \"postfix\"",
            self.web().display().to_string(),
            self.mail().display().to_string()
        )
        .unwrap();
        std::fs::write(self.config(), text).unwrap();
    }

    /// The tool with `subcommand --config <the configuration>`.
    pub fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trailseal-ingest"));
        command
            .arg(subcommand)
            .arg("--config")
            .arg(self.config())
            .env_remove("JOURNAL_STREAM")
            .env_remove("TRAILSEAL_LOG");
        command
    }

    /// Runs `keygen`; the verification key lands apart from the sealing key.
    pub fn keygen(&self) {
        let output = self.command("keygen").output().unwrap();
        assert_success(&output);
        assert!(self.verification_key().exists());
        assert!(!self.path("state/verification.key").exists());
    }

    /// Runs `once` to its end.
    pub fn once(&self) -> Output {
        self.command("once").output().unwrap()
    }

    /// Starts `run` the way the systemd unit does, its stderr read by a
    /// thread.
    pub fn start_run(&self) -> Running {
        let mut child = self
            .command("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: receiver,
            seen: Vec::new(),
        }
    }

    /// Appends `count` copies of the web fixture's first line.
    pub fn append_web_lines(&self, count: usize) {
        self.append_web_lines_to(&self.web(), count);
    }

    /// Appends `count` copies of the web fixture's first line to `file`,
    /// creating it if needed, as a web server writes its log.
    pub fn append_web_lines_to(&self, file: &Path, count: usize) {
        let text = std::fs::read_to_string(
            support::repository().join("tests/fixtures/ingest/web-access.log"),
        )
        .unwrap();
        let line = text.lines().next().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .unwrap();
        let mut block = String::new();
        for _ in 0..count {
            block.push_str(line);
            block.push('\n');
        }
        file.write_all(block.as_bytes()).unwrap();
    }

    /// The read-back of what is sealed, per source.
    pub fn sealed(&self) -> BTreeMap<String, Vec<u64>> {
        runtime().block_on(sealed_lines(&self.database))
    }

    /// Asserts that every line of `files` is sealed exactly once: one
    /// entry per line, at the offsets of the file's line ends, in order.
    pub fn assert_exactly_once(&self, files: &[PathBuf]) {
        let sealed = self.sealed();
        for file in files {
            let expected = line_ends(file);
            let name = file.display().to_string();
            let got = sealed.get(&name).cloned().unwrap_or_default();
            assert_eq!(
                got.len(),
                expected.len(),
                "{name}: entries sealed for {} lines",
                expected.len()
            );
            assert_eq!(got, expected, "{name}: offsets of the sealed lines");
        }
    }

    /// Asserts that the lines sealed from `source` are exactly the first
    /// lines of `files` read in turn (the log and the files it was rotated
    /// into, oldest first), each once: `complete` asks for all of them,
    /// otherwise a prefix will do, as after a kill.
    pub fn assert_sealed_in_order(&self, source: &Path, files: &[PathBuf], complete: bool) {
        let expected: Vec<(String, u64)> = files
            .iter()
            .flat_map(|file| {
                let id = file_id(file);
                line_ends(file)
                    .into_iter()
                    .map(move |end| (id.clone(), end))
            })
            .collect();
        let name = source.display().to_string();
        let got = runtime()
            .block_on(sealed_lines_by_file(&self.database))
            .remove(&name)
            .unwrap_or_default();
        if complete {
            assert_eq!(
                got.len(),
                expected.len(),
                "{name}: entries sealed for {} lines",
                expected.len()
            );
        }
        assert!(
            got.len() <= expected.len(),
            "{name}: {} entries sealed for {} lines",
            got.len(),
            expected.len()
        );
        if let Some(at) = got
            .iter()
            .zip(&expected)
            .position(|(got, want)| got != want)
        {
            panic!(
                "{name}: sealed line {at} is {:?}, the line there ends at {:?}",
                got[at], expected[at]
            );
        }
    }

    /// The file and line end of the last line sealed into `trail`, if any.
    pub fn last_sealed(&self, trail: &str) -> Option<(String, u64)> {
        runtime().block_on(last_sealed(&self.database, trail))
    }

    /// `audit-verify --json` with the offline verification key: exit code
    /// and entries per trail.
    pub fn verify(&self) -> (i32, Vec<(String, u64)>) {
        let output = Command::new(support::binary("audit-verify", "audit-verify"))
            .args(["verify", "--json", "--quiet", "--key"])
            .arg(self.verification_key())
            .arg(&self.database)
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

/// A `run` process.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    /// Waits for a log line containing `text`; returns it.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {text:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The metrics endpoint's address, from the log.
    pub fn metrics_address(&mut self) -> String {
        let line = self.wait_for_line("metrics on http://");
        let (_, rest) = line.split_once("http://").unwrap();
        rest.split('/').next().unwrap().to_owned()
    }

    /// Sends SIGTERM, as systemd stops the unit; returns the exit status
    /// and every log line.
    pub fn terminate(mut self) -> (i32, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        (
            status.code().expect("exited, not killed"),
            self.seen.join("\n"),
        )
    }
}

/// `GET /metrics` over plain TCP; returns the body.
pub fn scrape(address: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample `name{source="<file>",...}` in scraped text.
pub fn sample(text: &str, name: &str, file: &Path) -> Option<f64> {
    let prefix = format!("{name}{{source=\"{}\",", file.display());
    text.lines()
        .find(|line| line.starts_with(&prefix))
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

/// Scrapes until `done` holds for the text; returns it.
pub fn scrape_until(address: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(address);
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never reached; last:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The byte offset after each line of `file`.
pub fn line_ends(file: &Path) -> Vec<u64> {
    std::fs::read(file)
        .unwrap()
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| byte == b'\n')
        .map(|(at, _)| at as u64 + 1)
        .collect()
}

/// The number of entries in `trail` now (its head's seq + 1), read while a
/// writer may be running.
pub async fn trail_length(database: &str, trail: &str) -> u64 {
    let store = SqliteStoreOptions::from_url(database)
        .unwrap()
        .read_only(true)
        .open()
        .await
        .unwrap();
    let length = store
        .head(trail)
        .await
        .unwrap()
        .map_or(0, |head| head.seq + 1);
    store.close().await;
    length
}

/// A file's identity as the follower records it in `log_file`.
pub fn file_id(file: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(file).unwrap();
    format!("{}:{}", metadata.dev(), metadata.ino())
}

/// The `log_file` and `log_offset` of the last line sealed into `trail`,
/// read while a writer may be running. Only the trail's tail is read, so
/// that polling stays cheap however long the trail is.
pub async fn last_sealed(database: &str, trail: &str) -> Option<(String, u64)> {
    let store = open_read_only(database).await;
    let from = store
        .head(trail)
        .await
        .unwrap()
        .map(|head| head.seq.saturating_sub(256));
    let mut last = None;
    if let Some(from) = from {
        let entries: Vec<_> = store.scan(trail, from).try_collect().await.unwrap();
        last = entries.iter().rev().find_map(line_of);
    }
    store.close().await;
    last.map(|(_, file, offset)| (file, offset))
}

/// Every log entry in the database: per `log_source`, the `log_offset`s in
/// trail order.
pub async fn sealed_lines(database: &str) -> BTreeMap<String, Vec<u64>> {
    sealed_lines_by_file(database)
        .await
        .into_iter()
        .map(|(source, lines)| {
            let offsets = lines.into_iter().map(|(_, offset)| offset).collect();
            (source, offsets)
        })
        .collect()
}

/// Every log entry in the database: per `log_source`, the `log_file` and
/// `log_offset` of each, in trail order.
pub async fn sealed_lines_by_file(database: &str) -> BTreeMap<String, Vec<(String, u64)>> {
    #[cfg(feature = "postgres")]
    if database.starts_with("postgres") {
        let store = trailseal::PostgresStore::connect(database).await.unwrap();
        return lines_of(&store).await;
    }
    let store = open_read_only(database).await;
    let sealed = lines_of(&store).await;
    store.close().await;
    sealed
}

async fn open_read_only(database: &str) -> trailseal::SqliteStore {
    SqliteStoreOptions::from_url(database)
        .unwrap()
        .read_only(true)
        .open()
        .await
        .unwrap()
}

async fn lines_of(store: &dyn Store) -> BTreeMap<String, Vec<(String, u64)>> {
    let mut sealed: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for trail in store.trails().await.unwrap() {
        let entries: Vec<_> = store.scan(&trail, 0).try_collect().await.unwrap();
        for (source, file, offset) in entries.iter().filter_map(line_of) {
            sealed.entry(source).or_default().push((file, offset));
        }
    }
    sealed
}

/// The `log_source`, `log_file` and `log_offset` of a sealed line.
fn line_of(entry: &trailseal::Entry) -> Option<(String, String, u64)> {
    if entry.kind != EntryKind::Event {
        return None;
    }
    let metadata: Value = serde_json::from_str(entry.value("metadata")?).unwrap();
    Some((
        metadata["log_source"].as_str()?.to_owned(),
        metadata["log_file"].as_str()?.to_owned(),
        metadata["log_offset"].as_u64()?,
    ))
}
