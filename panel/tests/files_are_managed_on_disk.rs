//! Files: the file manager works on the real disk under the account's root — list,
//! create a folder, upload, view (escaped), edit and save, rename, delete (folders
//! recursively) — answering each change with 303 to the folder, and refusing bad
//! names, clashes and missing files with clear errors.

mod common;

use actas_panel::pages::files::{EDIT_BODY_LIMIT_BYTES, TEXT_LIMIT_BYTES, UPLOAD_FILES_MAX};
use axum::http::StatusCode;
use common::{encode, read, Panel, Part, Reply, Who};

async fn provisioned(panel: &Panel) -> Who {
    let carl = Who::customer("carl");
    panel.get(&carl, "/").await;
    carl
}

/// Sends the editor's form: `content` saved to `path`.
async fn save(panel: &Panel, who: &Who, path: &str, content: &str) -> Reply {
    panel
        .post(who, "/files/edit", &[("path", path), ("content", content)])
        .await
}

#[tokio::test]
async fn the_root_lists_the_starting_files() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let reply = panel.get(&carl, "/files").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("href=\"/files?path=public_html\""), "{text}");
    assert!(
        text.contains("href=\"/files/view?path=README.txt\""),
        "{text}"
    );
    assert!(text.contains("href=\"/files/download?path=README.txt\""));

    let text = panel.get(&carl, "/files?path=public_html").await.text();
    assert!(
        text.contains("href=\"/files/view?path=public_html/index.html\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_folder_is_created_and_a_file_uploaded_into_it() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let reply = panel
        .post(
            &carl,
            "/files/mkdir",
            &[("path", "public_html"), ("name", "images")],
        )
        .await;
    reply.assert_redirect("/files?path=public_html&notice=");
    assert!(panel.files_of("carl").join("public_html/images").is_dir());

    let reply = panel
        .upload(
            &carl,
            &[
                Part::Text("path", "public_html/images"),
                Part::File("file", "logo.svg", b"<svg/>"),
            ],
        )
        .await;
    reply.assert_redirect("/files?path=public_html/images&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "public_html/images/logo.svg").as_deref(),
        Some(&b"<svg/>"[..])
    );

    let listing = panel
        .get(&carl, "/files?path=public_html/images")
        .await
        .text();
    assert!(listing.contains("logo.svg"));
    // No scratch file is left behind.
    let names: Vec<_> = std::fs::read_dir(panel.files_of("carl").join("public_html/images"))
        .expect("dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[tokio::test]
async fn an_upload_replaces_a_file_of_the_same_name() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    panel
        .upload(
            &carl,
            &[
                Part::Text("path", ""),
                Part::File("file", "README.txt", b"new"),
            ],
        )
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "README.txt").as_deref(),
        Some(&b"new"[..])
    );
}

#[tokio::test]
async fn an_upload_beyond_the_default_form_limit_is_accepted() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    panel
        .upload(
            &carl,
            &[Part::Text("path", ""), Part::File("file", "big.bin", &big)],
        )
        .await
        .assert_redirect("/files");
    assert_eq!(read(&panel.files_of("carl"), "big.bin"), Some(big));
}

