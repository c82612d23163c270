//! The panel: its routes, the middleware that sets the audit context once per
//! request, and the handlers, each of which records what it did with one
//! `audit!` line.
//!
//! Shared with `tests/panel.rs` beside it, which starts it and drives it over HTTP.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use tokio::net::TcpListener;
use trailseal::HostingAction::{
    AuditLogView, DatabaseCreate, DomainTransfer, MailboxDelete, SessionLogin, SessionLoginFailed,
    SessionLogout,
};
use trailseal::{
    Actor, ActorKind, SealingKey, SqliteStore, Store, StoreError, Trail, audit,
    event::{AuditContext, Catalog, Source},
    read::{Language, render_lines},
};

/// Opens the store the panel's trails live in.
///
/// The panel's audit trail lives in one SQLite file in `dir`; for a trail
/// that several panel servers share, this is where PostgreSQL would go.
pub async fn open_store(dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(dir.join("audit.db")).await?))
}

/// Demo accounts: login name, password, role. A real panel asks its user
/// database and keeps sessions server-side.
const ACCOUNTS: &[(&str, &str, ActorKind)] = &[
    ("kunde123", "correct horse", ActorKind::Customer),
    ("root", "battery staple", ActorKind::Admin),
];

/// The panel's state: its audit trail and the resources it manages.
#[derive(Clone)]
pub struct Panel {
    admin: Trail,
    store: Arc<dyn Store>,
    databases: Arc<Mutex<BTreeSet<String>>>,
    mailboxes: Arc<Mutex<BTreeSet<String>>>,
}

impl Panel {
    /// Opens the `admin` trail in `store`, sealed with `key`.
    pub async fn start(store: Arc<dyn Store>, key: SealingKey) -> trailseal::Result<Self> {
        let admin = Trail::open("admin", store.clone(), Arc::new(key)).await?;
        let mailboxes = ["info@example.com", "sales@example.com"]
            .map(String::from)
            .into();
        Ok(Self {
            admin,
            store,
            databases: Arc::default(),
            mailboxes: Arc::new(Mutex::new(mailboxes)),
        })
    }

    /// The panel's routes, with the audit context middleware around them.
    pub fn router(self) -> Router {
        Router::new()
            .route("/login", post(login))
            .route("/logout", post(logout))
            .route("/databases", post(create_database))
            .route("/mailboxes/{address}", delete(delete_mailbox))
            .route("/domains/{domain}/transfer", post(transfer_domain))
            .route("/audit", get(view_audit_trail))
            .layer(middleware::from_fn(audit_context))
            .with_state(self)
    }
}

