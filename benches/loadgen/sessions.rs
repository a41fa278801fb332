//! `connect` and `idle`: how fast sessions open, and what an open, idle session costs.
//!
//! Both register `--clients` users first (not timed), then open one WebSocket per user,
//! `--setup-concurrency` handshakes at once, timing each from the start of the TCP connect
//! to the server's `connected` frame: TCP handshake, HTTP upgrade, JWT check and the
//! Router's registration, which is what a client waits for before it can chat. Each socket
//! gets a reader as soon as it is up, which answers the server's pings (heartbeats stay on)
//! and reports a socket the server closes.
//!
//! - `connect` reports connects per second and the handshake latency percentiles, then
//!   closes the sockets.
//! - `idle` then holds every socket open for `--hold` seconds and reads the server's resident
//!   memory from its `/metrics` before the first socket, after the last and at the end of the
//!   hold: the difference divided by the sockets is the server's memory per idle session.
//!   It checks the server's own count of open sessions and that none was dropped.
//!
//! Past about 28,000 sockets from one source address the ephemeral ports run out: spread
//! them with `--source-ips 127.0.0.1,127.0.0.2,...` (see `benches/scenarios.sh`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::setup::{self, Connector, User};
use crate::stats::latency_table;
use crate::Common;

/// Options of the `connect` and `idle` modes.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Users, each opening one WebSocket.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Seconds to keep every socket open after the last one connected [connect: 0, idle: 30].
    #[arg(long)]
    pub hold: Option<u64>,
}

/// The server's own figures, read from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerFigures {
    pub rss: u64,
    pub sessions: u64,
}

/// What the readers of all sockets share.
#[derive(Default)]
struct Watch {
    closed: AtomicU64,
    reasons: Mutex<Vec<String>>,
}

/// Runs `connect` (`idle` false) or `idle`; `Ok(false)` when a socket failed or dropped.
pub async fn run(args: &SessionsArgs, idle: bool) -> Result<bool, String> {
    let n = args.clients;
    if n == 0 {
        return Err("--clients must be at least 1".into());
    }
    let hold = Duration::from_secs(args.hold.unwrap_or(if idle { 30 } else { 0 }));
    let common = &args.common;
    let t = Instant::now();
    let prefix = setup::run_prefix();
    let users = setup::register(&common.url, &prefix, n, common.setup_concurrency).await?;
    eprintln!("registered {n} users ({prefix}_*) in {:.1?}", t.elapsed());

    let http = setup::http_client()?;
    let before = server_figures(&http, &common.url).await;
    let connector = Arc::new(Connector::new(&common.url, &common.source_ips)?);
    let watch = Arc::new(Watch::default());
    let started = Instant::now();
    let (handshakes, readers, failures) = ramp(&connector, &users, common.setup_concurrency, &watch).await;
    let ramp_time = started.elapsed();
    let connected = readers.len();
    let after_ramp = server_figures(&http, &common.url).await;
    // The server's CPU time over the hold alone: what idle sessions cost it.
    let cpu = crate::machine::ServerCpu::start(&common.url, &common.server_pids);
    let held = Instant::now();
    if !hold.is_zero() && connected > 0 {
        eprintln!("holding {connected} sockets for {hold:?}");
        tokio::time::sleep(hold).await;
    }
    let hold_cpu = cpu
        .and_then(|c| c.used())
        .map(|s| (s, held.elapsed().as_secs_f64()));
    let after_hold = server_figures(&http, &common.url).await;
    let dropped = watch.closed.load(Relaxed);
    readers.iter().for_each(JoinHandle::abort);

    let mode = if idle { "idle" } else { "connect" };
    println!("== {mode}, {n} clients ==");
    let row = |name: &str, value: String| println!("  {name:<26} {value}");
    row("connected", format!("{connected} of {n}"));
    row("failed to connect", failures.len().to_string());
    row("ramp", format!("{:.3} s", ramp_time.as_secs_f64()));
    row(
        "connects/s",
        format!("{:.0}", connected as f64 / ramp_time.as_secs_f64().max(1e-9)),
    );
    println!(
        "{}",
        latency_table(&[("handshake + JWT -> connected", &handshakes)])
    );
    if !hold.is_zero() {
        row("held for", format!("{hold:?}, heartbeats on"));
        row("server CPU while held", idle_cpu(hold_cpu, connected));
    }
    row("dropped by the server", dropped.to_string());
    let (before, after_ramp, after_hold) = match (before, after_ramp, after_hold) {
        (Some(b), Some(r), Some(h)) => (b, r, h),
        _ => {
            row(
                "server memory",
                "unknown (no /metrics with process_resident_memory_bytes)".into(),
            );
            return Ok(verdict(&failures, &watch, dropped, None, connected));
        }
    };
    row(
        "server sessions open",
        format!(
            "{} before, {} after the ramp, {} at the end",
            before.sessions, after_ramp.sessions, after_hold.sessions
        ),
    );
    let per = |after: ServerFigures| after.rss.saturating_sub(before.rss) as f64 / connected.max(1) as f64;
    row(
        "server RSS",
        format!(
            "{:.1} MiB before, {:.1} MiB after the ramp, {:.1} MiB at the end",
            mib(before.rss),
            mib(after_ramp.rss),
            mib(after_hold.rss)
        ),
    );
    row(
        "server RSS per session",
        format!(
            "{:.0} bytes after the ramp, {:.0} bytes at the end",
            per(after_ramp),
            per(after_hold)
        ),
    );
    let sessions_seen = after_ramp.sessions.saturating_sub(before.sessions);
    Ok(verdict(
        &failures,
        &watch,
        dropped,
        Some(sessions_seen),
        connected,
    ))
}

