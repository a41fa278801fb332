//! Chat21 messages: `POST /api/:app_id/messages`, a direct or group message.

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_actors::{Origin, Party, SendMessage};
use parlor_storage::ChatType;
use serde_json::{json, Value};

use super::groups::resolve_group;
use super::{body, message_json, require_text, users_of, Chat21User, Result, State};
use crate::core::accounts::party;
use crate::core::external::resolve_externals;
use crate::core::messages;
use crate::error::ApiError;

pub(super) async fn send_message(
    req: HttpRequest,
    state: State,
    me: Chat21User,
    payload: web::Payload,
) -> Result {
    let map = body(&req, payload).await?;
    let sender_fullname = require_text(&map, "sender_fullname", "Sender Fullname is mandatory")?;
    let recipient_id = require_text(&map, "recipient_id", "Recipient id is mandatory")?;
    let recipient_fullname = require_text(&map, "recipient_fullname", "Recipient Fullname is mandatory")?;
    let text = match map.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("text must be a string").into()),
    };
    let kind = match map.get("type") {
        None | Some(Value::Null) => "text".to_owned(),
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(_) => return Err(ApiError::invalid("type must be a string").into()),
    };
    let metadata = map.get("metadata").cloned().filter(|v| !v.is_null());
    if kind == "image" {
        let ok = metadata.as_ref().is_some_and(|m| {
            m.get("src").is_some_and(Value::is_string)
                && m.get("width").is_some_and(Value::is_number)
                && m.get("height").is_some_and(Value::is_number)
        });
        if !ok {
            return Err(
                ApiError::invalid("metadata with src, width and height is mandatory for an image").into(),
            );
        }
    } else if kind == "text" && text.is_empty() {
        return Err(ApiError::invalid("text is mandatory").into());
    }
    let attributes = map.get("attributes").cloned().filter(|v| !v.is_null());
    if attributes.as_ref().is_some_and(|a| !a.is_object()) {
        return Err(ApiError::invalid("attributes must be an object").into());
    }
    let channel = match map.get("channel_type") {
        None | Some(Value::Null) => "direct".to_owned(),
        Some(Value::String(c)) if c == "direct" || c == "group" => c.clone(),
        Some(_) => return Err(ApiError::invalid("channel_type must be direct or group").into()),
    };
    let options = json!({
        "attributes": attributes,
        "metadata": metadata,
        "sender_fullname": sender_fullname,
        "recipient_fullname": recipient_fullname,
    })
    .to_string();
    let mut from = party(&me.user);
    from.name = sender_fullname;
    let tenant = me.tenant().to_owned();
    let base = SendMessage {
        tenant: tenant.as_str().into(),
        from,
        from_role: me.user.role,
        to: Party::default(),
        chat_type: ChatType::Single,
        kind,
        data: Value::String(text).to_string(),
        options,
        cid: None,
        origin: Origin::Rest,
    };
    let (stored, group_uid) = if channel == "group" {
        let group = resolve_group(&state, &tenant, &recipient_id).await?;
        let msg = SendMessage {
            chat_type: ChatType::Group,
            to: Party {
                id: group.id,
                name: recipient_fullname,
                avatar: String::new(),
            },
            ..base
        };
        (messages::send(&state, msg).await?, group.ext_id.clone())
    } else {
        let recipient = match resolve_externals(&state, &tenant, me.namer(), &[recipient_id])
            .await?
            .pop()
        {
            Some(u) => u,
            None => return Err(ApiError::invalid("recipient_id is mandatory").into()),
        };
        let msg = SendMessage {
            to: Party {
                id: recipient.id,
                name: recipient_fullname,
                avatar: recipient.avatar.clone(),
            },
            ..base
        };
        (messages::send(&state, msg).await?, None)
    };
    let (t, ids) = (tenant.clone(), [stored.from_id, stored.to_id]);
    let users = state.read(move |s| Ok(users_of(s, &t, ids)?)).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "message": message_json(&stored, &users, group_uid.as_deref())})))
}
