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
//! | 250 | over frequency |
//! | 251 | invalid parameter: a missing or wrong field, a body that is not JSON |
//! | 253 | not exist: an unknown user, conversation, message or setting |
//! | 4 | server error (storage failure, busy) |

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use dashmap::DashMap;
use parlor_actors::direct_conv;
use parlor_actors::group::group_conv;
use parlor_actors::policy::SETTINGS;
use parlor_storage::{ChatType, FileRecord, MessageRecord, Snapshot, UserRecord};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use crate::core::conversations::{self, Change};
use crate::core::{accounts, settings};
use crate::error::ApiError;
use crate::files;
use crate::routes::Routes;
use crate::state::AppState;

/// An admin answer that is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub code: u16,
    pub msg: String,
}

impl AdminError {
    fn new(code: u16, msg: impl Into<String>) -> Self {
        AdminError {
            code,
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.msg)
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::OK
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::Ok().json(json!({"code": self.code, "msg": self.msg}))
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::Invalid(_) | ApiError::Conflict(_) | ApiError::TooLarge(_) => 251,
            ApiError::NotFound(_) => 253,
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => 244,
            ApiError::TooMany(_) => 250,
            ApiError::Overloaded(_)
            | ApiError::Unavailable(_)
            | ApiError::Storage(_)
            | ApiError::Internal(_) => 4,
        };
        AdminError::new(code, e.to_string())
    }
}

impl From<parlor_storage::Error> for AdminError {
    fn from(e: parlor_storage::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<actix::MailboxError> for AdminError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::from(e).into()
    }
}

type Result<T = HttpResponse> = std::result::Result<T, AdminError>;
type State = web::Data<AppState>;

fn success(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "result": result}))
}

/// Nonces seen within the window, against replay.
pub struct Nonces {
    seen: DashMap<String, Instant>,
    window: Duration,
}

impl Nonces {
    pub fn new(window: Duration) -> Self {
        Nonces {
            seen: DashMap::new(),
            window,
        }
    }

    /// Records a nonce; `false` when it was seen within the window.
    fn first_use(&self, nonce: &str) -> bool {
        let now = Instant::now();
        if self.seen.len() > 10_000 {
            self.seen
                .retain(|_, at| now.duration_since(*at) < self.window * 2);
        }
        match self.seen.entry(nonce.to_owned()) {
            dashmap::mapref::entry::Entry::Occupied(mut e) => {
                if now.duration_since(*e.get()) < self.window * 2 {
                    return false;
                }
                e.insert(now);
                true
            }
            dashmap::mapref::entry::Entry::Vacant(e) => {
                e.insert(now);
                true
            }
        }
    }
}

/// The signature of a request: lowercase hex sha1 of `nonce|secret|timestamp`.
pub fn sign(nonce: &str, secret: &str, timestamp: &str) -> String {
    let mut h = Sha1::new();
    h.update(format!("{nonce}|{secret}|{timestamp}"));
    hex::encode(h.finalize())
}

/// Whether `given` is the signature `expected`, hex digits in either case, compared in time
/// that depends only on the lengths: how far a guess matches is not told by how fast it is
/// refused.
fn same_sign(expected: &str, given: &str) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let diff = expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| {
        acc | (a.to_ascii_lowercase() ^ b.to_ascii_lowercase())
    });
    std::hint::black_box(diff) == 0
}

/// A request whose signature was checked, with its JSON body.
pub struct Signed {
    body: Map<String, Value>,
}

impl FromRequest for Signed {
    type Error = AdminError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_sign(req);
        let limit = req
            .app_data::<State>()
            .map(|s| s.config.limits.max_body_bytes)
            .unwrap_or(1 << 20);
        let payload = payload.take();
        Box::pin(async move {
            checked?;
            let bytes = super::read_limited(payload, limit).await?;
            let body = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                Map::new()
            } else {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => return Err(AdminError::new(251, "the body must be a JSON object")),
                    Err(e) => return Err(AdminError::new(251, format!("the body is not valid JSON: {e}"))),
                }
            };
            Ok(Signed { body })
        })
    }
}

