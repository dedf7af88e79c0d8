//! The audit writer: a bounded queue and one task that numbers, chains and writes records
//! in batches, one transaction per batch, off the request path.
//!
//! Requests hand their event over with [`AuditLog::record`], which waits only when the queue
//! is full (backpressure: records are never dropped). A state-changing request made while
//! impersonating uses [`AuditLog::record_durably`] and is forwarded only once the batch
//! holding its record has committed. The writer runs on its own thread and runtime with its
//! own connection, so the proxy's runtimes can stop while it drains the queue.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use super::chain::{compute_hash, GENESIS};
use super::{Event, Record};
use crate::metrics::METRICS;
use crate::store::audit::ROWS_PER_STATEMENT;
use crate::store::{Durability, Store, StoreError};

/// Why a durable write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store refused the batch.
    #[error("the audit store cannot take records: {0}")]
    Store(String),
    /// The commit took longer than allowed.
    #[error("the audit store did not confirm the record in time")]
    Timeout,
    /// The writer has stopped.
    #[error("the audit writer has stopped")]
    Closed,
}

enum Job {
    Record(Box<Event>, Option<oneshot::Sender<Result<(), String>>>),
    Flush(oneshot::Sender<()>),
    /// Write everything queued before this, then stop.
    Close,
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    /// Ends the writer's linger: someone waits for what is queued, or a full batch is.
    kick: Arc<Notify>,
    /// The writer's batch size: this many queued records end its linger.
    batch_max: usize,
}

/// Owns the writer thread; [`WriterHandle::shutdown`] flushes and joins it.
pub struct WriterHandle {
    log: AuditLog,
    thread: Option<JoinHandle<()>>,
}

/// How the writer is set up.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// Database URL.
    pub url: String,
    /// The chain this instance writes.
    pub instance: String,
    /// Queue capacity.
    pub capacity: usize,
    /// Records per transaction at most.
    pub batch_max: usize,
    /// How long records nobody waits for may gather before they are written
    /// ([`LINGER`] unless a test needs another).
    pub linger: Duration,
}

impl AuditLog {
    /// Queues an event; waits for room when the queue is full.
    pub async fn record(&self, event: Event) {
        METRICS.audit_queue_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Job::Record(Box::new(event), None))
            .await
            .is_err()
        {
            METRICS.audit_queue_depth.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("audit writer has stopped; record lost");
            return;
        }
        // A full batch is waiting: letting it gather longer would only leave the writer idle
        // while the queue fills (this wakes the writer only if it is lingering).
        if self.tx.max_capacity() - self.tx.capacity() >= self.batch_max {
            self.kick.notify_waiters();
        }
    }

    /// Queues an event and waits until it is committed, or fails after `timeout`.
    pub async fn record_durably(&self, event: Event, timeout: Duration) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        METRICS.audit_queue_depth.fetch_add(1, Ordering::Relaxed);
        let sent = tokio::time::timeout(
            timeout,
            self.tx.send(Job::Record(Box::new(event), Some(ack))),
        )
        .await;
        match sent {
            Ok(Ok(())) => self.kick.notify_waiters(),
            Ok(Err(_)) => {
                METRICS.audit_queue_depth.fetch_sub(1, Ordering::Relaxed);
                return Err(AuditError::Closed);
            }
            Err(_) => {
                METRICS.audit_queue_depth.fetch_sub(1, Ordering::Relaxed);
                return Err(AuditError::Timeout);
            }
        }
        match tokio::time::timeout(timeout, done).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(AuditError::Store(e)),
            Ok(Err(_)) => Err(AuditError::Closed),
            Err(_) => Err(AuditError::Timeout),
        }
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).await.is_ok() {
            self.kick.notify_waiters();
            let _ = rx.await;
        }
    }
}

