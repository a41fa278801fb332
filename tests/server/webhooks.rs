//! Webhooks end to end: endpoints added, listed and removed through the signed admin face
//! (and every refusal: unsigned, missing or bad URL, private address, unknown event, unknown
//! endpoint, another tenant's endpoint), and `message.sent` events POSTed to a real local
//! receiver started by the test: signed (the HMAC recomputed here), in conversation order,
//! every event exactly once through a receiver that fails and recovers, dead letters after
//! `webhooks.max_attempts` failures (listed and retried through the admin face), group
//! messages listing their members, `message.revoked`, `group.members` and `friend.request`
//! events (and none for a refused change), `user.online` and `user.offline` events, sends unaffected by a receiver that never answers
//! (load generator runs included), and
//! nothing lost across a `kill -9` of the real binary with events waiting for a receiver
//! that is down.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::admin::{admin, create_group, fresh_headers, ok, refused, with_admin, SECRET};
use crate::common::{self, eventually, free_port, TestServer, User};
use crate::messages::{register_at, send_rest_at, Process};

/// The secret the tests give their endpoints.
const HOOK_SECRET: &str = "a-test-secret-of-32-bytes-length";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    /// Answered with a 2xx.
    ok: bool,
    event: String,
    delivery: u64,
    timestamp: u64,
    signature: String,
    raw: String,
    body: Value,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// 200 to everything.
    Answer,
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// A local HTTP server recording what it is POSTed.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    handle: ServerHandle,
}

