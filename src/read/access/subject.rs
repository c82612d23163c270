//! A data subject: whatever identifies the person whose entries are
//! exported, and the merge of what each of its facets selects.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::StoreError;
use crate::model::Entry;
use crate::store::{Query, Store};

/// Entries per page while an export merges its subject's facets.
const EXPORT_PAGE: usize = 1000;

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
    pub(super) facets: Vec<Query>,
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
pub(super) struct FacetMerge {
    facets: Vec<FacetPages>,
}

struct FacetPages {
    query: Query,
    buffered: VecDeque<Entry>,
    exhausted: bool,
}

impl FacetMerge {
    pub(super) fn new(queries: Vec<Query>) -> Self {
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

    pub(super) async fn next(&mut self, store: &dyn Store) -> Result<Option<Entry>, StoreError> {
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
