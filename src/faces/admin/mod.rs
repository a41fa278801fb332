//! The admin face (WildFire style, `shared/seeds/001_*`), served on its own listener
//! (`admin.bind`) and only when `admin.secret` is set.
//!
//! Every request carries the headers `nonce`, `timestamp` (ms) and `sign` = lowercase hex
//! sha1 of `nonce|secret|timestamp`. Unlike the system the document comes from, a timestamp
//! more than `admin.window_secs` from the server's clock is refused, and so is a nonce seen
//! before within that window (replay). Answers are HTTP 200 with
//! `{"code":0,"msg":"success","result":...}`, or a non-zero `code`:
//!
//! | code | meaning |
//! | --- | --- |
//! | 239 | not signed: a header is missing |
//! | 243 | sign expired: the timestamp is outside the window |
//! | 244 | auth failure: wrong sign, or a replayed nonce |
//! | 250 | over frequency: too many refused requests from one address in the window |
//! | 251 | invalid parameter: a missing or wrong field, a body that is not JSON |
//! | 253 | not exist: an unknown user, conversation, message or setting |
//! | 4 | server error (storage failure, busy) |
//! The face's parts: `signing` (the signed request), `robots`, `users` (list, disable,
//! enable, kick, delete), `settings`, `files`, `export` and `webhooks`. Errors are [`ApiError`]s
//! rendered by [`Admin`], the face's [`Face`]: the code of the table above from the error's
//! kind, 239 and 243 being the signing refusals told apart by their reason.

mod export;
mod files;
mod robots;
mod settings;
mod signing;
mod users;
mod webhooks;

use actix_web::{web, HttpResponse};
use parlor_actors::ConvKey;
use parlor_storage::{Snapshot, UserRecord};
use serde_json::{json, Value};

pub use signing::{sign, Signatures, Signed};

use crate::error::ApiError;
use crate::faces::{Face, FaceError};
use crate::routes::Routes;
use crate::state::AppState;

/// The reason that starts a refusal for a missing or malformed signing header (code 239).
const NOT_SIGNED: &str = "not signed:";
/// The reason that starts a refusal for a timestamp outside the window (code 243).
const SIGN_EXPIRED: &str = "sign expired:";

/// The admin face: every answer is HTTP 200 `{"code", "msg"}`, the code telling the kind.
pub struct Admin;

impl Admin {
    /// The document's code for an error.
    pub fn code(err: &ApiError) -> u16 {
        match err {
            ApiError::Unauthorized(m) if m.starts_with(NOT_SIGNED) => 239,
            ApiError::Unauthorized(m) if m.starts_with(SIGN_EXPIRED) => 243,
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => 244,
            ApiError::TooMany(_) | ApiError::Throttled { .. } => 250,
            ApiError::Invalid(_) | ApiError::Conflict(_) | ApiError::TooLarge(_) => 251,
            ApiError::NotFound(_) => 253,
            ApiError::Overloaded(_)
            | ApiError::Unavailable(_)
            | ApiError::Storage(_)
            | ApiError::Internal(_) => 4,
        }
    }
}

impl Face for Admin {
    fn render(err: &ApiError) -> HttpResponse {
        HttpResponse::Ok().json(json!({"code": Admin::code(err), "msg": err.to_string()}))
    }
}

type Result<T = HttpResponse> = std::result::Result<T, FaceError<Admin>>;
type State = web::Data<AppState>;

fn success(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "result": result}))
}

/// Registers the admin routes.
pub fn routes(r: &mut Routes) {
    r.post("/admin/robot/create", robots::robot_create)
        .post("/admin/user/put_setting", settings::put_setting)
        .post("/admin/user/get_setting", settings::get_setting)
        .post("/admin/user/list", users::list)
        .post("/admin/user/disable", users::disable)
        .post("/admin/user/enable", users::enable)
        .post("/admin/user/kick", users::kick)
        .post("/admin/user/delete", users::delete)
        .post("/admin/get_setting", settings::get_system_setting)
        .post("/admin/modify_setting", settings::modify_system_setting)
        .post("/admin/file/conversation_files", files::conversation_files)
        .post("/admin/file/user_files", files::user_files)
        .post("/admin/file/get", files::file_get)
        .post("/admin/conversation/top", settings::conversation_top)
        .post("/admin/conversation/is_top", settings::conversation_is_top)
        .post("/admin/healthcheck", healthcheck)
        .get("/admin/healthcheck", healthcheck)
        .post("/admin/customer", customer)
        .post("/admin/export", export::export)
        .post("/admin/webhook/add", webhooks::add)
        .post("/admin/webhook/list", webhooks::list)
        .post("/admin/webhook/remove", webhooks::remove)
        .post("/admin/webhook/dead_letters", webhooks::dead_letters)
        .post("/admin/webhook/retry", webhooks::retry);
}

