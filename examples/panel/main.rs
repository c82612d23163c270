//! A small hosting panel on axum whose every action is audited.
//!
//! ```text
//! cargo run --bin panel
//! curl -i -d 'user=kunde123&password=correct horse' http://127.0.0.1:3000/login
//! curl -i -b session=kunde123 -d 'name=abc456&size_mb=100' http://127.0.0.1:3000/databases
//! curl -i -b session=kunde123 -X DELETE http://127.0.0.1:3000/mailboxes/info@example.com
//! curl -i -b session=kunde123 -X POST http://127.0.0.1:3000/domains/example.com/transfer
//! curl -i -d 'user=root&password=battery staple' http://127.0.0.1:3000/login
//! curl -b session=root 'http://127.0.0.1:3000/audit?lang=de'
//! ```

mod app;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join("trailseal-panel");
    std::fs::create_dir_all(&data)?;
    let store = app::open_store(&data).await?;
    // A real panel loads its sealing key from its key file and keeps the
    // verification key offline; the demo makes a fresh pair.
    let (key, _verification) = trailseal::SealingKey::generate("panel", chrono::Utc::now(), 900)?;
    let panel = app::Panel::start(store, key).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("panel on http://{}", listener.local_addr()?);
    app::serve(listener, panel).await?;
    Ok(())
}
