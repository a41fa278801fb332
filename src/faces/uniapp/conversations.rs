//! The uni-app face's conversation routes: revoke (document section 三十二), read
//! receipts, and the native conversation list with unread counts.

use actix_web::{web, HttpRequest};
use parlor_actors::wire::{MessageJson, RevokeJson};
use serde_json::{json, Value};

use super::{ok, Form, Me, Result, State};
use crate::core::accounts::{load as load_user, party};
use crate::core::conversations::{self, Entry, Filter};
use crate::error::ApiError;
use crate::routes::Routes;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/chat/revokeMessage", revoke)
        .post("/api/chat/read", read)
        .get("/api/chat/conversations", list);
}

async fn revoke(state: State, me: Me, form: Form) -> Result {
    let id = form.str("id")?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::invalid("id must be a message id").into());
    }
    // The document's other fields are accepted and not trusted: the stored message
    // decides the conversation, and the server's clock the window.
    if let Some(t) = form.opt_str("chatType")? {
        if t != "single" && t != "group" {
            return Err(ApiError::invalid("chatType must be single or group").into());
        }
    }
    form.opt_u64("to_id")?;
    let by = party(&load_user(&state, me.tenant(), me.id()).await?);
    let revoked = conversations::revoke(&state, me.tenant(), by, &id).await?;
    Ok(ok(RevokeJson::new(&revoked)))
}

async fn read(state: State, me: Me, form: Form) -> Result {
    let conv = form.str("conversation")?;
    let seq = form.u64("seq")?;
    let seq = conversations::read(&state, me.tenant(), me.id(), &conv, seq, None).await?;
    Ok(ok(json!({"conversation": conv, "seq": seq})))
}

/// A conversation of the list.
pub fn entry_json(e: &Entry) -> Value {
    let (chat_type, target) = match (&e.peer, &e.group) {
        (_, Some(g)) => (
            "group",
            json!({"id": g.id, "name": g.name, "avatar": g.avatar, "uuid": g.uuid}),
        ),
        (Some(u), _) => (
            "single",
            json!({"id": u.id, "uuid": u.uuid, "username": u.username, "nickname": u.nickname, "avatar": u.avatar}),
        ),
        _ => ("single", Value::Null),
    };
    json!({
        "conversation": e.conv,
        "chatType": chat_type,
        "target": target,
        "last_message": e.last.as_ref().map(MessageJson::new),
        "unread": e.unread,
        "pinned": e.state.pinned,
        "archived": e.archived(),
        "update_time": e.activity(),
    })
}

async fn list(req: HttpRequest, state: State, me: Me) -> Result {
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid("malformed query string"))?
        .into_inner();
    let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let limit = match get("limit").filter(|v| !v.is_empty()) {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::invalid("limit must be a positive integer"))?,
    }
    .min(state.config.limits.page_max);
    // The cursor is `<activity ms>:<conversation>` of the last item of the previous page.
    let cursor = match get("cursor").filter(|v| !v.is_empty()) {
        None => None,
        Some(c) => {
            let (ms, conv) = c
                .split_once(':')
                .ok_or_else(|| ApiError::invalid("cursor is malformed"))?;
            Some((
                ms.parse::<u64>()
                    .map_err(|_| ApiError::invalid("cursor is malformed"))?,
                conv.to_owned(),
            ))
        }
    };
    let filter = match get("archived").as_deref() {
        Some("1") | Some("true") => Filter::Archived,
        _ => Filter::Active,
    };
    let (tenant, my_id) = (me.tenant().to_owned(), me.id());
    let all = state
        .read(move |s| conversations::list(s, &tenant, my_id, filter))
        .await?;
    let start = match &cursor {
        None => 0,
        Some((ms, conv)) => all
            .iter()
            .position(|e| e.activity() < *ms || (e.activity() == *ms && e.conv.as_str() > conv.as_str()))
            .unwrap_or(all.len()),
    };
    let page: Vec<&Entry> = all[start..].iter().take(limit).collect();
    let next = if start + page.len() < all.len() {
        page.last().map(|e| format!("{}:{}", e.activity(), e.conv))
    } else {
        None
    };
    let list: Vec<Value> = page.iter().map(|e| entry_json(e)).collect();
    Ok(ok(json!({"list": list, "next_cursor": next, "total": all.len()})))
}
