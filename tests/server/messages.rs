//! Direct messages end to end: WebSocket and REST sends, acks, pushes to every device,
//! offline queues (reconnect, `chatGetmessageOffLine`, restart, `kill -9`), duplicate
//! `cid`s, history paging and every refusal of the send paths.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{assert_fail, free_port, metric_at, user_of, TestServer, User};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn conv(a: &User, b: &User) -> String {
    let (lo, hi) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    format!("d:{lo}:{hi}")
}

#[actix_web::test]
async fn websocket_send_is_acked_and_pushed_both_ways() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;

    wa.send_msg("c1", bob.id, "hello bob").await;
    let ack = wa.next_of_type("ack").await;
    assert_eq!(ack["cid"], "c1");
    assert_eq!(ack["data"]["seq"], 1);
    assert_eq!(ack["data"]["conversation"], conv(&alice, &bob));
    let push = wb.next_of_type("singleChat").await;
    assert_eq!(push["data"]["data"], "hello bob");
    assert_eq!(push["data"]["from_id"], alice.id);
    assert_eq!(push["data"]["to_id"], bob.id);
    assert_eq!(push["data"]["chatType"], "single");
    assert_eq!(push["data"]["type"], "text");
    assert_eq!(push["data"]["from_name"], "alice");
    assert_eq!(push["data"]["id"], ack["data"]["id"]);
    assert!(push["timestamp"].as_u64().is_some());

    wb.send_msg("r1", alice.id, "hi alice").await;
    assert_eq!(wb.next_of_type("ack").await["data"]["seq"], 2);
    let back = wa.next_of_type("singleChat").await;
    assert_eq!(back["data"]["data"], "hi alice");
    assert_eq!(back["data"]["seq"], 2);
    server.stop().await;
}

#[actix_web::test]
async fn rest_send_returns_the_stored_message_and_pushes_to_every_device() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut bob_phone = server.ws(&bob.token).await;
    let mut bob_laptop = server.ws(&bob.token).await;
    let mut alice_tablet = server.ws(&alice.token).await;

    let (status, body) = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&alice.token),
            &[
                ("sendto_id", &bob.id.to_string()),
                ("chatType", "single"),
                ("type", "text"),
                ("data", r#"{"data":"你好","dataType":false,"otherData":null}"#),
                ("options", r#"{"k":1}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["msg"], "ok");
    let m = &body["data"];
    assert_eq!(m["data"], r#"{"data":"你好","dataType":false,"otherData":null}"#);
    assert_eq!(m["options"], json!({"k": 1}));
    assert_eq!(m["isremove"], 0);
    assert_eq!(m["to_name"], "bob_1");
    assert!(m["create_time"].as_u64().unwrap() > 1_700_000_000_000);

    for ws in [&mut bob_phone, &mut bob_laptop, &mut alice_tablet] {
        let push = ws.next_of_type("singleChat").await;
        assert_eq!(push["data"]["id"], m["id"]);
    }
    server.stop().await;
}

#[actix_web::test]
async fn sender_other_devices_get_the_copy_but_not_the_sending_one() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut a1 = server.ws(&alice.token).await;
    let mut a2 = server.ws(&alice.token).await;
    a1.send_msg("m1", bob.id, "from device one").await;
    let ack = a1.next_of_type("ack").await;
    let copy = a2.next_of_type("singleChat").await;
    assert_eq!(copy["data"]["id"], ack["data"]["id"]);
    a1.assert_quiet(300).await;
    server.stop().await;
}

/// A frame written to a device whose client has not confirmed it is not delivered yet:
/// a device of the same user that connects meanwhile reads it too, so it is not left
/// waiting for a later connect when the first device goes without confirming it.
#[actix_web::test]
async fn a_message_one_device_has_not_confirmed_reaches_the_next_device_to_connect() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    // Never read again: its client answers no probe, so confirms nothing.
    let asleep = server.ws(&bob.token).await;
    let sent = server.send_rest(&alice, &bob, "while the phone sleeps").await;
    let mut laptop = server.ws(&bob.token).await;
    let push = laptop.next_of_type("singleChat").await;
    assert_eq!(push["data"]["id"], sent["id"], "{push}");
    server.hang_up(asleep).await;
    laptop.assert_quiet(300).await;
    // The laptop confirmed it: a later connect gets nothing again.
    let mut phone = server.ws(&bob.token).await;
    phone.assert_quiet(400).await;
    server.stop().await;
}

#[actix_web::test]
async fn offline_messages_arrive_in_order_on_connect_and_only_once() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    for i in 1..=5 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    let mut wb = server.ws(&bob.token).await;
    for i in 1..=5u64 {
        let push = wb.next_of_type("singleChat").await;
        assert_eq!(push["data"]["seq"], i);
        assert_eq!(push["data"]["data"], format!("m{i}"));
    }
    wb.assert_quiet(300).await;
    // What was written to a session counts as delivered: a new connect gets nothing again.
    server.hang_up(wb).await;
    let mut again = server.ws(&bob.token).await;
    again.assert_quiet(400).await;
    server.stop().await;
}

#[actix_web::test]
async fn a_queue_longer_than_one_replay_arrives_whole_and_in_order_around_live_messages() {
    let dir = tempfile::tempdir().unwrap();
    // Replays of 4 messages at a time: 11 queued messages take three rounds.
    let server = TestServer::start_in(dir.path(), |c| c.limits.offline_replay_max = 4).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    for i in 1..=8 {
        server.send_rest(&alice, &bob, &format!("a{i}")).await;
    }
    for i in 1..=3 {
        server.send_rest(&carol, &bob, &format!("c{i}")).await;
    }
    let mut wb = server.ws(&bob.token).await;
    // A live message while the rounds run must not overtake the older ones of its conversation.
    server.send_rest(&alice, &bob, "a9").await;
    let (mut from_alice, mut from_carol) = (Vec::new(), Vec::new());
    while from_alice.len() + from_carol.len() < 12 {
        let push = wb.next_of_type("singleChat").await;
        let text = push["data"]["data"].as_str().unwrap().to_owned();
        let seq = push["data"]["seq"].as_u64().unwrap();
        if text.starts_with('a') {
            from_alice.push((seq, text));
        } else {
            from_carol.push((seq, text));
        }
    }
    let expected_a: Vec<(u64, String)> = (1..=9).map(|i| (i, format!("a{i}"))).collect();
    let expected_c: Vec<(u64, String)> = (1..=3).map(|i| (i, format!("c{i}"))).collect();
    assert_eq!(from_alice, expected_a);
    assert_eq!(from_carol, expected_c);
    wb.assert_quiet(300).await;
    server.stop().await;
}

