//! The panel's naming rules: usernames, domain names, mailbox names, database names and
//! contact email addresses. Every name a user types is checked here before it reaches
//! the store or the disk; the error says what is wrong in words a customer understands.
//! This module only judges strings: it must never touch the store, the disk or a request.

use thiserror::Error;

/// Why a typed name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The field was left empty.
    #[error("{what} is required")]
    Empty {
        /// What the field is, e.g. "a domain name".
        what: &'static str,
    },
    /// The name breaks a rule; the text says which one.
    #[error("{0}")]
    Invalid(String),
}

/// Longest username the proxy's directory can hold.
const USERNAME_MAX: usize = 64;
/// Longest domain name (RFC 1035 §2.3.4, without the trailing dot).
const DOMAIN_MAX: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const LABEL_MAX: usize = 63;
/// Longest short database name (after the account prefix is added it may be longer).
const DATABASE_SHORT_MAX: usize = 32;
/// Longest mailbox name (the local part of an address, RFC 5321 §4.5.3.1.1).
const MAILBOX_MAX: usize = 64;
/// Longest email address (RFC 5321 path limit, minus the angle brackets).
const EMAIL_MAX: usize = 254;

/// A username as the proxy's directory spells it: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn is_valid_username(candidate: &str) -> bool {
    let bytes = candidate.as_bytes();
    match bytes.split_first() {
        None => false,
        Some((first, rest)) => {
            bytes.len() <= USERNAME_MAX
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(b))
        }
    }
}

/// Normalises (trim, ASCII lowercase) and checks a domain name: RFC 1123 labels, at
/// least two labels, at most 253 characters, no trailing dot, and a last label that is
/// not all digits (so an IPv4 address is not taken for a domain).
pub fn domain_name(input: &str) -> Result<String, NameError> {
    let name = input.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(NameError::Empty {
            what: "a domain name",
        });
    }
    if name.len() > DOMAIN_MAX {
        return Err(NameError::Invalid(format!(
            "a domain name is at most {DOMAIN_MAX} characters long"
        )));
    }
    if name.ends_with('.') {
        return Err(NameError::Invalid(
            "write the domain without a trailing dot, e.g. example.com".to_owned(),
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(NameError::Invalid(
            "a domain name needs at least two labels, e.g. example.com".to_owned(),
        ));
    }
    for label in &labels {
        check_label(label)?;
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NameError::Invalid(
            "the last label of a domain name cannot be all digits".to_owned(),
        ));
    }
    Ok(name)
}

fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::Invalid(
            "a domain name cannot contain an empty label (two dots in a row)".to_owned(),
        ));
    }
    if label.len() > LABEL_MAX {
        return Err(NameError::Invalid(format!(
            "each part of a domain name is at most {LABEL_MAX} characters long"
        )));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NameError::Invalid(
            "a domain name may contain only letters a-z, digits, hyphens and dots".to_owned(),
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Invalid(
            "a part of a domain name cannot start or end with a hyphen".to_owned(),
        ));
    }
    Ok(())
}

/// Checks the short name a customer types for a database: `[a-z][a-z0-9_]{0,31}`.
/// The caller adds the account's prefix (`pages::databases::full_name`).
pub fn database_short_name(input: &str) -> Result<String, NameError> {
    let name = input.trim();
    let mut bytes = name.bytes();
    match bytes.next() {
        None => Err(NameError::Empty {
            what: "a database name",
        }),
        Some(first)
            if first.is_ascii_lowercase()
                && name.len() <= DATABASE_SHORT_MAX
                && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Ok(name.to_owned())
        }
        Some(_) => Err(NameError::Invalid(format!(
            "a database name starts with a letter a-z and continues with up to {} letters a-z, digits or underscores",
            DATABASE_SHORT_MAX - 1
        ))),
    }
}

/// Checks a mailbox name (the part before the `@`): `[a-z0-9][a-z0-9._-]{0,63}`, no
/// dot at the end and no two dots in a row.
pub fn mailbox_name(input: &str) -> Result<String, NameError> {
    let name = input.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(NameError::Empty {
            what: "a mailbox name",
        });
    }
    let shape_ok = name.len() <= MAILBOX_MAX
        && is_valid_username(&name)
        && !name.ends_with('.')
        && !name.contains("..");
    if shape_ok {
        Ok(name)
    } else {
        Err(NameError::Invalid(format!(
            "a mailbox name is up to {MAILBOX_MAX} letters a-z, digits, dots, hyphens or underscores, starting with a letter or digit"
        )))
    }
}

/// Checks a contact email address: one `@`, a plain (dot-atom) local part and a valid
/// domain name. The domain part is lowercased; the local part is kept as typed.
pub fn email_address(input: &str) -> Result<String, NameError> {
    let address = input.trim();
    if address.is_empty() {
        return Err(NameError::Empty {
            what: "an email address",
        });
    }
    let invalid = || {
        NameError::Invalid(format!(
            "\u{201c}{address}\u{201d} is not a valid email address; write it like name@example.com"
        ))
    };
    if address.len() > EMAIL_MAX {
        return Err(invalid());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err(invalid());
    };
    let local_ok = !local.is_empty()
        && local.len() <= MAILBOX_MAX
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    if !local_ok {
        return Err(invalid());
    }
    let domain = domain_name(domain).map_err(|_| invalid())?;
    Ok(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_directory_rule() {
        for good in ["carl", "a", "0", "ada.lovelace", "x-y_z", &"a".repeat(64)] {
            assert!(is_valid_username(good), "{good}");
        }
        for bad in [
            "",
            "Carl",
            ".carl",
            "-carl",
            "_x",
            "ca rl",
            "carl/",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn domain_names_are_normalised_and_checked() {
        assert_eq!(domain_name(" Example.COM ").as_deref(), Ok("example.com"));
        assert_eq!(
            domain_name("a-b.example.test").as_deref(),
            Ok("a-b.example.test")
        );
        for bad in [
            "",
            "localhost",
            "example.com.",
            "-a.com",
            "a-.com",
            "a..com",
            "exa mple.com",
            "ex_ample.com",
            "1.2.3.4",
            "<b>.com",
        ] {
            assert!(domain_name(bad).is_err(), "{bad}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(domain_name(&long_label).is_err());
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(domain_name(&long_name).is_err());
    }

    #[test]
    fn database_short_names_are_checked() {
        assert_eq!(database_short_name("shop_db1").as_deref(), Ok("shop_db1"));
        for bad in ["", "1shop", "Shop", "shop-db", &"a".repeat(33)] {
            assert!(database_short_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mailbox_names_are_checked() {
        assert_eq!(mailbox_name("Info").as_deref(), Ok("info"));
        for bad in ["", ".x", "x.", "a..b", "a b", "a@b"] {
            assert!(mailbox_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_addresses_are_checked() {
        assert_eq!(
            email_address("Carl.M+x@Example.Test").as_deref(),
            Ok("Carl.M+x@example.test")
        );
        for bad in [
            "",
            "carl",
            "@example.com",
            "carl@",
            "carl@@x.com",
            "a..b@x.com",
            "carl@localhost",
            "c d@x.com",
        ] {
            assert!(email_address(bad).is_err(), "{bad}");
        }
    }
}
