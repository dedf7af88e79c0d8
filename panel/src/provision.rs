//! Provisioning: what a hosting account starts with, created the first time the panel
//! sees an assertion for its subject (files root with a welcome page and README, a
//! default domain, a `postmaster` mailbox with three messages, default settings, and an
//! "Account provisioned" activity entry). The database part happens in one transaction
//! and is safe when two first requests race. The middleware here runs right after the
//! assertion check and hands each handler the subject's `Account`; it must never run
//! for a request whose assertion did not verify.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::assertion::{refusal, AssertionError, Identity};
use crate::fs::{FilesRoot, FsError, RelPath};
use crate::names::domain_name;
use crate::store::{
    Account, AccountSeed, ActivityEntry, ActivityKind, DefaultDomain, SeedMessage, Settings,
    StoreError,
};
use crate::PanelState;

/// The mailbox every account starts with.
pub const FIRST_MAILBOX: &str = "postmaster";
/// Where a new account's default domain lives: `<username>.example.test`.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "example.test";

/// Why an account could not be provisioned.
#[derive(Debug, Error)]
pub enum ProvisionError {
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The files root could not be created.
    #[error("cannot create the account's files: {0}")]
    Files(#[from] FsError),
    /// The account row was created by a racing request but cannot be read back.
    #[error("the account {0} was provisioned concurrently but cannot be found")]
    Vanished(String),
}

/// Returns the subject's account, provisioning it first if the panel has never seen it.
pub async fn ensure_account(
    panel: &PanelState,
    identity: &Identity,
) -> Result<Account, ProvisionError> {
    let username = &identity.subject;
    if let Some(account) = panel.store.find_account(username).await? {
        return Ok(account);
    }
    // Files first: if the transaction then fails, the next request finds them in place
    // and keeps them (existing files are never overwritten).
    let root = FilesRoot::for_account(&panel.files_dir, username)?;
    root.create_with(starting_files(username)?).await?;

    let entry = ActivityEntry::new(
        identity,
        ActivityKind::AccountProvisioned,
        "Account provisioned",
    );
    match panel.store.provision(&seed(username), &entry).await? {
        Some(account) => {
            tracing::info!(account = %username, by = %identity.describe(), "account provisioned");
            Ok(account)
        }
        None => panel
            .store
            .find_account(username)
            .await?
            .ok_or_else(|| ProvisionError::Vanished(username.clone())),
    }
}

/// The middleware after the assertion check: provisions on first sight and puts the
/// subject's `Account` in the request's extensions.
pub async fn provision_subject(
    State(panel): State<PanelState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        return refusal(&AssertionError::Missing);
    };
    match ensure_account(&panel, &identity).await {
        Ok(account) => {
            request.extensions_mut().insert(account);
            next.run(request).await
        }
        Err(error) => {
            tracing::error!(account = %identity.subject, %error, "cannot provision account");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the panel cannot open your account right now; try again in a moment\n",
            )
                .into_response()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Account {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Account>()
            .cloned()
            .ok_or_else(|| refusal(&AssertionError::Missing))
    }
}

/// The default domain of an account, `<username>.example.test`, when the username is
/// one plain DNS label. A username with a dot or an underscore (`www.carl`, `ada_l`) has
/// none: `www.carl.example.test` would sit inside carl's own default domain.
pub fn default_domain(username: &str) -> Option<String> {
    let one_label = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !one_label {
        return None;
    }
    domain_name(&format!("{username}.{DEFAULT_DOMAIN_SUFFIX}")).ok()
}

/// Whether `name` (a checked domain name) is the provider's zone or a name in it, other
/// than `username`'s own default domain. The panel hands those out, one per account;
/// a customer claiming one would take another account's default domain.
pub fn is_reserved_for_the_provider(name: &str, username: &str) -> bool {
    let in_zone = name == DEFAULT_DOMAIN_SUFFIX
        || name
            .strip_suffix(DEFAULT_DOMAIN_SUFFIX)
            .is_some_and(|head| head.ends_with('.'));
    in_zone && default_domain(username).as_deref() != Some(name)
}

fn starting_files(username: &str) -> Result<Vec<(RelPath, String)>, FsError> {
    let index = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>Welcome to {username}'s site</title>\n</head>\n<body>\n  <h1>Welcome to {username}'s site</h1>\n  <p>This page is served from public_html/index.html. Replace it with your own site.</p>\n</body>\n</html>\n"
    );
    let readme = "Your hosting files\n==================\n\n\
         public_html/   Everything in this folder is served at your domains\n\
         \x20              (see the Domains page of the panel).\n\
         \x20              index.html is the page visitors see first.\n\n\
         Upload, edit, rename and delete files from the Files page of the panel.\n\
         Files outside public_html/ are private: they are never served to visitors.\n"
        .to_owned();
    Ok(vec![
        (RelPath::parse("public_html/index.html")?, index),
        (RelPath::parse("README.txt")?, readme),
    ])
}

