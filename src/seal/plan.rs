//! Planning what a writer appends: the position of the next entries, the
//! genesis, the epoch seals due, a rotation onto a trail's own chain, and
//! a seal that closes the current epoch. Shared by every way of writing a
//! trail, so that each seals it the same way.

use chrono::{DateTime, Utc};

use super::chain::{genesis_fields, rotation_fields, seal_body};
use super::{EntryDraft, EpochKey, KeyError, KeyLine, Registration, SealingKey};
use crate::model::{
    Body, Digest, Entry, EntryKind, EpochSummary, FORMAT_V1, FORMAT_V2, Head, Mac, body_commitment,
    format_timestamp, genesis_prev_mac, truncate_to_micros,
};

/// A body to seal as the next entry, with its commitment computed by the
/// caller (off the writer task).
pub(crate) struct Sealable {
    pub(crate) kind: EntryKind,
    pub(crate) body: Body,
    pub(crate) commitment: Digest,
}

impl Sealable {
    pub(crate) fn event(body: Body, commitment: Digest) -> Self {
        Self {
            kind: EntryKind::Event,
            body,
            commitment,
        }
    }
}

/// The oldest epoch of a trail that has no seal yet, judging by its head.
pub(crate) fn first_unsealed_epoch(head: &Head) -> u64 {
    if head.kind == EntryKind::EpochSeal {
        head.epoch + 1
    } else {
        head.epoch
    }
}

/// When the next entries after a trail's head are sealed, and in which epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NextPosition {
    pub(crate) time: DateTime<Utc>,
    /// The epoch the next entries are sealed in.
    pub(crate) epoch: u64,
    /// The epoch their time falls into: `epoch`, or the one before when the
    /// trail closed that one early.
    pub(crate) time_epoch: u64,
}

/// The timestamp and epoch of entries appended after `head` at `now`, on
/// the trail's key `line` (`None`: the trail is new).
///
/// Timestamps never go backwards along a trail, whatever the clocks of
/// several writers say. The epoch is the one the time falls into, unless
/// the trail has sealed that epoch already (it was closed early, at a
/// shutdown): then the entries go into the next one. A new trail starts no
/// earlier than the key's own chain.
pub(crate) fn next_position(
    key: &SealingKey,
    now: DateTime<Utc>,
    head: Option<Head>,
    line: Option<KeyLine>,
) -> Result<NextPosition, KeyError> {
    let schedule = *key.schedule();
    let mut time = truncate_to_micros(now);
    if let Some(head) = head {
        time = time.max(head.recorded_at);
    }
    let floor = match head {
        Some(head) => first_unsealed_epoch(&head),
        None => key.epoch(),
    };
    let time_epoch = schedule.epoch_of(time).ok_or(KeyError::BeforeGenesis)?;
    // Format 1 knows no early close: an entry lies in its epoch exactly.
    let ahead_allowed = if line == Some(KeyLine::Shared) { 0 } else { 1 };
    if floor > time_epoch + ahead_allowed {
        // Only a clock that went back gets here: move the time on rather
        // than seal an entry too far ahead of its own time.
        time = schedule.start_of(floor - ahead_allowed);
    }
    let time_epoch = schedule.epoch_of(time).ok_or(KeyError::BeforeGenesis)?;
    Ok(NextPosition {
        time,
        epoch: time_epoch.max(floor),
        time_epoch,
    })
}

/// The epoch whose [`EpochSummary`] the seals planned after `head` need: the
/// head's own epoch when a seal of it is planned (it ended, or the trail is
/// being closed in it) and it is not sealed yet. Earlier unsealed epochs
/// have no entries, so their summaries are empty.
pub(crate) fn summary_epoch(
    key: &SealingKey,
    trail: &str,
    head: Option<Head>,
    target: u64,
    close: bool,
) -> Option<u64> {
    let head = head?;
    let sealed_now = head.epoch < target || (close && head.epoch == target);
    let held = key.trail_epoch(trail).unwrap_or(u64::MAX);
    (head.kind != EntryKind::EpochSeal && sealed_now && head.epoch >= held).then_some(head.epoch)
}

