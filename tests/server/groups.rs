//! Groups of the uni-app face (`shared/seeds/002_*`, sections 二十一, 二十三 to 二十九 and
//! 三十五 to 三十八) end to end against a real server with real HTTP and WebSocket
//! clients: creating a group from friends (every form of `userIds`) and its `groupCreate`
//! notice, the group list and its paging, group info, group messages over REST and
//! WebSocket (every member's devices but the sending one, refusals of non-members, a
//! twenty-member fan-out with offline catch-up), renaming, the notice, my nickname,
//! quitting, dissolving, removing, inviting with and without the owner's approval,
//! answering join requests, history visible from the moment of joining, the QR code, a
//! restart with groups intact, and a group actor that stops when idle and comes back on
//! demand. Every refusal is checked for its status and the `{"msg":"fail"}` envelope.

use crate::common;

use std::collections::HashSet;

use common::{assert_fail, assert_ok, register_visitor, TestServer, User, Ws};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

type Got = (StatusCode, Value);

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

/// `POST path` as `user` with a form.
async fn post(server: &TestServer, user: &User, path: &str, form: &[(&str, &str)]) -> Got {
    server.post_form(path, Some(&user.token), form).await
}

/// Creates a group of `owner` with `members` (repeated `userIds[]` fields) and returns its id.
async fn create_group(server: &TestServer, owner: &User, members: &[&User]) -> u64 {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    let got = post(server, owner, "/api/chat/group/create", &form).await;
    assert_eq!(assert_ok(&got), "ok");
    newest_group(server, owner).await
}

/// The groups of `user` at `path` (a `grouplist` route with its page and limit).
async fn group_list(server: &TestServer, user: &User, path: &str) -> Vec<Value> {
    let data = assert_ok(&server.get(path, Some(&user.token)).await);
    data.as_array().expect("a list of groups").clone()
}

/// The ids of `user`'s groups at `path`, in the list's order.
async fn group_ids(server: &TestServer, user: &User, path: &str) -> Vec<u64> {
    group_list(server, user, path)
        .await
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect()
}

/// The id of the group `user` joined last.
async fn newest_group(server: &TestServer, user: &User) -> u64 {
    group_ids(server, user, "/api/chat/grouplist/1")
        .await
        .first()
        .copied()
        .expect("the user is in a group")
}

/// A text message to group `gid` over REST.
async fn send_group_raw(server: &TestServer, from: &User, gid: u64, text: &str) -> Got {
    let to = gid.to_string();
    post(
        server,
        from,
        "/api/chat/socket/sendmessage",
        &[
            ("sendto_id", &to),
            ("chatType", "group"),
            ("type", "text"),
            ("data", text),
        ],
    )
    .await
}

/// A text message to group `gid` over REST; returns the stored message.
async fn send_group(server: &TestServer, from: &User, gid: u64, text: &str) -> Value {
    assert_ok(&send_group_raw(server, from, gid, text).await)
}

/// A WebSocket `send` frame to group `gid`.
async fn ws_send_group(ws: &mut Ws, cid: &str, gid: u64, text: &str) {
    ws.send_json(
        &json!({"type": "send", "cid": cid, "to": gid, "chatType": "group", "msgType": "text", "data": text}),
    )
    .await;
}

/// The next chat push, which must be a message of group `gid`.
async fn next_group_msg(ws: &mut Ws, gid: u64) -> Value {
    let push = ws.next_of_type("singleChat").await;
    assert_eq!(push["data"]["chatType"], "group", "{push}");
    assert_eq!(push["data"]["to_id"], gid, "{push}");
    assert_eq!(push["data"]["conversation"], format!("g:{gid}"), "{push}");
    push
}

/// The next chat push, which must be the `systemNotice` `action` of group `gid`.
async fn next_notice(ws: &mut Ws, gid: u64, action: &str) -> Value {
    let push = next_group_msg(ws, gid).await;
    assert_eq!(push["data"]["type"], "systemNotice", "{push}");
    assert_eq!(push["data"]["actionType"], action, "{push}");
    push
}

/// The text of a notice push (its `data.data.data`).
fn notice_text(push: &Value) -> String {
    push["data"]["data"]["data"]
        .as_str()
        .expect("notice text")
        .to_owned()
}

async fn info(server: &TestServer, user: &User, gid: u64) -> Got {
    server
        .get(&format!("/api/chat/groupinfo/{gid}"), Some(&user.token))
        .await
}

/// A page of group `gid`'s history as `user` sees it (`query` starts with `?` or is empty).
async fn history(server: &TestServer, user: &User, gid: u64, query: &str) -> Got {
    server
        .get(
            &format!("/api/chat/history/group/{gid}{query}"),
            Some(&user.token),
        )
        .await
}

