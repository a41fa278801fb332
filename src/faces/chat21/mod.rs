//! The Chat21 face (`shared/seeds/000_*`): `/api/:app_id/...` routes for groups (and, with
//! the conversations work, messages and conversations). The token comes in the raw
//! `Authorization` header (or `?jwt=` / `?token=`) and names its user by `sub` and its
//! tenant by `app_id`; the path's APP_ID must be the token's. A user named by a validly
//! signed token that Parlor has not seen is created on first use (Chat21 users live in an
//! outside identity provider), and so is a member named by id in a group.
//!
//! A Chat21 user id is the user's `uuid` (a numeric Parlor id is accepted too); a group id
//! is its `group-<uuid>` (or the numeric id). Errors are Chat21's: a missing field is 405
//! with a text naming it; other refusals are `{"success":false,"err":"..."}` with 401 for
//! a token or tenant that does not fit or a group the caller is not in, 404 for an unknown
//! group, 409 for a `group_id` that is taken, and 405 for a change the caller may not make.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use parlor_actors::{GroupOp, Origin, Party, SendMessage};
use parlor_storage::{ChatType, GroupRecord, MessageRecord, Snapshot, UserRecord};
use serde_json::{json, Map, Value};

use super::{token_of, Face, FaceError};
use crate::core::accounts::{party, resolve_external};
use crate::core::{conversations, groups, messages};
use crate::error::ApiError;
use crate::routes::Routes;
use crate::state::AppState;

/// The Chat21 face's errors.
pub struct Chat21;

impl Face for Chat21 {
    fn render(err: &ApiError) -> HttpResponse {
        match err {
            // Chat21 answers a missing field with 405 and a plain text.
            ApiError::Invalid(text) => HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
                .content_type("text/plain; charset=utf-8")
                .body(text.clone()),
            ApiError::Forbidden(_) | ApiError::Conflict(_) => {
                HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
                    .json(json!({"success": false, "err": err.to_string(), "http_status": 405}))
            }
            _ => HttpResponse::build(err.status()).json(json!({"success": false, "err": err.to_string()})),
        }
    }
}

type Result<T = HttpResponse> = std::result::Result<T, FaceError<Chat21>>;
type State = web::Data<AppState>;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/{app_id}/groups", create_group)
        .get("/api/{app_id}/groups/{group_id}", get_group)
        .put("/api/{app_id}/groups/{group_id}", update_group)
        .post("/api/{app_id}/groups/{group_id}/members", join_group)
        .put("/api/{app_id}/groups/{group_id}/members", set_members)
        .delete("/api/{app_id}/groups/{group_id}/members/{member_id}", leave_group);
}

/// The caller of a Chat21 route: the token's user, created on first use, in the path's
/// tenant.
pub struct Chat21User {
    pub user: UserRecord,
}

impl Chat21User {
    fn tenant(&self) -> &str {
        &self.user.tenant
    }
}

impl FromRequest for Chat21User {
    type Error = FaceError<Chat21>;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<State>()
                .cloned()
                .ok_or_else(|| ApiError::Internal("state missing".into()))?;
            let token = token_of(&req)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::Unauthorized("Unauthorized.".into()))?;
            let claims = state.auth.verify_external(&token)?;
            let tenant = claims.app_id.unwrap_or_else(|| "default".into());
            if req.match_info().get("app_id") != Some(tenant.as_str()) {
                return Err(ApiError::Unauthorized("the token's app_id is not this APP_ID".into()).into());
            }
            let user = resolve_external(&state, &tenant, &claims.sub).await?;
            Ok(Chat21User { user })
        })
    }
}

/// The group a Chat21 group id names (`group-<uuid>` or the numeric id).
async fn resolve_group(state: &State, tenant: &str, id: &str) -> std::result::Result<GroupRecord, ApiError> {
    let (t, key) = (tenant.to_owned(), id.to_owned());
    state
        .read(move |s| {
            let gid = match s.group_id_by_ext(&t, &key)? {
                Some(gid) => Some(gid),
                None => key.parse::<u64>().ok(),
            };
            let group = match gid {
                Some(gid) => s.group(&t, gid)?,
                None => None,
            };
            group
                .filter(|g| g.status == 1)
                .ok_or_else(|| ApiError::NotFound("Group doesn't exist".into()))
        })
        .await
}

