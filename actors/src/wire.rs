//! The JSON the core pushes to clients, built once per message and shared by every
//! recipient. The message object is the uni-app document's (`id`, `from_*`, `to_*`,
//! `chatType`, `type`, `data`, `options`, `create_time`, `isremove`) plus the timeline
//! position (`conversation`, `seq`) and the `revoked` flag.

use parlor_storage::{GroupRecord, MessageRecord};

use crate::messages::Revoked;
use crate::ConvKey;
use serde::Serialize;
use serde_json::value::RawValue;

/// A serialized server frame: built once, shared by every recipient (cloning it is a
/// reference count, and the WebSocket writes it without copying).
pub type Frame = bytestring::ByteString;

/// The stored message in the uni-app message shape.
#[derive(Serialize)]
pub struct MessageJson<'a> {
    pub id: &'a str,
    pub from_avatar: &'a str,
    pub from_name: &'a str,
    pub from_id: u64,
    pub to_id: u64,
    pub to_name: &'a str,
    pub to_avatar: &'a str,
    #[serde(rename = "chatType")]
    pub chat_type: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub data: &'a RawValue,
    pub options: &'a RawValue,
    pub create_time: u64,
    pub isremove: u8,
    pub conversation: &'a str,
    pub seq: u64,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<&'a str>,
    #[serde(rename = "actionType", skip_serializing_if = "Option::is_none")]
    pub action_type: Option<&'a str>,
}

fn raw(text: &str) -> &RawValue {
    // Stored JSON text was validated when it was accepted; fall back to null otherwise.
    serde_json::from_str::<&RawValue>(text)
        .unwrap_or_else(|_| serde_json::from_str::<&RawValue>("null").expect("null is JSON"))
}

impl<'a> MessageJson<'a> {
    pub fn new(m: &'a MessageRecord) -> Self {
        MessageJson {
            id: &m.id,
            from_avatar: &m.from_avatar,
            from_name: &m.from_name,
            from_id: m.from_id,
            to_id: m.to_id,
            to_name: &m.to_name,
            to_avatar: &m.to_avatar,
            chat_type: m.chat_type.as_str(),
            kind: &m.kind,
            data: raw(&m.data),
            options: raw(&m.options),
            create_time: m.create_time,
            isremove: 0,
            conversation: &m.conv,
            seq: m.seq,
            revoked: m.revoked,
            cid: m.cid.as_deref(),
            action_type: m.action.as_deref(),
        }
    }
}

/// Milliseconds as the server's local time, `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// Milliseconds as an ISO 8601 UTC time with milliseconds.
pub fn iso_time(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A group in the uni-app document's shape (its group list and group info, without the
/// `group_users` rows).
#[derive(Serialize)]
pub struct GroupJson<'a> {
    pub create_time: String,
    pub id: u64,
    pub uuid: &'a str,
    pub user_id: u64,
    pub name: &'a str,
    pub avatar: &'a str,
    pub remark: &'a str,
    pub invite_confirm: u8,
    pub status: u8,
    pub order: u32,
    pub update_time: String,
}

impl<'a> GroupJson<'a> {
    pub fn new(g: &'a GroupRecord) -> Self {
        GroupJson {
            create_time: local_time(g.created_ms),
            id: g.id,
            uuid: &g.uuid,
            user_id: g.owner,
            name: &g.name,
            avatar: &g.avatar,
            remark: &g.remark,
            invite_confirm: g.invite_confirm,
            status: g.status,
            order: 50,
            update_time: iso_time(g.updated_ms),
        }
    }
}

/// Where a revoke notice sits in its timeline.
#[derive(Serialize)]
pub struct NoticeAt<'a> {
    pub id: &'a str,
    pub seq: u64,
}

/// A revoke as the uni-app document pushes and answers it: the revoked message itself (its
/// `id`, `seq` and original `create_time`; `type` `systemNotice`, `actionType` `revoke`,
/// `data` the notice text with `otherData` null), `group` (null for a direct message), and
/// `notice`, the timeline entry that records the revoke (for acks and gap detection).
#[derive(Serialize)]
pub struct RevokeJson<'a> {
    #[serde(flatten)]
    pub message: MessageJson<'a>,
    pub group: Option<GroupJson<'a>>,
    pub notice: NoticeAt<'a>,
}

