//! audit-verify's tests: the binary cargo built for them, run on real
//! SQLite files, exports and the PostgreSQL server the test command
//! provides, in one test binary.

#[cfg(feature = "postgres")]
#[path = "../../../tests/pg/mod.rs"]
mod pg;
#[path = "../../../tests/support/mod.rs"]
mod support;

mod cli;
#[cfg(feature = "postgres")]
mod cli_postgres;
#[cfg(feature = "sqlite")]
mod cli_sqlite;
#[cfg(feature = "sqlite")]
mod cli_terminal;
mod cmd;
#[cfg(feature = "sqlite")]
mod readme;
#[cfg(feature = "sqlite")]
mod verdict;
