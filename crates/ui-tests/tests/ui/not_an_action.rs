// Actions are declared, not strings made up at the call site.
async fn create(trail: trailseal::Trail) -> trailseal::Result<()> {
    trailseal::audit!(trail, "database.create", target = "abc456").await?;
    Ok(())
}

fn main() {
    let _ = create;
}
