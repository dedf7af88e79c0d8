//! Making room for the banner in the page's Content-Security-Policy without weakening it.
//!
//! Only two things are ever added, and only where the policy would otherwise block them:
//! the SHA-256 hash of the banner's exact `<style>` (admits that one stylesheet and
//! nothing else; never added where `'unsafe-inline'` is in force, since a hash would switch
//! it off), and the exact URL of the Stop endpoint to `form-action`. Nothing is removed,
//! and no `'unsafe-inline'`, wildcard or `'self'` is ever added.

use http::HeaderMap;

const HEADERS: [http::HeaderName; 2] = [
    http::header::CONTENT_SECURITY_POLICY,
    http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
];

/// Rewrites every CSP header in `resp` so the banner's style and Stop form work, in place
/// and in order. A value that is not visible ASCII (a raw non-ASCII byte) cannot be read
/// as text: it is kept exactly as it came, and may block the banner; a policy is never
/// dropped. `stop_url` is called only for a response that has a policy.
pub fn admit_banner(resp: &mut HeaderMap, style_hash: &str, stop_url: impl FnOnce() -> String) {
    if !HEADERS.iter().any(|name| resp.contains_key(name)) {
        return;
    }
    let stop_url = stop_url();
    for name in &HEADERS {
        let http::header::Entry::Occupied(mut values) = resp.entry(name) else {
            continue;
        };
        for value in values.iter_mut() {
            let Ok(text) = value.to_str() else {
                continue;
            };
            let new = text
                .split(',')
                .map(|policy| admit_in_policy(policy, style_hash, &stop_url))
                .collect::<Vec<_>>()
                .join(",");
            if let Ok(mut new) = http::HeaderValue::from_str(&new) {
                new.set_sensitive(value.is_sensitive());
                *value = new;
            }
        }
    }
}

fn is_hash_or_nonce(source: &str) -> bool {
    let s = source.to_ascii_lowercase();
    s.starts_with("'sha256-")
        || s.starts_with("'sha384-")
        || s.starts_with("'sha512-")
        || s.starts_with("'nonce-")
}

/// Whether a source list lets any inline `<style>` through.
fn allows_all_inline(sources: &[String]) -> bool {
    let unsafe_inline = sources
        .iter()
        .any(|s| s.eq_ignore_ascii_case("'unsafe-inline'"));
    unsafe_inline && !sources.iter().any(|s| is_hash_or_nonce(s))
}

fn add_source(sources: &mut Vec<String>, source: &str) {
    // 'none' cannot stand beside other sources; the result admits exactly the new one.
    sources.retain(|s| !s.eq_ignore_ascii_case("'none'"));
    if !sources.iter().any(|s| s == source) {
        sources.push(source.to_owned());
    }
}

