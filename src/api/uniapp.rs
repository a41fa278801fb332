//! The uni-app chat face (`shared/seeds/002_*`): accounts, visitors, direct messages over
//! REST, offline messages and the native history read. Routes, form fields and response
//! shapes are the document's; success is `{"msg":"ok","data":...}`, failure
//! `{"msg":"fail","data":"reason"}` with the status of [`ApiError::status`].

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Local, Utc};
use parlor_actors::wire::MessageJson;
use parlor_actors::{direct_conv, Logout, Origin, Party, ReplayOffline, SendMessage};
use parlor_storage::{ChatType, Role, UserRecord};
use serde::Serialize;
use serde_json::{json, Value};

use super::{tenant_of, token_of, Caller, Face, FaceError, Fields};
use crate::auth::{valid_device_id, visitor_sign};
use crate::error::ApiError;
use crate::files;
use crate::routes::Routes;
use crate::state::AppState;

/// The uni-app face's envelope.
pub struct UniApp;

impl Face for UniApp {
    fn render(err: &ApiError) -> HttpResponse {
        HttpResponse::build(err.status()).json(json!({"msg": "fail", "data": err.to_string()}))
    }
}

type Result<T = HttpResponse> = std::result::Result<T, FaceError<UniApp>>;
type Me = Caller<UniApp>;
type Form = Fields<UniApp>;
type State = web::Data<AppState>;

pub(crate) fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({"msg": "ok", "data": data}))
}

/// Registers the face's routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/regChat", reg_chat)
        .post("/api/loginChat", login_chat)
        .post("/api/visitorRegister", visitor_register)
        .post("/api/visitorregChat", visitor_reg_chat)
        .post("/api/visitorloginChat", visitor_login_chat)
        .get("/api/userinfo/{uuid}", userinfo)
        .post("/api/chat/logout", logout)
        .post("/api/chat/searchUser", search_user)
        .post("/api/chat/updateUserinfo", update_userinfo)
        .post("/api/chat/userset", userset)
        .post("/api/chat/socket/sendmessage", send_message)
        .post("/api/chat/chatGetmessageOffLine", offline_messages)
        .get("/api/chat/history/{chat_type}/{id}", history);
}

// ---------------------------------------------------------------------------------------
// Rendering

pub(crate) fn local_time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(crate) fn iso_time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A user as the account routes return it, with a token when one was issued.
pub fn user_json(u: &UserRecord, token: Option<&str>) -> Value {
    let mut v = json!({
        "create_time": local_time(u.created_ms),
        "id": u.id,
        "uuid": u.uuid,
        "username": u.username,
        "nickname": u.nickname,
        "avatar": u.avatar,
        "mobile": u.mobile,
        "email": u.email,
        "status": u.status,
        "last_login": u.last_login_ms.map(iso_time),
        "last_login_ip": null,
        "register_time": iso_time(u.created_ms),
        "register_ip": null,
        "is_deleted": 0,
        "wechat_openid": null,
        "qq_openid": null,
        "weibo_uid": null,
        "role": u.role.as_str(),
        "is_email_verified": 0,
        "is_mobile_verified": 0,
        "order": 50,
        "update_time": iso_time(u.updated_ms),
        "app_id": u.tenant,
    });
    if let Some(device) = &u.device_id {
        v["devicefingeruuid"] = json!(device);
        v["uniplatform"] = json!(u.uniplatform);
        v["devicemodel"] = json!(u.devicemodel);
        v["deviceos"] = json!(u.deviceos);
        v["devicebrand"] = json!(u.devicebrand);
    }
    if let Some(token) = token {
        v["token"] = json!(token);
    }
    v
}

/// The `userinfo` sub-object of profiles.
pub fn userinfo_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "gender": u.gender,
        "birthday": u.birthday,
        "bio": u.bio,
        "location": u.location,
        "website": u.website,
    })
}

/// How messages name a user.
pub fn party(u: &UserRecord) -> Party {
    let name = if u.nickname.is_empty() {
        u.username.clone()
    } else {
        u.nickname.clone()
    };
    Party {
        id: u.id,
        name,
        avatar: u.avatar.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Input rules

fn check_username(name: &str) -> std::result::Result<(), ApiError> {
    let ok = (4..=20).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("username must be 4 to 20 letters, digits or _"))
    }
}

