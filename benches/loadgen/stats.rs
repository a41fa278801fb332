//! Counters, latency histograms and the final table.
//!
//! A message is due to `fan` receivers: one for a direct message, every member but the
//! sender in a group. With one receiver, deliveries are counted once per message index (a
//! bitset over `0..messages` tells a duplicate from a first delivery); with more, each
//! receiver tells its own duplicates apart and reports first deliveries only. Acks and
//! errors are counted as they come. Latencies are recorded in
//! microseconds into HdrHistograms (3 significant digits, up to 10 minutes); messages with an
//! index below the warm-up count are counted but not recorded. Histograms are sharded behind a
//! few mutexes so that receiver tasks on different worker threads rarely meet; the shards are
//! merged for the report.
//!
//! Two cheap views show *where* latency comes from: the progress line carries the largest
//! send→receive latency seen since the previous line (a stall shows as a spike in time), and
//! the report gives the spread of the per-sender mean latency (an unfair server shows as a few
//! senders far slower than the median).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::frames::Payload;

/// Largest recorded latency, microseconds (10 minutes); larger values saturate.
const MAX_US: u64 = 600_000_000;

/// The latency histograms of one shard.
pub struct Latencies {
    /// Intended send time → delivery at the peer (the headline figure).
    pub deliver: Histogram<u64>,
    /// Actual send time → delivery: the server's part, without the generator's lag.
    pub deliver_actual: Histogram<u64>,
    /// Intended send time → ack at the sender.
    pub ack: Histogram<u64>,
}

impl Latencies {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds");
        Latencies {
            deliver: h(),
            deliver_actual: h(),
            ack: h(),
        }
    }

    fn add(&mut self, other: &Latencies) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.deliver.add(&other.deliver);
        let _ = self.deliver_actual.add(&other.deliver_actual);
        let _ = self.ack.add(&other.ack);
    }
}

fn micros(from_ns: u64, to_ns: u64) -> u64 {
    (to_ns.saturating_sub(from_ns) / 1_000).max(1)
}

/// Everything the tasks of one run count.
pub struct Stats {
    messages: u64,
    warmup: u64,
    /// Deliveries each message is due: 1 for a direct message, members − 1 in a group.
    fan: u64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Pushes whose `seq` was below an earlier push of the same conversation.
    pub out_of_order: AtomicU64,
    /// Sends the server answered with an `error` frame (they will not be delivered).
    pub refused: AtomicU64,
    pub senders_done: AtomicU64,
    last_delivery_ns: AtomicU64,
    last_send_ns: AtomicU64,
    errors: AtomicU64,
    /// Largest send→receive latency (µs) since the last progress line.
    interval_max_us: AtomicU64,
    /// Per sender: recorded send→receive latencies, sum (µs) and count.
    per_sender: Vec<[AtomicU64; 2]>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
    /// With one receiver per message: one bit per message index, set at its delivery.
    seen: Vec<AtomicU64>,
    shards: Vec<Mutex<Latencies>>,
}

impl Stats {
    /// Counters of a run where each message has one receiver; `senders` clients send.
    pub fn new(senders: usize, messages: u64, warmup: u64) -> Self {
        Self::with_fan(senders, messages, warmup, 1)
    }