impl Receiver {
    async fn start(port: u16, mode: Mode) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = hits.clone();
        let server = HttpServer::new(move || {
            let seen = seen.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let seen = seen.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let raw = String::from_utf8(body.to_vec()).unwrap();
                    let ok = {
                        let mut hits = seen.lock().unwrap();
                        let ok = match mode {
                            Mode::Answer => true,
                            Mode::FailFirst(n) => hits.len() >= n,
                            Mode::Hang => false,
                        };
                        hits.push(Hit {
                            ok,
                            event: header("x-parlor-event"),
                            delivery: header("x-parlor-delivery").parse().unwrap(),
                            timestamp: header("x-parlor-timestamp").parse().unwrap(),
                            signature: header("x-parlor-signature"),
                            body: serde_json::from_str(&raw).unwrap(),
                            raw,
                        });
                        ok
                    };
                    if let Mode::Hang = mode {
                        futures_util::future::pending::<()>().await;
                    }
                    if ok {
                        HttpResponse::Ok().finish()
                    } else {
                        HttpResponse::InternalServerError().finish()
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", port))
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver { port, hits, handle }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The requests answered with a 2xx, in arrival order.
    fn accepted(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.ok)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// Waits until `n` requests were answered with a 2xx; returns them.
    async fn wait_accepted(&self, n: usize) -> Vec<Hit> {
        eventually(
            || async { self.accepted().len() >= n },
            &format!("{n} webhook deliveries"),
        )
        .await;
        self.accepted()
    }
}

/// Fast retries, loopback allowed.
fn quick_hooks(c: &mut parlor::config::Config) {
    with_admin(c);
    c.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
    c.webhooks.backoff_ms = 20;
    c.webhooks.max_backoff_ms = 100;
    c.webhooks.poll_ms = 20;
}

/// A server with the admin listener and [`quick_hooks`], then `tweak`.
async fn start(tweak: impl FnOnce(&mut parlor::config::Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        quick_hooks(c);
        tweak(c);
    })
    .await;
    (server, dir)
}

/// Adds an endpoint for `url` with [`HOOK_SECRET`]; returns its id.
async fn add_hook(server: &TestServer, url: &str, events: &[&str]) -> u64 {
    let added = ok(&admin(
        server,
        "/admin/webhook/add",
        &json!({"url": url, "events": events, "secret": HOOK_SECRET}),
    )
    .await);
    added["id"].as_u64().unwrap()
}

/// Whether a hit's signature is the HMAC-SHA256 of `<timestamp>.<body>` with the secret.
fn signed(hit: &Hit, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", hit.timestamp, hit.raw).as_bytes());
    hit.signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The message seqs of `message.sent` hits, in arrival order.
fn seqs(hits: &[Hit]) -> Vec<u64> {
    hits.iter()
        .map(|h| h.body["data"]["message"]["seq"].as_u64().unwrap())
        .collect()
}

/// Two users, `bob` open to messages from strangers.
async fn pair(server: &TestServer) -> (User, User) {
    (
        server.register("alice1").await,
        server.register_open("bobby1").await,
    )
}

#[actix_web::test]
async fn endpoints_are_added_listed_and_removed_and_bad_requests_refused() {
    let (server, _dir) = start(|c| c.webhooks.allowed_hosts = vec!["127.0.0.1:9".into()]).await;
    let answer = admin(
        &server,
        "/admin/webhook/add",
        &json!({"url": "http://127.0.0.1:9/hook", "events": ["message.sent", "message.sent"]}),
    )
    .await;
    let added = ok(&answer);
    let id = added["id"].as_u64().unwrap();
    assert_eq!(added["events"], json!(["message.sent"]), "{added}");
    let secret = added["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{added}");

    let listed = ok(&admin(&server, "/admin/webhook/list", &json!({})).await);
    assert_eq!(
        listed,
        json!([{"id": id, "url": "http://127.0.0.1:9/hook", "events": ["message.sent"], "createdAt": added["createdAt"]}])
    );
    // Tenants see only their own endpoints.
    let other = ok(&admin(&server, "/admin/webhook/list", &json!({"appId": "other"})).await);
    assert_eq!(other, json!([]));
    refused(
        &admin(
            &server,
            "/admin/webhook/remove",
            &json!({"id": id, "appId": "other"}),
        )
        .await,
        253,
    );

    // Refusals: unsigned, missing or bad fields, private addresses.
    let unsigned = server
        .http
        .post(format!("http://{}/admin/webhook/add", server.admin.unwrap()))
        .json(&json!({"url": "http://127.0.0.1:9/", "events": ["message.sent"]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    refused(&unsigned, 239);
    for (body, why) in [
        (json!({"events": ["message.sent"]}), "url is required"),
        (json!({"url": "http://127.0.0.1:9/"}), "events is required"),
        (
            json!({"url": "http://127.0.0.1:9/", "events": []}),
            "at least one",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["nope"]}),
            "unknown event",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": "message.sent"}),
            "list",
        ),
        (
            json!({"url": "not a url", "events": ["message.sent"]}),
            "not a URL",
        ),
        (
            json!({"url": "ftp://127.0.0.1:9/", "events": ["message.sent"]}),
            "http or https",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["message.sent"], "secret": "short"}),
            "secret",
        ),
        // Loopback on another port, private and link-local addresses: not allowed.
        (
            json!({"url": "http://127.0.0.1:10/", "events": ["message.sent"]}),
            "private",
        ),
        (
            json!({"url": "http://10.1.2.3/", "events": ["message.sent"]}),
            "private",
        ),
        (
            json!({"url": "http://[::1]:9/", "events": ["message.sent"]}),
            "private",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["message.sent"]}),
            "private",
        ),
        (
            json!({"url": "http://localhost:9/", "events": ["message.sent"]}),
            "private",
        ),
    ] {
        let msg = refused(&admin(&server, "/admin/webhook/add", &body).await, 251);
        assert!(msg.contains(why), "{body}: {msg}");
    }
    refused(&admin(&server, "/admin/webhook/remove", &json!({})).await, 251);
    refused(
        &admin(&server, "/admin/webhook/remove", &json!({"id": 999})).await,
        253,
    );
    refused(
        &admin(&server, "/admin/webhook/dead_letters", &json!({"id": 999})).await,
        253,
    );
    refused(
        &admin(&server, "/admin/webhook/retry", &json!({"id": 999})).await,
        253,
    );

    ok(&admin(&server, "/admin/webhook/remove", &json!({"id": id})).await);
    assert_eq!(
        ok(&admin(&server, "/admin/webhook/list", &json!({})).await),
        json!([])
    );
    refused(
        &admin(&server, "/admin/webhook/remove", &json!({"id": id})).await,
        253,
    );
    server.stop().await;
}

