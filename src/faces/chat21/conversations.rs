//! Chat21 conversations: the lists (active and archived), one conversation, its messages,
//! and archiving.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_storage::UserRecord;
use serde_json::{json, Value};

use super::{message_json, users_of, Chat21User, Result, State};
use crate::core::conversations;
use crate::error::ApiError;
use crate::routes::Routes;

/// Registers the message and conversation routes (the archived list before the detail
/// route, which would otherwise take `archived` for a recipient).
pub(super) fn routes(r: &mut Routes) {
    r.post("/api/{app_id}/messages", super::messages::send_message)
        .delete("/api/{app_id}/conversations/{recipient_id}", archive_conversation)
        .delete(
            "/api/{app_id}/conversations/{recipient_id}/",
            archive_conversation,
        )
        .get("/api/{app_id}/{user_id}/conversations", conversations)
        .get(
            "/api/{app_id}/{user_id}/archived_conversations",
            archived_conversations,
        )
        .get(
            "/api/{app_id}/{user_id}/conversations/archived",
            archived_conversations,
        )
        .get(
            "/api/{app_id}/{user_id}/conversations/{with}/messages",
            conversation_messages,
        )
        .get(
            "/api/{app_id}/{user_id}/conversations/{with}",
            conversation_detail,
        );
}

/// The conversation key of `me` with a Chat21 recipient (a user or a group).
async fn conversation_with(
    state: &State,
    me: &Chat21User,
    with: &str,
) -> std::result::Result<String, ApiError> {
    let (t, key, my_id) = (me.tenant().to_owned(), with.to_owned(), me.user.id);
    state
        .read(move |s| {
            if let Some(gid) = s.group_id_by_ext(&t, &key)? {
                return Ok(parlor_actors::ConvKey::Group(gid).to_string());
            }
            match crate::core::external::find_external(s, &t, &key)? {
                Some(u) => Ok(parlor_actors::ConvKey::direct(my_id, u.id).to_string()),
                None => Err(ApiError::NotFound(format!("{key} is neither a user nor a group"))),
            }
        })
        .await
}

fn truthy(req: &HttpRequest, name: &str) -> std::result::Result<bool, ApiError> {
    let q = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid("malformed query string"))?;
    match q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ApiError::invalid(format!("{name} must be true or false"))),
    }
}

async fn archive_conversation(req: HttpRequest, state: State, me: Chat21User) -> Result {
    let with = req
        .match_info()
        .get("recipient_id")
        .unwrap_or_default()
        .to_owned();
    let delete = truthy(&req, "delete")?;
    let conv = conversation_with(&state, &me, &with).await?;
    let change = if delete {
        conversations::Change::Delete
    } else {
        conversations::Change::Archive
    };
    conversations::change(&state, me.tenant(), me.user.id, &conv, change).await?;
    Ok(HttpResponse::Created().json(json!({"success": true})))
}

/// Refuses a caller reading another user's conversations.
fn only_own(req: &HttpRequest, me: &Chat21User) -> std::result::Result<(), ApiError> {
    let user = req.match_info().get("user_id").unwrap_or_default();
    if user == me.user.uuid || user == me.user.id.to_string() {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "you may only read your own conversations".into(),
        ))
    }
}

fn conversation_json(
    e: &conversations::Entry,
    me: &UserRecord,
    users: &HashMap<u64, UserRecord>,
    tenant: &str,
) -> Value {
    let (with, with_name, channel) = match (&e.group, &e.peer) {
        (Some(g), _) => (
            g.ext_id.clone().unwrap_or_else(|| g.id.to_string()),
            g.name.clone(),
            "group",
        ),
        (None, Some(p)) => (
            p.uuid.clone(),
            if p.nickname.is_empty() {
                p.username.clone()
            } else {
                p.nickname.clone()
            },
            "direct",
        ),
        _ => (String::new(), String::new(), "direct"),
    };
    let last = e
        .last
        .as_ref()
        .map(|m| message_json(m, users, e.group.as_ref().and_then(|g| g.ext_id.as_deref())));
    json!({
        "uid": e.conv,
        "app_id": tenant,
        "recipient": last.as_ref().map_or(Value::Null, |l| l["recipient"].clone()),
        "recipient_fullname": last.as_ref().map_or(Value::Null, |l| l["recipient_fullname"].clone()),
        "sender": last.as_ref().map_or(Value::Null, |l| l["sender"].clone()),
        "sender_fullname": last.as_ref().map_or(Value::Null, |l| l["sender_fullname"].clone()),
        "conversation_with": with,
        "conversation_with_fullname": with_name,
        "last_message_text": last.as_ref().map_or(Value::Null, |l| l["text"].clone()),
        "type": last.as_ref().map_or(Value::Null, |l| l["type"].clone()),
        "timestamp": e.activity(),
        "channel_type": channel,
        "is_new": e.unread > 0,
        "unread": e.unread,
        "archived": e.archived(),
        "pinned": e.state.pinned,
        "user": me.uuid,
    })
}

