//! Projection snapshots across retention: the state of a projection over
//! a trail's entries up to a seq, kept before those entries are deleted and
//! committed in the retention record, so replay can start from it.

use std::marker::PhantomData;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::record::RetentionRecord;
use crate::entry::EntryKind;
use crate::projection::{Projection, Replayed};
use crate::seal::Digest;
use crate::store::{Query, Store};
use crate::{Error, Result, StoreError};

/// Domain separation of snapshot digests.
const SNAPSHOT_DOMAIN: &[u8] = b"trailseal-snapshot-v1";

/// A projection's state over a trail's entries `0..=upto_seq`, serialised
/// (e.g. JSON) by the projection itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The trail.
    pub trail: String,
    /// The projection's stable name.
    pub name: String,
    /// The last seq the state covers.
    pub upto_seq: u64,
    /// The serialised state.
    pub state: String,
}

impl Snapshot {
    /// `SHA-256(domain ‖ len ‖ trail ‖ len ‖ name ‖ upto_seq ‖ len ‖ state)`,
    /// lengths and the seq as 8-byte big-endian: what a retention record
    /// commits to.
    pub fn digest(&self) -> Digest {
        let mut hash = Sha256::new();
        hash.update(SNAPSHOT_DOMAIN);
        for part in [self.trail.as_bytes(), self.name.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(self.upto_seq.to_be_bytes());
        hash.update((self.state.len() as u64).to_be_bytes());
        hash.update(self.state.as_bytes());
        Digest::from_bytes(hash.finalize().into())
    }

    /// What a retention record states about this snapshot.
    pub fn reference(&self) -> SnapshotRef {
        SnapshotRef {
            name: self.name.clone(),
            upto_seq: self.upto_seq,
            digest: self.digest(),
        }
    }
}

/// A snapshot as a retention record names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The projection's name.
    pub name: String,
    /// The last seq the state covers.
    pub upto_seq: u64,
    /// [`Snapshot::digest`].
    pub digest: Digest,
}

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
/// [`ResourceInventory`](crate::ResourceInventory) or
/// [`LoginHistory`](crate::LoginHistory)) across retention, as JSON.
///
/// ```
/// use trailseal::ResourceInventory;
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
        let replayed = crate::projection::replay(store, trail, &mut projection).await?;
        return Ok((projection, replayed));
    };
    let mismatch = |reason: &str| Error::SnapshotMismatch {
        trail: trail.to_owned(),
        name: crate::event::escape_text(name).into_owned(),
        upto_seq: snapshot.upto_seq,
        reason: reason.to_owned(),
    };
    if !committed_by_a_record(store, &snapshot).await? {
        return Err(mismatch("no retention record commits to it"));
    }
    let mut projection: P = serde_json::from_str(&snapshot.state)
        .map_err(|err| mismatch(&format!("it cannot be read: {err}")))?;
    let replayed =
        crate::projection::replay_from(store, trail, snapshot.upto_seq + 1, &mut projection)
            .await?;
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
