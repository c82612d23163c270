//! Key ids: the name every entry gives the key that sealed it.

use chrono::{DateTime, Utc};

use crate::KeyError;

const MAX_KEY_ID_LEN: usize = 64;

/// Key ids are short and plain (letters, digits, `-`, `_`, `.`): they are
/// sealed into every entry and printed in reports.
pub(crate) fn validate_key_id(key_id: &str) -> Result<(), KeyError> {
    let ok = !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID_LEN
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidKeyId)
    }
}

/// A stable, human-friendly key id for a new key: `ts-YYYYMMDD-xxxxxxxx`.
pub fn new_key_id(now: DateTime<Utc>) -> Result<String, KeyError> {
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(format!(
        "ts-{}-{}",
        now.format("%Y%m%d"),
        hex::encode(suffix)
    ))
}
