//! Cluster mode end to end: several `parlor` processes (nodes) over a NATS JetStream
//! cluster, driven only through their client listeners, as a client would. What each test
//! proves:
//!
//! - `a_nats_cluster_of_three_keeps_jetstream_through_a_restart` (the harness itself): three
//!   `nats-server`s keep an R3 stream writable with one of them killed, and the restarted
//!   one catches up.
//! - `three_nodes_serve_every_tenant_from_any_node`: any node serves any tenant
//!   (registration, login, friends, WebSocket sends, pushes and history, each through
//!   another node, the answers tunnelled unchanged from the tenant's shard owner, its
//!   refusals too), two tenants on two shards kept apart, a resent `cid` stored once, the
//!   same history through every node.
//! - `an_edge_refuses_with_503_once_its_connect_timeout_passes_and_serves_after_the_takeover`:
//!   with the tenant's owner killed and not yet replaced, a request through another node
//!   waits its `cluster.connect_timeout_ms` (shorter than the lease here) and is answered
//!   503; once that node has taken the shard over, the same request is served.
//! - `a_killed_owner_is_replaced_and_no_acknowledged_message_is_lost`: a shard owner that is
//!   killed (`kill -9`), then its successor paused (`SIGSTOP` for three leases), is replaced
//!   while a client keeps sending with `cid`s, retrying on the next node: no acknowledged
//!   message lost, none stored twice, no gap in the conversation's seqs.
//! - `a_run_through_owner_death_nats_death_and_a_paused_owner_loses_nothing`: 30 s of group
//!   and direct messages in one tenant (a group of 20 whose members read over
//!   `ack=manual` WebSockets spread over the nodes, reconnecting wherever they can) and
//!   direct ones in a tenant of another shard, through a `kill -9` of the first tenant's
//!   shard owner, the death of the `nats-server` leading that shard's log, and a `SIGSTOP`
//!   of the new owner for three leases. Every acknowledged `cid` is stored once with its
//!   ack's seq; every conversation's seqs are 1..=head, the same through every live node;
//!   every member received every group message (and both parties every direct one) another
//!   user wrote, live or replayed, duplicates counted; the paused owner, resumed, has its
//!   late writes refused (fenced) or stops serving on seeing its lease run out; after the
//!   `nats-server` is back, every server's copy of each shard's log holds as many records
//!   as the leader's. It prints its figures (acknowledgements,
//!   retries, duplicates, stalls, takeover times).
//!
//! The harness: [`NatsCluster`] (`nats-server` processes with JetStream, clustered with
//! routes, each with its monitoring port for `/jsz`), [`Node`] (a `parlor` process
//! configured by `PARLOR_*` variables, its log in the test's directory) and [`Scene`] (that
//! directory; a failing test prints the tail of every log in it, `CLUSTER_TEST_KEEP=1`
//! keeps it). Needs the Debian package `nats-server` (`.ci/run` installs it).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use async_nats::jetstream;
use parlor::cluster::placement::{self, shard_of};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::common::{self, User, Ws};

/// Shards of every test's cluster.
const SHARDS: u32 = 4;
/// The nodes' lease, ms.
const LEASE_MS: u64 = 1500;
/// How long a node's edge waits for a shard's server before it answers 503.
const CONNECT_TIMEOUT_MS: u64 = 3000;
/// The token secret, the same on every node.
const JWT_SECRET: &str = "cluster-nodes-test-secret";
/// Every test user's password.
const PASSWORD: &str = "secret1";

// ---------------------------------------------------------------------------------------
// The test's directory and its logs

/// A test's temporary directory: each process's log (`<name>.log`) and data. When the test
/// fails, dropping it prints the tail of every log; `CLUSTER_TEST_KEEP=1` keeps it.
struct Scene {
    dir: Option<tempfile::TempDir>,
}

impl Scene {
    fn new() -> Scene {
        remember_panics();
        Scene {
            dir: Some(tempfile::tempdir().unwrap()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("the directory").path()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_logs(self.path());
            // Again after the logs, so that a report showing only the end of the output
            // still shows why the test failed.
            if let Some(why) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
                let lines: Vec<&str> = why.lines().collect();
                eprintln!(
                    "----- the failure (first {} of {} lines) -----",
                    lines.len().min(30),
                    lines.len()
                );
                for line in lines.iter().take(30) {
                    eprintln!("{line}");
                }
            }
        }
        if std::env::var_os("CLUSTER_TEST_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("cluster_nodes: kept {}", dir.keep().display());
            }
        }
    }
}

thread_local! {
    /// The message of the last panic on this thread, for [`Scene`]'s drop to print again.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per process) a panic hook that keeps each panic's message in
/// [`LAST_PANIC`] and then does what the hook before it did.
fn remember_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // "panicked at file:line:col:" and the message, as the default hook prints it.
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            before(info);
        }));
    });
}

/// Prints the tail of every `*.log` in `dir` (nodes' 80 lines, nats-servers' 20).
fn dump_logs(dir: &Path) {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    for log in logs {
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        let name = log.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let keep = if name.starts_with("nats-") { 20 } else { 80 };
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(keep)..];
        eprintln!("----- {name}: last {} of {} lines -----", tail.len(), lines.len());
        for line in tail {
            eprintln!("{line}");
        }
    }
}

/// `fut`, failing the test if it takes more than `secs` seconds.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: expected to finish within {secs} s, still running"),
    }
}

/// A log file opened for appending, as a child's standard output or error.
fn log_file(path: &Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Stdio::from(file)
}

// ---------------------------------------------------------------------------------------
// NATS

/// One server of a [`NatsCluster`].
struct NatsServer {
    name: String,
    port: u16,
    route_port: u16,
    /// The HTTP monitoring port (`/jsz`: this server's own view of its streams).
    monitor_port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// `nats-server` processes with JetStream on loopback ports, clustered with routes (one
/// alone has no cluster block), each with its store in the test's directory; killed when
/// dropped.
struct NatsCluster {
    servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// `n` servers `s1`..`sn`, once JetStream answers on each (a meta leader elected).
    async fn start(n: usize, dir: &Path) -> NatsCluster {
        let servers = (1..=n)
            .map(|i| {
                let name = format!("s{i}");
                let store = dir.join(format!("nats-{name}"));
                std::fs::create_dir_all(&store).unwrap();
                NatsServer {
                    log: dir.join(format!("nats-{name}.log")),
                    name,
                    port: common::free_port(),
                    route_port: common::free_port(),
                    monitor_port: common::free_port(),
                    store,
                    child: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { servers };
        for i in 0..n {
            cluster.servers[i].child = Some(cluster.spawn(i));
        }
        cluster.wait_ready().await;
        cluster
    }

    fn spawn(&self, i: usize) -> Child {
        let s = &self.servers[i];
        let mut cmd = Command::new(common::system_program("nats-server", "nats-server"));
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-n",
            &s.name,
            "-m",
            &s.monitor_port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(&s.store);
        if self.servers.len() > 1 {
            let routes: Vec<String> = self
                .servers
                .iter()
                .filter(|o| o.name != s.name)
                .map(|o| format!("nats://127.0.0.1:{}", o.route_port))
                .collect();
            cmd.args([
                "--cluster_name",
                "parlor",
                "--cluster",
                &format!("nats://127.0.0.1:{}", s.route_port),
                "--routes",
                &routes.join(","),
            ]);
        }
        cmd.stdout(log_file(&s.log))
            .stderr(log_file(&s.log))
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts")
    }

    /// Every server's client URL (a killed one's too: clients find the others).
    fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.port))
            .collect()
    }

    /// Stops server `i` (SIGSTOP): its clients' requests wait for their deadlines instead
    /// of failing at once. Killing it later (`kill`, or the drop) ends it.
    fn pause(&self, i: usize) {
        let pid = self.servers[i]
            .child
            .as_ref()
            .and_then(|c| c.id())
            .expect("a running nats-server");
        send_signal(pid as libc::pid_t, libc::SIGSTOP, &format!("SIGSTOP s{}", i + 1));
    }

    /// Kills server `i` (SIGKILL) and reaps it.
    async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts server `i` again, on its ports and store, and waits until JetStream answers.
    async fn restart(&mut self, i: usize) {
        assert!(self.servers[i].child.is_none(), "s{} is running", i + 1);
        self.servers[i].child = Some(self.spawn(i));
        self.wait_ready().await;
    }

