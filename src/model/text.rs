//! Text that reaches a reader: what must be escaped so that no value can
//! break a line or hide what it says.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Code points that must never reach a rendering unescaped: C0/C1 controls
/// (newlines, ESC of ANSI sequences), Unicode line and paragraph separators,
/// and every invisible format character (Unicode category `Cf`): the
/// bidirectional overrides, embeddings, isolates and marks (LRM, RLM, ALM)
/// that reorder what a reader sees, and the zero-width and invisible
/// characters (ZWSP, word joiner, BOM, tags) that hide text or make two
/// different names look alike.
pub(crate) fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format_character(c)
}

/// Unicode's format characters (general category `Cf`, Unicode 16).
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Escapes dangerous code points as `\n`, `\r`, `\t` or `\u{XXXX}`, so that a
/// value can never break a line or inject terminal escapes in any rendering.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// The longest prefix of [`escape_text`]`(text)` of at most `max` bytes
/// that ends between two characters of `text`: never inside a character
/// nor inside an escape sequence. The flag says whether it was cut.
pub(crate) fn escape_text_within(text: &str, max: usize) -> (Cow<'_, str>, bool) {
    if !text.chars().any(is_dangerous) {
        if text.len() <= max {
            return (Cow::Borrowed(text), false);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return (Cow::Borrowed(&text[..end]), true);
    }
    let mut out = String::with_capacity(text.len().min(max) + 8);
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        push_escaped(&mut piece, c);
        if out.len() + piece.len() > max {
            return (Cow::Owned(out), true);
        }
        out.push_str(&piece);
    }
    (Cow::Owned(out), false)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Writing to a String cannot fail.
        c if is_dangerous(c) => {
            let _ = write!(out, "\\u{{{:04X}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_is_cut_between_escape_sequences() {
        // ESC escapes to 8 bytes: three fit in 20 bytes, never a part of one.
        let text = "\u{1b}\u{1b}\u{1b}\u{1b}";
        assert_eq!(escape_text(text).len(), 32);
        let (cut, was_cut) = escape_text_within(text, 20);
        assert_eq!(cut, "\\u{001B}\\u{001B}");
        assert!(was_cut);
        let (whole, was_cut) = escape_text_within("a\nb", 4);
        assert_eq!((whole.as_ref(), was_cut), ("a\\nb", false));
        let (cut, was_cut) = escape_text_within("a\nb", 2);
        assert_eq!((cut.as_ref(), was_cut), ("a", true));
        // Plain text is cut at a character boundary.
        assert_eq!(escape_text_within("äöü", 3), (Cow::Borrowed("ä"), true));
        assert_eq!(escape_text_within("abc", 3), (Cow::Borrowed("abc"), false));
    }
}
