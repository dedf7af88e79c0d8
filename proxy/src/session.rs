//! Sessions: the opaque token in the browser's cookie, its hash in the store, and a short
//! per-instance cache in front of the store.
//!
//! The browser holds only `__Host-actas_session` (HttpOnly, Secure, SameSite=Lax, Path=/):
//! 256 random bits. The store keeps SHA-256 of it, never the token. Every sign-in, start and
//! stop of impersonation issues a new token (no fixation). The cache keeps a looked-up
//! session for at most `session.cache_ttl` (≤ 1 s), so a stop or revocation made on one
//! instance is seen by every other within a second. This module never decides who may do
//! what; it finds out who is asking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::store::sessions::SessionRecord;

/// The session cookie's name. `__Host-` makes the browser insist on Secure, Path=/ and no
/// Domain, so a sibling subdomain cannot plant or read it.
pub const COOKIE_NAME: &str = "__Host-actas_session";

/// The sign-in form's CSRF cookie (double submit), set before any session exists.
pub const LOGIN_COOKIE_NAME: &str = "__Host-actas_login";

/// 32 random bytes, base64url: a session token, CSRF token or id.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A shorter random id (128 bits) for records that are not secrets. It never begins with
/// `-`, so that ops can paste it after an option or into `grep` without it being read as
/// an option itself.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    loop {
        rand::thread_rng().fill_bytes(&mut bytes);
        // The first base64url character is the top six bits of the first byte; 62 is `-`.
        if bytes[0] >> 2 != 62 {
            return URL_SAFE_NO_PAD.encode(bytes);
        }
    }
}

/// SHA-256 of a token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    crate::digest::sha256_hex(&[token.as_bytes()])
}

/// The value of cookie `name` in a request's headers, as [`cookie`] reads it.
pub fn cookie_of(headers: &http::HeaderMap, name: &str) -> Option<String> {
    cookie(
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| v.as_bytes()),
        name,
    )
}

/// The value of cookie `name` in the request's `Cookie` headers. Malformed pairs are
/// skipped; a token that is not plausible base64url of the right length is ignored.
pub fn cookie<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Option<String> {
    for header in headers {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for pair in text.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim() == name {
                let v = v.trim().trim_matches('"');
                if (16..=128).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Some(v.to_owned());
                }
            }
        }
    }
    None
}

/// `Set-Cookie` for a session token. `secure` is false only for a plain-HTTP listener
/// without TLS in front (where `__Host-` cannot be used).
pub fn set_cookie(name: &str, token: &str, max_age: Duration) -> String {
    format!(
        "{name}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        max_age.as_secs()
    )
}

/// `Set-Cookie` that removes a cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

struct Entry {
    session: Option<Arc<SessionRecord>>,
    fetched: Instant,
    /// Changes whenever the entry is replaced or updated, so a background refresh that
    /// started from an older entry (or from one since forgotten) is dropped on arrival.
    generation: u64,
    /// A background refresh is in flight: hand out no second ticket.
    refreshing: bool,
}

/// Leave to refresh one cached answer in the background: given by [`SessionCache::get`],
/// redeemed with [`SessionCache::refreshed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RefreshTicket(u64);

/// Sessions looked up recently, by token hash.
///
/// An answer is served for at most `ttl`. Once it is half that old, the first request to
/// see it gets a [`RefreshTicket`] and reloads it from the store in the background, so a
/// session in steady use is never missing from the cache: requests do not wait for the
/// store, and no burst of them reloads the same session at once when an entry expires.
#[derive(Clone)]
pub struct SessionCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    capacity: usize,
    next_generation: Arc<std::sync::atomic::AtomicU64>,
}

