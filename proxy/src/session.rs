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
use sha2::{Digest, Sha256};

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

/// A shorter random id (128 bits) for records that are not secrets.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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
}

/// Sessions looked up recently, by token hash.
pub struct SessionCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
}

impl SessionCache {
    /// A cache whose answers are at most `ttl` old.
    pub fn new(ttl: Duration) -> SessionCache {
        SessionCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            capacity: 100_000,
        }
    }

    /// The cached answer for `hash`, if still fresh. `Some(None)` means "known not to exist".
    pub fn get(&self, hash: &str) -> Option<Option<Arc<SessionRecord>>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let e = entries.get(hash)?;
        (e.fetched.elapsed() < self.ttl).then(|| e.session.clone())
    }

    /// Remembers the store's answer for `hash`.
    pub fn put(&self, hash: &str, session: Option<Arc<SessionRecord>>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                let ttl = self.ttl;
                entries.retain(|_, e| e.fetched.elapsed() < ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(
                hash.to_owned(),
                Entry {
                    session,
                    fetched: Instant::now(),
                },
            );
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
        assert!(matches!(cache.get("h"), Some(None)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("h").is_none());
        cache.put("h", None);
        cache.forget("h");
        assert!(cache.get("h").is_none());
    }
}
