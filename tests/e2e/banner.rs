//! The impersonation banner through the real proxy: on every document while
//! impersonating (panel pages, error pages, console pages), never where it would corrupt
//! something (downloads, fetches, HEAD, non-HTML), through upstream compression, and
//! without weakening the upstream's Content-Security-Policy.

use std::io::Write;

use actas_e2e::*;

const MARK: &str = "Stop impersonating";

fn impersonating_on(echo: &Echo) -> (Stack, Browser) {
    let stack = Stack::with_echo(echo, "");
    let ada = stack.signed_in("ada");
    assert_eq!(
        ada.impersonate("carl", "", false).status,
        StatusCode::SEE_OTHER
    );
    (stack, ada)
}

#[test]
fn every_panel_page_shows_the_banner_while_impersonating() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    assert!(
        !ada.get("/").unwrap().body.contains(MARK),
        "no banner before impersonating"
    );
    ada.impersonate("carl", "", false);
    for path in [
        "/",
        "/domains",
        "/files",
        "/files/edit?path=public_html/index.html",
        "/databases",
        "/mail",
        "/settings",
        "/activity",
        "/no-such-page",
        "/_actas/access-history",
        "/_actas/accounts",
    ] {
        let page = ada.get(path).unwrap();
        assert!(
            page.body.contains(MARK),
            "no banner on {path} ({}): {}",
            page.status,
            &page.body[..page.body.len().min(300)]
        );
        assert!(page.body.contains("signed in as carl"), "{path}");
        assert!(page.body.contains("You are ada"), "{path}");
        assert_eq!(
            page.body.matches(MARK).count(),
            1,
            "exactly one banner on {path}"
        );
    }
    ada.stop();
    assert!(
        !ada.get("/").unwrap().body.contains(MARK),
        "banner gone after stopping"
    );
}

#[test]
fn the_banner_sits_right_after_body_opens() {
    let echo = Echo::start("text/html; charset=utf-8", b"<!doctype html><html><head><title>t</title></head><body class=\"x\"><p>page</p></body></html>".to_vec());
    let (_stack, ada) = impersonating_on(&echo);
    let page = ada.get("/").unwrap().body;
    let body_at = page.find("<body class=\"x\">").unwrap() + "<body class=\"x\">".len();
    let banner_at = page.find(MARK).unwrap();
    let p_at = page.find("<p>page</p>").unwrap();
    assert!(body_at < banner_at && banner_at < p_at, "{page}");
    assert!(
        page.ends_with("<p>page</p></body></html>"),
        "the rest is untouched"
    );
}

/// The response's `Content-Length` is exactly what it carried.
fn assert_announces_its_length(page: &Reply) {
    assert_eq!(
        page.header("content-length").as_deref(),
        Some(page.bytes.len().to_string().as_str()),
        "{:?}",
        page.headers
    );
}

#[test]
fn a_page_with_the_banner_keeps_an_exact_content_length_and_the_connection_open() {
    let doc = b"<!doctype html><html><body><p>page</p></body></html>".to_vec();
    let echo = Echo::start("text/html; charset=utf-8", doc.clone());
    let (_stack, ada) = impersonating_on(&echo);
    let page = ada.get("/").unwrap();
    assert!(page.body.contains(MARK));
    // The upstream said how long the page is, and the banner's length is known: the
    // response keeps a Content-Length (no chunk framing, no extra write for a last chunk).
    assert_announces_its_length(&page);
    assert!(page.bytes.len() > doc.len());
    assert!(page.header("transfer-encoding").is_none());
    assert_ne!(page.header("connection").as_deref(), Some("close"));
    // The connection is kept and the next response on it is read whole.
    for _ in 0..3 {
        let again = ada.get("/").unwrap();
        assert_eq!(again.bytes, page.bytes);
    }
}

#[test]
fn a_frameset_gets_no_banner_and_keeps_its_announced_length() {
    // A frameset has no body to put the banner in: the page is sent as it is, made up to
    // the announced length with trailing spaces (which HTML ignores after the document).
    let doc = b"<html><frameset cols=\"50%,50%\"><frame src=\"/a\"></frameset></html>".to_vec();
    let echo = Echo::start("text/html; charset=utf-8", doc.clone());
    let (_stack, ada) = impersonating_on(&echo);
    let page = ada.get("/").unwrap();
    assert!(!page.body.contains(MARK));
    assert!(page.bytes.starts_with(&doc));
    assert!(page.bytes[doc.len()..].iter().all(|b| *b == b' '));
    assert_announces_its_length(&page);
    assert_eq!(
        ada.get("/").unwrap().bytes,
        page.bytes,
        "the connection still works"
    );
}

