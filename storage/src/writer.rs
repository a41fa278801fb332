//! The group-commit Writer: the only code that opens redb write transactions.
//!
//! It runs on its own thread. It takes the first waiting write, then every write that
//! queued up behind it (up to `max_batch`), applies them all to one transaction and commits
//! once. Under load (the previous commit held more than one write) it first waits `linger`
//! for more writes to join: each commit costs its pages and a sync whatever it holds, so
//! fewer, larger commits cost less per write; an idle server never waits. Each waiter is
//! answered only after the commit that holds its write has returned, so an acknowledged
//! write survives a crash. The queue is bounded: a full queue is
//! reported to the caller ([`Error::Unavailable`]) instead of growing without limit.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::ReadableDatabase;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::effects::EffectLog;
use crate::handle::Handle;
use crate::heads::Heads;
use crate::histogram::Histogram;
use crate::recent::RecentCids;
use crate::tables::RECENT_CIDS;
use crate::{Error, Result, Tx};

/// Sizes of the Writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Under load (the previous commit held more than one write), how long the Writer waits
    /// after the first write of a batch for more to join it; zero commits at once. Fewer,
    /// larger commits: each costs its pages and a sync whatever it holds.
    pub linger: Duration,
    /// Most writes waiting for the Writer; past that, submissions are refused.
    pub queue: usize,
    /// After a failed write, how long the Writer waits before it opens the database again;
    /// the wait doubles after each try that fails, up to 10 s.
    pub reopen_after: Duration,
    /// Where each batch's row effects go before its commit (cluster mode's replicated
    /// log); `None` records nothing. See [`crate::effects`].
    pub effect_log: Option<EffectLog>,
    /// How long a sender's client id (`cid`) is remembered: the same `cid` again within it
    /// stores no second message. The Writer holds an index entry per `cid` in it (about
    /// 30 bytes) and the table a row.
    pub dedup_window: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 4096,
            linger: Duration::ZERO,
            queue: 65_536,
            reopen_after: Duration::from_millis(250),
            effect_log: None,
            dedup_window: Duration::from_secs(3600),
        }
    }
}

