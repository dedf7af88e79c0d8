//! Account rows: looking an account up by username, creating it with its starting
//! resources in one transaction, and the counts the dashboard shows. What a new account
//! starts with is decided by `provision`, not here.

use sqlx::FromRow;

use super::activity::{insert_activity, ActivityEntry};
use super::settings::Settings;
use super::{Store, StoreError};
use crate::unix_now;

/// A hosting account in the panel: the subject of an assertion, once provisioned.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Account {
    /// The row id; every other row of the account refers to it.
    pub id: i64,
    /// The subject's username.
    pub username: String,
    /// When the account was provisioned (unix seconds).
    pub created_at: i64,
}

/// One message a new account's first mailbox starts with.
#[derive(Debug, Clone)]
pub struct SeedMessage {
    /// The `From` line.
    pub sender: String,
    /// The subject line.
    pub subject: String,
    /// The full text.
    pub body: String,
    /// How many seconds before provisioning it was received.
    pub age_seconds: i64,
}

/// Everything a new account starts with in the database.
#[derive(Debug, Clone)]
pub struct AccountSeed {
    /// The subject's username.
    pub username: String,
    /// The default domain, when the username makes one.
    pub domain: Option<DefaultDomain>,
    /// The first mailbox's name.
    pub mailbox: String,
    /// The messages waiting in it when the account starts without a default domain
    /// (the username makes none, or another account already hosts the name).
    pub messages: Vec<SeedMessage>,
    /// The starting settings.
    pub settings: Settings,
}

/// A new account's default domain.
#[derive(Debug, Clone)]
pub struct DefaultDomain {
    /// The domain name.
    pub name: String,
    /// The messages waiting in the first mailbox when the domain is added: they name it.
    pub messages: Vec<SeedMessage>,
}

/// The counts on the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSummary {
    /// Domains the account hosts.
    pub domains: i64,
    /// Databases the account owns.
    pub databases: i64,
    /// Mailboxes the account owns.
    pub mailboxes: i64,
    /// Unread messages across all mailboxes.
    pub unread: i64,
}

impl Store {
    /// The account of `username`, if it was provisioned.
    pub async fn find_account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let account = sqlx::query_as::<_, Account>(
            "SELECT id, username, created_at FROM accounts WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(account)
    }

    /// Creates the account and its starting resources in one transaction. Safe to race:
    /// when the account already exists nothing is written and `None` is returned.
    pub async fn provision(
        &self,
        seed: &AccountSeed,
        entry: &ActivityEntry,
    ) -> Result<Option<Account>, StoreError> {
        let now = unix_now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (username, created_at) VALUES (?, ?) ON CONFLICT(username) DO NOTHING",
        )
        .bind(&seed.username)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let account = Account {
            id: inserted.last_insert_rowid(),
            username: seed.username.clone(),
            created_at: now,
        };

        // Another account may already host the default name (added before names in the
        // provider's zone were refused); then this one starts without, and its mail does
        // not name it.
        let mut messages = &seed.messages;
        if let Some(domain) = &seed.domain {
            let added = sqlx::query(
                "INSERT INTO domains (account_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
            )
            .bind(account.id)
            .bind(&domain.name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if added.rows_affected() == 1 {
                messages = &domain.messages;
            } else {
                tracing::warn!(account = %seed.username, domain = %domain.name, "default domain hosted by another account; provisioned without it");
            }
        }

        let mailbox_id =
            sqlx::query("INSERT INTO mailboxes (account_id, name, created_at) VALUES (?, ?, ?)")
                .bind(account.id)
                .bind(&seed.mailbox)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid();
        for message in messages {
            sqlx::query(
                "INSERT INTO messages (mailbox_id, sender, subject, body, received_at, is_read) VALUES (?, ?, ?, ?, ?, 0)",
            )
            .bind(mailbox_id)
            .bind(&message.sender)
            .bind(&message.subject)
            .bind(&message.body)
            .bind(now - message.age_seconds)
            .execute(&mut *tx)
            .await?;
        }

        let settings = &seed.settings;
        sqlx::query(
            "INSERT INTO settings (account_id, contact_email, notify_billing, notify_security, notify_newsletter, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(account.id)
        .bind(&settings.contact_email)
        .bind(settings.notify_billing)
        .bind(settings.notify_security)
        .bind(settings.notify_newsletter)
        .bind(now)
        .execute(&mut *tx)
        .await?;

        insert_activity(&mut tx, account.id, entry).await?;
        tx.commit().await?;
        Ok(Some(account))
    }

    /// The dashboard's counts for one account.
    pub async fn account_summary(&self, account_id: i64) -> Result<AccountSummary, StoreError> {
        let (domains, databases, mailboxes, unread): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT \
                (SELECT COUNT(*) FROM domains WHERE account_id = ?1), \
                (SELECT COUNT(*) FROM databases WHERE account_id = ?1), \
                (SELECT COUNT(*) FROM mailboxes WHERE account_id = ?1), \
                (SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
                    WHERE b.account_id = ?1 AND m.is_read = 0)",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(AccountSummary {
            domains,
            databases,
            mailboxes,
            unread,
        })
    }
}
