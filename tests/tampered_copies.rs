//! The query columns of SQLite and PostgreSQL (copies of body values that
//! queries filter on) changed with plain SQL, as someone with database
//! access but no key would: readers never return an entry whose copies
//! disagree with its body, paging still covers every entry once, and the
//! verifier names the entry.

use crate::pg;
use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::TryStreamExt;
use sqlx::AssertSqlSafe;
use trailseal::{
    Actor, AuditReader, Entry, Event, FindingKind, ManualClock, Query, SealingKey, SqliteStore,
    Store, Subject, Trail, VerificationKey, Verifier, read::JsonLinesReader, store::Order,
};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

/// Raw write access to a backend's stored rows.
#[async_trait]
trait Raw: Send + Sync {
    /// Runs a statement the test made from fixed text and numbers.
    async fn execute(&self, statement: String);
}

struct RawSqlite(sqlx::SqlitePool);

#[async_trait]
impl Raw for RawSqlite {
    async fn execute(&self, statement: String) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&self.0)
            .await
            .unwrap();
    }
}

struct RawPostgres(sqlx::PgPool);

#[async_trait]
impl Raw for RawPostgres {
    async fn execute(&self, statement: String) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&self.0)
            .await
            .unwrap();
    }
}

/// A store, raw access to its rows, and the folder it lives in (if any).
type Fresh = (Arc<dyn Store>, Box<dyn Raw>, Option<tempfile::TempDir>);

async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (Arc::new(store), Box::new(RawSqlite(raw)), Some(dir))
}

async fn postgres() -> Fresh {
    let url = pg::fresh_database().await;
    let store = trailseal::PostgresStore::connect(&url).await.unwrap();
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    (Arc::new(store), Box::new(RawPostgres(raw)), None)
}

struct World {
    store: Arc<dyn Store>,
    raw: Box<dyn Raw>,
    _dir: Option<tempfile::TempDir>,
    access: Trail,
    verification: VerificationKey,
}

/// An `admin` trail of 30 events of two customers (every third one
/// kunde456's, the others kunde123's), IP addresses 192.0.2.0 to
/// 192.0.2.4 in turn, and an `access` trail for the readers' records.
async fn world((store, raw, dir): Fresh) -> World {
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
        let event = Event::builder("database.create")
            .actor(Actor::customer(tenant))
            .tenant(tenant)
            .target("database", format!("db{i}"))
            .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i % 5)))
            .build()
            .unwrap();
        admin.record(event).await.unwrap();
        clock.advance(TimeDelta::seconds(30));
    }
    admin.shutdown().await.unwrap();
    World {
        store,
        raw,
        _dir: dir,
        access,
        verification,
    }
}

impl World {
    async fn admin_entries(&self) -> Vec<Entry> {
        self.store.scan("admin", 0).try_collect().await.unwrap()
    }

    /// The seqs of the admin trail's events whose sealed tenant is `tenant`.
    async fn seqs_of(&self, tenant: &str) -> Vec<u64> {
        self.admin_entries()
            .await
            .iter()
            .filter(|entry| entry.value("tenant") == Some(tenant))
            .map(|entry| entry.seq)
            .collect()
    }

    async fn set_column(&self, column: &str, value: &str, seq: u64) {
        self.raw
            .execute(format!(
                "UPDATE entries SET {column} = '{value}' WHERE trail = 'admin' AND seq = {seq}"
            ))
            .await;
    }

    fn reader_for(&self, tenant: &str) -> AuditReader {
        AuditReader::for_tenant(
            self.store.clone(),
            self.access.clone(),
            Actor::customer(tenant),
            tenant,
        )
    }

    async fn verify_admin(&self) -> Vec<(FindingKind, u64)> {
        let report = Verifier::new(support::clone_key(&self.verification))
            .at(start() + TimeDelta::days(1))
            .verify_trail(self.store.as_ref(), "admin")
            .await
            .unwrap();
        report.findings.iter().map(|f| (f.kind, f.seq)).collect()
    }
}

/// Every page of a query, followed by its cursors; checks that no page
/// is larger than asked.
async fn all_pages(store: &dyn Store, query: Query) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut query = query;
    loop {
        let page = store.query(&query).await.unwrap();
        assert!(page.entries.len() <= query.limit);
        seqs.extend(page.entries.iter().map(|entry| entry.seq));
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return seqs,
        }
    }
}

