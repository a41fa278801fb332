//! The Router: delivers messages, keeps the registry of online sessions (several devices
//! per user), and the offline queues.
//!
//! A send is validated against the tenant's [`Policy`], handed to the Writer (which stamps
//! its `seq` inside the commit, so the timeline has no gaps and the same `cid` stores one
//! message), and only after the commit is the sender answered and the frame, serialized
//! once, offered to every online session of the recipient and to the sender's other
//! devices with `try_send`. A session whose mailbox is full is cut; what it had not written
//! stays pending for its next connect.
//!
//! Offline queues follow the cursor model: a user's queue is the set of conversations
//! whose head is past the user's `delivered` cursor. The Router keeps that set in memory
//! for users who are away, rebuilt from the cursors at start, and pushes those
//! conversations' messages in `seq` order when a session connects. Sessions report what
//! they wrote; the Router coalesces those reports and commits them every `cursor_flush`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parlor_storage::{ChatType, MessageRecord, Role, StartupState, Store, Tx};
use tokio::sync::oneshot;

use crate::group::GroupSettings;
use crate::inbox::Inbox;
use crate::messages::*;
use crate::notices::Locale;
use crate::policy::RateLimiter;
use crate::{rules, wire, ConvKey, Policy, SendError, Tenant};

/// Sizes and periods of the Router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// How often reported cursor positions are committed.
    pub cursor_flush: Duration,
    /// The Router's own mailbox.
    pub mailbox: usize,
    /// Most live frames held for a session while its offline replay is read.
    pub hold_max: usize,
    /// The policy every tenant starts with.
    pub default_policy: Policy,
    /// How long a group actor lives without work.
    pub group_idle: Duration,
    /// The language of the system notices (group changes, revokes).
    pub locale: Locale,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            cursor_flush: Duration::from_millis(200),
            mailbox: 65_536,
            hold_max: 4096,
            default_policy: Policy::default(),
            group_idle: Duration::from_secs(600),
            locale: Locale::default(),
        }
    }
}

/// Counters of the Router (relaxed atomics, read by the metrics endpoint).
#[derive(Debug, Default)]
pub struct RouterStats {
    pub sessions_online: AtomicU64,
    /// Messages committed to a timeline (direct, group, notices), retried sends not counted.
    pub messages_accepted: AtomicU64,
    pub deliveries: AtomicU64,
    pub deferred: AtomicU64,
    pub sessions_cut: AtomicU64,
    pub replayed: AtomicU64,
    /// Group actors in memory (a group's actor stops after `group_idle` without work).
    pub groups_running: AtomicU64,
    /// Group actors started, first starts and restarts on demand alike.
    pub groups_started: AtomicU64,
    /// Per tenant, in the order the tenants were first seen; the lock is taken when a tenant
    /// appears and when the metrics are read, never per message.
    pub tenants: std::sync::Mutex<Vec<(Arc<str>, Arc<TenantCounts>)>>,
}

/// Counters of one tenant.
#[derive(Debug, Default)]
pub struct TenantCounts {
    pub sessions_online: AtomicU64,
    pub messages_accepted: AtomicU64,
}

struct SessionEntry {
    id: SessionId,
    addr: Recipient<Deliver>,
    jti: Arc<str>,
    /// While the session's offline replay is being read, live frames wait here.
    held: Option<Vec<Pushed>>,
    /// Highest seq handed to the session per conversation that its client has not
    /// confirmed reading yet.
    unreported: HashMap<Arc<str>, u64>,
    /// A replay cut short: once the session reports the first position written, the rest.
    more: Option<((Arc<str>, u64), Unfinished)>,
    /// Highest seq replayed per conversation over the rounds of the replay in progress.
    replayed: HashMap<Arc<str>, u64>,
}

impl SessionEntry {
    /// Notes a timeline frame handed to the session.
    fn hand(&mut self, p: &Pushed) {
        if let Some((conv, seq)) = &p.at {
            let e = self.unreported.entry(conv.clone()).or_insert(0);
            *e = (*e).max(*seq);
        }
    }

    /// What the session leaves unconfirmed when it goes: frames handed and not confirmed,
    /// frames held behind a replay, and the conversations of an unfinished replay.
    fn into_unconfirmed(mut self) -> HashMap<Arc<str>, u64> {
        for p in self.held.take().unwrap_or_default() {
            self.hand(&p);
        }
        let more = self.more.take().map(|m| m.1).unwrap_or_default();
        self.unreported
            .extend(more.into_iter().map(|(conv, _)| (conv, u64::MAX)));
        self.unreported
    }
}

