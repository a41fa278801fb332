//! The HTTP faces, one module each: [`uniapp`] (split by area), [`chatroom`], [`chat21`]
//! and [`admin`]. A handler parses its request, calls one operation of [`crate::core`] and
//! writes the face's envelope; no face imports another. They share what is here: the
//! extractors [`Fields`] (a form or JSON body with typed, checked accessors) and [`Caller`]
//! (the token's user), [`FaceError`], which renders an [`ApiError`] in the face's own
//! envelope, the request and time helpers every face uses, and [`receive_multipart`] for
//! the upload routes.

pub mod admin;
pub mod chat21;
pub mod chatroom;
pub mod uniapp;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::{StreamExt, TryStreamExt};
use parlor_actors::UserKey;
use parlor_storage::Role;
use serde_json::{Map, Value};

use crate::auth::Claims;
use crate::error::ApiError;
use crate::files::{Accept, Upload};
use crate::state::AppState;

/// An API face: how it renders errors.
pub trait Face: 'static {
    fn render(err: &ApiError) -> HttpResponse;
}

/// An [`ApiError`] rendered by face `F`.
pub struct FaceError<F: Face> {
    pub err: ApiError,
    face: PhantomData<F>,
}

impl<F: Face> std::fmt::Debug for FaceError<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.err, f)
    }
}

impl<F: Face> std::fmt::Display for FaceError<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.err, f)
    }
}

impl<F: Face, E: Into<ApiError>> From<E> for FaceError<F> {
    fn from(e: E) -> Self {
        FaceError {
            err: e.into(),
            face: PhantomData,
        }
    }
}

impl<F: Face> ResponseError for FaceError<F> {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.err.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.err.with_retry_after(F::render(&self.err))
    }
}

pub use crate::auth::token_of;
pub use parlor_actors::wire::{iso_time, local_time};

/// The address of the client a request came from: its TCP peer, or the address a trusted
/// proxy forwarded (see [`crate::peer`]).
pub fn client_addr(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
        Some(state) => state.proxies.client(peer, req.headers()),
        None => peer,
    }
}

/// The authenticated caller of a request.
pub struct Caller<F: Face> {
    pub claims: Claims,
    face: PhantomData<F>,
}

impl<F: Face> Caller<F> {
    pub fn id(&self) -> u64 {
        self.claims.id
    }

    pub fn tenant(&self) -> &str {
        &self.claims.app_id
    }

    pub fn key(&self) -> UserKey {
        UserKey::new(&self.claims.app_id, self.claims.id)
    }

    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.claims.role)
    }

    /// Refuses visitors: `what` names the action in the error.
    pub fn not_visitor(&self, what: &str) -> Result<(), ApiError> {
        if self.role() == Some(Role::Visitor) {
            return Err(ApiError::Forbidden(format!("visitors cannot {what}")));
        }
        Ok(())
    }
}

impl<F: Face> FromRequest for Caller<F> {
    type Error = FaceError<F>;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            caller(req)
                .map(|claims| Caller {
                    claims,
                    face: PhantomData,
                })
                .map_err(Into::into),
        )
    }
}

fn caller(req: &HttpRequest) -> Result<Claims, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("state missing".into()))?;
    let token = token_of(req)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("token is required".into()))?;
    state.auth.verify(&token)
}

/// The fields of a request body, `application/x-www-form-urlencoded` or JSON (an object),
/// with accessors that name the field in their errors.
pub struct Fields<F: Face> {
    map: Map<String, Value>,
    face: PhantomData<F>,
}

impl<F: Face> Fields<F> {
    /// Fields from a map (for tests and internal callers).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Fields {
            map,
            face: PhantomData,
        }
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string field (numbers are taken as their text); `None` when absent.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
        }
    }

    /// A required string field.
    pub fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    }

    /// A non-negative integer field (a number or a string of digits); `None` when absent.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let wrong = || ApiError::invalid(format!("{name} must be an integer"));
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(wrong),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| wrong()),
            Some(_) => Err(wrong()),
        }
    }

    /// A required non-negative integer field.
    pub fn u64(&self, name: &str) -> Result<u64, ApiError> {
        self.opt_u64(name)?
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    }
}

