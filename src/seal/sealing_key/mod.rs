//! The writer's evolving sealing key: what it holds, in `chains` how its
//! key chains move on, and in `file` its key-state file.

mod chains;
mod file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::evolution::{KEY_LEN, KeyLine, random_key};
use super::key_id::validate_key_id;
use super::schedule::EpochSchedule;
use super::verification_key::VerificationKey;
use crate::KeyError;
use crate::model::Digest;

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

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
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
}
