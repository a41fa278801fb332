//! The OpenAPI documents: `GET /openapi.json` on the client and the admin listener parses as
//! OpenAPI 3, describes exactly the routes each listener registers (method and path), names
//! each operation once, and gives every operation at least one error response, its security
//! and its path parameters. Real answers of a sample of routes on every face, successes and
//! errors, are validated against the schema their document gives for their status (with
//! `jsonschema`): a status the document does not list, a field of the wrong type or a field
//! it does not name fails.

use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use parlor::routes::RouteTable;
use serde_json::{json, Value};
use utoipa::openapi::OpenApi;

/// The `(METHOD, path)` pairs of a document.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "head", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn registered(table: &RouteTable) -> BTreeSet<(String, String)> {
    table
        .0
        .iter()
        .map(|(m, p)| (m.as_str().to_owned(), parlor::openapi::openapi_path(p)))
        .collect()
}

/// Checks one listener's document against its route table.
fn check(doc: &Value, table: &RouteTable) {
    let parsed: OpenApi = serde_json::from_value(doc.clone()).expect("an OpenAPI document");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(!parsed.paths.paths.is_empty());
    let (described, registered) = (described(doc), registered(table));
    let missing: Vec<_> = registered.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes the document does not describe: {missing:?}"
    );
    let extra: Vec<_> = described.difference(&registered).collect();
    assert!(extra.is_empty(), "documented routes that do not exist: {extra:?}");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for (method, path) in &described {
        let id = &doc["paths"][path][method.to_lowercase()]["operationId"];
        let id = id
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "operationId {id} is not unique ({method} {path})"
        );
        let op = &doc["paths"][path][method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| !s.starts_with('2') && s != "101"),
            "{method} {path}: no error response"
        );
        for status in responses.keys() {
            let envelope = &responses[status]["content"]["application/json"]["schema"]["$ref"];
            if let Some(r) = envelope.as_str() {
                let name = r.trim_start_matches("#/components/schemas/");
                assert!(doc["components"]["schemas"][name].is_object(), "{path}: {r}");
            }
        }
        for param in path.split('/').filter_map(|s| s.strip_prefix('{')) {
            let name = param.trim_end_matches('}');
            let params = op["parameters"].as_array().expect("path parameters");
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{method} {path}: no path parameter {name}"
            );
        }
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{path}: unknown scheme {scheme}");
            }
        }
    }
}

#[actix_web::test]
async fn documents_describe_every_route_of_each_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.admin.secret = "openapi-test-admin-secret".into();
        c.admin.bind = "127.0.0.1:0".into();
    })
    .await;
    let (status, client) = server.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    check(&client, &RouteTable::client());
    let admin_url = format!("http://{}/openapi.json", server.admin.unwrap());
    let resp = server.http.get(&admin_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let admin: Value = resp.json().await.unwrap();
    check(&admin, &RouteTable::admin());

    // Each listener describes its own routes only.
    assert!(client["paths"]["/admin/export"].is_null());
    assert!(admin["paths"]["/api/regChat"].is_null());
    // Form-or-JSON routes take both; the admin face JSON; the three admin headers go together.
    let reg = &client["paths"]["/api/regChat"]["post"]["requestBody"]["content"];
    assert!(reg["application/x-www-form-urlencoded"].is_object() && reg["application/json"].is_object());
    let chat21 = &client["paths"]["/api/{app_id}/messages"]["post"];
    assert!(chat21["requestBody"]["content"]["application/x-www-form-urlencoded"].is_null());
    assert_eq!(chat21["security"][0]["authorization"], serde_json::json!([]));
    let signed = &admin["paths"]["/admin/robot/create"]["post"]["security"][0];
    for header in ["nonce", "timestamp", "sign"] {
        assert!(signed[header].is_array(), "{signed}");
    }
    assert_eq!(
        client["paths"]["/api/loginChat"]["post"]["responses"]["400"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/UniAppFail"
    );
    // An unknown route is not described and is still answered in the uni-app envelope.
    let (status, body) = server.get("/no/such/route", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"msg": "fail", "data": "no such route"}));
    server.stop().await;
}

