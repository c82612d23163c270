//! Forward-secure keys: the verification key, the evolving sealing key and
//! their files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::encoding::{
    Absorb, EVOLVE_DOMAIN, KEY_CHECK_DOMAIN, MacInput, Staged, format_timestamp,
};
use super::{Digest, Mac};
use crate::KeyError;

type HmacSha256 = Hmac<Sha256>;

/// Length of every key in bytes.
pub const KEY_LEN: usize = 32;

/// Default epoch length: 15 minutes.
pub const DEFAULT_EPOCH_SECONDS: u64 = 15 * 60;

/// File name of the verification key inside a key folder.
pub const VERIFICATION_KEY_FILE: &str = "verification.key";
/// File name of the sealing key state inside a key folder.
pub const SEALING_KEY_FILE: &str = "sealing.key";

const VERIFICATION_FORMAT: &str = "trailseal-verification-key";
const SEALING_FORMAT: &str = "trailseal-sealing-key";
const KEY_FILE_VERSION: u32 = 1;
const MAX_KEY_ID_LEN: usize = 64;

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
            genesis: super::truncate_to_micros(genesis),
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
        self.genesis + TimeDelta::microseconds(offset)
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
    fn new(epoch: u64, key: &[u8; KEY_LEN]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let state = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { epoch, state }
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

/// `K_{e+1} = HMAC-SHA256(K_e, EVOLVE_DOMAIN ‖ e)`.
pub(crate) fn evolve(key: &[u8; KEY_LEN], epoch: u64) -> Zeroizing<[u8; KEY_LEN]> {
    let mut state = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    state.update(EVOLVE_DOMAIN);
    state.update(&epoch.to_be_bytes());
    Zeroizing::new(state.finalize().into_bytes().into())
}

fn evolve_to(start_key: &[u8; KEY_LEN], start_epoch: u64, target: u64) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new(*start_key);
    for epoch in start_epoch..target {
        key = evolve(&key, epoch);
    }
    key
}

fn key_check(k0: &[u8; KEY_LEN], key_id: &str) -> Digest {
    let mut state = <HmacSha256 as KeyInit>::new_from_slice(k0).unwrap_or_else(|_| unreachable!());
    state.absorb(KEY_CHECK_DOMAIN);
    state.absorb_len_prefixed(key_id.as_bytes());
    Digest::from_bytes(state.finalize().into_bytes().into())
}

fn validate_key_id(key_id: &str) -> Result<(), KeyError> {
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

/// The checks both key files share: kind, version, key id and schedule.
fn check_key_file_header(
    (format, expected): (&str, &str),
    version: u32,
    key_id: &str,
    genesis: DateTime<Utc>,
    epoch_seconds: u64,
) -> Result<EpochSchedule, String> {
    if format != expected {
        return Err(format!("expected a {expected} file, found {format:?}"));
    }
    if version != KEY_FILE_VERSION {
        return Err(format!("unsupported key file version {version}"));
    }
    validate_key_id(key_id).map_err(|err| err.to_string())?;
    EpochSchedule::new(genesis, epoch_seconds).map_err(|err| err.to_string())
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut()).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(key)
}

fn decode_key(hex_text: &mut String) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let result = hex::decode_to_slice(hex_text.as_bytes(), key.as_mut());
    hex_text.zeroize();
    result.map_err(|_| "key is not 64 hexadecimal digits".to_owned())?;
    Ok(key)
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
    /// and test vectors). Prefer [`SealingKey::generate`].
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

    /// Derives epoch keys forward from a known one; cheaper than from `K_0`.
    pub(crate) fn deriver(&self) -> KeyDeriver<'_> {
        KeyDeriver {
            key: self,
            cached_epoch: 0,
            cached: Zeroizing::new(*self.k0),
        }
    }

    /// Reads a verification key file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = Zeroizing::new(read_key_file(path)?);
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
            file.version,
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

/// Derives epoch keys for a verifier, moving forward from the last one.
pub(crate) struct KeyDeriver<'a> {
    key: &'a VerificationKey,
    cached_epoch: u64,
    cached: Zeroizing<[u8; KEY_LEN]>,
}

impl KeyDeriver<'_> {
    pub(crate) fn epoch_key(&mut self, epoch: u64) -> EpochKey {
        if epoch < self.cached_epoch {
            self.cached_epoch = 0;
            self.cached = Zeroizing::new(*self.key.k0);
        }
        self.cached = evolve_to(&self.cached, self.cached_epoch, epoch);
        self.cached_epoch = epoch;
        EpochKey::new(epoch, &self.cached)
    }
}

