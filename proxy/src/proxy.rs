//! The request's life in the proxy: Pingora's phases, each a few lines that hand off to
//! the module owning one concern.
//!
//! ```text
//!  browser ──▶ request_filter ─────────────────────────────────────────────────────┐
//!               │ 1. who is the client (forwarding)                                │
//!               │ 2. which session (session cache → store; expiry, revocation: app)│
//!               │ 3. /_actas/… ? ──▶ console ──▶ response (no upstream)            │
//!               │ 4. no session ──▶ 303 to sign-in (pages) or 401                  │
//!               │ 5. unsafe method ──▶ same-origin check (CSRF)                    │
//!               │ 6. policy: may this actor, as this subject, do this?             │
//!               │ 7. impersonating + unsafe ──▶ audit record committed first       │
//!               ▼                                                                  │
//!           upstream_peer ──▶ the panel                                            │
//!           upstream_request_filter: strip spoofable headers, set X-Forwarded-*,   │
//!                                    sign the identity assertion                   │
//!           response_filter: impersonating + HTML document ──▶ banner prepared     │
//!           response_body_filter: banner streamed into the body                    │
//!           fail_to_proxy: panel down ──▶ 502 page                                 │
//!           logging: one audit record per request ◀────────────────────────────────┘
//! ```

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::app::{App, Origin};
use crate::assertion::{Actor, Claims};
use crate::audit::{redact_path, Event, Kind};
use crate::console::{self, guard, pages};
use crate::forwarding::{self, Client};
use crate::metrics::METRICS;
use crate::session::{self, COOKIE_NAME};
use crate::store::sessions::SessionRecord;

/// The proxy, as Pingora sees it.
pub struct Actas {
    app: Arc<App>,
}

impl Actas {
    /// Wraps the shared state.
    pub fn new(app: Arc<App>) -> Actas {
        Actas { app }
    }
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    request_id: String,
    started: Instant,
    /// Wall-clock arrival (ms): a request's record is dated when it arrived.
    arrived_ms: i64,
    client: Client,
    host: String,
    session: Option<Arc<SessionRecord>>,
    decision: &'static str,
    reason: Option<String>,
    status: u16,
    bytes_out: u64,
    /// Boxed: inline, the injector (lol_html's rewriter and all) was 1,352 of the context's
    /// 1,552 bytes, which Pingora's request futures hold and move on every request.
    banner: Option<Box<crate::banner::Injector>>,
}

fn host_of(req: &RequestHeader) -> String {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Whether `path` is the proxy's own console rather than the panel's.
fn is_console(path: &str) -> bool {
    path.starts_with(console::PREFIX) || path == "/_actas"
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Actas {
    fn origin(&self, ctx: &RequestCtx, req: &RequestHeader) -> Origin {
        Origin {
            client_ip: ctx.client.ip.clone(),
            user_agent: req
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(512)
                .collect(),
            request_id: ctx.request_id.clone(),
            host: ctx.host.clone(),
        }
    }

    /// Writes a whole response from the proxy itself.
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        r: console::Response,
    ) -> Result<bool> {
        let mut header = ResponseHeader::build(r.status, Some(r.headers.len() + 2))?;
        for (name, value) in &r.headers {
            header.append_header(*name, value.as_str())?;
        }
        header.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
        header.insert_header("x-request-id", ctx.request_id.as_str())?;
        let head = session.req_header().method == Method::HEAD;
        ctx.status = r.status;
        ctx.bytes_out = if head { 0 } else { r.body.len() as u64 };
        session
            .write_response_header(Box::new(header), head || r.body.is_empty())
            .await?;
        if !head && !r.body.is_empty() {
            session.write_response_body(Some(r.body), true).await?;
        }
        Ok(true)
    }

    fn page(&self, ctx: &RequestCtx, status: u16, title: &str, detail: &str) -> console::Response {
        let viewer = ctx.session.as_deref().map(|s| pages::Viewer {
            session: s,
            banner: console::banner(s),
        });
        console::Response::html(status, pages::error(viewer.as_ref(), title, detail))
    }

    async fn read_form(&self, session: &mut Session) -> Result<Option<Bytes>> {
        let mut body = Vec::new();
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > guard::MAX_FORM_BYTES {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(body)))
    }
}

#[async_trait]
impl ProxyHttp for Actas {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: session::random_id(),
            started: Instant::now(),
            arrived_ms: crate::store::now_ms(),
            client: Client {
                ip: String::new(),
                proto: "https",
                forwarded_for: String::new(),
            },
            host: String::new(),
            session: None,
            decision: "allow",
            reason: None,
            status: 0,
            bytes_out: 0,
            banner: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        METRICS.requests_total.fetch_add(1, Ordering::Relaxed);
        let app = &self.app;
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let peer: Option<IpAddr> = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        // `trusted_proxies` belongs to the plain-HTTP listener, the one a balancer that
        // ends TLS talks to: on the HTTPS listener no peer's forwarded headers are believed.
        let trusted = match &app.config.http {
            Some(h) if !tls => h.trusted_proxies.as_slice(),
            _ => &[],
        };
        ctx.client = forwarding::client(peer, tls, session.req_header(), trusted);
        ctx.host = host_of(session.req_header());

