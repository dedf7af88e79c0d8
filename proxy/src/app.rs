//! Everything a request may need, built once at start, and the rules of a session's life:
//! how a token becomes an identity, when a session or impersonation ends by itself, and
//! how sign-in, impersonation start/stop and sign-out change it.
//!
//! Who may impersonate whom is not decided here: the policies are asked. What this module
//! owns is the order of things: check, rotate the token, change the store, write the audit
//! record, forget the cached copy.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::assertion::Signer25519;
use crate::audit::writer::{AuditError, AuditLog};
use crate::audit::{Event, Kind};
use crate::config::Config;
use crate::directory::{Account, Status};
use crate::metrics::METRICS;
use crate::policy::PolicyStore;
use crate::session::{random_id, random_token, token_hash, SessionCache};
use crate::store::sessions::{
    ImpersonationRecord, NewImpersonation, NewSession, SessionRecord, REVOKED,
};
use crate::store::{now_ms, Store, StoreError};

/// How often (at most) a session's last use is written back to the store; more often when
/// an idle timeout is shorter than four times this.
const TOUCH_EVERY_MS: i64 = 15_000;

/// Shared state of one running proxy.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The store (request-path pool).
    pub store: Store,
    /// Recently looked-up sessions.
    pub sessions: SessionCache,
    /// Signs assertions.
    pub signer: Signer25519,
    /// Assertions signed this second, per session.
    pub assertions: crate::assertion::AssertionCache,
    /// The policies in force.
    pub policies: PolicyStore,
    /// The audit log.
    pub audit: AuditLog,
    /// Sign-in throttles.
    pub limits: LoginLimits,
    /// Tells browsers that signed in to an account before from everyone else.
    pub devices: crate::device::DeviceCookies,
    /// The panel's address, as last resolved.
    pub upstream: std::sync::RwLock<std::net::SocketAddr>,
}

/// Sign-in rate limits, per client IP and per account.
pub struct LoginLimits {
    by_ip: DefaultKeyedRateLimiter<String>,
    by_account: DefaultKeyedRateLimiter<String>,
    /// Per known browser (a device cookie's nonce), in place of the account's budget.
    by_device: DefaultKeyedRateLimiter<String>,
    /// Attempts taken, to prune the limiters' keys now and then.
    attempts: std::sync::atomic::AtomicU64,
}

/// Every this many attempts the limiters forget the keys whose budgets are whole again, so
/// that the addresses and names tried do not pile up in memory.
const PRUNE_EVERY: u64 = 1024;

/// The account key of every name that cannot be an account: guesses at names that do not
/// exist share one budget, and a client cannot fill memory with names of its own.
const NO_SUCH_ACCOUNT: &str = "";

