//! The `parlor` command line, run as the real binary: `--version`, `check-config` (a bad key
//! named, secrets masked), and `export`/`import`: a database built through the HTTP API is
//! exported (from the running server through its admin listener, and read-only once it is
//! stopped), imported into a fresh directory, and a server started there answers logins,
//! friend and group lists, history and the conversation list as the original did, with new
//! ids and seqs that do not collide. Failures: an import into a non-empty database or beside
//! a running server, a malformed or cut file, an unknown tenant, an export from a running
//! server whose admin listener is off.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_ok, free_port, user_of, TestServer, User};
use serde_json::{json, Value};

const ADMIN_SECRET: &str = "cli-test-admin-secret";

/// The real binary with `args`, run in `dir` (so no stray `config.toml` is read).
fn parlor(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

/// [`parlor`] from an async test: the runtime (and the in-process server on it) keeps running
/// while the binary does.
async fn run(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        parlor(&dir, &args)
    })
    .await
    .unwrap()
}

/// [`run`] with `--config conf` in front of `args`.
async fn cli(dir: &Path, conf: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", conf.to_str().unwrap()];
    all.extend_from_slice(args);
    run(dir, &all).await
}

/// Asserts that the command failed and said `expected` on stderr.
#[track_caller]
fn assert_failed(out: &Output, expected: &str) {
    assert!(!out.status.success(), "succeeded: {}", stderr(out));
    assert!(
        stderr(out).contains(expected),
        "wanted {expected:?}: {}",
        stderr(out)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A config file for the data directory `data`, with the admin secret (or none).
fn config_file(dir: &Path, name: &str, data: &Path, admin_secret: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[storage]\npath = {:?}\n[admin]\nsecret = {:?}\n[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
        data.join("parlor.redb").to_str().unwrap(),
        admin_secret
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A test server with the admin listener on an ephemeral port.
async fn start_with_admin(data: &Path) -> TestServer {
    TestServer::start_in(data, |c| {
        c.admin.secret = ADMIN_SECRET.into();
        c.admin.bind = "127.0.0.1:0".into();
    })
    .await
}

/// The JSON lines of an export file.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn login(server: &TestServer, username: &str) -> User {
    let got = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", username), ("password", "secret1")],
        )
        .await;
    assert_ok(&got);
    user_of(&got.1)
}

/// What the HTTP API shows `user`: friends, groups, conversations and every history.
async fn view(server: &TestServer, user: &User, peers: &[u64], groups: &[u64]) -> Value {
    let get = |path: String| async move { assert_ok(&server.get(&path, Some(&user.token)).await) };
    // The chat-room face's success envelope, whole.
    let room = |path: &'static str| async move {
        let (status, body) = server.get(path, Some(&user.token)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path}: {body}");
        assert_eq!(body["success"], true, "{path}: {body}");
        body
    };
    let mut histories = Vec::new();
    for peer in peers {
        histories.push(get(format!("/api/chat/history/single/{peer}?limit=100")).await);
    }
    for group in groups {
        histories.push(get(format!("/api/chat/history/group/{group}?limit=100")).await);
    }
    json!({
        "friends": get("/api/chat/goodfriendlist/1".into()).await,
        "groups": get("/api/chat/grouplist/1".into()).await,
        "conversations": get("/api/chat/conversations".into()).await,
        "applications": get("/api/chat/listapplyfriend/1".into()).await,
        // The chat-room face names conversations by number.
        "rooms": room("/conversation/getlist").await,
        "contacts": room("/contacts/list").await,
        "histories": histories,
    })
}

/// The parts of a login answer that do not change with the login itself.
fn identity(server_user: &Value) -> Value {
    let d = &server_user["data"];
    json!([
        d["id"],
        d["uuid"],
        d["username"],
        d["nickname"],
        d["create_time"],
        d["role"],
        d["app_id"]
    ])
}

#[actix_web::test]
async fn export_and_import_keep_what_the_api_shows() {
    let root = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = start_with_admin(&a_dir).await;

    let alice = a.register("alice").await;
    let bob = a.register("bobby").await;
    let carol = a.register("carol").await;
    let dave = a.register("david").await;
    a.befriend(&alice, &bob).await;
    a.befriend(&alice, &carol).await;
    // A pending application from dave to carol, and a block of dave by bob.
    let (status, body) = a
        .post_json(&format!("/user/ban/{}", dave.id), Some(&bob.token), &json!({}))
        .await;
    assert!(status.is_success() && body["success"] == true, "{body}");
    // Dave hides his presence: a presence row.
    assert_ok(
        &a.post_form(
            "/api/chat/updateUserinfo",
            Some(&dave.token),
            &[("fieldname", "hide_presence"), ("fieldValue", "1")],
        )
        .await,
    );
    let carol_id = carol.id.to_string();
    assert_ok(
        &a.post_form(
            "/api/chat/applyfriend",
            Some(&dave.token),
            &[("friend_id", &carol_id), ("nickname", "hi carol")],
        )
        .await,
    );
    let ids = [bob.id.to_string(), carol.id.to_string()];
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    assert_eq!(
        assert_ok(
            &a.post_form("/api/chat/group/create", Some(&alice.token), &form)
                .await
        ),
        "ok"
    );
    let groups = assert_ok(&a.get("/api/chat/grouplist/1", Some(&alice.token)).await);
    let gid = groups["rows"][0]["id"]
        .as_u64()
        .or_else(|| groups[0]["id"].as_u64())
        .unwrap_or_else(|| panic!("a group in {groups}"));
    for text in ["one", "two", "three"] {
        a.send_rest(&alice, &bob, text).await;
    }
    a.send_rest(&bob, &alice, "back").await;
    a.send_rest(&alice, &carol, "hello carol").await;
    let gid_s = gid.to_string();
    for text in ["group one", "group two"] {
        assert_ok(
            &a.post_form(
                "/api/chat/socket/sendmessage",
                Some(&alice.token),
                &[
                    ("sendto_id", &gid_s),
                    ("chatType", "group"),
                    ("type", "text"),
                    ("data", text),
                ],
            )
            .await,
        );
    }
    // Bob has read two of alice's three messages, and the group's first messages.
    let pair = format!("d:{}:{}", alice.id.min(bob.id), alice.id.max(bob.id));
    assert_ok(
        &a.post_form(
            "/api/chat/read",
            Some(&bob.token),
            &[("conversation", &pair), ("seq", "2")],
        )
        .await,
    );
    assert_ok(
        &a.post_form(
            "/api/chat/read",
            Some(&bob.token),
            &[("conversation", &format!("g:{gid}")), ("seq", "2")],
        )
        .await,
    );
    // A second tenant, which a one-tenant export leaves out.
    let other = a
        .http
        .post(a.url("/api/regChat"))
        .header("X-App-Id", "other")
        .form(&[("username", "olga"), ("password", "secret1")])
        .send()
        .await
        .unwrap();
    assert!(other.status().is_success());

    let users = [&alice, &bob, &carol, &dave];
    let all_ids: Vec<u64> = users.iter().map(|u| u.id).collect();
    let mut before = Vec::new();
    let mut identities = Vec::new();
    for user in users {
        let peers: Vec<u64> = all_ids.iter().copied().filter(|&p| p != user.id).collect();
        let groups: &[u64] = if user.id == dave.id { &[] } else { &[gid] };
        before.push(view(&a, user, &peers, groups).await);
        let got = a
            .post_form(
                "/api/loginChat",
                None,
                &[("username", &user.username), ("password", "secret1")],
            )
            .await;
        identities.push(identity(&got.1));
    }

    // While the server runs, the export comes through its admin listener.
    let admin_addr = a.admin.unwrap().to_string();
    let a_conf = config_file(root.path(), "a.toml", &a_dir, ADMIN_SECRET);
    let live = root.path().join("live.jsonl");
    let out = cli(
        root.path(),
        &a_conf,
        &["export", "--out", live.to_str().unwrap(), "--admin", &admin_addr],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let live_lines = lines(&live);
    assert_eq!(live_lines[0]["kind"], "header");
    assert_eq!(live_lines[0]["format"], 1);
    assert_eq!(live_lines[0]["tenants"], json!(["default", "other"]));
    assert_eq!(live_lines.last().unwrap()["kind"], "end");

    // Importing beside the running server is refused: the file is in use.
    let busy = cli(root.path(), &a_conf, &["import", "--in", live.to_str().unwrap()]).await;
    assert_failed(&busy, "open in another process");

    a.stop().await;

    // Stopped, the export opens the file read-only; only one tenant this time.
    let offline = root.path().join("default.jsonl");
    let out = cli(
        root.path(),
        &a_conf,
        &[
            "export",
            "--out",
            offline.to_str().unwrap(),
            "--tenant",
            "default",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let offline_lines = lines(&offline);
    assert_eq!(offline_lines[0]["tenants"], json!(["default"]));
    assert_eq!(offline_lines[0]["all_tenants"], false);
    let kinds: std::collections::BTreeSet<&str> = offline_lines
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "counter",
        "user",
        "friend",
        "application",
        "group",
        "member",
        "cursor",
        "head",
        "message",
        "conversation_number",
        "block",
        "presence",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert!(offline_lines
        .iter()
        .all(|l| l["tenant"].is_null() || l["tenant"] == "default"));
    let hash = offline_lines
        .iter()
        .find(|l| l["kind"] == "user" && l["username"] == "alice")
        .unwrap()["password_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hash.starts_with("$argon2"), "{hash}");
    // The live export holds the same rows of the default tenant (cursors may have moved on
    // with the server's last flush).
    let rows = |ls: &[Value]| -> Vec<Value> {
        ls.iter()
            .filter(|l| !["header", "end", "cursor"].contains(&l["kind"].as_str().unwrap()))
            .filter(|l| l["tenant"].is_null() || l["tenant"] == "default")
            .cloned()
            .collect()
    };
    assert_eq!(rows(&live_lines), rows(&offline_lines));

    // Import into a fresh directory and serve it.
    let b_conf = config_file(root.path(), "b.toml", &b_dir, "");
    let out = cli(
        root.path(),
        &b_conf,
        &["import", "--in", offline.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("imported"), "{}", stderr(&out));

    // A second import into the now non-empty database is refused.
    let again = cli(
        root.path(),
        &b_conf,
        &["import", "--in", offline.to_str().unwrap()],
    )
    .await;
    assert_failed(&again, "not empty");

    let b = TestServer::start_in(&b_dir, |_| {}).await;
    let mut relogged = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let got = b
            .post_form(
                "/api/loginChat",
                None,
                &[("username", &user.username), ("password", "secret1")],
            )
            .await;
        assert_eq!(identity(&got.1), identities[i], "{}", got.1);
        relogged.push(user_of(&got.1));
    }
    for (i, user) in relogged.iter().enumerate() {
        let peers: Vec<u64> = all_ids.iter().copied().filter(|&p| p != user.id).collect();
        let groups: &[u64] = if user.id == dave.id { &[] } else { &[gid] };
        assert_eq!(
            view(&b, user, &peers, groups).await,
            before[i],
            "view of {}",
            user.username
        );
    }
    // The other tenant was not imported.
    let olga = b
        .http
        .post(b.url("/api/loginChat"))
        .header("X-App-Id", "other")
        .form(&[("username", "olga"), ("password", "secret1")])
        .send()
        .await
        .unwrap();
    assert!(olga.status().is_client_error(), "{}", olga.status());

    // New ids and seqs continue after the imported ones.
    let erin = b.register("erin").await;
    assert!(erin.id > *all_ids.iter().max().unwrap(), "erin got {}", erin.id);
    let sent = b.send_rest(&relogged[0], &relogged[1], "after import").await;
    let history = assert_ok(
        &b.get(
            &format!("/api/chat/history/single/{}?limit=100", bob.id),
            Some(&relogged[0].token),
        )
        .await,
    );
    let seqs: Vec<u64> = history["list"]
        .as_array()
        .or(history.as_array())
        .map(|l| l.iter().filter_map(|m| m["seq"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(sent["seq"].as_u64(), Some(5), "{sent}");
    assert!(seqs.contains(&5) && seqs.contains(&4), "{history}");
    let again = login(&b, "alice").await;
    assert_eq!(again.id, alice.id);
    b.stop().await;
}

#[actix_web::test]
async fn import_refuses_a_malformed_or_cut_file() {
    let root = tempfile::tempdir().unwrap();
    let conf = config_file(root.path(), "c.toml", &root.path().join("data"), "");
    let header = r#"{"kind":"header","format":1,"parlor":"0.1.0","tenants":["default"],"all_tenants":true,"exported_ms":1}"#;
    let cases = [
        (format!("{header}\n{{\"kind\":\"user\",\"id\":\n"), "line 2"),
        (format!("{header}\n{{\"kind\":\"bogus\"}}\n"), "line 2"),
        (
            format!("{header}\n{{\"kind\":\"counter\",\"name\":\"x\",\"value\":\"many\"}}\n"),
            "line 2",
        ),
        (
            format!("{header}\n{{\"kind\":\"counter\",\"name\":\"x\",\"value\":1}}\n"),
            "cut short",
        ),
        (
            format!("{header}\n{{\"kind\":\"end\",\"records\":3}}\n"),
            "the end line counts 3",
        ),
        (
            "{\"kind\":\"counter\",\"name\":\"x\",\"value\":1}\n".into(),
            "line 1",
        ),
        (header.replace("\"format\":1", "\"format\":9") + "\n", "format 9"),
        (String::new(), "empty"),
    ];
    for (text, expected) in cases {
        let file = root.path().join("in.jsonl");
        std::fs::write(&file, &text).unwrap();
        let out = cli(root.path(), &conf, &["import", "--in", file.to_str().unwrap()]).await;
        assert_failed(&out, expected);
        // Nothing was written: the database the import would have created is not there.
        assert!(!root.path().join("data/parlor.redb").exists(), "{text}");
    }
    let missing = cli(root.path(), &conf, &["import", "--in", "/nonexistent/in.jsonl"]).await;
    assert!(!missing.status.success());
}

#[actix_web::test]
async fn export_failures_are_explained() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out_file = root.path().join("out.jsonl");
    // No database yet.
    let conf = config_file(root.path(), "c.toml", &data, "");
    let out = cli(
        root.path(),
        &conf,
        &["export", "--out", out_file.to_str().unwrap()],
    )
    .await;
    assert_failed(&out, "no database");

    // A running server without an admin listener.
    let server = TestServer::start_in(&data, |_| {}).await;
    server.register("alice").await;
    let out = cli(
        root.path(),
        &conf,
        &["export", "--out", out_file.to_str().unwrap()],
    )
    .await;
    assert_failed(&out, "admin.secret is empty");
    assert!(!out_file.exists());
    server.stop().await;

    // An unknown tenant.
    let out = cli(
        root.path(),
        &conf,
        &[
            "export",
            "--out",
            out_file.to_str().unwrap(),
            "--tenant",
            "nobody",
        ],
    )
    .await;
    assert_failed(&out, "no tenant named nobody");
    assert!(!out_file.exists());

    // Through the admin listener: an unknown tenant and a wrong secret are refused there.
    let server = start_with_admin(&data).await;
    let admin = server.admin.unwrap().to_string();
    for (secret, tenant, expected) in [
        (ADMIN_SECRET, "nobody", "no tenant named nobody"),
        ("another-secret-entirely", "default", "244"),
    ] {
        let conf = config_file(root.path(), "w.toml", &data, secret);
        let out = cli(
            root.path(),
            &conf,
            &[
                "export",
                "--out",
                out_file.to_str().unwrap(),
                "--tenant",
                tenant,
                "--admin",
                &admin,
            ],
        )
        .await;
        assert_failed(&out, expected);
        assert!(!out_file.exists());
    }
    server.stop().await;
}

#[test]
fn version_and_check_config() {
    let root = tempfile::tempdir().unwrap();
    let out = parlor(root.path(), &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("parlor {}", env!("CARGO_PKG_VERSION"))
    );

    // Secrets: masked when set, empty when not.
    let conf = root.path().join("s.toml");
    std::fs::write(
        &conf,
        "[admin]\nsecret = \"a-very-secret-admin-value\"\n[auth]\nvisitor_app_secret = \"app-secret-value\"\n",
    )
    .unwrap();
    for format in ["toml", "json"] {
        let out = parlor(
            root.path(),
            &[
                "--config",
                conf.to_str().unwrap(),
                "check-config",
                "--format",
                format,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("a-very-secret-admin-value"), "{text}");
        assert!(!text.contains("app-secret-value"), "{text}");
        let shown: Value = if format == "json" {
            serde_json::from_str(&text).unwrap()
        } else {
            let t: toml::Value = toml::from_str(&text).unwrap();
            serde_json::to_value(t).unwrap()
        };
        assert_eq!(shown["admin"]["secret"], "***", "{text}");
        assert_eq!(shown["auth"]["visitor_app_secret"], "***", "{text}");
        assert_eq!(shown["auth"]["jwt_secret"], "", "{text}");
        assert_eq!(shown["server"]["bind"], "127.0.0.1:7001", "{text}");
    }

    // A bad value and an unknown key are named, with a non-zero exit.
    for (text, key) in [
        ("[ws]\nclient_timeout_ms = 1\n", "ws.client_timeout_ms"),
        ("[server]\nbindd = \"x\"\n", "bindd"),
        ("[limits]\nmax_body_bytes = \"big\"\n", "max_body_bytes"),
    ] {
        std::fs::write(&conf, text).unwrap();
        let out = parlor(root.path(), &["--config", conf.to_str().unwrap(), "check-config"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).contains(key), "{text}: {}", stderr(&out));
    }
    let out = parlor(root.path(), &["--config", "/nonexistent.toml", "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"));
}

#[test]
fn only_section_keys_of_the_environment_are_configuration() {
    let root = tempfile::tempdir().unwrap();
    let with_env = |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args(["check-config"])
            .current_dir(root.path())
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .output()
            .expect("the binary runs")
    };
    // What Kubernetes injects for a Service named `parlor`: ignored, named once.
    let out = with_env(&[
        ("PARLOR_PORT", "tcp://10.0.0.7:7001"),
        ("PARLOR_SERVICE_HOST", "10.0.0.7"),
        ("PARLOR_PORT_7001_TCP_ADDR", "10.0.0.7"),
        ("PARLOR_SERVER__WORKERS", "3"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("ignoring PARLOR_ variables"))
        .unwrap_or_else(|| panic!("no log line: {err}"));
    assert!(
        line.contains("PARLOR_PORT, PARLOR_PORT_7001_TCP_ADDR, PARLOR_SERVICE_HOST"),
        "{line}"
    );
    assert_eq!(err.matches("ignoring PARLOR_ variables").count(), 1, "{err}");
    // The section key took effect.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workers = 3"), "{text}");
    // An unknown key in the section form still stops, naming it.
    let out = with_env(&[("PARLOR_SERVER__NO_SUCH_KEY", "1")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("no_such_key"), "{err}");
}

#[actix_web::test]
async fn the_log_is_json_lines_with_an_access_line_per_request_and_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .current_dir(dir.path())
        .env("PARLOR_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("PARLOR_STORAGE__PATH", dir.path().join("parlor.redb"))
        .env("PARLOR_LOG__FORMAT", "json")
        .env("PARLOR_LOG__ACCESS", "true")
        .env("PARLOR_PORT", "tcp://10.0.0.7:7001")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    common::eventually(
        || async {
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
        "the server answers",
    )
    .await;
    let missing = http.get(format!("{base}/api/chat/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains('\u{1b}'), "no colour codes: {err}");
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "parlor::access").collect();
    let healthz = access
        .iter()
        .find(|l| l["fields"]["route"] == "/healthz")
        .unwrap_or_else(|| panic!("no access line for /healthz: {err}"));
    assert_eq!(healthz["fields"]["status"], 200);
    assert_eq!(healthz["fields"]["method"], "GET");
    assert!(healthz["fields"]["ms"].as_f64().is_some(), "{healthz}");
    assert!(
        access
            .iter()
            .any(|l| l["fields"]["status"] == 404 && l["fields"]["route"] == "(unmatched)"),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["variables"] == "PARLOR_PORT"),
        "the ignored variable is named: {err}"
    );
}

/// `parlor health` exits 0 while the server answers `/healthz` with 200, and 1, saying why,
/// when nothing listens there.
#[actix_web::test]
async fn health_asks_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let conf = dir.path().join("health.toml");
    std::fs::write(
        &conf,
        format!("[server]\nbind = \"0.0.0.0:{}\"\n", server.addr.port()),
    )
    .unwrap();
    let out = cli(dir.path(), &conf, &["health"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"ok\""), "{}", stdout(&out));
    let addr = server.addr.to_string();
    let out = cli(dir.path(), &conf, &["health", "--addr", &addr]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    server.stop().await;
    let out = cli(dir.path(), &conf, &["health", "--addr", &addr, "--timeout", "1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("health"), "{}", stderr(&out));
}

/// `server.bind` may name its host: `localhost:PORT` is resolved and served.
#[actix_web::test]
async fn the_listener_binds_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .current_dir(dir.path())
        .env("PARLOR_SERVER__BIND", format!("localhost:{port}"))
        .env("PARLOR_STORAGE__PATH", dir.path().join("parlor.redb"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://localhost:{port}/healthz");
    common::eventually(
        || async { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) },
        "the server answers on localhost",
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
}

#[actix_web::test]
async fn check_finds_a_changed_byte_inside_a_stored_message() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::start_in(&data, |_| {}).await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let marker = "MARKER-of-a-message-whose-bytes-will-change-0123456789";
    server.send_rest(&alice, &bob, marker).await;
    server.stop().await;
    // No database where the configuration points: a failure naming it.
    let elsewhere = config_file(root.path(), "none.toml", &root.path().join("none"), "");
    let none = run(root.path(), &["--config", elsewhere.to_str().unwrap(), "check"]).await;
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no database at"), "{}", stderr(&none));
    let conf = config_file(root.path(), "c.toml", &data, "");
    let sound = run(root.path(), &["--config", conf.to_str().unwrap(), "check"]).await;
    assert!(sound.status.success(), "{}", stderr(&sound));
    assert!(
        String::from_utf8_lossy(&sound.stdout).contains("sound"),
        "{sound:?}"
    );

    // One byte of the message changes on disk.
    let file = data.join("parlor.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the message is in the file");
    bytes[at + 10] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let damaged = run(root.path(), &["--config", conf.to_str().unwrap(), "check"]).await;
    assert!(!damaged.status.success());
    let err = stderr(&damaged);
    assert!(err.contains("damaged") || err.contains("corrupted"), "{err}");
    // The check changed nothing: the file is as it was left.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    // `--data` names the file directly.
    let direct = run(root.path(), &["check", "--data", file.to_str().unwrap()]).await;
    assert_eq!(direct.status.code(), Some(1), "{}", stderr(&direct));

    // The server refuses to serve it: the changed message is never returned as history.
    let mut config = common::test_config(&data);
    config.server.bind = "127.0.0.1:0".into();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = match parlor::run(listener, config.clone()).await {
        Ok(_) => panic!("a damaged database was served"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("fails its integrity check"), "{refused}");
    assert!(
        refused.contains("parlor check") && refused.contains("storage.serve_damaged"),
        "{refused}"
    );
    let again = run(root.path(), &["check", "--data", file.to_str().unwrap()]).await;
    assert_eq!(again.status.code(), Some(1), "still damaged: {}", stderr(&again));
}
