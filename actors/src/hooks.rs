//! Webhooks as the actors see them: each tenant's subscriptions ([`HookSub`], carried in its
//! [`Policy`](crate::Policy), empty for a tenant without endpoints) and the outbox rows of
//! an event, written in the transaction of what the event tells, so that a committed message
//! always has its event and a refused one never does. Delivery is not the actors' business.

use parlor_storage::{ApplyRecord, MessageRecord, OutboxEvent, Tx};
use serde_json::{json, Value};

/// A message was stored (direct or group).
pub const MESSAGE_SENT: &str = "message.sent";

/// A message was revoked by its sender.
pub const MESSAGE_REVOKED: &str = "message.revoked";

/// A group's members changed: created, joined, left, removed, replaced or dissolved.
pub const GROUP_MEMBERS: &str = "group.members";

/// A friend application was made or answered, or two users became friends at once.
pub const FRIEND_REQUEST: &str = "friend.request";

/// A user's first session connected (not after a reconnect within the presence grace).
pub const USER_ONLINE: &str = "user.online";

/// A user's last session went and no other connected within the presence grace.
pub const USER_OFFLINE: &str = "user.offline";

/// Every event name an endpoint may subscribe to: the events emitted. A name's bit is its
/// position, so new names go at the end.
pub const EVENTS: [&str; 6] = [
    MESSAGE_SENT,
    MESSAGE_REVOKED,
    GROUP_MEMBERS,
    FRIEND_REQUEST,
    USER_ONLINE,
    USER_OFFLINE,
];

/// The bit of an event name in [`HookSub::events`].
pub fn bit(event: &str) -> Option<u32> {
    EVENTS.iter().position(|e| *e == event).map(|i| 1 << i)
}

/// One endpoint of a tenant and the events it gets (bits of [`bit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSub {
    pub endpoint: u64,
    pub events: u32,
}

impl HookSub {
    /// The subscription of an endpoint to these event names (unknown names are ignored).
    pub fn new(endpoint: u64, events: &[String]) -> HookSub {
        let events = events.iter().filter_map(|e| bit(e)).fold(0, |a, b| a | b);
        HookSub { endpoint, events }
    }
}

/// The endpoints of `subs` that get `event`: nothing is allocated for a tenant without
/// endpoints.
pub fn endpoints(subs: &[HookSub], event: &str) -> Vec<u64> {
    if subs.is_empty() {
        return Vec::new();
    }
    let Some(b) = bit(event) else {
        return Vec::new();
    };
    subs.iter()
        .filter(|s| s.events & b != 0)
        .map(|s| s.endpoint)
        .collect()
}

/// The endpoints of `tenant` that get `event`, read in the transaction `tx`: for the events
/// that are rare beside messages (revokes, membership and friendship changes), whose writers
/// hold no copy of the subscriptions. A tenant without endpoints costs one empty range read.
pub fn subscribed(tx: &Tx<'_>, tenant: &str, event: &str) -> parlor_storage::Result<Vec<u64>> {
    Ok(tx
        .endpoints_of(tenant)?
        .into_iter()
        .filter(|h| h.events.iter().any(|e| e == event))
        .map(|h| h.id)
        .collect())
}

/// Queues `event` with `data`, ordered by `order`, for the endpoints of `tenant` subscribed
/// to it (read in `tx`, see [`subscribed`]).
pub fn enqueue_subscribed(
    tx: &Tx<'_>,
    tenant: &str,
    event: &str,
    order: &str,
    data: Value,
) -> parlor_storage::Result<()> {
    let endpoints = subscribed(tx, tenant, event)?;
    enqueue(tx, tenant, &endpoints, event, order, data)
}

/// Queues `event` with `data` for each of `endpoints`, ordered by `order` (a conversation):
/// one body, serialized once, `{"event", "tenant", "createdAt", "data"}`.
pub fn enqueue(
    tx: &Tx<'_>,
    tenant: &str,
    endpoints: &[u64],
    event: &str,
    order: &str,
    data: Value,
) -> parlor_storage::Result<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let now = crate::now_ms();
    let body = json!({"event": event, "tenant": tenant, "createdAt": now, "data": data}).to_string();
    for &endpoint in endpoints {
        let mut row = OutboxEvent {
            id: 0,
            endpoint,
            event: event.to_owned(),
            order: order.to_owned(),
            body: body.clone(),
            created_ms: now,
            attempts: 0,
            next_ms: now,
            last_error: String::new(),
        };
        tx.enqueue_event(tenant, &mut row)?;
    }
    Ok(())
}