/// Upper bounds of the commit-latency histogram, seconds.
pub const COMMIT_SECONDS_BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the batch-size histogram, writes per transaction.
pub const BATCH_SIZE_BOUNDS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Counters of the Writer since start (read them with `Ordering::Relaxed`).
#[derive(Debug)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes applied.
    pub writes: AtomicU64,
    /// Total commit time in microseconds.
    pub commit_micros: AtomicU64,
    /// Largest batch seen.
    pub max_batch: AtomicU64,
    /// Writes per committed transaction.
    pub batch_size: Histogram,
    /// Time from opening a batch's transaction to the end of its commit, seconds.
    pub commit_seconds: Histogram,
    /// Transactions that failed to begin or to commit (nothing of them was written).
    pub failed_commits: AtomicU64,
    /// The last transaction failed: writes are failing (redb refuses every write after an
    /// I/O error until the database is opened again, which the Writer retries).
    pub failing: AtomicBool,
    /// Times the database was opened again after failed writes, and writes came back.
    pub reopens: AtomicU64,
    /// Batches the Writer held back `linger` for more writes to join (under load only).
    pub lingers: AtomicU64,
    /// Batches the effect log refused: aborted, their writers answered with its error.
    pub refused_by_log: AtomicU64,
    /// Client ids the dedup index held after the last commit.
    pub recent_cids: AtomicU64,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
            batch_size: Histogram::new(&BATCH_SIZE_BOUNDS),
            commit_seconds: Histogram::new(&COMMIT_SECONDS_BOUNDS),
            failed_commits: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            reopens: AtomicU64::new(0),
            lingers: AtomicU64::new(0),
            refused_by_log: AtomicU64::new(0),
            recent_cids: AtomicU64::new(0),
        }
    }
}

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
/// Applies one write to the batch's transaction, or (given `None`) gives up on it because
/// the transaction could not be opened.
type Apply = Box<dyn FnOnce(Option<&Tx<'_>>) -> Finish + Send>;

enum Job {
    Apply(Apply),
    Stop,
}

struct Shared {
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: WriterStats,
    /// Given a permit after each commit whose transaction opened the webhook outbox.
    outbox: Notify,
}

/// Handle to the Writer thread; clones share it.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl Writer {
    pub(crate) fn start(db: Arc<Handle>, config: WriterConfig) -> Result<Writer> {
        let (queue, rx) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            thread: Mutex::new(None),
            stats: WriterStats::default(),
            outbox: Notify::new(),
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("parlor-writer".into())
            .spawn(move || run(db, rx, config, &thread_shared))?;
        *shared.thread.lock().expect("writer thread lock") = Some(handle);
        Ok(Writer { queue, shared })
    }

    fn job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let apply: Apply = Box::new(move |tx| {
            let outcome = match tx {
                Some(tx) => f(tx),
                None => Err(Error::Unavailable("cannot open a write transaction")),
            };
            Box::new(move |commit: Result<()>| {
                let _ = reply.send(commit.and(outcome));
            })
        });
        (Job::Apply(apply), rx)
    }

    /// Queues a write without waiting; the receiver answers after its commit. Refuses at
    /// once when the queue is full, so an actor can call it on its own thread.
    ///
    /// `f` runs on the Writer thread inside the batch's transaction. When it returns an
    /// error it must not have written anything (check first, then write).
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (job, rx) = Self::job(f);
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable("write queue is full"),
            mpsc::error::TrySendError::Closed(_) => Error::Unavailable("writer stopped"),
        })?;
        Ok(rx)
    }

    /// Queues a write without waiting, like [`submit`](Self::submit), and calls `then` on
    /// the Writer thread after the commit, in commit order: the way for an actor to learn
    /// of its commits as messages (`then` sends one) rather than as futures it must poll.
    /// `then` must be quick. It is not called when the write is refused at once (the
    /// error is returned instead) or lost with a panicking batch.
    pub fn submit_then<T, F, C>(&self, f: F, then: C) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        C: FnOnce(Result<T>) + Send + 'static,
    {
        let apply: Apply = Box::new(move |tx| {
            let outcome = match tx {
                Some(tx) => f(tx),
                None => Err(Error::Unavailable("cannot open a write transaction")),
            };
            Box::new(move |commit: Result<()>| then(commit.and(outcome)))
        });
        self.queue.try_send(Job::Apply(apply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable("write queue is full"),
            mpsc::error::TrySendError::Closed(_) => Error::Unavailable("writer stopped"),
        })
    }

    /// Writes and waits for the commit, waiting for room in the queue if it is full.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (job, rx) = Self::job(f);
        self.queue
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("writer stopped"))?;
        rx.await.map_err(|_| Error::Unavailable("writer stopped"))?
    }

    /// [`write`](Self::write) for code that is not async (start-up, tests, tools).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (job, rx) = Self::job(f);
        self.queue
            .blocking_send(job)
            .map_err(|_| Error::Unavailable("writer stopped"))?;
        rx.blocking_recv()
            .map_err(|_| Error::Unavailable("writer stopped"))?
    }

    /// Counters since start.
    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// Completes after a commit whose transaction opened the webhook outbox (queued,
    /// delivered or failed events; a read counts too) since the last call completed; at
    /// once when one happened meanwhile. The webhook delivery waits on it while the outbox
    /// is empty instead of reading it on a timer.
    pub async fn outbox_changed(&self) {
        self.shared.outbox.notified().await
    }

    /// Commits everything queued so far, then stops the thread and waits for it.
    /// Later submissions are refused. Calling it twice is harmless.
    pub fn shutdown(&self) {
        let handle = self.shared.thread.lock().expect("writer thread lock").take();
        if let Some(handle) = handle {
            let queue = self.queue.clone();
            // The queue may be full: wait for room from a plain thread, never an async one.
            let _ = std::thread::spawn(move || queue.blocking_send(Job::Stop)).join();
            let _ = handle.join();
        }
    }
}

/// The longest wait between two tries to open the database again after failed writes.
const REOPEN_MAX: Duration = Duration::from_secs(10);
/// How long a reopen waits for readers to let go of the failed opening.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// Takes what is queued into `batch`, up to `max_batch` writes or a `Stop`.
fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Apply>, stop: &mut bool, max_batch: usize) {
    while !*stop && batch.len() < max_batch {
        match rx.try_recv() {
            Ok(Job::Apply(apply)) => batch.push(apply),
            Ok(Job::Stop) => *stop = true,
            Err(_) => break,
        }
    }
}

