//! Revoking a message: only its sender, only inside the tenant's revoke window, measured by
//! the server's clock from the stored `create_time` (the client's time is not trusted).
//!
//! The message keeps its id and `seq` but loses its content: it becomes a `systemNotice`
//! with `actionType: "revoke"` and the text [`notices::revoked`] ("X撤回了一条消息"), so history and offline
//! delivery show the placeholder, never the old content. A notice is also appended to the
//! timeline (its `otherData` names the revoked message: `id`, `seq`, `create_time`), so a
//! member who was offline learns of the revoke on reconnect; the members online are pushed
//! the placeholder itself ([`crate::wire::revoke_frame`]). The `message.revoked` webhook
//! event is queued in the same transaction.

use parlor_storage::{MessageRecord, Tx};
use serde_json::json;

use crate::messages::Party;
use crate::notices::{self, Locale};
use crate::SendError;

/// The writes of a revoke, in one transaction: the placeholder and the notice. Refuses
/// (writing nothing) an unknown message, another sender's, a system notice, one already
/// revoked, and one past the window.
pub fn revoke(
    tx: &Tx<'_>,
    tenant: &str,
    by: &Party,
    id: &str,
    window_secs: u64,
    locale: Locale,
) -> parlor_storage::Result<Result<(MessageRecord, MessageRecord), SendError>> {
    let Some(mut m) = tx.message_by_id(tenant, id)? else {
        return Ok(Err(SendError::NotFound(format!("message {id} does not exist"))));
    };
    if m.from_id != by.id {
        return Ok(Err(SendError::Forbidden(
            "only the sender may revoke a message".into(),
        )));
    }
    if m.revoked {
        return Ok(Err(SendError::Conflict("the message was already revoked".into())));
    }
    if m.action.is_some() {
        return Ok(Err(SendError::Invalid(
            "a system notice cannot be revoked".into(),
        )));
    }
    let now = crate::now_ms();
    if now.saturating_sub(m.create_time) > window_secs.saturating_mul(1000) {
        return Ok(Err(SendError::Forbidden(format!(
            "a message can only be revoked within {window_secs} s of sending"
        ))));
    }
    let text = notices::revoked(locale, &by.name);
    m.revoked = true;
    m.kind = "systemNotice".into();
    m.action = Some("revoke".into());
    m.data = json!({"data": text, "dataType": false, "otherData": null}).to_string();
    m.options = "{}".into();
    tx.put_message(tenant, &m)?;
    let mut notice = MessageRecord {
        id: crate::message_id(),
        seq: tx.head(tenant, &m.conv)? + 1,
        conv: m.conv.clone(),
        chat_type: m.chat_type,
        from_id: by.id,
        from_name: by.name.clone(),
        from_avatar: by.avatar.clone(),
        to_id: m.to_id,
        to_name: m.to_name.clone(),
        to_avatar: m.to_avatar.clone(),
        kind: "systemNotice".into(),
        data: json!({"data": text, "dataType": false, "otherData": {"id": m.id, "seq": m.seq, "create_time": m.create_time}}).to_string(),
        options: "{}".into(),
        cid: None,
        create_time: now,
        revoked: false,
        action: Some("revoke".into()),
    };
    tx.append_message(tenant, &notice)?;
    let mine = tx.cursor(tenant, by.id, &m.conv)?.unwrap_or_default();
    let delivered = if mine.delivered + 1 == notice.seq {
        notice.seq
    } else {
        mine.delivered
    };
    tx.advance_cursor(tenant, by.id, &m.conv, delivered, notice.seq)?;
    crate::hooks::message_revoked(tx, tenant, &m, &notice)?;
    notice.cid = None;
    Ok(Ok((m, notice)))
}
