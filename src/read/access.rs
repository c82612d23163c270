//! Reading the trail through the panel: [`AuditReader`], an audited handle
//! that may be confined to one tenant, and the exports for a data
//! subject's rights of access and portability ([`Subject`]).
//!
//! Every read through the handle is itself recorded (`audit_log.view`,
//! `audit_log.export`) before any entry is handed out: a read that cannot
//! be audited does not happen.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::event::AuditContext;
use crate::event::HostingAction;
use crate::event::{Actor, Event};
use crate::model::{Entry, EntryKind, Field};
use crate::read::write_entry_line;
use crate::store::{Page, Query, Store};
use crate::write::Trail;
use crate::{Error, StoreError};

/// Why a read through an [`AuditReader`] was refused or failed. No entry
/// was handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The query names another tenant than the one the handle is confined
    /// to.
    #[error("this handle only reads its own tenant's entries; the query names another tenant")]
    OtherTenant,
    /// The subject has no facet: it would select nothing.
    #[error("the subject names nothing to export; add a tenant, actor, target or IP")]
    EmptySubject,
    /// Recording the read in the audit trail failed, so the read was not
    /// done.
    #[error("the read could not be audited, so it was not done: {0}")]
    Audit(#[source] Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the export failed.
    #[error("writing the export failed: {0}")]
    Write(#[source] std::io::Error),
}

/// An audited reader of a store, on behalf of one viewer, optionally
/// confined to one tenant.
///
/// A handle made with [`AuditReader::for_tenant`] adds its tenant to every
/// query and refuses queries that name another: the caller cannot widen
/// it. Entries whose tenant was erased match no tenant, so they are not
/// visible through a confined handle either.
///
/// ```
/// # async fn run(store: std::sync::Arc<dyn trailseal::Store>, admin_trail: trailseal::Trail)
/// #     -> Result<(), trailseal::read::AccessError> {
/// use trailseal::{Actor, AuditReader, Query};
///
/// // A customer looks at their own history in the panel.
/// let reader = AuditReader::for_tenant(store, admin_trail, Actor::customer("kunde123"), "kunde123");
/// let page = reader.query(&Query::new().newest_first().limit(20)).await?;
/// for entry in &page.entries {
///     println!("{} {}", entry.recorded_at, entry.value("action").unwrap_or("?"));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuditReader {
    store: Arc<dyn Store>,
    audit: Trail,
    viewer: Actor,
    tenant: Option<String>,
}

impl fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditReader")
            .field("audit", &self.audit)
            .field("tenant", &self.tenant.is_some())
            .finish_non_exhaustive()
    }
}

/// Entries per page while an export merges its subject's facets.
const EXPORT_PAGE: usize = 1000;

impl AuditReader {
    /// A reader of every tenant's entries (for the provider's staff),
    /// recording its reads as `viewer` in `audit`.
    pub fn new(store: Arc<dyn Store>, audit: Trail, viewer: Actor) -> Self {
        Self {
            store,
            audit,
            viewer,
            tenant: None,
        }
    }

    /// A reader confined to `tenant`'s entries, recording its reads as
    /// `viewer` in `audit`.
    pub fn for_tenant(
        store: Arc<dyn Store>,
        audit: Trail,
        viewer: Actor,
        tenant: impl Into<String>,
    ) -> Self {
        Self {
            store,
            audit,
            viewer,
            tenant: Some(tenant.into()),
        }
    }

    /// The tenant this reader is confined to, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// One page of a query (see [`Store::query`]), confined to the reader's
    /// tenant; recorded as `audit_log.view` before it is returned.
    pub async fn query(&self, query: &Query) -> Result<Page, AccessError> {
        let query = self.confine(query)?;
        let mut page = self.store.query(&query).await?;
        self.keep_own(&mut page.entries);
        let meta = [
            ("entries", Value::from(page.entries.len())),
            ("query", Value::from(describe(&query))),
        ];
        self.record(HostingAction::AuditLogView, query.trail.as_deref(), &meta)
            .await?;
        Ok(page)
    }

    /// Writes every entry about `subject` as JSON Lines: one entry per line,
    /// every stored field (as [`crate::read::export_json_lines`] writes them).
    /// Oldest first, each entry once; before the first entry of each trail,
    /// that trail's key entries (its genesis and key rotations, which hold
    /// no personal data), so that
    /// [`crate::VerificationKey::key_line_of`] and
    /// [`crate::VerificationKey::check_entry`] check every line with the
    /// export alone. Recorded as `audit_log.export` before the first line is
    /// written. Returns the number of lines written.
    pub async fn export_json_lines<W: Write>(
        &self,
        subject: &Subject,
        out: &mut W,
    ) -> Result<u64, AccessError> {
        self.export(subject, "jsonl", KeyEntries::Before, |entry| {
            write_entry_line(out, entry).map_err(AccessError::Write)
        })
        .await?
        .finish(|| out.flush())
    }

