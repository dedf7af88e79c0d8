//! Files: the file manager over the account's files root — list a folder, view and
//! edit a text file, download the exact bytes, upload (multipart, written atomically),
//! create a folder, rename, delete. Every path from a query or form goes through
//! `fs::RelPath::parse` and `fs::FilesRoot`, which refuse anything that could leave the
//! root; this module must never build a disk path itself, never decode a path a second
//! time, and never serve a file's bytes as anything but an attachment or escaped text.

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::{query_value, see_other, FlashQuery, PageError};
use crate::assertion::Identity;
use crate::binding;
use crate::fs::{
    check_name, commit_all, Destination, EntryKind, FilesRoot, FsError, RelPath, Staged,
};
use crate::layout::{format_size, format_time, page, Area, Flash};
use crate::store::{Account, ActivityEntry, ActivityKind};
use crate::{PanelState, UPLOAD_LIMIT_BYTES};

/// Largest file the viewer and editor open (larger ones are downloaded instead).
pub const TEXT_LIMIT_BYTES: u64 = 1024 * 1024;

/// Most files one upload may carry: each is staged (a scratch file on disk) until the
/// whole request has been read, so an unbounded number would let one request fill the
/// folder with scratch files.
pub const UPLOAD_FILES_MAX: usize = 100;

/// Largest body `POST /files/edit` reads: a [`TEXT_LIMIT_BYTES`] file with every byte
/// percent-encoded (3 bytes each), doubled because a browser sends each line feed as
/// CR LF (`%0D%0A`, 6 bytes), plus room for the path and some typing.
pub const EDIT_BODY_LIMIT_BYTES: usize = 2 * 3 * TEXT_LIMIT_BYTES as usize + 64 * 1024;

/// `?path=` plus the flash parameters.
#[derive(Debug, Default, Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
    #[serde(flatten)]
    flash: FlashQuery,
}

impl PathQuery {
    fn flash(&self, identity: &Identity) -> Option<Flash<'_>> {
        self.flash.flash(identity)
    }
}

/// The editor's form. `content` is optional only so that a form without it is
/// refused with a page instead of emptying the file; `content=` is an empty file.
/// `version` is the [`version_of`] the file the editor opened: a save over a file
/// changed since is refused. A form without it (a script) saves whatever is there.
#[derive(Debug, Deserialize)]
pub struct SaveFile {
    #[serde(default)]
    path: String,
    content: Option<String>,
    version: Option<String>,
}

/// What the editor knows a file by: the SHA-256 of its bytes, in hex. Two people (a
/// customer and the staff impersonating them, or two tabs) who open the same file and
/// both save would otherwise have the second save silently undo the first.
fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The new-folder form.
#[derive(Debug, Deserialize)]
pub struct CreateFolder {
    #[serde(default)]
    path: String,
    #[serde(default)]
    name: String,
}

/// The rename form.
#[derive(Debug, Deserialize)]
pub struct Rename {
    #[serde(default)]
    path: String,
    #[serde(default)]
    new_name: String,
}

/// The delete form.
#[derive(Debug, Deserialize)]
pub struct Delete {
    #[serde(default)]
    path: String,
}

fn files_root(panel: &PanelState, account: &Account) -> Result<FilesRoot, PageError> {
    Ok(FilesRoot::for_account(&panel.files_dir, &account.username)?)
}

fn folder_href(rel: &RelPath) -> String {
    format!("/files?path={}", query_value(&rel.to_string()))
}

fn file_href(action: &str, rel: &RelPath) -> String {
    format!("/files/{action}?path={}", query_value(&rel.to_string()))
}

