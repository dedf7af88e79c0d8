//! The activity feed: one row per change to an account, with the subject and, while
//! impersonating, the actor who really made it. Rows are only ever appended; nothing
//! here updates or deletes them.

use sqlx::{FromRow, Sqlite, Transaction};

use super::{Store, StoreError};
use crate::assertion::{describe_who, Identity};
use crate::unix_now;

/// What kind of change an activity entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// The account was created on first sight of its subject.
    AccountProvisioned,
    /// A domain was added.
    DomainAdded,
    /// A domain was removed.
    DomainRemoved,
    /// A text file was saved from the editor.
    FileSaved,
    /// A file was uploaded.
    FileUploaded,
    /// A file or folder was renamed.
    FileRenamed,
    /// A file or folder was deleted.
    FileDeleted,
    /// A folder was created.
    FolderCreated,
    /// A database was created.
    DatabaseCreated,
    /// A database was dropped.
    DatabaseDropped,
    /// A mailbox was created.
    MailboxCreated,
    /// A mailbox was deleted.
    MailboxDeleted,
    /// The settings were changed.
    SettingsChanged,
}

impl ActivityKind {
    /// The stored, stable name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::AccountProvisioned => "account.provisioned",
            ActivityKind::DomainAdded => "domain.added",
            ActivityKind::DomainRemoved => "domain.removed",
            ActivityKind::FileSaved => "file.saved",
            ActivityKind::FileUploaded => "file.uploaded",
            ActivityKind::FileRenamed => "file.renamed",
            ActivityKind::FileDeleted => "file.deleted",
            ActivityKind::FolderCreated => "folder.created",
            ActivityKind::DatabaseCreated => "database.created",
            ActivityKind::DatabaseDropped => "database.dropped",
            ActivityKind::MailboxCreated => "mailbox.created",
            ActivityKind::MailboxDeleted => "mailbox.deleted",
            ActivityKind::SettingsChanged => "settings.changed",
        }
    }
}

/// A change about to be recorded, with who made it.
#[derive(Debug, Clone)]
pub struct ActivityEntry {
    kind: ActivityKind,
    summary: String,
    subject: String,
    actor_username: Option<String>,
    actor_role: Option<&'static str>,
    actor_name: Option<String>,
    impersonation_id: Option<String>,
    request_id: Option<String>,
}

impl ActivityEntry {
    /// An entry for a change made by the request with this identity.
    pub fn new(identity: &Identity, kind: ActivityKind, summary: impl Into<String>) -> Self {
        let actor = identity.actor.as_ref();
        ActivityEntry {
            kind,
            summary: summary.into(),
            subject: identity.subject.clone(),
            actor_username: actor.map(|actor| actor.username.clone()),
            actor_role: actor.map(|actor| actor.role.as_str()),
            actor_name: actor.map(|actor| actor.name.clone()),
            impersonation_id: identity.impersonation_id.clone(),
            request_id: identity.request_id.clone(),
        }
    }
}

/// A stored entry, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ActivityRecord {
    /// Its place among the account's entries (with `at`, the feed's page key).
    pub id: i64,
    /// When it happened (unix seconds).
    pub at: i64,
    /// The kind's stored name, e.g. `domain.added`.
    pub kind: String,
    /// What happened, in words.
    pub summary: String,
    /// Whom the request acted as.
    pub subject: String,
    /// Who really made the change, while impersonating.
    pub actor_username: Option<String>,
    /// The actor's role, while impersonating.
    pub actor_role: Option<String>,
    /// The impersonation id, while impersonating.
    pub impersonation_id: Option<String>,
}

impl ActivityRecord {
    /// `carl`, or `ada (admin) on behalf of carl`.
    pub fn who(&self) -> String {
        let actor = self
            .actor_username
            .as_deref()
            .map(|username| (username, self.actor_role.as_deref().unwrap_or("staff")));
        describe_who(&self.subject, actor)
    }
}

pub(super) async fn insert_activity(
    tx: &mut Transaction<'_, Sqlite>,
    account_id: i64,
    entry: &ActivityEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO activity (account_id, at, kind, summary, subject, actor_username, actor_role, actor_name, impersonation_id, request_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(account_id)
    .bind(unix_now())
    .bind(entry.kind.as_str())
    .bind(&entry.summary)
    .bind(&entry.subject)
    .bind(&entry.actor_username)
    .bind(entry.actor_role)
    .bind(&entry.actor_name)
    .bind(&entry.impersonation_id)
    .bind(&entry.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Records a change that happened outside the database (on disk).
    pub async fn record_activity(
        &self,
        account_id: i64,
        entry: &ActivityEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_activity(&mut tx, account_id, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's newest `limit` entries, newest first.
    pub async fn recent_activity(
        &self,
        account_id: i64,
        limit: i64,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        self.activity_before(account_id, None, limit).await
    }

    /// At most `limit` of the account's entries, newest first, from just before `before`
    /// (the `(at, id)` of the last one shown) when it is given: a page at a time, and a
    /// page does not shift as entries are added.
    pub async fn activity_before(
        &self,
        account_id: i64,
        before: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let (at, id) = before.unwrap_or((i64::MAX, i64::MAX));
        let records = sqlx::query_as::<_, ActivityRecord>(
            "SELECT id, at, kind, summary, subject, actor_username, actor_role, impersonation_id \
             FROM activity WHERE account_id = ? AND (at, id) < (?, ?) \
             ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(records)
    }
}