/// The seqs of a history page, newest first.
fn seqs(page: &Value) -> Vec<u64> {
    page["list"]
        .as_array()
        .expect("a history list")
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// The user ids of a `groupinfo`'s members, sorted.
fn member_ids(group: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = group["group_users"]
        .as_array()
        .expect("group_users")
        .iter()
        .map(|m| m["user_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted(users: &[&User]) -> Vec<u64> {
    let mut ids: Vec<u64> = users.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    ids
}

/// Asks for the offline messages again (`chatGetmessageOffLine`).
async fn ask_offline(server: &TestServer, user: &User) {
    let got = post(server, user, "/api/chat/chatGetmessageOffLine", &[]).await;
    assert_eq!(assert_ok(&got), "ok");
}

/// Reads `count` group pushes and returns their `(seq, text)` in arrival order.
async fn read_msgs(ws: &mut Ws, gid: u64, count: usize) -> Vec<(u64, Value)> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let push = next_group_msg(ws, gid).await;
        out.push((
            push["data"]["seq"].as_u64().unwrap(),
            push["data"]["data"].clone(),
        ));
    }
    out
}

/// GET a QR code: `(status, content type, body)`.
async fn qrcode(
    server: &TestServer,
    path_and_query: &str,
    token: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = server.http.get(server.url(path_and_query));
    if let Some(t) = token {
        req = req.header("token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.bytes().await.unwrap().to_vec())
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Asserts a PNG answer and returns its width and height.
#[track_caller]
fn assert_png(got: &(StatusCode, String, Vec<u8>)) -> (u32, u32) {
    assert_eq!(got.0, StatusCode::OK, "{}", String::from_utf8_lossy(&got.2));
    assert_eq!(got.1, "image/png");
    assert_eq!(&got.2[..8], PNG_SIGNATURE);
    let decoder = png::Decoder::new(std::io::Cursor::new(got.2.clone()));
    let reader = decoder.read_info().expect("a decodable PNG");
    let info = reader.info();
    (info.width, info.height)
}

// ---------------------------------------------------------------------------------------
// Create and list

#[actix_web::test]
async fn create_takes_user_ids_in_every_form_and_notifies_every_member() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let mut sockets = vec![
        server.ws(&owner.token).await,
        server.ws(&bob.token).await,
        server.ws(&carol.token).await,
    ];
    let (b, c) = (bob.id.to_string(), carol.id.to_string());
    let comma = format!("{b},{c}");
    let in_string = format!("[{b}, {c}]");

    let mut created = Vec::new();
    for (i, how) in ["repeated", "comma", "json", "json string"].iter().enumerate() {
        let got = match *how {
            "repeated" => {
                let form = [("userIds[]", b.as_str()), ("userIds[]", c.as_str())];
                post(&server, &owner, "/api/chat/group/create", &form).await
            }
            "comma" => post(&server, &owner, "/api/chat/group/create", &[("userIds", &comma)]).await,
            "json" => {
                let body = json!({"userIds": [bob.id, carol.id]});
                server
                    .post_json("/api/chat/group/create", Some(&owner.token), &body)
                    .await
            }
            _ => {
                post(
                    &server,
                    &owner,
                    "/api/chat/group/create",
                    &[("userIds", &in_string)],
                )
                .await
            }
        };
        assert_eq!(assert_ok(&got), "ok", "{how}");
        let gid = newest_group(&server, &owner).await;
        assert!(!created.contains(&gid), "{how}: a new group");
        created.push(gid);
        for ws in &mut sockets {
            let push = next_notice(ws, gid, "groupCreate").await;
            assert_eq!(push["data"]["seq"], 1, "{how}");
            assert_eq!(push["data"]["from_id"], owner.id);
            assert_eq!(push["data"]["to_name"], "owner1、bob_1、carol1");
            assert!(notice_text(&push).contains("创建了群聊"), "{push}");
        }
        assert_eq!(created.len(), i + 1);
    }
    for ws in &mut sockets {
        ws.assert_quiet(200).await;
    }

    // Every member lists every group, newest first, named after its members.
    let newest_first: Vec<u64> = created.iter().rev().copied().collect();
    for user in [&owner, bob, carol] {
        let list = group_list(&server, user, "/api/chat/grouplist/1").await;
        let ids: Vec<u64> = list.iter().map(|g| g["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, newest_first, "{}", user.username);
        for g in &list {
            assert_eq!(g["name"], "owner1、bob_1、carol1");
            assert_eq!(g["user_id"], owner.id);
            assert_eq!(g["status"], 1);
            assert_eq!(g["invite_confirm"], 0);
            assert_eq!(g["remark"], "");
            assert_eq!(g["uuid"].as_str().unwrap().len(), 36);
            assert_eq!(g["group_users"][0]["user_id"], user.id);
            assert_eq!(g["group_users"][0]["group_id"], g["id"]);
        }
    }
    // The document's paging (`/1&limit=3`) and a query `limit`.
    assert_eq!(
        group_ids(&server, bob, "/api/chat/grouplist/1&limit=3").await,
        newest_first[..3]
    );
    assert_eq!(
        group_ids(&server, bob, "/api/chat/grouplist/2&limit=3").await,
        newest_first[3..]
    );
    assert_eq!(
        group_ids(&server, bob, "/api/chat/grouplist/1?limit=1").await,
        newest_first[..1]
    );
    assert_eq!(group_ids(&server, bob, "/api/chat/grouplist").await, newest_first);
    assert_eq!(
        group_ids(&server, bob, "/api/chat/grouplist/3&limit=3").await,
        Vec::<u64>::new()
    );
    assert_fail(
        &server.get("/api/chat/grouplist/0", Some(&bob.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.get("/api/chat/grouplist/1", None).await,
        StatusCode::UNAUTHORIZED,
    );
    // A user in no group lists nothing.
    let loner = server.register("loner1").await;
    assert!(group_list(&server, &loner, "/api/chat/grouplist/1")
        .await
        .is_empty());
    server.stop().await;
}

#[actix_web::test]
async fn create_refuses_bad_callers_and_bad_member_lists() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let stranger = server.register("stranger1").await;
    let b = bob.id.to_string();
    let create = "/api/chat/group/create";

    let got = server.post_form(create, None, &[("userIds[]", &b)]).await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    let got = server
        .post_form(create, Some("not.a.token"), &[("userIds[]", &b)])
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);

    let visitor = register_visitor(&server).await;
    let got = post(&server, &visitor, create, &[("userIds[]", &b)]).await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("visitors"));

    let s = stranger.id.to_string();
    let got = post(&server, &owner, create, &[("userIds[]", &b), ("userIds[]", &s)]).await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("not your friend"));

    let got = post(
        &server,
        &owner,
        create,
        &[("userIds[]", &b), ("userIds[]", "999999")],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::NOT_FOUND).contains("999999"));

    let me = owner.id.to_string();
    for form in [vec![("userIds", "")], vec![("userIds[]", me.as_str())], vec![]] {
        let got = post(&server, &owner, create, &form).await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    for form in [
        vec![("userIds", "abc")],
        vec![("userIds[]", "1.5")],
        vec![("userIds", "[1, \"x\"]")],
        vec![("userIds", "-3")],
    ] {
        let got = post(&server, &owner, create, &form).await;
        assert!(
            assert_fail(&got, StatusCode::BAD_REQUEST).contains("userIds"),
            "{form:?}"
        );
    }
    for body in [
        json!({"userIds": [true]}),
        json!({"userIds": {"id": bob.id}}),
        json!({"userIds": [[bob.id]]}),
        json!({"userIds": "x,y"}),
    ] {
        let got = server.post_json(create, Some(&owner.token), &body).await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }

    // Nothing was created.
    for user in [&owner, &bob, &stranger] {
        assert!(group_list(&server, user, "/api/chat/grouplist/1")
            .await
            .is_empty());
    }
    server.stop().await;
}

#[actix_web::test]
async fn groups_are_limited_to_the_configured_member_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.group_max_members = 3).await;
    let owner = server.register("owner1").await;
    let friends = friends_of(&server, &owner, &["bob_1", "carol1", "dave_1"]).await;
    let all: Vec<&User> = friends.iter().collect();

    let ids: Vec<String> = all.iter().map(|u| u.id.to_string()).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    let got = post(&server, &owner, "/api/chat/group/create", &form).await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("at most 3"));
    assert!(group_list(&server, &owner, "/api/chat/grouplist/1")
        .await
        .is_empty());

    // Exactly at the limit is fine; one more by invitation is not.
    let gid = create_group(&server, &owner, &all[..2]).await;
    let g = gid.to_string();
    let d = friends[2].id.to_string();
    let got = post(
        &server,
        &owner,
        "/api/chat/groupInviteUser",
        &[("group_id", &g), ("user_id", &d)],
    )
    .await;
    assert!(assert_fail(&got, StatusCode::BAD_REQUEST).contains("at most 3"));
    assert_eq!(member_ids(&assert_ok(&info(&server, &owner, gid).await)).len(), 3);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Info

#[actix_web::test]
async fn groupinfo_shows_the_members_with_their_users() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let outsider = server.register("outsider1").await;
    let gid = create_group(&server, &owner, &[bob, carol]).await;

    let g = assert_ok(&info(&server, bob, gid).await);
    assert_eq!(g["id"], gid);
    assert_eq!(g["user_id"], owner.id);
    assert_eq!(g["name"], "owner1、bob_1、carol1");
    assert_eq!(g["status"], 1);
    assert_eq!(g["invite_confirm"], 0);
    assert!(g["create_time"].as_str().unwrap().len() == 19, "{g}");
    assert_eq!(member_ids(&g), sorted(&[&owner, bob, carol]));
    for row in g["group_users"].as_array().unwrap() {
        let uid = row["user_id"].as_u64().unwrap();
        let user = [&owner, bob, carol].into_iter().find(|u| u.id == uid).unwrap();
        assert_eq!(row["group_id"], gid);
        assert_eq!(row["groupId"], gid);
        assert_eq!(row["nickname"], "");
        assert_eq!(row["status"], 1);
        assert!(row["id"].as_u64().unwrap() > 0);
        assert_eq!(row["user"]["id"], uid);
        assert_eq!(row["user"]["username"], user.username);
        assert_eq!(row["user"]["uuid"], user.uuid);
        assert_eq!(row["user"]["role"], "user");
    }
    // Every member sees the same group.
    assert_eq!(assert_ok(&info(&server, &owner, gid).await), g);

    assert!(
        assert_fail(&info(&server, &outsider, gid).await, StatusCode::FORBIDDEN).contains("not a member")
    );
    assert_fail(&info(&server, bob, 999_999).await, StatusCode::NOT_FOUND);
    assert_fail(
        &server.get("/api/chat/groupinfo/abc", Some(&bob.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.get(&format!("/api/chat/groupinfo/{gid}"), None).await,
        StatusCode::UNAUTHORIZED,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Messages

#[actix_web::test]
async fn group_messages_reach_every_member_device_but_the_sending_one() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let mut a1 = server.ws(&owner.token).await;
    let mut a2 = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wc = server.ws(&carol.token).await;
    let gid = create_group(&server, &owner, &[bob, carol]).await;
    for ws in [&mut a1, &mut a2, &mut wb, &mut wc] {
        next_notice(ws, gid, "groupCreate").await;
    }

    // Over the WebSocket: the sending device gets the ack, every other device the push.
    ws_send_group(&mut a1, "g1", gid, "hello group").await;
    let ack = a1.next_of_type("ack").await;
    assert_eq!(ack["cid"], "g1");
    let m = &ack["data"];
    assert_eq!(m["seq"], 2);
    assert_eq!(m["conversation"], format!("g:{gid}"));
    assert_eq!(m["chatType"], "group");
    assert_eq!(m["to_id"], gid);
    assert_eq!(m["to_name"], "owner1、bob_1、carol1");
    assert_eq!(m["from_id"], owner.id);
    assert_eq!(m["from_name"], "owner1");
    for ws in [&mut a2, &mut wb, &mut wc] {
        let push = next_group_msg(ws, gid).await;
        assert_eq!(push["data"]["id"], m["id"]);
        assert_eq!(push["data"]["data"], "hello group");
        assert_eq!(push["data"]["type"], "text");
        assert_eq!(push["data"]["seq"], 2);
    }
    a1.assert_quiet(300).await;

    // The same cid stores one message and pushes it once.
    ws_send_group(&mut a1, "g1", gid, "hello group").await;
    assert_eq!(a1.next_of_type("ack").await["data"]["id"], m["id"]);

    // Over REST there is no sending device: every session of every member gets it.
    let stored = send_group(&server, bob, gid, "from bob").await;
    assert_eq!(stored["seq"], 3);
    assert_eq!(stored["chatType"], "group");
    assert_eq!(stored["from_id"], bob.id);
    for ws in [&mut a1, &mut a2, &mut wb, &mut wc] {
        let push = next_group_msg(ws, gid).await;
        assert_eq!(push["data"]["id"], stored["id"]);
        assert_eq!(push["data"]["data"], "from bob");
    }
    for ws in [&mut a1, &mut a2, &mut wb, &mut wc] {
        ws.assert_quiet(200).await;
    }

    // Every member's history holds the timeline, newest first.
    let page = assert_ok(&history(&server, carol, gid, "").await);
    assert_eq!(seqs(&page), vec![3, 2, 1]);
    assert_eq!(page["conversation"], format!("g:{gid}"));
    assert_eq!(page["head"], 3);
    server.stop().await;
}

#[actix_web::test]
async fn non_members_cannot_send_to_a_group() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let outsider = server.register("outsider1").await;
    let mut wa = server.ws(&owner.token).await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    next_notice(&mut wa, gid, "groupCreate").await;

    let got = send_group_raw(&server, &outsider, gid, "let me in").await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("not a member"));
    let mut wo = server.ws(&outsider.token).await;
    ws_send_group(&mut wo, "x1", gid, "let me in").await;
    let e = wo.next_of_type("error").await;
    assert_eq!(
        (e["cid"].as_str(), e["code"].as_str()),
        (Some("x1"), Some("forbidden"))
    );

    // An unknown group is 404 on both paths.
    assert_fail(
        &send_group_raw(&server, &bob, 999_999, "hi").await,
        StatusCode::NOT_FOUND,
    );
    ws_send_group(&mut wo, "x2", 999_999, "hi").await;
    let e = wo.next_of_type("error").await;
    assert_eq!(
        (e["cid"].as_str(), e["code"].as_str()),
        (Some("x2"), Some("not_found"))
    );
    // The socket stays open for a good frame.
    wo.send_json(&json!({"type": "ping"})).await;
    wo.next_of_type("pong").await;

    // Nothing was stored or pushed.
    wa.assert_quiet(300).await;
    assert_eq!(seqs(&assert_ok(&history(&server, &bob, gid, "").await)), vec![1]);
    server.stop().await;
}

/// The document's client asks for its offline messages as soon as its socket opens: each
/// message, queued before the connect or arriving after it, reaches the socket once.
#[actix_web::test]
async fn asking_for_offline_messages_on_connect_sends_each_once() {
    let dir = tempfile::tempdir().unwrap();
    // Confirmations reach the Router only after the test: what the socket was handed
    // stays unconfirmed while the route is called.
    let server = TestServer::start_in(dir.path(), |c| c.ws.report_interval_ms = 600_000).await;
    let alice = server.register("alice").await;
    let bob = friends_of(&server, &alice, &["bob_1"]).await.remove(0);
    let gid = create_group(&server, &alice, &[&bob]).await;
    for text in ["d1", "d2", "d3"] {
        server.send_rest(&alice, &bob, text).await;
    }
    for text in ["g1", "g2"] {
        send_group(&server, &alice, gid, text).await;
    }
    let mut wb = server.ws(&bob.token).await;
    // Asked at once, while the connect replay may still be under way, and again once it
    // was handed, with live messages in between.
    ask_offline(&server, &bob).await;
    let mut texts = Vec::new();
    let chat = |push: &Value| {
        let data = &push["data"]["data"];
        data.as_str()
            .map_or_else(|| data["data"].to_string(), str::to_owned)
    };
    while texts.len() < 6 {
        texts.push(chat(&wb.next_of_type("singleChat").await));
    }
    server.send_rest(&alice, &bob, "d4").await;
    send_group(&server, &alice, gid, "g3").await;
    while texts.len() < 8 {
        texts.push(chat(&wb.next_of_type("singleChat").await));
    }
    ask_offline(&server, &bob).await;
    wb.assert_quiet(400).await;
    let mut chats: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|t| !t.contains('"'))
        .collect();
    chats.sort_unstable();
    assert_eq!(chats, ["d1", "d2", "d3", "d4", "g1", "g2", "g3"], "{texts:?}");
    server.stop().await;
}

