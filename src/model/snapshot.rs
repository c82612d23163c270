//! Projection snapshots: a projection's state over the start of a trail,
//! kept beside the trail when retention deletes the entries it came from.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::Digest;

const SNAPSHOT_DOMAIN: &[u8] = b"trailseal-snapshot-v1";

/// A projection's state over a trail's entries `0..=upto_seq`, serialised
/// (e.g. JSON) by the projection itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "store implementations build it")]
pub struct Snapshot {
    /// The trail.
    pub trail: String,
    /// The projection's stable name.
    pub name: String,
    /// The last seq the state covers.
    pub upto_seq: u64,
    /// The serialised state.
    pub state: String,
}

impl Snapshot {
    /// `SHA-256(domain ‖ len ‖ trail ‖ len ‖ name ‖ upto_seq ‖ len ‖ state)`,
    /// lengths and the seq as 8-byte big-endian: what a retention record
    /// commits to.
    pub fn digest(&self) -> Digest {
        let mut hash = Sha256::new();
        hash.update(SNAPSHOT_DOMAIN);
        for part in [self.trail.as_bytes(), self.name.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(self.upto_seq.to_be_bytes());
        hash.update((self.state.len() as u64).to_be_bytes());
        hash.update(self.state.as_bytes());
        Digest::from_bytes(hash.finalize().into())
    }

    /// What a retention record states about this snapshot.
    pub fn reference(&self) -> SnapshotRef {
        SnapshotRef {
            name: self.name.clone(),
            upto_seq: self.upto_seq,
            digest: self.digest(),
        }
    }
}

/// A snapshot as a retention record names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotRef {
    /// The projection's name.
    pub name: String,
    /// The last seq the state covers.
    pub upto_seq: u64,
    /// [`Snapshot::digest`].
    pub digest: Digest,
}
