//! The console's input guards: form bodies, same-origin checks, and local redirect targets.
//!
//! Everything here treats its input as hostile and answers with a plain `Option`/`Result`;
//! nothing panics on any byte sequence.

use std::collections::HashMap;

use http::HeaderMap;

/// The largest form body the console reads.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Parses an `application/x-www-form-urlencoded` body. Repeated keys keep the first value.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A `next`/`return_to` value that stays on this origin, or `None`.
///
/// Accepted: an absolute path (`/…`). Refused: scheme-relative `//host`, `/\host` (browsers
/// treat `\` as `/`), anything with a scheme, control characters or backslashes, and the
/// same tricks percent-encoded once or twice.
pub fn local_path(candidate: &str) -> Option<String> {
    fn plain_ok(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains('\\')
            && !p.chars().any(char::is_control)
            && p.len() <= 2048
    }
    // A raw value goes into a Location header as is: no spaces there.
    if !plain_ok(candidate) || candidate.contains(' ') {
        return None;
    }
    // Look through up to two layers of percent-encoding for a smuggled prefix.
    let mut text = candidate.to_owned();
    for _ in 0..2 {
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8()
            .ok()?
            .into_owned();
        if !plain_ok(&decoded) {
            return None;
        }
        if decoded == text {
            break;
        }
        text = decoded;
    }
    Some(candidate.to_owned())
}

/// Whether an unsafe request comes from this origin: `Origin` must equal
/// `{proto}://{host}`; without `Origin`, `Sec-Fetch-Site` must be `same-origin` (or `none`,
/// a user-typed navigation). A request that carries neither is refused: browsers send at
/// least one on every cross-site POST, and non-browser clients can send `Origin`.
pub fn same_origin(headers: &HeaderMap, proto: &str, host: &str) -> bool {
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        return origin_matches(origin, proto, host);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"),
        None => false,
    }
}

fn origin_matches(origin: &str, proto: &str, host: &str) -> bool {
    let expected = format!("{proto}://{}", host.to_ascii_lowercase());
    let origin = origin.trim().to_ascii_lowercase();
    if origin == expected {
        return true;
    }
    // A default port may be written or not on either side.
    let default_port = if proto == "https" { ":443" } else { ":80" };
    origin.strip_suffix(default_port) == Some(expected.as_str())
        || expected.strip_suffix(default_port) == Some(origin.as_str())
}

/// Constant-time comparison of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for ok in ["/", "/files?path=a", "/_actas/accounts/carl", "/a%20b"] {
            assert_eq!(local_path(ok).as_deref(), Some(ok));
        }
    }

    #[test]
    fn open_redirect_tricks_are_refused() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/%2fevil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "/%252fevil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "/ /evil",
            "",
            "%2f%2fevil.example",
        ] {
            assert_eq!(local_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h, "https", "panel.example:8443"));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h, "https", "panel.example:8443"));
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h, "https", "panel.example:8443"));
        h.insert("origin", "https://panel.example:8443".parse().unwrap());
        assert!(same_origin(&h, "https", "panel.example:8443"));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h, "https", "panel.example:8443"));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h, "https", "panel.example:8443"));
        h.insert("origin", "http://panel.example:8443".parse().unwrap());
        assert!(!same_origin(&h, "https", "panel.example:8443"));
        h.insert("origin", "https://panel.example:443".parse().unwrap());
        assert!(same_origin(&h, "https", "panel.example"));
    }

    #[test]
    fn forms_parse_and_survive_garbage() {
        let f = form(b"username=ada&password=p%40ss+word&username=eve");
        assert_eq!(f["username"], "ada");
        assert_eq!(f["password"], "p@ss word");
        let f = form(b"\xff\xfe=%zz&&=&a");
        assert_eq!(f.get("a").map(String::as_str), Some(""));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "ab"));
    }
}
