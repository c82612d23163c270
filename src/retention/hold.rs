//! Legal holds: sealed `hold.placed` / `hold.released` entries that exempt
//! part of a trail from pruning and redaction, placed and released on a
//! [`Trail`].

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::read_all;
use super::record::parse_time;
use crate::event::{MAX_IDENTIFIER_LEN, MAX_TEXT_LEN};
use crate::model::{Body, Entry, EntryKind};
use crate::model::{format_timestamp, validate_trail_name};
use crate::store::Query;
use crate::write::{Receipt, Trail};
use crate::{Error, Result};

/// Body field names of hold records.
pub(crate) mod hold_fields {
    pub(crate) const ID: &str = "hold.id";
    pub(crate) const REASON: &str = "hold.reason";
    pub(crate) const AUTHORITY: &str = "hold.authority";
    pub(crate) const TRAILS: &str = "hold.trails";
    pub(crate) const FROM: &str = "hold.from";
    pub(crate) const UNTIL: &str = "hold.until";
    pub(crate) const TENANT: &str = "hold.tenant";
    pub(crate) const ACTOR: &str = "hold.actor";
    pub(crate) const IP: &str = "hold.ip";
    pub(crate) const TARGET: &str = "hold.target";
    pub(crate) const EXPIRES: &str = "hold.expires";
}

/// A legal hold: entries of the named trails recorded within a time range
/// (optionally only those of one tenant, actor, IP or target) must be kept,
/// unredacted, until the hold is released or expires.
///
/// A hold is placed by appending a sealed `hold_placed` entry to each trail
/// it covers ([`Trail::place_hold`](crate::Trail::place_hold)), so the
/// verifier knows it too and flags any pruning that ignored it.
///
/// Pruning keeps the whole time range of an active hold, filter or not: the
/// verifier can check a deleted range against a time range, but not against
/// the values of entries that are gone. The filter narrows what the hold
/// exempts from redaction and erasure requests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "narrowed with struct update syntax, `LegalHold { tenant, ..LegalHold::new(..) }`"
)]
pub struct LegalHold {
    /// The hold's id (e.g. the authority's file number).
    pub id: String,
    /// Why the data is held (e.g. `abuse investigation`).
    pub reason: String,
    /// Who ordered it (e.g. a prosecutor's office).
    pub authority: String,
    /// The trails it covers.
    pub trails: Vec<String>,
    /// Earliest entry time covered.
    pub from: DateTime<Utc>,
    /// Latest entry time covered; `None` covers everything after `from`.
    pub until: Option<DateTime<Utc>>,
    /// Only entries about this tenant.
    pub tenant: Option<String>,
    /// Only entries of this actor (login name).
    pub actor: Option<String>,
    /// Only entries from this client IP.
    pub ip: Option<IpAddr>,
    /// Only entries about this target id.
    pub target: Option<String>,
    /// When the hold lapses by itself, if it does.
    pub expires: Option<DateTime<Utc>>,
}

