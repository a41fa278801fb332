//! Accounts after their creation: a user changes the password (`POST
//! /api/chat/updatePassword`: the caller's token stays, the user's other tokens are refused
//! and their sockets closed), and the operator lists, disables, enables, kicks and deletes
//! users on the admin face (`/admin/user/list`, `disable`, `enable`, `kick`, `delete`).
//! Each refusal of each route; revoked tokens refused on the uni-app, chat-room and Chat21
//! faces and on the WebSocket, open sockets closed with 1008; a deletion seen from the other
//! users' side (friends, groups, history with the messages kept or erased) and in an
//! export that imports into a working copy; and the state after a restart.

use crate::admin::{
    admin, admin_raw, create_group, direct_key, fresh_headers, login, ok, refused, start, start_in,
};
use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{
    assert_fail, assert_ok, assert_room_refused, assert_ws_unauthorized, user_of, TestServer, User,
};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

/// The token secret of the servers that take outside (Chat21) tokens here.
const JWT_SECRET: &str = "lifecycle-test-secret";

/// Signs outside tokens with [`JWT_SECRET`].
fn outside_token(sub: &str, iat: Option<u64>) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims =
        json!({"sub": sub, "app_id": "default", "exp": now + 3600, "jti": uuid::Uuid::new_v4().to_string()});
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Logs `user` in again (password `password`) and returns the new login.
async fn relogin(server: &TestServer, username: &str, password: &str) -> User {
    let got = login(server, username, password).await;
    assert_ok(&got);
    user_of(&got.1)
}

/// `POST /api/chat/updatePassword` with a form.
async fn change(server: &TestServer, token: Option<&str>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    server.post_form("/api/chat/updatePassword", token, form).await
}

/// An admin call on user `who` with `extra` fields; returns the answer.
async fn on_user(server: &TestServer, path: &str, who: &User, extra: Value) -> Value {
    let mut body = json!({"userId": who.uuid});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    admin(server, path, &body).await
}

