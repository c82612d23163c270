//! The database the trails are sealed into.

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use trailseal::PostgresStore;
use trailseal::store::SqliteStoreOptions;
use trailseal::{SqliteStore, Store, StoreError};

/// The lock file that goes with a SQLite database when none is configured:
/// `<file>.ingest.lock` next to it (the folder must be writable for SQLite's
/// log anyway); none for a server. Found from the URL, since the lock is
/// taken before the database is opened: a second instance then stops
/// before it touches the database at all.
pub fn default_lock_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return None;
    }
    SqliteStoreOptions::from_url(url).ok()?;
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let mut name = PathBuf::from(path).into_os_string();
    name.push(".ingest.lock");
    Some(PathBuf::from(name))
}

/// An open SQLite file or PostgreSQL pool.
pub enum Database {
    /// A SQLite file on this machine.
    Sqlite(SqliteStore),
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

impl Database {
    /// Opens a `postgres://` URL on a server, anything else as SQLite; the
    /// folder of a new SQLite file is made on the first run.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Self::Postgres(PostgresStore::connect(url).await?));
        }
        let options = SqliteStoreOptions::from_url(url)?;
        let store = options.clone().open().await;
        if let Err(StoreError::Io { path, .. }) = &store
            && let Some(folder) = path.parent().filter(|folder| !folder.exists())
        {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::Io {
                path: folder.to_owned(),
                source,
            })?;
            return Ok(Self::Sqlite(options.open().await?));
        }
        Ok(Self::Sqlite(store?))
    }

    /// The store, shared by the trails and the followers.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Closes the connections (and folds SQLite's log into the file).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lock_file_lies_next_to_the_sqlite_file() {
        for url in [
            "sqlite:///var/lib/trailseal/trail.db",
            "sqlite:/var/lib/trailseal/trail.db",
            "/var/lib/trailseal/trail.db",
        ] {
            assert_eq!(
                default_lock_file(url),
                Some(PathBuf::from("/var/lib/trailseal/trail.db.ingest.lock")),
                "{url}"
            );
        }
        assert_eq!(default_lock_file("postgres://db/audit"), None);
    }
}
