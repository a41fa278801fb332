//! `GET /metrics`: the Prometheus text format, counters that follow what the server did, the
//! process figures, and the listener that serves them (client, admin only, or off).

use crate::common;

use std::collections::HashMap;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

/// Reads `/metrics` and returns every sample as `name{labels}` → value, after checking that
/// each line is a comment or a well-formed sample.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    scrape_at(server, &server.url("/metrics")).await
}

/// [`scrape`] at `url`.
async fn scrape_at(server: &TestServer, url: &str) -> HashMap<String, f64> {
    let resp = server.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = resp.text().await.unwrap();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {:?}", samples.keys()))
}

#[actix_web::test]
async fn counters_follow_sessions_messages_and_requests() {
    let (server, _dir) = TestServer::start().await;
    let before = scrape(&server).await;
    assert_eq!(get(&before, "parlor_sessions_open"), 0.0);
    assert_eq!(get(&before, "parlor_messages_accepted_total"), 0.0);
    assert_eq!(get(&before, "parlor_recent_cids"), 0.0);

    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let mut wa = server.ws(&alice.token).await;
    let mut wb = server.ws(&bob.token).await;
    wa.send_msg("m1", bob.id, "one").await;
    wa.next_of_type("ack").await;
    wb.next_of_type("singleChat").await;
    wb.close().await;
    // Bob's socket is gone once a second message finds no session for him.
    let carol = server.register_open("carol").await;
    server.send_rest(&alice, &carol, "to an offline user").await;

    let after = scrape(&server).await;
    assert_eq!(get(&after, "parlor_messages_accepted_total"), 2.0);
    assert_eq!(
        get(
            &after,
            "parlor_tenant_messages_accepted_total{tenant=\"default\"}"
        ),
        2.0
    );
    assert!(get(&after, "parlor_deliveries_pushed_total") >= 1.0);
    assert!(get(&after, "parlor_deliveries_deferred_total") >= 1.0);
    assert_eq!(get(&after, "parlor_sessions_open"), 1.0);
    assert_eq!(
        get(&after, "parlor_tenant_sessions_open{tenant=\"default\"}"),
        1.0
    );
    assert_eq!(get(&after, "parlor_sessions_cut_total"), 0.0);
    let commits = get(&after, "parlor_writer_commits_total");
    assert!(commits >= 2.0, "{commits}");
    assert_eq!(get(&after, "parlor_writer_batch_size_count"), commits);
    assert_eq!(
        get(&after, "parlor_writer_commit_seconds_bucket{le=\"+Inf\"}"),
        commits
    );
    // The WebSocket send gave a cid ("m1"); the REST send none.
    assert_eq!(get(&after, "parlor_recent_cids"), 1.0);
    assert!(get(&after, "parlor_db_file_bytes") > 0.0);
    assert!(get(&after, "process_resident_memory_bytes") > 1e6);
    assert!(get(&after, "process_open_fds") > 0.0);

    let reg = "parlor_http_request_duration_seconds_count{face=\"uniapp\",method=\"POST\",route=\"/api/regChat\",status=\"200\"}";
    assert_eq!(get(&after, reg), 3.0);
    let inf = "parlor_http_request_duration_seconds_bucket{face=\"uniapp\",method=\"POST\",route=\"/api/regChat\",status=\"200\",le=\"+Inf\"}";
    assert_eq!(get(&after, inf), 3.0);
    wa.close().await;
    server.stop().await;
}

#[actix_web::test]
async fn failures_and_unknown_paths_are_counted_without_growing_the_series() {
    let (server, _dir) = TestServer::start().await;
    for path in ["/no/such/a", "/no/such/b", "/random/c"] {
        let got = server.get(path, None).await;
        assert_eq!(
            got,
            (
                StatusCode::NOT_FOUND,
                json!({"msg": "fail", "data": "no such route"})
            )
        );
    }
    let resp = server
        .http
        .post(server.url("/api/chat/searchUser"))
        .form(&[("keyword", "x")])
        .send()
        .await
        .unwrap();
    let got = TestServer::finish(resp).await;
    assert_eq!(
        got,
        (
            StatusCode::UNAUTHORIZED,
            json!({"msg": "fail", "data": "token is required"})
        )
    );
    let samples = scrape(&server).await;
    let unmatched = "parlor_http_request_duration_seconds_count{face=\"server\",method=\"GET\",route=\"(unmatched)\",status=\"404\"}";
    assert_eq!(get(&samples, unmatched), 3.0);
    assert!(!samples.keys().any(|k| k.contains("/no/such")));
    let refused = "parlor_http_request_duration_seconds_count{face=\"uniapp\",method=\"POST\",route=\"/api/chat/searchUser\",status=\"401\"}";
    assert_eq!(get(&samples, refused), 1.0);
    server.stop().await;
}

#[actix_web::test]
async fn the_endpoint_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.metrics.listener = parlor::config::MetricsListener::Off;
        c.admin.bind = "127.0.0.1:0".into();
        c.admin.secret = "metrics-admin-secret".into();
    })
    .await;
    let got = server.get("/metrics", None).await;
    assert_eq!(
        got,
        (
            StatusCode::NOT_FOUND,
            json!({"msg": "fail", "data": "no such route"})
        )
    );
    let admin = server.admin.unwrap();
    let resp = server
        .http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn the_metrics_can_be_served_on_the_admin_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.metrics.listener = parlor::config::MetricsListener::Admin;
        c.admin.bind = "127.0.0.1:0".into();
        c.admin.secret = "metrics-admin-secret".into();
    })
    .await;
    // The public listener does not show them.
    let got = server.get("/metrics", None).await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{:?}", got.1);
    // The admin listener does, unsigned, with the client listener's requests counted.
    let admin = server.admin.unwrap();
    let samples = scrape_at(&server, &format!("http://{admin}/metrics")).await;
    assert_eq!(get(&samples, "parlor_sessions_open"), 0.0);
    let refused = "parlor_http_request_duration_seconds_count{face=\"server\",method=\"GET\",route=\"/metrics\",status=\"404\"}";
    assert_eq!(get(&samples, refused), 1.0);
    server.stop().await;
}

#[actix_web::test]
async fn process_figures_and_the_build_are_reported() {
    let (server, _dir) = TestServer::start().await;
    let before = scrape(&server).await;
    let cpu = get(&before, "process_cpu_seconds_total");
    assert!(cpu > 0.0, "{cpu}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = get(&before, "process_start_time_seconds");
    // This test process started before the scrape, and not days ago.
    assert!(
        started <= now && started > now - 86_400.0,
        "started {started}, now {now}"
    );
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let build = format!(
        "parlor_build_info{{version=\"{}\",profile=\"{profile}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(get(&before, &build), 1.0);
    // CPU time only grows: spend some and look again.
    let spin = std::time::Instant::now();
    let mut x = 0u64;
    while spin.elapsed() < std::time::Duration::from_millis(50) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    let after = scrape(&server).await;
    assert!(get(&after, "process_cpu_seconds_total") > cpu);
    assert_eq!(get(&after, "process_start_time_seconds"), started);
    server.stop().await;
}
