//! Queries of the `sessions` and `impersonations` tables.
//!
//! Every change that another instance may race is conditional (on the token hash it
//! replaces, on the impersonation it ends), so two instances acting on one session at
//! once cannot both succeed: the loser sees `false` and re-reads.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, Store, StoreError};
use crate::directory::{Account, Role, Status};

/// The end (`expires_at`) of a session that was revoked rather than reached its time: it is
/// past for every clock, and no session is ever given it otherwise.
pub const REVOKED: i64 = 0;

/// A session as stored, with the accounts it names.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// Public id (in the assertion's `sid` and the audit log); never the token.
    pub id: String,
    /// Who signed in.
    pub actor: Account,
    /// The per-session CSRF token of the console's forms.
    pub csrf_token: String,
    /// Sign-in time (ms).
    pub created_at: i64,
    /// Last use (ms), updated at most every few seconds.
    pub last_seen_at: i64,
    /// Absolute end (ms).
    pub expires_at: i64,
    /// The impersonation in progress, if any.
    pub impersonation: Option<ImpersonationRecord>,
    /// A one-time notice for the next console page ("Your impersonation of carl expired").
    pub notice: Option<String>,
}

impl SessionRecord {
    /// Whom requests act as: the impersonated customer, or the actor.
    pub fn subject(&self) -> &Account {
        self.impersonation
            .as_ref()
            .map_or(&self.actor, |i| &i.subject)
    }
}

/// An impersonation in progress.
#[derive(Clone, Debug)]
pub struct ImpersonationRecord {
    /// Its id (`imp` in the assertion).
    pub id: String,
    /// Whom the actor acts as.
    pub subject: Account,
    /// Start (ms).
    pub started_at: i64,
    /// Hard end (ms).
    pub expires_at: i64,
    /// Last use (ms).
    pub last_seen_at: i64,
    /// The reason typed when starting (may be empty).
    pub reason: String,
    /// Whether the customer asked the actor to look at their mail.
    pub mail_consent: bool,
    /// Where "Stop impersonating" returns to.
    pub return_to: String,
}

/// One past or present impersonation, for the access history.
#[derive(Clone, Debug)]
pub struct ImpersonationSummary {
    /// Its id.
    pub id: String,
    /// Who.
    pub actor: String,
    /// Their role then.
    pub actor_role: String,
    /// Whom.
    pub subject: String,
    /// Start (ms).
    pub started_at: i64,
    /// End (ms), if ended.
    pub ended_at: Option<i64>,
    /// stopped / expired / logout / revoked.
    pub end_reason: Option<String>,
    /// The reason given.
    pub reason: String,
    /// Mail consent.
    pub mail_consent: bool,
}

/// The fields of a new impersonation.
pub struct NewImpersonation<'a> {
    /// Its id.
    pub id: &'a str,
    /// Whom.
    pub subject: &'a str,
    /// Now (ms).
    pub started_at: i64,
    /// Hard end (ms).
    pub expires_at: i64,
    /// Reason.
    pub reason: &'a str,
    /// Mail consent.
    pub mail_consent: bool,
    /// Where stop returns to.
    pub return_to: &'a str,
}

const ACCOUNT_COLUMNS: [&str; 6] = [
    "username",
    "display_name",
    "role",
    "created_by",
    "status",
    "created_at",
];

/// The start of every session query: a session's columns (its token hash among them, for
/// the sweep) and both accounts it names, built once.
fn select_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(build_select_sql);
    &SQL
}

