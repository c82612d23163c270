//! The conformance suite for trailseal's [`Store`] backends: what every
//! store must do, written once, run against `MemoryStore`, `SqliteStore`
//! and `PostgresStore` by trailseal's own tests, and ready for a backend
//! written elsewhere.
//!
//! Every function takes a fresh, empty store and checks behaviour through
//! the `Store` trait only, so it stays backend-neutral. A third-party
//! backend runs all of it with one macro call in an integration test (its
//! dev-dependencies need `tokio` with the `macros` and `rt-multi-thread`
//! features):
//!
//! ```ignore
//! use std::sync::Arc;
//! use trailseal::Store;
//!
//! /// A fresh, empty store, and whatever must live as long as the test.
//! async fn fresh() -> (Arc<dyn Store>, ()) {
//!     (Arc::new(MyStore::connect_to_a_new_database().await), ())
//! }
//!
//! trailseal_conformance::all_conformance_tests!(fresh());
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::TryStreamExt;
use trailseal::{
    Actor, Body, Entry, EntryKind, Event, Field, ManualClock, Query, SealingKey, Store, StoreError,
    Trail, Verifier,
    model::Snapshot,
    model::{Digest, Mac, Salt},
    store::{Cursor, PreviousAppend, StoredEntry},
};

/// Generates one `#[tokio::test]` per conformance function; `$fresh` is an
/// async expression giving `(Arc<dyn Store>, guard)` for a fresh store, the
/// guard kept alive for the test's duration.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $fresh.await;
                $crate::$name(store).await;
            }
        )*
    };
}

/// Runs every conformance function against fresh stores from `$fresh`.
#[macro_export]
macro_rules! all_conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!($fresh;
            empty_store_has_no_trails_and_no_head,
            every_field_round_trips_exactly,
            append_is_conditional_on_the_head,
            malformed_batches_are_refused,
            pipelined_append_follows_only_a_committed_append,
            empty_batch_stores_nothing,
            scan_streams_in_seq_order_from_any_seq,
            trails_are_independent_and_listed_in_order,
            epoch_summary_counts_one_epoch_without_seals,
            query_filters_match_the_reference,
            query_pages_cover_everything_once_in_both_orders,
            query_rejects_bad_page_sizes_and_cursors,
            recorded_trail_verifies_across_epochs,
            concurrent_writers_make_one_linear_chain,
            delete_events_removes_only_events_in_the_range,
            erase_fields_erases_values_and_their_query_copies,
            restricted_entries_are_left_out_of_queries_but_not_scans,
            snapshots_round_trip_and_the_newest_is_found,
        );
    };
}

/// The time of the first entry [`entries`] makes: a fixed date, so that
/// nothing depends on today.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

fn mac(byte: u8, seq: u64) -> Mac {
    let mut bytes = [byte; 32];
    bytes[..8].copy_from_slice(&seq.to_be_bytes());
    Mac::from_bytes(bytes)
}

fn salt(n: u8) -> Salt {
    Salt::from_bytes([n; 16])
}

/// An event body as the event model writes it, with the query fields set.
fn event_body(n: u64) -> Body {
    let tenants = ["kunde123", "kunde456", "kunde789"];
    let actions = ["database.create", "mailbox.login", "ftp.upload"];
    let mut body = Body::new();
    body.insert_public("action", actions[(n % 3) as usize]);
    body.insert_public("actor.kind", "customer");
    body.insert_personal("actor.name", format!("user{}", n % 4), salt(1));
    body.insert_personal("tenant", tenants[(n % 3) as usize], salt(2));
    body.insert_public(
        "target.type",
        if n.is_multiple_of(2) {
            "database"
        } else {
            "mailbox"
        },
    );
    body.insert_personal("target.id", format!("t{}", n % 5), salt(3));
    body.insert_public(
        "outcome",
        if n.is_multiple_of(7) {
            "failure"
        } else {
            "success"
        },
    );
    if n.is_multiple_of(7) {
        body.insert_personal("outcome.reason", "wrong password", salt(4));
    }
    body.insert_personal("context.ip", format!("192.0.2.{}", n % 6), salt(5));
    body.insert_public("context.request_id", format!("req-{}", n % 10));
    body
}

