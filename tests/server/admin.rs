//! The admin face (WildFire style, `shared/seeds/001_*`) end to end against a real server on
//! its own admin listener: the signature (`nonce`, `timestamp`, `sign` = sha1 of
//! `nonce|secret|timestamp`, the document's example included) and every refusal of it
//! (missing headers 239, old or future timestamps 243, wrong signs and replayed nonces 244),
//! bad bodies (251) and unknown users, messages, groups and settings (253), all as HTTP 200
//! with `{"code":N,"msg":...}`; that the admin routes live only on the admin listener and
//! that an empty `admin.secret` serves none; and every route: robots (created, updated, then
//! logging in and chatting through the uni-app face), user settings (scope 3 being the
//! conversation top flag of the conversation list), system settings (the revoke window taking
//! effect at once and surviving a restart), conversation and user file lists, file lookup,
//! conversation top, health check and customer.

use crate::common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{assert_fail, png, user_of, TestServer, Upload, User, DIY};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

/// The admin secret of the test servers (the document's).
pub(crate) const SECRET: &str = "123456";

/// The document's example headers.
const DOC_NONCE: &str = "76616";
const DOC_TIMESTAMP: &str = "1558350862502";
const DOC_SIGN: &str = "b98f9b0717f59febccf1440067a7f50d9b31bdde";

/// Serves the admin listener on an ephemeral port with [`SECRET`].
pub(crate) fn with_admin(c: &mut parlor::config::Config) {
    c.admin.bind = "127.0.0.1:0".into();
    c.admin.secret = SECRET.into();
}

/// A server with the admin listener on a fresh temporary directory.
pub(crate) async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |_| {}).await;
    (server, dir)
}

/// A server with the admin listener on `dir`, with `tweak` applied after the admin settings.
pub(crate) async fn start_in(dir: &Path, tweak: impl FnOnce(&mut parlor::config::Config)) -> TestServer {
    let server = TestServer::start_in(dir, |c| {
        with_admin(c);
        tweak(c);
    })
    .await;
    assert!(server.admin.is_some(), "the admin listener is served");
    server
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A nonce no other request of this test binary uses.
pub(crate) fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{}-{}", now_ms(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The three signature headers for `nonce` and `timestamp`, signed with `secret`.
pub(crate) fn headers_with(nonce: &str, timestamp: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("nonce", nonce.to_owned()),
        ("timestamp", timestamp.to_owned()),
        ("sign", parlor::faces::admin::sign(nonce, secret, timestamp)),
    ]
}

/// Fresh signature headers: a new nonce, the current time, the right secret.
pub(crate) fn fresh_headers() -> Vec<(&'static str, String)> {
    headers_with(&nonce(), &now_ms().to_string(), SECRET)
}

pub(crate) fn admin_url(server: &TestServer, path: &str) -> String {
    format!("http://{}{}", server.admin.expect("an admin listener"), path)
}

