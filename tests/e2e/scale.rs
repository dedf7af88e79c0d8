//! Several instances behind a load balancer: two `actas` processes sharing one PostgreSQL
//! and one panel behave as one service. Also graceful shutdown.

use std::time::Duration;

use actas_e2e::*;

fn pg_stack(tag: &str) -> Stack {
    Stack::with(Options {
        database_url: Some(postgres_schema(tag)),
        ..Options::default()
    })
}

fn impersonating(b: &Browser) -> bool {
    b.get("/_actas/access-history")
        .unwrap()
        .body
        .contains("Stop impersonating")
}

#[test]
fn a_session_made_on_one_instance_works_on_another() {
    let stack = pg_stack("session");
    let (_b_proc, b_port) = stack.another_instance("b");
    let on_a = stack.signed_in("carl");
    let on_b = stack.browser_on(b_port, &on_a);
    let page = on_b.get("/").unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("carl") || page.body.contains("Carl"));
}

#[test]
fn an_impersonation_started_on_one_instance_shows_on_the_other_and_stops_everywhere_within_a_second(
) {
    let stack = pg_stack("imp");
    let (_b_proc, b_port) = stack.another_instance("b");
    let on_a = stack.signed_in("ada");
    assert_eq!(
        on_a.impersonate("carl", "", false).status,
        StatusCode::SEE_OTHER
    );
    let on_b = stack.browser_on(b_port, &on_a);
    let page = on_b.get("/").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Stop impersonating"),
        "the banner shows on instance b: {}",
        page.body
    );
    assert!(page.body.contains("signed in as carl"));
    // Stop on b; a sees it within the session cache's bound (≤ 1 s).
    assert_eq!(on_b.stop().status, StatusCode::SEE_OTHER);
    std::thread::sleep(Duration::from_millis(1050));
    assert!(!impersonating(&on_a), "instance a no longer impersonates");
    assert!(!on_a.get("/").unwrap().body.contains("Stop impersonating"));
}

#[test]
fn disabling_the_staff_account_revokes_on_every_instance() {
    let stack = pg_stack("revoke");
    let (_b_proc, b_port) = stack.another_instance("b");
    let ada_a = stack.signed_in("rita");
    ada_a.impersonate("carl", "", false);
    let rita_b = stack.signed_in("rita");
    let rita_b = stack.browser_on(b_port, &rita_b);
    assert_eq!(rita_b.get("/").unwrap().status, StatusCode::OK);
    let (ok, _, err) = stack.actas(&["accounts", "disable", "rita"]);
    assert!(ok, "{err}");
    std::thread::sleep(Duration::from_millis(1050));
    assert_eq!(
        ada_a.get("/").unwrap().status,
        StatusCode::SEE_OTHER,
        "instance a revoked"
    );
    assert_eq!(
        rita_b.get("/").unwrap().status,
        StatusCode::SEE_OTHER,
        "instance b revoked"
    );
    let stop = stack.wait_audit("revoked", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["reason"], "revoked");
}

#[test]
fn each_instance_keeps_its_own_audit_chain_and_verify_checks_all() {
    let stack = pg_stack("chains");
    let (_b_proc, b_port) = stack.another_instance("b");
    let on_a = stack.signed_in("carl");
    let on_b = stack.browser_on(b_port, &on_a);
    for i in 0..20 {
        on_a.get(&format!("/?a={i}")).unwrap();
        on_b.get(&format!("/?b={i}")).unwrap();
    }
    stack.wait_audit("a's last", |r| r["path"] == "/?a=19");
    let last_b = stack.wait_audit("b's last", |r| r["path"] == "/?b=19");
    assert_eq!(last_b["instance"], "b");
    let instances: std::collections::BTreeSet<String> = stack
        .audit()
        .iter()
        .map(|r| r["instance"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(instances.len(), 2, "{instances:?}");
    let (ok, out, err) = stack.actas(&["audit", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 chain(s)"), "{out}");
}

#[test]
fn graceful_shutdown_lets_in_flight_requests_finish_and_flushes_the_audit() {
    let echo = Echo::start("text/plain", b"slow but fine".to_vec());
    *echo.hook.lock().unwrap() = Some(Box::new(|_seen: &Seen| {
        std::thread::sleep(Duration::from_millis(800))
    }));
    let mut stack = Stack::with(Options {
        panel: false,
        upstream_port: Some(echo.port),
        extra_config: String::new(),
        ..Options::default()
    });
    let b = stack.signed_in("carl");
    let inflight = {
        let b = b.clone();
        std::thread::spawn(move || b.send("GET", "/slow", &[], None))
    };
    std::thread::sleep(Duration::from_millis(200));
    let proxy = stack.proxy.as_mut().unwrap();
    proxy.signal("TERM");
    let reply = inflight
        .join()
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "slow but fine");
    assert!(
        proxy.wait_exit(Duration::from_secs(20)).is_some(),
        "actas exited"
    );
    let records = stack.audit();
    assert!(
        records
            .iter()
            .any(|r| r["path"] == "/slow" && r["status"] == 200),
        "the in-flight request's record was flushed"
    );
}

#[test]
fn instances_sweeping_side_by_side_end_an_abandoned_session_once() {
    // Both instances sweep every second; ada's session (with an impersonation in it) and
    // carl's are abandoned. Each ending is on the record exactly once, whichever instance
    // made it.
    let stack = Stack::with(Options {
        database_url: Some(postgres_schema("sweep")),
        extra_config: "[session]\nidle_timeout_seconds = 2\n".into(),
        ..Options::default()
    });
    let (_b_proc, b_port) = stack.another_instance("b");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let carl = stack.browser_on(b_port, &stack.signed_in("carl"));
    assert_eq!(carl.get("/").unwrap().status, StatusCode::OK);
    drop((ada, carl));
    for who in ["ada", "carl"] {
        stack.wait_audit("the session ended", |r| {
            r["kind"] == "logout" && r["actor"] == who
        });
    }
    // Time for the slower instance to have swept the same sessions too.
    std::thread::sleep(Duration::from_millis(2500));
    let records = stack.audit();
    let count = |kind: &str, actor: &str| {
        records
            .iter()
            .filter(|r| r["kind"] == kind && r["actor"] == actor)
            .count()
    };
    assert_eq!(count("logout", "ada"), 1, "{records:#?}");
    assert_eq!(count("logout", "carl"), 1, "{records:#?}");
    assert_eq!(count("impersonation.stop", "ada"), 1, "{records:#?}");
}
