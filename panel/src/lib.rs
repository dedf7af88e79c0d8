//! `actas-panel`: a minimal but real hosting control panel that sits behind the `actas`
//! proxy. This file owns the wiring: the shared state, the routing table and the server
//! loop. A request passes, in order, through
//!
//! ```text
//!   assertion::require_assertion   verify X-Actas-Assertion, or 401 (nothing else runs)
//!   provision::provision_subject   first sight of the subject: create its account
//!   pages::finish_response         error pages in the layout, security headers
//!   binding::refuse_stale_forms    a form shown to another identity: 409, nothing runs
//!   the route's handler            pages::<area>
//! ```
//!
//! Every route, the 404 fallback included, sits behind all four. Identity comes only
//! from the assertion; nothing here may read it from anywhere else.

pub mod assertion;
pub mod binding;
pub mod config;
pub mod fs;
pub mod layout;
pub mod names;
pub mod pages;
pub mod provision;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use thiserror::Error;

pub use assertion::{Actor, Identity, Role};
pub use config::Config;

use assertion::{AssertionVerifier, KeyError};
use store::{Store, StoreError};

/// The largest upload the file manager accepts.
pub const UPLOAD_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// What every handler can reach: the database, the verifier and the files folder.
#[derive(Debug, Clone)]
pub struct PanelState {
    /// The panel's database.
    pub store: Store,
    /// Checks the identity assertion on every request.
    pub verifier: Arc<AssertionVerifier>,
    /// `data_dir/files`: one folder per account below it.
    pub files_dir: PathBuf,
}

/// Why the panel could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum StartError {
    /// The data folder could not be created.
    #[error("cannot create data folder {path}: {cause}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A public key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {cause}")]
    Bind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The server loop failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

impl PanelState {
    /// Creates the data folder, opens and migrates `panel.db` and loads the public keys.
    pub async fn open(config: &Config) -> Result<Self, StartError> {
        let files_dir = config.data_dir.join("files");
        std::fs::create_dir_all(&files_dir).map_err(|cause| StartError::DataDir {
            path: files_dir.clone(),
            cause,
        })?;
        let verifier =
            AssertionVerifier::load(&config.public_keys, &config.audience, &config.issuer)?;
        let store = Store::open(&config.data_dir.join("panel.db")).await?;
        Ok(PanelState {
            store,
            verifier: Arc::new(verifier),
            files_dir,
        })
    }
}

/// The panel's routes, behind the assertion check and provisioning.
pub fn app(state: PanelState) -> Router {
    use pages::{activity, dashboard, databases, domains, files, mail, settings};

    Router::new()
        .route("/", get(dashboard::show))
        .route("/domains", get(domains::list).post(domains::add))
        .route("/domains/{name}/delete", post(domains::remove))
        .route("/files", get(files::list))
        .route("/files/view", get(files::view))
        .route(
            "/files/edit",
            get(files::edit_form)
                .post(files::save)
                .layer(DefaultBodyLimit::max(files::EDIT_BODY_LIMIT_BYTES)),
        )
        .route("/files/download", get(files::download))
        .route(
            "/files/upload",
            post(files::upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT_BYTES)),
        )
        .route("/files/mkdir", post(files::create_folder))
        .route("/files/rename", post(files::rename))
        .route("/files/delete", post(files::delete))
        .route("/databases", get(databases::list).post(databases::create))
        .route("/databases/{name}/drop", post(databases::drop))
        .route("/mail", get(mail::mailboxes).post(mail::create_mailbox))
        .route("/mail/{mailbox}", get(mail::messages))
        .route("/mail/{mailbox}/delete", post(mail::delete_mailbox))
        .route("/mail/{mailbox}/messages/{id}", get(mail::message))
        .route("/settings", get(settings::show).post(settings::save))
        .route("/activity", get(activity::list))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(binding::refuse_stale_forms))
        .layer(middleware::from_fn(pages::finish_response))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            provision::provision_subject,
        ))
        .layer(middleware::from_fn_with_state(
            state.verifier.clone(),
            assertion::require_assertion,
        ))
        .with_state(state)
}

/// Runs the panel until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let state = PanelState::open(&config).await?;
    let store = state.store.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|cause| StartError::Bind {
            address: config.listen,
            cause,
        })?;
    let address = listener.local_addr().unwrap_or(config.listen);
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond loopback: only the actas proxy should reach the panel");
    }
    tracing::info!(%address, data_dir = %config.data_dir.display(), keys = config.public_keys.len(), "actas-panel listening");
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    store.close().await;
    tracing::info!("actas-panel stopped");
    served.map_err(StartError::Serve)
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Seconds since the epoch, the panel's one clock.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
