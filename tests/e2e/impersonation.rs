//! Signing in as a customer, end to end: every rule of the shipped policies, the limits,
//! revocation, token rotation, policy reload, and the policy CLI.

use std::time::{Duration, Instant};

use actas_e2e::*;

const DENIED: &str = "You don't have permission to impersonate this user";

fn is_impersonating(b: &Browser) -> bool {
    b.get("/_actas/access-history")
        .unwrap()
        .body
        .contains("Stop impersonating")
}

#[test]
fn an_admin_signs_in_as_a_customer_and_the_panel_sees_both() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "");
    let ada = stack.signed_in("ada");
    let before = ada.session_token().unwrap();
    let r = ada.impersonate("carl", "ticket #4711", false);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/");
    let during = ada.session_token().unwrap();
    assert_ne!(before, during, "the token is rotated at start");
    let old = stack.browser();
    old.cookies
        .lock()
        .unwrap()
        .insert("__Host-actas_session".into(), before);
    assert_eq!(
        old.get("/").unwrap().status,
        StatusCode::SEE_OTHER,
        "the pre-impersonation token is dead"
    );

    ada.send("GET", "/domains", &[], None).unwrap();
    let c = verify_assertion(&stack, &echo.last().all("x-actas-assertion")[0]);
    assert_eq!(c["sub"], "carl");
    assert_eq!(c["role"], "customer");
    assert_eq!(c["act"]["sub"], "ada");
    assert_eq!(c["act"]["role"], "admin");
    assert!(c["imp"].as_str().is_some_and(|s| !s.is_empty()));

    let start = stack.wait_audit("impersonation.start", |r| {
        r["kind"] == "impersonation.start"
    });
    assert_eq!(start["actor"], "ada");
    assert_eq!(start["subject"], "carl");
    assert!(start["reason"].as_str().unwrap().contains("ticket #4711"));
    let imp = start["impersonation_id"].as_str().unwrap().to_owned();
    assert_eq!(imp, c["imp"].as_str().unwrap());
    let req = stack.wait_audit("request as carl", |r| {
        r["kind"] == "request" && r["path"] == "/domains"
    });
    assert_eq!(req["actor"], "ada");
    assert_eq!(req["subject"], "carl");
    assert_eq!(req["impersonation_id"], imp.as_str());
}

#[test]
fn an_admin_may_not_impersonate_themselves() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    let r = ada.impersonate("ada", "", false);
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains(DENIED), "{}", r.body);
    assert!(!is_impersonating(&ada));
}

#[test]
fn a_reseller_signs_in_as_their_own_customer() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    let r = rita.impersonate("cora", "", false);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(is_impersonating(&rita));
}

#[test]
fn a_reseller_is_refused_another_resellers_customer_with_the_exact_message() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    let r = rita.impersonate("dave", "", false);
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains(DENIED), "{}", r.body);
    assert!(!is_impersonating(&rita));
    let denied = stack.wait_audit("impersonation.denied", |r| {
        r["kind"] == "impersonation.denied"
    });
    assert_eq!(denied["actor"], "rita");
    assert_eq!(denied["subject"], "dave");
    assert_eq!(denied["decision"], "deny");
    // A reseller cannot even see another reseller's customer in the directory.
    assert_eq!(
        rita.get("/_actas/accounts/dave").unwrap().status,
        StatusCode::NOT_FOUND
    );
    let list = rita.get("/_actas/accounts").unwrap().body;
    assert!(
        list.contains("carl") && list.contains("cora") && !list.contains("dave"),
        "{list}"
    );
}

#[test]
fn a_reseller_may_not_impersonate_staff_or_unknown_accounts() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    for target in ["ada", "rex", "rita", "nobody", "../etc", ""] {
        let r = rita.impersonate(target, "", false);
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{target}");
        assert!(r.body.contains(DENIED), "{target}");
    }
}

