//! What a session knows the client has read: the delivery-probe state machine.
//!
//! Written is not delivered: a frame can sit in the server's and the kernel's buffers
//! when the connection drops. So the session sends a *probe* (a ping with a numbered
//! payload) behind the frames it wrote; a WebSocket is one ordered stream, so the pong
//! that echoes the payload proves the client read everything written before it. Only
//! confirmed positions move the user's delivered cursor; the rest stays pending and is
//! replayed on the next connect (a client may see a message twice, never miss one).
//!
//! The states, per session:
//! - *written*: the highest seq per conversation written since the last probe;
//! - *in flight*: at most one probe, holding the positions written before it;
//! - *confirmed*: positions a pong proved, waiting for the next report to the Router.
//!
//! A replay round is written as one batch and probed at once: the Router sends the next
//! round only when this one's confirmation reaches it. When the connection is cut, only
//! the confirmed positions are reported; written and in-flight ones are dropped, so the
//! cursor stays where the client is known to be and the next connect rewinds to it.
//! With `?ack=manual` nothing is tracked: only the client's own `ack` frames count.
//!
//! A plain value with no actor or clock of its own, so every transition is unit-tested.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A conversation key and a seq in it.
pub type Position = (Arc<str>, u64);

/// The probe state of one session; see the module doc.
#[derive(Debug)]
pub struct Delivery {
    manual: bool,
    /// The highest seq written per conversation in this session, whatever the mode: what a
    /// client's own `ack` may name at most.
    handed: HashMap<Arc<str>, u64>,
    written: HashMap<Arc<str>, u64>,
    in_flight: Option<(u64, HashMap<Arc<str>, u64>)>,
    probes_sent: u64,
    last_probe: Instant,
    confirmed: HashMap<Arc<str>, u64>,
}

impl Delivery {
    /// A session's state at connect; `manual` is `?ack=manual` (nothing is tracked).
    pub fn new(manual: bool, now: Instant) -> Self {
        Self {
            manual,
            handed: HashMap::new(),
            written: HashMap::new(),
            in_flight: None,
            probes_sent: 0,
            last_probe: now,
            confirmed: HashMap::new(),
        }
    }

    /// The payload of probe number `n`: `p` and the number, so that a heartbeat's empty
    /// pong never answers a probe.
    pub fn payload(n: u64) -> [u8; 9] {
        let mut p = [0u8; 9];
        p[0] = b'p';
        p[1..].copy_from_slice(&n.to_be_bytes());
        p
    }

    /// The frame of `(conv, seq)` was written to the socket.
    pub fn written(&mut self, conv: &Arc<str>, seq: u64) {
        raise(&mut self.handed, conv, seq);
        if !self.manual {
            raise(&mut self.written, conv, seq);
        }
    }

    /// What a client's `ack` of `seq` in `conv` may move the delivered cursor to: at most
    /// the highest seq this session wrote there, since a client cannot have received more
    /// (an `ack` past it must not mark messages delivered that are stored later). `None`
    /// when this session wrote nothing there.
    pub fn ack(&self, conv: &str, seq: u64) -> Option<u64> {
        self.handed.get(conv).map(|&handed| seq.min(handed))
    }

    /// Starts a probe behind what was written and returns its ping payload, unless one is
    /// in flight or nothing is new.
    pub fn probe(&mut self, now: Instant) -> Option<[u8; 9]> {
        if self.in_flight.is_some() || self.written.is_empty() {
            return None;
        }
        self.probes_sent += 1;
        self.last_probe = now;
        self.in_flight = Some((self.probes_sent, std::mem::take(&mut self.written)));
        Some(Self::payload(self.probes_sent))
    }

