//! Conversations end to end against a real server with real HTTP and WebSocket clients:
//! revoking a message (uni-app `POST /api/chat/revokeMessage`, document section 三十二, and
//! the WebSocket `revoke` frame) inside and past the revoke window, by the sender only, for
//! direct and group messages, to recipients online and offline, and the placeholder that
//! history shows instead of the old content; read receipts (WebSocket `read` frames and
//! `POST /api/chat/read`) with the peer's `read` frame, a group's read count and the unread
//! counts; the conversation list `GET /api/chat/conversations` (order, targets, paging,
//! removed members); archive and delete per user through the Chat21 route; the chat-room
//! face's `/conversation/...` and `/message/history/...` routes; and one conversation seen
//! through every face.

use crate::common;
use common::assert_room_refused as assert_refused;

use std::collections::HashSet;
use std::time::Duration;

use common::{assert_fail, assert_ok, user_of, TestServer, User, Ws};
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
    got.1.clone()
}

/// The conversation key of a direct pair.
fn conv(a: &User, b: &User) -> String {
    let (lo, hi) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    format!("d:{lo}:{hi}")
}

/// The placeholder text of a message revoked by `user`.
fn revoked_text(user: &User) -> String {
    format!("{}撤回了一条消息", user.username)
}

/// `POST /api/chat/revokeMessage` as `user` with `form`.
async fn revoke_form(server: &TestServer, user: &User, form: &[(&str, &str)]) -> Got {
    server
        .post_form("/api/chat/revokeMessage", Some(&user.token), form)
        .await
}

/// Revokes message `id` over REST the way the document's client does.
async fn revoke(server: &TestServer, user: &User, id: &str, chat_type: &str, to_id: u64) -> Got {
    let to = to_id.to_string();
    revoke_form(
        server,
        user,
        &[
            ("id", id),
            ("chatType", chat_type),
            ("to_id", &to),
            ("to_name", "whoever"),
            ("create_time", "1756799978402"),
        ],
    )
    .await
}

/// The id of a stored message.
fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("a message id").to_owned()
}

/// A uni-app history page (`kind` single or group, `id` the peer or group), newest first.
async fn history(server: &TestServer, user: &User, kind: &str, id: u64) -> Vec<Value> {
    let got = server
        .get(
            &format!("/api/chat/history/{kind}/{id}?limit=200"),
            Some(&user.token),
        )
        .await;
    assert_ok(&got)["list"]
        .as_array()
        .expect("a history list")
        .clone()
}

/// Asserts that `text` appears nowhere in `values` (messages, frames).
#[track_caller]
fn assert_absent(values: &[Value], text: &str) {
    for v in values {
        assert!(!v.to_string().contains(text), "{text:?} leaked in {v}");
    }
}

/// Asserts that `m` is the placeholder of a message revoked by `by`.
#[track_caller]
fn assert_placeholder(m: &Value, by: &User) {
    assert_eq!(m["type"], "systemNotice", "{m}");
    assert_eq!(m["actionType"], "revoke", "{m}");
    assert_eq!(m["revoked"], true, "{m}");
    assert_eq!(m["data"]["data"], revoked_text(by), "{m}");
}

/// The fields of a revoke as the uni-app document pushes and answers it (section 三十二).
const REVOKE_FIELDS: [&str; 15] = [
    "actionType",
    "chatType",
    "create_time",
    "data",
    "from_avatar",
    "from_id",
    "from_name",
    "group",
    "id",
    "isremove",
    "options",
    "to_avatar",
    "to_id",
    "to_name",
    "type",
];

/// Asserts that `m` is the revoke of the stored message `sent` by `by` in the document's
/// shape: the revoked message's own `id` and `create_time`, `type` `systemNotice`,
/// `actionType` `revoke`, the notice text with `otherData` null, and `group` (null for a
/// direct message); beside the document's fields only the timeline's: the message's
/// `conversation` and `seq`, `revoked`, the `cid` of its send when it had one, and `notice`
/// (the timeline entry of the revoke). Returns `notice`.
#[track_caller]
fn assert_revoke_shape(m: &Value, sent: &Value, by: &User, group: &Value) -> Value {
    let fields = m.as_object().expect("an object");
    for f in REVOKE_FIELDS {
        assert!(fields.contains_key(f), "{f} missing in {m}");
    }
    let mut extra: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|k| !REVOKE_FIELDS.contains(k))
        .collect();
    extra.sort_unstable();
    let timeline = ["conversation", "notice", "revoked", "seq"];
    if sent.get("cid").is_some() {
        assert_eq!(extra, ["cid", "conversation", "notice", "revoked", "seq"], "{m}");
        assert_eq!(m["cid"], sent["cid"], "{m}");
    } else {
        assert_eq!(extra, timeline, "{m}");
    }
    assert_eq!(m["id"], sent["id"], "{m}");
    assert_eq!(m["create_time"], sent["create_time"], "{m}");
    assert_eq!(m["type"], "systemNotice", "{m}");
    assert_eq!(m["actionType"], "revoke", "{m}");
    assert_eq!(
        m["data"],
        json!({"data": revoked_text(by), "dataType": false, "otherData": null}),
        "{m}"
    );
    assert_eq!(m["options"], json!({}), "{m}");
    assert_eq!(m["isremove"], 0, "{m}");
    assert_eq!(m["group"], *group, "{m}");
    for f in [
        "from_id",
        "from_name",
        "from_avatar",
        "to_id",
        "to_name",
        "to_avatar",
        "chatType",
    ] {
        assert_eq!(m[f], sent[f], "{f} in {m}");
    }
    assert_eq!(m["from_id"], by.id, "{m}");
    assert_eq!(m["conversation"], sent["conversation"], "{m}");
    assert_eq!(m["seq"], sent["seq"], "{m}");
    assert_eq!(m["revoked"], true, "{m}");
    let notice = m["notice"].clone();
    assert!(notice["id"].is_string() && notice["id"] != sent["id"], "{m}");
    assert!(
        notice["seq"].as_u64().unwrap() > sent["seq"].as_u64().unwrap(),
        "{m}"
    );
    notice
}

/// Asserts that `push` is the live revoke push of `sent` by `by` (see
/// [`assert_revoke_shape`]); returns its `notice`.
#[track_caller]
fn assert_revoke_push(push: &Value, sent: &Value, by: &User, group: &Value) -> Value {
    assert_eq!(push["type"], "systemNotice", "{push}");
    assert!(push["timestamp"].is_u64(), "{push}");
    assert_revoke_shape(&push["data"], sent, by, group)
}

/// Asserts that `push` is the stored revoke notice (replayed, or read from history) of the
/// message `sent` revoked by `by`: a timeline entry whose `otherData` names the message.
#[track_caller]
fn assert_revoke_notice(push: &Value, sent: &Value, by: &User) {
    assert_eq!(push["type"], "systemNotice", "{push}");
    assert_stored_notice(&push["data"], sent, by);
}

/// Asserts that `m` is the stored revoke notice of `sent` revoked by `by`.
#[track_caller]
fn assert_stored_notice(m: &Value, sent: &Value, by: &User) {
    assert_eq!(m["actionType"], "revoke", "{m}");
    assert_eq!(m["type"], "systemNotice", "{m}");
    assert_eq!(m["revoked"], false, "{m}");
    assert_eq!(m["from_id"], by.id, "{m}");
    assert_ne!(m["id"], sent["id"], "{m}");
    assert_eq!(m["data"]["data"], revoked_text(by), "{m}");
    assert_eq!(
        m["data"]["otherData"],
        json!({"id": sent["id"], "seq": sent["seq"], "create_time": sent["create_time"]}),
        "{m}"
    );
}

/// The uni-app group object of group `gid` as `user` reads it, without its members: the
/// `group` of a group revoke.
async fn group_object(server: &TestServer, user: &User, gid: u64) -> Value {
    let got = server
        .get(&format!("/api/chat/groupinfo/{gid}"), Some(&user.token))
        .await;
    let mut group = assert_ok(&got);
    group.as_object_mut().expect("a group").remove("group_users");
    group
}

/// The next chat push of a text message (skipping notices).
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        let push = ws.next_of_type("singleChat").await;
        if push["data"]["type"] == "text" {
            return push;
        }
    }
}

