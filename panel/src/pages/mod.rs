//! The panel's pages, one module per sidebar area, and what they share: the error type
//! every handler returns (`PageError`, shown as a page in the layout with the right
//! status), the Post/Redirect/Get helper with its `?notice=` flash, the 404 page, and
//! the last middleware before the handlers (`finish_response`), which turns errors into
//! pages and adds the security headers. Handlers must scope everything by the `Account`
//! they are given and never take identity from the request itself.

pub mod activity;
pub mod dashboard;
pub mod databases;
pub mod domains;
pub mod files;
pub mod mail;
pub mod settings;

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::assertion::Identity;
use crate::fs::FsError;
use crate::layout::{page, Area, Flash};
use crate::store::StoreError;

/// How much of a framework rejection's text is shown.
const REJECTION_TEXT_LIMIT: usize = 4096;

/// Characters left alone when a value is put in a query string.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes `value` for use as one query-string value.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Characters left alone in one path segment.
const PATH_SEGMENT: &AsciiSet = &QUERY_VALUE.add(b'/');

/// Encodes `value` as one path segment.
pub fn path_segment(value: &str) -> String {
    utf8_percent_encode(value, PATH_SEGMENT).to_string()
}

/// The flash parameters a page may receive after a redirect: a notice, and the seal that
/// shows the panel wrote it for this identity.
///
/// The notice travels in the URL (Post/Redirect/Get), so anyone can write one into a link.
/// Unsealed, a customer could send staff `/?notice=Your account is suspended, call …` and
/// have it shown in the panel's own chrome. Only a notice sealed for the identity the page
/// is shown to is shown; any other is left out. Refusals are never redirected: their page
/// is answered at once, so there is no error parameter at all.
#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    /// A success message.
    pub notice: Option<String>,
    /// Its seal: an HMAC of the binding of the identity it was written for and the text.
    pub seal: Option<String>,
}

impl FlashQuery {
    /// The flash to show, if any: the notice, if its seal holds for `identity`.
    pub fn flash(&self, identity: &Identity) -> Option<Flash<'_>> {
        let (notice, seal) = (self.notice.as_deref()?, self.seal.as_deref()?);
        let key = jsonwebtoken::DecodingKey::from_secret(&*FLASH_KEY);
        jsonwebtoken::crypto::verify(
            seal,
            &sealed(identity, notice),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or(false)
        .then_some(Flash::Notice(notice))
    }
}

/// The key of notices' seals, made at start: a notice lives for one redirect, so one that a
/// restart makes unreadable costs only its message.
static FLASH_KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    key
});

/// What a seal covers: the identity's binding and the notice.
fn sealed(identity: &Identity, notice: &str) -> Vec<u8> {
    let mut message = crate::binding::of(identity).into_bytes();
    message.push(0);
    message.extend_from_slice(notice.as_bytes());
    message
}

/// 303 See Other to `location` with a success flash, sealed for `identity`.
pub fn see_other(identity: &Identity, location: &str, notice: &str) -> Response {
    let separator = if location.contains('?') { '&' } else { '?' };
    let key = jsonwebtoken::EncodingKey::from_secret(&*FLASH_KEY);
    let seal = jsonwebtoken::crypto::sign(
        &sealed(identity, notice),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap_or_default();
    Redirect::to(&format!(
        "{location}{separator}notice={}&seal={seal}",
        query_value(notice)
    ))
    .into_response()
}

/// A failure a handler reports; `finish_response` renders it in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    back: Option<(String, &'static str)>,
}

impl PageError {
    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad request", message)
    }

    /// 404: nothing of that name in this account.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Page not found", message)
    }

    /// 500: something broke; the detail goes to the log, not the page.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The panel could not finish this request. Nothing you typed was lost from the previous page; try again in a moment.",
        )
    }

    /// Any status with a title and message.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        PageError {
            status,
            title,
            message: message.into(),
            back: None,
        }
    }

    /// The status the page is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the page says went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the page's link leads, if it has one.
    pub fn back(&self) -> Option<&str> {
        self.back.as_ref().map(|(href, _)| href.as_str())
    }

    /// Adds a link back to where the user came from.
    pub fn back_to(mut self, href: impl Into<String>, label: &'static str) -> Self {
        self.back = Some((href.into(), label));
        self
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError::internal(&error)
    }
}

