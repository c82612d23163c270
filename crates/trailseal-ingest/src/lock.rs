//! One instance per database: a second `run` or `once` on the same
//! database would read the same files from the same recovered positions and
//! seal every line twice.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another trailseal-ingest ({holder}) is sealing into this database: it holds {path}; stop it first"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote into it (its process id), if readable.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("locking {path} failed: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped or when the process ends, however
/// it ends (the kernel drops the lock with the last open handle).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Takes the lock in the file at `path` (created 0600 if missing, never
/// removed: removing it would let two processes lock two different files
/// of one name), without waiting.
pub fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = (&file).take(64).read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "process unknown".to_owned(),
                pid => format!("process {pid}"),
            };
            return Err(LockError::Held {
                path: path.to_owned(),
                holder,
            });
        }
        Err(TryLockError::Error(err)) => return Err(io(err)),
    }
    // The holder's process id, for the message the next one prints.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db.ingest.lock");
        let first = acquire(&path).unwrap();
        let err = acquire(&path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        drop(first);
        acquire(&path).unwrap();
    }
}
