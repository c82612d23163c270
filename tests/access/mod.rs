//! The audited, tenant-confined reader and the data subject's exports,
//! written once and run on every backend.

/// Generates the tests for one backend; `$fresh` is an async expression
/// giving `(Arc<dyn Store>, guard)` for a fresh store.
#[macro_export]
macro_rules! access_tests {
    ($fresh:expr) => {
        use std::net::{IpAddr, Ipv4Addr};
        use std::sync::Arc;

        use chrono::{DateTime, TimeDelta, TimeZone, Utc};
        use futures_util::TryStreamExt;
        use trailseal::{
            Actor, AuditReader, Entry, Event, ManualClock, Query, SealingKey, Store, Subject,
            Trail, VerificationKey,
            read::{AccessError, CSV_COLUMNS, JsonLinesReader},
        };

        fn start() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
        }

        struct World {
            store: Arc<dyn Store>,
            /// Where the reader records its reads.
            access: Trail,
            verification: VerificationKey,
        }

        /// An `admin` trail with entries of two customers (some created by
        /// an administrator, one with a formula as its target id and one
        /// with quotes and a comma), and an `access` trail for the reads.
        async fn world(store: Arc<dyn Store>) -> World {
            let clock = ManualClock::new(start());
            let (sealing, verification) = SealingKey::generate("k1", start(), 900).unwrap();
            let key = Arc::new(sealing);
            let open = |name: &str| {
                Trail::builder(name, store.clone(), key.clone())
                    .clock(Arc::new(clock.clone()))
                    .start()
            };
            let admin = open("admin").await.unwrap();
            let access = open("access").await.unwrap();
            for i in 0..30u8 {
                let tenant = if i % 3 == 0 { "kunde456" } else { "kunde123" };
                let actor = if i % 4 == 0 {
                    Actor::admin("admin1")
                } else {
                    Actor::customer(tenant)
                };
                let target = match i {
                    4 => "shop \"live\", v2; 'b'".to_owned(),
                    8 => "=HYPERLINK(\"http://evil.example\")".to_owned(),
                    _ => format!("db{i}"),
                };
                let event = Event::builder("database.create")
                    .actor(actor)
                    .tenant(tenant)
                    .target("database", target)
                    .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i % 5)))
                    .build()
                    .unwrap();
                admin.record(event).await.unwrap();
                clock.advance(TimeDelta::seconds(30));
            }
            admin.shutdown().await.unwrap();
            World {
                store,
                access,
                verification,
            }
        }

        async fn all_entries(store: &dyn Store, trail: &str) -> Vec<Entry> {
            store.scan(trail, 0).try_collect().await.unwrap()
        }

        fn reader_for(world: &World, tenant: &str) -> AuditReader {
            AuditReader::for_tenant(
                world.store.clone(),
                world.access.clone(),
                Actor::customer(tenant),
                tenant,
            )
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn confined_reader_sees_only_its_tenant() {
            let (store, _guard) = $fresh.await;
            let world = world(store).await;
            let reader = reader_for(&world, "kunde123");
            let expected: Vec<u64> = all_entries(&*world.store, "admin")
                .await
                .iter()
                .filter(|e| e.value("tenant") == Some("kunde123"))
                .map(|e| e.seq)
                .collect();
            assert_eq!(expected.len(), 20);

            // Paged, both ways, with and without further filters.
            let mut seen = Vec::new();
            let mut query = Query::new().trail("admin").limit(7);
            loop {
                let page = reader.query(&query).await.unwrap();
                seen.extend(page.entries.iter().map(|e| e.seq));
                match page.next {
                    Some(cursor) => query = query.after(cursor),
                    None => break,
                }
            }
            assert_eq!(seen, expected);
            let newest = reader
                .query(&Query::new().trail("admin").newest_first().limit(3))
                .await
                .unwrap();
            let newest: Vec<u64> = newest.entries.iter().map(|e| e.seq).collect();
            assert_eq!(
                newest,
                expected.iter().rev().take(3).copied().collect::<Vec<_>>()
            );
            let by_admin = reader
                .query(&Query::new().actor("admin1").limit(100))
                .await
                .unwrap();
            assert!(!by_admin.entries.is_empty());
            assert!(
                by_admin
                    .entries
                    .iter()
                    .all(|e| e.value("tenant") == Some("kunde123"))
            );

            // Asking for another tenant is refused, not silently narrowed.
            let err = reader
                .query(&Query::new().tenant("kunde456"))
                .await
                .unwrap_err();
            assert!(matches!(err, AccessError::OtherTenant), "{err}");
            // Naming its own tenant is fine.
            let own = reader
                .query(&Query::new().trail("admin").tenant("kunde123").limit(100))
                .await
                .unwrap();
            assert_eq!(own.entries.len(), 20);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_read_and_export_is_audited_and_unaudited_reads_fail() {
            let (store, _guard) = $fresh.await;
            let world = world(store).await;
            let reader = reader_for(&world, "kunde123");
            reader
                .query(&Query::new().trail("admin").limit(5))
                .await
                .unwrap();
            let mut out = Vec::new();
            reader
                .export_json_lines(&Subject::new().tenant("kunde123"), &mut out)
                .await
                .unwrap();
            let audits: Vec<Entry> = all_entries(&*world.store, "access")
                .await
                .into_iter()
                .filter(|e| e.kind == trailseal::EntryKind::Event)
                .collect();
            let actions: Vec<&str> = audits.iter().map(|e| e.value("action").unwrap()).collect();
            assert_eq!(actions, ["audit_log.view", "audit_log.export"]);
            for audit in &audits {
                assert_eq!(audit.value("actor.name"), Some("kunde123"));
                assert_eq!(audit.value("tenant"), Some("kunde123"));
            }
            assert_eq!(audits[0].value("target.id"), Some("admin"));
            let meta = audits[0].value("metadata").unwrap();
            assert!(meta.contains("\"entries\":5"), "{meta}");
            assert!(meta.contains("tenant=kunde123"), "{meta}");

            // With the audit trail stopped, nothing is read.
            world.access.shutdown().await.unwrap();
            let err = reader.query(&Query::new()).await.unwrap_err();
            assert!(matches!(err, AccessError::Audit(_)), "{err}");
            let mut out = Vec::new();
            let err = reader
                .export_csv(&Subject::new().tenant("kunde123"), &mut out)
                .await
                .unwrap_err();
            assert!(matches!(err, AccessError::Audit(_)), "{err}");
            assert!(
                out.is_empty(),
                "nothing is written before the export is recorded"
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn subject_export_holds_every_entry_about_the_subject_once_and_checks() {
            let (store, _guard) = $fresh.await;
            let world = world(store).await;
            let reader = AuditReader::new(
                world.store.clone(),
                world.access.clone(),
                Actor::admin("dpo"),
            );
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
            let subject = Subject::new().tenant("kunde456").actor("admin1").ip(ip);
            let expected: Vec<u64> = all_entries(&*world.store, "admin")
                .await
                .iter()
                .filter(|e| {
                    e.value("tenant") == Some("kunde456")
                        || e.value("actor.name") == Some("admin1")
                        || e.value("context.ip") == Some("192.0.2.1")
                })
                .map(|e| e.seq)
                .collect();
            // Overlapping facets, so deduplication is exercised.
            assert!(expected.len() > 10 && expected.len() < 30);

            // Restricted entries are left out of queries, not out of the
            // subject's own export.
            let restricted = world
                .store
                .restrict("admin", &expected[..3], true)
                .await
                .unwrap();
            assert_eq!(restricted, 3);
            let visible = reader
                .query(&Query::new().trail("admin").limit(100))
                .await
                .unwrap();
            assert!(
                visible
                    .entries
                    .iter()
                    .all(|e| !expected[..3].contains(&e.seq))
            );
            let stored = all_entries(world.store.as_ref(), "admin").await.len();
            assert_eq!(visible.entries.len(), stored - 3, "all but the restricted");
            let mut jsonl = Vec::new();
            let written = reader
                .export_json_lines(&subject, &mut jsonl)
                .await
                .unwrap();
            let lines: Vec<Entry> = JsonLinesReader::new(&jsonl[..])
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(written as usize, lines.len());
            // The trail's genesis comes first: it says which key line the
            // entries are sealed on, so the export checks on its own.
            assert_eq!(lines[0].kind, trailseal::EntryKind::Genesis);
            let line = world
                .verification
                .key_line_of(&lines[0])
                .expect("an authentic genesis");
            let lines = &lines[1..];
            assert_eq!(lines.iter().map(|e| e.seq).collect::<Vec<_>>(), expected);
            for entry in lines {
                assert!(
                    world.verification.check_entry(entry, line),
                    "seq {}",
                    entry.seq
                );
            }
            // An entry whose personal value was erased still checks.
            let mut erased = lines[0].clone();
            let tenant = erased.body.get("tenant").unwrap().redacted("tenant");
            erased.body.insert("tenant", tenant);
            assert_eq!(erased.value("tenant"), None);
            assert!(world.verification.check_entry(&erased, line));
            let mut forged = lines[0].clone();
            forged.body.insert_public("outcome", "failure");
            assert!(!world.verification.check_entry(&forged, line));

            let mut csv_bytes = Vec::new();
            let rows = reader.export_csv(&subject, &mut csv_bytes).await.unwrap();
            assert_eq!(rows as usize, lines.len(), "the CSV has no key entries");
            let mut csv = csv::Reader::from_reader(&csv_bytes[..]);
            assert_eq!(
                csv.headers().unwrap().iter().collect::<Vec<_>>(),
                CSV_COLUMNS
            );
            let records: Vec<csv::StringRecord> = csv.records().collect::<Result<_, _>>().unwrap();
            assert_eq!(records.len(), lines.len());
            for (record, entry) in records.iter().zip(lines) {
                assert_eq!(&record[0], entry.trail);
                assert_eq!(record[1].parse::<u64>().unwrap(), entry.seq);
                assert_eq!(&record[17], entry.mac.to_hex());
                assert_eq!(&record[16], entry.body_commitment.to_hex());
            }
            // Event 8 (seq 9, by admin1) has a formula as its target id,
            // event 4 (seq 5, by admin1) quotes and a comma.
            let formula = records.iter().find(|r| &r[1] == "9").unwrap();
            assert_eq!(&formula[11], "'=HYPERLINK(\"http://evil.example\")");
            let quoted = records.iter().find(|r| &r[1] == "5").unwrap();
            assert_eq!(&quoted[11], "shop \"live\", v2; 'b'");
            let text = String::from_utf8(csv_bytes).unwrap();
            assert!(text.contains("\"shop \"\"live\"\", v2; 'b'\""), "{text}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn confined_export_leaves_out_other_tenants() {
            let (store, _guard) = $fresh.await;
            let world = world(store).await;
            let reader = reader_for(&world, "kunde123");
            let mut out = Vec::new();
            // admin1 acted for both customers; only kunde123's entries come.
            reader
                .export_json_lines(&Subject::new().actor("admin1"), &mut out)
                .await
                .unwrap();
            let lines: Vec<Entry> = JsonLinesReader::new(&out[..])
                .collect::<Result<_, _>>()
                .unwrap();
            // The trail's genesis, which belongs to no tenant, then the
            // tenant's entries.
            assert_eq!(lines[0].kind, trailseal::EntryKind::Genesis);
            assert!(lines.len() > 1);
            assert!(
                lines[1..]
                    .iter()
                    .all(|e| e.value("tenant") == Some("kunde123"))
            );
            let err = reader
                .export_csv(&Subject::new().tenant("kunde456"), &mut Vec::new())
                .await
                .unwrap_err();
            assert!(matches!(err, AccessError::OtherTenant), "{err}");
            let err = reader
                .export_csv(&Subject::new(), &mut Vec::new())
                .await
                .unwrap_err();
            assert!(matches!(err, AccessError::EmptySubject), "{err}");
        }
    };
}