impl LoginLimits {
    /// Limits of `per_ip` and `per_account` attempts a minute.
    pub fn new(per_ip: u32, per_account: u32) -> LoginLimits {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimits {
            by_ip: RateLimiter::keyed(quota(per_ip)),
            by_account: RateLimiter::keyed(quota(per_account)),
            by_device: RateLimiter::keyed(quota(per_account)),
            attempts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Takes one attempt from both budgets; `Err(seconds to wait)` when either is spent.
    /// An IPv6 client is counted by its /64, the block one subscriber is given, so that
    /// moving through its addresses does not buy more attempts. A browser that signed in to
    /// this account before (`device`: its device cookie's nonce, checked) spends its own
    /// budget instead of the account's, so strangers spending the account's cannot lock
    /// it out (see [`crate::device`]).
    pub fn attempt(&self, ip: &str, username: &str, device: Option<&str>) -> Result<(), u64> {
        use governor::clock::{Clock, DefaultClock};
        use std::sync::atomic::Ordering;
        if self.attempts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        let clock = DefaultClock::default();
        let wait = |e: governor::NotUntil<_>| e.wait_time_from(clock.now()).as_secs().max(1);
        self.by_ip.check_key(&ip_key(ip)).map_err(wait)?;
        if let Some(device) = device {
            return self.by_device.check_key(&device.to_owned()).map_err(wait);
        }
        let account = if crate::directory::valid_username(username) {
            username
        } else {
            NO_SUCH_ACCOUNT
        };
        self.by_account
            .check_key(&account.to_owned())
            .map_err(wait)?;
        Ok(())
    }

    /// Forgets the keys whose budgets are whole again.
    fn prune(&self) {
        self.by_ip.retain_recent();
        self.by_ip.shrink_to_fit();
        self.by_account.retain_recent();
        self.by_account.shrink_to_fit();
        self.by_device.retain_recent();
        self.by_device.shrink_to_fit();
    }

    /// How many keys the limiters hold (IPs, accounts).
    #[cfg(test)]
    fn keys(&self) -> (usize, usize) {
        (self.by_ip.len(), self.by_account.len())
    }
}

/// The rate limit's key of a client address: an IPv4 address as it is, an IPv6 address by
/// its /64.
fn ip_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        _ => ip.to_owned(),
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn a_known_browser_spends_its_own_budget_and_strangers_the_accounts() {
        let limits = LoginLimits::new(1000, 2);
        assert!(limits.attempt("192.0.2.1", "ada", None).is_ok());
        assert!(limits.attempt("192.0.2.2", "ada", None).is_ok());
        assert!(
            limits.attempt("192.0.2.3", "ada", None).is_err(),
            "the account's budget is spent, from any address"
        );
        assert!(limits.attempt("192.0.2.4", "ada", Some("device-a")).is_ok());
        assert!(limits.attempt("192.0.2.4", "ada", Some("device-a")).is_ok());
        assert!(
            limits
                .attempt("192.0.2.4", "ada", Some("device-a"))
                .is_err(),
            "a known browser has a budget too"
        );
        assert!(limits.attempt("192.0.2.5", "ada", Some("device-b")).is_ok());
        assert!(limits.attempt("192.0.2.6", "ada", None).is_err());
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64_and_ipv4_ones_have_their_own() {
        let limits = LoginLimits::new(2, 1000);
        assert!(limits.attempt("2001:db8:1:2::1", "ada", None).is_ok());
        assert!(limits.attempt("2001:db8:1:2:ffff::9", "ada", None).is_ok());
        assert!(
            limits.attempt("2001:db8:1:2:abcd::", "ada", None).is_err(),
            "another address of the same /64 got more attempts"
        );
        assert!(
            limits.attempt("2001:db8:1:3::1", "ada", None).is_ok(),
            "the next /64 is another client"
        );
        assert!(limits.attempt("192.0.2.1", "ada", None).is_ok());
        assert!(limits.attempt("192.0.2.1", "ada", None).is_ok());
        assert!(limits.attempt("192.0.2.1", "ada", None).is_err());
        assert!(
            limits.attempt("::ffff:192.0.2.1", "ada", None).is_err(),
            "an IPv4 client written as IPv6 is the same client"
        );
        assert!(limits.attempt("192.0.2.2", "ada", None).is_ok());
    }

    #[test]
    fn names_that_cannot_be_accounts_share_one_budget_and_add_no_keys() {
        let limits = LoginLimits::new(1000, 2);
        for n in 0..500 {
            let junk = format!("{}{n}", "x".repeat(5000));
            let _ = limits.attempt("192.0.2.1", &junk, None);
        }
        assert_eq!(limits.keys().1, 1, "every invalid name is one key");
        assert!(
            limits.attempt("192.0.2.1", "ada", None).is_ok(),
            "real accounts keep their own budget"
        );
    }

    #[test]
    fn keys_whose_budget_is_whole_again_are_forgotten() {
        // So many attempts a minute that a key's budget is whole again some nanoseconds after
        // its use: by the time of the pruning, all but the last few keys are.
        let limits = LoginLimits::new(u32::MAX, u32::MAX);
        for n in 0..PRUNE_EVERY - 1 {
            let _ = limits.attempt(&format!("10.0.{}.{}", n / 256, n % 256), "ada", None);
        }
        assert_eq!(limits.keys().0, (PRUNE_EVERY - 1) as usize);
        limits.prune();
        assert!(
            limits.keys().0 < (PRUNE_EVERY - 1) as usize,
            "keys whose budgets are whole again were kept"
        );
    }
}

/// The outcome of a sign-in.
pub enum LoginOutcome {
    /// Signed in: the new token to set.
    Success {
        /// Session token (goes only into the cookie).
        token: String,
        /// The device cookie's value for this browser and account.
        device: String,
    },
    /// Wrong username or password (one answer for every cause).
    Refused,
    /// Too many attempts; retry after this many seconds.
    Throttled(u64),
}

/// The outcome of asking to impersonate.
pub enum StartOutcome {
    /// Started: the new token to set.
    Started {
        /// Session token.
        token: String,
    },
    /// The policy said no (or the account does not exist: the same answer, so staff cannot
    /// probe for accounts they may not see).
    Denied,
    /// The audit store could not record it, so it did not happen.
    Unrecorded(AuditError),
    /// Allowed, but the session changed while it was being started (a second click that
    /// lost to the first, a stop or a sign-out in another tab): this request started
    /// nothing, and the record says so.
    Raced,
}

/// What a staff member asked for when clicking **Sign in as this user**.
pub struct ImpersonationRequest<'a> {
    /// The target's username.
    pub target: &'a str,
    /// The reason typed (may be empty).
    pub reason: &'a str,
    /// "The customer asked me to look at their mail".
    pub mail_consent: bool,
    /// Where **Stop impersonating** returns to.
    pub return_to: &'a str,
}

/// Facts about the request, for audit records.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Client IP.
    pub client_ip: String,
    /// User-Agent.
    pub user_agent: String,
    /// Request id.
    pub request_id: String,
    /// Host.
    pub host: String,
}

