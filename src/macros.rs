//! The [`audit!`](crate::audit!) macro family, modelled on `tracing`'s:
//! [`audit_event!`](crate::audit_event!) is the general macro that builds an
//! [`Event`](crate::Event); [`audit!`](crate::audit!) forwards to it and
//! records the event in a trail.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::write::Receipt;
use crate::{Error, Result};

/// Records one event in a trail, in one line:
/// `audit!(trail, action, key = value, %display, ?debug …).await?`.
///
/// Builds the event with [`audit_event!`](crate::audit_event!), checks that the action
/// belongs to the trail, and returns a [`Recording`]: a `#[must_use]` future
/// that resolves to the [`Receipt`] (trail and seq) once the entry is
/// committed, or to a typed [`Error`]. Nothing is recorded unless it is
/// awaited.
///
/// # Fields
///
/// After the action come fields, as in `tracing`: `key = value`,
/// `key = %value` (recorded with its `Display`), `key = ?value` (with its
/// `Debug`), and the shorthands `key`, `%key` and `?key` for a variable of
/// that name.
///
/// These keys fill the event's own fields; every other key becomes a
/// metadata field (the value is turned into JSON with `serde`, so integers,
/// strings, booleans, options, vectors and maps work; floats are refused):
///
/// | Key | Takes | Sets |
/// |---|---|---|
/// | `target` | anything `Display` | the target's id; its type comes from the action |
/// | `tenant` | anything `Display` | the customer the event belongs to |
/// | `reason` | anything `Display` | marks the action as **failed**, with this reason |
/// | `user_agent`, `request_id`, `htaccess_user` | anything `Display` | the request context |
/// | `actor`, `impersonator` | [`Actor`](crate::Actor) | who acted / on whose behalf |
/// | `ip` | `IpAddr`, `Ipv4Addr`, `Ipv6Addr`, `SocketAddr` (its IP) | the client's address |
/// | `source` | [`Source`](crate::event::Source) | where the request came from |
/// | `outcome` | [`Outcome`](crate::event::Outcome) | success or failure |
/// | `occurred_at` | `DateTime<Utc>` | when it happened, if not now |
/// | `changes` | an iterator of [`Change`](crate::event::Change) | changed fields, old → new |
/// | `secrets` | `mask` or `refuse` | what to do with secret-named fields ([`SecretPolicy`](crate::event::SecretPolicy)) |
///
/// The `%` and `?` sigils apply to the text keys and metadata; on a typed
/// key they are a compile error rather than a silent metadata field.
///
/// Fields not given are taken from the [`AuditContext`](crate::event::AuditContext)
/// in effect, so that middleware sets the actor, tenant and request fields
/// once. An event without any actor is refused
/// ([`ValidationError::MissingActor`](crate::event::ValidationError::MissingActor)).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use trailseal::HostingAction::DatabaseCreate;
/// use trailseal::{Actor, MemoryStore, SealingKey, Trail, audit, event::AuditContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (key, _verification) = SealingKey::generate("k1", chrono::Utc::now(), 900)?;
/// let trail = Trail::open("admin", Arc::new(MemoryStore::new()), Arc::new(key)).await?;
///
/// // Middleware sets the context once per request …
/// let context = AuditContext::new().actor(Actor::customer("kunde123"));
/// let receipt = context
///     .scope(async {
///         // … and every audit! inside picks it up.
///         let peer = std::net::Ipv4Addr::new(192, 0, 2, 7);
///         let plan = ["mysql", "utf8mb4"];
///         audit!(trail, DatabaseCreate, target = "abc456", size_mb = 100, %peer, ?plan).await
///     })
///     .await?;
/// assert_eq!((&*receipt.trail, receipt.seq), ("admin", 1)); // seq 0 is the trail's genesis
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! audit {
    ($trail:expr, $action:expr $(, $($fields:tt)*)?) => {
        $crate::__macro_support::record(
            &$trail,
            $crate::audit_event!(@draft $action $(, $($fields)*)?),
        )
    };
}

