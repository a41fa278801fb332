//! The client listener of a node: any request for any tenant, on any node (`CLUSTER.md`
//! §4.8). The edge reads a request's head, finds its tenant as the handlers do (the token's
//! `app_id`, else the `X-App-Id` header, else an `app_id` field of the query or of a small
//! JSON or form body, else `default`), and tunnels the connection to the node that serves
//! the tenant's shard: the head it read (with the client's address in `X-Forwarded-For`),
//! then the bytes both ways. A WebSocket stays tunnelled for its life, so its frames keep
//! TCP's backpressure end to end and the owner's slow-consumer cut works unchanged; any
//! other request is sent with `Connection: close`, one request per connection, so that the
//! next request of a client is routed by its own tenant. While a shard has no owner or its
//! owner does not answer (a takeover, a hand-over), the request waits, up to
//! `cluster.connect_timeout_ms`, for the route to be served again: nothing was sent
//! upstream yet, so the wait is safe, and the client sees a move as a delay.
//!
//! `GET /healthz` is the node's own: its lease, the shards it serves, those it follows as
//! their standby (with the log position of each copy), the live nodes.
//!
//! Bounds, as on a single node's listener: connections in total and per address, the head's
//! size and deadline, a body read for its tenant only up to `limits.max_body_bytes` and
//! `server.body_timeout_secs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::log::LogMetrics;
use super::{placement, NodeMetrics};
use crate::config::{Config, MetricsListener};
use crate::peer::Proxies;

/// Largest request head the edge reads.
const MAX_HEAD: usize = 16 * 1024;
/// Most headers a request head may have.
const MAX_HEADERS: usize = 64;
/// How long the edge waits before looking a shard's route up again, while its owner moves.
const RETRY_ROUTE: Duration = Duration::from_millis(50);

/// What the node tells the edge: where each shard is served, and what `/healthz` says.
#[derive(Default)]
pub struct Table {
    /// The address serving each shard (`None`: no live owner known now).
    pub routes: Vec<Option<String>>,
    /// Whether this node's lease is current.
    pub lease: bool,
    /// The shards this node serves.
    pub owns: Vec<u32>,
    /// The shards this node is the standby of, each with the log position its copy reached.
    pub follows: Vec<(u32, u64)>,
    /// The nodes whose lease is current.
    pub live: Vec<String>,
    /// The state of each shard served here (for `/metrics`), held weakly: a shard that
    /// stops closes its database without waiting for the edge.
    pub served: Vec<(u32, std::sync::Weak<crate::state::AppState>)>,
}

/// The client listener of a node.
pub struct Edge {
    node: String,
    shards: u32,
    table: RwLock<Table>,
    proxies: Proxies,
    head_timeout: Duration,
    body_timeout: Duration,
    connect_timeout: Duration,
    max_body: usize,
    max_connections: usize,
    per_address: usize,
    connections: Mutex<HashMap<IpAddr, usize>>,
    metrics_served: bool,
    node_metrics: Arc<NodeMetrics>,
    log_metrics: Arc<LogMetrics>,
}

impl Edge {
    /// The edge of the node configured by `config`, counting into `node_metrics` and
    /// showing `log_metrics` on `/metrics`.
    pub fn new(
        config: &Config,
        node_metrics: Arc<NodeMetrics>,
        log_metrics: Arc<LogMetrics>,
    ) -> Result<Edge, String> {
        let proxies = Proxies::parse(&config.server.trusted_proxies)?;
        Ok(Edge {
            node: config.cluster.node_id.clone(),
            shards: config.cluster.shards,
            table: RwLock::new(Table {
                routes: vec![None; config.cluster.shards as usize],
                ..Table::default()
            }),
            proxies,
            head_timeout: Config::ms(config.server.head_timeout_ms),
            connect_timeout: Config::ms(config.cluster.connect_timeout_ms),
            body_timeout: Duration::from_secs(config.server.body_timeout_secs),
            max_body: config.limits.max_body_bytes,
            max_connections: config.server.max_connections,
            per_address: config.server.max_connections_per_address,
            connections: Mutex::default(),
            metrics_served: config.metrics.listener == MetricsListener::Client,
            node_metrics,
            log_metrics,
        })
    }

    /// Replaces what the edge knows of the cluster.
    pub fn update(&self, table: Table) {
        *self.table.write().expect("edge table") = table;
    }

    /// Where shard `shard` is served now.
    pub fn route(&self, shard: u32) -> Option<String> {
        self.table
            .read()
            .expect("edge table")
            .routes
            .get(shard as usize)
            .cloned()
            .flatten()
    }