#[tokio::test]
async fn an_upload_must_name_its_folder_first_and_carry_a_file() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let reply = panel
        .upload(
            &carl,
            &[Part::File("file", "x.txt", b"x"), Part::Text("path", "")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("before the file"));

    let reply = panel
        .upload(
            &carl,
            &[Part::Text("path", ""), Part::File("file", "", b"")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("Choose a file"));

    let reply = panel
        .upload(
            &carl,
            &[
                Part::Text("path", "no-such-folder"),
                Part::File("file", "x.txt", b"x"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(!panel.files_of("carl").join("x.txt").exists());
}

#[tokio::test]
async fn an_upload_of_more_files_than_the_limit_is_refused_whole() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let names: Vec<String> = (0..=UPLOAD_FILES_MAX)
        .map(|i| format!("f{i}.txt"))
        .collect();
    let mut parts = vec![Part::Text("path", "public_html")];
    parts.extend(names.iter().map(|name| Part::File("file", name, b"x")));
    let reply = panel.upload(&carl, &parts).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let text = reply.text();
    assert!(
        text.contains(&format!("at most {UPLOAD_FILES_MAX} files")),
        "{text}"
    );
    assert!(text.contains("Nothing was uploaded"), "{text}");
    assert_eq!(
        common::names_in(&panel.files_of("carl").join("public_html")),
        ["index.html"],
        "nothing written, no scratch left"
    );

    // The limit itself is accepted.
    parts.pop();
    panel
        .upload(&carl, &parts)
        .await
        .assert_redirect("/files?path=public_html&notice=");
    assert_eq!(
        common::names_in(&panel.files_of("carl").join("public_html")).len(),
        UPLOAD_FILES_MAX + 1
    );
}

#[tokio::test]
async fn a_text_file_is_viewed_escaped_and_edited() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let reply = panel
        .get(&carl, "/files/view?path=public_html/index.html")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .text()
            .contains("&lt;h1&gt;Welcome to carl&#39;s site&lt;/h1&gt;")
            || reply
                .text()
                .contains("&lt;h1&gt;Welcome to carl's site&lt;/h1&gt;")
    );
    assert!(!reply.text().contains("<h1>Welcome"));

    let form = panel
        .get(&carl, "/files/edit?path=public_html/index.html")
        .await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains("<textarea name=\"content\""));
    assert!(form
        .text()
        .contains("name=\"path\" value=\"public_html/index.html\""));

    let reply = save(
        &panel,
        &carl,
        "public_html/index.html",
        "<p>new</p>\r\nline two\r\n",
    )
    .await;
    reply.assert_redirect("/files?path=public_html&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "public_html/index.html").as_deref(),
        Some(&b"<p>new</p>\nline two\n"[..]),
        "browser CRLF becomes LF for an LF file"
    );
}

/// What a browser submits for the editor's textarea, unchanged: its raw text with the
/// one line feed right after the start tag dropped, as the HTML parser does.
fn textarea_as_submitted(page: &str) -> String {
    element_text_as_parsed(page, "textarea")
}

/// The raw text of the first `<tag>` (`textarea` or `pre`) as the HTML parser reads it:
/// one line feed right after the start tag is dropped.
fn element_text_as_parsed(page: &str, tag: &str) -> String {
    let open = page.find(&format!("<{tag}")).expect("the element");
    let start = open + page[open..].find('>').expect("end of the start tag") + 1;
    let end = start
        + page[start..]
            .find(&format!("</{tag}>"))
            .expect("an end tag");
    let raw = &page[start..end];
    raw.strip_prefix('\n').unwrap_or(raw).to_owned()
}

#[tokio::test]
async fn the_viewer_shows_a_leading_blank_line() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for text in ["\nfirst\n", "first\n"] {
        std::fs::write(panel.files_of("carl").join("lines.txt"), text).expect("write");
        let reply = panel.get(&carl, "/files/view?path=lines.txt").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(element_text_as_parsed(&reply.text(), "pre"), text);
    }
}

#[tokio::test]
async fn the_editor_keeps_a_leading_blank_line() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for text in ["\nfirst\n", "first\n"] {
        std::fs::write(panel.files_of("carl").join("lines.txt"), text).expect("write");
        let reply = panel.get(&carl, "/files/edit?path=lines.txt").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            textarea_as_submitted(&reply.text()),
            text,
            "the browser would save this text unchanged"
        );
    }
}

#[tokio::test]
async fn a_large_non_ascii_file_is_opened_and_saved() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    // 800 KiB of text, 2.4 MiB once percent-encoded: more than axum's default limit.
    let text = "\u{e9}".repeat(400 * 1024);
    std::fs::write(panel.files_of("carl").join("accents.txt"), &text).expect("write");
    let reply = panel.get(&carl, "/files/edit?path=accents.txt").await;
    assert_eq!(reply.status, StatusCode::OK);
    save(&panel, &carl, "accents.txt", &text)
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "accents.txt").as_deref(),
        Some(text.as_bytes())
    );
}