/// Entries `first..first + count` of a trail, with made-up MACs (stores do
/// not check MACs) and one entry per `step` of time.
pub fn entries(trail: &str, first: u64, count: u64, step: TimeDelta) -> Vec<Entry> {
    (first..first + count)
        .map(|seq| Entry {
            trail: trail.to_owned(),
            seq,
            epoch: seq / 10,
            key_id: "k1".to_owned(),
            recorded_at: start() + step * seq as i32,
            kind: if seq == 0 {
                EntryKind::Genesis
            } else {
                EntryKind::Event
            },
            body: event_body(seq),
            prev_mac: mac(1, seq),
            body_commitment: Digest::from_bytes([seq as u8; 32]),
            mac: mac(2, seq),
        })
        .collect()
}

async fn scan_all(store: &dyn Store, trail: &str, from: u64) -> Vec<Entry> {
    store.scan(trail, from).try_collect().await.unwrap()
}

async fn scan_stored_all(store: &dyn Store, trail: &str) -> Vec<StoredEntry> {
    store.scan_stored(trail, 0).try_collect().await.unwrap()
}

/// A new store lists no trail and has no head, and scans to nothing.
pub async fn empty_store_has_no_trails_and_no_head(store: Arc<dyn Store>) {
    assert_eq!(store.trails().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.head("admin").await.unwrap(), None);
    assert!(scan_all(&*store, "admin", 0).await.is_empty());
    let summary = store.epoch_summary("admin", 0).await.unwrap();
    assert_eq!(summary.count, 0);
    assert_eq!(summary.first_at, None);
    let page = store.query(&Query::new()).await.unwrap();
    assert!(page.entries.is_empty());
    assert_eq!(page.next, None);
}

/// Every field of every kind of entry comes back exactly as appended.
pub async fn every_field_round_trips_exactly(store: Arc<dyn Store>) {
    let unusual = [
        "kunde123",
        "Grüße aus Köln – ß, ẞ, Ǆ",
        "日本語のメール 📬 👩‍💻",
        "שלום \u{202E}evil\u{202C}",
        "a\u{0}b\u{1b}[31m\r\n\t\u{7f}",
        "\u{FEFF}\u{200B}\u{2028}\u{2029}",
        "e\u{301}\u{301}\u{301}",
        "\"quoted\" \\ {json} [array] 'sql'); DROP TABLE entries;--",
        "",
    ];
    let long = "x".repeat(70_000);
    let times = [
        Utc.timestamp_micros(0).unwrap(),
        Utc.timestamp_micros(1_764_403_200_123_457).unwrap(),
        Utc.timestamp_micros(-1).unwrap(),
        Utc.timestamp_micros(-62_135_596_800_000_000).unwrap(),
        Utc.timestamp_micros(253_402_300_799_999_999).unwrap(),
    ];
    let mut entries = Vec::new();
    let mut prev = mac(0, 0);
    for (seq, kind) in EntryKind::ALL.into_iter().cycle().take(24).enumerate() {
        let seq = seq as u64;
        let mut body = Body::new();
        for (i, value) in unusual.iter().enumerate() {
            body.insert_public(format!("public.{i}"), *value);
            body.insert_personal(format!("personal.{i} ✓"), *value, salt(i as u8));
        }
        body.insert(
            "erased",
            Field::Redacted {
                commitment: Digest::from_bytes([0xab; 32]),
            },
        );
        body.insert_public("long", long.as_str());
        body.insert_personal("tenant", unusual[(seq % 9) as usize], salt(9));
        let entry = Entry {
            trail: "round-trip_1".to_owned(),
            seq,
            epoch: seq * 1_000_003,
            key_id: format!("ts-20261129-{seq:08x}"),
            recorded_at: times[(seq % 5) as usize],
            kind,
            body,
            prev_mac: prev,
            body_commitment: Digest::from_bytes([(seq as u8).wrapping_mul(7); 32]),
            mac: mac(0xfe, seq),
        };
        prev = entry.mac;
        entries.push(entry);
    }
    store.append("round-trip_1", None, &entries).await.unwrap();
    let stored = scan_all(&*store, "round-trip_1", 0).await;
    assert_eq!(stored.len(), entries.len());
    for (stored, original) in stored.iter().zip(&entries) {
        assert_eq!(
            stored, original,
            "entry {} changed in storage",
            original.seq
        );
        assert_eq!(stored.recorded_at, original.recorded_at);
        assert_eq!(
            stored.body.iter().collect::<Vec<_>>(),
            original.body.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            trailseal::model::body_commitment(&stored.body),
            trailseal::model::body_commitment(&original.body)
        );
    }
    let last = entries.last().unwrap();
    assert_eq!(store.head("round-trip_1").await.unwrap(), Some(last.head()));
    // A query answers with the same reconstructed entries.
    let page = store
        .query(&Query::new().trail("round-trip_1").limit(100))
        .await
        .unwrap();
    let mut by_seq = page.entries.clone();
    by_seq.sort_by_key(|entry| entry.seq);
    assert_eq!(by_seq, entries);
    // What the store keeps beside the entries (copies of the tenant, with
    // NUL and backslashes; the restriction flag) agrees with them.
    let stored = scan_stored_all(&*store, "round-trip_1").await;
    assert_eq!(stored.len(), entries.len());
    for (stored, original) in stored.iter().zip(&entries) {
        assert_eq!(&stored.entry, original);
        assert_eq!(stored.mismatched_copies, [], "entry {}", original.seq);
        assert_eq!(stored.restricted, Some(false));
    }
}

