//! Accounts and visitors of the uni-app face (`shared/seeds/002_*`, sections 一–四, 十三–十八,
//! 三十四), against a real server over real HTTP and WebSocket clients: registration and
//! login (form and JSON bodies, every validation failure, tenants), logout and token
//! revocation (HTTP and `/ws`), token transports and bad tokens, user search, public
//! profiles, profile and settings updates, and the signed visitor routes with their
//! per-device rate limit. Every failure is checked for its status and the
//! `{"msg":"fail","data":"reason"}` envelope.

use crate::common;

use std::time::Duration;

use common::{assert_fail, assert_ok, assert_ws_unauthorized, user_of, ws_refusal, TestServer, User};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parlor::auth::Claims;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

// ---------------------------------------------------------------------------------------
// Helpers

/// Status and JSON body of a response.
async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, body)
}

/// POST a raw body with a content type.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let resp = server
        .http
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

/// POST a form with extra headers.
async fn post_form_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = server.http.post(server.url(path)).form(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    json_of(req.send().await.unwrap()).await
}

/// `searchUser` as `token` for `keyword`.
async fn search(server: &TestServer, token: &str, keyword: &str) -> (StatusCode, Value) {
    server
        .post_form("/api/chat/searchUser", Some(token), &[("keyword", keyword)])
        .await
}

/// The usernames of a successful search.
#[track_caller]
fn names(got: &(StatusCode, Value)) -> Vec<String> {
    assert_ok(got)
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

/// The public profile of `uuid` (no token).
async fn profile(server: &TestServer, uuid: &str) -> Value {
    assert_ok(&server.get(&format!("/api/userinfo/{uuid}"), None).await)
}

/// `updateUserinfo` of one field.
async fn update(server: &TestServer, token: &str, field: &str, value: &str) -> (StatusCode, Value) {
    server
        .post_form(
            "/api/chat/updateUserinfo",
            Some(token),
            &[("fieldname", field), ("fieldValue", value)],
        )
        .await
}

/// The server's own token secret (generated in the data directory at first start).
fn server_secret(server: &TestServer) -> Vec<u8> {
    std::fs::read_to_string(server.dir.join("jwt_secret"))
        .expect("the generated secret")
        .trim()
        .as_bytes()
        .to_vec()
}

/// The claims a token carries (its payload, unverified).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Claims for `user`, valid for an hour, for the database that issued the user's token.
fn claims_for(user: &User) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Claims {
        sub: user.id.to_string(),
        id: user.id,
        uuid: user.uuid.clone(),
        username: user.username.clone(),
        app_id: "default".into(),
        role: "user".into(),
        iat: now,
        exp: now + 3600,
        jti: uuid::Uuid::new_v4().to_string(),
        db: claims_of(&user.token)["db"].as_u64().expect("a database id"),
        gen: 0,
    }
}

fn forge(claims: &Claims, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// The status with which `/ws` refuses an upgrade; panics when it is accepted.
fn ws_url(server: &TestServer, query: &str) -> String {
    format!("ws://{}/ws{query}", server.addr)
}

/// A `/ws` request carrying one header.
fn ws_request_with(
    server: &TestServer,
    name: &'static str,
    value: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = ws_url(server, "").into_client_request().unwrap();
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
    req
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A fresh device id (uuid v4: 36 characters, groups 8-4-4-4-12).
fn device() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The visitor signature as a client computes it.
fn sign_with(device: &str, salt: &str, ts: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("deviceId={device}&salt={salt}&timestamp={ts}{secret}"));
    hex::encode(h.finalize())
}

fn sign(server: &TestServer, device: &str, ts: &str) -> String {
    let a = &server.config.auth;
    sign_with(device, &a.visitor_salt, ts, &a.visitor_app_secret)
}

/// A visitor request with an explicit signature header (or none) and timestamp.
async fn visitor_raw(
    server: &TestServer,
    path: &str,
    sign_header: Option<&str>,
    device: &str,
    ts: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![("deviceId", device), ("timestamp", ts)];
    form.extend_from_slice(extra);
    let headers: Vec<(&str, &str)> = sign_header.map(|s| ("X-Security-Sign", s)).into_iter().collect();
    post_form_with(server, path, &headers, &form).await
}

/// A correctly signed visitor request made now.
async fn visitor(
    server: &TestServer,
    path: &str,
    device: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let ts = now_ms().to_string();
    let s = sign(server, device, &ts);
    visitor_raw(server, path, Some(&s), device, &ts, extra).await
}

/// Registers the visitor of `device`.
async fn register_visitor(server: &TestServer, device: &str) -> User {
    let got = visitor(server, "/api/visitorRegister", device, &[]).await;
    assert_ok(&got);
    user_of(&got.1)
}

// ---------------------------------------------------------------------------------------
// Server basics

#[actix_web::test]
async fn healthz_answers_and_unknown_routes_are_404_in_the_envelope() {
    let (server, _dir) = TestServer::start().await;
    let resp = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, body) = json_of(resp).await;
    assert_eq!(body["status"], "ok", "{body}");

    for path in ["/nowhere", "/api/noSuchRoute", "/api/chat/nothing/here"] {
        let got = server.get(path, None).await;
        assert_fail(&got, StatusCode::NOT_FOUND);
        let got = server.post_form(path, None, &[("a", "b")]).await;
        assert_fail(&got, StatusCode::NOT_FOUND);
    }
    // A known path with the wrong method is refused in the envelope too.
    for (method, path) in [
        (reqwest::Method::GET, "/api/regChat"),
        (reqwest::Method::PUT, "/api/chat/logout"),
        (reqwest::Method::POST, "/api/userinfo/abc"),
        (reqwest::Method::DELETE, "/healthz"),
    ] {
        let resp = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        let got = json_of(resp).await;
        assert!(
            got.0 == StatusCode::NOT_FOUND || got.0 == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            got.0
        );
        assert_eq!(got.1["msg"], "fail", "{method} {path}: {}", got.1);
        assert!(got.1["data"].is_string(), "{}", got.1);
    }
}

// ---------------------------------------------------------------------------------------
// regChat

#[actix_web::test]
async fn reg_chat_with_a_form_returns_the_user_and_a_working_token() {
    let (server, _dir) = TestServer::start().await;
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "my01"), ("password", "123456")],
        )
        .await;
    let d = assert_ok(&got);
    assert!(d["id"].as_u64().unwrap() > 0, "{d}");
    assert!(uuid::Uuid::parse_str(d["uuid"].as_str().unwrap()).is_ok(), "{d}");
    assert_eq!(d["username"], "my01");
    assert_eq!(d["role"], "user");
    assert_eq!(d["nickname"], "");
    assert_eq!(d["status"], 1);
    assert_eq!(d["is_deleted"], 0);
    assert_eq!(d["app_id"], "default");
    assert!(
        d["mobile"].is_null() && d["email"].is_null() && d["last_login"].is_null(),
        "{d}"
    );
    assert!(d.get("devicefingeruuid").is_none(), "not a device user: {d}");
    assert!(
        d.get("password").is_none() && d.get("password_hash").is_none(),
        "{d}"
    );
    let create_time = d["create_time"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(create_time, "%Y-%m-%d %H:%M:%S").is_ok(),
        "create_time {create_time}"
    );
    for key in ["register_time", "update_time"] {
        let t = d[key].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{key} {t}");
    }

    // The token is the server's: it verifies with the server's secret and names the user.
    let token = d["token"].as_str().unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&server_secret(&server)),
        &validation,
    )
    .expect("a token of the server")
    .claims;
    assert_eq!(claims.id, d["id"].as_u64().unwrap());
    assert_eq!(claims.sub, d["id"].as_u64().unwrap().to_string());
    assert_eq!(claims.uuid, d["uuid"].as_str().unwrap());
    assert_eq!(
        (claims.app_id.as_str(), claims.role.as_str()),
        ("default", "user")
    );
    assert!(claims.exp > claims.iat);

    // And it works on a route that needs one.
    assert_ok(&search(&server, token, "zzz").await);
    // The user exists: its profile is public.
    let p = profile(&server, d["uuid"].as_str().unwrap()).await;
    assert_eq!(p["username"], "my01");
}

#[actix_web::test]
async fn a_new_user_has_an_avatar_the_server_serves() {
    let (server, _dir) = TestServer::start().await;
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "pictured"), ("password", "secret1")],
        )
        .await;
    let avatar = assert_ok(&got)["avatar"].as_str().unwrap().to_owned();
    assert_eq!(avatar, "/web/avatar.svg");
    let resp = server.http.get(server.url(&avatar)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let body = resp.text().await.unwrap();
    assert!(
        body.starts_with("<svg") && body.trim_end().ends_with("</svg>"),
        "{body}"
    );
    // The profile shows it too.
    let (_, profile) = server
        .get(&format!("/api/userinfo/{}", user_of(&got.1).uuid), None)
        .await;
    assert_eq!(profile["data"]["avatar"], "/web/avatar.svg", "{profile}");
}

