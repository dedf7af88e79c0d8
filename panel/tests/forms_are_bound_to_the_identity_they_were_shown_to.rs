//! Forms are bound to the identity their page was shown to: every form's action names
//! the subject (and the impersonation), and a form sent under another identity, as
//! from a tab left open across a start or stop of an impersonation, is refused with 409
//! before it changes anything, in either account.

mod common;

use axum::http::StatusCode;
use common::{read, Panel, Part, Who};

/// The action of every `<form method="post">` on a page that goes to the panel (not to
/// the proxy's `/_actas/`), unescaped.
fn post_actions(html: &str) -> Vec<String> {
    html.split("<form")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if !tag.contains("method=\"post\"") {
                return None;
            }
            let start = tag.find("action=\"")? + "action=\"".len();
            let end = start + tag[start..].find('"')?;
            Some(tag[start..end].replace("&amp;", "&"))
        })
        .filter(|action| !action.starts_with("/_actas/"))
        .collect()
}

/// Gives `who` a domain, a database, a mailbox and a file, so that every kind of form
/// is on some page.
async fn furnish(panel: &Panel, who: &Who, domain: &str) {
    for (uri, name) in [
        ("/domains", domain),
        ("/databases", "shop"),
        ("/mail", "info"),
    ] {
        let reply = panel.post(who, uri, &[("name", name)]).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{uri}: {}",
            reply.text()
        );
    }
}

async fn the_forms_of(panel: &Panel, who: &Who) -> Vec<String> {
    let mut actions = Vec::new();
    for page in [
        "/domains",
        "/databases",
        "/mail",
        "/files",
        "/files/edit?path=README.txt",
        "/settings",
    ] {
        let reply = panel.get(who, page).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}");
        actions.extend(post_actions(&reply.text()));
    }
    actions
}

/// What a form does: its path without the query, names replaced by `*`.
fn kind(action: &str) -> String {
    let path = action.split_once('?').map_or(action, |(path, _)| path);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", area, _, verb] => format!("/{area}/*/{verb}"),
        _ => path.to_owned(),
    }
}

#[tokio::test]
async fn every_form_names_the_identity_its_page_was_shown_to() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    furnish(&panel, &carl, "carl.example").await;
    for (who, binding) in [
        (carl.clone(), "as=carl"),
        (
            Who::impersonated("carl", "ada", "admin").in_impersonation("Ab-_9"),
            "as=carl~Ab-_9",
        ),
    ] {
        let actions = the_forms_of(&panel, &who).await;
        let mut kinds: Vec<String> = actions.iter().map(|action| kind(action)).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            [
                "/databases",
                "/databases/*/drop",
                "/domains",
                "/domains/*/delete",
                "/files/delete",
                "/files/edit",
                "/files/mkdir",
                "/files/rename",
                "/files/upload",
                "/mail",
                "/mail/*/delete",
                "/settings",
            ],
            "{actions:?}"
        );
        for action in &actions {
            let query = action.split_once('?').map(|(_, query)| query).unwrap_or("");
            assert!(
                query.split('&').any(|pair| pair == binding),
                "{action} is not bound with {binding}"
            );
        }
    }
}