/// A Chat21 request with `token` in `Authorization`: the status and body text.
async fn chat21(server: &TestServer, path: &str, token: &str) -> (StatusCode, String) {
    let resp = server
        .http
        .get(server.url(path))
        .header("Authorization", token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Asserts that `token` of `user` is refused with 401 saying `reason` on the uni-app,
/// chat-room and Chat21 faces and on the WebSocket.
async fn assert_refused_everywhere(server: &TestServer, user: &User, token: &str, reason: &str) {
    let uni = server.get("/api/chat/goodfriendlist/1", Some(token)).await;
    let text = assert_fail(&uni, StatusCode::UNAUTHORIZED);
    assert!(text.contains(reason), "uni-app: {text}");
    let room = server.get("/user/profile", Some(token)).await;
    let text = assert_room_refused(&room, StatusCode::UNAUTHORIZED);
    assert!(text.contains(reason), "chat room: {text}");
    let (status, text) = chat21(
        server,
        &format!("/api/default/{}/conversations", user.uuid),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "Chat21: {text}");
    assert!(text.contains(reason), "Chat21: {text}");
    assert_ws_unauthorized(format!("ws://{}/ws?token={token}", server.addr), reason).await;
}

/// Asserts that `token` works on every face.
async fn assert_works_everywhere(server: &TestServer, user: &User, token: &str) {
    assert_ok(&server.get("/api/chat/goodfriendlist/1", Some(token)).await);
    let (status, body) = server.get("/user/profile", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, text) = chat21(
        server,
        &format!("/api/default/{}/conversations", user.uuid),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    server.ws(token).await.close().await;
}

/// The friend ids in `user`'s friend list.
async fn friend_ids(server: &TestServer, user: &User) -> Vec<u64> {
    let data = assert_ok(&server.get("/api/chat/goodfriendlist/1", Some(&user.token)).await);
    data["rows"]["newList"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["list"].as_array().unwrap().clone())
        .map(|f| f["friend_id"].as_u64().unwrap())
        .collect()
}

/// The member ids of group `gid` as `user` sees them.
async fn member_ids(server: &TestServer, user: &User, gid: u64) -> Vec<u64> {
    let data = assert_ok(
        &server
            .get(&format!("/api/chat/groupinfo/{gid}"), Some(&user.token))
            .await,
    );
    let mut ids: Vec<u64> = data["group_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The messages of conversation `key` as `user`'s history shows them, oldest first.
async fn history(server: &TestServer, user: &User, key: &str) -> Vec<Value> {
    let path = format!("/api/chat/history/conversation/{key}?limit=100");
    let data = assert_ok(&server.get(&path, Some(&user.token)).await);
    let mut list = data["list"].as_array().unwrap().clone();
    list.reverse();
    list
}

/// Sends a text message to group `gid` over REST.
async fn send_group(server: &TestServer, from: &User, gid: u64, text: &str) {
    let gid = gid.to_string();
    let form = [
        ("sendto_id", gid.as_str()),
        ("chatType", "group"),
        ("type", "text"),
        ("data", text),
    ];
    assert_ok(
        &server
            .post_form("/api/chat/socket/sendmessage", Some(&from.token), &form)
            .await,
    );
}

/// The ids of the users of `/admin/user/list` with `body`, and its total.
async fn listed(server: &TestServer, body: Value) -> (u64, Vec<u64>) {
    let result = ok(&admin(server, "/admin/user/list", &body).await);
    let ids = result["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    (result["total"].as_u64().unwrap(), ids)
}

/// The refusals every route naming a user shares: no signature (239), no `userId`, a
/// `userId` of the wrong type (251), an unknown user or one of another tenant (253).
async fn assert_user_refusals(server: &TestServer, path: &str, who: &User, extra: Value) {
    let with = |mut body: Value| {
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let unsigned = admin_raw(
        server,
        path,
        &[],
        Some(&with(json!({"userId": who.uuid})).to_string()),
    )
    .await;
    refused(&unsigned, 239);
    refused(&admin(server, path, &with(json!({}))).await, 251);
    refused(
        &admin(server, path, &with(json!({"userId": {"id": 1}}))).await,
        251,
    );
    refused(
        &admin(server, path, &with(json!({"userId": "no-such-user"}))).await,
        253,
    );
    let elsewhere = with(json!({"userId": who.uuid, "appId": "acme"}));
    refused(&admin(server, path, &elsewhere).await, 253);
    refused(
        &admin(
            server,
            path,
            &with(json!({"userId": who.uuid, "appId": "bad app"})),
        )
        .await,
        251,
    );
}

// ---------------------------------------------------------------------------------------
// Password change

#[actix_web::test]
async fn a_password_change_keeps_this_token_and_revokes_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register("alice").await;
    let other = relogin(&server, "alice", "secret1").await;
    let mut this_ws = server.ws(&alice.token).await;
    let mut other_ws = server.ws(&other.token).await;

    let got = change(
        &server,
        Some(&alice.token),
        &[("oldPassword", "secret1"), ("newPassword", "secret9")],
    )
    .await;
    assert_ok(&got);
    assert_eq!(
        other_ws.closed().await,
        Some(1008),
        "the other token's socket is closed"
    );
    this_ws.sync().await;
    this_ws.close().await;

    assert_works_everywhere(&server, &alice, &alice.token).await;
    assert_refused_everywhere(&server, &alice, &other.token, "token was revoked").await;
    assert_fail(
        &login(&server, "alice", "secret1").await,
        StatusCode::UNAUTHORIZED,
    );
    let again = relogin(&server, "alice", "secret9").await;
    assert_works_everywhere(&server, &again, &again.token).await;

    // A JSON body works too; the kept token may change the password again, which revokes
    // the login just made.
    let got = server
        .post_json(
            "/api/chat/updatePassword",
            Some(&alice.token),
            &json!({"oldPassword": "secret9", "newPassword": "secret8"}),
        )
        .await;
    assert_ok(&got);
    assert_refused_everywhere(&server, &again, &again.token, "token was revoked").await;

    // After a restart: the same tokens pass and fail, the new password holds.
    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_works_everywhere(&server, &alice, &alice.token).await;
    assert_refused_everywhere(&server, &alice, &other.token, "token was revoked").await;
    assert_fail(
        &login(&server, "alice", "secret9").await,
        StatusCode::UNAUTHORIZED,
    );
    relogin(&server, "alice", "secret8").await;
    server.stop().await;
}

#[actix_web::test]
async fn a_password_change_refuses_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.login.per_account_per_min = 3).await;
    let alice = server.register("alice").await;
    let t = Some(alice.token.as_str());

    let no_token = change(
        &server,
        None,
        &[("oldPassword", "secret1"), ("newPassword", "secret2")],
    )
    .await;
    assert!(assert_fail(&no_token, StatusCode::UNAUTHORIZED).contains("token"));
    let missing_old = change(&server, t, &[("newPassword", "secret2")]).await;
    assert!(assert_fail(&missing_old, StatusCode::BAD_REQUEST).contains("oldPassword"));
    let empty_old = change(&server, t, &[("oldPassword", ""), ("newPassword", "secret2")]).await;
    assert!(assert_fail(&empty_old, StatusCode::BAD_REQUEST).contains("oldPassword"));
    let missing_new = change(&server, t, &[("oldPassword", "secret1")]).await;
    assert!(assert_fail(&missing_new, StatusCode::BAD_REQUEST).contains("newPassword"));
    let wrong_type = server
        .post_json(
            "/api/chat/updatePassword",
            t,
            &json!({"oldPassword": "secret1", "newPassword": ["secret2"]}),
        )
        .await;
    assert!(assert_fail(&wrong_type, StatusCode::BAD_REQUEST).contains("newPassword must be a string"));
    for weak in ["12345", &"x".repeat(21)] {
        let got = change(&server, t, &[("oldPassword", "secret1"), ("newPassword", weak)]).await;
        assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("6 to 20"));
    }

    // A wrong old password is refused and counts like a failed login: the account's
    // throttle (3 here) then refuses with Retry-After, the right password included.
    for _ in 0..3 {
        let got = change(
            &server,
            t,
            &[("oldPassword", "wrong-1"), ("newPassword", "secret2")],
        )
        .await;
        assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("old password is wrong"));
    }
    let got = change(
        &server,
        t,
        &[("oldPassword", "secret1"), ("newPassword", "secret2")],
    )
    .await;
    assert_fail(&got, StatusCode::TOO_MANY_REQUESTS);
    assert_fail(
        &login(&server, "alice", "secret1").await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    // Nothing changed: the token still works.
    assert_ok(&server.get("/api/chat/goodfriendlist/1", t).await);

    // A visitor has no password to change.
    let visitor = common::register_visitor(&server).await;
    let got = change(
        &server,
        Some(&visitor.token),
        &[("oldPassword", "secret1"), ("newPassword", "secret2")],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("no password"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The operator's routes

#[actix_web::test]
async fn the_user_list_pages_filters_and_keeps_tenants_apart() {
    let (server, _dir) = start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    server.register_in("acme", "dave_acme").await;
    assert_ok(
        &server
            .post_form(
                "/api/chat/updateUserinfo",
                Some(&carol.token),
                &[("fieldname", "nickname"), ("fieldValue", "Bobbie")],
            )
            .await,
    );

    let result = ok(&admin(&server, "/admin/user/list", &json!({})).await);
    assert_eq!(result["total"], 3, "{result}");
    let first = &result["users"][0];
    assert_eq!(first["id"], alice.id);
    assert_eq!(first["userId"], alice.uuid);
    assert_eq!(first["username"], "alice");
    assert_eq!(first["role"], "user");
    assert_eq!(first["disabled"], false);
    assert!(first["createTime"].as_u64().is_some(), "{first}");

    assert_eq!(
        listed(&server, json!({"offset": 1, "count": 1})).await,
        (3, vec![bob.id])
    );
    assert_eq!(listed(&server, json!({"offset": 5})).await, (3, vec![]));
    // The keyword matches usernames and nicknames, ignoring case.
    assert_eq!(
        listed(&server, json!({"keyword": "BOB"})).await,
        (2, vec![bob.id, carol.id])
    );
    assert_eq!(
        listed(&server, json!({"keyword": "bob", "offset": 1, "count": 5})).await,
        (2, vec![carol.id])
    );
    let (total, ids) = listed(&server, json!({"appId": "acme"})).await;
    assert_eq!((total, ids.len()), (1, 1));
    assert_eq!(listed(&server, json!({"appId": "nobody"})).await, (0, vec![]));

    let unsigned = admin_raw(&server, "/admin/user/list", &[], Some("{}")).await;
    refused(&unsigned, 239);
    for bad in [
        json!({"count": 0}),
        json!({"count": 1001}),
        json!({"count": "many"}),
        json!({"offset": -1}),
        json!({"offset": true}),
        json!({"keyword": ""}),
        json!({"keyword": "k".repeat(51)}),
        json!({"keyword": ["a"]}),
        json!({"appId": "bad app"}),
    ] {
        refused(&admin(&server, "/admin/user/list", &bad).await, 251);
    }
    let not_json = admin_raw(&server, "/admin/user/list", &fresh_headers(), Some("[1]")).await;
    refused(&not_json, 251);
    server.stop().await;
}

#[actix_web::test]
async fn a_disabled_user_is_shut_out_at_once_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| c.auth.jwt_secret = JWT_SECRET.into()).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let mut ws = server.ws(&alice.token).await;
    let mut bob_ws = server.ws(&bob.token).await;

    let result = ok(&on_user(&server, "/admin/user/disable", &alice, json!({})).await);
    assert_eq!(
        (result["id"].as_u64(), &result["disabled"]),
        (Some(alice.id), &json!(true))
    );
    assert_eq!(ws.closed().await, Some(1008), "the open socket is closed");
    assert_refused_everywhere(&server, &alice, &alice.token, "this account is disabled").await;
    let got = login(&server, "alice", "secret1").await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("disabled"));
    // Disabling again changes nothing; others are not affected.
    ok(&on_user(&server, "/admin/user/disable", &alice, json!({})).await);
    bob_ws.sync().await;
    assert_works_everywhere(&server, &bob, &bob.token).await;
    let result = ok(&admin(&server, "/admin/user/list", &json!({})).await);
    assert_eq!(result["users"][0]["disabled"], true, "{result}");
    assert_eq!(result["users"][1]["disabled"], false, "{result}");

    // An outside (Chat21) user is shut out too, whatever token the provider issues.
    let ext = outside_token("ext-carol", Some(now_secs()));
    let (status, text) = chat21(&server, "/api/default/ext-carol/conversations", &ext).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    ok(&admin(&server, "/admin/user/disable", &json!({"userId": "ext-carol"})).await);
    let fresh = outside_token("ext-carol", Some(now_secs() + 5));
    let (status, text) = chat21(&server, "/api/default/ext-carol/conversations", &fresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("disabled"), "{text}");

    // The state survives a restart.
    bob_ws.close().await;
    server.stop().await;
    let server = start_in(dir.path(), |c| c.auth.jwt_secret = JWT_SECRET.into()).await;
    assert_refused_everywhere(&server, &alice, &alice.token, "this account is disabled").await;
    assert_fail(&login(&server, "alice", "secret1").await, StatusCode::FORBIDDEN);

    // Enabled: the user logs in again; the tokens from before stay refused.
    let result = ok(&on_user(&server, "/admin/user/enable", &alice, json!({})).await);
    assert_eq!(result["disabled"], false);
    let again = relogin(&server, "alice", "secret1").await;
    assert_works_everywhere(&server, &again, &again.token).await;
    assert_refused_everywhere(&server, &alice, &alice.token, "token was revoked").await;
    ok(&admin(&server, "/admin/user/enable", &json!({"userId": "ext-carol"})).await);
    let fresh = outside_token("ext-carol", Some(now_secs() + 5));
    let (status, text) = chat21(&server, "/api/default/ext-carol/conversations", &fresh).await;
    assert_eq!(status, StatusCode::OK, "{text}");

    for path in ["/admin/user/disable", "/admin/user/enable"] {
        assert_user_refusals(&server, path, &alice, json!({})).await;
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_kick_closes_the_sessions_and_revokes_the_tokens_issued_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |c| c.auth.jwt_secret = JWT_SECRET.into()).await;
    let alice = server.register("alice").await;
    let phone = relogin(&server, "alice", "secret1").await;
    let mut ws1 = server.ws(&alice.token).await;
    let mut ws2 = server.ws(&phone.token).await;

    let result = ok(&on_user(&server, "/admin/user/kick", &alice, json!({})).await);
    assert_eq!(result["userId"], alice.uuid);
    assert_eq!(ws1.closed().await, Some(1008));
    assert_eq!(ws2.closed().await, Some(1008));
    for token in [&alice.token, &phone.token] {
        assert_refused_everywhere(&server, &alice, token, "token was revoked").await;
    }
    // The user logs in again at once.
    let again = relogin(&server, "alice", "secret1").await;
    assert_works_everywhere(&server, &again, &again.token).await;

    // An outside user: the provider's tokens issued before the kick (or without an `iat`)
    // are refused, later ones work.
    let before = outside_token("ext-erin", Some(now_secs() - 1));
    let no_iat = outside_token("ext-erin", None);
    for t in [&before, &no_iat] {
        let (status, text) = chat21(&server, "/api/default/ext-erin/conversations", t).await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let mut ext_ws = server.ws(&before).await;
    ok(&admin(&server, "/admin/user/kick", &json!({"userId": "ext-erin"})).await);
    assert_eq!(ext_ws.closed().await, Some(1008));
    for t in [&before, &no_iat] {
        let (status, text) = chat21(&server, "/api/default/ext-erin/conversations", t).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(text.contains("token was revoked"), "{text}");
    }
    let after = outside_token("ext-erin", Some(now_secs() + 2));
    let (status, text) = chat21(&server, "/api/default/ext-erin/conversations", &after).await;
    assert_eq!(status, StatusCode::OK, "{text}");

    assert_user_refusals(&server, "/admin/user/kick", &alice, json!({})).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Deletion

/// Alice, Bob and Carol; Alice and Bob are friends, and Alice and Carol; Bob owns a group
/// with Alice and Carol, Alice owns one with Carol; Alice has written to Bob and in Bob's
/// group; Dave's application to Alice waits. Returns the users and the two groups.
async fn society(server: &TestServer) -> ([User; 4], u64, u64) {
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave_1").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    server.befriend(&bob, &carol).await;
    let bobs = create_group(server, &bob, &[&alice, &carol]).await;
    let alices = create_group(server, &alice, &[&carol]).await;
    server.send_rest(&alice, &bob, "hello bob").await;
    server.send_rest(&bob, &alice, "hello alice").await;
    send_group(server, &alice, bobs, "hello group").await;
    let alice_id = alice.id.to_string();
    assert_ok(
        &server
            .post_form(
                "/api/chat/applyfriend",
                Some(&dave.token),
                &[("friend_id", &alice_id)],
            )
            .await,
    );
    ([alice, bob, carol, dave], bobs, alices)
}

/// What the others see once Alice is gone, whether her messages were kept or not.
async fn assert_alice_is_gone(server: &TestServer, users: &[User; 4], bobs: u64, alices: u64) {
    let [alice, bob, carol, dave] = users;
    // Dave's application to her went with her: his list of users still answers without her.
    assert_eq!(friend_ids(server, bob).await, vec![carol.id]);
    assert_eq!(friend_ids(server, carol).await, vec![bob.id]);
    assert_eq!(member_ids(server, bob, bobs).await, vec![bob.id, carol.id]);
    // Alice's own group was dissolved.
    let gone = server
        .get(&format!("/api/chat/groupinfo/{alices}"), Some(&carol.token))
        .await;
    assert_fail(&gone, StatusCode::NOT_FOUND);
    let notices: Vec<String> = history(server, carol, &format!("g:{bobs}"))
        .await
        .iter()
        .filter(|m| m["actionType"] == "groupQuit")
        .map(|m| m["data"]["data"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notices, vec!["alice退出了群聊"]);
    // Nothing left of Alice's account: her profile, the list, her name, her tokens.
    let got = server.get(&format!("/api/userinfo/{}", alice.uuid), None).await;
    assert_fail(&got, StatusCode::NOT_FOUND);
    let (total, ids) = listed(server, json!({})).await;
    assert_eq!((total, ids), (3, vec![bob.id, carol.id, dave.id]));
    assert_refused_everywhere(server, alice, &alice.token, "this account was deleted").await;
    assert_fail(&login(server, "alice", "secret1").await, StatusCode::UNAUTHORIZED);
    // Dave's application to her is gone with her; the others' lists still answer.
    let data = assert_ok(&server.get("/api/chat/conversations", Some(&bob.token)).await);
    assert!(data["list"].as_array().is_some(), "{data}");
    let to_alice = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&bob.token),
            &[
                ("sendto_id", &alice.id.to_string()),
                ("type", "text"),
                ("data", "anyone?"),
            ],
        )
        .await;
    assert_fail(&to_alice, StatusCode::NOT_FOUND);
}

/// The export of every tenant from the admin listener.
async fn export(server: &TestServer) -> String {
    let mut req = server.http.post(crate::admin::admin_url(server, "/admin/export"));
    for (name, value) in fresh_headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[actix_web::test]
async fn a_deleted_users_messages_are_kept_and_the_export_imports() {
    let (server, _dir) = start().await;
    let (users, bobs, alices) = society(&server).await;
    let [alice, bob, carol, _] = &users;
    let mut alice_ws = server.ws(&alice.token).await;
    let mut bob_ws = server.ws(&bob.token).await;

    let result = ok(&on_user(
        &server,
        "/admin/user/delete",
        alice,
        json!({"eraseMessages": false}),
    )
    .await);
    assert_eq!(
        (
            &result["groupsLeft"],
            &result["groupsDissolved"],
            &result["messagesErased"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{result}"
    );
    assert_eq!(alice_ws.closed().await, Some(1008));
    bob_ws.sync().await;
    assert_alice_is_gone(&server, &users, bobs, alices).await;
    // Her messages stay in the others' history.
    let direct: Vec<Value> = history(&server, bob, &direct_key(alice, bob)).await;
    let texts: Vec<&Value> = direct.iter().map(|m| &m["data"]).collect();
    assert_eq!(texts, vec![&json!("hello bob"), &json!("hello alice")]);
    let group = history(&server, carol, &format!("g:{bobs}")).await;
    assert!(group.iter().any(|m| m["data"] == "hello group"), "{group:?}");
    // A second delete finds no one; her name is free again.
    refused(
        &on_user(
            &server,
            "/admin/user/delete",
            alice,
            json!({"eraseMessages": false}),
        )
        .await,
        253,
    );
    let new_alice = server.register("alice").await;
    assert_ne!(new_alice.id, alice.id);
    assert_eq!(friend_ids(&server, &new_alice).await, Vec::<u64>::new());

    // The export leaves her out and imports into a copy that shows the same.
    let text = export(&server).await;
    assert!(!text.contains(&alice.uuid), "the deleted user is not exported");
    bob_ws.close().await;
    server.stop().await;
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("export.jsonl");
    std::fs::write(&file, &text).unwrap();
    let db = copy.path().join("parlor.redb");
    let (f, d) = (file.clone(), db.clone());
    tokio::task::spawn_blocking(move || parlor::dump::import(&f, &d))
        .await
        .unwrap()
        .expect("the export imports");
    let copy_server = start_in(copy.path(), |_| {}).await;
    let bob = relogin(&copy_server, "bob_1", "secret1").await;
    let carol = relogin(&copy_server, "carol", "secret1").await;
    assert_eq!(friend_ids(&copy_server, &bob).await, vec![carol.id]);
    assert_eq!(member_ids(&copy_server, &bob, bobs).await, vec![bob.id, carol.id]);
    let direct: Vec<Value> = history(&copy_server, &bob, &direct_key(alice, &bob)).await;
    assert_eq!(direct.len(), 2);
    assert_eq!(direct[0]["data"], "hello bob");
    copy_server.stop().await;
}

#[actix_web::test]
async fn a_deleted_users_messages_can_be_erased() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path(), |_| {}).await;
    let (users, bobs, alices) = society(&server).await;
    let [alice, bob, carol, _] = &users;

    let result = ok(&on_user(
        &server,
        "/admin/user/delete",
        alice,
        json!({"eraseMessages": true}),
    )
    .await);
    assert_eq!(result["messagesErased"], 2, "{result}");
    assert_alice_is_gone(&server, &users, bobs, alices).await;
    let direct = history(&server, bob, &direct_key(alice, bob)).await;
    assert_eq!(direct.len(), 2, "the positions stay: {direct:?}");
    assert_eq!(direct[0]["revoked"], true);
    assert_eq!(direct[0]["actionType"], "erase");
    assert_eq!(direct[0]["data"]["data"], "该消息已被删除");
    assert_eq!(direct[1]["data"], "hello alice", "Bob's own message stays");
    let group = history(&server, carol, &format!("g:{bobs}")).await;
    assert!(
        !group.iter().any(|m| m.to_string().contains("hello group")),
        "{group:?}"
    );

    // After a restart the account stays gone and its token refused.
    server.stop().await;
    let server = start_in(dir.path(), |_| {}).await;
    assert_refused_everywhere(&server, alice, &alice.token, "this account was deleted").await;
    assert_eq!(friend_ids(&server, bob).await, vec![carol.id]);
    let direct = history(&server, bob, &direct_key(alice, bob)).await;
    assert_eq!(direct[0]["actionType"], "erase");

    assert_user_refusals(
        &server,
        "/admin/user/delete",
        bob,
        json!({"eraseMessages": false}),
    )
    .await;
    for bad in [
        json!({"userId": bob.uuid}),
        json!({"userId": bob.uuid, "eraseMessages": "yes"}),
    ] {
        let msg = refused(&admin(&server, "/admin/user/delete", &bad).await, 251);
        assert!(msg.contains("eraseMessages"), "{msg}");
    }
    // Bob was refused every time: still there.
    assert_ok(&server.get("/api/chat/goodfriendlist/1", Some(&bob.token)).await);
    server.stop().await;
}
