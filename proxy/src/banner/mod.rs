//! The impersonation banner: while a session acts as someone else, every HTML document the
//! browser shows gets a bar across the top saying so, with a **Stop impersonating** button.
//!
//! It is streamed into whatever the panel sends with lol_html: decoded if the panel
//! compressed it, placed right after `<body>` opens, and the rest of the document passed
//! through byte for byte without buffering. In an HTML document the banner lives in a
//! declarative shadow root whose `:host` rules are `!important`, so page CSS cannot hide or
//! restyle it; an XHTML document is parsed as XML, where a declarative shadow root stays
//! inert, so there it is a plain element whose `!important` rules are scoped to its id (see
//! [`Syntax`]). Its markup is well-formed XML as well as HTML, and its Stop form posts to
//! an absolute URL on the page's origin, whatever `<base>` the page sets. Its only inline
//! code is one `<style>`, admitted by hash into the page's Content-Security-Policy without
//! weakening it. This module never panics on any input: a document it cannot rewrite is
//! passed through untouched.

mod csp;
mod inject;

pub use inject::{BannerError, Injector};

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use http::header::{CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};

/// What the banner says: borrowed from the session it is shown for ([`BannerInfo`]), owned
/// where the markup cache keeps a banner it has not seen (`BannerFacts<String>`). Every
/// string is escaped before it reaches the page.
#[derive(Clone, Copy, Debug)]
pub struct BannerFacts<S> {
    /// Who signed in.
    pub actor: S,
    /// Their role.
    pub actor_role: S,
    /// Whom they act as.
    pub subject: S,
    /// Its role.
    pub subject_role: S,
    /// Start (seconds since the epoch).
    pub started_at: i64,
    /// Hard end (seconds since the epoch).
    pub expires_at: i64,
    /// Now (seconds since the epoch).
    pub now: i64,
    /// The session's CSRF token, for the Stop form.
    pub csrf_token: S,
}

/// What the banner says for one page, borrowed from the session.
pub type BannerInfo<'a> = BannerFacts<&'a str>;

impl<S> BannerFacts<S> {
    /// The same facts with every string passed through `f`: copies to keep, or a view of
    /// kept ones to compare.
    fn map<'s, T>(&'s self, f: impl Fn(&'s S) -> T) -> BannerFacts<T> {
        BannerFacts {
            actor: f(&self.actor),
            actor_role: f(&self.actor_role),
            subject: f(&self.subject),
            subject_role: f(&self.subject_role),
            started_at: self.started_at,
            expires_at: self.expires_at,
            now: self.now,
            csrf_token: f(&self.csrf_token),
        }
    }
}

/// The path the Stop button posts to.
pub const STOP_PATH: &str = "/_actas/impersonate/stop";

/// The banner's stylesheet in an HTML document, the one inline `<style>` it carries.
const STYLE: &str = ":host{all:initial!important;display:block!important;position:sticky!important;top:0!important;left:0!important;right:0!important;z-index:2147483647!important;visibility:visible!important;opacity:1!important;transform:none!important;clip-path:none!important;filter:none!important;mask:none!important;pointer-events:auto!important;width:auto!important;height:auto!important;min-height:0!important;max-height:none!important;margin:0!important;padding:0!important;overflow:visible!important;contain:none!important}\
.bar{box-sizing:border-box;display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:6px 16px;margin:0;padding:8px 16px;background:#7a1d12;color:#fff;font:600 15px/1.4 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;border-bottom:3px solid #f5b700;box-shadow:0 2px 6px rgba(0,0,0,.35);text-align:left}\
.text{flex:1 1 320px;min-width:0;overflow-wrap:anywhere}\
.muted{font-weight:400;opacity:.92}\
form{margin:0;display:inline}\
button{font:700 14px/1.2 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1b1b1b;background:#f5b700;border:0;border-radius:6px;padding:8px 14px;cursor:pointer;min-height:36px}\
button:hover{background:#ffd24d}\
button:focus-visible{outline:3px solid #fff;outline-offset:2px}\
@media (max-width:480px){.bar{padding:6px 10px;font-size:14px}button{width:100%}}";

