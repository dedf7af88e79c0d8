//! The activity feed records every change, newest first, with time and who: the subject
//! alone (`carl`), or the actor on the subject's behalf (`ada (admin) on behalf of carl`)
//! when the assertion carried an `act` claim; the actor and subject are stored in each
//! row.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{multipart, names_in, read, Panel, Part, Who, ASSERTION};

/// carl's README.txt, as text.
fn readme(panel: &Panel) -> Option<String> {
    read(&panel.files_of("carl"), "README.txt")
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_change_made_while_impersonating_names_the_actor_on_behalf_of_the_subject() {
    let panel = Panel::start().await;
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    panel
        .post(&ada_as_carl, "/domains", &[("name", "fixed.example.com")])
        .await
        .assert_redirect("/domains");

    let text = panel.get(&ada_as_carl, "/activity").await.text();
    assert!(text.contains("ada (admin) on behalf of carl"), "{text}");
    assert!(text.contains("Added domain fixed.example.com"));

    let store = &panel.state.store;
    let account = panel.account("carl").await;
    let newest = &store
        .recent_activity(account.id, 1)
        .await
        .expect("activity")[0];
    assert_eq!(newest.subject, "carl");
    assert_eq!(newest.actor_username.as_deref(), Some("ada"));
    assert_eq!(newest.actor_role.as_deref(), Some("admin"));
    assert_eq!(newest.impersonation_id.as_deref(), Some("imp-1"));
}

#[tokio::test]
async fn a_change_made_by_the_subject_names_only_the_subject() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel
        .post(&carl, "/domains", &[("name", "mine.example.com")])
        .await
        .assert_redirect("/domains");
    let text = panel.get(&carl, "/activity").await.text();
    assert!(text.contains("<td class=\"who\">carl</td>"), "{text}");
    assert!(!text.contains("on behalf of"));
}

#[tokio::test]
async fn a_reseller_impersonating_is_named_with_their_role() {
    let panel = Panel::start().await;
    let rita_as_carl = Who::impersonated("carl", "rita", "reseller");
    panel
        .post(&rita_as_carl, "/databases", &[("name", "shop")])
        .await
        .assert_redirect("/databases");
    let text = panel.get(&Who::customer("carl"), "/activity").await.text();
    assert!(text.contains("rita (reseller) on behalf of carl"), "{text}");
}

#[tokio::test]
async fn every_kind_of_change_is_recorded_newest_first() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let steps: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/domains", vec![("name", "a.example.com")]),
        ("/domains/a.example.com/delete", vec![]),
        ("/files/mkdir", vec![("path", ""), ("name", "docs")]),
        (
            "/files/edit",
            vec![("path", "docs/notes.txt"), ("content", "hi")],
        ),
        (
            "/files/rename",
            vec![("path", "docs/notes.txt"), ("new_name", "todo.txt")],
        ),
        ("/files/delete", vec![("path", "docs/todo.txt")]),
        ("/databases", vec![("name", "shop")]),
        ("/databases/carl_shop/drop", vec![]),
        ("/mail", vec![("name", "sales")]),
        ("/mail/sales/delete", vec![]),
        ("/settings", vec![("contact_email", "carl@example.org")]),
    ];
    for (uri, fields) in &steps {
        let reply = panel.post(&carl, uri, fields).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{uri}: {}",
            reply.text()
        );
    }
    panel
        .upload(
            &carl,
            &[
                Part::Text("path", "docs"),
                Part::File("file", "up.txt", b"x"),
            ],
        )
        .await
        .assert_redirect("/files");

    let store = &panel.state.store;
    let account = panel.account("carl").await;
    let kinds: Vec<String> = store
        .recent_activity(account.id, 100)
        .await
        .expect("activity")
        .into_iter()
        .map(|record| record.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "file.uploaded",
            "settings.changed",
            "mailbox.deleted",
            "mailbox.created",
            "database.dropped",
            "database.created",
            "file.deleted",
            "file.renamed",
            "file.saved",
            "folder.created",
            "domain.removed",
            "domain.added",
            "account.provisioned",
        ]
    );
    let text = panel.get(&carl, "/activity").await.text();
    let renamed = text
        .find("Renamed docs/notes.txt to docs/todo.txt")
        .expect("rename shown");
    let created = text.find("Created folder docs").expect("mkdir shown");
    assert!(renamed < created, "newest first");
}

#[tokio::test]
async fn refused_changes_are_not_recorded() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel
        .post(&carl, "/domains", &[("name", "not a domain")])
        .await;
    panel
        .post(&carl, "/files/delete", &[("path", "../x")])
        .await;
    panel.post(&carl, "/databases/carl_nope/drop", &[]).await;
    let store = &panel.state.store;
    let account = panel.account("carl").await;
    assert_eq!(
        store
            .recent_activity(account.id, 100)
            .await
            .expect("activity")
            .len(),
        1
    );
}

