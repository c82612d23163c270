//! Rebuilds the crate when a schema migration is added. `sqlx::migrate!`
//! embeds every file of `migrations/` it finds, but cargo only watches the
//! files that existed at the last build, so a new migration would be left
//! out of an incremental build until some source file changed.

fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
