//! Building sealed entries: the MAC chain.

use std::cell::RefCell;

use chrono::{DateTime, Utc};

use super::evolution::EpochKey;
use crate::KeyError;
use crate::model::EpochSummary;
use crate::model::MacInput;
use crate::model::{Body, Entry, EntryKind};
use crate::model::{Digest, Mac, Salt, body_commitment, format_timestamp};

/// Body field names of an epoch seal.
pub(crate) mod seal_fields {
    pub(crate) const EPOCH: &str = "seal.epoch";
    pub(crate) const ENTRIES: &str = "seal.entries";
    pub(crate) const RECORDS: &str = "seal.records";
    pub(crate) const FIRST_AT: &str = "seal.first_at";
    pub(crate) const LAST_AT: &str = "seal.last_at";
    pub(crate) const LAST_SEQ: &str = "seal.last_seq";
    pub(crate) const LAST_MAC: &str = "seal.last_mac";
}

/// Body field names of a genesis entry.
pub(crate) mod genesis_fields {
    pub(crate) const TRAIL: &str = "genesis.trail";
    pub(crate) const KEY_CHECK: &str = "genesis.key_check";
    pub(crate) const KEY_GENESIS: &str = "genesis.key_genesis";
    pub(crate) const EPOCH_SECONDS: &str = "genesis.epoch_seconds";
    pub(crate) const FORMAT: &str = "genesis.format_version";
}

/// Body field names of a key rotation entry.
pub(crate) mod rotation_fields {
    pub(crate) const FORMAT: &str = "rotation.format_version";
    pub(crate) const KEY_ID: &str = "rotation.key_id";
    pub(crate) const KEY_CHECK: &str = "rotation.key_check";
}

/// An entry before its MAC: everything the MAC covers except the key.
#[derive(Clone, Debug)]
#[allow(clippy::exhaustive_structs, reason = "callers of `Sealer` build it")]
pub struct EntryDraft {
    /// Trail name.
    pub trail: String,
    /// Sequence number.
    pub seq: u64,
    /// Key epoch.
    pub epoch: u64,
    /// Key id.
    pub key_id: String,
    /// Timestamp (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// Kind.
    pub kind: EntryKind,
    /// Body.
    pub body: Body,
    /// The previous entry's MAC (or the genesis value).
    pub prev_mac: Mac,
}

impl EntryDraft {
    /// Seals the draft with `key` in format `version`.
    pub(crate) fn seal_with(self, version: u8, key: &EpochKey, commitment: Digest) -> Entry {
        let mac = key.mac(&MacInput {
            version,
            trail: &self.trail,
            seq: self.seq,
            epoch: self.epoch,
            key_id: &self.key_id,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
            kind: self.kind,
            prev_mac: &self.prev_mac,
            body_commitment: &commitment,
        });
        Entry {
            trail: self.trail,
            seq: self.seq,
            epoch: self.epoch,
            key_id: self.key_id,
            recorded_at: self.recorded_at,
            kind: self.kind,
            body: self.body,
            prev_mac: self.prev_mac,
            body_commitment: commitment,
            mac,
        }
    }
}

impl super::SealingKey {
    /// Seals one entry of a trail this key seals with the key of its epoch,
    /// on the trail's key line. Fails if that epoch's key was already
    /// destroyed. Writers use [`crate::Trail`]; this is the building block
    /// for tools and re-implementations.
    pub fn seal_entry(&self, draft: EntryDraft) -> Result<Entry, KeyError> {
        let (line, mut keys) = self.trail_keys(&draft.trail, draft.epoch, draft.epoch)?;
        let key = keys.pop().ok_or(KeyError::EpochGone {
            requested: draft.epoch,
            held: self.epoch(),
        })?;
        let commitment = body_commitment(&draft.body);
        Ok(draft.seal_with(line.format(), &key, commitment))
    }
}

/// The body of the seal of `epoch`, closing it after the entry
/// `(last_seq, last_mac)`. Format 2 seals also count the epoch's records.
pub(crate) fn seal_body(
    version: u8,
    epoch: u64,
    summary: &EpochSummary,
    last_seq: u64,
    last_mac: &Mac,
) -> Body {
    let mut body = Body::new();
    body.insert_public(seal_fields::EPOCH, epoch.to_string());
    body.insert_public(seal_fields::ENTRIES, summary.count.to_string());
    if version >= crate::model::FORMAT_V2 {
        body.insert_public(seal_fields::RECORDS, summary.records.to_string());
    }
    if let Some(first) = summary.first_at {
        body.insert_public(seal_fields::FIRST_AT, format_timestamp(first));
    }
    if let Some(last) = summary.last_at {
        body.insert_public(seal_fields::LAST_AT, format_timestamp(last));
    }
    body.insert_public(seal_fields::LAST_SEQ, last_seq.to_string());
    body.insert_public(seal_fields::LAST_MAC, last_mac.to_hex());
    body
}

/// A pool of random salts, refilled in bulk so that sealing does not make a
/// system call per field.
pub(crate) struct SaltPool {
    bytes: Vec<u8>,
    position: usize,
}

const SALT_POOL_BYTES: usize = 4096;

impl SaltPool {
    fn new() -> Self {
        Self {
            bytes: vec![0; SALT_POOL_BYTES],
            position: SALT_POOL_BYTES,
        }
    }

    fn next(&mut self) -> Result<Salt, KeyError> {
        if self.position + Salt::LEN > self.bytes.len() {
            getrandom::fill(&mut self.bytes).map_err(|err| KeyError::Random(err.to_string()))?;
            self.position = 0;
        }
        let salt = Salt::from_slice(&self.bytes[self.position..self.position + Salt::LEN])
            .map_err(|err| KeyError::Random(err.to_string()))?;
        // Used salt bytes are wiped so they cannot be read back later.
        self.bytes[self.position..self.position + Salt::LEN].fill(0);
        self.position += Salt::LEN;
        Ok(salt)
    }
}

