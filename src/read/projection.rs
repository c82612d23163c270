//! Event sourcing: folding stored entries into state with a [`Projection`],
//! by streaming replay over a trail ([`replay`]) or over the entries a
//! [`Query`] selects ([`replay_query`]), and the built-in projections
//! [`ResourceInventory`] and [`LoginHistory`].
//!
//! Replay never holds more than one chunk of a trail (or one query page) in
//! memory. Values erased by redaction ([`crate::Field::Redacted`]) read as
//! unknown: the built-ins keep what they can and count what they could not
//! attribute. The built-ins serialize (serde), together with the
//! [`Replayed`] position, so a caller can keep a projection's state and
//! continue with [`replay_from`] instead of starting over.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::model::{Entry, EntryKind};
use crate::store::{Order, Query, Store};

/// State built from entries, one at a time.
///
/// `apply` sees every entry the replay reads, including the trail's own
/// records (genesis, epoch seals …); most projections only look at
/// [`EntryKind::Event`] entries.
///
/// ```
/// use trailseal::{Entry, EntryKind, read::Projection};
///
/// /// Counts failed actions per action name.
/// #[derive(Default)]
/// struct Failures(std::collections::BTreeMap<String, u64>);
///
/// impl Projection for Failures {
///     fn apply(&mut self, entry: &Entry) {
///         if entry.kind == EntryKind::Event && entry.value("outcome") == Some("failure") {
///             let action = entry.value("action").unwrap_or("unknown");
///             *self.0.entry(action.to_owned()).or_default() += 1;
///         }
///     }
/// }
/// ```
pub trait Projection {
    /// Folds one entry into the state.
    fn apply(&mut self, entry: &Entry);
}

/// How far a trail replay got: the hook for keeping a projection's state
/// and continuing later from `next_seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Replayed {
    /// Entries applied by this replay.
    pub entries: u64,
    /// The seq to continue from with [`replay_from`].
    pub next_seq: u64,
}

/// Replays a whole trail into `projection`, in seq order, streaming.
pub async fn replay<P: Projection + ?Sized>(
    store: &dyn Store,
    trail: &str,
    projection: &mut P,
) -> Result<Replayed, StoreError> {
    replay_from(store, trail, 0, projection).await
}

/// Replays a trail from seq `from` on (e.g. after a kept state whose
/// [`Replayed::next_seq`] it was), in seq order, streaming.
pub async fn replay_from<P: Projection + ?Sized>(
    store: &dyn Store,
    trail: &str,
    from: u64,
    projection: &mut P,
) -> Result<Replayed, StoreError> {
    let mut replayed = Replayed {
        entries: 0,
        next_seq: from,
    };
    let mut entries = store.scan(trail, from);
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        projection.apply(&entry);
        replayed.entries += 1;
        replayed.next_seq = entry.seq + 1;
    }
    Ok(replayed)
}

/// Replays the entries a query selects (e.g. one customer's, or one trail's
/// logins), page by page, oldest first whatever order the query asks for:
/// a projection folds history forwards. The query's page size is the chunk
/// read at once. Returns the number of entries applied.
pub async fn replay_query<P: Projection + ?Sized>(
    store: &dyn Store,
    query: &Query,
    projection: &mut P,
) -> Result<u64, StoreError> {
    let mut query = query.clone();
    query.order = Order::OldestFirst;
    let mut applied = 0;
    loop {
        let page = store.query(&query).await?;
        for entry in &page.entries {
            projection.apply(entry);
            applied += 1;
        }
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return Ok(applied),
        }
    }
}

/// When an event happened: its `occurred_at` (a server log line's own time)
/// when it has one, else when it was recorded.
fn event_time(entry: &Entry) -> DateTime<Utc> {
    entry
        .value("occurred_at")
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or(entry.recorded_at, |time| time.with_timezone(&Utc))
}

/// A successful event's action split into target type and verb
/// (`database.create` → `("database", "create")`).
fn succeeded_action(entry: &Entry) -> Option<(&str, &str)> {
    if entry.kind != EntryKind::Event || entry.value("outcome") != Some("success") {
        return None;
    }
    entry.value("action")?.rsplit_once('.')
}

/// The resource types [`ResourceInventory`] keeps, as target types.
pub const INVENTORY_TYPES: [&str; 4] = ["domain", "database", "mailbox", "ftp_account"];

/// One resource a customer has, as its creation recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resource {
    /// Its type: one of [`INVENTORY_TYPES`].
    pub kind: String,
    /// Its id (domain name, database name, mailbox address, FTP login).
    pub id: String,
    /// The customer it belongs to; `None` if the event named none or the
    /// value was erased.
    pub tenant: Option<String>,
    /// Who created it; `None` if the value was erased.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The trail of the entry that recorded the creation.
    pub trail: String,
    /// That entry's seq.
    pub seq: u64,
}

/// Which domains, databases, mailboxes and FTP accounts each customer has,
/// who created them and when: successful `<type>.create` events add a
/// resource, `<type>.delete` events and `customer.delete` (of its tenant)
/// remove it. Failed actions change nothing.
///
/// ```
/// # async fn run(store: &dyn trailseal::Store) -> Result<(), trailseal::StoreError> {
/// use trailseal::{read::{ResourceInventory, replay}};
///
/// let mut inventory = ResourceInventory::new();
/// replay(store, "admin", &mut inventory).await?;
/// for resource in inventory.of_tenant("kunde123") {
///     println!("{} {} since {}", resource.kind, resource.id, resource.created_at);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInventory {
    /// Type, then id.
    resources: BTreeMap<String, BTreeMap<String, Resource>>,
    unattributable: u64,
}