fn check_sign(req: &HttpRequest) -> Result<()> {
    let state = req
        .app_data::<State>()
        .ok_or_else(|| AdminError::new(4, "state missing"))?;
    let nonces = req
        .app_data::<web::Data<Nonces>>()
        .ok_or_else(|| AdminError::new(4, "state missing"))?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AdminError::new(239, format!("not signed: the {name} header is missing")))
    };
    let (nonce, timestamp, given) = (header("nonce")?, header("timestamp")?, header("sign")?);
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| AdminError::new(239, "not signed: timestamp must be milliseconds"))?;
    let window = state.config.admin.window_secs;
    let skew = (parlor_actors::now_ms() as i64).saturating_sub(ts).unsigned_abs();
    if skew > window.saturating_mul(1000) {
        return Err(AdminError::new(
            243,
            format!("sign expired: the timestamp is more than {window} s from the server's clock"),
        ));
    }
    if !same_sign(&sign(nonce, &state.config.admin.secret, timestamp), given) {
        return Err(AdminError::new(244, "auth failure: the sign does not match"));
    }
    if !nonces.first_use(nonce) {
        return Err(AdminError::new(244, "auth failure: the nonce was used already"));
    }
    Ok(())
}

/// Registers the admin routes.
pub fn routes(r: &mut Routes) {
    r.post("/admin/robot/create", robot_create)
        .post("/admin/user/put_setting", put_setting)
        .post("/admin/user/get_setting", get_setting)
        .post("/admin/get_setting", get_system_setting)
        .post("/admin/modify_setting", modify_system_setting)
        .post("/admin/file/conversation_files", conversation_files)
        .post("/admin/file/user_files", user_files)
        .post("/admin/file/get", file_get)
        .post("/admin/conversation/top", conversation_top)
        .post("/admin/conversation/is_top", conversation_is_top)
        .post("/admin/healthcheck", healthcheck)
        .get("/admin/healthcheck", healthcheck)
        .post("/admin/customer", customer)
        .post("/admin/export", export);
}

/// Unknown admin routes.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"code": 253, "msg": "no such route"}))
}

// ---------------------------------------------------------------------------------------
// Fields

impl Signed {
    fn str(&self, name: &str) -> Result<String> {
        match self.body.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            None | Some(Value::Null) => Err(AdminError::new(251, format!("{name} is required"))),
            Some(Value::String(_)) => Err(AdminError::new(251, format!("{name} must not be empty"))),
            Some(_) => Err(AdminError::new(251, format!("{name} must be a string"))),
        }
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            _ => self.str(name).map(Some),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| AdminError::new(251, format!("{name} must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| AdminError::new(251, format!("{name} must be an integer"))),
            Some(_) => Err(AdminError::new(251, format!("{name} must be an integer"))),
        }
    }

