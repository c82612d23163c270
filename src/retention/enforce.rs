//! Retention runs on a [`Trail`]: what a policy lets expire is deleted and
//! what it makes due is erased, except where a legal hold stands, now or
//! in the background.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;

use super::hold::LegalHold;
use super::policy::{RetentionFacts, RetentionPolicy};
use super::read_all;
use super::record::{PrunedRange, RedactedRange, RedactionRecord, RetentionRecord, push_redacted};
use super::snapshot::Snapshotter;
use crate::Result;
use crate::model::{Entry, EntryKind, Field, Snapshot, SnapshotRef, timer_interval};
use crate::store::Query;
use crate::write::Trail;

/// The most entries one deleted range (and so one delete statement) holds,
/// so that a run never locks the trail's table for long.
pub const MAX_PRUNED_RANGE: u64 = 2_000;

/// Pause between two deletes of a run, so that writers waiting for the
/// store's write lock (SQLite has one per file) get it in between.
const PAUSE_BETWEEN_DELETES: std::time::Duration = std::time::Duration::from_millis(2);

/// What one retention run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionRun {
    /// Seq of the sealed retention record, if anything expired.
    pub record_seq: Option<u64>,
    /// The ranges the record names.
    pub ranges: Vec<PrunedRange>,
    /// Entries deleted.
    pub deleted: u64,
    /// Expired entries kept because a legal hold covers them.
    pub held: u64,
    /// Seq of the sealed redaction record, if fields were due for erasure.
    pub redaction_seq: Option<u64>,
    /// Entries whose personal fields were erased.
    pub redacted: u64,
}

impl Trail {
    /// Runs retention now (by the trail's clock); see
    /// [`Trail::enforce_retention_at`].
    pub async fn enforce_retention(&self, policy: &dyn RetentionPolicy) -> Result<RetentionRun> {
        self.enforce_retention_at(policy, self.clock().now()).await
    }

    /// Deletes the events that `policy` lets expire by `now` and erases the
    /// personal fields it says are due, except where a legal hold in force
    /// covers them.
    ///
    /// Before deleting, one sealed retention record names every deleted
    /// range with its boundary MACs, the policy and the cutoff (no deleted
    /// entry is younger than `now` minus the policy's minimum age); before
    /// erasing, one sealed redaction record names the entries and fields.
    /// Ranges hold at most [`MAX_PRUNED_RANGE`] entries and each is deleted
    /// in its own short transaction, so the trail stays writable during a
    /// run. Epoch seals, the genesis and the trail's records are never
    /// deleted.
    ///
    /// A range within the time range of an active hold is kept whether or
    /// not the hold has a filter: the verifier can hold a deletion against
    /// a time range, not against values that are gone.
    pub async fn enforce_retention_at(
        &self,
        policy: &dyn RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<RetentionRun> {
        self.enforce_retention_with(policy, now, &[]).await
    }

    /// [`Trail::enforce_retention_at`], keeping the state of `projections`
    /// first: before anything is deleted, each one's state over the whole
    /// trail so far is stored as a [`Snapshot`] (from its previous
    /// snapshot plus the entries after it), and the retention record
    /// commits to each snapshot's digest. Replay then starts from the
    /// newest snapshot ([`crate::retention::resume`]), and the verifier
    /// checks the snapshots against the records.
    pub async fn enforce_retention_with(
        &self,
        policy: &dyn RetentionPolicy,
        now: DateTime<Utc>,
        projections: &[&dyn Snapshotter],
    ) -> Result<RetentionRun> {
        let trail = self.name().to_owned();
        let book = self.holds().await?;
        let holds: Vec<LegalHold> = book.active(u64::MAX, now).cloned().collect();
        let facts = self.retention_facts().await?;
        let cutoff = before(now, policy.minimum_age());
        let horizon = before(now, policy.scan_horizon());

        let mut plan = RunPlan::default();
        let store = self.store().clone();
        let mut entries = store.scan(&trail, 0);
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            if entry.recorded_at > horizon {
                break;
            }
            plan.consider(&entry, policy, &facts, &holds, now, cutoff);
        }
        drop(entries);
        plan.close_range();

        let mut run = RetentionRun {
            held: plan.held,
            ..RetentionRun::default()
        };
        if !plan.ranges.is_empty() {
            let snapshots = self.keep_snapshots(projections).await?;
            let record = RetentionRecord {
                policy: policy.name(),
                run_at: now,
                cutoff,
                ranges: plan.ranges,
                snapshots,
            };
            let receipt = self
                .append_record(EntryKind::Retention, record.to_body())
                .await?;
            // A hold placed while this run was reading stands before the
            // record in the chain: its ranges stay, named but not deleted.
            let placed_meanwhile: Vec<LegalHold> = self
                .holds()
                .await?
                .active(receipt.seq, now)
                .filter(|hold| !holds.contains(hold))
                .cloned()
                .collect();
            for range in &record.ranges {
                let newly_held = placed_meanwhile
                    .iter()
                    .any(|hold| hold.meets_span(range.first_at, range.last_at));
                if !newly_held {
                    run.deleted += store.delete_events(&trail, range.first, range.last).await?;
                    // Let waiting writers take the store's write lock
                    // between two deletes.
                    tokio::time::sleep(PAUSE_BETWEEN_DELETES).await;
                }
            }
            run.record_seq = Some(receipt.seq);
            run.ranges = record.ranges;
        }
        if !plan.redactions.is_empty() {
            let record = RedactionRecord {
                reason: policy.name(),
                request: None,
                entries: plan.redactions,
            };
            let (seq, redacted) = self.redact(&record).await?;
            run.redaction_seq = Some(seq);
            run.redacted = redacted;
        }
        tracing::info!(
            trail = %trail,
            deleted = run.deleted,
            held = run.held,
            redacted = run.redacted,
            "retention run finished"
        );
        Ok(run)
    }

