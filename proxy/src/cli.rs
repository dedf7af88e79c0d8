//! The `actas` command line: the ops side of the product.
//!
//! Each subcommand parses its arguments (clap), loads what it needs and calls into the
//! library. Errors are returned to `main`, which prints them and exits non-zero; nothing
//! here panics on bad input.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::audit::chain::Verifier;
use crate::config::{Config, ConfigError};
use crate::directory::{hash_password, valid_username, Role, Status};
use crate::store::audit::{AuditFilter, AuditFrom, AuditPages};
use crate::store::directory::{AccountsFrom, NewAccount};
use crate::store::Store;

/// The configuration file used when neither `--config` nor `ACTAS_CONFIG` names one.
const DEFAULT_CONFIG: &str = "actas.toml";

/// actas: sign in as a customer, in front of a hosting panel, on the record.
#[derive(Parser, Debug)]
#[command(name = "actas", version, about)]
pub struct Cli {
    /// The configuration file [default: actas.toml].
    #[arg(long, global = true, env = "ACTAS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    Serve {
        /// Take over the listeners of a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Build a demo in ./var (certificates, accounts, panel) and run it.
    Demo(DemoArgs),
    /// Validate the configuration, keys, policies and database, then exit.
    Check,
    /// Manage the directory of accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Make development certificates and keys.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Explain and test the policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `actas demo` options.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its files.
    #[arg(long, default_value = "var")]
    pub dir: PathBuf,
    /// HTTPS address of the proxy.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Address of the panel (loopback).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub panel_listen: String,
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// The password of every demo account.
    #[arg(long, default_value = crate::demo::DEMO_PASSWORD)]
    pub password: String,
}

/// `actas accounts …`
#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Add an account; the password is read from standard input.
    Add {
        /// Username.
        username: String,
        /// admin, reseller or customer.
        #[arg(long)]
        role: String,
        /// Display name (defaults to the username).
        #[arg(long)]
        name: Option<String>,
        /// The account that created it (a reseller, for its customers).
        #[arg(long)]
        created_by: Option<String>,
    },
    /// List accounts.
    List {
        /// Only those created by this account.
        #[arg(long)]
        created_by: Option<String>,
    },
    /// Disable an account: it can no longer sign in, and its sessions and impersonations end.
    Disable {
        /// Username.
        username: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Username.
        username: String,
    },
    /// Set an account's password, read from standard input; the account's sessions end.
    Passwd {
        /// Username.
        username: String,
    },
    /// Move an account to another creator (a customer to another reseller).
    Move {
        /// Username.
        username: String,
        /// The new creator.
        #[arg(long)]
        to: String,
    },
}

/// `actas audit …`
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print records as JSON lines, oldest first.
    ///
    /// Records are ordered by their time (when the request arrived), then by their place in
    /// their instance's chain. A request's record is written when the request ends, so one
    /// dated before the records already printed can be written while an export runs: it is
    /// not in that export (which prints every record it reads once), only in exports started
    /// after it was written. Start the next export's `--since` with some margin to catch such
    /// records, or use `audit tail --follow` to see every record as it is written.
    Export(ExportArgs),
    /// Check every instance's hash chain; report the first broken link.
    ///
    /// The chain's hash has no key: it shows a record changed, removed or reordered
    /// without the hashes after it being computed again (by hand, a bug, a bad restore).
    /// Whoever can write the database can also recompute them, delete the newest records
    /// or add new ones; only a head kept elsewhere shows that for the records up to it.
    /// Every run prints each chain's head: keep those lines off this machine, and pass
    /// them back with --expect-head next time.
    Verify {
        /// A head printed by an earlier run, `INSTANCE:SEQ:HASH`: that chain must still
        /// hold this record (it may have grown since). May be given once per chain.
        #[arg(long = "expect-head", value_name = "INSTANCE:SEQ:HASH")]
        expect_head: Vec<String>,
    },
    /// Print the newest records, and with --follow keep printing new ones.
    Tail {
        /// How many records to print first (0: none, only new ones with --follow).
        #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(0..))]
        lines: i64,
        /// Keep printing new records.
        #[arg(short, long)]
        follow: bool,
    },
}