    fn req_int(&self, name: &str) -> Result<i64> {
        self.int(name)?
            .ok_or_else(|| AdminError::new(251, format!("{name} is required")))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Some(n.as_i64() == Some(1)))
            }
            Some(_) => Err(AdminError::new(251, format!("{name} must be a boolean"))),
        }
    }

    fn tenant(&self) -> Result<String> {
        let t = self.opt_str("appId")?.unwrap_or_else(|| "default".into());
        if t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(AdminError::new(
                251,
                "appId must be 1 to 64 letters, digits, _ or -",
            ));
        }
        Ok(t)
    }
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
        .ok_or_else(|| AdminError::new(251, "conversation must be an object {type, target, line}"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_i64)
        .ok_or_else(|| AdminError::new(251, "conversation.type must be 0 or 1"))?;
    let line = match obj.get("line") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| AdminError::new(251, "conversation.line must be an integer"))?,
    };
    let target = match obj.get("target") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(AdminError::new(251, "conversation.target is required")),
    };
    let (t, me_id, key) = (tenant.to_owned(), me.id, target.clone());
    let conv = state
        .read(move |s| match kind {
            0 => find_user(s, &t, &key)?
                .map(|u| direct_conv(me_id, u.id))
                .ok_or_else(|| ApiError::NotFound(format!("user {key} does not exist"))),
            1 => {
                let gid = match s.group_id_by_ext(&t, &key)? {
                    Some(g) => Some(g),
                    None => key.parse().ok(),
                };
                gid.filter(|g| s.group(&t, *g).ok().flatten().is_some())
                    .map(group_conv)
                    .ok_or_else(|| ApiError::NotFound(format!("group {key} does not exist")))
            }
            _ => Err(ApiError::invalid(
                "conversation.type must be 0 (direct) or 1 (group)",
            )),
        })
        .await?;
    Ok((conv, format!("{kind}-{line}-{target}")))
}

// ---------------------------------------------------------------------------------------
// Routes

async fn robot_create(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let name = body.str("name")?;
    if name.chars().count() > 50 {
        return Err(AdminError::new(251, "name must be at most 50 characters"));
    }
    let wanted = body.opt_str("userId")?;
    if let Some(id) = &wanted {
        if id.len() > 64 || id.chars().any(|c| c.is_whitespace()) {
            return Err(AdminError::new(
                251,
                "userId must be at most 64 characters without spaces",
            ));
        }
    }
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.gen_range(0..32)]))
            .collect()
    };
    let existing = match &wanted {
        Some(id) => {
            let (t, key) = (tenant.clone(), id.clone());
            state.read(move |s| find_user(s, &t, &key)).await?
        }
        None => None,
    };
    let robot = accounts::put_robot(&state, &tenant, existing, wanted, name, secret.clone()).await?;
    Ok(success(
        json!({"userId": robot.uuid, "secret": secret, "id": robot.id, "username": robot.username}),
    ))
}

async fn put_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let scope = body.req_int("scope")?;
    let scope =
        u32::try_from(scope).map_err(|_| AdminError::new(251, "scope must be a non-negative integer"))?;
    let key = body.str("key")?;
    let value = match body.body.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        None | Some(Value::Null) => return Err(AdminError::new(251, "value is required")),
        Some(_) => return Err(AdminError::new(251, "value must be a string")),
    };
    if key.len() > 256 || value.len() > 4096 {
        return Err(AdminError::new(251, "key is at most 256 bytes and value 4096"));
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
        return Err(AdminError::new(251, "a scope 3 key is <type>-<line>-<target>"));
    };
    let kind: i64 = kind
        .parse()
        .map_err(|_| AdminError::new(251, "a scope 3 key is <type>-<line>-<target>"))?;
    let line: i64 = line
        .parse()
        .map_err(|_| AdminError::new(251, "a scope 3 key is <type>-<line>-<target>"))?;
    conversation(
        state,
        tenant,
        me,
        &json!({"type": kind, "line": line, "target": target}),
    )
    .await
}

async fn get_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let user_id = body.str("userId")?;
    let me = user(&state, &tenant, &user_id).await?;
    let scope = u32::try_from(body.req_int("scope")?)
        .map_err(|_| AdminError::new(251, "scope must be a non-negative integer"))?;
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
        value.ok_or_else(|| AdminError::new(253, format!("no setting {scope}/{key} for user {user_id}")))?;
    Ok(success(
        json!({"userId": user_id, "scope": scope, "key": key, "value": value}),
    ))
}

async fn get_system_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id =
        u32::try_from(body.req_int("id")?).map_err(|_| AdminError::new(251, "id must be a setting id"))?;
    let desc = SETTINGS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, d)| *d)
        .ok_or_else(|| AdminError::new(253, format!("setting {id} does not exist")))?;
    let value = settings::policy(&state, &tenant)
        .await?
        .setting(id)
        .unwrap_or_default();
    Ok(success(
        json!({"id": id, "value": value.to_string(), "desc": desc}),
    ))
}

