//! The account's settings row: contact email and notification preferences.

use sqlx::FromRow;

use super::activity::{insert_activity, ActivityEntry};
use super::{Store, StoreError};
use crate::unix_now;

/// An account's preferences.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Settings {
    /// Where the hosting company writes to the customer.
    pub contact_email: String,
    /// Invoices and payment reminders.
    pub notify_billing: bool,
    /// Sign-ins, password changes and security advisories.
    pub notify_security: bool,
    /// Product news.
    pub notify_newsletter: bool,
}

impl Store {
    /// The account's settings, if it has a settings row.
    pub async fn settings(&self, account_id: i64) -> Result<Option<Settings>, StoreError> {
        let settings = sqlx::query_as::<_, Settings>(
            "SELECT contact_email, notify_billing, notify_security, notify_newsletter \
             FROM settings WHERE account_id = ?",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(settings)
    }

    /// Replaces the account's settings.
    pub async fn save_settings(
        &self,
        account_id: i64,
        settings: &Settings,
        entry: &ActivityEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO settings (account_id, contact_email, notify_billing, notify_security, notify_newsletter, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(account_id) DO UPDATE SET contact_email = excluded.contact_email, \
                notify_billing = excluded.notify_billing, notify_security = excluded.notify_security, \
                notify_newsletter = excluded.notify_newsletter, updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(&settings.contact_email)
        .bind(settings.notify_billing)
        .bind(settings.notify_security)
        .bind(settings.notify_newsletter)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(())
    }
}
