//! The writer's evolving sealing key and its key-state file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::evolution::{EpochKey, KEY_LEN, KeyLine, evolve, evolve_to, random_key, trail_branch};
use super::key_file::{KEY_FILE_VERSION, check_key_file_header};
use super::key_file::{
    decode_key, read_key_file, refuse_exposed, replace_secret_file, write_new_secret_file,
};
use super::key_id::validate_key_id;
use super::schedule::EpochSchedule;
use super::verification_key::VerificationKey;
use super::{SEALING_KEY_FILE, VERIFICATION_KEY_FILE};
use crate::KeyError;
use crate::model::Digest;

const SEALING_FORMAT: &str = "trailseal-sealing-key";
/// Version 2 of the sealing key file holds a key chain per trail.
const SEALING_FILE_VERSION: u32 = 2;

/// The writer's evolving sealing key, shared by all trails of a process.
///
/// It holds two kinds of keys, each only for the oldest epoch still needed:
///
/// - the key's own chain `K_r`, from which trails created at epoch `r` or
///   later branch off (it moves on with the clock, and past the current
///   epoch when a trail is closed);
/// - for every trail, the trail's own chain `T_e` at the oldest epoch the
///   trail has not sealed yet.
///
/// Once a trail has sealed epoch `e`, its key moves on to `e + 1` and the
/// old one is overwritten, in memory and in the key-state file. A trail that
/// is no longer written holds back only its own chain, never another
/// trail's: a thief who copies the file can forge nothing of any epoch a
/// trail has sealed, and nothing of any trail created before `r`.
pub struct SealingKey {
    key_id: String,
    schedule: EpochSchedule,
    check: Digest,
    path: Option<PathBuf>,
    state: Mutex<SealingState>,
    /// Held while the file is replaced: writers of several trails persist
    /// at once, and two replacements through one temporary file would
    /// lose one of them.
    persisting: Mutex<()>,
}

struct SealingState {
    root_epoch: u64,
    root: Zeroizing<[u8; KEY_LEN]>,
    trails: BTreeMap<String, TrailSlot>,
}

/// One trail's key chain, at the oldest epoch it has not sealed.
struct TrailSlot {
    line: KeyLine,
    epoch: u64,
    key: Zeroizing<[u8; KEY_LEN]>,
}

