//! The console: the proxy's own pages under the reserved prefix `/_actas/` (sign-in,
//! sign-out, accounts, impersonation start/stop, audit, access history, password, health,
//! metrics, stylesheets).
//!
//! It is written against plain [`Request`]/[`Response`] values rather than Pingora's
//! session, so the proxy phase that calls it stays a few lines and every page can be tested
//! alone. Every form POST must come from this origin and carry the session's CSRF token
//! (the sign-in form: a double-submit cookie). The console never forwards anything.

pub mod guard;
pub mod pages;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use maud::Markup;

use crate::app::{App, ImpersonationRequest, LoginOutcome, Origin, StartOutcome};
use crate::audit::Kind;
use crate::directory::Role;
use crate::session::{self, COOKIE_NAME, LOGIN_COOKIE_NAME};
use crate::store::audit::{AuditFilter, AuditFrom, AuditKey};
use crate::store::directory::AccountsFrom;
use crate::store::sessions::SessionRecord;
use crate::store::PageFrom;
use guard::{form, local_path, same_origin, secrets_equal};
use pages::Viewer;

/// The reserved prefix.
pub const PREFIX: &str = "/_actas/";

/// A request for a console page.
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (form posts only; at most [`guard::MAX_FORM_BYTES`]).
    pub body: Bytes,
    /// `https` or `http`.
    pub proto: &'static str,
    /// Host as the browser sent it.
    pub host: String,
    /// Audit facts.
    pub origin: Origin,
    /// The session token from the cookie.
    pub token: Option<String>,
    /// The resolved session.
    pub session: Option<Arc<SessionRecord>>,
    /// The client is on this machine (metrics are open to it): the TCP peer is, and it is
    /// not a load balancer on this machine passing on someone else's request.
    pub peer_is_local: bool,
}

/// A console response.
pub struct Response {
    /// Status.
    pub status: u16,
    /// Headers besides the framing ones.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

/// Security headers of every console HTML page. The console has no inline script or style;
/// the only inline `<style>` is the banner's, admitted by its hash.
pub fn csp() -> String {
    format!(
        "default-src 'none'; style-src 'self' {}; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        crate::banner::style_hash_source()
    )
}

impl Response {
    /// A console page: HTML, never cached, with the console's CSP and hardening headers.
    pub fn html(status: u16, markup: Markup) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".into()),
                ("cache-control", "no-store".into()),
                ("content-security-policy", csp()),
                ("x-content-type-options", "nosniff".into()),
                ("referrer-policy", "same-origin".into()),
                ("x-frame-options", "DENY".into()),
            ],
            body: Bytes::from(markup.into_string()),
        }
    }

    fn text(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type", content_type.into()),
                ("cache-control", "no-store".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: body.into(),
        }
    }

    fn redirect(to: &str) -> Response {
        Response {
            status: 303,
            headers: vec![
                ("location", to.to_owned()),
                ("cache-control", "no-store".into()),
            ],
            body: Bytes::new(),
        }
    }

    fn with_cookie(mut self, cookie: String) -> Response {
        self.headers.push(("set-cookie", cookie));
        self
    }
}

/// Whether the client wants a page (a browser navigation) rather than data.
pub fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if let Some(dest) = headers.get("sec-fetch-dest").and_then(|v| v.to_str().ok()) {
        return dest == "document" || dest == "iframe";
    }
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The answer to a request without a session: the sign-in page for a browser navigation,
/// 401 otherwise.
pub fn unauthenticated(method: &Method, headers: &HeaderMap, path_and_query: &str) -> Response {
    if wants_html(method, headers) {
        let next = local_path(path_and_query).unwrap_or_else(|| "/".into());
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("next", &next);
        Response::redirect(&format!("/_actas/login?{}", s.finish()))
    } else {
        let mut r = Response::text(
            401,
            "text/plain; charset=utf-8",
            "Sign in first: no valid session.\n",
        );
        r.headers
            .push(("www-authenticate", "Cookie realm=\"actas\"".into()));
        r
    }
}