#[tokio::test]
async fn a_save_beyond_the_editor_limit_is_refused_and_changes_nothing() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let before = read(&panel.files_of("carl"), "README.txt").expect("README.txt");
    let text = "a".repeat(EDIT_BODY_LIMIT_BYTES);
    let reply = save(&panel, &carl, "README.txt", &text).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.text().contains("Nothing was saved"),
        "{}",
        reply.text()
    );
    assert_eq!(read(&panel.files_of("carl"), "README.txt"), Some(before));
}

#[tokio::test]
async fn a_save_larger_than_the_editor_opens_is_refused_and_changes_nothing() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let before = read(&panel.files_of("carl"), "README.txt").expect("README.txt");
    // Within the route's body limit, but a file the editor would refuse to open again.
    let text = "a".repeat(TEXT_LIMIT_BYTES as usize + 1);
    let reply = save(&panel, &carl, "README.txt", &text).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    assert!(
        reply.text().contains("Nothing was saved"),
        "{}",
        reply.text()
    );
    assert_eq!(read(&panel.files_of("carl"), "README.txt"), Some(before));
    // Exactly the limit is saved.
    let text = "a".repeat(TEXT_LIMIT_BYTES as usize);
    save(&panel, &carl, "README.txt", &text)
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "README.txt").map(|b| b.len()),
        Some(TEXT_LIMIT_BYTES as usize)
    );
}

#[tokio::test]
async fn a_save_without_content_is_refused_and_an_empty_content_empties_the_file() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let before = read(&panel.files_of("carl"), "README.txt").expect("README.txt");
    assert!(!before.is_empty());
    let reply = panel
        .post(&carl, "/files/edit", &[("path", "README.txt")])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("<!doctype html>"), "{}", reply.text());
    assert!(
        reply.text().contains("Nothing was saved"),
        "{}",
        reply.text()
    );
    assert_eq!(read(&panel.files_of("carl"), "README.txt"), Some(before));

    save(&panel, &carl, "README.txt", "")
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(
        read(&panel.files_of("carl"), "README.txt").as_deref(),
        Some(&b""[..])
    );
}

#[tokio::test]
async fn a_crlf_file_keeps_its_line_endings() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    std::fs::write(panel.files_of("carl").join("dos.txt"), "a\r\nb\r\n").expect("write");
    save(&panel, &carl, "dos.txt", "a\r\nc\r\n")
        .await
        .assert_redirect("/files");
    assert_eq!(
        read(&panel.files_of("carl"), "dos.txt").as_deref(),
        Some(&b"a\r\nc\r\n"[..])
    );
}

#[tokio::test]
async fn a_binary_file_is_not_shown_or_edited_as_text() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    std::fs::write(
        panel.files_of("carl").join("blob.bin"),
        [0xff, 0xfe, 0x00, 0x80],
    )
    .expect("write");
    let view = panel.get(&carl, "/files/view?path=blob.bin").await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view.text().contains("not text"));
    let edit = panel.get(&carl, "/files/edit?path=blob.bin").await;
    assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_file_too_large_to_show_is_answered_with_a_download_link() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let big = vec![b'a'; TEXT_LIMIT_BYTES as usize + 1];
    std::fs::write(panel.files_of("carl").join("big.txt"), &big).expect("write");
    let download = "href=\"/files/download?path=big.txt\"";

    let view = panel.get(&carl, "/files/view?path=big.txt").await;
    assert_eq!(
        view.status,
        StatusCode::OK,
        "a GET is not a payload too large"
    );
    let text = view.text();
    assert!(text.contains("larger than 1"), "{text}");
    assert!(text.contains(download), "{text}");
    assert!(text.contains(">Download it</a>"), "{text}");
    assert!(!text.contains("/files/edit?path=big.txt"), "{text}");

    let edit = panel.get(&carl, "/files/edit?path=big.txt").await;
    assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(edit.text().contains(download), "{}", edit.text());
    assert!(!edit.text().contains("<textarea"));
    let reply = panel.get(&carl, "/files/download?path=big.txt").await;
    assert_eq!(reply.body, big);
}