/// The banner's stylesheet in an XHTML document, where it has no shadow root: the same
/// look, every rule `!important` and scoped to the banner's id, `#actas-banner` (the page's
/// own rules, even `!important` ones, are less specific unless they name that id). Its
/// descendants are first reverted to the browser's defaults, so page rules for `div`,
/// `form` or `button` do not reach them. It is XML text as it stands (no `<` or `&`), so
/// its hash is that of the text the browser checks.
const XHTML_STYLE: &str = "actas-banner#actas-banner{all:initial!important;display:block!important;position:sticky!important;top:0!important;left:0!important;right:0!important;z-index:2147483647!important;visibility:visible!important;opacity:1!important;transform:none!important;clip-path:none!important;filter:none!important;mask:none!important;pointer-events:auto!important;width:auto!important;height:auto!important;min-height:0!important;max-height:none!important;margin:0!important;padding:0!important;overflow:visible!important;contain:none!important}\
#actas-banner *{all:revert!important}\
#actas-banner .bar{box-sizing:border-box!important;display:flex!important;flex-wrap:wrap!important;align-items:center!important;justify-content:space-between!important;gap:6px 16px!important;margin:0!important;padding:8px 16px!important;background:#7a1d12!important;color:#fff!important;font:600 15px/1.4 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif!important;border-bottom:3px solid #f5b700!important;box-shadow:0 2px 6px rgba(0,0,0,.35)!important;text-align:left!important}\
#actas-banner .text{flex:1 1 320px!important;min-width:0!important;overflow-wrap:anywhere!important}\
#actas-banner .muted{font-weight:400!important;opacity:.92!important}\
#actas-banner form{margin:0!important;display:inline!important}\
#actas-banner button{font:700 14px/1.2 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif!important;color:#1b1b1b!important;background:#f5b700!important;border:0!important;border-radius:6px!important;padding:8px 14px!important;cursor:pointer!important;min-height:36px!important}\
#actas-banner button:hover{background:#ffd24d!important}\
#actas-banner button:focus-visible{outline:3px solid #fff!important;outline-offset:2px!important}\
@media (max-width:480px){#actas-banner .bar{padding:6px 10px!important;font-size:14px!important}#actas-banner button{width:100%!important}}";

/// The markup a document is parsed as, which decides how the banner is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `text/html`: the banner lives in a declarative shadow root.
    Html,
    /// `application/xhtml+xml`: parsed as XML, where a declarative shadow root stays inert
    /// (the banner would be invisible), so the banner is a plain XHTML element styled
    /// under its own id.
    Xhtml,
}

impl Syntax {
    /// The syntax of a response, by its `Content-Type`.
    fn of(resp: &HeaderMap) -> Syntax {
        if is_xhtml(resp) {
            Syntax::Xhtml
        } else {
            Syntax::Html
        }
    }

    /// The banner's stylesheet in this syntax.
    fn style(self) -> &'static str {
        match self {
            Syntax::Html => STYLE,
            Syntax::Xhtml => XHTML_STYLE,
        }
    }

    /// The CSP source expression admitting the banner's `<style>` in this syntax:
    /// `'sha256-…'`.
    pub fn style_hash_source(self) -> &'static str {
        static HTML: OnceLock<String> = OnceLock::new();
        static XHTML: OnceLock<String> = OnceLock::new();
        let hash = match self {
            Syntax::Html => &HTML,
            Syntax::Xhtml => &XHTML,
        };
        hash.get_or_init(|| {
            let digest = crate::digest::sha256(&[self.style().as_bytes()]);
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
    }
}

/// The CSP source expression admitting the HTML banner's `<style>` (the one [`render`]
/// gives): `'sha256-…'`.
pub fn style_hash_source() -> &'static str {
    Syntax::Html.style_hash_source()
}

/// Escapes text for HTML and XML content and attribute values, and writes every non-ASCII
/// character as a numeric reference, so the banner is plain ASCII and keeps its meaning
/// in any ASCII-compatible charset. Control characters become spaces (XML forbids most C0
/// ones even as references, and HTML reads references to C1 ones as other characters);
/// U+FFFE and U+FFFF, which are no XML characters either, become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c if c.is_ascii() => out.push(c),
            '\u{FFFE}' | '\u{FFFF}' => out.push_str("&#xfffd;"),
            c => out.push_str(&format!("&#x{:x};", c as u32)),
        }
    }
    out
}

fn clock(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{:02}:{:02} UTC", s / 3600, (s % 3600) / 60)
}

/// Whole minutes left, rounded up, as the banner shows them.
fn minutes_left(info: &BannerInfo<'_>) -> i64 {
    ((info.expires_at - info.now).max(0) + 59) / 60
}