#[actix_web::test]
async fn reg_chat_accepts_a_json_body_and_the_limits_of_the_rules() {
    let (server, _dir) = TestServer::start().await;
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "json_user", "password": "secret1"}),
        )
        .await;
    let d = assert_ok(&got);
    assert_eq!(d["username"], "json_user");
    assert_eq!(d["role"], "user");
    assert!(d["token"].as_str().is_some_and(|t| !t.is_empty()));

    // Boundaries that are allowed: 4 and 20 character names, 6 and 20 character passwords.
    let twenty = "u".repeat(20);
    let long_pw = "p".repeat(20);
    for (name, pw) in [
        ("abcd", "123456"),
        (twenty.as_str(), long_pw.as_str()),
        ("A_1_b", "密码密码密码"),
    ] {
        let got = server
            .post_form("/api/regChat", None, &[("username", name), ("password", pw)])
            .await;
        assert_eq!(assert_ok(&got)["username"], name);
    }
    // A password of 6 multi-byte characters counts characters, and logs in.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "A_1_b"), ("password", "密码密码密码")],
        )
        .await;
    assert_ok(&got);
}

#[actix_web::test]
async fn reg_chat_refuses_missing_and_invalid_fields() {
    let (server, _dir) = TestServer::start().await;
    let long_name = "a".repeat(21);
    let long_pw = "x".repeat(21);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("password", "secret1")], "username is required"),
        (vec![("username", "someone")], "password is required"),
        (vec![], "username is required"),
        (
            vec![("username", "abc"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", ""), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", &long_name), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "bad-name"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "with space"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "名字名字"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "someone"), ("password", "12345")],
            "password must be",
        ),
        (
            vec![("username", "someone"), ("password", "")],
            "password must be",
        ),
        (
            vec![("username", "someone"), ("password", &long_pw)],
            "password must be",
        ),
    ];
    for (form, reason) in cases {
        let got = server.post_form("/api/regChat", None, &form).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains(reason), "{form:?}: {text}");
    }
    // Nothing was created along the way.
    let me = server.register("searcher").await;
    assert!(names(&search(&server, &me.token, "someone").await).is_empty());
}

#[actix_web::test]
async fn reg_chat_refuses_json_fields_of_the_wrong_type() {
    let (server, _dir) = TestServer::start().await;
    for username in [json!(["alice1"]), json!({"name": "alice1"}), json!(true)] {
        let got = server
            .post_json(
                "/api/regChat",
                None,
                &json!({"username": username, "password": "secret1"}),
            )
            .await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("username must be a string"), "{username}: {text}");
    }
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "alice1", "password": ["secret1"]}),
        )
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("password must be a string"));
    // A JSON null is an absent field.
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": null, "password": "secret1"}),
        )
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("username is required"));
    // Numbers are read as their text (`Fields::opt_str`), so the username rules still apply.
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": 123, "password": "secret1"}),
        )
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("username must be"));
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": 1.5e3, "password": "secret1"}),
        )
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("username must be"));
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": 12345678, "password": 123456}),
        )
        .await;
    assert_eq!(assert_ok(&got)["username"], "12345678");
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "12345678"), ("password", "123456")],
        )
        .await;
    assert_ok(&got);
}

#[actix_web::test]
async fn reg_chat_refuses_a_taken_username_with_409() {
    let (server, _dir) = TestServer::start().await;
    let first = server.register("taken01").await;
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "taken01"), ("password", "otherpw1")],
        )
        .await;
    let text = assert_fail(&got, StatusCode::CONFLICT);
    assert!(text.contains("taken01") && text.contains("taken"), "{text}");
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "taken01", "password": "otherpw1"}),
        )
        .await;
    assert_fail(&got, StatusCode::CONFLICT);
    // The first account is untouched: its password still logs in, the other one does not.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "taken01"), ("password", "secret1")],
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], first.id);
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "taken01"), ("password", "otherpw1")],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn reg_chat_refuses_bodies_it_cannot_read() {
    let (server, _dir) = TestServer::start().await;
    for body in [r#"["alice1","secret1"]"#, r#""alice1""#, "42", "null"] {
        let got = post_raw(&server, "/api/regChat", "application/json", body).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("must be an object"), "{body}: {text}");
    }
    for body in [
        r#"{"username": "alice1", "password": }"#,
        "{",
        r#"{"username":"alice1""#,
    ] {
        let got = post_raw(&server, "/api/regChat", "application/json", body).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("not valid JSON"), "{body}: {text}");
    }
    for ct in ["text/plain", "application/xml", "multipart/form-data; boundary=x"] {
        let got = post_raw(&server, "/api/regChat", ct, "username=alice1&password=secret1").await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("unsupported content type"), "{ct}: {text}");
    }
    // The content type's parameters do not matter for the supported ones.
    let got = post_raw(
        &server,
        "/api/regChat",
        "application/json; charset=utf-8",
        r#"{"username":"alice1","password":"secret1"}"#,
    )
    .await;
    assert_eq!(assert_ok(&got)["username"], "alice1");
    let got = post_raw(
        &server,
        "/api/regChat",
        "application/x-www-form-urlencoded; charset=utf-8",
        "username=alice2&password=secret1",
    )
    .await;
    assert_eq!(assert_ok(&got)["username"], "alice2");
    // None of the refused bodies created alice1 twice.
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "alice1"), ("password", "secret1")],
        )
        .await;
    assert_fail(&got, StatusCode::CONFLICT);
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.max_body_bytes = 2048).await;
    let big = "x".repeat(4000);
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "biguser"), ("password", "secret1"), ("pad", &big)],
        )
        .await;
    let text = assert_fail(&got, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("2048"), "{text}");
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "biguser", "password": "secret1", "pad": big}),
        )
        .await;
    assert_fail(&got, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read.
    let fits = "x".repeat(1900);
    let got = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "biguser"), ("password", "secret1"), ("pad", &fits)],
        )
        .await;
    assert_eq!(assert_ok(&got)["username"], "biguser");
    // On an authenticated route as well.
    let got = server
        .post_form(
            "/api/chat/userset",
            Some(&user_of(&got.1).token),
            &[("userset", &big)],
        )
        .await;
    assert_fail(&got, StatusCode::PAYLOAD_TOO_LARGE);
}

#[actix_web::test]
async fn tenants_keep_their_users_apart() {
    let (server, _dir) = TestServer::start().await;
    let plain = server.register("sameuser").await;
    let peer = server.register("tenantpeer").await;

    // The same name in another tenant, named by the header…
    let got = post_form_with(
        &server,
        "/api/regChat",
        &[("X-App-Id", "acme")],
        &[("username", "sameuser"), ("password", "acmepass1")],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["app_id"], "acme");
    let acme = user_of(&got.1);
    assert_ne!(acme.uuid, plain.uuid);
    // …or by the field.
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "sameuser", "password": "betapass1", "app_id": "beta"}),
        )
        .await;
    assert_eq!(assert_ok(&got)["app_id"], "beta");
    // Taken inside a tenant is still taken.
    let got = post_form_with(
        &server,
        "/api/regChat",
        &[("X-App-Id", "acme")],
        &[("username", "sameuser"), ("password", "acmepass1")],
    )
    .await;
    assert_fail(&got, StatusCode::CONFLICT);
    let got = post_form_with(
        &server,
        "/api/regChat",
        &[("X-App-Id", "acme")],
        &[("username", "acmepeer"), ("password", "acmepass1")],
    )
    .await;
    assert_ok(&got);

    // Logins are per tenant: each password works only in its own tenant.
    let login = |tenant: Option<&'static str>, pw: &'static str| {
        let server = &server;
        async move {
            let headers: Vec<(&str, &str)> = tenant.map(|t| ("X-App-Id", t)).into_iter().collect();
            post_form_with(
                server,
                "/api/loginChat",
                &headers,
                &[("username", "sameuser"), ("password", pw)],
            )
            .await
        }
    };
    assert_eq!(assert_ok(&login(Some("acme"), "acmepass1").await)["id"], acme.id);
    assert_eq!(
        assert_ok(&login(None, "secret1").await)["uuid"],
        plain.uuid.as_str()
    );
    assert_fail(&login(None, "acmepass1").await, StatusCode::UNAUTHORIZED);
    assert_fail(&login(Some("acme"), "secret1").await, StatusCode::UNAUTHORIZED);
    assert_fail(&login(Some("nobody"), "secret1").await, StatusCode::UNAUTHORIZED);

    // Search sees only the caller's tenant.
    assert_eq!(names(&search(&server, &acme.token, "peer").await), ["acmepeer"]);
    assert_eq!(
        names(&search(&server, &plain.token, "peer").await),
        ["tenantpeer"]
    );
    assert!(names(&search(&server, &acme.token, "sameuser").await).is_empty());

    // Profiles: the token's tenant, else X-App-Id, else default.
    let path = format!("/api/userinfo/{}", peer.uuid);
    assert_fail(&server.get(&path, Some(&acme.token)).await, StatusCode::NOT_FOUND);
    let resp = server
        .http
        .get(server.url(&path))
        .header("X-App-Id", "acme")
        .send()
        .await
        .unwrap();
    assert_fail(&json_of(resp).await, StatusCode::NOT_FOUND);
    assert_eq!(
        assert_ok(&server.get(&path, None).await)["username"],
        "tenantpeer"
    );
    assert_eq!(
        assert_ok(&server.get(&path, Some(&plain.token)).await)["username"],
        "tenantpeer"
    );
    let acme_path = format!("/api/userinfo/{}", acme.uuid);
    assert_fail(&server.get(&acme_path, None).await, StatusCode::NOT_FOUND);
    assert_fail(
        &server.get(&acme_path, Some(&plain.token)).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        assert_ok(&server.get(&acme_path, Some(&acme.token)).await)["username"],
        "sameuser"
    );
}

