//! Key files on disk: their names in a key folder, the header every key
//! file shares, bounded reads, owner-only permissions, atomic replacement.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use zeroize::{Zeroize, Zeroizing};

use super::evolution::KEY_LEN;
use super::key_id::validate_key_id;
use super::schedule::EpochSchedule;
use crate::KeyError;

/// File name of the verification key inside a key folder.
pub const VERIFICATION_KEY_FILE: &str = "verification.key";
/// File name of the sealing key state inside a key folder.
pub const SEALING_KEY_FILE: &str = "sealing.key";

/// The version of verification key files, and of the first sealing key
/// files.
pub(crate) const KEY_FILE_VERSION: u32 = 1;

/// The checks every key file shares: kind, version, key id and schedule.
pub(crate) fn check_key_file_header(
    (format, expected): (&str, &str),
    version_ok: bool,
    key_id: &str,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
) -> Result<EpochSchedule, String> {
    if format != expected {
        return Err(format!("expected a {expected} file, found {format:?}"));
    }
    if !version_ok {
        return Err("unsupported key file version".to_owned());
    }
    validate_key_id(key_id).map_err(|err| err.to_string())?;
    if crate::model::truncate_to_micros(genesis) != genesis {
        return Err("the genesis time has digits below a microsecond".to_owned());
    }
    EpochSchedule::new(genesis, epoch_seconds).map_err(|err| err.to_string())
}

/// The largest key file read: a sealing key file holds one short line per
/// trail, so a megabyte leaves room for thousands of trails while a file
/// such as `/dev/zero` is refused instead of filling memory.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// Reads a key file of at most [`MAX_KEY_FILE_BYTES`].
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes: not a key file"),
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Malformed {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The permission bits of a key file that let users other than its owner
/// read or write it (`None` where there are no such bits, or on other
/// systems than Unix).
pub fn key_file_exposure(path: impl AsRef<Path>) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Refuses a sealing key file that others can read: whoever reads it can
/// forge the open epoch of every trail it seals.
pub(crate) fn refuse_exposed(path: &Path) -> Result<(), KeyError> {
    match key_file_exposure(path) {
        Some(mode) => Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}

/// Decodes 64 hexadecimal digits into a key and wipes the text.
pub(crate) fn decode_key(hex_text: &mut String) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let lower_case = hex_text.bytes().all(|b| !b.is_ascii_uppercase());
    let result = hex::decode_to_slice(hex_text.as_bytes(), key.as_mut());
    hex_text.zeroize();
    if result.is_err() || !lower_case {
        return Err("a key is not 64 lower-case hexadecimal digits".to_owned());
    }
    Ok(key)
}

fn open_options_secret() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes a new file readable by its owner only; refuses to overwrite.
pub(crate) fn write_new_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = open_options_secret()
        .open(path)
        .map_err(|source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::AlreadyExists {
                    path: path.to_owned(),
                }
            } else {
                io_err(source)
            }
        })?;
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Replaces a key file atomically: a crash leaves either the old or the new
/// state, never a torn one.
pub(crate) fn replace_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_new_secret_file(&tmp, contents)?;
    std::fs::rename(&tmp, path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Make the rename itself durable.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}