impl<'a> RevokeJson<'a> {
    pub fn new(r: &'a Revoked) -> Self {
        RevokeJson {
            message: MessageJson::new(&r.message),
            group: r.group.as_ref().map(GroupJson::new),
            notice: NoticeAt {
                id: &r.notice.id,
                seq: r.notice.seq,
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: T,
    timestamp: u64,
}

/// A server frame `{"type": kind, "data": data, "timestamp": ms}`.
pub fn frame<T: Serialize>(kind: &str, data: T) -> Frame {
    let env = Envelope {
        kind,
        data,
        timestamp: crate::now_ms(),
    };
    Frame::from(serde_json::to_string(&env).expect("frames serialize"))
}

/// The push of a revoke to the members online: `systemNotice` with [`RevokeJson`].
pub fn revoke_frame(r: &Revoked) -> Frame {
    frame("systemNotice", RevokeJson::new(r))
}

/// The push of a stored message: `singleChat`, or `systemNotice` for a revoke notice.
pub fn chat_frame(m: &MessageRecord) -> Frame {
    let kind = if m.action.as_deref() == Some("revoke") {
        "systemNotice"
    } else {
        "singleChat"
    };
    frame(kind, MessageJson::new(m))
}

/// A read receipt: `reader` has read `conversation` up to `seq`; for a group, `count`
/// members have read up to it.
pub fn read_frame(conversation: &str, seq: u64, reader: u64, count: Option<usize>) -> Frame {
    let mut data = serde_json::json!({"conversation": conversation, "seq": seq, "user_id": reader});
    if let Some(count) = count {
        data["count"] = count.into();
    }
    frame("read", data)
}

/// A presence change of `user`: `{"userId", "online", "lastSeen"}` (`lastSeen` ms, `null`
/// while online, when never seen, or when hidden).
pub fn presence_frame(user: u64, online: bool, last_seen: Option<u64>) -> Frame {
    frame(
        "presence",
        serde_json::json!({"userId": user, "online": online, "lastSeen": last_seen}),
    )
}

/// A typing note of `from` in the conversation `conv` (`to` the peer or the group):
/// `{"from", "to", "chatType", "conversation", "state", "expiresIn"}`, `state` `start` or
/// `stop`; the receiver shows it for `expires_in_ms` without a newer one.
pub fn typing_frame(from: u64, to: u64, conv: &ConvKey, stop: bool, expires_in_ms: u64) -> Frame {
    let chat_type = match conv {
        ConvKey::Group(_) => "group",
        ConvKey::Direct { .. } => "single",
    };
    frame(
        "typing",
        serde_json::json!({
            "from": from,
            "to": to,
            "chatType": chat_type,
            "conversation": conv.to_string(),
            "state": if stop { "stop" } else { "start" },
            "expiresIn": expires_in_ms,
        }),
    )
}

/// The `ack` answering a WebSocket `send` (`data` the stored message) or `revoke` (`data`
/// a [`RevokeJson`]).
pub fn ack_frame<T: Serialize>(cid: Option<&str>, data: T) -> Frame {
    #[derive(Serialize)]
    struct Ack<'a, T> {
        #[serde(rename = "type")]
        kind: &'static str,
        cid: Option<&'a str>,
        data: T,
        timestamp: u64,
    }
    let ack = Ack {
        kind: "ack",
        cid,
        data,
        timestamp: crate::now_ms(),
    };
    Frame::from(serde_json::to_string(&ack).expect("frames serialize"))
}

/// An `error` frame; `cid` names the client frame it answers, when it had one.
pub fn error_frame(cid: Option<&str>, code: &str, msg: &str) -> Frame {
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        cid: Option<&'a str>,
        code: &'a str,
        msg: &'a str,
        timestamp: u64,
    }
    let e = Error {
        kind: "error",
        cid,
        code,
        msg,
        timestamp: crate::now_ms(),
    };
    Frame::from(serde_json::to_string(&e).expect("frames serialize"))
}
