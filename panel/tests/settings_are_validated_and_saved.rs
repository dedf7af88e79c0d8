//! Settings: the contact email and notification checkboxes are shown and saved; an
//! invalid email re-renders the form with 422 and changes nothing; the page links to
//! the proxy's change-password page.

mod common;

use axum::http::StatusCode;
use common::{Panel, Who};

#[tokio::test]
async fn the_defaults_are_shown_with_a_change_password_link() {
    let panel = Panel::start().await;
    let text = panel.get(&Who::customer("carl"), "/settings").await.text();
    assert!(text.contains("value=\"carl@example.test\""), "{text}");
    assert_eq!(text.matches("checked").count(), 3);
    assert!(text.contains("href=\"/_actas/account/password\""));
    assert!(text.contains("Change password"));
}

#[tokio::test]
async fn valid_settings_are_saved() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let reply = panel
        .post(
            &carl,
            "/settings",
            &[
                ("contact_email", "Carl.M@Mail.Example.org"),
                ("notify_security", "on"),
            ],
        )
        .await;
    let location = reply.assert_redirect("/settings?notice=");
    let text = panel.get(&carl, &location).await.text();
    assert!(text.contains("Settings saved."));
    assert!(text.contains("value=\"Carl.M@mail.example.org\""), "{text}");
    assert_eq!(text.matches("checked").count(), 1);
    assert!(text.contains("name=\"notify_security\" value=\"on\" checked"));
}

#[tokio::test]
async fn an_invalid_email_is_refused_with_422_and_nothing_changes() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for email in [
        "",
        "carl",
        "carl@",
        "@example.com",
        "carl@localhost",
        "a b@example.com",
        "carl@@example.com",
        "<b>@x.com",
    ] {
        let reply = panel
            .post(
                &carl,
                "/settings",
                &[("contact_email", email), ("notify_billing", "on")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{email:?}");
        assert!(reply.text().contains("email address"), "{email:?}");
        assert!(
            !reply.text().contains("<b>@"),
            "typed value must be escaped"
        );
    }
    let text = panel.get(&carl, "/settings").await.text();
    assert!(text.contains("value=\"carl@example.test\""));
    assert_eq!(text.matches("checked").count(), 3);
}