impl Origin {
    /// An event of `kind` from this origin. What the origin does not know (the sweep ends
    /// sessions with no request at hand) is left out rather than recorded empty.
    fn event(&self, kind: Kind) -> Event {
        let known = |field: &String| (!field.is_empty()).then(|| field.clone());
        let mut e = Event::new(kind);
        e.client_ip = known(&self.client_ip);
        e.user_agent = known(&self.user_agent);
        e.request_id = known(&self.request_id);
        e.host = known(&self.host);
        e
    }
}

/// What [`App::resolve`] found behind a token.
#[derive(Default)]
pub struct Resolved {
    /// The live session, if there is one.
    pub session: Option<Arc<SessionRecord>>,
    /// This very request ended the session's impersonation (it expired or is no longer
    /// allowed; the session's notice says which). The request was made as the customer; the
    /// session now speaks for the staff member's own account.
    pub impersonation_ended: bool,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl App {
    /// The panel's address, as last resolved.
    pub fn upstream(&self) -> std::net::SocketAddr {
        match self.upstream.read() {
            Ok(a) => *a,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The session behind `token`, after ending whatever has expired or been revoked.
    /// No session means "not signed in". `origin` is asked for only when something ends and
    /// is recorded, which is rare: the common request does not build it.
    pub async fn resolve(
        &self,
        token: &str,
        origin: impl Fn() -> Origin,
    ) -> Result<Resolved, StoreError> {
        let hash = token_hash(token);
        let session = match self.sessions.get(&hash) {
            Some((s, refresh)) => {
                if let Some(ticket) = refresh {
                    self.refresh_in_background(hash.clone(), ticket);
                }
                s
            }
            None => {
                let s = self.store.session_by_token(&hash).await?.map(Arc::new);
                self.sessions.put(&hash, s.clone());
                s
            }
        };
        let Some(session) = session else {
            return Ok(Resolved::default());
        };
        let now = now_ms();
        let idle = ms(self.config.session.idle_timeout);
        if let Some(why) = self.session_end(&session, now) {
            self.end_session(&session, Some(&hash), why, &origin())
                .await?;
            return Ok(Resolved::default());
        }
        if let Some(imp) = &session.impersonation {
            let why = if imp.expires_at == REVOKED {
                Some("revoked")
            } else if now >= self.impersonation_deadline(imp) {
                Some("expired")
            } else if imp.subject.status == Status::Disabled
                || !self
                    .policies
                    .current()
                    .can_impersonate(&session.actor.facts(), &imp.subject.facts(), false)
                    .allowed
            {
                Some("revoked")
            } else {
                None
            };
            if let Some(why) = why {
                let notice = format!(
                    "Your impersonation of {} ended: {}.",
                    imp.subject.username,
                    if why == "expired" {
                        "its time limit was reached"
                    } else {
                        "it is no longer allowed"
                    }
                );
                let (why, at) = self.impersonation_end(&session, imp, why, now);
                self.end_impersonation(&session, None, why, at, Some(&notice), &origin())
                    .await?;
                self.sessions.forget(&hash);
                let fresh = self.store.session_by_token(&hash).await?.map(Arc::new);
                self.sessions.put(&hash, fresh.clone());
                return Ok(Resolved {
                    session: fresh,
                    impersonation_ended: true,
                });
            }
        }
        // Written back often enough that a session in use never looks idle.
        let touch_every = TOUCH_EVERY_MS
            .min(idle / 4)
            .min(ms(self.config.impersonation.idle_timeout) / 4);
        let imp_seen = session.impersonation.as_ref().map(|i| i.last_seen_at);
        if now - session.last_seen_at > touch_every
            || imp_seen.is_some_and(|s| now - s > touch_every)
        {
            let store = self.store.clone();
            let id = session.id.clone();
            let imp_id = session.impersonation.as_ref().map(|i| i.id.clone());
            self.sessions.record_use(&hash, now);
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(&id, now, imp_id.as_deref()).await {
                    tracing::warn!(error = %e, "cannot record session use");
                }
            });
        }
        Ok(Resolved {
            session: Some(session),
            impersonation_ended: false,
        })
    }

    /// Reloads a cached session from the store off the request path, so that what other
    /// instances changed is seen within the cache's lifetime without a request waiting.
    fn refresh_in_background(&self, hash: String, ticket: crate::session::RefreshTicket) {
        let store = self.store.clone();
        let cache = self.sessions.clone();
        tokio::spawn(async move {
            match store.session_by_token(&hash).await {
                Ok(s) => cache.refreshed(&hash, ticket, s.map(Arc::new)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload a cached session; the next request will");
                    cache.refresh_failed(&hash, ticket);
                }
            }
        });
    }

    /// Why `session` can no longer be used at `now`, if it cannot: revoked (by a password
    /// change, or its account disabled) or expired (its absolute end, or idle too long).
    fn session_end(&self, session: &SessionRecord, now: i64) -> Option<&'static str> {
        if session.expires_at == REVOKED || session.actor.status == Status::Disabled {
            Some("revoked")
        } else if now >= self.session_deadline(session) {
            Some("expired")
        } else {
            None
        }
    }

