//! The backend conformance suite against `PostgresStore`, on the real
//! PostgreSQL server the test command provides; every test gets its own
//! database, so they run in parallel. Then what only the PostgreSQL schema
//! does: day partitions that many sessions create at once, and upgrades.

use crate::pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use trailseal::{PostgresStore, Store, StoreError};

async fn fresh() -> (Arc<dyn Store>, ()) {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    (Arc::new(store), ())
}

trailseal_conformance::all_conformance_tests!(fresh());

// ---------------------------------------------------------------------
// Day partitions created by many sessions at once.

/// A day far from today, whose partition no store creates ahead.
fn far_day(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2001, 2, day).unwrap()
}

fn partition_name(day: NaiveDate) -> String {
    format!("entries_{}", day.format("%Y%m%d"))
}

/// What a query reading `entries` locks, as any long query does in
/// production: creating a partition waits for it.
const A_QUERY_ON_ENTRIES: &str = "LOCK TABLE entries IN ACCESS SHARE MODE";

/// The names of the partitions of `entries`, in order.
async fn partitions(url: &str) -> Vec<String> {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let names = sqlx::query_scalar(
        "SELECT class.relname::text FROM pg_inherits AS child \
         JOIN pg_class AS class ON class.oid = child.inhrelid \
         WHERE child.inhparent = 'entries'::regclass ORDER BY 1",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    names
}

/// Calls `trailseal_ensure_day(day)` from `sessions` connections of their
/// own at once, and returns what each call was told.
///
/// Another transaction runs `hold` first and keeps what it locks until
/// every call waits for a lock: then every call has found the partition
/// missing before any can create it, however the machine schedules them.
async fn ensure_day_from_many_sessions(
    url: &str,
    day: NaiveDate,
    sessions: usize,
    hold: &str,
) -> Vec<Result<(), sqlx::Error>> {
    let mut holder = PgConnection::connect(url).await.unwrap();
    let mut observer = PgConnection::connect(url).await.unwrap();
    let mut connections = Vec::new();
    for _ in 0..sessions {
        connections.push(PgConnection::connect(url).await.unwrap());
    }
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query(AssertSqlSafe(hold.to_owned()))
        .execute(&mut holder)
        .await
        .unwrap();
    let calls: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            tokio::spawn(async move {
                let told = sqlx::query("SELECT trailseal_ensure_day($1)")
                    .bind(day)
                    .execute(&mut connection)
                    .await
                    .map(|_| ());
                connection.close().await.unwrap();
                told
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND query = 'SELECT trailseal_ensure_day($1)'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting as usize == sessions {
            break;
        }
        // The partition cannot be made while `hold` holds: a call that
        // ended already failed, or claimed a partition that is not there.
        let ended = calls.iter().filter(|call| call.is_finished()).count();
        assert_eq!(ended, 0, "calls ended while `{hold}` held");
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {sessions} calls wait for a lock while `{hold}` holds"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    observer.close().await.unwrap();
    let mut told = Vec::new();
    for call in calls {
        told.push(call.await.unwrap());
    }
    told
}

/// Asserts that every call succeeded and that the day's partition is the
/// one partition added to `before`.
async fn assert_one_partition_added(
    url: &str,
    day: NaiveDate,
    before: &[String],
    told: &[Result<(), sqlx::Error>],
) {
    let failed: Vec<_> = told.iter().filter_map(|told| told.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        told.len()
    );
    let mut expected = before.to_vec();
    expected.push(partition_name(day));
    expected.sort();
    assert_eq!(partitions(url).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_creating_one_day_at_once_all_succeed_with_one_partition() {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let before = partitions(&url).await;
    let day = far_day(3);
    let told = ensure_day_from_many_sessions(&url, day, 32, A_QUERY_ON_ENTRIES).await;
    assert_one_partition_added(&url, day, &before, &told).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_created_by_hand_meanwhile_counts_as_created() {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let before = partitions(&url).await;
    let day = far_day(4);
    // An operator creates the partition without the function's lock, and
    // commits only once every call has found it missing.
    let by_hand = format!(
        "CREATE TABLE {} PARTITION OF entries \
         FOR VALUES FROM ('{day} 00:00:00+00') TO ('{} 00:00:00+00')",
        partition_name(day),
        day.succ_opt().unwrap()
    );
    let told = ensure_day_from_many_sessions(&url, day, 8, &by_hand).await;
    assert_one_partition_added(&url, day, &before, &told).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_schema_version_4_is_upgraded_on_connect() {
    let url = pg::fresh_database().await;
    let mut connection = PgConnection::connect(&url).await.unwrap();
    // sqlx's own reading of the migrations folder (what `sqlx::migrate!`
    // embeds), so the library's embedded schema is checked against it.
    sqlx_migrations()
        .await
        .run_to(4, &mut connection)
        .await
        .unwrap();
    // A partition the first version of the function created.
    sqlx::query("SELECT trailseal_ensure_day($1)")
        .bind(far_day(5))
        .execute(&mut connection)
        .await
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(applied as usize, sqlx_migrations().await.iter().count());
    let before = partitions(&url).await;
    assert!(before.contains(&partition_name(far_day(5))), "{before:?}");
    // The old partition is found, and a new one is created without a race.
    sqlx::query("SELECT trailseal_ensure_day($1)")
        .bind(far_day(5))
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    assert_eq!(partitions(&url).await, before);
    let day = far_day(6);
    let told = ensure_day_from_many_sessions(&url, day, 32, A_QUERY_ON_ENTRIES).await;
    assert_one_partition_added(&url, day, &before, &told).await;
    store.close().await;
}

/// The PostgreSQL migrations as sqlx reads them from the folder.
async fn sqlx_migrations() -> sqlx::migrate::Migrator {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    sqlx::migrate::Migrator::new(folder).await.unwrap()
}

// ---------------------------------------------------------------------
// Refusals, as the same variants SQLite reports.

#[tokio::test]
async fn schema_from_a_newer_version_is_refused() {
    let url = pg::fresh_database().await;
    PostgresStore::connect(&url).await.unwrap().close().await;
    let mut connection = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedSchema { version: 9999, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_read_only_database_is_refused_as_read_only() {
    let url = pg::fresh_database().await;
    let mut connection = PgConnection::connect(&url).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    // The name is the test's own, made from a UUID.
    sqlx::query(AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    )))
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ReadOnly { ref database, .. } if database.ends_with(&name)),
        "{err:?}"
    );
}
