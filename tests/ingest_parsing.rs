//! Parsing decisions: a mixed `mail.log` routed line by line to the
//! parser of its program, format detection of mixed and empty samples, and
//! the names of the formats.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use trailseal::ingest::{
    Detection, Follower, LineParser, LogFormat, ParseOptions, UNPARSED_ACTION,
};
use trailseal::{Entry, EntryKind, MemoryStore, SealingKey, Store, Trail, Verifier};

/// A log file of the test fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ingest")
        .join(name)
}

fn fixture_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(name))
        .unwrap_or_else(|err| panic!("{}: {err}", fixture(name).display()));
    text.lines().map(str::to_owned).collect()
}

/// Debian's single `mail.log`: Postfix and Dovecot (2 and 1) lines as
/// they interleave in one file.
fn mixed_mail_log() -> Vec<String> {
    fixture_lines("mail-mixed.log")
}

fn options() -> ParseOptions {
    ParseOptions::default().year_reference(Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap())
}

fn metadata(entry: &Entry) -> Map<String, Value> {
    serde_json::from_str(entry.value("metadata").unwrap()).unwrap()
}

#[tokio::test]
async fn a_mixed_mail_log_routes_every_line_to_the_parser_of_its_program() {
    let lines = mixed_mail_log();
    assert_eq!(lines.len(), 13);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let store = MemoryStore::new();
    let (key, verification) = SealingKey::generate("ingest", Utc::now(), 900).unwrap();
    let format = LogFormat::Syslog;
    assert_eq!(format.trail(), "mail");
    let trail = Trail::open(format.trail(), Arc::new(store.clone()), Arc::new(key))
        .await
        .unwrap();
    let mut follower = Follower::builder(trail, Arc::new(store.clone()), &path, format)
        .source("mail.log")
        .options(options())
        .batch_lines(4)
        .start()
        .await
        .unwrap();
    assert_eq!(follower.poll().await.unwrap(), 13);
    let stats = follower.stats();
    let entries: Vec<Entry> = store.scan("mail", 0).try_collect().await.unwrap();
    let events: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Event)
        .collect();
    assert_eq!(events.len(), 13);
    let report = Verifier::new(verification)
        .verify_trail(&store, "mail")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");

    let unparsed: Vec<String> = events
        .iter()
        .filter(|e| e.value("action") == Some(UNPARSED_ACTION))
        .map(|e| metadata(e)["line"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unparsed, Vec::<String>::new());
    assert_eq!((stats.parsed, stats.unparsed), (13, 0));

    let actions = |prefix: &str| {
        events
            .iter()
            .filter(|e| e.value("action").unwrap().starts_with(prefix))
            .count()
    };
    assert_eq!(actions("mailbox."), 5, "every Dovecot line");
    assert_eq!(actions("mail."), 8, "every Postfix line");

    // A Dovecot login, exactly.
    let login = events[1];
    assert_eq!(login.value("action"), Some("mailbox.access"));
    assert_eq!(metadata(login)["event"], "login");
    assert_eq!(login.value("actor.name"), Some("alice@example.org"));
    assert_eq!(login.value("target.id"), Some("alice@example.org"));
    assert_eq!(login.value("context.ip"), Some("198.51.100.23"));
    assert_eq!(
        login.value("occurred_at"),
        Some("2024-10-10T13:55:31.000000Z")
    );
    assert_eq!(metadata(login)["protocol"], "imap");
    // Dovecot 1's IMAP logout counts `bytes=in/out`.
    let logout = events[3];
    assert_eq!(logout.value("actor.name"), Some("bob"));
    assert_eq!(metadata(logout)["bytes"], 748 + 17264);
    // Dovecot 1's LDA, under its own tag.
    let delivered = events[5];
    assert_eq!(delivered.value("action"), Some("mailbox.access"));
    assert_eq!(delivered.value("actor.name"), Some("carol"));
    assert_eq!(metadata(delivered)["protocol"], "lda");
    assert_eq!(
        metadata(delivered)["text"],
        "msgid=<20241010.def@example.org>: saved mail to INBOX"
    );

    // Postfix's lines of no queued message are sessions with their peer.
    let tls = events[2];
    assert_eq!(tls.value("action"), Some("mail.session"));
    assert_eq!(tls.value("target.id"), Some("mail.example.org"));
    assert_eq!(tls.value("context.ip"), Some("198.51.100.7"));
    assert_eq!(metadata(tls)["program"], "postfix/smtpd");

    // Postfix's queue ids are correlated across the Dovecot lines between.
    let to_bob = events[10];
    assert_eq!(to_bob.value("action"), Some("mail.delivery"));
    let delivery = metadata(to_bob);
    assert_eq!(delivery["recipient"], "bob@example.net");
    assert_eq!(delivery["sender"], "alice@example.org");
    assert_eq!(delivery["size"], 2345);
    assert_eq!(delivery["message_id"], "20241010.abc@example.org");
    assert_eq!(to_bob.value("target.id"), Some("20241010.abc@example.org"));
}

#[test]
fn lines_of_other_programs_are_unparsed_and_say_which_parser_tried() {
    let mut parser = LineParser::new(LogFormat::Syslog, options());
    let cron =
        parser.parse(b"Nov 28 10:00:00 mx1 CRON[99]: (root) CMD (run-parts /etc/cron.hourly)");
    assert!(cron.is_unparsed());
    assert_eq!(cron.event.metadata["log_format"], "syslog");
    assert_eq!(
        cron.unparsed_reason(),
        Some("no parser for the program of this syslog line")
    );
    let not_syslog = parser.parse(b"no syslog header at all");
    assert_eq!(not_syslog.event.metadata["log_format"], "syslog");
    // A Dovecot line its parser does not understand names that parser.
    let odd = parser.parse(b"Nov 28 10:00:00 mx1 dovecot: something odd");
    assert!(odd.is_unparsed());
    assert_eq!(odd.event.metadata["log_format"], "dovecot");
}

