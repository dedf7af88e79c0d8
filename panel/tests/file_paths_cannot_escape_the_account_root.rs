//! Path traversal is impossible: every variant of `..`, absolute paths, backslashes,
//! NUL, drive letters, percent-encoded and double-encoded forms, another account's
//! folder, and symbolic links (to a file or a folder outside the root) is refused with
//! 400 (or, for a name that is merely odd after the one decoding, 404) by every file
//! operation — and the files outside stay unread and untouched.

mod common;

use std::path::Path;

use axum::http::StatusCode;
use common::{Panel, Part, Who};

const OUTSIDE_SECRET: &str = "TOP SECRET: outside the root";
const SIBLING_SECRET: &str = "SIBLING SECRET: beside the account roots";
const DORA_SECRET: &str = "DORA PRIVATE: another account";

struct Scene {
    panel: Panel,
    carl: Who,
}

/// carl and dora provisioned; secrets outside carl's root; links inside carl's root
/// pointing outside.
async fn scene() -> Scene {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    let dora = Who::customer("dora");
    panel.get(&carl, "/").await;
    panel.get(&dora, "/").await;

    let outside = panel.outside();
    std::fs::write(outside.join("secret.txt"), OUTSIDE_SECRET).expect("outside secret");
    std::fs::write(panel.data_dir().join("files/secret.txt"), SIBLING_SECRET).expect("sibling");
    std::fs::write(panel.files_of("dora").join("private.txt"), DORA_SECRET).expect("dora");

    let root = panel.files_of("carl");
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("leak.txt")).expect("link");
    std::os::unix::fs::symlink(&outside, root.join("leakdir")).expect("dir link");
    std::os::unix::fs::symlink("../../../../outside", root.join("public_html/up"))
        .expect("rel link");
    std::os::unix::fs::symlink(panel.files_of("dora"), root.join("dora")).expect("dora link");
    Scene { panel, carl }
}