#[actix_web::test]
async fn a_malformed_app_id_is_refused() {
    let (server, _dir) = TestServer::start().await;
    let long = "t".repeat(65);
    for tenant in ["bad tenant", "a/b", long.as_str()] {
        let got = server
            .post_json(
                "/api/regChat",
                None,
                &json!({"username": "tenanted", "password": "secret1", "app_id": tenant}),
            )
            .await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("app_id"), "{tenant}: {text}");
    }
    let got = post_form_with(
        &server,
        "/api/regChat",
        &[("X-App-Id", "")],
        &[("username", "tenanted"), ("password", "secret1")],
    )
    .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    // The longest allowed name works.
    let ok_name = "t".repeat(64);
    let got = server
        .post_json(
            "/api/regChat",
            None,
            &json!({"username": "tenanted", "password": "secret1", "app_id": ok_name}),
        )
        .await;
    assert_eq!(assert_ok(&got)["app_id"], ok_name.as_str());
}

// ---------------------------------------------------------------------------------------
// loginChat

#[actix_web::test]
async fn login_chat_returns_a_new_token_that_works() {
    let (server, _dir) = TestServer::start().await;
    let reg = server.register("loginme").await;
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "loginme"), ("password", "secret1")],
        )
        .await;
    let d = assert_ok(&got);
    assert_eq!(d["id"], reg.id);
    assert_eq!(d["uuid"], reg.uuid.as_str());
    assert_eq!(d["role"], "user");
    let last_login = d["last_login"].as_str().expect("login time recorded");
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_login).is_ok(),
        "{last_login}"
    );
    let token = d["token"].as_str().unwrap();
    assert_ne!(token, reg.token, "a fresh token");
    assert_ok(&search(&server, token, "x").await);
    assert_ok(&search(&server, &reg.token, "x").await);
    // JSON works too.
    let got = server
        .post_json(
            "/api/loginChat",
            None,
            &json!({"username": "loginme", "password": "secret1"}),
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], reg.id);
}

/// A login from `from` (a loopback address) with `password`: status, body and `Retry-After`.
async fn login_from(
    server: &TestServer,
    from: &str,
    username: &str,
    password: &str,
) -> (StatusCode, Value, Option<String>) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = client
        .post(server.url("/api/loginChat"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(resp).await;
    (status, body, retry)
}

/// A login of `bob_1` from `from` with `X-Forwarded-For: forwarded`: its status.
async fn login_forwarded(server: &TestServer, from: &str, forwarded: &str) -> StatusCode {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    client
        .post(server.url("/api/loginChat"))
        .header("X-Forwarded-For", forwarded)
        .form(&[("username", "bob_1"), ("password", "secret1")])
        .send()
        .await
        .unwrap()
        .status()
}

/// Behind a trusted proxy the per-address throttle counts the address the proxy forwarded;
/// anyone else's `X-Forwarded-For` is ignored, so it cannot dodge the throttle.
#[actix_web::test]
async fn behind_a_trusted_proxy_logins_are_throttled_per_forwarded_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
        c.login.per_account_per_min = 100;
        c.login.per_address_per_min = 2;
    })
    .await;
    server.register("bob_1").await;
    // Through the proxy (127.0.0.1): each client has its own two attempts.
    for _ in 0..2 {
        assert_eq!(
            login_forwarded(&server, "127.0.0.1", "198.51.100.1").await,
            StatusCode::OK
        );
    }
    assert_eq!(
        login_forwarded(&server, "127.0.0.1", "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client the proxy forwards after a spoofed first hop is known by the proxy's entry.
    assert_eq!(
        login_forwarded(&server, "127.0.0.1", "198.51.100.1, 198.51.100.2").await,
        StatusCode::OK
    );
    // Not through a trusted proxy: the header is ignored and the peer is throttled.
    for forwarded in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(
            login_forwarded(&server, "127.0.0.2", forwarded).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        login_forwarded(&server, "127.0.0.2", "203.0.113.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    server.stop().await;
}

#[actix_web::test]
async fn logins_are_throttled_per_account_and_per_address_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.login.per_account_per_min = 3;
        c.login.per_address_per_min = 5;
    })
    .await;
    server.register("alice").await;
    server.register("bob_1").await;
    let refusal = |got: (StatusCode, Value, Option<String>), status: StatusCode| {
        let reason = assert_fail(&(got.0, got.1), status);
        (reason, got.2)
    };
    // Three wrong passwords for alice are three ordinary refusals.
    for _ in 0..3 {
        let (reason, retry) = refusal(
            login_from(&server, "127.0.0.1", "alice", "wrongpw1").await,
            StatusCode::UNAUTHORIZED,
        );
        assert_eq!(reason, "username or password is wrong");
        assert_eq!(retry, None);
    }
    // The fourth attempt is refused before the password is looked at, the right one too.
    let (reason, retry) = refusal(
        login_from(&server, "127.0.0.1", "alice", "secret1").await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert!(
        reason.starts_with("too many login attempts for this account"),
        "{reason}"
    );
    let secs: u64 = retry.expect("a Retry-After header").parse().unwrap();
    assert!((1..=20).contains(&secs), "{secs}");
    // From another address too: the account is what is throttled.
    let (reason, _) = refusal(
        login_from(&server, "127.0.0.2", "alice", "secret1").await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert!(reason.contains("for this account"), "{reason}");
    // Bob is not throttled; but 127.0.0.1 has used four of its five attempts.
    let (status, body, _) = login_from(&server, "127.0.0.1", "bob_1", "secret1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (reason, retry) = refusal(
        login_from(&server, "127.0.0.1", "bob_1", "secret1").await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert!(reason.contains("from this address"), "{reason}");
    assert!(retry.is_some());
    // The chat-room face's login counts against the same address, in its own envelope.
    let resp = server
        .http
        .post(server.url("/user/login"))
        .json(&json!({"username": "bob_1", "password": "secret1"}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    let (status, body) = json_of(resp).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("from this address"),
        "{body}"
    );
    // Another address logs bob in.
    let (status, body, _) = login_from(&server, "127.0.0.2", "bob_1", "secret1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn password_hashing_is_bounded_for_known_and_unknown_users_alike() {
    let dir = tempfile::tempdir().unwrap();
    // One hash at a time, a slow one, and no waiting for a turn.
    let server = TestServer::start_in(dir.path(), |c| {
        c.auth.argon2_memory_kib = 32 * 1024;
        c.auth.argon2_iterations = 3;
        c.login.hash_concurrency = 1;
        c.login.hash_wait_ms = 1;
    })
    .await;
    server.register("alice").await;
    for username in ["alice", "nobody_here"] {
        let attempts = (0..6).map(|i| {
            let from = format!("127.0.1.{i}");
            let server = &server;
            async move { login_from(server, &from, username, "wrongpw1").await }
        });
        let got = futures_util::future::join_all(attempts).await;
        let busy: Vec<_> = got
            .iter()
            .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
            .collect();
        assert!(!busy.is_empty(), "{username}: six at once, one turn: {got:?}");
        for (_, body, _) in &busy {
            assert_eq!(body["msg"], "fail", "{body}");
            assert_eq!(body["data"], "too many password checks in progress; retry");
        }
        // The others were checked and refused as wrong, the unknown user's like the known one's.
        assert!(got
            .iter()
            .any(|(status, body, _)| *status == StatusCode::UNAUTHORIZED
                && body["data"] == "username or password is wrong"));
    }
}

#[actix_web::test]
async fn login_chat_gives_the_same_401_for_a_wrong_password_and_an_unknown_user() {
    let (server, _dir) = TestServer::start().await;
    server.register("loginme").await;
    let wrong_pw = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "loginme"), ("password", "wrongpw1")],
        )
        .await;
    let unknown = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "nobody1"), ("password", "secret1")],
        )
        .await;
    let a = assert_fail(&wrong_pw, StatusCode::UNAUTHORIZED);
    let b = assert_fail(&unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(a, b, "the reason must not tell which was wrong");
    assert_eq!(a, "username or password is wrong");
    // Usernames are exact.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "LoginMe"), ("password", "secret1")],
        )
        .await;
    assert_eq!(assert_fail(&got, StatusCode::UNAUTHORIZED), a);
}

