//! Device cookies: a browser that has signed in to an account before is told apart from
//! everyone else trying that account, so that a stranger's failed guesses cannot lock its
//! owner out.
//!
//! The per-account sign-in budget stops guessing spread over many addresses, but anyone who
//! knows a username could spend it every minute and keep the account's owner out. After a
//! successful sign-in the browser gets `__Host-actas_device`: a random nonce and an HMAC of
//! the account and that nonce. A sign-in attempt for that account that carries a valid
//! cookie is counted against the cookie's own budget instead of the account's. The cookie
//! proves nothing about the password and grants nothing else; it only moves the attempt to
//! another counter. The key is derived from the assertion signing key, which every instance
//! of a deployment shares, so the cookie holds on every instance and nothing is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// The cookie's name.
pub const COOKIE_NAME: &str = "__Host-actas_device";

/// How long a browser stays known after its last successful sign-in.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(180 * 24 * 3600);

/// Bytes of nonce; its base64 is the budget's key.
const NONCE_LEN: usize = 16;
/// Characters of the nonce and of the MAC in the cookie (base64url, no padding).
const NONCE_CHARS: usize = 22;
const MAC_CHARS: usize = 43;

/// Issues and checks device cookies.
pub struct DeviceCookies {
    key: hmac::Key,
}

impl DeviceCookies {
    /// Cookies keyed by a secret derived from `secret` (the signing key's seed).
    pub fn new(secret: &[u8]) -> DeviceCookies {
        let derived = crate::digest::sha256(&[b"actas device cookie v1\0", secret]);
        DeviceCookies {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derived),
        }
    }

    /// A cookie value naming this browser for `username`: `nonce` if the browser already has
    /// one (it stays the same device), else a new one.
    pub fn issue(&self, username: &str, nonce: Option<&str>) -> String {
        let nonce = nonce.map_or_else(
            || {
                let mut bytes = [0u8; NONCE_LEN];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
                URL_SAFE_NO_PAD.encode(bytes)
            },
            str::to_owned,
        );
        let mac = hmac::sign(&self.key, &message(username, &nonce));
        format!("{nonce}{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// The nonce of `cookie` if it was issued for `username` by this deployment; `None` for
    /// anything else (another account's cookie, a forged or cut one).
    pub fn check<'a>(&self, cookie: &'a str, username: &str) -> Option<&'a str> {
        if cookie.len() != NONCE_CHARS + MAC_CHARS || !cookie.is_ascii() {
            return None;
        }
        let (nonce, mac) = cookie.split_at(NONCE_CHARS);
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // `verify` compares in constant time.
        hmac::verify(&self.key, &message(username, nonce), &mac).ok()?;
        Some(nonce)
    }
}

/// What the MAC covers: the account and the nonce, each with its length, so that no two
/// pairs read the same.
fn message(username: &str, nonce: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + username.len() + nonce.len());
    m.extend_from_slice(
        &u32::try_from(username.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(username.as_bytes());
    m.extend_from_slice(&u32::try_from(nonce.len()).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(nonce.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_holds_only_for_its_account_and_its_deployment() {
        let ours = DeviceCookies::new(b"one signing key");
        let cookie = ours.issue("ada", None);
        assert_eq!(cookie.len(), NONCE_CHARS + MAC_CHARS);
        let nonce = ours.check(&cookie, "ada").expect("issued for ada");
        assert_eq!(nonce, &cookie[..NONCE_CHARS]);
        assert_eq!(ours.check(&cookie, "rita"), None, "another account");
        let theirs = DeviceCookies::new(b"another signing key");
        assert_eq!(theirs.check(&cookie, "ada"), None, "another deployment");
        // The same browser keeps its nonce across sign-ins.
        assert_eq!(ours.issue("ada", Some(nonce)), cookie);
    }

    #[test]
    fn forged_cut_and_malformed_cookies_are_refused_without_a_panic() {
        let d = DeviceCookies::new(b"k");
        let good = d.issue("ada", None);
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let other_nonce = format!("{}{}", "A".repeat(NONCE_CHARS), &good[NONCE_CHARS..]);
        let multibyte = format!("é{}", &good[2..]);
        for bad in [
            "",
            "short",
            &good[1..],
            &format!("{good}x"),
            &flipped,
            &other_nonce,
            &multibyte,
            &"!".repeat(NONCE_CHARS + MAC_CHARS),
        ] {
            assert_eq!(d.check(bad, "ada"), None, "{bad}");
        }
    }
}
