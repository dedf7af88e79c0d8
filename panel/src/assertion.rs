//! Trust: the identity assertion the proxy attaches to every request it forwards
//! (`X-Actas-Assertion`, a compact JWS described in docs/ASSERTION.md), its
//! verification, and the `Identity` it yields. The middleware here runs before
//! anything else: a request whose assertion does not verify gets a plain-text 401 and
//! reaches no handler. This module is the panel's only source of identity; it must
//! never read identity from anywhere else (cookies, query parameters,
//! `X-Forwarded-User` and the like) and never accept an algorithm other than EdDSA.
//! It also reads the proxy's request id from `X-Request-Id`, but only on a request whose
//! assertion verified, and only in the shape the proxy makes one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use thiserror::Error;
use tracing::Instrument;

use crate::names::is_valid_username;
use crate::unix_now;

/// The request header that carries the assertion.
pub const ASSERTION_HEADER: &str = "x-actas-assertion";
/// How far past `exp` an assertion is still accepted, for clock skew.
pub const LEEWAY_SECONDS: i64 = 5;
/// The longest lifetime (`exp - iat`) an assertion may claim.
pub const MAX_LIFETIME_SECONDS: i64 = 60;
/// Assertions are small; anything larger is refused before decoding.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// The request header that carries the proxy's request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The length of a proxy request id: 16 random bytes in unpadded base64url.
const REQUEST_ID_LEN: usize = 22;

/// A role in the proxy's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs the platform; may impersonate anyone.
    Admin,
    /// Sells hosting; may impersonate the customers they created.
    Reseller,
    /// Owns a hosting account.
    Customer,
}

impl Role {
    /// Reads a role as the assertion spells it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "reseller" => Some(Role::Reseller),
            "customer" => Some(Role::Customer),
            _ => None,
        }
    }

    /// The role as the assertion spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reseller => "reseller",
            Role::Customer => "customer",
        }
    }

    /// Admins and resellers are staff: they see the proxy's account directory.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Reseller)
    }
}

/// Who actually signed in, when they act as someone else (the `act` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The actor's username.
    pub username: String,
    /// The actor's role.
    pub role: Role,
    /// The actor's display name.
    pub name: String,
}

/// The verified identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Whom the request acts as: the account it reads and changes.
    pub subject: String,
    /// The subject's role.
    pub subject_role: Role,
    /// The subject's display name (the username when the assertion has no `name`).
    pub subject_name: String,
    /// The public id of the proxy session.
    pub session_id: String,
    /// Present only while a staff member impersonates the subject.
    pub actor: Option<Actor>,
    /// The impersonation id, while impersonating.
    pub impersonation_id: Option<String>,
    /// The proxy's request id (from `X-Request-Id`), also written in its audit record.
    pub request_id: Option<String>,
}

impl Identity {
    /// How the activity feed names whoever made a change: `carl`, or
    /// `ada (admin) on behalf of carl` while ada impersonates carl.
    pub fn describe(&self) -> String {
        describe_who(
            &self.subject,
            self.actor
                .as_ref()
                .map(|actor| (actor.username.as_str(), actor.role.as_str())),
        )
    }
}

/// The wording shared by live identities and stored activity rows.
pub fn describe_who(subject: &str, actor: Option<(&str, &str)>) -> String {
    match actor {
        Some((username, role)) => format!("{username} ({role}) on behalf of {subject}"),
        None => subject.to_owned(),
    }
}

/// Why an assertion was refused. The text is what the 401 response says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssertionError {
    /// No `X-Actas-Assertion` header, or an empty one.
    #[error("missing identity assertion")]
    Missing,
    /// The header appears more than once.
    #[error("more than one identity assertion")]
    Repeated,
    /// The header is not visible ASCII or is implausibly long.
    #[error("identity assertion is not a compact JWS")]
    NotCompact,
    /// The JOSE header is not base64url-encoded JSON with an `alg`.
    #[error("assertion header is malformed")]
    MalformedHeader,
    /// The JOSE header names an algorithm other than EdDSA.
    #[error("assertion algorithm must be EdDSA")]
    WrongAlgorithm,
    /// The signature does not verify under any configured key.
    #[error("assertion signature is invalid")]
    BadSignature,
    /// The payload is not base64url-encoded JSON of the expected shape.
    #[error("assertion claims are malformed")]
    MalformedClaims,
    /// A required claim is absent or empty.
    #[error("assertion lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("assertion issuer mismatch")]
    IssuerMismatch,
    /// `aud` is not (or does not contain) the configured audience.
    #[error("assertion audience mismatch")]
    AudienceMismatch,
    /// `exp` is in the past (beyond the leeway).
    #[error("assertion expired")]
    Expired,
    /// `iat` is in the future (beyond the leeway).
    #[error("assertion issued in the future")]
    IssuedInFuture,
    /// `exp - iat` is negative or larger than 60 seconds.
    #[error("assertion lifetime exceeds 60 seconds")]
    LifetimeTooLong,
    /// `role` is not admin, reseller or customer.
    #[error("assertion role is not admin, reseller or customer")]
    UnknownRole,
    /// `sub` is not a username.
    #[error("assertion subject is not a valid username")]
    BadSubject,
    /// `act` is present but not a valid actor.
    #[error("assertion actor is invalid")]
    BadActor,
}

