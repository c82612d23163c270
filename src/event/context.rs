//! The request-scoped [`AuditContext`]: who is acting, for whom, from where.
//!
//! A panel knows the actor, tenant, IP address and request id once, in its
//! middleware, and records many events further down. The context is set
//! there once with [`AuditContext::scope`] and every
//! [`audit!`](crate::audit!) and [`audit_event!`](crate::audit_event!)
//! inside the scoped future picks it up, across `.await` points. Explicit
//! arguments of the macro override it field by field.
//!
//! The context is task-local (Tokio's `task_local!`): a task started with
//! `tokio::spawn` inside the scope does not inherit it. Take it along with
//! [`AuditContext::current`] and scope the spawned future again.

use std::future::Future;
use std::net::IpAddr;

use crate::event::{Actor, Event, Source};

tokio::task_local! {
    static CURRENT: AuditContext;
}

/// Who is acting, for whom and from where, for every event recorded inside
/// [`AuditContext::scope`].
///
/// ```
/// use trailseal::{Actor, event::{AuditContext, Source}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let context = AuditContext::new()
///     .actor(Actor::customer("kunde123"))
///     .tenant("kunde123")
///     .ip([192, 0, 2, 7].into())
///     .request_id("req-81f3")
///     .source(Source::Ui);
/// let actor = context
///     .scope(async {
///         tokio::task::yield_now().await;
///         AuditContext::current().and_then(|context| context.actor)
///     })
///     .await;
/// assert_eq!(actor, Some(Actor::customer("kunde123")));
/// assert!(AuditContext::current().is_none());
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditContext {
    /// Who acts (the logged-in user).
    pub actor: Option<Actor>,
    /// The admin acting on the actor's behalf, if any.
    pub impersonator: Option<Actor>,
    /// The customer the request belongs to.
    pub tenant: Option<String>,
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

impl AuditContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Who acts.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The admin acting on the actor's behalf.
    pub fn impersonator(mut self, impersonator: Actor) -> Self {
        self.impersonator = Some(impersonator);
        self
    }

    /// The customer the request belongs to.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The client's IP address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The client's user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The `.htaccess` user.
    pub fn htaccess_user(mut self, user: impl Into<String>) -> Self {
        self.htaccess_user = Some(user.into());
        self
    }

    /// Where the request came from.
    pub fn source(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// Runs `future` with this context, replacing any outer one while it
    /// runs. Events recorded inside it, also after `.await`s, take their
    /// actor, tenant and request fields from it.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Runs the closure `f` with this context (for synchronous code, such
    /// as a blocking job that builds events with
    /// [`audit_event!`](crate::audit_event!)).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// A copy of the context in effect, if any.
    pub fn current() -> Option<AuditContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Fills the event's fields from the context in effect, if any. Runs
    /// before the call site's own arguments, which therefore win.
    pub(crate) fn apply_current(event: &mut Event) {
        // Outside any scope there is simply nothing to apply.
        let _ = CURRENT.try_with(|context| context.apply(event));
    }

    fn apply(&self, event: &mut Event) {
        let fill = |slot: &mut Option<String>, value: &Option<String>| {
            if let Some(value) = value {
                *slot = Some(value.clone());
            }
        };
        if let Some(actor) = &self.actor {
            event.actor = Some(actor.clone());
        }
        if let Some(impersonator) = &self.impersonator {
            event.impersonator = Some(impersonator.clone());
        }
        fill(&mut event.tenant, &self.tenant);
        let request = &mut event.context;
        if let Some(ip) = self.ip {
            request.ip = Some(ip);
        }
        fill(&mut request.user_agent, &self.user_agent);
        fill(&mut request.request_id, &self.request_id);
        fill(&mut request.htaccess_user, &self.htaccess_user);
        if let Some(source) = self.source {
            request.source = Some(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_survives_awaits_and_nested_scopes_replace_it() {
        let outer = AuditContext::new().actor(Actor::customer("outer"));
        let inner = AuditContext::new().actor(Actor::admin("inner"));
        outer
            .scope(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let seen = AuditContext::current().and_then(|c| c.actor);
                assert_eq!(seen, Some(Actor::customer("outer")));
                let nested = inner
                    .scope(async { AuditContext::current().and_then(|c| c.actor) })
                    .await;
                assert_eq!(nested, Some(Actor::admin("inner")));
                let after = AuditContext::current().and_then(|c| c.actor);
                assert_eq!(after, Some(Actor::customer("outer")));
            })
            .await;
        assert_eq!(AuditContext::current(), None);
    }

    #[tokio::test]
    async fn spawned_tasks_do_not_inherit_the_context() {
        let seen = AuditContext::new()
            .actor(Actor::customer("k"))
            .scope(async { tokio::spawn(async { AuditContext::current() }).await })
            .await
            .expect("task ran");
        assert_eq!(seen, None);
    }

    #[test]
    fn applying_fills_only_what_the_context_has() {
        let mut event = Event::builder("x.y")
            .actor(Actor::system("replaced"))
            .tenant("kept")
            .request_id("kept-too")
            .build()
            .unwrap();
        AuditContext::new()
            .actor(Actor::customer("kunde123"))
            .ip([192, 0, 2, 1].into())
            .source(Source::Api)
            .apply(&mut event);
        assert_eq!(event.actor, Some(Actor::customer("kunde123")));
        assert_eq!(event.tenant.as_deref(), Some("kept"));
        assert_eq!(event.context.request_id.as_deref(), Some("kept-too"));
        assert_eq!(event.context.ip, Some([192, 0, 2, 1].into()));
        assert_eq!(event.context.source, Some(Source::Api));
    }
}
