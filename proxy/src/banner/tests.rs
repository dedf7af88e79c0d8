//! The banner's behaviour on documents of every shape, codings, charsets, and arbitrary input.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::inject::ContentEncoding;
use super::*;

fn info() -> BannerInfo<'static> {
    BannerInfo {
        actor: "ada",
        actor_role: "admin",
        subject: "carl",
        subject_role: "customer",
        started_at: 14 * 3600 + 2 * 60,
        expires_at: 14 * 3600 + 2 * 60 + 3600,
        now: 14 * 3600 + 16 * 60,
        csrf_token: "tok",
    }
}

fn run(doc: &[u8], encoding: ContentEncoding, chunk: usize) -> (Vec<u8>, bool) {
    let mut inj = Injector::new(render(&info()), encoding, None, false).unwrap();
    let mut out = Vec::new();
    for c in doc.chunks(chunk.max(1)) {
        out.extend_from_slice(&inj.write(c).unwrap());
    }
    out.extend_from_slice(&inj.finish().unwrap());
    (out, inj.injected())
}

fn inject(doc: &str) -> String {
    String::from_utf8(run(doc.as_bytes(), ContentEncoding::Identity, 7).0).unwrap()
}

fn banner() -> String {
    render(&info())
}

/// The origin the tests' pages are served from.
const ORIGIN: &str = "https://panel.example";

#[test]
fn the_banner_goes_right_after_body_opens() {
    let out = inject("<!doctype html><html><head><title>x</title></head><body class=\"a\" data-x='1'><p>hi</p></body></html>");
    assert_eq!(
        out,
        format!("<!doctype html><html><head><title>x</title></head><body class=\"a\" data-x='1'>{}<p>hi</p></body></html>", banner())
    );
}

#[test]
fn uppercase_body_tags_are_found() {
    assert!(inject("<HTML><BODY>x</BODY></HTML>").starts_with(&format!("<HTML><BODY>{}", banner())));
}

#[test]
fn a_document_without_body_gets_it_at_the_end() {
    let out = inject("<title>t</title><p>text");
    assert_eq!(out, format!("<title>t</title><p>text{}", banner()));
}

#[test]
fn a_frameset_document_is_untouched() {
    let doc = "<html><frameset cols=\"50%,50%\"><frame src=\"a\"></frameset></html>";
    let (out, injected) = run(doc.as_bytes(), ContentEncoding::Identity, 5);
    assert_eq!(out, doc.as_bytes());
    assert!(!injected);
}

#[test]
fn only_the_first_body_gets_it() {
    let out = inject("<body>a</body><body>b</body>");
    assert_eq!(out.matches("Stop impersonating").count(), 1);
}

#[test]
fn body_tags_in_comments_scripts_and_attributes_are_not_bodies() {
    let out = inject("<html><head><script>var s = \"<body>\";</script><!-- <body> --><title a=\"<body>\">t</title></head><body>real</body></html>");
    let at = out.find("Stop impersonating").unwrap();
    assert!(out[..at].ends_with("") && out.find("<body>real").is_none());
    assert!(out.contains(&format!("<body>{}real", banner())), "{out}");
}

#[test]
fn truncated_and_garbage_documents_never_panic() {
    for doc in [
        &b"<html><bo"[..],
        b"",
        b"\xff\xfe\x00<body",
        b"<body",
        b"<<<>>><body <body>",
        b"\x00\x00\x00",
        b"<!-- unterminated <body>",
    ] {
        let (out, _) = run(doc, ContentEncoding::Identity, 3);
        assert_eq!(strip(&out, &banner()), doc, "{doc:?}");
    }
}

#[test]
fn every_chunk_boundary_gives_the_same_output() {
    let doc = b"<!doctype html><html><head><meta charset=utf-8><title>t</title></head><body id=b><p>x</p></body></html>";
    let (whole, _) = run(doc, ContentEncoding::Identity, doc.len());
    for size in 1..doc.len() {
        assert_eq!(
            run(doc, ContentEncoding::Identity, size).0,
            whole,
            "chunk size {size}"
        );
    }
}

fn compress(kind: ContentEncoding, data: &[u8]) -> Vec<u8> {
    match kind {
        ContentEncoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ContentEncoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ContentEncoding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        ContentEncoding::Zstd => zstd::encode_all(data, 3).unwrap(),
        ContentEncoding::Identity => data.to_vec(),
    }
}

#[test]
fn compressed_documents_are_decoded_and_rewritten() {
    let doc = format!("<html><body>{}</body></html>", "lorem ipsum ".repeat(2000));
    for kind in [
        ContentEncoding::Gzip,
        ContentEncoding::Deflate,
        ContentEncoding::Brotli,
        ContentEncoding::Zstd,
    ] {
        let (out, injected) = run(&compress(kind, doc.as_bytes()), kind, 999);
        assert!(injected, "{kind:?}");
        assert_eq!(strip(&out, &banner()), doc.as_bytes(), "{kind:?}");
    }
    // Raw deflate, as some servers send it.
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(doc.as_bytes()).unwrap();
    let (out, _) = run(&e.finish().unwrap(), ContentEncoding::Deflate, 1000);
    assert_eq!(strip(&out, &banner()), doc.as_bytes());
}

