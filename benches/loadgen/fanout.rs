//! `fanout`: one group, every member online, a few members sending.
//!
//! Set-up registers `--members` users (the first is the group's owner), opens their inboxes,
//! makes the owner a friend of every other user, creates one group of all of them and
//! connects every member. Each socket's reader starts as soon as the socket is up, so that a
//! long set-up never leaves a socket unread (the server pings every few seconds and closes a
//! client that does not answer).
//!
//! The first `--senders` members send (the owner among them); message `k` of `0..messages`
//! is sent by sender `k mod senders` as a group text message. Every member but the sender
//! gets it pushed (the sender's own device gets the `ack`), so `messages × (members − 1)`
//! deliveries are due.
//!
//! - Closed loop (no `--rate`): at most `--window` messages are in flight at once, all
//!   senders together; a message leaves the window when the last member it is due to got it
//!   (or when the server refused it). Bounding deliveries rather than acks keeps the run
//!   from queueing more frames for each member than the server lets a session hold.
//! - Open loop (`--rate R`): message `k` is due at `start + k / R` (see [`crate::drive`]);
//!   latency counts from the due time. No window.
//!
//! Each member's reader keeps one bit per message index (duplicates), the highest `seq`
//! pushed so far (the group has one timeline, so pushes must arrive in `seq` order), and
//! checks that no member gets its own message pushed back. Notices in the timeline (the
//! membership notice at `seq` 1) are counted apart and otherwise ignored.
//!
//! `--target` picks what serves the group; everything after the connections (sending,
//! counting, checks, report) is the same code for all three:
//!
//! - `parlor` (default): the above, `--url` the server's client listener.
//! - `baseline`: the bare broadcast server `baseline` (`--url http://host:port`), which
//!   forwards each `send` frame unchanged to every other client and answers the sender with
//!   an ack that does not carry the message (see [`crate::bare`]).
//! - `mqtt`: an MQTT broker (`--url mqtt://host:port`); every member subscribes to one
//!   run-unique topic and the senders publish their `send` frames to it (see
//!   [`crate::mqtt`]).
//!
//! Neither forwarder numbers the messages, so for them "out of seq order" counts pushes of
//! one sender arriving below an index of that sender already received (each sender sends in
//! index order). Their acks come back in send order on the sender's connection, so each
//! sender notes the payloads it sends and pairs every ack with the oldest one ([`Recorded`](crate::members::Recorded)).
//! `--summary-json` ends the output with a line `RESULT {...}` ([`crate::stats::summary`])
//! for scripts that compare targets (`benches/compare.sh`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::clock;
use crate::drive::{self, Outlet, Plan, Sink, Target};
use crate::members::{self, Joined, Member, Shared, Tracker};
use crate::setup::{self, User};
use crate::stats::{self, RunInfo, Stats};
use crate::{bare, mqtt, Common};

/// What serves the group in a `fanout` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Server {
    /// Parlor: users, friendships and one group of them.
    Parlor,
    /// The bare broadcast server `baseline` (no users, no storage).
    Baseline,
    /// An MQTT broker; the members subscribe to one topic.
    Mqtt,
}

/// Options of the `fanout` mode.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Members of the group, each a user with one WebSocket; the first owns the group.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Members that send (the first ones, the owner included).
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages to send in total, spread evenly over the senders.
    #[arg(long, default_value_t = 200)]
    pub messages: u64,
    /// Open loop: messages per second in total, on a fixed schedule. Absent: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: messages in flight (sent, not yet delivered to every member), all
    /// senders together.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Messages sent first and counted, but left out of the latency figures [default: 5%].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// What serves the group: `parlor` (--url http://host:port), `baseline` (the bare
    /// broadcast server, --url http://host:port) or `mqtt` (a broker, --url
    /// mqtt://host:port).
    #[arg(long, value_enum, default_value_t = Server::Parlor)]
    pub target: Server,
    /// End the output with one line `RESULT {...}`: the headline figures as JSON.
    #[arg(long)]
    pub summary_json: bool,
    /// Parlor only: the last this many members never read their socket during the run,
    /// then reconnect and must get every message (see [`crate::slow`]).
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
}

impl FanoutArgs {
    /// Members that read during the run.
    fn fast(&self) -> usize {
        self.members - self.slow
    }
}

/// Most memory the members' duplicate bitsets may take (members × messages bits).
const MAX_BITSET_BYTES: u64 = 1 << 30;