#[test]
fn ftp_daemons_logging_through_syslog_are_routed_too() {
    let mut parser = LineParser::new(LogFormat::Syslog, options());
    let vsftpd = parser
        .parse(b"Nov 28 10:00:00 web1 vsftpd[3120]: [web42] OK LOGIN: Client \"203.0.113.5\"");
    assert!(!vsftpd.is_unparsed(), "{:?}", vsftpd.unparsed_reason());
    let event = &vsftpd.event;
    assert_eq!(event.action, "ftp.login");
    assert_eq!(event.actor.as_ref().unwrap().name, "web42");
    assert_eq!(event.target.as_ref().unwrap().id, "web42");
    assert_eq!(event.context.ip, Some("203.0.113.5".parse().unwrap()));
    assert_eq!(
        event.occurred_at,
        Some(Utc.with_ymd_and_hms(2024, 11, 28, 10, 0, 0).unwrap())
    );
    let upload = parser.parse(
        b"Nov 28 10:00:01 web1 vsftpd[3122]: [web42] OK UPLOAD: Client \"203.0.113.5\", \"/htdocs/index.php\", 1432 bytes, 89.50Kbyte/sec",
    );
    assert_eq!(upload.event.action, "ftp.upload");
    assert_eq!(
        upload.event.target.as_ref().unwrap().id,
        "/htdocs/index.php"
    );
    assert_eq!(upload.event.metadata["bytes"], 1432);
    let pure = parser.parse(
        b"Nov 28 10:00:02 web1 pure-ftpd: (?@198.51.100.66) [WARNING] Authentication failed for user [admin]",
    );
    assert_eq!(pure.event.action, "ftp.login");
    assert_eq!(pure.event.outcome.as_str(), "failure");
    // The vsftpd format reads its syslog lines as well as its own log.
    let mut own = LineParser::new(LogFormat::Vsftpd, options());
    assert!(
        !own.parse(b"Nov 28 10:00:00 web1 vsftpd[3120]: CONNECT: Client \"203.0.113.5\"")
            .is_unparsed()
    );
}

#[test]
fn detection_prefers_one_program_and_takes_syslog_for_a_mix() {
    let detect = |lines: &[String]| LogFormat::detect_sample(lines.iter().map(|l| l.as_bytes()));
    assert_eq!(
        detect(&mixed_mail_log()),
        Detection::Format(LogFormat::Syslog)
    );
    assert_eq!(
        detect(&fixture_lines("postfix.log")),
        Detection::Format(LogFormat::Postfix)
    );
    assert_eq!(
        detect(&fixture_lines("dovecot.log")),
        Detection::Format(LogFormat::Dovecot)
    );
    assert_eq!(
        detect(&fixture_lines("web-access.log")),
        Detection::Format(LogFormat::WebAccess)
    );
}

#[test]
fn an_empty_sample_is_nothing_to_judge_yet_not_a_failure() {
    let empty: [&[u8]; 0] = [];
    assert_eq!(LogFormat::detect_sample(empty), Detection::Empty);
    // An empty file split at its line breaks, and one of empty lines.
    assert_eq!(
        LogFormat::detect_sample(b"".split(|&b| b == b'\n')),
        Detection::Empty
    );
    assert_eq!(
        LogFormat::detect_sample(b"\n\r\n\n".split(|&b| b == b'\n')),
        Detection::Empty
    );
    assert_eq!(
        LogFormat::detect_sample(b"what is this\nno idea\n".split(|&b| b == b'\n')),
        Detection::Unrecognised
    );
    // `detect` keeps its meaning: a format or none.
    assert_eq!(LogFormat::detect(empty), None);
}

#[test]
fn every_format_has_a_name_and_the_error_lists_them_all() {
    for &format in LogFormat::ALL {
        assert_eq!(format.name().parse::<LogFormat>().unwrap(), format);
    }
    assert_eq!("syslog".parse::<LogFormat>().unwrap(), LogFormat::Syslog);
    let error = "maillog".parse::<LogFormat>().unwrap_err().to_string();
    assert_eq!(
        error,
        "unknown log format \"maillog\"; known formats: web, postfix, dovecot, mailman, php-mail, pure-ftpd, vsftpd, syslog"
    );
}

#[test]
fn a_long_ftp_path_is_cut_to_an_identifier_with_its_length() {
    let path = format!("/htdocs/{}", "ä".repeat(150));
    let line = format!(
        "Thu Oct 10 13:55:40 2024 [pid 3122] [web42] OK UPLOAD: Client \"203.0.113.5\", \"{path}\", 1432 bytes, 89.50Kbyte/sec"
    );
    let parsed = LineParser::new(LogFormat::Vsftpd, options()).parse(line.as_bytes());
    assert!(!parsed.is_unparsed(), "{:?}", parsed.unparsed_reason());
    let target = &parsed.event.target.as_ref().unwrap().id;
    // 8 bytes of `/htdocs/`, then 124 two-byte characters: 256 bytes.
    assert_eq!(target.len(), 256);
    assert!(path.starts_with(target.as_str()));
    assert_eq!(parsed.event.metadata["file_len"], 308);
}
