//! Databases: a short name gets the `<username>_` prefix (with the username's own `_`
//! doubled, so no two accounts' names meet) and is listed; invalid or taken
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

#[tokio::test]
async fn a_username_with_an_underscore_cannot_take_or_reveal_another_accounts_database() {
    // carl's `shop_orders` and carl_shop's `orders` would both be `carl_shop_orders` with
    // the username as it is: the second would be refused, and learn that the name is taken.
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let carl_shop = Who::customer("carl_shop");
    panel
        .post(&carl, "/databases", &[("name", "shop_orders")])
        .await
        .assert_redirect("/databases?notice=");
    let reply = panel
        .post(&carl_shop, "/databases", &[("name", "orders")])
        .await;
    let location = reply.assert_redirect("/databases?notice=");
    let page = panel.get(&carl_shop, &location).await.text();
    assert!(page.contains("<code>carl__shop_orders</code>"), "{page}");
    assert!(
        page.contains("<span>carl__shop_</span>"),
        "the form shows the prefix"
    );
    assert!(!page.contains("<code>carl_shop_orders</code>"), "{page}");
    let page = panel.get(&carl, "/databases").await.text();
    assert!(page.contains("<code>carl_shop_orders</code>"), "{page}");
    assert!(!page.contains("carl__shop"), "{page}");
    // Neither can drop the other's.
    for (who, name) in [
        (&carl, "carl__shop_orders"),
        (&carl_shop, "carl_shop_orders"),
    ] {
        let uri = format!("/databases/{name}/drop");
        let reply = panel.post(who, &uri, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
    }
}
