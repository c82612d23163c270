//! Retention policies: when an entry expires, and when personal fields are
//! erased before that.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::model::{Entry, EntryKind};

/// What a policy may need to know beyond the entry itself, folded from the
/// trail before a run.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RetentionFacts {
    /// When each customer's contract ended, from `contract.terminated`
    /// events (customer id → the contract's last day).
    pub contract_ends: HashMap<String, NaiveDate>,
}

impl RetentionFacts {
    /// Folds one entry in: remembers a `contract.terminated` event's end
    /// date (its `ends_on` metadata, else the day it was recorded).
    pub fn apply(&mut self, entry: &Entry) {
        if entry.kind != EntryKind::Event || entry.value("action") != Some("contract.terminated") {
            return;
        }
        let Some(customer) = subject_of(entry) else {
            return;
        };
        let ends_on = entry
            .value("metadata")
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .and_then(|meta| {
                meta.get("ends_on")
                    .and_then(|v| v.as_str())
                    .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
            })
            .unwrap_or_else(|| entry.recorded_at.date_naive());
        self.contract_ends.insert(customer.to_owned(), ends_on);
    }
}

/// The customer an entry is about: its tenant, or its target when the
/// target is a customer.
pub fn subject_of(entry: &Entry) -> Option<&str> {
    entry.value("tenant").or_else(|| {
        (entry.value("target.type") == Some("customer"))
            .then(|| entry.value("target.id"))
            .flatten()
    })
}

/// Decides, per entry, when it expires and when its personal fields are
/// erased. Only events are ever subject to a policy: epoch seals, holds,
/// retention and redaction records are kept for good.
pub trait RetentionPolicy: Send + Sync {
    /// A short stable name, sealed into retention records.
    fn name(&self) -> String;

    /// When the entry may be deleted; `None` means never.
    fn expires_at(&self, entry: &Entry, facts: &RetentionFacts) -> Option<DateTime<Utc>>;

    /// Personal fields to erase before the entry expires, each with the
    /// time from which it is due.
    fn redactions(&self, _entry: &Entry) -> Vec<(&'static str, DateTime<Utc>)> {
        Vec::new()
    }

    /// The youngest age at which this policy deletes anything, if it has
    /// one: a run's cutoff, stated in its retention record, is that long
    /// before the run. `None` means any age.
    fn minimum_age(&self) -> Option<Duration>;

    /// The youngest age at which this policy deletes or redacts anything:
    /// runs do not look at younger entries. `None` means any age.
    fn scan_horizon(&self) -> Option<Duration> {
        self.minimum_age()
    }
}

/// Deletes entries older than a fixed age (the default for log trails:
/// 7 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "a newtype over its age")]
pub struct MaxAge(pub Duration);

impl MaxAge {
    /// Entries older than `days` days expire.
    pub fn days(days: i64) -> Self {
        Self(Duration::days(days))
    }
}

impl Default for MaxAge {
    fn default() -> Self {
        Self::days(7)
    }
}

impl RetentionPolicy for MaxAge {
    fn name(&self) -> String {
        format!("max_age:{}s", self.0.num_seconds())
    }

    fn expires_at(&self, entry: &Entry, _facts: &RetentionFacts) -> Option<DateTime<Utc>> {
        entry.recorded_at.checked_add_signed(self.0)
    }

    fn minimum_age(&self) -> Option<Duration> {
        Some(self.0)
    }
}

/// Keeps entries for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "a unit marker")]
pub struct Forever;

impl RetentionPolicy for Forever {
    fn name(&self) -> String {
        "forever".into()
    }

    fn expires_at(&self, _entry: &Entry, _facts: &RetentionFacts) -> Option<DateTime<Utc>> {
        None
    }

    fn minimum_age(&self) -> Option<Duration> {
        None
    }
}

/// Master data: an entry about a customer expires at the end of the year
/// after the customer's contract ended (the `contract.terminated` event,
/// found by folding the trail). Entries of customers whose contract runs,
/// and entries about no customer, are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "a unit marker")]
pub struct EndOfYearAfter;

impl RetentionPolicy for EndOfYearAfter {
    fn name(&self) -> String {
        "end_of_year_after_contract".into()
    }

    fn expires_at(&self, entry: &Entry, facts: &RetentionFacts) -> Option<DateTime<Utc>> {
        let ends_on = facts.contract_ends.get(subject_of(entry)?)?;
        // The first instant after 31 December of the following year.
        let year = ends_on.year().checked_add(2)?;
        Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single()
    }