/// The items sealed after `head`, an append still in flight, if that needs
/// nothing from the store: no epoch seal (whose body counts the stored
/// entries of its epoch), no rotation. Otherwise the items back.
pub(crate) fn plan_ahead(
    trail: &str,
    key: &SealingKey,
    now: DateTime<Utc>,
    head: &Head,
    items: Vec<Sealable>,
) -> Result<Result<Plan, Vec<Sealable>>, KeyError> {
    let line = key.trail_line(trail);
    let next = next_position(key, now, Some(*head), line)?;
    if next.epoch > first_unsealed_epoch(head) || !matches!(line, Some(KeyLine::Branch { .. })) {
        return Ok(Err(items));
    }
    let (line, keys) = key.trail_keys(trail, next.epoch, next.epoch)?;
    let mut chain = ChainCursor::after(trail, key.key_id(), Some(*head), items.len());
    let Some(epoch_key) = keys.last() else {
        return Err(KeyError::EpochGone {
            requested: next.epoch,
            held: key.epoch(),
        });
    };
    chain.push_all(line.format(), epoch_key, next.time, items);
    Ok(Ok(chain.finish(Some(head.seq))))
}

/// What to append after `head`: a genesis entry for a new trail, seals for
/// every finished epoch, then the items (moved into the entries, not
/// copied), and with `close` a seal of the current epoch made early. A
/// format 1 trail is moved onto its own key chain on the way: its pending
/// seals are made in format 1, then a key rotation entry, then the rest in
/// format 2. `None` if there is nothing to append. `summary` is that of
/// [`summary_epoch`] (empty when it is `None`).
///
/// Shared by the group-commit writer and by recording inside a caller's
/// transaction, so both seal a trail the same way.
pub(crate) fn plan_append(
    trail: &str,
    key: &SealingKey,
    next: NextPosition,
    head: Option<Head>,
    items: Vec<Sealable>,
    summary: &EpochSummary,
    close: bool,
) -> Result<Option<Plan>, KeyError> {
    let NextPosition {
        time,
        epoch: target,
        time_epoch,
    } = next;
    // A seal made within its own epoch closes it early; it cannot be made
    // before that epoch began.
    let close = close && items.is_empty() && target <= time_epoch;
    let mut chain = ChainCursor::after(trail, key.key_id(), head, items.len() + 2);
    let Some(head) = head else {
        if items.is_empty() {
            return Ok(None);
        }
        key.register(trail, Registration::New { epoch: target })?;
        let (line, keys) = key.trail_keys(trail, target, target)?;
        let event_key = keys.last().ok_or(KeyError::EpochGone {
            requested: target,
            held: key.epoch(),
        })?;
        chain.push(
            line.format(),
            event_key,
            time,
            EntryKind::Genesis,
            genesis_body(trail, key),
            None,
        );
        chain.push_all(line.format(), event_key, time, items);
        if close {
            chain.close(event_key, time, &EpochSummary::default());
        }
        return Ok(Some(chain.finish(None)));
    };
    let first_unsealed = first_unsealed_epoch(&head);
    let closing = close && first_unsealed <= target;
    if items.is_empty() && first_unsealed >= target && !closing {
        return Ok(None);
    }
    let line = key.trail_line(trail).ok_or_else(|| KeyError::NoTrailKey {
        trail: trail.to_owned(),
        needed: first_unsealed,
        held: key.epoch(),
    })?;
    let held = key.trail_epoch(trail).unwrap_or(target);
    if first_unsealed < held {
        tracing::error!(
            trail = %trail,
            epochs = ?(first_unsealed..held),
            "epochs cannot be sealed any more: their keys were destroyed; the verifier will report them"
        );
    }
    let from = first_unsealed.max(held).min(target);
    let (seal_format, seal_keys, event_key) = match line {
        KeyLine::Branch { .. } => {
            let (_, mut keys) = key.trail_keys(trail, from, target)?;
            let event_key = keys.pop().ok_or(KeyError::EpochGone {
                requested: target,
                held,
            })?;
            (FORMAT_V2, keys, event_key)
        }
        KeyLine::Shared => {
            let (mut keys, branch_key) = key.upgrade_keys(trail, from, target)?;
            let rotation_key = keys.pop().ok_or(KeyError::EpochGone {
                requested: target,
                held,
            })?;
            chain.seal_epochs(FORMAT_V1, &keys, time, head, summary);
            let body = rotation_body(key);
            chain.push(
                FORMAT_V1,
                &rotation_key,
                time,
                EntryKind::KeyRotation,
                body,
                None,
            );
            (FORMAT_V2, Vec::new(), branch_key)
        }
    };
    chain.seal_epochs(seal_format, &seal_keys, time, head, summary);
    chain.push_all(FORMAT_V2, &event_key, time, items);
    if closing {
        let stored = if head.epoch == target && head.kind != EntryKind::EpochSeal {
            *summary
        } else {
            EpochSummary::default()
        };
        chain.close(&event_key, time, &stored);
    }
    Ok(Some(chain.finish(Some(head.seq))))
}

