//! The session actor: one per WebSocket connection.
//!
//! It registers with the Router, writes what the Router delivers, turns client frames
//! into calls to the core, answers a bad frame with an `error` frame without closing,
//! pings every `heartbeat_interval_ms` (beaten by its thread's [heartbeat](super::heartbeat)
//! clock, not a timer of its own) and closes a client silent for `client_timeout_ms`.
//! Behind what it writes it sends a delivery probe, at most one per `probe_interval_ms`
//! and, under a steady flow, in the same socket write as a frame; `report_interval_ms`
//! after a probe's pong, and when it stops, it tells the Router the positions the client
//! confirmed (see [`Delivery`]), which moves the user's delivered cursor. An idle session
//! has no timer of its own.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Handler, Running, StreamHandler, WrapFuture,
};
use actix_web::web;
use actix_web_actors::ws;
use governor::{DefaultDirectRateLimiter, Quota};
use parlor_actors::{
    wire, Advance, Beat, Connect, Deliver, Disconnect, Origin, Party, Pushed, Router, SendMessage, UserKey,
};
use parlor_storage::{ChatType, Role, Store, UserRecord};

use super::delivery::Delivery;
use super::heartbeat::{self, Membership};
use super::protocol::{self, ClientFrame, FrameError, SendFrame};
use super::typing::{Notes, Verdict};
use crate::auth::Issued;
use crate::config::{Config, WsConfig};
use crate::core::accounts::party;
use crate::core::messages::{content_json, options_json};
use crate::core::presence;
use crate::core::{conversations, messages};
use crate::state::AppState;

/// How many peer profiles a session keeps for naming its messages.
const PEER_CACHE: usize = 1024;

/// A session's budget of client frames.
fn frame_budget(config: &WsConfig) -> DefaultDirectRateLimiter {
    let per_sec = NonZeroU32::new(config.frames_per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(config.frames_burst).unwrap_or(NonZeroU32::MIN);
    DefaultDirectRateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst))
}

/// One WebSocket connection; see the module doc.
pub struct Session {
    id: u64,
    user: UserKey,
    me: Party,
    role: Role,
    jti: Arc<str>,
    router: Addr<Router>,
    store: Store,
    state: web::Data<AppState>,
    config: WsConfig,
    last_heard: Instant,
    /// When the token expires (seconds since the epoch): the session is closed then.
    expires: Option<u64>,
    /// How the token was issued, checked against the user's gate once registered.
    issued: Option<Issued>,
    /// The session's budget of client frames (`ws.frames_per_sec`, `ws.frames_burst`).
    frames: DefaultDirectRateLimiter,
    /// What the client is known to have read; see [`Delivery`].
    delivery: Delivery,
    /// Whether a timer will probe what was written (see [`Session::schedule_probe`]).
    probe_armed: bool,
    /// Whether a timer will report confirmed positions (see [`Session::confirmed`]).
    report_armed: bool,
    /// Which typing notes are forwarded; see [`Notes`].
    typing: Notes,
    peers: HashMap<u64, Party>,
    /// The session's place on its thread's heartbeat clock (from `started` on).
    beats: Option<Membership>,
}

impl Session {
    /// The session of `user`, authenticated by the token `jti`; `manual_ack` is
    /// `?ack=manual` (only the client's `ack` frames move the delivered cursor).
    pub fn new(state: web::Data<AppState>, user: &UserRecord, jti: &str, manual_ack: bool) -> Self {
        Self {
            id: state.next_session.fetch_add(1, Ordering::Relaxed),
            user: UserKey::new(&user.tenant, user.id),
            me: party(user),
            role: user.role,
            jti: Arc::from(jti),
            router: state.router.clone(),
            store: state.store.clone(),
            config: state.config.ws.clone(),
            last_heard: Instant::now(),
            expires: None,
            issued: None,
            frames: frame_budget(&state.config.ws),
            delivery: Delivery::new(manual_ack, Instant::now()),
            probe_armed: false,
            report_armed: false,
            typing: Notes::new(Config::ms(state.config.presence.typing_interval_ms)),
            peers: HashMap::new(),
            beats: None,
            state,
        }
    }

    /// The token was issued so ([`Auth::admit`](crate::auth::Auth::admit)): once the Router
    /// knows the session, the user's gate is checked again, so that tokens revoked while
    /// the session was being set up close it as they close the others.
    pub fn issued(mut self, issued: Issued) -> Self {
        self.issued = Some(issued);
        self
    }

