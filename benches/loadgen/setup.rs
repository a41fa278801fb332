//! Setting a run up: users and connected sockets.
//!
//! Users are registered through the uni-app face (`POST /api/regChat`, form fields
//! `username`/`password`) with a run-unique name prefix, a bounded number of requests at
//! once (argon2 makes registration the slow part). New users accept messages from friends
//! only by default, so each user then opens its inbox to other users
//! (`POST /api/chat/userset`, `chatset.user = 2`) rather than the run adding friendships.
//! For a group, the owner makes every other user a friend at once (chat-room face,
//! `POST /contacts/add`), creates the group from them (`POST /api/chat/group/create`,
//! `userIds` as a JSON array) and finds its id in its group list
//! (`GET /api/chat/grouplist/1`).
//! Each user then opens `GET /ws?token=` and
//! the socket counts as ready only once the server's `connected` frame arrived, i.e. once the
//! Router knows the session and messages to it will be pushed rather than queued. Sockets
//! can be spread over several local source addresses (`--source-ips`), each of which has
//! its own range of ephemeral ports towards the server.
//!
//! Long steps print a progress line every few seconds on stderr.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frames::{self, ServerFrame};

/// A WebSocket to the server.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one socket may take to be upgraded and greeted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long creating a group (one request naming every member) may take.
const CREATE_GROUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a long step reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Counts the finished items of a long set-up step and prints `label: done/total` on stderr
/// at most every [`PROGRESS_EVERY`].
pub struct Progress {
    label: &'static str,
    total: usize,
    done: AtomicUsize,
    started: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Self {
        Progress {
            label,
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
            last: Mutex::new(Instant::now()),
        }
    }

    /// One more item done.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= PROGRESS_EVERY {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "  {}: {done}/{} ({:.0}/s)",
                self.label,
                self.total,
                done as f64 / secs.max(1e-9)
            );
        }
    }
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub username: String,
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

/// The password of every user a run registers.
pub const PASSWORD: &str = "secret1";

