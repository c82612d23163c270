//! Time checks: an entry's timestamp against the entry before it, the
//! epoch it was sealed in, the verifier's clock and the checkpoints.

use super::TrailVerification;
use crate::model::{Entry, EntryKind, format_timestamp};
use crate::seal::{EpochSchedule, KeyLine};
use crate::verify::report::FindingKind;

impl TrailVerification<'_> {
    /// Time checks: order along the trail, the epoch the time puts the
    /// entry in, and no time after the verifier's clock or a checkpoint
    /// that covers the entry.
    pub(super) fn check_time(&mut self, entry: &Entry, seq: u64) {
        let mut problems = Vec::new();
        if let Some(previous) = self
            .previous
            .filter(|p| p.mac.is_some() && p.seq + 1 == seq)
        {
            if entry.recorded_at < previous.recorded_at {
                problems.push(format!(
                    "is before the entry before it ({})",
                    format_timestamp(previous.recorded_at)
                ));
            }
            if entry.epoch < previous.epoch {
                problems.push(format!(
                    "was sealed in epoch {}, before the entry before it (epoch {})",
                    entry.epoch, previous.epoch
                ));
            }
        }
        if let Some(schedule) = self.schedule_of(entry)
            && let Some(problem) = self.epoch_problem(&schedule, entry, seq)
        {
            problems.push(problem);
        }
        if !problems.is_empty() {
            self.finding(
                seq,
                None,
                FindingKind::Backdated,
                format!(
                    "the timestamp {} {}",
                    format_timestamp(entry.recorded_at),
                    problems.join(" and ")
                ),
            );
        }
        let skew = self.verifier.clock_skew;
        let mut future = Vec::new();
        if entry.recorded_at > self.verifier.now + skew {
            future.push(format!(
                "after the verifier's clock ({})",
                format_timestamp(self.verifier.now)
            ));
        }
        if let Some(checkpoint) = self
            .checkpoints
            .iter()
            .filter(|checkpoint| seq < checkpoint.next_seq)
            .find(|checkpoint| entry.recorded_at > checkpoint.time + skew)
        {
            future.push(format!(
                "after the checkpoint of {}, which already counts this entry",
                format_timestamp(checkpoint.time)
            ));
        }
        if !future.is_empty() {
            self.finding(
                seq,
                None,
                FindingKind::FutureDated,
                format!(
                    "the timestamp {} lies {}",
                    format_timestamp(entry.recorded_at),
                    future.join(" and ")
                ),
            );
        }
    }

    /// The schedule the entry's time is checked against.
    fn schedule_of(&self, entry: &Entry) -> Option<EpochSchedule> {
        self.schedule.or_else(|| {
            self.verifier
                .keys
                .get(&entry.key_id)
                .map(|key| *key.schedule())
        })
    }

    /// Whether the entry's epoch is the one its time and the trail's seals
    /// put it in (docs/FORMAT.md §8.1), and if not, why.
    fn epoch_problem(&self, schedule: &EpochSchedule, entry: &Entry, seq: u64) -> Option<String> {
        let time_epoch = schedule.epoch_of(entry.recorded_at);
        let format = self.keys.lines.line_at(seq).map_or(2, KeyLine::format);
        let in_place = match (format, entry.kind, time_epoch) {
            (_, _, None) => false,
            // Format 1: a seal after its epoch ended, anything else in its
            // epoch exactly.
            (1, EntryKind::EpochSeal, Some(t)) => t > entry.epoch,
            (1, _, Some(t)) => t == entry.epoch,
            // Format 2: a seal in or after its epoch (in it: the trail was
            // closed early); a genesis in its time's epoch or, after a
            // close, the next; anything else in its time's epoch, or in the
            // first unsealed one when a close sealed that.
            (_, EntryKind::EpochSeal, Some(t)) => t >= entry.epoch,
            (_, EntryKind::Genesis, Some(t)) => entry.epoch == t || entry.epoch == t + 1,
            (_, _, Some(t)) => entry.epoch == t.max(self.epochs.next_unsealed.unwrap_or(t)),
        };
        (!in_place).then(|| {
            format!(
                "lies outside epoch {} ({} to {})",
                entry.epoch,
                format_timestamp(schedule.start_of(entry.epoch)),
                format_timestamp(schedule.end_of(entry.epoch))
            )
        })
    }
}