/// Frames until none arrives for `quiet_ms`; fails if the socket is not quiet within
/// [`common::FRAME_TIMEOUT`].
async fn drain(ws: &mut Ws, quiet_ms: u64) -> Vec<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + common::FRAME_TIMEOUT;
    let mut out = Vec::new();
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_millis(quiet_ms);
        assert!(
            quiet <= deadline,
            "frames kept coming for {:?}",
            common::FRAME_TIMEOUT
        );
        match tokio::time::timeout_at(quiet, ws.stream.next()).await {
            Err(_) => return out,
            Ok(Some(Ok(Message::Text(t)))) => out.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("stream ended: {other:?}"),
        }
    }
}

/// The frames of conversation `key` a socket gets until it is quiet, none of them showing
/// `secret`.
async fn replayed(ws: &mut Ws, key: &str, secret: &str) -> Vec<Value> {
    let frames = drain(ws, 500).await;
    assert_absent(&frames, secret);
    frames
        .into_iter()
        .filter(|f| f["data"]["conversation"] == key)
        .collect()
}

/// Registers `names` and makes each of them a friend of `owner`.
async fn friends_of(server: &TestServer, owner: &User, names: &[&str]) -> Vec<User> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let user = server.register(name).await;
        server.befriend(owner, &user).await;
        out.push(user);
    }
    out
}

/// Creates a uni-app group of `owner` with `members` and returns its id.
async fn create_group(server: &TestServer, owner: &User, members: &[&User]) -> u64 {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    let got = server
        .post_form("/api/chat/group/create", Some(&owner.token), &form)
        .await;
    assert_ok(&got);
    let list = assert_ok(&server.get("/api/chat/grouplist/1", Some(&owner.token)).await);
    list[0]["id"].as_u64().expect("the new group is listed first")
}

/// A text message to group `gid` over REST; returns the stored message.
async fn send_group(server: &TestServer, from: &User, gid: u64, text: &str) -> Value {
    let to = gid.to_string();
    let got = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&from.token),
            &[
                ("sendto_id", &to),
                ("chatType", "group"),
                ("type", "text"),
                ("data", text),
            ],
        )
        .await;
    assert_ok(&got)
}

/// `GET /api/chat/conversations` with `query` (starting with `?`, or empty).
async fn list_raw(server: &TestServer, user: &User, query: &str) -> Got {
    server
        .get(&format!("/api/chat/conversations{query}"), Some(&user.token))
        .await
}

/// The conversation list's items with `query`.
async fn list(server: &TestServer, user: &User, query: &str) -> Vec<Value> {
    let data = assert_ok(&list_raw(server, user, query).await);
    data["list"].as_array().expect("a list").clone()
}

/// The conversation keys of a list, in order.
fn keys(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| e["conversation"].as_str().unwrap().to_owned())
        .collect()
}

/// The item of conversation `key` in `user`'s list, if listed.
async fn item(server: &TestServer, user: &User, key: &str) -> Option<Value> {
    list(server, user, "")
        .await
        .into_iter()
        .find(|e| e["conversation"] == key)
}

