//! Prometheus metrics at `GET /metrics`, in the text exposition format (version 0.0.4),
//! on the listener `metrics.listener` names (the client one, the admin one, or neither).
//!
//! Everything here is read from counters the parts keep anyway: the Router's
//! [`RouterStats`](parlor_actors::router::RouterStats) (sessions, messages, deliveries,
//! per tenant), the Writer's [`WriterStats`](parlor_storage::WriterStats) (batch sizes and
//! commit latency as histograms) and this module's HTTP histograms. Recording costs relaxed
//! atomic adds; nothing is recorded per message besides the Router's counters. The HTTP
//! histograms are kept per (face, method, route pattern, status) in a sharded map: one lookup
//! per HTTP request, none on the WebSocket path. Process figures (resident memory, CPU time,
//! start time, open file descriptors) and the database file's size are read from the system
//! when scraped; `parlor_build_info` names the version.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use dashmap::DashMap;
use parlor_actors::router::TenantCounts;
use parlor_storage::{Histogram, HistogramSnapshot};

use crate::config::MetricsListener;
use crate::error::ApiError;
use crate::state::AppState;

/// Upper bounds of the HTTP latency histogram, seconds.
static HTTP_SECONDS_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One series of the HTTP histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HttpKey {
    face: &'static str,
    method: String,
    route: String,
    status: u16,
}

/// The HTTP request histograms of one listener.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: DashMap<HttpKey, Arc<Histogram>>,
}

impl HttpMetrics {
    fn record(&self, key: HttpKey, seconds: f64) {
        if let Some(h) = self.series.get(&key) {
            h.record(seconds);
            return;
        }
        self.series
            .entry(key)
            .or_insert_with(|| Arc::new(Histogram::new(&HTTP_SECONDS_BOUNDS)))
            .record(seconds);
    }
}

/// The face a route belongs to, from its pattern.
fn face_of(route: &str) -> &'static str {
    const FACES: [(&str, &str); 9] = [
        ("/admin/", "admin"),
        ("/api/chat/conversations", "native"),
        ("/api/chat/history", "native"),
        ("/api/chat/", "uniapp"),
        ("/api/{app_id}/", "chat21"),
        ("/user/", "chatroom"),
        ("/contacts/", "chatroom"),
        ("/conversation/", "chatroom"),
        ("/message/", "chatroom"),
    ];
    if route.starts_with("/api/regChat")
        || route.starts_with("/api/loginChat")
        || route.starts_with("/api/visitor")
        || route.starts_with("/api/userinfo")
    {
        return "uniapp";
    }
    FACES
        .iter()
        .find(|(prefix, _)| route.starts_with(prefix))
        .map_or("server", |(_, face)| face)
}

