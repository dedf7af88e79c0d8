//! Mail: the mailbox list shows addresses and counts; a mailbox's page lists senders,
//! subjects, dates and unread markers but never a body; only the message page shows the
//! full text, and opening it marks it read (not when staff open it while impersonating:
//! the customer has not read it). Mailboxes are created and deleted on
//! request, with invalid names refused.

mod common;

use axum::http::StatusCode;
use common::{Panel, Who};

/// (id, subject, body) of the postmaster messages of `username` (provisioned first),
/// read straight from the database so that nothing is marked read.
async fn messages(panel: &Panel, username: &str) -> Vec<(i64, String, String)> {
    panel.get(&Who::customer(username), "/mail").await;
    let store = &panel.state.store;
    let pool = sqlite(panel).await;
    let account = panel.account(username).await;
    let headers = store
        .list_messages(account.id, "postmaster")
        .await
        .expect("messages")
        .expect("mailbox");
    let mut out = Vec::new();
    for header in headers {
        let body: String = sqlx::query_scalar("SELECT body FROM messages WHERE id = ?")
            .bind(header.id)
            .fetch_one(&pool)
            .await
            .expect("body");
        out.push((header.id, header.subject, body));
    }
    out
}

async fn sqlite(panel: &Panel) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        panel.data_dir().join("panel.db").display()
    ))
    .await
    .expect("db")
}

#[tokio::test]
async fn the_mailbox_list_shows_addresses_and_counts() {
    let panel = Panel::start().await;
    let reply = panel.get(&Who::customer("carl"), "/mail").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("postmaster@carl.example.test"), "{text}");
    assert!(text.contains("<td class=\"num\">3</td>"), "{text}");
    assert!(text.contains("<span class=\"badge\">3</span>"), "{text}");
}

#[tokio::test]
async fn a_mailbox_page_lists_messages_without_bodies() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let reply = panel.get(&carl, "/mail/postmaster").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let all = messages(&panel, "carl").await;
    assert_eq!(all.len(), 3);
    for (id, subject, body) in &all {
        assert!(text.contains(subject.as_str()), "subject {subject} missing");
        assert!(text.contains(&format!("/mail/postmaster/messages/{id}")));
        let first_line = body
            .lines()
            .find(|line| line.len() > 20)
            .expect("body line");
        assert!(
            !text.contains(first_line),
            "body shown in list: {first_line}"
        );
    }
    assert_eq!(text.matches(">Unread<").count(), 3);
    assert!(text.contains("support@example.test"));
}

#[tokio::test]
async fn opening_a_message_shows_its_body_and_marks_it_read() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let all = messages(&panel, "carl").await;
    let (id, subject, body) = &all[0];

    let reply = panel
        .get(&carl, &format!("/mail/postmaster/messages/{id}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains(subject.as_str()));
    let plain_lines: Vec<&str> = body
        .lines()
        .filter(|line| line.len() > 20 && !line.contains(['\'', '&', '<', '>', '"']))
        .collect();
    assert!(!plain_lines.is_empty());
    for line in plain_lines {
        assert!(text.contains(line), "body line missing: {line}");
    }

    let list = panel.get(&carl, "/mail/postmaster").await.text();
    assert_eq!(list.matches(">Unread<").count(), 2);
    let mailboxes = panel.get(&carl, "/mail").await.text();
    assert!(
        mailboxes.contains("<span class=\"badge\">2</span>"),
        "{mailboxes}"
    );
}

#[tokio::test]
async fn a_message_opened_while_impersonating_stays_unread_for_the_customer() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    let all = messages(&panel, "carl").await;
    let (id, subject, _) = &all[0];
    let uri = format!("/mail/postmaster/messages/{id}");

    let reply = panel.get(&ada_as_carl, &uri).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains(subject.as_str()));
    assert!(reply.text().contains("Left unread for carl"));
    let list = panel.get(&carl, "/mail/postmaster").await.text();
    assert_eq!(list.matches(">Unread<").count(), 3, "{list}");

    // The customer opening it marks it read, as before.
    let reply = panel.get(&carl, &uri).await;
    assert!(!reply.text().contains("Left unread"));
    let list = panel.get(&carl, "/mail/postmaster").await.text();
    assert_eq!(list.matches(">Unread<").count(), 2, "{list}");
}

#[tokio::test]
async fn unknown_and_malformed_message_ids_are_not_found() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for uri in [
        "/mail/postmaster/messages/999999",
        "/mail/postmaster/messages/abc",
        "/mail/postmaster/messages/-1",
        "/mail/nobody/messages/1",
        "/mail/nobody",
    ] {
        assert_eq!(
            panel.get(&carl, uri).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn a_mailbox_is_created_and_deleted() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel
        .post(&carl, "/mail", &[("name", "Sales")])
        .await
        .assert_redirect("/mail?notice=");
    let list = panel.get(&carl, "/mail").await.text();
    assert!(list.contains("sales@carl.example.test"), "{list}");
    assert_eq!(panel.get(&carl, "/mail/sales").await.status, StatusCode::OK);

    panel
        .post(&carl, "/mail/sales/delete", &[])
        .await
        .assert_redirect("/mail?notice=");
    assert_eq!(
        panel.get(&carl, "/mail/sales").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        panel.post(&carl, "/mail/sales/delete", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_or_duplicate_mailbox_names_are_refused_with_422() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for name in ["", ".x", "x.", "a..b", "a b", "a@b", "postmaster"] {
        let reply = panel.post(&carl, "/mail", &[("name", name)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
    }
}

#[tokio::test]
async fn deleting_a_mailbox_deletes_its_messages() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let all = messages(&panel, "carl").await;
    panel
        .post(&carl, "/mail/postmaster/delete", &[])
        .await
        .assert_redirect("/mail");
    panel
        .post(&carl, "/mail", &[("name", "postmaster")])
        .await
        .assert_redirect("/mail");
    for (id, _, _) in all {
        let reply = panel
            .get(&carl, &format!("/mail/postmaster/messages/{id}"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}
