//! Dovecot IMAP and POP3 (trail `mailbox`, action `mailbox.access`):
//! logins, failed logins, logouts.
//!
//! ```text
//! Oct 10 13:55:36 mx1 dovecot: imap-login: Login: user=<alice@example.org>, method=PLAIN, rip=198.51.100.23, lip=192.0.2.1, mpid=4321, TLS, session=<k3J8>
//! Oct 10 13:55:40 mx1 dovecot: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob@example.org>, method=PLAIN, rip=198.51.100.24, lip=192.0.2.1, TLS
//! Oct 10 13:56:12 mx1 dovecot: imap(alice@example.org)<4321><k3J8>: Logged out in=1024 out=53311 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0
//! Oct 10 13:56:13 mx1 dovecot: auth: passwd-file(carol@example.org,198.51.100.25): Password mismatch
//! ```
//!
//! Dovecot 1's LDA logs under its own syslog tag, `deliver(<user>):`; such
//! lines are sessions of protocol `lda` (as are Dovecot 2's `lda(<user>)`).
//!
//! Fields: the user (actor and target mailbox), `protocol`, the remote IP
//! (`rip`), `event` (`login`, `login_failed`, `logout`, `session`), `bytes`
//! (in + out for IMAP, also as Dovecot 1's `bytes=in/out`; retrieved for
//! POP3) and, for a failure, the reason.
//! A password is never recorded: Dovecot's `auth_verbose_passwords` may
//! append `(given password: …)`; only the text before it is kept, and
//! unparsed lines are masked as well.

use std::net::IpAddr;

use super::fields::{ParseOptions, Unrecognised, failure, text_field, text_field_within};
use super::mail::field;
use super::syslog;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};

pub(super) fn parse(line: &str, options: &ParseOptions) -> Result<EventBuilder, Unrecognised> {
    let syslog = syslog::split(line, options).ok_or("no syslog header")?;
    if let Some(user) = syslog::deliver_user(syslog.program) {
        // Dovecot 1's LDA logs under its own tag: `deliver(user): msgid=…`.
        let event = access(user, "lda", "session");
        return Ok(text_field(event, "text", syslog.message).occurred_at(syslog.time));
    }
    if syslog.program != "dovecot" {
        return Err("not a dovecot line");
    }
    let message = syslog.message;
    let event = if let Some((protocol, rest)) = login_process(message) {
        login_line(protocol, rest)?
    } else if let Some(rest) = message.strip_prefix("auth: ") {
        auth_line(rest)?
    } else {
        session_line(message)?
    };
    Ok(event.occurred_at(syslog.time))
}

/// `imap-login: …` / `pop3-login: …`.
fn login_process(message: &str) -> Option<(&str, &str)> {
    let (process, rest) = message.split_once(": ")?;
    let protocol = process.strip_suffix("-login")?;
    Some((protocol, rest))
}

fn access(user: &str, protocol: &str, kind: &'static str) -> EventBuilder {
    let event = Event::builder(HostingAction::MailboxAccess.name())
        .actor(Actor::customer(user))
        .target("mailbox", user);
    text_field_within(event, "protocol", protocol, 32).meta("event", kind)
}

fn with_ip(event: EventBuilder, text: &str) -> EventBuilder {
    match field(text, "rip").and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(ip) => event.ip(ip),
        None => event,
    }
}

fn login_line(protocol: &str, rest: &str) -> Result<EventBuilder, Unrecognised> {
    let user = field(rest, "user").filter(|u| !u.is_empty());
    if let Some(details) = rest.strip_prefix("Login: ") {
        let user = user.ok_or("login without user")?;
        return Ok(with_ip(access(user, protocol, "login"), details));
    }
    // "Disconnected (auth failed, 1 attempts in 2 secs): user=<…>, …",
    // "Aborted login (no auth attempts in 0 secs): …"
    let reason = rest
        .split_once(": user=")
        .map_or(rest, |(reason, _)| reason);
    let reason = reason
        .split_once(": rip=")
        .map_or(reason, |(reason, _)| reason);
    let event = access(user.unwrap_or("unknown"), protocol, "login_failed");
    Ok(failure(with_ip(event, rest), reason))
}

/// `passwd-file(user,ip[,session]): Password mismatch (given password: …)`.
fn auth_line(rest: &str) -> Result<EventBuilder, Unrecognised> {
    let (source, reason) = rest.split_once("): ").ok_or("auth line without source")?;
    let (_driver, params) = source.split_once('(').ok_or("auth line without user")?;
    let mut params = params.split(',');
    let user = params
        .next()
        .filter(|u| !u.is_empty() && *u != "?")
        .unwrap_or("unknown");
    let ip = params.next().and_then(|ip| ip.parse::<IpAddr>().ok());
    // Never the parenthesised tail: it may be the given password.
    let reason = reason.split_once(" (").map_or(reason, |(reason, _)| reason);
    let mut event = failure(access(user, "auth", "login_failed"), reason);
    if let Some(ip) = ip {
        event = event.ip(ip);
    }
    Ok(event)
}

/// `imap(user)<pid><session>: Logged out in=… out=…` and other lines of
/// a logged-in session.
fn session_line(message: &str) -> Result<EventBuilder, Unrecognised> {
    let open = message.find('(').ok_or("not a dovecot session line")?;
    let protocol = &message[..open];
    if protocol.is_empty() || !protocol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("not a dovecot session line");
    }
    let rest = &message[open + 1..];
    let (user, rest) = rest.split_once(')').ok_or("session without user")?;
    let (_, text) = rest.split_once(": ").ok_or("session line without text")?;
    let number = |key| field(text, key).and_then(|v: &str| v.parse::<u64>().ok());
    let pop_bytes = field(text, "retr")
        .and_then(|v| v.split_once('/'))
        .and_then(|(_, bytes)| bytes.parse::<u64>().ok());
    // Dovecot 1 writes IMAP's `bytes=in/out`.
    let in_out = field(text, "bytes")
        .and_then(|v| v.split_once('/'))
        .and_then(|(i, o)| Some((i.parse::<u64>().ok()?, o.parse::<u64>().ok()?)));
    let bytes = match (number("in"), number("out"), pop_bytes, in_out) {
        (Some(i), Some(o), _, _) | (_, _, _, Some((i, o))) => Some(i.saturating_add(o)),
        (_, _, Some(retrieved), _) => Some(retrieved),
        _ => None,
    };
    let kind = if text.contains("Logged out") {
        "logout"
    } else {
        "session"
    };
    let mut event = access(user, protocol, kind);
    if let Some(bytes) = bytes {
        event = event.meta("bytes", bytes);
    }
    Ok(text_field(event, "text", text))
}
