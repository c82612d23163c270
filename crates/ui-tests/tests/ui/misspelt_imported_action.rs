// The same with the actions imported, as the short form is written.
use trailseal::HostingAction::*;
use trailseal::{Actor, Trail, audit};

async fn create(trail: Trail) -> trailseal::Result<()> {
    audit!(trail, DatabaseCreat, actor = Actor::customer("kunde123"), target = "abc456").await?;
    audit!(trail, DatabaseCreate, actor = Actor::customer("kunde123"), target = "abc456").await?;
    Ok(())
}

fn main() {
    let _ = create;
}