#[actix_web::test]
async fn login_chat_validates_its_fields() {
    let (server, _dir) = TestServer::start().await;
    server.register("loginme").await;
    let long_pw = "x".repeat(21);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("password", "secret1")], "username is required"),
        (vec![("username", "loginme")], "password is required"),
        (
            vec![("username", "abc"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "bad-name"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "loginme"), ("password", "12345")],
            "password must be",
        ),
        (
            vec![("username", "loginme"), ("password", &long_pw)],
            "password must be",
        ),
    ];
    for (form, reason) in cases {
        let got = server.post_form("/api/loginChat", None, &form).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains(reason), "{form:?}: {text}");
    }
    let got = server
        .post_json(
            "/api/loginChat",
            None,
            &json!({"username": ["loginme"], "password": "secret1"}),
        )
        .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let got = post_raw(&server, "/api/loginChat", "application/json", "{oops").await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------
// logout and tokens

#[actix_web::test]
async fn logout_revokes_that_token_only() {
    let (server, _dir) = TestServer::start().await;
    let first = server.register("leaver").await;
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "leaver"), ("password", "secret1")],
        )
        .await;
    let second = user_of(&got.1);

    let got = server
        .post_form("/api/chat/logout", Some(&first.token), &[])
        .await;
    assert_eq!(assert_ok(&got), json!(true));

    let text = assert_fail(
        &search(&server, &first.token, "x").await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(text.contains("logged out"), "{text}");
    let got = update(&server, &first.token, "nickname", "ghost").await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    // Logging out twice is refused: the token is no longer valid.
    assert_fail(
        &server
            .post_form("/api/chat/logout", Some(&first.token), &[])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    // The other login of the same user is unaffected.
    assert_ok(&search(&server, &second.token, "x").await);
    assert_ok(&update(&server, &second.token, "nickname", "still here").await);
    // And the password still logs in.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "leaver"), ("password", "secret1")],
        )
        .await;
    assert_ok(&got);
}

#[actix_web::test]
async fn logout_without_a_token_is_401() {
    let (server, _dir) = TestServer::start().await;
    let text = assert_fail(
        &server.post_form("/api/chat/logout", None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(text.contains("token is required"), "{text}");
    let resp = server
        .http
        .post(server.url("/api/chat/logout"))
        .header("token", "")
        .send()
        .await
        .unwrap();
    assert_fail(&json_of(resp).await, StatusCode::UNAUTHORIZED);
    let got = server
        .post_form("/api/chat/logout", Some("not-a-token"), &[])
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn logout_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let first = server.register("restarter").await;
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "restarter"), ("password", "secret1")],
        )
        .await;
    let second = user_of(&got.1);
    assert_ok(
        &server
            .post_form("/api/chat/logout", Some(&first.token), &[])
            .await,
    );
    server.stop().await;

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_fail(
        &search(&server, &first.token, "x").await,
        StatusCode::UNAUTHORIZED,
    );
    assert_ok(&search(&server, &second.token, "x").await);
    server.stop().await;
}

#[actix_web::test]
async fn logout_closes_the_tokens_websocket_and_refuses_it_afterwards() {
    let (server, _dir) = TestServer::start().await;
    let first = server.register("wsleaver").await;
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "wsleaver"), ("password", "secret1")],
        )
        .await;
    let second = user_of(&got.1);
    let mut ws_first = server.ws(&first.token).await;
    let mut ws_second = server.ws(&second.token).await;

    assert_ok(
        &server
            .post_form("/api/chat/logout", Some(&first.token), &[])
            .await,
    );
    assert_eq!(
        ws_first.closed().await,
        Some(1008),
        "closed as a policy violation"
    );

    // The other device stays connected.
    ws_second.send_json(&json!({"type": "ping"})).await;
    ws_second.next_of_type("pong").await;

    // A new connection with the revoked token is refused before the upgrade.
    assert_ws_unauthorized(
        ws_url(&server, &format!("?token={}", first.token)),
        "token was logged out",
    )
    .await;
    assert_ws_unauthorized(
        ws_request_with(&server, "token", &first.token),
        "token was logged out",
    )
    .await;
    // The live token still connects.
    let again = server.ws(&second.token).await;
    again.close().await;
    ws_second.close().await;
}

#[actix_web::test]
async fn bad_tokens_are_refused_on_http_and_on_the_websocket() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("tokenuser").await;
    let claims = claims_for(&user);

    // The forging is right: the same claims signed with the server's secret are accepted.
    let genuine = forge(&claims, Algorithm::HS256, &server_secret(&server));
    assert_ok(&search(&server, &genuine, "x").await);

    // Missing.
    let text = assert_fail(
        &server
            .post_form("/api/chat/searchUser", None, &[("keyword", "x")])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(text.contains("token is required"), "{text}");
    assert_ws_unauthorized(ws_url(&server, ""), "token is required").await;

    let other_secret = forge(&claims, Algorithm::HS256, b"another-secret-entirely");
    let other_alg = forge(&claims, Algorithm::HS512, &server_secret(&server));
    let mut tampered_parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    tampered_parts[1] = forge(
        &Claims {
            id: user.id + 1,
            ..claims.clone()
        },
        Algorithm::HS256,
        b"x",
    )
    .split('.')
    .nth(1)
    .unwrap()
    .to_owned();
    let tampered = tampered_parts.join(".");
    for (what, token, reason) in [
        ("garbage", "garbage", "token is invalid"),
        ("three garbage parts", "a.b.c", "token is invalid"),
        (
            "another secret",
            other_secret.as_str(),
            "token signature is invalid",
        ),
        ("another algorithm", other_alg.as_str(), "token is invalid"),
        ("tampered claims", tampered.as_str(), "token signature is invalid"),
    ] {
        let got = search(&server, token, "x").await;
        let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
        assert_eq!(text, reason, "{what}");
        let got = server.post_form("/api/chat/logout", Some(token), &[]).await;
        let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
        assert_eq!(text, reason, "{what}");
        let got = ws_refusal(ws_url(&server, &format!("?token={token}"))).await;
        let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
        assert_eq!(text, reason, "{what}");
    }
    let got = search(&server, &other_secret, "x").await;
    assert!(
        assert_fail(&got, StatusCode::UNAUTHORIZED).contains("signature"),
        "{}",
        got.1
    );
    // The genuine token still works after all that.
    assert_ok(&search(&server, &user.token, "x").await);
}

