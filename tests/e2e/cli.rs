//! The ops command line, end to end: managing accounts, reading the audit log, making
//! development material, and clear errors for bad input.

use actas_e2e::*;

fn no_server() -> Stack {
    Stack::with(Options {
        panel: false,
        ..Options::default()
    })
}

#[test]
fn accounts_are_added_listed_disabled_enabled_moved_and_given_new_passwords() {
    let stack = no_server();
    let (ok, out, err) = stack.actas(&["accounts", "list"]);
    assert!(ok, "{err}");
    for user in ["ada", "rita", "rex", "carl", "cora", "dave"] {
        assert!(out.contains(user), "{out}");
    }
    let (ok, out, _) = stack.actas(&["accounts", "list", "--created-by", "rita"]);
    assert!(ok);
    assert!(
        out.contains("carl") && out.contains("cora") && !out.contains("dave"),
        "{out}"
    );

    let (ok, _, err) = actas(
        &stack.config,
        &["accounts", "passwd", "carl"],
        Some("a brand new password\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(
        stack.browser().login("carl", PASSWORD).status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        stack.browser().login("carl", "a brand new password").status,
        StatusCode::SEE_OTHER
    );

    assert!(stack.actas(&["accounts", "disable", "cora"]).0);
    assert_eq!(
        stack.browser().login("cora", PASSWORD).status,
        StatusCode::UNAUTHORIZED
    );
    assert!(stack.actas(&["accounts", "enable", "cora"]).0);
    assert_eq!(
        stack.browser().login("cora", PASSWORD).status,
        StatusCode::SEE_OTHER
    );

    assert!(stack.actas(&["accounts", "move", "dave", "--to", "rita"]).0);
    let (_, out, _) = stack.actas(&["accounts", "list", "--created-by", "rita"]);
    assert!(out.contains("dave"), "{out}");
}

#[test]
fn a_new_password_set_from_the_command_line_signs_out_the_accounts_sessions() {
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let (ok, out, err) = actas(
        &stack.config,
        &["accounts", "passwd", "carl"],
        Some("a brand new password\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("1 session(s)"), "{out}");
    // Within the session cache's lifetime (at most a second), carl's session is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = carl.get("/").unwrap();
        if r.status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carl is still signed in: {}",
            r.status
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ended = stack.wait_audit("carl's session ended", |r| {
        r["kind"] == "logout" && r["actor"] == "carl"
    });
    assert_eq!(ended["reason"], "revoked");
    // Sessions of other accounts are untouched, an impersonation of carl included.
    let page = ada.get("/_actas/access-history").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Stop impersonating"), "{}", page.body);
}

#[test]
fn disabling_an_account_revokes_its_sessions_for_good_even_if_enabled_again() {
    // Neither carl nor ada's impersonation of him makes a request while he is disabled:
    // enabling him again must not bring either back.
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let (ok, out, err) = stack.actas(&["accounts", "disable", "carl"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 session(s)") && out.contains("1 impersonation(s)"),
        "{out}"
    );
    assert!(stack.actas(&["accounts", "enable", "carl"]).0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        carl.get("/").unwrap().status,
        StatusCode::SEE_OTHER,
        "carl's session ended"
    );
    let ended = stack.wait_audit("carl's session ended", |r| {
        r["kind"] == "logout" && r["actor"] == "carl"
    });
    assert_eq!(ended["reason"], "revoked");
    // Ada is still signed in, as herself.
    let page = ada.get("/_actas/accounts").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Stop impersonating"), "{}", page.body);
    let stop = stack.wait_audit("the impersonation ended", |r| {
        r["kind"] == "impersonation.stop"
    });
    assert_eq!(stop["subject"], "carl");
    assert_eq!(stop["reason"], "revoked");
    // Carl signs in again with his password: disabling is not a lockout once lifted.
    assert_eq!(
        stack.browser().login("carl", PASSWORD).status,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn bad_account_commands_say_what_is_wrong() {
    let stack = no_server();
    let cases: [(&[&str], Option<&str>, &str); 8] = [
        (
            &["accounts", "add", "Bad Name", "--role", "customer"],
            Some("password123\n"),
            "not a valid username",
        ),
        (
            &["accounts", "add", "eve", "--role", "root"],
            Some("password123\n"),
            "not a role",
        ),
        (
            &[
                "accounts",
                "add",
                "eve",
                "--role",
                "customer",
                "--created-by",
                "nobody",
            ],
            Some("password123\n"),
            "no such account",
        ),
        (
            &["accounts", "add", "ada", "--role", "admin"],
            Some("password123\n"),
            "already exists",
        ),
        (
            &["accounts", "add", "eve", "--role", "customer"],
            Some("short\n"),
            "at least 8 characters",
        ),
        (
            &["accounts", "add", "eve", "--role", "customer"],
            Some(""),
            "no password",
        ),
        (&["accounts", "disable", "nobody"], None, "no account named"),
        (
            &["accounts", "move", "carl", "--to", "nobody"],
            None,
            "no such account",
        ),
    ];
    for (args, stdin, expected) in cases {
        let (ok, _, err) = actas(&stack.config, args, stdin);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (_, out, _) = stack.actas(&["accounts", "list"]);
    assert!(!out.contains("eve"), "nothing half-added: {out}");
}

#[test]
fn an_account_moves_only_to_an_admin_or_reseller_that_is_neither_itself_nor_its_own() {
    let stack = no_server();
    for (args, expected) in [
        (["carl", "--to", "carl"], "carl is a customer"),
        (["rita", "--to", "carl"], "carl is a customer"),
        (["rita", "--to", "rita"], "rita cannot own itself"),
        (["ada", "--to", "rita"], "rita belongs to ada"),
    ] {
        let (ok, _, err) = stack.actas(&[&["accounts", "move"][..], &args].concat());
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let (ok, _, err) = actas(
        &stack.config,
        &[
            "accounts",
            "add",
            "eve",
            "--role",
            "customer",
            "--created-by",
            "cora",
        ],
        Some("password123\n"),
    );
    assert!(!ok && err.contains("cora is a customer"), "{err}");
    let (_, out, _) = stack.actas(&["accounts", "list", "--created-by", "carl"]);
    assert_eq!(out.lines().count(), 1, "carl owns nothing: {out}");
    let (_, out, _) = stack.actas(&["accounts", "list", "--created-by", "ada"]);
    assert!(out.contains("rita"), "rita still belongs to ada: {out}");
    let (_, out, _) = stack.actas(&["accounts", "list", "--created-by", "rita"]);
    assert!(!out.contains("ada"), "ada belongs to no one: {out}");
}

#[test]
fn audit_tail_prints_the_newest_records_as_json_lines() {
    let stack = Stack::start();
    let b = stack.signed_in("carl");
    for i in 0..5 {
        b.get(&format!("/?tail={i}")).unwrap();
    }
    stack.wait_audit("last", |r| r["path"] == "/?tail=4");
    let (ok, out, err) = stack.actas(&["audit", "tail", "-n", "3"]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["path"], "/?tail=4", "oldest first, newest last");
    assert!(
        lines[0]["ts"].as_str().unwrap().contains('T'),
        "RFC 3339 time"
    );
    let (ok, out, err) = stack.actas(&["audit", "tail", "-n", "0"]);
    assert!(ok && out.is_empty(), "-n 0 prints no record: {out}{err}");
    let (ok, _, err) = stack.actas(&["audit", "tail", "-n", "-1"]);
    assert!(!ok && err.contains("-1"), "{err}");
}

#[test]
fn audit_output_into_a_closed_pipe_is_not_a_failure() {
    // `actas audit export | head -1`: once the reader has gone, the command stops quietly
    // and exits 0, so a script with `pipefail` does not fail for it.
    let stack = Stack::start();
    stack.signed_in("carl").get("/").unwrap();
    stack.wait_audit("a request", |r| r["path"] == "/");
    for args in [&["audit", "export"][..], &["audit", "tail"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(bin("actas"))
            .arg("--config")
            .arg(&stack.config)
            .args(args)
            .env("ACTAS_LOG", "warn")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn audit_commands_refuse_a_database_that_is_not_there_instead_of_making_one() {
    let stack = no_server();
    let db = stack.path().join("actas.db");
    let typo = stack.path().join("typo.db");
    let text = std::fs::read_to_string(&stack.config)
        .unwrap()
        .replace(&db.display().to_string(), &typo.display().to_string());
    assert!(text.contains("typo.db"), "{text}");
    let config = stack.path().join("typo.toml");
    std::fs::write(&config, text).unwrap();
    for args in [
        &["audit", "verify"][..],
        &["audit", "export"],
        &["audit", "tail"],
    ] {
        let (ok, out, err) = actas(&config, args, None);
        assert!(!ok, "{args:?} answered from a database made for it: {out}");
        assert!(
            err.contains("cannot open the database") && err.contains("typo.db"),
            "{args:?}: {err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // The database that is there is read as before.
    let (ok, out, err) = stack.actas(&["audit", "verify"]);
    assert!(ok && out.contains("OK:"), "{out}{err}");
}

#[test]
fn audit_export_filters_and_refuses_bad_filters() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "export test", false);
    ada.get("/domains").unwrap();
    ada.stop();
    let start = stack.wait_audit("start", |r| r["kind"] == "impersonation.start");
    let imp = start["impersonation_id"].as_str().unwrap();
    stack.wait_audit("stop", |r| r["kind"] == "impersonation.stop");
    let (ok, out, err) = stack.actas(&[
        "audit",
        "export",
        "--impersonation",
        imp,
        "--format",
        "jsonl",
    ]);
    assert!(ok, "audit export failed: {err}");
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"impersonation.start"), "{kinds:?}");
    assert!(kinds.contains(&"request"), "{kinds:?}");
    // Records are ordered by time (ms), then by their place in the chain. The stop request
    // arrived before the impersonation ended but is logged when it completes, so within
    // the same millisecond its record may follow the stop event: nothing else may.
    let stop_at = kinds
        .iter()
        .position(|k| *k == "impersonation.stop")
        .unwrap_or_else(|| panic!("no stop record: {kinds:?}"));
    for after in &records[stop_at + 1..] {
        assert_eq!(after["path"], "/_actas/impersonate/stop", "{records:?}");
    }
    let (ok, out, err) = stack.actas(&[
        "audit",
        "export",
        "--subject",
        "carl",
        "--kind",
        "impersonation.stop",
    ]);
    assert!(ok, "audit export failed: {err}");
    assert_eq!(out.lines().count(), 1);
    for (args, expected) in [
        (vec!["audit", "export", "--since", "yesterday"], "RFC 3339"),
        (
            vec!["audit", "export", "--kind", "nonsense"],
            "not a record kind",
        ),
        (vec!["audit", "export", "--format", "csv"], "only jsonl"),
    ] {
        let (ok, _, err) = stack.actas(&args);
        assert!(!ok);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let (ok, out, _) = stack.actas(&["audit", "export", "--since", "2999-01-01T00:00:00Z"]);
    assert!(ok && out.is_empty());
}

#[test]
fn policy_explain_decides_on_the_decoded_path_as_the_proxy_does() {
    let stack = no_server();
    let explain = |path: &str| {
        let (ok, out, err) = stack.actas(&[
            "policy",
            "explain",
            "--actor",
            "ada",
            "--action",
            "request",
            "--target",
            "carl",
            "--path",
            path,
            "--impersonating",
        ]);
        assert!(ok, "{err}");
        out
    };
    for path in [
        "/mail/a/messages/1",
        "/mail/a/messages%2F1",
        "/mail/a/messages%2F1?raw=1",
    ] {
        let out = explain(path);
        assert!(
            out.starts_with("DENY") && out.contains("mail-content-needs-consent"),
            "{path}: {out}"
        );
        assert!(out.contains("/mail/a/messages/1 as carl"), "{path}: {out}");
    }
}

#[test]
fn certs_dev_writes_a_ca_a_server_certificate_and_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let (ok, out, err) = actas(
        &dir.path().join("none.toml"),
        &[
            "certs",
            "dev",
            "--out",
            out_dir.to_str().unwrap(),
            "--name",
            "panel.example",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("signing.pub"), "{out}");
    for f in [
        "ca.pem",
        "server.pem",
        "server.key",
        "signing.key",
        "signing.pub",
    ] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    assert!(std::fs::read_to_string(out_dir.join("signing.pub"))
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
}

#[test]
fn certs_dev_keeps_a_set_only_if_it_covers_the_names_and_refuses_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let certs_dev = |names: &[&str]| {
        let mut args = vec!["certs", "dev", "--out", out_dir.to_str().unwrap()];
        for n in names {
            args.extend(["--name", n]);
        }
        actas(&dir.path().join("none.toml"), &args, None)
    };
    for bad in ["not a host!", ""] {
        let (ok, _, err) = certs_dev(&[bad]);
        assert!(!ok && err.contains("neither a DNS name"), "{bad:?}: {err}");
        assert!(!out_dir.join("server.pem").exists(), "{bad:?}");
    }
    let (ok, out, err) = certs_dev(&["panel.example"]);
    assert!(ok, "{err}");
    assert!(!out.contains("kept"), "{out}");
    let key = std::fs::read(out_dir.join("signing.key")).unwrap();

    let (ok, out, err) = certs_dev(&["panel.example"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("kept the development material already in") && out.contains("--force"),
        "{out}"
    );
    let (ok, _, err) = certs_dev(&["other.example"]);
    assert!(!ok, "a --name the kept certificate is not for");
    assert!(
        err.contains("not for other.example") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(out_dir.join("signing.key")).unwrap(), key);
}

#[test]
fn a_broken_policy_stops_check_and_serve_with_its_location() {
    let stack = no_server();
    std::fs::write(
        stack.policies.join("oops.cedar"),
        "permit (principal, action, resource)\nwhen { principal.role == };\n",
    )
    .unwrap();
    let (ok, _, err) = stack.actas(&["check"]);
    assert!(!ok);
    assert!(err.contains("oops.cedar:2:"), "{err}");
    let (ok, _, err) = actas(&stack.config, &["serve"], None);
    assert!(!ok, "serve refuses to start");
    assert!(err.contains("oops.cedar:2:"), "{err}");
}

#[test]
fn a_database_password_never_appears_in_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actas.toml");
    std::fs::write(
        &config,
        "[http]\nlisten = \"127.0.0.1:1\"\n[upstream]\naddress = \"127.0.0.1:1\"\n\
         [assertion]\nsigning_key = \"k\"\n\
         [database]\nurl = \"postgres://actas:hunter2@127.0.0.1:1/actas\"\n",
    )
    .unwrap();
    for args in [
        &["accounts", "list"][..],
        &["audit", "export"],
        &["audit", "verify"],
    ] {
        let (ok, _, err) = actas(&config, args, None);
        assert!(!ok, "{args:?} should fail");
        assert!(
            err.contains("database"),
            "{args:?} names the problem: {err}"
        );
        assert!(
            err.contains("127.0.0.1:1"),
            "{args:?} names the server: {err}"
        );
        assert!(
            !err.contains("hunter2"),
            "{args:?} shows the password: {err}"
        );
        assert!(
            err.contains("refused"),
            "{args:?} says why (not only that the pool timed out): {err}"
        );
        assert_eq!(
            err.matches("database error").count(),
            1,
            "{args:?} says it once: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Runs `actas policy test` in `cwd`, with `--config` only when given.
fn policy_test_in(cwd: &std::path::Path, config: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = std::process::Command::new(bin("actas"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd
        .args(["policy", "test"])
        .current_dir(cwd)
        .env_remove("ACTAS_CONFIG")
        .env("ACTAS_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run actas");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_test_with_a_broken_config_fails_instead_of_testing_another_directory() {
    let dir = tempfile::tempdir().unwrap();
    // ./policies holds good policies that pass: falling back to them would hide the error.
    copy_dir(&repo_root().join("policies"), &dir.path().join("policies"));
    let (ok, err) = policy_test_in(dir.path(), None);
    assert!(ok, "without a configuration ./policies is tested: {err}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[policy]\ndir = \"elsewhere\"\nwatch = maybe\n").unwrap();
    let (ok, err) = policy_test_in(dir.path(), Some(&broken));
    assert!(!ok, "a broken --config is an error");
    assert!(
        err.contains("broken.toml:3:"),
        "names the file and line: {err}"
    );

    let (ok, err) = policy_test_in(dir.path(), Some(&dir.path().join("missing.toml")));
    assert!(!ok, "a --config that does not exist is an error");
    assert!(err.contains("missing.toml"), "{err}");
    // Named, the default's own name is no exception: the operator meant that file.
    let (ok, err) = policy_test_in(dir.path(), Some(std::path::Path::new("actas.toml")));
    assert!(!ok, "--config actas.toml that does not exist is an error");
    assert!(err.contains("actas.toml"), "{err}");

    // The default file, present but broken, is an error too.
    std::fs::copy(&broken, dir.path().join("actas.toml")).unwrap();
    let (ok, err) = policy_test_in(dir.path(), None);
    assert!(!ok, "a broken ./actas.toml is an error");
    assert!(err.contains("actas.toml:3:"), "{err}");
}

/// A pseudo-terminal: (master, slave).
fn openpty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the two integers; the null name,
    // termios and window size ask for the defaults.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    }
}

/// Whether the terminal echoes what is typed (a pty's master reports its slave's settings).
fn echoes(master: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data; tcgetattr fills it from a descriptor we own.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::tcgetattr(master.as_raw_fd(), &mut t) };
    assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    t.c_lflag & libc::ECHO != 0
}

/// Runs `actas ARGS` with a new pseudo-terminal as its standard input and controlling
/// terminal, as from a login shell, and waits until it has turned echo off (or 5 s have
/// passed, when it never does). Returns the child, the terminal's master side to type on,
/// and a thread collecting everything the terminal shows until the child closes it.
fn at_a_terminal(
    stack: &Stack,
    args: &[&str],
) -> (
    std::process::Child,
    std::fs::File,
    std::thread::JoinHandle<String>,
) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let (master, slave) = openpty();
    let mut cmd = std::process::Command::new(bin("actas"));
    cmd.arg("--config")
        .arg(&stack.config)
        .args(args)
        .env("ACTAS_LOG", "warn")
        .stdin(slave.try_clone().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec. The terminal becomes the
    // child's controlling terminal (its /dev/tty), as in a login shell.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("start actas");
    // Only the child may hold the terminal open: the screen ends when it exits.
    drop(cmd);
    drop(slave);
    let mut screen_reader = master.try_clone().unwrap();
    let screen = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = screen_reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while echoes(&master) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, master, screen)
}

#[test]
fn a_password_typed_at_a_terminal_is_not_echoed() {
    use std::io::Write;
    let stack = no_server();
    let (child, mut master, screen) =
        at_a_terminal(&stack, &["accounts", "add", "eve", "--role", "customer"]);
    master.write_all(b"typed at a terminal\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        echoes(&master),
        "the terminal is left echoing, as it was found"
    );
    drop(master);
    let shown = screen.join().unwrap();
    assert!(
        !shown.contains("typed at a terminal"),
        "the password was echoed: {shown:?}"
    );
    assert_eq!(
        stack.browser().login("eve", "typed at a terminal").status,
        StatusCode::SEE_OTHER,
        "the password typed is the one set"
    );
}

#[test]
fn ctrl_c_at_the_password_prompt_ends_the_command_and_gives_the_terminal_back_echoing() {
    use std::io::Write;
    let stack = no_server();
    let (child, mut master, screen) =
        at_a_terminal(&stack, &["accounts", "add", "fay", "--role", "customer"]);
    master.write_all(b"half a pass\x03").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the command went on: {err}");
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&out.status).is_none(),
        "killed by a signal with the terminal silent: {:?}",
        out.status
    );
    assert!(err.contains("interrupted"), "{err}");
    assert!(echoes(&master), "the terminal is left without echo");
    drop(master);
    screen.join().unwrap();
    let (ok, listed, _) = stack.actas(&["accounts", "list"]);
    assert!(ok);
    assert!(!listed.contains("fay"), "{listed}");
}

#[test]
fn reading_commands_and_check_leave_a_database_behind_this_release_as_it_is() {
    // As if the database were last migrated by the release before migration 3: the
    // instances that serve from it still run that release.
    let stack = no_server();
    let db = stack.path().join("actas.db");
    let migrations = || {
        block_on(async {
            let mut c = sqlite_at(&db).await;
            let rows: Vec<(i64,)> =
                sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            rows.into_iter().map(|(v,)| v).collect::<Vec<i64>>()
        })
    };
    let all = migrations();
    assert!(all.contains(&3), "{all:?}");
    block_on(async {
        let mut c = sqlite_at(&db).await;
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3")
            .execute(&mut c)
            .await
            .unwrap();
    });

    let (ok, out, err) = stack.actas(&["check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 migration pending (3); serve applies it"),
        "{out}"
    );
    for args in [
        &["audit", "verify"][..],
        &["audit", "export"],
        &["audit", "tail"],
    ] {
        let (ok, out, err) = stack.actas(args);
        assert!(!ok, "{args:?} read a database behind this release: {out}");
        assert!(
            err.contains("behind this release") && err.contains("pending (3)"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        migrations(),
        all[..all.len() - 1],
        "a command migrated the database"
    );
}
