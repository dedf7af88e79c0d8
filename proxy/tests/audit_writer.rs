//! The audit writer against a real SQLite store: records nobody waits for gather, a
//! record somebody waits for is written at once, and a batch the store refuses loses
//! nothing but the write-ahead records it had to refuse.
//!
//! The writer is given a linger of an hour, so anything written here was written because
//! someone asked for it, not because the linger ran out.

use std::time::Duration;

use actas_proxy::audit::chain::Verifier;
use actas_proxy::audit::writer::{AuditError, AuditLog, WriterHandle, WriterSettings};
use actas_proxy::audit::{Event, Kind, Record};
use actas_proxy::store::Store;

const AN_HOUR: Duration = Duration::from_secs(3600);
/// Far longer than a write takes: reaching it means the writer never wrote.
const PATIENCE: Duration = Duration::from_secs(20);

struct Setup {
    _dir: tempfile::TempDir,
    url: String,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { Store::open(&url, 1).await.unwrap().close().await });
    Setup { _dir: dir, url, rt }
}

fn start(s: &Setup) -> (WriterHandle, AuditLog) {
    start_batching(s, 2048)
}

/// A writer of chain "w" that lingers for an hour and writes at most `batch_max` at a time.
fn start_batching(s: &Setup, batch_max: usize) -> (WriterHandle, AuditLog) {
    start_queueing(s, batch_max, 64)
}

/// [`start_batching`] with a queue of `capacity` records.
fn start_queueing(s: &Setup, batch_max: usize, capacity: usize) -> (WriterHandle, AuditLog) {
    let writer = WriterHandle::start(WriterSettings {
        url: s.url.clone(),
        instance: "w".into(),
        capacity,
        batch_max,
        linger: AN_HOUR,
    })
    .unwrap();
    let log = writer.log();
    (writer, log)
}

fn event(path: &str) -> Event {
    let mut e = Event::new(Kind::Request);
    e.actor = Some("ada".into());
    e.subject = Some("carl".into());
    e.impersonation_id = Some("imp-1".into());
    e.method = Some("GET".into());
    e.path = Some(path.into());
    e.user_agent = Some("ü ☃".into());
    e.status = Some(200);
    e
}

fn chain(s: &Setup) -> Vec<Record> {
    s.rt.block_on(async {
        let store = Store::open(&s.url, 1).await.unwrap();
        let records = store.audit_chain("w", 0, 1000).await.unwrap();
        store.close().await;
        records
    })
}

/// Checks the chain's hashes and returns the recorded paths in order.
fn verified_paths(records: &[Record]) -> Vec<String> {
    let mut v = Verifier::new("w");
    for r in records {
        v.check(r).unwrap();
    }
    records
        .iter()
        .map(|r| r.path.clone().unwrap_or_default())
        .collect()
}

#[test]
fn a_record_someone_waits_for_is_written_at_once_with_those_gathering_before_it() {
    let s = setup();
    let (writer, log) = start(&s);
    s.rt.block_on(async {
        log.record(event("/first")).await;
        // The writer now lingers for an hour; a write-ahead record must not wait for it.
        tokio::time::timeout(PATIENCE, log.record_durably(event("/post"), PATIENCE))
            .await
            .expect("the write-ahead record waited for the linger")
            .unwrap();
    });
    let records = chain(&s);
    assert_eq!(verified_paths(&records), ["/first", "/post"]);
    let first = &records[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.actor.as_deref(), Some("ada"));
    assert_eq!(first.subject.as_deref(), Some("carl"));
    assert_eq!(first.impersonation_id.as_deref(), Some("imp-1"));
    assert_eq!(first.user_agent.as_deref(), Some("ü ☃"));
    assert_eq!(first.status, Some(200));
    assert_eq!(first.kind, "request");
    writer.shutdown();
}

#[test]
fn a_flush_and_the_shutdown_do_not_wait_for_the_linger() {
    let s = setup();
    let (writer, log) = start(&s);
    s.rt.block_on(async {
        log.record(event("/a")).await;
        tokio::time::timeout(PATIENCE, log.flush())
            .await
            .expect("the flush waited for the linger");
        log.record(event("/b")).await;
        log.record(event("/c")).await;
    });
    assert_eq!(verified_paths(&chain(&s)), ["/a"]);
    // Shutdown writes what is still queued, lingering or not.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        writer.shutdown();
        let _ = done.send(());
    });
    finished
        .recv_timeout(PATIENCE)
        .expect("the shutdown waited for the linger");
    assert_eq!(verified_paths(&chain(&s)), ["/a", "/b", "/c"]);
}

/// Makes the store refuse (`RAISE(ABORT, 'store refuses')`) every audit row for which the
/// SQL `condition` on `NEW` holds, until [`stop_refusing`].
fn refuse_rows(s: &Setup, condition: &str) {
    s.rt.block_on(async {
        let store = Store::open(&s.url, 1).await.unwrap();
        for sql in [
            "CREATE TABLE refuse (on_ INTEGER NOT NULL)".to_owned(),
            "INSERT INTO refuse (on_) VALUES (1)".to_owned(),
            format!("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit WHEN ({condition}) AND (SELECT on_ FROM refuse) = 1 BEGIN SELECT RAISE(ABORT, 'store refuses'); END"),
        ] {
            sqlx::query(&sql).execute(store.pool()).await.unwrap();
        }
        store.close().await;
    });
}

/// Lets the store take the rows [`refuse_rows`] refused.
async fn stop_refusing(url: &str) {
    let store = Store::open(url, 1).await.unwrap();
    sqlx::query("UPDATE refuse SET on_ = 0")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
}

