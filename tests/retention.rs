//! Retention on every backend: a trail pruned daily over 30 simulated days,
//! with legal holds placed and released, IP anonymisation, an erasure
//! request and a restriction, verifies clean; tampering that imitates retention does not.
//!
//! Each scenario runs against `MemoryStore`, a real SQLite file and a real
//! PostgreSQL database. Tampering goes to the stored data itself: the
//! backend's own delete and erase, and raw SQL updates of a row's body.

use crate::pg;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::TryStreamExt;
use trailseal::retention::{
    EndOfYearAfter, LegalHold, MaxAge, RedactAfter, RetentionRecord, Snapshot, Snapshotter,
};
use trailseal::{
    Actor, Body, Entry, EntryKind, Event, Field, FindingKind, ManualClock, MemoryStore, SealingKey,
    SqliteStore, Store, Trail, TrailReport, VerificationKey, Verifier, model::Salt, store::Erasure,
};
use trailseal::{Clock, Subject, read::Projection};

const TRAIL: &str = "web";
/// One-hour epochs keep 30 days of seals small.
const EPOCH_SECONDS: u64 = 3600;

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap() + Duration::days(n)
}

/// Raw write access to a backend's stored rows, as an attacker has it.
#[async_trait]
trait Raw: Send + Sync {
    async fn set_body(&self, seq: u64, body: &Body);
}

struct RawMemory(MemoryStore);

#[async_trait]
impl Raw for RawMemory {
    async fn set_body(&self, seq: u64, body: &Body) {
        let mut entries = self.0.dump(TRAIL);
        let entry = entries.iter_mut().find(|e| e.seq == seq).unwrap();
        entry.body = body.clone();
        self.0.restore(TRAIL, entries);
    }
}

struct RawSqlite(sqlx::SqlitePool);

#[async_trait]
impl Raw for RawSqlite {
    async fn set_body(&self, seq: u64, body: &Body) {
        let done = sqlx::query("UPDATE entries SET body = ? WHERE trail = ? AND seq = ?")
            .bind(serde_json::to_string(body).unwrap())
            .bind(TRAIL)
            .bind(seq as i64)
            .execute(&self.0)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
}

struct RawPostgres(sqlx::PgPool);

#[async_trait]
impl Raw for RawPostgres {
    async fn set_body(&self, seq: u64, body: &Body) {
        let done = sqlx::query("UPDATE entries SET body = $1 WHERE trail = $2 AND seq = $3")
            .bind(serde_json::to_string(body).unwrap())
            .bind(TRAIL)
            .bind(seq as i64)
            .execute(&self.0)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
}

/// A fresh store of one backend, raw access to it, and what keeps it alive.
type Fresh = (Arc<dyn Store>, Box<dyn Raw>, Option<tempfile::TempDir>);

async fn memory() -> Fresh {
    let store = MemoryStore::new();
    (Arc::new(store.clone()), Box::new(RawMemory(store)), None)
}

async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (Arc::new(store), Box::new(RawSqlite(raw)), Some(dir))
}

async fn postgres() -> Fresh {
    let url = pg::fresh_database().await;
    let store = trailseal::PostgresStore::connect(&url).await.unwrap();
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    (Arc::new(store), Box::new(RawPostgres(raw)), None)
}

struct Setup {
    store: Arc<dyn Store>,
    raw: Box<dyn Raw>,
    clock: ManualClock,
    trail: Trail,
    verification: VerificationKey,
    _dir: Option<tempfile::TempDir>,
}

impl Setup {
    async fn new(fresh: Fresh) -> Self {
        let (store, raw, dir) = fresh;
        let clock = ManualClock::new(day(0));
        let (key, verification) = SealingKey::generate("k1", day(0), EPOCH_SECONDS).unwrap();
        let trail = Trail::builder(TRAIL, store.clone(), Arc::new(key))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .unwrap();
        Self {
            store,
            raw,
            clock,
            trail,
            verification,
            _dir: dir,
        }
    }

