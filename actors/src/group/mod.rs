//! One actor per active group: it owns the membership in memory, decides who may send and
//! who may change the group, submits the writes (the Writer stamps each message's `seq`
//! in the group's one timeline, `g:<id>`), and after each commit hands the message — its
//! frame serialized once — with the member list (shared, not copied) to the Router, which
//! owns the registry of sessions. Every membership change is also a `systemNotice`
//! message in the timeline, so every client converges on the same membership.
//!
//! A member sees the history after the moment they joined. A removed member stops
//! receiving at once: removals take effect in memory when they are submitted. The actor
//! stops after `group_idle` without work and is started again by its Tenant on demand,
//! from redb.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parlor_storage::{ChatType, GroupRecord, JoinRequest, MemberRecord, MessageRecord, Store};
use serde_json::json;

use crate::commit::{self, Commits, DrainCommitted};

mod plan;
mod write;

use crate::messages::*;
use crate::notices::Locale;
use crate::policy::RateLimiter;
use crate::{wire, ConvKey, Policy, Router, SendError, Tenant};
pub use plan::{plan, Change, Facts, Notice};
pub use write::notice_record;
use write::{append_group, apply};

/// How many recent messages a group remembers the senders of, for read receipts.
const RECENT: usize = 1024;

/// What every group actor of the server shares.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// How long the actor lives without work.
    pub idle: Duration,
    /// The language of the notices it writes.
    pub locale: Locale,
}

/// What a group actor starts from.
pub struct GroupState {
    pub record: GroupRecord,
    pub members: Vec<(u64, MemberRecord)>,
    pub requests: Vec<JoinRequest>,
    /// Each member's read position.
    pub reads: Vec<(u64, u64)>,
}

/// The actor; see the module doc.
pub struct Group {
    tenant: Arc<str>,
    record: GroupRecord,
    conv: Arc<str>,
    members: HashMap<u64, MemberRecord>,
    member_ids: Arc<[u64]>,
    requests: HashSet<u64>,
    /// Each member's read position, for the counts of group read receipts.
    reads: HashMap<u64, u64>,
    /// `(seq, sender)` of the latest messages, to know whom a read receipt concerns.
    recent: VecDeque<(u64, u64)>,
    store: Store,
    router: Addr<Router>,
    tenant_addr: Addr<Tenant>,
    policy: Arc<Policy>,
    rates: RateLimiter,
    idle: Duration,
    locale: Locale,
    last_active: Instant,
    in_flight: usize,
    /// Sends committed and not yet fanned out, in commit order, each with the sending
    /// session (which gets an `ack` instead of the push).
    committed: Commits<Option<SessionId>, (MessageRecord, bool), Arc<MessageRecord>>,
}

impl Group {
    pub fn new(
        tenant: Arc<str>,
        state: GroupState,
        store: Store,
        router: Addr<Router>,
        tenant_addr: Addr<Tenant>,
        policy: Arc<Policy>,
        settings: GroupSettings,
    ) -> Self {
        let conv: Arc<str> = Arc::from(ConvKey::Group(state.record.id).to_string().as_str());
        let members: HashMap<u64, MemberRecord> = state.members.into_iter().collect();
        let mut group = Group {
            tenant,
            record: state.record,
            conv,
            members,
            member_ids: Arc::from(Vec::new()),
            requests: state.requests.iter().map(|r| r.user).collect(),
            reads: state.reads.into_iter().collect(),
            recent: VecDeque::with_capacity(RECENT),
            store,
            router,
            tenant_addr,
            policy,
            rates: RateLimiter::default(),
            idle: settings.idle,
            locale: settings.locale,
            last_active: Instant::now(),
            in_flight: 0,
            committed: Commits::default(),
        };
        group.refresh_ids();
        group
    }

    fn refresh_ids(&mut self) {
        let mut ids: Vec<u64> = self.members.keys().copied().collect();
        ids.sort_unstable();
        self.member_ids = Arc::from(ids);
    }

    fn fan_out(&mut self, m: &MessageRecord, exclude: Option<SessionId>, extra: &[u64]) {
        self.push(m, wire::chat_frame(m), exclude, extra);
    }

    /// Hands `frame`, the push of the timeline entry `m`, to the Router for the members
    /// (and `extra`).
    fn push(&mut self, m: &MessageRecord, frame: wire::Frame, exclude: Option<SessionId>, extra: &[u64]) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((m.seq, m.from_id));
        if let Some(r) = self.reads.get_mut(&m.from_id) {
            *r = (*r).max(m.seq);
        }
        let pushed = Pushed {
            frame,
            at: Some((self.conv.clone(), m.seq)),
        };
        let members = if extra.is_empty() {
            self.member_ids.clone()
        } else {
            let mut all: Vec<u64> = self
                .member_ids
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect();
            all.sort_unstable();
            all.dedup();
            Arc::from(all)
        };
        self.router.do_send(FanOut {
            tenant: self.tenant.clone(),
            members,
            pushed,
            exclude,
        });
    }
}