/// Middleware timing every request of a listener into `HttpMetrics` (an app-data item).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let access = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.log.access);
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if access {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_owned());
        tracing::info!(
            target: "parlor::access",
            face = face_of(&route),
            method = %method,
            route = %route,
            status = res.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    if let Some(metrics) = metrics {
        // Unmatched paths share one series, so a scan of random URLs cannot grow the map.
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_owned());
        let key = HttpKey {
            face: face_of(&route),
            method,
            route,
            status: res.status().as_u16(),
        };
        metrics.record(key, started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// `GET /metrics` on the client listener (`metrics.listener = "client"`, else 404).
pub async fn serve(state: web::Data<AppState>, http: Option<web::Data<HttpMetrics>>) -> HttpResponse {
    serve_on(MetricsListener::Client, state, http)
}

/// `GET /metrics` on the admin listener (`metrics.listener = "admin"`, else 404); unsigned,
/// so that a scraper needs no admin secret: the admin listener is a private one.
pub async fn serve_admin(state: web::Data<AppState>, http: Option<web::Data<HttpMetrics>>) -> HttpResponse {
    if state.config.metrics.listener != MetricsListener::Admin {
        // The admin listener's own 404.
        return crate::faces::admin::not_found().await;
    }
    serve_on(MetricsListener::Admin, state, http)
}

fn serve_on(
    listener: MetricsListener,
    state: web::Data<AppState>,
    http: Option<web::Data<HttpMetrics>>,
) -> HttpResponse {
    if state.config.metrics.listener != listener {
        return ApiError::NotFound("no such route".into()).to_response();
    }
    let mut out = String::with_capacity(16 * 1024);
    render_core(&state, &mut out);
    if let Some(http) = http {
        render_http(&http, &mut out);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

/// The core metrics of several shards served by one node (cluster mode), each sample
/// labelled with its `shard`: one family per metric, its samples from every shard.
pub fn render_shards(shards: &[(u32, &AppState)], out: &mut String) {
    // Family name -> its HELP and TYPE lines and its samples, in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (String, String)> = Default::default();
    for (shard, state) in shards {
        let mut text = String::with_capacity(8 * 1024);
        render_core(state, &mut text);
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                let name = rest.split_whitespace().nth(1).unwrap_or_default().to_owned();
                family.clone_from(&name);
                let entry = families.entry(name.clone()).or_insert_with(|| {
                    order.push(name);
                    Default::default()
                });
                if !entry.0.lines().any(|l| l == line) {
                    entry.0.push_str(line);
                    entry.0.push('\n');
                }
                continue;
            }
            let labelled = match line.split_once('{') {
                Some((name, rest)) => format!("{name}{{shard=\"{shard}\",{rest}"),
                None => match line.split_once(' ') {
                    Some((name, value)) => format!("{name}{{shard=\"{shard}\"}} {value}"),
                    None => continue,
                },
            };
            let entry = families.entry(family.clone()).or_insert_with(|| {
                order.push(family.clone());
                Default::default()
            });
            entry.1.push_str(&labelled);
            entry.1.push('\n');
        }
    }
    for name in order {
        if let Some((headers, samples)) = families.remove(&name) {
            out.push_str(&headers);
            out.push_str(&samples);
        }
    }
}

/// Writes a counter or gauge family of one sample (for the node's own metrics).
pub fn write_one(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    one(out, name, kind, help, value);
}

/// Writes a family with one sample per `(labels, value)` (for the node's own metrics); the
/// family's header even when it has no sample.
pub fn write_labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, impl std::fmt::Display)>,
) {
    header(out, name, kind, help);
    for (labels, value) in samples {
        sample(out, name, &labels, value);
    }
}

