//! Whether an entry is what a key sealed, and as which seq: its MAC and
//! body commitment, checked in parallel, then the search for an authentic
//! entry stored under another seq than it was sealed as.

use super::TrailVerification;
use crate::model::{Entry, MacInput, body_commitment, genesis_prev_mac};
use crate::verify::key_lines::{BatchKeys, KeyChoice};

/// How far from the expected seq a renumbered entry is searched for.
const RENUMBER_SEARCH: u64 = 8;

/// The order-independent part of checking an entry, done in parallel.
#[derive(Clone, Copy, Debug)]
pub(super) enum Precheck {
    /// The entry names another trail.
    OtherTrail,
    /// No key with the entry's key id.
    UnknownKey,
    /// The entry claims an epoch no key can have been derived for yet.
    BeyondClock,
    /// MAC over the stored header, and body against its commitment.
    Checked { mac_ok: bool, body_ok: bool },
}

pub(super) fn precheck(
    trail: &str,
    entry: &Entry,
    choice: KeyChoice,
    keys: &BatchKeys,
) -> Precheck {
    // The MAC binds the trail name; an entry moved in from another trail
    // cannot verify here.
    if entry.trail != trail {
        return Precheck::OtherTrail;
    }
    let body_ok = || body_commitment(&entry.body) == entry.body_commitment;
    match choice {
        KeyChoice::UnknownKey => Precheck::UnknownKey,
        KeyChoice::BeyondClock => Precheck::BeyondClock,
        KeyChoice::BeforeLine => Precheck::Checked {
            mac_ok: false,
            body_ok: body_ok(),
        },
        KeyChoice::Key { version, index } => {
            let mac = keys.keys[index].mac(&MacInput {
                trail,
                ..entry.mac_input(version)
            });
            Precheck::Checked {
                mac_ok: mac == entry.mac,
                body_ok: body_ok(),
            }
        }
    }
}

/// How an entry's MAC turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// MAC and body commitment verify.
    Authentic,
    /// Sealed as another seq than it is stored under.
    Renumbered { stored: u64 },
    /// The MAC verifies but the body does not match its commitment.
    BodyModified,
    /// The MAC does not verify under any candidate seq.
    Unauthentic,
    /// No key with the entry's key id.
    UnknownKey,
    /// It claims an epoch beyond the verifier's clock.
    BeyondClock,
}

impl Status {
    pub(super) fn is_sealed(self) -> bool {
        matches!(self, Status::Authentic | Status::Renumbered { .. })
    }
}

impl TrailVerification<'_> {
    /// Decides whether the entry is what some key sealed, and as which seq.
    pub(super) fn authenticate(&mut self, entry: &Entry, precheck: Precheck) -> (Status, u64) {
        match precheck {
            Precheck::OtherTrail => return (Status::Unauthentic, entry.seq),
            Precheck::UnknownKey => return (Status::UnknownKey, entry.seq),
            Precheck::BeyondClock => return (Status::BeyondClock, entry.seq),
            Precheck::Checked {
                mac_ok: true,
                body_ok,
            } => {
                return if body_ok {
                    self.report.authentic += 1;
                    (Status::Authentic, entry.seq)
                } else {
                    (Status::BodyModified, entry.seq)
                };
            }
            Precheck::Checked { mac_ok: false, .. } => {}
        }
        // Maybe an authentic entry moved to another seq (rows swapped or
        // renumbered): try the seq its link names, then the neighbourhood.
        let linked = if entry.prev_mac == genesis_prev_mac(&self.trail) {
            Some(0)
        } else {
            self.known_macs.get(&entry.prev_mac).map(|seq| seq + 1)
        };
        let around = self
            .next_seq
            .max(entry.seq.min(self.next_seq + RENUMBER_SEARCH));
        let window = around.saturating_sub(RENUMBER_SEARCH)..=around + RENUMBER_SEARCH;
        for candidate in linked.into_iter().chain(window) {
            if candidate == entry.seq {
                continue;
            }
            let Some(line) = self.keys.lines.line_at(candidate) else {
                continue;
            };
            if self.keys.mac_on(entry, candidate, line) == Some(entry.mac)
                && body_commitment(&entry.body) == entry.body_commitment
            {
                self.report.authentic += 1;
                return (Status::Renumbered { stored: entry.seq }, candidate);
            }
        }
        (Status::Unauthentic, entry.seq)
    }
}