    /// Waits (30 s at most) until every running server creates and deletes a stream with
    /// as many replicas as the nodes will ask (3 with three servers or more, else 1).
    async fn wait_ready(&self) {
        let replicas = if self.servers.len() >= 3 { 3 } else { 1 };
        let deadline = Instant::now() + Duration::from_secs(30);
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            let url = format!("nats://127.0.0.1:{}", s.port);
            loop {
                let probe =
                    tokio::time::timeout(Duration::from_secs(6), probe(&url, &s.name, replicas)).await;
                let why = match probe {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => e,
                    Err(_) => "no answer within 6 s".to_owned(),
                };
                assert!(
                    Instant::now() < deadline,
                    "expected JetStream ready on {} ({url}) within 30 s, last: {why}",
                    s.name
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

impl NatsCluster {
    /// The index of the server that leads stream `name` (its RAFT leader), asked through
    /// any running server; `None` when no answer names one within 3 s.
    async fn stream_leader(&self, name: &str) -> Option<usize> {
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            let url = format!("nats://127.0.0.1:{}", s.port);
            let asked = async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(1))
                    .connect(url.as_str())
                    .await
                    .ok()?;
                let mut stream = jetstream::new(client).get_stream(name).await.ok()?;
                let info = stream.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            };
            if let Ok(Some(leader)) = tokio::time::timeout(Duration::from_secs(3), asked).await {
                return self.servers.iter().position(|s| s.name == leader);
            }
        }
        None
    }

    /// Server `i`'s own view of each `PARLOR_LOG_<k>` stream it holds a copy of (its
    /// monitoring `/jsz`, which reports the local replica, not the leader's): the stream's
    /// name and its message count.
    async fn local_log_counts(&self, i: usize) -> Result<BTreeMap<String, u64>, String> {
        let url = format!(
            "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
            self.servers[i].monitor_port
        );
        let (status, body) = answer(http_client(Duration::from_secs(2)).get(url)).await?;
        if status != StatusCode::OK {
            return Err(format!("/jsz answered {status} {body}"));
        }
        let mut counts = BTreeMap::new();
        for account in body["account_details"].as_array().into_iter().flatten() {
            for stream in account["stream_detail"].as_array().into_iter().flatten() {
                let name = stream["name"].as_str().unwrap_or_default();
                if name.starts_with("PARLOR_LOG_") {
                    let messages = stream["state"]["messages"].as_u64().unwrap_or(0);
                    counts.insert(name.to_owned(), messages);
                }
            }
        }
        Ok(counts)
    }
}

/// How long until each of `streams` answers its info with a leader through one of `urls`
/// again (polled every 100 ms, 30 s at most): the stream's name and the time, `None` for
/// one that did not within 30 s.
async fn leaders_back(urls: Vec<String>, streams: Vec<String>) -> Vec<(String, Option<Duration>)> {
    let start = Instant::now();
    let mut back: Vec<(String, Option<Duration>)> = streams.into_iter().map(|s| (s, None)).collect();
    let mut client = None;
    while start.elapsed() < Duration::from_secs(30) && back.iter().any(|(_, t)| t.is_none()) {
        if client.is_none() {
            for url in &urls {
                let connecting = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(1))
                    .connect(url.as_str());
                if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), connecting).await {
                    client = Some(jetstream::new(c));
                    break;
                }
            }
        }
        if let Some(js) = &client {
            for (name, at) in back.iter_mut().filter(|(_, t)| t.is_none()) {
                let asked = async {
                    let mut stream = js.get_stream(name.as_str()).await.ok()?;
                    let info = stream.info().await.ok()?;
                    info.cluster.as_ref()?.leader.clone()
                };
                if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), asked).await {
                    *at = Some(start.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    back
}

/// The message count of each `PARLOR_LOG_<k>` stream as the JetStream API answers through
/// the server at `url` (a clustered stream's info is answered by its leader, whichever server
/// is asked: this is the leader's view).
async fn leader_log_counts(url: &str, shards: u32) -> Result<BTreeMap<String, u64>, String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let js = jetstream::new(client);
    let mut counts = BTreeMap::new();
    for k in 0..shards {
        let name = format!("PARLOR_LOG_{k}");
        let asked = async {
            let mut stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            let info = stream.info().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(info.state.messages)
        };
        let messages = tokio::time::timeout(Duration::from_secs(3), asked)
            .await
            .map_err(|_| format!("{name}: no answer within 3 s"))?
            .map_err(|e| format!("{name}: {e}"))?;
        counts.insert(name, messages);
    }
    Ok(counts)
}

/// Creates and deletes a stream of `replicas` through the server at `url`.
async fn probe(url: &str, name: &str, replicas: usize) -> Result<(), String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let js = jetstream::new(client);
    let stream = format!("parlor_probe_{name}");
    let config = jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("parlor_probe.{name}")],
        num_replicas: replicas,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| format!("create an R{replicas} stream: {e}"))?;
    js.delete_stream(&stream)
        .await
        .map_err(|e| format!("delete the stream: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Nodes

/// A `parlor` node: the binary in cluster mode, configured by `PARLOR_*` variables only
/// (an empty configuration file), its data in `<dir>/<name>/`, its log `<dir>/<name>.log`;
/// killed when dropped.
struct Node {
    name: String,
    index: usize,
    port: u16,
    child: Child,
    pid: libc::pid_t,
    /// Killed (`kill9`): not asked anything any more.
    dead: bool,
    http: reqwest::Client,
}

impl Node {
    /// Starts node `name` over the NATS servers `urls`, its home in `dir`, with the test's
    /// settings and then `extra` (which win).
    async fn start(
        name: &str,
        index: usize,
        urls: &[String],
        dir: &Path,
        shards: u32,
        replicas: usize,
        extra: Vec<(&str, String)>,
    ) -> Node {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("empty.toml");
        std::fs::write(&config, "").unwrap();
        let port = common::free_port();
        let urls = serde_json::to_string(urls).unwrap();
        let vars: Vec<(&str, String)> = vec![
            ("PARLOR_SERVER__BIND", format!("127.0.0.1:{port}")),
            ("PARLOR_SERVER__WORKERS", "2".into()),
            ("PARLOR_SERVER__SHUTDOWN_TIMEOUT_SECS", "1".into()),
            (
                "PARLOR_STORAGE__PATH",
                home.join("parlor.redb").display().to_string(),
            ),
            ("PARLOR_AUTH__JWT_SECRET", JWT_SECRET.into()),
            ("PARLOR_AUTH__ARGON2_MEMORY_KIB", "64".into()),
            ("PARLOR_AUTH__ARGON2_ITERATIONS", "1".into()),
            ("PARLOR_WS__REPORT_INTERVAL_MS", "20".into()),
            ("PARLOR_WS__PROBE_INTERVAL_MS", "20".into()),
            ("PARLOR_ROUTER__CURSOR_FLUSH_MS", "20".into()),
            ("PARLOR_PRESENCE__ENABLED", "false".into()),
            ("PARLOR_FILES__BACKEND", "s3".into()),
            ("PARLOR_FILES__S3_BUCKET", "parlor".into()),
            ("PARLOR_FILES__S3_ENDPOINT", "http://127.0.0.1:1".into()),
            ("PARLOR_FILES__S3_ACCESS_KEY_ID", "test".into()),
            ("PARLOR_FILES__S3_SECRET_ACCESS_KEY", "test".into()),
            ("PARLOR_FILES__S3_ALLOW_HTTP", "true".into()),
            ("PARLOR_CLUSTER__ENABLED", "true".into()),
            ("PARLOR_CLUSTER__NODE_ID", name.into()),
            ("PARLOR_CLUSTER__NATS_URLS", urls),
            ("PARLOR_CLUSTER__SHARDS", shards.to_string()),
            ("PARLOR_CLUSTER__REPLICAS", replicas.to_string()),
            ("PARLOR_CLUSTER__LEASE_TTL_MS", LEASE_MS.to_string()),
            (
                "PARLOR_CLUSTER__CONNECT_TIMEOUT_MS",
                CONNECT_TIMEOUT_MS.to_string(),
            ),
            ("PARLOR_CLUSTER__ADVERTISE", "127.0.0.1".into()),
            ("PARLOR_CLUSTER__SNAPSHOT_INTERVAL_SECS", "1".into()),
        ]
        .into_iter()
        .chain(extra)
        .collect();
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parlor"));
        cmd.arg("--config").arg(&config).arg("serve").current_dir(&home);
        // Only this node's configuration, whatever the test's environment holds.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PARLOR_") {
                cmd.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .kill_on_drop(true)
            .spawn()
            .expect("parlor starts");
        let pid = child.id().expect("a pid") as libc::pid_t;
        Node {
            name: name.to_owned(),
            index,
            port,
            child,
            pid,
            dead: false,
            http: http_client(Duration::from_secs(1)),
        }
    }

    /// `host:port` of the client listener.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The status and JSON body of the node's `/healthz`, or why there is none.
    async fn healthz(&self) -> Result<(u16, Value), String> {
        match answer(self.http.get(format!("{}/healthz", self.base()))).await {
            Ok((status, body)) => Ok((status.as_u16(), body)),
            Err(e) => Err(e),
        }
    }

    /// Whether the node's `/healthz` answers 200 with `shard` among those it serves.
    async fn owns(&self, shard: u32) -> bool {
        matches!(self.healthz().await, Ok((200, h)) if shards_in(&h).contains(&shard))
    }

    /// Waits (30 s at most) until `/healthz` answers 200 with status `ok`.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "node {}: expected to run, exited with {exit} (its log follows)",
                    self.name
                );
            }
            let got = self.healthz().await;
            if matches!(&got, Ok((200, h)) if h["status"] == "ok" && h["node"] == self.name.as_str()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} (#{}): expected /healthz 200 with status ok within 30 s, last got {got:?}",
                self.name,
                self.index
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: libc::c_int, what: &str) {
        send_signal(self.pid, signal, &format!("{what} node {}", self.name));
    }

    /// `kill -9`, and reaps it.
    async fn kill9(&mut self) {
        self.signal(libc::SIGKILL, "SIGKILL");
        let _ = self.child.wait().await;
        self.dead = true;
    }

    fn sigstop(&self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
    }

    fn sigcont(&self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }
}

/// Sends `signal` to `pid`, a child this test spawned and has not reaped (`what` names it).
fn send_signal(pid: libc::pid_t, signal: libc::c_int, what: &str) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    let done = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        done,
        0,
        "{what}: kill(2) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// The shard numbers of a `/healthz` body's `owns`.
fn shards_in(health: &Value) -> Vec<u32> {
    health["owns"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect())
        .unwrap_or_default()
}

/// Waits (30 s at most) until the cluster of `nodes` has settled: each answers `/healthz`
/// 200 naming exactly `nodes` as live, and each shard `0..shards` is served by exactly one
/// of them, the first of its rendezvous ranking (where hand-overs end; a test that started
/// while a shard was still being handed over would see its sockets closed). Answers each
/// shard's owner's name.
async fn wait_owned(nodes: &[&Node], shards: u32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    let preferred: Vec<&str> = (0..shards).map(|k| placement::ranking(k, &names)[0]).collect();
    loop {
        let mut owners: Vec<Vec<String>> = vec![Vec::new(); shards as usize];
        let mut answers = Vec::new();
        let mut settled = true;
        for node in nodes {
            let got = node.healthz().await;
            match &got {
                Ok((200, h)) if h["status"] == "ok" => {
                    let mut live: Vec<&str> = h["live"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    live.sort_unstable();
                    settled &= live == names;
                    for shard in shards_in(h) {
                        match owners.get_mut(shard as usize) {
                            Some(o) => o.push(node.name.clone()),
                            None => panic!("node {} serves shard {shard} of {shards}: {h}", node.name),
                        }
                    }
                }
                _ => settled = false,
            }
            answers.push(format!("{}: {got:?}", node.name));
        }
        if settled
            && owners
                .iter()
                .zip(&preferred)
                .all(|(o, p)| o.len() == 1 && o[0] == *p)
        {
            return owners.into_iter().map(|mut o| o.remove(0)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "expected every shard 0..{shards} served by exactly one of {names:?}, its preferred owner \
             ({preferred:?}), each naming all of them live, within 30 s; got owners {owners:?}, last \
             /healthz answers:\n{}",
            answers.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `n1`..`n{count}` and waits until each answers and every shard has one owner.
async fn start_nodes(count: usize, nats: &NatsCluster, dir: &Path, replicas: usize) -> Vec<Node> {
    let urls = nats.urls();
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(
            Node::start(
                &format!("n{}", i + 1),
                i,
                &urls,
                dir,
                SHARDS,
                replicas,
                Vec::new(),
            )
            .await,
        );
    }
    for node in &mut nodes {
        node.wait_ready().await;
    }
    let owners = wait_owned(&nodes.iter().collect::<Vec<_>>(), SHARDS).await;
    eprintln!("cluster_nodes: shard owners {owners:?}");
    nodes
}

// ---------------------------------------------------------------------------------------
// Clients

/// A client that opens a connection per request (a tunnelled answer closes its connection).
fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Sends `req`: its status and JSON body, or what went wrong, starting with its kind
/// (`timeout:`, `connect:`, `transport:`, `body:`).
async fn answer(req: reqwest::RequestBuilder) -> Result<(StatusCode, Value), String> {
    let resp = req.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "transport"
        };
        format!("{kind}: {e}")
    })?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("body: {status}, cut short: {e}"))?;
    let body = serde_json::from_str(&text).map_err(|_| format!("body: {status}, not JSON: {text:?}"))?;
    Ok((status, body))
}

