//! The audit log, end to end: what is recorded, what never is, write-ahead for
//! state-changing impersonated requests, failing closed, flushing on shutdown and after
//! SIGKILL, and `actas audit verify` catching tampering.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actas_e2e::*;

fn sql(stack: &Stack, statements: &[&str]) {
    block_on(async {
        let mut c = sqlite_at(&stack.path().join("actas.db")).await;
        for s in statements {
            sqlx::query(s).execute(&mut c).await.unwrap();
        }
    });
}

#[test]
fn every_event_kind_carries_its_fields() {
    let stack = Stack::start();
    stack.browser().login("carl", "wrong password");
    let ada = stack.signed_in("ada");
    ada.get("/").unwrap();
    ada.impersonate("carl", "ticket 42", true);
    ada.get("/domains?x=1").unwrap();
    ada.stop();
    let rita = stack.signed_in("rita");
    rita.impersonate("dave", "", false);
    let csrf = ada.csrf();
    ada.post("/_actas/logout", &[("csrf_token", &csrf)]);

    let failed = stack.wait_audit("login.failed", |r| r["kind"] == "login.failed");
    assert_eq!(failed["actor"], "carl");
    assert_eq!(failed["decision"], "deny");
    let login = stack.wait_audit("login", |r| r["kind"] == "login" && r["actor"] == "ada");
    assert_eq!(login["subject"], "ada");
    assert!(login["session_id"].is_string() && login["client_ip"] == "127.0.0.1");
    let start = stack.wait_audit("start", |r| r["kind"] == "impersonation.start");
    assert!(start["reason"].as_str().unwrap().contains("ticket 42"));
    assert!(start["reason"]
        .as_str()
        .unwrap()
        .contains("mail consent: yes"));
    let imp = start["impersonation_id"].as_str().unwrap().to_owned();
    let req = stack.wait_audit("request", |r| {
        r["kind"] == "request" && r["path"] == "/domains?x=1"
    });
    for (k, v) in [
        ("actor", "ada"),
        ("subject", "carl"),
        ("method", "GET"),
        ("impersonation_id", imp.as_str()),
    ] {
        assert_eq!(req[k], v, "{k}: {req}");
    }
    assert_eq!(req["status"], 200);
    assert!(req["bytes_out"].as_i64().unwrap() > 0);
    assert!(req["duration_ms"].as_i64().is_some());
    assert!(
        req["request_id"].is_string() && req["user_agent"].is_string() && req["host"].is_string()
    );
    assert!(
        req["hash"].as_str().unwrap().len() == 64 && req["prev_hash"].as_str().unwrap().len() == 64
    );
    let stop = stack.wait_audit("stop", |r| r["kind"] == "impersonation.stop");
    assert_eq!(stop["impersonation_id"], imp.as_str());
    assert_eq!(stop["reason"], "stopped");
    assert!(stop["duration_ms"].as_i64().unwrap() >= 0);
    let denied = stack.wait_audit("denied", |r| r["kind"] == "impersonation.denied");
    assert_eq!(
        (denied["actor"].as_str(), denied["subject"].as_str()),
        (Some("rita"), Some("dave"))
    );
    stack.wait_audit("logout", |r| r["kind"] == "logout" && r["actor"] == "ada");
    // Outside impersonation, actor = subject.
    let own = stack.wait_audit("own request", |r| {
        r["kind"] == "request"
            && r["path"] == "/"
            && r["actor"] == "ada"
            && r["impersonation_id"].is_null()
    });
    assert_eq!(own["subject"], "ada");
}

#[test]
fn secrets_never_reach_the_audit_log_and_named_parameters_are_redacted() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    let token = b.session_token().unwrap();
    b.send(
        "GET",
        "/files?path=public_html&token=s3cr3t-value&password=hunter22",
        &[("authorization", "Bearer top-secret-bearer")],
        None,
    )
    .unwrap();
    let r = stack.wait_audit("redacted", |r| {
        r["kind"] == "request" && r["path"].as_str().is_some_and(|p| p.starts_with("/files?"))
    });
    assert_eq!(
        r["path"],
        "/files?path=public_html&token=REDACTED&password=REDACTED"
    );
    let everything = stack
        .audit()
        .iter()
        .map(|r| r.to_string())
        .collect::<String>();
    for secret in [
        token.as_str(),
        "s3cr3t-value",
        "hunter22",
        "top-secret-bearer",
        PASSWORD,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into the audit log"
        );
    }
}