/// A stored message as the webhook payloads show it.
pub fn message_json(m: &MessageRecord) -> Value {
    let data = serde_json::from_str::<Value>(&m.data).unwrap_or_else(|_| Value::String(m.data.clone()));
    json!({
        "id": m.id,
        "conversation": m.conv,
        "seq": m.seq,
        "chatType": m.chat_type.as_str(),
        "fromId": m.from_id,
        "fromName": m.from_name,
        "toId": m.to_id,
        "type": m.kind,
        "data": data,
        "createTime": m.create_time,
    })
}

/// Queues `message.sent` for a stored message: its recipients, each with whether it had a
/// session when the message was sent (`None`: not known, for group members).
pub fn message_sent(
    tx: &Tx<'_>,
    tenant: &str,
    endpoints: &[u64],
    m: &MessageRecord,
    recipients: &[(u64, Option<bool>)],
) -> parlor_storage::Result<()> {
    let recipients: Vec<Value> = recipients
        .iter()
        .map(|(id, online)| json!({"userId": id, "online": online}))
        .collect();
    let data = json!({"message": message_json(m), "recipients": recipients});
    enqueue(tx, tenant, endpoints, MESSAGE_SENT, &m.conv, data)
}

/// Queues `message.revoked` for a revoked message (`placeholder`, as stored now) and the
/// notice appended to its conversation, in the conversation's order.
pub fn message_revoked(
    tx: &Tx<'_>,
    tenant: &str,
    placeholder: &MessageRecord,
    notice: &MessageRecord,
) -> parlor_storage::Result<()> {
    let data = json!({
        "message": message_json(placeholder),
        "revokedBy": placeholder.from_id,
        "noticeSeq": notice.seq,
    });
    enqueue_subscribed(tx, tenant, MESSAGE_REVOKED, &placeholder.conv, data)
}

/// A change of a group's members as `group.members` tells it.
#[derive(Debug, Clone, Copy)]
pub struct MembersChange<'a> {
    pub group: u64,
    pub conv: &'a str,
    /// The notice's `actionType` (`groupCreate`, `groupJoin`, `groupQuit`, `groupKick`,
    /// `groupDissolve`, ...).
    pub action: &'a str,
    /// Who made the change.
    pub by: u64,
    /// `(user, inviter)` of the members who joined.
    pub joined: &'a [(u64, u64)],
    pub left: &'a [u64],
    pub dissolved: bool,
}

/// Queues `group.members` for a change that added or removed members (nothing otherwise),
/// in the group conversation's order.
pub fn group_members(tx: &Tx<'_>, tenant: &str, c: MembersChange<'_>) -> parlor_storage::Result<()> {
    if c.joined.is_empty() && c.left.is_empty() {
        return Ok(());
    }
    let joined: Vec<Value> = c
        .joined
        .iter()
        .map(|(user, inviter)| json!({"userId": user, "inviter": inviter}))
        .collect();
    let data = json!({
        "groupId": c.group,
        "conversation": c.conv,
        "action": c.action,
        "by": c.by,
        "joined": joined,
        "left": c.left,
        "dissolved": c.dissolved,
    });
    enqueue_subscribed(tx, tenant, GROUP_MEMBERS, c.conv, data)
}

/// Queues `friend.request` for a friend application as it stands after this transaction,
/// ordered per pair of users.
pub fn friend_request(tx: &Tx<'_>, tenant: &str, a: &ApplyRecord) -> parlor_storage::Result<()> {
    let (lo, hi) = (a.applicant.min(a.target), a.applicant.max(a.target));
    let data = json!({
        "id": a.id,
        "applicant": a.applicant,
        "target": a.target,
        "note": a.note,
        "status": a.status.as_str(),
        "createdAt": a.created_ms,
        "updatedAt": a.updated_ms,
    });
    enqueue_subscribed(tx, tenant, FRIEND_REQUEST, &format!("friends:{lo}:{hi}"), data)
}

/// Queues `user.online` or `user.offline` (with `lastSeen`, when the last session went) for
/// `endpoints`, ordered per user. Every user has presence events, whatever they hide from
/// other users: the endpoints are the tenant's own backend.
pub fn user_presence(
    tx: &Tx<'_>,
    tenant: &str,
    endpoints: &[u64],
    user: u64,
    last_seen: Option<u64>,
) -> parlor_storage::Result<()> {
    let (event, data) = match last_seen {
        None => (USER_ONLINE, json!({"userId": user, "online": true})),
        Some(at) => (
            USER_OFFLINE,
            json!({"userId": user, "online": false, "lastSeen": at}),
        ),
    };
    enqueue(tx, tenant, endpoints, event, &format!("user:{user}"), data)
}
