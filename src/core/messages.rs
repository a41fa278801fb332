//! Messages: [`send`] (direct or group, from any face or the WebSocket), [`history`]
//! (a page of a conversation as the user may see it) and [`replay_offline`]. A send is
//! routed here and only here: a direct message to the Router, a group message to the group's
//! actor (looked up once more if it stopped while idle); the counterpart of
//! [`conversations::revoke`](super::conversations::revoke).

use std::sync::Arc;

use parlor_actors::{ConvKey, Origin, Party, ReplayOffline, SendMessage, UserKey};
use parlor_storage::{ChatType, HistoryPage, MessageRecord, Role};
use serde_json::Value;

use super::accounts::party;
use super::conversations::history_floor;
use crate::error::ApiError;
use crate::state::AppState;

/// Message content as JSON text: a string stays a string, any other JSON is kept as is.
pub fn content_json(v: &Value) -> String {
    v.to_string()
}

/// Options as JSON text: absent or empty is `{}`; otherwise a JSON object, or a string
/// holding one.
pub fn options_json(v: Option<&Value>) -> Result<String, ApiError> {
    let not_object = || ApiError::invalid("options must be a JSON object (or a string holding one)");
    match v {
        None | Some(Value::Null) => Ok("{}".into()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok("{}".into()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ Value::Object(_)) => Ok(parsed.to_string()),
            _ => Err(not_object()),
        },
        Some(other @ Value::Object(_)) => Ok(other.to_string()),
        Some(_) => Err(not_object()),
    }
}

/// The number a message is named by where a client wants a numeric id (the admin face's
/// `messageUid`): its conversation's number (see [`conversations::numbers`]) in the high 32
/// bits and its `seq` in the low 32. `None` past those ranges.
///
/// [`conversations::numbers`]: super::conversations::numbers
pub fn message_number(conv_number: u64, seq: u64) -> Option<u64> {
    (conv_number < 1 << 31 && seq < 1 << 32).then_some(conv_number << 32 | seq)
}

/// The message a [`message_number`] names in `tenant`.
pub fn message_by_number(
    s: &parlor_storage::Snapshot,
    tenant: &str,
    number: u64,
) -> Result<Option<MessageRecord>, ApiError> {
    let (conv_number, seq) = (number >> 32, number & 0xffff_ffff);
    match s.conv_by_number(tenant, conv_number)? {
        Some(conv) if seq > 0 => Ok(s.message(tenant, &conv, seq)?),
        _ => Ok(None),
    }
}

/// Sends `msg` and returns it as stored (its `seq`, id and time), once committed.
pub async fn send(state: &AppState, msg: SendMessage) -> Result<Arc<MessageRecord>, ApiError> {
    match msg.chat_type {
        ChatType::Single => Ok(state.router.send(msg).await??),
        ChatType::Group => {
            let (tenant, gid) = (msg.tenant.clone(), msg.to.id);
            super::groups::send(state, &tenant, gid, msg).await
        }
    }
}

/// A message from a face's request, before the parties are known.
pub struct Draft {
    pub chat_type: ChatType,
    /// The recipient's user id, or the group's.
    pub to: u64,
    pub kind: String,
    /// Content as JSON text ([`content_json`]).
    pub data: String,
    /// Options as JSON text ([`options_json`]).
    pub options: String,
    pub cid: Option<String>,
}

/// Sends a message of user `from_id` of `tenant` over REST: names both parties from the
/// store (an unknown recipient is `NotFound`), then [`send`]s it.
pub async fn send_draft(
    state: &AppState,
    tenant: &str,
    from_id: u64,
    role: Role,
    draft: Draft,
) -> Result<Arc<MessageRecord>, ApiError> {
    let (t, to, chat_type) = (tenant.to_owned(), draft.to, draft.chat_type);
    let (from, to) = state
        .read(move |s| {
            let from = s
                .user(&t, from_id)?
                .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
            let to = match chat_type {
                ChatType::Single => party(
                    &s.user(&t, to)?
                        .ok_or_else(|| ApiError::NotFound(format!("user {to} does not exist")))?,
                ),
                ChatType::Group => Party {
                    id: to,
                    ..Party::default()
                },
            };
            Ok((party(&from), to))
        })
        .await?;
    let msg = SendMessage {
        tenant: Arc::from(tenant),
        from,
        from_role: role,
        to,
        chat_type: draft.chat_type,
        kind: draft.kind,
        data: draft.data,
        options: draft.options,
        cid: draft.cid,
        origin: Origin::Rest,
    };
    send(state, msg).await
}

/// Which conversation a history read names.
pub enum Target {
    /// The direct conversation with this user (who must exist).
    User(u64),
    Group(u64),
    /// A conversation key as it is.
    Key(String),
}

/// A page of `user`'s view of a conversation: newest first, `before`/`after` a seq, at most
/// `limit` (clamped to `limits.history_max`). A group's member sees what came after joining,
/// and nobody what they deleted.
pub async fn history(
    state: &AppState,
    tenant: &str,
    user: u64,
    target: Target,
    before: Option<u64>,
    after: Option<u64>,
    limit: usize,
) -> Result<(String, HistoryPage), ApiError> {
    let conv = match target {
        Target::User(peer) => {
            super::accounts::load(state, tenant, peer).await?;
            ConvKey::direct(user, peer).to_string()
        }
        Target::Group(gid) => ConvKey::Group(gid).to_string(),
        Target::Key(k) => k,
    };
    let limit = limit.clamp(1, state.config.limits.history_max);
    let (t, c) = (tenant.to_owned(), conv.clone());
    let page = state
        .read(move |s| {
            let floor = history_floor(s, &t, user, &c)?;
            let after = Some(after.unwrap_or(0).max(floor));
            Ok(s.history(&t, &c, before, after, limit)?)
        })
        .await?;
    Ok((conv, page))
}

/// Pushes `user`'s waiting messages to their sessions again.
pub async fn replay_offline(state: &AppState, user: UserKey) -> Result<usize, ApiError> {
    Ok(state.router.send(ReplayOffline { user }).await?)
}