fn check_password(pw: &str) -> std::result::Result<(), ApiError> {
    if (6..=20).contains(&pw.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid("password must be 6 to 20 characters"))
    }
}

pub(crate) fn check_len(
    name: &str,
    value: &str,
    min: usize,
    max: usize,
) -> std::result::Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid(format!(
            "{name} must be {min} to {max} characters"
        )));
    }
    Ok(())
}

/// Message content as JSON text: a string stays a string, any other JSON is kept as is.
pub fn content_json(v: &Value) -> String {
    v.to_string()
}

/// Options as JSON text: absent or empty is `{}`; a string must hold JSON.
pub fn options_json(v: Option<&Value>) -> std::result::Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok("{}".into()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok("{}".into()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map(|parsed| parsed.to_string())
            .map_err(|_| ApiError::invalid("options must be a JSON string")),
        Some(other) => Ok(other.to_string()),
    }
}

pub(crate) fn new_user(state: &AppState, tenant: &str, username: &str, role: Role) -> UserRecord {
    let defaults = &state.config.users;
    let now = parlor_actors::now_ms();
    UserRecord {
        id: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.to_owned(),
        username: username.to_owned(),
        password_hash: String::new(),
        nickname: String::new(),
        avatar: defaults.default_avatar.clone(),
        role,
        status: 1,
        mobile: None,
        email: None,
        gender: "unknown".into(),
        birthday: None,
        bio: None,
        location: None,
        website: None,
        userset: defaults.default_userset.clone(),
        invite_confirm: defaults.default_invite_confirm,
        device_id: None,
        uniplatform: String::new(),
        devicemodel: String::new(),
        deviceos: String::new(),
        devicebrand: String::new(),
        created_ms: now,
        updated_ms: now,
        last_login_ms: None,
    }
}

async fn hash(state: &State, password: String) -> std::result::Result<String, ApiError> {
    let auth = state.auth.clone();
    web::block(move || auth.hash_password(&password)).await?
}

pub(crate) async fn insert_user(
    state: &State,
    mut user: UserRecord,
) -> std::result::Result<UserRecord, ApiError> {
    let username = user.username.clone();
    state
        .store
        .writer()
        .write(move |tx| {
            tx.insert_user(&mut user)?;
            Ok(user)
        })
        .await
        .map_err(|e| match e {
            parlor_storage::Error::Conflict(_) => {
                ApiError::Conflict(format!("username {username} is already taken"))
            }
            other => other.into(),
        })
}

/// Loads a user of the caller's tenant, refusing an unknown id.
pub(crate) async fn load_user(
    state: &State,
    tenant: &str,
    id: u64,
) -> std::result::Result<UserRecord, ApiError> {
    let tenant = tenant.to_owned();
    state
        .read(move |s| {
            s.user(&tenant, id)?
                .ok_or_else(|| ApiError::NotFound(format!("user {id} does not exist")))
        })
        .await
}

/// Changes a stored user in one write and returns it.
async fn update_user<F>(
    state: &State,
    tenant: &str,
    id: u64,
    change: F,
) -> std::result::Result<UserRecord, ApiError>
where
    F: FnOnce(&mut UserRecord) + Send + 'static,
{
    let tenant = tenant.to_owned();
    Ok(state
        .store
        .writer()
        .write(move |tx| {
            let mut u = tx
                .user(&tenant, id)?
                .ok_or_else(|| parlor_storage::Error::NotFound(format!("user {id}")))?;
            change(&mut u);
            tx.put_user(&u)?;
            Ok(u)
        })
        .await?)
}

