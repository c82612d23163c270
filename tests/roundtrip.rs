use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use trailseal::{Actor, Event, ManualClock, MemoryStore, SealingKey, Store, Trail, Verifier};

#[tokio::test]
async fn recorded_events_verify_across_epochs() {
    let start = Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let (sealing, verification) = SealingKey::generate("k1", start, 900).unwrap();
    let store = MemoryStore::new();
    let trail = Trail::builder("admin", Arc::new(store.clone()), Arc::new(sealing))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    for i in 0..50 {
        let event = Event::builder("database.create")
            .actor(Actor::customer("kunde123"))
            .target("database", format!("db{i}"))
            .build()
            .unwrap();
        trail.record(event).await.unwrap();
        clock.advance(TimeDelta::minutes(1));
    }
    trail.seal_finished_epochs().await.unwrap();
    let report = Verifier::new(verification)
        .verify_trail(&store, "admin")
        .await
        .unwrap();
    println!("{report}");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.seals_verified, 3);
    assert_eq!(store.head("admin").await.unwrap().unwrap().seq, 53);
}
