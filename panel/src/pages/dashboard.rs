//! The dashboard (`/`): the account at a glance — counts of domains, databases,
//! mailboxes and unread messages, the disk used by the files root, and the five newest
//! activity entries. Read-only: it must never change anything.

use axum::extract::{Query, State};
use maud::{html, Markup};

use super::{FlashQuery, PageError};
use crate::assertion::Identity;
use crate::layout::{format_size, format_time, page, Area};
use crate::store::{Account, ActivityRecord};
use crate::PanelState;

/// How many activity entries the dashboard shows.
const RECENT_ACTIVITY: i64 = 5;

/// `GET /`
pub async fn show(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    let summary = panel.store.account_summary(account.id).await?;
    let root = crate::fs::FilesRoot::for_account(&panel.files_dir, &account.username)?;
    let disk_used = root.disk_usage().await?;
    let recent = panel
        .store
        .recent_activity(account.id, RECENT_ACTIVITY)
        .await?;

    let stats = [
        ("/domains", summary.domains.to_string(), "Domains"),
        ("/databases", summary.databases.to_string(), "Databases"),
        ("/mail", summary.mailboxes.to_string(), "Mailboxes"),
        ("/mail", summary.unread.to_string(), "Unread messages"),
        ("/files", format_size(disk_used), "Disk used"),
    ];
    Ok(page(
        &identity,
        Area::Dashboard,
        "Dashboard",
        flash.flash(&identity),
        html! {
            p.muted { "Account " strong { (account.username) } ", hosted since " (format_time(account.created_at)) "." }
            section.stats aria-label="Account summary" {
                @for (href, value, label) in &stats {
                    a.stat href=(href) {
                        span.value { (value) }
                        span.label { (label) }
                    }
                }
            }
            h2 { "Recent activity" }
            (activity_feed(&recent))
            p { a href="/activity" { "All activity" } }
        },
    ))
}

/// A short list of activity entries (shared with nothing else; the activity page shows
/// a table).
fn activity_feed(records: &[ActivityRecord]) -> Markup {
    html! {
        div.card {
            @if records.is_empty() {
                p.muted { "Nothing has happened yet." }
            } @else {
                ul.feed {
                    @for record in records {
                        li {
                            (record.summary)
                            span.muted { " \u{2014} " (record.who()) ", " (format_time(record.at)) }
                        }
                    }
                }
            }
        }
    }
}
