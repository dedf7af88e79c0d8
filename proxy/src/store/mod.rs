//! The shared store: one `Store` over SQLite (the embedded default) or PostgreSQL (for
//! several instances), through sqlx's `Any` driver so both run the very same SQL.
//!
//! It owns the connection pool and the migrations (files under `proxy/migrations/`,
//! applied at start). The submodules hold the queries of one concern each: the
//! directory of accounts, sessions and impersonations, and the audit table. This module
//! never decides anything: callers bring the rules, the store keeps the rows.

pub mod audit;
pub mod directory;
pub mod sessions;

/// Where a page of a list read a page at a time starts: at the list's first entries in the
/// order read, or next to the entry with key `K` (the last or first one of the page before),
/// nearest first. A page read by key does not shift as entries are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageFrom<K> {
    /// The first entries in the order read.
    First,
    /// The entries that sort before this key, nearest first.
    Before(K),
    /// The entries that sort after this key, nearest first.
    After(K),
}

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: nothing to install.
    Sqlite,
    /// A PostgreSQL server shared by several instances.
    Postgres,
}

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    Url(String),
    /// A row holds a value this version does not understand.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The database's record of its migrations does not fit this release.
    #[error("database schema: {0}")]
    Schema(String),
    /// A batch was given more rows than it was begun for (a bug in the caller).
    #[error("audit batch overrun: {0}")]
    BatchOverrun(String),
}

/// Where a database's schema stands against this binary's migrations ([`Store::inspect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schema {
    /// The SQLite file is not there yet; `serve` creates it.
    NotCreated,
    /// Every migration of this release is applied.
    Current,
    /// These migrations (versions) are not applied yet; `serve` applies them.
    Behind {
        /// Their versions, in order.
        pending: Vec<i64>,
    },
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schema::NotCreated => f.write_str("not created yet; serve creates it"),
            Schema::Current => f.write_str("schema current"),
            Schema::Behind { pending } => {
                let list: Vec<String> = pending.iter().map(i64::to_string).collect();
                write!(
                    f,
                    "{} migration{} pending ({}); serve applies {}",
                    pending.len(),
                    if pending.len() == 1 { "" } else { "s" },
                    list.join(", "),
                    if pending.len() == 1 { "it" } else { "them" }
                )
            }
        }
    }
}

/// Durability wanted of a pool's connections (SQLite only; PostgreSQL always commits durably).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash of the process (WAL, synchronous=NORMAL): the request path.
    Process,
    /// Survives a crash of the machine (WAL, synchronous=FULL): the audit writer.
    Machine,
}