/// Unknown admin routes.
pub async fn not_found() -> HttpResponse {
    let mut answer = Admin::render(&ApiError::not_found("no such route"));
    *answer.status_mut() = actix_web::http::StatusCode::NOT_FOUND;
    answer
}

/// The user an admin `userId` names: its uuid, or its numeric id.
fn find_user(s: &Snapshot, tenant: &str, id: &str) -> std::result::Result<Option<UserRecord>, ApiError> {
    if let Some(u) = s.user_by_uuid(tenant, id)? {
        return Ok(Some(u));
    }
    Ok(match id.parse::<u64>() {
        Ok(n) => s.user(tenant, n)?,
        Err(_) => None,
    })
}

async fn user(state: &State, tenant: &str, id: &str) -> Result<UserRecord> {
    let (t, key) = (tenant.to_owned(), id.to_owned());
    Ok(state
        .read(move |s| {
            find_user(s, &t, &key)?.ok_or_else(|| ApiError::NotFound(format!("user {key} does not exist")))
        })
        .await?)
}

/// A conversation `{type, target, line}` of a user: type 0 a direct chat with user
/// `target`, 1 group `target`. Returns its key and the setting key `<type>-<line>-<target>`.
async fn conversation(state: &State, tenant: &str, me: &UserRecord, c: &Value) -> Result<(String, String)> {
    let obj = c
        .as_object()
        .ok_or_else(|| ApiError::invalid("conversation must be an object {type, target, line}"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::invalid("conversation.type must be 0 or 1"))?;
    let line = match obj.get("line") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::invalid("conversation.line must be an integer"))?,
    };
    let target = match obj.get("target") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(ApiError::invalid("conversation.target is required").into()),
    };
    let (t, me_id, key) = (tenant.to_owned(), me.id, target.clone());
    let conv = state
        .read(move |s| match kind {
            0 => find_user(s, &t, &key)?
                .map(|u| ConvKey::direct(me_id, u.id).to_string())
                .ok_or_else(|| ApiError::NotFound(format!("user {key} does not exist"))),
            1 => {
                let gid = match s.group_id_by_ext(&t, &key)? {
                    Some(g) => Some(g),
                    None => key.parse().ok(),
                };
                gid.filter(|g| s.group(&t, *g).ok().flatten().is_some())
                    .map(|g| ConvKey::Group(g).to_string())
                    .ok_or_else(|| ApiError::NotFound(format!("group {key} does not exist")))
            }
            _ => Err(ApiError::invalid(
                "conversation.type must be 0 (direct) or 1 (group)",
            )),
        })
        .await?;
    Ok((conv, format!("{kind}-{line}-{target}")))
}

async fn healthcheck(state: State, _: Signed) -> Result {
    match state.read(|s| Ok(s.head("", "")?)).await {
        Ok(_) => Ok(success(json!({"status": "healthy"}))),
        Err(e) => Err(ApiError::Internal(format!("unhealthy: {e}")).into()),
    }
}

async fn customer(state: State, _: Signed) -> Result {
    let admin = &state.config.admin;
    Ok(success(
        json!({"customerId": admin.customer_id, "customerName": admin.customer_name}),
    ))
}

/// The tenant, the `userId` and the `conversation` of a request.
async fn user_and_conversation(state: &State, body: &Signed) -> Result<(String, UserRecord, String)> {
    let tenant = body.tenant()?;
    let me = user(state, &tenant, &body.str("userId")?).await?;
    let c = body
        .body
        .get("conversation")
        .ok_or_else(|| ApiError::invalid("conversation is required"))?;
    let (conv, _) = conversation(state, &tenant, &me, c).await?;
    Ok((tenant, me, conv))
}