/// An append states the head it follows and fails with a conflict when
/// another append got there first.
pub async fn append_is_conditional_on_the_head(store: Arc<dyn Store>) {
    let batch = entries("admin", 0, 5, TimeDelta::seconds(1));
    store.append("admin", None, &batch).await.unwrap();

    // A second writer that also believed the trail empty loses.
    let rival = entries("admin", 0, 3, TimeDelta::seconds(2));
    let err = store.append("admin", None, &rival).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref trail, seq: 0 } if trail == "admin"),
        "{err:?}"
    );
    // So does one whose head is stale, or ahead of the store.
    let stale = entries("admin", 3, 4, TimeDelta::seconds(2));
    let err = store.append("admin", Some(2), &stale).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { seq: 3, .. }),
        "{err:?}"
    );
    let ahead = entries("admin", 8, 2, TimeDelta::seconds(2));
    let err = store.append("admin", Some(7), &ahead).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // A batch for a trail that does not exist yet cannot claim a head.
    let orphan = entries("web", 1, 2, TimeDelta::seconds(2));
    let err = store.append("web", Some(0), &orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    // Nothing of the losing batches was stored.
    assert_eq!(scan_all(&*store, "admin", 0).await, batch);
    assert!(scan_all(&*store, "web", 0).await.is_empty());
    assert_eq!(store.trails().await.unwrap(), vec!["admin".to_owned()]);

    // The right head continues the trail.
    let next = entries("admin", 5, 3, TimeDelta::seconds(1));
    store.append("admin", Some(4), &next).await.unwrap();
    assert_eq!(store.head("admin").await.unwrap().unwrap().seq, 7);
}

/// A pipelined append commits only after the append it follows did.
pub async fn pipelined_append_follows_only_a_committed_append(store: Arc<dyn Store>) {
    let first = entries("admin", 0, 3, TimeDelta::seconds(1));
    let second = entries("admin", 3, 2, TimeDelta::seconds(1));

    // Handed over before the batch it follows is stored: it waits.
    let (outcome, previous) = PreviousAppend::pending();
    let pipelined = {
        let (store, second) = (store.clone(), second.clone());
        tokio::spawn(async move {
            store
                .append_pipelined("admin", Some(2), &second, previous)
                .await
        })
    };
    store.append("admin", None, &first).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(store.head("admin").await.unwrap().unwrap().seq, 2);
    outcome.settle(true);
    assert!(pipelined.await.unwrap().unwrap(), "appended");
    let both: Vec<Entry> = first.iter().chain(&second).cloned().collect();
    assert_eq!(scan_all(&*store, "admin", 0).await, both);

    // After an append that did not commit as planned, or whose outcome
    // was never told, it stores nothing.
    let third = entries("admin", 5, 2, TimeDelta::seconds(1));
    let refused = store
        .append_pipelined("admin", Some(4), &third, PreviousAppend::settled(false))
        .await;
    assert!(!refused.unwrap(), "not attempted");
    let (untold, previous) = PreviousAppend::pending();
    drop(untold);
    let orphaned = store
        .append_pipelined("admin", Some(4), &third, previous)
        .await;
    assert!(!orphaned.unwrap(), "not attempted");
    assert_eq!(scan_all(&*store, "admin", 0).await, both);

    // Told it may follow, it still checks the head like any append.
    let stale = entries("admin", 3, 2, TimeDelta::seconds(1));
    let err = store
        .append_pipelined("admin", Some(2), &stale, PreviousAppend::settled(true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { seq: 3, .. }),
        "{err:?}"
    );
    assert_eq!(scan_all(&*store, "admin", 0).await, both);
}

