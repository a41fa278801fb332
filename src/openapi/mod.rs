//! The OpenAPI 3 documents of the HTTP routes, built with utoipa's builders from one table
//! per face (`uniapp`, `chatroom`, `chat21`, `admin`, and the listener-wide routes here).
//!
//! A route is one [`Op`] line: method, path, summary, body fields, query fields and the error
//! statuses it can answer. The face ([`Face`]) supplies the rest: the security scheme, the body
//! media types, and the ok and error envelopes. Path parameters come from the `{param}`s of
//! the path. Adding a route to the server means adding its line to its face's table; the
//! `openapi` test fails until both agree.

mod admin;
mod chat21;
mod chatroom;
mod uniapp;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};

/// How a face authenticates, takes bodies and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// `/healthz`, `/ws`, `/openapi.json`.
    Server,
    /// The uni-app chat face and the native read side (`/api/...` with a `token` header).
    UniApp,
    /// The chat-room face.
    ChatRoom,
    /// The Chat21 face.
    Chat21,
    /// The admin face (its own listener).
    Admin,
}

/// One route of a face.
pub struct Op {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    /// Whether the caller must be authenticated (the face's scheme).
    pub auth: bool,
    /// Body fields: space-separated `name`, `name*` (required), `name:int`, `name:bool`,
    /// `name:object`, `name:array` (strings otherwise).
    pub body: &'static str,
    /// Query fields, in the same notation.
    pub query: &'static str,
    /// Error statuses (besides the face's common ones: 401 with `auth`, 503 when busy).
    pub errors: &'static [u16],
    /// The body is `multipart/form-data` (an upload) instead of the face's media types.
    pub multipart: bool,
}

impl Op {
    const fn new(method: Method, path: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            summary,
            auth: true,
            body: "",
            query: "",
            errors: &[],
            multipart: false,
        }
    }

    pub const fn get(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::GET, path, summary)
    }

    pub const fn post(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::POST, path, summary)
    }

    pub const fn put(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::PUT, path, summary)
    }

    pub const fn delete(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::DELETE, path, summary)
    }

    pub const fn head(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::HEAD, path, summary)
    }

    /// A route anyone may call.
    pub const fn public(mut self) -> Op {
        self.auth = false;
        self
    }

    pub const fn body(mut self, fields: &'static str) -> Op {
        self.body = fields;
        self
    }

    pub const fn query(mut self, fields: &'static str) -> Op {
        self.query = fields;
        self
    }

    pub const fn errors(mut self, errors: &'static [u16]) -> Op {
        self.errors = errors;
        self
    }

    /// An upload: the body fields (a `name:file` is the file) come as `multipart/form-data`.
    pub const fn multipart(mut self, fields: &'static str) -> Op {
        self.body = fields;
        self.multipart = true;
        self
    }
}

/// The routes that exist on every client listener whatever the faces.
fn server_ops() -> Vec<Op> {
    vec![
        Op::get(
            "/healthz",
            "Health: 200 `{\"status\":\"ok\"}` once the server accepts work",
        )
        .public()
        .errors(&[503]),
        Op::get(
            "/ws",
            "The WebSocket (see docs/asyncapi.yaml): `?token=JWT`, or the `token`/`Authorization` header",
        )
        .query("token")
        .errors(&[400]),
        Op::get("/openapi.json", "This document").public().errors(&[404]),
        Op::get(
            "/metrics",
            "Prometheus metrics, text format 0.0.4 (404 unless `metrics.listener` is `client`)",
        )
        .public()
        .errors(&[404]),
        Op::get("/", "The web chat client's page").public().errors(&[404]),
        Op::head("/", "The web chat client's page, headers only")
            .public()
            .errors(&[404]),
        Op::get(
            "/web/locale.json",
            "The language of the web chat client's texts: `{\"locale\":\"zh-CN\"}` or `{\"locale\":\"en\"}` (`server.locale`)",
        )
        .public()
        .errors(&[429, 503]),
        Op::head(
            "/web/locale.json",
            "The language of the web chat client's texts, headers only",
        )
        .public()
        .errors(&[429, 503]),
        Op::get(
            "/web/{file}",
            "A file of the web chat client (script, style, icon)",
        )
        .public()
        .errors(&[404]),
        Op::head("/web/{file}", "A file of the web chat client, headers only")
            .public()
            .errors(&[404]),
    ]
}

