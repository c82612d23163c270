//! What `audit!` records: field routing, call-site location, the request
//! context, the refusals (no actor, wrong trail, secrets, floats), and how
//! the stored entries verify and render.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use trailseal::HostingAction::{
    self, DatabaseCreate, DomainTransfer, MailDelivery, MasterDataUpdate, SessionLoginFailed,
};
use trailseal::{
    Actor, Entry, Error, MemoryStore, SealingKey, Trail, Verifier, audit, audit_event,
    event::{AuditContext, Catalog, Change, Outcome, SECRET_MARKER, Source, ValidationError},
    read::{Language, render, render_lines},
};

struct Fixture {
    trail: Trail,
    store: MemoryStore,
    verifier: Verifier,
}

async fn open(name: &str) -> Fixture {
    let (key, verification) = SealingKey::generate("k1", Utc::now(), 900).unwrap();
    let store = MemoryStore::new();
    let trail = Trail::open(name, Arc::new(store.clone()), Arc::new(key))
        .await
        .unwrap();
    Fixture {
        trail,
        store,
        verifier: Verifier::new(verification),
    }
}

impl Fixture {
    fn entry(&self, seq: u64) -> Entry {
        self.store.dump(self.trail.name())[seq as usize].clone()
    }

    async fn assert_intact(&self) {
        let report = self
            .verifier
            .verify_trail(&self.store, self.trail.name())
            .await
            .unwrap();
        assert!(report.is_intact(), "{report}");
    }
}

fn kunde() -> Actor {
    Actor::customer("kunde123")
}

#[test]
fn special_keys_fill_the_events_own_fields() {
    let peer: SocketAddr = "198.51.100.4:50123".parse().unwrap();
    let when = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let event = audit_event!(
        DomainTransfer,
        actor = kunde(),
        impersonator = Actor::admin("root"),
        target = "example.com",
        tenant = "kunde123",
        reason = "transfer lock is set",
        ip = peer,
        user_agent = "Mozilla/5.0",
        request_id = ?42,
        htaccess_user = "stats",
        source = Source::Api,
        occurred_at = when,
        changes = [Change { field: "owner".into(), old: Some("a".into()), new: Some("b".into()) }],
    )
    .unwrap();
    let target = event.target.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_str(), target.id.as_str()),
        ("domain", "example.com")
    );
    assert_eq!(event.tenant.as_deref(), Some("kunde123"));
    assert_eq!(event.outcome, Outcome::failure("transfer lock is set"));
    assert_eq!(event.impersonator, Some(Actor::admin("root")));
    assert_eq!(event.context.ip, Some(peer.ip()));
    assert_eq!(event.context.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(event.context.request_id.as_deref(), Some("42"));
    assert_eq!(event.context.htaccess_user.as_deref(), Some("stats"));
    assert_eq!(event.context.source, Some(Source::Api));
    assert_eq!(event.occurred_at, Some(when));
    assert_eq!(event.changes.len(), 1);
    assert!(event.metadata.is_empty(), "{:?}", event.metadata);
}

#[test]
fn other_keys_become_metadata_with_sigils_and_shorthands() {
    #[derive(Debug)]
    struct Plan {
        name: &'static str,
    }
    let plan = Plan { name: "business" };
    let peer = Ipv4Addr::new(192, 0, 2, 7);
    let quota: Option<u32> = None;
    let names = vec!["a", "b"];
    let size_mb = 100;
    let event = audit_event!(
        DatabaseCreate,
        actor = kunde(),
        engine = "mariadb",
        utf8 = true,
        size_mb,
        quota,
        names,
        %peer,
        ?plan,
        label = %format_args!("{}-{}", "db", 7),
        dump = ?"x",
    )
    .unwrap();
    let meta = serde_json::Value::Object(event.metadata);
    assert_eq!(
        meta,
        serde_json::json!({
            "engine": "mariadb",
            "utf8": true,
            "size_mb": 100,
            "quota": null,
            "names": ["a", "b"],
            "peer": "192.0.2.7",
            "plan": "Plan { name: \"business\" }",
            "label": "db-7",
            "dump": "\"x\"",
        })
    );
    let _ = plan.name;
}

