//! Every page, the error pages and the 404 included, is a complete HTML document in the
//! shared layout: doctype, `lang="en"`, body, the sidebar with every area, who is signed
//! in and a sign-out form posting to the proxy — and no scripts or inline styles. Staff
//! see links to the proxy's console: admins Accounts and Audit, resellers Accounts only,
//! customers neither.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{Panel, Who, ASSERTION};

const PAGES: &[&str] = &[
    "/",
    "/domains",
    "/files",
    "/files?path=public_html",
    "/files/view?path=README.txt",
    "/files/edit?path=README.txt",
    "/databases",
    "/mail",
    "/mail/postmaster",
    "/settings",
    "/activity",
];

#[track_caller]
fn assert_layout(text: &str, what: &str) {
    assert!(text.starts_with("<!doctype html>"), "{what}");
    assert!(text.contains("<html lang=\"en\">"), "{what}");
    assert!(
        text.contains("<body>") && text.contains("</body>"),
        "{what}"
    );
    for (href, label) in [
        ("/", "Dashboard"),
        ("/domains", "Domains"),
        ("/files", "Files"),
        ("/databases", "Databases"),
        ("/mail", "Mail"),
        ("/settings", "Settings"),
        ("/activity", "Activity"),
    ] {
        let link = format!("href=\"{href}\"");
        assert!(text.contains(&link), "{what}: no {label} link");
        assert!(
            text.contains(&format!(">{label}</a>")),
            "{what}: no {label} label"
        );
    }
    assert!(
        text.contains("<form method=\"post\" action=\"/_actas/logout\">"),
        "{what}"
    );
    assert!(text.contains("Signed in as"), "{what}");
    assert!(
        !text.to_ascii_lowercase().contains("<script"),
        "{what}: script"
    );
    assert!(
        !text.contains(" style=\""),
        "{what}: inline style attribute"
    );
    assert!(!text.contains("javascript:"), "{what}");
}

#[tokio::test]
async fn every_page_uses_the_shared_layout() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for uri in PAGES {
        let reply = panel.get(&carl, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{uri}"
        );
        assert_layout(&reply.text(), uri);
        assert!(reply.text().contains("carl Display"), "{uri}");
        assert!(reply.text().contains("(customer)"), "{uri}");
    }
    let store = &panel.state.store;
    let account = panel.account("carl").await;
    let id = store
        .list_messages(account.id, "postmaster")
        .await
        .expect("m")
        .expect("b")[0]
        .id;
    let reply = panel
        .get(&carl, &format!("/mail/postmaster/messages/{id}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_layout(&reply.text(), "message");
}

#[tokio::test]
async fn an_unknown_path_is_a_404_page_in_the_layout() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for uri in [
        "/nope",
        "/domains/x",
        "/files/nope",
        "/_actas/accounts",
        "/mail/postmaster/messages",
    ] {
        let reply = panel.get(&carl, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(reply.text().contains("Page not found"), "{uri}");
        assert_layout(&reply.text(), uri);
    }
}

#[tokio::test]
async fn error_pages_use_the_layout() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let reply = panel.get(&carl, "/files/view?path=../x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_layout(&reply.text(), "400");
    let reply = panel.post(&carl, "/domains", &[("name", "bad")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_layout(&reply.text(), "422");
}

#[tokio::test]
async fn framework_refusals_use_the_layout() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let reply = panel.get(&carl, "/domains/x/delete").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), "POST");
    assert_layout(&reply.text(), "405");

    let request = Request::builder()
        .method(Method::POST)
        .uri("/domains")
        .header(header::CONTENT_TYPE, "application/json")
        .header(ASSERTION, panel.token(&carl))
        .body(Body::from("{}"))
        .expect("request");
    let reply = panel.send(request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_layout(&reply.text(), "415");
}

#[tokio::test]
async fn flash_notices_are_escaped() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let location = panel
        .post(
            &carl,
            "/files/mkdir",
            &[("path", ""), ("name", "<img src=x onerror=alert(1)>")],
        )
        .await
        .assert_redirect("/files?path=&notice=");
    let text = panel.get(&carl, &location).await.text();
    assert!(
        text.contains("Created folder &lt;img src=x onerror=alert(1)&gt;."),
        "{text}"
    );
    assert!(!text.contains("<img src=x"), "{text}");
    assert_layout(&text, "notice");
}

#[tokio::test]
async fn a_notice_written_into_a_link_is_not_shown() {
    // The panel's notices travel in the URL after a redirect; one that anybody wrote into a
    // link (to send to staff: "your account is suspended, call …") is not the panel's.
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let forged = "Your%20account%20is%20suspended.%20Call%20%2B1%20555%200100.";
    let text = panel
        .get(&carl, &format!("/domains?notice={forged}"))
        .await
        .text();
    assert!(!text.contains("suspended"), "{text}");
    // Nor is one the panel sealed for carl, opened by ada while impersonating him.
    let location = panel
        .post(&carl, "/domains", &[("name", "carl-shop.example")])
        .await
        .assert_redirect("/domains?notice=");
    assert!(panel
        .get(&carl, &location)
        .await
        .text()
        .contains("Added carl-shop.example."));
    let text = panel
        .get(&Who::impersonated("carl", "ada", "admin"), &location)
        .await
        .text();
    assert!(!text.contains("Added carl-shop.example."), "{text}");
}

#[tokio::test]
async fn admins_see_accounts_and_audit() {
    let panel = Panel::start().await;
    let text = panel.get(&Who::with_role("ada", "admin"), "/").await.text();
    assert!(text.contains("href=\"/_actas/accounts\""));
    assert!(text.contains("href=\"/_actas/audit\""));
    assert!(text.contains("(admin)"));
}

#[tokio::test]
async fn resellers_see_accounts_only() {
    let panel = Panel::start().await;
    let text = panel
        .get(&Who::with_role("rita", "reseller"), "/")
        .await
        .text();
    assert!(text.contains("href=\"/_actas/accounts\""));
    assert!(!text.contains("/_actas/audit"));
}

#[tokio::test]
async fn customers_see_no_staff_links() {
    let panel = Panel::start().await;
    let text = panel.get(&Who::customer("carl"), "/").await.text();
    assert!(!text.contains("/_actas/accounts"));
    assert!(!text.contains("/_actas/audit"));
}

#[tokio::test]
async fn everyone_can_reach_their_access_history() {
    let panel = Panel::start().await;
    for who in [
        Who::customer("carl"),
        Who::with_role("rita", "reseller"),
        Who::with_role("ada", "admin"),
    ] {
        let text = panel.get(&who, "/").await.text();
        assert!(text.contains("href=\"/_actas/access-history\""), "{text}");
    }
}

#[tokio::test]
async fn staff_impersonating_a_customer_see_the_customers_sidebar() {
    let panel = Panel::start().await;
    let text = panel
        .get(&Who::impersonated("carl", "ada", "admin"), "/")
        .await
        .text();
    assert!(!text.contains("/_actas/accounts"));
    assert!(!text.contains("/_actas/audit"));
    assert!(
        text.contains("Signed in as <strong>carl Display</strong> (customer)"),
        "{text}"
    );
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let panel = Panel::start().await;
    let reply = panel.get(&Who::customer("carl"), "/").await;
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.header("x-frame-options"), "DENY");
    assert_eq!(reply.header("cache-control"), "no-store");
}
