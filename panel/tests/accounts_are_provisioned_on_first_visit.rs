//! The first request for a subject provisions its account exactly once: files root with
//! a welcome page and README, the default domain, a postmaster mailbox with three
//! unread messages, default settings, and an "Account provisioned" activity entry —
//! even when several first requests race.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Panel, Who, ASSERTION};
use tower::ServiceExt;

#[tokio::test]
async fn the_first_visit_creates_the_account_and_its_resources() {
    let panel = Panel::start().await;
    let reply = panel.get(&Who::customer("carl"), "/").await;
    assert_eq!(reply.status, StatusCode::OK);

    let root = panel.files_of("carl");
    let index = std::fs::read_to_string(root.join("public_html/index.html")).expect("index");
    assert!(index.contains("Welcome to carl's site"));
    assert!(root.join("README.txt").is_file());

    let store = &panel.state.store;
    let account = panel.account("carl").await;
    let domains = store.list_domains(account.id).await.expect("domains");
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].name, "carl.example.test");

    let mailboxes = store.list_mailboxes(account.id).await.expect("mailboxes");
    assert_eq!(mailboxes.len(), 1);
    assert_eq!(mailboxes[0].name, "postmaster");
    assert_eq!((mailboxes[0].messages, mailboxes[0].unread), (3, 3));
    let messages = store
        .list_messages(account.id, "postmaster")
        .await
        .expect("messages")
        .expect("mailbox");
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.iter().any(|s| s.contains("Welcome")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("invoice")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("is live")),
        "{subjects:?}"
    );

    let settings = store
        .settings(account.id)
        .await
        .expect("settings")
        .expect("row");
    assert_eq!(settings.contact_email, "carl@example.test");
    assert!(settings.notify_billing && settings.notify_security);

    let activity = store
        .recent_activity(account.id, 10)
        .await
        .expect("activity");
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].kind, "account.provisioned");
    assert_eq!(activity[0].summary, "Account provisioned");

    // The dashboard shows the new account's counts.
    let text = reply.text();
    assert!(text.contains("Unread messages"));
    assert!(text.contains("Account provisioned"));
}

#[tokio::test]
async fn later_visits_provision_nothing_more() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for _ in 0..3 {
        assert_eq!(panel.get(&carl, "/").await.status, StatusCode::OK);
    }
    let store = &panel.state.store;
    let account = panel.account("carl").await;
    assert_eq!(
        store
            .recent_activity(account.id, 10)
            .await
            .expect("activity")
            .len(),
        1
    );
    assert_eq!(
        store.list_mailboxes(account.id).await.expect("mail")[0].messages,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_requests_provision_exactly_once() {
    let panel = Panel::start().await;
    let token = panel.token(&Who::customer("carl"));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let app = panel.app();
        let request = Request::builder()
            .uri("/domains")
            .header(ASSERTION, token.clone())
            .body(Body::empty())
            .expect("request");
        requests.spawn(async move { app.oneshot(request).await.expect("answer").status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    let store = &panel.state.store;
    let account = panel.account("carl").await;
    assert_eq!(
        store
            .recent_activity(account.id, 50)
            .await
            .expect("activity")
            .len(),
        1
    );
    assert_eq!(
        store.list_domains(account.id).await.expect("domains").len(),
        1
    );
    let mailboxes = store.list_mailboxes(account.id).await.expect("mail");
    assert_eq!(mailboxes.len(), 1);
    assert_eq!(mailboxes[0].messages, 3);
}

#[tokio::test]
async fn edited_starting_files_survive_later_visits() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel.get(&carl, "/").await;
    let index = panel.files_of("carl").join("public_html/index.html");
    std::fs::write(&index, "mine").expect("write");
    panel.get(&carl, "/files").await;
    assert_eq!(std::fs::read_to_string(&index).expect("read"), "mine");
}

/// The bodies of the messages `username` finds in postmaster.
async fn seeded_mail(panel: &Panel, username: &str) -> Vec<String> {
    let store = &panel.state.store;
    let account = panel.account(username).await;
    let mut bodies = Vec::new();
    for header in store
        .list_messages(account.id, "postmaster")
        .await
        .expect("messages")
        .expect("mailbox")
    {
        let message = store
            .open_message(account.id, "postmaster", header.id)
            .await
            .expect("message")
            .expect("found");
        bodies.push(format!("{}\n{}", message.subject, message.body));
    }
    bodies
}

async fn domains_of(panel: &Panel, username: &str) -> Vec<String> {
    let account = panel.account(username).await;
    panel
        .state
        .store
        .list_domains(account.id)
        .await
        .expect("domains")
        .into_iter()
        .map(|domain| domain.name)
        .collect()
}

#[tokio::test]
async fn a_username_that_is_no_hostname_starts_without_a_default_domain() {
    let panel = Panel::start().await;
    let reply = panel.get(&Who::customer("ada_l"), "/mail").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(domains_of(&panel, "ada_l").await.is_empty());
    assert!(reply.text().contains(">postmaster</a>"), "{}", reply.text());
    let mail = seeded_mail(&panel, "ada_l").await;
    assert_eq!(mail.len(), 2, "welcome and invoice, no 'site is live'");
    for text in &mail {
        assert!(!text.contains("ada_l.example.test"), "{text}");
        assert!(!text.contains("is live"), "{text}");
    }
}

#[tokio::test]
async fn a_username_with_a_dot_gets_no_default_domain_inside_another_accounts() {
    let panel = Panel::start().await;
    panel.get(&Who::customer("www.carl"), "/").await;
    assert!(domains_of(&panel, "www.carl").await.is_empty());
    for text in seeded_mail(&panel, "www.carl").await {
        assert!(!text.contains("www.carl.example.test"), "{text}");
    }
    // Nor can it add that name itself.
    let reply = panel
        .post(
            &Who::customer("www.carl"),
            "/domains",
            &[("name", "www.carl.example.test")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    panel.get(&Who::customer("carl"), "/").await;
    assert_eq!(domains_of(&panel, "carl").await, ["carl.example.test"]);
}

#[tokio::test]
async fn a_default_domain_already_hosted_elsewhere_is_left_with_its_owner_and_not_announced() {
    let panel = Panel::start().await;
    let dora = Who::customer("dora");
    panel.get(&dora, "/").await;
    // Claimed before names in the provider's zone were refused: the page refuses it now.
    let account = panel.account("dora").await;
    let identity = actas_panel::Identity {
        subject: "dora".to_owned(),
        subject_role: actas_panel::Role::Customer,
        subject_name: "dora".to_owned(),
        session_id: "session-1".to_owned(),
        actor: None,
        impersonation_id: None,
        request_id: None,
    };
    let entry = actas_panel::store::ActivityEntry::new(
        &identity,
        actas_panel::store::ActivityKind::DomainAdded,
        "Added domain carl.example.test",
    );
    panel
        .state
        .store
        .add_domain(account.id, "carl.example.test", &entry)
        .await
        .expect("add");
    assert_eq!(
        panel.get(&Who::customer("carl"), "/").await.status,
        StatusCode::OK
    );
    assert!(domains_of(&panel, "carl").await.is_empty());
    let mail = seeded_mail(&panel, "carl").await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    for text in &mail {
        assert!(!text.contains("carl.example.test"), "{text}");
    }
    assert!(domains_of(&panel, "dora")
        .await
        .contains(&"carl.example.test".to_owned()));
}
