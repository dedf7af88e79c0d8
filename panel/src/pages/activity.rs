//! The activity feed (`/activity`): every change made to the account, newest first, a
//! hundred at a time, with when and who — `carl`, or `ada (admin) on behalf of carl` while
//! staff impersonate.
//! Read-only: it must never change anything.

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use super::{FlashQuery, PageError};
use crate::assertion::Identity;
use crate::layout::{format_time, page, Area};
use crate::store::Account;
use crate::PanelState;

/// How many entries a page shows.
const PAGE_SIZE: usize = 100;

/// Which page of the feed: `older=<at>.<id>`, the last entry of the page before.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    older: Option<String>,
}

/// `older`'s `(at, id)`; `None` for anything else.
fn parse_key(key: &str) -> Option<(i64, i64)> {
    let (at, id) = key.split_once('.')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

/// `GET /activity`
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
    Query(feed): Query<FeedQuery>,
) -> Result<Markup, PageError> {
    let before = match feed.older.as_deref() {
        None => None,
        Some(key) => Some(parse_key(key).ok_or_else(|| {
            PageError::bad_request("This page link is malformed.")
                .back_to("/activity".to_owned(), "Back to the newest")
        })?),
    };
    let mut records = panel
        .store
        .activity_before(account.id, before, PAGE_SIZE as i64 + 1)
        .await?;
    let more = records.len() > PAGE_SIZE;
    records.truncate(PAGE_SIZE);
    let older = records
        .last()
        .filter(|_| more)
        .map(|r| format!("/activity?older={}.{}", r.at, r.id));
    Ok(page(
        &identity,
        Area::Activity,
        "Activity",
        flash.flash(&identity),
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
            div.pager {
                @if before.is_some() { a href="/activity" { "⇤ Newest" } }
                @if let Some(href) = &older { a href=(href) { "Older →" } }
            }
        },
    ))
}
