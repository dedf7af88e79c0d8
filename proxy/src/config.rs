//! The configuration file (`actas.toml`): its syntax, and the validated model the rest of
//! the proxy reads.
//!
//! Parsing happens in two steps, as River does it: serde reads the file into `raw` structs
//! that mirror its syntax exactly (unknown keys are rejected), then [`Config::from_raw`]
//! checks every value and builds the internal model. Every error names the file, line and
//! column: of the syntax at fault, or of the value found wanting. Relative paths in the file
//! are relative to the file's own directory. This module never touches the network or the
//! database.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, in toml's words.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{path}:{line}:{column}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value (of its table, or 1 when the key is not in the file).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key, e.g. `session.idle_timeout_minutes`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A network range written as `ADDR/PREFIX` (or a bare address), for `trusted_proxies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `127.0.0.1`, `10.0.0.0/8` or `::1/128`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                // An IPv4 client seen through an IPv6 socket.
                IpNet {
                    addr: IpAddr::V6(net),
                    prefix: self.prefix,
                }
                .contains(IpAddr::V6(ip.to_ipv6_mapped()))
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => self.contains(IpAddr::V4(v4)),
                None => false,
            },
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (for messages).
    pub source: PathBuf,
    /// Pingora's own server settings and this instance's identity.
    pub server: ServerSettings,
    /// The HTTPS listener.
    pub tls: Option<TlsListener>,
    /// The plain-HTTP listener, for running behind a load balancer that terminates TLS.
    pub http: Option<HttpListener>,
    /// The panel.
    pub upstream: Upstream,
    /// The shared store.
    pub database: Database,
    /// Session lifetimes.
    pub session: SessionSettings,
    /// Impersonation limits.
    pub impersonation: ImpersonationSettings,
    /// How the identity assertion is made.
    pub assertion: AssertionSettings,
    /// Where the Cedar policies live.
    pub policy: PolicySettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Sign-in throttling.
    pub login: LoginSettings,
}

/// Pingora's server settings and this instance's identity.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Names this instance in its audit chain; unique per instance sharing one database
    /// (default: the host name).
    pub instance_id: String,
    /// Worker threads.
    pub threads: usize,
    /// Seconds to keep serving after a graceful-terminate signal.
    pub grace_period_seconds: u64,
    /// Seconds given to in-flight work when the runtime shuts down.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Socket used to hand listeners to a new process in a zero-downtime upgrade.
    pub upgrade_sock: PathBuf,
    /// The pid file Pingora writes.
    pub pid_file: PathBuf,
}

/// The HTTPS listener.
#[derive(Clone, Debug)]
pub struct TlsListener {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The plain-HTTP listener.
#[derive(Clone, Debug)]
pub struct HttpListener {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// The panel.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `host:port` of the panel; a host name is resolved at start and every few seconds.
    pub address: String,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Timeout for reading the panel's response.
    pub read_timeout: Duration,
}

/// The shared store.
#[derive(Clone, Debug)]
pub struct Database {
    /// `sqlite://path` or `postgres://...`.
    pub url: String,
    /// Pool size for the request path.
    pub max_connections: u32,
}

/// Session lifetimes.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute_timeout: Duration,
    /// How long an instance may answer from its session cache before asking the store again.
    pub cache_ttl: Duration,
}

/// Impersonation limits.
#[derive(Clone, Debug)]
pub struct ImpersonationSettings {
    /// An impersonation ends this long after it started.
    pub max_duration: Duration,
    /// An impersonation unused this long ends.
    pub idle_timeout: Duration,
}

/// How the identity assertion is made.
#[derive(Clone, Debug)]
pub struct AssertionSettings {
    /// PEM (PKCS#8) Ed25519 private key.
    pub signing_key: PathBuf,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// `exp - iat`.
    pub ttl: Duration,
}

/// Where the Cedar policies live.
#[derive(Clone, Debug)]
pub struct PolicySettings {
    /// The directory with `schema.cedarschema` and `*.cedar`.
    pub dir: PathBuf,
    /// Reload when a file there changes (besides SIGHUP).
    pub watch: bool,
}

