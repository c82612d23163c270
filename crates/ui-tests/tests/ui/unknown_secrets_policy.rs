fn main() {
    let _ = trailseal::audit_event!(
        trailseal::HostingAction::MailboxPasswordChange,
        actor = trailseal::Actor::customer("kunde123"),
        secrets = ignore,
    );
}