struct TenantEntry {
    addr: Addr<Tenant>,
    counts: Arc<TenantCounts>,
    policy: Arc<Policy>,
}

/// Which conversations a replay reads.
enum ReplaySource {
    /// The conversations of the in-memory offline queue.
    Convs(Vec<Arc<str>>),
    /// Every conversation of the user whose head is past the delivered cursor.
    All,
    /// The rest of a replay cut short by `limits.offline_replay_max`: each conversation from
    /// after the given seq (from the delivered cursor where none is given).
    After(Vec<(Arc<str>, Option<u64>)>),
}

/// Conversations a replay round left for the next one, each with the last seq it read.
type Unfinished = Vec<(Arc<str>, Option<u64>)>;

/// The Router actor; see the module doc.
pub struct Router {
    store: Store,
    config: RouterConfig,
    sessions: HashMap<UserKey, Vec<SessionEntry>>,
    /// Sessions cut by the Router, waiting for their final report: what each left
    /// unconfirmed.
    closing: HashMap<SessionId, HashMap<Arc<str>, u64>>,
    pending: HashMap<UserKey, HashSet<Arc<str>>>,
    cursor_buf: HashMap<(UserKey, Arc<str>), (u64, u64)>,
    tenants: HashMap<Arc<str>, TenantEntry>,
    rates: RateLimiter,
    stats: Arc<RouterStats>,
    /// Direct sends committed and not yet fanned out, in commit order.
    committed: Arc<Inbox<Committed>>,
}

impl Router {
    /// A Router over `store`, with the offline queues of `startup`.
    pub fn new(store: Store, config: RouterConfig, startup: &StartupState) -> Self {
        let mut pending: HashMap<UserKey, HashSet<Arc<str>>> = HashMap::new();
        for (tenant, user, conv, _) in &startup.pending {
            pending
                .entry(UserKey::new(tenant, *user))
                .or_default()
                .insert(Arc::from(conv.as_str()));
        }
        Router {
            store,
            config,
            sessions: HashMap::new(),
            closing: HashMap::new(),
            pending,
            cursor_buf: HashMap::new(),
            tenants: HashMap::new(),
            rates: RateLimiter::default(),
            stats: Arc::new(RouterStats::default()),
            committed: Arc::default(),
        }
    }

    /// The counters, shared with whoever reports them.
    pub fn stats(&self) -> Arc<RouterStats> {
        self.stats.clone()
    }

    fn tenant(&mut self, name: &Arc<str>, ctx: &mut Context<Self>) -> &TenantEntry {
        if !self.tenants.contains_key(name) {
            let policy = self.config.default_policy.clone();
            let addr = Tenant::new(
                name.clone(),
                policy.clone(),
                ctx.address(),
                self.store.clone(),
                GroupSettings {
                    idle: self.config.group_idle,
                    locale: self.config.locale,
                },
                self.stats.clone(),
            )
            .start();
            let counts = Arc::new(TenantCounts::default());
            self.stats
                .tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((name.clone(), counts.clone()));
            self.tenants.insert(
                name.clone(),
                TenantEntry {
                    addr,
                    counts,
                    policy: Arc::new(policy),
                },
            );
        }
        &self.tenants[name]
    }