/// The document of the client listener: every client face.
pub fn client() -> OpenApi {
    let mut ops: Vec<(Face, Op)> = Vec::new();
    ops.extend(server_ops().into_iter().map(|o| (Face::Server, o)));
    ops.extend(uniapp::ops().into_iter().map(|o| (Face::UniApp, o)));
    ops.extend(chatroom::ops().into_iter().map(|o| (Face::ChatRoom, o)));
    ops.extend(chat21::ops().into_iter().map(|o| (Face::Chat21, o)));
    document("Parlor client API", &ops)
}

/// The document of the admin listener.
pub fn admin() -> OpenApi {
    let mut ops: Vec<(Face, Op)> = admin::ops().into_iter().map(|o| (Face::Admin, o)).collect();
    ops.push((
        Face::Admin,
        Op::get("/openapi.json", "This document").public().errors(&[404]),
    ));
    ops.push((
        Face::Admin,
        Op::get(
            "/metrics",
            "Prometheus metrics, text format 0.0.4, unsigned (404 unless `metrics.listener` is `admin`)",
        )
        .public()
        .errors(&[404]),
    ));
    document("Parlor admin API", &ops)
}

/// `GET /openapi.json` on the client listener.
pub async fn client_document() -> HttpResponse {
    HttpResponse::Ok().json(client())
}

/// `GET /openapi.json` on the admin listener.
pub async fn admin_document() -> HttpResponse {
    HttpResponse::Ok().json(admin())
}

fn document(title: &str, ops: &[(Face, Op)]) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (face, op) in ops {
        paths = paths.path(
            openapi_path(op.path),
            PathItem::new(http_method(&op.method), operation(*face, op)),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Parlor serves four chat APIs over one core; each face keeps its own envelope. \
                     Bodies marked form-or-JSON accept either media type with the same fields.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .tags(Some(
            [
                ("server", "Health, WebSocket and this document"),
                ("uni-app", "The uni-app chat face and the native read side"),
                ("chat-room", "The chat-room face"),
                ("chat21", "The Chat21 face"),
                ("admin", "The admin face (WildFire style)"),
            ]
            .map(|(name, about)| TagBuilder::new().name(name).description(Some(about)).build()),
        ))
        .build()
}

fn http_method(m: &Method) -> utoipa::openapi::HttpMethod {
    use utoipa::openapi::HttpMethod as H;
    match *m {
        Method::POST => H::Post,
        Method::PUT => H::Put,
        Method::DELETE => H::Delete,
        Method::PATCH => H::Patch,
        Method::HEAD => H::Head,
        _ => H::Get,
    }
}

impl Face {
    fn tag(self) -> &'static str {
        match self {
            Face::Server => "server",
            Face::UniApp => "uni-app",
            Face::ChatRoom => "chat-room",
            Face::Chat21 => "chat21",
            Face::Admin => "admin",
        }
    }

    /// The security scheme names a caller may use (any one of them).
    fn security(self) -> &'static [&'static str] {
        match self {
            Face::Server | Face::UniApp | Face::ChatRoom => &["token", "authorization"],
            Face::Chat21 => &["authorization"],
            Face::Admin => &[],
        }
    }

    /// The body media types.
    fn media(self) -> &'static [&'static str] {
        match self {
            Face::UniApp | Face::ChatRoom | Face::Server => {
                &["application/x-www-form-urlencoded", "application/json"]
            }
            Face::Chat21 | Face::Admin => &["application/json"],
        }
    }

    /// The schemas of the ok and error envelopes.
    fn envelopes(self) -> (&'static str, &'static str) {
        match self {
            Face::Server => ("Health", "Health"),
            Face::UniApp => ("UniAppOk", "UniAppFail"),
            Face::ChatRoom => ("ChatRoomOk", "ChatRoomError"),
            Face::Chat21 => ("Chat21Ok", "Chat21Error"),
            Face::Admin => ("AdminAnswer", "AdminAnswer"),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Invalid input: a missing or wrong field",
        401 => "No token, or a token that is invalid, expired or revoked",
        403 => "Not permitted",
        404 => "Not found",
        405 => "Chat21: a missing field (plain text) or a refused action",
        409 => "Conflict: already exists or already done",
        413 => "Body over limits.max_body_bytes",
        429 => "Over a rate limit",
        503 => "Busy or shutting down: retry",
        _ => "Error",
    }
}

