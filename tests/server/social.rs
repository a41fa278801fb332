//! The uni-app face's friend routes (`shared/seeds/002_*`, sections 五 to 十二, 十七, 十九,
//! 三十三, 三十九, 四十) and the rules of who may send a direct message, against a real
//! server over real HTTP and WebSocket clients: friend applications and their
//! `systemNotice` pushes, the application list and its paging, answering applications, the
//! friend list grouped by initial (Latin, pinyin, `#`), friend settings (blacklist, star,
//! visibility), friendship queries, deleting friends, user settings, the automatic
//! friendship of users who need no approval, and the `userset.chatset` send rules for users
//! and visitors. Every failure is checked for its status and the
//! `{"msg":"fail","data":"reason"}` envelope.

use crate::common;

use common::{assert_fail, assert_ok, register_visitor, user_of, TestServer, User};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

type Got = (StatusCode, Value);

/// `applyfriend` from `from` to the user id `to`, with a note.
async fn apply(server: &TestServer, from: &User, to: u64, note: &str) -> Got {
    let to = to.to_string();
    server
        .post_form(
            "/api/chat/applyfriend",
            Some(&from.token),
            &[("friend_id", to.as_str()), ("nickname", note)],
        )
        .await
}

/// The `data` of `listapplyfriend` at `path` (after `/api/chat/listapplyfriend`).
async fn applications(server: &TestServer, user: &User, path: &str) -> Value {
    assert_ok(
        &server
            .get(&format!("/api/chat/listapplyfriend{path}"), Some(&user.token))
            .await,
    )
}

/// The id of the pending application from `applicant` to `target`.
async fn pending_id(server: &TestServer, target: &User, applicant: &User) -> u64 {
    let list = applications(server, target, "").await;
    list["alldata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user_id"] == applicant.id && a["status"] == "pending")
        .unwrap_or_else(|| panic!("no pending application from {} in {list}", applicant.id))["id"]
        .as_u64()
        .unwrap()
}

/// `handleapply/:id` as `user`, with a status and a remark.
async fn handle(server: &TestServer, user: &User, id: u64, status: &str, remark: &str) -> Got {
    server
        .post_form(
            &format!("/api/chat/handleapply/{id}"),
            Some(&user.token),
            &[("status", status), ("nickname", remark)],
        )
        .await
}

/// `applicant` applies to `target`, who agrees, naming the applicant `remark`.
async fn befriend(server: &TestServer, applicant: &User, target: &User, remark: &str) {
    assert_ok(&apply(server, applicant, target.id, "").await);
    let id = pending_id(server, target, applicant).await;
    assert_ok(&handle(server, target, id, "agree", remark).await);
}

/// The `data` of `goodfriendlist` at `path` (after `/api/chat/goodfriendlist`).
async fn friend_list(server: &TestServer, user: &User, path: &str) -> Value {
    assert_ok(
        &server
            .get(&format!("/api/chat/goodfriendlist{path}"), Some(&user.token))
            .await,
    )
}

/// The friend ids of a friend list, in list order.
fn listed_ids(list: &Value) -> Vec<u64> {
    list["rows"]["newList"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["list"].as_array().unwrap().iter())
        .map(|e| e["friend_id"].as_u64().unwrap())
        .collect()
}

/// The friend ids of `user`'s friend list.
async fn friend_ids(server: &TestServer, user: &User) -> Vec<u64> {
    listed_ids(&friend_list(server, user, "").await)
}

/// `ismygoodfriend/:id` as `me`.
async fn is_my_friend(server: &TestServer, me: &User, other: u64) -> Got {
    server
        .post_form(&format!("/api/chat/ismygoodfriend/{other}"), Some(&me.token), &[])
        .await
}

/// A POST with form fields to `path` as `user`.
async fn post(server: &TestServer, user: &User, path: &str, form: &[(&str, &str)]) -> Got {
    server.post_form(path, Some(&user.token), form).await
}

/// `updateUserinfo` of one field.
async fn update(server: &TestServer, user: &User, field: &str, value: &str) {
    let got = post(
        server,
        user,
        "/api/chat/updateUserinfo",
        &[("fieldname", field), ("fieldValue", value)],
    )
    .await;
    assert_ok(&got);
}

/// Sets `user`'s `userset`.
async fn set_userset(server: &TestServer, user: &User, userset: &Value) {
    let text = userset.to_string();
    assert_ok(&post(server, user, "/api/chat/userset", &[("userset", text.as_str())]).await);
}

/// A REST `sendmessage` from `from` to `to`, with an optional `cid`.
async fn send(server: &TestServer, from: &User, to: &User, text: &str, cid: Option<&str>) -> Got {
    let to = to.id.to_string();
    let mut form = vec![
        ("sendto_id", to.as_str()),
        ("chatType", "single"),
        ("type", "text"),
        ("data", text),
    ];
    if let Some(cid) = cid {
        form.push(("cid", cid));
    }
    post(server, from, "/api/chat/socket/sendmessage", &form).await
}

