//! Header hygiene for forwarded requests: what a client may not send the panel, what the
//! proxy sets instead, and which client address is believed.
//!
//! A client's `X-Actas-*` and identity headers, and its method and URL overrides (in `-` and
//! `_` spellings), are removed, `Connection` and the hop-by-hop headers it names are dropped
//! before the proxy adds its own (so naming `X-Actas-Assertion` in `Connection:` cannot strip
//! the assertion), the session cookie is cut out of `Cookie`, and `X-Forwarded-*` are set by
//! the proxy, trusting a client's values only when the peer is a configured trusted proxy.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::config::IpNet;
use crate::session::COOKIE_NAME;

/// Identity headers other proxies and panels use, normalized (lowercase, `_` → `-`).
const IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "x-remote-name",
    "remote-user",
    "x-user",
    "x-email",
    "x-webauth-user",
    "x-auth-user",
    "x-authenticated-user",
    "x-real-user",
    "x-impersonate-user",
];

/// Prefixes of identity headers, normalized.
const IDENTITY_PREFIXES: &[&str] = &[
    "x-actas-",
    "x-auth-request-",
    "cf-access-",
    "x-pomerium-",
    "x-goog-authenticated-",
    "x-ms-client-principal",
];

/// Headers that make a panel or its web server treat a request as another method or path
/// (Symfony, Laravel, Rails, ASP.NET, IIS URL Rewrite), normalized. The proxy judges a request
/// by its request line: whether it is safe (no CSRF check, no write-ahead audit record), and
/// which path policies apply. A `POST` that says `X-HTTP-Method-Override: DELETE`, or a
/// `GET /` that says `X-Original-URL: /admin`, would act as something the proxy never checked
/// or recorded as such.
const OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1) that never travel past the proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Whether a client may not pass a header of this name to the panel. `_` counts as `-`
/// (some servers treat them alike); case does not count.
pub fn is_forbidden(name: &str) -> bool {
    let lowered;
    let mut n = name;
    if n.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        lowered = name.to_ascii_lowercase().replace('_', "-");
        n = &lowered;
    }
    IDENTITY_HEADERS.contains(&n)
        || OVERRIDE_HEADERS.contains(&n)
        || IDENTITY_PREFIXES.iter().any(|p| n.starts_with(p))
        || HOP_BY_HOP.contains(&n)
        || n.starts_with("x-forwarded-")
        || n == "forwarded"
        || n == "x-real-ip"
}

/// Removes every header a client may not pass on, including those named by `Connection`.
pub fn strip_inbound(req: &mut RequestHeader) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for value in req.headers.get_all(http::header::CONNECTION) {
        if let Ok(v) = value.to_str() {
            for token in v.split(',') {
                if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                    doomed.push(name);
                }
            }
        }
    }
    for (name, _) in req.headers.iter() {
        if is_forbidden(name.as_str()) {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        req.remove_header(&name);
    }
    strip_session_cookie(req);
}

/// Cuts the session cookie out of `Cookie` so the panel never sees the token. The cookies
/// left (from every `Cookie` header, in order) travel on in one header.
fn strip_session_cookie(req: &mut RequestHeader) {
    let mut present = false;
    let mut kept = String::new();
    for value in req.headers.get_all(http::header::COOKIE) {
        present = true;
        let Ok(value) = value.to_str() else {
            continue;
        };
        for c in value.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let name = c.split_once('=').map_or(c, |(n, _)| n).trim();
            if name.eq_ignore_ascii_case(COOKIE_NAME) || name.starts_with("__Host-actas") {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(c);
        }
    }
    if !present {
        return;
    }
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::try_from(kept) {
            let _ = req.insert_header(http::header::COOKIE, v);
        }
    }
}

/// The client as the proxy believes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address.
    pub ip: String,
    /// `https` or `http`, as the browser used.
    pub proto: &'static str,
    /// The `X-Forwarded-For` chain to send on.
    pub forwarded_for: String,
}