#[tokio::test]
async fn a_file_a_browser_would_alter_is_not_edited_in_it() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for (name, bytes, why) in [
        ("nul.txt", &b"a\0b\n"[..], "NUL"),
        ("cr.txt", &b"old mac\rline\r"[..], "carriage returns"),
        ("mixed.txt", &b"unix\nwindows\r\n"[..], "mixes LF and CR LF"),
    ] {
        std::fs::write(panel.files_of("carl").join(name), bytes).expect("write");
        let download = format!("href=\"/files/download?path={name}\"");
        let view = panel.get(&carl, &format!("/files/view?path={name}")).await;
        assert_eq!(view.status, StatusCode::OK, "{name}");
        let text = view.text();
        assert!(text.contains(why), "{name}: {text}");
        assert!(text.contains(&download), "{name}: {text}");
        assert!(!text.contains("/files/edit?path="), "{name}: {text}");

        let edit = panel.get(&carl, &format!("/files/edit?path={name}")).await;
        assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let text = edit.text();
        assert!(
            text.contains(why) && text.contains(&download),
            "{name}: {text}"
        );
        assert!(!text.contains("<textarea"), "{name}");
        assert_eq!(read(&panel.files_of("carl"), name).as_deref(), Some(bytes));
    }
}

#[tokio::test]
async fn files_and_folders_are_renamed() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    panel
        .post(
            &carl,
            "/files/rename",
            &[("path", "README.txt"), ("new_name", "READ ME.txt")],
        )
        .await
        .assert_redirect("/files?path=&notice=");
    let root = panel.files_of("carl");
    assert!(!root.join("README.txt").exists());
    assert!(root.join("READ ME.txt").is_file());

    panel
        .post(
            &carl,
            "/files/rename",
            &[("path", "public_html"), ("new_name", "www")],
        )
        .await
        .assert_redirect("/files");
    assert!(root.join("www/index.html").is_file());

    let reply = panel
        .post(
            &carl,
            "/files/rename",
            &[("path", "www"), ("new_name", "READ ME.txt")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.text().contains("already exists"));
    assert!(root.join("www").is_dir());
}

#[tokio::test]
async fn files_and_folders_are_deleted_recursively() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let root = panel.files_of("carl");
    std::fs::create_dir_all(root.join("public_html/a/b")).expect("dirs");
    std::fs::write(root.join("public_html/a/b/c.txt"), "c").expect("write");

    panel
        .post(&carl, "/files/delete", &[("path", "README.txt")])
        .await
        .assert_redirect("/files?path=&notice=");
    assert!(!root.join("README.txt").exists());

    panel
        .post(&carl, "/files/delete", &[("path", "public_html/a")])
        .await
        .assert_redirect("/files?path=public_html&notice=");
    assert!(!root.join("public_html/a").exists());
    assert!(root.join("public_html/index.html").exists());

    let reply = panel.post(&carl, "/files/delete", &[("path", "")]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(root.is_dir());
}

