//! The chat-room face (`shared/seeds/003_*`): registration and login (JSON bodies, every
//! validation failure), profiles, contacts and bans, against a real server over real HTTP.
//! Success is `{"success":true,"message":...}` with the document's payload fields, failure
//! `{"success":false,"message":"reason"}` with the right status. Contacts and bans are the
//! same relation as the uni-app face's friends and blacklist: the tests check that a change
//! made on one face shows on the other, and that a ban refuses the banned user's messages.

use crate::common;
use common::assert_room_refused as assert_refused;

use common::{assert_fail, assert_ok, TestServer, User};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

type Got = (StatusCode, Value);

/// Asserts the chat-room success envelope and returns the body.
#[track_caller]
fn assert_success(got: &Got) -> Value {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["success"], true, "{}", got.1);
    assert!(got.1["message"].is_string(), "{}", got.1);
    got.1.clone()
}

/// A DELETE as `token` (or without one).
async fn delete(server: &TestServer, path: &str, token: Option<&str>) -> Got {
    let mut req = server.http.delete(server.url(path));
    if let Some(t) = token {
        req = req.header("token", t);
    }
    TestServer::finish(req.send().await.unwrap()).await
}

/// `POST /user/register` with a JSON body.
async fn register(server: &TestServer, body: Value) -> Got {
    server.post_json("/user/register", None, &body).await
}

/// Registers `username` on the chat-room face and logs in; the token is the login's.
async fn chatroom_user(server: &TestServer, username: &str, nickname: &str) -> User {
    let got = register(
        server,
        json!({"username": username, "password": "jhh72811", "nickname": nickname,
               "email": format!("{username}@example.com")}),
    )
    .await;
    let id = assert_success(&got)["id"].as_u64().expect("an id");
    let got = server
        .post_json(
            "/user/login",
            None,
            &json!({"username": username, "password": "jhh72811"}),
        )
        .await;
    let body = assert_success(&got);
    assert_eq!(body["id"], id);
    User {
        id,
        uuid: String::new(),
        username: username.to_owned(),
        token: body["token"].as_str().expect("a token").to_owned(),
    }
}

/// `POST /contacts/add` of `id` as `user`.
async fn add_contact(server: &TestServer, user: &User, id: Value) -> Got {
    server
        .post_json("/contacts/add", Some(&user.token), &json!({ "id": id }))
        .await
}

