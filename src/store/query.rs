//! Finding entries by what they are about: [`Query`], [`Cursor`] and [`Page`].
//!
//! Every backend answers a query in the same order: by `recorded_at`, ties
//! broken by trail name, then seq. Within one trail that is seq order,
//! because the writer never lets timestamps go backwards. A page ends with a
//! [`Cursor`] from which the next page continues, so paging stays correct
//! while new entries are appended.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::Store;
use crate::StoreError;
use crate::model::{Entry, EntryKind};

/// Entries per page unless [`Query::limit`] says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page a query may ask for, so one page's memory stays bounded.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// Which way a query walks through the trail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(
    clippy::exhaustive_enums,
    reason = "oldest or newest first; there is no third order"
)]
pub enum Order {
    /// Oldest entry first.
    #[default]
    OldestFirst,
    /// Newest entry first.
    NewestFirst,
}

/// A filter over stored entries, with pagination.
///
/// Every filter that is set must match (they combine with AND). Filters on
/// personal fields (tenant, actor, target id, IP) only match values that are
/// still present: an erased value matches nothing. Times have microsecond
/// precision, like the entries.
///
/// ```
/// use trailseal::Query;
///
/// let failed_logins = Query::new()
///     .trail("mailbox")
///     .action("mailbox.login")
///     .failed()
///     .newest_first()
///     .limit(50);
/// # let _ = failed_logins;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// Only this trail.
    pub trail: Option<String>,
    /// Only entries of this kind.
    pub kind: Option<EntryKind>,
    /// Only entries recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries recorded before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this action (e.g. `database.create`).
    pub action: Option<String>,
    /// Only this tenant (customer id).
    pub tenant: Option<String>,
    /// Only this actor's login name.
    pub actor: Option<String>,
    /// Only targets of this type (e.g. `database`).
    pub target_type: Option<String>,
    /// Only this target id (usually together with `target_type`).
    pub target_id: Option<String>,
    /// Only this outcome: `success` or `failure`.
    pub outcome: Option<String>,
    /// Only this client IP address.
    pub ip: Option<IpAddr>,
    /// Only this request id.
    pub request_id: Option<String>,
    /// The direction of the walk.
    pub order: Order,
    /// Largest number of entries in the page, 1 to [`MAX_PAGE_SIZE`].
    pub limit: usize,
    /// Continue after this position (from [`Page::next`]).
    pub after: Option<Cursor>,
    /// Also return entries whose processing is restricted
    /// ([`Store::restrict`]); normal queries leave them out.
    pub include_restricted: bool,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            trail: None,
            kind: None,
            since: None,
            until: None,
            action: None,
            tenant: None,
            actor: None,
            target_type: None,
            target_id: None,
            outcome: None,
            ip: None,
            request_id: None,
            order: Order::OldestFirst,
            limit: DEFAULT_PAGE_SIZE,
            after: None,
            include_restricted: false,
        }
    }
}

impl Query {
    /// A query for everything, oldest first, [`DEFAULT_PAGE_SIZE`] per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this trail.
    pub fn trail(mut self, trail: impl Into<String>) -> Self {
        self.trail = Some(trail.into());
        self
    }