    /// Offers a frame to every session of `user` but `exclude`. Returns whether at least
    /// one session took it.
    fn push_user(&mut self, user: &UserKey, pushed: &Pushed, exclude: Option<SessionId>) -> bool {
        let Some(list) = self.sessions.get_mut(user) else {
            return false;
        };
        let mut taken = false;
        let mut cut = Vec::new();
        for s in list.iter_mut().filter(|s| Some(s.id) != exclude) {
            if let Some(held) = &mut s.held {
                if held.len() >= self.config.hold_max {
                    cut.push(s.id);
                } else {
                    held.push(pushed.clone());
                    taken = true;
                }
                continue;
            }
            match s.addr.try_send(Deliver::Push(pushed.clone())) {
                Ok(()) => {
                    s.hand(pushed);
                    taken = true;
                    self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => cut.push(s.id),
            }
        }
        for id in cut {
            self.cut(user, id, "slow consumer");
        }
        taken
    }

    /// Offers a timeline frame to `user`'s sessions; when none takes it, its conversation
    /// joins the user's offline queue.
    fn deliver(&mut self, user: UserKey, pushed: &Pushed, exclude: Option<SessionId>) {
        if self.push_user(&user, pushed, exclude) {
            return;
        }
        if let Some((conv, _)) = &pushed.at {
            self.pending.entry(user).or_default().insert(conv.clone());
            self.stats.deferred.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a message committed to one of `tenant`'s timelines.
    fn accepted(&self, tenant: &Arc<str>) {
        self.stats.messages_accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.tenants.get(tenant) {
            t.counts.messages_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a session that left the registry.
    fn session_gone(&self, tenant: &Arc<str>) {
        self.stats.sessions_online.fetch_sub(1, Ordering::Relaxed);
        if let Some(t) = self.tenants.get(tenant) {
            t.counts.sessions_online.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Removes a session from the registry and tells it to close. Only what its client
    /// confirmed moved the delivered cursor (see the session's probes), so everything else
    /// it was handed becomes pending again when its last report arrives.
    fn cut(&mut self, user: &UserKey, id: SessionId, reason: &'static str) {
        let Some(list) = self.sessions.get_mut(user) else {
            return;
        };
        let Some(pos) = list.iter().position(|s| s.id == id) else {
            return;
        };
        let entry = list.swap_remove(pos);
        if list.is_empty() {
            self.sessions.remove(user);
        }
        // One control message past the mailbox bound: the session must learn it is cut.
        entry.addr.do_send(Deliver::Close { reason });
        self.closing.insert(id, entry.into_unconfirmed());
        self.stats.sessions_cut.fetch_add(1, Ordering::Relaxed);
        self.session_gone(&user.tenant);
        tracing::info!(user = user.id, tenant = %user.tenant, session = id, reason, "session cut");
    }

    fn advance(&mut self, user: &UserKey, conv: &Arc<str>, seq: u64, read: bool) {
        let entry = self
            .cursor_buf
            .entry((user.clone(), conv.clone()))
            .or_insert((0, 0));
        entry.0 = entry.0.max(seq);
        if read {
            entry.1 = entry.1.max(seq);
        }
    }

    fn flush_cursors(&mut self) -> Option<tokio::sync::oneshot::Receiver<parlor_storage::Result<()>>> {
        if self.cursor_buf.is_empty() {
            return None;
        }
        let updates: Vec<_> = self.cursor_buf.drain().collect();
        let apply = updates.clone();
        match self.store.writer().submit(move |tx: &Tx<'_>| {
            for ((user, conv), (delivered, read)) in &apply {
                // Never past the head: a client's `ack` or `read` of a seq that does not exist
                // yet must not mark the later messages delivered or read.
                let head = tx.head(&user.tenant, conv)?;
                tx.advance_cursor(
                    &user.tenant,
                    user.id,
                    conv,
                    (*delivered).min(head),
                    (*read).min(head),
                )?;
            }
            Ok(())
        }) {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "cursor flush deferred");
                for (key, (d, r)) in updates {
                    let entry = self.cursor_buf.entry(key).or_insert((0, 0));
                    entry.0 = entry.0.max(d);
                    entry.1 = entry.1.max(r);
                }
                None
            }
        }
    }

    fn start_replay(
        &mut self,
        user: UserKey,
        session: SessionId,
        source: ReplaySource,
        ctx: &mut Context<Self>,
    ) {
        let limit = self.tenant(&user.tenant, ctx).policy.offline_replay_max.max(1);
        let store = self.store.clone();
        let (tenant, uid) = (user.tenant.clone(), user.id);
        let read = tokio::task::spawn_blocking(
            move || -> parlor_storage::Result<(Vec<MessageRecord>, Unfinished)> {
                let snap = store.snapshot()?;
                let convs: Vec<(Arc<str>, Option<u64>)> = match source {
                    ReplaySource::Convs(convs) => convs.into_iter().map(|c| (c, None)).collect(),
                    ReplaySource::After(convs) => convs,
                    ReplaySource::All => {
                        let mut convs = Vec::new();
                        for (conv, cursor) in snap.cursors_of(&tenant, uid)? {
                            if snap.head(&tenant, &conv)? > cursor.delivered {
                                convs.push((Arc::from(conv.as_str()), None));
                            }
                        }
                        convs
                    }
                };
                let mut out = Vec::new();
                let mut unfinished = Vec::new();
                for (conv, after) in convs {
                    let room = limit.saturating_sub(out.len());
                    if room == 0 {
                        unfinished.push((conv, after));
                        continue;
                    }
                    // No cursor: the user left (a group); nothing of it is theirs any more.
                    let Some(cursor) = snap.cursor(&tenant, uid, &conv)? else {
                        continue;
                    };
                    let from = after.unwrap_or(cursor.delivered);
                    let msgs = snap.messages_after(&tenant, &conv, from, room)?;
                    if msgs.len() == room {
                        unfinished.push((conv, msgs.last().map(|m| m.seq)));
                    }
                    out.extend(msgs);
                }
                Ok((out, unfinished))
            },
        );
        ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
            let res = match res {
                Ok(r) => r,
                Err(e) => Err(parlor_storage::Error::Unavailable(if e.is_panic() {
                    "replay read panicked"
                } else {
                    "replay read cancelled"
                })),
            };
            act.finish_replay(user, session, res, ctx);
        }));
    }

    fn finish_replay(
        &mut self,
        user: UserKey,
        session: SessionId,
        res: parlor_storage::Result<(Vec<MessageRecord>, Unfinished)>,
        ctx: &mut Context<Self>,
    ) {
        let (msgs, unfinished) = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, user = user.id, "offline replay failed");
                (Vec::new(), Vec::new())
            }
        };
        let Some(entry) = self
            .sessions
            .get_mut(&user)
            .and_then(|l| l.iter_mut().find(|s| s.id == session))
        else {
            // Gone before the read finished: everything read stays pending.
            let rest = unfinished.into_iter().map(|(c, _)| c);
            self.pending.entry(user.clone()).or_default().extend(rest);
            for m in &msgs {
                self.pending
                    .entry(user.clone())
                    .or_default()
                    .insert(Arc::from(m.conv.as_str()));
            }
            return;
        };
        let mut batch = Vec::with_capacity(msgs.len());
        let replayed = &mut entry.replayed;
        for m in &msgs {
            let conv: Arc<str> = Arc::from(m.conv.as_str());
            let reported = self
                .cursor_buf
                .get(&(user.clone(), conv.clone()))
                .map(|c| c.0)
                .unwrap_or(0);
            if m.seq <= reported {
                continue;
            }
            replayed.insert(conv.clone(), m.seq);
            batch.push(Pushed {
                frame: wire::chat_frame(m),
                at: Some((conv, m.seq)),
            });
        }
        let held = entry.held.take().unwrap_or_default();
        if unfinished.is_empty() {
            let replayed = std::mem::take(&mut entry.replayed);
            for p in held {
                let newer = match &p.at {
                    Some((conv, seq)) => replayed.get(conv).is_none_or(|max| seq > max),
                    None => true,
                };
                if newer {
                    batch.push(p);
                }
            }
        } else {
            // Live frames wait for the last round, so that nothing newer overtakes it.
            entry.held = Some(held);
        }
        // The next round starts once the session reported this one written, so that a long
        // queue is handed over a batch at a time rather than all into the session's buffer.
        let last = batch.last().and_then(|p| p.at.clone());
        match last {
            Some(last) if !unfinished.is_empty() => entry.more = Some((last, unfinished)),
            None if !unfinished.is_empty() => {
                return self.start_replay(user, session, ReplaySource::After(unfinished), ctx);
            }
            _ => {}
        }
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        for p in &batch {
            entry.hand(p);
        }
        if entry.addr.try_send(Deliver::Replay(batch)).is_err() {
            self.cut(&user, session, "slow consumer");
        } else {
            self.stats.replayed.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// The write of one direct message: deduplicate by `cid`, check the sender may send
/// ([`rules::check_direct`]), stamp the next seq, append, create the recipient's cursor,
/// and move the sender's cursors over its own message. Returns the stored message and
/// whether it is new, or the refusal.
fn append_direct(
    tx: &Tx<'_>,
    tenant: &str,
    mut m: MessageRecord,
    role: Role,
) -> parlor_storage::Result<Result<(MessageRecord, bool), SendError>> {
    if let Some(cid) = &m.cid {
        if let Some(existing) = tx.dedup(tenant, m.from_id, cid)? {
            return Ok(Ok((existing, false)));
        }
    }
    if let Err(refused) = rules::check_direct(tx, tenant, &m, role)? {
        return Ok(Err(refused));
    }
    tx.append_next(tenant, &mut m)?;
    tx.ensure_cursor(tenant, m.to_id, &m.conv)?;
    // Delivered moves over the sender's own message only when nothing before it waits.
    tx.pass_own_message(tenant, m.from_id, &m.conv, m.seq, true)?;
    Ok(Ok((m, true)))
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.mailbox);
        ctx.run_interval(self.config.cursor_flush, |act, _| {
            act.flush_cursors();
        });
        tracing::debug!(pending_users = self.pending.len(), "router started");
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.flush_cursors();
        Running::Stop
    }
}