/// The server's CPU over the hold, `(cpu seconds, wall seconds)`, as a share of one core and
/// per session.
fn idle_cpu(used: Option<(f64, f64)>, sessions: usize) -> String {
    match used {
        Some((cpu, wall)) if wall > 0.0 => {
            let share = cpu / wall;
            format!(
                "{cpu:.2} s in {wall:.1} s: {:.2} % of a core, {:.2} µs per session per second",
                share * 100.0,
                share * 1e6 / sessions.max(1) as f64
            )
        }
        _ => "unknown (the server is not on this machine)".into(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn verdict(
    failures: &[String],
    watch: &Watch,
    dropped: u64,
    sessions_seen: Option<u64>,
    connected: usize,
) -> bool {
    for f in failures.iter().take(5) {
        println!("  error: {f}");
    }
    for r in watch
        .reasons
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .take(5)
    {
        println!("  dropped: {r}");
    }
    let mut ok = failures.is_empty() && dropped == 0;
    if let Some(seen) = sessions_seen {
        if seen != connected as u64 {
            println!("  the server counted {seen} new sessions for {connected} sockets");
            ok = false;
        }
    }
    if !ok {
        println!(
            "FAILED: {} sockets did not connect, {dropped} were dropped",
            failures.len()
        );
    }
    ok
}

/// Opens every socket, `concurrency` at once; each gets its reader as soon as it is up.
async fn ramp(
    connector: &Arc<Connector>,
    users: &[User],
    concurrency: usize,
    watch: &Arc<Watch>,
) -> (Histogram<u64>, Vec<JoinHandle<()>>, Vec<String>) {
    let progress = setup::Progress::new("connected", users.len());
    let mut handshakes = Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    let mut readers = Vec::with_capacity(users.len());
    let mut failures = Vec::new();
    let mut opened = futures_util::stream::iter(users)
        .map(|u| {
            let connector = connector.clone();
            let token = u.token.clone();
            async move {
                let t = Instant::now();
                let ws = connector.connect(&token).await;
                (ws, t.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((ws, took)) = opened.next().await {
        match ws {
            Ok(ws) => {
                let _ = handshakes.record((took.as_micros() as u64).max(1));
                readers.push(tokio::spawn(read(ws, watch.clone())));
                progress.tick();
            }
            Err(e) => failures.push(e),
        }
    }
    (handshakes, readers, failures)
}

/// Reads (and so answers pings) until the socket ends; an end is a drop.
async fn read(mut ws: setup::Ws, watch: Arc<Watch>) {
    let why = loop {
        match ws.next().await {
            Some(Ok(Message::Close(c))) => break format!("closed by the server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("read error: {e}"),
            None => break "socket ended".to_owned(),
        }
    };
    watch.closed.fetch_add(1, Relaxed);
    watch.reasons.lock().unwrap_or_else(|p| p.into_inner()).push(why);
}

/// The server's resident memory and open sessions from `/metrics`, when it serves them.
pub async fn server_figures(http: &reqwest::Client, base: &str) -> Option<ServerFigures> {
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some(ServerFigures {
        rss: value("process_resident_memory_bytes")? as u64,
        sessions: value("parlor_sessions_open")? as u64,
    })
}
