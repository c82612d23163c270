//! `SqliteStore` on files that are not what they should be: each is refused
//! with a typed error, and nothing is written to it.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use futures_util::TryStreamExt;
use sqlx::{ConnectOptions, Connection};
use support::FolderState;
use trailseal::{
    Actor, Error, Event, ManualClock, SealingKey, SqliteStore, Store, StoreError, Trail, Verifier,
    store::SqliteStoreOptions,
};

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

fn event(i: usize) -> Event {
    Event::builder("database.create")
        .actor(Actor::customer("kunde123"))
        .target("database", format!("db{i}"))
        .build()
        .unwrap()
}

/// A connection to the file with nothing of trailseal in between; creates
/// the file if it is missing.
async fn plain_connection(path: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap()
}

async fn execute(connection: &mut sqlx::SqliteConnection, sql: impl sqlx::SqlSafeStr) {
    sqlx::query(sql).execute(connection).await.unwrap();
}

/// Verifies the trail `admin`: intact, with `entries` entries.
async fn assert_intact(
    store: &SqliteStore,
    verification: trailseal::VerificationKey,
    entries: u64,
) {
    let report = Verifier::new(verification)
        .verify_trail(store, "admin")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.entries, entries);
}

/// A trailseal database with a short trail, by a writer that is still
/// running: its commits are in the log (`-wal`), not yet in the file.
async fn running_writer(
    path: &Path,
    events: usize,
) -> (SqliteStore, Trail, trailseal::VerificationKey) {
    let store = SqliteStore::open(path).await.unwrap();
    let (sealing, verification) = SealingKey::generate("k1", start(), 900).unwrap();
    let trail = Trail::builder("admin", Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(ManualClock::new(start())))
        .start()
        .await
        .unwrap();
    for i in 0..events {
        trail.record(event(i)).await.unwrap();
    }
    (store, trail, verification)
}

async fn open_read_only(path: &Path) -> SqliteStore {
    SqliteStoreOptions::new(path)
        .read_only(true)
        .open()
        .await
        .unwrap()
}

/// A trailseal database with a short trail, closed (its genesis, `events`
/// events and the seal that closed their epoch); returns its verification
/// key.
async fn make_trail(path: &Path, events: usize) -> trailseal::VerificationKey {
    let (store, trail, verification) = running_writer(path, events).await;
    trail.shutdown().await.unwrap();
    store.close().await;
    verification
}

#[tokio::test]
async fn file_that_is_not_a_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let before = FolderState::of(&path);
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotATrailStore { ref database, .. } if database.ends_with("trail.db")),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(FolderState::of(&path), before);
}

#[tokio::test]
async fn damaged_trailseal_database_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    make_trail(&path, 50).await;
    // Keep the header page, destroy every page after it.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() > 2 * page);
    for (i, byte) in bytes[page..].iter_mut().enumerate() {
        *byte = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result = match SqliteStore::open(&path).await {
        Err(err) => Err(err),
        Ok(store) => store
            .scan("admin", 0)
            .try_collect::<Vec<_>>()
            .await
            .map(drop),
    };
    let err = result.unwrap_err();
    assert!(matches!(err, StoreError::DatabaseCorrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.db");
    {
        let mut connection = plain_connection(&path).await;
        execute(
            &mut connection,
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        )
        .await;
        execute(
            &mut connection,
            "INSERT INTO customers (name) VALUES ('kunde123')",
        )
        .await;
        connection.close().await.unwrap();
    }
    let before = FolderState::of(&path);
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::NotATrailStore { .. }), "{err:?}");
    assert!(err.to_string().contains("another application"), "{err}");
    assert_eq!(FolderState::of(&path), before);
}

#[tokio::test]
async fn read_only_file_is_refused_for_writing_but_can_be_verified() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let verification = make_trail(&path, 20).await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = FolderState::of(&path);

    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(FolderState::of(&path), before);

    // An archived trail can still be verified and queried, read-only.
    let store = open_read_only(&path).await;
    assert_intact(&store, verification, 22).await;
    let entries: Vec<_> = store.scan("admin", 0).try_collect().await.unwrap();
    let head = entries.last().unwrap();
    let more = vec![trailseal::Entry {
        seq: head.seq + 1,
        ..head.clone()
    }];
    let err = store
        .append("admin", Some(head.seq), &more)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    store.close().await;
    assert_eq!(FolderState::of(&path), before);
}

