//! Recording inside the panel's own PostgreSQL transaction, on the real
//! server the test command provides; the panel's table and the trail live
//! in one database.

use crate::pg;

use sqlx::postgres::PgPool;
use trailseal::PostgresStore;

type Backend = PostgresStore;
type Pool = PgPool;

async fn fresh() -> (PostgresStore, PgPool, ()) {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let panel = PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE panel_databases (name TEXT PRIMARY KEY)")
        .execute(&panel)
        .await
        .unwrap();
    (store, panel, ())
}

async fn begin(panel: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    panel.begin().await.unwrap()
}

transaction_tests!(
    fresh(),
    begin,
    "INSERT INTO panel_databases (name) VALUES ($1)"
);