#[actix_web::test]
async fn an_expired_token_is_refused_on_http_and_on_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.auth.token_ttl_secs = 1).await;
    let user = server.register("shortlived").await;
    assert_ok(&search(&server, &user.token, "x").await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let text = assert_fail(&search(&server, &user.token, "x").await, StatusCode::UNAUTHORIZED);
    assert!(text.contains("expired"), "{text}");
    let text = assert_fail(
        &server.post_form("/api/chat/logout", Some(&user.token), &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(text, "token expired");
    assert_ws_unauthorized(
        ws_url(&server, &format!("?token={}", user.token)),
        "token expired",
    )
    .await;
    // A fresh login issues a token that works again.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "shortlived"), ("password", "secret1")],
        )
        .await;
    assert_ok(&search(&server, &user_of(&got.1).token, "x").await);
}

#[actix_web::test]
async fn tokens_are_taken_from_the_header_authorization_and_the_query() {
    let (server, _dir) = TestServer::start().await;
    let me = server.register("carrier").await;
    server.register("carried").await;
    let expect = |got: (StatusCode, Value)| {
        assert_eq!(names(&got), ["carried"]);
    };
    let url = server.url("/api/chat/searchUser");
    let form = [("keyword", "carrie")];
    // `token` header.
    expect(search(&server, &me.token, "carrie").await);
    // `Authorization: Bearer`, and a bare `Authorization`.
    for value in [format!("Bearer {}", me.token), me.token.clone()] {
        let resp = server
            .http
            .post(&url)
            .header("Authorization", value)
            .form(&form)
            .send()
            .await
            .unwrap();
        expect(json_of(resp).await);
    }
    // `?token=`.
    let resp = server
        .http
        .post(format!("{url}?token={}", me.token))
        .form(&form)
        .send()
        .await
        .unwrap();
    expect(json_of(resp).await);
    // A wrong token in any of them is refused.
    let resp = server
        .http
        .post(&url)
        .header("Authorization", "Bearer nope")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_fail(&json_of(resp).await, StatusCode::UNAUTHORIZED);
    let resp = server
        .http
        .post(format!("{url}?token=nope"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_fail(&json_of(resp).await, StatusCode::UNAUTHORIZED);

    // The WebSocket takes the same three.
    server.ws(&me.token).await.close().await;
    for (name, value) in [
        ("token", me.token.clone()),
        ("authorization", format!("Bearer {}", me.token)),
    ] {
        let (stream, _) = tokio_tungstenite::connect_async(ws_request_with(&server, name, &value))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut ws = common::Ws { stream };
        ws.next_of_type("connected").await;
        ws.close().await;
    }
    assert_ws_unauthorized(
        ws_request_with(&server, "authorization", "Bearer nope"),
        "token is invalid",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// searchUser

#[actix_web::test]
async fn search_user_finds_by_username_and_nickname_and_leaves_out_the_caller() {
    let (server, _dir) = TestServer::start().await;
    let me = server.register("finder_me").await;
    let other = server.register("finder_two").await;
    let nick = server.register("plainname").await;
    assert_ok(&update(&server, &nick.token, "nickname", "Findable Person").await);

    let got = search(&server, &me.token, "finder").await;
    assert_eq!(names(&got), ["finder_two"]);
    let entry = &assert_ok(&got)[0];
    assert_eq!(entry["id"], other.id);
    assert_eq!(entry["uuid"], other.uuid.as_str());
    assert_eq!(entry["role"], "user");
    assert_eq!(entry["nickname"], "");
    assert!(entry["avatar"].is_string(), "{entry}");
    assert!(
        entry.get("token").is_none() && entry.get("password").is_none(),
        "{entry}"
    );

    // Substrings anywhere, in the nickname too, without regard to case.
    assert_eq!(names(&search(&server, &me.token, "_two").await), ["finder_two"]);
    let got = search(&server, &me.token, "FINDABLE").await;
    assert_eq!(names(&got), ["plainname"]);
    assert_eq!(assert_ok(&got)[0]["nickname"], "Findable Person");
    let mut both = names(&search(&server, &me.token, "find").await);
    both.sort();
    assert_eq!(both, ["finder_two", "plainname"]);
    // The caller is left out of their own results, the others see them.
    assert!(names(&search(&server, &me.token, "finder_me").await).is_empty());
    assert_eq!(
        names(&search(&server, &other.token, "finder_me").await),
        ["finder_me"]
    );
    // No match is an empty list; JSON bodies work.
    assert!(names(&search(&server, &me.token, "nothing_like_it").await).is_empty());
    let got = server
        .post_json(
            "/api/chat/searchUser",
            Some(&me.token),
            &json!({"keyword": "two"}),
        )
        .await;
    assert_eq!(names(&got), ["finder_two"]);
}

#[actix_web::test]
async fn search_user_validates_the_keyword() {
    let (server, _dir) = TestServer::start().await;
    let me = server.register("validator").await;
    let text = assert_fail(
        &server
            .post_form("/api/chat/searchUser", Some(&me.token), &[])
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert!(text.contains("keyword is required"), "{text}");
    let long = "k".repeat(51);
    for keyword in ["", "   ", long.as_str()] {
        let text = assert_fail(
            &search(&server, &me.token, keyword).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(text.contains("keyword must be 1 to 50"), "{keyword:?}: {text}");
    }
    let got = server
        .post_json(
            "/api/chat/searchUser",
            Some(&me.token),
            &json!({"keyword": {"a": 1}}),
        )
        .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    // 50 characters (multi-byte counts as one) is allowed.
    let fifty = "搜".repeat(50);
    assert!(names(&search(&server, &me.token, &fifty).await).is_empty());
}

#[actix_web::test]
async fn visitors_cannot_search_users() {
    let (server, _dir) = TestServer::start().await;
    server.register("findable").await;
    let visitor = register_visitor(&server, &device()).await;
    let text = assert_fail(
        &search(&server, &visitor.token, "find").await,
        StatusCode::FORBIDDEN,
    );
    assert!(text.contains("visitor"), "{text}");
}

// ---------------------------------------------------------------------------------------
// userinfo

#[actix_web::test]
async fn userinfo_is_public_and_shows_the_profile() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("profiled").await;
    let got = server.get(&format!("/api/userinfo/{}", user.uuid), None).await;
    let d = assert_ok(&got);
    assert_eq!(d["uuid"], user.uuid.as_str());
    assert_eq!(d["username"], "profiled");
    assert_eq!(d["nickname"], "");
    assert_eq!(d["role"], "user");
    assert!(d["avatar"].is_string(), "{d}");
    assert_eq!(
        d["userinfo"],
        json!({"id": user.id, "gender": "unknown", "birthday": null, "bio": null, "location": null, "website": null})
    );
    let userset: Value = serde_json::from_str(d["userset"].as_str().expect("userset is JSON text")).unwrap();
    assert_eq!(userset, json!({"chatset": {"visitor": 0, "user": 0}}));
    for secret in ["token", "password", "password_hash", "mobile", "email"] {
        assert!(d.get(secret).is_none(), "{secret} leaked: {d}");
    }
    // With a token it is the same.
    let with = server
        .get(&format!("/api/userinfo/{}", user.uuid), Some(&user.token))
        .await;
    assert_eq!(assert_ok(&with), d);
}

#[actix_web::test]
async fn userinfo_of_an_unknown_uuid_is_404() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("someone").await;
    for uuid in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
        user.id.to_string(),
    ] {
        let text = assert_fail(
            &server.get(&format!("/api/userinfo/{uuid}"), None).await,
            StatusCode::NOT_FOUND,
        );
        assert!(text.contains("does not exist"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// updateUserinfo

#[actix_web::test]
async fn update_userinfo_changes_each_allowed_field() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("changer").await;
    for (field, value) in [
        ("nickname", "魂牵一梦"),
        ("avatar", "https://example.com/a.png"),
        ("gender", "female"),
        ("birthday", "1990-05-17"),
        ("bio", "hello there"),
        ("location", "武汉"),
        ("website", "https://example.com"),
        ("email", "me@example.com"),
        ("mobile", "13800000000"),
    ] {
        let got = update(&server, &user.token, field, value).await;
        assert_eq!(assert_ok(&got), json!("更新成功"), "{field}");
    }
    let p = profile(&server, &user.uuid).await;
    assert_eq!(p["nickname"], "魂牵一梦");
    assert_eq!(p["avatar"], "https://example.com/a.png");
    assert_eq!(
        p["userinfo"],
        json!({"id": user.id, "gender": "female", "birthday": "1990-05-17", "bio": "hello there",
               "location": "武汉", "website": "https://example.com"})
    );
    // Email and mobile are private: the account routes show them to their owner.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "changer"), ("password", "secret1")],
        )
        .await;
    let d = assert_ok(&got);
    assert_eq!(d["email"], "me@example.com");
    assert_eq!(d["mobile"], "13800000000");
    assert_eq!(d["nickname"], "魂牵一梦");

    // Empty values clear the optional fields; the gender goes back to unknown.
    for field in ["birthday", "bio", "location", "website", "email", "mobile"] {
        assert_ok(&update(&server, &user.token, field, "").await);
    }
    assert_ok(&update(&server, &user.token, "gender", "unknown").await);
    // JSON works too.
    let got = server
        .post_json(
            "/api/chat/updateUserinfo",
            Some(&user.token),
            &json!({"fieldname": "gender", "fieldValue": "male"}),
        )
        .await;
    assert_ok(&got);
    let p = profile(&server, &user.uuid).await;
    assert_eq!(
        p["userinfo"],
        json!({"id": user.id, "gender": "male", "birthday": null, "bio": null, "location": null, "website": null})
    );
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "changer"), ("password", "secret1")],
        )
        .await;
    let d = assert_ok(&got);
    assert!(d["email"].is_null() && d["mobile"].is_null(), "{d}");
}

#[actix_web::test]
async fn update_userinfo_refuses_bad_fields_and_values() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("refused").await;
    let long_nick = "n".repeat(51);
    let long_bio = "b".repeat(501);
    let cases = [
        ("password", "newsecret", "cannot be changed"),
        ("role", "admin", "cannot be changed"),
        ("username", "renamed", "cannot be changed"),
        ("status", "0", "cannot be changed"),
        ("gender", "robot", "gender must be"),
        ("gender", "", "gender must be"),
        ("birthday", "1990-13-40", "birthday must be"),
        ("birthday", "yesterday", "birthday must be"),
        ("birthday", "17/05/1990", "birthday must be"),
        ("email", "not-an-email", "email must be"),
        ("nickname", "", "fieldValue must be"),
        ("nickname", &long_nick, "fieldValue must be"),
        ("bio", &long_bio, "fieldValue must be"),
        ("", "x", "fieldname must be"),
    ];
    for (field, value, reason) in cases {
        let text = assert_fail(
            &update(&server, &user.token, field, value).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(text.contains(reason), "{field}={value}: {text}");
    }
    let got = server
        .post_form(
            "/api/chat/updateUserinfo",
            Some(&user.token),
            &[("fieldValue", "x")],
        )
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("fieldname is required"));
    assert_fail(
        &update(&server, "bad-token", "nickname", "x").await,
        StatusCode::UNAUTHORIZED,
    );
    // Nothing changed.
    let p = profile(&server, &user.uuid).await;
    assert_eq!(p["nickname"], "");
    assert_eq!(p["userinfo"]["gender"], "unknown");
    assert!(p["userinfo"]["birthday"].is_null() && p["userinfo"]["bio"].is_null());
    assert_eq!(p["username"], "refused");
    assert_eq!(p["role"], "user");
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "refused"), ("password", "secret1")],
        )
        .await;
    assert!(assert_ok(&got)["email"].is_null());
}

