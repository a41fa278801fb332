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
use parlor_storage::{MessageRecord, StartupState, Store};

use crate::commit::{self, Commits};
use crate::group::GroupSettings;
use crate::messages::*;
use crate::notices::Locale;
use crate::policy::RateLimiter;
use crate::{wire, ConvKey, Policy, SendError, Tenant};

mod cursors;
mod direct;
mod presence;
mod replay;
mod sessions;

pub use cursors::FlushCursors;
use cursors::{CursorBuf, Receipts};
use direct::SendNote;
use presence::{Away, Change};
use replay::ReplaySource;
use sessions::SessionEntry;

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
    /// How long a user whose last session went still counts as online; `None` turns
    /// presence off (see `presence`).
    pub presence_grace: Option<Duration>,
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
            presence_grace: Some(Duration::from_secs(5)),
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
    /// Presence transitions (online, offline after the grace) told to an audience, counted
    /// once the audience was read and its frames (if the transition still held) pushed.
    pub presence_changes: AtomicU64,
    /// `presence` frames handed to sessions.
    pub presence_frames: AtomicU64,
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

struct TenantEntry {
    addr: Addr<Tenant>,
    counts: Arc<TenantCounts>,
    policy: Arc<Policy>,
}

/// The Router actor; see the module doc.
pub struct Router {
    store: Store,
    config: RouterConfig,
    sessions: HashMap<UserKey, Vec<SessionEntry>>,
    /// Sessions cut by the Router, waiting for their final report: what each left
    /// unconfirmed.
    closing: HashMap<SessionId, HashMap<Arc<str>, u64>>,
    pending: HashMap<UserKey, HashSet<Arc<str>>>,
    cursor_buf: CursorBuf,
    /// Direct read receipts waiting for the next receipt round (see `cursors`).
    receipts: Receipts,
    tenants: HashMap<Arc<str>, TenantEntry>,
    rates: RateLimiter,
    stats: Arc<RouterStats>,
    /// Direct sends committed and not yet fanned out, in commit order.
    committed: Commits<SendNote, (MessageRecord, bool), Arc<MessageRecord>>,
    /// Users within the presence grace after their last session went.
    away: Away,
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
            cursor_buf: CursorBuf::default(),
            receipts: Receipts::default(),
            tenants: HashMap::new(),
            rates: RateLimiter::default(),
            stats: Arc::new(RouterStats::default()),
            committed: Commits::default(),
            away: Away::default(),
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
            if let Some(held) = &mut s.ledger.held {
                if held.len() >= self.config.hold_max {
                    if pushed.at.is_some() {
                        cut.push(s.id);
                    }
                } else {
                    held.push(pushed.clone());
                    taken = true;
                }
                continue;
            }
            match s.addr.try_send(Deliver::Push(pushed.clone())) {
                Ok(()) => {
                    s.ledger.hand(pushed);
                    taken = true;
                    self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
                }
                // A frame outside any timeline (a read receipt, a notice) is dropped for a
                // session that cannot take it: what others send that way never gets a
                // session cut. A timeline frame cuts it; its messages wait for the next
                // connection.
                Err(_) if pushed.at.is_none() => {
                    tracing::debug!(user = user.id, session = s.id, "frame dropped: mailbox full");
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
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.mailbox);
        ctx.run_interval(self.config.cursor_flush, |act, _| {
            act.flush_cursors();
        });
        if let Some(grace) = self.config.presence_grace {
            let sweep = (grace / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
            ctx.run_interval(sweep, |act, ctx| act.sweep_away(ctx));
        }
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
        let mut convs: HashSet<Arc<str>> = self.pending.remove(&user).unwrap_or_default();
        // What the user's other sessions were handed and have not confirmed is not
        // delivered yet: the new session reads it too (from the delivered cursor, so what
        // they confirm by then is not sent twice), or it would wait for a later connect if
        // they went without confirming it.
        for other in self.sessions.get(&user).into_iter().flatten() {
            convs.extend(other.ledger.outstanding().cloned());
        }
        let convs: Vec<Arc<str>> = convs.into_iter().collect();
        let replay = !convs.is_empty();
        let first = !self.sessions.contains_key(&user);
        // Most users have one session: room for one, not the four a first push reserves.
        let list = self
            .sessions
            .entry(user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        list.push(SessionEntry::new(session, addr, jti, replay));
        self.stats.sessions_online.fetch_add(1, Ordering::Relaxed);
        let counts = &self.tenant(&user.tenant, ctx).counts;
        counts.sessions_online.fetch_add(1, Ordering::Relaxed);
        if first && !self.away.back(&user) {
            self.announce(user.clone(), Change::Online, ctx);
        }
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
            self.cursor_buf.advance(&user, conv, *seq, false);
        }
        let unconfirmed = match self.closing.remove(&session) {
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
                    self.last_session_gone(&user);
                }
                self.session_gone(&user.tenant);
                entry.ledger.into_unconfirmed()
            }
        };
        let pending = sessions::still_pending(unconfirmed, written);
        if !pending.is_empty() {
            self.pending.entry(user).or_default().extend(pending);
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
                .filter(|s| s.ledger.held.is_none())
                .map(|s| {
                    s.ledger.held = Some(Vec::new());
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
        self.cut_tokens(&msg.user, |jti| *jti == msg.jti, "logged out");
    }
}

impl Handler<Kick> for Router {
    type Result = ();

    fn handle(&mut self, msg: Kick, _: &mut Self::Context) {
        self.cut_tokens(&msg.user, |jti| msg.keep.as_ref() != Some(jti), msg.reason);
        if msg.forget {
            self.pending.remove(&msg.user);
        }
    }
}

impl Handler<Revoke> for Router {
    type Result = ResponseActFuture<Self, Result<Arc<Revoked>, SendError>>;

    fn handle(&mut self, msg: Revoke, ctx: &mut Self::Context) -> Self::Result {
        let window = self.tenant(&msg.tenant, ctx).policy.revoke_window_secs;
        let locale = self.config.locale;
        let (tenant, by, id) = (msg.tenant.clone(), msg.by, msg.id);
        let submitted = commit::submit(self.store.writer(), move |tx| {
            crate::revoke::revoke(tx, &tenant, &by, &id, window, locale)
        });
        let committed = match submitted {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let tenant = msg.tenant;
        Box::pin(committed.into_actor(self).map(move |res, act, _| {
            let (message, notice) = res?;
            let (a, b) = ConvKey::parse(&notice.conv)
                .and_then(|k| k.pair())
                .ok_or_else(|| SendError::Invalid("a group message is revoked in its group".into()))?;
            let revoked = Revoked {
                message,
                notice,
                group: None,
            };
            let pushed = Pushed {
                frame: wire::revoke_frame(&revoked),
                at: Some((Arc::from(revoked.notice.conv.as_str()), revoked.notice.seq)),
            };
            for id in [a, b] {
                let user = UserKey {
                    tenant: tenant.clone(),
                    id,
                };
                act.deliver(user, &pushed, None);
            }
            Ok(Arc::new(revoked))
        }))
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

impl Handler<CloseAll> for Router {
    type Result = usize;

    /// One control message past each session's mailbox bound, as for a cut: every session
    /// must learn it. Each reports its confirmed positions as it stops.
    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) -> usize {
        let mut told = 0;
        for list in self.sessions.values() {
            for s in list {
                s.addr.do_send(Deliver::GoingAway);
                told += 1;
            }
        }
        told
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

impl Handler<OnlineOf> for Router {
    type Result = MessageResult<OnlineOf>;

    fn handle(&mut self, msg: OnlineOf, _: &mut Self::Context) -> Self::Result {
        let online = msg
            .ids
            .iter()
            .map(|&id| {
                self.counts_online(&UserKey {
                    tenant: msg.tenant.clone(),
                    id,
                })
            })
            .collect();
        MessageResult(online)
    }
}

impl Handler<PresenceShown> for Router {
    type Result = ();

    fn handle(&mut self, msg: PresenceShown, ctx: &mut Self::Context) {
        self.announce(msg.user, Change::Shown, ctx);
    }
}

impl Handler<Ephemeral> for Router {
    type Result = ();

    fn handle(&mut self, msg: Ephemeral, _: &mut Self::Context) {
        let ids = msg.users.iter().copied().filter(|&id| id != msg.skip);
        self.push_to(&msg.tenant, ids, &msg.frame);
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