/// The writer's evolving sealing key, shared by all trails of a process.
///
/// It holds only `K_e` for the oldest epoch that some trail has not sealed
/// yet; later keys are derived on demand. Once every trail has sealed epoch
/// `e`, the key evolves and the old one is overwritten, in memory and in the
/// key-state file: a thief who takes the key later cannot forge entries of
/// sealed epochs.
pub struct SealingKey {
    key_id: String,
    schedule: EpochSchedule,
    check: Digest,
    path: Option<PathBuf>,
    state: Mutex<SealingState>,
}

struct SealingState {
    epoch: u64,
    key: Zeroizing<[u8; KEY_LEN]>,
    /// Per trail: the oldest epoch it still has to seal.
    trails: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct SealingKeyFile {
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
        let verification = VerificationKey {
            key_id: key_id.to_owned(),
            schedule,
            k0: k0.clone(),
        };
        let sealing = SealingKey {
            key_id: key_id.to_owned(),
            schedule,
            check: verification.check_value(),
            path: None,
            state: Mutex::new(SealingState {
                epoch: 0,
                key: k0,
                trails: BTreeMap::new(),
            }),
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

    /// Opens a sealing key-state file; the key's evolution is written back
    /// to it atomically.
    pub fn open(path: impl AsRef<Path>) -> Result<SealingKey, KeyError> {
        let path = path.as_ref();
        let text = Zeroizing::new(read_key_file(path)?);
        let mut key = Self::from_file_text(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_owned(),
            reason,
        })?;
        key.path = Some(path.to_owned());
        Ok(key)
    }

    fn from_file_text(text: &str) -> Result<Self, String> {
        let mut file: SealingKeyFile = serde_json::from_str(text).map_err(|err| {
            format!(
                "not a sealing key file (line {}, column {})",
                err.line(),
                err.column()
            )
        })?;
        let key = decode_key(&mut file.key)?;
        let schedule = check_key_file_header(
            (&file.format, SEALING_FORMAT),
            file.version,
            &file.key_id,
            file.genesis,
            file.epoch_seconds,
        )?;
        Ok(Self {
            key_id: file.key_id,
            schedule,
            check: file.key_check,
            path: None,
            state: Mutex::new(SealingState {
                epoch: file.epoch,
                key,
                trails: file.trails,
            }),
        })
    }

    fn to_file_text(&self) -> Zeroizing<String> {
        let state = self.lock();
        let file = SealingKeyFile {
            format: SEALING_FORMAT.to_owned(),
            version: KEY_FILE_VERSION,
            key_id: self.key_id.clone(),
            genesis: self.schedule.genesis,
            epoch_seconds: self.schedule.length_seconds(),
            key_check: self.check,
            epoch: state.epoch,
            key: hex::encode(*state.key),
            trails: state.trails.clone(),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
        let mut key_hex = file.key;
        key_hex.zeroize();
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

    /// The oldest epoch whose key is still held.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Keys for the epochs `from..=to`. Fails when `from` is older than the
    /// held key: that epoch's key was destroyed and can never be used again.
    pub(crate) fn epoch_keys(&self, from: u64, to: u64) -> Result<Vec<EpochKey>, KeyError> {
        let state = self.lock();
        if from < state.epoch {
            return Err(KeyError::EpochGone {
                requested: from,
                held: state.epoch,
            });
        }
        let mut key = evolve_to(&state.key, state.epoch, from);
        drop(state);
        let mut keys = Vec::with_capacity((to.saturating_sub(from) + 1) as usize);
        for epoch in from..=to {
            keys.push(EpochKey::new(epoch, &key));
            key = evolve(&key, epoch);
        }
        Ok(keys)
    }

    /// Records that `trail` has sealed every epoch before `next_unsealed`,
    /// and evolves (and persists) the key as far as all trails allow.
    pub(crate) fn set_trail_floor(&self, trail: &str, next_unsealed: u64) -> Result<(), KeyError> {
        let changed = {
            let mut state = self.lock();
            let floor = next_unsealed.max(state.epoch);
            let previous = state.trails.insert(trail.to_owned(), floor);
            let lowest = state.trails.values().copied().min().unwrap_or(floor);
            if lowest > state.epoch {
                let evolved = evolve_to(&state.key, state.epoch, lowest);
                state.key = evolved;
                state.epoch = lowest;
            }
            previous != Some(floor)
        };
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Stops holding the key back for a trail that this key no longer seals.
    pub fn forget_trail(&self, trail: &str) -> Result<(), KeyError> {
        let removed = self.lock().trails.remove(trail).is_some();
        if removed {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), KeyError> {
        match &self.path {
            Some(path) => replace_secret_file(path, &self.to_file_text()),
            None => Ok(()),
        }
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

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
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

fn write_new_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
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
fn replace_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
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
