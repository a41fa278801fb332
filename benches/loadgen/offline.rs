//! `offline`: the catch-up of a user who was away.
//!
//! For each of `--repeat` rounds, a fresh pair of users: the sender connects and sends
//! `--messages` direct messages to the receiver, who has no session, and waits for every
//! `ack` (so each message is durable and pending for the receiver); the sender leaves. Then
//! the clock starts: the receiver logs in (`POST /api/loginChat`), opens its WebSocket and
//! reads until every message has arrived. The figures are the times from the start of the
//! login to the login's answer, to the first message and to the last one. Every message is
//! checked off a bitset (lost, duplicated) and the pushed `seq`s must increase.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::frames::{self, Payload, ServerFrame};
use crate::setup::{self, Connector, User, Ws};
use crate::stats::latency_table;
use crate::Common;

/// Options of the `offline` mode.
#[derive(Debug, Args)]
pub struct OfflineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages waiting for the receiver in each round.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Rounds, each with a fresh pair of users.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Sends the sender keeps unacknowledged while filling the queue.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
}

/// One round's findings.
#[derive(Debug, Default)]
struct Round {
    login_us: u64,
    first_us: u64,
    last_us: u64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    error: Option<String>,
}

/// Runs the mode; `Ok(false)` when a message was lost, duplicated or a round failed.
pub async fn run(args: &OfflineArgs) -> Result<bool, String> {
    if args.messages == 0 || args.repeat == 0 || args.window == 0 {
        return Err("--messages, --repeat and --window must be at least 1".into());
    }
    let common = &args.common;
    let prefix = setup::run_prefix();
    let users = setup::register(&common.url, &prefix, 2 * args.repeat, common.setup_concurrency).await?;
    setup::open_inboxes(&common.url, &users, common.setup_concurrency).await?;
    let connector = Connector::new(&common.url, &common.source_ips)?;
    let http = setup::http_client()?;
    let timeout = Duration::from_secs(common.timeout);

    let mut rounds = Vec::with_capacity(args.repeat);
    for pair in users.chunks(2) {
        let (sender, receiver) = (&pair[0], &pair[1]);
        fill(&connector, sender, receiver.id, args, timeout).await?;
        let round = catch_up(&connector, &http, &common.url, receiver, args.messages, timeout).await;
        eprintln!(
            "  round {}: {} of {} in {:.3} ms",
            rounds.len() + 1,
            round.received,
            args.messages,
            round.last_us as f64 / 1e3
        );
        rounds.push(round);
    }
    Ok(report(args, &rounds))
}