#[test]
fn a_route_missing_from_the_document_is_caught() {
    // A table with one more route than the server has: the check names it.
    let doc = serde_json::to_value(parlor::openapi::client()).unwrap();
    let mut table = RouteTable::client();
    table.0.push((actix_web::http::Method::GET, "/api/not/described"));
    let outcome = std::panic::catch_unwind(|| check(&doc, &table));
    let message = *outcome.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("/api/not/described"), "{message}");
}

#[test]
fn a_duplicate_operation_id_is_caught() {
    let mut doc = serde_json::to_value(parlor::openapi::client()).unwrap();
    let id = doc["paths"]["/api/regChat"]["post"]["operationId"].clone();
    doc["paths"]["/api/loginChat"]["post"]["operationId"] = id;
    let outcome = std::panic::catch_unwind(|| check(&doc, &RouteTable::client()));
    let message = *outcome.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("is not unique"), "{message}");
}

// ---------------------------------------------------------------------------------------
// Real answers against the documents

/// Why `body` (answered `status` with `content_type` by `method` `path`, the path as its
/// document names it) does not fit `doc`, if it does not.
fn misfit(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
    body: &str,
) -> Option<String> {
    let op = &doc["paths"][path][method];
    if !op.is_object() {
        return Some(format!("{method} {path} is not in the document"));
    }
    let response = &op["responses"][status.to_string()];
    if !response.is_object() {
        return Some(format!(
            "{method} {path}: status {status} is not documented: {body}"
        ));
    }
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if body.is_empty() && media.is_empty() {
        return None;
    }
    let schema = &response["content"][media]["schema"];
    if !schema.is_object() {
        return Some(format!(
            "{method} {path} {status}: {media} is not documented: {body}"
        ));
    }
    let instance = match media {
        "application/json" => match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return Some(format!("{method} {path} {status}: not JSON ({e}): {body}")),
        },
        _ => Value::String(body.to_owned()),
    };
    // The schema with the document's components beside it, where its `$ref`s point.
    let root = json!({"components": doc["components"], "allOf": [schema]});
    let validator = jsonschema::validator_for(&root).expect("a JSON schema");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{method} {path} {status}: {}: {body}", errors.join("; ")))
}

/// A client of both listeners that checks every answer against its document.
struct Checked {
    http: reqwest::Client,
    base: String,
    admin_base: String,
    client_doc: Value,
    admin_doc: Value,
    /// The (method, path, status) answers checked.
    seen: std::sync::Mutex<BTreeSet<(String, String, u16)>>,
}

enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
    Raw(&'static str, String),
    File(&'static str, Vec<u8>),
}

impl Checked {
    /// Sends `method` to `url` (a path of the client listener) and checks the answer against
    /// the operation `path` of the client document; returns the status and the body (a text
    /// answer as a JSON string).
    async fn call(
        &self,
        method: &str,
        path: &str,
        url: &str,
        token: Option<&str>,
        body: Body,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{url}", self.base));
        if let Some(t) = token {
            req = req.header("token", t);
        }
        req = match body {
            Body::None => req,
            Body::Form(f) => req.form(&f),
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, text) => req.header("content-type", ct).body(text),
            Body::File(field, bytes) => req.multipart(reqwest::multipart::Form::new().part(
                field.to_owned(),
                reqwest::multipart::Part::bytes(bytes).file_name("x.png"),
            )),
        };
        self.finish(&self.client_doc, method, path, req).await
    }

    /// A signed admin request: POST `path` with the JSON `body`.
    async fn admin(&self, path: &str, body: Value) -> (u16, Value) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let nonce = format!(
            "openapi-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let req = self
            .http
            .post(format!("{}{path}", self.admin_base))
            .header("nonce", &nonce)
            .header("timestamp", &timestamp)
            .header("sign", parlor::faces::admin::sign(&nonce, SECRET, &timestamp))
            .json(&body);
        self.finish(&self.admin_doc, "post", path, req).await
    }

    async fn finish(
        &self,
        doc: &Value,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap();
        if let Some(why) = misfit(doc, method, path, status, &content_type, &text) {
            panic!("{why}");
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_owned(), path.to_owned(), status));
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }
}

