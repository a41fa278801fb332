//! The chat-room face (`shared/seeds/003_*`): users, contacts and bans. Success is
//! `{"success":true,"message":...}` plus the document's payload fields; failure is
//! `{"success":false,"message":"reason"}` with the status of [`ApiError::status`].
//! Contacts are the core's friendships: a contact added here is a friend on the uni-app
//! face and the reverse. A ban is the core's block: the banned user's messages to the
//! banning user are refused. `/message/image` stores an image (see [`crate::files`]).
//!
//! A 404 is answered in the document's error shape, `{timestamp, status, error, message,
//! path}`, both for a thing a route does not find and for an unknown path under the face's
//! prefixes (`/user/`, `/contacts/`, `/conversation/`, `/message/`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use parlor_actors::ConvKey;
use parlor_storage::{MessageRecord, Snapshot, UserRecord};
use serde_json::{json, Value};

use super::{client_addr, iso_time, local_time, query_pairs, tenant_of, Caller, Face, FaceError, Fields};
use crate::core::accounts::{self, load as load_user, party, Profile};
use crate::core::{check_len, conversations, groups, social};
use crate::error::ApiError;
use crate::routes::Routes;
use crate::state::AppState;

/// The chat-room face's envelope.
pub struct ChatRoom;

impl Face for ChatRoom {
    fn render(err: &ApiError) -> HttpResponse {
        HttpResponse::build(err.status()).json(json!({"success": false, "message": err.to_string()}))
    }
}

/// The path prefixes of the face's routes.
const PREFIXES: [&str; 4] = ["/user/", "/contacts/", "/conversation/", "/message/"];

/// Whether `path` is under one of the face's prefixes.
pub fn owns(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The document's 404 body for `path`.
fn not_found_at(path: &str, message: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "timestamp": iso_time(parlor_actors::now_ms()),
        "status": 404,
        "error": "Not Found",
        "message": message,
        "path": path,
    }))
}

/// An unknown path under the face's prefixes.
pub fn unknown(req: &HttpRequest) -> HttpResponse {
    not_found_at(req.path(), "no such route")
}

/// Middleware: a 404 of one of the face's routes in the document's error shape, which
/// names the request's path (an error alone does not know it).
pub async fn error_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> std::result::Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let res = next.call(req).await?;
    let missing = res
        .response()
        .error()
        .and_then(|e| e.as_error::<FaceError<ChatRoom>>())
        .filter(|e| matches!(e.err, ApiError::NotFound(_)))
        .map(|e| e.err.to_string());
    Ok(match missing {
        Some(message) => {
            let (req, _) = res.into_parts();
            let resp = not_found_at(req.path(), &message);
            ServiceResponse::new(req, resp).map_into_right_body()
        }
        None => res.map_into_left_body(),
    })
}

type Result<T = HttpResponse> = std::result::Result<T, FaceError<ChatRoom>>;
type Me = Caller<ChatRoom>;
type Form = Fields<ChatRoom>;
type State = web::Data<AppState>;

fn success(message: &str, extra: Value) -> HttpResponse {
    let mut body = json!({"success": true, "message": message});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    HttpResponse::Ok().json(body)
}

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/user/register", register)
        .post("/user/login", login)
        .get("/user/profile", my_profile)
        .get("/user/profile/{id}", profile)
        .post("/user/ban/{bannerId}", ban)
        .delete("/user/unban/{bannerId}", unban)
        .post("/contacts/add", add_contact)
        .delete("/contacts/remove/{contactId}", remove_contact)
        .get("/contacts/list", list_contacts)
        .post("/message/image", upload_image);
}

/// `POST /message/image`: an image in the multipart field `image`; the answer's `message`
/// is its URL (also `url`, with `width` and `height`).
async fn upload_image(req: HttpRequest, state: State, me: Me, payload: web::Payload) -> Result {
    let folder = format!("message/{}", crate::files::today());
    let (upload, _) =
        super::receive_multipart(&state, &req, payload, &["image"], crate::files::Accept::Images).await?;
    let file = crate::core::files::keep_in(&state, upload, me.tenant(), me.id(), &folder).await?;
    let url = crate::files::served_url(&file.path);
    Ok(success(
        &url,
        json!({"url": url, "width": file.width, "height": file.height}),
    ))
}

fn user_json(u: &UserRecord) -> Value {
    json!({
        "userId": u.id,
        "id": u.id,
        "username": u.username,
        "nickname": u.nickname,
        "email": u.email,
        "authority": u.role.as_str(),
    })
}

fn path_id(req: &HttpRequest, name: &str) -> std::result::Result<u64, ApiError> {
    super::path_id(req, name, "a user id")
}

fn check_chatroom_username(name: &str) -> std::result::Result<(), ApiError> {
    check_len("username", name, 1, 50)?;
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid("username must not contain spaces"));
    }
    Ok(())
}