/// Records a login (time and device fields) and returns the updated user.
async fn touch_login(
    state: &State,
    tenant: &str,
    id: u64,
    device: Option<DeviceInfo>,
) -> std::result::Result<UserRecord, ApiError> {
    update_user(state, tenant, id, move |u| {
        u.last_login_ms = Some(parlor_actors::now_ms());
        if let Some(d) = device {
            d.apply(u);
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Accounts

async fn reg_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let mut user = new_user(&state, &tenant, &username, Role::User);
    user.password_hash = hash(&state, password).await?;
    let user = insert_user(&state, user).await?;
    let (token, _) = state.auth.issue(&user);
    Ok(ok(user_json(&user, Some(&token))))
}

pub(crate) async fn password_login(
    state: &State,
    tenant: &str,
    username: &str,
    password: String,
) -> std::result::Result<UserRecord, ApiError> {
    let wrong = || ApiError::Unauthorized("username or password is wrong".into());
    let (t, name) = (tenant.to_owned(), username.to_owned());
    let user = state
        .read(move |s| Ok(s.user_by_username(&t, &name)?))
        .await?
        .ok_or_else(wrong)?;
    if user.password_hash.is_empty() {
        return Err(wrong());
    }
    let auth = state.auth.clone();
    let hash = user.password_hash.clone();
    if !web::block(move || auth.check_password(&hash, &password)).await? {
        return Err(wrong());
    }
    if user.status != 1 {
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    Ok(user)
}

async fn login_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let user = password_login(&state, &tenant, &username, password).await?;
    let user = touch_login(&state, &tenant, user.id, None).await?;
    let (token, _) = state.auth.issue(&user);
    Ok(ok(user_json(&user, Some(&token))))
}

async fn logout(state: State, me: Me) -> Result {
    let (jti, exp) = (me.claims.jti.clone(), me.claims.exp);
    state.auth.revoke(&jti, exp);
    let persisted = jti.clone();
    state
        .store
        .writer()
        .write(move |tx| tx.revoke_token(&persisted, exp))
        .await?;
    state.router.do_send(Logout {
        user: me.key(),
        jti: Arc::from(jti.as_str()),
    });
    Ok(ok(true))
}

async fn search_user(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("search users")?;
    let keyword = form.str("keyword")?;
    check_len("keyword", keyword.trim(), 1, 50)?;
    let (tenant, my_id, max) = (me.tenant().to_owned(), me.id(), state.config.limits.search_max);
    let found = state
        .read(move |s| Ok(s.search_users(&tenant, keyword.trim(), max + 1)?))
        .await?;
    let list: Vec<Value> = found
        .iter()
        .filter(|u| u.id != my_id)
        .take(max)
        .map(|u| json!({"id": u.id, "username": u.username, "avatar": u.avatar, "role": u.role.as_str(), "uuid": u.uuid, "nickname": u.nickname}))
        .collect();
    Ok(ok(list))
}

async fn userinfo(req: HttpRequest, state: State, path: web::Path<String>) -> Result {
    let uuid = path.into_inner();
    // A public route: the tenant is the token's when one is given, else X-App-Id, else default.
    let tenant = match token_of(&req) {
        Some(t) if !t.is_empty() => state.auth.verify(&t)?.app_id,
        _ => tenant_of(&req, &Form::from_map(Default::default()))?,
    };
    let key = uuid.clone();
    let user = state
        .read(move |s| Ok(s.user_by_uuid(&tenant, &key)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {uuid} does not exist")))?;
    Ok(ok(json!({
        "uuid": user.uuid,
        "username": user.username,
        "nickname": user.nickname,
        "avatar": user.avatar,
        "role": user.role.as_str(),
        "userinfo": userinfo_json(&user),
        "userset": user.userset,
    })))
}

async fn update_userinfo(state: State, me: Me, form: Form) -> Result {
    let field = form.str("fieldname")?;
    check_len("fieldname", &field, 1, 30)?;
    let value = form.opt_str("fieldValue")?.unwrap_or_default();
    let visitor_fields = ["nickname", "avatar"];
    if me.role() == Some(Role::Visitor) && !visitor_fields.contains(&field.as_str()) {
        return Err(ApiError::Forbidden(format!("visitors cannot change {field}")).into());
    }
    let optional = |v: &str| if v.is_empty() { None } else { Some(v.to_owned()) };
    let apply: Box<dyn FnOnce(&mut UserRecord) + Send> = match field.as_str() {
        "nickname" => {
            check_len("fieldValue", &value, 1, 50)?;
            Box::new(move |u| u.nickname = value)
        }
        "avatar" => {
            check_len("fieldValue", &value, 1, 1000)?;
            Box::new(move |u| u.avatar = value)
        }
        "invite_confirm" => {
            let v: u8 = match value.as_str() {
                "0" => 0,
                "1" => 1,
                _ => return Err(ApiError::invalid("invite_confirm must be 0 or 1").into()),
            };
            Box::new(move |u| u.invite_confirm = v)
        }
        "gender" => {
            if !["male", "female", "unknown"].contains(&value.as_str()) {
                return Err(ApiError::invalid("gender must be male, female or unknown").into());
            }
            Box::new(move |u| u.gender = value)
        }
        "birthday" => {
            if !value.is_empty() && chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d").is_err() {
                return Err(ApiError::invalid("birthday must be YYYY-MM-DD").into());
            }
            let v = optional(&value);
            Box::new(move |u| u.birthday = v)
        }
        "bio" | "location" | "website" | "email" | "mobile" => {
            check_len("fieldValue", &value, 0, 500)?;
            if field == "email" && !value.is_empty() && !value.contains('@') {
                return Err(ApiError::invalid("email must be an address").into());
            }
            let v = optional(&value);
            match field.as_str() {
                "bio" => Box::new(move |u| u.bio = v),
                "location" => Box::new(move |u| u.location = v),
                "website" => Box::new(move |u| u.website = v),
                "email" => Box::new(move |u| u.email = v),
                _ => Box::new(move |u| u.mobile = v),
            }
        }
        other => return Err(ApiError::invalid(format!("fieldname {other} cannot be changed")).into()),
    };
    update_user(&state, me.tenant(), me.id(), move |u| {
        apply(u);
        u.updated_ms = parlor_actors::now_ms();
    })
    .await?;
    Ok(ok("更新成功"))
}

async fn userset(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("change user settings")?;
    let text = form.str("userset")?;
    let parsed: Value =
        serde_json::from_str(&text).map_err(|_| ApiError::invalid("userset must be a JSON string"))?;
    if !parsed.is_object() {
        return Err(ApiError::invalid("userset must be a JSON object").into());
    }
    if text.len() > 4096 {
        return Err(ApiError::TooLarge("userset is over 4096 bytes".into()).into());
    }
    let stored = parsed.to_string();
    update_user(&state, me.tenant(), me.id(), move |u| {
        u.userset = stored;
        u.updated_ms = parlor_actors::now_ms();
    })
    .await?;
    Ok(ok("ok"))
}

// ---------------------------------------------------------------------------------------
// Visitors

/// The device fields a visitor request may carry.
struct DeviceInfo {
    device_id: String,
    uniplatform: Option<String>,
    devicemodel: Option<String>,
    deviceos: Option<String>,
    devicebrand: Option<String>,
}

impl DeviceInfo {
    fn read(form: &Form, device_id: String) -> std::result::Result<Self, ApiError> {
        let field = |name: &str| -> std::result::Result<Option<String>, ApiError> {
            let v = form.opt_str(name)?;
            if let Some(v) = &v {
                check_len(name, v, 0, 50)?;
            }
            Ok(v)
        };
        Ok(DeviceInfo {
            device_id,
            uniplatform: field("uniplatform")?,
            devicemodel: field("devicemodel")?,
            deviceos: field("deviceos")?,
            devicebrand: field("devicebrand")?,
        })
    }

    fn apply(self, u: &mut UserRecord) {
        u.device_id = Some(self.device_id);
        if let Some(v) = self.uniplatform {
            u.uniplatform = v;
        }
        if let Some(v) = self.devicemodel {
            u.devicemodel = v;
        }
        if let Some(v) = self.deviceos {
            u.deviceos = v;
        }
        if let Some(v) = self.devicebrand {
            u.devicebrand = v;
        }
    }
}

/// Checks a visitor request: device id shape, the per-device rate, the timestamp window
/// and the signature. Returns the device id.
fn visitor_check(req: &HttpRequest, state: &State, form: &Form) -> std::result::Result<String, ApiError> {
    let auth = &state.config.auth;
    let sign = req
        .headers()
        .get("x-security-sign")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("X-Security-Sign is required".into()))?;
    let device = form.str("deviceId")?;
    if !valid_device_id(&device) {
        return Err(ApiError::invalid(
            "deviceId must be a 36-character device identifier",
        ));
    }
    let ts_text = form.str("timestamp")?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid("timestamp must be milliseconds since the epoch"))?;
    if !state.devices.allow(&device) {
        return Err(ApiError::TooMany(format!(
            "at most {} visitor requests per device per hour",
            auth.visitor_requests_per_hour
        )));
    }
    let skew_ms = (parlor_actors::now_ms() as i64).saturating_sub(ts).unsigned_abs();
    if skew_ms > auth.visitor_window_secs.saturating_mul(1000) {
        return Err(ApiError::Unauthorized(format!(
            "signature expired: timestamp is more than {} s from the server's clock",
            auth.visitor_window_secs
        )));
    }
    let expected = visitor_sign(
        &device,
        &auth.visitor_salt,
        ts_text.trim(),
        &auth.visitor_app_secret,
    );
    if !expected.eq_ignore_ascii_case(sign) {
        return Err(ApiError::Unauthorized("X-Security-Sign is invalid".into()));
    }
    Ok(device)
}

async fn visitor_register(req: HttpRequest, state: State, form: Form) -> Result {
    let device = visitor_check(&req, &state, &form)?;
    let tenant = tenant_of(&req, &form)?;
    let info = DeviceInfo::read(&form, device.clone())?;
    let (t, d) = (tenant.clone(), device.clone());
    // Only a visitor is handed out by device: once upgraded (visitorregChat) the account
    // has a password, and the device gets a new visitor.
    let known = state
        .read(move |s| Ok(s.user_by_device(&t, &d)?))
        .await?
        .filter(|u| u.role == Role::Visitor);
    let user = match known {
        Some(u) => touch_login(&state, &tenant, u.id, Some(info)).await?,
        None => {
            let compact: String = device.chars().filter(|c| *c != '-').collect();
            let short = format!("VIS{}", &compact[..8]);
            let long = format!("VIS{compact}");
            let tenant2 = tenant.clone();
            let mut u = new_user(&state, &tenant, &short, Role::Visitor);
            state
                .store
                .writer()
                .write(move |tx| {
                    // A second visitor whose device starts alike gets the longer name.
                    if tx.user_id_by_username(&tenant2, &short)?.is_some() {
                        u.username = long;
                    }
                    u.last_login_ms = Some(u.created_ms);
                    info.apply(&mut u);
                    tx.insert_user(&mut u)?;
                    tx.bind_device(&tenant2, u.device_id.as_deref().unwrap_or_default(), u.id)?;
                    Ok(u)
                })
                .await?
        }
    };
    let (token, _) = state.auth.issue(&user);
    Ok(ok(user_json(&user, Some(&token))))
}

async fn visitor_reg_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let device = visitor_check(&req, &state, &form)?;
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let password_hash = hash(&state, password).await?;
    let info = DeviceInfo::read(&form, device.clone())?;
    let (t, d) = (tenant.clone(), device.clone());
    let visitor = state
        .read(move |s| Ok(s.user_by_device(&t, &d)?))
        .await?
        .filter(|u| u.role == Role::Visitor);
    let user = match visitor {
        // The device's visitor becomes a user: same id, so its conversations carry over.
        Some(v) => {
            let (tenant2, name) = (tenant.clone(), username.clone());
            state
                .store
                .writer()
                .write(move |tx| {
                    let mut u = tx
                        .user(&tenant2, v.id)?
                        .ok_or_else(|| parlor_storage::Error::NotFound("visitor".into()))?;
                    u.username = name;
                    u.password_hash = password_hash;
                    u.role = Role::User;
                    u.updated_ms = parlor_actors::now_ms();
                    u.last_login_ms = Some(u.updated_ms);
                    info.apply(&mut u);
                    tx.put_user(&u)?;
                    Ok(u)
                })
                .await
                .map_err(|e| match e {
                    parlor_storage::Error::Conflict(_) => {
                        ApiError::Conflict(format!("username {username} is already taken"))
                    }
                    other => other.into(),
                })?
        }
        None => {
            let mut u = new_user(&state, &tenant, &username, Role::User);
            u.password_hash = password_hash;
            u.last_login_ms = Some(u.created_ms);
            info.apply(&mut u);
            insert_user(&state, u).await?
        }
    };
    let (token, _) = state.auth.issue(&user);
    Ok(ok(user_json(&user, Some(&token))))
}

async fn visitor_login_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let device = visitor_check(&req, &state, &form)?;
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let info = DeviceInfo::read(&form, device)?;
    let user = password_login(&state, &tenant, &username, password).await?;
    let user = touch_login(&state, &tenant, user.id, Some(info)).await?;
    let (token, _) = state.auth.issue(&user);
    Ok(ok(user_json(&user, Some(&token))))
}