/// POSTs `body` (sent as JSON text when given) to `base` + `path` with `headers`; returns
/// the status and the JSON answer.
pub(crate) async fn post_raw(
    server: &TestServer,
    url: String,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = server.http.post(url);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

/// An admin request with `headers` and a raw body; asserts HTTP 200 and returns the answer.
pub(crate) async fn admin_raw(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> Value {
    let (status, answer) = post_raw(server, admin_url(server, path), headers, body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

/// A correctly signed admin request with a JSON body; returns the answer (HTTP 200).
pub(crate) async fn admin(server: &TestServer, path: &str, body: &Value) -> Value {
    admin_raw(server, path, &fresh_headers(), Some(&body.to_string())).await
}

/// Asserts a success answer and returns its `result` (`null` when it has none).
#[track_caller]
pub(crate) fn ok(answer: &Value) -> Value {
    assert_eq!(answer["code"], 0, "{answer}");
    assert_eq!(answer["msg"], "success", "{answer}");
    answer["result"].clone()
}

/// Asserts a refusal with `code` in the admin envelope and returns its message.
#[track_caller]
pub(crate) fn refused(answer: &Value, code: u64) -> String {
    assert_eq!(answer["code"], code, "{answer}");
    assert!(answer.get("result").is_none(), "{answer}");
    let msg = answer["msg"].as_str().expect("a msg").to_owned();
    assert!(!msg.is_empty(), "{answer}");
    msg
}

/// A direct conversation `{type 0, target, line 0}` with `peer`.
fn direct(peer: &User) -> Value {
    json!({"type": 0, "target": peer.uuid, "line": 0})
}

/// A group conversation `{type 1, target, line 0}`.
fn group(gid: u64) -> Value {
    json!({"type": 1, "target": gid.to_string(), "line": 0})
}

/// Sends a message of `kind` with `data` over REST (`chat_type` single or group).
async fn send_kind(
    server: &TestServer,
    from: &User,
    chat_type: &str,
    to: u64,
    kind: &str,
    data: &str,
) -> Value {
    let to = to.to_string();
    let (status, body) = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&from.token),
            &[
                ("sendto_id", &to),
                ("chatType", chat_type),
                ("type", kind),
                ("data", data),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Distinct creation times, so that time bounds and orders are unambiguous.
    tokio::time::sleep(Duration::from_millis(5)).await;
    body["data"].clone()
}

/// The `data` of a file message for `name` of `size` bytes.
fn file_data(name: &str, size: u64) -> String {
    json!({"url": format!("/public/uploads/{name}"), "name": name, "size": size}).to_string()
}

/// Sends a direct file message (`kind` file, image, video or audio) from `from` to `to`.
async fn send_file(server: &TestServer, from: &User, to: &User, kind: &str, name: &str, size: u64) -> Value {
    send_kind(server, from, "single", to.id, kind, &file_data(name, size)).await
}

/// Uploads `bytes` as `name` for `from` and sends its URL to `to` as an image message;
/// returns the URL and the message.
async fn send_upload(
    server: &TestServer,
    from: &User,
    to: &User,
    name: &str,
    bytes: Vec<u8>,
) -> (String, Value) {
    let folder = format!("{DIY}chat");
    let got = Upload::to(&folder, Some(&from.token), "file")
        .named(name)
        .send(server, bytes)
        .await;
    let url = got.1["data"]["url"].as_str().unwrap().to_owned();
    let message = send_kind(server, from, "single", to.id, "image", &json!(url).to_string()).await;
    (url, message)
}

fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("a message id").to_owned()
}

/// The `filename`s of a file list, in order.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|f| f["filename"].as_str().expect("a filename").to_owned())
        .collect()
}

/// Creates a uni-app group of `owner` with `members` (friends of the owner); returns its id.
pub(crate) async fn create_group(server: &TestServer, owner: &User, members: &[&User]) -> u64 {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    let (status, body) = server
        .post_form("/api/chat/group/create", Some(&owner.token), &form)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, list) = server.get("/api/chat/grouplist/1", Some(&owner.token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"][0]["id"]
        .as_u64()
        .expect("the new group is listed first")
}

/// The `pinned` flag of conversation `key` in `user`'s `GET /api/chat/conversations`.
async fn pinned_in_list(server: &TestServer, user: &User, key: &str) -> bool {
    let (status, body) = server.get("/api/chat/conversations", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = body["data"]["list"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["conversation"] == key)
        .unwrap_or_else(|| panic!("{key} is listed for {}: {body}", user.username))
        .clone();
    item["pinned"].as_bool().expect("a pinned flag")
}

pub(crate) fn direct_key(a: &User, b: &User) -> String {
    let (lo, hi) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    format!("d:{lo}:{hi}")
}

/// `/admin/conversation/is_top` of `user` for `conversation`.
async fn is_top(server: &TestServer, user: &User, conversation: &Value) -> bool {
    let answer = admin(
        server,
        "/admin/conversation/is_top",
        &json!({"userId": user.uuid, "conversation": conversation}),
    )
    .await;
    ok(&answer)["value"].as_bool().expect("a boolean value")
}

/// `/admin/get_setting` of system setting `id`: its value.
async fn system_setting(server: &TestServer, id: u32) -> String {
    let result = ok(&admin(server, "/admin/get_setting", &json!({ "id": id })).await);
    assert_eq!(result["id"], id, "{result}");
    result["value"].as_str().expect("a value").to_owned()
}

/// Revokes direct message `id` of `user` (sent to `to`) over REST.
async fn revoke(server: &TestServer, user: &User, id: &str, to: &User) -> (StatusCode, Value) {
    let to = to.id.to_string();
    server
        .post_form(
            "/api/chat/revokeMessage",
            Some(&user.token),
            &[("id", id), ("chatType", "single"), ("to_id", &to)],
        )
        .await
}

/// `POST /api/loginChat` with `username` and `password`.
pub(crate) async fn login(server: &TestServer, username: &str, password: &str) -> (StatusCode, Value) {
    server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", username), ("password", password)],
        )
        .await
}

// ---------------------------------------------------------------------------------------
// The signature

#[actix_web::test]
async fn the_documents_signature_example_matches_and_only_its_age_is_refused() {
    assert_eq!(
        parlor::faces::admin::sign(DOC_NONCE, SECRET, DOC_TIMESTAMP),
        DOC_SIGN
    );
    let doc_headers = || {
        vec![
            ("nonce", DOC_NONCE.to_owned()),
            ("timestamp", DOC_TIMESTAMP.to_owned()),
            ("sign", DOC_SIGN.to_owned()),
        ]
    };

    // With the default window the 2019 timestamp is far too old: refused as expired.
    let (server, _dir) = start().await;
    let msg = refused(
        &admin_raw(&server, "/admin/healthcheck", &doc_headers(), None).await,
        243,
    );
    assert!(msg.contains("expired"), "{msg}");
    server.stop().await;

    // A window wide enough to reach 2019 accepts the very same request: the sign matched,
    // only the age was wrong. A sign that does not match is refused there with 244.
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| c.admin.window_secs = 30 * 365 * 24 * 3600).await;
    let bad_sign = {
        let mut h = doc_headers();
        h[0].1 = "76617".into();
        h
    };
    let msg = refused(
        &admin_raw(&server, "/admin/healthcheck", &bad_sign, None).await,
        244,
    );
    assert!(msg.contains("sign"), "{msg}");
    let answer = admin_raw(&server, "/admin/healthcheck", &doc_headers(), None).await;
    assert_eq!(ok(&answer), json!({"status": "healthy"}));
    // The document's curl examples all reuse one nonce: the second use is a replay.
    refused(
        &admin_raw(&server, "/admin/healthcheck", &doc_headers(), None).await,
        244,
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_missing_or_malformed_header_is_code_239() {
    let (server, _dir) = start().await;
    for missing in ["nonce", "timestamp", "sign"] {
        let headers: Vec<_> = fresh_headers()
            .into_iter()
            .filter(|(name, _)| *name != missing)
            .collect();
        let msg = refused(&admin_raw(&server, "/admin/customer", &headers, None).await, 239);
        assert!(msg.contains(missing), "{missing}: {msg}");
        // An empty header is as good as none.
        let mut headers = fresh_headers();
        headers.iter_mut().find(|(n, _)| *n == missing).unwrap().1 = String::new();
        refused(&admin_raw(&server, "/admin/customer", &headers, None).await, 239);
    }
    refused(&admin_raw(&server, "/admin/customer", &[], None).await, 239);
    // A timestamp that is not milliseconds, even signed as given.
    let n = nonce();
    refused(
        &admin_raw(
            &server,
            "/admin/customer",
            &headers_with(&n, "yesterday", SECRET),
            None,
        )
        .await,
        239,
    );
    // A nonce too long to remember, correctly signed.
    let long = "n".repeat(129);
    let msg = refused(
        &admin_raw(
            &server,
            "/admin/customer",
            &headers_with(&long, &now_ms().to_string(), SECRET),
            None,
        )
        .await,
        239,
    );
    assert!(msg.contains("at most 128"), "{msg}");
    // The headers themselves were fine.
    ok(&admin_raw(&server, "/admin/customer", &fresh_headers(), None).await);
    server.stop().await;
}

#[actix_web::test]
async fn a_wrong_sign_is_code_244() {
    let (server, _dir) = start().await;
    let now = now_ms().to_string();
    let wrong_secret = headers_with(&nonce(), &now, "654321");
    let msg = refused(
        &admin_raw(&server, "/admin/customer", &wrong_secret, None).await,
        244,
    );
    assert!(msg.contains("sign"), "{msg}");

    // Signed for another timestamp than the one sent.
    let n = nonce();
    let mut other_time = headers_with(&n, &(now_ms() - 1000).to_string(), SECRET);
    other_time[1].1 = now_ms().to_string();
    refused(
        &admin_raw(&server, "/admin/customer", &other_time, None).await,
        244,
    );

    // Not hex of a sha1 at all.
    let mut garbage = fresh_headers();
    garbage[2].1 = "not-a-sign".into();
    refused(&admin_raw(&server, "/admin/customer", &garbage, None).await, 244);

    // The sign is hex: uppercase is the same sign.
    let mut upper = fresh_headers();
    upper[2].1 = upper[2].1.to_uppercase();
    ok(&admin_raw(&server, "/admin/customer", &upper, None).await);
    server.stop().await;
}

#[actix_web::test]
async fn a_timestamp_ten_minutes_off_either_way_is_code_243() {
    let (server, _dir) = start().await;
    let ten_minutes = 10 * 60 * 1000;
    for ts in [now_ms() - ten_minutes, now_ms() + ten_minutes] {
        let headers = headers_with(&nonce(), &ts.to_string(), SECRET);
        let msg = refused(
            &admin_raw(&server, "/admin/healthcheck", &headers, None).await,
            243,
        );
        assert!(msg.contains("300 s"), "{msg}");
    }
    // A minute either way is inside the default window of 300 s.
    for ts in [now_ms() - 60_000, now_ms() + 60_000] {
        let headers = headers_with(&nonce(), &ts.to_string(), SECRET);
        ok(&admin_raw(&server, "/admin/healthcheck", &headers, None).await);
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_replayed_nonce_is_code_244() {
    let (server, _dir) = start().await;
    let n = nonce();
    // A refused request does not use the nonce up.
    let wrong = headers_with(&n, &now_ms().to_string(), "not the secret");
    refused(&admin_raw(&server, "/admin/healthcheck", &wrong, None).await, 244);

    let first = headers_with(&n, &now_ms().to_string(), SECRET);
    ok(&admin_raw(&server, "/admin/healthcheck", &first, None).await);
    // The very same request again, and the same nonce with a new timestamp and sign.
    let msg = refused(&admin_raw(&server, "/admin/healthcheck", &first, None).await, 244);
    assert!(msg.contains("nonce"), "{msg}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = headers_with(&n, &now_ms().to_string(), SECRET);
    refused(&admin_raw(&server, "/admin/healthcheck", &again, None).await, 244);
    // Nothing changes for other nonces.
    ok(&admin_raw(&server, "/admin/healthcheck", &fresh_headers(), None).await);
    server.stop().await;
}

#[actix_web::test]
async fn a_nonce_stays_used_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |_| {}).await;
    let first = fresh_headers();
    ok(&admin_raw(&server, "/admin/healthcheck", &first, None).await);
    server.stop().await;
    // The very same signed request, replayed against the restarted server.
    let server = start_in(dir.path(), |_| {}).await;
    let msg = refused(&admin_raw(&server, "/admin/healthcheck", &first, None).await, 244);
    assert_eq!(msg, "auth failure: the nonce was used already");
    ok(&admin_raw(&server, "/admin/healthcheck", &fresh_headers(), None).await);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Bad input, unknown things, listeners

#[actix_web::test]
async fn an_address_with_too_many_refusals_is_code_250_until_the_window_passed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| {
        c.admin.max_refusals = 3;
        c.admin.window_secs = 2;
    })
    .await;
    let now = || now_ms().to_string();
    // Three refusals of different kinds, each with its own code.
    refused(
        &admin_raw(
            &server,
            "/admin/healthcheck",
            &headers_with(&nonce(), &now(), "wrong"),
            None,
        )
        .await,
        244,
    );
    refused(&admin_raw(&server, "/admin/healthcheck", &[], None).await, 239);
    let old = (now_ms() - 3_000).to_string();
    refused(
        &admin_raw(
            &server,
            "/admin/healthcheck",
            &headers_with(&nonce(), &old, SECRET),
            None,
        )
        .await,
        243,
    );
    // Now even a correct request from this address is refused, before its signature is read.
    let msg = refused(
        &admin_raw(&server, "/admin/healthcheck", &fresh_headers(), None).await,
        250,
    );
    assert!(msg.starts_with("over frequency"), "{msg}");
    // Another client address is not affected.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut req = other.post(admin_url(&server, "/admin/healthcheck"));
    for (name, value) in fresh_headers() {
        req = req.header(name, value);
    }
    let answer: Value = req.send().await.unwrap().json().await.unwrap();
    ok(&answer);
    // Once the window has passed, the address is served again.
    common::eventually(
        || async {
            let (_, answer) = post_raw(
                &server,
                admin_url(&server, "/admin/healthcheck"),
                &fresh_headers(),
                None,
            )
            .await;
            answer["code"] == 0
        },
        "the address is served again after the window",
    )
    .await;
    server.stop().await;
}

#[actix_web::test]
async fn bad_bodies_and_field_types_are_code_251() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    server.send_rest(&alice, &bob, "hello").await;

    // Not JSON, and JSON that is not an object.
    for body in ["not json", "{\"userId\":", "[1,2,3]", "\"text\"", "42"] {
        let answer = admin_raw(&server, "/admin/user/get_setting", &fresh_headers(), Some(body)).await;
        refused(&answer, 251);
    }

    let cases = [
        (
            "/admin/user/put_setting",
            json!({"userId": {"id": 1}, "scope": 1, "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": "one", "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": -1, "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": 1, "key": ["k"], "value": "v"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": 1, "key": "k"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": 1, "key": "k", "value": {"a": 1}}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": alice.uuid, "scope": 3, "key": "nonsense", "value": "1"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": alice.uuid, "key": "k"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": "", "scope": 1, "key": "k"}),
        ),
        ("/admin/get_setting", json!({"id": "one"})),
        ("/admin/get_setting", json!({})),
        ("/admin/modify_setting", json!({"id": 1})),
        ("/admin/modify_setting", json!({"id": 1.5, "value": "3"})),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": "bob"}),
        ),
        ("/admin/file/conversation_files", json!({"userId": alice.uuid})),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": {"type": 5, "target": bob.uuid}}),
        ),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": direct(&bob), "count": 0}),
        ),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": direct(&bob), "order": 2}),
        ),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": direct(&bob), "fromTime": "soon"}),
        ),
        (
            "/admin/file/user_files",
            json!({"userId": alice.uuid, "offset": -1}),
        ),
        (
            "/admin/file/user_files",
            json!({"userId": alice.uuid, "desc": "yes"}),
        ),
        (
            "/admin/file/user_files",
            json!({"userId": alice.uuid, "count": 5000}),
        ),
        ("/admin/file/get", json!({"messageUid": [1]})),
        ("/admin/file/get", json!({})),
        (
            "/admin/conversation/top",
            json!({"userId": alice.uuid, "conversation": direct(&bob)}),
        ),
        (
            "/admin/conversation/top",
            json!({"userId": alice.uuid, "conversation": {"target": bob.uuid}, "top": 1}),
        ),
        (
            "/admin/conversation/is_top",
            json!({"userId": alice.uuid, "conversation": {"type": 0}}),
        ),
        ("/admin/robot/create", json!({"name": true})),
        (
            "/admin/robot/create",
            json!({"name": "bot", "userId": "has space"}),
        ),
    ];
    for (path, body) in cases {
        let answer = admin(&server, path, &body).await;
        assert_eq!(answer["code"], 251, "{path} {body}: {answer}");
        assert!(answer["msg"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn unknown_users_messages_groups_and_settings_are_code_253() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    server.send_rest(&alice, &bob, "hello").await;
    let ghost = "00000000-0000-0000-0000-000000000000";

    let cases = [
        (
            "/admin/user/put_setting",
            json!({"userId": ghost, "scope": 1, "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/put_setting",
            json!({"userId": "999999", "scope": 1, "key": "k", "value": "v"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": ghost, "scope": 1, "key": "k"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": alice.uuid, "scope": 1, "key": "never set"}),
        ),
        (
            "/admin/user/get_setting",
            json!({"userId": alice.uuid, "scope": 3, "key": format!("0-0-{ghost}")}),
        ),
        ("/admin/get_setting", json!({"id": 8})),
        ("/admin/get_setting", json!({"id": 0})),
        (
            "/admin/file/conversation_files",
            json!({"userId": ghost, "conversation": direct(&bob)}),
        ),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": {"type": 0, "target": ghost}}),
        ),
        (
            "/admin/file/conversation_files",
            json!({"userId": alice.uuid, "conversation": group(424242)}),
        ),
        ("/admin/file/user_files", json!({"userId": ghost})),
        ("/admin/file/get", json!({"messageUid": "no-such-message"})),
        ("/admin/file/get", json!({"messageUid": 123456})),
        (
            "/admin/conversation/top",
            json!({"userId": ghost, "conversation": direct(&bob), "top": 1}),
        ),
        (
            "/admin/conversation/top",
            json!({"userId": alice.uuid, "conversation": {"type": 0, "target": ghost}, "top": 1}),
        ),
        (
            "/admin/conversation/top",
            json!({"userId": alice.uuid, "conversation": group(424242), "top": 1}),
        ),
        (
            "/admin/conversation/is_top",
            json!({"userId": ghost, "conversation": direct(&bob)}),
        ),
        (
            "/admin/conversation/is_top",
            json!({"userId": alice.uuid, "conversation": {"type": 0, "target": ghost}}),
        ),
    ];
    for (path, body) in cases {
        let answer = admin(&server, path, &body).await;
        assert_eq!(answer["code"], 253, "{path} {body}: {answer}");
        assert!(answer["msg"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn admin_routes_are_served_only_on_the_admin_listener() {
    let (server, _dir) = start().await;
    assert_ne!(server.admin, Some(server.addr));
    for path in ["/admin/healthcheck", "/admin/customer", "/admin/get_setting"] {
        let (status, body) = post_raw(&server, server.url(path), &fresh_headers(), Some(r#"{"id":1}"#)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body, json!({"msg": "fail", "data": "no such route"}), "{path}");
    }
    // And the client routes are not on the admin listener; unknown admin routes are 404.
    let (status, body) = post_raw(
        &server,
        admin_url(&server, "/api/loginChat"),
        &fresh_headers(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({"code": 253, "msg": "no such route"}));
    let (status, body) = post_raw(
        &server,
        admin_url(&server, "/admin/user/destroy"),
        &fresh_headers(),
        Some("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({"code": 253, "msg": "no such route"}));
    server.stop().await;
}

#[actix_web::test]
async fn an_empty_secret_serves_no_admin_listener() {
    // A port that was free a moment ago, named as the admin address without a secret.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let bind: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.admin.bind = bind.to_string();
        c.admin.secret = String::new();
    })
    .await;
    assert_eq!(server.admin, None);
    assert!(
        TcpStream::connect_timeout(&bind, Duration::from_millis(500)).is_err(),
        "nothing listens on {bind}"
    );
    // The client listener still serves, without the admin routes.
    let (status, body) = post_raw(&server, server.url("/admin/healthcheck"), &fresh_headers(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"msg": "fail", "data": "no such route"}));
    server.stop().await;

    // The harness's default configuration has no secret either.
    let (server, _dir) = TestServer::start().await;
    assert_eq!(server.admin, None);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Robots

#[actix_web::test]
async fn robot_create_creates_updates_and_the_robot_logs_in_and_chats() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;

    let created = ok(&admin(
        &server,
        "/admin/robot/create",
        &json!({"userId": "robot_1", "name": "Helper"}),
    )
    .await);
    assert_eq!(created["userId"], "robot_1", "{created}");
    let username = created["username"].as_str().expect("a username").to_owned();
    let first_secret = created["secret"].as_str().expect("a secret").to_owned();
    assert!(first_secret.len() >= 6, "{created}");

    // The robot logs in like any user, with its username and secret.
    let got = login(&server, &username, &first_secret).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let robot = user_of(&got.1);
    assert_eq!(robot.uuid, "robot_1");
    assert_eq!(got.1["data"]["role"], "robot", "{}", got.1);
    assert_eq!(got.1["data"]["nickname"], "Helper", "{}", got.1);

    // Again with the same userId: the same robot, renamed, with a new secret.
    let updated = ok(&admin(
        &server,
        "/admin/robot/create",
        &json!({"userId": "robot_1", "name": "Helper Two"}),
    )
    .await);
    assert_eq!(updated["userId"], "robot_1");
    assert_eq!(updated["username"], username.as_str());
    assert_eq!(updated["id"], created["id"]);
    let secret = updated["secret"].as_str().expect("a secret").to_owned();
    assert_ne!(secret, first_secret);
    assert_fail(
        &login(&server, &username, &first_secret).await,
        StatusCode::UNAUTHORIZED,
    );
    let got = login(&server, &username, &secret).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let robot = user_of(&got.1);
    let (status, info) = server.get("/api/userinfo/robot_1", None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["data"]["nickname"], "Helper Two", "{info}");

    // It chats over REST with a user whose inbox is open, and is pushed to that user.
    let mut wa = server.ws(&alice.token).await;
    let sent = server.send_rest(&robot, &alice, "beep, I am a robot").await;
    assert_eq!(sent["from_id"], robot.id, "{sent}");
    let push = wa.next_of_type("singleChat").await;
    assert_eq!(push["data"]["data"], "beep, I am a robot", "{push}");
    assert_eq!(push["data"]["from_id"], robot.id, "{push}");
    // Anyone may message a robot without being its friend.
    let back = server.send_rest(&alice, &robot, "hello robot").await;
    assert_eq!(back["to_id"], robot.id, "{back}");

    // Without a userId one is generated.
    let generated = ok(&admin(&server, "/admin/robot/create", &json!({"name": "Anon"})).await);
    let uuid = generated["userId"].as_str().expect("a userId");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{generated}");
    assert_ne!(generated["username"], username.as_str());
    let got = login(
        &server,
        generated["username"].as_str().unwrap(),
        generated["secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(user_of(&got.1).uuid, uuid);

    // No name; a user who is not a robot (by uuid or numeric id) is not turned into one.
    refused(
        &admin(&server, "/admin/robot/create", &json!({"userId": "robot_2"})).await,
        251,
    );
    refused(
        &admin(
            &server,
            "/admin/robot/create",
            &json!({"userId": "robot_1", "name": ""}),
        )
        .await,
        251,
    );
    for id in [json!(alice.uuid), json!(alice.id), json!(alice.id.to_string())] {
        let msg = refused(
            &admin(
                &server,
                "/admin/robot/create",
                &json!({"userId": id, "name": "Hijack"}),
            )
            .await,
            251,
        );
        assert!(msg.contains("robot"), "{msg}");
    }
    let got = login(&server, "alice", "secret1").await;
    assert_eq!(got.0, StatusCode::OK, "alice keeps her password: {}", got.1);
    assert_eq!(got.1["data"]["role"], "user");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// User settings

#[actix_web::test]
async fn user_settings_round_trip() {
    let (server, _dir) = start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;

    // The document's example, by uuid.
    let answer = admin(
        &server,
        "/admin/user/put_setting",
        &json!({"userId": alice.uuid, "scope": 1001, "key": "b", "value": "c"}),
    )
    .await;
    assert_eq!(ok(&answer), json!({}));
    let got = ok(&admin(
        &server,
        "/admin/user/get_setting",
        &json!({"userId": alice.uuid, "scope": 1001, "key": "b"}),
    )
    .await);
    assert_eq!(
        got,
        json!({"userId": alice.uuid, "scope": 1001, "key": "b", "value": "c"})
    );

    // Overwritten, by numeric id; scope and key both name the setting.
    ok(&admin(
        &server,
        "/admin/user/put_setting",
        &json!({"userId": alice.id.to_string(), "scope": 1001, "key": "b", "value": "d"}),
    )
    .await);
    ok(&admin(
        &server,
        "/admin/user/put_setting",
        &json!({"userId": alice.uuid, "scope": 1002, "key": "b", "value": "other scope"}),
    )
    .await);
    let value = |v: Value| ok(&v)["value"].clone();
    let get = |user: &str, scope: u32, key: &str| json!({"userId": user, "scope": scope, "key": key});
    assert_eq!(
        value(admin(&server, "/admin/user/get_setting", &get(&alice.uuid, 1001, "b")).await),
        "d"
    );
    assert_eq!(
        value(admin(&server, "/admin/user/get_setting", &get(&alice.uuid, 1002, "b")).await),
        "other scope"
    );

    // Unknown: another key, another scope, another user's setting.
    for body in [
        get(&alice.uuid, 1001, "c"),
        get(&alice.uuid, 1003, "b"),
        get(&bob.uuid, 1001, "b"),
    ] {
        refused(&admin(&server, "/admin/user/get_setting", &body).await, 253);
    }
    server.stop().await;
}

#[actix_web::test]
async fn scope_3_is_the_conversation_top_flag() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    server.send_rest(&alice, &bob, "hello bob").await;
    let key = direct_key(&alice, &bob);
    let setting = format!("0-0-{}", bob.uuid);
    let get = json!({"userId": alice.uuid, "scope": 3, "key": setting});

    assert_eq!(
        ok(&admin(&server, "/admin/user/get_setting", &get).await)["value"],
        "0"
    );
    assert!(!pinned_in_list(&server, &alice, &key).await);

    ok(&admin(
        &server,
        "/admin/user/put_setting",
        &json!({"userId": alice.uuid, "scope": 3, "key": setting, "value": "1"}),
    )
    .await);
    assert_eq!(
        ok(&admin(&server, "/admin/user/get_setting", &get).await)["value"],
        "1"
    );
    assert!(is_top(&server, &alice, &direct(&bob)).await);
    assert!(pinned_in_list(&server, &alice, &key).await);
    // Alice's flag only.
    assert!(!is_top(&server, &bob, &direct(&alice)).await);
    assert!(!pinned_in_list(&server, &bob, &key).await);

    // Unpinned through /admin/conversation/top: the setting follows.
    ok(&admin(
        &server,
        "/admin/conversation/top",
        &json!({"userId": alice.uuid, "conversation": direct(&bob), "top": 0}),
    )
    .await);
    assert_eq!(
        ok(&admin(&server, "/admin/user/get_setting", &get).await)["value"],
        "0"
    );
    assert!(!pinned_in_list(&server, &alice, &key).await);

    // A conversation with no message yet is pinned (a setting of alice's); a group that
    // does not exist is not.
    ok(&admin(
        &server,
        "/admin/user/put_setting",
        &json!({"userId": alice.uuid, "scope": 3, "key": format!("0-0-{}", carol.uuid), "value": "1"}),
    )
    .await);
    assert!(is_top(&server, &alice, &direct(&carol)).await);
    refused(
        &admin(
            &server,
            "/admin/user/put_setting",
            &json!({"userId": alice.uuid, "scope": 3, "key": "1-0-424242", "value": "1"}),
        )
        .await,
        253,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// System settings

#[actix_web::test]
async fn system_settings_are_read_and_modified_by_id() {
    let (server, _dir) = start().await;
    let policy = server.config.policy();
    let defaults = [
        policy.revoke_window_secs,
        policy.max_message_bytes as u64,
        u64::from(policy.rate_per_sec),
        u64::from(policy.rate_burst),
        policy.offline_replay_max as u64,
        policy.max_group_members as u64,
        policy.presence_group_max as u64,
    ];
    for (i, want) in defaults.iter().enumerate() {
        let id = i as u32 + 1;
        let result = ok(&admin(&server, "/admin/get_setting", &json!({ "id": id })).await);
        assert_eq!(result["value"], want.to_string(), "{result}");
        assert!(result["desc"].as_str().is_some_and(|d| !d.is_empty()), "{result}");
    }

    for id in 1..=7u32 {
        let value = (1000 + id).to_string();
        let answer = admin(
            &server,
            "/admin/modify_setting",
            &json!({"id": id, "value": value, "desc": "set by a test"}),
        )
        .await;
        assert_eq!(answer, json!({"code": 0, "msg": "success"}));
        assert_eq!(system_setting(&server, id).await, value);
    }
    // The id may be given as text.
    ok(&admin(
        &server,
        "/admin/modify_setting",
        &json!({"id": "4", "value": "77"}),
    )
    .await);
    assert_eq!(system_setting(&server, 4).await, "77");

    // Refused values leave the setting as it was.
    for (id, value) in [(1, "abc"), (2, "-5"), (2, "0"), (6, "1"), (3, "1.5")] {
        let answer = admin(
            &server,
            "/admin/modify_setting",
            &json!({"id": id, "value": value}),
        )
        .await;
        assert_eq!(answer["code"], 251, "{id}={value}: {answer}");
    }
    assert_eq!(system_setting(&server, 1).await, "1001");
    assert_eq!(system_setting(&server, 2).await, "1002");
    assert_eq!(system_setting(&server, 6).await, "1006");
    assert_eq!(system_setting(&server, 7).await, "1007");
    for id in [0, 8, 1000] {
        refused(
            &admin(&server, "/admin/get_setting", &json!({ "id": id })).await,
            253,
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn any_other_setting_id_keeps_its_value_and_desc() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |_| {}).await;
    // The document's example: any id, any value, a description.
    let body = json!({"id": 1001, "value": "new_value", "desc": "description"});
    assert_eq!(
        admin(&server, "/admin/modify_setting", &body).await,
        json!({"code": 0, "msg": "success"})
    );
    let got = ok(&admin(&server, "/admin/get_setting", &json!({"id": 1001})).await);
    assert_eq!(
        got,
        json!({"id": 1001, "value": "new_value", "desc": "description"})
    );
    // A new value without desc keeps the description; id 0 and 7 are generic too.
    ok(&admin(
        &server,
        "/admin/modify_setting",
        &json!({"id": "1001", "value": 42}),
    )
    .await);
    ok(&admin(
        &server,
        "/admin/modify_setting",
        &json!({"id": 8, "value": "eight"}),
    )
    .await);
    ok(&admin(
        &server,
        "/admin/modify_setting",
        &json!({"id": 0, "value": "zero", "desc": "z"}),
    )
    .await);
    let got = ok(&admin(&server, "/admin/get_setting", &json!({"id": 1001})).await);
    assert_eq!(got, json!({"id": 1001, "value": "42", "desc": "description"}));
    assert_eq!(
        ok(&admin(&server, "/admin/get_setting", &json!({"id": 8})).await),
        json!({"id": 8, "value": "eight", "desc": ""})
    );
    // Per tenant: another tenant has none of them.
    let msg = refused(
        &admin(
            &server,
            "/admin/get_setting",
            &json!({"id": 1001, "appId": "acme"}),
        )
        .await,
        253,
    );
    assert!(msg.contains("1001"), "{msg}");
    // Policy ids still check their values; bad ids and values are refused.
    for body in [
        json!({"id": 1, "value": "soon"}),
        json!({"id": -3, "value": "x"}),
        json!({"id": 1002}),
        json!({"id": 1002, "value": ["x"]}),
        json!({"id": 1002, "value": "x".repeat(4097)}),
    ] {
        refused(&admin(&server, "/admin/modify_setting", &body).await, 251);
    }
    refused(
        &admin(&server, "/admin/get_setting", &json!({"id": 1002})).await,
        253,
    );
    server.stop().await;
    // Kept across a restart.
    let server = start_in(dir.path(), |_| {}).await;
    let got = ok(&admin(&server, "/admin/get_setting", &json!({"id": 1001})).await);
    assert_eq!(got["value"], "42");
    server.stop().await;
}

#[actix_web::test]
async fn the_revoke_window_setting_applies_at_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |_| {}).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let first = id_of(&server.send_rest(&alice, &bob, "one").await);
    let second = id_of(&server.send_rest(&alice, &bob, "two").await);
    let third = id_of(&server.send_rest(&alice, &bob, "three").await);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Two seconds old is well inside the default window.
    let got = revoke(&server, &alice, &first, &bob).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);

    // A window of 1 s: the same age is now too old, without a restart.
    ok(&admin(
        &server,
        "/admin/modify_setting",
        &json!({"id": 1, "value": "1", "desc": "revoke window"}),
    )
    .await);
    let reason = assert_fail(
        &revoke(&server, &alice, &second, &bob).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("1 s"), "{reason}");
    server.stop().await;

    // After a restart the stored window holds, from the first request on.
    let server = start_in(dir.path(), |_| {}).await;
    let reason = assert_fail(
        &revoke(&server, &alice, &third, &bob).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("1 s"), "{reason}");
    assert_eq!(system_setting(&server, 1).await, "1");
    // Still refused once the tenant is surely loaded.
    assert_fail(
        &revoke(&server, &alice, &second, &bob).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Files

#[actix_web::test]
async fn conversation_files_lists_the_file_messages_of_a_conversation() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;

    server.send_rest(&alice, &bob, "text before").await;
    let pdf = send_file(&server, &alice, &bob, "file", "a.pdf", 1234).await;
    let png = send_file(&server, &alice, &bob, "image", "b.png", 2048).await;
    server.send_rest(&bob, &alice, "text between").await;
    let mp4 = send_file(&server, &bob, &alice, "video", "c.mp4", 4096).await;
    let mp3 = send_file(&server, &bob, &alice, "audio", "d.mp3", 512).await;
    server.send_rest(&alice, &bob, "text after").await;
    // Files of another conversation stay out.
    send_file(&server, &alice, &carol, "file", "carol.txt", 1).await;

    let files = |extra: Value| {
        let mut body = json!({"userId": alice.uuid, "conversation": direct(&bob)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let list = ok(&admin(&server, "/admin/file/conversation_files", &files(json!({}))).await);
    assert_eq!(names(&list), ["d.mp3", "c.mp4", "b.png", "a.pdf"]);
    let newest = &list[0];
    assert_eq!(newest["messageId"], mp3["id"], "{newest}");
    assert!(newest["messageUid"].as_u64().is_some(), "{newest}");
    assert_eq!(newest["url"], "/public/uploads/d.mp3");
    assert_eq!(newest["size"], 512);
    assert_eq!(newest["type"], "audio");
    assert_eq!(newest["from"], bob.uuid.as_str());
    assert_eq!(newest["timestamp"], mp3["create_time"]);
    assert_eq!(list[3]["from"], alice.uuid.as_str());
    assert_eq!(list[3]["type"], "file");
    assert_eq!(list[3]["size"], 1234);

    // Oldest first, counted, and both ways from a time.
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &files(json!({"order": 1})),
    )
    .await);
    assert_eq!(names(&list), ["a.pdf", "b.png", "c.mp4", "d.mp3"]);
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &files(json!({"count": 2})),
    )
    .await);
    assert_eq!(names(&list), ["d.mp3", "c.mp4"]);
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &files(json!({"count": 2, "order": 1})),
    )
    .await);
    assert_eq!(names(&list), ["a.pdf", "b.png"]);
    let at = png["create_time"].as_u64().unwrap();
    assert!(pdf["create_time"].as_u64().unwrap() < at && at < mp4["create_time"].as_u64().unwrap());
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &files(json!({"fromTime": at})),
    )
    .await);
    assert_eq!(names(&list), ["b.png", "a.pdf"]);
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &files(json!({"fromTime": at, "order": 1, "count": 2})),
    )
    .await);
    assert_eq!(names(&list), ["b.png", "c.mp4"]);

    // Bob sees the same conversation from his side.
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &json!({"userId": bob.uuid, "conversation": direct(&alice)}),
    )
    .await);
    assert_eq!(names(&list), ["d.mp3", "c.mp4", "b.png", "a.pdf"]);
    // A conversation without files lists nothing.
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &json!({"userId": bob.uuid, "conversation": direct(&carol)}),
    )
    .await);
    assert_eq!(list, json!([]));

    // A group: its members list its files, others are told it does not exist for them.
    server.befriend(&alice, &bob).await;
    let gid = create_group(&server, &alice, &[&bob]).await;
    send_kind(&server, &bob, "group", gid, "text", "group text").await;
    send_kind(&server, &bob, "group", gid, "file", &file_data("plan.doc", 77)).await;
    for member in [&alice, &bob] {
        let list = ok(&admin(
            &server,
            "/admin/file/conversation_files",
            &json!({"userId": member.uuid, "conversation": group(gid)}),
        )
        .await);
        assert_eq!(names(&list), ["plan.doc"], "{list}");
        assert_eq!(list[0]["conversation"]["type"], 1, "{list}");
    }
    refused(
        &admin(
            &server,
            "/admin/file/conversation_files",
            &json!({"userId": carol.uuid, "conversation": group(gid)}),
        )
        .await,
        253,
    );
    server.stop().await;
}

#[actix_web::test]
async fn user_files_lists_the_file_messages_a_user_sent() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    // An upload sent as an image message, an outside file, a file in a group.
    let (url, image) = send_upload(&server, &alice, &bob, "1.png", png(3, 2, 1)).await;
    // An upload never sent is no file message.
    let folder = format!("{DIY}chat");
    Upload::to(&folder, Some(&alice.token), "file")
        .named("unsent.png")
        .send(&server, png(2, 2, 2))
        .await;
    server.send_rest(&alice, &bob, "words are no files").await;
    let pdf = send_file(&server, &alice, &carol, "file", "a.pdf", 1234).await;
    send_file(&server, &bob, &alice, "file", "bobs.pdf", 5).await;
    server.befriend(&alice, &carol).await;
    let gid = create_group(&server, &alice, &[&carol]).await;
    send_kind(&server, &alice, "group", gid, "file", &file_data("plan.doc", 77)).await;

    let user_files = |extra: Value| {
        let mut body = json!({"userId": alice.uuid});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let list = ok(&admin(&server, "/admin/file/user_files", &user_files(json!({}))).await);
    assert_eq!(names(&list), ["plan.doc", "a.pdf", "1.png"]);
    let uploaded = &list[2];
    assert_eq!(uploaded["messageId"], image["id"]);
    assert_eq!(uploaded["url"], url.as_str());
    assert_eq!(uploaded["size"], png(3, 2, 1).len());
    assert_eq!(uploaded["type"], "image");
    assert_eq!(uploaded["contentType"], "image/png");
    assert_eq!(
        (uploaded["width"].clone(), uploaded["height"].clone()),
        (json!(3), json!(2))
    );
    assert!(uploaded["fileId"].as_u64().is_some(), "{uploaded}");
    assert_eq!(uploaded["from"], alice.uuid.as_str());
    assert_eq!(list[1]["size"], 1234);
    assert_eq!(list[1]["timestamp"], pdf["create_time"]);
    assert!(list[1].get("fileId").is_none(), "an outside file has no upload");
    assert_eq!(list[0]["conversation"]["type"], 1);
    // Each messageUid is a number file/get takes.
    for f in list.as_array().unwrap() {
        let got = ok(&admin(
            &server,
            "/admin/file/get",
            &json!({"messageUid": f["messageUid"]}),
        )
        .await);
        assert_eq!(got["filename"], f["filename"], "{got}");
    }
    let list = ok(&admin(
        &server,
        "/admin/file/user_files",
        &user_files(json!({"desc": false, "offset": 1, "count": 1})),
    )
    .await);
    assert_eq!(names(&list), ["a.pdf"]);
    let list = ok(&admin(
        &server,
        "/admin/file/user_files",
        &user_files(json!({"offset": 3})),
    )
    .await);
    assert_eq!(list, json!([]));
    let list = ok(&admin(&server, "/admin/file/user_files", &json!({"userId": bob.id})).await);
    assert_eq!(names(&list), ["bobs.pdf"]);
    for bad in [
        json!({"offset": -1}),
        json!({"count": 0}),
        json!({"desc": "sideways"}),
    ] {
        refused(
            &admin(&server, "/admin/file/user_files", &user_files(bad)).await,
            251,
        );
    }
    // Another tenant sees none of these.
    let acme_alice = server.register_in("acme", "alice").await;
    let body = json!({"userId": acme_alice.id, "appId": "acme"});
    assert_eq!(
        ok(&admin(&server, "/admin/file/user_files", &body).await),
        json!([])
    );
    let body = json!({"userId": alice.uuid, "appId": "acme"});
    refused(&admin(&server, "/admin/file/user_files", &body).await, 253);
    server.stop().await;
}

#[actix_web::test]
async fn file_get_takes_the_numeric_message_uid_the_lists_show() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    send_file(&server, &alice, &bob, "file", "a.pdf", 1234).await;
    let png_msg = send_file(&server, &bob, &alice, "image", "b.png", 2048).await;
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &json!({"userId": alice.uuid, "conversation": direct(&bob)}),
    )
    .await);
    let uid = list[0]["messageUid"].as_u64().expect("a numeric messageUid");
    assert_eq!(list[0]["messageId"], png_msg["id"]);
    assert_ne!(Some(uid), list[1]["messageUid"].as_u64());
    // As a JSON number (the document's form), as digits, and by the id string.
    for key in [json!(uid), json!(uid.to_string()), png_msg["id"].clone()] {
        let got = ok(&admin(&server, "/admin/file/get", &json!({"messageUid": key})).await);
        assert_eq!(got["messageUid"], uid, "{got}");
        assert_eq!(got["filename"], "b.png");
        assert_eq!(got["size"], 2048);
    }
    // Numbers of no message, another tenant's view, a wrong type.
    for missing in [json!(uid + 100), json!(123456), json!(0)] {
        refused(
            &admin(&server, "/admin/file/get", &json!({"messageUid": missing})).await,
            253,
        );
    }
    let body = json!({"messageUid": uid, "appId": "acme"});
    refused(&admin(&server, "/admin/file/get", &body).await, 253);
    refused(
        &admin(&server, "/admin/file/get", &json!({"messageUid": {"id": 1}})).await,
        251,
    );
    server.stop().await;
}