async fn modify_system_setting(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id =
        u32::try_from(body.req_int("id")?).map_err(|_| AdminError::new(251, "id must be a setting id"))?;
    if !SETTINGS.iter().any(|(i, _)| *i == id) {
        return Err(AdminError::new(253, format!("setting {id} does not exist")));
    }
    let value = body.str("value")?;
    body.opt_str("desc")?;
    // It takes effect for the next message, without a restart.
    settings::set_policy(&state, &tenant, id, &value).await?;
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success"})))
}

/// The file of a file message: `(url, name, size)` from its content.
fn file_of(m: &MessageRecord) -> Option<(String, String, u64)> {
    if !matches!(m.kind.as_str(), "file" | "image" | "video" | "audio") || m.revoked {
        return None;
    }
    let mut data: Value = serde_json::from_str(&m.data).ok()?;
    if let Value::String(text) = &data {
        data = serde_json::from_str(text).unwrap_or(Value::String(text.clone()));
    }
    let options: Value = serde_json::from_str(&m.options).unwrap_or(Value::Null);
    let pick = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
    };
    let url = match &data {
        Value::String(s) => Some(s.clone()),
        other => pick(other, &["url", "src", "path"]).or_else(|| pick(&options["metadata"], &["src", "url"])),
    }?;
    let name = pick(&data, &["name", "filename", "fileName"])
        .unwrap_or_else(|| url.rsplit('/').next().unwrap_or_default().to_owned());
    let size = ["size", "fileSize"]
        .iter()
        .find_map(|k| data.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    Some((url, name, size))
}

fn file_json(m: &MessageRecord, url: &str, name: &str, size: u64, users: &HashMap<u64, String>) -> Value {
    json!({
        "messageUid": m.id,
        "filename": name,
        "url": url,
        "size": size,
        "type": m.kind,
        "from": users.get(&m.from_id).cloned().unwrap_or_else(|| m.from_id.to_string()),
        "conversation": {"type": if m.chat_type == ChatType::Group { 1 } else { 0 }, "key": m.conv, "line": 0},
        "timestamp": m.create_time,
    })
}

fn count(body: &Signed) -> Result<usize> {
    let n = body.int("count")?.unwrap_or(20);
    if !(1..=1000).contains(&n) {
        return Err(AdminError::new(251, "count must be 1 to 1000"));
    }
    Ok(n as usize)
}

/// The tenant, the `userId` and the `conversation` of a request.
async fn user_and_conversation(state: &State, body: &Signed) -> Result<(String, UserRecord, String)> {
    let tenant = body.tenant()?;
    let me = user(state, &tenant, &body.str("userId")?).await?;
    let c = body
        .body
        .get("conversation")
        .ok_or_else(|| AdminError::new(251, "conversation is required"))?;
    let (conv, _) = conversation(state, &tenant, &me, c).await?;
    Ok((tenant, me, conv))
}

