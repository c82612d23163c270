//! Starts the example panel on 127.0.0.1, drives it over HTTP like a browser
//! would, and checks what landed in its trail: verified entries with the
//! right actor, context and call site, and their English and German
//! sentences.

#[path = "../app.rs"]
mod app;

use std::net::SocketAddr;

use reqwest::StatusCode;
use trailseal::{
    Entry, SealingKey, Verifier,
    event::Catalog,
    read::{Language, render, render_lines},
};

struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
    requests: u32,
}

impl Browser {
    fn new(addr: SocketAddr) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
            cookie: None,
            requests: 0,
        }
    }

    /// Sends a request as the panel's web UI does, with a user agent, a
    /// request id (`req-1`, `req-2` …) and the session cookie, if any.
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        self.requests += 1;
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", "PanelTest/1.0")
            .header("x-request-id", format!("req-{}", self.requests));
        if !form.is_empty() {
            request = request.form(form);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("the panel answers");
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn login(&mut self, user: &str, password: &str) -> StatusCode {
        let form = [("user", user), ("password", password)];
        self.send(reqwest::Method::POST, "/login", &form).await.0
    }
}

fn sentences(entry: &Entry) -> (String, String) {
    (
        render(entry, Language::English),
        render(entry, Language::German),
    )
}

#[tokio::test]
async fn the_panel_audits_every_action_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = app::open_store(dir.path()).await.unwrap();
    let (key, verification) = SealingKey::generate("panel", chrono::Utc::now(), 900).unwrap();
    let panel = app::Panel::start(store.clone(), key).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::serve(listener, panel));

    let mut customer = Browser::new(addr);
    let (status, _) = customer
        .send(
            reqwest::Method::POST,
            "/databases",
            &[("name", "x"), ("size_mb", "1")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "not logged in: refused, and nothing recorded"
    );

    assert_eq!(
        customer.login("kunde123", "hunter2").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        customer.login("kunde123", "correct horse").await,
        StatusCode::OK
    );
    let form = [("name", "abc456"), ("size_mb", "100")];
    let (status, _) = customer
        .send(reqwest::Method::POST, "/databases", &form)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = customer
        .send(reqwest::Method::DELETE, "/mailboxes/info@example.com", &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = customer
        .send(reqwest::Method::POST, "/domains/example.com/transfer", &[])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = customer.send(reqwest::Method::GET, "/audit", &[]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "customers never see the logs"
    );

    let mut admin = Browser::new(addr);
    assert_eq!(admin.login("root", "battery staple").await, StatusCode::OK);
    let (status, german) = admin
        .send(reqwest::Method::GET, "/audit?lang=de", &[])
        .await;
    assert_eq!(status, StatusCode::OK);

    // The trail verifies, and holds exactly the audited actions in order.
    let report = Verifier::new(verification)
        .verify_trail(store.as_ref(), "admin")
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    let entries = app::read_trail(store.as_ref(), "admin").await.unwrap();
    let events: Vec<&Entry> = entries
        .iter()
        .filter(|entry| entry.kind == trailseal::EntryKind::Event)
        .collect();
    let actions: Vec<&str> = events.iter().map(|e| e.value("action").unwrap()).collect();
    assert_eq!(
        actions,
        [
            "session.login_failed",
            "session.login",
            "database.create",
            "mailbox.delete",
            "domain.transfer",
            "session.login",
            "audit_log.view",
        ]
    );

    // The middleware's context reached every entry.
    let create = events[2];
    assert_eq!(create.value("actor.name"), Some("kunde123"));
    assert_eq!(create.value("actor.kind"), Some("customer"));
    assert_eq!(create.value("tenant"), Some("kunde123"));
    assert_eq!(create.value("context.ip"), Some("127.0.0.1"));
    assert_eq!(create.value("context.user_agent"), Some("PanelTest/1.0"));
    assert_eq!(create.value("context.request_id"), Some("req-4"));
    assert_eq!(create.value("context.source"), Some("ui"));
    assert_eq!(create.value("metadata"), Some(r#"{"size_mb":100}"#));
    assert!(create.value("location.file").unwrap().ends_with("app.rs"));
    assert_eq!(events[0].value("actor.kind"), Some("anonymous"));
    assert_eq!(events[6].value("actor.name"), Some("root"));
    assert_eq!(events[6].value("tenant"), None, "an admin has no tenant");
    // The password typed into the login form never reached the trail.
    let stored = serde_json::to_string(&entries).unwrap();
    assert!(!stored.contains("hunter2") && !stored.contains("correct horse"));

    let expected = [
        (
            "login as kunde123 failed: wrong user name or password",
            "Anmeldung als kunde123 fehlgeschlagen: wrong user name or password",
        ),
        ("kunde123 logged in", "kunde123 hat sich angemeldet"),
        (
            "kunde123 created database abc456",
            "kunde123 hat Datenbank abc456 angelegt",
        ),
        (
            "kunde123 deleted mailbox info@example.com",
            "kunde123 hat Postfach info@example.com gelöscht",
        ),
        (
            "kunde123 transferred domain example.com (failed: the registry refused: transfer lock is set)",
            "kunde123 hat Domain example.com übertragen (fehlgeschlagen: the registry refused: transfer lock is set)",
        ),
        ("root logged in", "root hat sich angemeldet"),
        (
            "root viewed audit trail admin",
            "root hat Audit-Protokoll admin eingesehen",
        ),
    ];
    for (entry, (english, german)) in events.iter().zip(expected) {
        assert_eq!(sentences(entry), (english.to_owned(), german.to_owned()));
    }

    // The panel's own view is the same rendering, up to the moment it was
    // made (it includes its own audit_log.view entry).
    assert_eq!(
        german,
        render_lines(&Catalog::hosting(), &entries, Language::German)
    );
    assert!(
        german.contains("admin#3 kunde123 hat Datenbank abc456 angelegt\n"),
        "{german}"
    );
}