#[test]
fn a_compressed_chunk_that_decodes_past_the_limit_is_refused_not_held_in_memory() {
    // 64 MiB of one byte, a few dozen KiB compressed, all in one upstream chunk.
    let bomb = vec![b' '; 64 << 20];
    for kind in [
        ContentEncoding::Gzip,
        ContentEncoding::Deflate,
        ContentEncoding::Brotli,
        ContentEncoding::Zstd,
    ] {
        let compressed = compress(kind, &bomb);
        assert!(compressed.len() < 1 << 20, "{kind:?}: {}", compressed.len());
        let mut inj = Injector::new(render(&info()), kind, None, false).unwrap();
        match inj.write(&compressed) {
            Err(BannerError::Decode(e)) => assert!(e.contains("MiB"), "{kind:?}: {e}"),
            Err(e) => panic!("{kind:?}: {e}"),
            Ok(out) => panic!("{kind:?}: {} bytes held and sent", out.len()),
        }
    }
    // A page that is merely large (more than the limit in all, as text compresses) goes
    // through: the limit is per chunk.
    let text: Vec<String> = (0..2_500_000).map(|n: u32| n.to_string()).collect();
    let page = format!("<html><body>{}</body></html>", text.join(" "));
    assert!(page.len() > inject::MAX_OUT_PER_CHUNK);
    let (out, injected) = run(
        &compress(ContentEncoding::Gzip, page.as_bytes()),
        ContentEncoding::Gzip,
        64 << 10,
    );
    assert!(injected);
    assert_eq!(out.len(), page.len() + banner().len());
}

#[test]
fn unknown_or_stacked_encodings_are_refused_for_passthrough() {
    for ce in ["compress", "gzip, br", "exotic"] {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_str(ce).unwrap());
        assert!(ContentEncoding::from_headers(&h).is_err(), "{ce}");
    }
}

#[test]
fn legacy_charsets_keep_their_bytes() {
    // windows-1252 "café" and Shift_JIS "日本" around the banner.
    let latin =
        b"<html><head><meta charset=\"windows-1252\"></head><body>caf\xe9</body></html>".to_vec();
    let sjis = b"<html><body>\x93\xfa\x96\x7b</body></html>".to_vec();
    for (doc, label) in [(latin, "windows-1252"), (sjis, "Shift_JIS")] {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_str(&format!("text/html; charset={label}")).unwrap(),
        );
        let cs = inject::charset(&h).unwrap();
        let mut inj = Injector::new(banner(), ContentEncoding::Identity, cs, false).unwrap();
        let mut out = inj.write(&doc).unwrap().to_vec();
        out.extend_from_slice(&inj.finish().unwrap());
        assert!(inj.injected(), "{label}");
        assert_eq!(strip(&out, &banner()), doc, "{label}");
    }
}

#[test]
fn a_charset_named_only_by_the_document_changes_no_byte_of_it() {
    // The rewriter does not follow `<meta>` charsets: the banner is ASCII, so where it goes
    // and what surrounds it must not depend on them.
    let docs: [&[u8]; 3] = [
        b"<html><head><meta charset=\"windows-1252\"><title>caf\xe9</title></head><body class=\"\xe9\">caf\xe9</body></html>",
        b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\"></head><body>\x93\xfa\x96\x7b</body></html>",
        b"<html><head><meta charset=\"utf-16\"></head><body>plain</body></html>",
    ];
    for doc in docs {
        let mut inj = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
        let announced = inj.fixed_length(doc.len() as u64).unwrap();
        let mut out = inj.write(doc).unwrap().to_vec();
        out.extend_from_slice(&inj.finish().unwrap());
        assert!(inj.injected());
        assert_eq!(out.len() as u64, announced);
        assert_eq!(strip(&out, &banner()), doc);
        let body = out
            .windows(6)
            .position(|w| w == b"<body ")
            .or_else(|| out.windows(6).position(|w| w == b"<body>"));
        let at = out
            .windows(banner().len())
            .position(|w| w == banner().as_bytes());
        assert!(body.unwrap() < at.unwrap(), "the banner follows <body>");
    }
}

#[test]
fn charset_labels_are_read_whatever_their_case_quotes_and_spelling() {
    let read = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(ct).unwrap());
        inject::charset(&h).map(|cs| cs.map(|cs| <&encoding_rs::Encoding>::from(cs).name()))
    };
    for ct in [
        "text/html; charset=utf-8",
        "text/html;charset=UTF-8",
        "text/html; charset=\"Utf-8\"",
        "text/html; charset=utf8",
        "text/html; charset=unicode-1-1-utf-8",
    ] {
        assert_eq!(read(ct).unwrap(), Some("UTF-8"), "{ct}");
    }
    assert_eq!(
        read("text/html; charset=latin1").unwrap(),
        Some("windows-1252")
    );
    assert_eq!(read("text/html; charset=no-such-charset").unwrap(), None);
    assert_eq!(read("text/html").unwrap(), None);
    assert!(read("text/html; charset=UTF-16LE").is_err());
}

#[test]
fn utf16_documents_pass_through_untouched() {
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-16"),
    );
    assert!(inject::charset(&h).is_err());
    let doc: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("<body>x</body>".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (out, injected) = run(&doc, ContentEncoding::Identity, 4);
    assert_eq!(out, doc);
    assert!(!injected);
}

#[test]
fn the_banner_is_ascii_and_escapes_everything() {
    let mut i = info();
    i.subject = "<script>alert(1)</script>";
    i.actor = "zo\u{eb} \"&'";
    let b = render(&i);
    assert!(b.is_ascii());
    assert!(!b.contains("<script>"));
    assert!(b.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(b.contains("zo&#xeb; &quot;&amp;&#39;"));
}

#[test]
fn the_banner_says_who_since_when_and_how_long_is_left() {
    let b = banner();
    assert!(b.contains("You're signed in as carl (customer). You are ada (admin)."));
    assert!(b.contains("Started 14:02 UTC &#183; 46 min left"), "{b}");
    assert!(b.contains("<form method=\"post\" action=\"/_actas/impersonate/stop\"><input type=\"hidden\" name=\"csrf_token\" value=\"tok\"/>"));
    let mut late = info();
    late.now = late.expires_at + 100;
    assert!(render(&late).contains("0 min left"));
}

#[test]
fn the_style_hash_matches_the_style() {
    assert_eq!(style_hash_source(), Syntax::Html.style_hash_source());
    assert_ne!(
        Syntax::Html.style_hash_source(),
        Syntax::Xhtml.style_hash_source()
    );
    for syntax in [Syntax::Html, Syntax::Xhtml] {
        let src = syntax.style_hash_source();
        assert!(src.starts_with("'sha256-") && src.ends_with('\''));
        let b = render_for(&info(), ORIGIN, syntax);
        let style = &b[b.find("<style>").unwrap() + 7..b.find("</style>").unwrap()];
        assert!(
            !style.contains(['<', '&']),
            "{syntax:?}: XML text as it stands"
        );
        let digest =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert_eq!(src, format!("'sha256-{digest}'"), "{syntax:?}");
    }
}

fn resp(ct: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_str(ct).unwrap());
    h
}

