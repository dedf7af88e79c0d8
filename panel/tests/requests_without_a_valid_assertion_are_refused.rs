//! Every way an identity assertion can be wrong gets a plain-text 401, and such a
//! request changes nothing: no account is provisioned, no domain is added. Identity is
//! never taken from anywhere but the assertion. A second configured key is accepted.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{b64, mint, mint_with_header, now, signing_key, Panel, Who, ASSERTION};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn claims() -> Value {
    Who::customer("carl").claims()
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut value = claims();
    change(&mut value);
    value
}

/// Every bad assertion, with the words the 401 must contain.
fn bad_assertions(panel: &Panel) -> Vec<(&'static str, String, &'static str)> {
    let key = &panel.keys[0];
    let good = panel.token(&Who::customer("carl"));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let hs256_pem = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .expect("hs256");
    let hs256_raw = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(key.verifying_key().as_bytes()),
    )
    .expect("hs256");
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    // Tampered: same header and signature, payload names another subject.
    let tampered = {
        let other = b64(Who::customer("dora").claims().to_string().as_bytes());
        format!("{}.{}.{}", parts[0], other, parts[2])
    };
    parts[2] = b64(&[0u8; 64]);
    let zero_signature = parts.join(".");

    vec![
        ("empty", String::new(), "missing identity assertion"),
        ("two parts", "abc.def".to_owned(), "not a compact JWS"),
        ("four parts", format!("{good}.xyz"), "not a compact JWS"),
        (
            "garbage base64",
            "!!!.@@@.###".to_owned(),
            "header is malformed",
        ),
        (
            "header not json",
            format!("{}.{payload}.c2ln", b64(b"hello")),
            "header is malformed",
        ),
        (
            "alg none, no signature",
            format!("{none_header}.{payload}."),
            "not a compact JWS",
        ),
        (
            "alg none, some signature",
            format!("{none_header}.{payload}.c2ln"),
            "algorithm must be EdDSA",
        ),
        (
            "alg missing",
            mint_with_header(key, &json!({"typ": "JWT"}), &claims()),
            "header is malformed",
        ),
        (
            "alg eddsa lowercase",
            mint_with_header(key, &json!({"alg": "eddsa"}), &claims()),
            "algorithm must be EdDSA",
        ),
        (
            "alg ES256",
            mint_with_header(key, &json!({"alg": "ES256"}), &claims()),
            "algorithm must be EdDSA",
        ),
        (
            "HS256 with the public key PEM",
            hs256_pem,
            "algorithm must be EdDSA",
        ),
        (
            "HS256 with the raw public key",
            hs256_raw,
            "algorithm must be EdDSA",
        ),
        (
            "wrong key",
            mint(&signing_key(99), &claims()),
            "signature is invalid",
        ),
        ("zero signature", zero_signature, "signature is invalid"),
        ("tampered payload", tampered, "signature is invalid"),
        (
            "payload not json",
            mint_raw(key, b"not json"),
            "claims are malformed",
        ),
        (
            "expired",
            mint(
                key,
                &with(|c| {
                    c["iat"] = json!(now() - 100);
                    c["exp"] = json!(now() - 40);
                }),
            ),
            "assertion expired",
        ),
        (
            "lifetime over 60 s",
            mint(
                key,
                &with(|c| {
                    c["iat"] = json!(now());
                    c["exp"] = json!(now() + 61);
                }),
            ),
            "lifetime exceeds 60 seconds",
        ),
        (
            "issued in the future",
            mint(
                key,
                &with(|c| {
                    c["iat"] = json!(now() + 30);
                    c["exp"] = json!(now() + 60);
                }),
            ),
            "issued in the future",
        ),
        (
            "wrong aud",
            mint(key, &with(|c| c["aud"] = json!("someone-else"))),
            "assertion audience mismatch",
        ),
        (
            "wrong iss",
            mint(key, &with(|c| c["iss"] = json!("evil"))),
            "assertion issuer mismatch",
        ),
        (
            "missing aud",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("aud"));
                }),
            ),
            "lacks the aud claim",
        ),
        (
            "missing exp",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                }),
            ),
            "lacks the exp claim",
        ),
        (
            "missing iat",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("iat"));
                }),
            ),
            "lacks the iat claim",
        ),
        (
            "missing sub",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("sub"));
                }),
            ),
            "lacks the sub claim",
        ),
        (
            "empty sub",
            mint(key, &with(|c| c["sub"] = json!(""))),
            "lacks the sub claim",
        ),
        (
            "missing role",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("role"));
                }),
            ),
            "lacks the role claim",
        ),
        (
            "missing sid",
            mint(
                key,
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("sid"));
                }),
            ),
            "lacks the sid claim",
        ),
        (
            "bad role",
            mint(key, &with(|c| c["role"] = json!("root"))),
            "role is not admin, reseller or customer",
        ),
        (
            "role wrong case",
            mint(key, &with(|c| c["role"] = json!("Admin"))),
            "role is not admin, reseller or customer",
        ),
        (
            "uppercase username",
            mint(key, &with(|c| c["sub"] = json!("Carl"))),
            "subject is not a valid username",
        ),
        (
            "path in username",
            mint(key, &with(|c| c["sub"] = json!("../etc"))),
            "subject is not a valid username",
        ),
        (
            "slash in username",
            mint(key, &with(|c| c["sub"] = json!("carl/x"))),
            "subject is not a valid username",
        ),
        (
            "username too long",
            mint(key, &with(|c| c["sub"] = json!("a".repeat(65)))),
            "subject is not a valid username",
        ),
        (
            "sub not a string",
            mint(key, &with(|c| c["sub"] = json!(42))),
            "claims are malformed",
        ),
        (
            "actor with bad role",
            mint(
                key,
                &with(|c| c["act"] = json!({"sub": "ada", "role": "god"})),
            ),
            "actor is invalid",
        ),
        (
            "actor without sub",
            mint(key, &with(|c| c["act"] = json!({"role": "admin"}))),
            "actor is invalid",
        ),
    ]
}

