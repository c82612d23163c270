//! The audited reader and subject exports on the real PostgreSQL server the
//! test command provides.

use crate::pg;

use trailseal::PostgresStore;

async fn fresh() -> (std::sync::Arc<dyn trailseal::Store>, ()) {
    let url = pg::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    (std::sync::Arc::new(store), ())
}

access_tests!(fresh());