    /// Records `count` requests at `time`, spread over a few tenants.
    async fn record_at(&self, time: DateTime<Utc>, count: u32) {
        self.clock.set(time);
        let events = (0..count)
            .map(|n| {
                Event::builder("web.request")
                    .actor(Actor::customer(format!("user{}", n % 3)))
                    .tenant(format!("kunde{}", n % 4))
                    .target("domain", "example.org")
                    .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, (n % 200) as u8)))
                    .build()
                    .unwrap()
            })
            .collect();
        self.trail.record_batch(events).await.unwrap();
    }

    async fn entries(&self) -> Vec<Entry> {
        self.store.scan(TRAIL, 0).try_collect().await.unwrap()
    }

    /// A verifier as of the simulated clock's time.
    fn verifier(&self) -> Verifier {
        // A copy of the key, as an auditor receives it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verification.key");
        self.verification.save(&path).unwrap();
        Verifier::new(VerificationKey::load(&path).unwrap()).at(self.clock.now())
    }

    async fn verify(&self) -> TrailReport {
        self.trail.seal_finished_epochs().await.unwrap();
        self.verifier()
            .verify_trail(self.store.as_ref(), TRAIL)
            .await
            .unwrap()
    }

    /// A small pruned trail: 10 days of requests, pruned on day 9.
    async fn pruned(fresh: Fresh) -> Self {
        let setup = Self::new(fresh).await;
        for d in 0..10 {
            setup.record_at(day(d) + Duration::hours(10), 3).await;
        }
        setup.clock.set(day(9) + Duration::hours(22));
        let run = setup
            .trail
            .enforce_retention(&MaxAge::days(7))
            .await
            .unwrap();
        assert_eq!(run.deleted, 9, "days 0 to 2 expired");
        setup.record_at(day(9) + Duration::hours(23), 2).await;
        setup
    }
}

/// The seal of the epoch the entry at `seq` belongs to, which counts it.
fn next_seal(entries: &[Entry], seq: u64) -> u64 {
    entries
        .iter()
        .find(|e| e.seq > seq && e.kind == EntryKind::EpochSeal)
        .unwrap()
        .seq
}

fn findings(report: &TrailReport) -> Vec<(FindingKind, u64)> {
    report.findings.iter().map(|f| (f.kind, f.seq)).collect()
}

fn seqs_of(entries: &[Entry], kind: EntryKind) -> Vec<u64> {
    entries
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.seq)
        .collect()
}

