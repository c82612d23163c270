//! Recording inside the panel's own SQLite transaction, on a real database
//! file that holds both the panel's table and the trail.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tempfile::TempDir;
use trailseal::SqliteStore;

type Backend = SqliteStore;
type Pool = SqlitePool;

async fn fresh() -> (SqliteStore, SqlitePool, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // The panel's own pool on the same file, as an application has it.
    let panel = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE panel_databases (name TEXT PRIMARY KEY)")
        .execute(&panel)
        .await
        .unwrap();
    (store, panel, dir)
}

async fn begin(panel: &SqlitePool) -> sqlx::Transaction<'static, sqlx::Sqlite> {
    panel.begin_with("BEGIN IMMEDIATE").await.unwrap()
}

transaction_tests!(
    fresh(),
    begin,
    "INSERT INTO panel_databases (name) VALUES (?)"
);
