//! Commitments to bodies and personal fields: the canonical encoding they
//! are computed over.
//!
//! Every hashed input starts with a fixed domain string, integers are
//! big-endian, and every variable-length item is prefixed with its length
//! as a `u32`, so no two different inputs encode to the same bytes. The
//! format is specified byte by byte in `docs/FORMAT.md`.

use sha2::{Digest as _, Sha256};

use super::{Body, Digest, Field, Salt};

pub(crate) const BODY_DOMAIN: &[u8] = b"trailseal/v1/body";
pub(crate) const FIELD_DOMAIN: &[u8] = b"trailseal/v1/field";

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
