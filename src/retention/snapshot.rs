//! Projection snapshots across retention: the state of a projection over
//! a trail's entries up to a seq, kept before those entries are deleted and
//! committed in the retention record, so replay can start from it.

use std::marker::PhantomData;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::RetentionRecord;
use crate::model::{EntryKind, Snapshot};
use crate::read::{Projection, Replayed};
use crate::store::{Query, Store};
use crate::{Error, Result, StoreError};

/// Domain separation of snapshot digests.
/// A projection whose state retention keeps before it deletes entries.
///
/// Register it with [`Trail::enforce_retention_with`](crate::Trail::enforce_retention_with).
#[async_trait]
pub trait Snapshotter: Send + Sync {
    /// The projection's stable name.
    fn name(&self) -> &str;

    /// The serialised state over the trail's entries `0..=upto_seq`:
    /// `previous` (this projection's newest snapshot, if any) plus the
    /// entries after it, read from `store`.
    async fn state(
        &self,
        store: &dyn Store,
        trail: &str,
        previous: Option<&Snapshot>,
        upto_seq: u64,
    ) -> Result<String, StoreError>;
}

/// Keeps a serialisable [`Projection`] (such as
/// [`ResourceInventory`](crate::read::ResourceInventory) or
/// [`LoginHistory`](crate::read::LoginHistory)) across retention, as JSON.
///
/// ```
/// use trailseal::read::ResourceInventory;
/// use trailseal::retention::Keep;
///
/// let inventory = Keep::<ResourceInventory>::new("inventory");
/// // trail.enforce_retention_with(&policy, now, &[&inventory]).await?;
/// // let (inventory, _) = trailseal::retention::resume::<ResourceInventory>(store, "admin", "inventory").await?;
/// # let _ = inventory;
/// ```
pub struct Keep<P> {
    name: String,
    projection: PhantomData<fn() -> P>,
}

impl<P> Keep<P> {
    /// Keeps the projection under this stable name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            projection: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for Keep<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keep").field("name", &self.name).finish()
    }
}

#[async_trait]
impl<P> Snapshotter for Keep<P>
where
    P: Projection + Default + Serialize + DeserializeOwned + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn state(
        &self,
        store: &dyn Store,
        trail: &str,
        previous: Option<&Snapshot>,
        upto_seq: u64,
    ) -> std::result::Result<String, StoreError> {
        let mut projection: P = match previous {
            Some(snapshot) => {
                serde_json::from_str(&snapshot.state).map_err(|err| StoreError::Corrupt {
                    trail: trail.to_owned(),
                    seq: snapshot.upto_seq,
                    reason: format!("the snapshot of {} cannot be read: {err}", self.name),
                })?
            }
            None => P::default(),
        };
        let from = previous.map_or(0, |snapshot| snapshot.upto_seq + 1);
        replay_until(store, trail, from, upto_seq, &mut projection).await?;
        serde_json::to_string(&projection).map_err(|err| StoreError::Corrupt {
            trail: trail.to_owned(),
            seq: upto_seq,
            reason: format!("the state of {} cannot be written: {err}", self.name),
        })
    }
}

/// Replays entries `from..=upto_seq`.
async fn replay_until<P: Projection + ?Sized>(
    store: &dyn Store,
    trail: &str,
    from: u64,
    upto_seq: u64,
    projection: &mut P,
) -> std::result::Result<(), StoreError> {
    let mut entries = store.scan(trail, from);
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        if entry.seq > upto_seq {
            break;
        }
        projection.apply(&entry);
    }
    Ok(())
}

/// Rebuilds a projection kept with [`Keep`] after retention deleted part of
/// its history: the newest snapshot named `name`, checked against the
/// retention record that commits to it, plus the entries after it. Without
/// a snapshot, replays the whole trail.
pub async fn resume<P>(store: &dyn Store, trail: &str, name: &str) -> Result<(P, Replayed)>
where
    P: Projection + Default + DeserializeOwned,
{
    let Some(snapshot) = store.snapshot(trail, name, None).await? else {
        let mut projection = P::default();
        let replayed = crate::read::replay(store, trail, &mut projection).await?;
        return Ok((projection, replayed));
    };
    let mismatch = |reason: &str| Error::SnapshotMismatch {
        trail: trail.to_owned(),
        name: crate::model::escape_text(name).into_owned(),
        upto_seq: snapshot.upto_seq,
        reason: reason.to_owned(),
    };
    if !committed_by_a_record(store, &snapshot).await? {
        return Err(mismatch("no retention record commits to it"));
    }
    let mut projection: P = serde_json::from_str(&snapshot.state)
        .map_err(|err| mismatch(&format!("it cannot be read: {err}")))?;
    let replayed =
        crate::read::replay_from(store, trail, snapshot.upto_seq + 1, &mut projection).await?;
    Ok((projection, replayed))
}

/// Whether a retention record of the trail states this snapshot's digest.
async fn committed_by_a_record(
    store: &dyn Store,
    snapshot: &Snapshot,
) -> std::result::Result<bool, StoreError> {
    let reference = snapshot.reference();
    let mut query = Query::new()
        .trail(snapshot.trail.as_str())
        .kind(EntryKind::Retention)
        .newest_first()
        .limit(100);
    loop {
        let page = store.query(&query).await?;
        let found = page
            .entries
            .iter()
            .filter_map(RetentionRecord::from_entry)
            .any(|record| record.snapshots.contains(&reference));
        if found {
            return Ok(true);
        }
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return Ok(false),
        }
    }
}