    /// Writes every entry about `subject` as CSV (RFC 4180 quoting), one
    /// row per entry under a header row of [`CSV_COLUMNS`]. Each row
    /// carries the trail, seq and MAC with the rest of the MAC input, so an
    /// auditor can match it to the sealed entry. Oldest first, each entry
    /// once. Recorded as `audit_log.export` before the first row.
    ///
    /// Spreadsheet formula injection is neutralised: a cell that starts
    /// with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
    /// apostrophe (`'`), which spreadsheets show as text. No sealed column
    /// (trail, seq, MACs, timestamps) can start with one of them, so the
    /// check columns are never changed.
    pub async fn export_csv<W: Write>(
        &self,
        subject: &Subject,
        out: &mut W,
    ) -> Result<u64, AccessError> {
        let mut csv = csv::Writer::from_writer(out);
        let csv_error = |err: csv::Error| AccessError::Write(err.into());
        // The header too waits until the export is recorded.
        let mut header = Some(CSV_COLUMNS);
        let done = self
            .export(subject, "csv", KeyEntries::Omitted, |entry| {
                if let Some(header) = header.take() {
                    csv.write_record(header).map_err(csv_error)?;
                }
                csv.write_record(csv_row(entry).map(neutralise))
                    .map_err(csv_error)
            })
            .await?;
        if let Some(header) = header {
            csv.write_record(header).map_err(csv_error)?;
        }
        done.finish(|| csv.flush())
    }

    /// Records the export, then streams the subject's entries to `write`,
    /// each trail's key entries before its first entry if asked to.
    async fn export(
        &self,
        subject: &Subject,
        format: &str,
        key_entries: KeyEntries,
        mut write: impl FnMut(&Entry) -> Result<(), AccessError>,
    ) -> Result<Exported, AccessError> {
        if subject.facets.is_empty() {
            return Err(AccessError::EmptySubject);
        }
        let facets = subject
            .facets
            .iter()
            .map(|facet| self.confine(facet))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = [
            ("format", Value::from(format)),
            (
                "subject",
                Value::from(facets.iter().map(describe).collect::<Vec<_>>().join(" | ")),
            ),
        ];
        self.record(HostingAction::AuditLogExport, None, &meta)
            .await?;
        let mut merge = FacetMerge::new(facets);
        let mut written = 0;
        let mut keyed = std::collections::BTreeSet::new();
        while let Some(entry) = merge.next(&*self.store).await? {
            if !self.is_own(&entry) {
                continue;
            }
            if key_entries == KeyEntries::Before && keyed.insert(entry.trail.clone()) {
                for key_entry in self.key_entries(&entry.trail).await? {
                    if key_entry.seq != entry.seq {
                        write(&key_entry)?;
                        written += 1;
                    }
                }
            }
            write(&entry)?;
            written += 1;
        }
        Ok(Exported(written))
    }

    /// A trail's genesis and key rotations: public records that say which
    /// key line its entries are sealed on. Read past the tenant filter, as
    /// they belong to no tenant.
    async fn key_entries(&self, trail: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for kind in [EntryKind::Genesis, EntryKind::KeyRotation] {
            let mut query = Query::new()
                .trail(trail)
                .kind(kind)
                .include_restricted()
                .limit(crate::store::MAX_PAGE_SIZE);
            loop {
                let page = self.store.query(&query).await?;
                entries.extend(page.entries);
                match page.next {
                    Some(cursor) => query = query.after(cursor),
                    None => break,
                }
            }
        }
        entries.sort_by_key(|entry| entry.seq);
        Ok(entries)
    }

    /// The query as this reader may run it.
    fn confine(&self, query: &Query) -> Result<Query, AccessError> {
        let mut query = query.clone();
        if let Some(tenant) = &self.tenant {
            match &query.tenant {
                Some(asked) if asked != tenant => return Err(AccessError::OtherTenant),
                _ => query.tenant = Some(tenant.clone()),
            }
        }
        Ok(query)
    }

    fn is_own(&self, entry: &Entry) -> bool {
        self.tenant
            .as_deref()
            .is_none_or(|tenant| entry.value("tenant") == Some(tenant))
    }