#[actix_web::test]
async fn file_get_describes_a_file_message() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let pdf = send_file(&server, &alice, &bob, "file", "a.pdf", 1234).await;
    let bare = send_kind(
        &server,
        &alice,
        "single",
        bob.id,
        "image",
        r#"{"url":"/public/uploads/photo.jpg"}"#,
    )
    .await;
    let text = server.send_rest(&alice, &bob, "just words").await;

    let got = ok(&admin(&server, "/admin/file/get", &json!({"messageUid": id_of(&pdf)})).await);
    assert_eq!(got["messageId"], pdf["id"]);
    assert!(got["messageUid"].as_u64().is_some(), "{got}");
    assert_eq!(got["filename"], "a.pdf");
    assert_eq!(got["url"], "/public/uploads/a.pdf");
    assert_eq!(got["size"], 1234);
    assert_eq!(got["type"], "file");

    // Without a name the file is named after its URL; without a size it is 0.
    let got = ok(&admin(&server, "/admin/file/get", &json!({"messageUid": id_of(&bare)})).await);
    assert_eq!(
        (got["filename"].clone(), got["size"].clone()),
        (json!("photo.jpg"), json!(0))
    );

    let msg = refused(
        &admin(&server, "/admin/file/get", &json!({"messageUid": id_of(&text)})).await,
        253,
    );
    assert!(msg.contains("not a file"), "{msg}");
    refused(
        &admin(&server, "/admin/file/get", &json!({"messageUid": "0123456789"})).await,
        253,
    );

    // A revoked file is no file any more: gone from the lookup and from the lists.
    let got = revoke(&server, &alice, &id_of(&pdf), &bob).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    refused(
        &admin(&server, "/admin/file/get", &json!({"messageUid": id_of(&pdf)})).await,
        253,
    );
    let list = ok(&admin(
        &server,
        "/admin/file/conversation_files",
        &json!({"userId": alice.uuid, "conversation": direct(&bob)}),
    )
    .await);
    assert_eq!(names(&list), ["photo.jpg"]);

    // A message showing a file uploaded here: its name and size come from the upload.
    let image = png(4, 4, 4);
    let (url, shown) = send_upload(&server, &alice, &bob, "holiday.png", image.clone()).await;
    let got = ok(&admin(&server, "/admin/file/get", &json!({"messageUid": id_of(&shown)})).await);
    assert_eq!(got["filename"], "holiday.png");
    assert_eq!(got["size"], image.len());
    assert_eq!(got["url"], url.as_str());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Conversation top, health, customer