/// A username prefix no earlier run used: `lg` and six random hex digits.
pub fn run_prefix() -> String {
    format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Registers `n` users named `<prefix>_<i>`, `concurrency` requests at once, in index order.
pub async fn register(base: &str, prefix: &str, n: usize, concurrency: usize) -> Result<Vec<User>, String> {
    let http = http_client()?;
    let url = format!("{}/api/regChat", base.trim_end_matches('/'));
    let progress = Progress::new("registered", n);
    futures_util::stream::iter(0..n)
        .map(|i| register_one(&http, &url, format!("{prefix}_{i}")))
        .buffered(concurrency.max(1))
        .inspect_ok(|_| progress.tick())
        .try_collect()
        .await
}

async fn register_one(http: &reqwest::Client, url: &str, username: String) -> Result<User, String> {
    let form = [("username", username.as_str()), ("password", PASSWORD)];
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
    crate::cleanup::record(reply.data.id);
    Ok(User {
        id: reply.data.id,
        username,
        token: reply.data.token,
    })
}

/// The settings that let anyone (but visitors) message a user without being a friend.
const OPEN_USERSET: &str = r#"{"chatset":{"visitor":0,"user":2}}"#;

/// Lets every user receive messages from non-friends, `concurrency` requests at once.
pub async fn open_inboxes(base: &str, users: &[User], concurrency: usize) -> Result<(), String> {
    let http = http_client()?;
    let url = format!("{}/api/chat/userset", base.trim_end_matches('/'));
    let progress = Progress::new("inboxes opened", users.len());
    futures_util::stream::iter(users)
        .map(|u| open_inbox(&http, &url, u))
        .buffer_unordered(concurrency.max(1))
        .inspect_ok(|_| progress.tick())
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

/// Makes `owner` a friend of every one of `others` at once (chat-room face
/// `POST /contacts/add`, no approval), `concurrency` requests at once.
pub async fn befriend_all(
    base: &str,
    owner: &User,
    others: &[User],
    concurrency: usize,
) -> Result<(), String> {
    let http = http_client()?;
    let url = format!("{}/contacts/add", base.trim_end_matches('/'));
    let progress = Progress::new("friends made", others.len());
    futures_util::stream::iter(others)
        .map(|u| befriend(&http, &url, owner, u.id))
        .buffer_unordered(concurrency.max(1))
        .inspect_ok(|_| progress.tick())
        .try_collect()
        .await
}

async fn befriend(http: &reqwest::Client, url: &str, owner: &User, id: u64) -> Result<(), String> {
    let what = format!("add user {id} to the contacts of user {}", owner.id);
    let req = http
        .post(url)
        .header("token", &owner.token)
        .json(&json!({ "id": id }));
    let body = send_checked(req, &what).await?;
    // The chat-room face answers `{"success": bool, "message": ...}`.
    if body.get("success") == Some(&Value::Bool(false)) {
        return Err(format!("{what}: refused: {body}"));
    }
    Ok(())
}

/// Creates a group owned by `owner` with the users `members` (the owner's friends) and
/// returns its id, which it finds in the owner's group list (a fresh owner has one group).
pub async fn create_group(base: &str, owner: &User, members: &[u64]) -> Result<u64, String> {
    let http = http_client()?;
    let base = base.trim_end_matches('/');
    let req = http
        .post(format!("{base}/api/chat/group/create"))
        .header("token", &owner.token)
        .timeout(CREATE_GROUP_TIMEOUT)
        .json(&json!({ "userIds": members }));
    send_checked(req, "create the group").await?;
    let req = http
        .get(format!("{base}/api/chat/grouplist/1"))
        .header("token", &owner.token);
    let list = send_checked(req, "list the owner's groups").await?;
    let ids: Vec<u64> = list["data"]
        .as_array()
        .map(|groups| groups.iter().filter_map(|g| g["id"].as_u64()).collect())
        .unwrap_or_default();
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => Err(format!(
            "expected the owner to have exactly one group, got {list}"
        )),
    }
}

/// Sends a request and returns its JSON answer; a non-2xx status is an error naming `what`.
async fn send_checked(req: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
    let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{what}: HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{what}: unexpected reply {body}: {e}"))
}

/// The HTTP client of the set-up requests.
pub fn http_client() -> Result<reqwest::Client, String> {
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

/// Opens WebSockets to one server, from the given local source addresses in turn.
pub struct Connector {
    url: String,
    /// The server's address, when sockets are bound to `sources` (plain `ws://` only).
    server: Option<SocketAddr>,
    sources: Vec<IpAddr>,
    next: AtomicUsize,
    /// `SO_RCVBUF` of each socket, set before it connects (a client that reads slowly).
    recv_buffer: Option<u32>,
}

impl Connector {
    /// A connector to the server at `base`; with `sources`, each socket is bound to the next
    /// one of them before it connects.
    pub fn new(base: &str, sources: &[IpAddr]) -> Result<Self, String> {
        let url = ws_url(base);
        let server = if sources.is_empty() {
            None
        } else {
            let addr = server_addr(&url, |a| sources.iter().all(|s| s.is_ipv4() == a.is_ipv4()))?;
            Some(addr.ok_or_else(|| format!("{base} has no address of the family of --source-ips"))?)
        };
        Ok(Connector {
            url,
            server,
            sources: sources.to_vec(),
            next: AtomicUsize::new(0),
            recv_buffer: None,
        })
    }

    /// The same connector, its sockets made with a receive buffer of `bytes` (the kernel's
    /// minimum applies): a client on a slow link, whose unread frames back up into the
    /// server's buffers soon rather than into megabytes of loopback socket buffers.
    pub fn with_recv_buffer(mut self, bytes: u32) -> Result<Self, String> {
        if self.server.is_none() {
            let addr = server_addr(&self.url, |_| true)?;
            self.server = Some(addr.ok_or_else(|| format!("{} has no address", self.url))?);
        }
        self.recv_buffer = Some(bytes);
        Ok(self)
    }

    /// Opens one socket for the user with `token` and waits for its `connected` frame.
    pub async fn connect(&self, token: &str) -> Result<Ws, String> {
        let handshake = async {
            let mut ws = self.open(token).await?;
            wait_connected(&mut ws).await?;
            Ok(ws)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("websocket connect: no `connected` frame within {CONNECT_TIMEOUT:?}"))?
    }

    /// Opens one socket for the user with `token`; the caller reads every frame, the first
    /// `connected` included.
    pub async fn open(&self, token: &str) -> Result<Ws, String> {
        let url = format!("{}?token={token}", self.url);
        let ws = match self.server {
            None => {
                // Nagle off: the messages are small and latency is what is measured.
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
                    .await
                    .map_err(|e| format!("websocket connect: {e}"))?
                    .0
            }
            Some(server) => {
                let source = match self.sources.len() {
                    0 => None,
                    n => Some(self.sources[self.next.fetch_add(1, Relaxed) % n]),
                };
                let tcp = bound_tcp(source, server, self.recv_buffer).await?;
                tokio_tungstenite::client_async_with_config(
                    url.as_str(),
                    MaybeTlsStream::Plain(tcp),
                    Some(ws_config()),
                )
                .await
                .map_err(|e| format!("websocket handshake: {e}"))?
                .0
            }
        };
        Ok(ws)
    }
}

/// Socket buffers of a client that reads small frames: far below tungstenite's 128 KiB
/// defaults, which add up with ten thousand sockets.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// The first socket address of a plain `ws://` URL's host that `family` accepts.
fn server_addr(url: &str, family: impl Fn(&SocketAddr) -> bool) -> Result<Option<SocketAddr>, String> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("binding sockets needs a plain http:// --url, got {url}"))?;
    Ok(std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .find(family))
}

/// A TCP connection to `server`, from `source` (any port) when given, with a receive buffer
/// of `recv_buffer` bytes when given; Nagle off.
async fn bound_tcp(
    source: Option<IpAddr>,
    server: SocketAddr,
    recv_buffer: Option<u32>,
) -> Result<TcpStream, String> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| format!("bind to {source}: {e}"))?;
    }
    if let Some(bytes) = recv_buffer {
        socket
            .set_recv_buffer_size(bytes)
            .map_err(|e| format!("receive buffer of {bytes} bytes: {e}"))?;
    }
    let tcp = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect to {server}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    Ok(tcp)
}

/// Opens one socket per user, `concurrency` handshakes at once, each greeted by `connected`.
pub async fn connect_all(
    connector: &Connector,
    users: &[User],
    concurrency: usize,
) -> Result<Vec<Ws>, String> {
    let progress = Progress::new("connected", users.len());
    futures_util::stream::iter(users)
        .map(|u| connector.connect(&u.token))
        .buffered(concurrency.max(1))
        .inspect_ok(|_| progress.tick())
        .try_collect()
        .await
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
