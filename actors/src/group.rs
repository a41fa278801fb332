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
use parlor_storage::{ChatType, Cursor, GroupRecord, JoinRequest, MemberRecord, MessageRecord, Store, Tx};
use serde_json::json;
use tokio::sync::oneshot;

use crate::inbox::Inbox;
use crate::messages::*;
use crate::notices::{self, Locale};
use crate::policy::RateLimiter;
use crate::{wire, ConvKey, Policy, Router, SendError, Tenant};

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
    /// Sends committed and not yet fanned out, in commit order.
    committed: Arc<Inbox<Committed>>,
}

/// The writes of one group change, applied in one transaction.
struct Change {
    record: Option<GroupRecord>,
    joiners: Vec<(u64, u64)>,
    leavers: Vec<u64>,
    request: Option<JoinRequest>,
    drop_request: Option<u64>,
    nickname: Option<(u64, String)>,
    notice: Option<MessageRecord>,
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
            committed: Arc::default(),
        };
        group.refresh_ids();
        group
    }

    fn refresh_ids(&mut self) {
        let mut ids: Vec<u64> = self.members.keys().copied().collect();
        ids.sort_unstable();
        self.member_ids = Arc::from(ids);
    }

    fn is_owner(&self, user: u64) -> bool {
        self.record.owner == user
    }

    fn notice(&self, by: &Party, action: &str, text: String) -> MessageRecord {
        notice_record(&self.record, &self.conv, by, action, text)
    }

    fn fan_out(&mut self, m: &MessageRecord, exclude: Option<SessionId>, extra: &[u64]) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((m.seq, m.from_id));
        if let Some(r) = self.reads.get_mut(&m.from_id) {
            *r = (*r).max(m.seq);
        }
        let pushed = Pushed {
            frame: wire::chat_frame(m),
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

    fn room_for(&self, more: usize) -> Result<(), SendError> {
        if self.members.len() + more > self.policy.max_group_members {
            return Err(SendError::Full {
                limit: self.policy.max_group_members,
            });
        }
        Ok(())
    }

    fn name_of(&self, user: &Party) -> String {
        user.name.clone()
    }

    /// Decides a command: the writes it makes and what it answers.
    fn plan(&mut self, by: &Party, op: GroupOp) -> Result<(Change, GroupOutcome), SendError> {
        let member = self.members.contains_key(&by.id);
        let owner = self.is_owner(by.id);
        let only_owner = |what: &str| SendError::Forbidden(format!("only the group owner may {what}"));
        let mut change = Change {
            record: None,
            joiners: Vec::new(),
            leavers: Vec::new(),
            request: None,
            drop_request: None,
            nickname: None,
            notice: None,
        };
        let now = crate::now_ms();
        let outcome = match op {
            GroupOp::Rename(name) => {
                if !owner {
                    return Err(only_owner("rename the group"));
                }
                let mut r = self.record.clone();
                r.name = name.clone();
                r.updated_ms = now;
                change.record = Some(r);
                change.notice = Some(self.notice(
                    by,
                    "groupRename",
                    notices::group_renamed(self.locale, &by.name, &name),
                ));
                GroupOutcome::Done
            }
            GroupOp::SetRemark(remark) => {
                if !owner {
                    return Err(only_owner("change the group notice"));
                }
                let mut r = self.record.clone();
                r.remark = remark.clone();
                r.updated_ms = now;
                change.record = Some(r);
                change.notice = Some(self.notice(
                    by,
                    "groupRemark",
                    notices::group_remark(self.locale, &by.name, &remark),
                ));
                GroupOutcome::Done
            }
            GroupOp::SetNickname(nickname) => {
                if !member {
                    return Err(SendError::Forbidden("you are not a member of this group".into()));
                }
                change.nickname = Some((by.id, nickname));
                GroupOutcome::Done
            }
            GroupOp::SetJoinRule(rule) => {
                if !owner {
                    return Err(only_owner("change the join setting"));
                }
                let mut r = self.record.clone();
                r.invite_confirm = rule;
                r.updated_ms = now;
                change.record = Some(r);
                GroupOutcome::Done
            }
            GroupOp::Invite { user, desc } => {
                if self.members.contains_key(&user.id) {
                    return Err(SendError::Conflict(format!(
                        "user {} is already a member",
                        user.id
                    )));
                }
                let asking_self = user.id == by.id;
                if !member && !asking_self {
                    return Err(SendError::Forbidden("only members may invite".into()));
                }
                if owner || self.record.invite_confirm == 0 {
                    self.room_for(1)?;
                    let inviter = if asking_self { 0 } else { by.id };
                    change.joiners.push((user.id, inviter));
                    if self.requests.contains(&user.id) {
                        change.drop_request = Some(user.id);
                    }
                    let text = if asking_self {
                        notices::joined(self.locale, &self.name_of(&user))
                    } else {
                        notices::invited(self.locale, &by.name, &self.name_of(&user))
                    };
                    change.notice = Some(self.notice(by, "groupJoin", text));
                    GroupOutcome::Joined
                } else {
                    if self.requests.contains(&user.id) {
                        return Err(SendError::Conflict(format!(
                            "user {} already waits for approval",
                            user.id
                        )));
                    }
                    change.request = Some(JoinRequest {
                        user: user.id,
                        inviter: if asking_self { 0 } else { by.id },
                        desc,
                        created_ms: now,
                    });
                    GroupOutcome::Requested
                }
            }
            GroupOp::Approve { user, agree } => {
                if !owner {
                    return Err(only_owner("answer join requests"));
                }
                if !self.requests.contains(&user) {
                    return Err(SendError::NotFound(format!(
                        "user {user} has no pending request to join"
                    )));
                }
                change.drop_request = Some(user);
                if agree {
                    if self.members.contains_key(&user) {
                        return Ok((change, GroupOutcome::Done));
                    }
                    self.room_for(1)?;
                    change.joiners.push((user, by.id));
                    change.notice =
                        Some(self.notice(by, "groupJoin", notices::approved(self.locale, &by.name, user)));
                    GroupOutcome::Joined
                } else {
                    GroupOutcome::Done
                }
            }
            GroupOp::Remove(user) => {
                if !owner {
                    return Err(only_owner("remove members"));
                }
                if user == by.id {
                    return Err(SendError::Invalid(
                        "the owner cannot remove themselves; dissolve the group".into(),
                    ));
                }
                if !self.members.contains_key(&user) {
                    return Err(SendError::NotFound(format!("user {user} is not a member")));
                }
                change.leavers.push(user);
                change.notice =
                    Some(self.notice(by, "groupRemove", notices::removed(self.locale, &by.name, user)));
                GroupOutcome::Done
            }
            GroupOp::Leave => {
                if !member {
                    return Err(SendError::Forbidden("you are not a member of this group".into()));
                }
                if owner {
                    let mut r = self.record.clone();
                    r.status = 0;
                    r.updated_ms = now;
                    change.record = Some(r);
                    change.leavers = self.member_ids.to_vec();
                    change.notice =
                        Some(self.notice(by, "groupDissolve", notices::dissolved(self.locale, &by.name)));
                    GroupOutcome::Dissolved
                } else {
                    change.leavers.push(by.id);
                    change.notice = Some(self.notice(by, "groupQuit", notices::quit(self.locale, &by.name)));
                    GroupOutcome::Quit
                }
            }
            GroupOp::ReplaceMembers(list) => {
                if !owner {
                    return Err(only_owner("set the members"));
                }
                let wanted: HashSet<u64> = list.iter().map(|p| p.id).chain([by.id]).collect();
                if wanted.len() > self.policy.max_group_members {
                    return Err(SendError::Full {
                        limit: self.policy.max_group_members,
                    });
                }
                change.leavers = self
                    .member_ids
                    .iter()
                    .copied()
                    .filter(|m| !wanted.contains(m))
                    .collect();
                let mut joiners: Vec<u64> = wanted
                    .iter()
                    .copied()
                    .filter(|u| !self.members.contains_key(u))
                    .collect();
                joiners.sort_unstable();
                change.joiners = joiners.into_iter().map(|u| (u, by.id)).collect();
                if change.leavers.is_empty() && change.joiners.is_empty() {
                    return Ok((change, GroupOutcome::Done));
                }
                change.notice = Some(self.notice(
                    by,
                    "groupMembers",
                    notices::members_replaced(self.locale, &by.name),
                ));
                GroupOutcome::Done
            }
        };
        Ok((change, outcome))
    }
}