    /// Only entries of this kind (e.g. [`EntryKind::Event`]).
    pub fn kind(mut self, kind: EntryKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only entries recorded at or after `time`.
    pub fn since(mut self, time: DateTime<Utc>) -> Self {
        self.since = Some(time);
        self
    }

    /// Only entries recorded before `time`.
    pub fn until(mut self, time: DateTime<Utc>) -> Self {
        self.until = Some(time);
        self
    }

    /// Only this action.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only this tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Only this actor's login name.
    pub fn actor(mut self, name: impl Into<String>) -> Self {
        self.actor = Some(name.into());
        self
    }

    /// Only this target: a type and an id.
    pub fn target(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.target_type = Some(kind.into());
        self.target_id = Some(id.into());
        self
    }

    /// Only targets of this type, whatever their id.
    pub fn target_type(mut self, kind: impl Into<String>) -> Self {
        self.target_type = Some(kind.into());
        self
    }

    /// Only actions that succeeded.
    pub fn succeeded(mut self) -> Self {
        self.outcome = Some("success".to_owned());
        self
    }

    /// Only actions that failed.
    pub fn failed(mut self) -> Self {
        self.outcome = Some("failure".to_owned());
        self
    }

    /// Only this client IP address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Only this request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Newest entry first.
    pub fn newest_first(mut self) -> Self {
        self.order = Order::NewestFirst;
        self
    }

    /// Oldest entry first (the default).
    pub fn oldest_first(mut self) -> Self {
        self.order = Order::OldestFirst;
        self
    }

    /// Largest number of entries in the page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after the position of a previous page's [`Page::next`].
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Also returns entries whose processing is restricted (for the data
    /// subject's own requests, or an authority's).
    pub fn include_restricted(mut self) -> Self {
        self.include_restricted = true;
        self
    }

    /// Checks what a backend cannot answer: a page size out of range.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(StoreError::InvalidQuery(format!(
                "the page size must be 1 to {MAX_PAGE_SIZE}, not {}",
                self.limit
            )));
        }
        Ok(())
    }

    /// Whether an entry passes every filter, including the time range and
    /// the cursor; the reference every backend's answers must agree with.
    pub fn matches(&self, entry: &Entry) -> bool {
        let columns = IndexedFields::of(entry);
        let micros = entry.recorded_at.timestamp_micros();
        let ip = self.ip.map(|ip| ip.to_string());
        let equal = |wanted: Option<&str>, found: Option<&str>| match wanted {
            Some(wanted) => found == Some(wanted),
            None => true,
        };
        self.trail
            .as_deref()
            .is_none_or(|trail| trail == entry.trail)
            && self.kind.is_none_or(|kind| kind == entry.kind)
            && self
                .since
                .is_none_or(|since| micros >= since.timestamp_micros())
            && self
                .until
                .is_none_or(|until| micros < until.timestamp_micros())
            && equal(self.action.as_deref(), columns.action)
            && equal(self.tenant.as_deref(), columns.tenant)
            && equal(self.actor.as_deref(), columns.actor)
            && equal(self.target_type.as_deref(), columns.target_type)
            && equal(self.target_id.as_deref(), columns.target_id)
            && equal(self.outcome.as_deref(), columns.outcome)
            && equal(ip.as_deref(), columns.ip)
            && equal(self.request_id.as_deref(), columns.request_id)
            && self.after.as_ref().is_none_or(|cursor| {
                let ordering = SortKey::of(entry).cmp(&cursor.key());
                match self.order {
                    Order::OldestFirst => ordering == Ordering::Greater,
                    Order::NewestFirst => ordering == Ordering::Less,
                }
            })
    }
}

/// A position in a query's order, to continue from. Its text form (via
/// `Display` and `FromStr`) can be handed to a client and back; treat it as
/// opaque.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    recorded_at: i64,
    trail: String,
    seq: u64,
}

const CURSOR_VERSION: &str = "c1";

impl Cursor {
    /// The position of an entry: a query continued from here starts with
    /// the entry after it.
    pub fn after(entry: &Entry) -> Self {
        Self {
            recorded_at: entry.recorded_at.timestamp_micros(),
            trail: entry.trail.clone(),
            seq: entry.seq,
        }
    }

    /// The entry's time, in microseconds since 1970-01-01 UTC.
    pub fn recorded_at_micros(&self) -> i64 {
        self.recorded_at
    }

    /// The entry's trail.
    pub fn trail(&self) -> &str {
        &self.trail
    }

    /// The entry's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn key(&self) -> SortKey<'_> {
        SortKey {
            recorded_at: self.recorded_at,
            trail: &self.trail,
            seq: self.seq,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CURSOR_VERSION}.{}.{}.{}",
            self.recorded_at, self.seq, self.trail
        )
    }
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || StoreError::InvalidQuery("malformed cursor".to_owned());
        let mut parts = text.splitn(4, '.');
        if parts.next() != Some(CURSOR_VERSION) {
            return Err(invalid());
        }
        let recorded_at = parts.next().and_then(|p| p.parse().ok());
        let seq = parts.next().and_then(|p| p.parse().ok());
        let trail = parts
            .next()
            .filter(|t| crate::model::validate_trail_name(t).is_ok());
        match (recorded_at, seq, trail) {
            (Some(recorded_at), Some(seq), Some(trail)) => Ok(Self {
                recorded_at,
                trail: trail.to_owned(),
                seq,
            }),
            _ => Err(invalid()),
        }
    }
}

