//! Mailboxes and their messages. A message is always reached through its mailbox and
//! the mailbox through its account, so an id from another account finds nothing.
//! Listing a mailbox never reads message bodies; only opening one message does.

use sqlx::FromRow;

use super::activity::{insert_activity, ActivityEntry};
use super::{Store, StoreError};
use crate::unix_now;

/// A mailbox with its counts, for the mailbox list.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MailboxSummary {
    /// The part before the `@`.
    pub name: String,
    /// Messages in the mailbox.
    pub messages: i64,
    /// Messages not yet opened.
    pub unread: i64,
}

/// A message as the mailbox list shows it: no body.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MessageHeader {
    /// The message id.
    pub id: i64,
    /// The `From` line.
    pub sender: String,
    /// The subject line.
    pub subject: String,
    /// When it arrived (unix seconds).
    pub received_at: i64,
    /// Whether it has been opened.
    pub is_read: bool,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Message {
    /// The message id.
    pub id: i64,
    /// The `From` line.
    pub sender: String,
    /// The subject line.
    pub subject: String,
    /// The full text.
    pub body: String,
    /// When it arrived (unix seconds).
    pub received_at: i64,
}

/// One message by id, account and mailbox name.
const SELECT_MESSAGE: &str = "SELECT m.id, m.sender, m.subject, m.body, m.received_at \
     FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
     WHERE m.id = ? AND b.account_id = ? AND b.name = ?";

impl Store {
    /// The account's mailboxes with message and unread counts, by name.
    pub async fn list_mailboxes(&self, account_id: i64) -> Result<Vec<MailboxSummary>, StoreError> {
        let mailboxes = sqlx::query_as::<_, MailboxSummary>(
            "SELECT b.name AS name, COUNT(m.id) AS messages, \
                COALESCE(SUM(CASE WHEN m.is_read = 0 THEN 1 ELSE 0 END), 0) AS unread \
             FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id \
             WHERE b.account_id = ? GROUP BY b.id ORDER BY b.name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(mailboxes)
    }

    /// Creates an empty mailbox; `false` when the account already has one of that name.
    pub async fn create_mailbox(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO mailboxes (account_id, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT(account_id, name) DO NOTHING",
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

    /// Deletes a mailbox and its messages; `false` when the account has no such mailbox.
    pub async fn delete_mailbox(
        &self,
        account_id: i64,
        name: &str,
        entry: &ActivityEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM mailboxes WHERE account_id = ? AND name = ?")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The messages of one of the account's mailboxes, newest first, without bodies;
    /// `None` when the account has no such mailbox.
    pub async fn list_messages(
        &self,
        account_id: i64,
        mailbox: &str,
    ) -> Result<Option<Vec<MessageHeader>>, StoreError> {
        let mailbox_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = ? AND name = ?")
                .bind(account_id)
                .bind(mailbox)
                .fetch_optional(&self.pool)
                .await?;
        let Some(mailbox_id) = mailbox_id else {
            return Ok(None);
        };
        let messages = sqlx::query_as::<_, MessageHeader>(
            "SELECT id, sender, subject, received_at, is_read FROM messages \
             WHERE mailbox_id = ? ORDER BY received_at DESC, id DESC",
        )
        .bind(mailbox_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(messages))
    }

    /// Opens one message of one of the account's mailboxes and marks it read; `None`
    /// when the account has no such message in that mailbox.
    pub async fn open_message(
        &self,
        account_id: i64,
        mailbox: &str,
        message_id: i64,
    ) -> Result<Option<Message>, StoreError> {
        // Write first, so the transaction takes SQLite's write lock up front (a read
        // that later upgrades to a write can fail under WAL instead of waiting).
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE messages SET is_read = 1 WHERE id = ? AND is_read = 0 AND mailbox_id IN \
             (SELECT id FROM mailboxes WHERE account_id = ? AND name = ?)",
        )
        .bind(message_id)
        .bind(account_id)
        .bind(mailbox)
        .execute(&mut *tx)
        .await?;
        let message = sqlx::query_as::<_, Message>(SELECT_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .bind(mailbox)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Reads one message of one of the account's mailboxes without marking it read
    /// (for staff impersonating the account: the customer keeps the "new" marker);
    /// `None` when the account has no such message in that mailbox.
    pub async fn peek_message(
        &self,
        account_id: i64,
        mailbox: &str,
        message_id: i64,
    ) -> Result<Option<Message>, StoreError> {
        let message = sqlx::query_as::<_, Message>(SELECT_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .bind(mailbox)
            .fetch_optional(&self.pool)
            .await?;
        Ok(message)
    }
}
