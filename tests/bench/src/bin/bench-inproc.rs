//! In-process measurements: the audit writer's sustained records/s on SQLite and
//! PostgreSQL, its behaviour when the store is slower than the load, and argon2's cost.
//! Prints one JSON object per measurement on stdout.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actas_proxy::audit::writer::{WriterHandle, WriterSettings};
use actas_proxy::audit::{Event, Kind};
use actas_proxy::metrics::METRICS;
use actas_proxy::store::Store;
use sqlx::Connection;

// actas's allocator, so the audit writer and the banner are measured as actas runs them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event(i: u64) -> Event {
    let mut e = Event::new(Kind::Request);
    e.actor = Some("ada".into());
    e.subject = Some("carl".into());
    e.session_id = Some("s-bench".into());
    e.impersonation_id = Some("i-bench".into());
    e.request_id = Some(format!("r{i}"));
    e.method = Some("GET".into());
    e.host = Some("panel.example:8443".into());
    e.path = Some(format!("/files?path=public_html/{i}"));
    e.status = Some(200);
    e.bytes_out = Some(20_480);
    e.duration_ms = Some(1);
    e.client_ip = Some("203.0.113.7".into());
    e.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) bench".into());
    e.decision = Some("allow".into());
    e
}

async fn count(url: &str, instance: &str) -> anyhow::Result<i64> {
    let store = Store::open(url, 1).await?;
    let head = store.audit_chain_head(instance).await?;
    store.close().await;
    Ok(head.map_or(0, |(seq, _)| seq))
}

/// Pushes `n` records as fast as the queue takes them; returns records/s end to end.
fn audit(url: &str, instance: &str, n: u64, capacity: usize) -> anyhow::Result<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async { Store::open(url, 1).await.map(|_| ()) })?;
    let writer = WriterHandle::start(WriterSettings {
        url: url.into(),
        instance: instance.into(),
        capacity,
        batch_max: 2048,
        linger: actas_proxy::audit::writer::LINGER,
    })?;
    let log = writer.log();
    let start = Instant::now();
    let (max_depth, produced) = rt.block_on(async move {
        let sampler = tokio::spawn(async {
            let mut max = 0;
            loop {
                max = max.max(METRICS.audit_queue_depth.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(5)).await;
                if METRICS.audit_queue_depth.load(Ordering::Relaxed) < 0 {
                    break max;
                }
            }
        });
        for i in 0..n {
            log.record(event(i)).await;
        }
        let produced = start.elapsed();
        log.flush().await;
        sampler.abort();
        (METRICS.audit_queue_depth.load(Ordering::Relaxed), produced)
    });
    let elapsed = start.elapsed();
    writer.shutdown();
    let written = rt.block_on(count(url, instance))?;
    Ok(serde_json::json!({
        "records": n, "written": written, "lost": n as i64 - written,
        "seconds": elapsed.as_secs_f64(), "records_per_s": n as f64 / elapsed.as_secs_f64(),
        "producer_seconds": produced.as_secs_f64(), "queue_capacity": capacity, "final_depth": max_depth,
    }))
}

fn argon2() -> anyhow::Result<serde_json::Value> {
    let hash = actas_proxy::directory::hash_password("correct horse battery")?;
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        actas_proxy::directory::hash_password("correct horse battery")?;
    }
    let hash_ms = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..rounds {
            actas_proxy::directory::verify_password(
                Some(hash.clone()),
                "correct horse battery".into(),
            )
            .await;
        }
    });
    let verify_ms = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    // The parameters and limits as actas has them, not as this file would restate them.
    let phc = argon2::PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("{e}"))?;
    let param = |name: &str| phc.params.get_decimal(name).unwrap_or_default();
    let limits = actas_proxy::config::LoginSettings::default();
    Ok(serde_json::json!({
        "hash_ms": hash_ms,
        "verify_ms": verify_ms,
        "params": format!("{} m={} KiB, t={}, p={}", phc.algorithm, param("m"), param("t"), param("p")),
        "per_ip_per_minute": limits.attempts_per_ip_per_minute,
        "per_account_per_minute": limits.attempts_per_account_per_minute,
    }))
}

/// The banner's own cost per 20 KB page: headers prepared, the banner rendered, the body
/// streamed through the injector in one chunk.
fn banner() -> serde_json::Value {
    use actas_proxy::banner::{prepare, should_inject, BannerInfo};
    let page = actas_bench::page();
    let info = BannerInfo {
        actor: "ada",
        actor_role: "admin",
        subject: "carl",
        subject_role: "customer",
        started_at: 1_800_000_000,
        expires_at: 1_800_003_600,
        now: 1_800_000_060,
        csrf_token: "t0k3n",
    };
    let mut req = http::HeaderMap::new();
    req.insert("sec-fetch-dest", http::HeaderValue::from_static("document"));
    let rounds = 20_000u32;
    let start = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..rounds {
        let mut resp = http::HeaderMap::new();
        resp.insert(
            "content-type",
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp.insert("content-length", http::HeaderValue::from(page.len()));
        assert!(should_inject(
            &http::Method::GET,
            &req,
            http::StatusCode::OK,
            &resp
        ));
        let mut inj = prepare(&info, &mut resp, "https://panel.example").expect("prepare");
        bytes += inj.write(page.as_bytes()).expect("write").len();
        bytes += inj.finish().expect("finish").len();
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    serde_json::json!({"micros_per_page": micros, "page_bytes": page.len(), "out_bytes": bytes / rounds as usize})
}

fn main() -> anyhow::Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("actas-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite://{}", dir.join("audit.db").display());
    let pg_base = std::env::var("ACTAS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pg_schema = |tag: &str| -> anyhow::Result<String> {
        let schema = format!("bench_{tag}_{}", std::process::id());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&pg_base).await?;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut c)
                .await?;
            anyhow::Ok(())
        })?;
        Ok(format!("{pg_base}?options=-c%20search_path%3D{schema}"))
    };
    let out = match what.as_str() {
        "audit-sqlite" => audit(&sqlite, "bench", 200_000, 65_536)?,
        "audit-postgres" => audit(&pg_schema("fast")?, "bench", 100_000, 65_536)?,
        "audit-slow" => {
            // A store slower than the load: every row costs 0.2 ms in a trigger, and the
            // queue holds only 1024 records. The producer is held back, nothing is lost.
            let url = pg_schema("slow")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let store = Store::open(&url, 1).await?;
                sqlx::query("CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.0002); RETURN NEW; END $$ LANGUAGE plpgsql")
                    .execute(store.pool())
                    .await?;
                sqlx::query("CREATE TRIGGER slow BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION slow()")
                    .execute(store.pool())
                    .await?;
                store.close().await;
                anyhow::Ok(())
            })?;
            audit(&url, "bench", 10_000, 1024)?
        }
        "argon2" => argon2()?,
        "banner" => banner(),
        other => anyhow::bail!(
            "usage: bench-inproc audit-sqlite|audit-postgres|audit-slow|argon2|banner (got `{other}`)"
        ),
    };
    // Leave nothing behind: the SQLite files and the PostgreSQL schemas of this run.
    let _ = std::fs::remove_dir_all(&dir);
    if what.starts_with("audit-") && what != "audit-sqlite" {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&pg_base).await?;
            for tag in ["fast", "slow"] {
                let schema = format!("bench_{tag}_{}", std::process::id());
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut c)
                    .await?;
            }
            anyhow::Ok(())
        })?;
    }
    println!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