#[test]
fn a_refused_batch_refuses_its_write_ahead_records_and_keeps_the_others_in_order() {
    let s = setup();
    // The store refuses every audit row until told to stop.
    refuse_rows(&s, "1");
    let (writer, log) = start(&s);
    s.rt.block_on(async {
        log.record(event("/kept-1")).await;
        let refused = log.record_durably(event("/refused"), PATIENCE).await;
        assert!(
            matches!(refused, Err(AuditError::Store(ref m)) if m.contains("store refuses")),
            "{refused:?}"
        );
        log.record(event("/kept-2")).await;
        stop_refusing(&s.url).await;
        tokio::time::timeout(PATIENCE, log.flush())
            .await
            .expect("the records kept were never written");
    });
    // The refused write-ahead record is gone (its request was not forwarded); the others
    // are numbered from the chain's head with no gap.
    let records = chain(&s);
    assert_eq!(verified_paths(&records), ["/kept-1", "/kept-2"]);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2],
        "numbered without a gap"
    );
    writer.shutdown();
}

#[test]
fn a_batch_of_several_statements_is_chained_across_them_and_written_all_or_none() {
    let s = setup();
    // The store refuses the 150th record of the chain until told to stop: a row of the
    // third INSERT of a 200-record batch (64 rows a statement), after two went in.
    refuse_rows(&s, "NEW.seq = 150");
    let (writer, log) = start_queueing(&s, 2048, 512);
    let paths: Vec<String> = (0..199).map(|n| format!("/{n}")).collect();
    s.rt.block_on(async {
        for p in &paths {
            log.record(event(p)).await;
        }
        // Waiting for the 200th record writes all 200 as one batch, which the store refuses.
        let refused = log.record_durably(event("/refused"), PATIENCE).await;
        assert!(
            matches!(refused, Err(AuditError::Store(ref m)) if m.contains("store refuses")),
            "{refused:?}"
        );
    });
    assert_eq!(
        chain(&s).len(),
        0,
        "the statements before the refused one were kept"
    );
    s.rt.block_on(async {
        stop_refusing(&s.url).await;
        tokio::time::timeout(PATIENCE, log.flush())
            .await
            .expect("the records kept were never written");
    });
    // Chained from one statement's last row to the next one's first, numbered again from
    // the chain's head with no gap.
    let records = chain(&s);
    assert_eq!(verified_paths(&records), paths);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=199).collect::<Vec<i64>>()
    );
    writer.shutdown();
}

#[test]
fn a_full_batch_in_the_queue_ends_the_linger() {
    let s = setup();
    let (writer, log) = start_batching(&s, 4);
    s.rt.block_on(async {
        for n in 0..10 {
            log.record(event(&format!("/{n}"))).await;
        }
    });
    // Nobody waits for these records, and the linger is an hour: only the full batches in
    // the queue can have them written now.
    let deadline = std::time::Instant::now() + PATIENCE;
    let written = loop {
        let n = chain(&s).len();
        if n >= 4 || std::time::Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        written >= 4,
        "a full batch waited for the linger: {written} written"
    );
    s.rt.block_on(log.flush());
    let paths: Vec<String> = (0..10).map(|n| format!("/{n}")).collect();
    assert_eq!(verified_paths(&chain(&s)), paths);
    writer.shutdown();
}

#[test]
fn a_record_the_store_never_takes_is_stood_in_for_and_the_records_after_it_are_written() {
    let s = setup();
    // Whatever the writer tries, this one record is refused (a value the database cannot
    // hold would be refused the same way); every other record is taken.
    refuse_rows(&s, "NEW.path = '/poison'");
    let (writer, log) = start(&s);
    s.rt.block_on(async {
        log.record(event("/before")).await;
        log.record(event("/poison")).await;
        log.record(event("/after")).await;
        tokio::time::timeout(PATIENCE, log.flush())
            .await
            .expect("one refused record held back every record with it");
        // The writer goes on writing batches afterwards.
        tokio::time::timeout(PATIENCE, log.record_durably(event("/later"), PATIENCE))
            .await
            .expect("the writer stopped writing")
            .unwrap();
    });
    let records = chain(&s);
    assert_eq!(
        verified_paths(&records),
        ["/before", "", "/after", "/later"]
    );
    let stand_in = &records[1];
    assert_eq!(stand_in.kind, "request");
    assert_eq!(stand_in.decision.as_deref(), Some("unwritable"));
    assert!(
        stand_in
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("store refuses")),
        "{stand_in:?}"
    );
    assert_eq!(
        (stand_in.actor.as_deref(), stand_in.subject.as_deref()),
        (None, None)
    );
    writer.shutdown();
}

#[test]
fn two_writers_of_one_chain_each_continue_after_the_others_records() {
    // As during a zero-downtime upgrade: the new process's writer read the chain's head
    // while the old one still writes to it.
    let s = setup();
    let (old, old_log) = start(&s);
    let (new, new_log) = start(&s);
    s.rt.block_on(async {
        for (log, path) in [
            (&old_log, "/old-1"),
            (&new_log, "/new-1"),
            (&old_log, "/old-2"),
        ] {
            tokio::time::timeout(PATIENCE, log.record_durably(event(path), PATIENCE))
                .await
                .expect("the record was never written")
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        new_log.record(event("/new-2")).await;
        tokio::time::timeout(PATIENCE, new_log.flush())
            .await
            .expect("the record was never written");
    });
    let records = chain(&s);
    assert_eq!(
        verified_paths(&records),
        ["/old-1", "/new-1", "/old-2", "/new-2"]
    );
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    old.shutdown();
    new.shutdown();
}