impl WriterHandle {
    /// Starts the writer thread: connects, finds the head of this instance's chain, and
    /// begins taking records.
    pub fn start(settings: WriterSettings) -> Result<WriterHandle, StoreError> {
        let (tx, rx) = mpsc::channel(settings.capacity);
        let batch_max = settings.batch_max.max(1);
        let kick = Arc::new(Notify::new());
        let writer_kick = kick.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StoreError>>();
        let thread = std::thread::Builder::new()
            .name("actas-audit".into())
            .spawn(move || {
                yield_to_requests();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Corrupt(format!(
                            "cannot start the audit runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let store = match Store::connect(&settings.url, 1, Durability::Machine).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let head = match store.audit_chain_head(&settings.instance).await {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let (seq, hash) = head.unwrap_or((0, GENESIS.to_owned()));
                    Writer {
                        store: store.clone(),
                        instance: settings.instance,
                        batch_max: settings.batch_max,
                        linger: settings.linger,
                        kick: writer_kick,
                        seq,
                        hash,
                        failures: 0,
                        probe: 0,
                        refused_alone: false,
                    }
                    .run(rx)
                    .await;
                    store.close().await;
                });
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the audit thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(WriterHandle {
                log: AuditLog {
                    tx,
                    kick,
                    batch_max,
                },
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Corrupt(
                "the audit thread ended while starting".into(),
            )),
        }
    }

    /// The handle requests use.
    pub fn log(&self) -> AuditLog {
        self.log.clone()
    }

    /// Writes everything queued, then stops the thread and waits for it. Call it outside
    /// any async runtime (after the server has stopped).
    pub fn shutdown(mut self) {
        if self.log.tx.blocking_send(Job::Close).is_err() {
            tracing::warn!("audit writer had already stopped");
        }
        self.log.kick.notify_waiters();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("audit writer thread panicked");
            }
        }
    }
}

/// The writer's niceness: above the request threads' 0, so that when both want a core the
/// request path gets it and the writer catches up in the gaps (the bounded queue holds what
/// it has not written yet, and a full queue still holds requests back: nothing is lost).
const WRITER_NICE: libc::c_int = 5;

/// Lowers this thread's scheduling priority to [`WRITER_NICE`]. On Linux niceness belongs to
/// the thread and is inherited by the threads it starts, so SQLite's worker thread, which
/// sqlx starts when the writer connects, runs at the same priority.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WRITER_NICE)
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "audit writer keeps the default priority");
        }
    }
}

struct Writer {
    store: Store,
    instance: String,
    batch_max: usize,
    linger: Duration,
    kick: Arc<Notify>,
    seq: i64,
    hash: String,
    /// Attempts in a row that the store refused (the chain's head unmoved).
    failures: u32,
    /// After [`PROBE_AFTER`] refusals in a row, how many of the pending records the next
    /// batch holds (0: all of them). Halved at each refusal, down to a record the store
    /// refuses on its own; doubled at each write, back to whole batches.
    probe: usize,
    /// The first pending record was refused on its own once already.
    refused_alone: bool,
}

/// Refusals in a row after which the writer looks for a record the store will never take
/// (a value the database cannot hold, a trigger, a constraint), in smaller and smaller
/// batches, so that it is stood in for and logged instead of holding back every record
/// after it. A store that is down refuses every batch, whatever its size, and loses nothing
/// by it: the records wait, as before.
const PROBE_AFTER: u32 = 3;

/// How often in a row the writer numbers a batch again from a head another writer moved
/// before it counts the batch as refused.
const CATCH_UPS: u32 = 8;

type Ack = oneshot::Sender<Result<(), String>>;

/// How long the writer lets records gather before writing a batch that nobody waits for.
/// While it sleeps, queueing a record wakes no thread; a record someone waits for (a
/// write-ahead record, a flush, the shutdown) or a full batch in the queue ends the wait at
/// once. A longer wait makes
/// larger batches: every commit rewrites the last, partly filled page of each of the
/// table's B-trees and syncs the file, whatever the batch size (20 ms instead of 5 cut
/// the audit trail's CPU per request by a sixth under load). Records nobody waits for
/// reach the store at most this much later.
pub const LINGER: Duration = Duration::from_millis(20);

