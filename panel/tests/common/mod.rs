//! Shared by the integration tests: a panel on a temporary data folder with test
//! Ed25519 keys, a minter for assertions (good ones and every kind of bad one), and a
//! client that drives the Router with `oneshot`. Nothing here talks to a socket.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use actas_panel::{app, Config, PanelState};
use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use tempfile::TempDir;
use tower::ServiceExt;

/// The header the proxy sets.
pub const ASSERTION: &str = "x-actas-assertion";

/// A signing key the tests control, made from a fixed seed.
pub fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// A running panel (no socket: the Router itself) on a temporary data folder.
pub struct Panel {
    pub dir: TempDir,
    pub state: PanelState,
    pub keys: Vec<SigningKey>,
    pub key_paths: Vec<PathBuf>,
}

impl Panel {
    /// A panel that trusts key seed 1.
    pub async fn start() -> Panel {
        Panel::trusting(&[1]).await
    }

    /// A panel that trusts the keys with these seeds.
    pub async fn trusting(seeds: &[u8]) -> Panel {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys: Vec<SigningKey> = seeds.iter().map(|seed| signing_key(*seed)).collect();
        let key_paths: Vec<PathBuf> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let path = dir.path().join(format!("assertion-{index}.pub.pem"));
                let pem = key
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("pem");
                std::fs::write(&path, pem).expect("write key");
                path
            })
            .collect();
        let config = Config::with_keys(dir.path().join("data"), key_paths.clone());
        let state = PanelState::open(&config).await.expect("panel opens");
        Panel {
            dir,
            state,
            keys,
            key_paths,
        }
    }

    pub fn app(&self) -> Router {
        app(self.state.clone())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `data_dir/files/<username>`
    pub fn files_of(&self, username: &str) -> PathBuf {
        self.data_dir().join("files").join(username)
    }

    /// The store's account called `username` (it must exist).
    pub async fn account(&self, username: &str) -> actas_panel::store::Account {
        self.state
            .store
            .find_account(username)
            .await
            .expect("store")
            .expect("account")
    }

    /// A folder beside the data folder, outside every account's root.
    pub fn outside(&self) -> PathBuf {
        let path = self.dir.path().join("outside");
        std::fs::create_dir_all(&path).expect("outside dir");
        path
    }

    /// A good assertion for `who`, signed with the first key.
    pub fn token(&self, who: &Who) -> String {
        mint(&self.keys[0], &who.claims())
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app().oneshot(request).await.expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET with a good assertion for `who`.
    pub async fn get(&self, who: &Who, uri: &str) -> Reply {
        self.get_with(Some(&self.token(who)), uri).await
    }

    /// GET with the given raw assertion header (or none).
    pub async fn get_with(&self, assertion: Option<&str>, uri: &str) -> Reply {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(assertion) = assertion {
            request = request.header(ASSERTION, assertion);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    /// POST an urlencoded form with a good assertion for `who`.
    pub async fn post(&self, who: &Who, uri: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_with(Some(&self.token(who)), uri, fields).await
    }

    /// POST an urlencoded form with the given raw assertion header (or none).
    pub async fn post_with(
        &self,
        assertion: Option<&str>,
        uri: &str,
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(assertion) = assertion {
            request = request.header(ASSERTION, assertion);
        }
        self.send(request.body(Body::from(form(fields))).expect("request"))
            .await
    }

    /// POST multipart parts with a good assertion for `who`.
    pub async fn upload(&self, who: &Who, parts: &[Part<'_>]) -> Reply {
        self.upload_at(who, "/files/upload", parts).await
    }

    /// POST multipart parts to `uri` (the upload route with a query) for `who`.
    pub async fn upload_at(&self, who: &Who, uri: &str, parts: &[Part<'_>]) -> Reply {
        let (content_type, body) = multipart(parts);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .header(ASSERTION, self.token(who))
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn location(&self) -> String {
        self.header("location")
    }

    /// Asserts a Post/Redirect/Get answer to `prefix` and returns the location.
    #[track_caller]
    pub fn assert_redirect(&self, prefix: &str) -> String {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.text());
        let location = self.location();
        assert!(
            location.starts_with(prefix),
            "redirected to {location}, expected {prefix}"
        );
        location
    }
}

/// Who a request acts as.
#[derive(Debug, Clone)]
pub struct Who {
    pub subject: String,
    pub role: String,
    pub actor: Option<(String, String)>,
    /// The impersonation id sent while `actor` impersonates (`imp-1` unless changed).
    pub impersonation: String,
}

impl Who {
    pub fn customer(username: &str) -> Who {
        Who {
            subject: username.to_owned(),
            role: "customer".to_owned(),
            actor: None,
            impersonation: "imp-1".to_owned(),
        }
    }

    pub fn with_role(username: &str, role: &str) -> Who {
        Who {
            subject: username.to_owned(),
            role: role.to_owned(),
            actor: None,
            impersonation: "imp-1".to_owned(),
        }
    }

    /// `actor` (with `actor_role`) impersonating the customer `subject`.
    pub fn impersonated(subject: &str, actor: &str, actor_role: &str) -> Who {
        Who {
            subject: subject.to_owned(),
            role: "customer".to_owned(),
            actor: Some((actor.to_owned(), actor_role.to_owned())),
            impersonation: "imp-1".to_owned(),
        }
    }

    /// The same identity in another impersonation.
    pub fn in_impersonation(mut self, id: &str) -> Who {
        self.impersonation = id.to_owned();
        self
    }

    /// The claims the proxy would send for this identity.
    pub fn claims(&self) -> Value {
        let issued = now();
        let mut claims = json!({
            "iss": "actas",
            "aud": "actas-panel",
            "iat": issued,
            "exp": issued + 30,
            "sub": self.subject,
            "role": self.role,
            "name": format!("{} Display", self.subject),
            "sid": "session-1",
            "rid": "request-1",
        });
        if let Some((actor, role)) = &self.actor {
            claims["act"] = json!({"sub": actor, "role": role, "name": format!("{actor} Display")});
            claims["imp"] = json!(self.impersonation);
        }
        claims
    }
}

/// `base64url(json)`
pub fn b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

/// A compact JWS with the proper EdDSA header.
pub fn mint(key: &SigningKey, claims: &Value) -> String {
    mint_with_header(
        key,
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": "test"}),
        claims,
    )
}

/// A compact JWS signed with Ed25519 over whatever header is given.
pub fn mint_with_header(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

/// An urlencoded form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// One multipart part.
pub enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

/// A multipart/form-data body and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----actas-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, filename, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Reads a file under `root`, or `None`.
pub fn read(root: &Path, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(root.join(rel)).ok()
}

/// The names of the entries of `dir`, in the order the directory lists them.
pub fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}
