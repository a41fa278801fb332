//! Presence and typing notes with real WebSocket clients: `presence` frames to friends on
//! connect and (after the grace) disconnect, and not to strangers or another tenant's users;
//! a second device keeps its user online and a quick reconnect tells nobody anything;
//! fellow group members up to the tenant's setting 7; the privacy setting respected by the
//! frames and the route; the presence route and its refusals; `typing` notes forwarded to a
//! peer and to a group's online members, thinned per interval, and refused like a send.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admin::{admin, create_group, ok, with_admin};
use crate::common::{assert_fail, assert_ok, register_visitor, TestServer, User, Ws};

/// Presence on, with a short grace.
fn with_presence(grace_ms: u64) -> impl FnOnce(&mut parlor::config::Config) {
    move |c| {
        c.presence.enabled = true;
        c.presence.offline_grace_ms = grace_ms;
    }
}

async fn start(tweak: impl FnOnce(&mut parlor::config::Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), tweak).await;
    (server, dir)
}

/// The next `presence` frame's data.
async fn presence_of(ws: &mut Ws) -> Value {
    ws.next_of_type("presence").await["data"].clone()
}

/// `POST /api/chat/presence` as `who` for `ids`.
async fn query(server: &TestServer, who: &User, ids: Value) -> (StatusCode, Value) {
    server
        .post_json("/api/chat/presence", Some(&who.token), &json!({ "userIds": ids }))
        .await
}

fn now_ms() -> u64 {
    parlor_actors::now_ms()
}

/// Alice and Bob, friends.
async fn friends(server: &TestServer) -> (User, User) {
    let alice = server.register("alice1").await;
    let bob = server.register("bobby1").await;
    server.befriend(&alice, &bob).await;
    (alice, bob)
}

#[actix_web::test]
async fn friends_see_a_user_come_and_go_and_strangers_and_other_tenants_do_not() {
    let (server, _dir) = start(with_presence(100)).await;
    let alice = server.register("alice1").await;
    let bob = server.register("bobby1").await;
    let carol = server.register("carol1").await;
    let dave = server.register_in("other", "dave01").await;
    server.befriend(&alice, &bob).await;
    let mut bob_ws = server.ws(&bob.token).await;
    let mut carol_ws = server.ws(&carol.token).await;
    let mut dave_ws = server.ws(&dave.token).await;

    let alice_ws = server.ws(&alice.token).await;
    let online = presence_of(&mut bob_ws).await;
    assert_eq!(
        online,
        json!({"userId": alice.id, "online": true, "lastSeen": null})
    );
    let seen = assert_ok(&query(&server, &bob, json!([alice.id, carol.id, dave.id])).await);
    assert_eq!(
        seen,
        json!([{"userId": alice.id, "online": true, "lastSeen": null, "hidden": false}]),
        "a stranger and another tenant's user are left out"
    );

    let before = now_ms();
    alice_ws.close().await;
    let offline = presence_of(&mut bob_ws).await;
    assert_eq!(offline["userId"], alice.id);
    assert_eq!(offline["online"], false);
    let last_seen = offline["lastSeen"].as_u64().expect("a last seen");
    assert!(last_seen >= before - 1000 && last_seen <= now_ms(), "{offline}");
    let seen = assert_ok(&query(&server, &bob, json!([alice.id])).await);
    assert_eq!(
        seen,
        json!([{"userId": alice.id, "online": false, "lastSeen": last_seen, "hidden": false}])
    );
    // Neither Carol nor Dave heard anything; nor does Carol see Alice over REST.
    carol_ws.assert_quiet(200).await;
    dave_ws.assert_quiet(100).await;
    assert_eq!(
        assert_ok(&query(&server, &carol, json!([alice.id])).await),
        json!([])
    );
    // Dave's tenant has no Alice: he sees only himself.
    assert_eq!(
        assert_ok(&query(&server, &dave, json!([alice.id, dave.id])).await),
        json!([{"userId": dave.id, "online": true, "lastSeen": null, "hidden": false}])
    );

    // The last seen outlives a restart.
    bob_ws.close().await;
    carol_ws.close().await;
    dave_ws.close().await;
    let dir = server.dir.clone();
    server.stop().await;
    let server = TestServer::start_in(&dir, with_presence(100)).await;
    let seen = assert_ok(&query(&server, &bob, json!([alice.id])).await);
    assert_eq!(seen[0]["lastSeen"], last_seen, "{seen}");
}