/// Serves the panel on `listener` until the process ends.
pub async fn serve(listener: TcpListener, panel: Panel) -> std::io::Result<()> {
    let app = panel.router();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Sets the audit context for everything the request does: who is logged
/// in, from which address, with which user agent and request id. Every
/// `audit!` in the handlers picks it up.
async fn audit_context(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let mut context = AuditContext::new()
        .ip(peer.ip())
        .source(Source::Ui)
        .request_id(
            header_text(headers, "x-request-id")
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        );
    if let Some(agent) = header_text(headers, header::USER_AGENT.as_str()) {
        context = context.user_agent(agent);
    }
    if let Some(actor) = session_actor(headers) {
        if actor.kind == ActorKind::Customer {
            context = context.tenant(actor.name.clone());
        }
        context = context.actor(actor);
    }
    context.scope(next.run(request)).await
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The logged-in account of the request's session cookie. (The demo cookie
/// holds the login name; a real panel looks a random session id up.)
fn session_actor(headers: &HeaderMap) -> Option<Actor> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let name = cookies
        .split(';')
        .find_map(|cookie| cookie.trim().strip_prefix("session="))?;
    ACCOUNTS
        .iter()
        .find(|(login, _, _)| *login == name)
        .map(|&(login, _, kind)| Actor::new(kind, login))
}

/// What a handler can fail with.
enum PanelError {
    NotLoggedIn,
    Forbidden,
    /// The action could not be audited. The panel fails closed: an action
    /// that is not in the trail is reported as failed.
    Audit(trailseal::Error),
}

impl From<trailseal::Error> for PanelError {
    fn from(err: trailseal::Error) -> Self {
        PanelError::Audit(err)
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        match self {
            PanelError::NotLoggedIn => (StatusCode::UNAUTHORIZED, "please log in").into_response(),
            PanelError::Forbidden => (StatusCode::FORBIDDEN, "not allowed").into_response(),
            PanelError::Audit(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not audited: {err}"),
            )
                .into_response(),
        }
    }
}

fn logged_in() -> Result<Actor, PanelError> {
    AuditContext::current()
        .and_then(|context| context.actor)
        .ok_or(PanelError::NotLoggedIn)
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(panel): State<Panel>,
    Form(form): Form<Login>,
) -> Result<Response, PanelError> {
    let account = ACCOUNTS
        .iter()
        .find(|(login, password, _)| *login == form.user && *password == form.password);
    let Some(&(login, _, kind)) = account else {
        // Whoever tried is not logged in: record them as anonymous, under
        // the name they tried. The password itself never goes near the trail.
        audit!(
            panel.admin,
            SessionLoginFailed,
            actor = Actor::anonymous(tried_login_name(&form.user)),
            reason = "wrong user name or password",
        )
        .await?;
        return Ok((StatusCode::UNAUTHORIZED, "wrong user name or password").into_response());
    };
    // The context has no actor yet: the login is what establishes it.
    audit!(panel.admin, SessionLogin, actor = Actor::new(kind, login)).await?;
    let cookie = format!("session={login}; HttpOnly; SameSite=Strict; Path=/");
    Ok(([(header::SET_COOKIE, cookie)], "welcome").into_response())
}

/// The name a failed login tried, fit to be recorded: anything typed into a
/// login form is attacker-controlled, so control characters are escaped and
/// the length capped, rather than losing the attempt to a validation error.
fn tried_login_name(user: &str) -> String {
    let escaped = trailseal::model::escape_text(user.trim());
    let mut name: String = escaped.chars().take(64).collect();
    if name.is_empty() {
        name.push_str("(empty)");
    }
    name
}

async fn logout(State(panel): State<Panel>) -> Result<Response, PanelError> {
    logged_in()?;
    audit!(panel.admin, SessionLogout).await?;
    let cookie = "session=; Max-Age=0; Path=/";
    Ok(([(header::SET_COOKIE, cookie)], "goodbye").into_response())
}

#[derive(Deserialize)]
struct NewDatabase {
    name: String,
    size_mb: u32,
}

async fn create_database(
    State(panel): State<Panel>,
    Form(form): Form<NewDatabase>,
) -> Result<Response, PanelError> {
    logged_in()?;
    let created = panel
        .databases
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(form.name.clone());
    if !created {
        audit!(
            panel.admin,
            DatabaseCreate,
            target = form.name,
            size_mb = form.size_mb,
            reason = "a database of that name exists",
        )
        .await?;
        return Ok((StatusCode::CONFLICT, "exists").into_response());
    }
    audit!(
        panel.admin,
        DatabaseCreate,
        target = form.name,
        size_mb = form.size_mb
    )
    .await?;
    Ok((StatusCode::CREATED, "created").into_response())
}

async fn delete_mailbox(
    State(panel): State<Panel>,
    UrlPath(address): UrlPath<String>,
) -> Result<Response, PanelError> {
    logged_in()?;
    let removed = panel
        .mailboxes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&address);
    if !removed {
        audit!(
            panel.admin,
            MailboxDelete,
            target = address,
            reason = "no such mailbox"
        )
        .await?;
        return Ok((StatusCode::NOT_FOUND, "no such mailbox").into_response());
    }
    audit!(panel.admin, MailboxDelete, target = address).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A transfer that the registry refuses: failed actions are audited too,
/// with their reason.
async fn transfer_domain(
    State(panel): State<Panel>,
    UrlPath(domain): UrlPath<String>,
) -> Result<Response, PanelError> {
    logged_in()?;
    let reason = "the registry refused: transfer lock is set";
    audit!(
        panel.admin,
        DomainTransfer,
        target = domain,
        reason = reason
    )
    .await?;
    Ok((StatusCode::CONFLICT, reason).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    lang: Option<String>,
}

/// The admin trail as sentences, for administrators only: logs are not
/// handed to customers.
async fn view_audit_trail(
    State(panel): State<Panel>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PanelError> {
    if logged_in()?.kind != ActorKind::Admin {
        return Err(PanelError::Forbidden);
    }
    audit!(panel.admin, AuditLogView, target = panel.admin.name()).await?;
    let language = query
        .lang
        .as_deref()
        .and_then(Language::from_tag)
        .unwrap_or_default();
    let entries = read_trail(panel.store.as_ref(), panel.admin.name())
        .await
        .map_err(|err| PanelError::Audit(err.into()))?;
    Ok(render_lines(&Catalog::hosting(), &entries, language).into_response())
}

/// Every stored entry of a trail, in order.
pub async fn read_trail(
    store: &dyn Store,
    trail: &str,
) -> Result<Vec<trailseal::Entry>, StoreError> {
    use futures_util::TryStreamExt;
    store.scan(trail, 0).try_collect().await
}
