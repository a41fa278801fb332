//! The uni-app face's messages: sending over REST (`socket/sendmessage`), the offline
//! messages pushed again on request, and the history of a conversation.

use actix_web::{web, HttpRequest};
use parlor_actors::wire::MessageJson;
use parlor_storage::{ChatType, Role};
use serde_json::json;

use super::{ok, Form, Me, Result, State};
use crate::core::files as core_files;
use crate::core::messages::{self, content_json, options_json, Draft, Target};
use crate::error::ApiError;
use crate::files;
use crate::routes::Routes;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/chat/socket/sendmessage", send_message)
        .post("/api/chat/chatGetmessageOffLine", offline_messages)
        .get("/api/chat/history/{chat_type}/{id}", history);
}

async fn send_message(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    let to = form.u64("sendto_id")?;
    let chat_type = match form.opt_str("chatType")? {
        None => ChatType::Single,
        Some(name) => {
            ChatType::parse(&name).ok_or_else(|| ApiError::invalid("chatType must be single or group"))?
        }
    };
    let kind = form.str("type")?;
    let data = form
        .value("data")
        .ok_or_else(|| ApiError::invalid("data is required"))?;
    let data = content_json(data);
    let options = files::with_metadata(options_json(form.value("options"))?, form.value("metadata"))?;
    let cid = form.opt_str("cid")?;
    let host = req.connection_info().host().to_owned();
    let options = core_files::fill_metadata(&state, me.tenant(), &kind, &data, options, &host).await?;
    let draft = Draft {
        chat_type,
        to,
        kind,
        data,
        options,
        cid,
    };
    let role = me.role().unwrap_or(Role::User);
    let stored = messages::send_draft(&state, me.tenant(), me.id(), role, draft).await?;
    Ok(ok(MessageJson::new(&stored)))
}

async fn offline_messages(state: State, me: Me) -> Result {
    messages::replay_offline(&state, me.key()).await?;
    Ok(ok("ok"))
}

async fn history(req: HttpRequest, state: State, me: Me, path: web::Path<(String, String)>) -> Result {
    let (chat_type, id) = path.into_inner();
    let query = crate::faces::query_pairs(&req)?;
    let param = |name: &str| -> std::result::Result<Option<u64>, ApiError> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) if v.is_empty() => Ok(None),
            Some((_, v)) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{name} must be an integer"))),
        }
    };
    let (before, after) = (param("before")?, param("after")?);
    let limit = param("limit")?.unwrap_or(20).min(usize::MAX as u64) as usize;
    let target = match chat_type.as_str() {
        "single" => Target::User(
            id.parse()
                .map_err(|_| ApiError::invalid("id must be a user id"))?,
        ),
        "group" => Target::Group(
            id.parse()
                .map_err(|_| ApiError::invalid("id must be a group id"))?,
        ),
        "conversation" => Target::Key(id),
        _ => return Err(ApiError::invalid("chatType must be single, group or conversation").into()),
    };
    let (conv, page) = messages::history(&state, me.tenant(), me.id(), target, before, after, limit).await?;
    let list: Vec<MessageJson<'_>> = page.messages.iter().map(MessageJson::new).collect();
    Ok(ok(json!({
        "conversation": conv,
        "list": list,
        "next_before": page.next_before,
        "head": page.head,
    })))
}
