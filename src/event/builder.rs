//! [`EventBuilder`]: an event set up field by field, validated when built.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    Actor, Change, Context, Event, Location, Outcome, SecretPolicy, Source, Target, ValidationError,
};

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
