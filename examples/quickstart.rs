//! Records a few panel actions into an in-memory trail and verifies it.

use std::sync::Arc;

use trailseal::{Actor, Event, MemoryStore, SealingKey, Trail, Verifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (sealing, verification) = SealingKey::generate("quickstart", chrono::Utc::now(), 900)?;
    let store = MemoryStore::new();
    let trail = Trail::open("admin", Arc::new(store.clone()), Arc::new(sealing)).await?;
    let event = Event::builder("database.create")
        .actor(Actor::customer("kunde123"))
        .target("database", "abc456")
        .build()?;
    let receipt = trail.record(event).await?;
    println!("recorded admin#{}", receipt.seq);
    let report = Verifier::new(verification)
        .verify_trail(&store, "admin")
        .await?;
    print!("{report}");
    Ok(())
}