#[actix_web::test]
async fn a_second_device_keeps_its_user_online_and_a_quick_reconnect_tells_nobody() {
    // A grace long enough that a reconnect on a busy host comes back within it.
    let (server, _dir) = start(with_presence(3000)).await;
    let (alice, bob) = friends(&server).await;
    let mut bob_ws = server.ws(&bob.token).await;
    // Bob's own coming online is told (to nobody) before Alice connects; were she online by
    // then, her phone would be told of him.
    server.wait_metric("parlor_presence_changes_total", 1.0).await;
    let phone = server.ws(&alice.token).await;
    assert_eq!(presence_of(&mut bob_ws).await["online"], true);
    let laptop = server.ws(&alice.token).await;
    // The phone goes: the laptop keeps Alice online, past the grace.
    phone.close().await;
    bob_ws.assert_quiet(3500).await;
    assert_eq!(
        assert_ok(&query(&server, &bob, json!([alice.id])).await)[0]["online"],
        true
    );
    // The laptop drops and comes back within the grace: no offline/online pair.
    laptop.close().await;
    let laptop = server.ws(&alice.token).await;
    bob_ws.assert_quiet(3500).await;
    // Gone for good: one offline, after the grace.
    laptop.close().await;
    let offline = presence_of(&mut bob_ws).await;
    assert_eq!(offline["online"], false, "{offline}");
    assert!(offline["lastSeen"].as_u64().is_some(), "{offline}");
    bob_ws.assert_quiet(300).await;
    // Told: Bob online (to nobody), Alice online, Alice offline; two frames, both to Bob.
    assert_eq!(server.metric("parlor_presence_changes_total").await, 3.0);
    assert_eq!(server.metric("parlor_presence_frames_total").await, 2.0);
}

/// `updateUserinfo` of `hide_presence` to `v`.
async fn hide(server: &TestServer, who: &User, v: &str) -> (StatusCode, Value) {
    server
        .post_form(
            "/api/chat/updateUserinfo",
            Some(&who.token),
            &[("fieldname", "hide_presence"), ("fieldValue", v)],
        )
        .await
}

#[actix_web::test]
async fn hidden_presence_is_respected_by_frames_and_the_route() {
    let (server, _dir) = start(with_presence(100)).await;
    let (alice, bob) = friends(&server).await;
    let mut bob_ws = server.ws(&bob.token).await;
    let alice_ws = server.ws(&alice.token).await;
    assert_eq!(presence_of(&mut bob_ws).await["online"], true);

    assert_fail(&hide(&server, &alice, "2").await, StatusCode::BAD_REQUEST);
    let visitor = register_visitor(&server).await;
    assert_fail(&hide(&server, &visitor, "1").await, StatusCode::FORBIDDEN);
    assert_ok(&hide(&server, &alice, "1").await);
    // Bob sees her go "offline", never seen.
    assert_eq!(
        presence_of(&mut bob_ws).await,
        json!({"userId": alice.id, "online": false, "lastSeen": null})
    );
    assert_eq!(
        assert_ok(&query(&server, &bob, json!([alice.id])).await),
        json!([{"userId": alice.id, "online": false, "lastSeen": null, "hidden": true}])
    );
    // She sees her own truth.
    assert_eq!(
        assert_ok(&query(&server, &alice, json!([alice.id])).await),
        json!([{"userId": alice.id, "online": true, "lastSeen": null, "hidden": true}])
    );
    // Coming and going while hidden tells Bob nothing.
    alice_ws.close().await;
    let alice_ws = server.ws(&alice.token).await;
    alice_ws.close().await;
    bob_ws.assert_quiet(400).await;
    let alice_ws = server.ws(&alice.token).await;
    bob_ws.assert_quiet(300).await;
    // Shown again: Bob learns the truth at once.
    assert_ok(&hide(&server, &alice, "0").await);
    assert_eq!(
        presence_of(&mut bob_ws).await,
        json!({"userId": alice.id, "online": true, "lastSeen": null})
    );
    alice_ws.close().await;
    assert_eq!(presence_of(&mut bob_ws).await["online"], false);
}

