//! The console's HTML: one function per page, all through one layout. maud escapes every
//! interpolated value; the only raw HTML is the banner markup, which escapes its own text.
//!
//! Pages carry no inline script or style: the stylesheet is `/_actas/console.css`, so the
//! console's own Content-Security-Policy can forbid inline code entirely.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::audit::{Kind, Record};
use crate::directory::Account;
use crate::store::audit::AuditKey;
use crate::store::sessions::{ImpersonationSummary, SessionRecord};

/// The console stylesheet.
pub const CONSOLE_CSS: &str = r#"
:root{--fg:#1d2433;--muted:#5b6478;--line:#dde2ec;--bg:#f6f7fb;--card:#fff;--accent:#2f5bd3;--danger:#b42318;--ok:#067647}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
header.top{display:flex;flex-wrap:wrap;gap:12px;align-items:center;justify-content:space-between;padding:10px 24px;background:#111827;color:#fff}
header.top a{color:#dbe4ff;text-decoration:none;margin-right:16px}
header.top a:hover,header.top a:focus{text-decoration:underline}
header.top .brand{font-weight:700;color:#fff;margin-right:24px}
header.top form{display:inline;margin:0}
header.top button{background:transparent;color:#dbe4ff;border:1px solid #4b5563;border-radius:6px;padding:4px 10px;cursor:pointer}
main{max-width:980px;margin:24px auto;padding:0 16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:20px 24px;margin-bottom:20px}
h1{font-size:1.5rem;margin:0 0 12px}
h2{font-size:1.15rem;margin:0 0 10px}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:.85rem;text-transform:uppercase;letter-spacing:.03em}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password],input[type=search],input[type=datetime-local],select,textarea{width:100%;max-width:420px;padding:8px 10px;border:1px solid #b8c0d0;border-radius:6px;font:inherit}
.inline label{display:inline-block;margin-right:8px}
.check{display:flex;gap:8px;align-items:flex-start;font-weight:400}
.check input{margin-top:4px}
button,.button{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:6px;padding:9px 16px;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}
button.danger{background:var(--danger)}
button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.notice{border-left:4px solid var(--accent);background:#eef2ff;padding:10px 14px;border-radius:6px;margin-bottom:16px}
.error{border-left:4px solid var(--danger);background:#fef3f2;padding:10px 14px;border-radius:6px;margin-bottom:16px}
.muted{color:var(--muted)}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:.8rem;background:#eef2ff;color:#3538cd}
.pill.disabled{background:#fef3f2;color:var(--danger)}
.login{max-width:380px;margin:10vh auto}
.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end}
.filters label{margin:0 0 4px}
.filters input,.filters select{max-width:180px}
.pager{display:flex;gap:12px;margin-top:12px}
code{font-size:.85em;background:#f1f3f8;padding:1px 4px;border-radius:4px}
@media (max-width:640px){header.top{padding:10px 12px}main{margin:12px auto}.card{padding:14px}}
"#;

/// Who is looking at the page, for the layout.
pub struct Viewer<'a> {
    /// The session.
    pub session: &'a SessionRecord,
    /// The banner markup when impersonating.
    pub banner: Option<String>,
}

/// Formats milliseconds since the epoch as `2026-11-25 14:02 UTC`.
pub fn when(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return "—".into();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| "—".into())
}

/// A duration in words: `14 min`, `2 h 5 min`, `40 s`.
pub fn span(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

fn page(title: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · actas" }
                link rel="stylesheet" href="/_actas/console.css";
            }
            body {
                @if let Some(b) = viewer.and_then(|v| v.banner.as_deref()) { (PreEscaped(b)) }
                @if let Some(v) = viewer {
                    header.top {
                        nav aria-label="Console" {
                            a.brand href="/" { "actas" }
                            a href="/" { "Panel" }
                            @if v.session.actor.role.is_staff() { a href="/_actas/accounts" { "Accounts" } }
                            @if v.session.actor.role == crate::directory::Role::Admin { a href="/_actas/audit" { "Audit" } }
                            a href="/_actas/access-history" { "Access history" }
                            a href="/_actas/account/password" { "Change password" }
                        }
                        div {
                            span.muted { (v.session.actor.display_name) " (" (v.session.actor.role) ") " }
                            form method="post" action="/_actas/logout" {
                                input type="hidden" name="csrf_token" value=(v.session.csrf_token);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in page.
pub fn login(csrf: &str, next: &str, error: Option<&str>, username: &str) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            div.login.card {
                h1 { "Sign in" }
                p.muted { "Sign in to the hosting panel." }
                @if let Some(e) = error { div.error role="alert" { (e) } }
                form method="post" action="/_actas/login" {
                    input type="hidden" name="csrf_token" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="username" { "Username" }
                    input #username type="text" name="username" value=(username) autocomplete="username" autocapitalize="none" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

/// Where the accounts directory's links lead: the usernames the pages before and after
/// this one start next to, where there are such pages.
pub struct AccountsPager {
    /// Accounts before this page's first, if any.
    pub before: Option<String>,
    /// Accounts after this page's last, if any.
    pub after: Option<String>,
}

/// The accounts directory.
pub fn accounts(
    viewer: &Viewer<'_>,
    search: &str,
    list: &[Account],
    pager: &AccountsPager,
    notice: Option<&str>,
) -> Markup {
    let link = |side: &str, name: &str| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !search.is_empty() {
            s.append_pair("q", search);
        }
        s.append_pair(side, name);
        format!("/_actas/accounts?{}", s.finish())
    };
    page(
        "Accounts",
        Some(viewer),
        html! {
            @if let Some(n) = notice { div.notice role="status" { (n) } }
            div.card {
                h1 { "Accounts" }
                @if viewer.session.actor.role == crate::directory::Role::Reseller {
                    p.muted { "The accounts you created." }
                }
                form method="get" action="/_actas/accounts" role="search" {
                    label for="q" { "Search" }
                    input #q type="search" name="q" value=(search) placeholder="username or name";
                    " " button type="submit" { "Search" }
                }
            }
            div.card {
                @if list.is_empty() {
                    p.muted { "No accounts match." }
                } @else {
                    table {
                        thead { tr { th { "Username" } th { "Name" } th { "Role" } th { "Created by" } th { "Status" } } }
                        tbody {
                            @for a in list {
                                tr {
                                    td { a href={ "/_actas/accounts/" (a.username) } { (a.username) } }
                                    td { (a.display_name) }
                                    td { (a.role) }
                                    td { (a.created_by.as_deref().unwrap_or("—")) }
                                    td { span.pill.disabled[a.status == crate::directory::Status::Disabled] { (a.status.as_str()) } }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if let Some(name) = &pager.before { a href=(link("before", name)) { "← Previous" } }
                    @if let Some(name) = &pager.after { a href=(link("after", name)) { "Next →" } }
                }
            }
        },
    )
}

/// One account, with the **Sign in as this user** form when the policy allows it.
pub fn account(
    viewer: &Viewer<'_>,
    a: &Account,
    can_impersonate: bool,
    why_not: Option<&str>,
) -> Markup {
    page(
        &a.username,
        Some(viewer),
        html! {
            div.card {
                h1 { (a.display_name) " " span.muted { "(" (a.username) ")" } }
                table {
                    tr { th { "Role" } td { (a.role) } }
                    tr { th { "Created by" } td { (a.created_by.as_deref().unwrap_or("—")) } }
                    tr { th { "Status" } td { (a.status.as_str()) } }
                    tr { th { "Since" } td { (when(a.created_at)) } }
                }
            }
            div.card {
                h2 { "Sign in as this user" }
                @if can_impersonate {
                    p.muted { "You will see the panel exactly as " (a.username) " does. Every request is recorded with both your names." }
                    form method="post" action="/_actas/impersonate" {
                        input type="hidden" name="csrf_token" value=(viewer.session.csrf_token);
                        input type="hidden" name="target" value=(a.username);
                        input type="hidden" name="return_to" value={ "/_actas/accounts/" (a.username) };
                        label for="reason" { "Reason (ticket number)" }
                        input #reason type="text" name="reason" maxlength="500" placeholder="e.g. ticket #4711";
                        label.check {
                            input type="checkbox" name="mail_consent" value="yes";
                            span { "The customer asked me to look at their mail" }
                        }
                        p { button type="submit" { "Sign in as this user" } }
                    }
                } @else {
                    p.muted { (why_not.unwrap_or("You don't have permission to impersonate this user.")) }
                }
            }
        },
    )
}

/// The page for a refused impersonation (403).
pub fn impersonation_denied(viewer: &Viewer<'_>) -> Markup {
    page(
        "Not allowed",
        Some(viewer),
        html! {
            div.card {
                h1 { "You don't have permission to impersonate this user" }
                p { "The policy in force does not allow you to sign in as this account. The attempt has been recorded." }
                p { a href="/_actas/accounts" { "Back to accounts" } }
            }
        },
    )
}

/// A request the policy refuses (403), e.g. mail content without consent.
pub fn request_denied(viewer: &Viewer<'_>, path: &str) -> Markup {
    page(
        "Not allowed while impersonating",
        Some(viewer),
        html! {
            div.card {
                h1 { "Not allowed while impersonating" }
                p { "The policy in force does not allow this request while you are signed in as another user: " code { (path) } }
                @if path.starts_with("/mail/") {
                    p { "Message content is only shown when the impersonation was started with "
                        em { "The customer asked me to look at their mail" } " ticked." }
                }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}

/// An error page (502, 503, 404, 429, 400 …) with a title and an explanation.
pub fn error(viewer: Option<&Viewer<'_>>, title: &str, detail: &str) -> Markup {
    page(
        title,
        viewer,
        html! {
            div.card {
                h1 { (title) }
                p { (detail) }
                p { a href="/" { "Back to the panel" } }
            }
        },
    )
}

/// Filters of the audit viewer, as typed.
#[derive(Default)]
pub struct AuditQuery {
    /// Actor.
    pub actor: String,
    /// Subject.
    pub subject: String,
    /// Impersonation id.
    pub impersonation: String,
    /// Kind.
    pub kind: String,
    /// From (`YYYY-MM-DDTHH:MM`, UTC).
    pub since: String,
    /// Until.
    pub until: String,
}

/// Where the audit page's links lead: the keys of the records the pages before and after
/// this one start next to, where there are such pages.
pub struct AuditPager {
    /// Records older than this one's oldest, if any.
    pub older: Option<AuditKey>,
    /// Records newer than this one's newest, if any.
    pub newer: Option<AuditKey>,
    /// Whether this page was reached by a link (then one leads back to the first page).
    pub first: bool,
}

impl AuditQuery {
    /// This page's filters, and the records older or newer than `key` when it is given.
    fn link(&self, key: Option<(&str, &AuditKey)>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("subject", &self.subject),
            ("impersonation", &self.impersonation),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some((side, key)) = key {
            s.append_pair(side, &format!("{}.{}.{}", key.ts, key.seq, key.instance));
        }
        format!("/_actas/audit?{}", s.finish())
    }
}

/// The audit viewer (admins).
pub fn audit(
    viewer: &Viewer<'_>,
    q: &AuditQuery,
    records: &[Record],
    pager: &AuditPager,
) -> Markup {
    // One impersonation reads oldest first, everything else newest first.
    let oldest_first = !q.impersonation.is_empty();
    let (older_label, newer_label) = if oldest_first {
        ("← Earlier", "Later →")
    } else {
        ("Older →", "← Newer")
    };
    let link = |side, key: &Option<AuditKey>, label| {
        key.as_ref().map(|key| (q.link(Some((side, key))), label))
    };
    let older = link("older", &pager.older, older_label);
    let newer = link("newer", &pager.newer, newer_label);
    let (back, forward) = if oldest_first {
        (older, newer)
    } else {
        (newer, older)
    };
    page(
        "Audit",
        Some(viewer),
        html! {
            div.card {
                h1 { "Audit log" }
                @if !q.impersonation.is_empty() {
                    p.notice { "Showing every record of impersonation " code { (q.impersonation) } ", oldest first." }
                }
                form.filters method="get" action="/_actas/audit" {
                    div { label for="actor" { "Actor" } input #actor type="text" name="actor" value=(q.actor); }
                    div { label for="subject" { "Subject" } input #subject type="text" name="subject" value=(q.subject); }
                    div { label for="impersonation" { "Impersonation" } input #impersonation type="text" name="impersonation" value=(q.impersonation); }
                    div { label for="kind" { "Kind" }
                        select #kind name="kind" {
                            option value="" { "any" }
                            @for k in Kind::ALL { option value=(k.as_str()) selected[q.kind == k.as_str()] { (k.as_str()) } }
                        }
                    }
                    div { label for="since" { "From (UTC)" } input #since type="datetime-local" name="since" value=(q.since); }
                    div { label for="until" { "Until (UTC)" } input #until type="datetime-local" name="until" value=(q.until); }
                    div { button type="submit" { "Filter" } }
                }
            }
            div.card {
                @if records.is_empty() { p.muted { "No records match." } } @else {
                    table {
                        thead { tr { th { "Time" } th { "Kind" } th { "Actor" } th { "Subject" } th { "Request" } th { "Status" } th { "Why" } } }
                        tbody {
                            @for r in records {
                                tr {
                                    td { (when(r.ts)) }
                                    td { (r.kind) }
                                    td { (r.actor.as_deref().unwrap_or("—")) }
                                    td {
                                        (r.subject.as_deref().unwrap_or("—"))
                                        @if let Some(i) = &r.impersonation_id {
                                            br; a href={ "/_actas/audit?impersonation=" (i) } { "impersonation" }
                                        }
                                    }
                                    td { (r.method.as_deref().unwrap_or("")) " " (r.path.as_deref().unwrap_or("")) }
                                    td { (r.status.map(|s| s.to_string()).unwrap_or_else(|| if r.kind == "request" { "pending".into() } else { String::new() })) }
                                    td { (r.decision.as_deref().unwrap_or("")) " " (r.reason.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if pager.first {
                        a href=(q.link(None)) { @if oldest_first { "⇤ Earliest" } @else { "⇤ Newest" } }
                    }
                    @if let Some((href, label)) = back { a href=(href) { (label) } }
                    @if let Some((href, label)) = forward { a href=(href) { (label) } }
                }
            }
        },
    )
}

/// The customer's access history: who signed in as them, newest first, a page at a time:
/// `older` is the key of the page after this one, if there is one; `later` says whether
/// this page was reached by such a link.
pub fn access_history(
    viewer: &Viewer<'_>,
    list: &[ImpersonationSummary],
    older: Option<&str>,
    later: bool,
) -> Markup {
    let link = |key: &str| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("older", key);
        format!("/_actas/access-history?{}", s.finish())
    };
    page(
        "Access history",
        Some(viewer),
        html! {
            div.card {
                h1 { "Access history" }
                p.muted { "Every time a member of staff signed in as you: who, when, for how long, and why." }
                @if list.is_empty() { p { "Nobody has signed in as you." } } @else {
                    table {
                        thead { tr { th { "Who" } th { "Started" } th { "Duration" } th { "Reason given" } th { "Mail access" } th { "Ended because" } } }
                        tbody {
                            @for i in list {
                                tr {
                                    td { (i.actor) " (" (i.actor_role) ")" }
                                    td { (when(i.started_at)) }
                                    td { @if let Some(end) = i.ended_at { (span(end - i.started_at)) } @else { "ongoing" } }
                                    td { @if i.reason.is_empty() { span.muted { "none given" } } @else { (i.reason) } }
                                    td { @if i.mail_consent { "allowed by you" } @else { "no" } }
                                    td { (i.end_reason.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if later { a href="/_actas/access-history" { "⇤ Most recent" } }
                    @if let Some(key) = older { a href=(link(key)) { "Older →" } }
                }
            }
        },
    )
}

/// The change-password page.
pub fn password(viewer: &Viewer<'_>, error: Option<&str>, done: bool) -> Markup {
    page(
        "Change password",
        Some(viewer),
        html! {
            div.card {
                h1 { "Change password" }
                @if done { div.notice role="status" { "Your password has been changed." } }
                @if let Some(e) = error { div.error role="alert" { (e) } }
                form method="post" action="/_actas/account/password" {
                    input type="hidden" name="csrf_token" value=(viewer.session.csrf_token);
                    label for="current" { "Current password" }
                    input #current type="password" name="current" autocomplete="current-password" required;
                    label for="new" { "New password (at least 8 characters)" }
                    input #new type="password" name="new" autocomplete="new-password" minlength="8" required;
                    label for="confirm" { "New password again" }
                    input #confirm type="password" name="confirm" autocomplete="new-password" minlength="8" required;
                    p { button type="submit" { "Change password" } }
                }
            }
        },
    )
}