    /// Counters of a run where each message is due to `fan` receivers, which report first
    /// deliveries only ([`Stats::first_delivery`]) when `fan > 1`.
    pub fn with_fan(senders: usize, messages: u64, warmup: u64, fan: u64) -> Self {
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get()) * 4;
        let seen_words = if fan == 1 { messages.div_ceil(64) } else { 0 };
        Stats {
            messages,
            warmup,
            fan,
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            senders_done: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            last_send_ns: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval_max_us: AtomicU64::new(0),
            per_sender: (0..senders).map(|_| Default::default()).collect(),
            error_kinds: Mutex::new(BTreeMap::new()),
            seen: (0..seen_words).map(|_| AtomicU64::new(0)).collect(),
            shards: (0..shards).map(|_| Mutex::new(Latencies::new())).collect(),
        }
    }

    fn shard(&self, client: usize) -> std::sync::MutexGuard<'_, Latencies> {
        let shard = &self.shards[client % self.shards.len()];
        shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one error of `kind` (a server error code or a local failure).
    pub fn error(&self, kind: &str) {
        self.errors.fetch_add(1, Relaxed);
        let mut kinds = self.error_kinds.lock().unwrap_or_else(|p| p.into_inner());
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// A message written to the socket at `now_ns`.
    pub fn sent(&self, now_ns: u64) {
        self.sent.fetch_add(1, Relaxed);
        self.last_send_ns.fetch_max(now_ns, Relaxed);
    }

    /// A message from `sender` pushed to `client` at `now_ns`, when each message has one
    /// receiver: a second delivery of the same index counts as a duplicate.
    pub fn delivery(&self, client: usize, sender: usize, p: Payload, now_ns: u64) {
        if p.index >= self.messages {
            return self.error("foreign message index");
        }
        let bit = 1u64 << (p.index % 64);
        let Some(word) = self.seen.get((p.index / 64) as usize) else {
            return self.error("delivery counted per index in a run with several receivers");
        };
        if word.fetch_or(bit, Relaxed) & bit != 0 {
            self.duplicates.fetch_add(1, Relaxed);
            return;
        }
        self.first_delivery(client, sender, p, now_ns);
    }

    /// The first delivery of a message from `sender` to `client` at `now_ns`; the caller
    /// made sure it is the first to this client and that the index is below `messages`.
    pub fn first_delivery(&self, client: usize, sender: usize, p: Payload, now_ns: u64) {
        self.delivered.fetch_add(1, Relaxed);
        self.last_delivery_ns.fetch_max(now_ns, Relaxed);
        let latency = micros(p.intended_ns, now_ns);
        self.interval_max_us.fetch_max(latency, Relaxed);
        if p.index >= self.warmup {
            if let Some([sum, count]) = self.per_sender.get(sender) {
                sum.fetch_add(latency, Relaxed);
                count.fetch_add(1, Relaxed);
            }
            let mut h = self.shard(client);
            h.deliver.saturating_record(latency);
            h.deliver_actual.saturating_record(micros(p.actual_ns, now_ns));
        }
    }

    /// An ack received by `client` at `now_ns`.
    pub fn ack(&self, client: usize, p: Payload, now_ns: u64) {
        self.acked.fetch_add(1, Relaxed);
        if p.index >= self.warmup {
            self.shard(client)
                .ack
                .saturating_record(micros(p.intended_ns, now_ns));
        }
    }

    /// Whether every sent message was answered (ack or refusal) and delivered to all its
    /// receivers or refused.
    pub fn settled(&self) -> bool {
        let sent = self.sent.load(Relaxed);
        let refused = self.refused.load(Relaxed);
        self.delivered.load(Relaxed) >= sent.saturating_sub(refused) * self.fan
            && self.acked.load(Relaxed) + refused >= sent
    }

    /// One progress line for stderr.
    pub fn progress(&self, elapsed: Duration) -> String {
        format!(
            "[{:>5.1}s] sent {} acked {} delivered {} errors {} max latency {}",
            elapsed.as_secs_f64(),
            self.sent.load(Relaxed),
            self.acked.load(Relaxed),
            self.delivered.load(Relaxed),
            self.errors(),
            match self.interval_max_us.swap(0, Relaxed) {
                0 => "- (no delivery)".to_owned(),
                us => format!("{} ms", ms(us)),
            }
        )
    }

    /// Deliveries the run owes once every message is sent.
    pub fn expected(&self) -> u64 {
        self.messages * self.fan
    }

    /// A fingerprint of the counters, to notice a run that stopped moving.
    pub fn activity(&self) -> [u64; 4] {
        [
            self.sent.load(Relaxed),
            self.acked.load(Relaxed),
            self.delivered.load(Relaxed),
            self.errors(),
        ]
    }

    /// Mean send→receive latency (µs) of each sender that had recorded messages, sorted.
    fn sender_means(&self) -> Vec<u64> {
        let mut means: Vec<u64> = self
            .per_sender
            .iter()
            .filter_map(|[sum, count]| {
                let n = count.load(Relaxed);
                (n > 0).then(|| sum.load(Relaxed) / n)
            })
            .collect();
        means.sort_unstable();
        means
    }

    fn merged(&self) -> Latencies {
        let mut all = Latencies::new();
        for shard in &self.shards {
            all.add(&shard.lock().unwrap_or_else(|p| p.into_inner()));
        }
        all
    }
}