#[actix_web::test]
async fn fellow_group_members_see_presence_up_to_the_tenant_setting() {
    let (server, _dir) = start(|c| {
        with_admin(c);
        with_presence(100)(c);
        c.presence.group_max_members = 3;
    })
    .await;
    let alice = server.register_open("alice1").await;
    let bob = server.register_open("bobby1").await;
    let erin = server.register_open("erin01").await;
    // Bob's group: Alice and Erin are no friends of each other.
    server.befriend(&bob, &alice).await;
    server.befriend(&bob, &erin).await;
    create_group(&server, &bob, &[&alice, &erin]).await;
    let mut erin_ws = server.ws(&erin.token).await;
    let alice_ws = server.ws(&alice.token).await;
    assert_eq!(presence_of(&mut erin_ws).await["userId"], alice.id);
    // Fellow members see each other over REST whatever the group's size.
    assert_eq!(
        assert_ok(&query(&server, &erin, json!([alice.id])).await)[0]["online"],
        true
    );
    alice_ws.close().await;
    assert_eq!(presence_of(&mut erin_ws).await["online"], false);

    // Setting 7 below the group's size: members are told nothing (friends still would be).
    ok(&admin(&server, "/admin/modify_setting", &json!({"id": 7, "value": "2"})).await);
    let got = ok(&admin(&server, "/admin/get_setting", &json!({"id": 7})).await);
    assert_eq!(got["value"], "2", "{got}");
    let alice_ws = server.ws(&alice.token).await;
    erin_ws.assert_quiet(400).await;
    alice_ws.close().await;
    erin_ws.assert_quiet(400).await;
}