/// Batches with gaps, wrong trails or a wrong first seq are refused whole.
pub async fn malformed_batches_are_refused(store: Arc<dyn Store>) {
    let mut gap = entries("admin", 0, 4, TimeDelta::seconds(1));
    gap.remove(2);
    let err = store.append("admin", None, &gap).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err:?}");

    let other_trail = entries("web", 0, 2, TimeDelta::seconds(1));
    let err = store.append("admin", None, &other_trail).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err:?}");

    let not_first = entries("admin", 1, 2, TimeDelta::seconds(1));
    let err = store.append("admin", None, &not_first).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err:?}");

    assert_eq!(store.head("admin").await.unwrap(), None);
    assert!(store.trails().await.unwrap().is_empty());
}

/// An empty batch is accepted and stores nothing.
pub async fn empty_batch_stores_nothing(store: Arc<dyn Store>) {
    store.append("admin", None, &[]).await.unwrap();
    assert_eq!(store.head("admin").await.unwrap(), None);
    assert!(store.trails().await.unwrap().is_empty());
    let batch = entries("admin", 0, 2, TimeDelta::seconds(1));
    store.append("admin", None, &batch).await.unwrap();
    store.append("admin", Some(1), &[]).await.unwrap();
    let err = store.append("admin", Some(0), &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(scan_all(&*store, "admin", 0).await, batch);
}

/// A scan streams a trail in seq order from any seq.
pub async fn scan_streams_in_seq_order_from_any_seq(store: Arc<dyn Store>) {
    // More than two chunks of every backend (PostgreSQL reads 4,000 rows
    // at a time), appended in uneven batches.
    let all = entries("web", 0, 9_100, TimeDelta::milliseconds(10));
    let mut after = None;
    for batch in all.chunks(777) {
        store.append("web", after, batch).await.unwrap();
        after = Some(batch.last().unwrap().seq);
    }
    assert_eq!(scan_all(&*store, "web", 0).await, all);
    assert_eq!(scan_all(&*store, "web", 1_999).await, all[1_999..]);
    assert_eq!(scan_all(&*store, "web", 3_999).await, all[3_999..]);
    assert_eq!(scan_all(&*store, "web", 9_099).await, all[9_099..]);
    assert!(scan_all(&*store, "web", 9_100).await.is_empty());
    assert!(scan_all(&*store, "web", u64::MAX).await.is_empty());
    assert!(scan_all(&*store, "admin", 0).await.is_empty());
}

/// Trails do not see each other's entries and are listed by name.
pub async fn trails_are_independent_and_listed_in_order(store: Arc<dyn Store>) {
    for trail in ["web", "admin", "php-mail", "mail_box"] {
        let batch = entries(trail, 0, 3, TimeDelta::seconds(1));
        store.append(trail, None, &batch).await.unwrap();
    }
    let more = entries("web", 3, 2, TimeDelta::seconds(1));
    store.append("web", Some(2), &more).await.unwrap();
    assert_eq!(
        store.trails().await.unwrap(),
        vec!["admin", "mail_box", "php-mail", "web"]
    );
    assert_eq!(store.head("web").await.unwrap().unwrap().seq, 4);
    assert_eq!(store.head("admin").await.unwrap().unwrap().seq, 2);
    assert!(
        scan_all(&*store, "admin", 0)
            .await
            .iter()
            .all(|entry| entry.trail == "admin")
    );
}

/// An epoch summary counts the entries of one epoch, not its seals.
pub async fn epoch_summary_counts_one_epoch_without_seals(store: Arc<dyn Store>) {
    // Epoch 0 holds seqs 0..10 of which one is made a seal; epoch 1 holds 10..20.
    let mut batch = entries("admin", 0, 25, TimeDelta::seconds(3));
    batch[9].kind = EntryKind::EpochSeal;
    store.append("admin", None, &batch).await.unwrap();
    let summary = store.epoch_summary("admin", 0).await.unwrap();
    assert_eq!(summary.count, 9);
    assert_eq!(summary.first_at, Some(batch[0].recorded_at));
    assert_eq!(summary.last_at, Some(batch[8].recorded_at));
    let summary = store.epoch_summary("admin", 1).await.unwrap();
    assert_eq!(summary.count, 10);
    assert_eq!(summary.first_at, Some(batch[10].recorded_at));
    assert_eq!(summary.last_at, Some(batch[19].recorded_at));
    assert_eq!(store.epoch_summary("admin", 7).await.unwrap().count, 0);
    assert_eq!(store.epoch_summary("web", 0).await.unwrap().count, 0);
}

/// Two trails whose entries interleave in time, some at the same instant.
async fn fill_for_queries(store: &dyn Store) -> Vec<Entry> {
    let admin = entries("admin", 0, 120, TimeDelta::seconds(2));
    let web = entries("web", 0, 200, TimeDelta::seconds(1));
    store.append("admin", None, &admin[..50]).await.unwrap();
    store.append("web", None, &web).await.unwrap();
    store.append("admin", Some(49), &admin[50..]).await.unwrap();
    admin.into_iter().chain(web).collect()
}

/// The reference answer: every entry the query matches, in query order.
fn reference(all: &[Entry], query: &Query) -> Vec<Entry> {
    let mut matching: Vec<Entry> = all
        .iter()
        .filter(|entry| query.matches(entry))
        .cloned()
        .collect();
    matching
        .sort_by(|a, b| (a.recorded_at, &a.trail, a.seq).cmp(&(b.recorded_at, &b.trail, b.seq)));
    if query.order == trailseal::store::Order::NewestFirst {
        matching.reverse();
    }
    matching
}

async fn collect_pages(store: &dyn Store, query: &Query) -> Vec<Entry> {
    let mut found = Vec::new();
    let mut query = query.clone();
    loop {
        let page = store.query(&query).await.unwrap();
        assert!(page.entries.len() <= query.limit);
        found.extend(page.entries);
        match page.next {
            Some(cursor) => {
                // Cursors survive a trip through their text form.
                let text = cursor.to_string();
                query = query.after(text.parse::<Cursor>().unwrap());
            }
            None => return found,
        }
    }
}

/// Every query filter selects what filtering all entries by hand does.
pub async fn query_filters_match_the_reference(store: Arc<dyn Store>) {
    let all = fill_for_queries(&*store).await;
    let t = |seconds| start() + TimeDelta::seconds(seconds);
    let ip: IpAddr = "192.0.2.3".parse().unwrap();
    let queries = [
        Query::new(),
        Query::new().trail("admin"),
        Query::new()
            .trail("web")
            .kind(trailseal::EntryKind::Genesis),
        Query::new().kind(trailseal::EntryKind::Event),
        Query::new().since(t(30)).until(t(60)),
        Query::new().since(t(30) + TimeDelta::microseconds(1)),
        Query::new().until(t(10)),
        Query::new().tenant("kunde456"),
        Query::new().tenant("nobody"),
        Query::new().actor("user2").trail("web"),
        Query::new().action("mailbox.login").failed(),
        Query::new().succeeded().since(t(100)),
        Query::new().target("database", "t4"),
        Query::new().target_type("mailbox"),
        Query::new().ip(ip),
        Query::new().request_id("req-7").trail("admin"),
        Query::new()
            .trail("admin")
            .tenant("kunde123")
            .action("database.create")
            .actor("user0")
            .target("database", "t0")
            .ip("192.0.2.0".parse().unwrap())
            .request_id("req-0")
            .succeeded()
            .since(t(0))
            .until(t(1000)),
    ];
    for query in queries {
        for query in [query.clone(), query.newest_first()] {
            let expected = reference(&all, &query);
            let found = collect_pages(&*store, &query.clone().limit(1000)).await;
            assert_eq!(found, expected, "{query:?}");
        }
    }
    // The filters really select: the reference is not trivially everything.
    let failures = reference(&all, &Query::new().failed());
    assert!(!failures.is_empty() && failures.len() < all.len() / 4);
}

/// Pages cover every match exactly once, oldest and newest first.
pub async fn query_pages_cover_everything_once_in_both_orders(store: Arc<dyn Store>) {
    let all = fill_for_queries(&*store).await;
    for limit in [1, 7, 100, 319, 320, 321] {
        for query in [Query::new(), Query::new().newest_first()] {
            let query = query.limit(limit);
            let expected = reference(&all, &query);
            assert_eq!(expected.len(), all.len());
            let found = collect_pages(&*store, &query).await;
            assert_eq!(found, expected, "limit {limit}");
        }
    }
    // A page shows whether there is more.
    let page = store.query(&Query::new().limit(320)).await.unwrap();
    assert_eq!(page.entries.len(), 320);
    assert_eq!(page.next, None);
    let page = store.query(&Query::new().limit(319)).await.unwrap();
    assert_eq!(page.next, Some(Cursor::after(&page.entries[318])));

    // Paging stays correct while the trail grows.
    let first = store
        .query(&Query::new().trail("admin").limit(100))
        .await
        .unwrap();
    let more = entries("admin", 120, 30, TimeDelta::seconds(2));
    store.append("admin", Some(119), &more).await.unwrap();
    let rest = store
        .query(
            &Query::new()
                .trail("admin")
                .limit(1000)
                .after(first.next.unwrap()),
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = first
        .entries
        .iter()
        .chain(&rest.entries)
        .map(|entry| entry.seq)
        .collect();
    assert_eq!(seqs, (0..150).collect::<Vec<_>>());
}

/// Page sizes out of range and cursors of another query are refused.
pub async fn query_rejects_bad_page_sizes_and_cursors(store: Arc<dyn Store>) {
    fill_for_queries(&*store).await;
    for limit in [0, trailseal::store::MAX_PAGE_SIZE + 1] {
        let err = store.query(&Query::new().limit(limit)).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{err:?}");
    }
    let page = store
        .query(&Query::new().limit(trailseal::store::MAX_PAGE_SIZE))
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 320);
    for text in [
        "",
        "c1",
        "c1.x.1.admin",
        "c1.5.-1.admin",
        "c1.5.1.Admin",
        "c2.5.1.admin",
        "c1.5.1.",
    ] {
        let err = text.parse::<Cursor>().unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{text:?}");
    }
}

/// Records events with a manual clock across several epochs and checks
/// that the verifier finds the trail intact.
pub async fn recorded_trail_verifies_across_epochs(store: Arc<dyn Store>) {
    let clock = ManualClock::new(start());
    let (sealing, verification) = SealingKey::generate("k1", start(), 900).unwrap();
    let trail = Trail::builder("admin", store.clone(), Arc::new(sealing))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for i in 0..120 {
        let event = Event::builder("database.create")
            .actor(Actor::customer("kunde123"))
            .tenant("kunde123")
            .target("database", format!("db{i}"))
            .build()
            .unwrap();
        receipts.push(trail.record(event).await.unwrap());
        clock.advance(TimeDelta::seconds(20));
    }
    trail.seal_finished_epochs().await.unwrap();
    trail.shutdown().await.unwrap();
    let report = Verifier::new(verification)
        .verify_trail(&*store, "admin")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    // Two finished epochs, and the one the shutdown closed.
    assert_eq!(report.seals_verified, 3);
    let stored = scan_all(&*store, "admin", 0).await;
    for receipt in &receipts {
        let entry = &stored[receipt.seq as usize];
        assert_eq!(entry.mac, receipt.mac);
        assert_eq!(entry.recorded_at, receipt.recorded_at);
    }
    let page = store
        .query(&Query::new().target("database", "db42"))
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].seq, receipts[42].seq);
}

