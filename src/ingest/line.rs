//! One line in, one event out: the [`LineParser`] that dispatches to the
//! parser of a format, and the `log.unparsed` entry for every line that
//! none of them understands.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde_json::{Map, Value};

use super::{
    LogFormat, MAX_FIELD_LEN, MAX_LINE_LEN, MAX_UNPARSED_LEN, UNPARSED_ACTION, ftp, mail, mailbox,
    mailinglist, phpmail, web,
};
use crate::event::{Actor, Context, Event, EventBuilder, Outcome, SECRET_MARKER};
use crate::model::escape_text;

/// What a parser needs to know that the log lines do not say.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ParseOptions {
    /// The domain of a web access log without a virtual host column (the
    /// log of one site); `None` records such requests without a target.
    pub default_domain: Option<String>,
    /// The zone of timestamps that carry none (syslog, vsftpd, Mailman).
    pub utc_offset: FixedOffset,
    /// The time the year of a yearless syslog stamp is inferred from: its
    /// year, or the year before when the stamp would lie in the future.
    pub year_reference: DateTime<Utc>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            default_domain: None,
            utc_offset: Utc.fix(),
            year_reference: Utc::now(),
        }
    }
}

impl ParseOptions {
    /// The domain of a web access log without a virtual host column.
    pub fn default_domain(mut self, domain: impl Into<String>) -> Self {
        self.default_domain = Some(domain.into());
        self
    }

    /// The zone of timestamps that carry none.
    pub fn utc_offset(mut self, offset: FixedOffset) -> Self {
        self.utc_offset = offset;
        self
    }

    /// The time the year of yearless syslog stamps is inferred from.
    pub fn year_reference(mut self, time: DateTime<Utc>) -> Self {
        self.year_reference = time;
        self
    }
}

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

/// Why a line is not in the expected format.
pub(super) type Unrecognised = &'static str;

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
            return self.unparsed(&text, len, reason, invalid_utf8);
        }
        let parsed = match self.format {
            LogFormat::WebAccess => web::parse(&text, &self.options),
            LogFormat::Postfix => mail::parse(&text, &self.options, &mut self.queue),
            LogFormat::Dovecot => mailbox::parse(&text, &self.options),
            LogFormat::Mailman => mailinglist::parse(&text, &self.options),
            LogFormat::PhpMail => phpmail::parse(&text, &self.options),
            LogFormat::PureFtpd => ftp::parse_pure_ftpd(&text, &self.options),
            LogFormat::Vsftpd => ftp::parse_vsftpd(&text, &self.options),
        };
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
                self.unparsed(&text, len, &reason, invalid_utf8)
            }
            Err(reason) => self.unparsed(&text, len, reason, invalid_utf8),
        }
    }

    fn unparsed(&self, text: &str, len: usize, reason: &str, invalid_utf8: bool) -> ParsedLine {
        // Hostile or unknown lines are kept, but defused: passwords some
        // daemons log verbosely are masked, control characters escaped (no
        // forged second line, no terminal escapes), the size bounded.
        let masked = mask_passwords(text);
        let escaped = escape_text(&masked);
        let mut metadata = Map::new();
        metadata.insert("log_format".into(), self.format.name().into());
        metadata.insert("line".into(), clip(&escaped, MAX_UNPARSED_LEN).into());
        metadata.insert("line_len".into(), len.into());
        metadata.insert("reason".into(), clip(reason, MAX_FIELD_LEN).into());
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

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(super) fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Adds a free-text field: escaped, cut to [`MAX_FIELD_LEN`] with the
/// original length as `<key>_len` when cut.
pub(super) fn text_field(builder: EventBuilder, key: &'static str, value: &str) -> EventBuilder {
    let escaped = escape_text(value);
    if escaped.len() <= MAX_FIELD_LEN {
        return builder.meta(key, escaped.into_owned());
    }
    builder
        .meta(key, clip(&escaped, MAX_FIELD_LEN).to_owned())
        .meta(format!("{key}_len"), value.len())
}

/// Words after which daemons (Dovecot's `auth_verbose_passwords`, query
/// strings of login forms) write a password.
const PASSWORD_WORDS: [&str; 3] = ["password", "passwd", "pass"];

/// Masks the value after `password=`, `password:` (also `passwd`, `pass`,
/// any case): a password must never reach the trail, not even inside a
/// line sealed as unparsed. The value runs to the next space, `,`, `)`,
/// `;`, `&` or `]`.
pub(super) fn mask_passwords(text: &str) -> Cow<'_, str> {
    // The common case, no "pass" at all, costs one scan and no allocation.
    if !text
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"pass"))
    {
        return Cow::Borrowed(text);
    }
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("pass") {
        let start = search + found;
        let word = PASSWORD_WORDS
            .iter()
            .find(|word| lower[start..].starts_with(*word))
            .map_or(4, |word| word.len());
        let mut i = start + word;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i < bytes.len() && matches!(bytes[i], b'=' | b':') {
            i += 1;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let end = bytes[i..]
                .iter()
                .position(|b| matches!(b, b' ' | b',' | b')' | b';' | b'&' | b']'))
                .map_or(bytes.len(), |n| i + n);
            if end > i {
                out.push_str(&text[copied..i]);
                out.push_str(SECRET_MARKER);
                copied = end;
            }
            search = end.max(i);
        } else {
            search = i;
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_appear() {
        let masked = mask_passwords(
            "auth: passwd-file(alice,1.2.3.4): Password mismatch (given password: hunter2)",
        );
        assert!(!masked.contains("hunter2"), "{masked}");
        let masked = mask_passwords("GET /login?user=a&Password=s3cret&x=1");
        assert!(!masked.contains("s3cret"), "{masked}");
        assert!(masked.contains("&x=1"));
        assert_eq!(mask_passwords("no secrets here"), "no secrets here");
        assert_eq!(mask_passwords("pass"), "pass");
        assert_eq!(mask_passwords("password="), "password=");
    }

    #[test]
    fn clip_never_splits_a_character() {
        assert_eq!(clip("äöü", 3), "ä");
        assert_eq!(clip("abc", 10), "abc");
    }
}
