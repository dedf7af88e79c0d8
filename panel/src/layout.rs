//! The page chrome every HTML page shares: doctype, head with the panel's stylesheet,
//! the left sidebar (areas, staff links to the proxy's console, who is signed in, the
//! sign-out form) and the flash notice; plus the small formatters pages use for times and
//! sizes. Markup is built with maud, so every value is escaped. This module must never
//! emit scripts or inline `style=""` attributes (the proxy injects its banner into these
//! pages), and never decide who may do what beyond which links to show.

use maud::{html, Markup, PreEscaped};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::assertion::Identity;

/// The areas of the sidebar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `/`
    Dashboard,
    /// `/domains`
    Domains,
    /// `/files`
    Files,
    /// `/databases`
    Databases,
    /// `/mail`
    Mail,
    /// `/settings`
    Settings,
    /// `/activity`
    Activity,
    /// A page outside the areas (errors, not found).
    Elsewhere,
}

const AREAS: [(Area, &str, &str); 7] = [
    (Area::Dashboard, "/", "Dashboard"),
    (Area::Domains, "/domains", "Domains"),
    (Area::Files, "/files", "Files"),
    (Area::Databases, "/databases", "Databases"),
    (Area::Mail, "/mail", "Mail"),
    (Area::Settings, "/settings", "Settings"),
    (Area::Activity, "/activity", "Activity"),
];

/// The page of the sidebar area that `path` belongs to (`/files/delete` → `/files`), or
/// the dashboard.
pub fn area_home(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    AREAS
        .iter()
        .map(|(_, href, _)| *href)
        .find(|href| !first.is_empty() && href[1..] == *first)
        .unwrap_or("/")
}

/// The proxy's account directory (staff only).
pub const ACCOUNTS_PATH: &str = "/_actas/accounts";
/// The proxy's audit viewer (admins only).
pub const AUDIT_PATH: &str = "/_actas/audit";
/// The proxy's sign-out endpoint.
pub const LOGOUT_PATH: &str = "/_actas/logout";
/// The proxy's change-password page.
pub const PASSWORD_PATH: &str = "/_actas/account/password";
/// The proxy's access history: who signed in as this account.
pub const ACCESS_HISTORY_PATH: &str = "/_actas/access-history";

/// A flash message carried in `?notice=` after a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash<'a> {
    /// Something succeeded.
    Notice(&'a str),
    /// Something was refused; the page says why.
    Error(&'a str),
}

/// A whole page: chrome around `content`.
pub fn page(
    identity: &Identity,
    area: Area,
    title: &str,
    flash: Option<Flash<'_>>,
    content: Markup,
) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " \u{b7} Hosting panel" }
                style { (PreEscaped(STYLESHEET)) }
            }
            body {
                div.shell {
                    (sidebar(identity, area))
                    main.content id="main" {
                        h1 { (title) }
                        @match flash {
                            Some(Flash::Notice(text)) => p.flash.notice role="status" { (text) },
                            Some(Flash::Error(text)) => p.flash.error role="alert" { (text) },
                            None => {},
                        }
                        (content)
                    }
                }
            }
        }
    }
}

fn sidebar(identity: &Identity, current: Area) -> Markup {
    html! {
        nav.sidebar aria-label="Panel" {
            a.brand href="/" { "Hosting panel" }
            ul.areas {
                @for (area, href, label) in AREAS {
                    li {
                        a href=(href) .active[area == current]
                            aria-current=[(area == current).then_some("page")] { (label) }
                    }
                }
            }
            ul.areas {
                li { a href=(ACCESS_HISTORY_PATH) { "Access history" } }
            }
            @if identity.subject_role.is_staff() {
                p.section { "Staff" }
                ul.areas {
                    li { a href=(ACCOUNTS_PATH) { "Accounts" } }
                    @if identity.subject_role == crate::Role::Admin {
                        li { a href=(AUDIT_PATH) { "Audit" } }
                    }
                }
            }
            div.who {
                p {
                    "Signed in as " strong { (identity.subject_name) }
                    " (" (identity.subject_role.as_str()) ")"
                }
                @if let Some(actor) = &identity.actor {
                    p.muted { "Acting: " (actor.name) " (" (actor.role.as_str()) ")" }
                }
                form method="post" action=(LOGOUT_PATH) {
                    button.secondary type="submit" { "Sign out" }
                }
            }
        }
    }
}

/// A unix time as `2025-03-04 12:34 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A byte count as `512 B`, `1.5 KiB`, `3.2 MiB`...
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

const STYLESHEET: &str = r#"
:root {
  --bg: #f5f6f8; --panel: #ffffff; --ink: #1d2330; --muted: #5d6677; --line: #e1e4ea;
  --accent: #2557d6; --accent-ink: #ffffff; --side: #18202f; --side-ink: #d5dbe6;
  --ok-bg: #e7f6ec; --ok-ink: #185c2e; --err-bg: #fdecec; --err-ink: #8a1c1c;
  --radius: 8px;
}
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
a { color: var(--accent); }
.shell { display: flex; min-height: 100vh; }
.sidebar { flex: 0 0 230px; background: var(--side); color: var(--side-ink); padding: 20px 14px;
  display: flex; flex-direction: column; gap: 6px; }
