//! The sealing key's key-state file: created beside the verification key,
//! read in either version, and replaced atomically whenever a key moves on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{SealingKey, SealingState, TrailSlot};
use crate::KeyError;
use crate::model::Digest;
use crate::seal::evolution::{KeyLine, evolve_to};
use crate::seal::key_file::{
    KEY_FILE_VERSION, SEALING_KEY_FILE, VERIFICATION_KEY_FILE, check_key_file_header, decode_key,
    read_key_file, refuse_exposed, replace_secret_file, write_new_secret_file,
};
use crate::seal::key_id::new_key_id;
use crate::seal::verification_key::VerificationKey;

const SEALING_FORMAT: &str = "trailseal-sealing-key";

/// Version 2 of the sealing key file holds a key chain per trail.
const SEALING_FILE_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealingKeyFile {
    format: String,
    version: u32,
    key_id: String,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
    key_check: Digest,
    root: KeyAtEpoch,
    trails: BTreeMap<String, TrailKeyFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyAtEpoch {
    epoch: u64,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailKeyFile {
    /// 1: the key's own chain; 2: the trail's branch.
    format: u8,
    /// The branch epoch (format 2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    branch: Option<u64>,
    epoch: u64,
    key: String,
}

/// Version 1 of the file: one key for every trail, held at the oldest
/// epoch any of them still had to seal.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealingKeyFileV1 {
    format: String,
    version: u32,
    key_id: String,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
    key_check: Digest,
    epoch: u64,
    key: String,
    #[serde(default)]
    trails: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

fn parse_error(what: &str, err: &serde_json::Error) -> String {
    // serde_json errors can quote input; keep only the position.
    format!(
        "not a {what} (line {}, column {})",
        err.line(),
        err.column()
    )
}

impl SealingKey {
    /// Generates a key pair and writes `verification.key` and `sealing.key`
    /// into `dir` (created if missing), both mode 0600. Refuses to overwrite
    /// either file. The returned sealing key persists its evolution to
    /// `dir/sealing.key`.
    pub fn create_files(
        dir: impl AsRef<Path>,
        key_id: &str,
        genesis: DateTime<Utc>,
        epoch_seconds: u64,
    ) -> Result<(SealingKey, VerificationKey), KeyError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let verification_path = dir.join(VERIFICATION_KEY_FILE);
        let sealing_path = dir.join(SEALING_KEY_FILE);
        for path in [&verification_path, &sealing_path] {
            if path.exists() {
                return Err(KeyError::AlreadyExists { path: path.clone() });
            }
        }
        let (mut sealing, verification) = Self::generate(key_id, genesis, epoch_seconds)?;
        write_new_secret_file(&sealing_path, &sealing.to_file_text())?;
        verification.save(&verification_path)?;
        sealing.path = Some(sealing_path);
        Ok((sealing, verification))
    }

    /// The sealing key of a key folder: `dir/sealing.key` opened when it
    /// exists; otherwise a new key pair created there (`sealing.key` and
    /// `verification.key`, mode 0600, a new key id), the verification key
    /// returned so the caller can say where it lies: it belongs offline.
    /// `verification.key` need not be in the folder to open it. A folder
    /// that holds a `verification.key` but no `sealing.key` is refused: its
    /// sealing key was lost, and a new pair there would orphan the old one.
    pub fn open_or_create(
        dir: impl AsRef<Path>,
        genesis: DateTime<Utc>,
        epoch_seconds: u64,
    ) -> Result<(SealingKey, Option<VerificationKey>), KeyError> {
        let dir = dir.as_ref();
        let sealing_path = dir.join(SEALING_KEY_FILE);
        if sealing_path.exists() {
            return Ok((Self::open(&sealing_path)?, None));
        }
        let verification_path = dir.join(VERIFICATION_KEY_FILE);
        if verification_path.exists() {
            return Err(KeyError::AlreadyExists {
                path: verification_path,
            });
        }
        let key_id = new_key_id(genesis)?;
        let (sealing, verification) = Self::create_files(dir, &key_id, genesis, epoch_seconds)?;
        Ok((sealing, Some(verification)))
    }

    /// Opens a sealing key-state file; the key's evolution is written back
    /// to it atomically. Refuses a file that users other than its owner can
    /// read or write ([`KeyError::Exposed`]): whoever reads it can forge the
    /// open epoch of every trail.
    pub fn open(path: impl AsRef<Path>) -> Result<SealingKey, KeyError> {
        refuse_exposed(path.as_ref())?;
        Self::open_exposed(path)
    }

    /// Opens a sealing key-state file like [`SealingKey::open`], even when
    /// others can read it (e.g. a file shared with a group on purpose).
    pub fn open_exposed(path: impl AsRef<Path>) -> Result<SealingKey, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        let mut key = Self::from_file_text(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_owned(),
            reason,
        })?;
        key.path = Some(path.to_owned());
        Ok(key)
    }

    pub(super) fn from_file_text(text: &str) -> Result<Self, String> {
        let probe: VersionProbe =
            serde_json::from_str(text).map_err(|err| parse_error("sealing key file", &err))?;
        if probe.version == KEY_FILE_VERSION {
            return Self::from_file_text_v1(text);
        }
        let mut file: SealingKeyFile =
            serde_json::from_str(text).map_err(|err| parse_error("sealing key file", &err))?;
        let schedule = check_key_file_header(
            (&file.format, SEALING_FORMAT),
            file.version == SEALING_FILE_VERSION,
            &file.key_id,
            file.genesis,
            file.epoch_seconds,
        )?;
        let root = decode_key(&mut file.root.key)?;
        let mut trails = BTreeMap::new();
        for (name, mut slot) in std::mem::take(&mut file.trails) {
            crate::model::validate_trail_name(&name).map_err(|err| err.to_string())?;
            let line = match (slot.format, slot.branch) {
                (1, None) => KeyLine::Shared,
                (2, Some(epoch)) if epoch <= slot.epoch => KeyLine::Branch { epoch },
                _ => return Err(format!("the key of trail {name} names no valid key line")),
            };
            let key = decode_key(&mut slot.key)?;
            trails.insert(
                name,
                TrailSlot {
                    line,
                    epoch: slot.epoch,
                    key,
                },
            );
        }
        Ok(Self {
            key_id: file.key_id,
            schedule,
            check: file.key_check,
            path: None,
            state: Mutex::new(SealingState {
                root_epoch: file.root.epoch,
                root,
                trails,
            }),
            persisting: Mutex::new(()),
        })
    }

    /// Reads a version 1 file: its one key becomes the key's own chain, and
    /// every trail it lists gets a copy at the epoch it has not sealed.
    fn from_file_text_v1(text: &str) -> Result<Self, String> {
        let mut file: SealingKeyFileV1 =
            serde_json::from_str(text).map_err(|err| parse_error("sealing key file", &err))?;
        let schedule = check_key_file_header(
            (&file.format, SEALING_FORMAT),
            file.version == KEY_FILE_VERSION,
            &file.key_id,
            file.genesis,
            file.epoch_seconds,
        )?;
        let root = decode_key(&mut file.key)?;
        let mut trails = BTreeMap::new();
        for (name, floor) in file.trails {
            crate::model::validate_trail_name(&name).map_err(|err| err.to_string())?;
            let epoch = floor.max(file.epoch);
            trails.insert(
                name,
                TrailSlot {
                    line: KeyLine::Shared,
                    epoch,
                    key: evolve_to(&root, file.epoch, epoch),
                },
            );
        }
        Ok(Self {
            key_id: file.key_id,
            schedule,
            check: file.key_check,
            path: None,
            state: Mutex::new(SealingState {
                root_epoch: file.epoch,
                root,
                trails,
            }),
            persisting: Mutex::new(()),
        })
    }

    pub(super) fn to_file_text(&self) -> Zeroizing<String> {
        let state = self.lock();
        let file = SealingKeyFile {
            format: SEALING_FORMAT.to_owned(),
            version: SEALING_FILE_VERSION,
            key_id: self.key_id.clone(),
            genesis: self.schedule.genesis(),
            epoch_seconds: self.schedule.length_seconds(),
            key_check: self.check,
            root: KeyAtEpoch {
                epoch: state.root_epoch,
                key: hex::encode(*state.root),
            },
            trails: state
                .trails
                .iter()
                .map(|(name, slot)| {
                    let (format, branch) = match slot.line {
                        KeyLine::Shared => (1, None),
                        KeyLine::Branch { epoch } => (2, Some(epoch)),
                    };
                    let file = TrailKeyFile {
                        format,
                        branch,
                        epoch: slot.epoch,
                        key: hex::encode(*slot.key),
                    };
                    (name.clone(), file)
                })
                .collect(),
        };
        drop(state);
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
        let SealingKeyFile {
            mut root, trails, ..
        } = file;
        root.key.zeroize();
        for (_, mut slot) in trails {
            slot.key.zeroize();
        }
        text
    }

    pub(super) fn persist(&self) -> Result<(), KeyError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _turn = self
            .persisting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The state is read in turn too, so the last file written holds
        // the newest state.
        replace_secret_file(path, &self.to_file_text())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_key_folder_is_opened_or_created_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (created, verification) = SealingKey::open_or_create(dir.path(), genesis, 900).unwrap();
        let verification = verification.expect("a new pair");
        assert_eq!(created.key_id(), verification.key_id());
        std::fs::rename(
            dir.path().join(VERIFICATION_KEY_FILE),
            dir.path().join("offline.key"),
        )
        .unwrap();
        let (opened, none) = SealingKey::open_or_create(dir.path(), genesis, 900).unwrap();
        assert!(none.is_none(), "the verification key may be offline");
        assert_eq!(opened.key_id(), created.key_id());
        std::fs::rename(
            dir.path().join("offline.key"),
            dir.path().join(VERIFICATION_KEY_FILE),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join(SEALING_KEY_FILE)).unwrap();
        assert!(matches!(
            SealingKey::open_or_create(dir.path(), genesis, 900),
            Err(KeyError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn a_version_1_file_gives_every_trail_a_copy_of_the_shared_chain() {
        let text = r#"{"format":"trailseal-sealing-key","version":1,"key_id":"k1",
            "genesis":"2026-01-01T00:00:00Z","epoch_seconds":900,
            "key_check":"0000000000000000000000000000000000000000000000000000000000000000",
            "epoch":3,"key":"0101010101010101010101010101010101010101010101010101010101010101",
            "trails":{"admin":3,"web":5}}"#;
        let key = SealingKey::from_file_text(text).unwrap();
        assert_eq!(key.epoch(), 3);
        assert_eq!(key.trail_line("web"), Some(KeyLine::Shared));
        assert_eq!(key.trail_epoch("web"), Some(5));
        let (_, web) = key.trail_keys("web", 5, 5).unwrap();
        let (_, admin) = key.trail_keys("admin", 5, 5).unwrap();
        let input = crate::model::MacInput {
            version: 1,
            trail: "web",
            seq: 1,
            epoch: 5,
            key_id: "k1",
            recorded_at_micros: 0,
            kind: crate::EntryKind::Event,
            prev_mac: &crate::model::Mac::from_bytes([0; 32]),
            body_commitment: &Digest::from_bytes([0; 32]),
        };
        assert_eq!(web[0].mac(&input), admin[0].mac(&input));
    }
}
