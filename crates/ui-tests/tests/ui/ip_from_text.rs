// Text is not an address: parse it first.
fn main() {
    let _ = trailseal::audit_event!(
        trailseal::HostingAction::DatabaseCreate,
        actor = trailseal::Actor::customer("kunde123"),
        ip = "192.0.2.7",
    );
}