#[test]
fn a_state_changing_impersonated_request_is_on_record_before_the_panel_sees_it() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let stack = Stack::with_echo(&echo, "");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    // The moment the upstream receives the POST, its record must already be committed.
    let config = stack.config.clone();
    let checked = Arc::new(AtomicBool::new(false));
    let flag = checked.clone();
    *echo.hook.lock().unwrap() = Some(Box::new(move |seen: &Seen| {
        if seen.request_line.starts_with("POST") {
            let rid = seen.all("x-request-id").remove(0);
            let (ok, out, _) = actas(&config, &["audit", "export", "--format", "jsonl"], None);
            assert!(ok);
            let found = out
                .lines()
                .any(|l| l.contains(&rid) && l.contains("write-ahead"));
            flag.store(found, Ordering::SeqCst);
        }
    }));
    let r = ada.post("/domains", &[("name", "carl-new.example")]);
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        checked.load(Ordering::SeqCst),
        "the write-ahead record was committed before forwarding"
    );
}

#[test]
fn when_the_audit_store_refuses_records_impersonated_changes_fail_closed_with_503() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    sql(&stack, &["CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit store down'); END"]);
    let r = ada.post("/domains", &[("name", "must-not-exist.example")]);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("Audit log unavailable"), "{}", r.body);
    assert_eq!(
        ada.get("/domains").unwrap().status,
        StatusCode::OK,
        "reading still works"
    );
    sql(&stack, &["DROP TRIGGER audit_down"]);
    let domains = ada.get("/domains").unwrap().body;
    assert!(
        !domains.contains("must-not-exist.example"),
        "the refused change never reached the panel"
    );
    // Records held back while the store refused are written once it recovers.
    stack.wait_audit("the 503 itself is recorded", |r| {
        r["kind"] == "request" && r["status"] == 503
    });
}

#[test]
fn shutdown_flushes_every_queued_record() {
    let mut stack = Stack::start();
    let b = stack.signed_in("carl");
    for i in 0..200 {
        b.send("GET", &format!("/?n={i}"), &[], None).unwrap();
    }
    let proxy = stack.proxy.as_mut().unwrap();
    proxy.signal("TERM");
    assert!(
        proxy.wait_exit(Duration::from_secs(20)).is_some(),
        "actas stopped on SIGTERM"
    );
    let records = stack.audit();
    for i in 0..200 {
        let path = format!("/?n={i}");
        assert!(
            records.iter().any(|r| r["path"] == path.as_str()),
            "record of {path} was flushed"
        );
    }
    let (ok, out, err) = stack.actas(&["audit", "verify"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn sigkill_under_load_loses_no_state_changing_impersonated_request() {
    let echo = Echo::start("text/plain", b"ok".to_vec());
    let mut stack = Stack::with_echo(&echo, "");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let b = ada.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2_000 {
                let _ = b.send(
                    "POST",
                    &format!("/domains?w={w}&n={n}"),
                    &[
                        ("origin", &b.base()),
                        ("content-type", "application/x-www-form-urlencoded"),
                    ],
                    Some(b"name=x.example".to_vec()),
                );
                n += 1;
            }
        }));
    }
    let start = Instant::now();
    while echo.seen.lock().unwrap().len() < 100 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stack.proxy.as_mut().unwrap().signal("KILL");
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    let reached: Vec<String> = echo
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.request_line.starts_with("POST"))
        .map(|s| s.all("x-request-id").remove(0))
        .collect();
    assert!(
        reached.len() >= 100,
        "load reached the upstream: {}",
        reached.len()
    );
    let records = stack.audit();
    let recorded: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    let missing: Vec<&String> = reached
        .iter()
        .filter(|rid| !recorded.contains(rid.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} requests that reached the panel have no record: {:?}",
        missing.len(),
        reached.len(),
        &missing[..missing.len().min(5)]
    );
}

fn verify(stack: &Stack) -> (bool, String) {
    let (ok, out, err) = stack.actas(&["audit", "verify"]);
    (ok, format!("{out}{err}"))
}

