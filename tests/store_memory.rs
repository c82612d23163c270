//! The backend conformance suite against `MemoryStore`.

use std::sync::Arc;

use trailseal::{MemoryStore, Store};

async fn fresh() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

trailseal_conformance::all_conformance_tests!(fresh());
