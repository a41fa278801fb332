//! One shard on one node: whether this node owns it ([`Ownership`], the Writer's log while it
//! does) and how it comes to own it ([`LocalShard::take_over`], `CLUSTER.md` §4.5).
//!
//! A takeover (1) claims the shard in the directory with the next epoch, by
//! compare-and-swap; (2) replays the log from the position its file holds; (3) appends an
//! empty epoch-start record expecting the tail it replayed to. If an old owner, paused or
//! cut off, appended meanwhile, the append is fenced: the takeover replays that record too
//! and tries again. Once the epoch-start record lands, every append of an older owner is
//! fenced, so two owners never both commit. (4) The node writes the shard from then on,
//! each batch appended to the log before it commits.

use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use bytes::Bytes;
use parlor_storage::effects::{encode_batch, EffectLog};
use parlor_storage::{Store, WriterConfig};

use super::directory::{Directory, Seen};
use super::log::{Appender, LogSettings, ShardLog};
use super::Error;

/// Whether this node owns a shard, and its appender while it does. The node's store is
/// opened with [`Ownership::effect_log`]: while the shard is not owned here, every write
/// that changes something is refused; a fence ends the ownership.
#[derive(Default)]
pub struct Ownership {
    appender: Mutex<Option<Arc<Appender>>>,
}

impl Ownership {
    pub fn new() -> Arc<Ownership> {
        Arc::default()
    }

    /// Whether this node owns the shard now.
    pub fn owning(&self) -> bool {
        self.appender.lock().expect("ownership lock").is_some()
    }

    fn own(&self, appender: Appender) {
        *self.appender.lock().expect("ownership lock") = Some(Arc::new(appender));
    }

    /// The Writer's log: appends through the current owner's appender, refuses a batch as
    /// "shard not owned here" without one, and gives the shard up at a fence ("shard
    /// moved").
    pub fn effect_log(self: &Arc<Self>) -> EffectLog {
        let ownership = self.clone();
        EffectLog::new(move |effects| {
            let Some(appender) = ownership.appender.lock().expect("ownership lock").clone() else {
                return Err(parlor_storage::Error::Unavailable("shard not owned here"));
            };
            appender.append(effects).map_err(|e| match e {
                Error::Fenced { .. } => {
                    tracing::warn!(
                        shard = appender.shard(),
                        "fenced: another node took the shard over"
                    );
                    // Give up this appender only: a takeover may have installed a newer one.
                    let mut current = ownership.appender.lock().expect("ownership lock");
                    if current.as_ref().is_some_and(|a| Arc::ptr_eq(a, &appender)) {
                        current.take();
                    }
                    parlor_storage::Error::Unavailable("shard moved")
                }
                Error::Unavailable(why) => {
                    tracing::warn!(error = %why, "a batch could not be appended to the log");
                    parlor_storage::Error::Unavailable("log unavailable")
                }
            })
        })
    }
}

/// Why a takeover did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// Another node claimed the shard first (read the directory again).
    #[error("another node claimed the shard first")]
    Lost,
    #[error(transparent)]
    Cluster(#[from] Error),
    #[error("applying the log: {0}")]
    Store(#[from] parlor_storage::Error),
    /// The node could not open its copy or serve the shard (a node's takeover only).
    #[error("serving the shard: {0}")]
    Serve(String),
}

/// How many times a takeover replays and appends its epoch-start record before it gives up
/// (each fence means an old owner appended meanwhile).
const START_TRIES: u32 = 10;

/// A shard as one node holds it: the node's copy (its store) and whether it owns it.
pub struct LocalShard {
    pub id: u32,
    pub store: Store,
    pub ownership: Arc<Ownership>,
}

impl LocalShard {
    /// Opens the node's copy of shard `id` at `path` with the Writer `config`, whose log
    /// becomes the ownership's: the node owns nothing yet.
    pub fn open(
        id: u32,
        path: &std::path::Path,
        config: WriterConfig,
    ) -> Result<LocalShard, parlor_storage::Error> {
        Self::open_with(id, |log| {
            let config = WriterConfig {
                effect_log: Some(log),
                ..config
            };
            Store::open(path, config)
        })
    }

    /// Opens the node's copy of shard `id` with `open`, which opens the store with the
    /// effect log it is given as its Writer's: the node owns nothing yet.
    pub fn open_with<E>(id: u32, open: impl FnOnce(EffectLog) -> Result<Store, E>) -> Result<LocalShard, E> {
        let ownership = Ownership::new();
        let store = open(ownership.effect_log())?;
        Ok(LocalShard { id, store, ownership })
    }

    /// Brings the store up to `log`: applies, through its Writer, the records after the
    /// position it holds; answers the position reached. A takeover does it first; a copy
    /// that only follows the log (a standby) does nothing else.
    pub async fn catch_up(&self, log: &ShardLog) -> Result<u64, TakeoverError> {
        let from = self.store.snapshot()?.log_applied()?;
        let mut records = Vec::new();
        let last = log
            .replay(from, |at, record| records.push((at, record.bytes)))
            .await?;
        if !records.is_empty() {
            log.metrics()
                .replayed
                .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.store
                .writer()
                .write(move |tx| {
                    for (at, bytes) in &records {
                        tx.apply_logged(*at, bytes)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(last)
    }

    /// Takes the shard over for `node`, which will serve it at `addr` (see the module doc): claims it over `seen` (the
    /// claim the caller read, `None` if nobody ever owned it), brings the store up to the
    /// log, appends the epoch-start record and owns the shard. Answers the new claim.
    pub async fn take_over(
        &self,
        directory: &Directory,
        js: jetstream::Context,
        settings: &LogSettings,
        node: &str,
        addr: &str,
        seen: Option<&Seen>,
    ) -> Result<Seen, TakeoverError> {
        let shard = self.id;
        let claim = directory
            .take(shard, node, addr, seen)
            .await?
            .ok_or(TakeoverError::Lost)?;
        let epoch = claim.claim.epoch;
        let log = ShardLog::open(js, shard, settings).await?;
        let start = Bytes::from(encode_batch(&[]));
        let id = format!("{shard}.{epoch}.0");
        for _ in 0..START_TRIES {
            let tail = self.catch_up(&log).await?;
            match log.append(tail, &id, start.clone()).await {
                Ok(at) => {
                    let record = start.clone();
                    self.store
                        .writer()
                        .write(move |tx| tx.apply_logged(at, &record).map(|_| ()))
                        .await?;
                    let runtime = tokio::runtime::Handle::current();
                    self.ownership.own(Appender::new(log, runtime, epoch, at));
                    tracing::info!(shard, epoch, node, position = at, "took the shard over");
                    return Ok(claim);
                }
                // An old owner appended after the replay: replay that too.
                Err(Error::Fenced { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Unavailable(format!("shard {shard}: the log kept moving during the takeover")).into())
    }
}