/// `actas audit export` filters.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// From this time on (RFC 3339, e.g. 2026-11-25T14:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// Only this impersonation id (ids made by earlier versions may begin with `-`; they are
    /// taken as the value, not as an option).
    #[arg(long, allow_hyphen_values = true)]
    pub impersonation: Option<String>,
    /// Only this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Output format.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
}

/// `actas certs …`
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// A development CA, a server certificate for localhost, and the assertion signing key.
    Dev {
        /// Output directory.
        #[arg(long, default_value = "certs/dev")]
        out: PathBuf,
        /// More names for the server certificate.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Make a new set even if one is there: the CA, the server certificate and the
        /// assertion signing key are all replaced, so browsers must trust the new CA and
        /// the panel must be given the new public key.
        #[arg(long)]
        force: bool,
    },
}

/// `actas policy …`
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show the decision for one actor, action and target, and the policies that made it.
    Explain {
        /// Who asks (a username in the directory).
        #[arg(long)]
        actor: String,
        /// `impersonate` or `request`.
        #[arg(long)]
        action: String,
        /// The target (impersonate) or subject (request) username.
        #[arg(long)]
        target: String,
        /// For `request`: the path.
        #[arg(long, default_value = "/")]
        path: String,
        /// For `request`: the method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The actor is already impersonating (impersonate), or the request is made while
        /// impersonating (request).
        #[arg(long)]
        impersonating: bool,
        /// For `request`: mail consent was given.
        #[arg(long)]
        mail_consent: bool,
    },
    /// Run the policy tests under the policy directory's `tests/`.
    Test {
        /// The policy directory (defaults to the configuration's `policy.dir`, or ./policies
        /// when the default actas.toml does not exist).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database.url, 2)
        .await
        .with_context(|| crate::server::cannot_open_database(config))
}

/// The store of a command that only reads: a missing SQLite file is an error.
async fn open_existing_store(config: &Config) -> anyhow::Result<Store> {
    Store::open_existing(&config.database.url, 2)
        .await
        .with_context(|| crate::server::cannot_open_database(config))
}

/// Reads a password: typed at a terminal without echo, or the first line of piped input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        // rpassword turns the terminal's echo off while the line is typed. It reads the
        // terminal on standard input (the one just checked) rather than its default,
        // /dev/tty, which a process without a controlling terminal cannot open.
        let config = rpassword::ConfigBuilder::new()
            .input_file_path("/dev/stdin")
            .output_writer(std::io::stderr())
            .build();
        // On Ctrl-C rpassword raises SIGINT while the terminal is still without echo; left
        // to the default action, the process would die there and leave the operator's
        // terminal silent. Ignored for the prompt, the signal lets rpassword return
        // `Interrupted` and restore the terminal first.
        let typed = {
            let _ignored = IgnoreInterrupt::new();
            rpassword::prompt_password_with_config(prompt, config)
        };
        let pw = match typed {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                bail!("interrupted: no password set")
            }
            other => other.context("cannot read the password from the terminal")?,
        };
        if pw.is_empty() {
            bail!("no password typed");
        }
        return Ok(pw);
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    password_line(&mut std::io::stdin().lock())
}

/// Ignores SIGINT while it lives, then restores what was there before.
struct IgnoreInterrupt(libc::sighandler_t);

impl IgnoreInterrupt {
    fn new() -> IgnoreInterrupt {
        // SAFETY: `signal` with SIG_IGN installs no code of ours; the previous disposition
        // it returns is put back unchanged on drop.
        IgnoreInterrupt(unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) })
    }
}

impl Drop for IgnoreInterrupt {
    fn drop(&mut self) {
        if self.0 != libc::SIG_ERR {
            // SAFETY: restores the disposition `new` found.
            unsafe { libc::signal(libc::SIGINT, self.0) };
        }
    }
}

/// The first line of `input` without its line ending, as a password.
fn password_line(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(pw)
}

