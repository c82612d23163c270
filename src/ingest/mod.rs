//! Sealing the provider's server logs: parsers that turn log lines into
//! events for their trail, and a [`Follower`] that reads files still being
//! written, like `tail -F`.
//!
//! Every line read becomes exactly one entry. A line in the expected format
//! becomes a typed event of [`HostingAction`](crate::HostingAction) (or one
//! of the correlation actions of the Postfix parser); any other line is
//! sealed as a [`UNPARSED_ACTION`] entry with the raw line escaped, so no
//! line is ever dropped silently and the number of entries always matches
//! the number of lines read. Where the [`Follower`] cannot read lines any
//! more (rotation lost them), it seals a [`GAP_ACTION`] entry in their
//! place.
//!
//! | format | trail | module docs |
//! |---|---|---|
//! | [`LogFormat::WebAccess`] | `web` | Combined Log Format, with or without a leading virtual host |
//! | [`LogFormat::Postfix`] | `mail` | Postfix syslog lines, correlated by queue id |
//! | [`LogFormat::Dovecot`] | `mailbox` | Dovecot IMAP/POP logins, failed logins, logouts |
//! | [`LogFormat::Mailman`] | `mailinglist` | Mailman 2 `post`, `subscribe` and `bounce` logs |
//! | [`LogFormat::PhpMail`] | `php-mail` | PHP's `mail.log` |
//! | [`LogFormat::PureFtpd`] | `ftp` | pure-ftpd syslog lines |
//! | [`LogFormat::Vsftpd`] | `ftp` | vsftpd's own log (`vsftpd_log_file`) or its syslog lines |
//! | [`LogFormat::Syslog`] | `mail` | a syslog file mixing Postfix, Dovecot, pure-ftpd and vsftpd (Debian's `mail.log`), each line parsed by the parser of its program |
//!
//! `docs/INGEST.md` shows an example line of each format and the fields
//! taken from it.

mod fields;
mod follow;
mod ftp;
mod line;
mod mail;
mod mailbox;
mod mailinglist;
mod phpmail;
mod syslog;
mod time;
mod web;

pub use fields::ParseOptions;
pub use follow::{FINGERPRINT_LEN, FileId, Fingerprint, Follower, FollowerBuilder, Position};
pub use line::{LineParser, ParsedLine};
pub use mail::MAX_QUEUED_MESSAGES;

use std::fmt;
use std::str::FromStr;

/// The action of an entry that seals a line the parser did not understand.
pub const UNPARSED_ACTION: &str = "log.unparsed";

/// The action of an entry that marks lines a [`Follower`] could not seal:
/// written between the copy and the truncation of `copytruncate`, or in a
/// file that could not be found any more. It states the file and the
/// offset from which lines are missing (see `docs/INGEST.md`).
pub const GAP_ACTION: &str = "log.gap";

/// The most bytes of an unparsed line that are sealed, counted after
/// escaping; the line's original length is recorded next to it.
pub const MAX_UNPARSED_LEN: usize = 4096;

/// The most bytes a free-text field of a parsed line (request, referrer,
/// user agent, failure reason, status text …) keeps, counted after
/// escaping; longer values are cut between two characters, never inside an
/// escape sequence, and their original length is recorded as
/// `<field>_len`.
pub const MAX_FIELD_LEN: usize = 2048;

/// The longest line kept whole in memory, in bytes. A longer line is still
/// one entry: its first bytes are sealed as an unparsed line with the
/// original length, the rest is skipped without being buffered.
pub const MAX_LINE_LEN: usize = 256 * 1024;

/// A supported log format, and the trail its lines go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Apache/nginx access logs: the Combined (or Common) Log Format, or the
    /// variant with the virtual host first (`vhost_combined`).
    WebAccess,
    /// Postfix's syslog lines (`smtpd`, `cleanup`, `qmgr`, `smtp`, `local` …).
    Postfix,
    /// Dovecot's syslog lines for IMAP and POP3 logins and logouts.
    Dovecot,
    /// Mailman 2's `post`, `subscribe` and `bounce` logs.
    Mailman,
    /// PHP's `mail.log` (the `mail.log` setting of `php.ini`).
    PhpMail,
    /// pure-ftpd's syslog lines.
    PureFtpd,
    /// vsftpd's own log file, or its lines through syslog.
    Vsftpd,
    /// A syslog file in which several programs write, such as Debian's
    /// `mail.log` with Postfix and Dovecot: each line goes to the parser of
    /// its program (`postfix/…`, `dovecot`, `pure-ftpd`, `vsftpd`), which
    /// keeps its state across the lines (Postfix's queue ids); lines of
    /// other programs are sealed as unparsed. The whole file goes to one
    /// trail, `mail`: a follower's read position lives in its trail.
    Syslog,
}