fn operation(face: Face, op: &Op) -> utoipa::openapi::path::Operation {
    let (ok, fail) = face.envelopes();
    let mut b = OperationBuilder::new()
        .tag(face.tag())
        .summary(Some(op.summary))
        .operation_id(Some(format!(
            "{}_{}",
            op.method.as_str().to_lowercase(),
            openapi_path(op.path)
                .replace(['{', '}'], "")
                .replace('/', "_")
                .trim_matches('_')
        )));
    for name in path_params(op.path) {
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string())),
        );
    }
    for (name, required, schema) in fields(op.query) {
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if required { Required::True } else { Required::False })
                .schema(Some(schema)),
        );
    }
    let signed = face == Face::Admin && op.path.starts_with("/admin/");
    if signed {
        // All three headers are needed together: one requirement object names them all.
        b = b.securities(Some([admin_requirement()]));
    }
    if op.auth && face != Face::Admin {
        b = b.securities(Some(
            face.security()
                .iter()
                .map(|s| SecurityRequirement::new(*s, Vec::<String>::new())),
        ));
    }
    if !op.body.is_empty() {
        let mut object = ObjectBuilder::new().schema_type(Type::Object);
        for (name, required, schema) in fields(op.body) {
            object = object.property(name, schema);
            if required {
                object = object.required(name);
            }
        }
        let schema: RefOr<Schema> = object.build().into();
        let mut body = RequestBodyBuilder::new().required(Some(Required::True));
        let media: &[&str] = if op.multipart {
            &["multipart/form-data"]
        } else {
            face.media()
        };
        for media in media {
            body = body.content(*media, Content::new(Some(schema.clone())));
        }
        b = b.request_body(Some(body.build()));
    }
    let json = |schema: &str| Content::new(Some(Ref::from_schema_name(schema)));
    let success = if face == Face::Admin && op.path == "/admin/export" {
        ResponseBuilder::new()
            .description(
                "The export file, streamed (one JSON record a line); errors come as the JSON envelope",
            )
            .content("application/x-ndjson", Content::new(Some(string())))
            .content("application/json", json(fail))
    } else if op.path == "/openapi.json" {
        ResponseBuilder::new()
            .description("The OpenAPI 3 document")
            .content("application/json", Content::new(Some(object())))
    } else if op.path == "/ws" {
        ResponseBuilder::new().description("Switching protocols: the WebSocket")
    } else if op.path == "/metrics" {
        ResponseBuilder::new()
            .description("The metrics (see the README's Metrics section)")
            .content("text/plain", Content::new(Some(string())))
    } else if op.path == "/public/uploads/{path:.*}" {
        ResponseBuilder::new()
            .description(
                "The stored file with its type, `Content-Length`, `ETag` (sha256) and immutable caching; \
                 a single `Range` gives 206 (416 when unsatisfiable), `If-None-Match` 304",
            )
            .content("application/octet-stream", Content::new(Some(string())))
    } else if op.path == "/web/locale.json" {
        ResponseBuilder::new()
            .description("`{\"locale\": \"zh-CN\" | \"en\"}`, with `Cache-Control: no-cache`")
            .content("application/json", Content::new(Some(object())))
    } else if op.path == "/" || op.path == "/web/{file}" {
        ResponseBuilder::new()
            .description(
                "The file, with `ETag` and `Cache-Control: no-cache` (304 when `If-None-Match` matches)",
            )
            .content("text/html", Content::new(Some(string())))
    } else if op.path == "/api/chat/groupQrcode/{id}" {
        ResponseBuilder::new()
            .description("A PNG image")
            .content("image/png", Content::new(Some(string())))
    } else {
        ResponseBuilder::new()
            .description("Success")
            .content("application/json", json(ok))
    };
    let success_status = if op.path == "/ws" { "101" } else { "200" };
    b = b.response(success_status, success.build());
    let mut errors: Vec<u16> = op.errors.to_vec();
    if op.auth && face != Face::Admin && face != Face::Server {
        errors.push(401);
    }
    if face != Face::Admin && !op.body.is_empty() {
        errors.push(413);
    }
    errors.sort();
    errors.dedup();
    for status in errors {
        let mut r = ResponseBuilder::new().description(reason(status));
        r = match (face, status) {
            (Face::Chat21, 405) => r
                .content("text/plain", Content::new(Some(string())))
                .content("application/json", json(fail)),
            (Face::Admin, 404) => r.content("application/json", json(fail)),
            (Face::Server, _) if op.path == "/ws" => r.content("application/json", json("UniAppFail")),
            (Face::Server, _) if op.path == "/openapi.json" => {
                r.content("application/json", json("UniAppFail"))
            }
            _ => r.content("application/json", json(fail)),
        };
        b = b.response(status.to_string(), r.build());
    }
    if signed {
        // Admin errors are HTTP 200 with a non-zero code; the codes are in the description.
        b = b.description(Some(
            "Errors are HTTP 200 with `{\"code\": n, \"msg\": ...}`: 239 not signed, 243 sign expired, \
             244 auth failure or replayed nonce, 250 over frequency, 251 invalid parameter, \
             253 not exist, 4 server error.",
        ));
    }
    b.build()
}