fn seed(username: &str) -> AccountSeed {
    AccountSeed {
        username: username.to_owned(),
        domain: default_domain(username).map(|name| DefaultDomain {
            messages: seed_messages(username, Some(&name)),
            name,
        }),
        mailbox: FIRST_MAILBOX.to_owned(),
        messages: seed_messages(username, None),
        settings: Settings {
            contact_email: format!("{username}@{DEFAULT_DOMAIN_SUFFIX}"),
            notify_billing: true,
            notify_security: true,
            notify_newsletter: true,
        },
    }
}

/// The messages a new account's first mailbox starts with; only those of an account that
/// got its default domain name it.
fn seed_messages(username: &str, domain: Option<&str>) -> Vec<SeedMessage> {
    let set_up = match domain {
        Some(domain) => format!(
            "- the domain {domain}, already pointing at your site;\n\
             - a files area with a public_html folder for your website;\n\
             - this mailbox, postmaster@{domain}.\n\n"
        ),
        None => "- a files area with a public_html folder for your website;\n\
                 - this mailbox, postmaster.\n\n\
                 Add your domain from the Domains page to publish your site.\n\n"
            .to_owned(),
    };
    let mut messages = vec![
        SeedMessage {
            sender: "Example Hosting Support <support@example.test>".to_owned(),
            subject: "Welcome to your new hosting account".to_owned(),
            body: format!(
                "Hello {username},\n\n\
                 Thank you for choosing Example Hosting. Your account is ready.\n\n\
                 Here is what we set up for you:\n\
                 {set_up}\
                 You can add domains, databases and mailboxes from the panel at any time.\n\
                 If you need a hand, reply to this message and a person will answer.\n\n\
                 Kind regards,\nThe Example Hosting team\n"
            ),
            age_seconds: 120,
        },
        SeedMessage {
            sender: "Example Hosting Billing <billing@example.test>".to_owned(),
            subject: "Your invoice INV-1001 is ready".to_owned(),
            body: format!(
                "Hello {username},\n\n\
                 Your invoice INV-1001 for the first month of the Starter plan is ready.\n\n\
                 Starter hosting plan (1 month)   EUR 4.90\n\
                 VAT (20%)                         EUR 0.98\n\
                 Total                             EUR 5.88\n\n\
                 The amount will be charged to your card on file within 7 days.\n\
                 Your invoices are also listed under Billing in your account.\n\n\
                 Example Hosting Billing\n"
            ),
            age_seconds: 60,
        },
    ];
    if let Some(domain) = domain {
        messages.push(SeedMessage {
            sender: "Example Hosting <noreply@example.test>".to_owned(),
            subject: format!("Your site {domain} is live"),
            body: format!(
                "Hello {username},\n\n\
                 Good news: https://{domain}/ now answers with the page in\n\
                 public_html/index.html. Edit that file from the Files page, or upload\n\
                 your own site there, and visitors will see the change right away.\n\n\
                 A TLS certificate for {domain} was issued automatically and will be\n\
                 renewed before it expires.\n\n\
                 Happy publishing,\nExample Hosting\n"
            ),
            age_seconds: 0,
        });
    }
    messages
}