    /// Drops what is not the reader's tenant's: the store already filtered
    /// by tenant; this keeps a confined handle closed even if a backend's
    /// filter were wrong.
    fn keep_own(&self, entries: &mut Vec<Entry>) {
        entries.retain(|entry| self.is_own(entry));
    }

    async fn record(
        &self,
        action: HostingAction,
        trail: Option<&str>,
        meta: &[(&str, Value)],
    ) -> Result<(), AccessError> {
        let mut builder = Event::builder(action.spec().name())
            .actor(self.viewer.clone())
            .target("trail", trail.unwrap_or("*"));
        for (key, value) in meta {
            builder = builder.meta(*key, value.clone());
        }
        let mut event = builder
            .build()
            .map_err(|err| AccessError::Audit(err.into()))?;
        // The request's IP, user agent and request id come from the panel's
        // context; who reads and for which tenant come from this handle.
        AuditContext::apply_current(&mut event);
        event.actor = Some(self.viewer.clone());
        event.tenant = self.tenant.clone();
        self.audit
            .record(event)
            .await
            .map(drop)
            .map_err(AccessError::Audit)
    }
}

/// Whether an export writes each trail's key entries before its first
/// entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyEntries {
    Before,
    Omitted,
}

/// The count of an export whose entries were written, before the output
/// is flushed.
struct Exported(u64);

impl Exported {
    fn finish(self, flush: impl FnOnce() -> std::io::Result<()>) -> Result<u64, AccessError> {
        flush().map_err(AccessError::Write)?;
        Ok(self.0)
    }
}

/// A data subject: whatever identifies the person whose entries are
/// exported. An entry is about the subject if any facet matches it.
///
/// ```
/// use trailseal::Subject;
///
/// // A customer: their tenant's entries, and those of their logins.
/// let subject = Subject::new()
///     .tenant("kunde123")
///     .actor("kunde123")
///     .actor("info@example.com");
/// # let _ = subject;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    facets: Vec<Query>,
}

impl Subject {
    /// A subject with no facet yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries of this tenant (customer id).
    pub fn tenant(self, tenant: impl Into<String>) -> Self {
        self.facet(Query::new().tenant(tenant))
    }

    /// Entries this login name acted in.
    pub fn actor(self, name: impl Into<String>) -> Self {
        self.facet(Query::new().actor(name))
    }

    /// Entries about this target (e.g. the subject's mailbox).
    pub fn target(self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.facet(Query::new().target(kind, id))
    }

    /// Entries from this client IP address.
    pub fn ip(self, ip: IpAddr) -> Self {
        self.facet(Query::new().ip(ip))
    }

    /// Entries any query selects (its order, page size and cursor are
    /// ignored). Entries whose processing is restricted
    /// ([`Store::restrict`]) are included: the export answers the subject's
    /// own request.
    pub fn facet(mut self, query: Query) -> Self {
        self.facets
            .push(query.oldest_first().limit(EXPORT_PAGE).include_restricted());
        self
    }

    /// The facets narrowed to the events of one trail.
    pub(crate) fn event_queries<'a>(&'a self, trail: &'a str) -> impl Iterator<Item = Query> + 'a {
        self.facets
            .iter()
            .map(move |facet| facet.clone().trail(trail).kind(crate::EntryKind::Event))
    }
}

/// Merges the facets' answers (each in query order) into one stream in
/// query order, each entry once, holding one page per facet.
struct FacetMerge {
    facets: Vec<FacetPages>,
}

struct FacetPages {
    query: Query,
    buffered: VecDeque<Entry>,
    exhausted: bool,
}

impl FacetMerge {
    fn new(queries: Vec<Query>) -> Self {
        let facets = queries
            .into_iter()
            .map(|mut query| {
                query.after = None;
                FacetPages {
                    query,
                    buffered: VecDeque::new(),
                    exhausted: false,
                }
            })
            .collect();
        Self { facets }
    }