/// Whether `a` and `b` render the same markup: every field but `now`, which shows only
/// through the minutes left. The fields are named exhaustively, so a field added to
/// [`BannerInfo`] does not compile until it is compared here too.
fn same_markup(a: &BannerInfo<'_>, b: &BannerInfo<'_>) -> bool {
    let BannerInfo {
        actor,
        actor_role,
        subject,
        subject_role,
        started_at,
        expires_at,
        now: _,
        csrf_token,
    } = a;
    *started_at == b.started_at
        && *expires_at == b.expires_at
        && minutes_left(a) == minutes_left(b)
        && *csrf_token == b.csrf_token
        && *subject == b.subject
        && *actor == b.actor
        && *subject_role == b.subject_role
        && *actor_role == b.actor_role
}

/// Banners rendered recently on this thread, kept per thread so that no lock is taken.
const RECENT_BANNERS: usize = 8;

/// A banner rendered on this thread: what it was rendered from, and its markup.
struct Rendered {
    facts: BannerFacts<String>,
    origin: String,
    syntax: Syntax,
    markup: Arc<str>,
}

/// The next slot to replace, and up to [`RECENT_BANNERS`] banners.
type Recent = (usize, Vec<Rendered>);

/// [`render_for`], reusing the markup rendered on this thread for the same session, minute,
/// origin and syntax: a session browsing through the proxy renders its banner about once a
/// minute per thread instead of once a page. The result is always exactly
/// `render_for(info, origin, syntax)`.
pub fn rendered(info: &BannerInfo<'_>, origin: &str, syntax: Syntax) -> Arc<str> {
    thread_local! {
        static RECENT: RefCell<Recent> = const { RefCell::new((0, Vec::new())) };
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let (next, entries) = &mut *recent;
        if let Some(seen) = entries.iter().find(|seen| {
            seen.syntax == syntax
                && seen.origin == origin
                && same_markup(&seen.facts.map(String::as_str), info)
        }) {
            return seen.markup.clone();
        }
        let markup: Arc<str> = render_for(info, origin, syntax).into();
        let entry = Rendered {
            facts: info.map(|s| (*s).to_owned()),
            origin: origin.to_owned(),
            syntax,
            markup: markup.clone(),
        };
        if entries.len() < RECENT_BANNERS {
            entries.push(entry);
        } else {
            entries[*next] = entry;
            *next = (*next + 1) % RECENT_BANNERS;
        }
        markup
    })
}

/// The banner for the proxy's own console pages: HTML, its Stop form posting to
/// [`STOP_PATH`] on the page's origin (console pages set no `<base>`).
pub fn render(info: &BannerInfo<'_>) -> String {
    render_for(info, "", Syntax::Html)
}

/// The exact markup inserted into a document of `syntax` served from `origin`
/// (`scheme://host[:port]`). The Stop form posts to [`STOP_PATH`] on `origin`, written out
/// in full so that a page's `<base href>` cannot send the session's CSRF token to another
/// site. The markup is well-formed XML as well as HTML.
pub fn render_for(info: &BannerInfo<'_>, origin: &str, syntax: Syntax) -> String {
    let (open, close) = match syntax {
        Syntax::Html => (
            "<actas-banner><template shadowrootmode=\"open\">",
            "</template></actas-banner>",
        ),
        // The namespace is named here, not inherited: a page may bind XHTML to a prefix.
        Syntax::Xhtml => (
            "<actas-banner xmlns=\"http://www.w3.org/1999/xhtml\" id=\"actas-banner\">",
            "</actas-banner>",
        ),
    };
    let left_min = minutes_left(info);
    format!(
        "{open}<style>{style}</style>\
<div class=\"bar\" role=\"region\" aria-label=\"Impersonation\">\
<span class=\"text\" role=\"status\">You're signed in as {subject} ({subject_role}). You are {actor} ({actor_role}). \
<span class=\"muted\">Started {started} &#183; {left_min} min left</span></span>\
<form method=\"post\" action=\"{origin}{STOP_PATH}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"/>\
<button type=\"submit\">Stop impersonating</button></form></div>{close}",
        style = syntax.style(),
        subject = escape(info.subject),
        subject_role = escape(info.subject_role),
        actor = escape(info.actor),
        actor_role = escape(info.actor_role),
        started = clock(info.started_at),
        origin = escape(origin),
        csrf = escape(info.csrf_token),
    )
}

/// Removes the first occurrence of `banner` from `output` (for tests: what remains must be
/// the original document).
pub fn strip(output: &[u8], banner: &str) -> Vec<u8> {
    let b = banner.as_bytes();
    match output.windows(b.len().max(1)).position(|w| w == b) {
        Some(at) if !b.is_empty() => [&output[..at], &output[at + b.len()..]].concat(),
        _ => output.to_vec(),
    }
}

