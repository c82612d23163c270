//! FTP servers (trail `ftp`): logins (`ftp.login`, failed ones with their
//! reason), transfers (`ftp.upload`, `ftp.download`) and other session
//! lines (`ftp.session`).
//!
//! pure-ftpd, through syslog:
//!
//! ```text
//! Oct 10 13:55:36 web1 pure-ftpd: (?@203.0.113.5) [INFO] New connection from 203.0.113.5
//! Oct 10 13:55:37 web1 pure-ftpd: (?@203.0.113.5) [INFO] web42 is now logged in
//! Oct 10 13:55:40 web1 pure-ftpd: (web42@203.0.113.5) [NOTICE] /var/www/web42//htdocs/index.php uploaded  (1432 bytes, 89.50KB/sec)
//! Oct 10 13:55:52 web1 pure-ftpd: (?@198.51.100.66) [WARNING] Authentication failed for user [admin]
//! ```
//!
//! vsftpd, its own `vsftpd.log` (`xferlog_std_format=NO`), or the same
//! messages through syslog (`syslog_enable=YES`: `Oct 10 13:55:37 web1
//! vsftpd[3120]: [web42] OK LOGIN: Client "203.0.113.5"`):
//!
//! ```text
//! Thu Oct 10 13:55:36 2024 [pid 3121] CONNECT: Client "203.0.113.5"
//! Thu Oct 10 13:55:37 2024 [pid 3120] [web42] OK LOGIN: Client "203.0.113.5"
//! Thu Oct 10 13:55:40 2024 [pid 3122] [web42] OK UPLOAD: Client "203.0.113.5", "/htdocs/index.php", 1432 bytes, 89.50Kbyte/sec
//! Thu Oct 10 13:55:52 2024 [pid 3125] [admin] FAIL LOGIN: Client "198.51.100.66"
//! ```

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::fields::{ParseOptions, Unrecognised, clip, failure, text_field};
use super::{syslog, time};
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder, MAX_IDENTIFIER_LEN};

fn actor(user: &str) -> Actor {
    if user.is_empty() || user == "?" {
        Actor::anonymous("unknown")
    } else {
        Actor::customer(user)
    }
}

fn with_ip(event: EventBuilder, ip: &str) -> EventBuilder {
    match ip.parse::<IpAddr>() {
        Ok(ip) => event.ip(ip),
        Err(_) => text_field(event, "client_host", ip),
    }
}

pub(super) fn parse_pure_ftpd(
    line: &str,
    options: &ParseOptions,
) -> Result<EventBuilder, Unrecognised> {
    let syslog = syslog::split(line, options).ok_or("no syslog header")?;
    if syslog.program != "pure-ftpd" {
        return Err("not a pure-ftpd line");
    }
    let rest = syslog.message.strip_prefix('(').ok_or("no (user@host)")?;
    let (who, rest) = rest.split_once(") [").ok_or("no (user@host)")?;
    let (user, host) = who.rsplit_once('@').ok_or("no (user@host)")?;
    let (_level, text) = rest.split_once("] ").ok_or("no [level]")?;
    let event = if let Some(login) = text.strip_suffix(" is now logged in") {
        Event::builder(HostingAction::FtpLogin.name())
            .actor(actor(login))
            .target("ftp_account", login)
    } else if let Some(tried) = text
        .strip_prefix("Authentication failed for user [")
        .and_then(|t| t.strip_suffix(']'))
    {
        Event::builder(HostingAction::FtpLogin.name())
            .actor(Actor::anonymous(if tried.is_empty() {
                "unknown"
            } else {
                tried
            }))
            .target(
                "ftp_account",
                if tried.is_empty() { "unknown" } else { tried },
            )
            .failure("authentication failed")
    } else if let Some((path, details)) = transfer(text, " uploaded ") {
        transfer_event(HostingAction::FtpUpload, user, path, details)
    } else if let Some((path, details)) = transfer(text, " downloaded ") {
        transfer_event(HostingAction::FtpDownload, user, path, details)
    } else {
        text_field(
            Event::builder(HostingAction::FtpSession.name()).actor(actor(user)),
            "text",
            text,
        )
    };
    Ok(with_ip(event, host).occurred_at(syslog.time))
}

