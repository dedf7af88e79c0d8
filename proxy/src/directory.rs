//! The directory: who has an account, with which role, created by whom, and how their
//! password is checked.
//!
//! Passwords are hashed with argon2id and only the PHC string is kept. Checking a password
//! is slow on purpose, so it runs on the blocking pool, never on a proxy thread; and an
//! unknown username is checked against a dummy hash so that it costs as much time as a
//! wrong password. This module never decides who may impersonate whom: that is policy.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// What an account is allowed to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the hosting business: sees every account.
    Admin,
    /// Sells hosting: sees the customers it created.
    Reseller,
    /// Uses the panel for their own sites.
    Customer,
}

impl Role {
    /// The word used in the store, the assertion and the policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reseller => "reseller",
            Role::Customer => "customer",
        }
    }

    /// Staff see the console's Accounts page.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Reseller)
    }
}

impl fmt::Display for Role {
    /// The word, padded to the width asked for (`{:<10}` lines up columns).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "reseller" => Ok(Role::Reseller),
            "customer" => Ok(Role::Customer),
            other => Err(format!(
                "`{other}` is not a role: use admin, reseller or customer"
            )),
        }
    }
}

/// Whether an account may sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// May sign in.
    Active,
    /// May not sign in; its sessions and impersonations end.
    Disabled,
}

impl Status {
    /// The word used in the store and the policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "active" => Ok(Status::Active),
            "disabled" => Ok(Status::Disabled),
            other => Err(format!("`{other}` is not an account status")),
        }
    }
}

/// One account of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Unique, lowercase: `[a-z0-9][a-z0-9._-]{0,63}`.
    pub username: String,
    /// Shown in pages and the banner.
    pub display_name: String,
    /// Admin, reseller or customer.
    pub role: Role,
    /// The account that created this one (a reseller's customers name the reseller).
    pub created_by: Option<String>,
    /// Active or disabled.
    pub status: Status,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

impl Account {
    /// The facts the policies see.
    pub fn facts(&self) -> crate::policy::AccountFacts<'_> {
        crate::policy::AccountFacts {
            username: &self.username,
            role: self.role.as_str(),
            created_by: self.created_by.as_deref(),
            status: self.status.as_str(),
        }
    }
}

/// Whether `name` is an acceptable username.
pub fn valid_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short to be worth having.
    #[error("a password needs at least 8 characters")]
    TooShort,
    /// argon2 refused.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < 8 {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// A hash of a password nobody has, checked when the username is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks `password` against `stored` (a PHC string), or against a dummy hash when there is
/// no account, so both paths cost the same. Blocking: call through [`verify_password`].
fn verify_blocking(stored: Option<&str>, password: &str) -> bool {
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy_hash(), false),
    };
    let ok = PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

/// Checks a password on the blocking pool: an argon2 verification takes tens of
/// milliseconds and must not stall a proxy thread.
pub async fn verify_password(stored: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(stored.as_deref(), &password))
        .await
        .unwrap_or(false)
}

/// Warms the dummy hash so the first unknown-user sign-in is not cheaper than later ones.
pub fn warm_up() {
    let _ = dummy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_fills_the_width_asked_for() {
        assert_eq!(format!("{:<10}|", Role::Admin), "admin     |");
        assert_eq!(format!("{:>10}|", Role::Customer), "  customer|");
        assert_eq!(Role::Reseller.to_string(), "reseller");
    }

    #[test]
    fn usernames_are_lowercase_words() {
        for ok in ["carl", "a", "rita.reseller", "c-2", "x_y", "9lives"] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in [
            "",
            "Carl",
            "-x",
            ".x",
            "a b",
            "a/b",
            "ä",
            &"a".repeat(65),
            "a\0",
        ] {
            assert!(!valid_username(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_hashed_password_verifies_and_others_do_not() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking(Some(&h), "correct horse"));
        assert!(!verify_blocking(Some(&h), "wrong horse"));
        assert!(!verify_blocking(None, "correct horse"));
        assert!(!verify_blocking(Some("not a phc string"), "x"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Admin, Role::Reseller, Role::Customer] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
