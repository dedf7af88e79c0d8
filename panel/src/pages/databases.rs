//! Databases (`/databases`): the account's databases (metadata only), creating one
//! (its short name gets the `<username>_` prefix, as hosting panels do) and dropping
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

/// The full database name for a short name: `<username>_<short>`.
pub fn full_name(account: &Account, short: &str) -> String {
    format!("{}_{short}", account.username)
}

/// `GET /databases`
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    render(&panel, &identity, &account, flash.flash(), "").await
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
    let name = full_name(&account, &short);
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
                        span { (account.username) "_" }
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