pub(crate) fn genesis_body(trail: &str, key: &SealingKey) -> Body {
    let schedule = key.schedule();
    let mut body = Body::new();
    body.insert_public(genesis_fields::TRAIL, trail);
    body.insert_public(genesis_fields::KEY_CHECK, key.check_value().to_hex());
    body.insert_public(
        genesis_fields::KEY_GENESIS,
        format_timestamp(schedule.genesis()),
    );
    body.insert_public(
        genesis_fields::EPOCH_SECONDS,
        schedule.length_seconds().to_string(),
    );
    body.insert_public(genesis_fields::FORMAT, FORMAT_V2.to_string());
    body
}

/// The body of the rotation that moves a format 1 trail onto its own key
/// chain, branched off the same key at the rotation's epoch.
fn rotation_body(key: &SealingKey) -> Body {
    let mut body = Body::new();
    body.insert_public(rotation_fields::FORMAT, FORMAT_V2.to_string());
    body.insert_public(rotation_fields::KEY_ID, key.key_id());
    body.insert_public(rotation_fields::KEY_CHECK, key.check_value().to_hex());
    body
}

/// Sealed entries ready to append: genesis and epoch seals, then the
/// callers' items.
pub(crate) struct Plan {
    pub(crate) entries: Vec<Entry>,
    /// The seq of the head they were sealed after.
    pub(crate) after: Option<u64>,
    /// How many of the entries, at the end, are the callers' items.
    item_count: usize,
}

impl Plan {
    /// A plan of these entries, the last `item_count` of them the callers'
    /// items.
    pub(crate) fn new(entries: Vec<Entry>, after: Option<u64>, item_count: usize) -> Self {
        Self {
            entries,
            after,
            item_count,
        }
    }

    /// The callers' items, the last entries.
    pub(crate) fn items(&self) -> &[Entry] {
        let first_item = self.entries.len().saturating_sub(self.item_count);
        &self.entries[first_item..]
    }

    /// How many of the entries are the callers' items.
    pub(crate) fn item_count(&self) -> usize {
        self.item_count
    }

    /// Moves the sealing key on once the plan is committed: onto the
    /// trail's own chain if it holds a rotation, past every epoch it
    /// sealed, and the key's own chain to the plan's epoch.
    pub(crate) fn committed(&self, trail: &str, key: &SealingKey) -> Result<(), KeyError> {
        let Some(last) = self.entries.last() else {
            return Ok(());
        };
        if let Some(rotation) = self
            .entries
            .iter()
            .find(|entry| entry.kind == EntryKind::KeyRotation)
        {
            key.upgraded(trail, rotation.epoch)?;
        }
        key.set_trail_floor(trail, first_unsealed_epoch(&last.head()))?;
        let time_epoch = key.schedule().epoch_of(last.recorded_at);
        key.advance(time_epoch.unwrap_or_default())
    }

