//! The backend conformance suite against `PostgresStore`, on the real
//! PostgreSQL server the test command provides; every test gets its own
//! database, so they run in parallel.

mod conformance;
mod pg;

use std::sync::Arc;

use trailseal::{PostgresStore, Store};

async fn fresh() -> (Arc<dyn Store>, ()) {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    (Arc::new(store), ())
}

all_conformance_tests!(fresh());