impl Scene {
    /// Everything outside carl's root is exactly as it was.
    fn assert_outside_untouched(&self) {
        let outside = self.panel.outside();
        assert_eq!(
            std::fs::read_to_string(outside.join("secret.txt")).expect("read"),
            OUTSIDE_SECRET
        );
        let outside_names = names(&outside);
        assert_eq!(
            outside_names,
            vec!["secret.txt".to_owned()],
            "something was created outside"
        );
        let files = self.panel.data_dir().join("files");
        assert_eq!(
            std::fs::read_to_string(files.join("secret.txt")).expect("read"),
            SIBLING_SECRET
        );
        assert_eq!(
            names(&files),
            vec![
                "carl".to_owned(),
                "dora".to_owned(),
                "secret.txt".to_owned()
            ]
        );
        let dora = self.panel.files_of("dora");
        assert_eq!(
            std::fs::read_to_string(dora.join("private.txt")).expect("read"),
            DORA_SECRET
        );
        assert_eq!(
            names(&dora),
            vec![
                "README.txt".to_owned(),
                "private.txt".to_owned(),
                "public_html".to_owned()
            ]
        );
        let root = self.panel.files_of("carl");
        for link in ["leak.txt", "leakdir", "public_html/up", "dora"] {
            let metadata = std::fs::symlink_metadata(root.join(link)).expect("link still there");
            assert!(metadata.file_type().is_symlink(), "{link}");
        }
        assert!(!self.panel.dir.path().join("escaped.txt").exists());
        assert!(!self.panel.data_dir().join("escaped.txt").exists());
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names = common::names_in(dir);
    names.sort();
    names
}

#[track_caller]
fn assert_refused(reply: &common::Reply, expected: StatusCode, what: &str) {
    assert_eq!(reply.status, expected, "{what}: {}", reply.text());
    let text = reply.text();
    for secret in [OUTSIDE_SECRET, SIBLING_SECRET, DORA_SECRET, "root:x:0:0"] {
        assert!(!text.contains(secret), "{what} leaked {secret}");
    }
}

/// Raw query values (as they appear in the URI) that must be refused with 400.
const ESCAPING_QUERIES: &[&str] = &[
    "..",
    "../",
    "../secret.txt",
    "../dora/private.txt",
    "../../outside/secret.txt",
    "a/../../secret.txt",
    "public_html/../../secret.txt",
    "public_html/../README.txt",
    "./README.txt",
    ".",
    "/etc/passwd",
    "//etc/passwd",
    "%2Fetc%2Fpasswd",
    "..%2F..%2Fsecret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "%2E%2E/secret.txt",
    "..%5Csecret.txt",
    "..%5C..%5Csecret.txt",
    "public_html%5C..%5C..%5Csecret.txt",
    "%00",
    "README.txt%00.png",
    "public_html%00/../../secret.txt",
    "C:%5Cwindows%5Cwin.ini",
    "C:/windows/win.ini",
    "c:",
    "....//....//secret.txt",
    "public_html//index.html",
    "public_html/",
    "leak.txt",
    "leakdir",
    "leakdir/secret.txt",
    "public_html/up",
    "public_html/up/secret.txt",
    "dora",
    "dora/private.txt",
];

/// Raw query values that only become odd names after the one decoding: never decoded
/// again, so they name nothing and give 404.
const DOUBLE_ENCODED_QUERIES: &[&str] = &[
    "%252e%252e%252fsecret.txt",
    "%252e%252e%252f%252e%252e%252fsecret.txt",
    "..%252f..%252fsecret.txt",
    "%252e%252e",
    "%25252e%25252e%25252fsecret.txt",
    "..%255c..%255csecret.txt",
    "%c0%ae%c0%ae%2fsecret.txt",
];

#[tokio::test]
async fn every_read_refuses_escaping_paths() {
    let scene = scene().await;
    let panel = &scene.panel;
    for raw in ESCAPING_QUERIES {
        for action in ["/files", "/files/view", "/files/edit", "/files/download"] {
            let uri = format!("{action}?path={raw}");
            let reply = panel.get(&scene.carl, &uri).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, &uri);
        }
    }
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn double_encoded_paths_are_decoded_once_and_name_nothing() {
    let scene = scene().await;
    let panel = &scene.panel;
    for raw in DOUBLE_ENCODED_QUERIES {
        for action in ["/files", "/files/view", "/files/edit", "/files/download"] {
            let uri = format!("{action}?path={raw}");
            let reply = panel.get(&scene.carl, &uri).await;
            assert!(
                reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST,
                "{uri}: {}",
                reply.status
            );
            assert_refused(&reply, reply.status, &uri);
        }
    }
    scene.assert_outside_untouched();
}

/// Decoded values (as a form carries them) that must be refused with 400.
const ESCAPING_VALUES: &[&str] = &[
    "..",
    "../",
    "../secret.txt",
    "../dora/private.txt",
    "../../outside/secret.txt",
    "a/../../secret.txt",
    "public_html/../../secret.txt",
    "/etc/passwd",
    "/tmp",
    "..\\secret.txt",
    "public_html\\..\\..\\secret.txt",
    "README.txt\0",
    "\0",
    "C:\\windows",
    "C:/windows",
    ".",
    "./README.txt",
    "leak.txt",
    "leakdir",
    "leakdir/secret.txt",
    "leakdir/escaped.txt",
    "public_html/up",
    "public_html/up/secret.txt",
    "dora",
    "dora/private.txt",
];

#[tokio::test]
async fn every_change_refuses_escaping_paths() {
    let scene = scene().await;
    let panel = &scene.panel;
    let carl = &scene.carl;
    for value in ESCAPING_VALUES {
        let attempts = [
            ("/files/edit", vec![("path", *value), ("content", "PWNED")]),
            ("/files/delete", vec![("path", *value)]),
            (
                "/files/rename",
                vec![("path", *value), ("new_name", "escaped.txt")],
            ),
            ("/files/mkdir", vec![("path", *value), ("name", "escaped")]),
        ];
        for (uri, fields) in attempts {
            let reply = panel.post(carl, uri, &fields).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, &format!("{uri} {value:?}"));
        }
        let reply = panel
            .upload(
                carl,
                &[
                    Part::Text("path", value),
                    Part::File("file", "escaped.txt", b"PWNED"),
                ],
            )
            .await;
        assert_refused(
            &reply,
            StatusCode::BAD_REQUEST,
            &format!("upload into {value:?}"),
        );
    }
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn new_names_cannot_carry_a_path() {
    let scene = scene().await;
    let panel = &scene.panel;
    let carl = &scene.carl;
    for name in [
        "../escaped.txt",
        "../../escaped.txt",
        "..",
        "/escaped.txt",
        "..\\escaped.txt",
        "a/../../escaped.txt",
        "escaped\0.txt",
    ] {
        let reply = panel
            .post(
                carl,
                "/files/rename",
                &[("path", "README.txt"), ("new_name", name)],
            )
            .await;
        assert_refused(
            &reply,
            StatusCode::BAD_REQUEST,
            &format!("rename to {name:?}"),
        );
        let reply = panel
            .post(carl, "/files/mkdir", &[("path", ""), ("name", name)])
            .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, &format!("mkdir {name:?}"));
        let reply = panel
            .upload(
                carl,
                &[
                    Part::Text("path", "public_html"),
                    Part::File("file", name, b"PWNED"),
                ],
            )
            .await;
        assert!(
            reply.status.is_client_error(),
            "upload named {name:?}: {}",
            reply.status
        );
    }
    assert!(panel.files_of("carl").join("README.txt").is_file());
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn a_double_encoded_name_stays_a_literal_name_inside_the_root() {
    let scene = scene().await;
    let panel = &scene.panel;
    let reply = panel
        .post(
            &scene.carl,
            "/files/edit",
            &[("path", "%2e%2e%2fescaped.txt"), ("content", "inside")],
        )
        .await;
    reply.assert_redirect("/files");
    let literal = panel.files_of("carl").join("%2e%2e%2fescaped.txt");
    assert_eq!(
        std::fs::read_to_string(literal).expect("literal name"),
        "inside"
    );
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn links_are_listed_but_never_followed() {
    let scene = scene().await;
    let reply = scene.panel.get(&scene.carl, "/files").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("leak.txt"));
    assert!(text.contains("(link, not followed)"));
    assert!(!text.contains("/files/view?path=leak.txt"));
    assert!(!text.contains("/files?path=leakdir"));
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn deleting_a_folder_that_holds_a_link_leaves_the_target_alone() {
    let scene = scene().await;
    let panel = &scene.panel;
    let root = panel.files_of("carl");
    std::fs::create_dir(root.join("junk")).expect("dir");
    std::os::unix::fs::symlink(panel.outside(), root.join("junk/out")).expect("link");
    panel
        .post(&scene.carl, "/files/delete", &[("path", "junk")])
        .await
        .assert_redirect("/files");
    assert!(!root.join("junk").exists());
    scene.assert_outside_untouched();
}

#[tokio::test]
async fn disk_usage_does_not_follow_links() {
    let scene = scene().await;
    let huge = vec![b'x'; 5 * 1024 * 1024];
    std::fs::write(scene.panel.outside().join("huge.bin"), &huge).expect("huge");
    let text = scene.panel.get(&scene.carl, "/").await.text();
    assert!(
        !text.contains("MiB"),
        "disk usage counted a file outside the root"
    );
    std::fs::remove_file(scene.panel.outside().join("huge.bin")).expect("cleanup");
}