/// A group in Chat21's shape: members as `{id: 1}` by Chat21 id.
async fn group_json(state: &State, tenant: &str, g: &GroupRecord) -> std::result::Result<Value, ApiError> {
    let (t, gid, owner) = (tenant.to_owned(), g.id, g.owner);
    let (members, owner_id) = state
        .read(move |s| {
            let mut members = Map::new();
            for (uid, _) in s.members_of(&t, gid)? {
                if let Some(u) = s.user(&t, uid)? {
                    members.insert(u.uuid, json!(1));
                }
            }
            let owner_id = s
                .user(&t, owner)?
                .map(|u| u.uuid)
                .unwrap_or_else(|| owner.to_string());
            Ok((members, owner_id))
        })
        .await?;
    Ok(json!({
        "uid": g.ext_id.clone().unwrap_or_else(|| g.id.to_string()),
        "id": g.id,
        "name": g.name,
        "owner": owner_id,
        "members": members,
        "createdOn": g.created_ms,
        "updatedOn": g.updated_ms,
    }))
}

/// The JSON body of a request (Chat21 sends JSON); an empty body is an empty object.
async fn body(req: &HttpRequest, payload: web::Payload) -> std::result::Result<Map<String, Value>, ApiError> {
    let limit = req
        .app_data::<State>()
        .map(|s| s.config.limits.max_body_bytes)
        .unwrap_or(1 << 20);
    let bytes = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::TooLarge(format!("body is over {limit} bytes")))?
        .map_err(|e| ApiError::invalid(format!("cannot read the body: {e}")))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!("the body is not valid JSON: {e}"))),
    }
}

fn text_field(map: &Map<String, Value>, name: &str) -> std::result::Result<String, ApiError> {
    match map.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Null) | None => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(Value::String(_)) => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
    }
}

/// The ids of a `{"<id>": 1}` members map (an array of ids is read too).
fn member_ids(map: &Map<String, Value>, name: &str) -> std::result::Result<Vec<String>, ApiError> {
    match map.get(name) {
        Some(Value::Object(m)) => Ok(m.keys().cloned().collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::invalid(format!("{name} must map member ids to 1"))),
            })
            .collect(),
        None | Some(Value::Null) => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(_) => Err(ApiError::invalid(format!("{name} must map member ids to 1"))),
    }
}

async fn parties(state: &State, tenant: &str, ids: &[String]) -> std::result::Result<Vec<Party>, ApiError> {
    let mut seen = BTreeMap::new();
    for id in ids {
        let u = resolve_external(state, tenant, id).await?;
        seen.insert(u.id, party(&u));
    }
    Ok(seen.into_values().collect())
}

async fn create_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let name = text_field(&map, "group_name")?;
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("group_name must be at most 100 characters").into());
    }
    let ids = member_ids(&map, "group_members")?;
    let ext_id = match map.get("group_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 && !s.contains('/') => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid("group_id must be a string of at most 128 characters").into())
        }
    };
    let members = parties(&state, me.tenant(), &ids).await?;
    let created = groups::create(&state, me.tenant(), party(&me.user), members, Some(name), ext_id).await;
    let record = match created {
        Ok(record) => record,
        // A taken group_id is a conflict (409), not one of the 405 refusals of a change.
        Err(ApiError::Conflict(_)) => {
            return Ok(HttpResponse::Conflict().json(json!({"success": false, "err": "group_id exists"})))
        }
        Err(other) => return Err(other.into()),
    };
    let group = group_json(&state, me.tenant(), &record).await?;
    Ok(HttpResponse::Created().json(json!({"success": true, "group": group})))
}

async fn get_group(req: HttpRequest, state: State, me: Chat21User) -> Result {
    let id = req.match_info().get("group_id").unwrap_or_default().to_owned();
    let group = resolve_group(&state, me.tenant(), &id).await?;
    let (t, gid, uid) = (me.tenant().to_owned(), group.id, me.user.id);
    if !state.read(move |s| Ok(s.member(&t, gid, uid)?.is_some())).await? {
        return Err(ApiError::Unauthorized("Permission denied".into()).into());
    }
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "result": group_json(&state, me.tenant(), &group).await?})))
}

async fn command(state: &State, me: &Chat21User, group: &str, op: GroupOp) -> Result {
    let record = resolve_group(state, me.tenant(), group).await?;
    groups::command(state, me.tenant(), record.id, party(&me.user), op).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

async fn join_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let member = text_field(&map, "member_id")?;
    let user = party(&resolve_external(&state, me.tenant(), &member).await?);
    let group = req.match_info().get("group_id").unwrap_or_default().to_owned();
    command(
        &state,
        &me,
        &group,
        GroupOp::Invite {
            user,
            desc: String::new(),
        },
    )
    .await
}