/// The audit log.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// Query parameters whose values are replaced by `REDACTED` in recorded paths.
    pub redact_query_params: Vec<String>,
    /// Records the writer may hold before requests wait for room.
    pub queue_capacity: usize,
    /// Records written in one transaction at most.
    pub batch_max: usize,
    /// How long a state-changing impersonated request waits for its record to be committed.
    pub write_ahead_timeout: Duration,
}

/// Sign-in throttling.
#[derive(Clone, Debug)]
pub struct LoginSettings {
    /// Sign-in attempts per client IP per minute.
    pub attempts_per_ip_per_minute: u32,
    /// Sign-in attempts per account per minute.
    pub attempts_per_account_per_minute: u32,
}

impl Default for LoginSettings {
    /// The limits when the file sets none.
    fn default() -> Self {
        LoginSettings {
            attempts_per_ip_per_minute: 30,
            attempts_per_account_per_minute: 10,
        }
    }
}

mod raw {
    //! The file's syntax, exactly: every key optional where a default exists, unknown keys refused.
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub server: Server,
        pub tls: Option<Tls>,
        pub http: Option<Http>,
        pub upstream: Option<Upstream>,
        #[serde(default)]
        pub database: Database,
        #[serde(default)]
        pub session: Session,
        #[serde(default)]
        pub impersonation: Impersonation,
        pub assertion: Option<Assertion>,
        #[serde(default)]
        pub policy: Policy,
        #[serde(default)]
        pub audit: Audit,
        #[serde(default)]
        pub login: Login,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub instance_id: Option<String>,
        pub threads: Option<usize>,
        pub grace_period_seconds: Option<u64>,
        pub graceful_shutdown_timeout_seconds: Option<u64>,
        pub upgrade_sock: Option<String>,
        pub pid_file: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub listen: String,
        pub cert: String,
        pub key: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        pub listen: String,
        #[serde(default)]
        pub trusted_proxies: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Upstream {
        pub address: String,
        pub connect_timeout_ms: Option<u64>,
        pub read_timeout_ms: Option<u64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Database {
        pub url: Option<String>,
        pub max_connections: Option<u32>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Session {
        pub idle_timeout_minutes: Option<u64>,
        pub absolute_timeout_minutes: Option<u64>,
        /// Seconds instead of minutes, for tests of expiry; both set is an error.
        pub idle_timeout_seconds: Option<u64>,
        pub absolute_timeout_seconds: Option<u64>,
        pub cache_ttl_ms: Option<u64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Impersonation {
        pub max_duration_minutes: Option<u64>,
        pub idle_timeout_minutes: Option<u64>,
        /// Seconds instead of minutes, for tests of expiry; both set is an error.
        pub max_duration_seconds: Option<u64>,
        pub idle_timeout_seconds: Option<u64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Assertion {
        pub signing_key: String,
        pub issuer: Option<String>,
        pub audience: Option<String>,
        pub ttl_seconds: Option<u64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Policy {
        pub dir: Option<String>,
        pub watch: Option<bool>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Audit {
        pub redact_query_params: Option<Vec<String>>,
        pub queue_capacity: Option<usize>,
        pub batch_max: Option<usize>,
        pub write_ahead_timeout_ms: Option<u64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Login {
        pub attempts_per_ip_per_minute: Option<u32>,
        pub attempts_per_account_per_minute: Option<u32>,
    }
}

/// Converts a byte offset in `text` to a 1-based (line, column).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where each key's value sits in the file, so that an error about a value can name its
/// line and column as a syntax error does.
struct Positions<'t> {
    text: &'t str,
    document: Option<toml::Spanned<toml::de::DeTable<'t>>>,
}

impl<'t> Positions<'t> {
    fn of(text: &'t str) -> Positions<'t> {
        Positions {
            text,
            document: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// The (line, column) of the value at the dotted `key` (of its `item`th element, for an
    /// array). A key the file does not set (a default found wanting, a missing section) is
    /// placed at the nearest table the file does have, or at the start of the file.
    fn find(&self, key: &str, item: Option<usize>) -> (usize, usize) {
        let Some(document) = &self.document else {
            return (1, 1);
        };
        let mut start = None;
        let mut table = Some(document.get_ref());
        for part in key.split('.') {
            let Some(value) = table.and_then(|t| t.get(part)) else {
                break;
            };
            start = Some(value.span().start);
            table = value.get_ref().as_table();
            if let (Some(i), Some(array)) = (item, value.get_ref().as_array()) {
                start = array.get(i).map(|v| v.span().start).or(start);
            }
        }
        start.map_or((1, 1), |offset| line_col(self.text, offset))
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let (line, column) = line_col(&text, valid);
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: "the file is not UTF-8 text: save it as UTF-8".into(),
            }
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        Config::from_raw(path, &Positions::of(text), raw)
    }

    fn from_raw(path: &Path, at: &Positions<'_>, raw: raw::File) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let invalid_item = |key: &str, item: Option<usize>, message: String| {
            let (line, column) = at.find(key, item);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key: key.to_owned(),
                message,
            }
        };
        let invalid = |key: &str, message: String| invalid_item(key, None, message);
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let addr = |key: &str, text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse().map_err(|_| {
                invalid(
                    key,
                    format!("`{text}` is not an address like 127.0.0.1:8443"),
                )
            })
        };
        let positive = |key: &str, v: u64| -> Result<u64, ConfigError> {
            if v == 0 {
                Err(invalid(key, "must be greater than zero".into()))
            } else {
                Ok(v)
            }
        };

        let server = ServerSettings {
            instance_id: match raw.server.instance_id {
                Some(id) if valid_instance_id(&id) => id,
                Some(id) => {
                    return Err(invalid(
                        "server.instance_id",
                        format!("`{id}` must be 1-64 characters of a-z, A-Z, 0-9, `-`, `_` or `.`"),
                    ))
                }
                None => default_instance_id(),
            },
            threads: match raw.server.threads {
                Some(0) => return Err(invalid("server.threads", "must be at least 1".into())),
                Some(n) => n,
                None => 2,
            },
            grace_period_seconds: raw.server.grace_period_seconds.unwrap_or(1),
            graceful_shutdown_timeout_seconds: raw
                .server
                .graceful_shutdown_timeout_seconds
                .unwrap_or(5),
            upgrade_sock: raw
                .server
                .upgrade_sock
                .map_or_else(|| base.join("actas_upgrade.sock"), |p| resolve(&p)),
            pid_file: raw
                .server
                .pid_file
                .map_or_else(|| base.join("actas.pid"), |p| resolve(&p)),
        };

        let tls = match raw.tls {
            Some(t) => Some(TlsListener {
                listen: addr("tls.listen", &t.listen)?,
                cert: resolve(&t.cert),
                key: resolve(&t.key),
            }),
            None => None,
        };
        let http = match raw.http {
            Some(h) => Some(HttpListener {
                listen: addr("http.listen", &h.listen)?,
                trusted_proxies: h
                    .trusted_proxies
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        IpNet::parse(t).ok_or_else(|| {
                            invalid_item(
                                "http.trusted_proxies",
                                Some(i),
                                format!("`{t}` is not an address or CIDR range like 10.0.0.0/8"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            }),
            None => None,
        };
        if let (Some(t), Some(h)) = (&tls, &http) {
            if listeners_overlap(t.listen, h.listen) {
                return Err(invalid(
                    "http.listen",
                    format!(
                        "{} overlaps `tls.listen` ({}): the HTTPS and plain-HTTP listeners need different ports, or different addresses that are not a wildcard (0.0.0.0, [::]) on the same port",
                        h.listen, t.listen
                    ),
                ));
            }
        }
        if tls.is_none() && http.is_none() {
            return Err(invalid(
                "tls",
                "no listener: add a [tls] section (listen, cert, key) or an [http] section".into(),
            ));
        }

        let upstream = raw.upstream.ok_or_else(|| {
            invalid(
                "upstream",
                "missing: add [upstream] address = \"127.0.0.1:8081\"".into(),
            )
        })?;
        let upstream = Upstream {
            address: host_port("upstream.address", &upstream.address)
                .map_err(|m| invalid("upstream.address", m))?,
            connect_timeout: Duration::from_millis(positive(
                "upstream.connect_timeout_ms",
                upstream.connect_timeout_ms.unwrap_or(2_000),
            )?),
            read_timeout: Duration::from_millis(positive(
                "upstream.read_timeout_ms",
                upstream.read_timeout_ms.unwrap_or(60_000),
            )?),
        };

        let database = Database {
            url: match raw.database.url {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    url
                }
                Some(url) => match url.strip_prefix("sqlite://") {
                    Some(rest) if rest.starts_with(':') => url,
                    Some(rest) => {
                        let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
                        let file = resolve(file);
                        let mut url = format!("sqlite://{}", file.display());
                        if !query.is_empty() {
                            url.push('?');
                            url.push_str(query);
                        }
                        url
                    }
                    None => {
                        return Err(invalid(
                            "database.url",
                            format!("`{url}` must start with sqlite:// or postgres://"),
                        ))
                    }
                },
                None => format!("sqlite://{}", base.join("actas.db").display()),
            },
            max_connections: match raw.database.max_connections {
                Some(0) => {
                    return Err(invalid(
                        "database.max_connections",
                        "must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => 8,
            },
        };

        let pick = |key_min: &str,
                    min: Option<u64>,
                    key_sec: &str,
                    sec: Option<u64>,
                    default_min: u64|
         -> Result<Duration, ConfigError> {
            let (key, d) = match (min, sec) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        key_sec,
                        format!("set either `{key_min}` or `{key_sec}`, not both"),
                    ))
                }
                (Some(m), None) => (key_min, minutes(positive(key_min, m)?)),
                (None, Some(s)) => (key_sec, Duration::from_secs(positive(key_sec, s)?)),
                (None, None) => (key_min, minutes(default_min)),
            };
            if d > LONGEST_TIMEOUT {
                return Err(invalid(
                    key,
                    format!(
                        "at most {} days ({} minutes)",
                        LONGEST_TIMEOUT.as_secs() / 86_400,
                        LONGEST_TIMEOUT.as_secs() / 60
                    ),
                ));
            }
            Ok(d)
        };
        let session = SessionSettings {
            idle_timeout: pick(
                "session.idle_timeout_minutes",
                raw.session.idle_timeout_minutes,
                "session.idle_timeout_seconds",
                raw.session.idle_timeout_seconds,
                30,
            )?,
            absolute_timeout: pick(
                "session.absolute_timeout_minutes",
                raw.session.absolute_timeout_minutes,
                "session.absolute_timeout_seconds",
                raw.session.absolute_timeout_seconds,
                12 * 60,
            )?,
            cache_ttl: Duration::from_millis(raw.session.cache_ttl_ms.unwrap_or(500)),
        };
        if session.cache_ttl > Duration::from_secs(1) {
            return Err(invalid(
                "session.cache_ttl_ms",
                "at most 1000: instances must see a stop or a revocation within one second".into(),
            ));
        }

        let imp = raw.impersonation;
        let impersonation = ImpersonationSettings {
            max_duration: pick(
                "impersonation.max_duration_minutes",
                imp.max_duration_minutes,
                "impersonation.max_duration_seconds",
                imp.max_duration_seconds,
                60,
            )?,
            idle_timeout: pick(
                "impersonation.idle_timeout_minutes",
                imp.idle_timeout_minutes,
                "impersonation.idle_timeout_seconds",
                imp.idle_timeout_seconds,
                15,
            )?,
        };

        let assertion = raw.assertion.ok_or_else(|| {
            invalid(
                "assertion",
                "missing: add [assertion] signing_key = \"certs/signing.key\" (make one with `actas certs dev`)".into(),
            )
        })?;
        let ttl = assertion.ttl_seconds.unwrap_or(30);
        if !(1..=60).contains(&ttl) {
            return Err(invalid(
                "assertion.ttl_seconds",
                format!("{ttl} is out of range: an assertion lives 1 to 60 seconds"),
            ));
        }
        let assertion = AssertionSettings {
            signing_key: resolve(&assertion.signing_key),
            issuer: assertion.issuer.unwrap_or_else(|| "actas".into()),
            audience: assertion.audience.unwrap_or_else(|| "actas-panel".into()),
            ttl: Duration::from_secs(ttl),
        };

        let policy = PolicySettings {
            dir: resolve(raw.policy.dir.as_deref().unwrap_or("policies")),
            watch: raw.policy.watch.unwrap_or(true),
        };

        let audit = AuditSettings {
            redact_query_params: raw.audit.redact_query_params.unwrap_or_else(|| {
                ["token", "access_token", "code", "password", "secret", "key"]
                    .map(String::from)
                    .to_vec()
            }),
            queue_capacity: match raw.audit.queue_capacity {
                Some(n) if n < 16 => {
                    return Err(invalid(
                        "audit.queue_capacity",
                        "must be at least 16".into(),
                    ))
                }
                Some(n) if n > MAX_AUDIT_QUEUE => {
                    return Err(invalid(
                        "audit.queue_capacity",
                        format!(
                            "{n} is too large: at most {MAX_AUDIT_QUEUE} records may wait (the default is 65536)"
                        ),
                    ))
                }
                Some(n) => n,
                None => 65_536,
            },
            batch_max: match raw.audit.batch_max {
                Some(0) => return Err(invalid("audit.batch_max", "must be at least 1".into())),
                Some(n) => n,
                None => 2_048,
            },
            write_ahead_timeout: Duration::from_millis(positive(
                "audit.write_ahead_timeout_ms",
                raw.audit.write_ahead_timeout_ms.unwrap_or(3_000),
            )?),
        };

        let default_login = LoginSettings::default();
        let login = LoginSettings {
            attempts_per_ip_per_minute: positive(
                "login.attempts_per_ip_per_minute",
                u64::from(
                    raw.login
                        .attempts_per_ip_per_minute
                        .unwrap_or(default_login.attempts_per_ip_per_minute),
                ),
            )? as u32,
            attempts_per_account_per_minute: positive(
                "login.attempts_per_account_per_minute",
                u64::from(
                    raw.login
                        .attempts_per_account_per_minute
                        .unwrap_or(default_login.attempts_per_account_per_minute),
                ),
            )? as u32,
        };

        Ok(Config {
            source: path.to_owned(),
            server,
            tls,
            http,
            upstream,
            database,
            session,
            impersonation,
            assertion,
            policy,
            audit,
            login,
        })
    }
}

/// The most audit records that may wait for the writer (`audit.queue_capacity`): 2^24.
///
/// Every waiting slot holds a whole record (its texts: path, user agent, reason…, some
/// hundreds of bytes), so a full queue of this size is already gigabytes of memory while the
/// store is down; more is a typo, not a plan. Far larger values also panic inside the
/// channel (tokio refuses a capacity beyond `usize::MAX >> 3`) instead of being refused here.
pub const MAX_AUDIT_QUEUE: usize = 1 << 24;

/// The longest a session or an impersonation may be set to last: a year. Longer ones make
/// no sense, and times far enough out would not fit the stored milliseconds.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(366 * 86_400);

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m.saturating_mul(60))
}

/// Whether two listening addresses would claim the same socket: the same port, and the
/// same address or a wildcard that covers the other (`0.0.0.0` covers IPv4; `[::]` covers
/// both families, as Linux binds it dual-stack by default). Port 0 (any free port) never
/// collides.
fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
    let covers = |wild: IpAddr, other: IpAddr| {
        wild.is_unspecified() && (wild.is_ipv6() || wild.is_ipv4() == other.is_ipv4())
    };
    x == y || covers(x, y) || covers(y, x)
}

/// Checks `host:port` (a name, an IPv4 address, or `[IPv6]`) without resolving it.
fn host_port(_key: &str, text: &str) -> Result<String, String> {
    let bad = || format!("`{text}` is not an address like 127.0.0.1:8081 or panel:8081");
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    if host_ok {
        Ok(text.to_owned())
    } else {
        Err(bad())
    }
}

/// The host name (unique per pod or container), or `actas-1` where there is none usable.
fn default_instance_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| valid_instance_id(h))
        .unwrap_or_else(|| "actas-1".into())
}

fn valid_instance_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[tls]
listen = "127.0.0.1:8443"
cert = "certs/server.pem"
key = "certs/server.key"

[upstream]
address = "127.0.0.1:8081"

[assertion]
signing_key = "certs/signing.key"
"#;

    #[test]
    fn minimal_file_gets_defaults_and_paths_relative_to_the_file() {
        let c = Config::parse(Path::new("/etc/actas/actas.toml"), MINIMAL).unwrap();
        assert_eq!(
            c.tls.unwrap().cert,
            Path::new("/etc/actas/certs/server.pem")
        );
        assert_eq!(c.database.url, "sqlite:///etc/actas/actas.db");
        assert_eq!(c.impersonation.max_duration, Duration::from_secs(3600));
        assert_eq!(c.impersonation.idle_timeout, Duration::from_secs(900));
        assert_eq!(c.policy.dir, Path::new("/etc/actas/policies"));
    }

    #[test]
    fn sign_in_limits_default_to_30_per_ip_and_10_per_account_and_can_be_set() {
        let c = Config::parse(Path::new("a.toml"), MINIMAL).unwrap();
        assert_eq!(c.login.attempts_per_ip_per_minute, 30);
        assert_eq!(c.login.attempts_per_account_per_minute, 10);
        let text = format!(
            "{MINIMAL}\n[login]\nattempts_per_ip_per_minute = 5\nattempts_per_account_per_minute = 3\n"
        );
        let c = Config::parse(Path::new("a.toml"), &text).unwrap();
        assert_eq!(c.login.attempts_per_ip_per_minute, 5);
        assert_eq!(c.login.attempts_per_account_per_minute, 3);
    }

    #[test]
    fn session_and_impersonation_limits_longer_than_a_year_are_refused() {
        for (section, key, value) in [
            ("session", "absolute_timeout_minutes", "9223372036854775807"),
            ("session", "idle_timeout_seconds", "31708800"),
            ("impersonation", "max_duration_minutes", "527041"),
            (
                "impersonation",
                "idle_timeout_seconds",
                "9223372036854775807",
            ),
        ] {
            let text = format!("{MINIMAL}\n[{section}]\n{key} = {value}\n");
            let err = Config::parse(Path::new("a.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{section}.{key}")) && err.contains("at most 366 days"),
                "{err}"
            );
        }
        let text = format!("{MINIMAL}\n[session]\nabsolute_timeout_minutes = 527040\n");
        let c = Config::parse(Path::new("a.toml"), &text).unwrap();
        assert_eq!(
            c.session.absolute_timeout,
            Duration::from_secs(366 * 86_400)
        );
    }