#[tokio::test]
async fn a_form_from_an_impersonation_that_ended_does_not_act_on_the_staff_members_own_account() {
    let panel = Panel::start().await;
    let ada = Who::with_role("ada", "admin");
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    panel.get(&ada, "/").await;
    furnish(&panel, &ada_as_carl, "carl.example").await;
    furnish(&panel, &ada, "ada.example").await;

    // Tab B shows carl's files; in tab A ada stops impersonating; tab B's Delete is clicked.
    let files = panel.get(&ada_as_carl, "/files").await.text();
    let delete = post_actions(&files)
        .into_iter()
        .find(|action| action.starts_with("/files/delete?"))
        .expect("a delete form");
    let reply = panel.post(&ada, &delete, &[("path", "README.txt")]).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let text = reply.text();
    assert!(text.contains("This form is out of date"), "{text}");
    assert!(
        text.contains("while impersonating carl, and that impersonation has ended"),
        "{text}"
    );
    assert!(text.contains("You are now signed in as ada."), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(text.contains("href=\"/files\""), "{text}");
    assert!(read(&panel.files_of("ada"), "README.txt").is_some());
    assert!(read(&panel.files_of("carl"), "README.txt").is_some());

    // The same for each kind of change: nothing in either account moves.
    let domains = panel.get(&ada_as_carl, "/domains").await.text();
    for action in post_actions(&domains) {
        let reply = panel.post(&ada, &action, &[("name", "new.example")]).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{action}");
    }
    let databases = panel.get(&ada_as_carl, "/databases").await.text();
    for action in post_actions(&databases) {
        let reply = panel.post(&ada, &action, &[("name", "other")]).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{action}");
    }
    let upload = post_actions(&files)
        .into_iter()
        .find(|action| action.starts_with("/files/upload?"))
        .expect("an upload form");
    let reply = panel
        .upload_at(
            &ada,
            &upload,
            &[
                Part::Text("path", ""),
                Part::File("file", "README.txt", b"x"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    for who in [&ada, &ada_as_carl] {
        let domains = panel.get(who, "/domains").await.text();
        assert!(!domains.contains("new.example"), "{domains}");
        let databases = panel.get(who, "/databases").await.text();
        assert!(databases.contains("_shop"), "{databases}");
        assert!(!databases.contains("_other"), "{databases}");
    }
    assert_ne!(
        read(&panel.files_of("ada"), "README.txt").as_deref(),
        Some(&b"x"[..])
    );
    assert_ne!(
        read(&panel.files_of("carl"), "README.txt").as_deref(),
        Some(&b"x"[..])
    );
}

#[tokio::test]
async fn a_staff_members_own_form_does_not_act_on_the_customer_she_now_impersonates() {
    let panel = Panel::start().await;
    let ada = Who::with_role("ada", "admin");
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    let settings = panel.get(&ada, "/settings").await.text();
    let save = post_actions(&settings)
        .into_iter()
        .find(|action| action.starts_with("/settings?"))
        .expect("the settings form");
    assert_eq!(save, "/settings?as=ada");
    panel.get(&ada_as_carl, "/").await;
    let reply = panel
        .post(
            &ada_as_carl,
            &save,
            &[("contact_email", "ada@staff.example")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let text = reply.text();
    assert!(
        text.contains("This form was shown on a page of ada's own account."),
        "{text}"
    );
    assert!(
        text.contains("You are now ada, impersonating carl."),
        "{text}"
    );
    let carls = panel.get(&ada_as_carl, "/settings").await.text();
    assert!(carls.contains("value=\"carl@example.test\""), "{carls}");
    assert!(!carls.contains("ada@staff.example"), "{carls}");
}

#[tokio::test]
async fn a_form_from_an_earlier_impersonation_of_the_same_customer_is_refused() {
    let panel = Panel::start().await;
    let first = Who::impersonated("carl", "ada", "admin").in_impersonation("first");
    let second = Who::impersonated("carl", "ada", "admin").in_impersonation("second");
    let reply = panel
        .post(
            &second,
            "/domains?as=carl~first",
            &[("name", "fresh.example")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply
            .text()
            .contains("This form was shown during an earlier impersonation of carl."),
        "{}",
        reply.text()
    );
    let domains = panel.get(&first, "/domains").await.text();
    assert!(!domains.contains("fresh.example"), "{domains}");
}

#[tokio::test]
async fn a_form_sent_as_the_identity_it_was_shown_to_is_taken_and_so_is_one_without_a_binding() {
    let panel = Panel::start().await;
    let ada_as_carl = Who::impersonated("carl", "ada", "admin");
    panel
        .post(
            &ada_as_carl,
            "/domains?as=carl~imp-1",
            &[("name", "bound.example")],
        )
        .await
        .assert_redirect("/domains?notice=");
    // Scripts may post without reading a page first.
    panel
        .post(&ada_as_carl, "/domains", &[("name", "plain.example")])
        .await
        .assert_redirect("/domains?notice=");
    // A binding on a page that is only read changes nothing, so it is not checked.
    let reply = panel.get(&ada_as_carl, "/domains?as=someone-else").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("bound.example") && text.contains("plain.example"));
    // A repeated parameter is refused if any of its values is another identity's.
    let reply = panel
        .post(
            &ada_as_carl,
            "/domains?as=carl~imp-1&as=ada",
            &[("name", "twice.example")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}