#[actix_web::test]
async fn conversation_top_pins_direct_and_group_conversations() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    server.send_rest(&alice, &bob, "hello").await;
    server.befriend(&alice, &carol).await;
    let gid = create_group(&server, &alice, &[&carol]).await;
    send_kind(&server, &alice, "group", gid, "text", "hello group").await;
    let dkey = direct_key(&alice, &bob);
    let gkey = format!("g:{gid}");

    assert!(!is_top(&server, &alice, &direct(&bob)).await);
    assert!(!is_top(&server, &alice, &group(gid)).await);

    // Direct (type 0, target the peer's uuid) and group (type 1, target the group id).
    let top = |conversation: Value, top: u8| json!({"userId": alice.uuid, "conversation": conversation, "top": top});
    let answer = admin(&server, "/admin/conversation/top", &top(direct(&bob), 1)).await;
    assert_eq!(answer, json!({"code": 0, "msg": "success"}));
    assert!(is_top(&server, &alice, &direct(&bob)).await);
    assert!(pinned_in_list(&server, &alice, &dkey).await);
    assert!(!is_top(&server, &alice, &group(gid)).await);

    ok(&admin(&server, "/admin/conversation/top", &top(group(gid), 1)).await);
    assert!(is_top(&server, &alice, &group(gid)).await);
    assert!(pinned_in_list(&server, &alice, &gkey).await);
    assert!(!pinned_in_list(&server, &carol, &gkey).await);
    // The group id as a number, the peer as a numeric id: the same conversations.
    assert!(is_top(&server, &alice, &json!({"type": 1, "target": gid})).await);
    assert!(is_top(&server, &alice, &json!({"type": 0, "target": bob.id.to_string()})).await);

    ok(&admin(&server, "/admin/conversation/top", &top(direct(&bob), 0)).await);
    assert!(!is_top(&server, &alice, &direct(&bob)).await);
    assert!(!pinned_in_list(&server, &alice, &dkey).await);
    assert!(is_top(&server, &alice, &group(gid)).await);

    // top is 0 or 1.
    for bad in [json!(2), json!(-1), json!("yes")] {
        let body = json!({"userId": alice.uuid, "conversation": group(gid), "top": bad});
        refused(&admin(&server, "/admin/conversation/top", &body).await, 251);
    }
    assert!(is_top(&server, &alice, &group(gid)).await);
    // Not a conversation of bob's: the group he is not in.
    let body = json!({"userId": bob.uuid, "conversation": group(gid), "top": 1});
    refused(&admin(&server, "/admin/conversation/top", &body).await, 253);
    server.stop().await;
}