/// One page of a query's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "store implementations build it")]
pub struct Page {
    /// The entries, in the query's order.
    pub entries: Vec<Entry>,
    /// Where the next page starts, or `None` when this page is the last.
    pub next: Option<Cursor>,
}

/// Names of the event body fields that queries filter on.
pub(crate) mod field_names {
    pub(crate) const ACTION: &str = "action";
    pub(crate) const TENANT: &str = "tenant";
    pub(crate) const ACTOR: &str = "actor.name";
    pub(crate) const TARGET_TYPE: &str = "target.type";
    pub(crate) const TARGET_ID: &str = "target.id";
    pub(crate) const OUTCOME: &str = "outcome";
    pub(crate) const IP: &str = "context.ip";
    pub(crate) const REQUEST_ID: &str = "context.request_id";
}

/// The query columns the SQL backends keep beside each entry, in their
/// table order, each with the body field it copies.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const COPIED_FIELDS: [(&str, &str); 8] = [
    ("action", field_names::ACTION),
    ("tenant", field_names::TENANT),
    ("actor", field_names::ACTOR),
    ("target_type", field_names::TARGET_TYPE),
    ("target_id", field_names::TARGET_ID),
    ("ip", field_names::IP),
    ("outcome", field_names::OUTCOME),
    ("request_id", field_names::REQUEST_ID),
];

/// A copy of a body value that a store keeps beside an entry for queries
/// (an indexed column), where it disagrees with the entry's sealed body:
/// queries filter on the copy, so an entry whose copy was changed is found
/// by the wrong queries and hidden from the right ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CopyMismatch {
    /// The column, e.g. `ip`.
    pub column: &'static str,
    /// The body field it copies, e.g. `context.ip`.
    pub field: &'static str,
    /// Whether the column is empty (NULL) although the body has a value;
    /// otherwise the column holds a value the body does not: another one,
    /// or one of a field that is absent or erased.
    pub stored_empty: bool,
}

impl CopyMismatch {
    /// The copy in `column` of the body field `field` disagrees with the
    /// body; `stored_empty` says whether the column is empty (NULL).
    pub fn new(column: &'static str, field: &'static str, stored_empty: bool) -> Self {
        Self {
            column,
            field,
            stored_empty,
        }
    }
}

/// A query column as stored.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoredCopy<'r> {
    /// NULL: the body has no value there.
    Null,
    /// Text, in the backend's column form of a body value.
    Text(&'r str),
    /// Something that is not text: no writer stores it.
    Unreadable,
}

/// The query columns stored beside an entry (in [`COPIED_FIELDS`] order)
/// that disagree with its body: each must hold the value of the field it
/// copies, or be NULL where the field is absent or erased. `same` tells
/// whether stored text is the backend's column form of a body value.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn mismatched_copies(
    entry: &Entry,
    stored: &[StoredCopy<'_>; 8],
    same: impl Fn(&str, &str) -> bool,
) -> Vec<CopyMismatch> {
    let mut mismatches = Vec::new();
    for (&(column, field), stored) in COPIED_FIELDS.iter().zip(stored) {
        let agrees = match (stored, entry.body.value(field)) {
            (StoredCopy::Null, None) => true,
            (StoredCopy::Text(text), Some(value)) => same(text, value),
            _ => false,
        };
        if !agrees {
            mismatches.push(CopyMismatch::new(
                column,
                field,
                *stored == StoredCopy::Null,
            ));
        }
    }
    mismatches
}

/// The body values a query can filter on, as a backend indexes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexedFields<'a> {
    pub(crate) action: Option<&'a str>,
    pub(crate) tenant: Option<&'a str>,
    pub(crate) actor: Option<&'a str>,
    pub(crate) target_type: Option<&'a str>,
    pub(crate) target_id: Option<&'a str>,
    pub(crate) outcome: Option<&'a str>,
    pub(crate) ip: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> IndexedFields<'a> {
    pub(crate) fn of(entry: &'a Entry) -> Self {
        let value = |name| entry.body.value(name);
        Self {
            action: value(field_names::ACTION),
            tenant: value(field_names::TENANT),
            actor: value(field_names::ACTOR),
            target_type: value(field_names::TARGET_TYPE),
            target_id: value(field_names::TARGET_ID),
            outcome: value(field_names::OUTCOME),
            ip: value(field_names::IP),
            request_id: value(field_names::REQUEST_ID),
        }
    }
}