// ---------------------------------------------------------------------------------------
// Messages

async fn send_message(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    let to = form.u64("sendto_id")?;
    let chat_type = match form.opt_str("chatType")?.as_deref() {
        None | Some("single") => ChatType::Single,
        Some("group") => ChatType::Group,
        Some(_) => return Err(ApiError::invalid("chatType must be single or group").into()),
    };
    let kind = form.str("type")?;
    let data = form
        .value("data")
        .ok_or_else(|| ApiError::invalid("data is required"))?;
    let data = content_json(data);
    let options = files::with_metadata(options_json(form.value("options"))?, form.value("metadata"))?;
    let cid = form.opt_str("cid")?;
    let tenant = me.tenant().to_owned();
    let host = req.connection_info().host().to_owned();
    let options = files::fill_metadata(&state, &tenant, &kind, &data, options, &host).await?;
    let (from, to_user) = if chat_type == ChatType::Single {
        let (t, from_id) = (tenant.clone(), me.id());
        let (from, to_user) = state
            .read(move |s| {
                let from = s
                    .user(&t, from_id)?
                    .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
                let to = s
                    .user(&t, to)?
                    .ok_or_else(|| ApiError::NotFound(format!("user {to} does not exist")))?;
                Ok((from, to))
            })
            .await?;
        (party(&from), party(&to_user))
    } else {
        let from = load_user(&state, &tenant, me.id()).await?;
        (
            party(&from),
            Party {
                id: to,
                ..Party::default()
            },
        )
    };
    let msg = SendMessage {
        tenant: Arc::from(tenant.as_str()),
        from,
        from_role: me.role().unwrap_or(Role::User),
        to: to_user,
        chat_type,
        kind,
        data,
        options,
        cid,
        origin: Origin::Rest,
    };
    let stored = match chat_type {
        ChatType::Single => state.router.send(msg).await??,
        ChatType::Group => crate::groups::send(&state, &tenant, to, msg).await?,
    };
    Ok(ok(MessageJson::new(&stored)))
}