/// Two writers on one trail (as two panel processes would be) keep one
/// linear chain: conflicts are retried, never forked.
pub async fn concurrent_writers_make_one_linear_chain(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let (_, verification) =
        SealingKey::create_files(dir.path().join("a"), "k1", start(), 900).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::copy(
        dir.path().join("a/sealing.key"),
        dir.path().join("b/sealing.key"),
    )
    .unwrap();
    let clock = ManualClock::new(start() + TimeDelta::minutes(1));
    let mut writers = Vec::new();
    for (name, folder) in [("alice", "a"), ("bob", "b")] {
        let key = SealingKey::open(dir.path().join(folder).join("sealing.key")).unwrap();
        let trail = Trail::builder("admin", store.clone(), Arc::new(key))
            .clock(Arc::new(clock.clone()))
            .max_batch(7)
            .start()
            .await
            .unwrap();
        writers.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..150 {
                let event = Event::builder("mailbox.create")
                    .actor(Actor::customer(name))
                    .target("mailbox", format!("{name}-{i}"))
                    .build()
                    .unwrap();
                receipts.push(trail.record(event).await.unwrap());
            }
            trail.shutdown().await.unwrap();
            receipts
        }));
    }
    let mut receipts = Vec::new();
    for writer in writers {
        receipts.extend(writer.await.unwrap());
    }
    let report = Verifier::new(verification)
        .verify_trail(&*store, "admin")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    let stored = scan_all(&*store, "admin", 0).await;
    // Genesis, every acknowledged event exactly once, and the seal with
    // which the first writer to shut down closed the epoch (the second
    // finds it closed).
    assert_eq!(stored.len(), 302);
    for receipt in &receipts {
        assert_eq!(stored[receipt.seq as usize].mac, receipt.mac);
    }
    let mut seqs: Vec<u64> = receipts.iter().map(|receipt| receipt.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 300);
}

