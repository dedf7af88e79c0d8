//! The end-to-end harness: starts the real `actas` and `actas-panel` binaries on ephemeral
//! loopback ports, over HTTPS with freshly made development certificates, and talks HTTP to
//! them like a browser would.
//!
//! The binaries are the ones `cargo build --workspace --bins` put next to the test
//! executable; the README's test command builds them first. A missing binary is a loud
//! failure, never a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use reqwest::StatusCode;

/// The demo accounts every stack is seeded with: (username, role, created by).
pub const ACCOUNTS: [(&str, &str, Option<&str>); 6] = [
    ("ada", "admin", None),
    ("rita", "reseller", Some("ada")),
    ("rex", "reseller", Some("ada")),
    ("carl", "customer", Some("rita")),
    ("cora", "customer", Some("rita")),
    ("dave", "customer", Some("rex")),
];

/// Every seeded account's password.
pub const PASSWORD: &str = "correct horse battery";

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-xxxx → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// The path of a workspace binary; panics with instructions if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, as ./scripts/test does)",
        p.display()
    );
    p
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

/// A free loopback port, never one this process handed out before: the OS may offer a
/// just-released port again before the program it was meant for has bound it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if GIVEN.lock().expect("ports").insert(port) {
            return port;
        }
    }
}

/// Runs `actas` with arguments and optional standard input; returns (status ok, stdout, stderr).
pub fn actas(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(bin("actas"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("ACTAS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start actas");
    if let Some(input) = stdin {
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("actas output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A child process that is killed when dropped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Proc {
    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options of a stack.
#[derive(Clone)]
pub struct Options {
    /// Extra TOML appended to the proxy configuration.
    pub extra_config: String,
    /// Database URL (default: an SQLite file in the stack's directory).
    pub database_url: Option<String>,
    /// Start the panel.
    pub panel: bool,
    /// Seed the demo accounts.
    pub seed: bool,
    /// Send requests to this port instead of a panel of the stack's own.
    pub upstream_port: Option<u16>,
    /// The upstream's host as written in the configuration (default 127.0.0.1).
    pub upstream_host: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_config: String::new(),
            database_url: None,
            panel: true,
            seed: true,
            upstream_port: None,
            upstream_host: None,
        }
    }
}

/// A running panel and proxy in a temporary directory.
pub struct Stack {
    /// The temporary directory (certs, config, databases, policies).
    pub dir: tempfile::TempDir,
    /// The proxy's HTTPS port.
    pub port: u16,
    /// The panel's port.
    pub panel_port: u16,
    /// The proxy configuration file.
    pub config: PathBuf,
    /// The policy directory the proxy uses (a copy of the repository's).
    pub policies: PathBuf,
    /// The proxy process.
    pub proxy: Option<Proc>,
    /// The panel process.
    pub panel: Option<Proc>,
    options: Options,
}

impl Stack {
    /// Starts a stack whose upstream is an [`Echo`].
    pub fn with_echo(echo: &Echo, extra_config: &str) -> Stack {
        Stack::with(Options {
            panel: false,
            upstream_port: Some(echo.port),
            extra_config: extra_config.to_owned(),
            ..Options::default()
        })
    }

    /// Starts a stack with default options.
    pub fn start() -> Stack {
        Stack::with(Options::default())
    }

    /// Starts a stack.
    pub fn with(options: Options) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let (ok, _, err) = actas(
            Path::new("/nonexistent.toml"),
            &["certs", "dev", "--out", certs.to_str().expect("utf-8")],
            None,
        );
        assert!(ok, "actas certs dev failed: {err}");
        let policies = dir.path().join("policies");
        copy_dir(&repo_root().join("policies"), &policies);
        let port = free_port();
        let panel_port = options.upstream_port.unwrap_or_else(free_port);
        let config = dir.path().join("actas.toml");
        let db = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("actas.db").display()));
        let text = format!(
            r#"[server]
instance_id = "test-{port}"
threads = 2
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 2
upgrade_sock = "{dir}/upgrade.sock"
pid_file = "{dir}/actas.pid"

[tls]
listen = "127.0.0.1:{port}"
cert = "certs/server.pem"
key = "certs/server.key"

[upstream]
address = "{upstream_host}:{panel_port}"
connect_timeout_ms = 500

[database]
url = "{db}"

[assertion]
signing_key = "certs/signing.key"

{extra}
"#,
            dir = dir.path().display(),
            extra = options.extra_config,
            upstream_host = options.upstream_host.as_deref().unwrap_or("127.0.0.1"),
        );
        let text = if text.contains("[policy]") {
            text
        } else {
            format!("{text}\n[policy]\ndir = \"policies\"\n")
        };
        std::fs::write(&config, text).expect("write config");
        let mut stack = Stack {
            dir,
            port,
            panel_port,
            config,
            policies,
            proxy: None,
            panel: None,
            options,
        };
        if stack.options.seed {
            stack.seed();
        }
        if stack.options.panel {
            stack.start_panel();
        }
        stack.start_proxy();
        stack
    }

    /// Adds the demo accounts through the CLI, as ops would.
    pub fn seed(&self) {
        for (user, role, creator) in ACCOUNTS {
            let mut args = vec!["accounts", "add", user, "--role", role, "--name"];
            let name = format!("{}{}", user[..1].to_uppercase(), &user[1..]);
            args.push(&name);
            if let Some(c) = creator {
                args.push("--created-by");
                args.push(c);
            }
            let (ok, _, err) = actas(&self.config, &args, Some(&format!("{PASSWORD}\n")));
            assert!(ok, "seeding {user} failed: {err}");
        }
    }

    /// The stack's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (or restarts) the panel.
    pub fn start_panel(&mut self) {
        let log = self
            .path()
            .join(format!("panel-{}.log", Instant::now().elapsed().as_nanos()));
        let child = Command::new(bin("actas-panel"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.panel_port))
            .arg("--data-dir")
            .arg(self.path().join("panel"))
            .arg("--public-key")
            .arg(self.path().join("certs/signing.pub"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start actas-panel");
        self.panel = Some(Proc { child, log });
        wait_for_port(self.panel_port);
    }

    /// Stops the panel (SIGKILL).
    pub fn kill_panel(&mut self) {
        self.panel = None;
    }

    /// Starts the proxy and waits until it answers.
    pub fn start_proxy(&mut self) {
        let log = self.path().join("proxy.log");
        let child = Command::new(bin("actas"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("ACTAS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("log"),
            )
            .spawn()
            .expect("start actas");
        self.proxy = Some(Proc { child, log });
        let client = self.browser();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get("/_actas/healthz") {
                if r.status == StatusCode::OK {
                    return;
                }
            }
            if let Some(p) = self.proxy.as_mut() {
                if let Ok(Some(status)) = p.child.try_wait() {
                    panic!("actas exited ({status}) while starting:\n{}", p.log_text());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "actas did not start:\n{}",
                self.proxy_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy's log.
    pub fn proxy_log(&self) -> String {
        self.proxy.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A fresh browser (empty cookie jar) pointed at the proxy.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base(), &self.path().join("certs/ca.pem"))
    }

    /// A browser signed in as `user`.
    pub fn signed_in(&self, user: &str) -> Browser {
        let b = self.browser();
        let r = b.login(user, PASSWORD);
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "login of {user} failed: {}",
            r.body
        );
        b
    }

    /// Runs `actas` against this stack's configuration.
    pub fn actas(&self, args: &[&str]) -> (bool, String, String) {
        actas(&self.config, args, None)
    }

    /// All audit records, parsed from `actas audit export`.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let (ok, out, err) = self.actas(&["audit", "export", "--format", "jsonl"]);
        assert!(ok, "audit export failed: {err}");
        out.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// Waits until the audit log holds a record matching `pred` (records are batched).
    pub fn wait_audit(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(r) = self.audit().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no audit record: {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until something listens on a loopback port.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as text (lossy).
    pub body: String,
    /// Body bytes.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The `Location` header.
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A minimal browser: its own cookie jar, no automatic redirects, and the same-origin
/// headers a real browser sends on form posts.
#[derive(Clone)]
pub struct Browser {
    base: String,
    client: reqwest::blocking::Client,
    /// The cookie jar (name → value).
    pub cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Browser {
    /// A browser trusting `ca`.
    pub fn new(base: &str, ca: &Path) -> Browser {
        let pem = std::fs::read(ca).expect("ca.pem");
        let cert = reqwest::Certificate::from_pem(&pem).expect("CA certificate");
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(cert)
            .tls_built_in_root_certs(false)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("actas-e2e/1.0 (like a browser)")
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Browser {
            base: base.to_owned(),
            client,
            cookies: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// The session cookie's value, if any.
    pub fn session_token(&self) -> Option<String> {
        self.cookies
            .lock()
            .expect("jar")
            .get("__Host-actas_session")
            .cloned()
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .expect("jar")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&self, headers: &reqwest::header::HeaderMap) {
        let mut jar = self.cookies.lock().expect("jar");
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.split_once('=') {
                let expired = v.contains("Max-Age=0");
                if expired || val.is_empty() {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_owned(), val.trim().to_owned());
                }
            }
        }
    }

    /// Sends a request with the jar's cookies and `extra` headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            url,
        );
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send()?;
        self.absorb(resp.headers());
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes()?.to_vec();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        })
    }

    /// A browser navigation (GET, Accept: text/html).
    pub fn get(&self, path: &str) -> Result<Reply, reqwest::Error> {
        self.send(
            "GET",
            path,
            &[
                ("accept", "text/html"),
                ("sec-fetch-dest", "document"),
                ("sec-fetch-mode", "navigate"),
            ],
            None,
        )
    }

    /// A same-origin form POST.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_with(
            path,
            fields,
            &[("origin", &self.base), ("sec-fetch-site", "same-origin")],
        )
    }

    /// A form POST with the given extra headers.
    pub fn post_with(&self, path: &str, fields: &[(&str, &str)], extra: &[(&str, &str)]) -> Reply {
        let body = form_body(fields);
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "text/html"),
        ];
        headers.extend_from_slice(extra);
        self.send("POST", path, &headers, Some(body.into_bytes()))
            .expect("POST")
    }

    /// Opens the sign-in page and signs in.
    pub fn login(&self, user: &str, password: &str) -> Reply {
        self.login_next(user, password, "/")
    }

    /// Signs in with a `next`.
    pub fn login_next(&self, user: &str, password: &str, next: &str) -> Reply {
        let page = self.get("/_actas/login").expect("login page");
        let csrf = hidden(&page.body, "csrf_token").expect("csrf_token on the login page");
        self.post(
            "/_actas/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", next),
            ],
        )
    }

    /// The console CSRF token, read from a console page.
    pub fn csrf(&self) -> String {
        let page = self.get("/_actas/access-history").expect("console page");
        hidden(&page.body, "csrf_token").expect("csrf_token on a console page")
    }

    /// Starts impersonating `target`.
    pub fn impersonate(&self, target: &str, reason: &str, mail_consent: bool) -> Reply {
        let csrf = self.csrf();
        let mut fields = vec![
            ("target", target),
            ("reason", reason),
            ("csrf_token", csrf.as_str()),
        ];
        let ret = format!("/_actas/accounts/{target}");
        fields.push(("return_to", &ret));
        if mail_consent {
            fields.push(("mail_consent", "yes"));
        }
        self.post("/_actas/impersonate", &fields)
    }

    /// Stops impersonating.
    pub fn stop(&self) -> Reply {
        let csrf = self.csrf();
        self.post("/_actas/impersonate/stop", &[("csrf_token", &csrf)])
    }
}

