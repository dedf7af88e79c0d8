//! The proxy's front door, end to end: sign-in, sessions, CSRF, header hygiene, the
//! identity assertion, the 502 page and `actas check`. Each test starts real binaries.

use std::time::Duration;

use actas_e2e::*;

#[test]
fn an_html_navigation_without_a_session_is_sent_to_sign_in_and_back() {
    let stack = Stack::start();
    let b = stack.browser();
    let r = b.get("/files?path=public_html").unwrap();
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location(),
        "/_actas/login?next=%2Ffiles%3Fpath%3Dpublic_html"
    );
    let r = b.login_next("carl", PASSWORD, "/files?path=public_html");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/files?path=public_html");
    let page = b.get("/files?path=public_html").unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("index.html"),
        "the panel showed carl's files: {}",
        page.body
    );
}

#[test]
fn a_request_for_data_without_a_session_gets_401() {
    let stack = Stack::start();
    let r = stack
        .browser()
        .send("GET", "/domains", &[("accept", "application/json")], None)
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = stack
        .browser()
        .send("POST", "/domains", &[], Some(b"name=x.example".to_vec()))
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_session_cookie_has_every_protective_attribute() {
    let stack = Stack::start();
    let b = stack.browser();
    let r = b.login("ada", PASSWORD);
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-actas_session="))
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.to_lowercase().contains("domain="), "{cookie}");
    let token = b.session_token().unwrap();
    assert!(token.len() >= 43, "at least 256 bits: {token}");
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let stack = Stack::start();
    let wrong = stack.browser().login("ada", "not the password");
    let unknown = stack.browser().login("nobody", "not the password");
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Cookie realm=\"actas\"")
        );
        assert!(r.body.contains("Wrong username or password"), "{}", r.body);
        assert!(r
            .headers
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("__Host-actas_session=")));
    }
    stack.wait_audit("login.failed for ada", |r| {
        r["kind"] == "login.failed" && r["actor"] == "ada"
    });
    let all = stack.audit();
    assert!(
        all.iter()
            .all(|r| !r.to_string().contains("not the password")),
        "no password in the audit log"
    );
}