/// Works out the client from the TCP peer and, only when the peer is trusted, the
/// `X-Forwarded-For`/`X-Forwarded-Proto` it sent. `trusted` is the plain-HTTP listener's
/// `trusted_proxies`: the caller passes none for the HTTPS listener.
pub fn client(peer: Option<IpAddr>, tls: bool, req: &RequestHeader, trusted: &[IpNet]) -> Client {
    let peer_ip = peer.map(ip_text).unwrap_or_else(|| "unknown".into());
    let peer_trusted = peer.is_some_and(|p| trusted.iter().any(|n| n.contains(p)));
    if !peer_trusted {
        return Client {
            ip: peer_ip.clone(),
            proto: if tls { "https" } else { "http" },
            forwarded_for: peer_ip,
        };
    }
    // Each trusted proxy appends the address it saw, so the chain is read from the right:
    // past trusted proxies to the first address that is not one. Whatever stands left of it
    // the client wrote itself. An entry that cannot be read ends the walk: skipping it would
    // let the client's own entries take its place, so the client is then the proxy that
    // wrote it.
    let entries: Vec<&str> = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut believed = Vec::new();
    let mut ip = None;
    for entry in entries.iter().rev() {
        let Some(addr) = forwarded_address(entry) else {
            break;
        };
        believed.push(addr);
        if !trusted.iter().any(|n| n.contains(addr)) {
            ip = Some(addr);
            break;
        }
    }
    // Every address was a trusted proxy's: the left-most one read is the nearest to the
    // client there is.
    let ip = ip
        .or_else(|| believed.last().copied())
        .map_or_else(|| peer_ip.clone(), ip_text);
    let proto = match req
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        Some(p) if p == "https" => "https",
        Some(p) if p == "http" => "http",
        _ if tls => "https",
        _ => "http",
    };
    // The upstream is sent the part of the chain actas believes, as addresses, then the peer.
    let mut forwarded_for = String::new();
    for addr in believed.iter().rev() {
        forwarded_for.push_str(&ip_text(*addr));
        forwarded_for.push_str(", ");
    }
    forwarded_for.push_str(&peer_ip);
    Client {
        ip,
        proto,
        forwarded_for,
    }
}

/// One `X-Forwarded-For` entry as an address: `192.0.2.1`, `2001:db8::1`, and the forms
/// some balancers write with the client's port, `192.0.2.1:5555`, `[2001:db8::1]` and
/// `[2001:db8::1]:5555`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = entry.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.parse::<u16>().is_ok()
}