async fn thirty_days_of_daily_pruning_verify_clean(fresh: Fresh) {
    let setup = Setup::new(fresh).await;
    let policy = RedactAfter::client_ip(MaxAge::days(7), Duration::days(2));
    let hold = LegalHold {
        until: Some(day(4)),
        tenant: Some("kunde1".into()),
        ..LegalHold::new(
            "case-4711",
            "abuse investigation",
            "police",
            [TRAIL],
            day(3),
        )
    };
    let mut total_pruned = 0;
    for d in 0..30 {
        for hour in [2, 9, 15, 21] {
            setup.record_at(day(d) + Duration::hours(hour), 4).await;
        }
        if d == 4 {
            assert!(setup.trail.holds().await.unwrap().is_empty());
            setup.trail.place_hold(&hold).await.unwrap();
            let book = setup.trail.holds().await.unwrap();
            assert_eq!((book.len(), book.is_empty()), (1, false));
        }
        if d == 15 {
            let erased = setup
                .trail
                .erase_subject(&Subject::new().tenant("kunde2"), "ticket-17")
                .await
                .unwrap();
            assert!(erased.erased > 0);
            assert!(erased.held.is_empty(), "kunde2 is not under the hold");
        }
        if d == 20 {
            // Before the release the held day is still there, and the
            // held tenant's IPs are not anonymised.
            let entries = setup.entries().await;
            let in_hold: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.kind == EntryKind::Event && hold.covers_time(e.recorded_at))
                .collect();
            assert_eq!(in_hold.len(), 16);
            for entry in in_hold {
                let tenant = entry.value("tenant");
                let ip_present = entry.value("context.ip").is_some();
                assert_eq!(ip_present, tenant == Some("kunde1"), "{tenant:?}");
            }
            setup
                .trail
                .release_hold("case-4711", "case closed")
                .await
                .unwrap();
            // A released hold is still in the book, no longer in force.
            let book = setup.trail.holds().await.unwrap();
            assert_eq!(book.len(), 1);
            assert_eq!(book.active(u64::MAX, setup.clock.now()).count(), 0);
        }
        setup.clock.set(day(d) + Duration::hours(23));
        let run = setup.trail.enforce_retention(&policy).await.unwrap();
        total_pruned += run.deleted;
        if (10..=20).contains(&d) {
            assert!(run.held == 0 || d < 21);
        }
    }
    let entries = setup.entries().await;
    // Nothing older than 7 days is left, and the 7 most recent days are.
    let events: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Event)
        .collect();
    let cutoff = day(29) + Duration::hours(23) - Duration::days(7);
    assert!(events.iter().all(|e| e.recorded_at > cutoff));
    assert_eq!(events.len(), 7 * 16);
    // IPs older than 2 days are anonymised to their network.
    for event in &events {
        let old = event.recorded_at < day(29) + Duration::hours(23) - Duration::days(2);
        assert_eq!(event.value("context.ip").is_none(), old);
        assert!(event.value("context.network").is_some());
    }
    // Runs from day 7 on delete a day each, except on day 10, when the
    // hold kept day 3 (deleted with day 13 after the release on day 20).
    assert_eq!(seqs_of(&entries, EntryKind::Retention).len(), 22);
    assert_eq!(seqs_of(&entries, EntryKind::HoldPlaced).len(), 1);
    assert_eq!(seqs_of(&entries, EntryKind::HoldReleased).len(), 1);

    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.pruned, total_pruned);
    assert_eq!(report.pruned, 30 * 16 - 7 * 16);
    assert!(report.redacted > 0);
    assert!(!report.pruned_ranges.is_empty());
}

async fn deleting_what_retention_would_not_is_missing(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    let entries = setup.entries().await;
    // Not the newest entry: cutting off the tail is truncation, which
    // only a checkpoint reveals.
    let young = entries
        .iter()
        .find(|e| e.kind == EntryKind::Event && e.recorded_at > day(8))
        .unwrap()
        .seq;
    let seal = next_seal(&entries, young);
    assert_eq!(
        setup
            .store
            .delete_events(TRAIL, young, young)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        findings(&setup.verify().await),
        vec![
            (FindingKind::Missing, young),
            (FindingKind::SealMismatch, seal)
        ]
    );
}

async fn deleting_a_held_entry_is_missing(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    let hold = LegalHold::new("case-1", "abuse", "police", [TRAIL], day(3));
    setup.trail.place_hold(&hold).await.unwrap();
    // Day 3 expires on day 10, but the hold keeps it.
    setup.clock.set(day(10) + Duration::hours(22));
    let run = setup
        .trail
        .enforce_retention(&MaxAge::days(7))
        .await
        .unwrap();
    assert_eq!((run.deleted, run.held), (0, 3));
    let held = setup
        .entries()
        .await
        .iter()
        .find(|e| e.kind == EntryKind::Event && e.recorded_at >= day(3))
        .unwrap()
        .seq;
    let seal = next_seal(&setup.entries().await, held);
    setup.store.delete_events(TRAIL, held, held).await.unwrap();
    assert_eq!(
        findings(&setup.verify().await),
        vec![
            (FindingKind::Missing, held),
            (FindingKind::SealMismatch, seal)
        ]
    );
}