#[test]
fn a_customer_impersonates_no_one() {
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    for target in ["cora", "dave", "ada"] {
        let r = carl.impersonate(target, "", false);
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.body.contains(DENIED));
    }
    assert_eq!(
        carl.get("/_actas/accounts").unwrap().status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn nobody_impersonates_while_already_impersonating() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    assert_eq!(
        ada.impersonate("carl", "", false).status,
        StatusCode::SEE_OTHER
    );
    let r = ada.impersonate("cora", "", false);
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains(DENIED));
    let denied = stack.wait_audit("nested denied", |r| {
        r["kind"] == "impersonation.denied" && r["subject"] == "cora"
    });
    assert_eq!(denied["actor"], "ada");
    let starts = stack
        .audit()
        .iter()
        .filter(|r| r["kind"] == "impersonation.start")
        .count();
    assert_eq!(starts, 1, "only the first impersonation started");
    assert!(
        ada.get("/_actas/access-history")
            .unwrap()
            .body
            .contains("signed in as carl"),
        "still carl"
    );
}

fn first_message_path(b: &Browser) -> String {
    let list = b.get("/mail/postmaster").unwrap();
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let start = list
        .body
        .find("/mail/postmaster/messages/")
        .expect("a message link");
    let rest = &list.body[start..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[test]
fn mail_content_needs_the_customers_consent() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    assert_eq!(
        ada.impersonate("carl", "no consent", false).status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ada.get("/mail").unwrap().status,
        StatusCode::OK,
        "the mailbox list is allowed"
    );
    let message = first_message_path(&ada);
    let r = ada.get(&message).unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Not allowed while impersonating"));
    // Encoded spellings of the same path are refused too.
    for tricky in [
        message.replace("/messages/", "/%6Dessages/"),
        message.replace("/mail/", "/%6Dail/"),
        format!("{message}/"),
    ] {
        let r = ada.get(&tricky).unwrap();
        assert_ne!(
            r.status,
            StatusCode::OK,
            "{tricky} must not show the message"
        );
        assert!(!r.body.contains("Welcome"), "{tricky}");
    }
    ada.stop();
    assert_eq!(
        ada.impersonate("carl", "customer asked", true).status,
        StatusCode::SEE_OTHER
    );
    let r = ada.get(&message).unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Carl himself always reads his mail.
    let carl = stack.signed_in("carl");
    assert_eq!(carl.get(&message).unwrap().status, StatusCode::OK);
}

#[test]
fn the_impersonator_cannot_change_the_customers_password() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let csrf = ada.csrf();
    let r = ada.post(
        "/_actas/account/password",
        &[
            ("csrf_token", &csrf),
            ("current", PASSWORD),
            ("new", "pwned-pwned"),
            ("confirm", "pwned-pwned"),
        ],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ada.get("/_actas/account/password").unwrap().status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stack.browser().login("carl", PASSWORD).status,
        StatusCode::SEE_OTHER,
        "carl's password is unchanged"
    );
}