.sidebar a { color: var(--side-ink); text-decoration: none; }
.brand { font-weight: 700; font-size: 1.1rem; padding: 4px 10px 14px; color: #fff !important; }
.areas { list-style: none; margin: 0; padding: 0; }
.areas a { display: block; padding: 7px 10px; border-radius: 6px; }
.areas a:hover, .areas a:focus { background: rgba(255,255,255,0.08); }
.areas a.active { background: var(--accent); color: var(--accent-ink); }
.section { margin: 14px 10px 4px; font-size: 0.75rem; text-transform: uppercase;
  letter-spacing: 0.08em; opacity: 0.7; }
.who { margin-top: auto; padding: 12px 10px 0; border-top: 1px solid rgba(255,255,255,0.12);
  font-size: 0.9rem; }
.who p { margin: 0 0 8px; }
.content { flex: 1; min-width: 0; padding: 28px 36px; max-width: 1100px; }
h1 { margin: 0 0 18px; font-size: 1.6rem; }
h2 { font-size: 1.15rem; margin: 28px 0 10px; }
.muted { color: var(--muted); }
.pager { display: flex; gap: 12px; margin-top: 12px; }
.sidebar .muted { color: var(--side-ink); opacity: 0.75; }
.flash { padding: 10px 14px; border-radius: var(--radius); margin: 0 0 18px; }
.flash.notice { background: var(--ok-bg); color: var(--ok-ink); }
.flash.error { background: var(--err-bg); color: var(--err-ink); }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 16px 18px; margin-bottom: 18px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 14px;
  margin-bottom: 22px; }
.stat { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 14px 16px; }
.stat .value { font-size: 1.6rem; font-weight: 700; display: block; }
.stat .label { color: var(--muted); font-size: 0.9rem; }
table { width: 100%; border-collapse: collapse; background: var(--panel);
  border: 1px solid var(--line); border-radius: var(--radius); overflow: hidden; }
th, td { text-align: left; padding: 9px 12px; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
th { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted);
  background: #fafbfc; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; }
tr.unread td { font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 0.75rem;
  background: var(--accent); color: var(--accent-ink); font-weight: 600; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
form.inline { display: inline-flex; gap: 6px; align-items: center; margin: 0; }
form.stack { display: grid; gap: 12px; max-width: 520px; }
label { font-weight: 600; font-size: 0.9rem; }
input[type=text], input[type=email], input[type=file], textarea {
  font: inherit; padding: 7px 10px; border: 1px solid #c5cad4; border-radius: 6px;
  background: #fff; color: var(--ink); }
input[type=text], input[type=email] { min-width: 0; }
textarea { width: 100%; min-height: 420px; font-family: ui-monospace, SFMono-Regular, Menlo,
  Consolas, monospace; font-size: 0.9rem; }
.prefixed { display: inline-flex; align-items: center; gap: 0; }
.prefixed span { padding: 7px 8px; background: #eef0f4; border: 1px solid #c5cad4;
  border-right: 0; border-radius: 6px 0 0 6px; color: var(--muted); }
.prefixed input { border-radius: 0 6px 6px 0; }
button, .button { font: inherit; font-weight: 600; padding: 7px 14px; border-radius: 6px;
  border: 1px solid var(--accent); background: var(--accent); color: var(--accent-ink);
  cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: transparent; color: inherit;
  border-color: currentColor; }
button.danger { background: #fff; color: #b42318; border-color: #e4b4ae; }
button.small, .button.small { padding: 3px 10px; font-size: 0.85rem; }
fieldset { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin: 0; }
legend { font-weight: 600; font-size: 0.9rem; padding: 0 4px; }
.checks { display: grid; gap: 6px; }
.checks label { font-weight: 400; display: flex; gap: 8px; align-items: center; }
.error-text { color: var(--err-ink); font-weight: 600; margin: 0; }
pre.text, pre.message-body { background: var(--panel); border: 1px solid var(--line);
  border-radius: var(--radius); padding: 14px 16px; overflow: auto; white-space: pre-wrap;
  word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.9rem; }
dl.headers { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0 0 14px; }
dl.headers dt { color: var(--muted); }
dl.headers dd { margin: 0; }
.crumbs { margin: 0 0 14px; color: var(--muted); }
.crumbs a { text-decoration: none; }
ul.feed { list-style: none; margin: 0; padding: 0; }
ul.feed li { padding: 8px 0; border-bottom: 1px solid var(--line); }
ul.feed li:last-child { border-bottom: 0; }
@media (max-width: 760px) {
  .shell { flex-direction: column; }
  .sidebar { flex: none; }
  .areas { display: flex; flex-wrap: wrap; gap: 4px; }
  .who { margin-top: 10px; }
  .content { padding: 20px 16px; }
  th, td { padding: 8px; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn identity(role: Role) -> Identity {
        Identity {
            subject: "carl".to_owned(),
            subject_role: role,
            subject_name: "Carl <Customer>".to_owned(),
            session_id: "s".to_owned(),
            actor: None,
            impersonation_id: None,
            request_id: None,
        }
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(i64::MAX), "unknown");
    }

    #[test]
    fn the_page_escapes_and_has_no_inline_scripts_or_styles() {
        let markup = page(
            &identity(Role::Customer),
            Area::Domains,
            "Domains <x>",
            Some(Flash::Notice("<script>alert(1)</script>")),
            html! { p { "body" } },
        )
        .into_string();
        assert!(markup.starts_with("<!doctype html><html lang=\"en\">"));
        assert!(!markup.contains("<script"));
        assert!(!markup.contains("style=\""));
        assert!(markup.contains("Carl &lt;Customer&gt;"));
        assert!(markup.contains("&lt;script&gt;"));
        assert!(markup.contains("aria-current=\"page\""));
    }
}