/// A trail holds customer names and client addresses: the file SQLite
/// creates, and its log and index, are the owner's alone, whatever the
/// umask (a test process usually has 022, which gives 0644).
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_and_its_log_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let (store, trail, _) = running_writer(&path, 3).await;
    let mode = |suffix: &str| {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        std::fs::metadata(&name).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o600, "the database file");
    assert_eq!(mode("-wal"), 0o600, "the write-ahead log");
    assert_eq!(mode("-shm"), 0o600, "the log's index");
    trail.shutdown().await.unwrap();
    store.close().await;

    // A file the operator made group-readable on purpose keeps its mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.trails().await.unwrap(), ["admin"]);
    store.close().await;
    assert_eq!(mode(""), 0o640);
}

#[tokio::test]
async fn a_read_only_open_of_a_closed_database_writes_nothing_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let verification = make_trail(&path, 20).await;
    let before = FolderState::of(&path);
    assert_eq!(before.names, [path.as_path()], "closed: no log, no index");

    let store = open_read_only(&path).await;
    assert_intact(&store, verification, 22).await;
    assert_eq!(store.trails().await.unwrap(), ["admin"]);
    store.close().await;
    assert_eq!(FolderState::of(&path), before);
}

/// A running writer's commits are in its log, not yet in the file; a store
/// opened read-only meanwhile reads them, and those that follow.
#[tokio::test]
async fn a_read_only_store_reads_the_log_of_a_running_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let (store, trail, verification) = running_writer(&path, 30).await;
    assert!(wal_len(&path) > 0);

    let reader = open_read_only(&path).await;
    assert_eq!(reader.head("admin").await.unwrap().unwrap().seq, 30);
    trail.record(event(30)).await.unwrap();
    assert_intact(&reader, verification, 32).await;
    reader.close().await;
    trail.shutdown().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn directory_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    match err {
        StoreError::Io { ref source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory, "{err}")
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn missing_file_is_refused_when_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let err = SqliteStoreOptions::new(&path)
        .create_if_missing(false)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_database_refuses_appends_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    make_trail(&path, 5).await;
    let store = SqliteStoreOptions::new(&path)
        .busy_timeout(TimeDelta::milliseconds(300))
        .open()
        .await
        .unwrap();
    let head = store.head("admin").await.unwrap().unwrap();

    // Another connection (as another process would) holds the write lock.
    let mut holder = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let (sealing, _) = SealingKey::generate("k2", start(), 900).unwrap();
    let trail = Trail::builder("ftp", Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(ManualClock::new(start())))
        .start()
        .await
        .unwrap();
    let began = Instant::now();
    let err = trail.record(event(0)).await.unwrap_err();
    match &err {
        Error::Store(store_err) => {
            assert!(matches!(**store_err, StoreError::Busy { .. }), "{err:?}")
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(began.elapsed() >= Duration::from_millis(250));
    assert!(err.to_string().contains("locked"), "{err}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    assert_eq!(store.head("ftp").await.unwrap(), None);
    assert_eq!(store.head("admin").await.unwrap(), Some(head));
    assert_eq!(store.trails().await.unwrap(), vec!["admin".to_owned()]);
    // Once the lock is gone, the same trail handle records again.
    trail.record(event(1)).await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusively_locked_database_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    make_trail(&path, 5).await;
    let mut holder = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .pragma("locking_mode", "EXCLUSIVE")
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::query("DELETE FROM trails WHERE name = 'nothing'")
        .execute(&mut holder)
        .await
        .unwrap();
    let err = SqliteStoreOptions::new(&path)
        .busy_timeout(TimeDelta::milliseconds(200))
        .open()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    holder.close().await.unwrap();
}

#[tokio::test]
async fn schema_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    make_trail(&path, 1).await;
    {
        let mut connection = plain_connection(&path).await;
        execute(
            &mut connection,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .await;
        connection.close().await.unwrap();
    }
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedSchema { version: 9999, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_database_of_the_first_schema_version_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.db");
    let verification = make_trail(&current, 20).await;

    // The same entries in a file that has only the first migration.
    let first = dir.path().join("first.db");
    let mut connection = plain_connection(&first).await;
    execute(&mut connection, "PRAGMA application_id = 1953721393").await;
    // sqlx's own reading of the migrations folder (what `sqlx::migrate!`
    // embeds), so the library's embedded schema is checked against it.
    sqlx_migrations()
        .await
        .run_to(1, &mut connection)
        .await
        .unwrap();
    sqlx::query("ATTACH DATABASE ? AS current")
        .bind(current.display().to_string())
        .execute(&mut connection)
        .await
        .unwrap();
    let columns = "trail, seq, epoch, key_id, recorded_at, kind, body, prev_mac, \
                   body_commitment, mac, action, tenant, actor, target_type, target_id, ip, \
                   outcome, request_id";
    for copy in [
        format!("INSERT INTO entries ({columns}) SELECT {columns} FROM current.entries"),
        "INSERT INTO trails (name) SELECT name FROM current.trails".to_owned(),
    ] {
        execute(&mut connection, sqlx::AssertSqlSafe(copy)).await;
    }
    connection.close().await.unwrap();

    // One connection: the migrations must give it back before the store
    // uses it again.
    let store = SqliteStoreOptions::new(&first)
        .max_connections(1)
        .open()
        .await
        .unwrap();
    assert_intact(&store, verification, 22).await;
    store.close().await;
    let mut connection = plain_connection(&first).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(applied as usize, sqlx_migrations().await.iter().count());
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE name = 'entries_records'")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(indexes, ["entries_records"]);
    connection.close().await.unwrap();
}

#[tokio::test]
async fn database_urls_name_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url).await.unwrap();
    assert_eq!(store.path(), path);
    store.close().await;
    assert!(path.exists());
    for url in [
        "postgres://localhost/trail",
        "sqlite://",
        "sqlite://trail.db?mode=ro",
    ] {
        let err = SqliteStore::connect(url).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl(_)), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn reopened_store_continues_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let keys = dir.path().join("keys");
    let (_, verification) = SealingKey::create_files(&keys, "k1", start(), 900).unwrap();
    let clock = ManualClock::new(start());
    for round in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        let key = SealingKey::open(keys.join("sealing.key")).unwrap();
        let trail = Trail::builder("admin", Arc::new(store.clone()), Arc::new(key))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .unwrap();
        for i in 0..40 {
            trail.record(event(round * 100 + i)).await.unwrap();
            clock.advance(TimeDelta::seconds(10));
        }
        trail.shutdown().await.unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    // 120 events over 20 minutes: genesis, 120 events, and two seals: the
    // first shutdown closed epoch 0 early (the second round's events go
    // into epoch 1), the third closed epoch 1.
    assert_intact(&store, verification, 123).await;
}

/// After a power loss the write-ahead log may hold committed transactions
/// while its shared-memory index is gone; opening must recover them.
#[tokio::test]
async fn write_ahead_log_without_its_index_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let (store, trail, verification) = running_writer(&path, 30).await;
    // Copy the file and its log as a crash would leave them, without the
    // shared-memory index, while the store still has them open.
    let copy = tempfile::tempdir().unwrap();
    let wal = dir.path().join("trail.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    std::fs::copy(&path, copy.path().join("trail.db")).unwrap();
    std::fs::copy(&wal, copy.path().join("trail.db-wal")).unwrap();
    trail.shutdown().await.unwrap();
    store.close().await;

    let recovered = SqliteStore::open(copy.path().join("trail.db"))
        .await
        .unwrap();
    assert_intact(&recovered, verification, 31).await;
}

/// Appends `batches` batches of 250 events of about 1.5 KB each as
/// stored, sealed in order.
async fn append_large_events(store: &SqliteStore, batches: usize) {
    let (key, _) = SealingKey::generate("k1", start(), 900).unwrap();
    let mut sealer = key.sealer("web", 0, None).unwrap();
    let mut after = None;
    for batch in 0..batches {
        let entries: Vec<_> = (0..250)
            .map(|i| {
                let event = Event::builder("web.request")
                    .actor(Actor::anonymous("visitor"))
                    .user_agent("Mozilla/5.0 ".repeat(40))
                    .meta("request", format!("/shop/item/{batch}/{i}"))
                    .build()
                    .unwrap();
                sealer.seal_event(&event, start()).unwrap()
            })
            .collect();
        store.append("web", after, &entries).await.unwrap();
        after = entries.last().map(|entry| entry.seq);
    }
}

fn wal_len(database: &Path) -> u64 {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |meta| meta.len())
}

#[tokio::test]
async fn write_ahead_log_is_folded_back_at_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    // About 10 MB written in each database.
    let batches = 24;

    let long = dir.path().join("long.db");
    let store = SqliteStore::open(&long).await.unwrap();
    append_large_events(&store, batches).await;
    let long_wal = wal_len(&long);
    // SQLite's own default would have folded the log back at 1,000 pages
    // (4 MB) and reused the file from its start.
    assert!(
        long_wal > 6_000_000,
        "with the default, the log holds every batch: {long_wal} bytes"
    );
    assert!(
        long_wal <= u64::from(trailseal::store::DEFAULT_WAL_CHECKPOINT_PAGES) * 4096 + 2_000_000
    );
    store.close().await;

    let short = dir.path().join("short.db");
    let store = SqliteStoreOptions::new(&short)
        .wal_checkpoint_pages(64)
        .open()
        .await
        .unwrap();
    append_large_events(&store, batches).await;
    let short_wal = wal_len(&short);
    // Folded back after every batch of about 400 KB, and cut back to 64
    // pages each time, with at most the last batch's pages on top.
    assert!(
        short_wal < 1_500_000,
        "checkpointed every 64 pages: {short_wal} bytes"
    );
    assert_eq!(
        store
            .scan("web", 0)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        batches * 250
    );
    store.close().await;
}