#[actix_web::test]
async fn get_offline_sends_a_manual_ack_client_nothing_its_socket_already_has() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wb = server.ws_at(&format!("/ws?token={}&ack=manual", bob.token)).await;
    server.send_rest(&alice, &bob, "one").await;
    server.send_rest(&alice, &bob, "two").await;
    assert_eq!(wb.next_of_type("singleChat").await["data"]["seq"], 1);
    assert_eq!(wb.next_of_type("singleChat").await["data"]["seq"], 2);

    // Not acked, but handed to this socket: asking again sends nothing twice.
    let (status, body) = server
        .post_form("/api/chat/chatGetmessageOffLine", Some(&bob.token), &[])
        .await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!("ok")));
    wb.assert_quiet(400).await;
    // Unacked, they wait for the next socket.
    server.hang_up(wb).await;
    let mut wb = server.ws_at(&format!("/ws?token={}&ack=manual", bob.token)).await;
    assert_eq!(wb.next_of_type("singleChat").await["data"]["data"], "one");
    assert_eq!(wb.next_of_type("singleChat").await["data"]["data"], "two");

    wb.send_json(&json!({"type": "ack", "conversation": conv(&alice, &bob), "seq": 2}))
        .await;
    wb.sync().await;
    server
        .post_form("/api/chat/chatGetmessageOffLine", Some(&bob.token), &[])
        .await;
    wb.assert_quiet(400).await;

    let no_token = server
        .post_form("/api/chat/chatGetmessageOffLine", None, &[])
        .await;
    assert_fail(&no_token, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[actix_web::test]
async fn the_same_cid_stores_one_message() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;
    wa.send_msg("same", bob.id, "once").await;
    wa.send_msg("same", bob.id, "once").await;
    let first = wa.next_of_type("ack").await;
    let second = wa.next_of_type("ack").await;
    assert_eq!(first["data"]["id"], second["data"]["id"]);
    assert_eq!(first["data"]["seq"], second["data"]["seq"]);
    wb.next_of_type("singleChat").await;
    wb.assert_quiet(300).await;

    // Over REST too, and across the two paths for the same sender.
    let to = bob.id.to_string();
    let form = [
        ("sendto_id", to.as_str()),
        ("type", "text"),
        ("data", "once"),
        ("cid", "same"),
    ];
    let (_, rest) = server
        .post_form("/api/chat/socket/sendmessage", Some(&alice.token), &form)
        .await;
    assert_eq!(rest["data"]["id"], first["data"]["id"]);

    let (_, page) = server
        .get(
            &format!("/api/chat/history/single/{}", bob.id),
            Some(&alice.token),
        )
        .await;
    assert_eq!(page["data"]["list"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn history_pages_newest_first_and_only_for_participants() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    for i in 1..=25 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    let path = format!("/api/chat/history/single/{}", alice.id);
    let mut seen = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let url = match before {
            Some(b) => format!("{path}?limit=10&before={b}"),
            None => format!("{path}?limit=10"),
        };
        let (status, body) = server.get(&url, Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["data"]["list"].as_array().unwrap();
        assert!(list.len() <= 10);
        seen.extend(list.iter().map(|m| m["seq"].as_u64().unwrap()));
        match body["data"]["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<u64>>());

    let (_, newer) = server.get(&format!("{path}?after=20"), Some(&bob.token)).await;
    let seqs: Vec<u64> = newer["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![25, 24, 23, 22, 21]);
    assert_eq!(newer["data"]["head"], 25);

    // By conversation key: participants only.
    let key = conv(&alice, &bob);
    let (status, _) = server
        .get(
            &format!("/api/chat/history/conversation/{key}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = server
        .get(
            &format!("/api/chat/history/conversation/{key}"),
            Some(&carol.token),
        )
        .await;
    assert_fail(&refused, StatusCode::FORBIDDEN);
    // Carol's own conversation with Alice is empty: nothing of Alice and Bob leaks.
    let (_, own) = server
        .get(
            &format!("/api/chat/history/single/{}", alice.id),
            Some(&carol.token),
        )
        .await;
    assert_eq!(own["data"]["list"], json!([]));

    assert_fail(&server.get(&path, None).await, StatusCode::UNAUTHORIZED);
    assert_fail(
        &server.get("/api/chat/history/single/999", Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &server.get("/api/chat/history/single/abc", Some(&bob.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.get(&format!("{path}?limit=x"), Some(&bob.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.get("/api/chat/history/weird/1", Some(&bob.token)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &server.get("/api/chat/history/group/1", Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &server
            .get("/api/chat/history/conversation/nonsense", Some(&bob.token))
            .await,
        StatusCode::NOT_FOUND,
    );
    server.stop().await;
}

#[actix_web::test]
async fn rest_send_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.limits.max_message_bytes = 64;
        c.limits.rate_per_sec = 1;
        c.limits.rate_burst = 12;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let to = bob.id.to_string();
    let send = |form: Vec<(&'static str, String)>, token: Option<String>| {
        let server = &server;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server
                .post_form("/api/chat/socket/sendmessage", token.as_deref(), &form)
                .await
        }
    };
    let t = Some(alice.token.clone());
    let base = |extra: &[(&'static str, &str)]| {
        let mut f: Vec<(&'static str, String)> = vec![
            ("sendto_id", to.clone()),
            ("type", "text".into()),
            ("data", "x".into()),
        ];
        for (k, v) in extra {
            f.retain(|(key, _)| key != k);
            f.push((k, v.to_string()));
        }
        f
    };
    assert_fail(&send(base(&[]), None).await, StatusCode::UNAUTHORIZED);
    assert_fail(
        &send(base(&[]), Some("garbage".into())).await,
        StatusCode::UNAUTHORIZED,
    );
    let missing: Vec<_> = base(&[]).into_iter().filter(|(k, _)| *k != "sendto_id").collect();
    assert!(assert_fail(&send(missing, t.clone()).await, StatusCode::BAD_REQUEST).contains("sendto_id"));
    let no_data: Vec<_> = base(&[]).into_iter().filter(|(k, _)| *k != "data").collect();
    assert!(assert_fail(&send(no_data, t.clone()).await, StatusCode::BAD_REQUEST).contains("data"));
    let no_type: Vec<_> = base(&[]).into_iter().filter(|(k, _)| *k != "type").collect();
    assert!(assert_fail(&send(no_type, t.clone()).await, StatusCode::BAD_REQUEST).contains("type"));
    let wrong = assert_fail(
        &send(base(&[("sendto_id", "bob")]), t.clone()).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(wrong.contains("integer"), "{wrong}");
    assert_fail(
        &send(base(&[("chatType", "triple")]), t.clone()).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &send(base(&[("options", "{oops")]), t.clone()).await,
        StatusCode::BAD_REQUEST,
    );
    assert_fail(
        &send(base(&[("sendto_id", "424242")]), t.clone()).await,
        StatusCode::NOT_FOUND,
    );
    assert_fail(
        &send(base(&[("chatType", "group")]), t.clone()).await,
        StatusCode::NOT_FOUND,
    );
    let me = alice.id.to_string();
    assert_fail(
        &send(base(&[("sendto_id", me.as_str())]), t.clone()).await,
        StatusCode::BAD_REQUEST,
    );
    let big = "x".repeat(100);
    assert_fail(
        &send(base(&[("data", big.as_str())]), t.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    // Wrong type in a JSON body.
    let (status, body) = server
        .post_json(
            "/api/chat/socket/sendmessage",
            Some(&alice.token),
            &json!({"sendto_id": [1], "type": "text", "data": "x"}),
        )
        .await;
    assert_fail(&(status, body), StatusCode::BAD_REQUEST);
    // Over the rate: the burst is spent, the next send is refused.
    let mut accepted = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let got = send(base(&[]), t.clone()).await;
        if got.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(got);
            break;
        }
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
        accepted.push(got.1["data"]["id"].clone());
    }
    let limited = limited.expect("the rate limit refuses sends past the burst");
    let reason = assert_fail(&limited, StatusCode::TOO_MANY_REQUESTS);
    assert!(reason.starts_with("too many messages: at most"), "{reason}");
    // Refused sends stored nothing: the history holds exactly the accepted ones, and the
    // refused message to herself made no conversation.
    let page = common::assert_ok(
        &server
            .get(
                &format!("/api/chat/history/single/{}?limit=100", bob.id),
                Some(&alice.token),
            )
            .await,
    );
    let mut stored: Vec<String> = page["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let mut accepted: Vec<String> = accepted.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);
    let convs = common::assert_ok(&server.get("/api/chat/conversations", Some(&alice.token)).await);
    let keys: Vec<&Value> = convs["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["conversation"])
        .collect();
    assert_eq!(
        keys,
        [&json!(format!(
            "d:{}:{}",
            alice.id.min(bob.id),
            alice.id.max(bob.id)
        ))]
    );
    server.stop().await;
}

#[actix_web::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.max_message_bytes = 64).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut ws = server.ws(&alice.token).await;

    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "bad_json"),
        ("[1,2]".into(), "bad_frame"),
        (r#"{"cid":"a"}"#.into(), "missing_field"),
        (r#"{"type":"dance","cid":"b"}"#.into(), "unknown_type"),
        (
            r#"{"type":"send","cid":"c","to":"x","data":"hi"}"#.into(),
            "wrong_type",
        ),
        (r#"{"type":"send","cid":"d","to":2}"#.into(), "missing_field"),
        (
            json!({"type":"send","cid":"e","to":424242,"data":"hi"}).to_string(),
            "not_found",
        ),
        (
            json!({"type":"send","cid":"f","to":alice.id,"data":"hi"}).to_string(),
            "invalid",
        ),
        (
            json!({"type":"send","cid":"g","to":bob.id,"data":"x".repeat(100)}).to_string(),
            "too_large",
        ),
        (
            json!({"type":"send","cid":"h","to":bob.id,"data":"x","chatType":"group"}).to_string(),
            "not_found",
        ),
        (
            json!({"type":"send","cid":"i","to":bob.id,"data":"x","chatType":"nope"}).to_string(),
            "invalid",
        ),
        (
            json!({"type":"send","cid":"j","to":bob.id,"data":"x","options":"{bad"}).to_string(),
            "invalid",
        ),
        (r#"{"type":"ack","conversation":"d:1:2"}"#.into(), "missing_field"),
    ];
    for (frame, code) in &cases {
        ws.send_text(frame).await;
        let e = ws.next_of_type("error").await;
        assert_eq!(e["code"], *code, "frame {frame} gave {e}");
        assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()));
        if let Ok(v) = serde_json::from_str::<Value>(frame) {
            if let Some(cid) = v.get("cid") {
                assert_eq!(&e["cid"], cid);
            }
        }
    }
    ws.stream.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(ws.next_of_type("error").await["code"], "bad_frame");
    // Still open and working.
    ws.send_json(&json!({"type": "ping"})).await;
    ws.next_of_type("pong").await;
    ws.send_msg("ok", bob.id, "still here").await;
    assert_eq!(ws.next_of_type("ack").await["cid"], "ok");
    server.stop().await;
}

#[actix_web::test]
async fn an_oversized_frame_closes_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.ws.max_frame_bytes = 1024).await;
    let alice = server.register_open("alice").await;
    let mut ws = server.ws(&alice.token).await;
    ws.send_text(&"x".repeat(4096)).await;
    assert_eq!(ws.closed().await, Some(1009));
    server.stop().await;
}

#[actix_web::test]
async fn websocket_needs_a_valid_token() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    for (path, reason) in [
        ("/ws".to_string(), "token is required"),
        ("/ws?token=garbage".to_string(), "token is invalid"),
        (
            format!("/ws?token={}x", alice.token),
            "token signature is invalid",
        ),
    ] {
        let url = format!("ws://{}{}", server.addr, path);
        let got = common::ws_refusal(url).await;
        assert_eq!(
            common::assert_fail(&got, StatusCode::UNAUTHORIZED),
            reason,
            "{path}"
        );
    }
    // The token header works as well as the query.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/ws",
        server.addr
    ))
    .unwrap();
    req.headers_mut().insert("token", alice.token.parse().unwrap());
    let (mut stream, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = tokio::time::timeout(common::FRAME_TIMEOUT, futures_util::StreamExt::next(&mut stream))
        .await
        .expect("a frame before the timeout")
        .unwrap()
        .unwrap();
    assert!(hello.to_text().unwrap().contains("connected"));
    server.stop().await;
}

#[actix_web::test]
async fn a_session_is_closed_when_its_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.auth.token_ttl_secs = 2).await;
    let alice = server.register_open("alice").await;
    let mut ws = server.ws(&alice.token).await;
    ws.sync().await;
    // Closed with 1008 once the token expires, well before the heartbeat would.
    assert_eq!(ws.closed().await, Some(1008));
    let got = server.get("/api/chat/conversations", Some(&alice.token)).await;
    assert_eq!(assert_fail(&got, StatusCode::UNAUTHORIZED), "token expired");
    server.stop().await;
}

#[actix_web::test]
async fn a_silent_client_is_disconnected_by_the_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        // A timeout of several intervals, so a busy host's pauses are not silence.
        c.ws.heartbeat_interval_ms = 100;
        c.ws.client_timeout_ms = 600;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut ws = server.ws(&alice.token).await;
    // A client that reads answers the pings, and stays through several timeouts.
    ws.assert_quiet(2000).await;
    assert_eq!(server.metric("parlor_sessions_open").await, 1.0);
    // Not reading means not answering them: the server drops the session.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.wait_metric("parlor_sessions_open", 0.0).await;
    ws.closed().await;
    // What is sent meanwhile waits for the next connect.
    let sent = server.send_rest(&bob, &alice, "while cut").await;
    let mut again = server.ws(&alice.token).await;
    assert_eq!(again.next_of_type("singleChat").await["data"]["id"], sent["id"]);
    server.stop().await;
}

#[actix_web::test]
async fn pending_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            server
                .send_rest(&alice, &bob, &format!("before restart {i}"))
                .await["id"]
                .clone(),
        );
    }
    server.stop().await;

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    // Tokens survive too: the secret was kept in the data directory.
    let mut wb = server.ws(&bob.token).await;
    for id in &ids {
        assert_eq!(&wb.next_of_type("singleChat").await["data"]["id"], id);
    }
    server.stop().await;
}

/// A `parlor` process with its data in `dir`.
pub(crate) struct Process {
    pub(crate) child: std::process::Child,
    pub(crate) base: String,
}

impl Process {
    /// Stops the server with SIGTERM and waits for a clean exit.
    fn terminate(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit status {exit:?}");
    }
}

/// A failed test leaves no server behind.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    async fn start(dir: &std::path::Path) -> Process {
        Process::start_with(dir, &[]).await
    }

    /// A process with extra `PARLOR_*` variables.
    pub(crate) async fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
        Process::spawn(dir, env, std::process::Command::new(env!("CARGO_BIN_EXE_parlor"))).await
    }

    /// A process that cannot grow any file past `bytes`: a write past it fails with `EFBIG`
    /// (`SIGXFSZ`, which would kill it, is ignored), as on a full disk.
    async fn start_limited(dir: &std::path::Path, env: &[(&str, &str)], bytes: u64) -> Process {
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            r#"trap '' XFSZ; exec prlimit --fsize="$1" -- "$0""#,
            env!("CARGO_BIN_EXE_parlor"),
            &bytes.to_string(),
        ]);
        Process::spawn(dir, env, cmd).await
    }

    /// Runs `cmd` (the server, or a wrapper that execs it) on a free port with its data in
    /// `dir`, and waits for `/healthz`.
    async fn spawn(dir: &std::path::Path, env: &[(&str, &str)], mut cmd: std::process::Command) -> Process {
        let port = free_port();
        let child = cmd
            .env("PARLOR_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PARLOR_STORAGE__PATH", dir.join("parlor.redb"))
            .env("PARLOR_AUTH__ARGON2_MEMORY_KIB", "64")
            .env("PARLOR_AUTH__ARGON2_ITERATIONS", "1")
            .env(
                "PARLOR_USERS__DEFAULT_USERSET",
                r#"{"chatset":{"visitor":2,"user":2}}"#,
            )
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Process { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("parlor did not start");
    }
}

/// Registers `name` through `base` and returns it.
pub(crate) async fn register_at(http: &reqwest::Client, base: &str, name: &str) -> User {
    let body: Value = http
        .post(format!("{base}/api/regChat"))
        .form(&[("username", name), ("password", "secret1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    user_of(&body)
}

/// A text message from `from` to the user `to` over the REST send route of the server at
/// `base`; the answer's body, checked to be a success.
pub(crate) async fn send_rest_at(
    http: &reqwest::Client,
    base: &str,
    from: &User,
    to: u64,
    text: &str,
) -> Value {
    let body: Value = http
        .post(format!("{base}/api/chat/socket/sendmessage"))
        .header("token", &from.token)
        .form(&[
            ("sendto_id", to.to_string()),
            ("type", "text".into()),
            ("data", text.into()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["msg"], "ok", "{body}");
    body
}

/// A WebSocket of `user` on `base`, once its `connected` frame arrived.
async fn ws_at(base: &str, user: &User) -> common::Ws {
    let url = format!("{}/ws?token={}", base.replace("http", "ws"), user.token);
    let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = common::Ws { stream };
    ws.next_of_type("connected").await;
    ws
}

#[actix_web::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(dir.path()).await;
    let http = reqwest::Client::new();
    let (alice, bob) = (
        &register_at(&http, &p.base, "alice").await,
        &register_at(&http, &p.base, "bob_1").await,
    );
    let mut acked = HashSet::new();
    for i in 0..20 {
        let body = send_rest_at(&http, &p.base, alice, bob.id, &format!("m{i}")).await;
        acked.insert(body["data"]["id"].as_str().unwrap().to_owned());
    }
    p.child.kill().unwrap(); // SIGKILL: no shutdown path runs.
    p.child.wait().unwrap();

    let mut p = Process::start(dir.path()).await;
    let mut ws = ws_at(&p.base, bob).await;
    let mut got = HashSet::new();
    while got.len() < acked.len() {
        let push = ws.next_of_type("singleChat").await;
        got.insert(push["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, acked);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

/// Sends `text` to `to` until a send is refused as a storage failure (the store is full),
/// and returns the seqs of the acknowledged ones (at least one, at most `max`).
async fn send_until_refused(ws: &mut common::Ws, to: u64, text: &str, max: usize) -> Vec<u64> {
    let mut acked = Vec::new();
    loop {
        assert!(acked.len() < max, "the store never filled up");
        let cid = format!("c{}", acked.len() + 1);
        ws.send_msg(&cid, to, text).await;
        let answer = ws.next_json().await;
        if answer["type"] == "ack" {
            assert_eq!(answer["cid"], cid.as_str(), "{answer}");
            acked.push(answer["data"]["seq"].as_u64().unwrap());
            continue;
        }
        assert_error_frame(&answer, &cid, "storage", "storage failure: nothing was written");
        break;
    }
    assert!(
        !acked.is_empty(),
        "the first send already failed: too little room"
    );
    acked
}

/// A full disk: a write the store cannot make is refused as `storage` in each face's
/// envelope, with nothing of the failure's detail, and nothing acknowledged is lost.
#[actix_web::test]
async fn a_full_disk_is_a_storage_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let admin_bind = format!("127.0.0.1:{}", free_port());
    let env = [
        ("PARLOR_ADMIN__SECRET", "s3cret"),
        ("PARLOR_ADMIN__BIND", admin_bind.as_str()),
        // The disk stays full: no try to open the database again within the test.
        ("PARLOR_STORAGE__REOPEN_AFTER_MS", "600000"),
    ];
    let http = reqwest::Client::new();
    let mut p = Process::start_with(dir.path(), &env).await;
    let alice = register_at(&http, &p.base, "alice").await;
    let bob = register_at(&http, &p.base, "bob_1").await;
    p.terminate();
    // Started again, it can grow its store once (redb doubles a small file when it needs
    // room), never twice: the first sends fit, whatever free pages today's file holds, and
    // the store fills up within a bounded number of them.
    let size = std::fs::metadata(dir.path().join("parlor.redb")).unwrap().len();
    let mut p = Process::start_limited(dir.path(), &env, size * 5 / 2).await;
    let mut wa = ws_at(&p.base, &alice).await;
    let big = "x".repeat(12 * 1024);
    let acked = send_until_refused(&mut wa, bob.id, &big, 2000).await;
    // The REST face and the admin face refuse in their own envelopes.
    let rest = http
        .post(format!("{}/api/chat/socket/sendmessage", p.base))
        .header("token", &alice.token)
        .form(&[
            ("sendto_id", bob.id.to_string()),
            ("type", "text".into()),
            ("data", big.clone()),
        ])
        .send()
        .await
        .unwrap();
    let rest = (rest.status(), rest.json::<Value>().await.unwrap());
    let reason = assert_fail(&rest, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reason, "storage failure: nothing was written");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let nonce = "full-disk";
    let admin: Value = http
        .post(format!("http://{admin_bind}/admin/modify_setting"))
        .header("nonce", nonce)
        .header("timestamp", &ts)
        .header("sign", parlor::faces::admin::sign(nonce, "s3cret", &ts))
        .json(&json!({"id": 2, "value": "60"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["code"], 4, "{admin}");
    assert!(!admin["msg"].as_str().unwrap().contains("os error"), "{admin}");
    // The health check says so, and the metrics too.
    let health = http.get(format!("{}/healthz", p.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "unavailable", "{health}");
    assert!(
        health["error"].as_str().unwrap().starts_with("storage:"),
        "{health}"
    );
    assert_eq!(metric_at(&http, &p.base, "parlor_storage_failing").await, 1.0);
    p.terminate();

    // With room again, the timeline holds exactly what was acknowledged, and Bob gets it.
    let p = Process::start_with(dir.path(), &env).await;
    let health = http.get(format!("{}/healthz", p.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let mut wb = ws_at(&p.base, &bob).await;
    for want in &acked {
        let push = wb.next_of_type("singleChat").await;
        assert_eq!(push["data"]["seq"], *want);
        assert_eq!(push["data"]["data"].as_str().map(str::len), Some(big.len()));
    }
    wb.assert_quiet(300).await;
}

/// A small tmpfs mounted for one test (root, or `sudo` without a password), unmounted when
/// dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "-t".to_owned(),
            "tmpfs".into(),
            "-o".into(),
            format!("size={bytes},mode=0700"),
            "tmpfs".into(),
            dir.path().display().to_string(),
        ];
        let mounted = std::process::Command::new("mount")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success())
            || std::process::Command::new("sudo")
                .arg("-n")
                .arg("mount")
                .args(&args)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            mounted,
            "this test mounts a small tmpfs: run it as root (or with sudo without a password)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Bytes still free for an unprivileged writer.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path().display().to_string();
        let done = std::process::Command::new("umount")
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = std::process::Command::new("sudo")
                .args(["-n", "umount", &path])
                .status();
        }
    }
}

/// A disk that fills up and frees again: writes fail (refused, nothing acknowledged lost,
/// `/healthz` 503), and once there is room again the server opens its database again by
/// itself: writes and `/healthz` come back without a restart, and every acknowledged
/// message is delivered.
#[actix_web::test]
async fn after_a_full_disk_frees_up_writes_resume_without_a_restart() {
    let disk = Tmpfs::mount(24 * 1024 * 1024);
    let http = reqwest::Client::new();
    let mut p = Process::start_with(disk.path(), &[("PARLOR_STORAGE__REOPEN_AFTER_MS", "50")]).await;
    let alice = register_at(&http, &p.base, "alice").await;
    let bob = register_at(&http, &p.base, "bob_1").await;
    let mut wa = ws_at(&p.base, &alice).await;
    // Fill the disk but for a little room for the next messages.
    let filler = disk.path().join("filler");
    let room = 512 * 1024;
    std::fs::write(&filler, vec![0u8; (disk.free().saturating_sub(room)) as usize]).unwrap();
    let big = "x".repeat(12 * 1024);
    let acked = send_until_refused(&mut wa, bob.id, &big, 500).await;
    let health = http.get(format!("{}/healthz", p.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Room again: within the Writer's retry interval the server is healthy and writes.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let health = http.get(format!("{}/healthz", p.base)).send().await.unwrap();
        if health.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never healthy again: {:?}",
            health.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut wa = ws_at(&p.base, &alice).await;
    wa.send_msg("after", bob.id, "room again").await;
    let ack = wa.next_of_type("ack").await;
    assert_eq!(ack["cid"], "after", "{ack}");
    let next = ack["data"]["seq"].as_u64().unwrap();
    assert_eq!(next, acked.last().unwrap() + 1, "the refused message took no seq");
    assert_eq!(
        metric_at(&http, &p.base, "parlor_storage_reopens_total").await,
        1.0
    );
    assert_eq!(metric_at(&http, &p.base, "parlor_storage_failing").await, 0.0);
    // Bob gets everything acknowledged, in order, and nothing else.
    let mut wb = ws_at(&p.base, &bob).await;
    for want in acked.iter().chain([&next]) {
        let push = wb.next_of_type("singleChat").await;
        assert_eq!(push["data"]["seq"], *want);
    }
    wb.assert_quiet(300).await;
    p.terminate();
}

#[actix_web::test]
async fn sigterm_closes_every_session_with_1001_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A long grace period: the sessions must not be what the stop waits for.
    let env = [("PARLOR_SERVER__SHUTDOWN_TIMEOUT_SECS", "60")];
    let mut p = Process::start_with(dir.path(), &env).await;
    let http = reqwest::Client::new();
    let alice = register_at(&http, &p.base, "alice").await;
    let mut sockets = vec![ws_at(&p.base, &alice).await, ws_at(&p.base, &alice).await];
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for ws in &mut sockets {
        let frame = loop {
            let next = tokio::time::timeout(common::FRAME_TIMEOUT, ws.stream.next())
                .await
                .expect("a close frame before the deadline");
            match next {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        };
        let frame = frame.expect("a close code");
        assert_eq!(u16::from(frame.code), 1001);
        assert_eq!(frame.reason.as_str(), "server shutting down");
    }
    // And the process ends long before the grace period.
    let deadline = std::time::Instant::now() + common::FRAME_TIMEOUT;
    let exit = loop {
        if let Some(exit) = p.child.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[actix_web::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // Sessions confirm and report at once, and cursors are committed by the shutdown only:
    // the periodic flush never comes.
    let env = [
        ("PARLOR_ROUTER__CURSOR_FLUSH_MS", "3600000"),
        ("PARLOR_WS__PROBE_INTERVAL_MS", "20"),
        ("PARLOR_WS__REPORT_INTERVAL_MS", "20"),
        ("PARLOR_SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
    ];
    let mut p = Process::start_with(dir.path(), &env).await;
    let http = reqwest::Client::new();
    let alice = register_at(&http, &p.base, "alice").await;
    let bob = register_at(&http, &p.base, "bob_1").await;
    let key = format!("d:{}:{}", alice.id.min(bob.id), alice.id.max(bob.id));
    let mut wa = ws_at(&p.base, &alice).await;
    let mut wb = ws_at(&p.base, &bob).await;

    // Ten messages that Bob receives, confirms (his reading answers the probe behind them)
    // and reads up to 5.
    for i in 1..=10u64 {
        wa.send_msg(&format!("a{i}"), bob.id, &format!("m{i}")).await;
        assert_eq!(wa.next_of_type("ack").await["data"]["seq"], i);
        assert_eq!(wb.next_of_type("singleChat").await["data"]["seq"], i);
    }
    wb.send_json(&json!({"type": "read", "conversation": key, "seq": 5}))
        .await;
    assert_eq!(wa.next_of_type("read").await["data"]["seq"], 5);
    wb.assert_quiet(300).await;

    // Twenty more in flight, Bob no longer reading, and SIGTERM right behind them.
    for i in 11..=30u64 {
        wa.send_msg(&format!("a{i}"), bob.id, &format!("m{i}")).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Every ack that made it out before the socket closed.
    let mut acked = Vec::new();
    loop {
        let next = tokio::time::timeout(common::FRAME_TIMEOUT, wa.stream.next())
            .await
            .expect("the socket closes before the deadline");
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ack" {
                    acked.push(v["data"]["seq"].as_u64().unwrap());
                }
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        }
    }
    let exit = p.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(dir.path().join("jwt_secret").exists());

    let mut p = Process::start_with(dir.path(), &env).await;
    // The timeline has no gap and no duplicate, and holds every acknowledged message.
    let get = |path: String, user: &User| {
        http.get(format!("{}{path}", p.base))
            .header("token", user.token.clone())
            .send()
    };
    let page: Value = get(format!("/api/chat/history/single/{}?limit=100", bob.id), &alice)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = page["data"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    let head = seqs.len() as u64;
    assert_eq!(seqs, (1..=head).collect::<Vec<u64>>());
    assert!(acked.iter().all(|s| *s <= head), "acked {acked:?}, head {head}");
    assert!(head >= 10);
    // Bob's read position was kept: the rest is unread.
    let convs: Value = get("/api/chat/conversations".into(), &bob)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = convs["data"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["conversation"] == key))
        .unwrap_or_else(|| panic!("{convs}"));
    assert_eq!(conv["unread"], head - 5, "{conv}");
    // His delivered position too: he is sent what he never confirmed, from 11 on, once.
    let mut wb = ws_at(&p.base, &bob).await;
    for want in 11..=head {
        assert_eq!(wb.next_of_type("singleChat").await["data"]["seq"], want);
    }
    wb.assert_quiet(300).await;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// Refusals of the core over the WebSocket: rate, a full write queue, lengths

/// Reads `ack` and `error` frames until one has arrived for each of `cids`; returns them by
/// `cid` (other frames are skipped).
async fn answers(ws: &mut common::Ws, cids: &[String]) -> HashMap<String, Value> {
    let mut got = HashMap::new();
    while got.len() < cids.len() {
        let v = ws.next_json().await;
        if v["type"] != "ack" && v["type"] != "error" {
            continue;
        }
        let cid = v["cid"]
            .as_str()
            .unwrap_or_else(|| panic!("no cid: {v}"))
            .to_owned();
        assert!(cids.contains(&cid), "an answer to no frame of this round: {v}");
        assert!(got.insert(cid, v.clone()).is_none(), "two answers: {v}");
    }
    got
}

/// Asserts an `error` frame: its `cid`, `code` and `msg`, and nothing else but the time.
#[track_caller]
fn assert_error_frame(frame: &Value, cid: &str, code: &str, msg: &str) {
    assert_eq!(frame["type"], "error", "{frame}");
    assert!(frame["timestamp"].as_u64().is_some(), "{frame}");
    let mut rest = frame.clone();
    rest.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        rest,
        json!({"type": "error", "cid": cid, "code": code, "msg": msg})
    );
}

/// The ids of the messages alice and bob see in their conversation (uni-app history).
async fn history_ids(server: &TestServer, me: &User, peer: &User) -> Vec<String> {
    let got = server
        .get(
            &format!("/api/chat/history/single/{}?limit=200", peer.id),
            Some(&me.token),
        )
        .await;
    common::assert_ok(&got)["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_websocket_send_past_the_burst_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.limits.rate_per_sec = 1;
        c.limits.rate_burst = 2;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    let cids: Vec<String> = (0..3).map(|i| format!("r{i}")).collect();
    for cid in &cids {
        wa.send_msg(cid, bob.id, cid).await;
    }
    // The burst of 2 is spent at once; the third, well within a second, is refused.
    let got = answers(&mut wa, &cids).await;
    assert_eq!(got["r0"]["type"], "ack", "{}", got["r0"]);
    assert_eq!(got["r1"]["type"], "ack", "{}", got["r1"]);
    assert_error_frame(
        &got["r2"],
        "r2",
        "rate_limited",
        "too many messages: at most 1 per second",
    );
    // Nothing was stored for it.
    let stored = history_ids(&server, &alice, &bob).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    server.stop().await;
}

#[actix_web::test]
async fn a_full_write_queue_refuses_sends_as_overloaded_and_a_retry_with_the_cid_stores_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.storage.write_queue = 1;
        c.limits.rate_per_sec = 0;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    // A burst faster than one commit per write: the queue of one overflows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut refused = Vec::new();
    let mut acked = HashSet::new();
    let mut round = 0;
    while refused.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no send was refused as overloaded"
        );
        let cids: Vec<String> = (0..200).map(|i| format!("o{round}-{i}")).collect();
        for cid in &cids {
            wa.send_msg(cid, bob.id, cid).await;
        }
        for (cid, frame) in answers(&mut wa, &cids).await {
            if frame["type"] == "ack" {
                acked.insert(frame["data"]["id"].as_str().unwrap().to_owned());
            } else {
                assert_error_frame(&frame, &cid, "overloaded", "server is busy, retry");
                refused.push(cid);
            }
        }
        round += 1;
    }
    // Nothing refused was stored; a retry with the same cid stores it once.
    assert_eq!(history_ids(&server, &alice, &bob).await.len(), acked.len());
    for cid in &refused {
        loop {
            assert!(tokio::time::Instant::now() < deadline, "{cid} was never stored");
            wa.send_msg(cid, bob.id, cid).await;
            let got = answers(&mut wa, std::slice::from_ref(cid)).await;
            if got[cid]["type"] == "ack" {
                acked.insert(got[cid]["data"]["id"].as_str().unwrap().to_owned());
                break;
            }
            assert_error_frame(&got[cid], cid, "overloaded", "server is busy, retry");
        }
    }
    let stored: HashSet<String> = history_ids(&server, &alice, &bob).await.into_iter().collect();
    assert_eq!(stored, acked);
    server.stop().await;
}

#[actix_web::test]
async fn a_revoke_while_the_write_queue_is_full_is_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.storage.write_queue = 1;
        c.limits.rate_per_sec = 0;
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let carol = server.register_open("carol").await;
    let mut wa = server.ws(&alice.token).await;
    let mut wc = server.ws(&carol.token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    let refused = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no revoke was refused as overloaded"
        );
        // Alice's messages to revoke, sent while the queue is quiet.
        let mut ids = Vec::new();
        for i in 0..5 {
            let msg = server.send_rest(&alice, &bob, &format!("m{round}-{i}")).await;
            ids.push(msg["id"].as_str().unwrap().to_owned());
        }
        // Carol floods the queue; alice's revokes go in meanwhile.
        let flood: Vec<String> = (0..300).map(|i| format!("f{round}-{i}")).collect();
        for cid in &flood {
            wc.send_msg(cid, bob.id, cid).await;
        }
        let revokes: Vec<String> = (0..ids.len()).map(|i| format!("v{round}-{i}")).collect();
        for (cid, id) in revokes.iter().zip(&ids) {
            wa.send_json(&json!({"type": "revoke", "cid": cid, "id": id}))
                .await;
        }
        answers(&mut wc, &flood).await;
        let got = answers(&mut wa, &revokes).await;
        round += 1;
        let mut refused = Vec::new();
        for (cid, id) in revokes.iter().zip(&ids) {
            let frame = &got[cid];
            if frame["type"] == "ack" {
                assert_eq!(frame["data"]["revoked"], true, "{frame}");
            } else {
                assert_error_frame(frame, cid, "overloaded", "server is busy, retry");
                refused.push((cid.clone(), id.clone()));
            }
        }
        if !refused.is_empty() {
            break refused;
        }
    };
    // The refused revoke changed nothing, and a retry when the queue has room revokes.
    for (cid, id) in refused {
        loop {
            assert!(tokio::time::Instant::now() < deadline, "{id} was never revoked");
            wa.send_json(&json!({"type": "revoke", "cid": cid, "id": id}))
                .await;
            let got = answers(&mut wa, std::slice::from_ref(&cid)).await;
            if got[&cid]["type"] == "ack" {
                assert_eq!(got[&cid]["data"]["id"], id.as_str());
                assert_eq!(got[&cid]["data"]["revoked"], true);
                break;
            }
            assert_error_frame(&got[&cid], &cid, "overloaded", "server is busy, retry");
        }
    }
    server.stop().await;
}

#[actix_web::test]
async fn cid_and_msg_type_lengths_are_checked_over_the_websocket() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    let long_cid = "c".repeat(65);
    wa.send_json(&json!({"type": "send", "cid": long_cid, "to": bob.id, "data": "x"}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_error_frame(&e, &long_cid, "invalid", "cid must be 1 to 64 characters");
    wa.send_json(&json!({"type": "send", "cid": "", "to": bob.id, "data": "x"}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_error_frame(&e, "", "invalid", "cid must be 1 to 64 characters");
    let long_type = "t".repeat(33);
    for (cid, kind) in [("t1", long_type.as_str()), ("t2", "")] {
        wa.send_json(&json!({"type": "send", "cid": cid, "to": bob.id, "msgType": kind, "data": "x"}))
            .await;
        let e = wa.next_of_type("error").await;
        assert_error_frame(&e, cid, "invalid", "type must be 1 to 32 characters");
    }
    wa.send_json(&json!({"type": "send", "cid": "t3", "to": bob.id, "msgType": "te\u{7}xt", "data": "x"}))
        .await;
    let e = wa.next_of_type("error").await;
    assert_error_frame(&e, "t3", "invalid", "type must not contain control characters");
    // Options: an object, or a string holding one.
    for (cid, options) in [("o1", json!([1, 2])), ("o2", json!(7)), ("o3", json!("[1]"))] {
        wa.send_json(&json!({"type": "send", "cid": cid, "to": bob.id, "data": "x", "options": options}))
            .await;
        let e = wa.next_of_type("error").await;
        assert_error_frame(
            &e,
            cid,
            "invalid",
            "options must be a JSON object (or a string holding one)",
        );
    }
    // At the limits both are taken, counted in characters, not bytes.
    let cid = "消".repeat(64);
    let kind = "类".repeat(32);
    wa.send_json(&json!({"type": "send", "cid": cid, "to": bob.id, "msgType": kind, "data": "x", "options": "{\"k\":1}"}))
        .await;
    let ack = wa.next_of_type("ack").await;
    assert_eq!(ack["cid"], cid.as_str());
    assert_eq!(ack["data"]["type"], kind.as_str());
    assert_eq!(ack["data"]["options"], json!({"k": 1}));
    // Only that one was stored.
    assert_eq!(history_ids(&server, &alice, &bob).await.len(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn a_history_page_asked_larger_than_history_max_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.limits.history_max = 3).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(server.send_rest(&alice, &bob, &format!("h{i}")).await["id"].clone());
    }
    // The uni-app face: the newest three of five.
    let got = server
        .get(
            &format!("/api/chat/history/single/{}?limit=100", bob.id),
            Some(&alice.token),
        )
        .await;
    let list = common::assert_ok(&got)["list"].as_array().unwrap().clone();
    let mut ids: Vec<Value> = list.iter().map(|m| m["id"].clone()).collect();
    ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(ids, sent[2..].to_vec(), "{list:?}");
    // The chat-room face: its conversation number, then a page of at most three.
    let got = server.get("/conversation/getlist", Some(&alice.token)).await;
    let number = got.1["conversations"][0]["id"].clone();
    let got = server
        .get(
            &format!("/message/history/{number}?limit=100"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(got.1["success"], true, "{}", got.1);
    let uuids: Vec<Value> = got.1["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["uuid"].clone())
        .rev()
        .collect();
    assert_eq!(uuids, sent[2..].to_vec(), "{}", got.1);
    server.stop().await;
}