async fn set_members(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let ids = member_ids(&map, "members")?;
    let members = parties(&state, me.tenant(), &ids).await?;
    let group = req.match_info().get("group_id").unwrap_or_default().to_owned();
    command(&state, &me, &group, GroupOp::ReplaceMembers(members)).await
}

async fn leave_group(req: HttpRequest, state: State, me: Chat21User) -> Result {
    let group = req.match_info().get("group_id").unwrap_or_default().to_owned();
    let member = req.match_info().get("member_id").unwrap_or_default().to_owned();
    let user = resolve_external(&state, me.tenant(), &member).await?;
    // Leaving yourself is quitting (the owner's leaving dissolves the group); removing
    // someone else is the owner's.
    let op = if user.id == me.user.id {
        GroupOp::Leave
    } else {
        GroupOp::Remove(user.id)
    };
    command(&state, &me, &group, op).await
}

async fn update_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let name = text_field(&map, "group_name")?;
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("group_name must be at most 100 characters").into());
    }
    let group = req.match_info().get("group_id").unwrap_or_default().to_owned();
    command(&state, &me, &group, GroupOp::Rename(name)).await
}

/// Registers the message and conversation routes (the archived list before the detail
/// route, which would otherwise take `archived` for a recipient).
pub fn conversation_routes(r: &mut Routes) {
    r.post("/api/{app_id}/messages", send_message)
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

fn chat21_id(users: &HashMap<u64, UserRecord>, id: u64) -> String {
    users.get(&id).map_or_else(|| id.to_string(), |u| u.uuid.clone())
}

/// The users a set of messages names, by id, for their Chat21 ids.
fn users_of(
    s: &Snapshot,
    tenant: &str,
    ids: impl IntoIterator<Item = u64>,
) -> parlor_storage::Result<HashMap<u64, UserRecord>> {
    let mut out = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            if let Some(u) = s.user(tenant, id)? {
                e.insert(u);
            }
        }
    }
    Ok(out)
}

/// A message in Chat21's shape.
fn message_json(m: &MessageRecord, users: &HashMap<u64, UserRecord>, group_uid: Option<&str>) -> Value {
    let options: Value = serde_json::from_str(&m.options).unwrap_or(Value::Null);
    let data: Value = serde_json::from_str(&m.data).unwrap_or(Value::Null);
    let text = match &data {
        Value::String(s) => s.clone(),
        Value::Object(o) if m.action.is_some() => o
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        other => other.to_string(),
    };
    let recipient = match (m.chat_type, group_uid) {
        (ChatType::Group, Some(uid)) => uid.to_owned(),
        _ => chat21_id(users, m.to_id),
    };
    json!({
        "message_id": m.id,
        "sender": chat21_id(users, m.from_id),
        "sender_fullname": options.get("sender_fullname").and_then(Value::as_str).unwrap_or(&m.from_name),
        "recipient": recipient,
        "recipient_fullname": options.get("recipient_fullname").and_then(Value::as_str).unwrap_or(&m.to_name),
        "text": text,
        "type": m.kind,
        "channel_type": if m.chat_type == ChatType::Group { "group" } else { "direct" },
        "timestamp": m.create_time,
        "attributes": options.get("attributes").cloned().unwrap_or(Value::Null),
        "metadata": options.get("metadata").cloned().unwrap_or(Value::Null),
        "conversation": m.conv,
        "seq": m.seq,
        "revoked": m.revoked,
        "status": 100,
    })
}

fn require_text(
    map: &Map<String, Value>,
    name: &str,
    missing: &str,
) -> std::result::Result<String, ApiError> {
    match map.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(_)) | Some(Value::Null) | None => Err(ApiError::invalid(missing)),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
    }
}

async fn send_message(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
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
        let recipient = resolve_external(&state, &tenant, &recipient_id).await?;
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
                return Ok(parlor_actors::group::group_conv(gid));
            }
            match crate::core::accounts::find_external(s, &t, &key)? {
                Some(u) => Ok(parlor_actors::direct_conv(my_id, u.id)),
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
            let group_uid = match parlor_actors::group::group_of_conv(&conv) {
                Some(gid) => s.group(&t, gid)?.and_then(|g| g.ext_id),
                None => None,
            };
            Ok((page.messages, users, group_uid))
        })
        .await?;
    let result: Vec<Value> = messages
        .iter()
        .map(|m| message_json(m, &users, group_uid.as_deref()))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "result": result})))
}
