//! Queries of the `accounts` table.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreError};
use crate::directory::{Account, Role, Status};

const COLUMNS: &str = "username, display_name, role, created_by, status, created_at";

fn account(row: &AnyRow) -> Result<Account, StoreError> {
    Ok(Account {
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: row
            .try_get::<String, _>("role")?
            .parse::<Role>()
            .map_err(StoreError::Corrupt)?,
        created_by: row.try_get("created_by")?,
        status: row
            .try_get::<String, _>("status")?
            .parse::<Status>()
            .map_err(StoreError::Corrupt)?,
        created_at: row.try_get("created_at")?,
    })
}

/// A new account's fields.
pub struct NewAccount<'a> {
    /// Username.
    pub username: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Role.
    pub role: Role,
    /// Creator, if any.
    pub created_by: Option<&'a str>,
    /// argon2id PHC string.
    pub password_hash: &'a str,
}

/// Where a read of the accounts directory starts, in username order (a page read
/// `Before` a name comes back in username order too).
pub type AccountsFrom = super::PageFrom<String>;

impl Store {
    /// One account by username.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(account).transpose()
    }

    /// One account with its password hash, for sign-in.
    pub async fn account_with_hash(
        &self,
        username: &str,
    ) -> Result<Option<(Account, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, password_hash FROM accounts WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(Some((account(&row)?, row.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    /// At most `limit` accounts whose username or display name contains `search`
    /// (case-insensitive), optionally only those created by `creator`, in username order,
    /// from `from` on (a page at a time by username, so a page does not shift as accounts
    /// are added).
    pub async fn accounts(
        &self,
        search: &str,
        creator: Option<&str>,
        from: &AccountsFrom,
        limit: i64,
    ) -> Result<Vec<Account>, StoreError> {
        let pattern = format!(
            "%{}%",
            search
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // Every username sorts after the empty one.
        let (bound, side, order) = match from {
            AccountsFrom::First => ("", ">", "ASC"),
            AccountsFrom::After(name) => (name.as_str(), ">", "ASC"),
            AccountsFrom::Before(name) => (name.as_str(), "<", "DESC"),
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts \
             WHERE (LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\') \
               AND ($2 = '' OR created_by = $2) AND username {side} $3 \
             ORDER BY username {order} LIMIT $4"
        ))
        .bind(pattern)
        .bind(creator.unwrap_or(""))
        .bind(bound)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut accounts = rows.iter().map(account).collect::<Result<Vec<_>, _>>()?;
        if matches!(from, AccountsFrom::Before(_)) {
            accounts.reverse();
        }
        Ok(accounts)
    }

    /// Adds an account; `Ok(false)` when the username is taken.
    pub async fn add_account(&self, new: NewAccount<'_>) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO accounts (username, display_name, role, created_by, status, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.role.as_str())
        .bind(new.created_by)
        .bind(new.password_hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets an account's status; `Ok(false)` when there is no such account.
    pub async fn set_status(&self, username: &str, status: Status) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE username = $3")
                .bind(status.as_str())
                .bind(now_ms())
                .bind(username)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces an account's password hash; `Ok(false)` when there is no such account.
    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE username = $3",
        )
        .bind(hash)
        .bind(now_ms())
        .bind(username)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves an account to another creator (a customer to another reseller).
    pub async fn set_created_by(
        &self,
        username: &str,
        created_by: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE accounts SET created_by = $1, updated_at = $2 WHERE username = $3")
                .bind(created_by)
                .bind(now_ms())
                .bind(username)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