/// Builds an [`Event`](crate::Event) for an action without recording it:
/// `audit_event!(action, key = value, %display, ?debug …)` evaluates to
/// `Result<Event, ValidationError>`.
///
/// The general macro of the family: [`audit!`](crate::audit!) forwards to it.
/// Use it directly to record with [`Trail::record`](crate::Trail::record)
/// later, or to test what a call site would record. The call site's module,
/// file and line are captured at compile time. The keys are those of
/// [`audit!`](crate::audit!#fields); fields not given come from the
/// [`AuditContext`](crate::event::AuditContext) in effect.
///
/// ```
/// use trailseal::{Actor, HostingAction, audit_event};
///
/// let quota = 2048;
/// let line = line!();
/// let event = audit_event!(
///     HostingAction::MailboxCreate,
///     actor = Actor::customer("kunde123"),
///     target = "info@example.com",
///     quota,
/// )?;
/// assert_eq!(event.action, "mailbox.create");
/// assert_eq!(event.target.unwrap().kind, "mailbox");
/// assert_eq!(event.metadata["quota"], 2048);
/// assert_eq!(event.location.unwrap().line, line + 1);
/// # Ok::<(), trailseal::event::ValidationError>(())
/// ```
#[macro_export]
macro_rules! audit_event {
    // Fields, one at a time: the sigil forms first, since `%` and `?` cannot
    // start an expression and must not reach an `expr` matcher.
    (@fields $d:ident;) => {};
    (@fields $d:ident; secrets = mask $(, $($rest:tt)*)?) => {
        $d.secrets($crate::event::SecretPolicy::Mask);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; secrets = refuse $(, $($rest:tt)*)?) => {
        $d.secrets($crate::event::SecretPolicy::Refuse);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; secrets = $($rest:tt)*) => {
        ::core::compile_error!("`secrets` takes `mask` or `refuse`, e.g. `secrets = mask`");
    };
    (@fields $d:ident; $k:ident = % $v:expr $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, display, $v);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; $k:ident = ? $v:expr $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, debug, $v);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; $k:ident = $v:expr $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, value, $v);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; % $k:ident $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, display, $k);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; ? $k:ident $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, debug, $k);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; $k:ident $(, $($rest:tt)*)?) => {
        $crate::audit_event!(@set $d, $k, value, $k);
        $crate::audit_event!(@fields $d; $($($rest)*)?);
    };
    (@fields $d:ident; $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "expected a field such as `key = value`, `key = %value`, `key = ?value`, `%key` or `?key`, found `",
            ::core::stringify!($($rest)+), "`"
        ));
    };

    // The event's own fields that are text: any `Display`, or `?` for `Debug`.
    (@set $d:ident, target, $mode:ident, $v:expr) => {
        $d.target($crate::audit_event!(@text $mode, $v))
    };
    (@set $d:ident, tenant, $mode:ident, $v:expr) => {
        $d.tenant($crate::audit_event!(@text $mode, $v))
    };
    (@set $d:ident, reason, $mode:ident, $v:expr) => {
        $d.reason($crate::audit_event!(@text $mode, $v))
    };
    (@set $d:ident, user_agent, $mode:ident, $v:expr) => {
        $d.user_agent($crate::audit_event!(@text $mode, $v))
    };
    (@set $d:ident, request_id, $mode:ident, $v:expr) => {
        $d.request_id($crate::audit_event!(@text $mode, $v))
    };
    (@set $d:ident, htaccess_user, $mode:ident, $v:expr) => {
        $d.htaccess_user($crate::audit_event!(@text $mode, $v))
    };
    // The event's own fields that are typed: given as they are.
    (@set $d:ident, actor, value, $v:expr) => { $d.actor($v) };
    (@set $d:ident, impersonator, value, $v:expr) => { $d.impersonator($v) };
    (@set $d:ident, ip, value, $v:expr) => { $d.ip($v) };
    (@set $d:ident, source, value, $v:expr) => { $d.source($v) };
    (@set $d:ident, outcome, value, $v:expr) => { $d.outcome($v) };
    (@set $d:ident, occurred_at, value, $v:expr) => { $d.occurred_at($v) };
    (@set $d:ident, changes, value, $v:expr) => { $d.changes($v) };
    (@set $d:ident, actor, $mode:ident, $v:expr) => {
        ::core::compile_error!("`actor` takes a `trailseal::Actor` such as `Actor::customer(name)`; the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, impersonator, $mode:ident, $v:expr) => {
        ::core::compile_error!("`impersonator` takes a `trailseal::Actor` such as `Actor::admin(name)`; the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, ip, $mode:ident, $v:expr) => {
        ::core::compile_error!("`ip` takes an IP address (`IpAddr`, `Ipv4Addr`, `Ipv6Addr` or `SocketAddr`); the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, source, $mode:ident, $v:expr) => {
        ::core::compile_error!("`source` takes a `trailseal::event::Source`; the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, outcome, $mode:ident, $v:expr) => {
        ::core::compile_error!("`outcome` takes a `trailseal::event::Outcome`; the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, occurred_at, $mode:ident, $v:expr) => {
        ::core::compile_error!("`occurred_at` takes a `DateTime<Utc>`; the `%` and `?` sigils do not apply")
    };
    (@set $d:ident, changes, $mode:ident, $v:expr) => {
        ::core::compile_error!("`changes` takes changed fields (`trailseal::event::Change`); the `%` and `?` sigils do not apply")
    };
    // Everything else is metadata.
    (@set $d:ident, $k:ident, value, $v:expr) => {
        $d.meta(::core::stringify!($k), &$v)
    };
    (@set $d:ident, $k:ident, $mode:ident, $v:expr) => {
        $d.meta_text(::core::stringify!($k), $crate::audit_event!(@text $mode, $v))
    };

    (@text value, $v:expr) => { $crate::__macro_support::display(&$v) };
    (@text display, $v:expr) => { $crate::__macro_support::display(&$v) };
    (@text debug, $v:expr) => { $crate::__macro_support::debug(&$v) };

    // The event being built, before validation: `audit!` checks its trail.
    (@draft $action:expr $(, $($fields:tt)*)?) => {{
        // Known at compile time, so stored once rather than built per call.
        static __AUDIT_LOCATION: $crate::event::Location = $crate::__macro_support::location(
            ::core::module_path!(),
            ::core::file!(),
            ::core::line!(),
        );
        let mut __audit_draft = $crate::__macro_support::Draft::new($action, &__AUDIT_LOCATION);
        $crate::audit_event!(@fields __audit_draft; $($($fields)*)?);
        __audit_draft
    }};

    ($action:expr $(, $($fields:tt)*)?) => {
        $crate::audit_event!(@draft $action $(, $($fields)*)?).finish()
    };
}

/// The future returned by [`audit!`](crate::audit!): resolves to the
/// [`Receipt`] once the entry is committed, or to the [`Error`] that kept it
/// out of the trail.
///
/// The event is sent to the trail's writer only when the future is first
/// polled: an `audit!` that is not awaited records nothing, which is why the
/// compiler warns about it.
#[must_use = "an audit event is recorded only when this future is awaited"]
pub struct Recording {
    state: State,
}

enum State {
    Refused(Option<Error>),
    Pending(Pin<Box<dyn Future<Output = Result<Receipt>> + Send>>),
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Refused(_) => "refused",
            State::Pending(_) => "pending",
        };
        f.debug_struct("Recording").field("state", &state).finish()
    }
}

impl Future for Recording {
    type Output = Result<Receipt>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Pending(future) => future.as_mut().poll(cx),
            // Polled again after completion: a caller bug; stay pending
            // rather than panic or invent a second result.
            State::Refused(error) => error.take().map_or(Poll::Pending, |e| Poll::Ready(Err(e))),
        }
    }
}