    /// Counts a connection from `ip`; `None` when a bound is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr, trusted: bool) -> Option<Admitted> {
        let mut open = self.connections.lock().expect("edge connections");
        let total: usize = open.values().sum();
        let mine = open.get(&ip).copied().unwrap_or(0);
        let per_address = self.per_address > 0 && !trusted && mine >= self.per_address;
        if (self.max_connections > 0 && total >= self.max_connections) || per_address {
            return None;
        }
        *open.entry(ip).or_default() += 1;
        Some(Admitted {
            edge: self.clone(),
            ip,
        })
    }
}

/// A counted connection; uncounted when dropped.
struct Admitted {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.edge.connections.lock().expect("edge connections");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, edge: Arc<Edge>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "edge: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // The only change ever sent is the stop (or the node went away).
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        tokio::spawn(async move {
            let trusted = edge.proxies.trusts(peer.ip());
            let Some(admitted) = edge.admit(peer.ip(), trusted) else {
                let mut stream = stream;
                let _ = edge.refuse(&mut stream, 503, "too many connections").await;
                return;
            };
            if let Err(e) = tunnel(stream, peer, &edge).await {
                tracing::debug!(error = %e, %peer, "edge: connection ended");
            }
            drop(admitted);
        });
    }
}

/// A request head as read.
struct Head {
    method: String,
    path: String,
    version: u8,
    headers: HeaderMap,
    /// Bytes of the head, then whatever of the body came with it.
    len: usize,
}

fn parse(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let mut headers = HeaderMap::new();
            for h in req.headers.iter() {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
                let value = HeaderValue::from_bytes(h.value).map_err(|e| e.to_string())?;
                headers.append(name, value);
            }
            Ok(Some(Head {
                method: req.method.unwrap_or("GET").to_owned(),
                path: req.path.unwrap_or("/").to_owned(),
                version: req.version.unwrap_or(1),
                headers,
                len,
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

async fn tunnel(mut client: TcpStream, peer: SocketAddr, edge: &Edge) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let head = match tokio::time::timeout(edge.head_timeout, read_head(&mut client, &mut buf)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(why)) => return edge.refuse(&mut client, 400, &why).await,
        Err(_) => {
            return edge
                .refuse(&mut client, 408, "the request head took too long")
                .await
        }
    };
    let path_only = head.path.split('?').next().unwrap_or("/");
    if path_only == "/healthz" && (head.method == "GET" || head.method == "HEAD") {
        let (status, body) = edge.health();
        return reply(&mut client, status, &body).await;
    }
    if path_only == "/metrics" && head.method == "GET" && edge.metrics_served {
        let body = edge.metrics();
        return reply_as(
            &mut client,
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &body,
        )
        .await;
    }
    let upgrade = head
        .headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut tenant = tenant_of_head(&head);
    if tenant.is_none() && !upgrade {
        match body_length(&head.headers) {
            Some(length) if length > edge.max_body => {
                return edge.refuse(&mut client, 413, "the body is too large").await;
            }
            Some(length) if length > 0 && form_or_json(&head.headers) => {
                let want = head.len + length;
                let read = async {
                    while buf.len() < want {
                        let mut chunk = [0u8; 8192];
                        let n = client.read(&mut chunk).await?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                };
                match tokio::time::timeout(edge.body_timeout, read).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return edge.refuse(&mut client, 408, "the body took too long").await,
                }
                tenant = tenant_of_body(&head.headers, &buf[head.len..want]);
            }
            _ => {}
        }
    }
    let tenant = tenant.unwrap_or_else(|| "default".into());
    let shard = placement::shard_of(&tenant, edge.shards);
    // Nothing went upstream yet: while the shard has no owner or its owner does not answer
    // (a takeover or hand-over in progress), the route is looked up again until
    // `connect_timeout`, so a client sees the move as a delay rather than a refusal.
    let deadline = Instant::now() + edge.connect_timeout;
    let mut upstream = loop {
        let reason = match edge.route(shard) {
            None => "this tenant's shard has no owner now; try again",
            Some(addr) => match tokio::time::timeout_at(deadline.into(), TcpStream::connect(&addr)).await {
                Ok(Ok(upstream)) => break upstream,
                _ => "this tenant's shard cannot be reached now; try again",
            },
        };
        let now = Instant::now();
        if now >= deadline {
            return edge.refuse(&mut client, 503, reason).await;
        }
        tokio::time::sleep(RETRY_ROUTE.min(deadline - now)).await;
    };
    let _ = upstream.set_nodelay(true);
    edge.node_metrics
        .tunnels
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_ip = edge
        .proxies
        .client(Some(peer.ip()), &head.headers)
        .unwrap_or(peer.ip());
    let mut out = Vec::with_capacity(buf.len() + 64);
    out.extend_from_slice(format!("{} {} HTTP/1.{}\r\n", head.method, head.path, head.version).as_bytes());
    for (name, value) in head.headers.iter() {
        let hop = matches!(
            name.as_str(),
            "connection" | "keep-alive" | "x-forwarded-for" | "x-real-ip"
        );
        if !hop {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("x-forwarded-for: {client_ip}\r\n").as_bytes());
    out.extend_from_slice(if upgrade {
        b"connection: Upgrade\r\n\r\n".as_slice()
    } else {
        b"connection: close\r\n\r\n".as_slice()
    });
    out.extend_from_slice(&buf[head.len..]);
    upstream.write_all(&out).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads until a whole head is in `buf`; `None` when the client closed first.
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Head>, String> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse(buf)? {
            return Ok(Some(head));
        }
        if buf.len() > MAX_HEAD {
            return Err("the request head is too large".into());
        }
    }
}

/// The tenant a head names: the token's `app_id`, the `X-App-Id` header, the query's
/// `app_id`.
fn tenant_of_head(head: &Head) -> Option<String> {
    let query = head.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    let token = crate::auth::token_in(&head.headers, query);
    if let Some(tenant) = token.as_deref().and_then(token_tenant) {
        return Some(tenant);
    }
    if let Some(tenant) = chat21_tenant(&head.path) {
        return Some(tenant);
    }
    header("x-app-id")
        .map(str::to_owned)
        .or_else(|| pairs.into_iter().find(|(k, _)| k == "app_id").map(|(_, v)| v))
}

/// The `app_id` of a JWT's claims, read without checking the signature: it only routes the
/// request, and the owner checks the token.
fn token_tenant(token: &str) -> Option<String> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("app_id")?.as_str().map(str::to_owned)
}

/// The APP_ID of a Chat21 path, `/api/{app_id}/...`.
fn chat21_tenant(path: &str) -> Option<String> {
    let path = path.split('?').next()?;
    let mut parts = path.strip_prefix("/api/")?.split('/');
    let app = parts.next()?;
    parts.next()?;
    // The uni-app face's own `/api/chat/...`; its other `/api/` paths have one segment.
    (app != "chat" && crate::core::plain_name(app)).then(|| app.to_owned())
}

fn body_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn form_or_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json") || t.contains("x-www-form-urlencoded"))
}

