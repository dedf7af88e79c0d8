//! The story in a real browser: Debian's Chromium driven over WebDriver (chromedriver)
//! against the real binaries on loopback over HTTPS with the dev CA.
//!
//! The CA is trusted the way a user would trust it: imported into an NSS database in a
//! temporary HOME that Chromium reads (no `--ignore-certificate-errors`). A browser that
//! cannot start fails the test loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actas_e2e::*;
use fantoccini::{Client, ClientBuilder, Locator};

struct Driver {
    child: Child,
    port: u16,
    _home: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: ./scripts/test installs chromium, chromium-driver and libnss3-tools (scripts/deps)");
}

/// Starts chromedriver with a HOME whose NSS database trusts the stack's CA.
fn driver(ca: &Path) -> Driver {
    let home = tempfile::tempdir().unwrap();
    let nss = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    let ok = Command::new(tool("certutil"))
        .args(["-N", "-d", &db, "--empty-password"])
        .status()
        .unwrap()
        .success()
        && Command::new(tool("certutil"))
            .args(["-A", "-d", &db, "-t", "C,,", "-n", "actas-dev-ca", "-i"])
            .arg(ca)
            .status()
            .unwrap()
            .success();
    assert!(
        ok,
        "cannot import the dev CA into the browser's NSS database"
    );
    let port = free_port();
    let child = Command::new(tool("chromedriver"))
        .arg(format!("--port={port}"))
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must start");
    wait_for_port(port);
    Driver {
        child,
        port,
        _home: home,
    }
}

async fn browser(d: &Driver) -> Client {
    // Two rustls providers are compiled into this test binary; choose one for the client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = tempfile::tempdir().unwrap().keep();
    let caps: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("chromium").display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }))
        .unwrap();
    ClientBuilder::rustls()
        .expect("TLS for the WebDriver client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("Chromium must start under chromedriver (is the chromium package installed?)")
}

fn shots() -> PathBuf {
    let dir = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(name), png).unwrap();
}

/// The page's visible text. A click or a form submission may replace the document between
/// finding `<body>` and reading it; that read is retried on the new document.
async fn text(c: &Client) -> String {
    let start = Instant::now();
    loop {
        let read = match c.find(Locator::Css("body")).await {
            Ok(body) => body.text().await,
            Err(e) => Err(e),
        };
        match read {
            Ok(t) => return t,
            Err(e)
                if (e.is_stale_element_reference() || e.is_no_such_element())
                    && start.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("reading the page's text: {e}"),
        }
    }
}

