//! `direct`: one-to-one messages between pairs of online users.
//!
//! Clients are paired 0↔1, 2↔3, …; every client sends to its peer and receives from it.
//! Message `k` (of `0..messages`) is sent by client `k mod clients`, so the messages are
//! spread evenly and message order is also time order on an open-loop grid.
//!
//! - Closed loop (no `--rate`): each sender keeps up to `--window` sends unacknowledged and
//!   sends the next one as soon as an ack (or a refusal) frees a slot: maximum throughput.
//! - Open loop (`--rate R`): message `k` is due at `start + k / R`; each sender sleeps until
//!   its next due time (`sleep_until`, no ticking interval) and sends a backlog at once when it
//!   is late. Latency counts from the due time, so a stall of the server or the generator
//!   shows up in the figures instead of being hidden (no coordinated omission). No window.
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
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::frames::{self, Payload, ServerFrame};
use crate::setup::{self, User, Ws};
use crate::stats::{self, RunInfo, Stats};
use crate::Common;

/// Options of the `direct` mode.
#[derive(Debug, Args)]
pub struct DirectArgs {
    #[command(flatten)]
    pub common: Common,
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

/// Delay between setting the open-loop grid and its first due time, so that spawning the
/// sender tasks does not count as lateness.
const GRID_LEAD: Duration = Duration::from_millis(50);

/// How long closing the sockets at the end may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one sender sends: indices `client, client + clients, …` below `messages`.
#[derive(Clone, Copy)]
struct Plan {
    client: usize,
    clients: usize,
    messages: u64,
    to: u64,
    rate: Option<f64>,
    start_ns: u64,
}

impl Plan {
    fn indices(&self) -> impl Iterator<Item = u64> {
        (self.client as u64..self.messages).step_by(self.clients)
    }

    /// Open loop: when message `k` is due on the shared clock.
    fn due_ns(&self, k: u64) -> Option<u64> {
        self.rate.map(|r| self.start_ns + (k as f64 * 1e9 / r) as u64)
    }
}

fn validate(args: &DirectArgs) -> Result<(), String> {
    let n = args.common.clients;
    if n < 2 || !n.is_multiple_of(2) {
        return Err(format!("--clients must be even and at least 2 (pairs), got {n}"));
    }
    if args.messages == 0 {
        return Err("--messages must be at least 1".into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of messages per second".into());
    }
    if args.window == 0 {
        return Err("--window must be at least 1".into());
    }
    Ok(())
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
    let n = args.common.clients;
    let warmup = args.warmup.unwrap_or(args.messages / 20).min(args.messages);
    let (users, sockets) = set_up(&args.common).await?;

    let stats = Arc::new(Stats::new(n, args.messages, warmup));
    let lead = if args.rate.is_some() {
        GRID_LEAD
    } else {
        Duration::ZERO
    };
    let start_ns = clock::now_ns() + lead.as_nanos() as u64;
    let (readers, senders) = start_clients(args, &users, sockets, &stats, start_ns);

    let timed_out = wait_for_end(&stats, n, Duration::from_secs(args.common.timeout)).await;
    let ran_for = Duration::from_nanos(clock::now_ns().saturating_sub(start_ns));
    eprintln!("{}", stats.progress(ran_for));
    readers.iter().for_each(JoinHandle::abort);
    close_all(senders).await;

    let info = RunInfo {
        mode: mode_name(args),
        clients: n,
        messages: args.messages,
        warmup,
        start_ns,
        timed_out,
    };
    Ok(stats::report(&stats, &info))
}

/// Registers the users and connects their sockets.
async fn set_up(common: &Common) -> Result<(Vec<User>, Vec<Ws>), String> {
    let n = common.clients;
    let t = Instant::now();
    let prefix = setup::run_prefix();
    let users = setup::register(&common.url, &prefix, n, common.setup_concurrency).await?;
    setup::open_inboxes(&common.url, &users, common.setup_concurrency).await?;
    eprintln!("registered {n} users ({prefix}_*) in {:.1?}", t.elapsed());
    let t = Instant::now();
    let sockets = setup::connect_all(&common.url, &users, common.setup_concurrency).await?;
    eprintln!("connected {n} sockets in {:.1?}", t.elapsed());
    Ok((users, sockets))
}

type Sender = JoinHandle<Option<SplitSink<Ws, Message>>>;

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
            client,
            clients: n,
            messages: args.messages,
            to: users[client ^ 1].id,
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
        senders.push(tokio::spawn(send(plan, sink, stats.clone(), window)));
    }
    (readers, senders)
}