/// A `systemNotice` message of a group's timeline.
pub fn notice_record(
    group: &GroupRecord,
    conv: &str,
    by: &Party,
    action: &str,
    text: String,
) -> MessageRecord {
    MessageRecord {
        id: crate::message_id(),
        seq: 0,
        conv: conv.to_owned(),
        chat_type: ChatType::Group,
        from_id: by.id,
        from_name: by.name.clone(),
        from_avatar: by.avatar.clone(),
        to_id: group.id,
        to_name: group.name.clone(),
        to_avatar: group.avatar.clone(),
        kind: "systemNotice".into(),
        data: json!({"data": text, "dataType": false, "otherData": null}).to_string(),
        options: "{}".into(),
        cid: None,
        create_time: crate::now_ms(),
        revoked: false,
        action: Some(action.to_owned()),
    }
}

/// Applies a [`Change`] in one transaction; returns the stored notice.
fn apply(
    tx: &Tx<'_>,
    tenant: &str,
    gid: u64,
    conv: &str,
    change: Change,
) -> parlor_storage::Result<Option<MessageRecord>> {
    if let Some(mut r) = change.record {
        tx.put_group(tenant, &mut r)?;
    }
    let head = tx.head(tenant, conv)?;
    let now = crate::now_ms();
    for (user, inviter) in &change.joiners {
        let mut m = MemberRecord {
            row_id: 0,
            nickname: String::new(),
            joined_seq: head,
            joined_ms: now,
            inviter: *inviter,
        };
        tx.put_member(tenant, gid, *user, &mut m)?;
        tx.set_cursor(
            tenant,
            *user,
            conv,
            Cursor {
                delivered: head,
                read: head,
            },
        )?;
        tx.remove_join_request(tenant, gid, *user)?;
    }
    for user in &change.leavers {
        tx.remove_member(tenant, gid, *user, conv)?;
    }
    if let Some(r) = &change.request {
        tx.put_join_request(tenant, gid, r)?;
    }
    if let Some(user) = change.drop_request {
        tx.remove_join_request(tenant, gid, user)?;
    }
    if let Some((user, nickname)) = change.nickname {
        if let Some(mut m) = tx.member(tenant, gid, user)? {
            m.nickname = nickname;
            tx.put_member(tenant, gid, user, &mut m)?;
        }
    }
    match change.notice {
        Some(mut n) => {
            n.seq = head + 1;
            tx.append_message(tenant, &n)?;
            // The actor's own notice counts as seen by them.
            tx.advance_cursor(tenant, n.from_id, conv, 0, n.seq)?;
            Ok(Some(n))
        }
        None => Ok(None),
    }
}