/// Writes a histogram family of one series (for the node's own metrics).
pub fn write_histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    header(out, name, "histogram", help);
    histogram(out, name, "", h);
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    sample(out, name, "", value);
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, n) in &h.buckets {
        sample(
            out,
            &format!("{name}_bucket"),
            &format!("{labels}{sep}le=\"{bound}\""),
            n,
        );
    }
    sample(
        out,
        &format!("{name}_bucket"),
        &format!("{labels}{sep}le=\"+Inf\""),
        h.count,
    );
    sample(out, &format!("{name}_sum"), labels, h.sum);
    sample(out, &format!("{name}_count"), labels, h.count);
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_core(state: &AppState, out: &mut String) {
    let r = &state.router_stats;
    let counters: [(&str, &str, &str, u64); 10] = [
        (
            "parlor_sessions_open",
            "gauge",
            "WebSocket sessions registered with the Router.",
            r.sessions_online.load(Relaxed),
        ),
        (
            "parlor_messages_accepted_total",
            "counter",
            "Messages committed to a timeline (direct, group, notices); a retried send counts once.",
            r.messages_accepted.load(Relaxed),
        ),
        (
            "parlor_deliveries_pushed_total",
            "counter",
            "Timeline frames handed to a recipient's session.",
            r.deliveries.load(Relaxed),
        ),
        (
            "parlor_deliveries_deferred_total",
            "counter",
            "Timeline frames left pending for a recipient with no session taking them.",
            r.deferred.load(Relaxed),
        ),
        (
            "parlor_sessions_cut_total",
            "counter",
            "Sessions closed for not keeping up (slow consumers).",
            r.sessions_cut.load(Relaxed),
        ),
        (
            "parlor_offline_replayed_total",
            "counter",
            "Messages replayed to sessions from their offline queues.",
            r.replayed.load(Relaxed),
        ),
        (
            "parlor_groups_running",
            "gauge",
            "Group actors in memory; one stops after router.group_idle_secs without work.",
            r.groups_running.load(Relaxed),
        ),
        (
            "parlor_groups_started_total",
            "counter",
            "Group actors started, first starts and restarts on demand alike.",
            r.groups_started.load(Relaxed),
        ),
        (
            "parlor_presence_changes_total",
            "counter",
            "Users who came online or went offline (after the grace), as told to their audience.",
            r.presence_changes.load(Relaxed),
        ),
        (
            "parlor_presence_frames_total",
            "counter",
            "presence frames handed to sessions.",
            r.presence_frames.load(Relaxed),
        ),
    ];
    let h = &state.webhooks;
    let hooks: [(&str, &str, &str, u64); 6] = [
        (
            "parlor_webhook_deliveries_total",
            "counter",
            "Webhook events an endpoint answered with a 2xx.",
            h.delivered.load(Relaxed),
        ),
        (
            "parlor_webhook_failures_total",
            "counter",
            "Webhook delivery tries that failed (error, timeout, status other than 2xx).",
            h.failed.load(Relaxed),
        ),
        (
            "parlor_webhook_retries_total",
            "counter",
            "Failed webhook tries after which the event was scheduled again.",
            h.retries.load(Relaxed),
        ),
        (
            "parlor_webhook_dead_letters_total",
            "counter",
            "Webhook events given up after webhooks.max_attempts failures.",
            h.dead.load(Relaxed),
        ),
        (
            "parlor_webhook_outbox_depth",
            "gauge",
            "Webhook events waiting in the outbox, as the delivery task last read it.",
            h.outbox_depth.load(Relaxed),
        ),
        (
            "parlor_webhook_dead_letters",
            "gauge",
            "Dead letters kept, as the delivery task last read them.",
            h.dead_letters.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in counters.into_iter().chain(hooks) {
        one(out, name, kind, help, value);
    }

    let tenants = r.tenants.lock().unwrap_or_else(|p| p.into_inner()).clone();
    type Read = fn(&TenantCounts) -> u64;
    let per_tenant: [(&str, &str, &str, Read); 2] = [
        (
            "parlor_tenant_sessions_open",
            "gauge",
            "WebSocket sessions per tenant.",
            |c| c.sessions_online.load(Relaxed),
        ),
        (
            "parlor_tenant_messages_accepted_total",
            "counter",
            "Messages committed to a timeline, per tenant.",
            |c| c.messages_accepted.load(Relaxed),
        ),
    ];
    for (name, kind, help, read) in per_tenant {
        header(out, name, kind, help);
        for (tenant, counts) in &tenants {
            sample(out, name, &format!("tenant=\"{}\"", label(tenant)), read(counts));
        }
    }

    let w = state.store.writer().stats();
    one(
        out,
        "parlor_writer_commits_total",
        "counter",
        "Write transactions the Writer committed.",
        w.commits.load(Relaxed),
    );
    one(
        out,
        "parlor_writer_failed_commits_total",
        "counter",
        "Write transactions that failed to begin or to commit (nothing of them was written).",
        w.failed_commits.load(Relaxed),
    );
    one(
        out,
        "parlor_storage_failing",
        "gauge",
        "1 while the last write transaction failed (writes are refused; /healthz answers 503).",
        u64::from(w.failing.load(Relaxed)),
    );
    one(
        out,
        "parlor_storage_reopens_total",
        "counter",
        "Times the database was opened again after failed writes, and writes resumed.",
        w.reopens.load(Relaxed),
    );
    one(
        out,
        "parlor_recent_cids",
        "gauge",
        "Client ids (cid) remembered within the dedup window (storage.dedup_window_secs).",
        w.recent_cids.load(Relaxed),
    );
    one(
        out,
        "parlor_writer_writes_total",
        "counter",
        "Writes the Writer applied.",
        w.writes.load(Relaxed),
    );
    header(
        out,
        "parlor_writer_batch_size",
        "histogram",
        "Writes per committed transaction.",
    );
    histogram(out, "parlor_writer_batch_size", "", &w.batch_size.snapshot());
    header(
        out,
        "parlor_writer_commit_seconds",
        "histogram",
        "Time from opening a batch's transaction to the end of its commit.",
    );
    histogram(
        out,
        "parlor_writer_commit_seconds",
        "",
        &w.commit_seconds.snapshot(),
    );

    let db_bytes = state.store.file_size(&state.config.storage.path);
    one(
        out,
        "parlor_db_file_bytes",
        "gauge",
        "Size of the redb file.",
        db_bytes,
    );
    if let Some(rss) = resident_bytes() {
        one(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the server process.",
            rss,
        );
    }
    if let Some(cpu) = cpu_seconds() {
        one(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the server process, seconds.",
            cpu,
        );
    }
    if let Some(start) = start_time_seconds() {
        one(
            out,
            "process_start_time_seconds",
            "gauge",
            "When the server process started, seconds since the epoch.",
            start,
        );
    }
    header(
        out,
        "parlor_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    sample(
        out,
        "parlor_build_info",
        &format!(
            "version=\"{}\",profile=\"{}\"",
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
        1,
    );
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        one(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors of the server process.",
            fds.count(),
        );
    }
}

/// User plus system CPU time this process has used, seconds (`getrusage`).
pub fn cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// When this process started, seconds since the epoch (Linux: its start in clock ticks
/// after boot, field 22 of `/proc/self/stat`, plus the boot time `btime` of `/proc/stat`).
pub fn start_time_seconds() -> Option<f64> {
    let ticks = proc_stat_ticks("self", &[22])?[0];
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks)
}

/// Fields of `/proc/<pid>/stat` (`pid` a number or `self`) that count clock ticks, by
/// their 1-based numbers in proc(5) (14 `utime`, 15 `stime`, 22 `starttime`), in seconds.
/// Shared with the load generator, which reads the server's CPU time so.
pub fn proc_stat_ticks(pid: &str, fields: &[usize]) -> Option<Vec<f64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may hold spaces: count after it, where
    // field 3 comes first.
    let after: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // SAFETY: sysconf only reads a system value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    fields
        .iter()
        .map(|n| Some(after.get(n.checked_sub(3)?)?.parse::<f64>().ok()? / hz as f64))
        .collect()
}