/// URL-encodes form fields.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of a hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    quoted_from(html, html.find(&needle)? + needle.len())
}

/// The attribute value that starts at `html[start..]`, up to its closing quote, unescaped.
fn quoted_from(html: &str, start: usize) -> Option<String> {
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The action of the first `<form>` on a page whose action starts with `prefix`,
/// unescaped: what a browser would send that form to.
pub fn form_action(html: &str, prefix: &str) -> Option<String> {
    let needle = format!("action=\"{prefix}");
    quoted_from(html, html.find(&needle)? + "action=\"".len())
}

/// The address of the first link on a page whose text is exactly `label`, unescaped.
pub fn link_labelled(html: &str, label: &str) -> Option<String> {
    let end = html.find(&format!("\">{label}</a>"))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    quoted_from(html, start)
}

/// What an echo upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line.
    pub request_line: String,
    /// Header lines as sent, in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Values of a header, by case-insensitive name.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A tiny HTTP/1.1 upstream that records each request's head and answers with a fixed
/// HTML page. Stands in for the panel where a test must see exactly what was forwarded.
pub struct Echo {
    /// Its port.
    pub port: u16,
    /// What it saw.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Runs on each request before the answer is sent.
    pub hook: Hook,
}

/// A callback run by [`Echo`] on each request before it answers.
pub type Hook = Arc<Mutex<Option<Box<dyn Fn(&Seen) + Send>>>>;

impl Echo {
    /// Starts an echo upstream answering every request with `body` as `content_type`.
    pub fn start(content_type: &'static str, body: Vec<u8>) -> Echo {
        Echo::start_with(&[("Content-Type", content_type)], body)
    }

    /// Starts an echo upstream answering every request with these headers and `body`
    /// (Content-Length is added).
    pub fn start_with(headers: &[(&str, &str)], body: Vec<u8>) -> Echo {
        let head_lines: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        use std::io::{BufRead, BufReader, Read};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let hook: Hook = Arc::default();
        let run_hook = hook.clone();
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let record = record.clone();
                let body = body.clone();
                let run_hook = run_hook.clone();
                let head_lines = head_lines.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut out = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let request_line = line.trim_end().to_owned();
                        let mut headers = Vec::new();
                        let mut length = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                                headers.push((k.trim().to_owned(), v.trim().to_owned()));
                            }
                        }
                        let mut sink = vec![0u8; length];
                        let _ = reader.read_exact(&mut sink);
                        let seen = Seen {
                            request_line,
                            headers,
                        };
                        if let Some(h) = run_hook.lock().expect("hook").as_ref() {
                            h(&seen);
                        }
                        record.lock().expect("seen").push(seen);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\n{head_lines}Content-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let is_head = seen_head(&record);
                        let sent = out.write_all(head.as_bytes()).and_then(|_| {
                            if is_head {
                                Ok(())
                            } else {
                                out.write_all(&body)
                            }
                        });
                        if sent.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Echo { port, seen, hook }
    }

    /// The last request seen.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("seen")
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