#[test]
fn changing_ones_password_signs_out_every_other_session_of_the_account() {
    let stack = Stack::start();
    let here = stack.signed_in("carl");
    let elsewhere = stack.signed_in("carl");
    let csrf = here.csrf();
    let r = here.post(
        "/_actas/account/password",
        &[
            ("csrf_token", &csrf),
            ("current", PASSWORD),
            ("new", "a-new-password-1"),
            ("confirm", "a-new-password-1"),
        ],
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Within the session cache's lifetime (at most a second), the other session is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = elsewhere.get("/").unwrap();
        if r.status == StatusCode::SEE_OTHER {
            assert!(
                r.location().starts_with("/_actas/login"),
                "{}",
                r.location()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other session still works: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        here.get("/").unwrap().status,
        StatusCode::OK,
        "the changer stays signed in"
    );
    let ended = stack.wait_audit("the other session's end", |r| {
        r["kind"] == "logout" && r["actor"] == "carl" && r["reason"] == "revoked"
    });
    assert_ne!(ended["session_id"], serde_json::Value::Null);
    assert_eq!(
        stack.browser().login("carl", "a-new-password-1").status,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn guessing_the_current_password_is_rate_limited_as_sign_ins_are() {
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    let csrf = carl.csrf();
    let guess = |current: &str| {
        carl.post(
            "/_actas/account/password",
            &[
                ("csrf_token", &csrf),
                ("current", current),
                ("new", "a-new-password-1"),
                ("confirm", "a-new-password-1"),
            ],
        )
    };
    assert_eq!(guess("wrong-0").status, StatusCode::UNPROCESSABLE_ENTITY);
    // The account's budget is 10 attempts a minute, its sign-in included.
    let throttled = (1..=10)
        .map(|n| guess(&format!("wrong-{n}")))
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("unlimited guesses at the current password");
    assert!(throttled.header("retry-after").is_some());
    assert!(
        throttled.body.contains("Too many attempts"),
        "{}",
        throttled.body
    );
    assert_eq!(
        guess(PASSWORD).status,
        StatusCode::TOO_MANY_REQUESTS,
        "not even the right password is checked until the budget refills"
    );
    assert_eq!(
        stack.browser().login("carl", PASSWORD).status,
        StatusCode::TOO_MANY_REQUESTS,
        "the password is unchanged and the budget is the sign-in's"
    );
}

#[test]
fn stop_returns_to_where_it_started_with_a_new_token() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let during = ada.session_token().unwrap();
    let r = ada.stop();
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/_actas/accounts/carl");
    let after = ada.session_token().unwrap();
    assert_ne!(during, after, "the token is rotated at stop");
    assert!(!is_impersonating(&ada));
    let stop = stack.wait_audit("impersonation.stop", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["actor"], "ada");
    assert_eq!(stop["subject"], "carl");
    assert_eq!(stop["reason"], "stopped");
    assert!(stop["duration_ms"].as_i64().is_some());
}

#[test]
fn an_impersonation_expires_at_its_time_limit() {
    let stack = Stack::with(Options {
        extra_config: "[impersonation]\nmax_duration_seconds = 2\n".into(),
        ..Options::default()
    });
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    assert!(is_impersonating(&ada));
    std::thread::sleep(Duration::from_millis(2300));
    let page = ada.get("/_actas/accounts").unwrap();
    assert_eq!(
        page.status,
        StatusCode::OK,
        "ada is back in her own session"
    );
    assert!(
        page.body.contains("ended: its time limit was reached"),
        "a notice says why: {}",
        page.body
    );
    assert!(!is_impersonating(&ada));
    let stop = stack.wait_audit("expired", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "expired");
}

#[test]
fn a_change_sent_after_the_impersonation_expired_is_not_made_on_the_staff_members_account() {
    // Ada leaves carl's page open past the time limit, then submits its form: the request
    // was meant for carl, and her session now speaks for her own account.
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "[impersonation]\nmax_duration_seconds = 2\n");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    std::thread::sleep(Duration::from_millis(2300));
    let before = echo.seen.lock().unwrap().len();
    let r = ada.post("/files/delete", &[("path", "public_html/index.html")]);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body.contains("ended: its time limit was reached") && r.body.contains("not sent"),
        "{}",
        r.body
    );
    assert_eq!(
        echo.seen.lock().unwrap().len(),
        before,
        "the request reached the panel as ada"
    );
    let refused = stack.wait_audit("the refused request", |r| {
        r["kind"] == "request" && r["path"] == "/files/delete"
    });
    assert_eq!(refused["actor"], "ada");
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["status"], 409);
    // What she sends next is hers, and goes through as hers.
    let r = ada.post("/files/delete", &[("path", "public_html/index.html")]);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seen = echo.last();
    assert!(
        seen.request_line.starts_with("POST /files/delete"),
        "{}",
        seen.request_line
    );
    let assertion = seen
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-actas-assertion"))
        .map(|(_, v)| v.clone())
        .expect("an assertion");
    let claims = claims(&assertion);
    assert_eq!(claims["sub"], "ada");
    assert!(
        claims.get("act").is_none_or(serde_json::Value::is_null),
        "{claims}"
    );
}