impl ResourceInventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resource of a type and id, if it exists.
    pub fn get(&self, kind: &str, id: &str) -> Option<&Resource> {
        self.resources.get(kind)?.get(id)
    }

    /// Every resource, by type, then id.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values().flat_map(BTreeMap::values)
    }

    /// The resources of one customer, by type, then id.
    pub fn of_tenant<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.iter()
            .filter(move |resource| resource.tenant.as_deref() == Some(tenant))
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.values().map(BTreeMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creations and deletions that could not be applied because the
    /// resource's id was erased.
    pub fn unattributable(&self) -> u64 {
        self.unattributable
    }
}

impl Projection for ResourceInventory {
    fn apply(&mut self, entry: &Entry) {
        let Some((kind, verb)) = succeeded_action(entry) else {
            return;
        };
        let target_id = entry.value("target.id");
        if kind == "customer" && verb == "delete" {
            match target_id {
                Some(customer) => {
                    for resources in self.resources.values_mut() {
                        resources
                            .retain(|_, resource| resource.tenant.as_deref() != Some(customer));
                    }
                }
                None => self.unattributable += 1,
            }
            return;
        }
        if !INVENTORY_TYPES.contains(&kind) || !matches!(verb, "create" | "delete") {
            return;
        }
        let Some(id) = target_id else {
            self.unattributable += 1;
            return;
        };
        let of_kind = self.resources.entry(kind.to_owned()).or_default();
        if verb == "delete" {
            of_kind.remove(id);
            return;
        }
        of_kind.insert(
            id.to_owned(),
            Resource {
                kind: kind.to_owned(),
                id: id.to_owned(),
                tenant: entry.value("tenant").map(str::to_owned),
                created_by: entry.value("actor.name").map(str::to_owned),
                created_at: event_time(entry),
                trail: entry.trail.clone(),
                seq: entry.seq,
            },
        );
    }
}

/// The login actions [`LoginHistory`] follows: panel sessions, FTP logins
/// and mailbox access (IMAP/POP logins).
pub const LOGIN_ACTIONS: [&str; 4] = [
    "session.login",
    "session.login_failed",
    "ftp.login",
    "mailbox.access",
];

/// One login attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoginAttempt {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// From which address; `None` if unknown or erased.
    pub ip: Option<String>,
    /// The trail of its entry.
    pub trail: String,
    /// Its entry's seq.
    pub seq: u64,
}

/// The login history of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccountLogins {
    /// The last successful login.
    pub last_success: Option<LoginAttempt>,
    /// The last failed attempt.
    pub last_failure: Option<LoginAttempt>,
    /// Failed attempts since the last successful login (all, if none).
    pub failures_since_success: u64,
    /// Failed attempts in all.
    pub failures: u64,
    /// Successful logins in all.
    pub successes: u64,
}

/// Last successful login and failed attempts per account, per service
/// (`session` for the panel, `ftp`, `mailbox`), from the
/// [`LOGIN_ACTIONS`]. The account is the actor's login name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginHistory {
    /// Service, then account.
    accounts: BTreeMap<String, BTreeMap<String, AccountLogins>>,
    unattributable: u64,
}

impl LoginHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The history of one account of a service (`session`, `ftp`,
    /// `mailbox`).
    pub fn get(&self, service: &str, account: &str) -> Option<&AccountLogins> {
        self.accounts.get(service)?.get(account)
    }

    /// Every account as `(service, account, history)`, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &AccountLogins)> {
        self.accounts.iter().flat_map(|(service, accounts)| {
            accounts
                .iter()
                .map(move |(account, logins)| (service.as_str(), account.as_str(), logins))
        })
    }

    /// Attempts that could not be attributed because the login name was
    /// erased.
    pub fn unattributable(&self) -> u64 {
        self.unattributable
    }
}

impl Projection for LoginHistory {
    fn apply(&mut self, entry: &Entry) {
        if entry.kind != EntryKind::Event {
            return;
        }
        let Some(action) = entry.value("action").filter(|a| LOGIN_ACTIONS.contains(a)) else {
            return;
        };
        let Some(account) = entry.value("actor.name") else {
            self.unattributable += 1;
            return;
        };
        let service = action
            .split_once('.')
            .map_or(action, |(service, _)| service);
        let failed = action.ends_with("_failed") || entry.value("outcome") != Some("success");
        let attempt = LoginAttempt {
            at: event_time(entry),
            ip: entry.value("context.ip").map(str::to_owned),
            trail: entry.trail.clone(),
            seq: entry.seq,
        };
        let logins = self
            .accounts
            .entry(service.to_owned())
            .or_default()
            .entry(account.to_owned())
            .or_default();
        if failed {
            logins.failures += 1;
            logins.failures_since_success += 1;
            logins.last_failure = Some(attempt);
        } else {
            logins.successes += 1;
            logins.failures_since_success = 0;
            logins.last_success = Some(attempt);
        }
    }
}