    #[test]
    fn session_limits_take_minutes_or_seconds_but_not_both() {
        let c = Config::parse(Path::new("a.toml"), MINIMAL).unwrap();
        assert_eq!(c.session.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(c.session.absolute_timeout, Duration::from_secs(12 * 3600));
        let text = format!(
            "{MINIMAL}\n[session]\nidle_timeout_seconds = 5\nabsolute_timeout_seconds = 9\n"
        );
        let c = Config::parse(Path::new("a.toml"), &text).unwrap();
        assert_eq!(c.session.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.session.absolute_timeout, Duration::from_secs(9));
        let text =
            format!("{MINIMAL}\n[session]\nidle_timeout_minutes = 5\nidle_timeout_seconds = 5\n");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("session.idle_timeout_seconds") && err.contains("not both"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_file_line_and_column() {
        let text = format!("{MINIMAL}\n[session]\nidle_timout_minutes = 5\n");
        let err = Config::parse(Path::new("actas.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("actas.toml:14:1: unknown field `idle_timout_minutes`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_the_line() {
        let text = MINIMAL.replace("\"127.0.0.1:8081\"", "8081");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.toml:8:11:"), "{err}");
    }

    #[test]
    fn bad_values_name_the_file_line_and_column_of_the_value() {
        // MINIMAL is 11 lines; the appended section starts at line 13.
        let cases = [
            (
                "[session]\nidle_timeout_minutes = 0\n",
                "a.toml:14:24: `session.idle_timeout_minutes`: must be greater than zero",
            ),
            (
                "[http]\nlisten = \"localhost:8080\"\n",
                "a.toml:14:10: `http.listen`: `localhost:8080` is not an address",
            ),
            (
                "[http]\nlisten = \"127.0.0.1:8080\"\ntrusted_proxies = [\"10.0.0.0/8\", \"nonsense\"]\n",
                "a.toml:15:34: `http.trusted_proxies`: `nonsense`",
            ),
            (
                "[session]\nidle_timeout_minutes = 5\nidle_timeout_seconds = 5\n",
                "a.toml:15:24: `session.idle_timeout_seconds`: set either",
            ),
        ];
        for (section, expected) in cases {
            let text = format!("{MINIMAL}\n{section}");
            let err = Config::parse(Path::new("a.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
        let text = MINIMAL.replace("[upstream]\naddress = \"127.0.0.1:8081\"\n", "");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.toml:1:1: `upstream`: missing"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actas.toml");
        let mut bytes = MINIMAL.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n[server]\ninstance_id = \"caf\xe9\"\n");
        std::fs::write(&path, bytes).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:14:19: the file is not UTF-8 text: save it as UTF-8",
                path.display()
            )
        );
    }

    #[test]
    fn upstream_addresses_may_be_names() {
        for ok in [
            "panel:8081",
            "actas-panel.default.svc:8081",
            "[::1]:8081",
            "10.0.0.1:80",
        ] {
            let text = MINIMAL.replace("127.0.0.1:8081", ok);
            assert_eq!(
                Config::parse(Path::new("a.toml"), &text)
                    .unwrap()
                    .upstream
                    .address,
                ok
            );
        }
        for bad in [
            "panel",
            "panel:",
            "panel:0",
            "panel:99999",
            "-x:80",
            "a b:80",
            ":80",
            "http://panel:80",
        ] {
            let text = MINIMAL.replace("127.0.0.1:8081", bad);
            assert!(Config::parse(Path::new("a.toml"), &text).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let text = MINIMAL.replace("127.0.0.1:8081", "panel");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`upstream.address`"), "{err}");
        let text = format!("{MINIMAL}\n[session]\ncache_ttl_ms = 5000\n");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("session.cache_ttl_ms"), "{err}");
        let text = MINIMAL.replace(
            "signing_key = \"certs/signing.key\"",
            "signing_key = \"k\"\nttl_seconds = 61",
        );
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("assertion.ttl_seconds"), "{err}");
    }

    #[test]
    fn an_audit_queue_beyond_the_upper_bound_is_refused_with_its_key() {
        for value in ["3000000000000000000", "16777217"] {
            let text = format!("{MINIMAL}\n[audit]\nqueue_capacity = {value}\n");
            let err = Config::parse(Path::new("a.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`audit.queue_capacity`") && err.contains("at most 16777216"),
                "{value}: {err}"
            );
        }
        let text = format!("{MINIMAL}\n[audit]\nqueue_capacity = 16777216\n");
        let c = Config::parse(Path::new("a.toml"), &text).unwrap();
        assert_eq!(c.audit.queue_capacity, 16_777_216);
    }

    #[test]
    fn overlapping_https_and_http_listeners_are_refused_naming_both_keys() {
        for (tls, http) in [
            ("127.0.0.1:8443", "127.0.0.1:8443"),
            ("127.0.0.1:8443", "0.0.0.0:8443"),
            ("0.0.0.0:8443", "127.0.0.1:8443"),
            ("[::]:8443", "127.0.0.1:8443"),
            ("127.0.0.1:8443", "[::]:8443"),
            ("[::1]:8443", "[::]:8443"),
            ("[::ffff:127.0.0.1]:8443", "127.0.0.1:8443"),
        ] {
            let text = format!(
                "{}\n[http]\nlisten = \"{http}\"\n",
                MINIMAL.replace("127.0.0.1:8443", tls)
            );
            let err = Config::parse(Path::new("a.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`http.listen`") && err.contains("`tls.listen`"),
                "{tls} / {http}: {err}"
            );
        }
        for (tls, http) in [
            ("127.0.0.1:8443", "127.0.0.1:8080"),
            ("127.0.0.1:8443", "127.0.0.2:8443"),
            ("0.0.0.0:8443", "[::1]:8443"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            let text = format!(
                "{}\n[http]\nlisten = \"{http}\"\n",
                MINIMAL.replace("127.0.0.1:8443", tls)
            );
            assert!(
                Config::parse(Path::new("a.toml"), &text).is_ok(),
                "{tls} / {http}"
            );
        }
    }

    #[test]
    fn no_listener_is_refused() {
        let text = "[upstream]\naddress = \"127.0.0.1:1\"\n[assertion]\nsigning_key = \"k\"\n";
        let err = Config::parse(Path::new("a.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no listener"), "{err}");
    }

    #[test]
    fn trusted_proxy_ranges_match_their_members_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(IpNet::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(!IpNet::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::1/128")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nonsense").is_none());
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
