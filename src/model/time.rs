//! Times as the format keeps them: whole microseconds, UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Truncates a time to whole microseconds, the precision every backend keeps.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The canonical text form of a timestamp inside a body:
/// RFC 3339, UTC, exactly six fractional digits, `Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
