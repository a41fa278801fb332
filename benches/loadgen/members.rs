//! The members of a `fanout` run, whatever serves the group: each member's reader and what
//! it checks ([`Member`]: duplicates, order, own messages pushed back), what the readers
//! share ([`Tracker`]: how many members each message still has to reach, the closed-loop
//! window), and the outlets of targets whose acks do not carry the message ([`Recorded`]).
//! [`crate::fanout`] drives a run over these; [`crate::bare`] and [`crate::mqtt`] connect
//! members to the other targets.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::drive::{self, Outlet, Plan, Sink};
use crate::frames::{self, Payload, ServerFrame};
use crate::setup::{self, Ws};
use crate::stats::Stats;

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
    pub window: Option<Semaphore>,
    /// Notices pushed (the membership notice, …), not counted as deliveries.
    pub notices: AtomicU64,
    /// Members that saw at least one push out of `seq` order.
    pub members_reordered: AtomicU64,
    /// Members that got at least one message twice.
    pub members_with_duplicates: AtomicU64,
    /// Per member: first deliveries.
    per_member: Vec<AtomicU64>,
}

impl Tracker {
    /// The tracker of `messages` sent by the first `senders` of `members` reading
    /// members, with a closed-loop window of `window` messages (`None`: open loop).
    pub fn new(senders: usize, messages: u64, members: usize, window: Option<usize>) -> Self {
        let receivers = (members - 1) as u32;
        Tracker {
            senders,
            messages,
            remaining: (0..messages).map(|_| AtomicU32::new(receivers)).collect(),
            window: window.map(Semaphore::new),
            notices: AtomicU64::new(0),
            members_reordered: AtomicU64::new(0),
            members_with_duplicates: AtomicU64::new(0),
            per_member: (0..members).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn sender_of(&self, index: u64) -> usize {
        (index % self.senders as u64) as usize
    }

    /// Message `index` reached one more member; the last one frees its window slot.
    fn reached(&self, index: u64) {
        if self.remaining[index as usize].fetch_sub(1, Relaxed) == 1 {
            drive::free_slot(self.window.as_ref());
        }
    }

    /// Messages member `member` is due out of the `sent` ones: all but its own.
    pub fn due_to(&self, member: usize, sent: u64) -> u64 {
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
    pub fn members_short(&self, sent: u64) -> (u64, u64) {
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

/// Opens `n` WebSockets, one per token in member order (`concurrency` handshakes at once),
/// each greeted with `connected`, and starts its reader (`read` of the member and the
/// incoming half) at once; also returns each member's [`Pending`].
pub async fn connect_ws<'a, F, R>(
    n: usize,
    concurrency: usize,
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
    let progress = setup::Progress::new("connected", n);
    let mut opened = futures_util::stream::iter(tokens)
        .map(|token| connector.connect(token))
        .buffered(concurrency.max(1));
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
