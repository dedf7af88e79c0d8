//! Domains: a valid hostname is added (normalised to lowercase) and listed, removed on
//! request; an invalid one re-renders the page with the reason and 422; a domain can
//! belong to one account only.

mod common;

use axum::http::StatusCode;
use common::{Panel, Who};

#[tokio::test]
async fn a_valid_domain_is_added_listed_and_removed() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");

    let reply = panel
        .post(&carl, "/domains", &[("name", "  Shop.Example.COM ")])
        .await;
    let location = reply.assert_redirect("/domains?notice=");
    assert!(location.contains("shop.example.com"), "{location}");

    let page = panel.get(&carl, &location).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Added shop.example.com."));
    assert!(page.text().contains("<td>shop.example.com</td>"));

    let reply = panel
        .post(&carl, "/domains/shop.example.com/delete", &[])
        .await;
    reply.assert_redirect("/domains?notice=");
    let page = panel.get(&carl, "/domains").await;
    assert!(!page.text().contains("<td>shop.example.com</td>"));
    assert!(page.text().contains("carl.example.test"));
}

#[tokio::test]
async fn an_invalid_domain_is_refused_with_422_and_not_added() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let cases = [
        ("", "is required"),
        ("localhost", "at least two labels"),
        ("example.com.", "trailing dot"),
        ("-bad.example.com", "start or end with a hyphen"),
        ("bad-.example.com", "start or end with a hyphen"),
        ("a..example.com", "empty label"),
        ("exa mple.com", "only letters"),
        ("under_score.com", "only letters"),
        ("1.2.3.4", "all digits"),
        ("<script>.com", "only letters"),
    ];
    for (name, reason) in cases {
        let reply = panel.post(&carl, "/domains", &[("name", name)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(reply.header("content-type").starts_with("text/html"));
        assert!(reply.text().contains(reason), "{name}: {}", reply.text());
        assert!(!reply.text().contains("<script>"), "input must be escaped");
    }
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = format!("{}.com", vec!["a".repeat(62); 4].join("."));
    for name in [long_label, long_name] {
        let reply = panel.post(&carl, "/domains", &[("name", &name)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
    let account = panel.account("carl").await;
    let domains = panel
        .state
        .store
        .list_domains(account.id)
        .await
        .expect("domains");
    assert_eq!(domains.len(), 1, "only the default domain: {domains:?}");
}

#[tokio::test]
async fn a_domain_belongs_to_one_account_only() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let dora = Who::customer("dora");
    panel
        .post(&carl, "/domains", &[("name", "shared.example.com")])
        .await
        .assert_redirect("/domains");

    let reply = panel
        .post(&dora, "/domains", &[("name", "shared.example.com")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text().contains("already hosted by another account"));

    let reply = panel
        .post(&carl, "/domains", &[("name", "SHARED.example.com")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text().contains("You already host shared.example.com"));
}

#[tokio::test]
async fn removing_an_unknown_domain_is_not_found() {
    let panel = Panel::start().await;
    let reply = panel
        .post(
            &Who::customer("carl"),
            "/domains/nope.example.com/delete",
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply
        .text()
        .contains("You have no domain called nope.example.com"));
}

#[tokio::test]
async fn names_in_the_providers_zone_are_refused_but_the_accounts_own_default() {
    let panel = Panel::start().await;
    let (carl, dora) = (Who::customer("carl"), Who::customer("dora"));
    panel.get(&carl, "/").await;
    for name in [
        "carl.example.test",
        "victim.example.test",
        "example.test",
        "www.dora.example.test",
        "A.B.Example.Test",
    ] {
        let reply = panel.post(&dora, "/domains", &[("name", name)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let text = reply.text();
        assert!(
            text.contains("is in example.test") && text.contains("dora.example.test"),
            "{name}: {text}"
        );
    }
    let page = panel.get(&dora, "/domains").await.text();
    assert!(!page.contains("<td>carl.example.test</td>"), "{page}");
    // A name that merely ends the same way is not in the zone.
    panel
        .post(&dora, "/domains", &[("name", "myexample.test")])
        .await
        .assert_redirect("/domains?notice=");
    // The account's own default domain, removed, can be added back.
    panel
        .post(&carl, "/domains/carl.example.test/delete", &[])
        .await
        .assert_redirect("/domains?notice=");
    panel
        .post(&carl, "/domains", &[("name", "carl.example.test")])
        .await
        .assert_redirect("/domains?notice=");
}