async fn a_retention_record_forged_without_the_key_explains_nothing(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    setup.trail.shutdown().await.unwrap();
    let entries = setup.entries().await;
    let target = entries
        .iter()
        .rev()
        .find(|e| e.kind == EntryKind::Event)
        .unwrap()
        .clone();
    let before = &entries[entries.iter().position(|e| e.seq == target.seq).unwrap() - 1];
    // A record that claims the range, with everything right but the MAC.
    let record = RetentionRecord {
        policy: "max_age:604800s".into(),
        run_at: target.recorded_at + Duration::days(8),
        cutoff: target.recorded_at + Duration::days(1),
        ranges: vec![trailseal::retention::PrunedRange {
            first: target.seq,
            last: target.seq,
            before_mac: before.mac,
            last_mac: target.mac,
            first_at: target.recorded_at,
            last_at: target.recorded_at,
        }],
        snapshots: Vec::new(),
    };
    let head = entries.last().unwrap();
    let body = record_body(&record);
    let forged = Entry {
        seq: head.seq + 1,
        kind: EntryKind::Retention,
        body_commitment: trailseal::model::body_commitment(&body),
        body,
        prev_mac: head.mac,
        mac: trailseal::model::Mac::from_bytes([7; 32]),
        ..head.clone()
    };
    setup
        .store
        .append(TRAIL, Some(head.seq), &[forged])
        .await
        .unwrap();
    setup
        .store
        .delete_events(TRAIL, target.seq, target.seq)
        .await
        .unwrap();
    let report = setup
        .verifier()
        .verify_trail(setup.store.as_ref(), TRAIL)
        .await
        .unwrap();
    // The shutdown closed the target's epoch, so its seal counts it too.
    assert_eq!(
        findings(&report),
        vec![
            (FindingKind::Missing, target.seq),
            (FindingKind::SealMismatch, head.seq),
            (FindingKind::Modified, head.seq + 1)
        ]
    );
}

/// The body `Trail::enforce_retention` seals, as an attacker would write it.
fn record_body(record: &RetentionRecord) -> Body {
    let mut body = Body::new();
    body.insert_public(
        "retention.cutoff",
        trailseal::model::format_timestamp(record.cutoff),
    );
    body.insert_public("retention.deleted", record.deleted().to_string());
    body.insert_public("retention.policy", record.policy.clone());
    body.insert_public(
        "retention.ranges",
        serde_json::to_string(&record.ranges).unwrap(),
    );
    body.insert_public(
        "retention.run_at",
        trailseal::model::format_timestamp(record.run_at),
    );
    body
}

async fn a_field_erased_without_a_redaction_record_is_reported(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    let seq = setup
        .entries()
        .await
        .iter()
        .rev()
        .find(|e| e.kind == EntryKind::Event)
        .unwrap()
        .seq;
    let erasure = Erasure {
        seq,
        fields: vec!["actor.name".into()],
    };
    assert_eq!(
        setup.store.erase_fields(TRAIL, &[erasure]).await.unwrap(),
        1
    );
    let report = setup.verify().await;
    assert_eq!(
        findings(&report),
        vec![(FindingKind::UnrecordedRedaction, seq)]
    );
    assert!(report.findings[0].detail.contains("actor.name"));
}

async fn an_erased_field_restored_with_another_value_is_modified(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    let run = setup
        .trail
        .erase_subject(&Subject::new().tenant("kunde0"), "ticket-9")
        .await
        .unwrap();
    assert!(run.erased > 0);
    let intact = setup.verify().await;
    assert!(intact.is_intact(), "{intact}");
    let erased = setup
        .entries()
        .await
        .into_iter()
        .find(|e| matches!(e.body.get("tenant"), Some(Field::Redacted { .. })))
        .unwrap();
    let mut body = erased.body.clone();
    body.insert(
        "tenant",
        Field::Personal {
            value: "kunde999".into(),
            salt: Salt::from_bytes([9; 16]),
        },
    );
    setup.raw.set_body(erased.seq, &body).await;
    assert_eq!(
        findings(&setup.verify().await),
        vec![(FindingKind::Modified, erased.seq)]
    );
}

async fn a_record_made_with_a_stolen_key_cannot_delete_young_entries(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    // The thief holds today's key and runs "retention" with a 1-day age.
    setup
        .clock
        .set(day(9) + Duration::hours(23) + Duration::minutes(30));
    let run = setup
        .trail
        .enforce_retention(&MaxAge::days(1))
        .await
        .unwrap();
    assert!(run.deleted > 0);
    let report = setup.verify().await;
    let violations: Vec<(FindingKind, u64)> = findings(&report)
        .into_iter()
        .filter(|(kind, _)| *kind != FindingKind::RetentionViolation)
        .collect();
    assert!(violations.is_empty(), "{report}");
    assert_eq!(
        report.findings_of(FindingKind::RetentionViolation).count(),
        run.ranges.len(),
        "{report}"
    );
}

