//! Webhooks as the actors see them: each tenant's subscriptions ([`HookSub`], carried in its
//! [`Policy`](crate::Policy), empty for a tenant without endpoints) and the outbox rows of
//! an event, written in the transaction of what the event tells, so that a committed message
//! always has its event and a refused one never does. Delivery is not the actors' business.

use parlor_storage::{MessageRecord, OutboxEvent, Tx};
use serde_json::{json, Value};

/// A message was stored (direct or group).
pub const MESSAGE_SENT: &str = "message.sent";

/// Every event name an endpoint may subscribe to: the events emitted.
pub const EVENTS: [&str; 1] = [MESSAGE_SENT];

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