/// `make()`'s request, sent again while it is answered 503 (no owner known yet, or the owner
/// unreachable) or not at all; fails after 20 s.
async fn settled(what: &str, mut make: impl FnMut() -> reqwest::RequestBuilder) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = answer(make()).await;
        match got {
            Ok((status, body)) if status != StatusCode::SERVICE_UNAVAILABLE => return (status, body),
            other => assert!(
                Instant::now() < deadline,
                "{what}: expected an answer other than 503 within 20 s, last got {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts the uni-app success envelope; answers `data`.
#[track_caller]
fn ok_data(what: &str, got: &(StatusCode, Value)) -> Value {
    assert!(
        got.0 == StatusCode::OK && got.1["msg"] == "ok",
        "{what}: expected 200 with msg ok, got {} {}",
        got.0,
        got.1
    );
    got.1["data"].clone()
}

/// Registers `username` in tenant `app_id` through `base`.
async fn register(http: &reqwest::Client, base: &str, app_id: &str, username: &str) -> User {
    account(http, base, "/api/regChat", app_id, username, "register").await
}

/// Logs `username` of tenant `app_id` in through `base`.
async fn login(http: &reqwest::Client, base: &str, app_id: &str, username: &str) -> User {
    account(http, base, "/api/loginChat", app_id, username, "log in").await
}

/// Posts the uni-app account form of `username` to `route` through `base`.
async fn account(
    http: &reqwest::Client,
    base: &str,
    route: &str,
    app_id: &str,
    username: &str,
    doing: &str,
) -> User {
    let what = format!("{doing} {username} of {app_id} through {base}");
    let got = settled(&what, || {
        http.post(format!("{base}{route}")).form(&[
            ("username", username),
            ("password", PASSWORD),
            ("app_id", app_id),
        ])
    })
    .await;
    ok_data(&what, &got);
    common::user_of(&got.1)
}

/// Makes `a` and `b` friends through `base` (the chat-room face's `POST /contacts/add`).
async fn befriend(http: &reqwest::Client, base: &str, a: &User, b: &User) {
    let what = format!("befriend {} and {} through {base}", a.username, b.username);
    let (status, body) = settled(&what, || {
        http.post(format!("{base}/contacts/add"))
            .header("token", &a.token)
            .json(&json!({ "id": b.id }))
    })
    .await;
    assert!(
        status == StatusCode::OK && body["success"] == true,
        "{what}: expected 200 with success true, got {status} {body}"
    );
}

/// A direct text message with `cid` over REST through `base`: the status and body.
async fn send_rest(
    http: &reqwest::Client,
    base: &str,
    from: &User,
    to: u64,
    cid: &str,
    text: &str,
) -> Result<(StatusCode, Value), String> {
    send_rest_to(http, base, from, ("single", to), cid, text).await
}

/// Where a message goes: its `chatType` (`single` or `group`) and the recipient's id, or
/// the group's.
type Target = (&'static str, u64);

/// A text message with `cid` to `target` over REST through `base`: the status and body.
async fn send_rest_to(
    http: &reqwest::Client,
    base: &str,
    from: &User,
    (chat_type, to): Target,
    cid: &str,
    text: &str,
) -> Result<(StatusCode, Value), String> {
    let to = to.to_string();
    let form = [
        ("sendto_id", to.as_str()),
        ("chatType", chat_type),
        ("type", "text"),
        ("data", text),
        ("cid", cid),
    ];
    answer(
        http.post(format!("{base}/api/chat/socket/sendmessage"))
            .header("token", &from.token)
            .form(&form),
    )
    .await
}

/// A WebSocket for `token` on the node at `addr`, once its `connected` frame arrived (the
/// upgrade asked again while it is refused, 20 s at most).
async fn ws_connect(addr: &str, token: &str) -> Ws {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}")).await {
            Ok((stream, _)) => {
                let mut ws = Ws { stream };
                let hello = ws.next_of_type("connected").await;
                assert!(
                    hello["data"]["session"].as_u64().is_some(),
                    "WebSocket through {addr}: expected a connected frame with a session, got {hello}"
                );
                return ws;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "WebSocket through {addr}: expected the upgrade within 20 s, last got {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole history of `token`'s user's conversation with `peer` through `base`, newest
/// first (pages of 200), and its `head`.
async fn history(http: &reqwest::Client, base: &str, token: &str, peer: u64) -> (Vec<Value>, u64) {
    history_of(http, base, token, ("single", peer)).await
}

/// The whole history of `token`'s user's conversation `target` (a peer or a group) through
/// `base`, newest first (pages of 200), and its `head`.
async fn history_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    (kind, id): Target,
) -> (Vec<Value>, u64) {
    let mut list = Vec::new();
    let mut head = None;
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/chat/history/{kind}/{id}?limit=200&before={b}"),
            None => format!("/api/chat/history/{kind}/{id}?limit=200"),
        };
        let what = format!("history {path} through {base}");
        let got = settled(&what, || http.get(format!("{base}{path}")).header("token", token)).await;
        let data = ok_data(&what, &got);
        head.get_or_insert(data["head"].as_u64().unwrap_or(0));
        let page = data["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: expected a list, got {data}"));
        list.extend(page.iter().cloned());
        match data["next_before"].as_u64() {
            Some(b) if !page.is_empty() => before = Some(b),
            _ => break,
        }
    }
    (list, head.unwrap_or(0))
}

/// Two tenant names whose shards differ.
fn two_tenants_on_different_shards() -> (&'static str, &'static str) {
    let names = [
        "acme", "globex", "initech", "umbrella", "hooli", "soylent", "tyrell", "wonka",
    ];
    let first = names[0];
    let second = names[1..]
        .iter()
        .copied()
        .find(|t| shard_of(t, SHARDS) != shard_of(first, SHARDS))
        .expect("a tenant on another shard");
    (first, second)
}

// ---------------------------------------------------------------------------------------
// The harness itself