    /// When a session runs out: its absolute end, or its idle limit after its last use.
    fn session_deadline(&self, session: &SessionRecord) -> i64 {
        let idle = ms(self.config.session.idle_timeout);
        session
            .expires_at
            .min(session.last_seen_at.saturating_add(idle))
    }

    /// When an impersonation runs out: its hard end, or its idle limit after its last use.
    fn impersonation_deadline(&self, imp: &ImpersonationRecord) -> i64 {
        let idle = ms(self.config.impersonation.idle_timeout);
        imp.expires_at.min(imp.last_seen_at.saturating_add(idle))
    }

    /// Why and when the impersonation of `session` ended, as it is ended now for `why`. One
    /// that had already run out ended at its deadline, or with its session if the session
    /// ran out first: that is the end the customer's access history shows, not the moment
    /// the next request or the sweep noticed.
    fn impersonation_end<'a>(
        &self,
        session: &SessionRecord,
        imp: &ImpersonationRecord,
        why: &'a str,
        now: i64,
    ) -> (&'a str, i64) {
        if imp.expires_at == REVOKED {
            return ("revoked", now);
        }
        let ended = if why == "expired" {
            self.session_deadline(session).min(now)
        } else {
            now
        };
        let deadline = self.impersonation_deadline(imp);
        if deadline <= ended {
            ("expired", deadline)
        } else {
            (why, ended)
        }
    }

    /// Ends every session no request can use any more, on the record, so that a session
    /// (and an impersonation) its browser never comes back to is closed all the same: the
    /// customer's access history shows when it ended, and the table does not keep it.
    /// Safe beside other instances doing the same: each end is conditional, and only the
    /// instance that made it records it. Returns how many sessions it ended.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        const BATCH: i64 = 500;
        let now = now_ms();
        let idle = ms(self.config.session.idle_timeout);
        let dead = self
            .store
            .dead_sessions(now, now.saturating_sub(idle), BATCH)
            .await?;
        let origin = Origin::default();
        let mut ended = 0;
        for (hash, session) in &dead {
            let why = self.session_end(session, now).unwrap_or("expired");
            if self.end_session(session, Some(hash), why, &origin).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends a session (and its impersonation) because it expired, was revoked or signed out.
    /// `Ok(false)` if another request or instance had already ended it (and recorded it).
    async fn end_session(
        &self,
        session: &SessionRecord,
        hash: Option<&str>,
        why: &str,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        if let Some(imp) = &session.impersonation {
            let (imp_why, at) = self.impersonation_end(session, imp, why, now_ms());
            self.end_impersonation(session, None, imp_why, at, None, origin)
                .await?;
        }
        let deleted = self.store.delete_session(&session.id).await?;
        if let Some(hash) = hash {
            self.sessions.forget(hash);
        }
        if !deleted {
            return Ok(false);
        }
        let mut e = origin.event(Kind::Logout);
        e.actor = Some(session.actor.username.clone());
        e.subject = Some(session.actor.username.clone());
        e.session_id = Some(session.id.clone());
        e.reason = Some(why.to_owned());
        self.audit.record(e).await;
        Ok(true)
    }

    /// Ends the session's impersonation, recording why and when (`at`, ms); optionally
    /// rotates the token. Returns false if another request or instance had already ended it.
    async fn end_impersonation(
        &self,
        session: &SessionRecord,
        new_token_hash: Option<&str>,
        why: &str,
        at: i64,
        notice: Option<&str>,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let Some(imp) = &session.impersonation else {
            return Ok(false);
        };
        let ended = self
            .store
            .end_impersonation(&session.id, &imp.id, new_token_hash, why, at, notice)
            .await?;
        if ended {
            let mut e = origin.event(Kind::ImpersonationStop);
            e.actor = Some(session.actor.username.clone());
            e.subject = Some(imp.subject.username.clone());
            e.session_id = Some(session.id.clone());
            e.impersonation_id = Some(imp.id.clone());
            e.duration_ms = Some(at - imp.started_at);
            e.reason = Some(why.to_owned());
            self.audit.record(e).await;
            tracing::info!(actor = %session.actor.username, subject = %imp.subject.username, why, "impersonation ended");
        }
        Ok(ended)
    }

    /// Checks a username and password and opens a new session. Any session the browser
    /// already had is ended first: a sign-in never continues an old token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        previous_token: Option<&str>,
        device_cookie: Option<&str>,
        origin: &Origin,
    ) -> Result<LoginOutcome, StoreError> {
        let username = username.trim().to_lowercase();
        let device = device_cookie.and_then(|c| self.devices.check(c, &username));
        if let Err(wait) = self.limits.attempt(&origin.client_ip, &username, device) {
            METRICS
                .login_throttled_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut e = origin.event(Kind::LoginFailed);
            e.actor = crate::directory::valid_username(&username).then(|| username.clone());
            e.decision = Some("throttled".into());
            e.reason = Some("too many sign-in attempts".into());
            self.audit.record(e).await;
            return Ok(LoginOutcome::Throttled(wait));
        }
        let found = if crate::directory::valid_username(&username) {
            self.store.account_with_hash(&username).await?
        } else {
            None
        };
        let (account, hash) = match found {
            Some((a, h)) => (Some(a), Some(h)),
            None => (None, None),
        };
        let password_ok = crate::directory::verify_password(hash, password.to_owned()).await;
        let account = match account {
            Some(a) if password_ok && a.status == Status::Active => a,
            other => {
                METRICS
                    .login_failures_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut e = origin.event(Kind::LoginFailed);
                e.actor = crate::directory::valid_username(&username).then(|| username.clone());
                e.decision = Some("deny".into());
                e.reason = Some(
                    match other {
                        None => "unknown account",
                        Some(a) if a.status == Status::Disabled => "account disabled",
                        Some(_) => "wrong password",
                    }
                    .into(),
                );
                self.audit.record(e).await;
                return Ok(LoginOutcome::Refused);
            }
        };
        if let Some(old) = previous_token {
            let old_hash = token_hash(old);
            if let Some(old_session) = self.store.session_by_token(&old_hash).await? {
                self.end_session(&old_session, Some(&old_hash), "logout", origin)
                    .await?;
            }
        }
        let token = random_token();
        let now = now_ms();
        let id = random_id();
        self.store
            .insert_session(NewSession {
                id: &id,
                token_hash: &token_hash(&token),
                actor: &account.username,
                csrf_token: &random_token(),
                now,
                expires_at: now.saturating_add(ms(self.config.session.absolute_timeout)),
                client_ip: &origin.client_ip,
                user_agent: &origin.user_agent,
            })
            .await?;
        METRICS
            .logins_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut e = origin.event(Kind::Login);
        e.actor = Some(account.username.clone());
        e.subject = Some(account.username.clone());
        e.session_id = Some(id);
        e.decision = Some("allow".into());
        self.audit.record(e).await;
        let device = self.devices.issue(&account.username, device);
        Ok(LoginOutcome::Success { token, device })
    }

    /// Ends every session of `session`'s actor but `session` itself (why = revoked): after a
    /// password change, whoever signed in with the old one is signed out. Each is on record;
    /// their cached copies are dropped within the cache's lifetime (`session.cache_ttl`).
    pub async fn end_other_sessions(
        &self,
        session: &SessionRecord,
        origin: &Origin,
    ) -> Result<usize, StoreError> {
        let mut ended = 0;
        for other in self.store.sessions_of(&session.actor.username).await? {
            if other.id != session.id && self.end_session(&other, None, "revoked", origin).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Signs out: ends the impersonation (why = logout) and the session.
    pub async fn logout(
        &self,
        session: &SessionRecord,
        token: &str,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        self.end_session(session, Some(&token_hash(token)), "logout", origin)
            .await
            .map(|_| ())
    }

    /// Asks the policies whether the session's actor may impersonate `target`, and if so
    /// starts it with a new token.
    pub async fn start_impersonation(
        &self,
        session: &SessionRecord,
        token: &str,
        ask: ImpersonationRequest<'_>,
        origin: &Origin,
    ) -> Result<StartOutcome, StoreError> {
        let ImpersonationRequest {
            target,
            reason,
            mail_consent,
            return_to,
        } = ask;
        let target_account = if crate::directory::valid_username(target) {
            self.store.account(target).await?
        } else {
            None
        };
        let decision = target_account.as_ref().map(|t| {
            self.policies.current().can_impersonate(
                &session.actor.facts(),
                &t.facts(),
                session.impersonation.is_some(),
            )
        });
        let (target_account, decision) = match (target_account, decision) {
            (Some(t), Some(d)) if d.allowed => (t, d),
            (t, d) => {
                METRICS
                    .impersonations_denied_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut e = origin.event(Kind::ImpersonationDenied);
                e.actor = Some(session.actor.username.clone());
                e.subject =
                    Some(t.map_or_else(|| target.chars().take(64).collect(), |t| t.username));
                e.session_id = Some(session.id.clone());
                e.impersonation_id = session.impersonation.as_ref().map(|i| i.id.clone());
                e.decision = Some("deny".into());
                e.reason = Some(match d {
                    Some(d) if d.policy_ids.is_empty() => "no policy permits it".into(),
                    Some(d) => format!("decided by {}", d.policy_ids.join(", ")),
                    None => "no such account".into(),
                });
                self.audit.record(e).await;
                return Ok(StartOutcome::Denied);
            }
        };
        let imp_id = random_id();
        let reason = reason.trim().chars().take(500).collect::<String>();
        // The records of this impersonation's start: who, whom, which one, and the outcome.
        let start_event = |kind: Kind, decision: &str| {
            let mut e = origin.event(kind);
            e.actor = Some(session.actor.username.clone());
            e.subject = Some(target_account.username.clone());
            e.session_id = Some(session.id.clone());
            e.impersonation_id = Some(imp_id.clone());
            e.decision = Some(decision.into());
            e
        };
        let mut e = start_event(Kind::ImpersonationStart, "allow");
        e.reason = Some(format!(
            "{}{}mail consent: {}; decided by {}",
            reason,
            if reason.is_empty() { "" } else { " · " },
            if mail_consent { "yes" } else { "no" },
            decision.policy_ids.join(", ")
        ));
        // The start is on record before it takes effect.
        if let Err(err) = self
            .audit
            .record_durably(e, self.config.audit.write_ahead_timeout)
            .await
        {
            METRICS
                .audit_unavailable_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(StartOutcome::Unrecorded(err));
        }
        let new_token = random_token();
        let now = now_ms();
        let old_hash = token_hash(token);
        let started = self
            .store
            .start_impersonation(
                &session.id,
                &old_hash,
                &token_hash(&new_token),
                &session.actor,
                NewImpersonation {
                    id: &imp_id,
                    subject: &target_account.username,
                    started_at: now,
                    expires_at: now.saturating_add(ms(self.config.impersonation.max_duration)),
                    reason: &reason,
                    mail_consent,
                    return_to,
                },
            )
            .await;
        self.sessions.forget(&old_hash);
        if !matches!(started, Ok(true)) {
            // The start is on record, so is that it did not take effect: raced with another
            // start or a token change, or the store failed.
            let mut e = start_event(Kind::ImpersonationDenied, "deny");
            e.reason = Some(match &started {
                Ok(_) => "did not take effect: the session changed meanwhile (another start, a stop or a sign-out)".into(),
                Err(err) => format!("did not take effect: {err}"),
            });
            self.audit.record(e).await;
            started?;
            return Ok(StartOutcome::Raced);
        }
        METRICS
            .impersonations_started_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(actor = %session.actor.username, subject = %target_account.username, "impersonation started");
        Ok(StartOutcome::Started { token: new_token })
    }

    /// Stops the session's impersonation (why = stopped) with a new token. Returns the new
    /// token and where to go, or `None` if there was nothing to stop.
    pub async fn stop_impersonation(
        &self,
        session: &SessionRecord,
        token: &str,
        origin: &Origin,
    ) -> Result<Option<(String, String)>, StoreError> {
        let Some(imp) = &session.impersonation else {
            return Ok(None);
        };
        let new_token = random_token();
        let ended = self
            .end_impersonation(
                session,
                Some(&token_hash(&new_token)),
                "stopped",
                now_ms(),
                None,
                origin,
            )
            .await?;
        self.sessions.forget(&token_hash(token));
        Ok(ended.then(|| (new_token, imp.return_to.clone())))
    }

    /// Clears a session's one-time notice after it has been shown.
    pub async fn notice_shown(&self, session: &SessionRecord, token: &str) {
        if let Err(e) = self.store.clear_notice(&session.id).await {
            tracing::warn!(error = %e, "cannot clear a session notice");
        }
        self.sessions.forget(&token_hash(token));
    }

    /// Looks up an account for a console page.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        if !crate::directory::valid_username(username) {
            return Ok(None);
        }
        self.store.account(username).await
    }
}
