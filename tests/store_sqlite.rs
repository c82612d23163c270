//! The backend conformance suite against `SqliteStore`, on real database
//! files in temporary folders.

use std::sync::Arc;

use tempfile::TempDir;
use trailseal::{SqliteStore, Store};

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

trailseal_conformance::all_conformance_tests!(fresh());