/// The banner markup for a session that is impersonating.
pub fn banner(session: &SessionRecord) -> Option<String> {
    session
        .impersonation
        .as_ref()
        .map(|imp| crate::banner::render(&banner_info(session, imp)))
}

/// What the banner says for a session.
pub fn banner_info<'a>(
    session: &'a SessionRecord,
    imp: &'a crate::store::sessions::ImpersonationRecord,
) -> crate::banner::BannerInfo<'a> {
    crate::banner::BannerInfo {
        actor: &session.actor.username,
        actor_role: session.actor.role.as_str(),
        subject: &imp.subject.username,
        subject_role: imp.subject.role.as_str(),
        started_at: imp.started_at / 1000,
        expires_at: imp.expires_at / 1000,
        now: crate::store::now_ms() / 1000,
        csrf_token: &session.csrf_token,
    }
}

fn viewer(session: &SessionRecord) -> Viewer<'_> {
    Viewer {
        session,
        banner: banner(session),
    }
}

/// The 403 page for a console area this session may not use.
fn not_allowed(session: &SessionRecord, detail: &str) -> Response {
    Response::html(
        403,
        pages::error(Some(&viewer(session)), "Not allowed", detail),
    )
}

/// The 400 page for a page link (of a list read a page at a time) that the console did not
/// write.
fn malformed_link(session: &SessionRecord) -> Response {
    Response::html(
        400,
        pages::error(
            Some(&viewer(session)),
            "Bad request",
            "This page link is malformed.",
        ),
    )
}

/// Where a list page starts, from the two parameters its links use for the entries
/// before and after a key, the key read by `key`; `None` for a link the console did not
/// write (a key that does not parse, or both parameters).
fn page_from<K>(
    q: &std::collections::HashMap<String, String>,
    before: &str,
    after: &str,
    key: impl Fn(&str) -> Option<K>,
) -> Option<PageFrom<K>> {
    match (q.get(before), q.get(after)) {
        (None, None) => Some(PageFrom::First),
        (Some(k), None) => key(k).map(PageFrom::Before),
        (None, Some(k)) => key(k).map(PageFrom::After),
        (Some(_), Some(_)) => None,
    }
}

/// A list page read with one entry more than `size`, to know whether more lie the way it
/// was read: cuts that entry off the far end, and says whether a link leads on from the
/// page's first and from its last entry, as shown. `read_as_shown`: the page was read in
/// the order it is shown (else from its end back); a page reached by a link always has
/// the way back to where it came from.
fn page_ends<T>(
    list: &mut Vec<T>,
    size: usize,
    read_as_shown: bool,
    from_link: bool,
) -> (bool, bool) {
    let more = list.len() > size;
    if more {
        if read_as_shown {
            list.truncate(size);
        } else {
            list.remove(0);
        }
    }
    if read_as_shown {
        (from_link, more)
    } else {
        (more, from_link)
    }
}

fn query(q: &str) -> std::collections::HashMap<String, String> {
    form(q.as_bytes())
}