    fn write(&mut self, p: &Pushed, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.text(p.frame.clone());
        if let Some((conv, seq)) = &p.at {
            self.delivery.written(conv, *seq);
            self.schedule_probe(ctx);
        }
    }

    /// Probes what was written when no probe is in flight: at once when the last probe is
    /// `probe_interval_ms` old, so that the ping leaves in the same socket write as the
    /// frame just written. Otherwise a timer probes half an interval after the probe is due,
    /// unless a frame written in between carried it: under a steady trickle of messages
    /// every probe rides on a frame, and the last frames of a burst are confirmed within
    /// one and a half intervals. A probe in flight needs nothing: its pong comes back here.
    /// So a session costs a timer only while messages flow to it, and at most one probe
    /// per interval.
    fn schedule_probe(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.delivery.needs_probe() {
            return;
        }
        let (now, interval) = (Instant::now(), Config::ms(self.config.probe_interval_ms));
        let wait = self.delivery.until_due(now, interval);
        if wait.is_zero() {
            return self.probe(ctx);
        }
        if self.probe_armed {
            return;
        }
        self.probe_armed = true;
        ctx.run_later(wait + interval / 2, |act, ctx| {
            act.probe_armed = false;
            act.schedule_probe(ctx);
        });
    }

    /// A pong confirmed a probe: its positions are reported to the Router by a timer
    /// `report_interval_ms` later (what more pongs confirm meanwhile goes in the same
    /// report). Not at once: pongs come back while the Router is still fanning the message
    /// out, and a report each would wake it in the middle of that. Then what was written
    /// since is probed.
    fn confirmed(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.report_armed {
            self.report_armed = true;
            ctx.run_later(Config::ms(self.config.report_interval_ms), |act, _| {
                act.report_armed = false;
                act.report();
            });
        }
        self.schedule_probe(ctx);
    }

    /// The session closes when its token expires, `exp` seconds since the epoch.
    pub fn expiring(mut self, exp: u64) -> Self {
        self.expires = Some(exp);
        self
    }

    /// Sends a probe behind what was written, unless one is in flight or nothing is new.
    fn probe(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(payload) = self.delivery.probe(Instant::now()) {
            ctx.ping(&payload);
        }
    }

    /// Reports what the client confirmed (see [`Delivery`]) to the Router.
    fn report(&mut self) {
        let positions = self.delivery.take_confirmed();
        if positions.is_empty() {
            return;
        }
        self.router.do_send(Advance {
            user: self.user.clone(),
            session: Some(self.id),
            positions,
            read: false,
            receipt: false,
        });
    }

    fn error(&self, e: FrameError, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.text(wire::error_frame(e.cid.as_deref(), e.code, &e.msg));
    }