        let token = session::cookie_of(&session.req_header().headers, COOKIE_NAME);
        if let Some(t) = &token {
            let req = session.req_header();
            let resolved = app.resolve(t, || self.origin(ctx, req)).await;
            match resolved {
                Ok(r) => {
                    ctx.session = r.session;
                    let meant_for_the_customer = r.impersonation_ended
                        && !is_safe(&req.method)
                        && !is_console(req.uri.path());
                    if let Some(s) = ctx.session.as_ref().filter(|_| meant_for_the_customer) {
                        // Forwarded now, it would act on the staff member's own account
                        // (delete *her* file of that name).
                        let notice = s.notice.as_deref().unwrap_or("Your impersonation ended.");
                        ctx.decision = "deny";
                        ctx.reason = Some("impersonation ended before this request".into());
                        app.notice_shown(s, t).await;
                        let r = self.page(ctx, 409, "Request not sent", &format!("{notice} This request was meant for that account, so it was not sent to the panel: nothing was changed."));
                        return self.respond(session, ctx, r).await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "session lookup failed");
                    ctx.decision = "error";
                    let r = self.page(
                        ctx,
                        503,
                        "Service unavailable",
                        "The session database does not answer. Try again in a moment.",
                    );
                    return self.respond(session, ctx, r).await;
                }
            }
        }

        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        if is_console(&path) {
            let body = if method == Method::POST {
                match self.read_form(session).await? {
                    Some(b) => b,
                    None => {
                        let r = self.page(
                            ctx,
                            413,
                            "Form too large",
                            "The submitted form is larger than the console accepts.",
                        );
                        return self.respond(session, ctx, r).await;
                    }
                }
            } else {
                Bytes::new()
            };
            let req = session.req_header();
            let origin = self.origin(ctx, req);
            let request = console::Request {
                method,
                path,
                query: req.uri.query().unwrap_or("").to_owned(),
                headers: req.headers.clone(),
                body,
                proto: ctx.client.proto,
                host: ctx.host.clone(),
                origin,
                token,
                session: ctx.session.clone(),
                // Behind a load balancer on this machine every peer is local: the client it
                // passed on (believed from a trusted peer only) must be local too.
                peer_is_local: peer.is_some_and(|p| p.is_loopback())
                    && ctx
                        .client
                        .ip
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback()),
            };
            let response = console::handle(app, request).await;
            return self.respond(session, ctx, response).await;
        }

        let Some(s) = ctx.session.clone() else {
            ctx.decision = "unauthenticated";
            let pq = req
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let r = console::unauthenticated(&method, &req.headers, &pq);
            return self.respond(session, ctx, r).await;
        };

        if !is_safe(&method) && !guard::same_origin(&req.headers, ctx.client.proto, &ctx.host) {
            ctx.decision = "deny";
            ctx.reason = Some("cross-site request".into());
            let r = self.page(ctx, 403, "Request refused", "This request did not come from this site, so it was not sent to the panel (cross-site request refused).");
            return self.respond(session, ctx, r).await;
        }

        let imp = s.impersonation.as_ref();
        let decision = app
            .policies
            .current()
            .check_request(&crate::policy::RequestFacts {
                actor: &s.actor.facts(),
                subject: &s.subject().facts(),
                impersonating: imp.is_some(),
                method: method.as_str(),
                path: &crate::policy::request_path(&path),
                mail_consent: imp.is_some_and(|i| i.mail_consent),
            });
        if !decision.allowed {
            METRICS.policy_denials_total.fetch_add(1, Ordering::Relaxed);
            ctx.decision = "deny";
            ctx.reason = Some(format!("decided by {}", decision.policy_ids.join(", ")));
            let viewer = pages::Viewer {
                session: &s,
                banner: console::banner(&s),
            };
            let r = console::Response::html(403, pages::request_denied(&viewer, &path));
            return self.respond(session, ctx, r).await;
        }

        if let Some(imp) = imp {
            METRICS
                .impersonated_requests_total
                .fetch_add(1, Ordering::Relaxed);
            if !is_safe(&method) {
                // Nothing lost: the record is committed before the panel sees the request.
                let mut e = request_event(
                    ctx,
                    session.req_header(),
                    &app.config.audit.redact_query_params,
                    ctx.names(),
                );
                e.impersonation_id = Some(imp.id.clone());
                e.reason = Some("write-ahead".into());
                if let Err(err) = app
                    .audit
                    .record_durably(e, app.config.audit.write_ahead_timeout)
                    .await
                {
                    METRICS
                        .audit_unavailable_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %err, "write-ahead audit record failed; request refused");
                    ctx.decision = "audit-unavailable";
                    let r = self.page(ctx, 503, "Audit log unavailable", "This change was not made: while you are signed in as another user, every change must be recorded first, and the audit log cannot take records right now. Try again in a moment.");
                    return self.respond(session, ctx, r).await;
                }
            }
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let up = &self.app.config.upstream;
        let mut peer = HttpPeer::new(self.app.upstream(), false, String::new());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(s) = ctx.session.as_deref() else {
            return Error::e_explain(ErrorType::InternalError, "forwarding without a session");
        };
        forwarding::strip_inbound(upstream);
        upstream.insert_header("x-forwarded-for", ctx.client.forwarded_for.as_str())?;
        upstream.insert_header("x-forwarded-proto", ctx.client.proto)?;
        upstream.insert_header("x-forwarded-host", ctx.host.as_str())?;
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        let a = &self.app.config.assertion;
        let now = crate::store::now_ms() / 1000;
        let subject = s.subject();
        let claims = Claims {
            iss: &a.issuer,
            aud: &a.audience,
            iat: now,
            exp: now + i64::try_from(a.ttl.as_secs()).unwrap_or(30),
            sub: &subject.username,
            role: subject.role.as_str(),
            name: &subject.display_name,
            sid: &s.id,
            act: s.impersonation.as_ref().map(|_| Actor {
                sub: &s.actor.username,
                role: s.actor.role.as_str(),
                name: &s.actor.display_name,
            }),
            imp: s.impersonation.as_ref().map(|i| i.id.as_str()),
        };
        let token = self.app.assertions.get(&self.app.signer, &claims);
        upstream.insert_header(crate::assertion::HEADER, token)?;
        METRICS.forwarded_total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = response.status.as_u16();
        response.insert_header("x-request-id", ctx.request_id.as_str())?;
        let Some(s) = ctx.session.as_deref() else {
            return Ok(());
        };
        let Some(imp) = &s.impersonation else {
            return Ok(());
        };
        let req = session.req_header();
        if !crate::banner::should_inject(
            &req.method,
            &req.headers,
            response.status,
            &response.headers,
        ) {
            return Ok(());
        }
        // Only the headers the banner reads or changes: copying and comparing all of them
        // cost more than the rest of preparing the banner.
        let mut headers = HeaderMap::with_capacity(crate::banner::PREPARED_HEADERS.len());
        for name in &crate::banner::PREPARED_HEADERS {
            for v in response.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        // Where the banner's Stop form posts, and what a Content-Security-Policy admits it to.
        let origin = format_args!("{}://{}", ctx.client.proto, ctx.host);
        match crate::banner::prepare(&console::banner_info(s, imp), &mut headers, origin) {
            Ok(injector) => {
                sync_headers(response, &headers, &crate::banner::PREPARED_HEADERS)?;
                let framed = response.headers.contains_key(http::header::CONTENT_LENGTH)
                    || response
                        .headers
                        .contains_key(http::header::TRANSFER_ENCODING);
                if !framed {
                    // Without Content-Length an HTTP/1.1 body would be ended by closing the
                    // connection: chunk it instead so the browser keeps the connection.
                    response.set_version(http::Version::HTTP_11);
                    response.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
                }
                ctx.banner = Some(Box::new(injector));
            }
            Err(e) => tracing::warn!(error = %e, "banner not injected"),
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(injector) = ctx.banner.as_mut() {
            let banner_err = |e| Error::e_explain(ErrorType::InternalError, format!("banner: {e}"));
            let mut out = match body.take() {
                Some(chunk) => injector.write_shared(&chunk).or_else(banner_err)?,
                None => Bytes::new(),
            };
            if end_of_stream {
                let tail = injector.finish().or_else(banner_err)?;
                if !tail.is_empty() {
                    // Only a document that ends inside the rewriter has a tail: join the two.
                    let mut joined = Vec::with_capacity(out.len() + tail.len());
                    joined.extend_from_slice(&out);
                    joined.extend_from_slice(&tail);
                    out = Bytes::from(joined);
                }
                if injector.injected() {
                    METRICS
                        .banners_injected_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            *body = (!out.is_empty()).then_some(out);
        }
        if let Some(b) = body {
            ctx.bytes_out += b.len() as u64;
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        ctx.status = code;
        if code == 502 {
            METRICS
                .upstream_errors_total
                .fetch_add(1, Ordering::Relaxed);
            ctx.decision = "upstream-error";
        }
        if code > 0 && session.response_written().is_none() {
            // The connection is not reused after a failure (below): say so in the response,
            // or the browser would send its next request down a connection being closed.
            session.set_keepalive(None);
            let (title, detail) = match code {
                502 => ("The panel is not answering", "The hosting panel behind this sign-in service did not answer. Your session is fine: try again in a moment. If this persists, the panel service needs attention."),
                400 => ("Bad request", "The request could not be understood."),
                _ => ("Something went wrong", "The request could not be completed."),
            };
            let r = self.page(ctx, code, title, detail);
            if let Err(err) = self.respond(session, ctx, r).await {
                tracing::debug!(error = %err, "could not send the error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // The request's last use of its context: its names move into the record.
        let names = ctx.take_names();
        let mut e = request_event(
            ctx,
            session.req_header(),
            &self.app.config.audit.redact_query_params,
            names,
        );
        if ctx.status == 0 {
            ctx.status = session.response_written().map_or(0, |r| r.status.as_u16());
        }
        e.status = Some(i64::from(ctx.status));
        e.bytes_out = Some(i64::try_from(ctx.bytes_out).unwrap_or(i64::MAX));
        e.duration_ms = Some(i64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(i64::MAX));
        e.reason = ctx.reason.take();
        self.app.audit.record(e).await;
    }
}

/// What names a request in its audit record, from its context.
struct Names {
    request_id: String,
    host: String,
    client_ip: String,
}

impl RequestCtx {
    /// Copies, for a record made while the request goes on.
    fn names(&self) -> Names {
        Names {
            request_id: self.request_id.clone(),
            host: self.host.clone(),
            client_ip: self.client.ip.clone(),
        }
    }

    /// Takes them, for the request's last record.
    fn take_names(&mut self) -> Names {
        Names {
            request_id: std::mem::take(&mut self.request_id),
            host: std::mem::take(&mut self.host),
            client_ip: std::mem::take(&mut self.client.ip),
        }
    }
}

/// The audit event of a request, before its outcome is known.
fn request_event(ctx: &RequestCtx, req: &RequestHeader, redact: &[String], names: Names) -> Event {
    let mut e = Event::new(Kind::Request);
    e.ts = ctx.arrived_ms;
    if let Some(s) = ctx.session.as_deref() {
        e.actor = Some(s.actor.username.clone());
        e.subject = Some(s.subject().username.clone());
        e.session_id = Some(s.id.clone());
        e.impersonation_id = s.impersonation.as_ref().map(|i| i.id.clone());
    }
    let Names {
        request_id,
        mut host,
        client_ip,
    } = names;
    e.request_id = Some(request_id);
    e.method = Some(req.method.as_str().to_owned());
    host.truncate(clip_at(&host, 255));
    e.host = Some(host);
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut path = redact_path(pq, redact);
    path.truncate(clip_at(&path, 2048));
    e.path = Some(path);
    e.client_ip = Some(client_ip);
    e.user_agent = req
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| clip(v, 512));
    e.decision = Some(ctx.decision.to_owned());
    e
}

/// `s`, cut to at most `max_chars` characters.
fn clip(s: &str, max_chars: usize) -> String {
    s[..clip_at(s, max_chars)].to_owned()
}

/// The byte length of `s`'s first `max_chars` characters.
fn clip_at(s: &str, max_chars: usize) -> usize {
    // Fewer bytes than the limit means fewer characters: the common case costs no scan.
    if s.len() <= max_chars {
        return s.len();
    }
    s.char_indices().nth(max_chars).map_or(s.len(), |(i, _)| i)
}

/// Makes `response`'s headers named in `names` equal to `wanted`'s, through Pingora's own
/// setters so its record of header-name case stays consistent.
fn sync_headers(
    response: &mut ResponseHeader,
    wanted: &HeaderMap,
    names: &[http::HeaderName],
) -> Result<()> {
    for name in names {
        let unchanged = response
            .headers
            .get_all(name)
            .iter()
            .eq(wanted.get_all(name).iter());
        if !unchanged {
            response.remove_header(name);
            for v in wanted.get_all(name) {
                response.append_header(name.clone(), v.clone())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_fields_are_clipped_at_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc");
        // Multi-byte characters count once each and are never split.
        assert_eq!(clip("ééééé", 3), "ééé");
        assert_eq!(clip("aé", 1), "a");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip_at("ééé", 5), "ééé".len());
    }

    #[test]
    fn the_request_context_stays_small() {
        // Pingora's request futures hold the context and are moved as a whole: with the
        // banner's injector inline (1,352 bytes) every request copied about 4 KB more.
        let size = std::mem::size_of::<RequestCtx>();
        assert!(size <= 256, "RequestCtx is {size} bytes");
    }
}