impl Handler<Connect> for Router {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) {
        let Connect {
            user,
            session,
            jti,
            addr,
        } = msg;
        let convs: Vec<Arc<str>> = self
            .pending
            .remove(&user)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        let replay = !convs.is_empty();
        // Most users have one session: room for one, not the four a first push reserves.
        let list = self
            .sessions
            .entry(user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        list.push(SessionEntry {
            id: session,
            addr,
            jti,
            held: replay.then(Vec::new),
            unreported: HashMap::new(),
            more: None,
            replayed: HashMap::new(),
        });
        self.stats.sessions_online.fetch_add(1, Ordering::Relaxed);
        let counts = &self.tenant(&user.tenant, ctx).counts;
        counts.sessions_online.fetch_add(1, Ordering::Relaxed);
        if replay {
            self.start_replay(user, session, ReplaySource::Convs(convs), ctx);
        }
    }
}

impl Handler<Disconnect> for Router {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        let Disconnect {
            user,
            session,
            written,
        } = msg;
        for (conv, seq) in &written {
            self.advance(&user, conv, *seq, false);
        }
        let mut unreported = match self.closing.remove(&session) {
            Some(u) => u,
            None => {
                let Some(list) = self.sessions.get_mut(&user) else {
                    return;
                };
                let Some(pos) = list.iter().position(|s| s.id == session) else {
                    return;
                };
                let entry = list.swap_remove(pos);
                if list.is_empty() {
                    self.sessions.remove(&user);
                }
                self.session_gone(&user.tenant);
                entry.into_unconfirmed()
            }
        };
        let written: HashMap<_, _> = written.into_iter().collect();
        unreported.retain(|conv, seq| written.get(conv).is_none_or(|w| w < seq));
        if !unreported.is_empty() {
            self.pending
                .entry(user)
                .or_default()
                .extend(unreported.into_keys());
        }
    }
}