fn build_select_sql() -> String {
    let mut cols = vec![
        "s.id",
        "s.token_hash",
        "s.csrf_token",
        "s.created_at",
        "s.last_seen_at",
        "s.expires_at",
        "s.imp_id",
        "s.imp_started_at",
        "s.imp_expires_at",
        "s.imp_last_seen_at",
        "s.imp_reason",
        "s.imp_mail_consent",
        "s.imp_return_to",
        "s.notice",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for c in ACCOUNT_COLUMNS {
        cols.push(format!("a.{c} AS a_{c}"));
        cols.push(format!("t.{c} AS t_{c}"));
    }
    format!(
        "SELECT {} FROM sessions s JOIN accounts a ON a.username = s.actor \
         LEFT JOIN accounts t ON t.username = s.imp_subject",
        cols.join(", ")
    )
}

fn prefixed_account(row: &AnyRow, p: &str) -> Result<Option<Account>, StoreError> {
    let Some(username) = row.try_get::<Option<String>, _>(format!("{p}_username").as_str())? else {
        return Ok(None);
    };
    let get = |c: &str| format!("{p}_{c}");
    Ok(Some(Account {
        username,
        display_name: row.try_get(get("display_name").as_str())?,
        role: row
            .try_get::<String, _>(get("role").as_str())?
            .parse::<Role>()
            .map_err(StoreError::Corrupt)?,
        created_by: row.try_get(get("created_by").as_str())?,
        status: row
            .try_get::<String, _>(get("status").as_str())?
            .parse::<Status>()
            .map_err(StoreError::Corrupt)?,
        created_at: row.try_get(get("created_at").as_str())?,
    }))
}

fn session(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let actor = prefixed_account(row, "a")?
        .ok_or_else(|| StoreError::Corrupt("session without an actor".into()))?;
    let impersonation = match (
        row.try_get::<Option<String>, _>("imp_id")?,
        prefixed_account(row, "t")?,
    ) {
        (Some(id), Some(subject)) => Some(ImpersonationRecord {
            id,
            subject,
            started_at: row
                .try_get::<Option<i64>, _>("imp_started_at")?
                .unwrap_or(0),
            expires_at: row
                .try_get::<Option<i64>, _>("imp_expires_at")?
                .unwrap_or(0),
            last_seen_at: row
                .try_get::<Option<i64>, _>("imp_last_seen_at")?
                .unwrap_or(0),
            reason: row
                .try_get::<Option<String>, _>("imp_reason")?
                .unwrap_or_default(),
            mail_consent: flag(row.try_get("imp_mail_consent")?),
            return_to: row
                .try_get::<Option<String>, _>("imp_return_to")?
                .unwrap_or_else(|| "/".into()),
        }),
        _ => None,
    };
    Ok(SessionRecord {
        id: row.try_get("id")?,
        actor,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        impersonation,
        notice: row.try_get("notice")?,
    })
}

/// A new session's fields.
pub struct NewSession<'a> {
    /// Public id.
    pub id: &'a str,
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// Who signed in.
    pub actor: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// Now (ms).
    pub now: i64,
    /// Absolute end (ms).
    pub expires_at: i64,
    /// Where from.
    pub client_ip: &'a str,
    /// With what.
    pub user_agent: &'a str,
}

