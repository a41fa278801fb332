//! `fanout --slow K`: the last `K` members stop reading while the others are measured.
//!
//! A slow member's socket stays open but nothing reads it: the kernel's buffers fill, then
//! the server's per-session mailbox, and the server is expected to cut the session and keep
//! its messages pending. The fast members are counted as usual (their deliveries and
//! latencies are the run's table, to compare with the same run without `--slow`). After the
//! send phase each slow member's old socket is drained (what it had received before the
//! cut, and whether the server closed it), then the member reconnects with its token and
//! must receive every message it had not got: the pending ones, replayed on connect. The
//! server's resident memory before and after the send phase shows the buffering was bounded.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::frames::{self, ServerFrame};
use crate::sessions::{server_figures, ServerFigures};
use crate::setup::{self, Connector, User, Ws};

/// How long a drained socket may stay silent before it counts as read to the end.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// What one slow member got and how its session ended.
#[derive(Debug, Default)]
struct Outcome {
    before_cut: usize,
    cut: Option<String>,
    after_reconnect: usize,
    missing: u64,
    error: Option<String>,
}

/// The slow members' unread sockets and the server memory before the send phase.
pub struct Slow {
    pub users: Vec<User>,
    pub streams: Vec<SplitStream<Ws>>,
    pub before: Option<ServerFigures>,
}

/// Drains and reconnects every slow member after `sent` messages went out (none of them
/// sent any); prints the rows and returns whether every slow member got every message.
pub async fn settle(slow: Slow, base: &str, sent: u64, timeout: Duration) -> Result<bool, String> {
    let http = setup::http_client()?;
    let after = server_figures(&http, base).await;
    let connector = Connector::new(base, &[])?;
    let mut outcomes = Vec::new();
    for (user, stream) in slow.users.iter().zip(slow.streams) {
        outcomes.push(settle_one(&connector, user, stream, sent, timeout).await);
    }
    let row = |name: &str, value: String| println!("  {name:<26} {value}");
    println!("  -- slow members ({}) --", outcomes.len());
    let cut = outcomes.iter().filter(|o| o.cut.is_some()).count();
    row("cut by the server", format!("{cut} of {}", outcomes.len()));
    for (i, o) in outcomes.iter().enumerate() {
        row(
            &format!("slow member {i}"),
            format!(
                "{} before the cut ({}), {} after reconnecting, missing {}",
                o.before_cut,
                o.cut.as_deref().unwrap_or("not cut"),
                o.after_reconnect,
                o.missing
            ),
        );
        if let Some(e) = &o.error {
            row("  error", e.clone());
        }
    }
    if let (Some(b), Some(a)) = (slow.before, after) {
        row(
            "server RSS",
            format!(
                "{:.1} MiB before the send phase, {:.1} MiB after it",
                b.rss as f64 / 1048576.0,
                a.rss as f64 / 1048576.0
            ),
        );
    }
    let ok = outcomes.iter().all(|o| o.missing == 0 && o.error.is_none());
    if !ok {
        println!("FAILED: a slow member did not get every message after reconnecting");
    }
    Ok(ok)
}

async fn settle_one(
    connector: &Connector,
    user: &User,
    mut old: SplitStream<Ws>,
    sent: u64,
    timeout: Duration,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut got: HashSet<u64> = HashSet::new();
    // What reached the old socket before the server cut it (or until it goes quiet).
    loop {
        match tokio::time::timeout(DRAIN_QUIET, old.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(ServerFrame::Chat { payload, .. }) = frames::parse(t.as_str()) {
                    got.insert(payload.index);
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                outcome.cut =
                    Some(c.map_or_else(|| "closed".into(), |c| format!("close {} {}", c.code, c.reason)));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                outcome.cut = Some(format!("ended: {e}"));
                break;
            }
            Ok(None) => {
                outcome.cut = Some("ended".into());
                break;
            }
        }
    }
    drop(old);
    outcome.before_cut = got.len();
    // The rest must come on a new session.
    let catch_up = async {
        let mut ws = connector.open(&user.token).await?;
        while (got.len() as u64) < sent {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(ServerFrame::Chat { payload, .. }) = frames::parse(t.as_str()) {
                        if got.insert(payload.index) {
                            outcome.after_reconnect += 1;
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("ws read: {e}")),
                None => return Err("the new socket ended".to_owned()),
            }
        }
        Ok::<_, String>(())
    };
    match tokio::time::timeout(timeout, catch_up).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => outcome.error = Some(e),
        Err(_) => outcome.error = Some(format!("gave up after {timeout:?}")),
    }
    outcome.missing = sent.saturating_sub(got.len() as u64);
    outcome
}