fn mint_raw(key: &ed25519_dalek::SigningKey, payload: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let input = format!("{}.{}", b64(br#"{"alg":"EdDSA"}"#), b64(payload));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

#[tokio::test]
async fn a_request_without_an_assertion_is_refused_with_plain_text() {
    let panel = Panel::start().await;
    for uri in [
        "/",
        "/domains",
        "/files",
        "/no/such/page",
        "/_actas/accounts",
    ] {
        let reply = panel.get_with(None, uri).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            reply.header("content-type").starts_with("text/plain"),
            "{uri}"
        );
        assert_eq!(reply.text(), "missing identity assertion\n");
    }
}

#[tokio::test]
async fn every_malformed_or_untrusted_assertion_is_refused_and_changes_nothing() {
    let panel = Panel::start().await;
    for (case, token, reason) in bad_assertions(&panel) {
        let reply = panel.get_with(Some(&token), "/").await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "GET, {case}: {}",
            reply.text()
        );
        assert!(
            reply.header("content-type").starts_with("text/plain"),
            "{case}"
        );
        assert!(
            reply.text().contains(reason),
            "{case}: got {:?}",
            reply.text()
        );

        let reply = panel
            .post_with(Some(&token), "/domains", &[("name", "evil.example.com")])
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "POST, {case}");

        let reply = panel
            .post_with(Some(&token), "/files/delete", &[("path", "README.txt")])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "POST delete, {case}"
        );
    }
    for username in ["carl", "dora"] {
        assert_eq!(
            panel
                .state
                .store
                .find_account(username)
                .await
                .expect("store"),
            None
        );
        assert!(
            !panel.files_of(username).exists(),
            "{username} was provisioned"
        );
    }
}

#[tokio::test]
async fn a_refused_post_leaves_an_existing_account_untouched() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel.get(&carl, "/").await;
    let expired = mint(
        &panel.keys[0],
        &with(|c| {
            c["iat"] = json!(now() - 100);
            c["exp"] = json!(now() - 50);
        }),
    );
    let reply = panel
        .post_with(Some(&expired), "/domains", &[("name", "evil.example.com")])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = panel
        .post_with(Some(&expired), "/files/delete", &[("path", "README.txt")])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let account = panel
        .state
        .store
        .find_account("carl")
        .await
        .expect("store")
        .expect("carl exists");
    let domains = panel
        .state
        .store
        .list_domains(account.id)
        .await
        .expect("domains");
    assert!(domains
        .iter()
        .all(|domain| domain.name != "evil.example.com"));
    assert!(panel.files_of("carl").join("README.txt").exists());
}

#[tokio::test]
async fn identity_headers_cookies_and_query_parameters_are_ignored() {
    let panel = Panel::start().await;
    let token = panel.token(&Who::customer("carl"));
    let attempts = [
        ("x-forwarded-user", "carl".to_owned()),
        ("remote-user", "carl".to_owned()),
        ("x-actas-user", "carl".to_owned()),
        ("cookie", format!("x-actas-assertion={token}")),
        ("authorization", format!("Bearer {token}")),
    ];
    for (name, value) in attempts {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/")
            .header(name, value)
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            panel.send(request).await.status,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    let reply = panel
        .get_with(
            None,
            &format!("/?assertion={token}&x-actas-assertion={token}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // With a valid assertion for dora, X-Forwarded-User: carl changes nothing.
    let request = Request::builder()
        .method(Method::GET)
        .uri("/settings")
        .header(ASSERTION, panel.token(&Who::customer("dora")))
        .header("x-forwarded-user", "carl")
        .body(Body::empty())
        .expect("request");
    let reply = panel.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("dora@example.test"));
    assert!(!reply.text().contains("carl@example.test"));
    assert_eq!(
        panel.state.store.find_account("carl").await.expect("store"),
        None
    );
}

#[tokio::test]
async fn two_assertion_headers_are_refused() {
    let panel = Panel::start().await;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/")
        .header(ASSERTION, panel.token(&Who::customer("carl")))
        .header(ASSERTION, panel.token(&Who::customer("dora")))
        .body(Body::empty())
        .expect("request");
    let reply = panel.send(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.text().contains("more than one"));
}

#[tokio::test]
async fn an_assertion_within_the_expiry_leeway_is_accepted() {
    let panel = Panel::start().await;
    let token = mint(
        &panel.keys[0],
        &with(|c| {
            c["iat"] = json!(now() - 32);
            c["exp"] = json!(now() - 2);
        }),
    );
    assert_eq!(
        panel.get_with(Some(&token), "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_audience_list_containing_the_panel_is_accepted() {
    let panel = Panel::start().await;
    let token = mint(
        &panel.keys[0],
        &with(|c| c["aud"] = json!(["other", "actas-panel"])),
    );
    assert_eq!(
        panel.get_with(Some(&token), "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_second_configured_key_is_accepted_for_rotation() {
    let panel = Panel::trusting(&[1, 2]).await;
    for key in &panel.keys {
        let reply = panel.get_with(Some(&mint(key, &claims())), "/").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let unknown = mint(&signing_key(3), &claims());
    assert_eq!(
        panel.get_with(Some(&unknown), "/").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_retired_key_is_refused() {
    let panel = Panel::trusting(&[2]).await;
    let old = mint(&signing_key(1), &claims());
    let reply = panel.get_with(Some(&old), "/").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.text().contains("signature is invalid"));
}