/// The ids in `user`'s `/contacts/list`.
async fn contact_ids(server: &TestServer, user: &User) -> Vec<u64> {
    let body = assert_success(&server.get("/contacts/list", Some(&user.token)).await);
    let mut ids: Vec<u64> = body["contacts"]
        .as_array()
        .expect("a contact list")
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The friend ids in `user`'s uni-app `goodfriendlist`.
async fn friend_ids(server: &TestServer, user: &User) -> Vec<u64> {
    let data = assert_ok(&server.get("/api/chat/goodfriendlist", Some(&user.token)).await);
    let mut ids: Vec<u64> = data["rows"]["newList"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["list"].as_array().unwrap().iter())
        .map(|e| e["friend_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// `POST /user/ban/{id}` as `user`.
async fn ban(server: &TestServer, user: &User, id: u64) -> Got {
    server
        .post_json(&format!("/user/ban/{id}"), Some(&user.token), &json!({}))
        .await
}

/// A uni-app REST send from `from` to `to`.
async fn send(server: &TestServer, from: &User, to: &User, text: &str) -> Got {
    let to = to.id.to_string();
    server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&from.token),
            &[("sendto_id", to.as_str()), ("type", "text"), ("data", text)],
        )
        .await
}

/// uni-app `ismygoodfriend/:id` as `me`.
async fn is_my_friend(server: &TestServer, me: &User, other: u64) -> Value {
    assert_ok(
        &server
            .post_form(&format!("/api/chat/ismygoodfriend/{other}"), Some(&me.token), &[])
            .await,
    )
}

// ---------------------------------------------------------------------------------------
// Accounts

#[actix_web::test]
async fn register_and_login_with_every_refusal() {
    let (server, _dir) = TestServer::start().await;
    let got = register(
        &server,
        json!({"username": "zhuaiqiqi", "password": "jhh72811", "nickname": "拽奇奇",
               "email": "2474510393@qq.com"}),
    )
    .await;
    let body = assert_success(&got);
    assert_eq!(body["message"], "注册成功！");
    let id = body["id"].as_u64().expect("the new id");
    // Email is optional; Chinese usernames are accepted.
    let got = register(
        &server,
        json!({"username": "侯强", "password": "secret1", "nickname": "侯"}),
    )
    .await;
    assert_success(&got);

    for (body, field) in [
        (json!({"username": "nonick", "password": "secret1"}), "nickname"),
        (
            json!({"username": "emptynick", "password": "secret1", "nickname": ""}),
            "nickname",
        ),
        (json!({"password": "secret1", "nickname": "n"}), "username"),
        (json!({"username": "nopass", "nickname": "n"}), "password"),
        (
            json!({"username": "shortpw", "password": "12345", "nickname": "n"}),
            "password",
        ),
        (
            json!({"username": "bad mail", "password": "secret1", "nickname": "n"}),
            "username",
        ),
        (
            json!({"username": "badmail", "password": "secret1", "nickname": "n", "email": "nope"}),
            "email",
        ),
        (
            json!({"username": 12, "password": "secret1", "nickname": {"a": 1}}),
            "nickname",
        ),
    ] {
        let reason = assert_refused(&register(&server, body.clone()).await, StatusCode::BAD_REQUEST);
        assert!(reason.contains(field), "{body}: {reason}");
    }
    // A malformed JSON body.
    let resp = server
        .http
        .post(server.url("/user/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_refused(&(status, body), StatusCode::BAD_REQUEST);
    // Taken.
    let got = register(
        &server,
        json!({"username": "zhuaiqiqi", "password": "other12", "nickname": "again"}),
    )
    .await;
    assert_refused(&got, StatusCode::CONFLICT);

    // Login.
    let got = server
        .post_json(
            "/user/login",
            None,
            &json!({"username": "zhuaiqiqi", "password": "jhh72811"}),
        )
        .await;
    let body = assert_success(&got);
    assert_eq!(body["message"], "登录成功");
    assert_eq!(body["id"], id);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.split('.').count() == 3, "{token}");
    for body in [
        json!({"username": "zhuaiqiqi", "password": "wrong99"}),
        json!({"username": "nobody", "password": "jhh72811"}),
    ] {
        let got = server.post_json("/user/login", None, &body).await;
        assert_refused(&got, StatusCode::UNAUTHORIZED);
    }
    let got = server
        .post_json("/user/login", None, &json!({"username": "zhuaiqiqi"}))
        .await;
    assert_refused(&got, StatusCode::BAD_REQUEST);

    // The token works on both faces, and a uni-app token works here.
    let me = assert_success(&server.get("/user/profile", Some(&token)).await);
    assert_eq!(me["user"]["id"], id);
    let list = server.get("/api/chat/goodfriendlist", Some(&token)).await;
    assert_eq!(assert_ok(&list)["count"], 0);
    let uni = server.register("uniuser").await;
    let me = assert_success(&server.get("/user/profile", Some(&uni.token)).await);
    assert_eq!(me["user"]["username"], "uniuser");
    // One account: each face logs in the other's user.
    let got = server
        .post_json(
            "/user/login",
            None,
            &json!({"username": "uniuser", "password": "secret1"}),
        )
        .await;
    assert_eq!(assert_success(&got)["id"], uni.id);
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "zhuaiqiqi"), ("password", "jhh72811")],
        )
        .await;
    let data = assert_ok(&got);
    assert_eq!((&data["id"], &data["nickname"]), (&json!(id), &json!("拽奇奇")));
    server.stop().await;
}

