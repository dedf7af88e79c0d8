//! Isolation: one account can never see or touch another's domains, files, databases,
//! mailboxes, messages, settings or activity — not by listing, not by name, not by path,
//! not by id. Another account's things are simply not found.

mod common;

use axum::http::StatusCode;
use common::{Panel, Part, Who};

const CARL_SECRET: &str = "carl's private notes: the safe code is 4711";

/// carl owns one of everything; dora is provisioned and sees her own panel.
async fn two_accounts() -> (Panel, Who, Who) {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let dora = Who::customer("dora");
    panel
        .post(&carl, "/domains", &[("name", "carl-shop.example.com")])
        .await
        .assert_redirect("/domains");
    panel
        .post(&carl, "/databases", &[("name", "orders")])
        .await
        .assert_redirect("/databases");
    panel
        .post(&carl, "/mail", &[("name", "sales")])
        .await
        .assert_redirect("/mail");
    panel
        .post(&carl, "/files/mkdir", &[("path", ""), ("name", "private")])
        .await
        .assert_redirect("/files");
    panel
        .post(
            &carl,
            "/files/edit",
            &[("path", "private/secret.txt"), ("content", CARL_SECRET)],
        )
        .await
        .assert_redirect("/files");
    panel
        .post(
            &carl,
            "/settings",
            &[
                ("contact_email", "carl.private@example.org"),
                ("notify_billing", "on"),
            ],
        )
        .await
        .assert_redirect("/settings");
    panel.get(&dora, "/").await;
    (panel, carl, dora)
}

async fn carl_message_ids(panel: &Panel) -> Vec<i64> {
    let store = &panel.state.store;
    let account = panel.account("carl").await;
    store
        .list_messages(account.id, "postmaster")
        .await
        .expect("messages")
        .expect("mailbox")
        .into_iter()
        .map(|message| message.id)
        .collect()
}

#[tokio::test]
async fn domains_are_private() {
    let (panel, carl, dora) = two_accounts().await;
    let text = panel.get(&dora, "/domains").await.text();
    assert!(!text.contains("carl-shop.example.com"));
    assert!(!text.contains("carl.example.test"));
    for name in ["carl-shop.example.com", "carl.example.test"] {
        let reply = panel
            .post(&dora, &format!("/domains/{name}/delete"), &[])
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{name}");
    }
    let text = panel.get(&carl, "/domains").await.text();
    assert!(text.contains("carl-shop.example.com"));
    assert!(text.contains("carl.example.test"));
}

#[tokio::test]
async fn databases_are_private() {
    let (panel, carl, dora) = two_accounts().await;
    assert!(!panel
        .get(&dora, "/databases")
        .await
        .text()
        .contains("carl_orders"));
    let reply = panel.post(&dora, "/databases/carl_orders/drop", &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(panel
        .get(&carl, "/databases")
        .await
        .text()
        .contains("carl_orders"));
}

#[tokio::test]
async fn mailboxes_and_messages_are_private() {
    let (panel, carl, dora) = two_accounts().await;
    let text = panel.get(&dora, "/mail").await.text();
    assert!(!text.contains("sales"));
    assert!(!text.contains("carl.example.test"));
    assert_eq!(
        panel.get(&dora, "/mail/sales").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        panel.post(&dora, "/mail/sales/delete", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // Both have a postmaster mailbox; carl's message ids are not found in dora's.
    let ids = carl_message_ids(&panel).await;
    assert_eq!(ids.len(), 3);
    let dora_list = panel.get(&dora, "/mail/postmaster").await.text();
    for id in &ids {
        assert!(
            !dora_list.contains(&format!("/messages/{id}\"")),
            "dora lists carl's message {id}"
        );
        for mailbox in ["postmaster", "sales"] {
            let reply = panel
                .get(&dora, &format!("/mail/{mailbox}/messages/{id}"))
                .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{mailbox}/{id}");
            assert!(!reply.text().contains("Hello carl"));
        }
    }
    // Opening them failed, so they are still unread for carl.
    let text = panel.get(&carl, "/mail").await.text();
    assert!(text.contains("<span class=\"badge\">3</span>"), "{text}");
    // And carl cannot read dora's through his own mailbox either.
    let store = &panel.state.store;
    let dora_account = panel.account("dora").await;
    let dora_ids: Vec<i64> = store
        .list_messages(dora_account.id, "postmaster")
        .await
        .expect("messages")
        .expect("mailbox")
        .into_iter()
        .map(|message| message.id)
        .collect();
    for id in dora_ids {
        let reply = panel
            .get(&carl, &format!("/mail/postmaster/messages/{id}"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn files_are_private() {
    let (panel, carl, dora) = two_accounts().await;
    for uri in [
        "/files?path=private",
        "/files/view?path=private/secret.txt",
        "/files/edit?path=private/secret.txt",
        "/files/download?path=private/secret.txt",
    ] {
        let reply = panel.get(&dora, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!reply.text().contains(CARL_SECRET));
    }
    for uri in [
        "/files?path=../carl/private",
        "/files/view?path=../carl/private/secret.txt",
        "/files/download?path=../carl/private/secret.txt",
    ] {
        let reply = panel.get(&dora, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(!reply.text().contains(CARL_SECRET));
    }
    let listing = panel.get(&dora, "/files").await.text();
    assert!(!listing.contains("private"));

    let changes: [(&str, Vec<(&str, &str)>); 4] = [
        ("/files/delete", vec![("path", "private/secret.txt")]),
        (
            "/files/rename",
            vec![("path", "private/secret.txt"), ("new_name", "mine.txt")],
        ),
        ("/files/mkdir", vec![("path", "private"), ("name", "x")]),
        (
            "/files/edit",
            vec![("path", "private/secret.txt"), ("content", "dora was here")],
        ),
    ];
    for (uri, fields) in changes {
        assert_eq!(
            panel.post(&dora, uri, &fields).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
    let reply = panel
        .upload(
            &dora,
            &[
                Part::Text("path", "private"),
                Part::File("file", "secret.txt", b"dora"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let root = panel.files_of("carl");
    assert_eq!(
        std::fs::read_to_string(root.join("private/secret.txt")).expect("read"),
        CARL_SECRET
    );
    assert_eq!(
        std::fs::read_dir(root.join("private"))
            .expect("dir")
            .count(),
        1
    );
    let reply = panel
        .get(&carl, "/files/view?path=private/secret.txt")
        .await;
    assert!(reply.text().contains("the safe code is 4711"));
}

#[tokio::test]
async fn settings_activity_and_dashboard_are_private() {
    let (panel, _carl, dora) = two_accounts().await;
    let settings = panel.get(&dora, "/settings").await.text();
    assert!(settings.contains("dora@example.test"));
    assert!(!settings.contains("carl.private@example.org"));

    let activity = panel.get(&dora, "/activity").await.text();
    for carls in [
        "carl-shop.example.com",
        "carl_orders",
        "sales",
        "secret.txt",
        "carl.private",
    ] {
        assert!(!activity.contains(carls), "dora's activity shows {carls}");
    }
    assert!(!activity.contains(">carl<"));

    let dashboard = panel.get(&dora, "/").await.text();
    assert!(
        !dashboard.contains("carl"),
        "dora's dashboard mentions carl"
    );
    let store = &panel.state.store;
    let dora_account = panel.account("dora").await;
    let summary = store
        .account_summary(dora_account.id)
        .await
        .expect("summary");
    assert_eq!(
        (
            summary.domains,
            summary.databases,
            summary.mailboxes,
            summary.unread
        ),
        (1, 0, 1, 3)
    );
}
