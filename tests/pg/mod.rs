//! Access to the PostgreSQL server the test command provides
//! (`scripts/with-postgres` exports its URL).

#![allow(dead_code)]

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The URL of a server the tests may create databases on.
pub const URL_VARIABLE: &str = "TRAILSEAL_TEST_POSTGRES_URL";

/// The server's URL. Without one, the PostgreSQL tests cannot run: under CI
/// that is a failure (a skipped backend must never pass for a tested one);
/// elsewhere the test process ends early with a notice.
pub fn server_url() -> String {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => url,
        _ if under_ci() => panic!(
            "{URL_VARIABLE} is not set, so the PostgreSQL tests cannot run; \
             run them through scripts/test (or scripts/with-postgres)"
        ),
        _ => {
            eprintln!(
                "NOTICE: {URL_VARIABLE} is not set: skipping the PostgreSQL tests; \
                 run scripts/test to run them against a throwaway server"
            );
            std::process::exit(0);
        }
    }
}

/// Whether this is a CI run (`CI=true`), where no test may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// A new, empty database on the server, so every test has its own; returns
/// its URL.
pub async fn fresh_database() -> String {
    fresh_database_on(&server_url()).await
}

/// A new, empty database on the server at `url`; returns its URL.
pub async fn fresh_database_on(url: &str) -> String {
    let name = format!("trailseal_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(url).await.unwrap();
    // The name is made here from a UUID, never from outside input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    with_database(url, &name)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if base[..slash].contains("//") && slash > base.find("//").unwrap() + 1 => {
            &base[..slash]
        }
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}
