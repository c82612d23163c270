//! Seq order: the slot each entry waits in until its turn, entries stored
//! out of order or far from their place, duplicates, forks and forged
//! entries that arrive after their seq was checked, and gaps.

use std::collections::btree_map;

use super::authenticity::Status;
use super::{Item, Slot, TrailVerification};
use crate::model::{Mac, body_commitment};
use crate::verify::report::FindingKind;

impl TrailVerification<'_> {
    /// Puts an entry whose status is known into its slot (or reports it
    /// as late), with the findings its place calls for.
    pub(super) fn place(&mut self, item: Item) {
        let Item {
            status, identity, ..
        } = item;
        if status.is_sealed() {
            self.known_macs.insert(item.entry.mac, identity);
        }
        if let Status::Renumbered { stored } = status {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!("the entry sealed as seq {identity} is stored as seq {stored}"),
            );
        } else if status.is_sealed()
            && let Some(highest) = self.highest_arrived.filter(|&highest| identity < highest)
        {
            self.finding(
                identity,
                None,
                FindingKind::Reordered,
                format!("stored after seq {highest}, which follows it in the chain"),
            );
        }
        if status.is_sealed() {
            self.highest_arrived = Some(self.highest_arrived.map_or(identity, |h| h.max(identity)));
        }
        if identity < self.next_seq {
            self.late_arrival(item);
            return;
        }
        match self.slots.entry(identity) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(Slot {
                    first: item,
                    more: Vec::new(),
                });
            }
            btree_map::Entry::Occupied(mut slot) => slot.get_mut().more.push(item),
        }
        self.buffered += 1;
    }

    /// The entry sealed as `seq` with MAC `mac` arrived: an orphan that
    /// names it as the entry before may be the entry sealed as `seq + 1`,
    /// stored far from its place.
    pub(super) fn adopt_orphan(&mut self, mac: Mac, seq: u64) {
        let Some(stored_at) = self.orphans.remove(&mac) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&stored_at) else {
            return;
        };
        let is_orphan =
            |item: &Item| item.status == Status::Unauthentic && item.entry.prev_mac == mac;
        let candidate = if is_orphan(&slot.first) {
            Some(&slot.first)
        } else {
            slot.more.iter().find(|item| is_orphan(item))
        };
        let Some(entry) = candidate.map(|item| item.entry.clone()) else {
            return;
        };
        let identity = seq + 1;
        let Some(line) = self.keys.lines.line_at(identity) else {
            return;
        };
        if self.keys.mac_on(&entry, identity, line) != Some(entry.mac)
            || body_commitment(&entry.body) != entry.body_commitment
        {
            return;
        }
        // It is: take it out of the slot it was stored in.
        let Some(mut slot) = self.slots.remove(&stored_at) else {
            return;
        };
        let item = if is_orphan(&slot.first) {
            let first = slot.first;
            if !slot.more.is_empty() {
                slot.first = slot.more.remove(0);
                self.slots.insert(stored_at, slot);
            }
            first
        } else {
            let at = slot.more.iter().position(is_orphan).unwrap_or(0);
            let item = slot.more.remove(at);
            self.slots.insert(stored_at, slot);
            item
        };
        self.buffered -= 1;
        self.report.authentic += 1;
        self.place(Item {
            status: Status::Renumbered {
                stored: item.entry.seq,
            },
            identity,
            entry: item.entry,
            mismatched_copies: item.mismatched_copies,
            restricted: item.restricted,
        });
    }

    /// An entry for a seq whose turn has passed: a duplicate, a fork or an
    /// inserted entry.
    fn late_arrival(&mut self, item: Item) {
        let seq = item.identity;
        let earlier = self
            .processed_macs
            .binary_search_by_key(&seq, |(processed, _)| *processed)
            .ok()
            .and_then(|at| self.processed_macs[at].1);
        self.second_entry(
            seq,
            &item,
            earlier,
            "an entry that no key sealed is stored in addition to this seq",
        );
    }

    /// An entry stored for `seq` beside the one that owns the seq (whose
    /// MAC is `owner_mac`, if it verified): the same entry again, a second
    /// sealed entry, or a forged one, which `forged` describes.
    pub(super) fn second_entry(
        &mut self,
        seq: u64,
        item: &Item,
        owner_mac: Option<Mac>,
        forged: &str,
    ) {
        match item.status {
            status if status.is_sealed() && owner_mac == Some(item.entry.mac) => self.finding(
                seq,
                None,
                FindingKind::Duplicated,
                "the same entry is stored a second time".into(),
            ),
            status if status.is_sealed() => self.finding(
                seq,
                None,
                FindingKind::Forked,
                "a second, different sealed entry claims this seq".into(),
            ),
            Status::UnknownKey => self.unknown_key(item),
            _ => self.finding(seq, None, FindingKind::Forged, forged.into()),
        }
    }

    /// Checks slots in seq order as far as it is safe to: a slot is checked
    /// once a later entry has arrived (so an inserted entry and the real one
    /// can be told apart), and a gap is declared missing once the reorder
    /// window is full or the stream ended.
    pub(super) fn drain(&mut self, finished: bool) {
        loop {
            let Some((&lowest, _)) = self.slots.first_key_value() else {
                return;
            };
            let later_arrived = self.slots.len() > 1;
            // Undecodable entries were reported already; their seqs are not
            // missing.
            while lowest > self.next_seq && self.undecodable.remove(&self.next_seq) {
                self.epochs.count_undecodable();
                self.next_seq += 1;
                self.previous = None;
            }
            if lowest > self.next_seq {
                if !finished && self.buffered < self.verifier.reorder_window {
                    return;
                }
                // Missing unless a retention record later in the trail
                // explains the gap.
                let before_mac = self
                    .previous
                    .filter(|previous| previous.seq + 1 == self.next_seq)
                    .and_then(|previous| previous.mac);
                self.ledger.open_gap(self.next_seq, lowest - 1, before_mac);
                self.next_seq = lowest;
                self.previous = None;
            }
            if !finished && !later_arrived && self.buffered < self.verifier.reorder_window {
                return;
            }
            // An orphan's slot waits for the entry it names as the one
            // before, which may show it moved, while the window allows.
            let waits = !finished
                && self.buffered < self.verifier.reorder_window
                && self.orphans.values().any(|&stored_at| stored_at == lowest);
            if waits {
                return;
            }
            let Some(slot) = self.slots.remove(&lowest) else {
                return;
            };
            self.orphans.retain(|_, stored_at| *stored_at != lowest);
            self.buffered -= 1 + slot.more.len();
            self.check_slot(lowest, slot);
            self.next_seq = lowest + 1;
        }
    }

    pub(super) fn forget_old(&mut self, seq: u64) {
        let window = self.verifier.reorder_window as u64;
        if let Some(cutoff) = seq.checked_sub(window) {
            while let Some(&(oldest, mac)) = self.processed_macs.front() {
                if oldest >= cutoff {
                    break;
                }
                self.processed_macs.pop_front();
                if let Some(mac) = mac {
                    self.known_macs.remove(&mac);
                }
            }
        }
    }
}