/// Publishes `text` to the stream `kept` (retried for 15 s, while a stream leader is
/// elected); answers its sequence.
async fn publish_kept(js: &jetstream::Context, text: &'static str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sent = async {
            let ack = js.publish("kept", text.into()).await.map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(3), sent).await {
            Ok(Ok(ack)) => return ack.sequence,
            got => assert!(
                Instant::now() < deadline,
                "publish {text}: expected an ack within 15 s, last got {got:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_cluster_of_three_keeps_jetstream_through_a_restart() {
    let scene = Scene::new();
    within(
        90,
        "a_nats_cluster_of_three_keeps_jetstream_through_a_restart",
        async {
            let mut nats = NatsCluster::start(3, scene.path()).await;
            let urls = nats.urls();
            assert_eq!(urls.len(), 3);
            let js = jetstream::new(async_nats::connect(&urls[0]).await.expect("connect to s1"));
            let config = jetstream::stream::Config {
                name: "kept".into(),
                subjects: vec!["kept".into()],
                num_replicas: 3,
                ..Default::default()
            };
            js.get_or_create_stream(config).await.expect("an R3 stream");
            assert_eq!(
                publish_kept(&js, "one").await,
                1,
                "expected the first message at 1"
            );
            // Two of three keep a quorum: the stream still takes messages.
            nats.kill(2).await;
            let second = publish_kept(&js, "two").await;
            assert!(
                second >= 2,
                "expected the second message after the first, got {second}"
            );
            nats.restart(2).await;
            // The restarted server catches up (right after its restart, the stream's info may
            // still be its own stale copy's).
            let js3 = jetstream::new(async_nats::connect(&urls[2]).await.expect("connect to s3"));
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let info = match js3.get_stream("kept").await {
                    Ok(mut stream) => stream.info().await.cloned().map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if matches!(&info, Ok(i) if i.state.messages >= 2 && i.config.num_replicas == 3) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "expected the R3 stream with both messages through the restarted s3 within 15 s, \
                     got {:?}",
                    info.map(|i| (i.config.num_replicas, i.state))
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Any node serves any tenant

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_serve_every_tenant_from_any_node() {
    let scene = Scene::new();
    within(120, "three_nodes_serve_every_tenant_from_any_node", async {
        let nats = NatsCluster::start(1, scene.path()).await;
        let nodes = start_nodes(3, &nats, scene.path(), 1).await;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        for node in &nodes {
            let (status, h) = node.healthz().await.expect("/healthz answers");
            assert_eq!(
                status, 200,
                "{}: expected /healthz 200, got {status} {h}",
                node.name
            );
            assert_eq!(h["status"], "ok", "{}: expected status ok, got {h}", node.name);
            assert_eq!(
                h["node"],
                node.name.as_str(),
                "{}: expected its own name, got {h}",
                node.name
            );
            let mut live: Vec<String> = h["live"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: expected a live list, got {h}", node.name))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            live.sort();
            assert_eq!(live, names, "{}: expected every node live, got {h}", node.name);
        }
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        let http = http_client(Duration::from_secs(10));
        let (first, second) = two_tenants_on_different_shards();
        for tenant in [first, second] {
            eprintln!(
                "cluster_nodes: tenant {tenant} on shard {}",
                shard_of(tenant, SHARDS)
            );
            // The same usernames in both tenants: two different users.
            register(&http, &n1.base(), tenant, "alice").await;
            register(&http, &n1.base(), tenant, "bob_1").await;
            let alice = login(&http, &n2.base(), tenant, "alice").await;
            let bob = login(&http, &n2.base(), tenant, "bob_1").await;
            befriend(&http, &n3.base(), &alice, &bob).await;

            let mut wb = ws_connect(&n3.addr(), &bob.token).await;
            let mut wa = ws_connect(&n1.addr(), &alice.token).await;
            let (cid, text) = (format!("{tenant}-1"), format!("hello from {tenant}"));
            wa.send_msg(&cid, bob.id, &text).await;
            let ack = wa.next_of_type("ack").await;
            assert_eq!(
                ack["cid"],
                cid.as_str(),
                "{tenant}: expected the ack of {cid}, got {ack}"
            );
            assert_eq!(ack["data"]["seq"], 1, "{tenant}: expected seq 1, got {ack}");
            let push = wb.next_of_type("singleChat").await;
            assert_eq!(
                (&push["data"]["id"], &push["data"]["seq"], &push["data"]["data"]),
                (&ack["data"]["id"], &ack["data"]["seq"], &json!(text)),
                "{tenant}: expected the acked message pushed to bob on {}, got {push}",
                n3.name
            );
            assert_eq!(push["data"]["from_id"], alice.id, "{tenant}: {push}");

            // Over REST through a third node, with a cid: pushed to the same socket.
            let (cid2, text2) = (format!("{tenant}-2"), format!("again from {tenant}"));
            let what = format!("{tenant}: REST send {cid2} through {}", n2.name);
            let got = send_rest(&http, &n2.base(), &alice, bob.id, &cid2, &text2).await;
            let sent = ok_data(&what, &got.unwrap_or_else(|e| panic!("{what}: {e}")));
            assert_eq!(sent["seq"], 2, "{what}: expected seq 2, got {sent}");
            let push = wb.next_of_type("singleChat").await;
            assert_eq!(
                push["data"]["id"], sent["id"],
                "{what}: expected it pushed, got {push}"
            );
            // The same cid again through another node: the same message, stored once.
            let what = format!("{tenant}: REST send {cid2} again through {}", n3.name);
            let got = send_rest(&http, &n3.base(), &alice, bob.id, &cid2, &text2).await;
            let again = ok_data(&what, &got.unwrap_or_else(|e| panic!("{what}: {e}")));
            assert_eq!(
                (&again["id"], &again["seq"]),
                (&sent["id"], &sent["seq"]),
                "{what}: expected the stored message, got {again}"
            );

            // The same history through every node.
            let mut histories = Vec::new();
            for node in &nodes {
                histories.push((
                    node.name.clone(),
                    history(&http, &node.base(), &alice.token, bob.id).await,
                ));
            }
            let (_, (list, head)) = &histories[0];
            let seqs: Vec<u64> = list.iter().filter_map(|m| m["seq"].as_u64()).collect();
            let cids: Vec<&str> = list.iter().filter_map(|m| m["cid"].as_str()).collect();
            assert_eq!(
                (seqs, cids, *head),
                (vec![2, 1], vec![cid2.as_str(), cid.as_str()], 2),
                "{tenant}: expected the two messages newest first"
            );
            for (name, got) in &histories[1..] {
                assert!(
                    got == &histories[0].1,
                    "{tenant}: expected the history through {name} to be the one through {}: {:?} vs {:?}",
                    histories[0].0,
                    got,
                    histories[0].1
                );
            }
            wa.close().await;
            wb.close().await;
        }

        // The tunnel is transparent: the face's own refusals, the same through every node.
        let mut refusals = Vec::new();
        for node in &nodes {
            let base = node.base();
            let what = format!("history without a token through {}", node.name);
            let got = settled(&what, || http.get(format!("{base}/api/chat/history/single/1"))).await;
            let reason = common::assert_fail(&got, StatusCode::UNAUTHORIZED);
            assert!(!reason.is_empty(), "{what}: expected a reason, got {}", got.1);
            let what = format!(
                "history without a token, X-App-Id {second}, through {}",
                node.name
            );
            let named = settled(&what, || {
                http.get(format!("{base}/api/chat/history/single/1"))
                    .header("X-App-Id", second)
            })
            .await;
            assert_eq!(
                named, got,
                "{what}: expected the same refusal as without X-App-Id"
            );
            let what = format!("a wrong password for {first}'s alice through {}", node.name);
            let wrong = settled(&what, || {
                http.post(format!("{base}/api/loginChat")).form(&[
                    ("username", "alice"),
                    ("password", "wrong-password"),
                    ("app_id", first),
                ])
            })
            .await;
            assert!(
                wrong.0.is_client_error() && wrong.1["msg"] == "fail",
                "{what}: expected a 4xx uni-app refusal, got {} {}",
                wrong.0,
                wrong.1
            );
            refusals.push((node.name.clone(), got, wrong));
        }
        for (name, got, wrong) in &refusals[1..] {
            assert_eq!(
                (got, wrong),
                (&refusals[0].1, &refusals[0].2),
                "expected {name} to answer as {} does",
                refusals[0].0
            );
        }
        // What the node refuses itself, before any tunnel: a head that is not HTTP, and
        // a body too large to read for its app_id.
        let node = &nodes[0];
        let refused = |raw: String| {
            let addr = node.addr();
            async move {
                let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
                tcp.write_all(raw.as_bytes()).await.unwrap();
                let mut answer = String::new();
                tcp.read_to_string(&mut answer).await.unwrap();
                answer
            }
        };
        let broken = refused("\u{1}\u{2} nonsense\r\n\r\n".into()).await;
        assert!(
            broken.starts_with("HTTP/1.1 400"),
            "expected 400 for a broken head, got {broken}"
        );
        assert!(
            broken.contains(r#""msg":"fail""#) && broken.contains(r#""data":"#),
            "expected the JSON refusal envelope, got {broken}"
        );
        let huge = refused(
            "POST /api/regChat HTTP/1.1\r\ncontent-type: application/json\r\n\
             content-length: 999999999\r\n\r\n"
                .into(),
        )
        .await;
        assert!(
            huge.starts_with("HTTP/1.1 413"),
            "expected 413 for a huge body, got {huge}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// A killed owner, then a paused one

/// A message the sender got acknowledged.
struct Acked {
    cid: String,
    /// The conversation the ack names (`d:<lo>:<hi>`, `g:<group>`).
    conv: String,
    seq: u64,
    id: String,
    /// Sends of this cid, the acknowledged one included.
    tries: u32,
    /// When the first send of the cid started.
    sent: Instant,
    /// When it was acknowledged.
    acked: Instant,
}

type Acks = Arc<Mutex<Vec<Acked>>>;

/// Sends direct messages `k1`, `k2`… from `from` to `to` over REST, one at a time, each
/// through the next node: on any failure, or no answer within 2 s, the same cid again
/// through the next node, until acknowledged (30 s at most per cid). Stops between two
/// messages once `stop` is set; answers how many failures of each kind it met.
async fn send_until_stopped(
    bases: Vec<String>,
    from: User,
    to: u64,
    acks: Acks,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, u32> {
    let targets = vec![("single", to)];
    send_in_turn(bases, from, targets, "k".into(), Duration::ZERO, acks, stop).await
}

/// Sends text messages `<prefix>1`, `<prefix>2`… from `from` over REST, one at a time, to
/// each of `targets` in turn, `pace` apart, each through the next node: on any failure, or
/// no answer within 2 s, the same cid again through the next node, until acknowledged (30 s
/// at most per cid). Stops between two messages once `stop` is set; answers how many
/// failures of each kind it met.
async fn send_in_turn(
    bases: Vec<String>,
    from: User,
    targets: Vec<Target>,
    prefix: String,
    pace: Duration,
    acks: Acks,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, u32> {
    let http = http_client(Duration::from_secs(2));
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut next = 0usize;
    for n in 1u64.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let target = targets[(n as usize - 1) % targets.len()];
        let (cid, text) = (format!("{prefix}{n}"), format!("message {n}"));
        let sent = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let base = &bases[next % bases.len()];
            next += 1;
            let got = send_rest_to(&http, base, &from, target, &cid, &text).await;
            if let Ok((StatusCode::OK, body)) = &got {
                let m = &body["data"];
                if body["msg"] == "ok" && m["cid"] == cid.as_str() && m["data"] == text.as_str() {
                    if let (Some(seq), Some(id)) = (m["seq"].as_u64(), m["id"].as_str()) {
                        let acked = Acked {
                            cid: cid.clone(),
                            conv: m["conversation"].as_str().unwrap_or_default().to_owned(),
                            seq,
                            id: id.to_owned(),
                            tries,
                            sent,
                            acked: Instant::now(),
                        };
                        acks.lock().unwrap().push(acked);
                        break;
                    }
                }
            }
            let kind = match &got {
                Ok((status, body)) => {
                    let why = body["data"].as_str().unwrap_or("");
                    format!("{status} {}", why.chars().take(80).collect::<String>())
                }
                Err(e) => e.split(':').next().unwrap_or("").to_owned(),
            };
            *failures.entry(kind).or_default() += 1;
            // A nats-server's death can leave JetStream without its meta leader for seconds
            // (over 10 s seen on a busy 2-core host): sends wait for it, none may be lost.
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "{cid}: expected an acknowledgement within 60 s (each node tried in turn), last \
                 through {base} got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(pace).await;
    }
    failures
}

/// Waits (`secs` at most) until the sender has `count` acknowledgements.
async fn wait_acks(
    acks: &Acks,
    sender: &tokio::task::JoinHandle<BTreeMap<String, u32>>,
    count: usize,
    secs: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = acks.lock().unwrap().len();
        if got >= count {
            return;
        }
        assert!(
            !sender.is_finished(),
            "expected the sender to keep sending, it stopped after {got} acknowledgements"
        );
        assert!(
            Instant::now() < deadline,
            "expected {count} acknowledgements within {secs} s, got {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (`secs` at most) until one of `nodes` follows `shard` as its standby with its copy
/// at log position `at` or past it; answers the node's name and the position.
async fn wait_standby(nodes: &[&Node], shard: u32, at: u64, secs: u64) -> (String, u64) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        seen.clear();
        for node in nodes {
            if let Ok((200, h)) = node.healthz().await {
                let position = h["follows"][shard.to_string()].as_u64();
                if position.is_some_and(|p| p >= at) {
                    return (node.name.clone(), position.unwrap_or_default());
                }
                seen.push((node.name.clone(), h["follows"].clone()));
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "expected a node to follow shard {shard} at position {at} or past it within {secs} s; \
             the nodes follow {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first of `nodes` whose `/healthz` says it serves `shard`, polled for `secs` at most.
async fn wait_owner(nodes: &[&Node], shard: u32, secs: u64) -> (String, Duration) {
    let start = Instant::now();
    loop {
        for node in nodes {
            if node.owns(shard).await {
                return (node.name.clone(), start.elapsed());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "expected one of {:?} to serve shard {shard} within {secs} s; none does",
            nodes.iter().map(|n| &n.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the node named `name`.
fn position(nodes: &[Node], name: &str) -> usize {
    nodes
        .iter()
        .position(|n| n.name == name)
        .expect("a node of the test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edge_refuses_with_503_once_its_connect_timeout_passes_and_serves_after_the_takeover() {
    let scene = Scene::new();
    within(
        90,
        "an_edge_refuses_with_503_once_its_connect_timeout_passes_and_serves_after_the_takeover",
        async {
            let nats = NatsCluster::start(1, scene.path()).await;
            let urls = nats.urls();
            // n2's edge gives up on an unreachable owner after 300 ms, well inside the lease.
            let short = 300u64;
            let mut nodes = vec![
                Node::start("n1", 0, &urls, scene.path(), SHARDS, 1, Vec::new()).await,
                Node::start(
                    "n2",
                    1,
                    &urls,
                    scene.path(),
                    SHARDS,
                    1,
                    vec![("PARLOR_CLUSTER__CONNECT_TIMEOUT_MS", short.to_string())],
                )
                .await,
            ];
            for node in &mut nodes {
                node.wait_ready().await;
            }
            wait_owned(&nodes.iter().collect::<Vec<_>>(), SHARDS).await;
            // A tenant whose shard n1 owns.
            let mut tenant = None;
            for i in 0..64 {
                let name = format!("t{i}");
                if nodes[0].owns(shard_of(&name, SHARDS)).await {
                    tenant = Some(name);
                    break;
                }
            }
            let tenant = tenant.expect("n1 owns a shard of one of 64 tenants");
            let http = http_client(Duration::from_secs(10));
            let alice = register(&http, &nodes[1].base(), &tenant, "alice").await;
            let edge = nodes[1].base();
            let login = || {
                http.post(format!("{edge}/api/loginChat")).form(&[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("app_id", tenant.as_str()),
                ])
            };
            nodes[0].kill9().await;
            let asked = Instant::now();
            let refused = answer(login()).await;
            let waited = asked.elapsed();
            eprintln!(
                "cluster_nodes: a login through n2 after n1's kill answered after {waited:?}: {refused:?}"
            );
            let (status, body) = refused.expect("an answer from n2's edge");
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(
                body["msg"] == "fail" && body["data"].as_str().is_some_and(|e| e.contains("try again")),
                "{body}"
            );
            assert!(
                waited >= Duration::from_millis(short),
                "refused after {waited:?}, before the connect timeout of {short} ms"
            );
            // Once n2 has taken the shard over, the same request is served, from the shard's
            // own history.
            let (owner, _) = wait_owner(&[&nodes[1]], shard_of(&tenant, SHARDS), 20).await;
            assert_eq!(owner, "n2");
            let served = settled("the login after the takeover", login).await;
            assert_eq!(ok_data("login", &served)["id"], alice.id);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_lease_runs_out_names_no_shard_while_its_servers_drain() {
    let scene = Scene::new();
    within(
        60,
        "a_node_whose_lease_runs_out_names_no_shard_while_its_servers_drain",
        async {
            let nats = NatsCluster::start(1, scene.path()).await;
            let urls = nats.urls();
            let mut node = Node::start("n1", 0, &urls, scene.path(), SHARDS, 1, Vec::new()).await;
            node.wait_ready().await;
            wait_owned(&[&node], SHARDS).await;
            let http = http_client(Duration::from_secs(30));
            let alice = register(&http, &node.base(), "t0", "alice").await;
            let _session = ws_connect(&node.addr(), &alice.token).await;
            // NATS stops answering (a paused server, as while a stream elects its leader):
            // a write waits for its log append and keeps the shard's server draining.
            nats.pause(0);
            let lost = Instant::now();
            let base = node.base();
            let writing = tokio::spawn(async move {
                let asked = http.post(format!("{base}/api/regChat")).form(&[
                    ("username", "bob"),
                    ("password", PASSWORD),
                    ("app_id", "t0"),
                ]);
                answer(asked).await
            });
            // The lease runs out within LEASE_MS of the last renewal, seen at the next tick; the
            // rest is slack for a loaded host (the servers' drain is not waited for).
            let bound = Duration::from_millis(LEASE_MS + 3000);
            let mut last = None;
            while lost.elapsed() < bound {
                // A /healthz slow to answer on a loaded host is asked again.
                if let Ok((status, health)) = node.healthz().await {
                    let named = shards_in(&health);
                    last = Some((status, health));
                    if named.is_empty() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!(
                "cluster_nodes: NATS stopped; /healthz after {:?}: {last:?}",
                lost.elapsed()
            );
            let (status, health) = last.expect("/healthz answered at least once");
            assert!(
                shards_in(&health).is_empty(),
                "expected no shard named within {bound:?} of NATS stopping (lease {LEASE_MS} ms): \
                 {health}"
            );
            assert_eq!(status, 503, "{health}");
            assert_eq!(health["status"], "unavailable", "{health}");
            // The write is not acknowledged: it fails or is still waiting.
            if writing.is_finished() {
                let got = writing.await.expect("the writing task");
                assert!(
                    !matches!(&got, Ok((s, body)) if *s == StatusCode::OK && body["msg"] != "fail"),
                    "a registration acknowledged with NATS stopped: {got:?}"
                );
            } else {
                writing.abort();
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owner_is_replaced_and_no_acknowledged_message_is_lost() {
    let scene = Scene::new();
    within(
        150,
        "a_killed_owner_is_replaced_and_no_acknowledged_message_is_lost",
        async {
            let started = Instant::now();
            let nats = NatsCluster::start(3, scene.path()).await;
            let mut nodes = start_nodes(3, &nats, scene.path(), 3).await;
            eprintln!(
                "cluster_nodes: 3 nats-servers and 3 nodes up in {:?}",
                started.elapsed()
            );
            let tenant = "acme";
            let shard = shard_of(tenant, SHARDS);
            let http = http_client(Duration::from_secs(10));
            let alice = register(&http, &nodes[0].base(), tenant, "alice").await;
            let bob = register(&http, &nodes[1].base(), tenant, "bob_1").await;
            befriend(&http, &nodes[2].base(), &alice, &bob).await;

            let acks: Acks = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let bases = nodes.iter().map(Node::base).collect();
            let sender = tokio::spawn(send_until_stopped(
                bases,
                alice.clone(),
                bob.id,
                acks.clone(),
                stop.clone(),
            ));
            let count = |acks: &Acks| acks.lock().unwrap().len();
            wait_acks(&acks, &sender, 15, 20).await;

            // kill -9 the owner of the tenant's shard.
            let all: Vec<&Node> = nodes.iter().collect();
            let (first, _) = wait_owner(&all, shard, 10).await;
            let first = position(&nodes, &first);
            // The shard's standby keeps its copy up with the log as messages are acknowledged.
            let (standby, at) = wait_standby(&all, shard, 1, 10).await;
            wait_acks(&acks, &sender, count(&acks) + 5, 20).await;
            let (again, later) = wait_standby(&all, shard, at + 1, 10).await;
            assert_eq!(again, standby, "the standby changed with no node gone");
            eprintln!("cluster_nodes: {standby} follows shard {shard}: its copy at {at}, then {later}");
            let follower = &nodes[position(&nodes, &standby)];
            let gauge = format!("parlor_cluster_standby_position{{shard=\"{shard}\"}}");
            let shown = common::metric_at(&http, &follower.base(), &gauge).await;
            assert!(shown >= later as f64, "{gauge} {shown}, below {later}");
            assert_ne!(standby, nodes[first].name, "the owner is not its own standby");
            let before_kill = count(&acks);
            let killed_at = Instant::now();
            nodes[first].kill9().await;
            eprintln!(
                "cluster_nodes: killed {} (owner of shard {shard}) after {before_kill} acknowledgements",
                nodes[first].name
            );
            // A request through a surviving node meanwhile waits for the new owner: the edge
            // looks the route up again, and refuses only once its connect timeout has passed.
            let via = nodes.iter().find(|n| !n.dead).unwrap().base();
            let asked = Instant::now();
            let during = answer(http.post(format!("{via}/api/loginChat")).form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("app_id", tenant),
            ]))
            .await;
            let waited = asked.elapsed();
            eprintln!("cluster_nodes: a login sent at the kill answered after {waited:?}: {during:?}");
            match &during {
                Ok((StatusCode::OK, body)) => assert_eq!(body["data"]["id"], alice.id, "{body}"),
                other => assert!(
                    waited >= Duration::from_millis(CONNECT_TIMEOUT_MS),
                    "expected the login through {via} during the takeover to wait for the new owner \
                     ({CONNECT_TIMEOUT_MS} ms at most) rather than be refused at once; after {waited:?}: \
                     {other:?}"
                ),
            }
            let others: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let (second, _) = wait_owner(&others, shard, 20).await;
            let takeover = killed_at.elapsed();
            let second = position(&nodes, &second);
            eprintln!(
                "cluster_nodes: {} serves shard {shard} {takeover:?} after the kill",
                nodes[second].name
            );
            assert_eq!(nodes[second].name, standby, "the standby takes the shard over");
            wait_acks(&acks, &sender, count(&acks) + 10, 20).await;

            // Pause the new owner for three leases.
            let third = (0..nodes.len()).find(|&i| i != first && i != second).unwrap();
            let before_stop = count(&acks);
            let stopped_at = Instant::now();
            nodes[second].sigstop();
            let pause = Duration::from_millis(3 * LEASE_MS);
            let mut retaken = None;
            while stopped_at.elapsed() < pause {
                if retaken.is_none() && nodes[third].owns(shard).await {
                    retaken = Some(stopped_at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            nodes[second].sigcont();
            let during_stop = count(&acks) - before_stop;
            eprintln!(
            "cluster_nodes: {} paused {pause:?}: {} served shard {shard} after {retaken:?}, {during_stop} \
             acknowledgements meanwhile",
            nodes[second].name, nodes[third].name
        );
            let retaken = retaken.unwrap_or_else(|| {
                panic!(
                    "expected {} to take shard {shard} over while its owner {} was stopped for {pause:?} \
                 (lease {LEASE_MS} ms)",
                    nodes[third].name, nodes[second].name
                )
            });
            let live: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let owners = wait_owned(&live, SHARDS).await;
            eprintln!("cluster_nodes: after SIGCONT, shard owners {owners:?}");
            wait_acks(&acks, &sender, count(&acks) + 15, 20).await;
            stop.store(true, Ordering::SeqCst);
            let failures = sender.await.expect("the sender ran to the end");
            let acks = std::mem::take(&mut *acks.lock().unwrap());

            // Every acknowledged cid once, with its ack's seq; seqs 1..=head; the same through
            // every live node.
            let mut seen = Vec::new();
            for node in nodes.iter().filter(|n| !n.dead) {
                seen.push((
                    node.name.clone(),
                    history(&http, &node.base(), &alice.token, bob.id).await,
                ));
            }
            for (name, got) in &seen[1..] {
                assert!(
                    got == &seen[0].1,
                    "expected the history through {name} to be the one through {} ({} vs {} messages, \
                 heads {} vs {})",
                    seen[0].0,
                    got.0.len(),
                    seen[0].1 .0.len(),
                    got.1,
                    seen[0].1 .1
                );
            }
            let (list, head) = &seen[0].1;
            let mut seqs: Vec<u64> = list.iter().filter_map(|m| m["seq"].as_u64()).collect();
            seqs.sort_unstable();
            let want: Vec<u64> = (1..=*head).collect();
            let mut by_cid: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
            for m in list {
                let cid = m["cid"].as_str().unwrap_or("");
                by_cid
                    .entry(cid)
                    .or_default()
                    .push((m["seq"].as_u64().unwrap_or(0), m["id"].as_str().unwrap_or("")));
            }
            let duplicates: usize = by_cid.values().map(|v| v.len() - 1).sum();
            let mut lost = Vec::new();
            let mut wrong = Vec::new();
            for a in &acks {
                match by_cid.get(a.cid.as_str()).map(Vec::as_slice) {
                    None => lost.push(a.cid.clone()),
                    Some([(seq, id)]) if *seq == a.seq && *id == a.id => {}
                    Some(got) => wrong.push(format!(
                        "{} acked as seq {} id {}, stored {got:?}",
                        a.cid, a.seq, a.id
                    )),
                }
            }
            let unacked: Vec<&str> = by_cid
                .keys()
                .copied()
                .filter(|c| !acks.iter().any(|a| a.cid == *c))
                .collect();

            let retries: u32 = acks.iter().map(|a| a.tries - 1).sum();
            let retried = acks.iter().filter(|a| a.tries > 1).count();
            let slowest = acks.iter().map(|a| a.acked - a.sent).max().unwrap_or_default();
            let mut stall = Duration::ZERO;
            for pair in acks.windows(2) {
                stall = stall.max(pair[1].acked - pair[0].acked);
            }
            // The first message sent after `t`: how long until the cluster took sends again.
            let after = |t: Instant| acks.iter().find(|a| a.sent >= t).map(|a| a.acked - t);
            let stopped_owns = nodes[second].owns(shard).await;
            eprintln!(
                "cluster_nodes: {} acknowledged, head {head}, {} in history, {duplicates} duplicates; \
                 {retries} retries over {retried} messages; failures by kind {failures:?}",
                acks.len(),
                list.len()
            );
            eprintln!(
                "cluster_nodes: longest stall between acks {stall:?}, slowest message {slowest:?}; \
                 whole test {:?}",
                started.elapsed()
            );
            eprintln!(
                "cluster_nodes: kill -9: new owner after {takeover:?}, the first message sent after the \
                 kill acked after {:?}",
                after(killed_at)
            );
            eprintln!(
                "cluster_nodes: SIGSTOP: new owner after {retaken:?}, the first message sent after the \
                 stop acked after {:?}; afterwards the paused node {} serves shard {shard}: {stopped_owns}",
                after(stopped_at),
                nodes[second].name
            );

            assert_eq!(
                seqs, want,
                "expected the conversation's seqs to be 1..={head} with no gap or repeat"
            );
            assert_eq!(duplicates, 0, "expected every cid stored once: {by_cid:?}");
            assert!(
                lost.is_empty(),
                "expected every acknowledged cid in history; missing {lost:?}"
            );
            assert!(
                wrong.is_empty(),
                "expected each cid stored with its ack's seq and id: {wrong:?}"
            );
            assert!(
            unacked.is_empty(),
            "expected only acknowledged cids in history (the sender moves on only after an ack): {unacked:?}"
        );
            assert!(
                acks.len() >= 40,
                "expected at least 40 acknowledgements, got {}",
                acks.len()
            );
            // Acknowledged in order: one message at a time, each after the previous one's ack.
            for pair in acks.windows(2) {
                assert!(
                    pair[1].seq > pair[0].seq,
                    "expected seqs to grow with the acks: {} seq {} then {} seq {}",
                    pair[0].cid,
                    pair[0].seq,
                    pair[1].cid,
                    pair[1].seq
                );
            }

            // The killed node comes back. Snapshots every second truncated the shard's log
            // past its copy while it was away: it loads the newest snapshot, replays the log
            // after it, and serves the shard again (it ranks first for it) with the same
            // history.
            let name = nodes[first].name.clone();
            let log = scene.path().join(format!("{name}.log"));
            let from = std::fs::metadata(&log).map_or(0, |m| m.len());
            nodes[first] = Node::start(&name, first, &nats.urls(), scene.path(), SHARDS, 3, Vec::new()).await;
            nodes[first].wait_ready().await;
            let live: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let owners = wait_owned(&live, SHARDS).await;
            assert_eq!(owners[shard as usize], name, "{owners:?}");
            let back = history(&http, &nodes[first].base(), &alice.token, bob.id).await;
            assert!(
                back == seen[0].1,
                "expected the history served by the restarted {name} to be the one before ({} vs {} \
                 messages)",
                back.0.len(),
                seen[0].1 .0.len()
            );
            let restarted = log_since(&log, from);
            assert!(
                restarted.contains("loading the shard's snapshot"),
                "expected {name} to load shard {shard}'s snapshot (its copy was behind the log's \
                 start); its log: {restarted}"
            );
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// A run through an owner's death, a NATS server's death and a paused owner

/// Members of the group: its owner and 19 friends.
const GROUP_SIZE: usize = 20;
/// How long the senders send.
const RUN: Duration = Duration::from_secs(30);
/// Each sender's pause between two acknowledged messages.
const PACE: Duration = Duration::from_millis(50);
/// A member's socket silent this long is asked a `ping`...
const PING_AFTER: Duration = Duration::from_millis(1500);
/// ...and given up this long (the owner behind it stopped serving without closing it).
const GIVE_UP_AFTER: Duration = Duration::from_millis(3500);
/// A member's final drain ends after this long without a frame.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What one user's WebSockets received over the whole test.
#[derive(Default)]
struct Inbox {
    /// Per conversation, how many times each seq arrived (live or replayed).
    got: HashMap<String, BTreeMap<u64, u32>>,
    /// Sockets opened (each one's `connected` frame received).
    connects: u32,
    /// Sockets that ended while the test wanted them open, by why.
    drops: BTreeMap<String, u32>,
    /// Upgrades that failed (node dead, paused, no owner of the shard known, ...).
    refused: u32,
    /// Each socket opened, in order.
    sockets: Vec<Socket>,
}

/// One socket of a member, for the report of what it missed.
struct Socket {
    /// The node it was opened through.
    addr: String,
    /// When its `connected` frame arrived, and when it ended (ms since the epoch).
    opened: u64,
    ended: u64,
    /// Why it ended.
    why: String,
    /// The seqs it received, per conversation, in arrival order.
    got: BTreeMap<String, Vec<u64>>,
}

/// Now, ms since the epoch (to compare with messages' `create_time` and the logs' times).
fn epoch_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `ms` since the epoch as the logs' UTC time of day, `HH:MM:SS.mmm`.
fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// `seqs` as sorted ranges (`1-5,7,9-12`), each seq once.
fn ranges(seqs: &[u64]) -> String {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    out.join(",")
}

impl Inbox {
    /// Its sockets, one a line: node, lifetime, why it ended, what it received of `conv`.
    fn sockets_of(&self, conv: &str) -> String {
        self.sockets
            .iter()
            .map(|s| {
                let got = s.got.get(conv).map(Vec::as_slice).unwrap_or_default();
                format!(
                    "  through {} {}..{} ({}): {conv} seqs [{}] in {} frames",
                    s.addr,
                    clock(s.opened),
                    clock(s.ended),
                    s.why,
                    ranges(got),
                    got.len()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads the socket `ws`, opened through `addr`, with [`pump`], recording it in `inbox`.
async fn pump_socket(
    mut ws: WsStream,
    addr: &str,
    inbox: &Mutex<Inbox>,
    how: &Pump<'_>,
) -> Result<(), String> {
    let index = {
        let mut inbox = inbox.lock().unwrap();
        inbox.connects += 1;
        inbox.sockets.push(Socket {
            addr: addr.to_owned(),
            opened: epoch_ms(),
            ended: 0,
            why: String::new(),
            got: BTreeMap::new(),
        });
        inbox.sockets.len() - 1
    };
    let ended = pump(&mut ws, inbox, index, how).await;
    let mut inbox = inbox.lock().unwrap();
    let socket = &mut inbox.sockets[index];
    socket.ended = epoch_ms();
    socket.why = match &ended {
        Ok(()) => "closed by the test".into(),
        Err(why) => why.clone(),
    };
    ended
}

type Inboxes = Vec<Arc<Mutex<Inbox>>>;

/// A `?ack=manual` WebSocket for `token` through `addr` once its `connected` frame arrived,
/// or why not (3 s at most for the upgrade, 3 s for the frame).
async fn ws_manual(addr: &str, token: &str) -> Result<WsStream, String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{addr}/ws?token={token}&ack=manual");
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "upgrade: no answer within 3 s".to_owned())?
        .map_err(|e| format!("upgrade: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("no connected frame within 3 s".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                let frame: Value = serde_json::from_str(&t).map_err(|e| format!("{e}: {t}"))?;
                if frame["type"] == "connected" {
                    return Ok(ws);
                }
                return Err(format!("expected a connected frame first, got {frame}"));
            }
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(None) => return Err("ended".into()),
        }
    }
}

/// How [`pump`] reads a socket.
enum Pump<'a> {
    /// Until `stop` is set; a silent socket is pinged, then given up.
    Run(&'a AtomicBool),
    /// Until nothing arrives for this long.
    Drain(Duration),
}

/// Reads `ws`: records each message frame (`singleChat`, its conversation and seq) in `inbox`
/// and acknowledges it (`{"type":"ack","conversation","seq"}`: in `ack=manual` only these
/// move the user's delivered cursor, so what is not acknowledged here is replayed on the
/// next connect). `Ok` when `how` says to stop (the socket closed), else why it ended.
async fn pump(ws: &mut WsStream, inbox: &Mutex<Inbox>, socket: usize, how: &Pump<'_>) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut last = Instant::now();
    let mut pinged = false;
    loop {
        let silence = last.elapsed();
        match how {
            Pump::Run(stop) if stop.load(Ordering::SeqCst) => break,
            Pump::Drain(quiet) if silence >= *quiet => break,
            Pump::Run(_) if silence >= GIVE_UP_AFTER => {
                return Err(format!("silent ({silence:?} without a frame, a ping unanswered)"))
            }
            Pump::Run(_) if silence >= PING_AFTER && !pinged => {
                pinged = true;
                let ping = json!({"type": "ping"}).to_string();
                ws.send(Message::text(ping))
                    .await
                    .map_err(|e| format!("write: {e}"))?;
            }
            _ => {}
        }
        let frame = match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Err(_) => continue,
            Ok(None) => return Err("ended".into()),
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(format!("closed {}", c.map(|c| u16::from(c.code)).unwrap_or(0)))
            }
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
        };
        last = Instant::now();
        pinged = false;
        let frame: Value = serde_json::from_str(&frame).map_err(|e| format!("{e}: {frame}"))?;
        if frame["type"] != "singleChat" {
            continue;
        }
        let (Some(conv), Some(seq)) = (
            frame["data"]["conversation"].as_str(),
            frame["data"]["seq"].as_u64(),
        ) else {
            return Err(format!("expected a conversation and a seq in {frame}"));
        };
        {
            let mut inbox = inbox.lock().unwrap();
            *inbox
                .got
                .entry(conv.to_owned())
                .or_default()
                .entry(seq)
                .or_default() += 1;
            let got = &mut inbox.sockets[socket].got;
            got.entry(conv.to_owned()).or_default().push(seq);
        }
        let ack = json!({"type": "ack", "conversation": conv, "seq": seq}).to_string();
        ws.send(Message::text(ack))
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Keeps a socket of `token` open until `stop`, reading it with [`pump`]: first through
/// node `first` of `addrs`, and whenever it ends or cannot be opened, through the next one
/// (100 ms to 1 s apart).
async fn member_run(
    addrs: Vec<String>,
    first: usize,
    token: String,
    inbox: Arc<Mutex<Inbox>>,
    stop: Arc<AtomicBool>,
) {
    let mut next = first;
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::SeqCst) {
        let addr = &addrs[next % addrs.len()];
        match ws_manual(addr, &token).await {
            Ok(ws) => {
                backoff = Duration::from_millis(100);
                match pump_socket(ws, addr, &inbox, &Pump::Run(&stop)).await {
                    Ok(()) => break,
                    Err(why) => {
                        let kind = why.split([' ', ':']).next().unwrap_or("").to_owned();
                        *inbox.lock().unwrap().drops.entry(kind).or_default() += 1;
                    }
                }
            }
            Err(_) => {
                inbox.lock().unwrap().refused += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        next += 1;
    }
}

/// Opens one more socket of `token` (through node `first` of `addrs`, else the next ones)
/// and reads what it is replayed until [`DRAIN_QUIET`]; opened again if it ends before.
/// Fails after 20 s.
async fn member_drain(
    addrs: Vec<String>,
    first: usize,
    token: String,
    inbox: Arc<Mutex<Inbox>>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    for next in first.. {
        if Instant::now() >= deadline {
            break;
        }
        let addr = &addrs[next % addrs.len()];
        match ws_manual(addr, &token).await {
            Ok(ws) => match pump_socket(ws, addr, &inbox, &Pump::Drain(DRAIN_QUIET)).await {
                Ok(()) => return Ok(()),
                Err(why) => last = format!("the socket through {addr}: {why}"),
            },
            Err(why) => last = format!("through {addr}: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("expected a socket drained within 20 s, last {last}"))
}

/// Creates a group of `owner` with `members` through `base`; answers its id.
async fn create_group(http: &reqwest::Client, base: &str, owner: &User, members: &[User]) -> u64 {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("userIds[]", id.as_str())).collect();
    let what = format!("create a group of {} with {} members", owner.username, ids.len());
    let got = settled(&what, || {
        http.post(format!("{base}/api/chat/group/create"))
            .header("token", &owner.token)
            .form(&form)
    })
    .await;
    assert_eq!(ok_data(&what, &got), "ok", "{what}: expected data ok");
    let what = format!("{}'s groups", owner.username);
    let got = settled(&what, || {
        http.get(format!("{base}/api/chat/grouplist/1"))
            .header("token", &owner.token)
    })
    .await;
    let list = ok_data(&what, &got);
    list[0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: expected the new group first, got {list}"))
}

/// The key of the direct conversation of `a` and `b`.
fn direct_key(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

/// Checks one conversation, read through every live node (`seen`: each node's name and
/// answer): the same answer through each; seqs 1..=head with no gap or repeat; every
/// acknowledged cid (`acked`) stored once with its ack's seq and id; no cid stored that was
/// not acknowledged. Adds what is wrong to `problems`; answers what it holds.
fn check_conversation(
    what: &str,
    seen: &[(String, (Vec<Value>, u64))],
    acked: &[&Acked],
    problems: &mut Vec<String>,
) -> Written {
    for (name, got) in &seen[1..] {
        if got != &seen[0].1 {
            problems.push(format!(
                "{what}: expected the history through {name} to be the one through {}; got {} \
                 messages, head {} vs {} messages, head {}",
                seen[0].0,
                got.0.len(),
                got.1,
                seen[0].1 .0.len(),
                seen[0].1 .1
            ));
        }
    }
    let (list, head) = &seen[0].1;
    let mut seqs: Vec<u64> = list.iter().filter_map(|m| m["seq"].as_u64()).collect();
    seqs.sort_unstable();
    if seqs != (1..=*head).collect::<Vec<u64>>() {
        let mut gaps = Vec::new();
        let mut repeats = Vec::new();
        for s in 1..=*head {
            match seqs.iter().filter(|&&x| x == s).count() {
                0 => gaps.push(s),
                1 => {}
                _ => repeats.push(s),
            }
        }
        problems.push(format!(
            "{what}: expected seqs 1..={head} once each; {} listed, missing {gaps:?}, repeated \
             {repeats:?}",
            seqs.len()
        ));
    }
    let mut by_cid: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for m in list {
        if let Some(cid) = m["cid"].as_str() {
            let stored = (m["seq"].as_u64().unwrap_or(0), m["id"].as_str().unwrap_or(""));
            by_cid.entry(cid).or_default().push(stored);
        }
    }
    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    for a in acked {
        match by_cid.get(a.cid.as_str()).map(Vec::as_slice) {
            None => lost.push(format!("{} (seq {})", a.cid, a.seq)),
            Some([(seq, id)]) if *seq == a.seq && *id == a.id => {}
            Some(got) => wrong.push(format!(
                "{} acked as seq {} id {}, stored {got:?}",
                a.cid, a.seq, a.id
            )),
        }
    }
    if !lost.is_empty() {
        problems.push(format!(
            "{what}: expected every acknowledged cid in history; {} of {} missing: {lost:?}",
            lost.len(),
            acked.len()
        ));
    }
    if !wrong.is_empty() {
        problems.push(format!(
            "{what}: expected each acknowledged cid stored once with its ack's seq and id: {wrong:?}"
        ));
    }
    let unacked: Vec<&str> = by_cid
        .keys()
        .copied()
        .filter(|c| !acked.iter().any(|a| a.cid == *c))
        .collect();
    if !unacked.is_empty() {
        problems.push(format!(
            "{what}: expected only acknowledged cids in history (a sender moves on only after \
             an ack); also stored {unacked:?}"
        ));
    }
    let authors = list
        .iter()
        .filter_map(|m| {
            let seq = m["seq"].as_u64()?;
            Some((
                seq,
                (m["from_id"].as_u64()?, m["create_time"].as_u64().unwrap_or(0)),
            ))
        })
        .collect();
    Written { head: *head, authors }
}

/// A conversation as its history holds it.
struct Written {
    head: u64,
    /// Each seq's sender and `create_time` (ms since the epoch).
    authors: BTreeMap<u64, (u64, u64)>,
}

/// Checks that `user` received every seq 1..=head of `conv` that another user wrote (its
/// own messages count as delivered to it the moment they are stored, `Tx::pass_own_message`:
/// they are pushed to its sockets then, not replayed later); answers the duplicates
/// (receipts beyond the first).
fn check_received(
    user: &User,
    inbox: &Inbox,
    conv: &str,
    written: &Written,
    problems: &mut Vec<String>,
) -> u64 {
    let (name, head) = (&user.username, written.head);
    let empty = BTreeMap::new();
    let got = inbox.got.get(conv).unwrap_or(&empty);
    let missing: Vec<u64> = (1..=head)
        .filter(|s| written.authors.get(s).map(|a| a.0) != Some(user.id) && !got.contains_key(s))
        .collect();
    if !missing.is_empty() {
        let created: Vec<String> = missing
            .iter()
            .take(10)
            .map(|s| format!("{s} at {}", clock(written.authors.get(s).map_or(0, |a| a.1))))
            .collect();
        problems.push(format!(
            "{name}: expected every seq 1..={head} of {conv} that another user wrote received \
             (live or replayed); missing {} of them: {missing:?} (created {created:?}); its \
             sockets:\n{}",
            missing.len(),
            inbox.sockets_of(conv)
        ));
    }
    let beyond: Vec<u64> = got.keys().copied().filter(|&s| s > head).collect();
    if !beyond.is_empty() {
        problems.push(format!(
            "{name}: expected no seq of {conv} past its head {head}; received {beyond:?}"
        ));
    }
    got.values().map(|&n| u64::from(n) - 1).sum()
}

/// The longest time between two consecutive acknowledgements of `acks` (all senders'
/// together).
fn longest_stall(acks: &[&Acked]) -> Duration {
    let mut times: Vec<Instant> = acks.iter().map(|a| a.acked).collect();
    times.sort_unstable();
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// What the log at `path` holds past its first `from` bytes.
fn log_since(path: &Path, from: u64) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&log[(from as usize).min(log.len())..]).into_owned()
}

/// Sleeps until `at` (at once when it is past).
async fn until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_through_owner_death_nats_death_and_a_paused_owner_loses_nothing() {
    let scene = Scene::new();
    within(
        240,
        "a_run_through_owner_death_nats_death_and_a_paused_owner_loses_nothing",
        async {
            let started = Instant::now();
            let mut nats = NatsCluster::start(3, scene.path()).await;
            let mut nodes = start_nodes(3, &nats, scene.path(), 3).await;
            eprintln!(
                "cluster_nodes: 3 nats-servers and 3 nodes up in {:?}",
                started.elapsed()
            );
            let (ta, tb) = two_tenants_on_different_shards();
            let (shard_a, shard_b) = (shard_of(ta, SHARDS), shard_of(tb, SHARDS));
            let http = http_client(Duration::from_secs(10));
            let bases: Vec<String> = nodes.iter().map(Node::base).collect();
            let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();

            // Tenant A: a group of 20 (the owner and 19 friends of the owner); tenant B: two
            // friends.
            let owner = register(&http, &bases[0], ta, "owner1").await;
            let names: Vec<String> = (1..GROUP_SIZE).map(|i| format!("member{i:02}")).collect();
            let members: Vec<User> = futures_util::future::join_all(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| register(&http, &bases[i % 3], ta, name)),
            )
            .await;
            futures_util::future::join_all(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| befriend(&http, &bases[i % 3], &owner, m)),
            )
            .await;
            let gid = create_group(&http, &bases[1], &owner, &members).await;
            let b_from = register(&http, &bases[2], tb, "alice").await;
            let b_to = register(&http, &bases[0], tb, "bob_1").await;
            befriend(&http, &bases[1], &b_from, &b_to).await;
            let group_conv = format!("g:{gid}");
            eprintln!(
                "cluster_nodes: tenant {ta} on shard {shard_a} (group {gid} of {GROUP_SIZE}), \
                 tenant {tb} on shard {shard_b}; set up after {:?}",
                started.elapsed()
            );

            // Every member's socket, spread over the nodes, read and acknowledged until the
            // end of the run.
            let users: Vec<User> = std::iter::once(owner.clone())
                .chain(members.iter().cloned())
                .collect();
            let inboxes: Inboxes = users.iter().map(|_| Arc::default()).collect();
            let members_stop = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = users
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    tokio::spawn(member_run(
                        addrs.clone(),
                        i,
                        u.token.clone(),
                        inboxes[i].clone(),
                        members_stop.clone(),
                    ))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(20);
            while inboxes.iter().any(|i| i.lock().unwrap().connects == 0) {
                let waiting = inboxes.iter().filter(|i| i.lock().unwrap().connects == 0).count();
                assert!(
                    Instant::now() < deadline,
                    "expected every member's socket open within 20 s; {waiting} are not"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }

            // Three senders of A, each in turn a group message and a direct one to the owner;
            // one sender of B.
            let senders_stop = Arc::new(AtomicBool::new(false));
            let mut senders = Vec::new();
            for m in &members[..3] {
                let acks: Acks = Arc::default();
                let targets = vec![("group", gid), ("single", owner.id)];
                let task = tokio::spawn(send_in_turn(
                    bases.clone(),
                    m.clone(),
                    targets,
                    format!("{}-", m.username),
                    PACE,
                    acks.clone(),
                    senders_stop.clone(),
                ));
                senders.push((m.clone(), acks, task));
            }
            let b_acks: Acks = Arc::default();
            let b_task = tokio::spawn(send_in_turn(
                bases.clone(),
                b_from.clone(),
                vec![("single", b_to.id)],
                "b-".into(),
                PACE,
                b_acks.clone(),
                senders_stop.clone(),
            ));
            let t0 = Instant::now();
            let a_count = |senders: &[(User, Acks, _)]| -> usize {
                senders.iter().map(|(_, a, _)| a.lock().unwrap().len()).sum()
            };

            // ⅓: kill -9 the owner of A's shard.
            until(t0 + RUN / 3).await;
            let all: Vec<&Node> = nodes.iter().collect();
            let (first, _) = wait_owner(&all, shard_a, 10).await;
            let first = position(&nodes, &first);
            let killed_at = Instant::now();
            let run_start = epoch_ms() - killed_at.duration_since(t0).as_millis() as u64;
            let mut clocks = vec![("run", clock(run_start)), ("kill -9", clock(epoch_ms()))];
            nodes[first].kill9().await;
            let acks_at_kill = a_count(&senders);
            eprintln!(
                "cluster_nodes: {:?} into the run, killed {} (owner of shard {shard_a}) after \
                 {acks_at_kill} acknowledgements in {ta}",
                killed_at - t0,
                nodes[first].name
            );
            let others: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let (second, _) = wait_owner(&others, shard_a, 20).await;
            let kill_takeover = killed_at.elapsed();
            eprintln!("cluster_nodes: {second} serves shard {shard_a} {kill_takeover:?} after the kill");

            // ½: kill the nats-server leading A's shard's log.
            until(t0 + RUN / 2).await;
            let stream_a = format!("PARLOR_LOG_{shard_a}");
            let leader = nats.stream_leader(&stream_a).await;
            let victim = leader.unwrap_or(0);
            let nats_killed_at = Instant::now();
            clocks.push(("nats kill", clock(epoch_ms())));
            nats.kill(victim).await;
            let survivors: Vec<String> = (0..3)
                .filter(|&i| i != victim)
                .map(|i| nats.urls()[i].clone())
                .collect();
            let watched = vec![
                "KV_parlor_nodes".to_owned(),
                "KV_parlor_shards".to_owned(),
                stream_a.clone(),
            ];
            let nats_back = tokio::spawn(leaders_back(survivors, watched));
            eprintln!(
                "cluster_nodes: {:?} into the run, killed nats-server s{} ({})",
                nats_killed_at - t0,
                victim + 1,
                if leader.is_some() {
                    format!("the leader of {stream_a}")
                } else {
                    format!("no leader of {stream_a} was named")
                }
            );

            // ⅔: SIGSTOP the owner of A's shard for three leases; on a busy host, only once
            // A's log and the lease and ownership buckets have leaders again (a takeover
            // renews a lease, swaps the owner and appends to the log: while any of them elects
            // its leader no node can take the shard, however long the owner is stopped).
            until(t0 + RUN * 2 / 3).await;
            let nats_back = nats_back.await.expect("the watch of NATS ran to the end");
            if let Some((stream, _)) = nats_back.iter().find(|(_, back)| back.is_none()) {
                panic!("expected {stream} to have a leader again within 30 s of the nats-server kill");
            }
            let live: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let (paused, _) = wait_owner(&live, shard_a, 10).await;
            let paused = position(&nodes, &paused);
            let third = (0..nodes.len())
                .find(|&i| i != paused && !nodes[i].dead)
                .expect("another live node");
            let paused_log = scene.path().join(format!("{}.log", nodes[paused].name));
            let third_log = scene.path().join(format!("{}.log", nodes[third].name));
            let log_len = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let (paused_from, third_from) = (log_len(&paused_log), log_len(&third_log));
            let stopped_at = Instant::now();
            clocks.push(("SIGSTOP", clock(epoch_ms())));
            nodes[paused].sigstop();
            let pause = Duration::from_millis(3 * LEASE_MS);
            let mut pause_takeover = None;
            while stopped_at.elapsed() < pause {
                if pause_takeover.is_none() && nodes[third].owns(shard_a).await {
                    pause_takeover = Some(stopped_at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            nodes[paused].sigcont();
            clocks.push(("SIGCONT", clock(epoch_ms())));
            eprintln!(
                "cluster_nodes: {:?} into the run, {} (owner of shard {shard_a}) paused {pause:?}: \
                 {} served it after {pause_takeover:?}",
                stopped_at - t0,
                nodes[paused].name,
                nodes[third].name
            );

            // The end of the run (sends go on for a while after the pause, however late it was).
            until((t0 + RUN).max(Instant::now() + RUN / 6)).await;
            senders_stop.store(true, Ordering::SeqCst);
            clocks.push(("end", clock(epoch_ms())));
            let mut failures: BTreeMap<String, u32> = BTreeMap::new();
            let mut a_acks: Vec<(User, Vec<Acked>)> = Vec::new();
            for (user, acks, task) in senders {
                for (kind, n) in task.await.expect("a sender of A ran to the end") {
                    *failures.entry(kind).or_default() += n;
                }
                a_acks.push((user, std::mem::take(&mut *acks.lock().unwrap())));
            }
            let b_failures = b_task.await.expect("the sender of B ran to the end");
            let b_acks = std::mem::take(&mut *b_acks.lock().unwrap());
            members_stop.store(true, Ordering::SeqCst);
            for reader in readers {
                reader.await.expect("a member's reader ran to the end");
            }
            let run_ended = Instant::now();

            // NATS whole again, the cluster settled, then every member once more: the replay
            // of whatever it did not acknowledge.
            nats.restart(victim).await;
            let live: Vec<&Node> = nodes.iter().filter(|n| !n.dead).collect();
            let owners = wait_owned(&live, SHARDS).await;
            eprintln!(
                "cluster_nodes: s{} restarted and shards settled {:?} after the run: owners {owners:?}",
                victim + 1,
                run_ended.elapsed()
            );
            let live_addrs: Vec<String> = live.iter().map(|n| n.addr()).collect();
            let drains: Vec<_> = users
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    tokio::spawn(member_drain(
                        live_addrs.clone(),
                        i,
                        u.token.clone(),
                        inboxes[i].clone(),
                    ))
                })
                .collect();
            let mut problems = Vec::new();
            for (u, drain) in users.iter().zip(drains) {
                if let Err(e) = drain.await.expect("a drain ran to the end") {
                    problems.push(format!("{}: {e}", u.username));
                }
            }

            // Histories through every live node.
            let mut written = BTreeMap::new();
            let mut seen = Vec::new();
            for node in &live {
                let got = history_of(&http, &node.base(), &owner.token, ("group", gid)).await;
                seen.push((node.name.clone(), got));
            }
            let group_acked: Vec<&Acked> = a_acks
                .iter()
                .flat_map(|(_, acks)| acks.iter())
                .filter(|a| a.conv == group_conv)
                .collect();
            let group = check_conversation(&format!("{ta} group {gid}"), &seen, &group_acked, &mut problems);
            let group_head = group.head;
            written.insert(group_conv.clone(), group);
            let mut direct = Vec::new();
            for (user, acks) in &a_acks {
                let conv = direct_key(user.id, owner.id);
                let mut seen = Vec::new();
                for node in &live {
                    let got = history(&http, &node.base(), &user.token, owner.id).await;
                    seen.push((node.name.clone(), got));
                }
                let acked: Vec<&Acked> = acks.iter().filter(|a| a.conv == conv).collect();
                let what = format!("{ta} {} to owner1 ({conv})", user.username);
                written.insert(
                    conv.clone(),
                    check_conversation(&what, &seen, &acked, &mut problems),
                );
                direct.push((user.clone(), conv));
            }
            let mut seen = Vec::new();
            for node in &live {
                let got = history(&http, &node.base(), &b_from.token, b_to.id).await;
                seen.push((node.name.clone(), got));
            }
            let b_acked: Vec<&Acked> = b_acks.iter().collect();
            let b_head =
                check_conversation(&format!("{tb} alice to bob_1"), &seen, &b_acked, &mut problems).head;
            if b_head != b_acks.len() as u64 {
                problems.push(format!(
                    "{tb}: expected the head {b_head} to be the {} acknowledged messages",
                    b_acks.len()
                ));
            }

            // What every member received: each group seq, and both parties each direct seq.
            let mut duplicates = 0;
            let mut inbox_of = HashMap::new();
            for (u, inbox) in users.iter().zip(&inboxes) {
                inbox_of.insert(u.id, inbox.lock().unwrap());
            }
            for u in &users {
                let inbox = &inbox_of[&u.id];
                duplicates += check_received(u, inbox, &group_conv, &written[&group_conv], &mut problems);
            }
            for (user, conv) in &direct {
                for party in [user, &owner] {
                    let inbox = &inbox_of[&party.id];
                    duplicates += check_received(party, inbox, conv, &written[conv], &mut problems);
                }
            }
            let connects: u32 = inbox_of.values().map(|i| i.connects).sum();
            let refused: u32 = inbox_of.values().map(|i| i.refused).sum();
            let mut drops: BTreeMap<String, u32> = BTreeMap::new();
            for inbox in inbox_of.values() {
                for (k, n) in &inbox.drops {
                    *drops.entry(k.clone()).or_default() += n;
                }
            }
            drop(inbox_of);

            if pause_takeover.is_none() {
                let since = log_since(&third_log, third_from);
                let warnings: Vec<&str> = since.lines().filter(|l| l.contains("WARN")).take(8).collect();
                problems.push(format!(
                    "expected {} to take shard {shard_a} over while its owner {} was stopped for \
                     {pause:?} (lease {LEASE_MS} ms); it did not. Its warnings since: {warnings:#?}",
                    nodes[third].name, nodes[paused].name
                ));
            }
            // The paused node, resumed: a late write of its is refused (fenced), or it stops
            // serving at once, having seen its lease run out or the directory name the new
            // owner before any write came (the history checks above show that nothing of it
            // landed either way).
            let late = log_since(&paused_log, paused_from);
            let fenced_lines: Vec<&str> = late
                .lines()
                .filter(|l| {
                    l.contains("fenced: ")
                        || l.contains("fenced=true")
                        || l.contains("shard moved")
                        || l.contains("the lease ran out: no longer serving")
                        || l.contains("no longer the shard's owner: stopping it")
                })
                .collect();
            if pause_takeover.is_some() && fenced_lines.is_empty() {
                let shard_lines: Vec<&str> = late.lines().filter(|l| l.contains("shard")).take(10).collect();
                problems.push(format!(
                    "{}: expected its log to show a late write refused (\"fenced\" or \"shard \
                     moved\"), its lease seen run out or the new owner seen, after it was paused \
                     while it owned shard {shard_a}; its lines about shards since: \
                     {shard_lines:#?}",
                    nodes[paused].name
                ));
            }

            // Every nats-server's own copy of each shard's log holds as many records as the
            // leader's. (`/jsz` answers each server's local replica; the JetStream API's
            // stream info is answered by the stream's leader whichever server is asked, so
            // it gives the leader's count.)
            let urls = nats.urls();
            let deadline = Instant::now() + Duration::from_secs(15);
            let streams = loop {
                let leader = leader_log_counts(&urls[0], SHARDS).await;
                let mut local = Vec::new();
                for i in 0..urls.len() {
                    local.push(nats.local_log_counts(i).await);
                }
                let same = match &leader {
                    Ok(l) => l.len() == SHARDS as usize && local.iter().all(|c| c.as_ref() == Ok(l)),
                    Err(_) => false,
                };
                if same {
                    break leader.unwrap_or_default();
                }
                if Instant::now() >= deadline {
                    problems.push(format!(
                        "expected every nats-server to hold as many records of each PARLOR_LOG \
                         stream as its leader within 15 s of s{}'s restart; leader's view {leader:?}, \
                         each server's own {local:?}",
                        victim + 1
                    ));
                    break BTreeMap::new();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };

            // The report.
            let all_a: Vec<&Acked> = a_acks.iter().flat_map(|(_, a)| a.iter()).collect();
            let retries: u32 = all_a.iter().map(|a| a.tries - 1).sum();
            let retried = all_a.iter().filter(|a| a.tries > 1).count();
            let slowest = all_a.iter().map(|a| a.acked - a.sent).max().unwrap_or_default();
            let after = |t: Instant| all_a.iter().filter(|a| a.sent >= t).map(|a| a.acked - t).min();
            eprintln!(
                "cluster_nodes: {ta}: {} acknowledged ({} group messages, head {group_head}; {} \
                 direct), {retries} retries over {retried} messages, failures by kind {failures:?}",
                all_a.len(),
                group_acked.len(),
                all_a.len() - group_acked.len()
            );
            eprintln!(
                "cluster_nodes: {tb}: {} acknowledged, head {b_head}, failures by kind {b_failures:?}",
                b_acks.len()
            );
            eprintln!(
                "cluster_nodes: sockets: {connects} opened, {refused} upgrades refused, ended by \
                 {drops:?}; {duplicates} duplicate frames received"
            );
            eprintln!(
                "cluster_nodes: longest stall between acks in {ta} {:?} ({tb} {:?}), slowest \
                 message {slowest:?}",
                longest_stall(&all_a),
                longest_stall(&b_acked)
            );
            eprintln!(
                "cluster_nodes: kill -9: new owner after {kill_takeover:?}, the first message sent \
                 after it acked after {:?}",
                after(killed_at)
            );
            eprintln!(
                "cluster_nodes: nats-server kill: streams answering with a leader again after \
                 {nats_back:?}; the first message sent after it acked after {:?}",
                after(nats_killed_at)
            );
            eprintln!(
                "cluster_nodes: SIGSTOP: new owner after {pause_takeover:?}, the first message sent \
                 after it acked after {:?}; the paused node's late writes: {fenced_lines:?}",
                after(stopped_at)
            );
            eprintln!("cluster_nodes: events (UTC) {clocks:?}");
            eprintln!(
                "cluster_nodes: log records per stream {streams:?}; whole test {:?}",
                started.elapsed()
            );

            assert!(
                problems.is_empty(),
                "expected nothing acknowledged lost, no gap, every member everything; found {} \
                 problems:\n{}",
                problems.len(),
                problems.join("\n")
            );
            assert!(
                group_acked.len() >= 50 && b_acks.len() >= 50,
                "expected at least 50 acknowledged group messages and 50 in {tb}, got {} and {}",
                group_acked.len(),
                b_acks.len()
            );
        },
    )
    .await;
}