#[test]
fn a_form_left_open_in_another_tab_is_refused_once_the_impersonation_stops_or_starts() {
    // One browser, two tabs, one session: a form keeps acting for whom its page was shown.
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    let own_settings = ada.get("/settings").unwrap().body;
    let save = form_action(&own_settings, "/settings?").expect("the settings form");
    assert_eq!(save, "/settings?as=ada");

    ada.impersonate("carl", "ticket #7", false);
    let carls_files = ada.get("/files").unwrap().body;
    let delete = form_action(&carls_files, "/files/delete?").expect("a delete form");
    assert!(delete.starts_with("/files/delete?as=carl~"), "{delete}");

    // Tab B still shows ada's own settings; saved now, they would be carl's.
    let r = ada.post(&save, &[("contact_email", "ada@staff.example")]);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("This form is out of date"), "{}", r.body);
    assert!(r.body.contains("ada's own account"), "{}", r.body);
    assert!(
        r.body.contains("Stop impersonating"),
        "the banner is on the refusal"
    );
    let carls = ada.get("/settings").unwrap().body;
    assert!(!carls.contains("ada@staff.example"), "{carls}");

    // Tab A stops; tab B still shows carl's files; Delete would remove ada's README.txt.
    assert_eq!(ada.stop().status, StatusCode::SEE_OTHER);
    let r = ada.post(&delete, &[("path", "README.txt")]);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("impersonation has ended"), "{}", r.body);
    assert_eq!(
        ada.get("/files/view?path=README.txt").unwrap().status,
        StatusCode::OK,
        "ada's README.txt is still there"
    );
    let refused = stack.wait_audit("the refused delete", |r| {
        r["kind"] == "request" && r["path"] == delete.as_str()
    });
    assert_eq!(refused["actor"], "ada");
    assert_eq!(refused["subject"], "ada");
    assert_eq!(refused["status"], 409);

    // The same forms, opened again, work for whom they are shown to now.
    let own_settings = ada.get("/settings").unwrap().body;
    let save = form_action(&own_settings, "/settings?").expect("the settings form");
    let r = ada.post(&save, &[("contact_email", "ada@staff.example")]);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[test]
fn an_impersonation_whose_browser_never_comes_back_is_ended_on_the_record() {
    // Ada impersonates carl and closes her browser: no request ever carries that token
    // again. The proxy ends the session and the impersonation all the same, at the moment
    // the session ran out, and carl's access history shows it ended.
    let stack = Stack::with(Options {
        extra_config:
            "[session]\nidle_timeout_seconds = 2\n[impersonation]\nidle_timeout_seconds = 2\n"
                .into(),
        ..Options::default()
    });
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "checking a ticket", false);
    drop(ada);
    let stop = stack.wait_audit("the impersonation ended", |r| {
        r["kind"] == "impersonation.stop"
    });
    assert_eq!(stop["actor"], "ada");
    assert_eq!(stop["subject"], "carl");
    assert_eq!(stop["reason"], "expired");
    let lasted = stop["duration_ms"].as_i64().expect("a duration");
    assert!(
        (2_000..3_000).contains(&lasted),
        "it ended when it ran out (2 s after its last use), not when it was noticed: {lasted} ms"
    );
    let logout = stack.wait_audit("ada's session ended", |r| {
        r["kind"] == "logout" && r["actor"] == "ada"
    });
    assert_eq!(logout["reason"], "expired");
    assert!(
        logout
            .get("request_id")
            .is_none_or(serde_json::Value::is_null),
        "{logout}"
    );
    let carl = stack.signed_in("carl");
    let history = carl.get("/_actas/access-history").unwrap();
    assert_eq!(history.status, StatusCode::OK);
    assert!(
        history.body.contains("checking a ticket"),
        "{}",
        history.body
    );
    assert!(!history.body.contains("ongoing"), "{}", history.body);
}

#[test]
fn an_idle_impersonation_expires() {
    let stack = Stack::with(Options {
        extra_config: "[impersonation]\nidle_timeout_seconds = 1\n".into(),
        ..Options::default()
    });
    let ada = stack.signed_in("ada");
    ada.impersonate("cora", "", false);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!is_impersonating(&ada));
    let stop = stack.wait_audit("expired", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "expired");
}