/// An address as text, as `Display` writes it. IPv4 is written directly: `Display` goes
/// through the formatting machinery, 1,300 instructions on every request.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_address_is_written_as_display_writes_it(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>()) {
            let v4 = IpAddr::from(v4);
            prop_assert_eq!(ip_text(v4), v4.to_string());
            let v6 = IpAddr::from(v6);
            prop_assert_eq!(ip_text(v6), v6.to_string());
        }
    }

    #[test]
    fn every_octet_is_written_without_leading_zeros() {
        for (ip, text) in [
            ([0, 0, 0, 0], "0.0.0.0"),
            ([9, 10, 99, 100], "9.10.99.100"),
            ([255, 200, 1, 127], "255.200.1.127"),
        ] {
            assert_eq!(ip_text(IpAddr::from(ip)), text);
        }
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn identity_headers_are_removed_in_both_spellings() {
        let mut r = req(&[
            ("X-Actas-Assertion", "forged"),
            ("x_actas_assertion", "forged"),
            ("X-Forwarded-User", "ada"),
            ("X_Forwarded_User", "ada"),
            ("Remote-User", "ada"),
            ("remote_user", "ada"),
            ("X-Auth-Request-Email", "ada@x"),
            ("x_auth_request_user", "ada"),
            ("X-Remote-User", "ada"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Accept", "text/html"),
        ]);
        strip_inbound(&mut r);
        let names: Vec<String> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn method_and_url_overrides_are_removed_in_both_spellings() {
        let mut r = req(&[
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_http_method_override", "DELETE"),
            ("X-HTTP-Method", "PUT"),
            ("X_HTTP_Method", "PUT"),
            ("X-Method-Override", "PATCH"),
            ("x_method_override", "PATCH"),
            ("X-Original-URL", "/admin"),
            ("X_Original_URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("x_rewrite_url", "/admin"),
            ("Accept", "text/html"),
        ]);
        strip_inbound(&mut r);
        let names: Vec<String> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn connection_named_headers_go_and_connection_itself_goes() {
        let mut r = req(&[
            ("Connection", "keep-alive, X-Custom, x-actas-assertion"),
            ("X-Custom", "1"),
            ("X-Other", "2"),
        ]);
        strip_inbound(&mut r);
        assert!(r.headers.get("connection").is_none());
        assert!(r.headers.get("x-custom").is_none());
        assert_eq!(r.headers.get("x-other").unwrap(), "2");
    }

    #[test]
    fn the_session_cookie_never_reaches_the_panel() {
        let mut r = req(&[
            ("Cookie", "a=1; __Host-actas_session=SECRET; b=2"),
            ("Cookie", "__Host-actas_session=X"),
        ]);
        strip_inbound(&mut r);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        let mut r = req(&[("Cookie", "__Host-actas_session=SECRET")]);
        strip_inbound(&mut r);
        assert!(r.headers.get("cookie").is_none());
    }

    #[test]
    fn the_session_cookie_is_cut_out_whatever_its_spelling_and_the_rest_is_kept_in_order() {
        let mut r = req(&[
            (
                "Cookie",
                " ;a=1;;  __HOST-ACTAS_SESSION = SECRET ; b=\"x y\" ;",
            ),
            ("Cookie", "__Host-actas_csrf=T; c"),
        ]);
        r.append_header("Cookie", HeaderValue::from_bytes(b"d=\xff").unwrap())
            .unwrap();
        r.append_header("Cookie", "e=5").unwrap();
        strip_inbound(&mut r);
        let kept: Vec<&HeaderValue> = r.headers.get_all("cookie").iter().collect();
        // One header, the panel's cookies in the order sent; a value that is not text goes.
        assert_eq!(kept, vec!["a=1; b=\"x y\"; c; e=5"]);
        assert!(!format!("{:?}", r.headers).contains("SECRET"));
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let r = req(&[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let c = client(Some("10.0.0.9".parse().unwrap()), false, &r, &[]);
        assert_eq!(c.ip, "10.0.0.9");
        assert_eq!(c.proto, "http");
        assert_eq!(c.forwarded_for, "10.0.0.9");
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies() {
        let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let r = req(&[
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.2"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let c = client(Some("10.0.0.9".parse().unwrap()), false, &r, &trusted);
        assert_eq!(c.ip, "203.0.113.7");
        assert_eq!(c.proto, "https");
        // What the client wrote left of itself is not passed on as if it were believed.
        assert_eq!(c.forwarded_for, "203.0.113.7, 10.0.0.2, 10.0.0.9");
    }

    #[test]
    fn a_balancer_that_writes_the_clients_port_is_read_and_cannot_be_stepped_past() {
        let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let peer = Some("10.0.0.9".parse().unwrap());
        for (chain, ip) in [
            ("1.1.1.1, 203.0.113.9:5555", "203.0.113.9"),
            ("1.1.1.1, [2001:db8::7]:443, 10.0.0.2:80", "2001:db8::7"),
            ("1.1.1.1, [2001:db8::7]", "2001:db8::7"),
            ("2001:db8::8", "2001:db8::8"),
            // Unreadable: the client is the proxy that wrote it, never what stands left of it.
            ("1.1.1.1, unknown", "10.0.0.9"),
            ("1.1.1.1, 203.0.113.9:99999", "10.0.0.9"),
            ("1.1.1.1, [2001:db8::7]x", "10.0.0.9"),
            ("1.1.1.1, garbage, 10.0.0.3", "10.0.0.3"),
            ("", "10.0.0.9"),
        ] {
            let r = req(&[("X-Forwarded-For", chain)]);
            let c = client(peer, false, &r, &trusted);
            assert_eq!(c.ip, ip, "{chain}");
            assert!(
                !c.forwarded_for.contains("1.1.1.1"),
                "{chain}: {}",
                c.forwarded_for
            );
            assert!(c.forwarded_for.ends_with("10.0.0.9"), "{chain}");
        }
    }

    proptest! {
        #[test]
        fn whatever_the_client_writes_it_cannot_choose_the_address_a_trusted_balancer_saw(
            forged in "[ -~]{0,40}",
        ) {
            // The balancer (10.0.0.9) appends the address it saw, 203.0.113.9, after whatever
            // the client sent; the client is that address, whatever the client wrote.
            let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap()];
            for seen in ["203.0.113.9", "203.0.113.9:5555"] {
                let r = req(&[("X-Forwarded-For", &format!("{forged}, {seen}"))]);
                let c = client(Some("10.0.0.9".parse().unwrap()), false, &r, &trusted);
                prop_assert_eq!(&c.ip, "203.0.113.9");
            }
        }
    }
}