    /// A client frame. `send` frames are budgeted by the tenant's send rate
    /// (`limits.rate_per_sec`); every other frame, a bad one included, by the session's
    /// `ws.frames_per_sec`.
    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let frame = protocol::decode(text);
        if !matches!(frame, Ok(ClientFrame::Send(_))) && self.frames.check().is_err() {
            let e = FrameError {
                cid: None,
                code: "rate_limited",
                msg: format!(
                    "over {} frames a second; this frame was dropped",
                    self.config.frames_per_sec
                ),
            };
            return self.error(e, ctx);
        }
        match frame {
            Ok(ClientFrame::Ping) => ctx.text(wire::frame("pong", serde_json::Value::Null)),
            Ok(ClientFrame::Send(frame)) => self.on_send(frame, ctx),
            Ok(ClientFrame::Ack { conversation, seq }) => {
                if let Some(seq) = self.delivery.ack(&conversation, seq) {
                    self.advance(conversation, seq, false);
                }
            }
            Ok(ClientFrame::Read { conversation, seq }) => self.on_read(conversation, seq, ctx),
            Ok(ClientFrame::Revoke { cid, id }) => self.on_revoke(cid, id, ctx),
            Ok(ClientFrame::Typing {
                cid,
                to,
                chat_type,
                stop,
            }) => self.on_typing(cid, to, chat_type, stop, ctx),
            Err(e) => self.error(e, ctx),
        }
    }

    fn advance(&mut self, conversation: String, seq: u64, read: bool) {
        self.router.do_send(Advance {
            user: self.user.clone(),
            session: Some(self.id),
            positions: vec![(Arc::from(conversation.as_str()), seq)],
            read,
            receipt: read,
        });
    }

    /// A read receipt names at most the conversation's head, as over REST: a larger `seq`
    /// would count later messages as read and tell the peer (or the group's count) so. A
    /// conversation the user does not take part in is refused with an `error` frame, as REST
    /// refuses it.
    fn on_read(&mut self, conversation: String, seq: u64, ctx: &mut ws::WebsocketContext<Self>) {
        let (state, tenant, me, session) = (
            self.state.clone(),
            self.user.tenant.clone(),
            self.user.id,
            self.id,
        );
        let read =
            async move { conversations::read(&state, &tenant, me, &conversation, seq, Some(session)).await };
        ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
            if let Err(e) = res {
                act.error(FrameError::of(None, &e), ctx);
            }
        }));
    }

    fn on_send(&mut self, frame: SendFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let cid = frame.cid.clone();
        let chat_type = frame.chat_type;
        let options = options_json(frame.options.as_ref())
            .and_then(|o| crate::files::with_metadata(o, frame.metadata.as_ref()));
        let options = match options {
            Ok(o) => o,
            Err(e) => {
                return self.error(
                    FrameError {
                        cid,
                        code: "invalid",
                        msg: e.to_string(),
                    },
                    ctx,
                )
            }
        };
        if chat_type == ChatType::Group {
            return self.on_group_send(frame, options, ctx);
        }
        if self.peers.contains_key(&frame.to) {
            return self.dispatch(frame, chat_type, options, ctx);
        }
        // Look the peer up once; later frames wait so that sends keep their order.
        let (store, tenant, to) = (self.store.clone(), self.user.tenant.clone(), frame.to);
        let lookup = tokio::task::spawn_blocking(move || store.snapshot().and_then(|s| s.user(&tenant, to)));
        ctx.wait(lookup.into_actor(self).map(move |res, act, ctx| match res {
            Ok(Ok(Some(peer))) => {
                if act.peers.len() >= PEER_CACHE {
                    act.peers.clear();
                }
                act.peers.insert(peer.id, party(&peer));
                act.dispatch(frame, chat_type, options, ctx);
            }
            Ok(Ok(None)) => act.error(
                FrameError {
                    cid,
                    code: "not_found",
                    msg: format!("user {to} does not exist"),
                },
                ctx,
            ),
            _ => act.error(
                FrameError {
                    cid,
                    code: "storage",
                    msg: "cannot look the recipient up".into(),
                },
                ctx,
            ),
        }));
    }

    /// A typing note: forwarded through the core (which refuses it like a send) unless
    /// [`Notes`] drops it; answered only when refused.
    fn on_typing(
        &mut self,
        cid: Option<String>,
        to: u64,
        chat_type: ChatType,
        stop: bool,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let target = (chat_type == ChatType::Group, to);
        match self.typing.note(target, stop, Instant::now()) {
            Verdict::Drop => return,
            Verdict::Refused(e) => return self.error(FrameError { cid, ..e }, ctx),
            Verdict::Forward => {}
        }
        let (state, tenant, from) = (
            self.state.clone(),
            self.user.tenant.clone(),
            (self.user.id, self.role),
        );
        let forward = async move { presence::typing(&state, &tenant, from, to, chat_type, stop).await };
        ctx.spawn(forward.into_actor(self).map(move |res, act, ctx| {
            if let Err(e) = res {
                let e = FrameError::of(cid, &e);
                act.typing.refused(target, e.clone(), Instant::now());
                act.error(e, ctx);
            }
        }));
    }

    fn on_revoke(&mut self, cid: Option<String>, id: String, ctx: &mut ws::WebsocketContext<Self>) {
        let (state, tenant, by) = (self.state.clone(), self.user.tenant.clone(), self.me.clone());
        let revoke = async move { conversations::revoke(&state, &tenant, by, &id).await };
        ctx.spawn(revoke.into_actor(self).map(move |res, act, ctx| match res {
            Ok(revoked) => ctx.text(wire::ack_frame(cid.as_deref(), wire::RevokeJson::new(&revoked))),
            Err(e) => act.error(FrameError::of(cid, &e), ctx),
        }));
    }

    /// A group send: the core routes it to the group's actor.
    fn on_group_send(&mut self, frame: SendFrame, options: String, ctx: &mut ws::WebsocketContext<Self>) {
        let to = Party {
            id: frame.to,
            ..Party::default()
        };
        let msg = self.message(&frame, to, ChatType::Group, options);
        self.finish(frame.cid, msg, ctx);
    }

    fn message(&self, frame: &SendFrame, to: Party, chat_type: ChatType, options: String) -> SendMessage {
        SendMessage {
            tenant: self.user.tenant.clone(),
            from: self.me.clone(),
            from_role: self.role,
            to,
            chat_type,
            kind: frame.msg_type.clone(),
            data: content_json(&frame.data),
            options,
            cid: frame.cid.clone(),
            origin: Origin::Session(self.id),
        }
    }

    fn dispatch(
        &mut self,
        frame: SendFrame,
        chat_type: ChatType,
        options: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let to = self.peers.get(&frame.to).cloned().unwrap_or(Party {
            id: frame.to,
            ..Party::default()
        });
        let msg = self.message(&frame, to, chat_type, options);
        self.finish(frame.cid, msg, ctx);
    }

    /// Sends `msg` through the core; answers with an `ack` after its commit, or an `error`.
    /// Later frames do not wait: a conversation's order is decided where the core routes it.
    fn finish(&mut self, cid: Option<String>, msg: SendMessage, ctx: &mut ws::WebsocketContext<Self>) {
        let state = self.state.clone();
        let send = async move { messages::send(&state, msg).await };
        ctx.spawn(send.into_actor(self).map(move |res, act, ctx| match res {
            Ok(stored) => {
                ctx.text(wire::ack_frame(cid.as_deref(), wire::MessageJson::new(&stored)));
                let conv: Arc<str> = Arc::from(stored.conv.as_str());
                act.delivery.written(&conv, stored.seq);
                act.schedule_probe(ctx);
            }
            Err(e) => act.error(FrameError::of(cid, &e), ctx),
        }));
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.mailbox);
        let heartbeat = Config::ms(self.config.heartbeat_interval_ms);
        self.beats = Some(heartbeat::join(heartbeat, ctx.address().recipient()));
        if let Some(exp) = self.expires {
            // A token is refused from the second after its `exp` on.
            let left = exp
                .saturating_add(1)
                .saturating_mul(1000)
                .saturating_sub(parlor_actors::now_ms());
            ctx.run_later(std::time::Duration::from_millis(left), |_, ctx| {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Policy,
                    description: Some("token expired".into()),
                }));
                ctx.stop();
            });
        }
        let connect = Connect {
            user: self.user.clone(),
            session: self.id,
            jti: self.jti.clone(),
            addr: ctx.address().recipient(),
        };
        // Nothing else is handled until the Router knows this session.
        ctx.wait(self.router.send(connect).into_actor(self).map(|res, act, ctx| {
            if res.is_err() {
                ctx.stop();
                return;
            }
            let revoked = act.issued.and_then(|issued| {
                act.state
                    .auth
                    .admit(&act.user.tenant, act.user.id, &act.jti, issued)
                    .err()
            });
            if let Some(e) = revoked {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Policy,
                    description: Some(e.to_string()),
                }));
                ctx.stop();
                return;
            }
            let hello =
                serde_json::json!({"id": act.user.id, "app_id": act.user.tenant.as_ref(), "session": act.id});
            ctx.text(wire::frame("connected", hello));
        }));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        // Only what the client confirmed; what was written after the last pong stays pending.
        let written = self.delivery.cut();
        self.router.do_send(Disconnect {
            user: self.user.clone(),
            session: self.id,
            written,
        });
        Running::Stop
    }
}

