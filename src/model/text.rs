//! Text that reaches a reader: what must be escaped so that no value can
//! break a line or hide what it says.

use std::borrow::Cow;

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
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_dangerous(c) => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