async fn offline_messages(state: State, me: Me) -> Result {
    state.router.send(ReplayOffline { user: me.key() }).await?;
    Ok(ok("ok"))
}

async fn history(req: HttpRequest, state: State, me: Me, path: web::Path<(String, String)>) -> Result {
    let (chat_type, id) = path.into_inner();
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid("malformed query string"))?
        .into_inner();
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
    let limit = param("limit")?
        .unwrap_or(20)
        .clamp(1, state.config.limits.history_max as u64) as usize;
    let tenant = me.tenant().to_owned();
    let my_id = me.id();
    let conv = match chat_type.as_str() {
        "single" => {
            let peer: u64 = id
                .parse()
                .map_err(|_| ApiError::invalid("id must be a user id"))?;
            load_user(&state, &tenant, peer).await?;
            direct_conv(my_id, peer)
        }
        "group" => {
            let gid: u64 = id
                .parse()
                .map_err(|_| ApiError::invalid("id must be a group id"))?;
            parlor_actors::group::group_conv(gid)
        }
        "conversation" => id,
        _ => return Err(ApiError::invalid("chatType must be single, group or conversation").into()),
    };
    let c = conv.clone();
    // A member sees history after joining a group and after deleting the conversation.
    let page = state
        .read(move |s| {
            let floor = crate::conversations::history_floor(s, &tenant, my_id, &c)?;
            let after = Some(after.unwrap_or(0).max(floor));
            Ok(s.history(&tenant, &c, before, after, limit)?)
        })
        .await?;
    let list: Vec<MessageJson<'_>> = page.messages.iter().map(MessageJson::new).collect();
    Ok(ok(json!({
        "conversation": conv,
        "list": list,
        "next_before": page.next_before,
        "head": page.head,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        assert!(check_username("my01").is_ok());
        assert!(check_username("my_user_2024").is_ok());
        assert!(check_username("abc").is_err());
        assert!(check_username("a".repeat(21).as_str()).is_err());
        assert!(check_username("bad-name").is_err());
        assert!(check_password("123456").is_ok());
        assert!(check_password("12345").is_err());
        assert!(check_password(&"x".repeat(21)).is_err());
    }

    #[test]
    fn options_are_json() {
        assert_eq!(options_json(None).unwrap(), "{}");
        assert_eq!(options_json(Some(&json!(""))).unwrap(), "{}");
        assert_eq!(options_json(Some(&json!("{\"a\":1}"))).unwrap(), "{\"a\":1}");
        assert_eq!(options_json(Some(&json!({"b": 2}))).unwrap(), "{\"b\":2}");
        assert!(options_json(Some(&json!("{not json"))).is_err());
    }
}
