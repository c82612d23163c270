//! Recording inside the caller's own transaction, written once and run on a
//! real SQLite file and a real PostgreSQL server: the panel's change and
//! its audit entry commit or roll back together, and the trail verifies.

/// Generates the tests for one backend. `$fresh` is an async expression
/// giving `(store, panel pool, guard)` on one database; `$begin` begins a
/// panel transaction on a pool; `$insert` is the panel's insert statement
/// with one bound parameter.
#[macro_export]
macro_rules! transaction_tests {
    ($fresh:expr, $begin:expr, $insert:expr) => {
        use std::sync::Arc;

        use chrono::{DateTime, TimeDelta, TimeZone, Utc};
        use futures_util::TryStreamExt;
        use trailseal::{
            Actor, Entry, EntryKind, Event, ManualClock, Query, SealingKey, Store, Trail,
            VerificationKey, Verifier, write::TransactionRecorder,
        };

        fn start() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
        }

        struct Setup {
            recorder: TransactionRecorder,
            key: Arc<SealingKey>,
            verification: VerificationKey,
            clock: ManualClock,
        }

        fn setup() -> Setup {
            let clock = ManualClock::new(start());
            let (sealing, verification) = SealingKey::generate("k1", start(), 900).unwrap();
            let key = Arc::new(sealing);
            let recorder = TransactionRecorder::new("admin", key.clone())
                .unwrap()
                .clock(Arc::new(clock.clone()));
            Setup {
                recorder,
                key,
                verification,
                clock,
            }
        }

        fn created(name: &str) -> Event {
            Event::builder("database.create")
                .actor(Actor::customer("kunde123"))
                .tenant("kunde123")
                .target("database", name)
                .build()
                .unwrap()
        }

        async fn entries(store: &dyn Store) -> Vec<Entry> {
            store.scan("admin", 0).try_collect().await.unwrap()
        }

        async fn verify(store: &dyn Store, key: VerificationKey) {
            let report = Verifier::new(key)
                .verify_trail(store, "admin")
                .await
                .unwrap();
            assert!(report.is_intact(), "{report}");
        }

        /// Records one database creation with the panel's row, then commits
        /// or rolls back.
        async fn create_database(
            store: &Backend,
            panel: &Pool,
            setup: &Setup,
            name: &str,
            commit: bool,
        ) -> trailseal::Receipt {
            let mut tx = $begin(panel).await;
            sqlx::query($insert)
                .bind(name)
                .execute(&mut *tx)
                .await
                .unwrap();
            let receipt = store
                .record_in(&mut tx, &setup.recorder, &created(name))
                .await
                .unwrap();
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            receipt
        }

        async fn panel_rows(panel: &Pool) -> Vec<String> {
            sqlx::query_scalar("SELECT name FROM panel_databases ORDER BY name")
                .fetch_all(panel)
                .await
                .unwrap()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn committed_change_and_entry_are_both_stored() {
            let (store, panel, _guard) = $fresh.await;
            let setup = setup();
            let first = create_database(&store, &panel, &setup, "shop_db", true).await;
            setup.clock.advance(TimeDelta::seconds(5));
            let second = create_database(&store, &panel, &setup, "blog_db", true).await;

            assert_eq!(panel_rows(&panel).await, ["blog_db", "shop_db"]);
            let stored = entries(&store).await;
            assert_eq!(stored.len(), 3, "genesis and two events");
            assert_eq!(stored[0].kind, EntryKind::Genesis);
            assert_eq!((first.seq, second.seq), (1, 2));
            assert_eq!(stored[2].mac, second.mac);
            let page = store
                .query(&Query::new().target("database", "shop_db"))
                .await
                .unwrap();
            assert_eq!(page.entries.len(), 1);
            assert_eq!(page.entries[0].seq, first.seq);
            verify(&store, setup.verification).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rolled_back_change_leaves_neither_row_nor_entry() {
            let (store, panel, _guard) = $fresh.await;
            let setup = setup();
            create_database(&store, &panel, &setup, "shop_db", true).await;
            let head = store.head("admin").await.unwrap().unwrap();
            setup.clock.advance(TimeDelta::seconds(5));
            let lost = create_database(&store, &panel, &setup, "blog_db", false).await;
            assert_eq!(lost.seq, head.seq + 1);

            assert_eq!(panel_rows(&panel).await, ["shop_db"]);
            assert_eq!(store.head("admin").await.unwrap(), Some(head));
            let page = store
                .query(&Query::new().target("database", "blog_db"))
                .await
                .unwrap();
            assert!(page.entries.is_empty());
            // The seq the rolled-back entry had is free for the next one.
            setup.clock.advance(TimeDelta::seconds(5));
            let next = create_database(&store, &panel, &setup, "wiki_db", true).await;
            assert_eq!(next.seq, lost.seq);
            verify(&store, setup.verification).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rolled_back_epoch_seal_is_sealed_again_later() {
            let (store, panel, _guard) = $fresh.await;
            let setup = setup();
            create_database(&store, &panel, &setup, "shop_db", true).await;
            // Two epochs later: the entry would seal epoch 0 and 1 first.
            setup.clock.advance(TimeDelta::minutes(31));
            let lost = create_database(&store, &panel, &setup, "blog_db", false).await;
            assert_eq!(lost.seq, 4, "two seals before the event");
            // Even a second record in a transaction that saw its own seals
            // must not let the key forget epoch 0 before a commit.
            let mut tx = $begin(&panel).await;
            store
                .record_in(&mut tx, &setup.recorder, &created("a_db"))
                .await
                .unwrap();
            store
                .record_in(&mut tx, &setup.recorder, &created("b_db"))
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(
                setup.key.trail_epoch("admin"),
                Some(0),
                "epoch 0 is not sealed yet"
            );

            setup.clock.advance(TimeDelta::minutes(1));
            create_database(&store, &panel, &setup, "wiki_db", true).await;
            let kinds: Vec<EntryKind> = entries(&store).await.iter().map(|e| e.kind).collect();
            assert_eq!(
                kinds,
                [
                    EntryKind::Genesis,
                    EntryKind::Event,
                    EntryKind::EpochSeal,
                    EntryKind::EpochSeal,
                    EntryKind::Event,
                ]
            );
            // Once the seals are committed, the next record lets the key
            // move on (forward security).
            setup.clock.advance(TimeDelta::seconds(1));
            create_database(&store, &panel, &setup, "mail_db", true).await;
            assert_eq!(setup.key.trail_epoch("admin"), Some(2));
            verify(&store, setup.verification).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn group_commit_writer_and_transactions_share_one_chain() {
            let (store, panel, _guard) = $fresh.await;
            let setup = setup();
            let trail = Trail::builder("admin", Arc::new(store.clone()), setup.key.clone())
                .clock(Arc::new(setup.clock.clone()))
                .start()
                .await
                .unwrap();
            let mut writer = Vec::new();
            let mut in_tx = Vec::new();
            for i in 0..12 {
                if i % 2 == 0 {
                    writer.push(trail.record(created(&format!("w{i}"))).await.unwrap());
                } else {
                    let name = format!("t{i}");
                    in_tx.push(create_database(&store, &panel, &setup, &name, true).await);
                }
                setup.clock.advance(TimeDelta::minutes(4));
            }
            trail.seal_finished_epochs().await.unwrap();
            trail.shutdown().await.unwrap();
            let stored = entries(&store).await;
            for receipt in writer.iter().chain(&in_tx) {
                assert_eq!(stored[receipt.seq as usize].mac, receipt.mac);
            }
            assert_eq!(panel_rows(&panel).await.len(), 6);
            verify(&store, setup.verification).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn invalid_event_is_refused_and_the_transaction_goes_on() {
            let (store, panel, _guard) = $fresh.await;
            let setup = setup();
            let mut tx = $begin(&panel).await;
            sqlx::query($insert)
                .bind("shop_db")
                .execute(&mut *tx)
                .await
                .unwrap();
            let mut event = created("shop_db");
            event.actor = None;
            let err = store
                .record_in(&mut tx, &setup.recorder, &event)
                .await
                .unwrap_err();
            assert!(matches!(err, trailseal::Error::Invalid(_)), "{err}");
            tx.commit().await.unwrap();
            assert_eq!(panel_rows(&panel).await, ["shop_db"]);
            assert_eq!(store.head("admin").await.unwrap(), None);
        }
    };
}