/// Waits until `user`'s unread count of `key` is `want` (cursor moves are committed in the
/// background every few milliseconds), failing after a few seconds.
async fn wait_unread(server: &TestServer, user: &User, key: &str, want: u64) {
    let mut last = None;
    for _ in 0..250 {
        last = item(server, user, key).await.map(|e| e["unread"].clone());
        if last == Some(json!(want)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "unread of {key} for {} is {last:?}, expected {want}",
        user.username
    );
}

/// `POST /api/chat/read` as `token` with `form`.
async fn read_rest(server: &TestServer, token: Option<&str>, form: &[(&str, &str)]) -> Got {
    server.post_form("/api/chat/read", token, form).await
}

/// Registers `username` in tenant `tenant` (the `X-App-Id` header).
async fn register_in(server: &TestServer, tenant: &str, username: &str) -> User {
    let resp = server
        .http
        .post(server.url("/api/regChat"))
        .header("X-App-Id", tenant)
        .form(&[("username", username), ("password", "secret1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    user_of(&resp.json().await.unwrap())
}

/// The Chat21 `DELETE /api/{app}/conversations/{recipient}{query}` with the raw
/// `Authorization` header; the body as JSON, or as a JSON string when it is plain text.
async fn chat21_delete(
    server: &TestServer,
    token: Option<&str>,
    app: &str,
    recipient: &str,
    query: &str,
) -> Got {
    let mut req = server
        .http
        .delete(server.url(&format!("/api/{app}/conversations/{recipient}{query}")));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts Chat21's refusal `{"success":false,"err":...}` with `status`; returns `err`.
#[track_caller]
fn chat21_refused(got: &Got, status: StatusCode) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["success"], false, "{}", got.1);
    got.1["err"].as_str().expect("err is a string").to_owned()
}

/// Archives (`delete` false) or deletes the conversation of `user` with `peer`.
async fn archive(server: &TestServer, user: &User, peer: &User, delete: bool) {
    let got = chat21_delete(
        server,
        Some(&user.token),
        "default",
        &peer.uuid,
        &format!("?delete={delete}"),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    assert_eq!(got.1["success"], true, "{}", got.1);
}

/// `POST /conversation/create?{query}` on the chat-room face.
async fn create_raw(server: &TestServer, token: Option<&str>, query: &str) -> Got {
    server
        .post_json(&format!("/conversation/create?{query}"), token, &json!({}))
        .await
}

/// Creates the chat-room conversation of `user` with `contacts`; returns it.
async fn create_conversation(server: &TestServer, user: &User, contacts: &[&User]) -> Value {
    let query: Vec<String> = contacts.iter().map(|c| format!("contactId={}", c.id)).collect();
    let body = assert_success(&create_raw(server, Some(&user.token), &query.join("&")).await);
    assert_eq!(body["conversations"][0], body["conversation"], "{body}");
    body["conversation"].clone()
}

/// The chat-room `GET /conversation/getlist` of `user`.
async fn getlist(server: &TestServer, user: &User) -> Vec<Value> {
    let body = assert_success(&server.get("/conversation/getlist", Some(&user.token)).await);
    body["conversations"].as_array().expect("conversations").clone()
}

/// The chat-room conversation numbered `n` in `user`'s getlist.
async fn listed(server: &TestServer, user: &User, n: u64) -> Option<Value> {
    getlist(server, user).await.into_iter().find(|c| c["id"] == n)
}

/// The chat-room `GET /message/history/{n}{query}`.
async fn room_history_raw(server: &TestServer, user: &User, n: &str, query: &str) -> Got {
    server
        .get(&format!("/message/history/{n}{query}"), Some(&user.token))
        .await
}

/// The chat-room history's messages of conversation `n`.
async fn room_history(server: &TestServer, user: &User, n: u64, query: &str) -> Value {
    assert_success(&room_history_raw(server, user, &n.to_string(), query).await)
}

/// The chat-room `GET /conversation/members{query}` as `user`.
async fn members(server: &TestServer, user: &User, query: &str) -> Got {
    server
        .get(&format!("/conversation/members{query}"), Some(&user.token))
        .await
}

/// The `id`s (seqs) of a chat-room history page.
fn room_seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Revoke

#[actix_web::test]
async fn revoke_over_rest_pushes_the_revoked_message_itself_to_both_sides() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wa = server.ws(&alice.token).await;

    let sent = server.send_rest(&alice, &bob, "the secret plan").await;
    let id = id_of(&sent);
    assert_eq!(wb.next_of_type("singleChat").await["data"]["id"], id);
    assert_eq!(wa.next_of_type("singleChat").await["data"]["id"], id);

    // The answer: the revoked message in the document's shape, `group` null.
    let got = revoke(&server, &alice, &id, "single", bob.id).await;
    let answer = assert_ok(&got);
    let notice = assert_revoke_shape(&answer, &sent, &alice, &Value::Null);
    assert_placeholder(&answer, &alice);
    assert_eq!(answer["to_id"], bob.id);
    assert_eq!(answer["chatType"], "single");
    assert_eq!(notice["seq"], sent["seq"].as_u64().unwrap() + 1);

    // Both sides' devices are pushed the same: the revoked message by its own id and
    // create_time, so a client replaces it in place.
    let to_bob = wb.next_of_type("systemNotice").await;
    assert_eq!(assert_revoke_push(&to_bob, &sent, &alice, &Value::Null), notice);
    assert_eq!(to_bob["data"], answer);
    let to_alice = wa.next_of_type("systemNotice").await;
    assert_eq!(to_alice["data"], answer);

    // History on both sides: the placeholder in the message's place, then the notice
    // naming it.
    for (user, peer) in [(&alice, &bob), (&bob, &alice)] {
        let list = history(&server, user, "single", peer.id).await;
        assert_eq!(list.len(), 2, "{list:?}");
        assert_stored_notice(&list[0], &sent, &alice);
        assert_eq!(list[0]["id"], notice["id"]);
        assert_eq!(list[0]["seq"], notice["seq"]);
        assert_placeholder(&list[1], &alice);
        assert_eq!(list[1]["id"], id);
        assert_absent(&list, "the secret plan");
    }
    wb.assert_quiet(200).await;
    server.stop().await;
}

#[actix_web::test]
async fn revoke_refuses_other_senders_unknown_repeated_and_missing_ids() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let keep = id_of(&server.send_rest(&alice, &bob, "keep me").await);
    let gone = id_of(&server.send_rest(&alice, &bob, "take me back").await);

    // Only the sender revokes: the recipient is refused and nothing changes.
    let reason = assert_fail(
        &revoke(&server, &bob, &keep, "single", alice.id).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("sender"), "{reason}");
    let list = history(&server, &bob, "single", alice.id).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["data"], "keep me");
    assert_eq!(list[1]["revoked"], false);

    assert_ok(&revoke(&server, &alice, &gone, "single", bob.id).await);
    // Twice: already revoked.
    assert_fail(
        &revoke(&server, &alice, &gone, "single", bob.id).await,
        StatusCode::CONFLICT,
    );
    // The revoke notice itself is not a message one can revoke.
    let notice = history(&server, &alice, "single", bob.id).await[0].clone();
    assert_eq!(notice["actionType"], "revoke");
    assert_fail(
        &revoke(&server, &alice, &id_of(&notice), "single", bob.id).await,
        StatusCode::BAD_REQUEST,
    );
    // Unknown ids.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_fail(
        &revoke(&server, &alice, &unknown, "single", bob.id).await,
        StatusCode::NOT_FOUND,
    );
    // Missing, empty and oversized ids; a bad chatType.
    assert_fail(
        &revoke_form(&server, &alice, &[("chatType", "single")]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &revoke_form(&server, &alice, &[("id", "")]).await,
        StatusCode::BAD_REQUEST,
    );
    let long = "x".repeat(65);
    assert_fail(
        &revoke_form(&server, &alice, &[("id", &long)]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &revoke_form(&server, &alice, &[("id", &keep), ("chatType", "room")]).await,
        StatusCode::BAD_REQUEST,
    );
    // No token.
    let got = server
        .post_form("/api/chat/revokeMessage", None, &[("id", &keep)])
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);

    // A user of another tenant cannot even find it.
    let outsider = register_in(&server, "acme", "alice").await;
    assert_fail(
        &revoke(&server, &outsider, &keep, "single", bob.id).await,
        StatusCode::NOT_FOUND,
    );

    // After all of that the kept message is intact.
    let list = history(&server, &alice, "single", bob.id).await;
    let kept = list.iter().find(|m| m["id"] == keep).unwrap();
    assert_eq!(
        (kept["data"].clone(), kept["revoked"].clone()),
        (json!("keep me"), json!(false))
    );
    server.stop().await;
}

#[actix_web::test]
async fn revoke_over_websocket_is_acked_as_rest_answers_and_refusals_are_error_frames() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;

    wa.send_msg("m1", bob.id, "typo message").await;
    let sent = wa.next_of_type("ack").await["data"].clone();
    let id = id_of(&sent);
    assert_eq!(
        wb.next_of_type("singleChat").await["data"]["data"],
        "typo message"
    );

    // The recipient may not revoke it.
    wb.send_json(&json!({"type": "revoke", "cid": "x1", "id": id}))
        .await;
    let e = wb.next_of_type("error").await;
    assert_eq!(
        (e["cid"].clone(), e["code"].clone()),
        (json!("x1"), json!("forbidden"))
    );

    wa.send_json(&json!({"type": "revoke", "cid": "r1", "id": id}))
        .await;
    let ack = wa.next_of_type("ack").await;
    assert_eq!(ack["cid"], "r1");
    // The ack carries what the REST route answers, and the peer is pushed the same.
    assert_revoke_shape(&ack["data"], &sent, &alice, &Value::Null);
    assert_placeholder(&ack["data"], &alice);
    let push = wb.next_of_type("systemNotice").await;
    assert_revoke_push(&push, &sent, &alice, &Value::Null);
    assert_eq!(push["data"], ack["data"]);

    // Again: conflict; an unknown id: not found; no id: missing field. The socket stays open.
    wa.send_json(&json!({"type": "revoke", "cid": "r2", "id": id}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_eq!(
        (e["cid"].clone(), e["code"].clone()),
        (json!("r2"), json!("conflict"))
    );
    wa.send_json(&json!({"type": "revoke", "cid": "r3", "id": "no-such-message"}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_eq!(
        (e["cid"].clone(), e["code"].clone()),
        (json!("r3"), json!("not_found"))
    );
    wa.send_json(&json!({"type": "revoke", "cid": "r4"})).await;
    let e = wa.next_of_type("error").await;
    assert_eq!(
        (e["cid"].clone(), e["code"].clone()),
        (json!("r4"), json!("missing_field"))
    );
    wa.send_json(&json!({"type": "ping"})).await;
    wa.next_of_type("pong").await;

    let list = history(&server, &bob, "single", alice.id).await;
    assert_placeholder(&list[1], &alice);
    assert_absent(&list, "typo message");
    server.stop().await;
}

#[actix_web::test]
async fn revoke_works_inside_the_window_and_is_refused_past_it() {
    let dir = tempfile::tempdir().unwrap();
    // Well inside the default window (300 s), however slow the machine.
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let mut wa = server.ws(&alice.token).await;

    let sent = std::time::Instant::now();
    let early = id_of(&server.send_rest(&alice, &bob, "early words").await);
    let late_rest = id_of(&server.send_rest(&alice, &bob, "late words").await);
    wa.send_msg("w1", bob.id, "late socket words").await;
    let late_ws = id_of(&wa.next_of_type("ack").await["data"]);
    assert_placeholder(
        &assert_ok(&revoke(&server, &alice, &early, "single", bob.id).await),
        &alice,
    );
    wa.close().await;
    server.stop().await;

    // The same messages under a window of 1 s, once they are surely older than that: refused
    // by the server's clock, over REST and over the socket.
    let server = TestServer::start_in(dir.path(), |c| c.limits.revoke_window_secs = 1).await;
    let mut wa = server.ws(&alice.token).await;
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(sent.elapsed())).await;
    let reason = assert_fail(
        &revoke(&server, &alice, &late_rest, "single", bob.id).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("1 s"), "{reason}");
    wa.send_json(&json!({"type": "revoke", "cid": "w2", "id": late_ws}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_eq!(
        (e["cid"].clone(), e["code"].clone()),
        (json!("w2"), json!("forbidden"))
    );

    // Nothing changed for the refused ones: both sides still read them.
    for (user, peer) in [(&alice, &bob), (&bob, &alice)] {
        let list = history(&server, user, "single", peer.id).await;
        for (id, text) in [(&late_rest, "late words"), (&late_ws, "late socket words")] {
            let m = list.iter().find(|m| m["id"] == **id).expect("still in history");
            assert_eq!(m["data"], text);
            assert_eq!(m["type"], "text");
            assert_eq!(m["revoked"], false);
        }
        assert_absent(&list, "early words");
        // One placeholder and one notice: the refused revokes wrote nothing.
        assert_eq!(list.len(), 4, "{list:?}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn offline_recipient_replays_the_notice_naming_the_revoked_message_never_the_content() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;

    server.send_rest(&alice, &bob, "hello there").await;
    let sent = server.send_rest(&alice, &bob, "my password is 1234").await;
    let id = id_of(&sent);
    assert_ok(&revoke(&server, &alice, &id, "single", bob.id).await);

    let mut wb = server.ws(&bob.token).await;
    let chats = replayed(&mut wb, &conv(&alice, &bob), "my password is 1234").await;
    assert_eq!(chats.len(), 3, "{chats:?}");
    assert_eq!(chats[0]["type"], "singleChat");
    assert_eq!(chats[0]["data"]["data"], "hello there");
    assert_eq!(chats[1]["type"], "systemNotice");
    assert_placeholder(&chats[1]["data"], &alice);
    assert_eq!(chats[1]["data"]["id"], id);
    assert_revoke_notice(&chats[2], &sent, &alice);
    // Written once counts as delivered: the next connect gets nothing again.
    server.hang_up(wb).await;
    let mut again = server.ws_at(&format!("/ws?token={}&ack=manual", bob.token)).await;
    again.assert_quiet(300).await;

    // A message Bob already has (he acknowledged it), revoked while he is away: what he
    // replays on his return names it by id, seq and create_time, so he can replace the copy
    // he shows.
    let sent = server.send_rest(&alice, &bob, "send me the keys").await;
    assert_eq!(again.next_of_type("singleChat").await["data"]["id"], sent["id"]);
    again
        .send_json(&json!({"type": "ack", "conversation": conv(&alice, &bob), "seq": sent["seq"]}))
        .await;
    again.sync().await;
    server.hang_up(again).await;
    assert_ok(&revoke(&server, &alice, &id_of(&sent), "single", bob.id).await);
    let mut back = server.ws(&bob.token).await;
    let chats = replayed(&mut back, &conv(&alice, &bob), "send me the keys").await;
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_revoke_notice(&chats[0], &sent, &alice);
    server.stop().await;
}

#[actix_web::test]
async fn group_revoke_pushes_the_revoked_message_with_its_group_to_members_online_and_offline() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let gid = create_group(&server, &alice, &[bob, carol]).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wa = server.ws(&alice.token).await;

    let sent = send_group(&server, &alice, gid, "group secret").await;
    let id = id_of(&sent);
    // (Bob's first push is the group's creation notice, which waited for him.)
    let push = next_text(&mut wb).await;
    assert_eq!(push["data"]["id"], id);

    // Another member may not revoke it.
    assert_fail(
        &revoke(&server, bob, &id, "group", gid).await,
        StatusCode::FORBIDDEN,
    );
    let answer = assert_ok(&revoke(&server, &alice, &id, "group", gid).await);
    let group = group_object(&server, &alice, gid).await;
    assert_eq!(group["id"], gid);
    assert_eq!(group["user_id"], alice.id);
    assert_revoke_shape(&answer, &sent, &alice, &group);
    assert_placeholder(&answer, &alice);
    assert_eq!(answer["chatType"], "group");
    assert_eq!(answer["to_id"], gid);

    let push = wb.next_of_type("systemNotice").await;
    assert_revoke_push(&push, &sent, &alice, &group);
    assert_eq!(push["data"], answer);
    assert_eq!(push["data"]["conversation"], format!("g:{gid}"));
    assert_eq!(wa.next_of_type("systemNotice").await["data"], answer);

    // A member's own message over the socket, revoked over the socket.
    wb.send_json(
        &json!({"type": "send", "cid": "g1", "to": gid, "chatType": "group", "msgType": "text", "data": "oops"}),
    )
    .await;
    let own_sent = wb.next_of_type("ack").await["data"].clone();
    let own = id_of(&own_sent);
    wb.send_json(&json!({"type": "revoke", "cid": "g2", "id": own}))
        .await;
    let ack = wb.next_of_type("ack").await;
    assert_eq!(ack["cid"], "g2");
    assert_revoke_shape(&ack["data"], &own_sent, bob, &group);
    assert_placeholder(&ack["data"], bob);
    let push = wa.next_of_type("systemNotice").await;
    assert_revoke_push(&push, &own_sent, bob, &group);

    // Carol was away: on connect, the placeholders and the notices naming them, never the
    // contents.
    let mut wc = server.ws(&carol.token).await;
    let frames = drain(&mut wc, 500).await;
    assert_absent(&frames, "group secret");
    assert_absent(&frames, "oops");
    let placeholders: Vec<&Value> = frames.iter().filter(|f| f["data"]["revoked"] == true).collect();
    assert_eq!(placeholders.len(), 2, "{frames:?}");
    assert_eq!(placeholders[0]["data"]["id"], id);
    assert_eq!(placeholders[1]["data"]["id"], own);
    let notices: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "systemNotice" && f["data"]["revoked"] == false)
        .collect();
    assert_eq!(notices.len(), 2, "{frames:?}");
    assert_revoke_notice(notices[0], &sent, &alice);
    assert_revoke_notice(notices[1], &own_sent, bob);

    for user in [&alice, bob, carol] {
        let list = history(&server, user, "group", gid).await;
        assert_absent(&list, "group secret");
        assert_absent(&list, "oops");
        let m = list
            .iter()
            .find(|m| m["id"] == id)
            .expect("placeholder in history");
        assert_placeholder(m, &alice);
    }
    server.stop().await;
}

#[actix_web::test]
async fn chat21_history_shows_a_revoked_message_as_an_info_line_saying_so() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let kept = server.send_rest(&alice, &bob, "keep this").await;
    let sent = server.send_rest(&alice, &bob, "take this back").await;
    assert_ok(&revoke(&server, &alice, &id_of(&sent), "single", bob.id).await);

    for (user, peer) in [(&bob, &alice), (&alice, &bob)] {
        let path = format!(
            "/api/default/{}/conversations/{}/messages?token={}",
            user.uuid, peer.uuid, user.token
        );
        let got = server.get(&path, None).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
        assert_absent(std::slice::from_ref(&got.1), "take this back");
        let result = got.1["result"].as_array().expect("result").clone();
        let revoked = result
            .iter()
            .find(|m| m["message_id"] == sent["id"])
            .expect("the revoked message is listed");
        assert_eq!(revoked["type"], "text", "{revoked}");
        assert_eq!(revoked["text"], revoked_text(&alice), "{revoked}");
        assert_eq!(
            revoked["attributes"],
            json!({"subtype": "info", "revoked": true}),
            "{revoked}"
        );
        assert_eq!(revoked["revoked"], true, "{revoked}");
        assert_eq!(revoked["timestamp"], sent["create_time"], "{revoked}");
        assert_eq!(revoked["sender"], alice.uuid, "{revoked}");
        assert_eq!(revoked["status"], 100, "{revoked}");
        let said = result
            .iter()
            .filter(|m| m["text"] == revoked_text(&alice))
            .count();
        assert_eq!(said, 1, "the revoke is shown once: {result:?}");
        let other = result
            .iter()
            .find(|m| m["message_id"] == kept["id"])
            .expect("the kept message is listed");
        assert_eq!(
            (
                other["type"].clone(),
                other["text"].clone(),
                other["attributes"].clone()
            ),
            (json!("text"), json!("keep this"), Value::Null)
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Read receipts

#[actix_web::test]
async fn read_frames_and_rest_reads_move_the_cursor_and_tell_the_peer() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    for i in 1..=3 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    wait_unread(&server, &bob, &key, 3).await;
    wait_unread(&server, &alice, &key, 0).await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;

    // Over the socket.
    wb.send_json(&json!({"type": "read", "conversation": key, "seq": 2}))
        .await;
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": 2, "user_id": bob.id})
    );
    wait_unread(&server, &bob, &key, 1).await;

    // Over REST.
    let data =
        assert_ok(&read_rest(&server, Some(&bob.token), &[("conversation", &key), ("seq", "3")]).await);
    assert_eq!(data, json!({"conversation": key, "seq": 3}));
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": 3, "user_id": bob.id})
    );
    wait_unread(&server, &bob, &key, 0).await;

    // A seq past the head reads up to the head only: the next message is unread.
    let data = assert_ok(
        &read_rest(
            &server,
            Some(&bob.token),
            &[("conversation", &key), ("seq", "99")],
        )
        .await,
    );
    assert_eq!(data["seq"], 3);
    server.send_rest(&alice, &bob, "m4").await;
    wait_unread(&server, &bob, &key, 1).await;

    // Alice reads what Bob wrote; Bob is told.
    server.send_rest(&bob, &alice, "reply").await;
    wait_unread(&server, &alice, &key, 1).await;
    wa.send_json(&json!({"type": "read", "conversation": key, "seq": 5}))
        .await;
    let receipt = wb.next_of_type("read").await;
    assert_eq!(receipt["data"]["user_id"], alice.id);
    assert_eq!(receipt["data"]["seq"], 5);
    wait_unread(&server, &alice, &key, 0).await;
    server.stop().await;
}

/// A read over REST is committed before it is answered: the next list shows it, even when
/// the background flush of cursor moves is a minute away.
#[actix_web::test]
async fn a_rest_read_shows_in_the_unread_counts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.router.cursor_flush_ms = 60_000).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    for i in 1..=3 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    assert_eq!(item(&server, &bob, &key).await.unwrap()["unread"], 3);
    for (seq, unread) in [("2", 1), ("3", 0)] {
        assert_ok(&read_rest(&server, Some(&bob.token), &[("conversation", &key), ("seq", seq)]).await);
        assert_eq!(
            item(&server, &bob, &key).await.unwrap()["unread"],
            unread,
            "after reading {seq}"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn read_and_ack_frames_past_the_head_do_not_swallow_later_messages() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    server.send_rest(&alice, &bob, "one").await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;
    next_text(&mut wb).await;

    // Bob claims to have read and received far more than exists: only the head counts.
    wb.send_json(&json!({"type": "read", "conversation": key, "seq": 1000}))
        .await;
    wb.send_json(&json!({"type": "ack", "conversation": key, "seq": 1000}))
        .await;
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": 1, "user_id": bob.id})
    );
    wait_unread(&server, &bob, &key, 0).await;
    server.hang_up(wb).await;

    server.send_rest(&alice, &bob, "two").await;
    server.send_rest(&alice, &bob, "three").await;
    // The two new messages are unread, and they wait for Bob's next connect.
    wait_unread(&server, &bob, &key, 2).await;
    let mut again = server.ws(&bob.token).await;
    assert_eq!(next_text(&mut again).await["data"]["data"], "two");
    assert_eq!(next_text(&mut again).await["data"]["data"], "three");
    server.stop().await;
}

#[actix_web::test]
async fn a_group_read_past_the_head_does_not_count_for_later_messages() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let gid = create_group(&server, &alice, &[bob, carol]).await;
    let key = format!("g:{gid}");
    let mut wa = server.ws(&alice.token).await;
    let mut wc = server.ws(&carol.token).await;

    let first = send_group(&server, &alice, gid, "first").await["seq"]
        .as_u64()
        .unwrap();
    next_text(&mut wc).await;
    wc.send_json(&json!({"type": "read", "conversation": key, "seq": 1000}))
        .await;
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": first, "user_id": carol.id, "count": 2})
    );

    // A later message: Bob's read makes two readers (Alice and Bob), not three.
    let second = send_group(&server, &alice, gid, "second").await["seq"]
        .as_u64()
        .unwrap();
    wait_unread(&server, carol, &key, 1).await;
    let got = read_rest(
        &server,
        Some(&bob.token),
        &[("conversation", &key), ("seq", &second.to_string())],
    )
    .await;
    assert_ok(&got);
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": second, "user_id": bob.id, "count": 2})
    );
    server.stop().await;
}