/// Deleting a range removes its events and nothing else.
pub async fn delete_events_removes_only_events_in_the_range(store: Arc<dyn Store>) {
    let mut batch = entries("admin", 0, 20, TimeDelta::seconds(1));
    batch[5].kind = EntryKind::EpochSeal;
    batch[6].kind = EntryKind::Retention;
    store.append("admin", None, &batch).await.unwrap();
    store
        .append("web", None, &entries("web", 0, 20, TimeDelta::seconds(1)))
        .await
        .unwrap();
    // Seqs 3..=8 hold two records that are never deleted.
    assert_eq!(store.delete_events("admin", 3, 8).await.unwrap(), 4);
    assert_eq!(store.delete_events("admin", 3, 8).await.unwrap(), 0);
    let seqs: Vec<u64> = scan_all(&*store, "admin", 0)
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    let expected: Vec<u64> = (0..20).filter(|s| !matches!(s, 3 | 4 | 7 | 8)).collect();
    assert_eq!(seqs, expected);
    assert_eq!(
        scan_all(&*store, "web", 0).await.len(),
        20,
        "other trails untouched"
    );
    assert_eq!(store.head("admin").await.unwrap().unwrap().seq, 19);
    // The genesis is not an event either.
    assert_eq!(store.delete_events("admin", 0, 0).await.unwrap(), 0);
}