    /// Whether the periodic probe is due: `interval` has passed since the last one.
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        self.until_due(now, interval).is_zero()
    }

    /// A pong arrived; when it answers the probe in flight, that probe's positions are
    /// confirmed. Returns whether it did.
    pub fn pong(&mut self, payload: &[u8]) -> bool {
        let answers = matches!(&self.in_flight, Some((n, _)) if payload == Self::payload(*n));
        if !answers {
            return false;
        }
        if let Some((_, positions)) = self.in_flight.take() {
            for (conv, seq) in positions {
                let e = self.confirmed.entry(conv).or_insert(0);
                *e = (*e).max(seq);
            }
        }
        true
    }

    /// The confirmed positions not yet reported, now handed over (empty when none).
    pub fn take_confirmed(&mut self) -> Vec<Position> {
        self.confirmed.drain().collect()
    }

    /// The connection is cut: what the client confirmed, to report once more. Written and
    /// in-flight positions are dropped and stay pending for the next connect.
    pub fn cut(&mut self) -> Vec<Position> {
        self.written.clear();
        self.in_flight = None;
        self.take_confirmed()
    }

    /// Whether a probe is waiting for its pong.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether there are written positions to probe and no probe in flight (whose pong
    /// would come back first anyway).
    pub fn needs_probe(&self) -> bool {
        !self.written.is_empty() && self.in_flight.is_none()
    }

    /// How long until the next probe is due: zero when `interval` has passed since the
    /// last one.
    pub fn until_due(&self, now: Instant, interval: Duration) -> Duration {
        (self.last_probe + interval).saturating_duration_since(now)
    }
}

