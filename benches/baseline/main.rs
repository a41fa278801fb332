//! `baseline`: the bare WebSocket fan-out of this machine, to measure Parlor against.
//!
//! A broadcast server with nothing but the sockets: no authentication, no storage, no
//! parsing. Every text frame a client sends is forwarded, as the same shared bytes (one
//! `Utf8Bytes` per message, cloned by reference count), to every other connected client, and
//! the sender gets a small ack frame (`{"type":"ack"}`) once the message was queued to all
//! of them, so a generator can run the same closed loop against it as against Parlor.
//!
//! Each client has one bounded queue (`--queue` frames, as Parlor's `ws.mailbox`) drained by
//! its writer task, which writes whatever is queued and flushes once. A client whose queue
//! is full is dropped: its queue is closed, its writer sends a close frame and ends. A new
//! client is greeted with `{"type":"connected"}` once it is in the broadcast set, so a
//! client that saw the greeting gets every frame sent after it; the path and query of the
//! upgrade request are ignored (`/ws?token=...` works as well as `/`).
//!
//! `baseline --bind 127.0.0.1:0` binds, prints `baseline listening on <address>` on stdout
//! and serves until it is killed.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The greeting of a client that joined the broadcast set.
const CONNECTED: &str = r#"{"type":"connected"}"#;

/// The answer to each frame a client sends, once it was queued to every other client.
const ACK: &str = r#"{"type":"ack"}"#;

/// Most frames a writer takes off its queue before it flushes the socket.
const WRITE_BATCH: usize = 64;

/// A bare broadcast WebSocket server: every text frame is forwarded to all other clients.
#[derive(Debug, Parser)]
#[command(name = "baseline", version)]
struct Cli {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7400")]
    bind: SocketAddr,
    /// Frames queued for one client before it is dropped as too slow.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
}

/// The connected clients' queues by client number.
type Clients = Arc<RwLock<HashMap<u64, mpsc::Sender<Message>>>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.queue == 0 {
        eprintln!("baseline: --queue must be at least 1");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baseline: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> Result<(), String> {
    let listener = TcpListener::bind(cli.bind)
        .await
        .map_err(|e| format!("bind {}: {e}", cli.bind))?;
    let addr = listener.local_addr().map_err(|e| format!("local address: {e}"))?;
    println!("baseline listening on {addr}");
    let _ = std::io::stdout().flush();
    let clients: Clients = Arc::default();
    let next_id = AtomicU64::new(0);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: the clients already in are served on.
                eprintln!("baseline: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Relaxed);
        tokio::spawn(client(id, tcp, clients.clone(), cli.queue));
    }
}

/// One client from the upgrade to the end of its socket.
async fn client(id: u64, tcp: TcpStream, clients: Clients, queue: usize) {
    let _ = tcp.set_nodelay(true);
    let ws = match tokio_tungstenite::accept_async(tcp).await {
        Ok(ws) => ws,
        Err(e) => return eprintln!("baseline: handshake: {e}"),
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(queue);
    {
        // Greeted under the write lock: no broadcast can slip in before the greeting.
        let mut all = clients.write().unwrap_or_else(|p| p.into_inner());
        let _ = tx.try_send(Message::Text(Utf8Bytes::from_static(CONNECTED)));
        all.insert(id, tx);
    }
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        // Dropped (queue full) or gone: say goodbye if the socket still takes it.
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => broadcast(id, msg, &clients),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    clients.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    let _ = writer.await;
}

/// Queues `msg` to every client but `from`, then the ack to `from`; drops the clients whose
/// queue is full.
fn broadcast(from: u64, msg: Message, clients: &Clients) {
    let mut full = Vec::new();
    {
        let all = clients.read().unwrap_or_else(|p| p.into_inner());
        for (&id, tx) in all.iter() {
            if id != from && tx.try_send(msg.clone()).is_err() {
                full.push(id);
            }
        }
        if let Some(tx) = all.get(&from) {
            if tx.try_send(Message::Text(Utf8Bytes::from_static(ACK))).is_err() {
                full.push(from);
            }
        }
    }
    if !full.is_empty() {
        let mut all = clients.write().unwrap_or_else(|p| p.into_inner());
        for id in full {
            if all.remove(&id).is_some() {
                eprintln!("baseline: dropped client {id}: its queue of frames is full");
            }
        }
    }
}
