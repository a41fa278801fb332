//! The open-loop clock: one thread that releases every scheduled send at its due time.
//!
//! Tokio's timer wheel has a resolution of one millisecond, so a sender sleeping with
//! `sleep_until` wakes up to a millisecond late, and at 10,000 messages a second that is ten
//! messages' worth of jitter added to every latency. Instead, senders register their plans
//! here; one OS thread keeps a heap of the next due time of every sender, waits for the
//! earliest on a condition variable (a futex with a nanosecond timeout, served by the
//! kernel's high-resolution timers) and hands the index to its sender through a channel the
//! moment it is due. A late thread releases the backlog at once; latency still counts from
//! the due time, so lateness shows in the figures.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::clock;

/// One registered sender: where its indices go and the next one it owes.
struct Entry {
    /// Dropped after the last index, which ends the sender's receiver.
    tx: Option<UnboundedSender<u64>>,
    next: u64,
    step: u64,
    end: u64,
    start_ns: u64,
    rate: f64,
}

impl Entry {
    fn due_ns(&self) -> u64 {
        self.start_ns + (self.next as f64 * 1e9 / self.rate) as u64
    }
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    /// `(due, entry)` of every entry with indices left.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

struct Schedule {
    queue: Mutex<Queue>,
    changed: Condvar,
}

fn schedule() -> &'static Schedule {
    static SCHEDULE: OnceLock<&'static Schedule> = OnceLock::new();
    SCHEDULE.get_or_init(|| {
        let s: &'static Schedule = Box::leak(Box::new(Schedule {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("loadgen-clock".into())
            .spawn(move || run(s))
            .expect("the clock thread starts");
        s
    })
}

/// Registers a sender that owes indices `first, first + step, …` below `end`, message `k`
/// due at `start_ns + k / rate` seconds; the receiver yields each index when it is due and
/// ends after the last.
pub fn register(first: u64, step: u64, end: u64, start_ns: u64, rate: f64) -> UnboundedReceiver<u64> {
    let (tx, rx) = unbounded_channel();
    if first >= end {
        return rx;
    }
    let s = schedule();
    let mut q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
    let entry = Entry {
        tx: Some(tx),
        next: first,
        step: step.max(1),
        end,
        start_ns,
        rate,
    };
    let due = entry.due_ns();
    let id = q.entries.len();
    q.entries.push(entry);
    q.heap.push(Reverse((due, id)));
    drop(q);
    s.changed.notify_one();
    rx
}

fn run(s: &Schedule) {
    let mut q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let Some(&Reverse((due, id))) = q.heap.peek() else {
            q = s.changed.wait(q).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let now = clock::now_ns();
        if due > now {
            let wait = Duration::from_nanos(due - now);
            q = s
                .changed
                .wait_timeout(q, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        q.heap.pop();
        let entry = &mut q.entries[id];
        // A sender that went away (its socket broke) simply stops being served.
        let sent = entry.tx.as_ref().is_some_and(|tx| tx.send(entry.next).is_ok());
        entry.next += entry.step;
        if sent && entry.next < entry.end {
            let next_due = entry.due_ns();
            q.heap.push(Reverse((next_due, id)));
        } else {
            entry.tx = None;
        }
    }
}