/// `autoAddFriendAndAgree` from `from` to `to`.
async fn auto_add(server: &TestServer, from: &User, to: &User) -> Got {
    let to = to.id.to_string();
    post(
        server,
        from,
        "/api/chat/autoAddFriendAndAgree",
        &[("friend_id", to.as_str()), ("nickname", "hello")],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// applyfriend

#[actix_web::test]
async fn applyfriend_notifies_the_target_and_refuses_what_it_must() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let mut bob_ws = server.ws(&bob.token).await;

    let got = apply(&server, &alice, bob.id, "我是alice").await;
    assert_eq!(assert_ok(&got), "ok");
    let notice = bob_ws.next_of_type("systemNotice").await;
    let d = &notice["data"];
    assert_eq!(d["actionType"], "applyFriend", "{notice}");
    assert_eq!(d["from_id"], alice.id);
    assert_eq!(d["from_name"], "alice");
    assert_eq!(d["to_id"], bob.id);
    let other = &d["data"]["otherData"];
    assert_eq!(other["user_id"], alice.id, "{notice}");
    assert_eq!(other["friend_id"], bob.id);
    assert_eq!(other["nickname"], "我是alice");
    assert_eq!(other["status"], "pending");
    assert_eq!(
        other["id"].as_u64(),
        Some(pending_id(&server, &bob, &alice).await)
    );

    // Applying again while it is pending.
    assert_fail(
        &apply(&server, &alice, bob.id, "again").await,
        StatusCode::CONFLICT,
    );
    // No token, self, unknown user, bad or missing friend_id.
    let bob_id = bob.id.to_string();
    let no_token = server
        .post_form("/api/chat/applyfriend", None, &[("friend_id", bob_id.as_str())])
        .await;
    assert_fail(&no_token, StatusCode::UNAUTHORIZED);
    assert_fail(
        &apply(&server, &alice, alice.id, "").await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(&apply(&server, &alice, 999_999, "").await, StatusCode::NOT_FOUND);
    let bad = post(&server, &alice, "/api/chat/applyfriend", &[("friend_id", "bob")]).await;
    assert!(assert_fail(&bad, StatusCode::BAD_REQUEST).contains("friend_id"));
    let missing = post(&server, &alice, "/api/chat/applyfriend", &[("nickname", "x")]).await;
    assert!(assert_fail(&missing, StatusCode::BAD_REQUEST).contains("friend_id"));
    let long = "长".repeat(51);
    assert_fail(
        &apply(&server, &alice, bob.id, &long).await,
        StatusCode::BAD_REQUEST,
    );

    // Friends cannot apply to each other, in either direction.
    let id = pending_id(&server, &bob, &alice).await;
    assert_ok(&handle(&server, &bob, id, "agree", "").await);
    assert_fail(&apply(&server, &alice, bob.id, "").await, StatusCode::CONFLICT);
    assert_fail(&apply(&server, &bob, alice.id, "").await, StatusCode::CONFLICT);

    // A visitor may not apply.
    let visitor = register_visitor(&server).await;
    assert_fail(&apply(&server, &visitor, bob.id, "").await, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[actix_web::test]
async fn applyfriend_to_a_user_who_banned_me_is_forbidden() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    let got = server
        .post_json(&format!("/user/ban/{}", alice.id), Some(&carol.token), &json!({}))
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let reason = assert_fail(&apply(&server, &alice, carol.id, "").await, StatusCode::FORBIDDEN);
    assert!(reason.contains("blocked"), "{reason}");
    // Nothing was recorded for carol.
    let list = applications(&server, &carol, "").await;
    assert_eq!(list["alldata"], json!([]));
    assert_eq!(list["pendingCount"], 0);
    server.stop().await;
}

#[actix_web::test]
async fn a_refused_application_can_be_made_again() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    assert_ok(&apply(&server, &alice, bob.id, "first").await);
    let first = pending_id(&server, &bob, &alice).await;
    assert_ok(&handle(&server, &bob, first, "refuse", "").await);
    assert_ok(&apply(&server, &alice, bob.id, "second").await);
    let second = pending_id(&server, &bob, &alice).await;
    assert_ne!(first, second);
    let list = applications(&server, &bob, "").await;
    assert_eq!(list["pendingCount"], 1);
    let all = list["alldata"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (&all[0]["nickname"], &all[0]["status"]),
        (&json!("second"), &json!("pending"))
    );
    assert_eq!(
        (&all[1]["nickname"], &all[1]["status"]),
        (&json!("first"), &json!("refuse"))
    );
    server.stop().await;
}

#[actix_web::test]
async fn becoming_friends_settles_the_pending_applications_between_them() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    // Both apply; bob agrees to alice's: bob's own application to alice is settled too.
    assert_ok(&apply(&server, &alice, bob.id, "").await);
    assert_ok(&apply(&server, &bob, alice.id, "").await);
    let bobs = pending_id(&server, &alice, &bob).await;
    let alices = pending_id(&server, &bob, &alice).await;
    assert_ok(&handle(&server, &bob, alices, "agree", "").await);
    for user in [&alice, &bob] {
        let list = applications(&server, user, "").await;
        assert_eq!(list["pendingCount"], 0, "{list}");
        assert_eq!(list["alldata"][0]["status"], "agree", "{list}");
    }
    let is_apply = format!("/api/chat/isApplyfriend/{}", bob.uuid);
    assert_eq!(
        assert_ok(&post(&server, &alice, &is_apply, &[]).await),
        Value::Null
    );
    assert_fail(
        &handle(&server, &alice, bobs, "agree", "").await,
        StatusCode::CONFLICT,
    );

    // A chat-room contact settles a pending application too.
    let carol = server.register("carol").await;
    assert_ok(&apply(&server, &carol, bob.id, "").await);
    let got = server
        .post_json("/contacts/add", Some(&bob.token), &json!({"id": carol.id}))
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(applications(&server, &bob, "").await["pendingCount"], 0);

    // And so does autoAddFriendAndAgree by the applicant.
    let dave = server.register("dave").await;
    update(&server, &bob, "invite_confirm", "0").await;
    assert_ok(&apply(&server, &dave, bob.id, "").await);
    let id = pending_id(&server, &bob, &dave).await;
    assert_ok(&auto_add(&server, &dave, &bob).await);
    let list = applications(&server, &bob, "").await;
    assert_eq!(list["pendingCount"], 0, "{list}");
    let old = list["alldata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(old["status"], "agree");
    let mut ids = friend_ids(&server, &bob).await;
    ids.sort_unstable();
    assert_eq!(ids, vec![alice.id, carol.id, dave.id]);
    server.stop().await;
}

#[actix_web::test]
async fn tenants_never_see_each_others_users() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    update(&server, &alice, "invite_confirm", "0").await;
    let (status, body) = server
        .post_form(
            "/api/regChat",
            None,
            &[("username", "other"), ("password", "secret1"), ("app_id", "t2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other = user_of(&body);
    let alice_id = alice.id.to_string();

    assert_fail(&apply(&server, &other, alice.id, "").await, StatusCode::NOT_FOUND);
    assert_fail(&auto_add(&server, &other, &alice).await, StatusCode::NOT_FOUND);
    assert_fail(
        &is_my_friend(&server, &other, alice.id).await,
        StatusCode::NOT_FOUND,
    );
    let got = post(
        &server,
        &other,
        "/api/chat/getUserSetInfo",
        &[("userid", alice_id.as_str())],
    )
    .await;
    assert_fail(&got, StatusCode::NOT_FOUND);
    let got = post(
        &server,
        &other,
        &format!("/api/chat/isApplyfriend/{}", alice.uuid),
        &[],
    )
    .await;
    let reason = assert_fail(&got, StatusCode::NOT_FOUND);
    assert!(reason.contains("does not exist"), "{reason}");
    let got = server
        .post_json("/contacts/add", Some(&other.token), &json!({"id": alice.id}))
        .await;
    let reason = common::assert_room_refused(&got, StatusCode::NOT_FOUND);
    assert_eq!(reason, format!("user {} does not exist", alice.id));
    let reason = assert_fail(
        &send(&server, &other, &alice, "hi", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(reason, format!("user {} does not exist", alice.id));
    assert_eq!(friend_ids(&server, &alice).await, Vec::<u64>::new());
    assert_eq!(applications(&server, &alice, "").await["pendingCount"], 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// listapplyfriend

#[actix_web::test]
async fn listapplyfriend_is_newest_first_with_users_and_pages() {
    let (server, _dir) = TestServer::start().await;
    let target = server.register("target").await;
    let mut applicants = Vec::new();
    for name in ["app_1", "app_2", "app_3", "app_4"] {
        let u = server.register(name).await;
        assert_ok(&apply(&server, &u, target.id, &format!("from {name}")).await);
        applicants.push(u);
    }
    update(&server, &applicants[3], "nickname", "魂牵一梦").await;

    let all = applications(&server, &target, "").await;
    assert_eq!(all["pendingCount"], 4);
    let rows = all["alldata"].as_array().unwrap();
    let order: Vec<u64> = rows.iter().map(|a| a["user_id"].as_u64().unwrap()).collect();
    let newest_first: Vec<u64> = applicants.iter().rev().map(|u| u.id).collect();
    assert_eq!(order, newest_first);
    let top = &rows[0];
    assert_eq!(top["friend_id"], target.id);
    assert_eq!(top["userId"], applicants[3].id);
    assert_eq!(top["nickname"], "from app_4");
    assert_eq!(top["status"], "pending");
    assert_eq!(top["user"]["id"], applicants[3].id);
    assert_eq!(top["user"]["username"], "app_4");
    assert_eq!(top["user"]["nickname"], "魂牵一梦");
    assert!(top["user"]["avatar"].is_string(), "{top}");
    assert!(top["create_time"].is_string(), "{top}");

    // Paging: the path's page and `?limit=`, and the document's `/1&limit=3`.
    let ids = |v: &Value| -> Vec<u64> {
        v["alldata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["user_id"].as_u64().unwrap())
            .collect()
    };
    let page1 = applications(&server, &target, "/1?limit=3").await;
    assert_eq!(ids(&page1), newest_first[..3]);
    let page2 = applications(&server, &target, "/2?limit=3").await;
    assert_eq!(ids(&page2), newest_first[3..]);
    assert_eq!(page2["pendingCount"], 4);
    let inline = applications(&server, &target, "/1&limit=3").await;
    assert_eq!(ids(&inline), newest_first[..3]);
    let inline2 = applications(&server, &target, "/2&limit=2").await;
    assert_eq!(ids(&inline2), newest_first[2..]);
    let past = applications(&server, &target, "/9?limit=3").await;
    assert_eq!(past["alldata"], json!([]));
    assert_eq!(past["pendingCount"], 4);
    // Pages and limits far past the end are empty, not an overflow.
    for path in [
        "/18446744073709551615?limit=10",
        "/18446744073709551615&limit=18446744073709551615",
        "/2?limit=18446744073709551615",
    ] {
        let far = applications(&server, &target, path).await;
        assert_eq!(far["alldata"], json!([]), "{path}");
        assert_eq!(far["pendingCount"], 4);
    }

    // An answered application stays listed but is no longer pending.
    let id = pending_id(&server, &target, &applicants[0]).await;
    assert_ok(&handle(&server, &target, id, "ignore", "").await);
    let after = applications(&server, &target, "").await;
    assert_eq!(after["pendingCount"], 3);
    assert_eq!(after["alldata"].as_array().unwrap().len(), 4);
    assert_eq!(after["alldata"][3]["status"], "ignore");

    // Bad pages and limits; visitors; no token.
    for path in [
        "/0",
        "/abc",
        "/-1",
        "/1?limit=0",
        "/1?limit=x",
        "/0&limit=3",
        "/1&limit=abc",
    ] {
        let got = server
            .get(&format!("/api/chat/listapplyfriend{path}"), Some(&target.token))
            .await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    let visitor = register_visitor(&server).await;
    let got = server
        .get("/api/chat/listapplyfriend/1", Some(&visitor.token))
        .await;
    assert_fail(&got, StatusCode::FORBIDDEN);
    assert_fail(
        &server.get("/api/chat/listapplyfriend/1", None).await,
        StatusCode::UNAUTHORIZED,
    );
    // The applicant sees none of it: the list is of applications to me.
    let mine = applications(&server, &applicants[1], "").await;
    assert_eq!(mine["alldata"], json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn a_limit_over_page_max_is_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.page_max = 2).await;
    let target = server.register("target").await;
    for name in ["app_1", "app_2", "app_3"] {
        let u = server.register(name).await;
        assert_ok(&apply(&server, &u, target.id, "").await);
    }
    let len = |v: &Value| v["alldata"].as_array().unwrap().len();
    assert_eq!(len(&applications(&server, &target, "/1?limit=50").await), 2);
    assert_eq!(len(&applications(&server, &target, "/2?limit=50").await), 1);
    assert_eq!(len(&applications(&server, &target, "/1&limit=50").await), 2);
    // The default (10) is clamped too.
    assert_eq!(len(&applications(&server, &target, "").await), 2);
    // The friend list's default of 2000 as well.
    let list = applications(&server, &target, "/1?limit=50").await;
    for a in list["alldata"].as_array().unwrap() {
        let id = a["id"].as_u64().unwrap();
        assert_ok(&handle(&server, &target, id, "agree", "").await);
    }
    let rest = applications(&server, &target, "/2?limit=2").await;
    let id = rest["alldata"][0]["id"].as_u64().unwrap();
    assert_ok(&handle(&server, &target, id, "agree", "").await);
    let friends = friend_list(&server, &target, "").await;
    assert_eq!(friends["count"], 3);
    assert_eq!(listed_ids(&friends).len(), 2);
    assert_eq!(
        listed_ids(&friend_list(&server, &target, "/2?limit=100").await).len(),
        1
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// handleapply

#[actix_web::test]
async fn agreeing_makes_both_sides_friends_and_tells_the_applicant() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    assert_ok(&apply(&server, &alice, bob.id, "hi").await);
    let id = pending_id(&server, &bob, &alice).await;
    let mut alice_ws = server.ws(&alice.token).await;

    assert_eq!(assert_ok(&handle(&server, &bob, id, "agree", "阿三").await), "ok");
    let notice = alice_ws.next_of_type("systemNotice").await;
    assert_eq!(notice["data"]["actionType"], "agreeFriend", "{notice}");
    assert_eq!(notice["data"]["from_id"], bob.id);
    assert_eq!(notice["data"]["to_id"], alice.id);
    assert_eq!(notice["data"]["data"]["otherData"]["status"], "agree");

    assert_eq!(friend_ids(&server, &alice).await, vec![bob.id]);
    assert_eq!(friend_ids(&server, &bob).await, vec![alice.id]);
    // The remark is bob's name for alice, not alice's for bob.
    assert_eq!(
        assert_ok(&is_my_friend(&server, &bob, alice.id).await)["nickname"],
        "阿三"
    );
    assert_eq!(
        assert_ok(&is_my_friend(&server, &alice, bob.id).await)["nickname"],
        ""
    );
    let list = applications(&server, &bob, "").await;
    assert_eq!(list["alldata"][0]["status"], "agree");
    assert_eq!(list["pendingCount"], 0);

    // Answering twice.
    assert_fail(
        &handle(&server, &bob, id, "refuse", "").await,
        StatusCode::CONFLICT,
    );
    assert_fail(
        &handle(&server, &bob, id, "agree", "").await,
        StatusCode::CONFLICT,
    );
    server.stop().await;
}

#[actix_web::test]
async fn refusing_or_ignoring_makes_no_friends_and_sends_nothing() {
    let (server, _dir) = TestServer::start().await;
    let bob = server.register("bob_1").await;
    for (name, status) in [("alice", "refuse"), ("carol", "ignore")] {
        let applicant = server.register(name).await;
        assert_ok(&apply(&server, &applicant, bob.id, "").await);
        let id = pending_id(&server, &bob, &applicant).await;
        let mut ws = server.ws(&applicant.token).await;
        assert_ok(&handle(&server, &bob, id, status, "x").await);
        ws.assert_quiet(300).await;
        assert_eq!(friend_ids(&server, &applicant).await, Vec::<u64>::new());
        assert_eq!(assert_ok(&is_my_friend(&server, &bob, applicant.id).await), false);
        assert_fail(
            &handle(&server, &bob, id, "agree", "").await,
            StatusCode::CONFLICT,
        );
        let list = applications(&server, &bob, "").await;
        let row = list["alldata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap();
        assert_eq!(row["status"], status);
    }
    assert_eq!(friend_ids(&server, &bob).await, Vec::<u64>::new());
    server.stop().await;
}

#[actix_web::test]
async fn handleapply_refusals() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let mallory = server.register("mallory").await;
    assert_ok(&apply(&server, &alice, bob.id, "").await);
    let id = pending_id(&server, &bob, &alice).await;

    // Not addressed to them: a third user, and the applicant.
    assert_fail(
        &handle(&server, &mallory, id, "agree", "").await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &handle(&server, &alice, id, "agree", "").await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &handle(&server, &mallory, id, "pending", "").await,
        StatusCode::FORBIDDEN,
    );
    // Unknown and malformed ids, bad and missing status.
    assert_fail(
        &handle(&server, &bob, 99_999, "agree", "").await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &handle(&server, &bob, 99_999, "pending", "").await,
        StatusCode::NOT_FOUND,
    );
    let got = post(&server, &bob, "/api/chat/handleapply/abc", &[("status", "agree")]).await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let reason = assert_fail(
        &handle(&server, &bob, id, "maybe", "").await,
        StatusCode::BAD_REQUEST,
    );
    assert!(reason.contains("status"), "{reason}");
    let got = post(&server, &bob, &format!("/api/chat/handleapply/{id}"), &[]).await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let long = "x".repeat(51);
    assert_fail(
        &handle(&server, &bob, id, "agree", &long).await,
        StatusCode::BAD_REQUEST,
    );
    let got = server
        .post_form(
            &format!("/api/chat/handleapply/{id}"),
            None,
            &[("status", "agree")],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    let visitor = register_visitor(&server).await;
    assert_fail(
        &handle(&server, &visitor, id, "agree", "").await,
        StatusCode::FORBIDDEN,
    );

    // `pending` leaves it as it is; none of the refusals changed it.
    assert_ok(&handle(&server, &bob, id, "pending", "").await);
    assert_eq!(applications(&server, &bob, "").await["pendingCount"], 1);
    assert_eq!(friend_ids(&server, &bob).await, Vec::<u64>::new());
    assert_ok(&handle(&server, &bob, id, "agree", "").await);
    assert_eq!(friend_ids(&server, &bob).await, vec![alice.id]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// goodfriendlist

#[actix_web::test]
async fn goodfriendlist_groups_by_initial_with_pinyin_and_hash_last() {
    let (server, _dir) = TestServer::start().await;
    let owner = server.register("owner").await;
    // (username, nickname, owner's remark)
    let people = [
        ("alice", "", ""),
        ("zoe_a", "Anna", ""),
        ("hun_1", "魂牵一梦", ""),
        ("zhang", "张三", ""),
        ("dave", "张飞", "Ella"),
        ("9lives", "", ""),
        ("__x1", "", ""),
    ];
    let mut users = Vec::new();
    for (name, nickname, remark) in people {
        let u = server.register(name).await;
        if !nickname.is_empty() {
            update(&server, &u, "nickname", nickname).await;
        }
        befriend(&server, &u, &owner, remark).await;
        users.push(u);
    }
    let id_of = |name: &str| users.iter().find(|u| u.username == name).unwrap().id;

    let list = friend_list(&server, &owner, "").await;
    assert_eq!(list["count"], 7, "{list}");
    assert_eq!(list["rows"]["total"], 7);
    assert_eq!(
        list["rows"]["indexList"],
        json!(["A", "E", "H", "Z", "#"]),
        "{list}"
    );
    let groups = list["rows"]["newList"].as_array().unwrap();
    let titles: Vec<&Value> = groups.iter().map(|g| &g["title"]).collect();
    assert_eq!(
        titles,
        [&json!("A"), &json!("E"), &json!("H"), &json!("Z"), &json!("#")]
    );
    let names = |g: &Value| -> Vec<String> {
        g["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&groups[0]), ["alice", "Anna"]);
    assert_eq!(names(&groups[1]), ["Ella"]);
    assert_eq!(names(&groups[2]), ["魂牵一梦"]);
    assert_eq!(names(&groups[3]), ["张三"]);
    assert_eq!(names(&groups[4]), ["9lives", "__x1"]);

    // The entry's fields: the remark wins over the nickname for `name`.
    let ella = &groups[1]["list"][0];
    assert_eq!(ella["beizhu"], "Ella");
    assert_eq!(ella["friend_nickname"], "张飞");
    assert_eq!(ella["username"], "dave");
    assert_eq!(ella["friend_id"], id_of("dave"));
    assert!(ella["avatar"].is_string() && ella["id"].is_u64(), "{ella}");
    let hun = &groups[2]["list"][0];
    assert_eq!(
        (&hun["beizhu"], &hun["friend_nickname"], &hun["friend_id"]),
        (&json!(""), &json!("魂牵一梦"), &json!(id_of("hun_1")))
    );

    // Paging over the sorted entries; the count is of all friends.
    let page = |v: &Value| (v["rows"]["indexList"].clone(), listed_ids(v), v["count"].clone());
    let p1 = friend_list(&server, &owner, "/1?limit=3").await;
    assert_eq!(
        page(&p1),
        (
            json!(["A", "E"]),
            vec![id_of("alice"), id_of("zoe_a"), id_of("dave")],
            json!(7)
        )
    );
    let p2 = friend_list(&server, &owner, "/2?limit=3").await;
    assert_eq!(
        page(&p2),
        (
            json!(["H", "Z", "#"]),
            vec![id_of("hun_1"), id_of("zhang"), id_of("9lives")],
            json!(7)
        )
    );
    let p3 = friend_list(&server, &owner, "/3&limit=3").await;
    assert_eq!(page(&p3), (json!(["#"]), vec![id_of("__x1")], json!(7)));
    let far = friend_list(&server, &owner, "/18446744073709551615?limit=3").await;
    assert_eq!(page(&far), (json!([]), vec![], json!(7)));

    // Each friend sees the owner once, under O, without a remark.
    let theirs = friend_list(&server, &users[4], "").await;
    assert_eq!(theirs["rows"]["indexList"], json!(["O"]));
    assert_eq!(theirs["rows"]["newList"][0]["list"][0]["name"], "owner");
    assert_eq!(theirs["rows"]["newList"][0]["list"][0]["beizhu"], "");

    // A changed nickname moves the friend.
    update(&server, &users[0], "nickname", "Zed").await;
    let again = friend_list(&server, &owner, "").await;
    assert_eq!(again["rows"]["indexList"], json!(["A", "E", "H", "Z", "#"]));
    assert_eq!(names(&again["rows"]["newList"][3]), ["Zed", "张三"]);
    assert_eq!(names(&again["rows"]["newList"][0]), ["Anna"]);
    server.stop().await;
}

#[actix_web::test]
async fn goodfriendlist_empty_and_refusals() {
    let (server, _dir) = TestServer::start().await;
    let loner = server.register("loner").await;
    let list = friend_list(&server, &loner, "").await;
    assert_eq!(
        list,
        json!({"count": 0, "rows": {"newList": [], "indexList": [], "total": 0}})
    );
    let list = friend_list(&server, &loner, "/1?limit=5").await;
    assert_eq!(list["count"], 0);
    for path in ["/0", "/x", "/1?limit=0"] {
        let got = server
            .get(&format!("/api/chat/goodfriendlist{path}"), Some(&loner.token))
            .await;
        assert_fail(&got, StatusCode::BAD_REQUEST);
    }
    let far = friend_list(&server, &loner, "/18446744073709551615?limit=2000").await;
    assert_eq!(far["rows"]["newList"], json!([]));
    assert_fail(
        &server.get("/api/chat/goodfriendlist", None).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(
        &server
            .get("/api/chat/goodfriendlist/1", Some(&visitor.token))
            .await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Friend details and settings

#[actix_web::test]
async fn getgoodfriendinfo_returns_the_row_and_the_friends_profile() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    update(&server, &alice, "nickname", "魂牵一梦").await;
    update(&server, &alice, "gender", "female").await;
    update(&server, &alice, "bio", "hello there").await;
    befriend(&server, &alice, &bob, "好友魂牵一梦").await;

    let got = server
        .get(
            &format!("/api/chat/getgoodfriendinfo/{}", alice.id),
            Some(&bob.token),
        )
        .await;
    let d = assert_ok(&got);
    assert_eq!(d["user_id"], bob.id);
    assert_eq!(d["friend_id"], alice.id);
    assert_eq!(d["nickname"], "好友魂牵一梦");
    assert!(d["id"].is_u64(), "{d}");
    assert_eq!((&d["friendlookme"], &d["melookfriend"]), (&json!(1), &json!(1)));
    assert_eq!((&d["ismystarfriend"], &d["isblack"]), (&json!(0), &json!(0)));
    let info = &d["friendinfo"];
    assert_eq!(info["id"], alice.id);
    assert_eq!(info["username"], "alice");
    assert_eq!(info["nickname"], "魂牵一梦");
    assert_eq!(info["role"], "user");
    assert_eq!(info["status"], 1);
    assert!(info["avatar"].is_string(), "{info}");
    let ui = &info["userinfo"];
    assert_eq!(ui["id"], alice.id);
    assert_eq!(ui["gender"], "female");
    assert_eq!(ui["bio"], "hello there");
    assert_eq!(ui["birthday"], Value::Null);
    // The same friendship row everywhere.
    let row = assert_ok(&is_my_friend(&server, &bob, alice.id).await);
    assert_eq!(row["id"], d["id"]);
    let list = friend_list(&server, &bob, "").await;
    assert_eq!(list["rows"]["newList"][0]["list"][0]["id"], d["id"]);
    let theirs = assert_ok(&is_my_friend(&server, &alice, bob.id).await);
    assert_ne!(theirs["id"], d["id"]);

    // Not a friend, unknown, malformed, no token, visitor.
    for (path, status) in [
        (
            format!("/api/chat/getgoodfriendinfo/{}", carol.id),
            StatusCode::NOT_FOUND,
        ),
        ("/api/chat/getgoodfriendinfo/99999".into(), StatusCode::NOT_FOUND),
        ("/api/chat/getgoodfriendinfo/abc".into(), StatusCode::BAD_REQUEST),
    ] {
        assert_fail(&server.get(&path, Some(&bob.token)).await, status);
    }
    let path = format!("/api/chat/getgoodfriendinfo/{}", alice.id);
    assert_fail(&server.get(&path, None).await, StatusCode::UNAUTHORIZED);
    let visitor = register_visitor(&server).await;
    assert_fail(
        &server.get(&path, Some(&visitor.token)).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

#[actix_web::test]
async fn setblackgoodfriend_toggles_and_refuses_the_blacklisted_friends_messages() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    befriend(&server, &bob, &alice, "").await;
    let black = format!("/api/chat/setblackgoodfriend/{}", bob.id);
    let isblack = |got: Got| assert_ok(&got)["isblack"].clone();
    assert_eq!(isblack(is_my_friend(&server, &alice, bob.id).await), 0);
    assert_ok(&send(&server, &bob, &alice, "before", None).await);

    // Toggle on: bob's messages to alice are refused over REST and WebSocket.
    assert_eq!(assert_ok(&post(&server, &alice, &black, &[]).await), "ok");
    assert_eq!(isblack(is_my_friend(&server, &alice, bob.id).await), 1);
    let info = server
        .get(
            &format!("/api/chat/getgoodfriendinfo/{}", bob.id),
            Some(&alice.token),
        )
        .await;
    assert_eq!(assert_ok(&info)["isblack"], 1);
    // Only alice's side: bob has not blacklisted alice, and alice may still write to bob.
    assert_eq!(isblack(is_my_friend(&server, &bob, alice.id).await), 0);
    assert_ok(&send(&server, &alice, &bob, "alice to bob", None).await);
    assert_fail(
        &send(&server, &bob, &alice, "blocked", None).await,
        StatusCode::FORBIDDEN,
    );
    let mut bob_ws = server.ws(&bob.token).await;
    bob_ws.send_msg("w1", alice.id, "blocked too").await;
    let err = bob_ws.next_of_type("error").await;
    assert_eq!(err["code"], "forbidden", "{err}");
    assert_eq!(err["cid"], "w1");
    assert!(err["msg"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
    // The friendship itself remains.
    assert_eq!(friend_ids(&server, &alice).await, vec![bob.id]);

    // Toggle off: allowed again.
    assert_ok(&post(&server, &alice, &black, &[]).await);
    assert_eq!(isblack(is_my_friend(&server, &alice, bob.id).await), 0);
    assert_ok(&send(&server, &bob, &alice, "after", None).await);
    bob_ws.send_msg("w2", alice.id, "over ws").await;
    assert_eq!(bob_ws.next_of_type("ack").await["cid"], "w2");

    // Explicit values are idempotent.
    for (value, expected) in [("1", 1), ("1", 1), ("0", 0), ("0", 0), ("1", 1)] {
        assert_ok(&post(&server, &alice, &black, &[("isblack", value)]).await);
        assert_eq!(isblack(is_my_friend(&server, &alice, bob.id).await), expected);
    }
    assert_fail(
        &send(&server, &bob, &alice, "no", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_ok(&post(&server, &alice, &black, &[("isblack", "0")]).await);
    assert_ok(&send(&server, &bob, &alice, "yes", None).await);

    // Refusals.
    assert_fail(
        &post(&server, &alice, &black, &[("isblack", "2")]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &post(&server, &alice, &black, &[("isblack", "yes")]).await,
        StatusCode::BAD_REQUEST,
    );
    let carol = server.register("carol").await;
    let not_friend = format!("/api/chat/setblackgoodfriend/{}", carol.id);
    assert_fail(
        &post(&server, &alice, &not_friend, &[]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &post(&server, &alice, "/api/chat/setblackgoodfriend/abc", &[]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.post_form(&black, None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(&post(&server, &visitor, &black, &[]).await, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[actix_web::test]
async fn setstargoodfriend_toggles_and_takes_explicit_values() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    befriend(&server, &bob, &alice, "").await;
    let star = format!("/api/chat/setstargoodfriend/{}", bob.id);
    let starred = |got: Got| assert_ok(&got)["ismystarfriend"].clone();
    assert_eq!(starred(is_my_friend(&server, &alice, bob.id).await), 0);
    assert_eq!(assert_ok(&post(&server, &alice, &star, &[]).await), "ok");
    assert_eq!(starred(is_my_friend(&server, &alice, bob.id).await), 1);
    // Mine only.
    assert_eq!(starred(is_my_friend(&server, &bob, alice.id).await), 0);
    assert_ok(&post(&server, &alice, &star, &[]).await);
    assert_eq!(starred(is_my_friend(&server, &alice, bob.id).await), 0);
    for (value, expected) in [("1", 1), ("1", 1), ("0", 0)] {
        assert_ok(&post(&server, &alice, &star, &[("star", value)]).await);
        assert_eq!(starred(is_my_friend(&server, &alice, bob.id).await), expected);
    }
    let info = server
        .get(
            &format!("/api/chat/getgoodfriendinfo/{}", bob.id),
            Some(&alice.token),
        )
        .await;
    assert_eq!(assert_ok(&info)["ismystarfriend"], 0);

    assert_fail(
        &post(&server, &alice, &star, &[("star", "3")]).await,
        StatusCode::BAD_REQUEST,
    );
    let carol = server.register("carol").await;
    let not_friend = format!("/api/chat/setstargoodfriend/{}", carol.id);
    assert_fail(
        &post(&server, &alice, &not_friend, &[]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &server.post_form(&star, None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(&post(&server, &visitor, &star, &[]).await, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[actix_web::test]
async fn setme_or_friend_can_see_sets_either_flag() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    befriend(&server, &bob, &alice, "").await;
    let path = format!("/api/chat/setmeOrfriendCanSee/{}", bob.id);
    let flags = |v: &Value| (v["friendlookme"].clone(), v["melookfriend"].clone());
    let info_path = format!("/api/chat/getgoodfriendinfo/{}", bob.id);

    assert_eq!(
        assert_ok(&post(&server, &alice, &path, &[("friendlookme", "0")]).await),
        "ok"
    );
    let row = assert_ok(&is_my_friend(&server, &alice, bob.id).await);
    assert_eq!(flags(&row), (json!(0), json!(1)));
    assert_ok(&post(&server, &alice, &path, &[("melookfriend", "0")]).await);
    let row = assert_ok(&is_my_friend(&server, &alice, bob.id).await);
    assert_eq!(flags(&row), (json!(0), json!(0)));
    let info = assert_ok(&server.get(&info_path, Some(&alice.token)).await);
    assert_eq!(flags(&info), (json!(0), json!(0)));
    assert_ok(
        &post(
            &server,
            &alice,
            &path,
            &[("friendlookme", "1"), ("melookfriend", "1")],
        )
        .await,
    );
    let info = assert_ok(&server.get(&info_path, Some(&alice.token)).await);
    assert_eq!(flags(&info), (json!(1), json!(1)));
    // A JSON body works too.
    let got = server
        .post_json(&path, Some(&alice.token), &json!({"melookfriend": 0}))
        .await;
    assert_ok(&got);
    let row = assert_ok(&is_my_friend(&server, &alice, bob.id).await);
    assert_eq!(flags(&row), (json!(1), json!(0)));
    // Bob's side is untouched.
    let theirs = assert_ok(&is_my_friend(&server, &bob, alice.id).await);
    assert_eq!(flags(&theirs), (json!(1), json!(1)));

    // Refusals; none of them changed anything.
    assert_fail(&post(&server, &alice, &path, &[]).await, StatusCode::BAD_REQUEST);
    for form in [
        [("friendlookme", "2")],
        [("melookfriend", "2")],
        [("friendlookme", "x")],
    ] {
        assert_fail(
            &post(&server, &alice, &path, &form).await,
            StatusCode::BAD_REQUEST,
        );
    }
    let got = post(
        &server,
        &alice,
        &path,
        &[("friendlookme", "0"), ("melookfriend", "2")],
    )
    .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let row = assert_ok(&is_my_friend(&server, &alice, bob.id).await);
    assert_eq!(flags(&row), (json!(1), json!(0)));
    let carol = server.register("carol").await;
    let not_friend = format!("/api/chat/setmeOrfriendCanSee/{}", carol.id);
    assert_fail(
        &post(&server, &alice, &not_friend, &[("friendlookme", "0")]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &server.post_form(&path, None, &[("friendlookme", "0")]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(
        &post(&server, &visitor, &path, &[("friendlookme", "0")]).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Queries

#[actix_web::test]
async fn is_apply_friend_returns_the_pending_application_or_null() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    let path = |u: &User| format!("/api/chat/isApplyfriend/{}", u.uuid);

    // Nothing yet.
    assert_eq!(
        assert_ok(&post(&server, &bob, &path(&alice), &[]).await),
        Value::Null
    );
    assert_ok(&apply(&server, &alice, bob.id, "我有业务要咨询您").await);
    let a = assert_ok(&post(&server, &bob, &path(&alice), &[]).await);
    assert_eq!(a["id"].as_u64(), Some(pending_id(&server, &bob, &alice).await));
    assert_eq!(a["user_id"], alice.id);
    assert_eq!(a["userId"], alice.id);
    assert_eq!(a["friend_id"], bob.id);
    assert_eq!(a["nickname"], "我有业务要咨询您");
    assert_eq!(a["status"], "pending");
    // Only the target: alice asking about bob finds nothing, nor does carol.
    assert_eq!(
        assert_ok(&post(&server, &alice, &path(&bob), &[]).await),
        Value::Null
    );
    assert_eq!(
        assert_ok(&post(&server, &carol, &path(&alice), &[]).await),
        Value::Null
    );
    // Once answered, there is nothing to handle.
    let id = a["id"].as_u64().unwrap();
    assert_ok(&handle(&server, &bob, id, "refuse", "").await);
    assert_eq!(
        assert_ok(&post(&server, &bob, &path(&alice), &[]).await),
        Value::Null
    );

    let unknown = format!("/api/chat/isApplyfriend/{}", uuid::Uuid::new_v4());
    assert_fail(&post(&server, &bob, &unknown, &[]).await, StatusCode::NOT_FOUND);
    assert_fail(
        &server.post_form(&path(&alice), None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(
        &post(&server, &visitor, &path(&alice), &[]).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

#[actix_web::test]
async fn ismygoodfriend_returns_the_row_or_false() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    assert_eq!(assert_ok(&is_my_friend(&server, &alice, bob.id).await), false);
    befriend(&server, &alice, &bob, "魂牵一梦").await;
    let row = assert_ok(&is_my_friend(&server, &bob, alice.id).await);
    assert_eq!(row["user_id"], bob.id);
    assert_eq!(row["friend_id"], alice.id);
    assert_eq!(row["nickname"], "魂牵一梦");
    assert_eq!(row["status"], 1);
    assert_eq!(
        (
            &row["friendlookme"],
            &row["melookfriend"],
            &row["ismystarfriend"],
            &row["isblack"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(0))
    );
    assert!(row["id"].is_u64(), "{row}");
    assert_eq!(
        assert_ok(&is_my_friend(&server, &alice, bob.id).await)["friend_id"],
        bob.id
    );

    assert_fail(
        &is_my_friend(&server, &alice, 99_999).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &post(&server, &alice, "/api/chat/ismygoodfriend/abc", &[]).await,
        StatusCode::BAD_REQUEST,
    );
    let path = format!("/api/chat/ismygoodfriend/{}", bob.id);
    assert_fail(
        &server.post_form(&path, None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(
        &is_my_friend(&server, &visitor, bob.id).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

#[actix_web::test]
async fn deletegoodfriend_ends_the_friendship_on_both_sides() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    befriend(&server, &alice, &bob, "").await;
    befriend(&server, &carol, &bob, "").await;
    assert_ok(&send(&server, &alice, &bob, "as friends", None).await);

    let path = format!("/api/chat/deletegoodfriend/{}", alice.id);
    assert_eq!(assert_ok(&post(&server, &bob, &path, &[]).await), "删除好友成功");
    assert_eq!(assert_ok(&is_my_friend(&server, &bob, alice.id).await), false);
    assert_eq!(assert_ok(&is_my_friend(&server, &alice, bob.id).await), false);
    assert_eq!(friend_ids(&server, &alice).await, Vec::<u64>::new());
    // Bob's other friendship stays.
    assert_eq!(friend_ids(&server, &bob).await, vec![carol.id]);
    // Strangers again: the default settings refuse alice's messages, both ways.
    assert_fail(
        &send(&server, &alice, &bob, "now?", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &send(&server, &bob, &alice, "now?", None).await,
        StatusCode::FORBIDDEN,
    );

    // Not (or no longer) a friend, from either side.
    assert_fail(&post(&server, &bob, &path, &[]).await, StatusCode::NOT_FOUND);
    let back = format!("/api/chat/deletegoodfriend/{}", bob.id);
    assert_fail(&post(&server, &alice, &back, &[]).await, StatusCode::NOT_FOUND);
    assert_fail(
        &post(&server, &bob, "/api/chat/deletegoodfriend/99999", &[]).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &post(&server, &bob, "/api/chat/deletegoodfriend/abc", &[]).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.post_form(&back, None, &[]).await,
        StatusCode::UNAUTHORIZED,
    );
    let visitor = register_visitor(&server).await;
    assert_fail(&post(&server, &visitor, &back, &[]).await, StatusCode::FORBIDDEN);

    // They may become friends again.
    befriend(&server, &bob, &alice, "").await;
    assert_eq!(friend_ids(&server, &alice).await, vec![bob.id]);
    server.stop().await;
}

#[actix_web::test]
async fn get_user_set_info_reports_settings_and_friendship() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let bob_id = bob.id.to_string();
    let info = |got: &Got| assert_ok(got);
    let ask = || async {
        post(
            &server,
            &alice,
            "/api/chat/getUserSetInfo",
            &[("userid", &bob_id)],
        )
        .await
    };

    let d = info(&ask().await);
    assert_eq!(d["id"], bob.id);
    let userset: Value = serde_json::from_str(d["userset"].as_str().unwrap()).unwrap();
    assert_eq!(userset, json!({"chatset": {"visitor": 0, "user": 0}}));
    assert_eq!(d["invite_confirm"], 1);
    assert_eq!(d["isgoodfriend"], false);
    assert_eq!(d["isgoodfriend_status"], true);

    set_userset(&server, &bob, &json!({"chatset": {"visitor": 1, "user": 2}})).await;
    update(&server, &bob, "invite_confirm", "0").await;
    befriend(&server, &alice, &bob, "").await;
    let d = info(&ask().await);
    let userset: Value = serde_json::from_str(d["userset"].as_str().unwrap()).unwrap();
    assert_eq!(userset, json!({"chatset": {"visitor": 1, "user": 2}}));
    assert_eq!(d["invite_confirm"], 0);
    assert_eq!(d["isgoodfriend"], true);
    assert_eq!(d["isgoodfriend_status"], true);
    // Bob blacklists alice: her messages would be refused.
    let black = format!("/api/chat/setblackgoodfriend/{}", alice.id);
    assert_ok(&post(&server, &bob, &black, &[("isblack", "1")]).await);
    assert_eq!(info(&ask().await)["isgoodfriend_status"], false);

    // A JSON body, a missing or bad userid, an unknown user, no token.
    let got = server
        .post_json(
            "/api/chat/getUserSetInfo",
            Some(&alice.token),
            &json!({"userid": bob.id}),
        )
        .await;
    assert_eq!(info(&got)["id"], bob.id);
    let missing = post(&server, &alice, "/api/chat/getUserSetInfo", &[]).await;
    assert!(assert_fail(&missing, StatusCode::BAD_REQUEST).contains("userid"));
    let bad = post(&server, &alice, "/api/chat/getUserSetInfo", &[("userid", "bob")]).await;
    assert_fail(&bad, StatusCode::BAD_REQUEST);
    let unknown = post(
        &server,
        &alice,
        "/api/chat/getUserSetInfo",
        &[("userid", "99999")],
    )
    .await;
    assert_fail(&unknown, StatusCode::NOT_FOUND);
    let no_token = server
        .post_form("/api/chat/getUserSetInfo", None, &[("userid", bob_id.as_str())])
        .await;
    assert_fail(&no_token, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// autoAddFriendAndAgree

#[actix_web::test]
async fn auto_add_friend_needs_invite_confirm_zero_and_notifies_the_target() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    // Bob approves requests (the default): refused, and nothing changes.
    let reason = assert_fail(&auto_add(&server, &alice, &bob).await, StatusCode::FORBIDDEN);
    assert!(reason.contains("apply"), "{reason}");
    assert_eq!(friend_ids(&server, &bob).await, Vec::<u64>::new());

    update(&server, &bob, "invite_confirm", "0").await;
    let mut bob_ws = server.ws(&bob.token).await;
    assert_eq!(assert_ok(&auto_add(&server, &alice, &bob).await), "ok");
    let notice = bob_ws.next_of_type("systemNotice").await;
    assert_eq!(notice["data"]["actionType"], "addFriend", "{notice}");
    assert_eq!(notice["data"]["from_id"], alice.id);
    assert_eq!(notice["data"]["to_id"], bob.id);
    assert_eq!(friend_ids(&server, &alice).await, vec![bob.id]);
    assert_eq!(friend_ids(&server, &bob).await, vec![alice.id]);
    // As friends, messages pass under bob's default friends-only settings.
    assert_ok(&send(&server, &alice, &bob, "hi", None).await);
    // Twice.
    assert_fail(&auto_add(&server, &alice, &bob).await, StatusCode::CONFLICT);

    // A visitor may use it, and is then a friend who may write.
    let visitor = register_visitor(&server).await;
    assert_ok(&auto_add(&server, &visitor, &bob).await);
    let notice = bob_ws.next_of_type("systemNotice").await;
    assert_eq!(notice["data"]["actionType"], "addFriend");
    assert_eq!(notice["data"]["from_id"], visitor.id);
    let mut ids = friend_ids(&server, &bob).await;
    ids.sort_unstable();
    assert_eq!(ids, vec![alice.id, visitor.id]);
    assert_ok(&send(&server, &visitor, &bob, "from a visitor", None).await);

    // Self, unknown, missing or bad friend_id, no token.
    let me = bob.id.to_string();
    let got = post(
        &server,
        &bob,
        "/api/chat/autoAddFriendAndAgree",
        &[("friend_id", me.as_str())],
    )
    .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let got = post(
        &server,
        &alice,
        "/api/chat/autoAddFriendAndAgree",
        &[("friend_id", "99999")],
    )
    .await;
    assert_fail(&got, StatusCode::NOT_FOUND);
    let got = post(&server, &alice, "/api/chat/autoAddFriendAndAgree", &[]).await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let got = post(
        &server,
        &alice,
        "/api/chat/autoAddFriendAndAgree",
        &[("friend_id", "x")],
    )
    .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);
    let got = server
        .post_form(
            "/api/chat/autoAddFriendAndAgree",
            None,
            &[("friend_id", me.as_str())],
        )
        .await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    // Bob turns approval back on: new requests are refused again.
    update(&server, &bob, "invite_confirm", "1").await;
    let carol = server.register("carol").await;
    assert_fail(&auto_add(&server, &carol, &bob).await, StatusCode::FORBIDDEN);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Send rules

#[actix_web::test]
async fn by_default_only_friends_may_send() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let reason = assert_fail(
        &send(&server, &alice, &bob, "hi", None).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("friends"), "{reason}");
    // Over the WebSocket too.
    let mut ws = server.ws(&alice.token).await;
    ws.send_msg("c1", bob.id, "hi").await;
    let err = ws.next_of_type("error").await;
    assert_eq!((&err["code"], &err["cid"]), (&json!("forbidden"), &json!("c1")));
    // A pending application is not a friendship.
    assert_ok(&apply(&server, &alice, bob.id, "").await);
    assert_fail(
        &send(&server, &alice, &bob, "hi", None).await,
        StatusCode::FORBIDDEN,
    );
    let id = pending_id(&server, &bob, &alice).await;
    assert_ok(&handle(&server, &bob, id, "agree", "").await);
    let m = assert_ok(&send(&server, &alice, &bob, "friends now", None).await);
    assert_eq!(m["data"], "friends now");
    assert_ok(&send(&server, &bob, &alice, "and back", None).await);
    ws.send_msg("c2", bob.id, "ws too").await;
    assert_eq!(ws.next_of_type("ack").await["cid"], "c2");
    server.stop().await;
}

#[actix_web::test]
async fn chatset_one_allows_one_message_from_a_stranger_and_a_retry_is_not_counted() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let carol = server.register("carol").await;
    set_userset(&server, &bob, &json!({"chatset": {"visitor": 0, "user": 1}})).await;

    let first = assert_ok(&send(&server, &alice, &bob, "one", Some("a1")).await);
    // The same cid again is the same message, not a second one.
    let retry = assert_ok(&send(&server, &alice, &bob, "one", Some("a1")).await);
    assert_eq!(first["id"], retry["id"]);
    let reason = assert_fail(
        &send(&server, &alice, &bob, "two", Some("a2")).await,
        StatusCode::FORBIDDEN,
    );
    assert!(reason.contains("1 message"), "{reason}");
    assert_fail(
        &send(&server, &alice, &bob, "three", None).await,
        StatusCode::FORBIDDEN,
    );
    // The quota is per sender.
    assert_ok(&send(&server, &carol, &bob, "carol's one", None).await);
    assert_fail(
        &send(&server, &carol, &bob, "carol's two", None).await,
        StatusCode::FORBIDDEN,
    );
    // Over the WebSocket, the same count.
    let mut ws = server.ws(&alice.token).await;
    ws.send_msg("w1", bob.id, "ws").await;
    assert_eq!(ws.next_of_type("error").await["code"], "forbidden");
    // A friend is not limited.
    befriend(&server, &alice, &bob, "").await;
    for i in 0..3 {
        assert_ok(&send(&server, &alice, &bob, &format!("friend {i}"), None).await);
    }
    // Bob's inbox history holds alice's one stranger message plus the three.
    let got = server
        .get(
            &format!("/api/chat/history/single/{}", alice.id),
            Some(&bob.token),
        )
        .await;
    assert_eq!(assert_ok(&got)["list"].as_array().unwrap().len(), 4);
    server.stop().await;
}

#[actix_web::test]
async fn chatset_two_is_unlimited() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    set_userset(&server, &bob, &json!({"chatset": {"visitor": 0, "user": 2}})).await;
    for i in 0..5 {
        assert_ok(&send(&server, &alice, &bob, &format!("m{i}"), None).await);
    }
    // Back to friends only.
    set_userset(&server, &bob, &json!({"chatset": {"visitor": 0, "user": 0}})).await;
    assert_fail(
        &send(&server, &alice, &bob, "no", None).await,
        StatusCode::FORBIDDEN,
    );
    // The older object form: needFollow false is unlimited.
    let old = json!({"chatset": {"visitor": {"sendCount": 0, "needFollow": true},
                                 "user": {"sendCount": 0, "needFollow": false}}});
    set_userset(&server, &bob, &old).await;
    assert_ok(&send(&server, &alice, &bob, "yes", None).await);
    server.stop().await;
}

#[actix_web::test]
async fn visitor_and_user_rules_are_separate() {
    let (server, _dir) = TestServer::start().await;
    let bob = server.register("bob_1").await;
    let alice = server.register("alice").await;
    let visitor = register_visitor(&server).await;

    set_userset(&server, &bob, &json!({"chatset": {"visitor": 0, "user": 2}})).await;
    assert_fail(
        &send(&server, &visitor, &bob, "v", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_ok(&send(&server, &alice, &bob, "u", None).await);

    set_userset(&server, &bob, &json!({"chatset": {"visitor": 2, "user": 0}})).await;
    assert_ok(&send(&server, &visitor, &bob, "v1", None).await);
    assert_ok(&send(&server, &visitor, &bob, "v2", None).await);
    assert_fail(
        &send(&server, &alice, &bob, "u", None).await,
        StatusCode::FORBIDDEN,
    );

    // visitor 1: one message from a visitor, users still refused.
    let carol = server.register("carol").await;
    set_userset(&server, &carol, &json!({"chatset": {"visitor": 1, "user": 0}})).await;
    assert_ok(&send(&server, &visitor, &carol, "once", None).await);
    assert_fail(
        &send(&server, &visitor, &carol, "twice", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_fail(
        &send(&server, &alice, &carol, "u", None).await,
        StatusCode::FORBIDDEN,
    );
    server.stop().await;
}

#[actix_web::test]
async fn applying_to_a_visitor_is_refused() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let visitor = register_visitor(&server).await;
    let vid = visitor.id.to_string();
    let got = server
        .post_form(
            "/api/chat/applyfriend",
            Some(&alice.token),
            &[("friend_id", &vid)],
        )
        .await;
    assert!(assert_fail(&got, StatusCode::FORBIDDEN).contains("visitor"));
    // The visitor can still add the user when the user needs no approval.
    let set = [("fieldname", "invite_confirm"), ("fieldValue", "0")];
    assert_ok(
        &server
            .post_form("/api/chat/updateUserinfo", Some(&alice.token), &set)
            .await,
    );
    let aid = alice.id.to_string();
    let got = server
        .post_form(
            "/api/chat/autoAddFriendAndAgree",
            Some(&visitor.token),
            &[("friend_id", &aid)],
        )
        .await;
    assert_ok(&got);
    server.stop().await;
}
