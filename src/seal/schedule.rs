//! The epoch schedule: how time is cut into the epochs each key seals.

use chrono::{DateTime, TimeDelta, Utc};

use crate::KeyError;
use crate::model::format_timestamp;

/// Default epoch length: 15 minutes.
pub const DEFAULT_EPOCH_SECONDS: u64 = 15 * 60;

/// How time is cut into key epochs: epoch `e` covers
/// `[genesis + e·length, genesis + (e+1)·length)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    genesis: DateTime<Utc>,
    length_micros: i64,
}

impl EpochSchedule {
    /// A schedule starting at `genesis` with epochs of `length_seconds`.
    pub fn new(genesis: DateTime<Utc>, length_seconds: u64) -> Result<Self, KeyError> {
        let length_micros = i64::try_from(length_seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .filter(|&micros| micros > 0)
            .ok_or(KeyError::InvalidEpochLength(length_seconds))?;
        Ok(Self {
            genesis: crate::model::truncate_to_micros(genesis),
            length_micros,
        })
    }

    /// Start of epoch 0.
    pub fn genesis(&self) -> DateTime<Utc> {
        self.genesis
    }

    /// Epoch length in seconds.
    pub fn length_seconds(&self) -> u64 {
        (self.length_micros / 1_000_000) as u64
    }

    /// The epoch a time falls into, or `None` before genesis.
    pub fn epoch_of(&self, time: DateTime<Utc>) -> Option<u64> {
        let since = time
            .timestamp_micros()
            .checked_sub(self.genesis.timestamp_micros())?;
        u64::try_from(since.div_euclid(self.length_micros)).ok()
    }

    /// First instant of an epoch.
    pub fn start_of(&self, epoch: u64) -> DateTime<Utc> {
        let offset = i64::try_from(epoch)
            .ok()
            .and_then(|e| e.checked_mul(self.length_micros))
            .unwrap_or(i64::MAX / 2);
        self.genesis
            .checked_add_signed(TimeDelta::microseconds(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// First instant after an epoch.
    pub fn end_of(&self, epoch: u64) -> DateTime<Utc> {
        self.start_of(epoch.saturating_add(1))
    }
}

/// Human-readable summary of a key's schedule, for CLI output.
pub fn describe_schedule(schedule: &EpochSchedule) -> String {
    format!(
        "genesis {}, epochs of {} s",
        format_timestamp(schedule.genesis()),
        schedule.length_seconds()
    )
}