impl LegalHold {
    /// A hold on `trails` for entries recorded from `from` on, without
    /// filter, end or expiry; narrow it with the public fields.
    pub fn new(
        id: impl Into<String>,
        reason: impl Into<String>,
        authority: impl Into<String>,
        trails: impl IntoIterator<Item = impl Into<String>>,
        from: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            reason: reason.into(),
            authority: authority.into(),
            trails: trails.into_iter().map(Into::into).collect(),
            from,
            until: None,
            tenant: None,
            actor: None,
            ip: None,
            target: None,
            expires: None,
        }
    }

    /// Checks that the hold can be recorded and read back unambiguously.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidHold { reason });
        for (name, value, max) in [
            ("id", self.id.as_str(), MAX_IDENTIFIER_LEN),
            ("reason", self.reason.as_str(), MAX_TEXT_LEN),
            ("authority", self.authority.as_str(), MAX_TEXT_LEN),
        ] {
            if value.trim().is_empty() {
                return invalid(format!("the {name} is empty"));
            }
            if value.len() > max {
                return invalid(format!("the {name} is longer than {max} bytes"));
            }
            if value.chars().any(char::is_control) {
                return invalid(format!("the {name} contains control characters"));
            }
        }
        for value in [&self.tenant, &self.actor, &self.target]
            .into_iter()
            .flatten()
        {
            if value.is_empty()
                || value.len() > MAX_IDENTIFIER_LEN
                || value.chars().any(char::is_control)
            {
                return invalid(
                    "a filter value is empty, too long or contains control characters".into(),
                );
            }
        }
        if self.trails.is_empty() {
            return invalid("it names no trail".into());
        }
        for trail in &self.trails {
            validate_trail_name(trail)?;
        }
        if self.until.is_some_and(|until| until < self.from) {
            return invalid("its time range ends before it starts".into());
        }
        Ok(())
    }

    /// Whether the hold is in force at `now` (placed, not expired; release
    /// is tracked by the caller).
    pub fn in_force_at(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }

    /// Whether an entry recorded at `time` lies in the hold's time range.
    pub fn covers_time(&self, time: DateTime<Utc>) -> bool {
        time >= self.from && self.until.is_none_or(|until| time <= until)
    }

    /// Whether the time span `first..=last` meets the hold's time range.
    pub fn meets_span(&self, first: DateTime<Utc>, last: DateTime<Utc>) -> bool {
        last >= self.from && self.until.is_none_or(|until| first <= until)
    }

    /// Whether the hold has a tenant, actor, IP or target filter.
    pub fn is_filtered(&self) -> bool {
        self.tenant.is_some() || self.actor.is_some() || self.ip.is_some() || self.target.is_some()
    }

    /// Whether the entry is held: in the time range and matching every
    /// filter. Erased filter fields do not match.
    pub fn holds(&self, entry: &Entry) -> bool {
        let matches = |filter: &Option<String>, field: &str| {
            filter
                .as_deref()
                .is_none_or(|wanted| entry.value(field) == Some(wanted))
        };
        self.trails.contains(&entry.trail)
            && self.covers_time(entry.recorded_at)
            && matches(&self.tenant, "tenant")
            && matches(&self.actor, "actor.name")
            && matches(&self.target, "target.id")
            && self
                .ip
                .is_none_or(|ip| entry.value("context.ip") == Some(ip.to_string().as_str()))
    }

    pub(crate) fn to_body(&self) -> Body {
        use hold_fields::*;
        let mut body = Body::new();
        body.insert_public(ID, self.id.as_str());
        body.insert_public(REASON, crate::model::escape_text(&self.reason));
        body.insert_public(AUTHORITY, crate::model::escape_text(&self.authority));
        body.insert_public(TRAILS, self.trails.join(","));
        body.insert_public(FROM, format_timestamp(self.from));
        let optional = [
            (UNTIL, self.until.map(format_timestamp)),
            (TENANT, self.tenant.clone()),
            (ACTOR, self.actor.clone()),
            (IP, self.ip.map(|ip| ip.to_string())),
            (TARGET, self.target.clone()),
            (EXPIRES, self.expires.map(format_timestamp)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                body.insert_public(name, value);
            }
        }
        body
    }

    /// Reads a hold back from its `hold_placed` entry; `None` if the entry is
    /// not a well-formed one.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        use hold_fields::*;
        if entry.kind != EntryKind::HoldPlaced {
            return None;
        }
        let optional_time = |name| match entry.value(name) {
            None => Some(None),
            Some(text) => parse_time(text).map(Some),
        };
        Some(Self {
            id: entry.value(ID)?.to_owned(),
            reason: entry.value(REASON)?.to_owned(),
            authority: entry.value(AUTHORITY)?.to_owned(),
            trails: entry.value(TRAILS)?.split(',').map(str::to_owned).collect(),
            from: parse_time(entry.value(FROM)?)?,
            until: optional_time(UNTIL)?,
            tenant: entry.value(TENANT).map(str::to_owned),
            actor: entry.value(ACTOR).map(str::to_owned),
            ip: match entry.value(IP) {
                None => None,
                Some(text) => Some(text.parse().ok()?),
            },
            target: entry.value(TARGET).map(str::to_owned),
            expires: optional_time(EXPIRES)?,
        })
    }
}

/// The body of a `hold_released` entry.
pub(crate) fn release_body(id: &str, reason: &str) -> Body {
    let mut body = Body::new();
    body.insert_public(hold_fields::ID, id);
    body.insert_public(hold_fields::REASON, crate::model::escape_text(reason));
    body
}