/// Why the configured public keys could not be loaded.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read public key {path}: {cause}")]
    Read {
        /// The configured path.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The file is not an Ed25519 public key in PEM (SPKI) form.
    #[error("public key {path} is not an Ed25519 public key in PEM form (BEGIN PUBLIC KEY)")]
    NotEd25519 {
        /// The configured path.
        path: PathBuf,
    },
}

/// Checks assertions against the configured keys, audience and issuer.
pub struct AssertionVerifier {
    keys: Vec<DecodingKey>,
    audience: String,
    issuer: String,
}

impl std::fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ActorClaim {
    sub: Option<String>,
    role: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<i64>,
    exp: Option<i64>,
    sub: Option<String>,
    role: Option<String>,
    name: Option<String>,
    sid: Option<String>,
    act: Option<ActorClaim>,
    imp: Option<String>,
}

impl AssertionVerifier {
    /// Loads every configured PEM public key.
    pub fn load(key_paths: &[PathBuf], audience: &str, issuer: &str) -> Result<Self, KeyError> {
        let keys = key_paths
            .iter()
            .map(|path| load_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AssertionVerifier {
            keys,
            audience: audience.to_owned(),
            issuer: issuer.to_owned(),
        })
    }

    /// Verifies a compact JWS at time `now` (unix seconds) and returns the identity it
    /// carries. The algorithm is checked before any signature work.
    pub fn verify(&self, token: &str, now: i64) -> Result<Identity, AssertionError> {
        if token.is_empty() {
            return Err(AssertionError::Missing);
        }
        if token.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::NotCompact);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header_part, payload_part, signature_part] = parts[..] else {
            return Err(AssertionError::NotCompact);
        };
        if parts.iter().any(|part| part.is_empty()) {
            return Err(AssertionError::NotCompact);
        }

        let header: JoseHeader = decode_json(header_part).ok_or(AssertionError::MalformedHeader)?;
        if header.alg != "EdDSA" {
            return Err(AssertionError::WrongAlgorithm);
        }

        let signed = &token[..header_part.len() + 1 + payload_part.len()];
        let verified = self.keys.iter().any(|key| {
            jsonwebtoken::crypto::verify(signature_part, signed.as_bytes(), key, Algorithm::EdDSA)
                .unwrap_or(false)
        });
        if !verified {
            return Err(AssertionError::BadSignature);
        }

        let claims: Claims = decode_json(payload_part).ok_or(AssertionError::MalformedClaims)?;
        self.check_claims(claims, now)
    }

    fn check_claims(&self, claims: Claims, now: i64) -> Result<Identity, AssertionError> {
        let issuer = claims.iss.ok_or(AssertionError::MissingClaim("iss"))?;
        if issuer != self.issuer {
            return Err(AssertionError::IssuerMismatch);
        }
        let audience_ok = match claims.aud.ok_or(AssertionError::MissingClaim("aud"))? {
            Audience::One(audience) => audience == self.audience,
            Audience::Many(audiences) => audiences.contains(&self.audience),
        };
        if !audience_ok {
            return Err(AssertionError::AudienceMismatch);
        }

        let expires = claims.exp.ok_or(AssertionError::MissingClaim("exp"))?;
        let issued = claims.iat.ok_or(AssertionError::MissingClaim("iat"))?;
        if now > expires.saturating_add(LEEWAY_SECONDS) {
            return Err(AssertionError::Expired);
        }
        if issued > now.saturating_add(LEEWAY_SECONDS) {
            return Err(AssertionError::IssuedInFuture);
        }
        let lifetime = expires.saturating_sub(issued);
        if !(0..=MAX_LIFETIME_SECONDS).contains(&lifetime) {
            return Err(AssertionError::LifetimeTooLong);
        }

        let subject = non_empty(claims.sub).ok_or(AssertionError::MissingClaim("sub"))?;
        let role = non_empty(claims.role).ok_or(AssertionError::MissingClaim("role"))?;
        let session_id = non_empty(claims.sid).ok_or(AssertionError::MissingClaim("sid"))?;
        let subject_role = Role::parse(&role).ok_or(AssertionError::UnknownRole)?;
        if !is_valid_username(&subject) {
            return Err(AssertionError::BadSubject);
        }
        let actor = claims.act.map(check_actor).transpose()?;

        Ok(Identity {
            subject_name: non_empty(claims.name).unwrap_or_else(|| subject.clone()),
            subject,
            subject_role,
            session_id,
            actor,
            impersonation_id: non_empty(claims.imp),
            // Not a claim: an assertion is reused for a second of a session's requests.
            // The middleware fills it in from `X-Request-Id`.
            request_id: None,
        })
    }
}

