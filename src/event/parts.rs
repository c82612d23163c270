//! The parts of an [`Event`](super::Event): who acted and in which role,
//! the resource acted on, the outcome, the request context, the changed
//! fields and the call site.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[allow(
    clippy::exhaustive_enums,
    reason = "the format stores success or failure, nothing else"
)]
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
#[non_exhaustive]
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
#[allow(
    clippy::exhaustive_structs,
    reason = "a field, its old and its new value: complete by definition"
)]
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
#[non_exhaustive]
pub struct Location {
    /// Module path.
    pub module: Cow<'static, str>,
    /// Source file.
    pub file: Cow<'static, str>,
    /// Line number.
    pub line: u32,
}