fn validate(args: &FanoutArgs) -> Result<(), String> {
    if args.members < 2 {
        return Err(format!("--members must be at least 2, got {}", args.members));
    }
    if args.senders == 0 || args.senders > args.members {
        return Err(format!(
            "--senders must be between 1 and --members ({}), got {}",
            args.members, args.senders
        ));
    }
    if args.slow > 0 && (args.target != Server::Parlor || args.slow + args.senders >= args.members) {
        return Err(format!(
            "--slow needs --target parlor and leaves at least one reading member besides the \
             senders ({} members, {} senders, {} slow)",
            args.members, args.senders, args.slow
        ));
    }
    let receivers = args.members as u64 - 1;
    if args.messages > u64::from(u32::MAX) || receivers > u64::from(u32::MAX) {
        return Err("--messages and --members must stay below 2^32".into());
    }
    let bitsets = args.members as u64 * args.messages.div_ceil(64) * 8;
    if bitsets > MAX_BITSET_BYTES {
        return Err(format!(
            "members x messages is too large: the duplicate check would take {} MiB",
            bitsets >> 20
        ));
    }
    drive::validate(args.messages, args.rate, args.window)
}

fn mode_name(args: &FanoutArgs) -> String {
    let loop_kind = match args.rate {
        Some(r) => format!("open loop at {r} msg/s"),
        None => format!("closed loop, window {} messages", args.window),
    };
    let target = match args.target {
        Server::Parlor => "",
        Server::Baseline => " to baseline",
        Server::Mqtt => " over MQTT",
    };
    let slow = match args.slow {
        0 => String::new(),
        n => format!(", {n} not reading"),
    };
    format!(
        "fanout{target}, {} members, {} senders{slow}, {loop_kind}",
        args.members, args.senders
    )
}

/// Runs the mode; `Ok(false)` when deliveries were lost or messages refused.
pub async fn run(args: &FanoutArgs) -> Result<bool, String> {
    validate(args)?;
    let warmup = args.warmup.unwrap_or(args.messages / 20).min(args.messages);
    let shared = Shared {
        stats: Arc::new(Stats::with_fan(
            args.senders,
            args.messages,
            warmup,
            args.fast() as u64 - 1,
        )),
        tracker: Arc::new(Tracker::new(
            args.senders,
            args.messages,
            args.fast(),
            args.rate.is_none().then_some(args.window),
        )),
    };
    match args.target {
        Server::Parlor => {
            let (users, group) = set_up(args).await?;
            let (fast, slow) = users.split_at(args.fast());
            let joined = connect(args, fast, &shared).await?;
            let slow = connect_slow(args, slow).await?;
            let stats = shared.stats.clone();
            let extra = vec![("group", group.to_string())];
            let clean = measure(args, warmup, shared, joined, Target::Group(group), extra).await?;
            if slow.users.is_empty() {
                return Ok(clean);
            }
            let timeout = Duration::from_secs(args.common.timeout);
            let sent = stats.sent.load(Relaxed);
            Ok(crate::slow::settle(slow, &args.common.url, sent, timeout).await? && clean)
        }
        Server::Baseline => {
            let joined = bare::connect(&args.common, args.members, &shared).await?;
            measure(args, warmup, shared, joined, Target::Group(0), Vec::new()).await
        }
        Server::Mqtt => {
            let (joined, topic) = mqtt::connect(&args.common, args.members, &shared).await?;
            let extra = vec![("topic", topic)];
            measure(args, warmup, shared, joined, Target::Group(0), extra).await
        }
    }
}

