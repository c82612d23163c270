//! The byte encoding MACs are computed over, and the format's versions.
//!
//! Every hashed input starts with a fixed domain string, integers are
//! big-endian, and every variable-length item is prefixed with its length as
//! a `u32`, so no two different inputs encode to the same bytes. The format is
//! specified byte by byte in `docs/FORMAT.md`.

use sha2::{Digest as _, Sha256};

use super::{Absorb, Digest, EntryKind, Mac};

/// The first sealed format: every trail sealed with the key's own chain.
pub const FORMAT_V1: u8 = 1;
/// The second sealed format: every trail sealed with its own key chain,
/// epoch seals that count records, trails closed early (`docs/FORMAT.md`).
pub const FORMAT_V2: u8 = 2;
/// The format version new trails are sealed in; part of every MAC input.
pub const FORMAT_VERSION: u8 = FORMAT_V2;

pub(crate) const ENTRY_DOMAIN: &[u8] = b"trailseal/v1/entry";
pub(crate) const GENESIS_DOMAIN: &[u8] = b"trailseal/v1/genesis";
pub(crate) const EVOLVE_DOMAIN: &[u8] = b"trailseal/v1/evolve";
pub(crate) const KEY_CHECK_DOMAIN: &[u8] = b"trailseal/v1/key-check";
pub(crate) const TRAIL_KEY_DOMAIN: &[u8] = b"trailseal/v2/trail-key";

/// The header fields an entry's MAC covers, besides the key.
#[derive(Clone, Copy, Debug)]
#[allow(
    clippy::exhaustive_structs,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub struct MacInput<'a> {
    /// The format version the entry is sealed in ([`FORMAT_V1`] or
    /// [`FORMAT_V2`]): its trail's key line decides.
    pub version: u8,
    /// Trail name.
    pub trail: &'a str,
    /// Sequence number.
    pub seq: u64,
    /// Key epoch.
    pub epoch: u64,
    /// Key id.
    pub key_id: &'a str,
    /// Timestamp in microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Entry kind.
    pub kind: EntryKind,
    /// The previous entry's MAC (or the genesis value).
    pub prev_mac: &'a Mac,
    /// The body commitment.
    pub body_commitment: &'a Digest,
}

impl MacInput<'_> {
    pub(crate) fn write(&self, out: &mut impl Absorb) {
        out.absorb(ENTRY_DOMAIN);
        out.absorb(&[self.version]);
        out.absorb_len_prefixed(self.trail.as_bytes());
        out.absorb(&self.seq.to_be_bytes());
        out.absorb(&self.epoch.to_be_bytes());
        out.absorb_len_prefixed(self.key_id.as_bytes());
        out.absorb(&self.recorded_at_micros.to_be_bytes());
        out.absorb(&[self.kind.code()]);
        out.absorb(self.prev_mac.as_bytes());
        out.absorb(self.body_commitment.as_bytes());
    }

    /// The exact bytes the MAC is computed over.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write(&mut out);
        out
    }
}

/// The `prev_mac` of seq 0: `SHA-256(GENESIS_DOMAIN ‖ lp(trail))`.
///
/// Binding it to the trail name keeps an attacker from moving a whole trail's
/// entries under another trail's name.
pub fn genesis_prev_mac(trail: &str) -> Mac {
    let mut hash = Sha256::new();
    hash.absorb(GENESIS_DOMAIN);
    hash.absorb_len_prefixed(trail.as_bytes());
    Mac::from_bytes(hash.finalize().into())
}
