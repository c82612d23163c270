//! The service's only key: the sealing key's state file. `keygen` makes a
//! new pair and puts the verification key where the operator collects it
//! to take it offline; the service never reads that key.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use trailseal::seal::{SEALING_KEY_FILE, VERIFICATION_KEY_FILE, new_key_id};
use trailseal::{KeyError, SealingKey, VerificationKey};

/// Why the keys could not be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// There is no sealing key yet.
    #[error(
        "the sealing key {0} does not exist; create it with `trailseal-ingest keygen --config FILE` and move the verification key it writes offline"
    )]
    Missing(PathBuf),
    /// `keygen` would overwrite a key.
    #[error("{0} exists already; keygen never overwrites a key")]
    Exists(PathBuf),
    /// `keygen` was not told where to put the verification key.
    #[error(
        "keygen needs a place for the verification key: set verification_key in the configuration or pass --verification-key"
    )]
    NoVerificationPath,
    /// The key library refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Moving the new files into place failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Opens the sealing key; refuses one that others can read.
pub fn open_sealing_key(path: &Path) -> Result<SealingKey, KeysError> {
    if !path.exists() {
        return Err(KeysError::Missing(path.to_owned()));
    }
    Ok(SealingKey::open(path)?)
}

/// Makes a new key pair, starting at `genesis`: the sealing key at
/// `sealing`, the verification key at `verification`, both mode 0600.
/// Refuses to overwrite either. Returns the new key id.
pub fn keygen(
    sealing: &Path,
    verification: &Path,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
) -> Result<String, KeysError> {
    for path in [sealing, verification] {
        if path.exists() {
            return Err(KeysError::Exists(path.to_owned()));
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeysError::Io { path, source }
    };
    // The library writes a pair into one folder under fixed names; it is
    // made in a private folder next to the sealing key, so that moving the
    // sealing key out stays on one file system and keeps its mode.
    let folder = sealing
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    let scratch = folder.join(format!(".trailseal-keygen.{}", std::process::id()));
    let result = (|| {
        let key_id = new_key_id(genesis)?;
        SealingKey::create_files(&scratch, &key_id, genesis, epoch_seconds)?;
        let made = VerificationKey::load(scratch.join(VERIFICATION_KEY_FILE))?;
        if let Some(parent) = verification.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        made.save(verification)?;
        // A hard link, unlike a rename, never replaces an existing file.
        std::fs::hard_link(scratch.join(SEALING_KEY_FILE), sealing).map_err(io(sealing))?;
        Ok(key_id)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keygen_writes_the_pair_apart_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let sealing = dir.path().join("state/sealing.key");
        let verification = dir.path().join("offline/verification.key");
        let genesis = Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap();
        let key_id = keygen(&sealing, &verification, genesis, 900).unwrap();

        let opened = open_sealing_key(&sealing).unwrap();
        assert_eq!(opened.key_id(), key_id);
        let verification_key = VerificationKey::load(&verification).unwrap();
        assert_eq!(verification_key.key_id(), key_id);
        assert_eq!(verification_key.check_value(), opened.check_value());
        // Nothing else is left next to the sealing key.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sealing.key"]);

        let err = keygen(&sealing, &dir.path().join("other.key"), genesis, 900).unwrap_err();
        assert!(matches!(err, KeysError::Exists(path) if path == sealing));
        assert_eq!(open_sealing_key(&sealing).unwrap().key_id(), key_id);
    }

    #[test]
    fn a_missing_sealing_key_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_sealing_key(&dir.path().join("sealing.key")).unwrap_err();
        assert!(err.to_string().contains("trailseal-ingest keygen"), "{err}");
    }
}