/// The send phase and the report, the same for every target: `to` is what the `send`
/// frames name, `extra` the target's own rows of the table.
async fn measure<O: Outlet>(
    args: &FanoutArgs,
    warmup: u64,
    shared: Shared,
    joined: Joined<O>,
    to: Target,
    mut extra: Vec<(&'static str, String)>,
) -> Result<bool, String> {
    let Shared { stats, tracker } = shared;
    let Joined { readers, mut outlets } = joined;
    // Let the replay of the membership notice (sent while the members were offline) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cpu = crate::machine::ServerCpu::start(&args.common.url, &args.common.server_pids);
    let start_ns = drive::start_ns(args.rate);
    let idle = outlets.split_off(args.senders);
    let senders: Vec<_> = outlets
        .into_iter()
        .enumerate()
        .map(|(sender, sink)| {
            let plan = Plan {
                sender,
                senders: args.senders,
                messages: args.messages,
                to,
                rate: args.rate,
                start_ns,
            };
            let window = tracker.window.is_some().then(|| tracker.clone());
            tokio::spawn(send_with(plan, sink, stats.clone(), window))
        })
        .collect();

    let timeout = Duration::from_secs(args.common.timeout);
    let timed_out = drive::wait_for_end(&stats, args.senders, timeout).await;
    let server_cpu_s = cpu.and_then(|c| c.used());
    let ran_for = Duration::from_nanos(clock::now_ns().saturating_sub(start_ns));
    eprintln!("{}", stats.progress(ran_for));
    readers.iter().for_each(JoinHandle::abort);
    drive::close_all(senders, idle).await;

    let (short, worst) = tracker.members_short(stats.sent.load(Relaxed));
    extra.extend([
        (
            "members short of deliv.",
            format!("{short} (the most missing at one member: {worst})"),
        ),
        (
            "members out of order",
            tracker.members_reordered.load(Relaxed).to_string(),
        ),
        (
            "members with duplicates",
            tracker.members_with_duplicates.load(Relaxed).to_string(),
        ),
        ("notices (not counted)", tracker.notices.load(Relaxed).to_string()),
    ]);
    let info = RunInfo {
        mode: mode_name(args),
        clients: args.members,
        senders: args.senders,
        messages: args.messages,
        warmup,
        start_ns,
        timed_out,
        server_cpu_s,
        extra,
    };
    let clean = stats::report(&stats, &info);
    if args.summary_json {
        let mut summary = stats::summary(&stats, &info);
        if let Some(name) = args.target.to_possible_value() {
            summary["target"] = name.get_name().into();
        }
        println!("RESULT {summary}");
    }
    Ok(clean)
}

/// One sender's messages, its window slots taken from the shared tracker's window.
async fn send_with<O: Outlet>(
    plan: Plan,
    sink: O,
    stats: Arc<Stats>,
    tracker: Option<Arc<Tracker>>,
) -> Option<O> {
    let window = tracker.as_ref().and_then(|t| t.window.as_ref());
    drive::send(plan, sink, stats, window).await
}

/// Registers the users, makes the first one a friend of all the others and creates the
/// group; returns the users and the group id.
async fn set_up(args: &FanoutArgs) -> Result<(Vec<User>, u64), String> {
    let (common, n) = (&args.common, args.members);
    let t = Instant::now();
    let prefix = setup::run_prefix();
    let users = setup::register(&common.url, &prefix, n, common.setup_concurrency).await?;
    setup::open_inboxes(&common.url, &users, common.setup_concurrency).await?;
    eprintln!("registered {n} users ({prefix}_*) in {:.1?}", t.elapsed());
    let t = Instant::now();
    let (owner, others) = users.split_first().ok_or("no users")?;
    setup::befriend_all(&common.url, owner, others, common.setup_concurrency).await?;
    eprintln!(
        "made user {} a friend of {} users in {:.1?}",
        owner.id,
        others.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let ids: Vec<u64> = others.iter().map(|u| u.id).collect();
    let group = setup::create_group(&common.url, owner, &ids).await?;
    eprintln!("created group {group} of {n} members in {:.1?}", t.elapsed());
    Ok((users, group))
}

/// Connects every member, starting each socket's reader at once.
async fn connect(args: &FanoutArgs, users: &[User], shared: &Shared) -> Result<Joined<Sink>, String> {
    let common = &args.common;
    let connector = setup::Connector::new(&common.url, &common.source_ips)?;
    let tokens = users.iter().map(|u| u.token.as_str());
    members::connect_ws(
        args.fast(),
        args.common.setup_concurrency,
        shared,
        &connector,
        tokens,
        |member, stream| members::read_ws(member, stream, Member::on_frame),
    )
    .await
    .map(|(joined, _)| joined)
}

/// `SO_RCVBUF` of a slow member's socket. Loopback's autotuned buffers would otherwise hold
/// megabytes of unread frames in the kernel, out of the server's sight.
const SLOW_RECV_BUFFER: u32 = 4096;

/// Connects the slow members, with small receive buffers like clients on a slow link, and
/// leaves their sockets unread; notes the server's memory.
async fn connect_slow(args: &FanoutArgs, users: &[User]) -> Result<crate::slow::Slow, String> {
    let connector = setup::Connector::new(&args.common.url, &args.common.source_ips)?
        .with_recv_buffer(SLOW_RECV_BUFFER)?;
    let mut streams = Vec::with_capacity(users.len());
    for u in users {
        let (_sink, stream) = connector.connect(&u.token).await?.split();
        streams.push(stream);
    }
    let before = match users.is_empty() {
        true => None,
        false => crate::sessions::server_figures(&setup::http_client()?, &args.common.url).await,
    };
    Ok(crate::slow::Slow {
        users: users.to_vec(),
        streams,
        before,
    })
}
