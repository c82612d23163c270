//! The verification key: the start of the key's chain, kept offline by an
//! auditor, and the epoch keys a verifier derives from it.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::evolution::{ChainCache, EpochKey, KEY_LEN, KeyLine, key_check, trail_branch};
use super::key_file::{
    KEY_FILE_VERSION, check_key_file_header, decode_key, read_key_file, write_new_secret_file,
};
use super::key_id::validate_key_id;
use super::schedule::EpochSchedule;
use crate::KeyError;
use crate::model::Digest;

pub(crate) const VERIFICATION_FORMAT: &str = "trailseal-verification-key";

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
            genesis: self.schedule.genesis(),
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