#[actix_web::test]
async fn fan_out_to_twenty_members_with_offline_catch_up_loses_and_repeats_nothing() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let names: Vec<String> = (1..20).map(|i| format!("member{i:02}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let members = friends_of(&server, &owner, &name_refs).await;
    let refs: Vec<&User> = members.iter().collect();

    // 12 members online (the owner among them), 7 never connect until the end; 4 of the
    // online ones leave half-way and come back.
    let online: Vec<&User> = std::iter::once(&owner).chain(members[..11].iter()).collect();
    let offline: Vec<&User> = members[11..].iter().collect();
    let mut sockets: Vec<Ws> = Vec::new();
    for u in &online {
        sockets.push(server.ws(&u.token).await);
    }
    let gid = create_group(&server, &owner, &refs).await;
    assert_eq!(
        member_ids(&assert_ok(&info(&server, &owner, gid).await)).len(),
        20
    );
    for ws in &mut sockets {
        next_notice(ws, gid, "groupCreate").await;
    }

    // Every third message is sent by members[0] (socket 1) over its WebSocket, the others by
    // the owner over REST, one after the other.
    let by_ws = |n: usize| n.is_multiple_of(3);
    let mut expected: Vec<(u64, Value)> = Vec::new();
    let mut next_seq = 2u64;
    for phase in 0..2 {
        let from = phase * 15;
        // Pushes socket 1 received while it waited for its acks.
        let mut early: Vec<(u64, Value)> = Vec::new();
        for n in from..from + 15 {
            let text = format!("message {n}");
            if by_ws(n) {
                ws_send_group(&mut sockets[1], &format!("c{n}"), gid, &text).await;
                loop {
                    let frame = sockets[1].next_json().await;
                    if frame["type"] == "ack" {
                        assert_eq!(frame["data"]["seq"], next_seq, "{frame}");
                        break;
                    }
                    if frame["type"] == "singleChat" {
                        early.push((
                            frame["data"]["seq"].as_u64().unwrap(),
                            frame["data"]["data"].clone(),
                        ));
                    }
                }
            } else {
                assert_eq!(send_group(&server, &owner, gid, &text).await["seq"], next_seq);
            }
            expected.push((next_seq, json!(text)));
            next_seq += 1;
        }
        let this_phase = &expected[from..];
        for (k, ws) in sockets.iter_mut().enumerate() {
            // The WebSocket sender got acks for its own, pushes for the rest.
            let want: Vec<(u64, Value)> = this_phase
                .iter()
                .enumerate()
                .filter(|(j, _)| k != 1 || !by_ws(from + j))
                .map(|(_, m)| m.clone())
                .collect();
            let mut got = if k == 1 {
                std::mem::take(&mut early)
            } else {
                Vec::new()
            };
            let more = read_msgs(ws, gid, want.len() - got.len()).await;
            got.extend(more);
            assert_eq!(got, want, "socket {k}, phase {phase}");
        }
        if phase == 0 {
            // Members 7 to 10 (sockets 8 to 11) go away having read everything so far,
            // the server's probe behind the last frame included (its pong confirms them).
            for mut ws in sockets.drain(8..) {
                ws.assert_quiet(300).await;
                server.hang_up(ws).await;
            }
        }
    }
    for ws in &mut sockets {
        ws.assert_quiet(200).await;
    }

    // The ones who left half-way get the second half, in order, once.
    for u in &online[8..] {
        let mut ws = server.ws(&u.token).await;
        let got = read_msgs(&mut ws, gid, 15).await;
        assert_eq!(got, expected[15..], "{}", u.username);
        ws.assert_quiet(300).await;
    }
    // The ones never online get everything from the creation notice on.
    for u in &offline {
        let mut ws = server.ws(&u.token).await;
        let notice = next_notice(&mut ws, gid, "groupCreate").await;
        assert_eq!(notice["data"]["seq"], 1);
        let got = read_msgs(&mut ws, gid, 30).await;
        assert_eq!(got, expected, "{}", u.username);
        ws.assert_quiet(300).await;
        server.hang_up(ws).await;
    }
    // Delivered once: reconnecting brings nothing again.
    let mut again = server.ws(&offline[0].token).await;
    again.assert_quiet(400).await;
    // The timeline has no gap and no duplicate.
    let page = assert_ok(&history(&server, &owner, gid, "?limit=200").await);
    assert_eq!(seqs(&page), (1..=31).rev().collect::<Vec<u64>>());
    let ids: HashSet<&str> = page["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 31);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Name, notice, nickname

#[actix_web::test]
async fn rename_and_notice_are_the_owners_and_notify_members() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let outsider = server.register("outsider1").await;
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    let g = gid.to_string();
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupCreate").await;
    }

    let got = post(
        &server,
        &owner,
        "/api/chat/groupUpdateName",
        &[("id", &g), ("name", "技术交流群")],
    )
    .await;
    assert_eq!(assert_ok(&got), "ok");
    for ws in [&mut wa, &mut wb] {
        let push = next_notice(ws, gid, "groupRename").await;
        assert!(notice_text(&push).contains("技术交流群"), "{push}");
        assert_eq!(push["data"]["from_id"], owner.id);
    }
    assert_eq!(assert_ok(&info(&server, &bob, gid).await)["name"], "技术交流群");
    assert_eq!(
        group_list(&server, &bob, "/api/chat/grouplist/1").await[0]["name"],
        "技术交流群"
    );
    // Later messages carry the new name.
    assert_eq!(
        send_group(&server, &bob, gid, "hi").await["to_name"],
        "技术交流群"
    );
    for ws in [&mut wa, &mut wb] {
        next_group_msg(ws, gid).await;
    }

    let twenty = "群".repeat(20);
    let got = post(
        &server,
        &owner,
        "/api/chat/groupUpdateName",
        &[("group_id", &g), ("name", &twenty)],
    )
    .await;
    assert_eq!(assert_ok(&got), "ok");
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupRename").await;
    }
    let remark = "本群禁止广告";
    let got = post(
        &server,
        &owner,
        "/api/chat/groupremark",
        &[("id", &g), ("remark", remark)],
    )
    .await;
    assert_eq!(assert_ok(&got), "ok");
    for ws in [&mut wa, &mut wb] {
        let push = next_notice(ws, gid, "groupRemark").await;
        assert!(notice_text(&push).contains(remark), "{push}");
    }
    let g_info = assert_ok(&info(&server, &owner, gid).await);
    assert_eq!(
        (g_info["name"].as_str(), g_info["remark"].as_str()),
        (Some(twenty.as_str()), Some(remark))
    );

    // Refusals change nothing and notify nobody.
    let rename = "/api/chat/groupUpdateName";
    let remark_path = "/api/chat/groupremark";
    assert!(assert_fail(
        &post(&server, &bob, rename, &[("id", &g), ("name", "mine")]).await,
        StatusCode::FORBIDDEN
    )
    .contains("owner"));
    assert_fail(
        &post(&server, &outsider, rename, &[("id", &g), ("name", "mine")]).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &post(&server, &bob, remark_path, &[("id", &g), ("remark", "mine")]).await,
        StatusCode::FORBIDDEN,
    );
    let too_long = "群".repeat(21);
    for (path, form) in [
        (rename, vec![("id", g.as_str()), ("name", too_long.as_str())]),
        (rename, vec![("id", g.as_str()), ("name", "")]),
        (rename, vec![("id", g.as_str()), ("name", "   ")]),
        (rename, vec![("id", g.as_str())]),
        (rename, vec![("name", "x")]),
        (rename, vec![("id", "abc"), ("name", "x")]),
        (remark_path, vec![("id", g.as_str()), ("remark", "")]),
        (remark_path, vec![("id", g.as_str())]),
    ] {
        assert_fail(&post(&server, &owner, path, &form).await, StatusCode::BAD_REQUEST);
    }
    let long_remark = "x".repeat(501);
    let got = post(
        &server,
        &owner,
        remark_path,
        &[("id", &g), ("remark", &long_remark)],
    )
    .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let max_remark = "x".repeat(500);
    assert_ok(
        &post(
            &server,
            &owner,
            remark_path,
            &[("id", &g), ("remark", &max_remark)],
        )
        .await,
    );
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupRemark").await;
    }
    assert_fail(
        &post(&server, &owner, rename, &[("id", "999999"), ("name", "x")]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &server.post_form(rename, None, &[("id", &g), ("name", "x")]).await,
        StatusCode::UNAUTHORIZED,
    );
    for ws in [&mut wa, &mut wb] {
        ws.assert_quiet(200).await;
    }
    assert_eq!(assert_ok(&info(&server, &owner, gid).await)["name"], twenty);
    server.stop().await;
}

