// A misspelt action is a compile error, not a new name in the trail.
async fn create(trail: trailseal::Trail) -> trailseal::Result<()> {
    trailseal::audit!(
        trail,
        trailseal::HostingAction::DatabaseCreat,
        actor = trailseal::Actor::customer("kunde123"),
        target = "abc456",
    )
    .await?;
    Ok(())
}

fn main() {
    let _ = create;
}