/// The write of one group message: deduplicate, stamp the seq, append, move the sender's
/// cursors over it.
fn append_group(
    tx: &Tx<'_>,
    tenant: &str,
    mut m: MessageRecord,
) -> parlor_storage::Result<(MessageRecord, bool)> {
    if let Some(cid) = &m.cid {
        if let Some(existing) = tx.dedup(tenant, m.from_id, cid)? {
            return Ok((existing, false));
        }
    }
    tx.append_next(tenant, &mut m)?;
    tx.pass_own_message(tenant, m.from_id, &m.conv, m.seq, false)?;
    Ok((m, true))
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

/// A send's commit, queued by the Writer thread in the Group's [`Inbox`] in commit order.
struct Committed {
    exclude: Option<SessionId>,
    result: Result<(MessageRecord, bool), SendError>,
    reply: oneshot::Sender<Result<Arc<MessageRecord>, SendError>>,
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
        let record = MessageRecord {
            id: crate::message_id(),
            seq: 0,
            conv: self.conv.to_string(),
            chat_type: ChatType::Group,
            from_id: msg.from.id,
            from_name: msg.from.name,
            from_avatar: msg.from.avatar,
            to_id: self.record.id,
            to_name: self.record.name.clone(),
            to_avatar: self.record.avatar.clone(),
            kind: msg.kind,
            data: msg.data,
            options: msg.options,
            cid: msg.cid,
            create_time: crate::now_ms(),
            revoked: false,
            action: None,
        };
        let exclude = match msg.origin {
            Origin::Session(id) => Some(id),
            Origin::Rest => None,
        };
        let (reply, answer) = oneshot::channel();
        let (tenant, group, inbox) = (self.tenant.clone(), ctx.address(), self.committed.clone());
        let submitted = self.store.writer().submit_then(
            move |tx| append_group(tx, &tenant, record),
            // On the Writer thread: queued, the Group woken once per run of commits.
            move |res| {
                let first = inbox.push(Committed {
                    exclude,
                    result: res.map_err(SendError::from),
                    reply,
                });
                if first {
                    group.do_send(DrainCommitted);
                }
            },
        );
        if let Err(e) = submitted {
            return Box::pin(async move { Err(e.into()) });
        }
        self.in_flight += 1;
        Box::pin(async move { answer.await.unwrap_or(Err(SendError::Overloaded)) })
    }
}

