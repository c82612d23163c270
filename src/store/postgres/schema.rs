//! The schema of a PostgreSQL store: migrations applied on connecting,
//! and the day partitions of `entries`.

use std::sync::LazyLock;

use chrono::NaiveDate;
use sqlx::migrate::Migrator;

use super::PostgresStore;
use crate::StoreError;
use crate::store::sql::SqlStore;
use crate::store::sql::schema::migrate_error;

/// The schema, one migration per version; applied when a store connects.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(crate::store::sql::schema::postgres);

/// Days of partitions created ahead when a store connects, counted from
/// today (UTC); later days are created when the first entry needs them.
pub(super) const DAYS_AHEAD: i64 = 2;

impl PostgresStore {
    /// Applies the migrations the database lacks.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx takes an advisory lock around the migrations, so several
        // processes starting at once apply them exactly once.
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| migrate_error(self, err))
    }

    /// Creates the partition of `day` unless this process knows it exists.
    pub(super) async fn ensure_day(&self, day: NaiveDate) -> Result<(), StoreError> {
        if self.known_days().contains(&day) {
            return Ok(());
        }
        sqlx::query("SELECT trailseal_ensure_day($1)")
            .bind(day)
            .execute(&self.pool)
            .await
            .map_err(|err| self.classify(err))?;
        self.known_days().insert(day);
        Ok(())
    }
}