async fn a_tenant_changed_in_its_column_is_shown_to_no_other_tenant_and_reported(fresh: Fresh) {
    let world = world(fresh).await;
    let own = world.seqs_of("kunde456").await;
    let seq = world.seqs_of("kunde123").await[3];
    world.set_column("tenant", "kunde456", seq).await;

    // The store's own query, then the confined reader's query and export.
    let by_tenant = Query::new().trail("admin").tenant("kunde456").limit(100);
    assert_eq!(
        all_pages(world.store.as_ref(), by_tenant.clone()).await,
        own
    );
    let reader = world.reader_for("kunde456");
    let page = reader.query(&by_tenant).await.unwrap();
    let shown: Vec<u64> = page.entries.iter().map(|entry| entry.seq).collect();
    assert_eq!(shown, own);
    let mut jsonl = Vec::new();
    reader
        .export_json_lines(&Subject::new().tenant("kunde456"), &mut jsonl)
        .await
        .unwrap();
    let exported: Vec<Entry> = JsonLinesReader::new(&jsonl[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(exported.iter().all(|entry| entry.seq != seq));
    assert!(
        exported
            .iter()
            .filter(|entry| entry.kind == trailseal::EntryKind::Event)
            .all(|entry| entry.value("tenant") == Some("kunde456"))
    );

    assert_eq!(
        world.verify_admin().await,
        [(FindingKind::ColumnMismatch, seq)]
    );
}

async fn a_subject_export_leaves_out_an_entry_whose_ip_column_was_changed(fresh: Fresh) {
    let world = world(fresh).await;
    let entries = world.admin_entries().await;
    let with_ip = |ip: &str| -> Vec<u64> {
        entries
            .iter()
            .filter(|entry| entry.value("context.ip") == Some(ip))
            .map(|entry| entry.seq)
            .collect()
    };
    let subject_ip = with_ip("192.0.2.4");
    let other = with_ip("192.0.2.1")[2];
    world.set_column("ip", "192.0.2.4", other).await;

    // The provider's staff export what they hold about an IP address.
    let staff = AuditReader::new(
        world.store.clone(),
        world.access.clone(),
        Actor::admin("dpo"),
    );
    let mut jsonl = Vec::new();
    staff
        .export_json_lines(
            &Subject::new().ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4))),
            &mut jsonl,
        )
        .await
        .unwrap();
    let exported: Vec<u64> = JsonLinesReader::new(&jsonl[..])
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.kind == trailseal::EntryKind::Event)
        .map(|entry| entry.seq)
        .collect();
    assert_eq!(exported, subject_ip);

    assert_eq!(
        world.verify_admin().await,
        [(FindingKind::ColumnMismatch, other)]
    );
}

async fn pages_neither_skip_nor_repeat_entries_when_rows_are_left_out(fresh: Fresh) {
    let world = world(fresh).await;
    let own = world.seqs_of("kunde456").await;
    let others = world.seqs_of("kunde123").await;
    // Runs of changed rows, at the start, inside and at the end of the
    // tenant's entries, so that pages end on them and on their neighbours.
    let changed = [
        others[0],
        others[4],
        others[5],
        others[6],
        others[7],
        others[12],
        others[others.len() - 1],
    ];
    for &seq in &changed {
        world.set_column("tenant", "kunde456", seq).await;
    }
    for limit in 1..=8 {
        for order in [Order::OldestFirst, Order::NewestFirst] {
            let mut query = Query::new().trail("admin").tenant("kunde456").limit(limit);
            query.order = order;
            let mut expected = own.clone();
            if order == Order::NewestFirst {
                expected.reverse();
            }
            assert_eq!(
                all_pages(world.store.as_ref(), query).await,
                expected,
                "limit {limit}, {order:?}"
            );
        }
    }
    let mut findings = world.verify_admin().await;
    findings.sort();
    assert_eq!(
        findings,
        changed.map(|seq| (FindingKind::ColumnMismatch, seq))
    );
}

macro_rules! on_both_sql_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_both_sql_backends!(
    a_tenant_changed_in_its_column_is_shown_to_no_other_tenant_and_reported,
    a_subject_export_leaves_out_an_entry_whose_ip_column_was_changed,
    pages_neither_skip_nor_repeat_entries_when_rows_are_left_out,
);