fn admin_requirement() -> SecurityRequirement {
    // A requirement whose three schemes must all be present.
    let mut value = serde_json::Map::new();
    for header in ["nonce", "timestamp", "sign"] {
        value.insert(header.into(), serde_json::json!([]));
    }
    serde_json::from_value(serde_json::Value::Object(value)).expect("a security requirement")
}

/// The `{param}` names of a path (an actix pattern `{name:regex}` names `name`).
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|p| p.split(':').next().unwrap_or(p))
        .collect()
}

/// The OpenAPI form of an actix path: `{name:regex}` becomes `{name}`.
pub fn openapi_path(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) => format!("{{{}}}", p.split(':').next().unwrap_or(p)),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn fields(spec: &str) -> Vec<(&str, bool, RefOr<Schema>)> {
    spec.split_whitespace()
        .map(|f| {
            let (name, ty) = f.split_once(':').unwrap_or((f, "string"));
            let (name, required) = match name.strip_suffix('*') {
                Some(n) => (n, true),
                None => (name, false),
            };
            let schema: RefOr<Schema> = match ty {
                "int" => ObjectBuilder::new().schema_type(Type::Integer).build().into(),
                "bool" => ObjectBuilder::new().schema_type(Type::Boolean).build().into(),
                "object" => object(),
                "array" => ArrayBuilder::new().items(string()).build().into(),
                "file" => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .build()
                    .into(),
                _ => string(),
            };
            (name, required, schema)
        })
        .collect()
}

fn string() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).build().into()
}

fn object() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).build().into()
}

/// An object schema with the given properties, all required.
fn envelope(description: &str, props: &[(&str, RefOr<Schema>)]) -> Schema {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description));
    for (name, schema) in props {
        o = o.property(*name, schema.clone()).required(*name);
    }
    o.build().into()
}

fn components() -> utoipa::openapi::Components {
    let any: RefOr<Schema> = Schema::default().into();
    let constant = |value: &str| -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([value]))
            .build()
            .into()
    };
    let boolean = |value: bool| -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([value]))
            .build()
            .into()
    };
    let int: RefOr<Schema> = ObjectBuilder::new().schema_type(Type::Integer).build().into();
    let header = |name: &str, about: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, about)))
    };
    ComponentsBuilder::new()
        .schema(
            "UniAppOk",
            envelope(
                "uni-app success: HTTP 200",
                &[("msg", constant("ok")), ("data", any.clone())],
            ),
        )
        .schema(
            "UniAppFail",
            envelope(
                "uni-app failure, with the error's HTTP status: `data` is the reason",
                &[("msg", constant("fail")), ("data", string())],
            ),
        )
        .schema(
            "ChatRoomOk",
            envelope(
                "chat-room success; the route's fields sit beside `message`",
                &[("success", boolean(true)), ("message", string())],
            ),
        )
        .schema(
            "ChatRoomError",
            envelope(
                "chat-room failure, with the error's HTTP status",
                &[("success", boolean(false)), ("message", string())],
            ),
        )
        .schema(
            "Chat21Ok",
            envelope(
                "Chat21 success; `result`, `group` or other fields sit beside `success`",
                &[("success", boolean(true))],
            ),
        )
        .schema(
            "Chat21Error",
            envelope(
                "Chat21 failure (`http_status` 405 for refused actions)",
                &[("success", boolean(false)), ("err", string())],
            ),
        )
        .schema(
            "AdminAnswer",
            envelope(
                "admin answer, always HTTP 200 (404 for an unknown route): code 0 success, else an error code",
                &[("code", int), ("msg", string())],
            ),
        )
        .schema(
            "Health",
            envelope("health", &[("status", string())]),
        )
        .security_scheme(
            "token",
            header("token", "The JWT from a login (uni-app and chat-room faces)"),
        )
        .security_scheme(
            "authorization",
            header(
                "Authorization",
                "The JWT, bare or after `Bearer `/`JWT ` (Chat21: `sub` and `app_id` claims)",
            ),
        )
        .security_scheme("nonce", header("nonce", "Admin: a fresh random value, single use"))
        .security_scheme(
            "timestamp",
            header("timestamp", "Admin: milliseconds since the epoch, within admin.window_secs"),
        )
        .security_scheme(
            "sign",
            header("sign", "Admin: lowercase hex sha1 of `nonce|admin.secret|timestamp`"),
        )
        .build()
}
