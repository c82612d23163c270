//! Trail names: what a trail may be called.

use super::{FormatError, escape_text};

/// Longest trail name, in bytes.
pub const MAX_TRAIL_NAME_LEN: usize = 64;

/// Checks a trail name: 1–64 of `a-z 0-9 - _`.
pub fn validate_trail_name(name: &str) -> Result<(), FormatError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TRAIL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(FormatError::InvalidTrailName(
            escape_text(name).into_owned(),
        ))
    }
}
