//! What the listeners take in: request bodies that never arrive are answered 408 and their
//! connections closed within `server.body_timeout_secs` (on the client and the admin
//! listener, for JSON, chunked and multipart bodies), connections past
//! `server.max_connections_per_address` or `server.max_connections` are refused while other
//! addresses are served, and through a flood `/healthz` answers and an established
//! WebSocket keeps exchanging frames. Linux routes all of 127/8 to the loopback interface:
//! a client socket bound to 127.0.0.N is another client address.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A body announced at a megabyte, of which a few bytes are sent.
const BIG: usize = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection to `to` from the address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.expect("connects")
}

/// A connection from `from` that sends `head` (ending with the blank line) and `start` of
/// its body, then nothing.
async fn stall(from: IpAddr, to: SocketAddr, head: &str, start: &[u8]) -> TcpStream {
    let mut s = connect_from(from, to).await;
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(start).await.unwrap();
    s
}

/// The status of the next response on `s` (its head, and its body by `Content-Length`);
/// fails if it has not arrived at `deadline`.
async fn response(s: &mut TcpStream, deadline: Instant) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
            }
        }
        let read = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no whole response before the deadline, only {text:?}"));
        match read {
            Ok(0) | Err(_) => panic!("closed before a whole response: {text:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status of the response the server wrote on `s`, which the server must then close;
/// fails if either has not happened at `deadline`.
async fn answer_then_close(mut s: TcpStream, deadline: Instant) -> u16 {
    let status = response(&mut s, deadline).await;
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("answered {status}, but still open at the deadline"));
        match read {
            Ok(0) | Err(_) => return status,
            Ok(_) => continue,
        }
    }
}

/// An empty registration, which a served connection answers 400.
const EMPTY_REGISTRATION: &[u8] =
    b"POST /api/regChat HTTP/1.1\r\nHost: parlor\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// A connection from `from` on which a whole request has been answered: `Ok` when served
/// (the connection is kept open), the status when refused.
async fn admitted(from: IpAddr, to: SocketAddr) -> Result<TcpStream, u16> {
    let mut s = connect_from(from, to).await;
    s.write_all(EMPTY_REGISTRATION).await.unwrap();
    match response(&mut s, Instant::now() + FRAME_TIMEOUT).await {
        400 => Ok(s),
        status => {
            assert!(status == 429 || status == 503, "refused with {status}");
            Err(status)
        }
    }
}

/// The status of an empty registration on a new connection from `from`: 400 when served,
/// 429 or 503 when refused.
async fn register_from(from: IpAddr, to: SocketAddr) -> u16 {
    admitted(from, to).await.map_or_else(|status| status, |_| 400)
}

/// A connection from `from` that was served a whole request and then stalls in the body
/// of a registration; the status when it was refused instead.
async fn held(from: IpAddr, to: SocketAddr) -> Result<TcpStream, u16> {
    let mut s = admitted(from, to).await?;
    let stalled = head("POST", "/api/regChat", "Content-Type: application/json\r\n");
    s.write_all(stalled.as_bytes()).await.unwrap();
    s.write_all(b"{\"user").await.unwrap();
    Ok(s)
}

/// Waits until a new connection from `from` is served again.
async fn served_again(server: &TestServer, from: IpAddr) {
    eventually(
        || async { register_from(from, server.addr).await == 400 },
        &format!("{from} served again"),
    )
    .await;
}

/// One whole `GET /healthz` on a new connection from `from`: its status.
async fn healthz_from(from: IpAddr, to: SocketAddr) -> u16 {
    let mut s = connect_from(from, to).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: parlor\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    answer_then_close(s, Instant::now() + FRAME_TIMEOUT).await
}

/// A request head with `Content-Length: BIG`.
fn head(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: parlor\r\nContent-Length: {BIG}\r\n{extra}\r\n")
}

/// A server with `tweak` applied, and Alice and Bob (who may message each other) each
/// with an open WebSocket.
struct Chatting {
    server: TestServer,
    _dir: tempfile::TempDir,
    alice: User,
    bob: User,
    wa: Ws,
    wb: Ws,
}

impl Chatting {
    async fn start(tweak: impl FnOnce(&mut parlor::config::Config)) -> Chatting {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_in(dir.path(), tweak).await;
        let alice = server.register_open("alice").await;
        let bob = server.register_open("bob_1").await;
        let wa = server.ws(&alice.token).await;
        let wb = server.ws(&bob.token).await;
        Chatting {
            server,
            _dir: dir,
            alice,
            bob,
            wa,
            wb,
        }
    }

    /// A message from Alice's socket reaches Bob's and is acknowledged.
    async fn exchange(&mut self, cid: &str) {
        self.wa.send_msg(cid, self.bob.id, cid).await;
        assert_eq!(self.wa.next_of_type("ack").await["cid"], cid);
        assert_eq!(self.wb.next_of_type("singleChat").await["data"]["data"], cid);
    }

    /// After the flood's connections are gone: `from` is served again, the sessions still
    /// carry messages; then the server stops.
    async fn after_the_flood(mut self, from: IpAddr) {
        served_again(&self.server, from).await;
        self.exchange("after").await;
        self.server.stop().await;
    }
}

