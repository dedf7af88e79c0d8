//! Database rows: metadata only (the panel creates no real database server objects).
//! Names are stored with the account prefix and are unique across the panel.

use sqlx::FromRow;

use super::activity::{insert_activity, ActivityEntry};
use super::{Store, StoreError};
use crate::unix_now;

/// A database owned by an account.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Database {
    /// The full, prefixed name (`<username>_<short name>`, see `pages::databases::full_name`).
    pub name: String,
    /// When it was created (unix seconds).
    pub created_at: i64,
}

impl Store {
    /// The account's databases by name.
    pub async fn list_databases(&self, account_id: i64) -> Result<Vec<Database>, StoreError> {
        let databases = sqlx::query_as::<_, Database>(
            "SELECT name, created_at FROM databases WHERE account_id = ? ORDER BY name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(databases)
    }

    /// Creates a database; `false` when the name is already taken.
    pub async fn create_database(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO databases (account_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(account_id)
        .bind(name)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Drops one of the account's databases; `false` when the account has no such database.
    pub async fn drop_database(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let dropped = sqlx::query("DELETE FROM databases WHERE account_id = ? AND name = ?")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if dropped.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(true)
    }
}