/// Serves a console request.
pub async fn handle(app: &App, req: Request) -> Response {
    let path = req.path.as_str();
    let method = &req.method;
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/_actas/healthz") => {
            return Response::text(200, "text/plain; charset=utf-8", "ok\n")
        }
        (&Method::GET | &Method::HEAD, "/_actas/readyz") => {
            return match tokio::time::timeout(std::time::Duration::from_secs(2), app.store.ping())
                .await
            {
                Ok(Ok(())) => Response::text(200, "text/plain; charset=utf-8", "ready\n"),
                _ => Response::text(
                    503,
                    "text/plain; charset=utf-8",
                    "the database does not answer\n",
                ),
            };
        }
        (&Method::GET | &Method::HEAD, "/_actas/console.css") => {
            let mut r = Response::text(200, "text/css; charset=utf-8", pages::CONSOLE_CSS);
            r.headers[1] = ("cache-control", "public, max-age=3600".into());
            return r;
        }
        (&Method::GET | &Method::HEAD, "/_actas/metrics") => {
            let admin = req
                .session
                .as_ref()
                .is_some_and(|s| s.actor.role == Role::Admin);
            return if admin || req.peer_is_local {
                Response::text(
                    200,
                    "text/plain; version=0.0.4",
                    crate::metrics::METRICS.render(),
                )
            } else {
                Response::text(
                    403,
                    "text/plain; charset=utf-8",
                    "Metrics are for admins and local scrapers.\n",
                )
            };
        }
        (&Method::GET | &Method::HEAD, "/_actas/login") => return login_page(app, &req).await,
        (&Method::POST, "/_actas/login") => return login_submit(app, &req).await,
        (&Method::POST, "/_actas/logout") => return logout(app, &req).await,
        _ => {}
    }
    let Some(session) = req.session.clone() else {
        let pq = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        return unauthenticated(method, &req.headers, &pq);
    };
    if method == Method::POST {
        if !same_origin(&req.headers, req.proto, &req.host) {
            return Response::html(
                403,
                pages::error(
                    Some(&viewer(&session)),
                    "Request refused",
                    "This form was not submitted from this site (cross-site request refused).",
                ),
            );
        }
        let f = form(&req.body);
        let ok = f
            .get("csrf_token")
            .is_some_and(|t| secrets_equal(t, &session.csrf_token));
        if !ok {
            return Response::html(403, pages::error(Some(&viewer(&session)), "Request refused", "The form's security token is missing or out of date. Reload the page and try again."));
        }
    }
    // Stopping is always possible; everything else is subject to policy.
    if path != "/_actas/impersonate/stop" {
        let subject = session.subject();
        let decision = app
            .policies
            .current()
            .check_request(&crate::policy::RequestFacts {
                actor: &session.actor.facts(),
                subject: &subject.facts(),
                impersonating: session.impersonation.is_some(),
                method: method.as_str(),
                path: &crate::policy::request_path(path),
                mail_consent: session
                    .impersonation
                    .as_ref()
                    .is_some_and(|i| i.mail_consent),
            });
        if !decision.allowed {
            crate::metrics::METRICS
                .policy_denials_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Response::html(403, pages::request_denied(&viewer(&session), path));
        }
    }
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/_actas/accounts") => accounts(app, &req, &session).await,
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/_actas/accounts/") => {
            account(app, &session, &p["/_actas/accounts/".len()..]).await
        }
        (&Method::POST, "/_actas/impersonate") => impersonate(app, &req, &session).await,
        (&Method::POST, "/_actas/impersonate/stop") => stop(app, &req, &session).await,
        (&Method::GET | &Method::HEAD, "/_actas/audit") => audit(app, &req, &session).await,
        (&Method::GET | &Method::HEAD, "/_actas/access-history") => {
            access_history(app, &req, &session).await
        }
        (&Method::GET | &Method::HEAD, "/_actas/account/password") => {
            Response::html(200, pages::password(&viewer(&session), None, false))
        }
        (&Method::POST, "/_actas/account/password") => change_password(app, &req, &session).await,
        (
            _,
            "/_actas/accounts"
            | "/_actas/impersonate"
            | "/_actas/impersonate/stop"
            | "/_actas/audit"
            | "/_actas/access-history"
            | "/_actas/account/password",
        ) => {
            let mut r = Response::text(405, "text/plain; charset=utf-8", "Method not allowed.\n");
            r.headers.push((
                "allow",
                if path.starts_with("/_actas/impersonate") {
                    "POST"
                } else {
                    "GET, HEAD"
                }
                .into(),
            ));
            r
        }
        _ => Response::html(
            404,
            pages::error(
                Some(&viewer(&session)),
                "Page not found",
                "There is no console page at this address.",
            ),
        ),
    }
}

fn store_failure(session: Option<&SessionRecord>, e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "store failure in the console");
    let v = session.map(viewer);
    Response::html(
        503,
        pages::error(
            v.as_ref(),
            "Service unavailable",
            "The account database does not answer. Try again in a moment.",
        ),
    )
}