/// One client's sends; returns its half of the socket for closing, unless it broke.
async fn send(
    plan: Plan,
    mut sink: SplitSink<Ws, Message>,
    stats: Arc<Stats>,
    window: Option<Arc<Semaphore>>,
) -> Option<SplitSink<Ws, Message>> {
    for k in plan.indices() {
        let due = match plan.due_ns(k) {
            Some(due) => {
                tokio::time::sleep_until(clock::instant_at(due)).await;
                Some(due)
            }
            None => {
                take_slot(window.as_deref()).await;
                None
            }
        };
        let now = clock::now_ns();
        let payload = Payload {
            intended_ns: due.unwrap_or(now),
            actual_ns: now,
            index: k,
        };
        if let Err(e) = sink
            .send(Message::text(frames::send_frame(plan.to, &payload)))
            .await
        {
            stats.error(&format!("ws send: {e}"));
            stats.senders_done.fetch_add(1, Relaxed);
            return None;
        }
        stats.sent(now);
    }
    stats.senders_done.fetch_add(1, Relaxed);
    Some(sink)
}

/// Closed loop: waits for a free slot in the window and keeps it until an answer frees it.
async fn take_slot(window: Option<&Semaphore>) {
    if let Some(w) = window {
        // The semaphore is never closed, so acquiring only fails if it were.
        if let Ok(permit) = w.acquire().await {
            permit.forget();
        }
    }
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
                free_slot(self.window);
            }
            Ok(ServerFrame::Ack(_)) => self.stats.error("ack sent to the wrong client"),
            Ok(ServerFrame::Error { code, answers_send }) => {
                self.stats.error(&code);
                if answers_send {
                    self.stats.refused.fetch_add(1, Relaxed);
                    free_slot(self.window);
                }
            }
            Ok(ServerFrame::Connected | ServerFrame::Other) => {}
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

fn free_slot(window: Option<&Semaphore>) {
    if let Some(w) = window {
        w.add_permits(1);
    }
}

/// Waits until every sender is done and every sent message is settled. Gives up when the
/// counters stood still for `timeout` while sending, or `timeout` after the last send.
/// Prints progress every second; returns whether it gave up.
async fn wait_for_end(stats: &Stats, clients: usize, timeout: Duration) -> bool {
    let started = Instant::now();
    let mut next_progress = Duration::from_secs(1);
    let (mut last, mut moved) = (stats.activity(), Instant::now());
    let mut sends_done: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let all_sent = stats.senders_done.load(Relaxed) == clients as u64;
        if all_sent && stats.settled() {
            return false;
        }
        if all_sent {
            let done = *sends_done.get_or_insert_with(Instant::now);
            if done.elapsed() >= timeout {
                return true;
            }
        }
        let now = stats.activity();
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() >= timeout {
            return true;
        }
        if started.elapsed() >= next_progress {
            eprintln!("{}", stats.progress(started.elapsed()));
            next_progress += Duration::from_secs(1);
        }
    }
}

/// Stops senders that are still sending and closes the sockets of the others with a close
/// frame, all within a bound.
async fn close_all(senders: Vec<Sender>) {
    senders
        .iter()
        .filter(|s| !s.is_finished())
        .for_each(JoinHandle::abort);
    let closing = async {
        let mut closes = Vec::new();
        for s in senders {
            if let Ok(Some(mut sink)) = s.await {
                closes.push(tokio::spawn(async move { sink.close().await }));
            }
        }
        for c in closes {
            let _ = c.await;
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}
