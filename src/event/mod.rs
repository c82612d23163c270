//! What the application records: events, their parts, a builder and the
//! validation that keeps hostile input out of the trail; typed actions and
//! the hosting panel's catalog of them; the request context; secrets.

mod action;
mod context;
mod hosting;
mod secrets;

#[doc(hidden)]
pub use action::checks;
pub use action::{Action, ActionSpec, Catalog, STANDARD_PLACEHOLDERS};
pub use context::AuditContext;
pub use hosting::HostingAction;
pub(crate) use secrets::refuse_secrets;
pub use secrets::{
    SECRET_MARKER, SECRET_NAMES, SecretPolicy, is_secret_name, register_secret_names,
};

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::model::{Body, Salt, escape_text, format_timestamp, is_dangerous, truncate_to_micros};

/// Longest identifier (login name, tenant, target id, request id …), in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 256;
/// Longest action name, in bytes.
pub const MAX_ACTION_LEN: usize = 128;
/// Longest free-text field (user agent, failure reason, changed value), in bytes.
pub const MAX_TEXT_LEN: usize = 4096;
/// Most changed fields one event may carry.
pub const MAX_CHANGES: usize = 64;
/// Largest metadata object, as canonical JSON, in bytes.
pub const MAX_METADATA_LEN: usize = 16 * 1024;
/// Deepest nesting of metadata objects and arrays.
pub const MAX_METADATA_DEPTH: usize = 16;

/// Why an event was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The event has no actor: every entry must say who acted.
    #[error("the event has no actor; set one (or record as Actor::system / Actor::anonymous)")]
    MissingActor,
    /// A required field is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A field is longer than its limit.
    #[error("{field} is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// An identifier contains a control character, line break or
    /// direction override, which could forge lines in a rendering.
    #[error("{field} contains the control character U+{code:04X}; identifiers must be printable")]
    ControlCharacter {
        /// The field.
        field: &'static str,
        /// The offending code point.
        code: u32,
    },
    /// An action name is not a dotted lower-case name.
    #[error("action {0:?} is not a dotted lower-case name such as \"database.create\"")]
    InvalidAction(String),
    /// Metadata holds a floating-point number, which has no canonical encoding.
    #[error("metadata field {path} is a floating-point number; use an integer or a string")]
    Float {
        /// JSON path of the value.
        path: String,
    },
    /// Metadata nests deeper than allowed.
    #[error("metadata nests deeper than {MAX_METADATA_DEPTH} levels")]
    TooDeep,
    /// Too many changed fields.
    #[error("{count} changed fields; the limit is {MAX_CHANGES}")]
    TooManyChanges {
        /// Number of changed fields given.
        count: usize,
    },
    /// A name is reserved for a secret and may not be recorded.
    #[error("{field} names a secret ({name:?}); secrets are never recorded")]
    Secret {
        /// Where the name appeared.
        field: &'static str,
        /// The name.
        name: String,
    },
    /// The action belongs to another trail than the one it was recorded in.
    #[error("action {action} belongs to the {expected} trail, not to the {trail} trail")]
    WrongTrail {
        /// The action's name.
        action: &'static str,
        /// The trail the action belongs to.
        expected: &'static str,
        /// The trail it was recorded in.
        trail: String,
    },
    /// A metadata value could not be turned into JSON.
    #[error("metadata field {key} cannot be recorded: {reason}")]
    MetadataValue {
        /// The field.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Who acted, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActorKind {
    /// A hosting customer.
    Customer,
    /// A reseller acting for their customers.
    Reseller,
    /// A provider administrator.
    Admin,
    /// The panel itself (cron, background jobs).
    System,
    /// Someone not logged in (e.g. a failed login).
    Anonymous,
}

impl ActorKind {
    /// The stable name stored in the trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorKind::Customer => "customer",
            ActorKind::Reseller => "reseller",
            ActorKind::Admin => "admin",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Customer,
            Self::Reseller,
            Self::Admin,
            Self::System,
            Self::Anonymous,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted: a login name and a role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The login name, e.g. `kunde123`.
    pub name: String,
    /// The role.
    pub kind: ActorKind,
}

