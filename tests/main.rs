//! trailseal's integration tests, one module per concern, in one binary:
//! the library is linked once, and the modules a feature needs are built
//! only with it. They run against `MemoryStore`, real SQLite files and the
//! real PostgreSQL server the test command provides (`scripts/with-postgres`).

// Shared helpers and the suites run against several backends.
#[macro_use]
mod access;
#[cfg(feature = "postgres")]
mod pg;
mod support;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[macro_use]
mod transaction;

mod access_memory;
#[cfg(feature = "postgres")]
mod access_postgres;
#[cfg(feature = "sqlite")]
mod access_sqlite;
mod audit;
mod export;
mod forward_security;
mod ingest;
mod ingest_parsing;
#[cfg(feature = "sqlite")]
mod ingest_rotation;
mod macro_paths;
#[cfg(feature = "postgres")]
mod postgres_processes;
#[cfg(feature = "sqlite")]
mod projection;
mod properties;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod retention;
mod roundtrip;
#[cfg(feature = "sqlite")]
mod sqlite_files;
#[cfg(feature = "sqlite")]
mod sqlite_processes;
mod store_memory;
#[cfg(feature = "postgres")]
mod store_postgres;
#[cfg(feature = "sqlite")]
mod store_sqlite;
mod tamper;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod tampered_copies;
#[cfg(feature = "postgres")]
mod transaction_postgres;
#[cfg(feature = "sqlite")]
mod transaction_sqlite;
mod vectors;
mod writer;