#[actix_web::test]
async fn the_presence_route_refuses_bad_requests() {
    let (server, _dir) = start(|c| {
        with_presence(100)(c);
        c.presence.max_ids = 3;
    })
    .await;
    let alice = server.register("alice1").await;
    let (status, body) = server
        .post_json("/api/chat/presence", None, &json!({"userIds": [1]}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_fail(
        &server
            .post_json("/api/chat/presence", Some(&alice.token), &json!({}))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &query(&server, &alice, json!(["x"])).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &query(&server, &alice, json!({"a": 1})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(&query(&server, &alice, json!([])).await, StatusCode::BAD_REQUEST);
    assert_fail(
        &query(&server, &alice, json!([1, 2, 3, 4])).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    // The same id twice counts once.
    assert_eq!(
        assert_ok(&query(&server, &alice, json!([alice.id, alice.id, alice.id, alice.id])).await)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Presence turned off: the route says so, and friends get no frames.
    let (off, _dir2) = start(|_| {}).await;
    let (alice, bob) = friends(&off).await;
    assert_fail(&query(&off, &alice, json!([bob.id])).await, StatusCode::FORBIDDEN);
    let mut bob_ws = off.ws(&bob.token).await;
    let alice_ws = off.ws(&alice.token).await;
    alice_ws.close().await;
    bob_ws.assert_quiet(300).await;
}

/// A `typing` frame from `ws`.
async fn typing(ws: &mut Ws, to: u64, chat_type: &str, state: &str) {
    ws.send_json(&json!({"type": "typing", "to": to, "chatType": chat_type, "state": state}))
        .await;
}

#[actix_web::test]
async fn typing_reaches_the_peer_and_the_groups_online_members_thinned_per_interval() {
    // Presence off: typing notes work without it. A long interval, so that a slow host
    // cannot let a key press through.
    let (server, _dir) = start(|c| {
        c.presence.typing_interval_ms = 60_000;
        c.presence.typing_expiry_ms = 60_000;
    })
    .await;
    let alice = server.register_open("alice1").await;
    let bob = server.register_open("bobby1").await;
    let erin = server.register_open("erin01").await;
    server.befriend(&alice, &bob).await;
    let mut alice_ws = server.ws(&alice.token).await;
    let mut bob_ws = server.ws(&bob.token).await;

    typing(&mut alice_ws, bob.id, "single", "start").await;
    let note = bob_ws.next_of_type("typing").await["data"].clone();
    let conv = format!("d:{}:{}", alice.id.min(bob.id), alice.id.max(bob.id));
    assert_eq!(
        note,
        json!({"from": alice.id, "to": bob.id, "chatType": "single", "conversation": conv,
               "state": "start", "expiresIn": 60_000})
    );
    // Key presses within the interval are dropped; the stop of a forwarded start passes.
    typing(&mut alice_ws, bob.id, "single", "start").await;
    typing(&mut alice_ws, bob.id, "single", "start").await;
    typing(&mut alice_ws, bob.id, "single", "stop").await;
    let note = bob_ws.next_of_type("typing").await["data"].clone();
    assert_eq!(note["state"], "stop", "{note}");
    typing(&mut alice_ws, bob.id, "single", "stop").await;
    alice_ws.sync().await;
    bob_ws.assert_quiet(200).await;

    // A group: its other online members get it, the sender does not.
    server.befriend(&alice, &erin).await;
    let group = create_group(&server, &alice, &[&bob, &erin]).await;
    let mut erin_ws = server.ws(&erin.token).await;
    alice_ws.sync().await;
    typing(&mut alice_ws, group, "group", "start").await;
    for ws in [&mut bob_ws, &mut erin_ws] {
        let note = ws.next_of_type("typing").await["data"].clone();
        assert_eq!(note["from"], alice.id, "{note}");
        assert_eq!(note["conversation"], format!("g:{group}"), "{note}");
    }
    alice_ws.sync().await;
    alice_ws.assert_quiet(200).await;
    // Never stored: nothing is replayed to a member who connects later.
    erin_ws.close().await;
    let mut erin_ws = server.ws(&erin.token).await;
    erin_ws.assert_quiet(300).await;
}

#[actix_web::test]
async fn typing_is_refused_like_a_send() {
    let (server, _dir) = start(|_| {}).await;
    let (alice, bob) = friends(&server).await;
    let carol = server.register("carol1").await;
    let erin = server.register_open("erin01").await;
    let mut alice_ws = server.ws(&alice.token).await;
    let mut bob_ws = server.ws(&bob.token).await;
    let mut carol_ws = server.ws(&carol.token).await;

    // Carol is no friend of Bob, who takes messages from friends only.
    typing(&mut carol_ws, bob.id, "single", "start").await;
    let e = carol_ws.next_of_type("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    // Asked again within the interval: the same answer.
    carol_ws
        .send_json(&json!({"type": "typing", "to": bob.id, "cid": "t2"}))
        .await;
    let e = carol_ws.next_of_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["cid"].as_str()),
        (Some("forbidden"), Some("t2"))
    );

    // Bob blacklists Alice: her notes are refused.
    let path = format!("/api/chat/setblackgoodfriend/{}", alice.id);
    assert_ok(
        &server
            .post_form(&path, Some(&bob.token), &[("isblack", "1")])
            .await,
    );
    typing(&mut alice_ws, bob.id, "single", "start").await;
    let e = alice_ws.next_of_type("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert!(e["msg"].as_str().unwrap().contains("blocked"), "{e}");

    // Not a member of the group; an unknown user; bad frames.
    server.befriend(&erin, &bob).await;
    let group = create_group(&server, &erin, &[&bob]).await;
    typing(&mut alice_ws, group, "group", "start").await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "forbidden");
    typing(&mut alice_ws, 999_999, "single", "start").await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "not_found");
    typing(&mut alice_ws, 999_999, "group", "start").await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "not_found");
    typing(&mut alice_ws, bob.id, "channel", "start").await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "invalid");
    alice_ws.send_json(&json!({"type": "typing"})).await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "missing_field");
    alice_ws
        .send_json(&json!({"type": "typing", "to": bob.id, "state": "maybe"}))
        .await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "invalid");
    typing(&mut alice_ws, alice.id, "single", "start").await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "invalid");
    // No note reached Bob (the group's creation notice did).
    assert_no_typing(&mut bob_ws, 200).await;
}

/// Asserts that no `typing` frame arrives within `ms` milliseconds (other frames may).
async fn assert_no_typing(ws: &mut Ws, ms: u64) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.stream.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], "typing", "{v}");
        }
    }
}
