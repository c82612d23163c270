//! The key chains a sealing key holds: trails registered, epoch keys handed
//! out for sealing, keys moved on and the old ones destroyed.

use zeroize::Zeroizing;

use super::{Registration, SealingKey, TrailSlot};
use crate::KeyError;
use crate::seal::evolution::{EpochKey, KEY_LEN, KeyLine, evolve, evolve_to, trail_branch};

impl SealingKey {
    /// Registers `trail` with the key before anything of it is sealed, so
    /// that its own chain is at hand; returns the key line it is sealed on.
    /// A trail the key has not sealed before is derived from the key's own
    /// chain, which works only if that chain has not moved past the trail's
    /// branch (or, for a format 1 trail, past `floor`).
    pub(crate) fn register(
        &self,
        trail: &str,
        registration: Registration,
    ) -> Result<KeyLine, KeyError> {
        let line = {
            let mut state = self.lock();
            let (line, needed) = match registration {
                Registration::New { epoch } => (KeyLine::Branch { epoch }, epoch),
                Registration::Existing { line, floor } => {
                    if let Some(slot) = state.trails.get(trail)
                        && slot.line == line
                    {
                        return Ok(line);
                    }
                    match line {
                        KeyLine::Branch { epoch } => (line, epoch),
                        KeyLine::Shared => (line, floor),
                    }
                }
            };
            if needed < state.root_epoch {
                return Err(KeyError::NoTrailKey {
                    trail: trail.to_owned(),
                    needed,
                    held: state.root_epoch,
                });
            }
            let at = evolve_to(&state.root, state.root_epoch, needed);
            let (epoch, key) = match (registration, line) {
                (Registration::Existing { floor, .. }, KeyLine::Branch { epoch }) => {
                    let branch = trail_branch(&at, trail);
                    let floor = floor.max(epoch);
                    (floor, evolve_to(&branch, epoch, floor))
                }
                (_, KeyLine::Branch { .. }) => (needed, trail_branch(&at, trail)),
                (_, KeyLine::Shared) => (needed, at),
            };
            state
                .trails
                .insert(trail.to_owned(), TrailSlot { line, epoch, key });
            line
        };
        self.persist()?;
        Ok(line)
    }

