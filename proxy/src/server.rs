//! Assembles and runs one proxy instance: opens the store, loads policies and keys, starts
//! the audit writer, builds Pingora's server with its listeners, and after Pingora stops,
//! flushes the audit queue.
//!
//! Signals: SIGTERM finishes in-flight requests and stops (graceful), SIGINT stops fast,
//! SIGQUIT hands the listeners to a new process started with `--upgrade` (Pingora's
//! zero-downtime upgrade), SIGHUP reloads the policies. In every case the audit queue is
//! written out before the process exits.

use std::sync::Arc;

use anyhow::Context;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::prelude::Opt;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::app::{App, LoginLimits};
use crate::assertion::Signer25519;
use crate::audit::writer::{AuditLog, WriterHandle, WriterSettings};
use crate::audit::{Event, Kind};
use crate::config::Config;
use crate::metrics::METRICS;
use crate::policy::{PolicySet, PolicyStore};
use crate::proxy::Actas;
use crate::session::SessionCache;
use crate::store::Store;

/// Everything `serve` uses before any listener opens.
pub struct Prepared {
    /// The store, migrated.
    pub store: Store,
    /// The policies.
    pub policies: PolicySet,
    /// The signing key.
    pub signer: Signer25519,
}

/// Validates the configuration's files (TLS material, signing key, policies) and opens the
/// database, creating and migrating it as needed.
pub async fn prepare(config: &Config) -> anyhow::Result<Prepared> {
    let (signer, policies) = load_files(config)?;
    let store = Store::open(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| cannot_open_database(config))?;
    Ok(Prepared {
        store,
        policies,
        signer,
    })
}

/// What `actas check` validates: the files [`prepare`] loads, and the database only
/// looked at ([`Store::inspect`]): check neither creates it nor applies migrations.
pub async fn check(
    config: &Config,
) -> anyhow::Result<(PolicySet, crate::store::Backend, crate::store::Schema)> {
    let (_, policies) = load_files(config)?;
    let (backend, schema) = Store::inspect(&config.database.url)
        .await
        .with_context(|| cannot_open_database(config))?;
    Ok((policies, backend, schema))
}

/// The TLS material (checked), the signing key and the policies.
fn load_files(config: &Config) -> anyhow::Result<(Signer25519, PolicySet)> {
    if let Some(tls) = &config.tls {
        tls_pair_is_usable(config, tls)?;
    }
    let signer = Signer25519::load(&config.assertion.signing_key)?;
    let policies = PolicySet::load(&config.policy.dir)?;
    Ok((signer, policies))
}

/// The context of an error opening the configured database: the file, the key and the
/// URL without its credentials.
pub fn cannot_open_database(config: &Config) -> String {
    format!(
        "{}: `database.url`: cannot open the database {}",
        config.source.display(),
        crate::store::redacted_url(&config.database.url)
    )
}

/// Loads the certificate chain and private key the way the HTTPS listener will, and fails
/// naming the `tls` keys and the files when they do not parse or do not belong together.
///
/// Pingora loads them only while building its listener, in a thread of its own, and panics
/// on a bad pair; the panic is caught there, so the process would go on running with no
/// listener and look healthy. Here the same check is an error before anything starts.
fn tls_pair_is_usable(config: &Config, tls: &crate::config::TlsListener) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file = config.source.display();
    let (cert_path, key_path) = (tls.cert.display(), tls.key.display());
    let read = |key: &str, what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .with_context(|| format!("{file}: `{key}`: cannot read the {what} {}", path.display()))
    };
    let cert_pem = read("tls.cert", "certificate", &tls.cert)?;
    let key_pem = read("tls.key", "private key", &tls.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!("{file}: `tls.cert`: {cert_path} is not a PEM certificate chain: {e}")
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "{file}: `tls.cert`: {cert_path} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks, the server's first)"
        );
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!(
            "{file}: `tls.key`: {key_path} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
        )
    })?;
    // The provider is named rather than taken from the process default: with more than one
    // provider compiled in, `ServerConfig::builder()` would panic. Pingora uses ring too.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| anyhow::anyhow!("{file}: `tls`: cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                anyhow::anyhow!(
                    "{file}: `tls.cert`, `tls.key`: the private key {key_path} does not belong to the certificate {cert_path} (the first in the file): use the key made with that certificate"
                )
            }
            e => anyhow::anyhow!(
                "{file}: `tls.cert`, `tls.key`: cannot serve the certificate {cert_path} with the key {key_path}: {e}"
            ),
        })?;
    Ok(())
}