fn header(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The media type of a `Content-Type`, without parameters (compare it ignoring case).
fn media_type(resp: &HeaderMap) -> Option<&str> {
    header(resp, CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or("").trim())
}

/// Whether `resp` is an XHTML document.
fn is_xhtml(resp: &HeaderMap) -> bool {
    media_type(resp).is_some_and(|m| m.eq_ignore_ascii_case("application/xhtml+xml"))
}

/// Whether a response is a document the browser will render and that may carry a banner.
pub fn should_inject(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
) -> bool {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return false;
    }
    if status == StatusCode::PARTIAL_CONTENT
        || resp.contains_key(CONTENT_RANGE)
        || status.is_informational()
    {
        return false;
    }
    let document = |m: &str| {
        m.eq_ignore_ascii_case("text/html") || m.eq_ignore_ascii_case("application/xhtml+xml")
    };
    if !media_type(resp).is_some_and(document) {
        return false;
    }
    if header(resp, CONTENT_DISPOSITION).is_some_and(|d| {
        d.trim_start()
            .to_ascii_lowercase()
            .starts_with("attachment")
    }) {
        return false;
    }
    match header(req, "sec-fetch-dest") {
        None => true,
        Some(dest) => matches!(
            dest.trim(),
            "document" | "iframe" | "frame" | "nested-document" | "embed" | "object"
        ),
    }
}

const CONTENT_MD5: http::HeaderName = http::HeaderName::from_static("content-md5");

/// Every response header [`prepare`] reads or changes. The proxy hands it only these and
/// leaves the rest of the response's headers alone.
pub static PREPARED_HEADERS: [http::HeaderName; 9] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONTENT_ENCODING,
    http::header::ETAG,
    CONTENT_MD5,
    http::header::VARY,
    http::header::CONTENT_SECURITY_POLICY,
    http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
];

/// The upstream's body length, when it gave exactly one and did not chunk the body. An
/// empty body is left out: it never reaches the injector, so it could not be made up to a
/// longer announced length.
fn upstream_length(resp: &HeaderMap) -> Option<u64> {
    if resp.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    let mut lengths = resp.get_all(http::header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0),
        _ => None,
    }
}

/// Adjusts the response headers for a document that will get the banner and returns the
/// injector to stream its body through. `origin` is `scheme://host[:port]` as the browser
/// sees it: the Stop form posts there, and the CSP `form-action` admits it. An `Err` means:
/// pass the response through untouched (an encoding or charset the banner cannot be
/// written into).
///
/// The body's framing: an uncompressed body whose length the upstream gave keeps a
/// `Content-Length`, the page's plus the banner's ([`Injector::fixed_length`]); any other
/// is left without one, for the caller to send in chunks.
pub fn prepare(
    info: &BannerInfo<'_>,
    resp: &mut HeaderMap,
    origin: impl std::fmt::Display,
) -> Result<Injector, BannerError> {
    let encoding = inject::ContentEncoding::from_headers(resp)?;
    let charset = inject::charset(resp)?;
    let syntax = Syntax::of(resp);
    let origin = origin.to_string();
    let banner = rendered(info, &origin, syntax);
    let mut injector = Injector::new(banner, encoding, charset, syntax == Syntax::Xhtml)?;
    // The body changes length and, if it was compressed, is sent decoded.
    let announced = upstream_length(resp).and_then(|n| injector.fixed_length(n));
    resp.remove(http::header::CONTENT_LENGTH);
    if let Some(total) = announced {
        resp.insert(http::header::CONTENT_LENGTH, total.into());
    }
    resp.remove(http::header::CONTENT_ENCODING);
    resp.remove(http::header::ETAG);
    resp.remove(CONTENT_MD5);
    if let Some(v) = resp.get(http::header::VARY).and_then(|v| v.to_str().ok()) {
        if !v.to_ascii_lowercase().contains("accept-encoding") && !v.contains('*') {
            let nv = format!("{v}, Accept-Encoding");
            if let Ok(nv) = http::HeaderValue::from_str(&nv) {
                resp.insert(http::header::VARY, nv);
            }
        }
    }
    csp::admit_banner(resp, syntax.style_hash_source(), || {
        format!("{origin}{STOP_PATH}")
    });
    Ok(injector)
}

#[cfg(test)]
mod tests;
