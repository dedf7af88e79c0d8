//! Scenario 3: a no-op Pingora passthrough with the same Pingora version and settings as
//! actas (one service, plain-HTTP listener, the given worker threads), forwarding every
//! request to the upstream unchanged.
//!
//! `bench-noop LISTEN UPSTREAM THREADS [SPIN_NS]`: with SPIN_NS, every request first spins
//! for that many nanoseconds on the worker thread, a known amount of work the harness uses
//! to calibrate what a microsecond of per-request work costs in throughput on this machine.
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;

// The same allocator as actas, so the comparison is of the proxies' work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Noop {
    upstream: std::net::SocketAddr,
    /// Busy work per request (zero: none, the plain no-op).
    spin: Duration,
}

#[async_trait]
impl ProxyHttp for Noop {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, _s: &mut Session, _c: &mut ()) -> Result<bool> {
        if !self.spin.is_zero() {
            let start = std::time::Instant::now();
            while start.elapsed() < self.spin {
                std::hint::spin_loop();
            }
        }
        Ok(false)
    }
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        // The same peer settings as actas's defaults (upstream.connect_timeout_ms,
        // upstream.read_timeout_ms, pooled connections idle for up to a minute).
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        peer.options.read_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18091".into());
    let upstream = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()?;
    let threads: usize = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let spin = Duration::from_nanos(args.next().unwrap_or_else(|| "0".into()).parse()?);
    let dir = std::env::temp_dir();
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: dir
            .join(format!("bench-noop-{}.sock", std::process::id()))
            .display()
            .to_string(),
        pid_file: dir
            .join(format!("bench-noop-{}.pid", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut svc =
        pingora::proxy::http_proxy_service(&server.configuration, Noop { upstream, spin });
    // Same listener settings as actas (write buffer size included).
    svc.add_listener(actas_proxy::server::listener(listen.parse()?));
    server.add_service(svc);
    server.run(RunArgs::default());
    Ok(())
}