async fn background_retention_prunes_on_its_own(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    setup.clock.set(day(12));
    let task = setup
        .trail
        .spawn_retention(Arc::new(MaxAge::days(7)), Duration::milliseconds(10));
    let expired_left = |entries: Vec<Entry>| {
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Event && e.recorded_at < day(5))
            .count()
    };
    for _ in 0..500 {
        if expired_left(setup.entries().await) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.stop();
    let entries = setup.entries().await;
    assert_eq!(expired_left(entries.clone()), 0, "days 3 and 4 are gone");
    assert_eq!(seqs_of(&entries, EntryKind::Retention).len(), 2);
    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.pruned, 9 + 6);
}

async fn a_restricted_subject_is_hidden_from_queries_and_still_verified(fresh: Fresh) {
    let setup = Setup::pruned(fresh).await;
    let kunde1 = trailseal::Query::new()
        .trail(TRAIL)
        .tenant("kunde1")
        .limit(1000);
    let before = setup.store.query(&kunde1).await.unwrap().entries.len();
    assert!(before > 0);
    let subject = Subject::new().tenant("kunde1");
    let changed = setup.trail.restrict_subject(&subject, true).await.unwrap();
    assert_eq!(changed as usize, before);
    assert!(setup.store.query(&kunde1).await.unwrap().entries.is_empty());
    let all = trailseal::Query::new().trail(TRAIL).limit(1000);
    let visible = setup.store.query(&all).await.unwrap().entries;
    assert!(visible.iter().all(|e| e.value("tenant") != Some("kunde1")));
    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");
    let with_restricted = kunde1.clone().include_restricted();
    assert_eq!(
        setup
            .store
            .query(&with_restricted)
            .await
            .unwrap()
            .entries
            .len(),
        before
    );
    // A flag set without a sealed restriction record hides an entry from
    // queries: the verifier reports it.
    let other = visible
        .iter()
        .find(|e| e.kind == EntryKind::Event)
        .unwrap()
        .seq;
    assert_eq!(
        setup.store.restrict(TRAIL, &[other], true).await.unwrap(),
        1
    );
    let report = setup.verify().await;
    assert_eq!(findings(&report), [(FindingKind::ColumnMismatch, other)]);
    setup.store.restrict(TRAIL, &[other], false).await.unwrap();

    setup.trail.restrict_subject(&subject, false).await.unwrap();
    assert_eq!(
        setup.store.query(&kunde1).await.unwrap().entries.len(),
        before
    );
    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");
    // Both decisions are sealed in the trail.
    assert_eq!(
        seqs_of(&setup.entries().await, EntryKind::Restriction).len(),
        2
    );
}

