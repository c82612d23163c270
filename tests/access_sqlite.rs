//! The audited reader and subject exports on a real SQLite file.

use trailseal::SqliteStore;

async fn fresh() -> (std::sync::Arc<dyn trailseal::Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    (std::sync::Arc::new(store), dir)
}

access_tests!(fresh());