fn tampered_stack() -> Stack {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    for i in 0..10 {
        b.send("GET", &format!("/?n={i}"), &[], None).unwrap();
    }
    stack.wait_audit("ten requests", |r| r["path"] == "/?n=9");
    let (ok, out) = verify(&stack);
    assert!(ok && out.contains("intact"), "{out}");
    stack
}

#[test]
fn verify_catches_a_changed_field() {
    let stack = tampered_stack();
    sql(
        &stack,
        &["UPDATE audit SET actor = 'mallory' WHERE seq = 4"],
    );
    let (ok, out) = verify(&stack);
    assert!(!ok);
    assert!(
        out.contains("broken at seq 4") && out.contains("field was changed"),
        "{out}"
    );
}

#[test]
fn verify_catches_a_deleted_record() {
    let stack = tampered_stack();
    sql(&stack, &["DELETE FROM audit WHERE seq = 5"]);
    let (ok, out) = verify(&stack);
    assert!(!ok);
    assert!(
        out.contains("broken at seq 5") && out.contains("missing"),
        "{out}"
    );
}

#[test]
fn verify_catches_reordered_records() {
    let stack = tampered_stack();
    let inst = stack.audit()[0]["instance"].as_str().unwrap().to_owned();
    sql(
        &stack,
        &[
            &format!("UPDATE audit SET seq = -1 WHERE instance = '{inst}' AND seq = 6"),
            &format!("UPDATE audit SET seq = 6 WHERE instance = '{inst}' AND seq = 7"),
            &format!("UPDATE audit SET seq = 7 WHERE instance = '{inst}' AND seq = -1"),
        ],
    );
    let (ok, out) = verify(&stack);
    assert!(!ok);
    assert!(out.contains("broken at seq 6"), "{out}");
}

#[test]
fn verify_catches_a_rewritten_record_even_with_its_hash_recomputed() {
    let stack = tampered_stack();
    // An attacker who recomputes one record's hash still breaks the next link.
    sql(&stack, &["UPDATE audit SET hash = '0000000000000000000000000000000000000000000000000000000000000001' WHERE seq = 3"]);
    let (ok, out) = verify(&stack);
    assert!(!ok);
    assert!(out.contains("broken at seq 3"), "{out}");
}

#[test]
fn verify_catches_records_added_below_the_chains_first() {
    // A chain starts at seq 1; a row put in by hand at 0 or below, at any number down to
    // the lowest there is, is read and refused, not skipped.
    for seq in ["0", "-5", "-9223372036854775808"] {
        let stack = tampered_stack();
        sql(
            &stack,
            &[&format!(
                "INSERT INTO audit SELECT instance, {seq}, 'forged', ts, kind, 'mallory', subject, \
                 session_id, impersonation_id, request_id, method, host, path, status, bytes_out, \
                 duration_ms, client_ip, user_agent, decision, reason, prev_hash, hash \
                 FROM audit WHERE seq = 1"
            )],
        );
        let (ok, out) = verify(&stack);
        assert!(!ok, "seq {seq}: {out}");
        assert!(
            out.contains(&format!("a record numbered {seq} is outside the chain")),
            "seq {seq}: {out}"
        );
    }
}

#[test]
fn admins_browse_the_audit_log_and_see_one_impersonation_on_one_page() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("cora", "ticket 9", false);
    ada.get("/files").unwrap();
    ada.get("/databases").unwrap();
    ada.stop();
    let start = stack.wait_audit("start", |r| r["kind"] == "impersonation.start");
    let imp = start["impersonation_id"].as_str().unwrap();
    stack.wait_audit("stop", |r| r["kind"] == "impersonation.stop");
    let page = ada
        .get(&format!("/_actas/audit?impersonation={imp}"))
        .unwrap();
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "impersonation.start",
        "/files",
        "/databases",
        "impersonation.stop",
        "ticket 9",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} missing from the impersonation's page"
        );
    }
    let filtered = ada
        .get("/_actas/audit?actor=ada&kind=impersonation.start")
        .unwrap()
        .body;
    assert!(
        filtered.contains("<td>impersonation.start</td>")
            && !filtered.contains("<td>impersonation.stop</td>")
    );
    let carl = stack.signed_in("carl");
    assert_eq!(
        carl.get("/_actas/audit").unwrap().status,
        StatusCode::FORBIDDEN
    );
    let rita = stack.signed_in("rita");
    assert_eq!(
        rita.get("/_actas/audit").unwrap().status,
        StatusCode::FORBIDDEN
    );
}