#[actix_web::test]
async fn a_conversation_without_messages_can_be_pinned() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    server.befriend(&alice, &carol).await;
    let gid = create_group(&server, &alice, &[&carol]).await;
    // No message between alice and bob, none in the group but its creation notice for carol.
    let top = |user: &User, conversation: Value, top: u8| json!({"userId": user.uuid, "conversation": conversation, "top": top});
    let answer = admin(&server, "/admin/conversation/top", &top(&alice, direct(&bob), 1)).await;
    assert_eq!(answer, json!({"code": 0, "msg": "success"}));
    assert!(is_top(&server, &alice, &direct(&bob)).await);
    assert!(
        !is_top(&server, &bob, &direct(&alice)).await,
        "a setting of alice's only"
    );
    // Scope 3 of put_setting is the same flag.
    let key = format!("0-0-{}", alice.uuid);
    let body = json!({"userId": bob.uuid, "scope": 3, "key": key, "value": "1"});
    ok(&admin(&server, "/admin/user/put_setting", &body).await);
    assert!(is_top(&server, &bob, &direct(&alice)).await);
    ok(&admin(&server, "/admin/conversation/top", &top(&carol, group(gid), 1)).await);
    assert!(is_top(&server, &carol, &group(gid)).await);
    // The first message brings the conversation to the list, pinned.
    server.send_rest(&bob, &alice, "hello").await;
    assert!(pinned_in_list(&server, &alice, &direct_key(&alice, &bob)).await);
    // Still refused: a group the user is not in, an unknown peer, a bad top.
    let msg = refused(
        &admin(&server, "/admin/conversation/top", &top(&bob, group(gid), 1)).await,
        253,
    );
    assert!(msg.contains("not one of yours"), "{msg}");
    let ghost = json!({"type": 0, "target": "no-such-user"});
    refused(
        &admin(&server, "/admin/conversation/top", &top(&bob, ghost, 1)).await,
        253,
    );
    let body = json!({"userId": bob.uuid, "conversation": direct(&carol)});
    refused(&admin(&server, "/admin/conversation/top", &body).await, 251);
    assert!(!is_top(&server, &bob, &group(gid)).await);
    server.stop().await;
}