impl Actor {
    /// An actor of any kind.
    pub fn new(kind: ActorKind, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    /// A hosting customer.
    pub fn customer(name: impl Into<String>) -> Self {
        Self::new(ActorKind::Customer, name)
    }

    /// A reseller.
    pub fn reseller(name: impl Into<String>) -> Self {
        Self::new(ActorKind::Reseller, name)
    }

    /// An administrator.
    pub fn admin(name: impl Into<String>) -> Self {
        Self::new(ActorKind::Admin, name)
    }

    /// The panel itself, named by its component (e.g. `cron`).
    pub fn system(name: impl Into<String>) -> Self {
        Self::new(ActorKind::System, name)
    }

    /// Someone not logged in, named by what is known (e.g. the login tried).
    pub fn anonymous(name: impl Into<String>) -> Self {
        Self::new(ActorKind::Anonymous, name)
    }
}

/// The resource acted on: a type (`database`) and an id (`abc456`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Resource type, e.g. `database`, `mailbox`, `domain`.
    pub kind: String,
    /// Resource id, e.g. `abc456`.
    pub id: String,
}

impl Target {
    /// A target.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// Whether the action succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    #[default]
    Success,
    /// It failed, and why (e.g. `wrong password`).
    Failure {
        /// The reason.
        reason: String,
    },
}

impl Outcome {
    /// A failure with a reason.
    pub fn failure(reason: impl Into<String>) -> Self {
        Outcome::Failure {
            reason: reason.into(),
        }
    }

    /// The stable name stored in the trail.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure { .. } => "failure",
        }
    }
}

/// Where the request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The web interface.
    Ui,
    /// The HTTP API.
    Api,
    /// A command-line tool.
    Cli,
    /// A scheduled job.
    Cron,
    /// The system itself.
    System,
}

impl Source {
    /// The stable name stored in the trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Ui => "ui",
            Source::Api => "api",
            Source::Cli => "cli",
            Source::Cron => "cron",
            Source::System => "system",
        }
    }
}

/// The request context of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The request id, to correlate with other logs.
    pub request_id: Option<String>,
    /// The user authenticated by `.htaccess` protection.
    pub htaccess_user: Option<String>,
    /// Where the request came from.
    pub source: Option<Source>,
}

/// One changed field: old value → new value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The field name, e.g. `email`.
    pub field: String,
    /// The value before, if any.
    pub old: Option<String>,
    /// The value after, if any.
    pub new: Option<String>,
}

/// The source code location of the call that recorded an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Module path.
    pub module: Cow<'static, str>,
    /// Source file.
    pub file: Cow<'static, str>,
    /// Line number.
    pub line: u32,
}

/// An event the application records.
///
/// Build one with [`Event::builder`]; it is validated again when recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Stable dotted action name, e.g. `database.create`.
    pub action: Cow<'static, str>,
    /// Who acted. Required.
    pub actor: Option<Actor>,
    /// The admin acting on the actor's behalf, if any.
    pub impersonator: Option<Actor>,
    /// The customer the event belongs to.
    pub tenant: Option<String>,
    /// The resource acted on.
    pub target: Option<Target>,
    /// Success, or failure with a reason.
    pub outcome: Outcome,
    /// Request context.
    pub context: Context,
    /// Changed fields.
    pub changes: Vec<Change>,
    /// Free metadata (a JSON object; integers, strings, booleans, null, nested).
    pub metadata: Map<String, Value>,
    /// When it happened, if not when it is recorded (e.g. a log line's time).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The call site.
    pub location: Option<Location>,
}

impl Event {
    /// Starts an event for an action.
    pub fn builder(action: impl Into<Cow<'static, str>>) -> EventBuilder {
        EventBuilder {
            event: Event {
                action: action.into(),
                actor: None,
                impersonator: None,
                tenant: None,
                target: None,
                outcome: Outcome::Success,
                context: Context::default(),
                changes: Vec::new(),
                metadata: Map::new(),
                occurred_at: None,
                location: None,
            },
            secrets: SecretPolicy::Refuse,
        }
    }