async fn conversation_files(state: State, body: Signed) -> Result {
    let (tenant, me, conv) = user_and_conversation(&state, &body).await?;
    let limit = count(&body)?;
    let from_time = body.int("fromTime")?.unwrap_or(0).max(0) as u64;
    let oldest_first = match body.int("order")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => {
            return Err(AdminError::new(
                251,
                "order must be 0 (newest first) or 1 (oldest first)",
            ))
        }
    };
    let (t, my_id) = (tenant.clone(), me.id);
    let (files, users) = state
        .read(move |s| {
            let floor = conversations::history_floor(s, &t, my_id, &conv).map_err(|e| match e {
                ApiError::Forbidden(_) => ApiError::NotFound("the user is not in this conversation".into()),
                other => other,
            })?;
            // fromTime bounds the scan: newest first lists files up to it, oldest first after it.
            let keep = |m: &MessageRecord| {
                file_of(m).is_some()
                    && (from_time == 0
                        || if oldest_first {
                            m.create_time >= from_time
                        } else {
                            m.create_time <= from_time
                        })
            };
            let messages = s.scan_messages(&t, &conv, floor, !oldest_first, keep, limit)?;
            let mut files = Vec::with_capacity(messages.len());
            for m in messages {
                if let Some(file) = stored_file_of(s, &t, &m)? {
                    files.push((m, file));
                }
            }
            let users = names(s, &t, files.iter().map(|(m, _)| m.from_id))?;
            Ok((files, users))
        })
        .await?;
    let list: Vec<Value> = files
        .iter()
        .map(|(m, (url, name, size))| file_json(m, url, name, *size, &users))
        .collect();
    Ok(success(Value::Array(list)))
}

fn names(
    s: &Snapshot,
    tenant: &str,
    ids: impl Iterator<Item = u64>,
) -> std::result::Result<HashMap<u64, String>, ApiError> {
    let mut out = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            if let Some(u) = s.user(tenant, id)? {
                e.insert(u.uuid);
            }
        }
    }
    Ok(out)
}

/// The files a user uploaded (the metadata table), `offset`/`count`, newest first unless
/// `desc` is false.
async fn user_files(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let offset = body.int("offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(AdminError::new(251, "offset must not be negative"));
    }
    let desc = body.bool("desc")?.unwrap_or(true);
    let limit = count(&body)?;
    let (t, my_id) = (tenant.clone(), me.id);
    let files = state
        .read(move |s| Ok(s.files_of(&t, my_id, desc, offset as usize, limit)?))
        .await?;
    let list: Vec<Value> = files.iter().map(|f| upload_json(f, &me.uuid)).collect();
    Ok(success(Value::Array(list)))
}

/// The message type a content type stands for.
fn kind_of(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("video") => "video",
        Some("audio") => "audio",
        _ => "file",
    }
}

fn upload_json(f: &FileRecord, from: &str) -> Value {
    let filename = if f.original_name.is_empty() {
        f.path.rsplit('/').next().unwrap_or_default()
    } else {
        &f.original_name
    };
    json!({
        "fileId": f.id,
        "filename": filename,
        "url": files::served_url(&f.path),
        "size": f.size,
        "type": kind_of(&f.content_type),
        "contentType": f.content_type,
        "sha256": f.sha256,
        "width": f.width,
        "height": f.height,
        "from": from,
        "timestamp": f.created_ms,
    })
}

/// The file of a file message, its size and name completed from the metadata table when
/// the message points at a file stored here.
fn stored_file_of(
    s: &Snapshot,
    tenant: &str,
    m: &MessageRecord,
) -> std::result::Result<Option<(String, String, u64)>, ApiError> {
    let Some((url, name, size)) = file_of(m) else {
        return Ok(None);
    };
    let stored = match files::stored_path(&url, "") {
        Some(path) => s.file_by_path(&path)?.filter(|f| f.tenant == tenant),
        None => None,
    };
    Ok(Some(match stored {
        Some(f) if !f.original_name.is_empty() => (url, f.original_name, f.size),
        Some(f) => (url, name, f.size),
        None => (url, name, size),
    }))
}

async fn file_get(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = body.str("messageUid")?;
    let (t, key) = (tenant.clone(), id.clone());
    let (m, file) = state
        .read(move |s| {
            let m = s
                .message_by_id(&t, &key)?
                .ok_or_else(|| ApiError::NotFound(format!("message {key} does not exist")))?;
            let file = stored_file_of(s, &t, &m)?;
            Ok((m, file))
        })
        .await?;
    let (url, name, size) =
        file.ok_or_else(|| AdminError::new(253, format!("message {id} is not a file")))?;
    Ok(success(
        json!({"messageUid": m.id, "filename": name, "url": url, "size": size, "type": m.kind}),
    ))
}