async fn login_page(app: &App, req: &Request) -> Response {
    let q = query(&req.query);
    let next = q
        .get("next")
        .and_then(|n| local_path(n))
        .unwrap_or_else(|| "/".into());
    if req.session.is_some() {
        return Response::redirect(&next);
    }
    let _ = app;
    let csrf =
        session::cookie_of(&req.headers, LOGIN_COOKIE_NAME).unwrap_or_else(session::random_token);
    Response::html(200, pages::login(&csrf, &next, None, "")).with_cookie(session::set_cookie(
        LOGIN_COOKIE_NAME,
        &csrf,
        std::time::Duration::from_secs(3600),
    ))
}

async fn login_submit(app: &App, req: &Request) -> Response {
    let f = form(&req.body);
    let next = f
        .get("next")
        .and_then(|n| local_path(n))
        .unwrap_or_else(|| "/".into());
    let username = f.get("username").map(String::as_str).unwrap_or("");
    let cookie_csrf = session::cookie_of(&req.headers, LOGIN_COOKIE_NAME);
    let csrf_ok = match (&cookie_csrf, f.get("csrf_token")) {
        (Some(c), Some(t)) => secrets_equal(c, t),
        _ => false,
    };
    let fresh = session::random_token();
    if !csrf_ok
        || (req.headers.contains_key(http::header::ORIGIN)
            || req.headers.contains_key("sec-fetch-site"))
            && !same_origin(&req.headers, req.proto, &req.host)
    {
        return Response::html(403, pages::login(&fresh, &next, Some("The sign-in form expired or was not submitted from this site. Please try again."), username))
            .with_cookie(session::set_cookie(LOGIN_COOKIE_NAME, &fresh, std::time::Duration::from_secs(3600)));
    }
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let device = session::cookie_of(&req.headers, crate::device::COOKIE_NAME);
    match app
        .login(
            username,
            password,
            req.token.as_deref(),
            device.as_deref(),
            &req.origin,
        )
        .await
    {
        Ok(LoginOutcome::Success { token, device }) => Response::redirect(&next)
            .with_cookie(session::set_cookie(
                COOKIE_NAME,
                &token,
                app.config.session.absolute_timeout,
            ))
            .with_cookie(session::set_cookie(
                crate::device::COOKIE_NAME,
                &device,
                crate::device::MAX_AGE,
            ))
            .with_cookie(session::clear_cookie(LOGIN_COOKIE_NAME)),
        Ok(LoginOutcome::Refused) => {
            let mut r = Response::html(
                401,
                pages::login(&fresh, &next, Some("Wrong username or password"), username),
            )
            .with_cookie(session::set_cookie(
                LOGIN_COOKIE_NAME,
                &fresh,
                std::time::Duration::from_secs(3600),
            ));
            // A 401 names how to authenticate (RFC 9110 §15.5.2), as every other one here.
            r.headers
                .push(("www-authenticate", "Cookie realm=\"actas\"".into()));
            r
        }
        Ok(LoginOutcome::Throttled(wait)) => {
            let mut r = Response::html(429, pages::error(None, "Too many sign-in attempts", &format!("Too many sign-in attempts from here or for this account. Wait {wait} seconds and try again.")));
            r.headers.push(("retry-after", wait.to_string()));
            r
        }
        Err(e) => store_failure(None, &e),
    }
}

async fn logout(app: &App, req: &Request) -> Response {
    let done = Response::redirect("/_actas/login").with_cookie(session::clear_cookie(COOKIE_NAME));
    let (Some(session), Some(token)) = (&req.session, &req.token) else {
        return done;
    };
    // The panel's sign-out button cannot know the CSRF token: a same-origin POST suffices,
    // and a token, when given, must be right.
    let f = form(&req.body);
    let token_ok = f
        .get("csrf_token")
        .is_none_or(|t| secrets_equal(t, &session.csrf_token));
    if !same_origin(&req.headers, req.proto, &req.host) || !token_ok {
        return Response::html(
            403,
            pages::error(
                Some(&viewer(session)),
                "Request refused",
                "Sign-out was not requested from this site.",
            ),
        );
    }
    match app.logout(session, token, &req.origin).await {
        Ok(()) => done,
        Err(e) => store_failure(Some(session), &e),
    }
}

