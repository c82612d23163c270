//! Which epoch key each entry of a trail must verify under: the trail's key
//! lines, and the keys of a batch derived ahead of the parallel checks.
//!
//! Everything here reads stored data before it is authenticated, so it
//! trusts nothing: a key line is taken from a genesis or rotation entry only
//! when that entry's own MAC verifies on it, and no key is derived for an
//! epoch beyond what the verifier's clock allows.

use std::collections::HashMap;

use crate::model::MacInput;
use crate::model::{Entry, EntryKind};
use crate::seal::{EpochKey, KeyDeriver, KeyLine, VerificationKey, rotation_fields};

/// The key lines of one trail: the line from seq 0 on, and each rotation's
/// line from the entry after it.
#[derive(Default)]
pub(crate) struct KeyLines {
    /// `(first seq, line)`, in seq order.
    switches: Vec<(u64, KeyLine)>,
}

impl KeyLines {
    /// The line the entry sealed as `seq` is on, once one is known.
    pub(crate) fn line_at(&self, seq: u64) -> Option<KeyLine> {
        self.switches
            .iter()
            .rev()
            .find(|(first, _)| *first <= seq)
            .or_else(|| self.switches.first())
            .map(|(_, line)| *line)
    }

    fn is_known(&self) -> bool {
        !self.switches.is_empty()
    }
}

/// The epoch keys a trail's entries need, derived in order before a batch
/// is checked in parallel (cheap: each chain is cached, so no derivation
/// starts from `K_0` twice).
pub(crate) struct TrailKeys<'v> {
    trail: String,
    keys: &'v HashMap<String, VerificationKey, foldhash::fast::RandomState>,
    derivers: HashMap<String, KeyDeriver>,
    /// No key is derived for a later epoch: the verifier's clock allows
    /// none, and a stored epoch of 2^62 must not cost anything.
    epoch_limit: u64,
    pub(crate) lines: KeyLines,
}

/// Which key an entry is checked with, chosen in order before the parallel
/// checks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyChoice {
    /// The key at this index of the batch's keys, in this format.
    Key { version: u8, index: usize },
    /// No verification key with the entry's key id was given.
    UnknownKey,
    /// The entry claims an epoch beyond the verifier's clock: no key is
    /// derived for it.
    BeyondClock,
    /// The entry claims an epoch before its key line began: it cannot be
    /// authentic.
    BeforeLine,
}

/// The keys of one batch and each entry's choice among them.
#[derive(Default)]
pub(crate) struct BatchKeys {
    pub(crate) keys: Vec<EpochKey>,
    /// `(key id, line, epoch)` of each key, to find it again.
    ids: Vec<(String, KeyLine, u64)>,
    pub(crate) choices: Vec<KeyChoice>,
}

impl<'v> TrailKeys<'v> {
    pub(crate) fn new(
        trail: &str,
        keys: &'v HashMap<String, VerificationKey, foldhash::fast::RandomState>,
        epoch_limit: u64,
    ) -> Self {
        Self {
            trail: trail.to_owned(),
            keys,
            derivers: HashMap::new(),
            epoch_limit,
            lines: KeyLines::default(),
        }
    }

    /// The key of `epoch` on `line` under key `key_id`, if it can be had.
    fn key(&mut self, key_id: &str, line: KeyLine, epoch: u64) -> Option<EpochKey> {
        if epoch > self.epoch_limit {
            return None;
        }
        let key = self.keys.get(key_id)?;
        let deriver = self
            .derivers
            .entry(key_id.to_owned())
            .or_insert_with(|| key.deriver(&self.trail));
        deriver.epoch_key(line, epoch)
    }

    /// The MAC of `entry` as if sealed as `seq` on `line`.
    pub(crate) fn mac_on(
        &mut self,
        entry: &Entry,
        seq: u64,
        line: KeyLine,
    ) -> Option<crate::model::Mac> {
        let key = self.key(&entry.key_id, line, entry.epoch)?;
        Some(key.mac(&MacInput {
            trail: &self.trail,
            seq,
            ..entry.mac_input(line.format())
        }))
    }