fn run(db: Arc<Handle>, mut rx: mpsc::Receiver<Job>, config: WriterConfig, shared: &Shared) {
    let stats = &shared.stats;
    let max_batch = config.max_batch.max(1);
    let first = config.reopen_after.min(REOPEN_MAX);
    let mut batch: Vec<Apply> = Vec::with_capacity(max_batch);
    let kept = Kept {
        recent: RefCell::new(RecentCids::new(config.dedup_window)),
        heads: RefCell::default(),
    };
    // The index of recent client ids, built before the first write rather than by it.
    let built = db.get().and_then(|db| {
        let txn = db.begin_read()?;
        kept.recent.borrow_mut().rebuild(&txn.open_table(RECENT_CIDS)?)
    });
    match built {
        Ok(()) => stats
            .recent_cids
            .store(kept.recent.borrow().len() as u64, Ordering::Relaxed),
        Err(e) => tracing::warn!(error = %e, "the recent client ids are read at the first send instead"),
    }
    let mut stop = false;
    // Whether the last commit held more than one write: the Writer is under load.
    let mut busy = false;
    // While writes fail: when to try opening the database again, and the wait after that.
    let mut retry: Option<(Instant, Duration)> = None;
    while !stop {
        if stats.failing.load(Ordering::Relaxed) {
            let (at, wait) = *retry.get_or_insert((Instant::now() + first, first));
            if Instant::now() >= at {
                match db.reopen(REOPEN_WAIT) {
                    Ok(()) => {
                        tracing::warn!("the database was opened again: writes resume");
                        stats.reopens.fetch_add(1, Ordering::Relaxed);
                        stats.failing.store(false, Ordering::Relaxed);
                        retry = None;
                    }
                    Err(e) => {
                        let next = (wait * 2).clamp(Duration::from_millis(1), REOPEN_MAX);
                        tracing::warn!(error = %e, retry_in_ms = next.as_millis() as u64, "the database cannot be opened again yet");
                        retry = Some((Instant::now() + next, next));
                    }
                }
            }
        }
        let first = if stats.failing.load(Ordering::Relaxed) {
            // Wake up for the next try even when nothing is written meanwhile.
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        } else {
            rx.blocking_recv()
        };
        match first {
            Some(Job::Apply(apply)) => batch.push(apply),
            Some(Job::Stop) | None => stop = true,
        }
        drain(&mut rx, &mut batch, &mut stop, max_batch);
        if busy && !stop && !config.linger.is_zero() && batch.len() < max_batch {
            stats.lingers.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(config.linger);
            drain(&mut rx, &mut batch, &mut stop, max_batch);
        }
        if batch.is_empty() {
            continue;
        }
        busy = batch.len() > 1;
        commit_batch(&db, &mut batch, config.effect_log.as_ref(), &kept, shared);
    }
    rx.close();
    // Anything queued after Stop is answered with an error rather than dropped silently.
    while let Ok(job) = rx.try_recv() {
        if let Job::Apply(apply) = job {
            batch.push(apply);
        }
    }
    if !batch.is_empty() {
        commit_batch(&db, &mut batch, config.effect_log.as_ref(), &kept, shared);
    }
    tracing::debug!("writer stopped");
}

/// What the Writer thread keeps in memory between its transactions.
struct Kept {
    /// The index of recent client ids.
    recent: RefCell<RecentCids>,
    /// The conversations' committed heads.
    heads: RefCell<Heads>,
}

fn commit_batch(db: &Handle, batch: &mut Vec<Apply>, log: Option<&EffectLog>, kept: &Kept, shared: &Shared) {
    let stats = &shared.stats;
    let started = Instant::now();
    let size = batch.len() as u64;
    let txn = match db.get().and_then(|db| db.begin_write().map_err(Error::from)) {
        Ok(txn) => txn,
        Err(err) => {
            tracing::error!(error = %err, "cannot begin a write transaction");
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            stats.failing.store(true, Ordering::Relaxed);
            fail_all(batch, &err);
            return;
        }
    };
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let tx = Tx::new(&txn, log.is_some(), &kept.recent, &kept.heads);
        let finishers = batch
            .drain(..)
            .map(|apply| apply(Some(&tx)))
            .collect::<Vec<Finish>>();
        let logged = match log {
            Some(log) => tx.log_effects(log),
            None => Ok(()),
        };
        let held = tx.recent_cids_held() as u64;
        stats.recent_cids.store(held, Ordering::Relaxed);
        (finishers, logged, tx.opened_outbox(), tx.take_new_heads())
    }));
    let (finishers, outbox, new_heads) = match applied {
        Ok((finishers, logged, outbox, new_heads)) => match logged {
            Err(refused) => {
                // Not in the log, so not committed: the transaction is dropped (aborted).
                tracing::warn!(error = %refused, "the effect log refused a batch of {size}; it was aborted");
                stats.refused_by_log.fetch_add(1, Ordering::Relaxed);
                drop(txn);
                for finish in finishers {
                    finish(Err(refused.clone()));
                }
                return;
            }
            Ok(()) => (finishers, outbox, new_heads),
        },
        Err(_) => {
            // The batch is lost as a whole; its waiters were dropped with it and see
            // `Unavailable`. The transaction is aborted by dropping it.
            tracing::error!("a write panicked; its batch of {size} was aborted");
            batch.clear();
            return;
        }
    };
    let outcome = txn.commit().map_err(Error::from);
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "commit failed");
        stats.failed_commits.fetch_add(1, Ordering::Relaxed);
    }
    stats.failing.store(outcome.is_err(), Ordering::Relaxed);
    if outcome.is_ok() {
        // Only a committed transaction's heads are true.
        kept.heads.borrow_mut().merge(new_heads);
    }
    let took = started.elapsed();
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.writes.fetch_add(size, Ordering::Relaxed);
    stats
        .commit_micros
        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    stats.max_batch.fetch_max(size, Ordering::Relaxed);
    stats.batch_size.record(size as f64);
    stats.commit_seconds.record(took.as_secs_f64());
    if outbox && outcome.is_ok() {
        shared.outbox.notify_one();
    }
    for finish in finishers {
        finish(outcome.clone());
    }
}

fn fail_all(batch: &mut Vec<Apply>, err: &Error) {
    // Nothing was applied: answer each waiter with the error.
    for apply in batch.drain(..) {
        apply(None)(Err(err.clone()));
    }
}