impl Cli {
    /// The configuration file: the one named, or `actas.toml`.
    pub fn config_path(&self) -> &Path {
        self.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG))
    }
}

/// Runs the command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config_path().to_owned();
    let named = cli.config.is_some();
    match cli.command {
        Command::Serve { upgrade } => {
            let config = Config::load(&config_path)?;
            crate::server::serve(config, upgrade)
        }
        Command::Demo(args) => crate::demo::run(args),
        Command::Check => {
            let config = Config::load(&config_path)?;
            let (policies, backend, schema) = runtime()?.block_on(crate::server::check(&config))?;
            println!(
                "{}: OK (listeners: {}{}; upstream {}; {}; database {:?}, {schema})",
                config_path.display(),
                config
                    .tls
                    .as_ref()
                    .map(|t| format!("https {}", t.listen))
                    .unwrap_or_default(),
                config
                    .http
                    .as_ref()
                    .map(|h| format!(" http {}", h.listen))
                    .unwrap_or_default(),
                config.upstream.address,
                policies.describe(),
                backend,
            );
            Ok(())
        }
        Command::Accounts(cmd) => {
            let config = Config::load(&config_path)?;
            runtime()?.block_on(accounts(&config, cmd))
        }
        Command::Audit(cmd) => {
            let config = Config::load(&config_path)?;
            runtime()?.block_on(audit(&config, cmd))
        }
        Command::Certs(CertsCommand::Dev { out, names, force }) => {
            let set = crate::certs::dev(&out, &names, force)?;
            let files = set.files;
            if set.kept {
                println!(
                    "kept the development material already in {} (its server certificate covers {}); \
                     --force makes a new set",
                    out.display(),
                    crate::certs::DEFAULT_NAMES
                        .iter()
                        .copied()
                        .chain(names.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            println!("CA certificate:        {}", files.ca_cert.display());
            println!("server certificate:    {}", files.server_cert.display());
            println!("server key:            {}", files.server_key.display());
            println!("assertion signing key: {}", files.signing_key.display());
            println!(
                "its public key:        {}  (give this to the panel)",
                files.signing_pub.display()
            );
            Ok(())
        }
        Command::Policy(cmd) => policy(&config_path, named, cmd),
    }
}

async fn accounts(config: &Config, cmd: AccountsCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        AccountsCommand::Add {
            username,
            role,
            name,
            created_by,
        } => {
            if !valid_username(&username) {
                bail!("`{username}` is not a valid username: 1-64 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit");
            }
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            if let Some(c) = &created_by {
                check_owner(&store, "--created-by", c, &username).await?;
            }
            let password = read_password("Password: ")?;
            let hash = hash_password(&password)?;
            let added = store
                .add_account(NewAccount {
                    username: &username,
                    display_name: name.as_deref().unwrap_or(&username),
                    role,
                    created_by: created_by.as_deref(),
                    password_hash: &hash,
                })
                .await?;
            if !added {
                bail!("an account named `{username}` already exists");
            }
            println!("added {username} ({role})");
        }
        AccountsCommand::List { created_by } => {
            let list = store
                .accounts("", created_by.as_deref(), &AccountsFrom::First, i64::MAX)
                .await?;
            println!(
                "{:<20} {:<10} {:<16} {:<9} NAME",
                "USERNAME", "ROLE", "CREATED BY", "STATUS"
            );
            for a in list {
                println!(
                    "{:<20} {:<10} {:<16} {:<9} {}",
                    a.username,
                    a.role,
                    a.created_by.as_deref().unwrap_or("-"),
                    a.status.as_str(),
                    a.display_name
                );
            }
        }
        AccountsCommand::Disable { username } | AccountsCommand::Enable { username }
            if !valid_username(&username) =>
        {
            bail!("`{username}` is not a valid username");
        }
        AccountsCommand::Disable { username } => {
            if !store.set_status(&username, Status::Disabled).await? {
                bail!("no account named `{username}`");
            }
            // For good: enabling the account again does not bring these back.
            let sessions = store.revoke_sessions(&username).await?;
            let impersonations = store.revoke_impersonations_of(&username).await?;
            println!(
                "disabled {username}: {sessions} session(s) of it and {impersonations} impersonation(s) of it are revoked; \
                 each ends on the record at its next request or within a minute"
            );
        }
        AccountsCommand::Enable { username } => {
            if !store.set_status(&username, Status::Active).await? {
                bail!("no account named `{username}`");
            }
            println!("enabled {username}");
        }
        AccountsCommand::Passwd { username } => {
            if store.account(&username).await?.is_none() {
                bail!("no account named `{username}`");
            }
            let password = read_password("New password: ")?;
            let hash = hash_password(&password)?;
            store.set_password_hash(&username, &hash).await?;
            // Whoever signed in with the old password is signed out, on the record.
            let revoked = store.revoke_sessions(&username).await?;
            println!(
                "password of {username} changed; {revoked} session(s) signed in with the old one end at their next request"
            );
        }
        AccountsCommand::Move { username, to } => {
            if store.account(&username).await?.is_none() {
                bail!("no account named `{username}`");
            }
            check_owner(&store, "--to", &to, &username).await?;
            if !store.set_created_by(&username, Some(&to)).await? {
                bail!("no account named `{username}`");
            }
            println!("{username} now belongs to {to}");
        }
    }
    store.close().await;
    Ok(())
}

/// Checks that `owner` (given with `flag`) may own `username`: an existing admin or
/// reseller, and neither the account itself nor one it owns, directly or further down
/// (which would make a loop of owners).
async fn check_owner(store: &Store, flag: &str, owner: &str, username: &str) -> anyhow::Result<()> {
    let account = store
        .account(owner)
        .await?
        .with_context(|| format!("{flag} {owner}: no such account"))?;
    if !account.role.is_staff() {
        bail!(
            "{flag} {owner}: {owner} is a {}; only an admin or a reseller can own accounts",
            account.role
        );
    }
    let mut above = Some(account);
    let mut steps = 0;
    while let Some(a) = above {
        if a.username == username {
            bail!(
                "{flag} {owner}: {}",
                if owner == username {
                    format!("{username} cannot own itself")
                } else {
                    format!("{owner} belongs to {username}, so {username} cannot belong to {owner}")
                }
            );
        }
        steps += 1;
        above = match a.created_by {
            Some(up) if steps < 1_000 => store.account(&up).await?,
            _ => None,
        };
    }
    Ok(())
}

/// `INSTANCE:SEQ:HASH`, as `audit verify` prints a chain's head.
fn parse_head(text: &str) -> anyhow::Result<(String, i64, String)> {
    let bad = || {
        anyhow::anyhow!(
            "--expect-head {text}: expected INSTANCE:SEQ:HASH, as `actas audit verify` prints a chain's head"
        )
    };
    let mut parts = text.rsplitn(3, ':');
    let hash = parts.next().ok_or_else(bad)?;
    let seq = parts.next().ok_or_else(bad)?;
    let instance = parts.next().ok_or_else(bad)?;
    let seq: i64 = seq.parse().map_err(|_| bad())?;
    if instance.is_empty()
        || seq < 1
        || hash.len() != 64
        || !hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    Ok((instance.to_owned(), seq, hash.to_owned()))
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// One record as a JSON line (`ts` in RFC 3339).
pub fn record_json(r: &crate::audit::Record) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ts".into(), serde_json::Value::String(rfc3339(r.ts)));
    }
    v.to_string()
}