/// Raises `conv`'s position in `map` to `seq`; positions never go back.
fn raise(map: &mut HashMap<Arc<str>, u64>, conv: &Arc<str>, seq: u64) {
    match map.get_mut(conv) {
        Some(s) => *s = (*s).max(seq),
        None => {
            map.insert(conv.clone(), seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn sorted(mut v: Vec<Position>) -> Vec<(String, u64)> {
        v.sort();
        v.into_iter().map(|(c, s)| (c.to_string(), s)).collect()
    }

    #[test]
    fn a_probe_confirms_what_was_written_before_it() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        d.written(&conv("d:1:2"), 3);
        d.written(&conv("d:1:2"), 5);
        d.written(&conv("g:7"), 2);
        d.written(&conv("d:1:2"), 4); // an older seq never lowers the position
        let p = d.probe(t).expect("something was written");
        assert!(d.in_flight());
        assert!(
            d.take_confirmed().is_empty(),
            "nothing is confirmed before the pong"
        );
        assert!(d.pong(&p));
        assert!(!d.in_flight());
        assert_eq!(
            sorted(d.take_confirmed()),
            vec![("d:1:2".into(), 5), ("g:7".into(), 2)]
        );
        assert!(
            d.take_confirmed().is_empty(),
            "a report hands positions over once"
        );
    }

    #[test]
    fn nothing_written_means_no_probe() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        assert_eq!(d.probe(t), None);
        d.written(&conv("d:1:2"), 1);
        let p = d.probe(t).unwrap();
        assert!(d.pong(&p));
        assert_eq!(d.probe(t), None, "all written was probed");
    }

    #[test]
    fn a_heartbeat_pong_or_a_stale_probe_confirms_nothing() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        d.written(&conv("d:1:2"), 1);
        let first = d.probe(t).unwrap();
        assert!(!d.pong(b""), "the heartbeat's empty pong");
        assert!(!d.pong(&Delivery::payload(2)), "a probe never sent");
        assert!(!d.pong(&first[..8]), "a truncated payload");
        assert!(d.in_flight());
        assert!(d.pong(&first));
        assert!(!d.pong(&first), "the same pong twice confirms once");
        assert_eq!(sorted(d.take_confirmed()), vec![("d:1:2".into(), 1)]);
    }

    #[test]
    fn one_probe_in_flight_and_later_writes_wait_for_the_next() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        d.written(&conv("d:1:2"), 1);
        let first = d.probe(t).unwrap();
        d.written(&conv("d:1:2"), 2);
        assert_eq!(d.probe(t), None, "a second probe waits for the first pong");
        assert!(d.pong(&first));
        assert_eq!(sorted(d.take_confirmed()), vec![("d:1:2".into(), 1)]);
        let second = d.probe(t).unwrap();
        assert_ne!(first, second, "each probe has its own number");
        assert!(d.pong(&second));
        assert_eq!(sorted(d.take_confirmed()), vec![("d:1:2".into(), 2)]);
    }

    #[test]
    fn a_cut_reports_only_what_was_confirmed() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        d.written(&conv("d:1:2"), 1);
        let p = d.probe(t).unwrap();
        assert!(d.pong(&p));
        d.written(&conv("d:1:2"), 2); // probed, never answered
        d.probe(t).unwrap();
        d.written(&conv("d:1:2"), 3); // written, never probed
        assert_eq!(sorted(d.cut()), vec![("d:1:2".into(), 1)]);
        assert!(!d.in_flight());
        assert!(d.cut().is_empty());
        assert_eq!(d.probe(t), None, "the cut dropped what was only written");
    }

    #[test]
    fn confirmations_accumulate_until_reported_and_never_go_back() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        d.written(&conv("g:7"), 9);
        let p = d.probe(t).unwrap();
        assert!(d.pong(&p));
        // Rewound: a replay after a reconnect writes older seqs again.
        d.written(&conv("g:7"), 4);
        let p = d.probe(t).unwrap();
        assert!(d.pong(&p));
        assert_eq!(sorted(d.take_confirmed()), vec![("g:7".into(), 9)]);
    }

    #[test]
    fn replay_rounds_are_confirmed_one_by_one() {
        // The session writes a round and probes at once; the next round comes only after
        // the confirmation of this one is reported.
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        for seq in 1..=100 {
            d.written(&conv("d:1:2"), seq);
        }
        let round1 = d.probe(t).unwrap();
        assert!(d.pong(&round1));
        assert_eq!(sorted(d.take_confirmed()), vec![("d:1:2".into(), 100)]);
        for seq in 101..=150 {
            d.written(&conv("d:1:2"), seq);
        }
        let round2 = d.probe(t).unwrap();
        // Cut before the second round is confirmed: the cursor stays at 100.
        assert!(d.cut().is_empty());
        assert!(!d.pong(&round2), "a pong after the cut confirms nothing");
    }

    #[test]
    fn only_unprobed_positions_need_a_probe_and_it_is_due_once_per_interval() {
        let t = Instant::now();
        let second = Duration::from_secs(1);
        let mut d = Delivery::new(false, t);
        assert!(!d.needs_probe(), "a new session is idle");
        d.written(&conv("a"), 1);
        assert!(d.needs_probe(), "written, to probe");
        assert_eq!(d.until_due(t, second), second, "a second after connecting");
        let later = t + second;
        assert!(d.until_due(later, second).is_zero());
        let p = d.probe(later).unwrap();
        assert!(!d.needs_probe(), "only the pong can move it on");
        d.written(&conv("a"), 2);
        assert!(!d.needs_probe(), "the pong of the probe in flight comes first");
        assert!(d.pong(&p));
        assert!(d.needs_probe(), "2 is still to probe");
        let soon = later + Duration::from_millis(300);
        assert_eq!(d.until_due(soon, second), Duration::from_millis(700));
        assert_eq!(sorted(d.take_confirmed()), [("a".into(), 1)]);
        let p = d.probe(soon + Duration::from_millis(700)).unwrap();
        assert!(d.pong(&p));
        d.take_confirmed();
        assert!(!d.needs_probe(), "everything confirmed: idle again");
        let mut manual = Delivery::new(true, t);
        manual.written(&conv("a"), 1);
        assert!(!manual.needs_probe(), "manual acks track nothing");
    }

    #[test]
    fn the_periodic_probe_is_due_after_its_interval() {
        let t = Instant::now();
        let mut d = Delivery::new(false, t);
        let every = Duration::from_millis(200);
        assert!(!d.due(t + Duration::from_millis(199), every));
        assert!(d.due(t + every, every));
        d.written(&conv("d:1:2"), 1);
        d.probe(t + every).unwrap();
        assert!(
            !d.due(t + every + Duration::from_millis(100), every),
            "a probe restarts the interval"
        );
    }

    #[test]
    fn manual_ack_probes_nothing() {
        let t = Instant::now();
        let mut d = Delivery::new(true, t);
        d.written(&conv("d:1:2"), 1);
        assert_eq!(d.probe(t), None);
        assert!(d.cut().is_empty());
    }

    #[test]
    fn an_ack_names_at_most_what_this_session_wrote() {
        for manual in [true, false] {
            let t = Instant::now();
            let mut d = Delivery::new(manual, t);
            assert_eq!(d.ack("d:1:2", 5), None, "nothing written there");
            d.written(&conv("d:1:2"), 3);
            assert_eq!(d.ack("d:1:2", 2), Some(2));
            assert_eq!(d.ack("d:1:2", 1000), Some(3), "capped at what was written");
            assert_eq!(d.ack("g:7", 1), None);
        }
    }
}
