//! The heartbeat clock: one timer per thread drives the pings of all the sessions on it.
//!
//! A timer per session costs the runtime's timer wheel an entry and the thread a wake-up
//! per ping: at 10,000 sessions and a 20 s interval, 500 wake-ups a second, each a context
//! switch, for nothing but a ping. Here the sessions of a thread are spread over [`SLOTS`]
//! slots of a ring; one timer ticks every `interval / SLOTS` and sends a [`Beat`] to every
//! session of the next slot, so one wake-up serves a slot's sessions and their pings leave
//! together. A session is beaten first between `interval - tick` and `interval` after it
//! joined, then every `interval`. The timer runs only while its thread has sessions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::Recipient;
use parlor_actors::Beat;
use tokio::time::{self, Instant, MissedTickBehavior};

/// Slots of a ring: the interval is cut into this many ticks.
pub const SLOTS: usize = 20;
/// The shortest tick (an interval shorter than `SLOTS` of these has fewer, larger slots).
const MIN_TICK: Duration = Duration::from_millis(5);

/// The sessions of one thread that beat at one interval.
struct Ring {
    tick: Duration,
    slots: Vec<HashMap<u64, Recipient<Beat>>>,
    /// The slot the next tick beats.
    next: usize,
    /// Key of the next member.
    keys: u64,
    /// Whether the ticking task runs.
    ticking: bool,
}

thread_local! {
    /// This thread's rings, by interval (servers in one process may differ).
    static RINGS: RefCell<HashMap<Duration, Rc<RefCell<Ring>>>> = RefCell::new(HashMap::new());
}

/// A session's place on its thread's clock; dropping it takes the session off.
pub struct Membership {
    ring: Rc<RefCell<Ring>>,
    slot: usize,
    key: u64,
}

/// Puts `session` on the clock of the current thread for `interval`, starting the clock's
/// timer when it is the thread's first session. Must run on an actix thread (a session's
/// `started`).
pub fn join(interval: Duration, session: Recipient<Beat>) -> Membership {
    let ring = RINGS.with(|rings| {
        rings
            .borrow_mut()
            .entry(interval)
            .or_insert_with(|| {
                let tick = (interval / SLOTS as u32).max(MIN_TICK);
                let slots = (interval.as_nanos() / tick.as_nanos()).clamp(1, SLOTS as u128) as usize;
                Rc::new(RefCell::new(Ring {
                    tick,
                    slots: (0..slots).map(|_| HashMap::new()).collect(),
                    next: 0,
                    keys: 0,
                    ticking: false,
                }))
            })
            .clone()
    });
    let (slot, key, start) = {
        let mut r = ring.borrow_mut();
        // The slot beaten last: the coming ticks reach it again a whole turn from now, less
        // the part of a tick already gone.
        let slot = (r.next + r.slots.len() - 1) % r.slots.len();
        let key = r.keys;
        r.keys += 1;
        r.slots[slot].insert(key, session);
        let start = !r.ticking;
        r.ticking = true;
        (slot, key, start)
    };
    if start {
        actix::spawn(tick(ring.clone()));
    }
    Membership { ring, slot, key }
}

impl Ring {
    /// Sessions on the ring.
    fn members(&self) -> usize {
        self.slots.iter().map(HashMap::len).sum()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.ring.borrow_mut().slots[self.slot].remove(&self.key);
    }
}

/// The ring's timer: beats one slot a tick; ends when the ring is empty (the next session
/// to join starts it again).
async fn tick(ring: Rc<RefCell<Ring>>) {
    let every = ring.borrow().tick;
    let mut timer = time::interval_at(Instant::now() + every, every);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let mut r = ring.borrow_mut();
        if r.members() == 0 {
            r.ticking = false;
            return;
        }
        let slot = r.next;
        r.next = (slot + 1) % r.slots.len();
        for session in r.slots[slot].values() {
            // One small message per session and interval; a full mailbox (a session
            // falling behind) still gets it, so its client timeout is checked.
            session.do_send(Beat);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use actix::{Actor, Context, Handler};

    use super::*;

    /// Counts the beats it gets.
    struct Counter(Arc<AtomicUsize>);

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Handler<Beat> for Counter {
        type Result = ();

        fn handle(&mut self, _: Beat, _: &mut Self::Context) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits (at most 5 s) for `done` to hold.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("not reached within 5 s: {what}");
    }

    fn ticking(interval: Duration) -> bool {
        RINGS.with(|rings| rings.borrow()[&interval].borrow().ticking)
    }

    #[actix_web::test]
    async fn every_member_is_beaten_each_turn_a_dropped_one_no_more_and_an_empty_clock_stops() {
        let interval = Duration::from_millis(40);
        let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
        let load = |i: usize| counts[i].load(Ordering::SeqCst);
        let mut members: Vec<Option<Membership>> = counts
            .iter()
            .map(|c| Some(join(interval, Counter(c.clone()).start().recipient())))
            .collect();
        assert!(ticking(interval));
        until("three beats each", || (0..3).all(|i| load(i) >= 3)).await;

        members[0] = None;
        let others = (load(1), load(2));
        // A beat sent before the drop has been handled once the others had one more.
        until("one more beat for the others", || {
            load(1) > others.0 && load(2) > others.1
        })
        .await;
        let (dropped, others) = (load(0), (load(1), load(2)));
        until("two more beats for the others", || {
            load(1) >= others.0 + 2 && load(2) >= others.1 + 2
        })
        .await;
        assert_eq!(load(0), dropped, "a member that left is not beaten");

        members.clear();
        until("the clock stops without members", || !ticking(interval)).await;
        let c = Arc::new(AtomicUsize::new(0));
        let _again = join(interval, Counter(c.clone()).start().recipient());
        assert!(ticking(interval), "a new member starts it again");
        until("the new member is beaten", || c.load(Ordering::SeqCst) >= 1).await;
    }

    #[actix_web::test]
    async fn members_that_join_at_different_ticks_are_beaten_at_different_ticks() {
        let interval = Duration::from_millis(200);
        let first = join(interval, Counter(Arc::default()).start().recipient());
        let next = first.ring.borrow().next;
        until("a tick", || first.ring.borrow().next != next).await;
        let second = join(interval, Counter(Arc::default()).start().recipient());
        assert_ne!(first.slot, second.slot, "spread over the ring");
        assert_eq!(first.ring.borrow().members(), 2);
        drop(first);
        assert_eq!(second.ring.borrow().members(), 1);
    }
}