/// What the final table is about.
pub struct RunInfo {
    pub mode: String,
    /// Connected users (one socket each).
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    pub messages: u64,
    pub warmup: u64,
    /// Send phase start on the shared clock.
    pub start_ns: u64,
    pub timed_out: bool,
    /// CPU seconds the server used from the start of the send phase to the last delivery
    /// (warm-up included), when it runs on this machine.
    pub server_cpu_s: Option<f64>,
    /// Rows of the mode's own, printed after the counters.
    pub extra: Vec<(&'static str, String)>,
}

/// The server's CPU time and what it comes to per message (direct) or per delivery.
fn server_cpu(info: &RunInfo, t: &Totals, fan: u64) -> String {
    let Some(cpu) = info.server_cpu_s else {
        return "unknown (the server is not on this machine)".into();
    };
    let per = |n: u64| if n == 0 { f64::NAN } else { cpu * 1e6 / n as f64 };
    if fan == 1 {
        format!("{cpu:.3} s, {:.1} µs per message", per(t.sent))
    } else {
        format!(
            "{cpu:.3} s, {:.2} µs per delivery ({:.1} µs per message sent)",
            per(t.delivered),
            per(t.sent)
        )
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1_000.0)
}

fn latency_row(name: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("  {name:<26} (no samples)");
    }
    format!(
        "  {name:<26} {:>10} {:>10} {:>10} {:>10}   (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// The counters at the end of a run.
struct Totals {
    sent: u64,
    acked: u64,
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    errors: u64,
    lost: u64,
    unsent: u64,
}

impl Totals {
    fn of(stats: &Stats, messages: u64) -> Self {
        let sent = stats.sent.load(Relaxed);
        let delivered = stats.delivered.load(Relaxed);
        let expected = sent * stats.fan;
        Totals {
            sent,
            acked: stats.acked.load(Relaxed),
            delivered,
            duplicates: stats.duplicates.load(Relaxed),
            out_of_order: stats.out_of_order.load(Relaxed),
            errors: stats.errors(),
            lost: expected.saturating_sub(delivered),
            unsent: messages.saturating_sub(sent),
        }
    }

    fn clean(&self) -> bool {
        self.lost == 0
            && self.unsent == 0
            && self.errors == 0
            && self.duplicates == 0
            && self.acked == self.sent
    }
}

/// Prints the final table; returns whether the run was clean (nothing lost or refused).
pub fn report(stats: &Stats, info: &RunInfo) -> bool {
    let totals = Totals::of(stats, info.messages);
    println!("== {} ==", info.mode);
    print_counts(stats, info, &totals);
    print_latencies(stats);
    print_verdict(stats, info, &totals)
}

fn print_counts(stats: &Stats, info: &RunInfo, t: &Totals) {
    let since_start = |ns: u64| Duration::from_nanos(ns.saturating_sub(info.start_ns)).as_secs_f64();
    let elapsed = since_start(stats.last_delivery_ns.load(Relaxed)).max(1e-9);
    let send_phase = since_start(stats.last_send_ns.load(Relaxed)).max(1e-9);
    let row = |name: &str, value: String| println!("  {name:<26} {value}");
    let fan = stats.fan;
    if fan == 1 {
        row("clients", info.clients.to_string());
    } else {
        row("members", info.clients.to_string());
        row("senders", info.senders.to_string());
    }
    row(
        "messages sent",
        format!("{} of {} (warm-up {})", t.sent, info.messages, info.warmup),
    );
    row("acks", t.acked.to_string());
    if fan == 1 {
        row("delivered", t.delivered.to_string());
        row("lost (sent - delivered)", t.lost.to_string());
    } else {
        row(
            "deliveries expected",
            format!("{} ({} sent x {fan} receivers)", t.sent * fan, t.sent),
        );
        row("delivered", t.delivered.to_string());
        row("lost (expected - deliv.)", t.lost.to_string());
    }
    row("duplicates", t.duplicates.to_string());
    row("pushed out of seq order", t.out_of_order.to_string());
    row("errors", t.errors.to_string());
    for (name, value) in &info.extra {
        row(name, value.clone());
    }
    row("elapsed", format!("{elapsed:.3} s (first send to last delivery)"));
    let rate_name = if fan == 1 {
        "delivered msgs/s"
    } else {
        "deliveries/s"
    };
    row(rate_name, format!("{:.0}", t.delivered as f64 / elapsed));
    row("server CPU", server_cpu(info, t, fan));
    row(
        "send phase",
        format!(
            "{send_phase:.3} s ({:.0} msgs/s sent)",
            t.sent as f64 / send_phase
        ),
    );
}

/// A table of latency percentiles (ms), one row per histogram of microseconds.
pub fn latency_table(rows: &[(&str, &Histogram<u64>)]) -> String {
    let mut lines = vec![format!(
        "  {:<26} {:>10} {:>10} {:>10} {:>10}",
        "latency (ms)", "p50", "p99", "p99.9", "max"
    )];
    lines.extend(rows.iter().map(|(name, h)| latency_row(name, h)));
    lines.join("\n")
}

fn print_latencies(stats: &Stats) {
    let lat = stats.merged();
    println!(
        "{}",
        latency_table(&[
            ("send->receive (intended)", &lat.deliver),
            ("send->receive (actual)", &lat.deliver_actual),
            ("send->ack (intended)", &lat.ack),
        ])
    );
    let means = stats.sender_means();
    if let (Some(first), Some(last)) = (means.first(), means.last()) {
        println!(
            "  {:<26} min {} / median {} / max {} ms",
            "per-sender mean latency",
            ms(*first),
            ms(means[means.len() / 2]),
            ms(*last)
        );
    }
}

fn print_verdict(stats: &Stats, info: &RunInfo, t: &Totals) -> bool {
    let kinds = stats.error_kinds.lock().unwrap_or_else(|p| p.into_inner());
    for (kind, n) in kinds.iter() {
        println!("  error {kind}: {n}");
    }
    if t.out_of_order > 0 {
        println!(
            "WARNING: {} pushes arrived after a push with a higher seq of the same conversation \
             (nothing lost, but the server does not push in timeline order)",
            t.out_of_order
        );
    }
    if !t.clean() {
        let gave_up = if info.timed_out {
            " (gave up waiting: --timeout)"
        } else {
            ""
        };
        println!(
            "FAILED: lost {}, unsent {}, errors {}, duplicates {}, unacked {}{gave_up}",
            t.lost,
            t.unsent,
            t.errors,
            t.duplicates,
            t.sent.saturating_sub(t.acked)
        );
    }
    t.clean()
}

/// The headline figures of a run as one JSON object, for scripts that compare runs
/// (`fanout --summary-json`): the counters, deliveries per second over the same span as the
/// table (first send to last delivery) and the send→receive latency from the intended send
/// time in milliseconds (`null` without samples).
pub fn summary(stats: &Stats, info: &RunInfo) -> serde_json::Value {
    let t = Totals::of(stats, info.messages);
    let since_start = |ns: u64| Duration::from_nanos(ns.saturating_sub(info.start_ns)).as_secs_f64();
    let elapsed = since_start(stats.last_delivery_ns.load(Relaxed)).max(1e-9);
    let lat = stats.merged();
    let at = |q: f64| (!lat.deliver.is_empty()).then(|| lat.deliver.value_at_quantile(q) as f64 / 1_000.0);
    serde_json::json!({
        "mode": info.mode,
        "clients": info.clients,
        "senders": info.senders,
        "messages": info.messages,
        "sent": t.sent,
        "acked": t.acked,
        "expected": t.sent * stats.fan,
        "delivered": t.delivered,
        "lost": t.lost,
        "duplicates": t.duplicates,
        "out_of_order": t.out_of_order,
        "errors": t.errors,
        "elapsed_s": elapsed,
        "deliveries_per_s": t.delivered as f64 / elapsed,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": (!lat.deliver.is_empty()).then(|| lat.deliver.max() as f64 / 1_000.0),
        "clean": t.clean(),
        "server_cpu_s": info.server_cpu_s,
        "server_cpu_us_per_message": info.server_cpu_s.filter(|_| t.sent > 0).map(|c| c * 1e6 / t.sent as f64),
        "server_cpu_us_per_delivery": info.server_cpu_s.filter(|_| t.delivered > 0).map(|c| c * 1e6 / t.delivered as f64),
    })
}