/// The query order: time, then trail, then seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey<'a> {
    recorded_at: i64,
    trail: &'a str,
    seq: u64,
}

impl<'a> SortKey<'a> {
    pub(crate) fn of(entry: &'a Entry) -> Self {
        Self {
            recorded_at: entry.recorded_at.timestamp_micros(),
            trail: &entry.trail,
            seq: entry.seq,
        }
    }
}

/// Keeps the first `limit + 1` matching entries in query order out of any
/// number offered, so a page costs memory for one page only.
pub(crate) struct PageCollector {
    order: Order,
    limit: usize,
    best: BinaryHeap<Ranked>,
}

struct Ranked {
    order: Order,
    entry: Entry,
}

impl Ranked {
    /// Ranks so that the heap's top is the entry that would come last.
    fn rank(&self, other: &Self) -> Ordering {
        let ordering = SortKey::of(&self.entry).cmp(&SortKey::of(&other.entry));
        match self.order {
            Order::OldestFirst => ordering,
            Order::NewestFirst => ordering.reverse(),
        }
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

impl PageCollector {
    pub(crate) fn new(query: &Query) -> Self {
        Self {
            order: query.order,
            limit: query.limit,
            best: BinaryHeap::with_capacity(query.limit.saturating_add(1).min(MAX_PAGE_SIZE + 1)),
        }
    }

    /// Offers an entry that matched the query.
    pub(crate) fn offer(&mut self, entry: &Entry) {
        let order = self.order;
        if self.best.len() > self.limit {
            let beats_last = self.best.peek().is_some_and(|last| {
                let ordering = SortKey::of(entry).cmp(&SortKey::of(&last.entry));
                match order {
                    Order::OldestFirst => ordering == Ordering::Less,
                    Order::NewestFirst => ordering == Ordering::Greater,
                }
            });
            if !beats_last {
                return;
            }
            self.best.pop();
        }
        self.best.push(Ranked {
            order,
            entry: entry.clone(),
        });
    }

    pub(crate) fn into_page(self) -> Page {
        let ranked = self.best.into_sorted_vec();
        page_from_sorted(
            ranked.into_iter().map(|ranked| ranked.entry).collect(),
            self.limit,
        )
    }
}

/// Turns up to `limit + 1` entries in query order into a page: the extra
/// entry only tells that there is a next page.
pub(crate) fn page_from_sorted(mut entries: Vec<Entry>, limit: usize) -> Page {
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(Cursor::after)
    } else {
        None
    };
    Page { entries, next }
}

/// Turns what a backend fetched for a query into a page: up to `limit + 1`
/// rows in query order, found by the query's columns. Only entries that
/// match the query by their own fields ([`Query::matches`]) are kept: a
/// row found by a query column whose copy disagrees with the body (changed
/// in the database) is left out. The next page continues after the last
/// row of this page's `limit`, kept or not, so that paging neither skips
/// nor repeats an entry; a page may then hold fewer entries than `limit`
/// and still have a next one.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn page_from_fetched(mut fetched: Vec<Entry>, query: &Query) -> Page {
    let next = if fetched.len() > query.limit {
        fetched.truncate(query.limit);
        fetched.last().map(Cursor::after)
    } else {
        None
    };
    fetched.retain(|entry| query.matches(entry));
    Page {
        entries: fetched,
        next,
    }
}

/// Answers a query by scanning whole trails: correct for any store, but
/// it reads every entry of the trails concerned. Backends with indexes
/// answer [`Store::query`] themselves.
pub async fn query_by_scan<S: Store + ?Sized>(
    store: &S,
    query: &Query,
) -> Result<Page, StoreError> {
    query.validate()?;
    let trails = match &query.trail {
        Some(trail) => vec![trail.clone()],
        None => store.trails().await?,
    };
    let mut collector = PageCollector::new(query);
    for trail in &trails {
        let mut entries = store.scan(trail, 0);
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            if query.matches(&entry) {
                collector.offer(&entry);
            }
        }
    }
    Ok(collector.into_page())
}