    fn verifies_on(&mut self, entry: &Entry, line: KeyLine) -> bool {
        self.mac_on(entry, entry.seq, line) == Some(entry.mac)
    }

    /// Learns the trail's first key line from the first entries stored, if
    /// it is not known yet: the genesis's, or whichever candidate an entry's
    /// MAC verifies on when the genesis is gone or damaged.
    fn establish<'e>(&mut self, entries: impl Iterator<Item = &'e Entry> + Clone) {
        if self.lines.is_known() {
            return;
        }
        let mut candidates = Vec::new();
        for entry in entries.clone().take(8) {
            if entry.seq == 0 {
                candidates.push(KeyLine::Branch { epoch: entry.epoch });
            }
            candidates.push(KeyLine::Branch { epoch: entry.epoch });
            candidates.push(KeyLine::Shared);
            if let Some(previous) = entry.epoch.checked_sub(1) {
                candidates.push(KeyLine::Branch { epoch: previous });
            }
        }
        candidates.dedup();
        for line in candidates {
            if entries
                .clone()
                .take(8)
                .any(|entry| self.verifies_on(entry, line))
            {
                self.lines.switches.push((0, line));
                return;
            }
        }
        // Nothing verifies: the line the first entry suggests, so that the
        // findings name what is wrong entry by entry.
        if let Some(first) = entries.clone().next() {
            self.lines
                .switches
                .push((0, KeyLine::Branch { epoch: first.epoch }));
        }
    }

    /// The keys a batch needs, and each entry's choice, in stored order.
    pub(crate) fn for_batch(&mut self, entries: &[Entry]) -> BatchKeys {
        self.for_batch_of(entries.iter())
    }

    /// [`TrailKeys::for_batch`] for entries held in something else.
    pub(crate) fn for_batch_of<'e>(
        &mut self,
        entries: impl ExactSizeIterator<Item = &'e Entry> + Clone,
    ) -> BatchKeys {
        self.establish(entries.clone());
        let mut batch = BatchKeys {
            choices: Vec::with_capacity(entries.len()),
            ..BatchKeys::default()
        };
        for entry in entries {
            let choice = self.choose(entry, &mut batch);
            batch.choices.push(choice);
            self.follow_rotation(entry);
        }
        batch
    }

    fn choose(&mut self, entry: &Entry, batch: &mut BatchKeys) -> KeyChoice {
        if !self.keys.contains_key(&entry.key_id) {
            return KeyChoice::UnknownKey;
        }
        if entry.epoch > self.epoch_limit {
            return KeyChoice::BeyondClock;
        }
        let Some(line) = self.lines.line_at(entry.seq) else {
            return KeyChoice::BeforeLine;
        };
        if let Some(index) = batch.ids.iter().position(|(id, known_line, epoch)| {
            *epoch == entry.epoch && *known_line == line && *id == entry.key_id
        }) {
            return KeyChoice::Key {
                version: line.format(),
                index,
            };
        }
        match self.key(&entry.key_id, line, entry.epoch) {
            Some(key) => {
                batch.keys.push(key);
                batch.ids.push((entry.key_id.clone(), line, entry.epoch));
                KeyChoice::Key {
                    version: line.format(),
                    index: batch.keys.len() - 1,
                }
            }
            None => KeyChoice::BeforeLine,
        }
    }

    /// A rotation to format 2 moves the trail onto its own branch from the
    /// next entry on, if the rotation itself verifies on the line it ends.
    fn follow_rotation(&mut self, entry: &Entry) {
        if entry.kind != EntryKind::KeyRotation || entry.value(rotation_fields::FORMAT) != Some("2")
        {
            return;
        }
        let Some(line @ KeyLine::Shared) = self.lines.line_at(entry.seq) else {
            return;
        };
        if self.verifies_on(entry, line)
            && !self
                .lines
                .switches
                .iter()
                .any(|(first, _)| *first == entry.seq + 1)
        {
            let at = self
                .lines
                .switches
                .partition_point(|(first, _)| *first <= entry.seq);
            self.lines
                .switches
                .insert(at, (entry.seq + 1, KeyLine::Branch { epoch: entry.epoch }));
        }
    }
}