/// A send's commit, queued by the Writer thread in the Router's [`Inbox`] in commit order.
struct Committed {
    tenant: Arc<str>,
    origin: Origin,
    result: Result<(MessageRecord, bool), SendError>,
    reply: oneshot::Sender<Result<Arc<MessageRecord>, SendError>>,
}

impl Handler<SendMessage> for Router {
    type Result = ResponseFuture<Result<Arc<MessageRecord>, SendError>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        let policy = self.tenant(&msg.tenant, ctx).policy.clone();
        let sender = UserKey {
            tenant: msg.tenant.clone(),
            id: msg.from.id,
        };
        let checked = validate(&msg, &policy).and_then(|()| self.rates.check(&sender, &policy));
        if let Err(e) = checked {
            return Box::pin(async move { Err(e) });
        }
        let record = MessageRecord {
            id: crate::message_id(),
            seq: 0,
            conv: ConvKey::direct(msg.from.id, msg.to.id).to_string(),
            chat_type: msg.chat_type,
            from_id: msg.from.id,
            from_name: msg.from.name,
            from_avatar: msg.from.avatar,
            to_id: msg.to.id,
            to_name: msg.to.name,
            to_avatar: msg.to.avatar,
            kind: msg.kind,
            data: msg.data,
            options: msg.options,
            cid: msg.cid,
            create_time: crate::now_ms(),
            revoked: false,
            action: None,
        };
        let (reply, answer) = oneshot::channel();
        let (tenant, role, origin) = (msg.tenant.clone(), msg.from_role, msg.origin);
        let (router, inbox) = (ctx.address(), self.committed.clone());
        let submitted = self.store.writer().submit_then(
            move |tx| append_direct(tx, &tenant, record, role),
            // On the Writer thread, in commit order: queued, and the Router woken once for
            // all the commits that queue up before it drains them.
            move |res| {
                let result = res.map_err(SendError::from).and_then(|r| r);
                let first = inbox.push(Committed {
                    tenant: msg.tenant,
                    origin,
                    result,
                    reply,
                });
                if first {
                    router.do_send(DrainCommitted);
                }
            },
        );
        if let Err(e) = submitted {
            return Box::pin(async move { Err(e.into()) });
        }
        Box::pin(async move { answer.await.unwrap_or(Err(SendError::Overloaded)) })
    }
}