#[test]
fn failed_sign_ins_are_rate_limited_with_a_clear_429() {
    let stack = Stack::with(Options {
        extra_config: "[login]\nattempts_per_account_per_minute = 3\n".into(),
        ..Options::default()
    });
    for _ in 0..3 {
        assert_eq!(
            stack.browser().login("rita", "wrong").status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = stack.browser().login("rita", PASSWORD);
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many sign-in attempts"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // Another account from the same address is not locked out by rita's budget.
    assert_eq!(
        stack.browser().login("carl", PASSWORD).status,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn strangers_spending_an_accounts_budget_do_not_lock_out_a_browser_that_signed_in_to_it_before() {
    let stack = Stack::with(Options {
        extra_config: "[login]\nattempts_per_account_per_minute = 3\n".into(),
        ..Options::default()
    });
    // rita signed in from this browser yesterday, and from another one carl's account.
    let ritas = stack.browser();
    assert_eq!(ritas.login("rita", PASSWORD).status, StatusCode::SEE_OTHER);
    let device = ritas
        .cookies
        .lock()
        .unwrap()
        .get("__Host-actas_device")
        .cloned()
        .expect("a device cookie after signing in");
    let sign_out = |b: &Browser| {
        let csrf = b.csrf();
        assert_eq!(
            b.post("/_actas/logout", &[("csrf_token", &csrf)]).status,
            StatusCode::SEE_OTHER
        );
    };
    sign_out(&ritas);
    let carls = stack.browser();
    assert_eq!(carls.login("carl", PASSWORD).status, StatusCode::SEE_OTHER);
    sign_out(&carls);
    // Someone who knows her name spends the rest of rita's budget (her own sign-in, from a
    // browser not known then, took one attempt of three).
    for _ in 0..2 {
        assert_eq!(
            stack.browser().login("rita", "guess").status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        stack.browser().login("rita", PASSWORD).status,
        StatusCode::TOO_MANY_REQUESTS,
        "a browser rita never used is held to the account's budget"
    );
    assert_eq!(
        carls.login("rita", PASSWORD).status,
        StatusCode::TOO_MANY_REQUESTS,
        "a device cookie holds for the account it was issued for only"
    );
    let forged = stack.browser();
    forged.cookies.lock().unwrap().insert(
        "__Host-actas_device".into(),
        format!("{}{}", "A".repeat(22), &device[22..]),
    );
    assert_eq!(
        forged.login("rita", PASSWORD).status,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged device cookie counts for nothing"
    );
    // Her own browser still gets in, with a budget of its own.
    assert_eq!(ritas.login("rita", PASSWORD).status, StatusCode::SEE_OTHER);
    assert_eq!(
        ritas.cookies.lock().unwrap().get("__Host-actas_device"),
        Some(&device),
        "the same browser keeps the same device cookie"
    );
}

#[test]
fn a_planted_session_token_is_never_adopted_at_sign_in() {
    let stack = Stack::start();
    let b = stack.browser();
    let planted = "A".repeat(43);
    b.cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_session".into(), planted.clone());
    assert_eq!(b.login("carl", PASSWORD).status, StatusCode::SEE_OTHER);
    let token = b.session_token().unwrap();
    assert_ne!(token, planted);
    // The planted token opens nothing.
    let attacker = stack.browser();
    attacker
        .cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_session".into(), planted);
    assert_eq!(attacker.get("/").unwrap().status, StatusCode::SEE_OTHER);
}

#[test]
fn signing_in_again_replaces_the_previous_token() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    let first = b.session_token().unwrap();
    // A signed-in browser is sent on from the sign-in page; post the form directly.
    let other = stack.browser();
    let page = other.get("/_actas/login").unwrap();
    let csrf = hidden(&page.body, "csrf_token").unwrap();
    let login_cookie = other
        .cookies
        .lock()
        .unwrap()
        .get("__Host-actas_login")
        .cloned()
        .unwrap();
    b.cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_login".into(), login_cookie);
    let r = b.post(
        "/_actas/login",
        &[
            ("username", "carl"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let second = b.session_token().unwrap();
    assert_ne!(first, second);
    let old = stack.browser();
    old.cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_session".into(), first);
    assert_eq!(
        old.get("/").unwrap().status,
        StatusCode::SEE_OTHER,
        "the old token was ended"
    );
}

#[test]
fn logout_ends_the_session_for_good() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    let token = b.session_token().unwrap();
    let csrf = b.csrf();
    let r = b.post("/_actas/logout", &[("csrf_token", &csrf)]);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/_actas/login");
    assert!(b.session_token().is_none(), "the cookie was cleared");
    let replay = stack.browser();
    replay
        .cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_session".into(), token);
    assert_eq!(replay.get("/").unwrap().status, StatusCode::SEE_OTHER);
    stack.wait_audit("logout", |r| {
        r["kind"] == "logout" && r["actor"] == "carl" && r["reason"] == "logout"
    });
}

fn signed_out(b: &Browser) -> bool {
    let r = b.get("/").unwrap();
    r.status == StatusCode::SEE_OTHER && r.location().starts_with("/_actas/login")
}

#[test]
fn a_session_in_use_stays_but_an_idle_one_ends() {
    let stack = Stack::with(Options {
        extra_config: "[session]\nidle_timeout_seconds = 1\n".into(),
        ..Options::default()
    });
    let b = stack.signed_in("carl");
    // Used every 300 ms for 2.4 s: never idle for a second, so it lives on.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(b.get("/").unwrap().status, StatusCode::OK);
    }
    std::thread::sleep(Duration::from_millis(1600));
    assert!(signed_out(&b), "an idle session ends");
}

#[test]
fn a_session_ends_at_its_absolute_timeout_however_busy() {
    let stack = Stack::with(Options {
        extra_config: "[session]\nabsolute_timeout_seconds = 2\n".into(),
        ..Options::default()
    });
    let b = stack.signed_in("carl");
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(b.get("/").unwrap().status, StatusCode::OK);
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(signed_out(&b), "the session ends 2 s after sign-in");
}

#[test]
fn next_is_honoured_only_for_paths_on_this_origin() {
    let stack = Stack::start();
    for evil in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/%2f%2fevil.example",
        "/%5cevil.example",
        "javascript:alert(1)",
    ] {
        let b = stack.browser();
        let r = b.login_next("carl", PASSWORD, evil);
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(r.location(), "/", "next={evil}");
    }
    let r = stack.browser().login_next("carl", PASSWORD, "/mail?x=1");
    assert_eq!(r.location(), "/mail?x=1");
}

#[test]
fn a_cross_site_post_never_reaches_the_panel() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    let evil = b.post_with(
        "/domains",
        &[("name", "evil-added.example")],
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    );
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    let no_headers = b.post_with("/domains", &[("name", "evil-added.example")], &[]);
    assert_eq!(
        no_headers.status,
        StatusCode::FORBIDDEN,
        "neither Origin nor Sec-Fetch-Site: refused"
    );
    let domains = b.get("/domains").unwrap();
    assert!(
        !domains.body.contains("evil-added.example"),
        "nothing was added"
    );
    let ok = b.post("/domains", &[("name", "carl-shop.example")]);
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(b
        .get("/domains")
        .unwrap()
        .body
        .contains("carl-shop.example"));
}

#[test]
fn console_forms_refuse_a_missing_or_wrong_csrf_token() {
    let stack = Stack::start();
    let b = stack.signed_in("ada");
    let r = b.post(
        "/_actas/impersonate",
        &[("target", "carl"), ("csrf_token", "wrong")],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b.post("/_actas/impersonate", &[("target", "carl")]);
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The login form too: without its double-submit cookie, a post is refused.
    let fresh = stack.browser();
    let r = fresh.post(
        "/_actas/login",
        &[
            ("username", "ada"),
            ("password", PASSWORD),
            ("csrf_token", "forged-forged-forged"),
        ],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(fresh.session_token().is_none());
}

#[test]
fn spoofed_identity_headers_are_removed_in_every_spelling() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "");
    let b = stack.signed_in("carl");
    let spoofed: Vec<(&str, &str)> = vec![
        ("X-Actas-Assertion", "forged"),
        ("X_Actas_Assertion", "forged"),
        ("X-Actas-Actor", "ada"),
        ("X-Forwarded-User", "ada"),
        ("X_Forwarded_User", "ada"),
        ("X-Forwarded-Email", "ada@example.test"),
        ("X_Forwarded_Email", "ada@example.test"),
        ("X-Remote-User", "ada"),
        ("X_Remote_User", "ada"),
        ("Remote-User", "ada"),
        ("Remote_User", "ada"),
        ("X-Auth-Request-User", "ada"),
        ("X_Auth_Request_Email", "ada@example.test"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "evil.example"),
        ("Connection", "keep-alive, X-Actas-Assertion, X-Custom"),
        ("X-Custom", "nominated"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("X-HTTP-Method", "PUT"),
        ("X-Method-Override", "PATCH"),
        ("X-Original-URL", "/_actas/audit"),
        ("X_Original_URL", "/_actas/audit"),
        ("X-Rewrite-URL", "/_actas/audit"),
        ("X-Request-Id", "AAAAAAAAAAAAAAAAAAAAAA"),
        ("Accept", "text/plain"),
    ];
    let r = b.send("GET", "/anything", &spoofed, None).unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let seen = echo.last();
    let names: Vec<String> = seen.headers.iter().map(|(k, _)| k.to_lowercase()).collect();
    for bad in [
        "x-custom",
        "x_actas_assertion",
        "x-actas-actor",
        "x-forwarded-user",
        "x_forwarded_user",
        "x-forwarded-email",
        "x_forwarded_email",
        "x-remote-user",
        "x_remote_user",
        "remote-user",
        "remote_user",
        "x-auth-request-user",
        "x_auth_request_email",
        "connection",
        "x-http-method-override",
        "x_http_method_override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x_original_url",
        "x-rewrite-url",
    ] {
        assert!(
            !names.contains(&bad.to_owned()),
            "{bad} reached the panel: {names:?}"
        );
    }
    let assertions = seen.all("x-actas-assertion");
    assert_eq!(assertions.len(), 1, "exactly one assertion, the proxy's");
    let claims = verify_assertion(&stack, &assertions[0]);
    assert_eq!(claims["sub"], "carl");
    assert_eq!(
        seen.all("x-request-id"),
        vec![r.header("x-request-id").expect("the proxy's request id")],
        "one request id, the proxy's, not the client's"
    );
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1".to_owned()]);
    assert_eq!(seen.all("x-forwarded-proto"), vec!["https".to_owned()]);
    assert_eq!(
        seen.all("x-forwarded-host"),
        vec![format!("127.0.0.1:{}", stack.port)]
    );
    assert!(
        seen.all("cookie")
            .iter()
            .all(|c| !c.contains("__Host-actas_session")),
        "the session token never reaches the panel"
    );
}

/// The `request_id` of the panel's activity rows whose summary is `summary`.
fn panel_activity_request_ids(stack: &Stack, summary: &str) -> Vec<Option<String>> {
    block_on(async {
        let mut c = sqlite_at(&stack.path().join("panel/panel.db")).await;
        sqlx::query_scalar("SELECT request_id FROM activity WHERE summary = ?")
            .bind(summary)
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

#[test]
fn the_panel_records_a_change_under_the_proxys_request_id() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    let base = b.base();
    // A client's id, even in the proxy's own shape, is replaced by the proxy's.
    let forged = "AAAAAAAAAAAAAAAAAAAAAA";
    let r = b.post_with(
        "/domains",
        &[("name", "carl-traced.example")],
        &[
            ("origin", &base),
            ("sec-fetch-site", "same-origin"),
            ("x-request-id", forged),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rid = r.header("x-request-id").expect("the proxy's request id");
    assert_ne!(rid, forged);
    assert_eq!(
        panel_activity_request_ids(&stack, "Added domain carl-traced.example"),
        vec![Some(rid.clone())],
        "the panel's activity row carries the proxy's request id"
    );
    let rec = stack.wait_audit("the domain post", |r| {
        r["kind"] == "request" && r["method"] == "POST" && r["path"] == "/domains"
    });
    assert_eq!(
        rec["request_id"],
        rid.as_str(),
        "and so does the audit record"
    );
}

#[test]
fn nominating_a_protected_header_in_connection_is_refused_not_forwarded() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "");
    let b = stack.signed_in("carl");
    let before = echo.seen.lock().unwrap().len();
    let r = b
        .send(
            "GET",
            "/x",
            &[
                ("Connection", "keep-alive, X-Forwarded-For"),
                ("X-Forwarded-For", "6.6.6.6"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        echo.seen.lock().unwrap().len(),
        before,
        "nothing reached the upstream"
    );
}

#[test]
fn the_panel_receives_a_fresh_signed_assertion_of_the_signed_in_user() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "");
    let b = stack.signed_in("rita");
    b.send("GET", "/", &[], None).unwrap();
    let jws = echo.last().all("x-actas-assertion").remove(0);
    let header: serde_json::Value = {
        use base64::Engine;
        let h = jws.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    let c = verify_assertion(&stack, &jws);
    assert_eq!(c["sub"], "rita");
    assert_eq!(c["role"], "reseller");
    assert!(
        c.get("act").is_none(),
        "no actor claim outside impersonation"
    );
    let life = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert!((1..=60).contains(&life), "{life}");
    assert!(c["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_ne!(
        c["sid"].as_str().unwrap(),
        b.session_token().unwrap(),
        "sid is not the token"
    );
    std::thread::sleep(Duration::from_millis(1100));
    b.send("GET", "/", &[], None).unwrap();
    let again = echo.last().all("x-actas-assertion").remove(0);
    assert_ne!(jws, again, "every request gets a fresh assertion");
}

#[test]
fn the_real_panel_shows_the_signed_in_customer_and_refuses_direct_access() {
    let stack = Stack::start();
    let b = stack.signed_in("cora");
    let page = b.get("/").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("cora") || page.body.contains("Cora"),
        "{}",
        page.body
    );
    // Straight to the panel, around the proxy: refused.
    let direct = reqwest::blocking::get(format!("http://127.0.0.1:{}/", stack.panel_port)).unwrap();
    assert_eq!(direct.status(), StatusCode::UNAUTHORIZED);
    let forged = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/", stack.panel_port))
        .header("X-Forwarded-User", "cora")
        .header("X-Actas-Assertion", "e30.e30.e30")
        .send()
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_dead_panel_gets_a_clear_502_while_the_console_keeps_working() {
    let mut stack = Stack::start();
    let b = stack.signed_in("carl");
    stack.kill_panel();
    let r = b.get("/").unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("The panel is not answering"), "{}", r.body);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "the proxy closes the connection after a failure, so it must announce it"
    );
    assert_eq!(b.get("/_actas/healthz").unwrap().status, StatusCode::OK);
    assert_eq!(
        b.get("/_actas/access-history").unwrap().status,
        StatusCode::OK
    );
    stack.start_panel();
    assert_eq!(b.get("/").unwrap().status, StatusCode::OK);
}

#[test]
fn malformed_cookies_and_paths_get_answers_not_crashes() {
    let stack = Stack::start();
    let b = stack.browser();
    for cookie in [
        "__Host-actas_session=%%%%",
        "__Host-actas_session=",
        "__Host-actas_session",
        "=;=;;",
        "__Host-actas_session=\"quoted-but-not-a-real-token-at-all\"",
    ] {
        let r = b
            .send(
                "GET",
                "/",
                &[("cookie", cookie), ("accept", "text/html")],
                None,
            )
            .unwrap();
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{cookie}");
    }
    let r = b
        .send(
            "GET",
            "/_actas/accounts/..%2f..%2fetc",
            &[("accept", "text/html")],
            None,
        )
        .unwrap();
    assert!(r.status == StatusCode::SEE_OTHER || r.status.is_client_error());
    let r = b
        .send(
            "POST",
            "/_actas/login",
            &[("origin", &stack.base())],
            Some(vec![0xff; 40_000]),
        )
        .unwrap();
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(
        b.get("/_actas/healthz").unwrap().status,
        StatusCode::OK,
        "still serving"
    );
}

#[test]
fn check_reports_a_bad_config_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actas.toml");
    std::fs::write(&config, "[tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"c\"\nkey = \"k\"\n\n[upstream]\naddress = \"127.0.0.1:1\"\nretries = 3\n").unwrap();
    let (ok, _, err) = actas(&config, &["check"], None);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:8:1: unknown field `retries`",
            config.display()
        )),
        "{err}"
    );

    std::fs::write(&config, "[tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"c\"\nkey = \"k\"\n[upstream]\naddress = \"127.0.0.1:1\"\n[assertion]\nsigning_key = \"missing.key\"\n").unwrap();
    let (ok, _, err) = actas(&config, &["check"], None);
    assert!(!ok);
    assert!(
        err.contains("cannot read the certificate") || err.contains("missing.key"),
        "{err}"
    );
}

#[test]
fn check_accepts_a_good_config() {
    let stack = Stack::start();
    let (ok, out, err) = stack.actas(&["check"]);
    assert!(ok, "{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("schema current"), "{out}");
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actas.toml");
    std::fs::write(&config, "[server]\nthreads = 0\n").unwrap();
    let (ok, _, err) = actas(&config, &["serve"], None);
    assert!(!ok);
    assert!(err.contains("server.threads"), "{err}");
}

#[test]
fn serve_names_a_listening_address_that_is_taken_instead_of_crashing() {
    let stack = Stack::start();
    // The stack's own proxy holds the address this configuration names.
    let (ok, _, err) = stack.actas(&["serve"]);
    assert!(!ok);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    assert!(err.contains("listen`"), "names the key: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // The running proxy is untouched.
    assert_eq!(
        stack.browser().get("/_actas/healthz").unwrap().status,
        StatusCode::OK
    );
}

#[test]
fn a_certificate_and_a_key_that_do_not_match_stop_check_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    for set in ["a", "b"] {
        let out = dir.path().join(set);
        let (ok, _, err) = actas(
            &dir.path().join("none.toml"),
            &["certs", "dev", "--out", out.to_str().unwrap()],
            None,
        );
        assert!(ok, "{err}");
    }
    copy_dir(&repo_root().join("policies"), &dir.path().join("policies"));
    let config = dir.path().join("actas.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nupgrade_sock = \"{d}/upgrade.sock\"\npid_file = \"{d}/actas.pid\"\n\
             [tls]\nlisten = \"127.0.0.1:{port}\"\ncert = \"a/server.pem\"\nkey = \"b/server.key\"\n\
             [upstream]\naddress = \"127.0.0.1:1\"\n\
             [assertion]\nsigning_key = \"a/signing.key\"\n",
            d = dir.path().display(),
            port = free_port(),
        ),
    )
    .unwrap();
    let (ok, out, err) = actas(&config, &["check"], None);
    assert!(!ok, "check accepts a mismatched pair: {out}");
    assert!(err.contains("tls"), "names the section: {err}");
    assert!(
        err.contains("a/server.pem") && err.contains("b/server.key"),
        "names the files: {err}"
    );

    let mut serve = std::process::Command::new(bin("actas"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("ACTAS_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            let out = serve.wait_with_output().unwrap();
            panic!(
                "serve keeps running with no listener:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "serve exits non-zero: {err}");
    assert!(err.contains("tls"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_demo_runs_from_one_command_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let panel = free_port();
    let log = dir.path().join("demo.log");
    let child = std::process::Command::new(bin("actas"))
        .current_dir(repo_root())
        .args(["demo", "--dir"])
        .arg(dir.path().join("var"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--panel-listen",
            &format!("127.0.0.1:{panel}"),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Proc { child, log };
    wait_for_port(port);
    let b = Browser::new(
        &format!("https://127.0.0.1:{port}"),
        &dir.path().join("var/certs/ca.pem"),
    );
    let out = demo.log_text();
    assert!(
        out.contains("actas-demo"),
        "the demo prints its password: {out}"
    );
    for user in ["ada", "rita", "rex", "carl", "cora", "dave"] {
        assert!(out.contains(user), "the demo names {user}");
    }
    let r = b.login("ada", "actas-demo");
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(b.get("/").unwrap().status, StatusCode::OK);
    demo.signal("INT");
    let status = demo.wait_exit(Duration::from_secs(20));
    assert!(status.is_some(), "the demo stopped on SIGINT");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", panel)).is_err(),
        "the panel stopped too"
    );
}

fn behind_a_load_balancer(trusted: &str) -> (Echo, Stack, Browser) {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let http_port = free_port();
    let stack = Stack::with_echo(
        &echo,
        &format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\ntrusted_proxies = [{trusted}]\n"),
    );
    // The balancer terminates TLS and speaks plain HTTP to actas.
    let lb = Browser::new(
        &format!("http://127.0.0.1:{http_port}"),
        &stack.path().join("certs/ca.pem"),
    );
    let signed = stack.signed_in("carl");
    lb.cookies
        .lock()
        .unwrap()
        .extend(signed.cookies.lock().unwrap().clone());
    (echo, stack, lb)
}

#[test]
fn behind_a_trusted_load_balancer_the_forwarded_client_is_believed() {
    let (echo, stack, lb) = behind_a_load_balancer("\"127.0.0.1/32\"");
    let r = lb
        .send(
            "GET",
            "/via-lb",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let seen = echo.last();
    assert_eq!(
        seen.all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.1".to_owned()]
    );
    assert_eq!(seen.all("x-forwarded-proto"), vec!["https".to_owned()]);
    let rec = stack.wait_audit("via lb", |r| r["path"] == "/via-lb");
    assert_eq!(rec["client_ip"], "203.0.113.9");
    // A balancer that writes the client's port: the client cannot put an address of its
    // choosing before it and have that believed.
    lb.send(
        "GET",
        "/via-lb-with-port",
        &[("x-forwarded-for", "198.51.100.1, 203.0.113.9:5555")],
        None,
    )
    .unwrap();
    let rec = stack.wait_audit("via lb with port", |r| r["path"] == "/via-lb-with-port");
    assert_eq!(rec["client_ip"], "203.0.113.9");
    assert_eq!(
        echo.last().all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.1".to_owned()]
    );
}

#[test]
fn the_https_listener_believes_no_forwarded_headers_even_from_a_trusted_address() {
    // `trusted_proxies` is the plain-HTTP listener's: a peer in that range that reaches
    // the HTTPS port directly chooses neither its address nor its scheme.
    let (echo, stack, _lb) = behind_a_load_balancer("\"127.0.0.1/32\"");
    let direct = stack.signed_in("carl");
    let r = direct
        .send(
            "GET",
            "/direct",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "http"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let seen = echo.last();
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1".to_owned()]);
    assert_eq!(seen.all("x-forwarded-proto"), vec!["https".to_owned()]);
    let rec = stack.wait_audit("direct", |r| r["path"] == "/direct");
    assert_eq!(rec["client_ip"], "127.0.0.1");
}

#[test]
fn behind_an_untrusted_peer_forwarded_headers_are_ignored() {
    let (echo, stack, lb) = behind_a_load_balancer("\"10.0.0.0/8\"");
    lb.send(
        "GET",
        "/spoofed",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
        None,
    )
    .unwrap();
    let seen = echo.last();
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1".to_owned()]);
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http".to_owned()]);
    let rec = stack.wait_audit("spoofed", |r| r["path"] == "/spoofed");
    assert_eq!(rec["client_ip"], "127.0.0.1");
}

#[test]
fn the_panel_may_be_addressed_by_name() {
    let stack = Stack::with(Options {
        upstream_host: Some("localhost".into()),
        ..Options::default()
    });
    let b = stack.signed_in("carl");
    assert_eq!(b.get("/").unwrap().status, StatusCode::OK);
}