/// The rows of an audit page, as their "Request" column reads (`GET /?n=7`).
fn audit_rows(page: &str) -> Vec<String> {
    page.split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("<td>").nth(4)?.split("</td>").next())
        .map(|cell| cell.trim().to_owned())
        .collect()
}

#[test]
fn the_audit_page_pages_by_record_and_a_page_does_not_shift_when_records_arrive() {
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    for n in 1..=110 {
        carl.get(&format!("/?n={n}")).unwrap();
    }
    stack.wait_audit("carl's 110th request", |r| r["path"] == "/?n=110");
    let ada = stack.signed_in("ada");
    let visits = |from: u32, to: u32| -> Vec<String> {
        (from..=to).rev().map(|n| format!("GET /?n={n}")).collect()
    };

    let first = ada.get("/_actas/audit?actor=carl").unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(audit_rows(&first.body), visits(11, 110), "the newest 100");
    assert_eq!(link_labelled(&first.body, "← Newer"), None);
    assert_eq!(link_labelled(&first.body, "⇤ Newest"), None);
    let older = link_labelled(&first.body, "Older →").expect("a link to older records");
    assert!(older.contains("actor=carl"), "the filter is kept: {older}");

    let second = ada.get(&older).unwrap();
    let rows = audit_rows(&second.body);
    assert_eq!(rows[..10], visits(1, 10)[..], "then the ten older visits");
    assert!(rows[10..].iter().all(|r| !r.contains("/?n=")), "{rows:?}");
    assert_eq!(
        link_labelled(&second.body, "Older →"),
        None,
        "nothing older"
    );

    // Carl goes on; the second page is the one it was, not shifted by five.
    for n in 111..=115 {
        carl.get(&format!("/?n={n}")).unwrap();
    }
    stack.wait_audit("carl's 115th request", |r| r["path"] == "/?n=115");
    assert_eq!(audit_rows(&ada.get(&older).unwrap().body), rows);
    // Back from the second page: the 100 newer than it, with more above.
    let newer = link_labelled(&second.body, "← Newer").expect("a link to newer records");
    let back = ada.get(&newer).unwrap();
    assert_eq!(audit_rows(&back.body), visits(11, 110));
    let newest = ada
        .get(&link_labelled(&back.body, "← Newer").expect("the five new ones are newer"))
        .unwrap();
    assert_eq!(audit_rows(&newest.body), visits(111, 115));
    assert_eq!(link_labelled(&newest.body, "← Newer"), None);
    let start = link_labelled(&back.body, "⇤ Newest").expect("a link to the first page");
    assert_eq!(audit_rows(&ada.get(&start).unwrap().body), visits(16, 115));

    // Links and filters that are not what the page writes are refused, not ignored.
    for bad in [
        "/_actas/audit?older=yesterday",
        "/_actas/audit?older=1.2.",
        "/_actas/audit?newer=1.x.actas-1",
        "/_actas/audit?older=1.2.a&newer=1.2.a",
        "/_actas/audit?since=last+week",
        "/_actas/audit?until=2026-13-01T00:00",
        "/_actas/audit?kind=everything",
    ] {
        let reply = ada.get(bad).unwrap();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.body.contains("Bad request"), "{bad}: {}", reply.body);
    }
}

#[test]
fn customers_see_who_signed_in_as_them_and_why() {
    let stack = Stack::start();
    let rita = stack.signed_in("rita");
    rita.impersonate("carl", "ticket #777: broken site", false);
    rita.stop();
    let carl = stack.signed_in("carl");
    let page = carl.get("/_actas/access-history").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    for needle in ["rita", "reseller", "ticket #777: broken site", "stopped"] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }
    let cora = stack.signed_in("cora");
    assert!(cora
        .get("/_actas/access-history")
        .unwrap()
        .body
        .contains("Nobody has signed in as you"));
}

