//! Projections: the resource inventory and the login history folded from
//! real trails (a SQLite file; redaction on the in-memory store, whose
//! entries a test can rewrite), streaming replay, continuing from a kept
//! state, and replay over a filtered query.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use trailseal::{
    Actor, Event, ManualClock, MemoryStore, Query, SealingKey, SqliteStore, Store, Trail,
    read::{LoginHistory, Replayed, ResourceInventory, replay, replay_from, replay_query},
};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()
}

struct Panel {
    store: Arc<dyn Store>,
    trail: Trail,
    clock: ManualClock,
}

impl Panel {
    async fn open(store: Arc<dyn Store>) -> Self {
        let clock = ManualClock::new(start());
        let (sealing, _) = SealingKey::generate("k1", start(), 900).unwrap();
        let trail = Trail::builder("admin", store.clone(), Arc::new(sealing))
            .clock(Arc::new(clock.clone()))
            .start()
            .await
            .unwrap();
        Self {
            store,
            trail,
            clock,
        }
    }

    async fn record(&self, event: Event) -> u64 {
        let receipt = self.trail.record(event).await.unwrap();
        self.clock.advance(TimeDelta::minutes(1));
        receipt.seq
    }

    /// `actor` does `action` on a `kind` target for `tenant`.
    async fn act(&self, actor: Actor, tenant: &str, action: &str, kind: &str, id: &str) -> u64 {
        let event = Event::builder(action.to_owned())
            .actor(actor)
            .tenant(tenant)
            .target(kind, id)
            .build()
            .unwrap();
        self.record(event).await
    }
}

async fn sqlite_panel() -> (Panel, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trail.db"))
        .await
        .unwrap();
    (Panel::open(Arc::new(store)).await, dir)
}

/// Resources as `(kind, id)` pairs.
fn listed<'a>(
    resources: impl Iterator<Item = &'a trailseal::read::Resource>,
) -> Vec<(String, String)> {
    resources.map(|r| (r.kind.clone(), r.id.clone())).collect()
}

