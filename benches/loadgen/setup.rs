//! Setting a run up: users and connected sockets.
//!
//! Users are registered through the uni-app face (`POST /api/regChat`, form fields
//! `username`/`password`) with a run-unique name prefix, a bounded number of requests at
//! once (argon2 makes registration the slow part). New users accept messages from friends
//! only by default, so each user then opens its inbox to other users
//! (`POST /api/chat/userset`, `chatset.user = 2`) rather than the run adding friendships.
//! Each user then opens `GET /ws?token=` and
//! the socket counts as ready only once the server's `connected` frame arrived, i.e. once the
//! Router knows the session and messages to it will be pushed rather than queued.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frames::{self, ServerFrame};

/// A WebSocket to the server.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one socket may take to be upgraded and greeted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub token: String,
}

#[derive(Deserialize)]
struct RegReply {
    data: RegData,
}

#[derive(Deserialize)]
struct RegData {
    id: u64,
    token: String,
}

/// A username prefix no earlier run used: `lg` and six random hex digits.
pub fn run_prefix() -> String {
    format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Registers `n` users named `<prefix>_<i>`, `concurrency` requests at once, in index order.
pub async fn register(base: &str, prefix: &str, n: usize, concurrency: usize) -> Result<Vec<User>, String> {
    let http = http_client()?;
    let url = format!("{}/api/regChat", base.trim_end_matches('/'));
    futures_util::stream::iter(0..n)
        .map(|i| register_one(&http, &url, format!("{prefix}_{i}")))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

async fn register_one(http: &reqwest::Client, url: &str, username: String) -> Result<User, String> {
    let form = [("username", username.as_str()), ("password", "secret1")];
    let resp = http
        .post(url)
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("register {username}: {e}"))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("register {username}: {e}"))?;
    if !status.is_success() {
        return Err(format!("register {username}: HTTP {status}: {body}"));
    }
    let reply: RegReply = serde_json::from_str(&body)
        .map_err(|e| format!("register {username}: unexpected reply {body}: {e}"))?;
    Ok(User {
        id: reply.data.id,
        token: reply.data.token,
    })
}

/// The settings that let anyone (but visitors) message a user without being a friend.
const OPEN_USERSET: &str = r#"{"chatset":{"visitor":0,"user":2}}"#;

/// Lets every user receive messages from non-friends, `concurrency` requests at once.
pub async fn open_inboxes(base: &str, users: &[User], concurrency: usize) -> Result<(), String> {
    let http = http_client()?;
    let url = format!("{}/api/chat/userset", base.trim_end_matches('/'));
    futures_util::stream::iter(users)
        .map(|u| open_inbox(&http, &url, u))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

async fn open_inbox(http: &reqwest::Client, url: &str, user: &User) -> Result<(), String> {
    let resp = http
        .post(url)
        .header("token", &user.token)
        .form(&[("userset", OPEN_USERSET)])
        .send()
        .await
        .map_err(|e| format!("userset of user {}: {e}", user.id))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(format!("userset of user {}: HTTP {status}: {body}", user.id))
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// The WebSocket address for `base` (`http://host:port` → `ws://host:port/ws`).
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{rest}/ws")
}

/// Opens one socket per user, `concurrency` handshakes at once, each greeted by `connected`.
pub async fn connect_all(base: &str, users: &[User], concurrency: usize) -> Result<Vec<Ws>, String> {
    let url = ws_url(base);
    futures_util::stream::iter(users)
        .map(|u| connect_one(format!("{url}?token={}", u.token)))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

async fn connect_one(url: String) -> Result<Ws, String> {
    let handshake = async {
        // Nagle off: the messages are small and latency is what is measured.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .map_err(|e| format!("websocket connect: {e}"))?;
        wait_connected(&mut ws).await?;
        Ok(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("websocket connect: no `connected` frame within {CONNECT_TIMEOUT:?}"))?
}

async fn wait_connected(ws: &mut Ws) -> Result<(), String> {
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| format!("websocket read: {e}"))? {
            Message::Text(t) => match frames::parse(t.as_str()) {
                Ok(ServerFrame::Connected) => return Ok(()),
                Ok(ServerFrame::Error { code, .. }) => {
                    return Err(format!("server refused the socket: {code}"))
                }
                _ => {}
            },
            Message::Close(c) => return Err(format!("server closed the socket: {c:?}")),
            _ => {}
        }
    }
    Err("socket ended before `connected`".into())
}