/// Resolves `host:port` to its first address.
pub async fn resolve(address: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to no address"))
}

/// Reloads the policies, keeping the last good set on error, and records the outcome.
pub async fn reload_policies(policies: &PolicyStore, audit: &AuditLog, trigger: &str) {
    let mut e = Event::new(Kind::PolicyReload);
    e.reason = Some(trigger.to_owned());
    match policies.reload() {
        Ok(set) => {
            METRICS
                .policy_reloads_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(trigger, policies = %set.describe(), "policies reloaded");
            e.decision = Some("allow".into());
            e.reason = Some(format!("{trigger}: loaded {}", set.describe()));
        }
        Err(err) => {
            METRICS
                .policy_reload_failures_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(trigger, error = %err, "policy reload refused; the last good policies stay in force");
            e.decision = Some("deny".into());
            e.reason = Some(format!("{trigger}: refused, last good set kept: {err}"));
        }
    }
    audit.record(e).await;
}

/// Fails with the file, the key and the address when a listening address is taken, before
/// anything is started: Pingora would otherwise panic in its listener thread.
fn listeners_are_free(config: &Config) -> anyhow::Result<()> {
    let listeners = [
        config.tls.as_ref().map(|t| ("tls.listen", t.listen)),
        config.http.as_ref().map(|h| ("http.listen", h.listen)),
    ];
    // Every socket is held until all are bound, so two listeners that claim the same
    // address fail here as well.
    let mut bound = Vec::new();
    for (key, addr) in listeners.into_iter().flatten() {
        match std::net::TcpListener::bind(addr) {
            Ok(socket) => bound.push(socket),
            Err(e) => anyhow::bail!(
                "{}: `{key}`: cannot listen on {addr}: {e} (is another actas or another service using it?)",
                config.source.display()
            ),
        }
    }
    Ok(())
}

/// Bytes a client connection buffers before a write reaches the socket.
///
/// Pingora buffers a response's writes only when its length is known (chunked bodies are
/// flushed chunk by chunk) and flushes when the body is complete. Its default of 1,460 bytes
/// sends the header of every response on its own (`sendto`, then the body in a second one,
/// waking the client twice); 32 KiB sends the header and a page of up to about 32 KiB in one
/// write, at 32 KiB of memory per open connection on top of Pingora's 64 KiB read buffer.
pub const WRITE_BUFFER: usize = 32 * 1024;

/// A listener on `addr` with actas's buffer sizes (the benchmark's no-op proxy uses it too).
pub fn listener(addr: std::net::SocketAddr) -> ListenerConfig {
    ListenerConfig::tcp(addr.to_string()).l4_buffer(L4BufferSettings::default().write(WRITE_BUFFER))
}

