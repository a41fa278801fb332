//! The Chat21 face (`shared/seeds/000_*`): `/api/:app_id/...` routes for `groups`,
//! `messages` and `conversations`, one module each; here are the face's error rendering,
//! its caller extractor and the request and message shapes they share. The token comes in the raw
//! `Authorization` header (or `?jwt=` / `?token=`) and names its user by `sub` and its
//! tenant by `app_id`; the path's APP_ID must be the token's. A user named by a validly
//! signed token that Parlor has not seen is created on first use (Chat21 users live in an
//! outside identity provider), and so is a member or a recipient named by id, once every
//! other check of the request passed, by a caller with an outside token only (a caller
//! with a Parlor token naming an unknown id gets 404), within `limits.new_users_per_request`
//! and `limits.new_users_per_min`.
//!
//! A Chat21 user id is the user's `uuid` (a numeric Parlor id is accepted too); a group id
//! is its `group-<uuid>` (or the numeric id). Errors are Chat21's: a missing field is 405
//! with a text naming it; other refusals are `{"success":false,"err":"..."}` with 401 for
//! a token or tenant that does not fit or a group the caller is not in, 404 for an unknown
//! group, 409 for a `group_id` that is taken, and 405 for a change the caller may not make.

mod conversations;
mod groups;
mod messages;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use parlor_storage::{ChatType, MessageRecord, Snapshot, UserRecord};
use serde_json::{json, Map, Value};

use super::{token_of, Face, FaceError};
use crate::core::external::{resolve_caller, Namer};
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

/// Registers the group routes.
pub fn routes(r: &mut Routes) {
    groups::routes(r);
}

/// Registers the message and conversation routes.
pub fn conversation_routes(r: &mut Routes) {
    conversations::routes(r);
}

/// The caller of a Chat21 route: the token's user, created on first use, in the path's
/// tenant. `outside` is whether the token came from the outside identity provider (a Chat21
/// token) rather than from a Parlor login: only such a caller may create users by naming
/// ids Parlor has not seen.
pub struct Chat21User {
    pub user: UserRecord,
    pub outside: bool,
}

impl Chat21User {
    fn tenant(&self) -> &str {
        &self.user.tenant
    }

    /// The caller as the namer of outside ids.
    fn namer(&self) -> Namer {
        Namer {
            id: self.user.id,
            outside: self.outside,
        }
    }

    /// Whether `id` (a Chat21 id: uuid or numeric id) names the caller.
    fn is(&self, id: &str) -> bool {
        id == self.user.uuid || id == self.user.id.to_string()
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
            let outside = !claims.issued_here();
            let tenant = claims.app_id.as_deref().unwrap_or("default");
            if req.match_info().get("app_id") != Some(tenant) {
                return Err(ApiError::Unauthorized("the token's app_id is not this APP_ID".into()).into());
            }
            let user = resolve_caller(&state, &claims).await?;
            Ok(Chat21User { user, outside })
        })
    }
}

/// The JSON body of a request (Chat21 sends JSON); an empty body is an empty object.
pub(super) async fn body(
    req: &HttpRequest,
    payload: web::Payload,
) -> std::result::Result<Map<String, Value>, ApiError> {
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

pub(super) fn text_field(map: &Map<String, Value>, name: &str) -> std::result::Result<String, ApiError> {
    match map.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Null) | None => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(Value::String(_)) => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
    }
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

pub(super) fn chat21_id(users: &HashMap<u64, UserRecord>, id: u64) -> String {
    users.get(&id).map_or_else(|| id.to_string(), |u| u.uuid.clone())
}

/// The users a set of messages names, by id, for their Chat21 ids.
pub(super) fn users_of(
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
pub(super) fn message_json(
    m: &MessageRecord,
    users: &HashMap<u64, UserRecord>,
    group_uid: Option<&str>,
) -> Value {
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
    // A revoked message is an info line saying so, as Chat21 clients show system messages.
    let (kind, attributes) = if m.revoked {
        ("text", json!({"subtype": "info", "revoked": true}))
    } else {
        (
            m.kind.as_str(),
            options.get("attributes").cloned().unwrap_or(Value::Null),
        )
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
        "type": kind,
        "channel_type": if m.chat_type == ChatType::Group { "group" } else { "direct" },
        "timestamp": m.create_time,
        "attributes": attributes,
        "metadata": options.get("metadata").cloned().unwrap_or(Value::Null),
        "conversation": m.conv,
        "seq": m.seq,
        "revoked": m.revoked,
        "status": 100,
    })
}