fn check_actor(claim: ActorClaim) -> Result<Actor, AssertionError> {
    let username = non_empty(claim.sub).ok_or(AssertionError::BadActor)?;
    if !is_valid_username(&username) {
        return Err(AssertionError::BadActor);
    }
    let role = claim
        .role
        .as_deref()
        .and_then(Role::parse)
        .ok_or(AssertionError::BadActor)?;
    Ok(Actor {
        name: non_empty(claim.name).unwrap_or_else(|| username.clone()),
        username,
        role,
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn load_key(path: &Path) -> Result<DecodingKey, KeyError> {
    let pem = std::fs::read(path).map_err(|cause| KeyError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let not_ed25519 = || KeyError::NotEd25519 {
        path: path.to_owned(),
    };
    let key = DecodingKey::from_ed_pem(&pem).map_err(|_| not_ed25519())?;
    // jsonwebtoken slices the first 32 bytes when verifying; refuse anything else now.
    match key.try_get_as_bytes() {
        Ok(bytes) if bytes.len() == 32 => Ok(key),
        _ => Err(not_ed25519()),
    }
}

/// The middleware in front of every route: verifies the assertion and stores the
/// `Identity` in the request's extensions, or answers 401 without calling the handler.
pub async fn require_assertion(
    State(verifier): State<Arc<AssertionVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let outcome = read_header(&request).and_then(|token| verifier.verify(token, unix_now()));
    match outcome {
        Ok(mut identity) => {
            identity.request_id = read_request_id(&request);
            // Every log line of the request carries both identities and the proxy's
            // request id, so it can be matched with the proxy's audit record.
            let span = tracing::info_span!(
                "request",
                subject = %identity.subject,
                actor = identity.actor.as_ref().map(|actor| actor.username.as_str()),
                request_id = identity.request_id.as_deref(),
            );
            request.extensions_mut().insert(identity);
            next.run(request).instrument(span).await
        }
        Err(error) => {
            tracing::warn!(
                reason = %error,
                method = %request.method(),
                path = %request.uri().path(),
                "identity assertion refused"
            );
            refusal(&error)
        }
    }
}

fn read_header(request: &Request) -> Result<&str, AssertionError> {
    let mut values = request.headers().get_all(ASSERTION_HEADER).iter();
    let value = values.next().ok_or(AssertionError::Missing)?;
    if values.next().is_some() {
        return Err(AssertionError::Repeated);
    }
    value.to_str().map_err(|_| AssertionError::NotCompact)
}

/// The proxy's request id, when the request carries exactly one `X-Request-Id` in the shape
/// the proxy makes (`session::random_id`: 22 base64url characters, not starting with `-`).
/// Anything else is `None`: the value goes into logs and the activity table, so nothing
/// longer or stranger is taken, even though only the proxy can reach the panel.
fn read_request_id(request: &Request) -> Option<String> {
    let mut values = request.headers().get_all(REQUEST_ID_HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let bytes = value.as_bytes();
    let well_formed = bytes.len() == REQUEST_ID_LEN
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return None;
    }
    value.to_str().ok().map(str::to_owned)
}

/// The 401 answer: plain text, one short line.
pub fn refusal(error: &AssertionError) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{error}\n"),
    )
        .into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| refusal(&AssertionError::Missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> AssertionVerifier {
        AssertionVerifier {
            keys: Vec::new(),
            audience: "actas-panel".to_owned(),
            issuer: "actas".to_owned(),
        }
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: Some("actas".to_owned()),
            aud: Some(Audience::One("actas-panel".to_owned())),
            iat: Some(now),
            exp: Some(now + 30),
            sub: Some("carl".to_owned()),
            role: Some("customer".to_owned()),
            name: Some("Carl".to_owned()),
            sid: Some("s1".to_owned()),
            act: None,
            imp: None,
        }
    }

    #[test]
    fn good_claims_yield_an_identity() {
        let identity = verifier().check_claims(claims(1000), 1000).unwrap();
        assert_eq!(identity.subject, "carl");
        assert_eq!(identity.subject_role, Role::Customer);
        assert_eq!(identity.describe(), "carl");
    }

    #[test]
    fn an_audience_list_containing_the_panel_is_accepted() {
        let mut c = claims(1000);
        c.aud = Some(Audience::Many(vec![
            "x".to_owned(),
            "actas-panel".to_owned(),
        ]));
        assert!(verifier().check_claims(c, 1000).is_ok());
    }

    #[test]
    fn expiry_has_five_seconds_of_leeway() {
        assert!(verifier().check_claims(claims(1000), 1035).is_ok());
        assert_eq!(
            verifier().check_claims(claims(1000), 1036).unwrap_err(),
            AssertionError::Expired
        );
    }

    #[test]
    fn lifetime_is_capped_and_never_negative() {
        let mut long = claims(1000);
        long.exp = Some(1061);
        assert_eq!(
            verifier().check_claims(long, 1000).unwrap_err(),
            AssertionError::LifetimeTooLong
        );
        let mut negative = claims(1000);
        negative.exp = Some(999);
        negative.iat = Some(1000);
        assert_eq!(
            verifier().check_claims(negative, 998).unwrap_err(),
            AssertionError::LifetimeTooLong
        );
    }

    #[test]
    fn an_actor_is_described_on_behalf_of_the_subject() {
        let mut c = claims(1000);
        c.act = Some(ActorClaim {
            sub: Some("ada".to_owned()),
            role: Some("admin".to_owned()),
            name: None,
        });
        let identity = verifier().check_claims(c, 1000).unwrap();
        assert_eq!(identity.describe(), "ada (admin) on behalf of carl");
    }

    #[test]
    fn an_actor_with_a_bad_role_is_refused() {
        let mut c = claims(1000);
        c.act = Some(ActorClaim {
            sub: Some("ada".to_owned()),
            role: Some("root".to_owned()),
            name: None,
        });
        assert_eq!(
            verifier().check_claims(c, 1000).unwrap_err(),
            AssertionError::BadActor
        );
    }

    fn with_request_ids(ids: &[&[u8]]) -> Request {
        let mut builder = Request::builder();
        for id in ids {
            builder = builder.header(REQUEST_ID_HEADER, *id);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_request_id_is_taken_only_in_the_proxys_shape() {
        let good = "Zm9vYmFyYmF6cXV4cXV1eA";
        assert_eq!(
            read_request_id(&with_request_ids(&[good.as_bytes()])).as_deref(),
            Some(good)
        );
        assert_eq!(
            read_request_id(&with_request_ids(&[b"a-b_c-d_e-f_g-h_i-j_kl"])).as_deref(),
            Some("a-b_c-d_e-f_g-h_i-j_kl")
        );
        for bad in [
            &b""[..],
            b"request-1",
            b"Zm9vYmFyYmF6cXV4cXV1eAA",
            b"-m9vYmFyYmF6cXV4cXV1eA",
            b"Zm9vYmFyYmF6cXV4cXV1e=",
            b"Zm9vYmFyYmF6cXV4cX/1eA",
            b"Zm9vYmFyYmF6cXV4cXV1e ",
            b"Zm9vYmFyYmF6cXV4cXV1\xc3\xa9",
        ] {
            assert_eq!(read_request_id(&with_request_ids(&[bad])), None, "{bad:?}");
        }
        assert_eq!(read_request_id(&with_request_ids(&[])), None);
        assert_eq!(
            read_request_id(&with_request_ids(&[good.as_bytes(), good.as_bytes()])),
            None,
            "a repeated header is ambiguous"
        );
    }

    #[test]
    fn a_rid_claim_from_an_older_proxy_is_ignored_not_refused() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"iss":"actas","aud":"actas-panel","iat":1000,"exp":1030,"sub":"carl","role":"customer","sid":"s1","rid":"Zm9vYmFyYmF6cXV4cXV1eA"}"#,
        );
        let claims: Claims = decode_json(&payload).expect("claims with rid still decode");
        let identity = verifier().check_claims(claims, 1000).unwrap();
        assert_eq!(
            identity.request_id, None,
            "the request id is a header, not a claim"
        );
    }

    #[test]
    fn structure_and_algorithm_are_checked_before_keys() {
        let v = verifier();
        assert_eq!(v.verify("", 0).unwrap_err(), AssertionError::Missing);
        assert_eq!(v.verify("a.b", 0).unwrap_err(), AssertionError::NotCompact);
        assert_eq!(v.verify("a..c", 0).unwrap_err(), AssertionError::NotCompact);
        assert_eq!(
            v.verify("!!.b.c", 0).unwrap_err(),
            AssertionError::MalformedHeader
        );
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(
            v.verify(&format!("{none}.e30.c2ln"), 0).unwrap_err(),
            AssertionError::WrongAlgorithm
        );
    }
}