async fn accounts(app: &App, req: &Request, session: &SessionRecord) -> Response {
    if !session.actor.role.is_staff() {
        return not_allowed(session, "The accounts directory is for staff.");
    }
    let q = query(&req.query);
    let search = q
        .get("q")
        .map(|s| s.trim().chars().take(64).collect::<String>())
        .unwrap_or_default();
    let creator = (session.actor.role == Role::Reseller).then_some(session.actor.username.as_str());
    let Some(from) = page_from(&q, "before", "after", |name| {
        Some(name.chars().take(64).collect::<String>())
    }) else {
        return malformed_link(session);
    };
    const PAGE: usize = 100;
    let mut list = match app
        .store
        .accounts(&search, creator, &from, PAGE as i64 + 1)
        .await
    {
        Ok(list) => list,
        Err(e) => return store_failure(Some(session), &e),
    };
    let backwards = matches!(from, AccountsFrom::Before(_));
    let (at_first, at_last) = page_ends(&mut list, PAGE, !backwards, from != AccountsFrom::First);
    let pager = pages::AccountsPager {
        before: list
            .first()
            .filter(|_| at_first)
            .map(|a| a.username.clone()),
        after: list.last().filter(|_| at_last).map(|a| a.username.clone()),
    };
    let notice = session.notice.clone();
    if notice.is_some() {
        if let Some(t) = &req.token {
            app.notice_shown(session, t).await;
        }
    }
    Response::html(
        200,
        pages::accounts(&viewer(session), &search, &list, &pager, notice.as_deref()),
    )
}

async fn account(app: &App, session: &SessionRecord, username: &str) -> Response {
    let not_found = || {
        Response::html(
            404,
            pages::error(
                Some(&viewer(session)),
                "No such account",
                "There is no account by that name you may see.",
            ),
        )
    };
    if !session.actor.role.is_staff() {
        return not_allowed(session, "The accounts directory is for staff.");
    }
    let account = match app.account(username).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(Some(session), &e),
    };
    // A reseller sees only the accounts it created.
    if session.actor.role == Role::Reseller
        && account.created_by.as_deref() != Some(session.actor.username.as_str())
    {
        return not_found();
    }
    let decision = app.policies.current().can_impersonate(
        &session.actor.facts(),
        &account.facts(),
        session.impersonation.is_some(),
    );
    let why_not = if session.impersonation.is_some() {
        Some("You are already impersonating someone. Stop first.")
    } else {
        None
    };
    Response::html(
        200,
        pages::account(&viewer(session), &account, decision.allowed, why_not),
    )
}

async fn impersonate(app: &App, req: &Request, session: &SessionRecord) -> Response {
    let f = form(&req.body);
    let Some(token) = &req.token else {
        return unauthenticated(&req.method, &req.headers, "/");
    };
    let target = f
        .get("target")
        .map(|t| t.trim().to_lowercase())
        .unwrap_or_default();
    let reason = f.get("reason").map(String::as_str).unwrap_or("");
    let consent = f
        .get("mail_consent")
        .is_some_and(|v| v == "yes" || v == "on" || v == "true");
    let return_to = f
        .get("return_to")
        .and_then(|r| local_path(r))
        .unwrap_or_else(|| format!("/_actas/accounts/{target}"));
    let ask = ImpersonationRequest {
        target: &target,
        reason,
        mail_consent: consent,
        return_to: &return_to,
    };
    match app.start_impersonation(session, token, ask, &req.origin).await {
        Ok(StartOutcome::Started { token }) => Response::redirect("/")
            .with_cookie(session::set_cookie(COOKIE_NAME, &token, app.config.session.absolute_timeout)),
        Ok(StartOutcome::Denied) => Response::html(403, pages::impersonation_denied(&viewer(session))),
        Ok(StartOutcome::Raced) => Response::html(409, pages::error(Some(&viewer(session)), "Your session changed meanwhile", "Nothing was started by this request: while it was being made, your session changed (a second click on the button, or a stop or sign-out in another tab). Open the panel to see where you are now.")),
        Ok(StartOutcome::Unrecorded(e)) => Response::html(503, pages::error(Some(&viewer(session)), "Audit log unavailable", &format!("The impersonation was not started because it could not be recorded: {e}. Try again in a moment."))),
        Err(e) => store_failure(Some(session), &e),
    }
}

