//! The uni-app face's accounts: register, log in and out, search, profiles, passwords and settings,
//! and visitors (a signed device registers, logs in, and can become a user keeping its id).

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_storage::{Role, UserRecord};
use serde_json::{json, Value};

use super::{ok, user_json, userinfo_json, Form, Me, Result, State};
use crate::auth::{valid_device_id, visitor_sign};
use crate::core::accounts::{self, check_password, check_username, Device, Login, Profile};
use crate::core::{check_len, lifecycle, presence as seen};
use crate::error::ApiError;
use crate::faces::{client_addr, tenant_of, token_of};
use crate::routes::Routes;

/// Registers the routes.
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
        .post("/api/chat/updatePassword", update_password)
        .post("/api/chat/userset", userset)
        .post("/api/chat/presence", presence);
}

// ---------------------------------------------------------------------------------------
// Accounts

async fn reg_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let login = accounts::register(&state, &tenant, &username, password, Profile::default()).await?;
    Ok(logged_in(&login))
}

fn logged_in(login: &Login) -> HttpResponse {
    ok(user_json(&login.user, Some(&login.token)))
}

async fn login_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let tenant = tenant_of(&req, &form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    let login = accounts::login(&state, &tenant, &username, password, None, client_addr(&req)).await?;
    Ok(logged_in(&login))
}

async fn logout(state: State, me: Me) -> Result {
    accounts::logout(&state, &me.claims).await?;
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
    if field == "hide_presence" {
        let hidden = match value.as_str() {
            "0" => false,
            "1" => true,
            _ => return Err(ApiError::invalid("hide_presence must be 0 or 1").into()),
        };
        seen::set_hidden(&state, me.tenant(), me.id(), hidden).await?;
        return Ok(ok("更新成功"));
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
    accounts::update_profile(&state, me.tenant(), me.id(), apply).await?;
    Ok(ok("更新成功"))
}

/// Changes the caller's password; the caller's token stays valid, the user's others are
/// revoked and their sockets closed.
async fn update_password(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    let old = form.str("oldPassword")?;
    let new = form.str("newPassword")?;
    lifecycle::change_password(&state, &me.claims, old, new, client_addr(&req)).await?;
    Ok(ok("密码修改成功"))
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
    accounts::update_profile(&state, me.tenant(), me.id(), move |u| u.userset = stored).await?;
    Ok(ok("ok"))
}

// ---------------------------------------------------------------------------------------
// Visitors

/// The device fields of a visitor request.
fn device(form: &Form, device_id: String) -> std::result::Result<Device, ApiError> {
    let field = |name: &str| -> std::result::Result<Option<String>, ApiError> {
        let v = form.opt_str(name)?;
        if let Some(v) = &v {
            check_len(name, v, 0, 50)?;
        }
        Ok(v)
    };
    Ok(Device {
        device_id,
        uniplatform: field("uniplatform")?,
        devicemodel: field("devicemodel")?,
        deviceos: field("deviceos")?,
        devicebrand: field("devicebrand")?,
    })
}

/// Checks a visitor request: device id shape, the timestamp window, the signature, then
/// the per-device rate. Returns the device id.
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
    // Only a request that passed the checks counts against the device: a forged one
    // cannot use up a real device's hour.
    if !state.devices.allow(&device) {
        return Err(ApiError::TooMany(format!(
            "at most {} visitor requests per device per hour",
            auth.visitor_requests_per_hour
        )));
    }
    Ok(device)
}

async fn visitor_register(req: HttpRequest, state: State, form: Form) -> Result {
    let device_id = visitor_check(&req, &state, &form)?;
    let tenant = tenant_of(&req, &form)?;
    let device = device(&form, device_id)?;
    let login = accounts::visitor(&state, &tenant, device, client_addr(&req)).await?;
    Ok(logged_in(&login))
}

/// A signed visitor request carrying an account's credentials: its tenant, username,
/// password and device, checked in that order.
fn signed_credentials(
    req: &HttpRequest,
    state: &State,
    form: &Form,
) -> std::result::Result<(String, String, String, Device), ApiError> {
    let device_id = visitor_check(req, state, form)?;
    let tenant = tenant_of(req, form)?;
    let username = form.str("username")?;
    let password = form.str("password")?;
    check_username(&username)?;
    check_password(&password)?;
    Ok((tenant, username, password, device(form, device_id)?))
}

async fn visitor_reg_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let (tenant, username, password, device) = signed_credentials(&req, &state, &form)?;
    let login = accounts::register_from_device(&state, &tenant, &username, password, device).await?;
    Ok(logged_in(&login))
}

async fn visitor_login_chat(req: HttpRequest, state: State, form: Form) -> Result {
    let (tenant, username, password, device) = signed_credentials(&req, &state, &form)?;
    let login = accounts::login(
        &state,
        &tenant,
        &username,
        password,
        Some(device),
        client_addr(&req),
    )
    .await?;
    Ok(logged_in(&login))
}

/// Whether each of `userIds` (friends, fellow group members, oneself; the others are left
/// out) is online, and when the others were last seen.
async fn presence(state: State, me: Me, form: Form) -> Result {
    let ids = super::groups::id_list(&form, "userIds")?;
    let seen = seen::query(&state, me.tenant(), me.id(), ids).await?;
    let list: Vec<Value> = seen
        .iter()
        .map(|s| json!({"userId": s.user, "online": s.online, "lastSeen": s.last_seen, "hidden": s.hidden}))
        .collect();
    Ok(ok(list))
}
