//! The syslog header that Postfix, Dovecot and pure-ftpd lines share:
//! `Oct 10 13:55:36 mx1 postfix/smtpd[1234]: message` (classic) or
//! `2024-10-10T13:55:36.123456+02:00 mx1 postfix/smtpd[1234]: message`
//! (RFC 3339, as modern rsyslog writes it); and the routing of the lines
//! of a file that mixes several programs ([`LogFormat::Syslog`]) by the
//! program that wrote each.

use chrono::{DateTime, Utc};

use super::LogFormat;
use super::fields::ParseOptions;
use super::time;

/// One syslog line, split.
pub(super) struct SyslogLine<'a> {
    pub(super) time: DateTime<Utc>,
    /// `postfix/smtpd`, `dovecot`, `pure-ftpd`.
    pub(super) program: &'a str,
    pub(super) message: &'a str,
}

pub(super) fn split<'a>(line: &'a str, options: &ParseOptions) -> Option<SyslogLine<'a>> {
    let (time, rest) = if line.as_bytes().first()?.is_ascii_digit() {
        let (stamp, rest) = line.split_once(' ')?;
        (time::rfc3339(stamp)?, rest)
    } else {
        let stamp = line.get(..15)?;
        let time = time::syslog_classic(stamp, options.utc_offset, options.year_reference)?;
        (time, line.get(15..)?.strip_prefix(' ')?)
    };
    let (program, message) = tag(rest)?;
    Some(SyslogLine {
        time,
        program,
        message,
    })
}

/// The program and message after the stamp: `host program[pid]: message`.
fn tag(rest: &str) -> Option<(&str, &str)> {
    // The host is the server's own name: not recorded.
    let (host, rest) = rest.split_once(' ')?;
    let (tag, message) = rest.split_once(": ")?;
    let program = match tag.find('[') {
        Some(i) if tag.ends_with(']') => &tag[..i],
        Some(_) => return None,
        None => tag,
    };
    if program.is_empty() || host.is_empty() || program.contains(' ') {
        return None;
    }
    Some((program, message))
}

/// The program of a syslog line, without parsing its stamp: what routing
/// a line of a mixed file needs, before its parser reads the whole line.
fn program(line: &str) -> Option<&str> {
    let rest = if line.as_bytes().first()?.is_ascii_digit() {
        line.split_once(' ')?.1
    } else {
        line.get(15..)?.strip_prefix(' ')?
    };
    tag(rest).map(|(program, _)| program)
}

/// The format whose parser reads the lines of a syslog program:
/// `postfix/…` (and the `postfix-<instance>/…` of multi-instance setups)
/// Postfix; `dovecot` and the `deliver(<user>)` of Dovecot's LDA Dovecot;
/// `pure-ftpd` and `vsftpd` theirs. `None` for any other program.
pub(super) fn route(line: &str) -> Option<LogFormat> {
    let program = program(line)?;
    if program == "postfix" || program.starts_with("postfix/") || program.starts_with("postfix-") {
        Some(LogFormat::Postfix)
    } else if program == "dovecot" || is_deliver(program) {
        Some(LogFormat::Dovecot)
    } else if program == "pure-ftpd" {
        Some(LogFormat::PureFtpd)
    } else if program == "vsftpd" {
        Some(LogFormat::Vsftpd)
    } else {
        None
    }
}

/// The user of Dovecot's LDA tag `deliver(<user>)`.
pub(super) fn deliver_user(program: &str) -> Option<&str> {
    program
        .strip_prefix("deliver(")?
        .strip_suffix(')')
        .filter(|user| !user.is_empty())
}

fn is_deliver(program: &str) -> bool {
    deliver_user(program).is_some()
}