impl Handler<Beat> for Session {
    type Result = ();

    /// The thread's heartbeat clock: a client silent for `client_timeout_ms` is cut, any
    /// other is pinged.
    fn handle(&mut self, _: Beat, ctx: &mut Self::Context) {
        if self.last_heard.elapsed() > Config::ms(self.config.client_timeout_ms) {
            tracing::debug!(session = self.id, "client timed out");
            ctx.stop();
        } else {
            ctx.ping(b"");
        }
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        match msg {
            Deliver::Push(p) => self.write(&p, ctx),
            Deliver::Replay(batch) => {
                for p in &batch {
                    self.write(p, ctx);
                }
                // The next round of a long replay waits for this one's confirmation.
                self.probe(ctx);
            }
            Deliver::Close { reason } => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Policy,
                    description: Some(reason.into()),
                }));
                ctx.stop();
            }
            Deliver::GoingAway => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("server shutting down".into()),
                }));
                ctx.stop();
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(payload)) => {
                if self.delivery.pong(&payload) {
                    self.confirmed(ctx);
                }
            }
            Ok(ws::Message::Binary(_)) => self.error(
                FrameError {
                    cid: None,
                    code: "bad_frame",
                    msg: "binary frames are not supported; send JSON text".into(),
                },
                ctx,
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) | Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Size,
                    description: Some(format!("frame is over {} bytes", self.config.max_frame_bytes)),
                }));
                ctx.stop();
            }
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "protocol error");
                ctx.stop();
            }
        }
    }
}
