//! Test harness: a real Parlor on an ephemeral port with a temporary data directory, and
//! real HTTP (reqwest) and WebSocket (tokio-tungstenite) clients.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use futures_util::{SinkExt, StreamExt};
use parlor::config::Config;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for a frame before it fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration for tests: fast password hashing, short intervals, data in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.server.bind = "127.0.0.1:0".into();
    c.server.workers = 2;
    c.server.shutdown_timeout_secs = 1;
    c.storage.path = dir.join("parlor.redb");
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.ws.report_interval_ms = 20;
    c.ws.probe_interval_ms = 20;
    c.router.cursor_flush_ms = 20;
    // Presence frames would interleave with what the other tests expect; presence.rs turns
    // it on (see `with_presence` there).
    c.presence.enabled = false;
    c
}

/// The value of an unlabelled sample of the `/metrics` of the server at `base`.
pub async fn metric_at(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics: {text}"))
}

/// A program from a Debian package (`/usr/sbin/<name>`, or on `PATH`); panics naming the
/// package to install when there is none.
pub fn system_program(name: &str, package: &str) -> PathBuf {
    let installed = Path::new("/usr/sbin").join(name);
    if installed.exists() {
        return installed;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed: `apt-get install -y {package}` (.ci/run installs it)")
        })
}

/// A loopback port free a moment ago, for a server child process to bind: a random one
/// below Linux's ephemeral range (32768 and up), so that the outgoing connections of the
/// tests running beside (each given an ephemeral port) cannot take it before the child
/// binds it.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin listener's address, when it is served (`admin.secret` set).
    pub admin: Option<SocketAddr>,
    pub base: String,
    pub dir: PathBuf,
    pub config: Config,
    handle: ServerHandle,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    pub http: reqwest::Client,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub uuid: String,
    pub username: String,
    pub token: String,
}

impl TestServer {
    /// A server on a fresh temporary directory (kept for the test's life by `_dir`).
    pub async fn start() -> (TestServer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_in(dir.path(), |_| {}).await;
        (server, dir)
    }

    /// A server on `dir`, with `tweak` applied to the test configuration.
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(dir);
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let running = parlor::run(listener, config.clone())
            .await
            .expect("server starts");
        let addr = running.addr();
        let admin = running.admin_addr();
        let handle = running.handle();
        let served = actix_web::rt::spawn(running.wait());
        TestServer {
            addr,
            admin,
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            config,
            handle,
            served,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server gracefully and waits until its Writer has committed everything.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.served.await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The status and JSON body of a response (a body that is not JSON fails the test).
    pub async fn finish(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, body)
    }

    /// POST a form body.
    pub async fn post_form(
        &self,
        path: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    /// POST a JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    /// The value of an unlabelled sample of `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(&self.http, &self.base, name).await
    }

    /// Polls `/metrics` until `name` has `value`; fails after [`FRAME_TIMEOUT`].
    pub async fn wait_metric(&self, name: &str, value: f64) {
        eventually(
            || async { self.metric(name).await == value },
            &format!("{name} = {value}"),
        )
        .await;
    }

    /// Closes `ws` and waits until the Router has unregistered its session (with the
    /// positions its client confirmed), so that what follows sees the user's session gone.
    pub async fn hang_up(&self, ws: Ws) {
        let open = self.metric("parlor_sessions_open").await;
        assert!(open >= 1.0, "no session is open");
        ws.close().await;
        self.wait_metric("parlor_sessions_open", open - 1.0).await;
    }

