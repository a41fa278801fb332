//! `direct`: one-to-one messages between pairs of online users.
//!
//! Clients are paired 0↔1, 2↔3, …; every client sends to its peer and receives from it.
//! Message `k` (of `0..messages`) is sent by client `k mod clients`, so the messages are
//! spread evenly and message order is also time order on an open-loop grid.
//!
//! - Closed loop (no `--rate`): each sender keeps up to `--window` sends unacknowledged and
//!   sends the next one as soon as an ack (or a refusal) frees a slot: maximum throughput.
//! - Open loop (`--rate R`): message `k` is due at `start + k / R` (see [`crate::drive`]);
//!   latency counts from the due time. No window.
//!
//! Each message's content carries its due time, its actual send time and `k`. The receiver
//! measures send→receive against the process-wide clock, checks that `k` came from its peer
//! and that the pushed `seq` never goes back (each client has one conversation, with its
//! peer, so pushes should arrive in timeline order); the sender's reader measures send→ack.
//! The first `--warmup` messages are counted but not recorded in the histograms.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::drive::{self, Plan, Sender, Target};
use crate::frames::{self, Payload, ServerFrame};
use crate::machine;
use crate::setup::{self, User, Ws};
use crate::stats::{self, RunInfo, Stats};
use crate::Common;

/// Options of the `direct` mode.
#[derive(Debug, Args)]
pub struct DirectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of users, each with one WebSocket (an even number: they are paired).
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Messages to send in total, spread evenly over the clients.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Open loop: messages per second in total, on a fixed schedule. Absent: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: unacknowledged sends each client keeps in flight.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Messages sent first and counted, but left out of the latency figures [default: 5%].
    #[arg(long)]
    pub warmup: Option<u64>,
}

fn validate(args: &DirectArgs) -> Result<(), String> {
    let n = args.clients;
    if n < 2 || !n.is_multiple_of(2) {
        return Err(format!("--clients must be even and at least 2 (pairs), got {n}"));
    }
    drive::validate(args.messages, args.rate, args.window)
}

fn mode_name(args: &DirectArgs) -> String {
    match args.rate {
        Some(r) => format!("direct, open loop at {r} msg/s"),
        None => format!("direct, closed loop, window {}", args.window),
    }
}

/// Runs the mode; `Ok(false)` when messages were lost or refused.
pub async fn run(args: &DirectArgs) -> Result<bool, String> {
    validate(args)?;
    let n = args.clients;
    let warmup = args.warmup.unwrap_or(args.messages / 20).min(args.messages);
    let (users, sockets) = set_up(&args.common, n).await?;

    let stats = Arc::new(Stats::new(n, args.messages, warmup));
    let cpu = machine::ServerCpu::start(&args.common.url, &args.common.server_pids);
    let start_ns = drive::start_ns(args.rate);
    let (readers, senders) = start_clients(args, &users, sockets, &stats, start_ns);

    let timed_out = drive::wait_for_end(&stats, n, Duration::from_secs(args.common.timeout)).await;
    let server_cpu_s = cpu.and_then(|c| c.used());
    let ran_for = Duration::from_nanos(clock::now_ns().saturating_sub(start_ns));
    eprintln!("{}", stats.progress(ran_for));
    readers.iter().for_each(JoinHandle::abort);
    drive::close_all(senders, Vec::new()).await;

    let info = RunInfo {
        mode: mode_name(args),
        clients: n,
        senders: n,
        messages: args.messages,
        warmup,
        start_ns,
        timed_out,
        server_cpu_s,
        extra: Vec::new(),
    };
    Ok(stats::report(&stats, &info))
}

/// Registers the users and connects their sockets.
async fn set_up(common: &Common, n: usize) -> Result<(Vec<User>, Vec<Ws>), String> {
    let t = Instant::now();
    let prefix = setup::run_prefix();
    let users = setup::register(&common.url, &prefix, n, common.setup_concurrency).await?;
    setup::open_inboxes(&common.url, &users, common.setup_concurrency).await?;
    eprintln!("registered {n} users ({prefix}_*) in {:.1?}", t.elapsed());
    let t = Instant::now();
    let connector = setup::Connector::new(&common.url, &common.source_ips)?;
    let sockets = setup::connect_all(&connector, &users, common.setup_concurrency).await?;
    eprintln!("connected {n} sockets in {:.1?}", t.elapsed());
    Ok((users, sockets))
}