#[test]
fn downloads_stay_byte_exact() {
    let stack = Stack::start();
    let carl = stack.signed_in("carl");
    let html = b"<html><body>my page \xff\xfe</body></html>".to_vec();
    let csrf_free_upload = {
        let body = {
            let boundary = "XBOUNDARY";
            let mut b = Vec::new();
            write!(b, "--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\npublic_html\r\n").unwrap();
            write!(b, "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"page.html\"\r\nContent-Type: text/html\r\n\r\n").unwrap();
            b.extend_from_slice(&html);
            write!(b, "\r\n--{boundary}--\r\n").unwrap();
            b
        };
        carl.send(
            "POST",
            "/files/upload",
            &[
                ("origin", &carl.base()),
                ("content-type", "multipart/form-data; boundary=XBOUNDARY"),
            ],
            Some(body),
        )
        .unwrap()
    };
    assert!(
        csrf_free_upload.status.is_redirection() || csrf_free_upload.status.is_success(),
        "{}",
        csrf_free_upload.body
    );
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let d = ada
        .send(
            "GET",
            "/files/download?path=public_html/page.html",
            &[("accept", "text/html"), ("sec-fetch-dest", "document")],
            None,
        )
        .unwrap();
    assert_eq!(d.status, StatusCode::OK);
    assert!(d
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(
        d.bytes, html,
        "the downloaded .html is byte-exact, no banner"
    );
}

#[test]
fn fetches_head_requests_and_non_html_get_no_banner() {
    let echo = Echo::start("text/html", b"<html><body>fragment</body></html>".to_vec());
    let (_stack, ada) = impersonating_on(&echo);
    let fetch = ada
        .send(
            "GET",
            "/x",
            &[("sec-fetch-dest", "empty"), ("accept", "text/html")],
            None,
        )
        .unwrap();
    assert_eq!(fetch.body, "<html><body>fragment</body></html>");
    let head = ada
        .send("HEAD", "/x", &[("accept", "text/html")], None)
        .unwrap();
    assert!(head.bytes.is_empty());
    let json = Echo::start("application/json", b"{\"a\":\"<body>\"}".to_vec());
    let (_s2, ada2) = impersonating_on(&json);
    assert_eq!(ada2.get("/api").unwrap().body, "{\"a\":\"<body>\"}");
}

#[test]
fn a_gzip_compressed_page_gets_the_banner_and_stays_readable() {
    let html = format!(
        "<html><body>{}</body></html>",
        "compressed content ".repeat(500)
    );
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(html.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let echo = Echo::start_with(
        &[("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
        gz,
    );
    let (_stack, ada) = impersonating_on(&echo);
    let r = ada
        .send(
            "GET",
            "/",
            &[
                ("accept", "text/html"),
                ("accept-encoding", "gzip"),
                ("sec-fetch-dest", "document"),
            ],
            None,
        )
        .unwrap();
    let text = match r.header("content-encoding").as_deref() {
        Some("gzip") => {
            let mut out = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&r.bytes[..]),
                &mut out,
            )
            .unwrap();
            out
        }
        None | Some("identity") => r.body.clone(),
        Some(other) => panic!("unexpected encoding {other}"),
    };
    assert!(text.contains(MARK), "banner injected into a gzip page");
    // Decoded, its length is unknown before the end: the body is sent in chunks.
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert!(r.header("content-length").is_none());
    assert!(
        text.contains(&"compressed content ".repeat(500)),
        "content intact"
    );
}

#[test]
fn the_upstreams_content_security_policy_is_kept_and_not_weakened() {
    let csp = "default-src 'self'; form-action 'self'; style-src 'self'";
    let echo = Echo::start_with(
        &[
            ("Content-Type", "text/html"),
            ("Content-Security-Policy", csp),
        ],
        b"<html><body>x</body></html>".to_vec(),
    );
    let (_stack, ada) = impersonating_on(&echo);
    let r = ada.get("/").unwrap();
    assert!(r.body.contains(MARK));
    let got = r.header("content-security-policy").expect("CSP kept");
    assert!(!got.contains("unsafe-inline"), "{got}");
    assert!(got.starts_with("default-src 'self'"), "{got}");
    assert!(got.contains("form-action 'self'"), "{got}");
}

#[test]
fn a_page_without_body_still_shows_the_banner() {
    let echo = Echo::start("text/html", b"<title>no body here</title><p>text".to_vec());
    let (_stack, ada) = impersonating_on(&echo);
    let page = ada.get("/").unwrap();
    assert!(page.body.contains(MARK));
    assert!(page.body.starts_with("<title>no body here</title><p>text"));
}

#[test]
fn the_banner_stop_button_is_a_post_form_with_the_csrf_token() {
    let stack = Stack::start();
    let ada = stack.signed_in("ada");
    ada.impersonate("carl", "", false);
    let page = ada.get("/domains").unwrap().body;
    // Absolute, on the page's own origin: a page's `<base href>` cannot send the token away.
    assert!(
        page.contains(&format!(
            "action=\"{}/_actas/impersonate/stop\"",
            ada.base()
        )),
        "{page}"
    );
    assert!(page.contains("method=\"post\""));
    let token = hidden(&page, "csrf_token").expect("a CSRF token in the banner");
    let r = ada.post("/_actas/impersonate/stop", &[("csrf_token", &token)]);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/_actas/accounts/carl");
}
