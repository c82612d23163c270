// `ip` takes an address; `%ip` would otherwise silently become metadata.
fn main() {
    let ip = std::net::Ipv4Addr::LOCALHOST;
    let _ = trailseal::audit_event!(
        trailseal::HostingAction::DatabaseCreate,
        actor = trailseal::Actor::customer("kunde123"),
        %ip,
    );
}
