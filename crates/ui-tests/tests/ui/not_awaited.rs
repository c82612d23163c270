// An audit! that is not awaited records nothing; the compiler says so.
#![deny(unused_must_use)]

fn create(trail: &trailseal::Trail) {
    trailseal::audit!(
        trail,
        trailseal::HostingAction::DatabaseCreate,
        actor = trailseal::Actor::customer("kunde123"),
        target = "abc456",
    );
}

fn main() {
    let _ = create;
}
