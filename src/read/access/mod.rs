//! Reading the trail through the panel: [`AuditReader`], an audited handle
//! that may be confined to one tenant, and the exports for a data
//! subject's rights of access and portability ([`Subject`], its exports in
//! `subject_export`).
//!
//! Every read through the handle is itself recorded (`audit_log.view`,
//! `audit_log.export`) before any entry is handed out: a read that cannot
//! be audited does not happen.

mod subject;
mod subject_export;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::event::AuditContext;
use crate::event::HostingAction;
use crate::event::{Actor, Event};
use crate::model::Entry;
use crate::store::{Page, Query, Store};
use crate::write::Trail;
use crate::{Error, StoreError};

pub use subject::Subject;
pub use subject_export::CSV_COLUMNS;

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

#[cfg(test)]
mod tests {
    use super::*;

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
