//! Retention: policies that let entries expire, legal holds that keep them,
//! pruning and redaction that leave the chain verifiable.
//!
//! Every step is recorded in the trail itself, as sealed entries:
//!
//! - `hold_placed` / `hold_released` ([`LegalHold`]) exempt a time range of
//!   the trails they name (optionally narrowed by tenant, actor, IP or
//!   target) from pruning and redaction;
//! - one `retention` record per run ([`RetentionRecord`]) names each deleted
//!   range with the MACs of its boundaries, the policy and the cutoff;
//! - one `redaction` record per erasure ([`RedactionRecord`]) names the
//!   entries and fields whose values and salts were erased;
//! - one `restriction` record per restriction of processing, or its lifting
//!   ([`RestrictionRecord`]), names the entries whose flag it sets.
//!
//! The verifier accepts a missing range only when a retention record covers
//! it exactly and its boundary MACs match the neighbours, refuses deletions
//! of entries younger than the cutoff or than its minimum retention, and
//! deletions within a hold in force; it flags erased fields no redaction
//! record names. See `docs/OPERATIONS.md` for running retention and
//! `docs/FORMAT.md` for the records' fields.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use chrono::{Duration, Utc};
//! use trailseal::retention::{LegalHold, MaxAge, RedactAfter};
//! use trailseal::{MemoryStore, SealingKey, Trail};
//!
//! let (key, _verification) = SealingKey::generate("k1", Utc::now() - Duration::days(1), 900)?;
//! let trail = Trail::open("web", Arc::new(MemoryStore::new()), Arc::new(key)).await?;
//!
//! // An abuse investigation: keep last week's web log for now.
//! let hold = LegalHold::new("case-4711", "abuse investigation", "police", ["web"],
//!                           Utc::now() - Duration::days(7));
//! trail.place_hold(&hold).await?;
//!
//! // Nightly: delete what is older than 7 days, anonymise IPs after 2 days.
//! let policy = RedactAfter::client_ip(MaxAge::days(7), Duration::days(2));
//! let run = trail.enforce_retention(&policy).await?;
//! println!("deleted {}, kept {} under hold", run.deleted, run.held);
//! # Ok(()) }
//! ```

mod enforce;
mod erasure;
mod hold;
mod policy;
mod record;
mod snapshot;

pub use crate::model::{Snapshot, SnapshotRef};
pub use enforce::{MAX_PRUNED_RANGE, RetentionRun, RetentionTask};
pub use erasure::ErasureRun;
pub use hold::{HoldBook, LegalHold, PlacedHold};
pub use policy::{
    ByAction, EndOfYearAfter, Forever, MaxAge, RedactAfter, RetentionFacts, RetentionPolicy,
    subject_of,
};
pub use record::{
    PrunedRange, RedactedRange, RedactionRecord, RestrictedRange, RestrictionRecord,
    RetentionRecord,
};
pub use snapshot::{Keep, Snapshotter, resume};

use crate::Result;
use crate::model::Entry;
use crate::store::{Query, Store};

/// Page size of the reads of holds, contract ends and a subject's entries.
const READ_PAGE: usize = 1_000;

/// Reads every page of a query, oldest first.
async fn read_all(store: &dyn Store, query: Query, mut each: impl FnMut(Entry)) -> Result<()> {
    let mut query = query.limit(READ_PAGE);
    loop {
        let page = store.query(&query).await?;
        for entry in page.entries {
            each(entry);
        }
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return Ok(()),
        }
    }
}