/// Runs the proxy until a shutdown signal; `upgrade` takes the listeners over from a
/// running instance.
pub fn serve(config: Config, upgrade: bool) -> anyhow::Result<()> {
    // A small runtime of our own for start-up, policy reloads and signals; Pingora runs
    // its own runtimes for the request path.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("actas-control")
        .enable_all()
        .build()?;
    let prepared = rt.block_on(prepare(&config))?;
    let upstream = rt
        .block_on(resolve(&config.upstream.address))
        .with_context(|| {
            format!(
                "{}: `upstream.address`: cannot resolve {}",
                config.source.display(),
                config.upstream.address
            )
        })?;
    if !upgrade {
        listeners_are_free(&config)?;
    }
    crate::directory::warm_up();
    let writer = WriterHandle::start(WriterSettings {
        url: config.database.url.clone(),
        instance: config.server.instance_id.clone(),
        capacity: config.audit.queue_capacity,
        batch_max: config.audit.batch_max,
        linger: crate::audit::writer::LINGER,
    })
    .context("cannot start the audit writer")?;
    let audit = writer.log();
    let app = Arc::new(App {
        sessions: SessionCache::new(config.session.cache_ttl),
        limits: LoginLimits::new(
            config.login.attempts_per_ip_per_minute,
            config.login.attempts_per_account_per_minute,
        ),
        devices: crate::device::DeviceCookies::new(prepared.signer.seed()),
        store: prepared.store,
        signer: prepared.signer,
        assertions: Default::default(),
        policies: PolicyStore::new(config.policy.dir.clone(), prepared.policies),
        audit: audit.clone(),
        upstream: std::sync::RwLock::new(upstream),
        config: config.clone(),
    });

    // A panel addressed by name (a container, a Kubernetes Service) may move: look it up
    // again every few seconds; keep the last address while the name does not resolve.
    if config
        .upstream
        .address
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        let watch_app = app.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                match resolve(&watch_app.config.upstream.address).await {
                    Ok(addr) => {
                        if let Ok(mut current) = watch_app.upstream.write() {
                            if *current != addr {
                                tracing::info!(%addr, "the panel's address changed");
                                *current = addr;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot resolve the panel's address; keeping the last one"),
                }
            }
        });
    }

    // Sessions nobody comes back to are ended on the record (their impersonations with
    // them), often enough that an end is recorded within a quarter of the idle timeout,
    // and at most every minute.
    let sweep_app = app.clone();
    let sweep_every = (config.session.idle_timeout / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    rt.spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep_app.sweep().await {
                Ok(0) => {}
                Ok(ended) => tracing::info!(ended, "ended sessions no longer in use"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot sweep ended sessions; trying again later")
                }
            }
        }
    });

    // Policy reloads: SIGHUP, and a change in the policy directory.
    let reload_app = app.clone();
    rt.spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot listen for SIGHUP; reload policies by restarting");
            return;
        };
        while hup.recv().await.is_some() {
            reload_policies(&reload_app.policies, &reload_app.audit, "SIGHUP").await;
        }
    });
    let _watch = if config.policy.watch {
        let watch_app = app.clone();
        let handle = rt.handle().clone();
        Some(crate::policy::watch(&config.policy.dir, move || {
            let a = watch_app.clone();
            handle
                .spawn(async move { reload_policies(&a.policies, &a.audit, "file change").await });
        })?)
    } else {
        None
    };

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        upgrade_sock: config.server.upgrade_sock.display().to_string(),
        pid_file: config.server.pid_file.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, Actas::new(app.clone()));
    if let Some(tls) = &config.tls {
        let mut settings = TlsSettings::intermediate(
            &tls.cert.display().to_string(),
            &tls.key.display().to_string(),
        )
        .map_err(|e| anyhow::anyhow!("{}: `tls`: {e}", config.source.display()))?;
        settings.enable_h2();
        service.add_listener(listener(tls.listen).tls(settings));
        tracing::info!(listen = %tls.listen, "HTTPS listener");
    }
    if let Some(http) = &config.http {
        service.add_listener(listener(http.listen));
        tracing::info!(listen = %http.listen, "plain-HTTP listener (behind a load balancer)");
    }
    server.add_service(service);
    tracing::info!(instance = %config.server.instance_id, upstream = %config.upstream.address, "actas is serving");
    server.run(RunArgs::default());

    tracing::info!("server stopped; writing out the audit queue");
    writer.shutdown();
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}