#[actix_web::test]
async fn groupnickname_is_each_members_own() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let outsider = server.register("outsider1").await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    let g = gid.to_string();
    let path = "/api/chat/groupnickname";

    assert_eq!(
        assert_ok(&post(&server, &bob, path, &[("id", &g), ("nickname", "小鲍")]).await),
        "ok"
    );
    let nickname_of = |group: &Value, uid: u64| {
        group["group_users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == uid)
            .map(|m| m["nickname"].as_str().unwrap().to_owned())
    };
    let g_info = assert_ok(&info(&server, &owner, gid).await);
    assert_eq!(nickname_of(&g_info, bob.id).as_deref(), Some("小鲍"));
    assert_eq!(nickname_of(&g_info, owner.id).as_deref(), Some(""));
    let list = group_list(&server, &bob, "/api/chat/grouplist/1").await;
    assert_eq!(list[0]["group_users"][0]["nickname"], "小鲍");
    // The owner sets their own, not bob's.
    assert_ok(&post(&server, &owner, path, &[("group_id", &g), ("nickname", "群主")]).await);
    let g_info = assert_ok(&info(&server, &bob, gid).await);
    assert_eq!(nickname_of(&g_info, owner.id).as_deref(), Some("群主"));
    assert_eq!(nickname_of(&g_info, bob.id).as_deref(), Some("小鲍"));

    let got = post(&server, &outsider, path, &[("id", &g), ("nickname", "x")]).await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("not a member"));
    let long = "名".repeat(21);
    for form in [
        vec![("id", g.as_str()), ("nickname", long.as_str())],
        vec![("id", g.as_str()), ("nickname", "")],
        vec![("id", g.as_str())],
    ] {
        assert_fail(&post(&server, &bob, path, &form).await, StatusCode::BAD_REQUEST);
    }
    assert_fail(
        &post(&server, &bob, path, &[("id", "999999"), ("nickname", "x")]).await,
        StatusCode::NOT_FOUND,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Quit, dissolve, remove

#[actix_web::test]
async fn a_member_who_quits_no_longer_receives_nor_reads_the_group() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wc = server.ws(&carol.token).await;
    let gid = create_group(&server, &owner, &[bob, carol]).await;
    let g = gid.to_string();
    send_group(&server, &owner, gid, "before").await;
    for ws in [&mut wa, &mut wb, &mut wc] {
        next_notice(ws, gid, "groupCreate").await;
        next_group_msg(ws, gid).await;
    }

    let got = post(&server, bob, "/api/chat/groupDeleteOrQuit", &[("id", &g)]).await;
    assert_eq!(assert_ok(&got), "ok");
    for ws in [&mut wa, &mut wb, &mut wc] {
        let push = next_notice(ws, gid, "groupQuit").await;
        assert_eq!(push["data"]["from_id"], bob.id);
        assert!(notice_text(&push).contains("退出了群聊"), "{push}");
    }

    send_group(&server, &owner, gid, "after").await;
    for ws in [&mut wa, &mut wc] {
        assert_eq!(next_group_msg(ws, gid).await["data"]["data"], "after");
    }
    wb.assert_quiet(300).await;

    assert_fail(&history(&server, bob, gid, "").await, StatusCode::FORBIDDEN);
    let conv_path = format!("/api/chat/history/conversation/g:{gid}");
    assert_fail(
        &server.get(&conv_path, Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(&info(&server, bob, gid).await, StatusCode::FORBIDDEN);
    assert_fail(
        &send_group_raw(&server, bob, gid, "still here?").await,
        StatusCode::FORBIDDEN,
    );
    ws_send_group(&mut wb, "q1", gid, "still here?").await;
    assert_eq!(wb.next_of_type("error").await["code"], "forbidden");
    assert!(group_list(&server, bob, "/api/chat/grouplist/1").await.is_empty());
    let again = post(&server, bob, "/api/chat/groupDeleteOrQuit", &[("id", &g)]).await;
    assert_fail(&again, StatusCode::FORBIDDEN);
    assert_eq!(
        member_ids(&assert_ok(&info(&server, carol, gid).await)),
        sorted(&[&owner, carol])
    );

    // Coming back, and asking for offline messages, brings nothing of the group.
    server.hang_up(wb).await;
    send_group(&server, &owner, gid, "while bob is away").await;
    let mut wb = server.ws(&bob.token).await;
    wb.assert_quiet(300).await;
    ask_offline(&server, bob).await;
    wb.assert_quiet(400).await;
    assert_fail(
        &post(&server, &owner, "/api/chat/groupDeleteOrQuit", &[]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &post(
            &server,
            &owner,
            "/api/chat/groupDeleteOrQuit",
            &[("id", "999999")],
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    server.stop().await;
}

#[actix_web::test]
async fn the_owner_dissolves_the_group_for_everyone() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wc = server.ws(&carol.token).await;
    let gid = create_group(&server, &owner, &[bob, carol]).await;
    let g = gid.to_string();
    send_group(&server, bob, gid, "hello").await;
    for ws in [&mut wa, &mut wb, &mut wc] {
        next_notice(ws, gid, "groupCreate").await;
        next_group_msg(ws, gid).await;
    }

    let got = post(&server, &owner, "/api/chat/groupDeleteOrQuit", &[("id", &g)]).await;
    assert_eq!(assert_ok(&got), "ok");
    for ws in [&mut wa, &mut wb, &mut wc] {
        let push = next_notice(ws, gid, "groupDissolve").await;
        assert_eq!(push["data"]["from_id"], owner.id);
        assert!(notice_text(&push).contains("解散了群聊"), "{push}");
    }

    for user in [&owner, bob, carol] {
        assert_fail(&info(&server, user, gid).await, StatusCode::NOT_FOUND);
        assert_fail(
            &send_group_raw(&server, user, gid, "anyone?").await,
            StatusCode::NOT_FOUND,
        );
        assert_fail(&history(&server, user, gid, "").await, StatusCode::NOT_FOUND);
        assert!(group_list(&server, user, "/api/chat/grouplist/1")
            .await
            .is_empty());
    }
    ws_send_group(&mut wc, "d1", gid, "anyone?").await;
    assert_eq!(wc.next_of_type("error").await["code"], "not_found");
    let b = bob.id.to_string();
    for (path, form) in [
        (
            "/api/chat/groupUpdateName",
            vec![("id", g.as_str()), ("name", "back")],
        ),
        ("/api/chat/groupDeleteOrQuit", vec![("id", g.as_str())]),
        (
            "/api/chat/groupInviteUser",
            vec![("group_id", g.as_str()), ("user_id", b.as_str())],
        ),
    ] {
        let reason = assert_fail(&post(&server, &owner, path, &form).await, StatusCode::NOT_FOUND);
        assert_eq!(reason, format!("group {gid} does not exist"), "{path}");
    }
    let qr = qrcode(
        &server,
        &format!("/api/chat/groupQrcode/{gid}"),
        Some(&owner.token),
    )
    .await;
    let body: Value = serde_json::from_slice(&qr.2).expect("a JSON refusal");
    let reason = assert_fail(&(qr.0, body), StatusCode::NOT_FOUND);
    assert_eq!(reason, format!("group {gid} does not exist"));
    for ws in [&mut wa, &mut wb] {
        ws.assert_quiet(200).await;
    }

    // Nobody gets the dissolved group's timeline again.
    server.hang_up(wa).await;
    let mut wa = server.ws(&owner.token).await;
    ask_offline(&server, &owner).await;
    ask_offline(&server, bob).await;
    wa.assert_quiet(400).await;
    wb.assert_quiet(100).await;

    // An owner who dissolves over REST while away is not sent the timeline again on return.
    let gid2 = create_group(&server, &owner, &[bob]).await;
    send_group(&server, bob, gid2, "second group").await;
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid2, "groupCreate").await;
        next_group_msg(ws, gid2).await;
    }
    server.hang_up(wa).await;
    let g2 = gid2.to_string();
    assert_ok(&post(&server, &owner, "/api/chat/groupDeleteOrQuit", &[("id", &g2)]).await);
    next_notice(&mut wb, gid2, "groupDissolve").await;
    let mut wa = server.ws(&owner.token).await;
    wa.assert_quiet(300).await;
    ask_offline(&server, &owner).await;
    wa.assert_quiet(400).await;
    server.stop().await;
}

#[actix_web::test]
async fn a_removed_member_gets_the_notice_and_nothing_after() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1"]).await;
    let (bob, carol) = (&members[0], &members[1]);
    let outsider = server.register("outsider1").await;
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wc = server.ws(&carol.token).await;
    let gid = create_group(&server, &owner, &[bob, carol]).await;
    let (g, b) = (gid.to_string(), bob.id.to_string());
    for ws in [&mut wa, &mut wb, &mut wc] {
        next_notice(ws, gid, "groupCreate").await;
    }
    let remove = "/api/chat/groupDeleteUser";

    let got = post(&server, carol, remove, &[("group_id", &g), ("user_id", &b)]).await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("owner"));

    let got = post(&server, &owner, remove, &[("group_id", &g), ("user_id", &b)]).await;
    assert_eq!(assert_ok(&got), "删除群成员成功");
    for ws in [&mut wa, &mut wb, &mut wc] {
        let push = next_notice(ws, gid, "groupRemove").await;
        assert_eq!(
            notice_text(&push),
            format!("{}将{}移出了群聊", owner.username, bob.username)
        );
    }
    send_group(&server, &owner, gid, "without bob").await;
    assert_eq!(next_group_msg(&mut wc, gid).await["data"]["data"], "without bob");
    assert_eq!(next_group_msg(&mut wa, gid).await["data"]["data"], "without bob");
    wb.assert_quiet(300).await;
    assert_fail(&history(&server, bob, gid, "").await, StatusCode::FORBIDDEN);
    assert_fail(
        &send_group_raw(&server, bob, gid, "hey").await,
        StatusCode::FORBIDDEN,
    );
    assert!(group_list(&server, bob, "/api/chat/grouplist/1").await.is_empty());
    assert_eq!(
        member_ids(&assert_ok(&info(&server, &owner, gid).await)),
        sorted(&[&owner, carol])
    );

    let o = owner.id.to_string();
    let x = outsider.id.to_string();
    for (form, status) in [
        (
            vec![("group_id", g.as_str()), ("user_id", b.as_str())],
            StatusCode::NOT_FOUND,
        ),
        (
            vec![("group_id", g.as_str()), ("user_id", x.as_str())],
            StatusCode::NOT_FOUND,
        ),
        (
            vec![("group_id", g.as_str()), ("user_id", o.as_str())],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![("group_id", "999999"), ("user_id", b.as_str())],
            StatusCode::NOT_FOUND,
        ),
        (vec![("group_id", g.as_str())], StatusCode::BAD_REQUEST),
        (vec![("user_id", b.as_str())], StatusCode::BAD_REQUEST),
        (
            vec![("group_id", g.as_str()), ("user_id", "abc")],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_fail(&post(&server, &owner, remove, &form).await, status);
    }

    // Away and back: no replay of what was said after the removal, not even on request.
    server.hang_up(wb).await;
    send_group(&server, &owner, gid, "while bob is away").await;
    assert_eq!(
        next_group_msg(&mut wc, gid).await["data"]["data"],
        "while bob is away"
    );
    let mut wb = server.ws(&bob.token).await;
    wb.assert_quiet(300).await;
    ask_offline(&server, bob).await;
    wb.assert_quiet(400).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Invitations, the join setting, approvals

#[actix_web::test]
async fn invitations_join_at_once_when_no_approval_is_needed() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let dave = server.register("dave_1").await;
    let erin = server.register("erin_1").await;
    let frank = server.register("frank1").await;
    let outsider = server.register("outsider1").await;
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wd = server.ws(&dave.token).await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    let g = gid.to_string();
    let invite = "/api/chat/groupInviteUser";
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupCreate").await;
    }

    let d = dave.id.to_string();
    let got = post(
        &server,
        &owner,
        invite,
        &[("group_id", &g), ("user_id", &d), ("addGroupDesc", "欢迎")],
    )
    .await;
    assert_eq!(assert_ok(&got), "加群成功");
    for ws in [&mut wa, &mut wb, &mut wd] {
        let push = next_notice(ws, gid, "groupJoin").await;
        assert_eq!(push["data"]["seq"], 2);
        assert!(notice_text(&push).contains("dave_1"), "{push}");
    }
    // The newcomer lists the group, reads its info and talks in it.
    assert_eq!(newest_group(&server, &dave).await, gid);
    assert_ok(&info(&server, &dave, gid).await);
    send_group(&server, &dave, gid, "hi, I'm dave").await;
    for ws in [&mut wa, &mut wb, &mut wd] {
        assert_eq!(next_group_msg(ws, gid).await["data"]["data"], "hi, I'm dave");
    }

    let got = post(&server, &owner, invite, &[("group_id", &g), ("user_id", &d)]).await;
    assert!(assert_fail(&got, StatusCode::CONFLICT).contains("already a member"));
    let e = erin.id.to_string();
    let got = post(&server, &outsider, invite, &[("group_id", &g), ("user_id", &e)]).await;
    assert_fail(&got, StatusCode::FORBIDDEN);
    // A member invites, and a user asks for themselves: both join at once.
    assert_eq!(
        assert_ok(
            &post(
                &server,
                &bob,
                invite,
                &[
                    ("group_id", &g),
                    ("user_id", &e),
                    ("inviteuser_id", &bob.id.to_string())
                ]
            )
            .await
        ),
        "加群成功"
    );
    let f = frank.id.to_string();
    assert_eq!(
        assert_ok(&post(&server, &frank, invite, &[("group_id", &g), ("user_id", &f)]).await),
        "加群成功"
    );
    for ws in [&mut wa, &mut wb, &mut wd] {
        next_notice(ws, gid, "groupJoin").await;
        next_notice(ws, gid, "groupJoin").await;
    }
    assert_eq!(
        member_ids(&assert_ok(&info(&server, &owner, gid).await)),
        sorted(&[&owner, &bob, &dave, &erin, &frank])
    );

    let long = "x".repeat(501);
    let o = outsider.id.to_string();
    for (form, status) in [
        (
            vec![("group_id", g.as_str()), ("user_id", "999999")],
            StatusCode::NOT_FOUND,
        ),
        (
            vec![("group_id", "999999"), ("user_id", o.as_str())],
            StatusCode::NOT_FOUND,
        ),
        (vec![("user_id", o.as_str())], StatusCode::BAD_REQUEST),
        (vec![("group_id", g.as_str())], StatusCode::BAD_REQUEST),
        (
            vec![("group_id", g.as_str()), ("user_id", "x")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                ("group_id", g.as_str()),
                ("user_id", o.as_str()),
                ("addGroupDesc", long.as_str()),
            ],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_fail(&post(&server, &owner, invite, &form).await, status);
    }
    assert_fail(
        &server
            .post_form(invite, None, &[("group_id", &g), ("user_id", &o)])
            .await,
        StatusCode::UNAUTHORIZED,
    );
    for ws in [&mut wa, &mut wb, &mut wd] {
        ws.assert_quiet(200).await;
    }
    server.stop().await;
}

#[actix_web::test]
async fn with_approval_invitations_and_requests_wait_for_the_owner() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let xena = server.register("xena_1").await;
    let yuri = server.register("yuri_1").await;
    let zoe = server.register("zoe_1").await;
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let mut wx = server.ws(&xena.token).await;
    let mut wy = server.ws(&yuri.token).await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    let g = gid.to_string();
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupCreate").await;
    }
    let (x, y, z) = (xena.id.to_string(), yuri.id.to_string(), zoe.id.to_string());
    let set = "/api/chat/groupAddUserSet";
    let invite = "/api/chat/groupInviteUser";
    let answer = "/api/chat/groupAgreeOrNo";

    // The join setting: the owner's, 1 to 10 (2 to 10 need approval).
    let got = post(&server, &bob, set, &[("group_id", &g), ("addGroupSet", "2")]).await;
    assert_fail(&got, StatusCode::FORBIDDEN);
    for value in ["11", "abc", "-1", ""] {
        let got = post(&server, &owner, set, &[("group_id", &g), ("addGroupSet", value)]).await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    let got = post(&server, &owner, set, &[("group_id", &g), ("addGroupSet", "10")]).await;
    assert_eq!(assert_ok(&got), "设置成功");
    assert_eq!(assert_ok(&info(&server, &bob, gid).await)["invite_confirm"], 1);
    let got = post(&server, &owner, set, &[("group_id", &g), ("addGroupSet", "1")]).await;
    assert_eq!(assert_ok(&got), "设置成功");
    assert_eq!(assert_ok(&info(&server, &bob, gid).await)["invite_confirm"], 0);
    let got = post(
        &server,
        &owner,
        set,
        &[("group_id", "999999"), ("addGroupSet", "2")],
    )
    .await;
    assert_fail(&got, StatusCode::NOT_FOUND);
    let got = post(&server, &owner, set, &[("group_id", &g), ("addGroupSet", "2")]).await;
    assert_eq!(assert_ok(&got), "设置成功");
    assert_eq!(assert_ok(&info(&server, &bob, gid).await)["invite_confirm"], 1);

    // A member's invitation waits; the owner hears of it.
    let got = post(
        &server,
        &bob,
        invite,
        &[("group_id", &g), ("user_id", &x), ("addGroupDesc", "朋友")],
    )
    .await;
    assert_eq!(assert_ok(&got), "申请已提交，等待群主审核");
    let req = wa.next_of_type("systemNotice").await;
    assert_eq!(req["data"]["actionType"], "groupJoinRequest", "{req}");
    assert_eq!(req["data"]["group_id"], gid);
    assert_eq!(req["data"]["user_id"], xena.id);
    assert_eq!(req["data"]["from_id"], bob.id);
    assert_fail(&info(&server, &xena, gid).await, StatusCode::FORBIDDEN);
    let got = post(&server, &bob, invite, &[("group_id", &g), ("user_id", &x)]).await;
    assert_fail(&got, StatusCode::CONFLICT);

    // A user's own request waits too.
    let got = post(&server, &yuri, invite, &[("group_id", &g), ("user_id", &y)]).await;
    assert_eq!(assert_ok(&got), "申请已提交，等待群主审核");
    let req = wa.next_of_type("systemNotice").await;
    assert_eq!(req["data"]["actionType"], "groupJoinRequest");
    assert_eq!(
        (req["data"]["user_id"].as_u64(), req["data"]["from_id"].as_u64()),
        (Some(yuri.id), Some(yuri.id))
    );
    assert_fail(
        &send_group_raw(&server, &yuri, gid, "let me in").await,
        StatusCode::FORBIDDEN,
    );
    // Only members heard nothing: no timeline entry for a request.
    wb.assert_quiet(200).await;

    // Answers: the owner's, agree or no.
    let got = post(
        &server,
        &bob,
        answer,
        &[("group_id", &g), ("user_id", &x), ("type", "agree")],
    )
    .await;
    assert_fail(&got, StatusCode::FORBIDDEN);
    for kind in ["maybe", "", "AGREE"] {
        let got = post(
            &server,
            &owner,
            answer,
            &[("group_id", &g), ("user_id", &x), ("type", kind)],
        )
        .await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    let got = post(
        &server,
        &owner,
        answer,
        &[("group_id", &g), ("user_id", &x), ("type", "agree")],
    )
    .await;
    assert_eq!(assert_ok(&got), "处理成功");
    for ws in [&mut wa, &mut wb, &mut wx] {
        let push = next_notice(ws, gid, "groupJoin").await;
        assert_eq!(
            notice_text(&push),
            format!("{}同意了{}加入群聊", owner.username, xena.username)
        );
    }
    assert_eq!(newest_group(&server, &xena).await, gid);
    send_group(&server, &xena, gid, "thanks").await;
    for ws in [&mut wa, &mut wb, &mut wx] {
        assert_eq!(next_group_msg(ws, gid).await["data"]["data"], "thanks");
    }

    let got = post(
        &server,
        &owner,
        answer,
        &[("group_id", &g), ("user_id", &y), ("type", "no")],
    )
    .await;
    assert_eq!(assert_ok(&got), "处理成功");
    assert_fail(&info(&server, &yuri, gid).await, StatusCode::FORBIDDEN);
    assert!(group_list(&server, &yuri, "/api/chat/grouplist/1")
        .await
        .is_empty());
    // Answered requests are gone; so is one never made.
    for who in [&y, &x, &z] {
        let got = post(
            &server,
            &owner,
            answer,
            &[("group_id", &g), ("user_id", who), ("type", "agree")],
        )
        .await;
        assert_fail(&got, StatusCode::NOT_FOUND);
    }
    let got = post(
        &server,
        &owner,
        answer,
        &[("group_id", "999999"), ("user_id", &y), ("type", "agree")],
    )
    .await;
    assert_fail(&got, StatusCode::NOT_FOUND);

    // The owner's own invitation needs no approval.
    let got = post(&server, &owner, invite, &[("group_id", &g), ("user_id", &z)]).await;
    assert_eq!(assert_ok(&got), "加群成功");
    for ws in [&mut wa, &mut wb, &mut wx] {
        next_notice(ws, gid, "groupJoin").await;
    }
    // A refused user may ask again, and back on "join at once" a request is a join.
    let got = post(&server, &owner, set, &[("group_id", &g), ("addGroupSet", "1")]).await;
    assert_eq!(assert_ok(&got), "设置成功");
    assert_eq!(assert_ok(&info(&server, &bob, gid).await)["invite_confirm"], 0);
    let got = post(&server, &yuri, invite, &[("group_id", &g), ("user_id", &y)]).await;
    assert_eq!(assert_ok(&got), "加群成功");
    let push = next_notice(&mut wy, gid, "groupJoin").await;
    assert!(notice_text(&push).contains("yuri_1"), "{push}");
    assert_eq!(
        member_ids(&assert_ok(&info(&server, &owner, gid).await)),
        sorted(&[&owner, &bob, &xena, &yuri, &zoe])
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// History visibility

#[actix_web::test]
async fn a_late_member_sees_the_history_from_joining_on() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let dave = server.register("dave_1").await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    for i in 0..5 {
        send_group(&server, &owner, gid, &format!("early {i}")).await;
    }
    let (g, d) = (gid.to_string(), dave.id.to_string());
    let got = post(
        &server,
        &owner,
        "/api/chat/groupInviteUser",
        &[("group_id", &g), ("user_id", &d)],
    )
    .await;
    assert_eq!(assert_ok(&got), "加群成功");
    send_group(&server, &bob, gid, "late 1").await;
    send_group(&server, &owner, gid, "late 2").await;

    // The newcomer's history starts at their join notice.
    let page = assert_ok(&history(&server, &dave, gid, "").await);
    assert_eq!(seqs(&page), vec![9, 8, 7]);
    let list = page["list"].as_array().unwrap();
    assert_eq!(list[2]["actionType"], "groupJoin");
    assert_eq!(list[2]["type"], "systemNotice");
    assert_eq!(list[0]["data"], "late 2");
    assert!(page["next_before"].is_null(), "{page}");
    let conv_page = assert_ok(
        &server
            .get(
                &format!("/api/chat/history/conversation/g:{gid}"),
                Some(&dave.token),
            )
            .await,
    );
    assert_eq!(seqs(&conv_page), vec![9, 8, 7]);
    // Paging never reaches further back.
    assert_eq!(
        seqs(&assert_ok(&history(&server, &dave, gid, "?before=7").await)),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&assert_ok(&history(&server, &dave, gid, "?after=0").await)),
        vec![9, 8, 7]
    );
    assert_eq!(
        seqs(&assert_ok(
            &history(&server, &dave, gid, "?after=2&limit=50").await
        )),
        vec![9, 8, 7]
    );
    let first = assert_ok(&history(&server, &dave, gid, "?limit=2").await);
    assert_eq!(seqs(&first), vec![9, 8]);
    assert_eq!(first["next_before"], 8);
    assert_eq!(
        seqs(&assert_ok(
            &history(&server, &dave, gid, "?before=8&limit=2").await
        )),
        vec![7]
    );
    // The founders see everything.
    assert_eq!(
        seqs(&assert_ok(&history(&server, &bob, gid, "").await)),
        (1..=9).rev().collect::<Vec<u64>>()
    );

    // The newcomer's first connect brings only what came after joining.
    let mut wd = server.ws(&dave.token).await;
    let join = next_notice(&mut wd, gid, "groupJoin").await;
    assert_eq!(join["data"]["seq"], 7);
    let rest = read_msgs(&mut wd, gid, 2).await;
    assert_eq!(rest, vec![(8, json!("late 1")), (9, json!("late 2"))]);
    wd.assert_quiet(300).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// QR code

#[actix_web::test]
async fn groupqrcode_is_a_png_for_members() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let outsider = server.register("outsider1").await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    let path = format!("/api/chat/groupQrcode/{gid}");

    // App form, with the token in the query (as an <image> tag would pass it) or a header.
    let (w, h) = assert_png(&qrcode(&server, &format!("{path}?token={}", bob.token), None).await);
    assert_eq!(w, h);
    assert!(w >= 21 * 8, "{w}");
    assert_png(&qrcode(&server, &path, Some(&owner.token)).await);
    // H5 form: a link to the front end.
    let h5 = format!(
        "{path}?token={}&type=H5&http=http://example.test:8081&chatType=group",
        bob.token
    );
    let (h5_w, _) = assert_png(&qrcode(&server, &h5, None).await);
    assert!(h5_w > w, "the H5 link holds more than the app's JSON");
    let https = format!("{path}?type=H5&http=https://example.test");
    assert_png(&qrcode(&server, &https, Some(&bob.token)).await);

    let refused = |got: (StatusCode, String, Vec<u8>), status: StatusCode, reason: &str| {
        let body: Value = serde_json::from_slice(&got.2).expect("a JSON refusal");
        let text = assert_fail(&(got.0, body), status);
        assert!(text.contains(reason), "expected {reason:?}: {text}");
    };
    let ftp = format!("{path}?token={}&type=H5&http=ftp://x", bob.token);
    refused(qrcode(&server, &ftp, None).await, StatusCode::BAD_REQUEST, "http");
    let no_base = format!("{path}?token={}&type=H5", bob.token);
    refused(
        qrcode(&server, &no_base, None).await,
        StatusCode::BAD_REQUEST,
        "http",
    );
    let bad_type = format!("{path}?token={}&type=H5&http=http://x&chatType=room", bob.token);
    refused(
        qrcode(&server, &bad_type, None).await,
        StatusCode::BAD_REQUEST,
        "chatType",
    );
    refused(
        qrcode(&server, &format!("{path}?token={}", outsider.token), None).await,
        StatusCode::FORBIDDEN,
        "not a member",
    );
    refused(
        qrcode(
            &server,
            &format!("/api/chat/groupQrcode/999999?token={}", bob.token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "group 999999 does not exist",
    );
    refused(
        qrcode(
            &server,
            &format!("/api/chat/groupQrcode/abc?token={}", bob.token),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "id",
    );
    refused(
        qrcode(&server, &path, None).await,
        StatusCode::UNAUTHORIZED,
        "token is required",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Restart and idle actors

#[actix_web::test]
async fn groups_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let owner = server.register("owner1").await;
    let members = friends_of(&server, &owner, &["bob_1", "carol1", "dave_1"]).await;
    let (bob, carol, dave) = (&members[0], &members[1], &members[2]);
    let gid = create_group(&server, &owner, &[bob, carol, dave]).await;
    let g = gid.to_string();
    assert_ok(
        &post(
            &server,
            &owner,
            "/api/chat/groupUpdateName",
            &[("id", &g), ("name", "持久群")],
        )
        .await,
    );
    assert_ok(
        &post(
            &server,
            bob,
            "/api/chat/groupnickname",
            &[("id", &g), ("nickname", "小鲍")],
        )
        .await,
    );
    assert_ok(
        &post(
            &server,
            &owner,
            "/api/chat/groupAddUserSet",
            &[("group_id", &g), ("addGroupSet", "2")],
        )
        .await,
    );
    // Dave is removed while online and reads his notice; carol stays offline throughout.
    let mut wd = server.ws(&dave.token).await;
    next_notice(&mut wd, gid, "groupCreate").await;
    let d = dave.id.to_string();
    let got = post(
        &server,
        &owner,
        "/api/chat/groupDeleteUser",
        &[("group_id", &g), ("user_id", &d)],
    )
    .await;
    assert_ok(&got);
    next_notice(&mut wd, gid, "groupRename").await;
    next_notice(&mut wd, gid, "groupRemove").await;
    send_group(&server, bob, gid, "before restart").await;
    // Reading on answers the probe behind the notices: they are confirmed as delivered.
    wd.assert_quiet(300).await;
    server.hang_up(wd).await;
    let info_before = assert_ok(&info(&server, &owner, gid).await);
    let list_before = group_list(&server, bob, "/api/chat/grouplist/1").await;
    server.stop().await;

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_eq!(assert_ok(&info(&server, &owner, gid).await), info_before);
    assert_eq!(
        group_list(&server, bob, "/api/chat/grouplist/1").await,
        list_before
    );
    assert_eq!(info_before["name"], "持久群");
    assert_eq!(info_before["invite_confirm"], 1);
    assert_eq!(member_ids(&info_before), sorted(&[&owner, bob, carol]));

    // Bob, offline since the creation, catches up on the timeline (1 create, 2 rename,
    // 3 remove, 4 his own REST send) and then hears live messages.
    let mut wb = server.ws(&bob.token).await;
    let got: Vec<u64> = read_msgs(&mut wb, gid, 4).await.iter().map(|(s, _)| *s).collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    let m = send_group(&server, &owner, gid, "after restart").await;
    assert_eq!(m["seq"], 5);
    assert_eq!(m["to_name"], "持久群");
    assert_eq!(
        next_group_msg(&mut wb, gid).await["data"]["data"],
        "after restart"
    );
    wb.assert_quiet(200).await;
    // The offline member catches up on everything, in order; the removed one on nothing.
    let mut wc = server.ws(&carol.token).await;
    let got: Vec<u64> = read_msgs(&mut wc, gid, 5).await.iter().map(|(s, _)| *s).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    wc.assert_quiet(300).await;
    let mut wd = server.ws(&dave.token).await;
    wd.assert_quiet(300).await;
    ask_offline(&server, dave).await;
    wd.assert_quiet(300).await;
    assert_fail(&history(&server, dave, gid, "").await, StatusCode::FORBIDDEN);
    // The join rule survived too.
    let got = post(
        &server,
        dave,
        "/api/chat/groupInviteUser",
        &[("group_id", &g), ("user_id", &d)],
    )
    .await;
    assert_eq!(assert_ok(&got), "申请已提交，等待群主审核");
    server.stop().await;
}

#[actix_web::test]
async fn an_idle_group_actor_stops_and_comes_back_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.router.group_idle_secs = 1).await;
    let owner = server.register("owner1").await;
    let bob = friends_of(&server, &owner, &["bob_1"]).await.remove(0);
    let mut wa = server.ws(&owner.token).await;
    let mut wb = server.ws(&bob.token).await;
    let gid = create_group(&server, &owner, &[&bob]).await;
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupCreate").await;
    }
    assert_eq!(send_group(&server, &owner, gid, "one").await["seq"], 2);
    for ws in [&mut wa, &mut wb] {
        next_group_msg(ws, gid).await;
    }
    let g = gid.to_string();
    assert_ok(
        &post(
            &server,
            &owner,
            "/api/chat/groupUpdateName",
            &[("id", &g), ("name", "idle")],
        )
        .await,
    );
    for ws in [&mut wa, &mut wb] {
        next_notice(ws, gid, "groupRename").await;
    }

    // The group's actor is in memory while it works, and stops once idle.
    assert_eq!(server.metric("parlor_groups_running").await, 1.0);
    let mut started = server.metric("parlor_groups_started_total").await;
    server.wait_metric("parlor_groups_running", 0.0).await;

    for round in 0..2 {
        // REST: the actor is started again from redb, with the name set before it stopped.
        let m = send_group(&server, &owner, gid, &format!("rest {round}")).await;
        assert_eq!(m["to_name"], "idle");
        started += 1.0;
        assert_eq!(server.metric("parlor_groups_started_total").await, started);
        for ws in [&mut wa, &mut wb] {
            assert_eq!(next_group_msg(ws, gid).await["data"]["id"], m["id"]);
        }
        server.wait_metric("parlor_groups_running", 0.0).await;
        // WebSocket: the session's cached address is stale; it looks the group up again.
        ws_send_group(&mut wb, &format!("w{round}"), gid, "ws after idle").await;
        let ack = wb.next_of_type("ack").await;
        assert_eq!(ack["data"]["seq"], m["seq"].as_u64().unwrap() + 1, "{ack}");
        started += 1.0;
        assert_eq!(server.metric("parlor_groups_started_total").await, started);
        assert_eq!(
            next_group_msg(&mut wa, gid).await["data"]["id"],
            ack["data"]["id"]
        );
        server.wait_metric("parlor_groups_running", 0.0).await;
    }
    // Membership rules too: an outsider is still refused after a reload.
    let outsider = server.register("outsider1").await;
    let refused = assert_fail(
        &send_group_raw(&server, &outsider, gid, "x").await,
        StatusCode::FORBIDDEN,
    );
    assert!(refused.contains("member"), "{refused}");
    assert_eq!(server.metric("parlor_groups_started_total").await, started + 1.0);
    wa.assert_quiet(200).await;
    wb.assert_quiet(100).await;
    server.stop().await;
}