/// Records not yet written, in queue order, each with whoever waits for it.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    acks: Vec<Option<Ack>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn someone_waits(&self) -> bool {
        self.acks.iter().any(Option::is_some)
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut pending = Pending::default();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut closing = false;
        let mut failed_while_closing = 0;
        loop {
            if pending.is_empty() {
                if closing {
                    break;
                }
                match rx.recv().await {
                    Some(job) => closing |= self.take(job, &mut pending, &mut flushes),
                    None => break,
                }
                // Listening for a kick before looking at the queue: a job queued before this
                // is found below, one queued after it wakes the linger. A kick nobody listens
                // for is not kept, so no later linger ends for an old reason.
                let kicked = self.kick.notified();
                tokio::pin!(kicked);
                kicked.as_mut().enable();
                self.gather(&mut rx, &mut pending, &mut flushes, &mut closing);
                // Let a small batch gather instead of committing (and being woken) for every
                // request. Not when a whole batch was queued already, nor when someone waits:
                // a record a request waits for, a flush or the shutdown, even behind other
                // records in the queue, is written at once.
                if pending.len() < self.batch_max
                    && !pending.someone_waits()
                    && !closing
                    && flushes.is_empty()
                {
                    tokio::select! {
                        () = tokio::time::sleep(self.linger) => {}
                        () = &mut kicked => {}
                    }
                }
            }
            self.gather(&mut rx, &mut pending, &mut flushes, &mut closing);
            if !pending.is_empty() && !self.write(&mut pending).await && closing {
                failed_while_closing += 1;
                if failed_while_closing >= 25 {
                    tracing::error!(
                        records = pending.len(),
                        "audit store unreachable at shutdown; these records could not be written"
                    );
                    break;
                }
            }
            if pending.is_empty() {
                for f in flushes.drain(..) {
                    let _ = f.send(());
                }
            }
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
        tracing::info!(seq = self.seq, "audit writer stopped; queue flushed");
    }

    /// Takes what is queued now, up to a batch or a job that asks the writer to close.
    fn gather(
        &self,
        rx: &mut mpsc::Receiver<Job>,
        pending: &mut Pending,
        flushes: &mut Vec<oneshot::Sender<()>>,
        closing: &mut bool,
    ) {
        while pending.len() < self.batch_max && !*closing {
            match rx.try_recv() {
                Ok(job) => *closing |= self.take(job, pending, flushes),
                Err(_) => break,
            }
        }
    }

    /// Takes one job; true when it asks the writer to close.
    fn take(
        &self,
        job: Job,
        pending: &mut Pending,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) -> bool {
        match job {
            Job::Record(e, ack) => {
                METRICS.audit_queue_depth.fetch_sub(1, Ordering::Relaxed);
                pending.records.push(self.unchained(*e));
                pending.acks.push(ack);
                false
            }
            Job::Flush(f) => {
                flushes.push(f);
                false
            }
            Job::Close => true,
        }
    }

    /// An event as a record of this instance, its fields moved, not yet numbered or chained.
    /// Text is stored without NUL characters, which PostgreSQL's `text` cannot hold (a client
    /// could otherwise send a record no batch holding it could ever write).
    fn unchained(&self, e: Event) -> Record {
        Record {
            id: without_nul(e.id),
            instance: self.instance.clone(),
            seq: 0,
            ts: e.ts,
            kind: e.kind.to_owned(),
            actor: e.actor.map(without_nul),
            subject: e.subject.map(without_nul),
            session_id: e.session_id.map(without_nul),
            impersonation_id: e.impersonation_id.map(without_nul),
            request_id: e.request_id.map(without_nul),
            method: e.method.map(without_nul),
            host: e.host.map(without_nul),
            path: e.path.map(without_nul),
            status: e.status,
            bytes_out: e.bytes_out,
            duration_ms: e.duration_ms,
            client_ip: e.client_ip.map(without_nul),
            user_agent: e.user_agent.map(without_nul),
            decision: e.decision.map(without_nul),
            reason: e.reason.map(without_nul),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Writes the pending batch (after refusals in a row, only its first [`Writer::probe`]). On
    /// failure, durable requests are told at once (they will not be forwarded) and the rest
    /// stays pending to be retried: nothing is dropped. Returns whether records were written.
    async fn write(&mut self, pending: &mut Pending) -> bool {
        let n = if self.probe > 0 {
            self.probe.min(pending.len())
        } else {
            pending.len()
        };
        let mut catch_ups = 0;
        loop {
            // Numbered and chained on every attempt: after a failure the records left are
            // numbered again from the chain's head.
            let mut seq = self.seq;
            let mut prev = self.hash.clone();
            let started = Instant::now();
            let result =
                write_chained(&self.store, &mut pending.records[..n], &mut seq, &mut prev).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            METRICS
                .audit_write_micros_total
                .fetch_add(micros, Ordering::Relaxed);
            METRICS.audit_batches_total.fetch_add(1, Ordering::Relaxed);
            let error = match result {
                Ok(()) => {
                    self.written(pending, n, seq, prev);
                    return true;
                }
                Err(e) => e,
            };
            match self.head_after_refusal(seq, &prev).await {
                Head::Ours => {
                    // The commit happened; only its answer was lost.
                    self.written(pending, n, seq, prev);
                    return true;
                }
                Head::Moved(head_seq, head_hash) if catch_ups < CATCH_UPS => {
                    // Another process writes this chain too (during a zero-downtime upgrade,
                    // the old and the new one): continue after its records, at once, without
                    // refusing anyone's write-ahead record.
                    tracing::warn!(
                        seq = head_seq,
                        "the audit chain was moved on by another writer; numbering after it"
                    );
                    self.seq = head_seq;
                    self.hash = head_hash;
                    catch_ups += 1;
                }
                Head::Moved(..) | Head::Unmoved | Head::Unknown => {
                    return self.refused(pending, n, &error).await;
                }
            }
        }
    }

    /// The first `n` pending records were written as `(seq, prev)`'s chain.
    fn written(&mut self, pending: &mut Pending, n: usize, seq: i64, prev: String) {
        self.seq = seq;
        self.hash = prev;
        self.failures = 0;
        self.refused_alone = false;
        if self.probe > 0 {
            self.probe = self.probe.saturating_mul(2);
            if self.probe >= self.batch_max {
                self.probe = 0;
            }
        }
        METRICS
            .audit_records_total
            .fetch_add(n as u64, Ordering::Relaxed);
        pending.records.drain(..n);
        for ack in pending.acks.drain(..n).flatten() {
            let _ = ack.send(Ok(()));
        }
    }

    /// Where the chain's head is after a batch numbered up to `(seq, hash)` was refused.
    async fn head_after_refusal(&self, seq: i64, hash: &str) -> Head {
        if seq > self.seq {
            if let Ok(mine) = self.store.audit_chain(&self.instance, seq - 1, 1).await {
                if mine.first().is_some_and(|r| r.seq == seq && r.hash == hash) {
                    return Head::Ours;
                }
            }
        }
        match self.store.audit_chain_head(&self.instance).await {
            Ok(head) => {
                let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
                if head_seq == self.seq && head_hash == self.hash {
                    Head::Unmoved
                } else {
                    Head::Moved(head_seq, head_hash)
                }
            }
            Err(_) => Head::Unknown,
        }
    }

    /// The store refused the first `n` pending records for `error`.
    async fn refused(&mut self, pending: &mut Pending, n: usize, error: &StoreError) -> bool {
        METRICS
            .audit_write_failures_total
            .fetch_add(1, Ordering::Relaxed);
        self.failures = self.failures.saturating_add(1);
        let message = without_nul(error.to_string());
        let alone = n == 1 && self.probe > 0;
        if alone && !self.refused_alone {
            // Once more before giving up on it: one refusal may have been the store's.
            self.refused_alone = true;
        } else if alone {
            // Refused alone twice: if a stand-in for it can be written, the store can take
            // records and will never take this one.
            let record = &pending.records[0];
            let mut stand_in = [stand_in(record, &message)];
            let mut seq = self.seq;
            let mut prev = self.hash.clone();
            if write_chained(&self.store, &mut stand_in, &mut seq, &mut prev)
                .await
                .is_ok()
            {
                METRICS
                    .audit_records_unwritable_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %message,
                    seq,
                    record = ?record,
                    "the audit store refuses this record; a stand-in holds its place in the chain, and the record is only in this log"
                );
                if let Some(ack) = pending.acks[0].take() {
                    let _ = ack.send(Err(message));
                }
                self.written(pending, 1, seq, prev);
                return true;
            }
        }
        tracing::error!(error = %message, records = pending.len(), "audit batch not written; retrying");
        if pending.acks.first().is_some_and(Option::is_some) {
            // The record refused alone is told now and leaves the queue.
            self.refused_alone = false;
        }
        let mut kept = Pending::default();
        for (record, ack) in pending.records.drain(..).zip(pending.acks.drain(..)) {
            match ack {
                Some(ack) => {
                    let _ = ack.send(Err(message.clone()));
                }
                None => {
                    kept.records.push(record);
                    kept.acks.push(None);
                }
            }
        }
        *pending = kept;
        if self.probe > 1 || (self.probe == 0 && self.failures >= PROBE_AFTER) {
            // Half as many next time, at once: if one record is what the store refuses, it
            // is found in a few tries.
            self.probe = (n / 2).max(1);
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        false
    }
}

/// Where a chain's head is after the store refused a batch.
enum Head {
    /// At the batch's last record: it was committed after all.
    Ours,
    /// Where this writer left it.
    Unmoved,
    /// Moved on by another writer, to this `(seq, hash)`.
    Moved(i64, String),
    /// The store could not say.
    Unknown,
}

/// `s` with every NUL character replaced by U+FFFD.
fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s
    }
}

