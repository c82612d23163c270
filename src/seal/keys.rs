//! Forward-secure keys: the epoch schedule, key evolution, each trail's
//! own key chain, and the verification key.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::key_file::{decode_key, read_key_file, write_new_secret_file};
use crate::KeyError;
use crate::model::{Absorb, Digest, Mac, Staged, format_timestamp};
use crate::model::{EVOLVE_DOMAIN, KEY_CHECK_DOMAIN, MacInput, TRAIL_KEY_DOMAIN};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of every key in bytes.
pub const KEY_LEN: usize = 32;

/// Default epoch length: 15 minutes.
pub const DEFAULT_EPOCH_SECONDS: u64 = 15 * 60;

/// File name of the verification key inside a key folder.
pub const VERIFICATION_KEY_FILE: &str = "verification.key";
/// File name of the sealing key state inside a key folder.
pub const SEALING_KEY_FILE: &str = "sealing.key";

pub(crate) const VERIFICATION_FORMAT: &str = "trailseal-verification-key";
pub(crate) const KEY_FILE_VERSION: u32 = 1;
const MAX_KEY_ID_LEN: usize = 64;

/// Epoch keys kept along a derived chain, one every this many epochs, so
/// that a key behind the last one derived costs at most this many steps.
const CHECKPOINT_STRIDE: u64 = 1024;

