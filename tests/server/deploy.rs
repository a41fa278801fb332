//! The deployment files in `docs/deploy/` and the `Dockerfile` work as shipped:
//! - the systemd unit passes `systemd-analyze verify` (no warning either) and its
//!   `PARLOR_*` settings are valid configuration;
//! - the Dockerfile is a multi-stage build whose runtime runs as a non-root user with a data
//!   volume and a health check that the binary answers, and its `PARLOR_*` settings are valid;
//! - nginx with the reverse-proxy example (a self-signed certificate, the rest unchanged)
//!   serves Parlor over TLS: HTTPS requests, the redirect from plain HTTP, and a WebSocket
//!   session through the upgrade, carrying messages both ways;
//! - the three-node example of cluster mode (`docs/cluster/three-nodes.sh`) starts three
//!   clustered nats-servers and three nodes, serves a tenant from every node, and stops.
//!
//! Needs `systemd-analyze`, `nginx`, `openssl`, `nats-server` and `curl` (Debian: `apt-get
//! install -y systemd nginx openssl nats-server curl`); without them the tests fail and say so. Building the image itself needs a
//! container engine: `.ci/run` does it when one is running.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `name` on the PATH or in the sbin directories, or a failure saying how to install it.
fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("this test needs {name} (Debian: apt-get install -y {package})"))
}

/// The `KEY=value` pairs of `PARLOR_` settings in `text`, as a Dockerfile's `ENV` or a
/// unit's `Environment=` lines write them.
fn parlor_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|w| w.trim_start_matches("Environment=").trim_end_matches('\\'))
        .filter(|w| w.starts_with("PARLOR_"))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether `check-config` accepts the shipped config.toml with `settings` on top.
fn assert_valid_settings(settings: &[(String, String)], what: &str) {
    assert!(!settings.is_empty(), "{what}: no PARLOR_ settings found");
    let out = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .arg("--config")
        .arg(root().join("config.toml"))
        .arg("check-config")
        .envs(settings.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {settings:?} are not valid configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_systemd_unit_verifies() {
    let analyze = program("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(root().join("docs/deploy/parlor.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/parlor "), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    // The unit as installed, with the binary where this build put it.
    let installed = dir.path().join("parlor.service");
    std::fs::write(
        &installed,
        unit.replace("/usr/local/bin/parlor", env!("CARGO_BIN_EXE_parlor")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&installed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze warns: {stderr}");
    assert_valid_settings(&parlor_settings(&unit), "parlor.service");
    for needed in [
        "KillSignal=SIGTERM",
        "StateDirectory=parlor",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn the_dockerfile_builds_a_small_non_root_image_with_a_health_check() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // Continuation lines joined, comments left out.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let runtime = &lines[*stages.last().unwrap()..];
    assert!(
        runtime[0].contains("-slim"),
        "a slim runtime base: {}",
        runtime[0]
    );
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime names its USER");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(runtime
        .iter()
        .any(|l| l.starts_with("VOLUME ") && l.contains("/var/lib/parlor")));
    assert!(runtime
        .iter()
        .any(|l| l.starts_with("EXPOSE ") && l.contains("7001")));
    let health = runtime
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(
        health.contains("\"health\""),
        "the binary's own health command: {health}"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=") && l.contains("parlor")),
        "the runtime takes the binary from the build stage"
    );
    for l in &lines {
        if let Some(rest) = l.strip_prefix("COPY ").filter(|r| !r.starts_with("--from")) {
            let source = rest.split_whitespace().next().unwrap();
            assert!(root().join(source).exists(), "COPY of a missing {source}");
        }
    }
    let settings = parlor_settings(&joined);
    assert!(settings
        .iter()
        .any(|(k, v)| k == "PARLOR_SERVER__BIND" && v.starts_with("0.0.0.0:")));
    assert_valid_settings(&settings, "Dockerfile");
    // The build context leaves out what must not go into an image.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for left_out in ["target", "data"] {
        assert!(
            ignore.lines().any(|l| l.trim() == left_out),
            ".dockerignore lacks {left_out}"
        );
    }
}

/// nginx in the foreground on a configuration of its own, stopped when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would orphan them).
        // SAFETY: kill only sends a signal to the child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The example site with its listeners, certificate and upstream replaced, in a main
/// configuration that keeps every file nginx writes in a temporary directory.
fn start_nginx(upstream: &str, https: u16, http: u16) -> Nginx {
    let nginx = program("nginx", "nginx");
    let openssl = program("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=chat.example.com"])
        .args(["-addext", "subjectAltName=DNS:chat.example.com"])
        // A server certificate, not a CA: TLS clients refuse a CA as the end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl made no certificate");
    let example = std::fs::read_to_string(root().join("docs/deploy/nginx.conf")).unwrap();
    let replace = [
        ("server 127.0.0.1:7001;", format!("server {upstream};")),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        (
            "/etc/letsencrypt/live/chat.example.com/fullchain.pem",
            d.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/chat.example.com/privkey.pem",
            d.join("key.pem").display().to_string(),
        ),
    ];
    let mut site = example.clone();
    for (from, to) in &replace {
        assert!(site.contains(from), "the example no longer has {from:?}");
        site = site.replace(from, to);
    }
    std::fs::write(d.join("site.conf"), site).unwrap();
    let t = d.display();
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {t}/nginx.pid;\nerror_log {t}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
           fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
           include {t}/site.conf;\n}}\n"
    );
    std::fs::write(d.join("nginx.conf"), main).unwrap();
    let check = Command::new(&nginx)
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t refuses the example: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(&nginx)
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Nginx { child, dir }
}

