//! The activity feed (`/activity`): every change made to the account, newest first, with
//! when and who — `carl`, or `ada (admin) on behalf of carl` while staff impersonate.
//! Read-only: it must never change anything.

use axum::extract::{Query, State};
use maud::{html, Markup};

use super::{FlashQuery, PageError};
use crate::assertion::Identity;
use crate::layout::{format_time, page, Area};
use crate::store::Account;
use crate::PanelState;

/// How many entries the page shows.
const PAGE_SIZE: i64 = 200;

/// `GET /activity`
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    let records = panel.store.recent_activity(account.id, PAGE_SIZE).await?;
    Ok(page(
        &identity,
        Area::Activity,
        "Activity",
        flash.flash(),
        html! {
            p.muted { "Every change to this account, newest first. Changes made by staff on your behalf name them." }
            @if records.is_empty() {
                div.card { p.muted { "Nothing has happened yet." } }
            } @else {
                table {
                    thead { tr { th { "When" } th { "Who" } th { "What" } } }
                    tbody {
                        @for record in &records {
                            tr {
                                td { (format_time(record.at)) }
                                td.who { (record.who()) }
                                td { (record.summary) }
                            }
                        }
                    }
                }
            }
        },
    ))
}
