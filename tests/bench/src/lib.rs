//! Pieces of the benchmark harness (`tests/bench/run`): a fixed upstream, a no-op Pingora
//! passthrough with actas's Pingora settings, and in-process measurements of the audit
//! writer and password hashing. Nothing here is part of the product or its test suite.

/// The fixed 20 KB HTML page: served by `bench-upstream`, and rewritten in process by
/// `bench-inproc banner`.
pub fn page() -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>bench</title></head><body>\n",
    );
    while s.len() < 20 * 1024 - 20 {
        s.push_str("<p>The quick brown fox jumps over the lazy dog, again and again.</p>\n");
    }
    s.push_str("</body></html>\n");
    s
}