impl SessionCache {
    /// A cache whose answers are at most `ttl` old.
    pub fn new(ttl: Duration) -> SessionCache {
        SessionCache {
            ttl,
            entries: Arc::new(Mutex::new(HashMap::new())),
            capacity: 100_000,
            next_generation: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }

    fn generation(&self) -> u64 {
        self.next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The cached answer for `hash`, if still fresh. `Some((None, _))` means "known not to
    /// exist". A ticket comes with an answer that is due to be reloaded.
    pub fn get(&self, hash: &str) -> Option<(Option<Arc<SessionRecord>>, Option<RefreshTicket>)> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let e = entries.get_mut(hash)?;
        let age = e.fetched.elapsed();
        if age >= self.ttl {
            return None;
        }
        let ticket = (age >= self.ttl / 2 && !e.refreshing).then(|| {
            e.refreshing = true;
            RefreshTicket(e.generation)
        });
        Some((e.session.clone(), ticket))
    }

    /// Remembers the store's answer for `hash`.
    pub fn put(&self, hash: &str, session: Option<Arc<SessionRecord>>) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = self.fresh(session);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                let ttl = self.ttl;
                entries.retain(|_, e| e.fetched.elapsed() < ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(hash.to_owned(), entry);
        }
    }

    /// A new entry for `session`, fetched now.
    fn fresh(&self, session: Option<Arc<SessionRecord>>) -> Entry {
        Entry {
            session,
            fetched: Instant::now(),
            generation: self.generation(),
            refreshing: false,
        }
    }