    async fn next(&mut self, store: &dyn Store) -> Result<Option<Entry>, StoreError> {
        for facet in &mut self.facets {
            if facet.buffered.is_empty() && !facet.exhausted {
                let page = store.query(&facet.query).await?;
                facet.exhausted = page.next.is_none();
                facet.query.after = page.next;
                facet.buffered.extend(page.entries);
            }
        }
        let first = self
            .facets
            .iter()
            .filter_map(|facet| facet.buffered.front())
            .min_by(|a, b| order_key(a).cmp(&order_key(b)))
            .map(|entry| (entry.recorded_at, entry.trail.clone(), entry.seq));
        let Some(first) = first else {
            return Ok(None);
        };
        let mut taken = None;
        for facet in &mut self.facets {
            let same = facet.buffered.front().is_some_and(|entry| {
                (entry.recorded_at, entry.trail.as_str(), entry.seq)
                    == (first.0, first.1.as_str(), first.2)
            });
            if same {
                taken = facet.buffered.pop_front();
            }
        }
        Ok(taken)
    }
}

/// The query order: time, trail, seq.
fn order_key(entry: &Entry) -> (chrono::DateTime<chrono::Utc>, &str, u64) {
    (entry.recorded_at, entry.trail.as_str(), entry.seq)
}

/// A short text of a query's filters, for the audit event of a read.
fn describe(query: &Query) -> String {
    let ip = query.ip.map(|ip| ip.to_string());
    let since = query.since.map(|time| time.to_rfc3339());
    let until = query.until.map(|time| time.to_rfc3339());
    let kind = query.kind.map(|kind| kind.as_str());
    let filters = [
        ("trail", query.trail.as_deref()),
        ("kind", kind),
        ("since", since.as_deref()),
        ("until", until.as_deref()),
        ("action", query.action.as_deref()),
        ("tenant", query.tenant.as_deref()),
        ("actor", query.actor.as_deref()),
        ("target_type", query.target_type.as_deref()),
        ("target_id", query.target_id.as_deref()),
        ("outcome", query.outcome.as_deref()),
        ("ip", ip.as_deref()),
        ("request_id", query.request_id.as_deref()),
    ];
    let mut text: Vec<String> = filters
        .iter()
        .filter_map(|(name, value)| value.map(|value| format!("{name}={value}")))
        .collect();
    if query.include_restricted {
        text.push("include_restricted".to_owned());
    }
    if text.is_empty() {
        "all".to_owned()
    } else {
        text.join(" ")
    }
}

/// The columns of [`AuditReader::export_csv`], in order. `fields` holds
/// every body field still present as a JSON object (erased ones as
/// `null`); `prev_mac`, `body_commitment` and `mac` are lowercase hex, the
/// way [`crate::read::export_json_lines`] writes them.
pub const CSV_COLUMNS: [&str; 18] = [
    "trail",
    "seq",
    "epoch",
    "key_id",
    "recorded_at",
    "kind",
    "action",
    "outcome",
    "actor",
    "tenant",
    "target_type",
    "target_id",
    "ip",
    "request_id",
    "fields",
    "prev_mac",
    "body_commitment",
    "mac",
];

fn csv_row(entry: &Entry) -> [String; 18] {
    let value = |name: &str| entry.value(name).unwrap_or_default().to_owned();
    let fields: serde_json::Map<String, Value> = entry
        .body
        .iter()
        .map(|(name, field)| {
            let value = match field {
                Field::Redacted { .. } => Value::Null,
                other => Value::from(other.value().unwrap_or_default()),
            };
            (name.to_owned(), value)
        })
        .collect();
    [
        entry.trail.clone(),
        entry.seq.to_string(),
        entry.epoch.to_string(),
        entry.key_id.clone(),
        crate::model::format_timestamp(entry.recorded_at),
        entry.kind.as_str().to_owned(),
        value("action"),
        value("outcome"),
        value("actor.name"),
        value("tenant"),
        value("target.type"),
        value("target.id"),
        value("context.ip"),
        value("context.request_id"),
        Value::Object(fields).to_string(),
        entry.prev_mac.to_hex(),
        entry.body_commitment.to_hex(),
        entry.mac.to_hex(),
    ]
}

/// A cell a spreadsheet will not run as a formula (OWASP's advice on CSV
/// injection: prefix the characters that start one).
fn neutralise(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starters_get_an_apostrophe_and_nothing_else_changes() {
        for cell in ["=1+1", "+49 30", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell.to_owned()), format!("'{cell}"));
        }
        for cell in ["kunde123", "", "a=b", " =1", "'=1", "2026-11-29T08:00:00Z"] {
            assert_eq!(neutralise(cell.to_owned()), cell);
        }
    }

    #[test]
    fn describe_names_only_the_filters_set() {
        assert_eq!(describe(&Query::new()), "all");
        let query = Query::new().trail("admin").tenant("kunde123").failed();
        assert_eq!(
            describe(&query),
            "trail=admin tenant=kunde123 outcome=failure"
        );
    }
}
