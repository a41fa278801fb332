//! A shard's replicated log on NATS JetStream (`CLUSTER.md` §4.2–4.3).
//!
//! One stream per shard (`PARLOR_LOG_<k>`, subject `parlor.log.<k>`, file storage), one
//! record per Writer batch: the batch's effects ([`parlor_storage::effects`]) under the
//! message id `<k>.<epoch>.<n>`. Every append names the position the appender believes is
//! the stream's last (`Nats-Expected-Last-Sequence`): JetStream refuses it if anything else
//! was appended since, so an owner that lost the shard (paused, cut off) can never append
//! after its successor did; it is *fenced*. An append whose answer was lost is resolved by
//! reading the position it expected to take: its own id there means it landed, another id
//! means it was fenced, nothing means it may be sent again with the same id (the stream's
//! duplicate window absorbs a late landing).
//!
//! [`Appender`] is an owner's side of a [`ShardLog`], behind the Writer's effect log
//! ([`super::shard::Ownership`]): each batch is appended before its commit, and its position
//! becomes the file's `log_applied`.
//! [`ShardLog::replay`] reads records in order for a copy to apply with
//! [`Tx::apply_logged`](parlor_storage::Tx::apply_logged).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{Config, RawMessageErrorKind, StorageType, Stream};
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use futures_util::StreamExt;
use parlor_storage::effects::{encode_batch, Effect};
use parlor_storage::histogram::Histogram;

use super::{unavailable, Error};

/// How a shard's stream is made.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Copies of the stream NATS keeps (3 in production; 1 for a single NATS server).
    pub replicas: usize,
    /// Largest record, bytes (a batch's effects).
    pub max_record_bytes: i32,
    /// How long NATS remembers a record's id to absorb a resent append.
    pub duplicate_window: Duration,
    /// Longest wait for an append's or a read's answer.
    pub timeout: Duration,
    /// What the node's logs count (shared by every shard of a node).
    pub metrics: Arc<LogMetrics>,
}

/// Upper bounds of the append-latency histogram, seconds.
pub const APPEND_SECONDS_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

/// What a node's shard logs count, for `/metrics`.
#[derive(Debug)]
pub struct LogMetrics {
    /// Time each append took, seconds (retries included).
    pub append_seconds: Histogram,
    /// Appends sent again because their outcome was unknown.
    pub append_retries: AtomicU64,
    /// Appends refused because another owner had appended (the shard moved).
    pub fenced: AtomicU64,
    /// Records applied by catching up (takeovers): the log the copies lagged behind.
    pub replayed: AtomicU64,
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics {
            append_seconds: Histogram::new(&APPEND_SECONDS_BOUNDS),
            append_retries: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            replicas: 3,
            max_record_bytes: 8 * 1024 * 1024,
            duplicate_window: Duration::from_secs(120),
            timeout: Duration::from_secs(5),
            metrics: Arc::default(),
        }
    }
}

/// One record read back: its id and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub bytes: Bytes,
}

/// The replicated log of one shard; see the module doc.
pub struct ShardLog {
    js: jetstream::Context,
    stream: Stream,
    subject: String,
    shard: u32,
    timeout: Duration,
    metrics: Arc<LogMetrics>,
}

impl ShardLog {
    /// Opens the log of `shard`, creating its stream if there is none.
    pub async fn open(js: jetstream::Context, shard: u32, settings: &LogSettings) -> Result<ShardLog, Error> {
        let subject = format!("parlor.log.{shard}");
        let config = Config {
            name: format!("PARLOR_LOG_{shard}"),
            subjects: vec![subject.clone()],
            storage: StorageType::File,
            num_replicas: settings.replicas.max(1),
            max_message_size: settings.max_record_bytes,
            duplicate_window: settings.duplicate_window,
            // Records leave only by a purge below a snapshot, never one by one.
            deny_delete: true,
            ..Config::default()
        };
        let stream = tokio::time::timeout(settings.timeout, js.get_or_create_stream(config))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(ShardLog {
            js,
            stream,
            subject,
            shard,
            timeout: settings.timeout,
            metrics: settings.metrics.clone(),
        })
    }

    /// What the node's logs count.
    pub fn metrics(&self) -> &LogMetrics {
        &self.metrics
    }

    /// The stream's state as its leader answers it now.
    async fn state(&self) -> Result<async_nats::jetstream::stream::State, Error> {
        let info = tokio::time::timeout(self.timeout, self.stream.get_info())
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(info.state)
    }

    /// The position of the last record (0: none yet).
    pub async fn tail(&self) -> Result<u64, Error> {
        Ok(self.state().await?.last_sequence)
    }

    /// The position of the log's first record (past the last when the log is empty):
    /// records before it were purged below a snapshot.
    pub async fn first(&self) -> Result<u64, Error> {
        Ok(self.state().await?.first_sequence)
    }

    /// Removes the records before position `keep` (a snapshot holds what they did).
    pub async fn purge_below(&self, keep: u64) -> Result<(), Error> {
        tokio::time::timeout(self.timeout, async { self.stream.purge().sequence(keep).await })
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(())
    }