#[test]
fn the_call_site_is_captured() {
    let line = line!() + 1;
    let event = audit_event!(DatabaseCreate, actor = kunde()).unwrap();
    let location = event.location.unwrap();
    assert_eq!(location.module, module_path!());
    assert!(location.module.ends_with("::audit"), "{}", location.module);
    assert!(location.file.ends_with("audit.rs"), "{}", location.file);
    assert_eq!(location.line, line);
}

#[tokio::test]
async fn the_context_is_picked_up_across_awaits_and_explicit_fields_win() {
    let fx = open("admin").await;
    let context = AuditContext::new()
        .actor(kunde())
        .tenant("kunde123")
        .ip(IpAddr::from([203, 0, 113, 9]))
        .user_agent("Mozilla/5.0")
        .request_id("req-1")
        .source(Source::Ui);
    let (first, second) = context
        .scope(async {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let first = audit!(fx.trail, DatabaseCreate, target = "abc456").await?;
            tokio::task::yield_now().await;
            let second = audit!(
                fx.trail,
                DatabaseCreate,
                target = "def789",
                actor = Actor::admin("root"),
                request_id = "req-override",
            )
            .await?;
            Ok::<_, Error>((first, second))
        })
        .await
        .unwrap();

    let first = fx.entry(first.seq);
    assert_eq!(first.value("actor.name"), Some("kunde123"));
    assert_eq!(first.value("actor.kind"), Some("customer"));
    assert_eq!(first.value("tenant"), Some("kunde123"));
    assert_eq!(first.value("context.ip"), Some("203.0.113.9"));
    assert_eq!(first.value("context.user_agent"), Some("Mozilla/5.0"));
    assert_eq!(first.value("context.request_id"), Some("req-1"));
    assert_eq!(first.value("context.source"), Some("ui"));

    let second = fx.entry(second.seq);
    assert_eq!(second.value("actor.name"), Some("root"));
    assert_eq!(second.value("actor.kind"), Some("admin"));
    assert_eq!(second.value("context.request_id"), Some("req-override"));
    assert_eq!(
        second.value("tenant"),
        Some("kunde123"),
        "the rest still comes from the context"
    );
    fx.assert_intact().await;
}

#[tokio::test]
async fn recording_without_an_actor_is_an_error_and_records_nothing() {
    let fx = open("admin").await;
    let err = audit!(fx.trail, DatabaseCreate, target = "abc456")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::MissingActor)),
        "{err:?}"
    );
    // A context without an actor does not help either.
    let err = AuditContext::new()
        .tenant("kunde123")
        .scope(audit!(fx.trail, DatabaseCreate, target = "abc456"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(ValidationError::MissingActor)));
    assert!(fx.store.dump("admin").is_empty());
}