async fn stop(app: &App, req: &Request, session: &SessionRecord) -> Response {
    let Some(token) = &req.token else {
        return unauthenticated(&req.method, &req.headers, "/");
    };
    match app.stop_impersonation(session, token, &req.origin).await {
        Ok(Some((new_token, return_to))) => Response::redirect(&return_to).with_cookie(
            session::set_cookie(COOKIE_NAME, &new_token, app.config.session.absolute_timeout),
        ),
        Ok(None) => Response::redirect("/_actas/accounts"),
        Err(e) => store_failure(Some(session), &e),
    }
}

fn parse_local_time(s: &str) -> Option<i64> {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let t = time::PrimitiveDateTime::parse(s.trim(), &f)
        .ok()?
        .assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A page link's key of the audit page: `<ts>.<seq>.<instance>` (the instance last, as it
/// may hold dots). `None` for anything else.
fn parse_audit_key(s: &str) -> Option<AuditKey> {
    if s.len() > 200 {
        return None;
    }
    let mut parts = s.splitn(3, '.');
    let ts = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let instance = parts.next().filter(|i| !i.is_empty())?.to_owned();
    Some(AuditKey { ts, instance, seq })
}

async fn audit(app: &App, req: &Request, session: &SessionRecord) -> Response {
    if session.actor.role != Role::Admin || session.impersonation.is_some() {
        return not_allowed(
            session,
            "The audit log is for admins, and not while impersonating.",
        );
    }
    let q = query(&req.query);
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().chars().take(100).collect::<String>())
            .unwrap_or_default()
    };
    let aq = pages::AuditQuery {
        actor: get("actor"),
        subject: get("subject"),
        impersonation: get("impersonation"),
        kind: get("kind"),
        since: get("since"),
        until: get("until"),
    };
    let bad = |detail: &str| {
        Response::html(
            400,
            pages::error(Some(&viewer(session)), "Bad request", detail),
        )
    };
    let kind = match aq.kind.as_str() {
        "" => None,
        k => match Kind::parse(k) {
            Some(k) => Some(k.as_str().to_owned()),
            None => return bad("There is no such kind of audit record."),
        },
    };
    let mut times = [None, None];
    for (slot, (value, what)) in times
        .iter_mut()
        .zip([(&aq.since, "From"), (&aq.until, "Until")])
    {
        if !value.is_empty() {
            match parse_local_time(value) {
                Some(t) => *slot = Some(t),
                None => {
                    return bad(&format!(
                        "{what} is not a date and time: write it as 2026-11-30T14:05 (UTC)."
                    ))
                }
            }
        }
    }
    let [since, until] = times;
    let Some(from) = page_from(&q, "older", "newer", parse_audit_key) else {
        return malformed_link(session);
    };
    let filter = AuditFilter {
        actor: (!aq.actor.is_empty()).then(|| aq.actor.clone()),
        subject: (!aq.subject.is_empty()).then(|| aq.subject.clone()),
        impersonation_id: (!aq.impersonation.is_empty()).then(|| aq.impersonation.clone()),
        kind,
        since,
        until,
        instance: None,
    };
    const PAGE: i64 = 100;
    // One impersonation reads as a story: oldest first, on one page.
    let (newest_first, limit) = if filter.impersonation_id.is_some() {
        (false, 5_000)
    } else {
        (true, PAGE)
    };
    let mut records = match app
        .store
        .audit_records(&filter, newest_first, &from, limit + 1)
        .await
    {
        Ok(records) => records,
        Err(e) => return store_failure(Some(session), &e),
    };
    let read_older = match &from {
        AuditFrom::First => newest_first,
        AuditFrom::Before(_) => true,
        AuditFrom::After(_) => false,
    };
    let came_from_a_key = from != AuditFrom::First;
    let (at_first, at_last) = page_ends(
        &mut records,
        limit as usize,
        read_older == newest_first,
        came_from_a_key,
    );
    let first = records.first().filter(|_| at_first).map(AuditKey::of);
    let last = records.last().filter(|_| at_last).map(AuditKey::of);
    let (newer, older) = if newest_first {
        (first, last)
    } else {
        (last, first)
    };
    let pager = pages::AuditPager {
        older,
        newer,
        first: came_from_a_key,
    };
    Response::html(200, pages::audit(&viewer(session), &aq, &records, &pager))
}

