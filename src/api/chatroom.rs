//! The chat-room face (`shared/seeds/003_*`): users, contacts and bans. Success is
//! `{"success":true,"message":...}` plus the document's payload fields; failure is
//! `{"success":false,"message":"reason"}` with the status of [`ApiError::status`].
//! Contacts are the core's friendships: a contact added here is a friend on the uni-app
//! face and the reverse. A ban is the core's block: the banned user's messages to the
//! banning user are refused.

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_storage::{Role, UserRecord};
use serde_json::{json, Value};

use super::uniapp::{check_len, load_user, new_user, password_login};
use super::{tenant_of, Caller, Face, FaceError, Fields};
use crate::error::ApiError;
use crate::social;
use crate::state::AppState;

/// The chat-room face's envelope.
pub struct ChatRoom;

impl Face for ChatRoom {
    fn render(err: &ApiError) -> HttpResponse {
        HttpResponse::build(err.status()).json(json!({"success": false, "message": err.to_string()}))
    }
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
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/user/register", web::post().to(register))
        .route("/user/login", web::post().to(login))
        .route("/user/profile", web::get().to(my_profile))
        .route("/user/profile/{id}", web::get().to(profile))
        .route("/user/ban/{bannerId}", web::post().to(ban))
        .route("/user/unban/{bannerId}", web::delete().to(unban))
        .route("/contacts/add", web::post().to(add_contact))
        .route("/contacts/remove/{contactId}", web::delete().to(remove_contact))
        .route("/contacts/list", web::get().to(list_contacts));
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
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::invalid(format!("{name} must be a user id")))
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
    let mut user = new_user(&state, &tenant, &username, Role::User);
    user.nickname = nickname;
    user.email = email;
    let auth = state.auth.clone();
    user.password_hash = web::block(move || auth.hash_password(&password)).await??;
    let user = super::uniapp::insert_user(&state, user).await?;
    Ok(success("注册成功！", json!({"id": user.id})))
}

async fn login(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_chatroom_username(&username)?;
    let user = password_login(&state, &tenant, &username, password).await?;
    let (token, _) = state.auth.issue(&user);
    Ok(success("登录成功", json!({"token": token, "id": user.id})))
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
