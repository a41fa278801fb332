//! Smoke runs of the load generator's `connect`, `idle`, `offline` and `direct` scenarios at
//! tiny sizes against a real server: each must finish with exit code 0 and print its report
//! with the counts the run implies. No figure of speed is checked here; BENCHMARKS.md holds
//! those.

use crate::common;

use std::process::Output;

use common::TestServer;

/// Runs `loadgen <args> --url <server>` to completion (blocking, off the server's threads).
async fn loadgen(server: &TestServer, args: &[&str]) -> (Output, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(args)
        .args(["--url", &server.base, "--fsync-probes", "5", "--probe-dir"])
        .arg(&server.dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("loadgen runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen {args:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (out, stdout)
}

/// The value of a report row `  <name>   <value>`.
fn row<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{report}"))
}

fn assert_preamble(report: &str) {
    assert!(report.starts_with("machine: nproc="), "{report}");
    assert!(report.contains("\nserver: pid="), "{report}");
    assert!(report.contains("\nfsync probe: 5 x 4 KiB"), "{report}");
}

#[actix_web::test]
async fn connect_opens_every_socket_and_reports_handshakes() {
    let (server, _dir) = TestServer::start().await;
    let (_, report) = loadgen(&server, &["connect", "--clients", "20"]).await;
    assert_preamble(&report);
    assert!(report.contains("== connect, 20 clients =="), "{report}");
    assert_eq!(row(&report, "connected"), "20 of 20");
    assert_eq!(row(&report, "failed to connect"), "0");
    assert!(
        row(&report, "handshake + JWT -> connected").ends_with("(n=20)"),
        "{report}"
    );
    assert!(row(&report, "server sessions open").starts_with("0 before, 20 after the ramp"));
    server.stop().await;
}

#[actix_web::test]
async fn idle_holds_sockets_and_reports_memory_per_session() {
    let (server, _dir) = TestServer::start().await;
    let (_, report) = loadgen(&server, &["idle", "--clients", "20", "--hold", "1"]).await;
    assert_eq!(row(&report, "connected"), "20 of 20");
    assert_eq!(row(&report, "dropped by the server"), "0");
    assert_eq!(
        row(&report, "server sessions open"),
        "0 before, 20 after the ramp, 20 at the end"
    );
    assert!(
        row(&report, "server RSS per session").ends_with("bytes at the end"),
        "{report}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn offline_drain_delivers_every_queued_message() {
    let (server, _dir) = TestServer::start().await;
    let (_, report) = loadgen(&server, &["offline", "--messages", "150", "--repeat", "2"]).await;
    assert!(
        report.contains("== offline drain, 150 messages, 2 rounds =="),
        "{report}"
    );
    assert_eq!(row(&report, "messages expected"), "300");
    assert_eq!(row(&report, "received"), "300");
    assert_eq!(row(&report, "lost"), "0");
    assert_eq!(row(&report, "duplicates"), "0");
    assert!(
        row(&report, "login -> last message").ends_with("(n=2)"),
        "{report}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn direct_open_loop_counts_every_message() {
    let (server, _dir) = TestServer::start().await;
    let args = ["direct", "--clients", "10", "--messages", "200", "--rate", "400"];
    let (_, report) = loadgen(&server, &args).await;
    assert!(
        report.contains("== direct, open loop at 400 msg/s =="),
        "{report}"
    );
    assert_eq!(row(&report, "delivered"), "200");
    assert_eq!(row(&report, "lost (sent - delivered)"), "0");
    assert_eq!(row(&report, "acks"), "200");
    server.stop().await;
}

#[actix_web::test]
async fn a_member_that_stops_reading_gets_every_message_after_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    // A small send buffer and session mailbox, so that the member that does not read is cut
    // early.
    let server = TestServer::start_in(dir.path(), |c| {
        c.ws.mailbox = 16;
        c.server.socket_send_buffer = 16_384;
        c.limits.rate_per_sec = 0;
    })
    .await;
    let args = [
        "fanout",
        "--members",
        "4",
        "--senders",
        "1",
        "--messages",
        "3000",
        "--slow",
        "1",
    ];
    let (_, report) = loadgen(&server, &args).await;
    assert!(report.contains("1 not reading"), "{report}");
    assert_eq!(
        row(&report, "deliveries expected"),
        "6000 (3000 sent x 2 receivers)"
    );
    assert_eq!(row(&report, "lost (expected - deliv.)"), "0");
    assert_eq!(row(&report, "cut by the server"), "1 of 1", "{report}");
    assert!(
        row(&report, "slow member 0").contains("slow consumer"),
        "{report}"
    );
    assert!(row(&report, "slow member 0").ends_with("missing 0"), "{report}");
    server.stop().await;
}
