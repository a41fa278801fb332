//! Groups: [`create`] (every face's group creation), [`command`] (rename, remark, invite,
//! remove, quit, dissolve, ... decided by the group's actor), [`send`], [`typing`] and [`revoke`]. A
//! group's actor is reached through the Router and the tenant's Tenant actor, which starts
//! it on demand; one that stopped between the lookup and the message (it was idle) is looked
//! up once more.

use std::sync::Arc;

use actix::{Addr, MailboxError};
use parlor_actors::{
    CreateGroup, Group, GroupCommand, GroupOf, GroupOp, GroupOutcome, GroupTyping, Party, Revoke, Revoked,
    SendMessage, TenantOf,
};
use parlor_storage::{GroupRecord, MessageRecord, UserRecord};

use crate::error::ApiError;
use crate::state::AppState;

/// The actor of group `id` of `tenant`; `NotFound` when there is no such active group.
pub async fn addr(state: &AppState, tenant: &str, id: u64) -> Result<Addr<Group>, ApiError> {
    let tenant = state.router.send(TenantOf(Arc::from(tenant))).await?;
    Ok(tenant.send(GroupOf(id)).await??)
}

/// Asks group `id` a question, looking its actor up once more if it stopped (idle) between
/// the lookup and the send.
async fn ask<M, T>(state: &AppState, tenant: &str, id: u64, msg: M) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, parlor_actors::SendError>> + Clone + Send + 'static,
    T: Send + 'static,
    Group: actix::Handler<M>,
{
    let mut retried = false;
    loop {
        let group = addr(state, tenant, id).await?;
        match group.send(msg.clone()).await {
            Ok(res) => return Ok(res?),
            Err(MailboxError::Closed) if !retried => retried = true,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs a command on a group.
pub async fn command(
    state: &AppState,
    tenant: &str,
    id: u64,
    by: Party,
    op: GroupOp,
) -> Result<GroupOutcome, ApiError> {
    ask(state, tenant, id, GroupCommand { by, op }).await
}

/// Sends a message to a group.
pub async fn send(
    state: &AppState,
    tenant: &str,
    id: u64,
    msg: SendMessage,
) -> Result<Arc<MessageRecord>, ApiError> {
    ask(state, tenant, id, msg).await
}

/// Forwards a member's typing note to the group's online members.
pub async fn typing(state: &AppState, tenant: &str, id: u64, msg: GroupTyping) -> Result<(), ApiError> {
    ask(state, tenant, id, msg).await
}

/// Revokes a message of a group.
pub async fn revoke(state: &AppState, tenant: &str, id: u64, msg: Revoke) -> Result<Arc<Revoked>, ApiError> {
    ask(state, tenant, id, msg).await
}

/// Creates a group of `owner` with `members` (the owner excluded), named `name` (or after
/// its members) and with the outside id `ext_id` when given; a taken `ext_id` is a conflict.
/// Its creation notice is the first message of its timeline.
pub async fn create(
    state: &AppState,
    tenant: &str,
    owner: Party,
    members: Vec<Party>,
    name: Option<String>,
    ext_id: Option<String>,
) -> Result<GroupRecord, ApiError> {
    let tenant_addr = state.router.send(TenantOf(Arc::from(tenant))).await?;
    Ok(tenant_addr
        .send(CreateGroup {
            owner,
            members,
            name,
            ext_id,
        })
        .await??)
}

/// The caller `me` and the users `ids` (the caller and repeats left out), each of whom must
/// exist and be the caller's friend ("user N is not `relation`" otherwise), within the
/// configured group size: the members of a new group of the caller's friends.
pub async fn friends_as_members(
    state: &AppState,
    tenant: &str,
    me: u64,
    mut ids: Vec<u64>,
    relation: &'static str,
) -> Result<(UserRecord, Vec<UserRecord>), ApiError> {
    ids.retain(|id| *id != me);
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(ApiError::invalid("name at least one friend"));
    }
    let limit = state.config.limits.group_max_members;
    if ids.len() + 1 > limit {
        return Err(ApiError::invalid(format!(
            "the group is full: at most {limit} members"
        )));
    }
    let t = tenant.to_owned();
    state
        .read(move |s| {
            let owner = s
                .user(&t, me)?
                .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
            let mut members = Vec::with_capacity(ids.len());
            for id in ids {
                let user = s
                    .user(&t, id)?
                    .ok_or_else(|| ApiError::NotFound(format!("user {id} does not exist")))?;
                if s.friend(&t, me, id)?.is_none() {
                    return Err(ApiError::Forbidden(format!("user {id} is not {relation}")));
                }
                members.push(user);
            }
            Ok((owner, members))
        })
        .await
}