impl LogFormat {
    /// Every supported format, in the order [`LogFormat::detect`] prefers
    /// them on a tie: the mixed [`LogFormat::Syslog`] comes last, so a file
    /// of one program gets that program's format and trail.
    pub const ALL: &'static [LogFormat] = &[
        LogFormat::WebAccess,
        LogFormat::Postfix,
        LogFormat::Dovecot,
        LogFormat::Mailman,
        LogFormat::PhpMail,
        LogFormat::PureFtpd,
        LogFormat::Vsftpd,
        LogFormat::Syslog,
    ];

    /// The stable name used on command lines and in entries (`log_format`).
    pub const fn name(self) -> &'static str {
        match self {
            LogFormat::WebAccess => "web",
            LogFormat::Postfix => "postfix",
            LogFormat::Dovecot => "dovecot",
            LogFormat::Mailman => "mailman",
            LogFormat::PhpMail => "php-mail",
            LogFormat::PureFtpd => "pure-ftpd",
            LogFormat::Vsftpd => "vsftpd",
            LogFormat::Syslog => "syslog",
        }
    }

    /// The trail its lines are sealed into.
    pub const fn trail(self) -> &'static str {
        match self {
            LogFormat::WebAccess => "web",
            LogFormat::Postfix => "mail",
            LogFormat::Dovecot => "mailbox",
            LogFormat::Mailman => "mailinglist",
            LogFormat::PhpMail => "php-mail",
            LogFormat::PureFtpd | LogFormat::Vsftpd => "ftp",
            // Mixed syslog files are mail logs in practice (Debian's
            // `mail.log`); the trail is per file, not per line.
            LogFormat::Syslog => "mail",
        }
    }

    /// Guesses the format from the first lines of a log: the format that
    /// parses the most of them, if it parses at least half; `None` when
    /// there is no line to judge or none fits. [`LogFormat::detect_sample`]
    /// tells these two apart.
    pub fn detect<'a>(sample: impl IntoIterator<Item = &'a [u8]>) -> Option<LogFormat> {
        match LogFormat::detect_sample(sample) {
            Detection::Format(format) => Some(format),
            Detection::Empty | Detection::Unrecognised => None,
        }
    }

    /// What the first lines of a log say about its format. Empty lines do
    /// not count, and at most the first 64 others are judged. Of the
    /// formats that parse the most lines the first in [`LogFormat::ALL`]
    /// wins, so [`LogFormat::Syslog`] only for a file that mixes programs;
    /// it must parse at least half of the lines.
    pub fn detect_sample<'a>(sample: impl IntoIterator<Item = &'a [u8]>) -> Detection {
        let lines: Vec<&[u8]> = sample
            .into_iter()
            .filter(|line| !line.is_empty() && *line != b"\r")
            .take(64)
            .collect();
        if lines.is_empty() {
            return Detection::Empty;
        }
        let options = ParseOptions::default();
        let mut best: Option<(LogFormat, usize)> = None;
        for &format in LogFormat::ALL {
            let mut parser = LineParser::new(format, options.clone());
            let hits = lines
                .iter()
                .filter(|line| !parser.parse(line).is_unparsed())
                .count();
            if best.is_none_or(|(_, most)| hits > most) {
                best = Some((format, hits));
            }
        }
        match best {
            Some((format, hits)) if hits > 0 && hits * 2 >= lines.len() => {
                Detection::Format(format)
            }
            _ => Detection::Unrecognised,
        }
    }

    /// The names of every format, as an error message lists them.
    fn names() -> String {
        let names: Vec<&str> = LogFormat::ALL.iter().map(|format| format.name()).collect();
        names.join(", ")
    }
}

/// What the first lines of a log say about its format
/// ([`LogFormat::detect_sample`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detection {
    /// The format of the lines.
    Format(LogFormat),
    /// No line to judge yet: the file is empty (as right after a rotation)
    /// or holds only empty lines. Not a failure: detect again once lines
    /// have arrived.
    Empty,
    /// Lines, but no format parses at least half of them.
    Unrecognised,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LogFormat {
    type Err = IngestError;

    fn from_str(name: &str) -> Result<Self, IngestError> {
        LogFormat::ALL
            .iter()
            .copied()
            .find(|format| format.name() == name)
            .ok_or_else(|| IngestError::UnknownFormat(crate::model::escape_text(name).into_owned()))
    }
}

/// What went wrong while following a log. Lines are never lost by an
/// error: the read position only advances with committed entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// No such format name.
    #[error("unknown log format {0:?}; known formats: {names}", names = LogFormat::names())]
    UnknownFormat(String),
    /// Reading the log file failed.
    #[error("reading {path} failed: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Sealing or committing the entries failed; nothing of the batch was
    /// committed and the position did not advance.
    #[error("sealing lines of {path} failed: {source}")]
    Record {
        /// The file.
        path: String,
        /// The error of the trail.
        #[source]
        source: crate::Error,
    },
    /// Reading the trail to recover the read position failed.
    #[error("recovering the read position of {path} from trail {trail} failed: {source}")]
    Recover {
        /// The file.
        path: String,
        /// The trail.
        trail: String,
        /// The error of the store.
        #[source]
        source: crate::StoreError,
    },
}

/// Counts of what a parser or follower has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestStats {
    /// Lines read (each became one entry).
    pub lines: u64,
    /// Lines sealed as typed events.
    pub parsed: u64,
    /// Lines sealed as [`UNPARSED_ACTION`] entries.
    pub unparsed: u64,
    /// Lines that were not valid UTF-8 and were decoded lossily.
    pub invalid_utf8: u64,
    /// Lines longer than [`MAX_LINE_LEN`], sealed cut short.
    pub oversized: u64,
    /// Bytes read, line breaks included.
    pub bytes: u64,
    /// [`GAP_ACTION`] entries sealed: places where lines were lost.
    pub gaps: u64,
}

impl IngestStats {
    pub(crate) fn merge(&mut self, other: &IngestStats) {
        self.lines += other.lines;
        self.parsed += other.parsed;
        self.unparsed += other.unparsed;
        self.invalid_utf8 += other.invalid_utf8;
        self.oversized += other.oversized;
        self.bytes += other.bytes;
        self.gaps += other.gaps;
    }

    pub(crate) fn count(&mut self, line: &ParsedLine, bytes: u64) {
        self.lines += 1;
        self.bytes += bytes;
        if line.is_unparsed() {
            self.unparsed += 1;
        } else {
            self.parsed += 1;
        }
        if line.invalid_utf8 {
            self.invalid_utf8 += 1;
        }
    }
}
