//! Forward-secure key evolution: each epoch's key derived from the one
//! before and the old one destroyed, each trail's own chain branched off
//! the key's, and the key lines a trail is sealed on.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeyError;
use crate::model::{Absorb, Digest, Mac, Staged};
use crate::model::{EVOLVE_DOMAIN, KEY_CHECK_DOMAIN, MacInput, TRAIL_KEY_DOMAIN};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of every key in bytes.
pub const KEY_LEN: usize = 32;

/// Epoch keys kept along a derived chain, one every this many epochs, so
/// that a key behind the last one derived costs at most this many steps.
const CHECKPOINT_STRIDE: u64 = 1024;

impl Absorb for HmacSha256 {
    fn absorb(&mut self, bytes: &[u8]) {
        self.update(bytes);
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

pub(super) fn key_check(k0: &[u8; KEY_LEN], key_id: &str) -> Digest {
    let mut state = hmac_state(k0);
    state.absorb(KEY_CHECK_DOMAIN);
    state.absorb_len_prefixed(key_id.as_bytes());
    Digest::from_bytes(state.finalize().into_bytes().into())
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
