//! The group-commit writer: back-pressure, fail-closed batches, conflicts
//! between writers, shutdown.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::TimeDelta;
use support::{EPOCH_SECONDS, TRAIL, sample_event, start_time};
use tokio::task::JoinHandle;
use trailseal::retention::Snapshot;
use trailseal::{
    Entry, EntryKind, Error, ManualClock, MemoryStore, Receipt, SealingKey, Store, StoreError,
    Trail, TrailReport, VerificationKey, Verifier,
    model::{EpochSummary, Head},
    store::{EntryStream, Erasure, PreviousAppend},
};

/// A MemoryStore whose appends can be held back or made to fail, to drive
/// the writer into the situations under test.
#[derive(Clone)]
struct Controlled {
    inner: MemoryStore,
    gate: Arc<tokio::sync::Semaphore>,
    fail_next: Arc<AtomicBool>,
    appends: Arc<AtomicUsize>,
    /// Batches handed over with `append_pipelined`, waiting or not.
    handed: Arc<AtomicUsize>,
}

impl Controlled {
    fn open() -> Self {
        Self {
            inner: MemoryStore::new(),
            gate: Arc::new(tokio::sync::Semaphore::new(1_000_000)),
            fail_next: Arc::default(),
            appends: Arc::default(),
            handed: Arc::default(),
        }
    }

    /// Holds every append back and records events 1 and 2 on `trail`, each
    /// in a batch of its own: the first batch waits in its append, the
    /// second was handed to the store behind it. Appends go on once the
    /// permit is dropped.
    async fn hold_two_batches(
        &self,
        trail: &Trail,
    ) -> (
        tokio::sync::OwnedSemaphorePermit,
        JoinHandle<trailseal::Result<Receipt>>,
        JoinHandle<trailseal::Result<Receipt>>,
    ) {
        let handed_before = self.handed.load(Ordering::SeqCst);
        let held = self
            .gate
            .clone()
            .acquire_many_owned(1_000_000)
            .await
            .unwrap();
        let first = spawn_record(trail, 1);
        self.wait_until_handed(handed_before + 1).await;
        let second = spawn_record(trail, 2);
        self.wait_until_handed(handed_before + 2).await;
        (held, first, second)
    }

    /// Waits until `count` batches in all were handed to the store: the
    /// writer sealed them and holds them there while appends are held back.
    async fn wait_until_handed(&self, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.handed.load(Ordering::SeqCst) < count {
            assert!(
                std::time::Instant::now() < deadline,
                "{count} batches handed to the store"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

#[async_trait]
impl Store for Controlled {
    async fn head(&self, trail: &str) -> Result<Option<Head>, StoreError> {
        self.inner.head(trail).await
    }
    async fn append(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|err| StoreError::Database(Box::new(err)))?;
        self.appends.fetch_add(1, Ordering::SeqCst);
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Database("disk full".into()));
        }
        self.inner.append(trail, after, entries).await
    }
    async fn append_pipelined(
        &self,
        trail: &str,
        after: Option<u64>,
        entries: &[Entry],
        previous: PreviousAppend,
    ) -> Result<bool, StoreError> {
        self.handed.fetch_add(1, Ordering::SeqCst);
        previous.follow(self.append(trail, after, entries)).await
    }
    async fn epoch_summary(&self, trail: &str, epoch: u64) -> Result<EpochSummary, StoreError> {
        self.inner.epoch_summary(trail, epoch).await
    }
    fn scan<'a>(&'a self, trail: &'a str, from: u64) -> EntryStream<'a> {
        self.inner.scan(trail, from)
    }
    async fn trails(&self) -> Result<Vec<String>, StoreError> {
        self.inner.trails().await
    }
    async fn delete_events(&self, trail: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        self.inner.delete_events(trail, first, last).await
    }
    async fn erase_fields(&self, trail: &str, erasures: &[Erasure]) -> Result<u64, StoreError> {
        self.inner.erase_fields(trail, erasures).await
    }
    async fn restrict(
        &self,
        trail: &str,
        seqs: &[u64],
        restricted: bool,
    ) -> Result<u64, StoreError> {
        self.inner.restrict(trail, seqs, restricted).await
    }
    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.put_snapshot(snapshot).await
    }
    async fn snapshot(
        &self,
        trail: &str,
        name: &str,
        upto_seq: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot(trail, name, upto_seq).await
    }
}

