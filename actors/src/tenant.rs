//! One actor per APP_ID: holds the tenant's [`Policy`] (and tells the Router and its
//! groups when it changes), creates groups, and starts or finds the [`Group`] actors of the
//! tenant. A group's actor is started on first use from redb, and forgotten when it stops.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use parlor_storage::{Cursor, GroupRecord, MemberRecord, Store};
use tokio::sync::oneshot;

use crate::commit;
use crate::group::{notice_record, GroupSettings, GroupState};
use crate::messages::*;
use crate::notices;
use crate::router::RouterStats;
use crate::{ConvKey, Group, Policy, Router, SendError};

type Waiter = oneshot::Sender<Result<Addr<Group>, SendError>>;

/// A tenant; see the module doc.
pub struct Tenant {
    name: Arc<str>,
    policy: Arc<Policy>,
    router: Addr<Router>,
    store: Store,
    group_settings: GroupSettings,
    /// The server's counters; this tenant keeps `groups_running` and `groups_started`.
    stats: Arc<RouterStats>,
    groups: HashMap<u64, Addr<Group>>,
    loading: HashMap<u64, Vec<Waiter>>,
}

impl Tenant {
    pub fn new(
        name: Arc<str>,
        policy: Policy,
        router: Addr<Router>,
        store: Store,
        group_settings: GroupSettings,
        stats: Arc<RouterStats>,
    ) -> Self {
        Tenant {
            name,
            policy: Arc::new(policy),
            router,
            store,
            group_settings,
            stats,
            groups: HashMap::new(),
            loading: HashMap::new(),
        }
    }

    fn start_group(&mut self, state: GroupState, ctx: &mut Context<Self>) -> Addr<Group> {
        let id = state.record.id;
        let group = Group::new(
            self.name.clone(),
            state,
            self.store.clone(),
            self.router.clone(),
            ctx.address(),
            self.policy.clone(),
            self.group_settings,
        );
        let addr = group.start();
        self.stats.groups_running.fetch_add(1, Ordering::Relaxed);
        self.stats.groups_started.fetch_add(1, Ordering::Relaxed);
        self.groups.insert(id, addr.clone());
        addr
    }
}

impl Actor for Tenant {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        // Settings changed through the admin face outlive a restart.
        let (store, tenant) = (self.store.clone(), self.name.clone());
        let read = tokio::task::spawn_blocking(move || store.snapshot()?.tenant_settings(&tenant));
        ctx.wait(read.into_actor(self).map(|res, act, ctx| {
            let Ok(Ok(settings)) = res else { return };
            if settings.is_empty() {
                return;
            }
            let mut policy = Policy::clone(&act.policy);
            for (id, value) in settings {
                if let Err(e) = policy.set(id, &value) {
                    tracing::warn!(tenant = %act.name, id, error = %e, "stored setting ignored");
                }
            }
            ctx.notify(SetPolicy(policy));
        }));
        tracing::debug!(tenant = %self.name, "tenant started");
    }
}

impl Handler<GetPolicy> for Tenant {
    type Result = MessageResult<GetPolicy>;

    fn handle(&mut self, _: GetPolicy, _: &mut Self::Context) -> Self::Result {
        MessageResult(Policy::clone(&self.policy))
    }
}

impl Handler<SetPolicy> for Tenant {
    type Result = ();

    fn handle(&mut self, SetPolicy(mut policy): SetPolicy, _: &mut Self::Context) {
        // The subscriptions change only through `SetHooks`.
        policy.webhooks = self.policy.webhooks.clone();
        self.policy = Arc::new(policy);
        self.publish();
    }
}

impl Handler<SetHooks> for Tenant {
    type Result = ();

    fn handle(&mut self, SetHooks(hooks): SetHooks, _: &mut Self::Context) {
        let mut policy = Policy::clone(&self.policy);
        policy.webhooks = hooks;
        self.policy = Arc::new(policy);
        self.publish();
    }
}

impl Tenant {
    /// Tells the Router and the running groups the policy now in force.
    fn publish(&self) {
        let changed = || PolicyChanged {
            tenant: self.name.clone(),
            policy: self.policy.clone(),
        };
        self.router.do_send(changed());
        for group in self.groups.values() {
            group.do_send(changed());
        }
    }
}

impl Handler<GroupOf> for Tenant {
    type Result = ResponseFuture<Result<Addr<Group>, SendError>>;

    fn handle(&mut self, GroupOf(id): GroupOf, ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.groups.get(&id).filter(|a| a.connected()) {
            let addr = addr.clone();
            return Box::pin(async move { Ok(addr) });
        }
        let (tx, rx) = oneshot::channel();
        let first = !self.loading.contains_key(&id);
        self.loading.entry(id).or_default().push(tx);
        if first {
            let (store, tenant) = (self.store.clone(), self.name.clone());
            let read = tokio::task::spawn_blocking(move || -> parlor_storage::Result<Option<GroupState>> {
                let snap = store.snapshot()?;
                match snap.group(&tenant, id)? {
                    Some(record) if record.status == 1 => {
                        let members = snap.members_of(&tenant, id)?;
                        let conv = ConvKey::Group(id).to_string();
                        let mut reads = Vec::with_capacity(members.len());
                        for (user, _) in &members {
                            let read = snap.cursor(&tenant, *user, &conv)?.map_or(0, |c| c.read);
                            reads.push((*user, read));
                        }
                        Ok(Some(GroupState {
                            members,
                            requests: snap.join_requests_of(&tenant, id)?,
                            reads,
                            record,
                        }))
                    }
                    _ => Ok(None),
                }
            });
            ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
                let answer = match res {
                    Ok(Ok(Some(state))) => Ok(act.start_group(state, ctx)),
                    Ok(Ok(None)) => Err(SendError::NotFound(format!("group {id} does not exist"))),
                    Ok(Err(e)) => Err(SendError::from(e)),
                    Err(_) => Err(SendError::Overloaded),
                };
                for waiter in act.loading.remove(&id).unwrap_or_default() {
                    let _ = waiter.send(answer.clone());
                }
            }));
        }
        Box::pin(async move { rx.await.unwrap_or(Err(SendError::Overloaded)) })
    }
}