fn seen_head(record: &Arc<Mutex<Vec<Seen>>>) -> bool {
    record
        .lock()
        .expect("seen")
        .last()
        .is_some_and(|s| s.request_line.starts_with("HEAD "))
}

/// Decodes (without verifying) the claims of a compact JWS.
pub fn claims(jws: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jws.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Verifies a compact JWS against the stack's public key and returns its claims.
pub fn verify_assertion(stack: &Stack, jws: &str) -> serde_json::Value {
    let pem = std::fs::read(stack.path().join("certs/signing.pub")).expect("signing.pub");
    let key = jsonwebtoken::DecodingKey::from_ed_pem(&pem).expect("public key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["actas-panel"]);
    v.set_issuer(&["actas"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(jws, &key, &v).expect("a valid assertion");
    data.claims
}

/// Runs `f` to completion on a runtime of its own (the tests themselves are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A connection to the SQLite database at `path` (one of a stack's, read or changed behind
/// the processes' backs).
pub async fn sqlite_at(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    sqlx::SqliteConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A fresh PostgreSQL schema on the test server (`ACTAS_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`) and a URL whose connections use it.
/// An unreachable server fails the test with a message; it is never skipped.
pub fn postgres_schema(tag: &str) -> String {
    use sqlx::Connection;
    let base = std::env::var("ACTAS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let schema = format!("e2e_{tag}_{}_{nanos}", std::process::id());
    block_on(async {
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for the scale-out tests and is not reachable at {base}: {e}")
        });
        // Schemas of earlier runs: these tests' own (ns stamps) and the store tests' (ms).
        sweep_old_schemas(&mut c, "e2e_", 1_000_000_000).await;
        sweep_old_schemas(&mut c, "t_", 1_000).await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut c)
            .await
            .expect("create schema");
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Drops the test schemas named `{prefix}…_{time}` that are over an hour old: earlier runs
/// leave theirs behind, and the shared database should not grow without end. `per_second`
/// is the unit of the name's trailing time stamp.
pub async fn sweep_old_schemas(c: &mut sqlx::PgConnection, prefix: &str, per_second: u128) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
    )
    .bind(pattern)
    .fetch_all(&mut *c)
    .await
    .unwrap_or_default();
    for (name,) in names {
        let stamp = name.rsplit('_').next().and_then(|t| t.parse::<u128>().ok());
        let Some(stamp) = stamp else { continue };
        let age_seconds = (now / 1_000_000_000).saturating_sub(stamp / per_second);
        if age_seconds > 3600
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *c)
                .await;
        }
    }
}

impl Stack {
    /// Starts another proxy instance sharing this stack's database, keys, policies and
    /// panel; returns it and its port.
    pub fn another_instance(&self, instance_id: &str) -> (Proc, u16) {
        let port = free_port();
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text
            .replace(
                &format!("instance_id = \"test-{}\"", self.port),
                &format!("instance_id = \"{instance_id}\""),
            )
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", self.port),
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace("upgrade.sock", &format!("upgrade-{instance_id}.sock"))
            .replace("actas.pid", &format!("actas-{instance_id}.pid"));
        let config = self.path().join(format!("actas-{instance_id}.toml"));
        std::fs::write(&config, text).expect("write config");
        let log = self.path().join(format!("proxy-{instance_id}.log"));
        let child = Command::new(bin("actas"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("ACTAS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start actas");
        let proc = Proc { child, log };
        let b = Browser::new(
            &format!("https://127.0.0.1:{port}"),
            &self.path().join("certs/ca.pem"),
        );
        let start = Instant::now();
        while b
            .get("/_actas/healthz")
            .map(|r| r.status != StatusCode::OK)
            .unwrap_or(true)
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "instance {instance_id} did not start:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (proc, port)
    }

    /// A browser on another instance's port that shares `with`'s cookie jar.
    pub fn browser_on(&self, port: u16, with: &Browser) -> Browser {
        let mut b = Browser::new(
            &format!("https://127.0.0.1:{port}"),
            &self.path().join("certs/ca.pem"),
        );
        b.cookies = with.cookies.clone();
        b
    }
}
