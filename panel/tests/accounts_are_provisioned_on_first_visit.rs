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

#[tokio::test]
async fn a_username_that_is_no_hostname_starts_without_a_default_domain() {
    let panel = Panel::start().await;
    let reply = panel.get(&Who::customer("ada_l"), "/mail").await;
    assert_eq!(reply.status, StatusCode::OK);
    let store = &panel.state.store;
    let account = panel.account("ada_l").await;
    assert!(store
        .list_domains(account.id)
        .await
        .expect("domains")
        .is_empty());
    assert_eq!(
        store.list_mailboxes(account.id).await.expect("mail")[0].messages,
        3
    );
    assert!(reply.text().contains(">postmaster</a>"), "{}", reply.text());
}

#[tokio::test]
async fn a_default_domain_already_hosted_elsewhere_is_left_with_its_owner() {
    let panel = Panel::start().await;
    let dora = Who::customer("dora");
    panel
        .post(&dora, "/domains", &[("name", "carl.example.test")])
        .await
        .assert_redirect("/domains");
    assert_eq!(
        panel.get(&Who::customer("carl"), "/").await.status,
        StatusCode::OK
    );
    let store = &panel.state.store;
    let carl = panel.account("carl").await;
    assert!(store
        .list_domains(carl.id)
        .await
        .expect("domains")
        .is_empty());
    let dora = panel.account("dora").await;
    let names: Vec<String> = store
        .list_domains(dora.id)
        .await
        .expect("domains")
        .into_iter()
        .map(|domain| domain.name)
        .collect();
    assert!(names.contains(&"carl.example.test".to_owned()));
}