/// The `file.uploaded` records of carl's feed, oldest first.
async fn uploads_recorded(panel: &Panel) -> Vec<String> {
    let account = panel.account("carl").await;
    let mut summaries: Vec<String> = panel
        .state
        .store
        .recent_activity(account.id, 100)
        .await
        .expect("activity")
        .into_iter()
        .filter(|record| record.kind == "file.uploaded")
        .map(|record| record.summary)
        .collect();
    summaries.reverse();
    summaries
}

/// Names in carl's top folder that are scratch files.
fn scratch_files(panel: &Panel) -> Vec<String> {
    names_in(&panel.files_of("carl"))
        .into_iter()
        .filter(|name| name.starts_with(".actas-partial-"))
        .collect()
}

#[tokio::test]
async fn an_upload_refused_part_way_changes_no_file() {
    let panel = Panel::start().await;
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    panel.get(&ada_as_carl, "/").await;
    let before = readme(&panel);
    assert!(before.is_some());
    for bad_name in ["", ".."] {
        let reply = panel
            .upload(
                &ada_as_carl,
                &[
                    Part::Text("path", ""),
                    Part::File("file", "README.txt", b"new"),
                    Part::File("file", bad_name, b"x"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad_name:?}");
        assert_eq!(
            readme(&panel),
            before,
            "README.txt was replaced by a refused upload (second name {bad_name:?})"
        );
    }

    // A stream that breaks off in the second file.
    let (content_type, mut body) = multipart(&[
        Part::Text("path", ""),
        Part::File("file", "README.txt", b"new"),
        Part::File("file", "other.txt", b"cut short here"),
    ]);
    let cut = body.len() - 60;
    body.truncate(cut);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/files/upload")
        .header(header::CONTENT_TYPE, content_type)
        .header(ASSERTION, panel.token(&ada_as_carl))
        .body(Body::from(body))
        .expect("request");
    let reply = panel.send(request).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    assert_eq!(
        readme(&panel),
        before,
        "README.txt was replaced by a broken upload"
    );
    assert!(!panel.files_of("carl").join("other.txt").exists());

    assert_eq!(scratch_files(&panel), Vec::<String>::new());
    assert_eq!(uploads_recorded(&panel).await, Vec::<String>::new());
}

#[tokio::test]
async fn each_file_of_an_upload_is_recorded() {
    let panel = Panel::start().await;
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    panel
        .upload(
            &ada_as_carl,
            &[
                Part::Text("path", ""),
                Part::File("file", "one.txt", b"1"),
                Part::File("file", "two.txt", b"2"),
            ],
        )
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(
        uploads_recorded(&panel).await,
        vec!["Uploaded one.txt", "Uploaded two.txt"]
    );
    assert_eq!(
        read(&panel.files_of("carl"), "two.txt").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(scratch_files(&panel), Vec::<String>::new());
    let text = panel.get(&ada_as_carl, "/activity").await.text();
    assert!(text.contains("ada (admin) on behalf of carl"), "{text}");
}

/// The domains named by "Added domain …" entries of an activity page, in order.
fn domains_added(page: &str) -> Vec<String> {
    page.split("Added domain ")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect()
}

/// The address of the activity page's "Older →" link.
fn older_link(page: &str) -> Option<String> {
    let end = page.find("\">Older →</a>")?;
    let start = page[..end].rfind("href=\"")? + "href=\"".len();
    Some(page[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn a_long_feed_is_shown_a_hundred_at_a_time_and_a_page_does_not_shift() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for n in 0..105 {
        panel
            .post(&carl, "/domains", &[("name", &format!("d{n:03}.example"))])
            .await
            .assert_redirect("/domains");
    }
    let names = |range: std::ops::Range<usize>| -> Vec<String> {
        range.rev().map(|n| format!("d{n:03}.example")).collect()
    };
    let first = panel.get(&carl, "/activity").await.text();
    assert_eq!(domains_added(&first), names(5..105), "the newest 100");
    assert!(!first.contains("⇤ Newest"));
    let older = older_link(&first).expect("a link to older entries");
    // Carl goes on; the older page is the one it was.
    panel
        .post(&carl, "/domains", &[("name", "late.example")])
        .await
        .assert_redirect("/domains");
    let second = panel.get(&carl, &older).await.text();
    assert_eq!(domains_added(&second), names(0..5));
    assert!(second.contains("⇤ Newest"));
    assert_eq!(older_link(&second), None, "nothing older");
    for bad in [
        "/activity?older=x",
        "/activity?older=12",
        "/activity?older=1.x",
    ] {
        let reply = panel.get(&carl, bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