#[actix_web::test]
async fn visitors_may_change_only_nickname_and_avatar() {
    let (server, _dir) = TestServer::start().await;
    let visitor = register_visitor(&server, &device()).await;
    assert_ok(&update(&server, &visitor.token, "nickname", "Guest").await);
    assert_ok(&update(&server, &visitor.token, "avatar", "https://example.com/g.png").await);
    for (field, value) in [
        ("gender", "male"),
        ("birthday", "2000-01-01"),
        ("bio", "hi"),
        ("location", "here"),
        ("website", "https://x"),
        ("email", "v@example.com"),
        ("mobile", "1"),
    ] {
        let text = assert_fail(
            &update(&server, &visitor.token, field, value).await,
            StatusCode::FORBIDDEN,
        );
        assert!(text.contains("visitor"), "{field}: {text}");
    }
    let p = profile(&server, &visitor.uuid).await;
    assert_eq!(p["nickname"], "Guest");
    assert_eq!(p["avatar"], "https://example.com/g.png");
    assert_eq!(p["role"], "visitor");
    assert_eq!(p["userinfo"]["gender"], "unknown");
    assert!(p["userinfo"]["bio"].is_null());
}

// ---------------------------------------------------------------------------------------
// userset

#[actix_web::test]
async fn userset_stores_a_json_object_shown_by_userinfo() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("settings").await;
    let text = r#"{"chatset":{"visitor":{"sendCount":3,"needFollow":true},"user":0},"theme":"dark"}"#;
    let got = server
        .post_form("/api/chat/userset", Some(&user.token), &[("userset", text)])
        .await;
    assert_eq!(assert_ok(&got), json!("ok"));
    let p = profile(&server, &user.uuid).await;
    let shown: Value = serde_json::from_str(p["userset"].as_str().unwrap()).unwrap();
    assert_eq!(shown, serde_json::from_str::<Value>(text).unwrap());
    // Replaced, not merged.
    assert_ok(
        &server
            .post_form("/api/chat/userset", Some(&user.token), &[("userset", "{}")])
            .await,
    );
    let p = profile(&server, &user.uuid).await;
    assert_eq!(
        serde_json::from_str::<Value>(p["userset"].as_str().unwrap()).unwrap(),
        json!({})
    );
}

#[actix_web::test]
async fn userset_refuses_what_is_not_a_json_object() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("settings").await;
    for (value, reason) in [
        ("not json", "must be a JSON string"),
        ("{\"a\":", "must be a JSON string"),
        ("[1,2]", "must be a JSON object"),
        ("\"text\"", "must be a JSON object"),
        ("42", "must be a JSON object"),
        ("", "must be a JSON string"),
    ] {
        let got = server
            .post_form("/api/chat/userset", Some(&user.token), &[("userset", value)])
            .await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains(reason), "{value:?}: {text}");
    }
    let got = server
        .post_form("/api/chat/userset", Some(&user.token), &[])
        .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("userset is required"));
    let huge = format!("{{\"k\":\"{}\"}}", "v".repeat(5000));
    let got = server
        .post_form("/api/chat/userset", Some(&user.token), &[("userset", &huge)])
        .await;
    assert_fail(&got, StatusCode::PAYLOAD_TOO_LARGE);
    assert_fail(
        &server
            .post_form("/api/chat/userset", None, &[("userset", "{}")])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    // The default is still there.
    let p = profile(&server, &user.uuid).await;
    let shown: Value = serde_json::from_str(p["userset"].as_str().unwrap()).unwrap();
    assert_eq!(shown, json!({"chatset": {"visitor": 0, "user": 0}}));
}

#[actix_web::test]
async fn visitors_cannot_change_user_settings() {
    let (server, _dir) = TestServer::start().await;
    let visitor = register_visitor(&server, &device()).await;
    let got = server
        .post_form(
            "/api/chat/userset",
            Some(&visitor.token),
            &[("userset", r#"{"a":1}"#)],
        )
        .await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("visitor"));
    let p = profile(&server, &visitor.uuid).await;
    let shown: Value = serde_json::from_str(p["userset"].as_str().unwrap()).unwrap();
    assert_eq!(shown, json!({"chatset": {"visitor": 0, "user": 0}}));
}

// ---------------------------------------------------------------------------------------
// Visitors

#[actix_web::test]
async fn visitor_register_creates_a_visitor_once_per_device() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    let got = visitor(
        &server,
        "/api/visitorRegister",
        &dev,
        &[
            ("uniplatform", "web"),
            ("devicemodel", "PC"),
            ("deviceos", "linux"),
            ("devicebrand", "none"),
        ],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["role"], "visitor");
    assert_eq!(d["username"], format!("VIS{}", &dev[..8]).as_str());
    assert_eq!(d["devicefingeruuid"], dev.as_str());
    assert_eq!(
        (
            &d["uniplatform"],
            &d["devicemodel"],
            &d["deviceos"],
            &d["devicebrand"]
        ),
        (&json!("web"), &json!("PC"), &json!("linux"), &json!("none"))
    );
    assert!(d["last_login"].is_string(), "{d}");
    let first = user_of(&got.1);
    // The token is a visitor's: it works where visitors may act.
    assert_ok(&update(&server, &first.token, "nickname", "Guest").await);
    assert_eq!(profile(&server, &first.uuid).await["role"], "visitor");

    // The same device again (a JSON body, the timestamp a number) is the same visitor.
    let ts = now_ms();
    let s = sign(&server, &dev, &ts.to_string());
    let resp = server
        .http
        .post(server.url("/api/visitorRegister"))
        .header("X-Security-Sign", s.to_uppercase())
        .json(&json!({"deviceId": dev, "timestamp": ts, "devicemodel": "Phone"}))
        .send()
        .await
        .unwrap();
    let again = json_of(resp).await;
    let d = assert_ok(&again);
    assert_eq!(d["id"], first.id);
    assert_eq!(d["uuid"], first.uuid.as_str());
    assert_eq!(d["username"], first.username.as_str());
    assert_eq!(d["nickname"], "Guest");
    assert_eq!(d["devicemodel"], "Phone", "device fields are refreshed");
    assert_eq!(d["uniplatform"], "web", "fields not sent are kept");
    assert_ne!(d["token"], first.token.as_str());

    // Another device is another visitor.
    let other = register_visitor(&server, &device()).await;
    assert_ne!(other.id, first.id);
    // Visitors are tenant-scoped like everyone else.
    let got = post_form_with(
        &server,
        "/api/visitorRegister",
        &[("X-Security-Sign", &s), ("X-App-Id", "acme")],
        &[("deviceId", &dev), ("timestamp", &ts.to_string())],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["app_id"], "acme");
    assert_eq!(d["role"], "visitor");
}