#[actix_web::test]
async fn message_sent_events_are_signed_in_order_and_tell_who_was_online() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    let (alice, bob) = pair(&server).await;
    // A tenant without endpoints queues nothing.
    server.send_rest(&alice, &bob, "before").await;
    add_hook(&server, &receiver.url(), &["message.sent"]).await;

    let ws = server.ws(&bob.token).await;
    for i in 0..5 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    server.hang_up(ws).await;
    let last = server.send_rest(&alice, &bob, "away").await;

    let hits = receiver.wait_accepted(6).await;
    assert_eq!(
        seqs(&hits),
        [2, 3, 4, 5, 6, 7],
        "in conversation order, the first message before the endpoint not told"
    );
    for (i, hit) in hits.iter().enumerate() {
        assert!(signed(hit, HOOK_SECRET), "{hit:?}");
        assert!(!signed(hit, "another secret"));
        assert_eq!(hit.event, "message.sent");
        let body = &hit.body;
        assert_eq!(body["event"], "message.sent");
        assert_eq!(body["tenant"], "default");
        let m = &body["data"]["message"];
        assert_eq!(m["fromId"], alice.id);
        assert_eq!(m["toId"], bob.id);
        assert_eq!(m["chatType"], "single");
        let online = i < 5;
        assert_eq!(
            body["data"]["recipients"],
            json!([{"userId": bob.id, "online": online}]),
            "{body}"
        );
    }
    assert_eq!(hits[5].body["data"]["message"]["id"], last["id"]);
    let ids: HashSet<u64> = hits.iter().map(|h| h.delivery).collect();
    assert_eq!(ids.len(), 6, "a delivery id per event");
    server.wait_metric("parlor_webhook_outbox_depth", 0.0).await;
    assert_eq!(server.metric("parlor_webhook_deliveries_total").await, 6.0);
    assert_eq!(server.metric("parlor_webhook_failures_total").await, 0.0);
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn users_coming_online_and_going_offline_are_events_in_order() {
    let (server, _dir) = start(|c| {
        c.presence.enabled = true;
        c.presence.offline_grace_ms = 100;
    })
    .await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    add_hook(&server, &receiver.url(), &["user.online", "user.offline"]).await;
    let alice = server.register("alice1").await;
    // Hiding presence from other users hides nothing from the tenant's own backend.
    let (status, body) = server
        .post_form(
            "/api/chat/updateUserinfo",
            Some(&alice.token),
            &[("fieldname", "hide_presence"), ("fieldValue", "1")],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    for round in 1..=2 {
        let ws = server.ws(&alice.token).await;
        receiver.wait_accepted(2 * round - 1).await;
        // A second device changes nothing.
        let second = server.ws(&alice.token).await;
        second.close().await;
        ws.close().await;
        receiver.wait_accepted(2 * round).await;
    }
    let hits = receiver.accepted();
    let events: Vec<&str> = hits.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(
        events,
        ["user.online", "user.offline", "user.online", "user.offline"]
    );
    for hit in &hits {
        assert!(signed(hit, HOOK_SECRET), "{hit:?}");
        assert_eq!(hit.body["data"]["userId"], alice.id, "{:?}", hit.body);
    }
    assert_eq!(hits[0].body["data"], json!({"userId": alice.id, "online": true}));
    let seen = hits[1].body["data"]["lastSeen"].as_u64().expect("lastSeen");
    assert!(
        seen >= hits[0].body["createdAt"].as_u64().unwrap(),
        "{:?}",
        hits[1].body
    );
    assert_eq!(hits[1].body["data"]["online"], false);
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn group_messages_tell_the_members_without_their_online_state() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    let (alice, bob) = pair(&server).await;
    let carol = server.register("carol1").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let gid = create_group(&server, &alice, &[&bob, &carol]).await;
    add_hook(&server, &receiver.url(), &["message.sent"]).await;
    let gid_text = gid.to_string();
    let (status, body) = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&alice.token),
            &[
                ("sendto_id", gid_text.as_str()),
                ("chatType", "group"),
                ("type", "text"),
                ("data", "hello all"),
            ],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let hits = receiver.wait_accepted(1).await;
    let data = &hits[0].body["data"];
    assert_eq!(data["message"]["chatType"], "group", "{data}");
    assert_eq!(data["message"]["toId"], gid);
    assert_eq!(data["message"]["id"], body["data"]["id"]);
    let mut members = [bob.id, carol.id];
    members.sort_unstable();
    let expected: Vec<Value> = members
        .iter()
        .map(|id| json!({"userId": id, "online": null}))
        .collect();
    assert_eq!(data["recipients"], json!(expected), "{data}");
    assert!(signed(&hits[0], HOOK_SECRET));
    receiver.stop().await;
    server.stop().await;
}