/// One policy (the text between commas) with the banner admitted.
pub fn admit_in_policy(policy: &str, style_hash: &str, stop_url: &str) -> String {
    let mut directives: Vec<(String, Vec<String>)> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut parts = d.split_ascii_whitespace();
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            (name, parts.map(str::to_owned).collect())
        })
        .collect();
    let find = |ds: &[(String, Vec<String>)], n: &str| ds.iter().position(|(name, _)| name == n);

    // <style> elements follow style-src-elem, else style-src, else default-src.
    let effective = find(&directives, "style-src-elem")
        .or_else(|| find(&directives, "style-src"))
        .or_else(|| find(&directives, "default-src"));
    if let Some(i) = effective {
        if !allows_all_inline(&directives[i].1) {
            if directives[i].0 == "default-src" {
                // A new style-src-elem keeps default-src's sources for the page's own
                // stylesheets and adds the banner's.
                let mut sources = directives[i].1.clone();
                add_source(&mut sources, style_hash);
                directives.push(("style-src-elem".into(), sources));
            } else {
                add_source(&mut directives[i].1, style_hash);
            }
        }
    }
    if let Some(i) = find(&directives, "form-action") {
        let allows_self = directives[i]
            .1
            .iter()
            .any(|s| s.eq_ignore_ascii_case("'self'") || s == "*");
        if !allows_self {
            add_source(&mut directives[i].1, stop_url);
        }
    }
    directives
        .into_iter()
        .map(|(n, s)| {
            if s.is_empty() {
                n
            } else {
                format!("{n} {}", s.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "'sha256-abc='";
    const U: &str = "https://panel.example/_actas/impersonate/stop";

    fn admit(p: &str) -> String {
        admit_in_policy(p, H, U)
    }

    #[test]
    fn a_policy_without_style_rules_is_left_alone() {
        assert_eq!(
            admit("img-src 'self'; frame-ancestors 'none'"),
            "img-src 'self'; frame-ancestors 'none'"
        );
    }

    #[test]
    fn default_src_gets_a_style_src_elem_with_its_sources_and_the_hash() {
        assert_eq!(
            admit("default-src 'self'"),
            format!("default-src 'self'; style-src-elem 'self' {H}")
        );
        assert_eq!(
            admit("default-src 'none'"),
            format!("default-src 'none'; style-src-elem {H}")
        );
    }

    #[test]
    fn style_src_gets_the_hash_and_keeps_everything_else() {
        assert_eq!(
            admit("style-src 'self' https://cdn.example"),
            format!("style-src 'self' https://cdn.example {H}")
        );
        assert_eq!(
            admit("style-src 'nonce-xyz'"),
            format!("style-src 'nonce-xyz' {H}")
        );
    }

    #[test]
    fn unsafe_inline_is_never_added_and_never_switched_off() {
        for p in [
            "style-src 'self' 'unsafe-inline'",
            "default-src 'self' 'unsafe-inline'",
        ] {
            assert_eq!(
                admit(p),
                p,
                "unchanged: adding a hash would disable the page's inline styles"
            );
        }
        // With a nonce present, 'unsafe-inline' is already ignored by browsers: add the hash.
        assert_eq!(
            admit("style-src 'unsafe-inline' 'nonce-n'"),
            format!("style-src 'unsafe-inline' 'nonce-n' {H}")
        );
        for p in [
            "default-src 'none'",
            "style-src 'self'",
            "default-src 'self'; form-action 'none'",
        ] {
            assert!(!admit(p).contains("unsafe-inline"));
        }
    }

    #[test]
    fn form_action_admits_exactly_the_stop_url() {
        assert_eq!(admit("form-action 'none'"), format!("form-action {U}"));
        assert_eq!(
            admit("form-action https://pay.example"),
            format!("form-action https://pay.example {U}")
        );
        assert_eq!(admit("form-action 'self'"), "form-action 'self'");
    }

    #[test]
    fn several_policies_and_report_only_headers_are_all_handled() {
        let mut h = HeaderMap::new();
        h.append(
            "content-security-policy",
            "default-src 'self', style-src 'none'".parse().unwrap(),
        );
        h.append(
            "content-security-policy-report-only",
            "style-src 'self'".parse().unwrap(),
        );
        admit_banner(&mut h, H, || U.to_owned());
        assert_eq!(
            h.get("content-security-policy").unwrap(),
            &format!("default-src 'self'; style-src-elem 'self' {H},style-src {H}")
        );
        assert_eq!(
            h.get("content-security-policy-report-only").unwrap(),
            &format!("style-src 'self' {H}")
        );
    }

    #[test]
    fn a_policy_that_is_not_text_is_kept_byte_for_byte() {
        // A raw non-ASCII byte: the policy cannot be read as text, so it cannot be amended,
        // and must reach the browser exactly as it came (the banner may then be blocked by it,
        // the page never loses its policy).
        let raw: &[u8] = b"default-src 'self'; report-uri https://ex\xc3\xa4mple/";
        let mut h = HeaderMap::new();
        h.append(
            "content-security-policy",
            http::HeaderValue::from_bytes(raw).unwrap(),
        );
        h.append(
            "content-security-policy",
            http::HeaderValue::from_static("style-src 'self'"),
        );
        h.append(
            "content-security-policy-report-only",
            http::HeaderValue::from_bytes(raw).unwrap(),
        );
        admit_banner(&mut h, H, || U.to_owned());
        let enforced: Vec<&[u8]> = h
            .get_all("content-security-policy")
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        let style = format!("style-src 'self' {H}");
        assert_eq!(enforced, [raw, style.as_bytes()]);
        let reported: Vec<&[u8]> = h
            .get_all("content-security-policy-report-only")
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        assert_eq!(reported, [raw]);
    }
}