thread_local! {
    static SALTS: RefCell<SaltPool> = RefCell::new(SaltPool::new());
}

/// Calls `f` with a source of fresh random salts from this thread's pool.
pub(crate) fn with_salts<T>(f: impl FnOnce(&mut dyn FnMut() -> Salt) -> T) -> Result<T, KeyError> {
    SALTS.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut failure = None;
        let result = f(&mut || match pool.next() {
            Ok(salt) => salt,
            Err(err) => {
                failure = Some(err);
                Salt::from_bytes([0; Salt::LEN])
            }
        });
        match failure {
            // A failed random source must never seal a predictable salt.
            Some(err) => Err(err),
            None => Ok(result),
        }
    })
}

/// Seals a run of entries of one epoch onto a known chain position, outside
/// a [`crate::Trail`] writer: for tools, benchmarks and recording inside a
/// caller's own database transaction (where the caller holds the trail's
/// head locked).
pub struct Sealer {
    trail: String,
    key_id: String,
    version: u8,
    key: EpochKey,
    next_seq: u64,
    prev_mac: Mac,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("trail", &self.trail)
            .field("epoch", &self.key.epoch())
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl super::SealingKey {
    /// A sealer for `trail` in `epoch`, continuing after `head` (the last
    /// entry's seq and MAC) of a trail this key seals, or starting a new
    /// trail at seq 0 (its own key chain branching off at `epoch`) when
    /// `None`.
    pub fn sealer(
        &self,
        trail: &str,
        epoch: u64,
        head: Option<(u64, Mac)>,
    ) -> Result<Sealer, KeyError> {
        if head.is_none() {
            self.register(trail, super::Registration::New { epoch })?;
        }
        let (line, mut keys) = self.trail_keys(trail, epoch, epoch)?;
        let key = keys.pop().ok_or(KeyError::EpochGone {
            requested: epoch,
            held: self.epoch(),
        })?;
        Ok(Sealer {
            trail: trail.to_owned(),
            key_id: self.key_id().to_owned(),
            version: line.format(),
            key,
            next_seq: head.map_or(0, |(seq, _)| seq + 1),
            prev_mac: head.map_or_else(|| crate::model::genesis_prev_mac(trail), |(_, mac)| mac),
        })
    }
}

impl Sealer {
    /// Seals a body of any kind as the next entry.
    pub fn seal_body(&mut self, kind: EntryKind, body: Body, recorded_at: DateTime<Utc>) -> Entry {
        let commitment = body_commitment(&body);
        let draft = EntryDraft {
            trail: self.trail.clone(),
            seq: self.next_seq,
            epoch: self.key.epoch(),
            key_id: self.key_id.clone(),
            recorded_at: crate::model::truncate_to_micros(recorded_at),
            kind,
            body,
            prev_mac: self.prev_mac,
        };
        let entry = draft.seal_with(self.version, &self.key, commitment);
        self.next_seq += 1;
        self.prev_mac = entry.mac;
        entry
    }
}

impl super::VerificationKey {
    /// The key line that seals a trail's entries after `key_entry`, when
    /// `key_entry` is an authentic genesis or key rotation entry sealed
    /// under this key: a format 2 genesis starts the trail's own chain at
    /// its epoch, a format 1 genesis the shared chain, and a rotation to
    /// format 2 a branch at the rotation's epoch. `None` for any other
    /// entry, or one that does not check.
    pub fn key_line_of(&self, key_entry: &Entry) -> Option<super::KeyLine> {
        use super::KeyLine;
        let (own_line, next_line) = match key_entry.kind {
            EntryKind::Genesis => {
                let line = match key_entry.value(genesis_fields::FORMAT)? {
                    "1" => KeyLine::Shared,
                    "2" => KeyLine::Branch {
                        epoch: key_entry.epoch,
                    },
                    _ => return None,
                };
                (line, line)
            }
            EntryKind::KeyRotation => {
                if key_entry.value(rotation_fields::FORMAT)? != "2" {
                    return None;
                }
                let next = KeyLine::Branch {
                    epoch: key_entry.epoch,
                };
                (KeyLine::Shared, next)
            }
            _ => return None,
        };
        self.check_entry(key_entry, own_line).then_some(next_line)
    }

    /// Checks one entry on its own: that it was sealed under this key on
    /// `line` (its MAC) and that its body is the one sealed (its body
    /// commitment; erased personal fields keep their commitments, so a
    /// redacted entry still checks). `line` comes from the trail's genesis
    /// or last rotation ([`crate::VerificationKey::key_line_of`]). This is what an
    /// auditor does with a subject's export, which holds single entries of
    /// a trail, not the whole chain; the chain itself is
    /// [`crate::Verifier`]'s job.
    pub fn check_entry(&self, entry: &Entry, line: super::KeyLine) -> bool {
        if entry.key_id != self.key_id() {
            return false;
        }
        // The epoch is stored data: derive no further than the clock allows,
        // whatever a row says.
        let limit = self
            .schedule()
            .epoch_of(Utc::now())
            .map_or(0, |now| now.saturating_add(2));
        if entry.epoch > limit {
            return false;
        }
        let Some(key) = self.deriver(&entry.trail).epoch_key(line, entry.epoch) else {
            return false;
        };
        let body_intact = body_commitment(&entry.body) == entry.body_commitment;
        let mac_intact = key.mac(&entry.mac_input(line.format())) == entry.mac;
        body_intact & mac_intact
    }
}