#[test]
fn only_rendered_documents_get_a_banner() {
    let get = Method::GET;
    let none = HeaderMap::new();
    assert!(should_inject(
        &get,
        &none,
        StatusCode::OK,
        &resp("text/html; charset=utf-8")
    ));
    assert!(should_inject(
        &get,
        &none,
        StatusCode::OK,
        &resp("application/xhtml+xml")
    ));
    assert!(should_inject(
        &get,
        &none,
        StatusCode::NOT_FOUND,
        &resp("text/html")
    ));
    assert!(should_inject(
        &get,
        &none,
        StatusCode::INTERNAL_SERVER_ERROR,
        &resp("TEXT/HTML")
    ));
    assert!(!should_inject(
        &Method::HEAD,
        &none,
        StatusCode::OK,
        &resp("text/html")
    ));
    for s in [
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
        StatusCode::PARTIAL_CONTENT,
    ] {
        assert!(!should_inject(&get, &none, s, &resp("text/html")), "{s}");
    }
    for ct in [
        "application/json",
        "text/plain",
        "text/css",
        "image/svg+xml",
    ] {
        assert!(
            !should_inject(&get, &none, StatusCode::OK, &resp(ct)),
            "{ct}"
        );
    }
    let mut attach = resp("text/html");
    attach.insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"a.html\""),
    );
    assert!(!should_inject(&get, &none, StatusCode::OK, &attach));
    let mut ranged = resp("text/html");
    ranged.insert("content-range", HeaderValue::from_static("bytes 0-9/100"));
    assert!(!should_inject(&get, &none, StatusCode::OK, &ranged));
    for (dest, yes) in [
        ("document", true),
        ("iframe", true),
        ("empty", false),
        ("script", false),
        ("style", false),
        ("image", false),
    ] {
        let mut req = HeaderMap::new();
        req.insert("sec-fetch-dest", HeaderValue::from_static(dest));
        assert_eq!(
            should_inject(&get, &req, StatusCode::OK, &resp("text/html")),
            yes,
            "{dest}"
        );
    }
}