#[actix_web::test]
async fn visitor_requests_need_a_fresh_valid_signature() {
    let (server, _dir) = TestServer::start().await;
    let now = now_ms();
    let ts = now.to_string();

    // No header, an empty one.
    let dev = device();
    let got = visitor_raw(&server, "/api/visitorRegister", None, &dev, &ts, &[]).await;
    assert!(assert_fail(&got, StatusCode::UNAUTHORIZED).contains("X-Security-Sign is required"));
    let got = visitor_raw(&server, "/api/visitorRegister", Some(" "), &dev, &ts, &[]).await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);

    // Signed for another device, with another secret or salt, for another time, or junk
    // (a fresh device each time: refused requests count against the device's limit).
    let a = &server.config.auth;
    for case in 0..6 {
        let dev = device();
        let wrong = match case {
            0 => sign(&server, &device(), &ts),
            1 => sign_with(&dev, &a.visitor_salt, &ts, "not-the-secret"),
            2 => sign_with(&dev, "not-the-salt", &ts, &a.visitor_app_secret),
            3 => sign(&server, &dev, &(now - 1).to_string()),
            4 => "0".repeat(64),
            _ => "not even hex".to_owned(),
        };
        let got = visitor_raw(&server, "/api/visitorRegister", Some(&wrong), &dev, &ts, &[]).await;
        assert!(
            assert_fail(&got, StatusCode::UNAUTHORIZED).contains("invalid"),
            "case {case}: {}",
            got.1
        );
    }

    // Timestamps outside the window, correctly signed: just over 300 s either way (no
    // rounding down to whole seconds), far away, and at the ends of the integer range.
    for (what, offset) in [
        ("past", Some(-300_500_i64)),
        ("future", Some(300_500)),
        ("far past", Some(-1_000_000_000)),
        ("i64::MIN", None),
    ] {
        let dev = device();
        let t = match offset {
            Some(o) => (now_ms() as i64 + o).to_string(),
            None => i64::MIN.to_string(),
        };
        let s = sign(&server, &dev, &t);
        let got = visitor_raw(&server, "/api/visitorRegister", Some(&s), &dev, &t, &[]).await;
        let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
        assert!(text.contains("expired"), "{what}: {text}");
    }
    let dev = device();
    let t = i64::MAX.to_string();
    let s = sign(&server, &dev, &t);
    let got = visitor_raw(&server, "/api/visitorRegister", Some(&s), &dev, &t, &[]).await;
    assert!(assert_fail(&got, StatusCode::UNAUTHORIZED).contains("expired"));
    // Inside the window is fine.
    for at in [now - 250_000, now + 60_000] {
        let dev = device();
        let t = at.to_string();
        let s = sign(&server, &dev, &t);
        let got = visitor_raw(&server, "/api/visitorRegister", Some(&s), &dev, &t, &[]).await;
        assert_eq!(assert_ok(&got)["role"], "visitor");
    }

    // The device id must have the shape of one.
    let upper = device().to_uppercase();
    assert_ok(&visitor(&server, "/api/visitorRegister", &upper, &[]).await);
    let bad_ids = [
        "not-a-device".to_owned(),
        device()[..35].to_owned(),
        format!("{}0", device()),
        device().replace('-', "x"),
        format!("zzzzzzzz{}", &device()[8..]),
        device().replace('-', "").chars().take(36).collect::<String>() + "0000",
        String::new(),
    ];
    for bad in &bad_ids {
        let got = visitor(&server, "/api/visitorRegister", bad, &[]).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains("deviceId"), "{bad:?}: {text}");
    }
    // Missing or malformed fields.
    let dev = device();
    let s = sign(&server, &dev, &ts);
    let got = post_form_with(
        &server,
        "/api/visitorRegister",
        &[("X-Security-Sign", &s)],
        &[("timestamp", &ts)],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("deviceId is required"));
    let got = post_form_with(
        &server,
        "/api/visitorRegister",
        &[("X-Security-Sign", &s)],
        &[("deviceId", &dev)],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("timestamp is required"));
    let s = sign(&server, &dev, "soon");
    let got = visitor_raw(&server, "/api/visitorRegister", Some(&s), &dev, "soon", &[]).await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("timestamp must be"));
    // Device fields are bounded.
    let long = "m".repeat(51);
    let got = visitor(
        &server,
        "/api/visitorRegister",
        &device(),
        &[("devicemodel", &long)],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("devicemodel"));

    // The other visitor routes check the same signature.
    for path in ["/api/visitorregChat", "/api/visitorloginChat"] {
        let dev = device();
        let creds = [("username", "signedup"), ("password", "secret1")];
        let got = visitor_raw(&server, path, None, &dev, &ts, &creds).await;
        assert_fail(&got, StatusCode::UNAUTHORIZED);
        let wrong = sign_with(&dev, &a.visitor_salt, &ts, "nope");
        let got = visitor_raw(&server, path, Some(&wrong), &dev, &ts, &creds).await;
        assert_fail(&got, StatusCode::UNAUTHORIZED);
        let old = (now - 400_000).to_string();
        let s = sign(&server, &dev, &old);
        let got = visitor_raw(&server, path, Some(&s), &dev, &old, &creds).await;
        assert_fail(&got, StatusCode::UNAUTHORIZED);
        let got = visitor(&server, path, "bad-device", &creds).await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    // None of the refused requests created "signedup".
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "signedup"), ("password", "secret1")],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn forged_visitor_requests_do_not_use_up_a_real_devices_hour() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    // Ten requests naming the device with a wrong signature, or an expired timestamp:
    // each is refused for what it is, never as over the limit.
    for i in 0..10 {
        let ts = now_ms().to_string();
        let got = visitor_raw(
            &server,
            "/api/visitorRegister",
            Some(&"0".repeat(64)),
            &dev,
            &ts,
            &[],
        )
        .await;
        let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
        assert!(text.contains("X-Security-Sign is invalid"), "{i}: {text}");
    }
    let old = (now_ms() - 3_600_000).to_string();
    let got = visitor_raw(
        &server,
        "/api/visitorRegister",
        Some(&sign(&server, &dev, &old)),
        &dev,
        &old,
        &[],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::UNAUTHORIZED).contains("expired"));
    // The real device still has its whole hour: five signed requests, then 429.
    let first = register_visitor(&server, &dev).await;
    for _ in 0..4 {
        assert_eq!(register_visitor(&server, &dev).await.id, first.id);
    }
    let got = visitor(&server, "/api/visitorRegister", &dev, &[]).await;
    assert!(assert_fail(&got, StatusCode::TOO_MANY_REQUESTS).contains("per device per hour"));
}

#[actix_web::test]
async fn the_sixth_visitor_request_of_a_device_within_the_hour_is_429() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    let first = register_visitor(&server, &dev).await;
    for _ in 0..4 {
        assert_eq!(register_visitor(&server, &dev).await.id, first.id);
    }
    let got = visitor(&server, "/api/visitorRegister", &dev, &[]).await;
    let text = assert_fail(&got, StatusCode::TOO_MANY_REQUESTS);
    assert!(text.contains('5'), "{text}");
    // The limit is the device's, whatever the visitor route.
    let creds = [("username", "limited1"), ("password", "secret1")];
    assert_fail(
        &visitor(&server, "/api/visitorregChat", &dev, &creds).await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert_fail(
        &visitor(&server, "/api/visitorloginChat", &dev, &creds).await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    // Other devices are unaffected.
    let other = device();
    assert_ok(&visitor(&server, "/api/visitorRegister", &other, &[]).await);
    // The visitor's token keeps working: only the visitor routes are limited.
    assert_ok(&update(&server, &first.token, "nickname", "still fine").await);
}

#[actix_web::test]
async fn visitor_reg_chat_makes_the_devices_visitor_a_user() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    let visitor_user = register_visitor(&server, &dev).await;
    assert_ok(&update(&server, &visitor_user.token, "nickname", "Was a guest").await);

    let got = visitor(
        &server,
        "/api/visitorregChat",
        &dev,
        &[("username", "promoted"), ("password", "newpass1")],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["id"], visitor_user.id, "same account");
    assert_eq!(d["uuid"], visitor_user.uuid.as_str());
    assert_eq!(d["role"], "user");
    assert_eq!(d["username"], "promoted");
    assert_eq!(d["nickname"], "Was a guest");
    assert_eq!(d["devicefingeruuid"], dev.as_str());
    let promoted = user_of(&got.1);
    // The new token is a user's: it may search.
    assert_ok(&search(&server, &promoted.token, "x").await);
    // The password logs in, on both login routes.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "promoted"), ("password", "newpass1")],
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], visitor_user.id);
    let got = visitor(
        &server,
        "/api/visitorloginChat",
        &dev,
        &[("username", "promoted"), ("password", "newpass1")],
    )
    .await;
    assert_eq!(assert_ok(&got)["id"], visitor_user.id);
    // The profile follows, and the visitor name is gone.
    let p = profile(&server, &visitor_user.uuid).await;
    assert_eq!(
        (p["username"].as_str(), p["role"].as_str()),
        (Some("promoted"), Some("user"))
    );
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", &visitor_user.username), ("password", "newpass1")],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn visitor_reg_chat_without_a_visitor_creates_a_user() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    let got = visitor(
        &server,
        "/api/visitorregChat",
        &dev,
        &[("username", "direct01"), ("password", "secret1")],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["role"], "user");
    assert_eq!(d["username"], "direct01");
    assert_eq!(d["devicefingeruuid"], dev.as_str());
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "direct01"), ("password", "secret1")],
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], d["id"]);
}

