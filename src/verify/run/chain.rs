//! The chain: each sealed entry's link to the entry before it, the genesis
//! that starts the trail, and the checkpoints that name its head.

use chrono::{DateTime, Utc};

use super::{Item, TrailVerification};
use crate::model::{
    Digest, Entry, EntryKind, Mac, escape_text, format_timestamp, genesis_prev_mac,
};
use crate::seal::{EpochSchedule, KeyLine, genesis_fields};
use crate::verify::report::FindingKind;

impl TrailVerification<'_> {
    /// Link, genesis and time checks of a sealed entry against the one
    /// before; whether it follows the entry before it.
    pub(super) fn check_chain(&mut self, item: &Item) -> bool {
        let entry = &item.entry;
        let seq = item.identity;
        if seq == 0 {
            self.check_genesis(entry);
        }
        let expected_prev = match self.previous {
            _ if seq == 0 => Some(genesis_prev_mac(&self.trail)),
            Some(previous) if previous.seq + 1 == seq => previous.mac,
            _ => {
                self.ledger.close_gap(seq, entry);
                None
            }
        };
        let linked = expected_prev.is_none_or(|mac| mac == entry.prev_mac);
        if !linked {
            self.finding(
                seq,
                None,
                FindingKind::Forked,
                "the entry does not follow the entry before it (its prev_mac names another entry)"
                    .into(),
            );
        }
        self.check_time(entry, seq);
        linked
    }

    /// An authentic seq 0 must be this trail's genesis, stating the key,
    /// schedule and format it was sealed with.
    fn check_genesis(&mut self, entry: &Entry) {
        let names_trail = entry.value(genesis_fields::TRAIL) == Some(self.trail.as_str());
        if entry.kind != EntryKind::Genesis || !names_trail {
            self.finding(
                0,
                None,
                FindingKind::InvalidGenesis,
                format!(
                    "seq 0 is a {} entry, not the genesis of this trail",
                    entry.kind
                ),
            );
            return;
        }
        let Some(key) = self.verifier.keys.get(&entry.key_id) else {
            return;
        };
        let mut problems = Vec::new();
        let line = self.keys.lines.line_at(0);
        let format_ok = match (entry.value(genesis_fields::FORMAT), line) {
            (Some("1"), Some(KeyLine::Shared)) => true,
            (Some("2"), Some(KeyLine::Branch { epoch })) => epoch == entry.epoch,
            _ => false,
        };
        if !format_ok {
            problems.push("does not state the format it is sealed in".to_owned());
        }
        match entry.value(genesis_fields::KEY_CHECK).map(Digest::from_hex) {
            Some(Ok(check)) if check == key.check_value() => {}
            Some(Ok(_)) => problems.push("states another key check than its key's".into()),
            _ => problems.push("states no key check".into()),
        }
        let stated = stated_schedule(entry);
        match stated {
            None => problems.push("states no valid key schedule".into()),
            Some(stated) if stated != *key.schedule() => {
                let describe = |schedule: &EpochSchedule| {
                    format!(
                        "genesis {}, epochs of {} s",
                        format_timestamp(schedule.genesis()),
                        schedule.length_seconds()
                    )
                };
                let detail = format!(
                    "the verification key {} states the schedule {}, but the trail was sealed with {}: the key file's schedule is wrong; times are checked against the trail's",
                    escape_text(key.key_id()),
                    describe(key.schedule()),
                    describe(&stated)
                );
                self.finding(0, None, FindingKind::KeyMismatch, detail);
                self.schedule = Some(stated);
            }
            Some(_) => {}
        }
        if !problems.is_empty() {
            self.finding(
                0,
                None,
                FindingKind::InvalidGenesis,
                format!("the genesis {}", problems.join(", ")),
            );
        }
        self.report.format = line.map(KeyLine::format);
    }

    /// Compares the entry checked at `seq` with the checkpoints naming it.
    pub(super) fn check_checkpoints(&mut self, seq: u64, mac: Option<Mac>) {
        let (matching, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checkpoints)
            .into_iter()
            .partition(|checkpoint| checkpoint.next_seq - 1 <= seq);
        self.checkpoints = rest;
        for checkpoint in matching {
            if checkpoint.next_seq - 1 == seq && mac == Some(checkpoint.head_mac) {
                self.report.checkpoints_verified += 1;
                continue;
            }
            let detail = format!(
                "the checkpoint of {} names another entry at seq {}: the trail was rolled back to an older copy or forked",
                format_timestamp(checkpoint.time),
                checkpoint.next_seq - 1
            );
            self.finding(
                checkpoint.next_seq - 1,
                None,
                FindingKind::CheckpointMismatch,
                detail,
            );
        }
    }
}

/// The key schedule a genesis states, if it states one in its one stored
/// form: the key's genesis as a body timestamp, the epoch length in plain
/// decimal.
fn stated_schedule(genesis: &Entry) -> Option<EpochSchedule> {
    let time_text = genesis.value(genesis_fields::KEY_GENESIS)?;
    let time = DateTime::parse_from_rfc3339(time_text)
        .ok()?
        .with_timezone(&Utc);
    let seconds_text = genesis.value(genesis_fields::EPOCH_SECONDS)?;
    let seconds: u64 = seconds_text.parse().ok()?;
    let canonical = format_timestamp(time) == time_text && seconds.to_string() == seconds_text;
    canonical
        .then(|| EpochSchedule::new(time, seconds).ok())
        .flatten()
}