#[actix_web::test]
async fn group_read_receipts_tell_the_sender_how_many_have_read() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let gid = create_group(&server, &alice, &[bob, carol]).await;
    let key = format!("g:{gid}");
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;

    wa.send_json(
        &json!({"type": "send", "cid": "g1", "to": gid, "chatType": "group", "msgType": "text", "data": "read me"}),
    )
    .await;
    let seq = wa.next_of_type("ack").await["data"]["seq"].as_u64().unwrap();
    next_text(&mut wb).await;
    wait_unread(&server, bob, &key, seq).await;
    wait_unread(&server, carol, &key, seq).await;
    wait_unread(&server, &alice, &key, 0).await;

    // Bob reads over the socket: Alice and Bob have read it.
    wb.send_json(&json!({"type": "read", "conversation": key, "seq": seq}))
        .await;
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": seq, "user_id": bob.id, "count": 2})
    );
    wait_unread(&server, bob, &key, 0).await;

    // Carol reads over REST: all three.
    let got = read_rest(
        &server,
        Some(&carol.token),
        &[("conversation", &key), ("seq", &seq.to_string())],
    )
    .await;
    assert_eq!(assert_ok(&got)["seq"], seq);
    let receipt = wa.next_of_type("read").await;
    assert_eq!(
        receipt["data"],
        json!({"conversation": key, "seq": seq, "user_id": carol.id, "count": 3})
    );
    wait_unread(&server, carol, &key, 0).await;
    // Bob sent nothing that Carol read: he is not told.
    let frames = drain(&mut wb, 300).await;
    assert!(frames.iter().all(|f| f["type"] != "read"), "{frames:?}");
    server.stop().await;
}