/// Writer → Router: commits wait in the Router's [`Inbox`].
#[derive(Message)]
#[rtype(result = "()")]
struct DrainCommitted;

impl Handler<DrainCommitted> for Router {
    type Result = ();

    fn handle(&mut self, _: DrainCommitted, _: &mut Self::Context) {
        for c in self.committed.take() {
            let answer = c.result.map(|(stored, fresh)| {
                if fresh {
                    self.accepted(&c.tenant);
                    self.fan_out(&c.tenant, &stored, c.origin);
                }
                Arc::new(stored)
            });
            let _ = c.reply.send(answer);
        }
    }
}

impl Router {
    fn fan_out(&mut self, tenant: &Arc<str>, msg: &MessageRecord, origin: Origin) {
        let pushed = Pushed {
            frame: wire::chat_frame(msg),
            at: Some((Arc::from(msg.conv.as_str()), msg.seq)),
        };
        let recipient = UserKey {
            tenant: tenant.clone(),
            id: msg.to_id,
        };
        self.deliver(recipient, &pushed, None);
        let exclude = match origin {
            Origin::Session(id) => Some(id),
            Origin::Rest => None,
        };
        let sender = UserKey {
            tenant: tenant.clone(),
            id: msg.from_id,
        };
        self.push_user(&sender, &pushed, exclude);
    }
}

fn validate(msg: &SendMessage, policy: &Policy) -> Result<(), SendError> {
    if msg.chat_type == ChatType::Group {
        return Err(SendError::Invalid("group messages go to the group".into()));
    }
    if msg.to.id == msg.from.id {
        return Err(SendError::Invalid("cannot send a message to yourself".into()));
    }
    policy.check_content(msg)
}

impl Handler<Advance> for Router {
    type Result = ();

    fn handle(&mut self, msg: Advance, ctx: &mut Self::Context) {
        for (conv, seq) in &msg.positions {
            self.advance(&msg.user, conv, *seq, msg.read);
            if msg.read {
                self.read_receipt(&msg.user, conv, *seq);
            }
        }
        let Some(id) = msg.session else { return };
        if let Some(entry) = self
            .sessions
            .get_mut(&msg.user)
            .and_then(|l| l.iter_mut().find(|s| s.id == id))
        {
            for (conv, seq) in &msg.positions {
                if entry.unreported.get(conv).is_some_and(|pushed| pushed <= seq) {
                    entry.unreported.remove(conv);
                }
            }
            let reached = entry.more.as_ref().is_some_and(|((conv, last), _)| {
                msg.positions.iter().any(|(c, seq)| c == conv && seq >= last)
            });
            if reached {
                if let Some((_, rest)) = entry.more.take() {
                    self.start_replay(msg.user, id, ReplaySource::After(rest), ctx);
                }
            }
        }
    }
}

impl Handler<ReplayOffline> for Router {
    type Result = usize;

    fn handle(&mut self, msg: ReplayOffline, ctx: &mut Self::Context) -> usize {
        self.pending.remove(&msg.user);
        let ids: Vec<SessionId> = match self.sessions.get_mut(&msg.user) {
            Some(list) => list
                .iter_mut()
                .filter(|s| s.held.is_none())
                .map(|s| {
                    s.held = Some(Vec::new());
                    s.id
                })
                .collect(),
            None => Vec::new(),
        };
        for &id in &ids {
            self.start_replay(msg.user.clone(), id, ReplaySource::All, ctx);
        }
        ids.len()
    }
}

impl Handler<Logout> for Router {
    type Result = ();