    /// Checks every field against the rules in the module docs.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_fields()?;
        check_metadata_len(canonical_json_object(&self.metadata).len())
    }

    /// Validates the event and builds the body it is sealed as, each
    /// personal field with a fresh salt from `salts`. The same checks as
    /// [`Event::validate`], with the canonical metadata built only once.
    pub(crate) fn to_checked_body(
        &self,
        salts: &mut impl FnMut() -> Salt,
    ) -> Result<Body, ValidationError> {
        self.validate_fields()?;
        let body = self.to_body(salts);
        check_metadata_len(body.value("metadata").map_or(0, str::len))?;
        Ok(body)
    }

    /// Every check but the length of the canonical metadata.
    fn validate_fields(&self) -> Result<(), ValidationError> {
        validate_action(&self.action)?;
        let actor = self.actor.as_ref().ok_or(ValidationError::MissingActor)?;
        validate_identifier("actor.name", &actor.name)?;
        if let Some(impersonator) = &self.impersonator {
            validate_identifier("impersonator.name", &impersonator.name)?;
        }
        validate_optional_identifier("tenant", self.tenant.as_deref())?;
        if let Some(target) = &self.target {
            validate_identifier("target.type", &target.kind)?;
            validate_identifier("target.id", &target.id)?;
        }
        if let Outcome::Failure { reason } = &self.outcome {
            validate_text("outcome.reason", reason)?;
        }
        validate_optional_identifier("context.request_id", self.context.request_id.as_deref())?;
        validate_optional_identifier(
            "context.htaccess_user",
            self.context.htaccess_user.as_deref(),
        )?;
        if let Some(user_agent) = &self.context.user_agent {
            validate_text("context.user_agent", user_agent)?;
        }
        if self.changes.len() > MAX_CHANGES {
            return Err(ValidationError::TooManyChanges {
                count: self.changes.len(),
            });
        }
        for change in &self.changes {
            validate_identifier("changes.field", &change.field)?;
            for value in [&change.old, &change.new].into_iter().flatten() {
                validate_text("changes.value", value)?;
            }
        }
        validate_metadata_values(&self.metadata)?;
        refuse_secrets(&self.metadata, &self.changes)?;
        Ok(())
    }

    /// The body this event is sealed as, each personal field with a fresh
    /// salt from `salts`. Call [`Event::validate`] first.
    fn to_body(&self, salts: &mut impl FnMut() -> Salt) -> Body {
        let mut body = Body::new();
        body.insert_public("action", self.action.as_ref());
        if let Some(actor) = &self.actor {
            body.insert_public("actor.kind", actor.kind.as_str());
            body.insert_personal("actor.name", actor.name.as_str(), salts());
        }
        if let Some(impersonator) = &self.impersonator {
            body.insert_public("impersonator.kind", impersonator.kind.as_str());
            body.insert_personal("impersonator.name", impersonator.name.as_str(), salts());
        }
        if let Some(tenant) = &self.tenant {
            body.insert_personal("tenant", tenant.as_str(), salts());
        }
        if let Some(target) = &self.target {
            body.insert_public("target.type", target.kind.as_str());
            body.insert_personal("target.id", target.id.as_str(), salts());
        }
        body.insert_public("outcome", self.outcome.as_str());
        if let Outcome::Failure { reason } = &self.outcome {
            body.insert_personal("outcome.reason", escape_text(reason), salts());
        }
        let context = &self.context;
        if let Some(ip) = context.ip {
            body.insert_personal("context.ip", ip.to_string(), salts());
            // Kept when retention anonymises the address by erasing
            // `context.ip`.
            body.insert_personal("context.network", network_of(ip), salts());
        }
        if let Some(user_agent) = &context.user_agent {
            body.insert_personal("context.user_agent", escape_text(user_agent), salts());
        }
        if let Some(request_id) = &context.request_id {
            body.insert_public("context.request_id", request_id.as_str());
        }
        if let Some(user) = &context.htaccess_user {
            body.insert_personal("context.htaccess_user", user.as_str(), salts());
        }
        if let Some(source) = context.source {
            body.insert_public("context.source", source.as_str());
        }
        if !self.changes.is_empty() {
            body.insert_personal("changes", changes_json(&self.changes), salts());
        }
        if !self.metadata.is_empty() {
            body.insert_personal("metadata", canonical_json_object(&self.metadata), salts());
        }
        if let Some(time) = self.occurred_at {
            body.insert_public("occurred_at", format_timestamp(truncate_to_micros(time)));
        }
        if let Some(location) = &self.location {
            body.insert_public("location.module", location.module.as_ref());
            body.insert_public("location.file", location.file.as_ref());
            body.insert_public("location.line", location.line.to_string());
        }
        body
    }
}

