//! The `actas-panel` binary: parses the command line, sets up logging (to stderr, as
//! structured `tracing` events), loads the configuration and runs the panel until
//! SIGINT or SIGTERM. All behaviour lives in the library; this file must stay a thin
//! edge where errors become an exit status.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use actas_panel::config::Overrides;
use actas_panel::Config;

/// A minimal hosting panel that trusts identity only from an actas assertion.
#[derive(Debug, Parser)]
#[command(name = "actas-panel", version, about)]
struct Cli {
    /// TOML config file (keys: listen, data_dir, public_keys, audience, issuer).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Folder for panel.db and the accounts' files [default: ./var/panel].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Ed25519 public key (PEM) whose assertions are accepted; repeat during key rotation.
    #[arg(long = "public-key", value_name = "PATH")]
    public_keys: Vec<PathBuf>,
    /// The `aud` an assertion must carry [default: actas-panel].
    #[arg(long)]
    audience: Option<String>,
    /// The `iss` an assertion must carry [default: actas].
    #[arg(long)]
    issuer: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        public_keys: cli.public_keys,
        audience: cli.audience,
        issuer: cli.issuer,
    };
    let config = Config::load(cli.config.as_deref(), overrides)?;
    actas_panel::serve(config).await?;
    Ok(())
}
