//! Property tests: honest trails always verify; any change to stored data
//! never does.

use crate::support;

use std::sync::Arc;

use chrono::TimeDelta;
use proptest::prelude::*;
use trailseal::{Actor, Entry, Event, ManualClock, MemoryStore, SealingKey, Trail, Verifier};

struct Recorded {
    store: MemoryStore,
    verifier: Verifier,
}

#[derive(Clone, Debug)]
struct Step {
    action: &'static str,
    actor: String,
    advance_seconds: i64,
    size: Option<i64>,
    failure: Option<String>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::sample::select(vec![
            "database.create",
            "mailbox.delete",
            "session.login",
            "ftp.transfer",
        ]),
        "[a-z][a-z0-9]{0,11}",
        0i64..2000,
        proptest::option::of(any::<i64>()),
        proptest::option::of("\\PC{0,40}"),
    )
        .prop_map(|(action, actor, advance_seconds, size, failure)| Step {
            action,
            actor,
            advance_seconds,
            size,
            failure,
        })
}

fn record(steps: &[Step]) -> Recorded {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new(support::start_time());
        let (sealing, verification) =
            SealingKey::generate("k1", support::start_time(), 600).unwrap();
        let store = MemoryStore::new();
        let trail = Trail::builder(support::TRAIL, Arc::new(store.clone()), Arc::new(sealing))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .unwrap();
        for step in steps {
            let mut event = Event::builder(step.action).actor(Actor::customer(step.actor.clone()));
            if let Some(size) = step.size {
                event = event.meta("size", size);
            }
            if let Some(reason) = &step.failure {
                event = event.failure(reason.clone());
            }
            trail.record(event.build().unwrap()).await.unwrap();
            clock.advance(TimeDelta::seconds(step.advance_seconds));
        }
        trail.seal_finished_epochs().await.unwrap();
        Recorded {
            store,
            verifier: Verifier::new(verification),
        }
    })
}

fn verify(recorded: &Recorded, entries: Vec<Entry>) -> trailseal::TrailReport {
    recorded.store.restore(support::TRAIL, entries);
    futures_executor_block_on(
        recorded
            .verifier
            .verify_trail(&recorded.store, support::TRAIL),
    )
    .unwrap()
}

fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_event_streams_verify_clean(steps in prop::collection::vec(step(), 1..40)) {
        let recorded = record(&steps);
        let entries = recorded.store.dump(support::TRAIL);
        let report = verify(&recorded, entries);
        prop_assert!(report.is_intact(), "{}", report);
        prop_assert!(report.entries as usize > steps.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Mutates one byte of an entry's stored (JSON) form; whenever the result
    /// still decodes to a different entry, the verifier must find something.
    #[test]
    fn any_single_byte_mutation_is_detected(
        steps in prop::collection::vec(step(), 3..12),
        which in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"0123456789abcdefz:.-_ ".to_vec()),
    ) {
        let recorded = record(&steps);
        let mut entries = recorded.store.dump(support::TRAIL);
        let index = which.index(entries.len());
        let mut stored = serde_json::to_vec(&entries[index]).unwrap();
        let at = position.index(stored.len());
        prop_assume!(stored[at] != replacement);
        stored[at] = replacement;
        let mutated: Entry = match serde_json::from_slice(&stored) {
            Ok(entry) => entry,
            Err(_) => return Ok(()), // no longer decodes: a load error, not silent tampering
        };
        prop_assume!(mutated != entries[index]);
        entries[index] = mutated;
        let report = verify(&recorded, entries);
        prop_assert!(!report.is_intact(), "undetected mutation at byte {} of entry {}", at, index);
    }
}