/// Records event `i` on a task of its own, so that the test goes on while
/// the writer holds it.
fn spawn_record(trail: &Trail, i: usize) -> JoinHandle<trailseal::Result<Receipt>> {
    let trail = trail.clone();
    tokio::spawn(async move { trail.record(sample_event(i)).await })
}

/// Verifies the trail in `store`, asserts it intact and returns the report.
async fn assert_intact(store: &dyn Store, verification: VerificationKey) -> TrailReport {
    let report = Verifier::new(verification)
        .verify_trail(store, TRAIL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    report
}

/// A trail on a [`Controlled`] store, holding its genesis and event 0.
async fn trail_with_one_event() -> (Controlled, Trail, VerificationKey) {
    let store = Controlled::open();
    let (sealing, verification) = keys();
    let trail = Trail::open(TRAIL, Arc::new(store.clone()), sealing)
        .await
        .unwrap();
    trail.record(sample_event(0)).await.unwrap();
    (store, trail, verification)
}

/// Keys for writers on the system clock.
fn keys() -> (Arc<SealingKey>, trailseal::VerificationKey) {
    let genesis = chrono::Utc::now() - TimeDelta::hours(1);
    let (sealing, verification) = SealingKey::generate("k1", genesis, EPOCH_SECONDS).unwrap();
    (Arc::new(sealing), verification)
}

#[tokio::test]
async fn full_queue_is_a_typed_backpressure_error() {
    let store = Controlled::open();
    let (sealing, _) = keys();
    let trail = Trail::builder(TRAIL, Arc::new(store.clone()), sealing)
        .queue_capacity(2)
        .max_batch(1)
        .start()
        .await
        .unwrap();
    // Hold every append back: the writer takes one event and blocks in the
    // store, takes the next to seal while that append runs, two more wait
    // in the queue, the next one is refused at once.
    let (held, appending, sealed_behind) = store.hold_two_batches(&trail).await;
    // Polled once, a call is in the queue and waits for its receipt.
    let mut queued = [3, 4].map(|i| Box::pin(trail.record(sample_event(i))));
    for call in &mut queued {
        assert!(futures_util::poll!(call.as_mut()).is_pending());
    }
    let refused = trail.record(sample_event(9)).await.unwrap_err();
    assert!(
        matches!(refused, Error::Backpressure { capacity: 2, .. }),
        "{refused}"
    );
    drop(held);
    for call in [appending, sealed_behind] {
        call.await.unwrap().unwrap();
    }
    for call in queued {
        call.await.unwrap();
    }
    // Genesis + the four accepted events; the refused one is not there.
    assert_eq!(store.inner.dump(TRAIL).len(), 5);
}

#[tokio::test]
async fn failed_append_fails_every_event_of_the_batch_and_stores_none() {
    let (store, trail, verification) = trail_with_one_event().await;
    let before = store.inner.dump(TRAIL).len();

    let held = store.gate.acquire_many(1_000_000).await.unwrap();
    store.fail_next.store(true, Ordering::SeqCst);
    let calls: Vec<_> = (1..=5).map(|i| spawn_record(&trail, i)).collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(held);
    let mut failed = 0;
    for call in calls {
        match call.await.unwrap() {
            Err(Error::Store(_)) => failed += 1,
            Ok(_) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(failed >= 1, "the failing append failed its callers");
    let stored = store.inner.dump(TRAIL).len();
    assert_eq!(
        stored,
        before + 5 - failed,
        "exactly the acknowledged events are stored"
    );

    // The writer recovers and the trail is intact.
    trail.record(sample_event(6)).await.unwrap();
    assert_intact(&store.inner, verification).await;
}

#[tokio::test]
async fn a_batch_sealed_behind_a_failing_append_is_sealed_again_on_the_stored_head() {
    let (store, trail, verification) = trail_with_one_event().await;

    // The first batch blocks in the store; the writer seals the second
    // after the head the first would leave, while waiting for it.
    let (held, failing, behind) = store.hold_two_batches(&trail).await;
    let appends_before = store.appends.load(Ordering::SeqCst);
    store.fail_next.store(true, Ordering::SeqCst);
    drop(held);

    let err = failing.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    let receipt = behind.await.unwrap().unwrap();
    assert_eq!(receipt.seq, 2, "sealed again right after the stored head");
    assert_eq!(
        store.appends.load(Ordering::SeqCst) - appends_before,
        2,
        "the failed append and one append of the second batch: never one on the head that was not stored"
    );
    assert_eq!(store.inner.dump(TRAIL).len(), 3);
    assert_intact(&store.inner, verification).await;
}

#[tokio::test]
async fn the_next_batch_is_handed_to_the_store_while_the_one_before_is_appended() {
    let (store, trail, verification) = trail_with_one_event().await;
    let (handed_before, appends_before) = (
        store.handed.load(Ordering::SeqCst),
        store.appends.load(Ordering::SeqCst),
    );

    let (held, first, second) = store.hold_two_batches(&trail).await;
    // The first batch is blocked in its append, the second is with the
    // store already, waiting for the first to commit.
    assert_eq!(store.handed.load(Ordering::SeqCst) - handed_before, 2);
    assert_eq!(store.appends.load(Ordering::SeqCst), appends_before);
    assert_eq!(store.inner.dump(TRAIL).len(), 2, "genesis and event 0");
    drop(held);

    assert_eq!(first.await.unwrap().unwrap().seq, 2);
    assert_eq!(second.await.unwrap().unwrap().seq, 3);
    assert_eq!(
        store.appends.load(Ordering::SeqCst) - appends_before,
        2,
        "each batch appended once, the second on the head the first left"
    );
    assert_intact(&store.inner, verification).await;
}

#[tokio::test]
async fn a_conflict_under_an_append_in_flight_reseals_both_batches_on_the_new_head() {
    let dir = tempfile::tempdir().unwrap();
    let (first_key, _) =
        SealingKey::create_files(dir.path(), "k1", start_time(), EPOCH_SECONDS).unwrap();
    let copy = dir.path().join("copy.key");
    std::fs::copy(dir.path().join("sealing.key"), &copy).unwrap();
    let second_key = SealingKey::open(&copy).unwrap();
    let verification =
        trailseal::VerificationKey::load(dir.path().join("verification.key")).unwrap();
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Controlled::open();
    let first = Trail::builder(TRAIL, Arc::new(store.clone()), Arc::new(first_key))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    first.record(sample_event(0)).await.unwrap();
    let second = Trail::builder(TRAIL, Arc::new(store.inner.clone()), Arc::new(second_key))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();

    let (held, in_flight, behind) = store.hold_two_batches(&first).await;
    // Another process takes the seq the first batch was sealed for.
    assert_eq!(second.record(sample_event(3)).await.unwrap().seq, 2);
    let appends_before = store.appends.load(Ordering::SeqCst);
    drop(held);

    assert_eq!(in_flight.await.unwrap().unwrap().seq, 3);
    assert_eq!(behind.await.unwrap().unwrap().seq, 4);
    assert_eq!(
        store.appends.load(Ordering::SeqCst) - appends_before,
        3,
        "the conflicting append, its retry and one append of the second batch"
    );
    let report = assert_intact(&store.inner, verification).await;
    assert_eq!(report.entries, 5);
}

#[tokio::test]
async fn two_writers_on_one_trail_make_one_chain_with_one_seal_per_epoch() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(start_time());
    // Each writer holds its own copy of the sealing key, as two processes do.
    let dir = tempfile::tempdir().unwrap();
    let (first_key, _) =
        SealingKey::create_files(dir.path(), "k1", start_time(), EPOCH_SECONDS).unwrap();
    let copy = dir.path().join("copy.key");
    std::fs::copy(dir.path().join("sealing.key"), &copy).unwrap();
    let second_key = SealingKey::open(&copy).unwrap();
    let verification =
        trailseal::VerificationKey::load(dir.path().join("verification.key")).unwrap();
    let mut writers = Vec::new();
    for key in [first_key, second_key] {
        writers.push(
            Trail::builder(TRAIL, Arc::new(store.clone()), Arc::new(key))
                .clock(Arc::new(clock.clone()))
                .start()
                .await
                .unwrap(),
        );
    }
    let mut receipts = Vec::new();
    for round in 0..6 {
        let calls: Vec<_> = (0..40).map(|i| spawn_record(&writers[i % 2], i)).collect();
        for call in calls {
            receipts.push(call.await.unwrap().unwrap().seq);
        }
        clock.advance(TimeDelta::minutes(10));
        if round % 2 == 1 {
            for writer in &writers {
                writer.seal_finished_epochs().await.unwrap();
            }
        }
    }
    receipts.sort_unstable();
    receipts.dedup();
    assert_eq!(
        receipts.len(),
        240,
        "every acknowledged event has its own seq"
    );

    let entries = store.dump(TRAIL);
    let mut sealed: Vec<u64> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::EpochSeal)
        .map(|e| e.epoch)
        .collect();
    let count = sealed.len();
    sealed.dedup();
    assert_eq!(sealed.len(), count, "no epoch sealed twice");
    assert_eq!(
        sealed,
        (0..sealed.len() as u64).collect::<Vec<_>>(),
        "every finished epoch sealed"
    );
    let report = assert_intact(&store, verification).await;
    assert_eq!(report.entries, entries.len() as u64);
}

#[tokio::test]
async fn shutdown_commits_everything_accepted_before_it() {
    let store = MemoryStore::new();
    let (sealing, verification) = keys();
    let trail = Trail::open(TRAIL, Arc::new(store.clone()), sealing)
        .await
        .unwrap();
    let calls: Vec<_> = (0..200).map(|i| spawn_record(&trail, i)).collect();
    tokio::task::yield_now().await;
    let results: Vec<_> = futures_util::future::join_all(calls).await;
    trail.shutdown().await.unwrap();
    let acknowledged = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(acknowledged, 200);
    // The genesis, the events, and the seal that closes the epoch.
    let stored = store.dump(TRAIL);
    assert_eq!(stored.len(), 202);
    assert_eq!(stored[201].kind, trailseal::EntryKind::EpochSeal);
    assert!(matches!(
        trail.record(sample_event(0)).await,
        Err(Error::Closed { .. })
    ));
    assert_intact(&store, verification).await;
}

#[tokio::test]
async fn invalid_events_are_refused_before_queueing() {
    let store = MemoryStore::new();
    let (sealing, _) = keys();
    let trail = Trail::open(TRAIL, Arc::new(store.clone()), sealing)
        .await
        .unwrap();
    let event = trailseal::Event::builder("database.create");
    let mut event = event
        .actor(trailseal::Actor::customer("kunde123"))
        .build()
        .unwrap();
    event.actor = None;
    let err = trail.record(event).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid(trailseal::event::ValidationError::MissingActor)
        ),
        "{err}"
    );
    // Metadata too long once canonical: refused alone and in a batch.
    let mut oversized = sample_event(1);
    oversized.metadata.insert(
        "note".into(),
        serde_json::Value::String("x".repeat(trailseal::event::MAX_METADATA_LEN)),
    );
    for err in [
        trail.record(oversized.clone()).await.unwrap_err(),
        trail
            .record_batch(vec![sample_event(2), oversized])
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::Invalid(trailseal::event::ValidationError::TooLong {
                    field: "metadata",
                    ..
                })
            ),
            "{err}"
        );
    }
    assert!(
        store.dump(TRAIL).is_empty(),
        "nothing written, not even a genesis"
    );
    assert!(
        Trail::open("Bad Name", Arc::new(store.clone()), keys().0)
            .await
            .is_err()
    );
}