const SECRET: &str = "openapi-test-admin-secret";

#[actix_web::test]
async fn real_answers_fit_their_documents() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.admin.secret = SECRET.into();
        c.admin.bind = "127.0.0.1:0".into();
        c.webhooks.allowed_hosts = vec!["127.0.0.1:9".into()];
        c.limits.max_body_bytes = 64 * 1024;
    })
    .await;
    let (_, client_doc) = server.get("/openapi.json", None).await;
    let admin_base = format!("http://{}", server.admin.unwrap());
    let admin_doc = server.http.get(format!("{admin_base}/openapi.json")).send();
    let (_, admin_doc) = TestServer::finish(admin_doc.await.unwrap()).await;
    let api = Checked {
        http: server.http.clone(),
        base: server.base.clone(),
        admin_base,
        client_doc,
        admin_doc,
        seen: Default::default(),
    };
    let ok = |got: (u16, Value)| {
        assert!((200..300).contains(&got.0), "{got:?}");
        got.1
    };
    let data = |got: (u16, Value)| ok(got)["data"].clone();
    let form = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Body::Form(pairs)
    };
    let creds = |name: &str| form(&[("username", name), ("password", "secret1")]);
    let big = || {
        Body::Raw(
            "application/json",
            format!("{{\"x\":\"{}\"}}", "x".repeat(70_000)),
        )
    };

    // Set-up on the uni-app face: three users, a friendship through an application, a
    // direct and a group message.
    let a = data(
        api.call("post", "/api/regChat", "/api/regChat", None, creds("oa_alice"))
            .await,
    );
    let b_body = json!({"username": "oa_bob", "password": "secret1"});
    let b = data(
        api.call("post", "/api/regChat", "/api/regChat", None, Body::Json(b_body))
            .await,
    );
    let c = data(
        api.call("post", "/api/regChat", "/api/regChat", None, creds("oa_carol"))
            .await,
    );
    let (at, bt) = (a["token"].as_str().unwrap(), b["token"].as_str().unwrap());
    let (aid, bid, cid) = (
        a["id"].as_u64().unwrap(),
        b["id"].as_u64().unwrap(),
        c["id"].as_u64().unwrap(),
    );
    let (auuid, buuid) = (a["uuid"].as_str().unwrap(), b["uuid"].as_str().unwrap());
    let to_b = bid.to_string();
    let apply = form(&[("friend_id", &to_b)]);
    ok(api
        .call(
            "post",
            "/api/chat/applyfriend",
            "/api/chat/applyfriend",
            Some(at),
            apply,
        )
        .await);
    let applies = data(
        api.call(
            "get",
            "/api/chat/listapplyfriend",
            "/api/chat/listapplyfriend",
            Some(bt),
            Body::None,
        )
        .await,
    );
    let apply = applies["alldata"][0]["id"].as_u64().unwrap();
    let url = format!("/api/chat/isApplyfriend/{auuid}");
    api.call(
        "post",
        "/api/chat/isApplyfriend/{uuid}",
        &url,
        Some(bt),
        Body::None,
    )
    .await;
    let url = format!("/api/chat/handleapply/{apply}");
    ok(api
        .call(
            "post",
            "/api/chat/handleapply/{id}",
            &url,
            Some(bt),
            form(&[("status", "agree")]),
        )
        .await);
    let text = form(&[
        ("sendto_id", &to_b),
        ("type", "text"),
        ("data", "hello"),
        ("cid", "c-1"),
    ]);
    let sent = data(
        api.call(
            "post",
            "/api/chat/socket/sendmessage",
            "/api/chat/socket/sendmessage",
            Some(at),
            text,
        )
        .await,
    );
    let conv = sent["conversation"].as_str().unwrap().to_owned();
    let create = Body::Json(json!({"userIds": [bid]}));
    ok(api
        .call(
            "post",
            "/api/chat/group/create",
            "/api/chat/group/create",
            Some(at),
            create,
        )
        .await);
    let groups = data(
        api.call(
            "get",
            "/api/chat/grouplist",
            "/api/chat/grouplist",
            Some(at),
            Body::None,
        )
        .await,
    );
    let gid = groups[0]["id"].as_u64().unwrap();
    let to_group = json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": {"text": "hi"}, "metadata": {"k": 1}});
    let in_group = data(
        api.call(
            "post",
            "/api/chat/socket/sendmessage",
            "/api/chat/socket/sendmessage",
            Some(at),
            Body::Json(to_group),
        )
        .await,
    );
    let msg = in_group["id"].as_str().unwrap().to_owned();

    // The chat-room face's user, and Chat21's group.
    let dave = form(&[
        ("username", "oa_dave"),
        ("password", "secret1"),
        ("nickname", "Dave"),
    ]);
    ok(api
        .call("post", "/user/register", "/user/register", None, dave)
        .await);
    let login = json!({"username": "oa_dave", "password": "secret1"});
    let login = ok(api
        .call("post", "/user/login", "/user/login", None, Body::Json(login))
        .await);
    let dt = login["token"].as_str().unwrap();
    ok(api
        .call(
            "post",
            "/contacts/add",
            "/contacts/add",
            Some(dt),
            Body::Json(json!({"id": bid})),
        )
        .await);
    let url = format!("/conversation/create?contactId={bid}");
    let created = ok(api
        .call("post", "/conversation/create", &url, Some(dt), Body::None)
        .await);
    let number = created["conversation"]["id"].as_u64().unwrap();
    let c21 = "/api/default";
    let group = json!({"group_name": "G21", "group_members": {buuid: 1}, "group_id": "group-oa"});
    let created = ok(api
        .call(
            "post",
            "/api/{app_id}/groups",
            &format!("{c21}/groups"),
            Some(at),
            Body::Json(group.clone()),
        )
        .await);
    assert_eq!(created["group"]["uid"], "group-oa");

    // Then one request after another, each answer checked: (method, path, URL, token, body).
    let calls: Vec<(&str, &str, String, Option<&str>, Body)> = vec![
        // uni-app
        (
            "post",
            "/api/loginChat",
            "/api/loginChat".into(),
            None,
            creds("oa_alice"),
        ),
        (
            "get",
            "/api/userinfo/{uuid}",
            format!("/api/userinfo/{auuid}"),
            None,
            Body::None,
        ),
        (
            "post",
            "/api/chat/searchUser",
            "/api/chat/searchUser".into(),
            Some(at),
            form(&[("keyword", "oa_")]),
        ),
        (
            "post",
            "/api/chat/updateUserinfo",
            "/api/chat/updateUserinfo".into(),
            Some(at),
            form(&[("fieldname", "bio"), ("fieldValue", "hi")]),
        ),
        (
            "post",
            "/api/chat/userset",
            "/api/chat/userset".into(),
            Some(bt),
            form(&[("userset", r#"{"chatset":{"visitor":2,"user":2}}"#)]),
        ),
        (
            "post",
            "/api/chat/isApplyfriend/{uuid}",
            format!("/api/chat/isApplyfriend/{auuid}"),
            Some(bt),
            Body::None,
        ),
        (
            "get",
            "/api/chat/goodfriendlist",
            "/api/chat/goodfriendlist".into(),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/chat/getgoodfriendinfo/{id}",
            format!("/api/chat/getgoodfriendinfo/{bid}"),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/chat/ismygoodfriend/{id}",
            format!("/api/chat/ismygoodfriend/{bid}"),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/chat/ismygoodfriend/{id}",
            format!("/api/chat/ismygoodfriend/{cid}"),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/chat/getUserSetInfo",
            "/api/chat/getUserSetInfo".into(),
            Some(at),
            form(&[("userid", &to_b)]),
        ),
        (
            "post",
            "/api/chat/setstargoodfriend/{id}",
            format!("/api/chat/setstargoodfriend/{bid}"),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/chat/read",
            "/api/chat/read".into(),
            Some(bt),
            form(&[("conversation", &conv), ("seq", "1")]),
        ),
        (
            "get",
            "/api/chat/groupinfo/{id}",
            format!("/api/chat/groupinfo/{gid}"),
            Some(bt),
            Body::None,
        ),
        (
            "post",
            "/api/chat/revokeMessage",
            "/api/chat/revokeMessage".into(),
            Some(at),
            form(&[("id", &msg)]),
        ),
        (
            "get",
            "/api/chat/history/{chat_type}/{id}",
            format!("/api/chat/history/group/{gid}"),
            Some(bt),
            Body::None,
        ),
        (
            "get",
            "/api/chat/history/{chat_type}/{id}",
            format!("/api/chat/history/single/{bid}?limit=5"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/chat/conversations",
            "/api/chat/conversations".into(),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/chat/uploadStreamSingleToServerDiy/{diydir}",
            "/api/chat/uploadStreamSingleToServerDiy/avatars".into(),
            Some(at),
            Body::File("file", common::png(4, 3, 1)),
        ),
        (
            "post",
            "/api/chat/uploadAliyun",
            "/api/chat/uploadAliyun".into(),
            Some(at),
            Body::File("img", common::png(4, 3, 2)),
        ),
        (
            "post",
            "/api/regChat",
            "/api/regChat".into(),
            None,
            creds("oa_alice"),
        ),
        (
            "post",
            "/api/regChat",
            "/api/regChat".into(),
            None,
            form(&[("username", "x")]),
        ),
        (
            "post",
            "/api/chat/read",
            "/api/chat/read".into(),
            None,
            Body::None,
        ),
        (
            "get",
            "/api/chat/groupinfo/{id}",
            "/api/chat/groupinfo/999".into(),
            Some(at),
            Body::None,
        ),
        ("post", "/api/regChat", "/api/regChat".into(), None, big()),
        // chat-room
        (
            "get",
            "/user/profile",
            "/user/profile".into(),
            Some(dt),
            Body::None,
        ),
        (
            "get",
            "/user/profile/{id}",
            format!("/user/profile/{aid}"),
            Some(dt),
            Body::None,
        ),
        (
            "get",
            "/user/profile/{id}",
            "/user/profile/999999".into(),
            Some(dt),
            Body::None,
        ),
        (
            "get",
            "/contacts/list",
            "/contacts/list".into(),
            Some(dt),
            Body::None,
        ),
        (
            "post",
            "/api/chat/socket/sendmessage",
            "/api/chat/socket/sendmessage".into(),
            Some(dt),
            form(&[("sendto_id", &to_b), ("type", "text"), ("data", "room hello")]),
        ),
        (
            "get",
            "/conversation/getlist",
            "/conversation/getlist".into(),
            Some(dt),
            Body::None,
        ),
        (
            "get",
            "/conversation/members",
            format!("/conversation/members?conversationId={number}"),
            Some(dt),
            Body::None,
        ),
        (
            "get",
            "/message/history/{conversation_id}",
            format!("/message/history/{number}"),
            Some(dt),
            Body::None,
        ),
        (
            "post",
            "/message/image",
            "/message/image".into(),
            Some(dt),
            Body::File("image", common::png(5, 6, 3)),
        ),
        (
            "post",
            "/user/ban/{bannerId}",
            format!("/user/ban/{cid}"),
            Some(dt),
            Body::None,
        ),
        (
            "delete",
            "/user/unban/{bannerId}",
            format!("/user/unban/{cid}"),
            Some(dt),
            Body::None,
        ),
        ("post", "/contacts/add", "/contacts/add".into(), None, Body::None),
        (
            "post",
            "/user/login",
            "/user/login".into(),
            None,
            form(&[("username", "oa_dave"), ("password", "wrong-password")]),
        ),
        ("post", "/contacts/add", "/contacts/add".into(), Some(dt), big()),
        // Chat21
        (
            "post",
            "/api/{app_id}/groups",
            format!("{c21}/groups"),
            Some(at),
            Body::Json(group),
        ),
        (
            "post",
            "/api/{app_id}/groups",
            format!("{c21}/groups"),
            Some(at),
            Body::Json(json!({"group_members": {}})),
        ),
        (
            "get",
            "/api/{app_id}/groups/{group_id}",
            format!("{c21}/groups/group-oa"),
            Some(bt),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/groups/{group_id}",
            format!("{c21}/groups/nope"),
            Some(bt),
            Body::None,
        ),
        (
            "put",
            "/api/{app_id}/groups/{group_id}",
            format!("{c21}/groups/group-oa"),
            Some(bt),
            Body::Json(json!({"group_name": "G"})),
        ),
        (
            "put",
            "/api/{app_id}/groups/{group_id}/members",
            format!("{c21}/groups/group-oa/members"),
            Some(bt),
            Body::Json(json!({"members": {auuid: 1}})),
        ),
        (
            "post",
            "/api/{app_id}/messages",
            format!("{c21}/messages"),
            Some(at),
            Body::Json(
                json!({"sender_fullname": "A", "recipient_id": buuid, "recipient_fullname": "B", "text": "hi", "attributes": {"x": 1}}),
            ),
        ),
        (
            "post",
            "/api/{app_id}/messages",
            format!("{c21}/messages"),
            Some(at),
            Body::Json(
                json!({"sender_fullname": "A", "recipient_id": "group-oa", "recipient_fullname": "G", "text": "hi", "channel_type": "group"}),
            ),
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/conversations",
            format!("{c21}/{auuid}/conversations"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/conversations",
            format!("{c21}/{buuid}/conversations"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/conversations/{with}",
            format!("{c21}/{auuid}/conversations/{buuid}"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/conversations/{with}/messages",
            format!("{c21}/{auuid}/conversations/group-oa/messages"),
            Some(at),
            Body::None,
        ),
        (
            "delete",
            "/api/{app_id}/conversations/{recipient_id}",
            format!("{c21}/conversations/{buuid}"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/archived_conversations",
            format!("{c21}/{auuid}/archived_conversations"),
            Some(at),
            Body::None,
        ),
        (
            "delete",
            "/api/{app_id}/conversations/{recipient_id}/",
            format!("{c21}/conversations/nobody/"),
            Some(at),
            Body::None,
        ),
        (
            "get",
            "/api/{app_id}/{user_id}/conversations",
            "/api/other/x/conversations".into(),
            Some(at),
            Body::None,
        ),
        (
            "post",
            "/api/{app_id}/messages",
            format!("{c21}/messages"),
            Some(at),
            big(),
        ),
        // server
        ("get", "/healthz", "/healthz".into(), None, Body::None),
        (
            "get",
            "/web/locale.json",
            "/web/locale.json".into(),
            None,
            Body::None,
        ),
        ("get", "/web/{file}", "/web/nothing-here".into(), None, Body::None),
        ("get", "/ws", "/ws".into(), None, Body::None),
    ];
    for (method, path, url, token, body) in calls {
        api.call(method, path, &url, token, body).await;
    }

    // admin
    let pinned = json!({"type": 0, "target": buuid, "line": 0});
    let admin_calls = [
        ("/admin/robot/create", json!({"name": "bot"})),
        (
            "/admin/user/put_setting",
            json!({"userId": auuid, "scope": 1, "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": auuid, "scope": 1, "key": "k"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": auuid, "scope": 1, "key": "none"}),
        ),
        ("/admin/modify_setting", json!({"id": 1, "value": "120"})),
        ("/admin/get_setting", json!({"id": 1})),
        (
            "/admin/conversation/top",
            json!({"userId": auuid, "conversation": pinned, "top": 1}),
        ),
        ("/admin/file/user_files", json!({"userId": auuid})),
        (
            "/admin/file/conversation_files",
            json!({"userId": auuid, "conversation": pinned}),
        ),
        ("/admin/file/get", json!({"messageUid": "nothing"})),
        ("/admin/healthcheck", json!({})),
        ("/admin/customer", json!({})),
        ("/admin/conversation/top", json!({"userId": auuid})),
        (
            "/admin/webhook/add",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}),
        ),
        ("/admin/webhook/add", json!({"url": "http://10.0.0.1/"})),
        ("/admin/webhook/list", json!({})),
        ("/admin/webhook/dead_letters", json!({})),
        ("/admin/webhook/retry", json!({"id": 1})),
        ("/admin/webhook/remove", json!({"id": 1})),
        ("/admin/webhook/remove", json!({"id": 1})),
    ];
    for (path, body) in admin_calls {
        api.admin(path, body).await;
    }
    let top = ok(api
        .admin(
            "/admin/conversation/is_top",
            json!({"userId": auuid, "conversation": pinned}),
        )
        .await);
    assert_eq!(top["result"]["value"], true, "{top}");
    // Users' lifecycle, last: it disables, kicks and deletes.
    let robot = ok(api.admin("/admin/robot/create", json!({"name": "gone"})).await);
    let robot = robot["result"]["userId"].clone();
    let lifecycle = [
        ("/admin/user/list", json!({"count": 5})),
        ("/admin/user/list", json!({"keyword": "zzz-none"})),
        ("/admin/user/disable", json!({"userId": auuid})),
        ("/admin/user/enable", json!({"userId": auuid})),
        ("/admin/user/kick", json!({"userId": auuid})),
        (
            "/admin/user/delete",
            json!({"userId": robot, "eraseMessages": false}),
        ),
        (
            "/admin/user/delete",
            json!({"userId": robot, "eraseMessages": true}),
        ),
    ];
    for (path, body) in lifecycle {
        api.admin(path, body).await;
    }

    let seen = api.seen.lock().unwrap().clone();
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, _, s)| *s).collect();
    for status in [200, 201, 400, 401, 404, 405, 409, 413] {
        assert!(
            statuses.contains(&status),
            "no answer {status} was checked: {seen:?}"
        );
    }
    assert!(seen.len() >= 75, "{}", seen.len());
    server.stop().await;
}

#[test]
fn an_imprecise_answer_is_caught() {
    let doc = serde_json::to_value(parlor::openapi::client()).unwrap();
    let fits = |body: &str| misfit(&doc, "post", "/api/chat/read", 200, "application/json", body);
    assert_eq!(
        fits(r#"{"msg":"ok","data":{"conversation":"d:1:2","seq":3}}"#),
        None
    );
    // A field of another type, a field the document does not name, a missing field.
    for body in [
        r#"{"msg":"ok","data":{"conversation":"d:1:2","seq":"3"}}"#,
        r#"{"msg":"ok","data":{"conversation":"d:1:2","seq":3,"extra":1}}"#,
        r#"{"msg":"ok","data":{"conversation":"d:1:2"}}"#,
        r#"{"msg":"fail","data":"no"}"#,
    ] {
        assert!(fits(body).is_some(), "{body} fits");
    }
    let undocumented = misfit(&doc, "post", "/api/chat/read", 418, "application/json", "{}");
    assert!(undocumented.unwrap().contains("not documented"));
}