async fn conversation_top(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let c = body
        .body
        .get("conversation")
        .cloned()
        .ok_or_else(|| AdminError::new(251, "conversation is required"))?;
    let top = match body.int("top")? {
        Some(0) => false,
        Some(1) => true,
        None => return Err(AdminError::new(251, "top is required")),
        Some(_) => return Err(AdminError::new(251, "top must be 0 or 1")),
    };
    let (conv, _) = conversation(&state, &tenant, &me, &c).await?;
    conversations::change(&state, &tenant, me.id, &conv, Change::Pin(top)).await?;
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success"})))
}

async fn conversation_is_top(state: State, body: Signed) -> Result {
    let (tenant, me, conv) = user_and_conversation(&state, &body).await?;
    let (t, id) = (tenant.clone(), me.id);
    let pinned = state
        .read(move |s| Ok(s.conv_state(&t, id, &conv)?.pinned))
        .await?;
    Ok(success(json!({"value": pinned})))
}

async fn healthcheck(state: State, _: Signed) -> Result {
    match state.read(|s| Ok(s.head("", "")?)).await {
        Ok(_) => Ok(success(json!({"status": "healthy"}))),
        Err(e) => Err(AdminError::new(4, format!("unhealthy: {e}"))),
    }
}

async fn customer(state: State, _: Signed) -> Result {
    let admin = &state.config.admin;
    Ok(success(
        json!({"customerId": admin.customer_id, "customerName": admin.customer_name}),
    ))
}

/// `POST /admin/export` `{"tenant": "..."}` (optional: every tenant when absent): the
/// export file of [`crate::dump`], streamed as `application/x-ndjson` from one read
/// transaction. What `parlor export` uses while the server has the database open.
async fn export(state: State, signed: Signed) -> Result {
    let tenant = signed.opt_str("tenant")?;
    let store = state.store.clone();
    let prepared = web::block(move || crate::dump::Export::new(store.snapshot()?, tenant))
        .await
        .map_err(|e| AdminError::new(4, e.to_string()))?;
    let export = match prepared {
        Ok(export) => export,
        Err(crate::dump::DumpError::NoTenant(t)) => {
            return Err(AdminError::new(253, format!("not exist: no tenant named {t}")))
        }
        Err(e) => return Err(AdminError::new(4, e.to_string())),
    };
    let (lines, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, ChunkSink(lines.clone()));
        if let Err(e) = export.write_to(&mut out) {
            tracing::warn!(error = %e, "export stopped");
            // The stream ends in an error: the client sees a cut answer without an end line.
            let _ = lines.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// Hands written chunks to a response stream; fails once the client is gone.
struct ChunkSink(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl std::io::Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_compare_whole_and_ignore_the_case_of_hex_digits() {
        let good = sign("76616", "123456", "1558350862502");
        assert!(same_sign(&good, &good));
        assert!(same_sign(&good, &good.to_ascii_uppercase()));
        let mut last_wrong = good.clone();
        last_wrong.replace_range(39.., "0");
        assert_ne!(last_wrong, good);
        assert!(!same_sign(&good, &last_wrong));
        assert!(!same_sign(&good, &good[..39]));
        assert!(!same_sign(&good, &format!("{good}0")));
        assert!(!same_sign(&good, ""));
    }

    #[test]
    fn the_documents_signature_example() {
        assert_eq!(
            sign("76616", "123456", "1558350862502"),
            "b98f9b0717f59febccf1440067a7f50d9b31bdde"
        );
    }

    #[test]
    fn a_nonce_is_used_once_within_the_window() {
        let n = Nonces::new(Duration::from_secs(60));
        assert!(n.first_use("a"));
        assert!(!n.first_use("a"));
        assert!(n.first_use("b"));
    }
}