    fn handle(&mut self, msg: Logout, _: &mut Self::Context) {
        let ids: Vec<SessionId> = self
            .sessions
            .get(&msg.user)
            .map(|l| l.iter().filter(|s| s.jti == msg.jti).map(|s| s.id).collect())
            .unwrap_or_default();
        for id in ids {
            self.cut(&msg.user, id, "logged out");
        }
    }
}

impl Router {
    /// Tells the other side of a direct conversation, or the group, that `user` read it.
    fn read_receipt(&mut self, user: &UserKey, conv: &Arc<str>, seq: u64) {
        match ConvKey::parse(conv) {
            Some(key @ ConvKey::Direct { .. }) => {
                let Some(peer) = key.peer_of(user.id) else {
                    return;
                };
                let frame = wire::read_frame(conv, seq, user.id, None);
                let peer = UserKey {
                    tenant: user.tenant.clone(),
                    id: peer,
                };
                self.push_user(&peer, &Pushed { frame, at: None }, None);
            }
            Some(ConvKey::Group(group)) => {
                if let Some(t) = self.tenants.get(&user.tenant) {
                    t.addr.do_send(GroupRead {
                        group,
                        user: user.id,
                        seq,
                    });
                }
            }
            None => {}
        }
    }
}

impl Handler<Revoke> for Router {
    type Result = ResponseActFuture<Self, Result<Arc<MessageRecord>, SendError>>;

    fn handle(&mut self, msg: Revoke, ctx: &mut Self::Context) -> Self::Result {
        let window = self.tenant(&msg.tenant, ctx).policy.revoke_window_secs;
        let locale = self.config.locale;
        let (tenant, by, id) = (msg.tenant.clone(), msg.by, msg.id);
        let submitted = self
            .store
            .writer()
            .submit(move |tx| crate::revoke::revoke(tx, &tenant, &by, &id, window, locale));
        let rx = match submitted {
            Ok(rx) => rx,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let tenant = msg.tenant;
        Box::pin(
            async move {
                match rx.await {
                    Ok(res) => res.map_err(SendError::from).and_then(|r| r),
                    Err(_) => Err(SendError::Overloaded),
                }
            }
            .into_actor(self)
            .map(move |res, act, _| {
                let (revoked, notice) = res?;
                let (a, b) = ConvKey::parse(&notice.conv)
                    .and_then(|k| k.pair())
                    .ok_or_else(|| SendError::Invalid("a group message is revoked in its group".into()))?;
                let conv: Arc<str> = Arc::from(notice.conv.as_str());
                let pushed = Pushed {
                    frame: wire::chat_frame(&notice),
                    at: Some((conv.clone(), notice.seq)),
                };
                for id in [a, b] {
                    let user = UserKey {
                        tenant: tenant.clone(),
                        id,
                    };
                    act.deliver(user, &pushed, None);
                }
                Ok(Arc::new(revoked))
            }),
        )
    }
}

impl Handler<FanOut> for Router {
    type Result = ();

    fn handle(&mut self, msg: FanOut, _: &mut Self::Context) {
        self.accepted(&msg.tenant);
        for &member in msg.members.iter() {
            let user = UserKey {
                tenant: msg.tenant.clone(),
                id: member,
            };
            self.deliver(user, &msg.pushed, msg.exclude);
        }
    }
}

impl Handler<Notify> for Router {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Self::Context) {
        self.push_user(
            &msg.user,
            &Pushed {
                frame: msg.frame,
                at: None,
            },
            None,
        );
    }
}

impl Handler<OnlineCount> for Router {
    type Result = usize;

    fn handle(&mut self, msg: OnlineCount, _: &mut Self::Context) -> usize {
        self.sessions.get(&msg.user).map_or(0, Vec::len)
    }
}

impl Handler<PolicyChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: PolicyChanged, _: &mut Self::Context) {
        if let Some(entry) = self.tenants.get_mut(&msg.tenant) {
            entry.policy = msg.policy;
        }
    }
}

impl Handler<TenantOf> for Router {
    type Result = MessageResult<TenantOf>;

    fn handle(&mut self, TenantOf(name): TenantOf, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.tenant(&name, ctx).addr.clone())
    }
}

/// Commit every reported cursor position now; answers after the commit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushCursors;

impl Handler<FlushCursors> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushCursors, _: &mut Self::Context) -> Self::Result {
        let rx = self.flush_cursors();
        Box::pin(async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        })
    }
}