/// Writer → Group: commits wait in the Group's [`Inbox`].
#[derive(Message)]
#[rtype(result = "()")]
struct DrainCommitted;

impl Handler<DrainCommitted> for Group {
    type Result = ();

    fn handle(&mut self, _: DrainCommitted, _: &mut Self::Context) {
        for c in self.committed.take() {
            self.in_flight -= 1;
            let answer = c.result.map(|(stored, fresh)| {
                if fresh {
                    self.fan_out(&stored, c.exclude, &[]);
                }
                Arc::new(stored)
            });
            let _ = c.reply.send(answer);
        }
    }
}

impl Handler<GroupCommand> for Group {
    type Result = ResponseActFuture<Self, Result<GroupOutcome, SendError>>;

    fn handle(&mut self, cmd: GroupCommand, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let by = cmd.by;
        let (change, outcome) = match self.plan(&by, cmd.op) {
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
        let (tenant, gid, conv) = (self.tenant.clone(), self.record.id, self.conv.clone());
        let rx = match self
            .store
            .writer()
            .submit(move |tx| apply(tx, &tenant, gid, &conv, change))
        {
            Ok(rx) => rx,
            Err(e) => {
                self.members.extend(removed);
                self.refresh_ids();
                return Box::pin(fut::ready(Err(e.into())));
            }
        };
        self.in_flight += 1;
        Box::pin(
            async move {
                match rx.await {
                    Ok(res) => res.map_err(SendError::from),
                    Err(_) => Err(SendError::Overloaded),
                }
            }
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
    type Result = ResponseActFuture<Self, Result<Arc<MessageRecord>, SendError>>;

    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        if !self.members.contains_key(&msg.by.id) {
            return Box::pin(fut::ready(Err(SendError::Forbidden(
                "you are not a member of this group".into(),
            ))));
        }
        let (window, locale) = (self.policy.revoke_window_secs, self.locale);
        let (tenant, by, id, conv) = (self.tenant.clone(), msg.by, msg.id, self.conv.clone());
        let rx = match self.store.writer().submit(move |tx| {
            // Check before any write: only a message of this group is revoked here.
            match tx.message_by_id(&tenant, &id)? {
                Some(m) if m.conv == *conv => crate::revoke::revoke(tx, &tenant, &by, &id, window, locale),
                _ => Ok(Err(SendError::NotFound(format!(
                    "message {id} is not in this group"
                )))),
            }
        }) {
            Ok(rx) => rx,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        self.in_flight += 1;
        Box::pin(
            async move {
                match rx.await {
                    Ok(res) => res.map_err(SendError::from).and_then(|r| r),
                    Err(_) => Err(SendError::Overloaded),
                }
            }
            .into_actor(self)
            .map(|res, act, _| {
                act.in_flight -= 1;
                let (revoked, notice) = res?;
                act.fan_out(&notice, None, &[]);
                Ok(Arc::new(revoked))
            }),
        )
    }
}

impl Handler<PolicyChanged> for Group {
    type Result = ();

    fn handle(&mut self, msg: PolicyChanged, _: &mut Self::Context) {
        self.policy = msg.policy;
    }
}