async fn register(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    let nickname = form.str("nickname")?;
    let email = form.opt_str("email")?.filter(|e| !e.is_empty());
    check_chatroom_username(&username)?;
    check_len("password", &password, 6, 64)?;
    check_len("nickname", &nickname, 1, 50)?;
    if let Some(e) = &email {
        check_len("email", e, 3, 100)?;
        if !e.contains('@') {
            return Err(ApiError::invalid("email must be an address").into());
        }
    }
    let profile = Profile {
        nickname: Some(nickname),
        email,
    };
    let login = accounts::register(&state, &tenant, &username, password, profile).await?;
    Ok(success("注册成功！", json!({"id": login.user.id})))
}

async fn login(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_chatroom_username(&username)?;
    let login = accounts::login_quietly(&state, &tenant, &username, password, client_addr(&req)).await?;
    Ok(success(
        "登录成功",
        json!({"token": login.token, "id": login.user.id}),
    ))
}

async fn my_profile(state: State, me: Me) -> Result {
    let user = load_user(&state, me.tenant(), me.id()).await?;
    Ok(success("ok", json!({"user": user_json(&user)})))
}

async fn profile(req: HttpRequest, state: State, me: Me) -> Result {
    let id = path_id(&req, "id")?;
    let user = load_user(&state, me.tenant(), id).await?;
    Ok(success("ok", json!({"user": user_json(&user)})))
}

async fn add_contact(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("add contacts")?;
    let id = form.u64("id")?;
    social::befriend(&state, me.tenant(), me.id(), id, String::new(), false).await?;
    Ok(success("添加联系人成功", json!({})))
}

async fn remove_contact(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("remove contacts")?;
    let id = path_id(&req, "contactId")?;
    social::unfriend(&state, me.tenant(), me.id(), id).await?;
    Ok(success("删除联系人成功", json!({})))
}