    fn minimum_age(&self) -> Option<Duration> {
        None
    }
}

/// One policy for the actions it names (exactly, or by `prefix.*`), another
/// for the rest.
#[derive(Clone)]
pub struct ByAction {
    rules: Vec<(String, Arc<dyn RetentionPolicy>)>,
    otherwise: Arc<dyn RetentionPolicy>,
}

impl std::fmt::Debug for ByAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl ByAction {
    /// Applies `otherwise` to every action without a rule.
    pub fn new(otherwise: impl RetentionPolicy + 'static) -> Self {
        Self {
            rules: Vec::new(),
            otherwise: Arc::new(otherwise),
        }
    }

    /// Applies `policy` to `action` (`database.create`, or `database.*`).
    /// The first matching rule wins.
    pub fn rule(
        mut self,
        action: impl Into<String>,
        policy: impl RetentionPolicy + 'static,
    ) -> Self {
        self.rules.push((action.into(), Arc::new(policy)));
        self
    }

    fn youngest(&self, age: impl Fn(&dyn RetentionPolicy) -> Option<Duration>) -> Option<Duration> {
        self.rules
            .iter()
            .map(|(_, policy)| age(policy.as_ref()))
            .chain([age(self.otherwise.as_ref())])
            .try_fold(Duration::MAX, |youngest, age| Some(youngest.min(age?)))
    }

    fn policy_for(&self, entry: &Entry) -> &dyn RetentionPolicy {
        let action = entry.value("action").unwrap_or("");
        self.rules
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix(".*") {
                Some(prefix) => action
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => pattern == action,
            })
            .map_or(self.otherwise.as_ref(), |(_, policy)| policy.as_ref())
    }
}

impl RetentionPolicy for ByAction {
    fn name(&self) -> String {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|(action, policy)| format!("{action}={}", policy.name()))
            .collect();
        format!(
            "by_action({};otherwise={})",
            rules.join(";"),
            self.otherwise.name()
        )
    }

    fn expires_at(&self, entry: &Entry, facts: &RetentionFacts) -> Option<DateTime<Utc>> {
        self.policy_for(entry).expires_at(entry, facts)
    }

    fn redactions(&self, entry: &Entry) -> Vec<(&'static str, DateTime<Utc>)> {
        self.policy_for(entry).redactions(entry)
    }

    fn minimum_age(&self) -> Option<Duration> {
        self.youngest(|policy| policy.minimum_age())
    }

    fn scan_horizon(&self) -> Option<Duration> {
        self.youngest(|policy| policy.scan_horizon())
    }
}

/// Adds a redaction schedule to a policy: the named personal fields are
/// erased once the entry is older than `after` (e.g. the client IP after
/// 2 days, keeping the anonymised network `context.network`).
#[derive(Clone, Debug)]
pub struct RedactAfter<P> {
    policy: P,
    fields: Vec<&'static str>,
    after: Duration,
}

impl<P: RetentionPolicy> RedactAfter<P> {
    /// Erases `fields` from entries older than `after`; `policy` decides
    /// expiry.
    pub fn new(policy: P, fields: &[&'static str], after: Duration) -> Self {
        Self {
            policy,
            fields: fields.to_vec(),
            after,
        }
    }

    /// Anonymises client IPs after `after`: erases `context.ip`, keeping
    /// `context.network` (IPv4 /24, IPv6 /48).
    pub fn client_ip(policy: P, after: Duration) -> Self {
        Self::new(policy, &["context.ip"], after)
    }
}

impl<P: RetentionPolicy> RetentionPolicy for RedactAfter<P> {
    fn name(&self) -> String {
        format!(
            "{}+redact({}after{}s)",
            self.policy.name(),
            self.fields.join(","),
            self.after.num_seconds()
        )
    }

    fn expires_at(&self, entry: &Entry, facts: &RetentionFacts) -> Option<DateTime<Utc>> {
        self.policy.expires_at(entry, facts)
    }

    fn redactions(&self, entry: &Entry) -> Vec<(&'static str, DateTime<Utc>)> {
        let mut due = self.policy.redactions(entry);
        if let Some(at) = entry.recorded_at.checked_add_signed(self.after) {
            due.extend(self.fields.iter().map(|field| (*field, at)));
        }
        due
    }

    fn minimum_age(&self) -> Option<Duration> {
        self.policy.minimum_age()
    }

    fn scan_horizon(&self) -> Option<Duration> {
        Some(self.policy.scan_horizon()?.min(self.after))
    }
}