/// The anonymised network of an address: IPv4 /24, IPv6 /48.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[3..].fill(0);
            format!("{}/48", std::net::Ipv6Addr::from(segments))
        }
    }
}

/// Builds an [`Event`]; [`EventBuilder::build`] validates it.
#[derive(Clone, Debug)]
#[must_use = "an event builder does nothing until built and recorded"]
pub struct EventBuilder {
    event: Event,
    secrets: SecretPolicy,
}

impl EventBuilder {
    /// Who acted.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.event.actor = Some(actor);
        self
    }

    /// The admin acting on the actor's behalf.
    pub fn impersonator(mut self, impersonator: Actor) -> Self {
        self.event.impersonator = Some(impersonator);
        self
    }

    /// The customer the event belongs to.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.event.tenant = Some(tenant.into());
        self
    }

    /// The resource acted on.
    pub fn target(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.event.target = Some(Target::new(kind, id));
        self
    }

    /// The outcome (default: success).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.event.outcome = outcome;
        self
    }

    /// Marks the action as failed, with a reason.
    pub fn failure(self, reason: impl Into<String>) -> Self {
        self.outcome(Outcome::failure(reason))
    }

    /// The client's IP address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.event.context.ip = Some(ip);
        self
    }

    /// The client's user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.event.context.user_agent = Some(user_agent.into());
        self
    }

    /// The request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.event.context.request_id = Some(request_id.into());
        self
    }

    /// The `.htaccess` user.
    pub fn htaccess_user(mut self, user: impl Into<String>) -> Self {
        self.event.context.htaccess_user = Some(user.into());
        self
    }

    /// Where the request came from.
    pub fn source(mut self, source: Source) -> Self {
        self.event.context.source = Some(source);
        self
    }

    /// The whole request context at once.
    pub fn context(mut self, context: Context) -> Self {
        self.event.context = context;
        self
    }

    /// A changed field.
    pub fn change(
        mut self,
        field: impl Into<String>,
        old: Option<String>,
        new: Option<String>,
    ) -> Self {
        self.event.changes.push(Change {
            field: field.into(),
            old,
            new,
        });
        self
    }

    /// A metadata field.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.metadata.insert(key.into(), value.into());
        self
    }

    /// When it happened, if not now.
    pub fn occurred_at(mut self, time: DateTime<Utc>) -> Self {
        self.event.occurred_at = Some(time);
        self
    }

    /// The call site.
    pub fn location(mut self, location: Location) -> Self {
        self.event.location = Some(location);
        self
    }

    /// What to do with fields whose names mark secrets (default: refuse
    /// the event). See [`SecretPolicy`].
    pub fn secrets(mut self, policy: SecretPolicy) -> Self {
        self.secrets = policy;
        self
    }

    /// The validated event.
    pub fn build(mut self) -> Result<Event, ValidationError> {
        if self.secrets == SecretPolicy::Mask {
            self.event.mask_secrets();
        }
        self.event.validate()?;
        Ok(self.event)
    }
}

fn validate_action(action: &str) -> Result<(), ValidationError> {
    if action.len() > MAX_ACTION_LEN {
        return Err(ValidationError::TooLong {
            field: "action",
            len: action.len(),
            max: MAX_ACTION_LEN,
        });
    }
    let valid_segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if action.split('.').all(valid_segment) {
        Ok(())
    } else {
        Err(ValidationError::InvalidAction(
            escape_text(action).into_owned(),
        ))
    }
}

/// Identifiers are rejected, not escaped: a login name with a newline is an
/// attack, not data.
pub(crate) fn validate_identifier(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(ValidationError::TooLong {
            field,
            len: value.len(),
            max: MAX_IDENTIFIER_LEN,
        });
    }
    match value.chars().find(|&c| is_dangerous(c)) {
        Some(c) => Err(ValidationError::ControlCharacter {
            field,
            code: c as u32,
        }),
        None => Ok(()),
    }
}

