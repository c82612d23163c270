//! Times as the format keeps them: whole microseconds, UTC.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// Truncates a time to whole microseconds, the precision every backend keeps.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// A span of the public API as the runtime's timers take it: at least
/// `floor`, so that a negative or zero interval cannot spin.
pub(crate) fn timer_interval(span: TimeDelta, floor: std::time::Duration) -> std::time::Duration {
    span.to_std().unwrap_or_default().max(floor)
}

/// The canonical text form of a timestamp inside a body:
/// RFC 3339, UTC, exactly six fractional digits, `Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