#[test]
fn logout_ends_the_impersonation_with_why_logout() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let csrf = ada.csrf();
    assert_eq!(
        ada.post("/_actas/logout", &[("csrf_token", &csrf)]).status,
        StatusCode::SEE_OTHER
    );
    let stop = stack.wait_audit("stop on logout", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "logout");
    stack.wait_audit("logout", |r| r["kind"] == "logout" && r["actor"] == "ada");
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn disabling_the_staff_account_revokes_the_impersonation() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    rita.impersonate("carl", "", false);
    let (ok, _, err) = stack.actas(&["accounts", "disable", "rita"]);
    assert!(ok, "{err}");
    wait_until("rita's session ends", || {
        rita.get("/").unwrap().status == StatusCode::SEE_OTHER
    });
    let stop = stack.wait_audit("revoked", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "revoked");
    assert_eq!(
        stack.browser().login("rita", PASSWORD).status,
        StatusCode::UNAUTHORIZED,
        "a disabled account cannot sign in"
    );
}

#[test]
fn moving_the_customer_to_another_reseller_revokes_the_impersonation() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    rita.impersonate("carl", "", false);
    let (ok, _, err) = stack.actas(&["accounts", "move", "carl", "--to", "rex"]);
    assert!(ok, "{err}");
    wait_until("revoked", || !is_impersonating(&rita));
    let page = rita.get("/_actas/accounts").unwrap();
    assert!(
        page.body.contains("it is no longer allowed"),
        "{}",
        page.body
    );
    let stop = stack.wait_audit("revoked", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "revoked");
}

const NO_RESELLERS: &str = "reseller-may-impersonate-own-customers";

fn without_reseller_policy(stack: &Stack) {
    // Drop the reseller permit from the policy files: a reseller may impersonate no one.
    for entry in std::fs::read_dir(&stack.policies).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Some(at) = text.find(NO_RESELLERS) {
                let start = text[..at].rfind("@id").unwrap();
                let end = text[at..].find(";\n").unwrap() + at + 2;
                let new = format!("{}{}", &text[..start], &text[end..]);
                std::fs::write(&path, new).unwrap();
                return;
            }
        }
    }
    panic!("no policy with id {NO_RESELLERS}");
}