    /// The callers' items back, to seal again on another head; their bodies
    /// and commitments are moved, not copied.
    pub(crate) fn into_items(mut self) -> Vec<Sealable> {
        let first_item = self.entries.len().saturating_sub(self.item_count);
        self.entries
            .drain(first_item..)
            .map(|entry| Sealable {
                kind: entry.kind,
                body: entry.body,
                commitment: entry.body_commitment,
            })
            .collect()
    }
}

/// Appends sealed entries one after another, linking each to the last.
struct ChainCursor<'a> {
    trail: &'a str,
    key_id: &'a str,
    next_seq: u64,
    prev_mac: Mac,
    entries: Vec<Entry>,
    item_count: usize,
    /// What was pushed into the newest epoch, for a seal that closes it.
    pushed: EpochSummary,
}

impl<'a> ChainCursor<'a> {
    fn after(trail: &'a str, key_id: &'a str, head: Option<Head>, capacity: usize) -> Self {
        Self {
            trail,
            key_id,
            next_seq: head.map_or(0, |head| head.seq + 1),
            prev_mac: head.map_or_else(|| genesis_prev_mac(trail), |head| head.mac),
            entries: Vec::with_capacity(capacity),
            item_count: 0,
            pushed: EpochSummary::default(),
        }
    }

    fn push(
        &mut self,
        version: u8,
        key: &EpochKey,
        time: DateTime<Utc>,
        kind: EntryKind,
        body: Body,
        commitment: Option<Digest>,
    ) {
        let commitment = commitment.unwrap_or_else(|| body_commitment(&body));
        let draft = EntryDraft {
            trail: self.trail.to_owned(),
            seq: self.next_seq,
            epoch: key.epoch(),
            key_id: self.key_id.to_owned(),
            recorded_at: time,
            kind,
            body,
            prev_mac: self.prev_mac,
        };
        let entry = draft.seal_with(version, key, commitment);
        self.next_seq += 1;
        self.prev_mac = entry.mac;
        if kind != EntryKind::EpochSeal {
            self.pushed.add(kind, time);
        }
        self.entries.push(entry);
    }

    /// Seals of the epochs of `keys`, each after the entries before it; the
    /// first counts what `summary` says of the head's epoch, when it is the
    /// head's epoch that it seals.
    fn seal_epochs(
        &mut self,
        version: u8,
        keys: &[EpochKey],
        time: DateTime<Utc>,
        head: Head,
        summary: &EpochSummary,
    ) {
        for epoch_key in keys {
            let sealed = if head.kind != EntryKind::EpochSeal && head.epoch == epoch_key.epoch() {
                *summary
            } else {
                EpochSummary::default()
            };
            let last_seq = self.next_seq.saturating_sub(1);
            let body = seal_body(
                version,
                epoch_key.epoch(),
                &sealed,
                last_seq,
                &self.prev_mac,
            );
            self.push(version, epoch_key, time, EntryKind::EpochSeal, body, None);
        }
        self.pushed = EpochSummary::default();
    }

    /// The seal of the current epoch, made before it ends: `stored` is what
    /// the store holds of the epoch, to which what this plan pushed adds.
    fn close(&mut self, key: &EpochKey, time: DateTime<Utc>, stored: &EpochSummary) {
        let mut summary = *stored;
        summary.merge(&self.pushed);
        let last_seq = self.next_seq.saturating_sub(1);
        let body = seal_body(FORMAT_V2, key.epoch(), &summary, last_seq, &self.prev_mac);
        self.push(FORMAT_V2, key, time, EntryKind::EpochSeal, body, None);
    }

    /// The callers' items, last in the plan but for a closing seal.
    fn push_all(&mut self, version: u8, key: &EpochKey, time: DateTime<Utc>, items: Vec<Sealable>) {
        self.item_count = items.len();
        for item in items {
            self.push(
                version,
                key,
                time,
                item.kind,
                item.body,
                Some(item.commitment),
            );
        }
    }

    fn finish(self, after: Option<u64>) -> Plan {
        Plan {
            entries: self.entries,
            after,
            item_count: self.item_count,
        }
    }
}
