//! Domain rows. A domain name is unique across the whole panel: it belongs to exactly
//! one account, and only that account may list or remove it.

use sqlx::FromRow;

use super::activity::{insert_activity, ActivityEntry};
use super::{Store, StoreError};
use crate::unix_now;

/// A domain hosted by an account.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Domain {
    /// The (normalised) domain name.
    pub name: String,
    /// When it was added (unix seconds).
    pub created_at: i64,
}

/// What happened when a domain was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainAdded {
    /// The domain now belongs to the account.
    Added,
    /// The account already hosts it.
    AlreadyYours,
    /// Another account hosts it.
    TakenByAnother,
}

impl Store {
    /// The account's domains, oldest first (the first one names its mailboxes).
    pub async fn list_domains(&self, account_id: i64) -> Result<Vec<Domain>, StoreError> {
        let domains = sqlx::query_as::<_, Domain>(
            "SELECT name, created_at FROM domains WHERE account_id = ? ORDER BY created_at, id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(domains)
    }

    /// Adds a domain to the account unless any account already hosts it.
    pub async fn add_domain(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<DomainAdded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO domains (account_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(account_id)
        .bind(name)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let owner: Option<i64> =
                sqlx::query_scalar("SELECT account_id FROM domains WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            return Ok(if owner == Some(account_id) {
                DomainAdded::AlreadyYours
            } else {
                DomainAdded::TakenByAnother
            });
        }
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(DomainAdded::Added)
    }

    /// Removes one of the account's domains; `false` when the account has no such domain.
    pub async fn remove_domain(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM domains WHERE account_id = ? AND name = ?")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(true)
    }
}