#[actix_web::test]
async fn healthcheck_and_customer_answer_from_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| {
        c.admin.customer_id = "customer1".into();
        c.admin.customer_name = "测试客户".into();
    })
    .await;
    let answer = admin_raw(&server, "/admin/healthcheck", &fresh_headers(), None).await;
    assert_eq!(
        answer,
        json!({"code": 0, "msg": "success", "result": {"status": "healthy"}})
    );
    // A GET with the signature headers works too.
    let mut req = server.http.get(admin_url(&server, "/admin/healthcheck"));
    for (name, value) in fresh_headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(ok(&body), json!({"status": "healthy"}));
    // Unsigned, it is refused like any route.
    refused(&admin_raw(&server, "/admin/healthcheck", &[], None).await, 239);

    let answer = admin_raw(&server, "/admin/customer", &fresh_headers(), None).await;
    assert_eq!(
        ok(&answer),
        json!({"customerId": "customer1", "customerName": "测试客户"})
    );
    server.stop().await;

    // The defaults of the configuration.
    let (server, _dir) = start().await;
    let answer = admin(&server, "/admin/customer", &json!({})).await;
    assert_eq!(
        ok(&answer),
        json!({"customerId": "parlor", "customerName": "Parlor"})
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_nonce_is_accepted_again_once_its_window_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| c.admin.window_secs = 1).await;
    let n = nonce();
    let first_use = tokio::time::Instant::now();
    let first = headers_with(&n, &now_ms().to_string(), SECRET);
    ok(&admin_raw(&server, "/admin/healthcheck", &first, None).await);
    // Refused while a request carrying it could still be inside the window (either side of
    // the clock: twice the window), then accepted again.
    let deadline = first_use + Duration::from_secs(10);
    loop {
        let again = headers_with(&n, &now_ms().to_string(), SECRET);
        let answer = admin_raw(&server, "/admin/healthcheck", &again, None).await;
        if answer["code"] == 0 {
            break;
        }
        assert_eq!(
            answer,
            json!({"code": 244, "msg": "auth failure: the nonce was used already"})
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nonce is never accepted again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        first_use.elapsed() >= Duration::from_secs(2),
        "accepted again after {:?}",
        first_use.elapsed()
    );
    // A timestamp outside the one-second window is refused.
    let old = headers_with(&nonce(), &(now_ms() - 1500).to_string(), SECRET);
    assert_eq!(
        admin_raw(&server, "/admin/healthcheck", &old, None).await,
        json!({"code": 243, "msg": "sign expired: the timestamp is more than 1 s from the server's clock"})
    );
    server.stop().await;
}

