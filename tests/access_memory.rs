//! The audited reader and subject exports on `MemoryStore`.

use trailseal::MemoryStore;

async fn fresh() -> (std::sync::Arc<dyn trailseal::Store>, ()) {
    (std::sync::Arc::new(MemoryStore::new()), ())
}

access_tests!(fresh());