    /// Stores each projection's state over the trail up to its head.
    async fn keep_snapshots(&self, projections: &[&dyn Snapshotter]) -> Result<Vec<SnapshotRef>> {
        if projections.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store().as_ref();
        let Some(head) = store.head(self.name()).await? else {
            return Ok(Vec::new());
        };
        let mut references = Vec::with_capacity(projections.len());
        for projection in projections {
            let previous = store.snapshot(self.name(), projection.name(), None).await?;
            let state = projection
                .state(store, self.name(), previous.as_ref(), head.seq)
                .await?;
            let snapshot = Snapshot {
                trail: self.name().to_owned(),
                name: projection.name().to_owned(),
                upto_seq: head.seq,
                state,
            };
            store.put_snapshot(&snapshot).await?;
            references.push(snapshot.reference());
        }
        Ok(references)
    }

    /// Contract ends, folded from the trail's `contract.terminated` events.
    async fn retention_facts(&self) -> Result<RetentionFacts> {
        let mut facts = RetentionFacts::default();
        // A restricted termination still ends the contract.
        let query = Query::new()
            .trail(self.name())
            .kind(EntryKind::Event)
            .action("contract.terminated")
            .include_restricted();
        read_all(self.store().as_ref(), query, |entry| facts.apply(&entry)).await?;
        Ok(facts)
    }
}

/// Retention running in the background on one trail; stops when dropped.
#[derive(Debug)]
#[must_use = "the background retention stops when this handle is dropped"]
pub struct RetentionTask {
    handle: tokio::task::JoinHandle<()>,
}

impl RetentionTask {
    /// Stops the background runs. A run in progress stops where it is,
    /// which leaves the trail verifiable (see [`Trail::enforce_retention_at`]).
    pub fn stop(self) {
        self.handle.abort();
    }
}

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Trail {
    /// Runs [`Trail::enforce_retention`] now and then every `every`, on the
    /// current Tokio runtime, until the returned handle is dropped. A failed
    /// run is logged (`tracing`) and retried at the next tick.
    pub fn spawn_retention(
        &self,
        policy: Arc<dyn RetentionPolicy>,
        every: Duration,
    ) -> RetentionTask {
        let trail = self.clone();
        let every = timer_interval(every, std::time::Duration::from_millis(1));
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(err) = trail.enforce_retention(policy.as_ref()).await {
                    tracing::warn!(trail = %trail.name(), error = %err, "retention run failed; will retry");
                }
            }
        });
        RetentionTask { handle }
    }
}

/// What a run will delete and erase, gathered while scanning.
#[derive(Default)]
struct RunPlan {
    ranges: Vec<PrunedRange>,
    open: Option<PrunedRange>,
    held: u64,
    redactions: Vec<RedactedRange>,
}

impl RunPlan {
    fn consider(
        &mut self,
        entry: &Entry,
        policy: &dyn RetentionPolicy,
        facts: &RetentionFacts,
        holds: &[LegalHold],
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
    ) {
        if entry.kind != EntryKind::Event {
            self.close_range();
            return;
        }
        let expired = entry.recorded_at <= cutoff
            && policy
                .expires_at(entry, facts)
                .is_some_and(|expires| expires <= now);
        let in_held_time = holds
            .iter()
            .any(|hold| hold.trails.contains(&entry.trail) && hold.covers_time(entry.recorded_at));
        if expired && !in_held_time {
            self.extend_range(entry);
            return;
        }
        self.close_range();
        if expired {
            self.held += 1;
        }
        if holds.iter().any(|hold| hold.holds(entry)) {
            return;
        }
        let mut due: Vec<String> = policy
            .redactions(entry)
            .into_iter()
            .filter(|(name, at)| {
                *at <= now && matches!(entry.body.get(name), Some(Field::Personal { .. }))
            })
            .map(|(name, _)| name.to_owned())
            .collect();
        if !due.is_empty() {
            due.sort();
            due.dedup();
            push_redacted(&mut self.redactions, entry.seq, due);
        }
    }

    fn extend_range(&mut self, entry: &Entry) {
        if let Some(open) = &mut self.open
            && open.last + 1 == entry.seq
            && open.len() < MAX_PRUNED_RANGE
        {
            open.last = entry.seq;
            open.last_mac = entry.mac;
            open.last_at = entry.recorded_at;
            return;
        }
        self.close_range();
        self.open = Some(PrunedRange {
            first: entry.seq,
            last: entry.seq,
            before_mac: entry.prev_mac,
            last_mac: entry.mac,
            first_at: entry.recorded_at,
            last_at: entry.recorded_at,
        });
    }

    fn close_range(&mut self) {
        self.ranges.extend(self.open.take());
    }
}

/// `now` minus an age, or `now` itself for no age.
fn before(now: DateTime<Utc>, age: Option<Duration>) -> DateTime<Utc> {
    age.and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(now)
        .min(now)
}
