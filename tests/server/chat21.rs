//! The Chat21 face (`shared/seeds/000_*`) end to end against a real server with real HTTP
//! and WebSocket clients, authenticated by tokens minted here the way an outside identity
//! provider mints them (HS256 with the server's secret, the user in `sub`, the tenant in
//! `app_id`, an `exp`), sent in the raw `Authorization` header or as `?jwt=` / `?token=`:
//! refusals of missing, forged, expired and wrong-tenant tokens, users created on first use,
//! groups (create, read, add, remove, quit, replace the members, rename, the size limit and
//! every refusal), messages (text and image, direct and group, every missing field with
//! Chat21's own text, delivery to the recipient's WebSocket and history), conversations
//! (list, detail, messages, archive and delete for the caller only), and the same
//! conversation seen from the uni-app face.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestServer, Ws};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

/// The secret the test servers sign with.
const SECRET: &str = "test-secret";

/// A server signing with [`SECRET`], with `tweak` applied to its configuration.
async fn start_with(tweak: impl FnOnce(&mut parlor::config::Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.auth.jwt_secret = SECRET.into();
        tweak(c);
    })
    .await;
    (server, dir)
}

async fn start() -> (TestServer, tempfile::TempDir) {
    start_with(|_| {}).await
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token with these claims, signed with `secret`.
fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An outside provider's token for `sub` in tenant `app`, valid for an hour.
fn token(sub: &str, app: &str) -> String {
    sign(
        &json!({"sub": sub, "app_id": app, "exp": now_secs() + 3600, "jti": uuid::Uuid::new_v4().to_string()}),
        SECRET,
    )
}

/// A `default`-tenant token for `sub`.
fn tok(sub: &str) -> String {
    token(sub, "default")
}

/// A response: its status, content type and body text.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
    retry_after: Option<String>,
}

impl Reply {
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("not JSON ({}): {:?}", self.status, self.text))
    }

    /// Asserts `status` and Chat21's success envelope; returns the body.
    #[track_caller]
    fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["success"], true, "{body}");
        body
    }

    /// Asserts `status` and Chat21's refusal `{"success":false,"err":...}`; returns `err`.
    #[track_caller]
    fn refused(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["success"], false, "{body}");
        body["err"]
            .as_str()
            .unwrap_or_else(|| panic!("err is a string: {body}"))
            .to_owned()
    }

    /// Asserts Chat21's answer to a missing or malformed field: 405 with a plain text.
    #[track_caller]
    fn missing(&self) -> &str {
        assert_eq!(self.status, StatusCode::METHOD_NOT_ALLOWED, "{}", self.text);
        assert!(self.content_type.starts_with("text/plain"), "{self:?}");
        &self.text
    }
}

/// A request with the token in the raw `Authorization` header (when given).
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut req = server.http.request(method, server.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    Reply {
        status,
        content_type,
        text,
        retry_after,
    }
}

async fn get(server: &TestServer, path: &str, token: &str) -> Reply {
    call(server, Method::GET, path, Some(token), None).await
}

async fn post(server: &TestServer, path: &str, token: &str, body: &Value) -> Reply {
    call(server, Method::POST, path, Some(token), Some(body)).await
}

async fn put(server: &TestServer, path: &str, token: &str, body: &Value) -> Reply {
    call(server, Method::PUT, path, Some(token), Some(body)).await
}

async fn delete(server: &TestServer, path: &str, token: &str) -> Reply {
    call(server, Method::DELETE, path, Some(token), None).await
}

/// Creates a group of `default` as `owner` with `members`; returns the created group.
async fn create_group(server: &TestServer, owner: &str, name: &str, members: &[&str]) -> Value {
    let map: serde_json::Map<String, Value> = members.iter().map(|m| (m.to_string(), json!(1))).collect();
    let body = post(
        server,
        "/api/default/groups",
        &tok(owner),
        &json!({"group_name": name, "group_members": map}),
    )
    .await
    .ok(StatusCode::CREATED);
    body["group"].clone()
}

/// The group as `as_user` reads it.
async fn group_of(server: &TestServer, as_user: &str, uid: &str) -> Value {
    get(server, &format!("/api/default/groups/{uid}"), &tok(as_user))
        .await
        .ok(StatusCode::OK)["result"]
        .clone()
}

/// The sorted member ids of a group in Chat21's shape.
fn members(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_object()
        .unwrap_or_else(|| panic!("members is an object: {group}"))
        .iter()
        .map(|(k, v)| {
            assert_eq!(v, &json!(1), "{group}");
            k.clone()
        })
        .collect();
    ids.sort();
    ids
}