impl Actor for Group {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let check = (self.idle / 4).max(Duration::from_millis(50));
        ctx.run_interval(check, |act, ctx| {
            if act.in_flight == 0 && act.last_active.elapsed() >= act.idle {
                ctx.stop();
            }
        });
        tracing::debug!(
            group = self.record.id,
            members = self.members.len(),
            "group started"
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.tenant_addr.do_send(GroupStopped(self.record.id));
    }
}

impl Handler<SendMessage> for Group {
    type Result = ResponseFuture<Result<Arc<MessageRecord>, SendError>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let sender = UserKey {
            tenant: self.tenant.clone(),
            id: msg.from.id,
        };
        let checked = if !self.members.contains_key(&msg.from.id) {
            Err(SendError::Forbidden("you are not a member of this group".into()))
        } else {
            self.policy
                .check_content(&msg)
                .and_then(|()| self.rates.check(&sender, &self.policy))
        };
        if let Err(e) = checked {
            return Box::pin(async move { Err(e) });
        }
        let exclude = match msg.origin {
            Origin::Session(id) => Some(id),
            Origin::Rest => None,
        };
        let to = Party {
            id: self.record.id,
            name: self.record.name.clone(),
            avatar: self.record.avatar.clone(),
        };
        let record = msg.into_record(self.conv.to_string(), ChatType::Group, to);
        let tenant = self.tenant.clone();
        let hooks = crate::hooks::endpoints(&self.policy.webhooks, crate::hooks::MESSAGE_SENT);
        let members = self.member_ids.clone();
        // On the Writer thread: queued, the Group woken once per run of commits.
        let answer = self
            .committed
            .submit(self.store.writer(), ctx.address(), exclude, move |tx| {
                append_group(tx, &tenant, record, (&hooks, &members)).map(Ok)
            });
        match answer {
            Ok(answer) => {
                self.in_flight += 1;
                Box::pin(answer)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<GroupTyping> for Group {
    type Result = Result<(), SendError>;

    /// A typing note goes to the members' sessions online, never to the store: no activity
    /// that keeps the actor alive.
    fn handle(&mut self, msg: GroupTyping, _: &mut Self::Context) -> Self::Result {
        if !self.members.contains_key(&msg.from) {
            return Err(SendError::Forbidden("you are not a member of this group".into()));
        }
        // A note the Router has no room for now is dropped: the next one replaces it.
        let _ = self.router.try_send(Ephemeral {
            tenant: self.tenant.clone(),
            users: self.member_ids.clone(),
            skip: msg.from,
            frame: msg.frame,
        });
        Ok(())
    }
}

impl Handler<DrainCommitted> for Group {
    type Result = ();

    fn handle(&mut self, _: DrainCommitted, _: &mut Self::Context) {
        for c in self.committed.take() {
            self.in_flight -= 1;
            c.answer(|exclude, (stored, fresh)| {
                if fresh {
                    self.fan_out(&stored, exclude, &[]);
                }
                Arc::new(stored)
            });
        }
    }
}

impl Handler<GroupCommand> for Group {
    type Result = ResponseActFuture<Self, Result<GroupOutcome, SendError>>;

    fn handle(&mut self, cmd: GroupCommand, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let by = cmd.by;
        let facts = Facts {
            record: &self.record,
            members: &self.members,
            requests: &self.requests,
            max_members: self.policy.max_group_members,
            locale: self.locale,
            now: crate::now_ms(),
        };
        let (change, outcome) = match plan(&facts, &by, cmd.op) {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        // Removals take effect at once: no message reaches a leaver after this point.
        let leavers = change.leavers.clone();
        let removed: Vec<(u64, MemberRecord)> = leavers
            .iter()
            .filter_map(|u| self.members.remove(u).map(|m| (*u, m)))
            .collect();
        for user in &leavers {
            self.reads.remove(user);
        }
        self.refresh_ids();
        let joiners = change.joiners.clone();
        let new_record = change.record.clone();
        let request = change.request.as_ref().map(|r| r.user);
        let dropped = change.drop_request;
        let nickname = change.nickname.clone();
        let notice = change
            .notice
            .as_ref()
            .map(|n| notice_record(&self.record, &self.conv, &by, n.action, n.text.clone()));
        let (tenant, gid, conv) = (self.tenant.clone(), self.record.id, self.conv.clone());
        let by_id = by.id;
        let submitted = commit::submit(self.store.writer(), move |tx| {
            apply(tx, &tenant, (gid, &conv), by_id, change, notice).map(Ok)
        });
        let committed = match submitted {
            Ok(c) => c,
            Err(e) => {
                self.members.extend(removed);
                self.refresh_ids();
                return Box::pin(fut::ready(Err(e)));
            }
        };
        self.in_flight += 1;
        Box::pin(
            committed
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.in_flight -= 1;
                let notice = match res {
                    Ok(n) => n,
                    Err(e) => {
                        act.members.extend(removed);
                        act.refresh_ids();
                        return Err(e);
                    }
                };
                if let Some(r) = new_record {
                    act.record = r;
                }
                let head = notice.as_ref().map(|n| n.seq.saturating_sub(1)).unwrap_or(0);
                for (user, inviter) in joiners {
                    act.reads.insert(user, head);
                    act.members.insert(
                        user,
                        MemberRecord { row_id: 0, nickname: String::new(), joined_seq: head, joined_ms: crate::now_ms(), inviter },
                    );
                }
                if let Some((user, name)) = nickname {
                    if let Some(m) = act.members.get_mut(&user) {
                        m.nickname = name;
                    }
                }
                if let Some(user) = request {
                    act.requests.insert(user);
                    let frame = wire::frame(
                        "systemNotice",
                        json!({"actionType": "groupJoinRequest", "chatType": "group", "group_id": act.record.id,
                               "group_name": act.record.name, "user_id": user, "from_id": by.id, "from_name": by.name,
                               "create_time": crate::now_ms()}),
                    );
                    act.router.do_send(Notify { user: UserKey { tenant: act.tenant.clone(), id: act.record.owner }, frame });
                }
                if let Some(user) = dropped {
                    act.requests.remove(&user);
                }
                act.refresh_ids();
                if let Some(n) = &notice {
                    act.fan_out(n, None, &leavers);
                }
                if outcome == GroupOutcome::Dissolved {
                    ctx.stop();
                }
                Ok(outcome)
            }),
        )
    }
}

impl Handler<GroupRead> for Group {
    type Result = ();

    fn handle(&mut self, msg: GroupRead, _: &mut Self::Context) {
        let Some(read) = self.reads.get_mut(&msg.user) else {
            return;
        };
        let before = *read;
        if msg.seq <= before {
            return;
        }
        *read = msg.seq;
        let count = self.reads.values().filter(|r| **r >= msg.seq).count();
        let mut senders: Vec<u64> = self
            .recent
            .iter()
            .filter(|(seq, from)| *seq > before && *seq <= msg.seq && *from != msg.user)
            .map(|(_, from)| *from)
            .collect();
        senders.sort_unstable();
        senders.dedup();
        let frame = wire::read_frame(&self.conv, msg.seq, msg.user, Some(count));
        for sender in senders {
            let user = UserKey {
                tenant: self.tenant.clone(),
                id: sender,
            };
            self.router.do_send(Notify {
                user,
                frame: frame.clone(),
            });
        }
    }
}

impl Handler<Revoke> for Group {
    type Result = ResponseActFuture<Self, Result<Arc<Revoked>, SendError>>;

    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        if !self.members.contains_key(&msg.by.id) {
            return Box::pin(fut::ready(Err(SendError::Forbidden(
                "you are not a member of this group".into(),
            ))));
        }
        let (window, locale) = (self.policy.revoke_window_secs, self.locale);
        let (tenant, by, id, conv) = (self.tenant.clone(), msg.by, msg.id, self.conv.clone());
        let submitted = commit::submit(self.store.writer(), move |tx| {
            // Check before any write: only a message of this group is revoked here.
            match tx.message_by_id(&tenant, &id)? {
                Some(m) if m.conv == *conv => crate::revoke::revoke(tx, &tenant, &by, &id, window, locale),
                _ => Ok(Err(SendError::NotFound(format!(
                    "message {id} is not in this group"
                )))),
            }
        });
        let committed = match submitted {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        self.in_flight += 1;
        Box::pin(committed.into_actor(self).map(|res, act, _| {
            act.in_flight -= 1;
            let (message, notice) = res?;
            let revoked = Revoked {
                message,
                notice,
                group: Some(act.record.clone()),
            };
            act.push(&revoked.notice, wire::revoke_frame(&revoked), None, &[]);
            Ok(Arc::new(revoked))
        }))
    }
}

impl Handler<PolicyChanged> for Group {
    type Result = ();

    fn handle(&mut self, msg: PolicyChanged, _: &mut Self::Context) {
        self.policy = msg.policy;
    }
}
