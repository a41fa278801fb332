//! The load generator's fan-out mode, end to end at a tiny size, against each of its targets:
//! a real Parlor (the test harness), the real `baseline` binary and a real mosquitto broker
//! started on a free port with its own configuration. Each run must exit 0, deliver every
//! message to every member but its sender and end with its `RESULT` line; times are never
//! checked. `--cleanup` leaves the server with the users it had, and refuses to start when it
//! could not clean up.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

use crate::admin::{admin, ok, with_admin, SECRET};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

const MEMBERS: u64 = 5;
const SENDERS: u64 = 2;
const MESSAGES: u64 = 20;

/// Runs `loadgen fanout` against `target` at `url` and returns the parsed `RESULT` line,
/// after checking the exit code and that the table was printed.
async fn fanout(target: &str, url: &str) -> Value {
    fanout_with(target, url, &[]).await.0
}

/// Runs `loadgen fanout` with `extra` arguments and the tiny run's sizes (the admin secret
/// only from the arguments); returns its output.
async fn loadgen_fanout(target: &str, url: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fanout", "--target", target, "--url", url, "--summary-json"])
        .args(["--members", &MEMBERS.to_string()])
        .args(["--senders", &SENDERS.to_string()])
        .args(["--messages", &MESSAGES.to_string()])
        .args(["--timeout", "30"])
        .args(extra)
        .env_remove("PARLOR_ADMIN__SECRET")
        .kill_on_drop(true)
        .output()
        .await
        .expect("loadgen runs")
}

/// [`fanout`] with `extra` arguments; also returns what the generator printed on stderr.
async fn fanout_with(target: &str, url: &str, extra: &[&str]) -> (Value, String) {
    let out = loadgen_fanout(target, url, extra).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "loadgen --target {target} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.starts_with("machine: "), "{stdout}");
    assert!(stdout.contains("== fanout"), "no table:\n{stdout}");
    assert!(stdout.contains("deliveries/s"), "no table:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let json = last
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("the last line is not the RESULT line:\n{stdout}"));
    let result: Value = serde_json::from_str(json).expect("RESULT is JSON");
    assert_eq!(result["target"], target);
    (result, stderr)
}

/// Checks the counts of a clean tiny run.
fn assert_every_delivery(result: &Value) {
    let due = MESSAGES * (MEMBERS - 1);
    assert_eq!(result["sent"], MESSAGES, "{result}");
    assert_eq!(result["acked"], MESSAGES, "{result}");
    assert_eq!(result["expected"], due, "{result}");
    assert_eq!(result["delivered"], due, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["duplicates"], 0, "{result}");
    assert_eq!(result["out_of_order"], 0, "{result}");
    assert_eq!(result["errors"], 0, "{result}");
    assert_eq!(result["clean"], true, "{result}");
    assert_eq!(result["clients"], MEMBERS, "{result}");
    assert_eq!(result["senders"], SENDERS, "{result}");
    for key in ["deliveries_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(result[key].is_number(), "{key} missing: {result}");
    }
    // The server runs on this machine: its CPU time over the run is read from /proc (in
    // clock ticks, so a tiny run may round to nothing), per message and per delivery.
    for key in [
        "server_cpu_s",
        "server_cpu_us_per_message",
        "server_cpu_us_per_delivery",
    ] {
        let v = result[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {result}"));
        assert!(v >= 0.0 && v.is_finite(), "{key}: {result}");
    }
}

/// How long a child may take to say it is ready.
const READY_BOUND: Duration = Duration::from_secs(30);

/// Reads a child's output line by line until one contains `marker`; returns that line, or
/// panics with what came before when the output ends (or stays silent for [`READY_BOUND`]).
async fn line_with<R: AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
    marker: &str,
    what: &str,
) -> String {
    let mut seen = String::new();
    loop {
        let next = tokio::time::timeout(READY_BOUND, lines.next_line()).await;
        match next {
            Ok(Ok(Some(line))) if line.contains(marker) => return line,
            Ok(Ok(Some(line))) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Ok(Ok(None)) => panic!("{what} ended without printing {marker:?}:\n{seen}"),
            Ok(Err(e)) => panic!("reading the output of {what}: {e}"),
            Err(_) => panic!("{what} did not print {marker:?} within {READY_BOUND:?}:\n{seen}"),
        }
    }
}