#[tokio::test]
async fn an_action_of_another_trail_is_refused() {
    let fx = open("admin").await;
    let err = audit!(
        fx.trail,
        MasterDataUpdate,
        actor = kunde(),
        target = "kunde123"
    )
    .await
    .unwrap_err();
    match err {
        Error::Invalid(ValidationError::WrongTrail {
            action,
            expected,
            trail,
        }) => {
            assert_eq!(
                (action, expected, trail.as_str()),
                ("master_data.update", "master-data", "admin")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(fx.store.dump("admin").is_empty());
}

#[tokio::test]
async fn secrets_are_refused_unless_the_call_site_masks_them() {
    let fx = open("admin").await;
    let password = "hunter2";
    let err = audit!(
        fx.trail,
        HostingAction::MailboxPasswordChange,
        actor = kunde(),
        target = "info@example.com",
        new_password = password,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(ValidationError::Secret { name, .. }) if name == "new_password"),
        "{err:?}"
    );
    assert!(fx.store.dump("admin").is_empty(), "nothing was sealed");

    let receipt = audit!(
        fx.trail,
        HostingAction::MailboxPasswordChange,
        actor = kunde(),
        target = "info@example.com",
        new_password = password,
        apiToken = %password,
        secrets = mask,
    )
    .await
    .unwrap();
    let entry = fx.entry(receipt.seq);
    let stored = serde_json::to_string(&entry).unwrap();
    assert!(!stored.contains(password), "{stored}");
    let metadata: serde_json::Value =
        serde_json::from_str(entry.value("metadata").unwrap()).unwrap();
    assert_eq!(metadata["new_password"], SECRET_MARKER);
    assert_eq!(metadata["apiToken"], SECRET_MARKER);
    fx.assert_intact().await;
}

#[tokio::test]
async fn bad_metadata_values_are_typed_errors() {
    let fx = open("admin").await;
    let err = audit!(fx.trail, DatabaseCreate, actor = kunde(), ratio = 0.5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::Float { .. })),
        "{err:?}"
    );

    let mut by_pair = BTreeMap::new();
    by_pair.insert((1u8, 2u8), 3u8);
    let err = audit!(fx.trail, DatabaseCreate, actor = kunde(), by_pair)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(ValidationError::MetadataValue { key, .. }) if key == "by_pair"),
        "{err:?}"
    );
}

#[tokio::test]
async fn stored_entries_verify_and_render_in_english_and_german() {
    let fx = open("admin").await;
    let ctx = AuditContext::new().actor(kunde());
    let (created, failed, impersonated, login) = ctx
        .scope(async {
            let created = audit!(fx.trail, DatabaseCreate, target = "abc456").await?;
            let failed = audit!(
                fx.trail,
                DomainTransfer,
                target = "example.com",
                reason = "transfer lock is set"
            )
            .await?;
            let impersonated = audit!(
                fx.trail,
                HostingAction::MailboxDelete,
                target = "info@example.com",
                impersonator = Actor::admin("root"),
            )
            .await?;
            let login = audit!(
                fx.trail,
                SessionLoginFailed,
                actor = Actor::anonymous("kunde999"),
                reason = "wrong password"
            )
            .await?;
            Ok::<_, Error>((created, failed, impersonated, login))
        })
        .await
        .unwrap();
    fx.assert_intact().await;

    let sentences = |seq: u64| {
        let entry = fx.entry(seq);
        (
            render(&entry, Language::English),
            render(&entry, Language::German),
        )
    };
    assert_eq!(
        sentences(created.seq),
        (
            "kunde123 created database abc456".to_owned(),
            "kunde123 hat Datenbank abc456 angelegt".to_owned()
        )
    );
    assert_eq!(
        sentences(failed.seq),
        (
            "kunde123 transferred domain example.com (failed: transfer lock is set)".to_owned(),
            "kunde123 hat Domain example.com übertragen (fehlgeschlagen: transfer lock is set)"
                .to_owned()
        )
    );
    assert_eq!(
        sentences(impersonated.seq),
        (
            "kunde123 deleted mailbox info@example.com (by root on their behalf)".to_owned(),
            "kunde123 hat Postfach info@example.com gelöscht (durch root in Vertretung)".to_owned()
        )
    );
    assert_eq!(
        sentences(login.seq),
        (
            "login as kunde999 failed: wrong password".to_owned(),
            "Anmeldung als kunde999 fehlgeschlagen: wrong password".to_owned()
        )
    );
    assert_eq!(
        sentences(0),
        (
            "trail admin started".to_owned(),
            "Protokoll admin begonnen".to_owned()
        )
    );
}