#[test]
fn a_reloaded_policy_that_no_longer_allows_it_revokes_the_impersonation() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    rita.impersonate("carl", "", false);
    without_reseller_policy(&stack);
    stack.proxy.as_ref().unwrap().signal("HUP");
    wait_until("revoked by policy", || !is_impersonating(&rita));
    let stop = stack.wait_audit("revoked", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "revoked");
    let reload = stack.wait_audit("policy.reload", |r| {
        r["kind"] == "policy.reload" && r["decision"] == "allow"
    });
    assert!(reload["reason"].as_str().unwrap().contains("loaded"));
    assert_eq!(
        rita.impersonate("carl", "", false).status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn a_bad_policy_reload_keeps_the_last_good_set() {
    let stack = Stack::start();
    std::fs::write(
        stack.policies.join("broken.cedar"),
        "permit(principal, action, resource) when { principal.colour == \"blue\" };\n",
    )
    .unwrap();
    stack.proxy.as_ref().unwrap().signal("HUP");
    let failed = stack.wait_audit("policy.reload refused", |r| {
        r["kind"] == "policy.reload" && r["decision"] == "deny"
    });
    assert!(
        failed["reason"].as_str().unwrap().contains("broken.cedar"),
        "{failed}"
    );
    // The old rules are still in force.
    let rita = stack.signed_in("rita");
    assert_eq!(
        rita.impersonate("carl", "", false).status,
        StatusCode::SEE_OTHER
    );
    rita.stop();
    assert_eq!(
        rita.impersonate("dave", "", false).status,
        StatusCode::FORBIDDEN
    );
    assert!(
        stack.proxy_log().contains("policy reload refused"),
        "the error is logged"
    );
}

#[test]
fn a_policy_file_change_is_picked_up_without_a_signal() {
    let stack = Stack::start();
    without_reseller_policy(&stack);
    stack.wait_audit("policy.reload on file change", |r| {
        r["kind"] == "policy.reload" && r["decision"] == "allow"
    });
    let rita = stack.signed_in("rita");
    assert_eq!(
        rita.impersonate("carl", "", false).status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn policy_explain_names_the_decision_and_the_deciding_policies() {
    let stack = Stack::start();
    let (ok, out, err) = stack.actas(&[
        "policy",
        "explain",
        "--actor",
        "rita",
        "--action",
        "impersonate",
        "--target",
        "dave",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("DENY"), "{out}");
    assert!(out.contains("rita") && out.contains("dave"), "{out}");
    let (ok, out, err) = stack.actas(&[
        "policy",
        "explain",
        "--actor",
        "rita",
        "--action",
        "impersonate",
        "--target",
        "carl",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("ALLOW"), "{out}");
    assert!(out.contains(NO_RESELLERS), "{out}");
    let (ok, _, err) = stack.actas(&[
        "policy",
        "explain",
        "--actor",
        "nobody",
        "--action",
        "impersonate",
        "--target",
        "carl",
    ]);
    assert!(!ok);
    assert!(err.contains("no such account"), "{err}");
}

#[test]
fn policy_test_runs_the_shipped_cases() {
    let stack = Stack::start();
    let (ok, out, err) = stack.actas(&["policy", "test"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    std::fs::write(
        stack.policies.join("tests/zz_wrong.toml"),
        "[[case]]\nname = \"deliberately wrong\"\naction = \"impersonate\"\nactor = { username = \"carl\", role = \"customer\" }\ntarget = { username = \"cora\", role = \"customer\" }\nexpect = \"allow\"\n",
    )
    .unwrap();
    let (ok, out, _) = stack.actas(&["policy", "test"]);
    assert!(!ok, "a failing case fails the command");
    assert!(out.contains("deliberately wrong"), "{out}");
}

/// The usernames listed on an accounts directory page, in order.
fn listed(page: &str) -> Vec<String> {
    page.split("href=\"/_actas/accounts/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn staff_page_through_a_directory_of_more_accounts_than_one_page_holds() {
    let stack = Stack::start();
    block_on(async {
        let mut db = sqlite_at(&stack.path().join("actas.db")).await;
        for n in 0..150 {
            sqlx::query(
                "INSERT INTO accounts (username, display_name, role, created_by, status, password_hash, created_at, updated_at) \
                 VALUES ($1, 'Customer', 'customer', 'rita', 'active', 'x', 0, 0)",
            )
            .bind(format!("c{n:03}"))
            .execute(&mut db)
            .await
            .unwrap();
        }
    });
    let names = |from: usize, to: usize| -> Vec<String> {
        (from..to).map(|n| format!("c{n:03}")).collect()
    };
    // Rita's customers: c000-c149, then carl and cora. Before, the directory stopped at
    // the first 500 without a word; now a page holds 100 and says there is more.
    let rita = stack.signed_in("rita");
    let first = rita.get("/_actas/accounts").unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(listed(&first.body), names(0, 100));
    assert_eq!(link_labelled(&first.body, "← Previous"), None);
    let next = link_labelled(&first.body, "Next →").expect("a link to the next page");
    let second = rita.get(&next).unwrap();
    let mut rest = names(100, 150);
    rest.extend(["carl".to_owned(), "cora".to_owned()]);
    assert_eq!(listed(&second.body), rest);
    assert_eq!(link_labelled(&second.body, "Next →"), None);
    let previous = link_labelled(&second.body, "← Previous").expect("a link back");
    assert_eq!(listed(&rita.get(&previous).unwrap().body), names(0, 100));

    // A search keeps to its matches across pages; exactly one page of them has no Next.
    let ada = stack.signed_in("ada");
    let found = ada.get("/_actas/accounts?q=c0").unwrap();
    assert_eq!(listed(&found.body), names(0, 100));
    assert_eq!(link_labelled(&found.body, "Next →"), None);
    let found = ada.get("/_actas/accounts?q=c1&after=c120").unwrap();
    assert_eq!(listed(&found.body), names(121, 150));
    let back = link_labelled(&found.body, "← Previous").expect("a link back");
    assert!(back.contains("q=c1"), "the search is kept: {back}");
    assert_eq!(listed(&ada.get(&back).unwrap().body), names(100, 121));

    let reply = ada.get("/_actas/accounts?after=c001&before=c100").unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