#[test]
fn a_long_access_history_is_shown_a_hundred_at_a_time_newest_first() {
    let stack = Stack::start();
    let mut statements = Vec::new();
    for n in 0..105 {
        statements.push(format!(
            "INSERT INTO impersonations (id, session_id, actor, actor_role, subject, started_at, ended_at, end_reason, reason, mail_consent) \
             VALUES ('imp-{n:03}', 's', 'ada', 'admin', 'carl', {}, {}, 'stopped', 'ticket {n}', 0)",
            1_700_000_000_000_i64 + n * 60_000,
            1_700_000_000_000_i64 + n * 60_000 + 5_000,
        ));
    }
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    sql(&stack, &statements);
    let tickets = |page: &str| -> Vec<String> {
        page.split("<td>ticket ")
            .skip(1)
            .filter_map(|rest| rest.split('<').next())
            .map(str::to_owned)
            .collect()
    };
    let carl = stack.signed_in("carl");
    let first = carl.get("/_actas/access-history").unwrap();
    assert_eq!(first.status, StatusCode::OK);
    let newest: Vec<String> = (5..105).rev().map(|n| n.to_string()).collect();
    assert_eq!(tickets(&first.body), newest);
    assert!(!first.body.contains("Most recent"));
    let older = link_labelled(&first.body, "Older →").expect("a link to older ones");
    let second = carl.get(&older).unwrap();
    assert_eq!(tickets(&second.body), ["4", "3", "2", "1", "0"]);
    assert_eq!(link_labelled(&second.body, "Older →"), None);
    assert_eq!(
        link_labelled(&second.body, "⇤ Most recent").as_deref(),
        Some("/_actas/access-history")
    );
    for bad in [
        "x",
        "1700000000000.",
        ".imp-001",
        "12.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.0.1.2.3.4.5.6.7.8.9.a",
    ] {
        let reply = carl
            .get(&format!("/_actas/access-history?older={bad}"))
            .unwrap();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Another customer's history is not reachable by a link of carl's.
    let cora = stack.signed_in("cora");
    let theirs = cora.get(&older).unwrap();
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(tickets(&theirs.body).is_empty(), "{}", theirs.body);
}

#[test]
fn metrics_show_the_audit_queue() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    let m = ada.send("GET", "/_actas/metrics", &[], None).unwrap();
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.body.contains("actas_audit_queue_depth "), "{}", m.body);
    assert!(m.body.contains("actas_audit_write_seconds_total "));
}

#[test]
fn metrics_are_not_open_to_clients_a_local_load_balancer_passes_on() {
    let http_port = free_port();
    let stack = Stack::with(Options {
        extra_config: format!(
            "[http]\nlisten = \"127.0.0.1:{http_port}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ),
        ..Options::default()
    });
    // The balancer runs on this machine, so every request reaches actas from 127.0.0.1.
    let lb = Browser::new(
        &format!("http://127.0.0.1:{http_port}"),
        &stack.path().join("certs/ca.pem"),
    );
    let passed_on = lb
        .send(
            "GET",
            "/_actas/metrics",
            &[("x-forwarded-for", "198.51.100.7")],
            None,
        )
        .unwrap();
    assert_eq!(
        passed_on.status,
        StatusCode::FORBIDDEN,
        "{}",
        passed_on.body
    );
    assert!(!passed_on.body.contains("actas_requests_total"));
    // A scraper on this machine talking to actas directly still reads them.
    let local = lb.send("GET", "/_actas/metrics", &[], None).unwrap();
    assert_eq!(local.status, StatusCode::OK);
    assert!(
        local.body.contains("actas_requests_total"),
        "{}",
        local.body
    );
}

#[test]
fn a_start_that_does_not_take_effect_is_on_record_as_not_taking_effect() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    // The start is recorded first, then the store fails to make it.
    sql(
        &stack,
        &["CREATE TRIGGER no_start BEFORE INSERT ON impersonations BEGIN SELECT RAISE(ABORT, 'sessions store down'); END"],
    );
    let r = ada.impersonate("carl", "", false);
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    assert!(!ada
        .get("/_actas/access-history")
        .unwrap()
        .body
        .contains("Stop impersonating"));
    let start = stack.wait_audit("the start", |r| r["kind"] == "impersonation.start");
    let not_made = stack.wait_audit("that it did not take effect", |r| {
        r["kind"] == "impersonation.denied" && r["impersonation_id"] == start["impersonation_id"]
    });
    assert_eq!(not_made["actor"], "ada");
    assert_eq!(not_made["subject"], "carl");
    assert!(
        not_made["reason"]
            .as_str()
            .is_some_and(|r| r.contains("did not take effect") && r.contains("sessions store down")),
        "{not_made}"
    );
}

