//! `actas demo`: everything needed to see the product on one machine, made in `./var`
//! and started with one command: development certificates and keys, a configuration, the
//! demo directory (ada, rita, rex, carl, cora, dave), the panel as a child process, and the
//! proxy in front of it. Ctrl-C stops both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{bail, Context};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::directory::{hash_password, Role};
use crate::store::directory::NewAccount;
use crate::store::Store;

/// The password of every demo account, unless `--password` says otherwise.
pub const DEMO_PASSWORD: &str = "actas-demo";

/// The demo directory: (username, display name, role, created by).
pub const DEMO_ACCOUNTS: [(&str, &str, Role, Option<&str>); 6] = [
    ("ada", "Ada Admin", Role::Admin, None),
    ("rita", "Rita Reseller", Role::Reseller, Some("ada")),
    ("rex", "Rex Reseller", Role::Reseller, Some("ada")),
    ("carl", "Carl Customer", Role::Customer, Some("rita")),
    ("cora", "Cora Customer", Role::Customer, Some("rita")),
    ("dave", "Dave Customer", Role::Customer, Some("rex")),
];

/// Adds the demo accounts that are missing, all with `password`.
pub async fn seed(store: &Store, password: &str) -> anyhow::Result<()> {
    let hash = {
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password(&pw)).await??
    };
    for (username, name, role, created_by) in DEMO_ACCOUNTS {
        store
            .add_account(NewAccount {
                username,
                display_name: name,
                role,
                created_by,
                password_hash: &hash,
            })
            .await?;
    }
    Ok(())
}

/// The configuration the demo writes.
pub fn config_text(listen: &str, panel: &str, policies: &Path) -> String {
    format!(
        r#"# Written by `actas demo`. See deploy/actas.toml for every key explained.
[server]
instance_id = "demo"
threads = 2

[tls]
listen = "{listen}"
cert = "certs/server.pem"
key = "certs/server.key"

[upstream]
address = "{panel}"

[database]
url = "sqlite://actas.db"

[assertion]
signing_key = "certs/signing.key"

[policy]
dir = "{}"
"#,
        policies.display()
    )
}

fn panel_binary() -> PathBuf {
    let name = "actas-panel";
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

struct PanelProcess(Child);

impl Drop for PanelProcess {
    fn drop(&mut self) {
        // SIGTERM lets the panel finish; then reap it.
        let pid = self.0.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Builds `./var` and runs the panel and the proxy until Ctrl-C.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let policies = args
        .policies
        .canonicalize()
        .with_context(|| format!("the policy directory {} is missing: run `actas demo` from the repository root, or pass --policies DIR", args.policies.display()))?;
    let certs = crate::certs::dev(&dir.join("certs"), &[], false)?.files;
    let config_path = dir.join("actas.toml");
    std::fs::write(
        &config_path,
        config_text(&args.listen, &args.panel_listen, &policies),
    )?;
    let config = Config::load(&config_path)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(&config.database.url, 2).await?;
        seed(&store, &args.password).await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    drop(rt);

    let panel_data = dir.join("panel");
    let child = Command::new(panel_binary())
        .arg("--listen")
        .arg(&args.panel_listen)
        .arg("--data-dir")
        .arg(&panel_data)
        .arg("--public-key")
        .arg(&certs.signing_pub)
        .spawn()
        .context("cannot start actas-panel (build it with `cargo build -p actas-panel`)")?;
    let _panel = PanelProcess(child);

    let port = args.listen.rsplit(':').next().unwrap_or("8443");
    if args.listen.parse::<std::net::SocketAddr>().is_err() {
        bail!(
            "--listen {}: not an address like 127.0.0.1:8443",
            args.listen
        );
    }
    println!();
    println!("  actas demo is running");
    println!();
    println!(
        "  Open      https://localhost:{port}/   (the dev CA is {})",
        certs.ca_cert.display()
    );
    println!("  Accounts  ada (admin) · rita, rex (resellers) · carl, cora (rita's customers) · dave (rex's customer)");
    println!(
        "  Password  {}   (the same for every demo account)",
        args.password
    );
    println!("  Files     {}", dir.display());
    println!();
    println!("  Ctrl-C stops the proxy and the panel.");
    println!();
    crate::server::serve(config, false)
}
