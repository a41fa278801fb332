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
//! sender notes the payloads it sends and pairs every ack with the oldest one ([`Recorded`]).
//! `--summary-json` ends the output with a line `RESULT {...}` ([`crate::stats::summary`])
//! for scripts that compare targets (`benches/compare.sh`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::drive::{self, Outlet, Plan, Sink, Target};
use crate::frames::{self, Payload, ServerFrame};
use crate::setup::{self, User, Ws};
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

/// The sends of one connection whose acks do not carry the message (baseline, MQTT), oldest
/// first: such acks come back in send order, so each one belongs to the oldest send.
#[derive(Default)]
pub struct Pending(Mutex<VecDeque<Payload>>);

impl Pending {
    fn push(&self, payload: Payload) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(payload);
    }

    fn pop(&self) -> Option<Payload> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

/// An outlet that notes every payload in its connection's [`Pending`] before writing it.
pub struct Recorded<O> {
    inner: O,
    pending: Arc<Pending>,
}

impl<O> Recorded<O> {
    pub fn new(inner: O, pending: Arc<Pending>) -> Self {
        Recorded { inner, pending }
    }
}

impl<O: Outlet + Send> Outlet for Recorded<O> {
    async fn put(&mut self, plan: &Plan, payload: &Payload) -> Result<(), String> {
        self.pending.push(*payload);
        self.inner.put(plan, payload).await
    }

    async fn end(self) {
        self.inner.end().await
    }
}

/// The members once connected: each one's reader, already counting, and the sending halves
/// in member order.
pub struct Joined<O> {
    pub readers: Vec<JoinHandle<()>>,
    pub outlets: Vec<O>,
}

impl<O> Joined<O> {
    pub fn with_capacity(n: usize) -> Self {
        Joined {
            readers: Vec::with_capacity(n),
            outlets: Vec::with_capacity(n),
        }
    }

    /// Stops the readers of a set-up that failed half-way.
    pub fn abort(&self) {
        self.readers.iter().for_each(JoinHandle::abort);
    }
}

/// What the members of a run share: the counters and the tracker.
#[derive(Clone)]
pub struct Shared {
    pub stats: Arc<Stats>,
    pub tracker: Arc<Tracker>,
}

/// What all readers share besides the counters: how many members each message still has
/// to reach, the closed-loop window, and the per-member findings.
pub struct Tracker {
    senders: usize,
    messages: u64,
    /// Per message index: members it has not reached yet.
    remaining: Vec<AtomicU32>,
    window: Option<Semaphore>,
    /// Notices pushed (the membership notice, …), not counted as deliveries.
    notices: AtomicU64,
    /// Members that saw at least one push out of `seq` order.
    members_reordered: AtomicU64,
    /// Members that got at least one message twice.
    members_with_duplicates: AtomicU64,
    /// Per member: first deliveries.
    per_member: Vec<AtomicU64>,
}