impl Absorb for HmacSha256 {
    fn absorb(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// How time is cut into key epochs: epoch `e` covers
/// `[genesis + e·length, genesis + (e+1)·length)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    genesis: DateTime<Utc>,
    length_micros: i64,
}

impl EpochSchedule {
    /// A schedule starting at `genesis` with epochs of `length_seconds`.
    pub fn new(genesis: DateTime<Utc>, length_seconds: u64) -> Result<Self, KeyError> {
        let length_micros = i64::try_from(length_seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .filter(|&micros| micros > 0)
            .ok_or(KeyError::InvalidEpochLength(length_seconds))?;
        Ok(Self {
            genesis: crate::model::truncate_to_micros(genesis),
            length_micros,
        })
    }

    /// Start of epoch 0.
    pub fn genesis(&self) -> DateTime<Utc> {
        self.genesis
    }

    /// Epoch length in seconds.
    pub fn length_seconds(&self) -> u64 {
        (self.length_micros / 1_000_000) as u64
    }

    /// The epoch a time falls into, or `None` before genesis.
    pub fn epoch_of(&self, time: DateTime<Utc>) -> Option<u64> {
        let since = time
            .timestamp_micros()
            .checked_sub(self.genesis.timestamp_micros())?;
        u64::try_from(since.div_euclid(self.length_micros)).ok()
    }

    /// First instant of an epoch.
    pub fn start_of(&self, epoch: u64) -> DateTime<Utc> {
        let offset = i64::try_from(epoch)
            .ok()
            .and_then(|e| e.checked_mul(self.length_micros))
            .unwrap_or(i64::MAX / 2);
        self.genesis
            .checked_add_signed(TimeDelta::microseconds(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// First instant after an epoch.
    pub fn end_of(&self, epoch: u64) -> DateTime<Utc> {
        self.start_of(epoch.saturating_add(1))
    }
}

/// The key of one epoch, pre-keyed so sealing an entry clones a ready HMAC
/// state instead of re-keying.
#[derive(Clone)]
pub(crate) struct EpochKey {
    epoch: u64,
    state: HmacSha256,
}

impl EpochKey {
    pub(crate) fn new(epoch: u64, key: &[u8; KEY_LEN]) -> Self {
        Self {
            epoch,
            state: hmac_state(key),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn mac(&self, input: &MacInput<'_>) -> Mac {
        let mut state = self.state.clone();
        let mut staged = Staged::new(&mut state);
        input.write(&mut staged);
        staged.flush();
        Mac::from_bytes(state.finalize().into_bytes().into())
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn hmac_state(key: &[u8; KEY_LEN]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// `K_{e+1} = HMAC-SHA256(K_e, EVOLVE_DOMAIN ‖ u64(e))`: the same step for
/// the key's own chain and for every trail's chain.
pub(crate) fn evolve(key: &[u8; KEY_LEN], epoch: u64) -> Zeroizing<[u8; KEY_LEN]> {
    let mut state = hmac_state(key);
    state.update(EVOLVE_DOMAIN);
    state.update(&epoch.to_be_bytes());
    Zeroizing::new(state.finalize().into_bytes().into())
}

pub(crate) fn evolve_to(
    start_key: &[u8; KEY_LEN],
    start_epoch: u64,
    target: u64,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new(*start_key);
    for epoch in start_epoch..target {
        key = evolve(&key, epoch);
    }
    key
}

/// The first key of a trail's own chain, branched off the key's chain at
/// the trail's branch epoch `g`: `T_g = HMAC-SHA256(K_g, TRAIL_KEY_DOMAIN ‖
/// lp(trail))`. Holding `T_e` gives the trail's later keys, nothing of any
/// other trail, and nothing of the key's own chain; holding `K_e` gives the
/// chains of trails branched at `e` or later, never of those branched
/// before.
pub(crate) fn trail_branch(root_key: &[u8; KEY_LEN], trail: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let mut state = hmac_state(root_key);
    state.absorb(TRAIL_KEY_DOMAIN);
    state.absorb_len_prefixed(trail.as_bytes());
    Zeroizing::new(state.finalize().into_bytes().into())
}

fn key_check(k0: &[u8; KEY_LEN], key_id: &str) -> Digest {
    let mut state = hmac_state(k0);
    state.absorb(KEY_CHECK_DOMAIN);
    state.absorb_len_prefixed(key_id.as_bytes());
    Digest::from_bytes(state.finalize().into_bytes().into())
}

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

pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut()).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(key)
}

/// A chain of epoch keys from a known start, derived forward on demand.
/// Keys every [`CHECKPOINT_STRIDE`] epochs are kept, so asking for an
/// earlier epoch than the last costs at most that many steps, however the
/// epochs asked for jump around.
pub(crate) struct ChainCache {
    start: u64,
    /// The key at `start + i·CHECKPOINT_STRIDE`, for each `i` reached.
    checkpoints: Vec<Zeroizing<[u8; KEY_LEN]>>,
    last_epoch: u64,
    last: Zeroizing<[u8; KEY_LEN]>,
}

impl ChainCache {
    pub(crate) fn new(start: u64, key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self {
            start,
            checkpoints: vec![key.clone()],
            last_epoch: start,
            last: key,
        }
    }

    /// The key of `epoch`, or `None` before the chain's start.
    pub(crate) fn key_at(&mut self, epoch: u64) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let offset = epoch.checked_sub(self.start)?;
        if epoch < self.last_epoch {
            let index = usize::try_from(offset / CHECKPOINT_STRIDE).ok()?;
            let index = index.min(self.checkpoints.len() - 1);
            self.last_epoch = self.start + index as u64 * CHECKPOINT_STRIDE;
            self.last = self.checkpoints[index].clone();
        }
        while self.last_epoch < epoch {
            self.last = evolve(&self.last, self.last_epoch);
            self.last_epoch += 1;
            if (self.last_epoch - self.start).is_multiple_of(CHECKPOINT_STRIDE)
                && (self.last_epoch - self.start) / CHECKPOINT_STRIDE
                    == self.checkpoints.len() as u64
            {
                self.checkpoints.push(self.last.clone());
            }
        }
        Some(self.last.clone())
    }
}

/// Which chain of epoch keys seals a trail's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyLine {
    /// Format 1: the key's own chain `K_e`, shared by every trail.
    Shared,
    /// Format 2: the trail's own chain, branched off the key's chain at
    /// this epoch (its genesis, or the rotation that upgraded it).
    Branch {
        /// The branch epoch `g`.
        epoch: u64,
    },
}

impl KeyLine {
    /// The format version of entries sealed on this line.
    pub fn format(self) -> u8 {
        match self {
            KeyLine::Shared => crate::model::FORMAT_V1,
            KeyLine::Branch { .. } => crate::model::FORMAT_V2,
        }
    }
}

/// The offline key that verifies a trail: `K_0` plus the epoch schedule and
/// the key id. Whoever holds it can derive every epoch key, so it belongs on
/// the auditor's machine, not on the panel server.
pub struct VerificationKey {
    key_id: String,
    schedule: EpochSchedule,
    k0: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerificationKeyFile {
    format: String,
    version: u32,
    key_id: String,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
    key: String,
}

impl VerificationKey {
    /// Builds a verification key from its parts (e.g. for re-implementations
    /// and test vectors). Prefer [`crate::SealingKey::generate`].
    pub fn from_parts(
        key_id: &str,
        schedule: EpochSchedule,
        k0: [u8; KEY_LEN],
    ) -> Result<Self, KeyError> {
        validate_key_id(key_id)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            schedule,
            k0: Zeroizing::new(k0),
        })
    }

    pub(crate) fn from_secret(
        key_id: &str,
        schedule: EpochSchedule,
        k0: Zeroizing<[u8; KEY_LEN]>,
    ) -> Self {
        Self {
            key_id: key_id.to_owned(),
            schedule,
            k0,
        }
    }

    /// The key id entries name in `key_id`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The epoch schedule.
    pub fn schedule(&self) -> &EpochSchedule {
        &self.schedule
    }

    /// `HMAC-SHA256(K_0, KEY_CHECK_DOMAIN ‖ lp(key_id))`, recorded in every
    /// genesis entry so that a wrong verification key is recognised as such.
    pub fn check_value(&self) -> Digest {
        key_check(&self.k0, &self.key_id)
    }

    /// Derives epoch keys of one trail, on any of its key lines.
    pub(crate) fn deriver(&self, trail: &str) -> KeyDeriver {
        KeyDeriver {
            trail: trail.to_owned(),
            shared: ChainCache::new(0, self.k0.clone()),
            branches: Vec::new(),
        }
    }

    /// Reads a verification key file (at most 1 MiB). Check
    /// [`key_file_exposure`](crate::seal::key_file_exposure) to warn when others
    /// can read it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        Self::from_file_text(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_owned(),
            reason,
        })
    }

    fn from_file_text(text: &str) -> Result<Self, String> {
        let mut file: VerificationKeyFile = serde_json::from_str(text).map_err(|err| {
            // serde_json errors can quote input; keep only the position.
            format!(
                "not a verification key file (line {}, column {})",
                err.line(),
                err.column()
            )
        })?;
        let k0 = decode_key(&mut file.key)?;
        let schedule = check_key_file_header(
            (&file.format, VERIFICATION_FORMAT),
            file.version == KEY_FILE_VERSION,
            &file.key_id,
            file.genesis,
            file.epoch_seconds,
        )?;
        Ok(Self {
            key_id: file.key_id,
            schedule,
            k0,
        })
    }

    fn to_file_text(&self) -> Zeroizing<String> {
        let file = VerificationKeyFile {
            format: VERIFICATION_FORMAT.to_owned(),
            version: KEY_FILE_VERSION,
            key_id: self.key_id.clone(),
            genesis: self.schedule.genesis,
            epoch_seconds: self.schedule.length_seconds(),
            key: hex::encode(*self.k0),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
        let mut key_hex = file.key;
        key_hex.zeroize();
        text
    }

    /// Writes the key to a new file (mode 0600); refuses to overwrite.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_new_secret_file(path.as_ref(), &self.to_file_text())
    }
}

/// Derives the epoch keys of one trail for a verifier, on the key's own
/// chain (format 1) or on the trail's branches (format 2), each cached.
pub(crate) struct KeyDeriver {
    trail: String,
    shared: ChainCache,
    /// Branch chains by branch epoch: a trail has one, or a few after
    /// rotations.
    branches: Vec<(u64, ChainCache)>,
}

impl KeyDeriver {
    /// The key of `epoch` on `line`; `None` for an epoch before the line's
    /// branch. Callers bound `epoch` first (by the verifier's clock): the
    /// cost grows with it.
    pub(crate) fn epoch_key(&mut self, line: KeyLine, epoch: u64) -> Option<EpochKey> {
        let key = match line {
            KeyLine::Shared => self.shared.key_at(epoch)?,
            KeyLine::Branch { epoch: branch } => {
                if epoch < branch {
                    return None;
                }
                let at = match self.branches.iter().position(|(b, _)| *b == branch) {
                    Some(at) => at,
                    None => {
                        let root = self.shared.key_at(branch)?;
                        let start = trail_branch(&root, &self.trail);
                        self.branches.push((branch, ChainCache::new(branch, start)));
                        self.branches.len() - 1
                    }
                };
                self.branches[at].1.key_at(epoch)?
            }
        };
        Some(EpochKey::new(epoch, &key))
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

/// Human-readable summary of a key's schedule, for CLI output.
pub fn describe_schedule(schedule: &EpochSchedule) -> String {
    format!(
        "genesis {}, epochs of {} s",
        format_timestamp(schedule.genesis()),
        schedule.length_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_chain_gives_the_keys_a_plain_evolution_gives_in_any_order() {
        let start = Zeroizing::new([7u8; KEY_LEN]);
        let mut cache = ChainCache::new(5, start.clone());
        for epoch in [3000, 5, 2999, 1029, 1030, 6, 4100, 2000] {
            let expected = evolve_to(&start, 5, epoch);
            assert_eq!(*cache.key_at(epoch).unwrap(), *expected, "epoch {epoch}");
        }
        assert!(cache.key_at(4).is_none());
    }

    #[test]
    fn a_branch_depends_on_the_trail_and_the_epoch() {
        let k = [1u8; KEY_LEN];
        assert_ne!(*trail_branch(&k, "admin"), *trail_branch(&k, "web"));
        assert_ne!(
            *trail_branch(&k, "admin"),
            *trail_branch(&evolve(&k, 0), "admin")
        );
        assert_ne!(*trail_branch(&k, "admin"), *evolve(&k, 0));
    }
}