#[tokio::test]
async fn bad_names_are_refused_with_400() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for name in ["", ".", "..", "a/b", "a\\b", "a\0b", &"x".repeat(256)] {
        let reply = panel
            .post(&carl, "/files/mkdir", &[("path", ""), ("name", name)])
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "mkdir {name:?}");
        let reply = panel
            .post(
                &carl,
                "/files/rename",
                &[("path", "README.txt"), ("new_name", name)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "rename {name:?}");
        let reply = panel
            .upload(
                &carl,
                &[Part::Text("path", ""), Part::File("file", name, b"x")],
            )
            .await;
        assert!(
            reply.status.is_client_error(),
            "upload {name:?}: {}",
            reply.status
        );
    }
    assert!(panel.files_of("carl").join("README.txt").is_file());
    let reply = panel
        .post(
            &carl,
            "/files/mkdir",
            &[("path", ""), ("name", "public_html")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn names_that_read_as_drive_letters_are_refused_with_400() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let reply = panel
        .post(&carl, "/files/mkdir", &[("path", ""), ("name", "c:stuff")])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "mkdir c:stuff");
    assert!(reply.text().contains("drive letter"), "{}", reply.text());
    let reply = panel
        .upload(
            &carl,
            &[
                Part::Text("path", ""),
                Part::File("file", "C:report.txt", b"x"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "upload C:report.txt");
    let reply = panel
        .post(
            &carl,
            "/files/rename",
            &[("path", "README.txt"), ("new_name", "d:x")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "rename to d:x");
    let root = panel.files_of("carl");
    assert!(root.join("README.txt").is_file());
    for name in ["c:stuff", "C:report.txt", "d:x"] {
        assert!(!root.join(name).exists(), "{name}");
    }
    // Made from a shell, such a name is listed as one the file manager does not support,
    // with no link or action that could only end in that 400.
    std::fs::write(root.join("c:stuff"), "x").unwrap();
    let page = panel.get(&carl, "/files").await.text();
    assert!(
        page.contains("c:stuff <span class=\"muted\">(not supported)</span>"),
        "{page}"
    );
    assert!(!page.contains("path=c%3Astuff"), "{page}");
    assert!(!page.contains("value=\"c:stuff\""), "{page}");
}

#[tokio::test]
async fn missing_files_are_not_found() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for uri in [
        "/files?path=nope",
        "/files/view?path=nope.txt",
        "/files/edit?path=nope.txt",
        "/files/download?path=nope.txt",
        "/files/view?path=README.txt/x",
    ] {
        let reply = panel.get(&carl, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(reply.text().contains("<!doctype html>"), "{uri}");
    }
    for (uri, fields) in [
        ("/files/delete", vec![("path", "nope")]),
        ("/files/rename", vec![("path", "nope"), ("new_name", "x")]),
        ("/files/mkdir", vec![("path", "nope"), ("name", "x")]),
        (
            "/files/edit",
            vec![("path", "nope/x.txt"), ("content", "x")],
        ),
    ] {
        assert_eq!(
            panel.post(&carl, uri, &fields).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn a_folder_is_not_opened_as_a_file_nor_a_file_as_a_folder() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    assert_eq!(
        panel.get(&carl, "/files?path=README.txt").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        panel
            .get(&carl, "/files/view?path=public_html")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        panel
            .get(&carl, "/files/download?path=public_html")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let reply = save(&panel, &carl, "public_html", "x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(panel
        .files_of("carl")
        .join("public_html/index.html")
        .is_file());
}

#[tokio::test]
async fn unusual_but_harmless_names_work() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    for name in [
        "%2e%2e",
        "...",
        "a..b",
        "100% done.txt",
        "naïve résumé.txt",
        "<b>bold.txt",
    ] {
        panel
            .upload(
                &carl,
                &[Part::Text("path", ""), Part::File("file", name, b"ok")],
            )
            .await
            .assert_redirect("/files");
        assert_eq!(
            read(&panel.files_of("carl"), name).as_deref(),
            Some(&b"ok"[..]),
            "{name}"
        );
        let reply = panel
            .get(&carl, &format!("/files/view?path={}", encode(name)))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
    }
    let listing = panel.get(&carl, "/files").await.text();
    assert!(listing.contains("&lt;b&gt;bold.txt"));
    assert!(!listing.contains("<b>bold"));
}

/// The `version` the editor page carries for the file it opened.
fn editor_version(page: &str) -> String {
    let at = page
        .find("name=\"version\" value=\"")
        .expect("the editor carries the file's version")
        + "name=\"version\" value=\"".len();
    page[at..at + page[at..].find('"').expect("end of the value")].to_owned()
}

/// Writes `text` to carl's file `name` and opens it in the editor as `who`: the file's
/// path on disk and the version the editor page carries.
async fn opened_in_the_editor(
    panel: &Panel,
    who: &Who,
    name: &str,
    text: &str,
) -> (std::path::PathBuf, String) {
    let file = panel.files_of("carl").join(name);
    std::fs::write(&file, text).expect("write");
    let opened = panel.get(who, &format!("/files/edit?path={name}")).await;
    assert_eq!(opened.status, StatusCode::OK);
    (file, editor_version(&opened.text()))
}

/// Sends the editor's form as the editor page would: with the version it opened.
async fn save_over(panel: &Panel, who: &Who, path: &str, content: &str, version: &str) -> Reply {
    panel
        .post(
            who,
            "/files/edit",
            &[("path", path), ("content", content), ("version", version)],
        )
        .await
}

#[tokio::test]
async fn a_save_over_a_file_changed_since_it_was_opened_is_refused_and_loses_neither_text() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let ada = Who::impersonated("carl", "ada", "admin");
    let file = panel.files_of("carl").join("notes.txt");
    std::fs::write(&file, "first\n").expect("write");

    // Carl and the admin signed in as him open the same file.
    let carls = panel.get(&carl, "/files/edit?path=notes.txt").await;
    assert_eq!(carls.status, StatusCode::OK);
    let carls_version = editor_version(&carls.text());
    let adas = panel.get(&ada, "/files/edit?path=notes.txt").await;
    assert_eq!(editor_version(&adas.text()), carls_version);

    // She saves first.
    save_over(
        &panel,
        &ada,
        "notes.txt",
        "fixed by support\n",
        &carls_version,
    )
    .await
    .assert_redirect("/files?path=&notice=");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "fixed by support\n"
    );

    // His save, from the page he opened before hers, does not undo it.
    let refused = save_over(&panel, &carl, "notes.txt", "carl's draft\n", &carls_version).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "fixed by support\n"
    );
    let page = refused.text();
    assert!(
        page.contains("Nothing was saved: this file was changed after you opened it."),
        "{page}"
    );
    assert!(
        page.contains("href=\"/files/view?path=notes.txt\""),
        "{page}"
    );
    // The page is the editor again, with what he typed, bound to the file as it is now.
    assert_eq!(textarea_as_submitted(&page), "carl's draft\n");
    let now = editor_version(&page);
    assert_ne!(now, carls_version);

    // Saving from it replaces her change, knowingly.
    save_over(&panel, &carl, "notes.txt", "carl's draft\n", &now)
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "carl's draft\n");
    // A version that names no state of the file is refused the same way.
    let forged = save_over(&panel, &carl, "notes.txt", "x\n", "not-a-version").await;
    assert_eq!(forged.status, StatusCode::CONFLICT);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "carl's draft\n");
}