/// The pool and what is behind it.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Milliseconds since the epoch, the store's unit of time.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Connects, creating an SQLite file when missing, and applies the migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let store = Store::connect(url, max_connections, Durability::Process).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// For commands that read what is there (`audit`, `policy explain`): an SQLite file
    /// that does not exist is an error, not a new, empty database that would answer
    /// "0 records, intact" for a mistyped path; and the database is read as it is,
    /// never migrated. A database behind this release is an error: migrating it from a
    /// command run beside older instances would change it under them.
    pub async fn open_existing(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let Some(store) = Store::connect_existing(url, max_connections).await? else {
            return Err(StoreError::Schema(
                "there is no database file there (serve or `actas accounts add` creates it)".into(),
            ));
        };
        match store.schema().await? {
            Schema::Current => Ok(store),
            behind => {
                store.close().await;
                Err(StoreError::Schema(format!(
                    "the database is behind this release of actas: {behind}; until then, use the release that serves it"
                )))
            }
        }
    }

    /// Where the database's schema stands against this binary's migrations, for `actas
    /// check`: it looks and changes nothing. An SQLite file that is not there is not
    /// created ([`Schema::NotCreated`]: `serve` creates it), and pending migrations are
    /// reported, not applied, so a check of a new release against a database that older
    /// instances still serve from does not change it under them.
    pub async fn inspect(url: &str) -> Result<(Backend, Schema), StoreError> {
        let Some(store) = Store::connect_existing(url, 1).await? else {
            return Ok((Backend::Sqlite, Schema::NotCreated));
        };
        let schema = store.schema().await;
        store.close().await;
        Ok((store.backend, schema?))
    }

    /// Connects to the database that is there without creating or migrating it; `None`
    /// for an SQLite file that does not exist.
    async fn connect_existing(
        url: &str,
        max_connections: u32,
    ) -> Result<Option<Store>, StoreError> {
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            let file = options.get_filename();
            if file != std::path::Path::new(":memory:") && !file.exists() {
                return Ok(None);
            }
        }
        let url = with_sqlite_mode(url, "rw");
        Ok(Some(
            Store::connect(&url, max_connections, Durability::Process).await?,
        ))
    }

    /// This database's applied migrations against this binary's: current, or which are
    /// pending. A migration applied by a newer release, one that failed part-way and one
    /// whose checksum differs are errors, as `serve` would find them.
    async fn schema(&self) -> Result<Schema, StoreError> {
        let tracked = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let (tables,): (i64,) = sqlx::query_as(tracked).fetch_one(&self.pool).await?;
        let applied: Vec<(i64, i64, Vec<u8>)> = if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT version, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT), checksum FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await?
        };
        for (version, success, checksum) in &applied {
            let Some(known) = MIGRATOR.iter().find(|m| m.version == *version) else {
                return Err(StoreError::Schema(format!(
                    "migration {version} was applied by a newer release of actas than this one"
                )));
            };
            if *success == 0 {
                return Err(StoreError::Schema(format!(
                    "migration {version} ({}) failed part-way when it was applied; restore a backup",
                    known.description
                )));
            }
            if *known.checksum != **checksum {
                return Err(StoreError::Schema(format!(
                    "migration {version} ({}) applied to this database differs from this release's",
                    known.description
                )));
            }
        }
        let pending: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .filter(|v| !applied.iter().any(|(a, _, _)| a == v))
            .collect();
        Ok(if pending.is_empty() {
            Schema::Current
        } else {
            Schema::Behind { pending }
        })
    }

    /// Connects without migrating (for a second pool on an already opened store).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(redacted_url(url)));
        };
        let url = with_sqlite_mode(url, "rwc");
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        let sync = match durability {
                            Durability::Process => "NORMAL",
                            Durability::Machine => "FULL",
                        };
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute(format!("PRAGMA synchronous = {sync}").as_str())
                            .await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        // A multi-row INSERT inside a transaction keeps a statement journal;
                        // on disk it was a new temporary file (create, write, unlink) for
                        // nearly every audit batch.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        if durability == Durability::Machine {
                            // The audit writer's one connection keeps the indexes it appends
                            // to in memory instead of re-reading them for every batch.
                            conn.execute("PRAGMA cache_size = -32768").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            // The pool retries until its timeout and then says only that; one direct
            // attempt says why (connection refused, unknown host, wrong password…).
            Err(sqlx::Error::PoolTimedOut) => {
                use sqlx::ConnectOptions;
                return Err(match options.connect().await {
                    Err(why) => why.into(),
                    Ok(_) => sqlx::Error::PoolTimedOut.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Store { pool, backend })
    }

    /// The pool, for the query modules.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An SQLite URL that names no `mode=` with `mode` added (`rwc` creates a missing file,
/// `rw` does not); any other URL as it is.
fn with_sqlite_mode(url: &str, mode: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode={mode}")
    } else {
        url.to_owned()
    }
}

/// `url` fit for a message or a log: the user name and password (in the authority, or as
/// `user=` / `password=` parameters) are replaced by `***`; scheme, host, port, database
/// and the other parameters stay, so the reader still sees which server was meant.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The last `@` ends the user information: a password may hold a `/` or `@` that its
    // writer did not percent-encode, and everything before the host is hidden then too.
    let host_and_path = match before_query.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => before_query.to_owned(),
    };
    let mut out = format!("{scheme}://{host_and_path}");
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("user") =>
                {
                    format!("{k}=***")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Converts a stored 0/1 into a bool.
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_hides_the_credentials_and_keeps_the_server() {
        for (url, shown) in [
            (
                "postgres://actas:hunter2@db.example:5432/actas",
                "postgres://***@db.example:5432/actas",
            ),
            (
                "postgresql://actas@127.0.0.1/actas?sslmode=require",
                "postgresql://***@127.0.0.1/actas?sslmode=require",
            ),
            (
                "postgres://actas:p/a@ss@db:5432/actas",
                "postgres://***@db:5432/actas",
            ),
            (
                "postgres://db/actas?user=actas&password=hunter2&sslmode=require",
                "postgres://db/actas?user=***&password=***&sslmode=require",
            ),
            (
                "sqlite:///var/lib/actas/actas.db",
                "sqlite:///var/lib/actas/actas.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
}
