//! What every log parser shares: the options that say what log lines do
//! not, why a line is not recognised, and how a free-text field is cut and
//! cleaned of passwords before it is sealed.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Offset, Utc};

use super::MAX_FIELD_LEN;
use crate::event::{EventBuilder, SECRET_MARKER};
use crate::model::escape_text_within;

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

/// Why a line is not in the expected format.
pub(super) type Unrecognised = &'static str;

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

/// `value` escaped (control characters and invisible format characters
/// as `\n`, `\u{001B}` …) and then cut to at most `max` bytes, between two
/// escape sequences and on a character boundary; with the original length
/// in bytes when it was cut. The limit applies to what is sealed, so a
/// value of control characters cannot grow eightfold past it.
pub(super) fn bounded(value: &str, max: usize) -> (Cow<'_, str>, Option<usize>) {
    let (escaped, cut) = escape_text_within(value, max);
    (escaped, cut.then_some(value.len()))
}

/// Adds a free-text field: escaped, cut to [`MAX_FIELD_LEN`] with the
/// original length as `<key>_len` when cut.
pub(super) fn text_field(builder: EventBuilder, key: &'static str, value: &str) -> EventBuilder {
    text_field_within(builder, key, value, MAX_FIELD_LEN)
}

/// [`text_field`] with another limit than [`MAX_FIELD_LEN`].
pub(super) fn text_field_within(
    builder: EventBuilder,
    key: &'static str,
    value: &str,
    max: usize,
) -> EventBuilder {
    match bounded(value, max) {
        (escaped, None) => builder.meta(key, escaped.into_owned()),
        (escaped, Some(len)) => builder
            .meta(key, escaped.into_owned())
            .meta(format!("{key}_len"), len),
    }
}

/// Sets the user agent: escaped, cut to [`MAX_FIELD_LEN`], the original
/// length as `user_agent_len` when cut.
pub(super) fn user_agent(builder: EventBuilder, value: &str) -> EventBuilder {
    match bounded(value, MAX_FIELD_LEN) {
        (escaped, None) => builder.user_agent(escaped),
        (escaped, Some(len)) => builder.user_agent(escaped).meta("user_agent_len", len),
    }
}

/// Marks the event failed with `reason`: escaped, cut to
/// [`MAX_FIELD_LEN`], the original length as `reason_len` when cut.
pub(super) fn failure(builder: EventBuilder, reason: &str) -> EventBuilder {
    match bounded(reason, MAX_FIELD_LEN) {
        (escaped, None) => builder.failure(escaped),
        (escaped, Some(len)) => builder.failure(escaped).meta("reason_len", len),
    }
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