/// Erasing fields removes their values and salts, and the copies a
/// store keeps for queries, so erased values are found no more.
pub async fn erase_fields_erases_values_and_their_query_copies(store: Arc<dyn Store>) {
    let batch = entries("admin", 0, 12, TimeDelta::seconds(1));
    store.append("admin", None, &batch).await.unwrap();
    let tenant = batch[3].value("tenant").unwrap().to_owned();
    let by_tenant = |tenant: String| Query::new().trail("admin").tenant(tenant).limit(100);
    let before = store.query(&by_tenant(tenant.clone())).await.unwrap();
    assert!(before.entries.iter().any(|e| e.seq == 3));

    let erasures = [
        trailseal::store::Erasure {
            seq: 3,
            fields: vec!["tenant".into(), "context.ip".into(), "action".into()],
        },
        trailseal::store::Erasure {
            seq: 999,
            fields: vec!["tenant".into()],
        },
    ];
    assert_eq!(store.erase_fields("admin", &erasures).await.unwrap(), 1);
    // Erasing again changes nothing.
    assert_eq!(
        store.erase_fields("admin", &erasures[..1]).await.unwrap(),
        0
    );

    let stored = scan_all(&*store, "admin", 3).await.remove(0);
    let original = &batch[3];
    for name in ["tenant", "context.ip"] {
        assert_eq!(
            stored.body.get(name),
            Some(&original.body.get(name).unwrap().redacted(name)),
            "{name}"
        );
    }
    assert_eq!(
        stored.value("action"),
        original.value("action"),
        "public fields stay"
    );
    assert_eq!(stored.value("actor.name"), original.value("actor.name"));
    assert_eq!(
        trailseal::model::body_commitment(&stored.body),
        trailseal::model::body_commitment(&original.body)
    );

    let after = store.query(&by_tenant(tenant)).await.unwrap();
    assert!(
        after.entries.iter().all(|e| e.seq != 3),
        "the query copy is gone"
    );
    let ip: IpAddr = original.value("context.ip").unwrap().parse().unwrap();
    let by_ip = store
        .query(&Query::new().trail("admin").ip(ip).limit(100))
        .await
        .unwrap();
    assert!(by_ip.entries.iter().all(|e| e.seq != 3));
    assert!(!by_ip.entries.is_empty(), "other entries keep their IP");
    // The copies agree with the erased body.
    assert!(
        scan_stored_all(&*store, "admin")
            .await
            .iter()
            .all(|stored| stored.mismatched_copies.is_empty())
    );
}

