//! What a listener takes in: how many connections it holds, per client address and in
//! total, and how long a request's body may take to arrive.
//!
//! - [`Connections`] counts each accepted connection in the listener's `on_connect` hook
//!   and leaves a [`Ticket`] in the connection's data, which gives the count back when the
//!   connection ends. A connection opened while its address already held
//!   `max_connections_per_address`, or while the listener held `max_connections`, is
//!   marked refused: every request on it is answered 429 (the address) or 503 (the total)
//!   and the connection closes, except `GET /healthz`, which is answered so that a server
//!   under a flood still reports itself alive. Connections already open, WebSocket
//!   sessions included, are never cut by newer ones.
//! - [`bound`], a middleware on both listeners, replaces each request body with one that
//!   fails once `server.body_timeout_secs` have passed since the request's head arrived;
//!   the request is then answered 408 and its connection closed. A body the handler left
//!   unread when it answered also closes the connection, rather than being drained for as
//!   long as the client trickles it. A request upgraded to a WebSocket is exempt once
//!   upgraded: its body is the session's frames, watched by the heartbeat
//!   (`ws.client_timeout_ms`).
//! - [`hard_cap`] is the per-worker connection cap handed to actix-server: past it the
//!   listener stops accepting (new connections wait in the kernel's backlog) so that a
//!   flood cannot exhaust the process's file descriptors. It is `max_connections` plus a
//!   reserve, so that connections past `max_connections` can still be answered (refused,
//!   or `/healthz`) rather than left unaccepted.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use dashmap::DashMap;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::error::ApiError;
use crate::state::AppState;

/// The connection counts of one listener.
#[derive(Debug)]
pub struct Connections {
    per_address: usize,
    /// Connections from these are bounded in total only: each carries many clients.
    proxies: crate::peer::Proxies,
    total: usize,
    open: AtomicUsize,
    by_address: DashMap<IpAddr, usize>,
}

/// Why the requests of a connection are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Address,
    Total,
}

/// One counted connection, kept in its connection data; dropping it (when the connection
/// ends) gives the count back.
#[derive(Debug)]
pub struct Ticket {
    connections: Arc<Connections>,
    address: Option<IpAddr>,
    refusal: Option<Refusal>,
}

