//! Every macro, called the way a user who imports nothing writes it: by its
//! full path, with no `use` statement anywhere in this file. Expansions that
//! relied on a name being in scope at the call site would fail to compile.

trailseal::actions! {
    /// Actions of a shop module.
    pub enum ShopAction {
        VoucherRedeem = "voucher.redeem" {
            trail: "admin",
            target: "voucher",
            fields: ["value_cents"],
            en: "{actor} redeemed voucher {target} worth {value_cents} cents",
            de: "{actor} hat Gutschein {target} im Wert von {value_cents} Cent eingelöst",
        },
    }
}

async fn admin_trail() -> (trailseal::Trail, trailseal::MemoryStore) {
    let (key, _) = trailseal::SealingKey::generate("k1", chrono::Utc::now(), 900).unwrap();
    let store = trailseal::MemoryStore::new();
    let trail = trailseal::Trail::open(
        "admin",
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(key),
    )
    .await
    .unwrap();
    (trail, store)
}

#[tokio::test]
async fn every_macro_works_with_fully_qualified_paths_and_no_imports() {
    let (trail, store) = admin_trail().await;
    let peer = std::net::Ipv4Addr::new(192, 0, 2, 7);
    let plan = ["mysql", "utf8mb4"];

    let receipt = trailseal::audit!(
        trail,
        trailseal::HostingAction::DatabaseCreate,
        actor = trailseal::Actor::customer("kunde123"),
        target = "abc456",
        size_mb = 100,
        %peer,
        ?plan,
    )
    .await
    .unwrap();
    assert_eq!(&*receipt.trail, "admin");

    let custom = trailseal::audit!(
        trail,
        ShopAction::VoucherRedeem,
        actor = trailseal::Actor::customer("kunde123"),
        target = "V-2026",
        value_cents = 500,
    )
    .await
    .unwrap();
    assert_eq!(custom.seq, receipt.seq + 1);

    let event = trailseal::audit_event!(
        trailseal::HostingAction::MailboxDelete,
        actor = trailseal::Actor::customer("kunde123"),
        target = "info@example.com",
    )
    .unwrap();
    assert_eq!(event.action, "mailbox.delete");

    let entries = store.dump("admin");
    let stored = &entries[receipt.seq as usize];
    assert_eq!(stored.value("action"), Some("database.create"));
    assert_eq!(stored.value("target.type"), Some("database"));
    assert_eq!(stored.value("target.id"), Some("abc456"));
    assert_eq!(
        stored.value("metadata"),
        Some(r#"{"peer":"192.0.2.7","plan":"[\"mysql\", \"utf8mb4\"]","size_mb":100}"#)
    );
    assert_eq!(
        trailseal::event::Catalog::hosting()
            .with::<ShopAction>()
            .render(
                &entries[custom.seq as usize],
                trailseal::read::Language::German
            ),
        "kunde123 hat Gutschein V-2026 im Wert von 500 Cent eingelöst"
    );
}