/// `PATH uploaded  (1432 bytes, 89.50KB/sec)`.
fn transfer<'a>(text: &'a str, verb: &str) -> Option<(&'a str, &'a str)> {
    let (path, details) = text.rsplit_once(verb)?;
    details
        .trim_start()
        .starts_with('(')
        .then_some((path, details))
}

fn transfer_event(action: HostingAction, user: &str, path: &str, details: &str) -> EventBuilder {
    let bytes = details
        .trim_start()
        .trim_start_matches('(')
        .split_once(" bytes")
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // The path is the target, an identifier: not escaped (one with a
    // control character makes the line unparsed) but cut to fit.
    let event = Event::builder(action.name())
        .actor(actor(user))
        .target("file", clip(path, MAX_IDENTIFIER_LEN))
        .meta("bytes", bytes);
    if path.len() > MAX_IDENTIFIER_LEN {
        event.meta("file_len", path.len())
    } else {
        event
    }
}

/// vsftpd's own log (`Thu Oct 10 13:55:36 2024 [pid 3121] …`) or, with
/// `syslog_enable=YES`, its syslog lines (`Oct 10 13:55:36 web1
/// vsftpd[3121]: …`), which carry the same message without time and pid.
pub(super) fn parse_vsftpd(
    line: &str,
    options: &ParseOptions,
) -> Result<EventBuilder, Unrecognised> {
    if let Some(time) = line
        .get(..24)
        .and_then(|stamp| time::ctime(stamp, options.utc_offset))
    {
        let rest = line[24..].strip_prefix(" [pid ").ok_or("no [pid]")?;
        let (_pid, rest) = rest.split_once("] ").ok_or("no [pid]")?;
        return vsftpd_message(rest, time);
    }
    let syslog = syslog::split(line, options).ok_or("no ctime time nor syslog header")?;
    if syslog.program != "vsftpd" {
        return Err("not a vsftpd line");
    }
    vsftpd_message(syslog.message, syslog.time)
}

/// What follows the time and pid: `[user] OK LOGIN: Client "ip"…`.
fn vsftpd_message(rest: &str, time: DateTime<Utc>) -> Result<EventBuilder, Unrecognised> {
    let (user, rest) = match rest.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").ok_or("unterminated [user]")?,
        None => ("", rest),
    };
    let (command, details) = rest.split_once(": Client \"").ok_or("no Client")?;
    let (client, details) = details.split_once('"').ok_or("unterminated Client")?;
    let (ok, verb) = match command.split_once(' ') {
        Some(("OK", verb)) => (true, verb),
        Some(("FAIL", verb)) => (false, verb),
        _ => (true, command),
    };
    let path = details.strip_prefix(", \"").and_then(|d| d.split_once('"'));
    let event = match (verb, path) {
        ("LOGIN", _) => {
            let account = if user.is_empty() { "unknown" } else { user };
            let event =
                Event::builder(HostingAction::FtpLogin.name()).target("ftp_account", account);
            if ok {
                event.actor(actor(user))
            } else {
                event
                    .actor(Actor::anonymous(account))
                    .failure("login failed")
            }
        }
        ("UPLOAD" | "DOWNLOAD", Some((path, rest))) => {
            let action = if verb == "UPLOAD" {
                HostingAction::FtpUpload
            } else {
                HostingAction::FtpDownload
            };
            let event = transfer_event(action, user, path, rest.trim_start_matches(", "));
            let bytes = rest
                .trim_start_matches(", ")
                .split_once(" bytes")
                .and_then(|(n, _)| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let event = event.meta("bytes", bytes);
            if ok { event } else { failure(event, command) }
        }
        _ => {
            let event = text_field(
                Event::builder(HostingAction::FtpSession.name()).actor(actor(user)),
                "text",
                command,
            );
            match path {
                Some((path, _)) => text_field(event, "path", path),
                None => event,
            }
        }
    };
    Ok(with_ip(event, client).occurred_at(time))
}
