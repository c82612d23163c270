//! The syslog header that Postfix, Dovecot and pure-ftpd lines share:
//! `Oct 10 13:55:36 mx1 postfix/smtpd[1234]: message` (classic) or
//! `2024-10-10T13:55:36.123456+02:00 mx1 postfix/smtpd[1234]: message`
//! (RFC 3339, as modern rsyslog writes it).

use chrono::{DateTime, Utc};

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
    Some(SyslogLine {
        time,
        program,
        message,
    })
}