/// What is written in place of a record the store refuses: when, what kind and which record,
/// and why, none of the record's other values (one of them is what the store refuses).
fn stand_in(record: &Record, error: &str) -> Record {
    Record {
        id: record.id.clone(),
        instance: record.instance.clone(),
        seq: 0,
        ts: record.ts,
        kind: record.kind.clone(),
        actor: None,
        subject: None,
        session_id: None,
        impersonation_id: None,
        request_id: None,
        method: None,
        host: None,
        path: None,
        status: None,
        bytes_out: None,
        duration_ms: None,
        client_ip: None,
        user_agent: None,
        decision: Some("unwritable".into()),
        reason: Some(format!(
            "the audit store refused this record ({}); its values are in actas's log",
            error.chars().take(300).collect::<String>()
        )),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Numbers and chains `records` after `(seq, prev)` and writes them as one batch, chaining
/// each statement's rows while the database stores the rows before them: the hash chain
/// (on this thread) and the database's work (on its own thread, or its own server) overlap
/// instead of taking turns. On return `(seq, prev)` is the head after the last record
/// chained; it is the chain's head only if the batch was written.
async fn write_chained(
    store: &Store,
    records: &mut [Record],
    seq: &mut i64,
    prev: &mut String,
) -> Result<(), StoreError> {
    let mut batch = store.begin_audit(records.len()).await?;
    let mut chunks = records.chunks_mut(ROWS_PER_STATEMENT);
    let mut next = chain_next(&mut chunks, seq, prev);
    while let Some(chunk) = next {
        let mut insert = std::pin::pin!(batch.insert(chunk));
        // The first poll hands the statement to the database.
        let first = std::future::poll_fn(|cx| Poll::Ready(insert.as_mut().poll(cx))).await;
        next = chain_next(&mut chunks, seq, prev);
        match first {
            Poll::Ready(result) => result?,
            Poll::Pending => insert.await?,
        }
    }
    batch.commit().await
}

/// The next statement's rows, numbered and hashed in order after `(seq, prev)`, which
/// moves along to their last record.
fn chain_next<'r>(
    chunks: &mut std::slice::ChunksMut<'r, Record>,
    seq: &mut i64,
    prev: &mut String,
) -> Option<&'r mut [Record]> {
    let records = chunks.next()?;
    for r in records.iter_mut() {
        *seq += 1;
        r.seq = *seq;
        r.prev_hash = std::mem::take(prev);
        r.hash = compute_hash(r);
        prev.clone_from(&r.hash);
    }
    Some(records)
}
