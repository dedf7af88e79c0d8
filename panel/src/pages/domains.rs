//! Domains (`/domains`): the account's domains, adding one (a checked hostname that no
//! other account hosts, outside the provider's zone but for the account's own default
//! domain) and removing one. A refused name re-renders the page with the
//! reason and status 422. Handlers only ever read and change the signed-in subject's
//! own domains.

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
use crate::names::domain_name;
use crate::provision::{default_domain, is_reserved_for_the_provider, DEFAULT_DOMAIN_SUFFIX};
use crate::store::{Account, ActivityEntry, ActivityKind, DomainAdded};
use crate::PanelState;

/// The add-domain form.
#[derive(Debug, Deserialize)]
pub struct AddDomain {
    #[serde(default)]
    name: String,
}

/// `GET /domains`
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    render(&panel, &identity, &account, flash.flash(&identity), "").await
}

/// `POST /domains`
pub async fn add(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<AddDomain>,
) -> Result<Response, PageError> {
    let name = match domain_name(&form.name) {
        Ok(name) => name,
        Err(error) => {
            return refuse(&panel, &identity, &account, &error.to_string(), &form.name).await
        }
    };
    if is_reserved_for_the_provider(&name, &account.username) {
        let own = match default_domain(&account.username) {
            Some(own) => format!(" other than your own default domain, {own}"),
            None => String::new(),
        };
        let reason = format!(
            "{name} is in {DEFAULT_DOMAIN_SUFFIX}, the zone your hosting provider gives each account's default domain from; no name in it can be added{own}. Add a domain you have registered yourself."
        );
        return refuse(&panel, &identity, &account, &reason, &form.name).await;
    }
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::DomainAdded,
        format!("Added domain {name}"),
    );
    match panel.store.add_domain(account.id, &name, &entry).await? {
        DomainAdded::Added => Ok(see_other(&identity, "/domains", &format!("Added {name}."))),
        DomainAdded::AlreadyYours => {
            refuse(
                &panel,
                &identity,
                &account,
                &format!("You already host {name}."),
                &form.name,
            )
            .await
        }
        DomainAdded::TakenByAnother => {
            let reason = format!("{name} is already hosted by another account. A domain can belong to one account only.");
            refuse(&panel, &identity, &account, &reason, &form.name).await
        }
    }
}

/// `POST /domains/{name}/delete`
pub async fn remove(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::DomainRemoved,
        format!("Removed domain {name}"),
    );
    if panel.store.remove_domain(account.id, &name, &entry).await? {
        Ok(see_other(
            &identity,
            "/domains",
            &format!("Removed {name}."),
        ))
    } else {
        Err(
            PageError::not_found(format!("You have no domain called {name}."))
                .back_to("/domains", "Back to your domains"),
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
    let domains = panel.store.list_domains(account.id).await?;
    Ok(page(
        identity,
        Area::Domains,
        "Domains",
        flash,
        html! {
            @if domains.is_empty() {
                div.card { p.muted { "You have no domains yet. Add one below." } }
            } @else {
                table {
                    thead { tr { th { "Domain" } th { "Added" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for domain in &domains {
                            tr {
                                td { (domain.name) }
                                td { (format_time(domain.created_at)) }
                                td {
                                    form.inline method="post" action=(binding::action(identity, &format!("/domains/{}/delete", path_segment(&domain.name)))) {
                                        button.danger.small type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Add a domain" }
            div.card {
                form.stack method="post" action=(binding::action(identity, "/domains")) {
                    label for="domain-name" { "Domain name" }
                    input #domain-name type="text" name="name" value=(typed) placeholder="example.com"
                        required autocomplete="off" spellcheck="false";
                    p.muted { "Letters, digits and hyphens, with at least one dot, e.g. shop.example.com." }
                    div { button type="submit" { "Add domain" } }
                }
            }
        },
    ))
}