    /// Keys of `trail` for the epochs `from..=to`, on the line it is sealed
    /// on. Fails when `from` is older than the key held for the trail: that
    /// epoch's key was destroyed and can never be used again.
    pub(crate) fn trail_keys(
        &self,
        trail: &str,
        from: u64,
        to: u64,
    ) -> Result<(KeyLine, Vec<EpochKey>), KeyError> {
        let state = self.lock();
        let slot = state
            .trails
            .get(trail)
            .ok_or_else(|| KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: from,
                held: state.root_epoch,
            })?;
        if from < slot.epoch {
            return Err(KeyError::EpochGone {
                requested: from,
                held: slot.epoch,
            });
        }
        let line = slot.line;
        let mut key = evolve_to(&slot.key, slot.epoch, from);
        drop(state);
        Ok((line, chain_keys(&mut key, from, to)))
    }

    /// For a format 1 trail: its keys on the shared chain for `from..=at`,
    /// and the first key of the branch that takes over at `at`, without
    /// changing anything held; [`SealingKey::upgraded`] switches once the
    /// rotation is committed.
    pub(crate) fn upgrade_keys(
        &self,
        trail: &str,
        from: u64,
        at: u64,
    ) -> Result<(Vec<EpochKey>, EpochKey), KeyError> {
        let (line, keys) = self.trail_keys(trail, from, at)?;
        if line != KeyLine::Shared {
            return Err(KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: at,
                held: self.trail_epoch(trail).unwrap_or_default(),
            });
        }
        let state = self.lock();
        let slot = state
            .trails
            .get(trail)
            .ok_or_else(|| KeyError::NoTrailKey {
                trail: trail.to_owned(),
                needed: at,
                held: state.root_epoch,
            })?;
        let shared = evolve_to(&slot.key, slot.epoch, at);
        let branch = trail_branch(&shared, trail);
        Ok((keys, EpochKey::new(at, &branch)))
    }

    /// A format 1 trail's rotation at epoch `at` is committed: from now on
    /// the trail is sealed on its own branch, and the copy of the shared
    /// chain it held is destroyed.
    pub(crate) fn upgraded(&self, trail: &str, at: u64) -> Result<(), KeyError> {
        {
            let mut state = self.lock();
            let Some(slot) = state.trails.get_mut(trail) else {
                return Ok(());
            };
            if slot.line != KeyLine::Shared || at < slot.epoch {
                return Ok(());
            }
            let shared = evolve_to(&slot.key, slot.epoch, at);
            *slot = TrailSlot {
                line: KeyLine::Branch { epoch: at },
                epoch: at,
                key: trail_branch(&shared, trail),
            };
        }
        self.persist()
    }

    /// Records that `trail` has sealed every epoch before `next_unsealed`:
    /// its key moves on and the old one is destroyed (and persisted).
    pub(crate) fn set_trail_floor(&self, trail: &str, next_unsealed: u64) -> Result<(), KeyError> {
        let changed = {
            let mut state = self.lock();
            match state.trails.get_mut(trail) {
                Some(slot) if next_unsealed > slot.epoch => {
                    slot.key = evolve_to(&slot.key, slot.epoch, next_unsealed);
                    slot.epoch = next_unsealed;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Moves the key's own chain on to `epoch` (no further back than it
    /// is): trails created from now on branch off at `epoch` or later.
    /// Writers call it as the clock moves, and with the next epoch when a
    /// trail is closed, so that a copy of the file taken later yields no
    /// trail created before.
    pub(crate) fn advance(&self, epoch: u64) -> Result<(), KeyError> {
        let changed = {
            let mut state = self.lock();
            if epoch > state.root_epoch {
                state.root = evolve_to(&state.root, state.root_epoch, epoch);
                state.root_epoch = epoch;
                true
            } else {
                false
            }
        };
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Stops holding a key for a trail that this key no longer seals.
    pub fn forget_trail(&self, trail: &str) -> Result<(), KeyError> {
        let removed = self.lock().trails.remove(trail).is_some();
        if removed {
            self.persist()?;
        }
        Ok(())
    }
}

/// The keys `from..=to` of a chain whose key at `from` is `key`.
fn chain_keys(key: &mut Zeroizing<[u8; KEY_LEN]>, from: u64, to: u64) -> Vec<EpochKey> {
    let mut keys = Vec::with_capacity(usize::try_from(to.saturating_sub(from) + 1).unwrap_or(1));
    for epoch in from..=to {
        keys.push(EpochKey::new(epoch, key));
        if epoch < to {
            *key = evolve(key, epoch);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::Digest;

    fn key() -> SealingKey {
        let genesis = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        SealingKey::generate("k1", genesis, 900).unwrap().0
    }

    #[test]
    fn an_idle_trail_holds_back_only_its_own_chain() {
        let key = key();
        key.register("idle", Registration::New { epoch: 0 })
            .unwrap();
        key.register("busy", Registration::New { epoch: 0 })
            .unwrap();
        key.set_trail_floor("busy", 50).unwrap();
        key.advance(50).unwrap();
        assert_eq!(key.trail_epoch("idle"), Some(0));
        assert_eq!(key.trail_epoch("busy"), Some(50));
        assert_eq!(key.epoch(), 50);
        // A trail created now cannot reach back before the key's chain.
        assert!(matches!(
            key.register("late", Registration::New { epoch: 3 }),
            Err(KeyError::NoTrailKey { .. })
        ));
        let text = key.to_file_text();
        let reread = SealingKey::from_file_text(&text).unwrap();
        let (_, a) = key.trail_keys("idle", 7, 7).unwrap();
        let (_, b) = reread.trail_keys("idle", 7, 7).unwrap();
        let input = crate::model::MacInput {
            version: 2,
            trail: "idle",
            seq: 1,
            epoch: 7,
            key_id: "k1",
            recorded_at_micros: 0,
            kind: crate::EntryKind::Event,
            prev_mac: &crate::model::Mac::from_bytes([0; 32]),
            body_commitment: &Digest::from_bytes([0; 32]),
        };
        assert_eq!(a[0].mac(&input), b[0].mac(&input));
    }
}