impl Handler<GroupRead> for Tenant {
    type Result = ();

    fn handle(&mut self, msg: GroupRead, _: &mut Self::Context) {
        // Receipts go to an active group only; an idle group has no one waiting for them.
        if let Some(group) = self.groups.get(&msg.group) {
            group.do_send(msg);
        }
    }
}

impl Handler<GroupStopped> for Tenant {
    type Result = ();

    fn handle(&mut self, GroupStopped(id): GroupStopped, _: &mut Self::Context) {
        // Every Group sends this once, when it stops.
        self.stats.groups_running.fetch_sub(1, Ordering::Relaxed);
        if self.groups.get(&id).is_some_and(|a| !a.connected()) {
            self.groups.remove(&id);
        }
    }
}

impl Handler<CreateGroup> for Tenant {
    type Result = ResponseActFuture<Self, Result<GroupRecord, SendError>>;

    fn handle(&mut self, msg: CreateGroup, _: &mut Self::Context) -> Self::Result {
        let CreateGroup {
            owner,
            members,
            name,
            ext_id,
        } = msg;
        let mut everyone = vec![owner.clone()];
        for m in members {
            if !everyone.iter().any(|e| e.id == m.id) {
                everyone.push(m);
            }
        }
        if everyone.len() > self.policy.max_group_members {
            let limit = self.policy.max_group_members;
            return Box::pin(fut::ready(Err(SendError::Full { limit })));
        }
        let now = crate::now_ms();
        let name = name.unwrap_or_else(|| {
            let joined: Vec<&str> = everyone.iter().map(|p| p.name.as_str()).collect();
            notices::name_list(self.group_settings.locale, &joined)
                .chars()
                .take(100)
                .collect()
        });
        let avatar = everyone
            .iter()
            .take(9)
            .map(|p| p.avatar.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let uuid = uuid::Uuid::new_v4().to_string();
        // Every group can be named the Chat21 way, `group-<uuid>`.
        let ext_id = ext_id.unwrap_or_else(|| format!("group-{uuid}"));
        let record = GroupRecord {
            id: 0,
            uuid,
            ext_id: Some(ext_id),
            owner: owner.id,
            name,
            avatar,
            remark: String::new(),
            invite_confirm: 0,
            status: 1,
            created_ms: now,
            updated_ms: now,
        };
        let tenant = self.name.clone();
        let ids: Vec<u64> = everyone.iter().map(|p| p.id).collect();
        let others: Vec<&str> = everyone[1..].iter().map(|p| p.name.as_str()).collect();
        let text = notices::group_created(self.group_settings.locale, &owner.name, &others);
        let write = commit::submit(self.store.writer(), move |tx| {
            let mut record = record;
            tx.put_group(&tenant, &mut record)?;
            let conv = ConvKey::Group(record.id).to_string();
            let mut members = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let inviter = if i == 0 { 0 } else { ids[0] };
                let mut m = MemberRecord {
                    row_id: 0,
                    nickname: String::new(),
                    joined_seq: 0,
                    joined_ms: now,
                    inviter,
                };
                tx.put_member(&tenant, record.id, *id, &mut m)?;
                tx.set_cursor(&tenant, *id, &conv, Cursor::default())?;
                members.push((*id, m));
            }
            let mut notice = notice_record(&record, &conv, &owner, "groupCreate", text);
            notice.seq = 1;
            tx.append_message(&tenant, &notice)?;
            tx.advance_cursor(&tenant, owner.id, &conv, 1, 1)?;
            let joined: Vec<(u64, u64)> = members.iter().map(|(id, m)| (*id, m.inviter)).collect();
            crate::hooks::group_members(
                tx,
                &tenant,
                crate::hooks::MembersChange {
                    group: record.id,
                    conv: &conv,
                    action: "groupCreate",
                    by: owner.id,
                    joined: &joined,
                    left: &[],
                    dissolved: false,
                },
            )?;
            Ok(Ok((record, members, notice)))
        });
        let committed = match write {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        Box::pin(committed.into_actor(self).map(|res, act, ctx| {
            let (record, members, notice) = res?;
            let ids: Arc<[u64]> = members.iter().map(|(id, _)| *id).collect();
            // The owner has read the creation notice; the others have not.
            let reads = ids
                .iter()
                .map(|id| (*id, u64::from(*id == record.owner)))
                .collect();
            act.start_group(
                GroupState {
                    record: record.clone(),
                    members,
                    requests: Vec::new(),
                    reads,
                },
                ctx,
            );
            let conv: Arc<str> = Arc::from(notice.conv.as_str());
            let pushed = Pushed {
                frame: crate::wire::chat_frame(&notice),
                at: Some((conv, notice.seq)),
            };
            act.router.do_send(FanOut {
                tenant: act.name.clone(),
                members: ids,
                pushed,
                exclude: None,
            });
            Ok(record)
        }))
    }
}