impl Tracker {
    fn new(args: &FanoutArgs) -> Self {
        let receivers = (args.fast() - 1) as u32;
        Tracker {
            senders: args.senders,
            messages: args.messages,
            remaining: (0..args.messages).map(|_| AtomicU32::new(receivers)).collect(),
            window: args.rate.is_none().then(|| Semaphore::new(args.window)),
            notices: AtomicU64::new(0),
            members_reordered: AtomicU64::new(0),
            members_with_duplicates: AtomicU64::new(0),
            per_member: (0..args.fast()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn sender_of(&self, index: u64) -> usize {
        (index % self.senders as u64) as usize
    }

    /// Message `index` reached one more member; the last one frees its window slot.
    fn reached(&self, index: u64) {
        if self.remaining[index as usize].fetch_sub(1, Relaxed) == 1 {
            drive::free_slot(self.window.as_ref());
        }
    }

    /// Messages member `member` is due out of the `sent` ones: all but its own.
    fn due_to(&self, member: usize, sent: u64) -> u64 {
        if member >= self.senders {
            return sent;
        }
        // Indices member, member + senders, … below `sent` are its own (sends go in
        // index order per sender, and all senders start together, so this is exact when
        // every sender sent all of its messages, as a clean run does).
        let own = sent.saturating_sub(member as u64).div_ceil(self.senders as u64);
        sent - own
    }

    /// Members that got fewer messages than they were due, when `sent` messages went out
    /// (exact only when every message was sent), and the largest shortfall.
    fn members_short(&self, sent: u64) -> (u64, u64) {
        let mut short = (0, 0);
        for (member, got) in self.per_member.iter().enumerate() {
            let missing = self.due_to(member, sent).saturating_sub(got.load(Relaxed));
            if missing > 0 {
                short = (short.0 + 1, short.1.max(missing));
            }
        }
        short
    }
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
        tracker: Arc::new(Tracker::new(args)),
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
            let joined = bare::connect(args, &shared).await?;
            measure(args, warmup, shared, joined, Target::Group(0), Vec::new()).await
        }
        Server::Mqtt => {
            let (joined, topic) = mqtt::connect(args, &shared).await?;
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
    connect_ws(args, shared, &connector, tokens, |member, stream| {
        read_ws(member, stream, Member::on_frame)
    })
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

/// Opens one WebSocket per token in member order (`--setup-concurrency` handshakes at once),
/// each greeted with `connected`, and starts its reader (`read` of the member and the
/// incoming half) at once; also returns each member's [`Pending`].
pub async fn connect_ws<'a, F, R>(
    args: &FanoutArgs,
    shared: &Shared,
    connector: &setup::Connector,
    tokens: impl Iterator<Item = &'a str>,
    read: R,
) -> Result<(Joined<Sink>, Vec<Arc<Pending>>), String>
where
    R: Fn(Member, SplitStream<Ws>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let t = Instant::now();
    let n = args.fast();
    let progress = setup::Progress::new("connected", n);
    let mut opened = futures_util::stream::iter(tokens)
        .map(|token| connector.connect(token))
        .buffered(args.common.setup_concurrency.max(1));
    let mut joined = Joined::with_capacity(n);
    let mut pending = Vec::with_capacity(n);
    while let Some(ws) = opened.next().await {
        let ws = ws.inspect_err(|_| joined.abort())?;
        let (sink, stream) = ws.split();
        let member = Member::new(joined.readers.len(), shared);
        pending.push(member.pending.clone());
        joined.readers.push(tokio::spawn(read(member, stream)));
        joined.outlets.push(sink);
        progress.tick();
    }
    eprintln!("connected {n} sockets in {:.1?}", t.elapsed());
    Ok((joined, pending))
}

/// One member's incoming WebSocket frames, each text handed to `on_text`, until the task
/// is aborted.
pub async fn read_ws(mut member: Member, mut stream: SplitStream<Ws>, on_text: fn(&mut Member, &str, u64)) {
    while let Some(msg) = stream.next().await {
        let now = clock::now_ns();
        match msg {
            Ok(Message::Text(text)) => on_text(&mut member, text.as_str(), now),
            Ok(Message::Close(reason)) => {
                let why = reason.map_or_else(String::new, |r| format!("{} {}", r.code, r.reason));
                return member.stats.error(&format!("socket closed by the server: {why}"));
            }
            Ok(_) => {}
            Err(e) => return member.stats.error(&format!("ws read: {e}")),
        }
    }
    member.stats.error("socket ended");
}

/// What one member's reader knows: who it is, the highest `seq` pushed so far (Parlor) or
/// the next index due from each sender (the forwarders), and which messages it got.
pub struct Member {
    me: usize,
    pub stats: Arc<Stats>,
    tracker: Arc<Tracker>,
    /// This member's sends awaiting an ack that does not carry the message.
    pub pending: Arc<Pending>,
    last_seq: u64,
    /// Per sender: one past the highest index received from it (forwarders only).
    next_from: Vec<u64>,
    seen: Vec<u64>,
    reordered: bool,
    duplicated: bool,
}

impl Member {
    pub fn new(me: usize, shared: &Shared) -> Self {
        let tracker = shared.tracker.clone();
        Member {
            me,
            stats: shared.stats.clone(),
            pending: Arc::default(),
            last_seq: 0,
            next_from: Vec::new(),
            seen: vec![0; tracker.messages.div_ceil(64) as usize],
            reordered: false,
            duplicated: false,
            tracker,
        }
    }

    /// A frame from Parlor.
    pub fn on_frame(&mut self, text: &str, now: u64) {
        match frames::parse(text) {
            Ok(ServerFrame::Chat { payload, seq }) => self.on_push(payload, Some(seq), now),
            Ok(ServerFrame::Notice { .. }) => {
                self.tracker.notices.fetch_add(1, Relaxed);
            }
            Ok(ServerFrame::Ack(p)) if self.tracker.sender_of(p.index) == self.me => {
                self.stats.ack(self.me, p, now);
            }
            Ok(ServerFrame::Ack(_)) => self.stats.error("ack sent to the wrong member"),
            Ok(ServerFrame::Error { code, answers_send }) => {
                self.stats.error(&code);
                if answers_send {
                    self.refused();
                }
            }
            Ok(ServerFrame::Connected | ServerFrame::Other) => {}
            Err(e) => self.stats.error(&format!("unexpected frame: {e}")),
        }
    }

    /// A `send` frame of another member, forwarded unchanged by a baseline or MQTT target.
    pub fn on_forwarded(&mut self, text: &str, now: u64) {
        match frames::parse_send(text) {
            Ok(payload) => self.on_push(payload, None, now),
            Err(e) => self.stats.error(&format!("unexpected frame: {e}")),
        }
    }

    /// An ack that does not carry the message: it answers this member's oldest pending send.
    pub fn on_ack_in_order(&mut self, now: u64) {
        match self.pending.pop() {
            Some(p) => self.stats.ack(self.me, p, now),
            None => self.stats.error("ack of nothing sent"),
        }
    }

    /// A refusal (`code`) of this member's oldest pending send, in an ack that does not
    /// carry the message.
    pub fn on_refused_in_order(&mut self, code: &str) {
        self.stats.error(code);
        if self.pending.pop().is_some() {
            self.refused();
        }
    }

    /// One of this member's sends will not be delivered: it leaves the window.
    fn refused(&self) {
        self.stats.refused.fetch_add(1, Relaxed);
        drive::free_slot(self.tracker.window.as_ref());
    }

    /// Message `payload` pushed to this member, at timeline position `seq` when the server
    /// numbers its messages.
    fn on_push(&mut self, payload: Payload, seq: Option<u64>, now: u64) {
        let index = payload.index;
        if index >= self.tracker.messages {
            return self.stats.error("foreign message index");
        }
        let sender = self.tracker.sender_of(index);
        if sender == self.me {
            return self.stats.error("own message pushed back to its sender");
        }
        if !self.in_order(sender, index, seq) {
            self.stats.out_of_order.fetch_add(1, Relaxed);
            if !std::mem::replace(&mut self.reordered, true) {
                self.tracker.members_reordered.fetch_add(1, Relaxed);
            }
        }
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        if self.seen[word] & bit != 0 {
            self.stats.duplicates.fetch_add(1, Relaxed);
            if !std::mem::replace(&mut self.duplicated, true) {
                self.tracker.members_with_duplicates.fetch_add(1, Relaxed);
            }
            return;
        }
        self.seen[word] |= bit;
        self.tracker.per_member[self.me].fetch_add(1, Relaxed);
        self.stats.first_delivery(self.me, sender, payload, now);
        self.tracker.reached(index);
    }

    /// Whether a push comes in order: `seq` never below an earlier one, or without `seq`,
    /// no index of `sender` below one already received from it. Notes the push.
    fn in_order(&mut self, sender: usize, index: u64, seq: Option<u64>) -> bool {
        match seq {
            Some(seq) => {
                let ordered = seq >= self.last_seq;
                self.last_seq = self.last_seq.max(seq);
                ordered
            }
            None => {
                if self.next_from.is_empty() {
                    self.next_from = vec![0; self.tracker.senders];
                }
                let next = &mut self.next_from[sender];
                let ordered = index >= *next;
                *next = (*next).max(index + 1);
                ordered
            }
        }
    }
}