#[actix_web::test]
async fn bodies_that_never_arrive_are_answered_408_and_closed_on_both_listeners() {
    let mut chat = Chatting::start(|c| {
        c.server.body_timeout_secs = 2;
        c.server.max_connections_per_address = 1000;
        c.admin.bind = "127.0.0.1:0".into();
        c.admin.secret = "intake-test-secret".into();
    })
    .await;
    let addr = chat.server.addr;
    let admin = chat.server.admin.unwrap();
    let local = ip("127.0.0.1");

    let auth = format!("token: {}\r\n", chat.alice.token);
    let multipart = format!("{auth}Content-Type: multipart/form-data; boundary=XyZ\r\n");
    let part = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG";
    let mut flood = Vec::new();
    for i in 0..240 {
        let (s, expect) = match i % 4 {
            0 => (
                stall(
                    local,
                    addr,
                    &head("POST", "/api/regChat", "Content-Type: application/json\r\n"),
                    b"{\"user",
                )
                .await,
                408,
            ),
            1 => {
                let chunked =
                    "POST /api/loginChat HTTP/1.1\r\nHost: parlor\r\nTransfer-Encoding: chunked\r\n\r\n";
                (stall(local, addr, chunked, b"10\r\nusername=al").await, 408)
            }
            2 => (
                stall(
                    local,
                    addr,
                    &head("POST", "/api/chat/uploadAliyun", &multipart),
                    part,
                )
                .await,
                408,
            ),
            // A body the handler never reads: answered, then the connection closes.
            _ => (stall(local, addr, &head("GET", "/healthz", ""), b"xx").await, 200),
        };
        flood.push((s, expect));
    }
    for _ in 0..50 {
        let nonce = format!("n{}", flood.len());
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let sign = parlor::faces::admin::sign(&nonce, "intake-test-secret", &ts);
        let signed = format!(
            "nonce: {nonce}\r\ntimestamp: {ts}\r\nsign: {sign}\r\nContent-Type: application/json\r\n"
        );
        let s = stall(
            local,
            admin,
            &head("POST", "/admin/get_setting", &signed),
            b"{\"id",
        )
        .await;
        flood.push((s, 408));
    }

    // While the bodies stall, health is reported and the sessions carry messages.
    let (status, body) = chat.server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    chat.exchange("during").await;

    let deadline = Instant::now() + Duration::from_secs(2) + FRAME_TIMEOUT;
    let outcomes = futures_util::future::join_all(
        flood
            .into_iter()
            .map(|(s, expect)| async move { (answer_then_close(s, deadline).await, expect) }),
    )
    .await;
    for (i, (got, expect)) in outcomes.iter().enumerate() {
        assert_eq!(got, expect, "connection {i}");
    }

    // The sessions outlived the body deadline: their frames are not a body.
    assert_eq!(healthz_from(local, addr).await, 200);
    chat.after_the_flood(local).await;
}

#[actix_web::test]
async fn an_address_over_its_connection_limit_is_refused_and_others_are_served() {
    let mut chat = Chatting::start(|c| c.server.max_connections_per_address = 100).await;
    let addr = chat.server.addr;
    let flooder = ip("127.0.0.3");
    let regchat = head("POST", "/api/regChat", "Content-Type: application/json\r\n");

    // 100 connections served, then each left stalling in a body.
    let mut stalled = Vec::new();
    for n in 0..100 {
        let s = held(flooder, addr)
            .await
            .unwrap_or_else(|status| panic!("connection {n} refused with {status}"));
        stalled.push(s);
    }
    let mut refused = Vec::new();
    for _ in 0..50 {
        refused.push(stall(flooder, addr, &regchat, b"{\"user").await);
    }
    let deadline = Instant::now() + FRAME_TIMEOUT;
    for s in refused {
        assert_eq!(answer_then_close(s, deadline).await, 429);
    }
    // The flooding address still gets its health answered; another address is served.
    assert_eq!(healthz_from(flooder, addr).await, 200);
    let other = ip("127.0.0.2");
    assert_eq!(healthz_from(other, addr).await, 200);
    assert_eq!(register_from(other, addr).await, 400);
    chat.exchange("during").await;

    // Once the stalled connections close, the address is served again.
    drop(stalled);
    chat.after_the_flood(flooder).await;
}

#[actix_web::test]
async fn connections_over_the_total_are_refused_but_health_and_sessions_go_on() {
    let mut chat = Chatting::start(|c| {
        c.server.max_connections = 60;
        c.server.max_connections_per_address = 40;
    })
    .await;
    let addr = chat.server.addr;

    // Beside the sessions, connections from two other addresses stall in bodies until the
    // listener is full.
    let mut stalled = Vec::new();
    for n in 0.. {
        assert!(n < 60, "never refused");
        let from = if n % 2 == 0 {
            ip("127.0.0.4")
        } else {
            ip("127.0.0.5")
        };
        match held(from, addr).await {
            Ok(s) => stalled.push(s),
            Err(status) => {
                assert_eq!(status, 503);
                break;
            }
        }
    }
    let fresh = ip("127.0.0.6");
    assert_eq!(register_from(fresh, addr).await, 503);
    assert_eq!(healthz_from(fresh, addr).await, 200);
    chat.exchange("during").await;

    drop(stalled);
    chat.after_the_flood(fresh).await;
}
