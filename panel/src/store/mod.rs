//! Storage: the panel's SQLite database (`data_dir/panel.db`, WAL), its migrations
//! (files under `panel/migrations/`, applied at start) and one `Store` type whose
//! methods are the only SQL in the panel, one submodule per area. Every query that
//! reads or changes an account's things takes that account's id and filters on it:
//! nothing here may return or touch another account's rows. Every change is written
//! together with its activity entry in one transaction. This module never looks at
//! requests, assertions or the disk beyond the database file.

mod accounts;
mod activity;
mod databases;
mod domains;
mod mail;
mod settings;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use thiserror::Error;

pub use accounts::{Account, AccountSeed, AccountSummary, DefaultDomain, SeedMessage};
pub use activity::{ActivityEntry, ActivityKind, ActivityRecord};
pub use databases::Database;
pub use domains::{Domain, DomainAdded};
pub use mail::{MailboxSummary, Message, MessageHeader};
pub use settings::Settings;

/// How long a writer waits for SQLite's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the pool; SQLite serialises writers anyway.
const MAX_CONNECTIONS: u32 = 8;

/// A storage failure. Callers show a generic error page and log the detail.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be opened or a query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The panel's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the SQLite database at `path` in WAL mode and
    /// applies the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Closes every connection; used on shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
