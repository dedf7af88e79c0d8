//! Mail: the mailbox list (`/mail`, with create and delete), one mailbox's message list
//! (`/mail/{mailbox}`: sender, subject, date, unread marker — never bodies) and one
//! message (`/mail/{mailbox}/messages/{id}`: the full text, which marks it read). The
//! three are distinct paths so a proxy policy can allow listing while denying reading.
//! Handlers only ever reach the signed-in subject's own mailboxes and messages; an id
//! from another account is simply not found.

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
use crate::names::mailbox_name;
use crate::store::{Account, ActivityEntry, ActivityKind};
use crate::PanelState;

/// The create-mailbox form.
#[derive(Debug, Deserialize)]
pub struct CreateMailbox {
    #[serde(default)]
    name: String,
}

/// `GET /mail`
pub async fn mailboxes(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    render_mailboxes(&panel, &identity, &account, flash.flash(&identity), "").await
}

/// `POST /mail`
pub async fn create_mailbox(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<CreateMailbox>,
) -> Result<Response, PageError> {
    let name = match mailbox_name(&form.name) {
        Ok(name) => name,
        Err(error) => {
            return refuse(&panel, &identity, &account, &error.to_string(), &form.name).await
        }
    };
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::MailboxCreated,
        format!("Created mailbox {name}"),
    );
    if panel
        .store
        .create_mailbox(account.id, &name, &entry)
        .await?
    {
        Ok(see_other(
            &identity,
            "/mail",
            &format!("Created mailbox {name}."),
        ))
    } else {
        refuse(
            &panel,
            &identity,
            &account,
            &format!("You already have a mailbox called {name}."),
            &form.name,
        )
        .await
    }
}

/// `POST /mail/{mailbox}/delete`
pub async fn delete_mailbox(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Path(mailbox): Path<String>,
) -> Result<Response, PageError> {
    let entry = ActivityEntry::new(
        &identity,
        ActivityKind::MailboxDeleted,
        format!("Deleted mailbox {mailbox}"),
    );
    if panel
        .store
        .delete_mailbox(account.id, &mailbox, &entry)
        .await?
    {
        Ok(see_other(
            &identity,
            "/mail",
            &format!("Deleted mailbox {mailbox} and its messages."),
        ))
    } else {
        Err(no_mailbox(&mailbox))
    }
}

/// `GET /mail/{mailbox}`: the message list, without bodies.
pub async fn messages(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Path(mailbox): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    let Some(messages) = panel.store.list_messages(account.id, &mailbox).await? else {
        return Err(no_mailbox(&mailbox));
    };
    let address = address(&panel, &account, &mailbox).await?;
    let base = format!("/mail/{}", path_segment(&mailbox));
    Ok(page(
        &identity,
        Area::Mail,
        &address,
        flash.flash(&identity),
        html! {
            p.crumbs { a href="/mail" { "Mail" } " / " (address) }
            @if messages.is_empty() {
                div.card { p.muted { "This mailbox is empty." } }
            } @else {
                table {
                    thead { tr { th { "From" } th { "Subject" } th { "Received" } th { span.muted { "Status" } } } }
                    tbody {
                        @for message in &messages {
                            tr .unread[!message.is_read] {
                                td { (message.sender) }
                                td { a href={ (base) "/messages/" (message.id) } { (message.subject) } }
                                td { (format_time(message.received_at)) }
                                td {
                                    @if message.is_read { span.muted { "Read" } }
                                    @else { span.badge { "Unread" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /mail/{mailbox}/messages/{id}`: one whole message; marks it read, unless staff
/// opened it while impersonating: the customer has not read it.
pub async fn message(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Path((mailbox, id)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let not_found = || {
        PageError::not_found("There is no such message in this mailbox.").back_to(
            format!("/mail/{}", path_segment(&mailbox)),
            "Back to the mailbox",
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let message = match &identity.actor {
        None => panel.store.open_message(account.id, &mailbox, id).await?,
        Some(_) => panel.store.peek_message(account.id, &mailbox, id).await?,
    };
    let Some(message) = message else {
        return Err(not_found());
    };
    let address = address(&panel, &account, &mailbox).await?;
    Ok(page(
        &identity,
        Area::Mail,
        &message.subject,
        None,
        html! {
            p.crumbs {
                a href="/mail" { "Mail" } " / "
                a href={ "/mail/" (path_segment(&mailbox)) } { (address) }
            }
            div.card {
                dl.headers {
                    dt { "From" } dd { (message.sender) }
                    dt { "To" } dd { (address) }
                    dt { "Date" } dd { (format_time(message.received_at)) }
                    dt { "Subject" } dd { (message.subject) }
                }
                pre.message-body { "\n" (message.body) }
            }
            @if identity.actor.is_some() {
                p.muted { "Left unread for " (identity.subject) ": you opened it while signed in as them." }
            }
        },
    ))
}

/// `name@<first domain>`, or the bare name while the account has no domain.
async fn address(
    panel: &PanelState,
    account: &Account,
    mailbox: &str,
) -> Result<String, PageError> {
    let domains = panel.store.list_domains(account.id).await?;
    Ok(match domains.first() {
        Some(domain) => format!("{mailbox}@{}", domain.name),
        None => mailbox.to_owned(),
    })
}

fn no_mailbox(mailbox: &str) -> PageError {
    PageError::not_found(format!("You have no mailbox called {mailbox}."))
        .back_to("/mail", "Back to your mailboxes")
}

async fn refuse(
    panel: &PanelState,
    identity: &Identity,
    account: &Account,
    reason: &str,
    typed: &str,
) -> Result<Response, PageError> {
    let markup =
        render_mailboxes(panel, identity, account, Some(Flash::Error(reason)), typed).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response())
}

async fn render_mailboxes(
    panel: &PanelState,
    identity: &Identity,
    account: &Account,
    flash: Option<Flash<'_>>,
    typed: &str,
) -> Result<Markup, PageError> {
    let mailboxes = panel.store.list_mailboxes(account.id).await?;
    let domains = panel.store.list_domains(account.id).await?;
    let domain = domains.first().map(|domain| domain.name.as_str());
    Ok(page(
        identity,
        Area::Mail,
        "Mail",
        flash,
        html! {
            @if mailboxes.is_empty() {
                div.card { p.muted { "You have no mailboxes yet." } }
            } @else {
                table {
                    thead { tr { th { "Mailbox" } th.num { "Messages" } th.num { "Unread" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for mailbox in &mailboxes {
                            tr {
                                td {
                                    a href={ "/mail/" (path_segment(&mailbox.name)) } {
                                        (mailbox.name)
                                        @if let Some(domain) = domain { "@" (domain) }
                                    }
                                }
                                td.num { (mailbox.messages) }
                                td.num {
                                    @if mailbox.unread > 0 { span.badge { (mailbox.unread) } }
                                    @else { span.muted { "0" } }
                                }
                                td {
                                    form.inline method="post" action=(binding::action(identity, &format!("/mail/{}/delete", path_segment(&mailbox.name)))) {
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a mailbox" }
            div.card {
                form.stack method="post" action=(binding::action(identity, "/mail")) {
                    label for="mailbox-name" { "Mailbox name" }
                    input #mailbox-name type="text" name="name" value=(typed) placeholder="info"
                        required autocomplete="off" spellcheck="false";
                    p.muted {
                        @match domain {
                            Some(domain) => { "The address will be name@" (domain) "." },
                            None => { "Add a domain to give your mailboxes an address." },
                        }
                    }
                    div { button type="submit" { "Create mailbox" } }
                }
            }
        },
    ))
}