fn strings(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A text message body.
fn text_to(recipient: &str, channel: &str, text: &str) -> Value {
    json!({
        "sender_fullname": "Sender Name",
        "recipient_id": recipient,
        "recipient_fullname": "Recipient Name",
        "text": text,
        "type": "text",
        "channel_type": channel,
    })
}

/// Sends a text message as `from`; returns the stored message.
async fn send(server: &TestServer, from: &str, recipient: &str, channel: &str, text: &str) -> Value {
    let body = post(
        server,
        "/api/default/messages",
        &tok(from),
        &text_to(recipient, channel, text),
    )
    .await
    .ok(StatusCode::OK);
    body["message"].clone()
}

/// Waits past the current millisecond, so that the next message is strictly newer.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// `user`'s list at `path` (`conversations`, `archived_conversations`, ...).
async fn list(server: &TestServer, user: &str, path: &str) -> Vec<Value> {
    get(server, &format!("/api/default/{user}/{path}"), &tok(user))
        .await
        .ok(StatusCode::OK)["result"]
        .as_array()
        .expect("result is a list")
        .clone()
}

/// Whom `user`'s active conversations are with.
async fn with_of(server: &TestServer, user: &str, path: &str) -> Vec<String> {
    list(server, user, path)
        .await
        .iter()
        .map(|c| c["conversation_with"].as_str().unwrap().to_owned())
        .collect()
}

/// The messages `user` reads with `with` (a user or a group uid), newest first (Chat21
/// sorts its `lastMessages` by descending timestamp).
async fn messages_with(server: &TestServer, user: &str, with: &str) -> Vec<Value> {
    get(
        server,
        &format!("/api/default/{user}/conversations/{with}/messages"),
        &tok(user),
    )
    .await
    .ok(StatusCode::OK)["result"]
        .as_array()
        .expect("result is a list")
        .clone()
}

/// The texts of the chat messages (not the group notices) `user` reads with `with`, newest
/// first.
async fn texts(server: &TestServer, user: &str, with: &str) -> Vec<String> {
    messages_with(server, user, with)
        .await
        .iter()
        .filter(|m| m["type"] == "text")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// The texts of the group notices `user` reads in the group `uid`, oldest first.
async fn notices(server: &TestServer, user: &str, uid: &str) -> Vec<String> {
    let mut got: Vec<(u64, String)> = messages_with(server, user, uid)
        .await
        .iter()
        .filter(|m| m["type"] == "systemNotice")
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    got.into_iter().map(|(_, t)| t).collect()
}

/// The next pushed chat message whose text is `text`, skipping others (group notices).
async fn next_chat(ws: &mut Ws, text: &str) -> Value {
    loop {
        let frame = ws.next_of_type("singleChat").await;
        if frame["data"]["data"] == text {
            return frame;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Authentication

#[actix_web::test]
async fn missing_forged_and_expired_tokens_are_refused() {
    let (server, _dir) = start().await;
    let body = json!({"group_name": "g", "group_members": {"ext-bob": 1}});
    let no_token = call(&server, Method::POST, "/api/default/groups", None, Some(&body)).await;
    assert!(!no_token.refused(StatusCode::UNAUTHORIZED).is_empty());

    let forged = sign(
        &json!({"sub": "ext-alice", "app_id": "default", "exp": now_secs() + 3600}),
        "another-secret",
    );
    let err = post(&server, "/api/default/groups", &forged, &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert!(err.contains("signature"), "{err}");

    let expired = sign(
        &json!({"sub": "ext-alice", "app_id": "default", "exp": now_secs() - 60}),
        SECRET,
    );
    let err = post(&server, "/api/default/groups", &expired, &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert!(err.contains("expired"), "{err}");

    // Without `sub` there is no user; garbage is no token.
    let no_sub = sign(&json!({"app_id": "default", "exp": now_secs() + 3600}), SECRET);
    post(&server, "/api/default/groups", &no_sub, &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    post(&server, "/api/default/groups", "not-a-jwt", &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);

    // Every route checks: reads, deletes, messages.
    for (method, path) in [
        (Method::GET, "/api/default/ext-alice/conversations"),
        (Method::GET, "/api/default/groups/group-x"),
        (Method::DELETE, "/api/default/conversations/ext-bob"),
        (Method::POST, "/api/default/messages"),
    ] {
        call(&server, method.clone(), path, None, None)
            .await
            .refused(StatusCode::UNAUTHORIZED);
        call(&server, method, path, Some(&expired), None)
            .await
            .refused(StatusCode::UNAUTHORIZED);
    }

    // Nothing was created by the refused requests.
    assert!(list(&server, "ext-alice", "conversations").await.is_empty());
    server.stop().await;
}

/// The test keys of an outside identity provider (`tests/keys`, test-only keys).
fn provider_key(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(file)
}

/// A token signed the way a provider signs: `alg` with the PEM private key `file` of
/// `tests/keys`, naming `kid` when given.
fn provider_sign(alg: jsonwebtoken::Algorithm, file: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(provider_key(file)).unwrap();
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// The claims of a real identity provider's token for `sub` (OpenID style): an audience
/// list, an issuer, `iat`/`nbf`, a `jti` and custom claims next to `app_id`.
fn provider_claims(sub: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": "https://id.example.com/",
        "sub": sub,
        "aud": ["parlor-chat", "https://id.example.com/userinfo"],
        "azp": "chat-web-client",
        "scope": "openid profile email",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid::Uuid::new_v4().to_string(),
        "app_id": "default",
        "email": format!("{sub}@example.com"),
        "email_verified": true,
        "https://example.com/roles": ["member"],
        "firebase": {"sign_in_provider": "password"},
    })
}

/// The same token with its claims replaced by `claims`, the signature kept (a forgery).
fn tampered(token: &str, claims: &Value) -> String {
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

#[actix_web::test]
async fn a_providers_token_with_an_audience_list_issuer_and_custom_claims_is_accepted() {
    let (server, _dir) = start().await;
    // Signed with the server's secret, carrying everything a provider puts in a token.
    let alice = sign(&provider_claims("ext-alice"), SECRET);
    let sent = post(
        &server,
        "/api/default/messages",
        &alice,
        &text_to("ext-bob", "direct", "from a provider token"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(sent["message"]["sender"], "ext-alice", "{sent}");
    let mine = get(&server, "/api/default/ext-alice/conversations", &alice)
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        mine["result"][0]["last_message_text"], "from a provider token",
        "{mine}"
    );
    // The same token opens a WebSocket, and a single audience text works as well.
    let mut ws = server.ws(&alice).await;
    let mut claims = provider_claims("ext-bob");
    claims["aud"] = json!("parlor-chat");
    let bob = sign(&claims, SECRET);
    post(
        &server,
        "/api/default/messages",
        &bob,
        &text_to("ext-alice", "direct", "back"),
    )
    .await
    .ok(StatusCode::OK);
    next_chat(&mut ws, "back").await;
    // Still refused: expired, or no sub.
    let mut expired = provider_claims("ext-alice");
    expired["exp"] = json!(now_secs() - 60);
    let err = get(
        &server,
        "/api/default/ext-alice/conversations",
        &sign(&expired, SECRET),
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(err, "token expired");
    let mut no_sub = provider_claims("ext-alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    let err = get(
        &server,
        "/api/default/ext-alice/conversations",
        &sign(&no_sub, SECRET),
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    assert!(err.contains("sub"), "{err}");
    ws.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn a_provider_signs_with_its_own_key_never_the_servers_secret() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let (server, _dir) = start_with(|c| {
        c.auth.external_public_key = provider_key("provider_rsa.pub.pem");
        c.auth.external_jwks = provider_key("provider_jwks.json");
        c.auth.external_secret = "the-providers-own-secret".into();
    })
    .await;
    let rs256 = provider_sign(RS256, "provider_rsa.pem", None, &provider_claims("ext-alice"));
    let es256_jwks = provider_sign(
        ES256,
        "provider_ec.pem",
        Some("provider-ec-1"),
        &provider_claims("ext-bob"),
    );
    let rs256_jwks = provider_sign(
        RS256,
        "provider_rsa.pem",
        Some("provider-rsa-1"),
        &provider_claims("ext-carol"),
    );
    let hs256 = sign(&provider_claims("ext-dave"), "the-providers-own-secret");
    for (who, token) in [
        ("ext-alice", &rs256),
        ("ext-bob", &es256_jwks),
        ("ext-carol", &rs256_jwks),
        ("ext-dave", &hs256),
    ] {
        let sent = post(
            &server,
            "/api/default/messages",
            token,
            &text_to("ext-erin", "direct", who),
        )
        .await
        .ok(StatusCode::OK);
        assert_eq!(sent["message"]["sender"], who, "{sent}");
    }
    // The server's own secret still signs, and Parlor's tokens still pass.
    post(
        &server,
        "/api/default/messages",
        &tok("ext-frank"),
        &text_to("ext-erin", "direct", "own"),
    )
    .await
    .ok(StatusCode::OK);
    // An RS256 token opens a WebSocket.
    let mut ws = server.ws(&rs256).await;
    send(&server, "ext-erin", "ext-alice", "direct", "to the RS256 socket").await;
    next_chat(&mut ws, "to the RS256 socket").await;
    ws.close().await;

    // Forgeries: a changed payload under a provider's signature, another secret.
    let mut claims = provider_claims("ext-mallory");
    claims["app_id"] = json!("default");
    for forged in [
        tampered(&rs256, &claims),
        tampered(&es256_jwks, &claims),
        sign(&claims, "not-the-providers-secret"),
    ] {
        let err = post(
            &server,
            "/api/default/messages",
            &forged,
            &text_to("ext-erin", "direct", "x"),
        )
        .await
        .refused(StatusCode::UNAUTHORIZED);
        assert_eq!(err, "token signature is invalid");
    }
    let url = format!("ws://{}/ws?token={}", server.addr, tampered(&rs256, &claims));
    common::assert_ws_unauthorized(url, "token signature is invalid").await;
    let erin = with_of(&server, "ext-erin", "conversations").await;
    assert_eq!(erin.len(), 5, "{erin:?}");
    assert!(!erin.contains(&"ext-mallory".to_owned()), "{erin:?}");
    server.stop().await;

    // A server with no provider key refuses RS256 and says why.
    let (plain, _dir) = start().await;
    let err = get(&plain, "/api/default/ext-alice/conversations", &rs256)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert!(err.contains("RS256") && err.contains("no key"), "{err}");
    plain.stop().await;
}

#[actix_web::test]
async fn a_configured_audience_and_issuer_are_checked_on_provider_tokens() {
    use jsonwebtoken::Algorithm::RS256;
    let (server, _dir) = start_with(|c| {
        c.auth.external_public_key = provider_key("provider_rsa.pub.pem");
        c.auth.external_audience = vec!["parlor-chat".into()];
        c.auth.external_issuer = vec!["https://id.example.com/".into()];
    })
    .await;
    let path = "/api/default/ext-alice/conversations";
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = provider_claims("ext-alice");
        change(&mut claims);
        provider_sign(RS256, "provider_rsa.pem", None, &claims)
    };
    get(&server, path, &with(&|_| {})).await.ok(StatusCode::OK);
    get(&server, path, &with(&|c| c["aud"] = json!("parlor-chat")))
        .await
        .ok(StatusCode::OK);
    type Change<'a> = &'a dyn Fn(&mut Value);
    let refusals: [(Change, &str); 4] = [
        (&|c| c["aud"] = json!(["another-app"]), "audience"),
        (
            &|c| drop(c.as_object_mut().unwrap().remove("aud")),
            "no aud claim",
        ),
        (&|c| c["iss"] = json!("https://evil.example.com/"), "issuer"),
        (
            &|c| drop(c.as_object_mut().unwrap().remove("iss")),
            "no iss claim",
        ),
    ];
    for (change, reason) in refusals {
        let err = get(&server, path, &with(change))
            .await
            .refused(StatusCode::UNAUTHORIZED);
        assert!(err.contains(reason), "{reason}: {err}");
    }
    // A token signed with the server's own secret is Parlor's: its aud is not checked.
    let mut own = provider_claims("ext-alice");
    own["aud"] = json!("another-app");
    get(&server, path, &sign(&own, SECRET)).await.ok(StatusCode::OK);
    server.stop().await;
}

#[actix_web::test]
async fn the_tokens_app_id_must_be_the_paths() {
    let (server, _dir) = start().await;
    let body = json!({"group_name": "g", "group_members": {"ext-bob": 1}});
    let acme = token("ext-alice", "acme");
    let err = post(&server, "/api/default/groups", &acme, &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert!(err.contains("app_id"), "{err}");
    get(&server, "/api/default/ext-alice/conversations", &acme)
        .await
        .refused(StatusCode::UNAUTHORIZED);

    // In its own tenant the token works; the group is not visible from another tenant.
    let created = post(&server, "/api/acme/groups", &acme, &body)
        .await
        .ok(StatusCode::CREATED);
    let uid = created["group"]["uid"].as_str().unwrap().to_owned();
    get(&server, &format!("/api/acme/groups/{uid}"), &acme)
        .await
        .ok(StatusCode::OK);
    get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-alice"))
        .await
        .refused(StatusCode::NOT_FOUND);

    // A token without app_id is the `default` tenant's.
    let plain = sign(&json!({"sub": "ext-carol", "exp": now_secs() + 3600}), SECRET);
    post(&server, "/api/default/groups", &plain, &body)
        .await
        .ok(StatusCode::CREATED);
    post(&server, "/api/acme/groups", &plain, &body)
        .await
        .refused(StatusCode::UNAUTHORIZED);

    // The same sub in two tenants is two users: acme's conversation is not default's.
    let sent = post(
        &server,
        "/api/acme/messages",
        &acme,
        &text_to("ext-bob", "direct", "acme only"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(sent["message"]["text"], "acme only");
    let acme_bob = get(
        &server,
        "/api/acme/ext-bob/conversations",
        &token("ext-bob", "acme"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        acme_bob["result"][0]["last_message_text"], "acme only",
        "{acme_bob}"
    );
    // Default's ext-bob is only in the group default's ext-carol made.
    let default_bob = list(&server, "ext-bob", "conversations").await;
    assert_eq!(default_bob.len(), 1, "{default_bob:?}");
    assert_eq!(default_bob[0]["channel_type"], "group");
    assert!(texts(&server, "ext-bob", "ext-alice").await.is_empty());
    server.stop().await;
}

#[actix_web::test]
async fn a_chat21_token_opens_a_websocket_and_a_bad_one_does_not() {
    let (server, _dir) = start().await;
    let mut ws = server.ws(&tok("ext-bob")).await;
    send(&server, "ext-alice", "ext-bob", "direct", "over the socket").await;
    let push = next_chat(&mut ws, "over the socket").await;
    assert_eq!(push["data"]["chatType"], "single");

    // A socket opened with another tenant's token for the same sub hears nothing of it.
    let mut acme = server.ws(&token("ext-bob", "acme")).await;
    send(&server, "ext-alice", "ext-bob", "direct", "default only").await;
    next_chat(&mut ws, "default only").await;
    acme.assert_quiet(200).await;

    let expired = sign(
        &json!({"sub": "ext-bob", "app_id": "default", "exp": now_secs() - 60}),
        SECRET,
    );
    let forged = sign(
        &json!({"sub": "ext-bob", "app_id": "default", "exp": now_secs() + 3600}),
        "another-secret",
    );
    for (bad, reason) in [(expired, "token expired"), (forged, "token signature is invalid")] {
        let url = format!("ws://{}/ws?token={bad}", server.addr);
        common::assert_ws_unauthorized(url, reason).await;
    }
    ws.close().await;
    acme.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn the_token_is_read_from_the_query_and_bearer_forms_too() {
    let (server, _dir) = start().await;
    send(&server, "ext-alice", "ext-bob", "direct", "hello").await;
    let t = tok("ext-alice");
    for path in [
        format!("/api/default/ext-alice/conversations?jwt={t}"),
        format!("/api/default/ext-alice/conversations?token={t}"),
    ] {
        let body = call(&server, Method::GET, &path, None, None)
            .await
            .ok(StatusCode::OK);
        assert_eq!(body["result"][0]["conversation_with"], "ext-bob", "{body}");
    }
    // Chat21's own `JWT <token>` form, `Bearer <token>`, and the bare token.
    for header in [format!("JWT {t}"), format!("Bearer {t}"), t.clone()] {
        let body = get(&server, "/api/default/ext-alice/conversations", &header)
            .await
            .ok(StatusCode::OK);
        assert_eq!(
            body["result"][0]["conversation_with"], "ext-bob",
            "{header}: {body}"
        );
    }
    // The scheme names a form; it is not a token of its own.
    for header in ["JWT ".to_owned(), format!("JWT{t}"), format!("Basic {t}")] {
        get(&server, "/api/default/ext-alice/conversations", &header)
            .await
            .refused(StatusCode::UNAUTHORIZED);
    }
    let forged = sign(
        &json!({"sub": "ext-alice", "app_id": "default", "exp": now_secs() + 3600}),
        "another-secret",
    );
    call(
        &server,
        Method::GET,
        &format!("/api/default/ext-alice/conversations?jwt={forged}"),
        None,
        None,
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[actix_web::test]
async fn a_never_seen_sub_is_created_on_first_use() {
    let (server, _dir) = start().await;
    // ext-bob is named as a member before Parlor ever saw his token.
    let group = create_group(&server, "ext-alice", "Team", &["ext-bob"]).await;
    let uid = group["uid"].as_str().unwrap().to_owned();
    assert_eq!(members(&group), strings(&["ext-alice", "ext-bob"]));

    // His first token finds the same user: he reads the group and sends to it.
    let seen = group_of(&server, "ext-bob", &uid).await;
    assert_eq!(members(&seen), strings(&["ext-alice", "ext-bob"]));
    let m = send(&server, "ext-bob", &uid, "group", "bob was here").await;
    assert_eq!(m["sender"], "ext-bob");
    assert_eq!(texts(&server, "ext-alice", &uid).await, ["bob was here"]);

    // A sub that first appears as a sender is a user others can reach.
    send(&server, "ext-zed", "ext-alice", "direct", "hi from zed").await;
    assert_eq!(texts(&server, "ext-alice", "ext-zed").await, ["hi from zed"]);
    send(&server, "ext-alice", "ext-zed", "direct", "hi zed").await;
    assert_eq!(
        texts(&server, "ext-zed", "ext-alice").await,
        ["hi zed", "hi from zed"]
    );
    // And can be added to a group by id.
    post(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &tok("ext-alice"),
        &json!({"member_id": "ext-zed"}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        members(&group_of(&server, "ext-zed", &uid).await),
        strings(&["ext-alice", "ext-bob", "ext-zed"])
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Groups

#[actix_web::test]
async fn creating_a_group_makes_the_creator_owner_and_member() {
    let (server, _dir) = start().await;
    let before = parlor_actors::now_ms();
    let body = post(
        &server,
        "/api/default/groups",
        &tok("ext-alice"),
        &json!({"group_name": "Readers", "group_members": {"ext-bob": 1, "ext-carol": 1}}),
    )
    .await
    .ok(StatusCode::CREATED);
    let g = &body["group"];
    let uid = g["uid"].as_str().unwrap();
    assert!(uid.starts_with("group-"), "{g}");
    assert!(uuid::Uuid::parse_str(&uid["group-".len()..]).is_ok(), "{g}");
    assert_eq!(g["name"], "Readers");
    assert_eq!(g["owner"], "ext-alice");
    assert_eq!(members(g), strings(&["ext-alice", "ext-bob", "ext-carol"]));
    assert!(g["createdOn"].as_u64().unwrap() >= before, "{g}");

    // GET answers the same group to a member.
    let read = get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-carol"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(read["result"]["uid"], *uid);
    assert_eq!(read["result"]["name"], "Readers");
    assert_eq!(read["result"]["owner"], "ext-alice");
    assert_eq!(members(&read["result"]), members(g));

    // The creator listed among the members is not listed twice.
    let g2 = create_group(&server, "ext-alice", "Pair", &["ext-alice", "ext-bob"]).await;
    assert_eq!(members(&g2), strings(&["ext-alice", "ext-bob"]));
    server.stop().await;
}

#[actix_web::test]
async fn a_given_group_id_is_kept_and_usable_in_paths_and_taken_once() {
    let (server, _dir) = start().await;
    let uid = format!("group-{}", uuid::Uuid::new_v4());
    let req = json!({"group_name": "Mine", "group_members": {"ext-bob": 1}, "group_id": uid});
    let body = post(&server, "/api/default/groups", &tok("ext-alice"), &req)
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(body["group"]["uid"], uid);
    assert_eq!(group_of(&server, "ext-bob", &uid).await["name"], "Mine");
    let m = send(&server, "ext-bob", &uid, "group", "in mine").await;
    assert_eq!(m["recipient"], uid);
    assert_eq!(m["channel_type"], "group");
    put(
        &server,
        &format!("/api/default/groups/{uid}"),
        &tok("ext-alice"),
        &json!({"group_name": "Still mine"}),
    )
    .await
    .ok(StatusCode::OK);

    // The same id again is a conflict, whoever asks, and changes nothing.
    let err = post(&server, "/api/default/groups", &tok("ext-carol"), &req)
        .await
        .refused(StatusCode::CONFLICT);
    assert!(err.contains("group_id"), "{err}");
    let g = group_of(&server, "ext-alice", &uid).await;
    assert_eq!(g["name"], "Still mine");
    assert_eq!(g["owner"], "ext-alice");

    // The same id in another tenant is another group.
    let acme = post(&server, "/api/acme/groups", &token("ext-alice", "acme"), &req)
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(acme["group"]["uid"], uid);
    server.stop().await;
}

#[actix_web::test]
async fn creating_a_group_needs_a_name_and_members() {
    let (server, _dir) = start().await;
    let alice = tok("ext-alice");
    for body in [
        json!({"group_members": {"ext-bob": 1}}),
        json!({"group_name": "", "group_members": {"ext-bob": 1}}),
        json!({"group_name": null, "group_members": {"ext-bob": 1}}),
    ] {
        let r = post(&server, "/api/default/groups", &alice, &body).await;
        assert!(r.missing().contains("group_name"), "{r:?}");
    }
    for body in [
        json!({"group_name": "g"}),
        json!({"group_name": "g", "group_members": null}),
        json!({"group_name": "g", "group_members": "ext-bob"}),
    ] {
        let r = post(&server, "/api/default/groups", &alice, &body).await;
        assert!(r.missing().contains("group_members"), "{r:?}");
    }
    let r = post(
        &server,
        "/api/default/groups",
        &alice,
        &json!({"group_name": "x".repeat(101), "group_members": {"ext-bob": 1}}),
    )
    .await;
    assert!(r.missing().contains("group_name"), "{r:?}");
    // A body that is not JSON is refused the same way.
    let resp = server
        .http
        .post(server.url("/api/default/groups"))
        .header("Authorization", &alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("the body is not valid JSON"), "{text}");
    // None of these made a group or a conversation.
    assert!(list(&server, "ext-alice", "conversations").await.is_empty());
    server.stop().await;
}

#[actix_web::test]
async fn a_group_is_read_by_members_only() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Closed", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap();
    let err = get(
        &server,
        &format!("/api/default/groups/{uid}"),
        &tok("ext-mallory"),
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(err, "Permission denied");
    // Nor its messages: the same 401 as for the group itself.
    let err = get(
        &server,
        &format!("/api/default/ext-mallory/conversations/{uid}/messages"),
        &tok("ext-mallory"),
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(err, "Permission denied");
    let err = get(
        &server,
        &format!("/api/default/groups/group-{}", uuid::Uuid::new_v4()),
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    assert_eq!(err, "Group doesn't exist");
    // The numeric id names the group too.
    let by_number = get(
        &server,
        &format!("/api/default/groups/{}", g["id"]),
        &tok("ext-bob"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(by_number["result"]["uid"], *uid);
    server.stop().await;
}

#[actix_web::test]
async fn an_added_member_reads_the_group_and_gets_its_messages() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Growing", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    send(&server, "ext-alice", &uid, "group", "before carol").await;

    let path = format!("/api/default/groups/{uid}/members");
    let r = post(&server, &path, &tok("ext-alice"), &json!({})).await;
    assert!(r.missing().contains("member_id"), "{r:?}");
    // A stranger cannot add themselves to someone else's group by adding another.
    post(
        &server,
        &path,
        &tok("ext-mallory"),
        &json!({"member_id": "ext-carol"}),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);

    post(
        &server,
        &path,
        &tok("ext-alice"),
        &json!({"member_id": "ext-carol"}),
    )
    .await
    .ok(StatusCode::OK);
    let seen = group_of(&server, "ext-carol", &uid).await;
    assert_eq!(members(&seen), strings(&["ext-alice", "ext-bob", "ext-carol"]));
    // Adding a member twice is refused.
    post(
        &server,
        &path,
        &tok("ext-alice"),
        &json!({"member_id": "ext-carol"}),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);

    // Her WebSocket, opened with the same kind of token, gets the group's new messages.
    let mut ws = server.ws(&tok("ext-carol")).await;
    let m = send(&server, "ext-bob", &uid, "group", "welcome carol").await;
    let push = next_chat(&mut ws, "welcome carol").await;
    assert_eq!(push["data"]["chatType"], "group");
    assert_eq!(push["data"]["id"], m["message_id"]);
    assert_eq!(push["data"]["to_id"], g["id"]);
    // Her history starts when she joined; the others see everything.
    assert_eq!(texts(&server, "ext-carol", &uid).await, ["welcome carol"]);
    assert_eq!(
        texts(&server, "ext-bob", &uid).await,
        ["welcome carol", "before carol"]
    );
    // She may send to the group now, and members (not the sender) get it.
    let mut bob = server.ws(&tok("ext-bob")).await;
    send(&server, "ext-carol", &uid, "group", "thanks").await;
    let push = next_chat(&mut bob, "thanks").await;
    assert_eq!(push["data"]["from_name"], "Sender Name");
    ws.close().await;
    bob.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn the_owner_removes_members_and_members_quit() {
    let (server, _dir) = start().await;
    let g = create_group(
        &server,
        "ext-alice",
        "Club",
        &["ext-bob", "ext-carol", "ext-dave"],
    )
    .await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let member = |id: &str| format!("/api/default/groups/{uid}/members/{id}");

    // A member may not remove another.
    delete(&server, &member("ext-carol"), &tok("ext-bob"))
        .await
        .refused(StatusCode::METHOD_NOT_ALLOWED);
    // The owner removes bob: he no longer reads or writes the group.
    delete(&server, &member("ext-bob"), &tok("ext-alice"))
        .await
        .ok(StatusCode::OK);
    get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-bob"))
        .await
        .refused(StatusCode::UNAUTHORIZED);
    post(
        &server,
        "/api/default/messages",
        &tok("ext-bob"),
        &text_to(&uid, "group", "still here?"),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);
    // Removing someone who is not a member is refused.
    delete(&server, &member("ext-bob"), &tok("ext-alice"))
        .await
        .refused(StatusCode::NOT_FOUND);

    // Carol quits by naming herself.
    delete(&server, &member("ext-carol"), &tok("ext-carol"))
        .await
        .ok(StatusCode::OK);
    get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-carol"))
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(
        members(&group_of(&server, "ext-alice", &uid).await),
        strings(&["ext-alice", "ext-dave"])
    );
    // A non-member cannot quit.
    delete(&server, &member("ext-carol"), &tok("ext-carol"))
        .await
        .refused(StatusCode::METHOD_NOT_ALLOWED);
    // An unknown group is 404.
    delete(
        &server,
        &format!(
            "/api/default/groups/group-{}/members/ext-dave",
            uuid::Uuid::new_v4()
        ),
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    // The owner leaving dissolves the group.
    delete(&server, &member("ext-alice"), &tok("ext-alice"))
        .await
        .ok(StatusCode::OK);
    get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-dave"))
        .await
        .refused(StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn the_owner_replaces_the_member_list() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Shuffle", &["ext-bob", "ext-carol"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let path = format!("/api/default/groups/{uid}/members");

    // The owner is kept even when left out of the list.
    put(
        &server,
        &path,
        &tok("ext-alice"),
        &json!({"members": {"ext-carol": 1, "ext-dave": 1, "ext-erin": 1}}),
    )
    .await
    .ok(StatusCode::OK);
    let now = group_of(&server, "ext-alice", &uid).await;
    assert_eq!(
        members(&now),
        strings(&["ext-alice", "ext-carol", "ext-dave", "ext-erin"])
    );
    assert_eq!(now["owner"], "ext-alice");
    get(&server, &format!("/api/default/groups/{uid}"), &tok("ext-bob"))
        .await
        .refused(StatusCode::UNAUTHORIZED);
    group_of(&server, "ext-dave", &uid).await;

    // Only the owner sets the members; the list is mandatory.
    put(
        &server,
        &path,
        &tok("ext-carol"),
        &json!({"members": {"ext-carol": 1}}),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);
    let r = put(&server, &path, &tok("ext-alice"), &json!({})).await;
    assert!(r.missing().contains("members"), "{r:?}");
    assert_eq!(
        members(&group_of(&server, "ext-alice", &uid).await),
        strings(&["ext-alice", "ext-carol", "ext-dave", "ext-erin"])
    );
    server.stop().await;
}

#[actix_web::test]
async fn the_owner_renames_the_group() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Old name", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let path = format!("/api/default/groups/{uid}");

    put(&server, &path, &tok("ext-bob"), &json!({"group_name": "Bob's"}))
        .await
        .refused(StatusCode::METHOD_NOT_ALLOWED);
    let r = put(&server, &path, &tok("ext-alice"), &json!({})).await;
    assert!(r.missing().contains("group_name"), "{r:?}");
    let before = group_of(&server, "ext-bob", &uid).await;
    assert_eq!(before["name"], "Old name");
    let updated = before["updatedOn"].as_u64().expect("updatedOn is a number");
    assert_eq!(g["updatedOn"], updated, "{g}");
    tick().await;

    put(
        &server,
        &path,
        &tok("ext-alice"),
        &json!({"group_name": "New name"}),
    )
    .await
    .ok(StatusCode::OK);
    let now = group_of(&server, "ext-bob", &uid).await;
    assert_eq!(now["name"], "New name");
    assert!(
        now["updatedOn"].as_u64().expect("updatedOn is a number") > updated,
        "{now}"
    );
    // Bob's conversation list names the group by its new name.
    let convs = list(&server, "ext-bob", "conversations").await;
    let c = convs
        .iter()
        .find(|c| c["conversation_with"] == uid)
        .unwrap_or_else(|| panic!("the group is listed: {convs:?}"));
    assert_eq!(c["conversation_with_fullname"], "New name");
    assert_eq!(c["channel_type"], "group");
    server.stop().await;
}

#[actix_web::test]
async fn a_group_cannot_grow_past_the_configured_size() {
    let (server, _dir) = start_with(|c| c.limits.group_max_members = 3).await;
    let alice = tok("ext-alice");
    let too_many = json!({"group_name": "Big", "group_members": {"ext-b": 1, "ext-c": 1, "ext-d": 1}});
    let r = post(&server, "/api/default/groups", &alice, &too_many).await;
    assert!(r.missing().contains("at most 3"), "{r:?}");

    let g = create_group(&server, "ext-alice", "Full", &["ext-b", "ext-c"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let r = post(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &alice,
        &json!({"member_id": "ext-d"}),
    )
    .await;
    assert!(r.missing().contains("at most 3"), "{r:?}");
    let r = put(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &alice,
        &json!({"members": {"ext-b": 1, "ext-c": 1, "ext-d": 1}}),
    )
    .await;
    assert!(r.missing().contains("at most 3"), "{r:?}");
    assert_eq!(
        members(&group_of(&server, "ext-alice", &uid).await),
        strings(&["ext-alice", "ext-b", "ext-c"])
    );
    // Swapping a member keeps the size and is allowed.
    put(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &alice,
        &json!({"members": {"ext-b": 1, "ext-d": 1}}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        members(&group_of(&server, "ext-alice", &uid).await),
        strings(&["ext-alice", "ext-b", "ext-d"])
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Messages

#[actix_web::test]
async fn each_mandatory_message_field_is_named_with_chat21s_text() {
    let (server, _dir) = start().await;
    let alice = tok("ext-alice");
    let full = text_to("ext-bob", "direct", "hi");
    for (field, text) in [
        ("sender_fullname", "Sender Fullname is mandatory"),
        ("recipient_id", "Recipient id is mandatory"),
        ("recipient_fullname", "Recipient Fullname is mandatory"),
    ] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        let r = post(&server, "/api/default/messages", &alice, &body).await;
        assert_eq!(r.missing(), text, "without {field}");
        body[field] = json!("");
        let r = post(&server, "/api/default/messages", &alice, &body).await;
        assert_eq!(r.missing(), text, "with an empty {field}");
    }
    // Chat21 checks them in order: the first missing one is named.
    let r = post(&server, "/api/default/messages", &alice, &json!({"text": "hi"})).await;
    assert_eq!(r.missing(), "Sender Fullname is mandatory");

    // An image needs metadata with src, width and height.
    let mut image = full.clone();
    image["type"] = json!("image");
    let r = post(&server, "/api/default/messages", &alice, &image).await;
    assert!(r.missing().contains("metadata"), "{r:?}");
    image["metadata"] = json!({"src": "https://img.example/a.png", "width": 200});
    let r = post(&server, "/api/default/messages", &alice, &image).await;
    assert!(r.missing().contains("metadata"), "{r:?}");
    // Other malformed fields.
    let mut bad = full.clone();
    bad["channel_type"] = json!("broadcast");
    assert!(post(&server, "/api/default/messages", &alice, &bad)
        .await
        .missing()
        .contains("channel_type"));
    let mut bad = full.clone();
    bad["attributes"] = json!("not an object");
    assert!(post(&server, "/api/default/messages", &alice, &bad)
        .await
        .missing()
        .contains("attributes"));
    let mut bad = full.clone();
    bad.as_object_mut().unwrap().remove("text");
    assert!(post(&server, "/api/default/messages", &alice, &bad)
        .await
        .missing()
        .contains("text"));
    // Nothing was stored.
    assert!(list(&server, "ext-alice", "conversations").await.is_empty());
    server.stop().await;
}

#[actix_web::test]
async fn a_direct_message_is_stored_answered_and_pushed() {
    let (server, _dir) = start().await;
    let mut bob = server.ws(&tok("ext-bob")).await;
    let before = parlor_actors::now_ms();
    let body = post(
        &server,
        "/api/default/messages",
        &tok("ext-alice"),
        &json!({
            "sender_fullname": "Alice A",
            "recipient_id": "ext-bob",
            "recipient_fullname": "Bob B",
            "text": "hello bob",
            "attributes": {"custom_attribute1": "value1", "n": 2},
        }),
    )
    .await
    .ok(StatusCode::OK);
    let m = &body["message"];
    assert_eq!(m["sender"], "ext-alice");
    assert_eq!(m["sender_fullname"], "Alice A");
    assert_eq!(m["recipient"], "ext-bob");
    assert_eq!(m["recipient_fullname"], "Bob B");
    assert_eq!(m["text"], "hello bob");
    assert_eq!(m["type"], "text", "type defaults to text");
    assert_eq!(m["channel_type"], "direct", "channel_type defaults to direct");
    assert_eq!(m["attributes"], json!({"custom_attribute1": "value1", "n": 2}));
    assert!(m["timestamp"].as_u64().unwrap() >= before, "{m}");
    assert!(m["message_id"].as_str().is_some_and(|s| !s.is_empty()), "{m}");

    let push = next_chat(&mut bob, "hello bob").await;
    assert_eq!(push["data"]["id"], m["message_id"]);
    assert_eq!(push["data"]["chatType"], "single");
    assert_eq!(push["data"]["from_name"], "Alice A");
    assert_eq!(
        push["data"]["options"]["attributes"]["custom_attribute1"],
        "value1"
    );

    // An image keeps its metadata, in the answer, the push and the history.
    let meta = json!({"src": "https://img.example/a.png", "width": 200, "height": 100});
    let body = post(
        &server,
        "/api/default/messages",
        &tok("ext-alice"),
        &json!({
            "sender_fullname": "Alice A",
            "recipient_id": "ext-bob",
            "recipient_fullname": "Bob B",
            "text": "",
            "type": "image",
            "metadata": meta,
        }),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(body["message"]["type"], "image");
    assert_eq!(body["message"]["metadata"], meta);
    let push = bob.next_of_type("singleChat").await;
    assert_eq!(push["data"]["type"], "image");
    assert_eq!(push["data"]["options"]["metadata"], meta);

    let history = get(
        &server,
        "/api/default/ext-bob/conversations/ext-alice/messages",
        &tok("ext-bob"),
    )
    .await
    .ok(StatusCode::OK);
    let msgs = history["result"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{history}");
    // Newest first, as Chat21's `lastMessages` sorts them.
    assert_eq!(msgs[0]["type"], "image");
    assert_eq!(msgs[0]["metadata"], meta);
    assert_eq!(msgs[1]["text"], "hello bob");
    assert_eq!(msgs[1]["sender"], "ext-alice");
    assert_eq!(msgs[1]["recipient"], "ext-bob");
    assert_eq!(msgs[1]["attributes"]["n"], 2);
    assert_eq!(msgs[1]["message_id"], m["message_id"]);
    bob.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn a_group_message_goes_to_a_group_the_sender_belongs_to() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Devs", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let mut bob = server.ws(&tok("ext-bob")).await;

    let body = post(
        &server,
        "/api/default/messages",
        &tok("ext-alice"),
        &json!({
            "sender_fullname": "Alice",
            "recipient_id": uid,
            "recipient_fullname": "Devs",
            "text": "standup",
            "channel_type": "group",
            "attributes": {"urgent": true},
        }),
    )
    .await
    .ok(StatusCode::OK);
    let m = &body["message"];
    assert_eq!(m["recipient"], uid);
    assert_eq!(m["channel_type"], "group");
    assert_eq!(m["attributes"], json!({"urgent": true}));
    let push = next_chat(&mut bob, "standup").await;
    assert_eq!(push["data"]["chatType"], "group");
    assert_eq!(push["data"]["id"], m["message_id"]);

    // A non-member is refused and nothing reaches the members.
    let err = post(
        &server,
        "/api/default/messages",
        &tok("ext-mallory"),
        &text_to(&uid, "group", "let me in"),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);
    assert!(err.contains("not a member"), "{err}");
    bob.assert_quiet(200).await;
    assert_eq!(texts(&server, "ext-bob", &uid).await, ["standup"]);
    // An unknown group is 404.
    post(
        &server,
        "/api/default/messages",
        &tok("ext-alice"),
        &text_to(&format!("group-{}", uuid::Uuid::new_v4()), "group", "anyone?"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    bob.close().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Conversations

#[actix_web::test]
async fn the_conversation_list_is_the_callers() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Book club", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    tick().await;
    send(&server, "ext-carol", "ext-bob", "direct", "from carol").await;
    tick().await;
    send(&server, "ext-alice", &uid, "group", "chapter one").await;
    tick().await;
    send(&server, "ext-alice", "ext-bob", "direct", "psst").await;

    let convs = list(&server, "ext-bob", "conversations").await;
    assert_eq!(convs.len(), 3, "{convs:?}");
    // Newest first.
    assert_eq!(convs[0]["conversation_with"], "ext-alice");
    assert_eq!(convs[0]["last_message_text"], "psst");
    assert_eq!(convs[0]["channel_type"], "direct");
    assert_eq!(convs[0]["is_new"], true);
    assert_eq!(convs[0]["sender"], "ext-alice");
    assert_eq!(convs[0]["recipient"], "ext-bob");
    assert_eq!(convs[1]["conversation_with"], uid);
    assert_eq!(convs[1]["conversation_with_fullname"], "Book club");
    assert_eq!(convs[1]["last_message_text"], "chapter one");
    assert_eq!(convs[1]["channel_type"], "group");
    assert_eq!(convs[1]["is_new"], true);
    assert_eq!(convs[2]["conversation_with"], "ext-carol");
    assert_eq!(convs[2]["last_message_text"], "from carol");

    // The sender's own message is not new to them.
    let mine = list(&server, "ext-alice", "conversations").await;
    let direct = mine.iter().find(|c| c["conversation_with"] == "ext-bob").unwrap();
    assert_eq!(direct["last_message_text"], "psst");
    assert_eq!(direct["is_new"], false);
    assert_eq!(direct["user"], "ext-alice");
    assert!(!with_of(&server, "ext-carol", "conversations")
        .await
        .contains(&uid));

    // Nobody reads another user's list, detail or messages.
    for path in [
        "/api/default/ext-bob/conversations",
        "/api/default/ext-bob/archived_conversations",
        "/api/default/ext-bob/conversations/archived",
        "/api/default/ext-bob/conversations/ext-alice",
        "/api/default/ext-bob/conversations/ext-alice/messages",
    ] {
        get(&server, path, &tok("ext-alice"))
            .await
            .refused(StatusCode::UNAUTHORIZED);
    }
    server.stop().await;
}

#[actix_web::test]
async fn the_conversation_detail_and_messages() {
    let (server, _dir) = start().await;
    send(&server, "ext-alice", "ext-bob", "direct", "one").await;
    send(&server, "ext-bob", "ext-alice", "direct", "two").await;

    let detail = get(
        &server,
        "/api/default/ext-alice/conversations/ext-bob",
        &tok("ext-alice"),
    )
    .await
    .ok(StatusCode::OK);
    let result = detail["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{detail}");
    assert_eq!(result[0]["conversation_with"], "ext-bob");
    assert_eq!(result[0]["last_message_text"], "two");
    assert_eq!(result[0]["is_new"], true);
    assert_eq!(texts(&server, "ext-alice", "ext-bob").await, ["two", "one"]);
    assert_eq!(texts(&server, "ext-bob", "ext-alice").await, ["two", "one"]);

    // A user one has no conversation with, and one who does not exist.
    get(
        &server,
        "/api/default/ext-alice/conversations/ext-carol",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    get(&server, "/api/default/ext-carol/conversations", &tok("ext-carol"))
        .await
        .ok(StatusCode::OK);
    get(
        &server,
        "/api/default/ext-alice/conversations/ext-carol",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    get(
        &server,
        "/api/default/ext-alice/conversations/nobody-at-all/messages",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn archiving_hides_a_conversation_until_a_new_message() {
    let (server, _dir) = start().await;
    send(&server, "ext-bob", "ext-alice", "direct", "hello").await;
    tick().await;
    send(&server, "ext-carol", "ext-alice", "direct", "hey").await;
    assert_eq!(
        with_of(&server, "ext-alice", "conversations").await,
        ["ext-carol", "ext-bob"]
    );

    let body = delete(
        &server,
        "/api/default/conversations/ext-bob?delete=false",
        &tok("ext-alice"),
    )
    .await
    .ok(StatusCode::CREATED);
    assert_eq!(body, json!({"success": true}));
    assert_eq!(
        with_of(&server, "ext-alice", "conversations").await,
        ["ext-carol"]
    );
    for path in ["archived_conversations", "conversations/archived"] {
        let archived = list(&server, "ext-alice", path).await;
        assert_eq!(archived.len(), 1, "{archived:?}");
        assert_eq!(archived[0]["conversation_with"], "ext-bob");
        assert_eq!(archived[0]["archived"], true);
        assert_eq!(archived[0]["last_message_text"], "hello");
    }
    // Archived, not deleted: the history is still there, and only for alice.
    assert_eq!(texts(&server, "ext-alice", "ext-bob").await, ["hello"]);
    assert_eq!(with_of(&server, "ext-bob", "conversations").await, ["ext-alice"]);

    // Without `delete` the default is to archive (the trailing slash works too).
    delete(
        &server,
        "/api/default/conversations/ext-carol/",
        &tok("ext-alice"),
    )
    .await
    .ok(StatusCode::CREATED);
    assert!(with_of(&server, "ext-alice", "conversations").await.is_empty());
    assert_eq!(
        with_of(&server, "ext-alice", "archived_conversations")
            .await
            .len(),
        2
    );

    // A new message brings it back.
    send(&server, "ext-bob", "ext-alice", "direct", "are you there?").await;
    let convs = list(&server, "ext-alice", "conversations").await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert_eq!(convs[0]["conversation_with"], "ext-bob");
    assert_eq!(convs[0]["archived"], false);
    assert_eq!(convs[0]["last_message_text"], "are you there?");
    assert_eq!(
        with_of(&server, "ext-alice", "archived_conversations").await,
        ["ext-carol"]
    );

    // A group conversation is archived by its group id.
    let g = create_group(&server, "ext-alice", "Quiet", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    send(&server, "ext-bob", &uid, "group", "anyone?").await;
    assert!(with_of(&server, "ext-alice", "conversations")
        .await
        .contains(&uid));
    delete(
        &server,
        &format!("/api/default/conversations/{uid}"),
        &tok("ext-alice"),
    )
    .await
    .ok(StatusCode::CREATED);
    assert!(!with_of(&server, "ext-alice", "conversations")
        .await
        .contains(&uid));
    assert!(with_of(&server, "ext-alice", "archived_conversations")
        .await
        .contains(&uid));
    assert!(with_of(&server, "ext-bob", "conversations").await.contains(&uid));
    server.stop().await;
}

#[actix_web::test]
async fn deleting_hides_the_history_for_the_caller_only() {
    let (server, _dir) = start().await;
    send(&server, "ext-alice", "ext-bob", "direct", "secret one").await;
    send(&server, "ext-bob", "ext-alice", "direct", "secret two").await;

    delete(
        &server,
        "/api/default/conversations/ext-bob?delete=true",
        &tok("ext-alice"),
    )
    .await
    .ok(StatusCode::CREATED);
    assert!(texts(&server, "ext-alice", "ext-bob").await.is_empty());
    assert!(with_of(&server, "ext-alice", "conversations").await.is_empty());
    assert!(with_of(&server, "ext-alice", "archived_conversations")
        .await
        .is_empty());
    // Bob still has all of it.
    assert_eq!(
        texts(&server, "ext-bob", "ext-alice").await,
        ["secret two", "secret one"]
    );
    assert_eq!(with_of(&server, "ext-bob", "conversations").await, ["ext-alice"]);

    // A new message shows from there on.
    send(&server, "ext-bob", "ext-alice", "direct", "fresh start").await;
    assert_eq!(texts(&server, "ext-alice", "ext-bob").await, ["fresh start"]);
    let convs = list(&server, "ext-alice", "conversations").await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert_eq!(convs[0]["last_message_text"], "fresh start");

    // Unknown recipients, users one never talked with, and a bad flag.
    delete(
        &server,
        "/api/default/conversations/nobody-at-all",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    send(&server, "ext-carol", "ext-dave", "direct", "not alice's").await;
    delete(
        &server,
        "/api/default/conversations/ext-carol?delete=true",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    let r = delete(
        &server,
        "/api/default/conversations/ext-bob?delete=maybe",
        &tok("ext-alice"),
    )
    .await;
    assert!(r.missing().contains("delete"), "{r:?}");
    assert_eq!(texts(&server, "ext-alice", "ext-bob").await, ["fresh start"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The uni-app face sees the same conversations

#[actix_web::test]
async fn a_uniapp_user_sees_chat21_messages_and_uses_its_token_on_chat21_routes() {
    let (server, _dir) = start().await;
    let uni = server.register("uni_alice").await;

    // A new uni-app user takes messages from friends only.
    let refused = post(
        &server,
        "/api/default/messages",
        &tok("ext-bob"),
        &text_to(&uni.uuid, "direct", "hi?"),
    )
    .await;
    refused.refused(StatusCode::METHOD_NOT_ALLOWED);

    server.open_inbox(&uni).await;
    let mut ws = server.ws(&uni.token).await;
    let m = send(&server, "ext-bob", &uni.uuid, "direct", "hello from chat21").await;
    assert_eq!(m["recipient"], uni.uuid);
    let push = next_chat(&mut ws, "hello from chat21").await;
    assert_eq!(push["data"]["to_id"], uni.id);
    assert_eq!(push["data"]["id"], m["message_id"]);
    // Bob is a Parlor user like any other: a public profile under his Chat21 id, a
    // numeric id in the push, and the pair's conversation key in the Chat21 answer.
    let (status, profile) = server.get("/api/userinfo/ext-bob", None).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["data"]["uuid"], "ext-bob");
    let bob_id = push["data"]["from_id"].as_u64().expect("bob's id");
    let (lo, hi) = (bob_id.min(uni.id), bob_id.max(uni.id));
    assert_eq!(m["conversation"], format!("d:{lo}:{hi}"));

    // The uni-app history of the pair, by bob's numeric id.
    let (status, history) = server
        .get(&format!("/api/chat/history/single/{bob_id}"), Some(&uni.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let listed = history["data"]["list"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{history}");
    assert_eq!(listed[0]["data"], "hello from chat21");
    assert_eq!(listed[0]["id"], m["message_id"]);
    assert_eq!(listed[0]["from_id"], bob_id);
    assert_eq!(listed[0]["options"]["sender_fullname"], "Sender Name");

    // The uni-app token (it carries sub and app_id) works on the Chat21 routes, under the
    // user's uuid or numeric id.
    let convs = get(
        &server,
        &format!("/api/default/{}/conversations", uni.uuid),
        &uni.token,
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(convs["result"][0]["conversation_with"], "ext-bob", "{convs}");
    assert_eq!(convs["result"][0]["last_message_text"], "hello from chat21");
    get(
        &server,
        &format!("/api/default/{}/conversations", uni.id),
        &uni.token,
    )
    .await
    .ok(StatusCode::OK);
    let reply = post(
        &server,
        "/api/default/messages",
        &uni.token,
        &text_to("ext-bob", "direct", "hello back"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(reply["message"]["sender"], uni.uuid);
    assert_eq!(
        texts(&server, "ext-bob", &uni.uuid).await,
        ["hello back", "hello from chat21"]
    );
    // And its tenant is checked like any other.
    get(
        &server,
        &format!("/api/acme/{}/conversations", uni.uuid),
        &uni.token,
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);

    // Logging out on the uni-app face revokes the token on the Chat21 routes too.
    let (status, body) = server.post_form("/api/chat/logout", Some(&uni.token), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    get(
        &server,
        &format!("/api/default/{}/conversations", uni.uuid),
        &uni.token,
    )
    .await
    .refused(StatusCode::UNAUTHORIZED);
    ws.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn member_changes_and_renames_are_notices_in_the_timeline_and_pushed() {
    let (server, _dir) = start().await;
    let g = create_group(&server, "ext-alice", "Notices", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let members_path = format!("/api/default/groups/{uid}/members");
    let mut bob = server.ws(&tok("ext-bob")).await;
    post(
        &server,
        &members_path,
        &tok("ext-alice"),
        &json!({"member_id": "ext-carol"}),
    )
    .await
    .ok(StatusCode::OK);
    put(
        &server,
        &format!("/api/default/groups/{uid}"),
        &tok("ext-alice"),
        &json!({"group_name": "Renamed"}),
    )
    .await
    .ok(StatusCode::OK);
    delete(&server, &format!("{members_path}/ext-carol"), &tok("ext-alice"))
        .await
        .ok(StatusCode::OK);
    put(
        &server,
        &members_path,
        &tok("ext-alice"),
        &json!({"members": {"ext-bob": 1, "ext-dave": 1}}),
    )
    .await
    .ok(StatusCode::OK);
    let want = [
        ("groupCreate", "ext-alice创建了群聊，并邀请ext-bob加入"),
        ("groupJoin", "ext-alice邀请ext-carol加入了群聊"),
        ("groupRename", "ext-alice修改群名称为Renamed"),
        ("groupRemove", "ext-alice将ext-carol移出了群聊"),
        ("groupMembers", "ext-alice更新了群成员"),
    ];
    // In the timeline, as every member's history shows it from their joining on.
    let texts_from = |from: usize| {
        want[from..]
            .iter()
            .map(|(_, t)| t.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(notices(&server, "ext-alice", &uid).await, texts_from(0));
    assert_eq!(notices(&server, "ext-bob", &uid).await, texts_from(0));
    assert_eq!(notices(&server, "ext-dave", &uid).await, texts_from(4));
    // Pushed live to a member, in order, naming the group.
    for (action, text) in want {
        let push = bob.next_of_type("singleChat").await;
        assert_eq!(push["data"]["type"], "systemNotice", "{push}");
        assert_eq!(push["data"]["actionType"], action, "{push}");
        assert_eq!(push["data"]["data"]["data"], text, "{push}");
        assert_eq!(push["data"]["chatType"], "group", "{push}");
        assert_eq!(push["data"]["to_id"], g["id"], "{push}");
    }
    bob.assert_quiet(200).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Creating users by naming them

/// Whether `id` names a user of the default tenant (a uni-app profile lookup by uuid).
async fn exists(server: &TestServer, id: &str) -> bool {
    let (status, body) = server.get(&format!("/api/userinfo/{id}"), None).await;
    match status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => {
            assert_eq!(body["msg"], "fail", "{body}");
            false
        }
        other => panic!("{other}: {body}"),
    }
}

#[actix_web::test]
async fn refused_requests_create_no_users() {
    let (server, _dir) = start_with(|c| c.limits.group_max_members = 5).await;
    // Removing someone from a group that does not exist.
    delete(
        &server,
        "/api/default/groups/group-does-not-exist/members/ghost-50",
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    assert!(!exists(&server, "ghost-50").await);
    // A group over the size limit.
    let ghosts: Vec<String> = (0..8).map(|i| format!("ghost-{i}")).collect();
    let r = post(
        &server,
        "/api/default/groups",
        &tok("ext-alice"),
        &json!({"group_name": "Too big", "group_members": ghosts.iter().map(|g| (g.clone(), json!(1))).collect::<serde_json::Map<_, _>>()}),
    )
    .await;
    assert!(r.missing().contains("at most 5 members"), "{r:?}");
    for g in &ghosts {
        assert!(!exists(&server, g).await, "{g}");
    }
    // A taken group_id.
    let g = create_group(&server, "ext-alice", "Mine", &["ext-bob"]).await;
    let uid = g["uid"].as_str().unwrap().to_owned();
    let taken = post(
        &server,
        "/api/default/groups",
        &tok("ext-alice"),
        &json!({"group_name": "Again", "group_id": uid, "group_members": {"ghost-taken": 1}}),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    assert!(!exists(&server, "ghost-taken").await);
    // A stranger adding someone new, a member replacing the list: refused, nobody created.
    post(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &tok("ext-mallory"),
        &json!({"member_id": "ghost-invited"}),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);
    assert!(!exists(&server, "ghost-invited").await);
    let err = put(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &tok("ext-bob"),
        &json!({"members": {"ghost-replaced": 1}}),
    )
    .await
    .refused(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(err, "only the group owner may set the members");
    assert!(!exists(&server, "ghost-replaced").await);
    // Removing someone who never existed from a real group.
    delete(
        &server,
        &format!("/api/default/groups/{uid}/members/ghost-removed"),
        &tok("ext-alice"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    assert!(!exists(&server, "ghost-removed").await);
    // The owner adding someone new does create them.
    post(
        &server,
        &format!("/api/default/groups/{uid}/members"),
        &tok("ext-alice"),
        &json!({"member_id": "ext-carol"}),
    )
    .await
    .ok(StatusCode::OK);
    assert!(exists(&server, "ext-carol").await);
    server.stop().await;
}

#[actix_web::test]
async fn only_outside_tokens_create_users_within_their_limits() {
    let (server, _dir) = start_with(|c| {
        c.limits.new_users_per_request = 3;
        c.limits.new_users_per_min = 5;
    })
    .await;
    // A Parlor (uni-app) token may name known users only.
    let local = server.register("localuser").await;
    send(&server, "ext-known", "ext-alice", "direct", "hi").await;
    let err = post(
        &server,
        "/api/default/messages",
        &local.token,
        &text_to("ghost-dm", "direct", "hello"),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    assert_eq!(err, "user ghost-dm does not exist");
    assert!(!exists(&server, "ghost-dm").await);
    post(
        &server,
        "/api/default/messages",
        &local.token,
        &text_to("ext-known", "direct", "hello"),
    )
    .await
    .ok(StatusCode::OK);
    // Over the per-request cap: refused, nobody created.
    let four = json!({"group_name": "Four", "group_members": {"n1": 1, "n2": 1, "n3": 1, "n4": 1}});
    let r = post(&server, "/api/default/groups", &tok("ext-alice"), &four).await;
    assert!(
        r.missing().contains("at most 3 may be created by one request"),
        "{r:?}"
    );
    for n in ["n1", "n2", "n3", "n4"] {
        assert!(!exists(&server, n).await, "{n}");
    }
    // Within it: created. Known members cost nothing.
    create_group(&server, "ext-alice", "Three", &["n1", "n2", "n3", "ext-known"]).await;
    // Past the caller's rate: 429 with Retry-After; another caller is not affected.
    send(&server, "ext-alice", "n4", "direct", "fourth").await;
    send(&server, "ext-alice", "n5", "direct", "fifth").await;
    let r = post(
        &server,
        "/api/default/messages",
        &tok("ext-alice"),
        &text_to("n6", "direct", "sixth"),
    )
    .await;
    assert!(r.retry_after.is_some(), "{r:?}");
    let err = r.refused(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        err.starts_with("too many new users created by this caller"),
        "{err}"
    );
    assert!(!exists(&server, "n6").await);
    send(&server, "ext-bob", "n6", "direct", "from bob").await;
    assert!(exists(&server, "n6").await);
    server.stop().await;
}
