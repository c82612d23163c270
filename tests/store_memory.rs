//! The backend conformance suite against `MemoryStore`.

mod conformance;

use std::sync::Arc;

use trailseal::{MemoryStore, Store};

async fn fresh() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

all_conformance_tests!(fresh());