fn validate_optional_identifier(
    field: &'static str,
    value: Option<&str>,
) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |value| validate_identifier(field, value))
}

/// Free text is kept but escaped when sealed; only its length is limited.
fn validate_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_LEN {
        return Err(ValidationError::TooLong {
            field,
            len: value.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

/// Keys, floats and depth of the metadata; its length is checked apart.
fn validate_metadata_values(metadata: &Map<String, Value>) -> Result<(), ValidationError> {
    fn walk(value: &Value, path: &mut String, depth: usize) -> Result<(), ValidationError> {
        if depth > MAX_METADATA_DEPTH {
            return Err(ValidationError::TooDeep);
        }
        match value {
            Value::Number(number) if number.is_f64() => Err(ValidationError::Float {
                path: escape_text(path).into_owned(),
            }),
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| walk(item, path, depth + 1)),
            Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let result = walk(item, path, depth + 1);
                path.truncate(len);
                result
            }),
            _ => Ok(()),
        }
    }
    let mut path = String::from("metadata");
    for (key, value) in metadata {
        validate_identifier("metadata key", key)?;
        path.truncate("metadata".len());
        path.push('.');
        path.push_str(key);
        walk(value, &mut path, 1)?;
    }
    Ok(())
}

/// The canonical metadata (`len` bytes) must fit [`MAX_METADATA_LEN`].
fn check_metadata_len(len: usize) -> Result<(), ValidationError> {
    if len > MAX_METADATA_LEN {
        return Err(ValidationError::TooLong {
            field: "metadata",
            len,
            max: MAX_METADATA_LEN,
        });
    }
    Ok(())
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped as `serde_json` does, integers only (floats are refused
/// by validation). The same value always gives the same bytes, however a
/// backend stored or reordered it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    into_text(out)
}

fn canonical_json_object(map: &Map<String, Value>) -> String {
    let mut out = Vec::new();
    write_canonical_object(map, &mut out);
    into_text(out)
}

/// JSON written from `Value`s is UTF-8, since every string in it is.
fn into_text(json: Vec<u8>) -> String {
    String::from_utf8(json)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_canonical_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // Usually sorted already (serde_json's map is a `BTreeMap` unless a
    // crate enables its `preserve_order` feature).
    if !entries.is_sorted_by(|a, b| a.0.as_bytes() <= b.0.as_bytes()) {
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key.as_str(), out);
        out.push(b':');
        write_canonical(item, out);
    }
    out.push(b'}');
}

/// A string or scalar as `serde_json` writes it.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serialising a string or scalar into memory cannot fail.
    let written = serde_json::to_writer(out, value);
    debug_assert!(written.is_ok(), "{written:?}");
}

