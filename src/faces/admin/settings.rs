//! Settings: a user's settings by scope and key (scope 3 is a conversation's top flag, the
//! same flag as the conversation list's), the tenant's system settings (ids 1-7 are Parlor
//! policy, any other id a generic setting kept with its description), and the top flag by
//! conversation (a user setting: a conversation without messages can be pinned).

use actix_web::HttpResponse;
use parlor_storage::UserRecord;
use serde_json::{json, Value};

use super::{conversation, success, user, user_and_conversation, Result, Signed, State};
use crate::core::conversations::{self, Change};
use crate::core::settings;
use crate::error::ApiError;

pub(super) async fn put_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let scope = body.req_int("scope")?;
    let scope =
        u32::try_from(scope).map_err(|_| ApiError::invalid("scope must be a non-negative integer"))?;
    let key = body.str("key")?;
    let value = match body.body.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        None | Some(Value::Null) => return Err(ApiError::invalid("value is required").into()),
        Some(_) => return Err(ApiError::invalid("value must be a string").into()),
    };
    if key.len() > 256 || value.len() > 4096 {
        return Err(ApiError::invalid("key is at most 256 bytes and value 4096").into());
    }
    if scope == 3 {
        // Scope 3 is the conversation top flag, the same flag as the conversation list's.
        let (conv, _) = top_key(&state, &tenant, &me, &key).await?;
        conversations::change(
            &state,
            &tenant,
            me.id,
            &conv,
            Change::Pin(value == "1" || value == "true"),
        )
        .await?;
    } else {
        settings::put_user_setting(&state, &tenant, me.id, scope, key, value).await?;
    }
    Ok(success(json!({})))
}

/// The conversation a scope-3 key `<type>-<line>-<target>` names.
async fn top_key(state: &State, tenant: &str, me: &UserRecord, key: &str) -> Result<(String, String)> {
    let mut parts = key.splitn(3, '-');
    let (Some(kind), Some(line), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::invalid("a scope 3 key is <type>-<line>-<target>").into());
    };
    let kind: i64 = kind
        .parse()
        .map_err(|_| ApiError::invalid("a scope 3 key is <type>-<line>-<target>"))?;
    let line: i64 = line
        .parse()
        .map_err(|_| ApiError::invalid("a scope 3 key is <type>-<line>-<target>"))?;
    conversation(
        state,
        tenant,
        me,
        &json!({"type": kind, "line": line, "target": target}),
    )
    .await
}

pub(super) async fn get_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let user_id = body.str("userId")?;
    let me = user(&state, &tenant, &user_id).await?;
    let scope = u32::try_from(body.req_int("scope")?)
        .map_err(|_| ApiError::invalid("scope must be a non-negative integer"))?;
    let key = body.str("key")?;
    let value = if scope == 3 {
        let (conv, _) = top_key(&state, &tenant, &me, &key).await?;
        let t = tenant.clone();
        let pinned = state
            .read(move |s| Ok(s.conv_state(&t, me.id, &conv)?.pinned))
            .await?;
        Some(if pinned { "1".to_owned() } else { "0".to_owned() })
    } else {
        let (t, k) = (tenant.clone(), key.clone());
        state
            .read(move |s| Ok(s.user_setting(&t, me.id, scope, &k)?))
            .await?
    };
    let value =
        value.ok_or_else(|| ApiError::not_found(format!("no setting {scope}/{key} for user {user_id}")))?;
    Ok(success(
        json!({"userId": user_id, "scope": scope, "key": key, "value": value}),
    ))
}

/// The id of a system setting: a non-negative integer.
fn setting_id(body: &Signed) -> Result<u32> {
    Ok(u32::try_from(body.req_int("id")?)
        .map_err(|_| ApiError::invalid("id must be a non-negative integer"))?)
}

pub(super) async fn get_system_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = setting_id(&body)?;
    let setting = settings::system_setting(&state, &tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("setting {id} does not exist")))?;
    Ok(success(
        json!({"id": id, "value": setting.value, "desc": setting.desc}),
    ))
}

pub(super) async fn modify_system_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = setting_id(&body)?;
    let value = body.str("value")?;
    let desc = body.opt_str("desc")?;
    if value.len() > 4096 || desc.as_ref().is_some_and(|d| d.len() > 1024) {
        return Err(ApiError::invalid("value is at most 4096 bytes and desc 1024").into());
    }
    // A policy setting takes effect for the next message, without a restart.
    settings::set_system_setting(&state, &tenant, id, value, desc).await?;
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success"})))
}

pub(super) async fn conversation_top(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let c = body
        .body
        .get("conversation")
        .cloned()
        .ok_or_else(|| ApiError::invalid("conversation is required"))?;
    let top = match body.int("top")? {
        Some(0) => false,
        Some(1) => true,
        None => return Err(ApiError::invalid("top is required").into()),
        Some(_) => return Err(ApiError::invalid("top must be 0 or 1").into()),
    };
    let (conv, _) = conversation(&state, &tenant, &me, &c).await?;
    conversations::change(&state, &tenant, me.id, &conv, Change::Pin(top)).await?;
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success"})))
}

pub(super) async fn conversation_is_top(state: State, body: Signed) -> Result {
    let (tenant, me, conv) = user_and_conversation(&state, &body).await?;
    let (t, id) = (tenant.clone(), me.id);
    let pinned = state
        .read(move |s| Ok(s.conv_state(&t, id, &conv)?.pinned))
        .await?;
    Ok(success(json!({"value": pinned})))
}
