//! The format's nouns, at the bottom of the crate: entries and their
//! bodies, digests and commitments, trail names, times, text escaping,
//! snapshots and clocks. Nothing here imports anything above it.

mod clock;
mod commitment;
mod digest;
mod encoding;
mod entry;
mod epoch;
mod error;
mod names;
mod snapshot;
mod text;
mod time;

pub use clock::{Clock, MAX_CLOCK_SKEW, ManualClock, SystemClock};
pub(crate) use commitment::{Absorb, Staged};
pub use commitment::{body_commitment, encode_body, field_commitment};
pub use digest::{Digest, Mac, Salt};
pub(crate) use encoding::{EVOLVE_DOMAIN, KEY_CHECK_DOMAIN, TRAIL_KEY_DOMAIN};
pub use encoding::{FORMAT_V1, FORMAT_V2, FORMAT_VERSION, MacInput, genesis_prev_mac};
#[cfg(test)]
pub(crate) use entry::EVENT_FIELD_NAMES;
pub use entry::{Body, Entry, EntryKind, Field, Head};
pub use epoch::{EpochSummary, counts_in_epoch};
pub use error::FormatError;
pub use names::{MAX_TRAIL_NAME_LEN, validate_trail_name};
pub use snapshot::{Snapshot, SnapshotRef};
pub use text::escape_text;
pub(crate) use text::{escape_text_within, is_dangerous};
pub(crate) use time::timer_interval;
pub use time::{format_timestamp, truncate_to_micros};