/// The SQLite migrations as sqlx reads them from the folder.
async fn sqlx_migrations() -> sqlx::migrate::Migrator {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    sqlx::migrate::Migrator::new(folder).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_a_new_file_at_once_apply_its_migrations_once() {
    // Each migration runs in a transaction of its own: without the
    // migration lock, four stores opening one new file interleave them and
    // some fail with "duplicate column name"; a store that read the file's
    // marker and its tables one after the other took a file being set up
    // for another application's; and one setting up the file while another
    // judged it found it locked.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..50 {
        let path = dir.path().join(format!("new-{round}.db"));
        let opens = (0..4).map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(path).await })
        });
        for open in futures_util::future::join_all(opens).await {
            let store = open
                .unwrap()
                .unwrap_or_else(|err| panic!("round {round}: {err}"));
            store.close().await;
        }
        let mut connection = plain_connection(&path).await;
        let failed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE NOT success")
                .fetch_one(&mut connection)
                .await
                .unwrap();
        assert_eq!(failed, 0);
    }
}

#[tokio::test]
async fn a_held_opening_lock_is_waited_for_no_longer_than_the_busy_timeout() {
    // Whoever can read the file can take the lock a store holds while it
    // opens the file: a store must fail as busy, not wait for ever.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let holder = std::fs::File::open(&path).unwrap();
    holder.lock().unwrap();
    let opened = SqliteStoreOptions::new(&path)
        .busy_timeout(TimeDelta::milliseconds(100))
        .open()
        .await;
    assert!(matches!(opened, Err(StoreError::Busy { .. })), "{opened:?}");
    // Read-only opens take no such lock: an auditor's copy is read anyway.
    SqliteStoreOptions::new(&path)
        .read_only(true)
        .open()
        .await
        .unwrap()
        .close()
        .await;
    drop(holder);
    SqliteStore::open(&path).await.unwrap().close().await;
}