#[actix_web::test]
async fn fanout_against_parlor() {
    let (server, _dir) = TestServer::start().await;
    let result = fanout("parlor", &server.base).await;
    assert_every_delivery(&result);
    server.stop().await;
}

/// The number of users of the default tenant, through the admin face.
async fn users(server: &TestServer) -> u64 {
    let list = ok(&admin(server, "/admin/user/list", &json!({"count": 1})).await);
    list["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total: {list}"))
}

/// `--cleanup` deletes every user the run registered, and so the group its owner created,
/// through the signed admin face: afterwards the tenant has the users it had before.
#[actix_web::test]
async fn fanout_cleanup_removes_what_the_run_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), with_admin).await;
    let admin_url = format!("http://{}", server.admin.expect("an admin listener"));
    let before = users(&server).await;
    let args = ["--cleanup", "--admin-url", &admin_url, "--admin-secret", SECRET];
    let (result, stderr) = fanout_with("parlor", &server.base, &args).await;
    assert_every_delivery(&result);
    assert!(
        stderr.contains(&format!("cleanup: deleted {MEMBERS} users (1 groups dissolved)")),
        "{stderr}"
    );
    assert_eq!(users(&server).await, before);
    server.stop().await;
}

/// `--cleanup` that could not clean up refuses to start: a wrong admin secret, no secret, or
/// a target that is not Parlor. Nothing is created on the server.
#[actix_web::test]
async fn fanout_cleanup_is_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), with_admin).await;
    let admin_url = format!("http://{}", server.admin.expect("an admin listener"));
    let before = users(&server).await;
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "parlor",
            vec![
                "--cleanup",
                "--admin-url",
                &admin_url,
                "--admin-secret",
                "wrong-secret",
            ],
            "--cleanup needs the admin face",
        ),
        (
            "parlor",
            vec!["--cleanup", "--admin-url", &admin_url],
            "needs the admin secret",
        ),
        (
            "mqtt",
            vec!["--cleanup", "--admin-secret", SECRET],
            "--cleanup applies to --target parlor only",
        ),
    ];
    for (target, extra, why) in cases {
        let out = loadgen_fanout(target, &server.base, &extra).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(why), "{extra:?}: {stderr}");
    }
    assert_eq!(users(&server).await, before, "a refused run registered users");
    server.stop().await;
}

#[actix_web::test]
async fn fanout_against_baseline() {
    let mut baseline: Child = Command::new(env!("CARGO_BIN_EXE_baseline"))
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("baseline starts");
    let mut stdout = BufReader::new(baseline.stdout.take().expect("piped stdout")).lines();
    let line = line_with(&mut stdout, "listening on ", "baseline").await;
    let addr = line.rsplit(' ').next().expect("an address");
    let result = fanout("baseline", &format!("http://{addr}")).await;
    assert_every_delivery(&result);
    baseline.kill().await.expect("baseline stops");
}

#[actix_web::test]
async fn fanout_against_mosquitto() {
    let binary = common::system_program("mosquitto", "mosquitto");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             log_type information\n"
        ),
    )
    .unwrap();
    let mut broker = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto starts");
    let stderr = broker.stderr.take().expect("piped stderr");
    // mosquitto logs `running` (type information) once its listeners are open.
    let mut lines = BufReader::new(stderr).lines();
    line_with(&mut lines, " running", "mosquitto").await;
    // Keep reading its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let result = fanout("mqtt", &format!("mqtt://127.0.0.1:{port}")).await;
    assert_every_delivery(&result);
    broker.kill().await.expect("mosquitto stops");
}