#[actix_web::test]
async fn rest_read_is_refused_for_conversations_not_mine_and_bad_input() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    server.send_rest(&alice, bob, "private").await;
    let key = conv(&alice, bob);
    let gid = create_group(&server, &alice, &[bob]).await;

    let t = Some(carol.token.as_str());
    assert_fail(
        &read_rest(&server, t, &[("conversation", &key), ("seq", "1")]).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &read_rest(&server, t, &[("conversation", &format!("g:{gid}")), ("seq", "1")]).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &read_rest(&server, t, &[("conversation", "g:999999"), ("seq", "1")]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &read_rest(&server, t, &[("conversation", "nonsense"), ("seq", "1")]).await,
        StatusCode::NOT_FOUND,
    );
    let b = Some(bob.token.as_str());
    assert_fail(
        &read_rest(&server, b, &[("seq", "1")]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &read_rest(&server, b, &[("conversation", &key)]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &read_rest(&server, b, &[("conversation", &key), ("seq", "-1")]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &read_rest(&server, b, &[("conversation", &key), ("seq", "one")]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &read_rest(&server, None, &[("conversation", &key), ("seq", "1")]).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_fail(
        &read_rest(
            &server,
            Some("not-a-token"),
            &[("conversation", &key), ("seq", "1")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );

    // A read frame for someone else's conversation neither tells them nor lists it for Carol.
    let mut wa = server.ws(&alice.token).await;
    let mut wc = server.ws(&carol.token).await;
    wc.send_json(&json!({"type": "read", "conversation": key, "seq": 1}))
        .await;
    let e = wc.next_of_type("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert!(e["msg"].as_str().unwrap().contains("participant"), "{e}");
    // Nor one for a conversation that does not exist.
    wc.send_json(&json!({"type": "read", "conversation": "g:999999", "seq": 1}))
        .await;
    assert_eq!(wc.next_of_type("error").await["code"], "not_found");
    wa.assert_quiet(300).await;
    assert!(list(&server, carol, "").await.is_empty());
    wait_unread(&server, bob, &key, 1).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Conversation list

#[actix_web::test]
async fn conversation_list_is_ordered_by_last_activity_with_targets_and_unread() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let gid = create_group(&server, &alice, &[bob, carol]).await;
    let group_key = format!("g:{gid}");
    let pause = || tokio::time::sleep(Duration::from_millis(5));

    pause().await;
    server.send_rest(&alice, bob, "to bob").await;
    pause().await;
    server.send_rest(carol, &alice, "from carol").await;
    pause().await;
    send_group(&server, bob, gid, "to the group").await;

    let items = list(&server, &alice, "").await;
    assert_eq!(
        keys(&items),
        [group_key.clone(), conv(&alice, carol), conv(&alice, bob)]
    );
    let group = &items[0];
    assert_eq!(group["chatType"], "group");
    assert_eq!(group["target"]["id"], gid);
    assert!(
        group["target"]["name"].as_str().unwrap().contains("alice"),
        "{group}"
    );
    assert_eq!(group["last_message"]["data"], "to the group");
    assert_eq!(group["last_message"]["from_id"], bob.id);
    assert_eq!(group["unread"], 1);
    let with_carol = &items[1];
    assert_eq!(with_carol["chatType"], "single");
    assert_eq!(with_carol["target"]["id"], carol.id);
    assert_eq!(with_carol["target"]["uuid"], carol.uuid.as_str());
    assert_eq!(with_carol["target"]["username"], "carol");
    assert_eq!(with_carol["last_message"]["data"], "from carol");
    assert_eq!(with_carol["unread"], 1);
    let with_bob = &items[2];
    assert_eq!(with_bob["target"]["id"], bob.id);
    assert_eq!(with_bob["last_message"]["data"], "to bob");
    assert_eq!(with_bob["unread"], 0);
    for e in &items {
        assert_eq!(e["pinned"], false, "{e}");
        assert_eq!(e["archived"], false, "{e}");
        assert!(e["update_time"].as_u64().unwrap() > 1_700_000_000_000, "{e}");
    }
    let times: Vec<u64> = items.iter().map(|e| e["update_time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // A new message moves its conversation to the top.
    pause().await;
    server.send_rest(bob, &alice, "bob again").await;
    let items = list(&server, &alice, "").await;
    assert_eq!(
        keys(&items),
        [conv(&alice, bob), group_key.clone(), conv(&alice, carol)]
    );
    assert_eq!(items[0]["unread"], 1);

    // Bob's own list: the group and Alice, nothing of Carol and Alice.
    let bobs = list(&server, bob, "").await;
    assert_eq!(keys(&bobs), [conv(&alice, bob), group_key]);
    assert_eq!(bobs[0]["target"]["id"], alice.id);

    // Refusals.
    assert_fail(
        &server.get("/api/chat/conversations", None).await,
        StatusCode::UNAUTHORIZED,
    );
    server.stop().await;
}

#[actix_web::test]
async fn conversation_list_pages_cover_every_conversation_exactly_once() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    for i in 0..7 {
        let peer = server.register_open(&format!("peer_{i}")).await;
        server.send_rest(&alice, &peer, &format!("hello {i}")).await;
    }
    let all = list(&server, &alice, "").await;
    assert_eq!(all.len(), 7);
    let data = assert_ok(&list_raw(&server, &alice, "").await);
    assert_eq!(data["total"], 7);
    assert_eq!(data["next_cursor"], Value::Null);

    for limit in [1usize, 3, 7, 10] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let query = match &cursor {
                None => format!("?limit={limit}"),
                Some(c) => format!("?limit={limit}&cursor={}", urlencode(c)),
            };
            let data = assert_ok(&list_raw(&server, &alice, &query).await);
            let page = data["list"].as_array().unwrap().clone();
            assert!(page.len() <= limit, "{data}");
            assert_eq!(data["total"], 7);
            seen.extend(keys(&page));
            pages += 1;
            match data["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(page.len(), limit, "a full page before the end: {data}");
                    cursor = Some(c.to_owned());
                }
                None => break,
            }
            assert!(pages <= 7, "paging does not end");
        }
        assert_eq!(seen, keys(&all), "limit {limit}");
        assert_eq!(pages, 7usize.div_ceil(limit), "limit {limit}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 7);
    }

    for bad in [
        "?limit=0",
        "?limit=-1",
        "?limit=abc",
        "?cursor=nocolon",
        "?cursor=abc:d:1:2",
    ] {
        assert_fail(&list_raw(&server, &alice, bad).await, StatusCode::BAD_REQUEST);
    }
    server.stop().await;
}

/// Percent-encodes a cursor for a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[actix_web::test]
async fn a_group_the_user_was_removed_from_leaves_the_list() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let gid = create_group(&server, &alice, &[bob, carol]).await;
    let key = format!("g:{gid}");
    send_group(&server, &alice, gid, "welcome").await;
    assert!(item(&server, bob, &key).await.is_some());
    let n = create_conversation(&server, &alice, &[bob]).await["id"]
        .as_u64()
        .unwrap();
    let room = getlist(&server, bob).await;
    let group_number = room
        .iter()
        .find(|c| c["type"] == "group")
        .expect("the group is in bob's chat-room list")["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        room_seqs(&room_history(&server, bob, group_number, "").await),
        [2, 1]
    );

    let got = server
        .post_form(
            "/api/chat/groupDeleteUser",
            Some(&alice.token),
            &[("group_id", &gid.to_string()), ("user_id", &bob.id.to_string())],
        )
        .await;
    assert_ok(&got);
    send_group(&server, &alice, gid, "after bob").await;

    assert!(item(&server, bob, &key).await.is_none());
    let room = getlist(&server, bob).await;
    assert!(room.iter().all(|c| c["type"] != "group"), "{room:?}");
    assert!(
        room.iter().any(|c| c["id"] == n),
        "the direct conversation stays: {room:?}"
    );
    let got = room_history_raw(&server, bob, &group_number.to_string(), "").await;
    assert_refused(&got, StatusCode::FORBIDDEN);
    assert_fail(
        &read_rest(&server, Some(&bob.token), &[("conversation", &key), ("seq", "1")]).await,
        StatusCode::FORBIDDEN,
    );
    // The others keep it.
    let kept = item(&server, carol, &key).await.expect("carol keeps the group");
    assert_eq!(kept["last_message"]["data"], "after bob");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Archive and delete (the Chat21 route)

#[actix_web::test]
async fn archive_hides_the_conversation_until_a_new_message_arrives() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    server.send_rest(&alice, &bob, "first").await;
    server.send_rest(&alice, &bob, "second").await;

    archive(&server, &bob, &alice, false).await;
    assert!(item(&server, &bob, &key).await.is_none());
    let archived = list(&server, &bob, "?archived=1").await;
    assert_eq!(keys(&archived), vec![key.clone()]);
    assert_eq!(archived[0]["archived"], true);
    assert_eq!(archived[0]["last_message"]["data"], "second");
    // Only for Bob: Alice still lists it, and Bob's history is whole.
    assert!(item(&server, &alice, &key).await.is_some());
    assert!(list(&server, &alice, "?archived=1").await.is_empty());
    assert_eq!(history(&server, &bob, "single", alice.id).await.len(), 2);

    server.send_rest(&alice, &bob, "third").await;
    let back = item(&server, &bob, &key)
        .await
        .expect("a new message brings it back");
    assert_eq!(back["archived"], false);
    assert_eq!(back["last_message"]["data"], "third");
    assert!(list(&server, &bob, "?archived=1").await.is_empty());

    // A uni-app token of another tenant names that tenant: its APP_ID only.
    let carol = register_in(&server, "acme", "carol").await;
    let dave = register_in(&server, "acme", "dave").await;
    server.befriend(&carol, &dave).await;
    server.send_rest(&carol, &dave, "acme talk").await;
    let got = chat21_delete(&server, Some(&carol.token), "default", &dave.uuid, "").await;
    assert_eq!(
        chat21_refused(&got, StatusCode::UNAUTHORIZED),
        "the token's app_id is not this APP_ID"
    );
    let got = chat21_delete(&server, Some(&carol.token), "acme", &dave.uuid, "?delete=false").await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    assert!(list(&server, &carol, "").await.is_empty());
    assert_eq!(list(&server, &carol, "?archived=true").await.len(), 1);

    // Refusals: no token, a bad flag, an unknown recipient, a conversation never had.
    let got = chat21_delete(&server, None, "default", &alice.uuid, "").await;
    assert_eq!(chat21_refused(&got, StatusCode::UNAUTHORIZED), "Unauthorized.");
    let got = chat21_delete(&server, Some(&bob.token), "default", &alice.uuid, "?delete=maybe").await;
    // Chat21 answers a bad field with 405 and a plain text naming it.
    assert_eq!(got.0, StatusCode::METHOD_NOT_ALLOWED, "{}", got.1);
    assert_eq!(got.1, "delete must be true or false");
    let got = chat21_delete(&server, Some(&bob.token), "default", "no-such-user", "").await;
    assert_eq!(
        chat21_refused(&got, StatusCode::NOT_FOUND),
        "no-such-user is neither a user nor a group"
    );
    let eve = server.register("eve_1").await;
    let got = chat21_delete(&server, Some(&bob.token), "default", &eve.uuid, "").await;
    let reason = chat21_refused(&got, StatusCode::NOT_FOUND);
    assert!(reason.ends_with("is not one of yours"), "{reason}");
    server.stop().await;
}

#[actix_web::test]
async fn delete_hides_the_history_for_the_caller_only() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    server.send_rest(&alice, &bob, "old one").await;
    server.send_rest(&bob, &alice, "old two").await;
    let n = create_conversation(&server, &bob, &[&alice]).await["id"]
        .as_u64()
        .unwrap();

    archive(&server, &bob, &alice, true).await;
    assert!(item(&server, &bob, &key).await.is_none());
    assert!(list(&server, &bob, "?archived=1").await.is_empty());
    assert!(history(&server, &bob, "single", alice.id).await.is_empty());
    assert!(listed(&server, &bob, n).await.is_none());
    assert!(room_seqs(&room_history(&server, &bob, n, "").await).is_empty());
    // Alice keeps everything.
    assert_eq!(history(&server, &alice, "single", bob.id).await.len(), 2);
    assert_eq!(room_seqs(&room_history(&server, &alice, n, "").await), [2, 1]);
    assert_eq!(
        item(&server, &alice, &key).await.unwrap()["last_message"]["data"],
        "old two"
    );

    // A new message: back in Bob's list with only what came after the delete.
    server.send_rest(&alice, &bob, "new one").await;
    let back = item(&server, &bob, &key).await.expect("back after a new message");
    assert_eq!(back["unread"], 1);
    assert_eq!(back["last_message"]["data"], "new one");
    let list = history(&server, &bob, "single", alice.id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["data"], "new one");
    assert_absent(&list, "old one");
    assert_eq!(room_seqs(&room_history(&server, &bob, n, "").await), [3]);
    assert_eq!(history(&server, &alice, "single", bob.id).await.len(), 3);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The chat-room face

#[actix_web::test]
async fn chatroom_create_makes_one_single_conversation_per_contact_and_groups_for_several() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let stranger = server.register_open("stranger").await;

    let single = create_conversation(&server, &alice, &[bob]).await;
    assert_eq!(single["type"], "single");
    assert_eq!(single["members"], json!([bob.id]));
    let n = single["id"].as_u64().expect("a numeric id");
    // The same conversation again, from either side.
    assert_eq!(create_conversation(&server, &alice, &[bob]).await["id"], n);
    assert_eq!(create_conversation(&server, bob, &[&alice]).await["id"], n);
    assert_eq!(
        create_conversation(&server, bob, &[&alice]).await["members"],
        json!([alice.id])
    );

    // Several contacts: a group conversation (a group on the uni-app face too).
    let group = create_conversation(&server, &alice, &[bob, carol]).await;
    assert_eq!(group["type"], "group");
    let mut want = vec![bob.id, carol.id];
    want.sort_unstable();
    assert_eq!(group["members"], json!(want));
    assert_ne!(group["id"], n);
    let groups = assert_ok(&server.get("/api/chat/grouplist/1", Some(&carol.token)).await);
    assert_eq!(groups.as_array().unwrap().len(), 1);
    let comma = format!("contactId={},{}", carol.id, bob.id);
    let body = assert_success(&create_raw(&server, Some(&alice.token), &comma).await);
    assert_eq!(body["conversation"]["type"], "group");

    // Refusals.
    let got = create_raw(&server, Some(&alice.token), &format!("contactId={}", stranger.id)).await;
    assert_refused(&got, StatusCode::FORBIDDEN);
    let got = create_raw(
        &server,
        Some(&alice.token),
        &format!("contactId={}&contactId={}", bob.id, stranger.id),
    )
    .await;
    assert_refused(&got, StatusCode::FORBIDDEN);
    assert_refused(
        &create_raw(&server, Some(&alice.token), "contactId=999999").await,
        StatusCode::NOT_FOUND,
    );
    assert_refused(
        &create_raw(&server, Some(&alice.token), "").await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(
        &create_raw(&server, Some(&alice.token), "contactId=").await,
        StatusCode::BAD_REQUEST,
    );
    let own = format!("contactId={}", alice.id);
    assert_refused(
        &create_raw(&server, Some(&alice.token), &own).await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(
        &create_raw(&server, Some(&alice.token), "contactId=bob").await,
        StatusCode::BAD_REQUEST,
    );
    let got = create_raw(&server, None, &format!("contactId={}", bob.id)).await;
    assert_refused(&got, StatusCode::UNAUTHORIZED);
    // None of the refusals made a group.
    let groups = assert_ok(&server.get("/api/chat/grouplist/1", Some(&alice.token)).await);
    assert_eq!(groups.as_array().unwrap().len(), 2);
    server.stop().await;
}

#[actix_web::test]
async fn chatroom_getlist_and_members_show_the_others_and_the_last_message() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "carol"]).await;
    let (bob, carol) = (&others[0], &others[1]);
    let dave = server.register("dave").await;

    let n = create_conversation(&server, &alice, &[bob]).await["id"]
        .as_u64()
        .unwrap();
    let g = create_conversation(&server, &alice, &[bob, carol]).await["id"]
        .as_u64()
        .unwrap();

    // Created without a message: listed, nothing last.
    let single = listed(&server, &alice, n)
        .await
        .expect("the new conversation is listed");
    assert_eq!(single["type"], "single");
    assert_eq!(single["members"], json!([bob.id]));
    assert_eq!(single["last_message"], Value::Null);
    assert!(listed(&server, bob, n).await.is_some());
    assert!(listed(&server, carol, n).await.is_none());

    server.send_rest(bob, &alice, "hi alice").await;
    let single = listed(&server, &alice, n).await.unwrap();
    assert_eq!(single["last_message"]["content"], "hi alice");
    assert_eq!(single["last_message"]["sender_id"], bob.id);
    assert_eq!(single["last_message"]["id"], 1);
    assert_eq!(single["unread"], 1);
    assert_eq!(single["name"], "bob_1");
    let group = listed(&server, carol, g).await.expect("carol lists the group");
    assert_eq!(group["type"], "group");
    let mut want = vec![alice.id, bob.id];
    want.sort_unstable();
    let mut got: Vec<u64> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
    // Newest activity first.
    let ids: Vec<u64> = getlist(&server, &alice)
        .await
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [n, g]);
    assert!(getlist(&server, &dave).await.is_empty());

    // Members, the caller excluded.
    let body = assert_success(&members(&server, &alice, &format!("?conversationId={n}")).await);
    assert_eq!(body["members"].as_array().unwrap().len(), 1);
    assert_eq!(body["members"][0]["id"], bob.id);
    assert_eq!(body["members"][0]["username"], "bob_1");
    let body = assert_success(&members(&server, bob, &format!("?conversationId={g}")).await);
    let mut got: Vec<u64> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = vec![alice.id, carol.id];
    want.sort_unstable();
    assert_eq!(got, want);

    assert_refused(&members(&server, &alice, "").await, StatusCode::BAD_REQUEST);
    assert_refused(
        &members(&server, &alice, "?conversationId=").await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(
        &members(&server, &alice, "?conversationId=abc").await,
        StatusCode::BAD_REQUEST,
    );
    assert_refused(
        &members(&server, &dave, &format!("?conversationId={n}")).await,
        StatusCode::FORBIDDEN,
    );
    assert_refused(
        &members(&server, &dave, &format!("?conversationId={g}")).await,
        StatusCode::FORBIDDEN,
    );
    assert_refused(
        &members(&server, &alice, "?conversationId=999999").await,
        StatusCode::NOT_FOUND,
    );
    let got = server
        .get(&format!("/conversation/members?conversationId={n}"), None)
        .await;
    assert_refused(&got, StatusCode::UNAUTHORIZED);
    assert_refused(
        &server.get("/conversation/getlist", None).await,
        StatusCode::UNAUTHORIZED,
    );
    server.stop().await;
}

#[actix_web::test]
async fn chatroom_history_is_newest_first_pages_with_before_and_shows_a_revoked_message_once() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let others = friends_of(&server, &alice, &["bob_1", "dave"]).await;
    let (bob, dave) = (&others[0], &others[1]);
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(id_of(&server.send_rest(&alice, bob, &format!("line {i}")).await));
    }
    let n = create_conversation(&server, bob, &[&alice]).await["id"]
        .as_u64()
        .unwrap();

    let page = room_history(&server, bob, n, "").await;
    assert_eq!(room_seqs(&page), [5, 4, 3, 2, 1]);
    let first = &page["messages"][4];
    assert_eq!(first["sender_id"], alice.id);
    assert_eq!(first["content"], "line 1");
    assert_eq!(first["type"], "text");
    let sent_at = first["sent_at"].as_str().unwrap();
    assert_eq!(sent_at.len(), 19, "{sent_at}");
    assert_eq!(
        (&sent_at[4..5], &sent_at[10..11], &sent_at[13..14]),
        ("-", " ", ":")
    );

    // Paging with before and limit.
    let page = room_history(&server, bob, n, "?limit=2").await;
    assert_eq!(room_seqs(&page), [5, 4]);
    assert_eq!(page["next_before"], 4);
    let page = room_history(&server, bob, n, "?before=4&limit=2").await;
    assert_eq!(room_seqs(&page), [3, 2]);
    let page = room_history(&server, bob, n, "?before=2&limit=2").await;
    assert_eq!(room_seqs(&page), [1]);
    assert_eq!(page["next_before"], Value::Null);

    // A revoke shows as the placeholder in the message's place, once: the revoke notice
    // (seq 6) is not listed again.
    assert_ok(&revoke(&server, &alice, &ids[2], "single", bob.id).await);
    let page = room_history(&server, bob, n, "").await;
    assert_eq!(room_seqs(&page), [5, 4, 3, 2, 1]);
    let revoked = &page["messages"][2];
    assert_eq!(revoked["uuid"], ids[2]);
    assert_eq!(revoked["content"], revoked_text(&alice));
    assert_eq!(revoked["type"], "text");
    assert_eq!(revoked["revoked"], true);
    assert_eq!(
        page.to_string().matches(&revoked_text(&alice)).count(),
        1,
        "{page}"
    );
    assert!(!page.to_string().contains("line 3"), "{page}");

    // Refusals.
    let got = room_history_raw(&server, dave, &n.to_string(), "").await;
    assert_refused(&got, StatusCode::FORBIDDEN);
    assert_refused(
        &room_history_raw(&server, bob, "999999", "").await,
        StatusCode::NOT_FOUND,
    );
    assert_refused(
        &room_history_raw(&server, bob, "abc", "").await,
        StatusCode::BAD_REQUEST,
    );
    let got = room_history_raw(&server, bob, &n.to_string(), "?limit=x").await;
    assert_refused(&got, StatusCode::BAD_REQUEST);
    let got = room_history_raw(&server, bob, &n.to_string(), "?before=-3").await;
    assert_refused(&got, StatusCode::BAD_REQUEST);
    let got = server.get(&format!("/message/history/{n}"), None).await;
    assert_refused(&got, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// One conversation through every face

#[actix_web::test]
async fn one_conversation_shows_the_same_messages_on_every_face() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);

    server.send_rest(&alice, &bob, "via rest").await;
    let mut wb = server.ws(&bob.token).await;
    wb.send_msg("c1", alice.id, "via ws").await;
    let ack = wb.next_of_type("ack").await;
    assert_eq!(ack["data"]["seq"], 2);

    // The chat-room face numbers the conversation on first sight and keeps the number.
    let listed_for_alice = getlist(&server, &alice).await;
    assert_eq!(listed_for_alice.len(), 1);
    let n = listed_for_alice[0]["id"].as_u64().expect("a number");
    assert_eq!(listed_for_alice[0]["members"], json!([bob.id]));
    assert_eq!(listed_for_alice[0]["last_message"]["content"], "via ws");
    assert_eq!(listed_for_alice[0]["last_message"]["sender_id"], bob.id);
    assert_eq!(create_conversation(&server, &alice, &[&bob]).await["id"], n);
    assert_eq!(getlist(&server, &bob).await[0]["id"], n);

    let page = room_history(&server, &alice, n, "").await;
    let messages = page["messages"].as_array().unwrap();
    let seen: Vec<(u64, u64, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["sender_id"].as_u64().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [(2, bob.id, "via ws"), (1, alice.id, "via rest")]);

    // The uni-app face: the same two, the same ids.
    for (user, peer) in [(&alice, &bob), (&bob, &alice)] {
        let list = history(&server, user, "single", peer.id).await;
        let texts: Vec<&str> = list.iter().map(|m| m["data"].as_str().unwrap()).collect();
        assert_eq!(texts, ["via ws", "via rest"]);
        assert_eq!(list[0]["id"], ack["data"]["id"]);
        assert_eq!(list[0]["conversation"], key);
        assert_eq!(messages[0]["uuid"], list[0]["id"]);
    }
    let entry = item(&server, &alice, &key)
        .await
        .expect("listed on the uni-app face");
    assert_eq!(entry["last_message"]["data"], "via ws");
    assert_eq!(entry["unread"], 1);

    // Reading on one face shows on the other.
    assert_ok(
        &read_rest(
            &server,
            Some(&alice.token),
            &[("conversation", &key), ("seq", "2")],
        )
        .await,
    );
    wait_unread(&server, &alice, &key, 0).await;
    assert_eq!(listed(&server, &alice, n).await.unwrap()["unread"], 0);
    server.stop().await;
}

/// A WebSocket of `token` whose client reads slowly: a small, fixed receive buffer, so
/// what the server sends it piles up on the server's side.
async fn slow_reader(server: &TestServer, token: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let url = format!("ws://{}/ws?token={token}", server.addr);
    let (stream, _) = tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
        .await
        .expect("websocket connects");
    let mut ws = Ws { stream };
    ws.next_of_type("connected").await;
    ws
}

/// Read receipts are not repeated for what was read already, and reach no peer who
/// blocked the reader, over REST and over the socket.
#[actix_web::test]
async fn read_receipts_respect_blocks_and_are_not_repeated() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register_open("bob_1").await;
    server.befriend(&alice, &bob).await;
    let key = conv(&alice, &bob);
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;
    for text in ["one", "two"] {
        server.send_rest(&bob, &alice, text).await;
        next_text(&mut wa).await;
    }
    let read = |seq: &'static str| {
        let (server, token, key) = (&server, alice.token.clone(), key.clone());
        async move {
            let got = server
                .post_form(
                    "/api/chat/read",
                    Some(&token),
                    &[("conversation", key.as_str()), ("seq", seq)],
                )
                .await;
            assert_eq!(assert_ok(&got)["seq"], seq.parse::<u64>().unwrap());
        }
    };
    read("2").await;
    assert_eq!(wb.next_of_type("read").await["data"]["seq"], 2);
    // Once committed, reading the same position again tells nobody.
    common::eventually(
        || async {
            list(&server, &alice, "")
                .await
                .iter()
                .any(|c| c["conversation"] == key && c["unread"] == 0)
        },
        "the read is committed",
    )
    .await;
    read("2").await;
    wa.send_json(&json!({"type": "read", "conversation": key, "seq": 1}))
        .await;
    wa.sync().await;
    wb.assert_quiet(300).await;

    // Bob blocks Alice: her reads no longer reach him.
    let got = server
        .post_form(
            &format!("/api/chat/setblackgoodfriend/{}", alice.id),
            Some(&bob.token),
            &[("isblack", "1")],
        )
        .await;
    assert_ok(&got);
    server.send_rest(&bob, &alice, "three").await;
    server.send_rest(&bob, &alice, "four").await;
    drain(&mut wb, 200).await;
    read("3").await;
    wa.send_json(&json!({"type": "read", "conversation": key, "seq": 4}))
        .await;
    wa.sync().await;
    wb.assert_quiet(300).await;
    server.stop().await;
}