/// Splits every socket into a reader task and a sender task.
fn start_clients(
    args: &DirectArgs,
    users: &[User],
    sockets: Vec<Ws>,
    stats: &Arc<Stats>,
    start_ns: u64,
) -> (Vec<JoinHandle<()>>, Vec<Sender>) {
    let n = users.len();
    let mut readers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for (client, ws) in sockets.into_iter().enumerate() {
        let plan = Plan {
            sender: client,
            senders: n,
            messages: args.messages,
            to: Target::User(users[client ^ 1].id),
            rate: args.rate,
            start_ns,
        };
        let window = args.rate.is_none().then(|| Arc::new(Semaphore::new(args.window)));
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(read(
            client,
            n,
            stream,
            stats.clone(),
            window.clone(),
        )));
        let stats = stats.clone();
        senders.push(tokio::spawn(async move {
            drive::send(plan, sink, stats, window.as_deref()).await
        }));
    }
    (readers, senders)
}

/// One client's incoming frames: deliveries, acks and errors, until the task is aborted.
async fn read(
    me: usize,
    clients: usize,
    mut stream: SplitStream<Ws>,
    stats: Arc<Stats>,
    window: Option<Arc<Semaphore>>,
) {
    let mut reader = Reader {
        me,
        clients,
        stats: &stats,
        window: window.as_deref(),
        last_seq: 0,
    };
    while let Some(msg) = stream.next().await {
        let now = clock::now_ns();
        match msg {
            Ok(Message::Text(text)) => reader.on_frame(text.as_str(), now),
            Ok(Message::Close(reason)) => {
                let why = reason.map_or_else(String::new, |r| format!("{} {}", r.code, r.reason));
                return stats.error(&format!("socket closed by the server: {why}"));
            }
            Ok(_) => {}
            Err(e) => return stats.error(&format!("ws read: {e}")),
        }
    }
    stats.error("socket ended");
}

/// What one client's reader knows: who it is, its window, and the highest `seq` pushed so
/// far on its one conversation (with its peer).
struct Reader<'a> {
    me: usize,
    clients: usize,
    stats: &'a Stats,
    window: Option<&'a Semaphore>,
    last_seq: u64,
}

impl Reader<'_> {
    fn sender_of(&self, index: u64) -> usize {
        (index % self.clients as u64) as usize
    }

    fn on_frame(&mut self, text: &str, now: u64) {
        match frames::parse(text) {
            Ok(ServerFrame::Chat { payload, seq }) => self.on_push(payload, seq, now),
            Ok(ServerFrame::Ack(p)) if self.sender_of(p.index) == self.me => {
                self.stats.ack(self.me, p, now);
                drive::free_slot(self.window);
            }
            Ok(ServerFrame::Ack(_)) => self.stats.error("ack sent to the wrong client"),
            Ok(ServerFrame::Error { code, answers_send }) => {
                self.stats.error(&code);
                if answers_send {
                    self.stats.refused.fetch_add(1, Relaxed);
                    drive::free_slot(self.window);
                }
            }
            Ok(ServerFrame::Connected | ServerFrame::Notice { .. } | ServerFrame::Other) => {}
            Err(e) => self.stats.error(&format!("unexpected frame: {e}")),
        }
    }

    fn on_push(&mut self, payload: Payload, seq: u64, now: u64) {
        let peer = self.me ^ 1;
        if self.sender_of(payload.index) != peer {
            return self.stats.error("message pushed to the wrong client");
        }
        if seq < self.last_seq {
            self.stats.out_of_order.fetch_add(1, Relaxed);
        }
        self.last_seq = self.last_seq.max(seq);
        self.stats.delivery(self.me, peer, payload, now);
    }
}