/// An access history page link's key, `<started_at>.<id>`; `None` for anything else.
fn parse_history_key(k: &str) -> Option<(i64, &str)> {
    let (at, id) = k.split_once('.')?;
    Some((at.parse::<i64>().ok()?, id)).filter(|_| (1..=64).contains(&id.len()))
}

async fn access_history(app: &App, req: &Request, session: &SessionRecord) -> Response {
    // While impersonating, the history shown is the customer's: what they would see.
    let whose = &session.subject().username;
    let q = query(&req.query);
    // `older=<started_at>.<id>`: the last one of the page before.
    let before = match q.get("older") {
        None => None,
        Some(k) => match parse_history_key(k) {
            Some(key) => Some(key),
            None => return malformed_link(session),
        },
    };
    const PAGE: usize = 100;
    match app
        .store
        .impersonations_of(whose, before, PAGE as i64 + 1)
        .await
    {
        Ok(mut list) => {
            let (later, at_last) = page_ends(&mut list, PAGE, true, before.is_some());
            let older = list
                .last()
                .filter(|_| at_last)
                .map(|i| format!("{}.{}", i.started_at, i.id));
            Response::html(
                200,
                pages::access_history(&viewer(session), &list, older.as_deref(), later),
            )
        }
        Err(e) => store_failure(Some(session), &e),
    }
}

async fn change_password(app: &App, req: &Request, session: &SessionRecord) -> Response {
    let f = form(&req.body);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let v = viewer(session);
    if get("new") != get("confirm") {
        return Response::html(
            422,
            pages::password(&v, Some("The two new passwords differ."), false),
        );
    }
    // Checking the current password costs an argon2 verification, as a sign-in does, and
    // guessing it from a stolen session must be as slow: the same budgets apply.
    if let Err(wait) = app
        .limits
        .attempt(&req.origin.client_ip, &session.actor.username, None)
    {
        let mut r = Response::html(
            429,
            pages::password(
                &v,
                Some(&format!(
                    "Too many attempts for this account or from here. Wait {wait} seconds and try again."
                )),
                false,
            ),
        );
        r.headers.push(("retry-after", wait.to_string()));
        return r;
    }
    let stored = match app.store.account_with_hash(&session.actor.username).await {
        Ok(found) => found.map(|(_, h)| h),
        Err(e) => return store_failure(Some(session), &e),
    };
    if !crate::directory::verify_password(stored, get("current").to_owned()).await {
        return Response::html(
            422,
            pages::password(&v, Some("The current password is wrong."), false),
        );
    }
    let new = get("new").to_owned();
    let hash = match tokio::task::spawn_blocking(move || crate::directory::hash_password(&new))
        .await
    {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return Response::html(422, pages::password(&v, Some(&e.to_string()), false)),
        Err(_) => {
            return Response::html(
                500,
                pages::password(&v, Some("The password could not be changed."), false),
            )
        }
    };
    match app
        .store
        .set_password_hash(&session.actor.username, &hash)
        .await
    {
        Ok(_) => {
            // Whoever signed in with the old password is signed out.
            if let Err(e) = app.end_other_sessions(session, &req.origin).await {
                tracing::error!(error = %e, "password changed, but other sessions could not be ended");
                return store_failure(Some(session), &e);
            }
            Response::html(200, pages::password(&v, None, true))
        }
        Err(e) => store_failure(Some(session), &e),
    }
}