#[tokio::test]
async fn redacted_fields_render_as_redacted() {
    let fx = open("mail").await;
    let receipt = audit!(
        fx.trail,
        MailDelivery,
        actor = Actor::anonymous("mta"),
        target = "<m1@example.com>",
        sender = "a@example.com",
        recipient = "b@example.org",
        size = 2048,
        peer_host = "mx.example.org",
        ip = Ipv4Addr::new(198, 51, 100, 4),
        status = "sent",
    )
    .await
    .unwrap();
    let mut entry = fx.entry(receipt.seq);
    assert_eq!(
        render(&entry, Language::English),
        "mail <m1@example.com> from a@example.com to b@example.org (2048 bytes, peer mx.example.org 198.51.100.4): sent"
    );
    // Retention anonymises the IP and erases the metadata.
    for name in ["context.ip", "metadata"] {
        let field = entry.body.get(name).unwrap().redacted(name);
        entry.body.insert(name, field);
    }
    assert_eq!(
        render(&entry, Language::English),
        "mail <m1@example.com> from [redacted] to [redacted] ([redacted] bytes, peer [redacted] [redacted]): [redacted]"
    );
    assert_eq!(
        render(&entry, Language::German),
        "E-Mail <m1@example.com> von [geschwärzt] an [geschwärzt] ([geschwärzt] Bytes, Gegenstelle [geschwärzt] [geschwärzt]): [geschwärzt]"
    );
}

#[tokio::test]
async fn no_field_can_forge_a_line_or_a_placeholder_in_a_rendering() {
    let fx = open("admin").await;
    let hostile = "x\r\nadmin#99 root deleted customer kunde1\u{1b}[2J\u{202E}\u{2028}";
    let receipt = audit!(
        fx.trail,
        DomainTransfer,
        actor = kunde(),
        target = "{actor}",
        reason = hostile,
        user_agent = hostile,
    )
    .await
    .unwrap();
    let plan = audit!(
        fx.trail,
        HostingAction::PlanAssign,
        actor = kunde(),
        target = "kunde123",
        plan = hostile,
    )
    .await
    .unwrap();
    // Identifiers with control characters are refused outright.
    let err = audit!(fx.trail, DatabaseCreate, actor = kunde(), target = "a\nb")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid(ValidationError::ControlCharacter { .. })
    ));

    let entries = fx.store.dump("admin");
    for language in [Language::English, Language::German] {
        let text = render_lines(&Catalog::hosting(), &entries, language);
        assert_eq!(text.lines().count(), entries.len(), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202E}'),
            "{text}"
        );
    }
    let sentence = render(&fx.entry(receipt.seq), Language::English);
    assert_eq!(
        sentence,
        "kunde123 transferred domain {actor} (failed: x\\r\\nadmin#99 root deleted customer kunde1\\u{001B}[2J\\u{202E}\\u{2028})"
    );
    let sentence = render(&fx.entry(plan.seq), Language::English);
    assert!(
        sentence.starts_with("kunde123 assigned hosting plan x\\r\\nadmin#99"),
        "{sentence}"
    );
}

#[tokio::test]
async fn unknown_actions_get_a_generic_sentence() {
    let fx = open("admin").await;
    let event = trailseal::Event::builder("shop.voucher.redeem")
        .actor(kunde())
        .target("voucher", "V-1")
        .build()
        .unwrap();
    let with_target = fx.trail.record(event).await.unwrap();
    let event = trailseal::Event::builder("shop.cart.clear")
        .actor(kunde())
        .build()
        .unwrap();
    let without_target = fx.trail.record(event).await.unwrap();
    let with_target = fx.entry(with_target.seq);
    let without_target = fx.entry(without_target.seq);
    assert_eq!(
        render(&with_target, Language::English),
        "kunde123 performed shop.voucher.redeem on voucher V-1"
    );
    assert_eq!(
        render(&with_target, Language::German),
        "kunde123 hat shop.voucher.redeem an voucher V-1 ausgeführt"
    );
    assert_eq!(
        render(&without_target, Language::German),
        "kunde123 hat shop.cart.clear ausgeführt"
    );
}

#[test]
fn languages_are_found_from_tags() {
    assert_eq!(Language::from_tag("de-AT"), Some(Language::German));
    assert_eq!(Language::from_tag("en_GB"), Some(Language::English));
    assert_eq!(Language::from_tag(" DE "), Some(Language::German));
    assert_eq!(Language::from_tag("fr"), None);
    assert_eq!(Language::from_tag(""), None);
}