/// Waits until the page's text contains `want` (after a click whose navigation may not
/// have finished yet) and returns that text.
async fn wait_text(c: &Client, want: &str) -> String {
    let start = Instant::now();
    loop {
        let t = text(c).await;
        if t.contains(want) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "expected {want:?} on the page, it shows: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path(c: &Client, base: &str) -> String {
    c.current_url()
        .await
        .unwrap()
        .as_str()
        .trim_start_matches(base)
        .to_owned()
}

/// The banner's geometry and whether anything covers its centre.
#[derive(serde::Deserialize, Debug)]
struct Banner {
    top: f64,
    height: f64,
    width: f64,
    uncovered: bool,
    text: String,
}

async fn banner(c: &Client) -> Option<Banner> {
    let v = c
        .execute(
            r#"const h = document.querySelector('actas-banner');
               if (!h || !h.shadowRoot) return null;
               const bar = h.shadowRoot.querySelector('.bar');
               const r = bar.getBoundingClientRect();
               const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
               return {top: r.top, height: r.height, width: r.width, uncovered: at === h, text: bar.innerText};"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn assert_banner(c: &Client, page: &str) {
    let b = banner(c)
        .await
        .unwrap_or_else(|| panic!("no banner on {page}"));
    assert!(b.top.abs() < 1.0, "{page}: the banner is at the top: {b:?}");
    assert!(
        b.height >= 20.0 && b.width >= 600.0,
        "{page}: the banner is visible: {b:?}"
    );
    assert!(b.uncovered, "{page}: nothing covers the banner");
    assert!(
        b.text.contains("signed in as carl") && b.text.contains("You are ada"),
        "{page}: {b:?}"
    );
}

async fn sign_in(c: &Client, base: &str, user: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(
        path(c, base).await.starts_with("/_actas/login"),
        "sent to sign in"
    );
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("main button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_path(c: &Client, base: &str, want: &str) {
    let start = Instant::now();
    loop {
        let p = path(c, base).await;
        if p == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "expected {want}, at {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn support_staff_walk_the_whole_story_in_a_browser() {
    let stack = Stack::start();
    let base = stack.base().replace("127.0.0.1", "localhost");
    let d = driver(&stack.path().join("certs/ca.pem"));
    runtime().block_on(walk(&d, &base));
}

async fn walk(d: &Driver, base: &str) {
    let base = base.to_owned();
    let c = browser(d).await;

    // 1. Open /, land on the sign-in page, sign in as ada.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(path(&c, &base).await.starts_with("/_actas/login?next="));
    shot(&c, "login.png").await;
    sign_in(&c, &base, "ada").await;
    wait_path(&c, &base, "/").await;

    // 2. Sidebar → Accounts, search carl, open carl, sign in as carl with a reason.
    c.find(Locator::Css("nav a[href='/_actas/accounts']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, &base, "/_actas/accounts").await;
    shot(&c, "accounts.png").await;
    c.find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys("carl")
        .await
        .unwrap();
    c.find(Locator::Css("form[role=search] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, &base, "/_actas/accounts?q=carl").await;
    assert!(!text(&c).await.contains("dave"));
    c.find(Locator::LinkText("carl"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, &base, "/_actas/accounts/carl").await;
    c.find(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("ticket #4711")
        .await
        .unwrap();
    c.find(Locator::XPath(
        "//button[normalize-space()='Sign in as this user']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_path(&c, &base, "/").await;

    // 3. The banner is at the top, uncovered, on every page.
    assert_banner(&c, "dashboard").await;
    shot(&c, "impersonating.png").await;
    for page in [
        "/files?path=public_html",
        "/files/edit?path=public_html/index.html",
        "/domains",
        "/mail",
        "/settings",
        "/no-such-page",
    ] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        assert_banner(&c, page).await;
    }

    // 4. Edit a file as carl; the activity feed says ada on behalf of carl.
    c.goto(&format!("{base}/files/edit?path=public_html/index.html"))
        .await
        .unwrap();
    let area = c
        .find(Locator::Css("textarea[name=content]"))
        .await
        .unwrap();
    area.clear().await.unwrap();
    area.send_keys("<h1>Fixed by support</h1>").await.unwrap();
    c.find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "Saved public_html/index.html").await;
    c.goto(&format!("{base}/activity")).await.unwrap();
    assert!(
        text(&c).await.contains("ada (admin) on behalf of carl"),
        "{}",
        text(&c).await
    );

    // 5. A mail message without consent: the denial page.
    c.goto(&format!("{base}/mail/postmaster")).await.unwrap();
    c.find(Locator::Css("a[href^='/mail/postmaster/messages/']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "Not allowed while impersonating").await;
    assert_banner(&c, "mail denial").await;

    // 6. Stop impersonating (keyboard: focus the button, press Enter): back on carl's page.
    c.execute(
        "document.querySelector('actas-banner').shadowRoot.querySelector('button').focus();",
        vec![],
    )
    .await
    .unwrap();
    c.active_element()
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    wait_path(&c, &base, "/_actas/accounts/carl").await;
    assert!(banner(&c).await.is_none(), "the banner is gone");

    // 7. Sign out; sign in as rita; try to impersonate dave.
    c.find(Locator::XPath(
        "//header//button[normalize-space()='Sign out']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_path(&c, &base, "/_actas/login").await;
    sign_in(&c, &base, "rita").await;
    wait_path(&c, &base, "/").await;
    c.goto(&format!("{base}/_actas/accounts")).await.unwrap();
    assert!(
        !text(&c).await.contains("dave"),
        "rita does not even see dave"
    );
    // Post the form anyway, as a curious reseller would with the browser's tools.
    c.execute(
        r#"const f = document.createElement('form'); f.method = 'post'; f.action = '/_actas/impersonate';
           for (const [k, v] of [['target', 'dave'], ['csrf_token', document.querySelector('input[name=csrf_token]').value]]) {
             const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
           document.body.appendChild(f); f.submit();"#,
        vec![],
    )
    .await
    .unwrap();
    wait_path(&c, &base, "/_actas/impersonate").await;
    wait_text(&c, "You don't have permission to impersonate this user").await;
    shot(&c, "denied.png").await;
    c.close().await.unwrap();
}

const HOSTILE: &str = r#"<!doctype html><html><head><title>hostile</title><style>
actas-banner, body > :first-child, body > * { display: none !important; visibility: hidden !important;
  opacity: 0 !important; height: 0 !important; position: absolute !important; top: -9999px !important;
  transform: scale(0) !important; clip-path: inset(50%) !important; z-index: -1 !important; }
* { visibility: hidden !important; }
body::before { content: ""; position: fixed; top: 0; left: 0; right: 0; height: 160px;
  background: #fff; z-index: 2147483647; visibility: visible !important; }
body { margin-top: 0 !important; }
</style></head><body><p>a page that wants nothing at the top</p></body></html>"#;

#[test]
fn page_css_cannot_hide_the_banner() {
    let echo = Echo::start_with(
        &[("Content-Type", "text/html; charset=utf-8")],
        HOSTILE.as_bytes().to_vec(),
    );
    let stack = Stack::with_echo(&echo, "");
    let base = stack.base().replace("127.0.0.1", "localhost");
    let d = driver(&stack.path().join("certs/ca.pem"));
    runtime().block_on(hostile(&d, &base));
}

async fn hostile(d: &Driver, base: &str) {
    let base = base.to_owned();
    let c = browser(d).await;
    sign_in(&c, &base, "ada").await;
    wait_path(&c, &base, "/").await;
    c.goto(&format!("{base}/_actas/accounts/carl"))
        .await
        .unwrap();
    c.find(Locator::XPath(
        "//button[normalize-space()='Sign in as this user']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_path(&c, &base, "/").await;
    assert_banner(&c, "hostile page").await;
    shot(&c, "hostile.png").await;
    c.close().await.unwrap();
}