impl From<FsError> for PageError {
    fn from(error: FsError) -> Self {
        let message = capitalise(&error.to_string());
        let page = match error {
            FsError::NotFound => PageError::not_found(message),
            FsError::AlreadyExists(_) => {
                PageError::new(StatusCode::CONFLICT, "Already exists", message)
            }
            FsError::TooLarge { .. } => {
                PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "File too large", message)
            }
            FsError::Io(error) => return PageError::internal(&error),
            FsError::BadPath(_)
            | FsError::BadName(_)
            | FsError::Symlink
            | FsError::NotAFolder
            | FsError::NotAFile
            | FsError::RootIsFixed
            | FsError::TooDeep
            | FsError::FolderAfterFile => PageError::bad_request(message),
        };
        page.back_to("/files", "Back to your files")
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The 404 page for any path the panel does not serve.
pub async fn not_found() -> PageError {
    PageError::not_found("There is no page at this address.").back_to("/", "Go to the dashboard")
}

/// The last middleware before the handlers: renders a `PageError` as a page in the
/// layout and adds headers every response carries.
pub async fn finish_response(request: Request, next: Next) -> Response {
    let identity = request.extensions().get::<Identity>().cloned();
    let mut response = next.run(request).await;
    if let Some(identity) = identity {
        if let Some(failure) = response.extensions_mut().remove::<PageError>() {
            response = (failure.status, render_failure(&identity, &failure)).into_response();
        } else if response.status().is_client_error() && !is_html(&response) {
            response = framework_rejection_page(&identity, response).await;
        }
    }
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

/// Axum's own refusals (a form that does not parse, a method a route does not take)
/// come as short plain text; show them in the layout too, keeping headers like `Allow`.
async fn framework_rejection_page(identity: &Identity, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, REJECTION_TEXT_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let status = parts.status;
    let title = status.canonical_reason().unwrap_or("Request refused");
    let message = if text.is_empty() {
        format!("The panel cannot answer this request ({title}).")
    } else {
        text
    };
    let failure = PageError::new(status, title, message).back_to("/", "Go to the dashboard");
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let page = render_failure(identity, &failure).into_response();
    let (page_parts, page_body) = page.into_parts();
    parts.headers.extend(page_parts.headers);
    Response::from_parts(parts, page_body)
}

fn render_failure(identity: &Identity, failure: &PageError) -> maud::Markup {
    page(
        identity,
        Area::Elsewhere,
        failure.title,
        None,
        html! {
            div.card {
                p { (failure.message) }
                @if let Some((href, label)) = &failure.back {
                    p { a href=(href) { (label) } }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_once() {
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd/%C3%A9");
        assert_eq!(path_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn redirects_are_see_other_with_a_notice() {
        let carl = identity("carl", None);
        let response = see_other(&carl, "/files?path=a", "Saved a & b");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("/files?path=a&notice=Saved%20a%20%26%20b&seal="),
            "{location}"
        );
    }

    fn identity(subject: &str, impersonation: Option<&str>) -> Identity {
        Identity {
            subject: subject.into(),
            subject_role: crate::assertion::Role::Customer,
            subject_name: subject.into(),
            session_id: "s".into(),
            actor: None,
            impersonation_id: impersonation.map(Into::into),
            request_id: None,
        }
    }

    /// The query a redirect leads to, as the page reads it.
    fn query_of(response: &Response) -> FlashQuery {
        let location: axum::http::Uri = response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        axum::extract::Query::<FlashQuery>::try_from_uri(&location)
            .unwrap()
            .0
    }

    #[test]
    fn a_notice_is_shown_only_to_the_identity_it_was_sealed_for() {
        let carl = identity("carl", None);
        let sealed = query_of(&see_other(&carl, "/domains", "Added carl.example."));
        assert_eq!(
            sealed.flash(&carl),
            Some(Flash::Notice("Added carl.example."))
        );
        // A link made from carl's notice, opened by staff or by carl's impersonator.
        assert_eq!(sealed.flash(&identity("ada", None)), None);
        assert_eq!(sealed.flash(&identity("carl", Some("imp1"))), None);
        // A notice written into a link, with no seal, another's or a cut one.
        let forged = |notice: &str, seal: Option<&str>| FlashQuery {
            notice: Some(notice.into()),
            seal: seal.map(Into::into),
        };
        let seal = sealed.seal.as_deref().unwrap();
        for q in [
            forged("Your account is suspended. Call +1 555 0100.", None),
            forged("Your account is suspended. Call +1 555 0100.", Some(seal)),
            forged("Added carl.example.", Some(&seal[1..])),
            forged("Added carl.example.", Some("")),
            forged("Added carl.example.", Some("%%%not base64")),
        ] {
            assert_eq!(q.flash(&carl), None, "{q:?}");
        }
    }
}