    /// Registers `username` (password `secret1`) and returns it with its token.
    pub async fn register(&self, username: &str) -> User {
        let (status, body) = self
            .post_form(
                "/api/regChat",
                None,
                &[("username", username), ("password", "secret1")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        user_of(&body)
    }

    /// Registers `username` (password `secret1`) in the tenant `app_id`.
    pub async fn register_in(&self, app_id: &str, username: &str) -> User {
        let form = [
            ("username", username),
            ("password", "secret1"),
            ("app_id", app_id),
        ];
        let (status, body) = self.post_form("/api/regChat", None, &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        user_of(&body)
    }

    /// Registers `username` and lets anyone message it (`chatset` 2 for users and visitors).
    pub async fn register_open(&self, username: &str) -> User {
        let user = self.register(username).await;
        self.open_inbox(&user).await;
        user
    }

    /// Sets the user's `chatset` so that non-friends may message it.
    pub async fn open_inbox(&self, user: &User) {
        let set = r#"{"chatset":{"visitor":2,"user":2}}"#;
        let (status, body) = self
            .post_form("/api/chat/userset", Some(&user.token), &[("userset", set)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Makes `a` and `b` friends at once (the chat-room face's `POST /contacts/add`).
    pub async fn befriend(&self, a: &User, b: &User) {
        let (status, body) = self
            .post_json("/contacts/add", Some(&a.token), &json!({ "id": b.id }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true, "{body}");
    }

    /// Sends a direct text message over REST and returns the stored message.
    pub async fn send_rest(&self, from: &User, to: &User, text: &str) -> Value {
        let to_id = to.id.to_string();
        let (status, body) = self
            .post_form(
                "/api/chat/socket/sendmessage",
                Some(&from.token),
                &[
                    ("sendto_id", &to_id),
                    ("chatType", "single"),
                    ("type", "text"),
                    ("data", text),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// Opens a WebSocket for `token` and waits for its `connected` frame.
    pub async fn ws(&self, token: &str) -> Ws {
        self.ws_at(&format!("/ws?token={token}")).await
    }

    /// Opens a WebSocket on a path (with its query) and waits for `connected`.
    pub async fn ws_at(&self, path_and_query: &str) -> Ws {
        let url = format!("ws://{}{}", self.addr, path_and_query);
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        let mut ws = Ws { stream };
        let hello = ws.next_of_type("connected").await;
        assert!(hello["data"]["session"].as_u64().is_some(), "{hello}");
        ws
    }
}

/// Polls `check` every 10 ms until it holds; fails, naming `what`, after [`FRAME_TIMEOUT`].
pub async fn eventually<F, Fut>(mut check: F, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {FRAME_TIMEOUT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The user in a login/register response.
pub fn user_of(body: &Value) -> User {
    let d = &body["data"];
    User {
        id: d["id"].as_u64().unwrap_or_else(|| panic!("no id in {body}")),
        uuid: d["uuid"].as_str().unwrap().to_owned(),
        username: d["username"].as_str().unwrap().to_owned(),
        token: d["token"].as_str().unwrap().to_owned(),
    }
}

/// Asserts the uni-app success envelope and returns `data`.
#[track_caller]
pub fn assert_ok(got: &(StatusCode, Value)) -> Value {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["msg"], "ok", "{}", got.1);
    got.1["data"].clone()
}

/// Registers a visitor with a fresh device, signing the request as a client does.
pub async fn register_visitor(server: &TestServer) -> User {
    let device = uuid::Uuid::new_v4().to_string();
    let ts = parlor_actors::now_ms().to_string();
    let a = &server.config.auth;
    let sign = parlor::auth::visitor_sign(&device, &a.visitor_salt, &ts, &a.visitor_app_secret);
    let resp = server
        .http
        .post(server.url("/api/visitorRegister"))
        .header("X-Security-Sign", sign)
        .form(&[("deviceId", device.as_str()), ("timestamp", ts.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["role"], "visitor", "{body}");
    user_of(&body)
}

/// Asserts the uni-app failure envelope with `status`, returning the reason.
#[track_caller]
pub fn assert_fail(got: &(StatusCode, Value), status: StatusCode) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["msg"], "fail", "{}", got.1);
    got.1["data"].as_str().expect("reason is a string").to_owned()
}

/// Asserts a chat-room face refusal with `status`, returning the reason: the face's
/// `{"success":false,"message":reason}`, or for a 404 the document's error shape
/// `{timestamp, status, error, message, path}`.
#[track_caller]
pub fn assert_room_refused(got: &(StatusCode, Value), status: StatusCode) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    if status == StatusCode::NOT_FOUND {
        assert_eq!(got.1["status"], 404, "{}", got.1);
        assert_eq!(got.1["error"], "Not Found", "{}", got.1);
        assert!(
            got.1["path"].as_str().is_some_and(|p| p.starts_with('/')),
            "{}",
            got.1
        );
        assert!(got.1["timestamp"].is_string(), "{}", got.1);
    } else {
        assert_eq!(got.1["success"], false, "{}", got.1);
    }
    let reason = got.1["message"].as_str().expect("reason is a string");
    assert!(!reason.is_empty(), "{}", got.1);
    reason.to_owned()
}

/// A WebSocket client.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    pub async fn send_json(&mut self, v: &Value) {
        self.stream.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream.send(Message::text(s.to_owned())).await.unwrap();
    }

    /// The next text frame as JSON, skipping pings; fails if none arrives within
    /// [`FRAME_TIMEOUT`] of the call (pings and other control frames do not extend it).
    pub async fn next_json(&mut self) -> Value {
        self.next_json_by(tokio::time::Instant::now() + FRAME_TIMEOUT)
            .await
    }

    /// The next text frame as JSON, skipping control frames; fails at `deadline`.
    pub async fn next_json_by(&mut self, deadline: tokio::time::Instant) -> Value {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame before the deadline")
                .expect("stream open")
                .expect("frame ok");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame whose `type` is `kind`, skipping others; fails if none arrives within
    /// [`FRAME_TIMEOUT`] of the call, however many other frames arrive meanwhile.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            let v = self.next_json_by(deadline).await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Asserts that no text frame arrives within `ms` milliseconds.
    pub async fn assert_quiet(&mut self, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => panic!("unexpected frame: {t}"),
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("stream ended: {other:?}"),
            }
        }
    }

    /// A `ping` frame answered by its `pong`: every frame sent before has been handled by the
    /// session, and what it told the Router is queued there ahead of anything sent after.
    pub async fn sync(&mut self) {
        self.send_json(&json!({"type": "ping"})).await;
        self.next_of_type("pong").await;
    }

    /// Sends a `send` frame.
    pub async fn send_msg(&mut self, cid: &str, to: u64, text: &str) {
        self.send_json(&json!({"type": "send", "cid": cid, "to": to, "msgType": "text", "data": text}))
            .await;
    }

    /// Waits for the close frame (or the end of the stream) and returns its code; fails if
    /// the socket is still open [`FRAME_TIMEOUT`] after the call, whatever arrives meanwhile.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("closes before the deadline")
            {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

// ---------------------------------------------------------------------------------------
// Uploads

/// The uni-app face's upload route; append the folder.
pub const DIY: &str = "/api/chat/uploadStreamSingleToServerDiy/";

/// A real PNG image of `w`×`h` pixels.
pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i as u8).wrapping_add(seed)).collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// The start of an ELF executable: a type no configuration allows.
pub fn elf() -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\x00".to_vec();
    v.extend_from_slice(&[0u8; 8]);
    v.extend_from_slice(&[2, 0, 0x3e, 0]);
    v.resize(512, 0);
    v
}

/// A multipart upload: one file (named `x.png` unless [`Upload::named`], whatever it
/// holds) and text fields.
pub struct Upload<'a> {
    path: String,
    token: Option<&'a str>,
    field: &'a str,
    name: &'a str,
    texts: Vec<(&'a str, &'a str)>,
}

impl<'a> Upload<'a> {
    pub fn to(path: &str, token: Option<&'a str>, field: &'a str) -> Self {
        Upload {
            path: path.to_owned(),
            token,
            field,
            name: "x.png",
            texts: Vec::new(),
        }
    }

    /// The client's name of the file.
    pub fn named(mut self, name: &'a str) -> Self {
        self.name = name;
        self
    }

    pub fn text(mut self, name: &'a str, value: &'a str) -> Self {
        self.texts.push((name, value));
        self
    }

    pub async fn send(self, server: &TestServer, bytes: Vec<u8>) -> (StatusCode, Value) {
        let mut form = Form::new().part(
            self.field.to_owned(),
            Part::bytes(bytes).file_name(self.name.to_owned()),
        );
        for (k, v) in self.texts {
            form = form.text(k.to_owned(), v.to_owned());
        }
        let mut req = server.http.post(server.url(&self.path)).multipart(form);
        if let Some(t) = self.token {
            req = req.header("token", t);
        }
        TestServer::finish(req.send().await.unwrap()).await
    }
}

// ---------------------------------------------------------------------------------------
// Refused upgrades

/// Asks for a WebSocket the server must refuse before the upgrade; returns the refusal's
/// status and its JSON body (a body that is not JSON fails the test).
pub async fn ws_refusal(
    request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
) -> (StatusCode, Value) {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let text = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            let body =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
            (status, body)
        }
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

/// Asserts that the server refuses the WebSocket `request` with 401 in the uni-app
/// envelope, and that the reason contains `reason`.
pub async fn assert_ws_unauthorized(
    request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    reason: &str,
) {
    let got = ws_refusal(request).await;
    let text = assert_fail(&got, StatusCode::UNAUTHORIZED);
    assert!(text.contains(reason), "expected {reason:?}: {text}");
}