async fn audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        AuditCommand::Export(args) => {
            if args.format != "jsonl" {
                bail!("--format {}: only jsonl is supported", args.format);
            }
            let since = match &args.since {
                Some(s) => {
                    let t = time::OffsetDateTime::parse(
                        s,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .with_context(|| {
                        format!("--since {s}: not an RFC 3339 time like 2026-11-25T14:00:00Z")
                    })?;
                    Some(i64::try_from(t.unix_timestamp_nanos() / 1_000_000)?)
                }
                None => None,
            };
            if let Some(k) = &args.kind {
                if crate::audit::Kind::parse(k).is_none() {
                    bail!("--kind {k}: not a record kind");
                }
            }
            let filter = AuditFilter {
                actor: args.actor,
                subject: args.subject,
                impersonation_id: args.impersonation,
                kind: args.kind,
                since,
                until: None,
                instance: None,
            };
            let mut pages = AuditPages::new(filter, 5_000);
            loop {
                let page = pages.next(&store).await?;
                if page.is_empty() {
                    break;
                }
                for r in &page {
                    writeln!(out, "{}", record_json(r))?;
                }
            }
        }
        AuditCommand::Verify { expect_head } => {
            let mut expected = std::collections::BTreeMap::new();
            for text in &expect_head {
                let (instance, seq, hash) = parse_head(text)?;
                if expected.insert(instance.clone(), (seq, hash)).is_some() {
                    bail!("--expect-head {text}: chain {instance} is given twice");
                }
            }
            let mut instances = store.audit_instances().await?;
            for instance in expected.keys() {
                if !instances.contains(instance) {
                    instances.push(instance.clone());
                }
            }
            let mut total = 0;
            let mut broken = false;
            for instance in &instances {
                let mut v = Verifier::new(instance);
                let anchor = expected.get(instance);
                // From the lowest number there is, not from 1: a record written into the
                // table by hand at seq 0 or below is read, and refused, like any other.
                let mut from = i64::MIN;
                let result = 'chain: loop {
                    let page = store.audit_chain_from(instance, from, 5_000).await?;
                    for r in &page {
                        if let Err(b) = v.check(r) {
                            break 'chain Err(b.to_string());
                        }
                        if let Some((seq, hash)) = anchor {
                            if r.seq == *seq && r.hash != *hash {
                                break 'chain Err(format!(
                                    "chain {instance} broken at or before seq {seq} (record {}): its hash is not the one the head kept says ({hash}): the records up to it were rewritten and their hashes computed again",
                                    r.id
                                ));
                            }
                        }
                        from = r.seq.saturating_add(1);
                    }
                    if page.len() < 5_000 {
                        break Ok(());
                    }
                };
                let result = result.and_then(|()| match anchor {
                    Some((seq, hash)) if v.head().0 < *seq => Err(format!(
                        "chain {instance} ends at seq {}, but seq {seq} was recorded (hash {hash}): the newest records were deleted",
                        v.head().0
                    )),
                    _ => Ok(()),
                });
                match result {
                    Ok(()) => {
                        let (seq, hash) = v.head();
                        writeln!(
                            out,
                            "chain {instance}: {} records, intact; head {instance}:{seq}:{hash}",
                            v.checked()
                        )?;
                    }
                    Err(problem) => {
                        broken = true;
                        writeln!(out, "{problem}")?;
                    }
                }
                total += v.checked();
            }
            if broken {
                bail!("the audit log has been tampered with (see above)");
            }
            writeln!(
                out,
                "OK: {total} records in {} chain(s) verified",
                instances.len()
            )?;
        }
        AuditCommand::Tail { lines, follow } => {
            // Where each chain ends before the newest are read: with --follow, whatever is
            // written after this is printed.
            let mut heads = std::collections::HashMap::new();
            if follow {
                for instance in store.audit_instances().await? {
                    let head = store.audit_chain_head(&instance).await?.map_or(0, |h| h.0);
                    heads.insert(instance, head);
                }
            }
            let filter = AuditFilter::default();
            let mut newest = if lines > 0 {
                store
                    .audit_records(&filter, true, &AuditFrom::First, lines)
                    .await?
            } else {
                Vec::new()
            };
            newest.reverse();
            let printed: std::collections::HashSet<String> =
                newest.iter().map(|r| r.id.clone()).collect();
            for r in &newest {
                writeln!(out, "{}", record_json(r))?;
            }
            out.flush()?;
            // With --follow, runs until interrupted (Ctrl-C), like `tail -f`. New records are
            // found by their place in their chain, not by time: a request's record is dated
            // when the request arrived and written when it ended, so a long upload's record
            // can be older than records printed already.
            if follow {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    for instance in store.audit_instances().await? {
                        let after = heads.entry(instance.clone()).or_insert(0);
                        loop {
                            let page = store.audit_chain(&instance, *after, 5_000).await?;
                            for r in &page {
                                *after = r.seq;
                                if !printed.contains(&r.id) {
                                    writeln!(out, "{}", record_json(r))?;
                                }
                            }
                            if page.len() < 5_000 {
                                break;
                            }
                        }
                    }
                    out.flush()?;
                }
            }
        }
    }
    store.close().await;
    Ok(())
}

