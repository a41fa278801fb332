//! Reaching a group's actor from a handler: through the Router to the tenant's Tenant
//! actor, which starts the Group on demand. A group whose actor stopped between the lookup
//! and the send (it was idle) is looked up once more.

use std::sync::Arc;

use actix::{Addr, MailboxError};
use parlor_actors::{
    Group, GroupCommand, GroupOf, GroupOp, GroupOutcome, Party, Revoke, SendMessage, TenantOf,
};
use parlor_storage::MessageRecord;

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

/// Revokes a message of a group.
pub async fn revoke(
    state: &AppState,
    tenant: &str,
    id: u64,
    msg: Revoke,
) -> Result<Arc<MessageRecord>, ApiError> {
    ask(state, tenant, id, msg).await
}