async fn master_data_goes_at_the_end_of_the_year_after_the_contract(fresh: Fresh) {
    let (store, _raw, _dir) = fresh;
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let (key, verification) = SealingKey::generate("k1", start, 86_400).unwrap();
    let trail = Trail::builder("master-data", store.clone(), Arc::new(key))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let update = |customer: &str| {
        Event::builder("master_data.update")
            .actor(Actor::admin("support1"))
            .target("customer", customer)
            .build()
            .unwrap()
    };
    clock.set(Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap());
    trail.record(update("kunde1")).await.unwrap();
    trail.record(update("kunde2")).await.unwrap();
    clock.set(Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap());
    let terminated = Event::builder("contract.terminated")
        .actor(Actor::admin("support1"))
        .target("customer", "kunde1")
        .meta("ends_on", "2026-06-30")
        .build()
        .unwrap();
    trail.record(terminated).await.unwrap();

    let events = || async {
        let entries: Vec<Entry> = store.scan("master-data", 0).try_collect().await.unwrap();
        entries
            .into_iter()
            .filter(|e| e.kind == EntryKind::Event)
            .filter_map(|e| e.value("target.id").map(str::to_owned))
            .collect::<Vec<_>>()
    };
    // Still there on the last day of the following year …
    clock.set(Utc.with_ymd_and_hms(2027, 12, 31, 23, 0, 0).unwrap());
    let run = trail.enforce_retention(&EndOfYearAfter).await.unwrap();
    assert_eq!(run.deleted, 0);
    // … gone on the first day after it, restricted or not; the running
    // contract stays.
    let kunde1 = Subject::new().target("customer", "kunde1");
    assert_eq!(trail.restrict_subject(&kunde1, true).await.unwrap(), 2);
    clock.set(Utc.with_ymd_and_hms(2028, 1, 1, 1, 0, 0).unwrap());
    let run = trail.enforce_retention(&EndOfYearAfter).await.unwrap();
    assert_eq!(run.deleted, 2);
    assert_eq!(events().await, vec!["kunde2".to_owned()]);

    trail.seal_finished_epochs().await.unwrap();
    let report = Verifier::new(verification)
        .at(clock.now())
        .verify_trail(store.as_ref(), "master-data")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.pruned, 2);
}

/// Events per tenant: a projection whose state retention keeps.
struct EventsPerTenant;

impl EventsPerTenant {
    fn fold(counts: &mut std::collections::BTreeMap<String, u64>, entry: &Entry) {
        if entry.kind == EntryKind::Event {
            let tenant = entry.value("tenant").unwrap_or("(erased)").to_owned();
            *counts.entry(tenant).or_default() += 1;
        }
    }
}

#[async_trait]
impl Snapshotter for EventsPerTenant {
    fn name(&self) -> &str {
        "events-per-tenant"
    }

    async fn state(
        &self,
        store: &dyn Store,
        trail: &str,
        previous: Option<&Snapshot>,
        upto_seq: u64,
    ) -> Result<String, trailseal::StoreError> {
        let mut counts: std::collections::BTreeMap<String, u64> = match previous {
            Some(snapshot) => serde_json::from_str(&snapshot.state).unwrap(),
            None => Default::default(),
        };
        let from = previous.map_or(0, |snapshot| snapshot.upto_seq + 1);
        let entries: Vec<Entry> = store.scan(trail, from).try_collect().await?;
        for entry in entries.iter().filter(|e| e.seq <= upto_seq) {
            Self::fold(&mut counts, entry);
        }
        Ok(serde_json::to_string(&counts).unwrap())
    }
}

async fn snapshots_across_retention_equal_the_full_history(fresh: Fresh) {
    let setup = Setup::new(fresh).await;
    let mut full_history = std::collections::BTreeMap::new();
    for d in 0..30 {
        setup.record_at(day(d) + Duration::hours(9), 4).await;
        let now = day(d) + Duration::hours(23);
        setup.clock.set(now);
        setup
            .trail
            .enforce_retention_with(&MaxAge::days(7), now, &[&EventsPerTenant])
            .await
            .unwrap();
    }
    for entry in setup.entries().await {
        // What is still stored, plus what retention deleted, is everything.
        EventsPerTenant::fold(&mut full_history, &entry);
    }
    let newest = setup
        .store
        .snapshot(TRAIL, "events-per-tenant", None)
        .await
        .unwrap()
        .unwrap();
    let mut resumed: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(&newest.state).unwrap();
    let after: Vec<Entry> = setup
        .store
        .scan(TRAIL, newest.upto_seq + 1)
        .try_collect()
        .await
        .unwrap();
    for entry in &after {
        EventsPerTenant::fold(&mut resumed, entry);
    }
    let expected: std::collections::BTreeMap<String, u64> =
        (0..4).map(|n| (format!("kunde{n}"), 30)).collect();
    assert_eq!(resumed, expected);
    assert!(
        full_history.values().sum::<u64>() < 30 * 4,
        "retention did delete"
    );

    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.snapshots.len(), 23);
    assert!(report.snapshots.iter().all(|s| s.matches == Some(true)));

    // A snapshot changed in storage no longer matches its record.
    let forged = Snapshot {
        state: newest.state.replace("30", "31"),
        ..newest.clone()
    };
    setup.store.put_snapshot(&forged).await.unwrap();
    let report = setup.verify().await;
    let record = report
        .snapshots
        .iter()
        .find(|s| s.upto_seq == newest.upto_seq)
        .unwrap()
        .record;
    assert_eq!(
        findings(&report),
        vec![(FindingKind::SnapshotMismatch, record)]
    );
}