/// How a writer knows a trail when it registers it with the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The trail has no entries: its genesis will be sealed in `epoch`,
    /// which is where its own chain branches off.
    New { epoch: u64 },
    /// The trail exists, sealed on `line`, and has not sealed `floor` yet.
    Existing { line: KeyLine, floor: u64 },
}

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

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
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
    /// Generates a new key pair in memory: the sealing key at epoch 0 and
    /// its verification key. `genesis` is the start of epoch 0.
    pub fn generate(
        key_id: &str,
        genesis: DateTime<Utc>,
        epoch_seconds: u64,
    ) -> Result<(SealingKey, VerificationKey), KeyError> {
        validate_key_id(key_id)?;
        let schedule = EpochSchedule::new(genesis, epoch_seconds)?;
        let k0 = random_key()?;
        let verification = VerificationKey::from_secret(key_id, schedule, k0.clone());
        let sealing = SealingKey {
            key_id: key_id.to_owned(),
            schedule,
            check: verification.check_value(),
            path: None,
            state: Mutex::new(SealingState {
                root_epoch: 0,
                root: k0,
                trails: BTreeMap::new(),
            }),
            persisting: Mutex::new(()),
        };
        Ok((sealing, verification))
    }

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
        let key_id = super::new_key_id(genesis)?;
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

    fn from_file_text(text: &str) -> Result<Self, String> {
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

    fn to_file_text(&self) -> Zeroizing<String> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, SealingState> {
        // A panic while holding the lock cannot leave the state half-written
        // (every update is a plain assignment), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The epoch schedule.
    pub fn schedule(&self) -> &EpochSchedule {
        &self.schedule
    }

    /// The key check value of the matching verification key.
    pub fn check_value(&self) -> Digest {
        self.check
    }

    /// The oldest epoch of the key's own chain still held: trails created
    /// from now on branch off at this epoch or later, and no trail created
    /// before it can be forged with this key.
    pub fn epoch(&self) -> u64 {
        self.lock().root_epoch
    }

    /// The oldest epoch whose key is held for `trail` (`None` for a trail
    /// this key does not seal): the trail's entries of earlier epochs cannot
    /// be forged with this key.
    pub fn trail_epoch(&self, trail: &str) -> Option<u64> {
        self.lock().trails.get(trail).map(|slot| slot.epoch)
    }

    /// The names of the trails this key seals.
    pub fn trails(&self) -> Vec<String> {
        self.lock().trails.keys().cloned().collect()
    }

    /// The key line `trail` is sealed on, if this key seals it.
    pub(crate) fn trail_line(&self, trail: &str) -> Option<KeyLine> {
        self.lock().trails.get(trail).map(|slot| slot.line)
    }

    /// Registers `trail` with the key before anything of it is sealed, so
    /// that its own chain is at hand; returns the key line it is sealed on.
    /// A trail the key has not sealed before is derived from the key's own
    /// chain, which works only if that chain has not moved past the trail's
    /// branch (or, for a format 1 trail, past `floor`).
    pub(crate) fn register(
        &self,
        trail: &str,
        registration: Registration,
    ) -> Result<KeyLine, KeyError> {
        let line = {
            let mut state = self.lock();
            let (line, needed) = match registration {
                Registration::New { epoch } => (KeyLine::Branch { epoch }, epoch),
                Registration::Existing { line, floor } => {
                    if let Some(slot) = state.trails.get(trail)
                        && slot.line == line
                    {
                        return Ok(line);
                    }
                    match line {
                        KeyLine::Branch { epoch } => (line, epoch),
                        KeyLine::Shared => (line, floor),
                    }
                }
            };
            if needed < state.root_epoch {
                return Err(KeyError::NoTrailKey {
                    trail: trail.to_owned(),
                    needed,
                    held: state.root_epoch,
                });
            }
            let at = evolve_to(&state.root, state.root_epoch, needed);
            let (epoch, key) = match (registration, line) {
                (Registration::Existing { floor, .. }, KeyLine::Branch { epoch }) => {
                    let branch = trail_branch(&at, trail);
                    let floor = floor.max(epoch);
                    (floor, evolve_to(&branch, epoch, floor))
                }
                (_, KeyLine::Branch { .. }) => (needed, trail_branch(&at, trail)),
                (_, KeyLine::Shared) => (needed, at),
            };
            state
                .trails
                .insert(trail.to_owned(), TrailSlot { line, epoch, key });
            line
        };
        self.persist()?;
        Ok(line)
    }

    /// Keys of `trail` for the epochs `from..=to`, on the line it is sealed
    /// on. Fails when `from` is older than the key held for the trail: that
    /// epoch's key was destroyed and can never be used again.
    pub(crate) fn trail_keys(
        &self,
        trail: &str,
        from: u64,
        to: u64,
    ) -> Result<(KeyLine, Vec<EpochKey>), KeyError> {
        let state = self.lock();
        let slot = state
            .trails
            .get(trail)
            .ok_or_else(|| KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: from,
                held: state.root_epoch,
            })?;
        if from < slot.epoch {
            return Err(KeyError::EpochGone {
                requested: from,
                held: slot.epoch,
            });
        }
        let line = slot.line;
        let mut key = evolve_to(&slot.key, slot.epoch, from);
        drop(state);
        Ok((line, chain_keys(&mut key, from, to)))
    }

    /// For a format 1 trail: its keys on the shared chain for `from..=at`,
    /// and the first key of the branch that takes over at `at`, without
    /// changing anything held; [`SealingKey::upgraded`] switches once the
    /// rotation is committed.
    pub(crate) fn upgrade_keys(
        &self,
        trail: &str,
        from: u64,
        at: u64,
    ) -> Result<(Vec<EpochKey>, EpochKey), KeyError> {
        let (line, keys) = self.trail_keys(trail, from, at)?;
        if line != KeyLine::Shared {
            return Err(KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: at,
                held: self.trail_epoch(trail).unwrap_or_default(),
            });
        }
        let state = self.lock();
        let slot = state
            .trails
            .get(trail)
            .ok_or_else(|| KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: at,
                held: state.root_epoch,
            })?;
        let shared = evolve_to(&slot.key, slot.epoch, at);
        let branch = trail_branch(&shared, trail);
        Ok((keys, EpochKey::new(at, &branch)))
    }

    /// A format 1 trail's rotation at epoch `at` is committed: from now on
    /// the trail is sealed on its own branch, and the copy of the shared
    /// chain it held is destroyed.
    pub(crate) fn upgraded(&self, trail: &str, at: u64) -> Result<(), KeyError> {
        {
            let mut state = self.lock();
            let Some(slot) = state.trails.get_mut(trail) else {
                return Ok(());
            };
            if slot.line != KeyLine::Shared || at < slot.epoch {
                return Ok(());
            }
            let shared = evolve_to(&slot.key, slot.epoch, at);
            *slot = TrailSlot {
                line: KeyLine::Branch { epoch: at },
                epoch: at,
                key: trail_branch(&shared, trail),
            };
        }
        self.persist()
    }

    /// Records that `trail` has sealed every epoch before `next_unsealed`:
    /// its key moves on and the old one is destroyed (and persisted).
    pub(crate) fn set_trail_floor(&self, trail: &str, next_unsealed: u64) -> Result<(), KeyError> {
        let changed = {
            let mut state = self.lock();
            match state.trails.get_mut(trail) {
                Some(slot) if next_unsealed > slot.epoch => {
                    slot.key = evolve_to(&slot.key, slot.epoch, next_unsealed);
                    slot.epoch = next_unsealed;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Moves the key's own chain on to `epoch` (no further back than it
    /// is): trails created from now on branch off at `epoch` or later.
    /// Writers call it as the clock moves, and with the next epoch when a
    /// trail is closed, so that a copy of the file taken later yields no
    /// trail created before.
    pub(crate) fn advance(&self, epoch: u64) -> Result<(), KeyError> {
        let changed = {
            let mut state = self.lock();
            if epoch > state.root_epoch {
                state.root = evolve_to(&state.root, state.root_epoch, epoch);
                state.root_epoch = epoch;
                true
            } else {
                false
            }
        };
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Stops holding a key for a trail that this key no longer seals.
    pub fn forget_trail(&self, trail: &str) -> Result<(), KeyError> {
        let removed = self.lock().trails.remove(trail).is_some();
        if removed {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), KeyError> {
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

/// The keys `from..=to` of a chain whose key at `from` is `key`.
fn chain_keys(key: &mut Zeroizing<[u8; KEY_LEN]>, from: u64, to: u64) -> Vec<EpochKey> {
    let mut keys = Vec::with_capacity(usize::try_from(to.saturating_sub(from) + 1).unwrap_or(1));
    for epoch in from..=to {
        keys.push(EpochKey::new(epoch, key));
        if epoch < to {
            *key = evolve(key, epoch);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> SealingKey {
        let genesis = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        SealingKey::generate("k1", genesis, 900).unwrap().0
    }

    #[test]
    fn an_idle_trail_holds_back_only_its_own_chain() {
        let key = key();
        key.register("idle", Registration::New { epoch: 0 })
            .unwrap();
        key.register("busy", Registration::New { epoch: 0 })
            .unwrap();
        key.set_trail_floor("busy", 50).unwrap();
        key.advance(50).unwrap();
        assert_eq!(key.trail_epoch("idle"), Some(0));
        assert_eq!(key.trail_epoch("busy"), Some(50));
        assert_eq!(key.epoch(), 50);
        // A trail created now cannot reach back before the key's chain.
        assert!(matches!(
            key.register("late", Registration::New { epoch: 3 }),
            Err(KeyError::NoTrailKey { .. })
        ));
        let text = key.to_file_text();
        let reread = SealingKey::from_file_text(&text).unwrap();
        let (_, a) = key.trail_keys("idle", 7, 7).unwrap();
        let (_, b) = reread.trail_keys("idle", 7, 7).unwrap();
        let input = crate::model::MacInput {
            version: 2,
            trail: "idle",
            seq: 1,
            epoch: 7,
            key_id: "k1",
            recorded_at_micros: 0,
            kind: crate::EntryKind::Event,
            prev_mac: &crate::model::Mac::from_bytes([0; 32]),
            body_commitment: &Digest::from_bytes([0; 32]),
        };
        assert_eq!(a[0].mac(&input), b[0].mac(&input));
    }

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
