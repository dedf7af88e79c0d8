//! Form binding: every form the panel shows names, in its action URL, the identity the
//! page was shown to, and a form sent under a different identity is refused with 409
//! before any handler runs.
//!
//! Why: the proxy keeps one session per browser, shared by all its tabs. A support
//! agent who stops impersonating carl in one tab and then submits a form still open in
//! another would otherwise delete *her own* file of that name; one who opens her own
//! settings, starts impersonating in another tab and then saves would change *carl's*
//! settings. Both are sent with a valid assertion; only the page knows whom it was for.
//!
//! The binding is the subject's username, followed by `~` and the impersonation id while
//! impersonating (`~` is in neither alphabet). A later impersonation of the same customer
//! is another binding: its requests are recorded under another impersonation id.
//!
//! This is not CSRF protection (the proxy refuses cross-site requests) and not identity:
//! the assertion alone says who acts. A request without the parameter is taken as it is,
//! so scripts can post without reading a page first.

use axum::extract::{Query, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::assertion::Identity;
use crate::layout::area_home;
use crate::names::is_valid_username;
use crate::pages::PageError;

/// The query parameter that carries the binding.
pub const PARAM: &str = "as";

/// Separates the subject from the impersonation id.
const SEPARATOR: char = '~';

/// The binding of pages shown to `identity`.
pub fn of(identity: &Identity) -> String {
    match &identity.impersonation_id {
        Some(id) => format!("{}{SEPARATOR}{id}", identity.subject),
        None => identity.subject.clone(),
    }
}

/// `path` as a form's action, bound to `identity`. `path` is already encoded.
pub fn action(identity: &Identity, path: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!(
        "{path}{separator}{PARAM}={}",
        crate::pages::query_value(&of(identity))
    )
}

/// Middleware after provisioning: refuses a form shown to another identity.
pub async fn refuse_stale_forms(request: Request, next: Next) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let Some(identity) = request.extensions().get::<Identity>() else {
        return next.run(request).await;
    };
    let current = of(identity);
    let stale = match Query::<Vec<(String, String)>>::try_from_uri(request.uri()) {
        Ok(Query(pairs)) => pairs
            .into_iter()
            .find(|(name, value)| name == PARAM && *value != current)
            .map(|(_, value)| value),
        // A query that does not parse is the handler's to refuse.
        Err(_) => None,
    };
    match stale {
        None => next.run(request).await,
        Some(shown_to) => {
            tracing::warn!(
                form_for = ?shown_to,
                now = %current,
                path = %request.uri().path(),
                "stale form refused"
            );
            refusal(identity, &shown_to, request.uri().path()).into_response()
        }
    }
}

/// The 409 page: whom the form was for, whom a request acts as now, and that nothing
/// was changed.
fn refusal(identity: &Identity, shown_to: &str, path: &str) -> PageError {
    let (subject, impersonation) = match shown_to.split_once(SEPARATOR) {
        Some((subject, id)) => (subject, Some(id)),
        None => (shown_to, None),
    };
    let was = match impersonation {
        // The binding came back from the browser: show only a name the panel could have put.
        _ if !is_valid_username(subject) => "This form was shown to someone else.".to_owned(),
        Some(_) if identity.impersonation_id.is_some() && subject == identity.subject => {
            format!("This form was shown during an earlier impersonation of {subject}.")
        }
        Some(_) => format!(
            "This form was shown while impersonating {subject}, and that impersonation has ended."
        ),
        None => format!("This form was shown on a page of {subject}'s own account."),
    };
    let now = match &identity.actor {
        Some(actor) => format!(
            "You are now {}, impersonating {}.",
            actor.username, identity.subject
        ),
        None => format!("You are now signed in as {}.", identity.subject),
    };
    PageError::new(
        StatusCode::CONFLICT,
        "This form is out of date",
        format!(
            "{was} {now} So that it does not change the wrong account, the panel did not act on it: nothing was changed. Open the page again and repeat what you meant to do."
        ),
    )
    .back_to(area_home(path), "Open the page again")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, impersonation: Option<&str>) -> Identity {
        Identity {
            subject: subject.to_owned(),
            subject_role: crate::assertion::Role::Customer,
            subject_name: subject.to_owned(),
            session_id: "s".to_owned(),
            actor: None,
            impersonation_id: impersonation.map(str::to_owned),
            request_id: None,
        }
    }

    #[test]
    fn a_binding_names_the_subject_and_the_impersonation() {
        assert_eq!(of(&identity("carl", None)), "carl");
        assert_eq!(of(&identity("carl", Some("Xy-_1"))), "carl~Xy-_1");
    }

    #[test]
    fn an_action_keeps_its_query_and_encodes_the_binding() {
        let carl = identity("carl", Some("i-1"));
        assert_eq!(action(&carl, "/domains"), "/domains?as=carl~i-1");
        assert_eq!(
            action(&carl, "/files/edit?path=a%20b"),
            "/files/edit?path=a%20b&as=carl~i-1"
        );
        assert_eq!(
            action(&identity("c.a_r-l", None), "/settings"),
            "/settings?as=c.a_r-l"
        );
    }

    #[test]
    fn a_refusal_says_whom_the_form_was_for_and_sends_back_to_its_page() {
        let ada = identity("ada", None);
        let page = refusal(&ada, "carl~i-1", "/files/delete");
        assert_eq!(page.status(), StatusCode::CONFLICT);
        assert!(page
            .message()
            .contains("while impersonating carl, and that impersonation has ended"));
        assert!(page.message().contains("You are now signed in as ada."));
        assert_eq!(page.back(), Some("/files"));
        let again = refusal(
            &identity("carl", Some("i-2")),
            "carl~i-1",
            "/domains/x/delete",
        );
        assert!(again.message().contains("earlier impersonation of carl"));
        assert_eq!(again.back(), Some("/domains"));
        assert_eq!(refusal(&ada, "ada", "/nowhere").back(), Some("/"));
        let forged = refusal(&ada, "<b>x</b> is an admin~i", "/settings");
        assert!(forged
            .message()
            .starts_with("This form was shown to someone else."));
        assert!(!forged.message().contains("admin"));
    }
}