impl Store {
    /// Stores a new session.
    pub async fn insert_session(&self, s: NewSession<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, actor, csrf_token, created_at, last_seen_at, expires_at, client_ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
        )
        .bind(s.id)
        .bind(s.token_hash)
        .bind(s.actor)
        .bind(s.csrf_token)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.client_ip)
        .bind(s.user_agent)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`.
    pub async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!("{} WHERE s.token_hash = $1", select_sql()))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// The session with public id `id`.
    pub async fn session_by_id(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!("{} WHERE s.id = $1", select_sql()))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// Every session `actor` has signed in to.
    pub async fn sessions_of(&self, actor: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(&format!("{} WHERE s.actor = $1", select_sql()))
            .bind(actor)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(session).collect()
    }

    /// Marks every session of `actor` revoked ([`REVOKED`] as its end): each one is ended
    /// and recorded (why = revoked) by whichever instance sees it next, within its session
    /// cache's lifetime. For tools without an audit writer of their own (the CLI). Returns
    /// how many sessions it marked.
    pub async fn revoke_sessions(&self, actor: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE sessions SET expires_at = $1 WHERE actor = $2")
            .bind(REVOKED)
            .bind(actor)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Marks every impersonation of `subject` in progress revoked ([`REVOKED`] as its end):
    /// each is ended and recorded (why = revoked) at its session's next request, or when its
    /// session is swept. Returns how many it marked.
    pub async fn revoke_impersonations_of(&self, subject: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET imp_expires_at = $1 WHERE imp_subject = $2 AND imp_id IS NOT NULL",
        )
        .bind(REVOKED)
        .bind(subject)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Sessions no request can use any more, with their token hashes: past their absolute
    /// end (revoked ones included), unused since `idle_before`, or of a disabled account. At
    /// most `limit` of them.
    pub async fn dead_sessions(
        &self,
        now: i64,
        idle_before: i64,
        limit: i64,
    ) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let rows = sqlx::query(&format!(
            "{} WHERE s.expires_at <= $1 OR s.last_seen_at < $2 OR a.status = $3 LIMIT $4",
            select_sql()
        ))
        .bind(now)
        .bind(idle_before)
        .bind(Status::Disabled.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("token_hash")?, session(row)?)))
            .collect()
    }

    /// Removes a session. `Ok(false)` if it was already gone (another request or instance
    /// ended it first).
    pub async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records use of the session (and of its impersonation, if `imp_id` is given).
    pub async fn touch_session(
        &self,
        id: &str,
        now: i64,
        imp_id: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $1, \
             imp_last_seen_at = CASE WHEN imp_id IS NOT NULL AND imp_id = $2 THEN $1 ELSE imp_last_seen_at END \
             WHERE id = $3",
        )
        .bind(now)
        .bind(imp_id.unwrap_or(""))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Starts an impersonation on a session that has none, replacing its token.
    /// `Ok(false)` if the session is gone, already impersonating, or its token changed.
    pub async fn start_impersonation(
        &self,
        session_id: &str,
        old_token_hash: &str,
        new_token_hash: &str,
        actor: &Account,
        imp: NewImpersonation<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET token_hash = $1, imp_id = $2, imp_subject = $3, imp_started_at = $4, \
             imp_expires_at = $5, imp_last_seen_at = $4, imp_reason = $6, imp_mail_consent = $7, \
             imp_return_to = $8, last_seen_at = $4, notice = NULL \
             WHERE id = $9 AND token_hash = $10 AND imp_id IS NULL",
        )
        .bind(new_token_hash)
        .bind(imp.id)
        .bind(imp.subject)
        .bind(imp.started_at)
        .bind(imp.expires_at)
        .bind(imp.reason)
        .bind(i64::from(imp.mail_consent))
        .bind(imp.return_to)
        .bind(session_id)
        .bind(old_token_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO impersonations (id, session_id, actor, actor_role, subject, started_at, reason, mail_consent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(imp.id)
        .bind(session_id)
        .bind(&actor.username)
        .bind(actor.role.as_str())
        .bind(imp.subject)
        .bind(imp.started_at)
        .bind(imp.reason)
        .bind(i64::from(imp.mail_consent))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends impersonation `imp_id` on its session, optionally replacing the token and leaving
    /// a notice. `Ok(false)` if it had already ended (another instance or request won).
    pub async fn end_impersonation(
        &self,
        session_id: &str,
        imp_id: &str,
        new_token_hash: Option<&str>,
        why: &str,
        now: i64,
        notice: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET token_hash = COALESCE($1, token_hash), imp_id = NULL, imp_subject = NULL, \
             imp_started_at = NULL, imp_expires_at = NULL, imp_last_seen_at = NULL, imp_reason = NULL, \
             imp_mail_consent = 0, imp_return_to = NULL, notice = $2 \
             WHERE id = $3 AND imp_id = $4",
        )
        .bind(new_token_hash)
        .bind(notice)
        .bind(session_id)
        .bind(imp_id)
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query(
            "UPDATE impersonations SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(why)
        .bind(imp_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1 || ended.rows_affected() == 1)
    }

    /// Clears the one-time notice.
    pub async fn clear_notice(&self, session_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET notice = NULL WHERE id = $1")
            .bind(session_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who impersonated `subject`, newest first: at most `limit`, from just before `before`
    /// (the `started_at` and id of the last one shown) when it is given.
    pub async fn impersonations_of(
        &self,
        subject: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ImpersonationSummary>, StoreError> {
        // Newest first by (started_at, id), so that two started in one millisecond keep
        // their place, and `before` continues exactly after the last one shown.
        let (started_at, id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT id, actor, actor_role, subject, started_at, ended_at, end_reason, reason, mail_consent \
             FROM impersonations WHERE subject = $1 AND started_at <= $2 \
               AND (started_at < $2 OR id < $3 OR $3 = '') \
             ORDER BY started_at DESC, id DESC LIMIT $4",
        )
        .bind(subject)
        .bind(started_at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ImpersonationSummary {
                    id: r.try_get("id")?,
                    actor: r.try_get("actor")?,
                    actor_role: r.try_get("actor_role")?,
                    subject: r.try_get("subject")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                    end_reason: r.try_get("end_reason")?,
                    reason: r.try_get("reason")?,
                    mail_consent: flag(r.try_get("mail_consent")?),
                })
            })
            .collect()
    }
}