#[test]
fn a_start_that_loses_a_race_is_a_409_not_a_denial() {
    // Two clicks on "Sign in as this user": the second finds the session changed by the
    // first. Allowed by the policy, it must not be shown as "You don't have permission".
    // The trigger makes the store's conditional update find the session changed, as the
    // losing click does.
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    sql(
        &stack,
        &["CREATE TRIGGER lose_the_race BEFORE UPDATE OF imp_id ON sessions WHEN NEW.imp_id IS NOT NULL BEGIN SELECT RAISE(IGNORE); END"],
    );
    let r = ada.impersonate("carl", "", false);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body.contains("Your session changed meanwhile"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("permission"), "{}", r.body);
    let start = stack.wait_audit("the start", |r| r["kind"] == "impersonation.start");
    let not_made = stack.wait_audit("that it did not take effect", |r| {
        r["kind"] == "impersonation.denied" && r["impersonation_id"] == start["impersonation_id"]
    });
    assert!(
        not_made["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the session changed meanwhile")),
        "{not_made}"
    );
    // Nothing started: ada is still herself.
    assert!(!ada.get("/").unwrap().body.contains("Stop impersonating"));
}

#[test]
fn verify_with_a_kept_head_catches_deleted_newest_records() {
    let stack = tampered_stack();
    let (_, out) = verify(&stack);
    let head = out
        .lines()
        .find_map(|l| l.split_once("; head ").map(|(_, h)| h.trim().to_owned()))
        .unwrap_or_else(|| panic!("no head printed: {out}"));
    let (ok, out, err) = stack.actas(&["audit", "verify", "--expect-head", &head]);
    assert!(ok, "the head just printed is there: {out}{err}");
    sql(
        &stack,
        &["DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)"],
    );
    // A chain cut short is still a valid chain: only a head kept elsewhere shows the cut.
    let (ok, out) = verify(&stack);
    assert!(ok, "{out}");
    let (ok, out, err) = stack.actas(&["audit", "verify", "--expect-head", &head]);
    assert!(!ok);
    assert!(
        out.contains("the newest records were deleted"),
        "{out}{err}"
    );
    for bad in ["nonsense", "x:0:abc", &format!("{head}x")] {
        let (ok, _, err) = stack.actas(&["audit", "verify", "--expect-head", bad]);
        assert!(!ok && err.contains("INSTANCE:SEQ:HASH"), "{bad}: {err}");
    }
}

#[test]
fn tail_follow_prints_a_slow_requests_record_written_after_newer_ones() {
    use std::io::BufRead;
    let echo = Echo::start("text/plain", b"ok".to_vec());
    *echo.hook.lock().unwrap() = Some(Box::new(|seen: &Seen| {
        if seen.request_line.contains("/slow") {
            std::thread::sleep(Duration::from_millis(2500));
        }
    }));
    let stack = Stack::with_echo(&echo, "");
    let carl = stack.signed_in("carl");
    carl.get("/first").unwrap();
    stack.wait_audit("a first request", |r| r["path"] == "/first");
    let mut tail = std::process::Command::new(bin("actas"))
        .arg("--config")
        .arg(&stack.config)
        .args(["audit", "tail", "-n", "1", "--follow"])
        .env("ACTAS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start actas audit tail");
    let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let collected = lines.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            collected.lock().unwrap().push(line);
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    // The slow request arrives first and is recorded last, dated when it arrived.
    let slow = {
        let carl = carl.clone();
        std::thread::spawn(move || carl.get("/slow").unwrap())
    };
    std::thread::sleep(Duration::from_millis(300));
    carl.get("/fast").unwrap();
    assert_eq!(slow.join().unwrap().status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    let printed = |path: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("\"path\":\"{path}\"")))
    };
    while !(printed("/slow") && printed("/fast")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(printed("/fast"), "{:?}", lines.lock().unwrap());
    assert!(
        printed("/slow"),
        "the slow request's record was never printed: {:?}",
        lines.lock().unwrap()
    );
}