fn changes_json(changes: &[Change]) -> String {
    let items = changes
        .iter()
        .map(|change| {
            let mut map = Map::new();
            map.insert("field".into(), Value::String(change.field.clone()));
            let text = |v: &Option<String>| {
                v.as_deref()
                    .map_or(Value::Null, |s| Value::String(escape_text(s).into_owned()))
            };
            map.insert("old".into(), text(&change.old));
            map.insert("new".into(), text(&change.new));
            Value::Object(map)
        })
        .collect();
    canonical_json(&Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> EventBuilder {
        Event::builder("database.create").actor(Actor::customer("kunde123"))
    }

    #[test]
    fn missing_actor_is_an_error() {
        let err = Event::builder("database.create").build().unwrap_err();
        assert_eq!(err, ValidationError::MissingActor);
    }

    #[test]
    fn empty_actor_is_an_error() {
        let err = Event::builder("x.y")
            .actor(Actor::customer("  "))
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ValidationError::Empty {
                field: "actor.name"
            }
        );
    }

    #[test]
    fn newline_and_ansi_in_identifiers_are_rejected() {
        for bad in ["kunde\n123", "kunde\u{1b}[31m", "a\u{202E}b", "a\u{2028}b"] {
            let err = Event::builder("x.y")
                .actor(Actor::customer(bad))
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ValidationError::ControlCharacter {
                        field: "actor.name",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        let err = base().target("database", "a\rb").build().unwrap_err();
        assert!(matches!(
            err,
            ValidationError::ControlCharacter {
                field: "target.id",
                code: 0x0D
            }
        ));
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert!(matches!(
            base().tenant(long).build(),
            Err(ValidationError::TooLong {
                field: "tenant",
                ..
            })
        ));
        let huge = "x".repeat(MAX_METADATA_LEN);
        assert!(matches!(
            base().meta("blob", huge).build(),
            Err(ValidationError::TooLong {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(
            base().user_agent("u".repeat(MAX_TEXT_LEN + 1)).build(),
            Err(ValidationError::TooLong { .. })
        ));
    }

    #[test]
    fn floats_in_metadata_are_rejected() {
        let err = base().meta("ratio", 0.5).build().unwrap_err();
        assert_eq!(
            err,
            ValidationError::Float {
                path: "metadata.ratio".into()
            }
        );
        let nested = serde_json::json!({"a": [1, {"b": 1.5}]});
        assert!(matches!(
            base().meta("n", nested).build(),
            Err(ValidationError::Float { .. })
        ));
    }

    #[test]
    fn invalid_action_names_are_rejected() {
        for bad in [
            "",
            "Database.Create",
            "database..create",
            "database create",
            "db.\n",
        ] {
            let err = Event::builder(bad)
                .actor(Actor::customer("k"))
                .build()
                .unwrap_err();
            assert!(matches!(err, ValidationError::InvalidAction(_)), "{bad:?}");
        }
    }

    #[test]
    fn free_text_is_escaped_when_sealed() {
        let event = base()
            .user_agent("evil\nINJECTED \u{1b}[2J")
            .build()
            .unwrap();
        let body = event.to_body(&mut || Salt::from_bytes([0; 16]));
        assert_eq!(
            body.value("context.user_agent"),
            Some("evil\\nINJECTED \\u{001B}[2J")
        );
    }

    #[test]
    fn invisible_format_characters_are_escaped_and_refused_in_identifiers() {
        // LRM, RLM, ALM, ZWSP, BOM, a bidi isolate, a tag character and a
        // soft hyphen: each hides text or reorders what a reader sees.
        let invisible = [
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{2067}',
            '\u{E0041}',
            '\u{00AD}',
        ];
        for c in invisible {
            let text = format!("admin{c}x");
            let escaped = escape_text(&text);
            assert_eq!(escaped, format!("admin\\u{{{:04X}}}x", c as u32));
            let err = base().tenant(text).build().unwrap_err();
            assert!(
                matches!(err, ValidationError::ControlCharacter { .. }),
                "{c:?}"
            );
        }
        assert_eq!(escape_text("Grüße, 日本 👍"), "Grüße, 日本 👍");
    }

    #[test]
    fn every_field_an_event_writes_is_a_known_name_for_decoding() {
        let event = base()
            .impersonator(Actor::admin("support"))
            .tenant("kunde123")
            .target("database", "shop_db")
            .failure("quota exceeded")
            .ip([192, 0, 2, 1].into())
            .user_agent("curl/8.5.0")
            .request_id("req-1")
            .htaccess_user("redaktion")
            .source(Source::Api)
            .change("size_mb", Some("100".into()), Some("200".into()))
            .meta("plan", "basic")
            .occurred_at(Utc::now())
            .location(Location {
                module: "panel".into(),
                file: "panel.rs".into(),
                line: 1,
            })
            .build()
            .unwrap();
        let body = event.to_body(&mut || Salt::from_bytes([0; 16]));
        for (name, _) in body.iter() {
            assert!(
                crate::model::EVENT_FIELD_NAMES.contains(&name),
                "{name} is missing from EVENT_FIELD_NAMES"
            );
        }
        assert_eq!(body.len(), crate::model::EVENT_FIELD_NAMES.len());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn canonical_json_escapes_strings_as_serde_json_does() {
        let value = serde_json::json!({
            "zeile\n": "\u{1b}[31m\u{7f} \\ ü €",
            "Z": [-7, u64::MAX, "\t"],
        });
        assert_eq!(
            canonical_json(&value),
            // serde_json leaves DEL as it is.
            "{\"Z\":[-7,18446744073709551615,\"\\t\"],\"zeile\\n\":\"\\u001b[31m\u{7f} \\\\ ü €\"}"
        );
    }
}