#[actix_web::test]
async fn visitor_reg_chat_refuses_a_taken_username_and_bad_fields() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("takenname").await;
    let dev = device();
    let visitor_user = register_visitor(&server, &dev).await;
    let got = visitor(
        &server,
        "/api/visitorregChat",
        &dev,
        &[("username", "takenname"), ("password", "newpass1")],
    )
    .await;
    let text = assert_fail(&got, StatusCode::CONFLICT);
    assert!(text.contains("takenname"), "{text}");
    // The visitor is still a visitor, the owner still owns the name.
    let p = profile(&server, &visitor_user.uuid).await;
    assert_eq!(
        (p["username"].as_str(), p["role"].as_str()),
        (Some(visitor_user.username.as_str()), Some("visitor"))
    );
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "takenname"), ("password", "secret1")],
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], owner.id);
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "takenname"), ("password", "newpass1")],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    // A device without a visitor hits the same conflict.
    let got = visitor(
        &server,
        "/api/visitorregChat",
        &device(),
        &[("username", "takenname"), ("password", "newpass1")],
    )
    .await;
    assert_fail(&got, StatusCode::CONFLICT);

    // Validation of the credentials.
    let dev = device();
    for (form, reason) in [
        (vec![("password", "secret1")], "username is required"),
        (vec![("username", "okname")], "password is required"),
        (
            vec![("username", "no"), ("password", "secret1")],
            "username must be",
        ),
        (
            vec![("username", "okname"), ("password", "short")],
            "password must be",
        ),
    ] {
        let got = visitor(&server, "/api/visitorregChat", &dev, &form).await;
        let text = assert_fail(&got, StatusCode::BAD_REQUEST);
        assert!(text.contains(reason), "{form:?}: {text}");
    }
}

#[actix_web::test]
async fn visitor_login_chat_checks_the_password() {
    let (server, _dir) = TestServer::start().await;
    let user = server.register("vislogin").await;
    let dev = device();
    let got = visitor(
        &server,
        "/api/visitorloginChat",
        &dev,
        &[
            ("username", "vislogin"),
            ("password", "secret1"),
            ("devicebrand", "acme"),
        ],
    )
    .await;
    let d = assert_ok(&got);
    assert_eq!(d["id"], user.id);
    assert_eq!(d["role"], "user");
    assert_eq!(d["devicefingeruuid"], dev.as_str());
    assert_eq!(d["devicebrand"], "acme");
    assert!(d["last_login"].is_string());
    assert_ok(&search(&server, d["token"].as_str().unwrap(), "x").await);

    let wrong = visitor(
        &server,
        "/api/visitorloginChat",
        &dev,
        &[("username", "vislogin"), ("password", "wrongpw1")],
    )
    .await;
    let unknown = visitor(
        &server,
        "/api/visitorloginChat",
        &dev,
        &[("username", "nobody99"), ("password", "secret1")],
    )
    .await;
    let a = assert_fail(&wrong, StatusCode::UNAUTHORIZED);
    assert_eq!(a, assert_fail(&unknown, StatusCode::UNAUTHORIZED));
    let got = visitor(
        &server,
        "/api/visitorloginChat",
        &device(),
        &[("username", "vislogin")],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("password is required"));
    // A visitor has no password: it cannot log in by name.
    let v = register_visitor(&server, &device()).await;
    let got = visitor(
        &server,
        "/api/visitorloginChat",
        &device(),
        &[("username", &v.username), ("password", "secret1")],
    )
    .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn visitor_register_never_hands_out_a_registered_account() {
    let (server, _dir) = TestServer::start().await;
    let dev = device();
    let first = register_visitor(&server, &dev).await;
    let got = visitor(
        &server,
        "/api/visitorregChat",
        &dev,
        &[("username", "guarded"), ("password", "secret1")],
    )
    .await;
    assert_eq!(assert_ok(&got)["role"], "user");
    // The device id is no password: asking for a visitor again must not return the account
    // that now has one.
    let got = visitor(&server, "/api/visitorRegister", &dev, &[]).await;
    let d = assert_ok(&got);
    assert_eq!(d["role"], "visitor", "{d}");
    assert_ne!(d["id"], first.id, "{d}");
    assert_ne!(d["username"], "guarded");
    let token = d["token"].as_str().unwrap();
    assert_fail(&search(&server, token, "x").await, StatusCode::FORBIDDEN);
    // The account is untouched.
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "guarded"), ("password", "secret1")],
        )
        .await;
    assert_eq!(assert_ok(&got)["id"], first.id);
}

#[actix_web::test]
async fn a_search_returns_at_most_search_max_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.search_max = 3).await;
    let me = server.register("findme0").await;
    for i in 1..=5 {
        server.register(&format!("findme{i}")).await;
    }
    let found = names(&search(&server, &me.token, "findme").await);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(!found.contains(&"findme0".to_owned()), "{found:?}");
    assert!(found.iter().all(|n| n.starts_with("findme")), "{found:?}");
    // Under the cap every match is listed.
    let found = names(&search(&server, &me.token, "findme5").await);
    assert_eq!(found, vec!["findme5".to_owned()]);
    server.stop().await;
}

#[actix_web::test]
async fn a_token_of_a_replaced_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register("alice").await;
    server.stop().await;
    // The database is lost and started afresh; the token secret stayed.
    std::fs::remove_file(dir.path().join("parlor.redb")).unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let bob = server.register("bob_1").await;
    assert_eq!(bob.id, alice.id, "the new database gives the same id again");
    let got = server.get("/api/chat/conversations", Some(&alice.token)).await;
    assert_eq!(
        assert_fail(&got, StatusCode::UNAUTHORIZED),
        "token was issued for another database"
    );
    assert_ws_unauthorized(
        ws_url(&server, &format!("?token={}", alice.token)),
        "token was issued for another database",
    )
    .await;
    let chat21 = server
        .http
        .get(server.url("/api/default/groups/group-x"))
        .header("Authorization", &alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(chat21.status(), StatusCode::UNAUTHORIZED);
    let body: Value = chat21.json().await.unwrap();
    assert_eq!(body["err"], "token was issued for another database", "{body}");
    // The new database's own tokens work.
    assert_ok(&server.get("/api/chat/conversations", Some(&bob.token)).await);
    server.stop().await;
}

#[actix_web::test]
async fn an_empty_database_file_stops_start_up_unless_told_to_initialise() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("parlor.redb"), b"").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = match parlor::run(listener, common::test_config(dir.path())).await {
        Ok(_) => panic!("started on an empty file"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("storage.path") && err.contains("is an empty file"),
        "{err}"
    );
    assert!(err.contains("storage.init_empty"), "{err}");
    let server = TestServer::start_in(dir.path(), |c| c.storage.init_empty = true).await;
    server.register("alice").await;
    server.stop().await;
    // Now a database, it starts as usual.
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    server.stop().await;
}

#[actix_web::test]
async fn an_address_creates_a_bounded_number_of_visitors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.login.visitors_per_address_per_min = 3).await;
    let devices: Vec<String> = (0..3).map(|_| device()).collect();
    for d in &devices {
        register_visitor(&server, d).await;
    }
    // A fourth new device from the same address: refused, nothing created.
    let fourth = device();
    let ts = now_ms().to_string();
    let signed = sign(&server, &fourth, &ts);
    let register_from = |client: &reqwest::Client| {
        client
            .post(server.url("/api/visitorRegister"))
            .header("X-Security-Sign", &signed)
            .form(&[("deviceId", fourth.as_str()), ("timestamp", ts.as_str())])
            .send()
    };
    let resp = register_from(&server.http).await.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    let got = json_of(resp).await;
    let reason = assert_fail(&got, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        reason.starts_with("too many new visitors from this address"),
        "{reason}"
    );
    // A known device's visitor comes back freely, with the same id.
    let again = register_visitor(&server, &devices[0]).await;
    let first = register_visitor(&server, &devices[0]).await;
    assert_eq!(again.id, first.id);
    // Another address may still create one.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = register_from(&other).await.unwrap();
    let got = json_of(resp).await;
    assert_ok(&got);
    server.stop().await;
}