/// The sender queues `messages` for `to` and waits for every ack.
async fn fill(
    connector: &Connector,
    sender: &User,
    to: u64,
    args: &OfflineArgs,
    timeout: Duration,
) -> Result<(), String> {
    let mut ws = connector.connect(&sender.token).await?;
    let (mut sent, mut acked) = (0u64, 0u64);
    let deadline = tokio::time::Instant::now() + timeout;
    while acked < args.messages {
        while sent < args.messages && sent - acked < args.window as u64 {
            let now = clock::now_ns();
            let payload = Payload {
                intended_ns: now,
                actual_ns: now,
                index: sent,
            };
            ws.send(Message::text(frames::send_frame(to, &payload)))
                .await
                .map_err(|e| format!("ws send: {e}"))?;
            sent += 1;
        }
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("only {acked} of {} sends acknowledged in time", args.messages))?;
        match frame {
            Some(Ok(Message::Text(t))) => match frames::parse(t.as_str()) {
                Ok(ServerFrame::Ack(_)) => acked += 1,
                Ok(ServerFrame::Error { code, .. }) => return Err(format!("send refused: {code}")),
                _ => {}
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("ws read: {e}")),
            None => return Err("the sender's socket ended".into()),
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Logs the receiver in, connects it and reads until every queued message arrived.
async fn catch_up(
    connector: &Connector,
    http: &reqwest::Client,
    base: &str,
    receiver: &User,
    messages: u64,
    timeout: Duration,
) -> Round {
    let started = Instant::now();
    let mut round = Round::default();
    let token = match login(http, base, receiver).await {
        Ok(t) => t,
        Err(e) => {
            round.error = Some(e);
            return round;
        }
    };
    round.login_us = started.elapsed().as_micros() as u64;
    let ws = match connector.open(&token).await {
        Ok(ws) => ws,
        Err(e) => {
            round.error = Some(e);
            return round;
        }
    };
    if let Err(e) = tokio::time::timeout(timeout, read_all(ws, messages, started, &mut round)).await {
        round.error = Some(format!(
            "gave up after {e}: {} of {messages} arrived",
            round.received
        ));
    }
    round
}

async fn read_all(mut ws: Ws, messages: u64, started: Instant, round: &mut Round) {
    let mut seen = vec![false; messages as usize];
    let mut last_seq = 0;
    while round.received < messages {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                round.error = Some(format!("ws read: {e}"));
                return;
            }
            None => {
                round.error = Some("the receiver's socket ended".into());
                return;
            }
        };
        let Ok(ServerFrame::Chat { payload, seq }) = frames::parse(text.as_str()) else {
            continue;
        };
        let at = started.elapsed().as_micros() as u64;
        match seen.get_mut(payload.index as usize) {
            Some(s) if !*s => {
                *s = true;
                if round.received == 0 {
                    round.first_us = at;
                }
                round.received += 1;
                round.last_us = at;
            }
            _ => round.duplicates += 1,
        }
        if seq < last_seq {
            round.out_of_order += 1;
        }
        last_seq = last_seq.max(seq);
    }
    let _ = ws.close(None).await;
}

async fn login(http: &reqwest::Client, base: &str, user: &User) -> Result<String, String> {
    let url = format!("{}/api/loginChat", base.trim_end_matches('/'));
    let form = [
        ("username", user.username.as_str()),
        ("password", setup::PASSWORD),
    ];
    let resp = http
        .post(url)
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?;
    let body: Value = resp.json().await.map_err(|e| format!("login: {e}"))?;
    body["data"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("login refused: {body}"))
}

fn report(args: &OfflineArgs, rounds: &[Round]) -> bool {
    let hist = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    let (mut login, mut first, mut last) = (hist(), hist(), hist());
    for r in rounds.iter().filter(|r| r.error.is_none()) {
        let _ = login.record(r.login_us.max(1));
        let _ = first.record(r.first_us.max(1));
        let _ = last.record(r.last_us.max(1));
    }
    let received: u64 = rounds.iter().map(|r| r.received).sum();
    let expected = args.messages * rounds.len() as u64;
    let duplicates: u64 = rounds.iter().map(|r| r.duplicates).sum();
    let out_of_order: u64 = rounds.iter().map(|r| r.out_of_order).sum();
    println!(
        "== offline drain, {} messages, {} rounds ==",
        args.messages,
        rounds.len()
    );
    let row = |name: &str, value: String| println!("  {name:<26} {value}");
    row("messages expected", expected.to_string());
    row("received", received.to_string());
    row("lost", expected.saturating_sub(received).to_string());
    row("duplicates", duplicates.to_string());
    row("pushed out of seq order", out_of_order.to_string());
    println!(
        "{}",
        latency_table(&[
            ("login answered", &login),
            ("login -> first message", &first),
            ("login -> last message", &last),
        ])
    );
    let errors: Vec<&String> = rounds.iter().filter_map(|r| r.error.as_ref()).collect();
    for e in &errors {
        println!("  error: {e}");
    }
    let ok = errors.is_empty() && received == expected && duplicates == 0 && out_of_order == 0;
    if !ok {
        println!(
            "FAILED: lost {}, duplicates {duplicates}, out of order {out_of_order}, failed rounds {}",
            expected.saturating_sub(received),
            errors.len()
        );
    }
    ok
}