async fn hosting_history(panel: &Panel) {
    let kunde = || Actor::customer("kunde123");
    panel
        .act(
            kunde(),
            "kunde123",
            "domain.create",
            "domain",
            "example.com",
        )
        .await;
    panel
        .act(
            kunde(),
            "kunde123",
            "database.create",
            "database",
            "shop_db",
        )
        .await;
    panel
        .act(
            kunde(),
            "kunde123",
            "mailbox.create",
            "mailbox",
            "info@example.com",
        )
        .await;
    panel
        .act(
            Actor::admin("admin1"),
            "kunde123",
            "ftp_account.create",
            "ftp_account",
            "kunde123_ftp",
        )
        .await;
    panel
        .act(
            Actor::admin("admin1"),
            "kunde456",
            "database.create",
            "database",
            "blog_db",
        )
        .await;
    panel
        .act(
            Actor::admin("admin1"),
            "kunde456",
            "domain.create",
            "domain",
            "blog.example",
        )
        .await;
    panel
        .act(
            kunde(),
            "kunde123",
            "database.delete",
            "database",
            "shop_db",
        )
        .await;
    panel
        .act(
            kunde(),
            "kunde123",
            "subdomain.create",
            "subdomain",
            "www.example.com",
        )
        .await;
    let failed = Event::builder("database.create")
        .actor(kunde())
        .tenant("kunde123")
        .target("database", "huge_db")
        .failure("quota exceeded")
        .build()
        .unwrap();
    panel.record(failed).await;
    panel
        .act(
            kunde(),
            "kunde123",
            "database.create",
            "database",
            "wiki_db",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_follows_creations_deletions_and_ignores_failures() {
    let (panel, _dir) = sqlite_panel().await;
    hosting_history(&panel).await;
    let mut inventory = ResourceInventory::new();
    let replayed = replay(&*panel.store, "admin", &mut inventory)
        .await
        .unwrap();
    assert_eq!(replayed.entries, 11, "genesis and ten events");
    assert_eq!(replayed.next_seq, 11);

    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, i)| (k.to_string(), i.to_string()))
            .collect()
    };
    assert_eq!(
        listed(inventory.of_tenant("kunde123")),
        pairs(&[
            ("database", "wiki_db"),
            ("domain", "example.com"),
            ("ftp_account", "kunde123_ftp"),
            ("mailbox", "info@example.com"),
        ])
    );
    assert_eq!(
        listed(inventory.of_tenant("kunde456")),
        pairs(&[("database", "blog_db"), ("domain", "blog.example")])
    );
    let ftp = inventory.get("ftp_account", "kunde123_ftp").unwrap();
    assert_eq!(ftp.created_by.as_deref(), Some("admin1"));
    assert_eq!(ftp.created_at, start() + TimeDelta::minutes(3));
    assert_eq!((ftp.trail.as_str(), ftp.seq), ("admin", 4));
    assert!(inventory.get("database", "huge_db").is_none());
    assert_eq!(inventory.len(), 6);

    // Deleting the customer removes everything it had.
    panel
        .act(
            Actor::admin("admin1"),
            "kunde456",
            "customer.delete",
            "customer",
            "kunde456",
        )
        .await;
    let mut inventory = ResourceInventory::new();
    replay(&*panel.store, "admin", &mut inventory)
        .await
        .unwrap();
    assert_eq!(inventory.of_tenant("kunde456").count(), 0);
    assert_eq!(inventory.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_history_keeps_last_success_and_counts_failures() {
    let (panel, _dir) = sqlite_panel().await;
    let ip = |last| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
    let login = |action: &str, who: &str, last: u8| {
        Event::builder(action.to_owned())
            .actor(Actor::customer(who))
            .target("session", "panel")
            .ip(ip(last))
    };
    let success = panel
        .record(login("session.login", "kunde123", 1).build().unwrap())
        .await;
    for _ in 0..2 {
        let failed = login("session.login_failed", "kunde123", 66)
            .failure("wrong password")
            .build()
            .unwrap();
        panel.record(failed).await;
    }
    panel
        .record(
            login("ftp.login", "kunde123_ftp", 7)
                .failure("530")
                .build()
                .unwrap(),
        )
        .await;
    panel
        .record(login("ftp.login", "kunde123_ftp", 7).build().unwrap())
        .await;
    // A mailbox login from a server log, with the log line's own time.
    let logged_at = start() - TimeDelta::hours(1);
    let mailbox = login("mailbox.access", "info@example.com", 9)
        .occurred_at(logged_at)
        .build()
        .unwrap();
    panel.record(mailbox).await;
    panel
        .act(
            Actor::customer("kunde123"),
            "kunde123",
            "database.create",
            "database",
            "x",
        )
        .await;

    let mut history = LoginHistory::new();
    replay(&*panel.store, "admin", &mut history).await.unwrap();
    let panel_logins = history.get("session", "kunde123").unwrap();
    assert_eq!(panel_logins.successes, 1);
    assert_eq!(panel_logins.failures, 2);
    assert_eq!(panel_logins.failures_since_success, 2);
    assert_eq!(panel_logins.last_success.as_ref().unwrap().seq, success);
    let failure = panel_logins.last_failure.as_ref().unwrap();
    assert_eq!(failure.ip.as_deref(), Some("192.0.2.66"));
    let ftp = history.get("ftp", "kunde123_ftp").unwrap();
    assert_eq!(
        (ftp.successes, ftp.failures, ftp.failures_since_success),
        (1, 1, 0)
    );
    let mailbox = history.get("mailbox", "info@example.com").unwrap();
    assert_eq!(mailbox.last_success.as_ref().unwrap().at, logged_at);
    assert_eq!(history.iter().count(), 3, "database.create is no login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_continues_from_a_kept_state_as_if_never_stopped() {
    let (panel, _dir) = sqlite_panel().await;
    hosting_history(&panel).await;
    let mut inventory = ResourceInventory::new();
    let replayed = replay(&*panel.store, "admin", &mut inventory)
        .await
        .unwrap();
    // Kept as JSON, as a caller would store it.
    let kept = serde_json::to_string(&(&inventory, replayed)).unwrap();

    panel
        .act(
            Actor::customer("kunde123"),
            "kunde123",
            "mailbox.delete",
            "mailbox",
            "info@example.com",
        )
        .await;
    panel
        .act(
            Actor::customer("kunde789"),
            "kunde789",
            "domain.create",
            "domain",
            "new.example",
        )
        .await;

    let (mut resumed, position): (ResourceInventory, Replayed) =
        serde_json::from_str(&kept).unwrap();
    let more = replay_from(&*panel.store, "admin", position.next_seq, &mut resumed)
        .await
        .unwrap();
    assert_eq!(more.entries, 2);
    let mut full = ResourceInventory::new();
    replay(&*panel.store, "admin", &mut full).await.unwrap();
    assert_eq!(resumed, full);
    assert!(full.get("mailbox", "info@example.com").is_none());
    assert!(full.get("domain", "new.example").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_over_a_query_folds_one_customer_in_time_order() {
    let (panel, _dir) = sqlite_panel().await;
    hosting_history(&panel).await;
    let mut full = ResourceInventory::new();
    replay(&*panel.store, "admin", &mut full).await.unwrap();
    let mut own = ResourceInventory::new();
    // Newest first and tiny pages: the replay still folds oldest first
    // (else the deleted shop_db would come back) across many pages.
    let query = Query::new().tenant("kunde123").newest_first().limit(2);
    let applied = replay_query(&*panel.store, &query, &mut own).await.unwrap();
    assert_eq!(applied, 8);
    assert_eq!(listed(own.iter()), listed(full.of_tenant("kunde123")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_values_read_as_unknown_and_break_nothing() {
    let memory = MemoryStore::new();
    let panel = Panel::open(Arc::new(memory.clone())).await;
    hosting_history(&panel).await;
    let login = Event::builder("session.login")
        .actor(Actor::customer("kunde123"))
        .target("session", "panel")
        .build()
        .unwrap();
    panel.record(login).await;
    panel.trail.shutdown().await.unwrap();

    let mut entries = memory.dump("admin");
    let mut erase = |seq: usize, field: &str| {
        let body = &mut entries[seq].body;
        let redacted = body.get(field).unwrap().redacted(field);
        body.insert(field.to_owned(), redacted);
    };
    erase(1, "tenant"); // domain.create example.com
    erase(2, "target.id"); // database.create shop_db
    erase(11, "actor.name"); // session.login
    memory.restore("admin", entries);

    let mut inventory = ResourceInventory::new();
    replay(&memory, "admin", &mut inventory).await.unwrap();
    let domain = inventory.get("domain", "example.com").unwrap();
    assert_eq!(domain.tenant, None);
    assert_eq!(inventory.unattributable(), 1, "shop_db's creation");
    // Its deletion still names it, and removes nothing that is there.
    assert!(inventory.get("database", "shop_db").is_none());
    let mut history = LoginHistory::new();
    replay(&memory, "admin", &mut history).await.unwrap();
    assert_eq!(history.unattributable(), 1);
    assert_eq!(history.iter().count(), 0);
}
