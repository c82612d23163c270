//! Web access log lines for the ingest benchmarks, and the trail they are
//! sealed into.

use std::io::Write;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use trailseal::ingest::{LogFormat, ParseOptions};
use trailseal::{ManualClock, SealingKey, Store, Trail};

/// `lines` realistic Combined Log Format lines, reproducibly.
pub fn access_log(lines: usize) -> Vec<u8> {
    const PATHS: [&str; 8] = [
        "/",
        "/index.php",
        "/shop/cart.php?item=4711&qty=2",
        "/wp-login.php",
        "/wp-content/themes/astra/style.css?ver=4.6.1",
        "/images/logo.png",
        "/kontakt/",
        "/api/v1/orders?page=3&sort=-date",
    ];
    const AGENTS: [&str; 4] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
    ];
    const STATUS: [(u16, &str); 5] = [
        (200, "GET"),
        (200, "GET"),
        (304, "GET"),
        (302, "POST"),
        (404, "GET"),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut roll = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut log = Vec::with_capacity(lines * 220);
    for i in 0..lines {
        let ip = if roll(5) == 0 {
            format!("2001:db8::{:x}", roll(0xffff))
        } else {
            format!("198.51.{}.{}", roll(256), roll(254) + 1)
        };
        let user = if roll(20) == 0 { "redaktion" } else { "-" };
        let (status, method) = STATUS[roll(STATUS.len())];
        let bytes = if status == 200 { roll(90_000) + 200 } else { 0 };
        let (minute, second) = (i / 60 % 60, i % 60);
        let referrer = match roll(3) {
            0 => "-",
            1 => "https://baeckerei-mueller.de/",
            _ => "https://www.google.com/",
        };
        writeln!(
            log,
            "{ip} - {user} [29/Nov/2026:08:{minute:02}:{second:02} +0100] \"{method} {} HTTP/1.1\" \
             {status} {bytes} \"{referrer}\" \"{}\"",
            PATHS[roll(PATHS.len())],
            AGENTS[roll(AGENTS.len())],
        )
        .unwrap();
    }
    log
}

/// How the lines are parsed: a log of one site.
pub fn options() -> ParseOptions {
    ParseOptions::default().default_domain("baeckerei-mueller.de")
}

/// The time the lines and the trail start.
pub fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

/// The web access trail in `store`, its clock standing still at
/// [`start`], so that no epoch ends during a benchmark.
pub async fn start_trail(store: Arc<dyn Store>) -> Trail {
    let (key, _) = SealingKey::generate("bench", start(), 900).unwrap();
    Trail::builder(LogFormat::WebAccess.trail(), store, Arc::new(key))
        .clock(Arc::new(ManualClock::new(start())))
        .start()
        .await
        .unwrap()
}

/// An empty log file in a new temporary folder (removed when the folder is
/// dropped), where a database may go, too.
pub fn empty_log() -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, b"").unwrap();
    (log, dir)
}