    /// The shard this is the log of.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The record at position `at`, or `None` when there is none (yet).
    pub async fn read(&self, at: u64) -> Result<Option<Record>, Error> {
        let got = tokio::time::timeout(self.timeout, self.stream.get_raw_message(at))
            .await
            .map_err(unavailable)?;
        match got {
            Ok(message) => {
                let id = message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                Ok(Some(Record {
                    id,
                    bytes: message.payload,
                }))
            }
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Appends `record` under `id` as the record right after position `expected_last`;
    /// answers its position (`expected_last + 1`). [`Error::Fenced`] when the stream
    /// already holds another record there; [`Error::Unavailable`] when it is not known
    /// whether the record landed: send it again with the same id.
    pub async fn append(&self, expected_last: u64, id: &str, record: Bytes) -> Result<u64, Error> {
        let message = PublishMessage::build()
            .payload(record)
            .message_id(id)
            .expected_last_sequence(expected_last);
        let sent = async { self.js.send_publish(self.subject.clone(), message).await?.await };
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(ack)) if ack.sequence == expected_last + 1 && !ack.duplicate => Ok(ack.sequence),
            // A duplicate of an earlier append of this id, or an answer for another
            // position: what the stream holds where this append belongs decides.
            Ok(Ok(_)) => self.resolve(expected_last, id).await,
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                self.resolve(expected_last, id).await
            }
            Ok(Err(e)) => match self.resolve(expected_last, id).await {
                Err(Error::Unavailable(_)) => Err(unavailable(e)),
                settled => settled,
            },
            Err(_) => self.resolve(expected_last, id).await,
        }
    }

    /// After an append whose outcome is unclear: the record at `expected_last + 1` is
    /// ours (landed), another's (fenced), or absent (unavailable: try again). A position
    /// the log was already truncated past (below a snapshot of a later owner: an owner
    /// paused for longer than a snapshot interval) counts as another's: whatever landed
    /// there, this owner's epoch is over.
    async fn resolve(&self, expected_last: u64, id: &str) -> Result<u64, Error> {
        let fenced = Error::Fenced {
            expected: expected_last,
        };
        match self.read(expected_last + 1).await? {
            Some(found) if found.id == id => Ok(expected_last + 1),
            Some(_) => Err(fenced),
            None if self.first().await? > expected_last + 1 => Err(fenced),
            None => Err(Error::Unavailable(format!(
                "record {id} is not at position {}",
                expected_last + 1
            ))),
        }
    }

    /// Reads the records after position `after` up to the tail as it is when the replay
    /// starts, in order, handing each to `apply` with its position; answers the last
    /// position handed (`after` when there was none). The records are asked of the
    /// stream's leader by position, 256 requests in flight: no consumer is
    /// made, for while one server of three is down the cluster can place a consumer there
    /// and a takeover's replay would wait until it came back.
    pub async fn replay(&self, after: u64, mut apply: impl FnMut(u64, Record)) -> Result<u64, Error> {
        let tail = self.tail().await?;
        if tail <= after {
            return Ok(after);
        }
        let mut records = futures_util::stream::iter(after + 1..=tail)
            .map(|at| async move { (at, self.read(at).await) })
            .buffered(REPLAY_WINDOW);
        while let Some((at, got)) = records.next().await {
            let record = got?.ok_or_else(|| Error::Unavailable(format!("record {at} is missing")))?;
            apply(at, record);
        }
        Ok(tail)
    }
}

/// Reads a replay keeps in flight.
const REPLAY_WINDOW: usize = 256;

/// How many times an append whose outcome stays unknown is sent again before the batch is
/// refused.
const APPEND_TRIES: u32 = 3;

/// The Writer's side of a shard's log: an owner's appends, one batch at a time, under its
/// epoch; see the module doc.
pub struct Appender {
    log: ShardLog,
    runtime: tokio::runtime::Handle,
    epoch: u64,
    /// The last position this owner knows the stream at, and the number of its next record.
    state: Mutex<(u64, u64)>,
    metrics: Arc<LogMetrics>,
}

impl Appender {
    /// An appender for the owner of `log` in `epoch`, which knows the stream up to
    /// position `tail` (what it replayed). `runtime` runs the appends for the Writer
    /// thread, which blocks on each.
    pub fn new(log: ShardLog, runtime: tokio::runtime::Handle, epoch: u64, tail: u64) -> Appender {
        Appender {
            metrics: log.metrics.clone(),
            log,
            runtime,
            epoch,
            state: Mutex::new((tail, 1)),
        }
    }

    /// The shard whose log this is.
    pub fn shard(&self) -> u32 {
        self.log.shard
    }

    /// Appends one batch's effects; answers its position. A fence is final: every later
    /// append is refused the same way.
    pub fn append(&self, effects: &[Effect]) -> Result<u64, Error> {
        let mut state = self.state.lock().expect("appender state");
        let (last, n) = *state;
        let id = format!("{}.{}.{n}", self.log.shard, self.epoch);
        let record = Bytes::from(encode_batch(effects));
        let mut tries = 0;
        let started = Instant::now();
        let metrics = &self.metrics;
        let answer = loop {
            tries += 1;
            match self.runtime.block_on(self.log.append(last, &id, record.clone())) {
                Ok(at) => {
                    *state = (at, n + 1);
                    break Ok(at);
                }
                Err(Error::Unavailable(_)) if tries < APPEND_TRIES => {
                    metrics.append_retries.fetch_add(1, Relaxed);
                    continue;
                }
                Err(e) => break Err(e),
            }
        };
        metrics.append_seconds.record(started.elapsed().as_secs_f64());
        if matches!(answer, Err(Error::Fenced { .. })) {
            metrics.fenced.fetch_add(1, Relaxed);
        }
        answer
    }
}