impl Connections {
    /// Counts for a listener holding at most `total` connections, `per_address` of them from
    /// one client address other than a trusted proxy.
    pub fn new(total: usize, per_address: usize, proxies: crate::peer::Proxies) -> Arc<Connections> {
        Arc::new(Connections {
            per_address,
            proxies,
            total,
            open: AtomicUsize::new(0),
            by_address: DashMap::new(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `address` and returns its ticket.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Ticket {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let address = address.filter(|a| !self.proxies.trusts(*a));
        let from_address = address.map(|a| {
            let mut n = self.by_address.entry(a).or_insert(0);
            *n += 1;
            *n
        });
        let refusal = if from_address.is_some_and(|n| n > self.per_address) {
            Some(Refusal::Address)
        } else if open > self.total {
            Some(Refusal::Total)
        } else {
            None
        };
        Ticket {
            connections: self.clone(),
            address,
            refusal,
        }
    }

    /// The `on_connect` hook of a listener: counts each accepted TCP connection and keeps
    /// its ticket in the connection's data.
    pub fn on_connect(self: &Arc<Self>, conn: &dyn std::any::Any, data: &mut Extensions) {
        let address = conn
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|tcp| tcp.peer_addr().ok())
            .map(|a| a.ip());
        data.insert(self.admit(address));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            self.connections.by_address.remove_if_mut(&address, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

impl Ticket {
    /// Whether requests on this connection are refused.
    pub fn refused(&self) -> bool {
        self.refusal.is_some()
    }
}

/// The per-worker connection cap of a listener holding at most `max_connections` (see the
/// module's documentation) with `workers` workers.
pub fn hard_cap(max_connections: usize, workers: usize) -> usize {
    let reserve = (max_connections / 8).max(16);
    (max_connections + reserve).div_ceil(workers.max(1))
}

/// The middleware of both listeners: refuses the requests of a refused connection, and
/// bounds the time a request's body takes to arrive (see the module's documentation).
pub async fn bound(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refusal = req.conn_data::<Ticket>().and_then(|t| t.refusal);
    let health = req.method() == Method::GET && req.path() == "/healthz";
    if let (Some(refusal), false) = (refusal, health) {
        let err = match refusal {
            Refusal::Address => ApiError::TooMany("too many connections from this address".into()),
            Refusal::Total => ApiError::Unavailable("the server is at its connection limit; retry".into()),
        };
        return Ok(req.into_response(closing(err.to_response())));
    }
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.server.body_timeout_secs)
        .unwrap_or(60);
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let watch = Rc::new(Watch::default());
    let body = Deadline {
        inner: Some(payload),
        sleep: Box::pin(tokio::time::sleep(Duration::from_secs(timeout))),
        watch: watch.clone(),
        finished: false,
    };
    req.set_payload(Payload::Stream {
        payload: body.boxed_local(),
    });
    let answered = next.call(req).await;
    watch.answered.set(true);
    let unread = watch.unread.take();
    let mut res = if watch.expired.get() {
        let req = match &answered {
            Ok(res) => res.request().clone(),
            Err(_) => return answered.map(ServiceResponse::map_into_boxed_body),
        };
        let reason = format!("the request body did not arrive within {timeout} s");
        let resp = HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
            .json(serde_json::json!({"msg": "fail", "data": reason}));
        ServiceResponse::new(req, closing(resp))
    } else {
        answered?.map_into_boxed_body()
    };
    // Held by the response's body until the body is sent, the unread request body makes the
    // dispatcher close the connection after answering, instead of draining what the client
    // may never send.
    if let Some(unread) = unread {
        res = res.map_body(|_, body| {
            BoxBody::new(Holding {
                body,
                _unread: unread,
            })
        });
    }
    Ok(res)
}

/// `resp` with `Connection: close`.
fn closing(mut resp: HttpResponse) -> HttpResponse {
    resp.head_mut().set_connection_type(ConnectionType::Close);
    resp
}

/// What a request's [`Deadline`] body and the middleware share.
#[derive(Default)]
struct Watch {
    /// The handler has answered: the deadline no longer applies.
    answered: Cell<bool>,
    /// The deadline passed before the body had arrived.
    expired: Cell<bool>,
    /// The body's unread rest, when the deadline passed or the handler dropped it unread.
    unread: RefCell<Option<Payload>>,
}

/// A response body holding the unread rest of its request's body until it has been sent.
struct Holding {
    body: BoxBody,
    _unread: Payload,
}

impl MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// A request body that fails once its deadline has passed, unless its request has been
/// answered by then.
struct Deadline {
    inner: Option<Payload>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    watch: Rc<Watch>,
    finished: bool,
}

impl Stream for Deadline {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.watch.answered.get() && this.sleep.poll_unpin(cx).is_ready() {
            this.watch.expired.set(true);
            *this.watch.unread.borrow_mut() = this.inner.take();
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        let next = inner.poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            this.finished = true;
        }
        next
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(rest) = self.inner.take() {
                *self.watch.unread.borrow_mut() = Some(rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address_and_in_total() {
        let c = Connections::new(3, 2, crate::peer::Proxies::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = c.admit(Some(a));
        let a2 = c.admit(Some(a));
        let a3 = c.admit(Some(a));
        assert!(!a1.refused() && !a2.refused());
        assert_eq!(a3.refusal, Some(Refusal::Address));
        drop(a3);
        let b1 = c.admit(Some(b));
        assert!(!b1.refused());
        let b2 = c.admit(Some(b));
        assert_eq!(b2.refusal, Some(Refusal::Total));
        drop((a1, a2, b1, b2));
        assert_eq!(c.open(), 0);
        assert!(c.by_address.is_empty());
    }

    #[test]
    fn a_trusted_proxy_is_bounded_in_total_only() {
        let proxies = crate::peer::Proxies::parse(&["127.0.0.1".into()]).unwrap();
        let c = Connections::new(4, 1, proxies);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let tickets: Vec<Ticket> = (0..4).map(|_| c.admit(Some(proxy))).collect();
        assert!(
            tickets.iter().all(|t| !t.refused()),
            "one address, four connections"
        );
        assert!(c.by_address.is_empty(), "a proxy is not counted per address");
        assert_eq!(c.admit(Some(proxy)).refusal, Some(Refusal::Total));
        drop(tickets);
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn the_hard_cap_keeps_a_reserve_past_the_limit() {
        assert_eq!(hard_cap(10_000, 1), 11_250);
        assert_eq!(hard_cap(10_000, 4), 2813);
        assert_eq!(hard_cap(30, 2), 23);
    }
}
