//! Databases (`/databases`): the account's databases (metadata only), creating one
//! (its short name gets the account's prefix, as hosting panels do) and dropping
//! one. A refused name re-renders the page with the reason and status 422. Handlers
//! only ever read and change the signed-in subject's own databases.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{path_segment, see_other, FlashQuery, PageError};
use crate::assertion::Identity;
use crate::binding;
use crate::layout::{format_time, page, Area, Flash};
use crate::names::database_short_name;
use crate::store::{Account, ActivityEntry, ActivityKind};
use crate::PanelState;

/// The create-database form.
#[derive(Debug, Deserialize)]
pub struct CreateDatabase {
    #[serde(default)]
    name: String,
}

/// The full database name for a short name: `<username>_<short>`, with every `_` of the
/// username doubled.
///
/// Names are unique across the panel, and a username may hold `_` as a short name may:
/// with the username as it is, carl's `shop_orders` and carl_shop's `orders` would both be
/// `carl_shop_orders`, and the second customer would be refused a name (and learn that the
/// other has it). A short name starts with a letter, so the first `_` that is not one of a
/// doubled pair ends the prefix: no two accounts' names can meet (carl's
/// `carl_shop_orders`, carl_shop's `carl__shop_orders`). A username without `_` (as
/// cPanel and DirectAdmin require of every account) reads as it always did.
pub fn full_name(username: &str, short: &str) -> String {
    format!("{}{short}", prefix(username))
}

/// What [`full_name`] puts before a short name (shown beside the form's field).
fn prefix(username: &str) -> String {
    format!("{}_", username.replace('_', "__"))
}

/// `GET /databases`
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    render(&panel, &identity, &account, flash.flash(&identity), "").await
}

/// `POST /databases`
pub async fn create(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<CreateDatabase>,
) -> Result<Response, PageError> {
    let short = match database_short_name(&form.name) {
        Ok(short) => short,
        Err(error) => {
            return refuse(&panel, &identity, &account, &error.to_string(), &form.name).await
        }
    };
    let name = full_name(&account.username, &short);
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::DatabaseCreated,
        format!("Created database {name}"),
    );
    if panel
        .store
        .create_database(account.id, &name, &entry)
        .await?
    {
        Ok(see_other(
            &identity,
            "/databases",
            &format!("Created database {name}."),
        ))
    } else {
        refuse(
            &panel,
            &identity,
            &account,
            &format!("A database called {name} already exists."),
            &form.name,
        )
        .await
    }
}

/// `POST /databases/{name}/drop`
pub async fn drop(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::DatabaseDropped,
        format!("Dropped database {name}"),
    );
    if panel.store.drop_database(account.id, &name, &entry).await? {
        Ok(see_other(
            &identity,
            "/databases",
            &format!("Dropped database {name}."),
        ))
    } else {
        Err(
            PageError::not_found(format!("You have no database called {name}."))
                .back_to("/databases", "Back to your databases"),
        )
    }
}

async fn refuse(
    panel: &PanelState,
    identity: &Identity,
    account: &Account,
    reason: &str,
    typed: &str,
) -> Result<Response, PageError> {
    let markup = render(panel, identity, account, Some(Flash::Error(reason)), typed).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response())
}

async fn render(
    panel: &PanelState,
    identity: &Identity,
    account: &Account,
    flash: Option<Flash<'_>>,
    typed: &str,
) -> Result<Markup, PageError> {
    let databases = panel.store.list_databases(account.id).await?;
    Ok(page(
        identity,
        Area::Databases,
        "Databases",
        flash,
        html! {
            @if databases.is_empty() {
                div.card { p.muted { "You have no databases yet." } }
            } @else {
                table {
                    thead { tr { th { "Database" } th { "Created" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for database in &databases {
                            tr {
                                td { code { (database.name) } }
                                td { (format_time(database.created_at)) }
                                td {
                                    form.inline method="post" action=(binding::action(identity, &format!("/databases/{}/drop", path_segment(&database.name)))) {
                                        button.danger.small type="submit" { "Drop" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a database" }
            div.card {
                form.stack method="post" action=(binding::action(identity, "/databases")) {
                    label for="database-name" { "Database name" }
                    div.prefixed {
                        span { (prefix(&account.username)) }
                        input #database-name type="text" name="name" value=(typed) placeholder="shop"
                            required autocomplete="off" spellcheck="false";
                    }
                    p.muted { "Start with a letter a-z; then letters, digits or underscores, up to 32 characters." }
                    div { button type="submit" { "Create database" } }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::full_name;
    use std::collections::HashMap;

    /// Every string of `alphabet` from 1 to `len` characters that starts with `a` or `b`.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = Vec::new();
        let mut level = vec![String::new()];
        for _ in 0..len {
            level = level
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .filter(|s| s.starts_with(['a', 'b']))
                .collect();
            all.extend(level.iter().cloned());
        }
        all
    }

    #[test]
    fn no_two_accounts_can_have_the_same_full_database_name() {
        // Usernames and short names over letters and `_` (a short name starts with a
        // letter, as `database_short_name` requires): every full name has one owner.
        let mut owner: HashMap<String, String> = HashMap::new();
        for user in strings(&['a', 'b', '_'], 5) {
            for short in strings(&['a', '_'], 4) {
                let name = full_name(&user, &short);
                if let Some(other) = owner.insert(name.clone(), user.clone()) {
                    assert_eq!(other, user, "{name} belongs to {other} and {user}");
                }
            }
        }
        assert_eq!(full_name("carl", "shop_orders"), "carl_shop_orders");
        assert_eq!(full_name("carl_shop", "orders"), "carl__shop_orders");
        assert_eq!(full_name("carl.shop-1", "db"), "carl.shop-1_db");
    }
}