    /// Applies `f` to the entry `ticket` was handed out for, if it is still there unchanged.
    fn redeem(&self, hash: &str, ticket: RefreshTicket, f: impl FnOnce(&mut Entry)) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(e) = entries.get_mut(hash).filter(|e| e.generation == ticket.0) {
                f(e);
            }
        }
    }

    /// Lands a background reload: kept only if the entry it was started from is still there
    /// unchanged (a session ended or changed meanwhile stays as this instance left it).
    pub fn refreshed(
        &self,
        hash: &str,
        ticket: RefreshTicket,
        session: Option<Arc<SessionRecord>>,
    ) {
        let entry = self.fresh(session);
        self.redeem(hash, ticket, |e| *e = entry);
    }

    /// A background reload failed: let a later request try again.
    pub fn refresh_failed(&self, hash: &str, ticket: RefreshTicket) {
        self.redeem(hash, ticket, |e| e.refreshing = false);
    }

    /// Notes in the cached copy that the session (and its impersonation) was used at
    /// `now`, as the store is being told: the copy stays, so the next request need not
    /// reload it.
    pub fn record_use(&self, hash: &str, now: i64) {
        let generation = self.generation();
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(e) = entries.get_mut(hash) {
                if let Some(s) = &e.session {
                    let mut used = SessionRecord::clone(s);
                    used.last_seen_at = now;
                    if let Some(imp) = used.impersonation.as_mut() {
                        imp.last_seen_at = now;
                    }
                    e.session = Some(Arc::new(used));
                    e.generation = generation;
                    e.refreshing = false;
                }
            }
        }
    }

    /// Forgets `hash` (after this instance changed or ended the session).
    pub fn forget(&self, hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = random_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn ids_are_128_bits_and_never_begin_with_a_hyphen() {
        // One id in 64 would begin with `-` if nothing prevented it.
        for _ in 0..5_000 {
            let id = random_id();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(URL_SAFE_NO_PAD.decode(&id).unwrap().len(), 16);
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let t = random_token();
        let h = format!("a=1; {COOKIE_NAME}={t}; b=2");
        assert_eq!(cookie([h.as_bytes()].into_iter(), COOKIE_NAME), Some(t));
    }

    #[test]
    fn malformed_cookies_are_ignored_without_panic() {
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b";;;",
            b"__Host-actas_session",
            b"__Host-actas_session=",
            b"__Host-actas_session=short",
            b"__Host-actas_session=has spaces and more than sixteen",
            b"__Host-actas_session=../../../../etc/passwd/aaaaaaaa",
        ] {
            assert_eq!(cookie([bad].into_iter(), COOKIE_NAME), None, "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_has_every_protective_attribute() {
        let c = set_cookie(COOKIE_NAME, "t", Duration::from_secs(60));
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Domain"));
    }

    #[test]
    fn cache_answers_expire() {
        let cache = SessionCache::new(Duration::from_millis(30));
        cache.put("h", None);
        assert!(matches!(cache.get("h"), Some((None, _))));
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("h").is_none());
        cache.put("h", None);
        cache.forget("h");
        assert!(cache.get("h").is_none());
    }

    fn record(last_seen_at: i64) -> Arc<SessionRecord> {
        use crate::directory::{Account, Role, Status};
        Arc::new(SessionRecord {
            id: "sid".into(),
            actor: Account {
                username: "ada".into(),
                display_name: "Ada".into(),
                role: Role::Admin,
                created_by: None,
                status: Status::Active,
                created_at: 0,
            },
            csrf_token: "csrf".into(),
            created_at: 0,
            last_seen_at,
            expires_at: i64::MAX,
            impersonation: None,
            notice: None,
        })
    }

    /// Waits until the entry is half `ttl` old, when a refresh falls due.
    fn age_past_half(ttl: Duration) {
        std::thread::sleep(ttl / 2 + Duration::from_millis(5));
    }

    const TTL: Duration = Duration::from_millis(400);

    /// Caches `session` under "h", lets it age until a refresh falls due, and takes the
    /// ticket for it.
    fn due(cache: &SessionCache, session: Option<Arc<SessionRecord>>) -> RefreshTicket {
        cache.put("h", session);
        age_past_half(TTL);
        cache.get("h").and_then(|(_, t)| t).expect("due")
    }

    #[test]
    fn an_ageing_answer_hands_out_exactly_one_refresh_ticket() {
        let cache = SessionCache::new(TTL);
        cache.put("h", Some(record(1)));
        age_past_half(TTL);
        let (first, ticket) = cache.get("h").expect("still served while the refresh runs");
        assert_eq!(first.map(|s| s.last_seen_at), Some(1));
        let ticket = ticket.expect("the first request past half the lifetime refreshes");
        assert!(
            cache.get("h").is_some_and(|(_, t)| t.is_none()),
            "one refresh at a time"
        );
        cache.refreshed("h", ticket, Some(record(2)));
        let (now, again) = cache.get("h").expect("refreshed");
        assert_eq!(now.map(|s| s.last_seen_at), Some(2));
        assert!(again.is_none(), "a just-refreshed answer is not due");
    }

    #[test]
    fn a_refresh_never_brings_back_a_session_forgotten_meanwhile() {
        let cache = SessionCache::new(TTL);
        let ticket = due(&cache, Some(record(1)));
        // Signed out on this instance while the reload read the old row.
        cache.forget("h");
        cache.refreshed("h", ticket, Some(record(1)));
        assert!(cache.get("h").is_none());
        // Replaced by a newer answer meanwhile: the stale reload does not overwrite it.
        let ticket = due(&cache, Some(record(1)));
        cache.put("h", None);
        cache.refreshed("h", ticket, Some(record(1)));
        assert!(matches!(cache.get("h"), Some((None, _))));
    }

    #[test]
    fn a_failed_refresh_lets_the_next_request_try_again() {
        let cache = SessionCache::new(TTL);
        let ticket = due(&cache, Some(record(1)));
        cache.refresh_failed("h", ticket);
        assert!(cache.get("h").is_some_and(|(_, t)| t.is_some()));
    }

    #[test]
    fn recording_use_updates_the_cached_copy_instead_of_dropping_it() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let mut s = SessionRecord::clone(&record(1));
        s.impersonation = Some(crate::store::sessions::ImpersonationRecord {
            id: "imp".into(),
            subject: s.actor.clone(),
            started_at: 0,
            expires_at: i64::MAX,
            last_seen_at: 1,
            reason: String::new(),
            mail_consent: false,
            return_to: "/".into(),
        });
        cache.put("h", Some(Arc::new(s)));
        cache.record_use("h", 99);
        let (s, _) = cache.get("h").expect("still cached");
        let s = s.expect("a session");
        assert_eq!(s.last_seen_at, 99);
        assert_eq!(s.impersonation.as_ref().map(|i| i.last_seen_at), Some(99));
    }
}
