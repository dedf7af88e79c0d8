//! The identity assertion: a short-lived Ed25519-signed JWS that tells the panel whom a
//! request acts as, and while impersonating, who is really acting (RFC 8693 `act`).
//!
//! The proxy is the only holder of the signing key; the panel only verifies. This module
//! mints assertions and reads key files; it never takes identity from a request.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;

/// The header that carries the assertion.
pub const HEADER: &str = "x-actas-assertion";

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{path}: cannot read the signing key: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 PEM key.
    #[error("{path}: not an Ed25519 private key in PKCS#8 PEM (make one with `actas certs dev`): {message}")]
    Parse {
        /// The file.
        path: String,
        /// The error.
        message: String,
    },
}

/// The actor claim.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Actor<'a> {
    /// Who signed in.
    pub sub: &'a str,
    /// Their role.
    pub role: &'a str,
    /// Their display name.
    pub name: &'a str,
}

/// The claims of one assertion.
#[derive(Serialize, Debug, Clone)]
pub struct Claims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Audience.
    pub aud: &'a str,
    /// Issued at (s).
    pub iat: i64,
    /// Expires (s).
    pub exp: i64,
    /// Subject username.
    pub sub: &'a str,
    /// Subject role.
    pub role: &'a str,
    /// Subject display name.
    pub name: &'a str,
    /// Session id.
    pub sid: &'a str,
    /// The actor while impersonating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor<'a>>,
    /// The impersonation id while impersonating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imp: Option<&'a str>,
}

/// Assertions signed in the current second, per session: one signature per session and
/// second instead of one per request. An entry is reused only for the same `iat`, subject
/// and impersonation, so a reused assertion is exactly the one a fresh signing would give.
pub struct AssertionCache {
    /// Keyed by session id.
    entries: std::sync::Mutex<std::collections::HashMap<String, Signed>>,
}

/// One cached assertion and what it was signed for.
struct Signed {
    iat: i64,
    sub: String,
    imp: String,
    /// Ready to go into the request: validated once here, and cloned by reference count.
    token: http::HeaderValue,
}

impl Default for AssertionCache {
    fn default() -> Self {
        AssertionCache {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl AssertionCache {
    /// The assertion for `claims` as a header value, signed now or reused from earlier in
    /// the same second.
    pub fn get(&self, signer: &Signer25519, claims: &Claims<'_>) -> http::HeaderValue {
        let imp = claims.imp.unwrap_or("");
        if let Ok(entries) = self.entries.lock() {
            if let Some(e) = entries.get(claims.sid) {
                if e.iat == claims.iat && e.sub == claims.sub && e.imp == imp {
                    return e.token.clone();
                }
            }
        }
        // A compact JWS is base64url and dots: always a valid header value. Were it ever
        // not, an empty assertion makes the panel refuse the request rather than trust it.
        let token = http::HeaderValue::try_from(signer.sign(claims))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= 100_000 {
                let now = claims.iat;
                entries.retain(|_, e| e.iat == now);
            }
            entries.insert(
                claims.sid.to_owned(),
                Signed {
                    iat: claims.iat,
                    sub: claims.sub.to_owned(),
                    imp: imp.to_owned(),
                    token: token.clone(),
                },
            );
        }
        token
    }
}

/// Signs assertions.
pub struct Signer25519 {
    key: SigningKey,
    header_b64: String,
    kid: String,
}

/// The key id of a public key: 16 hex digits of SHA-256 over its 32 raw bytes.
pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&crate::digest::sha256(&[public])[..8])
}

impl Signer25519 {
    /// Loads a PKCS#8 PEM Ed25519 private key.
    pub fn load(path: &Path) -> Result<Signer25519, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Signer25519::new(key))
    }

    /// Wraps a key.
    pub fn new(key: SigningKey) -> Signer25519 {
        let kid = key_id(key.verifying_key().as_bytes());
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
        Signer25519 {
            header_b64: URL_SAFE_NO_PAD.encode(header),
            kid,
            key,
        }
    }

    /// The private key's 32-byte seed, to derive the deployment's other secrets from (every
    /// instance of a deployment has the same signing key).
    pub fn seed(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The key id put in every header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as SPKI PEM, for the panel's configuration.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap_or_default()
    }

    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims<'_>) -> String {
        // Serializing plain strings and integers cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    fn claims<'a>(act: Option<Actor<'a>>) -> Claims<'a> {
        Claims {
            iss: "actas",
            aud: "actas-panel",
            iat: 100,
            exp: 130,
            sub: "carl",
            role: "customer",
            name: "Carl",
            sid: "s1",
            act,
            imp: None,
        }
    }

    #[test]
    fn a_signed_assertion_is_a_compact_jws_that_verifies() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signer = Signer25519::new(key.clone());
        let token = signer.sign(&claims(None));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], signer.kid());
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        key.verifying_key().verify(signed.as_bytes(), &sig).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["sub"], "carl");
        assert!(body.get("act").is_none());
    }

    #[test]
    fn the_cache_reuses_an_assertion_only_within_the_same_second_subject_and_impersonation() {
        let signer = Signer25519::new(SigningKey::from_bytes(&[3u8; 32]));
        let cache = AssertionCache::default();
        let a = cache.get(&signer, &claims(None));
        assert_eq!(a, cache.get(&signer, &claims(None)));
        let mut later = claims(None);
        later.iat += 1;
        later.exp += 1;
        assert_ne!(a, cache.get(&signer, &later));
        let mut other = claims(None);
        other.sub = "cora";
        assert_ne!(a, cache.get(&signer, &other));
        let mut imp = claims(None);
        imp.imp = Some("i1");
        assert_ne!(a, cache.get(&signer, &imp));
    }

    #[test]
    fn the_actor_claim_is_present_while_impersonating() {
        let signer = Signer25519::new(SigningKey::from_bytes(&[1u8; 32]));
        let token = signer.sign(&claims(Some(Actor {
            sub: "ada",
            role: "admin",
            name: "Ada",
        })));
        let payload = token.split('.').nth(1).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(body["act"]["sub"], "ada");
        assert_eq!(body["act"]["role"], "admin");
    }
}
