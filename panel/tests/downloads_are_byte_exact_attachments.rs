//! Downloads return exactly the bytes on disk as an attachment
//! (`application/octet-stream`, `Content-Disposition: attachment`, `nosniff`), never
//! rendered — an HTML file included — with an RFC 6266 `filename*` for non-ASCII names.

mod common;

use axum::http::StatusCode;
use common::{encode, Panel, Part, Who};

async fn provisioned(panel: &Panel) -> Who {
    let carl = Who::customer("carl");
    panel.get(&carl, "/").await;
    carl
}

#[tokio::test]
async fn all_256_byte_values_come_back_exactly() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    std::fs::write(panel.files_of("carl").join("bytes.bin"), &bytes).expect("write");

    let reply = panel.get(&carl, "/files/download?path=bytes.bin").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, bytes);
    assert_eq!(reply.header("content-type"), "application/octet-stream");
    assert_eq!(
        reply.header("content-disposition"),
        "attachment; filename=\"bytes.bin\""
    );
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.header("content-length"), bytes.len().to_string());
}

#[tokio::test]
async fn an_uploaded_binary_file_round_trips_byte_for_byte() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7 % 256) as u8)
        .chain(b"\r\n--\r\n\0".iter().copied())
        .collect();
    panel
        .upload(
            &carl,
            &[
                Part::Text("path", "public_html"),
                Part::File("file", "data.bin", &bytes),
            ],
        )
        .await
        .assert_redirect("/files");
    let reply = panel
        .get(&carl, "/files/download?path=public_html/data.bin")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, bytes);
}

#[tokio::test]
async fn an_html_file_is_downloaded_not_rendered() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let on_disk =
        std::fs::read(panel.files_of("carl").join("public_html/index.html")).expect("index");
    let reply = panel
        .get(&carl, "/files/download?path=public_html/index.html")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, on_disk);
    assert_eq!(reply.header("content-type"), "application/octet-stream");
    assert_eq!(
        reply.header("content-disposition"),
        "attachment; filename=\"index.html\""
    );
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn an_empty_file_downloads_as_zero_bytes() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    std::fs::write(panel.files_of("carl").join("empty"), b"").expect("write");
    let reply = panel.get(&carl, "/files/download?path=empty").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn a_non_ascii_name_gets_filename_star() {
    let panel = Panel::start().await;
    let carl = provisioned(&panel).await;
    let name = "résumé \"final\".txt";
    std::fs::write(panel.files_of("carl").join(name), b"cv").expect("write");
    let reply = panel
        .get(&carl, &format!("/files/download?path={}", encode(name)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"cv");
    assert_eq!(
        reply.header("content-disposition"),
        "attachment; filename=\"r_sum_ _final_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt"
    );
}
