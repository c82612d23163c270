//! One line in, one event out: the [`LineParser`] that dispatches to the
//! parser of a format, and the `log.unparsed` entry for every line that
//! none of them understands.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::fields::{ParseOptions, bounded, mask_passwords};
use super::{
    LogFormat, MAX_FIELD_LEN, MAX_LINE_LEN, MAX_UNPARSED_LEN, UNPARSED_ACTION, ftp, mail, mailbox,
    mailinglist, phpmail, syslog, web,
};
use crate::event::{Actor, Context, Event, Outcome};

/// The result of parsing one line: always an event to seal.
#[derive(Clone, Debug)]
pub struct ParsedLine {
    /// The event: a typed one, or a [`UNPARSED_ACTION`] entry.
    pub event: Event,
    /// The line was not valid UTF-8 and was decoded lossily (recorded in the
    /// event as `invalid_utf8`).
    pub invalid_utf8: bool,
    unparsed: Option<Cow<'static, str>>,
}

impl ParsedLine {
    /// Whether the line was sealed as a [`UNPARSED_ACTION`] entry.
    pub fn is_unparsed(&self) -> bool {
        self.unparsed.is_some()
    }

    /// Why the line was not understood, for an unparsed line.
    pub fn unparsed_reason(&self) -> Option<&str> {
        self.unparsed.as_deref()
    }
}

/// Turns the lines of one log into events. Keeps the little state a format
/// needs across lines (Postfix's queue ids), bounded in size.
#[derive(Debug)]
pub struct LineParser {
    format: LogFormat,
    options: ParseOptions,
    queue: mail::QueueTable,
}

impl LineParser {
    /// A parser for `format`.
    pub fn new(format: LogFormat, options: ParseOptions) -> Self {
        Self {
            format,
            options,
            queue: mail::QueueTable::default(),
        }
    }

    /// The format parsed.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Parses one line, without its line break. Never fails: a line not in
    /// the format becomes a [`UNPARSED_ACTION`] event.
    pub fn parse(&mut self, line: &[u8]) -> ParsedLine {
        self.parse_cut(line, line.len())
    }

    /// Parses the first bytes of a line whose full length was `len`; a line
    /// cut short is sealed as unparsed with its original length.
    pub(super) fn parse_cut(&mut self, line: &[u8], len: usize) -> ParsedLine {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let invalid_utf8 = matches!(text, Cow::Owned(_));
        if len > line.len() + 1 || len > MAX_LINE_LEN {
            let reason = "line longer than the longest line kept whole";
            return self.unparsed(self.format, &text, len, reason, invalid_utf8);
        }
        // A mixed syslog file hands each line to the parser of its
        // program; this one parser keeps their state (Postfix's queue ids).
        let format = match self.format {
            LogFormat::Syslog => syslog::route(&text),
            format => Some(format),
        };
        let parsed = match format {
            Some(LogFormat::WebAccess) => web::parse(&text, &self.options),
            Some(LogFormat::Postfix) => mail::parse(&text, &self.options, &mut self.queue),
            Some(LogFormat::Dovecot) => mailbox::parse(&text, &self.options),
            Some(LogFormat::Mailman) => mailinglist::parse(&text, &self.options),
            Some(LogFormat::PhpMail) => phpmail::parse(&text, &self.options),
            Some(LogFormat::PureFtpd) => ftp::parse_pure_ftpd(&text, &self.options),
            Some(LogFormat::Vsftpd) => ftp::parse_vsftpd(&text, &self.options),
            Some(LogFormat::Syslog) => Err("syslog lines are routed to their program's format"),
            None => Err("no parser for the program of this syslog line"),
        };
        let format = format.unwrap_or(self.format);
        let built = parsed.map(|builder| {
            let builder = if invalid_utf8 {
                builder.meta("invalid_utf8", true)
            } else {
                builder
            };
            builder.build()
        });
        match built {
            Ok(Ok(event)) => ParsedLine {
                event,
                invalid_utf8,
                unparsed: None,
            },
            Ok(Err(invalid)) => {
                let reason = format!("fields refused: {invalid}");
                self.unparsed(format, &text, len, &reason, invalid_utf8)
            }
            Err(reason) => self.unparsed(format, &text, len, reason, invalid_utf8),
        }
    }

    /// `format` is the format the line was expected in: for a line of a
    /// mixed syslog file, the format of its program.
    fn unparsed(
        &self,
        format: LogFormat,
        text: &str,
        len: usize,
        reason: &str,
        invalid_utf8: bool,
    ) -> ParsedLine {
        // Hostile or unknown lines are kept, but defused: passwords some
        // daemons log verbosely are masked, control characters escaped (no
        // forged second line, no terminal escapes), the size bounded.
        // The limit applies after escaping, so the sealed line is never
        // longer than it whatever the line holds.
        let masked = mask_passwords(text);
        let (line, _) = bounded(&masked, MAX_UNPARSED_LEN);
        let (sealed_reason, _) = bounded(reason, MAX_FIELD_LEN);
        let mut metadata = Map::new();
        metadata.insert("log_format".into(), format.name().into());
        metadata.insert("line".into(), line.into_owned().into());
        metadata.insert("line_len".into(), len.into());
        metadata.insert("reason".into(), sealed_reason.into_owned().into());
        if invalid_utf8 {
            metadata.insert("invalid_utf8".into(), Value::Bool(true));
        }
        // Built directly rather than through the builder: every field is
        // valid by construction, so there is no refusal to handle; the
        // trail validates it again anyway.
        let event = Event {
            action: Cow::Borrowed(UNPARSED_ACTION),
            actor: Some(Actor::system("ingest")),
            impersonator: None,
            tenant: None,
            target: None,
            outcome: Outcome::Success,
            context: Context::default(),
            changes: Vec::new(),
            metadata,
            occurred_at: None,
            location: None,
        };
        ParsedLine {
            event,
            invalid_utf8,
            unparsed: Some(Cow::Owned(reason.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsed_line_is_cut_after_escaping_between_escapes() {
        let mut parser = LineParser::new(LogFormat::WebAccess, ParseOptions::default());
        // 1,000 ESC characters escape to 8,000 bytes: 512 whole escapes fit.
        let line = "\u{1b}".repeat(1000);
        let parsed = parser.parse(line.as_bytes());
        assert!(parsed.is_unparsed());
        let metadata = &parsed.event.metadata;
        assert_eq!(metadata["line"], "\\u{001B}".repeat(512));
        assert_eq!(metadata["line_len"], 1000);
        assert_eq!(metadata["log_format"], "web");
    }

    #[test]
    fn a_failure_reason_is_cut_after_escaping_with_its_length() {
        let mut parser = LineParser::new(LogFormat::Postfix, ParseOptions::default());
        let said = "\u{7}".repeat(600);
        let line = format!(
            "Oct 10 13:55:38 mx1 postfix/smtp[1237]: 4BkQ3x0ZzFz9sWQ: to=<nobody@example.com>, relay=none, dsn=5.0.0, status=bounced ({said})"
        );
        let parsed = parser.parse(line.as_bytes());
        assert!(!parsed.is_unparsed(), "{:?}", parsed.unparsed_reason());
        let event = &parsed.event;
        let Outcome::Failure { reason } = &event.outcome else {
            panic!("{:?}", event.outcome);
        };
        assert_eq!(*reason, "\\u{0007}".repeat(256));
        assert_eq!(event.metadata["reason_len"], 600);
    }
}