#[actix_web::test]
async fn profiles_by_token_and_by_id() {
    let (server, _dir) = TestServer::start().await;
    let a = chatroom_user(&server, "jianghaohuan", "江").await;
    let b = chatroom_user(&server, "zhuaiqiqi", "拽奇奇").await;

    let me = assert_success(&server.get("/user/profile", Some(&a.token)).await);
    let u = &me["user"];
    assert_eq!(u["userId"], a.id);
    assert_eq!(u["id"], a.id);
    assert_eq!(u["username"], "jianghaohuan");
    assert_eq!(u["nickname"], "江");
    assert_eq!(u["email"], "jianghaohuan@example.com");
    assert_eq!(u["authority"], "user");

    let other = assert_success(
        &server
            .get(&format!("/user/profile/{}", b.id), Some(&a.token))
            .await,
    );
    assert_eq!(other["user"]["userId"], b.id);
    assert_eq!(other["user"]["nickname"], "拽奇奇");
    assert_eq!(other["user"]["username"], "zhuaiqiqi");

    assert_refused(
        &server.get("/user/profile/99999", Some(&a.token)).await,
        StatusCode::NOT_FOUND,
    );
    assert_refused(
        &server.get("/user/profile/abc", Some(&a.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(&server.get("/user/profile", None).await, StatusCode::UNAUTHORIZED);
    assert_refused(
        &server.get(&format!("/user/profile/{}", b.id), None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_refused(
        &server.get("/user/profile", Some("not.a.token")).await,
        StatusCode::UNAUTHORIZED,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Contacts

#[actix_web::test]
async fn contacts_add_list_and_remove() {
    let (server, _dir) = TestServer::start().await;
    let a = chatroom_user(&server, "user_a", "A").await;
    let b = chatroom_user(&server, "user_b", "B").await;
    let c = chatroom_user(&server, "user_c", "C").await;
    assert_eq!(contact_ids(&server, &a).await, Vec::<u64>::new());

    let got = add_contact(&server, &a, json!(b.id)).await;
    assert_eq!(assert_success(&got)["message"], "添加联系人成功");
    // A string id is read too.
    assert_success(&add_contact(&server, &a, json!(c.id.to_string())).await);
    assert_eq!(contact_ids(&server, &a).await, vec![b.id, c.id]);
    // Contacts are mutual.
    assert_eq!(contact_ids(&server, &b).await, vec![a.id]);
    assert_eq!(contact_ids(&server, &c).await, vec![a.id]);
    let list = assert_success(&server.get("/contacts/list", Some(&b.token)).await);
    assert_eq!(
        list["contacts"],
        json!([{"id": a.id, "username": "user_a", "nickname": "A"}])
    );

    // Refusals.
    assert_refused(&add_contact(&server, &a, json!(b.id)).await, StatusCode::CONFLICT);
    assert_refused(&add_contact(&server, &b, json!(a.id)).await, StatusCode::CONFLICT);
    assert_refused(
        &add_contact(&server, &a, json!(a.id)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(
        &add_contact(&server, &a, json!(99_999)).await,
        StatusCode::NOT_FOUND,
    );
    assert_refused(
        &add_contact(&server, &a, json!("abc")).await,
        StatusCode::BAD_REQUEST,
    );
    let got = server
        .post_json("/contacts/add", Some(&a.token), &json!({}))
        .await;
    assert_refused(&got, StatusCode::BAD_REQUEST);

    // Remove, from the other side of the pair: both lose it.
    let got = delete(&server, &format!("/contacts/remove/{}", a.id), Some(&b.token)).await;
    assert_eq!(assert_success(&got)["message"], "删除联系人成功");
    assert_eq!(contact_ids(&server, &a).await, vec![c.id]);
    assert_eq!(contact_ids(&server, &b).await, Vec::<u64>::new());
    for (path, status) in [
        (format!("/contacts/remove/{}", a.id), StatusCode::NOT_FOUND),
        ("/contacts/remove/99999".to_owned(), StatusCode::NOT_FOUND),
        ("/contacts/remove/abc".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        assert_refused(&delete(&server, &path, Some(&b.token)).await, status);
    }
    // A user who banned me cannot be added.
    assert_success(&ban(&server, &c, b.id).await);
    let reason = assert_refused(
        &add_contact(&server, &b, json!(c.id)).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("blocked"), "{reason}");
    assert_eq!(contact_ids(&server, &b).await, Vec::<u64>::new());
    // Added again after removal.
    assert_success(&add_contact(&server, &b, json!(a.id)).await);
    assert_eq!(contact_ids(&server, &a).await, vec![b.id, c.id]);
    server.stop().await;
}

#[actix_web::test]
async fn every_authenticated_route_refuses_no_token() {
    let (server, _dir) = TestServer::start().await;
    let a = chatroom_user(&server, "user_a", "A").await;
    for path in ["/user/profile", "/user/profile/1", "/contacts/list"] {
        assert_refused(&server.get(path, None).await, StatusCode::UNAUTHORIZED);
    }
    for path in ["/contacts/add", "/user/ban/1"] {
        let got = server.post_json(path, None, &json!({"id": a.id})).await;
        assert_refused(&got, StatusCode::UNAUTHORIZED);
    }
    for path in ["/contacts/remove/1", "/user/unban/1"] {
        assert_refused(&delete(&server, path, None).await, StatusCode::UNAUTHORIZED);
    }
    // A malformed token is no better.
    let got = server
        .post_json("/contacts/add", Some("garbage"), &json!({"id": a.id}))
        .await;
    assert_refused(&got, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Bans

#[actix_web::test]
async fn a_ban_refuses_the_banned_users_messages_until_unban() {
    let (server, _dir) = TestServer::start().await;
    let banner = server.register_open("banner").await;
    let banned = server.register("banned").await;
    let other = server.register("other").await;
    assert_ok(&send(&server, &banned, &banner, "before").await);

    let got = ban(&server, &banner, banned.id).await;
    assert_eq!(assert_success(&got)["message"], "屏蔽成功");
    assert_refused(&ban(&server, &banner, banned.id).await, StatusCode::CONFLICT);
    let got = send(&server, &banned, &banner, "after").await;
    assert_eq!(
        assert_fail(&got, StatusCode::FORBIDDEN),
        "the recipient has blocked you"
    );
    // Over the WebSocket too.
    let mut ws = server.ws(&banned.token).await;
    ws.send_msg("b1", banner.id, "ws").await;
    let err = ws.next_of_type("error").await;
    assert_eq!((&err["code"], &err["cid"]), (&json!("forbidden"), &json!("b1")));
    // Only the banned user: others still reach the banner, and the banner reaches them.
    assert_ok(&send(&server, &other, &banner, "hello").await);
    server.open_inbox(&banned).await;
    assert_ok(&send(&server, &banner, &banned, "one way").await);
    // Ban refusals.
    assert_refused(&ban(&server, &banner, banner.id).await, StatusCode::BAD_REQUEST);
    assert_refused(&ban(&server, &banner, 99_999).await, StatusCode::NOT_FOUND);
    let got = server
        .post_json("/user/ban/abc", Some(&banner.token), &json!({}))
        .await;
    assert_refused(&got, StatusCode::BAD_REQUEST);

    // Unban.
    let got = delete(
        &server,
        &format!("/user/unban/{}", banned.id),
        Some(&banner.token),
    )
    .await;
    assert_eq!(assert_success(&got)["message"], "移除屏蔽成功");
    assert_ok(&send(&server, &banned, &banner, "again").await);
    let got = delete(
        &server,
        &format!("/user/unban/{}", banned.id),
        Some(&banner.token),
    )
    .await;
    assert_refused(&got, StatusCode::NOT_FOUND);
    let got = delete(&server, &format!("/user/unban/{}", other.id), Some(&banner.token)).await;
    assert_refused(&got, StatusCode::NOT_FOUND);
    let got = delete(&server, "/user/unban/99999", Some(&banner.token)).await;
    assert_refused(&got, StatusCode::NOT_FOUND);
    let got = delete(&server, "/user/unban/abc", Some(&banner.token)).await;
    assert_refused(&got, StatusCode::BAD_REQUEST);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// One relation across the faces

#[actix_web::test]
async fn a_contact_is_a_uni_app_friend_and_a_friend_is_a_contact() {
    let (server, _dir) = TestServer::start().await;
    let uni = server.register("uniuser").await;
    let room = chatroom_user(&server, "roomuser", "聊天室").await;

    // Chat-room contact → uni-app friends on both sides.
    assert_success(&add_contact(&server, &room, json!(uni.id)).await);
    assert_eq!(friend_ids(&server, &uni).await, vec![room.id]);
    assert_eq!(friend_ids(&server, &room).await, vec![uni.id]);
    assert_eq!(is_my_friend(&server, &uni, room.id).await["friend_id"], room.id);
    // Friends may write under the default friends-only settings.
    assert_ok(&send(&server, &room, &uni, "from the chat room").await);
    // uni-app's applyfriend sees the friendship.
    let room_id = room.id.to_string();
    let got = server
        .post_form(
            "/api/chat/applyfriend",
            Some(&uni.token),
            &[("friend_id", room_id.as_str())],
        )
        .await;
    assert_eq!(assert_fail(&got, StatusCode::CONFLICT), "you are already friends");

    // uni-app application + agreement → contacts on both sides.
    let c = server.register("carol").await;
    let d = server.register("dave").await;
    let d_id = d.id.to_string();
    assert_ok(
        &server
            .post_form(
                "/api/chat/applyfriend",
                Some(&c.token),
                &[("friend_id", d_id.as_str())],
            )
            .await,
    );
    let list = assert_ok(&server.get("/api/chat/listapplyfriend", Some(&d.token)).await);
    let id = list["alldata"][0]["id"].as_u64().unwrap();
    assert_ok(
        &server
            .post_form(
                &format!("/api/chat/handleapply/{id}"),
                Some(&d.token),
                &[("status", "agree")],
            )
            .await,
    );
    assert_eq!(contact_ids(&server, &c).await, vec![d.id]);
    assert_eq!(contact_ids(&server, &d).await, vec![c.id]);
    assert_refused(&add_contact(&server, &c, json!(d.id)).await, StatusCode::CONFLICT);

    // Removing on the chat-room face ends the uni-app friendship.
    assert_success(&delete(&server, &format!("/contacts/remove/{}", d.id), Some(&c.token)).await);
    assert_eq!(is_my_friend(&server, &c, d.id).await, false);
    assert_eq!(is_my_friend(&server, &d, c.id).await, false);
    // Deleting on the uni-app face ends the contact.
    let path = format!("/api/chat/deletegoodfriend/{}", room.id);
    assert_ok(&server.post_form(&path, Some(&uni.token), &[]).await);
    assert_eq!(contact_ids(&server, &room).await, Vec::<u64>::new());
    assert_eq!(contact_ids(&server, &uni).await, Vec::<u64>::new());
    let got = delete(
        &server,
        &format!("/contacts/remove/{}", uni.id),
        Some(&room.token),
    )
    .await;
    assert_refused(&got, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn a_chat_room_ban_is_the_uni_app_blacklist() {
    let (server, _dir) = TestServer::start().await;
    let a = chatroom_user(&server, "user_a", "A").await;
    let b = chatroom_user(&server, "user_b", "B").await;
    assert_success(&add_contact(&server, &a, json!(b.id)).await);
    assert_eq!(is_my_friend(&server, &a, b.id).await["isblack"], 0);

    // A chat-room ban shows as `isblack` 1 for the banner only.
    assert_success(&ban(&server, &a, b.id).await);
    assert_eq!(is_my_friend(&server, &a, b.id).await["isblack"], 1);
    assert_eq!(is_my_friend(&server, &b, a.id).await["isblack"], 0);
    let info = server
        .get(&format!("/api/chat/getgoodfriendinfo/{}", b.id), Some(&a.token))
        .await;
    assert_eq!(assert_ok(&info)["isblack"], 1);
    // A ban does not end the contact, but the banned contact cannot write.
    assert_eq!(contact_ids(&server, &a).await, vec![b.id]);
    assert_eq!(
        assert_fail(&send(&server, &b, &a, "hi").await, StatusCode::FORBIDDEN),
        "the recipient has blocked you"
    );

    // Taking b off the uni-app blacklist is an unban; the chat-room unban then finds none.
    let black = format!("/api/chat/setblackgoodfriend/{}", b.id);
    assert_ok(&server.post_form(&black, Some(&a.token), &[]).await);
    assert_eq!(is_my_friend(&server, &a, b.id).await["isblack"], 0);
    assert_ok(&send(&server, &b, &a, "hi").await);
    let got = delete(&server, &format!("/user/unban/{}", b.id), Some(&a.token)).await;
    assert_refused(&got, StatusCode::NOT_FOUND);

    // And a uni-app blacklisting is a ban the chat-room face can lift.
    assert_ok(
        &server
            .post_form(&black, Some(&a.token), &[("isblack", "1")])
            .await,
    );
    assert_refused(&ban(&server, &a, b.id).await, StatusCode::CONFLICT);
    assert_success(&delete(&server, &format!("/user/unban/{}", b.id), Some(&a.token)).await);
    assert_eq!(is_my_friend(&server, &a, b.id).await["isblack"], 0);
    assert_ok(&send(&server, &b, &a, "free").await);
    server.stop().await;
}

#[actix_web::test]
async fn not_found_is_the_documents_error_shape_with_the_path() {
    let (server, _dir) = TestServer::start().await;
    let ann = chatroom_user(&server, "ann_404", "Ann").await;
    // A route that does not find its record.
    let got = delete(&server, "/user/unban/424242", Some(&ann.token)).await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let body = got.1.as_object().expect("an object");
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message", "path", "status", "timestamp"]);
    assert_eq!(body["path"], "/user/unban/424242");
    assert_eq!(body["status"], 404);
    assert_eq!(body["error"], "Not Found");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    // Unknown paths under the face's prefixes answer the same way; others keep the
    // server's own envelope.
    for path in [
        "/user/nothing-here",
        "/contacts/x/y",
        "/conversation/none",
        "/message/nope",
    ] {
        let (status, body) = server.get(path, Some(&ann.token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["path"], path, "{body}");
        assert_eq!(body["message"], "no such route", "{body}");
    }
    let (status, body) = server.get("/elsewhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"msg": "fail", "data": "no such route"}));
    // Other refusals keep the face's envelope.
    let got = delete(&server, "/user/unban/424242", None).await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    assert_eq!(got.1["success"], false, "{}", got.1);
    server.stop().await;
}
