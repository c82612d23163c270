//! The PostgreSQL server of the benchmarks, and a database of its own for
//! each of them.

use sqlx::{Connection, PgConnection};

/// Where the benchmarks find a PostgreSQL server they may create databases
/// on; `None` (with a note printed) when none is set.
pub fn server_url(bench: &str) -> Option<String> {
    let url = std::env::var("TRAILSEAL_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!(
            "{bench}: PostgreSQL benchmarks skipped, no server: run \
             `scripts/with-postgres cargo bench --bench {bench}`, or set \
             TRAILSEAL_TEST_POSTGRES_URL"
        );
    }
    url
}

/// Creates a new, empty database on the server at `url` (a URL of its
/// `postgres` database) and returns the new database's URL.
pub async fn fresh_database(url: &str) -> String {
    let name = format!("trailseal_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