impl<F: Face> FromRequest for Fields<F> {
    type Error = FaceError<F>;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.limits.max_body_bytes)
            .unwrap_or(1024 * 1024);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let payload = payload.take();
        Box::pin(async move {
            let body = read_limited(payload, limit).await?;
            let map = parse_body(&content_type, &body)?;
            Ok(Fields {
                map,
                face: PhantomData,
            })
        })
    }
}

/// Reads a request body, refusing one over `limit` bytes.
pub async fn read_limited(mut payload: Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(format!("body is over {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_body(content_type: &str, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    if content_type.starts_with("application/json") {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::invalid("the JSON body must be an object")),
            Err(e) => Err(ApiError::invalid(format!("the body is not valid JSON: {e}"))),
        };
    }
    if content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid(format!("the form body is malformed: {e}")))?;
        let mut map = Map::new();
        for (k, v) in pairs {
            let k = k.strip_suffix("[]").map(str::to_owned).unwrap_or(k);
            match map.get_mut(&k) {
                Some(Value::Array(items)) => items.push(Value::String(v)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(v)]);
                }
                None => {
                    map.insert(k, Value::String(v));
                }
            }
        }
        return Ok(map);
    }
    Err(ApiError::invalid(format!(
        "unsupported content type {content_type}: send application/x-www-form-urlencoded or application/json"
    )))
}

/// The tenant named by a request without a token: the `X-App-Id` header or the `app_id`
/// field, `default` when neither.
pub fn tenant_of<F: Face>(req: &HttpRequest, fields: &Fields<F>) -> Result<String, ApiError> {
    let named = req
        .headers()
        .get("x-app-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(fields.opt_str("app_id")?);
    let tenant = named.unwrap_or_else(|| "default".into());
    if !crate::core::plain_name(&tenant) {
        return Err(ApiError::invalid(
            "app_id must be 1 to 64 letters, digits, _ or -",
        ));
    }
    Ok(tenant)
}

/// An integer path segment `name`; the error says what it must be (`an integer`, `a user
/// id`, ...).
pub fn path_id(req: &HttpRequest, name: &str, what: &str) -> Result<u64, ApiError> {
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::invalid(format!("{name} must be {what}")))
}

/// The query string's pairs, in order.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    Ok(
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|_| ApiError::invalid("malformed query string"))?
            .into_inner(),
    )
}

/// Most bytes of a text field beside the file.
const TEXT_FIELD_MAX: usize = 4096;
/// Most text fields beside the file.
const TEXT_FIELDS_MAX: usize = 32;

/// Reads a `multipart/form-data` body: the file in one of `names` (received and checked,
/// see [`crate::files::Files::receive`]) and the small text fields beside it.
pub async fn receive_multipart(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    names: &[&str],
    accept: Accept,
) -> std::result::Result<(Upload, HashMap<String, String>), ApiError> {
    let mut form = Multipart::new(req.headers(), payload);
    let mut upload = None;
    let mut texts = HashMap::new();
    let mut fields = 0;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| ApiError::invalid(format!("the body must be multipart/form-data: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        if upload.is_none() && names.contains(&name.as_str()) {
            let original = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .unwrap_or_default()
                .to_owned();
            upload = Some(state.files.receive(&mut field, &original, accept).await?);
            continue;
        }
        fields += 1;
        if fields > TEXT_FIELDS_MAX {
            return Err(ApiError::invalid(format!(
                "more than {TEXT_FIELDS_MAX} fields beside the file"
            )));
        }
        let mut text = Vec::new();
        while let Some(chunk) = field
            .try_next()
            .await
            .map_err(|e| ApiError::invalid(format!("cannot read {name}: {e}")))?
        {
            if text.len() + chunk.len() > TEXT_FIELD_MAX {
                return Err(ApiError::invalid(format!(
                    "{name} is over {TEXT_FIELD_MAX} bytes (the file goes in {})",
                    names[0]
                )));
            }
            text.extend_from_slice(&chunk);
        }
        texts.insert(name, String::from_utf8_lossy(&text).into_owned());
    }
    let upload = upload.ok_or_else(|| {
        ApiError::invalid(format!(
            "{} is required: send the file as the multipart field {}",
            names[0], names[0]
        ))
    })?;
    Ok((upload, texts))
}
