//! What the application records: events, their parts, a builder and the
//! validation that keeps hostile input out of the trail, the body an event
//! is sealed as; typed actions and the hosting panel's catalog of them; the
//! request context; secrets.

mod action;
mod body;
mod builder;
mod canonical_json;
mod context;
mod hosting;
mod parts;
mod secrets;
mod validation;

#[doc(hidden)]
pub use action::checks;
pub use action::{Action, ActionSpec, Catalog, STANDARD_PLACEHOLDERS};
pub use body::network_of;
pub use builder::EventBuilder;
pub use canonical_json::canonical_json;
pub use context::AuditContext;
pub use hosting::HostingAction;
pub use parts::{Actor, ActorKind, Change, Context, Location, Outcome, Source, Target};
pub(crate) use secrets::refuse_secrets;
pub use secrets::{
    SECRET_MARKER, SECRET_NAMES, SecretPolicy, is_secret_name, register_secret_names,
};
pub use validation::{
    MAX_ACTION_LEN, MAX_CHANGES, MAX_IDENTIFIER_LEN, MAX_METADATA_DEPTH, MAX_METADATA_LEN,
    MAX_TEXT_LEN, ValidationError,
};

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// An event the application records.
///
/// Build one with [`Event::builder`]; it is validated again when recorded.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
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