/// Sets system setting `id` of the default tenant.
async fn set_setting(server: &TestServer, id: u32, value: &str) {
    let answer = admin(
        server,
        "/admin/modify_setting",
        &json!({"id": id, "value": value}),
    )
    .await;
    assert_eq!(answer, json!({"code": 0, "msg": "success"}), "{id}={value}");
}

#[actix_web::test]
async fn settings_2_to_6_take_effect_on_sends_connects_and_groups() {
    let (server, _dir) = start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    let send = |from: &User, to: &User, data: String| {
        let (token, to) = (from.token.clone(), to.id.to_string());
        let server = &server;
        async move {
            server
                .post_form(
                    "/api/chat/socket/sendmessage",
                    Some(&token),
                    &[
                        ("sendto_id", to.as_str()),
                        ("type", "text"),
                        ("data", data.as_str()),
                    ],
                )
                .await
        }
    };

    // 2: the largest message content.
    assert_eq!(send(&alice, &bob, "x".repeat(100)).await.0, StatusCode::OK);
    set_setting(&server, 2, "64").await;
    let reason = assert_fail(
        &send(&alice, &bob, "x".repeat(100)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    assert!(reason.ends_with("the limit is 64"), "{reason}");
    assert_eq!(send(&alice, &bob, "x".repeat(10)).await.0, StatusCode::OK);

    // 3 and 4: one message a second, a burst of one.
    set_setting(&server, 3, "1").await;
    set_setting(&server, 4, "1").await;
    assert_eq!(send(&carol, &bob, "c1".into()).await.0, StatusCode::OK);
    let got = send(&carol, &bob, "c2".into()).await;
    assert_eq!(
        assert_fail(&got, StatusCode::TOO_MANY_REQUESTS),
        "too many messages: at most 1 per second"
    );
    set_setting(&server, 3, "0").await;
    assert_eq!(send(&carol, &bob, "c3".into()).await.0, StatusCode::OK);

    // 5: bob has four messages waiting; a connect pushes a round of two. With manual
    // acknowledgement nothing more comes until bob acknowledges them; then the next round.
    set_setting(&server, 5, "2").await;
    let mut wb = server.ws_at(&format!("/ws?token={}&ack=manual", bob.token)).await;
    let mut pushed = std::collections::HashSet::new();
    let mut round = Vec::new();
    for _ in 0..2 {
        let m = wb.next_of_type("singleChat").await;
        pushed.insert(m["data"]["id"].clone());
        round.push((m["data"]["conversation"].clone(), m["data"]["seq"].clone()));
    }
    wb.assert_quiet(300).await;
    for (conversation, seq) in round {
        wb.send_json(&json!({"type": "ack", "conversation": conversation, "seq": seq}))
            .await;
    }
    for _ in 0..2 {
        pushed.insert(wb.next_of_type("singleChat").await["data"]["id"].clone());
    }
    assert_eq!(pushed.len(), 4);
    wb.close().await;

    // 6: a group of at most two members.
    set_setting(&server, 6, "2").await;
    let create = |members: Value| {
        let server = &server;
        let token = alice.token.clone();
        async move {
            let resp = server
                .http
                .post(server.url("/api/default/groups"))
                .header("Authorization", token)
                .json(&json!({"group_name": "Team", "group_members": members}))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (status, text) = create(json!({ bob.uuid.clone(): 1, carol.uuid.clone(): 1 })).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    assert_eq!(text, "the group is full: at most 2 members");
    let (status, text) = create(json!({ bob.uuid.clone(): 1 })).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    server.stop().await;
}