async fn list_contacts(state: State, me: Me) -> Result {
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let contacts = state
        .read(move |s| {
            let mut out = Vec::new();
            for (friend, _) in s.friends_of(&tenant, id)? {
                if let Some(u) = s.user(&tenant, friend)? {
                    out.push(json!({"id": u.id, "username": u.username, "nickname": u.nickname}));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(success("ok", json!({"contacts": contacts})))
}

async fn ban(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("ban users")?;
    let id = path_id(&req, "bannerId")?;
    social::set_block(&state, me.tenant(), me.id(), id, true, true).await?;
    Ok(success("屏蔽成功", json!({})))
}

async fn unban(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("ban users")?;
    let id = path_id(&req, "bannerId")?;
    social::set_block(&state, me.tenant(), me.id(), id, false, true).await?;
    Ok(success("移除屏蔽成功", json!({})))
}

/// Registers the conversation and message routes.
pub fn conversation_routes(r: &mut Routes) {
    r.post("/conversation/create", create_conversation)
        .get("/conversation/getlist", list_conversations)
        .get("/conversation/members", conversation_members)
        .get("/message/history/{conversation_id}", message_history);
}

fn query(req: &HttpRequest) -> std::result::Result<Vec<(String, String)>, ApiError> {
    query_pairs(req)
}

/// The conversation key of a chat-room conversation number, for a participant.
async fn conversation_of(state: &State, me: &Me, number: &str) -> std::result::Result<String, ApiError> {
    let n: u64 = number
        .parse()
        .map_err(|_| ApiError::invalid("conversationId must be a conversation number"))?;
    let (t, my_id) = (me.tenant().to_owned(), me.id());
    state
        .read(move |s| {
            let conv = s
                .conv_by_number(&t, n)?
                .ok_or_else(|| ApiError::NotFound(format!("conversation {n} does not exist")))?;
            conversations::history_floor(s, &t, my_id, &conv)?;
            Ok(conv)
        })
        .await
}

fn members_of(s: &Snapshot, tenant: &str, conv: &str, me: u64) -> parlor_storage::Result<Vec<u64>> {
    match ConvKey::parse(conv) {
        Some(ConvKey::Direct { lo, hi }) => Ok([lo, hi].into_iter().filter(|u| *u != me).collect()),
        Some(ConvKey::Group(gid)) => Ok(s
            .members_of(tenant, gid)?
            .into_iter()
            .map(|(u, _)| u)
            .filter(|u| *u != me)
            .collect()),
        None => Ok(Vec::new()),
    }
}

async fn create_conversation(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("create conversations")?;
    let mut ids = Vec::new();
    for (k, v) in query(&req)? {
        if k == "contactId" || k == "contactId[]" {
            for part in v.split(',').filter(|p| !p.trim().is_empty()) {
                ids.push(
                    part.trim()
                        .parse::<u64>()
                        .map_err(|_| ApiError::invalid("contactId must be user ids"))?,
                );
            }
        }
    }
    ids.retain(|id| *id != me.id());
    if ids.is_empty() {
        return Err(ApiError::invalid("contactId is required").into());
    }
    let (owner, contacts) =
        groups::friends_as_members(&state, me.tenant(), me.id(), ids, "one of your contacts").await?;
    let (conv, kind) = if contacts.len() == 1 {
        // The single conversation with that contact: the same one every time.
        let conv = conversations::open_direct(&state, me.tenant(), me.id(), contacts[0].id).await?;
        (conv, "single")
    } else {
        let members = contacts.iter().map(party).collect();
        let g = groups::create(&state, me.tenant(), party(&owner), members, None, None).await?;
        (ConvKey::Group(g.id).to_string(), "group")
    };
    let n = conversations::numbers(&state, me.tenant(), vec![conv.clone()]).await?[&conv];
    let mut members: Vec<u64> = contacts.iter().map(|u| u.id).collect();
    members.sort_unstable();
    let c = json!({"id": n, "type": kind, "members": members});
    Ok(success(
        "创建会话成功",
        json!({"conversation": c, "conversations": [c]}),
    ))
}

fn content(m: &MessageRecord) -> String {
    match serde_json::from_str::<Value>(&m.data) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(o)) if m.action.is_some() => o
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => m.data.clone(),
    }
}

fn message_json(m: &MessageRecord) -> Value {
    let metadata = serde_json::from_str::<Value>(&m.options)
        .ok()
        .and_then(|o| o.get("metadata").cloned())
        .unwrap_or(Value::Null);
    json!({
        "id": m.seq,
        "uuid": m.id,
        "sender_id": m.from_id,
        "content": content(m),
        // The document's types are text and image: a revoked message is the text saying so.
        "type": if m.revoked { "text" } else { m.kind.as_str() },
        "sent_at": local_time(m.create_time),
        "revoked": m.revoked,
        "metadata": metadata,
    })
}

async fn list_conversations(state: State, me: Me) -> Result {
    let (t, my_id) = (me.tenant().to_owned(), me.id());
    let entries = state
        .read(move |s| {
            let mut out = Vec::new();
            for (conv, _) in s.cursors_of(&t, my_id)? {
                if let Some(e) = conversations::entry(s, &t, my_id, &conv)? {
                    if !e.deleted() {
                        let members = members_of(s, &t, &conv, my_id)?;
                        out.push((e, members));
                    }
                }
            }
            out.sort_by(|a, b| {
                b.0.activity()
                    .cmp(&a.0.activity())
                    .then_with(|| a.0.conv.cmp(&b.0.conv))
            });
            Ok(out)
        })
        .await?;
    let numbers = conversations::numbers(
        &state,
        me.tenant(),
        entries.iter().map(|(e, _)| e.conv.clone()).collect(),
    )
    .await?;
    let list: Vec<Value> = entries
        .iter()
        .map(|(e, members)| {
            let name = match (&e.group, &e.peer) {
                (Some(g), _) => g.name.clone(),
                (None, Some(u)) if !u.nickname.is_empty() => u.nickname.clone(),
                (None, Some(u)) => u.username.clone(),
                _ => String::new(),
            };
            json!({
                "id": numbers.get(&e.conv),
                "type": if e.is_group() { "group" } else { "single" },
                "members": members,
                "name": name,
                "unread": e.unread,
                "last_message": e.last.as_ref().map(message_json),
            })
        })
        .collect();
    Ok(success("ok", json!({"conversations": list})))
}

async fn conversation_members(req: HttpRequest, state: State, me: Me) -> Result {
    let q = query(&req)?;
    let number = q
        .iter()
        .find(|(k, _)| k == "conversationId")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    let number = number.ok_or_else(|| ApiError::invalid("conversationId is required"))?;
    let conv = conversation_of(&state, &me, &number).await?;
    let (t, my_id) = (me.tenant().to_owned(), me.id());
    let members = state
        .read(move |s| {
            let mut out = Vec::new();
            for id in members_of(s, &t, &conv, my_id)? {
                if let Some(u) = s.user(&t, id)? {
                    out.push(json!({"id": u.id, "username": u.username, "nickname": u.nickname}));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(success("ok", json!({"members": members})))
}

async fn message_history(req: HttpRequest, state: State, me: Me) -> Result {
    let number = req
        .match_info()
        .get("conversation_id")
        .unwrap_or_default()
        .to_owned();
    let conv = conversation_of(&state, &me, &number).await?;
    let q = query(&req)?;
    let param = |name: &str| -> std::result::Result<Option<u64>, ApiError> {
        match q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{name} must be an integer"))),
        }
    };
    let before = param("before")?;
    let limit = param("limit")?
        .unwrap_or(50)
        .clamp(1, state.config.limits.history_max as u64) as usize;
    let (t, my_id) = (me.tenant().to_owned(), me.id());
    let page = state
        .read(move |s| {
            let floor = conversations::history_floor(s, &t, my_id, &conv)?;
            Ok(s.history(&t, &conv, before, Some(floor), limit)?)
        })
        .await?;
    // A revoked message shows as revoked where it was; its revoke notice is not listed
    // again (a page may hold fewer than `limit` messages for it).
    let messages: Vec<Value> = page
        .messages
        .iter()
        .filter(|m| m.revoked || m.action.as_deref() != Some("revoke"))
        .map(message_json)
        .collect();
    Ok(success(
        "ok",
        json!({"messages": messages, "next_before": page.next_before}),
    ))
}
