//! Direct sends: validated against the tenant's policy, written by the Writer (which
//! stamps the seq and checks who may send to whom), and after the commit answered and
//! offered to the recipient's and the sender's other sessions.

use std::sync::Arc;

use actix::prelude::*;
use parlor_storage::{ChatType, MessageRecord, Role, Tx};

use super::Router;
use crate::commit::DrainCommitted;
use crate::messages::*;
use crate::{rules, wire, ConvKey, Policy, SendError};

/// A direct send waiting for its commit: the tenant and where the send came from.
pub(super) type SendNote = (Arc<str>, Origin);

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
        let (tenant, role) = (msg.tenant.clone(), msg.from_role);
        // Webhooks: whom to tell, and whether the recipient had a session (nothing for a
        // tenant without endpoints).
        let hooks = crate::hooks::endpoints(&policy.webhooks, crate::hooks::MESSAGE_SENT);
        let online = !hooks.is_empty()
            && self.sessions.contains_key(&UserKey {
                tenant: msg.tenant.clone(),
                id: msg.to.id,
            });
        let note = (msg.tenant.clone(), msg.origin);
        let (conv, chat_type) = (ConvKey::direct(msg.from.id, msg.to.id), msg.chat_type);
        let to = msg.to.clone();
        let record = msg.into_record(conv.to_string(), chat_type, to);
        // On the Writer thread, in commit order: queued, and the Router woken once for all
        // the commits that queue up before it drains them.
        match self
            .committed
            .submit(self.store.writer(), ctx.address(), note, move |tx| {
                append_direct(tx, &tenant, record, role, (&hooks, online))
            }) {
            Ok(answer) => Box::pin(answer),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<DrainCommitted> for Router {
    type Result = ();

    fn handle(&mut self, _: DrainCommitted, _: &mut Self::Context) {
        for c in self.committed.take() {
            c.answer(|(tenant, origin), (stored, fresh)| {
                if fresh {
                    self.accepted(&tenant);
                    self.fan_out(&tenant, &stored, origin);
                }
                Arc::new(stored)
            });
        }
    }
}

impl Router {
    pub(super) fn fan_out(&mut self, tenant: &Arc<str>, msg: &MessageRecord, origin: Origin) {
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

/// The write of one direct message: deduplicate by `cid`, check the sender may send
/// ([`rules::check_direct`]), stamp the next seq, append, create the recipient's cursor,
/// move the sender's cursors over its own message, and queue the `message.sent` event for
/// `hooks` (the endpoints, and whether the recipient was online). Returns the stored
/// message and whether it is new, or the refusal.
fn append_direct(
    tx: &Tx<'_>,
    tenant: &str,
    mut m: MessageRecord,
    role: Role,
    hooks: (&[u64], bool),
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
    let (endpoints, online) = hooks;
    if !endpoints.is_empty() {
        crate::hooks::message_sent(tx, tenant, endpoints, &m, &[(m.to_id, Some(online))])?;
    }
    Ok(Ok((m, true)))
}
