//! Databases: a short name gets the `<username>_` prefix and is listed; invalid or taken
//! names re-render the page with 422; a database is dropped on request; dropping an
//! unknown one is a 404.

mod common;

use axum::http::StatusCode;
use common::{Panel, Who};

#[tokio::test]
async fn a_database_is_created_with_the_account_prefix_and_dropped() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let reply = panel.post(&carl, "/databases", &[("name", "shop")]).await;
    let location = reply.assert_redirect("/databases?notice=");
    let page = panel.get(&carl, &location).await;
    assert!(
        page.text().contains("<code>carl_shop</code>"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("Created database carl_shop."));

    panel
        .post(&carl, "/databases/carl_shop/drop", &[])
        .await
        .assert_redirect("/databases?notice=");
    let page = panel.get(&carl, "/databases").await;
    assert!(!page.text().contains("<code>carl_shop</code>"));
}

#[tokio::test]
async fn invalid_database_names_are_refused_with_422() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    for name in [
        "",
        "1shop",
        "Shop",
        "shop-db",
        "shop db",
        "a;drop",
        &"a".repeat(33),
    ] {
        let reply = panel.post(&carl, "/databases", &[("name", name)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert!(reply.text().contains("database name"), "{name:?}");
    }
    let reply = panel.get(&carl, "/databases").await;
    assert!(reply.text().contains("You have no databases yet."));
}

#[tokio::test]
async fn a_taken_database_name_is_refused_with_422() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    panel
        .post(&carl, "/databases", &[("name", "shop")])
        .await
        .assert_redirect("/databases");
    let reply = panel.post(&carl, "/databases", &[("name", "shop")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text().contains("carl_shop already exists"));
}

#[tokio::test]
async fn dropping_an_unknown_database_is_not_found() {
    let panel = Panel::start().await;
    let reply = panel
        .post(&Who::customer("carl"), "/databases/carl_nope/drop", &[])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