/// `named`: the file was given by `--config` or `ACTAS_CONFIG`, not taken by default.
fn policy(config_path: &Path, named: bool, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Test { dir } => {
            let dir = match dir {
                Some(d) => d,
                None => match Config::load(config_path) {
                    Ok(c) => c.policy.dir,
                    // Only the default file may be absent, as when trying policies out in a
                    // checkout: a configuration that exists, or was named (even as
                    // `actas.toml`), and cannot be used is an error, not a reason to test
                    // some other directory.
                    Err(ConfigError::Read { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound && !named =>
                    {
                        PathBuf::from("policies")
                    }
                    Err(e) => bail!(
                        "{e} (the policy directory is the configuration's `policy.dir`; pass --dir DIR to test another)"
                    ),
                },
            };
            let set = crate::policy::PolicySet::load(&dir)?;
            let report = crate::policy::run_tests(&set, &dir.join("tests"))?;
            print!("{report}");
            if !report.all_passed() {
                bail!("some policy tests failed");
            }
            Ok(())
        }
        PolicyCommand::Explain {
            actor,
            action,
            target,
            path,
            method,
            impersonating,
            mail_consent,
        } => {
            let config = Config::load(config_path)?;
            let set = crate::policy::PolicySet::load(&config.policy.dir)?;
            let rt = runtime()?;
            let (a, t) = rt.block_on(async {
                let store = open_existing_store(&config).await?;
                let a = store.account(&actor).await?;
                let t = store.account(&target).await?;
                store.close().await;
                anyhow::Ok((a, t))
            })?;
            let a = a.with_context(|| format!("--actor {actor}: no such account"))?;
            let t = t.with_context(|| format!("--target {target}: no such account"))?;
            let text = match action.as_str() {
                "impersonate" => crate::policy::explain_impersonation(
                    &set,
                    &a.facts(),
                    &t.facts(),
                    impersonating,
                ),
                "request" => crate::policy::explain_request(
                    &set,
                    &crate::policy::RequestFacts {
                        actor: &a.facts(),
                        subject: &t.facts(),
                        impersonating,
                        method: &method,
                        path: &crate::policy::request_path(&path),
                        mail_consent,
                    },
                ),
                other => bail!("--action {other}: use impersonate or request"),
            };
            print!("{text}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piped_password_is_its_first_line_without_the_line_ending() {
        let mut input = std::io::Cursor::new("correct horse\r\nsecond line\n");
        assert_eq!(password_line(&mut input).unwrap(), "correct horse");
        let mut input = std::io::Cursor::new("no newline at the end");
        assert_eq!(password_line(&mut input).unwrap(), "no newline at the end");
        for empty in ["", "\n", "\r\n"] {
            let err = password_line(&mut std::io::Cursor::new(empty)).unwrap_err();
            assert!(err.to_string().contains("no password"), "{empty:?}: {err}");
        }
    }

    #[test]
    fn an_impersonation_id_beginning_with_a_hyphen_is_a_value_not_an_option() {
        let cli = Cli::try_parse_from([
            "actas",
            "audit",
            "export",
            "--impersonation",
            "-xAbC_d-e",
            "--format",
            "jsonl",
        ])
        .expect("the id parses as the option's value");
        let Command::Audit(AuditCommand::Export(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.impersonation.as_deref(), Some("-xAbC_d-e"));
        assert_eq!(args.format, "jsonl");
    }
}
