//! Connecting to PostgreSQL: [`PostgresStoreOptions`].

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::PostgresStore;
use super::errors::classify;
use super::schema::DAYS_AHEAD;
use crate::StoreError;
use crate::model::timer_interval;

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresStoreOptions {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    outcome_timeout: Duration,
}

impl PostgresStoreOptions {
    /// Options for a `postgres://user:password@host:port/database` URL: 8
    /// connections, 30 seconds to get one, 60 seconds to learn the outcome
    /// of an append whose connection broke.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(|err| {
            StoreError::InvalidUrl(format!(
                "not a PostgreSQL URL ({err}); use postgres://user:password@host:port/database"
            ))
        })?;
        Ok(Self {
            connect,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            outcome_timeout: Duration::from_secs(60),
        })
    }

    /// Most connections kept open (default: 8).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long to wait for a connection, e.g. while the server restarts,
    /// before failing (default: 30 seconds; a negative span counts as zero).
    pub fn acquire_timeout(mut self, timeout: TimeDelta) -> Self {
        self.acquire_timeout = timer_interval(timeout, Duration::ZERO);
        self
    }

    /// How long to keep trying to learn whether an append whose connection
    /// broke was committed, before failing with
    /// [`StoreError::OutcomeUnknown`] (default: 60 seconds; a negative span
    /// counts as zero).
    pub fn outcome_timeout(mut self, timeout: TimeDelta) -> Self {
        self.outcome_timeout = timer_interval(timeout, Duration::ZERO);
        self
    }

    /// Connects, applies pending schema migrations and creates the
    /// partitions of the next days.
    pub async fn open(self) -> Result<PostgresStore, StoreError> {
        let connect = &self.connect;
        let database = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect
                .get_database()
                .unwrap_or_else(|| connect.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(self.connect)
            .await
            .map_err(|err| classify(&database, err))?;
        let store = PostgresStore {
            pool,
            partitions: Arc::new(Mutex::new(HashSet::new())),
            outcome_timeout: self.outcome_timeout,
            database: Arc::from(database),
        };
        store.migrate().await?;
        let today = Utc::now().date_naive();
        for ahead in -1..=DAYS_AHEAD {
            if let Some(day) = today.checked_add_signed(chrono::TimeDelta::days(ahead)) {
                store.ensure_day(day).await?;
            }
        }
        Ok(store)
    }
}
