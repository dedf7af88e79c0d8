//! The audit log: what happened, by whom, as whom. Every request the proxy handles and
//! every sign-in and impersonation event becomes one record.
//!
//! Records are chained per instance: each carries the hash of the one before it, so a
//! changed, deleted or reordered record breaks the chain that `actas audit verify` walks.
//! Writing is batched off the request path by [`writer::AuditLog`]; a request that must not
//! proceed before its record is durable waits for the writer's acknowledgement instead.
//! This module never records a password, a session token, a cookie or an Authorization
//! header, and it redacts configured query parameters from recorded paths.

pub mod chain;
pub mod writer;

use serde::Serialize;

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A request the proxy handled (forwarded or served itself).
    Request,
    /// A successful sign-in.
    Login,
    /// A refused sign-in.
    LoginFailed,
    /// A sign-out.
    Logout,
    /// An impersonation began.
    ImpersonationStart,
    /// An impersonation ended (stopped, expired, logout, revoked).
    ImpersonationStop,
    /// An impersonation was refused by policy.
    ImpersonationDenied,
    /// The policies were reloaded (or a reload was refused).
    PolicyReload,
}

impl Kind {
    /// The name written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Login => "login",
            Kind::LoginFailed => "login.failed",
            Kind::Logout => "logout",
            Kind::ImpersonationStart => "impersonation.start",
            Kind::ImpersonationStop => "impersonation.stop",
            Kind::ImpersonationDenied => "impersonation.denied",
            Kind::PolicyReload => "policy.reload",
        }
    }

    /// Every kind, for filters.
    pub const ALL: [Kind; 8] = [
        Kind::Request,
        Kind::Login,
        Kind::LoginFailed,
        Kind::Logout,
        Kind::ImpersonationStart,
        Kind::ImpersonationStop,
        Kind::ImpersonationDenied,
        Kind::PolicyReload,
    ];

    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A record before the writer numbers and chains it.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// Record id (a UUID).
    pub id: String,
    /// When (ms since the epoch).
    pub ts: i64,
    /// Kind name, see [`Kind`].
    pub kind: &'static str,
    /// Who signed in.
    pub actor: Option<String>,
    /// Whom the request acted as (equal to the actor outside impersonation).
    pub subject: Option<String>,
    /// Public session id.
    pub session_id: Option<String>,
    /// Impersonation id.
    pub impersonation_id: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Host header.
    pub host: Option<String>,
    /// Path and query, redacted.
    pub path: Option<String>,
    /// Response status (absent on a write-ahead record).
    pub status: Option<i64>,
    /// Body bytes sent.
    pub bytes_out: Option<i64>,
    /// Time to last byte.
    pub duration_ms: Option<i64>,
    /// Client address.
    pub client_ip: Option<String>,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// allow / deny / an error word.
    pub decision: Option<String>,
    /// Why: the impersonation reason, the stop cause, the policy that decided, the error.
    pub reason: Option<String>,
}

impl Event {
    /// A new event of `kind`, stamped now, with a fresh id.
    pub fn new(kind: Kind) -> Event {
        Event {
            // Time-ordered (UUIDv7): ids sort in the order the events happened.
            id: uuid::Uuid::now_v7().to_string(),
            ts: crate::store::now_ms(),
            kind: kind.as_str(),
            ..Event::default()
        }
    }
}

/// A record as stored: an event with its place in its instance's chain.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// Record id.
    pub id: String,
    /// The instance whose chain holds it.
    pub instance: String,
    /// Its number in that chain, from 1.
    pub seq: i64,
    /// When (ms since the epoch).
    pub ts: i64,
    /// Kind.
    pub kind: String,
    /// Who signed in.
    pub actor: Option<String>,
    /// Whom the request acted as.
    pub subject: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Impersonation id.
    pub impersonation_id: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Method.
    pub method: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// Status.
    pub status: Option<i64>,
    /// Bytes out.
    pub bytes_out: Option<i64>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Decision.
    pub decision: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// The previous record's hash in this chain (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's canonical bytes.
    pub hash: String,
}

/// Replaces the values of the named query parameters with `REDACTED`.
pub fn redact_path(path_and_query: &str, names: &[String]) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    if names.is_empty() {
        return path_and_query.to_owned();
    }
    let query = query
        .split('&')
        .map(|pair| {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            if names.iter().any(|n| n.eq_ignore_ascii_case(&decoded)) {
                format!("{k}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_query_parameters_are_redacted_and_others_kept() {
        let names = vec!["token".to_owned(), "password".to_owned()];
        assert_eq!(
            redact_path("/x?a=1&token=s3cret&b=2&PassWord=hunter2", &names),
            "/x?a=1&token=REDACTED&b=2&PassWord=REDACTED"
        );
        assert_eq!(redact_path("/x?%74oken=abc", &names), "/x?%74oken=REDACTED");
        assert_eq!(redact_path("/plain", &names), "/plain");
        assert_eq!(redact_path("/x?a=1", &[]), "/x?a=1");
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("nope"), None);
    }
}
