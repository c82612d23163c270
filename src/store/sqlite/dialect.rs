//! SQLite as the shared SQL layer sees it: `?` placeholders, times as
//! microseconds, the restriction flag as an integer, body values copied as
//! they are.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Arguments, Executor, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::StoreError;
use crate::store::sql::{self, Argument, Dialect, SqlRow, Statements};

/// A seq or epoch as SQLite stores it.
pub(super) fn to_i64(trail: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    sql::to_i64::<Sqlite>(trail, what, value)
}
/// A time as SQLite stores it: microseconds since the Unix epoch.
pub(super) fn decode_time(micros: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("timestamp {micros} µs is out of range"))
}

impl Dialect for Sqlite {
    /// Large enough that the per-query cost vanishes, small enough that
    /// memory stays flat on any trail.
    const SCAN_CHUNK: i64 = 1000;
    const NOT_RESTRICTED: &'static str = "restricted = 0";
    /// None: a write transaction holds the database's write lock.
    const LOCK_ROWS: &'static str = "";
    /// IMMEDIATE takes the write lock at once: what the transaction reads
    /// cannot go stale before it writes, whichever process writes next.
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn placeholders(template: &str) -> Cow<'_, str> {
        Cow::Borrowed(template)
    }

    fn add(arguments: &mut SqliteArguments, value: Argument<'_>) -> Result<(), BoxDynError> {
        match value {
            Argument::Text(text) => arguments.add(text),
            Argument::OptionalText(text) => arguments.add(text),
            // Times are stored as microseconds.
            Argument::Integer(integer) | Argument::Micros(integer) => arguments.add(integer),
            Argument::OptionalInteger(integer) => arguments.add(integer),
        }
    }

    /// Body values as they are: SQLite text holds any of them.
    fn copy_text(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value)
    }

    fn is_copy_of(stored: &str, value: &str) -> bool {
        stored == value
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn on_pool(pool: &SqlitePool) -> impl Executor<'_, Database = Sqlite> {
        pool
    }

    fn on_connection(connection: &mut SqliteConnection) -> impl Executor<'_, Database = Sqlite> {
        connection
    }

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::new::<Sqlite>);
        &STATEMENTS
    }
}

impl SqlRow for SqliteRow {
    fn integer(&self, index: usize) -> Result<i64, sqlx::Error> {
        self.try_get(index)
    }

    fn text(&self, index: usize) -> Result<&str, sqlx::Error> {
        self.try_get(index)
    }

    fn optional_text(&self, index: usize) -> Result<Option<&str>, sqlx::Error> {
        self.try_get(index)
    }

    fn bytes(&self, index: usize) -> Result<&[u8], sqlx::Error> {
        self.try_get(index)
    }

    fn time(&self, index: usize) -> Result<Result<DateTime<Utc>, String>, sqlx::Error> {
        self.try_get(index).map(decode_time)
    }

    fn optional_time(
        &self,
        index: usize,
    ) -> Result<Option<Result<DateTime<Utc>, String>>, sqlx::Error> {
        let micros: Option<i64> = self.try_get(index)?;
        Ok(micros.map(decode_time))
    }

    /// The flag is an integer; only 0 shows the entry to queries.
    fn restricted(&self, index: usize) -> bool {
        !matches!(self.try_get::<i64, _>(index), Ok(0))
    }
}