/// A flood of read frames: over the session's frame budget they are refused, and the
/// receipts that pass never get the peer cut, however slowly the peer reads.
#[actix_web::test]
async fn a_flood_of_read_frames_is_limited_and_never_cuts_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.ws.mailbox = 16;
        c.server.socket_send_buffer = 4096;
        // A refill slow enough that 3,000 frames exceed the burst however slowly a loaded
        // host sends them (at 500 a second, a send that took over 3 s never did).
        c.ws.frames_per_sec = 50;
        c.ws.frames_burst = 1500;
        c.router.cursor_flush_ms = 60_000;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let key = conv(&alice, &bob);
    let mut wa = server.ws(&alice.token).await;
    let mut wb = slow_reader(&server, &bob.token).await;
    for text in ["one", "two"] {
        server.send_rest(&bob, &alice, text).await;
        next_text(&mut wa).await;
    }
    for i in 0..3000u64 {
        let seq = 1 + i % 2;
        wa.send_json(&json!({"type": "read", "conversation": key, "seq": seq}))
            .await;
    }
    loop {
        let f = wa.next_json().await;
        if f["type"] == "error" {
            assert_eq!(f["code"], "rate_limited", "{f}");
            assert!(
                f["msg"].as_str().unwrap().starts_with("over 50 frames a second"),
                "{f}"
            );
            break;
        }
    }
    // Bob, who read nothing meanwhile, was not cut: he gets what follows, after the
    // receipts that fitted.
    server.send_rest(&alice, &bob, "still here?").await;
    loop {
        let push = wb.next_of_type("singleChat").await;
        if push["data"]["data"] == "still here?" {
            break;
        }
        assert_eq!(
            push["data"]["from_id"], bob.id,
            "only his own sends come first: {push}"
        );
    }
    server.stop().await;
}