/// Restricted entries are left out of queries unless asked for, and
/// still scanned.
pub async fn restricted_entries_are_left_out_of_queries_but_not_scans(store: Arc<dyn Store>) {
    let batch = entries("admin", 0, 12, TimeDelta::seconds(1));
    store.append("admin", None, &batch).await.unwrap();
    let all = Query::new().trail("admin").limit(100);
    assert_eq!(store.restrict("admin", &[2, 5, 99], true).await.unwrap(), 2);
    assert_eq!(
        store.restrict("admin", &[2], true).await.unwrap(),
        0,
        "already"
    );
    let seqs =
        |page: trailseal::store::Page| page.entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let visible = seqs(store.query(&all).await.unwrap());
    assert_eq!(
        visible,
        (0..12).filter(|s| *s != 2 && *s != 5).collect::<Vec<_>>()
    );
    let everything = seqs(
        store
            .query(&all.clone().include_restricted())
            .await
            .unwrap(),
    );
    assert_eq!(everything, (0..12).collect::<Vec<_>>());
    assert_eq!(
        scan_all(&*store, "admin", 0).await.len(),
        12,
        "scans see everything"
    );
    let flags: Vec<(u64, Option<bool>)> = scan_stored_all(&*store, "admin")
        .await
        .iter()
        .map(|stored| (stored.entry.seq, stored.restricted))
        .collect();
    assert_eq!(
        flags,
        (0..12)
            .map(|seq| (seq, Some(seq == 2 || seq == 5)))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.restrict("admin", &[2, 5], false).await.unwrap(), 2);
    assert_eq!(seqs(store.query(&all).await.unwrap()).len(), 12);
}

/// A snapshot comes back exactly as put; one with the same trail, name and
/// seq replaces it; without a seq the newest is found, with one exactly
/// that one; trails and names are kept apart.
pub async fn snapshots_round_trip_and_the_newest_is_found(store: Arc<dyn Store>) {
    let snapshot = |trail: &str, name: &str, upto_seq: u64, state: &str| Snapshot {
        trail: trail.to_owned(),
        name: name.to_owned(),
        upto_seq,
        state: state.to_owned(),
    };
    assert_eq!(
        store.snapshot("admin", "inventory", None).await.unwrap(),
        None
    );

    let unusual = r#"{"tenant":"kunde123","note":"ä\u0000\n\t 'quoted'"}"#;
    for (trail, name, upto_seq, state) in [
        ("admin", "inventory", 10, unusual),
        ("admin", "inventory", 40, r#"{"v":40}"#),
        ("admin", "inventory", 20, r#"{"v":20}"#),
        ("admin", "logins", 90, "{}"),
        ("web", "inventory", 99, "{}"),
    ] {
        let kept = snapshot(trail, name, upto_seq, state);
        store.put_snapshot(&kept).await.unwrap();
    }

    let newest = store.snapshot("admin", "inventory", None).await.unwrap();
    assert_eq!(
        newest,
        Some(snapshot("admin", "inventory", 40, r#"{"v":40}"#))
    );
    let exact = store
        .snapshot("admin", "inventory", Some(10))
        .await
        .unwrap();
    assert_eq!(exact, Some(snapshot("admin", "inventory", 10, unusual)));
    assert_eq!(
        store
            .snapshot("admin", "inventory", Some(30))
            .await
            .unwrap(),
        None,
        "no snapshot covers exactly seq 30"
    );

    let replacement = snapshot("admin", "inventory", 40, r#"{"v":41}"#);
    store.put_snapshot(&replacement).await.unwrap();
    let replaced = store
        .snapshot("admin", "inventory", Some(40))
        .await
        .unwrap();
    assert_eq!(replaced, Some(replacement));
    assert_eq!(
        store.snapshot("admin", "logins", None).await.unwrap(),
        Some(snapshot("admin", "logins", 90, "{}"))
    );
    assert_eq!(
        store.snapshot("web", "inventory", None).await.unwrap(),
        Some(snapshot("web", "inventory", 99, "{}"))
    );
    assert_eq!(
        store.snapshot("mail", "inventory", None).await.unwrap(),
        None
    );
}