/// The hold a `hold_released` entry releases.
pub(crate) fn released_id(entry: &Entry) -> Option<&str> {
    (entry.kind == EntryKind::HoldReleased)
        .then(|| entry.value(hold_fields::ID))
        .flatten()
}

/// The holds of one trail, folded from its hold entries in seq order.
#[derive(Clone, Debug, Default)]
pub struct HoldBook {
    holds: Vec<PlacedHold>,
}

/// A hold as recorded in a trail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlacedHold {
    /// The hold.
    pub hold: LegalHold,
    /// Seq of its `hold_placed` entry.
    pub placed_seq: u64,
    /// Seq of its `hold_released` entry, once released.
    pub released_seq: Option<u64>,
}

impl HoldBook {
    /// Folds one entry in (entries of other kinds are ignored).
    pub fn apply(&mut self, entry: &Entry) {
        if let Some(hold) = LegalHold::from_entry(entry) {
            self.holds.push(PlacedHold {
                hold,
                placed_seq: entry.seq,
                released_seq: None,
            });
        } else if let Some(id) = released_id(entry) {
            for placed in &mut self.holds {
                if placed.hold.id == id && placed.released_seq.is_none() {
                    placed.released_seq = Some(entry.seq);
                }
            }
        }
    }

    /// Every hold ever placed, in the order placed.
    pub fn all(&self) -> &[PlacedHold] {
        &self.holds
    }

    /// How many holds were ever placed, released ones included.
    pub fn len(&self) -> usize {
        self.holds.len()
    }

    /// Whether no hold was ever placed.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// The holds in force at `now` that were placed (and not released)
    /// before seq `before`.
    pub fn active(&self, before: u64, now: DateTime<Utc>) -> impl Iterator<Item = &LegalHold> {
        self.holds
            .iter()
            .filter(move |placed| {
                placed.placed_seq < before
                    && placed
                        .released_seq
                        .is_none_or(|released| released >= before)
                    && placed.hold.in_force_at(now)
            })
            .map(|placed| &placed.hold)
    }
}

impl Trail {
    /// Places a legal hold on this trail by appending a sealed `hold_placed`
    /// entry. The hold must name this trail; place it on every trail it
    /// names (see [`LegalHold`]).
    pub async fn place_hold(&self, hold: &LegalHold) -> Result<Receipt> {
        hold.validate()?;
        if !hold.trails.iter().any(|trail| trail == self.name()) {
            return Err(Error::InvalidHold {
                reason: format!("it does not name the {} trail", self.name()),
            });
        }
        if self
            .holds()
            .await?
            .active(u64::MAX, self.clock().now())
            .any(|h| h.id == hold.id)
        {
            return Err(Error::InvalidHold {
                reason: format!("a hold with id {:?} is already in force", hold.id),
            });
        }
        self.append_record(EntryKind::HoldPlaced, hold.to_body())
            .await
    }

    /// Releases a hold in force by appending a sealed `hold_released` entry.
    pub async fn release_hold(&self, id: &str, reason: &str) -> Result<Receipt> {
        let book = self.holds().await?;
        if !book
            .active(u64::MAX, self.clock().now())
            .any(|hold| hold.id == id)
        {
            return Err(Error::UnknownHold {
                trail: self.name().to_owned(),
                id: crate::model::escape_text(id).into_owned(),
            });
        }
        self.append_record(EntryKind::HoldReleased, release_body(id, reason))
            .await
    }

    /// Every hold placed on this trail, with its release if any, read from
    /// the trail's hold entries.
    pub async fn holds(&self) -> Result<HoldBook> {
        let mut entries = Vec::new();
        for kind in [EntryKind::HoldPlaced, EntryKind::HoldReleased] {
            let query = Query::new()
                .trail(self.name())
                .kind(kind)
                .include_restricted();
            read_all(self.store().as_ref(), query, |entry| entries.push(entry)).await?;
        }
        entries.sort_by_key(|entry| entry.seq);
        let mut book = HoldBook::default();
        for entry in &entries {
            book.apply(entry);
        }
        Ok(book)
    }
}
