//! The canonical byte encoding that commitments and MACs are computed over.
//!
//! Every hashed input starts with a fixed domain string, integers are
//! big-endian, and every variable-length item is prefixed with its length as
//! a `u32`, so no two different inputs encode to the same bytes. The format is
//! specified byte by byte in `docs/FORMAT.md`.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest as _, Sha256};

use super::{Digest, Mac, Salt};
use crate::entry::{Body, EntryKind, Field};

/// The first sealed format: every trail sealed with the key's own chain.
pub const FORMAT_V1: u8 = 1;
/// The second sealed format: every trail sealed with its own key chain,
/// epoch seals that count records, trails closed early (`docs/FORMAT.md`).
pub const FORMAT_V2: u8 = 2;
/// The format version new trails are sealed in; part of every MAC input.
pub const FORMAT_VERSION: u8 = FORMAT_V2;

pub(crate) const BODY_DOMAIN: &[u8] = b"trailseal/v1/body";
pub(crate) const FIELD_DOMAIN: &[u8] = b"trailseal/v1/field";
pub(crate) const ENTRY_DOMAIN: &[u8] = b"trailseal/v1/entry";
pub(crate) const GENESIS_DOMAIN: &[u8] = b"trailseal/v1/genesis";
pub(crate) const EVOLVE_DOMAIN: &[u8] = b"trailseal/v1/evolve";
pub(crate) const KEY_CHECK_DOMAIN: &[u8] = b"trailseal/v1/key-check";
pub(crate) const TRAIL_KEY_DOMAIN: &[u8] = b"trailseal/v2/trail-key";

/// Class byte of a public field in the body encoding.
const CLASS_PUBLIC: u8 = 1;
/// Class byte of a personal field (present or erased) in the body encoding.
const CLASS_PERSONAL: u8 = 2;

/// Something that absorbs bytes: a hash or a MAC state.
pub(crate) trait Absorb {
    fn absorb(&mut self, bytes: &[u8]);

    fn absorb_len_prefixed(&mut self, bytes: &[u8]) {
        // Lengths are bounded by validation far below 4 GiB; saturating keeps
        // an impossible overflow from wrapping into an ambiguous encoding.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.absorb(&len.to_be_bytes());
        self.absorb(bytes);
    }
}

impl Absorb for Sha256 {
    fn absorb(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Absorb for Vec<u8> {
    fn absorb(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Bytes gathered on the stack before they are passed to a hash in one call.
///
/// An input is built from many short pieces (a length prefix, a class byte,
/// a name); handing each to the hash separately costs more than hashing
/// them, so they are collected into blocks first.
pub(crate) struct Staged<'h, H: Absorb> {
    hash: &'h mut H,
    buffer: [u8; STAGE_BYTES],
    len: usize,
}

const STAGE_BYTES: usize = 512;

impl<'h, H: Absorb> Staged<'h, H> {
    pub(crate) fn new(hash: &'h mut H) -> Self {
        Self {
            hash,
            buffer: [0; STAGE_BYTES],
            len: 0,
        }
    }

    /// Passes what is still staged on to the hash.
    pub(crate) fn flush(&mut self) {
        self.hash.absorb(&self.buffer[..self.len]);
        self.len = 0;
    }
}

impl<H: Absorb> Absorb for Staged<'_, H> {
    fn absorb(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > STAGE_BYTES {
            self.flush();
        }
        if bytes.len() > STAGE_BYTES {
            self.hash.absorb(bytes);
        } else {
            self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

/// SHA-256 of what `write` absorbs, staged.
fn sha256_staged(write: impl FnOnce(&mut Staged<'_, Sha256>)) -> Digest {
    let mut hash = Sha256::new();
    let mut staged = Staged::new(&mut hash);
    write(&mut staged);
    staged.flush();
    Digest::from_bytes(hash.finalize().into())
}

/// `SHA-256(FIELD_DOMAIN ‖ salt ‖ lp(name) ‖ lp(value))`: the commitment to one
/// personal field.
pub fn field_commitment(salt: &Salt, name: &str, value: &str) -> Digest {
    sha256_staged(|out| write_field_commitment_input(out, salt, name, value))
}

pub(crate) fn write_field_commitment_input(
    out: &mut impl Absorb,
    salt: &Salt,
    name: &str,
    value: &str,
) {
    out.absorb(FIELD_DOMAIN);
    out.absorb(salt.as_bytes());
    out.absorb_len_prefixed(name.as_bytes());
    out.absorb_len_prefixed(value.as_bytes());
}

/// SHA-256 over the canonical encoding of a body.
pub fn body_commitment(body: &Body) -> Digest {
    sha256_staged(|out| write_body(out, body))
}

/// The canonical encoding of a body, as hashed by [`body_commitment`].
pub fn encode_body(body: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + body.len() * 48);
    write_body(&mut out, body);
    out
}

fn write_body(out: &mut impl Absorb, body: &Body) {
    out.absorb(BODY_DOMAIN);
    let count = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.absorb(&count.to_be_bytes());
    for (name, field) in body.iter() {
        out.absorb_len_prefixed(name.as_bytes());
        match field {
            Field::Public(value) => {
                out.absorb(&[CLASS_PUBLIC]);
                out.absorb_len_prefixed(value.as_bytes());
            }
            Field::Personal { value, salt } => {
                out.absorb(&[CLASS_PERSONAL]);
                out.absorb(field_commitment(salt, name, value).as_bytes());
            }
            Field::Redacted { commitment } => {
                out.absorb(&[CLASS_PERSONAL]);
                out.absorb(commitment.as_bytes());
            }
        }
    }
}

/// The header fields an entry's MAC covers, besides the key.
#[derive(Clone, Copy, Debug)]
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

/// Truncates a time to whole microseconds, the precision every backend keeps.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The canonical text form of a timestamp inside a body:
/// RFC 3339, UTC, exactly six fractional digits, `Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