async fn the_inventory_after_30_days_of_pruning_equals_the_full_history(fresh: Fresh) {
    use trailseal::read::ResourceInventory;
    use trailseal::retention::{Keep, resume};

    let setup = Setup::new(fresh).await;
    let keep = Keep::<ResourceInventory>::new("inventory");
    let mut full_history = ResourceInventory::default();
    let mut seen = 0;
    for d in 0..30 {
        setup.clock.set(day(d) + Duration::hours(9));
        let events = (0..4u32)
            .map(|n| {
                let kind =
                    ["domain", "database", "mailbox", "ftp_account"][(d as usize + n as usize) % 4];
                let verb = if d % 5 == 4 && n == 0 {
                    "delete"
                } else {
                    "create"
                };
                let id = format!("{kind}-{}", (d as u32 * 4 + n) % 37);
                Event::builder(format!("{kind}.{verb}"))
                    .actor(Actor::customer(format!("kunde{n}")))
                    .tenant(format!("kunde{n}"))
                    .target(kind, id)
                    .build()
                    .unwrap()
            })
            .collect();
        setup.trail.record_batch(events).await.unwrap();
        // The full history, folded as it grows, before anything is deleted.
        for entry in setup
            .store
            .scan(TRAIL, seen)
            .try_collect::<Vec<Entry>>()
            .await
            .unwrap()
        {
            full_history.apply(&entry);
            seen = entry.seq + 1;
        }
        let now = day(d) + Duration::hours(23);
        setup.clock.set(now);
        setup
            .trail
            .enforce_retention_with(&MaxAge::days(7), now, &[&keep])
            .await
            .unwrap();
    }
    let (resumed, _) = resume::<ResourceInventory>(setup.store.as_ref(), TRAIL, "inventory")
        .await
        .unwrap();
    assert_eq!(resumed, full_history);
    let mut from_what_is_left = ResourceInventory::default();
    trailseal::read::replay(setup.store.as_ref(), TRAIL, &mut from_what_is_left)
        .await
        .unwrap();
    assert_ne!(from_what_is_left, full_history, "retention deleted history");
    let report = setup.verify().await;
    assert!(report.is_intact(), "{report}");

    // A snapshot no record commits to is refused.
    let newest = setup
        .store
        .snapshot(TRAIL, "inventory", None)
        .await
        .unwrap()
        .unwrap();
    let forged = Snapshot {
        upto_seq: newest.upto_seq + 1,
        ..newest
    };
    setup.store.put_snapshot(&forged).await.unwrap();
    let refused = resume::<ResourceInventory>(setup.store.as_ref(), TRAIL, "inventory").await;
    assert!(
        matches!(refused, Err(trailseal::Error::SnapshotMismatch { .. })),
        "{refused:?}"
    );
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::memory().await).await;
                }
            )*
        }
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_every_backend!(
    thirty_days_of_daily_pruning_verify_clean,
    deleting_what_retention_would_not_is_missing,
    deleting_a_held_entry_is_missing,
    a_retention_record_forged_without_the_key_explains_nothing,
    a_field_erased_without_a_redaction_record_is_reported,
    an_erased_field_restored_with_another_value_is_modified,
    a_record_made_with_a_stolen_key_cannot_delete_young_entries,
    background_retention_prunes_on_its_own,
    a_restricted_subject_is_hidden_from_queries_and_still_verified,
    master_data_goes_at_the_end_of_the_year_after_the_contract,
    snapshots_across_retention_equal_the_full_history,
    the_inventory_after_30_days_of_pruning_equals_the_full_history,
);