/// Resident set size of this process in bytes (Linux: `Rss` of `/proc/self/smaps_rollup`).
pub fn resident_bytes() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let kib: u64 = rollup
        .lines()
        .find(|l| l.starts_with("Rss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn render_http(http: &HttpMetrics, out: &mut String) {
    header(
        out,
        "parlor_http_request_duration_seconds",
        "histogram",
        "HTTP requests by face, method, route pattern and status, with their latency.",
    );
    let mut series: Vec<(HttpKey, HistogramSnapshot)> = http
        .series
        .iter()
        .map(|e| (e.key().clone(), e.value().snapshot()))
        .collect();
    series.sort_by(|a, b| {
        (a.0.face, &a.0.route, &a.0.method, a.0.status).cmp(&(b.0.face, &b.0.route, &b.0.method, b.0.status))
    });
    for (key, snap) in &series {
        let labels = format!(
            "face=\"{}\",method=\"{}\",route=\"{}\",status=\"{}\"",
            key.face,
            label(&key.method),
            label(&key.route),
            key.status
        );
        histogram(out, "parlor_http_request_duration_seconds", &labels, snap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_their_face() {
        assert_eq!(face_of("/api/loginChat"), "uniapp");
        assert_eq!(face_of("/api/chat/friend/list"), "uniapp");
        assert_eq!(face_of("/api/chat/history/{chat_type}/{id}"), "native");
        assert_eq!(face_of("/api/{app_id}/messages"), "chat21");
        assert_eq!(face_of("/contacts/add"), "chatroom");
        assert_eq!(face_of("/admin/user/get"), "admin");
        assert_eq!(face_of("/healthz"), "server");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