async fn list_conversations(
    req: HttpRequest,
    state: State,
    me: Chat21User,
    filter: conversations::Filter,
) -> Result {
    only_own(&req, &me)?;
    let (t, my_id) = (me.tenant().to_owned(), me.user.id);
    let (entries, users) = state
        .read(move |s| {
            let entries = conversations::list(s, &t, my_id, filter)?;
            let ids: Vec<u64> = entries
                .iter()
                .filter_map(|e| e.last.as_ref())
                .flat_map(|m| [m.from_id, m.to_id])
                .collect();
            let users = users_of(s, &t, ids)?;
            Ok((entries, users))
        })
        .await?;
    let result: Vec<Value> = entries
        .iter()
        .map(|e| conversation_json(e, &me.user, &users, me.tenant()))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "result": result})))
}

async fn conversations(req: HttpRequest, state: State, me: Chat21User) -> Result {
    list_conversations(req, state, me, conversations::Filter::Active).await
}

async fn archived_conversations(req: HttpRequest, state: State, me: Chat21User) -> Result {
    list_conversations(req, state, me, conversations::Filter::Archived).await
}

async fn conversation_detail(req: HttpRequest, state: State, me: Chat21User) -> Result {
    only_own(&req, &me)?;
    let with = req.match_info().get("with").unwrap_or_default().to_owned();
    let conv = conversation_with(&state, &me, &with).await?;
    let (t, my_id) = (me.tenant().to_owned(), me.user.id);
    let (entry, users) = state
        .read(move |s| {
            let e = conversations::entry(s, &t, my_id, &conv)?
                .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
            let ids: Vec<u64> = e.last.iter().flat_map(|m| [m.from_id, m.to_id]).collect();
            Ok((e, users_of(s, &t, ids)?))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "result": [conversation_json(&entry, &me.user, &users, me.tenant())]})))
}

async fn conversation_messages(req: HttpRequest, state: State, me: Chat21User) -> Result {
    only_own(&req, &me)?;
    let with = req.match_info().get("with").unwrap_or_default().to_owned();
    let conv = conversation_with(&state, &me, &with).await?;
    let (t, my_id) = (me.tenant().to_owned(), me.user.id);
    let (messages, users, group_uid) = state
        .read(move |s| {
            // Chat21 answers a conversation the caller is not in with 401, as for groups.
            let floor = conversations::history_floor(s, &t, my_id, &conv).map_err(|e| match e {
                ApiError::Forbidden(_) => ApiError::Unauthorized("Permission denied".into()),
                other => other,
            })?;
            let page = s.history(&t, &conv, None, Some(floor), 200)?;
            let users = users_of(s, &t, page.messages.iter().flat_map(|m| [m.from_id, m.to_id]))?;
            let group_uid = match parlor_actors::ConvKey::parse(&conv).and_then(|k| k.group_id()) {
                Some(gid) => s.group(&t, gid)?.and_then(|g| g.ext_id),
                None => None,
            };
            Ok((page.messages, users, group_uid))
        })
        .await?;
    // A revoked message shows as revoked where it was; its revoke notice is not listed
    // again.
    let result: Vec<Value> = messages
        .iter()
        .filter(|m| m.revoked || m.action.as_deref() != Some("revoke"))
        .map(|m| message_json(m, &users, group_uid.as_deref()))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "result": result})))
}