/// `GET /files?path=`: a folder listing.
pub async fn list(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(query): Query<PathQuery>,
) -> Result<Markup, PageError> {
    let rel = RelPath::parse(&query.path)?;
    let entries = files_root(&panel, &account)?.list(&rel).await?;
    let title = if rel.is_root() {
        "Files".to_owned()
    } else {
        format!("Files: {rel}")
    };
    Ok(page(
        &identity,
        Area::Files,
        &title,
        query.flash(&identity),
        html! {
            (breadcrumbs(&rel))
            @if entries.is_empty() {
                div.card { p.muted { "This folder is empty." } }
            } @else {
                table {
                    thead { tr { th { "Name" } th.num { "Size" } th { "Modified" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for entry in &entries {
                            @let child = rel.child(&entry.name);
                            tr {
                                td {
                                    @match entry.kind {
                                        EntryKind::Folder => { a href=(folder_href(&child)) { (entry.name) "/" } },
                                        EntryKind::File => { a href=(file_href("view", &child)) { (entry.name) } },
                                        EntryKind::Link => { (entry.name) " " span.muted { "(link, not followed)" } },
                                        EntryKind::Other => { (entry.name) " " span.muted { "(not supported)" } },
                                    }
                                }
                                td.num {
                                    @if entry.kind == EntryKind::File { (format_size(entry.size)) }
                                    @else { span.muted { "\u{2014}" } }
                                }
                                td { @if let Some(modified) = entry.modified { (format_time(modified)) } }
                                td {
                                    @if matches!(entry.kind, EntryKind::File | EntryKind::Folder) {
                                        div.actions {
                                            @if entry.kind == EntryKind::File {
                                                a.button.secondary.small href=(file_href("edit", &child)) { "Edit" }
                                                a.button.secondary.small href=(file_href("download", &child)) { "Download" }
                                            }
                                            form.inline method="post" action=(binding::action(&identity, "/files/rename")) {
                                                input type="hidden" name="path" value=(child.to_string());
                                                input type="text" name="new_name" value=(entry.name) aria-label={ "New name for " (entry.name) } required;
                                                button.secondary.small type="submit" { "Rename" }
                                            }
                                            form.inline method="post" action=(binding::action(&identity, "/files/delete")) {
                                                input type="hidden" name="path" value=(child.to_string());
                                                button.danger.small type="submit" { "Delete" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New folder" }
            div.card {
                form.inline method="post" action=(binding::action(&identity, "/files/mkdir")) {
                    input type="hidden" name="path" value=(rel.to_string());
                    input type="text" name="name" placeholder="images" aria-label="Folder name" required;
                    button type="submit" { "Create folder" }
                }
            }
            h2 { "Upload a file" }
            div.card {
                form.inline method="post" action=(binding::action(&identity, "/files/upload")) enctype="multipart/form-data" {
                    input type="hidden" name="path" value=(rel.to_string());
                    input type="file" name="file" aria-label="File to upload" required;
                    button type="submit" { "Upload" }
                }
                p.muted { "Up to " (format_size(UPLOAD_LIMIT_BYTES as u64)) ". A file with the same name is replaced." }
            }
        },
    ))
}

fn breadcrumbs(rel: &RelPath) -> Markup {
    html! {
        p.crumbs {
            a href="/files" { "Files" }
            @for (name, crumb) in rel.crumbs() {
                " / " a href=(folder_href(&crumb)) { (name) }
            }
        }
    }
}

/// Why the editor does not open a file: saving it back unchanged would not give back
/// the same bytes (a browser's textarea turns NUL into U+FFFD and every line end into
/// CR LF), or it is too large or not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotEditable {
    TooLarge,
    NotText,
    Nul,
    LoneCr,
    MixedLineEnds,
}

impl NotEditable {
    fn reason(self) -> String {
        match self {
            NotEditable::TooLarge => format!(
                "This file is larger than {}, so it is not shown or edited here.",
                format_size(TEXT_LIMIT_BYTES)
            ),
            NotEditable::NotText => {
                "This file is not text (UTF-8), so it is not shown or edited here.".to_owned()
            }
            NotEditable::Nul => {
                "This file contains NUL bytes, which a browser cannot edit without changing them."
                    .to_owned()
            }
            NotEditable::LoneCr => {
                "This file has carriage returns not followed by a line feed, which a browser turns into line feeds when it saves."
                    .to_owned()
            }
            NotEditable::MixedLineEnds => {
                "This file mixes LF and CR LF line ends, which a browser makes all the same when it saves."
                    .to_owned()
            }
        }
    }
}

/// A file as the browser sees it.
enum Opened {
    /// Text the editor can save back byte for byte.
    Editable(String),
    /// Text shown in the viewer but not opened in the editor.
    ShownOnly(String, NotEditable),
    /// Neither shown nor edited.
    NotShown(NotEditable),
}

async fn open_text(root: &FilesRoot, rel: &RelPath) -> Result<Opened, PageError> {
    let bytes = match root.read(rel, TEXT_LIMIT_BYTES).await {
        Ok(bytes) => bytes,
        Err(FsError::TooLarge { .. }) => return Ok(Opened::NotShown(NotEditable::TooLarge)),
        Err(error) => return Err(error.into()),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Opened::NotShown(NotEditable::NotText));
    };
    let bytes = text.as_bytes();
    let lone_cr = bytes
        .iter()
        .enumerate()
        .any(|(at, b)| *b == b'\r' && bytes.get(at + 1) != Some(&b'\n'));
    let bare_lf = bytes
        .iter()
        .enumerate()
        .any(|(at, b)| *b == b'\n' && (at == 0 || bytes[at - 1] != b'\r'));
    let why = if text.contains('\0') {
        NotEditable::Nul
    } else if lone_cr {
        NotEditable::LoneCr
    } else if bare_lf && text.contains("\r\n") {
        NotEditable::MixedLineEnds
    } else {
        return Ok(Opened::Editable(text));
    };
    Ok(Opened::ShownOnly(text, why))
}

/// `GET /files/view?path=`: a text file, escaped; a file too large or not text is not
/// shown, with a link to download it.
pub async fn view(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(query): Query<PathQuery>,
) -> Result<Markup, PageError> {
    let rel = RelPath::parse(&query.path)?;
    if rel.is_root() {
        return Err(FsError::NotAFile.into());
    }
    let opened = open_text(&files_root(&panel, &account)?, &rel).await?;
    Ok(page(
        &identity,
        Area::Files,
        rel.name().unwrap_or("File"),
        query.flash(&identity),
        html! {
            (breadcrumbs(&rel))
            p.actions {
                @if let Opened::Editable(_) = opened { a.button.small href=(file_href("edit", &rel)) { "Edit" } }
                a.button.secondary.small href=(file_href("download", &rel)) { "Download" }
                a.button.secondary.small href=(folder_href(&rel.parent())) { "Back to folder" }
            }
            @match &opened {
                // As after <textarea>, the parser drops one line feed right after <pre>.
                Opened::Editable(text) => pre.text { "\n" (text) },
                Opened::ShownOnly(text, why) => {
                    p.muted { (why.reason()) " " a href=(file_href("download", &rel)) { "Download it" } " to change it." }
                    pre.text { "\n" (text) }
                },
                Opened::NotShown(why) => div.card { p {
                    (why.reason()) " "
                    a href=(file_href("download", &rel)) { "Download it" } " to open it."
                } },
            }
        },
    ))
}

/// `GET /files/edit?path=`: the editor, for a file it can save back byte for byte; any
/// other file gets a 422 page saying why, with a link to download it.
pub async fn edit_form(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(query): Query<PathQuery>,
) -> Result<Response, PageError> {
    let rel = RelPath::parse(&query.path)?;
    if rel.is_root() {
        return Err(FsError::NotAFile.into());
    }
    let why = match open_text(&files_root(&panel, &account)?, &rel).await? {
        Opened::Editable(text) => {
            let version = version_of(text.as_bytes());
            let markup = editor(
                &identity,
                &rel,
                query.flash(&identity),
                &text,
                Some(&version),
                None,
            );
            return Ok(markup.into_response());
        }
        Opened::ShownOnly(_, why) | Opened::NotShown(why) => why,
    };
    let markup = page(
        &identity,
        Area::Files,
        "Not editable in the browser",
        None,
        html! {
            (breadcrumbs(&rel))
            div.card {
                p { (why.reason()) " Download the file to change it on your computer, then upload it again." }
                p.actions {
                    a.button.small href=(file_href("download", &rel)) { "Download" }
                    a.button.secondary.small href=(folder_href(&rel.parent())) { "Back to folder" }
                }
            }
        },
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response())
}

/// The editor's page: `text` in a form that saves it to `rel`, over the file of
/// `version` (none: over whatever is there, or a new file). `conflict` explains, above
/// the form, why a save was refused and what the text below is.
fn editor(
    identity: &Identity,
    rel: &RelPath,
    flash: Option<Flash<'_>>,
    text: &str,
    version: Option<&str>,
    conflict: Option<Markup>,
) -> Markup {
    page(
        identity,
        Area::Files,
        &format!("Edit {}", rel.name().unwrap_or("file")),
        flash,
        html! {
            (breadcrumbs(rel))
            @if let Some(conflict) = conflict { div.card { (conflict) } }
            form.editor method="post" action=(binding::action(identity, "/files/edit")) {
                input type="hidden" name="path" value=(rel.to_string());
                @if let Some(version) = version { input type="hidden" name="version" value=(version); }
                // The HTML parser drops one line feed right after <textarea>; give it
                // one to drop, so that a file starting with a blank line keeps it.
                textarea name="content" aria-label="File content" spellcheck="false" { "\n" (text) }
                p.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href=(file_href("view", rel)) { "Cancel" }
                }
            }
        },
    )
}

/// `POST /files/edit`: saves the editor's content atomically.
pub async fn save(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    form: Result<Form<SaveFile>, FormRejection>,
) -> Result<Response, PageError> {
    let too_large = || {
        PageError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Text too large",
            format!(
                "Nothing was saved: the editor saves files of up to {}. Download the file, change it on your computer, then upload it.",
                format_size(TEXT_LIMIT_BYTES)
            ),
        )
        .back_to("/files", "Back to your files")
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(too_large());
        }
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let rel = RelPath::parse(&form.path)?;
    if rel.is_root() {
        return Err(FsError::NotAFile.into());
    }
    let Some(content) = form.content else {
        return Err(PageError::bad_request(
            "Nothing was saved: the form did not carry the file's content. Open the file in the editor again.",
        )
        .back_to(file_href("edit", &rel), "Back to the editor"));
    };
    let root = files_root(&panel, &account)?;
    let existing = match root.read(&rel, TEXT_LIMIT_BYTES).await {
        Ok(existing) => Some(existing),
        Err(FsError::NotFound) => None,
        Err(error) => return Err(error.into()),
    };
    // Browsers send textarea lines with CRLF; keep LF files LF.
    let keeps_crlf = existing
        .as_deref()
        .is_some_and(|bytes| bytes.windows(2).any(|pair| pair == b"\r\n"));
    let content = if keeps_crlf {
        content
    } else {
        content.replace("\r\n", "\n")
    };
    // What the editor could not open again is not saved from it either.
    if content.len() as u64 > TEXT_LIMIT_BYTES {
        return Err(too_large());
    }
    if let Some(opened) = &form.version {
        let now = existing.as_deref().map(version_of);
        if now.as_deref() != Some(opened.as_str()) {
            return Ok(save_conflict(&identity, &rel, &content, now.as_deref()));
        }
    }
    root.save(&rel, content.into_bytes()).await?;
    record(
        &panel,
        &account,
        &identity,
        ActivityKind::FileSaved,
        format!("Saved {rel}"),
    )
    .await?;
    Ok(see_other(
        &identity,
        &folder_href(&rel.parent()),
        &format!("Saved {rel}."),
    ))
}

/// 409: the file changed (or went) after the editor opened it, so nothing was saved.
/// The page is the editor again, holding the text that was sent and bound to the file
/// as it is now: saving again replaces the other change, knowingly.
fn save_conflict(identity: &Identity, rel: &RelPath, content: &str, now: Option<&str>) -> Response {
    tracing::info!(path = %rel, "save refused: the file changed after the editor opened it");
    let (flash, what) = match now {
        Some(_) => (
            "Nothing was saved: this file was changed after you opened it.",
            "Someone changed this file after you opened it (the activity feed says who). Below is your text, not theirs: save it to replace their changes, or ",
        ),
        None => (
            "Nothing was saved: this file was deleted or renamed after you opened it.",
            "This file was deleted or renamed after you opened it. Below is your text: save it to create the file again, or ",
        ),
    };
    let conflict = html! {
        p { (what) a href=(file_href("view", rel)) { "see the file as it is now" } "." }
    };
    let markup = editor(
        identity,
        rel,
        Some(Flash::Error(flash)),
        content,
        now,
        Some(conflict),
    );
    (StatusCode::CONFLICT, markup).into_response()
}

/// `GET /files/download?path=`: the exact bytes, as an attachment.
pub async fn download(
    State(panel): State<PanelState>,
    account: Account,
    Query(query): Query<PathQuery>,
) -> Result<Response, PageError> {
    let rel = RelPath::parse(&query.path)?;
    if rel.is_root() {
        return Err(FsError::NotAFile.into());
    }
    let download = files_root(&panel, &account)?.open(&rel).await?;
    let disposition = HeaderValue::from_str(&content_disposition(&download.name))
        .map_err(|error| PageError::internal(&error))?;
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(download.file)));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, HeaderValue::from(download.len)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

/// RFC 6266 `attr-char`: what `filename*` may carry unencoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="..."`, plus `filename*=UTF-8''...` (RFC 6266 §4.3, RFC 8187)
/// when the name is not plain printable ASCII.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!(
            "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
            utf8_percent_encode(name, ATTR_CHAR)
        )
    }
}

/// `POST /files/upload`: multipart fields `path` (the folder, sent first) and `file`
/// (one to [`UPLOAD_FILES_MAX`]). Every file is staged first, all through one open
/// destination folder; only once the whole request has been read
/// and found good are they committed, together (every destination checked before any
/// lands) and each recorded, so a refused request changes nothing on disk.
pub async fn upload(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let root = files_root(&panel, &account)?;
    let mut folder: Option<RelPath> = None;
    // Opened at the folder's first file and shared by every file staged into it.
    let mut destination: Option<Destination> = None;
    // Dropped on any early return, which removes the scratch files.
    let mut staged_files: Vec<(RelPath, Staged)> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(upload_failed)? {
        match field.name() {
            Some("path") => {
                let text = field.text().await.map_err(upload_failed)?;
                folder = Some(RelPath::parse(&text)?);
                destination = None;
            }
            Some("file") => {
                let Some(folder) = &folder else {
                    return Err(FsError::FolderAfterFile.into());
                };
                if staged_files.len() == UPLOAD_FILES_MAX {
                    return Err(PageError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Too many files",
                        format!(
                            "Nothing was uploaded: one upload takes at most {UPLOAD_FILES_MAX} files. Upload them in smaller groups."
                        ),
                    )
                    .back_to(folder_href(folder), "Back to folder"));
                }
                let name = field.file_name().unwrap_or_default().to_owned();
                if name.is_empty() {
                    return Err(PageError::bad_request("Choose a file to upload.")
                        .back_to(folder_href(folder), "Back to folder"));
                }
                let name = check_name(&name)?;
                let rel = folder.child(name);
                let into = match destination.take() {
                    Some(open) => open,
                    None => root.destination(folder).await?,
                };
                let mut staged = into.stage(name).await?;
                destination = Some(into);
                while let Some(chunk) = field.chunk().await.map_err(upload_failed)? {
                    staged.write(&chunk).await?;
                }
                staged.finish().await?;
                staged_files.push((rel, staged));
            }
            _ => {}
        }
    }
    let Some(folder) = folder else {
        return Err(PageError::bad_request(
            "The upload form did not say which folder to upload to.",
        ));
    };
    if staged_files.is_empty() {
        return Err(PageError::bad_request("Choose a file to upload.")
            .back_to(folder_href(&folder), "Back to folder"));
    }
    let (rels, staged): (Vec<RelPath>, Vec<Staged>) = staged_files.into_iter().unzip();
    let (landed, failure) = match commit_all(staged).await {
        Ok(()) => (rels.len(), None),
        Err((landed, error)) => (landed, Some(PageError::from(error))),
    };
    let uploaded: Vec<String> = rels[..landed].iter().map(RelPath::to_string).collect();
    for rel in &uploaded {
        record(
            &panel,
            &account,
            &identity,
            ActivityKind::FileUploaded,
            format!("Uploaded {rel}"),
        )
        .await?;
    }
    match failure {
        None => Ok(see_other(
            &identity,
            &folder_href(&folder),
            &format!("Uploaded {}.", uploaded.join(", ")),
        )),
        // Say what did land, so that nobody thinks the whole upload is lost.
        Some(error) => {
            let message = if uploaded.is_empty() {
                format!("Nothing was uploaded: {}", error.message())
            } else {
                format!(
                    "Uploaded {}; {} and the files after it were not saved: {}",
                    uploaded.join(", "),
                    rels[landed],
                    error.message()
                )
            };
            Err(PageError::new(error.status(), "Upload not saved", message)
                .back_to(folder_href(&folder), "Back to folder"))
        }
    }
}

fn upload_failed(error: MultipartError) -> PageError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        PageError::new(
            status,
            "Upload too large",
            format!(
                "Uploads are limited to {}.",
                format_size(UPLOAD_LIMIT_BYTES as u64)
            ),
        )
    } else {
        PageError::new(
            status,
            "Upload failed",
            format!("The upload could not be read: {}", error.body_text()),
        )
    }
    .back_to("/files", "Back to your files")
}

/// `POST /files/mkdir`
pub async fn create_folder(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<CreateFolder>,
) -> Result<Response, PageError> {
    let parent = RelPath::parse(&form.path)?;
    let created = files_root(&panel, &account)?
        .create_folder(&parent, &form.name)
        .await?;
    record(
        &panel,
        &account,
        &identity,
        ActivityKind::FolderCreated,
        format!("Created folder {created}"),
    )
    .await?;
    Ok(see_other(
        &identity,
        &folder_href(&parent),
        &format!("Created folder {created}."),
    ))
}

/// `POST /files/rename`
pub async fn rename(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<Rename>,
) -> Result<Response, PageError> {
    let rel = RelPath::parse(&form.path)?;
    let renamed = files_root(&panel, &account)?
        .rename(&rel, &form.new_name)
        .await?;
    record(
        &panel,
        &account,
        &identity,
        ActivityKind::FileRenamed,
        format!("Renamed {rel} to {renamed}"),
    )
    .await?;
    Ok(see_other(
        &identity,
        &folder_href(&rel.parent()),
        &format!("Renamed {rel} to {renamed}."),
    ))
}

/// `POST /files/delete`: a file, or a folder with everything in it.
pub async fn delete(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<Delete>,
) -> Result<Response, PageError> {
    let rel = RelPath::parse(&form.path)?;
    let kind = files_root(&panel, &account)?.delete(&rel).await?;
    let what = if kind == EntryKind::Folder {
        "folder "
    } else {
        ""
    };
    record(
        &panel,
        &account,
        &identity,
        ActivityKind::FileDeleted,
        format!("Deleted {what}{rel}"),
    )
    .await?;
    Ok(see_other(
        &identity,
        &folder_href(&rel.parent()),
        &format!("Deleted {what}{rel}."),
    ))
}

async fn record(
    panel: &PanelState,
    account: &Account,
    identity: &Identity,
    kind: ActivityKind,
    summary: String,
) -> Result<(), PageError> {
    let entry = ActivityEntry::new(identity, kind, summary.clone());
    panel
        .store
        .record_activity(account.id, &entry)
        .await
        .map_err(|error| {
            // The change is on disk: a page inviting a retry would have it made twice.
            tracing::error!(%error, %summary, "a file change was made but not recorded in the activity feed");
            PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Done, but not recorded",
                format!(
                    "{summary}: that was done, but the panel could not add it to the activity feed. \
                     There is no need to do it again; tell your provider that the feed is missing this change."
                ),
            )
            .back_to("/files", "Back to your files")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_get_a_plain_filename() {
        assert_eq!(
            content_disposition("report 1.pdf"),
            "attachment; filename=\"report 1.pdf\""
        );
    }

    #[test]
    fn other_names_get_a_fallback_and_filename_star() {
        assert_eq!(
            content_disposition("résumé \"v2\".txt"),
            "attachment; filename=\"r_sum_ _v2_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.txt"
        );
    }
}
