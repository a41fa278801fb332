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
pub mod shape;
mod uniapp;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::header::HeaderBuilder;
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
    /// What the ok envelope carries, in the notation of [`shape`]: the uni-app `data`, the
    /// admin `result`, or (an object) the fields beside `success`/`message` of the chat-room
    /// and Chat21 faces. `None`: the face's generic envelope.
    pub data: Option<&'static str>,
    /// The whole success body when the route does not answer in its face's envelope.
    pub answer: Option<&'static str>,
    /// Success is 201 Created instead of 200.
    pub created: bool,
    /// The ok envelope carries nothing beside its fixed fields (admin: no `result`).
    pub bare: bool,
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
            data: None,
            answer: None,
            created: false,
            bare: false,
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

    /// What the ok envelope carries (see [`Op::data`](Op#structfield.data) and [`shape`]):
    /// `.data("User")`, `.data("[Message]")`, `.data("{token:string id:int}")`.
    pub const fn data(mut self, shape: &'static str) -> Op {
        self.data = Some(shape);
        self
    }

    /// The whole success body, for a route that does not answer in its face's envelope.
    pub const fn answer(mut self, shape: &'static str) -> Op {
        self.answer = Some(shape);
        self
    }

    /// Success is 201 Created.
    pub const fn created(mut self) -> Op {
        self.created = true;
        self
    }

    /// The ok envelope carries nothing beside its fixed fields (admin: `{"code":0,"msg":"success"}`).
    pub const fn bare(mut self) -> Op {
        self.bare = true;
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
    let mut ids = std::collections::BTreeSet::new();
    for (face, op) in ops {
        let mut operation = operation(*face, op);
        // The same path with and without a trailing slash, or a clash of the derived names:
        // each operation keeps a name of its own.
        let base = operation.operation_id.clone().unwrap_or_default();
        let mut id = base.clone();
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        operation.operation_id = Some(id);
        paths = paths.path(
            openapi_path(op.path),
            PathItem::new(http_method(&op.method), operation),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Parlor serves four chat APIs over one core; each face keeps its own envelope. \
                     Bodies marked form-or-JSON accept either media type with the same fields. \
                     Any request may also be refused by the listener before its face sees it: \
                     429 (too many connections from the address) or 503 (at the connection limit), \
                     and 408 when its body did not arrive in time, in the `UniAppFail` envelope.",
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

    /// The generic ok envelope and the error envelope.
    fn envelopes(self) -> (&'static str, &'static str) {
        match self {
            Face::Server => ("UniAppOk", "UniAppFail"),
            Face::UniApp => ("UniAppOk", "UniAppFail"),
            Face::ChatRoom => ("ChatRoomOk", "ChatRoomError"),
            Face::Chat21 => ("Chat21Ok", "Chat21Error"),
            Face::Admin => ("AdminAnswer", "AdminError"),
        }
    }

    /// The success body whose payload is `data` (see [`Op::data`](Op#structfield.data)),
    /// in the notation of [`shape`].
    fn ok_shape(self, data: &str, bare: bool) -> String {
        let fields = || {
            let inner = data
                .trim()
                .strip_prefix('{')
                .and_then(|d| d.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{data:?}: this face's payload is an object of fields"));
            inner.to_owned()
        };
        match self {
            Face::UniApp | Face::Server => format!("{{msg:'ok' data:{data}}}"),
            Face::ChatRoom => format!("{{success:true message:string {}}}", fields()),
            Face::Chat21 => format!("{{success:true {}}}", fields()),
            Face::Admin if bare => "{code:0 msg:'success'}|AdminError".to_owned(),
            Face::Admin => format!("{{code:0 msg:'success' result:{data}}}|AdminError"),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Invalid input: a missing or wrong field",
        401 => "No token, or a token that is invalid, expired or revoked",
        403 => "Not permitted",
        404 => "Not found",
        405 => "Chat21: a missing or wrong field (plain text), or a refused action (JSON)",
        408 => "The request body did not arrive within server.body_timeout_secs (the connection closes)",
        409 => "Conflict: already exists or already done",
        413 => "Body over limits.max_body_bytes (a file over files.max_bytes)",
        416 => "Range not satisfiable",
        429 => "Over a rate limit, or too many connections from this address",
        500 => "The server failed (a video that cannot be read)",
        503 => "Busy, at the connection limit, or shutting down: retry",
        _ => "Error",
    }
}

/// A shape as a schema, the named schemas resolved from [`COMPONENTS`].
fn shape_schema(spec: &str) -> RefOr<Schema> {
    shape::parse(spec, &named).schema()
}

fn named(name: &str) -> Option<&'static str> {
    COMPONENTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, spec)| *spec)
}

fn json_content(spec: &str) -> Content {
    Content::new(Some(shape_schema(spec)))
}

fn operation(face: Face, op: &Op) -> utoipa::openapi::path::Operation {
    let (ok, fail) = face.envelopes();
    let mut b = OperationBuilder::new()
        .tag(face.tag())
        .summary(Some(op.summary))
        .operation_id(Some(operation_id(op)));
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
    let nothing = |about: &str| ResponseBuilder::new().description(about).build();
    let success = if let Some(answer) = op.answer {
        ResponseBuilder::new()
            .description("Success")
            .content("application/json", json_content(answer))
    } else if face == Face::Admin && op.path == "/admin/export" {
        ResponseBuilder::new()
            .description(
                "The export file, streamed (one JSON record a line); errors come as the JSON envelope",
            )
            .content("application/x-ndjson", Content::new(Some(string())))
            .content("application/json", json("AdminError"))
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
            .content("application/json", json_content("{locale:'zh-CN'|'en'}"))
    } else if op.path == "/healthz" {
        ResponseBuilder::new()
            .description("The store reads and its last write succeeded")
            .content("application/json", json("Health"))
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
        let content = match op.data {
            Some(data) => json_content(&face.ok_shape(data, op.bare)),
            None if op.bare => json_content(&face.ok_shape("{}", true)),
            None => json(ok),
        };
        ResponseBuilder::new()
            .description("Success")
            .content("application/json", content)
    };
    let success_status = match () {
        _ if op.path == "/ws" => "101",
        _ if op.created => "201",
        _ => "200",
    };
    b = b.response(success_status, success.build());
    if op.path == "/public/uploads/{path:.*}" {
        b = b
            .response("206", nothing("The requested range, with `Content-Range`"))
            .response("304", nothing("Not modified: `If-None-Match` matched the `ETag`"));
    } else if op.path == "/" || op.path == "/web/{file}" {
        b = b.response("304", nothing("Not modified: `If-None-Match` matched the `ETag`"));
    }
    let mut errors: Vec<u16> = op.errors.to_vec();
    if op.auth && face != Face::Admin {
        errors.push(401);
    }
    if !op.body.is_empty() {
        // A body is bounded in size (the admin face answers that as code 251) and in time.
        if face != Face::Admin {
            errors.push(413);
        }
        errors.push(408);
    }
    // The listener's connection limits (`/healthz` is answered whatever they are).
    if op.path != "/healthz" {
        errors.extend([429, 503]);
    }
    errors.sort();
    errors.dedup();
    for status in errors {
        if status == 416 && op.path == "/public/uploads/{path:.*}" {
            b = b.response(
                "416",
                nothing("Range not satisfiable, with `Content-Range: bytes */size`"),
            );
            continue;
        }
        let mut r = ResponseBuilder::new().description(reason(status));
        if status == 429 {
            r = r.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some(
                        "Seconds until a throttled login, visitor or new-user request may be made again",
                    ))
                    .build(),
            );
        }
        r = match (face, status) {
            (_, 408) => r.content("application/json", json("UniAppFail")),
            (Face::Server, 503) if op.path == "/healthz" => r.content("application/json", json("Health")),
            (Face::Chat21, 405) => r
                .content("text/plain", Content::new(Some(string())))
                .content("application/json", json("Chat21Refusal")),
            (Face::ChatRoom, 404) => r.content("application/json", json("ChatRoomNotFound")),
            (Face::ChatRoom | Face::Chat21, 429 | 503) => {
                r.content("application/json", json_content(&format!("{fail}|UniAppFail")))
            }
            (Face::Admin, 404) if signed || op.path == "/metrics" => {
                r.content("application/json", json(fail))
            }
            (Face::Admin | Face::Server, _) => r.content("application/json", json("UniAppFail")),
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

/// The operation's name: method and path (`delete_api_app_id_conversations_recipient_id`),
/// `_slash` for a path with a trailing slash.
fn operation_id(op: &Op) -> String {
    let path = openapi_path(op.path);
    let mut id = format!(
        "{}_{}",
        op.method.as_str().to_lowercase(),
        path.replace(['{', '}'], "")
            .replace(['/', '.', '-'], "_")
            .trim_matches('_')
    );
    if path.len() > 1 && path.ends_with('/') {
        id.push_str("_slash");
    }
    id
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

/// The named schemas: `(name, description, shape)`, the shapes in the notation of [`shape`].
/// The envelopes first, then what the routes answer.
const COMPONENTS: &[(&str, &str, &str)] = &[
    // Envelopes
    (
        "UniAppOk",
        "uni-app success, HTTP 200 (a route's own schema says what `data` is)",
        "{msg:'ok' data:any}",
    ),
    (
        "UniAppFail",
        "uni-app failure, with the error's HTTP status: `data` is the reason. Also what the \
         listener answers for any route when it refuses a connection (429, 503) or a body came \
         too slowly (408), and unknown paths",
        "{msg:'fail' data:string}",
    ),
    (
        "ChatRoomOk",
        "chat-room success; the route's fields sit beside `message`",
        "{success:true message:string ..}",
    ),
    (
        "ChatRoomError",
        "chat-room failure, with the error's HTTP status",
        "{success:false message:string}",
    ),
    (
        "ChatRoomNotFound",
        "chat-room 404: a thing a route does not find, or an unknown path under the face's prefixes",
        "{timestamp:string status:404 error:'Not Found' message:string path:string}",
    ),
    (
        "Chat21Ok",
        "Chat21 success; `result`, `group` or other fields sit beside `success`",
        "{success:true ..}",
    ),
    (
        "Chat21Error",
        "Chat21 failure with its HTTP status (401, 404, 409, 429, 503)",
        "{success:false err:string}",
    ),
    (
        "Chat21Refusal",
        "Chat21 refusal of an action the caller may not take, HTTP 405 (a missing or wrong field \
         is 405 too, as plain text)",
        "{success:false err:string http_status:405}",
    ),
    (
        "AdminAnswer",
        "admin answer, always HTTP 200 (404 for an unknown route): code 0 success, else an error code",
        "{code:int msg:string result?:any}",
    ),
    (
        "AdminError",
        "admin refusal, HTTP 200 (404 for an unknown route): 239 not signed, 243 sign expired, \
         244 auth failure or replayed nonce, 250 over frequency, 251 invalid parameter, \
         253 not exist, 4 server error",
        "{code:239|243|244|250|251|253|4 msg:string}",
    ),
    (
        "Health",
        "`/healthz`: `ok`, or `unavailable` with the reason (HTTP 503)",
        "{status:'ok'|'unavailable' error?:string}",
    ),
    // uni-app
    (
        "User",
        "A user as the account routes answer it; the device fields for a visitor's device",
        "{create_time:string id:int uuid:string username:string nickname:string avatar:string \
          mobile:string|null email:string|null status:int last_login:string|null \
          last_login_ip:null register_time:string register_ip:null is_deleted:int \
          wechat_openid:null qq_openid:null weibo_uid:null role:string is_email_verified:int \
          is_mobile_verified:int order:int update_time:string app_id:string \
          devicefingeruuid?:string uniplatform?:string devicemodel?:string deviceos?:string \
          devicebrand?:string}",
    ),
    (
        "LoggedIn",
        "A user with the token just issued",
        "{..User token:string}",
    ),
    (
        "UserInfo",
        "The `userinfo` part of a profile",
        "{id:int gender:string birthday:string|null bio:string|null location:string|null \
          website:string|null}",
    ),
    (
        "UserBrief",
        "A user in a list",
        "{id:int username:string avatar:string nickname:string}",
    ),
    (
        "FoundUser",
        "A user a search found",
        "{id:int username:string avatar:string role:string uuid:string nickname:string}",
    ),
    (
        "FriendApply",
        "A friend application",
        "{create_time:string id:int user_id:int friend_id:int nickname:string friendlookme:int \
          melookfriend:int ismystarfriend:int isblack:int status:string order:int \
          update_time:string userId:int}",
    ),
    (
        "Friend",
        "My friend row",
        "{id:int user_id:int friend_id:int nickname:string friendlookme:int melookfriend:int \
          ismystarfriend:int isblack:int status:int}",
    ),
    (
        "FriendEntry",
        "A friend in the list grouped by initial",
        "{id:int beizhu:string username:string avatar:string friend_nickname:string \
          friend_id:int name:string}",
    ),
    (
        "Group",
        "A group",
        "{create_time:string id:int uuid:string user_id:int name:string avatar:string \
          remark:string invite_confirm:int status:int order:int update_time:string}",
    ),
    (
        "GroupMember",
        "A member row of a group",
        "{create_time:string id:int group_id:int user_id:int nickname:string avatar:string \
          status:int order:int groupId:int \
          user?:{id:int username:string avatar:string nickname:string role:string uuid:string}}",
    ),
    (
        "Message",
        "A stored message: `data` and `options` are the JSON the sender gave",
        "{id:string from_avatar:string from_name:string from_id:int to_id:int to_name:string \
          to_avatar:string chatType:'single'|'group' type:string data:any options:any \
          create_time:int isremove:int conversation:string seq:int revoked:bool cid?:string \
          actionType?:string}",
    ),
    (
        "Revoked",
        "A revoked message, now its placeholder; `notice` is the timeline entry of the revoke",
        "{..Message group:Group|null notice:{id:string seq:int}}",
    ),
    (
        "Conversation",
        "A conversation of my list",
        "{conversation:string chatType:'single'|'group' \
          target:{id:int name:string avatar:string uuid:string}|\
          {id:int uuid:string username:string nickname:string avatar:string}|null \
          last_message:Message|null unread:int pinned:bool archived:bool update_time:int}",
    ),
    // chat-room
    (
        "RoomUser",
        "A chat-room user",
        "{userId:int id:int username:string nickname:string email:string|null authority:string}",
    ),
    (
        "RoomContact",
        "A chat-room contact or member",
        "{id:int username:string nickname:string}",
    ),
    (
        "RoomMessage",
        "A chat-room message",
        "{id:int uuid:string sender_id:int content:string type:string sent_at:string \
          revoked:bool metadata:any}",
    ),
    // Chat21
    (
        "Chat21Group",
        "A Chat21 group: `members` maps each member's id to 1",
        "{uid:string id:int name:string owner:string members:{..} createdOn:int updatedOn:int}",
    ),
    (
        "Chat21Message",
        "A Chat21 message",
        "{message_id:string sender:string sender_fullname:string recipient:string \
          recipient_fullname:string text:string type:string channel_type:'direct'|'group' \
          timestamp:int attributes:any metadata:any conversation:string seq:int revoked:bool \
          status:int}",
    ),
    (
        "Chat21Conversation",
        "A Chat21 conversation",
        "{uid:string app_id:string recipient:string|null recipient_fullname:string|null \
          sender:string|null sender_fullname:string|null conversation_with:string \
          conversation_with_fullname:string last_message_text:string|null type:string|null \
          timestamp:int channel_type:'direct'|'group' is_new:bool unread:int archived:bool \
          pinned:bool user:string}",
    ),
    // admin
    (
        "AdminUser",
        "A user as the admin face lists it; `disabled` while the operator has disabled it",
        "{id:int userId:string username:string nickname:string role:string disabled:bool \
          createTime:int lastLoginTime:int|null}",
    ),
    (
        "AdminFile",
        "A file message; the upload's metadata (`fileId` to `height`) when the file is stored here",
        "{messageUid:int|string messageId:string filename:string url:string size:int type:string \
          from:string conversation:{type:int key:string line:int} timestamp:int fileId?:int \
          contentType?:string sha256?:string width?:int|null height?:int|null}",
    ),
];

fn components() -> utoipa::openapi::Components {
    let header = |name: &str, about: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, about)))
    };
    let mut c = ComponentsBuilder::new();
    for (name, about, spec) in COMPONENTS {
        let schema = match shape_schema(spec) {
            RefOr::T(Schema::Object(mut o)) => {
                o.description = Some((*about).to_owned());
                RefOr::T(Schema::Object(o))
            }
            other => other,
        };
        c = c.schema(*name, schema);
    }
    c.security_scheme(
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
    .security_scheme(
        "nonce",
        header("nonce", "Admin: a fresh random value, single use"),
    )
    .security_scheme(
        "timestamp",
        header(
            "timestamp",
            "Admin: milliseconds since the epoch, within admin.window_secs",
        ),
    )
    .security_scheme(
        "sign",
        header(
            "sign",
            "Admin: lowercase hex sha1 of `nonce|admin.secret|timestamp`",
        ),
    )
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_reads_and_operation_ids_are_unique() {
        for doc in [client(), admin()] {
            let json = serde_json::to_value(&doc).unwrap();
            let mut ids = std::collections::BTreeSet::new();
            for (_, item) in json["paths"].as_object().unwrap() {
                for (_, op) in item.as_object().unwrap() {
                    let id = op["operationId"].as_str().unwrap().to_owned();
                    assert!(ids.insert(id.clone()), "{id} twice");
                }
            }
        }
        for (name, _, spec) in COMPONENTS {
            assert!(
                matches!(shape::parse(spec, &named), shape::Shape::Record { .. }),
                "{name}"
            );
            // utoipa reads its own schemas back (the documents are `OpenApi` to clients too).
            let json = serde_json::to_value(shape_schema(spec)).unwrap();
            serde_json::from_value::<RefOr<Schema>>(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