/// What the macros need from the crate. **Not public API**: only the
/// expansions of `audit!`, `audit_event!` and `actions!` may use it, and it
/// changes without notice.
#[doc(hidden)]
pub mod __macro_support {
    use std::borrow::Cow;
    use std::fmt::{Debug, Display};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use chrono::{DateTime, Utc};

    use super::{Recording, State};
    use crate::event::AuditContext;
    use crate::event::SecretPolicy;
    use crate::event::{Action, ActionSpec};
    use crate::event::{Actor, Change, Event, Location, Outcome, Source, Target, ValidationError};
    use crate::write::Trail;

    pub use crate::event::checks;

    /// An action's description, for `actions!`.
    pub const fn spec(
        name: &'static str,
        trail: &'static str,
        target: &'static str,
        fields: &'static [&'static str],
        en: &'static str,
        de: &'static str,
    ) -> ActionSpec {
        ActionSpec {
            name,
            trail,
            target,
            fields,
            en,
            de,
        }
    }

    /// A call site's location, for a `static` in the expansion.
    pub const fn location(module: &'static str, file: &'static str, line: u32) -> Location {
        Location {
            module: Cow::Borrowed(module),
            file: Cow::Borrowed(file),
            line,
        }
    }

    /// A value as text, through `Display`.
    pub fn display<T: Display + ?Sized>(value: &T) -> String {
        value.to_string()
    }

    /// A value as text, through `Debug`.
    pub fn debug<T: Debug + ?Sized>(value: &T) -> String {
        format!("{value:?}")
    }

    /// What `ip = …` accepts.
    #[diagnostic::on_unimplemented(
        message = "`ip` takes an IP address, not `{Self}`",
        label = "expected `IpAddr`, `Ipv4Addr`, `Ipv6Addr` or `SocketAddr`",
        note = "parse text first: `ip = text.parse::<std::net::IpAddr>()?`"
    )]
    pub trait IntoIp {
        /// The address.
        fn into_ip(self) -> IpAddr;
    }

    impl IntoIp for IpAddr {
        fn into_ip(self) -> IpAddr {
            self
        }
    }

    impl IntoIp for Ipv4Addr {
        fn into_ip(self) -> IpAddr {
            self.into()
        }
    }

    impl IntoIp for Ipv6Addr {
        fn into_ip(self) -> IpAddr {
            self.into()
        }
    }

    impl IntoIp for SocketAddr {
        fn into_ip(self) -> IpAddr {
            self.ip()
        }
    }

    /// An event being built by `audit_event!`: starts from the action and
    /// the context in effect; each field of the call site overrides.
    pub struct Draft {
        spec: &'static ActionSpec,
        event: Event,
        secrets: SecretPolicy,
        error: Option<ValidationError>,
    }

    impl Draft {
        /// Starts an event for `action` at `location`.
        pub fn new<A: Action>(action: A, location: &'static Location) -> Self {
            let spec = action.spec();
            let mut event = Event {
                action: Cow::Borrowed(spec.name),
                actor: None,
                impersonator: None,
                tenant: None,
                target: None,
                outcome: Outcome::Success,
                context: crate::event::Context::default(),
                changes: Vec::new(),
                metadata: serde_json::Map::new(),
                occurred_at: None,
                location: Some(location.clone()),
            };
            AuditContext::apply_current(&mut event);
            Self {
                spec,
                event,
                secrets: SecretPolicy::Refuse,
                error: None,
            }
        }

        /// The target's id; its type is the action's.
        pub fn target(&mut self, id: String) {
            self.event.target = Some(Target::new(self.spec.target, id));
        }

        /// The tenant.
        pub fn tenant(&mut self, tenant: String) {
            self.event.tenant = Some(tenant);
        }

        /// Marks the action as failed.
        pub fn reason(&mut self, reason: String) {
            self.event.outcome = Outcome::failure(reason);
        }

        /// The user agent.
        pub fn user_agent(&mut self, user_agent: String) {
            self.event.context.user_agent = Some(user_agent);
        }

        /// The request id.
        pub fn request_id(&mut self, request_id: String) {
            self.event.context.request_id = Some(request_id);
        }

        /// The `.htaccess` user.
        pub fn htaccess_user(&mut self, user: String) {
            self.event.context.htaccess_user = Some(user);
        }

        /// Who acted.
        pub fn actor(&mut self, actor: Actor) {
            self.event.actor = Some(actor);
        }

        /// On whose behalf.
        pub fn impersonator(&mut self, impersonator: Actor) {
            self.event.impersonator = Some(impersonator);
        }

        /// The client's address.
        pub fn ip(&mut self, ip: impl IntoIp) {
            self.event.context.ip = Some(ip.into_ip());
        }

        /// Where the request came from.
        pub fn source(&mut self, source: Source) {
            self.event.context.source = Some(source);
        }

        /// Success or failure.
        pub fn outcome(&mut self, outcome: Outcome) {
            self.event.outcome = outcome;
        }

        /// When it happened.
        pub fn occurred_at(&mut self, time: DateTime<Utc>) {
            self.event.occurred_at = Some(time);
        }

        /// Changed fields.
        pub fn changes(&mut self, changes: impl IntoIterator<Item = Change>) {
            self.event.changes.extend(changes);
        }

        /// What to do with secret-named fields.
        pub fn secrets(&mut self, policy: SecretPolicy) {
            self.secrets = policy;
        }

        /// A metadata field, turned into JSON.
        pub fn meta<T: serde::Serialize + ?Sized>(&mut self, key: &'static str, value: &T) {
            match serde_json::to_value(value) {
                Ok(value) => {
                    self.event.metadata.insert(key.to_owned(), value);
                }
                Err(err) => {
                    self.error.get_or_insert(ValidationError::MetadataValue {
                        key: key.to_owned(),
                        reason: err.to_string(),
                    });
                }
            }
        }

        /// A metadata field given as text (`%` or `?`).
        pub fn meta_text(&mut self, key: &'static str, value: String) {
            self.event
                .metadata
                .insert(key.to_owned(), serde_json::Value::String(value));
        }

        /// The validated event.
        pub fn finish(mut self) -> Result<Event, ValidationError> {
            if let Some(error) = self.error {
                return Err(error);
            }
            if self.secrets == SecretPolicy::Mask {
                self.event.mask_secrets();
            }
            self.event.validate()?;
            Ok(self.event)
        }
    }

    /// Records an event built by `audit_event!` in `trail`, after checking
    /// that the action belongs to it.
    pub fn record(trail: &Trail, draft: Draft) -> Recording {
        let spec = draft.spec;
        // An action in the wrong trail would escape that trail's retention
        // rules and readers; refuse it like any other invalid event.
        let event = if trail.name() == spec.trail {
            draft.finish()
        } else {
            Err(ValidationError::WrongTrail {
                action: spec.name,
                expected: spec.trail,
                trail: trail.name().to_owned(),
            })
        };
        let state = match event {
            Ok(event) => {
                let trail = trail.clone();
                State::Pending(Box::pin(async move { trail.record(event).await }))
            }
            Err(error) => State::Refused(Some(error.into())),
        };
        Recording { state }
    }
}

// The examples of the embedding guide are compiled and run with the doc
// tests, so the guide cannot drift from the macros.
#[cfg(doctest)]
#[doc = include_str!("../docs/EMBEDDING.md")]
struct EmbeddingGuide;

#[cfg(test)]
mod tests {
    use crate::__macro_support::spec;
    use crate::event::checks::duplicate_name;

    #[test]
    fn duplicate_action_names_are_found() {
        let a = spec("a.b", "admin", "x", &[], "e", "d");
        let b = spec("a.c", "admin", "x", &[], "e", "d");
        let c = spec("a.b", "admin", "x", &[], "e", "d");
        assert_eq!(duplicate_name(&[a, b, c]), Some(2));
    }
}