/// POSTs a uni-app form as `user`, asserting success; returns the body.
async fn form_ok(server: &TestServer, user: &User, path: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = server.post_form(path, Some(&user.token), form).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{path}: {body}");
    body
}

/// The hits of `event`, in arrival order.
fn of_event<'a>(hits: &'a [Hit], event: &str) -> Vec<&'a Hit> {
    hits.iter().filter(|h| h.event == event).collect()
}

#[actix_web::test]
async fn a_revoke_is_an_event_after_its_message_and_a_refused_one_is_none() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    let only_sent = Receiver::start(free_port(), Mode::Answer).await;
    let (alice, bob) = pair(&server).await;
    add_hook(&server, &receiver.url(), &["message.sent", "message.revoked"]).await;
    add_hook(&server, &only_sent.url(), &["message.sent"]).await;
    let sent = server.send_rest(&alice, &bob, "oops").await;
    let id = sent["id"].as_str().unwrap().to_owned();
    // Bob may not revoke Alice's message: refused, and no event.
    let (status, body) = server
        .post_form("/api/chat/revokeMessage", Some(&bob.token), &[("id", &id)])
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    form_ok(&server, &alice, "/api/chat/revokeMessage", &[("id", &id)]).await;
    // Revoked twice: refused, and no second event.
    let (status, body) = server
        .post_form("/api/chat/revokeMessage", Some(&alice.token), &[("id", &id)])
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    server.send_rest(&alice, &bob, "after").await;

    let hits = receiver.wait_accepted(3).await;
    let events: Vec<&str> = hits.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, ["message.sent", "message.revoked", "message.sent"]);
    let revoked = &hits[1];
    assert!(signed(revoked, HOOK_SECRET));
    assert_eq!(revoked.body["event"], "message.revoked");
    let data = &revoked.body["data"];
    assert_eq!(data["message"]["id"], id.as_str(), "{data}");
    assert_eq!(data["message"]["seq"], sent["seq"], "{data}");
    assert_eq!(data["message"]["type"], "systemNotice", "the placeholder: {data}");
    assert_ne!(data["message"]["data"], "oops", "the content is gone: {data}");
    assert_eq!(data["revokedBy"], alice.id);
    let seq = sent["seq"].as_u64().unwrap();
    assert_eq!(data["noticeSeq"], seq + 1, "{data}");
    assert_eq!(
        hits[2].body["data"]["message"]["seq"],
        seq + 2,
        "the next message follows the notice"
    );
    // The endpoint without the event gets the two messages only.
    let others = only_sent.wait_accepted(2).await;
    server.wait_metric("parlor_webhook_outbox_depth", 0.0).await;
    assert_eq!(only_sent.all().len(), 2, "{others:?}");
    assert!(of_event(&only_sent.all(), "message.revoked").is_empty());
    assert_eq!(receiver.all().len(), 3);
    receiver.stop().await;
    only_sent.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn group_membership_changes_are_events_in_the_group_order() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    add_hook(&server, &receiver.url(), &["group.members"]).await;
    let (alice, bob) = pair(&server).await;
    let carol = server.register("carol1").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let gid = create_group(&server, &alice, &[&bob]).await;
    let g = gid.to_string();
    let carol_id = carol.id.to_string();
    let invite = [("group_id", g.as_str()), ("user_id", carol_id.as_str())];
    form_ok(&server, &alice, "/api/chat/groupInviteUser", &invite).await;
    // A rename changes no member: no event.
    let rename = [("group_id", g.as_str()), ("name", "renamed")];
    form_ok(&server, &alice, "/api/chat/groupUpdateName", &rename).await;
    // Carol may not remove Bob (only the owner may): refused, no event.
    let bob_id = bob.id.to_string();
    let (status, body) = server
        .post_form(
            "/api/chat/groupDeleteUser",
            Some(&carol.token),
            &[("group_id", g.as_str()), ("user_id", bob_id.as_str())],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    form_ok(
        &server,
        &carol,
        "/api/chat/groupDeleteOrQuit",
        &[("group_id", g.as_str())],
    )
    .await;
    form_ok(
        &server,
        &alice,
        "/api/chat/groupDeleteOrQuit",
        &[("group_id", g.as_str())],
    )
    .await;

    let hits = receiver.wait_accepted(4).await;
    let data: Vec<&Value> = hits.iter().map(|h| &h.body["data"]).collect();
    for (hit, d) in hits.iter().zip(&data) {
        assert_eq!(hit.event, "group.members");
        assert!(signed(hit, HOOK_SECRET));
        assert_eq!(d["groupId"], gid, "{d}");
        assert_eq!(d["conversation"], format!("g:{gid}"), "{d}");
    }
    let actions: Vec<&str> = data.iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["groupCreate", "groupJoin", "groupQuit", "groupDissolve"],
        "{data:?}"
    );
    assert_eq!(
        data[0]["joined"],
        json!([{"userId": alice.id, "inviter": 0}, {"userId": bob.id, "inviter": alice.id}])
    );
    assert_eq!(data[0]["by"], alice.id);
    assert_eq!(
        data[1]["joined"],
        json!([{"userId": carol.id, "inviter": alice.id}])
    );
    assert_eq!(
        (&data[2]["left"], &data[2]["by"]),
        (&json!([carol.id]), &json!(carol.id))
    );
    assert_eq!(data[2]["dissolved"], false);
    let mut left: Vec<u64> = serde_json::from_value(data[3]["left"].clone()).unwrap();
    left.sort_unstable();
    let mut everyone = vec![alice.id, bob.id];
    everyone.sort_unstable();
    assert_eq!(left, everyone, "{}", data[3]);
    assert_eq!(data[3]["dissolved"], true);
    server.wait_metric("parlor_webhook_outbox_depth", 0.0).await;
    assert_eq!(receiver.all().len(), 4, "nothing for the rename or the refusal");
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn friend_applications_are_events_as_made_and_answered() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::Answer).await;
    add_hook(&server, &receiver.url(), &["friend.request"]).await;
    let alice = server.register("alice1").await;
    let bob = server.register("bobby1").await;
    let carol = server.register("carol1").await;
    let b = bob.id.to_string();
    let applied = form_ok(
        &server,
        &alice,
        "/api/chat/applyfriend",
        &[("friend_id", b.as_str()), ("nickname", "hi bob")],
    )
    .await;
    // Applying again while it waits: refused, no event.
    let (status, body) = server
        .post_form(
            "/api/chat/applyfriend",
            Some(&alice.token),
            &[("friend_id", b.as_str())],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    let first = receiver.wait_accepted(1).await;
    let id = first[0].body["data"]["id"]
        .as_u64()
        .expect("the application's id");
    assert!(
        applied["data"].is_object() || applied["data"].is_string(),
        "{applied}"
    );
    // Carol cannot answer an application to Bob: refused, no event.
    let path = format!("/api/chat/handleapply/{id}");
    let (status, body) = server
        .post_form(&path, Some(&carol.token), &[("status", "agree")])
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    form_ok(&server, &bob, &path, &[("status", "agree"), ("nickname", "al")]).await;
    // Friends at once (a chat-room contact): an agreed application of its own.
    server.befriend(&carol, &bob).await;

    let hits = receiver.wait_accepted(3).await;
    let data: Vec<&Value> = hits.iter().map(|h| &h.body["data"]).collect();
    for hit in &hits {
        assert_eq!(hit.event, "friend.request");
        assert!(signed(hit, HOOK_SECRET));
    }
    assert_eq!(
        (
            &data[0]["applicant"],
            &data[0]["target"],
            &data[0]["status"],
            &data[0]["note"]
        ),
        (
            &json!(alice.id),
            &json!(bob.id),
            &json!("pending"),
            &json!("hi bob")
        ),
        "{}",
        data[0]
    );
    assert_eq!(
        (&data[1]["id"], &data[1]["status"]),
        (&json!(id), &json!("agree")),
        "{}",
        data[1]
    );
    assert_eq!(
        (&data[2]["applicant"], &data[2]["target"], &data[2]["status"]),
        (&json!(carol.id), &json!(bob.id), &json!("agree")),
        "{}",
        data[2]
    );
    server.wait_metric("parlor_webhook_outbox_depth", 0.0).await;
    assert_eq!(receiver.all().len(), 3, "nothing for the refusals");
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn a_receiver_that_fails_then_recovers_gets_every_event_once_in_order() {
    let (server, _dir) = start(|_| {}).await;
    let receiver = Receiver::start(free_port(), Mode::FailFirst(3)).await;
    let (alice, bob) = pair(&server).await;
    add_hook(&server, &receiver.url(), &["message.sent"]).await;
    for i in 0..5 {
        server.send_rest(&alice, &bob, &format!("m{i}")).await;
    }
    receiver.wait_accepted(5).await;
    server.wait_metric("parlor_webhook_outbox_depth", 0.0).await;
    let hits = receiver.accepted();
    assert_eq!(seqs(&hits), [1, 2, 3, 4, 5]);
    let ids: HashSet<u64> = hits.iter().map(|h| h.delivery).collect();
    assert_eq!(ids.len(), 5, "each event accepted once");
    // The head was tried four times, the same delivery id each time, and nothing overtook it.
    let all = receiver.all();
    assert!(all[..4].iter().all(|h| h.delivery == all[0].delivery), "{all:?}");
    assert_eq!(server.metric("parlor_webhook_failures_total").await, 3.0);
    assert_eq!(server.metric("parlor_webhook_retries_total").await, 3.0);
    assert_eq!(server.metric("parlor_webhook_deliveries_total").await, 5.0);
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn events_become_dead_letters_after_max_attempts_and_can_be_retried() {
    let (server, _dir) = start(|c| c.webhooks.max_attempts = 3).await;
    let receiver = Receiver::start(free_port(), Mode::FailFirst(3)).await;
    let (alice, bob) = pair(&server).await;
    let hook = add_hook(&server, &receiver.url(), &["message.sent"]).await;
    let sent = server.send_rest(&alice, &bob, "lost").await;
    server.wait_metric("parlor_webhook_dead_letters", 1.0).await;
    let letters = ok(&admin(&server, "/admin/webhook/dead_letters", &json!({"id": hook})).await);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["event"], "message.sent");
    assert_eq!(letters[0]["endpointId"], hook);
    assert!(letters[0]["lastError"].as_str().unwrap().contains("500"));
    let body: Value = serde_json::from_str(letters[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["message"]["id"], sent["id"]);
    assert_eq!(server.metric("parlor_webhook_dead_letters_total").await, 1.0);
    assert_eq!(server.metric("parlor_webhook_outbox_depth").await, 0.0);
    // Other tenants see none of them.
    let other = ok(&admin(&server, "/admin/webhook/dead_letters", &json!({"appId": "other"})).await);
    assert_eq!(other, json!([]));

    // Put back, it is delivered (the receiver answers now).
    let retried = ok(&admin(&server, "/admin/webhook/retry", &json!({"id": hook})).await);
    assert_eq!(retried["count"], 1);
    let hits = receiver.wait_accepted(1).await;
    assert_eq!(hits[0].body["data"]["message"]["id"], sent["id"]);
    assert_eq!(hits[0].delivery, letters[0]["deliveryId"].as_u64().unwrap());
    server.wait_metric("parlor_webhook_dead_letters", 0.0).await;
    receiver.stop().await;
    server.stop().await;
}

#[actix_web::test]
async fn a_receiver_that_never_answers_does_not_hold_sends() {
    let (server, _dir) = start(|c| c.webhooks.timeout_ms = 600_000).await;
    let receiver = Receiver::start(free_port(), Mode::Hang).await;
    let (alice, bob) = pair(&server).await;
    add_hook(&server, &receiver.url(), &["message.sent"]).await;
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(server.send_rest(&alice, &bob, &format!("m{i}")).await);
    }
    // Every send was acknowledged with its message, and every event waits in the outbox.
    let seqs: Vec<u64> = sent.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
    eventually(
        || async { !receiver.all().is_empty() },
        "the first delivery is tried",
    )
    .await;
    server.wait_metric("parlor_webhook_outbox_depth", 50.0).await;
    // One conversation: only its head is in flight.
    assert_eq!(receiver.all().len(), 1);
    receiver.stop().await;
    server.stop().await;
}

/// Runs the load generator's `mode` with `args` against `base`; asserts a clean run (exit 0:
/// nothing lost, duplicated, refused or left unacknowledged) and returns what it printed.
async fn loadgen(mode: &str, base: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([mode, "--url", base, "--timeout", "60", "--fsync-probes", "0"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen {mode} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.into_owned()
}

/// The load generator's direct and fan-out runs complete with nothing lost while every
/// event of theirs waits behind an endpoint that never answers.
#[actix_web::test]
async fn load_runs_lose_nothing_beside_a_receiver_that_never_answers() {
    let (server, _dir) = start(|c| c.webhooks.timeout_ms = 600_000).await;
    let receiver = Receiver::start(free_port(), Mode::Hang).await;
    add_hook(
        &server,
        &receiver.url(),
        &["message.sent", "group.members", "friend.request"],
    )
    .await;
    let args = ["--clients", "10", "--messages", "400", "--window", "8"];
    let direct = loadgen("direct", &server.base, &args).await;
    assert!(direct.contains("== direct"), "{direct}");
    let args = [
        "--members",
        "20",
        "--senders",
        "4",
        "--messages",
        "200",
        "--summary-json",
    ];
    let fanout = loadgen("fanout", &server.base, &args).await;
    let last = fanout.lines().last().unwrap_or_default();
    let fanout: Value = serde_json::from_str(last.strip_prefix("RESULT ").expect("a RESULT line")).unwrap();
    assert_eq!(fanout["lost"], 0, "{fanout}");
    assert_eq!(fanout["delivered"], fanout["expected"], "{fanout}");
    // Every message's event was committed and waits: the direct run's (warm-up included)
    // and the fan-out run's, beside the group and friendship events.
    let depth = server.metric("parlor_webhook_outbox_depth").await;
    assert!(depth >= 600.0, "outbox depth {depth}");
    receiver.stop().await;
    server.stop().await;
}

/// A signed admin request to the admin listener at `addr`.
async fn admin_at(http: &reqwest::Client, addr: &str, path: &str, body: &Value) -> Value {
    let mut req = http.post(format!("http://{addr}{path}")).json(body);
    for (name, value) in fresh_headers() {
        req = req.header(name, value);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[actix_web::test]
async fn events_committed_before_a_kill_9_are_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin_addr = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let env = [
        ("PARLOR_ADMIN__BIND", admin_addr.as_str()),
        ("PARLOR_ADMIN__SECRET", SECRET),
        ("PARLOR_WEBHOOKS__ALLOWED_HOSTS", "[\"127.0.0.1\"]"),
        ("PARLOR_WEBHOOKS__BACKOFF_MS", "20"),
        ("PARLOR_WEBHOOKS__MAX_BACKOFF_MS", "100"),
        ("PARLOR_WEBHOOKS__POLL_MS", "20"),
        ("PARLOR_WEBHOOKS__MAX_ATTEMPTS", "100000"),
    ];
    let http = reqwest::Client::new();
    let mut first = Process::start_with(dir.path(), &env).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let added = admin_at(
        &http,
        &admin_addr,
        "/admin/webhook/add",
        &json!({"url": url, "events": ["message.sent"], "secret": HOOK_SECRET}),
    )
    .await;
    ok(&added);
    let alice = register_at(&http, &first.base, "alice1").await;
    let bob = register_at(&http, &first.base, "bobby1").await;
    // The receiver is down: every event waits (and fails) in the outbox.
    let mut sent = Vec::new();
    for i in 0..20 {
        let body = send_rest_at(&http, &first.base, &alice, bob.id, &format!("m{i}")).await;
        sent.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    eventually(
        || async { common::metric_at(&http, &first.base, "parlor_webhook_failures_total").await >= 1.0 },
        "a delivery failed",
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let receiver = Receiver::start(port, Mode::Answer).await;
    let second = Process::start_with(dir.path(), &env).await;
    let hits = receiver.wait_accepted(20).await;
    let got: Vec<String> = hits
        .iter()
        .map(|h| h.body["data"]["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, sent, "every event, in order, once");
    assert!(hits.iter().all(|h| signed(h, HOOK_SECRET)));
    drop(second);
    receiver.stop().await;
}