/// A TLS connection to `port` that trusts only the test's certificate, for the name
/// `chat.example.com`.
async fn tls(port: u16, cert: &Path) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("chat.example.com").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with nginx")
}

/// One HTTP/1.1 request over `stream` (closed after it): the status and the body.
async fn request<S>(mut stream: S, method: &str, path: &str, headers: &str, body: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n{headers}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[actix_web::test]
async fn nginx_with_the_example_serves_parlor_over_tls_and_upgrades_websockets() {
    let (server, _dir) = TestServer::start().await;
    let (https, http) = (free_port(), free_port());
    let nginx = start_nginx(&server.addr.to_string(), https, http);
    let cert = nginx.dir.path().join("cert.pem");
    // nginx is up once its TLS port answers.
    let mut tries = 0;
    let (status, body) = loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", https)).await.is_ok() {
            break request(tls(https, &cert).await, "GET", "/healthz", "", "").await;
        }
        tries += 1;
        assert!(tries < 200, "nginx did not start: {}", nginx.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(status, 200, "{body} {}", nginx.log());
    assert!(body.contains("\"ok\""), "{body}");

    // Plain HTTP is sent to HTTPS.
    let plain = tokio::net::TcpStream::connect(("127.0.0.1", http)).await.unwrap();
    let (status, _) = request(plain, "GET", "/healthz", "", "").await;
    assert_eq!(status, 301);

    // A registration through the proxy.
    let (status, body) = request(
        tls(https, &cert).await,
        "POST",
        "/api/regChat",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "username=proxied&password=secret1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alice: Value = serde_json::from_str(&body).unwrap();
    let alice = common::user_of(&alice);
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;

    // Alice's WebSocket goes through nginx (wss), Bob's straight to the server.
    let url = format!("wss://chat.example.com:{https}/ws?token={}", alice.token);
    let (mut wss, _) = tokio_tungstenite::client_async(url, tls(https, &cert).await)
        .await
        .expect("the WebSocket upgrade through nginx");
    read_of_type(&mut wss, "connected").await;
    let mut direct = server.ws(&bob.token).await;
    wss.send(Message::text(
        json!({"type": "send", "to": bob.id, "msgType": "text", "data": "through the proxy", "cid": "p1"})
            .to_string(),
    ))
    .await
    .unwrap();
    let ack = read_of_type(&mut wss, "ack").await;
    assert_eq!(ack["cid"], "p1", "{ack}");
    let got = direct.next_of_type("singleChat").await;
    assert_eq!(got["data"]["data"], "through the proxy", "{got}");
    direct.send_msg("p2", alice.id, "and back").await;
    let back = read_of_type(&mut wss, "singleChat").await;
    assert_eq!(back["data"]["data"], "and back", "{back}");
    wss.close(None).await.unwrap();
    drop(nginx);
    server.stop().await;
}

/// The next text frame of type `kind` from `wss`, as JSON; frames of other types are
/// skipped.
async fn read_of_type<S>(wss: &mut tokio_tungstenite::WebSocketStream<S>, kind: &str) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::time::timeout(common::FRAME_TIMEOUT, wss.next())
            .await
            .expect("a frame through nginx in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

/// A base such that the three ports after it are free now.
fn free_base() -> u16 {
    loop {
        let base = free_port().saturating_sub(4).max(1030);
        let free = (1..=3).all(|n| std::net::TcpListener::bind(("127.0.0.1", base + n)).is_ok());
        if free {
            return base;
        }
    }
}

/// Stops the example's cluster when the test ends, passed or not.
struct ThreeNodes {
    dir: tempfile::TempDir,
}

impl ThreeNodes {
    fn run(&self, command: &str) -> std::process::Output {
        Command::new("sh")
            .arg(root().join("docs/cluster/three-nodes.sh"))
            .arg(command)
            .arg(self.dir.path())
            .env("PARLOR_BIN", env!("CARGO_BIN_EXE_parlor"))
            .output()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["n1.log", "n2.log", "n3.log", "s1.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all += &format!(
                "--- {name}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        all
    }
}

impl Drop for ThreeNodes {
    fn drop(&mut self) {
        let _ = self.run("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_node_cluster_example_serves_a_tenant_from_every_node() {
    program("nats-server", "nats-server");
    program("curl", "curl");
    let (nodes, nats, routes) = (free_base(), free_base(), free_base());
    let cluster = ThreeNodes {
        dir: tempfile::tempdir().unwrap(),
    };
    // The example as shipped, on ports of this test and with quick password hashing.
    let out = Command::new("sh")
        .arg(root().join("docs/cluster/three-nodes.sh"))
        .arg("start")
        .arg(cluster.dir.path())
        .env("PARLOR_BIN", env!("CARGO_BIN_EXE_parlor"))
        .env("NODE_PORT_BASE", nodes.to_string())
        .env("NATS_PORT_BASE", nats.to_string())
        .env("ROUTE_PORT_BASE", routes.to_string())
        .env("PARLOR_AUTH__ARGON2_MEMORY_KIB", "64")
        .env("PARLOR_AUTH__ARGON2_ITERATIONS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the example did not start: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    let base = |n: u16| format!("http://127.0.0.1:{}", nodes + n);
    // One request per connection through a node (it tunnels each to its shard's server).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let form = [
        ("username", "alice_c"),
        ("password", "secret1"),
        ("app_id", "acme"),
    ];
    let json = |req: reqwest::RequestBuilder| async move {
        req.send().await.unwrap().json::<Value>().await.unwrap()
    };
    let registered = json(http.post(format!("{}/api/regChat", base(1))).form(&form)).await;
    assert_eq!(registered["msg"], "ok", "{registered}\n{}", cluster.logs());
    for n in 1..=3 {
        let login = json(http.post(format!("{}/api/loginChat", base(n))).form(&form)).await;
        assert_eq!(login["data"]["id"], registered["data"]["id"], "node {n}: {login}");
        let health = json(http.get(format!("{}/healthz", base(n)))).await;
        assert_eq!(health["status"], "ok", "node {n}: {health}");
        assert_eq!(health["node"], format!("n{n}"), "{health}");
    }
    let out = cluster.run("stop");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Stopped: nothing answers on the nodes' ports any more.
    common::eventually(
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", nodes + 1))
                .await
                .is_err()
        },
        "node n1 stopped",
    )
    .await;
}