#[tokio::test]
async fn a_save_over_a_file_deleted_since_it_was_opened_does_not_bring_it_back() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let (file, version) = opened_in_the_editor(&panel, &carl, "old.txt", "old\n").await;
    std::fs::remove_file(&file).expect("delete");

    let refused = save_over(&panel, &carl, "old.txt", "still wanted\n", &version).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(!file.exists(), "the refused save created the file again");
    let page = refused.text();
    assert!(
        page.contains("deleted or renamed after you opened it"),
        "{page}"
    );
    assert_eq!(textarea_as_submitted(&page), "still wanted\n");
    // The editor it shows creates the file when asked to.
    assert!(!page.contains("name=\"version\""), "{page}");
    save(&panel, &carl, "old.txt", "still wanted\n")
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "still wanted\n");
}

#[tokio::test]
async fn a_save_with_the_version_it_opened_goes_through_and_keeps_crlf() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let (file, version) = opened_in_the_editor(&panel, &carl, "dos.txt", "a\r\nb\r\n").await;
    save_over(&panel, &carl, "dos.txt", "a\r\nb\r\nc\r\n", &version)
        .await
        .assert_redirect("/files?path=&notice=");
    assert_eq!(std::fs::read(&file).unwrap(), b"a\r\nb\r\nc\r\n");
}

#[tokio::test]
async fn a_change_made_but_not_recorded_says_so_instead_of_inviting_a_retry() {
    use sqlx::Connection;
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let url = format!("sqlite://{}", panel.data_dir().join("panel.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("panel.db");
    sqlx::query(
        "CREATE TRIGGER feed_down BEFORE INSERT ON activity BEGIN SELECT RAISE(ABORT, 'feed down'); END",
    )
    .execute(&mut db)
    .await
    .expect("trigger");

    let reply = save(&panel, &carl, "saved.txt", "on disk\n").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let page = reply.text();
    assert!(
        page.contains(
            "Saved saved.txt: that was done, but the panel could not add it to the activity feed."
        ),
        "{page}"
    );
    assert!(!page.contains("Nothing you typed was lost"), "{page}");
    assert_eq!(
        std::fs::read_to_string(panel.files_of("carl").join("saved.txt")).unwrap(),
        "on disk\n"
    );
}