/// The `app_id` field of a JSON or form body.
fn tenant_of_body(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get("app_id")?.as_str().map(str::to_owned);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == "app_id").map(|(_, v)| v)
}

impl Edge {
    /// The node's `/healthz`: 200 while its lease is current.
    fn health(&self) -> (u16, String) {
        let table = self.table.read().expect("edge table");
        let status = if table.lease { "ok" } else { "unavailable" };
        let body = serde_json::json!({
            "status": status,
            "node": self.node,
            "owns": table.owns,
            "follows": table
                .follows
                .iter()
                .map(|(shard, at)| (shard.to_string(), serde_json::Value::from(*at)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "live": table.live,
        });
        (if table.lease { 200 } else { 503 }, body.to_string())
    }
}

impl Edge {
    /// The node's `/metrics`: its own figures, its logs', its edge's, then the core
    /// metrics of every shard it serves, labelled `shard`.
    fn metrics(&self) -> String {
        use crate::metrics::{render_shards, write_histogram, write_one};
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = String::with_capacity(16 * 1024);
        let table = self.table.read().expect("edge table");
        let (n, l) = (&self.node_metrics, &self.log_metrics);
        write_one(
            &mut out,
            "parlor_cluster_lease",
            "gauge",
            "1 while this node's lease is current.",
            u8::from(table.lease),
        );
        write_one(
            &mut out,
            "parlor_cluster_live_nodes",
            "gauge",
            "Nodes whose lease is current.",
            table.live.len(),
        );
        write_one(
            &mut out,
            "parlor_cluster_owned_shards",
            "gauge",
            "Shards this node serves.",
            table.owns.len(),
        );
        let counters: [(&str, &str, u64); 9] = [
            (
                "parlor_cluster_takeovers_total",
                "Shards this node took over.",
                n.takeovers.load(Relaxed),
            ),
            (
                "parlor_cluster_takeover_failures_total",
                "Takeovers that failed (tried again next tick).",
                n.takeover_failures.load(Relaxed),
            ),
            (
                "parlor_cluster_handovers_total",
                "Shards handed to the node that ranks first for them.",
                n.handovers.load(Relaxed),
            ),
            (
                "parlor_cluster_shards_lost_total",
                "Shards this node stopped serving because it was fenced or another node owns them.",
                n.lost.load(Relaxed),
            ),
            (
                "parlor_cluster_log_fenced_total",
                "Appends refused because another owner had appended.",
                l.fenced.load(Relaxed),
            ),
            (
                "parlor_cluster_log_append_retries_total",
                "Appends sent again because their outcome was unknown.",
                l.append_retries.load(Relaxed),
            ),
            (
                "parlor_cluster_log_replayed_total",
                "Log records applied to catch a copy up (the lag a takeover replayed).",
                l.replayed.load(Relaxed),
            ),
            (
                "parlor_edge_tunnels_total",
                "Connections the client listener tunnelled to a shard's server.",
                n.tunnels.load(Relaxed),
            ),
            (
                "parlor_edge_refused_total",
                "Requests the client listener answered with an error itself.",
                n.refused.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            write_one(&mut out, name, "counter", help, value);
        }
        crate::metrics::write_labelled(
            &mut out,
            "parlor_cluster_standby_position",
            "gauge",
            "The log position this node's copy of each shard it is the standby of has reached.",
            table
                .follows
                .iter()
                .map(|(shard, at)| (format!("shard=\"{shard}\""), *at)),
        );
        let open: usize = self.connections.lock().expect("edge connections").values().sum();
        write_one(
            &mut out,
            "parlor_edge_connections_open",
            "gauge",
            "Connections open on the client listener.",
            open,
        );
        write_histogram(
            &mut out,
            "parlor_cluster_log_append_seconds",
            "Time each append to a shard's log took.",
            &l.append_seconds.snapshot(),
        );
        write_histogram(
            &mut out,
            "parlor_cluster_takeover_seconds",
            "Time from deciding to take a shard over to serving it.",
            &n.takeover_seconds.snapshot(),
        );
        let held: Vec<(u32, Arc<crate::state::AppState>)> = table
            .served
            .iter()
            .filter_map(|(k, s)| Some((*k, s.upgrade()?)))
            .collect();
        drop(table);
        let shards: Vec<(u32, &crate::state::AppState)> = held.iter().map(|(k, s)| (*k, &**s)).collect();
        render_shards(&shards, &mut out);
        out
    }
}

impl Edge {
    /// Answers an error the edge found itself (counted), and closes.
    async fn refuse(&self, client: &mut TcpStream, status: u16, why: &str) -> std::io::Result<()> {
        self.node_metrics
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        reply(client, status, &error_body(why)).await
    }
}

/// The body of a refusal: the envelope the node's own listener refuses with (`intake`,
/// `ApiError::to_response`), so a client sees one shape whichever node refused it.
fn error_body(why: &str) -> String {
    serde_json::json!({ "msg": "fail", "data": why }).to_string()
}

/// Answers the client with `status` and a JSON `body`, and closes.
async fn reply(client: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    reply_as(client, status, "application/json", body).await
}

/// Answers the client with `status` and a `body` of `content_type`, and closes.
async fn reply_as(
    client: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn the_tenant_of_a_request_is_found_as_the_handlers_find_it() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"app_id":"acme","id":1}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig");
        let by_query = head(&format!("GET /ws?token={token} HTTP/1.1\r\nhost: x\r\n\r\n"));
        assert_eq!(tenant_of_head(&by_query).as_deref(), Some("acme"));
        let by_bearer = head(&format!(
            "GET /api/chat/x HTTP/1.1\r\nauthorization: Bearer {token}\r\n\r\n"
        ));
        assert_eq!(tenant_of_head(&by_bearer).as_deref(), Some("acme"));
        let by_header = head("POST /api/loginChat HTTP/1.1\r\nx-app-id: globex\r\n\r\n");
        assert_eq!(tenant_of_head(&by_header).as_deref(), Some("globex"));
        let chat21 = head("GET /api/tilechat/u1/conversations HTTP/1.1\r\n\r\n");
        assert_eq!(tenant_of_head(&chat21).as_deref(), Some("tilechat"));
        let uniapp = head("GET /api/chat/conversations HTTP/1.1\r\n\r\n");
        assert_eq!(tenant_of_head(&uniapp), None);
        let query = head("GET /api/userinfo?app_id=initech HTTP/1.1\r\n\r\n");
        assert_eq!(tenant_of_head(&query).as_deref(), Some("initech"));
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            tenant_of_body(&headers, br#"{"app_id":"acme"}"#).as_deref(),
            Some("acme")
        );
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            tenant_of_body(&headers, b"username=a&app_id=globex").as_deref(),
            Some("globex")
        );
        assert_eq!(tenant_of_body(&headers, b"username=a"), None);
    }

    #[test]
    fn a_partial_head_waits_and_a_broken_one_is_refused() {
        assert!(parse(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap().is_none());
        assert!(parse(b"\x00\x01 nonsense\r\n\r\n").is_err());
    }
}