#[test]
fn prepare_reframes_the_body_and_admits_the_banner_in_csp() {
    let mut h = resp("text/html");
    h.insert("content-length", HeaderValue::from_static("100"));
    h.insert("content-encoding", HeaderValue::from_static("gzip"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; form-action 'none'"),
    );
    prepare(&info(), &mut h, "https://panel.example").unwrap();
    assert!(h.get("content-length").is_none());
    assert!(h.get("content-encoding").is_none());
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains(style_hash_source()), "{csp}");
    assert!(
        csp.contains("form-action https://panel.example/_actas/impersonate/stop"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let mut utf16 = resp("text/html; charset=utf-16le");
    assert!(prepare(&info(), &mut utf16, "https://p").is_err());
}

#[test]
fn prepare_announces_the_length_of_an_uncompressed_page_it_was_given() {
    for (ct, syntax) in [
        ("text/html", Syntax::Html),
        ("application/xhtml+xml", Syntax::Xhtml),
    ] {
        let mut h = resp(ct);
        h.insert("content-length", HeaderValue::from_static("100"));
        prepare(&info(), &mut h, "https://p").unwrap();
        let want = (100 + render_for(&info(), "https://p", syntax).len()).to_string();
        assert_eq!(h.get("content-length").unwrap(), want.as_str(), "{ct}");
    }
    // A chunked upstream body, or an empty one, gets no length to keep.
    for (k, v) in [("transfer-encoding", "chunked"), ("content-length", "0")] {
        let mut h = resp("text/html");
        h.insert("content-length", HeaderValue::from_static("100"));
        h.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
        prepare(&info(), &mut h, "https://p").unwrap();
        assert!(h.get("content-length").is_none(), "{k}: {v}");
    }
}

#[test]
fn prepare_reads_and_changes_only_the_headers_it_declares() {
    let mut full = resp("text/html; charset=utf-8");
    for (k, v) in [
        ("content-length", "100"),
        ("content-encoding", "gzip"),
        ("etag", "\"abc\""),
        ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
        ("vary", "Cookie"),
        (
            "content-security-policy",
            "default-src 'self'; form-action 'none'",
        ),
        ("content-security-policy-report-only", "style-src 'none'"),
        ("set-cookie", "a=1"),
        ("cache-control", "no-store"),
        ("content-language", "en"),
        ("x-frame-options", "DENY"),
        ("link", "</s.css>; rel=preload"),
        ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        full.append(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    // Every other header, by name (a map's iteration order may change with removals).
    let rest = |h: &HeaderMap| {
        let mut v: Vec<(String, HeaderValue)> = h
            .iter()
            .filter(|(k, _)| !PREPARED_HEADERS.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let others = rest(&full);
    let mut subset = HeaderMap::new();
    for name in &PREPARED_HEADERS {
        for v in full.get_all(name) {
            subset.append(name.clone(), v.clone());
        }
    }
    prepare(&info(), &mut full, "https://p").unwrap();
    prepare(&info(), &mut subset, "https://p").unwrap();
    for name in &PREPARED_HEADERS {
        let a: Vec<_> = full.get_all(name).iter().collect();
        let b: Vec<_> = subset.get_all(name).iter().collect();
        assert_eq!(
            a, b,
            "{name}: prepare on the declared headers alone gives the same"
        );
    }
    assert_eq!(rest(&full), others, "every other header is left as it was");
    assert_eq!(subset.len(), full.len() - others.len());
}

#[test]
fn a_large_page_streams_with_bounded_output_per_chunk() {
    // 20 MB in 64 KiB chunks: every chunk comes back at once (nothing held back past the
    // banner), and the total is the input plus the banner.
    let mut inj = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
    let head = b"<html><body>".to_vec();
    let filler = vec![b'x'; 64 * 1024];
    let mut total = inj.write(&head).unwrap().len();
    for _ in 0..320 {
        let out = inj.write(&filler).unwrap();
        assert_eq!(out.len(), filler.len(), "passed straight through");
        total += out.len();
    }
    total += inj.finish().unwrap().len();
    assert_eq!(total, head.len() + 320 * filler.len() + banner().len());
}

#[test]
fn one_large_chunk_is_rewritten_whole_wherever_its_body_opens() {
    // The rewriter reads a chunk in slices and copies what follows the banner: the output
    // must be the same whether <body> opens in the first slice, a later one, or straddles two.
    for at in [0, 100, 2047, 2045, 5000, 9000] {
        let mut doc = b"<html><head><title>t</title></head>".to_vec();
        doc.extend(std::iter::repeat_n(b' ', at));
        doc.extend_from_slice(b"<body class=x>");
        doc.extend(std::iter::repeat_n(b"<p>para</p><body>".as_slice(), 2000).flatten());
        doc.extend_from_slice(b"</body></html>");
        let mut inj = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
        let mut out = inj.write(&doc).unwrap().to_vec();
        out.extend_from_slice(&inj.finish().unwrap());
        let open = doc
            .windows(14)
            .position(|w| w == b"<body class=x>")
            .unwrap()
            + 14;
        let mut want = doc[..open].to_vec();
        want.extend_from_slice(banner().as_bytes());
        want.extend_from_slice(&doc[open..]);
        assert_eq!(out, want, "<body> at {at}");
    }
}

#[test]
fn a_huge_unfinished_tag_before_body_passes_through_untouched() {
    // A `<body>` tag larger than lol_html's memory cap: the rewriter gives up and the
    // document goes through as it came, without a banner.
    let mut doc = b"<html><head></head><body data-x=\"".to_vec();
    doc.extend(std::iter::repeat_n(b'a', 3 << 20));
    doc.extend_from_slice(b"\">x</body></html>");
    let (out, injected) = run(&doc, ContentEncoding::Identity, 64 * 1024);
    assert!(!injected);
    assert!(out == doc);
    // Any other huge tag is scanned past without being kept, and the banner still goes in.
    let mut doc = b"<html><head><meta content=\"".to_vec();
    doc.extend(std::iter::repeat_n(b'a', 3 << 20));
    doc.extend_from_slice(b"\"></head><body>x</body></html>");
    let (out, injected) = run(&doc, ContentEncoding::Identity, 64 * 1024);
    assert!(injected);
    assert!(strip(&out, &banner()) == doc);
}

fn html_ish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("<body>".to_owned()),
        Just("<BODY class=x>".to_owned()),
        Just("</body>".to_owned()),
        Just("<html>".to_owned()),
        Just("<head>".to_owned()),
        Just("<frameset>".to_owned()),
        Just("<script>\"</body><body>\"</script>".to_owned()),
        Just("<!-- <body> -->".to_owned()),
        Just("<![CDATA[<body>]]>".to_owned()),
        Just("<svg><body/></svg>".to_owned()),
        Just("<textarea><body></textarea>".to_owned()),
        Just("<p a='<body>'>".to_owned()),
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("&amp;".to_owned()),
        "[a-z <>/=\"']{0,12}",
    ];
    prop::collection::vec(atom, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn removing_the_banner_gives_back_the_input_for_any_html(doc in html_ish(), chunk in 1usize..40) {
        let (out, injected) = run(doc.as_bytes(), ContentEncoding::Identity, chunk);
        prop_assert!(out.windows(banner().len()).filter(|w| *w == banner().as_bytes()).count() <= 1);
        prop_assert_eq!(injected, out.len() > doc.len());
        prop_assert_eq!(strip(&out, &banner()), doc.as_bytes());
    }

    #[test]
    fn removing_the_banner_gives_back_the_input_for_any_bytes(doc in prop::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let (out, _) = run(&doc, ContentEncoding::Identity, chunk);
        prop_assert_eq!(strip(&out, &banner()), doc);
    }
}

#[test]
fn chunks_after_the_banner_are_passed_on_without_a_copy() {
    let mut inj = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
    let head =
        Bytes::from_static(b"<!doctype html><html><head><title>t</title></head><body><p>one");
    let first = inj.write_shared(&head).unwrap();
    assert!(inj.injected());
    let later = Bytes::from(vec![b'x'; 4096]);
    let out = inj.write_shared(&later).unwrap();
    assert_eq!(out, later);
    assert_eq!(out.as_ptr(), later.as_ptr(), "the same memory, not a copy");
    let tail = inj.finish().unwrap();
    let whole = [&first[..], &out[..], &tail[..]].concat();
    let text = String::from_utf8(whole).unwrap();
    assert!(text.starts_with("<!doctype html><html><head><title>t</title></head><body>"));
    assert_eq!(text.matches("Stop impersonating").count(), 1, "{text}");
    assert!(text.ends_with(&"x".repeat(4096)));
}

#[test]
fn chunks_before_the_body_tag_are_still_rewritten() {
    let mut inj = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
    let mut out = Vec::new();
    // A head much longer than one parse slice, split across chunks, then the body.
    let head = format!(
        "<html><head>{}</head>",
        "<meta name=a content=b>".repeat(200)
    );
    for part in [head.as_bytes(), b"<bo", b"dy class=x>text</body></html>"] {
        out.extend_from_slice(&inj.write_shared(&Bytes::copy_from_slice(part)).unwrap());
    }
    out.extend_from_slice(&inj.finish().unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(inj.injected());
    let body_at = text.find("<body class=x>").expect("body kept");
    let banner_at = text.find("Stop impersonating").expect("banner in");
    assert!(banner_at > body_at, "the banner goes inside <body>");
    assert!(text.starts_with(&head));
}

/// Streams `doc` after announcing its length: (output, announced length, injected).
fn run_fixed(doc: &[u8], h: &HeaderMap, xhtml: bool, chunk: usize) -> (Vec<u8>, u64, bool) {
    let cs = inject::charset(h).unwrap();
    let mut inj = Injector::new(banner(), ContentEncoding::Identity, cs, xhtml).unwrap();
    let total = inj
        .fixed_length(doc.len() as u64)
        .expect("an uncompressed document has a length");
    let mut out = Vec::new();
    for c in doc.chunks(chunk.max(1)) {
        out.extend_from_slice(&inj.write_shared(&Bytes::copy_from_slice(c)).unwrap());
    }
    out.extend_from_slice(&inj.finish().unwrap());
    (out, total, inj.injected())
}

/// What a document without a banner must come out as: itself, padded with spaces.
fn padded(doc: &[u8]) -> Vec<u8> {
    let mut want = doc.to_vec();
    want.resize(doc.len() + banner().len(), b' ');
    want
}

#[test]
fn an_uncompressed_document_comes_out_at_exactly_the_announced_length() {
    let latin1 = {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("text/html; charset=windows-1252"),
        );
        h
    };
    // lol_html keeps a whole tag only when a selector matches it (`body`), so a huge
    // `<body>` tag passes its memory cap; a huge tag it only scans past does not.
    let mut huge_tag = b"<html><head></head><body data-x=\"".to_vec();
    huge_tag.extend(std::iter::repeat_n(b'a', 3 << 20));
    huge_tag.extend_from_slice(b"\">x</body></html>");
    let mut huge_meta = b"<html><head><meta content=\"".to_vec();
    huge_meta.extend(std::iter::repeat_n(b'a', 3 << 20));
    huge_meta.extend_from_slice(b"\"></head><body>x</body></html>");
    let plain = HeaderMap::new();
    let cases: Vec<(&str, Vec<u8>, &HeaderMap, bool, bool)> = vec![
        (
            "body",
            b"<html><head></head><body><p>x</p></body></html>".to_vec(),
            &plain,
            false,
            true,
        ),
        (
            "no body tag",
            b"<p>only a fragment</p>".to_vec(),
            &plain,
            false,
            true,
        ),
        (
            "windows-1252",
            b"<html><head><meta charset=\"windows-1252\"></head><body>caf\xe9</body></html>"
                .to_vec(),
            &latin1,
            false,
            true,
        ),
        (
            "frameset",
            b"<html><frameset><frame src=\"a\"></frameset></html>".to_vec(),
            &plain,
            false,
            false,
        ),
        (
            "xhtml without body",
            b"<html xmlns=\"http://www.w3.org/1999/xhtml\"><head/></html>".to_vec(),
            &plain,
            true,
            false,
        ),
        (
            "a tag past lol_html's memory cap",
            huge_tag,
            &plain,
            false,
            false,
        ),
        ("a huge tag before body", huge_meta, &plain, false, true),
    ];
    for (label, doc, h, xhtml, gets_banner) in cases {
        for chunk in [1, 7, 512, 64 * 1024, doc.len()] {
            if chunk == 1 && doc.len() > 4096 {
                continue;
            }
            let (out, total, injected) = run_fixed(&doc, h, xhtml, chunk);
            assert_eq!(total, (doc.len() + banner().len()) as u64, "{label}");
            assert_eq!(out.len() as u64, total, "{label}, chunks of {chunk}");
            assert_eq!(injected, gets_banner, "{label}");
            if injected {
                assert_eq!(strip(&out, &banner()), doc, "{label}, chunks of {chunk}");
            } else {
                assert!(out == padded(&doc), "{label}: the document, then spaces");
            }
        }
    }
}

#[test]
fn a_compressed_document_or_one_already_started_has_no_fixed_length() {
    let mut gz = Injector::new(banner(), ContentEncoding::Gzip, None, false).unwrap();
    assert_eq!(gz.fixed_length(100), None);
    let mut started = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
    started.write(b"<html><body>x").unwrap();
    assert_eq!(started.fixed_length(100), None);
    let mut once = Injector::new(banner(), ContentEncoding::Identity, None, false).unwrap();
    assert!(once.fixed_length(100).is_some());
    assert_eq!(once.fixed_length(100), None, "announced once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_document_comes_out_at_exactly_the_announced_length(doc in html_ish(), chunk in 1usize..40) {
        let (out, total, injected) = run_fixed(doc.as_bytes(), &HeaderMap::new(), false, chunk);
        prop_assert_eq!(out.len() as u64, total);
        if injected {
            prop_assert_eq!(strip(&out, &banner()), doc.as_bytes());
        } else {
            prop_assert_eq!(out, padded(doc.as_bytes()));
        }
    }

    #[test]
    fn any_bytes_come_out_at_exactly_the_announced_length(doc in prop::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let (out, total, injected) = run_fixed(&doc, &HeaderMap::new(), false, chunk);
        prop_assert_eq!(out.len() as u64, total);
        if injected {
            prop_assert_eq!(strip(&out, &banner()), doc);
        } else {
            prop_assert_eq!(out, padded(&doc));
        }
    }
}

#[test]
fn a_rendered_banner_is_reused_only_while_its_markup_would_not_change() {
    let first = rendered(&info(), ORIGIN, Syntax::Html);
    assert_eq!(&*first, render_for(&info(), ORIGIN, Syntax::Html));
    // The same session a few seconds later, within the same minute left: the same markup.
    let mut soon = info();
    soon.now += 5;
    assert_eq!(minutes_left(&soon), minutes_left(&info()));
    assert!(Arc::ptr_eq(&first, &rendered(&soon, ORIGIN, Syntax::Html)));
    // Anything the banner shows, changed, renders anew and exactly.
    let mut changes: Vec<BannerInfo> = Vec::new();
    let mut later = info();
    later.now += 60;
    changes.push(later);
    for edit in [
        (|i: &mut BannerInfo| i.csrf_token = "other") as fn(&mut BannerInfo),
        |i| i.subject = "cora",
        |i| i.subject_role = "reseller",
        |i| i.actor = "rita",
        |i| i.actor_role = "reseller",
        |i| i.started_at += 60,
        |i| i.expires_at += 60,
    ] {
        let mut i = info();
        edit(&mut i);
        changes.push(i);
    }
    for changed in &changes {
        let markup = rendered(changed, ORIGIN, Syntax::Html);
        assert!(!Arc::ptr_eq(&first, &markup), "{changed:?}");
        assert_eq!(
            &*markup,
            render_for(changed, ORIGIN, Syntax::Html),
            "{changed:?}"
        );
        assert_ne!(&*markup, &*first, "{changed:?}");
    }
    // More sessions than the thread keeps: every answer is still exactly the rendering.
    for n in 0..3 * RECENT_BANNERS {
        let token = format!("tok{}", n % (RECENT_BANNERS + 3));
        let mut i = info();
        i.csrf_token = &token;
        assert_eq!(
            &*rendered(&i, ORIGIN, Syntax::Html),
            render_for(&i, ORIGIN, Syntax::Html)
        );
    }
}

#[test]
fn a_rendered_banner_is_never_reused_for_another_origin_or_syntax() {
    // The same session and minute, in turn for pages of two origins and both syntaxes:
    // each gets exactly its own rendering, however the requests interleave.
    let other = "http://other.example:8080";
    for round in 0..3 {
        for origin in [ORIGIN, other] {
            for syntax in [Syntax::Html, Syntax::Xhtml] {
                let markup = rendered(&info(), origin, syntax);
                assert_eq!(
                    &*markup,
                    render_for(&info(), origin, syntax),
                    "round {round}, {origin}, {syntax:?}"
                );
                assert!(markup.contains(&format!("action=\"{origin}/_actas/impersonate/stop\"")));
                assert_eq!(
                    markup.contains("<template"),
                    syntax == Syntax::Html,
                    "{syntax:?}"
                );
            }
        }
    }
    // Through `prepare`, by the page's Content-Type: an XHTML page never gets the HTML
    // banner cached for the same session, nor the other way round.
    for ct in ["text/html", "application/xhtml+xml", "text/html"] {
        let syntax = if ct == "text/html" {
            Syntax::Html
        } else {
            Syntax::Xhtml
        };
        let mut h = resp(ct);
        let mut inj = prepare(&info(), &mut h, ORIGIN).unwrap();
        let out = through(&mut inj, b"<html><body>x</body></html>");
        let want = format!(
            "<html><body>{}x</body></html>",
            render_for(&info(), ORIGIN, syntax)
        );
        assert_eq!(String::from_utf8(out).unwrap(), want, "{ct}");
    }
}

#[test]
fn the_console_banner_posts_to_the_stop_path_of_its_own_origin() {
    assert_eq!(render(&info()), render_for(&info(), "", Syntax::Html));
    assert!(render(&info()).contains("action=\"/_actas/impersonate/stop\""));
}

/// Streams `doc` whole through `inj`: everything that comes out.
fn through(inj: &mut Injector, doc: &[u8]) -> Vec<u8> {
    let mut out = inj.write(doc).unwrap().to_vec();
    out.extend_from_slice(&inj.finish().unwrap());
    out
}

/// Whether `doc` is a well-formed XML document, as far as the documents and banners of
/// these tests go: one root element, every tag closed in order, every attribute quoted and
/// unique, every `&` a reference to a character XML allows, no `<` in attribute values and
/// no `]]>` in text. Declarations, comments and CDATA are skipped over.
fn xml_well_formed(doc: &str) -> Result<(), String> {
    fn reference(rest: &str) -> Result<usize, String> {
        let end = rest
            .find(';')
            .ok_or_else(|| format!("unterminated `{rest:.12}`"))?;
        let name = &rest[1..end];
        let code = if let Some(hex) = name.strip_prefix("#x") {
            u32::from_str_radix(hex, 16).ok()
        } else if let Some(dec) = name.strip_prefix('#') {
            dec.parse::<u32>().ok()
        } else if ["amp", "lt", "gt", "quot", "apos"].contains(&name) {
            Some(u32::from(b' '))
        } else {
            return Err(format!("undeclared entity `&{name};`"));
        };
        let is_char = |c: u32| matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        match code {
            Some(c) if is_char(c) => Ok(end + 1),
            _ => Err(format!("`&{name};` is not an XML character")),
        }
    }
    fn text(t: &str) -> Result<(), String> {
        if t.contains("]]>") {
            return Err("`]]>` in text".into());
        }
        let mut at = 0;
        while let Some(i) = t[at..].find('&') {
            at += i + reference(&t[at + i..])?;
        }
        Ok(())
    }
    let name_end = |s: &str| {
        s.find(|c: char| c.is_whitespace() || c == '/' || c == '>' || c == '=')
            .unwrap_or(s.len())
    };
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = doc;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let (t, tail) = rest.split_at(lt);
        text(t)?;
        if open.is_empty() && !t.trim().is_empty() {
            return Err(format!("text outside the root element: `{t:.20}`"));
        }
        rest = tail;
        if rest.is_empty() {
            break;
        }
        let skip = [
            ("<?", "?>"),
            ("<!--", "-->"),
            ("<![CDATA[", "]]>"),
            ("<!", ">"),
        ]
        .into_iter()
        .find(|(open, _)| rest.starts_with(open));
        if let Some((_, close)) = skip {
            let end = rest.find(close).ok_or("unterminated declaration")?;
            rest = &rest[end + close.len()..];
            continue;
        }
        if let Some(tag) = rest.strip_prefix("</") {
            let n = name_end(tag);
            let want = open.pop().ok_or("a close tag without an open one")?;
            if &tag[..n] != want {
                return Err(format!("`</{}>` closes `<{want}>`", &tag[..n]));
            }
            let end = tag.find('>').ok_or("unterminated close tag")?;
            if !tag[n..end].trim().is_empty() {
                return Err("junk in a close tag".into());
            }
            rest = &tag[end + 1..];
            continue;
        }
        let mut tag = &rest[1..];
        let n = name_end(tag);
        let name = &tag[..n];
        if name.is_empty() {
            return Err("a `<` that opens no tag".into());
        }
        tag = &tag[n..];
        let mut seen: Vec<&str> = Vec::new();
        let empty = loop {
            tag = tag.trim_start();
            if let Some(t) = tag.strip_prefix("/>") {
                tag = t;
                break true;
            }
            if let Some(t) = tag.strip_prefix('>') {
                tag = t;
                break false;
            }
            let n = name_end(tag);
            let attr = &tag[..n];
            if attr.is_empty() || seen.contains(&attr) {
                return Err(format!(
                    "bad or repeated attribute in `<{name}`: `{tag:.30}`"
                ));
            }
            seen.push(attr);
            let t = tag[n..]
                .trim_start()
                .strip_prefix('=')
                .ok_or_else(|| format!("attribute `{attr}` of `<{name}>` has no value"))?;
            let t = t.trim_start();
            let quote = t
                .chars()
                .next()
                .filter(|q| *q == '"' || *q == '\'')
                .ok_or_else(|| format!("attribute `{attr}` of `<{name}>` is not quoted"))?;
            let end = t[1..].find(quote).ok_or("unterminated attribute value")? + 1;
            let value = &t[1..end];
            if value.contains('<') {
                return Err(format!("`<` in attribute `{attr}`"));
            }
            text(value)?;
            tag = &t[end + 1..];
        };
        if open.is_empty() {
            roots += 1;
        }
        if !empty {
            open.push(name);
        }
        rest = tag;
    }
    match (roots, open.last()) {
        (1, None) => Ok(()),
        (_, Some(unclosed)) => Err(format!("`<{unclosed}>` is never closed")),
        (n, None) => Err(format!("{n} root elements")),
    }
}

#[test]
fn the_well_formedness_check_finds_what_xml_parsers_refuse() {
    assert_eq!(
        xml_well_formed(
            "<?xml version=\"1.0\"?><!DOCTYPE html><a x='1' y=\"&amp;&#xe9;\"><b/><!-- c --></a>"
        ),
        Ok(())
    );
    for bad in [
        "<a><input type=\"hidden\"></a>",
        "<a><b></a></b>",
        "<a x=1></a>",
        "<a x=\"1\" x=\"2\"></a>",
        "<a>&nbsp;</a>",
        "<a>&#xffff;</a>",
        "<a>&</a>",
        "<a></a><b></b>",
        "<a>",
    ] {
        assert!(xml_well_formed(bad).is_err(), "{bad}");
    }
}

const XHTML_PAGE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><title>t</title></head><body class=\"page\"><p>hi &amp; bye</p><br/></body></html>\n";

#[test]
fn an_xhtml_page_comes_out_well_formed_with_a_banner_outside_any_template() {
    // Whatever the session's names hold, the page stays XML a browser will display.
    let mut odd = info();
    odd.subject = "<carl> & \"co\" \u{1}\u{ffff}\u{fffe}\u{85} zo\u{eb}";
    odd.csrf_token = "t<o>k&\"'";
    for facts in [info(), odd] {
        let mut h = resp("application/xhtml+xml; charset=utf-8");
        h.insert("content-length", HeaderValue::from(XHTML_PAGE.len()));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'self'"),
        );
        let mut inj = prepare(&facts, &mut h, "https://panel.example").unwrap();
        let out = String::from_utf8(through(&mut inj, XHTML_PAGE.as_bytes())).unwrap();
        assert!(inj.injected());
        assert_eq!(
            h.get("content-length").unwrap(),
            out.len().to_string().as_str()
        );
        assert_eq!(xml_well_formed(&out), Ok(()), "{out}");
        // A declarative shadow root is an HTML parser feature: in XML it stays inert.
        assert!(!out.contains("<template"), "{out}");
        assert!(!out.contains("shadowroot"), "{out}");
        // The banner, inside <body>, with its Stop form and the session's token.
        let body = out.find("<body class=\"page\">").unwrap() + "<body class=\"page\">".len();
        assert!(out[body..].starts_with("<actas-banner"), "{out}");
        assert!(out.contains("Stop impersonating"));
        assert!(out.contains("<form method=\"post\" action=\""));
        let token = format!("name=\"csrf_token\" value=\"{}\"", escape(facts.csrf_token));
        assert!(out.contains(&token), "{out}");
        assert!(
            out.contains("</p><br/></body></html>\n"),
            "the page is kept"
        );
        // Its stylesheet is the one the page's policy admits.
        let style = &out[out.find("<style>").unwrap() + 7..out.find("</style>").unwrap()];
        let digest =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains(&format!("'sha256-{digest}'")), "{csp}");
    }
}

#[test]
fn the_html_banner_is_well_formed_markup_too() {
    let mut odd = info();
    odd.actor = "<ada> & \"co\" \u{ffff}";
    for facts in [info(), odd] {
        let b = render(&facts);
        assert_eq!(xml_well_formed(&b), Ok(()), "{b}");
        assert!(b.contains("<template shadowrootmode=\"open\">"), "{b}");
    }
}

#[test]
fn the_stop_form_posts_to_the_origin_the_page_came_from_whatever_its_base() {
    let page = b"<html><head><base href=\"https://other.example/\"></head><body>x</body></html>";
    for (origin, action) in [
        (
            "https://panel.example",
            "https://panel.example/_actas/impersonate/stop",
        ),
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/_actas/impersonate/stop",
        ),
        (
            "https://a\"b<c>.example",
            "https://a&quot;b&lt;c&gt;.example/_actas/impersonate/stop",
        ),
    ] {
        let mut h = resp("text/html");
        let mut inj = prepare(&info(), &mut h, origin).unwrap();
        let out = String::from_utf8(through(&mut inj, page)).unwrap();
        assert!(
            out.contains(&format!("<form method=\"post\" action=\"{action}\">")),
            "{out}"
        );
        assert!(!out.contains("action=\"/_actas"), "{out}");
    }
}

/// `doc` gzipped as two members, split where `at` says.
fn two_gzip_members(doc: &[u8], at: usize) -> Vec<u8> {
    let mut both = compress(ContentEncoding::Gzip, &doc[..at]);
    both.extend(compress(ContentEncoding::Gzip, &doc[at..]));
    both
}

#[test]
fn a_gzip_body_of_several_members_is_decoded_whole() {
    let doc = format!("<html><body>{}</body></html>", "lorem ipsum ".repeat(2000));
    // The second member starts before the body, inside it, and in the last bytes.
    for at in [3, 20, doc.len() / 2, doc.len() - 1] {
        let gz = two_gzip_members(doc.as_bytes(), at);
        for chunk in [1, 999, gz.len()] {
            let (out, injected) = run(&gz, ContentEncoding::Gzip, chunk);
            assert!(injected, "split at {at}, chunks of {chunk}");
            assert_eq!(
                strip(&out, &banner()),
                doc.as_bytes(),
                "split at {at}, chunks of {chunk}"
            );
        }
    }
    // Three members, the middle one empty.
    let mut three = compress(ContentEncoding::Gzip, &doc.as_bytes()[..100]);
    three.extend(compress(ContentEncoding::Gzip, b""));
    three.extend(compress(ContentEncoding::Gzip, &doc.as_bytes()[100..]));
    let (out, _) = run(&three, ContentEncoding::Gzip, 64);
    assert_eq!(strip(&out, &banner()), doc.as_bytes());
}

#[test]
fn a_corrupt_gzip_member_is_still_an_error() {
    let doc = b"<html><body>x</body></html>";
    let mut gz = two_gzip_members(doc, 10);
    let last = gz.len() - 5;
    gz[last] ^= 0xFF; // the second member's checksum
    assert!(fails(&gz, ContentEncoding::Gzip));
}

#[test]
fn bytes_after_the_last_gzip_member_are_ignored() {
    let doc = format!("<html><body>{}</body></html>", "lorem ipsum ".repeat(500));
    for (label, gz) in [
        (
            "one member",
            compress(ContentEncoding::Gzip, doc.as_bytes()),
        ),
        ("two members", two_gzip_members(doc.as_bytes(), 40)),
    ] {
        // Padding some servers add, a stray newline, and bytes that start like a member
        // but are not one (a lone 0x1f, then anything but 0x8b).
        let trailers = [&b"\0"[..], b"\r\n", &[0u8; 4096], b"\x1f", b"\x1fx garbage"];
        assert_trailers_are_dropped(label, &gz, ContentEncoding::Gzip, &trailers, &doc);
    }
    // A member cut short is still an error, and so is a second member that is corrupt.
    let gz = compress(ContentEncoding::Gzip, doc.as_bytes());
    assert!(
        fails(&gz[..gz.len() - 3], ContentEncoding::Gzip),
        "a cut member"
    );
    let mut body = gz.clone();
    body.extend_from_slice(&[0x1f, 0x8b, 0, 0, 0]);
    assert!(
        fails(&body, ContentEncoding::Gzip),
        "a second member that is not one"
    );
}

/// Each of `trailers` after the compressed `stream` of `doc`, fed in chunks of 1 byte up to
/// the whole body, leaves the document with its banner and nothing more.
fn assert_trailers_are_dropped(
    label: &str,
    stream: &[u8],
    encoding: ContentEncoding,
    trailers: &[&[u8]],
    doc: &str,
) {
    for trailer in trailers {
        let mut body = stream.to_vec();
        body.extend_from_slice(trailer);
        for chunk in [1, 7, 999, body.len()] {
            let (out, injected) = run(&body, encoding, chunk);
            assert!(injected, "{label}, chunks of {chunk}");
            assert_eq!(
                strip(&out, &banner()),
                doc.as_bytes(),
                "{label} + {:?}, chunks of {chunk}",
                &trailer[..trailer.len().min(4)]
            );
        }
    }
}

/// Whether the injector refuses `body` (while writing it, or at its end).
fn fails(body: &[u8], encoding: ContentEncoding) -> bool {
    let mut inj = Injector::new(banner(), encoding, None, false).unwrap();
    inj.write(body).is_err() || inj.finish().is_err()
}

#[test]
fn bytes_after_the_end_of_a_deflate_stream_are_ignored() {
    let doc = format!("<html><body>{}</body></html>", "lorem ipsum ".repeat(500));
    let zlib = compress(ContentEncoding::Deflate, doc.as_bytes());
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(doc.as_bytes()).unwrap();
    let raw = e.finish().unwrap();
    for (label, stream) in [("zlib", zlib), ("raw deflate", raw)] {
        let trailers = [&b"\0"[..], b"\r\n", b"garbage after the end", &[0u8; 4096]];
        assert_trailers_are_dropped(label, &stream, ContentEncoding::Deflate, &trailers, &doc);
        // A stream cut short is still an error.
        assert!(
            fails(&stream[..stream.len() / 2], ContentEncoding::Deflate),
            "{label}"
        );
    }
}
