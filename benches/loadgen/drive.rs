//! The parts of a run every mode shares: the send loop of one sending client, waiting for
//! the end, and closing the sockets.
//!
//! - Closed loop (no `--rate`): a sender takes a slot of its window before each send; the
//!   mode decides what frees a slot (an ack in `direct`, the last delivery in `fanout`).
//! - Open loop (`--rate R`): message `k` is due at `start + k / R`; the clock thread of
//!   [`crate::schedule`] hands each index to its sender when it is due (not tokio's 1 ms timer)
//!   and releases a backlog at once when it is late. Latency counts from the due time, so a stall of the server or the generator
//!   shows up in the figures instead of being hidden (no coordinated omission). No window.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::frames::{self, Payload};
use crate::schedule;
use crate::setup::Ws;
use crate::stats::Stats;

/// Delay between setting the open-loop grid and its first due time, so that spawning the
/// sender tasks does not count as lateness.
pub const GRID_LEAD: Duration = Duration::from_millis(50);

/// How long closing the sockets at the end may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending half of a socket.
pub type Sink = SplitSink<Ws, Message>;

/// A sender task; it gives its half of the socket back for closing, unless it broke.
pub type Sender<O = Sink> = JoinHandle<Option<O>>;

/// Where a sender writes its messages: the sending half of a WebSocket, or the client of
/// another protocol (see `fanout --target`).
pub trait Outlet: Send + 'static {
    /// Writes message `payload` of `plan`; `Err` says what failed.
    fn put(&mut self, plan: &Plan, payload: &Payload) -> impl Future<Output = Result<(), String>> + Send;
    /// Ends the connection politely.
    fn end(self) -> impl Future<Output = ()> + Send;
}

impl Outlet for Sink {
    async fn put(&mut self, plan: &Plan, payload: &Payload) -> Result<(), String> {
        self.send(Message::text(plan.frame(payload)))
            .await
            .map_err(|e| format!("ws send: {e}"))
    }

    async fn end(mut self) {
        let _ = self.close().await;
    }
}

/// Where a sender's messages go.
#[derive(Clone, Copy)]
pub enum Target {
    /// A direct message to this user id.
    User(u64),
    /// A message to this group id.
    Group(u64),
}

/// What one sender sends: indices `sender, sender + senders, …` below `messages`.
#[derive(Clone, Copy)]
pub struct Plan {
    pub sender: usize,
    pub senders: usize,
    pub messages: u64,
    pub to: Target,
    pub rate: Option<f64>,
    pub start_ns: u64,
}

impl Plan {
    fn indices(&self) -> impl Iterator<Item = u64> {
        (self.sender as u64..self.messages).step_by(self.senders)
    }

    /// Open loop: when message `k` is due on the shared clock.
    fn due_ns(&self, k: u64) -> Option<u64> {
        self.rate.map(|r| self.start_ns + (k as f64 * 1e9 / r) as u64)
    }

    /// The `send` frame that carries `payload` to this plan's target.
    pub fn frame(&self, payload: &Payload) -> String {
        match self.to {
            Target::User(id) => frames::send_frame(id, payload),
            Target::Group(id) => frames::group_send_frame(id, payload),
        }
    }
}

/// Checks the options every mode shares.
pub fn validate(messages: u64, rate: Option<f64>, window: usize) -> Result<(), String> {
    if messages == 0 {
        return Err("--messages must be at least 1".into());
    }
    if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of messages per second".into());
    }
    if window == 0 {
        return Err("--window must be at least 1".into());
    }
    Ok(())
}

/// The start of the send phase on the shared clock: now for a closed loop, a little later
/// for an open loop (see [`GRID_LEAD`]).
pub fn start_ns(rate: Option<f64>) -> u64 {
    let lead = if rate.is_some() { GRID_LEAD } else { Duration::ZERO };
    clock::now_ns() + lead.as_nanos() as u64
}

/// One sender's messages; returns its half of the socket for closing, unless it broke.
pub async fn send<O: Outlet>(
    plan: Plan,
    mut sink: O,
    stats: Arc<Stats>,
    window: Option<&Semaphore>,
) -> Option<O> {
    let mut due_indices = plan.rate.map(|rate| {
        let (first, step) = (plan.sender as u64, plan.senders as u64);
        schedule::register(first, step, plan.messages, plan.start_ns, rate)
    });
    let mut closed_loop = plan.indices();
    loop {
        let (k, due) = match &mut due_indices {
            Some(rx) => match rx.recv().await {
                Some(k) => (k, plan.due_ns(k)),
                None => break,
            },
            None => match closed_loop.next() {
                Some(k) => {
                    take_slot(window).await;
                    (k, None)
                }
                None => break,
            },
        };
        let now = clock::now_ns();
        let payload = Payload {
            intended_ns: due.unwrap_or(now),
            actual_ns: now,
            index: k,
        };
        if let Err(e) = sink.put(&plan, &payload).await {
            stats.error(&e);
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

/// Closed loop: gives a slot back to the window.
pub fn free_slot(window: Option<&Semaphore>) {
    if let Some(w) = window {
        w.add_permits(1);
    }
}

/// Waits until all `senders` are done and every sent message is settled. Gives up when the
/// counters stood still for `timeout` while sending, or `timeout` after the last send.
/// Shows a progress bar of the deliveries on a terminal, else a progress line every second
/// on stderr; returns whether it gave up.
pub async fn wait_for_end(stats: &Stats, senders: usize, timeout: Duration) -> bool {
    let started = Instant::now();
    let bar = progress_bar(stats.expected());
    let mut next_progress = Duration::from_secs(1);
    let (mut last, mut moved) = (stats.activity(), Instant::now());
    let mut sends_done: Option<Instant> = None;
    let gave_up = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let all_sent = stats.senders_done.load(Relaxed) == senders as u64;
        if all_sent && stats.settled() {
            break false;
        }
        if all_sent {
            let done = *sends_done.get_or_insert_with(Instant::now);
            if done.elapsed() >= timeout {
                break true;
            }
        }
        let now = stats.activity();
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() >= timeout {
            break true;
        }
        bar.set_position(stats.delivered.load(Relaxed));
        if started.elapsed() >= next_progress {
            let line = stats.progress(started.elapsed());
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.set_message(line);
            }
            next_progress += Duration::from_secs(1);
        }
    };
    bar.finish_and_clear();
    gave_up
}

/// A bar of `total` deliveries on stderr; hidden (drawing nothing) when stderr is no terminal.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30} {percent:>3}% {pos}/{len} deliveries, {per_sec}, eta {eta}\n{msg}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Stops senders that are still sending and closes the sockets of the others, and the
/// `idle` sockets that never sent, with a close frame, all within a bound.
pub async fn close_all<O: Outlet>(senders: Vec<Sender<O>>, idle: Vec<O>) {
    senders
        .iter()
        .filter(|s| !s.is_finished())
        .for_each(JoinHandle::abort);
    let closing = async {
        let mut sinks = idle;
        for s in senders {
            if let Ok(Some(sink)) = s.await {
                sinks.push(sink);
            }
        }
        let closes: Vec<_> = sinks.into_iter().map(|sink| tokio::spawn(sink.end())).collect();
        for c in closes {
            let _ = c.await;
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}
